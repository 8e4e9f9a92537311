//! `strom consume --format`: kcat's `-f` format strings (`%k`, `%s`, `%p`, `%o`, `%t`, `%T`,
//! `%h`, `%K`, `%S`, `%%` and the escapes `\n`, `\r`, `\t`, `\\`, `\0`), and the JSON line
//! printed for each record under `--output json`.

use std::fmt::Write as _;
use std::str::FromStr;

use bytes::Bytes;
use serde::Serialize;

/// One consumed record, as the printers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch; -1 when the record has none.
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    KeyLength,
    Value,
    ValueLength,
    Headers,
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    tokens: Vec<Token>,
}

impl Default for Format {
    /// The value and a newline, as kafka-console-consumer.sh and kcat print by default.
    fn default() -> Format {
        Format {
            tokens: vec![Token::Value, Token::Literal(b"\n".to_vec())],
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        let mut tokens = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let token = match chars.next() {
                        Some('%') => {
                            literal.push(b'%');
                            continue;
                        }
                        Some('t') => Token::Topic,
                        Some('p') => Token::Partition,
                        Some('o') => Token::Offset,
                        Some('T') => Token::Timestamp,
                        Some('k') => Token::Key,
                        Some('K') => Token::KeyLength,
                        Some('s') => Token::Value,
                        Some('S') => Token::ValueLength,
                        Some('h') => Token::Headers,
                        Some(other) => return Err(unknown("format token %", other, TOKENS)),
                        None => return Err("format ends in a lone %".to_string()),
                    };
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    tokens.push(token);
                }
                '\\' => {
                    let byte = match chars.next() {
                        Some('n') => b'\n',
                        Some('r') => b'\r',
                        Some('t') => b'\t',
                        Some('0') => b'\0',
                        Some('\\') => b'\\',
                        Some(other) => return Err(unknown("escape \\", other, ESCAPES)),
                        None => return Err("format ends in a lone \\".to_string()),
                    };
                    literal.push(byte);
                }
                c => {
                    let mut buf = [0u8; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Format { tokens })
    }
}

const TOKENS: &str = "%t %p %o %T %k %K %s %S %h %%";
const ESCAPES: &str = "\\n \\r \\t \\0 \\\\";

fn unknown(what: &str, found: char, known: &str) -> String {
    format!("unknown {what}{found} (known: {known})")
}

impl Format {
    /// Appends the rendering of `message` to `out`; keys and values go out byte for byte.
    pub fn render(&self, message: &Message, out: &mut Vec<u8>) {
        for token in &self.tokens {
            match token {
                Token::Literal(bytes) => out.extend_from_slice(bytes),
                Token::Topic => out.extend_from_slice(message.topic.as_bytes()),
                Token::Partition => push_display(out, message.partition),
                Token::Offset => push_display(out, message.offset),
                Token::Timestamp => push_display(out, message.timestamp_ms),
                Token::Key => out.extend_from_slice(message.key.as_deref().unwrap_or_default()),
                Token::KeyLength => push_display(out, length(message.key.as_ref())),
                Token::Value => out.extend_from_slice(message.value.as_deref().unwrap_or_default()),
                Token::ValueLength => push_display(out, length(message.value.as_ref())),
                Token::Headers => render_headers(&message.headers, out),
            }
        }
    }
}

fn push_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    let mut text = String::new();
    let _ = write!(text, "{value}");
    out.extend_from_slice(text.as_bytes());
}

/// kcat prints -1 as the length of a null key or value.
fn length(bytes: Option<&Bytes>) -> i64 {
    bytes.map_or(-1, |b| i64::try_from(b.len()).unwrap_or(i64::MAX))
}

/// kcat's `%h`: `k1=v1,k2=v2`; a null header value prints as the bare key.
fn render_headers(headers: &[(String, Option<Bytes>)], out: &mut Vec<u8>) {
    for (i, (key, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        if let Some(value) = value {
            out.push(b'=');
            out.extend_from_slice(value);
        }
    }
}

/// One record as a line of `consume --output json`, fields in a reading order.
#[derive(Serialize)]
struct MessageJson<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    headers: Vec<HeaderJson<'a>>,
}

#[derive(Serialize)]
struct HeaderJson<'a> {
    key: &'a str,
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

