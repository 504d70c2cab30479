use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read for its deserialization only
struct Strict {
    name: String,
    count: Option<u32>,
    roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Closed {
    flag: Option<bool>,
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, FieldProblem> {
    serde_json::from_str::<Node>(text).unwrap().into_value()
}

fn problem<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> (String, String) {
    let problem = json::<T>(text).unwrap_err();
    (problem.field(), problem.message())
}

#[test]
fn each_kind_of_problem_names_its_field_in_our_words() {
    let expect = |field: &str, message: &str| (field.to_owned(), message.to_owned());
    assert_eq!(problem::<Strict>("{}"), expect("name", "is required"));
    assert_eq!(
        problem::<Strict>(r#"{"name": 5}"#),
        expect("name", "has the wrong type (got a number)")
    );
    assert_eq!(
        problem::<Strict>(r#"{"name": "a", "count": -1}"#),
        expect("count", "has an invalid value")
    );
    assert_eq!(
        problem::<Strict>(r#"{"name": "a", "roles": ["x", null]}"#),
        expect("roles[1]", "has the wrong type (got null)")
    );
    assert_eq!(
        problem::<Strict>(r#"{"name": "a", "name": "b"}"#),
        expect("name", "is given more than once")
    );
    assert_eq!(
        problem::<Closed>(r#"{"other": 1}"#),
        expect("other", "is not a known field")
    );
    assert_eq!(
        problem::<Closed>(r#"{"flag": "yes"}"#),
        expect("flag", "has the wrong type (got a string)")
    );
    let error = json::<Strict>("{}").unwrap_err().into_field_error();
    assert_eq!(
        (error.field.as_str(), error.code),
        ("name", "invalid_value")
    );
}

#[test]
fn unknown_fields_are_ignored_unless_refused_and_valid_input_reads_as_serde_json_would() {
    let text = r#"{"name": "a", "count": 3, "roles": ["x"], "extra": {"deep": [1, 2.5, null]}}"#;
    let ours: Strict = json(text).unwrap();
    let theirs: Strict = serde_json::from_str(text).unwrap();
    assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    assert!(json::<Closed>(r#"{"flag": null}"#).is_ok());
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Query {
    limit: Option<u32>,
    id: Option<uuid::Uuid>,
    on: Option<bool>,
}

fn query(text: &str) -> Result<Query, FieldProblem> {
    Node::from_pairs(form_urlencoded::parse(text.as_bytes()).into_owned()).into_value()
}

#[test]
fn query_text_is_parsed_for_the_type_asked() {
    let parsed = query("limit=5&on=true&id=01932c07-6a4e-7c3a-9d1e-3f2b5c4a1e00&x=1").unwrap();
    assert_eq!(parsed.limit, Some(5));
    assert_eq!(parsed.on, Some(true));
    let refused = |text: &str| {
        let problem = query(text).unwrap_err();
        format!("{} {}", problem.field(), problem.message())
    };
    assert_eq!(
        refused("limit=abc"),
        "limit must be a whole number from 0 to 4294967295"
    );
    assert_eq!(
        refused("limit=-1"),
        "limit must be a whole number from 0 to 4294967295"
    );
    assert_eq!(refused("on=yes"), "on must be true or false");
    assert_eq!(refused("id=nope"), "id has an invalid value");
    assert_eq!(refused("limit=1&limit=2"), "limit is given more than once");
}
