//! A loaded wasm package: its compiled module checked against the guest ABI, pre-linked
//! (`InstancePre`) so each task only instantiates. Loading runs one probe instance that checks the
//! ABI version (first), the declared name and the init hook. Inspecting runs the same probe
//! without the init hook and reads the task list.

use silk_ipc::{InspectError, PackageInfo, TaskFailure};
use silk_tdl::abi::{self, ABI_VERSION, STATUS_OK};
use wasmtime::{Engine, Instance, InstancePre, Linker, Memory, Module, ModuleExport};

use crate::cache::{ModuleCache, error_text, sha256};
use crate::config::SandboxPolicy;
use crate::sandbox::{GuestState, Sandbox};
use crate::validate::{self, Exports};

/// What a package load needs from the host.
pub(crate) struct LoadEnv<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) linker: &'a Linker<GuestState>,
    pub(crate) cache: &'a ModuleCache,
    pub(crate) fuel_metering: bool,
    /// Limits of the probe instance.
    pub(crate) probe_policy: &'a SandboxPolicy,
}

/// A package ready to run tasks.
pub(crate) struct Package {
    name: String,
    pre: InstancePre<GuestState>,
    exports: Exports,
    handles: Handles,
}

/// The exports each task uses, resolved once per package so a task looks none of them up by
/// name (their types were checked at load).
struct Handles {
    memory: ModuleExport,
    alloc: ModuleExport,
    execute: ModuleExport,
    init: Option<ModuleExport>,
    initialize: Option<ModuleExport>,
}

impl Handles {
    fn new(module: &Module) -> Result<Self, TaskFailure> {
        let get = |name: &str| {
            module
                .get_export_index(name)
                .ok_or_else(|| TaskFailure::package(format!("missing export `{name}`")))
        };
        Ok(Self {
            memory: get(abi::WASM_SYM_MEMORY)?,
            alloc: get(abi::WASM_SYM_ALLOC)?,
            execute: get(abi::SYM_EXECUTE)?,
            init: module.get_export_index(abi::SYM_INIT),
            initialize: module.get_export_index(abi::WASM_SYM_INITIALIZE),
        })
    }
}

/// A module that passed the load checks, with the probe instance they ran in (initialised with
/// `_initialize`, never with the package's init hook).
pub(crate) struct Probe {
    name: String,
    pre: InstancePre<GuestState>,
    exports: Exports,
    sb: Sandbox,
    instance: Instance,
}

/// Compiles (or fetches from the cache), checks and probes `bytes`: the load checks of
/// `docs/wasm-abi.md` up to the declared name, in order. `origin` names the module in messages.
///
/// # Errors
/// [`InspectError`] of the class of the first check that fails.
pub(crate) fn probe(env: &LoadEnv<'_>, bytes: &[u8], origin: &str) -> Result<Probe, InspectError> {
    let not_a_package = |reason: String| InspectError::NotAPackage {
        origin: origin.to_owned(),
        reason,
    };
    let invalid = |reason: String| InspectError::Invalid {
        origin: origin.to_owned(),
        reason,
    };
    let module = env
        .cache
        .get(&sha256(bytes), bytes)
        .map_err(|e| not_a_package(format!("not a valid wasm module: {e}")))?;
    validate::check_version_export(&module).map_err(not_a_package)?;
    validate::check_imports(&module).map_err(invalid)?;
    let pre = env
        .linker
        .instantiate_pre(&module)
        .map_err(|e| invalid(format!("cannot link: {}", error_text(&e))))?;

    let mut sb = Sandbox::new(
        env.engine,
        env.probe_policy,
        env.fuel_metering,
        std::sync::Arc::default(),
    );
    let instance = pre
        .instantiate(&mut sb.store)
        .map_err(|e| invalid(format!("cannot instantiate: {}", sb.classify(&e))))?;
    if module.get_export(abi::WASM_SYM_INITIALIZE).is_some() {
        let f = sb
            .func::<(), ()>(&instance, abi::WASM_SYM_INITIALIZE)
            .map_err(|e| invalid(e.to_string()))?;
        f.call(&mut sb.store, ())
            .map_err(|e| invalid(format!("`_initialize` failed: {}", sb.classify(&e))))?;
    }
    let version = sb
        .func::<(), u32>(&instance, abi::SYM_ABI_VERSION)
        .map_err(|e| invalid(e.to_string()))?;
    let version = version.call(&mut sb.store, ()).map_err(|e| {
        invalid(format!(
            "`{}` failed: {}",
            abi::SYM_ABI_VERSION,
            sb.classify(&e)
        ))
    })?;
    if version != ABI_VERSION {
        return Err(InspectError::AbiVersion {
            origin: origin.to_owned(),
            found: version,
        });
    }
    let exports = validate::check_exports(&module).map_err(invalid)?;

    let name = declared_name(&mut sb, &instance).map_err(|e| invalid(e.to_string()))?;
    if !abi::is_valid_package_name(&name) {
        return Err(invalid(format!(
            "declares an invalid package name {name:?}"
        )));
    }
    Ok(Probe {
        name,
        pre,
        exports,
        sb,
        instance,
    })
}

