//! Docker tag templates (`tags = { push = ["{branch}", "{sha}"] }`): parsed
//! and checked when the manifest is read, filled in when a build is
//! planned. Substituted values are made valid Docker tags; a template whose
//! own text cannot give one is refused. No I/O here.

use std::fmt;

/// Which builds a template is for: it decides the placeholders allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A push to a publish branch.
    Push,
    /// A release tag.
    Release,
}

impl Use {
    fn key(self) -> &'static str {
        match self {
            Use::Push => "push",
            Use::Release => "release",
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Sha,
    ShortSha,
    Service,
    Branch,
    Version,
    Input,
}

/// A parsed tag template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    source: String,
    parts: Vec<Part>,
}

/// The values a build fills in.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The commit built (full).
    pub sha: &'a str,
    /// The service.
    pub service: &'a str,
    /// The branch pushed to (push only).
    pub branch: &'a str,
    /// The release version (release only).
    pub version: &'a str,
    /// The image's `in-<hash>` (empty when not computed).
    pub input: &'a str,
}

/// The longest Docker tag.
const MAX_TAG: usize = 128;

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

impl TagTemplate {
    /// Parses `source` for `use_`; the error says what is wrong.
    pub fn parse(source: &str, use_: Use) -> Result<TagTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or_else(|| {
                        format!("tag template `{source}` has a `{{` without its `}}`")
                    })?;
                    let part = match &rest[1..end] {
                        "sha" => Part::Sha,
                        "short_sha" => Part::ShortSha,
                        "service" => Part::Service,
                        "input" => Part::Input,
                        "branch" if use_ == Use::Push => Part::Branch,
                        "version" if use_ == Use::Release => Part::Version,
                        "branch" | "version" => {
                            return Err(format!(
                                "tag template `{source}`: `{}` is not known in `{}` tags \
                                 (`{{branch}}` is for push, `{{version}}` for release)",
                                &rest[..=end],
                                use_.key()
                            ));
                        }
                        other => {
                            return Err(format!(
                                "tag template `{source}`: unknown placeholder `{{{other}}}`; \
                                 known are `{{sha}}`, `{{short_sha}}`, `{{service}}`, \
                                 `{{input}}`, `{{branch}}` (push) and `{{version}}` (release)"
                            ));
                        }
                    };
                    parts.push(part);
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let text = &rest[..end];
                    if let Some(bad) = text.chars().find(|&c| !is_tag_char(c)) {
                        return Err(format!(
                            "tag template `{source}`: `{bad}` cannot be part of a Docker tag \
                             (letters, digits, `_`, `.` and `-` only)"
                        ));
                    }
                    parts.push(Part::Text(text.to_string()));
                    rest = &rest[end..];
                }
            }
        }
        match parts.first() {
            None => return Err("a tag template is empty".into()),
            Some(Part::Text(text)) if text.starts_with(['.', '-']) => {
                return Err(format!(
                    "tag template `{source}`: a Docker tag cannot start with `.` or `-`"
                ));
            }
            _ => {}
        }
        let fixed: usize = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::ShortSha => 12,
                Part::Sha => 40,
                Part::Input => 15,
                _ => 1,
            })
            .sum();
        if fixed > MAX_TAG {
            return Err(format!(
                "tag template `{source}` gives tags over {MAX_TAG} characters"
            ));
        }
        Ok(TagTemplate {
            source: source.to_string(),
            parts,
        })
    }

    /// The tag for `values`: each value made valid (other characters become
    /// `-`), the whole cut to 128 characters and never starting with `.`
    /// or `-`.
    pub fn render(&self, values: &Values<'_>) -> String {
        let mut tag = String::new();
        for part in &self.parts {
            let value = match part {
                Part::Text(text) => text.as_str(),
                Part::Sha => values.sha,
                Part::ShortSha => &values.sha[..values.sha.len().min(12)],
                Part::Service => values.service,
                Part::Branch => values.branch,
                Part::Version => values.version,
                Part::Input => values.input,
            };
            tag.extend(value.chars().map(|c| if is_tag_char(c) { c } else { '-' }));
        }
        if !tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            tag.insert(0, '_');
        }
        tag.truncate(MAX_TAG);
        tag
    }

    /// Whether it names `{input}`.
    pub fn names_input(&self) -> bool {
        self.parts.contains(&Part::Input)
    }

    /// The defaults: `{branch}` and `{sha}` on push, `latest` and
    /// `{version}` on release.
    pub fn defaults(use_: Use) -> Vec<TagTemplate> {
        let sources: &[&str] = match use_ {
            Use::Push => &["{branch}", "{sha}"],
            Use::Release => &["latest", "{version}"],
        };
        sources
            .iter()
            .filter_map(|s| TagTemplate::parse(s, use_).ok())
            .collect()
    }
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: Values<'static> = Values {
        sha: "0123456789abcdef0123456789abcdef01234567",
        service: "cart",
        branch: "feature/x",
        version: "1.4.0",
        input: "in-0123456789ab",
    };

    #[test]
    fn templates_fill_in_valid_tags() {
        let render = |source: &str, use_| TagTemplate::parse(source, use_).unwrap().render(&VALUES);
        assert_eq!(render("{version}-{service}", Use::Release), "1.4.0-cart");
        assert_eq!(render("{branch}", Use::Push), "feature-x");
        assert_eq!(render("{short_sha}", Use::Push), "0123456789ab");
        assert_eq!(
            render("{service}-{input}", Use::Release),
            "cart-in-0123456789ab"
        );
        assert_eq!(
            render("sha-{sha}", Use::Push),
            format!("sha-{}", VALUES.sha)
        );
        let odd = Values {
            branch: "-weird\"$name",
            ..VALUES
        };
        assert_eq!(
            TagTemplate::parse("{branch}", Use::Push)
                .unwrap()
                .render(&odd),
            "_-weird--name"
        );
        let long = Values {
            branch: &"b".repeat(300),
            ..VALUES
        };
        assert_eq!(
            TagTemplate::parse("{branch}", Use::Push)
                .unwrap()
                .render(&long)
                .len(),
            128
        );
    }

    #[test]
    fn templates_that_cannot_give_a_tag_are_refused() {
        for (source, use_, says) in [
            ("{sha}+x", Use::Push, "`+` cannot be part of a Docker tag"),
            ("{version}", Use::Push, "not known in `push` tags"),
            ("{branch}", Use::Release, "not known in `release` tags"),
            ("{nope}", Use::Push, "unknown placeholder `{nope}`"),
            ("{sha", Use::Push, "without its `}`"),
            ("-x", Use::Push, "cannot start with"),
            ("", Use::Push, "empty"),
        ] {
            let err = TagTemplate::parse(source, use_).unwrap_err();
            assert!(err.contains(says), "{source}: {err}");
        }
        assert!(TagTemplate::parse(&"x".repeat(129), Use::Push).is_err());
    }
}
