//! The provider as the `openidconnect` crate sees it: discovery from the issuer URL, the code
//! flow with PKCE and a nonce through the hosted login page, the ID token verified by the
//! crate (signature from the JWKS, issuer, audience, nonce, `at_hash`), UserInfo, refresh,
//! introspection, revocation and client credentials, for a confidential and a public client.
//!
//! The app runs behind a TLS terminator whose address is the issuer (`spawn_app_over_tls`), so
//! the crate discovers it from the issuer URL as a deployed client would, and every endpoint is
//! https (the crate refuses a plain-http revocation endpoint, as RFC 7009 says a client must).

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalProviderMetadata, AuthType, AuthorizationCode,
    ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadata, RedirectUrl, RequestTokenError, RevocationUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::helpers::*;
use crate::oidc::{redirect_params, world_on, Browser, World, APP};

/// The two RFC 8414 endpoints the core metadata type leaves out, read from the same document.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct TokenEndpoints {
    introspection_endpoint: IntrospectionUrl,
    revocation_endpoint: RevocationUrl,
}
impl AdditionalProviderMetadata for TokenEndpoints {}

/// `CoreProviderMetadata` with [`TokenEndpoints`].
type Metadata = ProviderMetadata<
    TokenEndpoints,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A client built from discovery, with the introspection and revocation endpoints set.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointSet,
    EndpointSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The app behind TLS (the issuer is `https://127.0.0.1:PORT`), its world, and the provider as
/// discovered by the crate. The crate's HTTP client is the app's: reqwest through the TLS
/// terminator, trusting its certificate only, and following no redirect as the crate requires.
async fn discovered() -> (World, Metadata) {
    let w = world_on(spawn_app_over_tls(&[]).await).await;
    assert!(w.app.address.starts_with("https://127.0.0.1:"));
    let issuer = IssuerUrl::new(w.app.address.clone()).unwrap();
    let metadata = Metadata::discover_async(issuer, &w.app.client)
        .await
        .expect("discovery (the crate checks the document's issuer)");
    assert_eq!(metadata.issuer().as_str(), w.app.address);
    assert_eq!(
        metadata.token_endpoint().unwrap().as_str(),
        w.app.url("/auth/token")
    );
    assert_eq!(
        metadata.userinfo_endpoint().unwrap().as_str(),
        w.app.url("/auth/userinfo")
    );
    assert!(
        !metadata.jwks().keys().is_empty(),
        "the crate fetched the ID token's key from jwks_uri"
    );
    (w, metadata)
}

