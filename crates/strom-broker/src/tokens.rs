//! The broker's side of delegation tokens (KIP-48; Kafka's `DelegationTokenManager` and
//! token cache): the keys that enable them, the HMAC of a token, finding a token by its
//! HMAC, and the SCRAM credential a token authenticates with.
//!
//! The token's HMAC is HMAC-SHA512 of the token id under `delegation.token.secret.key`
//! (Kafka's `createHmac`); it is its password, sent base64-encoded as the SCRAM password
//! with the token id as the user name and the extension `tokenauth=true`. It is derived on
//! each node and never stored, so the secret must be the same on every node. The metadata
//! log holds the rest of the token (`strom_meta::DelegationTokenImage`).
//!
//! [`TokenCredentials`] is Kafka's `DelegationTokenCache`: a token's SCRAM credentials (one
//! per mechanism, each a PBKDF2 of 4096 iterations) are computed once, when an image that
//! holds the token reaches this broker, kept while the token is in the image and dropped
//! when it leaves it; a login with the token only looks them up.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

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

/// A token's SCRAM credentials, one per mechanism.
#[derive(Debug)]
struct TokenScram {
    sha256: ScramCredential,
    sha512: ScramCredential,
}

impl TokenScram {
    fn get(&self, mechanism: ScramMechanism) -> &ScramCredential {
        match mechanism {
            ScramMechanism::Sha256 => &self.sha256,
            ScramMechanism::Sha512 => &self.sha512,
        }
    }
}

/// The SCRAM credentials of the tokens of the latest image (Kafka's
/// `DelegationTokenCache`), by token id. Bounded by the number of tokens in the metadata
/// image: [`TokenCredentials::sync`] drops every id the image no longer holds.
#[derive(Debug, Default)]
pub struct TokenCredentials {
    by_id: Mutex<HashMap<String, Arc<TokenScram>>>,
}

impl TokenCredentials {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TokenScram>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn compute(config: &TokenConfig, token_id: &str) -> Option<Arc<TokenScram>> {
        Some(Arc::new(TokenScram {
            sha256: config.scram_credential(token_id, ScramMechanism::Sha256)?,
            sha512: config.scram_credential(token_id, ScramMechanism::Sha512)?,
        }))
    }

    /// Brings the cache in line with `image` (called as each image is applied): computes
    /// the credentials of tokens new to it, drops those of tokens it no longer holds. The
    /// PBKDF2 runs outside the lock, so logins with other tokens are not held up.
    pub fn sync(&self, config: &TokenConfig, image: &MetadataImage) {
        if !config.enabled() {
            return;
        }
        let missing: Vec<String> = {
            let mut entries = self.entries();
            entries.retain(|token_id, _| image.delegation_token(token_id).is_some());
            image
                .delegation_tokens()
                .map(|(token_id, _)| token_id)
                .filter(|token_id| !entries.contains_key(token_id.as_str()))
                .cloned()
                .collect()
        };
        for token_id in missing {
            if let Some(scram) = Self::compute(config, &token_id) {
                self.entries().entry(token_id).or_insert(scram);
            }
        }
    }

    /// The SCRAM credential of token `token_id` of `image`, computed only if no image
    /// holding it has been synced yet (a login racing the image's arrival).
    pub fn credential(
        &self,
        config: &TokenConfig,
        image: &MetadataImage,
        token_id: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        image.delegation_token(token_id)?;
        if let Some(scram) = self.entries().get(token_id) {
            return Some(scram.get(mechanism).clone());
        }
        let scram = Self::compute(config, token_id)?;
        let credential = scram.get(mechanism).clone();
        self.entries().entry(token_id.to_string()).or_insert(scram);
        Some(credential)
    }

    /// How many tokens' credentials are held.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
