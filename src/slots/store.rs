//! The slots' state in one redb file: every change is committed (and
//! synced) before the server answers, so a restart keeps every lease,
//! every waiter's place and the last fencing token.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{Environment, Lease, State, Waiter};
use crate::error::{Error, Result};

const ENVIRONMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("environments");
const LEASES: TableDefinition<u64, &[u8]> = TableDefinition::new("leases");
const WAITERS: TableDefinition<u64, &[u8]> = TableDefinition::new("waiters");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// The database file.
pub struct Store {
    db: Database,
    path: PathBuf,
}

fn failed<'a>(path: &'a Path, action: &'static str) -> impl Fn(redb::Error) -> Error + 'a {
    move |error| Error::Io {
        action,
        path: path.to_path_buf(),
        source: std::io::Error::other(error.to_string()),
    }
}

impl Store {
    /// Opens (or creates) `slots.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "create the data directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("slots.redb");
        let db = Database::create(&path)
            .map_err(|e| failed(&path, "open the slots database")(e.into()))?;
        Ok(Store { db, path })
    }

    /// The state as last saved (empty for a new file).
    pub fn load(&self) -> Result<State> {
        let fail = failed(&self.path, "read the slots database");
        let txn = self.db.begin_read().map_err(|e| fail(e.into()))?;
        let mut state = State {
            next_id: 1,
            ..State::default()
        };
        match txn.open_table(ENVIRONMENTS) {
            Ok(table) => {
                for row in table.iter().map_err(|e| fail(e.into()))? {
                    let (_, value) = row.map_err(|e| fail(e.into()))?;
                    let environment: Environment = decode(&self.path, value.value())?;
                    state
                        .environments
                        .insert(environment.name.clone(), environment);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(state),
            Err(e) => return Err(fail(e.into())),
        }
        for row in txn
            .open_table(LEASES)
            .map_err(|e| fail(e.into()))?
            .iter()
            .map_err(|e| fail(e.into()))?
        {
            let (id, value) = row.map_err(|e| fail(e.into()))?;
            let lease: Lease = decode(&self.path, value.value())?;
            state.leases.insert(id.value(), lease);
        }
        for row in txn
            .open_table(WAITERS)
            .map_err(|e| fail(e.into()))?
            .iter()
            .map_err(|e| fail(e.into()))?
        {
            let (_, value) = row.map_err(|e| fail(e.into()))?;
            let waiter: Waiter = decode(&self.path, value.value())?;
            state.waiters.push(waiter);
        }
        let counters = txn.open_table(COUNTERS).map_err(|e| fail(e.into()))?;
        let counter = |name: &str| -> Result<u64> {
            Ok(counters
                .get(name)
                .map_err(|e| fail(e.into()))?
                .map_or(0, |v| v.value()))
        };
        state.next_id = counter("next_id")?.max(1);
        state.last_token = counter("last_token")?;
        Ok(state)
    }

    /// Replaces what is saved with `state`, durably.
    pub fn save(&self, state: &State) -> Result<()> {
        let fail = failed(&self.path, "write the slots database");
        let txn = self.db.begin_write().map_err(|e| fail(e.into()))?;
        {
            let mut environments = txn.open_table(ENVIRONMENTS).map_err(|e| fail(e.into()))?;
            environments
                .retain(|_, _| false)
                .map_err(|e| fail(e.into()))?;
            for environment in state.environments.values() {
                environments
                    .insert(environment.name.as_str(), encode(environment).as_slice())
                    .map_err(|e| fail(e.into()))?;
            }
            let mut leases = txn.open_table(LEASES).map_err(|e| fail(e.into()))?;
            leases.retain(|_, _| false).map_err(|e| fail(e.into()))?;
            for lease in state.leases.values() {
                leases
                    .insert(lease.id, encode(lease).as_slice())
                    .map_err(|e| fail(e.into()))?;
            }
            let mut waiters = txn.open_table(WAITERS).map_err(|e| fail(e.into()))?;
            waiters.retain(|_, _| false).map_err(|e| fail(e.into()))?;
            for waiter in &state.waiters {
                waiters
                    .insert(waiter.ticket, encode(waiter).as_slice())
                    .map_err(|e| fail(e.into()))?;
            }
            let mut counters = txn.open_table(COUNTERS).map_err(|e| fail(e.into()))?;
            counters
                .insert("next_id", state.next_id)
                .map_err(|e| fail(e.into()))?;
            counters
                .insert("last_token", state.last_token)
                .map_err(|e| fail(e.into()))?;
        }
        txn.commit().map_err(|e| fail(e.into()))
    }
}

fn decode<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Io {
        action: "read the slots database",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

fn encode(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::Acquired;

    #[test]
    fn a_reopened_store_has_every_lease_waiter_and_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::new(vec![Environment {
            name: "uat".into(),
            slots: vec!["uat-1".into()],
            ttl_s: 60,
            from_maybe: false,
        }]);
        let Acquired::Granted(lease) = state.acquire("uat", "a", None, 5) else {
            panic!()
        };
        state.acquire("uat", "b", None, 6);
        {
            let store = Store::open(dir.path()).unwrap();
            store.save(&state).unwrap();
        }
        let loaded = Store::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(loaded.leases[&lease.id], lease);
        assert_eq!(loaded.waiters, state.waiters);
        assert_eq!(
            (loaded.next_id, loaded.last_token),
            (state.next_id, state.last_token)
        );
        assert_eq!(loaded.environments, state.environments);
    }
}
