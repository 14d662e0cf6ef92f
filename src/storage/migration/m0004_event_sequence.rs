use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder, Schema};
use sea_orm_migration::prelude::*;

use crate::storage::entities::{event, event_sequence};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_event_sequence"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(event_sequence::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if event_sequence::Entity::find_by_id(1)
            .one(db)
            .await?
            .is_none()
        {
            let last = event::Entity::find()
                .order_by_desc(event::Column::Sequence)
                .one(db)
                .await?;
            event_sequence::Entity::insert(event_sequence::ActiveModel {
                id: Set(1),
                value: Set(last.map(|e| e.sequence).unwrap_or(0)),
                pruned_through: Set(0),
            })
            .exec(db)
            .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_events_occurred_at")
                    .table(event::Entity)
                    .col(event::Column::OccurredAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
