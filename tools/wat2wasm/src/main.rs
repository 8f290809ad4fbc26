//! `silk-wat2wasm IN.wat OUT.wasm`: turns a task package written in WebAssembly text into a
//! module. A build helper of `scripts/build-packages` (the one place that stages packages); it
//! depends only on `wat`, so it builds in seconds and never links wasmtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: silk-wat2wasm IN.wat OUT.wasm");
        return ExitCode::from(2);
    };
    let bytes = match wat::parse_file(input) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("silk-wat2wasm: {}: {e}", input.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(output, bytes) {
        eprintln!("silk-wat2wasm: {}: {e}", output.to_string_lossy());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
