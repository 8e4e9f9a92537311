//! Applying records to an image: all-or-nothing, checking each record against the state it
//! lands on so that a corrupt or misordered log is refused rather than half-applied.

use crate::delta::MetadataDelta;
use crate::error::MetaError;
use crate::image::{
    BrokerRegistration, DelegationTokenImage, ImageInner, MetadataImage, PartitionImage,
    ScramCredentialImage, TopicIdPartition, TopicImage,
};
use crate::records::{ConfigResource, MetadataRecord, NO_LEADER};
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

impl MetadataImage {
    /// Applies `records` in order. On error nothing changes: `self` is untouched and no
    /// partial image is returned.
    pub fn apply(
        &self,
        records: &[MetadataRecord],
    ) -> Result<(MetadataImage, MetadataDelta), MetaError> {
        let mut inner = ImageInner::clone(&self.inner);
        let mut delta = MetadataDelta::default();
        for (index, record) in records.iter().enumerate() {
            apply_record(&mut inner, &mut delta, record).map_err(|e| {
                MetaError::invalid(format!("record {index} (type {}): {e}", record.type_id()))
            })?;
        }
        Ok((MetadataImage::from_inner(inner), delta))
    }
}

fn apply_record(
    inner: &mut ImageInner,
    delta: &mut MetadataDelta,
    record: &MetadataRecord,
) -> Result<(), String> {
    match record {
        MetadataRecord::RegisterBroker {
            broker_id,
            incarnation_id,
            epoch,
            endpoints,
            rack,
            fenced,
        } => {
            let registration = BrokerRegistration {
                broker_id: *broker_id,
                incarnation_id: *incarnation_id,
                epoch: *epoch,
                endpoints: endpoints.clone(),
                rack: rack.clone(),
                fenced: *fenced,
                in_controlled_shutdown: false,
            };
            register_broker(inner, registration)?;
            // A new incarnation reports its offline replicas afresh.
            clear_offline_replicas(inner, *broker_id);
            delta.brokers_changed.insert(*broker_id);
        }
        MetadataRecord::UnregisterBroker { broker_id, epoch } => {
            checked_broker(inner, *broker_id, *epoch)?;
            Arc::make_mut(&mut inner.brokers).remove(broker_id);
            clear_offline_replicas(inner, *broker_id);
            delta.brokers_changed.insert(*broker_id);
        }
        MetadataRecord::FenceBroker { broker_id, epoch } => {
            set_fenced(inner, delta, *broker_id, *epoch, true)?
        }
        MetadataRecord::UnfenceBroker { broker_id, epoch } => {
            set_fenced(inner, delta, *broker_id, *epoch, false)?
        }
        MetadataRecord::BrokerInControlledShutdown { broker_id, epoch } => {
            let broker = checked_broker(inner, *broker_id, *epoch)?;
            if broker.fenced {
                return Err(format!("broker {broker_id} is fenced"));
            }
            broker.in_controlled_shutdown = true;
            delta.brokers_changed.insert(*broker_id);
        }
        MetadataRecord::BrokerReplicasOffline {
            broker_id,
            epoch,
            replicas,
        } => {
            checked_broker(inner, *broker_id, *epoch)?;
            let set: BTreeSet<TopicIdPartition> = replicas
                .iter()
                .map(|(topic_id, partition)| TopicIdPartition {
                    topic_id: *topic_id,
                    partition: *partition,
                })
                .collect();
            if set.len() != replicas.len() {
                return Err(format!("broker {broker_id}: a replica listed twice"));
            }
            let map = Arc::make_mut(&mut inner.offline_replicas);
            if set.is_empty() {
                map.remove(broker_id);
            } else {
                map.insert(*broker_id, set);
            }
            delta.brokers_changed.insert(*broker_id);
        }
        MetadataRecord::Topic { name, topic_id } => {
            add_topic(inner, name, *topic_id)?;
            delta.note_topic_created(*topic_id);
        }
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
            adding_replicas,
            removing_replicas,
        } => {
            let state = PartitionImage {
                replicas: replicas.clone(),
                isr: isr.clone(),
                leader: *leader,
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
                adding_replicas: adding_replicas.clone(),
                removing_replicas: removing_replicas.clone(),
            };
            put_partition(inner, delta, *topic_id, *partition, |_| Ok(state))?;
        }
        MetadataRecord::PartitionChange {
            topic_id,
            partition,
            isr,
            leader,
            replicas,
            adding_replicas,
            removing_replicas,
        } => {
            put_partition(inner, delta, *topic_id, *partition, |before| {
                let before =
                    before.ok_or_else(|| format!("partition {partition} does not exist"))?;
                let mut after =
                    changed_partition(before, isr.as_ref(), *leader, replicas.as_ref())?;
                if let Some(adding) = adding_replicas {
                    after.adding_replicas = adding.clone();
                }
                if let Some(removing) = removing_replicas {
                    after.removing_replicas = removing.clone();
                }
                Ok(after)
            })?;
        }
        MetadataRecord::RemoveTopic { topic_id } => remove_topic(inner, delta, *topic_id)?,
        MetadataRecord::Config {
            resource,
            key,
            value,
        } => {
            set_config(inner, resource, key, value.as_deref());
            delta.note_config(resource, key);
        }
        MetadataRecord::UserScramCredential {
            name,
            mechanism,
            salt,
            stored_key,
            server_key,
            iterations,
        } => {
            inner.scram_ever_written = true;
            Arc::make_mut(&mut inner.scram).insert(
                (name.clone(), *mechanism),
                ScramCredentialImage {
                    salt: salt.clone(),
                    stored_key: stored_key.clone(),
                    server_key: server_key.clone(),
                    iterations: *iterations,
                },
            );
        }
        MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
            inner.scram_ever_written = true;
            // Removing what is not there is refused, as Kafka's ScramControlManager does.
            if Arc::make_mut(&mut inner.scram)
                .remove(&(name.clone(), *mechanism))
                .is_none()
            {
                return Err(format!(
                    "no SCRAM credential of user {name:?} mechanism {mechanism}"
                ));
            }
        }
        MetadataRecord::DelegationToken {
            token_id,
            owner,
            requester,
            renewers,
            issue_timestamp_ms,
            max_timestamp_ms,
            expiry_timestamp_ms,
        } => {
            if token_id.is_empty() {
                return Err("delegation token with an empty id".to_string());
            }
            Arc::make_mut(&mut inner.delegation_tokens).insert(
                token_id.clone(),
                DelegationTokenImage {
                    owner: owner.clone(),
                    requester: requester.clone(),
                    renewers: renewers.clone(),
                    issue_timestamp_ms: *issue_timestamp_ms,
                    max_timestamp_ms: *max_timestamp_ms,
                    expiry_timestamp_ms: *expiry_timestamp_ms,
                },
            );
        }
        MetadataRecord::RemoveDelegationToken { token_id } => {
            // Removing a token that is not there means a misordered or damaged log.
            if Arc::make_mut(&mut inner.delegation_tokens)
                .remove(token_id)
                .is_none()
            {
                return Err(format!("no delegation token {token_id:?} to remove"));
            }
        }
        MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id,
        } => {
            if *next_producer_id <= inner.producer_ids.next_producer_id {
                return Err(format!(
                    "next producer id {next_producer_id} does not exceed the current {}",
                    inner.producer_ids.next_producer_id
                ));
            }
            inner.producer_ids.next_producer_id = *next_producer_id;
            inner.producer_ids.last_broker_id = *broker_id;
            inner.producer_ids.last_broker_epoch = *broker_epoch;
            delta.producer_ids_changed = true;
        }
        MetadataRecord::FeatureLevel { name, level, epoch } => {
            if *level < 0 || *epoch < 1 || name.is_empty() {
                return Err(format!(
                    "feature {name:?} at level {level}, epoch {epoch}: a level is at least 0 \
                     and an epoch at least 1"
                ));
            }
            Arc::make_mut(&mut inner.feature_levels).insert(name.clone(), (*level, *epoch));
            delta.features_changed = true;
        }
        MetadataRecord::AccessControlEntry { id, acl } => {
            // Kafka's controller never reuses an id; a repeated one is a damaged log.
            if inner.acls.contains_key(id) {
                return Err(format!("ACL id {id} already exists"));
            }
            Arc::make_mut(&mut inner.acls).insert(*id, acl.clone());
            delta.acls_changed = true;
        }
        MetadataRecord::ClientQuota { entity, key, value } => {
            let quotas = Arc::make_mut(&mut inner.client_quotas);
            match value {
                Some(value) => {
                    quotas
                        .entry(entity.clone())
                        .or_default()
                        .insert(key.clone(), *value);
                }
                None => {
                    if let Some(values) = quotas.get_mut(entity) {
                        values.remove(key);
                        if values.is_empty() {
                            quotas.remove(entity);
                        }
                    }
                }
            }
            delta.quotas_changed = true;
        }
        MetadataRecord::RemoveAccessControlEntry { id } => {
            if Arc::make_mut(&mut inner.acls).remove(id).is_none() {
                return Err(format!("no ACL with id {id} to remove"));
            }
            delta.acls_changed = true;
        }
    }
    Ok(())
}

