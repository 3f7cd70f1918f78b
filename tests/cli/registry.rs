//! A real registry for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a loopback port, with or without htpasswd
//! basic auth, and a small client of its HTTP API v2 written out here,
//! independently of ripple's, to push images and read tags back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

pub const USER: &str = "ci";
pub const PASSWORD: &str = "pa55 word";

/// The registry `.ci/run` installs.
const BINARY: &str = "docker-registry";

/// A running registry, killed on drop.
pub struct Registry {
    child: Child,
    pub address: SocketAddr,
    auth: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Registry {
    /// Without authentication.
    pub fn start() -> Registry {
        Registry::start_with(false)
    }

    /// With htpasswd basic auth for [`USER`] / [`PASSWORD`].
    pub fn with_basic_auth() -> Registry {
        Registry::start_with(true)
    }

    fn start_with(auth: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if auth {
            let htpasswd = dir.path().join("htpasswd");
            let line = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd (apache2-utils; .ci/run installs it)");
            assert!(line.status.success());
            std::fs::write(&htpasswd, &line.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: ripple-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start `{BINARY}` (Debian's docker-registry; .ci/run installs it): {e}")
            });
        let registry = Registry {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            auth: auth.then(|| format!("Basic {}", BASE64.encode(format!("{USER}:{PASSWORD}")))),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(registry.address).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// `127.0.0.1:PORT/name`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// One request, authenticated when the registry wants it.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        if let Some(auth) = &self.auth {
            head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole answer");
        let text = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut answer = Answer {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        };
        if answer.header("Transfer-Encoding") == Some("chunked") {
            answer.body = unchunk(&answer.body);
        }
        answer
    }

    /// Uploads a blob; its digest.
    pub fn push_blob(&self, name: &str, bytes: &[u8]) -> String {
        let digest = digest(bytes);
        let start = self.request("POST", &format!("/v2/{name}/blobs/uploads/"), &[], b"");
        assert_eq!(
            start.status,
            202,
            "{}",
            String::from_utf8_lossy(&start.body)
        );
        let location = start.header("Location").unwrap().to_string();
        let path = location
            .split_once(&self.host())
            .map_or(location.as_str(), |(_, p)| p)
            .to_string();
        let separator = if path.contains('?') { '&' } else { '?' };
        let done = self.request(
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(done.status, 201, "{}", String::from_utf8_lossy(&done.body));
        digest
    }

    /// Pushes a one-layer image built from `content`, labelled with the
    /// commit it was built from; its manifest's digest.
    pub fn push_image(
        &self,
        name: &str,
        tag: &str,
        content: &str,
        revision: Option<&str>,
    ) -> String {
        let layer = self.push_blob(name, content.as_bytes());
        let labels = match revision {
            Some(rev) => serde_json::json!({ "org.opencontainers.image.revision": rev }),
            None => serde_json::json!({}),
        };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": labels },
            "rootfs": { "type": "layers", "diff_ids": [digest(content.as_bytes())] },
        }))
        .unwrap();
        let config_digest = self.push_blob(name, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer,
                "size": content.len(),
            }],
        }))
        .unwrap();
        self.put_manifest(
            name,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
    }

    /// Pushes an index of `images` (digests, one per platform).
    pub fn push_index(&self, name: &str, tag: &str, images: &[(&str, &str)]) -> String {
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|(digest, arch)| {
                let manifest = self.manifest(name, digest).unwrap();
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": manifest.body.len(),
                    "platform": { "architecture": arch, "os": "linux" },
                })
            })
            .collect();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .unwrap();
        self.put_manifest(name, tag, "application/vnd.oci.image.index.v1+json", &index)
    }

    fn put_manifest(&self, name: &str, tag: &str, media_type: &str, bytes: &[u8]) -> String {
        let put = self.request(
            "PUT",
            &format!("/v2/{name}/manifests/{tag}"),
            &[("Content-Type", media_type)],
            bytes,
        );
        assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
        assert_eq!(
            put.header("Docker-Content-Digest"),
            Some(digest(bytes).as_str())
        );
        digest(bytes)
    }

    /// The manifest `reference` (a tag or digest) names, when there is one.
    pub fn manifest(&self, name: &str, reference: &str) -> Option<Answer> {
        let answer = self.request(
            "GET",
            &format!("/v2/{name}/manifests/{reference}"),
            &[(
                "Accept",
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            )],
            b"",
        );
        match answer.status {
            200 => Some(answer),
            404 => None,
            other => panic!("GET manifest {name}:{reference}: {other}"),
        }
    }

    /// The digest `tag` names, and its media type.
    pub fn tag(&self, name: &str, tag: &str) -> Option<(String, String)> {
        self.manifest(name, tag).map(|answer| {
            (
                digest(&answer.body),
                answer
                    .header("Content-Type")
                    .unwrap_or_default()
                    .to_string(),
            )
        })
    }

    /// Every tag of `name`, sorted.
    pub fn tags(&self, name: &str) -> Vec<String> {
        let answer = self.request("GET", &format!("/v2/{name}/tags/list"), &[], b"");
        let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let mut tags: Vec<String> = value["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        tags.sort();
        tags
    }
}

