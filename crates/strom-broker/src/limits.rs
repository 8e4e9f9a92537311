//! Broker-wide bounds on connections: who is admitted (`max.connections`,
//! `max.connections.per.ip` and its overrides), the budget for request bytes in flight
//! (`queued.max.request.bytes`), and the rate-limited warnings logged when a bound bites.
//! What one connection does within these bounds (idle expiry, the receive timeout, waiting
//! for budget) is in `connection.rs`.
//!
//! Per address, as Kafka's acceptor does: a connection over its address's limit is closed
//! right after accept, before a byte is read. Broker-wide, Strom differs from Kafka on
//! purpose. Kafka's acceptor stops accepting at `max.connections` until some connection
//! closes: new clients wait in the kernel's accept queue, and once that is full cannot
//! connect at all, for as long as the connections in place stay open (idle ones for up to
//! `connections.max.idle.ms`, 10 minutes). Strom instead admits the new connection and
//! closes the one that has been idle longest (no request in progress, no response owed), as
//! Kafka itself does when its inter-broker listener needs a slot. When no connection is idle
//! the new one is closed at once, so its client sees the refusal and retries with backoff
//! instead of hanging. A client that holds many idle sockets thus cannot lock others out,
//! and an address that opens too many is stopped by its per-address limit before it can
//! push anyone out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::config::{BrokerConfig, ConfigError};

/// How often at most one warning line is logged per bound (more bites are counted and
/// summarised in the next line).
pub const WARNING_INTERVAL_MS: u64 = 10_000;
/// How often pending warning counts are checked, so a summary is not held back until the
/// next bite.
const WARNING_CHECK_MS: u64 = 1_000;
/// How many idle candidates admission tries to evict before it gives up (each try fails
/// only when that connection became busy in the meantime).
const EVICTION_TRIES_MAX: usize = 4;

/// A slot state meaning: a request is in progress or a response is owed.
const BUSY: u64 = u64::MAX;
/// A slot state meaning: admission closed this connection to make room.
const EVICTED: u64 = u64::MAX - 1;

/// A bound that bit: each gets its own warning line, rate-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bite {
    /// A connection over `max.connections.per.ip` (or its override) was closed at accept.
    PerIp,
    /// At `max.connections`, the connection idle longest was closed for a new one.
    Evicted,
    /// At `max.connections` with no connection idle, a new connection was closed.
    Refused,
    /// A request did not arrive within `strom.request.receive.timeout.ms`.
    ReceiveTimeout,
    /// A connection was idle for `connections.max.idle.ms` (normal; logged at INFO).
    Idle,
    /// A connection stopped reading until `queued.max.request.bytes` had room.
    Budget,
    /// A response was not taken by the client within `connections.max.idle.ms`.
    WriteTimeout,
}

const BITES: [Bite; 7] = [
    Bite::PerIp,
    Bite::Evicted,
    Bite::Refused,
    Bite::ReceiveTimeout,
    Bite::Idle,
    Bite::Budget,
    Bite::WriteTimeout,
];

impl Bite {
    fn index(self) -> usize {
        self as usize
    }
}

/// The bites of one bound since its last warning line.
#[derive(Debug, Default)]
struct BiteCount {
    pending: u64,
    last_logged: Option<Instant>,
    last_address: Option<IpAddr>,
}

/// Connections admitted, by id and by address.
#[derive(Debug, Default)]
struct Table {
    slots: HashMap<u64, Arc<SlotState>>,
    per_address: HashMap<IpAddr, u32>,
    next_id: u64,
}

/// The broker-wide connection bounds, shared by the accept loop and every connection.
#[derive(Debug)]
pub struct ConnectionLimits {
    connections_max: usize,
    per_address_max: u32,
    per_address_overrides: HashMap<IpAddr, u32>,
    table: Mutex<Table>,
    budget: Option<Arc<Semaphore>>,
    budget_bytes: u64,
    epoch: Instant,
    bites: [Mutex<BiteCount>; BITES.len()],
}

