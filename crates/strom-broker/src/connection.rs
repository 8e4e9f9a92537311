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
//! a body that does not decode.
//!
//! Memory and time are bounded (the broker-wide bounds are in `limits.rs`):
//! - Before a frame's body is read, its size is taken from the broker-wide budget
//!   `queued.max.request.bytes` (a semaphore of bytes, fair: first come, first served). A
//!   connection that finds the budget spent stops reading, so its client's sends back up in
//!   TCP, and is never closed for it; its timers are paused meanwhile. The bytes go back to
//!   the budget once the request has been handled: the handler has dropped the request by
//!   then (a Produce's records are in the log; a pipelined Produce's finisher holds only its
//!   answer). A connection thus holds budget for one frame at most, and every holder makes
//!   progress (its client sends, or the receive timeout closes it; its handler finishes), so
//!   waiting for budget cannot deadlock.
//! - Beyond the frame it has budget for, a connection buffers at most [`READ_AHEAD_BYTES`]
//!   (the next frames' first bytes, before their size is known and budgeted).
//! - A frame must arrive within `strom.request.receive.timeout.ms` of its first byte (time
//!   spent waiting for budget excluded), or the connection is closed: Kafka has no such
//!   bound, and without it a client that sends a byte now and then holds a connection (and
//!   the frame's budget) for ever.
//! - A connection with no partial frame, no request in progress and no response owed is
//!   closed after `connections.max.idle.ms` with no byte read or written (Kafka's idle
//!   expiry, whose clock also restarts on every socket read or write). A response the client
//!   does not take within `connections.max.idle.ms` closes the connection too.
//! - `max.connections` may close an idle connection to admit a new one ([`Slot`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strom_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use strom_protocol::{
    decode_request, encode_response, ErrorCode, FrameDecoder, Incoming, ResponseTarget, StrBytes,
    SIZE_PREFIX_BYTES,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::authn::{self, ListenerRuntime, SaslSession, Step, Stream, SASL_RECEIVE_BYTES_MAX};
use tokio::sync::{watch, OwnedSemaphorePermit, TryAcquireError};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::handlers::Reply;
use crate::limits::{Bite, Evicted, Slot};
use crate::metrics::{RequestTrace, REMOTE};
use crate::principal::Session;
use crate::sendfile::{splice, write_pieces, write_pieces_copied, FileRecords, Piece};

use crate::server::BrokerContext;

/// The most room made at once in the frame buffer for the rest of a frame. A frame up to
/// this size gets its whole room in one allocation (no growth copies as it arrives); a
/// larger one gets room as its bytes come.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Bytes read past the frame being received (or, before a frame's size is known, at all)
/// without budget: room for a burst of small pipelined requests in one read, little enough
/// that `max.connections` of them are no threat to memory.
pub const READ_AHEAD_BYTES: usize = 16 * 1024;
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
    Ready(Traced),
    Waiting(JoinHandle<Option<Traced>>),
}

/// An encoded response and its request's measurements, completed once it is written.
struct Traced {
    wire: Wire,
    trace: RequestTrace,
}

/// An encoded response: bytes, or pieces with records spliced in from segment files.
enum Wire {
    Bytes(Bytes),
    Pieces(Vec<Piece>),
}

