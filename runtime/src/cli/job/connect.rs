//! How `silk job` connects and whom it acts for. The address comes from `--address` /
//! `SILK_ADDRESS`, else the credentials file, else `http://127.0.0.1:50051`; the token from
//! `--token-file`, else `SILK_TOKEN`, else the credentials file (`silk dev` writes one with its
//! admin token; see `silk_client::credentials`). A group token fixes the resource group; any
//! other token (the admin token) opens `--group` with `SILK_GROUP_SECRET`, creating the group
//! if it is new.

use silk_tdl::ResourceGroupId;

use super::{Connection, Failure};
use crate::auth::{Token, group_of_token};
use crate::cli::exit_code;
use silk_client::credentials::{self, Credentials};
use silk_client::{Client, DEFAULT_ADDRESS};

/// A client of the cluster, and the group its token is for (if it is a group token).
#[derive(Debug)]
pub(super) struct Session {
    pub(super) client: Client,
    token_group: Option<ResourceGroupId>,
}

fn bad(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: exit_code::UNAUTHENTICATED,
        message: e.to_string(),
    }
}

/// Connects as the flags, the environment and the credentials file say.
pub(super) fn session(conn: &Connection) -> Result<Session, Failure> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut file = match Credentials::default_path(env) {
        Some(path) => Credentials::read(&path).map_err(bad)?.unwrap_or_default(),
        None => Credentials::default(),
    };
    let token = match &conn.token_file {
        Some(path) => Some(Token::from_file(path).map_err(bad)?.expose().to_owned()),
        None => env(credentials::TOKEN_ENV),
    };
    if conn.ca_file.is_some() {
        file.ca_file.clone_from(&conn.ca_file);
    }
    let security = file.security(token.as_deref()).map_err(bad)?;
    let token_group = security
        .token
        .as_ref()
        .and_then(|t| group_of_token(t.expose()));
    let address = conn
        .address
        .clone()
        .filter(|a| !a.is_empty())
        .or(file.address)
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    Ok(Session {
        client: Client::connect_with(&address, &security)?,
        token_group,
    })
}

impl Session {
    /// The resource group the commands act for; afterwards the client sends its token.
    pub(super) async fn group(&self, conn: &Connection) -> Result<ResourceGroupId, Failure> {
        if let Some(group) = self.token_group {
            return Ok(group);
        }
        let secret = std::env::var("SILK_GROUP_SECRET").unwrap_or_default();
        Ok(self
            .client
            .open_group(&conn.group, secret.as_bytes())
            .await?)
    }
}
