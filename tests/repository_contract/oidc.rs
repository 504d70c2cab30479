//! OpenID Connect storage: authorization codes (one redemption, replays, expiry, the purge),
//! browser sign-ins, live refresh tokens, and a session's OpenID scope and client.

use auth_service::domain::client::ClientId;
use auth_service::domain::oidc::{
    AuthorizationCode, CodeChallenge, CodeGrant, CodeVerifier, OidcScope, OidcScopes, Redemption,
    Scope, SigninToken,
};

use super::*;

/// A session to start.
#[derive(Clone, Copy)]
struct Spec<'a> {
    user: &'a User,
    at: DateTime<Utc>,
    parent: Option<SessionId>,
    client_id: Option<ClientId>,
    oidc: OidcScopes,
}

fn spec(user: &User, at: DateTime<Utc>) -> Spec<'_> {
    Spec {
        user,
        at,
        parent: None,
        client_id: None,
        oidc: OidcScopes::NONE,
    }
}

/// `openid profile offline_access`.
fn code_flow_scopes() -> OidcScopes {
    OidcScopes::NONE
        .with(OidcScope::OpenId)
        .with(OidcScope::Profile)
        .with(OidcScope::OfflineAccess)
}

/// Starts the session `spec` describes: a browser sign-in (no refresh token) found by
/// `signin`'s hash when given, else one with its first refresh token. The session as stored
/// (its expiry as the store capped it) and that token; `Ok(None)` when the store refused it.
async fn try_start(
    b: &Backend,
    spec: Spec<'_>,
    signin: Option<&SigninToken>,
) -> Result<Option<(Session, Option<RefreshToken>)>, StoreError> {
    let Spec {
        user,
        at,
        parent,
        client_id,
        oidc,
    } = spec;
    let mut session = Session {
        id: SessionId::new(),
        user_id: user.id,
        scope: if signin.is_some() {
            Roles::default()
        } else {
            Roles::new([Role::User])
        },
        oidc,
        created_at: at,
        expires_at: at + Duration::days(14),
        not_after: at + Duration::days(30),
        parent_id: parent,
        client_id,
    };
    let token = signin.is_none().then(RefreshToken::generate);
    let new = NewSession {
        session: session.clone(),
        first_token: token.as_ref().map(|token| RefreshTokenRecord {
            hash: token.hash(),
            session_id: session.id,
            created_at: at,
            expires_at: session.expires_at,
        }),
        signin: signin.map(SigninToken::hash),
        credential_version: user.credential_version,
        max_live_sessions: 100,
        origin: Default::default(),
    };
    let Some(expires_at) = b.repos.tokens.create_session(&new).await? else {
        return Ok(None);
    };
    session.expires_at = expires_at;
    Ok(Some((session, token)))
}

/// A browser sign-in of `user` at `at`, and its cookie token.
async fn sign_in(b: &Backend, user: &User, at: DateTime<Utc>) -> (Session, SigninToken) {
    let token = SigninToken::generate();
    let (session, refresh) = try_start(b, spec(user, at), Some(&token))
        .await
        .unwrap()
        .expect("the sign-in starts");
    assert!(refresh.is_none());
    (session, token)
}

/// A session with a refresh token, as `spec` describes.
async fn start(b: &Backend, spec: Spec<'_>) -> (Session, RefreshToken) {
    let (session, token) = try_start(b, spec, None)
        .await
        .unwrap()
        .expect("the session starts");
    (session, token.expect("a first refresh token"))
}

async fn find_signin(
    b: &Backend,
    token: &SigninToken,
    at: DateTime<Utc>,
) -> Option<(Session, Arc<User>)> {
    b.repos.tokens.find_signin(&token.hash(), at).await.unwrap()
}

/// A code issued at `at` to `client` under the sign-in `signin` of `user`, living 60 seconds,
/// with a PKCE challenge and a nonce.
fn code(
    user: &User,
    signin: &Session,
    client: ClientId,
    at: DateTime<Utc>,
) -> (AuthorizationCode, CodeGrant) {
    let code = AuthorizationCode::generate();
    let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
    let grant = CodeGrant {
        hash: code.hash(),
        client_id: client,
        user_id: user.id,
        signin_id: signin.id,
        redirect_uri: "https://app.example.com/cb?tenant=a%20b".into(),
        challenge: Some(CodeChallenge::of(&verifier)),
        scope: Scope {
            oidc: OidcScopes::NONE
                .with(OidcScope::OpenId)
                .with(OidcScope::Email),
            roles: Roles::new([Role::User]),
        },
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: at - Duration::minutes(5),
        created_at: at,
        expires_at: at + Duration::seconds(60),
    };
    (code, grant)
}

