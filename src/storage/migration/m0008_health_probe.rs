use sea_orm_migration::prelude::*;

/// The row the health monitor writes to prove the storage still takes writes (see
/// `Store::probe_write`). One row per database, shared by every replica: the probe is an update
/// of it, so the table never grows.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_health_probe"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(HealthProbe::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(HealthProbe::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(HealthProbe::CheckedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(HealthProbe::Table)
                    .columns([HealthProbe::Id, HealthProbe::CheckedAt])
                    .values_panic([1.into(), 0i64.into()])
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum HealthProbe {
    Table,
    Id,
    CheckedAt,
}
