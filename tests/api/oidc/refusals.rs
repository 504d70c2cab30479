//! Every refusal of the code flow, as a browser and a client meet it.

use reqwest::StatusCode;
use serde_json::Value;

use super::*;

/// An error page: HTML, no redirect, the reason shown.
async fn assert_error_page(response: Response, status: StatusCode, says: &str) {
    assert_eq!(response.status(), status);
    assert!(
        response.headers().get("location").is_none(),
        "never redirected"
    );
    assert!(header_text(&response, "content-type").starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains(says), "{html}");
}

/// A redirect to the client with `error`, the request's `state` and `iss`.
fn assert_redirected_error(response: &Response, issuer: &str, error: &str) {
    let params = redirect_params(response, APP);
    assert_eq!(params["error"], error, "{params:?}");
    assert_eq!(params["state"], "st&te");
    assert_eq!(params["iss"], issuer);
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn a_bad_client_or_redirect_uri_gets_a_page_and_other_errors_go_back_to_the_client() {
    let w = world().await;
    let mut browser = Browser::new(&w.app);
    let issuer = w.app.settings.tokens.issuer.clone();
    let page_cases = [
        auth_query("00000000-0000-7000-8000-000000000000", &[]),
        auth_query("not-a-client", &[]),
        auth_query(
            &w.public.id,
            &[("redirect_uri", "https://evil.example/callback")],
        ),
        auth_query(
            &w.public.id,
            &[("redirect_uri", "https://app.example/callback/")],
        ),
        auth_query(&w.public.id, &[("redirect_uri", "")]),
        format!(
            "{}&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback",
            auth_query(&w.public.id, &[])
        ),
    ];
    for query in page_cases {
        let response = browser.get(&format!("/auth/authorize?{query}")).await;
        assert_error_page(response, StatusCode::BAD_REQUEST, "Cannot sign in").await;
    }
    let redirect_cases = [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (vec![("code_challenge", "too-short")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "openid root")], "invalid_scope"),
        (vec![("prompt", "select_account")], "invalid_request"),
        (vec![("max_age", "soon")], "invalid_request"),
        (vec![("prompt", "none")], "login_required"),
    ];
    for (extra, error) in redirect_cases {
        let response = browser
            .get(&format!(
                "/auth/authorize?{}",
                auth_query(&w.public.id, &extra)
            ))
            .await;
        assert_redirected_error(&response, &issuer, error);
    }
    // A repeated parameter other than the client or redirect URI.
    let repeated = format!("{}&scope=openid", auth_query(&w.public.id, &[]));
    let response = browser.get(&format!("/auth/authorize?{repeated}")).await;
    assert_redirected_error(&response, &issuer, "invalid_request");
    // A loopback redirect URI may use any port.
    let native = auth_query(
        &w.public.id,
        &[("redirect_uri", "http://127.0.0.1:53123/native")],
    );
    assert_eq!(
        browser
            .get(&format!("/auth/authorize?{native}"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_code_needs_its_client_redirect_uri_and_verifier_and_works_once() {
    let w = world().await;
    let mut browser = Browser::new(&w.app);
    let wrong_verifier = "another-verifier-that-is-long-enough-0123456789-abcdefgh";
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        ("wrong verifier", vec![("code_verifier", wrong_verifier)]),
        ("no verifier", vec![]),
        (
            "other redirect",
            vec![
                ("code_verifier", VERIFIER),
                ("redirect_uri", "http://127.0.0.1/native"),
            ],
        ),
        ("no redirect", vec![("code_verifier", VERIFIER)]),
    ];
    for (case, extra) in cases {
        let query = auth_query(&w.public.id, &[]);
        let (code, _) = browser.sign_in_for_code(&query, "alice").await;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", w.public.id.as_str()),
        ];
        if case != "no redirect" && case != "other redirect" {
            pairs.push(("redirect_uri", APP));
        }
        pairs.extend(extra);
        let response = token_request(&w.app, &pairs, None).await;
        let text = assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(!text.is_empty(), "{case}");
        browser.cookies.clear();
    }

    // The code of another client.
    browser.cookies.clear();
    let (code, _) = browser
        .sign_in_for_code(&auth_query(&w.public.id, &[]), "alice")
        .await;
    let stolen = exchange_confidential(&w, &code).await;
    assert_oauth_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // A verifier for a code issued without a challenge (a confidential client may skip PKCE).
    let no_pkce = auth_query(
        &w.confidential.id,
        &[
            ("code_challenge", ""),
            ("code_challenge_method", ""),
            ("prompt", "login"),
        ],
    );
    let (code, _) = browser.sign_in_for_code(&no_pkce, "alice").await;
    let response = exchange_confidential(&w, &code).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Replayed: refused, and what the first exchange issued stops working.
    let login = [("prompt", "login")];
    let (code, _) = browser
        .sign_in_for_code(&auth_query(&w.public.id, &login), "alice")
        .await;
    let first: Value = exchange_public(&w, &code).await.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap();
    w.app.assert_signed_in(access).await;
    assert_oauth_error(
        exchange_public(&w, &code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_invalid_token(w.app.get("/users/me", Some(access)).await).await;
    let events = w
        .app
        .get_json(
            "/admin/audit-events?event=authorization_code_reused",
            &w.admin,
        )
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);

    // Expired after 60 seconds.
    let (code, _) = browser
        .sign_in_for_code(&auth_query(&w.public.id, &login), "alice")
        .await;
    w.app.clock.advance(chrono::Duration::seconds(61));
    assert_oauth_error(
        exchange_public(&w, &code).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn client_authentication_failures_are_401_invalid_client() {
    let w = world().await;
    type Case<'a> = (Vec<(&'a str, &'a str)>, Option<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            vec![("grant_type", "client_credentials")],
            Some((&w.confidential.id, "wrong-secret")),
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &w.confidential.id),
                ("client_secret", "wrong"),
            ],
            None,
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &w.confidential.id),
            ],
            None,
        ),
        (vec![("grant_type", "client_credentials")], None),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("client_id", "unknown"),
            ],
            None,
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("client_id", &w.public.id),
                ("client_secret", "x"),
            ],
            None,
        ),
    ];
    for (pairs, basic) in cases {
        let response = token_request(&w.app, &pairs, basic).await;
        assert!(response.headers().get("www-authenticate").is_some());
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let response = post_form_basic(
        &w.app,
        "/auth/introspect",
        &[("token", "x")],
        &w.confidential.id,
        "wrong",
    )
    .await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let response = post_form_basic(
        &w.app,
        "/auth/revoke",
        &[("token", "x")],
        &w.confidential.id,
        "wrong",
    )
    .await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // A public client may not introspect, nor use client_credentials.
    let response = w
        .app
        .post_form(
            "/auth/introspect",
            &form(&[("token", "x"), ("client_id", &w.public.id)]),
        )
        .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    let response = token_request(
        &w.app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &w.public.id),
        ],
        None,
    )
    .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn the_login_form_refuses_wrong_passwords_stale_forms_and_locks_like_the_token_endpoint() {
    let w = world_with(&[("LOGIN_MAX_FAILURES", "3")]).await;
    let mut browser = Browser::new(&w.app);
    let page = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[])
        ))
        .await;
    let html = page.text().await.unwrap();
    let wrong = browser
        .submit_login(&html, "alice", "not the password")
        .await;
    assert_eq!(wrong.status(), StatusCode::OK, "the form again");
    let again = wrong.text().await.unwrap();
    assert!(again.contains("role=\"alert\"") && again.contains("Wrong username or password."));
    assert!(again.contains("value=\"alice\""), "the username is kept");
    // Without the CSRF cookie (another site posting the form): the form again, nothing checked.
    let mut stranger = Browser::new(&w.app);
    let forged = stranger.submit_login(&again, "alice", PASSWORD).await;
    assert_eq!(forged.status(), StatusCode::OK, "the form again");
    assert!(forged.text().await.unwrap().contains("expired"));
    assert!(!stranger.cookies.contains_key("auth_signin"));
    // Two more wrong passwords lock the account, here as at the token endpoint.
    let mut page = again;
    for _ in 0..2 {
        let response = browser.submit_login(&page, "alice", "still wrong").await;
        page = response.text().await.unwrap();
    }
    let locked = browser.submit_login(&page, "alice", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().get("retry-after").is_some());
    let token = w.app.login("alice", PASSWORD).await;
    assert_eq!(token.status(), StatusCode::TOO_MANY_REQUESTS);
    let failures = w
        .app
        .get_json("/admin/audit-events?event=login_failed", &w.admin)
        .await;
    assert!(failures["items"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn deleting_the_client_ends_what_it_was_issued_and_others_cannot_revoke_it() {
    let w = world().await;
    let mut browser = Browser::new(&w.app);
    let (code, _) = browser
        .sign_in_for_code(&auth_query(&w.public.id, &[]), "alice")
        .await;
    let tokens: Value = exchange_public(&w, &code).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // Another client's revocation changes nothing (and says nothing).
    let response = post_form_basic(
        &w.app,
        "/auth/revoke",
        &[("token", refresh)],
        &w.confidential.id,
        w.confidential.secret(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    w.app.assert_signed_in(access).await;
    // A confidential client's refresh token presented without its secret: the session ends.
    let (code, _) = browser
        .sign_in_for_code(
            &auth_query(&w.confidential.id, &[("prompt", "login")]),
            "alice",
        )
        .await;
    let theirs: Value = exchange_confidential(&w, &code).await.json().await.unwrap();
    let stolen = w
        .app
        .refresh_grant(theirs["refresh_token"].as_str().unwrap())
        .await;
    assert_oauth_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_invalid_token(
        w.app
            .get("/users/me", Some(theirs["access_token"].as_str().unwrap()))
            .await,
    )
    .await;
    // The same through the JSON twin, which takes no client authentication at all.
    let (code, _) = browser
        .sign_in_for_code(
            &auth_query(&w.confidential.id, &[("prompt", "login")]),
            "alice",
        )
        .await;
    let theirs: Value = exchange_confidential(&w, &code).await.json().await.unwrap();
    let stolen = w
        .app
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": theirs["refresh_token"]}),
        )
        .await;
    assert_oauth_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;
    w.app
        .assert_refresh_refused(theirs["refresh_token"].as_str().unwrap())
        .await;

    let deleted = w
        .app
        .client
        .delete(w.app.url(&format!("/admin/clients/{}", w.public.id)))
        .bearer_auth(&w.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(w.app.get("/auth/userinfo", Some(access)).await).await;
    assert_inactive(&w, access).await;
    assert_inactive(&w, refresh).await;
    // The deleted client's authorization requests get the error page.
    let response = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[])
        ))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn userinfo_needs_openid_and_end_session_needs_a_valid_hint_and_registered_uri() {
    let w = world().await;
    let password_grant = w.app.tokens("alice", PASSWORD).await;
    let response = w
        .app
        .get("/auth/userinfo", Some(&password_grant.access))
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert_missing_token(w.app.get("/auth/userinfo", None).await).await;

    let mut browser = Browser::new(&w.app);
    let (code, _) = browser
        .sign_in_for_code(&auth_query(&w.public.id, &[]), "alice")
        .await;
    let tokens: Value = exchange_public(&w, &code).await.json().await.unwrap();
    let hint = tokens["id_token"].as_str().unwrap();
    for query in [
        form(&[("id_token_hint", "forged.token.here")]),
        form(&[("id_token_hint", tokens["access_token"].as_str().unwrap())]),
        form(&[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ]),
        form(&[("post_logout_redirect_uri", BYE)]),
    ] {
        let response = browser.get(&format!("/auth/logout/browser?{query}")).await;
        assert_error_page(response, StatusCode::BAD_REQUEST, "Cannot sign out").await;
    }
    w.app
        .assert_signed_in(tokens["access_token"].as_str().unwrap())
        .await;
    // Without a hint: a confirmation, whose form needs its CSRF cookie.
    let confirm = browser
        .get(&format!(
            "/auth/logout/browser?{}",
            form(&[
                ("client_id", &w.public.id),
                ("post_logout_redirect_uri", BYE)
            ])
        ))
        .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let html = confirm.text().await.unwrap();
    let mut stranger = Browser::new(&w.app);
    let pairs = hidden_inputs(&html);
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let forged = stranger
        .post_form("/auth/logout/browser", &form(&pairs))
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    w.app
        .assert_signed_in(tokens["access_token"].as_str().unwrap())
        .await;
    let confirmed = browser
        .post_form("/auth/logout/browser", &form(&pairs))
        .await;
    redirect_params(&confirmed, BYE);
    assert_invalid_token(
        w.app
            .get("/users/me", Some(tokens["access_token"].as_str().unwrap()))
            .await,
    )
    .await;
}
