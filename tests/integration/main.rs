//! The integration tests, linked into one test binary: each module is one area of the service,
//! exercised through a real server (see `common` for the harness and the shared fixtures). A new
//! area is a new module here; a new test is an `async fn name(engine: Engine)` listed in its
//! module's `engine_tests!`.
//!
//! Run one area or one test by its path: `cargo test --test integration -- rules::`,
//! `TEST_ENGINES=sqlite cargo test --test integration -- smoke::creates_and_gets_user`.

#[macro_use]
mod common;

mod access;
mod actor;
mod actor_header;
mod actor_policy;
mod api_keys;
mod attributes;
mod bound_keys;
mod clerk_sdk;
mod consistency;
mod durability;
mod escalation;
mod expiry;
mod faults;
mod feed;
mod freshness;
mod grpcurl;
mod health;
mod hostile_input;
mod idempotency;
mod imports;
mod invitations;
mod limits;
mod lookups;
mod metrics;
mod ops;
mod page_tokens;
mod race;
mod rest;
mod roles;
mod rules;
mod schemathesis;
mod smoke;
mod snapshots;
mod tls;
