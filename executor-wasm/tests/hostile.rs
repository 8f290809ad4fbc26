//! Hostile guests, written inline in WAT: each must end with its failure kind within its limit,
//! and the host must run a good task afterwards.

mod common;

use std::time::{Duration, Instant};

use common::{assert_host_healthy, host, package_message, policy, watchdog};
use silk_executor_wasm::{SandboxPolicy, TaskFailure, TaskRun, WasmHost};
use silk_tdl::TaskContext;

/// A module implementing the guest ABI around `body`, the body of `silk_package_execute`
/// (params `$name $name_len $ctx $ctx_len $in $in_len $out`, result status). `imports` and
/// `extra` are spliced in as module fields. Static scratch space: 64..4096.
fn guest(name: &str, imports: &str, body: &str, extra: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "{name}")
  (func (export "silk_abi_version") (result i32) (i32.const 1))
  (func $alloc (export "silk_alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $len)))
    (local.get $ptr))
  (func (export "silk_free") (param i32 i32))
  (func (export "silk_package_name") (param $out i32)
    (i32.store (local.get $out) (i32.const 16))
    (i32.store offset=4 (local.get $out) (i32.const {len})))
  (func (export "silk_package_execute")
    (param $name i32) (param $name_len i32) (param $ctx i32) (param $ctx_len i32)
    (param $in i32) (param $in_len i32) (param $out i32) (result i32)
    {body})
  {extra}
)"#,
        len = name.len()
    );
    wat::parse_str(&wat).expect("valid WAT")
}

fn load(host: &WasmHost, bytes: &[u8]) -> String {
    host.load_bytes(bytes, "inline")
        .expect("load hostile guest")
}

fn run(host: &WasmHost, package: &str, policy: &SandboxPolicy) -> TaskRun {
    let ctx = TaskContext::standalone().to_msgpack();
    host.run(package, "go", &ctx, &[0, 0, 0, 0], policy)
}

/// Runs `test` under a watchdog with a fresh host, then checks the host still works.
fn contained(test: impl FnOnce(&WasmHost) + Send + 'static) {
    watchdog(Duration::from_secs(120), move || {
        let host = host();
        test(&host);
        assert_host_healthy(&host);
    });
}

#[test]
fn infinite_loop_times_out() {
    contained(|host| {
        let name = load(
            host,
            &guest("spin", "", "(loop $l (br $l)) (i32.const 0)", ""),
        );
        let start = Instant::now();
        let r = run(host, &name, &policy(300));
        assert_eq!(r.outcome, Err(TaskFailure::Timeout { after_ms: 300 }));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    });
}

#[test]
fn long_sleep_times_out_at_the_deadline() {
    // poll_oneoff with one relative clock subscription of an hour.
    let body = r#"
      (i64.store (i32.const 64) (i64.const 7))              ;; userdata
      (i32.store8 (i32.const 72) (i32.const 0))             ;; tag: clock
      (i32.store (i32.const 80) (i32.const 1))              ;; monotonic
      (i64.store (i32.const 88) (i64.const 3600000000000))  ;; 1 h
      (i64.store (i32.const 96) (i64.const 0))
      (i32.store16 (i32.const 104) (i32.const 0))           ;; relative
      (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 192)))
      (i32.const 0)"#;
    contained(move |host| {
        let imports = r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))"#;
        let name = load(host, &guest("sleeper", imports, body, ""));
        let start = Instant::now();
        let r = run(host, &name, &policy(300));
        assert_eq!(r.outcome, Err(TaskFailure::Timeout { after_ms: 300 }));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    });
}

#[test]
fn unbounded_memory_growth_hits_the_memory_limit() {
    contained(|host| {
        let body = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (i32.const 0)";
        let name = load(host, &guest("grower", "", body, ""));
        let p = SandboxPolicy {
            max_memory_bytes: 16 << 20,
            ..policy(10_000)
        };
        match run(host, &name, &p).outcome {
            Err(TaskFailure::MemoryLimit {
                limit_bytes,
                message,
            }) => {
                assert_eq!(limit_bytes, 16 << 20);
                assert!(message.contains("bytes of linear memory"), "{message}");
            }
            other => panic!("expected MemoryLimit, got {other:?}"),
        }
    });
}

#[test]
fn unbounded_recursion_is_a_stack_overflow_trap() {
    contained(|host| {
        let name = load(
            host,
            &guest(
                "recurse",
                "",
                "(call $f) (i32.const 0)",
                "(func $f (call $f))",
            ),
        );
        match run(host, &name, &policy(10_000)).outcome {
            Err(TaskFailure::Trap { code, .. }) => assert_eq!(code, "StackOverflow"),
            other => panic!("expected a stack overflow trap, got {other:?}"),
        }
    });
}

