//! The execution manager's runtime loop against in-process mock storage and scheduler servers
//! (`em/mock.rs`), running real tasks of the staged `fixtures` package natively: registration and
//! heartbeats, retried scheduler errors, stale / newer / equal sessions, storage answering stale
//! session or stale state, success and failure reports, a failing report not killing the loop
//! (and counted in `silk_em_report_retries_total`), cancellation during registration leaving the
//! assignment unacknowledged, drain, and being declared dead.

use crate::mock;
use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mock::{EM_ID, Register, Sched, Storage};
use silk_proto::scheduler as spb;
use silk_proto::storage as pb;
use silk_runtime::em::{EmConfig, Error, run_em, run_em_with};
use silk_runtime::metrics::Metrics;
use tokio_util::sync::CancellationToken;

struct Harness {
    storage: Arc<Storage>,
    sched: Arc<Sched>,
    stop: CancellationToken,
    kill: CancellationToken,
    servers: CancellationToken,
    em: tokio::task::JoinHandle<Result<(), Error>>,
    /// The EM's metrics.
    metrics: Metrics,
}

async fn start(session: u64, heartbeat_ms: u64, setup: impl FnOnce(&Storage, &Sched)) -> Harness {
    let storage = Arc::new(Storage::default());
    storage.session.store(session, Ordering::SeqCst);
    let sched = Arc::new(Sched::default());
    setup(&storage, &sched);
    let servers = CancellationToken::new();
    let (storage_url, scheduler_url) =
        mock::serve(storage.clone(), sched.clone(), servers.clone()).await;
    let config = EmConfig {
        storage_url,
        scheduler_url,
        slots: Some(2),
        package_dir: support::packages_dir(),
        native_packages: vec!["fixtures".into()],
        executor_bin: Some(support::executor_bin()),
        poll_wait_ms: 200,
        heartbeat_interval_ms: heartbeat_ms,
        drain_grace_ms: 10_000,
        ..EmConfig::default()
    };
    let (stop, kill) = (CancellationToken::new(), CancellationToken::new());
    let metrics = Metrics::new();
    let em = tokio::spawn({
        let (stop, kill, metrics) = (stop.clone(), kill.clone(), metrics.clone());
        async move { run_em_with(config, stop, kill, &metrics).await }
    });
    Harness {
        storage,
        sched,
        stop,
        kill,
        servers,
        em,
        metrics,
    }
}

impl Harness {
    async fn finish(self) -> Result<(), Error> {
        self.stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(15), self.em)
            .await
            .expect("em stops")
            .unwrap();
        self.kill.cancel();
        self.servers.cancel();
        r
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn assignment(id: u64, session: u64, job: u64, index: u64) -> spb::Assignment {
    spb::Assignment {
        assignment_id: id,
        session_id: session,
        resource_group_id: 1,
        job_id: job,
        kind: spb::TaskKind::Regular.into(),
        task_index: index,
    }
}

fn int_frame(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::from(v)).unwrap();
    silk_tdl::frame::encode([out]).unwrap()
}

fn context(instance: u64, function: &str, inputs: Vec<u8>) -> Register {
    Register::Context(pb::ExecutionContext {
        task_instance_id: instance,
        package: "fixtures".into(),
        function: function.into(),
        policy: Some(pb::Policy {
            max_retries: 0,
            max_instances: 1,
            soft_timeout_ms: 1000,
            hard_timeout_ms: 5000,
        }),
        inputs,
        job_outputs: None,
    })
}

fn fib(instance: u64, n: i64) -> Register {
    context(instance, "fibonacci", int_frame(n))
}

fn script(s: &Sched, batches: Vec<Result<Vec<spb::Assignment>, tonic::Code>>) {
    s.script.lock().unwrap().extend(batches);
}

fn acked(s: &Sched) -> Vec<u64> {
    s.acked.lock().unwrap().clone()
}

async fn watchdog(f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("watchdog");
}