fn register_broker(inner: &mut ImageInner, registration: BrokerRegistration) -> Result<(), String> {
    if registration.broker_id < 0 {
        return Err(format!("negative broker id {}", registration.broker_id));
    }
    if let Some(existing) = inner.brokers.get(&registration.broker_id) {
        if registration.epoch <= existing.epoch {
            return Err(format!(
                "broker {} epoch {} does not exceed the registered epoch {}",
                registration.broker_id, registration.epoch, existing.epoch
            ));
        }
    }
    inner.broker_epoch_high = inner.broker_epoch_high.max(registration.epoch);
    Arc::make_mut(&mut inner.brokers).insert(registration.broker_id, registration);
    Ok(())
}

fn clear_offline_replicas(inner: &mut ImageInner, broker_id: i32) {
    if inner.offline_replicas.contains_key(&broker_id) {
        Arc::make_mut(&mut inner.offline_replicas).remove(&broker_id);
    }
}

fn checked_broker(
    inner: &mut ImageInner,
    broker_id: i32,
    epoch: i64,
) -> Result<&mut BrokerRegistration, String> {
    let broker = Arc::make_mut(&mut inner.brokers)
        .get_mut(&broker_id)
        .ok_or_else(|| format!("broker {broker_id} is not registered"))?;
    if broker.epoch != epoch {
        return Err(format!(
            "broker {broker_id} has epoch {}, not {epoch}",
            broker.epoch
        ));
    }
    Ok(broker)
}

