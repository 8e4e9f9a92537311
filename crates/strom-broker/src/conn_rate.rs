//! Connection creation rate limits (KIP-612): `max.connection.creation.rate` bounds the new
//! connections per second of the whole broker and, unless overridden by
//! `listener.name.<name>.max.connection.creation.rate`, of each listener. As Kafka's
//! acceptor does, a connection that takes a rate over its limit is accepted and then held
//! back (nothing is read from it, and the listener accepts nothing else) for as long as the
//! rate needs to come back to the limit, at most one quota window
//! (`quota.window.size.seconds`); the clients beyond the rate wait in the kernel's accept
//! queue instead of being refused. The inter-broker listener is protected, as in Kafka:
//! when the broker has more than one listener it is bound by its own listener limit only,
//! never by the broker-wide one, so a client storm cannot delay replication.
//!
//! Per IP address, the `connection_creation_rate` client quota of an `ip` entity (KIP-612:
//! `kafka-configs.sh --alter --entity-type ips --entity-name 10.0.0.1` or
//! `--entity-default`, AlterClientQuotas): the address's own entity, else the default `ip`
//! entity, else unlimited. As Kafka's `ConnectionQuotas.recordIpConnectionMaybeThrottle`, a
//! connection over its address's rate is not served: it is un-recorded (from the address's,
//! the listener's and the broker's rates, so refused attempts do not hold others back),
//! held open without a byte read for the throttle time (at most one window), then closed.
//! The acceptor goes on accepting meanwhile: one address's storm never delays the others.
//! The rates of at most [`IP_SENSORS_MAX`] addresses are kept, idle ones dropped first.
//!
//! The rates are Kafka's sampled rates (`quota.window.num` windows), the same as client
//! quotas ([`crate::quotas`]). Both keys are dynamic: a value set with AlterConfigs on this
//! broker (`<node.id>`) or the cluster default (`""`) wins over `server.properties` and
//! applies to the next connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strom_meta::{ConfigResource, MetadataImage};

use crate::quotas::{QuotaConfig, Sensor};

pub const MAX_CONNECTION_CREATION_RATE: &str = "max.connection.creation.rate";
/// The per-IP client quota key (Kafka's `QuotaConfig.IP_CONNECTION_RATE_OVERRIDE_CONFIG`).
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";
/// Most IP addresses whose connection rate is kept.
pub const IP_SENSORS_MAX: usize = 100_000;

/// The broker-wide and per-listener connection creation rates.
#[derive(Debug)]
pub struct ConnectionRates {
    config: QuotaConfig,
    node_id: i32,
    inter_broker_listener: String,
    listener_count: usize,
    epoch: Instant,
    broker: Mutex<Sensor>,
    listeners: Mutex<HashMap<String, Sensor>>,
    /// Per-address rates, for addresses a `connection_creation_rate` quota applies to.
    ips: Mutex<HashMap<IpAddr, Sensor>>,
}

impl ConnectionRates {
    pub fn new(
        config: QuotaConfig,
        node_id: i32,
        inter_broker_listener: &str,
        listener_count: usize,
    ) -> ConnectionRates {
        ConnectionRates {
            config,
            node_id,
            inter_broker_listener: inter_broker_listener.to_ascii_uppercase(),
            listener_count,
            epoch: Instant::now(),
            broker: Mutex::new(Sensor::default()),
            listeners: Mutex::new(HashMap::new()),
            ips: Mutex::new(HashMap::new()),
        }
    }

    /// The `connection_creation_rate` quota of `ip` (connections per second): the quota of
    /// its own `ip` entity (an address written in any form: `::1` and `0:0:0:0:0:0:0:1` are
    /// one address, as Kafka compares `InetAddress`es), else of the default `ip` entity.
    pub fn ip_limit(image: &MetadataImage, ip: IpAddr) -> Option<f64> {
        use strom_meta::quota::{QuotaEntity, IP};
        // Most clusters set no quota at all.
        image.client_quotas().next()?;
        let ip = ip.to_canonical();
        let entity = |name: Option<String>| -> QuotaEntity {
            [(IP.to_string(), name)].into_iter().collect()
        };
        image
            .client_quota(&entity(Some(ip.to_string())), CONNECTION_CREATION_RATE)
            .or_else(|| {
                image.client_quotas().find_map(|(e, values)| {
                    let name = e.get(IP)?.as_deref()?;
                    let same = name.parse::<IpAddr>().is_ok_and(|n| n.to_canonical() == ip);
                    if e.len() == 1 && same {
                        values.get(CONNECTION_CREATION_RATE).map(|v| v.get())
                    } else {
                        None
                    }
                })
            })
            .or_else(|| image.client_quota(&entity(None), CONNECTION_CREATION_RATE))
    }

