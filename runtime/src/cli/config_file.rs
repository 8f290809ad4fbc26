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
    /// A listen address that is not `HOST:PORT`.
    #[error(
        "{key}: {value:?} is not a HOST:PORT address (e.g. 127.0.0.1:50051 or [::1]:50051){empty}"
    )]
    Address {
        /// The key (as in the config file).
        key: &'static str,
        /// Its value.
        value: String,
        /// How to turn the listener off, for keys that can be.
        empty: &'static str,
    },
    /// A service URL that is not `http(s)://HOST[:PORT]`.
    #[error(
        "{key}: {value:?} is not an http:// or https:// URL with a host (e.g. http://127.0.0.1:50051)"
    )]
    Url {
        /// The key (as in the config file).
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// A count that must be positive is zero.
    #[error("{key}: must be at least 1")]
    Zero {
        /// The key (as in the config file).
        key: &'static str,
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

/// Checks that `value`, the listen address of `key`, is `HOST:PORT` (a host name, an IPv4
/// address or a bracketed IPv6 one, then a port number), so a typo is a configuration error at
/// start rather than a failed bind later. With `may_be_off`, empty turns the listener off.
///
/// # Errors
/// [`ConfigError::Address`].
pub fn check_listen(key: &'static str, value: &str, may_be_off: bool) -> Result<(), ConfigError> {
    if may_be_off && value.trim().is_empty() {
        return Ok(());
    }
    let ok = value.rsplit_once(':').is_some_and(|(host, port)| {
        let host_ok = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
            // As the standard library reads it: a bare IPv6 address before the port works too.
            None => {
                !host.is_empty()
                    && !host.contains(['/', ' '])
                    && (!host.contains(':') || host.parse::<std::net::Ipv6Addr>().is_ok())
            }
        };
        host_ok && port.parse::<u16>().is_ok()
    });
    ok.then_some(()).ok_or_else(|| ConfigError::Address {
        key,
        value: value.to_owned(),
        empty: if may_be_off {
            "; empty turns it off"
        } else {
            ""
        },
    })
}

/// Checks that `value`, the URL of the service `key` names, is `http(s)://HOST[:PORT]`, so a typo
/// is a configuration error at start rather than a "transport error" retried forever.
///
/// # Errors
/// [`ConfigError::Url`].
pub fn check_url(key: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = value.parse::<tonic::codegen::http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|h| !h.is_empty())
    });
    ok.then_some(()).ok_or_else(|| ConfigError::Url {
        key,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_host_and_port() {
        for good in [
            "127.0.0.1:50051",
            "0.0.0.0:0",
            "[::1]:9151",
            "::1:9151",
            "storage:50051",
            "localhost:1",
        ] {
            check_listen("listen", good, false).unwrap();
        }
        check_listen("metrics_listen", "", true).unwrap();
        for bad in [
            "",
            "notanaddr",
            "127.0.0.1",
            ":50051",
            "127.0.0.1:port",
            "[::1]",
            "a b:1",
            "host:70000",
            "http://h:1",
        ] {
            let e = check_listen("listen", bad, false).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("listen: {bad:?} is not a HOST:PORT address")),
                "{e}"
            );
        }
        for good in [
            "http://127.0.0.1:50051",
            "https://storage.internal:50051",
            "http://[::1]:1",
            "http://s",
        ] {
            check_url("storage_url", good).unwrap();
        }
        for bad in [
            "",
            "notaurl",
            "127.0.0.1:50051",
            "ftp://h:1",
            "http://",
            "http:///x",
            "http//h:1",
        ] {
            let e = check_url("storage_url", bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("storage_url: {bad:?} is not an http")),
                "{e}"
            );
        }
        let e = check_listen("metrics_listen", "bad", true)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("; empty turns it off"), "{e}");
    }
}
