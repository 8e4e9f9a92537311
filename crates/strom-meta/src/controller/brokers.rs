//! Broker lifecycle: registration, heartbeats (fence/unfence, controlled shutdown),
//! unregistration, session expiry, and producer id blocks.
//!
//! A broker registers fenced and is unfenced by a heartbeat that no longer asks to be
//! fenced. Broker epochs are unique across the cluster's history: each registration takes
//! the image's highest epoch plus one.
//!
//! Controlled shutdown is Kafka's: an unfenced broker that leads partitions and asks to
//! shut down enters controlled shutdown (it keeps serving, but its leaderships move to
//! other ISR members and it leaves every ISR); once it leads nothing, its next shutdown
//! heartbeat fences it and tells it to shut down. A broker that leads nothing is fenced and
//! told to shut down at once.

use crate::controller::elections::{elect_with_broker, remove_broker_from_partitions};
use crate::controller::errors::{ControllerError, ErrorCode};
use crate::controller::messages::{
    BrokerHeartbeatReply, BrokerHeartbeatRequest, ControllerReply, RegisterBrokerRequest,
};
use crate::controller::offline;
use crate::controller::staged::Staged;
use crate::controller::{Controller, Handled};
use crate::image::{BrokerRegistration, MetadataImage};
use crate::records::MetadataRecord;
use crate::wire::STRING_BYTES_MAX;

impl Controller {
    fn has_live_session(&self, broker_id: i32, now_ms: i64) -> bool {
        self.last_contact_ms.get(&broker_id).is_some_and(|last| {
            now_ms.saturating_sub(*last) <= self.config.broker_session_timeout_ms
        })
    }

    pub(crate) fn register_broker(
        &mut self,
        image: &MetadataImage,
        r: RegisterBrokerRequest,
        now_ms: i64,
    ) -> Handled {
        if r.broker_id < 0 {
            return Err(ControllerError::new(
                ErrorCode::InvalidRequest,
                format!("Invalid broker id {}.", r.broker_id),
            ));
        }
        check_registration_bounds(&r)?;
        let mut records = Vec::new();
        if let Some(existing) = image.broker(r.broker_id) {
            if existing.incarnation_id != r.incarnation_id
                && self.has_live_session(r.broker_id, now_ms)
            {
                return Err(ControllerError::new(
                    ErrorCode::DuplicateBrokerRegistration,
                    format!(
                        "Another broker is registered with broker id {} and its session is live.",
                        r.broker_id
                    ),
                ));
            }
            // The previous incarnation's replicas may have lost data: drop it from ISRs.
            records.extend(remove_broker_from_partitions(
                image,
                r.broker_id,
                self.config.unclean_leader_election_enable,
            ));
        }
        let broker_epoch = image.broker_epoch_high().checked_add(1).ok_or_else(|| {
            ControllerError::new(ErrorCode::UnknownServerError, "Broker epochs exhausted.")
        })?;
        records.push(MetadataRecord::RegisterBroker {
            broker_id: r.broker_id,
            incarnation_id: r.incarnation_id,
            epoch: broker_epoch,
            endpoints: r.endpoints,
            rack: r.rack,
            fenced: true,
        });
        self.last_contact_ms.insert(r.broker_id, now_ms);
        Ok((records, ControllerReply::RegisterBroker { broker_epoch }))
    }

