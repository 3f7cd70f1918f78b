//! `ripple slots serve`: the slots over HTTP. One mutex holds the state;
//! every change is committed to redb before it is answered; a waiting
//! request sleeps until the state changes, its deadline passes, or the
//! server stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State as Shared};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use super::store::Store;
use super::{Acquired, DEFAULT_TTL_S, Environment, Lease, Millis, State};
use crate::error::{Error, Result};

/// How `slots serve` runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where `slots.redb` lives.
    pub data_dir: PathBuf,
    /// The environments of the configuration file.
    pub environments: Vec<Environment>,
    /// The API keys.
    pub keys: Vec<String>,
}

/// The longest one request waits; a client waiting longer asks again with
/// its ticket and keeps its place.
pub const MAX_WAIT_S: u64 = 60;

struct App {
    state: Mutex<State>,
    store: Store,
    /// Woken at every change of the state.
    changed: Notify,
    /// Becomes true when the server stops: waiting requests end at once.
    stopping: watch::Receiver<bool>,
    keys: Vec<String>,
    /// The environments of the configuration: the REST routes know only
    /// these (and those the `/maybe` routes made).
    configured: Vec<String>,
}

/// Milliseconds since the epoch, now.
fn now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl App {
    /// Whether the request carries one of the keys (`Authorization:
    /// Bearer`, or call-me's `X-API-KEY`). Every key is compared, so the
    /// time says nothing about which one came close.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        let Some(given) = bearer.or(api_key) else {
            return false;
        };
        self.keys.iter().fold(false, |found, key| {
            same(key.as_bytes(), given.trim().as_bytes()) | found
        })
    }

    /// Runs `change` on the state at `now`, settles it, and commits it
    /// before anyone hears of it.
    fn change<T>(&self, change: impl FnOnce(&mut State, Millis) -> T) -> Result<T> {
        let now = now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = state.clone();
        let out = change(&mut state, now);
        state.settle(now);
        // A waiter asking again only moves its `seen`: nothing to commit or
        // to wake the others for.
        if state.significant() != before.significant() {
            if let Err(error) = self.store.save(&state) {
                *state = before;
                return Err(error);
            }
            self.changed.notify_waiters();
        }
        Ok(out)
    }
}

/// The answer to a grant or renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Granted {
    /// The lease id.
    pub lease: u64,
    /// The environment.
    pub environment: String,
    /// The slot held.
    pub slot: String,
    /// The fencing token.
    pub token: u64,
    /// When it is freed unless renewed (seconds since the epoch).
    pub expires: u64,
    /// Its ttl in seconds: renew well within it.
    pub ttl: u64,
}

impl Granted {
    fn of(lease: &Lease, ttl: u64) -> Granted {
        Granted {
            lease: lease.id,
            environment: lease.environment.clone(),
            slot: lease.slot.clone(),
            token: lease.token,
            expires: lease.expires / 1000,
            ttl,
        }
    }
}

/// The answer when the wait ran out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Waiting {
    /// Ask again with this to keep the place.
    pub ticket: u64,
    /// Waiters before it.
    pub ahead: usize,
    /// Why no slot was given.
    pub error: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

fn failed(cause: Error) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, cause.report())
}

/// `POST /environments/{env}/leases` body.
#[derive(Debug, Deserialize)]
struct AcquireBody {
    holder: Option<String>,
    #[serde(default)]
    wait_s: u64,
    ticket: Option<u64>,
}

async fn acquire(
    Shared(app): Shared<Arc<App>>,
    UrlPath(environment): UrlPath<String>,
    body: Bytes,
) -> Response {
    let body: AcquireBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not {{holder, wait_s}}: {e}"),
            );
        }
    };
    // The configuration's environments, and those `/maybe` made; not one
    // a previous configuration had.
    let known = app.configured.contains(&environment)
        || app
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .environments
            .get(&environment)
            .is_some_and(|e| e.from_maybe);
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            format!("no environment `{environment}`"),
        );
    }
    // Shown on the page and in the log: kept to a line of sensible length.
    let holder: String = body
        .holder
        .unwrap_or_else(|| "anonymous".into())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(body.wait_s.min(MAX_WAIT_S));
    let mut ticket = body.ticket;
    let mut stopping = app.stopping.clone();
    loop {
        // Registered before the state is read, so no change is missed.
        let changed = app.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let acquired = app.change(|state, now| {
            let acquired = state.acquire(&environment, &holder, ticket, now);
            if let Acquired::Waiting { ticket, .. } = acquired {
                state.attach(ticket, true, now);
            }
            acquired
        });
        let (new_ticket, ahead) = match acquired {
            Err(e) => return failed(e),
            Ok(Acquired::Unknown) => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no environment `{environment}`"),
                );
            }
            Ok(Acquired::Granted(lease)) => {
                let ttl = ttl_of(&app, &environment);
                return (StatusCode::CREATED, axum::Json(Granted::of(&lease, ttl))).into_response();
            }
            Ok(Acquired::Waiting { ticket, ahead }) => (ticket, ahead),
        };
        ticket = Some(new_ticket);
        let stop = *stopping.borrow();
        let out_of_time = Instant::now() >= deadline;
        if !stop && !out_of_time {
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(deadline.into()) => {}
                _ = stopping.changed() => {}
            }
        }
        let _ = app.change(|state, now| state.attach(new_ticket, false, now));
        if stop {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is stopping; ask again",
            );
        }
        if out_of_time {
            let waiting = Waiting {
                ticket: new_ticket,
                ahead,
                error: format!(
                    "every slot of `{environment}` is held; ask again with the ticket to keep your place"
                ),
            };
            return (StatusCode::CONFLICT, axum::Json(waiting)).into_response();
        }
    }
}

