//! Errors of the execution manager.

/// An EM error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid configuration.
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// Registration with storage was refused or never answered before shutdown.
    #[error("registration with storage failed: {message}")]
    Register {
        /// Why.
        message: String,
    },
    /// Storage declared this EM dead; it must stop.
    #[error("marked dead by storage: {message}")]
    MarkedDead {
        /// Storage's message.
        message: String,
    },
    /// The wasm host could not be created.
    #[error("wasm host: {0}")]
    Wasm(#[from] silk_executor_wasm::HostError),
    /// A pool thread could not be started.
    #[error("starting executor slot: {0}")]
    Slot(std::io::Error),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