    pub(crate) fn broker_heartbeat(
        &mut self,
        image: &MetadataImage,
        r: BrokerHeartbeatRequest,
        now_ms: i64,
    ) -> Handled {
        let broker = current_broker(
            image,
            r.broker_id,
            r.broker_epoch,
            ErrorCode::BrokerIdNotRegistered,
        )?;
        self.last_contact_ms.insert(r.broker_id, now_ms);
        let unclean = self.config.unclean_leader_election_enable;
        let leads = |id: i32| image.partitions().any(|(_, p)| p.leader == id);
        let state = if broker.fenced {
            BrokerState::Fenced
        } else if broker.in_controlled_shutdown {
            BrokerState::ControlledShutdown
        } else {
            BrokerState::Unfenced
        };
        // Kafka's `BrokerHeartbeatManager.calculateNextBrokerState`.
        let next = match state {
            BrokerState::Fenced if r.want_shutdown => Next::ShutdownNow,
            BrokerState::Fenced if !r.want_fence => Next::Unfence,
            BrokerState::Fenced => Next::Stay,
            BrokerState::Unfenced if r.want_fence && r.want_shutdown => Next::ShutdownNow,
            BrokerState::Unfenced if r.want_fence => Next::Fence,
            BrokerState::Unfenced if r.want_shutdown && leads(r.broker_id) => {
                Next::ControlledShutdown
            }
            BrokerState::Unfenced if r.want_shutdown => Next::ShutdownNow,
            BrokerState::Unfenced => Next::Stay,
            BrokerState::ControlledShutdown if leads(r.broker_id) => Next::Stay,
            BrokerState::ControlledShutdown => Next::ShutdownNow,
        };
        let mut records = Vec::new();
        let fence = |records: &mut Vec<MetadataRecord>| {
            if !broker.fenced {
                records.extend(remove_broker_from_partitions(image, r.broker_id, unclean));
                records.push(MetadataRecord::FenceBroker {
                    broker_id: r.broker_id,
                    epoch: r.broker_epoch,
                });
            }
        };
        match next {
            Next::Stay => {}
            Next::Unfence => {
                records.push(MetadataRecord::UnfenceBroker {
                    broker_id: r.broker_id,
                    epoch: r.broker_epoch,
                });
                records.extend(elect_with_broker(image, r.broker_id, unclean));
            }
            Next::Fence | Next::ShutdownNow => fence(&mut records),
            Next::ControlledShutdown => {
                records.push(MetadataRecord::BrokerInControlledShutdown {
                    broker_id: r.broker_id,
                    epoch: r.broker_epoch,
                });
                records.extend(remove_broker_from_partitions(image, r.broker_id, unclean));
            }
        }
        let should_shutdown = next == Next::ShutdownNow;
        if should_shutdown {
            // A shutdown granted ends the session, as Kafka's controller drops it: the next
            // incarnation of this broker id may register at once instead of waiting for a
            // session timeout that would only guard a process that has gone.
            self.last_contact_ms.remove(&r.broker_id);
        }
        let is_fenced = match next {
            Next::Stay => broker.fenced,
            Next::Unfence | Next::ControlledShutdown => false,
            Next::Fence | Next::ShutdownNow => true,
        };
        let reply = BrokerHeartbeatReply {
            is_fenced,
            should_shutdown,
        };
        let records = with_offline_report(image, records, &r, unclean);
        Ok((records, ControllerReply::BrokerHeartbeat(reply)))
    }

    pub(crate) fn unregister_broker(&mut self, image: &MetadataImage, broker_id: i32) -> Handled {
        let broker = image
            .broker(broker_id)
            .ok_or_else(|| not_registered(broker_id))?;
        let mut records = remove_broker_from_partitions(
            image,
            broker_id,
            self.config.unclean_leader_election_enable,
        );
        records.push(MetadataRecord::UnregisterBroker {
            broker_id,
            epoch: broker.epoch,
        });
        self.last_contact_ms.remove(&broker_id);
        Ok((records, ControllerReply::UnregisterBroker))
    }

    pub(crate) fn allocate_producer_ids(
        &mut self,
        image: &MetadataImage,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Handled {
        current_broker(image, broker_id, broker_epoch, ErrorCode::StaleBrokerEpoch)?;
        let block = self
            .config
            .producer_id_block_size
            .clamp(1, i64::from(i32::MAX));
        let start = image.next_producer_id();
        let next_producer_id = start.checked_add(block).ok_or_else(|| {
            ControllerError::new(ErrorCode::UnknownServerError, "Exhausted all producerIds.")
        })?;
        let records = vec![MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id,
        }];
        Ok((
            records,
            ControllerReply::AllocateProducerIds {
                producer_id_start: start,
                producer_id_len: block as i32,
            },
        ))
    }
}

