//! `ripple slots serve` as a real server on a loopback port, driven by
//! many concurrent clients (raw HTTP and `ripple slot`), killed and
//! restarted in the middle, stopped with waiters pending, and its page
//! loaded in headless Chromium.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{eventually, free_port};

const KEY: &str = "slot-key-for-tests";

/// A running slots server, stopped (SIGTERM) on drop.
struct Slots {
    child: Option<Child>,
    address: SocketAddr,
    dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl Slots {
    /// A server of `config` (`[[environment]]` tables).
    fn start(config: &str) -> Slots {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        std::fs::write(dir.join("slots.toml"), config).unwrap();
        std::fs::write(
            dir.join("keys"),
            format!("# the CI's key\n{KEY}\nsecond-key\n"),
        )
        .unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut slots = Slots {
            child: None,
            address,
            dir,
            _temp: temp,
        };
        slots.spawn();
        slots
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_ripple"))
            .args(["slots", "serve", "--listen", &self.address.to_string()])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--config")
            .arg(self.dir.join("slots.toml"))
            .arg("--keys-file")
            .arg(self.dir.join("keys"))
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("log"))
                    .unwrap(),
            ))
            .spawn()
            .expect("start ripple slots serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(self.address, "GET", "/healthz", None, b"").0 != 200 {
            // The log as it is when giving up says why.
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn signal(&mut self, signal: libc::c_int) -> Duration {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        child.wait().unwrap();
        started.elapsed()
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The environments as `GET /environments` gives them.
    fn environments(&self) -> serde_json::Value {
        let (status, body) = http(self.address, "GET", "/environments", None, b"");
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    }

    fn holders(&self, environment: &str) -> Vec<Option<String>> {
        let all = self.environments();
        let env = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == environment)
            .unwrap()
            .clone();
        env["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["lease"]["holder"].as_str().map(str::to_string))
            .collect()
    }

    fn waiting(&self, environment: &str) -> usize {
        let all = self.environments();
        let env = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == environment)
            .unwrap()
            .clone();
        env["waiting"].as_array().unwrap().len()
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
        }
    }
}

/// One HTTP/1.1 exchange with `key` as a bearer token: status and body.
fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    http_with(
        address,
        method,
        path,
        &key.map(|k| ("Authorization", format!("Bearer {k}")))
            .into_iter()
            .collect::<Vec<_>>(),
        body,
    )
}

