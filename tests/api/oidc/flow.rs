//! The flows that work: sign-in on the login page, the code exchange with an ID token, single
//! sign-on, UserInfo, refresh, introspection, client credentials, end session, discovery.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;

use super::*;

/// The ID token verified with the JWKS key its `kid` names, as a client library does.
async fn verified_id_token(w: &World, id_token: &str, audience: &str) -> Value {
    let (header, _) = jwt_parts(id_token);
    assert_eq!(header["alg"], "RS256");
    assert_ne!(header["typ"], "at+jwt");
    let jwks: Value = w
        .app
        .client
        .get(w.app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the ID token's key is published");
    let key =
        DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[w.app.settings.tokens.issuer.as_str()]);
    decode::<Value>(id_token, &key, &validation).unwrap().claims
}

#[tokio::test]
async fn a_user_signs_in_on_the_login_page_and_the_client_gets_tokens_and_an_id_token() {
    let w = world().await;
    let mut browser = Browser::new(&w.app);
    let page = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[])
        ))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(header_text(&page, "content-type").starts_with("text/html"));
    let csp = header_text(&page, "content-security-policy").to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(header_text(&page, "cache-control"), "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("<input id=\"username\" name=\"username\""));
    assert!(html.contains("name=\"password\" type=\"password\""));
    assert!(html.contains("The public app"));
    // The password form works without JavaScript; the one script is this origin's passkey
    // sign-in (no inline script), and the page's policy allows nothing else.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains("<script src=\"/auth/assets/passkey.js\" defer></script>"));
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let back = browser.submit_login(&html, "alice", PASSWORD).await;
    let cookie = back
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("auth_signin="))
        .expect("the sign-in cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "the test issuer is http");
    let params = redirect_params(&back, APP);
    assert_eq!(params["state"], "st&te");
    assert_eq!(params["iss"], w.app.settings.tokens.issuer);

    let response = exchange_public(&w, &params["code"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile email");
    assert!(body["refresh_token"].is_string(), "the client may refresh");
    let claims = verified_id_token(&w, body["id_token"].as_str().unwrap(), &w.public.id).await;
    assert_eq!(claims["nonce"], "n-0");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], false);
    assert!(claims["auth_time"].is_i64() && claims["sid"].is_string());
    // at_hash is the left half of the access token's SHA-256.
    let at_hash = {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(body["access_token"].as_str().unwrap());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    };
    assert_eq!(claims["at_hash"], at_hash);
    let (_, access) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(access["client_id"], w.public.id.as_str());
    assert_eq!(access["iss"], claims["iss"]);

    // UserInfo, by GET and POST.
    let access_token = body["access_token"].as_str().unwrap();
    let info = w.app.get_json("/auth/userinfo", access_token).await;
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["email"], "alice@example.com");
    let post = w.app.post_bearer("/auth/userinfo", access_token).await;
    assert_eq!(post.status(), StatusCode::OK);

    // The refresh token rotates, for its client.
    let refreshed = token_request(
        &w.app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", &w.public.id),
        ],
        None,
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(refreshed["scope"], "openid profile email");

    let events = w
        .app
        .get_json(
            "/admin/audit-events?event=authorization_code_exchanged",
            &w.admin,
        )
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_second_authorization_skips_the_form_until_the_sign_in_ends() {
    let w = world().await;
    let mut browser = Browser::new(&w.app);
    let (code, _) = browser
        .sign_in_for_code(&auth_query(&w.public.id, &[]), "alice")
        .await;
    let first: Value = exchange_public(&w, &code).await.json().await.unwrap();
    // Another client, same browser: straight back with a code.
    let query = auth_query(&w.confidential.id, &[]);
    let again = browser.get(&format!("/auth/authorize?{query}")).await;
    let (code, _) = redirected_with_code(again);
    let exchanged = exchange_confidential(&w, &code).await;
    assert_eq!(exchanged.status(), StatusCode::OK);
    // prompt=login asks again even so; prompt=none answers silently.
    let login = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[("prompt", "login")])
        ))
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let silent = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[("prompt", "none")])
        ))
        .await;
    redirected_with_code(silent);

    // RP-initiated logout with the hint: straight back, cookie cleared, tokens ended.
    let hint = first["id_token"].as_str().unwrap();
    let logout = browser
        .get(&format!(
            "/auth/logout/browser?{}",
            form(&[
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", BYE),
                ("state", "bye-state")
            ])
        ))
        .await;
    let params = redirect_params(&logout, BYE);
    assert_eq!(params["state"], "bye-state");
    assert!(!browser.cookies.contains_key("auth_signin"));
    w.app
        .assert_session_ended(&Tokens {
            access: first["access_token"].as_str().unwrap().to_owned(),
            refresh: first["refresh_token"].as_str().unwrap().to_owned(),
            body: first.clone(),
        })
        .await;
    let page = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[])
        ))
        .await;
    assert_eq!(page.status(), StatusCode::OK, "the login page again");
    let silent = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[("prompt", "none")])
        ))
        .await;
    let params = redirect_params(&silent, APP);
    assert_eq!(params["error"], "login_required");
    assert_eq!(params["state"], "st&te");
    assert_eq!(params["iss"], w.app.settings.tokens.issuer);
}

