//! The bodies of client registration (`/admin/clients`), with RFC 7591's field names.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{name_schema, rfc3339};
use crate::domain::client::{Client, ClientType, GrantType};

/// A client as administrators see it: never its secret or the secret's hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "client_id": "01932c07-6a4e-7c3a-9d1e-3f2b5c4a1e01",
    "client_name": "Billing portal",
    "client_type": "confidential",
    "token_endpoint_auth_method": "client_secret_basic",
    "redirect_uris": ["https://billing.example.com/callback"],
    "post_logout_redirect_uris": [],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile email",
    "is_active": true,
    "client_id_issued_at": 1795000000,
    "created_at": "2026-11-24T10:00:00.000000Z",
    "updated_at": "2026-11-24T10:00:00.000000Z"
}))]
pub struct ClientBody {
    pub client_id: String,
    pub client_name: String,
    /// `public` or `confidential`.
    pub client_type: &'static str,
    /// RFC 7591: `client_secret_basic` for a confidential client, `none` for a public one.
    pub token_endpoint_auth_method: &'static str,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// Space-separated scope values the client may request.
    pub scope: String,
    /// A disabled client's tokens stop working.
    pub is_active: bool,
    /// RFC 7591: seconds since the epoch.
    pub client_id_issued_at: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Client> for ClientBody {
    fn from(client: &Client) -> Self {
        Self {
            client_id: client.id.to_string(),
            client_name: client.name.as_str().to_owned(),
            client_type: client.client_type.as_str(),
            token_endpoint_auth_method: match client.client_type {
                ClientType::Confidential => "client_secret_basic",
                ClientType::Public => "none",
            },
            redirect_uris: uris(&client.redirect_uris),
            post_logout_redirect_uris: uris(&client.post_logout_redirect_uris),
            grant_types: client.grant_types.names(),
            scope: client.scope.to_space_separated(),
            is_active: client.is_active,
            client_id_issued_at: client.created_at.timestamp(),
            created_at: rfc3339(client.created_at),
            updated_at: rfc3339(client.updated_at),
        }
    }
}

fn uris(list: &[crate::domain::client::RedirectUri]) -> Vec<String> {
    list.iter().map(|u| u.as_str().to_owned()).collect()
}

/// A client just registered: the client, and for a confidential client its secret, shown this
/// once (only its hash is stored).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "client_id": "01932c07-6a4e-7c3a-9d1e-3f2b5c4a1e01",
    "client_name": "Billing portal",
    "client_type": "confidential",
    "token_endpoint_auth_method": "client_secret_basic",
    "redirect_uris": ["https://billing.example.com/callback"],
    "post_logout_redirect_uris": [],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile email",
    "is_active": true,
    "client_id_issued_at": 1795000000,
    "created_at": "2026-11-24T10:00:00.000000Z",
    "updated_at": "2026-11-24T10:00:00.000000Z",
    "client_secret": "Jr3x8Qk0v1m2N3b4V5c6X7z8A9s0D1f2G3h4J5k6L7q",
    "client_secret_expires_at": 0
}))]
pub struct ClientCreatedBody {
    #[serde(flatten)]
    pub client: ClientBody,
    /// Confidential clients only: 43 characters of base64url (256 random bits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// RFC 7591: 0, the secret does not expire. Confidential clients only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
}

/// A new secret for a confidential client; the old one no longer works.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"client_secret": "Jr3x8Qk0v1m2N3b4V5c6X7z8A9s0D1f2G3h4J5k6L7q"}))]
pub struct ClientSecretBody {
    pub client_secret: String,
}

/// One page of clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientPageBody {
    pub items: Vec<ClientBody>,
    /// All clients, across pages.
    #[schema(example = 3)]
    pub total: u64,
    #[schema(example = 20)]
    pub limit: u32,
    #[schema(example = 0)]
    pub offset: u64,
}

