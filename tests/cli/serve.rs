//! `ripple serve` over real HTTP on a loopback port, with requests signed
//! exactly as Drone signs them (written out here, independently of
//! ripple's verifier).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use ripple::signed::{drone_headers, woodpecker_headers};

use crate::common::TestRepo;

const SECRET: &str = "s3cret shared with drone";

/// A running server, stopped with SIGTERM on drop.
struct Server {
    child: Child,
    address: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(data.path());
        server._data = Some(data);
        server
    }

    /// A server keeping its mirrors and history in `data`.
    fn start_in(data: &std::path::Path) -> Server {
        Server::start_with(data, &["--allow-url", "file://"])
    }

    /// A server with these flags beside `--listen` and `--data-dir`.
    fn start_with(data: &std::path::Path, flags: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ripple"));
        // SIGXFSZ ignored: a test may limit the file size, and the server
        // must then see write errors rather than die.
        // SAFETY: `signal` is async-signal-safe, as pre_exec requires.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .arg("--data-dir")
            .arg(data)
            .env_clear()
            .env("RIPPLE_SECRET", SECRET)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ripple serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let address = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!(
                    "ripple serve stopped before listening:\n{}",
                    log.lock().unwrap().join("\n")
                ),
            };
            if let Some(address) = line.strip_prefix("ripple serve: listening on ") {
                break address.parse().unwrap();
            }
            log.lock().unwrap().push(line);
        };
        // Keep draining the log so the server never blocks on a full pipe.
        let kept = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            address,
            log,
            _data: None,
        }
    }

    /// Everything the server logged so far, but the `listening on` line.
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange; returns the status and the body.
fn exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn build_json(
    repo: &TestRepo,
    event: &str,
    reference: &str,
    before: &str,
    after: &str,
    target: &str,
) -> Vec<u8> {
    build_json_from(
        &format!("file://{}", repo.path().display()),
        event,
        reference,
        before,
        after,
        target,
    )
}

/// A push to `develop` from `before` to `after`.
fn develop_push(repo: &TestRepo, before: &str, after: &str) -> Vec<u8> {
    build_json(repo, "push", "refs/heads/develop", before, after, "develop")
}

fn build_json_from(
    url: &str,
    event: &str,
    reference: &str,
    before: &str,
    after: &str,
    target: &str,
) -> Vec<u8> {
    serde_json::json!({
        "repo": { "slug": "octo/mono", "git_http_url": url },
        "build": { "event": event, "ref": reference, "before": before, "after": after, "source": target, "target": target },
    })
    .to_string()
    .into_bytes()
}

fn post(server: &Server, body: &[u8]) -> (u16, String) {
    let headers = drone_headers(SECRET, body, SystemTime::now());
    exchange(server.address, "POST", "/", &headers, body)
}

fn yaml_of(answer: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(answer).expect("JSON answer");
    json["data"].as_str().expect("data").to_string()
}

#[test]
fn answers_every_event_with_the_plan() {
    let (mut repo, before, after) =
        TestRepo::develop_change("src/web/app.ts", "export const served = true\n");
    let server = Server::start();

    let (status, body) = exchange(server.address, "GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let push = develop_push(&repo, &before, &after);
    let (status, answer) = post(&server, &push);
    assert_eq!(status, 200, "{answer}");
    let yaml = yaml_of(&answer);
    let docs = crate::common::check_yaml("serve_push", &yaml);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["name"], "publish-web");

    repo.checkout("main");
    repo.branch("feature");
    repo.write("src/worker/worker.py", "print('served')\n");
    let head = repo.commit("worker change");
    let pr = build_json(
        &repo,
        "pull_request",
        "refs/heads/feature",
        "",
        &head,
        "main",
    );
    let (status, answer) = post(&server, &pr);
    assert_eq!(status, 200, "{answer}");
    let docs = crate::common::check_yaml("serve_pull_request", &yaml_of(&answer));
    let names: Vec<_> = docs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["test-py-tests", "test-worker"]);

    let object = repo
        .builder
        .repo()
        .find_object(git2::Oid::from_str(&head).unwrap(), None)
        .unwrap();
    repo.builder
        .repo()
        .tag_lightweight("release-3.0", &object, false)
        .unwrap();
    let tag = build_json(&repo, "tag", "refs/tags/release-3.0", "", &head, "");
    let (status, answer) = post(&server, &tag);
    assert_eq!(status, 200, "{answer}");
    let docs = crate::common::check_yaml("serve_tag", &yaml_of(&answer));
    assert_eq!(docs.len(), 5, "a release publishes every image");
    assert_eq!(docs[0]["steps"][0]["settings"]["tags"][1], "3.0");

    let master = build_json(&repo, "push", "refs/heads/master", "", &head, "master");
    let (status, answer) = post(&server, &master);
    assert_eq!(status, 200);
    assert!(yaml_of(&answer).contains("push to `master` runs nothing"));
}