    /// Records a connection from `ip` accepted on `listener` against the address's
    /// `connection_creation_rate`. `Some(throttle)` when it takes the rate over the quota:
    /// the connection is then un-recorded everywhere and must not be served, only closed
    /// after `throttle` (Kafka's `ConnectionThrottledException` and delayed close).
    pub fn record_ip(&self, image: &MetadataImage, listener: &str, ip: IpAddr) -> Option<Duration> {
        let limit = Self::ip_limit(image, ip)?;
        let ip = ip.to_canonical();
        let now = self.now_ms();
        let throttle_ms = {
            let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
            if ips.len() >= IP_SENSORS_MAX && !ips.contains_key(&ip) {
                let span = self.config.window_ms * u64::from(self.config.window_num);
                ips.retain(|_, s| s.last_used_ms() + span > now);
                if ips.len() >= IP_SENSORS_MAX {
                    if let Some(oldest) = ips
                        .iter()
                        .min_by_key(|(_, s)| s.last_used_ms())
                        .map(|(k, _)| *k)
                    {
                        ips.remove(&oldest);
                    }
                }
            }
            let sensor = ips.entry(ip).or_default();
            sensor.record(&self.config, now, 1.0);
            let (rate, span_ms) = sensor.rate(&self.config, now);
            if rate <= limit {
                return None;
            }
            // Not accepted: it does not count (Kafka records -1).
            sensor.record(&self.config, now, -1.0);
            if limit <= 0.0 {
                self.config.window_ms
            } else {
                (((rate - limit) / limit * span_ms).round() as u64).min(self.config.window_ms)
            }
        };
        self.unrecord(listener, now);
        Some(Duration::from_millis(throttle_ms.max(1)))
    }

