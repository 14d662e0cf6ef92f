//! Keyset pagination: page sizes and opaque page tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::errors::FieldViolation;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Where a list resumes and how much it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Items strictly after this key (ids and sequences are positive).
    pub after: i64,
    pub size: u64,
}

impl PageRequest {
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > 0 && (n as u64) <= MAX_PAGE_SIZE => n as u64,
            _ => {
                violations.push(FieldViolation::new(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"),
                ));
                0
            }
        };
        let after = match decode_token(page_token) {
            Some(after) => after,
            None => {
                violations.push(FieldViolation::new(
                    "page_token",
                    "is not a token this service returned",
                ));
                0
            }
        };
        if violations.is_empty() {
            Ok(Self { after, size })
        } else {
            Err(violations)
        }
    }
}

/// Where a list keyed by strings (role ids) resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedPageRequest {
    /// Items strictly after this key; empty starts at the beginning.
    pub after: String,
    pub size: u64,
}

impl KeyedPageRequest {
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, Vec<FieldViolation>> {
        let numeric = PageRequest::parse(page_size, "");
        let after = if page_token.is_empty() {
            Some(String::new())
        } else {
            URL_SAFE_NO_PAD
                .decode(page_token)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|text| text.strip_prefix(KEYED_PREFIX).map(str::to_string))
                .filter(|after| !after.is_empty())
        };
        match (numeric, after) {
            (Ok(page), Some(after)) => Ok(Self {
                after,
                size: page.size,
            }),
            (numeric, after) => {
                let mut violations = numeric.err().unwrap_or_default();
                if after.is_none() {
                    violations.push(FieldViolation::new(
                        "page_token",
                        "is not a token this service returned",
                    ));
                }
                Err(violations)
            }
        }
    }
}

const KEYED_PREFIX: &str = "s1:";

pub fn encode_keyed_token(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{KEYED_PREFIX}{after}"))
}

const TOKEN_PREFIX: &str = "k1:";

pub fn encode_token(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{after}"))
}

/// The empty token starts at the beginning.
fn decode_token(token: &str) -> Option<i64> {
    if token.is_empty() {
        return Some(0);
    }
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let after: i64 = text.strip_prefix(TOKEN_PREFIX)?.parse().ok()?;
    (after > 0).then_some(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let req = PageRequest::parse(10, &encode_token(42)).unwrap();
        assert_eq!(
            req,
            PageRequest {
                after: 42,
                size: 10
            }
        );
    }

    #[test]
    fn keyed_tokens_round_trip() {
        let req = KeyedPageRequest::parse(0, &encode_keyed_token("role_ab")).unwrap();
        assert_eq!(
            req,
            KeyedPageRequest {
                after: "role_ab".into(),
                size: DEFAULT_PAGE_SIZE
            }
        );
        assert!(KeyedPageRequest::parse(0, &encode_token(3)).is_err());
        assert_eq!(KeyedPageRequest::parse(-2, "x").unwrap_err().len(), 2);
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(PageRequest::parse(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(1000, "").unwrap().size, 1000);
        let errs = PageRequest::parse(1001, "garbage!").unwrap_err();
        let fields: Vec<_> = errs.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["page_size", "page_token"]);
        assert!(PageRequest::parse(-1, "").is_err());
        assert!(PageRequest::parse(5, &URL_SAFE_NO_PAD.encode("k1:-3")).is_err());
    }
}
