//! Registered OAuth clients: round trips, partial updates, secret rotation, unknown ids, and
//! deleting or disabling a client revoking exactly the sessions issued to it.

use auth_service::domain::client::{
    Client, ClientChanges, ClientId, ClientName, ClientScope, ClientSecret, ClientType, GrantTypes,
    RedirectUris,
};

use super::*;

pub(super) fn client(name: &str, client_type: ClientType) -> (Client, Option<ClientSecret>) {
    let at = now();
    let secret = (client_type == ClientType::Confidential).then(ClientSecret::generate);
    let uris = |raw: &[&str]| raw.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let client = Client {
        id: ClientId::new(),
        name: ClientName::parse(name).unwrap(),
        client_type,
        redirect_uris: RedirectUris::parse(
            "redirect_uris",
            &uris(&["https://app.example.com/cb", "http://127.0.0.1:8080/cb"]),
            true,
        )
        .unwrap(),
        post_logout_redirect_uris: RedirectUris::parse(
            "post_logout_redirect_uris",
            &uris(&["https://app.example.com/bye"]),
            false,
        )
        .unwrap(),
        grant_types: GrantTypes::parse(
            &uris(&["authorization_code", "refresh_token"]),
            client_type,
        )
        .unwrap(),
        scope: ClientScope::parse("openid profile").unwrap(),
        is_active: true,
        secret_hash: secret.as_ref().map(ClientSecret::hash),
        created_at: at,
        updated_at: at,
    };
    (client, secret)
}

/// A session of `user` whose tokens are issued to `client_id` (`None`: the password grant).
pub(super) async fn client_session(
    b: &Backend,
    user: &User,
    client_id: Option<ClientId>,
) -> Session {
    started_session(b, user, client_id, None).await
}

/// A session of `user` for `client_id`, started from `parent` if given (as
/// `POST /auth/refresh-token` starts one, naming no client).
async fn started_session(
    b: &Backend,
    user: &User,
    client_id: Option<ClientId>,
    parent: Option<&Session>,
) -> Session {
    try_start_session(b, user, client_id, parent)
        .await
        .expect("started")
}

/// As [`started_session`]; `None` when the store refuses it (its parent ended).
async fn try_start_session(
    b: &Backend,
    user: &User,
    client_id: Option<ClientId>,
    parent: Option<&Session>,
) -> Option<Session> {
    let at = now();
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        scope: Roles::new([Role::User]),
        created_at: at,
        expires_at: at + Duration::days(14),
        not_after: at + Duration::days(30),
        parent_id: parent.map(|p| p.id),
        oidc: Default::default(),
        client_id,
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
    let started = b.repos.tokens.create_session(&new).await.unwrap();
    started.map(|_| session)
}

pub async fn clients_round_trip_page_update_and_delete(b: Backend) {
    let clients = &b.repos.clients;
    let (first, secret) = client("First ✓ app", ClientType::Confidential);
    clients.insert(&first).await.unwrap();
    let stored = clients.find_by_id(first.id).await.unwrap().unwrap();
    assert_eq!(stored, first);
    assert!(stored.secret_hash.unwrap().verify(secret.unwrap().expose()));
    let (mut second, _) = client("Second", ClientType::Public);
    second.created_at = first.created_at + Duration::seconds(1);
    second.updated_at = second.created_at;
    clients.insert(&second).await.unwrap();
    assert_eq!(
        clients.find_by_id(second.id).await.unwrap().unwrap(),
        second
    );

    let (page, total) = clients.list(1, 0).await.unwrap();
    assert_eq!((page.len(), total), (1, 2));
    assert_eq!(page[0].id, first.id, "oldest first");
    let (page, _) = clients.list(10, 1).await.unwrap();
    assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [second.id]);
    assert!(clients.list(10, 2).await.unwrap().0.is_empty());

    let later = now() + Duration::seconds(5);
    let changes = ClientChanges {
        name: Some(ClientName::parse("Renamed").unwrap()),
        scope: Some(ClientScope::parse("openid email").unwrap()),
        ..ClientChanges::default()
    };
    let (updated, revoked) = clients
        .update_fields(first.id, &changes, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked, 0);
    assert_eq!(updated.name.as_str(), "Renamed");
    assert_eq!(updated.scope.to_space_separated(), "openid email");
    assert_eq!(updated.redirect_uris, first.redirect_uris, "untouched");
    assert_eq!(updated.grant_types, first.grant_types, "untouched");
    assert_eq!(updated.secret_hash, first.secret_hash, "untouched");
    assert_eq!(updated.updated_at, later);
    assert_eq!(
        clients.find_by_id(first.id).await.unwrap().unwrap(),
        updated
    );

    assert_eq!(clients.delete(first.id, later).await.unwrap(), Some(0));
    assert!(clients.find_by_id(first.id).await.unwrap().is_none());
    assert_eq!(clients.list(10, 0).await.unwrap().1, 1);
}

pub async fn a_rotated_secret_replaces_the_old_hash(b: Backend) {
    let clients = &b.repos.clients;
    let (c, old) = client("Rotating", ClientType::Confidential);
    clients.insert(&c).await.unwrap();
    let new = ClientSecret::generate();
    let later = now() + Duration::seconds(1);
    assert!(clients
        .set_secret_hash(c.id, &new.hash(), later)
        .await
        .unwrap());
    let stored = clients.find_by_id(c.id).await.unwrap().unwrap();
    let hash = stored.secret_hash.unwrap();
    assert!(hash.verify(new.expose()));
    assert!(!hash.verify(old.unwrap().expose()));
    assert_eq!(stored.updated_at, later);
}

