//! Running one task: fresh instance, one buffer from `silk_alloc` (the init hook's record, then
//! the task's), the init hook, inputs copied in, `silk_package_execute`, the result copied
//! out (bounded by the policy), the instance dropped. Nothing survives from one task to the next.

use silk_ipc::TaskFailure;

use crate::config::SandboxPolicy;
use crate::package::Package;
use crate::sandbox::Sandbox;

type ExecuteParams = (u32, u32, u32, u32, u32, u32, u32);

/// Runs `function` of `package` in `sb` (a fresh sandbox).
///
/// # Errors
/// The task's failure, of the kind that stopped it.
pub(crate) fn run_task(
    package: &Package,
    sb: &mut Sandbox,
    function: &str,
    context: &[u8],
    inputs: &[u8],
    policy: &SandboxPolicy,
) -> Result<Vec<u8>, TaskFailure> {
    let instance = package.start(sb)?;
    let memory = package.memory(sb, &instance)?;

    // One buffer: the 8-byte result record, then the name, the context and the inputs.
    let too_big = || TaskFailure::MemoryLimit {
        limit_bytes: sb.max_memory(),
        message: format!(
            "the task's name, context and inputs ({} bytes) do not fit in 32-bit guest memory",
            function.len() + context.len() + inputs.len()
        ),
    };
    let len = |b: &[u8]| u32::try_from(b.len()).ok();
    let (Some(name_len), Some(ctx_len), Some(in_len)) =
        (len(function.as_bytes()), len(context), len(inputs))
    else {
        return Err(too_big());
    };
    let Some(total) = 8u32
        .checked_add(name_len)
        .and_then(|t| t.checked_add(ctx_len))
        .and_then(|t| t.checked_add(in_len))
    else {
        return Err(too_big());
    };
    // The init hook's result record goes to the same 8 bytes as the task's: one guest call less.
    let base = package.alloc(sb, &instance, total)?;
    let outside = || {
        TaskFailure::package(format!(
            "package `{}`: `silk_alloc` returned a buffer outside guest memory",
            package.name()
        ))
    };
    // `base` comes from the guest: every offset is checked.
    base.checked_add(total).ok_or_else(outside)?;
    package.init(sb, &instance, base)?;
    let (name_at, ctx_at, in_at) = (base + 8, base + 8 + name_len, base + 8 + name_len + ctx_len);
    for (at, bytes) in [
        (name_at, function.as_bytes()),
        (ctx_at, context),
        (in_at, inputs),
    ] {
        memory
            .write(
                &mut sb.store,
                usize::try_from(at).unwrap_or(usize::MAX),
                bytes,
            )
            .map_err(|_| outside())?;
    }

    let execute = package.execute_func::<ExecuteParams, u32>(sb, &instance)?;
    let status = execute
        .call(
            &mut sb.store,
            (name_at, name_len, ctx_at, ctx_len, in_at, in_len, base),
        )
        .map_err(|e| sb.classify(&e))?;

    let (ptr, len) = sb.read_record(memory, base)?;
    if u64::from(len) > policy.max_output_bytes {
        return Err(TaskFailure::OutputTooLarge {
            what: "task result".into(),
            size_bytes: u64::from(len),
            limit_bytes: policy.max_output_bytes,
            limit: "max_output_bytes".into(),
        });
    }
    let bytes = sb.read(memory, ptr, len)?;
    TaskFailure::from_package_answer(package.name(), status, bytes)
}