/// Serves one connection until the client closes it, it sends bad input, a bound closes
/// it, or the broker shuts down (between requests: the requests in flight are finished and
/// answered first). `slot` is its admission (`limits.rs`); dropping it frees its place.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    context: Arc<BrokerContext>,
    slot: Slot,
    listener: Arc<ListenerRuntime>,
) {
    let _ = tcp.set_nodelay(true);
    let handshake_max = Duration::from_millis(context.config.request_receive_timeout_ms);
    let close = match authn::establish(tcp, &listener, handshake_max).await {
        Ok((stream, principal)) => {
            let mut session = Session::anonymous(peer, listener.name.clone(), listener.protocol);
            session.principal = principal;
            tracing::debug!(%peer, listener = %listener.name, principal = %session.principal,
                "connection established");
            let key = (listener.name.clone(), peer);
            let mut connection = Connection::new(stream, session, context, slot, listener);
            let close = connection.run().await;
            // Share sessions used on this connection end with it (their members' acquired
            // records are released at once, as Kafka does).
            connection.context.shares.connection_closed(&key).await;
            (connection.context, connection.slot, close)
        }
        Err(error) => {
            // A plaintext client on a TLS port, a stalled or failed handshake, an unmapped
            // certificate subject: this connection ends, nothing else is affected.
            if let authn::TransportError::Principal(reason) = &error {
                context.metrics.connections.failed_authentication.inc();
                authn::audit_failure(peer, &listener.name, Some("SSL"), reason);
            } else {
                tracing::debug!(%peer, listener = %listener.name, %error, "closing");
            }
            (context, slot, Close::Done)
        }
    };
    let (context, slot, close) = close;
    context.metrics.connections.closed.inc();
    let limits = slot.limits();
    match close {
        Close::ReceiveTimeout => limits.bite(Bite::ReceiveTimeout, peer.ip()),
        Close::Idle => limits.bite(Bite::Idle, peer.ip()),
        Close::WriteTimeout => limits.bite(Bite::WriteTimeout, peer.ip()),
        Close::Evicted => tracing::debug!(%peer, "closed to admit a new connection"),
        Close::Done => {}
    }
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The client closed it, it sent bad input, a write failed, or the broker shuts down
    /// (each logged where it happens).
    Done,
    /// A frame did not arrive within `strom.request.receive.timeout.ms`.
    ReceiveTimeout,
    /// Idle for `connections.max.idle.ms`.
    Idle,
    /// A response not taken within `connections.max.idle.ms`.
    WriteTimeout,
    /// Closed to admit a new connection at `max.connections`.
    Evicted,
}

impl From<Evicted> for Close {
    fn from(_: Evicted) -> Close {
        Close::Evicted
    }
}

/// The frame at the front of the read buffer, once its size is known: its budget is held
/// from then until its request has been handled.
struct Front {
    size_bytes: usize,
    _budget: Option<OwnedSemaphorePermit>,
}

struct Connection {
    stream: Stream,
    /// The listener the connection came in on (its protocol, TLS and SASL settings).
    listener: Arc<ListenerRuntime>,
    /// The SASL exchange's state on SASL listeners.
    sasl: Option<SaslSession>,
    peer: SocketAddr,
    /// The principal, address and listener handed to every request handler.
    session: Session,
    /// A quota throttle: no request is read before this (Kafka mutes the channel).
    muted_until: Option<Instant>,
    context: Arc<BrokerContext>,
    slot: Slot,
    decoder: FrameDecoder,
    /// Bytes received and not yet taken as frames: the front frame (budgeted once its size
    /// is known) and at most [`READ_AHEAD_BYTES`] after it.
    buf: BytesMut,
    front: Option<Front>,
    outgoing: VecDeque<Outgoing>,
    shutdown: watch::Receiver<bool>,
    /// When the first byte of the frame being received arrived (moved later by time spent
    /// waiting for budget).
    frame_started: Option<Instant>,
    /// The last byte read or written, or the last request handled.
    last_activity: Instant,
    idle_max: Option<Duration>,
    receive_max: Duration,
    /// One timer for the idle and receive deadlines, armed no later than the nearer one; on
    /// firing the deadline is checked again (reads move it on without resetting the timer).
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
}

/// What woke a connection waiting for input.
enum Event {
    Read(std::io::Result<usize>),
    Finished(Option<Traced>),
    Shutdown,
    Timer,
    Evicted,
}

