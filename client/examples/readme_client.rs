//! The README's "Using silk from Rust" example, verbatim below this header: `fib(fib(6))` as a
//! two-task job on a running `silk dev`. `runtime/tests/cli/readme_examples.rs` checks that the README
//! shows exactly this program and runs it against a fresh `silk dev`.

use silk_client::graph::TypeDesc;
use silk_client::{Client, GraphBuilder, JobOutcome};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors are sentences naming what failed (and storage's address): print them as such.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // fib(fib(n)): the second task reads the first one's output.
    let mut g = GraphBuilder::new();
    let first = g
        .task("fixtures", "fibonacci")
        .input(TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    g.task("fixtures", "fibonacci")
        .input_from(first.output(0), TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    let graph = g.build()?;

    // Address and admin token from the credentials file `silk dev` wrote (or SILK_ADDRESS,
    // SILK_TOKEN); opening the group switches the client to the group's own token.
    let client = Client::from_env()?;
    let group = client.open_group("examples", b"secret").await?;
    let job = client.submit(group, &graph, &[6.into()]).await?;
    match client.wait(job).await? {
        JobOutcome::Succeeded(outputs) => println!("fib(fib(6)) = {}", outputs[0]),
        JobOutcome::Failed(error) => eprintln!("job {job} failed: {error}"),
        JobOutcome::Cancelled => eprintln!("job {job} was cancelled"),
    }
    Ok(())
}
