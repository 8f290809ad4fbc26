//! Which backend runs a package. Native code is trusted code: a package runs natively only if the
//! EM's configuration allow-lists it by name; every other package runs as wasm in the sandbox.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Where a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A `silk-executor-native` child process running `lib<name>.so`.
    Native,
    /// The wasmtime sandbox inside the EM running `<name>.wasm`.
    Wasm,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Wasm => "wasm",
        })
    }
}

/// The limits of a native package's tasks. Native code is trusted, so only what leaves the
/// executor is bounded: the EM refuses a larger output as it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NativePolicy {
    /// Largest output frame one task may return; a larger one fails the task `OutputTooLarge`
    /// (and a response frame larger than this plus [`RESPONSE_OVERHEAD_BYTES`] is refused
    /// before it is read, killing the executor). Default 64 MiB, as for wasm packages.
    pub max_output_bytes: u64,
}

/// Room in an executor's response frame beyond the output limit: the rest of the message, or a
/// failure whose texts are cut to [`silk_ipc::MAX_FAILURE_TEXT_BYTES`] each.
pub const RESPONSE_OVERHEAD_BYTES: u64 = 1 << 20;

impl Default for NativePolicy {
    fn default() -> Self {
        Self {
            max_output_bytes: 64 << 20,
        }
    }
}

/// The EM's package policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagePolicy {
    /// Packages trusted to run as native code. Everything else runs as wasm.
    #[serde(default)]
    pub native: BTreeSet<String>,
}

impl PackagePolicy {
    /// A policy that trusts exactly `names`.
    pub fn trusting<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self {
            native: names.into_iter().map(Into::into).collect(),
        }
    }

    /// The backend for `package`.
    #[must_use]
    pub fn backend_for(&self, package: &str) -> Backend {
        if self.native.contains(package) {
            Backend::Native
        } else {
            Backend::Wasm
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allow_listed_packages_run_natively() {
        let p = PackagePolicy::trusting(["fixtures"]);
        assert_eq!(p.backend_for("fixtures"), Backend::Native);
        assert_eq!(p.backend_for("complex"), Backend::Wasm);
        assert_eq!(
            PackagePolicy::default().backend_for("fixtures"),
            Backend::Wasm
        );
    }
}
