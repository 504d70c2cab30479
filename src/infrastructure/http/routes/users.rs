//! Registration, the current user, password changes and the protected demo endpoint.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::NewUser;
use crate::domain::user::Password;
use crate::domain::validation::FieldError;
use crate::infrastructure::http::dto::{
    ChangePasswordRequest, ProtectedBody, RegisterRequest, UserBody, UserJson,
};
use crate::infrastructure::http::error::{Problem, ProblemBody};
use crate::infrastructure::http::extract::{fields, ApiJson, Client, CurrentUser, MaybeUser};
use crate::infrastructure::http::routes::responses::{BodyRefused, DatabaseDown, Unauthenticated};
use crate::infrastructure::http::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(protected))
}

/// Register a user
///
/// Creates a user with the role `user`. Usernames and e-mail addresses are unique regardless of
/// case; passwords on the list of the 10,000 most common are refused (`password_too_common`).
/// Every invalid field is reported at once. While registration is open (the default) no token is
/// needed; with `REGISTRATION_OPEN=false` only an admin bearer may create users.
#[utoipa::path(
    post, path = "/users", tag = "users",
    request_body = RegisterRequest,
    security((), ("oauth2" = ["admin"])),
    responses(
        (status = 201, description = "Created", body = UserBody,
         headers(("Location" = String, description = "/users/{id}"))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Registration is closed and no (valid) token was sent", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Registration is closed and the caller is not an admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "username_taken or email_taken", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "Invalid fields (validation_failed; password_too_common in an errors entry)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing saturated or database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn register(
    State(state): State<AppState>,
    Client(ctx): Client,
    MaybeUser(caller): MaybeUser,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, Problem> {
    state.users.authorize_registration(caller.as_ref())?;
    let required = |field: &str| FieldError::new(field, "required", fields::REQUIRED);
    let missing: Vec<FieldError> = [
        body.username.is_none().then(|| required("username")),
        body.password.is_none().then(|| required("password")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (Some(username), Some(password)) = (body.username, body.password) else {
        return Err(Problem::validation(missing));
    };
    let input = NewUser {
        username,
        password: Password::candidate(password.expose_secret()),
        email: body.email,
        full_name: body.full_name,
        roles: None,
    };
    let user = state.users.register(input, caller.as_ref(), &ctx).await?;
    let location = format!("/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserBody::from(&user)),
    )
        .into_response())
}

/// The current user
///
/// Returns the user the access token belongs to, as stored now.
#[utoipa::path(
    get, path = "/users/me", tag = "users",
    security(("oauth2" = [])),
    responses(
        (status = 200, description = "The caller", body = UserBody),
        Unauthenticated,
        DatabaseDown,
    )
)]
async fn me(CurrentUser(principal): CurrentUser) -> Json<UserJson> {
    Json(UserJson(principal.user))
}

/// Change the password
///
/// Checks the current password (a wrong one counts toward the account's lockout, like a failed
/// login), sets the new one, and revokes every other session of the user
/// (this session stays logged in).
#[utoipa::path(
    put, path = "/users/me/password", tag = "users",
    security(("oauth2" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; other sessions revoked"),
        (status = 400, description = "wrong_password, or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        Unauthenticated,
        BodyRefused,
        (status = 422, description = "The new password breaks the rules (too short, too long, password_too_common)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "account_locked: too many wrong current passwords (they count toward the same lockout as logins), or rate_limited: too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing saturated or database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, Problem> {
    let current = Password::candidate(body.current_password.expose_secret());
    state
        .users
        .change_password(
            &principal,
            &current,
            body.new_password.expose_secret(),
            &ctx,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A protected demo endpoint
///
/// Greets the authenticated caller: a minimal example of a resource behind the bearer check.
#[utoipa::path(
    get, path = "/protected", tag = "demo",
    security(("oauth2" = [])),
    responses(
        (status = 200, description = "A greeting", body = ProtectedBody),
        Unauthenticated,
        DatabaseDown,
    )
)]
async fn protected(CurrentUser(principal): CurrentUser) -> Json<ProtectedBody> {
    let username = principal.user.username.as_str().to_owned();
    Json(ProtectedBody {
        message: format!("Hello, {username}!"),
        username,
        user_id: principal.user.id.as_uuid(),
    })
}
