//! A package built for an ABI version no executor speaks. It exports only the version symbol:
//! executors must check the version before looking up anything else.

/// An ABI version from the future.
#[unsafe(no_mangle)]
pub extern "C" fn silk_abi_version() -> u32 {
    999
}
