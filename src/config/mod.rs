//! The mbsync configuration language: reading an mbsyncrc into a typed, validated [`Config`].
//!
//! [`load`] reads a file; [`parse_text`] parses text already in memory. Every problem of the
//! file is collected into one [`ConfigError`]; errors carry `FILE:LINE:` where the format
//! has a line, and say what was expected instead. Deprecation notices are returned
//! separately for the caller to print.

mod lexer;
pub mod location;
pub mod ops;
mod parser;
pub mod patterns;
mod types;

pub use location::{ConfigLocation, Environment, HomeNotSet, locate_config};
pub use ops::{cmdline_expunge_conflict, effective_ops};
pub use types::*;

/// A successfully read configuration and the notices to print (stderr).
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub notices: Vec<String>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `Cannot open config file '<path>': <strerror>`.
    #[error("Cannot open config file '{path}': {reason}")]
    Open { path: String, reason: String },
    /// The file has errors: every error line in file order (each printed on its own line),
    /// plus the notices that arose before loading failed.
    #[error("{}", .diagnostics.join("\n"))]
    Invalid {
        diagnostics: Vec<String>,
        notices: Vec<String>,
    },
}

impl ConfigError {
    /// The notices to print even though loading failed.
    pub fn notices(&self) -> &[String] {
        match self {
            ConfigError::Open { .. } => &[],
            ConfigError::Invalid { notices, .. } => notices,
        }
    }
}

/// Reads and validates the config file `path` (the name as it appears in messages, see
/// [`locate_config`]).
pub fn load(path: &str, env: &Environment) -> Result<Loaded, ConfigError> {
    let text = std::fs::read(path).map_err(|error| {
        let text = error.to_string();
        let reason = match text.find(" (os error") {
            Some(index) => text[..index].to_string(),
            None => text,
        };
        ConfigError::Open {
            path: path.to_string(),
            reason,
        }
    })?;
    parse_text(path, &text, env)
}

/// Parses config text as if read from the file `file` (used for messages and as the base of
/// relative paths).
pub fn parse_text(file: &str, text: &[u8], env: &Environment) -> Result<Loaded, ConfigError> {
    let outcome = parser::parse(file, text, env);
    if outcome.errors.is_empty() {
        Ok(Loaded {
            config: outcome.config,
            notices: outcome.notices,
        })
    } else {
        Err(ConfigError::Invalid {
            diagnostics: outcome.errors,
            notices: outcome.notices,
        })
    }
}
