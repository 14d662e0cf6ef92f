//! AttributeService through a real server on every engine: definitions, options, assignments,
//! and the attributes GetMembership / ListMemberships report in cal.com's shape.

use crate::common::{
    Engine, TestServer, add_member, create_org, create_team, create_user, event_count, expect_err,
    field_violations, get_membership, pb, scoped_key,
};
use pb::assign_attribute_request::{Member, Value};
use pb::membership_attribute::Value as Shape;
use pb::{Attribute, AttributeType, Membership, MembershipRole, Organization};
use sea_orm::{ConnectionTrait, Database, Statement};
use tonic::Code;

engine_tests!(
    four_types_are_returned_in_the_seed_shape,
    wrong_value_is_invalid_argument_and_writes_nothing,
    option_of_another_attribute_is_invalid_argument,
    another_organization_is_not_found,
    sub_team_membership_is_not_found,
    delete_attribute_removes_its_assignments,
    reassign_replaces_and_unassign_removes,
    deleting_the_membership_or_organization_removes_assignments,
    definitions_are_validated,
    list_pages_in_creation_order,
    scopes_are_enforced,
);

/// An organization with an owner and a member (returned: org, the member's membership).
async fn org_with_member(srv: &TestServer, slug: &str) -> (Organization, Membership) {
    let org = create_org(srv, slug).await;
    let owner = create_user(srv, &format!("owner@{slug}.test")).await;
    let member = create_user(srv, &format!("member@{slug}.test")).await;
    add_member(srv, org.id, owner.id, MembershipRole::Owner).await;
    let m = add_member(srv, org.id, member.id, MembershipRole::Member).await;
    (org, m)
}

