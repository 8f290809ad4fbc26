//! The tenant half of authorization: after the auth layer let a group token through (see
//! `crate::auth::rules`), these checks keep it to its own group's jobs. A job of another group
//! and a job that does not exist get the same `PERMISSION_DENIED`, so a caller learns nothing
//! about other groups' jobs.

use silk_tdl::{JobId, ResourceGroupId};
use tonic::{Request, Status};

use super::convert::status;
use super::services::StorageServices;
use crate::auth::Caller;
use crate::storage::Error;
use crate::storage::db::Db;

/// The one answer for "not your job" and "no such job".
pub(super) fn not_yours(job: JobId) -> Status {
    Status::permission_denied(format!(
        "job {job} does not exist or is not in this token's resource group"
    ))
}

/// The one answer for "wrong secret" and "no such group" when opening without the admin token.
pub(super) fn no_such_group() -> Status {
    Status::unauthenticated(
        "wrong secret or unknown resource group (creating a group needs the admin token)",
    )
}

fn other_group(group: ResourceGroupId) -> Status {
    Status::permission_denied(format!(
        "resource group {group} is not this token's resource group"
    ))
}

impl<D: Db + Clone> StorageServices<D> {
    /// Whether the caller of `request` may touch `job`.
    pub(super) async fn own_job<T>(&self, request: &Request<T>, job: JobId) -> Result<(), Status> {
        let mine = match Caller::of(request) {
            Caller::Unchecked => return Ok(()),
            Caller::Group(group) => group,
            _ => return Err(not_yours(job)),
        };
        match self.storage.job_group(job).await {
            Ok(owner) if owner == mine => Ok(()),
            Ok(_) | Err(Error::JobNotFound(_)) => Err(not_yours(job)),
            Err(e) => Err(status(&e)),
        }
    }

    /// Whether the caller of `request` may register a job in `group`.
    pub(super) fn own_group<T>(request: &Request<T>, group: ResourceGroupId) -> Result<(), Status> {
        match Caller::of(request) {
            Caller::Unchecked => Ok(()),
            Caller::Group(mine) if mine == group => Ok(()),
            _ => Err(other_group(group)),
        }
    }

    /// The group a listing by the caller of `request` covers: the token's group (asking for
    /// another is refused), or what was asked for with the admin token.
    pub(super) fn listed_group<T>(
        request: &Request<T>,
        asked: Option<ResourceGroupId>,
    ) -> Result<Option<ResourceGroupId>, Status> {
        match (Caller::of(request), asked) {
            (Caller::Unchecked | Caller::Admin, asked) => Ok(asked),
            (Caller::Group(mine), None) => Ok(Some(mine)),
            (Caller::Group(mine), Some(group)) if group == mine => Ok(Some(mine)),
            (_, Some(group)) => Err(other_group(group)),
            (_, None) => Err(Status::permission_denied(
                "listing jobs needs a resource-group token or the admin token",
            )),
        }
    }

    /// Whether the caller of `request` may create resource groups.
    pub(super) fn may_create_groups<T>(request: &Request<T>) -> bool {
        matches!(Caller::of(request), Caller::Unchecked | Caller::Admin)
    }

    /// The token answering an open or add of `group` (empty when credentials are off).
    pub(super) fn token_of(&self, group: ResourceGroupId) -> String {
        self.tokens
            .as_ref()
            .map(|t| t.issue(group).expose().to_owned())
            .unwrap_or_default()
    }
}