impl Connection {
    fn new(
        stream: Stream,
        session: Session,
        context: Arc<BrokerContext>,
        slot: Slot,
        listener: Arc<ListenerRuntime>,
    ) -> Self {
        let config = &context.config;
        let now = Instant::now();
        Connection {
            stream,
            sasl: listener.sasl.as_ref().map(|_| SaslSession::new()),
            listener,
            peer: session.client_address,
            session,
            muted_until: None,
            decoder: FrameDecoder::new(config.socket_request_max_bytes),
            idle_max: config.connections_max_idle_ms.map(Duration::from_millis),
            receive_max: Duration::from_millis(config.request_receive_timeout_ms),
            shutdown: context.shutdown.clone(),
            context,
            slot,
            buf: BytesMut::new(),
            front: None,
            outgoing: VecDeque::new(),
            frame_started: None,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now)),
            timer_at: None,
        }
    }

    async fn run(&mut self) -> Close {
        match self.serve_frames().await {
            Ok(never) => match never {},
            Err(close) => close,
        }
    }

    async fn serve_frames(&mut self) -> Result<std::convert::Infallible, Close> {
        loop {
            self.write_ready().await?;
            if let Some(until) = self.muted_until.take() {
                // Throttled: answer everything pending, then read nothing until the time is up.
                self.drain().await?;
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return Err(Close::Done),
                }
            }
            if self.front.is_none() {
                match self.decoder.frame_size(&self.buf) {
                    Ok(Some(size_bytes))
                        if size_bytes > SASL_RECEIVE_BYTES_MAX && !self.authenticated() =>
                    {
                        tracing::info!(peer = %self.peer, size_bytes, "frame too large before SASL authentication; closing the connection");
                        return Err(Close::Done);
                    }
                    Ok(Some(size_bytes)) => self.reserve(size_bytes).await?,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::info!(peer = %self.peer, %error, "refused frame; closing the connection");
                        return Err(Close::Done);
                    }
                }
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    let front = self.front.take();
                    self.frame_started = None;
                    if frame.len() > READ_AHEAD_BYTES {
                        // The buffer shares the large frame's allocation: copy the few bytes
                        // after it out, so the allocation goes when the request is handled.
                        self.buf = BytesMut::from(&self.buf[..]);
                    }
                    self.handle(frame, front).await?;
                }
                Ok(None) => self.wait_for_input().await?,
                Err(error) => {
                    tracing::info!(peer = %self.peer, %error, "refused frame; closing the connection");
                    return Err(Close::Done);
                }
            }
        }
    }

    /// Takes `size_bytes` from the budget for the front frame, waiting (without reading,
    /// while still writing the responses that complete) until it has room.
    async fn reserve(&mut self, size_bytes: usize) -> Result<(), Close> {
        let budget = match self.slot.limits().budget() {
            Some(budget) if size_bytes > 0 => Arc::clone(budget),
            _ => {
                self.front = Some(Front {
                    size_bytes,
                    _budget: None,
                });
                return Ok(());
            }
        };
        // A frame's size fits an i32, and so a u32; anything else is a bug upstream.
        let Ok(permits) = u32::try_from(size_bytes) else {
            return Err(Close::Done);
        };
        let permit = match Arc::clone(&budget).try_acquire_many_owned(permits) {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(Close::Done),
            Err(TryAcquireError::NoPermits) => self.wait_for_budget(budget, permits).await?,
        };
        self.front = Some(Front {
            size_bytes,
            _budget: Some(permit),
        });
        Ok(())
    }

    async fn wait_for_budget(
        &mut self,
        budget: Arc<tokio::sync::Semaphore>,
        permits: u32,
    ) -> Result<OwnedSemaphorePermit, Close> {
        self.slot.limits().bite(Bite::Budget, self.peer.ip());
        self.slot.busy()?;
        let started = Instant::now();
        // One acquire for the whole wait: its place in the semaphore's queue is kept.
        let acquire = budget.acquire_many_owned(permits);
        tokio::pin!(acquire);
        let permit = loop {
            let event = {
                let waiting = front_waiting(&mut self.outgoing);
                tokio::select! {
                    permit = &mut acquire => break permit.map_err(|_| Close::Done)?,
                    done = wait(waiting) => Event::Finished(done),
                    _ = self.shutdown.wait_for(|stop| *stop) => Event::Shutdown,
                }
            };
            match event {
                Event::Finished(done) => self.finish_front(done).await?,
                _ => {
                    let _ = self.drain().await;
                    return Err(Close::Done);
                }
            }
        };
        // The receive clock stops while the broker keeps the frame waiting.
        let waited = started.elapsed();
        self.frame_started = self
            .frame_started
            .map(|at| at.checked_add(waited).unwrap_or(at));
        Ok(permit)
    }

    async fn handle(&mut self, frame: Bytes, front: Option<Front>) -> Result<(), Close> {
        self.slot.busy()?;
        if self
            .sasl
            .as_ref()
            .is_some_and(SaslSession::expects_raw_tokens)
        {
            // After SaslHandshake v0 the tokens come without a Kafka header.
            let result = self.raw_token(&frame).await;
            drop(front);
            self.last_activity = Instant::now();
            return result;
        }
        let incoming = match decode_request(&frame, &self.context.api_versions) {
            Ok(incoming) => incoming,
            Err(error) => {
                tracing::info!(peer = %self.peer, %error, "refused request; closing the connection");
                return Err(Close::Done);
            }
        };
        let mut trace = RequestTrace::begin(&incoming, std::time::Instant::now());
        let target = ResponseTarget::for_incoming(&incoming);
        // Only Produce requests overlap earlier waits; anything else is handled once every
        // earlier request is answered, exactly as without pipelining (a Fetch then sees the
        // produces before it committed).
        let must_drain =
            target.api_key != ApiKey::Produce || self.outgoing.len() >= PIPELINE_DEPTH_MAX;
        if must_drain {
            self.drain().await?;
        }
        trace.start();
        if self.sasl.is_some() {
            match target.api_key {
                ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
                    let result = self.sasl_request(incoming, &target, trace).await;
                    drop(front);
                    self.last_activity = Instant::now();
                    return result;
                }
                ApiKey::ApiVersions => {}
                api if !self.authenticated() => {
                    // Kafka: "Unexpected Kafka request of type X during SASL handshake".
                    authn::audit_failure(
                        self.peer,
                        &self.listener.name,
                        None,
                        &format!("unexpected {api:?} request before SASL authentication"),
                    );
                    return Err(Close::Done);
                }
                _ => {}
            }
            if self.session_expired() {
                tracing::info!(peer = %self.peer, principal = %self.session.principal,
                    "SASL session expired without re-authentication (connections.max.reauth.ms); closing");
                return Err(Close::Done);
            }
        }
        let handled = handle_request(&self.context, incoming, target, &self.session, trace).await;
        // The request has been handled and dropped: its bytes go back to the budget.
        drop(frame);
        drop(front);
        self.last_activity = Instant::now();
        match handled {
            Handled::Respond(next, throttle) => {
                if !throttle.is_zero() {
                    // A quota throttle: nothing more is read from this client for that long.
                    self.muted_until = Some(Instant::now() + throttle);
                }
                self.outgoing.push_back(next);
            }
            Handled::Nothing => {}
            Handled::Close => return Err(Close::Done),
        }
        Ok(())
    }

    /// Waits for bytes, a finisher, shutdown, a deadline or eviction.
    async fn wait_for_input(&mut self) -> Result<(), Close> {
        // Bytes of the next frame that came with the previous one: their clock starts when
        // the connection turns back to reading (handling a request does not count).
        if !self.buf.is_empty() && self.frame_started.is_none() {
            self.frame_started = Some(Instant::now());
        }
        if self.front.is_none() && self.outgoing.is_empty() {
            self.slot.idle(self.last_activity)?;
        } else {
            self.slot.busy()?;
        }
        let deadline = self.deadline();
        if let Some(deadline) = deadline {
            if self.timer_at.is_none_or(|at| at > deadline) {
                self.timer.as_mut().reset(deadline);
                self.timer_at = Some(deadline);
            }
        }
        let budgeted = self
            .front
            .as_ref()
            .map_or(0, |front| SIZE_PREFIX_BYTES + front.size_bytes);
        let limit = (budgeted + READ_AHEAD_BYTES)
            .saturating_sub(self.buf.len())
            .max(1);
        self.buf.reserve(limit.min(READ_CHUNK_BYTES));
        let event = {
            let mut reader = (&mut self.stream).take(limit as u64);
            let waiting = front_waiting(&mut self.outgoing);
            tokio::select! {
                read = reader.read_buf(&mut self.buf) => Event::Read(read),
                done = wait(waiting) => Event::Finished(done),
                _ = self.shutdown.wait_for(|stop| *stop) => Event::Shutdown,
                _ = &mut self.timer, if deadline.is_some() => Event::Timer,
                _ = self.slot.evicted() => Event::Evicted,
            }
        };
        match event {
            Event::Read(Ok(0)) => Err(Close::Done),
            Event::Read(Ok(_)) => {
                self.last_activity = Instant::now();
                // A frame's receive clock starts with its first byte.
                if self.frame_started.is_none() {
                    self.frame_started = Some(self.last_activity);
                }
                Ok(())
            }
            Event::Read(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "read failed; closing");
                Err(Close::Done)
            }
            Event::Finished(done) => self.finish_front(done).await,
            Event::Shutdown => {
                let _ = self.drain().await;
                Err(Close::Done)
            }
            Event::Timer => {
                self.timer_at = None;
                match self.deadline() {
                    Some(deadline) if Instant::now() >= deadline => Err(if self.buf.is_empty() {
                        Close::Idle
                    } else {
                        Close::ReceiveTimeout
                    }),
                    _ => Ok(()),
                }
            }
            Event::Evicted => Err(Close::Evicted),
        }
    }

    /// When this connection is closed if nothing happens: the receive deadline while a
    /// frame is partly in, else the idle deadline while nothing is owed; `None` for never.
    fn deadline(&self) -> Option<Instant> {
        if !self.buf.is_empty() {
            return self.frame_started?.checked_add(self.receive_max);
        }
        if !self.outgoing.is_empty() {
            return None;
        }
        self.last_activity.checked_add(self.idle_max?)
    }

    /// Writes the responses at the front that are ready.
    async fn write_ready(&mut self) -> Result<(), Close> {
        while let Some(Outgoing::Ready(_)) = self.outgoing.front() {
            if let Some(Outgoing::Ready(traced)) = self.outgoing.pop_front() {
                self.write(traced).await?;
            }
        }
        Ok(())
    }

    /// The front finisher completed with `done`: write it.
    async fn finish_front(&mut self, done: Option<Traced>) -> Result<(), Close> {
        self.outgoing.pop_front();
        match done {
            Some(traced) => self.write(traced).await,
            None => Err(Close::Done),
        }
    }

    /// Writes every response still owed, waiting for finishers in order.
    async fn drain(&mut self) -> Result<(), Close> {
        while let Some(next) = self.outgoing.pop_front() {
            let traced = match next {
                Outgoing::Ready(traced) => traced,
                Outgoing::Waiting(handle) => handle.await.ok().flatten().ok_or(Close::Done)?,
            };
            self.write(traced).await?;
        }
        Ok(())
    }

    /// Writes one response; a client that does not take it within
    /// `connections.max.idle.ms` is gone as far as the broker is concerned.
    async fn write(&mut self, traced: Traced) -> Result<(), Close> {
        let Traced { wire, trace } = traced;
        let write_started = std::time::Instant::now();
        let writing = async {
            match (&mut self.stream, &wire) {
                (Stream::Plain(tcp), Wire::Bytes(bytes)) => tcp.write_all(bytes).await,
                (Stream::Plain(tcp), Wire::Pieces(pieces)) => write_pieces(tcp, pieces).await,
                // TLS encrypts in memory: records are read from their files (no sendfile),
                // and the TLS records are flushed with each response.
                (stream @ Stream::Tls(_), Wire::Bytes(bytes)) => {
                    stream.write_all(bytes).await?;
                    stream.flush().await
                }
                (stream @ Stream::Tls(_), Wire::Pieces(pieces)) => {
                    write_pieces_copied(stream, pieces).await?;
                    stream.flush().await
                }
            }
        };
        let written = match self.idle_max {
            Some(limit) => match tokio::time::timeout(limit, writing).await {
                Ok(written) => written,
                Err(_) => return Err(Close::WriteTimeout),
            },
            None => writing.await,
        };
        match written {
            Ok(()) => {
                self.last_activity = Instant::now();
                trace.sent(&self.context.metrics, write_started);
                Ok(())
            }
            Err(error) => {
                tracing::debug!(peer = %self.peer, %error, "write failed; closing");
                Err(Close::Done)
            }
        }
    }
}

