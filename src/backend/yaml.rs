//! YAML scalars for the backends' escaping filters: every value a template
//! prints becomes a double-quoted scalar with every special character
//! escaped, and `$` written the way the CI system reads a literal `$`.
//! Lists and maps are written in flow style, recursively.

use std::fmt::Write;

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
    let _ = quote_into(&mut out, text, dollar);
    out
}

/// Whether `c` must be written escaped: controls, YAML's extra line
/// breaks, the BOM and non-characters would be folded or rejected by a
/// YAML parser.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// [`quote`] written straight into `out`: runs of plain characters are
/// copied whole, so a render allocates nothing per value.
pub fn quote_into(out: &mut impl Write, text: &str, dollar: Dollar) -> std::fmt::Result {
    out.write_char('"')?;
    // Most values (names, paths, images, commands) are printable ASCII
    // with nothing to escape: one pass that the compiler vectorises, not
    // a character at a time (a ninth of rendering a large plan).
    let as_is = text.bytes().fold(true, |as_is, b| {
        as_is & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\') & (b != b'$')
    });
    if as_is {
        out.write_str(text)?;
        return out.write_char('"');
    }
    let mut plain = 0; // start of the run not yet written
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let escaped: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '$' if dollar == Dollar::Double => Some("$$"),
            '$' if dollar == Dollar::Expression && text[at + 1..].starts_with("{{") => {
                // `${{` becomes an expression that gives that text.
                chars.next();
                chars.next();
                Some("${{ '${{' }}")
            }
            c if c.is_ascii() && !c.is_ascii_control() => None,
            c if needs_escape(c) => {
                out.write_str(&text[plain..at])?;
                write!(out, "\\u{:04x}", c as u32)?;
                plain = at + c.len_utf8();
                continue;
            }
            _ => None,
        };
        if let Some(escaped) = escaped {
            out.write_str(&text[plain..at])?;
            out.write_str(escaped)?;
            plain = chars.peek().map_or(text.len(), |&(next, _)| next);
        }
    }
    out.write_str(&text[plain..])?;
    out.write_char('"')
}

/// YAML text a backend writes itself, for a shipped template it need not
/// evaluate: every value is quoted exactly as the templates' formatter
/// quotes it, and the helpers write what the templates' `{% if %}`s and
/// `{% for %}`s around a value write.
pub struct Text {
    /// The text so far.
    pub text: String,
    dollar: Dollar,
}

impl Text {
    /// Empty, with room for `capacity` bytes.
    pub fn new(dollar: Dollar, capacity: usize) -> Text {
        Text {
            text: String::with_capacity(capacity),
            dollar,
        }
    }

