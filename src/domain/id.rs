//! Entity ids: time-ordered UUIDs (v7) wrapped in a type per entity, so that a session id
//! cannot be passed where a user id is expected.

/// Defines an id type over a UUID v7: `new` (fresh, time-ordered), `from_uuid` (read from
/// storage or a token), `as_uuid`, `Default` (a fresh id) and `Display` (the hyphenated UUID).
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
            /// Wraps an id read from storage or a token.
            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }
            /// The UUID inside.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

pub(crate) use uuid_id;
