//! Keyset pagination: page sizes and opaque page tokens. A token names the list that handed it
//! out, so a ListEvents token given to ListUsers is INVALID_ARGUMENT on `page_token` rather than
//! a silent jump to some other position.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::errors::{DomainError, DomainResult, FieldViolation, Violations};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The lists that hand out page tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagedList {
    Users,
    Organizations,
    Teams,
    Memberships,
    UserMemberships,
    Events,
    Roles,
    Attributes,
    ApiKeys,
}

impl PagedList {
    const ALL: [PagedList; 9] = [
        PagedList::Users,
        PagedList::Organizations,
        PagedList::Teams,
        PagedList::Memberships,
        PagedList::UserMemberships,
        PagedList::Events,
        PagedList::Roles,
        PagedList::Attributes,
        PagedList::ApiKeys,
    ];

    /// The list's name inside its tokens.
    fn tag(self) -> &'static str {
        match self {
            PagedList::Users => "users",
            PagedList::Organizations => "organizations",
            PagedList::Teams => "teams",
            PagedList::Memberships => "memberships",
            PagedList::UserMemberships => "user-memberships",
            PagedList::Events => "events",
            PagedList::Roles => "roles",
            PagedList::Attributes => "attributes",
            PagedList::ApiKeys => "api-keys",
        }
    }

    fn from_tag(tag: &str) -> Option<PagedList> {
        PagedList::ALL.into_iter().find(|l| l.tag() == tag)
    }

    fn other_list(self, token_list: PagedList) -> DomainError {
        DomainError::invalid(
            "page_token",
            format!(
                "is a page token of the {} list, not of the {} list",
                token_list.tag(),
                self.tag()
            ),
        )
    }
}

fn page_size(page_size: i32) -> Result<u64, FieldViolation> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n > 0 && (n as u64) <= MAX_PAGE_SIZE => Ok(n as u64),
        _ => Err(FieldViolation::new(
            "page_size",
            format!("must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"),
        )),
    }
}

fn not_a_token() -> FieldViolation {
    FieldViolation::new("page_token", "is not a token this service returned")
}

/// Splits a token into its list and key: base64 of `<prefix><list>:<key>`.
fn decode<'a>(raw: &'a str, prefix: &str) -> Option<(PagedList, &'a str)> {
    let (tag, key) = raw.strip_prefix(prefix)?.split_once(':')?;
    Some((PagedList::from_tag(tag)?, key))
}

fn encode(prefix: &str, list: PagedList, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}{}:{key}", list.tag()))
}

fn decoded_text(token: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()
}

const TOKEN_PREFIX: &str = "k2:";
const KEYED_PREFIX: &str = "s2:";

/// Where a list keyed by ids or sequences resumes: after `after`, in `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub list: PagedList,
    pub after: i64,
}

/// A page of a list keyed by ids or sequences, as a request asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageRequest {
    pub size: u64,
    /// None: from the beginning.
    cursor: Option<PageCursor>,
}

/// Page requests among a request's other fields.
impl Violations {
    /// Records a page request's violations; the default page stands in until `into_result`.
    pub fn page(&mut self, result: Result<PageRequest, Vec<FieldViolation>>) -> PageRequest {
        result.unwrap_or_else(|violations| {
            self.extend(violations);
            PageRequest::default()
        })
    }
}

impl PageRequest {
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, Vec<FieldViolation>> {
        let size = self::page_size(page_size);
        let cursor = if page_token.is_empty() {
            Ok(None)
        } else {
            decode_cursor(page_token).map(Some).ok_or_else(not_a_token)
        };
        match (size, cursor) {
            (Ok(size), Ok(cursor)) => Ok(Self { size, cursor }),
            (size, cursor) => Err([size.err(), cursor.err()].into_iter().flatten().collect()),
        }
    }

    /// This request as a page of `list`; a token that another list handed out is refused.
    pub fn of(self, list: PagedList) -> DomainResult<ListPage> {
        match self.cursor {
            Some(cursor) if cursor.list != list => Err(list.other_list(cursor.list)),
            cursor => Ok(ListPage {
                list,
                after: cursor.map_or(0, |c| c.after),
                size: self.size,
            }),
        }
    }
}

