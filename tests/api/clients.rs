//! Registered OAuth clients over HTTP: every route, every refusal, secrets shown once and
//! stored hashed, and a deleted or disabled client's tokens stopping at once.

use auth_service::domain::client::ClientSecretHash;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// `method path` as the holder of `token`, with an optional JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

fn confidential() -> Value {
    json!({
        "client_name": "Billing portal",
        "client_type": "confidential",
        "redirect_uris": ["https://billing.example.com/cb", "http://127.0.0.1:8080/cb"],
        "post_logout_redirect_uris": ["https://billing.example.com/bye"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": "openid profile email"
    })
}

/// Registers `body` as `admin`; expects 201 and returns the answer's JSON.
async fn register(app: &TestApp, admin: &str, body: &Value) -> Value {
    let response = call(app, Method::POST, "/admin/clients", Some(admin), Some(body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let json: Value = response.json().await.unwrap();
    assert_eq!(
        id,
        format!("/admin/clients/{}", json["client_id"].as_str().unwrap())
    );
    json
}

/// The stored secret hash of client `id`, read straight from the database.
async fn stored_hash(app: &TestApp, id: &str) -> Option<String> {
    let stored = app
        .stored_text(
            "SELECT coalesce(secret_hash, 'NULL') FROM clients WHERE CAST(id AS TEXT) = $1",
            id,
        )
        .await
        .expect("the client is stored");
    (stored != "NULL").then_some(stored)
}

#[tokio::test]
async fn a_confidential_client_gets_its_secret_once_and_it_is_stored_hashed() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let made = register(&app, &admin.access, &confidential()).await;
    let id = made["client_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    let secret = made["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43);
    assert_eq!(made["client_secret_expires_at"], 0);
    assert_eq!(made["client_type"], "confidential");
    assert_eq!(made["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(made["scope"], "openid profile email");
    assert_eq!(
        made["grant_types"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        made["post_logout_redirect_uris"],
        json!(["https://billing.example.com/bye"])
    );
    assert_eq!(made["is_active"], true);

    let hash = stored_hash(&app, id).await.expect("a stored hash");
    assert_ne!(hash, secret);
    assert!(!hash.contains(secret));
    assert_eq!(hash, ClientSecretHash::of(secret).as_str());

    let one = app
        .get_json(&format!("/admin/clients/{id}"), &admin.access)
        .await;
    let listed = app.get_json("/admin/clients", &admin.access).await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0], one);
    for answer in [&one, &listed] {
        let text = answer.to_string();
        assert!(!text.contains(secret) && !text.contains(&hash), "{text}");
    }
    assert!(one.get("client_secret").is_none());
    assert!(listed["items"][0].get("client_secret").is_none());
    let mut expected = made.clone();
    let fields = expected.as_object_mut().unwrap();
    fields.remove("client_secret");
    fields.remove("client_secret_expires_at");
    assert_eq!(one, expected);
}

#[tokio::test]
async fn a_public_client_has_no_secret_and_gets_the_defaults() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let body = json!({
        "client_name": "Mobile app",
        "client_type": "public",
        "redirect_uris": ["http://[::1]/cb", "http://localhost:3000/cb"],
        "software_id": "ignored metadata (RFC 7591)"
    });
    let made = register(&app, &admin.access, &body).await;
    assert!(made.get("client_secret").is_none());
    assert_eq!(made["token_endpoint_auth_method"], "none");
    assert_eq!(made["grant_types"], json!(["authorization_code"]));
    assert_eq!(made["scope"], "openid");
    assert_eq!(made["post_logout_redirect_uris"], json!([]));
    let id = made["client_id"].as_str().unwrap();
    assert_eq!(stored_hash(&app, id).await, None);
    let rotate = call(
        &app,
        Method::POST,
        &format!("/admin/clients/{id}/secret"),
        Some(&admin.access),
        None,
    )
    .await;
    assert_problem(rotate, StatusCode::CONFLICT, "public_client").await;
}

#[tokio::test]
async fn every_invalid_field_is_refused_with_422_and_nothing_is_stored() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"redirect_uris": ["/callback"]}),
            "redirect_uris",
            "not_absolute",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb#x"]}),
            "redirect_uris",
            "fragment_not_allowed",
        ),
        (
            json!({"redirect_uris": ["https://*.example.com/cb"]}),
            "redirect_uris",
            "wildcard_not_allowed",
        ),
        (
            json!({"redirect_uris": ["http://a.example.com/cb"]}),
            "redirect_uris",
            "insecure_scheme",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
            "insecure_scheme",
        ),
        (
            json!({"redirect_uris": []}),
            "redirect_uris",
            "invalid_length",
        ),
        (
            json!({"post_logout_redirect_uris": ["https://a.example/\u{e9}"]}),
            "post_logout_redirect_uris",
            "invalid_characters",
        ),
        (
            json!({"grant_types": ["password"]}),
            "grant_types",
            "unknown_grant_type",
        ),
        (json!({"grant_types": []}), "grant_types", "invalid_length"),
        (
            json!({"client_type": "public"}),
            "grant_types",
            "not_allowed_for_public_client",
        ),
        (
            json!({"client_type": "native"}),
            "client_type",
            "invalid_value",
        ),
        (
            json!({"scope": "openid write:all"}),
            "scope",
            "unknown_scope",
        ),
        (json!({"scope": ""}), "scope", "invalid_length"),
        (json!({"client_name": ""}), "client_name", "invalid_length"),
        (
            json!({"client_name": "\u{1F600}".repeat(101)}),
            "client_name",
            "invalid_length",
        ),
        (
            json!({"client_name": "a\u{7}b"}),
            "client_name",
            "invalid_characters",
        ),
        (
            json!({"redirect_uris": [format!("https://a.example/{}", "x".repeat(5000))]}),
            "redirect_uris",
            "invalid_length",
        ),
    ];
    for (change, field, code) in cases {
        let mut body = confidential();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let response = call(
            &app,
            Method::POST,
            "/admin/clients",
            Some(&admin.access),
            Some(&body),
        )
        .await;
        let problem = assert_validation_failed(response).await;
        assert_eq!(problem["errors"][0]["field"], field, "{change}: {problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{change}: {problem}");
    }
    let missing = call(
        &app,
        Method::POST,
        "/admin/clients",
        Some(&admin.access),
        Some(&json!({})),
    )
    .await;
    let problem = assert_validation_failed(missing).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["client_name", "client_type", "redirect_uris"]);
    let wrong_type = call(
        &app,
        Method::POST,
        "/admin/clients",
        Some(&admin.access),
        Some(&json!({"client_name": 5})),
    )
    .await;
    assert_validation_failed(wrong_type).await;
    assert_eq!(
        app.get_json("/admin/clients", &admin.access).await["total"],
        0
    );
}