    /// Takes back a connection [`Self::record`] counted on `listener` (and the broker).
    fn unrecord(&self, listener: &str, now: u64) {
        let protected =
            self.listener_count > 1 && listener.eq_ignore_ascii_case(&self.inter_broker_listener);
        if !protected {
            let mut sensor = self.broker.lock().unwrap_or_else(|e| e.into_inner());
            sensor.record(&self.config, now, -1.0);
        }
        let mut sensors = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sensor) = sensors.get_mut(&listener.to_ascii_uppercase()) {
            sensor.record(&self.config, now, -1.0);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A dynamic value of `key` for this broker, else the cluster default.
    fn dynamic(&self, image: &MetadataImage, key: &str) -> Option<u32> {
        image
            .config_value(&ConfigResource::broker(self.node_id.to_string()), key)
            .or_else(|| image.config_value(&ConfigResource::broker(""), key))
            .and_then(|v| v.trim().parse::<i32>().ok())
            .and_then(|v| u32::try_from(v).ok())
    }

    /// The broker-wide limit (connections per second).
    pub fn broker_limit(&self, image: &MetadataImage) -> u32 {
        self.dynamic(image, MAX_CONNECTION_CREATION_RATE)
            .unwrap_or(self.config.connection_creation_rate)
    }

    /// The limit of `listener`: its override, else the broker-wide value.
    pub fn listener_limit(&self, image: &MetadataImage, listener: &str) -> u32 {
        let key = format!(
            "listener.name.{}.{MAX_CONNECTION_CREATION_RATE}",
            listener.to_ascii_lowercase()
        );
        self.dynamic(image, &key)
            .or_else(|| {
                self.config
                    .listener_connection_creation_rates
                    .get(&listener.to_ascii_uppercase())
                    .copied()
            })
            .unwrap_or_else(|| self.broker_limit(image))
    }

    /// Records a connection accepted on `listener` and returns how long the acceptor must
    /// hold it (and the listener) back: the longer of the broker-wide and the listener
    /// delays, each capped at one window.
    pub fn record(&self, image: &MetadataImage, listener: &str) -> Duration {
        let now = self.now_ms();
        let protected =
            self.listener_count > 1 && listener.eq_ignore_ascii_case(&self.inter_broker_listener);
        let broker_ms = if protected {
            0
        } else {
            let limit = self.broker_limit(image);
            let mut sensor = self.broker.lock().unwrap_or_else(|e| e.into_inner());
            delay_ms(&self.config, &mut sensor, now, limit)
        };
        let listener_ms = {
            let limit = self.listener_limit(image, listener);
            let mut sensors = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            let sensor = sensors.entry(listener.to_ascii_uppercase()).or_default();
            delay_ms(&self.config, sensor, now, limit)
        };
        Duration::from_millis(broker_ms.max(listener_ms))
    }
}

/// Counts one connection on `sensor` and returns Kafka's throttle for `limit`, capped at
/// one window. `i32::MAX` (the default) means unlimited.
fn delay_ms(config: &QuotaConfig, sensor: &mut Sensor, now_ms: u64, limit: u32) -> u64 {
    if limit >= i32::MAX as u32 {
        return 0;
    }
    sensor.record(config, now_ms, 1.0);
    let (rate, span_ms) = sensor.rate(config, now_ms);
    let limit = f64::from(limit);
    if rate <= limit {
        return 0;
    }
    if limit <= 0.0 {
        // A zero rate admits nothing: each connection waits a whole window.
        return config.window_ms;
    }
    let throttle = (rate - limit) / limit * span_ms;
    (throttle.round() as u64).min(config.window_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(listeners: &[(&str, u32)], broker: u32) -> ConnectionRates {
        let config = QuotaConfig {
            connection_creation_rate: broker,
            listener_connection_creation_rates: listeners
                .iter()
                .map(|(n, r)| (n.to_string(), *r))
                .collect(),
            ..QuotaConfig::default()
        };
        ConnectionRates::new(config, 1, "INTERNAL", 2)
    }

    #[test]
    fn connections_over_the_rate_wait_at_most_a_window() {
        let image = MetadataImage::default();
        let r = rates(&[], 2);
        // 2/s over the 10 s minimum span: 20 connections pass, the 21st waits.
        for _ in 0..20 {
            assert_eq!(r.record(&image, "PLAINTEXT"), Duration::ZERO);
        }
        let waited = r.record(&image, "PLAINTEXT");
        assert!(
            waited > Duration::ZERO && waited <= Duration::from_secs(1),
            "{waited:?}"
        );
        // Far over: capped at one window.
        for _ in 0..100 {
            r.record(&image, "PLAINTEXT");
        }
        assert_eq!(r.record(&image, "PLAINTEXT"), Duration::from_secs(1));
    }

    #[test]
    fn listener_overrides_and_the_protected_inter_broker_listener() {
        let image = MetadataImage::default();
        let r = rates(&[("CLIENTS", 1)], 1000);
        assert_eq!(r.listener_limit(&image, "clients"), 1);
        assert_eq!(r.listener_limit(&image, "OTHER"), 1000);
        for _ in 0..10 {
            r.record(&image, "CLIENTS");
        }
        assert!(r.record(&image, "CLIENTS") > Duration::ZERO);
        // The broker-wide rate does not hold the inter-broker listener back.
        let r = rates(&[("INTERNAL", i32::MAX as u32)], 1);
        for _ in 0..50 {
            assert_eq!(r.record(&image, "INTERNAL"), Duration::ZERO);
        }
        // ... nor do its connections count against it.
        for _ in 0..10 {
            assert_eq!(r.record(&image, "PLAINTEXT"), Duration::ZERO);
        }
        assert!(r.record(&image, "PLAINTEXT") > Duration::ZERO);
    }

    #[test]
    fn per_ip_quotas_refuse_past_the_rate_and_unrecord() {
        use strom_meta::quota::{QuotaEntity, QuotaValue, IP};
        use strom_meta::MetadataRecord;
        let quota = |name: Option<&str>, value: f64| MetadataRecord::ClientQuota {
            entity: [(IP.to_string(), name.map(str::to_string))]
                .into_iter()
                .collect::<QuotaEntity>(),
            key: CONNECTION_CREATION_RATE.into(),
            value: Some(QuotaValue::new(value)),
        };
        let (image, _) = MetadataImage::default()
            .apply(&[quota(None, 2.0), quota(Some("0:0:0:0:0:0:0:1"), 100.0)])
            .unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let six: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(ConnectionRates::ip_limit(&image, local), Some(2.0));
        assert_eq!(ConnectionRates::ip_limit(&image, six), Some(100.0));
        assert_eq!(
            ConnectionRates::ip_limit(&MetadataImage::default(), local),
            None
        );
        let r = rates(&[], 1000);
        // 2/s over the 10 s minimum span: 20 pass, then each is refused with a throttle of
        // at most one window, and does not count (the next is refused the same way).
        for _ in 0..20 {
            assert_eq!(r.record(&image, "PLAINTEXT"), Duration::ZERO);
            assert_eq!(r.record_ip(&image, "PLAINTEXT", local), None);
        }
        for _ in 0..5 {
            r.record(&image, "PLAINTEXT");
            let throttle = r.record_ip(&image, "PLAINTEXT", mapped).unwrap();
            assert!(throttle > Duration::ZERO && throttle <= Duration::from_secs(1));
        }
        // The refused ones were taken back from the listener's rate: 20 over 10 s, 2/s.
        let listeners = r.listeners.lock().unwrap();
        let (rate, _) = listeners["PLAINTEXT"].rate(&r.config, r.now_ms());
        assert!((rate - 2.0).abs() < 0.01, "{rate}");
        drop(listeners);
        // Another address has its own rate.
        assert_eq!(r.record_ip(&image, "PLAINTEXT", six), None);
        assert_eq!(
            r.record_ip(&image, "PLAINTEXT", "10.0.0.1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn the_default_is_unlimited() {
        let image = MetadataImage::default();
        let r = rates(&[], i32::MAX as u32);
        for _ in 0..10_000 {
            assert_eq!(r.record(&image, "PLAINTEXT"), Duration::ZERO);
        }
    }
}
