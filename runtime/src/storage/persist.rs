//! Group commit of task completions: one actor owns the write path; concurrent completions queue
//! on a channel and the actor writes everything queued so far in one transaction, then answers
//! each caller. Under load one commit (one fsync) covers many tasks; an idle system still commits
//! each completion at once.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::db::{Completion, Db};
use super::error::{Error, Result};

type Reply = oneshot::Sender<std::result::Result<(), String>>;

/// Handle to the group-commit actor.
#[derive(Debug, Clone)]
pub struct Persister {
    tx: mpsc::UnboundedSender<(Completion, Reply)>,
}

impl Persister {
    /// Spawns the actor on `tracker`; it stops when `cancel` fires and the queue is drained.
    pub fn spawn<D: Db + Clone>(
        db: D,
        max_batch: usize,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tracker.spawn(run(db, rx, max_batch.max(1), cancel));
        Self { tx }
    }

    /// Persists one completion; returns once it is committed.
    ///
    /// # Errors
    /// [`Error::Persist`] if the transaction failed, [`Error::Stopping`] if the actor is gone.
    pub async fn persist(&self, completion: Completion) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((completion, reply))
            .map_err(|_| Error::Stopping)?;
        rx.await
            .map_err(|_| Error::Stopping)?
            .map_err(Error::Persist)
    }
}

async fn run<D: Db>(
    db: D,
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
        let result = write(&db, &completions).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, count = completions.len(), "group commit failed");
        } else {
            tracing::trace!(count = completions.len(), "group commit");
        }
        drop(completions);
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

/// Writes a batch, retrying a failed transaction a few times (e.g. a busy database).
async fn write<D: Db>(db: &D, completions: &[Completion]) -> std::result::Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3_u32 {
        match db.record_completions(completions, super::now_ms()).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
    }
    Err(last)
}
