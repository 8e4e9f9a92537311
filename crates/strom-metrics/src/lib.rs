//! strom-metrics: the small metrics core every Strom process records into and exposes.
//!
//! Recording is what runs on hot paths, so it is as cheap as it can be: a [`Counter`] or a
//! [`Gauge`] is one relaxed atomic add, a [`Histogram`] observation is a search over a
//! short array of bucket bounds plus three relaxed atomic adds. Nothing allocates or locks
//! once a series exists. Label sets live in a [`Family`], a map behind a read-mostly lock
//! with a bound on the number of series: past it, new label sets share one overflow series
//! instead of growing memory (a client cannot inflate the broker by inventing topic names).
//!
//! Exposition is pull-based: at scrape time a [`TextEncoder`] writes the Prometheus text
//! format (version 0.0.4). Values that already exist elsewhere (partition counts from the
//! metadata image, log sizes) are not mirrored into gauges but written by the collector
//! that owns them, straight from the source, while the scrape runs.
//!
//! `process.rs` reads the process's CPU time, memory and open files from `/proc`.
//!
//! **Invariants.** No I/O except `/proc` reads in `process.rs`, no async, no dependencies.
//! Recording never fails, never blocks on I/O and never allocates after a series is created.

mod family;
mod metric;
pub mod process;
mod text;

pub use family::Family;
pub use metric::{Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS};
pub use text::{Kind, TextEncoder, CONTENT_TYPE};
