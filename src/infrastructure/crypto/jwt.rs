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
        issued_at: time(wire.iat)?,
        not_before: time(wire.nbf)?,
        expires_at: time(wire.exp)?,
        token_id: Uuid::parse_str(&wire.jti).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use jsonwebtoken::decode_header;

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
    fn a_remembered_token_answers_only_for_its_exact_text_and_still_expires() {
        let c = codec("0123456789abcdef0123456789abcdef");
        let original = claims(now());
        let token = c.sign(&original).unwrap();
        assert_eq!(c.verify(&token, now()).unwrap(), original);
        // The same token again comes from the remembered set, with the same answer.
        assert_eq!(c.verify(&token, now()).unwrap(), original);
        let (rest, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{rest}.{flipped}{}", &signature[1..]);
        assert_eq!(
            c.verify(&tampered, now()),
            Err(TokenError::Invalid("bad signature"))
        );
        assert_eq!(
            c.verify(&token, now() + Duration::hours(1)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tokens_of_another_key_issuer_or_audience_are_rejected() {
        let token = codec("0123456789abcdef0123456789abcdef")
            .sign(&claims(now()))
            .unwrap();
        let other_key = codec("another-secret-another-secret-xx");
        assert_eq!(
            other_key.verify(&token, now()),
            Err(TokenError::Invalid("unknown signing key"))
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

    #[test]
    fn after_a_rotation_tokens_of_the_previous_key_still_verify_until_they_expire() {
        use jsonwebtoken::Algorithm;
        let old_pem = keys::generate_private_pem(Algorithm::EdDSA).unwrap();
        let new_pem = keys::generate_private_pem(Algorithm::ES256).unwrap();
        let before = JwtCodec::new(
            keys::from_private_pem(Algorithm::EdDSA, &old_pem).unwrap(),
            vec![],
            "https://issuer",
            "api",
            30,
        )
        .unwrap();
        let old_token = before.sign(&claims(now())).unwrap();
        let after = JwtCodec::new(
            keys::from_private_pem(Algorithm::ES256, &new_pem).unwrap(),
            vec![keys::from_verification_pem(&old_pem).unwrap()],
            "https://issuer",
            "api",
            30,
        )
        .unwrap();
        assert!(after.verify(&old_token, now()).is_ok());
        assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(
            decode_header(after.sign(&claims(now())).unwrap())
                .unwrap()
                .alg,
            Algorithm::ES256
        );
        // Without the old key in the verification set, the old token is refused.
        let forgetful = JwtCodec::new(
            keys::from_private_pem(Algorithm::ES256, &new_pem).unwrap(),
            vec![],
            "https://issuer",
            "api",
            30,
        )
        .unwrap();
        assert_eq!(
            forgetful.verify(&old_token, now()),
            Err(TokenError::Invalid("unknown signing key"))
        );
    }

    /// `token` re-signed (HS256, `secret`) with `edit` applied to its header and claims.
    fn resigned(token: &str, secret: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let part = |i: usize| -> Value {
            serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(token.split('.').nth(i).unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        let (mut header, mut claims) = (part(0), part(1));
        edit(&mut header, &mut claims);
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        let key = EncodingKey::from_secret(secret.as_bytes());
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{signing_input}.{signature}")
    }

    #[test]
    fn a_header_with_crit_is_refused_whatever_it_names() {
        let secret = "0123456789abcdef0123456789abcdef";
        let c = codec(secret);
        let token = c.sign(&claims(now())).unwrap();
        let control = resigned(&token, secret, |_, _| {});
        assert!(c.verify(&control, now()).is_ok());
        for crit in [
            json!(["exp"]),
            json!(["urn:x"]),
            json!([]),
            json!(null),
            json!("exp"),
            json!({"exp": true}),
        ] {
            let with_crit = resigned(&token, secret, |header, _| {
                header["crit"] = crit.clone();
                header["urn:x"] = json!("1");
            });
            assert!(
                matches!(c.verify(&with_crit, now()), Err(TokenError::Invalid(_))),
                "crit {crit}"
            );
        }
        // A duplicated member cannot hide it either.
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"typ":"at+jwt","alg":"HS256","kid":"{}","crit":["urn:x"],"crit":null}}"#,
            c.signing_kid()
        ));
        let payload = token.split('.').nth(1).unwrap();
        let signing_input = format!("{header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(secret.as_bytes()),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        assert!(c
            .verify(&format!("{signing_input}.{signature}"), now())
            .is_err());
        // Nor extra segments.
        assert!(c.verify(&format!("{control}.x"), now()).is_err());
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused_beyond_the_leeway_even_when_remembered() {
        let secret = "0123456789abcdef0123456789abcdef";
        let c = codec(secret);
        let token = c.sign(&claims(now())).unwrap();
        let at = |iat: DateTime<Utc>| {
            resigned(&token, secret, |_, claims| {
                claims["iat"] = json!(iat.timestamp());
            })
        };
        assert!(c.verify(&at(now() + Duration::seconds(30)), now()).is_ok());
        assert_eq!(
            c.verify(&at(now() + Duration::seconds(31)), now()),
            Err(TokenError::Invalid("token issued in the future"))
        );
        let future = at(now() + Duration::minutes(10));
        assert!(c.verify(&future, now()).is_err());
        // Checked at every use: once its iat is past, the same token is fine, and the
        // remembered copy is checked again against an earlier clock.
        assert!(c.verify(&future, now() + Duration::minutes(10)).is_ok());
        assert!(c.verify(&future, now()).is_err());
    }
}
