//! Liveness and readiness, for orchestrators (`/health/live`, `/health/ready`).
//!
//! **Live** means the process runs its async runtime: the answer comes from a task on the
//! same runtime as the Kafka connections, so a wedged runtime fails it by timing out.
//!
//! **Ready** means every check below passes, re-evaluated on each probe:
//! - `started`: [`crate::Broker::start`] finished: the Kafka listener is bound and
//!   accepting, the broker registered, and it caught up with the metadata committed when
//!   it started (the partition logs were opened against that image);
//! - `registered`: the current metadata image has this broker registered and unfenced;
//! - `metadata`: this node knows a quorum leader and has applied its local metadata log to
//!   within [`APPLY_LAG_MAX`] entries (an in-process controller always passes);
//! - `log_dirs`: every `log.dirs` entry is an accessible directory, none taken offline;
//! - `not_stopping`: shutdown has not begun (it turns false as the controlled shutdown
//!   starts, while the broker still serves; the HTTP listener stops once the broker stops
//!   accepting).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::server::BrokerContext;

/// The most metadata entries this node may have in its log but not applied and still be
/// ready.
pub const APPLY_LAG_MAX: u64 = 1_000;

/// Health flags the broker sets as it starts and stops.
#[derive(Debug, Default)]
pub struct Health {
    started: AtomicBool,
    stopping: AtomicBool,
}

impl Health {
    /// Start-up finished (listener bound, registered, caught up).
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Whether start-up finished.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Shutdown began (the controlled shutdown is about to move leadership away).
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Whether shutdown began.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// One readiness check: its name, whether it passes, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The check's name (as listed in the module comment).
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// What was seen, for the operator.
    pub detail: String,
}

/// Evaluates every readiness check.
pub fn readiness(context: &BrokerContext) -> Vec<Check> {
    let mut checks = Vec::with_capacity(5);
    let started = context.metrics.health.started();
    checks.push(Check {
        name: "started",
        ok: started,
        detail: if started {
            format!("Kafka listener {} accepting", context.advertised.port)
        } else {
            "start-up in progress".to_string()
        },
    });
    let image = context.metadata.image();
    let node_id = context.config.node_id;
    let registered = image.is_broker_unfenced(node_id);
    checks.push(Check {
        name: "registered",
        ok: registered,
        detail: match image.broker(node_id) {
            None => format!("broker {node_id} is not registered"),
            Some(b) if b.fenced => format!("broker {node_id} is fenced"),
            Some(_) => format!("broker {node_id} registered and unfenced"),
        },
    });
    let (metadata_ok, metadata_detail) = match context.metadata.quorum_status() {
        None => (true, "in-process controller".to_string()),
        Some(status) => {
            let lag = status
                .last_log_index
                .unwrap_or(0)
                .saturating_sub(status.last_applied_index.unwrap_or(0));
            match status.leader_id {
                None => (false, "no metadata quorum leader known".to_string()),
                Some(leader) => (
                    lag <= APPLY_LAG_MAX,
                    format!(
                        "leader {leader}, applied {} of {} entries",
                        status.last_applied_index.unwrap_or(0),
                        status.last_log_index.unwrap_or(0)
                    ),
                ),
            }
        }
    };
    checks.push(Check {
        name: "metadata",
        ok: metadata_ok,
        detail: metadata_detail,
    });
    let offline: Vec<String> = context
        .replicas
        .log_dirs()
        .all()
        .iter()
        .filter(|dir| !dir.is_online() || !std::fs::metadata(&dir.path).is_ok_and(|m| m.is_dir()))
        .map(|dir| dir.path.display().to_string())
        .collect();
    checks.push(Check {
        name: "log_dirs",
        ok: offline.is_empty(),
        detail: if offline.is_empty() {
            "all online".to_string()
        } else {
            format!("not accessible: {}", offline.join(", "))
        },
    });
    let stopping = context.metrics.health.stopping() || *context.shutdown.borrow();
    checks.push(Check {
        name: "not_stopping",
        ok: !stopping,
        detail: if stopping { "shutting down" } else { "serving" }.to_string(),
    });
    checks
}

/// The checks as a small JSON object: `{"ready":bool,"checks":{name:{"ok":..,"detail":..}}}`.
pub fn to_json(checks: &[Check]) -> String {
    let ready = checks.iter().all(|c| c.ok);
    let mut out = format!("{{\"ready\":{ready},\"checks\":{{");
    for (index, check) in checks.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "\"{}\":{{\"ok\":{},\"detail\":{}}}",
            check.name,
            check.ok,
            json_string(&check.detail)
        ));
    }
    out.push_str("}}");
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_valid() {
        let checks = vec![
            Check {
                name: "a",
                ok: true,
                detail: "x\"y\n".to_string(),
            },
            Check {
                name: "b",
                ok: false,
                detail: String::new(),
            },
        ];
        assert_eq!(
            to_json(&checks),
            "{\"ready\":false,\"checks\":{\"a\":{\"ok\":true,\"detail\":\"x\\\"y\\u000a\"},\"b\":{\"ok\":false,\"detail\":\"\"}}}"
        );
    }
}
