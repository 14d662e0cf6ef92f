//! What several storage modules share: the write result, the lookups and the organization lock
//! writes start with, the users an organization-bound key sees, the query a membership address
//! makes, membership insertion and deletion, the attribute values a membership view carries, and
//! role-reference resolution. The entity modules
//! (users, organizations, memberships, roles, attributes) import this module, `events` and
//! `permissions`, never each other.

use std::collections::HashMap;

use sea_orm::sea_query::{ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    FromQueryResult, JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use super::entities::{
    attribute, attribute_assignment, attribute_option, event, invitation, membership, role, team,
    user,
};
use super::events::{self, EventDraft, snapshot};
use super::{WriteTx, convert, db_error};
use crate::domain::attributes::AttributeType;
use crate::domain::custom_roles::{RoleCandidate, resolve_role_reference};
use crate::domain::events::EventKind;
use crate::domain::invitations::InvitationStatus;
use crate::domain::memberships::{MembershipAddress, NewMembership};
use crate::domain::model::{
    Actor, AssignedAttribute, AssignedValue, AutoRecordCalls, ChosenOption, Membership, RoleRef,
    Team, User,
};
use crate::domain::roles::BaseRole;
use crate::domain::teams::TeamKind;
use crate::domain::users::NewUser;
use crate::domain::{DomainError, DomainResult, rules};

/// A write's result and the sequence of the event it recorded.
#[derive(Debug, Clone)]
pub struct Written<T> {
    pub value: T,
    pub revision: i64,
}

pub(crate) async fn find_user<C: ConnectionTrait>(conn: &C, id: i64) -> DomainResult<User> {
    user::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
        .map(convert::user)
        .ok_or_else(|| DomainError::not_found(format_args!("user {id}")))
}

/// The team `id` names, when it is of `kind`; NOT_FOUND otherwise.
pub(crate) async fn find_team<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    kind: TeamKind,
) -> DomainResult<Team> {
    team::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
        .map(convert::team)
        .filter(|t| kind.admits(t))
        .ok_or_else(|| kind.not_found(id))
}

/// The users a key bound to `organization_id` sees: members of the organization or of its
/// sub-teams (a membership records its organization), and users created by a key of it (their
/// `user.created` event records the organization).
pub(crate) fn users_seen_by(organization_id: i64) -> Condition {
    let members = Query::select()
        .column(membership::Column::UserId)
        .from(membership::Entity)
        .and_where(membership::Column::OrganizationId.eq(organization_id))
        .to_owned();
    let created = Query::select()
        .column(event::Column::UserId)
        .from(event::Entity)
        .and_where(event::Column::Kind.eq(EventKind::UserCreated.as_str()))
        .and_where(event::Column::OrganizationId.eq(organization_id))
        .to_owned();
    Condition::any()
        .add(user::Column::Id.in_subquery(members))
        .add(user::Column::Id.in_subquery(created))
}

/// Locks the organization's row for the rest of the transaction (SQLite: writers are already
/// serialised) and returns it. NOT_FOUND when there is no such organization.
///
/// Rules that span rows (the last owner, the membership limit, unique option values) are checked
/// after this lock, which every competing writer of that organization takes too; at READ
/// COMMITTED every read after the lock sees what the previous holder committed.
pub(crate) async fn lock_organization<C: ConnectionTrait>(
    conn: &C,
    organization_id: i64,
) -> DomainResult<Team> {
    team::Entity::find_by_id(organization_id)
        .filter(team::Column::ParentId.is_null())
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)?
        .map(convert::team)
        .ok_or_else(|| TeamKind::Organization.not_found(organization_id))
}

/// The query for the memberships an address names: `MembershipAddress::matches` in SQL (a test
/// below holds the two to the same answers). A malformed address is INVALID_ARGUMENT.
pub(crate) fn membership_query(
    address: &MembershipAddress,
) -> DomainResult<Select<membership::Entity>> {
    use crate::domain::memberships::MembershipTarget;
    address
        .check()
        .map_err(|v| DomainError::InvalidArgument(vec![v]))?;
    let mut query = match address.target {
        MembershipTarget::MembershipId(id) => membership::Entity::find_by_id(id),
        MembershipTarget::UserId(user) => {
            membership::Entity::find().filter(membership::Column::UserId.eq(user))
        }
    };
    if let Some(team) = address.team_id {
        query = query.filter(membership::Column::TeamId.eq(team));
    }
    if let Some(organization) = address.organization_id {
        query = query.filter(membership::Column::OrganizationId.eq(organization));
    }
    Ok(query)
}

