//! The shipped GitLab child template (`templates/gitlab/gitlab-child.yml.j2`)
//! written straight from the lowered jobs, byte for byte what the template
//! gives, without turning each job into template values (see
//! BENCHMARKS.md). Used only while the shipped template is; a
//! `--templates` one is evaluated as always.

use super::{GitlabJob, jobs};
use crate::backend::yaml::{Dollar, Text};
use crate::plan::Plan;

/// Writes `plan`'s child pipeline as the shipped template would into
/// `out`, a run of plan jobs at a time.
pub fn write(plan: &Plan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut text = Text::new(Dollar::Double, 4096);
    text.header(plan.event.map(|e| e.as_str()), &plan.reason);
    out.write_all(text.text.as_bytes())?;
    text.text.clear();
    let written = std::sync::atomic::AtomicBool::new(false);
    Text::runs_in_order(
        Dollar::Double,
        &plan.jobs,
        |text, job| {
            for gitlab_job in jobs(job) {
                job_into(text, &gitlab_job);
                written.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        },
        |run| out.write_all(run.as_bytes()),
    )?;
    if !written.into_inner() {
        text.raw("\nripple:\n  image: alpine:3\n  variables:\n");
        // A plan without jobs always says why.
        let why = plan.idle_reason.as_deref().unwrap_or_default();
        text.line("    ", "RIPPLE_REASON", why);
        text.raw("  script:\n  - ");
        text.literal("echo \"ripple: nothing to run: $RIPPLE_REASON\"");
        text.raw("\n");
    }
    out.write_all(text.text.as_bytes())
}

/// `{indent}name: value` for each pair, the name as `literal` prints it.
fn variables_into(text: &mut Text, indent: &str, pairs: &[(String, String)]) {
    for (name, value) in pairs {
        text.raw(indent);
        text.literal(name);
        text.raw(": ");
        text.scalar(value);
        text.raw("\n");
    }
}

fn job_into(text: &mut Text, job: &GitlabJob) {
    text.raw("\n");
    text.literal(&job.name);
    text.raw(":\n");
    text.line("  ", "image", &job.image);
    if !job.services.is_empty() {
        text.raw("  services:\n");
        for service in &job.services {
            text.line("  - ", "name", &service.name);
            text.line("    ", "alias", &service.alias);
            if !service.variables.is_empty() {
                text.raw("    variables:\n");
                variables_into(text, "      ", &service.variables);
            }
        }
    }
    if job.needs.is_empty() {
        text.raw("  needs: []\n");
    } else {
        text.raw("  needs:\n");
        for need in job.needs.iter() {
            text.raw("  - ");
            text.literal(need);
            text.raw("\n");
        }
    }
    if !job.variables.is_empty() {
        text.raw("  variables:\n");
        variables_into(text, "    ", &job.variables);
    }
    text.raw("  script:\n");
    for line in &job.script {
        text.raw("  - ");
        text.literal(line);
        text.raw("\n");
    }
    text.optional("  ", "when", job.when.as_deref());
    if let Some(dotenv) = job.dotenv.as_deref().filter(|d| !d.is_empty()) {
        text.raw("  artifacts:\n    reports:\n");
        text.line("      ", "dotenv", dotenv);
    }
}
