//! CreateTopics, DeleteTopics and CreatePartitions.

use crate::config_defs::describe_topic_configs;
use crate::controller::configs::check_new_topic_configs;
use crate::controller::errors::{ApiError, ErrorCode};
use crate::controller::messages::{
    ControllerReply, CreatableTopic, CreatePartitionsRequest, CreatePartitionsResult,
    CreatePartitionsTopic, CreateTopicResult, CreateTopicsRequest, DeleteTopicResult,
    DeleteTopicsRequest, TopicRef,
};
use crate::controller::names::{validate_topic_name, TopicNames};
use crate::controller::placement::{assign_replicas, check_manual_replicas, new_partition_record};
use crate::controller::staged::Staged;
use crate::controller::{Controller, Handled};
use crate::image::{MetadataImage, TopicImage};
use crate::records::{ConfigResource, MetadataRecord};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Tries before giving up on finding an unused topic id (a collision is astronomically
/// unlikely with a good source; the bound keeps a broken source from spinning).
const TOPIC_ID_ATTEMPTS_MAX: usize = 16;

/// Ids Kafka never gives a topic: zero, the metadata log's own id (`Uuid(0, 1)`), and ids
/// whose base64 text starts with `-`, which command-line tools mistake for an option.
fn is_reserved_topic_id(id: Uuid) -> bool {
    let first_sextet = id.as_bytes().first().map_or(0, |b| b >> 2);
    id.is_nil() || id == Uuid::from_u128(1) || first_sextet == 62
}

/// (replicas, initial ISR) of each new partition, in partition order.
type Placement = Vec<(Vec<i32>, Vec<i32>)>;

/// Partitions one CreatePartitions request may still create.
struct Budget {
    partitions_left: usize,
}

impl Budget {
    fn take(&mut self, partitions: i32) -> Result<(), ApiError> {
        let wanted = usize::try_from(partitions).unwrap_or(usize::MAX);
        if wanted > self.partitions_left {
            return Err(too_many_partitions());
        }
        self.partitions_left -= wanted;
        Ok(())
    }
}

fn too_many_partitions() -> ApiError {
    ApiError::new(
        ErrorCode::PolicyViolation,
        "Excessively large number of partitions per request.",
    )
}

impl Controller {
    pub(crate) fn create_topics(
        &mut self,
        image: &MetadataImage,
        request: CreateTopicsRequest,
    ) -> Handled {
        let mut staged = Staged::new(image);
        let mut names = TopicNames::new(image);
        // Like Kafka, an upper bound on the partitions of the whole request fails it all
        // before anything is allocated.
        let too_many = self.requested_partitions(&request) > self.config.partitions_per_request_max;
        let duplicates = duplicates(request.topics.iter().map(|t| t.name.clone()));
        let mut answered = BTreeSet::new();
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            if !answered.insert(topic.name.clone()) {
                continue;
            }
            let outcome = if too_many {
                Err(too_many_partitions())
            } else if duplicates.contains(&topic.name) {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic name.",
                ))
            } else {
                self.create_topic(&mut staged, &mut names, topic)
            };
            results.push(outcome.unwrap_or_else(|error| failed_topic(&topic.name, error)));
        }
        Ok((
            staged.finish(request.validate_only)?,
            ControllerReply::CreateTopics(results),
        ))
    }

    fn requested_partitions(&self, request: &CreateTopicsRequest) -> usize {
        let per_topic = |t: &CreatableTopic| match (t.assignments.len(), t.num_partitions) {
            (0, -1) => usize::try_from(self.config.num_partitions).unwrap_or(0),
            (0, n) => usize::try_from(n).unwrap_or(0),
            (assigned, _) => assigned,
        };
        request
            .topics
            .iter()
            .map(per_topic)
            .fold(0, usize::saturating_add)
    }

    fn create_topic(
        &mut self,
        staged: &mut Staged,
        names: &mut TopicNames,
        topic: &CreatableTopic,
    ) -> Result<CreateTopicResult, ApiError> {
        validate_topic_name(&topic.name)?;
        names.check_new(&staged.image, &topic.name)?;
        let configs = check_new_topic_configs(&topic.configs)?;
        let topic_id = self.unused_topic_id(&staged.image, names)?;
        let partitions = self.placement(&staged.image, topic, topic_id)?;

        let num_partitions = partitions.len() as i32;
        let replication_factor = partitions
            .first()
            .map_or(0, |(replicas, _)| replicas.len() as i16);
        let mut records = vec![MetadataRecord::Topic {
            name: topic.name.clone(),
            topic_id,
        }];
        for (partition, (replicas, isr)) in partitions.into_iter().enumerate() {
            records.push(new_partition_record(
                topic_id,
                partition as i32,
                replicas,
                isr,
            ));
        }
        for (key, value) in &configs {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::topic(topic.name.clone()),
                key: key.clone(),
                value: Some(value.clone()),
            });
        }
        staged.push(records);
        names.add(&topic.name, topic_id);
        Ok(CreateTopicResult {
            name: topic.name.clone(),
            topic_id,
            error: None,
            num_partitions,
            replication_factor,
            configs: describe_topic_configs(|key| configs.get(key).map(String::as_str)),
        })
    }

    fn unused_topic_id(
        &mut self,
        image: &MetadataImage,
        names: &TopicNames,
    ) -> Result<Uuid, ApiError> {
        for _ in 0..TOPIC_ID_ATTEMPTS_MAX {
            let id = self.ids.next_topic_id();
            if !is_reserved_topic_id(id) && !names.is_id_taken(image, id) {
                return Ok(id);
            }
        }
        Err(ApiError::new(
            ErrorCode::UnknownServerError,
            "Unable to generate an unused topic id.",
        ))
    }

    /// (replicas, initial ISR) of every partition of a new topic.
    fn placement(
        &self,
        image: &MetadataImage,
        topic: &CreatableTopic,
        topic_id: Uuid,
    ) -> Result<Placement, ApiError> {
        if !topic.assignments.is_empty() {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "A manual partition assignment was specified, but numPartitions or replicationFactor was not \
                     set to -1.",
                ));
            }
            return manual_placement(image, &topic.assignments);
        }
        let num_partitions = match topic.num_partitions {
            -1 => self.config.num_partitions,
            n => n,
        };
        if num_partitions <= 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidPartitions,
                "Number of partitions was set to an invalid non-positive value.",
            ));
        }
        let replication_factor = match topic.replication_factor {
            -1 => self.config.default_replication_factor,
            n => n,
        };
        if replication_factor <= 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            ));
        }
        let assigned = assign_replicas(
            image,
            0,
            num_partitions,
            replication_factor as usize,
            topic_id,
        )?;
        Ok(assigned
            .into_iter()
            .map(|replicas| (replicas.clone(), replicas))
            .collect())
    }

    pub(crate) fn delete_topics(
        &mut self,
        image: &MetadataImage,
        request: DeleteTopicsRequest,
    ) -> Handled {
        let duplicates = duplicates(request.topics.iter().cloned());
        let mut staged = Staged::new(image);
        let mut deleted = BTreeSet::new();
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let found = if !self.config.delete_topic_enable {
                Err(ApiError::new(
                    ErrorCode::TopicDeletionDisabled,
                    "Topic deletion is disabled.",
                ))
            } else if duplicates.contains(&topic) {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic in request.",
                ))
            } else {
                find_topic(image, &topic)
            };
            let result = match found {
                Ok(t) => {
                    if deleted.insert(t.topic_id) {
                        staged.push(vec![MetadataRecord::RemoveTopic {
                            topic_id: t.topic_id,
                        }]);
                    }
                    DeleteTopicResult {
                        topic,
                        name: Some(t.name.clone()),
                        topic_id: t.topic_id,
                        error: None,
                    }
                }
                Err(error) => DeleteTopicResult {
                    topic,
                    name: None,
                    topic_id: Uuid::nil(),
                    error: Some(error),
                },
            };
            results.push(result);
        }
        Ok((
            staged.finish(false)?,
            ControllerReply::DeleteTopics(results),
        ))
    }

    pub(crate) fn create_partitions(
        &mut self,
        image: &MetadataImage,
        request: CreatePartitionsRequest,
    ) -> Handled {
        let mut staged = Staged::new(image);
        let mut budget = Budget {
            partitions_left: self.config.partitions_per_request_max,
        };
        let duplicates = duplicates(request.topics.iter().map(|t| t.name.clone()));
        let mut answered = BTreeSet::new();
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            if !answered.insert(topic.name.clone()) {
                continue;
            }
            let error = if duplicates.contains(&topic.name) {
                Some(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic name.",
                ))
            } else {
                add_partitions(&mut staged, &mut budget, topic).err()
            };
            results.push(CreatePartitionsResult {
                name: topic.name.clone(),
                error,
            });
        }
        Ok((
            staged.finish(request.validate_only)?,
            ControllerReply::CreatePartitions(results),
        ))
    }
}

