//! `controller_mutation_rate` (KIP-599) around CreateTopics, CreatePartitions and
//! DeleteTopics: each topic's partition mutations are taken from the client's token bucket
//! (`quotas.rs`) before the request reaches the controller. Strict versions (CreateTopics
//! v6+, CreatePartitions v3+, DeleteTopics v5+) answer a topic with THROTTLING_QUOTA_EXCEEDED
//! once the bucket is empty and carry the time until it refills in `throttle_time_ms`;
//! older versions are served in full and throttled until the bucket is back at zero, as
//! Kafka's permissive quota. A topic that fails anyway (it exists, it is denied, ...)
//! mutated nothing: its tokens are given back. `validate_only` requests take nothing.

use std::collections::HashMap;

use strom_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use strom_protocol::messages::create_topics_response::CreatableTopicResult;
use strom_protocol::messages::delete_topics_response::DeletableTopicResult;
use strom_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, ResponseKind,
};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::authorize;
use crate::principal::Session;
use crate::quotas::{Mutation, QuotaManager};
use crate::server::BrokerContext;

/// Kafka's message for THROTTLING_QUOTA_EXCEEDED.
const MESSAGE: &str = "The throttling quota has been exceeded.";

const CREATE_TOPICS_STRICT: i16 = 6;
const CREATE_PARTITIONS_STRICT: i16 = 3;
const DELETE_TOPICS_STRICT: i16 = 5;

/// The quota of one request: who, how strictly, what was taken and what was refused.
struct Gate<'a> {
    context: &'a BrokerContext,
    user: &'a str,
    client_id: &'a str,
    strict: bool,
    /// Tokens taken, by topic name (or id, for DeleteTopics by id).
    charged: HashMap<String, f64>,
    /// Longest wait of a refused topic (ms).
    refused_ms: u32,
}

impl<'a> Gate<'a> {
    /// `None` when no `controller_mutation_rate` applies to the client (the common case).
    fn new(
        context: &'a BrokerContext,
        session: &'a Session,
        client_id: &'a str,
        strict: bool,
    ) -> Option<Gate<'a>> {
        let image = context.metadata.image();
        QuotaManager::quota_of(
            &image,
            strom_meta::quota::CONTROLLER_MUTATION_RATE,
            &session.principal.name,
            client_id,
        )?;
        Some(Gate {
            context,
            user: &session.principal.name,
            client_id,
            strict,
            charged: HashMap::new(),
            refused_ms: 0,
        })
    }

    /// Takes `permits` for `key`; false when the topic is refused.
    fn admit(&mut self, key: String, permits: f64) -> bool {
        let image = self.context.metadata.image();
        match self.context.quotas.record_mutations(
            &image,
            self.user,
            self.client_id,
            permits,
            self.strict,
        ) {
            Mutation::Accepted => {
                *self.charged.entry(key).or_insert(0.0) += permits;
                true
            }
            Mutation::Rejected(ms) => {
                self.refused_ms = self.refused_ms.max(ms);
                false
            }
        }
    }

    /// Gives back the tokens of a topic that failed.
    fn refund(&mut self, key: &str) {
        if let Some(permits) = self.charged.remove(key) {
            let image = self.context.metadata.image();
            self.context
                .quotas
                .refund_mutations(&image, self.user, self.client_id, permits);
        }
    }

    /// The response's throttle: the refused topics' wait (strict), or the time until the
    /// bucket is back at zero (permissive).
    fn throttle_ms(&self) -> i32 {
        let ms = if self.strict {
            self.refused_ms
        } else {
            let image = self.context.metadata.image();
            self.context
                .quotas
                .mutation_throttle(&image, self.user, self.client_id)
        };
        self.context.quotas.count_mutation_throttle(ms);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }
}

pub(super) async fn create_topics(
    context: &BrokerContext,
    session: &Session,
    client_id: &str,
    mut request: CreateTopicsRequest,
    version: i16,
) -> ResponseKind {
    let gate = if request.validate_only {
        None
    } else {
        Gate::new(context, session, client_id, version >= CREATE_TOPICS_STRICT)
    };
    let Some(mut gate) = gate else {
        return authorize::create_topics(context, session, request, version).await;
    };
    let default_partitions = context.config.num_partitions;
    let mut refused = Vec::new();
    let mut kept = Vec::with_capacity(request.topics.len());
    for topic in std::mem::take(&mut request.topics) {
        let partitions = if !topic.assignments.is_empty() {
            topic.assignments.len() as f64
        } else if topic.num_partitions < 0 {
            f64::from(default_partitions)
        } else {
            f64::from(topic.num_partitions)
        };
        if gate.admit(topic.name.0.to_string(), partitions) {
            kept.push(topic);
        } else {
            refused.push(topic.name);
        }
    }
    request.topics = kept;
    let mut response = authorize::create_topics(context, session, request, version).await;
    if let ResponseKind::CreateTopics(created) = &mut response {
        for topic in &created.topics {
            if topic.error_code != 0 {
                gate.refund(&topic.name.0);
            }
        }
        created.topics.extend(refused.into_iter().map(|name| {
            let result = CreatableTopicResult::default()
                .with_name(name)
                .with_error_code(ErrorCode::THROTTLING_QUOTA_EXCEEDED.code())
                .with_error_message(Some(super::str_bytes(MESSAGE)));
            if version >= 5 {
                result.with_num_partitions(-1).with_replication_factor(-1)
            } else {
                result
            }
        }));
        created.throttle_time_ms = created.throttle_time_ms.max(gate.throttle_ms());
    }
    response
}

