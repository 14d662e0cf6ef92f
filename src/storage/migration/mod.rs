//! Schema migrations, run at start and by `membership-service migrate`; applied ones are recorded
//! in `seaql_migrations`, so running them again changes nothing.

mod m0001_initial;
mod m0002_system_roles;
mod m0003_attributes;
mod m0004_event_sequence;
mod m0005_exact_keys_on_mysql;
mod m0006_api_key_lifecycle;
mod m0007_api_key_rate_limit;
mod m0008_health_probe;
mod m0009_request_ids;
mod m0011_invitations;

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_system_roles::Migration),
            Box::new(m0003_attributes::Migration),
            Box::new(m0004_event_sequence::Migration),
            Box::new(m0005_exact_keys_on_mysql::Migration),
            Box::new(m0006_api_key_lifecycle::Migration),
            Box::new(m0007_api_key_rate_limit::Migration),
            Box::new(m0008_health_probe::Migration),
            Box::new(m0009_request_ids::Migration),
            Box::new(m0011_invitations::Migration),
        ]
    }
}