async fn create_attribute(
    srv: &TestServer,
    org: i64,
    name: &str,
    kind: AttributeType,
    options: &[&str],
) -> Attribute {
    srv.attributes()
        .create_attribute(pb::CreateAttributeRequest {
            organization_id: org,
            name: name.into(),
            r#type: kind as i32,
            options: options.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("create attribute {name}: {s:?}"))
        .into_inner()
}

fn assign_request(
    org: i64,
    attribute: &Attribute,
    membership_id: i64,
    value: Value,
) -> pb::AssignAttributeRequest {
    pb::AssignAttributeRequest {
        organization_id: org,
        attribute_id: attribute.id.clone(),
        member: Some(Member::MembershipId(membership_id)),
        value: Some(value),
    }
}

async fn assign(
    srv: &TestServer,
    org: i64,
    attribute: &Attribute,
    membership_id: i64,
    value: Value,
) -> Membership {
    srv.attributes()
        .assign_attribute(assign_request(org, attribute, membership_id, value))
        .await
        .unwrap_or_else(|s| panic!("assign {}: {s:?}", attribute.name))
        .into_inner()
}

/// Rows of a table, read straight from the test database.
async fn count_rows(srv: &TestServer, table: &str) -> i64 {
    let db = Database::connect(srv.database_url.as_str())
        .await
        .expect("connect to the test database");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .expect("count rows")
        .expect("a row");
    let n = row.try_get_by_index::<i64>(0).expect("a count");
    let _ = db.close().await;
    n
}

fn option_id(attribute: &Attribute, value: &str) -> String {
    attribute
        .options
        .iter()
        .find(|o| o.value == value)
        .unwrap_or_else(|| panic!("option {value} of {}", attribute.name))
        .id
        .clone()
}

fn ids(values: &[String]) -> Value {
    Value::OptionIds(pb::OptionIds {
        ids: values.to_vec(),
    })
}

async fn four_types_are_returned_in_the_seed_shape(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "acme").await;
    let location = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;
    assert_eq!(location.slug, "location", "slug derived from the name");
    assert_eq!(location.organization_id, org.id);
    assert_eq!(location.r#type(), AttributeType::Text);
    assert!(location.id.starts_with("attr_"));
    let years = create_attribute(&srv, org.id, "Years", AttributeType::Number, &[]).await;
    let department = create_attribute(
        &srv,
        org.id,
        "Department",
        AttributeType::SingleSelect,
        &["Sales", "Customer Support"],
    )
    .await;
    assert_eq!(
        department
            .options
            .iter()
            .map(|o| (o.value.as_str(), o.slug.as_str()))
            .collect::<Vec<_>>(),
        [("Sales", "sales"), ("Customer Support", "customer-support")]
    );
    let skills = create_attribute(
        &srv,
        org.id,
        "Skills",
        AttributeType::MultiSelect,
        &["Rust", "Go", "SQL"],
    )
    .await;

    let events_before = event_count(&srv).await;
    let after_text = assign(
        &srv,
        org.id,
        &location,
        m.id,
        Value::Text(" Berlin ".into()),
    )
    .await;
    assert_eq!(after_text.id, m.id);
    assert_eq!(
        after_text.attributes.len(),
        1,
        "the response carries the attributes"
    );
    assign(&srv, org.id, &years, m.id, Value::Number(4.5)).await;
    // By user id within the organization, too.
    let by_user = srv
        .attributes()
        .assign_attribute(pb::AssignAttributeRequest {
            organization_id: org.id,
            attribute_id: department.id.clone(),
            member: Some(Member::UserId(m.user_id)),
            value: Some(Value::OptionId(option_id(&department, "Customer Support"))),
        })
        .await
        .expect("assign by user id")
        .into_inner();
    assert_eq!(by_user.id, m.id);
    let sql = option_id(&skills, "SQL");
    let rust = option_id(&skills, "Rust");
    assign(
        &srv,
        org.id,
        &skills,
        m.id,
        ids(&[sql.clone(), rust.clone(), sql.clone()]),
    )
    .await;
    assert_eq!(
        event_count(&srv).await,
        events_before + 4,
        "one membership.updated each"
    );

    let check = |got: &Membership| {
        let shapes: Vec<&Shape> = got
            .attributes
            .iter()
            .map(|a| a.value.as_ref().expect("a value"))
            .collect();
        assert_eq!(shapes.len(), 4, "{:?}", got.attributes);
        match shapes[0] {
            Shape::Text(t) => {
                assert_eq!(
                    (t.id.as_str(), t.name.as_str(), t.r#type.as_str()),
                    (location.id.as_str(), "Location", "text")
                );
                assert_eq!(t.option, "Berlin", "text is trimmed");
                assert!(!t.option_id.is_empty(), "the value's own id");
            }
            other => panic!("expected text, got {other:?}"),
        }
        match shapes[1] {
            Shape::Number(n) => {
                assert_eq!(
                    (n.id.as_str(), n.name.as_str(), n.r#type.as_str()),
                    (years.id.as_str(), "Years", "number")
                );
                assert_eq!(n.option, 4.5);
                assert!(!n.option_id.is_empty());
            }
            other => panic!("expected number, got {other:?}"),
        }
        match shapes[2] {
            Shape::SingleSelect(s) => {
                assert_eq!(
                    (s.id.as_str(), s.name.as_str(), s.r#type.as_str()),
                    (department.id.as_str(), "Department", "singleSelect")
                );
                assert_eq!(s.option, "Customer Support");
                assert_eq!(s.option_id, option_id(&department, "Customer Support"));
            }
            other => panic!("expected single select, got {other:?}"),
        }
        match shapes[3] {
            Shape::MultiSelect(s) => {
                assert_eq!(
                    (s.id.as_str(), s.name.as_str(), s.r#type.as_str()),
                    (skills.id.as_str(), "Skills", "multiSelect")
                );
                let chosen: Vec<(&str, &str)> = s
                    .options
                    .iter()
                    .map(|o| (o.option_id.as_str(), o.option.as_str()))
                    .collect();
                assert_eq!(
                    chosen,
                    [(rust.as_str(), "Rust"), (sql.as_str(), "SQL")],
                    "deduplicated, in the attribute's option order"
                );
            }
            other => panic!("expected multi select, got {other:?}"),
        }
    };

    check(&get_membership(&srv, m.id).await);
    let listed = srv
        .memberships()
        .list_memberships(pb::ListMembershipsRequest {
            team_id: org.id,
            ..Default::default()
        })
        .await
        .expect("list memberships")
        .into_inner()
        .memberships;
    assert_eq!(listed.len(), 2);
    for membership in &listed {
        if membership.id == m.id {
            check(membership);
        } else {
            assert!(membership.attributes.is_empty(), "the owner has none");
        }
    }
    let mine = srv
        .memberships()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: m.user_id,
            ..Default::default()
        })
        .await
        .expect("list user memberships")
        .into_inner()
        .memberships;
    assert_eq!(mine.len(), 1);
    check(&mine[0]);

    let events = srv
        .events()
        .list_events(pb::ListEventsRequest {
            kind: "membership.updated".into(),
            ..Default::default()
        })
        .await
        .expect("list events")
        .into_inner()
        .events;
    let last = events.last().expect("a membership.updated event");
    assert_eq!(last.membership_id, Some(m.id));
    assert_eq!(last.user_id, Some(m.user_id));
    assert_eq!(last.organization_id, Some(org.id));
    let after = last.after.as_ref().expect("after snapshot");
    let attributes = match after.fields.get("attributes").and_then(|v| v.kind.as_ref()) {
        Some(prost_types::value::Kind::ListValue(list)) => list.values.len(),
        other => panic!("after.attributes is a list, got {other:?}"),
    };
    assert_eq!(attributes, 4);
    let created = srv
        .events()
        .list_events(pb::ListEventsRequest {
            kind: "attribute.created".into(),
            ..Default::default()
        })
        .await
        .expect("list events")
        .into_inner()
        .events;
    assert_eq!(created.len(), 4);
    assert!(created.iter().all(|e| e.organization_id == Some(org.id)));
    srv.stop().await;
}

async fn wrong_value_is_invalid_argument_and_writes_nothing(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "initech").await;
    let text = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;
    let number = create_attribute(&srv, org.id, "Years", AttributeType::Number, &[]).await;
    let single = create_attribute(
        &srv,
        org.id,
        "Team",
        AttributeType::SingleSelect,
        &["A", "B"],
    )
    .await;
    let multi = create_attribute(
        &srv,
        org.id,
        "Skills",
        AttributeType::MultiSelect,
        &["Rust", "Go"],
    )
    .await;
    let events_before = event_count(&srv).await;

    let cases: Vec<(&Attribute, Option<Value>, &str)> = vec![
        (&text, Some(Value::Number(3.0)), "number"),
        (&text, None, "text"),
        (&text, Some(Value::Text("   ".into())), "text"),
        (&text, Some(Value::Text("x".repeat(256))), "text"),
        (&number, Some(Value::Text("three".into())), "text"),
        (&number, Some(Value::Number(f64::NAN)), "number"),
        (&number, Some(Value::Number(f64::INFINITY)), "number"),
        (&single, Some(ids(&[option_id(&single, "A")])), "option_ids"),
        (
            &single,
            Some(Value::OptionId("opt_missing".into())),
            "option_id",
        ),
        (&single, Some(Value::OptionId(String::new())), "option_id"),
        (
            &multi,
            Some(Value::OptionId(option_id(&multi, "Rust"))),
            "option_id",
        ),
        (&multi, Some(ids(&[])), "option_ids"),
        (
            &multi,
            Some(ids(&[option_id(&multi, "Go"), "opt_missing".into()])),
            "option_ids[1]",
        ),
        (&multi, None, "option_ids"),
    ];
    for (attribute, value, field) in cases {
        let status = expect_err(
            srv.attributes()
                .assign_attribute(pb::AssignAttributeRequest {
                    organization_id: org.id,
                    attribute_id: attribute.id.clone(),
                    member: Some(Member::MembershipId(m.id)),
                    value: value.clone(),
                })
                .await,
        );
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{} {value:?}: {status:?}",
            attribute.name
        );
        assert_eq!(
            field_violations(&status),
            [field],
            "{} {value:?}",
            attribute.name
        );
    }
    assert_eq!(event_count(&srv).await, events_before, "no event recorded");
    assert!(
        get_membership(&srv, m.id).await.attributes.is_empty(),
        "nothing assigned"
    );
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 0);

    // Every bad request field is named at once.
    let status = expect_err(
        srv.attributes()
            .assign_attribute(pb::AssignAttributeRequest {
                organization_id: 0,
                attribute_id: String::new(),
                member: None,
                value: Some(Value::Number(f64::NAN)),
            })
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&status),
        ["organization_id", "attribute_id", "membership_id", "number"]
    );
    srv.stop().await;
}

