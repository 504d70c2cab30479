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
    assert_eq!(operations, 55, "every route of the contract is documented");
}

/// The repository's own documents, read from the checkout.
mod written {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    pub fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    pub fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every file below `dir` whose name ends with `extension`, sorted.
    pub fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.to_string_lossy().ends_with(extension) {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }

    /// README.md and every Markdown file under docs/.
    pub fn documents() -> Vec<PathBuf> {
        let mut documents = vec![root().join("README.md")];
        documents.extend(files(&root().join("docs"), ".md"));
        documents
    }

    /// The lines of a Markdown text that are outside fenced code blocks.
    pub fn prose(text: &str) -> impl Iterator<Item = &str> {
        let mut fenced = false;
        text.lines().filter(move |line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
    }

    /// The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens.
    pub fn anchor(heading: &str) -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    }

    /// The anchors of every heading of a Markdown text.
    pub fn anchors(text: &str) -> BTreeSet<String> {
        prose(text)
            .filter(|line| line.starts_with('#'))
            .map(|line| anchor(line.trim_start_matches('#')))
            .collect()
    }

    /// The targets of the inline links `[text](target)` of a Markdown text, outside code.
    pub fn links(text: &str) -> Vec<String> {
        let mut targets = Vec::new();
        for line in prose(text) {
            let mut rest = line;
            while let Some(start) = rest.find("](") {
                rest = &rest[start + 2..];
                let end = rest.find(')').expect("a link closes on its line");
                targets.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
        targets
    }

    /// The snake_case string literals in the argument list that opens at `text[0]` (a `(`).
    pub fn literals_in_call(text: &str) -> Vec<String> {
        let mut depth = 0;
        let mut end = text.len();
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        snake_literals(&text[..end])
    }

    /// Every string literal of `text` that is a snake_case word (a code or a field name).
    pub fn snake_literals(text: &str) -> Vec<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.starts_with(|c: char| c.is_ascii_lowercase())
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .map(str::to_owned)
            .collect()
    }
}

/// The `### METHOD /path` headings of docs/api.md, as (path, lower-case method).
fn api_headings() -> std::collections::BTreeSet<(String, String)> {
    let text = written::read(&written::root().join("docs/api.md"));
    written::prose(&text)
        .filter_map(|line| line.strip_prefix("### "))
        .filter_map(|heading| {
            let (method, path) = heading.split_once(' ')?;
            let known = ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method);
            (known && path.starts_with('/')).then(|| (path.to_owned(), method.to_lowercase()))
        })
        .collect()
}

#[tokio::test]
async fn the_api_reference_has_a_heading_for_every_operation_and_no_other() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut operations = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((path.clone(), method.clone()));
        }
    }
    let headings = api_headings();
    let undocumented: Vec<_> = operations.difference(&headings).collect();
    assert!(
        undocumented.is_empty(),
        "missing from docs/api.md: {undocumented:?}"
    );
    let unknown: Vec<_> = headings.difference(&operations).collect();
    assert!(
        unknown.is_empty(),
        "in docs/api.md but not served: {unknown:?}"
    );
}

#[test]
fn every_error_code_the_source_can_answer_is_in_the_api_reference() {
    let reference = written::read(&written::root().join("docs/api.md"));
    let mut codes = std::collections::BTreeSet::new();
    for file in written::files(&written::root().join("src"), ".rs") {
        if file.to_string_lossy().ends_with("_tests.rs") {
            continue;
        }
        let text = written::read(&file);
        // Problem documents, OAuth2 errors and validation entries are built by these calls
        // (`Self::new` inside the HTTP adapter's own error types).
        let http = text.contains("OAuthError") || text.contains("Problem::");
        let mut calls = vec!["Problem::new(", "OAuthError::new(", "FieldError::new("];
        if http {
            calls.push("Self::new(");
        }
        for call in calls {
            for (at, _) in text.match_indices(call) {
                codes.extend(written::literals_in_call(&text[at + call.len() - 1..]));
            }
        }
        // Codes chosen by a match arm (the framework's own errors, the OAuth2 mapping).
        if http {
            for line in text.lines().filter(|line| line.contains("=> ")) {
                let arm = line.split_once("=> ").unwrap().1;
                let first = written::snake_literals(arm).into_iter().next();
                codes.extend(first.filter(|_| arm.trim_start().starts_with(['"', '('])));
            }
        }
    }
    for expected in [
        "validation_failed",
        "invalid_grant",
        "not_found",
        "invalid_length",
    ] {
        assert!(codes.contains(expected), "the scan finds {expected}");
    }
    let missing: Vec<_> = codes
        .iter()
        .filter(|code| !reference.contains(&format!("`{code}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from docs/api.md: {missing:?}"
    );
}

#[test]
fn the_documents_link_only_to_files_of_the_repository_that_exist() {
    let documents = written::documents();
    assert!(documents.len() > 5, "{documents:?}");
    for document in &documents {
        let text = written::read(document);
        let name = document.strip_prefix(written::root()).unwrap().display();
        assert!(!text.contains("../"), "{name} points above its folder");
        assert!(
            !text.contains("shared/"),
            "{name} names a folder outside the repository"
        );
        for target in written::links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                document.clone()
            } else {
                document.parent().unwrap().join(path)
            };
            assert!(
                file.is_file(),
                "{name}: {target} is not a file of the repository"
            );
            if !anchor.is_empty() && file.extension().is_some_and(|e| e == "md") {
                let anchors = written::anchors(&written::read(&file));
                assert!(anchors.contains(anchor), "{name}: no heading for {target}");
            }
        }
    }
}

#[test]
fn the_readme_stays_a_short_guide() {
    let lines = written::read(&written::root().join("README.md"))
        .lines()
        .count();
    assert!(lines < 300, "README.md has {lines} lines");
}
