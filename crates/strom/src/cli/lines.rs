//! Input of `strom produce`: lines of bytes (not necessarily UTF-8) from stdin or a file,
//! each bounded in length, split into key and value at a separator.

use std::io::BufRead;

use bytes::Bytes;

/// One input line as a record's key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based, for error messages.
    pub number: u64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    /// Bytes read for this line, newline included (the progress bar counts them).
    pub read_bytes: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("line {number} is longer than {max_line_bytes} bytes (raise --max-line-bytes)")]
    TooLong { number: u64, max_line_bytes: usize },
    #[error("line {number} has no key separator {separator:?}")]
    NoSeparator { number: u64, separator: String },
    #[error("cannot read input: {0}")]
    Read(String),
}

/// Splits input into [`Line`]s; a final line without a newline counts too.
pub struct Lines<R> {
    reader: R,
    separator: Option<Vec<u8>>,
    max_line_bytes: usize,
    number: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R, separator: Option<&str>, max_line_bytes: usize) -> Lines<R> {
        Lines {
            reader,
            separator: separator
                .map(|s| s.as_bytes().to_vec())
                .filter(|s| !s.is_empty()),
            max_line_bytes,
            number: 0,
            buf: Vec::new(),
        }
    }

    /// The next line, `None` at the end of the input.
    pub fn next_line(&mut self) -> Option<Result<Line, LineError>> {
        self.buf.clear();
        self.number += 1;
        // One byte over the limit tells "too long" apart from "exactly at the limit".
        let limit = (self.max_line_bytes as u64).saturating_add(2);
        let read =
            match std::io::Read::take(&mut self.reader, limit).read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => n as u64,
                Err(e) => return Some(Err(LineError::Read(e.to_string()))),
            };
        let mut content: &[u8] = &self.buf;
        if let Some(rest) = content.strip_suffix(b"\n") {
            content = rest.strip_suffix(b"\r").unwrap_or(rest);
        } else if read >= limit {
            return Some(Err(self.too_long()));
        }
        if content.len() > self.max_line_bytes {
            return Some(Err(self.too_long()));
        }
        Some(self.split(content, read))
    }

    fn too_long(&self) -> LineError {
        LineError::TooLong {
            number: self.number,
            max_line_bytes: self.max_line_bytes,
        }
    }

    fn split(&self, content: &[u8], read_bytes: u64) -> Result<Line, LineError> {
        let (key, value) = match &self.separator {
            None => (None, content),
            Some(separator) => match find(content, separator) {
                Some(at) => (
                    content.get(..at).map(Bytes::copy_from_slice),
                    content.get(at + separator.len()..).unwrap_or_default(),
                ),
                None => {
                    return Err(LineError::NoSeparator {
                        number: self.number,
                        separator: String::from_utf8_lossy(separator).into_owned(),
                    })
                }
            },
        };
        Ok(Line {
            number: self.number,
            key,
            value: Bytes::copy_from_slice(value),
            read_bytes,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<(Option<Vec<u8>>, Vec<u8>), LineError>;

    fn all(input: &[u8], separator: Option<&str>, max: usize) -> Vec<Parsed> {
        let mut lines = Lines::new(input, separator, max);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line() {
            out.push(line.map(|l| (l.key.map(|k| k.to_vec()), l.value.to_vec())));
            assert!(out.len() < 100);
        }
        out
    }

    fn ok(key: Option<&str>, value: &str) -> Parsed {
        Ok((
            key.map(|k| k.as_bytes().to_vec()),
            value.as_bytes().to_vec(),
        ))
    }

    #[test]
    fn lines_without_separator_are_values() {
        assert_eq!(
            all(b"a\nbb\r\n\nlast", None, 100),
            vec![
                ok(None, "a"),
                ok(None, "bb"),
                ok(None, ""),
                ok(None, "last")
            ]
        );
        assert!(all(b"", None, 100).is_empty());
    }

    #[test]
    fn separators_split_at_the_first_occurrence() {
        assert_eq!(
            all(b"k:v\nk2::v2\n:v3\nk4:\n", Some(":"), 100),
            vec![
                ok(Some("k"), "v"),
                ok(Some("k2"), ":v2"),
                ok(Some(""), "v3"),
                ok(Some("k4"), "")
            ]
        );
        assert_eq!(all(b"k<>v\n", Some("<>"), 100), vec![ok(Some("k"), "v")]);
    }

    #[test]
    fn a_line_without_the_separator_is_an_error_naming_it() {
        let out = all(b"k:v\nnope\n", Some(":"), 100);
        assert_eq!(
            out[1],
            Err(LineError::NoSeparator {
                number: 2,
                separator: ":".into()
            })
        );
    }

    #[test]
    fn line_length_is_bounded() {
        assert_eq!(all(b"12345\n", None, 5), vec![ok(None, "12345")]);
        assert_eq!(all(b"12345\r\n", None, 5), vec![ok(None, "12345")]);
        assert_eq!(all(b"12345", None, 5), vec![ok(None, "12345")]);
        for input in [&b"123456\n"[..], b"123456", b"1234567890\nx\n"] {
            assert_eq!(
                all(input, None, 5).first(),
                Some(&Err(LineError::TooLong {
                    number: 1,
                    max_line_bytes: 5
                })),
                "{input:?}"
            );
        }
    }

    #[test]
    fn binary_bytes_pass_through() {
        assert_eq!(
            all(b"\xff\x00\t\xfe\n", Some("\t"), 100),
            vec![Ok((Some(vec![0xff, 0x00]), vec![0xfe]))]
        );
    }

    #[test]
    fn read_bytes_count_the_newline() {
        let mut lines = Lines::new(&b"ab\ncd"[..], None, 10);
        assert_eq!(lines.next_line().unwrap().unwrap().read_bytes, 3);
        assert_eq!(lines.next_line().unwrap().unwrap().read_bytes, 2);
    }
}
