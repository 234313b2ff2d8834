//! Compiles the wire API (`proto/ferrodyn.proto`) with tonic/prost.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/ferrodyn.proto");
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["proto/ferrodyn.proto"], &["proto"])?;
    Ok(())
}
