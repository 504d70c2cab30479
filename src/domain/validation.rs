//! Field-level validation failures, collected so that a client learns every problem at once.

use std::fmt;

/// One invalid input field: which field, a machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The input field, as the client named it (`username`, `new_password`, ...).
    pub field: String,
    /// A snake_case machine code (`too_short`, `invalid_characters`, ...).
    pub code: &'static str,
    /// A sentence a person can act on. Never echoes a secret.
    pub message: String,
}

impl FieldError {
    /// A failure of `field` with a machine `code` and a `message`.
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code,
            message: message.into(),
        }
    }

    /// The same failure reported under another field name (e.g. `password` → `new_password`).
    pub fn for_field(mut self, field: &str) -> Self {
        self.field = field.to_owned();
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects field failures while parsing several inputs.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Keeps the value of a successful parse, records the failure of a failed one.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    /// Every failure recorded, or `Ok` when there was none.
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}
