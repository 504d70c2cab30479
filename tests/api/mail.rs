//! Mail and account recovery over HTTP, with a real SMTP server (the test's sink): e-mail
//! verification and password reset end to end, the hosted reset page, the per-address limit,
//! used and expired tokens, an SMTP outage, and two replicas sending each mail once.

use std::time::Duration;

use chrono::Duration as Span;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::support::smtp::{Received, SmtpSink};

const WAIT: Duration = Duration::from_secs(15);

/// An app whose mail goes to `sink`, with retries 200 ms apart at first.
async fn app_with_sink(sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut overrides = vec![("SMTP_URL", url.as_str()), ("MAIL_RETRY_BASE_MS", "200")];
    overrides.extend_from_slice(extra);
    spawn_app_with(&overrides).await
}

/// Registers `username` with `email` and logs in.
async fn user_with_email(app: &TestApp, username: &str, email: &str) -> Tokens {
    let response = app
        .post_json(
            "/users",
            &json!({"username": username, "password": PASSWORD, "email": email}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.tokens(username, PASSWORD).await
}

async fn me(app: &TestApp, tokens: &Tokens) -> Value {
    app.get_json("/users/me", &tokens.access).await
}

async fn request_reset(app: &TestApp, body: Value) {
    let response = app.post_json("/auth/password-reset", &body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// The token of the link to `path` in `mail`, checking that the link starts at the issuer.
fn link_token(app: &TestApp, mail: &Received, path: &str) -> String {
    let issuer = &app.settings.tokens.issuer;
    let text = mail.decoded();
    assert!(
        text.contains(&format!("{issuer}{path}?token=")),
        "the link points at the issuer"
    );
    let token = mail.token_for(path).expect("a link with a token");
    assert!(token.len() >= 43, "at least 256 bits, base64url");
    token
}

/// Which mails the test sink got for `address`.
fn mails_to(sink: &SmtpSink, address: &str) -> Vec<Received> {
    sink.received()
        .into_iter()
        .filter(|m| m.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
        .collect()
}

#[tokio::test]
async fn verification_mail_arrives_its_token_works_once_and_an_address_change_resets_the_flag() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let tokens = user_with_email(&app, "vera", "vera@example.com").await;
    assert_eq!(me(&app, &tokens).await["email_verified"], false);

    let response = app
        .post_bearer("/users/me/email/verify", &tokens.access)
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, vec!["vera@example.com".to_owned()]);
    assert!(mail.data.contains("multipart/alternative"));
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));
    let message_id = mail.header("Message-ID").expect("a Message-ID");
    let token = link_token(&app, &mail, "/auth/email/verify");

    // The link's page only shows a button (mail scanners open links).
    let page = app
        .get(&format!("/auth/email/verify?token={token}"), None)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(me(&app, &tokens).await["email_verified"], false);

    let verify = json!({ "token": token });
    let response = app.post_json("/auth/email/verify", &verify).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &tokens).await["email_verified"], true);
    let again = app.post_json("/auth/email/verify", &verify).await;
    assert_problem(again, StatusCode::BAD_REQUEST, "invalid_verification_token").await;
    let response = app
        .post_bearer("/users/me/email/verify", &tokens.access)
        .await;
    assert_problem(response, StatusCode::CONFLICT, "email_already_verified").await;

    // An admin changes the address: not verified any more, and a token sent to the old
    // address does not verify the new one.
    let admin = app.admin_with_tokens("root").await;
    let id = app.user_id(&tokens).await;
    let change = json!({"email": "vera@example.org"});
    let response = app.patch_user(&admin.access, &id, &change).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(me(&app, &tokens).await["email_verified"], false);
    let response = app
        .post_bearer("/users/me/email/verify", &tokens.access)
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = sink.wait_for(2, WAIT).await.remove(1);
    assert_eq!(mail.to, vec!["vera@example.org".to_owned()]);
    assert_ne!(mail.header("Message-ID").unwrap(), message_id);
    let token = link_token(&app, &mail, "/auth/email/verify");
    let change = json!({"email": "vera@example.net"});
    let response = app.patch_user(&admin.access, &id, &change).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .post_json("/auth/email/verify", &json!({ "token": token }))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "email_changed").await;
    assert_eq!(me(&app, &tokens).await["email_verified"], false);
}