/// The organization's invitations still pending at `now_micros` (those past their expiry are
/// expired, swept or not): each holds a seat under `max_allowed_memberships`.
pub(crate) async fn pending_invitations<C: ConnectionTrait>(
    conn: &C,
    organization_id: i64,
    now_micros: i64,
) -> DomainResult<u64> {
    invitation::Entity::find()
        .filter(invitation::Column::OrganizationId.eq(organization_id))
        .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
        .filter(invitation::Column::ExpiresAt.gt(now_micros))
        .count(conn)
        .await
        .map_err(db_error)
}

/// The team's accepted owners other than `m`, for the last-owner rule. An expired one is no
/// owner (owners cannot expire, so this only guards rows written otherwise).
pub(crate) async fn other_accepted_owners<C: ConnectionTrait>(
    conn: &C,
    m: &Membership,
) -> DomainResult<u64> {
    membership::Entity::find()
        .filter(membership::Column::TeamId.eq(m.team_id))
        .filter(membership::Column::Accepted.eq(true))
        .filter(membership::Column::Role.eq(BaseRole::Owner.as_str()))
        .filter(membership::Column::Id.ne(m.id))
        .filter(
            Condition::any()
                .add(membership::Column::ExpiresAt.is_null())
                .add(membership::Column::ExpiresAt.gt(convert::now_micros())),
        )
        .count(conn)
        .await
        .map_err(db_error)
}

pub(crate) fn membership_event(
    kind: EventKind,
    m: &Membership,
    before: Option<&Membership>,
    after: Option<&Membership>,
) -> EventDraft {
    EventDraft {
        kind,
        organization_id: Some(m.organization_id),
        team_id: Some(m.team_id),
        user_id: Some(m.user_id),
        membership_id: Some(m.id),
        role_id: Some(m.role_id.clone()),
        before: before.and_then(snapshot),
        after: after.and_then(snapshot),
    }
}

/// Inserts a membership as decided (the team's organization locked, role resolved, acceptance
/// settled) and records `membership.created`. Returns it with the event's sequence.
pub(crate) async fn insert_membership(
    tx: &WriteTx,
    actor: &Actor,
    team: &Team,
    new: NewMembership,
    accepted: bool,
    role: BaseRole,
    role_ref: RoleRef,
) -> DomainResult<(Membership, i64)> {
    let row = membership_row(team, new, accepted, role, role_ref, convert::now_micros())
        .insert(&**tx)
        .await
        .map_err(db_error)?;
    let created = convert::membership(row)?;
    let revision = events::record(
        &**tx,
        actor,
        membership_event(EventKind::MembershipCreated, &created, None, Some(&created)),
    )
    .await?;
    Ok((created, revision))
}

/// The row of a new membership as decided (see `insert_membership`), created at `now`.
pub(crate) fn membership_row(
    team: &Team,
    new: NewMembership,
    accepted: bool,
    role: BaseRole,
    role_ref: RoleRef,
    now: i64,
) -> membership::ActiveModel {
    membership::ActiveModel {
        team_id: Set(team.id),
        organization_id: Set(team.organization_id()),
        user_id: Set(new.user_id),
        accepted: Set(accepted),
        role: Set(role.as_str().to_string()),
        role_id: Set(role_ref.id),
        role_key: Set(role_ref.key),
        disable_impersonation: Set(new.disable_impersonation),
        auto_record_calls: Set(new
            .auto_record_calls
            .unwrap_or(AutoRecordCalls::Unset)
            .as_str()
            .to_string()),
        public_metadata: Set(convert::object_text(&new.public_metadata)),
        private_metadata: Set(convert::object_text(&new.private_metadata)),
        expires_at: Set(new.expires_at.map(|at| at.timestamp_micros())),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        ..Default::default()
    }
}

