//! Following a job: the watch stream drives a progress bar on stderr (only when stderr is a
//! terminal) until the job ends; then the outcome is printed and mapped to an exit code.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use silk_tdl::JobId;
use tokio_stream::StreamExt;

use super::{Failure, Output, render};
use crate::cli::exit_code;
use silk_client::{Client, JobState, Progress};

/// The job's current progress (the first update of its watch stream).
pub(super) async fn current(client: &Client, job: JobId) -> Result<Progress, Failure> {
    let stream = client.watch(job);
    tokio::pin!(stream);
    match stream.next().await {
        Some(progress) => Ok(progress?),
        None => Err(Failure {
            code: exit_code::FAILURE,
            message: format!("storage ended the watch of job {job} without an update"),
        }),
    }
}

fn bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tasks done, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Follows the watch stream, updating `bar`, until the job reaches a terminal state.
async fn until_terminal(
    client: &Client,
    job: JobId,
    bar: &ProgressBar,
) -> Result<Progress, Failure> {
    let stream = client.watch(job);
    tokio::pin!(stream);
    while let Some(update) = stream.next().await {
        let p = update?;
        bar.set_length(p.total);
        bar.set_position(p.succeeded);
        bar.set_message(format!(
            "{} running, {} failed ({})",
            p.running,
            p.failed,
            render::state_name(p.state)
        ));
        if p.state.is_terminal() {
            return Ok(p);
        }
    }
    Err(Failure {
        code: exit_code::FAILURE,
        message: format!("the watch of job {job} ended before the job did"),
    })
}

/// Waits for the job (up to `timeout`), then prints its outcome. Exit 0 on success, 1 when it
/// failed or was cancelled, 124 on timeout, 130 on Ctrl-C.
pub(super) async fn follow(
    client: &Client,
    job: JobId,
    timeout: Option<Duration>,
    output: Output,
) -> Result<u8, Failure> {
    let bar = bar();
    let watched = async {
        match timeout {
            Some(t) => tokio::time::timeout(t, until_terminal(client, job, &bar))
                .await
                .ok(),
            None => Some(until_terminal(client, job, &bar).await),
        }
    };
    let ended = tokio::select! {
        r = watched => r,
        _ = tokio::signal::ctrl_c() => {
            bar.abandon();
            eprintln!("interrupted; job {job} keeps running (`silk job cancel {job}` stops it)");
            return Ok(exit_code::INTERRUPTED);
        }
    };
    let Some(progress) = ended else {
        bar.abandon();
        eprintln!("timed out; job {job} keeps running (`silk job wait {job}` to wait again)");
        return Ok(exit_code::TIMED_OUT);
    };
    let progress = progress?;
    bar.finish_and_clear();
    match progress.state {
        JobState::Succeeded => {
            let frame = client.outputs_frame(job).await?;
            render::outputs(job, &frame, output)?;
            Ok(exit_code::SUCCESS)
        }
        JobState::Failed => {
            let error = client.error(job).await?;
            render::failed(job, &error, output);
            Ok(exit_code::FAILURE)
        }
        state => {
            render::ended(job, state, output);
            Ok(exit_code::FAILURE)
        }
    }
}
