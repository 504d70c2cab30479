//! The OpenAPI document and Swagger UI.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_with_its_errors() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let expected: [(&str, &str, &[&str]); 13] = [
        ("/auth/token", "post", &["200", "400", "413", "503"]),
        ("/auth/refresh", "post", &["200", "400", "503"]),
        ("/auth/refresh-token", "post", &["201", "401"]),
        ("/auth/revoke", "post", &["200", "400"]),
        ("/auth/logout", "post", &["204", "401"]),
        ("/auth/logout-all", "post", &["204", "401"]),
        (
            "/users",
            "post",
            &["201", "400", "409", "413", "415", "422", "503"],
        ),
        ("/users/me", "get", &["200", "401"]),
        ("/users/me/password", "put", &["204", "400", "401", "422"]),
        ("/protected", "get", &["200", "401"]),
        ("/health", "get", &["200", "503"]),
        ("/health/live", "get", &["200"]),
        ("/users/me", "get", &["200"]),
    ];
    for (path, method, codes) in expected {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert!(
            operation["summary"].is_string(),
            "{method} {path} has a summary"
        );
        assert!(
            operation["description"].is_string(),
            "{method} {path} has a description"
        );
        for code in codes {
            assert!(
                operation["responses"][code].is_object(),
                "{method} {path} documents {code}"
            );
        }
    }
}

#[tokio::test]
async fn protected_operations_use_the_oauth2_password_flow_against_the_token_endpoint() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["oauth2"];
    assert_eq!(scheme["type"], "oauth2");
    assert_eq!(scheme["flows"]["password"]["tokenUrl"], "/auth/token");
    for (path, method) in [
        ("/users/me", "get"),
        ("/users/me/password", "put"),
        ("/protected", "get"),
        ("/auth/logout", "post"),
        ("/auth/logout-all", "post"),
        ("/auth/refresh-token", "post"),
    ] {
        let security = &doc["paths"][path][method]["security"];
        assert!(
            security[0]["oauth2"].is_array(),
            "{method} {path} is bound to oauth2"
        );
    }
    assert!(doc["paths"]["/auth/token"]["post"]["security"].is_null());
    let token_body = &doc["paths"]["/auth/token"]["post"]["requestBody"]["content"];
    assert!(token_body["application/x-www-form-urlencoded"].is_object());
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = spawn_app().await;
    let response = app.get("/docs/", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let config = app.get("/docs/swagger-initializer.js", None).await;
    assert_eq!(config.status(), StatusCode::OK);
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    let bundle = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(bundle.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_schema_reference_resolves() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved reference to {name}");
    }
}

#[tokio::test]
async fn every_operation_has_a_summary_a_description_and_examples_for_bodies_and_errors() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let has_example = |content: &Value| {
        if !content["example"].is_null() {
            return true;
        }
        let reference = content["schema"]["$ref"].as_str().unwrap_or_default();
        let name = reference.rsplit('/').next().unwrap_or_default();
        !schemas[name]["example"].is_null()
    };
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let name = format!("{method} {path}");
            assert!(operation["summary"].is_string(), "{name}: summary");
            assert!(operation["description"].is_string(), "{name}: description");
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                for (media, body) in content {
                    assert!(has_example(body), "{name}: request example ({media})");
                }
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let errors = status.starts_with('4') || status.starts_with('5');
                if let (true, Some(content)) = (errors, response["content"].as_object()) {
                    for (media, body) in content {
                        assert!(
                            !body["example"].is_null(),
                            "{name} {status}: example ({media})"
                        );
                        if media == "application/problem+json" {
                            assert_eq!(
                                body["example"]["status"].as_u64().unwrap().to_string(),
                                *status
                            );
                        }
                    }
                }
            }
        }
    }
    assert_eq!(operations, 19, "every route of the contract is documented");
}
