//! API keys: random, shown once, stored as a SHA-256 hash.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::entities::api_key;
use super::{Store, convert, db_error};
use crate::domain::DomainResult;

/// A stored key as the authenticator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    pub scopes: Vec<String>,
}

impl Store {
    pub async fn count_api_keys(&self) -> DomainResult<u64> {
        api_key::Entity::find()
            .count(self.conn())
            .await
            .map_err(db_error)
    }

    pub async fn insert_api_key(
        &self,
        id: &str,
        name: &str,
        secret_hash: &str,
        scopes: &[String],
    ) -> DomainResult<()> {
        api_key::Entity::insert(api_key::ActiveModel {
            id: Set(id.to_string()),
            name: Set(name.to_string()),
            secret_hash: Set(secret_hash.to_string()),
            scopes: Set(scopes.join(",")),
            created_at: Set(convert::now_micros()),
        })
        .exec(self.conn())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub async fn find_api_key(&self, secret_hash: &str) -> DomainResult<Option<StoredKey>> {
        let row = api_key::Entity::find()
            .filter(api_key::Column::SecretHash.eq(secret_hash))
            .one(self.conn())
            .await
            .map_err(db_error)?;
        Ok(row.map(|r| StoredKey {
            id: r.id,
            scopes: r
                .scopes
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }))
    }
}
