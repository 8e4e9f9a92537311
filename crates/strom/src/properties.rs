//! Java `.properties` parsing (the format of Kafka's `server.properties`), bounded.
//!
//! Supports `key=value`, `key:value` and `key value`, `#`/`!` comments, backslash line
//! continuations and the escapes `\t \n \r \f \\ \uXXXX`. Later keys override earlier ones.

use std::collections::BTreeMap;

/// Largest properties text accepted (a config file, not a data file).
pub const PROPERTIES_BYTES_MAX: usize = 1024 * 1024;

pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.len() > PROPERTIES_BYTES_MAX {
        return Err(format!(
            "properties text of {} bytes exceeds {PROPERTIES_BYTES_MAX}",
            text.len()
        ));
    }
    let mut map = BTreeMap::new();
    for logical in logical_lines(text) {
        let line = logical.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = split_key_value(line);
        map.insert(unescape(&key), unescape(value.trim_start()));
    }
    Ok(map)
}

/// Joins lines ending in an odd number of backslashes with the next line.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut continuing = false;
    for raw in text.lines() {
        let piece = if continuing { raw.trim_start() } else { raw };
        let trailing = piece.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            current.push_str(&piece[..piece.len() - 1]);
            continuing = true;
        } else {
            current.push_str(piece);
            lines.push(std::mem::take(&mut current));
            continuing = false;
        }
    }
    if continuing {
        lines.push(current);
    }
    lines
}

/// Splits at the first unescaped `=`, `:` or whitespace.
fn split_key_value(line: &str) -> (String, &str) {
    let mut key = String::new();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                key.push(c);
                if let Some((_, next)) = chars.next() {
                    key.push(next);
                }
            }
            '=' | ':' => return (key, &line[i + 1..]),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (key, rest);
            }
            c => key.push(c),
        }
    }
    (key, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[(&str, &str)]) {
        let parsed = parse(text).unwrap();
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(parsed, expected, "parsing {text:?}");
    }

    #[test]
    fn java_properties_forms() {
        check(
            "a=1\nb = 2\nc:3\nd 4\n",
            &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
        );
        check("# comment\n! also\n\n   \nx=y", &[("x", "y")]);
        check("k=a\\\n    b\\\n  c", &[("k", "abc")]);
        check("path=C:\\\\dir\\tx", &[("path", "C:\\dir\tx")]);
        check("key\\=with=eq", &[("key=with", "eq")]);
        check("u=\\u0041B", &[("u", "AB")]);
        check("empty=\nlast=1\nlast=2", &[("empty", ""), ("last", "2")]);
        check("spaced   =   v  ", &[("spaced", "v  ")]);
        check(
            "voters=1@127.0.0.1:9093,2@127.0.0.1:9094",
            &[("voters", "1@127.0.0.1:9093,2@127.0.0.1:9094")],
        );
    }

    #[test]
    fn oversized_text_is_refused() {
        assert!(parse(&"x".repeat(PROPERTIES_BYTES_MAX + 1)).is_err());
    }
}
