//! The minijinja environment every backend renders with: its templates
//! (shipped, or replaced by name from `--templates`) and its escaping
//! filter installed as the formatter, so no template can print a value
//! unescaped. What the template itself writes as it is (an expression, a
//! script line the shell reads) goes through the `literal` filter, which
//! keeps `$` and still quotes the YAML.

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use super::yaml::{self, Dollar};
use crate::error::{Error, Result};

/// A loaded set of templates with one escaping filter.
pub struct Templates {
    env: Environment<'static>,
    /// The process ends after this render: the value tree a render builds
    /// is not freed piece by piece (a quarter of a large plan's time).
    one_run: bool,
}

impl Templates {
    /// `shipped` templates, with `overrides` (name, source) replacing or
    /// adding to them; every printed value is a YAML scalar with `$`
    /// written as `dollar` says, but for `literal` text.
    pub fn new(
        dollar: Dollar,
        shipped: &[(&'static str, &'static str)],
        overrides: Vec<(String, String)>,
    ) -> Result<Templates> {
        let mut env = Environment::new();
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true);
        env.set_syntax(syntax.build().map_err(|source| Error::Template {
            name: "(syntax)".into(),
            source,
        })?);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_formatter(move |out, _state, value| {
            let dollar = if value.is_safe() {
                Dollar::Keep
            } else {
                dollar
            };
            // Strings, nearly every value, go straight to the output.
            let written = match value.as_str() {
                Some(text) if value.kind() == minijinja::value::ValueKind::String => {
                    yaml::quote_into(out, text, dollar)
                }
                _ => std::fmt::Write::write_str(out, &yaml::scalar(value, dollar)?),
            };
            written.map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed")
            })
        });
        env.add_filter("literal", |text: String| Value::from_safe_string(text));
        for (name, source) in shipped {
            add(&mut env, name.to_string(), source.to_string())?;
        }
        for (name, source) in overrides {
            add(&mut env, name, source)?;
        }
        Ok(Templates {
            env,
            one_run: false,
        })
    }

    /// For a command that exits after rendering (not `serve`): what a
    /// render builds is left for the process's end to free.
    pub fn for_one_run(mut self) -> Templates {
        self.one_run = true;
        self
    }

    /// Renders template `name` with `value` bound to `key`.
    pub fn render(&self, name: &str, key: &str, value: &impl Serialize) -> Result<String> {
        self.render_with(name, key, value, false)
    }

    /// [`Templates::render`] for the one document of a run (Drone's file,
    /// GitLab's pipeline, GitHub's workflow): when the process ends after
    /// it, the value tree is left for the exit to free. Not for a render
    /// per file, whose trees would pile up.
    pub fn render_whole(&self, name: &str, key: &str, value: &impl Serialize) -> Result<String> {
        self.render_with(name, key, value, self.one_run)
    }

    fn render_with(
        &self,
        name: &str,
        key: &str,
        value: &impl Serialize,
        keep: bool,
    ) -> Result<String> {
        let failed = |source| Error::Template {
            name: name.to_string(),
            source,
        };
        let template = self.env.get_template(name).map_err(failed)?;
        let value = Value::from(minijinja::value::Serde(value));
        let context = Value::from(std::collections::BTreeMap::from([(key.to_string(), value)]));
        let rendered = template.render(&context).map_err(failed);
        if keep {
            // A reference kept forever: the tree is never dropped.
            std::mem::forget(context);
        }
        rendered
    }
}

fn add(env: &mut Environment<'static>, name: String, source: String) -> Result<()> {
    env.add_template_owned(name.clone(), source)
        .map_err(|source| Error::Template { name, source })
}
