//! The bodies of the fuzz targets in `fuzz/`. They live in the library so that the committed
//! corpus replays through the very same code in the ordinary test run (stable toolchain, no
//! cargo-fuzz): one body, two callers. Each panics when a property breaks; that panic is what
//! the fuzzer reports as a crash and what fails the replay.
//!
//! Properties: nothing a client can send panics; every refusal is INVALID_ARGUMENT with
//! `google.rpc` details of bounded size (never INTERNAL); what is accepted is stable (normalising
//! an accepted value again changes nothing, an accepted page token is one the service issues).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::api::{access, convert, errors::ERROR_DOMAIN, memberships, roles};
use crate::domain::access::Policy;
use crate::domain::page::{
    KeyedCursor, KeyedPageRequest, MAX_PAGE_SIZE, PageCursor, PageRequest, PagedList,
    encode_keyed_token, encode_token,
};
use crate::domain::validate::{self, MAX_BIO_CHARS, MAX_NAME_CHARS};
use crate::domain::{DomainError, DomainResult, FieldViolation, Violations};
use crate::pb;

#[doc(hidden)]
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call
/// them.
#[doc(hidden)]
pub const TARGETS: &[(&str, Target)] = &[
    ("page_token", page_token),
    ("request_validation", request_validation),
];

const PAGE_SIZES: [i32; 8] = [0, 1, 50, 1000, 1001, -1, i32::MIN, i32::MAX];

/// Page-token decoding. Byte 0 picks the list the token is used for, byte 1 the page size, and
/// its top bit whether the rest is the token itself or the text inside one (then base64-encoded
/// here, so the fuzzer reaches the checks past base64 without having to learn base64).
#[doc(hidden)]
pub fn page_token(data: &[u8]) {
    let [list, size, rest @ ..] = data else {
        return;
    };
    let list = PagedList::ALL[usize::from(*list) % PagedList::ALL.len()];
    let page_size = match PAGE_SIZES.get(usize::from(size & 0x7f)) {
        Some(size) => *size,
        None => i32::from(size & 0x7f) * 16 - 512,
    };
    let text = String::from_utf8_lossy(rest);
    let token = if size & 0x80 != 0 {
        URL_SAFE_NO_PAD.encode(text.as_bytes())
    } else {
        text.into_owned()
    };
    let size_ok = (0..=MAX_PAGE_SIZE as i64).contains(&i64::from(page_size));

    match PageRequest::parse(page_size, &token) {
        Ok(request) => {
            assert!(size_ok, "page_size {page_size} accepted");
            match request.of(list) {
                Ok(page) => {
                    assert!((1..=MAX_PAGE_SIZE).contains(&page.size));
                    if token.is_empty() {
                        assert_eq!(page.after, 0);
                    } else {
                        assert!(page.after > 0);
                        let issued = encode_token(PageCursor {
                            list,
                            after: page.after,
                        });
                        assert_eq!(issued, token, "accepted a token the service never issues");
                    }
                }
                Err(e) => refused(e, &["page_token"]),
            }
        }
        Err(v) => refused(
            DomainError::InvalidArgument(v),
            &["page_size", "page_token"],
        ),
    }

    match KeyedPageRequest::parse(page_size, &token) {
        Ok(request) => {
            assert!(size_ok, "page_size {page_size} accepted");
            match request.of(list) {
                Ok(page) => {
                    assert!((1..=MAX_PAGE_SIZE).contains(&page.size));
                    if token.is_empty() {
                        assert!(page.after.is_empty());
                    } else {
                        let issued = encode_keyed_token(KeyedCursor {
                            list,
                            after: page.after,
                        });
                        assert_eq!(issued, token, "accepted a token the service never issues");
                    }
                }
                Err(e) => refused(e, &["page_token"]),
            }
        }
        Err(v) => refused(
            DomainError::InvalidArgument(v),
            &["page_size", "page_token"],
        ),
    }
}

/// The request messages whose fields the handlers validate, by byte 0 of the input.
const MESSAGES: u8 = 11;

/// Request decoding and validation. Byte 0 picks the message; the rest is its protobuf encoding,
/// decoded with prost as tonic decodes a request body. Bytes that do not decode never reach a
/// handler (the server answers INVALID_ARGUMENT `MALFORMED_REQUEST`); the rest go through the
/// handler's own checks, in the handler's order.
#[doc(hidden)]
pub fn request_validation(data: &[u8]) {
    let [kind, body @ ..] = data else {
        return;
    };
    let result = match kind % MESSAGES {
        0 => decoded(body).map(create_user),
        1 => decoded(body).map(update_user),
        2 => decoded(body).map(create_membership),
        3 => decoded(body).map(update_membership),
        4 => decoded(body).map(list_memberships),
        5 => decoded(body).map(check_permission),
        6 => decoded(body).map(batch_check_permissions),
        7 => decoded(body).map(create_role),
        8 => decoded(body).map(update_role),
        9 => decoded(body).map(create_organization),
        _ => decoded(body).map(metadata),
    };
    if let Some(Err(e)) = result {
        refused(e, &[]);
    }
}

