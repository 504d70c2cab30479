//! User administration and the audit log: admins only (403 `insufficient_scope` otherwise).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::UserPatch;
use crate::domain::audit::AuditFilter;
use crate::domain::user::UserId;
use crate::infrastructure::http::dto::{
    AuditEventBody, AuditPageBody, AuditQuery, PageQuery, UserBody, UserPageBody, UserPatchRequest,
};
use crate::infrastructure::http::error::{Problem, ProblemBody};
use crate::infrastructure::http::extract::{AdminUser, ApiJson, ApiQuery, Client, PathUserId};
use crate::infrastructure::http::routes::responses::{AdminOnly, BodyRefused, DatabaseDown};
use crate::infrastructure::http::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user))
        .routes(routes!(audit_events))
}

/// List users
///
/// Every user, oldest first, a page at a time.
#[utoipa::path(
    get, path = "/users", tag = "admin",
    params(PageQuery),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "A page of users", body = UserPageBody),
        AdminOnly,
        (status = 422, description = "limit outside 1..=100 or a malformed parameter", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn list_users(
    State(state): State<AppState>,
    AdminUser(principal): AdminUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<UserPageBody>, Problem> {
    let offset = query.offset.unwrap_or(0);
    if i64::try_from(offset).is_err() {
        return Err(Problem::invalid_field(
            "offset",
            "out_of_range",
            "must be at most 9223372036854775807",
        ));
    }
    let limit = query.limit.unwrap_or(20);
    let page = state.users.list_users(&principal, limit, offset).await?;
    Ok(Json(UserPageBody {
        items: page.items.iter().map(UserBody::from).collect(),
        total: page.total,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// Get a user
///
/// One user by id.
#[utoipa::path(
    get, path = "/users/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "The user", body = UserBody),
        AdminOnly,
        (status = 404, description = "No such user (user_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn get_user(
    State(state): State<AppState>,
    AdminUser(principal): AdminUser,
    id: PathUserId,
) -> Result<Json<UserBody>, Problem> {
    let user = state.users.get_user(&principal, id.get()?).await?;
    Ok(Json(UserBody::from(&user)))
}

/// Change a user
///
/// Enables or disables a user (disabling revokes every session at once), replaces its roles, or
/// sets or clears (`null`) its e-mail address and full name. An admin cannot disable themself or
/// drop their own admin role.
#[utoipa::path(
    patch, path = "/users/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = UserPatchRequest,
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "The changed user", body = UserBody),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        AdminOnly,
        (status = 404, description = "No such user (user_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The e-mail address belongs to another user (email_taken)", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "Invalid fields, unknown fields, or a self-lockout", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn update_user(
    State(state): State<AppState>,
    Client(ctx): Client,
    AdminUser(principal): AdminUser,
    id: PathUserId,
    ApiJson(body): ApiJson<UserPatchRequest>,
) -> Result<Json<UserBody>, Problem> {
    let patch = UserPatch {
        is_active: body.is_active,
        roles: body.roles,
        email: body.email,
        full_name: body.full_name,
    };
    let user = state
        .users
        .update_user(&principal, id.get()?, patch, &ctx)
        .await?;
    Ok(Json(UserBody::from(&user)))
}

/// Read the audit log
///
/// Authentication events (logins, lockouts, refreshes, reuse detections, logouts, password
/// changes, user changes), newest first, with who, when, from which IP and user agent.
#[utoipa::path(
    get, path = "/admin/audit-events", tag = "admin",
    params(AuditQuery),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "Events, newest first", body = AuditPageBody),
        AdminOnly,
        (status = 422, description = "An unknown event, a malformed user_id or before, or limit outside 1..=200", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn audit_events(
    State(state): State<AppState>,
    AdminUser(principal): AdminUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPageBody>, Problem> {
    let kind = query
        .event
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| Problem::invalid_field("event", "unknown_event", e))?;
    let before = query
        .before
        .as_deref()
        .map(|raw| DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)))
        .transpose()
        .map_err(|_| {
            Problem::invalid_field("before", "invalid_time", "must be an RFC 3339 time")
        })?;
    let filter = AuditFilter {
        user_id: query.user_id.map(UserId::from_uuid),
        kind,
        before,
        limit: query.limit.unwrap_or(50),
    };
    let events = state.audit.list(&principal, &filter).await?;
    Ok(Json(AuditPageBody {
        items: events.iter().map(AuditEventBody::from).collect(),
    }))
}
