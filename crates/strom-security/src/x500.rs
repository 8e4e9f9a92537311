//! A client certificate's subject as Java prints it (`X500Principal.getName()`, RFC 2253:
//! `CN=alice,OU=eng,O=Acme`, the last RDN first), and Kafka's
//! `ssl.principal.mapping.rules` applied to it (`SslPrincipalMapper`).
//!
//! The certificate has been verified by rustls before it gets here, but its DER is still
//! read with bounds checked at every step: a malformed one is an error, never a panic.

use regex_lite::Regex;

/// Why a subject could not be read or mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the client certificate's DER could not be read: {0}")]
    Der(&'static str),
    #[error("no ssl.principal.mapping.rules rule matches the certificate subject {0:?}")]
    NoMatchingRule(String),
}

struct Der<'a> {
    bytes: &'a [u8],
}

impl<'a> Der<'a> {
    /// Reads one TLV: (tag, contents).
    fn next(&mut self) -> Result<(u8, &'a [u8]), SubjectError> {
        let (&tag, rest) = self
            .bytes
            .split_first()
            .ok_or(SubjectError::Der("truncated"))?;
        let (&first, mut rest) = rest.split_first().ok_or(SubjectError::Der("truncated"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(SubjectError::Der("bad length"));
            }
            let mut len = 0usize;
            for &b in &rest[..count] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[count..];
            len
        };
        if rest.len() < len {
            return Err(SubjectError::Der("length past the end"));
        }
        let (contents, after) = rest.split_at(len);
        self.bytes = after;
        Ok((tag, contents))
    }

