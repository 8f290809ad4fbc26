//! Static checks of a compiled module against the guest ABI (`docs/wasm-abi.md`): what it may
//! import and what it must export. A module that fails them is refused at load with a message
//! naming the offending import or export.

use silk_tdl::abi;
use wasmtime::{ExternType, FuncType, Module, ValType};

/// The WASI preview 1 module name.
pub(crate) const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Every WASI preview 1 function. What they can reach is set by the WASI context, which has no
/// preopened directories, no environment, no arguments and no sockets: file and socket calls
/// fail with a WASI error inside the guest.
const WASI_FUNCTIONS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "sched_yield",
    "random_get",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];

/// What the checks found out about the optional exports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exports {
    /// The module exports `silk_package_init`.
    pub(crate) init: bool,
    /// The module exports `silk_package_tasks` (the task list).
    pub(crate) tasks: bool,
}

fn func_sig(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("func({}) -> ({})", list(params), list(results))
}

fn matches(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

/// Checks every import: WASI preview 1 functions and `silk.panic`, nothing else.
pub(crate) fn check_imports(module: &Module) -> Result<(), String> {
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        let ExternType::Func(ty) = import.ty() else {
            return Err(format!(
                "imports `{m}::{n}`, which is not a function (only functions may be imported)"
            ));
        };
        let allowed = match m {
            WASI_MODULE => WASI_FUNCTIONS.contains(&n),
            abi::WASM_IMPORT_MODULE if n == abi::WASM_IMPORT_PANIC => {
                if !matches(&ty, &[ValType::I32, ValType::I32], &[]) {
                    return Err(format!(
                        "imports `{m}::{n}` with type {ty}, expected {}",
                        func_sig(&[ValType::I32, ValType::I32], &[])
                    ));
                }
                true
            }
            _ => false,
        };
        if !allowed {
            return Err(format!(
                "imports `{m}::{n}`, which the sandbox does not provide (allowed: WASI preview 1 \
                 `{WASI_MODULE}` functions and `{}::{}`)",
                abi::WASM_IMPORT_MODULE,
                abi::WASM_IMPORT_PANIC
            ));
        }
    }
    Ok(())
}

fn check_func(
    module: &Module,
    name: &str,
    params: &[ValType],
    results: &[ValType],
    required: bool,
) -> Result<bool, String> {
    match module.get_export(name) {
        None if required => Err(format!(
            "missing export `{name}` ({})",
            func_sig(params, results)
        )),
        None => Ok(false),
        Some(ExternType::Func(ty)) if matches(&ty, params, results) => Ok(true),
        Some(ExternType::Func(ty)) => Err(format!(
            "export `{name}` has type {ty}, expected {}",
            func_sig(params, results)
        )),
        Some(other) => Err(format!("export `{name}` is not a function ({other:?})")),
    }
}

/// Checks the version export alone (it is called before anything else is looked at).
pub(crate) fn check_version_export(module: &Module) -> Result<(), String> {
    check_func(module, abi::SYM_ABI_VERSION, &[], &[ValType::I32], true).map(|_| ())
}

/// Checks the exports of ABI version 1.
pub(crate) fn check_exports(module: &Module) -> Result<Exports, String> {
    use ValType::I32;
    match module.get_export(abi::WASM_SYM_MEMORY) {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(ExternType::Memory(_)) => {
            return Err("export `memory` must be a 32-bit, unshared memory".into());
        }
        Some(_) => return Err("export `memory` is not a memory".into()),
        None => return Err("missing export `memory`".into()),
    }
    check_func(module, abi::WASM_SYM_ALLOC, &[I32], &[I32], true)?;
    check_func(module, abi::WASM_SYM_FREE, &[I32, I32], &[], true)?;
    check_func(module, abi::SYM_PACKAGE_NAME, &[I32], &[], true)?;
    check_func(module, abi::SYM_EXECUTE, &[const { I32 }; 7], &[I32], true)?;
    let init = check_func(module, abi::SYM_INIT, &[I32], &[I32], false)?;
    let tasks = check_func(module, abi::SYM_PACKAGE_TASKS, &[I32], &[], false)?;
    check_func(module, abi::WASM_SYM_INITIALIZE, &[], &[], false)?;
    Ok(Exports { init, tasks })
}
