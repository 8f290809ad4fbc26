//! The `trivial` package: tasks that do next to nothing, for the end-to-end throughput bench
//! (`cargo bench --bench e2e`). Layer 0 is `one`; every later task is `sum25`, reading 25
//! outputs of the layer before it.

use silk_tdl::{TaskContext, TdlError, task};

/// Returns 1.
#[task]
pub fn one(_ctx: TaskContext) -> Result<u64, TdlError> {
    Ok(1)
}

/// Adds its 25 inputs (wrapping).
#[task]
#[expect(
    clippy::too_many_arguments,
    reason = "the bench graph wires 25 separate outputs in"
)]
pub fn sum25(
    _ctx: TaskContext,
    x0: u64,
    x1: u64,
    x2: u64,
    x3: u64,
    x4: u64,
    x5: u64,
    x6: u64,
    x7: u64,
    x8: u64,
    x9: u64,
    x10: u64,
    x11: u64,
    x12: u64,
    x13: u64,
    x14: u64,
    x15: u64,
    x16: u64,
    x17: u64,
    x18: u64,
    x19: u64,
    x20: u64,
    x21: u64,
    x22: u64,
    x23: u64,
    x24: u64,
) -> Result<u64, TdlError> {
    let inputs = [
        x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16, x17, x18, x19,
        x20, x21, x22, x23, x24,
    ];
    Ok(inputs.iter().fold(0u64, |acc, x| acc.wrapping_add(*x)))
}

silk_tdl::package! {
    name: "trivial",
    tasks: [one, sum25],
}