#[test]
fn refuses_what_drone_did_not_sign() {
    let repo = TestRepo::standard();
    let head = repo.rev("HEAD");
    let server = Server::start();
    let body = build_json(&repo, "push", "refs/heads/main", "", &head, "main");

    let (status, reason) = exchange(server.address, "POST", "/", &[], &body);
    assert_eq!((status, reason.as_str()), (401, "unsigned request\n"));

    let headers = drone_headers(SECRET, &body, SystemTime::now());
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let (status, reason) = exchange(server.address, "POST", "/", &headers, &tampered);
    assert_eq!(
        (status, reason.as_str()),
        (400, "digest does not match the body\n")
    );

    let wrong = drone_headers("not the secret", &body, SystemTime::now());
    assert_eq!(exchange(server.address, "POST", "/", &wrong, &body).0, 401);

    let stale = drone_headers(SECRET, &body, SystemTime::now() - Duration::from_secs(3600));
    let (status, reason) = exchange(server.address, "POST", "/", &stale, &body);
    assert_eq!(
        (status, reason.as_str()),
        (401, "date outside the accepted window\n")
    );

    let fresh = drone_headers(SECRET, &body, SystemTime::now());
    assert_eq!(exchange(server.address, "POST", "/", &fresh, &body).0, 200);
    let (status, reason) = exchange(server.address, "POST", "/", &fresh, &body);
    assert_eq!((status, reason.as_str()), (401, "replayed request\n"));

    let (status, reason) = post(&server, b"{not json");
    assert_eq!(status, 400);
    assert!(reason.starts_with("malformed JSON"), "{reason}");

    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, reason) = post(&server, &big);
    assert_eq!(
        (status, reason.as_str()),
        (413, "request body over 1 MiB\n")
    );

    let elsewhere = serde_json::json!({
        "repo": { "slug": "x/y", "git_http_url": "https://elsewhere.invalid/x/y.git" },
        "build": { "event": "push", "ref": "refs/heads/main", "after": head },
    })
    .to_string();
    let (status, reason) = post(&server, elsewhere.as_bytes());
    assert_eq!(status, 403);
    assert!(reason.contains("is not allowed"), "{reason}");
}

/// Issue 13.5: `file://B/allowed/../other/secret.git` was served with the
/// other repository's commands.
#[test]
fn dot_segments_and_longer_names_do_not_escape_the_allow_list() {
    let (allowed, before, after) =
        TestRepo::develop_change("src/web/app.ts", "export const allowed = 1\n");
    let (other, ..) = TestRepo::develop_change("src/web/app.ts", "export const secret = 1\n");
    let base = tempfile::tempdir().unwrap();
    let link = |name: &str, repo: &TestRepo| {
        std::os::unix::fs::symlink(repo.path(), base.path().join(name)).unwrap();
    };
    link("allowed", &allowed);
    link("allowed-not", &other);
    link("other", &other);
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("file://{}/allowed", base.path().display());
    let server = Server::start_with(data.path(), &["--allow-url", &prefix]);
    let root = base.path().display().to_string();
    let ask = |url: String| {
        let body = build_json_from(
            &url,
            "push",
            "refs/heads/develop",
            &before,
            &after,
            "develop",
        );
        post(&server, &body)
    };
    for url in [
        format!("file://{root}/allowed/../other"),
        format!("file://{root}/allowed/%2e%2e/other"),
        format!("file://{root}/allowed/%252e%252e/other"),
        format!("file://{root}/allowed-not"),
        format!("{root}/allowed/../other"),
    ] {
        let (status, reason) = ask(url.clone());
        assert_eq!(status, 403, "{url}: {reason}");
        assert!(reason.starts_with("clone URL is not allowed: "), "{reason}");
        assert!(!reason.contains(&root), "the URL is not echoed: {reason}");
    }
    let (status, answer) = ask(format!("file://{root}/./allowed/"));
    assert_eq!(status, 200, "{answer}");
    assert!(yaml_of(&answer).contains("publish-web"));
}

#[test]
fn a_repository_without_a_manifest_gets_204() {
    let mut repo = TestRepo::empty();
    repo.write("README.md", "no manifest here\n");
    let head = repo.commit("init");
    let server = Server::start();
    let body = build_json(&repo, "push", "refs/heads/main", "", &head, "main");
    assert_eq!(post(&server, &body).0, 204);
}

