//! `u64` id newtypes shared by packages and services. They serialize as bare integers.

/// Defines a `u64` id newtype that serializes as a bare integer. Also used by the services for
/// their own ids; the caller must depend on `serde`.
#[doc(hidden)]
#[macro_export]
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

id_type!(
    /// A job.
    JobId
);
id_type!(
    /// A resource group (the owner of jobs, the unit of fairness).
    ResourceGroupId
);
id_type!(
    /// One attempt at running a task.
    TaskInstanceId
);
