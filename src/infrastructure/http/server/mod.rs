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

mod connection;
mod limits;
mod registry;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use connection::run_connection;
pub use limits::{effective_max_connections, ConnectionLimits};
use registry::Registry;

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
