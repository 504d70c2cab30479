//! Sessions and the account: the refresh retry after a lost response, the user's session list,
//! ending one session, and deleting an account (by its user and by an admin).

use chrono::Duration;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const GRACE: &[(&str, &str)] = &[("REFRESH_REUSE_GRACE_SECONDS", "30")];

impl TestApp {
    async fn delete(&self, path: &str, token: Option<&str>, body: Option<&Value>) -> Response {
        let mut request = self.client.delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    async fn sessions(&self, access: &str) -> Vec<Value> {
        let body = self.get_json("/users/me/sessions", access).await;
        body["items"].as_array().unwrap().clone()
    }

    /// Logs in with a `User-Agent` of `agent`.
    async fn tokens_as(&self, username: &str, agent: &str) -> Tokens {
        let body = form(&[("username", username), ("password", PASSWORD)]);
        let response = self
            .client
            .post(self.url("/auth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", agent)
            .body(body)
            .send()
            .await
            .unwrap();
        tokens_of(response).await
    }
}

/// Presents `refresh` 20 times at once, half on each refresh endpoint; every answer must be a
/// token response, and the refresh tokens handed out are returned.
async fn twenty_at_once(app: &TestApp, refresh: &str) -> Vec<Tokens> {
    let attempts = (0..20).map(|i| async move {
        if i % 2 == 0 {
            app.refresh_grant(refresh).await
        } else {
            app.post_json("/auth/refresh", &json!({"refresh_token": refresh}))
                .await
        }
    });
    let mut tokens = Vec::new();
    for response in futures::future::join_all(attempts).await {
        tokens.push(tokens_of(response).await);
    }
    tokens
}

#[tokio::test]
async fn twenty_parallel_retries_within_the_window_all_get_the_same_successor() {
    let app = spawn_app_with(GRACE).await;
    let first = app.user_with_tokens("alice").await;
    // The first presentations race each other (one rotates, the others are retries)...
    let answers = twenty_at_once(&app, &first.refresh).await;
    let successor = answers[0].refresh.clone();
    assert_ne!(successor, first.refresh);
    for answer in &answers {
        assert_eq!(answer.refresh, successor);
        app.assert_signed_in(&answer.access).await;
    }
    // ... and 20 more, after the rotation committed, within the window.
    app.clock.advance(Duration::seconds(29));
    for answer in twenty_at_once(&app, &first.refresh).await {
        assert_eq!(answer.refresh, successor);
        let (_, claims) = jwt_parts(&answer.access);
        let (_, original) = jwt_parts(&first.access);
        assert_eq!(claims["sid"], original["sid"]);
    }
    // The successor rotates as usual; after that, the old token is theft again.
    let next = tokens_of(app.refresh_grant(&successor).await).await;
    app.assert_refresh_refused(&first.refresh).await;
    assert_invalid_token(app.get("/users/me", Some(&next.access)).await).await;
    app.assert_refresh_refused(&next.refresh).await;
}

#[tokio::test]
async fn a_retry_may_land_on_another_replica() {
    let app = spawn_app_with(GRACE).await;
    let replica = app.sibling(GRACE).await;
    let first = app.user_with_tokens("alice").await;
    let rotated = tokens_of(app.refresh_grant(&first.refresh).await).await;
    let retried = tokens_of(replica.refresh_grant(&first.refresh).await).await;
    assert_eq!(retried.refresh, rotated.refresh);
    replica.assert_signed_in(&retried.access).await;
    app.assert_signed_in(&rotated.access).await;
}

#[tokio::test]
async fn a_retry_outside_the_window_revokes_the_session() {
    let app = spawn_app_with(GRACE).await;
    let first = app.user_with_tokens("alice").await;
    let second = tokens_of(app.refresh_grant(&first.refresh).await).await;
    app.clock.advance(Duration::seconds(31));
    app.assert_refresh_refused(&first.refresh).await;
    app.assert_session_ended(&second).await;
}

#[tokio::test]
async fn without_the_window_a_retry_is_theft_as_before() {
    let app = spawn_app().await;
    let first = app.user_with_tokens("alice").await;
    let second = tokens_of(app.refresh_grant(&first.refresh).await).await;
    app.assert_refresh_refused(&first.refresh).await;
    app.assert_session_ended(&second).await;
}

#[tokio::test]
async fn the_session_list_shows_where_and_when_each_live_session_was_used() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let laptop = app
        .tokens_as("alice", "Laptop/1.0 (X11; \"quoted\" <b>)")
        .await;
    app.clock.advance(Duration::seconds(5));
    let phone = app.tokens_as("alice", "Phone/2.0").await;
    app.clock.advance(Duration::seconds(5));
    let laptop = tokens_of(app.refresh_grant(&laptop.refresh).await).await;
    let bob = app.user_with_tokens("bob").await;

    let items = app.sessions(&phone.access).await;
    assert_eq!(items.len(), 2, "{items:?}");
    let (newest, oldest) = (&items[0], &items[1]);
    assert_eq!(newest["user_agent"], "Phone/2.0");
    assert_eq!(newest["current"], true);
    assert_eq!(newest["ip"], "127.0.0.1");
    assert_eq!(newest["client_id"], Value::Null);
    assert_eq!(newest["last_used_at"], newest["created_at"]);
    assert_eq!(oldest["user_agent"], "Laptop/1.0 (X11; \"quoted\" <b>)");
    assert_eq!(oldest["current"], false);
    assert_ne!(
        oldest["last_used_at"], oldest["created_at"],
        "a refresh is a use"
    );
    let (_, claims) = jwt_parts(&laptop.access);
    assert_eq!(oldest["id"], claims["sid"]);
    for field in ["created_at", "last_used_at", "expires_at"] {
        let at = newest[field].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{field}: {at}"
        );
    }
    // The laptop sees the same list with itself as current; bob sees only his own.
    let from_laptop = app.sessions(&laptop.access).await;
    assert_eq!(from_laptop[1]["current"], true);
    assert_eq!(app.sessions(&bob.access).await.len(), 1);
    assert_missing_token(app.get("/users/me/sessions", None).await).await;
}

