//! Client-facing lookups of the storage service that read the database rather than the job
//! cache: opening or finding a resource group by name, a job's group, and listing jobs,
//! terminated ones included until their retention ends.

use silk_tdl::{JobId, ResourceGroupId};

use super::db::{Db, JobFilter, JobSummary, Secret};
use super::error::Result;
use super::now_ms;
use super::service::Storage;
use silk_core::JobState;

/// Jobs a listing returns when the caller asks for 0.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Most jobs one listing returns.
pub const MAX_LIST_LIMIT: u32 = 1000;

impl<D: Db + Clone> Storage<D> {
    /// Returns the resource group named `external_id`, creating it when the name is new and
    /// checking the secret when it is not. Concurrent opens of one new name get the same group.
    ///
    /// # Errors
    /// A database error; a wrong secret is `DbError::InvalidSecret`.
    pub async fn open_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
    ) -> Result<ResourceGroupId> {
        Ok(self
            .shared
            .db
            .open_resource_group(external_id, secret, now_ms())
            .await?)
    }

    /// The resource group named `external_id` if `secret` is its secret; `None` when there is
    /// no such group (nothing is created: creating needs the admin credential).
    ///
    /// # Errors
    /// A database error; a wrong secret is `DbError::InvalidSecret`.
    pub async fn find_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
    ) -> Result<Option<ResourceGroupId>> {
        Ok(self
            .shared
            .db
            .find_resource_group(external_id, secret)
            .await?)
    }

    /// The resource group of a job (the job cache first, then the database).
    ///
    /// # Errors
    /// [`Error::JobNotFound`](super::Error::JobNotFound), a database error.
    pub async fn job_group(&self, id: JobId) -> Result<ResourceGroupId> {
        match self.cached(id) {
            Some(job) => Ok(job.group),
            None => Ok(self.shared.db.job(id).await?.resource_group),
        }
    }

    /// Jobs newest first, optionally only those in `state` or of `group`. `limit` 0 means
    /// [`DEFAULT_LIST_LIMIT`]; larger than [`MAX_LIST_LIMIT`] is capped. Job states come from the
    /// database, which every transition writes before the cache.
    ///
    /// # Errors
    /// A database error.
    pub async fn list_jobs(
        &self,
        limit: u32,
        state: Option<JobState>,
        group: Option<ResourceGroupId>,
    ) -> Result<Vec<JobSummary>> {
        let limit = match limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        let filter = JobFilter {
            limit,
            state,
            resource_group: group,
        };
        Ok(self.shared.db.list_jobs(filter).await?)
    }
}
