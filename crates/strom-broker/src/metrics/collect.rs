//! One scrape: the recorded counters and histograms, and the values read where they live
//! (the metadata image, the hosted logs, the group coordinators, the connection table,
//! the quorum, `/proc`), written in the Prometheus text format. Names are listed with their
//! Kafka MBeans in `docs/METRICS.md`.
//!
//! A scrape costs a pass over the hosted partitions and, for consumer lag, one ListGroups
//! per `__consumer_offsets` partition and one OffsetFetch per group, bounded by
//! [`GROUPS_WAIT`] in all and by `strom.metrics.series.max` groups; nothing here runs on a
//! request path.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_group::{Command, ListGroups, OffsetFetch, Response};
use strom_metrics::{Histogram, Kind, TextEncoder};
use strom_protocol::ErrorCode;

use super::request::ApiMetrics;
use super::{BrokerMetrics, TopicCounters, REPLICATION, STORAGE};
use crate::groups::OFFSETS_TOPIC;
use crate::server::BrokerContext;

/// The longest a scrape waits for the group coordinators (lag is left out past it, and
/// `strom_metrics_scrape_groups_timeouts_total` counts it).
pub const GROUPS_WAIT: Duration = Duration::from_secs(2);

/// Writes every metric of the broker behind `context`.
pub async fn scrape(context: &BrokerContext) -> String {
    let metrics = &context.metrics;
    let mut e = TextEncoder::new();
    topic_traffic(&mut e, metrics);
    requests(&mut e, metrics);
    replicas(&mut e, context);
    storage(&mut e);
    damage(&mut e, context);
    groups(&mut e, context).await;
    connections(&mut e, context);
    quotas(&mut e, context);
    controller(&mut e, context);
    metrics.txn_markers.encode(&mut e);
    strom_metrics::process::encode(&mut e);
    metrics.clients.encode(&mut e);
    e.family(
        "strom_metrics_series_refused_total",
        Kind::Counter,
        "Label sets refused because their family held strom.metrics.series.max series.",
    );
    let refused = metrics.topics.refused()
        + metrics.topic_ids.refused()
        + metrics.requests.errors.refused()
        + metrics.scrape_refused.get();
    e.int(
        "strom_metrics_series_refused_total",
        &[],
        i128::from(refused),
    );
    e.finish()
}

