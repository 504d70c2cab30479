//! Second factors: the caller's TOTP enrolment, confirmation and removal, and the admin's
//! reset of a user's second factors.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::mfa::RecoveryCode;
use crate::domain::user::Password;
use crate::infrastructure::http::dto::{
    MfaPasswordRequest, RecoveryCodesBody, TotpConfirmRequest, TotpEnrolmentBody,
};
use crate::infrastructure::http::error::{Problem, ProblemBody};
use crate::infrastructure::http::extract::{AdminUser, ApiJson, Client, CurrentUser, PathUserId};
use crate::infrastructure::http::routes::responses::{
    AdminOnly, BodyRefused, DatabaseDown, Unauthenticated,
};
use crate::infrastructure::http::{no_store, AppState};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enrol_totp, disable_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(reset_mfa))
}

/// Start a TOTP enrolment
///
/// Checks the password (a wrong one counts toward the account's lockout), then returns a new
/// secret and its `otpauth://` URI. TOTP is not active until confirmed with a first code;
/// enrolling again while pending replaces the pending secret.
#[utoipa::path(
    post, path = "/users/me/mfa/totp", tag = "users",
    security(("oauth2" = [])),
    request_body = MfaPasswordRequest,
    responses(
        (status = 201, description = "Pending enrolment: the secret and its key URI", body = TotpEnrolmentBody),
        (status = 400, description = "wrong_password, or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        Unauthenticated,
        (status = 409, description = "totp_already_enabled: disable TOTP first", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "password missing or not a string", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "account_locked (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing saturated or database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn enrol_totp(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<MfaPasswordRequest>,
) -> Result<Response, Problem> {
    let password = Password::candidate(body.password.expose_secret());
    let enrolment = state.mfa.enrol_totp(&principal, &password, &ctx).await?;
    let body = TotpEnrolmentBody {
        secret: enrolment.secret.base32(),
        otpauth_uri: enrolment.otpauth_uri,
    };
    Ok((StatusCode::CREATED, no_store(), Json(body)).into_response())
}

/// Confirm the TOTP enrolment
///
/// Checks a first code of the pending secret (±1 step of 30 s); TOTP is then on, and ten
/// single-use recovery codes are returned, once (they replace any earlier ones).
#[utoipa::path(
    post, path = "/users/me/mfa/totp/confirm", tag = "users",
    security(("oauth2" = [])),
    request_body = TotpConfirmRequest,
    responses(
        (status = 200, description = "TOTP is on; the recovery codes", body = RecoveryCodesBody),
        (status = 400, description = "wrong_otp, or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        Unauthenticated,
        (status = 409, description = "totp_not_pending (no enrolment started, or replaced meanwhile) or totp_already_enabled", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "code missing or not a string", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn confirm_totp(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<TotpConfirmRequest>,
) -> Result<Response, Problem> {
    let codes = state
        .mfa
        .confirm_totp(&principal, body.code.expose_secret(), &ctx)
        .await?;
    let body = RecoveryCodesBody {
        recovery_codes: codes.iter().map(RecoveryCode::display).collect(),
    };
    Ok((StatusCode::OK, no_store(), Json(body)).into_response())
}

/// Disable TOTP
///
/// Checks the password (a wrong one counts toward the lockout), then removes the TOTP
/// authenticator (pending or confirmed) and every recovery code. Succeeds also when there
/// was none.
#[utoipa::path(
    delete, path = "/users/me/mfa/totp", tag = "users",
    security(("oauth2" = [])),
    request_body = MfaPasswordRequest,
    responses(
        (status = 204, description = "TOTP and recovery codes removed"),
        (status = 400, description = "wrong_password, or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        Unauthenticated,
        BodyRefused,
        (status = 422, description = "password missing or not a string", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "account_locked (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing saturated or database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn disable_totp(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
    ApiJson(body): ApiJson<MfaPasswordRequest>,
) -> Result<StatusCode, Problem> {
    let password = Password::candidate(body.password.expose_secret());
    state.mfa.disable_totp(&principal, &password, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reset a user's second factors
///
/// Removes the user's TOTP authenticator (pending or confirmed) and recovery codes, for a user
/// who lost them. Audited as `mfa_reset`.
#[utoipa::path(
    delete, path = "/users/{id}/mfa", tag = "admin",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 204, description = "Every second factor of the user removed"),
        AdminOnly,
        (status = 404, description = "No such user (user_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn reset_mfa(
    State(state): State<AppState>,
    Client(ctx): Client,
    AdminUser(principal): AdminUser,
    id: PathUserId,
) -> Result<StatusCode, Problem> {
    state.mfa.admin_reset(&principal, id.get()?, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