fn http_with(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return (0, String::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    if stream.write_all(request.as_bytes()).is_err() || stream.write_all(body).is_err() {
        return (0, String::new());
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).is_err() || response.len() < 12 {
        return (0, String::new());
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Waits in line over raw HTTP, asking again with the ticket; the grant.
fn acquire(
    address: SocketAddr,
    environment: &str,
    holder: &str,
    patience: Duration,
) -> Option<serde_json::Value> {
    let deadline = Instant::now() + patience;
    let mut ticket = serde_json::Value::Null;
    while Instant::now() < deadline {
        // As `ripple slot` does: take a place (and its ticket) first, then
        // wait with it, so a lost request never leaves a place behind.
        let wait_s = if ticket.is_null() { 0 } else { 5 };
        let body =
            serde_json::json!({ "holder": holder, "wait_s": wait_s, "ticket": ticket }).to_string();
        let (status, answer) = http(
            address,
            "POST",
            &format!("/environments/{environment}/leases"),
            Some(KEY),
            body.as_bytes(),
        );
        match status {
            201 => return serde_json::from_str(&answer).ok(),
            409 => {
                ticket =
                    serde_json::from_str::<serde_json::Value>(&answer).unwrap()["ticket"].clone()
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    None
}

fn release(address: SocketAddr, lease: u64) -> u16 {
    http(
        address,
        "DELETE",
        &format!("/leases/{lease}"),
        Some(KEY),
        b"",
    )
    .0
}

const TWO_SLOTS: &str =
    "[[environment]]\nname = \"uat\"\nslots = [\"uat-1\", \"uat-2\"]\nttl = \"30s\"\n";

/// What the clients themselves saw: who holds each slot now, two holders
/// of one slot, and every grant in the order it was taken.
#[derive(Default)]
struct Ledger {
    holding: Mutex<std::collections::HashMap<String, usize>>,
    clashes: Mutex<Vec<String>>,
    grants: Mutex<Vec<(String, u64)>>,
}

impl Ledger {
    /// Client `i` takes a slot, holds it for `hold`, and gives it back
    /// (asking again while the server is down).
    fn hold_once(&self, address: SocketAddr, i: usize, hold: Duration) {
        let lease = acquire(
            address,
            "uat",
            &format!("client-{i}"),
            Duration::from_secs(120),
        )
        .expect("a slot within two minutes");
        let slot = lease["slot"].as_str().unwrap().to_string();
        {
            let mut holding = self.holding.lock().unwrap();
            if let Some(other) = holding.insert(slot.clone(), i) {
                self.clashes
                    .lock()
                    .unwrap()
                    .push(format!("{slot}: client-{i} while client-{other}"));
            }
            self.grants
                .lock()
                .unwrap()
                .push((slot.clone(), lease["token"].as_u64().unwrap()));
        }
        std::thread::sleep(hold);
        self.holding.lock().unwrap().remove(&slot);
        let id = lease["lease"].as_u64().unwrap();
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            "release never answered 204",
            || release(address, id) == 204,
        );
    }

    /// No slot had two holders, `clients` grants were made, no token was
    /// given twice, and each slot's tokens grow in the order it was held.
    fn check(&self, clients: usize) {
        let clashes = self.clashes.lock().unwrap();
        assert!(clashes.is_empty(), "two holders of one slot: {clashes:?}");
        let grants = self.grants.lock().unwrap();
        assert_eq!(grants.len(), clients);
        let mut tokens: Vec<u64> = grants.iter().map(|g| g.1).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), clients, "no token given twice");
        for slot in ["uat-1", "uat-2"] {
            let of_slot: Vec<u64> = grants.iter().filter(|g| g.0 == slot).map(|g| g.1).collect();
            assert!(
                of_slot.windows(2).all(|w| w[0] < w[1]),
                "{slot}: {of_slot:?}"
            );
            assert!(!of_slot.is_empty(), "{slot} was never used");
        }
    }
}

#[test]
fn fifty_acquirers_on_two_slots_never_share_one() {
    let server = Slots::start(TWO_SLOTS);
    let address = server.address;
    let ledger = Arc::new(Ledger::default());
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || ledger.hold_once(address, i, Duration::from_millis(20)))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    ledger.check(50);
    assert_eq!(server.holders("uat"), [None, None]);
}

#[test]
fn grants_follow_arrival_order() {
    let server = Slots::start(TWO_SLOTS);
    let address = server.address;
    let first = acquire(address, "uat", "holder-a", Duration::from_secs(5)).unwrap();
    let second = acquire(address, "uat", "holder-b", Duration::from_secs(5)).unwrap();
    let (sender, granted) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for i in 0..5 {
        let sender = sender.clone();
        threads.push(std::thread::spawn(move || {
            let lease = acquire(
                address,
                "uat",
                &format!("waiter-{i}"),
                Duration::from_secs(60),
            )
            .unwrap();
            sender.send((i, lease)).unwrap();
        }));
        // The next one arrives only once this one is in line.
        eventually(
            Duration::from_secs(10),
            Duration::from_millis(20),
            "the client did not get in line",
            || server.waiting("uat") == i + 1,
        );
    }
    assert_eq!(release(address, first["lease"].as_u64().unwrap()), 204);
    let mut held = vec![second];
    for expected in 0..5 {
        let (i, lease) = granted.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(i, expected, "served out of arrival order");
        held.push(lease);
        let oldest = held.remove(0);
        assert_eq!(release(address, oldest["lease"].as_u64().unwrap()), 204);
    }
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn an_unrenewed_lease_is_freed_at_its_ttl_renew_extends_and_release_twice_is_fine() {
    let server = Slots::start("[[environment]]\nname = \"qa\"\nslots = [\"qa-1\"]\nttl = \"2s\"\n");
    let address = server.address;
    let lease = acquire(address, "qa", "renewer", Duration::from_secs(5)).unwrap();
    let id = lease["lease"].as_u64().unwrap();
    let expires = lease["expires"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let (status, body) = http(
        address,
        "POST",
        &format!("/leases/{id}/renew"),
        Some(KEY),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let renewed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(renewed["expires"].as_u64().unwrap() > expires);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        server.holders("qa"),
        [Some("renewer".to_string())],
        "renewed: still held past the first ttl"
    );
    // Unrenewed: freed at the ttl, by the server's clock.
    eventually(
        Duration::from_secs(5),
        Duration::from_millis(100),
        "the lease outlived its ttl",
        || server.holders("qa") == [None],
    );
    assert_eq!(
        http(
            address,
            "POST",
            &format!("/leases/{id}/renew"),
            Some(KEY),
            b""
        )
        .0,
        404
    );
    let again = acquire(address, "qa", "next", Duration::from_secs(5)).unwrap();
    assert!(again["token"].as_u64() > lease["token"].as_u64());
    let again_id = again["lease"].as_u64().unwrap();
    assert_eq!(release(address, again_id), 204);
    assert_eq!(release(address, again_id), 204, "release twice is fine");
}

#[test]
fn a_restart_keeps_every_lease_and_waiters_reconnect() {
    let mut server = Slots::start(TWO_SLOTS);
    let address = server.address;
    let a = acquire(address, "uat", "holder-a", Duration::from_secs(5)).unwrap();
    let b = acquire(address, "uat", "holder-b", Duration::from_secs(5)).unwrap();
    // `ripple slot acquire` waits in line...
    let out = server.dir.join("waiter.env");
    let waiter = Command::new(env!("CARGO_BIN_EXE_ripple"))
        .args([
            "slot",
            "acquire",
            "uat",
            "--wait",
            "60s",
            "--holder",
            "ripple-client",
            "--output",
        ])
        .arg(&out)
        .env_clear()
        .env("RIPPLE_SLOTS_URL", server.url())
        .env("RIPPLE_SLOTS_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the waiter did not get in line",
        || server.waiting("uat") == 1,
    );
    // ...while the server is killed outright and started again.
    server.signal(libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    server.spawn();
    assert_eq!(
        server.holders("uat"),
        [Some("holder-a".to_string()), Some("holder-b".to_string())]
    );
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the waiter did not come back",
        || server.waiting("uat") == 1,
    );
    assert_eq!(release(address, a["lease"].as_u64().unwrap()), 204);
    let output = waiter.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("RIPPLE_SLOT=uat-1\n"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), stdout);
    let token: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RIPPLE_SLOT_TOKEN="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        token > b["token"].as_u64().unwrap(),
        "tokens keep growing across restarts"
    );
    assert!(stderr.contains("waiting for a slot of `uat`"), "{stderr}");
}

#[test]
fn sigterm_with_waiters_pending_stops_promptly() {
    let mut server = Slots::start(TWO_SLOTS);
    let address = server.address;
    acquire(address, "uat", "a", Duration::from_secs(5)).unwrap();
    acquire(address, "uat", "b", Duration::from_secs(5)).unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|i| {
            std::thread::spawn(move || {
                let body =
                    serde_json::json!({ "holder": format!("w{i}"), "wait_s": 60 }).to_string();
                http(
                    address,
                    "POST",
                    "/environments/uat/leases",
                    Some(KEY),
                    body.as_bytes(),
                )
                .0
            })
        })
        .collect();
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the five waiters did not get in line",
        || server.waiting("uat") == 5,
    );
    let took = server.signal(libc::SIGTERM);
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    for waiter in waiters {
        assert_eq!(
            waiter.join().unwrap(),
            503,
            "a waiter hears that the server stops"
        );
    }
}

