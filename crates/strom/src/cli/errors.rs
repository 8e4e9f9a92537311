//! How a failed client command reads on stderr: an unreachable broker names the address,
//! the reason and the fix; broker errors keep Kafka's error name; the rest is the error
//! chain. Also maps failures to exit codes (clap's usage errors exit 2 on their own).

use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use strom_client::ClientError;

use super::output::StdoutClosed;

/// How long the diagnosis of an unreachable broker waits for each address.
const PROBE_TIMEOUT_MS: u64 = 2_000;

/// The exit code for a command's result, after printing its error (if any).
pub fn exit(result: anyhow::Result<()>, bootstrap: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: error: {}", render(&e, bootstrap));
            ExitCode::FAILURE
        }
    }
}

/// The message for `e`.
pub fn render(e: &anyhow::Error, bootstrap: &str) -> String {
    let client = e.chain().find_map(|c| c.downcast_ref::<ClientError>());
    match client {
        Some(ClientError::Io { addr, reason }) if is_connect_failure(reason) => {
            unreachable(addr, &os_reason(reason))
        }
        Some(ClientError::NoBrokerAvailable(_)) => {
            let reason = probe(bootstrap).unwrap_or_else(|| "no broker answered".to_string());
            unreachable(bootstrap, &reason)
        }
        _ => format!("{e:#}"),
    }
}

pub fn unreachable(addr: &str, reason: &str) -> String {
    format!("cannot reach {addr}: {reason}; is the broker running? set --bootstrap-server")
}

/// Whether an I/O failure happened while connecting rather than mid-conversation.
fn is_connect_failure(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "refused",
        "unreachable",
        "timed out",
        "no route",
        "lookup",
        "not known",
        "resolve",
        "invalid socket address",
    ]
    .iter()
    .any(|needle| reason.contains(needle))
}

/// `Connection refused (os error 111)` becomes `connection refused`.
fn os_reason(reason: &str) -> String {
    let trimmed = match reason.find(" (os error") {
        Some(i) => reason.get(..i).unwrap_or(reason),
        None => reason,
    };
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why the first bootstrap address cannot be reached, found by connecting to it; `None`
/// when one of them accepts a connection now.
pub fn probe(bootstrap: &str) -> Option<String> {
    let mut first_reason = None;
    for server in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let addrs = match server.to_socket_addrs() {
            Ok(addrs) => addrs,
            Err(e) => {
                first_reason.get_or_insert_with(|| os_reason(&e.to_string()));
                continue;
            }
        };
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(PROBE_TIMEOUT_MS)) {
                Ok(_) => return None,
                Err(e) => {
                    first_reason.get_or_insert_with(|| os_reason(&e.to_string()));
                }
            }
        }
    }
    first_reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connections_name_the_address_and_the_fix() {
        let e = anyhow::Error::new(ClientError::Io {
            addr: "127.0.0.1:9092".into(),
            reason: "Connection refused (os error 111)".into(),
        });
        assert_eq!(
            render(&e, "127.0.0.1:9092"),
            "cannot reach 127.0.0.1:9092: connection refused; is the broker running? set --bootstrap-server"
        );
    }

    #[test]
    fn broker_errors_keep_the_kafka_name_and_the_context_chain() {
        let e = anyhow::Error::new(ClientError::Broker {
            code: 3,
            name: "UNKNOWN_TOPIC_OR_PARTITION",
            message: None,
            context: "describe topic t".into(),
        })
        .context("cannot describe t");
        let text = render(&e, "127.0.0.1:9092");
        assert!(text.contains("cannot describe t"), "{text}");
        assert!(text.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{text}");
    }

    #[test]
    fn mid_conversation_io_errors_are_not_called_unreachable() {
        let e = anyhow::Error::new(ClientError::Io {
            addr: "h:1".into(),
            reason: "Connection reset by peer (os error 104)".into(),
        });
        assert!(!render(&e, "h:1").contains("cannot reach"));
    }

    #[test]
    fn probing_a_closed_port_reports_why() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert_eq!(probe(&addr), None);
        drop(listener);
        let reason = probe(&addr).unwrap();
        assert_eq!(reason, "connection refused");
        let e = anyhow::Error::new(ClientError::NoBrokerAvailable(addr.clone()));
        assert_eq!(
            render(&e, &addr),
            format!("cannot reach {addr}: connection refused; is the broker running? set --bootstrap-server")
        );
    }
}
