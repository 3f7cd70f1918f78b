//! Environment slots: shared, pre-provisioned test environments that
//! pipelines take turns on. This module is the state and its rules, plain
//! data with no I/O: environments of named slots, leases that expire at the
//! server's clock unless renewed, a first-come-first-served queue of
//! waiters, and fencing tokens that grow with every grant. `store` keeps it
//! in redb, `server` serves it, `client` is `ripple slot`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod client;
pub mod command;
pub mod page;
pub mod server;
pub mod store;

/// Milliseconds since the Unix epoch, by the server's clock.
pub type Millis = u64;

/// A waiter that is not waiting in a request right now keeps its place
/// this long, so that a client whose request timed out (or whose server
/// restarted) can ask again without going to the back of the queue.
pub const GRACE_MS: Millis = 30_000;

/// The ttl of an environment that the seed's `/maybe` routes bring into
/// being.
pub const DEFAULT_TTL_S: u64 = 600;

/// One environment and its slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Its name.
    pub name: String,
    /// Its slots, in the order they are handed out.
    pub slots: Vec<String>,
    /// A lease not renewed within this many seconds is freed.
    pub ttl_s: u64,
    /// Brought into being by the seed's `/maybe` routes rather than the
    /// configuration.
    #[serde(default)]
    pub from_maybe: bool,
}

/// A slot held by someone until `expires`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its id, unique for the server's lifetime (restarts included).
    pub id: u64,
    /// The environment.
    pub environment: String,
    /// The slot held.
    pub slot: String,
    /// Who holds it, as they said.
    pub holder: String,
    /// The fencing token: larger than that of every earlier grant.
    pub token: u64,
    /// When it was granted.
    pub since: Millis,
    /// When it is freed unless renewed.
    pub expires: Millis,
    /// The waiter's ticket it was granted to, when it waited.
    pub ticket: Option<u64>,
    /// Whether its holder has heard of it: a slot granted to a waiter
    /// whose request is not open right now goes back after [`GRACE_MS`]
    /// unless the waiter comes back for it.
    #[serde(default = "yes")]
    pub claimed: bool,
}

fn yes() -> bool {
    true
}

/// Someone waiting for a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// Its place: tickets grow with arrival.
    pub ticket: u64,
    /// The environment.
    pub environment: String,
    /// Who waits.
    pub holder: String,
    /// When it arrived.
    pub since: Millis,
    /// When it last asked: it keeps its place until [`GRACE_MS`] after
    /// this, or while a request of its is open.
    pub seen: Millis,
    /// Whether a request of its is waiting right now.
    #[serde(skip)]
    pub attached: u32,
}

/// Everything the server knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// Leases by id.
    pub leases: BTreeMap<u64, Lease>,
    /// Waiters in arrival order.
    pub waiters: Vec<Waiter>,
    /// The next lease id or ticket.
    pub next_id: u64,
    /// The last fencing token given.
    pub last_token: u64,
}

/// What an acquire came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// A slot: the lease.
    Granted(Lease),
    /// In line: the ticket to ask again with, and how many are ahead.
    Waiting {
        /// The waiter's ticket.
        ticket: u64,
        /// Waiters before it.
        ahead: usize,
    },
    /// No such environment.
    Unknown,
}

impl State {
    /// A state with these environments and nothing held.
    pub fn new(environments: Vec<Environment>) -> State {
        State {
            environments: environments
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect(),
            next_id: 1,
            ..State::default()
        }
    }