#[test]
fn changes_need_a_key_and_reading_does_not() {
    let server = Slots::start(TWO_SLOTS);
    let address = server.address;
    let body = br#"{"holder": "x", "wait_s": 0}"#;
    assert_eq!(
        http(address, "POST", "/environments/uat/leases", None, body).0,
        401
    );
    assert_eq!(
        http(
            address,
            "POST",
            "/environments/uat/leases",
            Some("wrong"),
            body
        )
        .0,
        401
    );
    assert_eq!(http(address, "POST", "/leases/1/renew", None, b"").0, 401);
    assert_eq!(
        http(address, "DELETE", "/leases/1", Some("wrong"), b"").0,
        401
    );
    assert_eq!(http(address, "GET", "/environments", None, b"").0, 200);
    let (status, _) = http_with(
        address,
        "POST",
        "/environments/uat/leases",
        &[("X-API-KEY", "second-key".into())],
        body,
    );
    assert_eq!(
        status, 201,
        "call-me's header and the second key of the file"
    );
    assert_eq!(
        http(
            address,
            "POST",
            "/environments/nope/leases",
            Some(KEY),
            body
        )
        .0,
        404
    );
    // The client says what to do.
    let run = crate::common::ripple_in(
        &server.dir,
        &["slot", "acquire", "uat", "--wait", "1s"],
        &[
            ("RIPPLE_SLOTS_URL", &server.url()),
            ("RIPPLE_SLOTS_KEY", "wrong"),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("401") && run.stderr.contains("RIPPLE_SLOTS_KEY"),
        "{}",
        run.stderr
    );
    let down = crate::common::ripple_in(
        &server.dir,
        &["slot", "acquire", "uat", "--wait", "1s"],
        &[
            (
                "RIPPLE_SLOTS_URL",
                &format!("http://127.0.0.1:{}", free_port()),
            ),
            ("RIPPLE_SLOTS_KEY", KEY),
        ],
    );
    assert_eq!(down.code, 3, "{}", down.stderr);
    // One log line per request.
    assert!(
        server.log().contains("POST /environments/uat/leases 401"),
        "{}",
        server.log()
    );
}

#[test]
fn call_mes_routes_answer_with_call_mes_status_codes() {
    let server = Slots::start(TWO_SLOTS);
    let address = server.address;
    let maybe = |method: &str, key: Option<&str>| {
        let headers: Vec<(&str, String)> = key
            .map(|k| ("X-API-KEY", k.to_string()))
            .into_iter()
            .collect();
        http_with(address, method, "/maybe?environment=staging", &headers, b"").0
    };
    assert_eq!(maybe("GET", Some(KEY)), 200, "free");
    assert_eq!(maybe("POST", None), 401);
    assert_eq!(maybe("POST", Some(KEY)), 201, "taken");
    assert_eq!(maybe("GET", Some(KEY)), 403, "locked");
    assert_eq!(maybe("POST", Some(KEY)), 403, "locked");
    assert_eq!(server.holders("staging"), [Some("maybe".to_string())]);
    assert_eq!(maybe("DELETE", Some(KEY)), 204);
    assert_eq!(maybe("GET", Some(KEY)), 200);
    assert_eq!(maybe("DELETE", Some(KEY)), 204, "releasing nothing is fine");
    let odd = http_with(
        address,
        "POST",
        "/maybe?environment=a%3Bb",
        &[("X-API-KEY", KEY.into())],
        b"",
    )
    .0;
    assert_eq!(odd, 400, "a name that is not a slot name");
    // What `/maybe` made, the REST routes serve too.
    let rest = http(
        address,
        "POST",
        "/environments/staging/leases",
        Some(KEY),
        br#"{"holder": "rest", "wait_s": 0}"#,
    );
    assert_eq!(rest.0, 201, "{}", rest.1);
}

/// Headless Chromium as the environment's guide describes it.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn headless(browser: &Path, profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[test]
fn the_page_shows_the_holders_in_a_real_browser() {
    let browser = chromium().expect("chromium (Debian's package; .ci/run installs it)");
    // The leases (ttl) and the queued request's wait outlast chromium,
    // which took 40 s beside the rest of the suite once: with a 30 s ttl
    // the page then showed the queued holder alone.
    let server = Slots::start(&TWO_SLOTS.replace("ttl = \"30s\"", "ttl = \"10m\""));
    let address = server.address;
    acquire(address, "uat", "build <b>#42</b>", Duration::from_secs(5)).unwrap();
    http(
        address,
        "POST",
        "/environments/uat/leases",
        Some(KEY),
        br#"{"holder": "second", "wait_s": 0}"#,
    );
    std::thread::spawn(move || {
        let body = br#"{"holder": "queued-build", "wait_s": 120}"#;
        http(address, "POST", "/environments/uat/leases", Some(KEY), body)
    });
    std::thread::sleep(Duration::from_millis(300));
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/environments", server.url());
    // A loaded machine can leave chromium without a page (the whole test
    // suite runs beside it): the page is judged once it rendered at all.
    let mut page = String::new();
    for _ in 0..3 {
        let dom = headless(&browser, profile.path(), &["--dump-dom"], &url);
        page = String::from_utf8_lossy(&dom.stdout).into_owned();
        if page.contains("slots held") {
            break;
        }
        eprintln!(
            "no page from chromium: {}",
            String::from_utf8_lossy(&dom.stderr)
        );
    }
    assert!(
        page.contains("build &lt;b&gt;#42&lt;/b&gt;"),
        "the holder, escaped: {page}"
    );
    assert!(page.contains("second"), "{page}");
    assert!(page.contains("queued-build"), "who waits: {page}");
    assert!(page.contains("2 of 2 slots held"), "{page}");
    let shot = server.dir.join("slots.png");
    headless(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,600",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    if let Ok(dir) = std::env::var("RIPPLE_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("slots.png"));
    }
}

