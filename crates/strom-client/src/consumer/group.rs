//! Classic consumer-group membership: JoinGroup (with the KIP-394 member-id round trip),
//! range assignment when this member leads, SyncGroup, a heartbeat task, LeaveGroup.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    SyncGroupRequest,
};
use strom_protocol::ErrorCode;
use tokio::task::JoinHandle;

use super::assignor::{GroupAssignor, MemberSubscription, RangeAssignor};
use super::protocol::{
    decode_assignment_with, decode_subscription, encode_assignment_with, encode_subscription,
    Subscription,
};
use crate::cluster::{str_bytes, Cluster, Target};
use crate::config::ConsumerConfig;
use crate::error::{ClientError, Result};
use crate::types::TopicPartition;

const PROTOCOL_TYPE: &str = "consumer";
/// Join/sync rounds tried before giving up (each bounded by the rebalance timeout).
const JOIN_ROUNDS_MAX: u32 = 50;
/// Extra time JoinGroup may take beyond the rebalance timeout (as Kafka's client allows).
const JOIN_GRACE_MS: u64 = 5_000;

/// This consumer's place in its group.
pub(crate) struct Membership {
    group_id: String,
    member_id: String,
    generation: i32,
    rejoin: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
    assignor: Arc<dyn GroupAssignor>,
    /// The user data of the last assignment this member received.
    assignment_user_data: Option<bytes::Bytes>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Membership {
    pub fn new(group_id: String) -> Self {
        Membership {
            group_id,
            member_id: String::new(),
            generation: -1,
            rejoin: Arc::new(AtomicBool::new(true)),
            heartbeat: None,
            assignor: Arc::new(RangeAssignor),
            assignment_user_data: None,
        }
    }

    /// Replaces the assignor (effective from the next join).
    pub fn set_assignor(&mut self, assignor: Arc<dyn GroupAssignor>) {
        self.assignor = assignor;
    }

    /// The user data of the last assignment received.
    pub fn assignment_user_data(&self) -> Option<&bytes::Bytes> {
        self.assignment_user_data.as_ref()
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Whether a (re)join is due: never joined, or the heartbeat saw a rebalance.
    pub fn needs_rejoin(&self) -> bool {
        self.rejoin.load(Ordering::SeqCst)
    }

    /// Asks for a rejoin on the next poll (subscription changed, commit saw a new
    /// generation).
    pub fn request_rejoin(&self) {
        self.rejoin.store(true, Ordering::SeqCst);
    }

    /// Joins (or rejoins) the group and returns this member's assigned partitions.
    pub async fn join(
        &mut self,
        cluster: &Arc<Cluster>,
        config: &ConsumerConfig,
        topics: &[String],
    ) -> Result<Vec<TopicPartition>> {
        self.stop_heartbeat();
        let subscription = encode_subscription(&Subscription {
            topics: topics.to_vec(),
            user_data: self.assignor.user_data(),
            ..Subscription::default()
        })?;
        let target = Target::GroupCoordinator(self.group_id.clone());
        let backoff = cluster.backoff();
        for round in 1..=JOIN_ROUNDS_MAX {
            match self
                .join_round(cluster, config, &target, &subscription)
                .await
            {
                Ok(assigned) => {
                    self.rejoin.store(false, Ordering::SeqCst);
                    self.start_heartbeat(cluster.clone(), config, target);
                    tracing::debug!(group = %self.group_id, generation = self.generation, member = %self.member_id, ?assigned, "joined");
                    return Ok(assigned);
                }
                Err(e) if rejoinable(&e) || e.is_retriable() => {
                    tracing::debug!(group = %self.group_id, error = %e, round, "rejoining");
                    if e.needs_coordinator_refresh() {
                        cluster.forget_coordinators();
                    }
                    if e.code() == Some(ErrorCode::UNKNOWN_MEMBER_ID.code()) {
                        self.member_id.clear();
                    }
                    tokio::time::sleep(Duration::from_millis(backoff.delay_ms(round))).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Timeout {
            what: format!("joining group {}", self.group_id),
            timeout_ms: config.max_poll_interval_ms,
        })
    }

    async fn join_round(
        &mut self,
        cluster: &Arc<Cluster>,
        config: &ConsumerConfig,
        target: &Target,
        subscription: &bytes::Bytes,
    ) -> Result<Vec<TopicPartition>> {
        let joined = self
            .join_group(cluster, config, target, subscription)
            .await?;
        self.generation = joined.generation_id;
        self.member_id = joined.member_id.to_string();
        let assignments = if joined.leader == joined.member_id {
            self.assign(cluster, &joined).await?
        } else {
            Vec::new()
        };
        let group = self.group_id.clone();
        let (generation, member_id) = (self.generation, self.member_id.clone());
        let protocol = self.assignor.name().to_string();
        let synced = cluster
            .call(target, |_| {
                Ok(SyncGroupRequest::default()
                    .with_group_id(GroupId(str_bytes(&group)))
                    .with_generation_id(generation)
                    .with_member_id(str_bytes(&member_id))
                    .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
                    .with_protocol_name(Some(str_bytes(&protocol)))
                    .with_assignments(assignments))
            })
            .await?;
        ClientError::check(synced.error_code, None, format!("SyncGroup {group}"))?;
        let (partitions, user_data) = decode_assignment_with(&synced.assignment)?;
        self.assignment_user_data = user_data;
        Ok(partitions)
    }

    /// JoinGroup, repeating once with the member id the broker hands out (KIP-394).
    async fn join_group(
        &mut self,
        cluster: &Arc<Cluster>,
        config: &ConsumerConfig,
        target: &Target,
        subscription: &bytes::Bytes,
    ) -> Result<JoinGroupResponse> {
        let timeout_ms = config.max_poll_interval_ms.saturating_add(JOIN_GRACE_MS);
        let protocol = self.assignor.name().to_string();
        for _ in 0..2 {
            let group = self.group_id.clone();
            let member_id = self.member_id.clone();
            let response = cluster
                .call_timeout(target, timeout_ms, |_| {
                    Ok(JoinGroupRequest::default()
                        .with_group_id(GroupId(str_bytes(&group)))
                        .with_session_timeout_ms(clamp_ms(config.session_timeout_ms))
                        .with_rebalance_timeout_ms(clamp_ms(config.max_poll_interval_ms))
                        .with_member_id(str_bytes(&member_id))
                        .with_protocol_type(str_bytes(PROTOCOL_TYPE))
                        .with_protocols(vec![JoinGroupRequestProtocol::default()
                            .with_name(str_bytes(&protocol))
                            .with_metadata(subscription.clone())]))
                })
                .await?;
            if response.error_code == ErrorCode::MEMBER_ID_REQUIRED.code() {
                self.member_id = response.member_id.to_string();
                continue;
            }
            ClientError::check(
                response.error_code,
                None,
                format!("JoinGroup {}", self.group_id),
            )?;
            return Ok(response);
        }
        Err(ClientError::Protocol(
            "JoinGroup asked for a member id twice".into(),
        ))
    }

    /// The leader's job: run the assignor over every member's subscription.
    async fn assign(
        &self,
        cluster: &Arc<Cluster>,
        joined: &JoinGroupResponse,
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions: BTreeMap<String, MemberSubscription> = BTreeMap::new();
        for m in &joined.members {
            let sub = decode_subscription(&m.metadata)?;
            subscriptions.insert(
                m.member_id.to_string(),
                MemberSubscription {
                    topics: sub.topics,
                    user_data: sub.user_data,
                    owned_partitions: sub.owned_partitions,
                },
            );
        }
        let topics: BTreeSet<&String> = subscriptions.values().flat_map(|s| &s.topics).collect();
        let mut counts = BTreeMap::new();
        for topic in topics {
            match cluster.topic(topic, false).await {
                Ok(info) => {
                    counts.insert(
                        topic.clone(),
                        i32::try_from(info.partitions.len()).unwrap_or(i32::MAX),
                    );
                }
                // A subscribed topic that does not exist yet gets no partitions.
                Err(e) if e.code() == Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()) => {}
                Err(e) => return Err(e),
            }
        }
        self.assignor
            .assign(&subscriptions, &counts)?
            .into_iter()
            .map(|(member, a)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&member))
                    .with_assignment(encode_assignment_with(&a.partitions, a.user_data)?))
            })
            .collect()
    }

    fn start_heartbeat(&mut self, cluster: Arc<Cluster>, config: &ConsumerConfig, target: Target) {
        let beat = Heartbeat {
            cluster,
            target,
            group_id: self.group_id.clone(),
            member_id: self.member_id.clone(),
            generation: self.generation,
            interval: Duration::from_millis(config.heartbeat_interval_ms.max(1)),
            rejoin: self.rejoin.clone(),
        };
        self.heartbeat = Some(tokio::spawn(beat.run()));
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// Leaves the group (best effort: the session timeout removes us anyway).
    pub async fn leave(&mut self, cluster: &Cluster) {
        self.stop_heartbeat();
        if self.member_id.is_empty() {
            return;
        }
        let target = Target::GroupCoordinator(self.group_id.clone());
        let (group, member) = (self.group_id.clone(), self.member_id.clone());
        let result = cluster
            .call(&target, |version| {
                let request =
                    LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&group)));
                Ok(if version >= 3 {
                    request.with_members(vec![
                        MemberIdentity::default().with_member_id(str_bytes(&member))
                    ])
                } else {
                    request.with_member_id(str_bytes(&member))
                })
            })
            .await;
        if let Err(e) = result {
            tracing::debug!(group, error = %e, "LeaveGroup failed");
        }
        self.member_id.clear();
        self.generation = -1;
        self.rejoin.store(true, Ordering::SeqCst);
    }
}