/// The same as [`code`] for a confidential client that sent no challenge and no nonce.
fn bare_code(user: &User, signin: &Session, at: DateTime<Utc>) -> (AuthorizationCode, CodeGrant) {
    let (code, mut grant) = code(user, signin, ClientId::new(), at);
    grant.challenge = None;
    grant.nonce = None;
    grant.scope = Scope::from(Roles::new([Role::Admin]));
    (code, grant)
}

async fn redeem(
    b: &Backend,
    code: &AuthorizationCode,
    session: SessionId,
    at: DateTime<Utc>,
) -> Redemption {
    b.repos
        .codes
        .redeem(&code.hash(), session, at)
        .await
        .unwrap()
}

async fn was_replayed(b: &Backend, code: &AuthorizationCode) -> bool {
    b.repos.codes.was_replayed(&code.hash()).await.unwrap()
}

pub async fn a_code_is_redeemed_once_and_every_later_redemption_is_a_replay(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (signin, _) = sign_in(&b, &alice, at).await;
    let (code, grant) = code(&alice, &signin, ClientId::new(), at);
    b.repos.codes.insert(&grant).await.unwrap();
    assert!(!was_replayed(&b, &code).await);

    let first = SessionId::new();
    let when = at + Duration::seconds(3);
    assert_eq!(
        redeem(&b, &code, first, when).await,
        Redemption::Fresh(Box::new(grant.clone()))
    );
    assert!(
        !was_replayed(&b, &code).await,
        "one redemption is no replay"
    );
    for _ in 0..2 {
        assert_eq!(
            redeem(&b, &code, SessionId::new(), when).await,
            Redemption::Replayed { session_id: first },
            "a replay names the first redemption's session, never its own"
        );
        assert!(was_replayed(&b, &code).await);
    }

    // Another code, with no challenge and no nonce, round-trips as well; a second insert of a
    // hash is refused and changes nothing.
    let (bare, bare_grant) = bare_code(&alice, &signin, at);
    b.repos.codes.insert(&bare_grant).await.unwrap();
    let collision = CodeGrant {
        client_id: ClientId::new(),
        ..bare_grant.clone()
    };
    let refused = b.repos.codes.insert(&collision).await;
    assert!(matches!(refused, Err(StoreError::Other(_))), "{refused:?}");
    assert_eq!(
        redeem(&b, &bare, SessionId::new(), when).await,
        Redemption::Fresh(Box::new(bare_grant))
    );
    assert!(!was_replayed(&b, &bare).await);
}

pub async fn concurrent_redemptions_of_one_code_have_exactly_one_fresh(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (signin, _) = sign_in(&b, &alice, at).await;
    for round in 0..5 {
        let (code, grant) = code(&alice, &signin, ClientId::new(), at);
        b.repos.codes.insert(&grant).await.unwrap();
        let attempts = (0..8).map(|_| {
            let codes = Arc::clone(&b.repos.codes);
            let hash = code.hash();
            tokio::spawn(async move {
                let session = SessionId::new();
                let redemption = codes.redeem(&hash, session, at).await.unwrap();
                (session, redemption)
            })
        });
        let outcomes: Vec<(SessionId, Redemption)> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let fresh: Vec<SessionId> = (outcomes.iter())
            .filter(|(_, r)| matches!(r, Redemption::Fresh(g) if **g == grant))
            .map(|(session, _)| *session)
            .collect();
        assert_eq!(fresh.len(), 1, "round {round}: {outcomes:?}");
        let replays = (outcomes.iter())
            .filter(|(_, r)| {
                *r == Redemption::Replayed {
                    session_id: fresh[0],
                }
            })
            .count();
        assert_eq!(replays, 7, "round {round}: {outcomes:?}");
        assert!(was_replayed(&b, &code).await);
    }
}

