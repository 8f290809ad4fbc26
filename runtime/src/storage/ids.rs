//! Id newtypes the storage service mints besides the ones in `silk_tdl` (jobs, resource groups,
//! task instances): sessions, execution managers and schedulers. All are database auto-increment
//! values and serialize as bare integers.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
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
    /// One incarnation of the storage service: a new, larger id at every start. Every request of
    /// an execution manager or scheduler carries it; requests of an older session are rejected.
    SessionId
);
id_type!(
    /// A registered execution manager.
    ExecutionManagerId
);
id_type!(
    /// A registered scheduler.
    SchedulerId
);
