fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc is vendored so a fresh machine needs no system protobuf compiler.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure().bytes(".").compile_protos(&["proto/tessera.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/tessera.proto");
    Ok(())
}
