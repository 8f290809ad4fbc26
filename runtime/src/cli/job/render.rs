//! How `silk job` prints: text for people, one JSON document with `-o json`. Data goes to
//! stdout; the message of a failed or cancelled job to stderr in text mode.

use serde_json::{Value as Json, json};
use silk_tdl::JobId;

use super::{Failure, Output};
use crate::cli::exit_code;
use silk_client::{JobError, JobState, JobSummary, Progress};

/// A state as shown to users and accepted by `--state`: `running`, `commit-ready`, ...
pub(super) fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Ready => "ready",
        JobState::Running => "running",
        JobState::CommitReady => "commit-ready",
        JobState::CleanupReady => "cleanup-ready",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

pub(super) fn print_json(value: &Json) {
    println!("{value}");
}

fn progress_json(p: &Progress) -> Json {
    json!({
        "total": p.total,
        "pending": p.pending,
        "ready": p.ready,
        "running": p.running,
        "succeeded": p.succeeded,
        "failed": p.failed,
        "cancelled": p.cancelled,
    })
}

pub(super) fn status(job: JobId, p: &Progress, output: Output) {
    match output {
        Output::Json => print_json(&json!({
            "job_id": job.0,
            "state": state_name(p.state),
            "tasks": progress_json(p),
        })),
        Output::Text => println!(
            "job {job}: {}, {}/{} tasks succeeded, {} running, {} ready, {} pending, {} failed, {} cancelled",
            state_name(p.state),
            p.succeeded,
            p.total,
            p.running,
            p.ready,
            p.pending,
            p.failed,
            p.cancelled
        ),
    }
}

pub(super) fn outputs(job: JobId, frame: &[u8], output: Output) -> Result<(), Failure> {
    let values = crate::cli::json::frame_to_json(frame).map_err(|e| Failure {
        code: exit_code::FAILURE,
        message: format!("job {job}: {e}"),
    })?;
    match output {
        // The outputs are JSON text already (transcoded without a value tree); the keys stay in
        // the order of every other `-o json` document (sorted).
        Output::Json => println!(
            r#"{{"job_id":{},"outputs":{values},"state":"succeeded"}}"#,
            job.0
        ),
        Output::Text => println!("{values}"),
    }
    Ok(())
}

pub(super) fn failed(job: JobId, error: &JobError, output: Output) {
    match output {
        Output::Json => print_json(&json!({
            "job_id": job.0,
            "state": "failed",
            "error": {"kind": error.kind.as_str(), "message": error.message},
        })),
        // Storage's messages name the kind already (`… [TaskError]: …`): print it once.
        Output::Text if error.message.contains(&format!("[{}]", error.kind)) => {
            eprintln!("error: job {job} failed: {}", error.message);
        }
        Output::Text => eprintln!("error: job {job} failed: {}: {}", error.kind, error.message),
    }
}

/// A job that ended without succeeding or failing (cancelled).
pub(super) fn ended(job: JobId, state: JobState, output: Output) {
    match output {
        Output::Json => print_json(&json!({"job_id": job.0, "state": state_name(state)})),
        Output::Text => eprintln!("error: job {job} was {}", state_name(state)),
    }
}

pub(super) fn cancelled(job: JobId, state: JobState, output: Output) {
    match output {
        Output::Json => print_json(&json!({"job_id": job.0, "state": state_name(state)})),
        Output::Text => println!("job {job}: {}", state_name(state)),
    }
}

pub(super) fn submitted(job: JobId, output: Output) {
    match output {
        Output::Json => print_json(&json!({"job_id": job.0})),
        Output::Text => println!("{job}"),
    }
}

pub(super) fn list(jobs: &[JobSummary], output: Output) {
    if output == Output::Json {
        let rows: Vec<Json> = jobs
            .iter()
            .map(|j| {
                json!({
                    "job_id": j.job.0,
                    "resource_group_id": j.group.0,
                    "state": state_name(j.state),
                    "tasks": j.task_count,
                    "created_at_ms": j.created_at_ms,
                    "ended_at_ms": j.ended_at_ms,
                })
            })
            .collect();
        print_json(&Json::Array(rows));
        return;
    }
    println!("{:>8}  {:<13}  {:>6}  CREATED", "JOB", "STATE", "TASKS");
    for j in jobs {
        println!(
            "{:>8}  {:<13}  {:>6}  {}",
            j.job.0,
            state_name(j.state),
            j.task_count,
            age(j.created_at_ms)
        );
    }
}

/// "12s ago", "5m ago", "3h ago", "2d ago".
fn age(at_ms: i64) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let secs = (now_ms - at_ms).max(0) / 1000;
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}
