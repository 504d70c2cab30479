//! [`IdTokenCodec`] with `jsonwebtoken`: OpenID Connect ID tokens, signed RS256 (the algorithm
//! every relying party must support, OpenID Connect Core §15.1) with one RSA key, whatever
//! signs the access tokens.
//!
//! An ID token has `typ: JWT` and an access token `typ: at+jwt`, and each side checks it: the
//! access-token codec accepts only `at+jwt`, and [`RsaIdTokenCodec::read_id_token_hint`] only
//! `JWT`, so neither passes for the other even when both are signed with the same key.
//!
//! The key ([`load_key`]): `OIDC_SIGNING_KEY_FILE`; else the access-token key when those are
//! RS256 (`JWT_PRIVATE_KEY_FILE`); else, outside production, the development RSA key kept in
//! `JWT_DEV_KEY_DIR` (generated on first start). Production without either refuses to start.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::jwt::{protected_header, rejection};
use super::keys::{self, Key, KeyError};
use crate::domain::client::ClientId;
use crate::domain::oidc::IdClaims;
use crate::domain::ports::{IdTokenCodec, IdTokenHint, TokenError};
use crate::domain::session::SessionId;
use crate::domain::user::UserId;

/// The `typ` header of ID tokens.
pub const ID_TOKEN_TYPE: &str = "JWT";

/// The JOSE name of the ID-token algorithm (`id_token_signing_alg_values_supported`).
pub const ID_TOKEN_ALGORITHM: &str = "RS256";

/// The claims of an ID token as they travel; the absent optional ones are left out.
#[derive(Debug, Serialize, Deserialize)]
struct IdWire {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at_hash: Option<String>,
    sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

/// Signs ID tokens with one RSA key and reads them back as `id_token_hint`.
pub struct RsaIdTokenCodec {
    kid: String,
    /// The protected header, base64url-encoded once.
    header: String,
    /// RSA signatures with ring rather than jsonwebtoken's `rsa` crate: one RS256 signature took
    /// ~4.5 ms of CPU with `rsa` on the benchmark machine, which held the whole code flow
    /// (authorize → token with an ID token) to 310 flows/s against 1,034/s without an ID token
    /// (`scripts/bench.sh`, workload `code_flow`, 2026-12-01); ring's is several times faster.
    signer: ring::signature::RsaKeyPair,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    jwk: Value,
}

impl RsaIdTokenCodec {
    /// A codec signing with `key`, which must be an RS256 key with its private part, as
    /// [`load_key`] returns; `issuer` is the `iss` of every token (`JWT_ISSUER`).
    ///
    /// # Errors
    /// [`KeyError`] when `key` is not such a key.
    pub fn new(key: Key, issuer: &str) -> Result<Self, KeyError> {
        if key.algorithm != Algorithm::RS256 {
            return Err(KeyError(format!(
                "ID tokens are signed with RS256, not {}",
                keys::algorithm_name(key.algorithm)
            )));
        }
        let der = key
            .rsa_pkcs8_der
            .ok_or_else(|| KeyError("the ID-token key has no private part".into()))?;
        let signer = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| KeyError(format!("the ID-token key cannot sign: {e}")))?;
        let jwk = key
            .jwk
            .ok_or_else(|| KeyError("the ID-token key has no public JWK".into()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(ID_TOKEN_TYPE.to_owned());
        header.kid = Some(key.kid.clone());
        let header = serde_json::to_vec(&header)
            .map(|json| URL_SAFE_NO_PAD.encode(json))
            .map_err(|e| KeyError(format!("ID-token header: {e}")))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
        // A hint may have expired (RP-Initiated Logout §2), and its audience is the client it
        // names, which the caller learns from it rather than checks.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Ok(Self {
            kid: key.kid,
            header,
            signer,
            decoding: key.decoding,
            validation,
            issuer: issuer.to_owned(),
            jwk,
        })
    }

