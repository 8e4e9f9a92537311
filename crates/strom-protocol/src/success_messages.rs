//! Null error messages on success. Kafka leaves `error_message` null wherever the error code
//! beside it is NONE, and clients assert it (kafkajs and aiokafka compare CreateTopics'
//! message with null). The generated types default several of these fields to `Some("")`,
//! so a handler that forgets to clear one would send an empty string: every response goes
//! through [`clear_success_messages`] before it is encoded.

use kafka_protocol::messages::ResponseKind;
use kafka_protocol::protocol::StrBytes;

/// Sets every `error_message` whose error code is NONE to null, in every response type
/// whose generated default is not already null.
pub fn clear_success_messages(response: &mut ResponseKind) {
    match response {
        ResponseKind::CreateTopics(r) => {
            for t in &mut r.topics {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::DescribeConfigs(r) => {
            for t in &mut r.results {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::AlterConfigs(r) => {
            for t in &mut r.responses {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            for t in &mut r.responses {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            clear(r.error_code, &mut r.error_message);
            for p in r.responses.iter_mut().flat_map(|t| &mut t.partitions) {
                clear(p.error_code, &mut p.error_message);
            }
        }
        ResponseKind::ListPartitionReassignments(r) => {
            clear(r.error_code, &mut r.error_message);
        }
        ResponseKind::ElectLeaders(r) => {
            for p in r
                .replica_election_results
                .iter_mut()
                .flat_map(|t| &mut t.partition_result)
            {
                clear(p.error_code, &mut p.error_message);
            }
        }
        ResponseKind::FindCoordinator(r) => {
            clear(r.error_code, &mut r.error_message);
            for c in &mut r.coordinators {
                clear(c.error_code, &mut c.error_message);
            }
        }
        ResponseKind::CreateAcls(r) => {
            for t in &mut r.results {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::DeleteAcls(r) => {
            for f in &mut r.filter_results {
                clear(f.error_code, &mut f.error_message);
                for m in &mut f.matching_acls {
                    clear(m.error_code, &mut m.error_message);
                }
            }
        }
        ResponseKind::DescribeAcls(r) => clear(r.error_code, &mut r.error_message),
        ResponseKind::DescribeQuorum(r) => {
            clear(r.error_code, &mut r.error_message);
            for p in r.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                clear(p.error_code, &mut p.error_message);
            }
        }
        ResponseKind::UpdateFeatures(r) => {
            clear(r.error_code, &mut r.error_message);
            for t in &mut r.results {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::DescribeCluster(r) => clear(r.error_code, &mut r.error_message),
        ResponseKind::CreatePartitions(r) => {
            for t in &mut r.results {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::DeleteTopics(r) => {
            for t in &mut r.responses {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::ConsumerGroupHeartbeat(r) => clear(r.error_code, &mut r.error_message),
        ResponseKind::ShareFetch(r) => {
            clear(r.error_code, &mut r.error_message);
            for p in r.responses.iter_mut().flat_map(|t| &mut t.partitions) {
                clear(p.error_code, &mut p.error_message);
                clear(p.acknowledge_error_code, &mut p.acknowledge_error_message);
            }
        }
        ResponseKind::DescribeShareGroupOffsets(r) => {
            for g in &mut r.groups {
                clear(g.error_code, &mut g.error_message);
                for p in g.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                    clear(p.error_code, &mut p.error_message);
                }
            }
        }
        ResponseKind::AlterShareGroupOffsets(r) => {
            clear(r.error_code, &mut r.error_message);
            for p in r.responses.iter_mut().flat_map(|t| &mut t.partitions) {
                clear(p.error_code, &mut p.error_message);
            }
        }
        ResponseKind::DeleteShareGroupOffsets(r) => {
            clear(r.error_code, &mut r.error_message);
            for t in &mut r.responses {
                clear(t.error_code, &mut t.error_message);
            }
        }
        ResponseKind::ShareAcknowledge(r) => {
            clear(r.error_code, &mut r.error_message);
            for p in r.responses.iter_mut().flat_map(|t| &mut t.partitions) {
                clear(p.error_code, &mut p.error_message);
            }
        }
        ResponseKind::ConsumerGroupDescribe(r) => {
            for g in &mut r.groups {
                clear(g.error_code, &mut g.error_message);
            }
        }
        _ => {}
    }
}

fn clear(error_code: i16, message: &mut Option<StrBytes>) {
    if error_code == 0 {
        *message = None;
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::{
        CreateTopicsResponse, DescribeAclsResponse, DescribeConfigsResponse,
        FindCoordinatorResponse,
    };

    use super::*;

    fn message(text: &str) -> Option<StrBytes> {
        Some(StrBytes::from_string(text.to_string()))
    }

    #[test]
    fn defaults_that_are_empty_strings_become_null_on_success() {
        let mut response =
            ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(vec![
                CreatableTopicResult::default(),
                CreatableTopicResult::default()
                    .with_error_code(36)
                    .with_error_message(message("Topic 'a' already exists.")),
            ]));
        // The generated default is Some(""): the case this module exists for.
        assert_eq!(
            CreatableTopicResult::default().error_message,
            message(""),
            "kafka-protocol's default changed; this module may no longer be needed"
        );
        clear_success_messages(&mut response);
        let ResponseKind::CreateTopics(r) = response else {
            panic!("kind changed")
        };
        assert_eq!(r.topics[0].error_message, None);
        assert_eq!(
            r.topics[1].error_message,
            message("Topic 'a' already exists.")
        );
    }

    #[test]
    fn nested_and_top_level_messages() {
        let mut find = ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_coordinators(vec![Coordinator::default(), Coordinator::default()]),
        );
        clear_success_messages(&mut find);
        let ResponseKind::FindCoordinator(r) = find else {
            panic!("kind changed")
        };
        assert_eq!(r.error_message, None);
        assert!(r.coordinators.iter().all(|c| c.error_message.is_none()));

        let mut configs = ResponseKind::DescribeConfigs(
            DescribeConfigsResponse::default().with_results(vec![DescribeConfigsResult::default()]),
        );
        clear_success_messages(&mut configs);
        let ResponseKind::DescribeConfigs(r) = configs else {
            panic!("kind changed")
        };
        assert_eq!(r.results[0].error_message, None);

        let mut acls = ResponseKind::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(53)
                .with_error_message(message("No Authorizer is configured.")),
        );
        clear_success_messages(&mut acls);
        let ResponseKind::DescribeAcls(r) = acls else {
            panic!("kind changed")
        };
        assert_eq!(r.error_message, message("No Authorizer is configured."));
    }
}
