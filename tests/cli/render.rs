//! Rendering: hostile values cannot change the YAML's structure, the
//! templates can be replaced, and output files are written whole.

use std::collections::BTreeMap;
use std::sync::Arc;

use ripple::backend::{Backend, drone, gitlab, woodpecker};
use ripple::changes::Event;
use ripple::plan::{ImageBuild, Job, Plan, Promotion, Sidecar, Stage, Tests, When, Work};
use serde_norway::Value;

use crate::common::{TestRepo, check_yaml};

/// Quotes, colons, `#`, Drone's `${...}`, GitHub's `${{ }}`, newlines and
/// YAML's other line breaks, all at once.
pub const HOSTILE: &str =
    "evil\"branch: x #${DRONE_SECRET} ${{ secrets.X }} $HOME\n- injected: true\r\t\u{2028}'\\";

pub fn hostile(what: &str) -> String {
    format!("{what}-{HOSTILE}")
}

/// A plan with a hostile value in every field a backend writes: a test
/// job, a single-platform image needing it, and a multi-platform image.
pub fn hostile_plan() -> Plan {
    let image = |name: &str, platforms: Vec<String>, needs: Vec<String>| Job {
        name: hostile(name).into(),
        service: hostile(&format!("{name}-service")).into(),
        needs,
        when: When {
            events: vec![Event::Push].into(),
            branches: vec![hostile("branch")],
            tags: vec![hostile("tag-glob")],
        },
        gated: false,
        paths: None,
        work: Work::Image(Box::new(ImageBuild {
            image: hostile("repo"),
            registry: Some(hostile("registry")),
            dockerfile: hostile("dockerfile"),
            context: hostile("context"),
            tags: vec![hostile("tag")],
            build_args: vec![hostile("build-arg")],
            platforms,
            promote: Some(Promotion {
                from: hostile("from"),
                to: vec![hostile("to")],
                else_build: true,
                runner: hostile("runner"),
            }),
        })),
    };
    Plan {
        event: Some(Event::Push),
        reason: hostile("reason"),
        services: vec![hostile("service").into()],
        idle_reason: None,
        ripple_image: None,
        promotes: true,
        jobs: vec![
            Job {
                name: hostile("name").into(),
                service: hostile("service").into(),
                needs: Vec::new(),
                when: When {
                    events: vec![Event::Push].into(),
                    branches: vec![hostile("branch")],
                    tags: vec![hostile("tag-glob")],
                },
                gated: false,
                paths: None,
                work: Work::Tests(Arc::new(Tests {
                    toolchain: hostile("image").into(),
                    stages: vec![Stage {
                        name: hostile("step").into(),
                        commands: vec![hostile("command").into()],
                        slot: None,
                    }],
                    sidecars: vec![Sidecar {
                        name: hostile("sidecar"),
                        image: hostile("sidecar-image"),
                        environment: BTreeMap::from([(hostile("key"), hostile("value"))]),
                    }],
                })),
            },
            image("second", vec![hostile("platform")], vec![hostile("name")]),
            image(
                "third",
                vec![hostile("platforms"), "linux/arm64".into()],
                vec![hostile("second")],
            ),
        ],
    }
}

/// What Drone sees after its `$$` → `$` substitution.
fn unsubstituted(value: &Value) -> String {
    value.as_str().expect("a string").replace("$$", "$")
}

