//! The ceiling for `scripts/bench.sh`: a bare axum server that answers `GET /users/me` with a
//! fixed body after reading the `Authorization` header. No token check, no database: the most
//! any Rust HTTP service can do on this machine with the same load generator.
//!
//! `cargo run --release --example ceiling -- 127.0.0.1:9000`

use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;

const BODY: &str = r#"{"id":"01932c07-6a4e-7c3a-9d1e-3f2b5c4a1e00","username":"alice","email":null,"full_name":null,"roles":["user"],"is_active":true,"created_at":"2026-11-24T10:00:00.000000Z","updated_at":"2026-11-24T10:00:00.000000Z"}"#;

async fn me(
    headers: HeaderMap,
) -> (
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    &'static str,
) {
    if headers.get(header::AUTHORIZATION).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        BODY,
    )
}

#[tokio::main]
async fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let router = Router::new().route("/users/me", get(me));
    let listener = tokio::net::TcpListener::bind(&address).await.expect("bind");
    println!("ceiling listening on {address}");
    axum::serve(listener, router).await.expect("serve");
}
