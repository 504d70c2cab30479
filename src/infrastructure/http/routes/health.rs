//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::infrastructure::http::dto::{HealthBody, HealthChecks, LiveBody};
use crate::infrastructure::http::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
}

/// Readiness
///
/// `ok` when the service can read and write its database (a probe row is committed; on SQLite
/// at least 1 MiB must be free beside the file), checked with a bounded wait and reused for one
/// second; `unavailable` with 503 otherwise.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "The database cannot be reached or written (down, disk full, read-only)", body = HealthBody,
         example = json!({"status": "unavailable", "version": "0.1.0", "checks": {"database": "unavailable"}})),
    )
)]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let database_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.health.ping()).await,
        Ok(Ok(()))
    );
    let (status, word) = if database_ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = HealthBody {
        status: word,
        version: env!("CARGO_PKG_VERSION"),
        checks: HealthChecks { database: word },
    };
    (status, Json(body))
}

/// Liveness
///
/// Answers as long as the process serves requests; touches no database.
#[utoipa::path(
    get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = LiveBody))
)]
async fn live() -> Json<LiveBody> {
    Json(LiveBody { status: "ok" })
}
