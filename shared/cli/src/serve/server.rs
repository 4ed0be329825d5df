//! `migrations serve`: every route in one process.
//!
//! The server loop is our own (not `axum::serve`) so that it can defend itself
//! like a production server; every bound below is a flag with an env fallback:
//!
//! - at most `--max-connections` open connections: at the cap, the loop makes
//!   room for the connection it just accepted by closing the one that has waited
//!   longest (1 s or more) for a request — an idle socket or a stalled head, never
//!   one being served — and accepts nothing else meanwhile (later clients wait in
//!   the kernel's listen backlog);
//! - each connection runs a watchdog: a request head (request line and headers)
//!   must arrive within `--header-timeout-secs` of the accept or of its first
//!   byte, a keep-alive connection with no new request is closed after
//!   `--idle-timeout-secs`; past a deadline the socket is simply closed;
//! - a request body is buffered here, before any handler runs: a declared
//!   `Content-Length` over 6 MB is answered 413 at once, a body that has not fully
//!   arrived within `--body-timeout-secs` of the headers is answered 408, and all
//!   bodies being buffered at once share a budget of `--max-body-buffer-mb`;
//! - at most `--max-in-flight` requests run handlers at once; the others wait for
//!   a slot, and one that gets none within its request timeout is answered 503
//!   with `Retry-After: 1`. Slow clients never hold a slot: their bodies are read
//!   before they ask for one;
//! - a request gets `--request-timeout-secs` from its headers to its response
//!   (body, slot and handler together), else 408;
//! - SIGINT or SIGTERM stops accepting, closes idle connections, lets in-flight
//!   requests finish for up to `--shutdown-grace-secs`, then exits 0.
//!
//! Refusals are JSON `{"detail": ...}` like every other error, and close the
//! connection. Behind API Gateway the Lambdas get these limits from AWS instead.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use super::ServeArgs;
use api::ApiError;
use api::extract::MAX_BODY_BYTES;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, timeout_at};
use tower::ServiceExt;

// ----- limits -----------------------------------------------------------------

/// The server's bounds, from the flags.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    header: Duration,
    body: Duration,
    request: Duration,
    idle: Duration,
    max_connections: u32,
    max_in_flight: u32,
    /// Bytes of request bodies buffered at once, across connections.
    body_buffer: usize,
    shutdown_grace: Duration,
}

/// Past its request timeout a request is answered 408 by [`respond`]; the
/// watchdog closes the connection only if even that does not happen this much later.
const REQUEST_SLACK: Duration = Duration::from_secs(5);

impl Limits {
    pub(super) fn from_args(args: &ServeArgs) -> Self {
        Limits {
            header: Duration::from_secs(args.header_timeout_secs),
            body: Duration::from_secs(args.body_timeout_secs),
            request: Duration::from_secs(args.request_timeout_secs),
            idle: Duration::from_secs(args.idle_timeout_secs),
            max_connections: args.max_connections,
            max_in_flight: args.max_in_flight,
            body_buffer: (args.max_body_buffer_mb as usize * 1024 * 1024).max(MAX_BODY_BYTES),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        }
    }

    /// How long a connection may stay in `phase`.
    fn allowance(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Head => self.header,
            Phase::Request => self.request + REQUEST_SLACK,
            Phase::Idle => self.idle,
        }
    }
}

// ----- signals ----------------------------------------------------------------

/// SIGINT and SIGTERM, listened to from startup on.
pub(super) struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt())
                .map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
            let terminate = signal(SignalKind::terminate())
                .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
            Ok(Signals {
                interrupt,
                terminate,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

// ----- the accept loop and shutdown ---------------------------------------------

/// What every connection shares.
struct Shared {
    app: Router,
    limits: Limits,
    http: http1::Builder,
    /// One permit per request running a handler.
    in_flight: Arc<Semaphore>,
    /// One permit per byte of request body buffered.
    body_budget: Arc<Semaphore>,
    /// The clocks of the open connections, by id: at the cap, the accept loop
    /// closes the one that has waited longest for a request.
    open: Mutex<HashMap<u64, Arc<Clock>>>,
    next_id: AtomicU64,
}

/// At the connection cap, a connection waiting this long for a request (or in
/// the middle of a head) may be closed to make room for a new one.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

impl Shared {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Clock>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn register(self: &Arc<Self>, clock: Arc<Clock>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open().insert(id, clock);
        Registered {
            shared: self.clone(),
            id,
        }
    }

    /// Asks the connection that has waited longest for a request (at least
    /// [`EVICTABLE_AFTER`]) to close; never one serving a request.
    fn evict_longest_waiting(&self) -> bool {
        let now = Instant::now();
        let victim = self
            .open()
            .values()
            .filter_map(|clock| clock.waiting_since().map(|since| (since, clock.clone())))
            .filter(|(since, _)| now.duration_since(*since) >= EVICTABLE_AFTER)
            .min_by_key(|(since, _)| *since);
        match victim {
            Some((_, clock)) => {
                clock.evict();
                true
            }
            None => false,
        }
    }
}

/// A connection's entry in [`Shared::open`], removed when the connection ends.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.open().remove(&self.id);
    }
}