fn failed_topic(name: &str, error: ApiError) -> CreateTopicResult {
    CreateTopicResult {
        name: name.to_owned(),
        topic_id: Uuid::nil(),
        error: Some(error),
        num_partitions: -1,
        replication_factor: -1,
        configs: Vec::new(),
    }
}

fn duplicates<T: Ord>(items: impl Iterator<Item = T>) -> BTreeSet<T> {
    let mut counts: BTreeMap<T, usize> = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(item, _)| item)
        .collect()
}

fn find_topic<'a>(image: &'a MetadataImage, topic: &TopicRef) -> Result<&'a TopicImage, ApiError> {
    match topic {
        TopicRef::Name(name) => image.topic_by_name(name).ok_or_else(unknown_topic),
        TopicRef::Id(id) if id.is_nil() => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "Neither topic name nor id were specified.",
        )),
        TopicRef::Id(id) => image.topic_by_id(*id).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTopicId,
                "This server does not host this topic ID.",
            )
        }),
    }
}

pub(crate) fn unknown_topic() -> ApiError {
    ApiError::new(
        ErrorCode::UnknownTopicOrPartition,
        "This server does not host this topic-partition.",
    )
}

fn manual_placement(
    image: &MetadataImage,
    assignments: &[(i32, Vec<i32>)],
) -> Result<Placement, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, message);
    let mut sorted: Vec<&(i32, Vec<i32>)> = assignments.iter().collect();
    sorted.sort_by_key(|(partition, _)| *partition);
    let replication_factor = sorted.first().map_or(0, |(_, replicas)| replicas.len());
    let mut out = Vec::with_capacity(sorted.len());
    for (expected, (partition, replicas)) in sorted.into_iter().enumerate() {
        if *partition != expected as i32 {
            return Err(invalid(format!(
                "Partitions should be a consecutive 0-based integer sequence, but partition {expected} is missing \
                 or partition {partition} is repeated."
            )));
        }
        if replicas.len() != replication_factor {
            return Err(invalid(
                "All partitions in the manual partition assignment must have the same number of replicas.".to_owned(),
            ));
        }
        let isr = check_manual_replicas(image, *partition, replicas)?;
        out.push((replicas.clone(), isr));
    }
    Ok(out)
}

