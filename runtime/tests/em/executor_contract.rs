//! The executor contract: every backend (native over pipes, wasm in the sandbox; each added
//! through `contract_tests!`) runs the same cases against the staged `fixtures` and `complex`
//! packages. Where backends legitimately differ, the backend says so (e.g.
//! [`Backend::ABORT_KIND`]: an abort kills a native executor but is a trap in wasm).

use crate::support;

use std::time::{Duration, Instant};

use rmpv::Value;
use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::{Execute, FailureKind, TaskFailure};
use silk_runtime::em::pool::{NativeExecutor, NativeExecutorConfig, TransportKind};
use silk_tdl::{JobId, ResourceGroupId, TaskContext, TaskId, TaskInstanceId, TdlError};
use support::{executor_bin, frame, outputs, packages_dir, request, request_with};

/// Generous bound for tasks that should finish at once.
const QUICK: Duration = Duration::from_secs(20);

/// One way of running tasks.
trait Backend: Sized {
    /// How the `abort` fixture ends on this backend.
    const ABORT_KIND: FailureKind;
    /// A fresh backend over the staged packages.
    fn start() -> Self;
    /// Runs one task.
    fn execute(&mut self, req: &Execute, timeout: Duration) -> Result<Vec<u8>, TaskFailure>;
    /// Identifies the process that runs tasks, when there is one.
    fn process(&self) -> Option<u32>;
}

/// A native executor child over `transport`, checked to really use it.
fn native(transport: TransportKind) -> NativeExecutor {
    let config =
        NativeExecutorConfig::new(executor_bin(), packages_dir()).with_transport(transport);
    let executor = NativeExecutor::spawn(config).unwrap();
    assert_eq!(executor.transport(), Some(transport));
    executor
}

/// Native executor child over the shared-memory ring (the default transport).
struct NativeShm(NativeExecutor);

impl Backend for NativeShm {
    const ABORT_KIND: FailureKind = FailureKind::Crashed;

    fn start() -> Self {
        Self(native(TransportKind::Shm))
    }

    fn execute(&mut self, req: &Execute, timeout: Duration) -> Result<Vec<u8>, TaskFailure> {
        self.0.execute(req, timeout).map(|s| s.outputs)
    }

    fn process(&self) -> Option<u32> {
        self.0.pid()
    }
}

/// Native executor child over pipes.
struct NativePipe(NativeExecutor);

impl Backend for NativePipe {
    const ABORT_KIND: FailureKind = FailureKind::Crashed;

    fn start() -> Self {
        Self(native(TransportKind::Pipe))
    }

    fn execute(&mut self, req: &Execute, timeout: Duration) -> Result<Vec<u8>, TaskFailure> {
        self.0.execute(req, timeout).map(|s| s.outputs)
    }

    fn process(&self) -> Option<u32> {
        self.0.pid()
    }
}

/// The wasm sandbox, in process. Compiled modules are shared between tests through a disk cache.
struct Wasm(WasmHost);

impl Backend for Wasm {
    const ABORT_KIND: FailureKind = FailureKind::Trap;

    fn start() -> Self {
        let config = HostConfig {
            package_dir: Some(packages_dir()),
            cache_dir: Some(
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("silk-wasm-cache"),
            ),
            ..HostConfig::default()
        };
        Self(WasmHost::new(config).unwrap())
    }

    fn execute(&mut self, req: &Execute, timeout: Duration) -> Result<Vec<u8>, TaskFailure> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap();
        let policy = SandboxPolicy {
            timeout_ms,
            ..SandboxPolicy::default()
        };
        self.0
            .execute(
                &req.package,
                &req.function,
                &req.context,
                &req.inputs,
                &policy,
            )
            .map(|(out, _)| out)
    }

    fn process(&self) -> Option<u32> {
        None
    }
}

fn fib(b: &mut impl Backend, n: u64) -> u64 {
    let out = b
        .execute(
            &request("fixtures", "fibonacci", frame(&[Value::from(n)])),
            QUICK,
        )
        .unwrap();
    outputs::<u64>(&out)[0]
}

