//! The executor contract: one definition of what running the `fixtures` and `complex` packages
//! must give, for any backend. It depends only on `silk-tdl` and `silk-ipc`, so the native backend
//! can instantiate it too (see `contract_suite!`). Where the backends differ, the [`Backend`] says
//! so explicitly (`abort` is a `Trap` in wasm and `Crashed` natively).

use silk_ipc::{FailureKind, TaskFailure};
use silk_tdl::{JobId, ResourceGroupId, TaskContext, TaskInstanceId, TdlError};

use super::{frame_of, output};

/// One task to run.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub package: &'a str,
    pub function: &'a str,
    pub context: TaskContext,
    pub inputs: Vec<u8>,
    /// Hard timeout the backend must enforce.
    pub timeout_ms: u64,
}

impl<'a> Request<'a> {
    /// A regular task with a standalone context and a 20 s timeout.
    pub fn new(package: &'a str, function: &'a str, inputs: Vec<u8>) -> Self {
        Self {
            package,
            function,
            context: TaskContext::standalone(),
            inputs,
            timeout_ms: 20_000,
        }
    }
}

/// An executor backend under test.
pub trait Backend: Sync {
    /// Runs one task and returns its output frame.
    fn execute(&self, req: &Request<'_>) -> Result<Vec<u8>, TaskFailure>;
    /// How the backend reports `fixtures::abort`.
    fn abort_kind(&self) -> FailureKind;
}

fn fib(b: &dyn Backend, n: u64) -> Result<u64, TaskFailure> {
    b.execute(&Request::new("fixtures", "fibonacci", frame_of(&[n])))
        .map(|out| output(&out, 0))
}

fn task_error(r: Result<Vec<u8>, TaskFailure>) -> TdlError {
    match r {
        Err(TaskFailure::Task(e)) => e,
        other => panic!("expected a task error, got {other:?}"),
    }
}

fn commit(b: &dyn Backend, outputs: &[i64]) -> Result<Vec<u8>, TaskFailure> {
    let outs = outputs
        .iter()
        .map(|v| rmp_serde::to_vec(v).unwrap())
        .collect();
    let mut req = Request::new("fixtures", "assert_outputs_sum_zero", frame_of::<u8>(&[]));
    req.context = TaskContext::commit(JobId(1), TaskInstanceId(2), ResourceGroupId(3), outs);
    b.execute(&req)
}

type C = (f64, f64);

fn complex(b: &dyn Backend, function: &str, x: &[C], y: &[C]) -> Result<Vec<u8>, TaskFailure> {
    let mut w = silk_tdl::frame::FrameWriter::new();
    w.push(&x.to_vec()).unwrap();
    w.push(&y.to_vec()).unwrap();
    b.execute(&Request::new("complex", function, w.finish()))
}

pub fn fibonacci_10_is_55(b: &dyn Backend) {
    assert_eq!(fib(b, 10).unwrap(), 55);
}

pub fn always_fail_is_a_task_error(b: &dyn Backend) {
    let e = task_error(b.execute(&Request::new(
        "fixtures",
        "always_fail",
        frame_of::<u8>(&[]),
    )));
    assert!(e.to_string().contains("always_fail"), "{e}");
}

pub fn always_panic_is_panicked_with_its_message(b: &dyn Backend) {
    match b.execute(&Request::new(
        "fixtures",
        "always_panic",
        frame_of::<u8>(&[]),
    )) {
        Err(TaskFailure::Panicked { message }) => {
            assert_eq!(message, "always_panic: intentional panic");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(fib(b, 7).unwrap(), 13);
}

pub fn abort_is_reported_then_next_task_runs(b: &dyn Backend) {
    let failure = b
        .execute(&Request::new("fixtures", "abort", frame_of::<u8>(&[])))
        .expect_err("abort must fail");
    assert_eq!(failure.kind(), b.abort_kind(), "{failure:?}");
    assert_eq!(fib(b, 7).unwrap(), 13);
}

pub fn hard_timeout_stops_a_long_task(b: &dyn Backend) {
    let mut req = Request::new("fixtures", "fibonacci", frame_of(&[45u64]));
    req.timeout_ms = 200;
    let start = std::time::Instant::now();
    assert_eq!(b.execute(&req), Err(TaskFailure::Timeout { after_ms: 200 }));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fib(b, 7).unwrap(), 13);
}

pub fn commit_task_checks_job_outputs(b: &dyn Backend) {
    assert!(commit(b, &[3, -1, -2]).is_ok());
    let e = task_error(commit(b, &[1, 2, 3]));
    assert!(e.to_string().contains("sum"), "{e}");
    let e = task_error(commit(b, &[]));
    assert!(e.to_string().contains("no outputs"), "{e}");
}

pub fn commit_task_refuses_a_regular_context(b: &dyn Backend) {
    let e = task_error(b.execute(&Request::new(
        "fixtures",
        "assert_outputs_sum_zero",
        frame_of::<u8>(&[]),
    )));
    assert!(e.to_string().contains("must run as a commit task"), "{e}");
}

pub fn unknown_task_is_not_found(b: &dyn Backend) {
    let e = task_error(b.execute(&Request::new(
        "fixtures",
        "no_such_task",
        frame_of::<u8>(&[]),
    )));
    assert_eq!(e, TdlError::TaskNotFound("no_such_task".into()));
}

pub fn unknown_or_traversing_package_is_a_package_error(b: &dyn Backend) {
    for name in ["no_such_package", "../etc/passwd", "a/b", ""] {
        let failure = b
            .execute(&Request::new(name, "fibonacci", frame_of(&[1u64])))
            .expect_err("must fail");
        assert_eq!(
            failure.kind(),
            FailureKind::PackageError,
            "{name}: {failure:?}"
        );
    }
}

pub fn wrong_inputs_are_a_deserialization_error(b: &dyn Backend) {
    let e = task_error(b.execute(&Request::new("fixtures", "fibonacci", frame_of(&["ten"]))));
    assert!(matches!(e, TdlError::Deserialization(_)), "{e:?}");
}

pub fn noop_sleep_and_init(b: &dyn Backend) {
    let out = b
        .execute(&Request::new("fixtures", "noop", frame_of::<u8>(&[])))
        .unwrap();
    assert_eq!(out, vec![0, 0, 0, 0]);
    let paths = vec!["a".to_owned(), "b/c".to_owned()];
    let out = b
        .execute(&Request::new(
            "fixtures",
            "sleep_and_echo",
            frame_of(std::slice::from_ref(&paths)),
        ))
        .unwrap();
    assert_eq!(output::<Vec<String>>(&out, 0), paths);
    assert!(
        b.execute(&Request::new(
            "fixtures",
            "assert_initialized",
            frame_of::<u8>(&[])
        ))
        .is_ok()
    );
}

pub fn complex_tasks_compute(b: &dyn Backend) {
    let out = complex(b, "add", &[(1.0, 2.0)], &[(10.0, 20.0)]).unwrap();
    assert_eq!(output::<Vec<C>>(&out, 0), vec![(11.0, 22.0)]);
    let out = complex(
        b,
        "sub",
        &[(1.0, 2.0), (0.5, 0.0)],
        &[(10.0, 20.0), (0.5, 1.0)],
    )
    .unwrap();
    assert_eq!(output::<Vec<C>>(&out, 0), vec![(-9.0, -18.0), (0.0, -1.0)]);
    // (1+2i)(5+6i) + (3+4i)(7+8i) = (-7+16i) + (-11+52i)
    let out = complex(
        b,
        "dot_product",
        &[(1.0, 2.0), (3.0, 4.0)],
        &[(5.0, 6.0), (7.0, 8.0)],
    )
    .unwrap();
    assert_eq!(output::<C>(&out, 0), (-18.0, 68.0));
    // (1, i, 0) x (0, 1, i) = (i·i - 0, 0 - 1·i, 1·1 - 0) = (-1, -i, 1)
    let out = complex(
        b,
        "cross_product",
        &[(1.0, 0.0), (0.0, 1.0), (0.0, 0.0)],
        &[(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)],
    )
    .unwrap();
    assert_eq!(
        output::<Vec<C>>(&out, 0),
        vec![(-1.0, 0.0), (0.0, -1.0), (1.0, 0.0)]
    );
    let e = task_error(complex(b, "add", &[(1.0, 0.0)], &[]));
    assert!(e.to_string().contains("length mismatch"), "{e}");
    let e = task_error(b.execute(&Request::new("complex", "always_fail", frame_of::<u8>(&[]))));
    assert_eq!(
        e,
        TdlError::Custom("complex::always_fail: intentional failure".into())
    );
}

/// Instantiates every contract test for a backend: `contract_suite!(backend_fn)` where
/// `backend_fn() -> &'static dyn Backend`.
#[macro_export]
macro_rules! contract_suite {
    ($backend:path) => {
        $crate::contract_suite!(@tests $backend;
            fibonacci_10_is_55,
            always_fail_is_a_task_error,
            always_panic_is_panicked_with_its_message,
            abort_is_reported_then_next_task_runs,
            hard_timeout_stops_a_long_task,
            commit_task_checks_job_outputs,
            commit_task_refuses_a_regular_context,
            unknown_task_is_not_found,
            unknown_or_traversing_package_is_a_package_error,
            wrong_inputs_are_a_deserialization_error,
            noop_sleep_and_init,
            complex_tasks_compute,
        );
    };
    (@tests $backend:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                common::watchdog(std::time::Duration::from_secs(120), || {
                    common::contract::$name($backend())
                });
            }
        )*
    };
}
