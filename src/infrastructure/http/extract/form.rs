//! The `application/x-www-form-urlencoded` body of the OAuth2 endpoints.

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};

use super::fields::FieldProblem;
use super::{body_bytes, is_form};
use crate::infrastructure::http::error::{OAuthError, Rejection};
use crate::infrastructure::http::AppState;

/// Every parameter the OAuth2 endpoints read (and the client credentials a client may send).
const OAUTH_PARAMETERS: [&str; 13] = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "username",
    "password",
    "scope",
    "refresh_token",
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
    // The password grant's second factor (issue 14).
    "otp",
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
            .ok_or_else(|| Rejection::Field(FieldProblem::missing(name).into_field_error()).into())
    }

    /// The OAuth2 parameters of a form body; unknown ones are ignored (RFC 6749 §3.1), repeated
    /// or not.
    fn parse(body: &[u8]) -> Result<Self, Rejection> {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if !OAUTH_PARAMETERS.contains(&name.as_ref()) {
                continue;
            }
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(Rejection::Field(
                    FieldProblem::repeated(&name).into_field_error(),
                ));
            }
        }
        Ok(Self(params))
    }
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_form(req.headers()) {
            return Err(Rejection::NotForm.into());
        }
        Ok(Self::parse(&body_bytes(req, state).await?)?)
    }
}