/// The row of a new user, created at `now`.
pub(crate) fn user_row(new: NewUser, now: i64) -> user::ActiveModel {
    user::ActiveModel {
        email: Set(new.email),
        username: Set(new.username),
        name: Set(new.name),
        first_name: Set(new.first_name),
        last_name: Set(new.last_name),
        avatar_url: Set(new.avatar_url),
        bio: Set(new.bio),
        metadata: Set(convert::object_text(&new.metadata)),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        ..Default::default()
    }
}

/// The `user.created` event of `created`. A bound key's user belongs to its organization until
/// it joins one: the event says so, and `users_seen_by` reads it from there.
pub(crate) fn user_created_event(actor: &Actor, created: &User) -> EventDraft {
    EventDraft {
        organization_id: actor.organization_id,
        user_id: Some(created.id),
        after: snapshot(created),
        ..EventDraft::new(EventKind::UserCreated)
    }
}

/// The first of `emails` and of `usernames` another user than `except` already has: one query
/// each, however many are asked about.
pub(crate) async fn taken_email_and_username<C: ConnectionTrait>(
    conn: &C,
    except: Option<i64>,
    emails: &[&str],
    usernames: &[&str],
) -> DomainResult<(Option<String>, Option<String>)> {
    let taken = |column: user::Column, values: &[&str]| {
        let mut q = user::Entity::find()
            .select_only()
            .column(column)
            .filter(column.is_in(values.iter().copied()));
        if let Some(id) = except {
            q = q.filter(user::Column::Id.ne(id));
        }
        q.into_tuple::<String>().all(conn)
    };
    let mut found = (None, None);
    if !emails.is_empty() {
        let taken = taken(user::Column::Email, emails).await.map_err(db_error)?;
        found.0 = emails
            .iter()
            .find(|e| taken.iter().any(|t| t == *e))
            .map(|e| e.to_string());
    }
    if !usernames.is_empty() {
        let taken = taken(user::Column::Username, usernames)
            .await
            .map_err(db_error)?;
        found.1 = usernames
            .iter()
            .find(|u| taken.iter().any(|t| t == *u))
            .map(|u| u.to_string());
    }
    Ok(found)
}

/// Deletes one membership with its attribute values under the caller's organization lock, after
/// the last-owner check, and records its event.
pub(crate) async fn delete_membership(
    tx: &WriteTx,
    actor: &Actor,
    m: &Membership,
) -> DomainResult<i64> {
    remove_membership(tx, actor, m, EventKind::MembershipDeleted).await
}