#[test]
fn fifty_concurrent_requests_for_one_repository_are_all_answered() {
    let (mut repo, before, after) =
        TestRepo::develop_change("src/lmtpd/main.go", "package main // concurrent\n");
    let server = Server::start();
    let body = develop_push(&repo, &before, &after);
    // Distinct dates make distinct signatures: these are not replays. Taken
    // from one clock reading, as a thread that starts a second late would
    // otherwise sign with its neighbour's date.
    let now = SystemTime::now();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..50)
            .map(|i| {
                let server = &server;
                let body = &body;
                scope.spawn(move || {
                    let date = now - Duration::from_secs(i);
                    let headers = drone_headers(SECRET, body, date);
                    exchange(server.address, "POST", "/", &headers, body)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let first = &answers[0];
    assert_eq!(first.0, 200, "{}", first.1);
    assert!(yaml_of(&first.1).contains("publish-lmtpd"));
    for answer in &answers {
        assert_eq!(answer, first, "every answer is the same plan");
    }

    // The mirror is intact: a later build of the same repository still works.
    repo.write("src/web/app.ts", "export const later = 1\n");
    let later = repo.commit("web");
    let body = develop_push(&repo, &after, &later);
    let (status, answer) = post(&server, &body);
    assert_eq!(status, 200, "{answer}");
    assert!(yaml_of(&answer).contains("publish-web"));
}

#[test]
fn history_is_browsable_and_survives_a_restart() {
    let (repo, before, after) =
        TestRepo::develop_change("src/web/app.ts", "export const kept = 1\n");
    let data = tempfile::tempdir().unwrap();
    {
        let server = Server::start_in(data.path());
        let body = develop_push(&repo, &before, &after);
        assert_eq!(post(&server, &body).0, 200);
        assert_eq!(exchange(server.address, "POST", "/", &[], b"{}").0, 401);
    }
    let server = Server::start_in(data.path());
    let (status, json) = exchange(server.address, "GET", "/plans?format=json", &[], b"");
    assert_eq!(status, 200, "{json}");
    let records: serde_json::Value = serde_json::from_str(&json).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(
        records.len(),
        2,
        "both requests were recorded before the restart"
    );
    assert_eq!(records[0]["status"], 401);
    assert_eq!(records[0]["outcome"], "unsigned request");
    let planned = &records[1];
    assert_eq!(planned["repo"], "octo/mono");
    assert_eq!(planned["base"], before);
    assert_eq!(planned["head"], after);
    assert_eq!(planned["changed"], 1);
    assert_eq!(planned["affected"], serde_json::json!(["web"]));
    assert!(planned["yaml"].as_str().unwrap().contains("publish-web"));

    let (status, html) = exchange(server.address, "GET", "/plans", &[], b"");
    assert_eq!(status, 200);
    assert!(html.contains("<a href=\"/plans/1\">1</a>"), "{html}");
    let (status, html) = exchange(server.address, "GET", "/plans/1", &[], b"");
    assert_eq!(status, 200);
    assert!(
        html.contains("publish-web") && html.contains("octo/mono"),
        "{html}"
    );
    assert_eq!(
        exchange(server.address, "GET", "/plans/99", &[], b"").0,
        404
    );
}

#[test]
fn an_unreachable_origin_is_planned_from_the_mirror() {
    let (repo, before, after) =
        TestRepo::develop_change("src/web/app.ts", "export const mirrored = 1\n");
    let server = Server::start();
    let body = develop_push(&repo, &before, &after);
    assert_eq!(post(&server, &body).0, 200);

    // The origin disappears; a retry with other inputs misses the cache.
    let moved = repo.path().with_extension("moved");
    std::fs::rename(repo.path(), &moved).unwrap();
    let unknown_before = "0000000000000000000000000000000000000000";
    let body = develop_push(&repo, unknown_before, &after);
    let (status, answer) = post(&server, &body);
    std::fs::rename(&moved, repo.path()).unwrap();
    assert_eq!(status, 200, "{answer}");
    let yaml = yaml_of(&answer);
    assert!(
        yaml.contains("every service"),
        "the reason is in the YAML:\n{yaml}"
    );
    assert_eq!(
        crate::common::check_yaml("serve_mirror_only", &yaml).len(),
        5
    );
}

/// Issue 13.3: an empty secret signs anything, so no source may give one.
#[test]
fn refuses_to_start_with_an_empty_or_short_secret() {
    let dir = tempfile::tempdir().unwrap();
    let start = |file_text: Option<&str>, variable: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ripple"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--allow-url", "file://"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env_clear();
        if let Some(text) = file_text {
            let path = dir.path().join("secret");
            std::fs::write(&path, text).unwrap();
            command.arg("--secret-file").arg(&path);
        }
        if let Some(value) = variable {
            command.env("RIPPLE_SECRET", value);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for (file, variable, says) in [
        (Some(""), None, "is empty"),
        (Some(" \n\t\n"), None, "is empty"),
        (Some("short\n"), None, "has 5 bytes"),
        (None, Some(""), "is empty"),
        (None, Some("   "), "is empty"),
        // The file wins over the variable, so a good variable does not
        // rescue an empty file.
        (Some("\n"), Some(SECRET), "is empty"),
    ] {
        let (code, stderr) = start(file, variable);
        assert_eq!(code, Some(2), "{file:?} {variable:?}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("at least 16"),
            "{stderr}"
        );
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

/// Issue 13.1: every refused POST was recorded with the attacker's text
/// verbatim (a 60 kB `Signature` field gave 85 kB per request) and nothing
/// was pruned.
#[test]
fn refused_requests_cannot_fill_the_history() {
    let (mut repo, mut before, _) =
        TestRepo::develop_change("src/web/app.ts", "export const n = 0\n");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &["--allow-url", "file://", "--history-max-records", "3"],
    );
    let huge = format!(
        "keyId=\"k\",algorithm=\"hmac-sha256\",signature=\"AAAA\",headers=\"{}\"",
        "x".repeat(60_000)
    );
    for _ in 0..200 {
        let headers = vec![("signature".to_string(), huge.clone())];
        let (status, reason) = exchange(server.address, "POST", "/", &headers, b"{}");
        assert_eq!(status, 400, "{reason}");
        assert!(reason.len() < 200, "{reason}");
    }
    for i in 0..5 {
        repo.write("src/web/app.ts", &format!("export const n = {i}\n"));
        let after = repo.commit(&format!("web {i}"));
        let body = develop_push(&repo, &before, &after);
        assert_eq!(post(&server, &body).0, 200);
        before = after;
    }
    let (status, json) = exchange(server.address, "GET", "/plans?format=json", &[], b"");
    assert_eq!(status, 200);
    let records: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let planned: Vec<_> = records.iter().filter(|r| r["status"] == 200).collect();
    let refused: Vec<_> = records.iter().filter(|r| r["status"] == 400).collect();
    assert_eq!(planned.len(), 3, "the newest three plans are kept");
    assert_eq!(planned[0]["head"], before.as_str());
    assert!(
        !refused.is_empty() && refused.len() <= 100,
        "{}",
        refused.len()
    );
    for record in refused {
        assert!(record["outcome"].as_str().unwrap().len() <= 256, "{record}");
    }
    let size = std::fs::metadata(data.path().join("history.redb"))
        .unwrap()
        .len();
    assert!(size < 8 * 1024 * 1024, "history.redb is {size} bytes");
}

/// Sets the largest file the server may write (`None`: no limit).
fn limit_file_size(server: &Server, bytes: Option<u64>) {
    let limit = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setting a limit of our own child process.
    let set = unsafe {
        libc::prlimit(
            server.child.id() as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Issue 13.7: after one I/O error redb refuses every write until the
/// database is reopened, and `/healthz` said ok throughout.
#[test]
fn the_history_recovers_from_an_io_error_and_healthz_reports_it() {
    let (mut repo, mut before, _) =
        TestRepo::develop_change("src/web/app.ts", "export const n = 0\n");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path());
    let history = data.path().join("history.redb");
    let mut push = |repo: &mut TestRepo, i: usize| {
        repo.write(
            "src/web/app.ts",
            &format!("export const n = {i}\n{}\n", "//".repeat(i)),
        );
        let after = repo.commit(&format!("web {i}"));
        let body = develop_push(repo, &before, &after);
        let (status, answer) = post(&server, &body);
        before = after.clone();
        (status, answer, after)
    };
    assert_eq!(push(&mut repo, 1).0, 200);
    // The disk is full: the history file cannot grow.
    limit_file_size(&server, Some(std::fs::metadata(&history).unwrap().len()));
    let mut degraded = None;
    for i in 2..400 {
        let (status, answer, _) = push(&mut repo, i);
        assert_eq!(status, 200, "plans are answered all the same: {answer}");
        let (status, body) = exchange(server.address, "GET", "/healthz", &[], b"");
        if status == 503 {
            degraded = Some(body);
            break;
        }
    }
    let degraded = degraded.expect("a write failed and /healthz said so");
    assert!(degraded.starts_with("degraded: history: "), "{degraded}");

    // Room again: the next record reopens the database and is kept.
    limit_file_size(&server, None);
    let (status, _, head) = push(&mut repo, 500);
    assert_eq!(status, 200);
    let (status, body) = exchange(server.address, "GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (_, json) = exchange(server.address, "GET", "/plans?format=json", &[], b"");
    let records: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        records[0]["head"],
        head.as_str(),
        "recorded after the error"
    );
}

/// Issue 13.11: a damaged history made the server exit 2 with a hint about
/// another server after printing "listening on", or panic in redb.
#[test]
fn a_damaged_history_is_moved_aside_and_a_held_one_stops_the_start() {
    let (repo, before, after) = TestRepo::develop_change("src/web/app.ts", "export const n = 1\n");
    let data = tempfile::tempdir().unwrap();
    let history = data.path().join("history.redb");
    let body = develop_push(&repo, &before, &after);
    {
        let server = Server::start_in(data.path());
        assert_eq!(post(&server, &body).0, 200);

        // Held by a running server: the second one does not start.
        let second = Command::new(env!("CARGO_BIN_EXE_ripple"))
            .args(["serve", "--listen", "127.0.0.1:0", "--allow-url", "file://"])
            .arg("--data-dir")
            .arg(data.path())
            .env_clear()
            .env("RIPPLE_SECRET", SECRET)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("another `ripple serve` is using this --data-dir"),
            "{stderr}"
        );
        assert!(!stderr.contains("listening"), "{stderr}");
    }
    let good = std::fs::read(&history).unwrap();
    for (name, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("overwritten", vec![0x5a; good.len()]),
        ("text", b"garbage".to_vec()),
    ] {
        std::fs::write(&history, &bytes).unwrap();
        let server = Server::start_in(data.path());
        let (status, health) = exchange(server.address, "GET", "/healthz", &[], b"");
        assert_eq!((status, health.as_str()), (200, "ok\n"), "{name}");
        let log = server.log();
        assert!(
            log.contains("is damaged") && log.contains("moved it to"),
            "{name}: {log}"
        );
        // Plans are answered and recorded in the new file.
        let fresh = drone_headers(SECRET, &body, SystemTime::now() - Duration::from_secs(1));
        assert_eq!(
            exchange(server.address, "POST", "/", &fresh, &body).0,
            200,
            "{name}"
        );
        let (status, json) = exchange(server.address, "GET", "/plans?format=json", &[], b"");
        assert_eq!(status, 200, "{name}: {json}");
        assert!(json.contains("publish-web"), "{name}: {json}");
        std::thread::sleep(Duration::from_millis(1100)); // a new name for the next damaged file
    }
    let aside = std::fs::read_dir(data.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("damaged")
        })
        .count();
    assert_eq!(aside, 3, "each damaged file is kept for a look");
}

/// Reads until the server closes the connection (or resets it); false if
/// it is still open after `patience`.
fn closed_within(stream: &mut TcpStream, patience: Duration) -> bool {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn open_descriptors(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
        .unwrap()
        .count()
}

/// Issue 13.4: trickled headers, trickled bodies and silent connections
/// stayed open for ever, and 1,100 of them used every descriptor.
#[test]
fn slow_silent_and_surplus_connections_are_closed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            "--allow-url",
            "file://",
            "--read-timeout",
            "1s",
            "--max-connections",
            "40",
        ],
    );
    // Silent: nothing sent at all.
    let mut silent = TcpStream::connect(server.address).unwrap();
    // Trickled headers: a byte every 200 ms, never finishing.
    let mut trickled = TcpStream::connect(server.address).unwrap();
    trickled
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let trickler = {
        let mut stream = trickled.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..50 {
                if stream.write_all(b"X").is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        })
    };
    assert!(
        closed_within(&mut silent, Duration::from_secs(10)),
        "silent connection kept"
    );
    assert!(
        closed_within(&mut trickled, Duration::from_secs(10)),
        "trickled headers kept"
    );
    assert!(
        trickler.join().unwrap(),
        "writes fail once the server closed"
    );

    // A trickled body is answered 408.
    let mut slow_body = TcpStream::connect(server.address).unwrap();
    slow_body
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .unwrap();
    slow_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A client that gives up mid-body is not "a body over 1 MiB".
    let mut quitter = TcpStream::connect(server.address).unwrap();
    quitter
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"repo\"")
        .unwrap();
    quitter.shutdown(std::net::Shutdown::Both).unwrap();
    drop(quitter);
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        let (_, json) = exchange(server.address, "GET", "/plans?format=json", &[], b"");
        let records: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        outcomes = records.iter().map(|r| r["outcome"].to_string()).collect();
        if outcomes.iter().any(|o| o.contains("incomplete")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        outcomes
            .iter()
            .any(|o| o.contains("the client closed the connection")),
        "{outcomes:?}"
    );
    assert!(
        !outcomes.iter().any(|o| o.contains("1 MiB")),
        "{outcomes:?}"
    );

    // Many more connections than the limit: the surplus is closed at once,
    // the descriptors stay bounded, and once the idle ones time out the
    // server answers again.
    let hoard: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let descriptors = open_descriptors(&server);
    assert!(descriptors < 40 + 30, "{descriptors} descriptors open");
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = exchange(server.address, "GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    drop(hoard);
}

/// The server's threads and the processes it started that still run.
fn threads_and_children(server: &Server) -> (usize, usize) {
    let pid = server.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let children = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so after ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .is_some_and(|ppid| ppid == pid.to_string())
        })
        .count();
    (threads, children)
}

