use sea_orm_migration::prelude::*;

use crate::storage::entities::membership;

/// Memberships may expire (`expires_at`, microseconds since the epoch like `created_at`; absent:
/// never). The index serves the sweep, which looks for the earliest expired ones. A database
/// created after this change already has the column (m0001 creates the table from the current
/// entity), so it is added only where it is missing.
pub struct Migration;

const INDEX: &str = "ix_memberships_expires_at";

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_membership_expiry"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("memberships", "expires_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(membership::Entity)
                        .add_column(
                            ColumnDef::new(membership::Column::ExpiresAt)
                                .big_integer()
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        if !manager.has_index("memberships", INDEX).await? {
            manager
                .create_index(
                    Index::create()
                        .name(INDEX)
                        .table(membership::Entity)
                        .col(membership::Column::ExpiresAt)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
