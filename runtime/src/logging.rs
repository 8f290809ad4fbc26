//! Log setup: `tracing` to stderr, filtered by `RUST_LOG`. Services log JSON lines when stderr
//! is not a terminal (under a supervisor); commands a person runs log compact text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Who the logs are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A long-running service: JSON when stderr is not a terminal, text when it is.
    Service,
    /// A command a person runs: always text (colour only on a terminal).
    Command,
}

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is unset.
/// Does nothing if a subscriber is already installed.
pub fn init(style: Style, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal);
    let _already_set = if style == Style::Service && !terminal {
        builder.json().try_init()
    } else {
        builder.compact().without_time().try_init()
    };
}
