//! Organization attributes: their types and options, and whether a value fits an attribute.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::errors::{DomainError, FieldViolation};
use super::validate;

/// Names, option values and text values are all limited like other names.
pub const MAX_VALUE_CHARS: usize = validate::MAX_NAME_CHARS;

/// Snapshots spell it with the proto value names (`ATTRIBUTE_TYPE_TEXT`), as the API's JSON does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AttributeType {
    #[serde(rename = "ATTRIBUTE_TYPE_TEXT")]
    Text,
    #[serde(rename = "ATTRIBUTE_TYPE_NUMBER")]
    Number,
    #[serde(rename = "ATTRIBUTE_TYPE_SINGLE_SELECT")]
    SingleSelect,
    #[serde(rename = "ATTRIBUTE_TYPE_MULTI_SELECT")]
    MultiSelect,
}

impl AttributeType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::Text => "TEXT",
            AttributeType::Number => "NUMBER",
            AttributeType::SingleSelect => "SINGLE_SELECT",
            AttributeType::MultiSelect => "MULTI_SELECT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AttributeType::Text,
            AttributeType::Number,
            AttributeType::SingleSelect,
            AttributeType::MultiSelect,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// cal.com's `type` string of an assigned attribute.
    pub fn wire_name(self) -> &'static str {
        match self {
            AttributeType::Text => "text",
            AttributeType::Number => "number",
            AttributeType::SingleSelect => "singleSelect",
            AttributeType::MultiSelect => "multiSelect",
        }
    }

    pub fn is_select(self) -> bool {
        matches!(
            self,
            AttributeType::SingleSelect | AttributeType::MultiSelect
        )
    }

    /// The request field that carries a value of this type.
    fn value_field(self) -> &'static str {
        match self {
            AttributeType::Text => "text",
            AttributeType::Number => "number",
            AttributeType::SingleSelect => "option_id",
            AttributeType::MultiSelect => "option_ids",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeOption {
    pub id: String,
    pub value: String,
    pub slug: String,
}

/// `Serialize` gives its event snapshot, spelled like the API's JSON (see `model`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub id: String,
    pub organization_id: i64,
    pub name: String,
    pub slug: String,
    #[serde(rename = "type")]
    pub kind: AttributeType,
    pub options: Vec<AttributeOption>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl Attribute {
    pub fn option(&self, id: &str) -> Option<&AttributeOption> {
        self.options.iter().find(|o| o.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct NewAttribute {
    pub organization_id: i64,
    pub name: String,
    pub slug: String,
    pub kind: AttributeType,
    /// Checked option values (select types only).
    pub options: Vec<String>,
}

/// An assignment value as a request carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueInput {
    Text(String),
    Number(f64),
    OptionId(String),
    OptionIds(Vec<String>),
}

impl ValueInput {
    fn field(&self) -> &'static str {
        match self {
            ValueInput::Text(_) => "text",
            ValueInput::Number(_) => "number",
            ValueInput::OptionId(_) => "option_id",
            ValueInput::OptionIds(_) => "option_ids",
        }
    }
}

/// A value that fits its attribute: the text, the number, or the chosen option ids (one for a
/// single select), deduplicated in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedValue {
    Text(String),
    Number(f64),
    Options(Vec<String>),
}

/// The checks a value needs before its attribute is known: text trimmed and 1..=255 characters,
/// a finite number, non-empty option ids (duplicates dropped), at least one of them.
pub fn normalize_value(input: ValueInput) -> Result<ValueInput, Vec<FieldViolation>> {
    match input {
        ValueInput::Text(text) => validate::name("text", &text, MAX_VALUE_CHARS)
            .map(ValueInput::Text)
            .map_err(|v| vec![v]),
        ValueInput::Number(n) if n.is_finite() => Ok(ValueInput::Number(n)),
        ValueInput::Number(_) => Err(vec![FieldViolation::new(
            "number",
            "must be a finite number",
        )]),
        ValueInput::OptionId(id) => {
            let id = id.trim();
            if id.is_empty() {
                Err(vec![FieldViolation::new("option_id", "must not be empty")])
            } else {
                Ok(ValueInput::OptionId(id.to_string()))
            }
        }
        ValueInput::OptionIds(ids) => {
            if ids.is_empty() {
                return Err(vec![FieldViolation::new(
                    "option_ids",
                    "must name at least one option",
                )]);
            }
            let mut violations = Vec::new();
            let mut unique: Vec<String> = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                let id = id.trim();
                if id.is_empty() {
                    violations.push(FieldViolation::new(
                        format!("option_ids[{i}]"),
                        "must not be empty",
                    ));
                } else if !unique.iter().any(|u| u == id) {
                    unique.push(id.to_string());
                }
            }
            if violations.is_empty() {
                Ok(ValueInput::OptionIds(unique))
            } else {
                Err(violations)
            }
        }
    }
}

