use sea_orm::entity::prelude::*;

/// One value of an attribute held by an organization membership: a text or number row, or one row
/// per chosen option of a select attribute.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "attribute_assignments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub attribute_id: String,
    pub membership_id: i64,
    pub option_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub value_text: Option<String>,
    #[sea_orm(column_type = "Double", nullable)]
    pub value_number: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
