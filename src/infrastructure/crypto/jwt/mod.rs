//! [`AccessTokenCodec`] with `jsonwebtoken`: RFC 9068 access tokens (`typ: at+jwt`).
//!
//! Two kinds share the format: a user's token (`sub` the user, with `sid`, `username`, `roles`,
//! and `client_id` when issued to a registered client) and a `client_credentials` token (`sub`
//! and `client_id` the client, no `sid`). [`AccessTokenCodec::verify`] accepts only the first;
//! [`AccessTokenCodec::verify_any`] either. The `scope` claim is the whole granted scope, OpenID
//! values first, then role names.
//!
//! Verification pins the algorithm, the type, the issuer and the audience, requires `exp`,
//! `nbf`, `iss`, `aud` and `sub`, refuses a protected header with a `crit` parameter (RFC 7515
//! §4.1.11: this service understands no extension), and checks `exp`/`nbf`/`iat` against the
//! caller's clock with a small leeway (jsonwebtoken's own time checks are off, because they
//! read the system clock; it has no `iat` check and does not act on `crit`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, encode, EncodingKey, Header, Validation};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use super::keys::{self, Key, KeyError};
use uuid::Uuid;

use crate::domain::client::ClientId;
use crate::domain::oidc::Scope;
use crate::domain::ports::{AccessTokenCodec, TokenError};
use crate::domain::session::SessionId;
use crate::domain::token::{AccessClaims, ClientAccessClaims, VerifiedAccess};
use crate::domain::user::{Roles, UserId};

/// The media type of RFC 9068 access tokens, in the `typ` header.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims as they travel, of both kinds. A user's token has `sid`, `username` and `roles`;
/// a client's has none of them. The absent ones are left out, so a password-grant token is
/// exactly what it was before clients existed (no `client_id`, and the fields in this order).
#[derive(Debug, Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
}

/// Why [`AccessTokenCodec::verify`] refuses a token that is otherwise valid: it has no `sid`,
/// so it acts for a client (`client_credentials`), not for a user in a session.
pub const NOT_A_USER_TOKEN: &str = "not a user's token (no sid)";

/// A verification key with the validation rules for its algorithm.
struct Verifier {
    key: Key,
    validation: Validation,
}

/// Signs with one active key; verifies with it and any number of earlier keys, each pinned to
/// its own algorithm and found by `kid`.
pub struct JwtCodec {
    signing_kid: String,
    signing_key: EncodingKey,
    header: Header,
    verifiers: HashMap<String, Verifier>,
    jwks: Value,
    issuer: String,
    audience: String,
    leeway_seconds: i64,
    verified: VerifiedTokens,
}

/// Access tokens already verified, of either kind, with their claims. A client presents the
/// same access token on every request until it expires; its signature, header and claims cannot
/// change, and the keys are fixed for the life of the process, so checking them once is enough
/// (the header checks, `crit` included, are part of that once). The time checks, and whether
/// the caller accepts the token's kind, run on every use. Only tokens that passed every check
/// are remembered.
///
/// A `quick_cache` bounded by memory (`TOKEN_CACHE_MIB`), keyed by the SHA-256 digest of the
/// token's text: 32 bytes instead of the 400-700 of the text, and two different texts cannot
/// share an entry (that would take a SHA-256 collision). With SHA-NI the digest of a token costs
/// about a third of a microsecond, against tens for a signature check.
struct VerifiedTokens {
    /// `None` with a zero budget: every token is checked every time.
    tokens: Option<Cache<TokenDigest, VerifiedAccess, TokenWeight>>,
}

/// The SHA-256 digest of a token's text.
type TokenDigest = [u8; 32];

/// The default memory budget of the verified-token cache (`TOKEN_CACHE_MIB`).
pub const DEFAULT_TOKEN_CACHE_BYTES: u64 = 32 << 20;

/// What one remembered token costs beyond its username: the cache's slot (digest, claims,
/// bookkeeping) and its share of the cache's index (232 bytes measured), and the claims' three
/// small heap blocks (username, roles, scope: 32 bytes each with glibc's header). Keyed by the
/// token's text instead, an entry would cost the text again (400-700 bytes). Measured with
/// `token_cache_cost_per_entry` (`cargo test --lib token_cache_cost -- --nocapture`).
const TOKEN_ENTRY_BYTES: u64 = 336;

