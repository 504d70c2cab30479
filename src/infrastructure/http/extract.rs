//! Extractors: the caller's address, the bearer-authenticated user, and JSON / form bodies whose
//! rejections are answered in the contract's error formats.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{OAuthError, Problem};
use super::AppState;
use crate::application::{Principal, RequestContext};
use crate::domain::validation::FieldError;

/// The caller's IP address and user agent.
pub struct Client(pub RequestContext);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = client_ip(&parts.extensions, &parts.headers, state.trust_proxy_headers);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Ok(Client(RequestContext { ip, user_agent }))
    }
}

/// The client's address: the socket peer, or the last `X-Forwarded-For` entry when the proxy
/// in front is trusted.
pub fn client_ip(
    extensions: &Extensions,
    headers: &HeaderMap,
    trust_proxy: bool,
) -> Option<IpAddr> {
    let forwarded = trust_proxy.then(|| forwarded_for(headers)).flatten();
    forwarded.or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    })
}

/// The address the trusted proxy saw: the last entry of `X-Forwarded-For`. Earlier entries were
/// written by the client and cannot be trusted.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .and_then(|ip| ip.trim().parse().ok())
}

/// The caller authenticated by `Authorization: Bearer <access token>`; the token is verified and
/// its session and user checked live. Query-string tokens are never read.
pub struct CurrentUser(pub Principal);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or_else(Problem::missing_token)?;
        let principal = state.auth.authenticate(token).await?;
        Ok(CurrentUser(principal))
    }
}

/// A [`CurrentUser`] acting as an admin: 403 `insufficient_scope` otherwise, checked before
/// the request's parameters and body are read. (The use cases check again.)
pub struct AdminUser(pub Principal);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser(principal) = CurrentUser::from_request_parts(parts, state).await?;
        principal.require_admin()?;
        Ok(AdminUser(principal))
    }
}

/// Like [`CurrentUser`], but `None` when no `Authorization` header was sent (for operations
/// whose access depends on configuration). A token that was sent must still be valid.
pub struct MaybeUser(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeUser(None));
        }
        let CurrentUser(principal) = CurrentUser::from_request_parts(parts, state).await?;
        Ok(MaybeUser(Some(principal)))
    }
}

/// Query parameters; a rejection is a 422 problem naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let reason = text
                    .split_once("query string: ")
                    .map_or(text.as_str(), |(_, r)| r);
                Err(Problem::validation(vec![FieldError::new(
                    &field_of(reason),
                    "invalid_value",
                    reason,
                )]))
            }
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Why a JSON body was refused.
enum JsonFailure {
    NotJson,
    TooLarge,
    Unreadable,
    Syntax(String),
    NotAnObject,
    Data(String),
}

/// Reads a JSON object body. Only an object is accepted: serde would otherwise also read a
/// struct from a positional array such as `["alice", "secret"]`.
async fn json_object<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
) -> Result<T, JsonFailure> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !is_json {
        return Err(JsonFailure::NotJson);
    }
    let body = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            JsonFailure::TooLarge
        } else {
            JsonFailure::Unreadable
        }
    })?;
    match axum::Json::<T>::from_bytes(&body) {
        Ok(axum::Json(value)) => {
            if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
                Ok(value)
            } else {
                Err(JsonFailure::NotAnObject)
            }
        }
        Err(rejection @ JsonRejection::JsonSyntaxError(_)) => {
            Err(JsonFailure::Syntax(serde_reason(&rejection.body_text())))
        }
        Err(rejection) => {
            if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
                Err(JsonFailure::Data(serde_reason(&rejection.body_text())))
            } else {
                Err(JsonFailure::NotAnObject)
            }
        }
    }
}