pub async fn unknown_client_ids_change_nothing(b: Backend) {
    let clients = &b.repos.clients;
    let (c, _) = client("Known", ClientType::Confidential);
    clients.insert(&c).await.unwrap();
    let unknown = ClientId::new();
    let at = now();
    assert!(clients.find_by_id(unknown).await.unwrap().is_none());
    let changes = ClientChanges {
        is_active: Some(false),
        ..ClientChanges::default()
    };
    assert!(clients
        .update_fields(unknown, &changes, at)
        .await
        .unwrap()
        .is_none());
    assert!(clients.delete(unknown, at).await.unwrap().is_none());
    let secret = ClientSecret::generate();
    assert!(!clients
        .set_secret_hash(unknown, &secret.hash(), at)
        .await
        .unwrap());
    assert_eq!(clients.find_by_id(c.id).await.unwrap().unwrap(), c);
}

pub async fn deleting_or_disabling_a_client_revokes_exactly_its_sessions(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let clients = &b.repos.clients;
    let (deleted, _) = client("Deleted", ClientType::Confidential);
    let (disabled, _) = client("Disabled", ClientType::Public);
    let (other, _) = client("Other", ClientType::Public);
    for c in [&deleted, &disabled, &other] {
        clients.insert(c).await.unwrap();
    }
    let of_deleted = client_session(&b, &alice, Some(deleted.id)).await;
    let of_disabled = client_session(&b, &alice, Some(disabled.id)).await;
    let of_other = client_session(&b, &alice, Some(other.id)).await;
    let password_grant = client_session(&b, &alice, None).await;
    let at = now();
    // Checked live first, so a backend that remembers live sessions must forget these.
    for s in [&of_deleted, &of_disabled, &of_other, &password_grant] {
        assert!(live(&b, &alice, s, at).await);
    }

    assert_eq!(clients.delete(deleted.id, at).await.unwrap(), Some(1));
    assert!(!live(&b, &alice, &of_deleted, at).await);
    assert!(live(&b, &alice, &of_disabled, at).await);

    let enable = ClientChanges {
        is_active: Some(true),
        ..ClientChanges::default()
    };
    let (_, revoked) = clients
        .update_fields(disabled.id, &enable, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked, 0, "enabling revokes nothing");
    assert!(live(&b, &alice, &of_disabled, at).await);
    let disable = ClientChanges {
        is_active: Some(false),
        ..ClientChanges::default()
    };
    let (c, revoked) = clients
        .update_fields(disabled.id, &disable, at)
        .await
        .unwrap()
        .unwrap();
    assert!(!c.is_active);
    assert_eq!(revoked, 1);
    assert!(!live(&b, &alice, &of_disabled, at).await);
    assert_eq!(
        clients
            .update_fields(disabled.id, &disable, at)
            .await
            .unwrap()
            .unwrap()
            .1,
        0,
        "already revoked"
    );

    assert!(
        live(&b, &alice, &of_other, at).await,
        "another client's session lives"
    );
    assert!(
        live(&b, &alice, &password_grant, at).await,
        "the password grant's lives"
    );
}

pub async fn sessions_started_from_a_client_session_end_with_the_client(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let clients = &b.repos.clients;
    let (app, _) = client("App", ClientType::Public);
    clients.insert(&app).await.unwrap();
    let root = client_session(&b, &alice, Some(app.id)).await;
    let child = started_session(&b, &alice, None, Some(&root)).await;
    let grandchild = started_session(&b, &alice, None, Some(&child)).await;
    let unrelated = client_session(&b, &alice, None).await;
    let at = now();
    for s in [&root, &child, &grandchild, &unrelated] {
        assert!(live(&b, &alice, s, at).await);
    }
    assert_eq!(clients.delete(app.id, at).await.unwrap(), Some(3));
    for s in [&root, &child, &grandchild] {
        assert!(!live(&b, &alice, s, at).await, "ends with its client");
    }
    assert!(live(&b, &alice, &unrelated, at).await);
}

/// Deleting a client while a session is being started from one of its sessions: the new session
/// is refused, or revoked with the client; it never outlives it (on PostgreSQL the two
/// transactions overlap).
pub async fn a_session_started_while_its_client_is_deleted_does_not_outlive_it(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    for round in 0..12 {
        let (app, _) = client("Racing", ClientType::Public);
        b.repos.clients.insert(&app).await.unwrap();
        let root = client_session(&b, &alice, Some(app.id)).await;
        let (child, deleted) = tokio::join!(
            try_start_session(&b, &alice, None, Some(&root)),
            b.repos.clients.delete(app.id, now()),
        );
        assert!(deleted.unwrap().is_some());
        let at = now();
        assert!(!live(&b, &alice, &root, at).await);
        if let Some(child) = child {
            assert!(
                !live(&b, &alice, &child, at).await,
                "round {round}: the child outlived its client"
            );
        }
    }
}

/// Ending a session while another is being started from it: the new session is refused, or
/// revoked with its parent; it never outlives it.
pub async fn a_session_started_while_its_parent_ends_does_not_outlive_it(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    for round in 0..12 {
        let root = client_session(&b, &alice, None).await;
        let (child, ended) = tokio::join!(
            try_start_session(&b, &alice, None, Some(&root)),
            b.repos
                .tokens
                .revoke_session(root.id, RevocationReason::Logout, now()),
        );
        assert!(ended.unwrap());
        if let Some(child) = child {
            assert!(
                !live(&b, &alice, &child, now()).await,
                "round {round}: the child outlived its parent"
            );
        }
    }
}