impl ConnectionLimits {
    /// Bounds from `config`, with `max.connections.per.ip.overrides` already resolved to
    /// addresses ([`resolve_overrides`]).
    pub fn new(config: &BrokerConfig, per_address_overrides: HashMap<IpAddr, u32>) -> Self {
        let budget = config.queued_max_request_bytes.map(|bytes| {
            let permits = usize::try_from(bytes).unwrap_or(usize::MAX);
            Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS)))
        });
        ConnectionLimits {
            connections_max: config.connections_max,
            per_address_max: config.connections_max_per_ip,
            per_address_overrides,
            table: Mutex::new(Table::default()),
            budget,
            budget_bytes: config.queued_max_request_bytes.unwrap_or(0),
            epoch: Instant::now(),
            bites: Default::default(),
        }
    }

    /// The budget for request frames in flight, in bytes (`None`: unbounded).
    pub fn budget(&self) -> Option<&Arc<Semaphore>> {
        self.budget.as_ref()
    }

    /// The connections admitted and not yet closed.
    pub fn connections(&self) -> usize {
        self.table().slots.len()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a just-accepted connection from `peer`, or refuses it (the caller closes the
    /// socket). At `max.connections` this closes the connection idle longest to make room.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Slot> {
        let address = peer.ip().to_canonical();
        let mut table = self.table();
        let from_address = table.per_address.get(&address).copied().unwrap_or(0);
        let address_max = self
            .per_address_overrides
            .get(&address)
            .copied()
            .unwrap_or(self.per_address_max);
        if from_address >= address_max {
            drop(table);
            self.bite(Bite::PerIp, address);
            return None;
        }
        let full = table.slots.len() >= self.connections_max;
        if full && !self.evict_idlest(&mut table) {
            drop(table);
            self.bite(Bite::Refused, address);
            return None;
        }
        let id = table.next_id;
        table.next_id = table.next_id.wrapping_add(1);
        let state = Arc::new(SlotState {
            idle_since_us: AtomicU64::new(BUSY),
            evicted: Notify::new(),
        });
        table.slots.insert(id, Arc::clone(&state));
        *table.per_address.entry(address).or_insert(0) += 1;
        drop(table);
        if full {
            self.bite(Bite::Evicted, address);
        }
        Some(Slot {
            id,
            address,
            state,
            limits: Arc::clone(self),
        })
    }

    /// Marks the connection idle longest as evicted and takes it off the table (its task
    /// closes the socket as soon as it wakes). False when no connection is idle.
    fn evict_idlest(&self, table: &mut Table) -> bool {
        for _ in 0..EVICTION_TRIES_MAX {
            let idlest = table
                .slots
                .iter()
                .map(|(id, state)| (*id, state.idle_since_us.load(Ordering::Acquire)))
                .filter(|(_, since)| *since < EVICTED)
                .min_by_key(|(_, since)| *since);
            let Some((id, since)) = idlest else {
                return false;
            };
            let Some(state) = table.slots.get(&id).cloned() else {
                return false;
            };
            // Fails only if the connection changed state since the scan: try again.
            if state
                .idle_since_us
                .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                table.slots.remove(&id);
                state.evicted.notify_one();
                return true;
            }
        }
        false
    }

    fn release(&self, id: u64, address: IpAddr) {
        let mut table = self.table();
        table.slots.remove(&id);
        if let Some(count) = table.per_address.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.per_address.remove(&address);
            }
        }
    }

    fn since_epoch_us(&self, at: Instant) -> u64 {
        let us = at.saturating_duration_since(self.epoch).as_micros();
        u64::try_from(us).unwrap_or(EVICTED - 1).min(EVICTED - 1)
    }

    /// Counts a bite of `bite` (by a connection from `address`) and logs it, at most one
    /// line per bound per [`WARNING_INTERVAL_MS`]; the bites in between are summed into the
    /// next line.
    pub fn bite(&self, bite: Bite, address: IpAddr) {
        let now = Instant::now();
        let Some(count) = self.bites.get(bite.index()) else {
            return;
        };
        let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
        count.pending = count.pending.saturating_add(1);
        count.last_address = Some(address);
        if due(&count, now) {
            let (pending, address) = (count.pending, count.last_address);
            count.pending = 0;
            count.last_logged = Some(now);
            drop(count);
            self.log(bite, pending, address);
        }
    }

    /// Logs the counts held back by the rate limit once their interval has passed.
    pub fn report_pending(&self) {
        let now = Instant::now();
        for bite in BITES {
            let Some(count) = self.bites.get(bite.index()) else {
                continue;
            };
            let mut count = count.lock().unwrap_or_else(|e| e.into_inner());
            if count.pending > 0 && due(&count, now) {
                let (pending, address) = (count.pending, count.last_address);
                count.pending = 0;
                count.last_logged = Some(now);
                drop(count);
                self.log(bite, pending, address);
            }
        }
    }

    /// Runs [`report_pending`](Self::report_pending) for ever.
    pub async fn report_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_millis(WARNING_CHECK_MS));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.report_pending();
        }
    }

    fn log(&self, bite: Bite, connections: u64, address: Option<IpAddr>) {
        let last_address = address.map(|a| a.to_string()).unwrap_or_default();
        let interval_s = WARNING_INTERVAL_MS / 1000;
        match bite {
            Bite::PerIp => tracing::warn!(
                connections,
                %last_address,
                interval_s,
                "max.connections.per.ip reached: connections closed at accept"
            ),
            Bite::Evicted => tracing::warn!(
                connections,
                max_connections = self.connections_max,
                interval_s,
                "max.connections reached: the connections idle longest were closed to admit new ones"
            ),
            Bite::Refused => tracing::warn!(
                connections,
                max_connections = self.connections_max,
                %last_address,
                interval_s,
                "max.connections reached and no connection idle: new connections closed at accept"
            ),
            Bite::ReceiveTimeout => tracing::warn!(
                connections,
                %last_address,
                interval_s,
                "strom.request.receive.timeout.ms passed before a request had arrived: connections closed"
            ),
            Bite::Idle => tracing::info!(
                connections,
                interval_s,
                "connections.max.idle.ms passed with no activity: idle connections closed"
            ),
            Bite::Budget => tracing::warn!(
                connections,
                budget_bytes = self.budget_bytes,
                interval_s,
                "queued.max.request.bytes in use: connections paused reading until requests in flight are handled"
            ),
            Bite::WriteTimeout => tracing::warn!(
                connections,
                %last_address,
                interval_s,
                "connections.max.idle.ms passed while the client did not read its response: connections closed"
            ),
        }
    }
}

