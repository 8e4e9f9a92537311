//! KIP-1071's streams group protocol on the client side: one StreamsGroupHeartbeat sent to
//! the group's coordinator. The membership itself (member epoch, topology, owned tasks,
//! reconciliation) belongs to the Streams runtime that drives it (strom-streams); this
//! crate only carries the request and hands back the broker's answer, so the wire types
//! are re-exported here for it.

pub use kafka_protocol::messages::streams_group_heartbeat_request as request;
pub use kafka_protocol::messages::streams_group_heartbeat_response as response;
pub use kafka_protocol::messages::{
    ApiKey, GroupId, StreamsGroupHeartbeatRequest, StreamsGroupHeartbeatResponse,
};
pub use kafka_protocol::protocol::StrBytes;

use super::Consumer;
use crate::cluster::Target;
use crate::error::{ClientError, Result};

impl Consumer {
    /// Sends `request` to the coordinator of this consumer's `group.id` (the request's
    /// group id is set to it) and returns the response as the broker sent it: its error
    /// code is the caller's to read. A coordinator error (NOT_COORDINATOR,
    /// COORDINATOR_NOT_AVAILABLE, ...) or a dropped connection makes the next call look
    /// the coordinator up again. A broker without API 88 fails with
    /// [`ClientError::UnsupportedApi`].
    pub async fn streams_group_heartbeat(
        &self,
        request: StreamsGroupHeartbeatRequest,
    ) -> Result<StreamsGroupHeartbeatResponse> {
        let group = self.group_id()?;
        let request = request.with_group_id(GroupId(StrBytes::from_string(group.clone())));
        let target = Target::GroupCoordinator(group);
        let result = self.cluster.call(&target, |_| Ok(request)).await;
        match &result {
            Ok(response) => {
                if let Some(e) = ClientError::from_code(response.error_code, None, "") {
                    if e.needs_coordinator_refresh() {
                        self.cluster.forget_coordinators();
                    }
                }
            }
            Err(e) if e.needs_coordinator_refresh() => self.cluster.forget_coordinators(),
            Err(_) => {}
        }
        result
    }
}