/// Probes `bytes` and reads the package's task list, if it exports one. The init hook does not
/// run and nothing is registered.
///
/// # Errors
/// [`InspectError`] of the class of the first check that fails; a task list that lies outside
/// guest memory, exceeds the probe policy's `max_output_bytes` or is not UTF-8 is
/// [`InspectError::Invalid`].
pub(crate) fn inspect(
    env: &LoadEnv<'_>,
    bytes: &[u8],
    origin: &str,
) -> Result<PackageInfo, InspectError> {
    let Probe {
        name,
        exports,
        mut sb,
        instance,
        ..
    } = probe(env, bytes, origin)?;
    let task_list = if exports.tasks {
        let list =
            task_list(&mut sb, &instance, env.probe_policy.max_output_bytes).map_err(|e| {
                InspectError::Invalid {
                    origin: origin.to_owned(),
                    reason: e.to_string(),
                }
            })?;
        Some(list)
    } else {
        None
    };
    Ok(PackageInfo {
        name,
        abi_version: ABI_VERSION,
        task_list,
    })
}

impl Package {
    /// Compiles (or fetches from the cache), checks and probes `bytes` (see [`probe`]), then runs
    /// the package's init hook in the probe instance. `expected_name`, if given, must be the name
    /// the package declares.
    ///
    /// # Errors
    /// [`TaskFailure::Package`] naming what is wrong, or the classified failure of the init hook.
    pub(crate) fn load(
        env: &LoadEnv<'_>,
        bytes: &[u8],
        origin: &str,
        expected_name: Option<&str>,
    ) -> Result<Self, TaskFailure> {
        let Probe {
            name,
            pre,
            exports,
            mut sb,
            instance,
        } = probe(env, bytes, origin)?;
        if let Some(expected) = expected_name
            && name != expected
        {
            return Err(TaskFailure::package(format!(
                "{origin}: declares package `{name}`, expected `{expected}`"
            )));
        }
        let handles = Handles::new(pre.module())?;
        let package = Self {
            name,
            pre,
            exports,
            handles,
        };
        if exports.init {
            let out = package.alloc(&mut sb, &instance, 8)?;
            package.run_init(&mut sb, &instance, out)?;
        }
        Ok(package)
    }

    /// The package's declared name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A fresh instance in `sb`, initialised with `_initialize` if exported. The package's init
    /// hook is [`Package::init`], run next by the caller once it has a buffer for the record.
    ///
    /// # Errors
    /// The failure of instantiation or of `_initialize`, classified.
    pub(crate) fn start(&self, sb: &mut Sandbox) -> Result<Instance, TaskFailure> {
        let instance = self
            .pre
            .instantiate(&mut sb.store)
            .map_err(|e| match sb.classify(&e) {
                TaskFailure::Trap { code, message } if code == "HostError" => TaskFailure::package(
                    format!("package `{}`: cannot instantiate: {message}", self.name),
                ),
                other => other,
            })?;
        if let Some(initialize) = &self.handles.initialize {
            let f = sb.func_at::<(), ()>(&instance, initialize, abi::WASM_SYM_INITIALIZE)?;
            f.call(&mut sb.store, ()).map_err(|e| sb.classify(&e))?;
        }
        Ok(instance)
    }

    /// Runs the package's init hook, if it exports one, in `instance` (fresh from
    /// [`Package::start`]), with its result record at `out` (8 bytes from `silk_alloc`).
    ///
    /// # Errors
    /// The classified failure of the hook; a failing init hook is a [`TaskFailure::Package`].
    pub(crate) fn init(
        &self,
        sb: &mut Sandbox,
        instance: &Instance,
        out: u32,
    ) -> Result<(), TaskFailure> {
        if self.exports.init {
            self.run_init(sb, instance, out)?;
        }
        Ok(())
    }

    /// The guest's memory export in `instance` (an instance of this package).
    pub(crate) fn memory(
        &self,
        sb: &mut Sandbox,
        instance: &Instance,
    ) -> Result<Memory, TaskFailure> {
        instance
            .get_module_export(&mut sb.store, &self.handles.memory)
            .and_then(wasmtime::Extern::into_memory)
            .ok_or_else(|| TaskFailure::package("missing export `memory`"))
    }

