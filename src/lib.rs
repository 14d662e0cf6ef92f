//! The membership and roles service: organizations, teams, users, memberships, roles and
//! permissions over gRPC.

pub mod api;
pub mod auth;
pub mod cache;
pub mod config;
pub mod connections;
pub mod domain;
pub mod feed;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod metrics;
pub mod pb;
pub mod reads;
pub mod rest;
pub mod scrape;
pub mod server;
pub mod storage;
pub mod sweeper;
pub mod telemetry;
