//! Plans and reports → text: Drone YAML through minijinja templates, JSON,
//! and the dependency graph as DOT or Mermaid. Pure: returns strings.
//!
//! Every value a template prints goes through [`yaml_scalar`], installed as
//! the environment's formatter, so no template can forget to escape:
//! branch names, tags and paths come from people who may not be trusted.

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::changes::ChangeSet;
use crate::error::{Error, Result};
use crate::graph::{Affected, AffectedService};
use crate::manifest::Manifest;
use crate::plan::Plan;

/// The entry template for Drone output.
pub const DRONE_TEMPLATE: &str = "drone.yml.j2";

/// Templates shipped in the binary, by name.
pub const EMBEDDED: &[(&str, &str)] =
    &[(DRONE_TEMPLATE, include_str!("../templates/drone.yml.j2"))];

/// A loaded set of templates.
pub struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    /// The embedded templates, with `overrides` (name, source) replacing or
    /// adding to them.
    pub fn new(overrides: Vec<(String, String)>) -> Result<Renderer> {
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
        env.set_formatter(|out, _state, value| {
            let text = yaml_scalar(value)?;
            out.write_str(&text).map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write failed")
            })
        });
        for (name, source) in EMBEDDED {
            add(&mut env, name.to_string(), source.to_string())?;
        }
        for (name, source) in overrides {
            add(&mut env, name, source)?;
        }
        Ok(Renderer { env })
    }

    /// The Drone YAML for `plan`.
    pub fn drone(&self, plan: &Plan) -> Result<String> {
        let template = self
            .env
            .get_template(DRONE_TEMPLATE)
            .map_err(|source| Error::Template {
                name: DRONE_TEMPLATE.into(),
                source,
            })?;
        template
            .render(minijinja::context! { plan => Value::from(minijinja::value::Serde(plan)) })
            .map_err(|source| Error::Template {
                name: DRONE_TEMPLATE.into(),
                source,
            })
    }
}

fn add(env: &mut Environment<'static>, name: String, source: String) -> Result<()> {
    env.add_template_owned(name.clone(), source)
        .map_err(|source| Error::Template { name, source })
}

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

/// The JSON report of `affected --format json`: DESIGN.md's contract.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    #[serde(flatten)]
    changes: &'a ChangeSet,
    services: &'a [AffectedService],
    build_order: &'a [Vec<compact_str::CompactString>],
}

impl<'a> Report<'a> {
    /// Pairs a change set with its affected set.
    pub fn new(changes: &'a ChangeSet, affected: &'a Affected) -> Report<'a> {
        Report {
            changes,
            services: &affected.services,
            build_order: &affected.build_order,
        }
    }
}

/// `affected --format json`.
pub fn affected_json(report: &Report<'_>) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
    text.push('\n');
    text
}

/// `plan --format json`: the affected report plus the pipelines.
pub fn plan_json(report: &Report<'_>, plan: &Plan) -> String {
    #[derive(Serialize)]
    struct PlanJson<'a> {
        affected: &'a Report<'a>,
        pipelines: &'a [crate::plan::Pipeline],
        idle_reason: &'a Option<String>,
    }
    let mut text = serde_json::to_string_pretty(&PlanJson {
        affected: report,
        pipelines: &plan.pipelines,
        idle_reason: &plan.idle_reason,
    })
    .unwrap_or_default();
    text.push('\n');
    text
}

/// `affected --format text`: one line per service, then the build order.
pub fn affected_text(changes: &ChangeSet, affected: &Affected) -> String {
    let mut out = format!("{} ({})\n", changes.reason, changes.event);
    if affected.services.is_empty() {
        out.push_str("no service is affected\n");
    }
    for service in &affected.services {
        let _ = write!(out, "{} ({})", service.name, service.kind.as_str());
        if !service.files.is_empty() {
            let count = service.files.len();
            let _ = write!(out, ": {count} file{}", if count == 1 { "" } else { "s" });
        }
        if !service.via.is_empty() {
            let _ = write!(out, " via {}", service.via.join(", "));
        }
        out.push('\n');
    }
    if !affected.build_order.is_empty() {
        out.push_str("build order:\n");
        for (i, layer) in affected.build_order.iter().enumerate() {
            let _ = writeln!(out, "  {}. {}", i + 1, layer.join(", "));
        }
    }
    out
}

/// The dependency graph in Graphviz DOT; edges point from a service to what
/// it depends on.
pub fn dot(manifest: &Manifest) -> String {
    let mut out = String::from("digraph services {\n  rankdir=LR;\n  node [shape=box];\n");
    for service in &manifest.services {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            service.name,
            service.name,
            service.kind.as_str()
        );
    }
    for service in &manifest.services {
        for dep in &service.depends_on {
            let _ = writeln!(out, "  \"{}\" -> \"{dep}\";", service.name);
        }
    }
    out.push_str("}\n");
    out
}

/// The dependency graph as a Mermaid flowchart. Node ids are positional
/// because Mermaid ids cannot hold `-` or `.`.
pub fn mermaid(manifest: &Manifest) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, service) in manifest.services.iter().enumerate() {
        let _ = writeln!(
            out,
            "  s{i}[\"{} ({})\"]",
            service.name,
            service.kind.as_str()
        );
    }
    for i in 0..manifest.services.len() {
        for d in manifest.dependencies(i) {
            let _ = writeln!(out, "  s{i} --> s{d}");
        }
    }
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
