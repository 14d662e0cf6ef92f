//! AttributeService.

use tonic::{Request, Response, Status};

use super::convert;
use super::idempotency::{answer, once, retry_key};
use super::{Context, actor, binding, trace_ids};
use crate::domain::attributes::{
    self as rules, Attribute, AttributeType, NewAttribute, ValueInput,
};
use crate::domain::memberships::MembershipTarget;
use crate::domain::page::{KeyedPageRequest, encode_keyed_token};
use crate::domain::teams::TeamKind;
use crate::domain::{FieldViolation, Violations, validate};
use crate::pb::attribute_service_server::AttributeService;
use crate::pb::*;
use crate::storage::shared::Written;

pub struct AttributeApi(pub Context);

/// Ids this service hands out are short; anything longer cannot name one.
const MAX_ID_CHARS: usize = 100;

fn request_type(value: i32) -> Result<rules::AttributeType, FieldViolation> {
    match crate::pb::AttributeType::try_from(value) {
        Ok(crate::pb::AttributeType::Text) => Ok(AttributeType::Text),
        Ok(crate::pb::AttributeType::Number) => Ok(AttributeType::Number),
        Ok(crate::pb::AttributeType::SingleSelect) => Ok(AttributeType::SingleSelect),
        Ok(crate::pb::AttributeType::MultiSelect) => Ok(AttributeType::MultiSelect),
        Ok(crate::pb::AttributeType::Unspecified) => Err(FieldViolation::new(
            "type",
            "is required: TEXT, NUMBER, SINGLE_SELECT or MULTI_SELECT",
        )),
        Err(_) => Err(FieldViolation::new(
            "type",
            format!("{value} is not an AttributeType"),
        )),
    }
}

fn wire_type(kind: AttributeType) -> crate::pb::AttributeType {
    match kind {
        AttributeType::Text => crate::pb::AttributeType::Text,
        AttributeType::Number => crate::pb::AttributeType::Number,
        AttributeType::SingleSelect => crate::pb::AttributeType::SingleSelect,
        AttributeType::MultiSelect => crate::pb::AttributeType::MultiSelect,
    }
}

fn attribute(a: Attribute, revision: i64) -> crate::pb::Attribute {
    crate::pb::Attribute {
        id: a.id,
        organization_id: a.organization_id,
        name: a.name,
        slug: a.slug,
        r#type: wire_type(a.kind) as i32,
        options: a
            .options
            .into_iter()
            .map(|o| AttributeOption {
                id: o.id,
                value: o.value,
                slug: o.slug,
            })
            .collect(),
        created_at: convert::timestamp(a.created_at),
        updated_at: convert::timestamp(a.updated_at),
        etag: crate::domain::model::etag(a.version),
        revision,
    }
}

fn check_organization_id(v: &mut Violations, id: i64) -> i64 {
    trace_ids!(organization_id = id);
    v.check(validate::id("organization_id", id))
        .unwrap_or_default()
}

fn check_attribute_id(v: &mut Violations, id: &str) -> String {
    let id = v
        .check(validate::reference("attribute_id", id, MAX_ID_CHARS))
        .unwrap_or_default();
    trace_ids!(attribute_id = id.as_str());
    id
}

/// The organization membership: its id, or its user's id.
fn member(v: &mut Violations, target: Option<MembershipTarget>) -> MembershipTarget {
    match target {
        Some(MembershipTarget::MembershipId(id)) => {
            trace_ids!(membership_id = id);
            v.check(validate::id("membership_id", id));
            MembershipTarget::MembershipId(id)
        }
        Some(MembershipTarget::UserId(id)) => {
            trace_ids!(user_id = id);
            v.check(validate::id("user_id", id));
            MembershipTarget::UserId(id)
        }
        None => {
            v.add("membership_id", "set membership_id or user_id");
            MembershipTarget::MembershipId(0)
        }
    }
}

