//! The shipped Woodpecker template
//! (`templates/woodpecker/woodpecker-workflow.yaml.j2`) written straight
//! from a lowered workflow, byte for byte what the template gives, without
//! a template evaluation per workflow (see BENCHMARKS.md). Used only while
//! the shipped template is; a `--templates` one is evaluated as always.

use super::{Step, Workflow};
use crate::backend::yaml::{Dollar, Text};

/// `workflow` as the shipped template writes it.
pub fn workflow(workflow: &Workflow) -> String {
    let mut text = Text::new(Dollar::Double, 1024);
    text.header(workflow.event, &workflow.reason);
    if workflow.skip_clone {
        text.raw("skip_clone: true\n");
    }
    text.raw("\nwhen:\n- event:\n");
    let when = &workflow.when;
    text.items("  ", &when.event);
    text.list("  ", "branch", when.branch);
    text.list("  ", "ref", &when.refs);
    if let Some(paths) = &when.path {
        text.raw("  path:\n    include:\n");
        text.items("    ", &paths.include);
        text.list("    ", "exclude", &paths.exclude);
    }
    if !workflow.depends_on.is_empty() {
        text.raw("\ndepends_on:\n");
        for dependency in workflow.depends_on {
            text.line("- ", "name", dependency);
            text.raw("  optional: true\n");
        }
    }
    text.raw("\nsteps:\n");
    for step in &workflow.steps {
        step_into(&mut text, step);
    }
    if !workflow.services.is_empty() {
        text.raw("\nservices:\n");
        for service in workflow.services {
            text.sidecar(&service.name, &service.image, &service.environment);
        }
    }
    text.text
}

fn step_into(text: &mut Text, step: &Step) {
    text.step(&step.name, step.image, step.detach);
    if !step.when_status.is_empty() {
        text.raw("  when:\n  - status:\n");
        text.items("    ", step.when_status);
    }
    if !step.environment.is_empty() || !step.secrets.is_empty() {
        text.raw("  environment:\n");
        for (key, value) in &step.environment {
            text.pair("    ", key, value);
        }
        for (key, secret) in step.secrets {
            text.secret("    ", key, secret);
        }
    }
    match &step.publish {
        Some(publish) => {
            text.docker_settings(
                &publish.repo,
                publish.registry.as_deref(),
                &publish.dockerfile,
                &publish.context,
                &publish.tags,
            );
            text.optional("    ", "tags_file", publish.tags_file.as_deref());
            text.list("    ", "build_args", &publish.build_args);
            text.list("    ", "platforms", &publish.platforms);
            text.docker_login();
        }
        None => {
            text.raw("  commands:\n");
            text.items("  ", step.commands.iter());
        }
    }
}