    /// The `kid` of the key: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK of the key (`kty`, `n`, `e`, `kid`, `alg: RS256`, `use: sig`).
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The key set to publish at `jwks_uri`: the keys of `access_jwks` (the access-token codec's
    /// set, empty under HS256), then this key unless it is already among them (the same key,
    /// reused for both, has the same thumbprint and so the same `kid`).
    pub fn jwks_with(&self, access_jwks: &Value) -> Value {
        let mut keys: Vec<Value> = access_jwks["keys"].as_array().cloned().unwrap_or_default();
        if !keys.iter().any(|key| key["kid"] == self.kid.as_str()) {
            keys.push(self.jwk.clone());
        }
        json!({ "keys": keys })
    }
}

impl IdTokenCodec for RsaIdTokenCodec {
    fn sign_id_token(&self, claims: &IdClaims) -> Result<String, TokenError> {
        let profile = &claims.profile;
        let wire = IdWire {
            iss: self.issuer.clone(),
            sub: claims.subject.to_string(),
            aud: claims.audience.to_string(),
            exp: claims.expires_at.timestamp(),
            iat: claims.issued_at.timestamp(),
            auth_time: claims.auth_time.timestamp(),
            nonce: claims.nonce.clone(),
            at_hash: claims.at_hash.clone(),
            sid: claims.session_id.to_string(),
            preferred_username: profile.preferred_username.clone(),
            name: profile.name.clone(),
            email: profile.email.clone(),
            email_verified: profile.email_verified,
        };
        let payload = serde_json::to_vec(&wire).map_err(|e| TokenError::Signing(e.to_string()))?;
        let signing_input = format!("{}.{}", self.header, URL_SAFE_NO_PAD.encode(payload));
        let mut signature = vec![0; self.signer.public().modulus_len()];
        self.signer
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    fn read_id_token_hint(&self, token: &str) -> Result<IdTokenHint, TokenError> {
        // Three segments, no `crit`, as for access tokens.
        let header = protected_header(token)?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|typ| typ.eq_ignore_ascii_case(ID_TOKEN_TYPE))
        {
            return Err(TokenError::Invalid("not an ID token (typ)"));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::Invalid("unknown signing key"));
        }
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid("unexpected algorithm"));
        }
        let wire = decode::<IdWire>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(rejection(e.kind())))?
            .claims;
        let uuid =
            |raw: &str| Uuid::parse_str(raw).map_err(|_| TokenError::Invalid("malformed claims"));
        Ok(IdTokenHint {
            subject: UserId::from_uuid(uuid(&wire.sub)?),
            audience: ClientId::from_uuid(uuid(&wire.aud)?),
            session_id: SessionId::from_uuid(uuid(&wire.sid)?),
        })
    }
}

/// What [`load_key`] tells production to do when it has no key.
pub const PRODUCTION_KEY_HINT: &str = "OIDC_SIGNING_KEY_FILE is not set; production needs an RSA private key (PKCS#8 PEM, at least 2048 bits) to sign ID tokens, e.g. from `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out oidc.pem` (or JWT_ALGORITHM=RS256 with JWT_PRIVATE_KEY_FILE, whose key is then used)";

/// Where the ID-token key comes from, in this order.
pub struct IdKeySources<'a> {
    /// `OIDC_SIGNING_KEY_FILE`.
    pub key_file: Option<&'a Path>,
    /// `JWT_PRIVATE_KEY_FILE`, given only when `JWT_ALGORITHM` is RS256 (its key is reused).
    pub access_key_file: Option<&'a Path>,
    /// Outside production: `JWT_DEV_KEY_DIR`, whose `rs256.pem` (the development RS256 key of
    /// the access tokens too) is generated when missing.
    pub dev_key_dir: Option<&'a Path>,
}

/// The ID-token signing key: an RSA key of at least 2048 bits with its private part.
///
/// # Errors
/// [`KeyError`] naming the variable and file at fault (never the key), or, with no source at
/// all (production), saying what to set.
pub fn load_key(sources: &IdKeySources<'_>) -> Result<Key, KeyError> {
    let (variable, path) = match (
        sources.key_file,
        sources.access_key_file,
        sources.dev_key_dir,
    ) {
        (Some(path), _, _) => ("OIDC_SIGNING_KEY_FILE", path.to_owned()),
        (None, Some(path), _) => ("JWT_PRIVATE_KEY_FILE", path.to_owned()),
        (None, None, Some(dir)) => (
            "JWT_DEV_KEY_DIR",
            keys::development_key(Algorithm::RS256, dir)?,
        ),
        (None, None, None) => return Err(KeyError(PRODUCTION_KEY_HINT.into())),
    };
    let pem = keys::read(&path).map_err(|e| KeyError(format!("{variable}: {e}")))?;
    keys::from_private_pem(Algorithm::RS256, &pem)
        .map_err(|e| KeyError(format!("{variable} {}: {e}", path.display())))
}

/// One RSA-2048 PKCS#8 PEM key for the tests of the process (generating one takes seconds in a
/// debug build).
#[cfg(test)]
pub(crate) fn test_key_pem() -> &'static str {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PEM.get_or_init(|| keys::generate_private_pem(Algorithm::RS256).expect("an RSA key"))
}

#[cfg(test)]
mod tests;
