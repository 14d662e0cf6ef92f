use sea_orm_migration::prelude::*;

use crate::storage::entities::api_key;

/// Keys get a lifecycle: an organization binding, expiry, revocation, last use, and who made
/// them. A database created after this change already has the columns (m0001 creates the table
/// from the current entity), so each one is added only where it is missing.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_api_key_lifecycle"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (
                api_key::Column::OrganizationId,
                ColumnDef::new(api_key::Column::OrganizationId)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
            (
                api_key::Column::ExpiresAt,
                ColumnDef::new(api_key::Column::ExpiresAt)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
            (
                api_key::Column::RevokedAt,
                ColumnDef::new(api_key::Column::RevokedAt)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
            (
                api_key::Column::LastUsedAt,
                ColumnDef::new(api_key::Column::LastUsedAt)
                    .big_integer()
                    .null()
                    .to_owned(),
            ),
            (
                api_key::Column::CreatedByKeyId,
                ColumnDef::new(api_key::Column::CreatedByKeyId)
                    .string()
                    .null()
                    .to_owned(),
            ),
        ];
        for (column, mut definition) in columns {
            if manager
                .has_column("api_keys", column.to_string().as_str())
                .await?
            {
                continue;
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(api_key::Entity)
                        .add_column(&mut definition)
                        .to_owned(),
                )
                .await?;
        }
        if !manager
            .has_index("api_keys", "ix_api_keys_organization_id")
            .await?
        {
            manager
                .create_index(
                    Index::create()
                        .name("ix_api_keys_organization_id")
                        .table(api_key::Entity)
                        .col(api_key::Column::OrganizationId)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
