//! Leader election: every eligible registry process is a member of the consumer group
//! `schema.registry.group.id`, subscribed to the one-partition schemas topic; the member
//! the group assigns that partition to is the leader, the one that writes. Its client id
//! carries its URL, so any process finds the leader by describing the group. This is the
//! classic group protocol with the consumer protocol type (Confluent's registry uses its
//! own "sr" protocol type over the same machinery, so the two do not share a group).
//!
//! During a rebalance there may be no leader for a moment (writes answer 50004, as
//! Confluent's do); a process that lost its partition but has not noticed yet may still
//! write, which the store's one-id-one-schema rule and the writer's read-back check make
//! harmless (see `store.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, Consumer, ConsumerConfig, TopicPartition};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RegistryConfig;

/// Client ids of members start with this, then the member's URL.
const CLIENT_ID_PREFIX: &str = "strom-schema-registry ";
/// How often the member polls (which keeps its group membership current).
const POLL_MS: u64 = 200;
/// How long a looked-up leader URL is trusted before describing the group again.
const LEADER_CACHE_MS: u64 = 1_000;
/// How long shutdown waits for the member to leave the group (so another leads at once).
const LEAVE_WAIT_MS: u64 = 5_000;

/// This process's view of who leads.
pub struct Leader {
    is_leader: Arc<AtomicBool>,
    own_url: String,
    group_id: String,
    admin: Admin,
    cached: Mutex<Option<(Instant, Option<String>)>>,
    member: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Leader {
    pub fn start(
        config: &RegistryConfig,
        own_url: String,
    ) -> Result<Leader, strom_client::ClientError> {
        let mut client = ClientConfig::new(&config.bootstrap_servers);
        client.client_id = "strom-registry-leader-lookup".to_string();
        let admin = Admin::new(client)?;
        let is_leader = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        let member = if config.leader_eligibility {
            let mut consumer_config = ConsumerConfig::new(&config.bootstrap_servers);
            consumer_config.client.client_id = format!("{CLIENT_ID_PREFIX}{own_url}");
            consumer_config.group_id = Some(config.group_id.clone());
            consumer_config.enable_auto_commit = false;
            // Confluent's registry defaults: a dead leader is replaced within ~10 s.
            consumer_config.session_timeout_ms = 10_000;
            consumer_config.heartbeat_interval_ms = 3_000;
            let consumer = Consumer::new(consumer_config)?;
            Some(tokio::spawn(member_loop(
                consumer,
                config.topic.clone(),
                is_leader.clone(),
                stopped,
            )))
        } else {
            None
        };
        Ok(Leader {
            is_leader,
            own_url,
            group_id: config.group_id.clone(),
            admin,
            cached: Mutex::new(None),
            member,
            stop,
        })
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst)
    }

    pub fn own_url(&self) -> &str {
        &self.own_url
    }

    /// The leader's URL, if a leader is known (this process's own when it leads).
    pub async fn leader_url(&self, fresh: bool) -> Option<String> {
        if self.is_leader() {
            return Some(self.own_url.clone());
        }
        if !fresh {
            if let Ok(cached) = self.cached.lock() {
                if let Some((at, url)) = cached.as_ref() {
                    if at.elapsed() < Duration::from_millis(LEADER_CACHE_MS) {
                        return url.clone();
                    }
                }
            }
        }
        let url = self.describe().await;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((Instant::now(), url.clone()));
        }
        url
    }

    async fn describe(&self) -> Option<String> {
        let group = match self.admin.describe_group(&self.group_id).await {
            Ok(group) => group,
            Err(e) => {
                tracing::debug!(group = %self.group_id, error = %e, "cannot describe the registry group");
                return None;
            }
        };
        group
            .members
            .iter()
            .find(|m| m.assignment.iter().any(|tp| tp.partition == 0))
            .and_then(|m| m.client_id.strip_prefix(CLIENT_ID_PREFIX))
            .map(str::to_string)
    }

    /// Stops leading and starts leaving the group (without waiting for it).
    pub fn resign(&self) {
        self.is_leader.store(false, Ordering::SeqCst);
        let _ = self.stop.send(true);
    }

    /// Leaves the group (bounded wait), so another process leads without waiting for
    /// this one's session to expire.
    pub async fn close(mut self) {
        self.is_leader.store(false, Ordering::SeqCst);
        let _ = self.stop.send(true);
        if let Some(mut member) = self.member.take() {
            let wait = Duration::from_millis(LEAVE_WAIT_MS);
            if tokio::time::timeout(wait, &mut member).await.is_err() {
                member.abort();
            }
        }
        self.admin.close().await;
    }
}

async fn member_loop(
    mut consumer: Consumer,
    topic: String,
    is_leader: Arc<AtomicBool>,
    mut stopped: watch::Receiver<bool>,
) {
    let tp = TopicPartition::new(topic.clone(), 0);
    // Logged at the first join too, so an operator (and a test) sees each member's role.
    let mut logged: Option<bool> = None;
    while !*stopped.borrow() {
        if let Err(e) = consumer.subscribe(vec![topic.clone()]).await {
            tracing::warn!(error = %e, "cannot join the registry group; retrying");
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            continue;
        }
        while !*stopped.borrow() {
            // Records are not needed here: the partition stays paused.
            let assignment = consumer.assignment();
            consumer.pause(&assignment);
            let polled = tokio::select! {
                polled = consumer.poll(Duration::from_millis(POLL_MS)) => polled,
                _ = stopped.changed() => break,
            };
            match polled {
                Ok(_) => {
                    let leads = consumer.assignment().contains(&tp);
                    is_leader.store(leads, Ordering::SeqCst);
                    if logged != Some(leads) {
                        tracing::info!(leader = leads, "registry leadership changed");
                        logged = Some(leads);
                    }
                }
                Err(e) => {
                    is_leader.store(false, Ordering::SeqCst);
                    logged = None;
                    tracing::warn!(error = %e, "registry group membership failed; rejoining");
                    tokio::time::sleep(Duration::from_millis(1_000)).await;
                    break;
                }
            }
        }
    }
    is_leader.store(false, Ordering::SeqCst);
    if let Err(e) = consumer.close().await {
        tracing::debug!(error = %e, "leaving the registry group");
    }
}
