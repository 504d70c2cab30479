//! Error responses that many operations document alike, declared once (each is a type the
//! `responses(...)` of `#[utoipa::path]` accepts).

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

/// A problem-document response described by `description`.
fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemBody")))
                .build(),
        )
        .build()
        .into()
}

macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? })*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status, $description)),+]
                    .into_iter()
                    .map(|(status, description): (u16, &str)| {
                        (status.to_string(), problem(description))
                    })
                    .collect()
            }
        }
    )*};
}

problem_responses! {
    /// 401 of an operation behind a bearer token.
    Unauthenticated {
        401 => "Missing, invalid, expired or revoked access token",
    }
    /// 401 and 403 of an operation for admins only.
    AdminOnly {
        401 => "Missing, invalid, expired or revoked access token",
        403 => "The caller is not an admin (insufficient_scope)",
    }
    /// 503 of an operation that needs the database.
    DatabaseDown {
        503 => "Database unavailable",
    }
    /// 413 and 415 of an operation with a JSON body.
    BodyRefused {
        413 => "Body over the configured limit",
        415 => "Body is not JSON",
    }
}