fn set_fenced(
    inner: &mut ImageInner,
    delta: &mut MetadataDelta,
    broker_id: i32,
    epoch: i64,
    fenced: bool,
) -> Result<(), String> {
    let broker = checked_broker(inner, broker_id, epoch)?;
    broker.fenced = fenced;
    // A fenced broker's controlled shutdown is over: fencing is its end.
    broker.in_controlled_shutdown = false;
    delta.brokers_changed.insert(broker_id);
    Ok(())
}

fn add_topic(inner: &mut ImageInner, name: &str, topic_id: Uuid) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty topic name".to_owned());
    }
    if topic_id.is_nil() {
        return Err(format!("topic {name} has the zero topic id"));
    }
    if inner.topic_ids_by_name.contains_key(name) {
        return Err(format!("topic {name} already exists"));
    }
    if inner.topics.contains_key(&topic_id) {
        return Err(format!("topic id {topic_id} already exists"));
    }
    Arc::make_mut(&mut inner.topic_ids_by_name).insert(Arc::from(name), topic_id);
    let topic = TopicImage {
        name: name.to_owned(),
        topic_id,
        partitions: Default::default(),
    };
    Arc::make_mut(&mut inner.topics).insert(topic_id, Arc::new(topic));
    Ok(())
}

fn remove_topic(
    inner: &mut ImageInner,
    delta: &mut MetadataDelta,
    topic_id: Uuid,
) -> Result<(), String> {
    if !inner.topics.contains_key(&topic_id) {
        return Err(format!("topic id {topic_id} does not exist"));
    }
    let topic = Arc::make_mut(&mut inner.topics)
        .remove(&topic_id)
        .ok_or_else(|| format!("topic id {topic_id} does not exist"))?;
    Arc::make_mut(&mut inner.topic_ids_by_name).remove(topic.name.as_str());
    if inner
        .offline_replicas
        .values()
        .any(|set| set.iter().any(|tp| tp.topic_id == topic_id))
    {
        let map = Arc::make_mut(&mut inner.offline_replicas);
        for set in map.values_mut() {
            set.retain(|tp| tp.topic_id != topic_id);
        }
        map.retain(|_, set| !set.is_empty());
    }
    let resource = ConfigResource::topic(topic.name.clone());
    let had_configs = inner.configs.contains_key(&resource);
    if let Some(keys) = had_configs
        .then(|| Arc::make_mut(&mut inner.configs).remove(&resource))
        .flatten()
    {
        for key in keys.keys() {
            delta.note_config(&resource, key);
        }
    }
    delta.note_topic_deleted(Some(TopicImage::clone(&topic)), topic_id);
    Ok(())
}

