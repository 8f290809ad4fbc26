//! Which IPC transport a native executor uses, and the connection over either.

use std::time::Instant;

use silk_ipc::pipe::PipeClient;
use silk_ipc::shm::ShmClient;
use silk_ipc::{ClientTransport, Execute, Request, Response, TransportError};

/// The IPC transport between the EM and a native executor (`transport = "shm"` or `"pipe"` in
/// config, `--transport shm|pipe` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Lock-free rings in a shared-memory segment (the default). Falls back to pipes, with a
    /// warning, when the segment cannot be set up.
    #[default]
    Shm,
    /// Length-delimited frames over the executor's stdin and stdout.
    Pipe,
}

impl TransportKind {
    /// `"shm"` or `"pipe"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shm => "shm",
            Self::Pipe => "pipe",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shm" => Ok(Self::Shm),
            "pipe" => Ok(Self::Pipe),
            _ => Err(format!("unknown transport {s:?}: use shm or pipe")),
        }
    }
}

/// A live connection to an executor over one of the transports.
#[derive(Debug)]
pub(crate) enum Connection {
    Shm(ShmClient),
    Pipe(PipeClient),
}

impl Connection {
    pub(crate) fn kind(&self) -> TransportKind {
        match self {
            Self::Shm(_) => TransportKind::Shm,
            Self::Pipe(_) => TransportKind::Pipe,
        }
    }
}

impl ClientTransport for Connection {
    fn send(&mut self, request: &Request, deadline: Instant) -> Result<(), TransportError> {
        match self {
            Self::Shm(t) => t.send(request, deadline),
            Self::Pipe(t) => t.send(request, deadline),
        }
    }

    fn send_execute(&mut self, execute: &Execute, deadline: Instant) -> Result<(), TransportError> {
        match self {
            Self::Shm(t) => t.send_execute(execute, deadline),
            Self::Pipe(t) => t.send_execute(execute, deadline),
        }
    }

    fn recv(&mut self, deadline: Instant) -> Result<Response, TransportError> {
        match self {
            Self::Shm(t) => t.recv(deadline),
            Self::Pipe(t) => t.recv(deadline),
        }
    }

    fn set_max_recv_bytes(&mut self, limit: usize) {
        match self {
            Self::Shm(t) => t.set_max_recv_bytes(limit),
            Self::Pipe(t) => t.set_max_recv_bytes(limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_deserializes() {
        for kind in [TransportKind::Shm, TransportKind::Pipe] {
            assert_eq!(kind.to_string().parse::<TransportKind>(), Ok(kind));
        }
        assert!(
            "tcp"
                .parse::<TransportKind>()
                .unwrap_err()
                .contains("shm or pipe")
        );
        #[derive(serde::Deserialize)]
        struct Cfg {
            transport: TransportKind,
        }
        let cfg: Cfg = serde_json::from_str(r#"{"transport": "pipe"}"#).unwrap();
        assert_eq!(cfg.transport, TransportKind::Pipe);
        assert_eq!(TransportKind::default(), TransportKind::Shm);
    }
}
