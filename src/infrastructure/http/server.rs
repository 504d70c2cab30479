//! The accept loop: HTTP/1.1 connections with a header-read deadline, an idle deadline and a cap
//! on open connections that keeps health checks answering under a slowloris flood.
//!
//! `axum::serve` has none of these: a client that trickles a request head one byte at a time
//! holds a file descriptor forever, and enough of them exhaust the process's descriptors, after
//! which nothing (not `/health/live` either) is accepted.
//!
//! Every connection is in one of three states, read from counters its own task and its service
//! update (no lock on the request path):
//!
//! - **waiting for a request head**: from the accept, or from the first byte after an idle
//!   period, until the head is complete. Closed after `header_read_timeout`.
//! - **serving**: a request is in flight (from the complete head until the response body is
//!   dropped). No deadline here: the router's request timeout bounds the handler and the body.
//! - **idle** (keep-alive) between a response and the next byte. Closed after `idle_timeout`.
//!
//! **At the cap** the loop keeps accepting: refusing new connections is exactly what starves
//! health checks, since the slow connections that fill the cap cost an attacker nothing. Instead
//! each new connection sheds one that has no request in flight: first the one that has waited
//! longest for a complete request head (the slowloris kind), else the longest-idle keep-alive
//! connection (closing an idle keep-alive connection is allowed at any time, RFC 9112 §9.5).
//! Connections serving a request are never shed; when every connection is serving one, the new
//! connection is closed at once (the server is genuinely busy). The cap is kept below the
//! process's file-descriptor limit, so accepting never fails for lack of descriptors because of
//! client connections alone; should it fail anyway (EMFILE, ENFILE), one connection is shed and
//! the loop backs off briefly instead of spinning.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Deadlines and the cap on open client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a connection may take to send a complete request head.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may stay idle between requests.
    pub idle_timeout: Duration,
    /// Open connections at most (lowered below the file-descriptor limit at start).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// Descriptors kept free for everything that is not a client connection (the listener, the
/// database, log files, the runtime): an eighth of the limit, at least 64, at most 1024.
fn reserved_descriptors(limit: u64) -> u64 {
    (limit / 8).clamp(64, 1024)
}

/// `configured`, lowered so that client connections cannot use up the process's soft limit
/// of open files (`ulimit -n`).
pub fn effective_max_connections(configured: usize) -> usize {
    match descriptor_limit() {
        Some(limit) => {
            let room = limit.saturating_sub(reserved_descriptors(limit)).max(1);
            configured.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => configured,
    }
}

/// The soft `RLIMIT_NOFILE`; `None` when unlimited or unknown.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not everywhere
fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    u64::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// Milliseconds value meaning "not set".
const UNSET: u64 = u64::MAX;

/// The state of one connection, shared by its task, its service and its stream.
struct Connection {
    id: u64,
    epoch: Instant,
    /// Requests between a complete head and the drop of their response body.
    in_flight: AtomicU32,
    /// When the connection began waiting for a request head (ms since `epoch`): its accept, or
    /// the first byte after an idle period. [`UNSET`] while serving or idle.
    head_since: AtomicU64,
    /// When the last response body was dropped (ms since `epoch`).
    idle_since: AtomicU64,
    /// Set by the registry to close the connection.
    shed: Notify,
}

/// What a connection is doing, for its deadline and for shedding.
enum Phase {
    WaitingForHead { since: u64 },
    Serving,
    Idle { since: u64 },
}

impl Connection {
    fn new(id: u64, epoch: Instant) -> Self {
        let now = millis(epoch);
        Self {
            id,
            epoch,
            in_flight: AtomicU32::new(0),
            head_since: AtomicU64::new(now),
            idle_since: AtomicU64::new(now),
            shed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Phase::Serving;
        }
        match self.head_since.load(Ordering::Relaxed) {
            UNSET => Phase::Idle {
                since: self.idle_since.load(Ordering::Relaxed),
            },
            since => Phase::WaitingForHead { since },
        }
    }

    /// A complete request head was read.
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(UNSET, Ordering::Relaxed);
    }

    /// A response body was dropped (sent, or the connection ended).
    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(millis(self.epoch), Ordering::Relaxed);
        }
    }

    /// Bytes arrived: when idle, they begin the next request head.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == UNSET
        {
            self.head_since.store(millis(self.epoch), Ordering::Relaxed);
        }
    }

    /// When the connection must be closed, in ms since `epoch`, and why; `None` while serving.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(u64, Close)> {
        match self.phase() {
            Phase::Serving => None,
            Phase::WaitingForHead { since } => Some((
                since.saturating_add(as_millis(limits.header_read_timeout)),
                Close::HeaderTimeout,
            )),
            Phase::Idle { since } => Some((
                since.saturating_add(as_millis(limits.idle_timeout)),
                Close::IdleTimeout,
            )),
        }
    }
}

fn millis(epoch: Instant) -> u64 {
    as_millis(epoch.elapsed())
}

