//! `ripple serve` under load: waves of concurrent signed requests (Drone's
//! HMAC signatures, Woodpecker's RFC 9421 ed25519 ones) for one build on a
//! warm mirror, on loopback. Prints requests per second, p50/p99 latency
//! and the server's peak memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use ripple::signed::{drone_headers, woodpecker_headers};

const SECRET: &str = "a benchmark secret shared with drone";

/// Which extension the server speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Drone,
    Woodpecker,
}

fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

/// The request for one pull request build, unique by `nonce` (Woodpecker
/// refuses a replayed signature; the plan is the same).
fn body(speaks: Speaks, repo: &Path, head: &str, nonce: usize) -> Vec<u8> {
    let url = format!("file://{}", repo.display());
    let value = match speaks {
        Speaks::Drone => serde_json::json!({
            "repo": { "slug": "bench/mono", "git_http_url": url },
            "build": { "event": "pull_request", "ref": "refs/pull/1/head", "before": "",
                       "after": head, "source": "feature", "target": "main", "number": nonce },
        }),
        Speaks::Woodpecker => serde_json::json!({
            "repo": { "full_name": "bench/mono", "clone_url": url },
            "pipeline": { "event": "pull_request", "ref": "refs/pull/1/head", "commit": head,
                          "refspec": "feature:main", "number": nonce },
            "netrc": { "machine": "", "login": "", "password": "" },
        }),
    };
    value.to_string().into_bytes()
}

fn headers(speaks: Speaks, body: &[u8]) -> Vec<(String, String)> {
    match speaks {
        Speaks::Drone => drone_headers(SECRET, body, SystemTime::now()),
        Speaks::Woodpecker => woodpecker_headers(&signing_key(), "/", body, SystemTime::now()),
    }
}

/// One POST; the status.
fn post(address: SocketAddr, headers: &[(String, String)], body: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    if stream.write_all(request.as_bytes()).is_err() || stream.write_all(body).is_err() {
        return 0;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(response.get(9..12).unwrap_or_default())
        .parse()
        .unwrap_or(0)
}

fn start(ripple: &str, speaks: Speaks, data: &Path) -> (Child, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(ripple);
    command
        .args([
            "serve",
            "--listen",
            &address.to_string(),
            "--allow-url",
            "file://",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("RIPPLE_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if speaks == Speaks::Woodpecker {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let pem = signing_key()
            .verifying_key()
            .to_public_key_pem(Default::default())
            .expect("a PEM");
        // The PEM starts with dashes: given as `--public-key=PEM`.
        command.args(["--ci", "woodpecker", &format!("--public-key={pem}")]);
    }
    let child = command.spawn().expect("start ripple serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "ripple serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, address)
}

/// The server's peak resident memory so far, in MiB.
fn peak_mib(child: &Child) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Waves of `clients` concurrent requests, `rounds` times, for each
/// extension; one table row each.
pub fn load(ripple: &str, repo: &Path, size: usize, head: &str, clients: usize, rounds: usize) {
    for speaks in [Speaks::Drone, Speaks::Woodpecker] {
        let name = if speaks == Speaks::Drone {
            "drone"
        } else {
            "woodpecker"
        };
        let data =
            std::env::temp_dir().join(format!("ripple-bench-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let (mut child, address) = start(ripple, speaks, &data);
        // The first request clones the mirror; the load runs on it warm.
        let warm = body(speaks, repo, head, 0);
        let status = post(address, &headers(speaks, &warm), &warm);
        assert_eq!(status, 200, "{name}: the first request failed");
        let mut latencies: Vec<Duration> = Vec::with_capacity(clients * rounds);
        let mut failures = 0usize;
        let started = Instant::now();
        for round in 0..rounds {
            let barrier = Arc::new(Barrier::new(clients));
            let threads: Vec<_> = (0..clients)
                .map(|i| {
                    let barrier = Arc::clone(&barrier);
                    let body = body(speaks, repo, head, 1 + round * clients + i);
                    std::thread::spawn(move || {
                        let headers = headers(speaks, &body);
                        barrier.wait();
                        let sent = Instant::now();
                        let status = post(address, &headers, &body);
                        (sent.elapsed(), status)
                    })
                })
                .collect();
            for thread in threads {
                let (latency, status) = thread.join().expect("a client thread");
                latencies.push(latency);
                failures += usize::from(status != 200);
            }
        }
        let total = started.elapsed();
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {size} | {name} | {} | {failures} | {:.0} | {:.1} | {:.1} | {:.1} |",
            latencies.len(),
            latencies.len() as f64 / total.as_secs_f64(),
            at(0.5).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0,
            peak_mib(&child)
        );
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&data);
    }
}
