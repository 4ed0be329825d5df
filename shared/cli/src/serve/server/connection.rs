//! One connection under its watchdog, and the registry of open connections: at
//! the cap the accept loop closes the one that has waited longest for a request,
//! at shutdown every one waiting for a request closes.
//!
//! The watchdog is ours because no crate times HTTP/1 connections this way.
//! hyper's `header_read_timeout` starts when hyper begins to wait for a head —
//! on a keep-alive connection right after the previous response — so it cannot
//! tell a half-sent head from a connection idle between requests, and hyper has
//! no idle timeout. tower and tower-http time requests and bodies, never the
//! socket before a request or between two. The watchdog follows the connection
//! through its [`Phase`]s and closes it when one lasts too long.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::Shared;
use super::clock::{Clock, Phase};
use super::request::Guarded;

/// At the connection cap, a connection waiting this long for a request (or in
/// the middle of a head) may be closed to make room for a new one.
pub(super) const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

// ----- the open connections ---------------------------------------------------

/// The clocks of the open connections, by id.
#[derive(Default)]
pub(super) struct Open {
    clocks: Mutex<HashMap<u64, Arc<Clock>>>,
    next_id: AtomicU64,
}

impl Open {
    fn clocks(&self) -> MutexGuard<'_, HashMap<u64, Arc<Clock>>> {
        self.clocks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new connection's clock, listed until the returned entry is dropped.
    pub(super) fn register(self: &Arc<Self>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let clock = Arc::new(Clock::new());
        self.clocks().insert(id, clock.clone());
        Registered {
            open: self.clone(),
            id,
            clock,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.clocks().len()
    }

    /// Asks the connection that has waited longest for a request (at least
    /// [`EVICTABLE_AFTER`]) to close; never one serving a request.
    pub(super) fn evict_longest_waiting(&self) -> bool {
        let now = Instant::now();
        let victim = self
            .clocks()
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

    /// At shutdown: every connection not serving a request closes now.
    pub(super) fn close_waiting(&self) {
        for clock in self.clocks().values() {
            if clock.waiting_since().is_some() {
                clock.evict();
            }
        }
    }
}

/// A connection's entry in [`Open`], removed when the connection ends.
pub(super) struct Registered {
    open: Arc<Open>,
    id: u64,
    clock: Arc<Clock>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.clocks().remove(&self.id);
    }
}

// ----- one connection -----------------------------------------------------------

/// After the server's last answer on a connection, what it still reads and
/// throws away while the client may be sending (a lingering close, as nginx
/// does): at most this many bytes, for at most this long in all, and no
/// longer than [`LINGER_GAP`] without a byte.
const LINGER_BYTES: usize = 32 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(10);
const LINGER_GAP: Duration = Duration::from_secs(2);

/// The socket, telling the clock when bytes arrive.
struct Watched {
    stream: TcpStream,
    clock: Arc<Clock>,
    /// Set once the write side is shut: the lingering close under way.
    linger: Option<Linger>,
}

/// A lingering close: closing a socket with unread bytes makes the kernel
/// reset it, and a client still sending a body the server refused (a 413
/// answered as soon as the `Content-Length` was read) would see the reset —
/// a broken pipe — instead of the answer. So the write side is shut first
/// (the client reads the answer to its end), then what arrives is read and
/// discarded until the client closes, within the bounds above.
struct Linger {
    until: Instant,
    gap: Pin<Box<tokio::time::Sleep>>,
    left: usize,
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
        let this = &mut *self;
        if this.linger.is_none() {
            match Pin::new(&mut this.stream).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let now = Instant::now();
            this.linger = Some(Linger {
                until: now + LINGER_TIME,
                gap: Box::pin(tokio::time::sleep_until(now + LINGER_GAP)),
                left: LINGER_BYTES,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if linger.left == 0 || linger.gap.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                // The client closed: nothing unread is left.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    linger.left = linger.left.saturating_sub(buf.filled().len());
                    let next = (Instant::now() + LINGER_GAP).min(linger.until);
                    linger.gap.as_mut().reset(next);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Serves one connection under its watchdog; `_slot` frees a connection slot
/// on return, `registered` its entry in [`Open`], the watched connection its
/// place in the shutdown's count.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    registered: Registered,
    watcher: Watcher,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let clock = registered.clock.clone();
    let io = TokioIo::new(Watched {
        stream,
        clock: clock.clone(),
        linger: None,
    });
    let service = Guarded::new(shared.clone(), clock.clone());
    // At shutdown hyper-util asks hyper to finish the request in flight, then close.
    let conn = watcher.watch(shared.http.serve_connection(io, service));
    tokio::pin!(conn);
    loop {
        // The phase only changes while `conn` is polled, never between these lines.
        let (phase, deadline) = clock.deadline(&shared.limits);
        if clock.evicted.swap(false, Ordering::Relaxed) && phase != Phase::Request {
            tracing::debug!(%peer, ?phase, "closing a connection waiting for a request");
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
        }
    }
}
