//! Generated protobuf and gRPC code for `membership.v1`.

#![allow(clippy::all, clippy::pedantic)]

tonic::include_proto!("membership.v1");

/// The encoded descriptor set that server reflection serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("membership_descriptor");