    /// `len` bytes from `silk_alloc` in `instance` (an instance of this package), as [`scratch`].
    pub(crate) fn alloc(
        &self,
        sb: &mut Sandbox,
        instance: &Instance,
        len: u32,
    ) -> Result<u32, TaskFailure> {
        let alloc = sb.func_at::<u32, u32>(instance, &self.handles.alloc, abi::WASM_SYM_ALLOC)?;
        call_alloc(sb, &alloc, len)
    }

    /// `silk_package_execute` of `instance` (an instance of this package).
    pub(crate) fn execute_func<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &self,
        sb: &mut Sandbox,
        instance: &Instance,
    ) -> Result<wasmtime::TypedFunc<P, R>, TaskFailure> {
        sb.func_at::<P, R>(instance, &self.handles.execute, abi::SYM_EXECUTE)
    }

    fn run_init(&self, sb: &mut Sandbox, instance: &Instance, out: u32) -> Result<(), TaskFailure> {
        let memory = self.memory(sb, instance)?;
        let Some(init) = &self.handles.init else {
            return Err(TaskFailure::package(format!(
                "missing export `{}`",
                abi::SYM_INIT
            )));
        };
        let init = sb.func_at::<u32, u32>(instance, init, abi::SYM_INIT)?;
        let status = init
            .call(&mut sb.store, out)
            .map_err(|e| match sb.classify(&e) {
                TaskFailure::Panicked { message } => {
                    TaskFailure::init_panicked(&self.name, &message)
                }
                other => other,
            })?;
        if status == STATUS_OK {
            return Ok(());
        }
        let (ptr, len) = sb.read_record(memory, out)?;
        let bytes = sb.read(memory, ptr, len.min(64 << 10))?;
        TaskFailure::from_init_answer(&self.name, status, &bytes)
    }
}

/// Allocates `len` bytes of guest memory with `silk_alloc`.
///
/// # Errors
/// A classified failure if the call traps, [`TaskFailure::MemoryLimit`] if the guest's allocator
/// returns null.
pub(crate) fn scratch(sb: &mut Sandbox, instance: &Instance, len: u32) -> Result<u32, TaskFailure> {
    let alloc = sb.func::<u32, u32>(instance, abi::WASM_SYM_ALLOC)?;
    call_alloc(sb, &alloc, len)
}

fn call_alloc(
    sb: &mut Sandbox,
    alloc: &wasmtime::TypedFunc<u32, u32>,
    len: u32,
) -> Result<u32, TaskFailure> {
    let ptr = alloc
        .call(&mut sb.store, len)
        .map_err(|e| sb.classify(&e))?;
    if ptr == 0 {
        return Err(TaskFailure::MemoryLimit {
            limit_bytes: sb.max_memory(),
            message: format!("the guest could not allocate {len} bytes"),
        });
    }
    Ok(ptr)
}

fn declared_name(sb: &mut Sandbox, instance: &Instance) -> Result<String, TaskFailure> {
    let memory = sb.memory(instance)?;
    let out = scratch(sb, instance, 8)?;
    let f = sb.func::<u32, ()>(instance, abi::SYM_PACKAGE_NAME)?;
    f.call(&mut sb.store, out).map_err(|e| sb.classify(&e))?;
    let (ptr, len) = sb.read_record(memory, out)?;
    if len > 128 {
        return Err(TaskFailure::package(format!(
            "package name of {len} bytes is too long"
        )));
    }
    String::from_utf8(sb.read(memory, ptr, len)?)
        .map_err(|_| TaskFailure::package("package name is not UTF-8"))
}

/// Reads the task list through `silk_package_tasks` (its type was checked at load).
fn task_list(sb: &mut Sandbox, instance: &Instance, max_bytes: u64) -> Result<String, TaskFailure> {
    let memory = sb.memory(instance)?;
    let out = scratch(sb, instance, 8)?;
    let f = sb.func::<u32, ()>(instance, abi::SYM_PACKAGE_TASKS)?;
    f.call(&mut sb.store, out).map_err(|e| sb.classify(&e))?;
    let (ptr, len) = sb.read_record(memory, out)?;
    if u64::from(len) > max_bytes {
        return Err(TaskFailure::package(format!(
            "task list of {len} bytes is larger than {max_bytes} bytes"
        )));
    }
    String::from_utf8(sb.read(memory, ptr, len)?)
        .map_err(|_| TaskFailure::package("task list is not UTF-8"))
}
