//! Users.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::actor::authorize;
use super::entities::{membership, user};
use super::events::{self, EventDraft, snapshot};
use super::idempotency::{self, Once, Outcome};
use super::shared::{
    Written, delete_membership, find_user, lock_organization, taken_email_and_username,
    user_created_event, user_row, users_seen_by,
};
use super::{Store, convert, db_error};
use crate::domain::events::EventKind;
use crate::domain::model::{Actor, User};
use crate::domain::page::{Page, PageRequest, PagedList};
use crate::domain::policy::Write;
use crate::domain::users::{self, NewUser, UserPatch};
use crate::domain::{DomainError, DomainResult, rules};

async fn ensure_unique<C: ConnectionTrait>(
    conn: &C,
    except: Option<i64>,
    email: Option<&str>,
    username: Option<&str>,
) -> DomainResult<()> {
    let (email, username) =
        taken_email_and_username(conn, except, email.as_slice(), username.as_slice()).await?;
    if let Some(email) = email {
        return Err(users::email_taken(&email));
    }
    if let Some(username) = username {
        return Err(users::username_taken(&username));
    }
    Ok(())
}

impl Store {
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> DomainResult<Written<User>> {
        self.create_user_once(actor, new, None).await?.created()
    }

    /// `create_user`, done once per request id (`idempotency`).
    pub async fn create_user_once(
        &self,
        actor: &Actor,
        new: NewUser,
        once: Option<Once<'_, Written<User>>>,
    ) -> DomainResult<Outcome<Written<User>>> {
        let tx = self.begin_write().await?;
        authorize(&*tx, self.policy(), actor, None, &Write::CreateUser).await?;
        if let Some(answer) = idempotency::claim(&tx, actor, once.as_ref()).await? {
            return Ok(Outcome::Replayed(answer));
        }
        ensure_unique(&*tx, None, Some(&new.email), new.username.as_deref()).await?;
        let row = user_row(new, convert::now_micros())
            .insert(&*tx)
            .await
            .map_err(db_error)?;
        let created = convert::user(row);
        let revision = events::record(&*tx, actor, user_created_event(actor, &created)).await?;
        let written = Written {
            value: created,
            revision,
        };
        idempotency::remember(&tx, actor, once.as_ref(), &written).await?;
        tx.commit().await?;
        Ok(Outcome::Created(written))
    }

    pub async fn get_user(&self, id: i64) -> DomainResult<User> {
        find_user(self.conn(), id).await
    }

    pub async fn update_user(
        &self,
        actor: &Actor,
        id: i64,
        patch: UserPatch,
    ) -> DomainResult<Written<User>> {
        let tx = self.begin_write().await?;
        let row = user::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&*tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| DomainError::not_found(format_args!("user {id}")))?;
        authorize(
            &*tx,
            self.policy(),
            actor,
            None,
            &Write::UpdateUser { user_id: id },
        )
        .await?;
        rules::check_etag(patch.etag.as_deref(), row.version)?;
        let before = convert::user(row.clone());
        ensure_unique(
            &*tx,
            Some(id),
            patch.email.as_deref(),
            patch.username.as_ref().and_then(|u| u.as_deref()),
        )
        .await?;
        let mut active = row.into_active_model();
        let mut after = before.clone();
        macro_rules! apply {
            ($field:ident) => {
                if let Some(value) = patch.$field {
                    after.$field = value.clone();
                    active.$field = Set(value);
                }
            };
        }
        apply!(email);
        apply!(username);
        apply!(name);
        apply!(first_name);
        apply!(last_name);
        apply!(avatar_url);
        apply!(bio);
        if let Some(metadata) = patch.metadata {
            active.metadata = Set(convert::object_text(&metadata));
            after.metadata = metadata;
        }
        if after == before {
            let revision = events::current_revision(&*tx).await?;
            tx.commit().await?;
            return Ok(Written {
                value: before,
                revision,
            });
        }
        let now = convert::now_micros();
        active.updated_at = Set(now);
        active.version = Set(before.version + 1);
        let updated = convert::user(active.update(&*tx).await.map_err(db_error)?);
        let revision = events::record(
            &*tx,
            actor,
            EventDraft {
                // A bound key's writes are its organization's events (see `create_user`).
                organization_id: actor.organization_id,
                user_id: Some(id),
                before: snapshot(&before),
                after: snapshot(&updated),
                ..EventDraft::new(EventKind::UserUpdated)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Written {
            value: updated,
            revision,
        })
    }