/// A JSON object body; a rejection is a problem document (400 malformed, 413 too large, 415
/// wrong content type, 422 wrong shape).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        json_object(req, state)
            .await
            .map(ApiJson)
            .map_err(|failure| match failure {
                JsonFailure::NotJson => Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Send the body as JSON with Content-Type: application/json.",
                ),
                JsonFailure::TooLarge => too_large(),
                JsonFailure::Unreadable => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "The request body could not be read.",
                ),
                JsonFailure::Syntax(reason) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("The body is not valid JSON: {reason}"),
                ),
                JsonFailure::NotAnObject => Problem::validation(vec![FieldError::new(
                    "body",
                    "not_an_object",
                    "must be a JSON object",
                )]),
                JsonFailure::Data(reason) => Problem::validation(vec![FieldError::new(
                    &field_of(&reason),
                    "invalid_value",
                    reason,
                )]),
            })
    }
}

/// serde's message without axum's prefix.
fn serde_reason(text: &str) -> String {
    text.split_once("target type: ")
        .or_else(|| text.split_once("JSON body: "))
        .map_or(text, |(_, reason)| reason)
        .to_owned()
}

/// The field a serde error names: `missing field `x``, `unknown field `x``, or the `path: `
/// prefix of a data error.
fn field_of(reason: &str) -> String {
    let named = reason
        .split_once("missing field `")
        .or_else(|| reason.split_once("unknown field `"))
        .map(|(_, r)| r);
    if let Some(rest) = named {
        if let Some((field, _)) = rest.split_once('`') {
            return field.to_owned();
        }
    }
    match reason.split_once(": ") {
        Some((path, _)) if !path.contains(' ') && path != "." => path.to_owned(),
        _ => "body".to_owned(),
    }
}

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "The request body is larger than the configured limit.",
    )
}

/// A JSON object body on an OAuth2 endpoint: every rejection is a 400 `invalid_request` (413
/// when too large), in RFC 6749 error JSON.
pub struct OAuthJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for OAuthJson<T> {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        json_object(req, state)
            .await
            .map(OAuthJson)
            .map_err(|failure| match failure {
                JsonFailure::TooLarge => OAuthError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    "request body too large",
                ),
                JsonFailure::NotJson => OAuthError::invalid_request(
                    "the body must be JSON (Content-Type: application/json)",
                ),
                JsonFailure::Unreadable => {
                    OAuthError::invalid_request("the request body could not be read")
                }
                JsonFailure::NotAnObject => {
                    OAuthError::invalid_request("the body must be a JSON object")
                }
                JsonFailure::Syntax(reason) | JsonFailure::Data(reason) => {
                    OAuthError::invalid_request(reason)
                }
            })
    }
}

/// Every parameter the OAuth2 endpoints read (and the client credentials a client may send).
const OAUTH_PARAMETERS: [&str; 9] = [
    "grant_type",
    "username",
    "password",
    "scope",
    "refresh_token",
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
];

/// An `application/x-www-form-urlencoded` OAuth2 request. A repeated parameter is
/// `invalid_request` (RFC 6749 §3.2); a parameter with an empty value counts as absent.
pub struct OAuthForm(HashMap<String, String>);

impl OAuthForm {
    /// The parameter's value, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The parameter's value, or `invalid_request` naming it.
    ///
    /// # Errors
    /// [`OAuthError`] `invalid_request` when the parameter is missing or empty.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter: {name}")))
    }
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    "request body too large",
                )
            } else {
                OAuthError::invalid_request("the request body could not be read")
            }
        })?;
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(&body) {
            // Unknown parameters are ignored (RFC 6749 §3.1), repeated or not.
            if !OAUTH_PARAMETERS.contains(&name.as_ref()) {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{name}' is repeated"
                )));
            }
        }
        Ok(OAuthForm(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_forwarded_address_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 10.0.0.7".parse().unwrap());
        assert_eq!(forwarded_for(&headers), "10.0.0.7".parse().ok());
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(forwarded_for(&headers), None);
    }

    #[test]
    fn bearer_tokens_come_only_from_a_bearer_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "bearer abc.def".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc.def"));
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn serde_errors_name_their_field() {
        assert_eq!(
            field_of("missing field `password` at line 1 column 2"),
            "password"
        );
        assert_eq!(
            field_of("email: invalid type: integer `1`, expected a string"),
            "email"
        );
        assert_eq!(field_of("invalid type: null, expected a map"), "body");
    }
}
