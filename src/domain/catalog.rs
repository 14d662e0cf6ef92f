//! The permission catalog (DESIGN.md section 2, "Permissions"), validation of custom roles'
//! permission lists, and wildcard-aware permission checks.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::domain::errors::FieldViolation;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub permission: String,
    pub resource: String,
    pub action: String,
    pub organization_only: bool,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct PermissionCatalog {
    entries: Vec<CatalogEntry>,
    index: HashMap<String, usize>,
    /// Kept so wildcard validation (`resource.*`, `*.action`) needs no scan of the entries.
    resources: BTreeSet<String>,
    actions: BTreeSet<String>,
}

/// (permission, organization_only, description), in the order of DESIGN.md so that
/// `ListPermissionCatalog` is stable and reads like the design.
const DEFAULT_ENTRIES: &[(&str, bool, &str)] = &[
    // Team and organization scope: exactly the enum of seed 001 (cal.com's team role API).
    ("role.create", false, "Create roles"),
    ("role.read", false, "View roles"),
    ("role.update", false, "Update roles"),
    ("role.delete", false, "Delete roles"),
    ("eventType.create", false, "Create event types"),
    ("eventType.read", false, "View event types"),
    ("eventType.update", false, "Update event types"),
    ("eventType.delete", false, "Delete event types"),
    ("team.read", false, "View team details"),
    ("team.update", false, "Update team settings"),
    ("team.delete", false, "Delete the team"),
    ("team.invite", false, "Invite team members"),
    ("team.remove", false, "Remove team members"),
    ("team.listMembers", false, "List team members"),
    (
        "team.listMembersPrivate",
        false,
        "List team members of a private team",
    ),
    (
        "team.changeMemberRole",
        false,
        "Change the role of team members",
    ),
    ("team.impersonate", false, "Impersonate team members"),
    ("booking.read", false, "View bookings"),
    (
        "booking.readTeamBookings",
        false,
        "View the bookings of the team",
    ),
    ("booking.readRecordings", false, "View booking recordings"),
    ("booking.update", false, "Update bookings"),
    (
        "booking.updateTeamBookings",
        false,
        "Update the bookings of the team",
    ),
    (
        "booking.readTeamAuditLogs",
        false,
        "View the booking audit logs of the team",
    ),
    ("insights.read", false, "View insights"),
    ("workflow.create", false, "Create workflows"),
    ("workflow.read", false, "View workflows"),
    ("workflow.update", false, "Update workflows"),
    ("workflow.delete", false, "Delete workflows"),
    ("routingForm.create", false, "Create routing forms"),
    ("routingForm.read", false, "View routing forms"),
    ("routingForm.update", false, "Update routing forms"),
    ("routingForm.delete", false, "Delete routing forms"),
    ("webhook.create", false, "Create webhooks"),
    ("webhook.read", false, "View webhooks"),
    ("webhook.update", false, "Update webhooks"),
    ("webhook.delete", false, "Delete webhooks"),
    ("featureOptIn.read", false, "View feature opt-ins"),
    ("featureOptIn.update", false, "Update feature opt-ins"),
    // Organization scope only.
    ("team.create", true, "Create teams in the organization"),
    ("team.manageBilling", true, "Manage the billing of teams"),
    ("organization.create", true, "Create organizations"),
    ("organization.read", true, "View organization details"),
    ("organization.update", true, "Update organization settings"),
    (
        "organization.listMembers",
        true,
        "List organization members",
    ),
    (
        "organization.listMembersPrivate",
        true,
        "List organization members of a private organization",
    ),
    ("organization.invite", true, "Invite organization members"),
    ("organization.remove", true, "Remove organization members"),
    (
        "organization.changeMemberRole",
        true,
        "Change the role of organization members",
    ),
    (
        "organization.impersonate",
        true,
        "Impersonate organization members",
    ),
    (
        "organization.manageBilling",
        true,
        "Manage the billing of the organization",
    ),
    (
        "organization.attributes.create",
        true,
        "Create organization attributes",
    ),
    (
        "organization.attributes.read",
        true,
        "View organization attributes",
    ),
    (
        "organization.attributes.update",
        true,
        "Update organization attributes",
    ),
    (
        "organization.attributes.delete",
        true,
        "Delete organization attributes",
    ),
    (
        "organization.attributes.editUsers",
        true,
        "Edit the attribute values of members",
    ),
    (
        "booking.readOrgBookings",
        true,
        "View the bookings of the organization",
    ),
    (
        "booking.readOrgAuditLogs",
        true,
        "View the booking audit logs of the organization",
    ),
    (
        "availability.create",
        true,
        "Create availability of members",
    ),
    ("availability.read", true, "View availability of members"),
    (
        "availability.update",
        true,
        "Update availability of members",
    ),
    (
        "availability.delete",
        true,
        "Delete availability of members",
    ),
    (
        "ooo.create",
        true,
        "Create out-of-office entries of members",
    ),
    ("ooo.read", true, "View out-of-office entries of members"),
    (
        "ooo.update",
        true,
        "Update out-of-office entries of members",
    ),
    (
        "ooo.delete",
        true,
        "Delete out-of-office entries of members",
    ),
    ("watchlist.create", true, "Create watchlist entries"),
    ("watchlist.read", true, "View watchlist entries"),
    ("watchlist.update", true, "Update watchlist entries"),
    ("watchlist.delete", true, "Delete watchlist entries"),
];

impl PermissionCatalog {
    /// The default catalog of DESIGN.md section 2 (69 entries).
    pub fn default_catalog() -> Self {
        let entries = DEFAULT_ENTRIES
            .iter()
            .map(|&(permission, organization_only, description)| {
                CatalogEntry::new(permission, organization_only, description)
                    .expect("the default catalog holds only well-formed permissions")
            })
            .collect();
        Self::from_entries(entries).expect("the default catalog has no duplicates")
    }

    /// Reads an operator catalog. The format follows the extension: `.json`, `.toml`,
    /// `.yaml`/`.yml`; the shape is a list of `{permission, organization_only, description}` under
    /// the key `permissions` (see [`parse_catalog_file`] for the accepted subsets).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read permissions file {}: {e}", path.display()))?;
        let format = match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => FileFormat::Json,
            Some("toml") => FileFormat::Toml,
            Some("yaml") | Some("yml") => FileFormat::Yaml,
            _ => {
                return Err(format!(
                    "permissions file {}: unknown format, expected a .json, .toml, .yaml or .yml extension",
                    path.display()
                ));
            }
        };
        parse_catalog_file(&text, format)
            .map_err(|e| format!("permissions file {}: {e}", path.display()))
    }

    /// Builds a catalog, keeping the given order. Each entry's `resource`/`action` must be the
    /// split of its `permission` at the last dot, so callers cannot build an inconsistent index.
    pub fn from_entries(entries: Vec<CatalogEntry>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("the permission catalog is empty".to_string());
        }
        let mut index = HashMap::with_capacity(entries.len());
        let mut resources = BTreeSet::new();
        let mut actions = BTreeSet::new();
        for (i, entry) in entries.iter().enumerate() {
            check_concrete_permission(&entry.permission)?;
            let (resource, action) = split_permission(&entry.permission).ok_or_else(|| {
                format!("{:?} is not a resource.action permission", entry.permission)
            })?;
            if entry.resource != resource || entry.action != action {
                return Err(format!(
                    "{:?}: resource {:?} and action {:?} do not match the permission",
                    entry.permission, entry.resource, entry.action
                ));
            }
            if index.insert(entry.permission.clone(), i).is_some() {
                return Err(format!(
                    "{:?} appears twice in the permission catalog",
                    entry.permission
                ));
            }
            resources.insert(entry.resource.clone());
            actions.insert(entry.action.clone());
        }
        Ok(Self {
            entries,
            index,
            resources,
            actions,
        })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, permission: &str) -> Option<&CatalogEntry> {
        self.index.get(permission).map(|&i| &self.entries[i])
    }

    /// Validates a custom role's permission list.
    ///
    /// Organization roles may hold any entry and the wildcards `resource.*`, `*.action`, `*.*`
    /// (naming a resource/action of the catalog); sub-team roles only team-scope entries. Every
    /// offending position gets its own violation so a client can fix them all in one round.
    pub fn validate_role_permissions(
        &self,
        field: &str,
        permissions: &[String],
        organization_role: bool,
    ) -> Result<BTreeSet<String>, Vec<FieldViolation>> {
        let mut valid = BTreeSet::new();
        let mut violations = Vec::new();
        for (i, p) in permissions.iter().enumerate() {
            match self.check_role_permission(p, organization_role) {
                Ok(()) => {
                    valid.insert(p.clone());
                }
                Err(description) => {
                    violations.push(FieldViolation::new(format!("{field}[{i}]"), description))
                }
            }
        }
        if violations.is_empty() {
            Ok(valid)
        } else {
            Err(violations)
        }
    }

    fn check_role_permission(&self, p: &str, organization_role: bool) -> Result<(), String> {
        if let Some(entry) = self.get(p) {
            return if entry.organization_only && !organization_role {
                Err(format!(
                    "{p:?} is an organization-only permission; a sub-team role cannot hold it"
                ))
            } else {
                Ok(())
            };
        }
        let Some((resource, action)) = split_permission(p) else {
            return Err(format!(
                "{p:?} is not in the permission catalog (expected resource.action)"
            ));
        };
        if resource != "*" && action != "*" {
            return Err(format!("{p:?} is not in the permission catalog"));
        }
        if !organization_role {
            return Err(format!(
                "{p:?} is a wildcard; only organization roles may hold wildcards"
            ));
        }
        match (resource, action) {
            ("*", "*") => Ok(()),
            ("*", action) if self.actions.contains(action) => Ok(()),
            ("*", _) => Err(format!("{p:?} names no action of the permission catalog")),
            (resource, _) if self.resources.contains(resource) => Ok(()),
            _ => Err(format!("{p:?} names no resource of the permission catalog")),
        }
    }
}