#[tokio::test]
async fn verification_needs_an_address_and_refuses_unknown_tokens() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let tokens = app.user_with_tokens("noaddress").await;
    let response = app
        .post_bearer("/users/me/email/verify", &tokens.access)
        .await;
    assert_problem(response, StatusCode::CONFLICT, "email_missing").await;
    let response = app
        .client
        .post(app.url("/users/me/email/verify"))
        .send()
        .await
        .unwrap();
    assert_missing_token(response).await;
    for token in ["", "x", &"A".repeat(43), &"é".repeat(10_000)] {
        let response = app
            .post_json("/auth/email/verify", &json!({ "token": token }))
            .await;
        assert_problem(
            response,
            StatusCode::BAD_REQUEST,
            "invalid_verification_token",
        )
        .await;
    }
    let response = app.post_json("/auth/email/verify", &json!({})).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_reset_on_the_hosted_page_sets_the_password_and_ends_every_session() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let first = user_with_email(&app, "rita", "Rita@Example.com").await;
    let second = app.tokens("rita", PASSWORD).await;

    // The address is matched regardless of case; the mail goes to the stored one.
    request_reset(&app, json!({"email": "rita@example.COM"})).await;
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, vec!["Rita@Example.com".to_owned()]);
    let token = link_token(&app, &mail, "/auth/password-reset");

    let page = app
        .get(&format!("/auth/password-reset?token={token}"), None)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = header_text(&page, "set-cookie").to_owned();
    let csrf_cookie = cookie.split(';').next().unwrap().to_owned();
    let csrf = csrf_cookie.split_once('=').unwrap().1.to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains("action=\"/auth/password-reset/form\""));
    assert!(html.contains(&format!("name=\"csrf\" value=\"{csrf}\"")));

    let post = |fields: Vec<(&'static str, String)>, with_cookie: bool| {
        let mut request = app
            .client
            .post(app.url("/auth/password-reset/form"))
            .header("content-type", "application/x-www-form-urlencoded");
        if with_cookie {
            request = request.header("cookie", csrf_cookie.clone());
        }
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request.body(form(&pairs)).send()
    };
    let new_password = "a brand new passphrase";
    let fields = |password: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("token", token.clone()),
            ("new_password", password.to_owned()),
        ]
    };
    // Without the cookie (a cross-site post): refused, nothing changed.
    let response = post(fields(new_password), false).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A password that breaks the rules: the form again, the token still good.
    let response = post(fields("short"), true).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("role=\"alert\"") && page.contains("new_password"));
    app.assert_signed_in(&first.access).await;

    let response = post(fields(new_password), true).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Password changed"));

    app.assert_session_ended(&first).await;
    app.assert_session_ended(&second).await;
    assert_oauth_error(
        app.login("rita", PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    app.tokens("rita", new_password).await;

    // Used: the page and the API refuse it.
    let page = app
        .get(&format!("/auth/password-reset?token={token}"), None)
        .await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    let response = app
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "yet another passphrase"}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_reset_token").await;
}

