//! The client side of silk's authentication and transport security: the bearer token a
//! process sends, the TLS it checks servers with, and the channels made from them. The server
//! side (which RPC needs which credential, group tokens) is in the services' crate.

mod client;
mod tls;
mod token;

use std::path::PathBuf;

pub use client::{AuthChannel, Bearer, ClientSecurity, plaintext_hint, tls_failure, with_token};
pub use tls::{ClientTls, read_file};
pub use token::{MIN_TOKEN_CHARS, Token, hex, write_secret_file};

/// The metadata key of the bearer credential.
pub const AUTHORIZATION: &str = "authorization";
/// What precedes the token in [`AUTHORIZATION`].
pub const BEARER: &str = "Bearer ";

/// A credential or TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A token is unfit.
    #[error("{what}: {reason}")]
    BadToken {
        /// Which token (its file).
        what: String,
        /// Why.
        reason: String,
    },
    /// A client cannot be made for this URL.
    #[error("{url}: {reason}")]
    Endpoint {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// TLS settings that cannot be used.
    #[error("tls: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// The OS random generator failed.
    #[error("random generator: {0}")]
    Random(String),
}
