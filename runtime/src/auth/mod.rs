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
pub mod config;
mod group_token;
mod layer;
pub mod rules;
mod server;

pub use caller::{Authority, Caller};
pub use group_token::{GroupTokens, group_of_token};
pub use layer::{AuthLayer, AuthService};
pub use rules::Rule;
pub use server::ServerSecurity;
pub use silk_core::auth::{
    AUTHORIZATION, AuthChannel, AuthError, BEARER, Bearer, ClientSecurity, MIN_TOKEN_CHARS, Token,
    plaintext_hint, tls_failure, with_token, write_secret_file,
};