#[tokio::test]
async fn unknown_and_inactive_accounts_get_the_same_202_and_no_mail() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let known = user_with_email(&app, "known", "known@example.com").await;
    let admin = app.admin_with_tokens("root").await;
    user_with_email(&app, "inactive", "inactive@example.com").await;
    let id = app
        .stored_text(
            "SELECT CAST(id AS TEXT) FROM users WHERE username = $1",
            "inactive",
        )
        .await
        .unwrap();
    let response = app
        .patch_user(&admin.access, &id, &json!({"is_active": false}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    for body in [
        json!({"email": "nobody@example.com"}),
        json!({"username": "nobody"}),
        json!({"username": "x".repeat(500)}),
        json!({"email": "inactive@example.com"}),
        json!({"username": "known"}),
    ] {
        request_reset(&app, body).await;
    }
    sink.wait_for(1, WAIT).await;
    // Give the others time to arrive if they were (wrongly) sent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = sink.received();
    assert_eq!(mails.len(), 1, "only the known, active account gets a mail");
    assert_eq!(mails[0].to, vec!["known@example.com".to_owned()]);
    app.assert_signed_in(&known.access).await;

    for body in [
        json!({}),
        json!({"email": "a@b.c", "username": "a"}),
        json!({"email": "not an address"}),
    ] {
        let response = app.post_json("/auth/password-reset", &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_address_gets_at_most_the_configured_mails_an_hour() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[("MAIL_PER_ADDRESS_PER_HOUR", "2")]).await;
    user_with_email(&app, "limited", "limited@example.com").await;
    for _ in 0..5 {
        request_reset(&app, json!({"username": "limited"})).await;
    }
    sink.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mails_to(&sink, "limited@example.com").len(), 2);
    // Only the newest token works: a new request replaces the unused ones.
    let mails = sink.received();
    let older = mails[0].token_for("/auth/password-reset").unwrap();
    let newer = mails[1].token_for("/auth/password-reset").unwrap();
    let app = &app;
    let confirm = |token: String| async move {
        let body = json!({"token": token, "new_password": "a brand new passphrase"});
        app.post_json("/auth/password-reset/confirm", &body)
            .await
            .status()
    };
    // Exactly one of the two works: the second request's token replaced the first's.
    let (a, b) = (confirm(older).await, confirm(newer).await);
    assert_eq!(
        [a, b]
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count(),
        1,
        "{a} {b}"
    );
    // An hour later the address may get mail again.
    app.clock.advance(Span::minutes(61));
    request_reset(app, json!({"username": "limited"})).await;
    sink.wait_for(3, WAIT).await;
}

#[tokio::test]
async fn a_reset_unlocks_an_account_locked_by_failed_logins() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[("LOGIN_MAX_FAILURES", "2")]).await;
    user_with_email(&app, "locked", "locked@example.com").await;
    for _ in 0..2 {
        app.login("locked", "not the password").await;
    }
    let refused = app.login("locked", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    request_reset(&app, json!({"username": "locked"})).await;
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    let token = link_token(&app, &mail, "/auth/password-reset");
    let new_password = "a brand new passphrase";
    let response = app
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": new_password}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.tokens("locked", new_password).await;
}

#[tokio::test]
async fn reset_tokens_expire_after_30_minutes() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    user_with_email(&app, "late", "late@example.com").await;
    request_reset(&app, json!({"username": "late"})).await;
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    let token = link_token(&app, &mail, "/auth/password-reset");
    app.clock.advance(Span::minutes(31));
    let page = app
        .get(&format!("/auth/password-reset?token={token}"), None)
        .await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    let response = app
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_reset_token").await;
    app.tokens("late", PASSWORD).await;
}

#[tokio::test]
async fn of_concurrent_confirmations_of_one_token_exactly_one_wins() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    user_with_email(&app, "racer", "racer@example.com").await;
    request_reset(&app, json!({"email": "racer@example.com"})).await;
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    let token = link_token(&app, &mail, "/auth/password-reset");
    let attempts = (0..8).map(|i| {
        let body = json!({"token": token, "new_password": format!("racing passphrase {i}")});
        let request = app
            .client
            .post(app.url("/auth/password-reset/confirm"))
            .json(&body)
            .send();
        async move { (i, request.await.unwrap().status()) }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, s)| *s == StatusCode::NO_CONTENT)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results
        .iter()
        .all(|(_, s)| *s == StatusCode::NO_CONTENT || *s == StatusCode::BAD_REQUEST));
    app.tokens("racer", &format!("racing passphrase {}", winners[0].0))
        .await;
}