/// `delete_membership`, recording `kind` (`membership.expired` for the sweep).
pub(crate) async fn remove_membership(
    tx: &WriteTx,
    actor: &Actor,
    m: &Membership,
    kind: EventKind,
) -> DomainResult<i64> {
    rules::check_last_owner(m, None, other_accepted_owners(&**tx, m).await?)?;
    attribute_assignment::Entity::delete_many()
        .filter(attribute_assignment::Column::MembershipId.eq(m.id))
        .exec(&**tx)
        .await
        .map_err(db_error)?;
    membership::Entity::delete_by_id(m.id)
        .exec(&**tx)
        .await
        .map_err(db_error)?;
    events::record(&**tx, actor, membership_event(kind, m, Some(m), None)).await
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
            .ok_or_else(|| convert::corrupt("attribute type", &row.attribute_type))?;
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

/// Removes what the attributes feature keeps about these teams before they are deleted: the
/// values held by their memberships and, for organizations, their attributes.
pub(crate) async fn delete_attributes_of_teams<C: ConnectionTrait>(
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

/// Deletes an attribute with its options and every membership's value of it.
pub(crate) async fn delete_attribute_rows<C: ConnectionTrait>(
    conn: &C,
    id: &str,
) -> DomainResult<()> {
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

/// Resolves the role reference of a membership of `team`: reads the custom roles whose id is the
/// reference (of any team, so that another team's id is refused rather than tried as a key) or
/// whose key it is within the team or its organization, and leaves the order to the domain.
pub(crate) async fn resolve_role<C: ConnectionTrait>(
    conn: &C,
    team: &Team,
    reference: &str,
) -> DomainResult<RoleRef> {
    let scopes = [team.id, team.organization_id()];
    let candidates: Vec<RoleCandidate> = role::Entity::find()
        .filter(role::Column::TeamId.is_not_null())
        .filter(
            role::Column::Id.eq(reference).or(role::Column::Key
                .eq(reference)
                .and(role::Column::ScopeId.is_in(scopes))),
        )
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter_map(|row| {
            Some(RoleCandidate {
                team_id: row.team_id?,
                id: row.id,
                key: row.key,
            })
        })
        .collect();
    resolve_role_reference(team, reference, &candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::memberships::{MembershipTarget, NewMembership};
    use crate::domain::teams::NewTeam;
    use crate::domain::users::NewUser;
    use crate::storage::Store;

    /// Organizations 1 and 2 (sub-team 3 of 1); users in several of them.
    async fn store_with_memberships() -> (Store, Vec<Membership>) {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let actor = Actor::default();
        let team = |organization_id: Option<i64>, slug: &str| NewTeam {
            organization_id,
            name: slug.into(),
            slug: slug.into(),
            ..Default::default()
        };
        let acme = store.create_team(&actor, team(None, "acme")).await.unwrap();
        let globex = store
            .create_team(&actor, team(None, "globex"))
            .await
            .unwrap();
        let eng = store
            .create_team(&actor, team(Some(acme.value.id), "eng"))
            .await
            .unwrap();
        let mut users = Vec::new();
        for email in ["ada@x.test", "bob@x.test", "cy@x.test"] {
            let new = NewUser {
                email: email.into(),
                ..Default::default()
            };
            users.push(store.create_user(&actor, new).await.unwrap().value.id);
        }
        let mut memberships = Vec::new();
        for (team_id, user_id) in [
            (acme.value.id, users[0]),
            (acme.value.id, users[1]),
            (eng.value.id, users[0]),
            (globex.value.id, users[0]),
            (globex.value.id, users[2]),
        ] {
            let new = NewMembership {
                team_id,
                user_id,
                ..Default::default()
            };
            let written = store.create_membership(&actor, new).await.unwrap();
            memberships.push(written.value.membership);
        }
        (store, memberships)
    }

    #[tokio::test]
    async fn an_address_matches_what_its_query_finds() {
        let (store, rows) = store_with_memberships().await;
        let mut ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
        ids.push(999);
        let mut users: Vec<i64> = rows.iter().map(|m| m.user_id).collect();
        users.push(999);
        let mut teams: Vec<Option<i64>> = rows.iter().map(|m| Some(m.team_id)).collect();
        teams.extend([None, Some(999)]);
        let mut organizations: Vec<Option<i64>> =
            rows.iter().map(|m| Some(m.organization_id)).collect();
        organizations.extend([None, Some(999)]);
        let targets = ids
            .iter()
            .map(|id| MembershipTarget::MembershipId(*id))
            .chain(users.iter().map(|u| MembershipTarget::UserId(*u)));
        let mut checked = 0;
        let mut found = 0;
        for target in targets {
            for team_id in &teams {
                for organization_id in &organizations {
                    let address = MembershipAddress {
                        team_id: *team_id,
                        target,
                        organization_id: *organization_id,
                    };
                    let mut expected: Vec<i64> = rows
                        .iter()
                        .filter(|m| address.matches(m))
                        .map(|m| m.id)
                        .collect();
                    expected.sort_unstable();
                    match membership_query(&address) {
                        Ok(query) => {
                            let mut got: Vec<i64> = query
                                .all(store.conn())
                                .await
                                .unwrap()
                                .into_iter()
                                .map(|row| row.id)
                                .collect();
                            got.sort_unstable();
                            assert_eq!(got, expected, "{address:?}");
                            assert!(got.len() <= 1, "an address names one membership at most");
                            found += got.len();
                        }
                        Err(DomainError::InvalidArgument(v)) => {
                            assert_eq!(v[0].field, "team_id");
                            assert!(expected.is_empty(), "{address:?} names nothing");
                        }
                        Err(other) => panic!("{address:?}: {other:?}"),
                    }
                    checked += 1;
                }
            }
        }
        assert!(
            checked > 500 && found > 20,
            "{checked} addresses, {found} hits"
        );
    }
}
