//! One client connection: frames in, requests handled one at a time in arrival order,
//! responses out in the same order.
//!
//! Kafka mutes a channel while a request is in flight. Strom does too, with one exception:
//! a handler may finish its side effects (a Produce's appends) and leave a wait for
//! durability (the sync-on-commit fsync) to a *finisher* ([`defer`]). The connection then
//! goes on reading and handling the next requests while the finisher runs, and writes the
//! responses strictly in request order. Side effects keep their arrival order; only the
//! fsync waits overlap, so a producer's pipelined requests share fsyncs. Only Produce
//! requests are handled while earlier responses wait; any other request first waits until
//! every earlier one is answered. At most [`PIPELINE_DEPTH_MAX`] responses wait at a time.
//!
//! Bad input closes this connection only, as Kafka does: a size prefix over
//! `socket.request.max.bytes` or negative, an unparsable header, an unknown API or version,
//! a body that does not decode. The read buffer holds at most one frame plus one read.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use strom_protocol::messages::{ApiKey, ResponseKind};
use strom_protocol::{decode_request, encode_response, FrameDecoder, Incoming, ResponseTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::handlers::Reply;
use crate::sendfile::{splice, write_pieces, FileRecords, Piece};
use crate::server::BrokerContext;

/// The most room made at once in the frame buffer for the rest of a frame. A frame up to
/// this size gets its whole room in one allocation (no growth copies as it arrives); a
/// client that announces a larger frame gets room only as its bytes come.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Responses waiting for their finisher before the connection stops reading requests. A
/// waiting response holds only its small answer (the request's records are in the log by
/// then); a client that sends one record per request (`linger.ms=0`) needs many of them
/// in flight to share one fsync.
pub const PIPELINE_DEPTH_MAX: usize = 128;

/// Completes a response whose handler left a wait to the connection.
pub type Finisher =
    Box<dyn FnOnce(ResponseKind) -> Pin<Box<dyn Future<Output = ResponseKind> + Send>> + Send>;

tokio::task_local! {
    /// The finisher the request being handled left, if any.
    static DEFERRED: RefCell<Option<Finisher>>;
}

/// Whether the request being handled may leave a finisher (it runs on a pipelining
/// connection). Elsewhere (e.g. a handler called directly) handlers wait themselves.
pub fn pipelining() -> bool {
    DEFERRED.try_with(|_| ()).is_ok()
}

/// Leaves `finisher` to complete the response of the request being handled; it runs
/// before the response is written. Call only when [`pipelining`] says so.
pub fn defer(finisher: Finisher) {
    let _ = DEFERRED.try_with(|cell| *cell.borrow_mut() = Some(finisher));
}

/// A response on its way out, in request order.
enum Outgoing {
    Ready(Wire),
    Waiting(JoinHandle<Option<Wire>>),
}

/// An encoded response: bytes, or pieces with records spliced in from segment files.
enum Wire {
    Bytes(Bytes),
    Pieces(Vec<Piece>),
}

/// Serves one connection until the client closes it, it sends bad input, or the broker
/// shuts down (between requests: the requests in flight are finished and answered first).
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, context: Arc<BrokerContext>) {
    let _ = stream.set_nodelay(true);
    let decoder = FrameDecoder::new(context.config.socket_request_max_bytes);
    let mut buf = BytesMut::new();
    let mut shutdown = context.shutdown.clone();
    let mut outgoing: VecDeque<Outgoing> = VecDeque::new();
    loop {
        if write_ready(&mut stream, &mut outgoing, peer).await.is_err() {
            return;
        }
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let missing = decoder.bytes_missing(&buf).unwrap_or(1).max(1);
                buf.reserve(missing.min(READ_CHUNK_BYTES));
                let waiting = match outgoing.front_mut() {
                    Some(Outgoing::Waiting(handle)) => Some(handle),
                    _ => None,
                };
                let event = tokio::select! {
                    read = stream.read_buf(&mut buf) => Event::Read(read),
                    done = wait(waiting) => Event::Finished(done),
                    _ = shutdown.wait_for(|stop| *stop) => Event::Shutdown,
                };
                match event {
                    Event::Read(Ok(0)) => return,
                    Event::Read(Ok(_)) => continue,
                    Event::Read(Err(error)) => {
                        tracing::debug!(%peer, %error, "read failed; closing");
                        return;
                    }
                    Event::Finished(done) => {
                        if finish_front(&mut stream, &mut outgoing, done, peer)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    Event::Shutdown => {
                        let _ = drain(&mut stream, &mut outgoing, peer).await;
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
        // Only Produce requests overlap earlier waits; anything else is handled once every
        // earlier request is answered, exactly as without pipelining (a Fetch then sees the
        // produces before it committed).
        let must_drain = target.api_key != ApiKey::Produce || outgoing.len() >= PIPELINE_DEPTH_MAX;
        if must_drain && drain(&mut stream, &mut outgoing, peer).await.is_err() {
            return;
        }
        match handle_request(&context, incoming, target, peer).await {
            Handled::Respond(next) => outgoing.push_back(next),
            Handled::Nothing => {}
            Handled::Close => return,
        }
    }
}

/// What woke a connection waiting for input.
enum Event {
    Read(std::io::Result<usize>),
    Finished(Option<Wire>),
    Shutdown,
}

/// What handling one frame produced.
enum Handled {
    Respond(Outgoing),
    Nothing,
    Close,
}

async fn handle_request(
    context: &Arc<BrokerContext>,
    incoming: Incoming,
    target: ResponseTarget,
    peer: SocketAddr,
) -> Handled {
    let (reply, finisher) = DEFERRED
        .scope(RefCell::new(None), async {
            let reply = crate::handlers::handle(context, incoming, peer).await;
            (reply, DEFERRED.with(|cell| cell.borrow_mut().take()))
        })
        .await;
    let (body, files) = match reply {
        Reply::Respond(body) => (body, Vec::new()),
        Reply::RespondWithFiles(body, files) => (body, files),
        Reply::Silent => {
            if let Some(finisher) = finisher {
                // Nobody waits for the answer, but the commit must still happen.
                tokio::spawn(finisher(ResponseKind::Produce(Default::default())));
            }
            return Handled::Nothing;
        }
        Reply::Close => {
            tracing::debug!(%peer, "closing the connection after a failed acks=0 produce");
            return Handled::Close;
        }
    };
    match finisher {
        None => match encode(&target, &body, files, peer) {
            Some(wire) => Handled::Respond(Outgoing::Ready(wire)),
            None => Handled::Close,
        },
        Some(finisher) => Handled::Respond(Outgoing::Waiting(tokio::spawn(async move {
            let body = finisher(*body).await;
            encode(&target, &body, files, peer)
        }))),
    }
}

fn encode(
    target: &ResponseTarget,
    body: &ResponseKind,
    files: Vec<FileRecords>,
    peer: SocketAddr,
) -> Option<Wire> {
    let bytes = match encode_response(target, body) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%peer, %error, "cannot encode response; closing the connection");
            return None;
        }
    };
    if files.is_empty() {
        return Some(Wire::Bytes(bytes));
    }
    match splice(&bytes, files, target.api_version) {
        Ok(pieces) => Some(Wire::Pieces(pieces)),
        Err(error) => {
            tracing::error!(%peer, %error, "closing the connection");
            None
        }
    }
}

