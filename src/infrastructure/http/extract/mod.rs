//! Extractors: the caller's address, the bearer-authenticated user, path ids, query strings and
//! JSON / form bodies, whose refusals are answered in the contract's error formats
//! ([`super::error::Rejection`]).
//!
//! Bodies and query strings are read through [`fields`], our own deserialization step, so that
//! a refusal names the field and the kind of problem in words of ours; no text of axum's or
//! serde's rejections is read or shown.

mod auth;
mod client_auth;
mod client_ip;
pub mod fields;
mod form;
mod json;
mod path;
mod query;

pub use auth::{AdminUser, CurrentUser, MaybeUser};
pub use client_auth::client_credentials;
pub use client_ip::{client_ip, Client};
pub use form::OAuthForm;
pub use json::{ApiJson, OAuthJson};
pub(crate) use path::path_uuid;
pub use path::{PathClientId, PathUserId};
pub use query::ApiQuery;

/// Whether the `Content-Type` of `headers` is one `accepts` (given the lower-cased media type,
/// without parameters).
fn content_type_is(headers: &axum::http::HeaderMap, accepts: impl Fn(&str) -> bool) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| accepts(&v))
}

/// Whether `headers` say the body is `application/x-www-form-urlencoded` (the hosted pages'
/// forms and the OAuth endpoints).
pub(crate) fn is_form(headers: &axum::http::HeaderMap) -> bool {
    content_type_is(headers, |v| v == "application/x-www-form-urlencoded")
}

/// The body of `req`, or why it could not be read.
async fn body_bytes(
    req: axum::extract::Request,
    state: &super::AppState,
) -> Result<axum::body::Bytes, super::error::Rejection> {
    use super::error::Rejection;
    use axum::extract::FromRequest;
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Rejection::TooLarge
            } else {
                Rejection::Unreadable
            }
        })
}
