//! Organization attributes, their options, and their assignments to organization memberships.
//!
//! Every write locks the organization's row first, like membership writes: option values and
//! slugs are checked for uniqueness, and assignments checked against the options, under that lock.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult,
    IntoActiveModel, JoinType, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use super::entities::{attribute, attribute_assignment, attribute_option, membership};
use super::events::{self, EventDraft, snapshot};
use super::memberships::{MembershipTarget, lock_organization};
use super::organizations::{TeamKind, find_team};
use super::users::{Written, find_user};
use super::{Store, convert, db_error};
use crate::domain::attributes::{
    self as rules, Attribute, AttributeOption, AttributeType, CheckedValue, ValueInput,
};
use crate::domain::model::{
    Actor, AssignedAttribute, AssignedValue, ChosenOption, JsonObject, Membership, MembershipView,
};
use crate::domain::page::KeyedPageRequest;
use crate::domain::{DomainError, DomainResult};

#[derive(Debug, Clone)]
pub struct NewAttribute {
    pub organization_id: i64,
    pub name: String,
    pub slug: String,
    pub kind: AttributeType,
    /// Checked option values (select types only).
    pub options: Vec<String>,
}

/// One page of attributes and the id the next one starts after.
#[derive(Debug, Clone)]
pub struct AttributePage {
    pub items: Vec<Attribute>,
    pub next_after: Option<String>,
}

/// A new id: the prefix, 14 hex digits of the current time in microseconds (so ids sort in
/// creation order), and 10 random hex digits.
fn new_id(prefix: &str) -> String {
    let micros = convert::now_micros().max(0) as u64;
    let random = rand::random::<u64>() & 0xff_ffff_ffff;
    format!("{prefix}_{micros:014x}{random:010x}")
}

fn corrupt(what: &str, value: &str) -> DomainError {
    DomainError::Internal(format!("stored {what} {value:?} is not valid"))
}

fn option_of(row: attribute_option::Model) -> AttributeOption {
    AttributeOption {
        id: row.id,
        value: row.value,
        slug: row.slug,
    }
}

fn attribute_of(row: attribute::Model, options: Vec<AttributeOption>) -> DomainResult<Attribute> {
    Ok(Attribute {
        kind: AttributeType::parse(&row.attribute_type)
            .ok_or_else(|| corrupt("attribute type", &row.attribute_type))?,
        id: row.id,
        organization_id: row.organization_id,
        name: row.name,
        slug: row.slug,
        options,
        created_at: convert::time(row.created_at),
        updated_at: convert::time(row.updated_at),
        version: row.version,
    })
}

async fn options_of<C: ConnectionTrait>(
    conn: &C,
    attribute_ids: Vec<String>,
) -> DomainResult<HashMap<String, Vec<AttributeOption>>> {
    let mut out: HashMap<String, Vec<AttributeOption>> = HashMap::new();
    if attribute_ids.is_empty() {
        return Ok(out);
    }
    let rows = attribute_option::Entity::find()
        .filter(attribute_option::Column::AttributeId.is_in(attribute_ids))
        .order_by_asc(attribute_option::Column::AttributeId)
        .order_by_asc(attribute_option::Column::Position)
        .all(conn)
        .await
        .map_err(db_error)?;
    for row in rows {
        out.entry(row.attribute_id.clone())
            .or_default()
            .push(option_of(row));
    }
    Ok(out)
}

fn attribute_not_found(id: &str) -> DomainError {
    DomainError::not_found(format_args!("attribute {id:?}"))
}

/// The attribute with its options; one of another organization is NOT_FOUND.
async fn find_attribute<C: ConnectionTrait>(
    conn: &C,
    organization_id: i64,
    id: &str,
) -> DomainResult<Attribute> {
    let row = attribute::Entity::find_by_id(id)
        .filter(attribute::Column::OrganizationId.eq(organization_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| attribute_not_found(id))?;
    let options = options_of(conn, vec![row.id.clone()])
        .await?
        .remove(&row.id)
        .unwrap_or_default();
    attribute_of(row, options)
}

/// The organization membership a request names; a sub-team membership, or one of another
/// organization, is NOT_FOUND.
async fn find_org_membership<C: ConnectionTrait>(
    conn: &C,
    organization_id: i64,
    target: MembershipTarget,
) -> DomainResult<Membership> {
    let query = membership::Entity::find().filter(membership::Column::TeamId.eq(organization_id));
    let (query, missing) = match target {
        MembershipTarget::MembershipId(id) => (
            query.filter(membership::Column::Id.eq(id)),
            format!("membership {id} in organization {organization_id}"),
        ),
        MembershipTarget::UserId(user) => (
            query.filter(membership::Column::UserId.eq(user)),
            format!("membership of user {user} in organization {organization_id}"),
        ),
    };
    let row = query
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| DomainError::not_found(missing))?;
    convert::membership(row)
}