/// Waits for a finisher, or forever when there is none (a `select!` branch that never
/// fires).
async fn wait(handle: Option<&mut JoinHandle<Option<Wire>>>) -> Option<Wire> {
    match handle {
        Some(handle) => handle.await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// The connection is closed after a write error or a response that could not be made.
struct Closed;

/// Writes the responses at the front that are ready.
async fn write_ready(
    stream: &mut TcpStream,
    outgoing: &mut VecDeque<Outgoing>,
    peer: SocketAddr,
) -> Result<(), Closed> {
    while let Some(Outgoing::Ready(_)) = outgoing.front() {
        if let Some(Outgoing::Ready(wire)) = outgoing.pop_front() {
            write(stream, &wire, peer).await?;
        }
    }
    Ok(())
}

/// The front finisher completed with `done`: write it.
async fn finish_front(
    stream: &mut TcpStream,
    outgoing: &mut VecDeque<Outgoing>,
    done: Option<Wire>,
    peer: SocketAddr,
) -> Result<(), Closed> {
    outgoing.pop_front();
    match done {
        Some(wire) => write(stream, &wire, peer).await,
        None => Err(Closed),
    }
}

/// Writes every response still owed, waiting for finishers in order.
async fn drain(
    stream: &mut TcpStream,
    outgoing: &mut VecDeque<Outgoing>,
    peer: SocketAddr,
) -> Result<(), Closed> {
    while let Some(next) = outgoing.pop_front() {
        let wire = match next {
            Outgoing::Ready(wire) => wire,
            Outgoing::Waiting(handle) => handle.await.ok().flatten().ok_or(Closed)?,
        };
        write(stream, &wire, peer).await?;
    }
    Ok(())
}

async fn write(stream: &mut TcpStream, wire: &Wire, peer: SocketAddr) -> Result<(), Closed> {
    let written = match wire {
        Wire::Bytes(bytes) => stream.write_all(bytes).await,
        Wire::Pieces(pieces) => write_pieces(stream, pieces).await,
    };
    written.map_err(|error| {
        tracing::debug!(%peer, %error, "write failed; closing");
        Closed
    })
}
