//! [`AccessTokenCodec`] with `jsonwebtoken`: RFC 9068 access tokens (`typ: at+jwt`).
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
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

use super::keys::{self, Key, KeyError};
use uuid::Uuid;

use crate::domain::ports::{AccessTokenCodec, TokenError};
use crate::domain::session::SessionId;
use crate::domain::token::{AccessClaims, ClientAccessClaims, VerifiedAccess};
use crate::domain::user::{Roles, UserId};

/// The media type of RFC 9068 access tokens, in the `typ` header.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims as they travel.
#[derive(Debug, Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    sid: String,
    username: String,
    roles: Vec<String>,
    scope: String,
}

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

/// Access tokens already verified, with their claims. A client presents the same access token
/// on every request until it expires; its signature, header and claims cannot change, and the
/// keys are fixed for the life of the process, so checking them once is enough (the header
/// checks, `crit` included, are part of that once). The time checks run on every use. Only tokens that passed every check are remembered, compared by
/// their full text, and the set is bounded.
#[derive(Default)]
struct VerifiedTokens {
    tokens: std::sync::Mutex<HashMap<Box<str>, AccessClaims>>,
}

/// How many verified tokens are remembered; beyond it an arbitrary one makes room.
const VERIFIED_CAPACITY: usize = 4096;

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<AccessClaims> {
        self.tokens.lock().ok()?.get(token).cloned()
    }

    fn insert(&self, token: &str, claims: &AccessClaims, now: DateTime<Utc>) {
        let Ok(mut tokens) = self.tokens.lock() else {
            return;
        };
        if tokens.len() >= VERIFIED_CAPACITY {
            tokens.retain(|_, claims| claims.expires_at > now);
            if tokens.len() >= VERIFIED_CAPACITY {
                if let Some(victim) = tokens.keys().next().cloned() {
                    tokens.remove(&victim);
                }
            }
        }
        tokens.insert(token.into(), claims.clone());
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
            verified: VerifiedTokens::default(),
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
            sid: claims.session_id.to_string(),
            username: claims.username.clone(),
            roles: claims.roles.names(),
            scope: claims.scope.to_space_separated(),
        };
        encode(&self.header, &wire, &self.signing_key)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            return self.check_time(claims, now);
        }
        let claims = self.check_signature_and_claims(token)?;
        let claims = self.check_time(claims, now)?;
        self.verified.insert(token, &claims, now);
        Ok(claims)
    }

    fn sign_client(&self, _claims: &ClientAccessClaims) -> Result<String, TokenError> {
        Err(TokenError::Signing("PENDING-CRYPTO sign_client".into()))
    }

    fn verify_any(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedAccess, TokenError> {
        self.verify(token, now).map(VerifiedAccess::User)
    }
}

impl JwtCodec {
    /// Everything but the time: header, key, signature, issuer, audience, claim shapes.
    fn check_signature_and_claims(&self, token: &str) -> Result<AccessClaims, TokenError> {
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
        to_claims(wire).ok_or(TokenError::Invalid("malformed claims"))
    }

    /// `exp`, `nbf` and `iat` against `now`, with the leeway: a token issued in the future
    /// was not issued by this service's clock (or was minted to outlive its stated lifetime).
    fn check_time(
        &self,
        claims: AccessClaims,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenError> {
        let now = now.timestamp();
        if claims.expires_at.timestamp() + self.leeway_seconds <= now {
            return Err(TokenError::Expired);
        }
        if claims.not_before.timestamp() - self.leeway_seconds > now {
            return Err(TokenError::Invalid("token not yet valid"));
        }
        if claims.issued_at.timestamp() - self.leeway_seconds > now {
            return Err(TokenError::Invalid("token issued in the future"));
        }
        Ok(claims)
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
fn protected_header(token: &str) -> Result<Header, TokenError> {
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

fn rejection(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
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

fn to_claims(wire: WireClaims) -> Option<AccessClaims> {
    let time = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0);
    Some(AccessClaims {
        user_id: UserId::from_uuid(Uuid::parse_str(&wire.sub).ok()?),
        session_id: SessionId::from_uuid(Uuid::parse_str(&wire.sid).ok()?),
        username: wire.username,
        roles: Roles::parse_space_separated(&wire.roles.join(" ")).ok()?,
        scope: Roles::parse_space_separated(&wire.scope).ok()?,
        oidc: crate::domain::oidc::OidcScopes::NONE,
        client_id: None,
        issued_at: time(wire.iat)?,
        not_before: time(wire.nbf)?,
        expires_at: time(wire.exp)?,
        token_id: Uuid::parse_str(&wire.jti).ok()?,
    })
}

#[cfg(test)]
mod tests;