pub fn digest(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 4 + size..];
    }
}

/// The token ripple is given by [`BearerFront`]'s token service.
const TOKEN: &str = "token-for-ci";

/// Docker's bearer-token challenge in front of a [`Registry`]: `/v2/`
/// answers 401 with `WWW-Authenticate: Bearer realm=...`, the realm hands
/// a token to [`USER`] / [`PASSWORD`] only, and requests that carry the
/// token are passed on to the registry.
pub struct BearerFront {
    pub address: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// What the token service was asked, for the test to check.
    pub scopes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for BearerFront {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}

/// Reads one HTTP/1.1 request: its head and body.
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

impl BearerFront {
    pub fn start(registry: &Registry) -> BearerFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let scopes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let backend = registry.address;
        let basic = format!("Basic {}", BASE64.encode(format!("{USER}:{PASSWORD}")));
        let (flag, seen) = (stop.clone(), scopes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let (basic, seen) = (basic.clone(), seen.clone());
                std::thread::spawn(move || {
                    while let Some((head, body)) = read_request(&mut stream) {
                        let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let auth = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("authorization")
                                    .then(|| value.trim().to_string())
                            })
                            .unwrap_or_default();
                        let answer = if let Some(query) = target.strip_prefix("/token") {
                            seen.lock().unwrap().push(query.to_string());
                            if auth == basic {
                                let body = format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#);
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                    body.len()
                                )
                                .into_bytes()
                            } else {
                                let body = r#"{"details":"wrong credentials"}"#;
                                format!(
                                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\n\r\n{body}",
                                    body.len()
                                )
                                .into_bytes()
                            }
                        } else if auth != format!("Bearer {TOKEN}") {
                            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                            format!(
                                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{address}/token\",service=\"ripple-tests\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .into_bytes()
                        } else {
                            // Passed on without the token, one request a connection.
                            let mut upstream = TcpStream::connect(backend).unwrap();
                            let mut forwarded = String::new();
                            for line in head.split("\r\n").filter(|l| !l.is_empty()) {
                                let name =
                                    line.split(':').next().unwrap_or("").to_ascii_lowercase();
                                if name != "authorization" && name != "connection" {
                                    forwarded.push_str(line);
                                    forwarded.push_str("\r\n");
                                }
                            }
                            forwarded.push_str("Connection: close\r\n\r\n");
                            upstream.write_all(forwarded.as_bytes()).unwrap();
                            upstream.write_all(&body).unwrap();
                            let mut raw = Vec::new();
                            let _ = upstream.read_to_end(&mut raw);
                            raw
                        };
                        if stream.write_all(&answer).is_err() {
                            return;
                        }
                        // Upstream answers close their connection: so do we.
                        if !answer.starts_with(b"HTTP/1.1 401") && !target.starts_with("/token") {
                            return;
                        }
                    }
                });
            }
        });
        BearerFront {
            address,
            stop,
            scopes,
        }
    }

    /// `127.0.0.1:PORT/name` through the front.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.address)
    }
}