fn put_partition(
    inner: &mut ImageInner,
    delta: &mut MetadataDelta,
    topic_id: Uuid,
    partition: i32,
    next: impl FnOnce(Option<&PartitionImage>) -> Result<PartitionImage, String>,
) -> Result<(), String> {
    if partition < 0 {
        return Err(format!("negative partition {partition}"));
    }
    let topic = Arc::make_mut(&mut inner.topics)
        .get_mut(&topic_id)
        .ok_or_else(|| format!("topic id {topic_id} does not exist"))?;
    let before = topic.partitions.get(&partition);
    let after = next(before)?;
    check_partition(&after)?;
    let before = before.cloned();
    Arc::make_mut(topic).partitions.insert(partition, after);
    delta.note_partition(
        TopicIdPartition {
            topic_id,
            partition,
        },
        before,
    );
    Ok(())
}

fn changed_partition(
    before: &PartitionImage,
    isr: Option<&Vec<i32>>,
    leader: Option<i32>,
    replicas: Option<&Vec<i32>>,
) -> Result<PartitionImage, String> {
    let mut after = before.clone();
    if let Some(isr) = isr {
        after.isr = isr.clone();
    }
    if let Some(replicas) = replicas {
        after.replicas = replicas.clone();
    }
    if let Some(leader) = leader {
        after.leader = leader;
        after.leader_epoch = before
            .leader_epoch
            .checked_add(1)
            .ok_or("leader epoch overflow")?;
    }
    after.partition_epoch = before
        .partition_epoch
        .checked_add(1)
        .ok_or("partition epoch overflow")?;
    Ok(after)
}

/// Structural invariants of a partition: replicas distinct and non-negative, ISR a subset
/// of the replicas, the leader (if any) in the ISR; adding and removing replicas distinct,
/// disjoint, among the replicas, and leaving at least one replica that stays.
fn check_partition(p: &PartitionImage) -> Result<(), String> {
    if p.replicas.is_empty() {
        return Err("partition has no replicas".to_owned());
    }
    let replicas: BTreeSet<i32> = p.replicas.iter().copied().collect();
    if replicas.len() != p.replicas.len() || replicas.iter().any(|r| *r < 0) {
        return Err(format!("invalid replica list {:?}", p.replicas));
    }
    let isr: BTreeSet<i32> = p.isr.iter().copied().collect();
    if isr.len() != p.isr.len() || !isr.is_subset(&replicas) {
        return Err(format!(
            "ISR {:?} is not a set of replicas {:?}",
            p.isr, p.replicas
        ));
    }
    if p.leader != NO_LEADER && !isr.contains(&p.leader) {
        return Err(format!("leader {} is not in the ISR {:?}", p.leader, p.isr));
    }
    if p.isr.is_empty() && p.leader != NO_LEADER {
        return Err("a partition with an empty ISR cannot have a leader".to_owned());
    }
    if p.leader_epoch < 0 || p.partition_epoch < 0 {
        return Err("negative epoch".to_owned());
    }
    let adding: BTreeSet<i32> = p.adding_replicas.iter().copied().collect();
    let removing: BTreeSet<i32> = p.removing_replicas.iter().copied().collect();
    if adding.len() != p.adding_replicas.len()
        || removing.len() != p.removing_replicas.len()
        || !adding.is_subset(&replicas)
        || !removing.is_subset(&replicas)
        || !adding.is_disjoint(&removing)
        || removing.len() >= replicas.len()
    {
        return Err(format!(
            "reassignment adding {:?} removing {:?} does not fit replicas {:?}",
            p.adding_replicas, p.removing_replicas, p.replicas
        ));
    }
    Ok(())
}

fn set_config(inner: &mut ImageInner, resource: &ConfigResource, key: &str, value: Option<&str>) {
    match value {
        Some(value) => {
            Arc::make_mut(&mut inner.configs)
                .entry(resource.clone())
                .or_default()
                .insert(key.to_owned(), value.to_owned());
        }
        None => {
            if !inner
                .configs
                .get(resource)
                .is_some_and(|keys| keys.contains_key(key))
            {
                return;
            }
            let configs = Arc::make_mut(&mut inner.configs);
            if let Some(keys) = configs.get_mut(resource) {
                keys.remove(key);
                // Empty maps are dropped so that equal states compare equal.
                if keys.is_empty() {
                    configs.remove(resource);
                }
            }
        }
    }
}