/// Errors after which joining again is the cure.
pub(crate) fn rejoinable(e: &ClientError) -> bool {
    let codes = [
        ErrorCode::REBALANCE_IN_PROGRESS,
        ErrorCode::ILLEGAL_GENERATION,
        ErrorCode::UNKNOWN_MEMBER_ID,
    ];
    e.code().is_some_and(|c| codes.contains(&ErrorCode(c)))
}

fn clamp_ms(ms: u64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

struct Heartbeat {
    cluster: Arc<Cluster>,
    target: Target,
    group_id: String,
    member_id: String,
    generation: i32,
    interval: Duration,
    rejoin: Arc<AtomicBool>,
}

impl Heartbeat {
    /// Heartbeats until the coordinator says the group is rebalancing (or we were
    /// removed); then flags a rejoin for the next poll.
    async fn run(self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.interval).await;
            let result = self
                .cluster
                .call(&self.target, |_| {
                    Ok(HeartbeatRequest::default()
                        .with_group_id(GroupId(str_bytes(&self.group_id)))
                        .with_generation_id(self.generation)
                        .with_member_id(str_bytes(&self.member_id)))
                })
                .await
                .and_then(|r| ClientError::check(r.error_code, None, "Heartbeat"));
            match result {
                Ok(()) => last_ok = Instant::now(),
                Err(e) if rejoinable(&e) => {
                    tracing::debug!(group = %self.group_id, error = %e, "rebalance needed");
                    self.rejoin.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    tracing::debug!(group = %self.group_id, error = %e, since_ok_ms = last_ok.elapsed().as_millis() as u64, "heartbeat failed");
                    if e.needs_coordinator_refresh() {
                        self.cluster.forget_coordinators();
                    }
                }
            }
        }
    }
}
