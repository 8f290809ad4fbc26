//! Following a job: [`Client::watch`] streams [`Progress`] updates from storage's `WatchJob`,
//! reconnecting when the stream breaks (storage sends the current progress first, so nothing is
//! lost but intermediate counts); [`Client::wait`] builds on it and fetches the outcome.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use silk_proto::storage as pb;
use silk_tdl::JobId;
use tokio_stream::{Stream, StreamExt};

use super::error::transport_message;
use super::jobs::JobError;
use super::retry::{Backoff, Repeat, with_retry};
use super::{Client, ClientError, JobState};

/// A job's state and its regular tasks (not commit or cleanup) counted by task state; the
/// counts add up to `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The job state.
    pub state: JobState,
    /// Tasks waiting for their parents.
    pub pending: u64,
    /// Tasks that may be scheduled (also tasks waiting for a retry).
    pub ready: u64,
    /// Tasks with a running instance.
    pub running: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that ran out of retries (not failed attempts).
    pub failed: u64,
    /// Tasks that had not finished when the job was cancelled or failed.
    pub cancelled: u64,
    /// Regular tasks of the job.
    pub total: u64,
}

impl Progress {
    fn from_pb(p: &pb::JobProgress) -> Result<Self, ClientError> {
        let state = pb::JobState::try_from(p.state)
            .ok()
            .and_then(JobState::from_pb)
            .ok_or_else(|| ClientError::decode("job progress", "no job state"))?;
        Ok(Self {
            state,
            pending: p.pending,
            ready: p.ready,
            running: p.running,
            succeeded: p.succeeded,
            failed: p.failed,
            cancelled: p.cancelled,
            total: p.total,
        })
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Every task succeeded: the job outputs, in `graph.job_outputs()` order.
    Succeeded(Vec<rmpv::Value>),
    /// A task ran out of retries (or the commit / cleanup task failed).
    Failed(JobError),
    /// The job was cancelled (and cleaned up).
    Cancelled,
}

/// The stream of [`Client::watch`]: progress updates, ending after the one with a terminal
/// state (or after an error).
pub struct WatchStream {
    state: WatchState,
}

type Step =
    Pin<Box<dyn Future<Output = Option<(Result<Progress, ClientError>, Box<Cursor>)>> + Send>>;

enum WatchState {
    Idle(Box<Cursor>),
    Busy(Step),
    Done,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            WatchState::Idle(c) => format!("job {}", c.job),
            WatchState::Busy(_) => "waiting".to_owned(),
            WatchState::Done => "done".to_owned(),
        };
        f.debug_tuple("WatchStream").field(&state).finish()
    }
}

impl Stream for WatchStream {
    type Item = Result<Progress, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::mem::replace(&mut self.state, WatchState::Done) {
                WatchState::Idle(cursor) => self.state = WatchState::Busy(Box::pin(cursor.next())),
                WatchState::Busy(mut step) => {
                    return match step.as_mut().poll(cx) {
                        Poll::Pending => {
                            self.state = WatchState::Busy(step);
                            Poll::Pending
                        }
                        Poll::Ready(Some((item, cursor))) => {
                            self.state = WatchState::Idle(cursor);
                            Poll::Ready(Some(item))
                        }
                        Poll::Ready(None) => Poll::Ready(None),
                    };
                }
                WatchState::Done => return Poll::Ready(None),
            }
        }
    }
}

/// Where a watch is: the open stream, and the backoff while it is broken.
struct Cursor {
    client: Client,
    job: JobId,
    stream: Option<tonic::Streaming<pb::JobProgress>>,
    /// Set while reconnecting; reset by the next progress message.
    backoff: Option<Backoff>,
    finished: bool,
}

impl Cursor {
    async fn next(mut self: Box<Self>) -> Option<(Result<Progress, ClientError>, Box<Self>)> {
        if self.finished {
            return None;
        }
        loop {
            if self.stream.is_none() {
                let (client, job) = (self.client.clone(), self.job);
                let opened = with_retry(client.retry, Repeat::Idempotent, || {
                    let mut rpc = client.jobs_rpc();
                    async move { rpc.watch_job(pb::JobIdRequest { job_id: job.0 }).await }
                })
                .await;
                match opened {
                    Ok(reply) => self.stream = Some(reply.into_inner()),
                    Err(s) => {
                        self.finished = true;
                        let e = client.status_error(&s, Some(job));
                        return Some((Err(e), self));
                    }
                }
            }
            let stream = self.stream.as_mut()?;
            let broken = match stream.message().await {
                Ok(Some(p)) => {
                    self.backoff = None;
                    let item = Progress::from_pb(&p);
                    self.finished = item.as_ref().map_or(true, |p| p.state.is_terminal());
                    return Some((item, self));
                }
                Ok(None) => "storage ended the watch before the job finished".to_owned(),
                Err(s) => transport_message(&s),
            };
            self.stream = None;
            tracing::debug!(job_id = self.job.0, reason = %broken, "job watch interrupted; reconnecting");
            let retry = self.client.retry;
            let backoff = self.backoff.get_or_insert_with(|| Backoff::new(retry));
            if !backoff.wait().await {
                self.finished = true;
                let e = ClientError::Unavailable {
                    address: self.client.address().to_owned(),
                    message: broken,
                };
                return Some((Err(e), self));
            }
        }
    }
}

impl Client {
    /// Streams the job's progress: first its current progress, then every change, ending after
    /// a terminal state. A broken stream is reopened (within the retry policy's deadline per
    /// outage); an error ends the stream.
    #[must_use]
    pub fn watch(&self, job: JobId) -> WatchStream {
        WatchStream {
            state: WatchState::Idle(Box::new(Cursor {
                client: self.clone(),
                job,
                stream: None,
                backoff: None,
                finished: false,
            })),
        }
    }

    /// Waits until the job is terminal and returns its outcome (outputs or error included).
    ///
    /// # Errors
    /// [`ClientError::NotFound`], [`ClientError::Unavailable`] (storage gone for longer than the
    /// retry deadline), or the error of fetching the outputs or error.
    pub async fn wait(&self, job: JobId) -> Result<JobOutcome, ClientError> {
        let mut watch = self.watch(job);
        let mut last = None;
        while let Some(progress) = watch.next().await {
            last = Some(progress?.state);
        }
        match last {
            Some(JobState::Succeeded) => Ok(JobOutcome::Succeeded(self.outputs(job).await?)),
            Some(JobState::Failed) => Ok(JobOutcome::Failed(self.error(job).await?)),
            Some(JobState::Cancelled) => Ok(JobOutcome::Cancelled),
            _ => Err(ClientError::decode(
                "job progress",
                format!("the watch of job {job} ended before the job finished"),
            )),
        }
    }
}
