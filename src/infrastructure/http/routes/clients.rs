//! Registered OAuth clients: admins only (403 `insufficient_scope` otherwise). Answers carrying
//! a client secret are `Cache-Control: no-store`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::{ClientPatch, NewClient};
use crate::domain::validation::FieldError;
use crate::infrastructure::http::dto::{
    ClientBody, ClientCreatedBody, ClientPageBody, ClientPatchRequest, ClientRequest,
    ClientSecretBody, PageQuery,
};
use crate::infrastructure::http::error::{Problem, ProblemBody};
use crate::infrastructure::http::extract::{
    fields, AdminUser, ApiJson, ApiQuery, Client, PathClientId,
};
use crate::infrastructure::http::routes::responses::{AdminOnly, BodyRefused, DatabaseDown};
use crate::infrastructure::http::{no_store, AppState};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, update_client, delete_client))
        .routes(routes!(rotate_secret))
}

/// Register a client
///
/// Registers an OAuth client. A confidential client's `client_secret` is in this answer only:
/// it is stored as a hash and cannot be shown again (rotate it to get a new one).
#[utoipa::path(
    post, path = "/admin/clients", tag = "clients",
    request_body = ClientRequest,
    security(("oauth2" = ["admin"])),
    responses(
        (status = 201, description = "The client, with its secret when confidential; Location names it", body = ClientCreatedBody,
            headers(("Location" = String, description = "/admin/clients/{client_id}"))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        AdminOnly,
        BodyRefused,
        (status = 422, description = "Invalid fields (validation_failed, one entry per broken rule)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn create_client(
    State(state): State<AppState>,
    Client(ctx): Client,
    AdminUser(principal): AdminUser,
    ApiJson(body): ApiJson<ClientRequest>,
) -> Result<Response, Problem> {
    let required = |field: &str| FieldError::new(field, "required", fields::REQUIRED);
    let missing: Vec<FieldError> = [
        body.client_name.is_none().then(|| required("client_name")),
        body.client_type.is_none().then(|| required("client_type")),
        body.redirect_uris
            .is_none()
            .then(|| required("redirect_uris")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (Some(client_name), Some(client_type), Some(redirect_uris)) =
        (body.client_name, body.client_type, body.redirect_uris)
    else {
        return Err(Problem::validation(missing));
    };
    let new = NewClient {
        client_name,
        client_type,
        redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        grant_types: body.grant_types,
        scope: body.scope,
    };
    let made = state.clients.create_client(&principal, new, &ctx).await?;
    let secret = made.secret.map(|s| s.expose().to_owned());
    let body = ClientCreatedBody {
        client: ClientBody::from(&made.client),
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
    };
    let location = format!("/admin/clients/{}", made.client.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        no_store(),
        Json(body),
    )
        .into_response())
}

/// List clients
///
/// Every registered client, oldest first, a page at a time. Never a secret.
#[utoipa::path(
    get, path = "/admin/clients", tag = "clients",
    params(PageQuery),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "A page of clients", body = ClientPageBody),
        AdminOnly,
        (status = 422, description = "limit outside 1..=100 or a malformed parameter", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn list_clients(
    State(state): State<AppState>,
    AdminUser(principal): AdminUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ClientPageBody>, Problem> {
    let offset = query.offset.unwrap_or(0);
    if i64::try_from(offset).is_err() {
        return Err(Problem::invalid_field(
            "offset",
            "out_of_range",
            "must be at most 9223372036854775807",
        ));
    }
    let limit = query.limit.unwrap_or(20);
    let page = state
        .clients
        .list_clients(&principal, limit, offset)
        .await?;
    Ok(Json(ClientPageBody {
        items: page.items.iter().map(ClientBody::from).collect(),
        total: page.total,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// Get a client
///
/// One client by id. Never its secret.
#[utoipa::path(
    get, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = Uuid, Path, description = "The client's id")),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "The client", body = ClientBody),
        AdminOnly,
        (status = 404, description = "No such client (client_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn get_client(
    State(state): State<AppState>,
    AdminUser(principal): AdminUser,
    id: PathClientId,
) -> Result<Json<ClientBody>, Problem> {
    let client = state.clients.get_client(&principal, id.get()?).await?;
    Ok(Json(ClientBody::from(&client)))
}

/// Change a client
///
/// Replaces its name, redirect URIs, post-logout redirect URIs, grant types or scope, or
/// enables or disables it: disabling revokes every session issued to it at once. The type
/// cannot change.
#[utoipa::path(
    patch, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = Uuid, Path, description = "The client's id")),
    request_body = ClientPatchRequest,
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "The changed client", body = ClientBody),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        AdminOnly,
        (status = 404, description = "No such client (client_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "Invalid or unknown fields (validation_failed)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn update_client(
    State(state): State<AppState>,
    Client(ctx): Client,
    AdminUser(principal): AdminUser,
    id: PathClientId,
    ApiJson(body): ApiJson<ClientPatchRequest>,
) -> Result<Json<ClientBody>, Problem> {
    let patch = ClientPatch {
        client_name: body.client_name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        grant_types: body.grant_types,
        scope: body.scope,
        is_active: body.is_active,
    };
    let client = state
        .clients
        .update_client(&principal, id.get()?, patch, &ctx)
        .await?;
    Ok(Json(ClientBody::from(&client)))
}

/// Delete a client
///
/// Deletes the client; every session issued to it is revoked in the same commit, so its tokens
/// stop working at once.
#[utoipa::path(
    delete, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = Uuid, Path, description = "The client's id")),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 204, description = "Deleted"),
        AdminOnly,
        (status = 404, description = "No such client (client_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn delete_client(
    State(state): State<AppState>,
    Client(ctx): Client,
    AdminUser(principal): AdminUser,
    id: PathClientId,
) -> Result<StatusCode, Problem> {
    state
        .clients
        .delete_client(&principal, id.get()?, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a client's secret
///
/// Gives a confidential client a new secret, shown in this answer only; the old one stops
/// working at once. A public client has none (409 `public_client`).
#[utoipa::path(
    post, path = "/admin/clients/{client_id}/secret", tag = "clients",
    params(("client_id" = Uuid, Path, description = "The client's id")),
    security(("oauth2" = ["admin"])),
    responses(
        (status = 200, description = "The new secret", body = ClientSecretBody),
        AdminOnly,
        (status = 404, description = "No such client (client_not_found)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A public client has no secret (public_client)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn rotate_secret(
    State(state): State<AppState>,
    Client(ctx): Client,
    AdminUser(principal): AdminUser,
    id: PathClientId,
) -> Result<Response, Problem> {
    let secret = state
        .clients
        .rotate_secret(&principal, id.get()?, &ctx)
        .await?;
    let body = ClientSecretBody {
        client_secret: secret.expose().to_owned(),
    };
    Ok((no_store(), Json(body)).into_response())
}
