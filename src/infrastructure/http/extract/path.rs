//! Ids in paths (`/users/{id}`, `/admin/clients/{client_id}`), read as `Path<Uuid>`.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use uuid::Uuid;

use crate::domain::client::ClientId;
use crate::domain::user::UserId;
use crate::infrastructure::http::error::Problem;
use crate::infrastructure::http::AppState;

/// The `{id}` of a user path. An id that is not a UUID names no user: [`PathUserId::get`]
/// answers it 404 `user_not_found`, like an unknown id, when the handler asks for it (after the
/// body is read, so a malformed body is reported first). A segment that is not UTF-8 once
/// percent-decoded is refused at once, 400 `bad_request`.
pub struct PathUserId(Option<UserId>);

impl PathUserId {
    /// The id.
    ///
    /// # Errors
    /// [`Problem::user_not_found`] when the segment is not a UUID.
    pub fn get(self) -> Result<UserId, Problem> {
        self.0.ok_or_else(Problem::user_not_found)
    }
}

/// The UUID of a path's one parameter: `None` when it is not a UUID (answered as an unknown id),
/// 400 `bad_request` when it is not UTF-8 once percent-decoded.
pub(crate) async fn path_uuid(
    parts: &mut Parts,
    state: &AppState,
) -> Result<Option<Uuid>, Problem> {
    match Path::<Uuid>::from_request_parts(parts, state).await {
        Ok(Path(id)) => Ok(Some(id)),
        Err(PathRejection::FailedToDeserializePathParams(error))
            if matches!(error.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
        {
            Err(Problem::bare(StatusCode::BAD_REQUEST))
        }
        Err(_) => Ok(None),
    }
}

impl FromRequestParts<AppState> for PathUserId {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(path_uuid(parts, state).await?.map(UserId::from_uuid)))
    }
}

/// The `{client_id}` of a client path, read like [`PathUserId`]: an id that is not a UUID is
/// answered 404 `client_not_found` by [`PathClientId::get`].
pub struct PathClientId(Option<ClientId>);

impl PathClientId {
    /// The id.
    ///
    /// # Errors
    /// [`Problem::client_not_found`] when the segment is not a UUID.
    pub fn get(self) -> Result<ClientId, Problem> {
        self.0.ok_or_else(Problem::client_not_found)
    }
}

impl FromRequestParts<AppState> for PathClientId {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            path_uuid(parts, state).await?.map(ClientId::from_uuid),
        ))
    }
}