/// Issue 13.2: libgit2's fetch has no timeout and held the repository's
/// lock; 530 builds to an origin that accepts connections and never answers
/// took 515 threads, and then nothing else was answered.
#[test]
fn a_stalled_origin_stops_nothing_else() {
    // An origin that accepts connections and never says a word.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_url = format!("http://{}/team/stuck.git", stalled.local_addr().unwrap());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in stalled.incoming().flatten() {
                held.lock().unwrap().push(stream);
            }
        });
    }
    let (healthy, before, after) =
        TestRepo::develop_change("src/web/app.ts", "export const healthy = 1\n");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            "--allow-url",
            "file://",
            "--allow-url",
            &format!("http://{}/", held_addr(&stalled_url)),
            "--answer-timeout",
            "4s",
            "--max-fetches",
            "2",
        ],
    );
    let stuck = build_json_from(
        &stalled_url,
        "push",
        "refs/heads/develop",
        &before,
        &after,
        "develop",
    );
    let healthy_body = develop_push(&healthy, &before, &after);
    let pending = std::sync::atomic::AtomicUsize::new(40);
    // One clock reading for distinct dates (see above).
    let now = SystemTime::now();
    let (stuck_answers, others) = std::thread::scope(|scope| {
        let stuck_workers: Vec<_> = (0..40)
            .map(|i| {
                let (server, stuck, pending) = (&server, &stuck, &pending);
                scope.spawn(move || {
                    let date = now - Duration::from_secs(i);
                    let headers = drone_headers(SECRET, stuck, date);
                    let answer = exchange(server.address, "POST", "/", &headers, stuck);
                    pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    answer
                })
            })
            .collect();
        // Wait until the origin holds a fetch, then ask for everything else.
        while held.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let planned = post(&server, &healthy_body);
        let unsigned = exchange(server.address, "POST", "/", &[], b"{}");
        let plans = exchange(server.address, "GET", "/plans", &[], b"");
        let health = exchange(server.address, "GET", "/healthz", &[], b"");
        let still_pending = pending.load(std::sync::atomic::Ordering::SeqCst);
        let (threads, _) = threads_and_children(&server);
        let stuck: Vec<_> = stuck_workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect();
        (
            stuck,
            (planned, unsigned, plans, health, still_pending, threads),
        )
    });
    let (planned, unsigned, plans, health, still_pending, threads) = others;
    assert_eq!(planned.0, 200, "{}", planned.1);
    assert!(yaml_of(&planned.1).contains("publish-web"));
    assert_eq!(unsigned.0, 401);
    assert_eq!(plans.0, 200);
    assert_eq!(health, (200, "ok\n".to_string()));
    assert!(
        still_pending > 0,
        "the other requests were answered while the stalled builds waited"
    );
    assert!(threads < 64, "{threads} threads for 40 stalled builds");
    // Each stalled build gets 204 (Drone uses the repository's file) within
    // its budget, and no fetch is left running.
    assert!(
        stuck_answers.iter().all(|(status, _)| *status == 204),
        "{stuck_answers:?}"
    );
    let mut children = usize::MAX;
    for _ in 0..50 {
        children = threads_and_children(&server).1;
        if children == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(children, 0, "every stalled fetch was stopped");
    assert!(
        server.log().contains("the fetch was stopped"),
        "{}",
        server.log()
    );
}

