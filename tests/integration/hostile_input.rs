//! Input a hostile caller sends: deeply nested metadata, undecodable bodies, huge echoed values,
//! thousands of bad entries. Each is a precise INVALID_ARGUMENT the client can read (small trailers), and nothing
//! is stored, on every engine.

use serde_json::{Value, json};
use tonic::Code;

use crate::common::{
    Engine, TestServer, assert_invalid, create_org, expect_err, field_violations, pb, reason,
    to_struct,
};

engine_tests!(
    deep_metadata_is_refused_not_stored,
    huge_bad_requests_reach_the_client,
    undecodable_bodies_are_invalid_arguments
);

fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "k": value });
    }
    value
}

async fn deep_metadata_is_refused_not_stored(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let mut dir = srv.directory();
    dir.create_user(pb::CreateUserRequest {
        email: "ten@deep.test".into(),
        metadata: Some(to_struct(nested(10))),
        ..Default::default()
    })
    .await
    .expect("ten levels are accepted");
    for levels in [11, 33, 34, 40] {
        let status = expect_err(
            dir.create_user(pb::CreateUserRequest {
                email: format!("deep{levels}@deep.test"),
                metadata: Some(to_struct(nested(levels))),
                ..Default::default()
            })
            .await,
        );
        assert_eq!(status.code(), Code::InvalidArgument, "{levels}: {status:?}");
        if levels <= 33 {
            assert_invalid(&status, "metadata");
        } else {
            // Past protobuf's own recursion limit the body does not even decode.
            assert_eq!(
                reason(&status).as_deref(),
                Some("MALFORMED_REQUEST"),
                "{levels}"
            );
        }
    }
    let users = dir
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .users;
    assert_eq!(users.len(), 1, "only the ten-level user was stored");
    // The feed still decodes for every client.
    srv.events()
        .list_events(pb::ListEventsRequest::default())
        .await
        .expect("events decode");
    srv.stop().await;
}

async fn huge_bad_requests_reach_the_client(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "hostile").await;
    let status = expect_err(
        srv.client(pb::role_service_client::RoleServiceClient::new)
            .create_role(pb::CreateRoleRequest {
                team_id: org.id,
                name: "Everything".into(),
                permissions: (0..1000)
                    .map(|i| format!("bogus{i}.{}", "x".repeat(200)))
                    .collect(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        field_violations(&status).len(),
        100,
        "at most 100 violations"
    );
    let status = expect_err(
        srv.events()
            .list_events(pb::ListEventsRequest {
                kind: "k".repeat(100_000),
                ..Default::default()
            })
            .await,
    );
    assert_invalid(&status, "kind");
    srv.stop().await;
}

/// Raw gRPC frames no protobuf decoder accepts: a string field with invalid UTF-8 and a
/// truncated varint.
async fn undecodable_bodies_are_invalid_arguments(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    // CreateUserRequest field 1 (email, a string) holding the bytes 0xff 0xfe; then a field
    // whose varint never ends.
    for body in [vec![0x0a, 0x02, 0xff, 0xfe], vec![0x10, 0xff, 0xff]] {
        let status = raw_unary(&srv, "/membership.v1.DirectoryService/CreateUser", body).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(reason(&status).as_deref(), Some("MALFORMED_REQUEST"));
    }
    srv.stop().await;
}

/// One unary call with a hand-made body, through the harness's authenticated channel.
async fn raw_unary(srv: &TestServer, path: &'static str, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(srv.client(|channel| channel));
    grpc.ready().await.expect("ready");
    let result: Result<tonic::Response<()>, tonic::Status> = grpc
        .unary(
            tonic::Request::new(body),
            http::uri::PathAndQuery::from_static(path),
            RawCodec,
        )
        .await;
    result.expect_err("the server must refuse the body")
}

/// Sends bytes as they are; expects no answer body (the call must fail).
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = NoDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> NoDecoder {
        NoDecoder
    }
}

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

struct NoDecoder;

impl tonic::codec::Decoder for NoDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        _src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        Ok(Some(()))
    }
}
