use sea_orm_migration::prelude::*;

use crate::storage::entities::api_key;

/// Keys may carry a rate limit (`rate_limit_per_second`; absent: unlimited). A database created
/// after this change already has the column (m0001 creates the table from the current entity).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_api_key_rate_limit"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager
            .has_column("api_keys", "rate_limit_per_second")
            .await?
        {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(api_key::Entity)
                    .add_column(
                        ColumnDef::new(api_key::Column::RateLimitPerSecond)
                            .integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }
}
