//! Where a client finds its credential: a token from the `SILK_TOKEN` environment variable or a
//! token file, and the **credentials file** `silk dev` writes (mode 0600) so the job CLI and
//! [`Client::from_env`](super::Client::from_env) work with no flags. The file is TOML:
//!
//! ```toml
//! address = "http://127.0.0.1:50051"
//! token = "..."            # the admin token of a `silk dev` cluster, or a group token
//! ca_file = "/path/ca.pem" # optional: verify a TLS server against this CA
//! ```
//!
//! Its place: `SILK_CREDENTIALS`, else `$XDG_CONFIG_HOME/silk/credentials.toml`, else
//! `$HOME/.config/silk/credentials.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use silk_core::auth::{AuthError, ClientSecurity, Token, write_secret_file};

/// The environment variable holding a token.
pub const TOKEN_ENV: &str = "SILK_TOKEN";
/// The environment variable naming the credentials file.
pub const CREDENTIALS_ENV: &str = "SILK_CREDENTIALS";

/// The contents of a credentials file. `Debug` hides the token.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Credentials {
    /// The storage URL.
    pub address: Option<String>,
    /// The token to send: a group token, or a cluster's admin token.
    pub token: Option<String>,
    /// The CA certificate (PEM) a TLS storage server must chain to.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Credentials {
    /// Where the credentials file is: [`CREDENTIALS_ENV`], else under `$XDG_CONFIG_HOME`, else
    /// under `$HOME/.config`; `None` when none of them is set.
    #[must_use]
    pub fn default_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        let set = |k: &str| env(k).filter(|v| !v.is_empty());
        if let Some(path) = set(CREDENTIALS_ENV) {
            return Some(path.into());
        }
        let config = set("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| set("HOME").map(|h| Path::new(&h).join(".config")))?;
        Some(config.join("silk").join("credentials.toml"))
    }

    /// Reads the file at `path`; `None` when it does not exist.
    ///
    /// # Errors
    /// [`AuthError::Read`] or [`AuthError::BadToken`] naming the file.
    pub fn read(path: &Path) -> Result<Option<Self>, AuthError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| AuthError::BadToken {
                what: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Writes the file at `path` with mode 0600.
    ///
    /// # Errors
    /// The I/O error.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        write_secret_file(
            path,
            &format!("# silk credentials: keep this file private (mode 0600)\n{text}"),
        )
    }

    /// What a client sends and checks with: `token` (already resolved by the caller's
    /// precedence) and this file's CA.
    ///
    /// # Errors
    /// As [`Token::new`] and [`silk_core::auth::ClientTls::load`].
    pub fn security(&self, token: Option<&str>) -> Result<ClientSecurity, AuthError> {
        let token = token
            .or(self.token.as_deref())
            .map(|t| Token::new(t, "token"))
            .transpose()?;
        let tls = self
            .ca_file
            .as_ref()
            .map(|ca| {
                silk_core::auth::ClientTls {
                    ca_file: Some(ca.clone()),
                    ..Default::default()
                }
                .load()
            })
            .transpose()?;
        Ok(ClientSecurity { token, tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_privately_and_hides_its_token() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silk/credentials.toml");
        assert_eq!(Credentials::read(&path).unwrap(), None);
        let token = Token::generate().unwrap();
        let c = Credentials {
            address: Some("http://127.0.0.1:1".into()),
            token: Some(token.expose().to_owned()),
            ca_file: None,
        };
        c.write(&path).unwrap();
        assert_eq!(Credentials::read(&path).unwrap(), Some(c.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!format!("{c:?}").contains(token.expose()));
        let security = c.security(None).unwrap();
        assert!(security.token.unwrap().matches(token.expose().as_bytes()));
        std::fs::write(&path, "tokn = 1\n").unwrap();
        assert!(Credentials::read(&path).is_err());
    }

    #[test]
    fn the_default_place() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_owned())
        };
        assert_eq!(
            Credentials::default_path(env(&[("SILK_CREDENTIALS", "/a"), ("HOME", "/h")])),
            Some("/a".into())
        );
        assert_eq!(
            Credentials::default_path(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some("/x/silk/credentials.toml".into())
        );
        assert_eq!(
            Credentials::default_path(env(&[("HOME", "/h")])),
            Some("/h/.config/silk/credentials.toml".into())
        );
        assert_eq!(Credentials::default_path(env(&[])), None);
    }
}