#[tokio::test]
async fn only_admins_reach_the_client_routes() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let user = app.user_with_tokens("bob").await;
    let id = register(&app, &admin.access, &confidential()).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("/admin/clients/{id}");
    let secret = format!("{one}/secret");
    let body = confidential();
    let routes = [
        (Method::POST, "/admin/clients", Some(&body)),
        (Method::GET, "/admin/clients", None),
        (Method::GET, one.as_str(), None),
        (Method::PATCH, one.as_str(), Some(&body)),
        (Method::DELETE, one.as_str(), None),
        (Method::POST, secret.as_str(), None),
    ];
    for (method, path, body) in routes {
        assert_forbidden(call(&app, method.clone(), path, Some(&user.access), body).await).await;
        assert_missing_token(call(&app, method, path, None, body).await).await;
    }
    assert_eq!(
        app.get_json(&one, &admin.access).await["client_id"],
        id.as_str()
    );
}

#[tokio::test]
async fn unknown_and_malformed_client_ids_are_404() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let patch = json!({"client_name": "x"});
    for id in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let one = format!("/admin/clients/{id}");
        for (method, path, body) in [
            (Method::GET, one.clone(), None),
            (Method::PATCH, one.clone(), Some(&patch)),
            (Method::DELETE, one.clone(), None),
            (Method::POST, format!("{one}/secret"), None),
        ] {
            let response = call(&app, method, &path, Some(&admin.access), body).await;
            assert_problem(response, StatusCode::NOT_FOUND, "client_not_found").await;
        }
    }
}