/// Whether `input` fits `attribute`: the field of its type, options of this attribute only. A
/// missing value names the field the type needs; a value of another type names the field sent.
pub fn check_value(
    attribute: &Attribute,
    input: Option<ValueInput>,
) -> Result<CheckedValue, DomainError> {
    let expected = attribute.kind.value_field();
    let Some(input) = input else {
        return Err(DomainError::invalid(
            expected,
            format!(
                "is required: attribute {:?} is {}",
                attribute.id,
                attribute.kind.as_str()
            ),
        ));
    };
    if input.field() != expected {
        return Err(DomainError::invalid(
            input.field(),
            format!(
                "does not fit attribute {:?}, which is {} and takes {expected}",
                attribute.id,
                attribute.kind.as_str()
            ),
        ));
    }
    let foreign = |field: String, id: &str| {
        FieldViolation::new(
            field,
            format!("{id:?} is not an option of attribute {:?}", attribute.id),
        )
    };
    // Violations name positions in the request's list, not in the deduplicated one.
    let requested = match &input {
        ValueInput::OptionIds(ids) => ids.clone(),
        _ => Vec::new(),
    };
    match normalize_value(input).map_err(DomainError::InvalidArgument)? {
        ValueInput::Text(text) => Ok(CheckedValue::Text(text)),
        ValueInput::Number(n) => Ok(CheckedValue::Number(n)),
        ValueInput::OptionId(id) => match attribute.option(&id) {
            Some(_) => Ok(CheckedValue::Options(vec![id])),
            None => Err(DomainError::InvalidArgument(vec![foreign(
                "option_id".into(),
                &id,
            )])),
        },
        ValueInput::OptionIds(ids) => {
            let violations: Vec<FieldViolation> = requested
                .iter()
                .map(|id| id.trim())
                .enumerate()
                .filter(|(_, id)| attribute.option(id).is_none())
                .map(|(i, id)| foreign(format!("option_ids[{i}]"), id))
                .collect();
            if violations.is_empty() {
                Ok(CheckedValue::Options(ids))
            } else {
                Err(DomainError::InvalidArgument(violations))
            }
        }
    }
}

/// An option value: trimmed, 1..=255 characters.
pub fn option_value(field: &str, value: &str) -> Result<String, FieldViolation> {
    validate::name(field, value, MAX_VALUE_CHARS)
}

/// Option values are unique within an attribute regardless of case ("Sales" and "sales" would be
/// indistinguishable in a picker).
pub fn same_option_value(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The violations of a create request's option values: bad values and repeats.
pub fn check_new_options(values: &[String]) -> Result<Vec<String>, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    // With their request positions, which violations name.
    let mut accepted: Vec<(usize, String)> = Vec::with_capacity(values.len());
    for (i, raw) in values.iter().enumerate() {
        let field = format!("options[{i}]");
        match option_value(&field, raw) {
            Err(v) => violations.push(v),
            Ok(value) => {
                if let Some((j, _)) = accepted.iter().find(|(_, a)| same_option_value(a, &value)) {
                    violations.push(FieldViolation::new(
                        field,
                        format!("repeats options[{j}] ({value:?})"),
                    ));
                }
                accepted.push((i, value));
            }
        }
    }
    if violations.is_empty() {
        Ok(accepted.into_iter().map(|(_, value)| value).collect())
    } else {
        Err(violations)
    }
}