/// Bytes for JSON: a string when they are UTF-8, otherwise base64 in a `*_base64` field,
/// so that no byte is lost.
fn text_or_base64(bytes: Option<&Bytes>) -> (Option<&str>, Option<String>) {
    match bytes {
        None => (None, None),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some(base64(b))),
        },
    }
}

/// One record as a JSON object on one line (no newline).
pub fn message_json(message: &Message) -> String {
    let (key, key_base64) = text_or_base64(message.key.as_ref());
    let (value, value_base64) = text_or_base64(message.value.as_ref());
    let headers = message
        .headers
        .iter()
        .map(|(key, value)| {
            let (value, value_base64) = text_or_base64(value.as_ref());
            HeaderJson {
                key,
                value,
                value_base64,
            }
        })
        .collect();
    let json = MessageJson {
        topic: &message.topic,
        partition: message.partition,
        offset: message.offset,
        timestamp: message.timestamp_ms,
        key,
        key_base64,
        value,
        value_base64,
        headers,
    };
    // Serializing plain strings and numbers cannot fail; an empty object would be a bug.
    serde_json::to_string(&json).unwrap_or_else(|_| "{}".to_string())
}

/// Standard base64 with padding (RFC 4648), for bytes that are not UTF-8.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn message() -> Message {
        Message {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_123,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![
                ("h1".into(), Some(Bytes::from_static(b"v1"))),
                ("h2".into(), None),
            ],
        }
    }

    fn check(format: &str, expected: &str) {
        let parsed: Format = format.parse().unwrap();
        let mut out = Vec::new();
        parsed.render(&message(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            expected,
            "format {format:?}"
        );
    }

    #[test]
    fn every_token_renders_like_kcat() {
        check("%t", "orders");
        check("%p/%o", "2/41");
        check("%T", "1700000000123");
        check("%k=%s", "k1=hello");
        check("%K %S", "2 5");
        check("%h", "h1=v1,h2");
        check("100%%", "100%");
        check("%k\\t%s\\n", "k1\thello\n");
        check("a\\\\b\\0", "a\\b\0");
        check(
            "Key: %k Value: %s Partition: %p\n",
            "Key: k1 Value: hello Partition: 2\n",
        );
        check("ünïcode %s", "ünïcode hello");
    }

    #[test]
    fn null_key_and_value_print_empty_with_length_minus_one() {
        let parsed: Format = "[%k|%K|%s|%S|%h]".parse().unwrap();
        let mut out = Vec::new();
        let null = Message {
            key: None,
            value: None,
            headers: vec![],
            ..message()
        };
        parsed.render(&null, &mut out);
        assert_eq!(out, b"[|-1||-1|]");
    }

    #[test]
    fn default_format_is_value_and_newline() {
        let mut out = Vec::new();
        Format::default().render(&message(), &mut out);
        assert_eq!(out, b"hello\n");
    }

    #[test]
    fn bad_formats_are_rejected_with_the_offending_token() {
        for (format, needle) in [
            ("%x", "%x"),
            ("abc%", "lone %"),
            ("\\q", "\\q"),
            ("x\\", "lone \\"),
        ] {
            let err = format.parse::<Format>().unwrap_err();
            assert!(err.contains(needle), "{format:?}: {err}");
        }
    }

    #[test]
    fn json_keeps_text_as_strings_and_binary_as_base64() {
        let binary = Message {
            key: None,
            value: Some(Bytes::from_static(&[0xff, 0x00, 0x41])),
            ..message()
        };
        let value: Value = serde_json::from_str(&message_json(&binary)).unwrap();
        assert_eq!(value["key"], Value::Null);
        assert_eq!(value["value"], Value::Null);
        assert_eq!(value["value_base64"], "/wBB");
        assert_eq!(value["offset"], 41);
        assert_eq!(value["headers"][0]["key"], "h1");
        assert_eq!(value["headers"][0]["value"], "v1");
        assert_eq!(value["headers"][1]["value"], Value::Null);
        let line = message_json(&message());
        assert!(
            line.starts_with(r#"{"topic":"orders","partition":2,"offset":41,"#),
            "{line}"
        );
        let text: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(text["value"], "hello");
        assert_eq!(text["key"], "k1");
        assert!(text.get("value_base64").is_none());
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
