use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read for its deserialization only
struct Body {
    token: String,
}

fn refused(body: &str) -> String {
    let rejection = parse_object::<Body>(body.as_bytes()).unwrap_err();
    format!("{rejection:?}")
}

/// serde_json's error categories decide 400 against 422: a change in them shows here.
#[test]
fn syntax_errors_and_data_errors_are_told_apart_by_category() {
    assert!(parse_object::<Body>(br#" {"token": "t"} "#).is_ok());
    assert_eq!(
        refused(r#"{"token": "#),
        r#"MalformedJson { what: "unexpected end", line: 1, column: 10 }"#
    );
    assert_eq!(
        refused(r#"{"token" "t"}"#),
        r#"MalformedJson { what: "syntax error", line: 1, column: 10 }"#
    );
    assert_eq!(
        refused(r#"{"token": "t"} x"#),
        r#"MalformedJson { what: "syntax error", line: 1, column: 16 }"#
    );
    assert_eq!(refused(r#"["t"]"#), "NotAnObject");
    assert_eq!(refused("null"), "NotAnObject");
    assert_eq!(
        refused(r#"{"token": 1}"#),
        r#"Field(FieldError { field: "token", code: "invalid_value", message: "has the wrong type (got a number)" })"#
    );
    assert_eq!(
        refused("{}"),
        r#"Field(FieldError { field: "token", code: "invalid_value", message: "is required" })"#
    );
}

#[test]
fn a_data_error_before_a_syntax_error_stays_a_data_error() {
    // serde_json stops at the first error; the field is then not known.
    assert_eq!(
        refused(r#"{"token": 1, garbage"#),
        r#"Field(FieldError { field: "body", code: "invalid_value", message: "has a field that is missing, unknown or of the wrong type" })"#
    );
    // Trailing text after a value with a data error: the field is known.
    assert_eq!(
        refused(r#"{"other": 1} x"#),
        r#"Field(FieldError { field: "token", code: "invalid_value", message: "is required" })"#
    );
}