#[derive(Clone)]
struct TokenWeight;

impl Weighter<TokenDigest, VerifiedAccess> for TokenWeight {
    fn weight(&self, _: &TokenDigest, access: &VerifiedAccess) -> u64 {
        token_bytes(access)
    }
}

/// What one remembered token costs: the fixed part and the username's text.
fn token_bytes(access: &VerifiedAccess) -> u64 {
    let heap = match access {
        VerifiedAccess::User(claims) => claims.username.len(),
        VerifiedAccess::Client(_) => 0,
    };
    TOKEN_ENTRY_BYTES + u64::try_from(heap).unwrap_or(u64::MAX)
}

impl VerifiedTokens {
    fn new(budget_bytes: u64) -> Self {
        let tokens = (budget_bytes > 0).then(|| {
            let estimated = usize::try_from(budget_bytes / (TOKEN_ENTRY_BYTES + 16))
                .unwrap_or(usize::MAX)
                .max(16);
            Cache::with_weighter(estimated, budget_bytes, TokenWeight)
        });
        Self { tokens }
    }

    fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    fn get(&self, digest: &TokenDigest) -> Option<VerifiedAccess> {
        self.tokens.as_ref()?.get(digest)
    }

    fn insert(&self, digest: TokenDigest, access: &VerifiedAccess) {
        if let Some(tokens) = &self.tokens {
            tokens.insert(digest, access.clone());
        }
    }

    fn remove(&self, digest: &TokenDigest) {
        if let Some(tokens) = &self.tokens {
            tokens.remove(digest);
        }
    }

    /// Tokens remembered, and their weight in bytes.
    #[cfg(test)]
    fn usage(&self) -> (usize, u64) {
        self.tokens
            .as_ref()
            .map_or((0, 0), |tokens| (tokens.len(), tokens.weight()))
    }
}

/// The times of a verified token, whichever its kind.
#[derive(Clone, Copy)]
struct Times {
    issued_at: DateTime<Utc>,
    not_before: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Times {
    fn of(access: &VerifiedAccess) -> Self {
        match access {
            VerifiedAccess::User(c) => Self {
                issued_at: c.issued_at,
                not_before: c.not_before,
                expires_at: c.expires_at,
            },
            VerifiedAccess::Client(c) => Self {
                issued_at: c.issued_at,
                not_before: c.not_before,
                expires_at: c.expires_at,
            },
        }
    }
}

impl JwtCodec {
    /// A codec signing with `signing` (which must carry its encoding key) and also accepting
    /// tokens of the `previous` keys.
    ///
    /// # Errors
    /// [`KeyError`] when `signing` cannot sign.
    pub fn new(
        signing: Key,
        previous: Vec<Key>,
        issuer: &str,
        audience: &str,
        leeway_seconds: u64,
    ) -> Result<Self, KeyError> {
        let mut header = Header::new(signing.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(signing.kid.clone());
        let signing_key = signing
            .encoding
            .clone()
            .ok_or_else(|| KeyError("the signing key has no private part".into()))?;
        let signing_kid = signing.kid.clone();
        let mut keys = vec![signing];
        keys.extend(previous);
        let jwks = json!({"keys": keys.iter().filter_map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        let verifiers = keys
            .into_iter()
            .map(|key| {
                let mut validation = Validation::new(key.algorithm);
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validation.leeway = 0;
                (key.kid.clone(), Verifier { key, validation })
            })
            .collect();
        Ok(Self {
            signing_kid,
            signing_key,
            header,
            verifiers,
            jwks,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_seconds: i64::try_from(leeway_seconds).unwrap_or(i64::MAX),
            verified: VerifiedTokens::new(DEFAULT_TOKEN_CACHE_BYTES),
        })
    }

    /// An HS256 codec (the default algorithm).
    pub fn hs256(secret: &SecretString, issuer: &str, audience: &str, leeway_seconds: u64) -> Self {
        Self::new(
            keys::hs256(secret.expose_secret().as_bytes()),
            Vec::new(),
            issuer,
            audience,
            leeway_seconds,
        )
        .expect("an HS256 key can always sign")
    }

    /// The same codec remembering verified tokens within `budget_bytes` (`TOKEN_CACHE_MIB`;
    /// 0: checks every token every time) instead of [`DEFAULT_TOKEN_CACHE_BYTES`].
    #[must_use]
    pub fn with_token_cache(mut self, budget_bytes: u64) -> Self {
        self.verified = VerifiedTokens::new(budget_bytes);
        self
    }

    /// The RFC 7517 key set of the public keys (empty under HS256).
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The signing algorithm's JOSE name.
    pub fn algorithm(&self) -> &'static str {
        keys::algorithm_name(self.header.alg)
    }

    /// The `kid` of the active signing key.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }
}

impl AccessTokenCodec for JwtCodec {
    fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let wire = WireClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: claims.user_id.to_string(),
            exp: claims.expires_at.timestamp(),
            iat: claims.issued_at.timestamp(),
            nbf: claims.not_before.timestamp(),
            jti: claims.token_id.to_string(),
            sid: Some(claims.session_id.to_string()),
            username: Some(claims.username.clone()),
            roles: Some(claims.roles.names()),
            scope: claims.granted_scope().to_space_separated(),
            client_id: claims.client_id.map(|id| id.to_string()),
        };
        self.encode(&wire)
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        match self.checked(token, now, true)? {
            VerifiedAccess::User(claims) => Ok(claims),
            VerifiedAccess::Client(_) => Err(TokenError::Invalid(NOT_A_USER_TOKEN)),
        }
    }