    /// Whether a key bound to `organization_id` sees the user (`shared::users_seen_by`).
    pub async fn user_seen_by(&self, organization_id: i64, user_id: i64) -> DomainResult<bool> {
        let found = user::Entity::find_by_id(user_id)
            .filter(users_seen_by(organization_id))
            .one(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        Ok(found.is_some())
    }

    /// Users by id; a key bound to an organization gets only the users it sees.
    pub async fn list_users(
        &self,
        email: Option<&str>,
        seen_by_organization: Option<i64>,
        page: PageRequest,
    ) -> DomainResult<Page<User>> {
        let page = page.of(PagedList::Users)?;
        let mut query = user::Entity::find()
            .filter(user::Column::Id.gt(page.after))
            .order_by_asc(user::Column::Id)
            .limit(page.fetch());
        if let Some(email) = email {
            query = query.filter(user::Column::Email.eq(email));
        }
        if let Some(organization_id) = seen_by_organization {
            query = query.filter(users_seen_by(organization_id));
        }
        let rows = query
            .all(self.conn())
            .await
            .map_err(|e| self.pool_error(e))?;
        Ok(page.cut(rows, |r| r.id, convert::user))
    }

    /// Deletes the user and their memberships; refused with LAST_OWNER when one of them is the
    /// last accepted owner of its team.
    pub async fn delete_user(
        &self,
        actor: &Actor,
        id: i64,
        etag: Option<&str>,
    ) -> DomainResult<i64> {
        // A membership created in another organization while this transaction took its locks
        // sends it round again; creators lock the user row, so the set settles quickly.
        for _ in 0..5 {
            if let Some(revision) = self.try_delete_user(actor, id, etag).await? {
                return Ok(revision);
            }
        }
        Err(DomainError::Unavailable)
    }

    /// None when the user joined an organization this transaction had not locked.
    async fn try_delete_user(
        &self,
        actor: &Actor,
        id: i64,
        etag: Option<&str>,
    ) -> DomainResult<Option<i64>> {
        let tx = self.begin_write().await?;
        // Lock every organization the user belongs to, in id order so that writers never wait on
        // each other in a cycle, before reading the memberships the rule depends on.
        let organizations = organizations_of(&*tx, id).await?;
        for organization_id in &organizations {
            lock_organization(&*tx, *organization_id).await?;
        }
        let row = user::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&*tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| DomainError::not_found(format_args!("user {id}")))?;
        if organizations_of(&*tx, id).await? != organizations {
            return Ok(None);
        }
        actor.binding().may_delete_user(id, &organizations)?;
        authorize(
            &*tx,
            self.policy(),
            actor,
            None,
            &Write::DeleteUser { user_id: id },
        )
        .await?;
        rules::check_etag(etag, row.version)?;
        let user = convert::user(row);
        let rows = membership::Entity::find()
            .filter(membership::Column::UserId.eq(id))
            .order_by_asc(membership::Column::Id)
            .all(&*tx)
            .await
            .map_err(db_error)?;
        for row in rows {
            let membership = convert::membership(row)?;
            delete_membership(&tx, actor, &membership).await?;
        }
        user::Entity::delete_by_id(id)
            .exec(&*tx)
            .await
            .map_err(db_error)?;
        let revision = events::record(
            &*tx,
            actor,
            EventDraft {
                // A bound key's writes are its organization's events (see `create_user`).
                organization_id: actor.organization_id,
                user_id: Some(id),
                before: snapshot(&user),
                ..EventDraft::new(EventKind::UserDeleted)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(revision))
    }
}

/// The organizations a user has memberships in, ascending.
async fn organizations_of<C: ConnectionTrait>(conn: &C, user_id: i64) -> DomainResult<Vec<i64>> {
    let mut organizations: Vec<i64> = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|m| m.organization_id)
        .collect();
    organizations.sort_unstable();
    organizations.dedup();
    Ok(organizations)
}