fn task_error(r: Result<Vec<u8>, TaskFailure>) -> TdlError {
    match r {
        Err(TaskFailure::Task(e)) => e,
        other => panic!("expected a task error, got {other:?}"),
    }
}

fn commit_ctx(outputs: &[i64]) -> TaskContext {
    let outs = outputs
        .iter()
        .map(|v| rmp_serde::to_vec(v).unwrap())
        .collect();
    TaskContext::commit(JobId(1), TaskInstanceId(1), ResourceGroupId(1), outs)
}

fn c(re: f64, im: f64) -> Value {
    Value::Array(vec![Value::from(re), Value::from(im)])
}

fn cvec(items: &[(f64, f64)]) -> Value {
    Value::Array(items.iter().map(|&(re, im)| c(re, im)).collect())
}

fn complex(
    b: &mut impl Backend,
    task: &str,
    a: &[(f64, f64)],
    bb: &[(f64, f64)],
) -> Result<Vec<u8>, TaskFailure> {
    b.execute(
        &request("complex", task, frame(&[cvec(a), cvec(bb)])),
        QUICK,
    )
}

mod cases {
    use super::*;

    pub fn fibonacci_10_is_55<B: Backend>() {
        assert_eq!(fib(&mut B::start(), 10), 55);
    }

    pub fn always_fail_is_a_task_error_naming_itself<B: Backend>() {
        let mut b = B::start();
        let e = task_error(b.execute(&request("fixtures", "always_fail", frame(&[])), QUICK));
        assert!(
            matches!(&e, TdlError::Execution(m) if m.contains("always_fail")),
            "{e:?}"
        );
    }

