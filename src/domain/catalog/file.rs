//! The catalog file: a list of `{permission, organization_only, description}` under the key
//! `permissions`, in TOML, YAML or JSON. The built-in default is such a file, and so is an
//! operator's `--permissions-file`; both go through [`PermissionCatalog::parse`]. Reading the
//! file is the caller's business: the domain only sees its text.

use serde::Deserialize;

use super::{CatalogEntry, PermissionCatalog};

/// The syntaxes of a catalog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    Json,
    Toml,
    Yaml,
}

impl CatalogFormat {
    /// The format a file extension names (`json`, `toml`, `yaml`, `yml`; any case).
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }
}

/// The whole file. Unknown keys are refused rather than ignored: a misspelt key would otherwise
/// silently drop what the operator meant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    permissions: Vec<FileEntry>,
}

/// One entry as written, before the catalog's own checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    permission: String,
    /// Required: defaulting it to `false` would silently widen who may hold the permission.
    organization_only: bool,
    /// Optional; YAML's empty value (`description:`) and JSON's `null` mean none.
    #[serde(default)]
    description: Option<String>,
}

impl PermissionCatalog {
    /// Parses the text of a catalog file. A syntax or shape error names its line and column
    /// (wherever the parser knows them); an entry the catalog refuses is named by its position,
    /// e.g. `permissions[3]: "a..b" is not a well-formed permission ...`.
    pub fn parse(text: &str, format: CatalogFormat) -> Result<Self, String> {
        let file = match format {
            CatalogFormat::Json => {
                serde_json::from_str::<CatalogFile>(text).map_err(|e| e.to_string())
            }
            CatalogFormat::Toml => {
                toml::from_str::<CatalogFile>(text).map_err(|e| toml_error(text, &e))
            }
            CatalogFormat::Yaml => {
                yaml_serde::from_str::<CatalogFile>(text).map_err(|e| e.to_string())
            }
        }?;
        let entries = file
            .permissions
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                CatalogEntry::new(
                    &e.permission,
                    e.organization_only,
                    e.description.as_deref().unwrap_or_default(),
                )
                .map_err(|e| format!("permissions[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_entries(entries)
    }
}

/// The toml crate's message with its position said the way serde_json and yaml_serde say it
/// (`... at line L column C`), on one line instead of its multi-line source excerpt.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_string();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{message} at line {line} column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, format: CatalogFormat) -> Result<PermissionCatalog, String> {
        PermissionCatalog::parse(text, format)
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

    /// The single entry `a.b`, organization-only, with `description`.
    fn just_a_b(description: &str) -> Vec<(String, bool, String)> {
        vec![("a.b".to_string(), true, description.to_string())]
    }

    /// Every input must fail, with an error containing its needle.
    fn assert_rejected(format: CatalogFormat, cases: &[(&str, &str)]) {
        for &(text, needle) in cases {
            let err = parse(text, format).unwrap_err();
            assert!(err.contains(needle), "{format:?} {text:?}: {err}");
        }
    }

    #[test]
    fn format_from_extension() {
        for (extension, format) in [
            ("json", Some(CatalogFormat::Json)),
            ("JSON", Some(CatalogFormat::Json)),
            ("toml", Some(CatalogFormat::Toml)),
            ("yaml", Some(CatalogFormat::Yaml)),
            ("yml", Some(CatalogFormat::Yaml)),
            ("YML", Some(CatalogFormat::Yaml)),
            ("txt", None),
            ("", None),
        ] {
            assert_eq!(
                CatalogFormat::from_extension(extension),
                format,
                "{extension}"
            );
        }
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
            summary(&parse(text, CatalogFormat::Json).unwrap()),
            expected_small()
        );
        assert_rejected(
            CatalogFormat::Json,
            &[
                (
                    r#"{"permissions": [{"permission": "a.b"}]}"#,
                    "missing field `organization_only`",
                ),
                (
                    r#"{"permissions": [{"permission": "a.b", "organization_only": "yes"}]}"#,
                    "expected a boolean",
                ),
                (
                    r#"{"permissions": [{"permission": "a.b", "organization_only": true, "extra": 1}]}"#,
                    "unknown field `extra`",
                ),
                (
                    r#"{"permissions": [{"permission": "a.b", "permission": "c.d", "organization_only": true}]}"#,
                    "duplicate field `permission`",
                ),
                (
                    r#"{"permissions": [], "other": 1}"#,
                    "unknown field `other`",
                ),
                (r#"{"permissions": []}"#, "the permission catalog is empty"),
                (
                    r#"{"permissions": [{"permission": "a", "organization_only": true}]}"#,
                    "permissions[0]: \"a\" is not a well-formed permission",
                ),
                (r#"[]"#, "expected struct CatalogFile"),
                ("", "EOF"),
            ],
        );
        let err = parse(
            "{\n\"permissions\": [\n{\"permission\": \"a.b\", \"organization_only\": 1}]}",
            CatalogFormat::Json,
        )
        .unwrap_err();
        assert!(err.ends_with("at line 3 column 44"), "{err}");
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
            summary(&parse(text, CatalogFormat::Toml).unwrap()),
            expected_small()
        );
    }

    #[test]
    fn toml_inline_tables() {
        let text = "permissions = [\r\n  { permission = \"team.read\", organization_only = false, description = \"View teams\" },\r\n  # a comment between entries\r\n  { permission = \"organization.attributes.read\", organization_only = true, description = 'Attrs: \"quoted\" # not a comment' },\r\n  {permission=\"report.export\",organization_only=false},\r\n]\r\n";
        assert_eq!(
            summary(&parse(text, CatalogFormat::Toml).unwrap()),
            expected_small()
        );
        let escapes = r#"permissions = [{ permission = "a.b", organization_only = true, description = "tab\there \u00e9\\" }]"#;
        let catalog = parse(escapes, CatalogFormat::Toml).unwrap();
        assert_eq!(catalog.entries()[0].description, "tab\there \u{e9}\\");
    }

    /// TOML that the former hand-written subset parser refused, and that is valid TOML 1.1.
    #[test]
    fn toml_beyond_the_former_subset() {
        for text in [
            "[[permissions]]\npermission = \"a.b\"\norganization_only = true\ndescription = \"\"\"x\"\"\"\n",
            "permissions = [{ permission = \"a.b\",\n organization_only = true, description = \"x\" }]\n",
            "permissions = [{ permission = \"a.b\", organization_only = true, description = \"x\", }]\n",
        ] {
            let catalog = parse(text, CatalogFormat::Toml).unwrap();
            assert_eq!(summary(&catalog), just_a_b("x"), "{text:?}");
        }
    }

    #[test]
    fn toml_rejections() {
        assert_rejected(
            CatalogFormat::Toml,
            &[
                (
                    "[permissions]\npermission = \"a.b\"\n",
                    "invalid type: map, expected a sequence",
                ),
                ("[[roles]]\npermission = \"a.b\"\n", "unknown field `roles`"),
                (
                    "[[permissions]]\npermission = \"a.b\"\norganization_only = yes\n",
                    "line 3 column 21",
                ),
                (
                    "[[permissions]]\npermission = \"a.b\"\norganization_only = 1\n",
                    "invalid type: integer `1`, expected a boolean",
                ),
                (
                    "[[permissions]]\npermission = \"a.b\"\npermission = \"c.d\"\norganization_only = true\n",
                    "duplicate key at line 3",
                ),
                (
                    "[[permissions]]\npermission = \"a.b\"\n",
                    "missing field `organization_only`",
                ),
                (
                    "[[permissions]]\npermission = \"a.b\"\norganization_only = true\nextra = true\n",
                    "unknown field `extra`",
                ),
                (
                    "[[permissions]]\npermission.name = \"a.b\"\n",
                    "invalid type: map, expected a string",
                ),
                (
                    "[[permissions]]\npermission = \"a.b\" organization_only = true\n",
                    "line 2 column 20",
                ),
                (
                    "[[permissions]]\ndescription = \"\"\"x\"\"\"\n",
                    "missing field `permission`",
                ),
                ("[[permissions]]\ndescription = \"\\q\"\n", "escape"),
                ("permissions = []\n[[permissions]]\n", "duplicate key"),
                ("other = true\npermissions = []\n", "unknown field `other`"),
                ("permissions = [\n", "unclosed array"),
                ("permissions = []\n", "the permission catalog is empty"),
                ("", "missing field `permissions`"),
                ("x = truex\n", "line 1 column 5"),
                (
                    "[[permissions]]\npermission = \"a..b\"\norganization_only = true\n",
                    "permissions[0]: \"a..b\" is not a well-formed permission",
                ),
            ],
        );
        // Errors are one line, with the position where the toml crate points.
        let unterminated = "[[permissions]]\npermission = \"a.b\norganization_only = true\n";
        let err = parse(unterminated, CatalogFormat::Toml).unwrap_err();
        assert!(err.ends_with("at line 2 column 18"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = parse(
            "\n\n[[permissions]]\npermission = 12\n",
            CatalogFormat::Toml,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "invalid type: integer `12`, expected a string at line 4 column 14"
        );
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
            summary(&parse(text, CatalogFormat::Yaml).unwrap()),
            expected_small()
        );
    }

    #[test]
    fn yaml_compact_and_flow_style() {
        let text = "permissions:\r\n- {permission: team.read, organization_only: false, description: View teams}\r\n- permission: 'organization.attributes.read'\r\n  organization_only: true\r\n  description: 'Attrs: \"quoted\" # not a comment'\r\n- { \"permission\": \"report.export\", organization_only: false, }\r\n";
        assert_eq!(
            summary(&parse(text, CatalogFormat::Yaml).unwrap()),
            expected_small()
        );
        let one_line = "permissions: [{permission: a.b, organization_only: true, description: \"it's \\u00e9\"}]";
        let catalog = parse(one_line, CatalogFormat::Yaml).unwrap();
        assert_eq!(catalog.entries()[0].description, "it's \u{e9}");
        let apostrophes = "permissions:\n  - permission: a.b\n    organization_only: true\n    description: Don't panic # it's fine\n  - permission: a.c\n    organization_only: true\n    description: 'It''s' # x\n";
        let catalog = parse(apostrophes, CatalogFormat::Yaml).unwrap();
        assert_eq!(catalog.entries()[0].description, "Don't panic");
        assert_eq!(catalog.entries()[1].description, "It's");
        let empty_description =
            "permissions:\n  - permission: a.b\n    organization_only: true\n    description:\n";
        assert_eq!(
            parse(empty_description, CatalogFormat::Yaml)
                .unwrap()
                .entries()[0]
                .description,
            ""
        );
    }

    /// YAML that the former hand-written subset parser refused, and that is valid YAML.
    #[test]
    fn yaml_beyond_the_former_subset() {
        let cases = [
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n    description: >\n      folded\n",
                "folded\n",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n    description: first\n      second\n",
                "first second",
            ),
            (
                "permissions:\n  - permission: a.b\n    organization_only: true\n    description: \"first\n      second\"\n",
                "first second",
            ),
            (
                "permissions: [{permission: a.b,\n  organization_only: true}]\n",
                "",
            ),
            (
                "permissions:\n  - &x permission: a.b\n    organization_only: true\n    description: *x\n",
                "permission",
            ),
            (
                "permissions:\n  - permission: !!str a.b\n    organization_only: true\n",
                "",
            ),
            (
                "%YAML 1.2\n---\npermissions: [{permission: a.b, organization_only: true}]\n",
                "",
            ),
        ];
        for (text, description) in cases {
            let catalog = parse(text, CatalogFormat::Yaml).unwrap();
            assert_eq!(summary(&catalog), just_a_b(description), "{text:?}");
        }
    }

    #[test]
    fn yaml_rejections() {
        assert_rejected(
            CatalogFormat::Yaml,
            &[
                ("--- permissions: []\n", "expected struct CatalogFile"),
                (
                    "permissions:\n- permission: a.b\n  organization_only: true\nother:\n",
                    "unknown field `other`",
                ),
                (
                    "permissions:\n  - permission: a.b\n    organization_only: true\n  other: 1\n",
                    "did not find expected '-' indicator at line 4 column 3",
                ),
                (
                    "permissions: []\n...\npermissions: []\n",
                    "more than one document",
                ),
                (
                    "permissions:\n  - permission: a.b\n     organization_only: true\n",
                    "mapping values are not allowed",
                ),
                (
                    "permissions:\n  - permission: a.b\n   organization_only: true\n",
                    "missing field `organization_only`",
                ),
                (
                    "permissions:\n  - &x permission: a.b\n",
                    "missing field `organization_only`",
                ),
                ("permissions:\n  - permission: *x\n", "unknown anchor"),
                (
                    "permissions:\n  - permission: !!str a.b\n",
                    "missing field `organization_only`",
                ),
                (
                    "permissions:\n  - permission: a.b\n    permission: a.c\n    organization_only: true\n",
                    "duplicate field `permission`",
                ),
                (
                    "permissions:\n  - permission: a.b\n    organization_only: yes\n",
                    "expected a boolean",
                ),
                (
                    "permissions:\n  - permission: a.b\n    organization_only: true\n    extra: 1\n",
                    "unknown field `extra`",
                ),
                (
                    "permissions:\n  - permission: a.b\n    description: x: y\n",
                    "mapping values are not allowed",
                ),
                (
                    "permissions:\n\t- permission: a.b\n",
                    "found character that cannot start any token",
                ),
                (
                    "permissions: []\n---\npermissions: []\n",
                    "more than one document",
                ),
                ("permissions: []\nother: 1\n", "unknown field `other`"),
                (
                    "permissions:\n  - - a.b\n",
                    "invalid type: sequence, expected struct FileEntry",
                ),
                ("- permission: a.b\n", "expected struct CatalogFile"),
                (
                    "permissions: a.b\n",
                    "invalid type: string \"a.b\", expected a sequence",
                ),
                (
                    "%YAML 1.2\n---\npermissions: []\n",
                    "the permission catalog is empty",
                ),
                ("", "missing field `permissions`"),
            ],
        );
        // A shape error names the entry and its line; a misindented key past a complete entry is
        // a syntax error at its own line.
        let err = parse(
            "permissions:\n  - permission: a.b\n    organization_only: yes\n",
            CatalogFormat::Yaml,
        )
        .unwrap_err();
        assert!(
            err.starts_with("permissions[0].organization_only: ")
                && err.ends_with("at line 3 column 24"),
            "{err}"
        );
        let err = parse(
            "permissions:\n  - permission: a.b\n    organization_only: true\n   description: x\n",
            CatalogFormat::Yaml,
        )
        .unwrap_err();
        assert!(err.contains("at line 4 column 4"), "{err}");
    }

    #[test]
    fn entries_the_catalog_refuses_are_named_by_position() {
        let json = r#"{"permissions": [
            {"permission": "a.b", "organization_only": true},
            {"permission": "team.*", "organization_only": false}
        ]}"#;
        let toml = "[[permissions]]\npermission = \"a.b\"\norganization_only = true\n\n[[permissions]]\npermission = \"team.*\"\norganization_only = false\n";
        let yaml = "permissions:\n  - permission: a.b\n    organization_only: true\n  - permission: team.*\n    organization_only: false\n";
        for (text, format) in [
            (json, CatalogFormat::Json),
            (toml, CatalogFormat::Toml),
            (yaml, CatalogFormat::Yaml),
        ] {
            let err = parse(text, format).unwrap_err();
            assert!(
                err.starts_with("permissions[1]: \"team.*\" is not a well-formed permission"),
                "{format:?}: {err}"
            );
        }
        let twice = "permissions: [{permission: a.b, organization_only: true}, {permission: a.b, organization_only: false}]";
        let err = parse(twice, CatalogFormat::Yaml).unwrap_err();
        assert!(
            err.contains("\"a.b\" appears twice in the permission catalog (positions 0 and 1)"),
            "{err}"
        );
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
            (json.to_string(), CatalogFormat::Json),
            (toml, CatalogFormat::Toml),
            (yaml, CatalogFormat::Yaml),
        ] {
            let parsed = parse(&text, format).unwrap();
            assert_eq!(parsed.entries(), catalog.entries(), "{format:?}");
        }
    }
}