/// A repository whose `e2e` suite holds a slot of `uat` for its
/// functional stage; the same manifest configures the server.
fn suite_repo(ttl: &str, functional: &str) -> crate::common::TestRepo {
    let mut repo = crate::common::TestRepo::empty();
    repo.write(
        "services.toml",
        &format!(
            "[[service]]\nname = \"e2e\"\nkind = \"tests\"\npaths = [\"e2e\"]\ntoolchain = \"python:3.12\"\n\
             unit = [\"true\"]\nfunctional = [{functional:?}]\nenvironment = \"uat\"\n\n\
             [[environment]]\nname = \"uat\"\nslots = [\"uat-1\", \"uat-2\"]\nttl = \"{ttl}\"\n"
        ),
    );
    repo.write("e2e/test.py", "pass\n");
    repo.commit("suite");
    repo
}

const SEEN: &str = "sleep 4; echo \"$RIPPLE_SLOT $RIPPLE_SLOT_TOKEN\" > seen-slot";

#[test]
fn every_backend_holds_a_slot_around_the_functional_stage() {
    use crate::backends::keep;
    let repo = suite_repo(
        "9m",
        "pytest e2e --base-url https://$RIPPLE_SLOT.example.org",
    );
    let pr = ["--event", "pull_request", "--files", "-"];
    let plan = |ci: &str| {
        crate::common::ripple_fed(
            repo.path(),
            &[&["plan", "--ci", ci][..], &pr].concat(),
            &[],
            "e2e/test.py\n",
        )
        .ok()
        .to_string()
    };
    let drone = plan("drone");
    let docs = crate::common::check_yaml("slot_pull_request", &drone);
    let names: Vec<&str> = docs[0]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "unit",
            "functional-acquire",
            "functional-heartbeat",
            "functional",
            "functional-release"
        ]
    );
    assert_eq!(docs[0]["steps"][2]["detach"], true);
    assert_eq!(
        docs[0]["steps"][2]["commands"][0],
        "ripple slot renew --from .ripple-slot --every 180s"
    );
    assert_eq!(docs[0]["steps"][4]["when"]["status"][1], "failure");
    crate::common::snapshot("slot_drone", &drone);

    let gitlab = plan("gitlab");
    keep("gitlab", "slot-pull-request.yml", &gitlab);
    crate::common::snapshot("slot_gitlab", &gitlab);

    let out = tempfile::tempdir().unwrap();
    crate::common::ripple_fed(
        repo.path(),
        &[
            &[
                "plan",
                "--ci",
                "woodpecker",
                "--output",
                out.path().to_str().unwrap(),
            ][..],
            &pr,
        ]
        .concat(),
        &[],
        "e2e/test.py\n",
    )
    .ok();
    let woodpecker = std::fs::read_to_string(out.path().join("test-e2e.yaml")).unwrap();
    keep("woodpecker", "slot-test-e2e.yaml", &woodpecker);
    crate::common::snapshot("slot_woodpecker", &woodpecker);

    let outputs = crate::common::ripple_fed(
        repo.path(),
        &[&["plan", "--ci", "github"][..], &pr].concat(),
        &[],
        "e2e/test.py\n",
    )
    .json();
    let tests: serde_json::Value =
        serde_json::from_str(outputs["tests"].as_str().unwrap()).unwrap();
    let functional = tests["include"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "functional")
        .unwrap();
    assert_eq!(
        functional["slot"],
        serde_json::json!({"environment": "uat", "every": "180s"})
    );
    let unit = tests["include"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "unit")
        .unwrap();
    assert!(unit.get("slot").is_none());
    repo.ripple(&["generate", "--ci", "github"], &[]).ok();
    let workflow =
        std::fs::read_to_string(repo.path().join(".github/workflows/ripple.yml")).unwrap();
    keep("github", "slot.yml", &workflow);
    crate::common::snapshot("slot_generate_github", &workflow);
}

