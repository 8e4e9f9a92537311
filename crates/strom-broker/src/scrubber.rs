//! The scrubber: a background task that verifies the CRCs of every hosted partition's cold
//! segments (`strom_log::Log::scrub_step`: inactive, wholly flushed, read through the page
//! cache and dropped from it after) at `strom.log.scrub.bytes.per.sec`, one pass over all
//! partitions, then a pause of `strom.log.scrub.interval.ms`. It never changes data.
//!
//! Damage is reported the way damage found at open is (`LogError::Damaged`, which takes
//! the partition offline): an ERROR line in the same words naming the partition, the file,
//! the byte position, the offset range, what is wrong and what to do, and one more in the
//! broker's damage count (`ReplicaManager::damage_counts`, named in the line as
//! `damage_reports`), besides the scrubber's own [`ScrubStats`]. Unlike damage at open, the
//! partition stays online: the damage is confined to the reported range of a segment every
//! byte of which was acknowledged and fsynced, nothing needs deciding before the log can
//! serve, and taking the partition offline would make every intact record unreadable too.
//! A damaged batch is found again, and counted again, on every pass until it is repaired or
//! someone acts. Scrubbing itself never changes data.
//!
//! Repair ([`on_damage`], `scrub_repair.rs`): after the report, a follower whose leader is a
//! healthy in-sync replica fetches the damaged segment's offsets from it and replaces the
//! segment with the checked copy, swapped in as compaction swaps (new files fsynced,
//! renamed, directory fsynced); a damaged leader first gives up leadership by reporting
//! its replica offline to the controller, when another in-sync replica can lead. Repairs
//! are counted (`segments_repaired`) and logged at WARN; a repair that cannot happen now
//! says why in the damage's line, and the next pass tries again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_log::{ScrubBudget, ScrubCursor, ScrubDamage, ScrubStep, SCRUB_CHUNK_BYTES};
use tokio::time::Instant;

use crate::partition::Partition;
use crate::replicas::ReplicaManager;
use crate::scrub_repair::Repair;
use crate::server::BrokerContext;

/// The most one step reads (on the blocking pool), so a step is short whatever the rate.
const STEP_BYTES_MAX: u64 = 1024 * 1024;

/// What the scrubber has done since the broker started.
#[derive(Debug, Default)]
pub struct ScrubStats {
    segments_scrubbed: AtomicU64,
    bytes_verified: AtomicU64,
    damaged_batches: AtomicU64,
    passes_completed: AtomicU64,
    segments_repaired: AtomicU64,
}

/// A copy of [`ScrubStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrubCounts {
    /// Segments read to their end (damaged or not).
    pub segments_scrubbed: u64,
    /// Bytes of batches found sound, CRC included.
    pub bytes_verified: u64,
    /// Damage reports: damaged batches, or damaged framing that hides the rest of a segment.
    pub damaged_batches: u64,
    /// Passes over every hosted partition.
    pub passes_completed: u64,
    /// Damaged segments replaced by a checked copy from an in-sync replica.
    pub segments_repaired: u64,
}

impl ScrubStats {
    /// The counters now.
    pub fn counts(&self) -> ScrubCounts {
        ScrubCounts {
            segments_scrubbed: self.segments_scrubbed.load(Ordering::Relaxed),
            bytes_verified: self.bytes_verified.load(Ordering::Relaxed),
            damaged_batches: self.damaged_batches.load(Ordering::Relaxed),
            passes_completed: self.passes_completed.load(Ordering::Relaxed),
            segments_repaired: self.segments_repaired.load(Ordering::Relaxed),
        }
    }

