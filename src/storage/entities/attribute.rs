use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attributes")]
pub struct Model {
    /// `attr_` and hex that sorts in creation order, so keyset pages list attributes in that order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: i64,
    pub name: String,
    /// Unique within the organization.
    pub slug: String,
    /// `TEXT` / `NUMBER` / `SINGLE_SELECT` / `MULTI_SELECT`; never changes.
    pub attribute_type: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