    fn sign_client(&self, claims: &ClientAccessClaims) -> Result<String, TokenError> {
        let client_id = claims.client_id.to_string();
        let wire = WireClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: client_id.clone(),
            exp: claims.expires_at.timestamp(),
            iat: claims.issued_at.timestamp(),
            nbf: claims.not_before.timestamp(),
            jti: claims.token_id.to_string(),
            sid: None,
            username: None,
            roles: None,
            scope: claims.scope.to_space_separated(),
            client_id: Some(client_id),
        };
        self.encode(&wire)
    }

    fn verify_any(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedAccess, TokenError> {
        self.checked(token, now, false)
    }
}

impl JwtCodec {
    fn encode(&self, wire: &WireClaims) -> Result<String, TokenError> {
        encode(&self.header, wire, &self.signing_key)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// The token's claims once every check passed: from the remembered tokens, or checked now
    /// and then remembered. With `user_only`, a client's token (no `sid`) is refused before the
    /// time checks: it acts for a client, never on a user's behalf, even if its claims would
    /// otherwise check out.
    fn checked(
        &self,
        token: &str,
        now: DateTime<Utc>,
        user_only: bool,
    ) -> Result<VerifiedAccess, TokenError> {
        let digest = VerifiedTokens::digest(token);
        let (access, remembered) = match self.verified.get(&digest) {
            Some(access) => (access, true),
            None => (self.check_signature_and_claims(token)?, false),
        };
        if user_only && matches!(access, VerifiedAccess::Client(_)) {
            return Err(TokenError::Invalid(NOT_A_USER_TOKEN));
        }
        match self.check_time(Times::of(&access), now) {
            Ok(()) if !remembered => self.verified.insert(digest, &access),
            Ok(()) => {}
            // An expired token stays expired: make room.
            Err(TokenError::Expired) if remembered => {
                self.verified.remove(&digest);
                return Err(TokenError::Expired);
            }
            Err(e) => return Err(e),
        }
        Ok(access)
    }

    /// Everything but the time: header, key, signature, issuer, audience, claim shapes.
    fn check_signature_and_claims(&self, token: &str) -> Result<VerifiedAccess, TokenError> {
        let header = protected_header(token)?;
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenError::Invalid("not an access token (typ)"));
        }
        // The key is found by `kid` and pins the algorithm: a token cannot choose how it is
        // checked (no `alg: none`, no HS256 signed with a public key).
        let verifier = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifiers.get(kid))
            .ok_or(TokenError::Invalid("unknown signing key"))?;
        if header.alg != verifier.key.algorithm {
            return Err(TokenError::Invalid("unexpected algorithm"));
        }
        let wire = decode::<WireClaims>(token, &verifier.key.decoding, &verifier.validation)
            .map_err(|e| TokenError::Invalid(rejection(e.kind())))?
            .claims;
        to_access(wire).ok_or(TokenError::Invalid("malformed claims"))
    }

    /// `exp`, `nbf` and `iat` against `now`, with the leeway: a token issued in the future
    /// was not issued by this service's clock (or was minted to outlive its stated lifetime).
    fn check_time(&self, times: Times, now: DateTime<Utc>) -> Result<(), TokenError> {
        let now = now.timestamp();
        if times.expires_at.timestamp() + self.leeway_seconds <= now {
            return Err(TokenError::Expired);
        }
        if times.not_before.timestamp() - self.leeway_seconds > now {
            return Err(TokenError::Invalid("token not yet valid"));
        }
        if times.issued_at.timestamp() - self.leeway_seconds > now {
            return Err(TokenError::Invalid("token issued in the future"));
        }
        Ok(())
    }
}

