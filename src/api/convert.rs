//! Domain values to wire messages and back: timestamps, JSON objects, enums.

use chrono::{DateTime, Utc};
use prost_types::{ListValue, Struct, Timestamp, Value as PbValue, value::Kind};
use serde_json::{Map, Number, Value};

use crate::domain::FieldViolation;
use crate::domain::model::{
    self, AssignedAttribute, AssignedValue, AutoRecordCalls, Consistency, JsonObject,
    MembershipView,
};
use crate::domain::page::PageCursor;
use crate::domain::roles::BaseRole;
use crate::domain::validate;
use crate::pb;

pub fn timestamp(t: DateTime<Utc>) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

/// A request's timestamp; nanos outside 0..1e9 (not a normalized Timestamp) or out of chrono's
/// range is a bad `field`.
pub fn instant(field: &str, t: &Timestamp) -> Result<DateTime<Utc>, FieldViolation> {
    u32::try_from(t.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| FieldViolation::new(field, "is not a valid timestamp"))
}

pub fn to_struct(object: &JsonObject) -> Option<Struct> {
    Some(Struct {
        fields: object
            .iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect(),
    })
}

fn to_value(value: &Value) -> PbValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(Struct {
            fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
        }),
    };
    PbValue { kind: Some(kind) }
}

pub fn from_struct(s: Struct) -> JsonObject {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, from_value(v)))
        .collect()
}