fn as_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(UNSET - 1)
}

/// Why the server closed a connection (the `reason` label: a closed set).
#[derive(Debug, Clone, Copy)]
enum Close {
    HeaderTimeout,
    IdleTimeout,
    Shed,
    Refused,
}

impl Close {
    fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Shed => "shed",
            Self::Refused => "refused",
        }
    }

    fn count(self) {
        metrics::counter!("http_connections_dropped_total", "reason" => self.as_str()).increment(1);
    }
}

/// The open connections, oldest first.
struct Registry {
    epoch: Instant,
    max: usize,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    /// When the cap was last reported (ms since `epoch`), to log it once in a while only.
    last_warning: AtomicU64,
}

impl Registry {
    fn new(max: usize) -> Self {
        Self {
            epoch: Instant::now(),
            max,
            next_id: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            last_warning: AtomicU64::new(UNSET),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection, shedding another one at the cap; `None` when the cap is
    /// reached and every connection is serving a request.
    fn admit(&self) -> Option<Arc<Connection>> {
        let connection = Arc::new(Connection::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            self.epoch,
        ));
        let mut open = self.lock();
        if open.len() >= self.max {
            let shed = Self::shed_locked(&mut open);
            self.warn_at_cap(open.len() + 1);
            if !shed {
                drop(open);
                Close::Refused.count();
                return None;
            }
        }
        open.insert(connection.id, connection.clone());
        metrics::gauge!("http_connections_open").set(open.len() as f64);
        Some(connection)
    }

    /// Sheds one connection without a request in flight (see the module documentation).
    fn shed_one(&self) -> bool {
        Self::shed_locked(&mut self.lock())
    }

    fn shed_locked(open: &mut BTreeMap<u64, Arc<Connection>>) -> bool {
        let mut waiting: Option<(u64, u64)> = None; // (since, id)
        let mut idle: Option<(u64, u64)> = None;
        for (id, connection) in open.iter() {
            match connection.phase() {
                Phase::WaitingForHead { since } => {
                    if waiting.is_none_or(|(best, _)| since < best) {
                        waiting = Some((since, *id));
                    }
                }
                Phase::Idle { since } => {
                    if idle.is_none_or(|(best, _)| since < best) {
                        idle = Some((since, *id));
                    }
                }
                Phase::Serving => {}
            }
        }
        let Some((_, id)) = waiting.or(idle) else {
            return false;
        };
        if let Some(victim) = open.remove(&id) {
            victim.shed.notify_one();
            Close::Shed.count();
        }
        true
    }

    fn remove(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        metrics::gauge!("http_connections_open").set(open.len() as f64);
    }

    fn warn_at_cap(&self, open: usize) {
        let now = millis(self.epoch);
        let last = self.last_warning.load(Ordering::Relaxed);
        if last == UNSET || now.saturating_sub(last) >= 10_000 {
            self.last_warning.store(now, Ordering::Relaxed);
            tracing::warn!(
                open,
                max = self.max,
                "connection cap reached; shedding connections without a request in flight"
            );
        }
    }
}

/// Accept errors that concern one connection only: try the next one at once.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes; then stops
/// accepting, lets requests in flight finish, closes idle connections and returns once every
/// connection is closed. Each request carries `ConnectInfo<SocketAddr>`.
///
/// # Errors
/// None today: accept errors are retried (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max = effective_max_connections(limits.max_connections);
    if max < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            max,
            "HTTP_MAX_CONNECTIONS lowered below the open-files limit (ulimit -n); raise that limit to allow more"
        );
    }
    let registry = Arc::new(Registry::new(max));
    let limits = Arc::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; `closed()` completes when the last one ends.
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: free a descriptor if a connection can
                // give one up, and wait a little instead of spinning on the error.
                let shed = registry.shed_one();
                if backoff.is_zero() {
                    tracing::warn!(%error, shed, "cannot accept connections; backing off");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_millis(200));
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        let Some(connection) = registry.admit() else {
            drop(stream);
            continue;
        };
        tokio::spawn(run_connection(
            stream,
            peer,
            router.clone(),
            connection,
            registry.clone(),
            limits.clone(),
            stop_rx.clone(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Serves one connection until it ends, its deadline passes, the registry sheds it, or the
/// server stops (then a request in flight finishes first).
///
/// The deadline is checked after every poll of the connection: every change of phase (a head
/// completed, a response body dropped, the first byte of the next head) happens inside that
/// poll, on this task, so the timer always matches the current phase without any wake-up of
/// its own.
#[allow(clippy::too_many_arguments)]
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    connection: Arc<Connection>,
    registry: Arc<Registry>,
    limits: Arc<ConnectionLimits>,
    mut stop: watch::Receiver<bool>,
    done: watch::Receiver<()>,
) {
    let io = TokioIo::new(Watched {
        stream,
        connection: connection.clone(),
    });
    let service = ConnectionService {
        router,
        peer,
        connection: connection.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The deadlines are ours: hyper's header timer also runs while a keep-alive connection
    // is idle, so it cannot tell the two apart.
    builder.header_read_timeout(None);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut shed = pin!(connection.shed.notified());
    let mut stopping = *stop.borrow_and_update();
    let mut stop_changed = pin!(stop.changed());
    let epoch = connection.epoch;
    let instant = |at: u64| tokio::time::Instant::from_std(epoch + Duration::from_millis(at));
    let mut wake_at = connection.deadline(&limits).map(|(at, _)| at);
    let mut sleep = pin!(tokio::time::sleep_until(instant(wake_at.unwrap_or(0))));
    let closed = std::future::poll_fn(|cx| {
        if shed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Close::Shed));
        }
        if !stopping && stop_changed.as_mut().poll(cx).is_ready() {
            // Requests in flight finish; keep-alive is off for what follows.
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            return Poll::Ready(None);
        }
        if stopping && !matches!(connection.phase(), Phase::Serving) {
            return Poll::Ready(None);
        }
        loop {
            let deadline = connection.deadline(&limits);
            let wanted = deadline.map(|(at, _)| at);
            if wanted != wake_at {
                wake_at = wanted;
                if let Some(at) = wanted {
                    sleep.as_mut().reset(instant(at));
                }
            }
            let Some((at, why)) = deadline else {
                return Poll::Pending; // serving: the connection's own poll wakes us
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = millis(epoch);
            if now >= at {
                return Poll::Ready(Some(why));
            }
            // Woken a little early: wait for the deadline itself.
            wake_at = Some(at.max(now + 1));
            sleep.as_mut().reset(instant(at.max(now + 1)));
        }
    })
    .await;
    match closed {
        Some(Close::Shed) | None => {} // a shed connection is counted by the registry
        Some(why) => {
            tracing::debug!(%peer, reason = why.as_str(), "closing connection");
            why.count();
        }
    }
    registry.remove(connection.id);
    drop(done);
}

/// The TCP stream, reporting the bytes that begin a new request head.
struct Watched {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.bytes_read();
        }
        result
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

/// The router for one connection: adds `ConnectInfo` and tracks the request in flight until
/// its response body is dropped.
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    connection: Arc<Connection>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.connection.request_started();
        let guard = InFlight(self.connection.clone());
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        ResponseFuture {
            inner: tower::ServiceExt::oneshot(self.router.clone(), request),
            guard: Some(guard),
        }
    }
}