fn decode_cursor(token: &str) -> Option<PageCursor> {
    let text = decoded_text(token)?;
    let (list, key) = decode(&text, TOKEN_PREFIX)?;
    let after: i64 = key.parse().ok()?;
    (after > 0).then_some(PageCursor { list, after })
}

pub fn encode_token(cursor: PageCursor) -> String {
    encode(TOKEN_PREFIX, cursor.list, &cursor.after.to_string())
}

/// A page request bound to the list it pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPage {
    list: PagedList,
    /// Items strictly after this key (ids and sequences are positive; 0 starts at the beginning).
    pub after: i64,
    pub size: u64,
}

impl ListPage {
    /// How many rows a keyset query fetches: one more than the page, to learn whether another
    /// page exists.
    pub fn fetch(&self) -> u64 {
        self.size + 1
    }

    /// Cuts the extra row `fetch` asked for and names where the next page starts.
    pub fn cut<R, T>(
        &self,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> i64,
        map: impl FnMut(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as u64 > self.size;
        rows.truncate(self.size as usize);
        let next_after = if more {
            rows.last().map(|r| PageCursor {
                list: self.list,
                after: key(r),
            })
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_after,
        }
    }

    /// Like `cut`, for conversions that can fail.
    pub fn try_cut<R, T>(
        &self,
        rows: Vec<R>,
        key: impl Fn(&R) -> i64,
        map: impl FnMut(R) -> DomainResult<T>,
    ) -> DomainResult<Page<T>> {
        let page = self.cut(rows, key, map);
        Ok(Page {
            items: page.items.into_iter().collect::<DomainResult<Vec<T>>>()?,
            next_after: page.next_after,
        })
    }
}

/// One page of a list and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<PageCursor>,
}

/// Where a list keyed by strings (role ids, attribute ids) resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedCursor {
    pub list: PagedList,
    pub after: String,
}

/// A page of a list keyed by strings, as a request asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyedPageRequest {
    pub size: u64,
    /// None: from the beginning.
    cursor: Option<KeyedCursor>,
}

impl KeyedPageRequest {
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, Vec<FieldViolation>> {
        let size = self::page_size(page_size);
        let cursor = if page_token.is_empty() {
            Ok(None)
        } else {
            decode_keyed_cursor(page_token)
                .map(Some)
                .ok_or_else(not_a_token)
        };
        match (size, cursor) {
            (Ok(size), Ok(cursor)) => Ok(Self { size, cursor }),
            (size, cursor) => Err([size.err(), cursor.err()].into_iter().flatten().collect()),
        }
    }

    /// This request as a page of `list`; a token that another list handed out is refused.
    pub fn of(&self, list: PagedList) -> DomainResult<KeyedListPage> {
        match &self.cursor {
            Some(cursor) if cursor.list != list => Err(list.other_list(cursor.list)),
            cursor => Ok(KeyedListPage {
                list,
                after: cursor.as_ref().map(|c| c.after.clone()).unwrap_or_default(),
                size: self.size,
            }),
        }
    }
}

fn decode_keyed_cursor(token: &str) -> Option<KeyedCursor> {
    let text = decoded_text(token)?;
    let (list, key) = decode(&text, KEYED_PREFIX)?;
    (!key.is_empty()).then(|| KeyedCursor {
        list,
        after: key.to_string(),
    })
}

pub fn encode_keyed_token(cursor: KeyedCursor) -> String {
    encode(KEYED_PREFIX, cursor.list, &cursor.after)
}

/// A keyed page request bound to the list it pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedListPage {
    list: PagedList,
    /// Items strictly after this key; empty starts at the beginning.
    pub after: String,
    pub size: u64,
}

impl KeyedListPage {
    /// One more than the page, to learn whether another page exists.
    pub fn fetch(&self) -> u64 {
        self.size + 1
    }

    /// Cuts the extra row `fetch` asked for and names where the next page starts.
    pub fn cut<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> KeyedPage<T> {
        let more = items.len() as u64 > self.size;
        items.truncate(self.size as usize);
        let next_after = if more {
            items.last().map(|item| KeyedCursor {
                list: self.list,
                after: key(item),
            })
        } else {
            None
        };
        KeyedPage { items, next_after }
    }
}

