//! The process's own resource use, in the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, ...),
//! so the standard dashboards find them. Linux only: elsewhere the samples are left out.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::text::{Kind, TextEncoder};

static STARTED_S: OnceLock<f64> = OnceLock::new();

/// Remembers now as the process start time (the first call wins). Call early in `main`.
pub fn mark_start() {
    STARTED_S.get_or_init(now_s);
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A snapshot of the process's resource use; `None` where the platform does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
}

/// Reads the current process's stats.
pub fn stats() -> ProcessStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    ProcessStats {
        cpu_seconds: cpu_seconds(),
        resident_memory_bytes: kb("VmRSS:").map(|k| k.saturating_mul(1024)),
        virtual_memory_bytes: kb("VmSize:").map(|k| k.saturating_mul(1024)),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64),
        max_fds: max_fds(),
        threads: kb("Threads:"),
    }
}

fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let result = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if result != 0 {
        return None;
    }
    // SAFETY: zero-initialised and filled by the successful call above.
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the pointer it is given.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // `rlim_t` is u64 on Linux; the conversion keeps other platforms compiling.
    #[allow(clippy::unnecessary_cast)]
    let soft = limit.rlim_cur as u64;
    (result == 0).then_some(soft)
}

/// Writes the standard `process_*` families.
pub fn encode(encoder: &mut TextEncoder) {
    let stats = stats();
    let mut gauge = |name: &str, kind: Kind, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            encoder.family(name, kind, help);
            encoder.float(name, &[], value);
        }
    };
    gauge(
        "process_cpu_seconds_total",
        Kind::Counter,
        "Total user and system CPU time spent in seconds.",
        stats.cpu_seconds,
    );
    gauge(
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory size in bytes.",
        stats.resident_memory_bytes.map(|v| v as f64),
    );
    gauge(
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "Virtual memory size in bytes.",
        stats.virtual_memory_bytes.map(|v| v as f64),
    );
    gauge(
        "process_open_fds",
        Kind::Gauge,
        "Number of open file descriptors.",
        stats.open_fds.map(|v| v as f64),
    );
    gauge(
        "process_max_fds",
        Kind::Gauge,
        "Maximum number of open file descriptors.",
        stats.max_fds.map(|v| v as f64),
    );
    gauge(
        "process_threads",
        Kind::Gauge,
        "Number of OS threads in the process.",
        stats.threads.map(|v| v as f64),
    );
    gauge(
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since unix epoch in seconds.",
        STARTED_S.get().copied(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_files_and_cpu() {
        let stats = stats();
        assert!(stats.resident_memory_bytes.unwrap() > 0);
        assert!(stats.open_fds.unwrap() >= 3);
        assert!(stats.max_fds.unwrap() >= stats.open_fds.unwrap());
        assert!(stats.cpu_seconds.unwrap() >= 0.0);
        mark_start();
        let mut e = TextEncoder::new();
        encode(&mut e);
        let text = e.finish();
        assert!(text.contains("\nprocess_resident_memory_bytes "));
        assert!(text.contains("\nprocess_start_time_seconds "));
    }
}