    fn take_tag(&mut self, tag: u8) -> Result<&'a [u8], SubjectError> {
        match self.next()? {
            (t, contents) if t == tag => Ok(contents),
            _ => Err(SubjectError::Der("unexpected tag")),
        }
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject of a DER certificate in RFC 2253 form.
pub fn subject_name(certificate: &[u8]) -> Result<String, SubjectError> {
    let mut outer = Der { bytes: certificate };
    let cert = outer.take_tag(SEQUENCE)?;
    let mut cert = Der { bytes: cert };
    let tbs = cert.take_tag(SEQUENCE)?;
    let mut tbs = Der { bytes: tbs };
    let (tag, _) = tbs.next()?;
    // [0] EXPLICIT version is optional; the serial number follows.
    if tag == 0xa0 {
        tbs.next()?;
    }
    tbs.take_tag(SEQUENCE)?; // signature algorithm
    tbs.take_tag(SEQUENCE)?; // issuer
    tbs.take_tag(SEQUENCE)?; // validity
    let subject = tbs.take_tag(SEQUENCE)?;
    rfc2253(subject)
}

fn rfc2253(name: &[u8]) -> Result<String, SubjectError> {
    let mut rdns = Vec::new();
    let mut name = Der { bytes: name };
    while !name.bytes.is_empty() {
        let set = name.take_tag(SET)?;
        let mut set = Der { bytes: set };
        let mut parts = Vec::new();
        while !set.bytes.is_empty() {
            let atv = set.take_tag(SEQUENCE)?;
            let mut atv = Der { bytes: atv };
            let oid = atv.take_tag(OID)?;
            let (tag, value) = atv.next()?;
            parts.push(format!(
                "{}={}",
                attribute_type(oid)?,
                attribute_value(tag, value, atv_raw(tag, value))
            ));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn atv_raw(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if value.len() < 0x80 {
        out.push(value.len() as u8);
    } else {
        let bytes = (value.len() as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

fn attribute_type(oid: &[u8]) -> Result<String, SubjectError> {
    // The keywords Java's RFC 2253 output uses.
    let known: &[(&[u8], &str)] = &[
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x09], "STREET"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
            "DC",
        ),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
            "UID",
        ),
    ];
    if let Some((_, name)) = known.iter().find(|(o, _)| *o == oid) {
        return Ok((*name).to_string());
    }
    // Dotted form.
    let (&first, rest) = oid.split_first().ok_or(SubjectError::Der("empty OID"))?;
    let mut arcs = vec![u64::from(first / 40), u64::from(first % 40)];
    let mut value = 0u64;
    for &b in rest {
        if value > (u64::MAX >> 7) {
            return Err(SubjectError::Der("OID arc too large"));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

fn attribute_value(tag: u8, value: &[u8], raw: Vec<u8>) -> String {
    // PrintableString, UTF8String, IA5String, TeletexString (as Latin-1), BMPString.
    let text = match tag {
        0x13 | 0x0c | 0x16 => std::str::from_utf8(value).ok().map(str::to_string),
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    };
    match text {
        Some(text) => escape(&text),
        None => format!(
            "#{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let count = text.chars().count();
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == count && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One `ssl.principal.mapping.rules` rule.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// Kafka's `SslPrincipalMapper`: the rules of `ssl.principal.mapping.rules`, tried in order.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

/// Why `ssl.principal.mapping.rules` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} (expected DEFAULT or RULE:pattern/replacement/[LU], comma-separated)")]
pub struct RulesError(pub String);

impl PrincipalMapper {
    /// `DEFAULT`: the subject as it is.
    pub fn default_rules() -> PrincipalMapper {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }

    /// Parses the rules: `DEFAULT` and `RULE:pattern/replacement/` optionally followed by
    /// `L` or `U`, separated by commas (a pattern may hold commas and `\/`).
    pub fn parse(text: &str) -> Result<PrincipalMapper, RulesError> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| RulesError(format!("unterminated pattern in {rest:?}")))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| RulesError(format!("unterminated replacement in {rest:?}")))?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| RulesError(format!("bad pattern {pattern:?}: {e}")))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(RulesError(format!("unexpected text {rest:?}")));
            }
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
            } else if !rest.is_empty() {
                return Err(RulesError(format!("expected ',' before {rest:?}")));
            }
        }
        Ok(PrincipalMapper { rules })
    }

    /// The principal name for a subject DN.
    pub fn map(&self, subject: &str) -> Result<String, SubjectError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(subject.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(subject) {
                        let out = pattern.replace(subject, replacement.as_str()).into_owned();
                        return Ok(match case {
                            Some('L') => out.to_lowercase(),
                            Some('U') => out.to_uppercase(),
                            _ => out,
                        });
                    }
                }
            }
        }
        Err(SubjectError::NoMatchingRule(subject.to_string()))
    }
}

/// Reads up to an unescaped `/`; `\/` stands for `/`. Returns (text, after the slash).
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references as regex-lite's `${1}` (so `$1a` stays group 1 then `a`).
fn java_replacement(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{digits}}}"));
            }
            '$' => out.push_str("$$"),
            '\\' => {
                if let Some(next) = chars.next() {
                    if next == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(next);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_as_kafka_documents_them() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            mapper
                .map("CN=kafka-server1,OU=ServiceUsers,O=org")
                .unwrap(),
            "kafka-server1"
        );
        assert_eq!(
            mapper
                .map("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=x,ST=y,C=US")
                .unwrap(),
            "duke@javasoft"
        );
        assert_eq!(mapper.map("cn=Bob,o=x").unwrap(), "bob");
        assert_eq!(mapper.map("O=only").unwrap(), "O=only");
        let strict = PrincipalMapper::parse("RULE:^CN=(.*)$/$1/U").unwrap();
        assert_eq!(strict.map("CN=abc").unwrap(), "ABC");
        assert!(strict.map("O=x").is_err());
        assert!(PrincipalMapper::parse("RULE:abc").is_err());
        assert!(PrincipalMapper::parse("NOPE").is_err());
    }

    #[test]
    fn malformed_der_is_an_error() {
        for bad in [
            &b""[..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x05, 0x30],
        ] {
            assert!(subject_name(bad).is_err());
        }
    }
}