/// Damage found in partition logs (at open and by the scrubber) and the scrubber's work.
fn damage(e: &mut TextEncoder, context: &BrokerContext) {
    let damage = context.replicas.damage_counts();
    let scrub = context.replicas.scrub_counts();
    let counters: [(&str, &str, u64); 6] = [
        (
            "strom_log_damage_reports_total",
            "Damage reports: partition logs found damaged at open, and damaged batches the scrubber reported (each pass reports again).",
            damage.reports,
        ),
        (
            "strom_log_scrub_damaged_batches_total",
            "Damaged batches (or framing hiding the rest of a segment) the scrubber reported.",
            scrub.damaged_batches,
        ),
        (
            "strom_log_scrub_bytes_verified_total",
            "Bytes of cold segments the scrubber verified sound, CRC included.",
            scrub.bytes_verified,
        ),
        (
            "strom_log_scrub_segments_total",
            "Segments the scrubber read to their end.",
            scrub.segments_scrubbed,
        ),
        (
            "strom_log_scrub_passes_total",
            "Scrub passes over every hosted partition.",
            scrub.passes_completed,
        ),
        (
            "strom_log_scrub_repairs_total",
            "Damaged segments the scrubber replaced with a checked copy from an in-sync replica.",
            scrub.segments_repaired,
        ),
    ];
    for (name, help, value) in counters {
        e.family(name, Kind::Counter, help);
        e.int(name, &[], i128::from(value));
    }
    let dirs = context.replicas.log_dirs();
    let offline_dirs = (dirs.all().len() - dirs.online_count()) as u64;
    let gauges: [(&str, &str, u64); 3] = [
        (
            "strom_log_offline_dirs",
            "Log directories offline (failed, or unusable at start-up) until a restart: \
             Kafka's OfflineLogDirectoryCount.",
            offline_dirs,
        ),
        (
            "strom_log_offline_damaged_partitions",
            "Hosted partitions offline because their log is damaged (until an operator acts).",
            damage.partitions_offline_damaged,
        ),
        (
            "strom_log_offline_other_partitions",
            "Hosted partitions whose log could not be opened for another reason (retried).",
            damage.partitions_offline_other,
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        e.int(name, &[], i128::from(value));
    }
}

fn topic_traffic(e: &mut TextEncoder, metrics: &BrokerMetrics) {
    type Field = fn(&TopicCounters) -> u64;
    let families: [(&str, &str, Field); 9] = [
        (
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Record bytes appended by producers (BytesInPerSec).",
            |c| c.bytes_in.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_messagesin_total",
            "Records appended by producers (MessagesInPerSec).",
            |c| c.messages_in.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Record bytes sent to consumers (BytesOutPerSec).",
            |c| c.bytes_out.get(),
        ),
        (
            "strom_topic_messages_out_total",
            "Records sent to consumers, counted as offsets spanned by the batches sent.",
            |c| c.messages_out.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_replicationbytesout_total",
            "Record bytes sent to follower replicas (ReplicationBytesOutPerSec).",
            |c| c.replication_bytes_out.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_totalproducerequests_total",
            "Partitions produced to (TotalProduceRequestsPerSec).",
            |c| c.produce_requests.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            "Partitions whose produce failed (FailedProduceRequestsPerSec).",
            |c| c.failed_produce_requests.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_totalfetchrequests_total",
            "Partitions fetched (TotalFetchRequestsPerSec).",
            |c| c.fetch_requests.get(),
        ),
        (
            "kafka_server_brokertopicmetrics_failedfetchrequests_total",
            "Partitions whose fetch failed (FailedFetchRequestsPerSec).",
            |c| c.failed_fetch_requests.get(),
        ),
    ];
    let topics = metrics.topics.sorted();
    for (name, help, field) in families {
        e.family(name, Kind::Counter, help);
        e.int(name, &[], i128::from(field(&metrics.all_topics)));
        for (topic, counters) in &topics {
            e.int(name, &[("topic", topic)], i128::from(field(counters)));
        }
    }
}

fn requests(e: &mut TextEncoder, metrics: &BrokerMetrics) {
    let active: Vec<(String, &ApiMetrics)> = metrics.requests.active().collect();
    let name = "kafka_network_requestmetrics_requests_total";
    e.family(
        name,
        Kind::Counter,
        "Requests served, by API and version (RequestMetrics RequestsPerSec).",
    );
    for (request, api) in &active {
        for (version, counter) in api.versions.iter().enumerate() {
            let count = counter.get();
            if count > 0 {
                let version = version.to_string();
                e.int(
                    name,
                    &[("request", request), ("version", &version)],
                    i128::from(count),
                );
            }
        }
    }
    let name = "kafka_network_requestmetrics_errors_total";
    e.family(
        name,
        Kind::Counter,
        "Error codes in responses, by API and error, NONE included (RequestMetrics ErrorsPerSec).",
    );
    for ((slot, code), counter) in metrics.requests.errors.sorted() {
        let Some(request) = super::request::slot_name(usize::from(slot)) else {
            continue;
        };
        let error = ErrorCode(code)
            .name()
            .map_or_else(|| code.to_string(), str::to_string);
        e.int(
            name,
            &[("request", &request), ("error", &error)],
            i128::from(counter.get()),
        );
    }
    type Part = fn(&ApiMetrics) -> &Histogram;
    let parts: [(&str, &str, Part); 6] = [
        (
            "kafka_network_requestmetrics_totaltime_seconds",
            "Time from a request's last byte read to its response's last byte written (TotalTimeMs).",
            |a| &a.total,
        ),
        (
            "kafka_network_requestmetrics_requestqueuetime_seconds",
            "Time a request waited for earlier requests of its connection (RequestQueueTimeMs).",
            |a| &a.request_queue,
        ),
        (
            "kafka_network_requestmetrics_localtime_seconds",
            "Time in the request's handler, less remote time (LocalTimeMs).",
            |a| &a.local,
        ),
        (
            "kafka_network_requestmetrics_remotetime_seconds",
            "Time waiting on others: sync-on-commit fsyncs (RemoteTimeMs).",
            |a| &a.remote,
        ),
        (
            "kafka_network_requestmetrics_responsequeuetime_seconds",
            "Time a ready response waited for earlier responses (ResponseQueueTimeMs).",
            |a| &a.response_queue,
        ),
        (
            "kafka_network_requestmetrics_responsesendtime_seconds",
            "Time writing the response to the socket (ResponseSendTimeMs).",
            |a| &a.response_send,
        ),
    ];
    for (name, help, part) in parts {
        e.family(name, Kind::Histogram, help);
        for (request, api) in &active {
            e.histogram(name, &[("request", request)], part(api));
        }
    }
}

fn replicas(e: &mut TextEncoder, context: &BrokerContext) {
    let image = context.metadata.image();
    let node_id = context.config.node_id;
    let (mut partitions, mut leaders, mut under_replicated, mut under_min_isr) = (0, 0, 0, 0);
    let (mut offline_replicas, mut offline_partitions, mut global_partitions) = (0, 0, 0);
    for (tp, partition) in image.partitions() {
        global_partitions += 1;
        if !partition.has_leader() {
            offline_partitions += 1;
        }
        if !partition.replicas.contains(&node_id) {
            continue;
        }
        partitions += 1;
        if context.replicas.is_offline(tp) {
            offline_replicas += 1;
        }
        if partition.leader == node_id {
            leaders += 1;
            if partition.isr.len() < partition.replicas.len() {
                under_replicated += 1;
            }
            // The partition's own `min.insync.replicas` (topic override, else the broker's
            // default), as its acks=all check uses it; 1 while it is not open here.
            let min_isr = context.replicas.get(tp).map_or(1, |p| p.min_isr());
            if partition.isr.len() < min_isr {
                under_min_isr += 1;
            }
        }
    }
    let gauges: [(&str, &str, i128); 7] = [
        (
            "kafka_server_replicamanager_partitioncount",
            "Partitions with a replica on this broker (ReplicaManager PartitionCount).",
            partitions,
        ),
        (
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads (ReplicaManager LeaderCount).",
            leaders,
        ),
        (
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Led partitions whose ISR is smaller than their replica set (UnderReplicatedPartitions).",
            under_replicated,
        ),
        (
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Led partitions whose ISR is below min.insync.replicas (UnderMinIsrPartitionCount).",
            under_min_isr,
        ),
        (
            "kafka_server_replicamanager_offlinereplicacount",
            "Replicas on this broker whose log is offline (OfflineReplicaCount).",
            offline_replicas,
        ),
        (
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions of the cluster without a leader (OfflinePartitionsCount).",
            offline_partitions,
        ),
        (
            "kafka_controller_kafkacontroller_globalpartitioncount",
            "Partitions of the cluster (GlobalPartitionCount).",
            global_partitions,
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        e.int(name, &[], value);
    }
    let name = "kafka_controller_kafkacontroller_globaltopiccount";
    e.family(
        name,
        Kind::Gauge,
        "Topics of the cluster (GlobalTopicCount).",
    );
    e.int(name, &[], image.topic_count() as i128);
    let replication: [(&str, &str, u64); 3] = [
        (
            "kafka_server_replicamanager_isrshrinks_total",
            "ISR shrinks of partitions this broker leads (IsrShrinksPerSec).",
            REPLICATION.isr_shrinks.get(),
        ),
        (
            "kafka_server_replicamanager_isrexpands_total",
            "ISR expansions of partitions this broker leads (IsrExpandsPerSec).",
            REPLICATION.isr_expands.get(),
        ),
        (
            "kafka_server_replicamanager_failedisrupdates_total",
            "ISR updates refused or timed out (FailedIsrUpdatesPerSec).",
            REPLICATION.failed_isr_updates.get(),
        ),
    ];
    for (name, help, value) in replication {
        e.family(name, Kind::Counter, help);
        e.int(name, &[], i128::from(value));
    }
    logs(e, context);
}

/// Per-partition log gauges (when `strom.metrics.partition.enable`), and per-topic sums.
fn logs(e: &mut TextEncoder, context: &BrokerContext) {
    let metrics = &context.metrics;
    let mut hosted = context.replicas.all();
    hosted.sort_by(|a, b| (&a.topic, a.tp.partition).cmp(&(&b.topic, b.tp.partition)));
    type Value = fn(&crate::Partition) -> i128;
    let families: [(&str, &str, Value); 6] = [
        (
            "kafka_log_log_size",
            "Bytes of the partition's log segments (Log Size).",
            |p| i128::from(p.log.size_bytes()),
        ),
        (
            "kafka_log_log_numlogsegments",
            "Segments of the partition's log (Log NumLogSegments).",
            |p| p.log.segment_count() as i128,
        ),
        (
            "kafka_log_log_logendoffset",
            "The partition's log end offset (Log LogEndOffset).",
            |p| i128::from(p.log.log_end_offset()),
        ),
        (
            "kafka_log_log_logstartoffset",
            "The partition's log start offset (Log LogStartOffset).",
            |p| i128::from(p.log.log_start_offset()),
        ),
        (
            "strom_log_high_watermark",
            "The partition's high watermark: the offset consumers read up to.",
            |p| i128::from(p.log.high_watermark()),
        ),
        (
            "kafka_cluster_partition_laststableoffsetlag",
            "The high watermark minus the last stable offset: what open (or not yet \
             replicated) transactions hold back from read_committed consumers \
             (Partition LastStableOffsetLag).",
            |p| {
                i128::from(
                    p.log
                        .high_watermark()
                        .saturating_sub(p.last_stable_offset())
                        .max(0),
                )
            },
        ),
    ];
    if metrics.config.partition_enable {
        let limit = metrics.config.series_max;
        if hosted.len() > limit {
            metrics.scrape_refused.add((hosted.len() - limit) as u64);
        }
        for (name, help, value) in families {
            e.family(name, Kind::Gauge, help);
            for partition in hosted.iter().take(limit) {
                let index = partition.tp.partition.to_string();
                e.int(
                    name,
                    &[("topic", &partition.topic), ("partition", &index)],
                    value(partition),
                );
            }
        }
    }
    let mut by_topic: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for partition in &hosted {
        let entry = by_topic.entry(&partition.topic).or_default();
        entry.0 = entry.0.saturating_add(partition.log.size_bytes());
        entry.1 = entry.1.saturating_add(partition.log.segment_count() as u64);
    }
    let name = "strom_topic_log_size_bytes";
    e.family(
        name,
        Kind::Gauge,
        "Bytes of the topic's hosted partition logs.",
    );
    for (topic, (size, _)) in &by_topic {
        e.int(name, &[("topic", topic)], i128::from(*size));
    }
    let name = "strom_topic_log_segments";
    e.family(
        name,
        Kind::Gauge,
        "Segments of the topic's hosted partition logs.",
    );
    for (topic, (_, segments)) in &by_topic {
        e.int(name, &[("topic", topic)], i128::from(*segments));
    }
}

fn storage(e: &mut TextEncoder) {
    let name = "kafka_log_logflushstats_logflushrateandtime_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Flushes of a partition log, all its fsyncs together (LogFlushRateAndTimeMs).",
    );
    e.histogram(name, &[], &STORAGE.log_flush);
    let name = "strom_log_fsync_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Each fsync of a partition's files, by file kind (log, index, dir, other).",
    );
    for (kind, histogram) in [
        ("log", &STORAGE.fsync_log),
        ("index", &STORAGE.fsync_index),
        ("dir", &STORAGE.fsync_dir),
        ("other", &STORAGE.fsync_other),
    ] {
        e.histogram(name, &[("file", kind)], histogram);
    }
}

