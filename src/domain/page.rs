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
    PermittedUsers,
    PermittedTeams,
    Invitations,
}

impl PagedList {
    /// Every list, for tests and fuzzing that go through them all.
    pub const ALL: [PagedList; 12] = [
        PagedList::Users,
        PagedList::Organizations,
        PagedList::Teams,
        PagedList::Memberships,
        PagedList::UserMemberships,
        PagedList::Events,
        PagedList::Roles,
        PagedList::Attributes,
        PagedList::ApiKeys,
        PagedList::PermittedUsers,
        PagedList::PermittedTeams,
        PagedList::Invitations,
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
            PagedList::PermittedUsers => "permitted-users",
            PagedList::PermittedTeams => "permitted-teams",
            PagedList::Invitations => "invitations",
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
    // Only the spelling `encode_token` writes (no `+`, no leading zeros): a token is accepted
    // exactly when this service could have issued it.
    (after > 0 && after.to_string() == key).then_some(PageCursor { list, after })
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

/// Properties of page tokens over generated lists, positions and damaged tokens.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn list() -> impl Strategy<Value = PagedList> {
        prop::sample::select(PagedList::ALL.to_vec())
    }

    fn size() -> impl Strategy<Value = i32> {
        0..=MAX_PAGE_SIZE as i32
    }