#[tonic::async_trait]
impl AttributeService for AttributeApi {
    async fn create_attribute(
        &self,
        request: Request<CreateAttributeRequest>,
    ) -> Result<Response<crate::pb::Attribute>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let retry = retry_key(&mut v, "CreateAttribute", &actor, &r, &r.request_id);
        let organization_id = check_organization_id(&mut v, r.organization_id);
        let name = v
            .check(validate::name("name", &r.name, rules::MAX_VALUE_CHARS))
            .unwrap_or_default();
        let slug = if r.slug.is_empty() {
            let derived = validate::slugify(&name);
            if derived.is_empty() && !name.is_empty() {
                v.add("slug", "cannot be derived from name: set it");
            }
            derived
        } else {
            v.check(validate::slug("slug", &r.slug)).unwrap_or_default()
        };
        let kind = v.check(request_type(r.r#type));
        let options = match kind {
            Some(kind) if !kind.is_select() && !r.options.is_empty() => {
                v.add(
                    "options",
                    format!(
                        "a {} attribute has no options; only SINGLE_SELECT and MULTI_SELECT do",
                        kind.as_str()
                    ),
                );
                Vec::new()
            }
            _ => rules::check_new_options(&r.options).unwrap_or_else(|violations| {
                v.extend(violations);
                Vec::new()
            }),
        };
        v.into_result()?;
        // Attributes, their options and assignments all live in one organization.
        binding.check(organization_id, || {
            TeamKind::Organization.not_found(organization_id)
        })?;
        let respond = |w: &Written<Attribute>| attribute(w.value.clone(), w.revision);
        let outcome = (self.0.store)
            .create_attribute_once(
                &actor,
                NewAttribute {
                    organization_id,
                    name,
                    slug,
                    kind: kind.unwrap_or(AttributeType::Text),
                    options,
                },
                once(retry, respond),
            )
            .await?;
        let created = answer(outcome, respond)?;
        self.0.reads.settle(created.revision).await;
        trace_ids!(attribute_id = created.id.as_str());
        Ok(Response::new(created))
    }

    async fn list_attributes(
        &self,
        request: Request<ListAttributesRequest>,
    ) -> Result<Response<ListAttributesResponse>, Status> {
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = check_organization_id(&mut v, r.organization_id);
        let page = KeyedPageRequest::parse(r.page_size, &r.page_token).unwrap_or_else(|e| {
            v.extend(e);
            KeyedPageRequest::default()
        });
        v.into_result()?;
        // Attributes, their options and assignments all live in one organization.
        binding.check(organization_id, || {
            TeamKind::Organization.not_found(organization_id)
        })?;
        let result = self.0.store.list_attributes(organization_id, page).await?;
        Ok(Response::new(ListAttributesResponse {
            attributes: result.items.into_iter().map(|a| attribute(a, 0)).collect(),
            next_page_token: result
                .next_after
                .map(encode_keyed_token)
                .unwrap_or_default(),
        }))
    }

    async fn delete_attribute(
        &self,
        request: Request<DeleteAttributeRequest>,
    ) -> Result<Response<DeleteAttributeResponse>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = check_organization_id(&mut v, r.organization_id);
        let attribute_id = check_attribute_id(&mut v, &r.attribute_id);
        v.into_result()?;
        // Attributes, their options and assignments all live in one organization.
        binding.check(organization_id, || {
            TeamKind::Organization.not_found(organization_id)
        })?;
        let revision = self
            .0
            .store
            .delete_attribute(&actor, organization_id, &attribute_id)
            .await?;
        self.0.reads.settle(revision).await;
        Ok(Response::new(DeleteAttributeResponse { revision }))
    }

    async fn add_attribute_option(
        &self,
        request: Request<AddAttributeOptionRequest>,
    ) -> Result<Response<crate::pb::Attribute>, Status> {
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = check_organization_id(&mut v, r.organization_id);
        let attribute_id = check_attribute_id(&mut v, &r.attribute_id);
        let value = v
            .check(rules::option_value("value", &r.value))
            .unwrap_or_default();
        v.into_result()?;
        // Attributes, their options and assignments all live in one organization.
        binding.check(organization_id, || {
            TeamKind::Organization.not_found(organization_id)
        })?;
        let written = self
            .0
            .store
            .add_attribute_option(&actor, organization_id, &attribute_id, value)
            .await?;
        self.0.reads.settle(written.revision).await;
        Ok(Response::new(attribute(written.value, written.revision)))
    }

    async fn assign_attribute(
        &self,
        request: Request<AssignAttributeRequest>,
    ) -> Result<Response<Membership>, Status> {
        use assign_attribute_request::{Member, Value};
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = check_organization_id(&mut v, r.organization_id);
        let attribute_id = check_attribute_id(&mut v, &r.attribute_id);
        let target = member(
            &mut v,
            r.member.map(|m| match m {
                Member::MembershipId(id) => MembershipTarget::MembershipId(id),
                Member::UserId(id) => MembershipTarget::UserId(id),
            }),
        );
        let value = r.value.map(|value| match value {
            Value::Text(text) => ValueInput::Text(text),
            Value::Number(n) => ValueInput::Number(n),
            Value::OptionId(id) => ValueInput::OptionId(id),
            Value::OptionIds(ids) => ValueInput::OptionIds(ids.ids),
        });
        // Shape errors now, with the others; whether it fits the attribute once it is loaded.
        if let Some(Err(violations)) = value.clone().map(rules::normalize_value) {
            v.extend(violations);
        }
        v.into_result()?;
        // Attributes, their options and assignments all live in one organization.
        binding.check(organization_id, || {
            TeamKind::Organization.not_found(organization_id)
        })?;
        let written = self
            .0
            .store
            .assign_attribute(&actor, organization_id, &attribute_id, target, value)
            .await?;
        self.0.reads.settle(written.revision).await;
        trace_ids!(
            membership_id = written.value.membership.id,
            user_id = written.value.membership.user_id
        );
        Ok(Response::new(convert::membership(
            written.value,
            written.revision,
        )))
    }

    async fn unassign_attribute(
        &self,
        request: Request<UnassignAttributeRequest>,
    ) -> Result<Response<Membership>, Status> {
        use unassign_attribute_request::Member;
        let actor = actor(&request)?;
        let binding = binding(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let organization_id = check_organization_id(&mut v, r.organization_id);
        let attribute_id = check_attribute_id(&mut v, &r.attribute_id);
        let target = member(
            &mut v,
            r.member.map(|m| match m {
                Member::MembershipId(id) => MembershipTarget::MembershipId(id),
                Member::UserId(id) => MembershipTarget::UserId(id),
            }),
        );
        v.into_result()?;
        // Attributes, their options and assignments all live in one organization.
        binding.check(organization_id, || {
            TeamKind::Organization.not_found(organization_id)
        })?;
        let written = self
            .0
            .store
            .unassign_attribute(&actor, organization_id, &attribute_id, target)
            .await?;
        self.0.reads.settle(written.revision).await;
        trace_ids!(
            membership_id = written.value.membership.id,
            user_id = written.value.membership.user_id
        );
        Ok(Response::new(convert::membership(
            written.value,
            written.revision,
        )))
    }
}
