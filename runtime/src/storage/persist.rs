//! Group commit of task completions: one actor owns the write path; concurrent completions queue
//! on a channel and the actor writes everything queued so far in one transaction, then answers
//! each caller. Under load one commit (one fsync) covers many tasks; an idle system still commits
//! each completion at once.
//!
//! What the database refuses is handled by kind, so a completion that can be stored always is:
//!
//! * **transient** (deadlock, lock wait, busy, connection lost — already retried a few times by
//!   the database layer): the same batch is written again after a backoff (capped at
//!   [`MAX_BACKOFF`]), until it lands or storage stops; every failed try is logged with its
//!   attempt number. Writing a completion twice is harmless (an existing row is kept);
//! * **permanent**: the batch is split in halves and each half written on its own, down to single
//!   completions, so the other completions land; the refused one is answered with [`Refused`]
//!   (its task fails; it is never written again).
//!
//! A completion larger than `db_max_write_bytes` is refused before it reaches the database.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::db::{Completion, Db, DbError};
use crate::metrics::storage::StorageCounters;

/// Longest sleep between two writes of a batch the database refused transiently.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// First sleep after a transient refusal.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// Why a completion was not stored. Never retried by the caller: the same bytes are refused
/// again (except [`Refused::Stopping`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Larger than storage's own row limit.
    #[error("outputs of {bytes} bytes exceed db_max_write_bytes = {limit}")]
    OverLimit {
        /// The outputs frame's length.
        bytes: u64,
        /// `db_max_write_bytes`.
        limit: u64,
    },
    /// The database refused the row for its size (`max_allowed_packet`, SQLite's blob limit).
    #[error("outputs of {bytes} bytes are too large for the database: {message}")]
    TooLargeForDatabase {
        /// The outputs frame's length.
        bytes: u64,
        /// The database's message (names its limit).
        message: String,
    },
    /// The database refused the row for another permanent reason.
    #[error("the database refused the completion: {0}")]
    Permanent(String),
    /// Storage stopped before the completion was written (transient for the reporter: a new
    /// session takes it).
    #[error("storage is shutting down")]
    Stopping,
}

type Reply = oneshot::Sender<Result<(), Refused>>;

/// Handle to the group-commit actor.
#[derive(Debug, Clone)]
pub struct Persister {
    tx: mpsc::UnboundedSender<(Completion, Reply)>,
}

impl Persister {
    /// Spawns the actor on `tracker`; it stops when `cancel` fires and the queue is drained.
    /// Completions larger than `max_write_bytes` are refused without a write.
    pub fn spawn<D: Db + Clone>(
        db: D,
        max_batch: usize,
        max_write_bytes: u64,
        counters: StorageCounters,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            db,
            max_write_bytes,
            counters,
            cancel: cancel.clone(),
        };
        tracker.spawn(run(writer, rx, max_batch.max(1), cancel));
        Self { tx }
    }

    /// Persists one completion; returns once it is committed.
    ///
    /// # Errors
    /// [`Refused`]: the completion will never be stored, or storage is stopping.
    pub async fn persist(&self, completion: Completion) -> Result<(), Refused> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((completion, reply))
            .map_err(|_| Refused::Stopping)?;
        rx.await.map_err(|_| Refused::Stopping)?
    }
}

async fn run<D: Db>(
    writer: Writer<D>,
    mut rx: mpsc::UnboundedReceiver<(Completion, Reply)>,
    max_batch: usize,
    cancel: CancellationToken,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        let first = tokio::select! {
            item = rx.recv() => item,
            () = cancel.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        // Outputs move into the write, never copied: they can be many MiB.
        let (completions, replies): (Vec<Completion>, Vec<Reply>) = batch.drain(..).unzip();
        let started = std::time::Instant::now();
        let results = writer.write(&completions).await;
        #[expect(clippy::cast_precision_loss, reason = "a batch size as a sample")]
        writer
            .counters
            .commit_batch
            .observe(completions.len() as f64);
        writer
            .counters
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        drop(completions);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Writes batches of completions; see the module docs.
struct Writer<D> {
    db: D,
    max_write_bytes: u64,
    counters: StorageCounters,
    cancel: CancellationToken,
}

impl<D: Db> Writer<D> {
    /// Writes `completions`; returns one result per completion, in order.
    async fn write(&self, completions: &[Completion]) -> Vec<Result<(), Refused>> {
        let mut results: Vec<Result<(), Refused>> = vec![Ok(()); completions.len()];
        let mut fits = Vec::with_capacity(completions.len());
        for (i, c) in completions.iter().enumerate() {
            let bytes = c.outputs.len() as u64;
            if bytes > self.max_write_bytes {
                tracing::warn!(
                    job_id = c.job.0,
                    task = c.task,
                    bytes,
                    limit = self.max_write_bytes,
                    "completion over db_max_write_bytes refused"
                );
                results[i] = Err(Refused::OverLimit {
                    bytes,
                    limit: self.max_write_bytes,
                });
            } else {
                fits.push(i);
            }
        }
        // Runs of indexes still to write; a run the database refuses permanently is split.
        let mut runs = vec![fits];
        while let Some(run) = runs.pop() {
            if run.is_empty() {
                continue;
            }
            // The whole batch (the usual case) is written as it is; only a split copies rows.
            let rows: std::borrow::Cow<'_, [Completion]> = if run.len() == completions.len() {
                std::borrow::Cow::Borrowed(completions)
            } else {
                run.iter().map(|&i| completions[i].clone()).collect()
            };
            match self.write_until_stored(&rows).await {
                Ok(()) => tracing::trace!(count = rows.len(), "group commit"),
                Err(WriteError::Stopping) => {
                    for &i in &run {
                        results[i] = Err(Refused::Stopping);
                    }
                }
                Err(WriteError::Permanent(e)) if run.len() > 1 => {
                    tracing::warn!(count = run.len(), error = %e, "group commit refused; writing the batch in halves");
                    let (a, b) = run.split_at(run.len() / 2);
                    runs.push(b.to_vec());
                    runs.push(a.to_vec());
                }
                Err(WriteError::Permanent(e)) => {
                    let c = &completions[run[0]];
                    let bytes = c.outputs.len() as u64;
                    tracing::error!(job_id = c.job.0, task = c.task, bytes, error = %e, "completion refused by the database");
                    results[run[0]] = Err(if e.is_too_large() {
                        Refused::TooLargeForDatabase {
                            bytes,
                            message: e.to_string(),
                        }
                    } else {
                        Refused::Permanent(e.to_string())
                    });
                }
            }
        }
        results
    }

    /// Writes `rows` in one transaction, again and again while the database refuses it
    /// transiently; stops trying once storage is stopping.
    async fn write_until_stored(&self, rows: &[Completion]) -> Result<(), WriteError> {
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            let e = match self.db.record_completions(rows, super::now_ms()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(WriteError::Permanent(e)),
            };
            self.counters.commit_retries.inc();
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << attempt.min(10))
                .min(MAX_BACKOFF);
            tracing::warn!(attempt, count = rows.len(), backoff_ms = backoff.as_millis() as u64, error = %e, "group commit failed transiently; writing it again");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.cancel.cancelled() => {
                    tracing::error!(attempt, count = rows.len(), error = %e, "storage stopping; completions not written");
                    return Err(WriteError::Stopping);
                }
            }
        }
    }
}

/// Why [`Writer::write_until_stored`] gave up.
#[derive(Debug)]
enum WriteError {
    Permanent(DbError),
    Stopping,
}