impl CatalogEntry {
    /// An entry with `resource` and `action` derived from `permission`.
    pub fn new(
        permission: &str,
        organization_only: bool,
        description: &str,
    ) -> Result<Self, String> {
        check_concrete_permission(permission)?;
        let (resource, action) = split_permission(permission)
            .ok_or_else(|| format!("{permission:?} is not a resource.action permission"))?;
        Ok(Self {
            permission: permission.to_string(),
            resource: resource.to_string(),
            action: action.to_string(),
            organization_only,
            description: description.to_string(),
        })
    }
}

/// Catalog entries are concrete names: identifier segments only, so they can never be mistaken
/// for wildcards or smuggle whitespace into comparisons.
fn check_concrete_permission(p: &str) -> Result<(), String> {
    let well_formed = p.split('.').count() >= 2
        && p.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a well-formed permission (expected resource.action with letters, digits, '_' or '-')"
        ))
    }
}

/// Splits `resource.action` at the last dot. `None` if there is no dot or any dot-separated
/// segment is empty (`"a..b"`, `".a"`, `"a."`).
pub fn split_permission(p: &str) -> Option<(&str, &str)> {
    let (resource, action) = p.rsplit_once('.')?;
    if action.is_empty() || resource.split('.').any(str::is_empty) {
        return None;
    }
    Some((resource, action))
}

/// Whether a held permission (exact or wildcard `resource.*`, `*.action`, `*.*`) grants the
/// wanted concrete permission.
///
/// A wildcard resource matches the whole resource only: `organization.*` does not reach
/// `organization.attributes.read`, whose resource is `organization.attributes`.
pub fn permission_matches(held: &str, wanted: &str) -> bool {
    if held == wanted {
        return true;
    }
    let (Some((held_resource, held_action)), Some((resource, action))) =
        (split_permission(held), split_permission(wanted))
    else {
        return false;
    };
    (held_resource == "*" || held_resource == resource)
        && (held_action == "*" || held_action == action)
}

/// A role's set of held permissions with fast checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet {
    held: BTreeSet<String>,
    /// `*.*` is held: short-circuits every check (the owner case, the hottest one).
    all: bool,
    /// Resources held as `resource.*` and actions held as `*.action`, so `grants` looks them up
    /// by borrowed `&str` without building `format!` keys.
    any_action_of: BTreeSet<String>,
    any_resource_with: BTreeSet<String>,
}

impl PermissionSet {
    pub fn new(held: impl IntoIterator<Item = String>) -> Self {
        let held: BTreeSet<String> = held.into_iter().collect();
        let mut set = Self {
            all: false,
            any_action_of: BTreeSet::new(),
            any_resource_with: BTreeSet::new(),
            held,
        };
        for p in &set.held {
            match split_permission(p) {
                Some(("*", "*")) => set.all = true,
                Some(("*", action)) => {
                    set.any_resource_with.insert(action.to_string());
                }
                Some((resource, "*")) => {
                    set.any_action_of.insert(resource.to_string());
                }
                _ => {}
            }
        }
        set
    }

    /// Same answer as [`permission_matches`] against every held string, in O(log n).
    pub fn grants(&self, wanted: &str) -> bool {
        if self.held.contains(wanted) {
            return true;
        }
        let Some((resource, action)) = split_permission(wanted) else {
            return false;
        };
        self.all || self.any_action_of.contains(resource) || self.any_resource_with.contains(action)
    }

    pub fn held(&self) -> &BTreeSet<String> {
        &self.held
    }

    /// The concrete catalog permissions granted (wildcards expanded against the catalog), sorted.
    /// Held strings outside the catalog are left out: they name nothing an RPC can check.
    pub fn expand(&self, catalog: &PermissionCatalog) -> Vec<String> {
        let mut granted: Vec<String> = catalog
            .entries()
            .iter()
            .filter(|e| self.grants(&e.permission))
            .map(|e| e.permission.clone())
            .collect();
        granted.sort();
        granted
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

impl FromIterator<String> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self::new(iter)
    }
}

/// The syntaxes of an operator catalog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Toml,
    Yaml,
}

/// Parses the text of an operator catalog file.
///
/// JSON is full JSON. TOML and YAML are strict subsets, enough for this one shape, that reject
/// whatever they do not understand (with a line number) instead of guessing:
/// - TOML: `[[permissions]]` tables or `permissions = [ { ... }, ... ]` with inline tables; bare or
///   quoted keys; basic and literal single-line strings; booleans; comments.
/// - YAML: block mappings and sequences (also a sequence at its key's indentation), one-line flow
///   `{...}`/`[...]`, plain/single-/double-quoted single-line scalars, comments, `---`/`...`.
///   No anchors, aliases, tags, block scalars (`|`, `>`) or multi-line scalars.
pub fn parse_catalog_file(text: &str, format: FileFormat) -> Result<PermissionCatalog, String> {
    let raw = match format {
        // Typed straight from the text: serde's struct decoding catches duplicate keys, which a
        // `serde_json::Value` map would silently collapse.
        FileFormat::Json => {
            serde_json::from_str::<RawFile>(text)
                .map_err(|e| e.to_string())?
                .permissions
        }
        FileFormat::Toml => raw_entries(toml_subset::parse(text)?)?,
        FileFormat::Yaml => raw_entries(yaml_subset::parse(text)?)?,
    };
    let entries = raw
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            CatalogEntry::new(
                &r.permission,
                r.organization_only,
                r.description.as_deref().unwrap_or(""),
            )
            .map_err(|e| format!("permissions[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PermissionCatalog::from_entries(entries)
}

/// One entry as written in a file, before validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    permission: String,
    /// Required: defaulting it to `false` would silently widen who may hold the permission.
    organization_only: bool,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    permissions: Vec<RawEntry>,
}

/// Decodes entry by entry so an error names the entry at fault.
fn raw_entries(doc: serde_json::Value) -> Result<Vec<RawEntry>, String> {
    let serde_json::Value::Object(mut top) = doc else {
        return Err("expected a table/mapping with the key `permissions`".to_string());
    };
    let permissions = top
        .remove("permissions")
        .ok_or("missing key `permissions`")?;
    if let Some(key) = top.keys().next() {
        return Err(format!("unknown key `{key}`, expected only `permissions`"));
    }
    let serde_json::Value::Array(items) = permissions else {
        return Err("`permissions` must be a list of entries".to_string());
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value::<RawEntry>(item).map_err(|e| format!("permissions[{i}]: {e}"))
        })
        .collect()
}

/// Inserts into a map, refusing duplicates that a later write would otherwise silently win.
fn insert_unique(
    map: &mut serde_json::Map<String, serde_json::Value>,
    key: String,
    value: serde_json::Value,
) -> Result<(), String> {
    if map.contains_key(&key) {
        return Err(format!("duplicate key `{key}`"));
    }
    map.insert(key, value);
    Ok(())
}

mod toml_subset {
    use serde_json::{Map, Value};

    use super::insert_unique;

    struct Cursor {
        chars: Vec<char>,
        pos: usize,
        line: usize,
    }

    pub(super) fn parse(text: &str) -> Result<Value, String> {
        let mut c = Cursor {
            chars: text.trim_start_matches('\u{feff}').chars().collect(),
            pos: 0,
            line: 1,
        };
        c.document().map_err(|e| format!("line {}: {e}", c.line))
    }

    impl Cursor {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn peek_at(&self, ahead: usize) -> Option<char> {
            self.chars.get(self.pos + ahead).copied()
        }

