//! `ripple serve`: Drone's or Woodpecker's configuration extension. The CI
//! system POSTs the build (Drone: `{repo, build}`, signed with a shared
//! secret; Woodpecker: `{repo, pipeline}`, signed with its ed25519 key);
//! ripple fetches what the build needs into its own mirror of the
//! repository and answers with the plan, or 204 to let the CI system use
//! the repository's own file.
//!
//! Requests are authenticated before anything else happens: unsigned,
//! badly signed, stale, replayed, oversized or malformed ones are refused
//! with 400/401 and a short reason, and never reach git.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use git2::Repository;
use serde::Deserialize;

use crate::backend::{self, Backend, Rendered, Templates};
use crate::changes::{self, Event};
use crate::error::{Error, Result, git};
use crate::graph::{ServiceGraph, Why};
use crate::history::{self, History, OpenError, Record, Retention};
use crate::input;
use crate::manifest::Manifest;
use crate::plan;
use crate::signature::{self, SignedRequest};

pub mod allow;
mod command;
pub(crate) mod http;
pub mod mirror;
pub mod rfc9421;

use allow::AllowList;
pub use command::{MIN_SECRET_BYTES, command};

/// Requests larger than this are refused unread.
pub const MAX_BODY: usize = 1024 * 1024;

/// How far a request's `Date` may be from the server's clock.
pub const DATE_WINDOW: Duration = Duration::from_secs(300);

/// What the server needs, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where mirrors are kept.
    pub data_dir: PathBuf,
    /// The clone URLs that may be fetched.
    pub allow: AllowList,
    /// Which extension it speaks, and the key its requests are verified
    /// with.
    pub speaks: Speaks,
    /// User name and password (or token) for fetching over HTTPS; Drone
    /// sends none.
    pub credentials: Option<(String, String)>,
    /// How much history is kept.
    pub retention: Retention,
    /// Past this, a build is answered 204 whatever git is doing.
    pub answer_timeout: Duration,
    /// Headers, then the body, must each arrive within this.
    pub read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Fetches from origins at once.
    pub max_fetches: usize,
}

/// The CI system whose configuration extension `serve` is.
#[derive(Debug, Clone)]
pub enum Speaks {
    /// Drone: HMAC signatures with the shared `DRONE_YAML_SECRET`.
    Drone {
        /// The secret.
        secret: Vec<u8>,
    },
    /// Woodpecker: RFC 9421 signatures with its ed25519 key.
    Woodpecker {
        /// Woodpecker's public key (`/api/signature/public-key`).
        key: ed25519_dalek::VerifyingKey,
    },
}

impl Speaks {
    /// The backend that renders the answer.
    fn backend(&self) -> &'static dyn Backend {
        match self {
            Speaks::Drone { .. } => &backend::drone::Drone,
            Speaks::Woodpecker { .. } => &backend::woodpecker::Woodpecker,
        }
    }

    /// The CI system's name, for messages.
    fn who(&self) -> &'static str {
        match self {
            Speaks::Drone { .. } => "Drone",
            Speaks::Woodpecker { .. } => "Woodpecker",
        }
    }

    /// Verifies a request's signature; its bytes, for replay detection.
    fn verify(
        &self,
        request: &SignedRequest<'_>,
        now: SystemTime,
    ) -> Result<Vec<u8>, signature::Rejection> {
        match self {
            Speaks::Drone { secret } => signature::verify(secret, request, now, DATE_WINDOW),
            Speaks::Woodpecker { key } => rfc9421::verify(key, request, now, DATE_WINDOW),
        }
    }

    /// The build a request body describes, in Drone's shape.
    fn parse(&self, body: &[u8]) -> Result<ConfigRequest, serde_json::Error> {
        match self {
            Speaks::Drone { .. } => serde_json::from_slice(body),
            Speaks::Woodpecker { .. } => {
                serde_json::from_slice::<WoodpeckerRequest>(body).map(WoodpeckerRequest::into_build)
            }
        }
    }
}