/// Groups by state and consumer lag, from the coordinators of the `__consumer_offsets`
/// partitions this broker leads; lag only for partitions hosted here (the high watermark
/// is read from the local log).
async fn groups(e: &mut TextEncoder, context: &BrokerContext) {
    let metrics = &context.metrics;
    let collected = tokio::time::timeout(GROUPS_WAIT, group_offsets(context)).await;
    let name = "kafka_server_group_coordinator_rebalances_total";
    e.family(
        name,
        Kind::Counter,
        "Completed rebalances of classic groups (group-coordinator-metrics group-rebalance-count).",
    );
    e.int(name, &[], i128::from(metrics.rebalances.get()));
    let name = "strom_metrics_scrape_groups_timeouts_total";
    let Ok((states, offsets)) = collected else {
        metrics.scrape_group_timeouts.inc();
        e.family(
            name,
            Kind::Counter,
            "Scrapes that left groups out because the coordinators did not answer in time.",
        );
        e.int(name, &[], i128::from(metrics.scrape_group_timeouts.get()));
        return;
    };
    e.family(
        name,
        Kind::Counter,
        "Scrapes that left groups out because the coordinators did not answer in time.",
    );
    e.int(name, &[], i128::from(metrics.scrape_group_timeouts.get()));
    let name = "kafka_coordinator_group_groupmetadatamanager_numgroups";
    e.family(
        name,
        Kind::Gauge,
        "Groups coordinated by this broker, by state (NumGroups, NumGroupsStable, ...).",
    );
    for (state, count) in &states {
        e.int(name, &[("state", state)], *count);
    }
    let hosted: BTreeMap<(String, i32), i64> = context
        .replicas
        .all()
        .iter()
        .map(|p| ((p.topic.clone(), p.tp.partition), p.log.high_watermark()))
        .collect();
    // (group, topic, partition) -> (committed offset, lag)
    let mut rows: Vec<(&str, &str, i32, i64, Option<i64>)> = Vec::new();
    for (group, partitions) in &offsets {
        for (topic, partition, offset) in partitions {
            let lag = hosted
                .get(&(topic.clone(), *partition))
                .map(|hw| hw.saturating_sub(*offset).max(0));
            rows.push((group, topic, *partition, *offset, lag));
        }
    }
    let per_partition = metrics.config.partition_enable;
    let limit = metrics.config.series_max;
    if per_partition && rows.len() > limit {
        metrics.scrape_refused.add((rows.len() - limit) as u64);
    }
    if per_partition {
        let name = "kafka_consumergroup_current_offset";
        e.family(
            name,
            Kind::Gauge,
            "A group's committed offset per partition.",
        );
        for (group, topic, partition, offset, _) in rows.iter().take(limit) {
            let index = partition.to_string();
            e.int(
                name,
                &[
                    ("consumergroup", group),
                    ("topic", topic),
                    ("partition", &index),
                ],
                i128::from(*offset),
            );
        }
        let name = "kafka_consumergroup_lag";
        e.family(
            name,
            Kind::Gauge,
            "High watermark minus the group's committed offset, per partition hosted here.",
        );
        for (group, topic, partition, _, lag) in rows.iter().take(limit) {
            if let Some(lag) = lag {
                let index = partition.to_string();
                e.int(
                    name,
                    &[
                        ("consumergroup", group),
                        ("topic", topic),
                        ("partition", &index),
                    ],
                    i128::from(*lag),
                );
            }
        }
    }
    let mut sums: BTreeMap<(&str, &str), i128> = BTreeMap::new();
    for (group, topic, _, _, lag) in &rows {
        if let Some(lag) = lag {
            *sums.entry((group, topic)).or_default() += i128::from(*lag);
        }
    }
    let name = "kafka_consumergroup_lag_sum";
    e.family(
        name,
        Kind::Gauge,
        "A group's lag summed over the topic's partitions hosted here.",
    );
    for ((group, topic), lag) in sums.iter().take(limit) {
        e.int(name, &[("consumergroup", group), ("topic", topic)], *lag);
    }
}