/// An option's slug: its value's, or a positional one when the value has no slug characters.
pub fn option_slug(value: &str, position: usize) -> String {
    let slug = validate::slugify(value);
    if slug.is_empty() {
        format!("option-{}", position + 1)
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(kind: AttributeType) -> Attribute {
        let option = |id: &str, value: &str| AttributeOption {
            id: id.into(),
            value: value.into(),
            slug: validate::slugify(value),
        };
        Attribute {
            id: "attr_1".into(),
            organization_id: 1,
            name: "Department".into(),
            slug: "department".into(),
            kind,
            options: if kind.is_select() {
                vec![option("opt_a", "Sales"), option("opt_b", "Support")]
            } else {
                Vec::new()
            },
            created_at: DateTime::default(),
            updated_at: DateTime::default(),
            version: 1,
        }
    }

    fn fields(err: DomainError) -> Vec<String> {
        match err {
            DomainError::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn values_fit_their_type() {
        let text = attribute(AttributeType::Text);
        assert_eq!(
            check_value(&text, Some(ValueInput::Text("  Berlin ".into()))).unwrap(),
            CheckedValue::Text("Berlin".into())
        );
        let number = attribute(AttributeType::Number);
        assert_eq!(
            check_value(&number, Some(ValueInput::Number(-2.5))).unwrap(),
            CheckedValue::Number(-2.5)
        );
        let single = attribute(AttributeType::SingleSelect);
        assert_eq!(
            check_value(&single, Some(ValueInput::OptionId("opt_b".into()))).unwrap(),
            CheckedValue::Options(vec!["opt_b".into()])
        );
        let multi = attribute(AttributeType::MultiSelect);
        assert_eq!(
            check_value(
                &multi,
                Some(ValueInput::OptionIds(vec![
                    "opt_b".into(),
                    "opt_a".into(),
                    "opt_b".into()
                ]))
            )
            .unwrap(),
            CheckedValue::Options(vec!["opt_b".into(), "opt_a".into()]),
            "duplicates are dropped, request order kept"
        );
    }

    #[test]
    fn wrong_type_names_the_field_sent_and_missing_names_the_field_needed() {
        let text = attribute(AttributeType::Text);
        assert_eq!(
            fields(check_value(&text, Some(ValueInput::Number(1.0))).unwrap_err()),
            ["number"]
        );
        assert_eq!(fields(check_value(&text, None).unwrap_err()), ["text"]);
        let multi = attribute(AttributeType::MultiSelect);
        assert_eq!(
            fields(check_value(&multi, Some(ValueInput::OptionId("opt_a".into()))).unwrap_err()),
            ["option_id"]
        );
        assert_eq!(
            fields(check_value(&multi, None).unwrap_err()),
            ["option_ids"]
        );
    }

    #[test]
    fn options_must_belong_to_the_attribute() {
        let single = attribute(AttributeType::SingleSelect);
        assert_eq!(
            fields(check_value(&single, Some(ValueInput::OptionId("opt_x".into()))).unwrap_err()),
            ["option_id"]
        );
        let multi = attribute(AttributeType::MultiSelect);
        let input = ValueInput::OptionIds(vec![
            "opt_a".into(),
            "opt_a".into(),
            "opt_x".into(),
            "opt_y".into(),
        ]);
        assert_eq!(
            fields(check_value(&multi, Some(input)).unwrap_err()),
            ["option_ids[2]", "option_ids[3]"],
            "positions are the request's, duplicates included"
        );
    }

    #[test]
    fn shapes_are_checked_before_the_attribute_is_known() {
        assert!(normalize_value(ValueInput::Number(f64::NAN)).is_err());
        assert!(normalize_value(ValueInput::Number(f64::INFINITY)).is_err());
        assert!(normalize_value(ValueInput::Text("   ".into())).is_err());
        assert!(normalize_value(ValueInput::Text("x".repeat(256))).is_err());
        assert!(normalize_value(ValueInput::OptionId(" ".into())).is_err());
        let empty = normalize_value(ValueInput::OptionIds(Vec::new())).unwrap_err();
        assert_eq!(empty[0].field, "option_ids");
        let blank =
            normalize_value(ValueInput::OptionIds(vec!["opt_a".into(), "".into()])).unwrap_err();
        assert_eq!(blank[0].field, "option_ids[1]");
    }

    #[test]
    fn new_options_are_unique_ignoring_case() {
        assert_eq!(
            check_new_options(&[" Sales ".into(), "Support".into()]).unwrap(),
            ["Sales", "Support"]
        );
        let errs = check_new_options(&["".into(), "Sales".into(), "SALES".into()]).unwrap_err();
        let names: Vec<_> = errs.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(names, ["options[0]", "options[2]"]);
        assert!(
            errs[1].description.contains("options[1]"),
            "{}",
            errs[1].description
        );
        assert_eq!(option_slug("Customer Success", 0), "customer-success");
        assert_eq!(option_slug("日本", 2), "option-3");
    }

    #[test]
    fn type_names() {
        for t in [
            AttributeType::Text,
            AttributeType::Number,
            AttributeType::SingleSelect,
            AttributeType::MultiSelect,
        ] {
            assert_eq!(AttributeType::parse(t.as_str()), Some(t));
        }
        assert_eq!(AttributeType::MultiSelect.wire_name(), "multiSelect");
        assert_eq!(AttributeType::parse("text"), None);
    }
}
