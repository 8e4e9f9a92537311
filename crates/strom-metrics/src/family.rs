//! A family of series of one metric, keyed by their label values, with a bound on how many
//! it holds.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use crate::metric::Counter;

/// Series of one metric keyed by `K` (a topic name, an `(api, error code)` pair). Lookups
/// of an existing series take a shared lock and do not allocate; the first use of a key
/// takes the exclusive lock once. At `series_max` series, new keys all share the
/// [`Family::overflow`] series and are counted in [`Family::refused`], so memory stays
/// bounded whatever names clients send.
#[derive(Debug)]
pub struct Family<K, M> {
    series: RwLock<HashMap<K, Arc<M>>>,
    series_max: usize,
    overflow: Arc<M>,
    refused: Counter,
}

impl<K: Hash + Eq + Clone, M: Default> Family<K, M> {
    /// An empty family that holds at most `series_max` series (plus the overflow one).
    pub fn new(series_max: usize) -> Family<K, M> {
        Family {
            series: RwLock::new(HashMap::new()),
            series_max,
            overflow: Arc::new(M::default()),
            refused: Counter::new(),
        }
    }

    /// The series for `key`, created on first use; the overflow series once the family is
    /// full.
    pub fn get<Q>(&self, key: &Q) -> Arc<M>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(series) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Arc::clone(series);
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = series.get(key) {
            return Arc::clone(existing);
        }
        if series.len() >= self.series_max {
            self.refused.inc();
            return Arc::clone(&self.overflow);
        }
        let created = Arc::new(M::default());
        series.insert(key.to_owned(), Arc::clone(&created));
        created
    }

    /// Forgets the series for `key` (a deleted topic), so that it stops being exposed and
    /// frees its place.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Keeps only the series whose key passes `keep`.
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| keep(key));
    }

    /// Every series, for exposition (keys sorted when `K: Ord`, see [`Family::sorted`]).
    pub fn snapshot(&self) -> Vec<(K, Arc<M>)> {
        self.series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, series)| (key.clone(), Arc::clone(series)))
            .collect()
    }

    /// The series shared by keys refused at the bound.
    pub fn overflow(&self) -> &M {
        &self.overflow
    }

    /// How many lookups found the family full.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// How many series the family holds.
    pub fn len(&self) -> usize {
        self.series.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the family holds no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Clone + Ord, M: Default> Family<K, M> {
    /// Every series, sorted by key: a stable exposition order.
    pub fn sorted(&self) -> Vec<(K, Arc<M>)> {
        let mut all = self.snapshot();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_borrowed_key_share_one_series() {
        let family: Family<String, Counter> = Family::new(10);
        family.get("orders").inc();
        family.get("orders").add(2);
        family.get("payments").inc();
        let all = family.sorted();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "orders");
        assert_eq!(all[0].1.get(), 3);
        assert_eq!(all[1].1.get(), 1);
    }

    #[test]
    fn past_the_bound_new_keys_share_the_overflow_series() {
        let family: Family<String, Counter> = Family::new(2);
        for name in ["a", "b", "c", "d", "a"] {
            family.get(name).inc();
        }
        assert_eq!(family.len(), 2);
        assert_eq!(family.overflow().get(), 2);
        assert_eq!(family.refused(), 2);
        family.remove("a");
        family.get("e").inc();
        assert_eq!(family.len(), 2);
        family.retain(|k| k != "b");
        assert_eq!(family.sorted().len(), 1);
    }

    #[test]
    fn tuple_keys() {
        let family: Family<(i16, i16), Counter> = Family::new(100);
        family.get(&(0, 0)).inc();
        family.get(&(0, 6)).inc();
        family.get(&(0, 0)).inc();
        assert_eq!(family.sorted()[0].1.get(), 2);
    }
}
