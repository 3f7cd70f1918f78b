//! The minijinja environment every backend renders with: its templates
//! (shipped, or replaced by name from `--templates`) and its escaping
//! filter installed as the formatter, so no template can print a value
//! unescaped. What the template itself writes as it is (an expression, a
//! script line the shell reads) goes through the `literal` filter, which
//! keeps `$` and still quotes the YAML.

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use super::yaml::{self, Dollar};
use crate::error::{Error, Result};
use crate::plan::{Job, Plan};

/// A loaded set of templates with one escaping filter.
pub struct Templates {
    env: Environment<'static>,
    /// Names `--templates` replaced or added.
    overridden: Vec<String>,
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
        let mut overridden = Vec::with_capacity(overrides.len());
        for (name, source) in overrides {
            overridden.push(name.clone());
            add(&mut env, name, source)?;
        }
        Ok(Templates { env, overridden })
    }

    /// Whether template `name` is the one ripple ships (no `--templates`
    /// file replaced it): a backend may then write its text directly.
    pub fn is_shipped(&self, name: &str) -> bool {
        !self.overridden.iter().any(|o| o == name)
    }

    /// Renders template `name` with `value` bound to `key`.
    pub fn render(&self, name: &str, key: &str, value: &impl Serialize) -> Result<String> {
        rendered(|text| self.render_to(name, key, value, text))
    }

    /// Renders template `name` with `value` bound to `key` into `out` as
    /// it goes, holding none of the text. A failed write fails the render
    /// (the writer keeps its own error to report).
    pub fn render_to(
        &self,
        name: &str,
        key: &str,
        value: &impl Serialize,
        out: &mut dyn std::io::Write,
    ) -> Result<()> {
        let failed = |source| Error::Template {
            name: name.to_string(),
            source,
        };
        let template = self.env.get_template(name).map_err(failed)?;
        let value = Value::from(minijinja::value::Serde(value));
        let context = Value::from(std::collections::BTreeMap::from([(key.to_string(), value)]));
        // The template writes a few bytes at a time: gathered here, they
        // cross the `dyn Write` once per buffer rather than once per piece.
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, out);
        template
            .render_captured_to(&context, &mut buffered)
            .map(drop)
            .map_err(failed)?;
        // A failed flush is the writer's to report.
        let _ = std::io::Write::flush(&mut buffered);
        Ok(())
    }
}

/// The text `write` writes, as a `String`: for a caller that holds the
/// document whole (`generate`, a test).
pub fn rendered(write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<String> {
    let mut text = Vec::new();
    write(&mut text)?;
    // The formatter, the templates and the backends' writers write only
    // `str`s.
    Ok(String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
}

/// A list a template reads item by item: item `i` is lowered from the
/// plan's job `i` when the template reaches it, and dropped after, so that
/// neither the lowered plan nor its value tree is ever whole in memory.
pub fn per_job(plan: &Arc<Plan>, lower: fn(&Plan, &Job) -> Value) -> Value {
    Value::from_object(PerJob {
        plan: Arc::clone(plan),
        lower,
    })
}

struct PerJob {
    plan: Arc<Plan>,
    lower: fn(&Plan, &Job) -> Value,
}

impl std::fmt::Debug for PerJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} jobs>", self.plan.jobs.len())
    }
}

impl Object for PerJob {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let job = self.plan.jobs.get(key.as_usize()?)?;
        Some((self.lower)(&self.plan, job))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.plan.jobs.len())
    }
}

/// [`per_job`] for a backend that lowers a job into several items:
/// `count` says how many, without lowering, so that the list's length is
/// known (`|length`, `loop.last`) and an item is found by its index.
pub fn per_job_flat(
    plan: &Arc<Plan>,
    lower: fn(&Job) -> Vec<Value>,
    count: fn(&Job) -> usize,
) -> Value {
    let starts = std::iter::once(0)
        .chain(plan.jobs.iter().scan(0, |total, job| {
            *total += count(job);
            Some(*total)
        }))
        .collect();
    Value::from_object(PerJobFlat {
        plan: Arc::clone(plan),
        lower,
        starts,
    })
}

struct PerJobFlat {
    plan: Arc<Plan>,
    lower: fn(&Job) -> Vec<Value>,
    /// Job `j`'s items are `starts[j]..starts[j + 1]`.
    starts: Vec<usize>,
}

impl std::fmt::Debug for PerJobFlat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<items of {} jobs>", self.plan.jobs.len())
    }
}

impl Object for PerJobFlat {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let index = key.as_usize()?;
        // The last job whose items start at or before `index`.
        let job = self
            .starts
            .partition_point(|&start| start <= index)
            .checked_sub(1)?;
        let item = (self.lower)(self.plan.jobs.get(job)?)
            .into_iter()
            .nth(index - self.starts[job])?;
        Some(item)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let this = Arc::clone(self);
        let total = self.starts.last().copied().unwrap_or(0);
        let mut job = 0;
        let mut pending = Vec::new().into_iter();
        let items = std::iter::from_fn(move || {
            loop {
                if let Some(item) = pending.next() {
                    return Some(item);
                }
                let next = this.plan.jobs.get(job)?;
                pending = (this.lower)(next).into_iter();
                debug_assert_eq!(pending.len(), this.starts[job + 1] - this.starts[job]);
                job += 1;
            }
        });
        // The exact length, for `loop.length` and `loop.last`.
        Enumerator::Iter(Box::new(Counted { items, left: total }))
    }
}

/// An iterator that says how many items it has left.
struct Counted<I> {
    items: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.items.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

fn add(env: &mut Environment<'static>, name: String, source: String) -> Result<()> {
    env.add_template_owned(name.clone(), source)
        .map_err(|source| Error::Template { name, source })
}