    /// Template text, as it is.
    pub fn raw(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// A value, quoted.
    pub fn scalar(&mut self, value: &str) {
        // Writing into a `String` cannot fail.
        let _ = quote_into(&mut self.text, value, self.dollar);
    }

    /// What a template prints through its `literal` filter: quoted, `$`
    /// kept.
    pub fn literal(&mut self, value: &str) {
        let _ = quote_into(&mut self.text, value, Dollar::Keep);
    }

    /// `{indent}{key}: value` and a newline.
    pub fn line(&mut self, indent: &str, key: &str, value: &str) {
        self.raw(indent);
        self.raw(key);
        self.raw(": ");
        self.scalar(value);
        self.raw("\n");
    }

    /// [`Text::line`] when the value is set and not empty (a template's
    /// `{% if value %}`).
    pub fn optional(&mut self, indent: &str, key: &str, value: Option<&str>) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.line(indent, key, value);
        }
    }

    /// `{indent}"key": value` and a newline: a line of a map whose keys
    /// are values too.
    pub fn pair(&mut self, indent: &str, key: &str, value: &str) {
        self.raw(indent);
        self.scalar(key);
        self.raw(": ");
        self.scalar(value);
        self.raw("\n");
    }

    /// An environment variable read from a CI secret, at `indent`.
    pub fn secret(&mut self, indent: &str, name: &str, secret: &str) {
        self.raw(indent);
        self.scalar(name);
        self.raw(":\n");
        self.raw(indent);
        self.line("  ", "from_secret", secret);
    }

    /// The two comment lines every shipped template starts with.
    pub fn header(&mut self, event: Option<&str>, reason: &str) {
        self.raw("# Generated by ripple from services.toml: do not edit by hand.\n# ");
        if let Some(event) = event {
            self.scalar(event);
            self.raw(": ");
        }
        self.scalar(reason);
        self.raw("\n");
    }

    /// The first lines of a step (Drone's and Woodpecker's): its name,
    /// its image, and `detach` when it runs in the background.
    pub fn step(&mut self, name: &str, image: &str, detach: bool) {
        self.line("- ", "name", name);
        self.line("  ", "image", image);
        if detach {
            self.raw("  detach: true\n");
        }
    }

    /// The start of a docker plugin step's `settings` (Drone's and
    /// Woodpecker's): the image, where to log in, how to build it, and its
    /// tags. The plugin's own keys follow, then [`Text::docker_login`].
    pub fn docker_settings(
        &mut self,
        repo: &str,
        registry: Option<&str>,
        dockerfile: &str,
        context: &str,
        tags: &[String],
    ) {
        self.raw("  settings:\n");
        self.line("    ", "repo", repo);
        self.optional("    ", "registry", registry);
        self.line("    ", "dockerfile", dockerfile);
        self.line("    ", "context", context);
        self.list("    ", "tags", tags);
    }

    /// The end of a docker plugin step's `settings`: the registry login,
    /// from the `docker_username` and `docker_password` secrets.
    pub fn docker_login(&mut self) {
        self.raw(
            "    username:\n      from_secret: docker_username\n    \
             password:\n      from_secret: docker_password\n",
        );
    }

    /// A container beside the steps (Drone's and Woodpecker's `services`).
    pub fn sidecar(
        &mut self,
        name: &str,
        image: &str,
        environment: &std::collections::BTreeMap<String, String>,
    ) {
        self.line("- ", "name", name);
        self.line("  ", "image", image);
        if !environment.is_empty() {
            self.raw("  environment:\n");
            for (key, value) in environment {
                self.pair("    ", key, value);
            }
        }
    }

    /// About how much text an item of [`Text::runs_in_order`] takes (a
    /// pipeline or job of a few steps): a run's text is sized by it.
    const ITEM_BYTES: usize = 1024;

    /// `write`s each item in turn, and hands the text to `out` in order,
    /// a run of items at a time, the items written on two threads when
    /// there are many (see [`crate::parallel::in_order`]).
    pub fn runs_in_order<T: Sync>(
        dollar: Dollar,
        items: &[T],
        write: impl Fn(&mut Text, &T) + Sync,
        mut out: impl FnMut(&str) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        crate::parallel::in_order(
            items,
            |run| {
                let mut text = Text::new(dollar, run.len() * Text::ITEM_BYTES);
                run.iter().for_each(|item| write(&mut text, item));
                text
            },
            |text| out(&text.text),
        )
    }

    /// One `{indent}- item` line per item.
    pub fn items(&mut self, indent: &str, items: impl IntoIterator<Item = impl AsRef<str>>) {
        for item in items {
            self.raw(indent);
            self.raw("- ");
            self.scalar(item.as_ref());
            self.raw("\n");
        }
    }

    /// `{indent}{key}:` and [`Text::items`], when there are items (a
    /// template's `{% if list %}`).
    pub fn list(&mut self, indent: &str, key: &str, items: &[impl AsRef<str>]) {
        if items.is_empty() {
            return;
        }
        self.raw(indent);
        self.raw(key);
        self.raw(":\n");
        self.items(indent, items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Character by character, as the quoting was first written: the runs
    /// copied whole must give the same text.
    fn reference(text: &str, dollar: Dollar) -> String {
        let mut out = String::from('"');
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
                c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn runs_copied_whole_quote_like_characters_one_by_one() {
        let texts = [
            "",
            "plain",
            "évé ünïcödé 日本",
            "a\"b\\c\nd\re\tf",
            "$HOME ${X} ${{ secrets.X }} $${{",
            "${{",
            "x${{",
            "\u{1}\u{7f}\u{85}\u{2028}\u{2029}\u{feff}\u{fffe}\u{ffff}",
            "trailing $",
            "é\u{2028}é",
        ];
        // Every ASCII character among plain ones, and a plain text long
        // enough for the vectorised check: the shortcut must agree.
        let ascii = (0..128u8).map(|b| format!("run-{}-end/x", char::from(b)));
        let long = "services/g0001/svc-00042/Dockerfile".repeat(5);
        for text in texts
            .map(String::from)
            .into_iter()
            .chain(ascii)
            .chain([long])
        {
            let text = text.as_str();
            for dollar in [Dollar::Double, Dollar::Keep, Dollar::Expression] {
                assert_eq!(
                    quote(text, dollar),
                    reference(text, dollar),
                    "{text:?} {dollar:?}"
                );
            }
        }
    }

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