    /// Takes the environments of a configuration: added ones appear,
    /// changed ones take the new slots and ttl; leases of slots that are
    /// gone stay until they end.
    pub fn configure(&mut self, environments: Vec<Environment>) {
        for environment in environments {
            self.environments
                .insert(environment.name.clone(), environment);
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        id
    }

    /// A free slot of `environment`, in the configured order.
    pub fn free_slot(&self, environment: &str) -> Option<&str> {
        let env = self.environments.get(environment)?;
        env.slots
            .iter()
            .find(|slot| {
                !self
                    .leases
                    .values()
                    .any(|l| l.environment == environment && l.slot == **slot)
            })
            .map(String::as_str)
    }

    fn grant(
        &mut self,
        environment: &str,
        holder: &str,
        ticket: Option<u64>,
        now: Millis,
    ) -> Option<Lease> {
        let slot = self.free_slot(environment)?.to_string();
        let ttl = self.environments.get(environment)?.ttl_s;
        let id = self.id();
        self.last_token += 1;
        let lease = Lease {
            id,
            environment: environment.to_string(),
            slot,
            holder: holder.to_string(),
            token: self.last_token,
            since: now,
            expires: now + ttl * 1000,
            ticket,
            claimed: ticket.is_none(),
        };
        self.leases.insert(id, lease.clone());
        Some(lease)
    }

    /// Asks for a slot: the lease a ticket was granted, the waiter's place,
    /// or a new grant when a slot is free and nobody waits before; else a
    /// new place at the back of the line.
    pub fn acquire(
        &mut self,
        environment: &str,
        holder: &str,
        ticket: Option<u64>,
        now: Millis,
    ) -> Acquired {
        if !self.environments.contains_key(environment) {
            return Acquired::Unknown;
        }
        if let Some(ticket) = ticket {
            if let Some(lease) = self
                .leases
                .values_mut()
                .find(|l| l.ticket == Some(ticket) && l.environment == environment)
            {
                lease.claimed = true;
                return Acquired::Granted(lease.clone());
            }
            if let Some(at) = self
                .waiters
                .iter()
                .position(|w| w.ticket == ticket && w.environment == environment)
            {
                self.waiters[at].seen = now;
                return Acquired::Waiting {
                    ticket,
                    ahead: self.ahead(at),
                };
            }
        }
        let queued = self.waiters.iter().any(|w| w.environment == environment);
        if !queued && let Some(lease) = self.grant(environment, holder, None, now) {
            return Acquired::Granted(lease);
        }
        let ticket = self.id();
        self.waiters.push(Waiter {
            ticket,
            environment: environment.to_string(),
            holder: holder.to_string(),
            since: now,
            seen: now,
            attached: 0,
        });
        Acquired::Waiting {
            ticket,
            ahead: self.ahead(self.waiters.len() - 1),
        }
    }

    /// Waiters of the same environment before position `at`.
    fn ahead(&self, at: usize) -> usize {
        let environment = &self.waiters[at].environment;
        self.waiters[..at]
            .iter()
            .filter(|w| w.environment == *environment)
            .count()
    }

    /// Leaves the line (a client that gave up).
    pub fn leave(&mut self, ticket: u64) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|w| w.ticket != ticket);
        self.waiters.len() != before
    }

    /// Marks a waiter's request as open (`+1`) or closed (`-1`).
    pub fn attach(&mut self, ticket: u64, open: bool, now: Millis) {
        if let Some(waiter) = self.waiters.iter_mut().find(|w| w.ticket == ticket) {
            waiter.attached = if open {
                waiter.attached + 1
            } else {
                waiter.attached.saturating_sub(1)
            };
            waiter.seen = now;
        }
    }

    /// Extends a lease by its environment's ttl; `None` when it is gone.
    pub fn renew(&mut self, id: u64, now: Millis) -> Option<Lease> {
        let ttl = self
            .environments
            .get(&self.leases.get(&id)?.environment)
            .map_or(DEFAULT_TTL_S, |e| e.ttl_s);
        let lease = self.leases.get_mut(&id)?;
        lease.expires = now + ttl * 1000;
        Some(lease.clone())
    }

    /// Ends a lease; releasing one that is gone is not an error.
    pub fn release(&mut self, id: u64) -> Option<Lease> {
        self.leases.remove(&id)
    }

    /// The clock moved to `now`: frees expired leases, drops waiters that
    /// left, and hands free slots to the first waiters in line. Whether
    /// anything changed.
    pub fn settle(&mut self, now: Millis) -> bool {
        let before = (self.leases.len(), self.waiters.len(), self.last_token);
        self.leases
            .retain(|_, l| l.expires > now && (l.claimed || l.since + GRACE_MS > now));
        self.waiters
            .retain(|w| w.attached > 0 || w.seen + GRACE_MS > now);
        let mut at = 0;
        while at < self.waiters.len() {
            let waiter = &self.waiters[at];
            // Only the first waiter of each environment may be served.
            let first = !self.waiters[..at]
                .iter()
                .any(|w| w.environment == waiter.environment);
            if first && self.free_slot(&waiter.environment).is_some() {
                let waiter = self.waiters.remove(at);
                self.grant(
                    &waiter.environment,
                    &waiter.holder,
                    Some(waiter.ticket),
                    now,
                );
                at = 0;
                continue;
            }
            at += 1;
        }
        before != (self.leases.len(), self.waiters.len(), self.last_token)
    }

    /// What must be committed and told to waiters when it changes: not a
    /// waiter's `seen`, which moves at every poll.
    pub fn significant(
        &self,
    ) -> (
        &BTreeMap<String, Environment>,
        &BTreeMap<u64, Lease>,
        Vec<u64>,
        u64,
    ) {
        (
            &self.environments,
            &self.leases,
            self.waiters.iter().map(|w| w.ticket).collect(),
            self.last_token,
        )
    }

    /// The next moment something expires on its own, if anything can.
    pub fn next_deadline(&self) -> Option<Millis> {
        let leases = self.leases.values().map(|l| {
            if l.claimed {
                l.expires
            } else {
                l.expires.min(l.since + GRACE_MS)
            }
        });
        let waiters = self
            .waiters
            .iter()
            .filter(|w| w.attached == 0)
            .map(|w| w.seen + GRACE_MS);
        leases.chain(waiters).min()
    }

    /// The oldest lease of `holder` in `environment` (the seed's DELETE).
    pub fn oldest_of(&self, environment: &str, holder: &str) -> Option<u64> {
        self.leases
            .values()
            .filter(|l| l.environment == environment && l.holder == holder)
            .min_by_key(|l| (l.since, l.id))
            .map(|l| l.id)
    }
}

