//! The imports every guest links against: WASI preview 1 (synchronous host calls), the
//! `silk.panic` import of the guest ABI, and the sandbox's own `poll_oneoff` (see [`crate::poll`])
//! so a guest cannot sleep past its hard timeout.

use silk_tdl::abi;
use wasmtime::{Caller, Engine, Extern, Linker};

use crate::error::HostError;
use crate::poll;
use crate::sandbox::{GuestState, MAX_PANIC_MESSAGE_BYTES};
use crate::validate::WASI_MODULE;

/// Builds the linker shared by every package of the host.
pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<GuestState>, HostError> {
    let err = |e: wasmtime::Error| HostError::Linker(crate::cache::error_text(&e));
    let mut linker: Linker<GuestState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi).map_err(err)?;
    linker.allow_shadowing(true);
    linker
        .func_wrap(WASI_MODULE, "poll_oneoff", poll::poll_oneoff)
        .map_err(err)?;
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
                        let len = usize::try_from(len)
                            .unwrap_or(usize::MAX)
                            .min(MAX_PANIC_MESSAGE_BYTES);
                        start
                            .checked_add(len)
                            .and_then(|end| data.get(start..end))
                            .map_or_else(
                                || "panic message outside guest memory".to_owned(),
                                |b| String::from_utf8_lossy(b).into_owned(),
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
