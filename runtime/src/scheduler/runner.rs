//! The scheduler core's async loop: keeps one storage poll in flight per lane (each asking for
//! the room the core has left, each served as soon as it answers), takes back rescheduled assignments,
//! and moves the core's decisions into the dispatch queue as room appears. Poll errors (storage
//! restarting, network) are retried with exponential backoff; the loop only ends on cancellation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::assignment::Assignment;
use super::core::{RoundRobinCore, SessionChange};
use super::dispatch::DispatchQueue;
use super::error::Result;
use crate::storage::db::Db;
use crate::storage::{LaneKind, ReadyTask, Storage};
use silk_core::ids::SessionId;
use silk_core::retry::next_delay;

/// How often finalizing gates are checked for expiry.
const EXPIRY_PERIOD: Duration = Duration::from_secs(1);

/// What one lane poll returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// The storage session that answered.
    pub session: SessionId,
    /// The entries (possibly empty).
    pub tasks: Vec<ReadyTask>,
}

/// Where the core's entries come from: storage's lanes, in-process or over gRPC.
pub trait LaneSource: Send + Sync + 'static {
    /// Long-polls one lane for up to `max` entries.
    fn poll(
        &self,
        kind: LaneKind,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Polled>> + Send;

    /// Called after polls work again following failures: entries popped by a poll whose answer
    /// was lost are gone, so a source may ask storage to queue every ready task again (the core
    /// drops the duplicates it still buffers).
    fn resync(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

impl<D: Db + Clone> LaneSource for Storage<D> {
    async fn poll(&self, kind: LaneKind, max: usize, wait: Duration) -> Result<Polled> {
        let session = self.session();
        let tasks = self.poll_lane(kind, max, wait).await;
        Ok(Polled { session, tasks })
    }
}

/// One lane's poll in flight: its kind and what storage answered.
type LanePoll = Pin<Box<dyn Future<Output = (LaneKind, Result<Polled>)> + Send>>;

/// The lanes, in the order their polls are checked.
const LANES: [LaneKind; 3] = [LaneKind::Commit, LaneKind::Cleanup, LaneKind::Ready];

/// A poll of `room` entries of one lane, after `delay` (the retry backoff).
fn arm<S: LaneSource>(
    source: &Arc<S>,
    kind: LaneKind,
    room: usize,
    wait: Duration,
    delay: Duration,
) -> LanePoll {
    let source = source.clone();
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        (kind, source.poll(kind, room, wait).await)
    })
}

/// Completes with the first poll that finishes (its slot becomes `None`); pending while none is
/// in flight. Polls still in flight are kept, never dropped: an answer storage already sent
/// would be lost with them.
async fn next_answer(polls: &mut [Option<LanePoll>; 3]) -> (usize, LaneKind, Result<Polled>) {
    std::future::poll_fn(|cx| {
        for (i, slot) in polls.iter_mut().enumerate() {
            if let Some(poll) = slot
                && let Poll::Ready((kind, result)) = poll.as_mut().poll(cx)
            {
                *slot = None;
                return Poll::Ready((i, kind, result));
            }
        }
        Poll::Pending
    })
    .await
}

/// Takes one lane's answer into the core; true if the poll failed.
fn consume(
    core: &mut RoundRobinCore,
    dispatch: &DispatchQueue,
    kind: LaneKind,
    result: Result<Polled>,
) -> bool {
    let polled = match result {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(lane = ?kind, error = %e, "storage poll failed; retrying");
            return true;
        }
    };
    if (!polled.tasks.is_empty() || polled.session > SessionId(0))
        && core.observe_session(polled.session) == SessionChange::Newer
    {
        match dispatch.bump_session(polled.session) {
            Ok(purged) => {
                tracing::info!(session = %polled.session, purged = purged.len(), "dispatch queue moved to new session");
            }
            Err(e) => tracing::error!(error = %e, "dispatch queue session out of step"),
        }
    }
    if polled.session == core.session() {
        core.ingest(&polled.tasks, Instant::now());
    } else if !polled.tasks.is_empty() {
        tracing::debug!(lane = ?kind, session = %polled.session, dropped = polled.tasks.len(), "entries of an older session dropped");
    }
    false
}

