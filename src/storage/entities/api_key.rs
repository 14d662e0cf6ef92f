use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// The public part of the key, also its id in events.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret part, hex.
    pub secret_hash: String,
    /// Comma-separated scopes.
    pub scopes: String,
    pub created_at: i64,
    /// Set: the key sees this organization only.
    pub organization_id: Option<i64>,
    /// Microseconds since the epoch, UTC, like every time column.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_by_key_id: Option<String>,
    /// Calls a second the key may make (a token bucket); absent: unlimited.
    pub rate_limit_per_second: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