/// The finisher at the front of the responses owed, if the front one waits for one.
fn front_waiting(outgoing: &mut VecDeque<Outgoing>) -> Option<&mut JoinHandle<Option<Traced>>> {
    match outgoing.front_mut() {
        Some(Outgoing::Waiting(handle)) => Some(handle),
        _ => None,
    }
}

/// What handling one frame produced.
enum Handled {
    /// The response owed, and the quota throttle the connection then observes (zero: none).
    Respond(Outgoing, Duration),
    Nothing,
    Close,
}

async fn handle_request(
    context: &Arc<BrokerContext>,
    incoming: Incoming,
    target: ResponseTarget,
    session: &Session,
    mut trace: RequestTrace,
) -> Handled {
    let peer = session.client_address;
    let started = std::time::Instant::now();
    let (reply, finisher, remote) = DEFERRED
        .scope(
            RefCell::new(None),
            REMOTE.scope(std::cell::Cell::new(Duration::ZERO), async {
                let reply = crate::principal::LISTENER
                    .scope(
                        session.listener_name.clone(),
                        crate::handlers::handle(context, incoming, session),
                    )
                    .await;
                (
                    reply,
                    DEFERRED.with(|cell| cell.borrow_mut().take()),
                    REMOTE.with(|remote| remote.get()),
                )
            }),
        )
        .await;
    trace.handler_returned(started.elapsed(), remote);
    let metrics = &context.metrics;
    let (body, files) = match reply {
        Reply::Respond(body) => (body, Vec::new()),
        Reply::RespondWithFiles(body, files) => (body, files),
        Reply::Silent => {
            if let Some(finisher) = finisher {
                // Nobody waits for the answer, but the commit must still happen.
                tokio::spawn(finisher(ResponseKind::Produce(Default::default())));
            }
            trace.answered_silently(metrics, &topic_namer(context));
            trace.unanswered(metrics);
            return Handled::Nothing;
        }
        Reply::Close => {
            tracing::debug!(%peer, "closing the connection after a failed acks=0 produce");
            trace.unanswered(metrics);
            return Handled::Close;
        }
    };
    // A quota throttle the handler set (`quotas.rs`): carried into the final response of a
    // Produce that waits, and the connection then reads nothing for that long.
    let throttle_ms = crate::quotas::throttle_of(&body);
    let throttle = Duration::from_millis(u64::try_from(throttle_ms).unwrap_or(0));
    match finisher {
        None => {
            trace.answered(metrics, &body, &files, &topic_namer(context));
            match encode(&target, &body, files, peer) {
                Some(wire) => Handled::Respond(Outgoing::Ready(Traced { wire, trace }), throttle),
                None => Handled::Close,
            }
        }
        Some(finisher) => {
            let context = Arc::clone(context);
            let waiting = tokio::spawn(async move {
                let waited = std::time::Instant::now();
                let mut body = finisher(*body).await;
                crate::quotas::set_throttle(&mut body, throttle_ms);
                trace.finisher_returned(waited.elapsed());
                trace.answered(&context.metrics, &body, &files, &topic_namer(&context));
                let wire = encode(&target, &body, files, peer)?;
                Some(Traced { wire, trace })
            });
            Handled::Respond(Outgoing::Waiting(waiting), throttle)
        }
    }
}

