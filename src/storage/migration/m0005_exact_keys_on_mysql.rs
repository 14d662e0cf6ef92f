use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

/// MariaDB/MySQL compare strings case-insensitively by default, so `Admin` would find the role
/// keyed `admin` and `Ada` would collide with the username `ada` there but nowhere else. Role
/// ids, keys and names and usernames compare exactly on every engine.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_exact_keys_on_mysql"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE roles MODIFY `id` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             MODIFY `key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             MODIFY `name` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
            "ALTER TABLE users MODIFY `username` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
            "ALTER TABLE memberships MODIFY `role_id` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             MODIFY `role_key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