pub async fn expired_codes_are_unknown_unless_they_were_used(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (signin, _) = sign_in(&b, &alice, at).await;
    let client = ClientId::new();

    let (unused, grant) = code(&alice, &signin, client, at);
    b.repos.codes.insert(&grant).await.unwrap();
    let expiry = grant.expires_at;
    assert_eq!(
        redeem(&b, &unused, SessionId::new(), expiry).await,
        Redemption::Unknown,
        "a code is dead at its expiry"
    );
    assert!(!was_replayed(&b, &unused).await);
    // The late attempt did not use it up: the code is still redeemable before its expiry.
    let first = SessionId::new();
    let before = expiry - Duration::microseconds(1);
    assert_eq!(
        redeem(&b, &unused, first, before).await,
        Redemption::Fresh(Box::new(grant))
    );
    assert_eq!(
        redeem(&b, &unused, SessionId::new(), expiry + Duration::hours(1)).await,
        Redemption::Replayed { session_id: first },
        "a used code stays a replay after its expiry"
    );
    assert!(was_replayed(&b, &unused).await);

    let never = AuthorizationCode::generate();
    assert_eq!(
        redeem(&b, &never, SessionId::new(), at).await,
        Redemption::Unknown
    );
    assert!(!was_replayed(&b, &never).await);
}

pub async fn the_purge_removes_codes_expired_before_the_revocation_cutoff(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let day = Duration::days(1);
    let (signin, _) = sign_in(&b, &alice, at).await;
    let client = ClientId::new();
    // Issued 2 days ago (expired long ago, used), 12 hours ago (expired lately, used), and now.
    let (old, old_grant) = code(&alice, &signin, client, at - day * 2);
    let (late, late_grant) = code(&alice, &signin, client, at - Duration::hours(12));
    let (fresh, fresh_grant) = code(&alice, &signin, client, at);
    for grant in [&old_grant, &late_grant, &fresh_grant] {
        b.repos.codes.insert(grant).await.unwrap();
    }
    let (old_session, late_session) = (SessionId::new(), SessionId::new());
    assert!(matches!(
        redeem(&b, &old, old_session, old_grant.created_at).await,
        Redemption::Fresh(_)
    ));
    assert!(matches!(
        redeem(&b, &late, late_session, late_grant.created_at).await,
        Redemption::Fresh(_)
    ));
    let cutoffs = PurgeCutoffs {
        now: at,
        revoked_before: at - day,
        audit_before: at - day * 90,
        throttle_before: at - day,
    };
    assert_eq!((b.repos.purge).purge(&cutoffs).await.unwrap(), 1);
    assert_eq!(
        redeem(&b, &old, SessionId::new(), at).await,
        Redemption::Unknown,
        "purged"
    );
    assert_eq!(
        redeem(&b, &late, SessionId::new(), at).await,
        Redemption::Replayed {
            session_id: late_session
        },
        "kept: a late replay still names the session it started"
    );
    assert_eq!(
        redeem(&b, &fresh, SessionId::new(), at).await,
        Redemption::Fresh(Box::new(fresh_grant))
    );
    assert_eq!((b.repos.purge).purge(&cutoffs).await.unwrap(), 0);
}

pub async fn a_browser_signin_is_found_by_its_cookie_until_it_ends(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let at = now();
    let tokens = &b.repos.tokens;

    let (signin, cookie) = sign_in(&b, &alice, at).await;
    assert_eq!(
        find_signin(&b, &cookie, at).await,
        Some((signin.clone(), Arc::new(alice.clone())))
    );
    assert_eq!(signin.client_id, None);
    assert!(signin.oidc.is_empty());
    assert!(find_signin(&b, &SigninToken::generate(), at)
        .await
        .is_none());
    assert!(
        find_signin(&b, &cookie, signin.expires_at).await.is_none(),
        "expired"
    );
    // The session is an ordinary one otherwise: live for its user.
    assert!(live(&b, &alice, &signin, at).await);

    // Two sign-ins, each found by its own cookie; ending one leaves the other.
    let (second, second_cookie) = sign_in(&b, &alice, at).await;
    let (bobs, bobs_cookie) = sign_in(&b, &bob, at).await;
    assert_eq!(
        find_signin(&b, &second_cookie, at).await.map(|(s, _)| s),
        Some(second.clone())
    );
    assert!(tokens
        .revoke_session(signin.id, RevocationReason::Logout, at)
        .await
        .unwrap());
    assert!(find_signin(&b, &cookie, at).await.is_none(), "logged out");
    assert!(find_signin(&b, &second_cookie, at).await.is_some());

    // A cookie hash names one sign-in: a second with the same hash is refused.
    let clash = try_start(&b, spec(&alice, at), Some(&second_cookie)).await;
    assert!(matches!(clash, Err(StoreError::Other(_))), "{clash:?}");
    assert_eq!(
        find_signin(&b, &second_cookie, at).await.map(|(s, _)| s.id),
        Some(second.id)
    );

    // Revoking every session of the user (the password-change path) ends it; another user's
    // sign-in stays.
    tokens
        .revoke_user_sessions(alice.id, None, RevocationReason::PasswordChanged, at)
        .await
        .unwrap();
    assert!(find_signin(&b, &second_cookie, at).await.is_none());
    assert_eq!(
        find_signin(&b, &bobs_cookie, at).await.map(|(s, _)| s),
        Some(bobs)
    );

    // So does a password change that keeps another session.
    let (third, third_cookie) = sign_in(&b, &alice, at).await;
    let (kept, _) = start(&b, spec(&alice, at)).await;
    let revoked = (b.repos.users)
        .change_password(alice.id, &alice.password_hash, Some(kept.id), at)
        .await
        .unwrap();
    assert_eq!(revoked, Some(1));
    assert!(find_signin(&b, &third_cookie, at).await.is_none());
    assert!(!live(&b, &alice, &third, at).await);

    // Disabling the user ends theirs.
    let (_, bobs_second) = sign_in(&b, &bob, at).await;
    let disable = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    b.repos
        .users
        .update_fields(bob.id, &disable, at)
        .await
        .unwrap()
        .unwrap();
    assert!(find_signin(&b, &bobs_cookie, at).await.is_none());
    assert!(find_signin(&b, &bobs_second, at).await.is_none());
}