/// Resolves a topic id to its name through the current image (for per-topic metrics of
/// requests that name topics by id).
fn topic_namer(context: &BrokerContext) -> impl Fn(uuid::Uuid) -> Option<String> + '_ {
    move |id| {
        context
            .metadata
            .image()
            .topic_by_id(id)
            .map(|t| t.name.clone())
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
async fn wait(handle: Option<&mut JoinHandle<Option<Traced>>>) -> Option<Traced> {
    match handle {
        Some(handle) => handle.await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// The longest reason written on an authentication failure's audit line.
const AUDIT_REASON_CHARS_MAX: usize = 512;

/// The SASL side of a connection (`authn.rs` holds the exchange itself).
impl Connection {
    /// Whether requests other than the SASL ones may be served: always on listeners without
    /// SASL, after a successful exchange on SASL ones.
    fn authenticated(&self) -> bool {
        self.sasl
            .as_ref()
            .is_none_or(|sasl| sasl.authenticated.is_some())
    }

    fn session_expired(&self) -> bool {
        self.sasl
            .as_ref()
            .and_then(|sasl| sasl.expires_at)
            .is_some_and(|at| Instant::now() >= at)
    }

    /// Looks up a user's SCRAM credential in the current metadata image.
    fn scram_lookup(
        context: &BrokerContext,
    ) -> impl Fn(&str, strom_security::ScramMechanism) -> Option<strom_security::ScramCredential> + '_
    {
        move |user, mechanism| {
            let image = context.metadata.image();
            let c = image.scram_credential(user, mechanism.id())?;
            Some(strom_security::ScramCredential {
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: u32::try_from(c.iterations).ok()?,
            })
        }
    }

    /// Looks up a live delegation token's SCRAM credential and owner in the current
    /// metadata image; `None` when tokens are disabled, or the token is unknown or expired.
    fn token_lookup(
        context: &BrokerContext,
    ) -> impl Fn(&str, strom_security::ScramMechanism) -> Option<authn::TokenCredential> + '_ {
        move |token_id, mechanism| {
            let image = context.metadata.image();
            let token = image.delegation_token(token_id)?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            if token.expired(now_ms) {
                return None;
            }
            Some(authn::TokenCredential {
                credential: context.token_credentials.credential(
                    &context.config.tokens,
                    &image,
                    token_id,
                    mechanism,
                )?,
                owner: crate::principal::KafkaPrincipal::parse(&token.owner)?,
                expiry_timestamp_ms: token.expiry_timestamp_ms.min(token.max_timestamp_ms),
            })
        }
    }

    /// One SASL step; returns what to answer, having recorded success or failure.
    fn sasl_step(&mut self, token: &[u8]) -> Step {
        let (Some(sasl), Some(settings)) = (self.sasl.as_mut(), self.listener.sasl.as_ref()) else {
            return Step::Failed("this listener does not authenticate with SASL".into());
        };
        let reauth = sasl.authenticated.is_some();
        let user = Self::scram_lookup(&self.context);
        let token_lookup = Self::token_lookup(&self.context);
        let credentials = authn::Credentials {
            user: &user,
            token: &token_lookup,
        };
        let step = sasl.step(
            settings,
            self.listener.oauth.as_deref(),
            token,
            &credentials,
        );
        let metrics = &self.context.metrics.connections;
        match &step {
            Step::Continue(_) => {}
            Step::Done { principal, .. } => {
                if reauth {
                    metrics.successful_reauthentication.inc();
                } else {
                    metrics.successful_authentication.inc();
                }
                let mechanism = sasl.authenticated.as_ref().map(|(_, m)| m.clone());
                tracing::debug!(peer = %self.peer, listener = %self.listener.name,
                    %principal, ?mechanism, reauth, "authenticated");
                self.session.principal = principal.clone();
                self.session.sasl_mechanism = mechanism;
                sasl.expires_at = None;
            }
            Step::Failed(reason) => {
                if reauth {
                    metrics.failed_reauthentication.inc();
                } else {
                    metrics.failed_authentication.inc();
                }
                // An OAUTHBEARER refusal tells the client only the error JSON; the audit
                // line says why.
                // Bounded: a reason may quote claims of the client's token.
                let reason: String = match sasl.rejected.take() {
                    Some(why) => format!("{reason}: {why}"),
                    None => reason.clone(),
                }
                .chars()
                .take(AUDIT_REASON_CHARS_MAX)
                .collect();
                let mechanism = self.session.sasl_mechanism.clone();
                authn::audit_failure(
                    self.peer,
                    &self.listener.name,
                    mechanism.as_deref(),
                    &reason,
                );
            }
        }
        step
    }

    /// A token after SaslHandshake v0: answered as a raw frame; a failure closes the
    /// connection (v0 has no way to carry an error), after the failed-authentication delay.
    async fn raw_token(&mut self, token: &[u8]) -> Result<(), Close> {
        let reply = match self.sasl_step(token) {
            Step::Continue(reply) | Step::Done { token: reply, .. } => reply,
            Step::Failed(_) => {
                tokio::time::sleep(self.listener.failed_delay).await;
                return Err(Close::Done);
            }
        };
        let mut frame = Vec::with_capacity(4 + reply.len());
        frame.extend_from_slice(&(reply.len() as u32).to_be_bytes());
        frame.extend_from_slice(&reply);
        self.write_raw(&frame).await
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Close> {
        let written = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.receive_max, written).await {
            Ok(Ok(())) => {
                self.last_activity = Instant::now();
                Ok(())
            }
            Ok(Err(_)) => Err(Close::Done),
            Err(_) => Err(Close::WriteTimeout),
        }
    }

    /// SaslHandshake or SaslAuthenticate on a SASL listener.
    async fn sasl_request(
        &mut self,
        incoming: Incoming,
        target: &ResponseTarget,
        mut trace: RequestTrace,
    ) -> Result<(), Close> {
        use strom_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
        let Incoming::Request(request) = incoming else {
            return Err(Close::Done);
        };
        let version = request.api_version();
        let mut close_after = false;
        let mut delay = false;
        let response = match request.body {
            RequestKind::SaslHandshake(body) => {
                let mechanism = body.mechanism.as_str().to_string();
                let (Some(sasl), Some(settings)) =
                    (self.sasl.as_mut(), self.listener.sasl.as_ref())
                else {
                    return Err(Close::Done);
                };
                let enabled: Vec<StrBytes> = settings
                    .mechanisms
                    .iter()
                    .map(|m| StrBytes::from_string(m.clone()))
                    .collect();
                let error = if sasl.in_exchange() {
                    ErrorCode::ILLEGAL_SASL_STATE
                } else if sasl.handshake(settings, &mechanism, version) {
                    ErrorCode::NONE
                } else {
                    ErrorCode::UNSUPPORTED_SASL_MECHANISM
                };
                if error != ErrorCode::NONE {
                    close_after = true;
                    self.context.metrics.connections.failed_authentication.inc();
                    authn::audit_failure(
                        self.peer,
                        &self.listener.name,
                        Some(&mechanism),
                        &format!("SaslHandshake refused: {error:?}"),
                    );
                }
                ResponseKind::SaslHandshake(
                    SaslHandshakeResponse::default()
                        .with_error_code(error.code())
                        .with_mechanisms(enabled),
                )
            }
            RequestKind::SaslAuthenticate(body) => {
                let in_exchange = self.sasl.as_ref().is_some_and(SaslSession::in_exchange);
                let (error, message, token, lifetime_ms) = if !in_exchange {
                    close_after = true;
                    authn::audit_failure(
                        self.peer,
                        &self.listener.name,
                        None,
                        "SaslAuthenticate without a SaslHandshake before it",
                    );
                    (
                        ErrorCode::ILLEGAL_SASL_STATE,
                        Some(
                            "Unexpected SaslAuthenticate request: no SaslHandshake before it"
                                .to_string(),
                        ),
                        Vec::new(),
                        0,
                    )
                } else {
                    match self.sasl_step(&body.auth_bytes) {
                        Step::Continue(token) => (ErrorCode::NONE, None, token, 0),
                        Step::Done { token, .. } => {
                            let lifetime_ms = self.start_session(version);
                            (ErrorCode::NONE, None, token, lifetime_ms)
                        }
                        Step::Failed(message) => {
                            close_after = true;
                            delay = true;
                            (
                                ErrorCode::SASL_AUTHENTICATION_FAILED,
                                Some(message),
                                Vec::new(),
                                0,
                            )
                        }
                    }
                };
                ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(error.code())
                        .with_error_message(message.map(StrBytes::from_string))
                        .with_auth_bytes(Bytes::from(token))
                        .with_session_lifetime_ms(lifetime_ms),
                )
            }
            _ => return Err(Close::Done),
        };
        if delay {
            // Kafka delays the answer to a failed authentication, slowing password guessing.
            tokio::time::sleep(self.listener.failed_delay).await;
        }
        trace.answered(&self.context.metrics, &response, &[], &|_| None);
        let Some(wire) = encode(target, &response, Vec::new(), self.peer) else {
            return Err(Close::Done);
        };
        self.write(Traced { wire, trace }).await?;
        if close_after {
            return Err(Close::Done);
        }
        Ok(())
    }

    /// Starts (or renews) the session after a successful exchange; returns the lifetime to
    /// announce (`session_lifetime_ms`, 0 for none). Only clients that can re-authenticate
    /// (SaslAuthenticate v1+) get an expiring session, as in Kafka.
    fn start_session(&mut self, version: i16) -> i64 {
        let max_ms = self
            .listener
            .sasl
            .as_ref()
            .map_or(0, |settings| settings.max_reauth_ms);
        let Some(sasl) = self.sasl.as_mut() else {
            return 0;
        };
        // The credential's own lifetime (an OAUTHBEARER token's exp) bounds the session as
        // `connections.max.reauth.ms` does; the smaller wins (Kafka's
        // `calcCompletionTimesAndReturnSessionLifetimeMs`). At least 1 ms: 0 would announce
        // a session that never expires.
        let credential_ms = sasl.credential_expires_ms.map(|exp| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            u64::try_from(exp.saturating_sub(now)).unwrap_or(0).max(1)
        });
        let lifetime_ms = match (max_ms, credential_ms) {
            (0, None) => 0,
            (0, Some(c)) => c,
            (m, None) => m,
            (m, Some(c)) => m.min(c),
        };
        if lifetime_ms == 0 || version < 1 {
            sasl.expires_at = None;
            return 0;
        }
        sasl.expires_at = Instant::now().checked_add(Duration::from_millis(lifetime_ms));
        i64::try_from(lifetime_ms).unwrap_or(i64::MAX)
    }
}