#[test]
fn every_inserted_value_is_escaped() {
    let templates = drone::Drone.load(Vec::new()).unwrap();
    let yaml = drone::render(&templates, &Arc::new(hostile_plan())).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect();
    assert_eq!(docs.len(), 3, "no document was injected");
    let first = &docs[0];
    assert_eq!(unsubstituted(&first["name"]), hostile("name"));
    assert_eq!(
        unsubstituted(&first["trigger"]["branch"][0]),
        hostile("branch")
    );
    assert_eq!(
        unsubstituted(&first["trigger"]["ref"][0]),
        format!("refs/tags/{}", hostile("tag-glob"))
    );
    assert_eq!(unsubstituted(&first["steps"][0]["name"]), hostile("step"));
    assert_eq!(unsubstituted(&first["steps"][0]["image"]), hostile("image"));
    assert_eq!(
        unsubstituted(&first["steps"][0]["commands"][0]),
        hostile("command")
    );
    assert_eq!(first["steps"].as_sequence().unwrap().len(), 1);
    assert_eq!(
        first["steps"][0].as_mapping().unwrap().len(),
        3,
        "no key was injected"
    );
    let sidecar = &first["services"][0];
    assert_eq!(unsubstituted(&sidecar["name"]), hostile("sidecar"));
    assert_eq!(unsubstituted(&sidecar["image"]), hostile("sidecar-image"));
    let env = sidecar["environment"].as_mapping().unwrap();
    let (key, value) = env.iter().next().unwrap();
    assert_eq!(
        (unsubstituted(key), unsubstituted(value)),
        (hostile("key"), hostile("value"))
    );

    let second = &docs[1];
    assert_eq!(unsubstituted(&second["depends_on"][0]), hostile("name"));
    // The promote step, then the build.
    let promote = &second["steps"][0];
    assert_eq!(unsubstituted(&promote["image"]), hostile("runner"));
    let Work::Image(build) = &hostile_plan().jobs[1].work else {
        unreachable!()
    };
    assert_eq!(
        unsubstituted(&promote["commands"][0]),
        build.promote.as_ref().unwrap().command(&build.image)
    );
    assert_eq!(
        promote["environment"]["RIPPLE_REGISTRY_PASSWORD"]["from_secret"],
        "docker_password"
    );
    let settings = &second["steps"][1]["settings"];
    for key in ["repo", "registry", "dockerfile", "context"] {
        assert_eq!(unsubstituted(&settings[key]), hostile(key), "{key}");
    }
    assert_eq!(unsubstituted(&settings["tags"][0]), hostile("tag"));
    assert_eq!(
        unsubstituted(&settings["build_args"][0]),
        hostile("build-arg")
    );
    assert_eq!(unsubstituted(&settings["platform"]), hostile("platform"));
    let third = &docs[2]["steps"][1]["settings"];
    assert_eq!(unsubstituted(&third["platforms"][0]), hostile("platforms"));
    // No `${` survives unescaped for Drone to substitute.
    assert!(!yaml.replace("$${", "").contains("${"));
}

#[test]
fn a_hostile_branch_name_from_drone_cannot_inject() {
    let repo = TestRepo::standard();
    let env = [("DRONE_BUILD_EVENT", "push"), ("DRONE_BRANCH", HOSTILE)];
    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    let docs = check_yaml("push_hostile_branch", &yaml);
    assert_eq!(docs.len(), 1);
    let reason = unsubstituted(&docs[0]["steps"][0]["environment"]["RIPPLE_REASON"]);
    assert!(
        reason.starts_with(&format!("push to `{HOSTILE}` runs nothing")),
        "{reason}"
    );
    // The command reads the reason from the environment, never inlines it.
    assert_eq!(
        unsubstituted(&docs[0]["steps"][0]["commands"][0]),
        "echo \"ripple: nothing to run: $RIPPLE_REASON\""
    );
}

#[test]
fn a_hostile_publish_branch_becomes_a_valid_docker_tag() {
    let mut repo = TestRepo::empty();
    let manifest = crate::common::MANIFEST.replace(
        "publish_branches = [\"develop\"]",
        "publish_branches = [\"feature/x:y#1\"]",
    );
    repo.write("services.toml", &manifest);
    repo.write("src/web/app.ts", "x\n");
    let before = repo.commit("one");
    repo.write("src/web/app.ts", "y\n");
    repo.commit("two");
    let env = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "feature/x:y#1"),
        ("DRONE_COMMIT_BEFORE", before.as_str()),
    ];
    let docs = check_yaml("push_odd_branch", repo.ripple(&["plan"], &env).ok());
    assert_eq!(docs[0]["steps"][0]["settings"]["tags"][0], "feature-x-y-1");
}