pub(super) async fn create_partitions(
    context: &BrokerContext,
    session: &Session,
    client_id: &str,
    mut request: CreatePartitionsRequest,
    version: i16,
) -> ResponseKind {
    let gate = if request.validate_only {
        None
    } else {
        Gate::new(
            context,
            session,
            client_id,
            version >= CREATE_PARTITIONS_STRICT,
        )
    };
    let Some(mut gate) = gate else {
        return authorize::create_partitions(context, session, request, version).await;
    };
    let image = context.metadata.image();
    let mut refused = Vec::new();
    let mut kept = Vec::with_capacity(request.topics.len());
    for topic in std::mem::take(&mut request.topics) {
        let current = image
            .topic_by_name(&topic.name.0)
            .map_or(0, |t| t.partitions.len());
        let added = usize::try_from(topic.count)
            .unwrap_or(0)
            .saturating_sub(current);
        if gate.admit(topic.name.0.to_string(), added as f64) {
            kept.push(topic);
        } else {
            refused.push(topic.name);
        }
    }
    drop(image);
    request.topics = kept;
    let mut response = authorize::create_partitions(context, session, request, version).await;
    if let ResponseKind::CreatePartitions(created) = &mut response {
        for topic in &created.results {
            if topic.error_code != 0 {
                gate.refund(&topic.name.0);
            }
        }
        created.results.extend(refused.into_iter().map(|name| {
            CreatePartitionsTopicResult::default()
                .with_name(name)
                .with_error_code(ErrorCode::THROTTLING_QUOTA_EXCEEDED.code())
                .with_error_message(Some(super::str_bytes(MESSAGE)))
        }));
        created.throttle_time_ms = created.throttle_time_ms.max(gate.throttle_ms());
    }
    response
}

pub(super) async fn delete_topics(
    context: &BrokerContext,
    session: &Session,
    client_id: &str,
    mut request: DeleteTopicsRequest,
    version: i16,
) -> ResponseKind {
    let Some(mut gate) = Gate::new(context, session, client_id, version >= DELETE_TOPICS_STRICT)
    else {
        return authorize::delete_topics(context, session, request, version).await;
    };
    let image = context.metadata.image();
    let partitions_of = |name: Option<&str>, id: Uuid| -> f64 {
        let topic = match name {
            Some(name) => image.topic_by_name(name),
            None => image.topic_by_id(id),
        };
        topic.map_or(0.0, |t| t.partitions.len() as f64)
    };
    let key = |name: Option<&str>, id: Uuid| name.map_or_else(|| id.to_string(), str::to_string);
    // (name, id) of refused topics.
    let mut refused: Vec<(Option<strom_protocol::messages::TopicName>, Uuid)> = Vec::new();
    let mut names = Vec::with_capacity(request.topic_names.len());
    for name in std::mem::take(&mut request.topic_names) {
        let permits = partitions_of(Some(&name.0), Uuid::nil());
        if gate.admit(key(Some(&name.0), Uuid::nil()), permits) {
            names.push(name);
        } else {
            refused.push((Some(name), Uuid::nil()));
        }
    }
    request.topic_names = names;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in std::mem::take(&mut request.topics) {
        let name = topic.name.as_ref().map(|n| n.0.to_string());
        let permits = partitions_of(name.as_deref(), topic.topic_id);
        if gate.admit(key(name.as_deref(), topic.topic_id), permits) {
            topics.push(topic);
        } else {
            refused.push((topic.name, topic.topic_id));
        }
    }
    drop(image);
    request.topics = topics;
    let mut response = authorize::delete_topics(context, session, request, version).await;
    if let ResponseKind::DeleteTopics(deleted) = &mut response {
        for topic in &deleted.responses {
            if topic.error_code != 0 {
                let name = topic.name.as_ref().map(|n| n.0.to_string());
                gate.refund(&key(name.as_deref(), topic.topic_id));
            }
        }
        deleted
            .responses
            .extend(refused.into_iter().map(|(name, topic_id)| {
                DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(if version >= 6 { topic_id } else { Uuid::nil() })
                    .with_error_code(ErrorCode::THROTTLING_QUOTA_EXCEEDED.code())
                    .with_error_message(Some(super::str_bytes(MESSAGE)))
            }));
        deleted.throttle_time_ms = deleted.throttle_time_ms.max(gate.throttle_ms());
    }
    response
}