/// Runs `script` with `sh -e` in `dir`, `ripple` on the PATH, against
/// `server`.
fn shell(dir: &Path, script: &str, server: &Slots, env: &[(&str, &str)]) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_ripple")).parent().unwrap();
    let mut command = Command::new("sh");
    command
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("RIPPLE_SLOTS_URL", server.url())
        .env("RIPPLE_SLOTS_KEY", KEY)
        .envs(env.iter().copied());
    command
}

/// The slot the suite saw, and its token.
fn seen(dir: &Path, file: &str) -> (String, u64) {
    let text = std::fs::read_to_string(dir.join(file)).expect("the functional stage ran");
    let (slot, token) = text.trim().split_once(' ').unwrap();
    (slot.to_string(), token.parse().unwrap())
}

#[test]
fn drones_rendered_steps_hold_the_slot_for_real() {
    // A ttl shorter than the tests: only the heartbeat keeps the slot.
    let repo = suite_repo("3s", SEEN);
    let server = Slots::start(&std::fs::read_to_string(repo.path().join("services.toml")).unwrap());
    let yaml = crate::common::ripple_fed(
        repo.path(),
        &["plan", "--event", "pull_request", "--files", "-"],
        &[],
        "e2e/test.py\n",
    )
    .ok()
    .to_string();
    let docs = crate::common::check_yaml("slot_pull_request_run", &yaml);
    let mut heartbeat: Option<Child> = None;
    for step in docs[0]["steps"].as_sequence().unwrap() {
        // Drone reads `$$` as `$`; each step's commands run in one shell.
        let script = step["commands"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().replace("$$", "$"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut command = shell(repo.path(), &script, &server, &[]);
        if step["detach"] == true {
            heartbeat = Some(command.stderr(Stdio::null()).spawn().unwrap());
        } else {
            let status = command.status().unwrap();
            assert!(status.success(), "step {:?} failed", step["name"]);
        }
        if step["name"] == "functional" {
            let (slot, token) = seen(repo.path(), "seen-slot");
            assert_eq!(slot, "uat-1");
            let held = server.environments()[0]["slots"][0]["lease"].clone();
            assert_eq!(held["token"], token, "the same lease outlived its 3s ttl");
        }
    }
    assert_eq!(server.holders("uat"), [None, None], "released");
    let mut heartbeat = heartbeat.expect("a detached heartbeat");
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        "the heartbeat did not stop after the release",
        || heartbeat.try_wait().unwrap().is_some(),
    );
}

#[test]
fn githubs_and_gitlabs_rendered_scripts_hold_the_slot_for_real() {
    let repo = suite_repo("3s", SEEN);
    let server = Slots::start(&std::fs::read_to_string(repo.path().join("services.toml")).unwrap());
    // GitHub: the test job's script, with the slot client the step before
    // copies out of ripple's image.
    repo.ripple(&["generate", "--ci", "github"], &[]).ok();
    let workflow: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(repo.path().join(".github/workflows/ripple.yml")).unwrap(),
    )
    .unwrap();
    let steps = workflow["jobs"]["test"]["steps"].as_sequence().unwrap();
    let script = steps.last().unwrap()["run"].as_str().unwrap().to_string();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_ripple"),
        repo.path().join("ripple-slot-client"),
    )
    .unwrap();
    let status = shell(
        repo.path(),
        &script,
        &server,
        &[
            ("RIPPLE_COMMANDS", SEEN),
            ("RIPPLE_SLOT_WANTED", "uat"),
            ("RIPPLE_SLOT_EVERY", "1s"),
        ],
    )
    .status()
    .unwrap();
    assert!(status.success());
    assert_eq!(seen(repo.path(), "seen-slot").0, "uat-1");
    assert_eq!(server.holders("uat"), [None, None]);
    // A failing suite still gives the slot back, and fails the step.
    let status = shell(
        repo.path(),
        &script,
        &server,
        &[
            ("RIPPLE_COMMANDS", "exit 7"),
            ("RIPPLE_SLOT_WANTED", "uat"),
            ("RIPPLE_SLOT_EVERY", "1s"),
        ],
    )
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(server.holders("uat"), [None, None]);

    // GitLab: acquire's dotenv report reaches the heartbeat, the tests and
    // the release as variables.
    let text = crate::common::ripple_fed(
        repo.path(),
        &[
            "plan",
            "--ci",
            "gitlab",
            "--event",
            "pull_request",
            "--files",
            "-",
        ],
        &[],
        "e2e/test.py\n",
    )
    .ok()
    .to_string();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let script = |job: &str| doc[job]["script"][0].as_str().unwrap().to_string();
    assert!(
        shell(
            repo.path(),
            &script("test-e2e:functional:acquire"),
            &server,
            &[]
        )
        .status()
        .unwrap()
        .success()
    );
    let dotenv = std::fs::read_to_string(repo.path().join("ripple-slot.env")).unwrap();
    let variables: Vec<(String, String)> = dotenv
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env: Vec<(&str, &str)> = variables
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut heartbeat = shell(
        repo.path(),
        &script("test-e2e:functional:heartbeat").replace("180s", "1s"),
        &server,
        &env,
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let status = shell(repo.path(), &script("test-e2e:functional"), &server, &env)
        .status()
        .unwrap();
    assert!(status.success());
    let (slot, token) = seen(repo.path(), "seen-slot");
    assert_eq!(
        server.holders("uat")[slot.trim_start_matches("uat-").parse::<usize>().unwrap() - 1],
        Some(
            server.environments()[0]["slots"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["lease"]["token"] == token)
                .unwrap()["lease"]["holder"]
                .as_str()
                .unwrap()
                .to_string()
        )
    );
    assert!(
        shell(
            repo.path(),
            &script("test-e2e:functional:release"),
            &server,
            &env
        )
        .status()
        .unwrap()
        .success()
    );
    assert_eq!(server.holders("uat"), [None, None]);
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        "the heartbeat job did not end after the release",
        || heartbeat.try_wait().unwrap().is_some(),
    );
}

