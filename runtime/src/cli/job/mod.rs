//! `silk job`: submit jobs to a cluster and follow them. Built on the `silk_client` crate. Data goes to
//! stdout (outputs, ids, tables, JSON with `-o json`); progress, hints and errors to stderr.

mod connect;
mod render;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use silk_tdl::JobId;

use crate::cli::exit_code;
use silk_client::{ClientError, JobState, ListFilter, RetryPolicy};
use silk_core::graph::TaskGraph;

/// Exit codes of `silk job`, shown in `--help` (the constants are in [`exit_code`]).
pub const EXIT_CODES: &str = "Exit codes:
  0    success (submit, wait: the job succeeded)
  1    the job failed or was cancelled, or another error
  2    usage error: bad arguments, graph or inputs
  3    cannot reach storage (after retrying)
  4    no such job in your resource group, or its outputs do not exist (the job did not
       succeed)
  5    missing or wrong credential (token or resource group secret)
  124  wait timed out (--timeout); the job keeps running
  130  interrupted (Ctrl-C); the job keeps running";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Readable text (outputs and errors as JSON values where they are data).
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// Where the cluster is and who submits.
#[derive(Debug, Args)]
pub struct Connection {
    /// Storage endpoint (`host:port`, `http://host:port` or `https://host:port`). Default: the
    /// credentials file's address, else `http://127.0.0.1:50051`.
    #[arg(long, global = true, env = "SILK_ADDRESS", value_name = "URL")]
    pub address: Option<String>,
    /// File holding the token to send: a resource-group token, or the admin token. Default: the
    /// `SILK_TOKEN` environment variable, else the credentials file (`SILK_CREDENTIALS`, else
    /// ~/.config/silk/credentials.toml, which `silk dev` writes).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that a TLS storage server's certificate must chain to. Default: the
    /// credentials file's `ca_file`.
    #[arg(long, global = true, env = "SILK_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Resource group the commands act for, opened with the secret in the `SILK_GROUP_SECRET`
    /// environment variable (empty when unset); created on first use when the token is the
    /// admin token. Ignored when the token is a resource-group token (it names its group).
    #[arg(
        long,
        global = true,
        env = "SILK_GROUP",
        value_name = "NAME",
        default_value = "default"
    )]
    pub group: String,
    /// How long to keep retrying while storage cannot be reached, in seconds.
    #[arg(
        long,
        global = true,
        env = "SILK_RETRY_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 30.0
    )]
    pub retry_timeout: f64,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `silk job` arguments.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub connection: Connection,
    /// The verb.
    #[command(subcommand)]
    pub command: JobCommand,
}

/// `silk job ...`
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job and, by default, wait for it with a progress bar; print its outputs as JSON
    ///
    /// The graph is a task-graph JSON file (docs/task-graph.md); the inputs are a JSON array with
    /// one element per job input. Without --no-wait it exits 0 when the job succeeds and 1 with
    /// the job's error (kind and message) when it fails.
    ///
    /// Example:
    ///   silk job submit docs/examples/diamond.json --inputs docs/examples/diamond-inputs.json
    Submit(SubmitArgs),
    /// Show a job's state and task counts
    ///
    /// Example:
    ///   silk job status 42
    Status(JobRef),
    /// Wait for a job to end, with a progress bar; print its outputs as JSON on success
    ///
    /// Example:
    ///   silk job wait 42 --timeout 60
    Wait(WaitArgs),
    /// Print a succeeded job's outputs as a JSON array
    ///
    /// Example:
    ///   silk job outputs 42
    Outputs(JobRef),
    /// Cancel a job (its cleanup task runs, if it has one)
    ///
    /// Example:
    ///   silk job cancel 42
    Cancel(JobRef),
    /// List jobs, newest first
    ///
    /// Example:
    ///   silk job list --state running --limit 20
    List(ListArgs),
}

/// A job id argument.
#[derive(Debug, Args)]
pub struct JobRef {
    /// The job id (printed by `silk job submit`).
    #[arg(value_name = "JOB_ID")]
    pub job: u64,
}

