//! One request within its bounds: its body is buffered whole, within a deadline
//! and a memory budget shared by every connection, before it waits for one of
//! the handler slots; the router runs within the request's deadline.
//!
//! tower's `ConcurrencyLimit` holds the slots. The rest is ours, because the
//! crates that bound requests bound something else:
//! - tower-http's `RequestBodyTimeoutLayer` times the gap between two body
//!   frames, so a body dribbled a byte at a time never ends; the body deadline
//!   here counts from the end of the headers;
//! - tower-http's `TimeoutLayer` answers whatever it cuts with one status and an
//!   empty body (tower's returns an error), and neither times the wait for a
//!   slot, which happens in `poll_ready`, before their clock starts. Here one
//!   deadline covers body, slot and handler, and the answer says what ran out:
//!   503 with `Retry-After: 1` when no slot came, a JSON 408 when the body or
//!   the handler did;
//! - tower's load shedding refuses at once when every slot is taken, where a
//!   request here waits for one;
//! - tower-http's `RequestBodyLimitLayer` refuses an oversized `Content-Length`
//!   with a plain-text 413; the API answers JSON, and the bytes are counted here
//!   anyway, for the shared buffer budget.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use api::ApiError;
use api::extract::MAX_BODY_BYTES;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};
use tower::limit::ConcurrencyLimit;
use tower::{Service, ServiceExt};

use super::clock::{Clock, Phase};
use super::{Limits, Shared};

/// The router behind its handler slots, and the body budget.
pub(super) struct Requests {
    /// A clone shares the slots (one semaphore) and holds none until it is ready.
    app: ConcurrencyLimit<Router>,
    /// One permit per byte of request body buffered.
    body_budget: Arc<Semaphore>,
}

impl Requests {
    pub(super) fn new(app: Router, limits: &Limits) -> Self {
        Requests {
            app: ConcurrencyLimit::new(app, limits.max_in_flight as usize),
            body_budget: Arc::new(Semaphore::new(limits.body_buffer)),
        }
    }
}

/// The router behind the request bounds, as the hyper service of one connection.
#[derive(Clone)]
pub(super) struct Guarded {
    shared: Arc<Shared>,
    clock: Arc<Clock>,
}

impl Guarded {
    pub(super) fn new(shared: Arc<Shared>, clock: Arc<Clock>) -> Self {
        Guarded { shared, clock }
    }
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
    let requests = &shared.requests;
    let started = Instant::now();
    let request_deadline = started + limits.request;
    let body_deadline = started + limits.body.min(limits.request);

    // What the client declares is refused before a byte of it is read.
    let declared = request.body().size_hint().lower();
    if declared > MAX_BODY_BYTES as u64 {
        return Refusal::TooLarge.into_response();
    }
    let (parts, body) = request.into_parts();
    let (bytes, _buffered) = match read_body(
        body,
        declared as usize,
        &requests.body_budget,
        body_deadline,
    )
    .await
    {
        Ok(read) => read,
        Err(refusal) => {
            tracing::debug!(method = %parts.method, ?refusal, "request refused");
            return refusal.into_response();
        }
    };
    // Only now, with the whole body here, does the request ask for a slot.
    let mut app = requests.app.clone();
    let ready = ServiceExt::<Request<Body>>::ready(&mut app);
    let Ok(Ok(_)) = timeout_at(request_deadline, ready).await else {
        tracing::warn!(method = %parts.method, "no free request slot in time");
        return Refusal::Busy.into_response();
    };
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    let request = Request::from_parts(parts, Body::from(bytes));
    // The slot is held until the router's answer (or the deadline) ends this future.
    match timeout_at(request_deadline, app.call(request)).await {
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

/// An answer from the request bounds themselves, not from a handler.
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
pub(super) struct Tracked {
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
