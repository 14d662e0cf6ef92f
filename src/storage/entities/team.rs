use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "teams")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub parent_id: Option<i64>,
    /// `parent_id` or 0: slugs are unique per scope, and NULLs are never equal in a unique index.
    pub scope_id: i64,
    pub name: String,
    pub slug: String,
    #[sea_orm(column_type = "Text")]
    pub image_url: String,
    pub max_allowed_memberships: i32,
    pub auto_accept_email_domain: Option<String>,
    pub admin_delete_enabled: bool,
    #[sea_orm(column_type = "Text")]
    pub public_metadata: String,
    #[sea_orm(column_type = "Text")]
    pub private_metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
