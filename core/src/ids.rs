//! Id newtypes the storage service mints besides the ones in `silk_tdl` (jobs, resource groups,
//! task instances): sessions, execution managers and schedulers. All are database auto-increment
//! values and serialize as bare integers.

use silk_tdl::id_type;

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
