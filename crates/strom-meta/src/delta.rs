//! What one `MetadataImage::apply` changed, for the broker to react to (create or delete
//! partition logs, become leader or follower, reload configs).

use crate::image::{MetadataImage, PartitionImage, TopicIdPartition, TopicImage};
use crate::records::ConfigResource;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Changes between the image `apply` was called on and the image it returned.
///
/// A topic created and deleted within the same delta appears in neither set. Partitions of
/// a deleted topic appear only under `topics_deleted`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    pub topics_created: BTreeSet<Uuid>,
    /// Deleted topics as they were before the delta, so their partitions can be found.
    pub topics_deleted: BTreeMap<Uuid, TopicImage>,
    /// Partitions that did not exist before the delta.
    pub partitions_added: BTreeSet<TopicIdPartition>,
    /// Partitions that existed before and changed, with their state before the delta.
    pub partitions_changed: BTreeMap<TopicIdPartition, PartitionImage>,
    /// Keys set or deleted per resource.
    pub configs_changed: BTreeMap<ConfigResource, BTreeSet<String>>,
    /// Brokers registered, unregistered, fenced or unfenced.
    pub brokers_changed: BTreeSet<i32>,
    pub producer_ids_changed: bool,
    /// ACLs added or removed.
    pub acls_changed: bool,
    /// Client quotas set or removed.
    pub quotas_changed: bool,
    /// A feature level finalized (UpdateFeatures).
    pub features_changed: bool,
}

/// What a delta means for the replicas one broker hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalReplicaChanges {
    /// Replicas this broker must delete (topic deleted or broker removed from replicas),
    /// with the topic name they were created under.
    pub deletes: Vec<(TopicIdPartition, String)>,
    /// Replicas this broker now leads (new, or leader or leader epoch changed).
    pub leaders: Vec<TopicIdPartition>,
    /// Replicas this broker now follows (new, or leader or leader epoch changed).
    pub followers: Vec<TopicIdPartition>,
}

impl MetadataDelta {
    pub fn is_empty(&self) -> bool {
        *self == MetadataDelta::default()
    }

    pub(crate) fn note_topic_created(&mut self, topic_id: Uuid) {
        self.topics_created.insert(topic_id);
    }

    pub(crate) fn note_topic_deleted(&mut self, before: Option<TopicImage>, topic_id: Uuid) {
        self.partitions_added.retain(|tp| tp.topic_id != topic_id);
        self.partitions_changed
            .retain(|tp, _| tp.topic_id != topic_id);
        let created_here = self.topics_created.remove(&topic_id);
        if let (false, Some(before)) = (created_here, before) {
            self.topics_deleted.insert(topic_id, before);
        }
    }

    /// `before` is the partition's state before this record; only the first one is kept.
    pub(crate) fn note_partition(&mut self, tp: TopicIdPartition, before: Option<PartitionImage>) {
        if self.partitions_added.contains(&tp) || self.partitions_changed.contains_key(&tp) {
            return;
        }
        match before {
            None => {
                self.partitions_added.insert(tp);
            }
            Some(before) => {
                self.partitions_changed.insert(tp, before);
            }
        }
    }

    pub(crate) fn note_config(&mut self, resource: &ConfigResource, key: &str) {
        self.configs_changed
            .entry(resource.clone())
            .or_default()
            .insert(key.to_owned());
    }

    /// The replica-level work for `broker_id`, given the image this delta produced.
    pub fn local_changes(&self, broker_id: i32, image: &MetadataImage) -> LocalReplicaChanges {
        let mut out = LocalReplicaChanges::default();
        for (topic_id, topic) in &self.topics_deleted {
            for (partition, p) in &topic.partitions {
                if p.replicas.contains(&broker_id) {
                    let tp = TopicIdPartition {
                        topic_id: *topic_id,
                        partition: *partition,
                    };
                    out.deletes.push((tp, topic.name.clone()));
                }
            }
        }
        for tp in &self.partitions_added {
            if let Some(p) = image.partition(tp.topic_id, tp.partition) {
                classify(&mut out, *tp, p, broker_id);
            }
        }
        for (tp, before) in &self.partitions_changed {
            let Some(after) = image.partition(tp.topic_id, tp.partition) else {
                continue;
            };
            let hosted_before = before.replicas.contains(&broker_id);
            if hosted_before && !after.replicas.contains(&broker_id) {
                let name = image
                    .topic_by_id(tp.topic_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                out.deletes.push((*tp, name));
            } else if !hosted_before
                || after.leader != before.leader
                || after.leader_epoch != before.leader_epoch
            {
                classify(&mut out, *tp, after, broker_id);
            }
        }
        out
    }
}

fn classify(
    out: &mut LocalReplicaChanges,
    tp: TopicIdPartition,
    p: &PartitionImage,
    broker_id: i32,
) {
    if p.leader == broker_id {
        out.leaders.push(tp);
    } else if p.replicas.contains(&broker_id) {
        out.followers.push(tp);
    }
}
