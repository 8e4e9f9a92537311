//! JoinGroup (v0-v9): maps the request to strom-group's command and waits for the answer,
//! which may take a whole rebalance. Only this connection waits (it serves one request at a
//! time, so later requests on it stay behind, as in Kafka); the coordinator task keeps going.

use std::net::{IpAddr, SocketAddr};

use strom_group::{Command, ErrorCode, JoinGroup, Protocol, Response};
use strom_protocol::messages::join_group_response::JoinGroupResponseMember;
use strom_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};

use super::{group_call, opt_string, str_bytes};
use crate::server::BrokerContext;

/// The first version that asks new members to rejoin with an assigned id (KIP-394).
const KNOWN_MEMBER_ID_MIN_VERSION: i16 = 4;
/// The first version with a separate rebalance timeout (older ones use the session timeout).
const REBALANCE_TIMEOUT_MIN_VERSION: i16 = 1;
/// The first version whose response carries `skip_assignment` (KIP-814).
const SKIP_ASSIGNMENT_MIN_VERSION: i16 = 9;
/// The member id prefix when the client sent no client id.
const DEFAULT_CLIENT_ID: &str = "consumer";

pub(super) async fn handle(
    context: &BrokerContext,
    request: JoinGroupRequest,
    version: i16,
    client_id: Option<strom_protocol::StrBytes>,
    peer: SocketAddr,
) -> ResponseKind {
    let client_id = client_id
        .map(|c| c.to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_string());
    let group_id = request.group_id.0.to_string();
    let rebalance_timeout_ms = if version >= REBALANCE_TIMEOUT_MIN_VERSION {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    let command = Command::JoinGroup(JoinGroup {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        group_instance_id: opt_string(request.group_instance_id),
        client_id,
        client_host: client_host(peer),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= KNOWN_MEMBER_ID_MIN_VERSION,
        supports_skip_assignment: version >= SKIP_ASSIGNMENT_MIN_VERSION,
    });
    let member_id = request.member_id;
    let response = match group_call(context, &group_id, command).await {
        // A waiting join failed by the coordinator (unloaded, or an append failed) keeps
        // the member id it came with, as Kafka's `onUnloaded` answers it.
        Ok(Response::JoinGroup(r)) if r.error != ErrorCode::None && r.member_id.is_empty() => {
            return error(r.error, member_id)
        }
        Ok(Response::JoinGroup(r)) => r,
        Ok(_) => return error(ErrorCode::CoordinatorNotAvailable, member_id),
        Err(code) => return error(code, member_id),
    };
    let members = response
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(str_bytes))
                .with_metadata(m.metadata)
        })
        .collect();
    ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(response.error.code())
            .with_generation_id(response.generation_id)
            .with_protocol_type(response.protocol_type.map(str_bytes))
            .with_protocol_name(response.protocol_name.map(str_bytes))
            .with_leader(str_bytes(response.leader))
            .with_member_id(str_bytes(response.member_id))
            .with_skip_assignment(response.skip_assignment)
            .with_members(members),
    )
}

/// Kafka stores `InetAddress.toString()` of the peer: `/127.0.0.1`, and IPv6 in full
/// without `::` compression (`/0:0:0:0:0:0:0:1`).
fn client_host(peer: SocketAddr) -> String {
    match peer.ip() {
        IpAddr::V4(ip) => format!("/{ip}"),
        IpAddr::V6(ip) => {
            let segments: Vec<String> = ip.segments().iter().map(|s| format!("{s:x}")).collect();
            format!("/{}", segments.join(":"))
        }
    }
}

fn error(code: ErrorCode, member_id: strom_protocol::StrBytes) -> ResponseKind {
    ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(code.code())
            .with_generation_id(-1)
            .with_member_id(member_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_host_prints_as_kafka() {
        let v4: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(client_host(v4), "/127.0.0.1");
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(client_host(v6), "/0:0:0:0:0:0:0:1");
    }
}
