//! Plain Rust: the model, the requests the api hands to storage, validation, role resolution,
//! the permission catalog and the rules of docs/design.md section 3. No tonic, no SQL.

pub mod access;
pub mod api_keys;
pub mod attributes;
pub mod catalog;
pub mod custom_roles;
pub mod errors;
pub mod events;
pub mod invitations;
pub mod lookups;
pub mod memberships;
pub mod model;
pub mod page;
pub mod policy;
pub mod retries;
pub mod roles;
pub mod rules;
pub mod teams;
pub mod tenancy;
pub mod users;
pub mod validate;

pub use errors::{DomainError, DomainResult, FieldViolation, Reason, Violations};