/// Committed offsets of a group: `(topic, partition, offset)`.
pub type GroupOffsets = Vec<(String, i32, i64)>;

/// Group counts by state and every group's committed offsets (at most `series_max` groups).
pub async fn group_offsets(
    context: &BrokerContext,
) -> (BTreeMap<String, i128>, Vec<(String, GroupOffsets)>) {
    let partitions: Vec<i32> = context
        .metadata
        .image()
        .topic_by_name(OFFSETS_TOPIC)
        .map(|t| {
            t.partitions
                .iter()
                .filter(|(_, p)| p.leader == context.config.node_id)
                .map(|(index, _)| *index)
                .collect()
        })
        .unwrap_or_default();
    let mut states: BTreeMap<String, i128> = BTreeMap::new();
    let mut groups = Vec::new();
    let limit = context.metrics.config.series_max;
    for partition in partitions {
        let filter = ListGroups {
            states: Vec::new(),
            types: Vec::new(),
        };
        let Some(Response::ListGroups(listed)) = context
            .groups
            .call(partition, Command::ListGroups(filter))
            .await
        else {
            continue;
        };
        for group in listed.groups {
            *states.entry(group.state.clone()).or_default() += 1;
            if groups.len() < limit {
                groups.push((partition, group.group_id));
            } else {
                context.metrics.scrape_refused.inc();
            }
        }
    }
    let mut offsets = Vec::with_capacity(groups.len());
    for (partition, group_id) in groups {
        let fetch = OffsetFetch {
            group_id: group_id.clone(),
            partitions: None,
            require_stable: false,
            member_id: None,
            member_epoch: -1,
        };
        let Some(Response::OffsetFetch(fetched)) = context
            .groups
            .call(partition, Command::OffsetFetch(fetch))
            .await
        else {
            continue;
        };
        let committed = fetched
            .partitions
            .into_iter()
            .filter(|p| p.offset >= 0)
            .map(|p| (p.topic, p.partition, p.offset))
            .collect();
        offsets.push((group_id, committed));
    }
    offsets.sort();
    (states, offsets)
}