fn client(metadata: &Metadata, id: &str, secret: Option<&str>) -> Client {
    let endpoints = metadata.additional_metadata().clone();
    CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(id.to_owned()),
        secret.map(|s| ClientSecret::new(s.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(APP.to_owned()).unwrap())
    .set_introspection_url(endpoints.introspection_endpoint)
    .set_revocation_url(endpoints.revocation_endpoint)
}

/// The crate's authorization request: its URL (absolute, on the discovered endpoint), the
/// state, nonce and PKCE verifier it generated.
fn authorization(client: &Client, scopes: &[&str]) -> (String, CsrfToken, Nonce, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    let (url, state, nonce) = request.url();
    (url.to_string(), state, nonce, verifier)
}

/// A browser follows `url` to the login page, signs in as alice, and lands back at [`APP`]
/// with a code (checked: the state and the issuer, RFC 9207); returns the code.
async fn sign_in(browser: &mut Browser<'_>, url: &str, state: &CsrfToken) -> AuthorizationCode {
    let path = url
        .strip_prefix(&browser.app.address)
        .unwrap_or_else(|| panic!("the authorization URL {url} is on the discovered issuer"));
    let page = browser.get(path).await;
    assert_eq!(page.status(), StatusCode::OK, "the login page");
    let html = page.text().await.unwrap();
    let back = browser.submit_login(&html, "alice", PASSWORD).await;
    assert!(
        browser.cookies.contains_key("__Host-auth_signin"),
        "behind https the sign-in cookie is a __Host- one: {:?}",
        browser.cookies.keys()
    );
    code_of(&back, browser.app, state)
}

fn code_of(back: &reqwest::Response, app: &TestApp, state: &CsrfToken) -> AuthorizationCode {
    let params = redirect_params(back, APP);
    assert!(!params.contains_key("error"), "{params:?}");
    assert_eq!(&params["state"], state.secret());
    assert_eq!(params["iss"], app.address, "RFC 9207 iss");
    AuthorizationCode::new(params["code"].clone())
}

/// The ID token of `tokens` verified by the crate for `client` and `nonce` (and from `issuer`),
/// with its `at_hash` checked against the access token as the crate documents; returns
/// preferred_username, email and the subject.
fn verified(
    client: &Client,
    issuer: &str,
    tokens: &CoreTokenResponse,
    nonce: &Nonce,
) -> (String, String, String) {
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, nonce)
        .expect("the crate verifies the ID token");
    assert!(
        id_token
            .claims(&verifier, &Nonce::new("another nonce".into()))
            .is_err(),
        "the verifier checks the nonce"
    );
    assert_eq!(claims.issuer().as_str(), issuer);
    assert_eq!(claims.audiences().len(), 1);
    assert_eq!(claims.audiences()[0].as_str(), client.client_id().as_str());
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected, "at_hash");
    let username = claims
        .preferred_username()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default();
    let email = claims
        .email()
        .map(|e| e.as_str().to_owned())
        .unwrap_or_default();
    (username, email, claims.subject().as_str().to_owned())
}

/// The OAuth2 error code of a refused token request.
fn error_code<E: std::error::Error>(
    error: RequestTokenError<E, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match error {
        RequestTokenError::ServerResponse(response) => response.error().as_ref().to_owned(),
        other => panic!("expected an OAuth2 error response, got {other:?}"),
    }
}