#[tokio::test]
async fn a_mail_queued_while_the_smtp_server_is_down_arrives_when_it_is_back() {
    let mut sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    user_with_email(&app, "patient", "patient@example.com").await;
    sink.stop();
    request_reset(&app, json!({"username": "patient"})).await;
    // The first attempt fails and is counted; the mail stays queued.
    let mut failed = false;
    for _ in 0..100 {
        let attempts = app
            .stored_text(
                "SELECT CAST(attempts AS TEXT) FROM mail_outbox WHERE recipient_key = $1",
                "patient@example.com",
            )
            .await;
        if attempts.is_some_and(|a| a != "0") {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed, "the worker tried and failed");
    assert!(sink.received().is_empty());
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("auth_mail_send_failures_total"));

    sink.restart().await;
    // The retry is due after the backoff on the app's clock, which the test moves.
    let deadline = tokio::time::Instant::now() + WAIT;
    while sink.received().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mail never arrived"
        );
        app.clock.advance(Span::seconds(5));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mails = sink.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["patient@example.com".to_owned()]);
    let token = link_token(&app, &mails[0], "/auth/password-reset");
    let response = app
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn two_replicas_on_one_database_send_each_mail_exactly_once() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let overrides = [("SMTP_URL", url.as_str()), ("MAIL_RETRY_BASE_MS", "200")];
    let app = spawn_app_with(&overrides).await;
    let replica = app.sibling(&overrides).await;
    const USERS: usize = 30;
    for i in 0..USERS {
        user_with_email(&app, &format!("twin{i}"), &format!("twin{i}@example.com")).await;
    }
    for i in 0..USERS {
        let node = if i % 2 == 0 { &app } else { &replica };
        request_reset(node, json!({"username": format!("twin{i}")})).await;
    }
    sink.wait_for(USERS, WAIT).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mails = sink.received();
    assert_eq!(mails.len(), USERS, "no mail sent twice");
    let mut ids: Vec<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), USERS);
    for i in 0..USERS {
        assert_eq!(mails_to(&sink, &format!("twin{i}@example.com")).len(), 1);
    }
    // One `mail_sent` event per mail, whichever replica sent it.
    let audit = app
        .stored_text(
            "SELECT CAST(count(*) AS TEXT) FROM audit_events WHERE event = $1",
            "mail_sent",
        )
        .await
        .unwrap();
    assert_eq!(audit, USERS.to_string());
}

#[tokio::test]
async fn every_step_is_audited_without_the_address_or_the_token() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(&sink, &[]).await;
    let tokens = user_with_email(&app, "audited", "audited@example.com").await;
    let response = app
        .post_bearer("/users/me/email/verify", &tokens.access)
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let verification = sink.wait_for(1, WAIT).await.remove(0);
    let verify_token = link_token(&app, &verification, "/auth/email/verify");
    let response = app
        .post_json("/auth/email/verify", &json!({"token": verify_token}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    request_reset(&app, json!({"username": "audited"})).await;
    let reset = sink.wait_for(2, WAIT).await.remove(1);
    let reset_token = link_token(&app, &reset, "/auth/password-reset");
    let response = app
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": reset_token, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let admin = app.admin_with_tokens("auditor").await;
    let events = app
        .get_json("/admin/audit-events?limit=100", &admin.access)
        .await;
    let text = events.to_string();
    for kind in [
        "email_verification_sent",
        "email_verified",
        "password_reset_requested",
        "password_reset_completed",
        "mail_sent",
    ] {
        assert!(text.contains(&format!("\"{kind}\"")), "{kind} in {text}");
    }
    for secret in [
        "audited@example.com",
        verify_token.as_str(),
        reset_token.as_str(),
    ] {
        assert!(!text.contains(secret), "the audit log shows {secret}");
    }
}

#[tokio::test]
async fn without_smtp_url_mails_are_written_to_the_outbox_directory() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let outbox_text = outbox.display().to_string();
    let app = spawn_app_with(&[("MAIL_OUTBOX_DIR", &outbox_text)]).await;
    user_with_email(&app, "dev", "dev@example.com").await;
    request_reset(&app, json!({"username": "dev"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let file = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(file) = found {
            break file;
        }
        assert!(tokio::time::Instant::now() < deadline, "no .eml file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let data = std::fs::read_to_string(&file).unwrap();
    let mail = Received {
        from: String::new(),
        to: vec![],
        data,
        at: std::time::Instant::now(),
    };
    assert!(mail.header("To").unwrap().contains("dev@example.com"));
    let id = file.file_stem().unwrap().to_string_lossy().into_owned();
    assert!(
        mail.header("Message-ID").unwrap().contains(&id),
        "named by the outbox id"
    );
    let token = link_token(&app, &mail, "/auth/password-reset");
    let response = app
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_recovery_endpoints_share_the_per_client_rate_limit() {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(
        &sink,
        &[
            ("RATE_LIMIT_ENABLED", "true"),
            ("RATE_LIMIT_PER_SECOND", "1"),
            ("RATE_LIMIT_BURST", "2"),
        ],
    )
    .await;
    for _ in 0..2 {
        request_reset(&app, json!({"username": "nobody"})).await;
    }
    let response = app
        .post_json("/auth/password-reset", &json!({"username": "nobody"}))
        .await;
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The hosted page's form answers a page.
    let response = app
        .client
        .post(app.url("/auth/password-reset/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=x&token=y&new_password=z")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header_text(&response, "content-type").starts_with("text/html"));
    assert!(response.headers().contains_key("retry-after"));
}
