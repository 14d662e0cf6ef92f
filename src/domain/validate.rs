//! Field checks shared by every request. Each returns the normalised value or the violation
//! naming the field.

use serde_json::Value;

use super::errors::FieldViolation;
use super::model::JsonObject;

pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_BIO_CHARS: usize = 5000;
pub const MAX_METADATA_BYTES: usize = 8192;
/// The longest address SMTP can carry (RFC 5321's 256-octet path minus the brackets).
const MAX_EMAIL_CHARS: usize = 254;
const MAX_USERNAME_CHARS: usize = 64;
const MAX_SLUG_CHARS: usize = 100;

fn violation(field: &str, description: impl Into<String>) -> FieldViolation {
    FieldViolation::new(field, description)
}

/// A required name: trimmed, 1..=max characters, no control characters.
pub fn name(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(violation(field, "must not be empty"));
    }
    optional_text(field, trimmed, max)
}

/// Free text that may be empty, at most `max` characters, no control characters but newlines.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    let count = value.chars().count();
    if count > max {
        return Err(violation(
            field,
            format!("must be at most {max} characters (got {count})"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(violation(field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// An email address, stored lower-case.
pub fn email(field: &str, value: &str) -> Result<String, FieldViolation> {
    let value = value.trim();
    if value.is_empty() {
        return Err(violation(field, "must not be empty"));
    }
    if value.chars().count() > MAX_EMAIL_CHARS {
        return Err(violation(
            field,
            format!("must be at most {MAX_EMAIL_CHARS} characters"),
        ));
    }
    let malformed = || violation(field, format!("{value:?} is not a valid email address"));
    let (local, domain) = value.rsplit_once('@').ok_or_else(malformed)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>[]\\,;:\"".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.');
    if !local_ok || email_domain(domain).is_none() {
        return Err(malformed());
    }
    Ok(value.to_ascii_lowercase())
}

/// A DNS domain name such as `example.com`, lower-cased; `None` when malformed.
fn email_domain(value: &str) -> Option<String> {
    let labels: Vec<&str> = value.split('.').collect();
    let ok = value.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    ok.then(|| value.to_ascii_lowercase())
}

/// An email domain for auto-accept; empty means none.
pub fn optional_domain(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    let value = value.trim().trim_start_matches('@');
    if value.is_empty() {
        return Ok(None);
    }
    email_domain(value)
        .map(Some)
        .ok_or_else(|| violation(field, format!("{value:?} is not a valid email domain")))
}

/// Whether `email` (already lower-case) is in `domain` (lower-case).
pub fn email_in_domain(email: &str, domain: &str) -> bool {
    email
        .rsplit_once('@')
        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
}

/// A username: 1..=64 of letters, digits, `.`, `_`, `-`; empty means none.
pub fn optional_username(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_USERNAME_CHARS {
        return Err(violation(
            field,
            format!("must be at most {MAX_USERNAME_CHARS} characters"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(violation(
            field,
            "may contain only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(Some(value.to_string()))
}

/// A slug: lower-case letters, digits and single hyphens, 1..=100 characters.
pub fn slug(field: &str, value: &str) -> Result<String, FieldViolation> {
    let ok = !value.is_empty()
        && value.len() <= MAX_SLUG_CHARS
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if ok {
        Ok(value.to_string())
    } else {
        Err(violation(
            field,
            format!(
                "{value:?} must be 1 to {MAX_SLUG_CHARS} lower-case letters, digits and single hyphens"
            ),
        ))
    }
}

/// The slug a name gives when the request has none (`"Acme Inc."` → `"acme-inc"`).
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= MAX_SLUG_CHARS {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

/// An http(s) URL or empty.
pub fn optional_url(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Ok(String::new());
    }
    if value.chars().count() > MAX_URL_CHARS {
        return Err(violation(
            field,
            format!("must be at most {MAX_URL_CHARS} characters"),
        ));
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(value.to_string())
        }
        _ => Err(violation(
            field,
            format!("{value:?} is not an http or https URL"),
        )),
    }
}

/// A JSON object small enough to store.
pub fn metadata(field: &str, value: JsonObject) -> Result<JsonObject, FieldViolation> {
    // Deeper documents break the clients that read them back (protobuf decoders stop at
    // depth 100, some earlier, and each level of a Struct is several message levels).
    let depth = 1 + value.values().map(json_depth).max().unwrap_or(0);
    if depth > MAX_METADATA_DEPTH {
        return Err(violation(
            field,
            format!(
                "must nest at most {MAX_METADATA_DEPTH} levels of objects and lists (got {depth})"
            ),
        ));
    }
    let size = Value::Object(value.clone()).to_string().len();
    if size > MAX_METADATA_BYTES {
        return Err(violation(
            field,
            format!("must be at most {MAX_METADATA_BYTES} bytes of JSON (got {size})"),
        ));
    }
    Ok(value)
}

pub const MAX_METADATA_DEPTH: usize = 10;

/// Levels of objects and lists in a JSON value (a scalar is 0).
fn json_depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub const MAX_ROLE_NAME_CHARS: usize = 100;
pub const MAX_ROLE_DESCRIPTION_CHARS: usize = 1000;
const MAX_ROLE_KEY_CHARS: usize = 64;

/// A role color: `#RGB` or `#RRGGBB`; empty means none.
pub fn optional_color(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    let hex = value.strip_prefix('#').unwrap_or("");
    if (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(Some(value.to_string()))
    } else {
        Err(violation(
            field,
            format!("{value:?} must be a hex color like #RGB or #RRGGBB"),
        ))
    }
}

/// A custom role key: 1..=64 of letters, digits, `:`, `_`, `-`, `.`; system ids, keys and
/// aliases are reserved so that a reference always means one role.
pub fn role_key(field: &str, value: &str) -> Result<String, FieldViolation> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_ROLE_KEY_CHARS
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_-.".contains(c));
    if !ok {
        return Err(violation(
            field,
            format!(
                "{value:?} must be 1 to {MAX_ROLE_KEY_CHARS} letters, digits, ':', '_', '-' or '.'"
            ),
        ));
    }
    if super::roles::resolve_system_reference(value).is_some() {
        return Err(violation(
            field,
            format!("{value:?} is reserved for a system role"),
        ));
    }
    Ok(value.to_string())
}

/// A reference to a resource by id or key (role ids, attribute ids, key ids): trimmed,
/// non-empty, at most `max` characters, printable.
pub fn reference(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    let value = value.trim();
    if value.is_empty() {
        return Err(violation(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(violation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(violation(field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// A positive resource id.
pub fn id(field: &str, value: i64) -> Result<i64, FieldViolation> {
    if value > 0 {
        Ok(value)
    } else {
        Err(violation(field, "is required (a positive id)"))
    }
}

/// The most entries one batch write (an import) takes.
pub const MAX_BATCH_ENTRIES: usize = 1_000;

/// A batch of `len` entries named `list` holds 1 to `MAX_BATCH_ENTRIES`.
pub fn batch_size(list: &str, len: usize) -> Option<FieldViolation> {
    (!(1..=MAX_BATCH_ENTRIES).contains(&len)).then(|| {
        violation(
            list,
            format!("must hold 1 to {MAX_BATCH_ENTRIES} entries, not {len}"),
        )
    })
}

/// A violation `list[j].field` for every entry `j` whose value an earlier entry has already
/// (`None`: the entry has none): a batch creates each value once.
pub fn repeated<T: Eq + std::hash::Hash>(
    list: &str,
    field: &str,
    values: impl IntoIterator<Item = Option<T>>,
) -> Vec<FieldViolation> {
    let mut first: std::collections::HashMap<T, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (j, value) in values.into_iter().enumerate() {
        let Some(value) = value else { continue };
        if let Some(i) = first.get(&value) {
            out.push(FieldViolation::new(
                format!("{list}[{j}].{field}"),
                format!("repeats {list}[{i}].{field}"),
            ));
        } else {
            first.insert(value, j);
        }
    }
    out
}

#[cfg(test)]
mod tests {

    fn nested(levels: usize) -> JsonObject {
        let mut value = Value::from(1);
        for _ in 1..levels {
            let mut inner = serde_json::Map::new();
            inner.insert("k".into(), value);
            value = Value::Object(inner);
        }
        let mut top = serde_json::Map::new();
        top.insert("k".into(), value);
        top
    }

    #[test]
    fn metadata_nests_at_most_ten_levels() {
        assert!(metadata("public_metadata", nested(MAX_METADATA_DEPTH)).is_ok());
        let err = metadata("public_metadata", nested(MAX_METADATA_DEPTH + 1)).unwrap_err();
        assert_eq!(err.field, "public_metadata");
        assert!(metadata("m", nested(40)).is_err());
    }

    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@exa_mple.com",
            "a@b@c.com",
        ] {
            assert!(email("email", bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn names() {
        assert_eq!(name("name", "  Acme  ", 255).unwrap(), "Acme");
        assert!(name("name", "   ", 255).is_err());
        assert!(name("name", &"x".repeat(256), 255).is_err());
        assert!(name("name", "bad\u{0}name", 255).is_err());
    }

    #[test]
    fn slugs() {
        assert!(slug("slug", "acme-inc").is_ok());
        for bad in ["", "Acme", "acme--inc", "-acme", "acme_inc"] {
            assert!(slug("slug", bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(slugify("Acme Inc."), "acme-inc");
        assert_eq!(slugify("  Ünïcode Team 2 "), "n-code-team-2");
    }

    #[test]
    fn domains() {
        assert_eq!(
            optional_domain("d", "@Acme.com").unwrap().as_deref(),
            Some("acme.com")
        );
        assert_eq!(optional_domain("d", "").unwrap(), None);
        assert!(optional_domain("d", "acme").is_err());
        assert!(email_in_domain("ada@acme.com", "ACME.com"));
        assert!(!email_in_domain("ada@notacme.com", "acme.com"));
    }

    #[test]
    fn colors_and_keys() {
        assert_eq!(
            optional_color("c", "#fA0").unwrap().as_deref(),
            Some("#fA0")
        );
        assert!(optional_color("c", "#abcdef").is_ok());
        assert_eq!(optional_color("c", "").unwrap(), None);
        for bad in ["fff", "#ffff", "#ggg", "#abcdefa"] {
            assert!(
                optional_color("c", bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(role_key("key", "org:reviewer").is_ok());
        assert!(role_key("key", "admin").is_err());
        assert!(role_key("key", "org:admin").is_err());
        assert!(role_key("key", "has space").is_err());
    }

    #[test]
    fn urls_and_ids() {
        assert!(optional_url("u", "https://img.example.com/a.png").is_ok());
        assert!(optional_url("u", "ftp://x").is_err());
        assert!(optional_url("u", "https://").is_err());
        assert!(id("team_id", 0).is_err());
        assert!(id("team_id", 3).is_ok());
    }

    #[test]
    fn a_batch_names_each_repeated_entry_and_holds_1_to_1000() {
        let fields =
            |v: Vec<FieldViolation>| -> Vec<String> { v.into_iter().map(|v| v.field).collect() };
        let emails = [
            Some("a"),
            Some("b"),
            None,
            Some("a"),
            None,
            Some("b"),
            Some("a"),
        ];
        assert_eq!(
            fields(repeated("users", "email", emails)),
            ["users[3].email", "users[5].email", "users[6].email"]
        );
        assert!(repeated("users", "email", [None::<&str>, None]).is_empty());
        assert!(batch_size("users", 0).is_some());
        assert!(batch_size("users", 1).is_none());
        assert!(batch_size("users", MAX_BATCH_ENTRIES).is_none());
        assert_eq!(
            batch_size("memberships", MAX_BATCH_ENTRIES + 1).map(|v| v.field),
            Some("memberships".to_string())
        );
    }
}
