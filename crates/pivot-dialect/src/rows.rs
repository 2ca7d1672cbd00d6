//! Result rows as text, the way the text protocol delivers them.

use std::collections::BTreeMap;

/// One result row: column name -> value (`None` for SQL NULL).
pub type TextRow = BTreeMap<String, Option<String>>;

/// The first of `names` present and not NULL.
pub(crate) fn text<'a>(row: &'a TextRow, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| row.get(*n).and_then(|v| v.as_deref()))
}

pub(crate) fn text_or_empty(row: &TextRow, names: &[&str]) -> String {
    text(row, names).unwrap_or_default().to_string()
}

pub(crate) fn number(row: &TextRow, names: &[&str]) -> Option<u64> {
    text(row, names).and_then(|v| v.trim().parse().ok())
}

/// Seconds with a fraction (`0.250`) as milliseconds.
pub(crate) fn seconds_as_ms(row: &TextRow, names: &[&str]) -> Option<u64> {
    let v: f64 = text(row, names)?.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 1000.0).round() as u64)
}

/// `ON`, `1`, `YES`, `TRUE` (any case) are true.
pub(crate) fn flag(row: &TextRow, names: &[&str]) -> Option<bool> {
    text(row, names).map(|v| matches!(v.trim().to_ascii_uppercase().as_str(), "ON" | "1" | "YES" | "TRUE"))
}

/// Turn `SHOW VARIABLES`-style rows (`Variable_name`, `Value`) into a map with
/// lower-case names.
pub(crate) fn name_value_map(rows: &[TextRow]) -> BTreeMap<String, String> {
    rows.iter()
        .filter_map(|r| {
            let name = text(r, &["Variable_name", "VARIABLE_NAME"])?;
            let value = text(r, &["Value", "VARIABLE_VALUE"]).unwrap_or_default();
            Some((name.to_ascii_lowercase(), value.to_string()))
        })
        .collect()
}