#[test]
fn unreachable_is_a_trap() {
    contained(|host| {
        let name = load(host, &guest("unreach", "", "unreachable", ""));
        match run(host, &name, &policy(10_000)).outcome {
            Err(TaskFailure::Trap { code, .. }) => assert_eq!(code, "UnreachableCodeReached"),
            other => panic!("expected an unreachable trap, got {other:?}"),
        }
    });
}

#[test]
fn fuel_runs_out() {
    contained(|host| {
        let name = load(
            host,
            &guest("burner", "", "(loop $l (br $l)) (i32.const 0)", ""),
        );
        let p = SandboxPolicy {
            fuel: Some(1_000_000),
            ..policy(20_000)
        };
        assert_eq!(
            run(host, &name, &p).outcome,
            Err(TaskFailure::OutOfFuel { fuel: 1_000_000 })
        );
    });
}

#[test]
fn host_files_are_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-HOST-CONTENT").unwrap();
    let path = secret.display().to_string();
    // Try path_open of the absolute path (and relative to `/`) on every plausible preopen fd;
    // on success read the file into the output, otherwise return the last errno (4 bytes).
    let body = format!(
        r#"(local $fd i32) (local $errno i32)
      (local.set $fd (i32.const 3))
      (block $done (loop $next
        (local.set $errno (call $open (local.get $fd) (i32.const 0) (i32.const 512) (i32.const {len})
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 100)))
        (if (i32.eqz (local.get $errno)) (then
          (i32.store (i32.const 104) (i32.const 1024)) (i32.store (i32.const 108) (i32.const 256))
          (drop (call $read (i32.load (i32.const 100)) (i32.const 104) (i32.const 1) (i32.const 112)))
          (i32.store (local.get $out) (i32.const 1024))
          (i32.store offset=4 (local.get $out) (i32.load (i32.const 112)))
          (return (i32.const 0))))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $fd) (i32.const 16)))))
      (i32.store (i32.const 120) (local.get $errno))
      (i32.store (local.get $out) (i32.const 120))
      (i32.store offset=4 (local.get $out) (i32.const 4))
      (i32.const 0)"#,
        len = path.len()
    );
    let extra = format!(r#"(data (i32.const 512) "{path}")"#);
    contained(move |host| {
        let imports = r#"
          (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))"#;
        let name = load(host, &guest("snoop", imports, &body, &extra));
        let out = run(host, &name, &policy(10_000))
            .outcome
            .expect("the guest handles the error");
        assert!(
            !String::from_utf8_lossy(&out).contains("TOP-SECRET"),
            "host file leaked"
        );
        assert_eq!(
            out,
            8u32.to_le_bytes(),
            "expected EBADF (no preopened directories)"
        );
    });
}

#[test]
fn environment_and_args_are_empty() {
    assert!(
        std::env::var_os("PATH").is_some(),
        "the host has an environment to hide"
    );
    let body = r#"
      (drop (call $env_sizes (i32.const 64) (i32.const 68)))
      (drop (call $args_sizes (i32.const 72) (i32.const 76)))
      (i32.store (local.get $out) (i32.const 64))
      (i32.store offset=4 (local.get $out) (i32.const 16))
      (i32.const 0)"#;
    contained(move |host| {
        let imports = r#"
          (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))"#;
        // Poison the scratch area so "nothing written" cannot pass for zero.
        let extra = r#"(data (i32.const 64) "\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff")"#;
        let name = load(host, &guest("envy", imports, body, extra));
        let out = run(host, &name, &policy(10_000)).outcome.expect("runs");
        assert_eq!(
            out,
            vec![0u8; 16],
            "env count/size and args count/size must all be 0"
        );
    });
}

#[test]
fn sockets_are_denied() {
    // sock_accept on every descriptor 0..16: each must fail; the errnos are the output.
    let body = r#"(local $fd i32)
      (block $done (loop $next
        (i32.store (i32.add (i32.const 256) (i32.shl (local.get $fd) (i32.const 2)))
          (call $accept (local.get $fd) (i32.const 0) (i32.const 64)))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $fd) (i32.const 16)))))
      (i32.store (local.get $out) (i32.const 256))
      (i32.store offset=4 (local.get $out) (i32.const 64))
      (i32.const 0)"#;
    contained(move |host| {
        let imports = r#"(import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))"#;
        let name = load(host, &guest("sockets", imports, body, ""));
        let out = run(host, &name, &policy(10_000)).outcome.expect("runs");
        assert_eq!(out.len(), 64);
        for (fd, errno) in out.chunks_exact(4).enumerate() {
            let errno = u32::from_le_bytes(errno.try_into().unwrap());
            assert_ne!(errno, 0, "sock_accept on fd {fd} succeeded");
        }
        // A socket-creating import from outside WASI preview 1 is refused at load.
        let open = r#"(import "wasi_snapshot_preview1" "sock_open" (func (param i32 i32 i32) (result i32)))"#;
        let err = host
            .load_bytes(&guest("sockopen", open, "(i32.const 0)", ""), "inline")
            .unwrap_err();
        assert!(package_message(&err).contains("sock_open"), "{err}");
    });
}

