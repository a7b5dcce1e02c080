//! The mbsync configuration language: reading an mbsyncrc into a typed, validated [`Config`].
//!
//! Errors carry `file:line` and say what was expected instead.

pub mod patterns;
mod types;

pub use types::*;
pub mod ops;