fn fill(core: &mut RoundRobinCore, dispatch: &DispatchQueue) {
    let free = dispatch.free();
    if free == 0 || core.buffered() == 0 {
        return;
    }
    let batch = core.decide(free);
    let pushed = dispatch.push(&batch);
    debug_assert_eq!(pushed, batch.len(), "only the core pushes");
}

/// Runs the core until `cancel`: polls `source`, takes back `reschedule`d assignments, fills
/// `dispatch`.
pub async fn run_core<S: LaneSource>(
    mut core: RoundRobinCore,
    source: Arc<S>,
    dispatch: DispatchQueue,
    mut reschedule: mpsc::UnboundedReceiver<Assignment>,
    cancel: CancellationToken,
) {
    let wait = core.config().storage_poll_wait();
    let mut polls: [Option<LanePoll>; 3] = [None, None, None];
    let mut backoff = [Duration::ZERO; 3];
    let mut expiry = tokio::time::interval(EXPIRY_PERIOD);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reschedule_open = true;
    loop {
        fill(&mut core, &dispatch);
        // Each lane with room keeps one poll in flight, so an answer on one lane is served at
        // once, not after the other lanes' long polls time out.
        for (i, kind) in LANES.into_iter().enumerate() {
            let room = core.room(kind);
            if polls[i].is_none() && room > 0 {
                polls[i] = Some(arm(&source, kind, room, wait, backoff[i]));
            }
        }
        let blocked = core.buffered() > 0 && dispatch.free() == 0;
        tokio::select! {
            () = cancel.cancelled() => return,
            (i, kind, result) = next_answer(&mut polls) => {
                if consume(&mut core, &dispatch, kind, result) {
                    backoff[i] = next_delay(backoff[i]);
                } else if backoff[i] > Duration::ZERO {
                    match source.resync().await {
                        Ok(()) => {
                            tracing::info!("storage reachable again");
                            backoff = [Duration::ZERO; 3];
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "storage resync failed; retrying");
                            backoff[i] = next_delay(backoff[i]);
                        }
                    }
                }
            }
            a = reschedule.recv(), if reschedule_open => match a {
                Some(a) => {
                    core.reschedule(&a, Instant::now());
                }
                None => reschedule_open = false,
            },
            () = dispatch.space(), if blocked => {}
            _ = expiry.tick() => core.expire_finalizing(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use silk_tdl::{JobId, ResourceGroupId, TaskId};

    use super::*;
    use crate::scheduler::assignment::AssignmentId;
    use crate::scheduler::config::CoreConfig;
    use crate::scheduler::error::Error;
    use crate::storage::lock;

    /// Scripted lanes: each poll pops the lane's next answer; an exhausted lane waits and
    /// answers empty in `idle_session`.
    #[derive(Default)]
    struct Script {
        answers: Mutex<HashMap<LaneKind, VecDeque<Result<Polled>>>>,
        idle_session: Mutex<SessionId>,
        calls: AtomicUsize,
    }

    impl Script {
        fn push(&self, kind: LaneKind, answer: Result<Polled>) {
            lock(&self.answers)
                .entry(kind)
                .or_default()
                .push_back(answer);
        }
    }

    impl LaneSource for Script {
        async fn poll(&self, kind: LaneKind, _max: usize, wait: Duration) -> Result<Polled> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = lock(&self.answers)
                .get_mut(&kind)
                .and_then(VecDeque::pop_front);
            if let Some(answer) = next {
                return answer;
            }
            tokio::time::sleep(wait).await;
            Ok(Polled {
                session: *lock(&self.idle_session),
                tasks: Vec::new(),
            })
        }
    }

    fn tasks(job: u64, n: u64) -> Vec<ReadyTask> {
        (0..n)
            .map(|t| ReadyTask {
                group: ResourceGroupId(1),
                job: JobId(job),
                task: TaskId::Index(t),
            })
            .collect()
    }

    fn start(
        script: &Arc<Script>,
        capacity: usize,
    ) -> (
        DispatchQueue,
        mpsc::UnboundedSender<Assignment>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let config = CoreConfig {
            dispatch_queue_capacity: capacity,
            storage_poll_wait_ms: 10,
            ..CoreConfig::default()
        };
        let dispatch = DispatchQueue::new(capacity);
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let core = RoundRobinCore::new(config);
        let handle = tokio::spawn(run_core(
            core,
            script.clone(),
            dispatch.clone(),
            rx,
            cancel.clone(),
        ));
        (dispatch, tx, cancel, handle)
    }

    async fn take(dispatch: &DispatchQueue, n: usize) -> Vec<Assignment> {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while got.len() < n {
                got.extend(dispatch.pop(n - got.len(), Duration::from_secs(1)).await);
            }
        })
        .await
        .expect("assignments dispatched");
        got
    }

    #[tokio::test]
    async fn storage_errors_are_retried_and_entries_dispatched() {
        let script = Arc::new(Script::default());
        *lock(&script.idle_session) = SessionId(2);
        for _ in 0..3 {
            script.push(
                LaneKind::Ready,
                Err(Error::Storage {
                    message: "connection refused".into(),
                }),
            );
        }
        script.push(
            LaneKind::Ready,
            Ok(Polled {
                session: SessionId(2),
                tasks: tasks(1, 3),
            }),
        );
        let (dispatch, _tx, cancel, handle) = start(&script, 2);
        let got = take(&dispatch, 3).await;
        assert_eq!(
            got.iter().map(|a| a.task).collect::<Vec<_>>(),
            (0..3).map(TaskId::Index).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|a| a.session == SessionId(2)));
        assert!(!handle.is_finished(), "errors never end the loop");
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn newer_session_purges_the_dispatch_queue() {
        let script = Arc::new(Script::default());
        *lock(&script.idle_session) = SessionId(1);
        script.push(
            LaneKind::Ready,
            Ok(Polled {
                session: SessionId(1),
                tasks: tasks(1, 4),
            }),
        );
        let (dispatch, _tx, cancel, handle) = start(&script, 2);
        tokio::time::timeout(Duration::from_secs(10), async {
            while dispatch.len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        *lock(&script.idle_session) = SessionId(2);
        script.push(
            LaneKind::Ready,
            Ok(Polled {
                session: SessionId(2),
                tasks: tasks(7, 1),
            }),
        );
        tokio::time::timeout(Duration::from_secs(10), async {
            while dispatch.session() != SessionId(2) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("session bumped");
        let got = take(&dispatch, 1).await;
        assert_eq!((got[0].job, got[0].session), (JobId(7), SessionId(2)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(dispatch.pop(10, Duration::ZERO).await.is_empty());
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn rescheduled_assignment_is_dispatched_again() {
        let script = Arc::new(Script::default());
        *lock(&script.idle_session) = SessionId(1);
        script.push(
            LaneKind::Ready,
            Ok(Polled {
                session: SessionId(1),
                tasks: tasks(1, 1),
            }),
        );
        let (dispatch, tx, cancel, handle) = start(&script, 4);
        let first = take(&dispatch, 1).await;
        tx.send(first[0]).unwrap();
        tx.send(Assignment {
            id: AssignmentId(77),
            session: SessionId(0),
            ..first[0]
        })
        .unwrap();
        let second = take(&dispatch, 1).await;
        assert_eq!(second[0].entry(), first[0].entry());
        assert_ne!(second[0].id, first[0].id);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(dispatch.is_empty(), "the stale reschedule is dropped");
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }
}
