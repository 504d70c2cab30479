//! [`AccessTokenCodec`] with `jsonwebtoken`: RFC 9068 access tokens (`typ: at+jwt`).
//!
//! Verification pins the algorithm, the type, the issuer and the audience, requires `exp`,
//! `nbf`, `iss`, `aud` and `sub`, and checks `exp`/`nbf` against the caller's clock with a small
//! leeway (jsonwebtoken's own time checks are off, because they read the system clock).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::ports::{AccessTokenCodec, TokenError};
use crate::domain::session::SessionId;
use crate::domain::token::AccessClaims;
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

/// HS256 signing and verification.
pub struct JwtCodec {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    leeway_seconds: i64,
}

impl JwtCodec {
    /// An HS256 codec. The `kid` is derived from the secret's hash, so it names the key without
    /// revealing it and changes when the secret does.
    pub fn hs256(secret: &SecretString, issuer: &str, audience: &str, leeway_seconds: u64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let digest = Sha256::digest([b"kid:".as_slice(), bytes].concat());
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(URL_SAFE_NO_PAD.encode(&digest[..12]));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            header,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_seconds: i64::try_from(leeway_seconds).unwrap_or(i64::MAX),
        }
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
        encode(&self.header, &wire, &self.encoding).map_err(|e| TokenError::Signing(e.to_string()))
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid("malformed token"))?;
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenError::Invalid("not an access token (typ)"));
        }
        if header.alg != self.header.alg {
            return Err(TokenError::Invalid("unexpected algorithm"));
        }
        let wire = decode::<WireClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(rejection(e.kind())))?
            .claims;
        let now = now.timestamp();
        if wire.exp + self.leeway_seconds <= now {
            return Err(TokenError::Expired);
        }
        if wire.nbf - self.leeway_seconds > now {
            return Err(TokenError::Invalid("token not yet valid"));
        }
        to_claims(wire).ok_or(TokenError::Invalid("malformed claims"))
    }
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
        issued_at: time(wire.iat)?,
        not_before: time(wire.nbf)?,
        expires_at: time(wire.exp)?,
        token_id: Uuid::parse_str(&wire.jti).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::domain::user::Role;

    fn codec(secret: &str) -> JwtCodec {
        JwtCodec::hs256(&SecretString::from(secret), "https://issuer", "api", 30)
    }

    fn claims(now: DateTime<Utc>) -> AccessClaims {
        AccessClaims {
            user_id: UserId::new(),
            session_id: SessionId::new(),
            username: "alice".into(),
            roles: Roles::new([Role::User, Role::Admin]),
            scope: Roles::new([Role::User]),
            issued_at: now,
            not_before: now,
            expires_at: now + Duration::minutes(15),
            token_id: Uuid::now_v7(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap()
    }

    #[test]
    fn signed_claims_verify_back_to_the_same_claims() {
        let c = codec("0123456789abcdef0123456789abcdef");
        let original = claims(now());
        let token = c.sign(&original).unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert!(header.kid.is_some());
        assert_eq!(c.verify(&token, now()).unwrap(), original);
    }

    #[test]
    fn expiry_and_not_before_respect_the_leeway() {
        let c = codec("0123456789abcdef0123456789abcdef");
        let token = c.sign(&claims(now())).unwrap();
        let after_expiry = now() + Duration::minutes(15);
        assert!(c
            .verify(&token, after_expiry + Duration::seconds(29))
            .is_ok());
        assert_eq!(
            c.verify(&token, after_expiry + Duration::seconds(30)),
            Err(TokenError::Expired)
        );
        assert!(c.verify(&token, now() - Duration::seconds(29)).is_ok());
        assert!(c.verify(&token, now() - Duration::seconds(31)).is_err());
    }

    #[test]
    fn tokens_of_another_key_issuer_or_audience_are_rejected() {
        let token = codec("0123456789abcdef0123456789abcdef")
            .sign(&claims(now()))
            .unwrap();
        let other_key = codec("another-secret-another-secret-xx");
        assert_eq!(
            other_key.verify(&token, now()),
            Err(TokenError::Invalid("bad signature"))
        );
        let other_issuer = JwtCodec::hs256(
            &SecretString::from("0123456789abcdef0123456789abcdef"),
            "https://elsewhere",
            "api",
            30,
        );
        assert_eq!(
            other_issuer.verify(&token, now()),
            Err(TokenError::Invalid("wrong issuer"))
        );
        assert!(codec("x").verify("not.a.jwt", now()).is_err());
    }
}