fn decoded<M: Message + Default>(body: &[u8]) -> Option<M> {
    M::decode(body).ok()
}

/// A refusal as the client sees it: INVALID_ARGUMENT with ErrorInfo and a bounded BadRequest.
/// `fields`, when not empty, are the only fields it may name.
fn refused(e: DomainError, fields: &[&str]) {
    let DomainError::InvalidArgument(violations) = &e else {
        panic!("a client's input refused with {e:?}, not INVALID_ARGUMENT");
    };
    assert!(!violations.is_empty(), "INVALID_ARGUMENT naming no field");
    if !fields.is_empty() {
        for v in violations {
            assert!(fields.contains(&v.field.as_str()), "unexpected {v:?}");
        }
    }
    let status = Status::from(e);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().len() <= 4096, "status message too long");
    let details = status.check_error_details().expect("status details decode");
    let info = details.error_info().expect("ErrorInfo on every error");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("INVALID_ARGUMENT", ERROR_DOMAIN)
    );
    let bad = details
        .bad_request()
        .expect("BadRequest on INVALID_ARGUMENT");
    assert!(!bad.field_violations.is_empty() && bad.field_violations.len() <= 100);
    for v in &bad.field_violations {
        assert!(v.field.chars().count() <= 81 && v.description.chars().count() <= 81);
    }
}

/// An accepted value is a fixed point of its check: normalising it again changes nothing.
fn stable<T: PartialEq + std::fmt::Debug>(
    value: &T,
    check: impl FnOnce(&T) -> Result<T, FieldViolation>,
) {
    let again = check(value).unwrap_or_else(|v| panic!("{value:?} accepted, then refused: {v:?}"));
    assert_eq!(&again, value, "normalising twice changed the value");
}

/// Metadata as stored reads back as the same JSON: the Struct a Get returns converts to what
/// was stored.
fn metadata_round_trips(field: &str, value: Option<prost_types::Struct>) {
    if let Ok(Some(stored)) = convert::metadata(field, value) {
        let returned = convert::to_struct(&stored);
        assert_eq!(convert::from_struct(returned.unwrap()), stored);
    }
}

// The handlers' checks, in their order, for messages of each kind. Each mirrors the start of
// the handler it names, up to the call into storage.

/// `DirectoryApi::create_user`.
fn create_user(r: pb::CreateUserRequest) -> DomainResult<()> {
    metadata_round_trips("metadata", r.metadata.clone());
    let mut v = Violations::new();
    if let Some(email) = v.check(validate::email("email", &r.email)) {
        stable(&email, |e| validate::email("email", e));
    }
    if let Some(Some(username)) = v.check(validate::optional_username(
        "username",
        r.username.as_deref().unwrap_or(""),
    )) {
        stable(&Some(username), |u| {
            validate::optional_username("username", u.as_deref().unwrap_or(""))
        });
    }
    for (field, value) in [
        ("name", &r.name),
        ("first_name", &r.first_name),
        ("last_name", &r.last_name),
    ] {
        if let Some(text) = v.check(validate::optional_text(field, value.trim(), MAX_NAME_CHARS)) {
            stable(&text, |t| validate::optional_text(field, t, MAX_NAME_CHARS));
        }
    }
    v.check(validate::optional_url("avatar_url", &r.avatar_url));
    v.check(validate::optional_text("bio", &r.bio, MAX_BIO_CHARS));
    v.check(convert::metadata("metadata", r.metadata));
    v.into_result()
}