fn from_value(value: PbValue) -> Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        // Integral numbers stay integers in JSON, so ids survive a round trip unchanged.
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            Value::Number(Number::from(n as i64))
        }
        Some(Kind::NumberValue(n)) => Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.into_iter().map(from_value).collect())
        }
        Some(Kind::StructValue(s)) => Value::Object(
            s.fields
                .into_iter()
                .map(|(k, v)| (k, from_value(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// An optional metadata Struct of a request, checked for size.
pub fn metadata(field: &str, value: Option<Struct>) -> Result<Option<JsonObject>, FieldViolation> {
    value
        .map(|s| validate::metadata(field, from_struct(s)))
        .transpose()
}

pub fn base_role(role: BaseRole) -> pb::MembershipRole {
    match role {
        BaseRole::Member => pb::MembershipRole::Member,
        BaseRole::Admin => pb::MembershipRole::Admin,
        BaseRole::Owner => pb::MembershipRole::Owner,
    }
}

/// A request's MembershipRole: UNSPECIFIED means absent; unknown numbers are refused.
pub fn request_role(field: &str, value: i32) -> Result<Option<BaseRole>, FieldViolation> {
    match pb::MembershipRole::try_from(value) {
        Ok(pb::MembershipRole::Unspecified) => Ok(None),
        Ok(pb::MembershipRole::Member) => Ok(Some(BaseRole::Member)),
        Ok(pb::MembershipRole::Admin) => Ok(Some(BaseRole::Admin)),
        Ok(pb::MembershipRole::Owner) => Ok(Some(BaseRole::Owner)),
        Err(_) => Err(FieldViolation::new(
            field,
            format!("{value} is not a MembershipRole"),
        )),
    }
}

pub fn auto_record_calls(value: AutoRecordCalls) -> pb::AutoRecordCalls {
    match value {
        AutoRecordCalls::Unset => pb::AutoRecordCalls::Unset,
        AutoRecordCalls::Disabled => pb::AutoRecordCalls::Disabled,
        AutoRecordCalls::Enabled => pb::AutoRecordCalls::Enabled,
    }
}

pub fn request_auto_record_calls(
    field: &str,
    value: i32,
) -> Result<Option<AutoRecordCalls>, FieldViolation> {
    match pb::AutoRecordCalls::try_from(value) {
        Ok(pb::AutoRecordCalls::Unspecified) => Ok(None),
        Ok(pb::AutoRecordCalls::Unset) => Ok(Some(AutoRecordCalls::Unset)),
        Ok(pb::AutoRecordCalls::Disabled) => Ok(Some(AutoRecordCalls::Disabled)),
        Ok(pb::AutoRecordCalls::Enabled) => Ok(Some(AutoRecordCalls::Enabled)),
        Err(_) => Err(FieldViolation::new(
            field,
            format!("{value} is not an AutoRecordCalls"),
        )),
    }
}

pub fn user(u: model::User, revision: i64) -> pb::User {
    pb::User {
        id: u.id,
        email: u.email,
        username: u.username,
        name: u.name,
        first_name: u.first_name,
        last_name: u.last_name,
        avatar_url: u.avatar_url,
        bio: u.bio,
        metadata: to_struct(&u.metadata),
        created_at: timestamp(u.created_at),
        updated_at: timestamp(u.updated_at),
        etag: model::etag(u.version),
        revision,
    }
}

pub fn organization(t: model::Team, members_count: i64, revision: i64) -> pb::Organization {
    pb::Organization {
        id: t.id,
        has_image: !t.image_url.is_empty(),
        name: t.name,
        slug: t.slug,
        image_url: t.image_url,
        max_allowed_memberships: t.max_allowed_memberships,
        auto_accept_email_domain: t.auto_accept_email_domain.unwrap_or_default(),
        admin_delete_enabled: t.admin_delete_enabled,
        public_metadata: to_struct(&t.public_metadata),
        private_metadata: to_struct(&t.private_metadata),
        members_count,
        created_at: timestamp(t.created_at),
        updated_at: timestamp(t.updated_at),
        etag: model::etag(t.version),
        revision,
    }
}

pub fn team(t: model::Team, revision: i64) -> pb::Team {
    pb::Team {
        id: t.id,
        organization_id: t.organization_id(),
        name: t.name,
        slug: t.slug,
        image_url: t.image_url,
        public_metadata: to_struct(&t.public_metadata),
        private_metadata: to_struct(&t.private_metadata),
        created_at: timestamp(t.created_at),
        updated_at: timestamp(t.updated_at),
        etag: model::etag(t.version),
        revision,
    }
}

pub fn membership(view: MembershipView, revision: i64) -> pb::Membership {
    let MembershipView {
        membership: m,
        user: u,
        attributes,
    } = view;
    pb::Membership {
        id: m.id,
        user_id: m.user_id,
        team_id: m.team_id,
        organization_id: m.organization_id,
        accepted: m.accepted,
        role: base_role(m.role) as i32,
        role_id: m.role_id,
        role_key: m.role_key,
        disable_impersonation: m.disable_impersonation,
        auto_record_calls: auto_record_calls(m.auto_record_calls) as i32,
        public_metadata: to_struct(&m.public_metadata),
        private_metadata: to_struct(&m.private_metadata),
        expires_at: m.expires_at.and_then(timestamp),
        created_at: timestamp(m.created_at),
        updated_at: timestamp(m.updated_at),
        etag: model::etag(m.version),
        revision,
        user: Some(pb::MembershipUser {
            has_image: !u.avatar_url.is_empty(),
            avatar_url: u.avatar_url,
            username: u.username.unwrap_or_default(),
            name: u.name,
            first_name: u.first_name,
            last_name: u.last_name,
            email: u.email,
            bio: u.bio,
            metadata: to_struct(&u.metadata),
        }),
        attributes: attributes.into_iter().map(membership_attribute).collect(),
    }
}

/// An assigned attribute in cal.com's shape: the free value's own id as `option_id` for text and
/// number, the chosen option's for selects.
fn membership_attribute(a: AssignedAttribute) -> pb::MembershipAttribute {
    use crate::domain::attributes::AttributeType;
    use pb::membership_attribute::Value as Pb;
    let AssignedAttribute {
        attribute_id: id,
        name,
        value,
    } = a;
    let value = match value {
        AssignedValue::Text {
            assignment_id,
            text,
        } => Pb::Text(pb::TextAttribute {
            id,
            name,
            r#type: AttributeType::Text.wire_name().into(),
            option: text,
            option_id: assignment_id,
        }),
        AssignedValue::Number {
            assignment_id,
            number,
        } => Pb::Number(pb::NumberAttribute {
            id,
            name,
            r#type: AttributeType::Number.wire_name().into(),
            option: number,
            option_id: assignment_id,
        }),
        AssignedValue::SingleSelect { option } => Pb::SingleSelect(pb::SingleSelectAttribute {
            id,
            name,
            r#type: AttributeType::SingleSelect.wire_name().into(),
            option: option.value,
            option_id: option.id,
        }),
        AssignedValue::MultiSelect { options } => Pb::MultiSelect(pb::MultiSelectAttribute {
            id,
            name,
            r#type: AttributeType::MultiSelect.wire_name().into(),
            options: options
                .into_iter()
                .map(|o| pb::MultiSelectAttributeOption {
                    option_id: o.id,
                    option: o.value,
                })
                .collect(),
        }),
    };
    pb::MembershipAttribute { value: Some(value) }
}

pub fn event(e: model::Event) -> pb::Event {
    pb::Event {
        sequence: e.sequence,
        kind: e.kind,
        occurred_at: timestamp(e.occurred_at),
        actor_key_id: e.actor_key_id.unwrap_or_default(),
        actor_user_id: e.actor_user_id,
        organization_id: e.organization_id,
        team_id: e.team_id,
        user_id: e.user_id,
        membership_id: e.membership_id,
        role_id: e.role_id,
        before: e.before.as_ref().and_then(to_struct),
        after: e.after.as_ref().and_then(to_struct),
    }
}

pub fn page_token(next_after: Option<PageCursor>) -> String {
    next_after
        .map(crate::domain::page::encode_token)
        .unwrap_or_default()
}

/// A request's consistency; absent means `minimize_latency`.
pub fn consistency(
    field: &str,
    value: Option<pb::Consistency>,
) -> Result<Consistency, FieldViolation> {
    use pb::consistency::Requirement;
    match value.and_then(|c| c.requirement) {
        None | Some(Requirement::MinimizeLatency(_)) => Ok(Consistency::MinimizeLatency),
        Some(Requirement::AtLeastAsFresh(r)) if r >= 0 => Ok(Consistency::AtLeastAsFresh(r)),
        Some(Requirement::AtLeastAsFresh(_)) => Err(FieldViolation::new(
            format!("{field}.at_least_as_fresh"),
            "must be a revision (0 or more)",
        )),
        Some(Requirement::FullyConsistent(true)) => Ok(Consistency::FullyConsistent),
        Some(Requirement::FullyConsistent(false)) => Ok(Consistency::MinimizeLatency),
    }
}
