//! The shipped Drone template (`templates/drone/drone.yml.j2`) written
//! straight from the lowered pipelines, byte for byte what the template
//! gives: evaluating it costs about 12,000 instructions per pipeline, most
//! of them turning the pipeline into template values (see BENCHMARKS.md).
//! Used only while the shipped template is; a `--templates` Drone
//! template is evaluated as always.

use super::{Pipeline, Step, pipeline, reason};
use crate::backend::yaml::{Dollar, Text};
use crate::plan::Plan;

/// Writes `plan` as the shipped template would into `out`, a run of
/// pipelines at a time.
pub fn write(plan: &Plan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut text = Text::new(Dollar::Double, 4096);
    text.header(plan.event.map(|e| e.as_str()), &reason(plan));
    if plan.jobs.is_empty() {
        idle_into(&mut text, plan);
    }
    out.write_all(text.text.as_bytes())?;
    let ripple_image = plan.ripple_image.as_deref();
    Text::runs_in_order(
        Dollar::Double,
        &plan.jobs,
        |text, job| pipeline_into(text, &pipeline(job, ripple_image)),
        |run| out.write_all(run.as_bytes()),
    )
}

fn pipeline_into(text: &mut Text, pipeline: &Pipeline) {
    text.raw("---\nkind: pipeline\ntype: docker\n");
    text.line("", "name", pipeline.name);
    text.raw("\ntrigger:\n  event:\n");
    text.items("  ", pipeline.trigger.event.iter());
    text.list("  ", "branch", pipeline.trigger.branch);
    text.list("  ", "ref", &pipeline.trigger.refs);
    if !pipeline.depends_on.is_empty() {
        text.raw("\n");
        text.list("", "depends_on", pipeline.depends_on);
    }
    text.raw("\nsteps:\n");
    for step in &pipeline.steps {
        step_into(text, step);
    }
    if !pipeline.sidecars.is_empty() {
        text.raw("\nservices:\n");
        for sidecar in &pipeline.sidecars {
            text.sidecar(sidecar.name, sidecar.image, sidecar.environment);
        }
    }
}

fn step_into(text: &mut Text, step: &Step) {
    text.step(&step.name, step.image, step.detach);
    if !step.when_status.is_empty() {
        text.raw("  when:\n");
        text.list("    ", "status", step.when_status);
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
            text.list("    ", "build_args", &publish.build_args);
            text.optional("    ", "platform", publish.platform.as_deref());
            text.list("    ", "platforms", &publish.platforms);
            text.docker_login();
        }
        None => {
            if !step.secrets.is_empty() {
                text.raw("  environment:\n");
                for (name, secret) in &step.secrets {
                    text.secret("    ", name, secret);
                }
            }
            text.raw("  commands:\n");
            text.items("  ", step.commands.iter());
        }
    }
}

/// The one pipeline of a plan with nothing to run, saying why.
fn idle_into(text: &mut Text, plan: &Plan) {
    text.raw(
        "---\nkind: pipeline\ntype: docker\nname: ripple\n\nclone:\n  disable: true\n\n\
         trigger:\n  event:\n",
    );
    match plan.event {
        Some(event) => text.items("  ", [event.as_str()]),
        None => text.items("  ", ["pull_request", "push", "tag"]),
    }
    text.raw("\nsteps:\n- name: nothing-to-run\n  image: alpine:3\n  environment:\n");
    // A plan without jobs always says why.
    let why = plan.idle_reason.as_deref().unwrap_or_default();
    text.line("    ", "RIPPLE_REASON", why);
    text.raw("  commands:\n");
    text.items("  ", ["echo \"ripple: nothing to run: $RIPPLE_REASON\""]);
}
