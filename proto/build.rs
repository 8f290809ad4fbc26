//! Compiles `proto/silk/*.proto` with protox (pure Rust; no system `protoc`) and generates the
//! tonic/prost code into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/silk/storage.proto", "proto/silk/scheduler.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
