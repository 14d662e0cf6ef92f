//! Plain Rust: the model, validation, role resolution, the permission catalog and the rules of
//! DESIGN.md section 3. No tonic, no SQL.

pub mod access;
pub mod api_keys;
pub mod actor;
pub mod attributes;
pub mod catalog;
pub mod errors;
pub mod model;
pub mod page;
pub mod roles;
pub mod rules;
pub mod validate;

pub use errors::{DomainError, DomainResult, FieldViolation, Reason, Violations};