#[tokio::test]
async fn registers_and_heartbeats_both_services() {
    watchdog(async {
        let h = start(5, 100, |_, _| {}).await;
        let (storage, sched) = (h.storage.clone(), h.sched.clone());
        until("heartbeats", || {
            storage.heartbeats.load(Ordering::SeqCst) >= 2
                && sched.heartbeats.load(Ordering::SeqCst) >= 2
        })
        .await;
        assert_eq!(storage.registrations.load(Ordering::SeqCst), 1);
        h.finish().await.unwrap();
        assert_eq!(sched.shutdowns.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn scheduler_errors_are_retried() {
    watchdog(async {
        let h = start(5, 100, |st, s| {
            script(
                s,
                vec![
                    Err(tonic::Code::Unavailable),
                    Ok(vec![assignment(1, 5, 3, 0)]),
                ],
            );
            st.register_script
                .lock()
                .unwrap()
                .push_back(Register::Error(tonic::Code::FailedPrecondition));
        })
        .await;
        let storage = h.storage.clone();
        until("registration", || {
            !storage.registered.lock().unwrap().is_empty()
        })
        .await;
        let sched = h.sched.clone();
        // Storage saw the request before the EM read the refusal: stopping now could catch the
        // registration in flight (then the assignment stays unacknowledged, by design).
        until("acknowledgement", || !acked(&sched).is_empty()).await;
        h.finish().await.unwrap();
        assert!(sched.polls.load(Ordering::SeqCst) >= 2);
        assert_eq!(acked(&sched), [1], "acknowledged once");
        assert!(sched.outstanding.lock().unwrap().is_empty());
        assert!(storage.reports.lock().unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn stale_assignment_is_dropped_but_acknowledged() {
    watchdog(async {
        let h = start(10, 100, |_, s| {
            script(s, vec![Ok(vec![assignment(1, 5, 3, 0)])])
        })
        .await;
        let sched = h.sched.clone();
        until("second poll", || sched.polls.load(Ordering::SeqCst) >= 2).await;
        let storage = h.storage.clone();
        h.finish().await.unwrap();
        assert!(storage.registered.lock().unwrap().is_empty());
        assert_eq!(acked(&sched), [1]);
    })
    .await;
}

#[tokio::test]
async fn newer_session_triggers_a_refresh_heartbeat() {
    watchdog(async {
        let h = start(5, 5000, |st, s| {
            script(s, vec![Ok(vec![assignment(1, 10, 3, 0)])]);
            st.register_script
                .lock()
                .unwrap()
                .push_back(Register::Error(tonic::Code::FailedPrecondition));
        })
        .await;
        let storage = h.storage.clone();
        until("registration", || {
            !storage.registered.lock().unwrap().is_empty()
        })
        .await;
        // The first heartbeat fires at start; the next regular one is 5 s away.
        until("refresh heartbeat", || {
            storage.heartbeats.load(Ordering::SeqCst) >= 2
        })
        .await;
        assert_eq!(storage.registered.lock().unwrap()[0], (10, 3, 0));
        h.finish().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn equal_session_registers_once_and_reports_success() {
    watchdog(async {
        let h = start(5, 100, |st, s| {
            script(s, vec![Ok(vec![assignment(1, 5, 3, 0)])]);
            st.register_script.lock().unwrap().push_back(fib(11, 10));
        })
        .await;
        let storage = h.storage.clone();
        until("report", || !storage.reports.lock().unwrap().is_empty()).await;
        let sched = h.sched.clone();
        h.finish().await.unwrap();
        assert_eq!(*storage.registered.lock().unwrap(), [(5, 3, 0)]);
        let reports = storage.reports.lock().unwrap().clone();
        assert_eq!(reports.len(), 1);
        let (session, em, outcome) = &reports[0];
        assert_eq!((*session, *em, outcome.task_instance_id), (5, EM_ID, 11));
        assert_eq!(outcome.task.as_ref().unwrap().job_id, 3);
        let Some(pb::task_outcome::Outcome::Outputs(frame)) = &outcome.outcome else {
            panic!("expected outputs: {outcome:?}");
        };
        let values = silk_tdl::frame::decode(frame).unwrap();
        assert_eq!(silk_tdl::frame::value::<u64>(values[0], 0).unwrap(), 55);
        assert_eq!(acked(&sched), [1]);
    })
    .await;
}

#[tokio::test]
async fn stale_session_from_storage_refreshes_and_drops() {
    watchdog(async {
        let h = start(5, 5000, |st, s| {
            script(s, vec![Ok(vec![assignment(1, 5, 3, 0)])]);
            st.register_script
                .lock()
                .unwrap()
                .push_back(Register::Error(tonic::Code::Aborted));
        })
        .await;
        let (storage, sched) = (h.storage.clone(), h.sched.clone());
        until("refresh heartbeat", || {
            storage.heartbeats.load(Ordering::SeqCst) >= 2
        })
        .await;
        until("next poll", || sched.polls.load(Ordering::SeqCst) >= 2).await;
        h.finish().await.unwrap();
        assert_eq!(storage.registered.lock().unwrap().len(), 1);
        assert!(storage.reports.lock().unwrap().is_empty());
        assert_eq!(acked(&sched), [1]);
    })
    .await;
}

#[tokio::test]
async fn stale_state_and_stale_session_both_keep_the_loop_going() {
    watchdog(async {
        let h = start(5, 100, |st, s| {
            script(
                s,
                vec![
                    Ok(vec![assignment(1, 5, 3, 0)]),
                    Ok(vec![assignment(2, 5, 3, 1)]),
                ],
            );
            let mut r = st.register_script.lock().unwrap();
            r.push_back(Register::Error(tonic::Code::FailedPrecondition));
            r.push_back(Register::Error(tonic::Code::Aborted));
        })
        .await;
        let (storage, sched) = (h.storage.clone(), h.sched.clone());
        until("two registrations", || {
            storage.registered.lock().unwrap().len() == 2
        })
        .await;
        until("third poll", || sched.polls.load(Ordering::SeqCst) >= 3).await;
        h.finish().await.unwrap();
        assert!(storage.reports.lock().unwrap().is_empty());
        let mut a = acked(&sched);
        a.sort_unstable();
        assert_eq!(a, [1, 2]);
    })
    .await;
}

#[tokio::test]
async fn a_failure_is_reported_with_its_kind_and_the_loop_keeps_serving() {
    watchdog(async {
        let h = start(5, 100, |st, s| {
            script(
                s,
                vec![
                    Ok(vec![assignment(1, 5, 3, 0)]),
                    Ok(vec![assignment(2, 5, 3, 1)]),
                ],
            );
            let mut r = st.register_script.lock().unwrap();
            r.push_back(context(
                21,
                "always_fail",
                silk_tdl::frame::encode(Vec::<Vec<u8>>::new()).unwrap(),
            ));
            r.push_back(fib(22, 10));
        })
        .await;
        let storage = h.storage.clone();
        until("two reports", || storage.reports.lock().unwrap().len() == 2).await;
        h.finish().await.unwrap();
        let reports = storage.reports.lock().unwrap().clone();
        let failure = reports
            .iter()
            .find_map(|(_, _, o)| match &o.outcome {
                Some(pb::task_outcome::Outcome::Failure(f)) => {
                    Some((o.task_instance_id, f.clone()))
                }
                _ => None,
            })
            .expect("a failure report");
        assert_eq!(failure.0, 21);
        assert_eq!(failure.1.kind, pb::FailureKind::TaskError as i32);
        assert!(
            failure.1.message.contains("always_fail"),
            "{}",
            failure.1.message
        );
        assert!(reports.iter().any(|(_, _, o)| o.task_instance_id == 22
            && matches!(o.outcome, Some(pb::task_outcome::Outcome::Outputs(_)))));
    })
    .await;
}

#[tokio::test]
async fn a_failing_report_is_retried_without_killing_the_loop() {
    watchdog(async {
        let h = start(5, 100, |st, s| {
            script(
                s,
                vec![
                    Ok(vec![assignment(1, 5, 3, 0)]),
                    Ok(vec![assignment(2, 5, 3, 1)]),
                ],
            );
            st.failing_reports.store(2, Ordering::SeqCst);
            let mut r = st.register_script.lock().unwrap();
            r.push_back(fib(31, 10));
            r.push_back(fib(32, 12));
        })
        .await;
        let storage = h.storage.clone();
        until("both reports", || {
            storage.reports.lock().unwrap().len() >= 2
        })
        .await;
        let metrics = h.metrics.clone();
        h.finish().await.unwrap();
        // Each refused attempt is counted once: the two scripted failures.
        let text = metrics.encode();
        assert!(
            text.contains("silk_em_report_retries_total 2\n"),
            "{}",
            text.lines()
                .filter(|l| l.contains("report_retries"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let mut ids: Vec<_> = storage
            .reports
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, o)| o.task_instance_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids, [31, 32]);
    })
    .await;
}

#[tokio::test]
async fn cancel_during_registration_leaves_the_assignment_unacknowledged() {
    watchdog(async {
        let h = start(5, 100, |st, s| {
            script(s, vec![Ok(vec![assignment(1, 5, 3, 0)])]);
            st.register_script.lock().unwrap().push_back(Register::Park);
        })
        .await;
        let storage = h.storage.clone();
        until("registration", || {
            !storage.registered.lock().unwrap().is_empty()
        })
        .await;
        let sched = h.sched.clone();
        h.finish().await.unwrap();
        assert_eq!(sched.shutdowns.load(Ordering::SeqCst), 1);
        assert!(acked(&sched).is_empty());
        assert!(sched.outstanding.lock().unwrap().contains(&1));
    })
    .await;
}

#[tokio::test]
async fn drain_finishes_the_running_task_and_reports_it() {
    watchdog(async {
        let h = start(5, 100, |st, s| {
            script(s, vec![Ok(vec![assignment(1, 5, 3, 0)])]);
            st.register_script.lock().unwrap().push_back(fib(41, 30));
        })
        .await;
        let storage = h.storage.clone();
        until("registration", || {
            !storage.registered.lock().unwrap().is_empty()
        })
        .await;
        let sched = h.sched.clone();
        h.finish().await.unwrap();
        let reports = storage.reports.lock().unwrap().clone();
        assert_eq!(
            reports.len(),
            1,
            "the running task finished and was reported"
        );
        assert!(matches!(
            reports[0].2.outcome,
            Some(pb::task_outcome::Outcome::Outputs(_))
        ));
        assert_eq!(acked(&sched), [1]);
    })
    .await;
}

#[tokio::test]
async fn marked_dead_stops_the_em() {
    watchdog(async {
        let h = start(5, 100, |st, _| st.dead.store(true, Ordering::SeqCst)).await;
        let r = tokio::time::timeout(Duration::from_secs(10), h.em)
            .await
            .expect("stops by itself")
            .unwrap();
        assert!(matches!(r, Err(Error::MarkedDead { .. })), "{r:?}");
        h.servers.cancel();
    })
    .await;
}

/// Native packages allowed but no executor binary: the EM refuses to start with a configuration
/// error naming the binary, before it registers, instead of failing every native task later.
#[tokio::test]
async fn native_packages_without_an_executor_is_a_config_error() {
    watchdog(async {
        let storage = Arc::new(Storage::default());
        let sched = Arc::new(Sched::default());
        let servers = CancellationToken::new();
        let (storage_url, scheduler_url) =
            mock::serve(storage.clone(), sched.clone(), servers.clone()).await;
        let config = EmConfig {
            storage_url,
            scheduler_url,
            slots: Some(1),
            package_dir: support::packages_dir(),
            native_packages: vec!["fixtures".into()],
            executor_bin: Some("/nonexistent/silk-executor-native".into()),
            ..EmConfig::default()
        };
        let (stop, kill) = (CancellationToken::new(), CancellationToken::new());
        let r = tokio::time::timeout(Duration::from_secs(10), run_em(config, stop, kill))
            .await
            .expect("fails at once");
        let Err(e @ Error::Config { .. }) = r else {
            panic!("expected a configuration error, got {r:?}");
        };
        assert!(
            e.to_string()
                .contains("/nonexistent/silk-executor-native is missing or not executable"),
            "{e}"
        );
        assert_eq!(storage.registrations.load(Ordering::SeqCst), 0);
        servers.cancel();
    })
    .await;
}

/// The same through `silk em`: with no `executor_bin` and nothing found, the error lists every
/// place searched and the exit status is 2 (a configuration error: restarting will not help).
#[test]
fn silk_em_without_an_executor_exits_2_naming_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("em.toml");
    let token = dir.path().join("cluster-token");
    std::fs::write(&token, "t".repeat(64)).unwrap();
    std::fs::write(
        &config,
        format!(
            "storage_url = \"http://127.0.0.1:9\"\nscheduler_url = \"http://127.0.0.1:9\"\n\
             package_dir = {:?}\nnative_packages = [\"fixtures\"]\nslots = 1\n\
             [auth]\ncluster_token_file = {token:?}\n",
            support::packages_dir()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(["em", "--config"])
        .arg(&config)
        .env("SILK_EM_METRICS_LISTEN", "127.0.0.1:0")
        .env("SILK_EXECUTOR_NATIVE", "/nonexistent/silk-executor-native")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("silk em did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("silk-executor-native not found (looked in $SILK_EXECUTOR_NATIVE (/nonexistent/silk-executor-native), "),
        "{stderr}"
    );
    assert!(stderr.contains(", PATH)"), "{stderr}");
}