/// The heartbeat's `records`, then those its offline-replica report calls for (computed on
/// the image after them; see `offline.rs`).
fn with_offline_report(
    image: &MetadataImage,
    records: Vec<MetadataRecord>,
    r: &BrokerHeartbeatRequest,
    unclean: bool,
) -> Vec<MetadataRecord> {
    if !offline::may_change(image, r.broker_id, &r.offline_replicas) {
        return records;
    }
    let mut staged = Staged::new(image);
    if staged.push_applied(records.clone()).is_err() {
        return records;
    }
    offline::report_offline_replicas(
        &mut staged,
        r.broker_id,
        r.broker_epoch,
        &r.offline_replicas,
        unclean,
    );
    staged.finish(false).unwrap_or(records)
}

/// Where a broker stands, as Kafka's `BrokerControlState` (shutdown granted is fenced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BrokerState {
    Fenced,
    Unfenced,
    ControlledShutdown,
}

/// What a heartbeat does to its broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Stay,
    Unfence,
    Fence,
    ControlledShutdown,
    ShutdownNow,
}

/// The registration of `broker_id` if `broker_epoch` is its current epoch. A broker that is
/// not registered gets `missing`; a wrong epoch gets STALE_BROKER_EPOCH.
fn current_broker(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
    missing: ErrorCode,
) -> Result<&BrokerRegistration, ControllerError> {
    let broker = image.broker(broker_id).ok_or_else(|| {
        ControllerError::new(missing, format!("Broker {broker_id} is not registered."))
    })?;
    if broker.epoch != broker_epoch {
        return Err(ControllerError::new(
            ErrorCode::StaleBrokerEpoch,
            format!(
                "Broker {broker_id} epoch {broker_epoch} is not the current epoch {}.",
                broker.epoch
            ),
        ));
    }
    Ok(broker)
}

/// Most listeners one broker may register.
pub const ENDPOINTS_PER_BROKER_MAX: usize = 64;

/// Keeps registrations within what a record can encode without truncation.
fn check_registration_bounds(r: &RegisterBrokerRequest) -> Result<(), ControllerError> {
    let too_long = |s: &str| s.len() > STRING_BYTES_MAX;
    let strings_fit = !r
        .endpoints
        .iter()
        .any(|e| too_long(&e.listener_name) || too_long(&e.host))
        && !r.rack.as_deref().is_some_and(too_long);
    if r.endpoints.len() > ENDPOINTS_PER_BROKER_MAX || !strings_fit {
        return Err(ControllerError::new(
            ErrorCode::InvalidRequest,
            format!(
                "A registration may have at most {ENDPOINTS_PER_BROKER_MAX} listeners, with names, hosts and rack of \
                 at most {STRING_BYTES_MAX} bytes."
            ),
        ));
    }
    Ok(())
}

fn not_registered(broker_id: i32) -> ControllerError {
    ControllerError::new(
        ErrorCode::BrokerIdNotRegistered,
        format!("Broker {broker_id} is not registered."),
    )
}

pub(crate) fn expire_sessions(
    controller: &mut Controller,
    image: &MetadataImage,
    now_ms: i64,
) -> Vec<MetadataRecord> {
    controller
        .last_contact_ms
        .retain(|id, _| image.broker(*id).is_some());
    let heard = &controller.last_contact_ms;
    controller
        .unheard_since_ms
        .retain(|id, _| image.broker(*id).is_some() && !heard.contains_key(id));
    let mut staged = Staged::new(image);
    for broker in image.brokers().filter(|b| !b.fenced) {
        // A broker this controller has not heard from yet gets a full session from now, kept
        // apart from real contacts: after a restart of the whole node the old incarnation
        // must not count as live, or its successor could not register until it expired.
        let last = match controller.last_contact_ms.get(&broker.broker_id) {
            Some(last) => *last,
            None => *controller
                .unheard_since_ms
                .entry(broker.broker_id)
                .or_insert(now_ms),
        };
        if now_ms.saturating_sub(last) <= controller.config.broker_session_timeout_ms {
            continue;
        }
        let mut records = remove_broker_from_partitions(
            &staged.image,
            broker.broker_id,
            controller.config.unclean_leader_election_enable,
        );
        records.push(MetadataRecord::FenceBroker {
            broker_id: broker.broker_id,
            epoch: broker.epoch,
        });
        // Records derived from the staged image itself apply; a failure would be a bug, and
        // skipping that broker until the next expiry round is the safe reaction.
        let _ = staged.push_applied(records);
    }
    staged.finish(false).unwrap_or_default()
}
