use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::storage::entities::request_id;

/// The answers of creates sent with a `request_id`, for safe retries. Written by hand rather
/// than from the entity: on MariaDB the ids compare exactly (its default collation would make
/// `A` and `a` one id) and an answer may outgrow a 64 KiB BLOB.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_request_ids"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mysql = manager.get_database_backend() == DbBackend::MySql;
        let id = |column: request_id::Column, len: u32| {
            let mut def = ColumnDef::new(column);
            if mysql {
                def.custom(Alias::new(format!(
                    "VARCHAR({len}) CHARACTER SET ascii COLLATE ascii_bin"
                )));
            } else {
                def.string_len(len);
            }
            def.not_null();
            def
        };
        let mut response = ColumnDef::new(request_id::Column::Response);
        if mysql {
            response.custom(Alias::new("MEDIUMBLOB"));
        } else {
            response.blob();
        }
        response.not_null();
        manager
            .create_table(
                Table::create()
                    .table(request_id::Entity)
                    .if_not_exists()
                    .col(id(request_id::Column::KeyId, 255))
                    .col(id(
                        request_id::Column::RequestId,
                        crate::domain::retries::MAX_REQUEST_ID_CHARS as u32,
                    ))
                    .col(id(request_id::Column::Fingerprint, 64))
                    .col(response)
                    .col(
                        ColumnDef::new(request_id::Column::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(request_id::Column::KeyId)
                            .col(request_id::Column::RequestId),
                    )
                    .to_owned(),
            )
            .await?;
        // Pruning deletes by age.
        manager
            .create_index(
                Index::create()
                    .name("ix_request_ids_created_at")
                    .table(request_id::Entity)
                    .col(request_id::Column::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