/// Marks the end of a request when dropped.
struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project_lite::pin_project! {
    /// The response of [`ConnectionService`].
    struct ResponseFuture {
        #[pin]
        inner: tower::util::Oneshot<Router, Request<Body>>,
        guard: Option<InFlight>,
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match std::task::ready!(this.inner.poll(cx)) {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody {
            inner,
            _guard: guard,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends its request's time in flight when dropped.
    struct TrackedBody {
        #[pin]
        inner: Body,
        _guard: Option<InFlight>,
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        assert_eq!(reserved_descriptors(256), 64);
        assert_eq!(reserved_descriptors(1024), 128);
        assert_eq!(reserved_descriptors(1 << 20), 1024);
        let limit = descriptor_limit().unwrap_or(u64::MAX);
        let max = effective_max_connections(usize::MAX);
        assert!((max as u64) < limit, "{max} < {limit}");
        assert_eq!(effective_max_connections(3), 3);
    }

    #[test]
    fn shedding_prefers_the_oldest_connection_waiting_for_a_head_then_the_longest_idle() {
        let registry = Registry::new(3);
        let a = registry.admit().unwrap();
        let b = registry.admit().unwrap();
        let c = registry.admit().unwrap();
        // a serves a request, b has finished one (idle), c never sent a head.
        a.request_started();
        b.request_started();
        b.request_finished();
        let d = registry.admit().expect("c is shed");
        assert!(!registry.lock().contains_key(&c.id));
        // d is now the one waiting for a head.
        d.request_started();
        let _e = registry.admit().expect("b (idle) is shed");
        assert!(!registry.lock().contains_key(&b.id));
        // a and d serve; e waits for a head and goes.
        let f = registry.admit().expect("e is shed");
        f.request_started();
        assert!(registry.admit().is_none(), "everyone serves: refused");
        assert_eq!(registry.lock().len(), 3);
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            max_connections: 1,
        };
        let connection = Connection::new(0, Instant::now());
        let (at, why) = connection.deadline(&limits).unwrap();
        assert!(matches!(why, Close::HeaderTimeout) && (1000..2000).contains(&at));
        connection.request_started();
        assert!(connection.deadline(&limits).is_none());
        connection.request_finished();
        assert!(matches!(
            connection.deadline(&limits),
            Some((_, Close::IdleTimeout))
        ));
        connection.bytes_read();
        assert!(matches!(
            connection.deadline(&limits),
            Some((_, Close::HeaderTimeout))
        ));
    }
}