#[test]
fn templates_can_be_replaced_from_a_directory() {
    let repo = TestRepo::standard();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("drone.yml.j2"),
        "# custom\n{% for p in plan.pipelines %}---\nkind: pipeline\nname: {{ p.name }}\nsteps:\n- name: x\n  image: {{ p.service }}\n{% endfor %}",
    )
    .unwrap();
    let templates = dir.path().to_str().unwrap();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-2")];
    let yaml = repo
        .ripple(&["plan", "--templates", templates], &env)
        .ok()
        .to_string();
    assert!(
        yaml.starts_with("# custom\n---\nkind: pipeline\nname: \"publish-base-go\""),
        "{yaml}"
    );

    std::fs::write(dir.path().join("drone.yml.j2"), "{{ plan.nope }}").unwrap();
    let run = repo.ripple(&["plan", "--templates", templates], &env);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: template `drone.yml.j2` failed"),
        "{}",
        run.stderr
    );
}

/// The standard repository, and an output file in it that holds `old`.
fn repository_with_an_old_output() -> (TestRepo, std::path::PathBuf) {
    let repo = TestRepo::standard();
    let out = repo.path().join("out/.drone.yml");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, "old").unwrap();
    (repo, out)
}

/// How many files the output's directory holds.
fn files_beside(out: &std::path::Path) -> usize {
    std::fs::read_dir(out.parent().unwrap()).unwrap().count()
}

#[test]
fn output_files_are_written_whole() {
    let (repo, out) = repository_with_an_old_output();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-2")];
    let run = repo.ripple(&["plan", "--output", out.to_str().unwrap()], &env);
    assert!(run.ok().is_empty());
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written, repo.ripple(&["plan"], &env).ok());
    assert_eq!(files_beside(&out), 1, "no temporary file is left behind");
}