        fn bump(&mut self) -> Option<char> {
            let ch = self.peek()?;
            self.pos += 1;
            if ch == '\n' {
                self.line += 1;
            }
            Some(ch)
        }

        fn eat(&mut self, want: char) -> Result<(), String> {
            match self.peek() {
                Some(ch) if ch == want => {
                    self.bump();
                    Ok(())
                }
                Some(ch) => Err(format!("expected `{want}`, found `{ch}`")),
                None => Err(format!("expected `{want}`, found the end of the file")),
            }
        }

        fn skip_spaces(&mut self) {
            while matches!(self.peek(), Some(' ' | '\t')) {
                self.bump();
            }
        }

        fn skip_comment(&mut self) -> Result<(), String> {
            if self.peek() == Some('#') {
                while let Some(ch) = self.peek() {
                    if ch == '\n' || (ch == '\r' && self.peek_at(1) == Some('\n')) {
                        break;
                    }
                    if ch.is_control() && ch != '\t' {
                        return Err("control character in a comment".to_string());
                    }
                    self.bump();
                }
            }
            Ok(())
        }

        /// Consumes a line end (or the end of the file); `false` if something else is there.
        fn eat_newline(&mut self) -> bool {
            match (self.peek(), self.peek_at(1)) {
                (None, _) => true,
                (Some('\n'), _) => {
                    self.bump();
                    true
                }
                (Some('\r'), Some('\n')) => {
                    self.bump();
                    self.bump();
                    true
                }
                _ => false,
            }
        }

        fn end_of_line(&mut self) -> Result<(), String> {
            self.skip_spaces();
            self.skip_comment()?;
            if self.eat_newline() {
                Ok(())
            } else {
                Err(format!(
                    "unexpected `{}` after a value",
                    self.peek().unwrap_or(' ')
                ))
            }
        }

        /// Whitespace, newlines and comments: what may separate array elements.
        fn skip_blank(&mut self) -> Result<(), String> {
            loop {
                self.skip_spaces();
                self.skip_comment()?;
                if self.peek().is_none() || !self.eat_newline() {
                    return Ok(());
                }
            }
        }

        fn document(&mut self) -> Result<Value, String> {
            let mut root = Map::new();
            let mut tables: Option<Vec<Value>> = None;
            let mut current: Option<Map<String, Value>> = None;
            loop {
                self.skip_blank()?;
                let Some(ch) = self.peek() else { break };
                if ch == '[' {
                    if self.peek_at(1) != Some('[') {
                        return Err(
                            "only `[[permissions]]` table headers are supported".to_string()
                        );
                    }
                    self.bump();
                    self.bump();
                    self.skip_spaces();
                    let name = self.key()?;
                    self.skip_spaces();
                    self.eat(']')?;
                    self.eat(']')?;
                    self.end_of_line()?;
                    if name != "permissions" {
                        return Err(format!(
                            "unknown table `[[{name}]]`, expected `[[permissions]]`"
                        ));
                    }
                    if root.contains_key("permissions") {
                        return Err("`permissions` is defined twice".to_string());
                    }
                    let tables = tables.get_or_insert_with(Vec::new);
                    if let Some(done) = current.take() {
                        tables.push(Value::Object(done));
                    }
                    current = Some(Map::new());
                } else {
                    let key = self.key()?;
                    self.skip_spaces();
                    self.eat('=')?;
                    self.skip_spaces();
                    let value = self.value()?;
                    self.end_of_line()?;
                    insert_unique(current.as_mut().unwrap_or(&mut root), key, value)?;
                }
            }
            if let Some(mut tables) = tables {
                if let Some(done) = current {
                    tables.push(Value::Object(done));
                }
                root.insert("permissions".to_string(), Value::Array(tables));
            }
            Ok(Value::Object(root))
        }

        fn key(&mut self) -> Result<String, String> {
            let key = match self.peek() {
                Some('"') => self.basic_string()?,
                Some('\'') => self.literal_string()?,
                _ => {
                    let start = self.pos;
                    while self
                        .peek()
                        .is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
                    {
                        self.bump();
                    }
                    if self.pos == start {
                        return Err(match self.peek() {
                            Some(ch) => format!("expected a key, found `{ch}`"),
                            None => "expected a key, found the end of the file".to_string(),
                        });
                    }
                    self.chars[start..self.pos].iter().collect()
                }
            };
            self.skip_spaces();
            if self.peek() == Some('.') {
                return Err(format!("dotted keys (`{key}.…`) are not supported"));
            }
            Ok(key)
        }

        fn value(&mut self) -> Result<Value, String> {
            match self.peek() {
                Some('"') => Ok(Value::String(self.basic_string()?)),
                Some('\'') => Ok(Value::String(self.literal_string()?)),
                Some('[') => self.array(),
                Some('{') => self.inline_table(),
                Some(ch) if ch.is_ascii_alphanumeric() || matches!(ch, '+' | '-' | '.' | '_') => {
                    let start = self.pos;
                    // Read the whole bare word so `truex` or `1979-05-27` is refused whole,
                    // not taken as `true` followed by junk.
                    while self
                        .peek()
                        .is_some_and(|ch| ch.is_ascii_alphanumeric() || "+-._:".contains(ch))
                    {
                        self.bump();
                    }
                    let word: String = self.chars[start..self.pos].iter().collect();
                    match word.as_str() {
                        "true" => Ok(Value::Bool(true)),
                        "false" => Ok(Value::Bool(false)),
                        _ => Err(format!(
                            "unsupported value `{word}` (expected a string, true or false)"
                        )),
                    }
                }
                Some(ch) => Err(format!("unexpected `{ch}` where a value was expected")),
                None => Err("expected a value, found the end of the file".to_string()),
            }
        }

        fn array(&mut self) -> Result<Value, String> {
            self.eat('[')?;
            let mut items = Vec::new();
            loop {
                self.skip_blank()?;
                if self.peek().is_none() {
                    return Err("unterminated array".to_string());
                }
                if self.peek() == Some(']') {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                items.push(self.value()?);
                self.skip_blank()?;
                match self.peek() {
                    Some(',') => {
                        self.bump();
                    }
                    Some(']') => {}
                    Some(ch) => {
                        return Err(format!("expected `,` or `]` in an array, found `{ch}`"));
                    }
                    None => return Err("unterminated array".to_string()),
                }
            }
        }

        /// TOML 1.0 inline tables: one line, no trailing comma.
        fn inline_table(&mut self) -> Result<Value, String> {
            self.eat('{')?;
            let mut map = Map::new();
            self.skip_spaces();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(Value::Object(map));
            }
            loop {
                self.skip_spaces();
                if matches!(self.peek(), Some('\n' | '\r')) {
                    return Err("an inline table must fit on one line".to_string());
                }
                let key = self.key()?;
                self.skip_spaces();
                self.eat('=')?;
                self.skip_spaces();
                let value = self.value()?;
                insert_unique(&mut map, key, value)?;
                self.skip_spaces();
                match self.bump() {
                    Some(',') => {}
                    Some('}') => return Ok(Value::Object(map)),
                    Some('\n' | '\r') => {
                        return Err("an inline table must fit on one line".to_string());
                    }
                    Some(ch) => {
                        return Err(format!(
                            "expected `,` or `}}` in an inline table, found `{ch}`"
                        ));
                    }
                    None => return Err("unterminated inline table".to_string()),
                }
            }
        }

        fn basic_string(&mut self) -> Result<String, String> {
            self.eat('"')?;
            if self.peek() == Some('"') && self.peek_at(1) == Some('"') {
                return Err("multi-line strings (\"\"\") are not supported".to_string());
            }
            let mut out = String::new();
            loop {
                // Checked before consuming so the error names the string's own line.
                if matches!(self.peek(), None | Some('\n')) {
                    return Err("unterminated string".to_string());
                }
                match self.bump() {
                    None => return Err("unterminated string".to_string()),
                    Some('"') => return Ok(out),
                    Some('\\') => {
                        let escaped = match self.bump() {
                            Some('b') => '\u{8}',
                            Some('t') => '\t',
                            Some('n') => '\n',
                            Some('f') => '\u{c}',
                            Some('r') => '\r',
                            Some('"') => '"',
                            Some('\\') => '\\',
                            Some('u') => self.unicode_escape(4)?,
                            Some('U') => self.unicode_escape(8)?,
                            Some(ch) => return Err(format!("invalid escape `\\{ch}`")),
                            None => return Err("unterminated string".to_string()),
                        };
                        out.push(escaped);
                    }
                    Some(ch) if ch.is_control() && ch != '\t' => {
                        return Err("control character in a string".to_string());
                    }
                    Some(ch) => out.push(ch),
                }
            }
        }

