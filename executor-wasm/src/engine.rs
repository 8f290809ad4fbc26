//! The one wasmtime [`Engine`] of an execution manager and its epoch ticker thread.
//!
//! The engine uses cranelift, the pooling allocator (sized to the host's real concurrency, with
//! keep-resident memory and tables so a fresh instance per task costs microseconds), epoch
//! interruption (one ticker thread per engine; timeouts are checked at each tick) and, if
//! configured, fuel metering.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::{HostConfig, usize_of};
use crate::error::HostError;

/// Bytes of each linear memory kept resident (not decommitted) between instances.
const MEMORY_KEEP_RESIDENT_BYTES: usize = 64 << 10;
/// Bytes of each table kept resident between instances.
const TABLE_KEEP_RESIDENT_BYTES: usize = 4 << 10;

/// Builds the engine for `config`.
pub(crate) fn build_engine(config: &HostConfig) -> Result<Engine, HostError> {
    let slots = config.max_concurrent_tasks.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size(usize_of(config.max_memory_bytes))
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        .pagemap_scan(Enabled::Auto);

    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .consume_fuel(config.fuel_metering)
        .max_wasm_stack(usize_of(config.max_wasm_stack_bytes));
    Engine::new(&c).map_err(|e| HostError::Engine(e.to_string()))
}

/// The thread that advances the engine's epoch every tick, stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine` every `tick`.
    pub(crate) fn start(engine: Engine, tick: Duration) -> Result<Self, HostError> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("silk-wasm-epoch".into())
            .spawn(move || {
                let (lock, cvar) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                while !*stopped {
                    let (guard, timeout) = cvar
                        .wait_timeout(stopped, tick)
                        .unwrap_or_else(PoisonError::into_inner);
                    stopped = guard;
                    if timeout.timed_out() {
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(HostError::Ticker)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            // The ticker never panics; a join error would only repeat that it ended.
            let _ = thread.join();
        }
    }
}
