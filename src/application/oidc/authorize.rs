//! The authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect Core §3.1.2): its
//! checks, in the order that decides where an error goes, and the code it ends with.
//!
//! Errors about the client or the redirect URI are shown to the user (an attacker could
//! otherwise use the service as an open redirector); once both are known good, every other
//! error is sent back to the client's redirect URI with `error`, `state` and `iss`.

use std::sync::Arc;

use chrono::Duration;

use super::{require_grant, OidcService};
use crate::application::AppError;
use crate::domain::client::{Client, ClientType, GrantType};
use crate::domain::oidc::{
    AuthorizationCode, CodeChallenge, CodeGrant, Scope, CODE_LIFETIME_SECONDS,
};
use crate::domain::session::Session;
use crate::domain::user::User;

/// An authorization request as received: every parameter as sent, unchecked.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    /// Names of parameters sent more than once (RFC 6749 §3.1: each at most once).
    pub repeated: Vec<String>,
}

/// What the request asks of the sign-in (OpenID Connect Core §3.1.2.1 `prompt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Reuse a live sign-in, or show the login page.
    Default,
    /// Always show the login page, even with a live sign-in.
    Login,
    /// Never show a page: without a live sign-in, answer `login_required`.
    None,
}

/// A request whose every parameter passed.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub client: Client,
    /// As sent (it matched a registered one).
    pub redirect_uri: String,
    /// What will be granted: the request's values the client is allowed.
    pub scope: Scope,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub challenge: Option<CodeChallenge>,
    pub prompt: Prompt,
    /// OpenID Connect `max_age`: a sign-in older than this must be renewed.
    pub max_age: Option<Duration>,
}

/// A successful authorization: where to send the browser with its code.
#[derive(Debug)]
pub struct CodeRedirect {
    pub redirect_uri: String,
    pub code: AuthorizationCode,
    pub state: Option<String>,
}

/// What an authorization request leads to.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// The browser has a fitting sign-in: redirect with a code.
    Code(CodeRedirect),
    /// The user must sign in first: show the login page for this request.
    Login(Box<ValidRequest>),
}

/// Why an authorization request failed, and where the answer goes.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or the redirect URI is unknown or wrong: an error page, no redirect.
    Page(&'static str),
    /// Anything else: back to the client (RFC 6749 §4.1.2.1).
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
    /// The service itself failed (database down): an error page with the status of `0`.
    Failed(AppError),
}

impl From<AppError> for AuthorizeError {
    fn from(error: AppError) -> Self {
        Self::Failed(error)
    }
}

/// The longest `state` and `nonce` accepted, in bytes. Clients send a random value of a few
/// dozen characters; a longer one is refused, never cut.
const MAX_STATE_LEN: usize = 2048;
const MAX_NONCE_LEN: usize = 512;
/// The largest `max_age` accepted (a year); larger values mean nothing more.
const MAX_MAX_AGE: i64 = 366 * 24 * 3600;