/// Accepts until SIGINT/SIGTERM, then drains (see the module documentation).
pub(super) async fn run_server(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut signals: Signals,
) {
    let mut http = http1::Builder::new();
    // The connection watchdog times request heads instead: hyper's timer cannot
    // tell a half-sent head from a keep-alive connection waiting for its next request.
    http.header_read_timeout(None);
    let shared = Arc::new(Shared {
        app,
        limits,
        http,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight as usize)),
        body_budget: Arc::new(Semaphore::new(limits.body_buffer)),
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    });
    let connections = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop, stopping) = watch::channel(false);
    let mut warned_full: Option<Instant> = None;

    let signal = 'accept: loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            signal = signals.recv() => break signal,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                tracing::error!(%error, "accept failed; pausing for a second");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    signal = signals.recv() => break signal,
                }
            }
        };
        // A connection slot: at the cap, accept nothing more (the next clients
        // wait in the listen backlog) and make room for this one by closing the
        // connection that has waited longest for a request (an idle socket, a
        // stalled head); connections serving a request are never cut.
        let slot = match connections.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned_full.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: closing the longest-waiting connections"
                    );
                    warned_full = Some(Instant::now());
                }
                loop {
                    let evicted = shared.evict_longest_waiting();
                    // None could go yet, or it began a request meanwhile: look again.
                    let retry = if evicted {
                        EVICTABLE_AFTER
                    } else {
                        EVICTABLE_AFTER / 4
                    };
                    tokio::select! {
                        slot = connections.clone().acquire_owned() => match slot {
                            Ok(slot) => break slot,
                            Err(_) => break 'accept "closed",
                        },
                        () = tokio::time::sleep(retry) => {}
                        signal = signals.recv() => break 'accept signal,
                    }
                }
            }
        };
        tokio::spawn(connection(
            stream,
            peer,
            shared.clone(),
            stopping.clone(),
            slot,
        ));
    };

    drop(listener);
    let open = limits.max_connections as usize - connections.available_permits();
    tracing::info!(
        signal,
        open,
        grace_secs = limits.shutdown_grace.as_secs(),
        "shutting down: no new connections; in-flight requests finish"
    );
    let _ = stop.send(true);
    // Every connection task holds one permit until it ends.
    let all_closed = connections.acquire_many(limits.max_connections);
    let drained = tokio::select! {
        closed = tokio::time::timeout(limits.shutdown_grace, all_closed) => closed.is_ok(),
        signal = signals.recv() => {
            tracing::warn!(signal, "second signal: exiting now");
            return;
        }
    };
    if drained {
        tracing::info!("every connection closed");
    } else {
        tracing::warn!(
            open = limits.max_connections as usize - connections.available_permits(),
            "grace period over: closing the remaining connections"
        );
    }
}

/// Errors of one incoming connection, not of the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

// ----- one connection ---------------------------------------------------------

/// Where a connection is in its request/response cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head: from the accept, or from the first byte of a
    /// later request.
    Head,
    /// A request is being served (body, slot, handler, response head).
    Request,
    /// Keep-alive: the last response is out, no byte of the next request yet.
    Idle,
}

/// The phase a connection is in and since when; the watchdog's clock.
struct Clock {
    state: Mutex<(Phase, Instant)>,
    changed: Notify,
    /// Set by the accept loop at the connection cap; honoured unless a request is in flight.
    evicted: AtomicBool,
}

