//! Share group membership (KIP-932) as Kafka 4.2's `ShareMembershipManager` keeps it: the
//! client names itself (a random Kafka uuid as member id), joins with epoch 0 and its
//! subscription, then heartbeats with its current epoch every `heartbeat_interval_ms` the
//! coordinator asks for, sending the subscription again only after a change or a failed
//! heartbeat. The coordinator's assignment (topic ids and partitions) replaces the previous
//! one whenever a response carries one. FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID drop the
//! assignment and join again at epoch 0 with the same member id; coordinator errors find
//! the coordinator again; errors no retry cures (authorization, GROUP_MAX_SIZE_REACHED, a
//! group id of another type) stop the task and fail the next poll. Leaving sends epoch -1.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{GroupId, ShareGroupHeartbeatRequest, TopicName};
use strom_protocol::ErrorCode;
use tokio::task::JoinHandle;

use super::session::PartitionKey;
use crate::cluster::{str_bytes, Cluster, Target};
use crate::error::{ClientError, Result};

/// The heartbeat interval a response may set, in ms (Kafka's broker bounds are 1 s - 60 s
/// by default; these only guard against a zero or absurd value).
const HEARTBEAT_INTERVAL_MS_MIN: u64 = 10;
const HEARTBEAT_INTERVAL_MS_MAX: u64 = 60_000;

/// What the heartbeat task and the consumer share.
#[derive(Debug, Default)]
struct View {
    subscription: Vec<String>,
    /// The subscription changed since the coordinator last heard it.
    subscription_changed: bool,
    epoch: i32,
    assignment: BTreeSet<PartitionKey>,
    /// Why the task stopped for good.
    fatal: Option<ClientError>,
}

/// This consumer's place in its share group.
pub(crate) struct Membership {
    group_id: String,
    member_id: String,
    view: Arc<Mutex<View>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Membership {
    pub fn new(group_id: String, member_id: String) -> Self {
        Membership {
            group_id,
            member_id,
            view: Arc::new(Mutex::new(View::default())),
            task: None,
        }
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Sets the subscription; the heartbeat task starts on the first call.
    pub fn subscribe(&mut self, cluster: &Arc<Cluster>, topics: Vec<String>) {
        if let Ok(mut v) = self.view.lock() {
            v.subscription = topics;
            v.subscription_changed = true;
        }
        if self.task.is_none() {
            let beat = Heartbeat {
                cluster: cluster.clone(),
                group_id: self.group_id.clone(),
                member_id: self.member_id.clone(),
                view: self.view.clone(),
            };
            self.task = Some(tokio::spawn(beat.run()));
        }
    }

    /// The partitions the coordinator assigned (empty before the first assignment).
    pub fn assignment(&self) -> Result<BTreeSet<PartitionKey>> {
        let v = self.view.lock().map_err(|_| ClientError::Closed)?;
        match &v.fatal {
            Some(e) => Err(e.clone()),
            None => Ok(v.assignment.clone()),
        }
    }

    /// The member epoch (0 while joining).
    pub fn epoch(&self) -> i32 {
        self.view.lock().map_or(0, |v| v.epoch)
    }

    /// Stops heartbeating and leaves the group (epoch -1; best effort: the session
    /// timeout removes the member anyway).
    pub async fn leave(&mut self, cluster: &Cluster) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let target = Target::GroupCoordinator(self.group_id.clone());
        let result = cluster
            .call(&target, |_| {
                Ok(request(&self.group_id, &self.member_id, -1, None))
            })
            .await
            .and_then(|r| {
                ClientError::check(
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                    format!("leave share group {}", self.group_id),
                )
            });
        if let Err(e) = result {
            tracing::debug!(group = %self.group_id, error = %e, "leaving the share group failed");
        }
        if let Ok(mut v) = self.view.lock() {
            v.epoch = -1;
            v.assignment.clear();
        }
    }
}

fn request(
    group_id: &str,
    member_id: &str,
    epoch: i32,
    subscription: Option<&[String]>,
) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group_id)))
        .with_member_id(str_bytes(member_id))
        .with_member_epoch(epoch)
        .with_rack_id(None)
        .with_subscribed_topic_names(
            subscription.map(|topics| topics.iter().map(|t| TopicName(str_bytes(t))).collect()),
        )
}

/// Errors after which the member joins again at epoch 0.
fn rejoins(code: i16) -> bool {
    [ErrorCode::FENCED_MEMBER_EPOCH, ErrorCode::UNKNOWN_MEMBER_ID]
        .iter()
        .any(|c| c.code() == code)
}

struct Heartbeat {
    cluster: Arc<Cluster>,
    group_id: String,
    member_id: String,
    view: Arc<Mutex<View>>,
}

impl Heartbeat {
    async fn run(self) {
        let target = Target::GroupCoordinator(self.group_id.clone());
        let backoff = self.cluster.backoff();
        let mut epoch = 0;
        let mut full = true;
        let mut failures: u32 = 0;
        loop {
            let subscription = match self.view.lock() {
                Ok(mut v) => {
                    let send = full || epoch == 0 || v.subscription_changed;
                    v.subscription_changed = false;
                    send.then(|| v.subscription.clone())
                }
                Err(_) => return,
            };
            let result = self
                .cluster
                .call(&target, |_| {
                    Ok(request(
                        &self.group_id,
                        &self.member_id,
                        epoch,
                        subscription.as_deref(),
                    ))
                })
                .await;
            let wait_ms = match result {
                Ok(r) if r.error_code == 0 => {
                    failures = 0;
                    full = false;
                    epoch = r.member_epoch;
                    if let Ok(mut v) = self.view.lock() {
                        v.epoch = epoch;
                        if let Some(a) = r.assignment {
                            v.assignment = a
                                .topic_partitions
                                .iter()
                                .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
                                .collect();
                            tracing::debug!(group = %self.group_id, member = %self.member_id, epoch, assignment = ?v.assignment, "share assignment");
                        }
                    }
                    // Bounded as the streams member bounds it: a 0 from the broker must
                    // not spin, a huge one must not let the session expire.
                    u64::try_from(r.heartbeat_interval_ms)
                        .unwrap_or(0)
                        .clamp(HEARTBEAT_INTERVAL_MS_MIN, HEARTBEAT_INTERVAL_MS_MAX)
                }
                Ok(r) if rejoins(r.error_code) => {
                    tracing::debug!(group = %self.group_id, member = %self.member_id, code = r.error_code, "fenced; joining again");
                    epoch = 0;
                    full = true;
                    if let Ok(mut v) = self.view.lock() {
                        v.epoch = 0;
                        v.assignment.clear();
                    }
                    backoff.base_ms
                }
                other => {
                    let e = match other {
                        Ok(r) => ClientError::from_code(
                            r.error_code,
                            r.error_message.map(|m| m.to_string()),
                            format!("share group {} heartbeat", self.group_id),
                        )
                        .unwrap_or(ClientError::Closed),
                        Err(e) => e,
                    };
                    if !e.is_retriable() {
                        tracing::warn!(group = %self.group_id, error = %e, "share group membership failed");
                        if let Ok(mut v) = self.view.lock() {
                            v.fatal = Some(e);
                        }
                        return;
                    }
                    if e.needs_coordinator_refresh() {
                        self.cluster.forget_coordinators();
                    }
                    tracing::debug!(group = %self.group_id, error = %e, "share group heartbeat failed; retrying");
                    // The coordinator may not have seen it: send everything next time.
                    full = true;
                    failures = failures.saturating_add(1);
                    backoff.delay_ms(failures)
                }
            };
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }
}