/// `DirectoryApi::update_user`.
fn update_user(r: pb::UpdateUserRequest) -> DomainResult<()> {
    metadata_round_trips("metadata", r.metadata.clone());
    let mut v = Violations::new();
    v.check(validate::id("user_id", r.user_id));
    let text = |v: &mut Violations, field: &str, value: Option<String>, max: usize| {
        value.and_then(|s| v.check(validate::optional_text(field, s.trim(), max)))
    };
    if let Some(email) = r.email.and_then(|e| v.check(validate::email("email", &e))) {
        stable(&email, |e| validate::email("email", e));
    }
    r.username
        .and_then(|u| v.check(validate::optional_username("username", &u)));
    text(&mut v, "name", r.name, MAX_NAME_CHARS);
    text(&mut v, "first_name", r.first_name, MAX_NAME_CHARS);
    text(&mut v, "last_name", r.last_name, MAX_NAME_CHARS);
    r.avatar_url
        .and_then(|u| v.check(validate::optional_url("avatar_url", &u)));
    r.bio
        .and_then(|b| v.check(validate::optional_text("bio", &b, MAX_BIO_CHARS)));
    v.check(convert::metadata("metadata", r.metadata));
    v.into_result()
}

/// `DirectoryApi::create_organization`.
fn create_organization(r: pb::CreateOrganizationRequest) -> DomainResult<()> {
    let mut v = Violations::new();
    let name = v.check(validate::name("name", &r.name, MAX_NAME_CHARS));
    if let Some(name) = &name {
        stable(name, |n| validate::name("name", n, MAX_NAME_CHARS));
    }
    let derived = r.slug.is_empty();
    let slug = if derived {
        validate::slugify(name.as_deref().unwrap_or_default())
    } else {
        r.slug
    };
    if r.max_allowed_memberships < 0 {
        v.add("max_allowed_memberships", "must be 0 (unlimited) or more");
    }
    let slug_ok = v.check(validate::slug("slug", &slug)).is_some();
    if derived {
        // A slug made from an accepted name is refused only when nothing of the name is left.
        assert_eq!(
            slug_ok,
            !slug.is_empty(),
            "slug {slug:?} derived from {name:?}"
        );
    }
    v.check(validate::optional_url("image_url", &r.image_url));
    if let Some(Some(domain)) = v.check(validate::optional_domain(
        "auto_accept_email_domain",
        &r.auto_accept_email_domain,
    )) {
        stable(&Some(domain), |d| {
            validate::optional_domain("auto_accept_email_domain", d.as_deref().unwrap_or(""))
        });
    }
    v.check(convert::metadata("public_metadata", r.public_metadata));
    v.check(convert::metadata("private_metadata", r.private_metadata));
    v.into_result()
}

/// `MembershipApi::create_membership`.
fn create_membership(r: pb::CreateMembershipRequest) -> DomainResult<()> {
    metadata_round_trips("public_metadata", r.public_metadata.clone());
    let mut v = Violations::new();
    if r.organization_id < 0 {
        v.add("organization_id", "must be a positive id");
    }
    v.check(validate::id("team_id", r.team_id));
    v.check(validate::id("user_id", r.user_id));
    v.check(convert::request_role("role", r.role));
    let role_id = memberships::role_reference(&mut v, (!r.role_id.is_empty()).then_some(r.role_id));
    if let Some(role_id) = role_id {
        stable(&role_id, |id| validate::reference("role_id", id, 100));
    }
    v.check(convert::request_auto_record_calls(
        "auto_record_calls",
        r.auto_record_calls,
    ));
    v.check(convert::metadata("public_metadata", r.public_metadata));
    v.check(convert::metadata("private_metadata", r.private_metadata));
    v.into_result()
}

/// `MembershipApi::update_membership`.
fn update_membership(r: pb::UpdateMembershipRequest) -> DomainResult<()> {
    let mut v = Violations::new();
    let address = memberships::address(
        &mut v,
        r.team_id,
        memberships::update_member(r.member).as_ref(),
        r.organization_id,
    );
    r.role
        .and_then(|role| v.check(convert::request_role("role", role)).flatten());
    memberships::role_reference(&mut v, r.role_id);
    r.auto_record_calls.and_then(|a| {
        v.check(convert::request_auto_record_calls("auto_record_calls", a))
            .flatten()
    });
    v.check(convert::metadata("public_metadata", r.public_metadata));
    v.check(convert::metadata("private_metadata", r.private_metadata));
    let result = v.into_result();
    if result.is_ok() {
        // A well-formed address names at most one membership.
        assert!(address.check().is_ok());
    }
    result
}

/// `MembershipApi::list_memberships`.
fn list_memberships(r: pb::ListMembershipsRequest) -> DomainResult<()> {
    let mut v = Violations::new();
    v.check(validate::id("team_id", r.team_id));
    if r.organization_id < 0 {
        v.add("organization_id", "must be a positive id");
    }
    v.check(convert::request_role("role", r.role));
    let page = v.page(PageRequest::parse(r.page_size, &r.page_token));
    v.check(convert::consistency("consistency", r.consistency));
    v.into_result()?;
    page.of(PagedList::Memberships).map(|_| ())
}

