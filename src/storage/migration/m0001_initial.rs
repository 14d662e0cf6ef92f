use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;

use crate::storage::entities::{api_key, event, membership, role, team, user};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        let mut tables = vec![
            schema.create_table_from_entity(user::Entity),
            schema.create_table_from_entity(team::Entity),
            schema.create_table_from_entity(membership::Entity),
            schema.create_table_from_entity(role::Entity),
            schema.create_table_from_entity(api_key::Entity),
            schema.create_table_from_entity(event::Entity),
        ];
        for table in &mut tables {
            manager
                .create_table(table.if_not_exists().to_owned())
                .await?;
        }

        let unique = [
            index(
                user::Entity,
                "ux_users_email",
                &[user::Column::Email.into_iden()],
            ),
            index(
                user::Entity,
                "ux_users_username",
                &[user::Column::Username.into_iden()],
            ),
            index(
                team::Entity,
                "ux_teams_scope_slug",
                &[
                    team::Column::ScopeId.into_iden(),
                    team::Column::Slug.into_iden(),
                ],
            ),
            index(
                membership::Entity,
                "ux_memberships_team_user",
                &[
                    membership::Column::TeamId.into_iden(),
                    membership::Column::UserId.into_iden(),
                ],
            ),
            index(
                role::Entity,
                "ux_roles_scope_key",
                &[
                    role::Column::ScopeId.into_iden(),
                    role::Column::Key.into_iden(),
                ],
            ),
            index(
                api_key::Entity,
                "ux_api_keys_secret_hash",
                &[api_key::Column::SecretHash.into_iden()],
            ),
            index(
                role::Entity,
                "ux_roles_scope_name",
                &[
                    role::Column::ScopeId.into_iden(),
                    role::Column::Name.into_iden(),
                ],
            ),
        ];
        for mut stmt in unique {
            manager
                .create_index(stmt.unique().if_not_exists().to_owned())
                .await?;
        }

        // Keyset pagination and the lookups of the hot paths.
        let plain = [
            index(
                team::Entity,
                "ix_teams_parent",
                &[
                    team::Column::ParentId.into_iden(),
                    team::Column::Id.into_iden(),
                ],
            ),
            index(
                membership::Entity,
                "ix_memberships_team_id",
                &[
                    membership::Column::TeamId.into_iden(),
                    membership::Column::Id.into_iden(),
                ],
            ),
            index(
                membership::Entity,
                "ix_memberships_user_id",
                &[
                    membership::Column::UserId.into_iden(),
                    membership::Column::Id.into_iden(),
                ],
            ),
            index(
                membership::Entity,
                "ix_memberships_org_user",
                &[
                    membership::Column::OrganizationId.into_iden(),
                    membership::Column::UserId.into_iden(),
                ],
            ),
            index(
                membership::Entity,
                "ix_memberships_role_id",
                &[membership::Column::RoleId.into_iden()],
            ),
            index(
                event::Entity,
                "ix_events_team",
                &[
                    event::Column::TeamId.into_iden(),
                    event::Column::Sequence.into_iden(),
                ],
            ),
            index(
                event::Entity,
                "ix_events_kind",
                &[
                    event::Column::Kind.into_iden(),
                    event::Column::Sequence.into_iden(),
                ],
            ),
        ];
        for mut stmt in plain {
            manager
                .create_index(stmt.if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn index<E: EntityTrait>(entity: E, name: &str, columns: &[DynIden]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(entity);
    for column in columns {
        stmt.col(column.clone());
    }
    stmt
}
