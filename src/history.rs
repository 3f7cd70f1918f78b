//! What `ripple serve` answered, kept in an embedded database (redb: one
//! file, no server, crash-safe) so that restarts lose nothing, and shown
//! as HTML for people and JSON for tools.

use std::fmt::Write as _;
use std::path::Path;

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

/// Records by id, as JSON: the record type can grow without a migration.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// One request to the configuration extension and its answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Assigned when stored, increasing.
    pub id: u64,
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// `owner/name`, or `-` when the request was refused before reading it.
    pub repo: String,
    /// Drone's build event.
    pub event: String,
    /// The built ref.
    pub reference: String,
    /// The commit compared against.
    pub base: Option<String>,
    /// The commit built.
    pub head: Option<String>,
    /// How many files changed.
    pub changed: usize,
    /// The affected services.
    pub affected: Vec<String>,
    /// The YAML returned, when any.
    pub yaml: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
    /// What happened, in a few words.
    pub outcome: String,
    /// How long the answer took.
    pub duration_ms: f64,
}

/// The database file.
pub struct History {
    db: Database,
}

/// A history failure, as text: the server logs it and carries on.
pub type HistoryResult<T> = Result<T, String>;

impl History {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> HistoryResult<History> {
        let db = Database::create(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(RECORDS).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(History { db })
    }

    /// Stores a record under the next id, which it returns.
    pub fn record(&self, mut record: Record) -> HistoryResult<u64> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        let id = {
            let mut table = txn.open_table(RECORDS).map_err(|e| e.to_string())?;
            let last = table
                .last()
                .map_err(|e| e.to_string())?
                .map_or(0, |(k, _)| k.value());
            record.id = last + 1;
            let json = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
            table
                .insert(record.id, json.as_slice())
                .map_err(|e| e.to_string())?;
            record.id
        };
        txn.commit().map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The newest `limit` records, newest first.
    pub fn recent(&self, limit: usize) -> HistoryResult<Vec<Record>> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = txn.open_table(RECORDS).map_err(|e| e.to_string())?;
        let mut records = Vec::new();
        for entry in table
            .range::<u64>(..)
            .map_err(|e| e.to_string())?
            .rev()
            .take(limit)
        {
            let (_, value) = entry.map_err(|e| e.to_string())?;
            records.push(serde_json::from_slice(value.value()).map_err(|e| e.to_string())?);
        }
        Ok(records)
    }

    /// The record `id`.
    pub fn get(&self, id: u64) -> HistoryResult<Option<Record>> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = txn.open_table(RECORDS).map_err(|e| e.to_string())?;
        match table.get(id).map_err(|e| e.to_string())? {
            Some(value) => Ok(Some(
                serde_json::from_slice(value.value()).map_err(|e| e.to_string())?,
            )),
            None => Ok(None),
        }
    }
}

/// Escapes text for HTML: every value shown comes from a request.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// `GET /plans` as HTML.
pub fn list_html(records: &[Record]) -> String {
    let mut body = String::from(
        "<h1>ripple: recent plans</h1>\n<table>\n<tr><th>id</th><th>time</th><th>repository</th><th>event</th><th>ref</th><th>status</th><th>affected</th><th>outcome</th><th>ms</th></tr>\n",
    );
    for r in records {
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/plans/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            r.time,
            escape(&r.repo),
            escape(&r.event),
            escape(&r.reference),
            r.status,
            r.affected.len(),
            escape(&r.outcome),
            r.duration_ms,
            id = r.id,
        );
    }
    body.push_str("</table>\n");
    page("ripple: recent plans", &body)
}

/// `GET /plans/{id}` as HTML.
pub fn record_html(r: &Record) -> String {
    let mut body = format!("<h1>plan {}</h1>\n<dl>\n", r.id);
    let fields = [
        ("repository", r.repo.clone()),
        ("event", r.event.clone()),
        ("ref", r.reference.clone()),
        ("base", r.base.clone().unwrap_or_default()),
        ("head", r.head.clone().unwrap_or_default()),
        ("changed files", r.changed.to_string()),
        ("affected", r.affected.join(", ")),
        ("status", r.status.to_string()),
        ("outcome", r.outcome.clone()),
        ("duration", format!("{:.1} ms", r.duration_ms)),
    ];
    for (name, value) in fields {
        let _ = writeln!(body, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
    }
    body.push_str("</dl>\n");
    if let Some(yaml) = &r.yaml {
        let _ = writeln!(body, "<pre>{}</pre>", escape(yaml));
    }
    body.push_str("<p><a href=\"/plans\">all plans</a></p>\n");
    page(&format!("ripple: plan {}", r.id), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.redb");
        {
            let history = History::open(&path).unwrap();
            for repo in ["a/one", "b/two", "c/three"] {
                history
                    .record(Record {
                        repo: repo.into(),
                        ..Record::default()
                    })
                    .unwrap();
            }
        }
        let history = History::open(&path).unwrap();
        let recent = history.recent(2).unwrap();
        let repos: Vec<_> = recent.iter().map(|r| (r.id, r.repo.as_str())).collect();
        assert_eq!(repos, [(3, "c/three"), (2, "b/two")]);
        assert_eq!(history.get(1).unwrap().unwrap().repo, "a/one");
        assert!(history.get(9).unwrap().is_none());
    }

    #[test]
    fn pages_escape_what_requests_sent() {
        let record = Record {
            id: 1,
            repo: "<script>alert(1)</script>".into(),
            yaml: Some("name: \"a & b\"".into()),
            ..Record::default()
        };
        let html = record_html(&record);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("a &amp; b"));
        assert!(list_html(&[record]).contains("&lt;script&gt;"));
    }
}