async fn option_of_another_attribute_is_invalid_argument(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "globex").await;
    let team = create_attribute(&srv, org.id, "Team", AttributeType::SingleSelect, &["A"]).await;
    let region =
        create_attribute(&srv, org.id, "Region", AttributeType::SingleSelect, &["EU"]).await;
    let skills = create_attribute(
        &srv,
        org.id,
        "Skills",
        AttributeType::MultiSelect,
        &["Rust"],
    )
    .await;
    let eu = option_id(&region, "EU");

    let status = expect_err(
        srv.attributes()
            .assign_attribute(assign_request(
                org.id,
                &team,
                m.id,
                Value::OptionId(eu.clone()),
            ))
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_violations(&status), ["option_id"]);

    let status = expect_err(
        srv.attributes()
            .assign_attribute(assign_request(
                org.id,
                &skills,
                m.id,
                ids(&[eu.clone(), option_id(&skills, "Rust")]),
            ))
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_violations(&status), ["option_ids[0]"]);
    assert!(get_membership(&srv, m.id).await.attributes.is_empty());
    srv.stop().await;
}

async fn another_organization_is_not_found(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org1, m1) = org_with_member(&srv, "one").await;
    let (org2, m2) = org_with_member(&srv, "two").await;
    let attr1 = create_attribute(&srv, org1.id, "Team", AttributeType::SingleSelect, &["A"]).await;
    let a = option_id(&attr1, "A");

    // The attribute through the other organization.
    let status = expect_err(
        srv.attributes()
            .assign_attribute(assign_request(
                org2.id,
                &attr1,
                m2.id,
                Value::OptionId(a.clone()),
            ))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // A membership of the other organization, by id and by user id.
    let status = expect_err(
        srv.attributes()
            .assign_attribute(assign_request(
                org1.id,
                &attr1,
                m2.id,
                Value::OptionId(a.clone()),
            ))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        srv.attributes()
            .assign_attribute(pb::AssignAttributeRequest {
                organization_id: org1.id,
                attribute_id: attr1.id.clone(),
                member: Some(Member::UserId(m2.user_id)),
                value: Some(Value::OptionId(a.clone())),
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        srv.attributes()
            .unassign_attribute(pb::UnassignAttributeRequest {
                organization_id: org2.id,
                attribute_id: attr1.id.clone(),
                member: Some(pb::unassign_attribute_request::Member::MembershipId(m2.id)),
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        srv.attributes()
            .add_attribute_option(pb::AddAttributeOptionRequest {
                organization_id: org2.id,
                attribute_id: attr1.id.clone(),
                value: "B".into(),
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        srv.attributes()
            .delete_attribute(pb::DeleteAttributeRequest {
                organization_id: org2.id,
                attribute_id: attr1.id.clone(),
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let listed = srv
        .attributes()
        .list_attributes(pb::ListAttributesRequest {
            organization_id: org2.id,
            ..Default::default()
        })
        .await
        .expect("list attributes")
        .into_inner();
    assert!(
        listed.attributes.is_empty(),
        "another organization's attributes stay hidden"
    );
    let status = expect_err(
        srv.attributes()
            .list_attributes(pb::ListAttributesRequest {
                organization_id: org2.id + 1000,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound);

    // The right pair still works.
    let got = assign(&srv, org1.id, &attr1, m1.id, Value::OptionId(a)).await;
    assert_eq!(got.attributes.len(), 1);
    srv.stop().await;
}

async fn sub_team_membership_is_not_found(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "hooli").await;
    let team = create_team(&srv, org.id, "engineering").await;
    let team_m = add_member(&srv, team.id, m.user_id, MembershipRole::Member).await;
    let location = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;

    let status = expect_err(
        srv.attributes()
            .assign_attribute(assign_request(
                org.id,
                &location,
                team_m.id,
                Value::Text("Berlin".into()),
            ))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // The sub-team is no organization: its id addresses nothing.
    let status = expect_err(
        srv.attributes()
            .assign_attribute(assign_request(
                team.id,
                &location,
                team_m.id,
                Value::Text("Berlin".into()),
            ))
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = expect_err(
        srv.attributes()
            .create_attribute(pb::CreateAttributeRequest {
                organization_id: team.id,
                name: "Floor".into(),
                r#type: AttributeType::Number as i32,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 0);

    // The organization membership of the same user is the one that holds attributes.
    let got = assign(&srv, org.id, &location, m.id, Value::Text("Berlin".into())).await;
    assert_eq!(got.attributes.len(), 1);
    assert!(get_membership(&srv, team_m.id).await.attributes.is_empty());
    srv.stop().await;
}

async fn delete_attribute_removes_its_assignments(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "umbrella").await;
    let skills = create_attribute(
        &srv,
        org.id,
        "Skills",
        AttributeType::MultiSelect,
        &["Rust", "Go"],
    )
    .await;
    let location = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;
    let both = skills
        .options
        .iter()
        .map(|o| o.id.clone())
        .collect::<Vec<_>>();
    assign(&srv, org.id, &skills, m.id, ids(&both)).await;
    assign(&srv, org.id, &location, m.id, Value::Text("Paris".into())).await;
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 3);

    srv.attributes()
        .delete_attribute(pb::DeleteAttributeRequest {
            organization_id: org.id,
            attribute_id: skills.id.clone(),
        })
        .await
        .expect("delete attribute");
    let got = get_membership(&srv, m.id).await;
    assert_eq!(got.attributes.len(), 1, "only Location is left");
    assert!(matches!(got.attributes[0].value, Some(Shape::Text(_))));
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 1);
    assert_eq!(count_rows(&srv, "attribute_options").await, 0);
    let listed = srv
        .attributes()
        .list_attributes(pb::ListAttributesRequest {
            organization_id: org.id,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .attributes;
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [location.id.as_str()]
    );
    let deleted = srv
        .events()
        .list_events(pb::ListEventsRequest {
            kind: "attribute.deleted".into(),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_inner()
        .events;
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].before.is_some() && deleted[0].after.is_none());
    let again = expect_err(
        srv.attributes()
            .delete_attribute(pb::DeleteAttributeRequest {
                organization_id: org.id,
                attribute_id: skills.id.clone(),
            })
            .await,
    );
    assert_eq!(again.code(), Code::NotFound);
    srv.stop().await;
}

async fn reassign_replaces_and_unassign_removes(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "stark").await;
    let location = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;
    let skills = create_attribute(
        &srv,
        org.id,
        "Skills",
        AttributeType::MultiSelect,
        &["Rust", "Go", "SQL"],
    )
    .await;
    let (rust, go, sql) = (
        option_id(&skills, "Rust"),
        option_id(&skills, "Go"),
        option_id(&skills, "SQL"),
    );

    let first = assign(&srv, org.id, &location, m.id, Value::Text("Berlin".into())).await;
    let second = assign(&srv, org.id, &location, m.id, Value::Text("Paris".into())).await;
    let text = |m: &Membership| match m.attributes.first().and_then(|a| a.value.clone()) {
        Some(Shape::Text(t)) => t,
        other => panic!("expected a text attribute, got {other:?}"),
    };
    assert_eq!(second.attributes.len(), 1, "replaced, not added");
    assert_eq!(text(&second).option, "Paris");
    assert_eq!(
        text(&second).option_id,
        text(&first).option_id,
        "the value keeps its id"
    );

    let events = event_count(&srv).await;
    let same = assign(&srv, org.id, &location, m.id, Value::Text("Paris".into())).await;
    assert_eq!(text(&same).option, "Paris");
    assert_eq!(
        event_count(&srv).await,
        events,
        "the same value again writes nothing"
    );

    assign(
        &srv,
        org.id,
        &skills,
        m.id,
        ids(&[rust.clone(), go.clone()]),
    )
    .await;
    let replaced = assign(&srv, org.id, &skills, m.id, ids(&[sql.clone(), go.clone()])).await;
    let chosen = match replaced.attributes[1].value.clone() {
        Some(Shape::MultiSelect(s)) => s.options.into_iter().map(|o| o.option).collect::<Vec<_>>(),
        other => panic!("expected multi select, got {other:?}"),
    };
    assert_eq!(chosen, ["Go", "SQL"]);
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 3);

    let unassign = |attribute: &Attribute| pb::UnassignAttributeRequest {
        organization_id: org.id,
        attribute_id: attribute.id.clone(),
        member: Some(pb::unassign_attribute_request::Member::UserId(m.user_id)),
    };
    let events = event_count(&srv).await;
    let left = srv
        .attributes()
        .unassign_attribute(unassign(&skills))
        .await
        .expect("unassign")
        .into_inner();
    assert_eq!(left.attributes.len(), 1);
    assert_eq!(event_count(&srv).await, events + 1);
    let again = srv
        .attributes()
        .unassign_attribute(unassign(&skills))
        .await
        .expect("unassign again")
        .into_inner();
    assert_eq!(again.attributes.len(), 1);
    assert_eq!(
        event_count(&srv).await,
        events + 1,
        "nothing to remove writes nothing"
    );
    srv.attributes()
        .unassign_attribute(unassign(&location))
        .await
        .expect("unassign location");
    assert!(get_membership(&srv, m.id).await.attributes.is_empty());
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 0);
    srv.stop().await;
}

async fn deleting_the_membership_or_organization_removes_assignments(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "wayne").await;
    let location = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;
    let years = create_attribute(&srv, org.id, "Years", AttributeType::Number, &[]).await;
    assign(&srv, org.id, &location, m.id, Value::Text("Gotham".into())).await;
    assign(&srv, org.id, &years, m.id, Value::Number(7.0)).await;
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 2);

    srv.memberships()
        .delete_membership(pb::DeleteMembershipRequest {
            member: Some(pb::delete_membership_request::Member::MembershipId(m.id)),
            ..Default::default()
        })
        .await
        .expect("delete membership");
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 0);
    let back = add_member(&srv, org.id, m.user_id, MembershipRole::Member).await;
    assert!(back.attributes.is_empty());

    // A user's deletion takes their assignments too (through their memberships).
    assign(
        &srv,
        org.id,
        &location,
        back.id,
        Value::Text("Metropolis".into()),
    )
    .await;
    srv.directory()
        .delete_user(pb::DeleteUserRequest {
            user_id: back.user_id,
            ..Default::default()
        })
        .await
        .expect("delete user");
    assert_eq!(count_rows(&srv, "attribute_assignments").await, 0);

    // The organization takes its attributes, options and assignments with it.
    let (other, om) = org_with_member(&srv, "lexcorp").await;
    let team = create_attribute(&srv, other.id, "Team", AttributeType::SingleSelect, &["A"]).await;
    assign(
        &srv,
        other.id,
        &team,
        om.id,
        Value::OptionId(option_id(&team, "A")),
    )
    .await;
    srv.directory()
        .delete_organization(pb::DeleteOrganizationRequest {
            organization_id: org.id,
            ..Default::default()
        })
        .await
        .expect("delete organization");
    assert_eq!(
        count_rows(&srv, "attributes").await,
        1,
        "only lexcorp's is left"
    );
    srv.directory()
        .delete_organization(pb::DeleteOrganizationRequest {
            organization_id: other.id,
            ..Default::default()
        })
        .await
        .expect("delete organization");
    for table in ["attributes", "attribute_options", "attribute_assignments"] {
        assert_eq!(count_rows(&srv, table).await, 0, "{table}");
    }
    srv.stop().await;
}

async fn definitions_are_validated(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, _) = org_with_member(&srv, "cyberdyne").await;
    let other = create_org(&srv, "tyrell").await;
    let dept = create_attribute(
        &srv,
        org.id,
        "Department",
        AttributeType::SingleSelect,
        &["Sales"],
    )
    .await;

    let create = |org: i64, name: &str, slug: &str, kind: AttributeType, options: &[&str]| {
        pb::CreateAttributeRequest {
            organization_id: org,
            name: name.into(),
            slug: slug.into(),
            r#type: kind as i32,
            options: options.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    };
    let status = expect_err(
        srv.attributes()
            .create_attribute(create(org.id, "department", "", AttributeType::Text, &[]))
            .await,
    );
    assert_eq!(
        status.code(),
        Code::AlreadyExists,
        "same derived slug: {status:?}"
    );
    let status = expect_err(
        srv.attributes()
            .create_attribute(create(
                org.id,
                "Unit",
                "department",
                AttributeType::Text,
                &[],
            ))
            .await,
    );
    assert_eq!(
        status.code(),
        Code::AlreadyExists,
        "same explicit slug: {status:?}"
    );
    srv.attributes()
        .create_attribute(create(other.id, "Department", "", AttributeType::Text, &[]))
        .await
        .expect("the slug is free in another organization");

    let invalid = [
        (
            create(org.id, "  ", "", AttributeType::Text, &[]),
            vec!["name"],
        ),
        (
            create(org.id, "Floor", "Bad Slug", AttributeType::Text, &[]),
            vec!["slug"],
        ),
        (
            create(org.id, "Floor", "", AttributeType::Unspecified, &[]),
            vec!["type"],
        ),
        (
            create(org.id, "Floor", "", AttributeType::Number, &["1"]),
            vec!["options"],
        ),
        (
            create(
                org.id,
                "Floor",
                "",
                AttributeType::MultiSelect,
                &["One", "", "ONE"],
            ),
            vec!["options[1]", "options[2]"],
        ),
        (
            create(0, "Floor", "", AttributeType::Text, &[]),
            vec!["organization_id"],
        ),
    ];
    for (request, fields) in invalid {
        let status = expect_err(srv.attributes().create_attribute(request.clone()).await);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{request:?}: {status:?}"
        );
        assert_eq!(field_violations(&status), fields, "{request:?}");
    }

    let add = |attribute: &Attribute, value: &str| pb::AddAttributeOptionRequest {
        organization_id: org.id,
        attribute_id: attribute.id.clone(),
        value: value.into(),
    };
    let grown = srv
        .attributes()
        .add_attribute_option(add(&dept, " Support "))
        .await
        .expect("add option")
        .into_inner();
    assert_eq!(
        grown
            .options
            .iter()
            .map(|o| o.value.as_str())
            .collect::<Vec<_>>(),
        ["Sales", "Support"]
    );
    assert_ne!(grown.etag, dept.etag, "the etag changes with the options");
    let status = expect_err(
        srv.attributes()
            .add_attribute_option(add(&dept, "sales"))
            .await,
    );
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let status = expect_err(srv.attributes().add_attribute_option(add(&dept, "")).await);
    assert_eq!(field_violations(&status), ["value"]);
    let location = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;
    let status = expect_err(
        srv.attributes()
            .add_attribute_option(add(&location, "Berlin"))
            .await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(field_violations(&status), ["attribute_id"]);
    let updated = srv
        .events()
        .list_events(pb::ListEventsRequest {
            kind: "attribute.updated".into(),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_inner()
        .events;
    assert_eq!(updated.len(), 1, "one option added");
    srv.stop().await;
}

async fn list_pages_in_creation_order(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let org = create_org(&srv, "soylent").await;
    let mut created = Vec::new();
    for name in ["Zeta", "Alpha", "Mu"] {
        created.push(
            create_attribute(&srv, org.id, name, AttributeType::Text, &[])
                .await
                .id,
        );
    }
    let first = srv
        .attributes()
        .list_attributes(pb::ListAttributesRequest {
            organization_id: org.id,
            page_size: 2,
            ..Default::default()
        })
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(first.attributes.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = srv
        .attributes()
        .list_attributes(pb::ListAttributesRequest {
            organization_id: org.id,
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .expect("second page")
        .into_inner();
    assert!(second.next_page_token.is_empty());
    let listed: Vec<String> = first
        .attributes
        .into_iter()
        .chain(second.attributes)
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, created);
    let status = expect_err(
        srv.attributes()
            .list_attributes(pb::ListAttributesRequest {
                organization_id: org.id,
                page_size: -1,
                page_token: "garbage!".into(),
            })
            .await,
    );
    assert_eq!(field_violations(&status), ["page_size", "page_token"]);
    srv.stop().await;
}

async fn scopes_are_enforced(engine: Engine) {
    let Some(srv) = TestServer::start(engine).await else {
        return;
    };
    let (org, m) = org_with_member(&srv, "aperture").await;
    let location = create_attribute(&srv, org.id, "Location", AttributeType::Text, &[]).await;
    let reader = scoped_key(&srv, &["directory.read"]).await;
    let writer = scoped_key(&srv, &["memberships.write"]).await;
    let mut as_reader = srv.client_with_key(
        &reader,
        pb::attribute_service_client::AttributeServiceClient::new,
    );
    as_reader
        .list_attributes(pb::ListAttributesRequest {
            organization_id: org.id,
            ..Default::default()
        })
        .await
        .expect("directory.read lists");
    let status = expect_err(
        as_reader
            .assign_attribute(assign_request(
                org.id,
                &location,
                m.id,
                Value::Text("x".into()),
            ))
            .await,
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = expect_err(
        as_reader
            .create_attribute(pb::CreateAttributeRequest {
                organization_id: org.id,
                name: "Floor".into(),
                r#type: AttributeType::Number as i32,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    let mut as_writer = srv.client_with_key(
        &writer,
        pb::attribute_service_client::AttributeServiceClient::new,
    );
    as_writer
        .assign_attribute(assign_request(
            org.id,
            &location,
            m.id,
            Value::Text("x".into()),
        ))
        .await
        .expect("memberships.write assigns");
    let anonymous = expect_err(
        srv.anonymous(pb::attribute_service_client::AttributeServiceClient::new)
            .list_attributes(pb::ListAttributesRequest {
                organization_id: org.id,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    srv.stop().await;
}