#[derive(Debug, FromQueryResult)]
struct AssignedRow {
    membership_id: i64,
    assignment_id: String,
    attribute_id: String,
    attribute_name: String,
    attribute_type: String,
    option_id: Option<String>,
    option_value: Option<String>,
    value_text: Option<String>,
    value_number: Option<f64>,
}

/// The attributes of each membership, in attribute creation order, options in their order: one
/// query for any number of memberships.
pub(crate) async fn attributes_of<C: ConnectionTrait>(
    conn: &C,
    membership_ids: &[i64],
) -> DomainResult<HashMap<i64, Vec<AssignedAttribute>>> {
    let mut out: HashMap<i64, Vec<AssignedAttribute>> = HashMap::new();
    if membership_ids.is_empty() {
        return Ok(out);
    }
    let to_attribute = attribute_assignment::Entity::belongs_to(attribute::Entity)
        .from(attribute_assignment::Column::AttributeId)
        .to(attribute::Column::Id);
    let to_option = attribute_assignment::Entity::belongs_to(attribute_option::Entity)
        .from(attribute_assignment::Column::OptionId)
        .to(attribute_option::Column::Id);
    let rows = attribute_assignment::Entity::find()
        .select_only()
        .column(attribute_assignment::Column::MembershipId)
        .column_as(attribute_assignment::Column::Id, "assignment_id")
        .column(attribute_assignment::Column::AttributeId)
        .column_as(attribute::Column::Name, "attribute_name")
        .column_as(attribute::Column::AttributeType, "attribute_type")
        .column(attribute_assignment::Column::OptionId)
        .column_as(attribute_option::Column::Value, "option_value")
        .column(attribute_assignment::Column::ValueText)
        .column(attribute_assignment::Column::ValueNumber)
        .join(JoinType::InnerJoin, to_attribute.into())
        .join(JoinType::LeftJoin, to_option.into())
        .filter(attribute_assignment::Column::MembershipId.is_in(membership_ids.iter().copied()))
        .order_by_asc(attribute_assignment::Column::MembershipId)
        .order_by_asc(attribute::Column::Id)
        .order_by_asc(attribute_option::Column::Position)
        .into_model::<AssignedRow>()
        .all(conn)
        .await
        .map_err(db_error)?;
    for row in rows {
        let kind = AttributeType::parse(&row.attribute_type)
            .ok_or_else(|| corrupt("attribute type", &row.attribute_type))?;
        let chosen = match (&row.option_id, &row.option_value) {
            (Some(id), Some(value)) => Some(ChosenOption {
                id: id.clone(),
                value: value.clone(),
            }),
            _ => None,
        };
        let list = out.entry(row.membership_id).or_default();
        if kind == AttributeType::MultiSelect
            && let Some(last) = list.last_mut()
            && last.attribute_id == row.attribute_id
            && let AssignedValue::MultiSelect { options } = &mut last.value
        {
            options.extend(chosen);
            continue;
        }
        let value = match kind {
            AttributeType::Text => row.value_text.map(|text| AssignedValue::Text {
                assignment_id: row.assignment_id,
                text,
            }),
            AttributeType::Number => row.value_number.map(|number| AssignedValue::Number {
                assignment_id: row.assignment_id,
                number,
            }),
            AttributeType::SingleSelect => {
                chosen.map(|option| AssignedValue::SingleSelect { option })
            }
            AttributeType::MultiSelect => chosen.map(|option| AssignedValue::MultiSelect {
                options: vec![option],
            }),
        };
        if let Some(value) = value {
            list.push(AssignedAttribute {
                attribute_id: row.attribute_id,
                name: row.attribute_name,
                value,
            });
        }
    }
    Ok(out)
}

