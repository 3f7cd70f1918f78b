//! Drone's escaping filter: every value a Drone template prints is a YAML
//! double-quoted scalar with `$` doubled, since Drone substitutes `${...}`
//! in the raw text before parsing and reads `$$` as a literal `$`.

use std::fmt::Write as _;

use minijinja::Value;
use minijinja::value::ValueKind;

/// Writes one value as YAML: strings double-quoted with every special
/// character escaped and `$` doubled (Drone substitutes `${...}` in the raw
/// text before parsing, and reads `$$` as a literal `$`); lists and maps in
/// flow style, recursively; numbers and booleans as they are.
pub fn yaml_scalar(value: &Value) -> std::result::Result<String, minijinja::Error> {
    match value.kind() {
        ValueKind::String => Ok(quote(value.as_str().unwrap_or_default())),
        ValueKind::Number | ValueKind::Bool => Ok(quote(&value.to_string())),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = value
                .try_iter()?
                .map(|item| yaml_scalar(&item))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(format!("[{}]", items.join(", ")))
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push(format!("{}: {}", yaml_scalar(&key)?, yaml_scalar(&item)?));
            }
            Ok(format!("{{{}}}", entries.join(", ")))
        }
        other => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("cannot write a {other} value into YAML; guard it with `if`"),
        )),
    }
}

/// A YAML double-quoted scalar that reads back as exactly `text` once Drone
/// has replaced `$$` with `$`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' => out.push_str("$$"),
            // Controls, YAML's extra line breaks, the BOM and non-characters
            // would be folded or rejected by a YAML parser: write them escaped.
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_everything_that_matters() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("${X}"), "\"$${X}\"");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert_eq!(quote("\u{2028}"), "\"\\u2028\"");
        assert_eq!(quote("\u{7}"), "\"\\u0007\"");
        assert_eq!(quote("# not a comment: x"), "\"# not a comment: x\"");
    }

    #[test]
    fn lists_and_maps_are_flow_style() {
        let value = Value::from(minijinja::value::Serde(
            serde_json::json!({"a": ["x", "$y"], "b": 1}),
        ));
        assert_eq!(
            yaml_scalar(&value).unwrap(),
            "{\"a\": [\"x\", \"$$y\"], \"b\": \"1\"}"
        );
    }

    #[test]
    fn none_is_a_template_error() {
        assert!(yaml_scalar(&Value::from(())).is_err());
    }
}
