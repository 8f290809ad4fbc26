//! Compiles `proto/silk/*.proto` with protox (pure Rust; no system `protoc`) and generates the
//! tonic/prost code into `OUT_DIR`, plus `method_paths.rs`: the gRPC path of every RPC of every
//! service (what `silk_proto::METHOD_PATHS` lists, so an authorization table can be checked
//! against the protocol itself).

use std::fmt::Write as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/silk/storage.proto", "proto/silk/scheduler.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    let mut paths = String::from("&[\n");
    for file in &descriptors.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                writeln!(
                    paths,
                    "    \"/{package}.{}/{}\",",
                    service.name(),
                    method.name()
                )?;
            }
        }
    }
    paths.push(']');
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("method_paths.rs"), paths)?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