fn connections(e: &mut TextEncoder, context: &BrokerContext) {
    let listener = context.advertised.name.as_str();
    let connections = &context.metrics.connections;
    let name = "kafka_server_socket_server_metrics_connection_count";
    e.family(
        name,
        Kind::Gauge,
        "Open client connections (socket-server-metrics connection-count).",
    );
    e.int(
        name,
        &[("listener", listener)],
        context.limits.connections() as i128,
    );
    let counters: [(&str, &str, u64); 9] = [
        (
            "kafka_server_socket_server_metrics_connection_creation_total",
            "Connections accepted and admitted (connection-creation-total).",
            connections.created.get(),
        ),
        (
            "kafka_server_socket_server_metrics_connection_close_total",
            "Connections closed (connection-close-total).",
            connections.closed.get(),
        ),
        (
            "strom_connections_refused_total",
            "Connections closed at accept by max.connections or max.connections.per.ip.",
            connections.refused.get(),
        ),
        (
            "strom_connections_creation_throttled_total",
            "Connections held back at accept by max.connection.creation.rate (KIP-612).",
            connections.creation_throttled.get(),
        ),
        (
            "strom_connections_ip_throttled_total",
            "Connections closed unserved after a delay by their IP address's connection_creation_rate quota (KIP-612).",
            connections.ip_throttled.get(),
        ),
        (
            "kafka_server_socket_server_metrics_successful_authentication_total",
            "SASL authentications that succeeded (successful-authentication-total).",
            connections.successful_authentication.get(),
        ),
        (
            "kafka_server_socket_server_metrics_failed_authentication_total",
            "Authentications refused: SASL exchanges and handshakes, unmapped client certificates (failed-authentication-total).",
            connections.failed_authentication.get(),
        ),
        (
            "kafka_server_socket_server_metrics_successful_reauthentication_total",
            "KIP-368 re-authentications that succeeded (successful-reauthentication-total).",
            connections.successful_reauthentication.get(),
        ),
        (
            "kafka_server_socket_server_metrics_failed_reauthentication_total",
            "KIP-368 re-authentications refused (failed-reauthentication-total).",
            connections.failed_reauthentication.get(),
        ),
    ];
    for (name, help, value) in counters {
        e.family(name, Kind::Counter, help);
        e.int(name, &[("listener", listener)], i128::from(value));
    }
}

