//! `ripple slot acquire|renew|release`: the client of `ripple slots serve`,
//! for any CI step. Acquire waits in line (asking again with its ticket
//! when a request times out or the server restarts, so it keeps its
//! place) and prints a progress line while it waits.

use std::io::Write;
use std::time::{Duration, Instant};

use super::server::{Granted, MAX_WAIT_S, Waiting};
use crate::error::{Error, Result};

/// `ripple slot`'s exit status when the wait ran out (EX_TEMPFAIL).
pub const TIMED_OUT: u8 = 75;

/// A connection to the slots server.
pub struct Client {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

fn slot_error(message: String, hint: Option<String>, exit: u8) -> Error {
    Error::Slot {
        message,
        hint,
        exit,
    }
}

/// What one request came to.
enum Answer {
    Status(u16, Vec<u8>),
    /// No connection, or it broke: the server may be restarting.
    Unreachable(String),
}

impl Client {
    /// A client of the server at `url` (`http://host:port`), sending `key`.
    pub fn new(url: &str, key: Option<String>) -> Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                action: "start the slots client",
                path: url.into(),
                source,
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| {
                slot_error(
                    format!("cannot set up an HTTP client: {e}"),
                    None,
                    crate::error::exit::ENVIRONMENT,
                )
            })?;
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            key,
            http,
            runtime,
        })
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        self.runtime.block_on(async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.bytes().await {
                        Ok(bytes) => Answer::Status(status, bytes.to_vec()),
                        Err(e) => Answer::Unreachable(e.to_string()),
                    }
                }
                Err(e) => Answer::Unreachable(describe(&e)),
            }
        })
    }

    /// A refusal as an error a person can act on.
    fn refused(&self, status: u16, body: &[u8], what: &str) -> Error {
        let said = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
        let hint = match status {
            401 => Some("set RIPPLE_SLOTS_KEY to a key of the server's keys file".to_string()),
            404 => Some("check the name against `GET /environments` on the server".to_string()),
            _ => None,
        };
        let exit = if status >= 500 {
            crate::error::exit::ENVIRONMENT
        } else {
            crate::error::exit::USER
        };
        slot_error(
            format!("{what}: the slots server answered {status}: {said}"),
            hint,
            exit,
        )
    }

    /// Waits up to `wait` for a slot of `environment`; `progress` hears a
    /// line each time a request ends without one.
    pub fn acquire(
        &self,
        environment: &str,
        holder: &str,
        wait: Duration,
        progress: &mut dyn Write,
    ) -> Result<Granted> {
        let started = Instant::now();
        let deadline = started + wait;
        let mut ticket: Option<u64> = None;
        let path = format!("/environments/{environment}/leases");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // The first request only takes a place in line (or a free
            // slot), so that the ticket is known before any long wait a
            // restart could cut. Then whole seconds, rounded up: a request
            // never asks to wait 0s while time is left.
            let wait_s = if ticket.is_none() {
                0
            } else {
                left.as_millis().div_ceil(1000).min(u128::from(MAX_WAIT_S)) as u64
            };
            let body = serde_json::json!({ "holder": holder, "wait_s": wait_s, "ticket": ticket });
            let answer = self.send(
                reqwest::Method::POST,
                &path,
                Some(body),
                Duration::from_secs(wait_s + 15),
            );
            let waited = started.elapsed().as_secs();
            let mut unreachable: Option<String> = None;
            match answer {
                Answer::Status(201, body) => {
                    return serde_json::from_slice(&body).map_err(|e| {
                        slot_error(
                            format!("the slots server's grant is not JSON: {e}"),
                            None,
                            crate::error::exit::ENVIRONMENT,
                        )
                    });
                }
                Answer::Status(409, body) => {
                    if let Ok(waiting) = serde_json::from_slice::<Waiting>(&body) {
                        ticket = Some(waiting.ticket);
                        let _ = writeln!(
                            progress,
                            "ripple slot: waiting for a slot of `{environment}` ({} ahead), {} of {}",
                            waiting.ahead,
                            human(waited),
                            human(wait.as_secs())
                        );
                    }
                }
                Answer::Status(503, _) | Answer::Unreachable(_) => {
                    let why = match &answer {
                        Answer::Unreachable(why) => why.clone(),
                        _ => "the server is stopping".into(),
                    };
                    let _ = writeln!(
                        progress,
                        "ripple slot: {why}; asking again (waiting {})",
                        human(waited)
                    );
                    unreachable = Some(why);
                    std::thread::sleep(Duration::from_millis(500).min(left));
                }
                Answer::Status(status, body) => {
                    return Err(self.refused(
                        status,
                        &body,
                        &format!("cannot acquire a slot of `{environment}`"),
                    ));
                }
            }
            if Instant::now() >= deadline
                && let Some(why) = unreachable
            {
                return Err(slot_error(
                    format!("cannot reach the slots server at {}: {why}", self.base),
                    Some("check RIPPLE_SLOTS_URL and that `ripple slots serve` runs".into()),
                    crate::error::exit::ENVIRONMENT,
                ));
            }
            if Instant::now() >= deadline {
                // Out of line, so the next free slot is not kept for us.
                if let Some(ticket) = ticket {
                    let _ = self.send(
                        reqwest::Method::DELETE,
                        &format!("/environments/{environment}/waiters/{ticket}"),
                        None,
                        Duration::from_secs(5),
                    );
                }
                return Err(slot_error(
                    format!("no slot of `{environment}` came free within {}", human(wait.as_secs())),
                    Some("wait longer (`--wait`), or see who holds them: GET /environments on the server".into()),
                    TIMED_OUT,
                ));
            }
        }
    }

    /// Extends a lease; an error when it is gone.
    pub fn renew(&self, lease: u64) -> Result<Option<Granted>> {
        match self.send(
            reqwest::Method::POST,
            &format!("/leases/{lease}/renew"),
            None,
            Duration::from_secs(15),
        ) {
            Answer::Status(200, body) => Ok(serde_json::from_slice(&body).ok()),
            Answer::Status(404, _) => Ok(None),
            Answer::Status(status, body) => {
                Err(self.refused(status, &body, &format!("cannot renew lease {lease}")))
            }
            Answer::Unreachable(why) => Err(slot_error(
                format!("cannot reach the slots server at {}: {why}", self.base),
                Some("check RIPPLE_SLOTS_URL and that `ripple slots serve` runs".into()),
                crate::error::exit::ENVIRONMENT,
            )),
        }
    }

    /// Ends a lease (also one that is already gone).
    pub fn release(&self, lease: u64) -> Result<()> {
        match self.send(
            reqwest::Method::DELETE,
            &format!("/leases/{lease}"),
            None,
            Duration::from_secs(15),
        ) {
            Answer::Status(204 | 200 | 404, _) => Ok(()),
            Answer::Status(status, body) => {
                Err(self.refused(status, &body, &format!("cannot release lease {lease}")))
            }
            Answer::Unreachable(why) => Err(slot_error(
                format!("cannot reach the slots server at {}: {why}", self.base),
                Some("the lease frees itself at its ttl".into()),
                crate::error::exit::ENVIRONMENT,
            )),
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    let mut line = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}

/// `1m30s`.
pub fn human(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 && s % 60 == 0 => format!("{}m", s / 60),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

/// The lines `acquire` prints, to `eval` or source: `RIPPLE_SLOT=uat-1` and
/// the rest.
pub fn lines(granted: &Granted) -> String {
    format!(
        "RIPPLE_SLOT={}\nRIPPLE_SLOT_ENVIRONMENT={}\nRIPPLE_SLOT_LEASE={}\nRIPPLE_SLOT_TOKEN={}\n\
         RIPPLE_SLOT_EXPIRES={}\nRIPPLE_SLOT_TTL={}\n",
        granted.slot,
        granted.environment,
        granted.lease,
        granted.token,
        granted.expires,
        granted.ttl
    )
}

/// The value of `NAME=` in such lines.
pub fn value_of<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export ").unwrap_or(line).split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
}