        fn unicode_escape(&mut self, digits: usize) -> Result<char, String> {
            let mut code = 0u32;
            for _ in 0..digits {
                let digit = self
                    .bump()
                    .and_then(|ch| ch.to_digit(16))
                    .ok_or("invalid unicode escape")?;
                code = code * 16 + digit;
            }
            char::from_u32(code).ok_or_else(|| format!("invalid unicode scalar value {code:#x}"))
        }

        fn literal_string(&mut self) -> Result<String, String> {
            self.eat('\'')?;
            if self.peek() == Some('\'') && self.peek_at(1) == Some('\'') {
                return Err("multi-line strings (''') are not supported".to_string());
            }
            let mut out = String::new();
            loop {
                // Checked before consuming so the error names the string's own line.
                if matches!(self.peek(), None | Some('\n')) {
                    return Err("unterminated string".to_string());
                }
                match self.bump() {
                    None => return Err("unterminated string".to_string()),
                    Some('\'') => return Ok(out),
                    Some(ch) if ch.is_control() && ch != '\t' => {
                        return Err("control character in a string".to_string());
                    }
                    Some(ch) => out.push(ch),
                }
            }
        }
    }
}

mod yaml_subset {
    use serde_json::{Map, Value};

    use super::insert_unique;

    /// A meaningful (non-blank, non-comment) line.
    struct Line {
        number: usize,
        indent: usize,
        /// The text after the indentation; may end with a comment, which scalar parsing drops.
        text: String,
    }

    struct Parser {
        lines: Vec<Line>,
        next: usize,
    }

    type Fallible<T> = Result<T, (usize, String)>;

    pub(super) fn parse(text: &str) -> Result<Value, String> {
        let lines = lines(text).map_err(|(n, e)| format!("line {n}: {e}"))?;
        let Some(first) = lines.first() else {
            return Err("the file is empty".to_string());
        };
        let indent = first.indent;
        let mut p = Parser { lines, next: 0 };
        let value = p.block(indent).map_err(|(n, e)| format!("line {n}: {e}"))?;
        if let Some(line) = p.lines.get(p.next) {
            return Err(format!("line {}: unexpected indentation", line.number));
        }
        Ok(value)
    }

    fn lines(text: &str) -> Fallible<Vec<Line>> {
        let mut out = Vec::new();
        let mut started = false;
        let mut ended = false;
        for (i, raw) in text.trim_start_matches('\u{feff}').split('\n').enumerate() {
            let number = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let body = raw.trim_start_matches(' ');
            let indent = raw.len() - body.len();
            if body.starts_with('\t') && !body.trim().is_empty() {
                return Err((number, "tabs are not allowed in indentation".to_string()));
            }
            let trimmed = body.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if ended {
                return Err((
                    number,
                    "content after the end of the document (`...`)".to_string(),
                ));
            }
            if indent == 0 && is_marker(trimmed, "---") {
                if started {
                    return Err((
                        number,
                        "multiple YAML documents are not supported".to_string(),
                    ));
                }
                started = true;
                continue;
            }
            if indent == 0 && is_marker(trimmed, "...") {
                ended = true;
                continue;
            }
            if indent == 0 && (trimmed.starts_with("--- ") || trimmed.starts_with("... ")) {
                return Err((
                    number,
                    "content on a document marker line is not supported".to_string(),
                ));
            }
            if indent == 0 && trimmed.starts_with('%') {
                return Err((number, "YAML directives are not supported".to_string()));
            }
            started = true;
            out.push(Line {
                number,
                indent,
                text: body.trim_end().to_string(),
            });
        }
        Ok(out)
    }

    /// A document marker line with nothing but a comment after it; content on the marker line
    /// (`--- key: value`) is left to fail as a mapping line rather than be dropped.
    fn is_marker(trimmed: &str, marker: &str) -> bool {
        trimmed.strip_prefix(marker).is_some_and(|rest| {
            rest.is_empty() || (rest.starts_with([' ', '\t']) && is_blank_or_comment(rest))
        })
    }

    fn is_sequence_item(text: &str) -> bool {
        text == "-" || text.starts_with("- ") || text.starts_with("-\t")
    }

    fn is_blank_or_comment(rest: &str) -> bool {
        let rest = rest.trim_start();
        rest.is_empty() || rest.starts_with('#')
    }

    impl Parser {
        fn current(&self) -> Option<&Line> {
            self.lines.get(self.next)
        }

        /// A block node whose lines start at exactly `indent`.
        fn block(&mut self, indent: usize) -> Fallible<Value> {
            let Some(line) = self.current() else {
                return Ok(Value::Null);
            };
            if is_sequence_item(&line.text) {
                self.sequence(indent)
            } else {
                self.mapping(indent)
            }
        }

        /// The value of a key or item whose own text ended at the indicator (`key:` / `-`).
        fn nested(&mut self, parent_indent: usize, mapping_value: bool) -> Fallible<Value> {
            match self.current() {
                Some(line) if line.indent > parent_indent => {
                    let indent = line.indent;
                    self.block(indent)
                }
                // YAML lets a mapping's sequence value sit at the key's own indentation.
                Some(line)
                    if mapping_value
                        && line.indent == parent_indent
                        && is_sequence_item(&line.text) =>
                {
                    self.sequence(parent_indent)
                }
                _ => Ok(Value::Null),
            }
        }

        fn no_deeper_line(&self, indent: usize) -> Fallible<()> {
            match self.current() {
                Some(line) if line.indent > indent => Err((
                    line.number,
                    "unexpected indentation (multi-line scalars are not supported)".to_string(),
                )),
                _ => Ok(()),
            }
        }

        fn mapping(&mut self, indent: usize) -> Fallible<Value> {
            let mut map = Map::new();
            while let Some(line) = self.current() {
                if line.indent < indent {
                    break;
                }
                let number = line.number;
                if line.indent > indent {
                    return Err((number, "unexpected indentation".to_string()));
                }
                if is_sequence_item(&line.text) {
                    return Err((
                        number,
                        "a sequence item where a mapping key was expected".to_string(),
                    ));
                }
                let text = line.text.clone();
                let (key, rest) = split_key(&text).map_err(|e| (number, e))?;
                self.next += 1;
                let value = if is_blank_or_comment(rest) {
                    self.nested(indent, true)?
                } else {
                    let value = inline_value(rest).map_err(|e| (number, e))?;
                    self.no_deeper_line(indent)?;
                    value
                };
                insert_unique(&mut map, key, value).map_err(|e| (number, e))?;
            }
            Ok(Value::Object(map))
        }

        fn sequence(&mut self, indent: usize) -> Fallible<Value> {
            let mut items = Vec::new();
            while let Some(line) = self.current() {
                if line.indent < indent {
                    break;
                }
                let number = line.number;
                if line.indent > indent {
                    return Err((number, "unexpected indentation".to_string()));
                }
                if !is_sequence_item(&line.text) {
                    // A key at the sequence's own indentation ends a sequence that was the value
                    // of a key at this same indentation; the caller's mapping takes it from here.
                    break;
                }
                let text = line.text.clone();
                let after_dash = &text[1..];
                let content = after_dash.trim_start_matches([' ', '\t']);
                let column = indent + 1 + (after_dash.len() - content.len());
                if is_blank_or_comment(content) {
                    self.next += 1;
                    items.push(self.nested(indent, false)?);
                } else if is_sequence_item(content) {
                    return Err((
                        number,
                        "nested sequences on one line (`- - x`) are not supported".to_string(),
                    ));
                } else if starts_block_mapping(content) {
                    // `- key: value` opens a mapping whose keys line up with this first key, so
                    // the line is re-read as that mapping's first line.
                    self.lines[self.next] = Line {
                        number,
                        indent: column,
                        text: content.to_string(),
                    };
                    items.push(self.mapping(column)?);
                } else {
                    self.next += 1;
                    items.push(inline_value(content).map_err(|e| (number, e))?);
                    self.no_deeper_line(indent)?;
                }
            }
            Ok(Value::Array(items))
        }
    }

    fn starts_block_mapping(text: &str) -> bool {
        !text.starts_with(['{', '[']) && split_key(text).is_ok()
    }

