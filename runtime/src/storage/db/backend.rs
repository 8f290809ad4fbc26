//! The two [`Db`] backends. The queries are the same portable SQL for both (`?` placeholders, no
//! `RETURNING`, signed 64-bit columns, times as integers); the macro below instantiates them for
//! each sqlx driver, so the backends cannot drift apart. What differs — the last insert id,
//! "insert unless present", retention's isolation level — is passed in; connecting is in
//! `connect.rs`, shared helpers in `sql.rs`. Every call runs through [`retry`] (`retry.rs`).

use silk_tdl::{JobId, ResourceGroupId};
use sqlx::Row;

use super::connect::{MySqlDb, SqliteDb};
use super::retry::retry;
use super::secret::{self, Secret};
use super::sql::{JOB_COLUMNS, completion_chunks, constraint, parse_kind, parse_state};
use super::{
    Completion, Db, DbError, DbResult, JobError, JobFilter, JobRow, JobSummary, OutputsPage,
    SchedulerRow, StoredGraph, row_id, sql_id,
};
use silk_core::JobState;
use silk_core::ids::{ExecutionManagerId, SchedulerId, SessionId};

/// Most jobs retention deletes in one transaction.
const RETENTION_BATCH: usize = 256;

/// `ids` (not empty) made [`RETENTION_BATCH`] long by repeating the last one, so a retention
/// delete always has the same shape (see `sql::completion_chunks` for why shapes are bounded).
fn padded(ids: &[i64]) -> impl Iterator<Item = i64> + '_ {
    let last = ids.last().copied().unwrap_or_default();
    ids.iter()
        .copied()
        .chain(std::iter::repeat(last))
        .take(RETENTION_BATCH.max(ids.len()))
}

