//! One client connection: frames in, requests handled one at a time in arrival order,
//! responses out in the same order (Kafka mutes a channel while a request is in flight).
//!
//! Bad input closes this connection only, as Kafka does: a size prefix over
//! `socket.request.max.bytes` or negative, an unparsable header, an unknown API or version,
//! a body that does not decode. The read buffer holds at most one frame plus one read.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::{decode_request, encode_response, FrameDecoder, ResponseTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::handlers::Reply;
use crate::sendfile::{splice, write_pieces};
use crate::server::BrokerContext;

/// The most read at once into the frame buffer.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Serves one connection until the client closes it, it sends bad input, or the broker
/// shuts down (between requests: the request in flight is finished first).
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, context: Arc<BrokerContext>) {
    let _ = stream.set_nodelay(true);
    let decoder = FrameDecoder::new(context.config.socket_request_max_bytes);
    let mut buf = BytesMut::new();
    let mut shutdown = context.shutdown.clone();
    loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let missing = decoder.bytes_missing(&buf).unwrap_or(1).max(1);
                buf.reserve(missing.min(READ_CHUNK_BYTES));
                let read = tokio::select! {
                    read = stream.read_buf(&mut buf) => read,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                };
                match read {
                    Ok(0) => return,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "read failed; closing");
                        return;
                    }
                }
            }
            Err(error) => {
                tracing::info!(%peer, %error, "refused frame; closing the connection");
                return;
            }
        };
        let incoming = match decode_request(&frame, &context.api_versions) {
            Ok(incoming) => incoming,
            Err(error) => {
                tracing::info!(%peer, %error, "refused request; closing the connection");
                return;
            }
        };
        let target = ResponseTarget::for_incoming(&incoming);
        let (body, files) = match crate::handlers::handle(&context, incoming).await {
            Reply::Respond(body) => (body, Vec::new()),
            Reply::RespondWithFiles(body, files) => (body, files),
            Reply::Silent => continue,
            Reply::Close => {
                tracing::debug!(%peer, "closing the connection after a failed acks=0 produce");
                return;
            }
        };
        let bytes = match encode_response(&target, &body) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%peer, %error, "cannot encode response; closing the connection");
                return;
            }
        };
        let written = if files.is_empty() {
            stream.write_all(&bytes).await
        } else {
            match splice(&bytes, files, target.api_version) {
                Ok(pieces) => write_pieces(&mut stream, &pieces).await,
                Err(error) => {
                    tracing::error!(%peer, %error, "closing the connection");
                    return;
                }
            }
        };
        if let Err(error) = written {
            tracing::debug!(%peer, %error, "write failed; closing");
            return;
        }
    }
}
