//! The error codes a response carries, counted the way Kafka's `AbstractResponse.errorCounts`
//! counts them (NONE included): the top-level code where the response has one, and each
//! per-topic, per-partition or per-resource code.

use strom_protocol::messages::ResponseKind;

/// Calls `count(code, n)` for each error code in `response` (codes seen `n` times).
pub fn for_each(response: &ResponseKind, mut count: impl FnMut(i16, u64)) {
    let mut each = |code: i16| count(code, 1);
    match response {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| each(p.error_code)),
        ResponseKind::Fetch(r) => {
            each(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        ResponseKind::Metadata(r) => {
            for topic in &r.topics {
                each(topic.error_code);
                topic.partitions.iter().for_each(|p| each(p.error_code));
            }
        }
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            if r.groups.is_empty() {
                each(r.error_code);
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| each(p.error_code));
            }
            for group in &r.groups {
                each(group.error_code);
                group
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| each(p.error_code));
            }
        }
        ResponseKind::FindCoordinator(r) => {
            if r.coordinators.is_empty() {
                each(r.error_code);
            }
            r.coordinators.iter().for_each(|c| each(c.error_code));
        }
        ResponseKind::JoinGroup(r) => each(r.error_code),
        ResponseKind::Heartbeat(r) => each(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            each(r.error_code);
            r.members.iter().for_each(|m| each(m.error_code));
        }
        ResponseKind::SyncGroup(r) => each(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| each(g.error_code)),
        ResponseKind::ListGroups(r) => each(r.error_code),
        ResponseKind::ApiVersions(r) => each(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| each(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| each(t.error_code)),
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        ResponseKind::InitProducerId(r) => each(r.error_code),
        ResponseKind::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|x| each(x.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|x| each(x.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|x| each(x.error_code))
        }
        ResponseKind::DescribeLogDirs(r) => {
            each(r.error_code);
            r.results.iter().for_each(|x| each(x.error_code));
        }
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|x| each(x.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|x| each(x.error_code)),
        ResponseKind::ElectLeaders(r) => {
            each(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| each(p.error_code));
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            each(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        ResponseKind::ListPartitionReassignments(r) => each(r.error_code),
        ResponseKind::OffsetDelete(r) => {
            each(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        ResponseKind::DescribeCluster(r) => each(r.error_code),
        ResponseKind::DescribeTopicPartitions(r) => {
            for topic in &r.topics {
                each(topic.error_code);
                topic.partitions.iter().for_each(|p| each(p.error_code));
            }
        }
        ResponseKind::ConsumerGroupHeartbeat(r) => each(r.error_code),
        ResponseKind::StreamsGroupHeartbeat(r) => each(r.error_code),
        ResponseKind::ShareFetch(r) => {
            each(r.error_code);
            for p in r.responses.iter().flat_map(|t| &t.partitions) {
                each(p.error_code);
                each(p.acknowledge_error_code);
            }
        }
        ResponseKind::DescribeShareGroupOffsets(r) => {
            for g in &r.groups {
                each(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| each(p.error_code));
            }
        }
        ResponseKind::AlterShareGroupOffsets(r) => {
            each(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        ResponseKind::DeleteShareGroupOffsets(r) => {
            each(r.error_code);
            r.responses.iter().for_each(|t| each(t.error_code));
        }
        ResponseKind::ShareAcknowledge(r) => {
            each(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        }
        ResponseKind::ConsumerGroupDescribe(r) => r.groups.iter().for_each(|g| each(g.error_code)),
        ResponseKind::GetTelemetrySubscriptions(r) => each(r.error_code),
        ResponseKind::PushTelemetry(r) => each(r.error_code),
        _ => {}
    }
}