/// One page of a list keyed by strings and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedPage<T> {
    pub items: Vec<T>,
    pub next_after: Option<KeyedCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_token_violation(result: DomainResult<impl std::fmt::Debug>) -> bool {
        match result {
            Err(DomainError::InvalidArgument(v)) => v.len() == 1 && v[0].field == "page_token",
            other => panic!("expected INVALID_ARGUMENT page_token, got {other:?}"),
        }
    }

    #[test]
    fn tokens_round_trip() {
        let token = encode_token(PageCursor {
            list: PagedList::Users,
            after: 42,
        });
        let page = PageRequest::parse(10, &token)
            .unwrap()
            .of(PagedList::Users)
            .unwrap();
        assert_eq!((page.after, page.size, page.fetch()), (42, 10, 11));
        let first = PageRequest::parse(0, "").unwrap().of(PagedList::Events);
        assert_eq!(first.unwrap().after, 0);
    }

    #[test]
    fn a_token_pages_only_its_own_list() {
        for (i, issued) in PagedList::ALL.into_iter().enumerate() {
            let numeric = encode_token(PageCursor {
                list: issued,
                after: 7,
            });
            let keyed = encode_keyed_token(KeyedCursor {
                list: issued,
                after: "role_ab".into(),
            });
            for (j, used) in PagedList::ALL.into_iter().enumerate() {
                let page = PageRequest::parse(0, &numeric).unwrap().of(used);
                let keyed_page = KeyedPageRequest::parse(0, &keyed).unwrap().of(used);
                if i == j {
                    assert_eq!(page.unwrap().after, 7);
                    assert_eq!(keyed_page.unwrap().after, "role_ab");
                } else {
                    assert!(page_token_violation(page), "{issued:?} in {used:?}");
                    assert!(page_token_violation(keyed_page), "{issued:?} in {used:?}");
                }
            }
        }
    }

    #[test]
    fn keyed_tokens_round_trip() {
        let token = encode_keyed_token(KeyedCursor {
            list: PagedList::Roles,
            after: "role_ab".into(),
        });
        let req = KeyedPageRequest::parse(0, &token).unwrap();
        assert_eq!(req.size, DEFAULT_PAGE_SIZE);
        assert_eq!(req.of(PagedList::Roles).unwrap().after, "role_ab");
        assert_eq!(
            KeyedPageRequest::parse(0, "")
                .unwrap()
                .of(PagedList::Attributes)
                .unwrap()
                .after,
            ""
        );
        // Numeric and keyed tokens are not interchangeable.
        let numeric = encode_token(PageCursor {
            list: PagedList::Roles,
            after: 3,
        });
        assert!(KeyedPageRequest::parse(0, &numeric).is_err());
        assert!(PageRequest::parse(0, &token).is_err());
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
        for text in [
            "k2:users:-3",
            "k2:users:0",
            "k2:users:",
            "k2:nobody:3",
            "k2:3",
            // The untagged tokens of earlier versions.
            "k1:3",
            "s1:role_ab",
        ] {
            let token = URL_SAFE_NO_PAD.encode(text);
            assert!(PageRequest::parse(5, &token).is_err(), "{text:?}");
            assert!(KeyedPageRequest::parse(5, &token).is_err(), "{text:?}");
        }
    }

    #[test]
    fn cuts_keep_the_page_and_name_the_next() {
        let page = PageRequest::parse(2, "")
            .unwrap()
            .of(PagedList::Teams)
            .unwrap();
        let cut = page.cut(vec![4, 5, 6], |r| *r, |r| r * 10);
        assert_eq!(cut.items, [40, 50]);
        assert_eq!(
            cut.next_after,
            Some(PageCursor {
                list: PagedList::Teams,
                after: 5
            })
        );
        assert_eq!(page.cut(vec![4, 5], |r| *r, |r| r).next_after, None);
        let keyed = KeyedPageRequest::parse(1, "")
            .unwrap()
            .of(PagedList::Roles)
            .unwrap();
        let cut = keyed.cut(vec!["a", "b"], |s| s.to_string());
        assert_eq!(cut.items, ["a"]);
        assert_eq!(cut.next_after.map(|c| c.after), Some("a".to_string()));
    }
}