fn ttl_of(app: &App, environment: &str) -> u64 {
    app.state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .environments
        .get(environment)
        .map_or(DEFAULT_TTL_S, |e| e.ttl_s)
}

fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "a key is needed: `Authorization: Bearer KEY` (or `X-API-KEY: KEY`)",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Bearer".parse().expect("a header value"),
    );
    response
}

async fn leave(
    Shared(app): Shared<Arc<App>>,
    UrlPath((_, ticket)): UrlPath<(String, u64)>,
) -> Response {
    match app.change(|state, _| state.leave(ticket)) {
        Err(e) => failed(e),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn renew(Shared(app): Shared<Arc<App>>, UrlPath(id): UrlPath<u64>) -> Response {
    match app.change(|state, now| state.renew(id, now)) {
        Err(e) => failed(e),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("lease {id} is gone (released, or expired at its ttl)"),
        ),
        Ok(Some(lease)) => {
            let ttl = ttl_of(&app, &lease.environment);
            axum::Json(Granted::of(&lease, ttl)).into_response()
        }
    }
}

async fn release(Shared(app): Shared<Arc<App>>, UrlPath(id): UrlPath<u64>) -> Response {
    match app.change(|state, _| state.release(id)) {
        Err(e) => failed(e),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

/// One environment as `GET /environments` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentView {
    /// Its name.
    pub name: String,
    /// Its ttl in seconds.
    pub ttl: u64,
    /// Each slot and its lease.
    pub slots: Vec<SlotView>,
    /// Who waits, first first.
    pub waiting: Vec<WaiterView>,
}

/// One slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotView {
    /// Its name.
    pub name: String,
    /// Its lease, when held.
    pub lease: Option<LeaseView>,
}

/// A lease, for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseView {
    /// Its id.
    pub id: u64,
    /// Who holds it.
    pub holder: String,
    /// Its fencing token.
    pub token: u64,
    /// Since (seconds since the epoch).
    pub since: u64,
    /// Until (seconds since the epoch) unless renewed.
    pub expires: u64,
}

/// A waiter, for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaiterView {
    /// Who waits.
    pub holder: String,
    /// Since (seconds since the epoch).
    pub since: u64,
}

/// The state as people and scripts read it.
pub fn views(state: &State) -> Vec<EnvironmentView> {
    state
        .environments
        .values()
        .map(|env| EnvironmentView {
            name: env.name.clone(),
            ttl: env.ttl_s,
            slots: env
                .slots
                .iter()
                .map(|slot| SlotView {
                    name: slot.clone(),
                    lease: state
                        .leases
                        .values()
                        .find(|l| l.environment == env.name && l.slot == *slot)
                        .map(|l| LeaseView {
                            id: l.id,
                            holder: l.holder.clone(),
                            token: l.token,
                            since: l.since / 1000,
                            expires: l.expires / 1000,
                        }),
                })
                .collect(),
            waiting: state
                .waiters
                .iter()
                .filter(|w| w.environment == env.name)
                .map(|w| WaiterView {
                    holder: w.holder.clone(),
                    since: w.since / 1000,
                })
                .collect(),
        })
        .collect()
}

async fn environments(Shared(app): Shared<Arc<App>>, headers: HeaderMap) -> Response {
    let views = {
        let state = app.state.lock().unwrap_or_else(|p| p.into_inner());
        views(&state)
    };
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if html {
        Html(super::page::render(&views, now())).into_response()
    } else {
        axum::Json(views).into_response()
    }
}

/// `?environment=` of the seed's routes.
#[derive(Debug, Deserialize)]
struct Maybe {
    environment: Option<String>,
}