    pub fn panic_is_reported_and_the_executor_keeps_serving<B: Backend>() {
        let mut b = B::start();
        let before = b.process();
        match b.execute(&request("fixtures", "always_panic", frame(&[])), QUICK) {
            Err(TaskFailure::Panicked { message }) => {
                assert!(message.contains("always_panic"), "{message}")
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert_eq!(fib(&mut b, 7), 13);
        assert_eq!(
            b.process(),
            before,
            "a caught panic must not cost the executor"
        );
    }

    pub fn abort_is_contained_and_the_next_task_runs<B: Backend>() {
        let mut b = B::start();
        let err = b
            .execute(&request("fixtures", "abort", frame(&[])), QUICK)
            .unwrap_err();
        assert_eq!(err.kind(), B::ABORT_KIND, "{err}");
        assert_eq!(fib(&mut b, 7), 13);
    }

    pub fn hard_timeout_stops_the_task_then_the_next_task_runs<B: Backend>() {
        let mut b = B::start();
        let start = Instant::now();
        let err = b.execute(
            &request("fixtures", "fibonacci", frame(&[Value::from(45u64)])),
            Duration::from_millis(200),
        );
        assert_eq!(err, Err(TaskFailure::Timeout { after_ms: 200 }));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timeout took {:?}",
            start.elapsed()
        );
        assert_eq!(fib(&mut b, 7), 13);
    }

    pub fn commit_task_sees_job_outputs<B: Backend>() {
        let mut b = B::start();
        let run = |b: &mut B, ctx: &TaskContext| {
            b.execute(
                &request_with("fixtures", "assert_outputs_sum_zero", ctx, frame(&[])),
                QUICK,
            )
        };
        assert_eq!(
            run(&mut b, &commit_ctx(&[3, -1, -2])).map(|o| outputs::<Value>(&o)),
            Ok(vec![])
        );
        let e = task_error(run(&mut b, &commit_ctx(&[1, 2, 3])));
        assert!(e.to_string().contains("sum is 6"), "{e}");
        let e = task_error(run(&mut b, &commit_ctx(&[])));
        assert!(e.to_string().contains("no outputs"), "{e}");
        let regular = TaskContext::new(
            JobId(1),
            TaskId::Index(0),
            TaskInstanceId(1),
            ResourceGroupId(1),
        )
        .unwrap();
        let e = task_error(run(&mut b, &regular));
        assert!(e.to_string().contains("must run as a commit task"), "{e}");
    }

    pub fn unknown_task_is_not_found<B: Backend>() {
        let mut b = B::start();
        let e = task_error(b.execute(&request("fixtures", "nope", frame(&[])), QUICK));
        let TdlError::TaskNotFound(message) = e else {
            panic!("not TaskNotFound: {e:?}");
        };
        assert!(
            message.starts_with(r#""nope"; the package's tasks: abort, "#),
            "names the task and lists the package's: {message}"
        );
    }

    pub fn bad_inputs_are_deserialization_errors<B: Backend>() {
        let mut b = B::start();
        let e = task_error(b.execute(
            &request("fixtures", "fibonacci", frame(&[Value::from("x")])),
            QUICK,
        ));
        assert_eq!(
            e,
            TdlError::Deserialization(
                r#"input 0 (`n`) of fibonacci: expected u64, got the string "x""#.into()
            )
        );
        let e = task_error(b.execute(&request("fixtures", "fibonacci", frame(&[])), QUICK));
        assert!(
            matches!(&e, TdlError::Deserialization(m) if m.contains("expected 1 values")),
            "{e:?}"
        );
    }

    pub fn unknown_and_unsafe_package_names_are_package_errors<B: Backend>() {
        let mut b = B::start();
        for name in [
            "no_such_package",
            "../fixtures",
            "fixtures/../fixtures",
            "a b",
            "",
        ] {
            let err = b
                .execute(
                    &request(name, "fibonacci", frame(&[Value::from(1u64)])),
                    QUICK,
                )
                .unwrap_err();
            assert_eq!(err.kind(), FailureKind::PackageError, "{name:?}: {err}");
        }
        assert_eq!(fib(&mut b, 7), 13);
    }

    pub fn init_hook_runs_before_the_first_task<B: Backend>() {
        let mut b = B::start();
        assert!(
            b.execute(
                &request("fixtures", "assert_initialized", frame(&[])),
                QUICK
            )
            .is_ok()
        );
    }

    pub fn complex_tasks_compute_hand_checked_values<B: Backend>() {
        let mut b = B::start();
        let dec =
            |r: Result<Vec<u8>, TaskFailure>| outputs::<Vec<(f64, f64)>>(&r.unwrap()).remove(0);
        assert_eq!(
            dec(complex(
                &mut b,
                "add",
                &[(1., 2.), (3., 4.), (-1.5, 0.5)],
                &[(10., 20.), (-3., 0.), (0.5, -0.5)]
            )),
            vec![(11., 22.), (0., 4.), (-1., 0.)]
        );
        assert_eq!(
            dec(complex(
                &mut b,
                "sub",
                &[(5., 5.), (1., 2.)],
                &[(1., 1.), (-1., -2.)]
            )),
            vec![(4., 4.), (2., 4.)]
        );
        let dot = complex(
            &mut b,
            "dot_product",
            &[(1., 2.), (5., 6.)],
            &[(3., 4.), (7., 8.)],
        )
        .unwrap();
        assert_eq!(outputs::<(f64, f64)>(&dot), vec![(-18., 92.)]);
        let x = [(1., 0.), (0., 0.), (0., 0.)];
        let y = [(0., 0.), (1., 0.), (0., 0.)];
        assert_eq!(
            dec(complex(&mut b, "cross_product", &x, &y)),
            vec![(0., 0.), (0., 0.), (1., 0.)]
        );
        // (1+i, 2, 0) x (0, i, 3) = (2*3 - 0*i, 0*0 - (1+i)*3, (1+i)*i - 2*0) = (6, -3-3i, -1+i)
        let cross = dec(complex(
            &mut b,
            "cross_product",
            &[(1., 1.), (2., 0.), (0., 0.)],
            &[(0., 0.), (0., 1.), (3., 0.)],
        ));
        assert_eq!(cross, vec![(6., 0.), (-3., -3.), (-1., 1.)]);
        for task in ["add", "sub", "dot_product"] {
            let e = task_error(complex(&mut b, task, &[(1., 1.)], &[(1., 1.), (2., 2.)]));
            assert!(e.to_string().contains("length mismatch"), "{task}: {e}");
        }
        let e = task_error(complex(
            &mut b,
            "cross_product",
            &[(1., 1.), (2., 2.)],
            &[(1., 1.), (2., 2.)],
        ));
        assert!(e.to_string().contains("length 3"), "{e}");
        let e = task_error(b.execute(&request("complex", "always_fail", frame(&[])), QUICK));
        assert!(matches!(e, TdlError::Custom(_)), "{e:?}");
    }

    pub fn noop_has_no_outputs<B: Backend>() {
        let mut b = B::start();
        let out = b
            .execute(&request("fixtures", "noop", frame(&[])), QUICK)
            .unwrap();
        assert_eq!(out, vec![0, 0, 0, 0], "an empty frame");
    }

    pub fn sleep_and_echo_returns_its_input<B: Backend>() {
        let mut b = B::start();
        let paths: Vec<Value> = (0..100)
            .map(|i| Value::from(format!("/var/log/file_{i:05}.log")))
            .collect();
        let out = b.execute(
            &request(
                "fixtures",
                "sleep_and_echo",
                frame(&[Value::Array(paths.clone())]),
            ),
            QUICK,
        );
        assert_eq!(outputs::<Value>(&out.unwrap()), vec![Value::Array(paths)]);
    }
}

macro_rules! contract_tests {
    ($module:ident, $backend:ty) => {
        mod $module {
            use super::*;

            #[test]
            fn fibonacci_10_is_55() {
                cases::fibonacci_10_is_55::<$backend>();
            }
            #[test]
            fn always_fail_is_a_task_error_naming_itself() {
                cases::always_fail_is_a_task_error_naming_itself::<$backend>();
            }
            #[test]
            fn panic_is_reported_and_the_executor_keeps_serving() {
                cases::panic_is_reported_and_the_executor_keeps_serving::<$backend>();
            }
            #[test]
            fn abort_is_contained_and_the_next_task_runs() {
                cases::abort_is_contained_and_the_next_task_runs::<$backend>();
            }
            #[test]
            fn hard_timeout_stops_the_task_then_the_next_task_runs() {
                cases::hard_timeout_stops_the_task_then_the_next_task_runs::<$backend>();
            }
            #[test]
            fn commit_task_sees_job_outputs() {
                cases::commit_task_sees_job_outputs::<$backend>();
            }
            #[test]
            fn unknown_task_is_not_found() {
                cases::unknown_task_is_not_found::<$backend>();
            }
            #[test]
            fn bad_inputs_are_deserialization_errors() {
                cases::bad_inputs_are_deserialization_errors::<$backend>();
            }
            #[test]
            fn unknown_and_unsafe_package_names_are_package_errors() {
                cases::unknown_and_unsafe_package_names_are_package_errors::<$backend>();
            }
            #[test]
            fn init_hook_runs_before_the_first_task() {
                cases::init_hook_runs_before_the_first_task::<$backend>();
            }
            #[test]
            fn complex_tasks_compute_hand_checked_values() {
                cases::complex_tasks_compute_hand_checked_values::<$backend>();
            }
            #[test]
            fn noop_has_no_outputs() {
                cases::noop_has_no_outputs::<$backend>();
            }
            #[test]
            fn sleep_and_echo_returns_its_input() {
                cases::sleep_and_echo_returns_its_input::<$backend>();
            }
        }
    };
}

contract_tests!(native_shm, NativeShm);
contract_tests!(native_pipe, NativePipe);
contract_tests!(wasm, Wasm);

/// Native only: the init hook's failure (requested through the environment, which wasm packages
/// cannot see) makes the package unusable with a `PackageError` naming the init error.
#[test]
fn native_init_failure_is_a_package_error() {
    let mut config = NativeExecutorConfig::new(executor_bin(), packages_dir());
    config
        .env
        .push(("SILK_TEST_INIT_SHOULD_FAIL".into(), "1".into()));
    let mut b = NativeExecutor::spawn(config).unwrap();
    for _ in 0..2 {
        let err = b
            .execute(
                &request("fixtures", "fibonacci", frame(&[Value::from(3u64)])),
                QUICK,
            )
            .unwrap_err();
        assert_eq!(err.kind(), FailureKind::PackageError, "{err}");
        assert!(err.to_string().contains("init failure requested"), "{err}");
    }
}

/// Native only: a library built for another ABI version is refused before any other symbol is
/// looked up (the test package exports nothing but its version).
#[test]
fn native_abi_version_mismatch_is_a_package_error() {
    let mut b = NativePipe::start();
    let err = b
        .execute(&request("bad_abi", "anything", frame(&[])), QUICK)
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::PackageError, "{err}");
    assert!(err.to_string().contains("ABI version 999"), "{err}");
}

/// Native only: the executor is a separate process that exits when asked.
#[test]
fn native_executor_shuts_down_cleanly() {
    let b =
        NativeExecutor::spawn(NativeExecutorConfig::new(executor_bin(), packages_dir())).unwrap();
    assert_eq!(b.shutdown(Duration::from_secs(5)), "exited with status 0");
}

/// Native only: shared memory is the default transport; a segment that cannot be set up (here:
/// a ring size that is not a power of two) falls back to pipes and tasks still run.
#[test]
fn native_transport_defaults_to_shm_and_falls_back_to_pipes() {
    let b =
        NativeExecutor::spawn(NativeExecutorConfig::new(executor_bin(), packages_dir())).unwrap();
    assert_eq!(b.transport(), Some(TransportKind::Shm));
    let mut config = NativeExecutorConfig::new(executor_bin(), packages_dir());
    config.shm_ring_bytes = 5000;
    let mut b = NativeExecutor::spawn(config).unwrap();
    assert_eq!(b.transport(), Some(TransportKind::Pipe));
    let out = b
        .execute(
            &request("fixtures", "fibonacci", frame(&[Value::from(10u64)])),
            QUICK,
        )
        .unwrap();
    assert_eq!(outputs::<u64>(&out.outputs), vec![55]);
}

/// Native only: a missing executor binary is a clear spawn error, not a hang or a panic.
#[test]
fn native_missing_executor_binary_is_a_spawn_error() {
    let err = NativeExecutor::spawn(NativeExecutorConfig::new(
        "/nonexistent/silk-executor-native".into(),
        packages_dir(),
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("missing or not executable"),
        "{err}"
    );
}

/// Fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp, … (`None` once the
/// process is gone).
fn proc_stat(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Native only: an executor runs in its own process group, so a Ctrl-C (SIGINT to the
/// terminal's foreground group) or a group-wide kill reaches the EM alone, which drains.
#[test]
fn native_executor_has_its_own_process_group() {
    let b =
        NativeExecutor::spawn(NativeExecutorConfig::new(executor_bin(), packages_dir())).unwrap();
    let pid = b.pid().unwrap().to_string();
    let ours = proc_stat("self").unwrap();
    let child = proc_stat(&pid).unwrap();
    assert_eq!(child[2], pid, "the executor leads its own group");
    assert_ne!(child[2], ours[2], "not in the EM's group");
    // Still an ordinary, working child of this process.
    assert_eq!(child[1], std::process::id().to_string());
    assert_eq!(fib(&mut NativeShm(b), 10), 55);
}

/// Native only: out of the EM's process group, an executor still dies with its parent (the
/// parent-death signal fires when the thread that spawned it ends), also when that thread ends
/// long after the executor started (its own set-up done, as in an EM whose slot thread ends).
#[test]
fn native_executor_dies_with_the_thread_that_spawned_it() {
    let pid = std::thread::spawn(|| {
        let mut b =
            NativeExecutor::spawn(NativeExecutorConfig::new(executor_bin(), packages_dir()))
                .unwrap();
        let pid = b.pid().unwrap().to_string();
        // A task ran: the executor is past its start-up.
        b.execute(&request("fixtures", "noop", frame(&[])), QUICK)
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // No kill on drop: only the parent-death signal may end it.
        std::mem::forget(b);
        pid
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + QUICK;
    // Dead and never reaped: a zombie (or gone, if something reaped it).
    while proc_stat(&pid).is_some_and(|s| s[0] != "Z") {
        assert!(
            Instant::now() < deadline,
            "executor {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