    /// Splits `key: rest` (also `key:` at the end of the line).
    fn split_key(text: &str) -> Result<(String, &str), String> {
        let (key, rest) = if text.starts_with(['"', '\'']) {
            let (key, rest) = quoted(text)?;
            let rest = rest.trim_start_matches([' ', '\t']);
            (key, rest)
        } else {
            if text.starts_with(['{', '[', '?', '&', '*', '!', '|', '>', '%', '@', '`']) {
                return Err(format!("unsupported mapping key in `{text}`"));
            }
            let end = find_mapping_colon(text)
                .ok_or_else(|| format!("expected `key: value`, found `{text}`"))?;
            let key = text[..end].trim_end();
            if key.contains(" #") || key.contains("\t#") {
                return Err(format!("expected `key: value`, found `{text}`"));
            }
            (key.to_string(), &text[end..])
        };
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("expected `:` after the key `{key}`"))?;
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            return Err(format!("expected a space after `{key}:`"));
        }
        Ok((key, rest))
    }

    /// The byte offset of the first `:` followed by whitespace or the end of the text.
    fn find_mapping_colon(text: &str) -> Option<usize> {
        let bytes = text.as_bytes();
        (0..bytes.len())
            .find(|&i| bytes[i] == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')))
    }

    /// A value on the rest of a line: a scalar or a one-line flow collection, then only a comment.
    fn inline_value(text: &str) -> Result<Value, String> {
        let text = text.trim_start_matches([' ', '\t']);
        let (value, rest) = match text.chars().next() {
            Some('"' | '\'') => {
                let (s, rest) = quoted(text)?;
                (Value::String(s), rest)
            }
            Some('{' | '[') => flow(text)?,
            Some(ch @ ('|' | '>')) => {
                return Err(format!("block scalars (`{ch}`) are not supported"));
            }
            Some(ch @ ('&' | '*' | '!' | '%' | '@' | '`' | '?')) => {
                return Err(format!(
                    "`{ch}` (anchors, aliases, tags, reserved indicators) is not supported"
                ));
            }
            _ if is_sequence_item(text) => return Err("a sequence is not allowed here".to_string()),
            _ => {
                let end = text
                    .find(" #")
                    .or_else(|| text.find("\t#"))
                    .unwrap_or(text.len());
                let plain = text[..end].trim_end();
                if find_mapping_colon(plain).is_some() {
                    return Err(format!(
                        "`{plain}`: mapping values are not allowed here (quote the text)"
                    ));
                }
                (plain_scalar(plain), &text[end..])
            }
        };
        if is_blank_or_comment(rest) {
            Ok(value)
        } else {
            Err(format!("unexpected `{}` after a value", rest.trim()))
        }
    }

    /// YAML 1.2 core schema for the types this file needs; anything else stays a string.
    fn plain_scalar(text: &str) -> Value {
        match text {
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            "" | "~" | "null" | "Null" | "NULL" => Value::Null,
            _ => Value::String(text.to_string()),
        }
    }

    /// A quoted scalar at the start of `text`; returns it and the text after the closing quote.
    fn quoted(text: &str) -> Result<(String, &str), String> {
        let mut chars = text.char_indices();
        let Some((_, quote)) = chars.next() else {
            return Err("expected a quoted string".to_string());
        };
        let mut out = String::new();
        while let Some((i, ch)) = chars.next() {
            match (quote, ch) {
                ('\'', '\'') => {
                    if text[i + 1..].starts_with('\'') {
                        chars.next();
                        out.push('\'');
                    } else {
                        return Ok((out, &text[i + 1..]));
                    }
                }
                ('"', '"') => return Ok((out, &text[i + 1..])),
                ('"', '\\') => {
                    let escaped = match chars.next().map(|(_, c)| c) {
                        Some('0') => '\0',
                        Some('a') => '\u{7}',
                        Some('b') => '\u{8}',
                        Some('t' | '\t') => '\t',
                        Some('n') => '\n',
                        Some('v') => '\u{b}',
                        Some('f') => '\u{c}',
                        Some('r') => '\r',
                        Some('e') => '\u{1b}',
                        Some(' ') => ' ',
                        Some('"') => '"',
                        Some('/') => '/',
                        Some('\\') => '\\',
                        Some('N') => '\u{85}',
                        Some('_') => '\u{a0}',
                        Some('L') => '\u{2028}',
                        Some('P') => '\u{2029}',
                        Some(kind @ ('x' | 'u' | 'U')) => {
                            let digits = match kind {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let mut code = 0u32;
                            for _ in 0..digits {
                                let digit = chars
                                    .next()
                                    .and_then(|(_, c)| c.to_digit(16))
                                    .ok_or("invalid unicode escape")?;
                                code = code * 16 + digit;
                            }
                            char::from_u32(code)
                                .ok_or_else(|| format!("invalid unicode scalar value {code:#x}"))?
                        }
                        Some(c) => return Err(format!("invalid escape `\\{c}`")),
                        None => break,
                    };
                    out.push(escaped);
                }
                _ => out.push(ch),
            }
        }
        Err("unterminated quoted string (multi-line scalars are not supported)".to_string())
    }

    /// A one-line flow collection at the start of `text`; returns it and the text after it.
    fn flow(text: &str) -> Result<(Value, &str), String> {
        let rest = text.trim_start_matches([' ', '\t']);
        if let Some(mut rest) = rest.strip_prefix('{') {
            let mut map = Map::new();
            loop {
                rest = rest.trim_start_matches([' ', '\t']);
                if rest.is_empty() {
                    return Err("unterminated flow mapping (it must fit on one line)".to_string());
                }
                if let Some(after) = rest.strip_prefix('}') {
                    return Ok((Value::Object(map), after));
                }
                let (key, after_key) = flow_scalar(rest, true)?;
                let Value::String(key) = key else {
                    return Err("flow mapping keys must be strings".to_string());
                };
                let after_key = after_key.trim_start_matches([' ', '\t']);
                let after_colon = after_key
                    .strip_prefix(':')
                    .ok_or_else(|| format!("expected `:` after the key `{key}`"))?;
                let (value, after_value) = flow(after_colon)?;
                insert_unique(&mut map, key, value)?;
                rest = after_value.trim_start_matches([' ', '\t']);
                if let Some(after) = rest.strip_prefix(',') {
                    rest = after;
                } else if !rest.starts_with('}') {
                    return Err(
                        "expected `,` or `}` in a flow mapping (it must fit on one line)"
                            .to_string(),
                    );
                }
            }
        }
        if let Some(mut rest) = rest.strip_prefix('[') {
            let mut items = Vec::new();
            loop {
                rest = rest.trim_start_matches([' ', '\t']);
                if rest.is_empty() {
                    return Err("unterminated flow sequence (it must fit on one line)".to_string());
                }
                if let Some(after) = rest.strip_prefix(']') {
                    return Ok((Value::Array(items), after));
                }
                let (value, after_value) = flow(rest)?;
                items.push(value);
                rest = after_value.trim_start_matches([' ', '\t']);
                if let Some(after) = rest.strip_prefix(',') {
                    rest = after;
                } else if !rest.starts_with(']') {
                    return Err(
                        "expected `,` or `]` in a flow sequence (it must fit on one line)"
                            .to_string(),
                    );
                }
            }
        }
        flow_scalar(rest, false)
    }

    /// A scalar inside a flow collection: quoted, or plain up to `,`, `[`, `]`, `{`, `}`, `: `,
    /// or a comment.
    fn flow_scalar(text: &str, is_key: bool) -> Result<(Value, &str), String> {
        if text.starts_with(['"', '\'']) {
            let (s, rest) = quoted(text)?;
            return Ok((Value::String(s), rest));
        }
        if let Some(ch) = text.chars().next().filter(|c| "&*!|>%@`?#".contains(*c)) {
            return Err(format!("`{ch}` is not supported in a flow collection"));
        }
        let bytes = text.as_bytes();
        let mut end = 0;
        while end < bytes.len() {
            let b = bytes[end];
            let colon_ends = b == b':'
                && (is_key || matches!(bytes.get(end + 1), None | Some(b' ' | b'\t' | b',')));
            let comment = b == b'#' && end > 0 && matches!(bytes[end - 1], b' ' | b'\t');
            if matches!(b, b',' | b'[' | b']' | b'{' | b'}') || colon_ends || comment {
                break;
            }
            end += 1;
        }
        let plain = text[..end].trim_end_matches([' ', '\t']);
        if plain.is_empty() && !is_key {
            return Err("expected a value in a flow collection".to_string());
        }
        Ok((plain_scalar(plain), &text[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// The `permissions` enum of seed 001 (cal.com's team role API), in the seed's order.
    const SEED_001_ENUM: &[&str] = &[
        "role.create",
        "role.read",
        "role.update",
        "role.delete",
        "eventType.create",
        "eventType.read",
        "eventType.update",
        "eventType.delete",
        "team.read",
        "team.update",
        "team.delete",
        "team.invite",
        "team.remove",
        "team.listMembers",
        "team.listMembersPrivate",
        "team.changeMemberRole",
        "team.impersonate",
        "booking.read",
        "booking.readTeamBookings",
        "booking.readRecordings",
        "booking.update",
        "booking.updateTeamBookings",
        "booking.readTeamAuditLogs",
        "insights.read",
        "workflow.create",
        "workflow.read",
        "workflow.update",
        "workflow.delete",
        "routingForm.create",
        "routingForm.read",
        "routingForm.update",
        "routingForm.delete",
        "webhook.create",
        "webhook.read",
        "webhook.update",
        "webhook.delete",
        "featureOptIn.read",
        "featureOptIn.update",
    ];

    #[test]
    fn default_catalog_has_69_entries() {
        let catalog = PermissionCatalog::default_catalog();
        assert_eq!(catalog.entries().len(), 69);
        let team_scope: Vec<&str> = catalog
            .entries()
            .iter()
            .filter(|e| !e.organization_only)
            .map(|e| e.permission.as_str())
            .collect();
        assert_eq!(team_scope, SEED_001_ENUM);
        let org_only: BTreeSet<&str> = catalog
            .entries()
            .iter()
            .filter(|e| e.organization_only)
            .map(|e| e.permission.as_str())
            .collect();
        let mut expected_org_only = BTreeSet::from(["team.create", "team.manageBilling"]);
        for action in [
            "create",
            "read",
            "update",
            "listMembers",
            "listMembersPrivate",
            "invite",
            "remove",
            "changeMemberRole",
            "impersonate",
            "manageBilling",
        ] {
            expected_org_only.insert(Box::leak(format!("organization.{action}").into_boxed_str()));
        }
        for action in ["create", "read", "update", "delete", "editUsers"] {
            expected_org_only.insert(Box::leak(
                format!("organization.attributes.{action}").into_boxed_str(),
            ));
        }
        expected_org_only.extend(["booking.readOrgBookings", "booking.readOrgAuditLogs"]);
        for resource in ["availability", "ooo", "watchlist"] {
            for action in ["create", "read", "update", "delete"] {
                expected_org_only
                    .insert(Box::leak(format!("{resource}.{action}").into_boxed_str()));
            }
        }
        assert_eq!(org_only, expected_org_only);
        assert_eq!(org_only.len(), 31);
    }

    #[test]
    fn default_entries_are_consistent() {
        let catalog = PermissionCatalog::default_catalog();
        for (i, e) in catalog.entries().iter().enumerate() {
            assert_eq!(format!("{}.{}", e.resource, e.action), e.permission);
            assert!(!e.description.is_empty(), "{}", e.permission);
            assert_eq!(catalog.get(&e.permission), Some(&catalog.entries()[i]));
        }
        let attrs = catalog.get("organization.attributes.read").unwrap();
        assert_eq!(
            (attrs.resource.as_str(), attrs.action.as_str()),
            ("organization.attributes", "read")
        );
        assert!(attrs.organization_only);
        assert!(!catalog.get("team.read").unwrap().organization_only);
        assert!(catalog.get("team.create").unwrap().organization_only);
        assert_eq!(catalog.get("*.*"), None);
        assert_eq!(catalog.get("team.*"), None);
        assert_eq!(catalog.get("nosuch.read"), None);
        // Stable order: the same catalog twice lists the same sequence.
        assert_eq!(
            PermissionCatalog::default_catalog().entries(),
            catalog.entries()
        );
    }

    #[test]
    fn split_permission_cases() {
        assert_eq!(split_permission("team.read"), Some(("team", "read")));
        assert_eq!(
            split_permission("organization.attributes.read"),
            Some(("organization.attributes", "read"))
        );
        assert_eq!(split_permission("*.*"), Some(("*", "*")));
        assert_eq!(split_permission("team.*"), Some(("team", "*")));
        for bad in [
            "", "team", ".", "team.", ".read", "a..b", ".a.b", "a.b.", "..", "a.b..c",
        ] {
            assert_eq!(split_permission(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn permission_matches_cases() {
        let yes = [
            ("team.read", "team.read"),
            ("team.*", "team.read"),
            ("*.read", "team.read"),
            ("*.*", "team.read"),
            ("*.read", "organization.attributes.read"),
            ("organization.attributes.*", "organization.attributes.read"),
            ("*.*", "organization.attributes.editUsers"),
        ];
        let no = [
            ("team.read", "team.update"),
            ("team.*", "teams.read"),
            ("organization.*", "organization.attributes.read"),
            ("organization.*", "organization.attributes.editUsers"),
            ("*.read", "team.readAll"),
            ("*.read", "booking.readTeamBookings"),
            ("team.read", "team.read.extra"),
            ("*.*", "team"),
            ("*.*", ""),
            ("team.*", "team"),
            ("attributes.*", "organization.attributes.read"),
            ("", "team.read"),
        ];
        for (held, wanted) in yes {
            assert!(
                permission_matches(held, wanted),
                "{held} should grant {wanted}"
            );
        }
        for (held, wanted) in no {
            assert!(
                !permission_matches(held, wanted),
                "{held} should not grant {wanted}"
            );
        }
    }

    #[test]
    fn permission_set_agrees_with_permission_matches() {
        let catalog = PermissionCatalog::default_catalog();
        let helds: Vec<Vec<&str>> = vec![
            vec![],
            vec!["*.*"],
            vec!["team.read"],
            vec!["team.*", "booking.read"],
            vec!["*.read"],
            vec!["organization.*"],
            vec!["organization.attributes.*", "*.delete"],
            vec!["*.manageBilling", "role.*", "eventType.create"],
        ];
        let mut wanted: Vec<String> = catalog
            .entries()
            .iter()
            .map(|e| e.permission.clone())
            .collect();
        wanted.extend(strings(&[
            "",
            "team",
            "nosuch.read",
            "team.nosuch",
            "a..read",
            "organization.attributes",
        ]));
        for held in helds {
            let set = PermissionSet::new(strings(&held));
            for w in &wanted {
                let expected = held.iter().any(|h| permission_matches(h, w));
                assert_eq!(set.grants(w), expected, "held {held:?}, wanted {w:?}");
            }
        }
    }

    #[test]
    fn permission_set_basics() {
        let set: PermissionSet = strings(&["team.read", "team.read", "organization.*"])
            .into_iter()
            .collect();
        assert_eq!(
            set.held(),
            &strings(&["organization.*", "team.read"])
                .into_iter()
                .collect::<BTreeSet<_>>()
        );
        assert!(set.grants("organization.read"));
        assert!(!set.grants("organization.attributes.read"));
        assert!(!set.is_empty());
        let empty = PermissionSet::default();
        assert!(empty.is_empty());
        assert!(!empty.grants("team.read"));
        assert_eq!(empty, PermissionSet::new(Vec::new()));
        assert_eq!(
            PermissionSet::new(strings(&["a.b", "*.*"])),
            PermissionSet::new(strings(&["*.*", "a.b"]))
        );
    }

    #[test]
    fn expand_against_the_catalog() {
        let catalog = PermissionCatalog::default_catalog();
        let all: Vec<String> = {
            let mut v: Vec<String> = catalog
                .entries()
                .iter()
                .map(|e| e.permission.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(PermissionSet::new(strings(&["*.*"])).expand(&catalog), all);
        assert_eq!(
            PermissionSet::new(strings(&["organization.*"])).expand(&catalog),
            strings(&[
                "organization.changeMemberRole",
                "organization.create",
                "organization.impersonate",
                "organization.invite",
                "organization.listMembers",
                "organization.listMembersPrivate",
                "organization.manageBilling",
                "organization.read",
                "organization.remove",
                "organization.update",
            ])
        );
        assert_eq!(
            PermissionSet::new(strings(&["*.manageBilling", "team.read", "not.inCatalog"]))
                .expand(&catalog),
            strings(&[
                "organization.manageBilling",
                "team.manageBilling",
                "team.read"
            ])
        );
        let reads = PermissionSet::new(strings(&["*.read"])).expand(&catalog);
        assert_eq!(reads.len(), 14);
        assert!(reads.contains(&"organization.attributes.read".to_string()));
        assert!(PermissionSet::default().expand(&catalog).is_empty());
    }

    fn violations(result: Result<BTreeSet<String>, Vec<FieldViolation>>) -> Vec<(String, String)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect()
    }

    #[test]
    fn organization_role_accepts_entries_and_wildcards() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "team.read",
            "*.*",
            "team.create",
            "organization.*",
            "organization.attributes.*",
            "*.read",
            "*.manageBilling",
            "*.editUsers",
            "team.read",
            "booking.readOrgBookings",
        ]);
        let got = catalog
            .validate_role_permissions("permissions", &input, true)
            .unwrap();
        let expected: BTreeSet<String> = strings(&[
            "*.*",
            "*.editUsers",
            "*.manageBilling",
            "*.read",
            "booking.readOrgBookings",
            "organization.*",
            "organization.attributes.*",
            "team.create",
            "team.read",
        ])
        .into_iter()
        .collect();
        assert_eq!(got, expected);
        assert_eq!(
            catalog.validate_role_permissions("p", &[], true).unwrap(),
            BTreeSet::new()
        );
    }

    #[test]
    fn team_role_accepts_team_scope_dedup_sorted() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "webhook.read",
            "booking.read",
            "webhook.read",
            "team.listMembers",
        ]);
        let got = catalog
            .validate_role_permissions("permissions", &input, false)
            .unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            strings(&["booking.read", "team.listMembers", "webhook.read"])
        );
        let every_team_scope: Vec<String> = SEED_001_ENUM.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            catalog
                .validate_role_permissions("p", &every_team_scope, false)
                .unwrap()
                .len(),
            38
        );
    }

    #[test]
    fn team_role_rejects_org_only_and_wildcards() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "team.read",
            "team.create",
            "team.*",
            "*.read",
            "*.*",
            "organization.attributes.read",
            "booking.readOrgBookings",
            "*.nosuchaction",
        ]);
        let got = violations(catalog.validate_role_permissions("role.permissions", &input, false));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "role.permissions[1]",
                "role.permissions[2]",
                "role.permissions[3]",
                "role.permissions[4]",
                "role.permissions[5]",
                "role.permissions[6]",
                "role.permissions[7]",
            ]
        );
        assert_eq!(
            got[0].1,
            "\"team.create\" is an organization-only permission; a sub-team role cannot hold it"
        );
        for (i, (_, description)) in got.iter().enumerate() {
            let offending = &input[i + 1];
            assert!(
                description.contains(&format!("\"{offending}\"")),
                "{description}"
            );
        }
        assert!(got[1].1.contains("wildcard"));
        assert!(got[4].1.contains("organization-only"));
    }

    #[test]
    fn unknown_and_malformed_strings_are_rejected() {
        let catalog = PermissionCatalog::default_catalog();
        let input = strings(&[
            "foo.bar",
            "*.nosuchaction",
            "nosuch.*",
            "organization.attributes",
            "",
            "team",
            "team.",
            ".read",
            "Team.read",
            "team.read ",
            "team..read",
            "**.read",
            "team.re*",
            "*",
            "booking.readTeamBookings",
        ]);
        let got = violations(catalog.validate_role_permissions("permissions", &input, true));
        assert_eq!(got.len(), input.len() - 1);
        for (i, (field, description)) in got.iter().enumerate() {
            assert_eq!(field, &format!("permissions[{i}]"));
            assert!(
                description.contains(&format!("{:?}", input[i])),
                "{description}"
            );
        }
        assert_eq!(got[0].1, "\"foo.bar\" is not in the permission catalog");
        assert_eq!(
            got[1].1,
            "\"*.nosuchaction\" names no action of the permission catalog"
        );
        assert_eq!(
            got[2].1,
            "\"nosuch.*\" names no resource of the permission catalog"
        );
        // A team role gets the same answer for strings that are not wildcards.
        let got = violations(catalog.validate_role_permissions("p", &strings(&["foo.bar"]), false));
        assert_eq!(
            got,
            vec![(
                "p[0]".to_string(),
                "\"foo.bar\" is not in the permission catalog".to_string()
            )]
        );
    }

    #[test]
    fn duplicates_of_an_offending_string_are_each_reported() {
        let catalog = PermissionCatalog::default_catalog();
        let got = violations(catalog.validate_role_permissions(
            "p",
            &strings(&["x.y", "team.read", "x.y"]),
            true,
        ));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["p[0]", "p[2]"]);
    }

    fn entry(p: &str, org: bool) -> CatalogEntry {
        CatalogEntry::new(p, org, "").unwrap()
    }

    #[test]
    fn from_entries_validates() {
        let ok =
            PermissionCatalog::from_entries(vec![entry("b.read", false), entry("a.x.read", true)])
                .unwrap();
        let order: Vec<&str> = ok.entries().iter().map(|e| e.permission.as_str()).collect();
        assert_eq!(order, ["b.read", "a.x.read"]);

        let dup =
            PermissionCatalog::from_entries(vec![entry("a.read", false), entry("a.read", true)]);
        assert!(dup.unwrap_err().contains("\"a.read\" appears twice"));
        assert!(PermissionCatalog::from_entries(Vec::new()).is_err());

        let mut inconsistent = entry("a.read", false);
        inconsistent.action = "write".to_string();
        assert!(PermissionCatalog::from_entries(vec![inconsistent]).is_err());

        for bad in [
            "a", "a.", ".a", "a..b", "*.read", "a.*", "a.re ad", "a.read\n", "a/b.read", "",
        ] {
            assert!(CatalogEntry::new(bad, false, "").is_err(), "{bad:?}");
            let forged = CatalogEntry {
                permission: bad.to_string(),
                resource: String::new(),
                action: String::new(),
                organization_only: false,
                description: String::new(),
            };
            assert!(
                PermissionCatalog::from_entries(vec![forged]).is_err(),
                "{bad:?}"
            );
        }
    }

    fn summary(catalog: &PermissionCatalog) -> Vec<(String, bool, String)> {
        catalog
            .entries()
            .iter()
            .map(|e| {
                (
                    e.permission.clone(),
                    e.organization_only,
                    e.description.clone(),
                )
            })
            .collect()
    }

    fn expected_small() -> Vec<(String, bool, String)> {
        vec![
            ("team.read".to_string(), false, "View teams".to_string()),
            (
                "organization.attributes.read".to_string(),
                true,
                "Attrs: \"quoted\" # not a comment".to_string(),
            ),
            ("report.export".to_string(), false, String::new()),
        ]
    }

    #[test]
    fn json_file() {
        let text = r##"{"permissions": [
            {"permission": "team.read", "organization_only": false, "description": "View teams"},
            {"permission": "organization.attributes.read", "organization_only": true,
             "description": "Attrs: \"quoted\" # not a comment"},
            {"permission": "report.export", "organization_only": false}
        ]}"##;
        assert_eq!(
            summary(&parse_catalog_file(text, FileFormat::Json).unwrap()),
            expected_small()
        );
        for bad in [
            r#"{"permissions": [{"permission": "a.b"}]}"#,
            r#"{"permissions": [{"permission": "a.b", "organization_only": "yes"}]}"#,
            r#"{"permissions": [{"permission": "a.b", "organization_only": true, "extra": 1}]}"#,
            r#"{"permissions": [{"permission": "a.b", "permission": "c.d", "organization_only": true}]}"#,
            r#"{"permissions": [], "other": 1}"#,
            r#"{"permissions": []}"#,
            r#"{"permissions": [{"permission": "a", "organization_only": true}]}"#,
            r#"[]"#,
            "",
        ] {
            assert!(parse_catalog_file(bad, FileFormat::Json).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_array_of_tables() {
        let text = r#"
# operator catalog
[[permissions]]
permission = "team.read"      # trailing comment
organization_only = false
description = "View teams"

[[ permissions ]]
"permission" = 'organization.attributes.read'
organization_only = true
description = "Attrs: \"quoted\" # not a comment"

[[permissions]]
permission = "report.export"
organization_only = false
"#;
        assert_eq!(
            summary(&parse_catalog_file(text, FileFormat::Toml).unwrap()),
            expected_small()
        );
    }

    #[test]
    fn toml_inline_tables() {
        let text = "permissions = [\r\n  { permission = \"team.read\", organization_only = false, description = \"View teams\" },\r\n  # a comment between entries\r\n  { permission = \"organization.attributes.read\", organization_only = true, description = 'Attrs: \"quoted\" # not a comment' },\r\n  {permission=\"report.export\",organization_only=false},\r\n]\r\n";
        assert_eq!(
            summary(&parse_catalog_file(text, FileFormat::Toml).unwrap()),
            expected_small()
        );
        let escapes = r#"permissions = [{ permission = "a.b", organization_only = true, description = "tab\there \u00e9\\" }]"#;
        let catalog = parse_catalog_file(escapes, FileFormat::Toml).unwrap();
        assert_eq!(catalog.entries()[0].description, "tab\there \u{e9}\\");
    }

    #[test]
    fn toml_rejections() {
        let cases = [
            (
                "[permissions]\npermission = \"a.b\"\n",
                "only `[[permissions]]`",
            ),
            ("[[roles]]\npermission = \"a.b\"\n", "unknown table"),
            (
                "[[permissions]]\npermission = \"a.b\"\norganization_only = yes\n",
                "unsupported value `yes`",
            ),
            (
                "[[permissions]]\npermission = \"a.b\"\norganization_only = 1\n",
                "unsupported value `1`",
            ),
            (
                "[[permissions]]\npermission = \"a.b\"\npermission = \"c.d\"\norganization_only = true\n",
                "duplicate key",
            ),
            (
                "[[permissions]]\npermission = \"a.b\"\n",
                "missing field `organization_only`",
            ),
            (
                "[[permissions]]\npermission = \"a.b\"\norganization_only = true\nextra = true\n",
                "unknown field",
            ),
            (
                "[[permissions]]\npermission.name = \"a.b\"\n",
                "dotted keys",
            ),
            (
                "[[permissions]]\npermission = \"a.b\" organization_only = true\n",
                "after a value",
            ),
            (
                "[[permissions]]\npermission = \"a.b\norganization_only = true\n",
                "unterminated string",
            ),
            (
                "[[permissions]]\ndescription = \"\"\"x\"\"\"\n",
                "multi-line strings",
            ),
            ("[[permissions]]\ndescription = \"\\q\"\n", "invalid escape"),
            (
                "permissions = [{ permission = \"a.b\",\n organization_only = true }]\n",
                "one line",
            ),
            (
                "permissions = [{ permission = \"a.b\", organization_only = true, }]\n",
                "expected a key",
            ),
            ("permissions = []\n[[permissions]]\n", "defined twice"),
            ("other = true\npermissions = []\n", "unknown key `other`"),
            ("permissions = [\n", "unterminated array"),
            ("", "missing key `permissions`"),
        ];
        for (text, needle) in cases {
            let err = parse_catalog_file(text, FileFormat::Toml).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let unterminated = "[[permissions]]\npermission = \"a.b\norganization_only = true\n";
        let err = parse_catalog_file(unterminated, FileFormat::Toml).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = parse_catalog_file("x = truex\n", FileFormat::Toml).unwrap_err();
        assert!(err.contains("`truex`"), "{err}");
        let err = parse_catalog_file("\n\n[[permissions]]\npermission = 12\n", FileFormat::Toml)
            .unwrap_err();
        assert!(err.starts_with("line 4:"), "{err}");
    }

    #[test]
    fn yaml_block_style() {
        let text = r#"---
# operator catalog
permissions:
  - permission: team.read   # trailing comment
    organization_only: false
    description: View teams

  - "permission": organization.attributes.read
    organization_only: true
    description: "Attrs: \"quoted\" # not a comment"
  -
    permission: report.export
    organization_only: FALSE
...
"#;
        assert_eq!(
            summary(&parse_catalog_file(text, FileFormat::Yaml).unwrap()),
            expected_small()
        );
    }

    #[test]
    fn yaml_compact_and_flow_style() {
        let text = "permissions:\r\n- {permission: team.read, organization_only: false, description: View teams}\r\n- permission: 'organization.attributes.read'\r\n  organization_only: true\r\n  description: 'Attrs: \"quoted\" # not a comment'\r\n- { \"permission\": \"report.export\", organization_only: false, }\r\n";
        assert_eq!(
            summary(&parse_catalog_file(text, FileFormat::Yaml).unwrap()),
            expected_small()
        );
        let one_line = "permissions: [{permission: a.b, organization_only: true, description: \"it's \\u00e9\"}]";
        let catalog = parse_catalog_file(one_line, FileFormat::Yaml).unwrap();
        assert_eq!(catalog.entries()[0].description, "it's \u{e9}");
        let apostrophes = "permissions:\n  - permission: a.b\n    organization_only: true\n    description: Don't panic # it's fine\n  - permission: a.c\n    organization_only: true\n    description: 'It''s' # x\n";
        let catalog = parse_catalog_file(apostrophes, FileFormat::Yaml).unwrap();
        assert_eq!(catalog.entries()[0].description, "Don't panic");
        assert_eq!(catalog.entries()[1].description, "It's");
        let empty_description =
            "permissions:\n  - permission: a.b\n    organization_only: true\n    description:\n";
        assert_eq!(
            parse_catalog_file(empty_description, FileFormat::Yaml)
                .unwrap()
                .entries()[0]
                .description,
            ""
        );
    }

    #[test]
    fn yaml_rejections() {
        let cases = [
            ("--- permissions: []\n", "document marker line"),
            (
                "permissions:\n- permission: a.b\n  organization_only: true\nother:\n",
                "unknown key `other`",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n  other: 1\n",
                "unexpected indentation",
            ),
            (
                "permissions: []\n...\npermissions: []\n",
                "after the end of the document",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n    description: >\n      folded\n",
                "block scalars",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n    description: first\n      second\n",
                "unexpected indentation",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n    description: \"first\n      second\"\n",
                "unterminated quoted string",
            ),
            (
                "permissions:\n  - permission: a.b\n     organization_only: true\n",
                "unexpected indentation",
            ),
            (
                "permissions:\n  - permission: a.b\n   organization_only: true\n",
                "unexpected indentation",
            ),
            ("permissions:\n  - &x permission: a.b\n", "not supported"),
            ("permissions:\n  - permission: *x\n", "not supported"),
            ("permissions:\n  - permission: !!str a.b\n", "not supported"),
            (
                "permissions:\n  - permission: a.b\n    permission: a.c\n    organization_only: true\n",
                "duplicate key",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: yes\n",
                "expected a boolean",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n    extra: 1\n",
                "unknown field",
            ),
            (
                "permissions:\n  - permission: a.b\n    description: x: y\n",
                "mapping values are not allowed",
            ),
            ("permissions:\n\t- permission: a.b\n", "tabs"),
            (
                "permissions: [{permission: a.b,\n  organization_only: true}]\n",
                "one line",
            ),
            (
                "permissions: []\n---\npermissions: []\n",
                "multiple YAML documents",
            ),
            ("permissions: []\nother: 1\n", "unknown key `other`"),
            ("permissions:\n  - - a.b\n", "nested sequences"),
            ("- permission: a.b\n", "expected a table/mapping"),
            ("permissions: a.b\n", "must be a list"),
            ("%YAML 1.2\n---\npermissions: []\n", "directives"),
            ("", "empty"),
        ];
        for (text, needle) in cases {
            let err = parse_catalog_file(text, FileFormat::Yaml).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let err = parse_catalog_file("permissions:\n  - permission: a.b\n    organization_only: true\n    description: x\n      y\n", FileFormat::Yaml)
            .unwrap_err();
        assert!(err.starts_with("line 5:"), "{err}");
    }

    #[test]
    fn default_catalog_round_trips_through_every_format() {
        let catalog = PermissionCatalog::default_catalog();
        let json = serde_json::json!({
            "permissions": catalog.entries().iter().map(|e| serde_json::json!({
                "permission": e.permission, "organization_only": e.organization_only, "description": e.description,
            })).collect::<Vec<_>>()
        });
        let mut toml = String::new();
        let mut yaml = String::from("permissions:\n");
        for e in catalog.entries() {
            toml.push_str(&format!(
                "[[permissions]]\npermission = {:?}\norganization_only = {}\ndescription = {:?}\n\n",
                e.permission, e.organization_only, e.description
            ));
            yaml.push_str(&format!(
                "  - permission: {}\n    organization_only: {}\n    description: {}\n",
                e.permission, e.organization_only, e.description
            ));
        }
        for (text, format) in [
            (json.to_string(), FileFormat::Json),
            (toml, FileFormat::Toml),
            (yaml, FileFormat::Yaml),
        ] {
            let parsed = parse_catalog_file(&text, format).unwrap();
            assert_eq!(parsed.entries(), catalog.entries(), "{format:?}");
        }
    }

    #[test]
    fn from_file_picks_the_format_by_extension() {
        let dir =
            std::env::temp_dir().join(format!("membership-catalog-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            (
                "c.json",
                r#"{"permissions": [{"permission": "a.b", "organization_only": true}]}"#,
            ),
            (
                "c.toml",
                "[[permissions]]\npermission = \"a.b\"\norganization_only = true\n",
            ),
            (
                "c.yaml",
                "permissions:\n  - permission: a.b\n    organization_only: true\n",
            ),
            (
                "c.YML",
                "permissions:\n  - permission: a.b\n    organization_only: true\n",
            ),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let catalog = PermissionCatalog::from_file(&path).unwrap();
            assert_eq!(catalog.entries(), [entry("a.b", true)], "{name}");
        }
        let txt = dir.join("c.txt");
        std::fs::write(&txt, "").unwrap();
        assert!(
            PermissionCatalog::from_file(&txt)
                .unwrap_err()
                .contains("unknown format")
        );
        let missing = PermissionCatalog::from_file(&dir.join("missing.json")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{").unwrap();
        assert!(
            PermissionCatalog::from_file(&bad)
                .unwrap_err()
                .contains("bad.json")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
