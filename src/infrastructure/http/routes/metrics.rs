//! `GET /metrics`: Prometheus text format. Bind or firewall it privately.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::infrastructure::http::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics
///
/// Requests and latency by route and status, logins by outcome, refreshes, refresh-token reuse
/// detections, lockouts, password-hash queue wait and hashes in flight, and the database pool.
/// Not for the public internet: expose it only to the monitoring network.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format",
               content_type = "text/plain; version=0.0.4", body = String))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (state.metrics.sample)();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.handle.render(),
    )
}
