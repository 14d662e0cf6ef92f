//! User requests.

use super::errors::DomainError;
use super::model::JsonObject;

/// Emails and usernames are unique among users.
pub fn email_taken(email: &str) -> DomainError {
    DomainError::AlreadyExists(format!("a user with email {email:?} already exists"))
}

pub fn username_taken(username: &str) -> DomainError {
    DomainError::AlreadyExists(format!("the username {username:?} is taken"))
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub email: String,
    pub username: Option<String>,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub avatar_url: String,
    pub bio: String,
    pub metadata: JsonObject,
}

/// Present fields are set; `username: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub username: Option<Option<String>>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub metadata: Option<JsonObject>,
    pub etag: Option<String>,
}
