//! Records as they flow between operators. Inside a task a record's key and value are
//! type-erased (`Arc<dyn Any>`), so one forward to several children clones two pointers;
//! each typed operator downcasts to the types its DSL signature promised. A downcast
//! that fails is a bug in the topology's wiring and is reported as a topology error.

use std::any::Any;
use std::sync::Arc;

pub use strom_client::Header;

use crate::error::{Result, StreamsError};

/// A type-erased key or value.
pub(crate) type Dyn = Arc<dyn Any + Send + Sync>;

/// A record inside a task.
#[derive(Clone)]
pub(crate) struct Rec {
    pub key: Dyn,
    pub value: Dyn,
    pub timestamp: i64,
    pub headers: Arc<Vec<Header>>,
}

impl Rec {
    /// The same record context (timestamp, headers) with a new key and value.
    pub fn with<K, V>(&self, key: K, value: V) -> Rec
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        Rec {
            key: Arc::new(key),
            value: Arc::new(value),
            timestamp: self.timestamp,
            headers: self.headers.clone(),
        }
    }

    pub fn with_value<V: Send + Sync + 'static>(&self, value: V) -> Rec {
        Rec {
            key: self.key.clone(),
            value: Arc::new(value),
            timestamp: self.timestamp,
            headers: self.headers.clone(),
        }
    }

    pub fn key<K: 'static>(&self) -> Result<&K> {
        downcast(&self.key, "key")
    }

    pub fn value<V: 'static>(&self) -> Result<&V> {
        downcast(&self.value, "value")
    }
}

pub(crate) fn downcast<'a, T: 'static>(d: &'a Dyn, what: &str) -> Result<&'a T> {
    d.downcast_ref::<T>().ok_or_else(|| {
        StreamsError::Topology(format!(
            "record {what} is not a {} (operators wired with mismatched types)",
            std::any::type_name::<T>()
        ))
    })
}

/// A record as the processor API sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    pub key: K,
    pub value: V,
    /// Event time, ms since the epoch.
    pub timestamp: i64,
    pub headers: Vec<Header>,
}

impl<K, V> Record<K, V> {
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }
}

/// An update of a table row: the new value and the one it replaced (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

impl<V> Change<V> {
    pub fn new(new: Option<V>, old: Option<V>) -> Self {
        Change { new, old }
    }
}

/// Where the record being processed came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordContext {
    pub topic: String,
    pub partition: i32,
    /// -1 for records made by a punctuation.
    pub offset: i64,
    pub timestamp: i64,
}
