//! Organization attributes, their options, and their assignments to organization memberships.
//!
//! Every write locks the organization's row first, like membership writes: option values and
//! slugs are checked for uniqueness, and assignments checked against the options, under that lock.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use super::actor::authorize;
use super::entities::{attribute, attribute_assignment, attribute_option};
use super::events::{self, EventDraft, snapshot};
use super::idempotency::{self, Once, Outcome};
use super::shared::{
    Written, attributes_of, delete_attribute_rows, find_team, find_user, lock_organization,
    membership_event, membership_query,
};
use super::{Store, convert, db_error};
use crate::domain::attributes::{
    self as rules, Attribute, AttributeOption, AttributeType, CheckedValue, NewAttribute,
    ValueInput,
};
use crate::domain::events::EventKind;
use crate::domain::memberships::{MembershipAddress, MembershipTarget};
use crate::domain::model::{Actor, AssignedAttribute, JsonObject, Membership, MembershipView};
use crate::domain::page::{KeyedPage, KeyedPageRequest, PagedList};
use crate::domain::policy::Write;
use crate::domain::teams::TeamKind;
use crate::domain::{DomainError, DomainResult};

/// A new id: the prefix, 14 hex digits of the current time in microseconds (so ids sort in
/// creation order), and 10 random hex digits.
fn new_id(prefix: &str) -> String {
    let micros = convert::now_micros().max(0) as u64;
    let random = rand::random::<u64>() & 0xff_ffff_ffff;
    format!("{prefix}_{micros:014x}{random:010x}")
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
            .ok_or_else(|| convert::corrupt("attribute type", &row.attribute_type))?,
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

/// The organization membership a request names: an address within the organization as a team.
/// A sub-team membership, or one of another organization, is NOT_FOUND.
async fn find_org_membership<C: ConnectionTrait>(
    conn: &C,
    organization_id: i64,
    target: MembershipTarget,
) -> DomainResult<Membership> {
    let address = MembershipAddress {
        team_id: Some(organization_id),
        target,
        organization_id: None,
    };
    let missing = match target {
        MembershipTarget::MembershipId(id) => {
            format!("membership {id} in organization {organization_id}")
        }
        MembershipTarget::UserId(user) => {
            format!("membership of user {user} in organization {organization_id}")
        }
    };
    let row = membership_query(&address)?
        .one(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| DomainError::not_found(missing))?;
    convert::membership(row)
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
    kind: EventKind,
    a: &Attribute,
    before: Option<&Attribute>,
    after: Option<&Attribute>,
) -> EventDraft {
    EventDraft {
        organization_id: Some(a.organization_id),
        team_id: Some(a.organization_id),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
        ..EventDraft::new(kind)
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
        self.create_attribute_once(actor, new, None)
            .await?
            .created()
    }

    /// `create_attribute`, done once per request id (`idempotency`).
    pub async fn create_attribute_once(
        &self,
        actor: &Actor,
        new: NewAttribute,
        once: Option<Once<'_, Written<Attribute>>>,
    ) -> DomainResult<Outcome<Written<Attribute>>> {
        let tx = self.begin_write().await?;
        let organization = lock_organization(&*tx, new.organization_id).await?;
        let write = Write::CreateAttribute;
        authorize(&*tx, self.policy(), actor, Some(&organization), &write).await?;
        if let Some(answer) = idempotency::claim(&tx, actor, once.as_ref()).await? {
            return Ok(Outcome::Replayed(answer));
        }
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
            attribute_event(EventKind::AttributeCreated, &created, None, Some(&created)),
        )
        .await?;
        let written = Written {
            value: created,
            revision,
        };
        idempotency::remember(&tx, actor, once.as_ref(), &written).await?;
        tx.commit().await?;
        Ok(Outcome::Created(written))
    }

    pub async fn list_attributes(
        &self,
        organization_id: i64,
        page: KeyedPageRequest,
    ) -> DomainResult<KeyedPage<Attribute>> {
        let page = page.of(PagedList::Attributes)?;
        find_team(self.conn(), organization_id, TeamKind::Organization).await?;
        let rows = attribute::Entity::find()
            .filter(attribute::Column::OrganizationId.eq(organization_id))
            .filter(attribute::Column::Id.gt(page.after.as_str()))
            .order_by_asc(attribute::Column::Id)
            .limit(page.fetch())
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        // Options are read for this page's attributes only, not for the extra row.
        let rows = page.cut(rows, |r| r.id.clone());
        let mut options = options_of(
            self.conn(),
            rows.items.iter().map(|r| r.id.clone()).collect(),
        )
        .await?;
        let items = rows
            .items
            .into_iter()
            .map(|row| {
                let opts = options.remove(&row.id).unwrap_or_default();
                attribute_of(row, opts)
            })
            .collect::<DomainResult<Vec<_>>>()?;
        Ok(KeyedPage {
            items,
            next_after: rows.next_after,
        })
    }

    /// Deletes the attribute, its options and every membership's value of it.
    pub async fn delete_attribute(
        &self,
        actor: &Actor,
        organization_id: i64,
        attribute_id: &str,
    ) -> DomainResult<i64> {
        let tx = self.begin_write().await?;
        let organization = lock_organization(&*tx, organization_id).await?;
        let existing = find_attribute(&*tx, organization_id, attribute_id).await?;
        let write = Write::DeleteAttribute;
        authorize(&*tx, self.policy(), actor, Some(&organization), &write).await?;
        delete_attribute_rows(&*tx, &existing.id).await?;
        let revision = events::record(
            &*tx,
            actor,
            attribute_event(
                EventKind::AttributeDeleted,
                &existing,
                Some(&existing),
                None,
            ),
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
        let organization = lock_organization(&*tx, organization_id).await?;
        let before = find_attribute(&*tx, organization_id, attribute_id).await?;
        let write = Write::AddAttributeOption;
        authorize(&*tx, self.policy(), actor, Some(&organization), &write).await?;
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
            attribute_event(
                EventKind::AttributeUpdated,
                &after,
                Some(&before),
                Some(&after),
            ),
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
        let organization = lock_organization(&*tx, organization_id).await?;
        let attribute = find_attribute(&*tx, organization_id, attribute_id).await?;
        let membership = find_org_membership(&*tx, organization_id, target).await?;
        let write = match value {
            Some(_) => Write::AssignAttribute,
            None => Write::UnassignAttribute,
        };
        authorize(&*tx, self.policy(), actor, Some(&organization), &write).await?;
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
                before: membership_snapshot(&membership, &before),
                after: membership_snapshot(&membership, &after),
                ..membership_event(EventKind::MembershipUpdated, &membership, None, None)
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
}
