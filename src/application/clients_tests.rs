use chrono::Duration;

use super::*;
use crate::application::harness::Harness;
use crate::domain::audit::AuditEventKind;
use crate::domain::ports::TokenRepository;
use crate::domain::session::{NewSession, RefreshToken, RefreshTokenRecord, Session, SessionId};
use crate::domain::user::{Password, Role, Roles, User};

/// An admin principal and a plain user, through the real registration and login.
async fn admin_and_user(h: &Harness) -> (Principal, Principal, User) {
    let ctx = RequestContext::default();
    let mut root = crate::application::NewUser {
        username: "root".into(),
        password: Password::candidate("root password"),
        email: None,
        full_name: None,
        roles: Some(vec!["admin".into(), "user".into()]),
    };
    h.users.create_user(root.clone(), &ctx).await.unwrap();
    root.username = "erin".into();
    root.password = Password::candidate("erin password");
    root.roles = None;
    let erin = h.users.create_user(root, &ctx).await.unwrap();
    let login = |name: &'static str, password: &'static str| async move {
        let pair = h
            .auth
            .login(name, &Password::candidate(password), None, &ctx_default())
            .await
            .unwrap();
        h.auth.authenticate(&pair.access_token.token).await.unwrap()
    };
    let admin = login("root", "root password").await;
    let plain = login("erin", "erin password").await;
    (admin, plain, erin)
}

fn ctx_default() -> RequestContext {
    RequestContext::default()
}

fn confidential() -> NewClient {
    NewClient {
        client_name: "Billing".into(),
        client_type: "confidential".into(),
        redirect_uris: vec!["https://billing.example.com/cb".into()],
        grant_types: Some(vec![
            "authorization_code".into(),
            "client_credentials".into(),
        ]),
        scope: Some("openid email".into()),
        ..NewClient::default()
    }
}

/// Starts a session for `user` whose tokens belong to `client`, through the port.
async fn session_of(h: &Harness, user: &User, client: Option<ClientId>) -> SessionId {
    let at = h.clock.now();
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        scope: Roles::new([Role::User]),
        oidc: Default::default(),
        created_at: at,
        expires_at: at + Duration::days(1),
        not_after: at + Duration::days(2),
        parent_id: None,
        client_id: client,
    };
    let token = RefreshToken::generate();
    let new = NewSession {
        first_token: Some(RefreshTokenRecord {
            hash: token.hash(),
            session_id: session.id,
            created_at: at,
            expires_at: session.expires_at,
        }),
        signin: None,
        session: session.clone(),
        credential_version: user.credential_version,
        max_live_sessions: 100,
        origin: Default::default(),
    };
    h.store.create_session(&new).await.unwrap().unwrap();
    session.id
}

