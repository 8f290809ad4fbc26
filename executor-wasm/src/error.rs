//! Errors of setting the host up. Everything that goes wrong with a package or a task is a
//! [`TaskFailure`](silk_ipc::TaskFailure) instead.

/// The host could not be created.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// wasmtime refused the engine configuration (e.g. not enough address space for the pool).
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The linker could not be set up.
    #[error("cannot set up the wasm linker: {0}")]
    Linker(String),
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[source] std::io::Error),
    /// The module cache directory could not be created.
    #[error("cannot create the module cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid host configuration: {0}")]
    Config(String),
}
