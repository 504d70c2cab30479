//! JSON object bodies, answered as problem documents on the API and as RFC 6749 error JSON on
//! the OAuth2 endpoints.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::fields::Node;
use super::{body_bytes, content_type_is};
use crate::domain::validation::FieldError;
use crate::infrastructure::http::error::{OAuthError, Problem, Rejection};
use crate::infrastructure::http::AppState;

/// A JSON object body; a refusal is a problem document (400 malformed, 413 too large, 415
/// wrong content type, 422 wrong shape naming the field).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        json_object(req, state)
            .await
            .map(ApiJson)
            .map_err(Problem::from)
    }
}

/// A JSON object body on an OAuth2 endpoint: every refusal is `invalid_request` (413 when too
/// large, 400 otherwise), in RFC 6749 error JSON.
pub struct OAuthJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for OAuthJson<T> {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        json_object(req, state)
            .await
            .map(OAuthJson)
            .map_err(OAuthError::from)
    }
}

/// Reads a JSON object body.
async fn json_object<T: DeserializeOwned>(req: Request, state: &AppState) -> Result<T, Rejection> {
    let is_json = content_type_is(req.headers(), |v| {
        v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
    });
    if !is_json {
        return Err(Rejection::NotJson);
    }
    parse_object(&body_bytes(req, state).await?)
}

/// Parses a JSON object. Only an object is accepted: serde would otherwise also read a struct
/// from a positional array such as `["alice", "secret"]`.
///
/// A valid body is parsed once, straight into `T`. A refused one is told apart by serde_json's
/// error category (syntax or data), and a data error is found again by our own step
/// ([`super::fields`]) for its field and kind. Syntax is checked as the value is read, so a data
/// error before a syntax error is reported as the data error, as serde_json reports it.
fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, Rejection> {
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match serde_json::from_slice::<T>(body) {
        Ok(value) if is_object => Ok(value),
        Ok(_) => Err(Rejection::NotAnObject),
        Err(error) if error.is_syntax() || error.is_eof() => Err(Rejection::MalformedJson {
            what: if error.is_eof() {
                "unexpected end"
            } else {
                "syntax error"
            },
            line: error.line(),
            column: error.column(),
        }),
        Err(_) if !is_object => Err(Rejection::NotAnObject),
        Err(_) => Err(Rejection::Field(data_problem::<T>(body))),
    }
}

/// The field and kind of the data error serde_json found in `body`.
fn data_problem<T: DeserializeOwned>(body: &[u8]) -> FieldError {
    // The tree is read up to the end of the first value: trailing text is serde_json's
    // concern, after the value (and its data error).
    let mut reader = serde_json::Deserializer::from_slice(body);
    match Node::deserialize(&mut reader).map(Node::into_value::<T>) {
        Ok(Err(problem)) => problem.into_field_error(),
        // The value does not parse as a whole (a syntax error, or a number out of range, after
        // the data error): the field cannot be named.
        Ok(Ok(_)) | Err(_) => FieldError::new(
            "body",
            "invalid_value",
            "has a field that is missing, unknown or of the wrong type",
        ),
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
