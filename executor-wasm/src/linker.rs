//! The imports every guest links against: WASI preview 1 (synchronous host calls), the
//! `silk.panic` import of the guest ABI, and the sandbox's own `poll_oneoff` (see [`crate::poll`])
//! so a guest cannot sleep past its hard timeout. The sandbox has no environment and no
//! arguments, so the four WASI calls that read them are answered here, without the task's WASI
//! context (which is then only built if the guest makes another WASI call).

use silk_tdl::abi;
use wasmtime::{Caller, Engine, Extern, Linker};

use crate::error::HostError;
use crate::poll;
use crate::sandbox::GuestState;
use crate::validate::WASI_MODULE;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;

/// `environ_sizes_get` / `args_sizes_get(count_out, bytes_out) -> errno`: none, 0 bytes.
fn empty_sizes(mut caller: Caller<'_, GuestState>, count_out: u32, bytes_out: u32) -> i32 {
    let Some(Extern::Memory(memory)) = caller.get_export(abi::WASM_SYM_MEMORY) else {
        return ERRNO_FAULT;
    };
    let data = memory.data_mut(&mut caller);
    for at in [count_out, bytes_out] {
        let start = usize::try_from(at).unwrap_or(usize::MAX);
        match start
            .checked_add(4)
            .and_then(|end| data.get_mut(start..end))
        {
            Some(word) => word.copy_from_slice(&0u32.to_le_bytes()),
            None => return ERRNO_FAULT,
        }
    }
    ERRNO_SUCCESS
}

/// Builds the linker shared by every package of the host.
pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<GuestState>, HostError> {
    let err = |e: wasmtime::Error| HostError::Linker(crate::cache::error_text(&e));
    let mut linker: Linker<GuestState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, GuestState::wasi).map_err(err)?;
    linker.allow_shadowing(true);
    linker
        .func_wrap(WASI_MODULE, "poll_oneoff", poll::poll_oneoff)
        .map_err(err)?;
    for sizes in ["environ_sizes_get", "args_sizes_get"] {
        linker
            .func_wrap(WASI_MODULE, sizes, empty_sizes)
            .map_err(err)?;
    }
    for get in ["environ_get", "args_get"] {
        linker
            .func_wrap(WASI_MODULE, get, |_: u32, _: u32| ERRNO_SUCCESS)
            .map_err(err)?;
    }
    linker.allow_shadowing(false);

    linker
        .func_wrap(
            abi::WASM_IMPORT_MODULE,
            abi::WASM_IMPORT_PANIC,
            |mut caller: Caller<'_, GuestState>, ptr: u32, len: u32| {
                let message = match caller.get_export(abi::WASM_SYM_MEMORY) {
                    Some(Extern::Memory(m)) => {
                        let data = m.data(&caller);
                        let start = usize::try_from(ptr).unwrap_or(usize::MAX);
                        let len = usize::try_from(len).unwrap_or(usize::MAX);
                        // Cut to the failure-text bound with a marker; only the kept head is
                        // decoded.
                        start
                            .checked_add(len)
                            .and_then(|end| data.get(start..end))
                            .map_or_else(
                                || "panic message outside guest memory".to_owned(),
                                silk_ipc::cut_bytes,
                            )
                    }
                    _ => "panic (the guest exports no memory)".to_owned(),
                };
                caller.data_mut().panic = Some(message);
            },
        )
        .map_err(err)?;
    Ok(linker)
}