/// Removes a membership's attribute values (the membership is being deleted).
pub(crate) async fn delete_assignments_of<C: ConnectionTrait>(
    conn: &C,
    membership_id: i64,
) -> DomainResult<()> {
    attribute_assignment::Entity::delete_many()
        .filter(attribute_assignment::Column::MembershipId.eq(membership_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Removes what the attributes feature keeps about these teams before they are deleted: the
/// values held by their memberships and, for organizations, their attributes.
pub(crate) async fn delete_for_teams<C: ConnectionTrait>(
    conn: &C,
    team_ids: &[i64],
) -> DomainResult<()> {
    let memberships: Vec<i64> = membership::Entity::find()
        .select_only()
        .column(membership::Column::Id)
        .filter(membership::Column::TeamId.is_in(team_ids.iter().copied()))
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    if !memberships.is_empty() {
        attribute_assignment::Entity::delete_many()
            .filter(attribute_assignment::Column::MembershipId.is_in(memberships))
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    let attributes: Vec<String> = attribute::Entity::find()
        .select_only()
        .column(attribute::Column::Id)
        .filter(attribute::Column::OrganizationId.is_in(team_ids.iter().copied()))
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    for id in attributes {
        delete_attribute_rows(conn, &id).await?;
    }
    Ok(())
}

async fn delete_attribute_rows<C: ConnectionTrait>(conn: &C, id: &str) -> DomainResult<()> {
    attribute_assignment::Entity::delete_many()
        .filter(attribute_assignment::Column::AttributeId.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    attribute_option::Entity::delete_many()
        .filter(attribute_option::Column::AttributeId.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    attribute::Entity::delete_by_id(id)
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn insert_options<C: ConnectionTrait>(
    conn: &C,
    attribute_id: &str,
    first_position: usize,
    values: &[String],
    now: i64,
) -> DomainResult<()> {
    if values.is_empty() {
        return Ok(());
    }
    let rows = values.iter().enumerate().map(|(i, value)| {
        let position = first_position + i;
        attribute_option::ActiveModel {
            id: Set(new_id("opt")),
            attribute_id: Set(attribute_id.to_string()),
            value: Set(value.clone()),
            slug: Set(rules::option_slug(value, position)),
            position: Set(position as i32),
            created_at: Set(now),
        }
    });
    attribute_option::Entity::insert_many(rows)
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

fn attribute_event(
    kind: &'static str,
    a: &Attribute,
    before: Option<&Attribute>,
    after: Option<&Attribute>,
) -> EventDraft {
    EventDraft {
        kind,
        organization_id: Some(a.organization_id),
        team_id: Some(a.organization_id),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
        ..Default::default()
    }
}

/// The membership's snapshot with its attributes, for `membership.updated`.
fn membership_snapshot(m: &Membership, attributes: &[AssignedAttribute]) -> Option<JsonObject> {
    let mut object = snapshot(m)?;
    object.insert(
        "attributes".into(),
        serde_json::to_value(attributes).unwrap_or(Value::Null),
    );
    Some(object)
}

/// One value row an assignment should have: an option (select types) or a free value.
struct Wanted {
    option_id: Option<String>,
    text: Option<String>,
    number: Option<f64>,
}

fn wanted_rows(value: CheckedValue) -> Vec<Wanted> {
    match value {
        CheckedValue::Text(text) => vec![Wanted {
            option_id: None,
            text: Some(text),
            number: None,
        }],
        CheckedValue::Number(number) => vec![Wanted {
            option_id: None,
            text: None,
            number: Some(number),
        }],
        CheckedValue::Options(ids) => ids
            .into_iter()
            .map(|id| Wanted {
                option_id: Some(id),
                text: None,
                number: None,
            })
            .collect(),
    }
}

/// Makes the membership's rows of one attribute hold `wanted`, keeping rows (and their ids) that
/// already match. Returns whether anything changed.
async fn replace_rows<C: ConnectionTrait>(
    conn: &C,
    attribute_id: &str,
    membership_id: i64,
    mut existing: Vec<attribute_assignment::Model>,
    wanted: Vec<Wanted>,
) -> DomainResult<bool> {
    let now = convert::now_micros();
    let mut changed = false;
    for want in wanted {
        match existing
            .iter()
            .position(|row| row.option_id == want.option_id)
        {
            Some(i) => {
                let row = existing.swap_remove(i);
                if row.value_text != want.text || row.value_number != want.number {
                    let mut active = row.into_active_model();
                    active.value_text = Set(want.text);
                    active.value_number = Set(want.number);
                    active.updated_at = Set(now);
                    active.update(conn).await.map_err(db_error)?;
                    changed = true;
                }
            }
            None => {
                attribute_assignment::ActiveModel {
                    id: Set(new_id("asg")),
                    attribute_id: Set(attribute_id.to_string()),
                    membership_id: Set(membership_id),
                    option_id: Set(want.option_id),
                    value_text: Set(want.text),
                    value_number: Set(want.number),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(conn)
                .await
                .map_err(db_error)?;
                changed = true;
            }
        }
    }
    if !existing.is_empty() {
        attribute_assignment::Entity::delete_many()
            .filter(
                attribute_assignment::Column::Id
                    .is_in(existing.into_iter().map(|row| row.id).collect::<Vec<_>>()),
            )
            .exec(conn)
            .await
            .map_err(db_error)?;
        changed = true;
    }
    Ok(changed)
}

impl Store {
    pub async fn create_attribute(
        &self,
        actor: &Actor,
        new: NewAttribute,
    ) -> DomainResult<Written<Attribute>> {
        let tx = self.begin_write().await?;
        lock_organization(&*tx, new.organization_id).await?;
        let taken = attribute::Entity::find()
            .filter(attribute::Column::OrganizationId.eq(new.organization_id))
            .filter(attribute::Column::Slug.eq(new.slug.as_str()))
            .one(&*tx)
            .await
            .map_err(db_error)?;
        if taken.is_some() {
            return Err(DomainError::AlreadyExists(format!(
                "the attribute slug {:?} is taken in organization {}",
                new.slug, new.organization_id
            )));
        }
        let now = convert::now_micros();
        let id = new_id("attr");
        attribute::ActiveModel {
            id: Set(id.clone()),
            organization_id: Set(new.organization_id),
            name: Set(new.name),
            slug: Set(new.slug),
            attribute_type: Set(new.kind.as_str().to_string()),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(&*tx)
        .await
        .map_err(db_error)?;
        insert_options(&*tx, &id, 0, &new.options, now).await?;
        let created = find_attribute(&*tx, new.organization_id, &id).await?;
        let revision = events::record(
            &*tx,
            actor,
            attribute_event("attribute.created", &created, None, Some(&created)),
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: created,
            revision,
        })
    }

    pub async fn list_attributes(
        &self,
        organization_id: i64,
        page: KeyedPageRequest,
    ) -> DomainResult<AttributePage> {
        find_team(self.conn(), organization_id, TeamKind::Organization).await?;
        let mut rows = attribute::Entity::find()
            .filter(attribute::Column::OrganizationId.eq(organization_id))
            .filter(attribute::Column::Id.gt(page.after.as_str()))
            .order_by_asc(attribute::Column::Id)
            .limit(page.size + 1)
            .all(self.conn())
            .await
            .map_err(db_error)?;
        let more = rows.len() as u64 > page.size;
        rows.truncate(page.size as usize);
        let next_after = if more {
            rows.last().map(|r| r.id.clone())
        } else {
            None
        };
        let mut options =
            options_of(self.conn(), rows.iter().map(|r| r.id.clone()).collect()).await?;
        let items = rows
            .into_iter()
            .map(|row| {
                let opts = options.remove(&row.id).unwrap_or_default();
                attribute_of(row, opts)
            })
            .collect::<DomainResult<Vec<_>>>()?;
        Ok(AttributePage { items, next_after })
    }

    /// Deletes the attribute, its options and every membership's value of it.
    pub async fn delete_attribute(
        &self,
        actor: &Actor,
        organization_id: i64,
        attribute_id: &str,
    ) -> DomainResult<i64> {
        let tx = self.begin_write().await?;
        lock_organization(&*tx, organization_id).await?;
        let existing = find_attribute(&*tx, organization_id, attribute_id).await?;
        delete_attribute_rows(&*tx, &existing.id).await?;
        let revision = events::record(
            &*tx,
            actor,
            attribute_event("attribute.deleted", &existing, Some(&existing), None),
        )
        .await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Adds a choice to a select attribute. A value already there (ignoring case) is
    /// ALREADY_EXISTS; a TEXT or NUMBER attribute takes no options (INVALID_ARGUMENT).
    pub async fn add_attribute_option(
        &self,
        actor: &Actor,
        organization_id: i64,
        attribute_id: &str,
        value: String,
    ) -> DomainResult<Written<Attribute>> {
        let tx = self.begin_write().await?;
        lock_organization(&*tx, organization_id).await?;
        let before = find_attribute(&*tx, organization_id, attribute_id).await?;
        if !before.kind.is_select() {
            return Err(DomainError::invalid(
                "attribute_id",
                format!(
                    "attribute {attribute_id:?} is {}: only SINGLE_SELECT and MULTI_SELECT \
                     attributes have options",
                    before.kind.as_str()
                ),
            ));
        }
        if let Some(same) = before
            .options
            .iter()
            .find(|o| rules::same_option_value(&o.value, &value))
        {
            return Err(DomainError::AlreadyExists(format!(
                "attribute {attribute_id:?} already has the option {:?} ({})",
                same.value, same.id
            )));
        }
        let position = attribute_option::Entity::find()
            .filter(attribute_option::Column::AttributeId.eq(attribute_id))
            .order_by_desc(attribute_option::Column::Position)
            .one(&*tx)
            .await
            .map_err(db_error)?
            .map_or(0, |row| row.position as usize + 1);
        let now = convert::now_micros();
        insert_options(&*tx, &before.id, position, &[value], now).await?;
        let mut active = attribute::Entity::find_by_id(before.id.as_str())
            .one(&*tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| attribute_not_found(attribute_id))?
            .into_active_model();
        active.updated_at = Set(now);
        active.version = Set(before.version + 1);
        active.update(&*tx).await.map_err(db_error)?;
        let after = find_attribute(&*tx, organization_id, attribute_id).await?;
        let revision = events::record(
            &*tx,
            actor,
            attribute_event("attribute.updated", &after, Some(&before), Some(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: after,
            revision,
        })
    }

    /// Sets an organization membership's value of an attribute, replacing the one it had. The
    /// value is checked against the attribute under the lock; the value it already has writes
    /// nothing (revision 0).
    pub async fn assign_attribute(
        &self,
        actor: &Actor,
        organization_id: i64,
        attribute_id: &str,
        target: MembershipTarget,
        value: Option<ValueInput>,
    ) -> DomainResult<Written<MembershipView>> {
        self.change_value(actor, organization_id, attribute_id, target, Some(value))
            .await
    }

    /// Removes an organization membership's value of an attribute; none is not an error.
    pub async fn unassign_attribute(
        &self,
        actor: &Actor,
        organization_id: i64,
        attribute_id: &str,
        target: MembershipTarget,
    ) -> DomainResult<Written<MembershipView>> {
        self.change_value(actor, organization_id, attribute_id, target, None)
            .await
    }

    /// `value`: `Some` assigns (the request's value, itself possibly missing), `None` removes.
    async fn change_value(
        &self,
        actor: &Actor,
        organization_id: i64,
        attribute_id: &str,
        target: MembershipTarget,
        value: Option<Option<ValueInput>>,
    ) -> DomainResult<Written<MembershipView>> {
        let tx = self.begin_write().await?;
        lock_organization(&*tx, organization_id).await?;
        let attribute = find_attribute(&*tx, organization_id, attribute_id).await?;
        let membership = find_org_membership(&*tx, organization_id, target).await?;
        let wanted = match value {
            Some(input) => wanted_rows(rules::check_value(&attribute, input)?),
            None => Vec::new(),
        };
        let before = attributes_of(&*tx, &[membership.id])
            .await?
            .remove(&membership.id)
            .unwrap_or_default();
        let existing = attribute_assignment::Entity::find()
            .filter(attribute_assignment::Column::MembershipId.eq(membership.id))
            .filter(attribute_assignment::Column::AttributeId.eq(attribute.id.as_str()))
            .order_by_asc(attribute_assignment::Column::Id)
            .all(&*tx)
            .await
            .map_err(db_error)?;
        let changed = replace_rows(&*tx, &attribute.id, membership.id, existing, wanted).await?;
        let user = find_user(&*tx, membership.user_id).await?;
        if !changed {
            let revision = events::current_revision(&*tx).await?;
            tx.commit().await?;
            return Ok(Written {
                value: MembershipView {
                    membership,
                    user,
                    attributes: before,
                },
                revision,
            });
        }
        let after = attributes_of(&*tx, &[membership.id])
            .await?
            .remove(&membership.id)
            .unwrap_or_default();
        let revision = events::record(
            &*tx,
            actor,
            EventDraft {
                kind: "membership.updated",
                organization_id: Some(membership.organization_id),
                team_id: Some(membership.team_id),
                user_id: Some(membership.user_id),
                membership_id: Some(membership.id),
                role_id: Some(membership.role_id.clone()),
                before: membership_snapshot(&membership, &before),
                after: membership_snapshot(&membership, &after),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: MembershipView {
                membership,
                user,
                attributes: after,
            },
            revision,
        })
    }

    /// The attributes of each of these memberships (absent: none).
    pub async fn attributes_of(
        &self,
        membership_ids: &[i64],
    ) -> DomainResult<HashMap<i64, Vec<AssignedAttribute>>> {
        attributes_of(self.conn(), membership_ids).await
    }
}
