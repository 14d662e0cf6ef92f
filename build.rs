//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and writes the descriptor set
//! that server reflection serves.

use std::path::PathBuf;

use prost::Message;

const SERVICE_PROTOS: &[&str] = &[
    "membership/v1/common.proto",
    "membership/v1/directory.proto",
    "membership/v1/membership.proto",
    "membership/v1/event.proto",
    "membership/v1/role.proto",
    "membership/v1/access.proto",
    "membership/v1/attribute.proto",
    "membership/v1/api_key.proto",
    "membership/v1/invitation.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files: Vec<&str> = SERVICE_PROTOS.to_vec();
    // Served by reflection so grpcurl can decode error details; code comes from tonic-types.
    files.push("google/rpc/error_details.proto");
    let mut fds = protox::compile(&files, ["proto"])?;
    for file in &mut fds.file {
        for message in &mut file.message_type {
            set_json_names(message);
        }
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("membership_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".google.rpc", "::tonic_types")
        .compile_fds(fds)?;
    Ok(())
}

/// grpcurl prints fields by their `json_name`; protoc fills it in, so do the same here.
fn set_json_names(message: &mut prost_types::DescriptorProto) {
    for field in &mut message.field {
        if field.json_name.is_none() {
            field.json_name = Some(lower_camel(field.name()));
        }
    }
    for nested in &mut message.nested_type {
        set_json_names(nested);
    }
}

fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
