//! Which topics a member subscribes to: its topic names plus, with a regex (heartbeat v1),
//! every existing topic whose whole name the regex matches.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::member::Subscription;
use super::types::Topics;

/// Internal topics are never matched by a regex subscription.
fn is_internal(topic: &str) -> bool {
    topic == "__consumer_offsets" || topic == "__transaction_state"
}

/// Checks a subscription regex; `Err` carries the reason for INVALID_REGULAR_EXPRESSION.
pub fn validate_regex(regex: &str) -> Result<(), String> {
    if regex.is_empty() {
        return Err("SubscribedTopicRegex must not be empty.".to_owned());
    }
    compile(regex).map(|_| ())
}

/// Compiled patterns (and refusals) kept, so that heartbeats and rebalances do not compile
/// a group's regex again and again. At most this many; the cache is emptied when full.
const CACHED_PATTERNS_MAX: usize = 1024;
/// Longer patterns are compiled every time rather than kept (they are rare, and a key of
/// this size times the entry bound stays a few MiB).
const CACHED_PATTERN_BYTES_MAX: usize = 4096;

type Compiled = Result<Arc<Matcher>, String>;

static COMPILED: Mutex<Option<HashMap<String, Compiled>>> = Mutex::new(None);

fn compile(regex: &str) -> Compiled {
    if regex.len() > CACHED_PATTERN_BYTES_MAX {
        return Matcher::new(regex).map(Arc::new);
    }
    let mut cache = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(compiled) = cache.get(regex) {
        return compiled.clone();
    }
    let compiled = Matcher::new(regex).map(Arc::new);
    if cache.len() >= CACHED_PATTERNS_MAX {
        cache.clear();
    }
    cache.insert(regex.to_owned(), compiled.clone());
    compiled
}

/// Resolves subscriptions against one topic view; each distinct regex is matched once per
/// resolver (members of a group usually share one) and compiled once per process.
pub struct Resolver<'a> {
    topics: &'a Topics,
    matched: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Resolver<'a> {
    pub fn new(topics: &'a Topics) -> Self {
        Resolver {
            topics,
            matched: BTreeMap::new(),
        }
    }

    /// Topic names the member subscribes to (names that exist or not, plus regex matches).
    pub fn resolve(&mut self, subscription: &Subscription) -> BTreeSet<String> {
        let mut out = subscription.subscribed_topic_names.clone();
        if let Some(regex) = &subscription.subscribed_topic_regex {
            let topics = self.topics;
            let matched =
                self.matched
                    .entry(regex.clone())
                    .or_insert_with(|| match compile(regex) {
                        Ok(m) => topics
                            .iter()
                            .filter(|t| !is_internal(&t.name) && m.matches(&t.name))
                            .map(|t| t.name.clone())
                            .collect(),
                        Err(e) => {
                            tracing::warn!(%regex, error = %e, "subscription regex not compiled");
                            BTreeSet::new()
                        }
                    });
            out.extend(matched.iter().cloned());
        }
        out
    }
}

/// A whole-name matcher over RE2-like syntax (Kafka matches with RE2/J). The pattern is
/// compiled alone first, so wrapping it in an anchored group cannot change its meaning.
#[derive(Debug)]
struct Matcher {
    regex: regex_automata::meta::Regex,
}

impl Matcher {
    fn new(pattern: &str) -> Result<Self, String> {
        regex_automata::meta::Regex::new(pattern).map_err(|e| e.to_string())?;
        let regex = regex_automata::meta::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| e.to_string())?;
        Ok(Matcher { regex })
    }

    fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_compiled_once_and_match_whole_names() {
        let first = compile("cache-test-[a-c]+").unwrap();
        let again = compile("cache-test-[a-c]+").unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second use is served from the cache"
        );
        assert!(first.matches("cache-test-abc"));
        assert!(
            !first.matches("cache-test-abcd"),
            "the whole name must match"
        );
        assert!(!first.matches("x-cache-test-a"));
        // Refusals are kept too, with their reason.
        assert_eq!(
            compile("cache-test-(").unwrap_err(),
            compile("cache-test-(").unwrap_err()
        );
        assert!(validate_regex("").is_err());
        // A long pattern is compiled but not kept.
        let long = format!("{}x", "a?".repeat(CACHED_PATTERN_BYTES_MAX));
        let one = compile(&long).unwrap();
        let two = compile(&long).unwrap();
        assert!(!Arc::ptr_eq(&one, &two));
        assert!(one.matches("x"));
    }
}
