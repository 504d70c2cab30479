//! Liveness and readiness.

use std::sync::Arc;

use async_trait::async_trait;
use auth_service::domain::ports::{HealthProbe, StoreError};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn health_reports_the_database() {
    let app = spawn_app().await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["checks"], json!({"database": "ok"}));
    let live: Value = app.get("/health/live", None).await.json().await.unwrap();
    assert_eq!(live, json!({"status": "ok"}));
}

struct DownProbe;

#[async_trait]
impl HealthProbe for DownProbe {
    async fn ping(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn health_is_503_when_the_database_cannot_be_reached_and_liveness_still_ok() {
    let app = spawn_app_customised(&[], |state| state.health = Arc::new(DownProbe)).await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "unavailable");
    assert!(body["version"].is_string());
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
}
