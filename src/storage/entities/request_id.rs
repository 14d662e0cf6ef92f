use sea_orm::entity::prelude::*;

/// The remembered answer of a create sent with a `request_id`, written in the create's own
/// transaction (see `storage::idempotency`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "request_ids")]
pub struct Model {
    /// The calling API key: a request id is the caller's own namespace.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// SHA-256 (hex) of the method, actor and request: the same id with another request is
    /// refused.
    pub fingerprint: String,
    /// The encoded response of the first answer (a new key's secret sealed). Empty while the
    /// create that claimed the id is still running: never seen committed.
    pub response: Vec<u8>,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