/// The header parameters the service looks at besides jsonwebtoken's [`Header`].
#[derive(Deserialize)]
struct Critical {
    /// Whether the header has a `crit` member, whatever its value (`null` included).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The protected header of a compact JWS, decoded once from the first of exactly three
/// segments (the segment jsonwebtoken verifies the signature over), refused when it has a
/// `crit` parameter: RFC 7515 §4.1.11 requires rejecting a JWS whose `crit` names an extension
/// the recipient does not understand, and this service understands none, so any `crit`
/// (even an empty or malformed one, or a list of registered names, which `crit` must not
/// contain) is refused. jsonwebtoken parses `crit` but never acts on it.
pub(super) fn protected_header(token: &str) -> Result<Header, TokenError> {
    let malformed = || TokenError::Invalid("malformed token");
    let mut segments = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(malformed());
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let critical: Critical = serde_json::from_slice(&json).map_err(|_| malformed())?;
    if critical.crit {
        return Err(TokenError::Invalid(
            "critical header extension not understood (crit)",
        ));
    }
    serde_json::from_slice(&json).map_err(|_| malformed())
}

pub(super) fn rejection(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidAlgorithm => "unexpected algorithm",
        ErrorKind::MissingRequiredClaim(_) => "missing required claim",
        _ => "malformed token",
    }
}

/// The claims of either kind: with `sid` a user's token (which must have `username` and
/// `roles`), without it a client's (which must have none of them, a `client_id` equal to `sub`,
/// and only role names in `scope`). `None` for anything else.
fn to_access(wire: WireClaims) -> Option<VerifiedAccess> {
    let time = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0);
    let client_id = match &wire.client_id {
        Some(id) => Some(ClientId::from_uuid(Uuid::parse_str(id).ok()?)),
        None => None,
    };
    let (issued_at, not_before, expires_at) = (time(wire.iat)?, time(wire.nbf)?, time(wire.exp)?);
    let token_id = Uuid::parse_str(&wire.jti).ok()?;
    let Some(sid) = wire.sid else {
        if wire.username.is_some() || wire.roles.is_some() {
            return None;
        }
        let client_id = client_id?;
        if Uuid::parse_str(&wire.sub).ok()? != client_id.as_uuid() {
            return None;
        }
        return Some(VerifiedAccess::Client(ClientAccessClaims {
            client_id,
            scope: Roles::parse_space_separated(&wire.scope).ok()?,
            issued_at,
            not_before,
            expires_at,
            token_id,
        }));
    };
    let scope = Scope::parse(&wire.scope).ok()?;
    Some(VerifiedAccess::User(AccessClaims {
        user_id: UserId::from_uuid(Uuid::parse_str(&wire.sub).ok()?),
        session_id: SessionId::from_uuid(Uuid::parse_str(&sid).ok()?),
        username: wire.username?,
        roles: Roles::parse_space_separated(&wire.roles?.join(" ")).ok()?,
        scope: scope.roles,
        oidc: scope.oidc,
        client_id,
        issued_at,
        not_before,
        expires_at,
        token_id,
    }))
}

#[cfg(test)]
mod tests;
