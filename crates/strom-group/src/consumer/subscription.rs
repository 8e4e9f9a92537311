//! Which topics a member subscribes to: its topic names plus, with a regex (heartbeat v1),
//! every existing topic whose whole name the regex matches.

use std::collections::{BTreeMap, BTreeSet};

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

fn compile(regex: &str) -> Result<Matcher, String> {
    Matcher::new(regex)
}

/// Resolves subscriptions against one topic view; each distinct regex is compiled and
/// matched once per resolver (members of a group usually share one).
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
