//! Reports → text: the JSON contract, the affected list, and the
//! dependency graph as DOT or Mermaid. Pure: returns strings. CI
//! configuration is the backends' (`crate::backend`).

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use crate::changes::ChangeSet;
use crate::graph::{Affected, AffectedService};
use crate::manifest::{Manifest, Origin};
use crate::plan::Plan;

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

/// `affected --format json`, written into `out` as it goes.
pub fn affected_json(report: &Report<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    json_to(report, out)
}

/// `plan --format json`: the affected report plus the jobs, as no CI
/// system in particular would run them; written into `out` as it goes.
pub fn plan_json(report: &Report<'_>, plan: &Plan, out: &mut dyn Write) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct PlanJson<'a> {
        affected: &'a Report<'a>,
        jobs: &'a [crate::plan::Job],
        idle_reason: &'a Option<String>,
    }
    json_to(
        &PlanJson {
            affected: report,
            jobs: &plan.jobs,
            idle_reason: &plan.idle_reason,
        },
        out,
    )
}

/// Pretty JSON and a newline.
fn json_to(value: &impl Serialize, out: &mut dyn Write) -> std::io::Result<()> {
    // serde_json writes a few bytes at a time: gathered here, they cross
    // the `dyn Write` once per buffer rather than once per piece.
    let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, out);
    serde_json::to_writer_pretty(&mut buffered, value)?;
    buffered.write_all(b"\n")?;
    buffered.flush()
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
/// it depends on, discovered ones dashed and labelled with their source.
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
    for (i, service) in manifest.services.iter().enumerate() {
        for (d, origin) in manifest.edges(i) {
            let dep = &manifest.services[d].name;
            match origin {
                Origin::Declared => {
                    let _ = writeln!(out, "  \"{}\" -> \"{dep}\";", service.name);
                }
                // Discovered edges dashed, labelled with their source.
                Origin::Discovered(source) => {
                    let _ = writeln!(
                        out,
                        "  \"{}\" -> \"{dep}\" [style=dashed, label=\"{source}\"];",
                        service.name
                    );
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

/// The dependency graph as a Mermaid flowchart, discovered edges dotted and
/// labelled with their source. Node ids are positional because Mermaid ids
/// cannot hold `-` or `.`.
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
        for (d, origin) in manifest.edges(i) {
            let _ = match origin {
                Origin::Declared => writeln!(out, "  s{i} --> s{d}"),
                Origin::Discovered(source) => writeln!(out, "  s{i} -.->|{source}| s{d}"),
            };
        }
    }
    out
}