#[test]
fn kills_and_restarts_in_the_middle_of_many_clients_never_double_a_slot() {
    let server = Arc::new(Mutex::new(Slots::start(TWO_SLOTS)));
    let address = server.lock().unwrap().address;
    let ledger = Arc::new(Ledger::default());
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || ledger.hold_once(address, i, Duration::from_millis(150)))
        })
        .collect();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(700));
        let mut server = server.lock().unwrap();
        server.signal(libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(200));
        server.spawn();
    }
    for client in clients {
        client.join().unwrap();
    }
    ledger.check(20);
    assert_eq!(server.lock().unwrap().holders("uat"), [None, None]);
}

/// `ripple` runs `slot` (like every network command) in `ripple-net`
/// beside it. A `ripple` copied alone says what is missing and what to
/// do; beside its `ripple-net`, the command runs there, its exit code
/// passed on.
#[test]
fn a_network_command_runs_in_ripple_net_beside_ripple() {
    let release = [
        "slot",
        "release",
        "--lease",
        "1",
        "--url",
        "http://127.0.0.1:9",
    ];
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("ripple");
    std::fs::copy(env!("CARGO_BIN_EXE_ripple"), &alone).unwrap();
    // The copied `ripple`'s exit code and standard error.
    let release_there = || {
        let output = Command::new(&alone)
            .args(release)
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    };
    let (code, stderr) = release_there();
    let missing = dir.path().join("ripple-net");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: cannot run `{}`, which runs ripple's network commands",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: `serve`, `promote`, `slots`, `slot` and `gate --promote`'s promotion run in `ripple-net`"),
        "{stderr}"
    );

    // Beside it, `ripple-net` runs the command: no server answers there,
    // which is an environment problem (3), said by the slot client.
    std::fs::copy(env!("CARGO_BIN_EXE_ripple-net"), &missing).unwrap();
    let (code, stderr) = release_there();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(!stderr.contains("ripple-net"), "{stderr}");
    assert!(
        stderr.contains("cannot reach the slots server at http://127.0.0.1:9"),
        "{stderr}"
    );
}
