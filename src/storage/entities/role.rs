use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub key: String,
    /// None for system roles.
    pub team_id: Option<i64>,
    /// `team_id` or 0: keys and names are unique per scope.
    pub scope_id: i64,
    pub name: String,
    pub color: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// `SYSTEM` / `CUSTOM`.
    pub role_type: String,
    /// The base level a system role implies; None for custom roles.
    pub base_role: Option<String>,
    /// A JSON array of permission strings.
    #[sea_orm(column_type = "Text")]
    pub permissions: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