/// `silk job submit` arguments.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The task graph (JSON, docs/task-graph.md).
    #[arg(value_name = "GRAPH_FILE")]
    pub graph: PathBuf,
    /// The job inputs: a JSON array, one element per job input, given inline (`'[1, 2]'`), in a
    /// file, or on stdin (`-`). Default: no inputs.
    #[arg(long, value_name = "JSON|FILE|-")]
    pub inputs: Option<PathBuf>,
    /// Print the job id and return at once.
    #[arg(long)]
    pub no_wait: bool,
    /// Stop waiting after this many seconds (exit 124; the job keeps running).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

/// `silk job wait` arguments.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The job id.
    #[arg(value_name = "JOB_ID")]
    pub job: u64,
    /// Stop waiting after this many seconds (exit 124; the job keeps running).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

/// `--state`: a state name as `silk job` prints it.
fn parse_state(name: &str) -> Result<JobState, String> {
    JobState::ALL
        .into_iter()
        .find(|s| render::state_name(*s) == name)
        .ok_or_else(|| {
            let names: Vec<_> = JobState::ALL.into_iter().map(render::state_name).collect();
            format!("expected one of {}", names.join(", "))
        })
}

/// `silk job list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state: ready, running, commit-ready, cleanup-ready, succeeded, failed
    /// or cancelled.
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    pub state: Option<JobState>,
    /// At most this many jobs (at most 1000).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Jobs of every resource group, not only --group's (needs the admin token).
    #[arg(long)]
    pub all_groups: bool,
}

/// A failed command: what to print and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: exit_code::USAGE,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Unavailable { .. } => exit_code::UNREACHABLE,
            ClientError::NotFound { .. } | ClientError::PermissionDenied(_) => exit_code::NOT_FOUND,
            ClientError::InvalidGraph(_) | ClientError::InvalidArgument(_) => exit_code::USAGE,
            ClientError::Unauthenticated(_) => exit_code::UNAUTHENTICATED,
            _ => exit_code::FAILURE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