fn add_partitions(
    staged: &mut Staged,
    budget: &mut Budget,
    topic: &CreatePartitionsTopic,
) -> Result<(), ApiError> {
    let existing = staged
        .image
        .topic_by_name(&topic.name)
        .ok_or_else(unknown_topic)?;
    let topic_id = existing.topic_id;
    let current = existing.partitions.len() as i32;
    let replication_factor = existing.replication_factor();
    if topic.count < current {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            format!(
                "The topic {} currently has {current} partition(s); {} would not be an increase.",
                topic.name, topic.count
            ),
        ));
    }
    if topic.count == current {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    let added = topic.count - current;
    budget.take(added)?;
    let partitions = match &topic.assignments {
        Some(assignments) => manual_new_partitions(
            &staged.image,
            assignments,
            current,
            added,
            replication_factor,
        )?,
        None => {
            let assigned =
                assign_replicas(&staged.image, current, added, replication_factor, topic_id)?;
            assigned
                .into_iter()
                .map(|replicas| (replicas.clone(), replicas))
                .collect()
        }
    };
    let records = partitions
        .into_iter()
        .zip(current..)
        .map(|((replicas, isr), partition)| {
            new_partition_record(topic_id, partition, replicas, isr)
        })
        .collect();
    staged.push(records);
    Ok(())
}

fn manual_new_partitions(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
    current: i32,
    added: i32,
    replication_factor: usize,
) -> Result<Placement, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, message);
    if assignments.len() != added as usize {
        return Err(invalid(format!(
            "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    let mut out = Vec::with_capacity(assignments.len());
    for (replicas, partition) in assignments.iter().zip(current..) {
        if replicas.len() != replication_factor {
            return Err(invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not \
                 consistent with previous partitions, which have {replication_factor} replica(s).",
                replicas.len()
            )));
        }
        let isr = check_manual_replicas(image, partition, replicas)?;
        out.push((replicas.clone(), isr));
    }
    Ok(out)
}