impl Clock {
    fn new() -> Self {
        Clock {
            state: Mutex::new((Phase::Head, Instant::now())),
            changed: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (Phase, Instant)> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enter(&self, phase: Phase) {
        let mut state = self.state();
        if state.0 != phase {
            *state = (phase, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: on an idle connection, a new request head has begun.
    fn on_read(&self) {
        let mut state = self.state();
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// Since when the connection has been waiting for a request (idle, or in the
    /// middle of a head); `None` while it serves one or once it is being evicted.
    fn waiting_since(&self) -> Option<Instant> {
        let (phase, since) = *self.state();
        (phase != Phase::Request && !self.evicted.load(Ordering::Relaxed)).then_some(since)
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }

    fn deadline(&self, limits: &Limits) -> (Phase, Instant) {
        let (phase, since) = *self.state();
        (phase, since + limits.allowance(phase))
    }
}

/// The socket, telling the clock when bytes arrive.
struct Watched {
    stream: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves one connection under its watchdog; `_slot` frees a connection slot on return.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(Watched {
        stream,
        clock: clock.clone(),
    });
    let service = Guarded {
        shared: shared.clone(),
        clock: clock.clone(),
    };
    let _registered = shared.register(clock.clone());
    let conn = shared.http.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        // The phase only changes while `conn` is polled, never between these lines.
        let (phase, deadline) = clock.deadline(&shared.limits);
        if clock.evicted.swap(false, Ordering::Relaxed) && phase != Phase::Request {
            tracing::debug!(%peer, ?phase, "closing a waiting connection to make room");
            return;
        }
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                // Dropping the connection closes the socket, without an answer.
                let (phase, deadline) = clock.deadline(&shared.limits);
                if Instant::now() >= deadline {
                    tracing::debug!(%peer, ?phase, "closing a connection past its deadline");
                    return;
                }
            }
            () = clock.changed.notified() => {}
            _ = stopping.changed(), if !draining => {
                draining = true;
                let (phase, _) = clock.deadline(&shared.limits);
                if phase == Phase::Head {
                    return;
                }
                // Idle connections close now; a request in flight finishes first.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

// ----- one request ------------------------------------------------------------

/// The router behind the request bounds, as a hyper service.
#[derive(Clone)]
struct Guarded {
    shared: Arc<Shared>,
    clock: Arc<Clock>,
}

impl hyper::service::Service<Request<Incoming>> for Guarded {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let Guarded { shared, clock } = self.clone();
        Box::pin(async move {
            clock.enter(Phase::Request);
            let response = respond(&shared, request).await;
            Ok(response.map(|body| Tracked { body, clock }))
        })
    }
}

/// Buffers the body within its bounds, waits for a slot, runs the router.
async fn respond(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let limits = &shared.limits;
    let started = Instant::now();
    let request_deadline = started + limits.request;
    let body_deadline = started + limits.body.min(limits.request);

    // What the client declares is refused before a byte of it is read.
    let declared = request.body().size_hint().lower();
    if declared > MAX_BODY_BYTES as u64 {
        return Refusal::TooLarge.into_response();
    }
    let (parts, body) = request.into_parts();
    let (bytes, _buffered) =
        match read_body(body, declared as usize, &shared.body_budget, body_deadline).await {
            Ok(read) => read,
            Err(refusal) => {
                tracing::debug!(method = %parts.method, ?refusal, "request refused");
                return refusal.into_response();
            }
        };
    let Ok(Ok(_slot)) =
        timeout_at(request_deadline, shared.in_flight.clone().acquire_owned()).await
    else {
        tracing::warn!(method = %parts.method, "no free request slot in time");
        return Refusal::Busy.into_response();
    };
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    let request = Request::from_parts(parts, Body::from(bytes));
    match timeout_at(request_deadline, shared.app.clone().oneshot(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::warn!(%method, path, "request timed out");
            Refusal::Timeout.into_response()
        }
    }
}

/// Reads a whole body of at most [`MAX_BODY_BYTES`] before `deadline`, holding
/// budget permits for the bytes it keeps (returned with them).
async fn read_body(
    mut body: Incoming,
    declared: usize,
    budget: &Arc<Semaphore>,
    deadline: Instant,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Refusal> {
    if body.is_end_stream() {
        return Ok((Bytes::new(), None));
    }
    let mut reserved = reserve(budget, declared, deadline).await?;
    let mut buffer = Vec::with_capacity(declared);
    loop {
        let frame = match timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Refusal::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(Refusal::Malformed),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = buffer.len() + data.len();
        if total > MAX_BODY_BYTES {
            return Err(Refusal::TooLarge);
        }
        let held = reserved
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        if total > held
            && let Some(more) = reserve(budget, total - held, deadline).await?
        {
            match reserved.as_mut() {
                Some(reserved) => reserved.merge(more),
                None => reserved = Some(more),
            }
        }
        buffer.extend_from_slice(&data);
    }
    Ok((Bytes::from(buffer), reserved))
}

/// `bytes` permits of the body budget, waited for until `deadline`.
async fn reserve(
    budget: &Arc<Semaphore>,
    bytes: usize,
    deadline: Instant,
) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
    if bytes == 0 {
        return Ok(None);
    }
    let bytes = u32::try_from(bytes).map_err(|_| Refusal::TooLarge)?;
    match timeout_at(deadline, budget.clone().acquire_many_owned(bytes)).await {
        Ok(Ok(permit)) => Ok(Some(permit)),
        _ => Err(Refusal::Busy),
    }
}

/// An answer from the server loop itself, not from a handler.
#[derive(Debug)]
enum Refusal {
    /// Declared or sent body over the limit: 413.
    TooLarge,
    /// Body, or the whole request, past its deadline: 408.
    Timeout,
    /// A broken body encoding: 400.
    Malformed,
    /// No request slot or body budget in time: 503, `Retry-After: 1`.
    Busy,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response<Body> {
        let mut response = match self {
            Refusal::TooLarge => ApiError::PayloadTooLarge.into_response(),
            Refusal::Timeout => detail(StatusCode::REQUEST_TIMEOUT, "Request timeout"),
            Refusal::Malformed => detail(StatusCode::BAD_REQUEST, "Malformed request body"),
            Refusal::Busy => {
                let mut busy = detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service temporarily busy, retry shortly",
                );
                busy.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                busy
            }
        };
        // The body may be partly unread: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

fn detail(status: StatusCode, detail: &str) -> Response<Body> {
    (status, axum::Json(serde_json::json!({ "detail": detail }))).into_response()
}

/// A response body that puts its connection back to [`Phase::Idle`] once hyper is done with it.
struct Tracked {
    body: Body,
    clock: Arc<Clock>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.clock.enter(Phase::Idle);
    }
}