pub use crate::manifest::parse_duration;

/// `2026-12-03 08:40:00Z` for a time in milliseconds.
pub fn utc(millis: Millis) -> String {
    let seconds = millis / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uat(slots: &[&str]) -> State {
        State::new(vec![Environment {
            name: "uat".into(),
            slots: slots.iter().map(|s| s.to_string()).collect(),
            ttl_s: 60,
            from_maybe: false,
        }])
    }

    fn granted(acquired: Acquired) -> Lease {
        match acquired {
            Acquired::Granted(lease) => lease,
            other => panic!("not granted: {other:?}"),
        }
    }

    #[test]
    fn slots_go_first_come_first_served_with_growing_tokens() {
        let mut state = uat(&["uat-1", "uat-2"]);
        let a = granted(state.acquire("uat", "a", None, 0));
        let b = granted(state.acquire("uat", "b", None, 1));
        assert_eq!((a.slot.as_str(), b.slot.as_str()), ("uat-1", "uat-2"));
        assert!(b.token > a.token);
        let Acquired::Waiting {
            ticket: c,
            ahead: 0,
        } = state.acquire("uat", "c", None, 2)
        else {
            panic!()
        };
        let Acquired::Waiting {
            ticket: d,
            ahead: 1,
        } = state.acquire("uat", "d", None, 3)
        else {
            panic!()
        };
        // A newcomer does not jump the line even when a slot frees.
        state.release(a.id);
        let Acquired::Waiting { ahead: 2, .. } = state.acquire("uat", "e", None, 4) else {
            panic!()
        };
        state.attach(c, true, 4);
        state.attach(d, true, 4);
        assert!(state.settle(5));
        let c_lease = granted(state.acquire("uat", "c", Some(c), 6));
        assert_eq!(c_lease.slot, "uat-1");
        assert!(c_lease.token > b.token);
        assert!(matches!(
            state.acquire("uat", "d", Some(d), 6),
            Acquired::Waiting { ahead: 0, .. }
        ));
    }

    #[test]
    fn leases_expire_unless_renewed_and_release_is_idempotent() {
        let mut state = uat(&["uat-1"]);
        let lease = granted(state.acquire("uat", "a", None, 0));
        assert_eq!(lease.expires, 60_000);
        assert_eq!(state.renew(lease.id, 30_000).unwrap().expires, 90_000);
        assert!(!state.settle(89_999));
        assert!(state.settle(90_000));
        assert!(state.leases.is_empty());
        assert_eq!(state.renew(lease.id, 90_001), None);
        assert_eq!(state.release(lease.id), None);
    }

    #[test]
    fn a_waiter_that_left_loses_its_place_after_the_grace() {
        let mut state = uat(&["uat-1"]);
        let lease = granted(state.acquire("uat", "a", None, 0));
        let Acquired::Waiting { ticket, .. } = state.acquire("uat", "b", None, 0) else {
            panic!()
        };
        state.settle(GRACE_MS - 1);
        assert_eq!(state.waiters.len(), 1);
        state.settle(GRACE_MS);
        assert!(state.waiters.is_empty());
        state.release(lease.id);
        // Asking again with the old ticket: a new place, served at once.
        let again = granted(state.acquire("uat", "b", Some(ticket), GRACE_MS + 1));
        assert_eq!(again.slot, "uat-1");
    }

    #[test]
    fn a_slot_granted_to_a_waiter_that_never_comes_back_returns() {
        let mut state = uat(&["uat-1"]);
        let lease = granted(state.acquire("uat", "a", None, 0));
        let Acquired::Waiting { ticket, .. } = state.acquire("uat", "b", None, 0) else {
            panic!()
        };
        state.release(lease.id);
        state.settle(1);
        assert!(state.free_slot("uat").is_none(), "granted to b's ticket");
        state.settle(GRACE_MS + 1);
        assert_eq!(state.free_slot("uat"), Some("uat-1"), "b never came back");
        assert_eq!(
            granted(state.acquire("uat", "c", None, GRACE_MS + 2)).holder,
            "c"
        );
        // Coming back later with the ticket finds a new place in line.
        assert!(matches!(
            state.acquire("uat", "b", Some(ticket), GRACE_MS + 3),
            Acquired::Waiting { ahead: 0, .. }
        ));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(utc(1_796_286_000_000), "2026-12-03 08:20:00Z");
    }
}