/// A client registration. Metadata this service does not know is ignored (RFC 7591 §2).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "client_name": "Billing portal",
    "client_type": "confidential",
    "redirect_uris": ["https://billing.example.com/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile email"
}))]
pub struct ClientRequest {
    /// 1–100 characters, not blank, no control characters.
    #[schema(value_type = String, required = true, nullable = false, min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    pub client_name: Option<String>,
    #[schema(value_type = ClientTypeName, required = true, nullable = false)]
    pub client_type: Option<String>,
    /// 1–10 absolute `https` URIs, or `http` on 127.0.0.1, [::1] or localhost; no fragment,
    /// no wildcard; compared exactly.
    #[schema(value_type = Vec<RedirectUriValue>, required = true, nullable = false, min_items = 1, max_items = 10)]
    pub redirect_uris: Option<Vec<String>>,
    /// 0–10 URIs under the same rules; default none.
    #[schema(value_type = Option<Vec<RedirectUriValue>>, max_items = 10)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Default `["authorization_code"]`; a public client cannot have `client_credentials`.
    #[schema(value_type = Option<Vec<GrantTypeName>>, min_items = 1, max_items = 3)]
    pub grant_types: Option<Vec<String>>,
    /// Space-separated values among `openid profile email offline_access user admin`;
    /// default `openid`.
    #[schema(
        max_length = 200,
        pattern = r"^ *(openid|profile|email|offline_access|user|admin)( +(openid|profile|email|offline_access|user|admin))* *$",
        example = "openid profile email"
    )]
    pub scope: Option<String>,
}

/// An administrator's change to a client: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"redirect_uris": ["https://billing.example.com/callback"], "is_active": true}))]
pub struct ClientPatchRequest {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub client_name: Option<String>,
    #[schema(value_type = Option<Vec<RedirectUriValue>>, min_items = 1, max_items = 10)]
    pub redirect_uris: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<RedirectUriValue>>, max_items = 10)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<GrantTypeName>>, min_items = 1, max_items = 3)]
    pub grant_types: Option<Vec<String>>,
    #[schema(
        max_length = 200,
        pattern = r"^ *(openid|profile|email|offline_access|user|admin)( +(openid|profile|email|offline_access|user|admin))* *$"
    )]
    pub scope: Option<String>,
    /// `false` disables the client and revokes every session issued to it at once.
    pub is_active: Option<bool>,
}

/// A redirect URI, as far as a pattern can say it: `https` on a host name (whose last label
/// starts with a letter, as an IPv4-looking one must be a valid address), or `http` on a
/// loopback host, then printable ASCII without `#` or `*`.
const REDIRECT_URI_PATTERN: &str = r#"^(https://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|http://(127\.0\.0\.1|\[::1\]|localhost))(:[0-9]{1,4})?([/?][!-"$-)+-~]*)?$"#;

/// A redirect URI (see [`crate::domain::client::RedirectUri`]).
pub struct RedirectUriValue;

impl utoipa::PartialSchema for RedirectUriValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An absolute https URI, or http on 127.0.0.1, [::1] or localhost; no fragment, no wildcard.",
            ))
            .max_length(Some(512))
            .pattern(Some(REDIRECT_URI_PATTERN))
            .examples([serde_json::json!("https://billing.example.com/callback")])
            .into()
    }
}

impl ToSchema for RedirectUriValue {}

/// A grant type name (`GrantType::ALL`).
pub struct GrantTypeName;

impl utoipa::PartialSchema for GrantTypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = GrantType::ALL.iter().map(|g| g.as_str()).collect();
        name_schema("A grant type.", names)
    }
}

impl ToSchema for GrantTypeName {}

/// A client type name.
pub struct ClientTypeName;

impl utoipa::PartialSchema for ClientTypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = [ClientType::Confidential, ClientType::Public]
            .iter()
            .map(|t| t.as_str())
            .collect();
        name_schema("A client type.", names)
    }
}

impl ToSchema for ClientTypeName {}
