//! SASL PLAIN (RFC 4616) and Kafka's JAAS configuration text
//! (`sasl.jaas.config`), from which PLAIN's users (`user_NAME="password"`) and a client's
//! `username`/`password` come.

use std::collections::BTreeMap;

/// The longest PLAIN message accepted: 255 bytes each for the three fields is RFC 4616's
/// bound; Kafka's is looser, this leaves room for long passwords.
pub const PLAIN_BYTES_MAX: usize = 4096;

/// Why a PLAIN message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    /// Not `authzid NUL authcid NUL passwd` (Kafka's message text).
    #[error("Invalid SASL/PLAIN response: {0}")]
    Malformed(&'static str),
    /// Unknown user or wrong password (Kafka's message for both).
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
    /// The authorization id names someone else.
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthorizationId,
}

/// Checks a PLAIN message against `users` (name to password); returns the user name.
pub fn plain_authenticate(
    message: &[u8],
    users: &BTreeMap<String, String>,
) -> Result<String, PlainError> {
    if message.len() > PLAIN_BYTES_MAX {
        return Err(PlainError::Malformed("message too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| PlainError::Malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed(
            "expected 3 tokens separated by NUL (authzid, username, password)",
        ));
    };
    if user.is_empty() {
        return Err(PlainError::Malformed(
            "Authentication failed: username not specified",
        ));
    }
    if password.is_empty() {
        return Err(PlainError::Malformed(
            "Authentication failed: password not specified",
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(PlainError::AuthorizationId);
    }
    match users.get(user) {
        Some(expected) if crate::constant_time_eq(expected.as_bytes(), password.as_bytes()) => {
            Ok(user.to_string())
        }
        _ => Err(PlainError::InvalidCredentials),
    }
}

/// The PLAIN message a client sends.
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// One JAAS login module entry: `<class> <flag> key="value" ...;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

/// Why a JAAS text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} (expected e.g. org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";)")]
pub struct JaasError(pub &'static str);

impl JaasConfig {
    /// Parses one login module entry as Kafka's `JaasConfig` does: a class name, a flag
    /// (`required`, `requisite`, `sufficient`, `optional`), options `key=value` with values
    /// bare or double-quoted (`\"` and `\\` escapes), and a closing `;`.
    pub fn parse(text: &str) -> Result<JaasConfig, JaasError> {
        let mut tokens = Tokens {
            chars: text.trim().chars().peekable(),
        };
        let login_module = tokens.word().ok_or(JaasError("no login module class"))?;
        let flag = tokens.word().ok_or(JaasError("no control flag"))?;
        if !["required", "requisite", "sufficient", "optional"]
            .contains(&flag.to_ascii_lowercase().as_str())
        {
            return Err(JaasError(
                "the control flag must be required, requisite, sufficient or optional",
            ));
        }
        let mut options = BTreeMap::new();
        loop {
            tokens.skip_space();
            match tokens.chars.peek() {
                Some(';') => {
                    tokens.chars.next();
                    tokens.skip_space();
                    if tokens.chars.peek().is_some() {
                        return Err(JaasError("only one login module entry is supported"));
                    }
                    break;
                }
                None => return Err(JaasError("the entry must end with ';'")),
                _ => {}
            }
            let key = tokens.key().ok_or(JaasError("expected key=value"))?;
            tokens.skip_space();
            if tokens.chars.next() != Some('=') {
                return Err(JaasError("expected key=value"));
            }
            tokens.skip_space();
            let value = tokens.value().ok_or(JaasError("bad option value"))?;
            options.insert(key, value);
        }
        Ok(JaasConfig {
            login_module,
            flag,
            options,
        })
    }

    /// PLAIN's users: the `user_NAME="password"` options.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
            .collect()
    }
}

struct Tokens<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Tokens<'_> {
    fn skip_space(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    fn word(&mut self) -> Option<String> {
        self.skip_space();
        let mut out = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == ';' || c == '=' {
                break;
            }
            out.push(c);
            self.chars.next();
        }
        (!out.is_empty()).then_some(out)
    }

    fn key(&mut self) -> Option<String> {
        let mut out = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                break;
            }
            out.push(c);
            self.chars.next();
        }
        (!out.is_empty()).then_some(out)
    }

    fn value(&mut self) -> Option<String> {
        let mut out = String::new();
        if self.chars.peek() == Some(&'"') {
            self.chars.next();
            loop {
                match self.chars.next()? {
                    '"' => return Some(out),
                    '\\' => out.push(self.chars.next()?),
                    c => out.push(c),
                }
            }
        }
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == ';' {
                break;
            }
            out.push(c);
            self.chars.next();
        }
        (!out.is_empty()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_text_as_kafka_writes_it() {
        let jaas = JaasConfig::parse(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
             user_alice=\"al\\\"ice\";",
        )
        .unwrap();
        assert_eq!(jaas.options["username"], "admin");
        let users = jaas.plain_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"], "al\"ice");
        for bad in [
            "",
            "Module",
            "Module required",
            "Module maybe a=b;",
            "Module required a=\"b;",
            "Module required a=b; Other required;",
        ] {
            assert!(JaasConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_checks_users_and_refuses_bad_messages() {
        let users = BTreeMap::from([("alice".to_string(), "secret".to_string())]);
        assert_eq!(
            plain_authenticate(&plain_message("alice", "secret"), &users).unwrap(),
            "alice"
        );
        assert_eq!(
            plain_authenticate(&plain_message("alice", "nope"), &users),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            plain_authenticate(&plain_message("bob", "secret"), &users),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            plain_authenticate(b"bob\0alice\0secret", &users),
            Err(PlainError::AuthorizationId)
        );
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0x",
            b"a\0b\0c\0d",
            &[0xff][..],
        ] {
            assert!(matches!(
                plain_authenticate(bad, &users),
                Err(PlainError::Malformed(_))
            ));
        }
    }
}

/// The client side of a SASL exchange (PLAIN or SCRAM), independent of the framing.
#[derive(Debug)]
pub enum SaslClient {
    Plain,
    Scram(crate::scram::ScramClient, u8),
}

/// Why a client-side exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslClientError {
    #[error("SASL mechanism {0} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")]
    Mechanism(String),
    #[error(transparent)]
    Scram(#[from] crate::scram::ScramError),
    #[error("the server sent a SASL token after the exchange completed")]
    Unexpected,
}

impl SaslClient {
    /// Starts an exchange; returns the client and its first token.
    pub fn start(
        mechanism: &str,
        user: &str,
        password: &str,
    ) -> Result<(SaslClient, Vec<u8>), SaslClientError> {
        if mechanism == "PLAIN" {
            return Ok((SaslClient::Plain, plain_message(user, password)));
        }
        let scram = crate::scram::ScramMechanism::from_name(mechanism)
            .ok_or_else(|| SaslClientError::Mechanism(mechanism.to_string()))?;
        let (client, first) = crate::scram::ScramClient::start(scram, user, password);
        Ok((SaslClient::Scram(client, 0), first))
    }

    /// Answers the server's token: `Some(token)` to send next, `None` when done.
    pub fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, SaslClientError> {
        match self {
            SaslClient::Plain => Ok(None),
            SaslClient::Scram(client, round) => {
                *round += 1;
                match *round {
                    1 => Ok(Some(client.respond(server)?)),
                    2 => {
                        client.finish(server)?;
                        Ok(None)
                    }
                    _ => Err(SaslClientError::Unexpected),
                }
            }
        }
    }
}