#[tokio::test]
async fn a_confidential_client_of_the_openidconnect_crate_runs_every_flow() {
    let (w, metadata) = discovered().await;
    let http = w.app.client.clone();
    let client = client(&metadata, &w.confidential.id, Some(w.confidential.secret()));
    assert!(matches!(client.auth_type(), AuthType::BasicAuth));

    let (url, state, nonce, verifier) =
        authorization(&client, &["profile", "email", "offline_access"]);
    let mut browser = Browser::new(&w.app);
    let code = sign_in(&mut browser, &url, &state).await;
    let tokens = client
        .exchange_code(code)
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange (client_secret_basic)");
    let granted: Vec<&str> = tokens
        .scopes()
        .expect("scope")
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(granted, ["openid", "profile", "email", "offline_access"]);
    let (username, email, subject) = verified(&client, &w.app.address, &tokens, &nonce);
    assert_eq!(username, "alice");
    assert_eq!(email, "alice@example.com");

    // UserInfo, with the subject checked by the crate against the ID token's.
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(openidconnect::SubjectIdentifier::new(subject.clone())),
        )
        .unwrap()
        .request_async(&http)
        .await
        .expect("UserInfo");
    assert_eq!(info.subject().as_str(), subject);
    assert_eq!(info.preferred_username().unwrap().as_str(), "alice");
    assert_eq!(info.email().unwrap().as_str(), "alice@example.com");
    assert_eq!(
        info.name().and_then(|n| n.get(None)).unwrap().as_str(),
        "Alice Liddell"
    );

    // Refresh: a new pair, the old refresh token refused afterwards.
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("the refresh");
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    let refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(refresh.secret(), first_refresh.secret());

    // Introspection of the refreshed access token.
    let seen = client
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .expect("introspection");
    assert!(seen.active());
    assert_eq!(seen.username(), Some("alice"));
    assert_eq!(seen.sub(), Some(subject.as_str()));
    assert_eq!(
        seen.client_id().map(|c| c.as_str()),
        Some(w.confidential.id.as_str())
    );
    assert_eq!(seen.iss(), Some(w.app.address.as_str()));
    let scopes: Vec<&str> = seen.scopes().unwrap().iter().map(|s| s.as_str()).collect();
    assert!(scopes.contains(&"openid"), "{scopes:?}");

    // Revocation of the refresh token ends the session: the access token is inactive after.
    client
        .revoke_token(CoreRevocableToken::from(refresh.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("revocation");
    let seen = client
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .expect("introspection after revocation");
    assert!(!seen.active(), "revoked: {seen:?}");
    assert_eq!(seen.username(), None, "nothing else is said");
    let refused = client
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect_err("a revoked refresh token");
    assert_eq!(error_code(refused), "invalid_grant");

    // Client credentials: the client's own token, no refresh token, no ID token.
    let own = client
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("user".into()))
        .request_async(&http)
        .await
        .expect("client_credentials");
    assert!(own.refresh_token().is_none() && own.id_token().is_none());
    let seen = client
        .introspect(own.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(seen.active());
    assert_eq!(
        seen.client_id().map(|c| c.as_str()),
        Some(w.confidential.id.as_str())
    );
    assert_eq!(seen.sub(), Some(w.confidential.id.as_str()));
    assert_eq!(seen.scopes().unwrap(), &[Scope::new("user".into())]);

    // A wrong secret is refused as invalid_client.
    let wrong = self::client(&metadata, &w.confidential.id, Some("not the secret"));
    let refused = wrong
        .exchange_client_credentials()
        .unwrap()
        .request_async(&http)
        .await
        .expect_err("a wrong secret");
    assert_eq!(error_code(refused), "invalid_client");
}

#[tokio::test]
async fn a_public_client_of_the_openidconnect_crate_signs_in_with_pkce_and_the_request_body() {
    let (w, metadata) = discovered().await;
    let http = w.app.client.clone();
    let client = client(&metadata, &w.public.id, None).set_auth_type(AuthType::RequestBody);
    let mut browser = Browser::new(&w.app);

    // A first code, exchanged with a verifier that is not the request's: refused.
    let (url, state, _, _) = authorization(&client, &["profile"]);
    let code = sign_in(&mut browser, &url, &state).await;
    let refused = client
        .exchange_code(code)
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new("x".repeat(64)))
        .request_async(&http)
        .await
        .expect_err("a wrong code_verifier");
    assert_eq!(error_code(refused), "invalid_grant");

    // A second authorization in the same browser: signed in already, straight back with a code.
    let (url, state, nonce, verifier) = authorization(&client, &["profile", "email"]);
    let path = url.strip_prefix(&w.app.address).unwrap();
    let back = browser.get(path).await;
    let code = code_of(&back, &w.app, &state);
    let tokens = client
        .exchange_code(code.clone())
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange (client_id in the body, no secret)");
    let (username, email, subject) = verified(&client, &w.app.address, &tokens, &nonce);
    assert_eq!(
        (username.as_str(), email.as_str()),
        ("alice", "alice@example.com")
    );

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("UserInfo");
    assert_eq!(info.subject().as_str(), subject);

    // The public client refreshes with its id in the body.
    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().expect("a refresh token"))
        .unwrap()
        .request_async(&http)
        .await
        .expect("the refresh");
    assert!(refreshed.refresh_token().is_some());

    // The same code again is refused, and what it gave is revoked (checked by the
    // confidential client's introspection).
    let replayed = client
        .exchange_code(code)
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new("y".repeat(64)))
        .request_async(&http)
        .await
        .expect_err("a replayed code");
    assert_eq!(error_code(replayed), "invalid_grant");
    let introspector = self::client(&metadata, &w.confidential.id, Some(w.confidential.secret()));
    let seen = introspector
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(!seen.active(), "the replay revoked the session: {seen:?}");

    // A public client cannot introspect.
    let refused = client
        .introspect(&AccessToken::new(tokens.access_token().secret().clone()))
        .request_async(&http)
        .await
        .expect_err("introspection by a public client");
    assert_eq!(error_code(refused), "unauthorized_client");
}
