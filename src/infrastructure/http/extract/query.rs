//! Query strings, read through our own deserialization step ([`super::fields`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::fields::Node;
use crate::infrastructure::http::error::Problem;
use crate::infrastructure::http::AppState;

/// Query parameters; a refusal is a 422 problem naming the parameter (`invalid_value`).
/// Unknown parameters are ignored unless the type refuses them; a repeated one is refused.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = form_urlencoded::parse(query.as_bytes()).into_owned();
        Node::from_pairs(pairs)
            .into_value()
            .map(ApiQuery)
            .map_err(|problem| Problem::validation(vec![problem.into_field_error()]))
    }
}