fn due(count: &BiteCount, now: Instant) -> bool {
    count.last_logged.is_none_or(|logged| {
        now.saturating_duration_since(logged) >= Duration::from_millis(WARNING_INTERVAL_MS)
    })
}

/// A connection's state as admission sees it: idle since when, busy, or evicted.
#[derive(Debug)]
struct SlotState {
    /// Microseconds since the limits' epoch of the connection's last activity while it is
    /// idle; [`BUSY`] or [`EVICTED`] otherwise.
    idle_since_us: AtomicU64,
    /// Wakes the connection once it is evicted.
    evicted: Notify,
}

/// The connection has been evicted to make room for a new one: it must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted;

/// One admitted connection's place in the table; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    address: IpAddr,
    state: Arc<SlotState>,
    limits: Arc<ConnectionLimits>,
}

impl Slot {
    /// The bounds this connection lives under.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// The connection is idle (no request in progress, no response owed) since
    /// `last_activity`: it may be evicted.
    pub fn idle(&self, last_activity: Instant) -> Result<(), Evicted> {
        self.set(self.limits.since_epoch_us(last_activity))
    }

    /// The connection has a request in progress or a response owed: it is not evicted.
    pub fn busy(&self) -> Result<(), Evicted> {
        self.set(BUSY)
    }

