use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;

use crate::storage::entities::{attribute, attribute_assignment, attribute_option};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_attributes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        let mut tables = vec![
            schema.create_table_from_entity(attribute::Entity),
            schema.create_table_from_entity(attribute_option::Entity),
            schema.create_table_from_entity(attribute_assignment::Entity),
        ];
        for table in &mut tables {
            manager
                .create_table(table.if_not_exists().to_owned())
                .await?;
        }

        // Option values get no unique index: MariaDB's default collations are case- and
        // accent-insensitive, PostgreSQL's are not, so uniqueness is checked (case-insensitively)
        // under the organization lock instead, the same on every engine.
        let unique = [
            index(
                attribute::Entity,
                "ux_attributes_org_slug",
                &[
                    attribute::Column::OrganizationId.into_iden(),
                    attribute::Column::Slug.into_iden(),
                ],
            ),
            // NULL option ids (text and number values) never collide, as intended.
            index(
                attribute_assignment::Entity,
                "ux_attribute_assignments_value",
                &[
                    attribute_assignment::Column::MembershipId.into_iden(),
                    attribute_assignment::Column::AttributeId.into_iden(),
                    attribute_assignment::Column::OptionId.into_iden(),
                ],
            ),
        ];
        for mut stmt in unique {
            manager
                .create_index(stmt.unique().if_not_exists().to_owned())
                .await?;
        }

        let plain = [
            index(
                attribute::Entity,
                "ix_attributes_org_id",
                &[
                    attribute::Column::OrganizationId.into_iden(),
                    attribute::Column::Id.into_iden(),
                ],
            ),
            index(
                attribute_option::Entity,
                "ix_attribute_options_attribute",
                &[
                    attribute_option::Column::AttributeId.into_iden(),
                    attribute_option::Column::Position.into_iden(),
                ],
            ),
            index(
                attribute_assignment::Entity,
                "ix_attribute_assignments_attribute",
                &[attribute_assignment::Column::AttributeId.into_iden()],
            ),
        ];
        for mut stmt in plain {
            manager
                .create_index(stmt.if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn index<E: EntityTrait>(entity: E, name: &str, columns: &[DynIden]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(entity);
    for column in columns {
        stmt.col(column.clone());
    }
    stmt
}