/// Client quota totals per quota type (Kafka's `type=Produce|Fetch|Request|
/// ControllerMutation` sensors, summed over users and client ids so the series stay
/// bounded: 4 per family).
fn quotas(e: &mut TextEncoder, context: &BrokerContext) {
    let stats = context.quotas.stats();
    type Read = fn(&crate::quotas::QuotaStat) -> u64;
    let families: [(&str, &str, Read); 3] = [
        (
            "kafka_server_quota_throttle_time_ms_total",
            "Milliseconds of throttle put in responses by client quotas (throttle-time).",
            |s| s.throttle_ms(),
        ),
        (
            "kafka_server_quota_throttled_responses_total",
            "Responses that carried a quota throttle.",
            |s| s.throttled(),
        ),
        (
            "kafka_server_quota_recorded_total",
            "What quotas counted: bytes (Produce, Fetch), microseconds of request handling (Request), partition mutations (ControllerMutation).",
            |s| s.recorded(),
        ),
    ];
    for (name, help, value) in families {
        e.family(name, Kind::Counter, help);
        for (kind, stat) in &stats {
            e.int(name, &[("type", kind)], i128::from(value(stat)));
        }
    }
    // Per entity (Kafka's `kafka.server:type=Produce,user=U,client-id=C` sensors): the
    // entity whose quota applied, at most `ENTITY_SERIES_MAX` of them, the rest summed
    // under user and client_id `<other>`.
    let entities = context.quotas.entity_stats();
    type ReadEntity = fn(&crate::quotas::EntityStat) -> u64;
    let families: [(&str, &str, ReadEntity); 3] = [
        (
            "kafka_server_quota_entity_throttle_time_ms_total",
            "Milliseconds of throttle put in responses, per quota entity (throttle-time).",
            |s| s.throttle_ms,
        ),
        (
            "kafka_server_quota_entity_throttled_responses_total",
            "Responses that carried a quota throttle, per quota entity.",
            |s| s.throttled,
        ),
        (
            "kafka_server_quota_entity_recorded_total",
            "What quotas counted per quota entity: bytes (Produce, Fetch: byte-rate as a total), microseconds of request handling (Request: request-time).",
            |s| s.recorded,
        ),
    ];
    for (name, help, value) in families {
        e.family(name, Kind::Counter, help);
        for ((kind, user, client), stat) in &entities {
            e.int(
                name,
                &[("type", kind), ("user", user), ("client_id", client)],
                i128::from(value(stat)),
            );
        }
    }
}