    fn set(&self, value: u64) -> Result<(), Evicted> {
        let state = &self.state.idle_since_us;
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current == EVICTED {
                return Err(Evicted);
            }
            match state.compare_exchange(current, value, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Completes once the connection has been evicted.
    pub async fn evicted(&self) {
        loop {
            self.state.evicted.notified().await;
            if self.state.idle_since_us.load(Ordering::Acquire) == EVICTED {
                return;
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.release(self.id, self.address);
    }
}

/// Resolves `max.connections.per.ip.overrides` to addresses, as Kafka does once at start-up
/// (a host name counts for every address it resolves to; a later entry wins).
pub async fn resolve_overrides(config: &BrokerConfig) -> Result<HashMap<IpAddr, u32>, ConfigError> {
    let mut out = HashMap::new();
    for (host, count) in &config.connections_max_per_ip_overrides {
        if let Ok(address) = host.parse::<IpAddr>() {
            out.insert(address.to_canonical(), *count);
            continue;
        }
        let resolved = tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map_err(|error| ConfigError::InvalidValue {
                key: "max.connections.per.ip.overrides".to_string(),
                value: host.clone(),
                reason: format!("cannot resolve the host: {error}"),
            })?;
        for address in resolved {
            out.insert(address.ip().to_canonical(), *count);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn limits(pairs: &[(&str, &str)], overrides: &[(&str, u32)]) -> Arc<ConnectionLimits> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (config, _) = BrokerConfig::from_props(&map).unwrap();
        let overrides = overrides
            .iter()
            .map(|(ip, count)| (ip.parse().unwrap(), *count))
            .collect();
        Arc::new(ConnectionLimits::new(&config, overrides))
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    #[tokio::test]
    async fn per_address_limits_and_overrides() {
        let limits = limits(&[("max.connections.per.ip", "2")], &[("10.0.0.3", 3)]);
        let a: Vec<_> = (0..3).map(|_| limits.admit(peer("10.0.0.1"))).collect();
        assert!(a[0].is_some() && a[1].is_some() && a[2].is_none());
        let b: Vec<_> = (0..2).map(|_| limits.admit(peer("10.0.0.2"))).collect();
        assert!(b.iter().all(Option::is_some));
        let c: Vec<_> = (0..4).map(|_| limits.admit(peer("10.0.0.3"))).collect();
        assert_eq!(c.iter().filter(|s| s.is_some()).count(), 3);
        // IPv4-mapped IPv6 is the same address.
        assert!(limits.admit(peer("::ffff:10.0.0.1")).is_none());
        drop(a);
        assert!(limits.admit(peer("::ffff:10.0.0.1")).is_some());
        assert_eq!(limits.connections(), 2 + 3 + 1 - 1);
    }

    #[tokio::test]
    async fn at_the_limit_the_idlest_connection_makes_room() {
        let limits = limits(&[("max.connections", "3")], &[]);
        let slots: Vec<Slot> = (0..3)
            .map(|_| limits.admit(peer("10.0.0.1")).unwrap())
            .collect();
        // All busy: a fourth is refused.
        assert!(limits.admit(peer("10.0.0.2")).is_none());
        let now = Instant::now();
        slots[0].idle(now + Duration::from_millis(20)).unwrap();
        slots[2].idle(now + Duration::from_millis(10)).unwrap();
        let fourth = limits.admit(peer("10.0.0.2")).unwrap();
        assert_eq!(slots[2].busy(), Err(Evicted));
        assert_eq!(slots[2].idle(now), Err(Evicted));
        tokio::time::timeout(Duration::from_secs(5), slots[2].evicted())
            .await
            .unwrap();
        assert_eq!(slots[0].busy(), Ok(()));
        assert!(limits.admit(peer("10.0.0.2")).is_none());
        assert_eq!(limits.connections(), 3);
        drop(fourth);
        assert_eq!(limits.connections(), 2);
    }

    #[tokio::test]
    async fn overrides_resolve_names_and_take_addresses_as_they_are() {
        let map: BTreeMap<String, String> = [(
            "max.connections.per.ip.overrides".to_string(),
            "localhost:3,10.1.2.3:4,::ffff:10.1.2.4:5".to_string(),
        )]
        .into_iter()
        .collect();
        let (config, _) = BrokerConfig::from_props(&map).unwrap();
        let resolved = resolve_overrides(&config).await.unwrap();
        assert_eq!(resolved.get(&"127.0.0.1".parse().unwrap()), Some(&3));
        assert_eq!(resolved.get(&"10.1.2.3".parse().unwrap()), Some(&4));
        assert_eq!(resolved.get(&"10.1.2.4".parse().unwrap()), Some(&5));
    }

    #[tokio::test(start_paused = true)]
    async fn warnings_are_rate_limited_and_counted() {
        let limits = limits(&[], &[]);
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            limits.bite(Bite::ReceiveTimeout, address);
        }
        let pending = |limits: &ConnectionLimits| {
            limits.bites[Bite::ReceiveTimeout.index()]
                .lock()
                .unwrap()
                .pending
        };
        // The first was logged at once; four wait for the interval.
        assert_eq!(pending(&limits), 4);
        limits.report_pending();
        assert_eq!(pending(&limits), 4);
        tokio::time::advance(Duration::from_millis(WARNING_INTERVAL_MS)).await;
        limits.report_pending();
        assert_eq!(pending(&limits), 0);
    }
}
