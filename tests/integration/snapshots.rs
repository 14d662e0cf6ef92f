//! Event snapshots (`before` / `after`) spell a resource as the API's JSON does: lowerCamelCase
//! field names, enum values by their proto names.

use crate::common::{Engine, TestServer, pb};
use pb::MembershipRole;
use prost_types::value::Kind;

engine_tests!(snapshots_use_the_api_json_spelling);

async fn last_event(srv: &TestServer, kind: &str) -> pb::Event {
    let events = srv
        .events()
        .list_events(pb::ListEventsRequest {
            kind: kind.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list events")
        .into_inner()
        .events;
    events
        .into_iter()
        .last()
        .unwrap_or_else(|| panic!("a {kind} event"))
}

fn after(e: &pb::Event) -> &prost_types::Struct {
    e.after
        .as_ref()
        .unwrap_or_else(|| panic!("{} has an after snapshot", e.kind))
}

fn text<'a>(s: &'a prost_types::Struct, field: &str) -> &'a str {
    match s.fields.get(field).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(text)) => text,
        other => panic!("{field} is a string, got {other:?} in {s:?}"),
    }
}

/// The snapshot names these fields, and none in snake_case.
fn assert_fields(what: &str, s: &prost_types::Struct, fields: &[&str]) {
    for field in fields {
        assert!(s.fields.contains_key(*field), "{what}: {field} in {s:?}");
    }
    for name in s.fields.keys() {
        assert!(!name.contains('_'), "{what}: {name} is not lowerCamelCase");
    }
}

async fn snapshots_use_the_api_json_spelling(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let user = srv
        .directory()
        .create_user(pb::CreateUserRequest {
            email: "ada@snapshots.test".into(),
            name: "Ada".into(),
            first_name: "Ada".into(),
            ..Default::default()
        })
        .await
        .expect("create user")
        .into_inner();
    let e = last_event(&srv, "user.created").await;
    assert_fields("user", after(&e), &["firstName", "lastName", "avatarUrl"]);

    let org = srv
        .directory()
        .create_organization(pb::CreateOrganizationRequest {
            name: "Snapshots".into(),
            slug: "snapshots".into(),
            ..Default::default()
        })
        .await
        .expect("create organization")
        .into_inner();
    let e = last_event(&srv, "organization.created").await;
    assert_fields(
        "organization",
        after(&e),
        &["maxAllowedMemberships", "publicMetadata", "createdAt"],
    );

    let m = srv
        .memberships()
        .create_membership(pb::CreateMembershipRequest {
            team_id: org.id,
            user_id: user.id,
            role: MembershipRole::Owner as i32,
            accepted: true,
            ..Default::default()
        })
        .await
        .expect("create membership")
        .into_inner();
    let e = last_event(&srv, "membership.created").await;
    let snapshot = after(&e);
    assert_fields(
        "membership",
        snapshot,
        &["teamId", "organizationId", "userId", "roleId", "roleKey"],
    );
    assert_eq!(text(snapshot, "role"), "MEMBERSHIP_ROLE_OWNER");
    assert_eq!(text(snapshot, "autoRecordCalls"), "AUTO_RECORD_CALLS_UNSET");

    srv.roles()
        .create_role(pb::CreateRoleRequest {
            team_id: org.id,
            name: "Reviewer".into(),
            permissions: vec!["team.read".into()],
            ..Default::default()
        })
        .await
        .expect("create role");
    let e = last_event(&srv, "role.created").await;
    assert_fields("role", after(&e), &["teamId", "type", "permissions"]);
    assert_eq!(text(after(&e), "type"), "ROLE_TYPE_CUSTOM");

    let attribute = srv
        .attributes()
        .create_attribute(pb::CreateAttributeRequest {
            organization_id: org.id,
            name: "Location".into(),
            r#type: pb::AttributeType::Text as i32,
            ..Default::default()
        })
        .await
        .expect("create attribute")
        .into_inner();
    let e = last_event(&srv, "attribute.created").await;
    assert_fields("attribute", after(&e), &["organizationId", "type"]);
    assert_eq!(text(after(&e), "type"), "ATTRIBUTE_TYPE_TEXT");

    srv.attributes()
        .assign_attribute(pb::AssignAttributeRequest {
            organization_id: org.id,
            attribute_id: attribute.id.clone(),
            member: Some(pb::assign_attribute_request::Member::MembershipId(m.id)),
            value: Some(pb::assign_attribute_request::Value::Text("Berlin".into())),
        })
        .await
        .expect("assign attribute");
    let e = last_event(&srv, "membership.updated").await;
    let assigned = match after(&e)
        .fields
        .get("attributes")
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::ListValue(list)) => match list.values.first().and_then(|v| v.kind.as_ref()) {
            Some(Kind::StructValue(s)) => s.clone(),
            other => panic!("an assigned attribute, got {other:?}"),
        },
        other => panic!("after.attributes is a list, got {other:?}"),
    };
    assert_fields("assigned attribute", &assigned, &["attributeId", "value"]);
    match assigned.fields.get("value").and_then(|v| v.kind.as_ref()) {
        Some(Kind::StructValue(value)) => {
            assert_fields("assigned value", value, &["assignmentId", "text"]);
            assert_eq!(text(value, "type"), "text", "cal.com's type names stay");
        }
        other => panic!("value is an object, got {other:?}"),
    }
    srv.stop().await;
}
