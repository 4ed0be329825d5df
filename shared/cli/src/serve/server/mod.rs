//! The HTTP server of `migrations serve`: it defends itself like a production
//! server, and every bound below is a flag with an env fallback:
//!
//! - at most `--max-connections` open connections: at the cap, the accept loop
//!   makes room for the connection it just accepted by closing the one that has
//!   waited longest (1 s or more) for a request — an idle socket or a stalled
//!   head, never one being served — and accepts nothing else meanwhile (later
//!   clients wait in the kernel's listen backlog);
//! - each connection runs a watchdog ([`connection`]): a request head (request
//!   line and headers) must arrive within `--header-timeout-secs` of the accept
//!   or of its first byte, a keep-alive connection with no new request is closed
//!   after `--idle-timeout-secs`; past a deadline the socket is simply closed;
//! - a request body is buffered before any handler runs ([`request`]): a
//!   declared `Content-Length` over 6 MB is answered 413 at once, a body that has
//!   not fully arrived within `--body-timeout-secs` of the headers is answered
//!   408, and all bodies being buffered at once share a budget of
//!   `--max-body-buffer-mb`;
//! - at most `--max-in-flight` requests run handlers at once; the others wait for
//!   a slot, and one that gets none within its request timeout is answered 503
//!   with `Retry-After: 1`. Slow clients never hold a slot: their bodies are read
//!   before they ask for one;
//! - a request gets `--request-timeout-secs` from its headers to its response
//!   (body, slot and handler together), else 408;
//! - SIGINT or SIGTERM stops accepting, closes the connections waiting for a
//!   request, lets in-flight requests finish for up to `--shutdown-grace-secs`,
//!   then exits 0.
//!
//! Refusals are JSON `{"detail": ...}` like every other error, and close the
//! connection — lingering ([`connection`]): the write side is shut, then what
//! the client still sends is read and discarded within bounds, so a client
//! that sends a refused body whole before reading gets the answer, not a
//! reset. Behind API Gateway the Lambdas get these limits from AWS instead.
//!
//! From crates, used as they are: hyper parses and writes HTTP/1; hyper-util's
//! [`GracefulShutdown`] makes every connection finish its request and close at
//! shutdown, and waits for them; tower's `ConcurrencyLimit` holds the handler
//! slots ([`request`]). The accept loop stays ours, not `axum::serve`: that one
//! takes no configuration (its documentation sends servers that need some to
//! hyper and hyper-util), has no connection cap, and would also serve HTTP/2
//! prior-knowledge connections — hyper-util's `http2` feature is on in this
//! build through the AWS SDK — which the per-connection watchdog was not made
//! for. No crate closes the longest-waiting connection at a cap either;
//! [`connection`] and [`request`] say what else is ours and why.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::ServeArgs;
use api::extract::MAX_BODY_BYTES;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

mod clock;
mod connection;
mod request;
mod signals;

use connection::{EVICTABLE_AFTER, Open};
use request::Requests;
pub(super) use signals::Signals;

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
}

/// What every connection task shares.
struct Shared {
    limits: Limits,
    http: http1::Builder,
    /// The router behind the request bounds.
    requests: Requests,
    /// The open connections' clocks, for the cap and the shutdown.
    open: Arc<Open>,
}

/// Accepts until SIGINT/SIGTERM, then drains (see the module documentation).
pub(super) async fn run_server(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut signals: Signals,
) {
    let mut http = http1::Builder::new();
    // The connection watchdog times request heads instead: hyper's timer starts
    // as soon as hyper waits for a head, right after a response on a keep-alive
    // connection too, so it would close those at the header timeout.
    http.header_read_timeout(None);
    let shared = Arc::new(Shared {
        limits,
        http,
        requests: Requests::new(app, &limits),
        open: Arc::default(),
    });
    let connections = Arc::new(Semaphore::new(limits.max_connections as usize));
    let graceful = GracefulShutdown::new();
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
                    let evicted = shared.open.evict_longest_waiting();
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
        // Registered and watched here, before the task runs: a shutdown that
        // begins meanwhile reaches this connection too.
        let clock = shared.open.register();
        let watcher = graceful.watcher();
        tokio::spawn(connection::serve(
            stream,
            peer,
            shared.clone(),
            clock,
            watcher,
            slot,
        ));
    };

    // No new connection from here on: the listening socket closes first.
    drop(listener);
    tracing::info!(
        signal,
        open = shared.open.len(),
        grace_secs = limits.shutdown_grace.as_secs(),
        "shutting down: no new connections; in-flight requests finish"
    );
    // Connections waiting for a request close now, a half-sent head included
    // (hyper's graceful shutdown would leave that one to its header timeout);
    // the others finish the request they serve, then close.
    shared.open.close_waiting();
    let drained = tokio::select! {
        all = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()) => all.is_ok(),
        signal = signals.recv() => {
            tracing::warn!(signal, "second signal: exiting now");
            return;
        }
    };
    if drained {
        tracing::info!("every connection closed");
    } else {
        tracing::warn!(
            open = shared.open.len(),
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
