//! Reading a service's TOML config file, and the errors of resolving a service's configuration
//! (file < `SILK_*` environment < flags). Shared by `silk storage`, `silk scheduler` and `silk em`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid config.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A service config without the `[auth]` table (services always check credentials).
    #[error(
        "{service} needs an [auth] table naming {keys} (see docs/config.md; deploy/make-certs makes them)"
    )]
    MissingAuth {
        /// The service.
        service: &'static str,
        /// The keys it needs.
        keys: &'static str,
    },
    /// An environment override is not a number.
    #[error("{var}: expected a non-negative integer, got {value:?}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

/// Reads and parses a TOML config file (the types refuse unknown keys).
///
/// # Errors
/// [`ConfigError::Read`] or [`ConfigError::Parse`], naming the file.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// `auth` itself, or [`ConfigError::MissingAuth`] naming `service` and the `keys` it needs.
///
/// # Errors
/// [`ConfigError::MissingAuth`] when `auth` is `None`.
pub fn require_auth<T>(
    auth: Option<T>,
    service: &'static str,
    keys: &'static str,
) -> Result<T, ConfigError> {
    auth.ok_or(ConfigError::MissingAuth { service, keys })
}