/// Runs `silk job ...`; see [`EXIT_CODES`].
#[must_use]
pub fn run(args: &JobArgs, async_threads: Option<u16>) -> ExitCode {
    let runtime = match crate::cli::tokio_runtime(async_threads) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(dispatch(args)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if args.connection.output == Output::Json {
                // Scripts read stdout: the error is a JSON document there too.
                render::print_json(&serde_json::json!({
                    "error": failure.message,
                    "exit_code": failure.code,
                }));
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Says at once on stderr when storage's port does not accept connections (the command itself
/// keeps retrying for `retry` and says why it gave up): otherwise a command run without a cluster
/// is silent for the whole retry period.
async fn warn_if_unreachable(address: &str, retry: Duration) {
    let authority = address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let Err(e) = tokio::net::TcpStream::connect(authority).await else {
        return;
    };
    if !retry.is_zero() {
        eprintln!(
            "cannot reach storage at {address} ({e}); retrying for up to {} s \
             (--retry-timeout SECONDS or SILK_RETRY_TIMEOUT changes this; is `silk dev` running?)",
            retry.as_secs_f64()
        );
    }
}

async fn dispatch(args: &JobArgs) -> Result<u8, Failure> {
    let conn = &args.connection;
    let retry = timeout(Some(conn.retry_timeout))?.unwrap_or_default();
    let mut session = connect::session(conn)?;
    session.client = session
        .client
        .with_retry(RetryPolicy { max_elapsed: retry });
    let probe = tokio::spawn({
        let address = session.client.address().to_owned();
        async move { warn_if_unreachable(&address, retry).await }
    });
    let result = run_command(args, &session).await;
    probe.abort();
    result
}

async fn run_command(args: &JobArgs, session: &connect::Session) -> Result<u8, Failure> {
    let conn = &args.connection;
    if let JobCommand::Submit(submit) = &args.command {
        return self::submit(session, conn, submit).await;
    }
    let all_groups = matches!(&args.command, JobCommand::List(l) if l.all_groups);
    let group = if all_groups {
        None
    } else {
        Some(session.group(conn).await?)
    };
    let client = &session.client;
    match &args.command {
        JobCommand::Submit(_) => unreachable!("handled above"),
        JobCommand::Status(r) => {
            let progress = wait::current(client, JobId(r.job)).await?;
            render::status(JobId(r.job), &progress, conn.output);
            Ok(exit_code::SUCCESS)
        }
        JobCommand::Wait(w) => {
            wait::follow(client, JobId(w.job), timeout(w.timeout)?, conn.output).await
        }
        JobCommand::Outputs(r) => {
            let state = client.state(JobId(r.job)).await?;
            if state != JobState::Succeeded {
                return Err(Failure {
                    code: exit_code::NOT_FOUND,
                    message: format!(
                        "job {} is {}: only a succeeded job has outputs",
                        r.job,
                        render::state_name(state)
                    ),
                });
            }
            let frame = client.outputs_frame(JobId(r.job)).await?;
            render::outputs(JobId(r.job), &frame, conn.output)?;
            Ok(exit_code::SUCCESS)
        }
        JobCommand::Cancel(r) => {
            let job = JobId(r.job);
            let state = match client.cancel(job).await {
                Ok(state) => state,
                // Storage refuses to cancel a job that has ended: say so in the user's terms.
                Err(ClientError::Rpc {
                    kind: Some(kind), ..
                }) if kind == silk_core::wire::INVALID_TRANSITION => {
                    let state = client.state(job).await?;
                    return Err(Failure {
                        code: exit_code::FAILURE,
                        message: format!(
                            "job {job} has already ended ({}): there is nothing to cancel",
                            render::state_name(state)
                        ),
                    });
                }
                Err(e) => return Err(e.into()),
            };
            render::cancelled(job, state, conn.output);
            Ok(exit_code::SUCCESS)
        }
        JobCommand::List(l) => {
            let jobs = client
                .list(ListFilter {
                    limit: l.limit,
                    state: l.state,
                    group,
                })
                .await?;
            render::list(&jobs, conn.output);
            Ok(exit_code::SUCCESS)
        }
    }
}

fn timeout(seconds: Option<f64>) -> Result<Option<Duration>, Failure> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                Failure::usage(format!("{s}: expected a non-negative number of seconds"))
            })
        })
        .transpose()
}

fn read_text(path: &std::path::Path, what: &str) -> Result<String, Failure> {
    let result = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|e| Failure::usage(format!("cannot read {what} {}: {e}", path.display())))
}

async fn submit(
    session: &connect::Session,
    conn: &Connection,
    args: &SubmitArgs,
) -> Result<u8, Failure> {
    let client = &session.client;
    let graph_json = read_text(&args.graph, "graph file")?;
    let graph = TaskGraph::from_json(&graph_json)
        .map_err(|e| Failure::usage(format!("{}: {e}", args.graph.display())))?;
    let inputs = match &args.inputs {
        // Inline JSON: an array is never a file name anyone means.
        Some(text) if text.to_string_lossy().trim_start().starts_with('[') => {
            text.to_string_lossy().into_owned()
        }
        Some(path) => read_text(path, "inputs file")?,
        None => "[]".to_owned(),
    };
    let frame = super::json::inputs_to_frame(&inputs).map_err(|e| Failure::usage(e.to_string()))?;
    let given = silk_tdl::frame::decode(&frame).map_or(0, |v| v.len());
    let expected = graph.job_inputs().len();
    if given != expected {
        return Err(Failure::usage(format!(
            "the graph takes {expected} job input(s), the inputs array has {given} (docs/task-graph.md: job inputs are the inputs of the input tasks, in task order)"
        )));
    }
    let timeout = timeout(args.timeout)?;
    let group = session.group(conn).await?;
    let job = client.submit_graph(group, &graph, frame).await?;
    if args.no_wait {
        render::submitted(job, conn.output);
        return Ok(exit_code::SUCCESS);
    }
    eprintln!(
        "submitted job {job} ({} task{}); `silk job status {job}` shows it, `silk job cancel {job}` stops it",
        graph.tasks.len(),
        if graph.tasks.len() == 1 { "" } else { "s" }
    );
    wait::follow(client, job, timeout, conn.output).await
}