fn controller(e: &mut TextEncoder, context: &BrokerContext) {
    quorum_gauges(e, context.metadata.quorum_status());
}

/// The metadata quorum as this node sees it (also the metrics of a controller-only node,
/// `crate::controller_http`): ActiveControllerCount, raft-metrics and the apply lag.
pub fn quorum_gauges(e: &mut TextEncoder, status: Option<strom_raft::wire::QuorumStatus>) {
    let active = status
        .as_ref()
        .is_some_and(|s| s.leader_id == Some(s.node_id));
    let name = "kafka_controller_kafkacontroller_activecontrollercount";
    e.family(
        name,
        Kind::Gauge,
        "1 on the node that leads the metadata quorum (ActiveControllerCount).",
    );
    e.int(name, &[], i128::from(active));
    let Some(status) = status else {
        return;
    };
    let gauges: [(&str, &str, i128); 5] = [
        (
            "kafka_server_raftmetrics_current_leader",
            "The metadata quorum leader's node id, -1 when unknown (raft-metrics current-leader).",
            status.leader_id.map_or(-1, i128::from),
        ),
        (
            "kafka_server_raftmetrics_current_epoch",
            "The metadata quorum's term (raft-metrics current-epoch).",
            i128::from(status.term),
        ),
        (
            "kafka_server_raftmetrics_log_end_offset",
            "The last entry of this node's metadata log (raft-metrics log-end-offset).",
            status.last_log_index.map_or(-1, i128::from),
        ),
        (
            "strom_metadata_applied_offset",
            "The last metadata entry applied on this node.",
            status.last_applied_index.map_or(-1, i128::from),
        ),
        (
            "strom_metadata_apply_lag",
            "Metadata entries in this node's log not yet applied.",
            i128::from(
                status
                    .last_log_index
                    .unwrap_or(0)
                    .saturating_sub(status.last_applied_index.unwrap_or(0)),
            ),
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        e.int(name, &[], value);
    }
}
