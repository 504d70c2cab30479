//! Refusals of a request's body or parameters, answered in both formats with one sentence.

use axum::http::StatusCode;

use super::{Problem, NOT_JSON, TOO_LARGE};
use crate::domain::validation::FieldError;

/// Why a request's body or parameters were refused before any use case ran. Each becomes a
/// problem document on the API and RFC 6749 error JSON on the OAuth2 endpoints, with the same
/// sentence.
#[derive(Debug)]
pub enum Rejection {
    /// The body is not declared as JSON.
    NotJson,
    /// The body is not declared as `application/x-www-form-urlencoded`.
    NotForm,
    /// The body is over the configured limit.
    TooLarge,
    /// The body could not be read (the connection failed).
    Unreadable,
    /// The body is not JSON: what is wrong (`invalid JSON syntax`, `unexpected end`) and where.
    MalformedJson {
        what: &'static str,
        line: usize,
        column: usize,
    },
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A field or parameter is missing, unknown, repeated, or of the wrong type.
    Field(FieldError),
}

impl Rejection {
    /// The sentence shared by both formats (a field's is prefixed with its name).
    pub(super) fn sentence(&self) -> String {
        match self {
            Self::NotJson => NOT_JSON.to_owned(),
            Self::NotForm => {
                "Send the body form-encoded (Content-Type: application/x-www-form-urlencoded)."
                    .to_owned()
            }
            Self::TooLarge => TOO_LARGE.to_owned(),
            Self::Unreadable => "The request body could not be read.".to_owned(),
            Self::MalformedJson { what, line, column } => {
                format!("The body is not valid JSON: {what} at line {line} column {column}.")
            }
            Self::NotAnObject => format!("The body {NOT_AN_OBJECT}."),
            Self::Field(error) => format!("{} {}", error.field, error.message),
        }
    }
}

/// The message of a body that is valid JSON but not an object.
const NOT_AN_OBJECT: &str = "must be a JSON object";

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Self {
        use StatusCode as S;
        let sentence = rejection.sentence();
        match rejection {
            Rejection::NotJson | Rejection::NotForm => Self::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                sentence,
            ),
            Rejection::TooLarge => Self::new(S::PAYLOAD_TOO_LARGE, "payload_too_large", sentence),
            Rejection::Unreadable => Self::new(S::BAD_REQUEST, "bad_request", sentence),
            Rejection::MalformedJson { .. } => {
                Self::new(S::BAD_REQUEST, "malformed_json", sentence)
            }
            Rejection::NotAnObject => Self::invalid_field("body", "not_an_object", NOT_AN_OBJECT),
            Rejection::Field(error) => Self::validation(vec![error]),
        }
    }
}
