//! The process exit codes of the `silk` commands, in one place. `silk job` uses every code
//! below but the `silk package inspect` ones (its table is [`super::job::EXIT_CODES`]); the
//! server commands (`silk storage`, `silk scheduler`, `silk em`, `silk dev`) use [`SUCCESS`],
//! [`FAILURE`], [`USAGE`] and, for `silk dev`, [`INTERRUPTED`]. `silk task run` maps each
//! failure kind to a code of its own (`task_run::exit_code`).

/// The command did what was asked (`silk job submit` / `wait`: the job succeeded).
pub const SUCCESS: u8 = 0;
/// The job failed or was cancelled, or another error (silk itself failed).
pub const FAILURE: u8 = 1;
/// Bad usage: bad arguments, graph, inputs or configuration.
pub const USAGE: u8 = 2;
/// `silk job`: storage cannot be reached (after retrying).
pub const UNREACHABLE: u8 = 3;
/// `silk job`: no such job in the caller's resource group, or its outputs do not exist (the job
/// did not succeed).
pub const NOT_FOUND: u8 = 4;
/// `silk job`: a missing or wrong credential (token or resource group secret).
pub const UNAUTHENTICATED: u8 = 5;
/// `silk package inspect`: the file is not a silk package.
pub const NOT_A_PACKAGE: u8 = 3;
/// `silk package inspect`: a silk package built for another ABI version.
pub const ABI_VERSION: u8 = 4;
/// `silk package inspect`: a silk package that breaks the ABI.
pub const INVALID_PACKAGE: u8 = 5;
/// `silk job wait --timeout`: the wait timed out; the job keeps running (as `timeout(1)`).
pub const TIMED_OUT: u8 = 124;
/// Interrupted (Ctrl-C, 128 + SIGINT); for `silk job wait` the job keeps running.
pub const INTERRUPTED: u8 = 130;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_codes_are_documented() {
        for code in [
            SUCCESS,
            FAILURE,
            USAGE,
            UNREACHABLE,
            NOT_FOUND,
            UNAUTHENTICATED,
            TIMED_OUT,
            INTERRUPTED,
        ] {
            let line = format!("\n  {code:<4} ");
            assert!(
                super::super::job::EXIT_CODES.contains(&line),
                "missing {line:?}"
            );
        }
    }
}
