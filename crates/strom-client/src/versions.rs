//! Which version of each API this client speaks: kafka-protocol's range, capped where a
//! newer version changes shape in a way the client does not handle (topic ids, batching).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;

/// Highest versions the client's request building and response reading handle.
fn client_max(api_key: i16) -> Option<i16> {
    let api = ApiKey::try_from(api_key).ok()?;
    let max = match api {
        // v13 addresses topics by id only.
        ApiKey::Produce => 12,
        // v13+ addresses topics by id only.
        ApiKey::Fetch => 12,
        ApiKey::Metadata => 12,
        // v8+ batches groups in a different request shape.
        ApiKey::OffsetFetch => 7,
        // v10 addresses topics by id.
        ApiKey::OffsetCommit => 9,
        ApiKey::ListOffsets => 9,
        // v4+ batches transactions and is for brokers (KIP-890 verification).
        ApiKey::AddPartitionsToTxn => 3,
        // v5+ is transaction version 2 (an epoch bump at every end), which the
        // transactional producer does not speak.
        ApiKey::EndTxn => 4,
        _ => return None,
    };
    Some(max)
}

/// The (min, max) versions of `R` this client speaks.
pub(crate) fn client_range<R: Request>() -> (i16, i16) {
    let max = client_max(R::KEY).map_or(R::VERSIONS.max, |cap| cap.min(R::VERSIONS.max));
    (R::VERSIONS.min, max)
}

/// Kafka's name of an API (`Produce`), for errors and logs.
pub(crate) fn api_name(api_key: i16) -> &'static str {
    match ApiKey::try_from(api_key) {
        Ok(api) => api_name_of(api),
        Err(()) => "unknown API",
    }
}

fn api_name_of(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::AddPartitionsToTxn => "AddPartitionsToTxn",
        ApiKey::AddOffsetsToTxn => "AddOffsetsToTxn",
        ApiKey::EndTxn => "EndTxn",
        ApiKey::TxnOffsetCommit => "TxnOffsetCommit",
        ApiKey::ShareGroupHeartbeat => "ShareGroupHeartbeat",
        ApiKey::ShareGroupDescribe => "ShareGroupDescribe",
        ApiKey::ShareFetch => "ShareFetch",
        ApiKey::ShareAcknowledge => "ShareAcknowledge",
        ApiKey::DescribeShareGroupOffsets => "DescribeShareGroupOffsets",
        ApiKey::AlterShareGroupOffsets => "AlterShareGroupOffsets",
        ApiKey::DeleteShareGroupOffsets => "DeleteShareGroupOffsets",
        _ => "other API",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{FetchRequest, JoinGroupRequest, ProduceRequest};
    use kafka_protocol::protocol::Message;

    #[test]
    fn caps_apply_only_where_shapes_change() {
        assert_eq!(client_range::<ProduceRequest>(), (3, 12));
        assert_eq!(client_range::<FetchRequest>(), (4, 12));
        assert_eq!(
            client_range::<JoinGroupRequest>().1,
            JoinGroupRequest::VERSIONS.max
        );
        assert_eq!(api_name(0), "Produce");
    }
}
