//! One connection: hyper's HTTP/1.1 state machine, its deadline, and the tracking of the
//! request in flight until its response body is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::registry::{millis, Close, Connection, Phase, Registry};
use super::ConnectionLimits;

/// Serves one connection until it ends, its deadline passes, the registry sheds it, or the
/// server stops (then a request in flight finishes first).
///
/// The deadline is checked after every poll of the connection: every change of phase (a head
/// completed, a response body dropped, the first byte of the next head) happens inside that
/// poll, on this task, so the timer always matches the current phase without any wake-up of
/// its own.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_connection(
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