pub async fn only_a_live_refresh_token_is_found(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let tokens = &b.repos.tokens;
    let find = |token: &RefreshToken, when: DateTime<Utc>| {
        let hash = token.hash();
        async move { tokens.find_live_refresh_token(&hash, when).await.unwrap() }
    };

    let (session, token) = start(&b, spec(&alice, at)).await;
    let live_token = find(&token, at).await.expect("a live token");
    assert_eq!(live_token.session, session);
    assert_eq!(*live_token.user, alice);
    assert_eq!(live_token.created_at, at);
    assert_eq!(live_token.expires_at, session.expires_at);
    assert!(find(&token, session.expires_at).await.is_none(), "expired");
    assert!(find(&RefreshToken::generate(), at).await.is_none());

    // Rotated: the old token is used, the new one is live with its own times.
    let next = RefreshToken::generate();
    let later = at + Duration::days(1);
    let RotationOutcome::Rotated {
        session: rotated, ..
    } = rotate(
        &b,
        &token.hash(),
        &next.hash(),
        later + Duration::days(14),
        later,
    )
    .await
    else {
        panic!("the token should rotate");
    };
    assert!(find(&token, later).await.is_none(), "used");
    let live_next = find(&next, later).await.expect("the replacement is live");
    assert_eq!(live_next.session, rotated);
    assert_eq!(live_next.created_at, later);
    assert_eq!(live_next.expires_at, later + Duration::days(14));
    // Finding it rotated nothing: it still rotates once.
    assert!(matches!(
        rotate(
            &b,
            &next.hash(),
            &RefreshToken::generate().hash(),
            later,
            later
        )
        .await,
        RotationOutcome::Rotated { .. }
    ));
    assert!(find(&next, later).await.is_none());

    let (revoked, revoked_token) = start(&b, spec(&alice, at)).await;
    assert!(find(&revoked_token, at).await.is_some());
    tokens
        .revoke_session(revoked.id, RevocationReason::Logout, at)
        .await
        .unwrap();
    assert!(find(&revoked_token, at).await.is_none(), "session revoked");

    // A session started from a sign-in dies with it.
    let (signin, _) = sign_in(&b, &alice, at).await;
    let (_, child_token) = start(
        &b,
        Spec {
            parent: Some(signin.id),
            ..spec(&alice, at)
        },
    )
    .await;
    assert!(find(&child_token, at).await.is_some());
    tokens
        .revoke_session(signin.id, RevocationReason::Logout, at)
        .await
        .unwrap();
    assert!(find(&child_token, at).await.is_none(), "parent ended");

    let (_, disabled_token) = start(&b, spec(&alice, at)).await;
    assert!(find(&disabled_token, at).await.is_some());
    let disable = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    (b.repos.users)
        .update_fields(alice.id, &disable, at)
        .await
        .unwrap()
        .unwrap();
    assert!(find(&disabled_token, at).await.is_none(), "user disabled");
}