#[test]
fn a_render_that_fails_halfway_leaves_the_output_file_alone() {
    // The document streams into a temporary file: a template that fails
    // after writing more than the output's buffer leaves neither half a
    // file nor the temporary one.
    let (repo, out) = repository_with_an_old_output();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("drone.yml.j2"),
        "{% for i in range(50000) %}# line {{ i }}\n{% endfor %}{{ plan.nope }}",
    )
    .unwrap();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-2")];
    let templates = dir.path().to_str().unwrap();
    let run = repo.ripple(
        &[
            "plan",
            "--templates",
            templates,
            "--output",
            out.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("plan.nope") || run.stderr.contains("undefined"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
    assert_eq!(files_beside(&out), 1, "no temporary file is left behind");
}

#[test]
fn output_is_deterministic() {
    let a = TestRepo::standard();
    let b = TestRepo::standard();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-3")];
    assert_eq!(
        a.ripple(&["plan"], &env).ok(),
        b.ripple(&["plan"], &env).ok()
    );
    assert_eq!(
        a.rev("HEAD"),
        b.rev("HEAD"),
        "fixture commits are reproducible"
    );
}

/// A plan of `n` test jobs, the middle one holding a slot (four GitLab
/// jobs instead of one).
fn plan_of(n: usize) -> Plan {
    let mut plan = hostile_plan();
    let template = plan
        .jobs
        .iter()
        .find(|job| matches!(job.work, Work::Tests(_)))
        .cloned()
        .unwrap();
    plan.jobs = (0..n)
        .map(|i| {
            let mut job = template.clone();
            job.name = format!("job-{i}").into();
            if let Work::Tests(tests) = &mut job.work {
                let tests = Arc::make_mut(tests);
                tests.stages.truncate(1);
                tests.stages[0].name = "unit".into();
                tests.stages[0].slot = (i == n / 2).then(|| {
                    Box::new(ripple::plan::SlotUse {
                        environment: "e2e".into(),
                        ttl_s: 60,
                        renew_every_s: 20,
                        wait: "10m".into(),
                        runner: "ripple".into(),
                    })
                });
            }
            job
        })
        .collect();
    plan
}

#[test]
fn templates_read_the_lists_made_item_by_item_as_lists() {
    // Length, indexing, `loop.length`/`loop.last`, filters and emptiness
    // behave as they would on a list made whole.
    let list_template = |list: &str| {
        format!(
            "{{{{ {list}|length }}}} {{{{ {list}[1].name|literal }}}} {{% if {list} %}}some{{% endif %}}.\n\
             {{% for item in {list} %}}{{{{ loop.index }}}}/{{{{ loop.length }}}}{{% if loop.last %}} last{{% endif %}} {{{{ item.name|literal }}}}\n{{% endfor %}}\
             {{{{ {list}|reverse|map(attribute='name')|join(',')|literal }}}}\n"
        )
    };
    let render = |backend: &dyn Backend, name: &str, list: &str, plan: &Plan| {
        let templates = backend
            .load(vec![(name.to_string(), list_template(list))])
            .unwrap();
        let mut out = Vec::new();
        backend
            .plan(&templates, &Arc::new(plan.clone()), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    };
    let plan = plan_of(5);
    let drone_text = render(&drone::Drone, drone::TEMPLATE, "plan.pipelines", &plan);
    let names: Vec<String> = (0..5).map(|i| format!("job-{i}")).collect();
    let mut expected = String::from("\"5\" \"job-1\" some.\n");
    for (i, name) in names.iter().enumerate() {
        let last = if i == 4 { " last" } else { "" };
        expected.push_str(&format!("\"{}\"/\"5\"{last} \"{name}\"\n", i + 1));
    }
    let reversed: Vec<&str> = names.iter().rev().map(String::as_str).collect();
    expected.push_str(&format!("\"{}\"\n", reversed.join(",")));
    assert_eq!(drone_text, expected);

    // GitLab: the job holding a slot becomes acquire, heartbeat, tests
    // and release, counted before any is made.
    let gitlab_text = render(&gitlab::Gitlab, "gitlab-child.yml.j2", "plan.jobs", &plan);
    let stage = match &plan.jobs[0].work {
        Work::Tests(tests) => tests.stages[0].name.clone(),
        Work::Image(_) => unreachable!(),
    };
    let mut names = Vec::new();
    for i in 0..5 {
        let job = format!("job-{i}:{stage}");
        if i == 2 {
            names.extend(["acquire", "heartbeat"].map(|s| format!("{job}:{s}")));
            names.push(job.clone());
            names.push(format!("{job}:release"));
        } else {
            names.push(job);
        }
    }
    let n = names.len();
    assert_eq!(n, 8);
    let mut expected = format!("\"{n}\" \"{}\" some.\n", names[1]);
    for (i, name) in names.iter().enumerate() {
        let last = if i == n - 1 { " last" } else { "" };
        expected.push_str(&format!("\"{}\"/\"{n}\"{last} \"{name}\"\n", i + 1));
    }
    let reversed: Vec<&str> = names.iter().rev().map(String::as_str).collect();
    expected.push_str(&format!("\"{}\"\n", reversed.join(",")));
    assert_eq!(gitlab_text, expected);

    // An empty plan's lists are empty and false.
    let empty = plan_of(0);
    for (backend, name, list) in [
        (
            &drone::Drone as &dyn Backend,
            drone::TEMPLATE,
            "plan.pipelines",
        ),
        (&gitlab::Gitlab, "gitlab-child.yml.j2", "plan.jobs"),
    ] {
        let templates = backend
            .load(vec![(
                name.to_string(),
                format!("{{{{ {list}|length }}}}{{% if {list} %}} some{{% endif %}}\n"),
            )])
            .unwrap();
        let mut out = Vec::new();
        backend
            .plan(&templates, &Arc::new(empty.clone()), &mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"0\"", "{name}");
    }
}

/// Plans that reach every branch of a shipped template: hostile values
/// everywhere, slots, a static file, empty and falsy values, nothing to
/// run with and without an event.
fn plans_for_every_branch() -> Vec<Plan> {
    // A plan without jobs says why (as `plan::plan`'s always do).
    let mut empty = plan_of(0);
    empty.idle_reason = Some(hostile("idle"));
    let mut plans = vec![hostile_plan(), plan_of(5), empty.clone()];
    // Static: gated jobs, a ripple image of its own, no event.
    let mut static_plan = hostile_plan();
    static_plan.event = None;
    static_plan.ripple_image = Some(hostile("ripple-image"));
    static_plan.jobs.iter_mut().for_each(|job| job.gated = true);
    plans.push(static_plan);
    // Values a template tests for truth: empty registry, no platform, no
    // promotion, no tags or arguments; path filters, some empty.
    let mut bare = hostile_plan();
    for (i, job) in bare.jobs.iter_mut().enumerate() {
        job.when.branches.clear();
        job.when.tags.clear();
        job.needs.clear();
        job.paths = Some(ripple::plan::Paths {
            include: if i == 0 {
                Vec::new()
            } else {
                vec![hostile("include")]
            },
            exclude: if i == 1 {
                Vec::new()
            } else {
                vec![hostile("exclude")]
            },
        });
        if let Work::Image(image) = &mut job.work {
            image.registry = Some(String::new());
            image.platforms.clear();
            image.promote = None;
            image.tags.clear();
            image.build_args.clear();
        }
    }
    plans.push(bare);
    empty.event = None;
    plans.push(empty);
    // Enough jobs that a writer renders runs of them on two threads, in
    // order.
    let mut many = hostile_plan();
    let jobs = std::mem::take(&mut many.jobs);
    many.jobs = (0..700)
        .map(|i| {
            let mut job = jobs[i % jobs.len()].clone();
            job.name = format!("{}-{i}", job.name).into();
            job
        })
        .collect();
    plans.push(many);
    plans
}

/// Shipped templates a backend writes directly rather than evaluates
/// (issue 14) must give the template's text, byte for byte: the same
/// template passed as an override is evaluated, and the two compared, on
/// [`plans_for_every_branch`] and on the standard repository's events.
fn assert_written_as_evaluated(backend: &dyn Backend, template: &str) {
    let ci = backend.name();
    let source = backend
        .templates()
        .iter()
        .find(|(name, _)| *name == template)
        .expect("a shipped template")
        .1;
    let shipped = backend.load(Vec::new()).unwrap();
    let evaluated = backend
        .load(vec![(template.to_string(), source.to_string())])
        .unwrap();
    assert!(shipped.is_shipped(template) && !evaluated.is_shipped(template));
    let plan_text = |templates: &ripple::backend::Templates, plan: &Arc<Plan>| {
        let mut out = Vec::new();
        backend.plan(templates, plan, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    for (i, plan) in plans_for_every_branch().into_iter().enumerate() {
        let plan = Arc::new(plan);
        let written = plan_text(&shipped, &plan);
        assert_eq!(written, plan_text(&evaluated, &plan), "{ci}, plan {i}");
        assert!(written.len() > 100, "{ci}, plan {i}: {written}");
    }

    let repo = TestRepo::standard();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(template), source).unwrap();
    let templates = dir.path().to_str().unwrap();
    let develop = repo.rev("develop");
    for args in [
        &["--event", "tag", "--tag", "release-2"][..],
        &["--event", "pull_request", "--base", "main"],
        &["--event", "push", "--branch", "develop", "--base", "main"],
        &["--event", "push", "--branch", "master", "--base", "main"],
        &["--event", "push", "--branch", "develop", "--base", &develop],
    ] {
        let plan = |extra: &[&str]| {
            let mut all = vec!["--ci", ci, "plan"];
            all.extend_from_slice(args);
            all.extend_from_slice(extra);
            repo.ripple(&all, &[]).ok().to_string()
        };
        assert_eq!(
            plan(&[]),
            plan(&["--templates", templates]),
            "{ci} {args:?}"
        );
    }
    // The static file: written directly, then checked against the
    // template's text.
    repo.ripple(&["--ci", ci, "generate"], &[]).ok();
    let check = repo.ripple(
        &["--ci", ci, "generate", "--check", "--templates", templates],
        &[],
    );
    assert_eq!(
        (check.code, check.stdout.as_str()),
        (0, ""),
        "{ci}: {}",
        check.stderr
    );
}

#[test]
fn the_drone_text_written_directly_is_the_shipped_templates() {
    assert_written_as_evaluated(&drone::Drone, drone::TEMPLATE);
}

#[test]
fn the_woodpecker_text_written_directly_is_the_shipped_templates() {
    assert_written_as_evaluated(&woodpecker::Woodpecker, woodpecker::TEMPLATE);
}

#[test]
fn the_gitlab_text_written_directly_is_the_shipped_templates() {
    assert_written_as_evaluated(&gitlab::Gitlab, gitlab::CHILD_TEMPLATE);
}
