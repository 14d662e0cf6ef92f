use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub organization_id: i64,
    /// Lower-case.
    pub email: String,
    /// `MEMBER` / `ADMIN` / `OWNER`: the level the membership gets.
    pub role: String,
    pub role_id: String,
    pub role_key: String,
    /// `PENDING` / `ACCEPTED` / `REVOKED` / `EXPIRED`.
    pub status: String,
    pub inviter_user_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