    fn add(&self, step: &ScrubStep) {
        self.bytes_verified
            .fetch_add(step.bytes_verified, Ordering::Relaxed);
        if step.segment_done.is_some() {
            self.segments_scrubbed.fetch_add(1, Ordering::Relaxed);
        }
        if step.damage.is_some() {
            self.damaged_batches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs passes until the broker stops (the task is aborted then).
pub async fn run(context: Arc<BrokerContext>) {
    let rate = context.config.scrub_bytes_per_sec;
    if rate == 0 {
        tracing::info!("scrubber disabled (strom.log.scrub.bytes.per.sec=0)");
        return;
    }
    let interval = Duration::from_millis(context.config.scrub_interval_ms);
    let stats = context.replicas.scrub_stats();
    let mut budget = ScrubBudget::new(rate, rate.clamp(SCRUB_CHUNK_BYTES as u64, STEP_BYTES_MAX));
    let clock = Instant::now();
    let now_ms = move || i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
    loop {
        let mut partitions = context.replicas.all();
        partitions.sort_by(|a, b| (&a.topic, a.tp.partition).cmp(&(&b.topic, b.tp.partition)));
        for partition in partitions {
            scrub_partition(&context, &partition, &mut budget, &stats, &now_ms).await;
        }
        let passes = stats.passes_completed.fetch_add(1, Ordering::Relaxed) + 1;
        let counts = stats.counts();
        let damage = context.replicas.damage_counts();
        tracing::info!(
            passes,
            segments_scrubbed = counts.segments_scrubbed,
            bytes_verified = counts.bytes_verified,
            damaged_batches = counts.damaged_batches,
            segments_repaired = counts.segments_repaired,
            damage_reports = damage.reports,
            partitions_offline_damaged = damage.partitions_offline_damaged,
            "scrub pass done (counts since start-up)"
        );
        tokio::time::sleep(interval).await;
    }
}

/// One pass over one partition's cold segments, within the budget.
async fn scrub_partition(
    context: &BrokerContext,
    partition: &Arc<Partition>,
    budget: &mut ScrubBudget,
    stats: &ScrubStats,
    now_ms: &impl Fn() -> i64,
) {
    let mut cursor = ScrubCursor::default();
    loop {
        budget.refill(now_ms());
        let available = budget.available_bytes();
        if available == 0 {
            let wait_ms = budget.wait_ms(STEP_BYTES_MAX).max(1);
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            continue;
        }
        let step_bytes = available.min(STEP_BYTES_MAX);
        let scrubbing = Arc::clone(partition);
        let stepped = tokio::task::spawn_blocking(move || {
            let result = scrubbing.log.scrub_step(&mut cursor, step_bytes);
            (result, cursor)
        })
        .await;
        let Ok((result, returned)) = stepped else {
            return; // the runtime is shutting down
        };
        cursor = returned;
        let step = match result {
            Ok(step) => step,
            Err(error) => {
                // A deleted partition's log is closed; a failed one said why already.
                tracing::debug!(topic = %partition.topic, partition = partition.tp.partition,
                    %error, "scrub of the partition stopped");
                return;
            }
        };
        budget.spend(step.bytes_read);
        stats.add(&step);
        if let Some(damage) = &step.damage {
            if on_damage(context, partition, damage, stats).await {
                // The segment was replaced: this pass goes on from the next one.
                if step.pass_done {
                    return;
                }
                continue;
            }
        }
        if step.pass_done {
            return;
        }
    }
}

/// Reports damage, then tries to repair it (see the module docs); true if the segment
/// was replaced.
async fn on_damage(
    context: &BrokerContext,
    partition: &Arc<Partition>,
    damage: &ScrubDamage,
    stats: &ScrubStats,
) -> bool {
    let replicas: &ReplicaManager = &context.replicas;
    let damage_reports = replicas.note_damage();
    tracing::error!(
        topic = %partition.topic,
        partition = partition.tp.partition,
        damage_reports,
        "scrubber found a {damage}. {}",
        damage.advice()
    );
    match crate::scrub_repair::repair(context, partition, damage).await {
        Repair::Repaired {
            base_offset,
            end_offset,
        } => {
            stats.segments_repaired.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(topic = %partition.topic, partition = partition.tp.partition,
                file = %damage.path.display(), base_offset, end_offset,
                "scrubber repaired a damaged segment with the leader's copy of its offsets");
            true
        }
        Repair::GivingUpLeadership => {
            tracing::warn!(topic = %partition.topic, partition = partition.tp.partition,
                "damaged replica leads its partition: reported offline so that an in-sync follower takes over; it is repaired as a follower");
            false
        }
        Repair::NotNow(why) => {
            tracing::warn!(topic = %partition.topic, partition = partition.tp.partition,
                %why, "cannot repair the damaged segment now; the next pass tries again");
            false
        }
    }
}