#[tokio::test]
async fn a_user_ends_one_session_and_never_anothers() {
    let app = spawn_app().await;
    let mine = app.user_with_tokens("alice").await;
    let other = app.tokens("alice", PASSWORD).await;
    let bob = app.user_with_tokens("bob").await;
    let sid = |tokens: &Tokens| {
        jwt_parts(&tokens.access).1["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The session cache knows the other session as live before it ends.
    app.assert_signed_in(&other.access).await;

    let path = format!("/users/me/sessions/{}", sid(&other));
    let response = app.delete(&path, Some(&mine.access), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_session_ended(&other).await;
    app.assert_signed_in(&mine.access).await;
    let again = app.delete(&path, Some(&mine.access), None).await;
    assert_problem(again, StatusCode::NOT_FOUND, "session_not_found").await;

    for unknown in [
        sid(&bob),
        uuid::Uuid::now_v7().to_string(),
        "not-a-uuid".into(),
    ] {
        let path = format!("/users/me/sessions/{unknown}");
        let response = app.delete(&path, Some(&mine.access), None).await;
        assert_problem(response, StatusCode::NOT_FOUND, "session_not_found").await;
    }
    app.assert_signed_in(&bob.access).await;
    assert_missing_token(app.delete(&path, None, None).await).await;

    // Ending the current session is a logout.
    let path = format!("/users/me/sessions/{}", sid(&mine));
    let response = app.delete(&path, Some(&mine.access), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_session_ended(&mine).await;
}

#[tokio::test]
async fn a_user_deletes_their_account_and_the_name_and_address_are_free_again() {
    let app = spawn_app().await;
    let registration =
        json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com"});
    let created = app.post_json("/users", &registration).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let old_id = created.json::<Value>().await.unwrap()["id"].clone();
    let tokens = app.tokens("alice", PASSWORD).await;
    let minted = app.post_bearer("/auth/refresh-token", &tokens.access).await;
    assert_eq!(minted.status(), StatusCode::CREATED);
    app.assert_signed_in(&tokens.access).await;

    let missing = app
        .delete("/users/me", Some(&tokens.access), Some(&json!({})))
        .await;
    assert_validation_failed(missing).await;
    let wrong = json!({"password": "not the password"});
    let response = app
        .delete("/users/me", Some(&tokens.access), Some(&wrong))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "wrong_password").await;
    app.assert_signed_in(&tokens.access).await;

    let right = json!({"password": PASSWORD});
    let response = app
        .delete("/users/me", Some(&tokens.access), Some(&right))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_session_ended(&tokens).await;
    let login = app.login("alice", PASSWORD).await;
    assert_oauth_error(login, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let again = app.post_json("/users", &registration).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_ne!(again.json::<Value>().await.unwrap()["id"], old_id);

    // The audit trail keeps the old id, without name, address or user agent.
    let admin = app.admin_with_tokens("root").await;
    let path = format!("/admin/audit-events?user_id={}", old_id.as_str().unwrap());
    let events = app.get_json(&path, &admin.access).await["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(events[0]["event"], "account_deleted");
    for event in &events {
        assert_eq!(event["username"], Value::Null, "{event}");
        assert_eq!(event["ip"], Value::Null, "{event}");
        assert_eq!(event["user_agent"], Value::Null, "{event}");
        assert!(!event.to_string().contains("alice"), "{event}");
    }
}

#[tokio::test]
async fn a_user_with_a_second_factor_deletes_only_with_a_right_code() {
    let app = spawn_app().await;
    let (tokens, authenticator, codes) = app.user_with_totp("alice").await;
    // The password alone, or with a wrong code, is refused; the account stays.
    for body in [
        json!({"password": PASSWORD}),
        json!({"password": PASSWORD, "otp": "000000"}),
        json!({"password": PASSWORD, "otp": "zzzz-zzzz-zzzz-zzzz"}),
    ] {
        let response = app
            .delete("/users/me", Some(&tokens.access), Some(&body))
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "wrong_otp").await;
        app.assert_signed_in(&tokens.access).await;
    }
    // A wrong password with a right code is still a wrong password (and uses no code up).
    let code = authenticator.code(&app, 0);
    let body = json!({"password": "not the password", "otp": code});
    let response = app
        .delete("/users/me", Some(&tokens.access), Some(&body))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "wrong_password").await;
    // A recovery code deletes the account.
    let body = json!({"password": PASSWORD, "otp": codes[0]});
    let response = app
        .delete("/users/me", Some(&tokens.access), Some(&body))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(app.get("/users/me", Some(&tokens.access)).await).await;
}

#[tokio::test]
async fn wrong_passwords_of_a_deletion_lock_the_account_like_failed_logins() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let wrong = json!({"password": "not the password"});
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = app
            .delete("/users/me", Some(&tokens.access), Some(&wrong))
            .await;
        statuses.push(response.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn an_admin_deletes_a_user_but_never_the_last_admin() {
    let app = spawn_app().await;
    let root = app.admin_with_tokens("root").await;
    let bob = app.user_with_tokens("bob").await;
    let bob_id = app.user_id(&bob).await;
    let root_id = app.user_id(&root).await;
    app.assert_signed_in(&bob.access).await;

    assert_forbidden(
        app.delete(&format!("/users/{root_id}"), Some(&bob.access), None)
            .await,
    )
    .await;
    let last = app
        .delete(&format!("/users/{root_id}"), Some(&root.access), None)
        .await;
    assert_problem(last, StatusCode::CONFLICT, "last_admin").await;
    let by_self = app
        .delete(
            "/users/me",
            Some(&root.access),
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_problem(by_self, StatusCode::CONFLICT, "last_admin").await;

    let path = format!("/users/{bob_id}");
    let response = app.delete(&path, Some(&root.access), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_session_ended(&bob).await;
    for gone in [path, "/users/not-a-uuid".into()] {
        let response = app.delete(&gone, Some(&root.access), None).await;
        assert_problem(response, StatusCode::NOT_FOUND, "user_not_found").await;
    }
    let get = app
        .get(&format!("/users/{bob_id}"), Some(&root.access))
        .await;
    assert_problem(get, StatusCode::NOT_FOUND, "user_not_found").await;

    // With a second admin, an admin may delete themself.
    app.admin_with_tokens("second").await;
    let response = app
        .delete(&format!("/users/{root_id}"), Some(&root.access), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_session_ended(&root).await;
}

#[tokio::test]
async fn browser_sign_ins_and_client_sessions_are_listed_and_retries_keep_the_client_check() {
    use crate::oidc::{
        auth_query, exchange_confidential, exchange_public, redirected_with_code, token_request,
        world_with, Browser,
    };
    let w = world_with(GRACE).await;
    let mut browser = Browser::new(&w.app);
    let (code, _) = browser
        .sign_in_for_code(&auth_query(&w.public.id, &[]), "alice")
        .await;
    let body: Value = exchange_public(&w, &code).await.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let items = w.app.sessions(access).await;
    assert_eq!(items.len(), 2, "{items:?}");
    let (client, sign_in) = (&items[0], &items[1]);
    assert_eq!(client["client_id"], w.public.id.as_str());
    assert_eq!(client["current"], true);
    assert_eq!(sign_in["client_id"], Value::Null);
    assert_eq!(sign_in["current"], false);
    assert_eq!(sign_in["ip"], "127.0.0.1");

    // A retry at the token endpoint, by the session's (confidential) client, gets the same
    // successor...
    // (The browser is signed in already: the authorization request redirects at once.)
    let query = auth_query(&w.confidential.id, &[]);
    let (code, _) = redirected_with_code(browser.get(&format!("/auth/authorize?{query}")).await);
    let body: Value = exchange_confidential(&w, &code).await.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let basic = Some((w.confidential.id.as_str(), w.confidential.secret()));
    let first = tokens_of(token_request(&w.app, &pairs, basic).await).await;
    let again = tokens_of(token_request(&w.app, &pairs, basic).await).await;
    assert_eq!(first.refresh, again.refresh);
    // ... but presented without its authentication, it is stolen: the session is revoked.
    let response = token_request(&w.app, &pairs, None).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_invalid_token(w.app.get("/users/me", Some(&again.access)).await).await;

    // Ending the sign-in from the list ends it; the offline-less client session with it.
    let alice = w.app.tokens("alice", PASSWORD).await;
    let signins = w.app.sessions(&alice.access).await;
    let sign_in = signins
        .iter()
        .find(|s| s["client_id"].is_null() && s["current"] == false);
    let path = format!(
        "/users/me/sessions/{}",
        sign_in.unwrap()["id"].as_str().unwrap()
    );
    let response = w.app.delete(&path, Some(&alice.access), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(w.app.sessions(&alice.access).await.len(), 1);
}