macro_rules! backend {
    (
        $ty:ident,
        $row:ty,
        last_id = |$r:ident| $last_id:expr,
        insert_ignore = $insert_ignore:literal,
        retention_isolation = $isolation:expr
    ) => {
        impl $ty {
            fn decode_job(row: &$row) -> DbResult<JobRow> {
                let error = match (
                    row.try_get::<Option<String>, _>("error_message")?,
                    row.try_get::<Option<String>, _>("failure_kind")?,
                ) {
                    (Some(message), Some(kind)) => Some(JobError { message, kind: parse_kind(&kind)? }),
                    _ => None,
                };
                Ok(JobRow {
                    id: JobId(row_id(row.try_get("id")?)?),
                    resource_group: ResourceGroupId(row_id(row.try_get("resource_group_id")?)?),
                    state: parse_state(&row.try_get::<String, _>("state")?)?,
                    graph: match (row.try_get::<Option<Vec<u8>>, _>("graph")?, row.try_get::<String, _>("graph_json")?) {
                        (Some(bytes), _) => StoredGraph::Compact(bytes),
                        (None, json) if json.is_empty() => StoredGraph::Parts,
                        (None, json) => StoredGraph::Json(json),
                    },
                    inputs: row.try_get("inputs")?,
                    outputs: row.try_get("outputs")?,
                    error,
                    created_at_ms: row.try_get("created_at_ms")?,
                    ended_at_ms: row.try_get("ended_at_ms")?,
                    task_count: row_id(row.try_get("task_count")?)?,
                })
            }

            /// The group named `external_id` if the secret matches; `None` if there is none.
            async fn verify_by_name(&self, external_id: &str, secret: &Secret) -> DbResult<Option<ResourceGroupId>> {
                let row: Option<(i64, String)> = retry(&self.options.retry, &self.stats, "verify_resource_group", || async {
                    Ok(sqlx::query_as("SELECT id, secret_hash FROM resource_groups WHERE external_id = ?")
                        .bind(external_id)
                        .fetch_optional(&self.pool)
                        .await?)
                })
                .await?;
                let Some((id, hash)) = row else { return Ok(None) };
                let id = ResourceGroupId(row_id(id)?);
                if secret::verify(secret, hash).await? {
                    Ok(Some(id))
                } else {
                    Err(DbError::InvalidSecret(id))
                }
            }

            async fn current_state(&self, id: JobId) -> DbResult<JobState> {
                let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                    .bind(sql_id(id.0))
                    .fetch_optional(&self.pool)
                    .await?;
                parse_state(&state.ok_or(DbError::JobNotFound(id))?)
            }

            /// Compare-and-swap of a job's state (plus outputs or error); retried when another
            /// writer moved the state in between, and when the database refused it. Returns the
            /// state left.
            async fn transition(
                &self,
                id: JobId,
                to: JobState,
                require_from: Option<JobState>,
                outputs: Option<&[u8]>,
                error: Option<&JobError>,
                now_ms: i64,
            ) -> DbResult<JobState> {
                let op = match (outputs, error) {
                    (Some(_), _) => "store_outputs",
                    (None, Some(_)) => "fail_job",
                    (None, None) => "set_state",
                };
                retry(&self.options.retry, &self.stats, op, || async {
                    loop {
                        let from = self.current_state(id).await?;
                        let allowed = from.can_become(to) && require_from.is_none_or(|f| f == from);
                        if !allowed {
                            return Err(DbError::InvalidTransition { job: id, from, to });
                        }
                        let ended = to.is_terminal().then_some(now_ms);
                        let done = sqlx::query(
                            "UPDATE jobs SET state = ?, updated_at_ms = ?, ended_at_ms = ?, \
                             outputs = COALESCE(?, outputs), error_message = COALESCE(?, error_message), \
                             failure_kind = COALESCE(?, failure_kind) WHERE id = ? AND state = ?",
                        )
                        .bind(to.as_str())
                        .bind(now_ms)
                        .bind(ended)
                        .bind(outputs)
                        .bind(error.map(|e| e.message.as_str()))
                        .bind(error.map(|e| e.kind.as_str()))
                        .bind(sql_id(id.0))
                        .bind(from.as_str())
                        .execute(&self.pool)
                        .await?;
                        if done.rows_affected() == 1 {
                            return Ok(from);
                        }
                    }
                })
                .await
            }

            async fn insert_resource_group(&self, external_id: &str, hash: &str, now_ms: i64) -> DbResult<ResourceGroupId> {
                retry(&self.options.retry, &self.stats, "add_resource_group", || async {
                    let $r = sqlx::query(
                        "INSERT INTO resource_groups (external_id, secret_hash, created_at_ms) VALUES (?, ?, ?)",
                    )
                    .bind(external_id)
                    .bind(hash)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        constraint(
                            e,
                            || DbError::ResourceGroupExists(external_id.to_owned()),
                            || DbError::Corrupt("foreign key on resource_groups".into()),
                        )
                    })?;
                    Ok(ResourceGroupId(row_id($last_id)?))
                })
                .await
            }

            /// Up to [`RETENTION_BATCH`] jobs that ended before `ended_before_ms`, oldest first,
            /// deleted by primary key (with their completions) in one transaction. Finding them is
            /// a plain read through the `jobs_ended` index: no lock on any other job's row.
            /// Returns how many jobs it deleted and whether there may be more.
            async fn delete_ended_batch(&self, ended_before_ms: i64) -> DbResult<(u64, bool)> {
                let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT id FROM jobs WHERE ended_at_ms < ? ORDER BY ended_at_ms LIMIT {RETENTION_BATCH}"
                )))
                .bind(ended_before_ms)
                .fetch_all(&self.pool)
                .await?;
                if ids.is_empty() {
                    return Ok((0, false));
                }
                let mut conn = self.pool.acquire().await?;
                if let Some(isolation) = $isolation {
                    sqlx::query(isolation).execute(&mut *conn).await?;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                for table in ["task_completions", "job_parts"] {
                    let mut rows = sqlx::QueryBuilder::new(format!("DELETE FROM {table} WHERE job_id IN ("));
                    let mut list = rows.separated(", ");
                    for id in padded(&ids) {
                        list.push_bind(id);
                    }
                    rows.push(")");
                    rows.build().execute(&mut *tx).await?;
                }
                let mut jobs = sqlx::QueryBuilder::new("DELETE FROM jobs WHERE id IN (");
                let mut list = jobs.separated(", ");
                for id in padded(&ids) {
                    list.push_bind(id);
                }
                jobs.push(") AND ended_at_ms < ").push_bind(ended_before_ms);
                let done = jobs.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok((done.rows_affected(), ids.len() == RETENTION_BATCH))
            }
        }

        impl Db for $ty {
            fn stats(&self) -> &super::retry::DbStats {
                &self.stats
            }

            async fn start_session(&self, now_ms: i64) -> DbResult<SessionId> {
                retry(&self.options.retry, &self.stats, "start_session", || async {
                    let $r = sqlx::query("INSERT INTO sessions (started_at_ms) VALUES (?)")
                        .bind(now_ms)
                        .execute(&self.pool)
                        .await?;
                    Ok(SessionId(row_id($last_id)?))
                })
                .await
            }

            async fn add_resource_group(
                &self,
                external_id: &str,
                secret: &Secret,
                now_ms: i64,
            ) -> DbResult<ResourceGroupId> {
                let hash = secret::hash(secret).await?;
                self.insert_resource_group(external_id, &hash, now_ms).await
            }

            async fn verify_resource_group(&self, id: ResourceGroupId, secret: &Secret) -> DbResult<()> {
                let hash: Option<String> = retry(&self.options.retry, &self.stats, "verify_resource_group", || async {
                    Ok(sqlx::query_scalar("SELECT secret_hash FROM resource_groups WHERE id = ?")
                        .bind(sql_id(id.0))
                        .fetch_optional(&self.pool)
                        .await?)
                })
                .await?;
                let hash = hash.ok_or(DbError::ResourceGroupNotFound(id))?;
                if secret::verify(secret, hash).await? {
                    Ok(())
                } else {
                    Err(DbError::InvalidSecret(id))
                }
            }

            async fn find_resource_group(
                &self,
                external_id: &str,
                secret: &Secret,
            ) -> DbResult<Option<ResourceGroupId>> {
                self.verify_by_name(external_id, secret).await
            }

            async fn open_resource_group(
                &self,
                external_id: &str,
                secret: &Secret,
                now_ms: i64,
            ) -> DbResult<ResourceGroupId> {
                if let Some(id) = self.verify_by_name(external_id, secret).await? {
                    return Ok(id);
                }
                match self.add_resource_group(external_id, secret, now_ms).await {
                    // Lost the race against a concurrent open (or add) of the same name.
                    Err(DbError::ResourceGroupExists(_)) => self
                        .verify_by_name(external_id, secret)
                        .await?
                        .ok_or_else(|| DbError::Corrupt(format!("resource group {external_id:?} vanished"))),
                    other => other,
                }
            }

            async fn insert_job(
                &self,
                group: ResourceGroupId,
                graph: &[Vec<u8>],
                inputs: &[u8],
                task_count: u64,
                now_ms: i64,
            ) -> DbResult<JobId> {
                retry(&self.options.retry, &self.stats, "insert_job", || async {
                    let mut tx = self.pool.begin().await?;
                    let $r = sqlx::query(
                        "INSERT INTO jobs (resource_group_id, state, graph_json, graph, inputs, task_count, created_at_ms, updated_at_ms) \
                         VALUES (?, ?, '', NULL, ?, ?, ?, ?)",
                    )
                    .bind(sql_id(group.0))
                    .bind(JobState::Ready.as_str())
                    .bind(&[][..])
                    .bind(sql_id(task_count))
                    .bind(now_ms)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        constraint(
                            e,
                            || DbError::Corrupt("duplicate job id".into()),
                            || DbError::ResourceGroupNotFound(group),
                        )
                    })?;
                    let id = $last_id;
                    let pieces = inputs.chunks(self.options.insert_bytes().max(1));
                    let parts = graph
                        .iter()
                        .enumerate()
                        .map(|(seq, chunk)| (0, seq, chunk.as_slice()))
                        .chain(pieces.enumerate().map(|(seq, piece)| (1, seq, piece)));
                    for (kind, seq, bytes) in parts {
                        sqlx::query("INSERT INTO job_parts (job_id, kind, seq, bytes) VALUES (?, ?, ?, ?)")
                            .bind(id)
                            .bind(kind)
                            .bind(sql_id(seq as u64))
                            .bind(bytes)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(JobId(row_id(id)?))
                })
                .await
            }

            async fn job_parts(&self, id: JobId) -> DbResult<(Vec<Vec<u8>>, Vec<u8>)> {
                retry(&self.options.retry, &self.stats, "job_parts", || async {
                    let mut kinds = Vec::with_capacity(2);
                    for kind in [0, 1] {
                        let parts: Vec<Vec<u8>> = sqlx::query_scalar(
                            "SELECT bytes FROM job_parts WHERE job_id = ? AND kind = ? ORDER BY seq",
                        )
                        .bind(sql_id(id.0))
                        .bind(kind)
                        .fetch_all(&self.pool)
                        .await?;
                        kinds.push(parts);
                    }
                    let inputs = kinds.pop().unwrap_or_default().concat();
                    Ok((kinds.pop().unwrap_or_default(), inputs))
                })
                .await
            }

            async fn job(&self, id: JobId) -> DbResult<JobRow> {
                retry(&self.options.retry, &self.stats, "job", || async {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{JOB_COLUMNS} WHERE id = ?")))
                        .bind(sql_id(id.0))
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or(DbError::JobNotFound(id))?;
                    Self::decode_job(&row)
                })
                .await
            }

            async fn job_outputs_page(
                &self,
                id: JobId,
                offset: u64,
                len: u64,
            ) -> DbResult<OutputsPage> {
                retry(&self.options.retry, &self.stats, "job_outputs_page", || async {
                    // SUBSTR counts from 1 on both databases and works on blobs.
                    let row: Option<(String, Option<i64>, Option<Vec<u8>>)> = sqlx::query_as(
                        "SELECT state, LENGTH(outputs), SUBSTR(outputs, ?, ?) FROM jobs WHERE id = ?",
                    )
                    .bind(sql_id(offset.saturating_add(1)))
                    .bind(sql_id(len))
                    .bind(sql_id(id.0))
                    .fetch_optional(&self.pool)
                    .await?;
                    let (state, total, page) = row.ok_or(DbError::JobNotFound(id))?;
                    Ok(OutputsPage {
                        state: parse_state(&state)?,
                        outputs: match (total, page) {
                            (Some(total), Some(page)) => Some((row_id(total)?, page)),
                            _ => None,
                        },
                    })
                })
                .await
            }

            async fn non_terminal_jobs(&self) -> DbResult<Vec<JobRow>> {
                retry(&self.options.retry, &self.stats, "non_terminal_jobs", || async {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "{JOB_COLUMNS} WHERE state IN ('Ready', 'Running', 'CommitReady', 'CleanupReady') ORDER BY id"
                    )))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(Self::decode_job).collect()
                })
                .await
            }

            async fn list_jobs(&self, filter: JobFilter) -> DbResult<Vec<JobSummary>> {
                let mut sql = String::from(
                    "SELECT id, resource_group_id, state, created_at_ms, ended_at_ms, task_count FROM jobs WHERE 1 = 1",
                );
                if filter.state.is_some() {
                    sql.push_str(" AND state = ?");
                }
                if filter.resource_group.is_some() {
                    sql.push_str(" AND resource_group_id = ?");
                }
                sql.push_str(" ORDER BY id DESC LIMIT ?");
                let sql = sql.as_str();
                let rows = retry(&self.options.retry, &self.stats, "list_jobs", || async {
                    let mut query = sqlx::query_as::<_, (i64, i64, String, i64, Option<i64>, i64)>(sqlx::AssertSqlSafe(sql));
                    if let Some(state) = filter.state {
                        query = query.bind(state.as_str());
                    }
                    if let Some(group) = filter.resource_group {
                        query = query.bind(sql_id(group.0));
                    }
                    Ok(query.bind(i64::from(filter.limit)).fetch_all(&self.pool).await?)
                })
                .await?;
                rows.into_iter()
                    .map(|(id, group, state, created_at_ms, ended_at_ms, task_count)| {
                        Ok(JobSummary {
                            id: JobId(row_id(id)?),
                            resource_group: ResourceGroupId(row_id(group)?),
                            state: parse_state(&state)?,
                            created_at_ms,
                            ended_at_ms,
                            task_count: row_id(task_count)?,
                        })
                    })
                    .collect()
            }

            async fn set_state(&self, id: JobId, to: JobState, now_ms: i64) -> DbResult<JobState> {
                self.transition(id, to, None, None, None, now_ms).await
            }

            async fn store_outputs(&self, id: JobId, outputs: &[u8], to: JobState, now_ms: i64) -> DbResult<()> {
                self.transition(id, to, Some(JobState::Running), Some(outputs), None, now_ms)
                    .await
                    .map(drop)
            }

            async fn fail_job(&self, id: JobId, error: &JobError, now_ms: i64) -> DbResult<()> {
                self.transition(id, JobState::Failed, None, None, Some(error), now_ms)
                    .await
                    .map(drop)
            }

            async fn record_completions(&self, completions: &[Completion], now_ms: i64) -> DbResult<()> {
                let max_bytes = self.options.insert_bytes();
                retry(&self.options.retry, &self.stats, "record_completions", || async {
                    let mut tx = self.pool.begin().await?;
                    // Many rows per statement: one round trip to the database per chunk, not per row.
                    for chunk in completion_chunks(completions, max_bytes) {
                        let mut insert = sqlx::QueryBuilder::new(concat!(
                            $insert_ignore,
                            " task_completions (job_id, task_index, outputs, completed_at_ms) "
                        ));
                        insert.push_values(chunk, |mut row, c| {
                            row.push_bind(sql_id(c.job.0))
                                .push_bind(sql_id(c.task))
                                .push_bind(c.outputs.as_slice())
                                .push_bind(now_ms);
                        });
                        insert.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
                .await
            }

            async fn completions(&self, id: JobId) -> DbResult<Vec<(u64, Vec<u8>)>> {
                let rows: Vec<(i64, Vec<u8>)> = retry(&self.options.retry, &self.stats, "completions", || async {
                    Ok(sqlx::query_as(
                        "SELECT task_index, outputs FROM task_completions WHERE job_id = ? ORDER BY task_index",
                    )
                    .bind(sql_id(id.0))
                    .fetch_all(&self.pool)
                    .await?)
                })
                .await?;
                rows.into_iter().map(|(i, o)| Ok((row_id(i)?, o))).collect()
            }

            async fn completion(&self, id: JobId, task: u64) -> DbResult<Option<Vec<u8>>> {
                let row: Option<(Vec<u8>,)> = retry(&self.options.retry, &self.stats, "completion", || async {
                    Ok(sqlx::query_as(
                        "SELECT outputs FROM task_completions WHERE job_id = ? AND task_index = ?",
                    )
                    .bind(sql_id(id.0))
                    .bind(sql_id(task))
                    .fetch_optional(&self.pool)
                    .await?)
                })
                .await?;
                Ok(row.map(|(o,)| o))
            }

            async fn delete_ended_jobs(&self, ended_before_ms: i64) -> DbResult<u64> {
                let mut deleted = 0_u64;
                loop {
                    let (n, more) = retry(&self.options.retry, &self.stats, "delete_ended_jobs", || {
                        self.delete_ended_batch(ended_before_ms)
                    })
                    .await?;
                    deleted += n;
                    if !more {
                        return Ok(deleted);
                    }
                }
            }

            async fn register_execution_manager(&self, address: &str, now_ms: i64) -> DbResult<ExecutionManagerId> {
                retry(&self.options.retry, &self.stats, "register_execution_manager", || async {
                    let $r = sqlx::query(
                        "INSERT INTO execution_managers (address, state, registered_at_ms, last_heartbeat_ms) \
                         VALUES (?, 'Alive', ?, ?)",
                    )
                    .bind(address)
                    .bind(now_ms)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                    Ok(ExecutionManagerId(row_id($last_id)?))
                })
                .await
            }

            async fn heartbeat(&self, id: ExecutionManagerId, now_ms: i64) -> DbResult<()> {
                let done = retry(&self.options.retry, &self.stats, "heartbeat", || async {
                    Ok(sqlx::query(
                        "UPDATE execution_managers SET last_heartbeat_ms = ? WHERE id = ? AND state = 'Alive'",
                    )
                    .bind(now_ms)
                    .bind(sql_id(id.0))
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
                })
                .await?;
                if done == 1 || self.execution_manager_alive(id).await? {
                    Ok(())
                } else {
                    Err(DbError::ExecutionManagerDead(id))
                }
            }

            async fn mark_dead_execution_managers(
                &self,
                stale_before_ms: i64,
                now_ms: i64,
            ) -> DbResult<Vec<ExecutionManagerId>> {
                // Candidates by a plain read, then one single-row compare-and-swap per candidate:
                // no statement ever holds locks on more than one row, so concurrent heartbeats
                // (single-row updates too) cannot deadlock with this sweep, and a row is claimed by
                // exactly one sweep.
                let candidates: Vec<i64> = retry(&self.options.retry, &self.stats, "mark_dead_execution_managers", || async {
                    Ok(sqlx::query_scalar(
                        "SELECT id FROM execution_managers WHERE state = 'Alive' AND last_heartbeat_ms < ? ORDER BY id",
                    )
                    .bind(stale_before_ms)
                    .fetch_all(&self.pool)
                    .await?)
                })
                .await?;
                let mut dead = Vec::new();
                for id in candidates {
                    let done = retry(&self.options.retry, &self.stats, "mark_dead_execution_managers", || async {
                        Ok(sqlx::query(
                            "UPDATE execution_managers SET state = 'Dead', dead_at_ms = ? \
                             WHERE id = ? AND state = 'Alive' AND last_heartbeat_ms < ?",
                        )
                        .bind(now_ms)
                        .bind(id)
                        .bind(stale_before_ms)
                        .execute(&self.pool)
                        .await?
                        .rows_affected())
                    })
                    .await?;
                    if done == 1 {
                        dead.push(ExecutionManagerId(row_id(id)?));
                    }
                }
                Ok(dead)
            }

            async fn execution_manager_alive(&self, id: ExecutionManagerId) -> DbResult<bool> {
                let state: Option<String> = retry(&self.options.retry, &self.stats, "execution_manager_alive", || async {
                    Ok(sqlx::query_scalar("SELECT state FROM execution_managers WHERE id = ?")
                        .bind(sql_id(id.0))
                        .fetch_optional(&self.pool)
                        .await?)
                })
                .await?;
                match state.as_deref() {
                    None => Err(DbError::UnknownExecutionManager(id)),
                    Some(s) => Ok(s == "Alive"),
                }
            }

            async fn register_scheduler(&self, host: &str, port: u16, now_ms: i64) -> DbResult<SchedulerId> {
                retry(&self.options.retry, &self.stats, "register_scheduler", || async {
                    let mut tx = self.pool.begin().await?;
                    sqlx::query("DELETE FROM schedulers").execute(&mut *tx).await?;
                    let $r = sqlx::query("INSERT INTO schedulers (host, port, registered_at_ms) VALUES (?, ?, ?)")
                        .bind(host)
                        .bind(i64::from(port))
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    let id = row_id($last_id)?;
                    tx.commit().await?;
                    Ok(SchedulerId(id))
                })
                .await
            }

            async fn schedulers(&self) -> DbResult<Vec<SchedulerRow>> {
                let rows: Vec<(i64, String, i64)> = retry(&self.options.retry, &self.stats, "schedulers", || async {
                    Ok(sqlx::query_as("SELECT id, host, port FROM schedulers ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?)
                })
                .await?;
                rows.into_iter()
                    .map(|(id, host, port)| {
                        Ok(SchedulerRow {
                            id: SchedulerId(row_id(id)?),
                            host,
                            port: u16::try_from(port).map_err(|_| DbError::Corrupt(format!("port {port}")))?,
                        })
                    })
                    .collect()
            }
        }
    };
}

backend!(
    SqliteDb,
    sqlx::sqlite::SqliteRow,
    last_id = |r| r.last_insert_rowid(),
    insert_ignore = "INSERT OR IGNORE INTO",
    retention_isolation = None::<&str>
);
backend!(
    MySqlDb,
    sqlx::mysql::MySqlRow,
    last_id = |r| i64::try_from(r.last_insert_id())
        .map_err(|_| DbError::Corrupt("id overflow".into()))?,
    insert_ignore = "INSERT IGNORE INTO",
    // Read committed: the deletes lock the rows they delete and no gaps, so inserts of new
    // jobs and completions never wait on retention.
    retention_isolation = Some("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
);
