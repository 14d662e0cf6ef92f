use sea_orm::entity::prelude::*;

/// The one row that numbers events. Each write transaction increments it right before inserting
/// its event and holds the row lock until it commits, so sequences are contiguous and become
/// visible in order: a reader that sees sequence n has seen every event before it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_sequence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    /// The last sequence handed out.
    pub value: i64,
    /// Events up to this sequence were removed by retention.
    pub pruned_through: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