#[tokio::test]
async fn a_rotated_secret_differs_and_the_old_hash_is_gone() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let made = register(&app, &admin.access, &confidential()).await;
    let id = made["client_id"].as_str().unwrap();
    let old = made["client_secret"].as_str().unwrap();
    let old_hash = stored_hash(&app, id).await.unwrap();
    let response = call(
        &app,
        Method::POST,
        &format!("/admin/clients/{id}/secret"),
        Some(&admin.access),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let new = body["client_secret"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_ne!(new, old);
    let hash = stored_hash(&app, id).await.unwrap();
    assert_ne!(hash, old_hash);
    assert_eq!(hash, ClientSecretHash::of(new).as_str());
    let events = app
        .get_json(
            "/admin/audit-events?event=client_secret_rotated",
            &admin.access,
        )
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    assert!(!events.to_string().contains(new));
}

/// Ties the sessions of `tokens`' user to client `id`, behind the service's back (no grant
/// issues client tokens yet).
async fn bind_sessions(app: &TestApp, tokens: &Tokens, client_id: &str) {
    let user_id = app.user_id(tokens).await;
    let changed = app
        .execute_sql(
            "UPDATE sessions SET client_id = (SELECT id FROM clients WHERE CAST(id AS TEXT) = $1)
             WHERE user_id = (SELECT id FROM users WHERE CAST(id AS TEXT) = $2)",
            &[client_id, &user_id],
        )
        .await;
    assert_eq!(changed, 1);
}

#[tokio::test]
async fn a_change_is_applied_and_disabling_or_deleting_stops_the_clients_tokens_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let first = register(&app, &admin.access, &confidential()).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = register(&app, &admin.access, &confidential()).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (bob, carol, dave) = (
        app.user_with_tokens("bob").await,
        app.user_with_tokens("carol").await,
        app.user_with_tokens("dave").await,
    );
    bind_sessions(&app, &bob, &first).await;
    bind_sessions(&app, &carol, &second).await;
    for tokens in [&bob, &carol, &dave] {
        app.assert_signed_in(&tokens.access).await;
    }

    let patch = json!({
        "client_name": "Billing (old)",
        "redirect_uris": ["https://new.example.com/cb"],
        "grant_types": ["client_credentials"],
        "scope": "openid",
        "is_active": false
    });
    let response = call(
        &app,
        Method::PATCH,
        &format!("/admin/clients/{first}"),
        Some(&admin.access),
        Some(&patch),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["client_name"], "Billing (old)");
    assert_eq!(
        changed["redirect_uris"],
        json!(["https://new.example.com/cb"])
    );
    assert_eq!(changed["grant_types"], json!(["client_credentials"]));
    assert_eq!(changed["is_active"], false);
    assert_eq!(
        changed["post_logout_redirect_uris"],
        json!(["https://billing.example.com/bye"])
    );
    app.assert_session_ended(&bob).await;
    app.assert_signed_in(&carol.access).await;

    let bad = call(
        &app,
        Method::PATCH,
        &format!("/admin/clients/{second}"),
        Some(&admin.access),
        Some(&json!({"redirect_uris": ["http://evil.example/cb"]})),
    )
    .await;
    assert_validation_failed(bad).await;
    let unknown = call(
        &app,
        Method::PATCH,
        &format!("/admin/clients/{second}"),
        Some(&admin.access),
        Some(&json!({"client_type": "public"})),
    )
    .await;
    assert_validation_failed(unknown).await;

    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/admin/clients/{second}"),
        Some(&admin.access),
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    app.assert_session_ended(&carol).await;
    app.assert_signed_in(&dave.access).await;
    let gone = call(
        &app,
        Method::GET,
        &format!("/admin/clients/{second}"),
        Some(&admin.access),
        None,
    )
    .await;
    assert_problem(gone, StatusCode::NOT_FOUND, "client_not_found").await;
    assert_eq!(
        app.get_json("/admin/clients", &admin.access).await["total"],
        1
    );

    for event in ["client_created", "client_updated", "client_deleted"] {
        let events = app
            .get_json(&format!("/admin/audit-events?event={event}"), &admin.access)
            .await;
        assert!(!events["items"].as_array().unwrap().is_empty(), "{event}");
        assert_eq!(events["items"][0]["username"], "root", "{event}");
    }
}

#[tokio::test]
async fn clients_are_listed_a_page_at_a_time_and_bad_paging_is_422() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(register(&app, &admin.access, &confidential()).await["client_id"].clone());
    }
    let page = app
        .get_json("/admin/clients?limit=2&offset=1", &admin.access)
        .await;
    assert_eq!(page["total"], 3);
    let listed: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["client_id"])
        .collect();
    assert_eq!(listed, [&ids[1], &ids[2]]);
    for query in ["limit=101", "limit=0", "offset=-1"] {
        let response = call(
            &app,
            Method::GET,
            &format!("/admin/clients?{query}"),
            Some(&admin.access),
            None,
        )
        .await;
        assert_validation_failed(response).await;
    }
}
