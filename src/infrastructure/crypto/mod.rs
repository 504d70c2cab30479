//! Password hashing and access-token signing adapters.

pub mod argon2;
pub mod jwt;
pub mod keys;
