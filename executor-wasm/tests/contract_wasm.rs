//! The executor contract suite (`common/contract.rs`) against the wasm backend, on the staged
//! `fixtures.wasm` and `complex.wasm`.

mod common;

use std::sync::OnceLock;

use common::contract::{Backend, Request};
use silk_executor_wasm::{FailureKind, SandboxPolicy, TaskFailure, WasmHost};

struct Wasm(WasmHost);

impl Backend for Wasm {
    fn execute(&self, req: &Request<'_>) -> Result<Vec<u8>, TaskFailure> {
        let policy = SandboxPolicy {
            timeout_ms: req.timeout_ms,
            ..SandboxPolicy::default()
        };
        self.0
            .execute(
                req.package,
                req.function,
                &req.context.to_msgpack(),
                &req.inputs,
                &policy,
            )
            .map(|(out, _elapsed_ns)| out)
    }

    /// `std::process::abort` in wasm is an `unreachable` trap; nothing crashes.
    fn abort_kind(&self) -> FailureKind {
        FailureKind::Trap
    }
}

fn wasm() -> &'static dyn Backend {
    static BACKEND: OnceLock<Wasm> = OnceLock::new();
    BACKEND.get_or_init(|| Wasm(common::host()))
}

contract_suite!(wasm);