    fn expected_size(size: i32) -> u64 {
        if size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            size as u64
        }
    }

    /// The only refusal a token can earn: INVALID_ARGUMENT naming `page_token`, alone.
    fn refused_on_page_token<T: std::fmt::Debug>(result: DomainResult<T>) {
        match result {
            Err(DomainError::InvalidArgument(v)) => {
                let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
                assert_eq!(fields, ["page_token"]);
            }
            other => panic!("expected INVALID_ARGUMENT page_token, got {other:?}"),
        }
    }

    /// Any text as a token of either kind: refused on `page_token`, or accepted because it is
    /// byte for byte the token the service issues for the position it names (empty: the start).
    fn token_verdict(token: &str) {
        match PageRequest::parse(5, token) {
            Ok(request) => match request.cursor {
                None => assert!(token.is_empty(), "{token:?} accepted as no token"),
                Some(cursor) => {
                    assert!(cursor.after > 0);
                    assert_eq!(
                        encode_token(cursor),
                        token,
                        "a token the service never issued"
                    );
                }
            },
            Err(v) => refused_on_page_token::<()>(Err(DomainError::InvalidArgument(v))),
        }
        match KeyedPageRequest::parse(5, token) {
            Ok(request) => match request.cursor {
                None => assert!(token.is_empty(), "{token:?} accepted as no token"),
                Some(cursor) => {
                    assert!(!cursor.after.is_empty());
                    assert_eq!(
                        encode_keyed_token(cursor),
                        token,
                        "a token the service never issued"
                    );
                }
            },
            Err(v) => refused_on_page_token::<()>(Err(DomainError::InvalidArgument(v))),
        }
    }

    #[derive(Debug, Clone)]
    enum Damage {
        Truncate(usize),
        Replace(usize, char),
        Insert(usize, char),
        Delete(usize),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        // Mostly characters of the token alphabet, so a damaged token still decodes as base64
        // and reaches the checks past it; sometimes anything.
        let c = prop_oneof![
            4 => prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    .chars()
                    .collect::<Vec<_>>()
            ),
            1 => any::<char>(),
        ];
        prop_oneof![
            any::<usize>().prop_map(Damage::Truncate),
            (any::<usize>(), c.clone()).prop_map(|(i, c)| Damage::Replace(i, c)),
            (any::<usize>(), c).prop_map(|(i, c)| Damage::Insert(i, c)),
            any::<usize>().prop_map(Damage::Delete),
        ]
    }

    fn apply(token: &str, damage: &Damage) -> String {
        let mut chars: Vec<char> = token.chars().collect();
        let len = chars.len();
        match *damage {
            Damage::Truncate(n) => chars.truncate(n % (len + 1)),
            Damage::Replace(i, c) if len > 0 => chars[i % len] = c,
            Damage::Insert(i, c) => chars.insert(i % (len + 1), c),
            Damage::Delete(i) if len > 0 => {
                chars.remove(i % len);
            }
            _ => {}
        }
        chars.into_iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn numeric_tokens_round_trip(list in list(), after in 1..=i64::MAX, size in size()) {
            let token = encode_token(PageCursor { list, after });
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            let page = PageRequest::parse(size, &token).unwrap().of(list).unwrap();
            prop_assert_eq!(page, ListPage { list, after, size: expected_size(size) });
        }

        #[test]
        fn keyed_tokens_round_trip(list in list(), after in "(?s).{1,40}", size in size()) {
            let token = encode_keyed_token(KeyedCursor { list, after: after.clone() });
            let page = KeyedPageRequest::parse(size, &token).unwrap().of(list).unwrap();
            prop_assert_eq!(page, KeyedListPage { list, after, size: expected_size(size) });
        }

        #[test]
        fn a_token_of_one_list_is_refused_by_another(
            issued in list(),
            used in list(),
            after in 1..=i64::MAX,
            key in "(?s).{1,40}",
        ) {
            prop_assume!(issued != used);
            let numeric = encode_token(PageCursor { list: issued, after });
            refused_on_page_token(PageRequest::parse(0, &numeric).unwrap().of(used));
            let keyed = encode_keyed_token(KeyedCursor { list: issued, after: key });
            refused_on_page_token(KeyedPageRequest::parse(0, &keyed).unwrap().of(used));
        }

        #[test]
        fn numeric_and_keyed_tokens_are_not_interchangeable(
            list in list(),
            after in 1..=i64::MAX,
            key in "(?s).{1,40}",
        ) {
            let numeric = encode_token(PageCursor { list, after });
            prop_assert!(KeyedPageRequest::parse(0, &numeric).is_err());
            let keyed = encode_keyed_token(KeyedCursor { list, after: key });
            prop_assert!(PageRequest::parse(0, &keyed).is_err());
        }

        #[test]
        fn damaged_tokens_are_refused_unless_they_are_another_issued_token(
            list in list(),
            after in prop_oneof![1..=1000i64, 1..=i64::MAX],
            key in "(?s).{1,20}",
            damages in prop::collection::vec(damage(), 1..4),
        ) {
            for issued in [
                encode_token(PageCursor { list, after }),
                encode_keyed_token(KeyedCursor { list, after: key.clone() }),
            ] {
                let damaged = damages.iter().fold(issued, |t, d| apply(&t, d));
                token_verdict(&damaged);
            }
        }

        #[test]
        fn any_text_is_refused_or_an_issued_token(text in any::<String>()) {
            token_verdict(&text);
            // The same text behind each prefix, so the checks past base64 see it too.
            for prefix in [TOKEN_PREFIX, KEYED_PREFIX] {
                token_verdict(&URL_SAFE_NO_PAD.encode(format!("{prefix}{text}")));
            }
        }

        /// Texts shaped like tokens, so most get past base64 and the prefix to the key checks.
        #[test]
        fn near_tokens_are_refused_or_an_issued_token(
            prefix in prop::sample::select(vec![TOKEN_PREFIX, KEYED_PREFIX, "k1:", ""]),
            tag in prop_oneof![list().prop_map(|l| l.tag().to_string()), "[a-z:-]{0,6}"],
            key in "[-+0-9 a:]{0,6}",
        ) {
            token_verdict(&URL_SAFE_NO_PAD.encode(format!("{prefix}{tag}:{key}")));
        }

        #[test]
        fn page_sizes_outside_the_bounds_are_refused(size in any::<i32>()) {
            let in_bounds = (0..=MAX_PAGE_SIZE as i32).contains(&size);
            match PageRequest::parse(size, "") {
                Ok(request) => {
                    prop_assert!(in_bounds);
                    prop_assert_eq!(request.size, expected_size(size));
                }
                Err(v) => {
                    prop_assert!(!in_bounds);
                    prop_assert_eq!(v.len(), 1);
                    prop_assert_eq!(v[0].field.as_str(), "page_size");
                }
            }
        }
    }

    #[test]
    fn only_the_issued_spelling_of_a_position_is_accepted() {
        for text in [
            "k2:users:+15",
            "k2:users:015",
            "k2:users:15 ",
            "k2:users: 15",
        ] {
            token_verdict(&URL_SAFE_NO_PAD.encode(text));
            assert!(
                PageRequest::parse(5, &URL_SAFE_NO_PAD.encode(text)).is_err(),
                "{text}"
            );
        }
    }
}
