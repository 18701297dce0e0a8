//! Generates the tonic/prost code from `proto/`, with protoc from the
//! `protoc-bin-vendored` crate so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/backstop/meta.proto",
        "proto/backstop/raft.proto",
        "proto/backstop/worker.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