fn policy() -> &'static Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY.get_or_init(Policy::default)
}

/// `AccessApi::check_permission`.
fn check_permission(r: pb::CheckPermissionRequest) -> DomainResult<()> {
    let mut v = Violations::new();
    access::validate_check(&policy().catalog, &mut v, None, &r);
    v.check(convert::consistency("consistency", r.consistency));
    v.into_result()
}

/// `AccessApi::batch_check_permissions`.
fn batch_check_permissions(r: pb::BatchCheckPermissionsRequest) -> DomainResult<()> {
    let mut v = Violations::new();
    if r.checks.is_empty() || r.checks.len() > access::MAX_BATCH_CHECKS {
        v.add("checks", "must hold 1 to 100 checks");
    }
    for (i, check) in r.checks.iter().enumerate() {
        access::validate_check(&policy().catalog, &mut v, Some(i), check);
    }
    v.check(convert::consistency("consistency", r.consistency));
    v.into_result()
}

/// `RoleApi::create_role`, then the permission list as storage checks it for a role of an
/// organization and of a sub-team.
fn create_role(r: pb::CreateRoleRequest) -> DomainResult<()> {
    let mut v = Violations::new();
    v.check(validate::id("team_id", r.team_id));
    if !r.key.is_empty()
        && let Some(key) = v.check(validate::role_key("key", &r.key))
    {
        stable(&key, |k| validate::role_key("key", k));
    }
    roles::name(&mut v, &r.name);
    v.check(validate::optional_color("color", &r.color));
    roles::description(&mut v, &r.description);
    let permissions = roles::permissions_list(&mut v, r.permissions);
    v.into_result()?;
    role_permissions(&permissions)
}

/// `RoleApi::update_role`, then the permission list as storage checks it.
fn update_role(r: pb::UpdateRoleRequest) -> DomainResult<()> {
    let mut v = Violations::new();
    roles::address(&mut v, r.team_id, &r.role_id);
    if let Some(name) = r.name {
        roles::name(&mut v, &name);
    }
    if let Some(color) = r.color {
        v.check(validate::optional_color("color", &color));
    }
    if let Some(description) = r.description {
        roles::description(&mut v, &description);
    }
    let permissions = r
        .permissions
        .map(|list| roles::permissions_list(&mut v, list.permissions));
    v.into_result()?;
    permissions.map_or(Ok(()), |p| role_permissions(&p))
}

fn role_permissions(permissions: &[String]) -> DomainResult<()> {
    let catalog = &policy().catalog;
    let as_organization = catalog.validate_role_permissions("permissions", permissions, true);
    let as_sub_team = catalog.validate_role_permissions("permissions", permissions, false);
    // A sub-team role may hold less than an organization role, never more.
    if let Ok(held) = &as_sub_team {
        assert_eq!(as_organization.as_ref().ok(), Some(held));
    }
    as_organization.map_err(DomainError::InvalidArgument)?;
    as_sub_team
        .map(|_| ())
        .map_err(DomainError::InvalidArgument)
}

/// A metadata Struct alone, as every metadata field of every request is checked.
fn metadata(s: prost_types::Struct) -> DomainResult<()> {
    metadata_round_trips("metadata", Some(s.clone()));
    convert::metadata("metadata", Some(s))
        .map(|_| ())
        .map_err(|v| DomainError::InvalidArgument(vec![v]))
}

#[cfg(test)]
mod tests {
    //! Replays the committed corpus of every fuzz target through the target's own body.

    use std::path::PathBuf;

    use super::*;

    fn corpus(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join("corpus")
            .join(target)
    }

    /// Runs every file of the target's corpus; a missing or empty corpus fails, so a corpus
    /// that was lost or never committed cannot pass as a clean run.
    fn replay(target: &str) {
        let run = TARGETS
            .iter()
            .find(|(name, _)| *name == target)
            .map(|(_, run)| *run)
            .unwrap();
        let dir = corpus(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "corpus {} is empty", dir.display());
        for path in &files {
            let data = std::fs::read(path).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{target} fails on {}: {message}", path.display());
            }
        }
    }

    #[test]
    fn page_token_corpus_replays() {
        replay("page_token");
    }

    #[test]
    fn request_validation_corpus_replays() {
        replay("request_validation");
    }

    #[test]
    fn every_target_has_a_fuzz_target_file() {
        for (name, _) in TARGETS {
            let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/fuzz_targets")
                .join(format!("{name}.rs"));
            assert!(file.is_file(), "{} missing", file.display());
        }
    }
}
