//! Client authentication at the OAuth2 endpoints (RFC 6749 §2.3.1): `client_secret_basic` (the
//! `Authorization: Basic` header, each part form-urlencoded first), `client_secret_post`
//! (`client_id` and `client_secret` in the form), or `none` (`client_id` alone, public clients).

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::OAuthForm;
use crate::application::{AppError, ClientCredentials};
use crate::infrastructure::http::error::OAuthError;

/// The credentials a request carries, if any.
///
/// # Errors
/// `invalid_client` (401) for a malformed Basic header; `invalid_request` for credentials sent
/// both ways at once (RFC 6749 §2.3: one method per request).
pub fn client_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(|_| AppError::InvalidClient)?;
            match value.split_once(' ') {
                Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
                    Some(decode_basic(encoded.trim()).ok_or(AppError::InvalidClient)?)
                }
                // A bearer token (or anything else) is not client authentication.
                _ => None,
            }
        }
        None => None,
    };
    let posted = form.get("client_id").map(|client_id| ClientCredentials {
        client_id: client_id.to_owned(),
        secret: form.get("client_secret").map(str::to_owned),
    });
    let both = basic.is_some() && (posted.is_some() || form.get("client_secret").is_some());
    if both {
        return Err(AppError::InvalidRequest(
            "send client credentials either in the Authorization header or in the form, not both"
                .into(),
        )
        .into());
    }
    Ok(basic.or(posted))
}

/// `base64(urlencode(client_id) ":" urlencode(secret))`.
fn decode_basic(encoded: &str) -> Option<ClientCredentials> {
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    if id.is_empty() {
        return None;
    }
    Some(ClientCredentials {
        client_id: id,
        secret: (!secret.is_empty()).then_some(secret),
    })
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value (`+` is a space).
fn form_decode(raw: &str) -> Option<String> {
    let mut pairs = form_urlencoded::parse(raw.as_bytes());
    match pairs.next() {
        // The whole text parses as one key with no value.
        Some((key, value))
            if value.is_empty() && pairs.next().is_none() && !raw.contains(['&', '=']) =>
        {
            Some(key.into_owned())
        }
        None => Some(String::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = STANDARD.encode("my%20client:s%2Bcr%3At+x");
        let creds = decode_basic(&header).unwrap();
        assert_eq!(creds.client_id, "my client");
        assert_eq!(creds.secret.as_deref(), Some("s+cr:t x"));
        assert!(decode_basic("not base64!").is_none());
        assert!(decode_basic(&STANDARD.encode("no-colon")).is_none());
        assert!(decode_basic(&STANDARD.encode(":secret")).is_none());
        assert!(decode_basic(&STANDARD.encode("id:a&b")).is_none());
        assert_eq!(decode_basic(&STANDARD.encode("id:")).unwrap().secret, None);
    }
}