pub async fn a_sessions_openid_scope_and_client_survive_storage_and_rotation(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let client = ClientId::new();
    let (session, token) = start(
        &b,
        Spec {
            client_id: Some(client),
            oidc: code_flow_scopes(),
            ..spec(&alice, at)
        },
    )
    .await;
    let found = (b.repos.tokens)
        .find_live_refresh_token(&token.hash(), at)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(found.session.oidc, code_flow_scopes());
    assert_eq!(found.session.client_id, Some(client));
    assert_eq!(found.session.scope, Roles::new([Role::User]));
    assert_eq!(found.session, session);

    let next = RefreshToken::generate();
    let outcome = rotate(&b, &token.hash(), &next.hash(), at + Duration::days(14), at).await;
    let RotationOutcome::Rotated {
        session: rotated, ..
    } = outcome
    else {
        panic!("expected a rotation, got {outcome:?}");
    };
    assert_eq!(rotated.oidc, code_flow_scopes());
    assert_eq!(rotated.client_id, Some(client));
    assert_eq!(rotated.scope, Roles::new([Role::User]));

    // A session started from it names no client and inherits this one's.
    let (child, child_token) = start(
        &b,
        Spec {
            parent: Some(session.id),
            ..spec(&alice, at)
        },
    )
    .await;
    let found = (b.repos.tokens)
        .find_live_refresh_token(&child_token.hash(), at)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(found.session.id, child.id);
    assert_eq!(found.session.client_id, Some(client));
    assert_eq!(found.session.parent_id, Some(session.id));
    assert!(found.session.oidc.is_empty());

    // The code flow's session: started from a sign-in (which has no client) for the code's
    // client, it keeps that client.
    let (signin, _) = sign_in(&b, &alice, at).await;
    let other = ClientId::new();
    let (flow, flow_token) = start(
        &b,
        Spec {
            parent: Some(signin.id),
            client_id: Some(other),
            oidc: code_flow_scopes(),
            ..spec(&alice, at)
        },
    )
    .await;
    let found = (b.repos.tokens)
        .find_live_refresh_token(&flow_token.hash(), at)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(found.session, flow);
    assert_eq!(found.session.client_id, Some(other));
    assert_eq!(found.session.oidc, code_flow_scopes());
}

/// The per-user session cap (100 here) revokes the oldest sessions beyond it, but never a
/// browser sign-in, and sign-ins take no place under it: the code flow's sessions are the
/// sign-in's children, so revoking the oldest sign-in would end every app the user signed in to.
pub async fn the_session_cap_neither_counts_nor_revokes_browser_signins(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (signin, cookie) = sign_in(&b, &alice, at).await;
    let (_, second) = sign_in(&b, &alice, at + Duration::microseconds(1)).await;
    let mut sessions = Vec::new();
    for i in 0..101 {
        let mut spec = spec(&alice, at + Duration::milliseconds(i + 1));
        spec.parent = Some(signin.id);
        sessions.push(start(&b, spec).await.0);
    }
    let later = at + Duration::seconds(1);
    assert!(
        find_signin(&b, &cookie, later).await.is_some(),
        "the oldest sign-in stays"
    );
    assert!(find_signin(&b, &second, later).await.is_some());
    let live = |s: &Session| {
        let (users, s) = (b.repos.users.clone(), s.clone());
        async move {
            users
                .find_active_by_session(s.user_id, s.id, later)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(
        !live(&sessions[0]).await,
        "the oldest session beyond the cap goes"
    );
    for session in &sessions[1..] {
        assert!(live(session).await, "100 sessions stay beside two sign-ins");
    }
}

/// Ending a session ends every session started from it at any depth: a browser sign-in, the
/// code-flow session under it, and a session minted from that one with `POST
/// /auth/refresh-token` all end with the sign-in.
pub async fn ending_a_session_ends_its_descendants_at_every_depth(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (signin, cookie) = sign_in(&b, &alice, at).await;
    let mut child = spec(&alice, at + Duration::milliseconds(1));
    child.parent = Some(signin.id);
    let (child, _) = start(&b, child).await;
    let mut grandchild = spec(&alice, at + Duration::milliseconds(2));
    grandchild.parent = Some(child.id);
    let (grandchild, _) = start(&b, grandchild).await;
    let mut great = spec(&alice, at + Duration::milliseconds(3));
    great.parent = Some(grandchild.id);
    let (great, _) = start(&b, great).await;
    let later = at + Duration::seconds(1);
    let live = |s: &Session| {
        let (users, s) = (b.repos.users.clone(), s.clone());
        async move {
            users
                .find_active_by_session(s.user_id, s.id, later)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(live(&great).await);
    assert!(b
        .repos
        .tokens
        .revoke_session(signin.id, RevocationReason::Logout, later)
        .await
        .unwrap());
    assert!(find_signin(&b, &cookie, later).await.is_none());
    for session in [&child, &grandchild, &great] {
        assert!(!live(session).await, "a descendant outlived the sign-in");
    }
}