fn held_addr(url: &str) -> &str {
    url.trim_start_matches("http://").split('/').next().unwrap()
}

/// Every file below `dir`, recursively.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Issue 13.10: overwritten packs, deleted objects, garbage refs, a
/// truncated index or a file where the mirror should be made every later
/// build of the repository fall back to 204, new commits included.
#[test]
fn a_damaged_mirror_is_moved_aside_and_cloned_again() {
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 5] = [
        ("overwritten packs", |mirror| {
            for file in files_below(&mirror.join("objects")) {
                let len = std::fs::metadata(&file).unwrap().len() as usize;
                std::fs::write(&file, vec![0x42; len]).unwrap();
            }
        }),
        ("deleted objects", |mirror| {
            for file in files_below(&mirror.join("objects")) {
                std::fs::remove_file(file).unwrap();
            }
        }),
        ("garbage refs", |mirror| {
            for file in files_below(&mirror.join("refs")) {
                std::fs::write(file, "garbage\n").unwrap();
            }
            let _ = std::fs::write(mirror.join("packed-refs"), "garbage\n");
        }),
        ("truncated index", |mirror| {
            for file in files_below(&mirror.join("objects")) {
                let bytes = std::fs::read(&file).unwrap();
                std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
            }
        }),
        ("a file in its place", |mirror| {
            std::fs::remove_dir_all(mirror).unwrap();
            std::fs::write(mirror, "not a repository\n").unwrap();
        }),
    ];
    for (name, damage) in damages {
        let (mut repo, before, after) =
            TestRepo::develop_change("src/web/app.ts", "export const n = 1\n");
        let server = Server::start();
        let body = develop_push(&repo, &before, &after);
        assert_eq!(post(&server, &body).0, 200, "{name}");
        let mirrors = server._data.as_ref().unwrap().path().join("mirrors");
        let mirror = std::fs::read_dir(&mirrors)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        damage(&mirror);

        repo.write("src/worker/worker.py", "print('after the damage')\n");
        let later = repo.commit("worker");
        let body = develop_push(&repo, &after, &later);
        let (status, answer) = post(&server, &body);
        assert_eq!(status, 200, "{name}: {answer}\n{}", server.log());
        let yaml = yaml_of(&answer);
        assert!(yaml.contains("publish-worker"), "{name}: {yaml}");
        assert!(
            !yaml.contains("every service"),
            "{name}: a real diff: {yaml}"
        );
        let log = server.log();
        assert!(
            log.contains("is damaged") && log.contains("cloning again"),
            "{name}: {log}"
        );
        // The damaged copy is kept beside the new mirror, for a look.
        assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 2, "{name}");
    }
}

