//! `silk dev`: a local cluster in one process ([`crate::dev::DevCluster`]) until Ctrl-C. The first
//! Ctrl-C (or SIGTERM) drains: running tasks finish, completions are flushed; a second one stops
//! at once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::exit_code;
use crate::dev::{DEFAULT_PORT_BASE, DevCluster, DevOptions};
use crate::traces::{Endpoint, TracesConfig};
use silk_client::Credentials;

/// `silk dev` arguments.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Keep the data in this SQLite file (created if missing). Default: a temporary file,
    /// deleted on exit.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Storage listens on this port, the scheduler on the next one (0: any free ports).
    #[arg(long, env = "SILK_DEV_PORT_BASE", value_name = "PORT", default_value_t = DEFAULT_PORT_BASE)]
    pub port_base: u16,
    /// Directory of packages (`lib<name>.so`, `<name>.wasm`), as staged by
    /// scripts/build-packages.
    #[arg(
        long,
        env = "SILK_PACKAGES",
        value_name = "DIR",
        default_value = "target/packages"
    )]
    pub packages: PathBuf,
    /// Trust a package to run natively (its `lib<name>.so`, in a separate process, no sandbox).
    /// Every other package runs as sandboxed wasm. Can be passed multiple times.
    #[arg(long, value_name = "NAME")]
    pub trust: Vec<String>,
    /// Executor slots: tasks that run at once, at least 1 (default: the CPU count).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub slots: Option<usize>,
    /// Address of the Prometheus endpoint serving all three services' metrics; empty turns it
    /// off.
    #[arg(
        long,
        env = "SILK_DEV_METRICS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:9150",
        value_parser = metrics_listen
    )]
    pub metrics_listen: String,
    /// Export OpenTelemetry spans of every job to this OTLP/gRPC collector (e.g.
    /// `http://127.0.0.1:4317`); the other `[traces]` keys keep their defaults. Default: off.
    #[arg(long, env = "SILK_DEV_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<Endpoint>,
    /// Where to write the cluster's address and admin token (mode 0600) for `silk job` and
    /// `Client::from_env`. Default: ~/.config/silk/credentials.toml (or under
    /// $XDG_CONFIG_HOME). Removed on exit.
    #[arg(long, env = "SILK_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
}

/// `--metrics-listen`: `HOST:PORT`, or empty (off).
fn metrics_listen(value: &str) -> Result<String, String> {
    super::config_file::check_listen("metrics_listen", value, true)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

/// Runs `silk dev` until interrupted. Exit 0 after a clean stop, 1 when the cluster cannot start
/// or fails, 2 on bad usage, 130 after a second Ctrl-C.
#[must_use]
pub fn run(args: &DevArgs, async_threads: Option<u16>) -> ExitCode {
    let runtime = match crate::cli::tokio_runtime(async_threads) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(serve(args));
    // After a hard stop, slot threads may still be inside a task: do not wait for them.
    runtime.shutdown_background();
    code
}

async fn serve(args: &DevArgs) -> ExitCode {
    let options = DevOptions {
        db: args.db.clone(),
        port_base: args.port_base,
        trust: args.trust.clone(),
        slots: args.slots,
        metrics_listen: Some(args.metrics_listen.clone()),
        traces: args.otlp_endpoint.clone().map(TracesConfig::new),
        ..DevOptions::new(args.packages.clone())
    };
    let mut cluster = match DevCluster::start(options).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(path) = args
        .credentials
        .clone()
        .or_else(|| Credentials::default_path(env))
    else {
        eprintln!("error: no place for the credentials file: set HOME or pass --credentials FILE");
        return ExitCode::FAILURE;
    };
    let credentials = Credentials {
        address: Some(cluster.storage_url()),
        token: Some(cluster.admin_token().expose().to_owned()),
        ca_file: None,
    };
    if let Err(e) = credentials.write(&path) {
        eprintln!("error: writing {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let written = Written { path, credentials };
    println!("{}", banner(&cluster, args, &written.path));
    tokio::select! {
        () = super::storage::shutdown_signal() => {}
        e = cluster.failed() => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("silk dev: stopping; running tasks finish (Ctrl-C again to stop at once)");
    let kill_token = cluster.kill_token();
    let kill = tokio::spawn(async move {
        super::storage::shutdown_signal().await;
        eprintln!("silk dev: stopping at once");
        kill_token.cancel();
    });
    let result = cluster.stop().await;
    let killed = kill.is_finished();
    kill.abort();
    match result {
        Ok(()) if killed => ExitCode::from(exit_code::INTERRUPTED),
        Ok(()) => {
            eprintln!("silk dev: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The credentials file of this run, removed on exit unless another `silk dev` has rewritten it
/// since.
struct Written {
    path: PathBuf,
    credentials: Credentials,
}

impl Drop for Written {
    fn drop(&mut self) {
        if Credentials::read(&self.path).ok().flatten().as_ref() == Some(&self.credentials) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How to run this `silk` from the current directory: `silk` when that is the one on `PATH`,
/// else its path (relative when it is below the current directory, as `target/release/silk`).
fn silk_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(|e| e.canonicalize()) else {
        return "silk".to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| dir.join("silk").canonicalize().is_ok_and(|p| p == exe))
    });
    if on_path {
        return "silk".to_owned();
    }
    std::env::current_dir()
        .ok()
        .and_then(|dir| {
            exe.strip_prefix(dir.canonicalize().ok()?)
                .ok()
                .map(std::path::Path::to_path_buf)
        })
        .unwrap_or(exe)
        .display()
        .to_string()
}

/// Where the cluster listens and what to try next.
fn banner(cluster: &DevCluster, args: &DevArgs, credentials: &std::path::Path) -> String {
    let storage = cluster.storage_url();
    let db = if cluster.db_is_temporary() {
        format!(
            "{} (temporary; --db PATH to keep it)",
            cluster.db_path().display()
        )
    } else {
        cluster.db_path().display().to_string()
    };
    let native = if args.trust.is_empty() {
        "none (--trust NAME to run a package natively)".to_owned()
    } else {
        args.trust.join(", ")
    };
    let silk = silk_command();
    let example = if args.packages.join("complex.wasm").is_file() {
        format!(
            "{silk} package inspect {packages}/complex.wasm\n  \
             {silk} job submit docs/examples/diamond.json --inputs docs/examples/diamond-inputs.json",
            packages = args.packages.display()
        )
    } else {
        format!(
            "{silk} package inspect {}/NAME.wasm\n  \
             {silk} job submit GRAPH.json --inputs INPUTS.json",
            args.packages.display()
        )
    };
    format!(
        "silk dev: a local cluster for development (not for production)\n\
         \n  storage     {storage}\n  database    {db}\n  scheduler   {scheduler}\n  \
         executor    {slots} slots, packages from {packages}\n  native      {native}; every \
         other package runs as sandboxed wasm\n  metrics     {metrics}\n  credentials {credentials} (address and admin \
         token, mode 0600; silk job reads it)\n\
         \nNext steps, in another terminal:\n  \
         {example}\n  \
         {silk} job list\n  \
         {silk} job status JOB_ID\n\
         \nStop with Ctrl-C.",
        scheduler = cluster.scheduler_url(),
        metrics = cluster.metrics_addr().map_or_else(
            || "off (--metrics-listen ADDR to serve Prometheus metrics)".to_owned(),
            |a| format!("http://{a}/metrics")
        ),
        slots = cluster.slots(),
        packages = args.packages.display(),
        credentials = credentials.display(),
    )
}