#[tokio::test]
async fn a_confidential_client_gets_a_secret_stored_only_as_its_hash() {
    let h = Harness::new();
    let (admin, _, _) = admin_and_user(&h).await;
    let made = h
        .clients
        .create_client(&admin, confidential(), &ctx_default())
        .await
        .unwrap();
    let secret = made.secret.expect("a confidential client has a secret");
    let stored = h.clients.get_client(&admin, made.client.id).await.unwrap();
    let hash = stored.secret_hash.expect("stored as a hash");
    assert_ne!(hash.as_str(), secret.expose());
    assert!(hash.verify(secret.expose()));
    assert_eq!(stored.scope.to_space_separated(), "openid email");
    assert!(h
        .store
        .audit_kinds()
        .contains(&AuditEventKind::ClientCreated));

    let public = NewClient {
        client_type: "public".into(),
        grant_types: None,
        scope: None,
        ..confidential()
    };
    let made = h
        .clients
        .create_client(&admin, public, &ctx_default())
        .await
        .unwrap();
    assert!(made.secret.is_none() && made.client.secret_hash.is_none());
    assert_eq!(made.client.grant_types.names(), ["authorization_code"]);
    assert_eq!(made.client.scope.to_space_separated(), "openid");
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once_and_nothing_is_stored() {
    let h = Harness::new();
    let (admin, _, _) = admin_and_user(&h).await;
    let bad = NewClient {
        client_name: String::new(),
        client_type: "public".into(),
        redirect_uris: vec!["http://example.com/cb".into()],
        post_logout_redirect_uris: Some(vec!["/logout".into()]),
        grant_types: Some(vec!["client_credentials".into()]),
        scope: Some("openid root".into()),
    };
    let Err(AppError::Validation(errors)) =
        h.clients.create_client(&admin, bad, &ctx_default()).await
    else {
        panic!("refused");
    };
    let codes: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
    assert_eq!(
        codes,
        [
            ("client_name", "invalid_length"),
            ("redirect_uris", "insecure_scheme"),
            ("post_logout_redirect_uris", "not_absolute"),
            ("grant_types", "not_allowed_for_public_client"),
            ("scope", "unknown_scope"),
        ]
    );
    let bad_type = NewClient {
        client_type: "secret".into(),
        ..confidential()
    };
    let Err(AppError::Validation(errors)) = h
        .clients
        .create_client(&admin, bad_type, &ctx_default())
        .await
    else {
        panic!("refused");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "client_type");
    let page = h.clients.list_clients(&admin, 10, 0).await.unwrap();
    assert_eq!(page.total, 0);
}

#[tokio::test]
async fn only_admins_manage_clients_and_unknown_ids_are_not_found() {
    let h = Harness::new();
    let (admin, plain, _) = admin_and_user(&h).await;
    let ctx = ctx_default();
    assert!(matches!(
        h.clients.create_client(&plain, confidential(), &ctx).await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        h.clients.list_clients(&plain, 10, 0).await,
        Err(AppError::Forbidden)
    ));
    let made = h
        .clients
        .create_client(&admin, confidential(), &ctx)
        .await
        .unwrap();
    let id = made.client.id;
    assert!(matches!(
        h.clients.get_client(&plain, id).await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        h.clients.delete_client(&plain, id, &ctx).await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        h.clients.rotate_secret(&plain, id, &ctx).await,
        Err(AppError::Forbidden)
    ));
    let unknown = ClientId::new();
    assert!(matches!(
        h.clients.get_client(&admin, unknown).await,
        Err(AppError::ClientNotFound)
    ));
    assert!(matches!(
        h.clients
            .update_client(&admin, unknown, ClientPatch::default(), &ctx)
            .await,
        Err(AppError::ClientNotFound)
    ));
    assert!(matches!(
        h.clients.delete_client(&admin, unknown, &ctx).await,
        Err(AppError::ClientNotFound)
    ));
    assert!(matches!(
        h.clients.rotate_secret(&admin, unknown, &ctx).await,
        Err(AppError::ClientNotFound)
    ));
    assert!(matches!(
        h.clients.list_clients(&admin, 0, 0).await,
        Err(AppError::Validation(_))
    ));
}

#[tokio::test]
async fn rotation_replaces_the_secret_and_public_clients_have_none_to_rotate() {
    let h = Harness::new();
    let (admin, _, _) = admin_and_user(&h).await;
    let ctx = ctx_default();
    let made = h
        .clients
        .create_client(&admin, confidential(), &ctx)
        .await
        .unwrap();
    let old = made.secret.unwrap();
    let new = h
        .clients
        .rotate_secret(&admin, made.client.id, &ctx)
        .await
        .unwrap();
    assert_ne!(old.expose(), new.expose());
    let hash = h
        .clients
        .get_client(&admin, made.client.id)
        .await
        .unwrap()
        .secret_hash
        .unwrap();
    assert!(hash.verify(new.expose()));
    assert!(!hash.verify(old.expose()));
    assert!(h
        .store
        .audit_kinds()
        .contains(&AuditEventKind::ClientSecretRotated));

    let public = NewClient {
        client_type: "public".into(),
        grant_types: None,
        ..confidential()
    };
    let public = h.clients.create_client(&admin, public, &ctx).await.unwrap();
    assert!(matches!(
        h.clients
            .rotate_secret(&admin, public.client.id, &ctx)
            .await,
        Err(AppError::PublicClient)
    ));
}

#[tokio::test]
async fn disabling_or_deleting_a_client_revokes_exactly_its_sessions() {
    let h = Harness::new();
    let (admin, _, erin) = admin_and_user(&h).await;
    let ctx = ctx_default();
    let first = h
        .clients
        .create_client(&admin, confidential(), &ctx)
        .await
        .unwrap()
        .client;
    let second = h
        .clients
        .create_client(&admin, confidential(), &ctx)
        .await
        .unwrap()
        .client;
    let before = h.store.live_sessions(erin.id);
    session_of(&h, &erin, Some(first.id)).await;
    session_of(&h, &erin, Some(second.id)).await;
    session_of(&h, &erin, None).await;
    assert_eq!(h.store.live_sessions(erin.id), before + 3);

    let patch = ClientPatch {
        is_active: Some(false),
        client_name: Some("Billing (old)".into()),
        ..ClientPatch::default()
    };
    let updated = h
        .clients
        .update_client(&admin, first.id, patch, &ctx)
        .await
        .unwrap();
    assert!(!updated.is_active);
    assert_eq!(updated.name.as_str(), "Billing (old)");
    assert_eq!(h.store.live_sessions(erin.id), before + 2);

    h.clients
        .delete_client(&admin, second.id, &ctx)
        .await
        .unwrap();
    assert_eq!(
        h.store.live_sessions(erin.id),
        before + 1,
        "the password-grant one lives"
    );
    assert!(matches!(
        h.clients.get_client(&admin, second.id).await,
        Err(AppError::ClientNotFound)
    ));
    let kinds = h.store.audit_kinds();
    assert!(kinds.contains(&AuditEventKind::ClientUpdated));
    assert!(kinds.contains(&AuditEventKind::ClientDeleted));
}

#[tokio::test]
async fn a_change_is_validated_against_the_stored_client_type() {
    let h = Harness::new();
    let (admin, _, _) = admin_and_user(&h).await;
    let ctx = ctx_default();
    let public = NewClient {
        client_type: "public".into(),
        grant_types: None,
        ..confidential()
    };
    let client = h
        .clients
        .create_client(&admin, public, &ctx)
        .await
        .unwrap()
        .client;
    let patch = ClientPatch {
        grant_types: Some(vec!["client_credentials".into()]),
        redirect_uris: Some(vec![]),
        ..ClientPatch::default()
    };
    let Err(AppError::Validation(errors)) = h
        .clients
        .update_client(&admin, client.id, patch, &ctx)
        .await
    else {
        panic!("refused");
    };
    let codes: Vec<_> = errors.iter().map(|e| e.code).collect();
    assert_eq!(codes, ["invalid_length", "not_allowed_for_public_client"]);
    let unchanged = h.clients.get_client(&admin, client.id).await.unwrap();
    assert_eq!(unchanged, client);
}
