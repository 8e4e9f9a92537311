//! The broker's side of delegation tokens (KIP-48; Kafka's `DelegationTokenManager` and
//! token cache): the keys that enable them, the HMAC of a token, finding a token by its
//! HMAC, and the SCRAM credential a token authenticates with.
//!
//! The token's HMAC is HMAC-SHA512 of the token id under `delegation.token.secret.key`
//! (Kafka's `createHmac`); it is its password, sent base64-encoded as the SCRAM password
//! with the token id as the user name and the extension `tokenauth=true`. It is derived on
//! each node and never stored, so the secret must be the same on every node. The metadata
//! log holds the rest of the token (`strom_meta::DelegationTokenImage`).

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use strom_meta::{DelegationTokenImage, MetadataImage};
use strom_security::scram::{ScramCredential, ScramMechanism, ITERATIONS_MIN};

use crate::config::ConfigError;
use crate::config_keys::Props;

/// `delegation.token.secret.key`: kept out of `Debug` and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(hidden)")
    }
}

/// The delegation-token keys, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// `delegation.token.secret.key` (or its old name `delegation.token.master.key`):
    /// tokens are enabled when set.
    pub secret: Option<TokenSecret>,
    /// `delegation.token.max.lifetime.ms` (7 days).
    pub max_lifetime_ms: i64,
    /// `delegation.token.expiry.time.ms` (1 day).
    pub expiry_time_ms: i64,
    /// `delegation.token.expiry.check.interval.ms` (1 hour).
    pub expiry_check_interval_ms: i64,
}

impl TokenConfig {
    pub fn from_props(props: &Props<'_>) -> Result<TokenConfig, ConfigError> {
        let secret = ["delegation.token.secret.key", "delegation.token.master.key"]
            .iter()
            .find_map(|key| props.get(key).filter(|v| !v.is_empty()))
            .map(|v| TokenSecret(v.to_string()));
        if secret.is_some()
            && props
                .get("delegation.token.secret.key")
                .is_none_or(str::is_empty)
        {
            tracing::warn!(
                "delegation.token.master.key is deprecated (as in Kafka): \
                 name it delegation.token.secret.key"
            );
        }
        Ok(TokenConfig {
            secret,
            max_lifetime_ms: props.int("delegation.token.max.lifetime.ms")?,
            expiry_time_ms: props.int("delegation.token.expiry.time.ms")?,
            expiry_check_interval_ms: props.int("delegation.token.expiry.check.interval.ms")?,
        })
    }

    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// The token's HMAC, if tokens are enabled.
    pub fn hmac(&self, token_id: &str) -> Option<Vec<u8>> {
        let secret = self.secret.as_ref()?;
        Some(ScramMechanism::Sha512.hmac(secret.0.as_bytes(), token_id.as_bytes()))
    }

    /// The id of the token whose HMAC is `hmac` (Kafka's `tokenForHmac`). Every token's HMAC
    /// is derived and compared in constant time: tokens are few (each is a metadata record).
    pub fn find_by_hmac<'a>(
        &self,
        image: &'a MetadataImage,
        hmac: &[u8],
    ) -> Option<(&'a String, &'a DelegationTokenImage)> {
        image.delegation_tokens().find(|(token_id, _)| {
            self.hmac(token_id)
                .is_some_and(|h| strom_security::constant_time_eq(&h, hmac))
        })
    }

    /// The SCRAM credential of a token: its password is the base64 of its HMAC, salted
    /// afresh at Kafka's minimum iteration count (Kafka's `prepareScramCredentials`).
    pub fn scram_credential(
        &self,
        token_id: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        let password = B64.encode(self.hmac(token_id)?);
        Some(ScramCredential::from_password(
            mechanism,
            &password,
            ITERATIONS_MIN,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(pairs: &[(&str, &str)]) -> TokenConfig {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TokenConfig::from_props(&Props::new(&map)).unwrap()
    }

    #[test]
    fn defaults_are_kafkas_and_the_secret_stays_hidden() {
        let c = config(&[]);
        assert!(!c.enabled());
        assert_eq!(
            (
                c.max_lifetime_ms,
                c.expiry_time_ms,
                c.expiry_check_interval_ms
            ),
            (604_800_000, 86_400_000, 3_600_000)
        );
        assert!(c.hmac("id").is_none());
        let c = config(&[("delegation.token.master.key", "old-secret")]);
        assert!(c.enabled());
        assert!(!format!("{c:?}").contains("old-secret"));
    }

    #[test]
    fn the_hmac_is_hmac_sha512_of_the_token_id_under_the_secret() {
        // HMAC-SHA512 with key "key" of "The quick brown fox jumps over the lazy dog"
        // (the widely published test value).
        let c = config(&[("delegation.token.secret.key", "key")]);
        let hmac = c
            .hmac("The quick brown fox jumps over the lazy dog")
            .unwrap();
        let hex: String = hmac.iter().map(|b| format!("{b:02x}")).collect();
        assert!(hex.starts_with("b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb"));
        // The token's SCRAM credential verifies the base64 HMAC as a password.
        let credential = c.scram_credential("tok", ScramMechanism::Sha256).unwrap();
        let password = B64.encode(c.hmac("tok").unwrap());
        let again = ScramCredential::from_salted_password(
            ScramMechanism::Sha256,
            &credential.salt,
            &ScramMechanism::Sha256.salted_password(
                password.as_bytes(),
                &credential.salt,
                credential.iterations,
            ),
            credential.iterations,
        );
        assert_eq!(again.stored_key, credential.stored_key);
    }
}
