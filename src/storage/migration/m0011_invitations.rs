use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::storage::entities::invitation;

/// Invitations to organizations. One pending invitation per (organization, email) is enforced
/// by CreateInvitation under the organization lock, not by an index: expired, revoked and
/// accepted ones for the same address stay beside it.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_invitations"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(invitation::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let indexes = [
            // Listing an organization's invitations in id order (keyset pages).
            index(
                "ix_invitations_org_id",
                &[invitation::Column::OrganizationId, invitation::Column::Id],
            ),
            // The duplicate and seat checks of a create.
            index(
                "ix_invitations_org_email",
                &[
                    invitation::Column::OrganizationId,
                    invitation::Column::Email,
                ],
            ),
            // The sweeper's pending invitations past their expiry.
            index(
                "ix_invitations_status_expires",
                &[invitation::Column::Status, invitation::Column::ExpiresAt],
            ),
        ];
        for mut stmt in indexes {
            manager
                .create_index(stmt.if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn index(name: &str, columns: &[invitation::Column]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(invitation::Entity);
    for column in columns {
        stmt.col(*column);
    }
    stmt
}
