//! Windows: tumbling and hopping ([`TimeWindows`]), sliding ([`SlidingWindows`]), session
//! ([`SessionWindows`]) and the time bounds of stream-stream joins ([`JoinWindows`]), each
//! with a grace period after which late records are dropped (and counted). Windows are
//! half-open `[start, end)` for time windows; session windows and sliding windows are
//! closed `[start, end]`, as in Kafka.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::serdes::{Serde, SerdeError, SerdeRef};

/// A window's bounds, ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// A key of a windowed aggregation: the grouping key and its window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    pub key: K,
    pub window: Window,
}

impl<K> Windowed<K> {
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Fixed-size windows: tumbling (advance = size) or hopping (advance < size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub size_ms: i64,
    pub advance_ms: i64,
    pub grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows that close as soon as stream time passes their end.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows accepting out-of-order records for `grace` after their end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size_ms = ms(size).max(1);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: ms(grace),
        }
    }

    /// Hopping windows: a new window every `advance` (clamped to `1..=size`).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = ms(advance).clamp(1, self.size_ms);
        self
    }

    /// The windows that contain `timestamp` (Kafka's `TimeWindows.windowsFor`).
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let mut out = Vec::new();
        if timestamp < 0 {
            return out;
        }
        let first = (timestamp - self.size_ms + self.advance_ms).max(0);
        let mut start = first / self.advance_ms * self.advance_ms;
        while start <= timestamp {
            out.push(Window::new(start, start.saturating_add(self.size_ms)));
            start += self.advance_ms;
        }
        out
    }

    /// How long the store keeps a window after its start.
    pub fn retention_ms(&self) -> i64 {
        self.size_ms.saturating_add(self.grace_ms)
    }
}

/// Sliding windows: every window of `time_difference` that some records fall in, by the
/// records' own timestamps (Kafka's `SlidingWindows`, both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub time_difference_ms: i64,
    pub grace_ms: i64,
}

impl SlidingWindows {
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            time_difference_ms: ms(difference).max(1),
            grace_ms: ms(grace),
        }
    }

    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }
}

/// Session windows: records of a key closer than `gap` join one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub gap_ms: i64,
    pub grace_ms: i64,
}

impl SessionWindows {
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap_ms: ms(gap).max(1),
            grace_ms: ms(grace),
        }
    }

    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }
}

/// How far apart in time two records of a stream-stream join may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// A right record may be this much older than the left one.
    pub before_ms: i64,
    /// ... or this much newer.
    pub after_ms: i64,
    pub grace_ms: i64,
}

impl JoinWindows {
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        let d = ms(difference);
        JoinWindows {
            before_ms: d,
            after_ms: d,
            grace_ms: ms(grace),
        }
    }

    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    pub fn before(mut self, d: Duration) -> Self {
        self.before_ms = ms(d);
        self
    }

    pub fn after(mut self, d: Duration) -> Self {
        self.after_ms = ms(d);
        self
    }
}

/// Kafka's `TimeWindowedSerde`: the key's bytes, then the window start (8 bytes
/// big-endian); the end is start + the window size.
pub struct TimeWindowedSerde<K> {
    pub inner: SerdeRef<K>,
    pub size_ms: i64,
}

impl<K: 'static> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let key = self.inner.serialize(&value.key)?.unwrap_or_default();
        let mut b = BytesMut::with_capacity(key.len() + 8);
        b.put_slice(&key);
        b.put_i64(value.window.start);
        Ok(Some(b.freeze()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let data = data.ok_or_else(|| SerdeError("null windowed key".into()))?;
        let split = data
            .len()
            .checked_sub(8)
            .ok_or_else(|| SerdeError("windowed key shorter than 8 bytes".into()))?;
        let (key, start) = data.split_at(split);
        let start = i64::from_be_bytes(start.try_into().map_err(|_| SerdeError("start".into()))?);
        Ok(Windowed::new(
            self.inner.deserialize(Some(key))?,
            Window::new(start, start.saturating_add(self.size_ms)),
        ))
    }
}

/// Kafka's `SessionWindowedSerde`: the key's bytes, the end, then the start (8 bytes each).
pub struct SessionWindowedSerde<K> {
    pub inner: SerdeRef<K>,
}

impl<K: 'static> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Bytes>, SerdeError> {
        let key = self.inner.serialize(&value.key)?.unwrap_or_default();
        let mut b = BytesMut::with_capacity(key.len() + 16);
        b.put_slice(&key);
        b.put_i64(value.window.end);
        b.put_i64(value.window.start);
        Ok(Some(b.freeze()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let data = data.ok_or_else(|| SerdeError("null windowed key".into()))?;
        let split = data
            .len()
            .checked_sub(16)
            .ok_or_else(|| SerdeError("session key shorter than 16 bytes".into()))?;
        let (key, times) = data.split_at(split);
        let end = i64::from_be_bytes(
            times[..8]
                .try_into()
                .map_err(|_| SerdeError("end".into()))?,
        );
        let start = i64::from_be_bytes(
            times[8..]
                .try_into()
                .map_err(|_| SerdeError("start".into()))?,
        );
        Ok(Windowed::new(
            self.inner.deserialize(Some(key))?,
            Window::new(start, end),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes::Serdes;
    use std::sync::Arc;

    #[test]
    fn windows_for_matches_kafka() {
        let tumbling = TimeWindows::of_size_with_no_grace(Duration::from_millis(10));
        assert_eq!(tumbling.windows_for(0), vec![Window::new(0, 10)]);
        assert_eq!(tumbling.windows_for(9), vec![Window::new(0, 10)]);
        assert_eq!(tumbling.windows_for(10), vec![Window::new(10, 20)]);
        let hopping = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(5));
        assert_eq!(hopping.windows_for(3), vec![Window::new(0, 10)]);
        assert_eq!(
            hopping.windows_for(12),
            vec![Window::new(5, 15), Window::new(10, 20)]
        );
        assert!(hopping.windows_for(-1).is_empty());
    }

    #[test]
    fn windowed_serdes_use_kafka_layouts() {
        let s = TimeWindowedSerde {
            inner: Serdes::string(),
            size_ms: 10,
        };
        let w = Windowed::new("k".to_string(), Window::new(20, 30));
        let b = s.serialize(&w).unwrap().unwrap();
        assert_eq!(&b[..], &[b'k', 0, 0, 0, 0, 0, 0, 0, 20]);
        assert_eq!(s.deserialize(Some(&b)).unwrap(), w);
        let s = SessionWindowedSerde {
            inner: Arc::new(crate::serdes::StringSerde) as SerdeRef<String>,
        };
        let b = s.serialize(&w).unwrap().unwrap();
        assert_eq!(b.len(), 17);
        assert_eq!(s.deserialize(Some(&b)).unwrap(), w);
        assert!(s.deserialize(Some(b"short")).is_err());
    }
}
