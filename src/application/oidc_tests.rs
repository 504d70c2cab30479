use crate::domain::ports::{ClientRepository, Clock};
use chrono::Duration;

use super::*;
use crate::application::harness::Harness;
use crate::application::{NewClient, NewUser, RequestContext, TokenTypeHint};
use crate::domain::audit::AuditEventKind;
use crate::domain::oidc::{CodeChallenge, CodeVerifier};
use crate::domain::session::RefreshToken;
use crate::domain::user::Password;

const VERIFIER: &str = "a-verifier-of-the-right-length-0123456789-abcdefghij";
const REDIRECT: &str = "https://app.example/callback";

fn ctx() -> RequestContext {
    RequestContext::default()
}

struct World {
    h: Harness,
    public: Client,
    confidential: Client,
    secret: String,
}

async fn world() -> World {
    let h = Harness::new();
    let admin = NewUser {
        username: "root".into(),
        password: Password::candidate("root password"),
        email: Some("root@example.com".into()),
        full_name: Some("Root Admin".into()),
        roles: Some(vec!["admin".into(), "user".into()]),
    };
    h.users.create_user(admin, &ctx()).await.unwrap();
    let pair = h
        .auth
        .login("root", &Password::candidate("root password"), None, &ctx())
        .await
        .unwrap();
    let root = h.auth.authenticate(&pair.access_token.token).await.unwrap();
    let register = |client_type: &str, grants: Vec<&str>| NewClient {
        client_name: format!("{client_type} app"),
        client_type: client_type.into(),
        redirect_uris: vec![REDIRECT.into(), "http://127.0.0.1/native".into()],
        post_logout_redirect_uris: Some(vec!["https://app.example/bye".into()]),
        grant_types: Some(grants.into_iter().map(String::from).collect()),
        scope: Some("openid profile email offline_access user admin".into()),
    };
    let public = h
        .clients
        .create_client(
            &root,
            register("public", vec!["authorization_code", "refresh_token"]),
            &ctx(),
        )
        .await
        .unwrap();
    let confidential = h
        .clients
        .create_client(
            &root,
            register(
                "confidential",
                vec!["authorization_code", "refresh_token", "client_credentials"],
            ),
            &ctx(),
        )
        .await
        .unwrap();
    World {
        h,
        public: public.client,
        secret: confidential.secret.unwrap().expose().to_owned(),
        confidential: confidential.client,
    }
}

