//! The caller's sessions (list, end one) and account deletion, by the user and by an admin.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::AppError;
use crate::domain::session::SessionId;
use crate::domain::user::Password;
use crate::domain::validation::FieldError;
use crate::infrastructure::http::dto::{DeleteAccountRequest, SessionBody, SessionListBody};
use crate::infrastructure::http::error::{Problem, ProblemBody};
use crate::infrastructure::http::extract::{
    fields, path_uuid, AdminUser, ApiJson, Client, CurrentUser, PathUserId,
};
use crate::infrastructure::http::routes::responses::{
    AdminOnly, BodyRefused, DatabaseDown, Unauthenticated,
};
use crate::infrastructure::http::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(delete_me))
        .routes(routes!(delete_user))
}

/// The `{id}` of a session path: an id that is not a UUID names no session (404
/// `session_not_found`, like an unknown one).
pub struct PathSessionId(Option<SessionId>);

impl FromRequestParts<AppState> for PathSessionId {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            path_uuid(parts, state).await?.map(SessionId::from_uuid),
        ))
    }
}

/// My sessions
///
/// The caller's live sessions, newest first: logins with the password grant, sessions minted
/// with `POST /auth/refresh-token`, sessions of OAuth clients (code flow), and browser sign-ins
/// of the hosted login page (`client_id` null). `current` marks the one the caller's access
/// token belongs to. `last_used_at` moves when the session's refresh token rotates, not on
/// every access-token use.
#[utoipa::path(
    get, path = "/users/me/sessions", tag = "users",
    security(("oauth2" = [])),
    responses(
        (status = 200, description = "Live sessions, newest first", body = SessionListBody),
        Unauthenticated,
        DatabaseDown,
    )
)]
async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Json<SessionListBody>, Problem> {
    let sessions = state.account.sessions(&principal).await?;
    Ok(Json(SessionListBody {
        items: sessions.iter().map(SessionBody::from).collect(),
    }))
}

/// End one of my sessions
///
/// Revokes one of the caller's live sessions and every session started from it: its refresh
/// and access tokens stop working at once. Ending the current session logs the caller out.
#[utoipa::path(
    delete, path = "/users/me/sessions/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "The session's id")),
    security(("oauth2" = [])),
    responses(
        (status = 204, description = "Ended"),
        Unauthenticated,
        (status = 404, description = "The caller has no live session with this id (session_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn end_session(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    PathSessionId(id): PathSessionId,
) -> Result<StatusCode, Problem> {
    let id = id.ok_or(AppError::SessionNotFound)?;
    state.account.end_session(&principal, id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete my account
///
/// Deletes the caller's account after checking its password (a wrong one counts toward the
/// account's lockout, like a failed login) and, when the account has a second factor, a TOTP
/// or recovery code in `otp`. Its sessions, tokens and second factors go with it; the audit log
/// keeps the user id without username, e-mail or IP. The username and e-mail address can be
/// registered again. The last active admin cannot be deleted.
#[utoipa::path(
    delete, path = "/users/me", tag = "users",
    security(("oauth2" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "wrong_password, wrong_otp, or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        Unauthenticated,
        (status = 409, description = "The caller is the last active admin (last_admin)", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "password is missing", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "account_locked: too many wrong passwords (they count toward the same lockout as logins), or rate_limited (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing saturated or database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn delete_me(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<DeleteAccountRequest>,
) -> Result<StatusCode, Problem> {
    let Some(password) = body.password else {
        let error = FieldError::new("password", "required", fields::REQUIRED);
        return Err(Problem::validation(vec![error]));
    };
    let password = Password::candidate(password.expose_secret());
    let otp = body.otp.as_ref().map(|otp| otp.expose_secret());
    state
        .account
        .delete_own_account(&principal, &password, otp, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a user
///
/// Deletes a user as `DELETE /users/me` does, without a password. An admin may delete
/// themself, unless they are the last active admin.
#[utoipa::path(
    delete, path = "/users/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 204, description = "Deleted"),
        AdminOnly,
        (status = 404, description = "No such user (user_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user is the last active admin (last_admin)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn delete_user(
    State(state): State<AppState>,
    AdminUser(principal): AdminUser,
    id: PathUserId,
) -> Result<StatusCode, Problem> {
    state.account.delete_user(&principal, id.get()?).await?;
    Ok(StatusCode::NO_CONTENT)
}