/// The parts of Woodpecker's request ripple reads.
#[derive(Debug, Clone, Deserialize)]
struct WoodpeckerRequest {
    repo: WoodpeckerRepo,
    pipeline: WoodpeckerPipeline,
}

#[derive(Debug, Clone, Deserialize)]
struct WoodpeckerRepo {
    #[serde(default)]
    full_name: String,
    clone_url: String,
}

#[derive(Debug, Clone, Deserialize)]
struct WoodpeckerPipeline {
    event: String,
    #[serde(default)]
    commit: String,
    #[serde(default, rename = "ref")]
    reference: String,
    /// `source:target` for pull requests.
    #[serde(default)]
    refspec: String,
    /// A deployment's target.
    #[serde(default)]
    deploy_to: String,
}

impl WoodpeckerRequest {
    /// The same build as Drone would describe it; Woodpecker sends no
    /// `before` (the history gives it).
    fn into_build(self) -> ConfigRequest {
        let event = backend::woodpecker::event(&self.pipeline.event);
        let target = match event {
            Event::PullRequest => self
                .pipeline
                .refspec
                .rsplit_once(':')
                .map(|(_, target)| target.to_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        ConfigRequest {
            repo: RepoInfo {
                slug: self.repo.full_name,
                git_http_url: self.repo.clone_url,
            },
            build: BuildInfo {
                event: event.as_str().to_string(),
                reference: self.pipeline.reference,
                before: String::new(),
                after: self.pipeline.commit,
                target,
                deploy_to: self.pipeline.deploy_to,
            },
        }
    }
}

/// The parts of Drone's request ripple reads.
#[derive(Debug, Clone, Deserialize)]
struct ConfigRequest {
    repo: RepoInfo,
    build: BuildInfo,
}

#[derive(Debug, Clone, Deserialize)]
struct RepoInfo {
    #[serde(default)]
    slug: String,
    git_http_url: String,
}

#[derive(Debug, Clone, Deserialize)]
struct BuildInfo {
    event: String,
    #[serde(default, rename = "ref")]
    reference: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    target: String,
    /// A promotion's target.
    #[serde(default)]
    deploy_to: String,
}

/// What a build's plan came to, for the answer and the history.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// The answer's JSON body; `None`: no manifest at the built commit
    /// (answer 204). Shared, not copied, by every answer from the cache.
    answer: Option<Bytes>,
    /// The configuration in it, as people read it; shared likewise with
    /// the history's records.
    yaml: Option<Arc<str>>,
    base: Option<String>,
    head: Option<String>,
    changed: usize,
    affected: Vec<String>,
}

/// Builds are cached by everything that decides their plan.
type CacheKey = (String, String, String, String, String, String);

/// How many answers the cache keeps before it starts over.
const CACHE_ENTRIES: usize = 1024;

struct AppState {
    config: ServeConfig,
    /// The templates of the CI system spoken.
    templates: Templates,
    history: History,
    cache: Mutex<HashMap<CacheKey, Outcome>>,
    /// One lock per mirror, so concurrent builds of a repository never
    /// fetch into it at once.
    mirrors: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// At most `--max-fetches` fetches at once.
    fetches: tokio::sync::Semaphore,
    /// Signatures seen within the date window: a replay is refused.
    seen: Mutex<HashMap<Vec<u8>, SystemTime>>,
}

/// Serves until interrupted (Ctrl-C or SIGTERM), then finishes the requests
/// in flight. Prints the address it listens on first, on stderr.
pub fn run(config: ServeConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            action: "start the server runtime for",
            path: config.data_dir.clone(),
            source,
        })?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> Result<()> {
    std::fs::create_dir_all(config.data_dir.join("mirrors")).map_err(|source| Error::Io {
        action: "create the data directory",
        path: config.data_dir.clone(),
        source,
    })?;
    // Before listening: a server that cannot keep its history because
    // another one holds it must not start.
    let history_path = config.data_dir.join("history.redb");
    let history = History::open(&history_path, config.retention, |line| {
        eprintln!("ripple serve: {line}")
    })
    .map_err(|OpenError::Locked| Error::Io {
        action: "lock the history",
        path: history_path.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "another `ripple serve` is using this --data-dir",
        ),
    })?;
    let listener = listen(config.listen).await?;
    let address = listener.local_addr().map_err(|source| Error::Io {
        action: "read the address of",
        path: PathBuf::from(config.listen.to_string()),
        source,
    })?;
    eprintln!("ripple serve: listening on {address}");
    let templates = config.speaks.backend().load(Vec::new())?;
    let state = Arc::new(AppState {
        fetches: tokio::sync::Semaphore::new(config.max_fetches),
        config,
        templates,
        history,
        cache: Mutex::new(HashMap::new()),
        mirrors: Mutex::new(HashMap::new()),
        seen: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/", post(configure))
        .route("/healthz", get(healthz))
        .route("/plans", get(list_plans))
        .route("/plans/{id}", get(show_plan));
    let limits = http::Limits {
        read_timeout: state.config.read_timeout,
        max_connections: state.config.max_connections,
        grace: state.config.answer_timeout + Duration::from_secs(5),
    };
    http::serve(
        listener,
        app.with_state(Arc::clone(&state)),
        limits,
        shutdown(),
    )
    .await;
    eprintln!("ripple serve: stopped");
    Ok(())
}

pub(crate) async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return interrupt.await.unwrap_or_default(),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.unwrap_or_default();
}