#[test]
fn gigabytes_of_stdout_are_capped() {
    const CHUNK: u32 = 1 << 20;
    const CHUNKS: u32 = 1024; // 1 GiB in total
    let body = format!(
        r#"(local $i i32)
      (drop (memory.grow (i32.const 17)))
      (i32.store (i32.const 64) (i32.const 65536))
      (i32.store (i32.const 68) (i32.const {CHUNK}))
      (block $done (loop $next
        (drop (call $write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const {CHUNKS})))))
      (i32.store (local.get $out) (i32.const 0))
      (i32.store offset=4 (local.get $out) (i32.const 0))
      (i32.const 0)"#
    );
    contained(move |host| {
        let imports = r#"(import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))"#;
        let name = load(host, &guest("chatty", imports, &body, ""));
        let p = SandboxPolicy {
            max_log_bytes: 64 << 10,
            ..policy(60_000)
        };
        let r = run(host, &name, &p);
        assert_eq!(r.outcome, Ok(Vec::new()));
        assert_eq!(r.stdout.bytes.len(), 64 << 10);
        assert_eq!(
            r.stdout.dropped_bytes,
            u64::from(CHUNK) * u64::from(CHUNKS) - (64 << 10)
        );
        assert!(r.stderr.bytes.is_empty());
    });
}

#[test]
fn oversized_output_is_refused() {
    contained(|host| {
        // A 4 MiB result against a 1 MiB max_output_bytes.
        let body = r#"(drop (memory.grow (i32.const 64)))
          (i32.store (local.get $out) (i32.const 0))
          (i32.store offset=4 (local.get $out) (i32.const 4194304))
          (i32.const 0)"#;
        let name = load(host, &guest("bigout", "", body, ""));
        let p = SandboxPolicy {
            max_output_bytes: 1 << 20,
            ..policy(10_000)
        };
        match run(host, &name, &p).outcome {
            Err(TaskFailure::OutputTooLarge {
                size_bytes,
                limit_bytes,
                limit,
                ..
            }) => {
                assert_eq!((size_bytes, limit_bytes), (4 << 20, 1 << 20));
                assert_eq!(limit, "max_output_bytes");
            }
            other => panic!("expected OutputTooLarge, got {other:?}"),
        }
        // A result record pointing outside guest memory breaks the ABI.
        let body = r#"(i32.store (local.get $out) (i32.const -65536))
          (i32.store offset=4 (local.get $out) (i32.const 16))
          (i32.const 0)"#;
        let name = load(host, &guest("wildptr", "", body, ""));
        let err = run(host, &name, &policy(10_000)).outcome.unwrap_err();
        assert!(
            package_message(&err).contains("outside guest memory"),
            "{err}"
        );
    });
}

#[test]
fn non_wasi_import_is_refused_at_load() {
    contained(|host| {
        let imports = r#"(import "env" "system" (func (param i32) (result i32)))"#;
        let err = host
            .load_bytes(&guest("shell", imports, "(i32.const 0)", ""), "inline")
            .unwrap_err();
        let message = package_message(&err);
        assert!(message.contains("env::system"), "{message}");
        let imports = r#"(import "wasi_snapshot_preview1" "fd_write" (memory 1))"#;
        let err = host
            .load_bytes(&guest("memimp", imports, "(i32.const 0)", ""), "inline")
            .unwrap_err();
        assert!(package_message(&err).contains("not a function"), "{err}");
    });
}

#[test]
fn malformed_module_bytes_are_refused() {
    contained(|host| {
        for bytes in [
            &b""[..],
            b"\0asm",
            b"\0asm\x01\0\0\0\x01\xff\xff",
            b"not wasm at all",
            b"(module)",
        ] {
            let err = host.load_bytes(bytes, "garbage").unwrap_err();
            assert!(
                package_message(&err).contains("not a valid wasm module"),
                "{err}"
            );
        }
    });
}