/// Woodpecker's request: `{repo, pipeline}`.
fn woodpecker_json(
    repo: &TestRepo,
    event: &str,
    reference: &str,
    commit: &str,
    refspec: &str,
) -> Vec<u8> {
    serde_json::json!({
        "repo": {"full_name": "octo/mono", "clone_url": format!("file://{}", repo.path().display())},
        "pipeline": {"event": event, "ref": reference, "commit": commit, "refspec": refspec, "branch": "x"},
        "netrc": {"machine": "", "login": "", "password": ""},
    })
    .to_string()
    .into_bytes()
}

/// A `serve --ci woodpecker` with Woodpecker's public key in a file (the
/// first server) or given as it is.
fn woodpecker_server(
    key: &ed25519_dalek::SigningKey,
    data: &std::path::Path,
    inline: bool,
) -> Server {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let file = data.join("woodpecker.pem");
    std::fs::write(&file, &pem).unwrap();
    // The PEM itself starts with dashes: given as `--public-key=PEM`.
    let given = if inline {
        format!("--public-key={pem}")
    } else {
        format!("--public-key={}", file.display())
    };
    Server::start_with(
        data,
        &["--ci", "woodpecker", &given, "--allow-url", "file://"],
    )
}

/// The configuration extension's answer, each workflow kept for CI's
/// schema check.
fn workflows_of(name: &str, answer: &str) -> Vec<(String, serde_norway::Value)> {
    let json: serde_json::Value = serde_json::from_str(answer).expect("JSON answer");
    json["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| {
            let (workflow, data) = (c["name"].as_str().unwrap(), c["data"].as_str().unwrap());
            crate::backends::keep("woodpecker", &format!("serve-{name}-{workflow}.yaml"), data);
            (workflow.to_string(), crate::backends::parse(data))
        })
        .collect()
}

