use sea_orm::{ActiveValue::Set, EntityTrait};
use sea_orm_migration::prelude::*;

use crate::domain::catalog::PermissionCatalog;
use crate::domain::roles::{SYSTEM_ROLES, system_role_permissions};
use crate::storage::entities::role;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_system_roles"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let catalog = PermissionCatalog::default_catalog();
        let now = chrono::Utc::now().timestamp_micros();
        for system in &SYSTEM_ROLES {
            if role::Entity::find_by_id(system.id).one(db).await?.is_some() {
                continue;
            }
            let permissions: Vec<String> = system_role_permissions(system, &catalog)
                .into_iter()
                .collect();
            role::Entity::insert(role::ActiveModel {
                id: Set(system.id.to_string()),
                key: Set(system.key.to_string()),
                team_id: Set(None),
                scope_id: Set(0),
                name: Set(system.name.to_string()),
                color: Set(None),
                description: Set(Some(system.description.to_string())),
                role_type: Set("SYSTEM".to_string()),
                base_role: Set(Some(system.base.as_str().to_string())),
                permissions: Set(serde_json::to_string(&permissions)
                    .map_err(|e| DbErr::Custom(e.to_string()))?),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
            })
            .exec(db)
            .await?;
        }
        Ok(())
    }
}
