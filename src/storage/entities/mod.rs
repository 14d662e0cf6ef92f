//! SeaORM entities, one per table. Timestamps are microseconds since the Unix epoch (UTC) in
//! BIGINT columns: exact and identical on every engine. JSON objects are TEXT.

pub mod api_key;
pub mod attribute;
pub mod attribute_assignment;
pub mod attribute_option;
pub mod event;
pub mod event_sequence;
pub mod invitation;
pub mod membership;
pub mod request_id;
pub mod role;
pub mod team;
pub mod user;