fn request(client: &Client) -> AuthorizationRequest {
    AuthorizationRequest {
        response_type: Some("code".into()),
        client_id: Some(client.id.to_string()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some("openid profile email".into()),
        state: Some("st4te".into()),
        nonce: Some("n0nce".into()),
        code_challenge: Some(
            CodeChallenge::of(&CodeVerifier::parse(VERIFIER).unwrap())
                .as_str()
                .to_owned(),
        ),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

/// Signs in as root and runs the request to its code.
async fn code_for(w: &World, request: &AuthorizationRequest) -> String {
    let valid = w.h.oidc.validate_request(request).await.unwrap();
    let signin =
        w.h.auth
            .sign_in("root", &Password::candidate("root password"), None, &ctx())
            .await
            .unwrap();
    let redirect =
        w.h.oidc
            .issue_code(&valid, &signin.session, &signin.user)
            .await
            .unwrap();
    assert_eq!(redirect.state.as_deref(), Some("st4te"));
    redirect.code.expose().to_owned()
}

fn redirected_error(result: Result<ValidRequest, AuthorizeError>) -> &'static str {
    match result {
        Err(AuthorizeError::Redirect { error, .. }) => error,
        other => panic!("expected a redirected error, got {other:?}"),
    }
}

#[tokio::test]
async fn client_and_redirect_errors_are_pages_and_the_rest_are_redirected() {
    let w = world().await;
    let page = |r: Result<ValidRequest, AuthorizeError>| matches!(r, Err(AuthorizeError::Page(_)));
    let mut unknown = request(&w.public);
    unknown.client_id = Some(uuid::Uuid::now_v7().to_string());
    assert!(page(w.h.oidc.validate_request(&unknown).await));
    for uri in [
        "https://app.example/callback/",
        "https://evil.example/callback",
        "http://127.0.0.1:8000/other",
    ] {
        let mut wrong = request(&w.public);
        wrong.redirect_uri = Some(uri.into());
        assert!(page(w.h.oidc.validate_request(&wrong).await), "{uri}");
    }
    let mut loopback = request(&w.public);
    loopback.redirect_uri = Some("http://127.0.0.1:49152/native".into());
    assert!(w.h.oidc.validate_request(&loopback).await.is_ok());

    let mut plain = request(&w.public);
    plain.code_challenge_method = Some("plain".into());
    assert_eq!(
        redirected_error(w.h.oidc.validate_request(&plain).await),
        "invalid_request"
    );
    let mut none = request(&w.public);
    none.code_challenge = None;
    none.code_challenge_method = None;
    assert_eq!(
        redirected_error(w.h.oidc.validate_request(&none).await),
        "invalid_request"
    );
    let mut confidential = request(&w.confidential);
    confidential.code_challenge = None;
    confidential.code_challenge_method = None;
    assert!(
        w.h.oidc.validate_request(&confidential).await.is_ok(),
        "PKCE is optional for a confidential client"
    );
    let mut token = request(&w.public);
    token.response_type = Some("token".into());
    assert_eq!(
        redirected_error(w.h.oidc.validate_request(&token).await),
        "unsupported_response_type"
    );
    let mut scope = request(&w.public);
    scope.scope = Some("openid superuser".into());
    assert_eq!(
        redirected_error(w.h.oidc.validate_request(&scope).await),
        "invalid_scope"
    );
    let mut repeated = request(&w.public);
    repeated.repeated = vec!["scope".into()];
    assert_eq!(
        redirected_error(w.h.oidc.validate_request(&repeated).await),
        "invalid_request"
    );
    repeated.repeated = vec!["redirect_uri".into()];
    assert!(page(w.h.oidc.validate_request(&repeated).await));
}

#[tokio::test]
async fn prompt_none_without_a_sign_in_is_login_required_and_max_age_asks_again() {
    let w = world().await;
    let mut silent = request(&w.public);
    silent.prompt = Some("none".into());
    let valid = w.h.oidc.validate_request(&silent).await.unwrap();
    let outcome = w.h.oidc.decide(valid, None).await;
    assert!(matches!(
        outcome,
        Err(AuthorizeError::Redirect {
            error: "login_required",
            ..
        })
    ));

    let signin =
        w.h.auth
            .sign_in("root", &Password::candidate("root password"), None, &ctx())
            .await
            .unwrap();
    let live = || Some((signin.session.clone(), signin.user.clone()));
    let valid =
        w.h.oidc
            .validate_request(&request(&w.public))
            .await
            .unwrap();
    assert!(matches!(
        w.h.oidc.decide(valid, live()).await,
        Ok(AuthorizeOutcome::Code(_))
    ));
    let mut login = request(&w.public);
    login.prompt = Some("login".into());
    let valid = w.h.oidc.validate_request(&login).await.unwrap();
    assert!(matches!(
        w.h.oidc.decide(valid, live()).await,
        Ok(AuthorizeOutcome::Login(_))
    ));
    w.h.clock.advance(Duration::seconds(120));
    let mut aged = request(&w.public);
    aged.max_age = Some("60".into());
    let valid = w.h.oidc.validate_request(&aged).await.unwrap();
    assert!(matches!(
        w.h.oidc.decide(valid, live()).await,
        Ok(AuthorizeOutcome::Login(_))
    ));
    aged.max_age = Some("-1".into());
    assert_eq!(
        redirected_error(w.h.oidc.validate_request(&aged).await),
        "invalid_request"
    );
}

#[tokio::test]
async fn a_code_is_exchanged_once_with_its_verifier_for_tokens_and_an_id_token() {
    let w = world().await;
    let code = code_for(&w, &request(&w.public)).await;
    let pair =
        w.h.oidc
            .exchange_code(&w.public, &code, Some(REDIRECT), Some(VERIFIER), &ctx())
            .await
            .unwrap();
    assert_eq!(pair.scope.to_space_separated(), "openid profile email");
    assert_eq!(pair.access_token.claims.client_id, Some(w.public.id));
    let id_token = pair.id_token.clone().expect("openid was granted");
    let claims = w.h.id_tokens.issued.lock().unwrap()[&id_token].clone();
    assert_eq!(claims.audience, w.public.id);
    assert_eq!(claims.nonce.as_deref(), Some("n0nce"));
    assert_eq!(claims.profile.preferred_username.as_deref(), Some("root"));
    assert_eq!(claims.profile.email.as_deref(), Some("root@example.com"));
    assert!(claims.at_hash.is_some());
    // The tokens work, and a second exchange is refused and ends them.
    assert!(w
        .h
        .auth
        .authenticate(&pair.access_token.token)
        .await
        .is_ok());
    let again =
        w.h.oidc
            .exchange_code(&w.public, &code, Some(REDIRECT), Some(VERIFIER), &ctx())
            .await;
    assert!(matches!(again, Err(AppError::InvalidGrant(_))));
    assert!(w
        .h
        .auth
        .authenticate(&pair.access_token.token)
        .await
        .is_err());
    assert!(w
        .h
        .store
        .audit_kinds()
        .contains(&AuditEventKind::AuthorizationCodeReused));
    assert!(w
        .h
        .store
        .audit_kinds()
        .contains(&AuditEventKind::AuthorizationCodeExchanged));
}

#[tokio::test]
async fn a_code_is_refused_to_another_client_redirect_or_verifier_and_when_expired() {
    let w = world().await;
    let cases: Vec<(Option<&str>, Option<&str>, bool)> = vec![
        (
            Some(REDIRECT),
            Some("another-verifier-of-the-right-length-0123456789-abc"),
            false,
        ),
        (Some(REDIRECT), None, false),
        (Some("http://127.0.0.1/native"), Some(VERIFIER), false),
        (None, Some(VERIFIER), false),
        (Some(REDIRECT), Some(VERIFIER), true),
    ];
    for (redirect, verifier, other_client) in cases {
        let code = code_for(&w, &request(&w.public)).await;
        let client = if other_client {
            &w.confidential
        } else {
            &w.public
        };
        let result =
            w.h.oidc
                .exchange_code(client, &code, redirect, verifier, &ctx())
                .await;
        assert!(
            matches!(result, Err(AppError::InvalidGrant(_))),
            "{redirect:?} {verifier:?} {other_client}"
        );
    }
    // A verifier for a code issued without a challenge.
    let mut no_pkce = request(&w.confidential);
    no_pkce.code_challenge = None;
    no_pkce.code_challenge_method = None;
    let code = code_for(&w, &no_pkce).await;
    let result =
        w.h.oidc
            .exchange_code(
                &w.confidential,
                &code,
                Some(REDIRECT),
                Some(VERIFIER),
                &ctx(),
            )
            .await;
    assert!(matches!(result, Err(AppError::InvalidGrant(_))));
    // Expired after 60 s.
    let code = code_for(&w, &request(&w.public)).await;
    w.h.clock.advance(Duration::seconds(61));
    let result =
        w.h.oidc
            .exchange_code(&w.public, &code, Some(REDIRECT), Some(VERIFIER), &ctx())
            .await;
    assert!(matches!(result, Err(AppError::InvalidGrant(_))));
}

#[tokio::test]
async fn clients_authenticate_by_secret_or_by_id_alone_when_public() {
    let w = world().await;
    let creds = |c: &Client, secret: Option<&str>| ClientCredentials {
        client_id: c.id.to_string(),
        secret: secret.map(String::from),
    };
    let oidc = &w.h.oidc;
    assert!(oidc
        .authenticate_client(&creds(&w.confidential, Some(&w.secret)))
        .await
        .is_ok());
    assert!(oidc
        .authenticate_client(&creds(&w.public, None))
        .await
        .is_ok());
    for bad in [
        creds(&w.confidential, Some("wrong")),
        creds(&w.confidential, None),
        creds(&w.public, Some("anything")),
        ClientCredentials {
            client_id: "not-a-uuid".into(),
            secret: None,
        },
    ] {
        assert!(matches!(
            oidc.authenticate_client(&bad).await,
            Err(AppError::InvalidClient)
        ));
    }
}

#[tokio::test]
async fn client_credentials_tokens_introspect_until_the_client_is_disabled() {
    let w = world().await;
    let token =
        w.h.oidc
            .client_credentials(&w.confidential, Some("user"), &ctx())
            .await
            .unwrap();
    assert_eq!(token.scope.to_space_separated(), "user");
    assert!(matches!(
        w.h.oidc
            .client_credentials(&w.confidential, Some("openid"), &ctx())
            .await,
        Err(AppError::InvalidScope(_))
    ));
    assert!(matches!(
        w.h.oidc.client_credentials(&w.public, None, &ctx()).await,
        Err(AppError::UnauthorizedClient(_))
    ));
    let seen =
        w.h.oidc
            .introspect(&w.confidential, &token.access_token, None)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(seen.subject, w.confidential.id.to_string());
    assert!(matches!(
        w.h.oidc
            .introspect(&w.public, &token.access_token, None)
            .await,
        Err(AppError::UnauthorizedClient(_))
    ));
    let h = &w.h;
    h.store
        .update_fields(
            w.confidential.id,
            &crate::domain::client::ClientChanges {
                is_active: Some(false),
                ..Default::default()
            },
            h.clock.now(),
        )
        .await
        .unwrap();
    let fresh = Client {
        is_active: true,
        ..w.confidential.clone()
    };
    assert_eq!(
        h.oidc
            .introspect(&fresh, &token.access_token, None)
            .await
            .unwrap(),
        None
    );
    assert!(h
        .store
        .audit_kinds()
        .contains(&AuditEventKind::ClientCredentialsGranted));
}

#[tokio::test]
async fn introspection_follows_the_session_and_refresh_tokens_stay_with_their_client() {
    let w = world().await;
    let mut offline = request(&w.public);
    offline.scope = Some("openid offline_access user".into());
    let code = code_for(&w, &offline).await;
    let pair =
        w.h.oidc
            .exchange_code(&w.public, &code, Some(REDIRECT), Some(VERIFIER), &ctx())
            .await
            .unwrap();
    let rt = pair.refresh_token.expose().to_owned();
    let seen =
        w.h.oidc
            .introspect(&w.confidential, &rt, Some(TokenTypeHint::RefreshToken))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(seen.kind, TokenKind::RefreshToken);
    assert_eq!(seen.client_id, Some(w.public.id));
    assert_eq!(seen.scope, "openid offline_access user");
    // Another client cannot revoke it; its own client can.
    w.h.oidc
        .revoke(Some(&w.confidential), &rt, None, &ctx())
        .await
        .unwrap();
    assert!(w
        .h
        .oidc
        .introspect(&w.confidential, &rt, None)
        .await
        .unwrap()
        .is_some());
    // Refreshed by another (authenticated) client: the session is revoked as stolen.
    let rotated =
        w.h.auth
            .refresh(&RefreshToken::from_presented(&rt), &ctx())
            .await
            .unwrap();
    let refused =
        w.h.oidc
            .check_refresh_client(&rotated, Some(&w.confidential), &ctx())
            .await;
    assert!(matches!(refused, Err(AppError::InvalidGrant(_))));
    assert!(w
        .h
        .auth
        .authenticate(&rotated.access_token.token)
        .await
        .is_err());
    assert_eq!(
        w.h.oidc
            .introspect(&w.confidential, &rotated.access_token.token, None)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn ending_the_browser_sign_in_ends_the_sessions_started_under_it_but_not_offline_ones() {
    let w = world().await;
    let online_code = code_for(&w, &request(&w.public)).await;
    let online =
        w.h.oidc
            .exchange_code(
                &w.public,
                &online_code,
                Some(REDIRECT),
                Some(VERIFIER),
                &ctx(),
            )
            .await
            .unwrap();
    let mut offline_request = request(&w.public);
    offline_request.scope = Some("openid offline_access".into());
    let offline_code = code_for(&w, &offline_request).await;
    let offline =
        w.h.oidc
            .exchange_code(
                &w.public,
                &offline_code,
                Some(REDIRECT),
                Some(VERIFIER),
                &ctx(),
            )
            .await
            .unwrap();
    let hint = online.id_token.clone().unwrap();
    let end =
        w.h.oidc
            .check_end_session(
                Some(&hint),
                None,
                Some("https://app.example/bye"),
                Some("s"),
            )
            .await
            .unwrap();
    assert_eq!(end.redirect_uri.as_deref(), Some("https://app.example/bye"));
    w.h.oidc
        .end_session(&end, None, false, &ctx())
        .await
        .unwrap();
    assert!(w
        .h
        .auth
        .authenticate(&online.access_token.token)
        .await
        .is_err());
    assert!(w
        .h
        .auth
        .authenticate(&offline.access_token.token)
        .await
        .is_ok());
    for bad in [
        w.h.oidc
            .check_end_session(Some("forged"), None, None, None)
            .await,
        w.h.oidc
            .check_end_session(Some(&hint), None, Some("https://evil.example/"), None)
            .await,
        w.h.oidc
            .check_end_session(None, None, Some("https://app.example/bye"), None)
            .await,
    ] {
        assert!(matches!(bad, Err(AppError::InvalidRequest(_))));
    }
}

#[tokio::test]
async fn userinfo_needs_openid_and_gives_the_claims_of_the_scope() {
    let w = world().await;
    let mut email_only = request(&w.public);
    email_only.scope = Some("openid email".into());
    let code = code_for(&w, &email_only).await;
    let pair =
        w.h.oidc
            .exchange_code(&w.public, &code, Some(REDIRECT), Some(VERIFIER), &ctx())
            .await
            .unwrap();
    let principal =
        w.h.auth
            .authenticate(&pair.access_token.token)
            .await
            .unwrap();
    let info = w.h.oidc.userinfo(&principal).unwrap();
    assert_eq!(info.profile.email.as_deref(), Some("root@example.com"));
    assert_eq!(info.profile.preferred_username, None);
    let password_grant =
        w.h.auth
            .login("root", &Password::candidate("root password"), None, &ctx())
            .await
            .unwrap();
    let principal =
        w.h.auth
            .authenticate(&password_grant.access_token.token)
            .await
            .unwrap();
    assert!(matches!(
        w.h.oidc.userinfo(&principal),
        Err(AppError::InsufficientScope("openid"))
    ));
}