#[tokio::test]
async fn client_credentials_and_introspection_follow_the_client_and_the_session() {
    let w = world().await;
    let response = token_request(
        &w.app,
        &[("grant_type", "client_credentials"), ("scope", "user")],
        Some((&w.confidential.id, w.confidential.secret())),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(token);
    assert_eq!(claims["sub"], w.confidential.id.as_str());
    assert_eq!(claims["client_id"], w.confidential.id.as_str());
    assert!(claims.get("sid").is_none());
    // It is not a user's token.
    assert_invalid_token(w.app.get("/users/me", Some(token)).await).await;
    let seen = introspect(&w, token).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], w.confidential.id.as_str());
    assert_eq!(seen["scope"], "user");
    // client_secret_post works as well.
    let post = token_request(
        &w.app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &w.confidential.id),
            ("client_secret", w.confidential.secret()),
        ],
        None,
    )
    .await;
    assert_eq!(post.status(), StatusCode::OK);

    // A user's tokens from the code flow: live, then not after logout.
    let mut browser = Browser::new(&w.app);
    let offline = auth_query(&w.public.id, &[("scope", "openid offline_access user")]);
    let (code, _) = browser.sign_in_for_code(&offline, "alice").await;
    let tokens: Value = exchange_public(&w, &code).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let seen = introspect(&w, access).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["username"], "alice");
    assert_eq!(seen["token_type"], "access_token");
    assert_eq!(seen["client_id"], w.public.id.as_str());
    assert_eq!(seen["iss"], w.app.settings.tokens.issuer);
    let seen = introspect(&w, refresh).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["token_type"], "refresh_token");
    assert_eq!(
        introspect(&w, "not a token").await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        w.app.post_bearer("/auth/logout", access).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_inactive(&w, access).await;
    assert_inactive(&w, refresh).await;

    // Disabling the client ends its client-credentials tokens too.
    let disabled = w
        .app
        .client
        .patch(w.app.url(&format!("/admin/clients/{}", w.confidential.id)))
        .bearer_auth(&w.admin)
        .json(&serde_json::json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    let other = register(&w.app, &w.admin, "confidential", &["client_credentials"]).await;
    let seen = post_form_basic(
        &w.app,
        "/auth/introspect",
        &[("token", token)],
        &other.id,
        other.secret(),
    )
    .await;
    assert_eq!(
        seen.json::<Value>().await.unwrap(),
        serde_json::json!({"active": false})
    );
    let events = w
        .app
        .get_json(
            "/admin/audit-events?event=client_credentials_granted",
            &w.admin,
        )
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn discovery_names_every_endpoint_and_the_issuer_of_the_tokens() {
    let w = world().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = w
            .app
            .client
            .get(w.app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let issuer = w
            .app
            .settings
            .tokens
            .issuer
            .trim_end_matches('/')
            .to_owned();
        assert_eq!(doc["issuer"], w.app.settings.tokens.issuer);
        assert_eq!(
            doc["authorization_endpoint"],
            format!("{issuer}/auth/authorize")
        );
        assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/auth/userinfo"));
        assert_eq!(
            doc["introspection_endpoint"],
            format!("{issuer}/auth/introspect")
        );
        assert_eq!(
            doc["end_session_endpoint"],
            format!("{issuer}/auth/logout/browser")
        );
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        for scope in [
            "openid",
            "profile",
            "email",
            "offline_access",
            "user",
            "admin",
        ] {
            assert!(doc["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&Value::from(scope)));
        }
        for method in ["client_secret_basic", "client_secret_post", "none"] {
            assert!(doc["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&Value::from(method)));
        }
        assert!(doc["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from("RS256")));
    }
}
