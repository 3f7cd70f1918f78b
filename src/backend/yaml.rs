//! YAML scalars for the backends' escaping filters: every value a template
//! prints becomes a double-quoted scalar with every special character
//! escaped, and `$` written the way the CI system reads a literal `$`.
//! Lists and maps are written in flow style, recursively.

use std::fmt::Write as _;

use minijinja::Value;
use minijinja::value::ValueKind;

/// How a CI system reads `$` in the text of its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dollar {
    /// It substitutes `$NAME` and `${...}` and reads `$$` as `$` (Drone
    /// and Woodpecker before parsing; GitLab and its runner in variables,
    /// images and services): double every `$`.
    Double,
    /// It leaves `$` alone here (GitLab's `script`, read by the shell).
    Keep,
    /// It evaluates `${{ ... }}` (GitHub Actions): write `${{` as an
    /// expression giving that text.
    Expression,
}

/// One value as YAML, for a template's formatter.
pub fn scalar(value: &Value, dollar: Dollar) -> Result<String, minijinja::Error> {
    match value.kind() {
        ValueKind::String => Ok(quote(value.as_str().unwrap_or_default(), dollar)),
        ValueKind::Number | ValueKind::Bool => Ok(quote(&value.to_string(), dollar)),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = value
                .try_iter()?
                .map(|item| scalar(&item, dollar))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("[{}]", items.join(", ")))
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push(format!(
                    "{}: {}",
                    scalar(&key, dollar)?,
                    scalar(&item, dollar)?
                ));
            }
            Ok(format!("{{{}}}", entries.join(", ")))
        }
        other => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("cannot write a {other} value into YAML; guard it with `if`"),
        )),
    }
}

/// A YAML double-quoted scalar that reads back as exactly `text` once the
/// CI system has read its `$`s.
pub fn quote(text: &str, dollar: Dollar) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if dollar == Dollar::Double => out.push_str("$$"),
            '$' if dollar == Dollar::Expression && rest.starts_with("{{") => {
                out.push_str("${{ '${{' }}");
                rest = &rest[2..];
            }
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
        let q = |text| quote(text, Dollar::Double);
        assert_eq!(q("plain"), "\"plain\"");
        assert_eq!(q("a\"b"), "\"a\\\"b\"");
        assert_eq!(q("${X}"), "\"$${X}\"");
        assert_eq!(q("a\nb"), "\"a\\nb\"");
        assert_eq!(q("\u{2028}"), "\"\\u2028\"");
        assert_eq!(q("\u{7}"), "\"\\u0007\"");
        assert_eq!(q("# not a comment: x"), "\"# not a comment: x\"");
    }

    #[test]
    fn dollars_are_written_as_each_system_reads_them() {
        assert_eq!(quote("$HOME ${X}", Dollar::Keep), "\"$HOME ${X}\"");
        assert_eq!(
            quote("a ${{ secrets.X }} $HOME ${X}", Dollar::Expression),
            "\"a ${{ '${{' }} secrets.X }} $HOME ${X}\""
        );
        assert_eq!(quote("${{", Dollar::Expression), "\"${{ '${{' }}\"");
        assert_eq!(quote("$${{", Dollar::Expression), "\"$${{ '${{' }}\"");
    }

    #[test]
    fn lists_and_maps_are_flow_style() {
        let value = Value::from(minijinja::value::Serde(
            serde_json::json!({"a": ["x", "$y"], "b": 1}),
        ));
        assert_eq!(
            scalar(&value, Dollar::Double).unwrap(),
            "{\"a\": [\"x\", \"$$y\"], \"b\": \"1\"}"
        );
    }

    #[test]
    fn none_is_a_template_error() {
        assert!(scalar(&Value::from(()), Dollar::Double).is_err());
    }
}
