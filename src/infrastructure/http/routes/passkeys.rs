//! The caller's passkeys: registration (a WebAuthn ceremony in two requests), the list, and
//! deletion.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::StartedCeremony;
use crate::infrastructure::http::dto::{
    CeremonyBody, PasskeyBody, PasskeyList, RegisterPasskeyRequest,
};
use crate::infrastructure::http::error::{Problem, ProblemBody};
use crate::infrastructure::http::extract::{ApiJson, Client, CurrentUser};
use crate::infrastructure::http::routes::responses::{BodyRefused, DatabaseDown, Unauthenticated};
use crate::infrastructure::http::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_registration))
        .routes(routes!(finish_registration))
        .routes(routes!(list_passkeys))
        .routes(routes!(delete_passkey))
}

/// The start of a ceremony as served: `{"ceremony_id", "publicKey"}`, never cached.
pub(crate) fn ceremony_response(started: StartedCeremony) -> Result<Response, Problem> {
    let mut options: serde_json::Value = serde_json::from_str(&started.options)
        .map_err(|e| Problem::from(crate::application::AppError::Internal(e.to_string())))?;
    let body = CeremonyBody {
        ceremony_id: started.id.as_uuid(),
        public_key: options["publicKey"].take(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// Start registering a passkey
///
/// Returns the WebAuthn creation options for the caller (a discoverable, user-verified
/// credential; the caller's existing passkeys excluded) and the id of this ceremony. The browser
/// calls `navigator.credentials.create({publicKey})` with `publicKey`'s base64url fields
/// (`challenge`, `user.id`, `excludeCredentials[].id`) decoded to bytes, then sends the result
/// to `POST /users/me/passkeys/register/finish` within 5 minutes.
#[utoipa::path(
    post, path = "/users/me/passkeys/register/start", tag = "passkeys",
    security(("oauth2" = [])),
    responses(
        (status = 200, description = "The creation options and the ceremony id", body = CeremonyBody),
        Unauthenticated,
        (status = 409, description = "passkey_limit_reached: the caller has 10 passkeys", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn start_registration(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Response, Problem> {
    let started = state.passkeys.start_registration(&principal).await?;
    ceremony_response(started)
}

/// Finish registering a passkey
///
/// Verifies the browser's credential against the ceremony (its challenge, this service's origin
/// and RP id, user verification) and stores the passkey. A ceremony is finished once: a second
/// finish, an expired one or another user's is refused.
#[utoipa::path(
    post, path = "/users/me/passkeys/register/finish", tag = "passkeys",
    security(("oauth2" = [])),
    request_body = RegisterPasskeyRequest,
    responses(
        (status = 201, description = "Registered", body = PasskeyBody,
         headers(("Location" = String, description = "/users/me/passkeys/{id}"))),
        (status = 400, description = "passkey_ceremony_invalid (unknown, expired, used or another user's ceremony), passkey_rejected (the credential did not verify), or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        Unauthenticated,
        (status = 409, description = "passkey_already_registered or passkey_limit_reached", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "A missing field or an invalid name", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn finish_registration(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<RegisterPasskeyRequest>,
) -> Result<Response, Problem> {
    let credential = body.credential.to_string();
    let passkey = state
        .passkeys
        .finish_registration(
            &principal,
            &body.ceremony_id,
            &credential,
            body.name.as_deref(),
            &ctx,
        )
        .await?;
    let location = format!("/users/me/passkeys/{}", passkey.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(PasskeyBody::from(&passkey)),
    )
        .into_response())
}

/// The caller's passkeys
///
/// Oldest first, with their names and when they were added and last used.
#[utoipa::path(
    get, path = "/users/me/passkeys", tag = "passkeys",
    security(("oauth2" = [])),
    responses(
        (status = 200, description = "The caller's passkeys", body = PasskeyList),
        Unauthenticated,
        DatabaseDown,
    )
)]
async fn list_passkeys(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Json<PasskeyList>, Problem> {
    let passkeys = state.passkeys.list(&principal).await?;
    Ok(Json(PasskeyList {
        items: passkeys.iter().map(PasskeyBody::from).collect(),
    }))
}

/// Delete a passkey
///
/// The passkey stops working at once. Another user's passkey, or an unknown id, is 404.
#[utoipa::path(
    delete, path = "/users/me/passkeys/{id}", tag = "passkeys",
    security(("oauth2" = [])),
    params(("id" = Uuid, Path, description = "The passkey's id")),
    responses(
        (status = 204, description = "Deleted"),
        Unauthenticated,
        (status = 404, description = "passkey_not_found", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn delete_passkey(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    state.passkeys.delete(&principal, &id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