#[test]
fn woodpecker_is_answered_with_workflows() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let data = tempfile::tempdir().unwrap();
    let server = woodpecker_server(&key, data.path(), false);
    let post = |body: &[u8]| {
        let headers = woodpecker_headers(&key, "/", body, SystemTime::now());
        exchange(server.address, "POST", "/", &headers, body)
    };
    let (mut repo, _, first) = TestRepo::develop_change("src/web/app.ts", "export const a = 1\n");

    // The first push of a branch: no earlier plan to compare with.
    let (status, answer) = post(&woodpecker_json(
        &repo,
        "push",
        "refs/heads/develop",
        &first,
        "",
    ));
    assert_eq!(status, 200, "{answer}");
    let names: Vec<String> = workflows_of("first", &answer)
        .into_iter()
        .map(|w| w.0)
        .collect();
    assert_eq!(names.len(), 5, "every image: {names:?}");

    // The next push compares with the head of that plan.
    repo.write("src/worker/worker.py", "print('next')\n");
    let second = repo.commit("worker");
    let (status, answer) = post(&woodpecker_json(
        &repo,
        "push",
        "refs/heads/develop",
        &second,
        "",
    ));
    assert_eq!(status, 200, "{answer}");
    let workflows = workflows_of("second", &answer);
    let names: Vec<&str> = workflows.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(names, ["publish-worker"], "only what changed since {first}");
    assert_eq!(
        workflows[0].1["steps"][0]["settings"]["tags"][1],
        second.as_str()
    );

    // A pull request: `refspec` names the target.
    repo.checkout("main");
    repo.branch("feature");
    repo.write("src/go.main/store.go", "package main // pr\n");
    let head = repo.commit("pr");
    let (status, answer) = post(&woodpecker_json(
        &repo,
        "pull_request",
        "refs/heads/feature",
        &head,
        "feature:main",
    ));
    assert_eq!(status, 200, "{answer}");
    let names: Vec<String> = workflows_of("pr", &answer)
        .into_iter()
        .map(|w| w.0)
        .collect();
    assert_eq!(names, ["test-apiv2", "test-go-main"]);

    // A closed pull request plans nothing, and says so.
    let (status, answer) = post(&woodpecker_json(
        &repo,
        "pull_request_closed",
        "refs/heads/feature",
        &head,
        "feature:main",
    ));
    assert_eq!(status, 200, "{answer}");
    let workflows = workflows_of("closed", &answer);
    assert_eq!(workflows.len(), 1);
    assert_eq!(workflows[0].0, "ripple");
}