/// The longest an answer waits for its record to be committed.
const HISTORY_WAIT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 `ok`, or 503 naming what is degraded (plans are
/// still answered then; the history is not being kept).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.history.problem() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(problem) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: history: {problem}\n"),
        )
            .into_response(),
    }
}

/// A short plain-text refusal.
fn refuse(status: u16, reason: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, format!("{reason}\n")).into_response()
}

async fn configure(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let (response, record) = answer(&state, request).await;
    let status = response.status().as_u16();
    let record = Record {
        time: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        status,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        ..record
    };
    eprintln!(
        "ripple serve: POST / {status} repo={} event={} ref={} changed={} affected={} {:.1}ms: {}",
        record.repo,
        record.event,
        record.reference,
        record.changed,
        record.affected.len(),
        record.duration_ms,
        record.outcome
    );
    // Answered once recorded, so an acknowledged build is in the history;
    // but never held up long by it.
    if let Some(stored) = state.history.record(record) {
        let _ = tokio::time::timeout(HISTORY_WAIT, stored).await;
    }
    response
}

/// The answer to one request, and what to remember of it.
async fn answer(state: &Arc<AppState>, request: Request<Body>) -> (Response, Record) {
    let refused = |status: u16, reason: String| {
        let record = Record {
            repo: "-".into(),
            outcome: reason.clone(),
            ..Record::default()
        };
        (refuse(status, reason), record)
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(body, state.config.read_timeout).await {
        Ok(body) => body,
        Err((status, reason)) => return refused(status, reason.into()),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let signed = SignedRequest {
        method: parts.method.as_str(),
        target,
        headers: &headers,
        body: &body,
    };
    let now = SystemTime::now();
    let signature = match state.config.speaks.verify(&signed, now) {
        Ok(signature) => signature,
        Err(rejection) => return refused(rejection.status(), rejection.to_string()),
    };
    if !state.first_sighting(signature, now) {
        return refused(401, "replayed request".into());
    }
    let mut request: ConfigRequest = match state.config.speaks.parse(&body) {
        Ok(request) => request,
        Err(e) => return refused(400, format!("malformed JSON: {e}")),
    };
    let mut record = Record {
        repo: request.repo.slug.clone(),
        event: request.build.event.clone(),
        reference: request.build.reference.clone(),
        ..Record::default()
    };
    let url = match state.config.allow.check(&request.repo.git_http_url) {
        Ok(url) => url.to_string(),
        Err(why) => {
            let reason = format!("clone URL is not allowed: {why}");
            record.outcome = reason.clone();
            return (refuse(403, reason), record);
        }
    };
    // From here on, the normalised URL is the one fetched and the mirror's
    // name: what was compared is what git sees.
    request.repo.git_http_url = url;
    if matches!(state.config.speaks, Speaks::Woodpecker { .. })
        && request.build.event == Event::Push.as_str()
    {
        request.build.before = state.last_head(&request).await.unwrap_or_default();
    }
    let who = state.config.speaks.who();
    let budget = state.config.answer_timeout;
    let planned = match tokio::time::timeout(budget, state.plan_cached(request)).await {
        Ok(planned) => planned,
        Err(_) => {
            record.outcome = format!(
                "no plan within {} s: {who} uses the repository's file",
                budget.as_secs()
            );
            return (StatusCode::NO_CONTENT.into_response(), record);
        }
    };
    let response = match planned {
        Ok(outcome) => {
            record.base = outcome.base;
            record.head = outcome.head;
            record.changed = outcome.changed;
            record.affected = outcome.affected;
            match outcome.answer {
                Some(body) => {
                    record.outcome = "planned".into();
                    record.yaml = outcome.yaml;
                    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                None => {
                    record.outcome = format!("no services.toml: {who} uses the repository's file");
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }
        // The CI system falls back to the repository's own file on 204,
        // which is better than failing the build over a mirror or manifest
        // problem.
        Err(Failed::Plan(error)) => {
            record.outcome = format!("fell back to the repository's file: {}", error.report());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(Failed::Panicked) => {
            record.outcome = "internal error".into();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    (response, record)
}

/// The request body, read within `timeout` and [`MAX_BODY`]: else the status
/// and a fixed reason. A client that stops sending is told apart from one
/// that sends too much.
async fn read_body(body: Body, timeout: Duration) -> Result<Bytes, (u16, &'static str)> {
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err((413, "request body over 1 MiB"))
        }
        Ok(Err(_)) => Err((
            400,
            "request body incomplete: the client closed the connection",
        )),
        Err(_) => Err((408, "request body not received in time")),
    }
}

fn wants_json(parts: &axum::http::request::Parts) -> bool {
    let query = parts.uri.query().unwrap_or_default();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    query.split('&').any(|q| q == "format=json") || accept.contains("application/json")
}

/// `GET /plans`: the newest 100, as HTML or JSON.
async fn list_plans(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let (parts, _) = request.into_parts();
    let reader = Arc::clone(&state);
    match tokio::task::spawn_blocking(move || reader.history.recent(100)).await {
        Ok(Ok(records)) if wants_json(&parts) => axum::Json(records).into_response(),
        Ok(Ok(records)) => axum::response::Html(history::list_html(&records)).into_response(),
        Ok(Err(why)) => refuse(503, format!("history unavailable: {why}")),
        Err(_) => refuse(500, "history unavailable".into()),
    }
}

/// `GET /plans/{id}`, as HTML or JSON.
async fn show_plan(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<u64>,
    request: Request<Body>,
) -> Response {
    let (parts, _) = request.into_parts();
    let reader = Arc::clone(&state);
    match tokio::task::spawn_blocking(move || reader.history.get(id)).await {
        Ok(Ok(Some(record))) if wants_json(&parts) => axum::Json(record).into_response(),
        Ok(Ok(Some(record))) => axum::response::Html(history::record_html(&record)).into_response(),
        Ok(Ok(None)) => refuse(404, format!("no plan {id}")),
        Ok(Err(why)) => refuse(503, format!("history unavailable: {why}")),
        Err(_) => refuse(500, "history unavailable".into()),
    }
}

impl AppState {
    /// The head of the newest plan answered for this repository and ref at
    /// another commit: Woodpecker's pushes carry no `before`. The event
    /// rules use it only when it is an ancestor of the commit built.
    async fn last_head(self: &Arc<Self>, request: &ConfigRequest) -> Option<String> {
        let reader = Arc::clone(self);
        let (slug, reference, after) = (
            request.repo.slug.clone(),
            request.build.reference.clone(),
            request.build.after.clone(),
        );
        let records = tokio::task::spawn_blocking(move || reader.history.recent(LOOKBACK))
            .await
            .ok()?
            .ok()?;
        records.into_iter().find_map(|r| {
            (r.status == 200 && r.repo == slug && r.reference == reference)
                .then_some(r.head)
                .flatten()
                .filter(|head| *head != after)
        })
    }

    fn first_sighting(&self, signature: Vec<u8>, now: SystemTime) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Outside the window a replay fails on its date anyway.
        seen.retain(|_, at| {
            now.duration_since(*at)
                .map_or(true, |age| age <= DATE_WINDOW * 2)
        });
        seen.insert(signature, now).is_none()
    }

    fn lock_for(&self, mirror: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(mirror.to_path_buf()).or_default())
    }

    fn cached(&self, key: &CacheKey) -> Option<Outcome> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Fetches what the build needs and plans it, remembered by everything
    /// that decides a plan: a retried build is answered without git. The
    /// caller bounds the whole with the answer timeout; dropping this
    /// future kills a fetch in flight and frees the mirror.
    async fn plan_cached(self: &Arc<Self>, request: ConfigRequest) -> Result<Outcome, Failed> {
        let deadline = Instant::now() + self.config.answer_timeout;
        let build = &request.build;
        let key: CacheKey = (
            request.repo.git_http_url.clone(),
            build.event.clone(),
            build.reference.clone(),
            build.before.clone(),
            build.after.clone(),
            // A promotion's target rides on the branch field: a target
            // branch and a deployment never come in one build.
            format!("{}\0{}", build.target, build.deploy_to),
        );
        if let Some(outcome) = self.cached(&key) {
            return Ok(outcome);
        }
        let mirror = self
            .config
            .data_dir
            .join("mirrors")
            .join(mirror_name(&request.repo.git_http_url));
        // One build of a repository at a time touches its mirror; others
        // wait here, without a thread, and may find their answer made.
        let lock = self.lock_for(&mirror);
        let _held = lock.lock().await;
        if let Some(outcome) = self.cached(&key) {
            return Ok(outcome);
        }
        let request = Arc::new(request);
        let mut healed = false;
        let outcome = loop {
            let path = mirror.clone();
            let opened = blocking(move || mirror::open_or_create(&path)).await?;
            match opened {
                Ok((_, Some(note))) => {
                    healed = true;
                    eprintln!("ripple serve: {note}");
                }
                Ok((_, None)) => {}
                Err(error) => return Err(Failed::Plan(git("creating a mirror")(error))),
            }
            match self.fetch(&mirror, &request, deadline).await {
                mirror::Fetched::Done => {}
                mirror::Fetched::Damaged(why) if !healed => {
                    healed = true;
                    eprintln!("ripple serve: {}", mirror::move_aside(&mirror, &why));
                    continue;
                }
                // A failed fetch is not the end: the mirror may already hold
                // the commits from an earlier build, and a missing base still
                // gives a plan for every service, with the reason.
                mirror::Fetched::Damaged(why) | mirror::Fetched::Failed(why) => eprintln!(
                    "ripple serve: fetching {} failed, planning from the mirror: {why}",
                    request.repo.git_http_url
                ),
            }
            let (worker, path, asked) = (Arc::clone(self), mirror.clone(), Arc::clone(&request));
            match blocking(move || worker.plan_from(&path, &asked)).await? {
                Err(Planned::Damaged(why)) if !healed => {
                    healed = true;
                    eprintln!("ripple serve: {}", mirror::move_aside(&mirror, &why));
                }
                Err(Planned::Damaged(why)) => {
                    return Err(Failed::Plan(Error::Usage {
                        message: format!("the mirror is unusable even after cloning again: {why}"),
                        hint: None,
                    }));
                }
                Err(Planned::Failed(error)) => return Err(Failed::Plan(error)),
                Ok(outcome) => break outcome,
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, outcome.clone());
        Ok(outcome)
    }

    /// Fetches the refs `request` needs, within `deadline` less the time
    /// planning needs, and only while fewer than `--max-fetches` fetches
    /// run: a build of a healthy repository never queues behind stalled
    /// origins, it plans from its mirror.
    async fn fetch(
        &self,
        mirror: &Path,
        request: &ConfigRequest,
        deadline: Instant,
    ) -> mirror::Fetched {
        let build = &request.build;
        let mut refspecs = Vec::new();
        if is_ref(&build.reference) {
            refspecs.push(format!("+{0}:{0}", build.reference));
        }
        let event = Event::parse(&build.event);
        if event == Some(Event::PullRequest) && is_ref(&format!("refs/heads/{}", build.target)) {
            refspecs.push(format!("+refs/heads/{0}:refs/heads/{0}", build.target));
        }
        let fetch_by = deadline.checked_sub(PLAN_RESERVE).unwrap_or(deadline);
        let left = fetch_by.saturating_duration_since(Instant::now());
        if left < mirror::MIN_FETCH_TIME {
            return mirror::Fetched::Failed("no time left to fetch".into());
        }
        let permit = tokio::time::timeout(left.min(FETCH_QUEUE_WAIT), self.fetches.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            return mirror::Fetched::Failed(format!(
                "{} fetches are running already (--max-fetches)",
                self.config.max_fetches
            ));
        };
        mirror::fetch(
            mirror,
            &request.repo.git_http_url,
            &refspecs,
            self.config.credentials.as_ref(),
            fetch_by,
        )
        .await
    }

    /// Plans the build from what the mirror holds.
    fn plan_from(&self, mirror: &Path, request: &ConfigRequest) -> Result<Outcome, Planned> {
        let repo =
            Repository::open_bare(mirror).map_err(|e| Planned::Damaged(e.message().into()))?;
        let planned = self.plan_in(&repo, request);
        match planned {
            Err(Error::Git { source, .. }) if mirror::is_damage(&source) => {
                Err(Planned::Damaged(source.message().into()))
            }
            // An unknown commit in a mirror whose refs cannot be read is
            // damage, not a bad request.
            Err(Error::Revision { .. }) if let Some(why) = mirror::damage_of(&repo) => {
                Err(Planned::Damaged(why))
            }
            Err(error) => Err(Planned::Failed(error)),
            Ok(outcome) => Ok(outcome),
        }
    }

    fn plan_in(&self, repo: &Repository, request: &ConfigRequest) -> Result<Outcome> {
        let build = &request.build;
        let event = Event::parse(&build.event);
        let head = if build.after.is_empty() {
            build.reference.clone()
        } else {
            build.after.clone()
        };
        let text = match changes::manifest_at(repo, &head) {
            Ok(text) => text,
            Err(Error::ManifestRead { .. }) => return Ok(Outcome::default()),
            Err(error) => return Err(error),
        };
        let manifest = Manifest::parse(&text, "services.toml")?;
        let request = changes::Request {
            event,
            head: Some(head),
            base: (event == Some(Event::PullRequest)).then(|| build.target.clone()),
            branch: build
                .reference
                .strip_prefix("refs/heads/")
                .map(str::to_string),
            before: Some(build.before.clone()).filter(|b| !b.is_empty()),
            tag: build
                .reference
                .strip_prefix("refs/tags/")
                .map(str::to_string),
            deploy_to: Some(build.deploy_to.clone()).filter(|t| !t.is_empty()),
            names: self.config.speaks.backend().names(),
            ..changes::Request::default()
        };
        let mut changes = changes::collect(repo, &manifest.settings, &request)?;
        changes::read_build_args(repo, &manifest, &mut changes);
        let graph = ServiceGraph::new(&manifest);
        // Rendered for the CI system: no service's reasons are read.
        let mut affected = graph.affected_set(&changes, Why::Left);
        let images = affected.has_images();
        if let Some(head) = changes
            .head
            .as_deref()
            .filter(|_| images && input::wanted(&manifest))
        {
            let files = changes::inputs_at(repo, head)?;
            input::annotate(
                &manifest,
                &graph,
                &mut affected,
                &files,
                &changes.args.values,
            );
        }
        let affected = affected.into_affected();
        let plan = plan::plan(&manifest, &changes, &affected);
        let mut text = Vec::new();
        let rendered = self.config.speaks.backend().plan(
            &self.templates,
            &std::sync::Arc::new(plan),
            &mut text,
        )?;
        let (answer, yaml) = match rendered {
            // Drone: `{"data": YAML}`.
            Rendered::Written => {
                // Templates and their formatter write only `str`s.
                let yaml = String::from_utf8_lossy(&text).into_owned();
                (serde_json::json!({ "data": yaml }).to_string(), yaml)
            }
            // Woodpecker: `{"configs": [{"name", "data"}]}`, shown in the
            // history as its files one after another.
            Rendered::Answer => {
                #[derive(serde::Deserialize)]
                struct Config {
                    name: String,
                    data: String,
                }
                #[derive(serde::Deserialize)]
                struct Answer {
                    configs: Vec<Config>,
                }
                let json = String::from_utf8_lossy(&text).into_owned();
                let shown: Vec<String> = serde_json::from_str::<Answer>(&json)
                    .map(|answer| answer.configs)
                    .unwrap_or_default()
                    .iter()
                    .map(|config| format!("# {}.yaml\n{}", config.name, config.data))
                    .collect();
                (json, shown.join("\n"))
            }
            Rendered::Outputs { .. } => {
                return Err(Error::Usage {
                    message: "serve speaks Drone's and Woodpecker's extensions only".into(),
                    hint: None,
                });
            }
        };
        Ok(Outcome {
            answer: Some(Bytes::from(answer)),
            yaml: Some(Arc::from(yaml)),
            base: changes.base,
            head: changes.head,
            changed: changes.paths.len(),
            affected: affected
                .services
                .into_iter()
                .map(|s| s.name.into_string())
                .collect(),
        })
    }
}

/// Why a plan could not be made.
enum Failed {
    /// ripple's own error: answered 204 (Drone uses the repository's file).
    Plan(Error),
    /// A panic in the planning thread: a bug, answered 500.
    Panicked,
}

/// Why planning from a mirror stopped.
enum Planned {
    /// git cannot read the mirror.
    Damaged(String),
    /// Anything else: a manifest problem, an unknown revision.
    Failed(Error),
}

/// How many of the newest records are searched for a branch's last plan.
const LOOKBACK: usize = 1_000;

/// Time kept back from a fetch for planning after it.
const PLAN_RESERVE: Duration = Duration::from_secs(2);

/// The longest a build waits for one of the `--max-fetches` fetches.
const FETCH_QUEUE_WAIT: Duration = Duration::from_secs(3);

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failed> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Failed::Panicked)
}

/// A valid, full reference name (`refs/...`): anything else would let a
/// request shape the refspec.
fn is_ref(name: &str) -> bool {
    name.starts_with("refs/") && git2::Reference::is_valid_name(name)
}

/// A directory name for a clone URL: readable, and distinct per URL.
fn mirror_name(url: &str) -> String {
    let readable: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{readable}-{hash:016x}.git")
}

/// A listener on `address`; a failure names the address.
pub(crate) async fn listen(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Io {
            action: "listen on",
            path: PathBuf::from(address.to_string()),
            source,
        })
}
