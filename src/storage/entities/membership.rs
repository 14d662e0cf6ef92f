use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub team_id: i64,
    /// The team's organization (the team itself for organization memberships).
    pub organization_id: i64,
    pub user_id: i64,
    pub accepted: bool,
    /// `MEMBER` / `ADMIN` / `OWNER`.
    pub role: String,
    pub role_id: String,
    /// Role keys never change, so the key is kept beside the id for reads.
    pub role_key: String,
    pub disable_impersonation: bool,
    /// `UNSET` / `DISABLED` / `ENABLED`.
    pub auto_record_calls: String,
    #[sea_orm(column_type = "Text")]
    pub public_metadata: String,
    #[sea_orm(column_type = "Text")]
    pub private_metadata: String,
    /// Microseconds since the epoch, like every timestamp here; `None`: never expires.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