#[test]
fn woodpecker_requests_are_verified() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let data = tempfile::tempdir().unwrap();
    let server = woodpecker_server(&key, data.path(), true);
    let repo = TestRepo::standard();
    let body = woodpecker_json(&repo, "push", "refs/heads/main", &repo.rev("HEAD"), "");
    let send = |headers: &[(String, String)], body: &[u8]| {
        exchange(server.address, "POST", "/", headers, body)
    };

    let (status, reason) = send(&[], &body);
    assert_eq!((status, reason.as_str()), (401, "unsigned request\n"));

    let signed = woodpecker_headers(&key, "/", &body, SystemTime::now());
    let mut tampered = body.clone();
    tampered.push(b' ');
    let (status, reason) = send(&signed, &tampered);
    assert_eq!(
        (status, reason.as_str()),
        (400, "digest does not match the body\n")
    );

    let stranger = ed25519_dalek::SigningKey::from_bytes(&[43; 32]);
    let forged = woodpecker_headers(&stranger, "/", &body, SystemTime::now());
    assert_eq!(send(&forged, &body), (401, "bad signature\n".to_string()));

    let elsewhere = woodpecker_headers(&key, "/other", &body, SystemTime::now());
    assert_eq!(send(&elsewhere, &body).0, 401, "the path is signed");

    let stale = woodpecker_headers(
        &key,
        "/",
        &body,
        SystemTime::now() - Duration::from_secs(3600),
    );
    assert_eq!(
        send(&stale, &body),
        (401, "date outside the accepted window\n".to_string())
    );

    let (status, answer) = send(&signed, &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        send(&signed, &body),
        (401, "replayed request\n".to_string()),
        "a captured request is answered once"
    );
}

#[test]
fn woodpecker_mode_needs_its_public_key() {
    let data = tempfile::tempdir().unwrap();
    let bad = data.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let bad = format!("--public-key={}", bad.display());
    for (flags, expected) in [
        (
            vec!["--ci", "woodpecker"],
            "error: no key to verify Woodpecker's requests with",
        ),
        (
            vec!["--ci", "gitlab"],
            "error: `serve` has no configuration extension for `gitlab`",
        ),
        (
            vec!["--ci", "woodpecker", bad.as_str()],
            "not an ed25519 public key",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_ripple"))
            .arg("serve")
            .args(&flags)
            .args([
                "--allow-url",
                "file://",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data.path())
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Usage errors lead with their message; the bad key is named in it.
        let said = if expected.starts_with("error: ") {
            stderr.starts_with(expected)
        } else {
            stderr.contains(expected)
        };
        assert!(said, "{stderr}");
    }
}

#[test]
fn releases_and_promotions_are_planned_as_promotions() {
    let mut repo = TestRepo::standard();
    let manifest = std::fs::read_to_string(repo.path().join("services.toml")).unwrap();
    repo.write(
        "services.toml",
        &manifest.replacen("[settings]\n", "[settings]\nrelease = \"promote\"\n", 1),
    );
    let head = repo.commit("release by promotion");
    let server = Server::start();
    let object = repo
        .builder
        .repo()
        .find_object(git2::Oid::from_str(&head).unwrap(), None)
        .unwrap();
    repo.builder
        .repo()
        .tag_lightweight("release-5.0", &object, false)
        .unwrap();
    let tag = build_json(&repo, "tag", "refs/tags/release-5.0", "", &head, "");
    let (status, answer) = post(&server, &tag);
    assert_eq!(status, 200, "{answer}");
    let docs = crate::common::check_yaml("serve_tag_promote", &yaml_of(&answer));
    for doc in &docs {
        let command = doc["steps"][0]["commands"][0].as_str().unwrap();
        assert!(
            command.starts_with("ripple promote ") && command.contains(" --from in-"),
            "{command}"
        );
        assert!(
            command.ends_with("--to latest --to 5.0 --else-build"),
            "{command}"
        );
    }
    // Drone's promote event sends the target as `deploy_to`.
    let mut promote: serde_json::Value = serde_json::from_slice(&build_json(
        &repo,
        "promote",
        "refs/heads/main",
        "",
        &head,
        "",
    ))
    .unwrap();
    promote["build"]["deploy_to"] = "production".into();
    let (status, answer) = post(&server, promote.to_string().as_bytes());
    assert_eq!(status, 200, "{answer}");
    let docs = crate::common::check_yaml("serve_promote_event", &yaml_of(&answer));
    assert!(!docs.is_empty());
    for doc in &docs {
        let command = doc["steps"][0]["commands"][0].as_str().unwrap();
        assert!(
            command.ends_with("--to production --else-build"),
            "{command}"
        );
    }
}
