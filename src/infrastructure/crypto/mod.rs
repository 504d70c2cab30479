//! Password hashing, access-token signing and ID-token signing adapters.

pub mod argon2;
pub mod id_token;
pub mod jwt;
pub mod keys;
pub mod sealer;
