//! Authentication and transport security of silk's gRPC services (see `docs/deploy.md`).
//!
//! * **Credentials** travel as `authorization: Bearer <token>` metadata. The *cluster token*
//!   identifies storage, the scheduler and execution managers to each other; the *admin token*
//!   creates resource groups; a *group token* ([`GroupTokens`], issued by `OpenResourceGroup`
//!   to whoever proves the group's secret) opens that group's jobs and nothing else.
//! * [`rules::RULES`] is the one table of which RPC needs which credential; [`AuthLayer`]
//!   enforces it in front of every server, and the storage service checks that a job belongs
//!   to the caller's group.
//! * Tokens never appear in `Debug` output or logs ([`Token`]).
//!
//! ```
//! use silk_runtime::auth::{Caller, Rule, Token};
//! let cluster = Token::generate().unwrap();
//! assert!(cluster.matches(cluster.expose().as_bytes()));
//! assert!(Caller::Anonymous.admit(Rule::Service).is_err());
//! ```

mod caller;
mod client;
pub mod config;
mod group_token;
mod layer;
pub mod rules;
mod server;
mod token;

use std::path::PathBuf;

pub use caller::{AUTHORIZATION, Authority, BEARER, Caller};
pub use client::{AuthChannel, Bearer, ClientSecurity, plaintext_hint, tls_failure, with_token};
pub use group_token::{GroupTokens, group_of_token};
pub use layer::{AuthLayer, AuthService};
pub use rules::Rule;
pub use server::ServerSecurity;
pub use token::{MIN_TOKEN_CHARS, Token, write_secret_file};

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
