//! The execution manager (EM): runs tasks on a pool of executors.

pub mod pool;