/// The seed's `/maybe` routes, answered as call-me answers them: GET 200
/// free / 403 locked, POST 201 taken / 403 locked, DELETE 204. An unknown
/// environment comes into being with one slot and the default ttl.
async fn maybe(
    Shared(app): Shared<Arc<App>>,
    method: Method,
    Query(query): Query<Maybe>,
) -> Response {
    // A name becomes a slot's name, which clients print as shell lines.
    let Some(environment) = query
        .environment
        .filter(|e| crate::manifest::is_valid_name(e))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let create = |state: &mut State| {
        state
            .environments
            .entry(environment.clone())
            .or_insert_with(|| Environment {
                name: environment.clone(),
                slots: vec![environment.clone()],
                ttl_s: DEFAULT_TTL_S,
                from_maybe: true,
            });
    };
    let result = match method {
        Method::GET => {
            let state = app.state.lock().unwrap_or_else(|p| p.into_inner());
            let free = !state.environments.contains_key(&environment)
                || (state.free_slot(&environment).is_some()
                    && !state.waiters.iter().any(|w| w.environment == environment));
            return if free {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            }
            .into_response();
        }
        Method::POST => app.change(|state, now| {
            create(state);
            // call-me's lock: held by `maybe`; a second POST while held
            // renews the oldest one.
            if let Some(id) = state.oldest_of(&environment, "maybe") {
                state.renew(id, now);
                return StatusCode::FORBIDDEN;
            }
            match state.acquire(&environment, "maybe", None, now) {
                Acquired::Granted(_) => StatusCode::CREATED,
                Acquired::Waiting { ticket, .. } => {
                    state.leave(ticket);
                    StatusCode::FORBIDDEN
                }
                Acquired::Unknown => StatusCode::FORBIDDEN,
            }
        }),
        Method::DELETE => app.change(|state, _| {
            create(state);
            if let Some(id) = state.oldest_of(&environment, "maybe") {
                state.release(id);
            }
            StatusCode::NO_CONTENT
        }),
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    match result {
        Ok(status) => status.into_response(),
        Err(e) => failed(e),
    }
}

/// Every change needs a key; reading (GET) does not. One check for every
/// route, call-me's included.
async fn require_key(
    Shared(app): Shared<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() != Method::GET && !app.authorized(request.headers()) {
        return unauthorized();
    }
    next.run(request).await
}

/// One line per request: method, path, status, time taken.
async fn log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let line = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    eprintln!(
        "ripple slots: {line} {} {}ms",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

/// The routes, for the server and its tests.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/environments", get(environments))
        .route("/environments/{env}/leases", post(acquire))
        .route("/environments/{env}/waiters/{ticket}", delete(leave))
        .route("/leases/{id}/renew", post(renew))
        .route("/leases/{id}", delete(release))
        .route("/maybe", get(maybe).post(maybe).delete(maybe))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            require_key,
        ))
        .layer(axum::middleware::from_fn(log))
        .with_state(app)
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(config: Config) -> Result<()> {
    let store = Store::open(&config.data_dir)?;
    let mut state = store.load()?;
    // Waiters of the last run get their grace from now to come back.
    let started = now();
    state.waiters.iter_mut().for_each(|w| w.seen = started);
    let configured: Vec<String> = config.environments.iter().map(|e| e.name.clone()).collect();
    state.configure(config.environments);
    state.settle(now());
    store.save(&state)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            action: "start the server runtime",
            path: config.data_dir.clone(),
            source,
        })?;
    runtime.block_on(async move {
        let listener = crate::serve::listen(config.listen).await?;
        let (stop, stopping) = watch::channel(false);
        let app = Arc::new(App {
            state: Mutex::new(state),
            store,
            changed: Notify::new(),
            stopping,
            keys: config.keys,
            configured,
        });
        eprintln!(
            "ripple slots: listening on {} ({} environments)",
            listener.local_addr().map_or(config.listen, |a| a),
            app.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .environments
                .len()
        );
        // Expiry by the server's clock: wake at the next deadline.
        let ticker = {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                loop {
                    let next = app
                        .state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .next_deadline();
                    let wait = next.map_or(Duration::from_secs(1), |at| {
                        Duration::from_millis(at.saturating_sub(now()).clamp(10, 1000))
                    });
                    tokio::time::sleep(wait).await;
                    if let Err(e) = app.change(|_, _| ()) {
                        eprintln!("ripple slots: {}", e.report());
                    }
                }
            })
        };
        let limits = crate::serve::http::Limits {
            read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            grace: Duration::from_secs(5),
        };
        let signal = async move {
            crate::serve::shutdown().await;
            eprintln!("ripple slots: stopping");
            let _ = stop.send(true);
        };
        crate::serve::http::serve(listener, router(Arc::clone(&app)), limits, signal).await;
        ticker.abort();
        Ok::<(), Error>(())
    })
}