impl OidcService {
    /// Checks an authorization request. The client and the redirect URI first: their errors
    /// are [`AuthorizeError::Page`]; then everything else, whose errors are redirected.
    ///
    /// # Errors
    /// [`AuthorizeError`].
    pub async fn validate_request(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<ValidRequest, AuthorizeError> {
        if request
            .repeated
            .iter()
            .any(|p| p == "client_id" || p == "redirect_uri")
        {
            return Err(AuthorizeError::Page(
                "The request names the client or the redirect URI more than once.",
            ));
        }
        let Some(client_id) = request.client_id.as_deref() else {
            return Err(AuthorizeError::Page(
                "The request names no client (client_id).",
            ));
        };
        let client = self
            .find_active_client(client_id)
            .await?
            .ok_or(AuthorizeError::Page(
                "The application that sent you here is not registered with this service, or it is disabled.",
            ))?;
        let Some(redirect_uri) = request.redirect_uri.clone() else {
            return Err(AuthorizeError::Page(
                "The request names no redirect URI (redirect_uri).",
            ));
        };
        if !client
            .redirect_uris
            .iter()
            .any(|r| r.matches(&redirect_uri))
        {
            return Err(AuthorizeError::Page(
                "The redirect URI of the request is not registered for this application.",
            ));
        }
        let state = request.state.clone().filter(|s| s.len() <= MAX_STATE_LEN);
        let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
        };
        if request
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_STATE_LEN)
        {
            return Err(fail(
                "invalid_request",
                format!("state is longer than {MAX_STATE_LEN} bytes"),
            ));
        }
        if let Some(repeated) = request.repeated.first() {
            return Err(fail(
                "invalid_request",
                format!("parameter '{repeated}' is repeated"),
            ));
        }
        match request.response_type.as_deref() {
            Some("code") => {}
            None => return Err(fail("invalid_request", "response_type is missing".into())),
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported".into(),
                ))
            }
        }
        if let Err(AppError::UnauthorizedClient(detail)) =
            require_grant(&client, GrantType::AuthorizationCode)
        {
            return Err(fail("unauthorized_client", detail.into()));
        }
        let scope = match request.scope.as_deref() {
            Some(raw) => Scope::parse(raw)
                .map_err(|value| fail("invalid_scope", format!("unknown scope value '{value}'")))?,
            None => Scope::parse(&client.scope.to_space_separated()).unwrap_or_default(),
        };
        let allowed = Scope::parse(&client.scope.to_space_separated()).unwrap_or_default();
        let scope = scope.intersection(&allowed);
        let challenge = match (
            request.code_challenge.as_deref(),
            request.code_challenge_method.as_deref(),
        ) {
            (Some(challenge), Some("S256")) => Some(
                CodeChallenge::parse_s256(challenge)
                    .map_err(|why| fail("invalid_request", why.into()))?,
            ),
            (Some(_), None) | (Some(_), Some("plain")) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not supported)".into(),
                ))
            }
            (_, Some(method)) if method != "S256" => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method without code_challenge".into(),
                ))
            }
            (None, None) if client.client_type == ClientType::Public => {
                return Err(fail(
                    "invalid_request",
                    "a public client must use PKCE (code_challenge with S256)".into(),
                ))
            }
            (None, None) => None,
            (Some(_), Some(_)) => unreachable!("S256 and every other method are handled above"),
        };
        if request
            .nonce
            .as_ref()
            .is_some_and(|n| n.len() > MAX_NONCE_LEN)
        {
            return Err(fail(
                "invalid_request",
                format!("nonce is longer than {MAX_NONCE_LEN} bytes"),
            ));
        }
        let prompt = match request.prompt.as_deref().map(str::trim) {
            None | Some("") | Some("consent") => Prompt::Default,
            Some("login") => Prompt::Login,
            Some("none") => Prompt::None,
            Some(_) => {
                return Err(fail(
                    "invalid_request",
                    "prompt must be one of login, none or consent".into(),
                ))
            }
        };
        let max_age = match request.max_age.as_deref() {
            None => None,
            Some(raw) => match raw.parse::<i64>() {
                Ok(seconds) if (0..=MAX_MAX_AGE).contains(&seconds) => {
                    Some(Duration::seconds(seconds))
                }
                _ => {
                    return Err(fail(
                        "invalid_request",
                        format!(
                            "max_age must be a whole number of seconds from 0 to {MAX_MAX_AGE}"
                        ),
                    ))
                }
            },
        };
        Ok(ValidRequest {
            client,
            redirect_uri,
            scope,
            state,
            nonce: request.nonce.clone(),
            challenge,
            prompt,
            max_age,
        })
    }

    /// Decides a valid request given the browser's sign-in (if it has a live one): a code when
    /// the sign-in fits the request (no `prompt=login`, not older than `max_age`), the login
    /// page otherwise, or `login_required` for `prompt=none`.
    ///
    /// # Errors
    /// [`AuthorizeError::Redirect`] (`login_required`), [`AuthorizeError::Failed`].
    pub async fn decide(
        &self,
        request: ValidRequest,
        signin: Option<(Session, Arc<User>)>,
    ) -> Result<AuthorizeOutcome, AuthorizeError> {
        let now = self.ports.clock.now();
        let fits = |session: &Session| {
            request.prompt != Prompt::Login
                && request
                    .max_age
                    .is_none_or(|max_age| now - session.created_at <= max_age)
        };
        match signin {
            Some((session, user)) if fits(&session) => {
                let redirect = self.issue_code(&request, &session, &user).await?;
                Ok(AuthorizeOutcome::Code(redirect))
            }
            _ if request.prompt == Prompt::None => Err(AuthorizeError::Redirect {
                redirect_uri: request.redirect_uri,
                error: "login_required",
                description: "the user is not signed in (prompt=none)".into(),
                state: request.state,
            }),
            _ => Ok(AuthorizeOutcome::Login(Box::new(request))),
        }
    }

    /// Issues a code for a valid request under a live sign-in: single use, bound to the
    /// client, the redirect URI and the challenge, alive [`CODE_LIFETIME_SECONDS`].
    ///
    /// # Errors
    /// [`AuthorizeError::Failed`] when it cannot be stored.
    pub async fn issue_code(
        &self,
        request: &ValidRequest,
        signin: &Session,
        user: &User,
    ) -> Result<CodeRedirect, AuthorizeError> {
        let now = self.ports.clock.now();
        let code = AuthorizationCode::generate();
        let mut scope = request.scope.clone();
        scope.roles = scope.roles.intersection(&user.roles);
        let grant = CodeGrant {
            hash: code.hash(),
            client_id: request.client.id,
            user_id: user.id,
            signin_id: signin.id,
            redirect_uri: request.redirect_uri.clone(),
            challenge: request.challenge.clone(),
            scope,
            nonce: request.nonce.clone(),
            auth_time: signin.created_at,
            created_at: now,
            expires_at: now + Duration::seconds(CODE_LIFETIME_SECONDS),
        };
        // Not audited here: the client's sign-in is recorded when it exchanges the code, and the
        // user's when they signed in.
        self.oidc
            .codes
            .insert(&grant)
            .await
            .map_err(AppError::from)?;
        tracing::debug!(client_id = %request.client.id, signin = %signin.id, user_id = %user.id, "authorization code issued");
        Ok(CodeRedirect {
            redirect_uri: request.redirect_uri.clone(),
            code,
            state: request.state.clone(),
        })
    }
}
