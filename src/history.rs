//! What `ripple serve` answered, kept in an embedded database (redb: one
//! file, no server, crash-safe) so that restarts lose nothing, and shown
//! as HTML for people and JSON for tools.
//!
//! The history must never take the server down or fill its disk: one
//! writer thread takes records from a bounded queue and commits them in
//! batches; refused requests are kept apart from answered builds and with
//! a smaller limit, so a flood of them cannot push the builds out; every
//! text from a request is cut short; old records are pruned by count and
//! age. After an I/O error the database is reopened; a damaged file is
//! moved aside and a new one started; a panic inside redb is caught. While
//! the history cannot be written, [`History::problem`] says why, and plans
//! are answered all the same.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

/// Answered builds by id, as JSON: the record type can grow without a
/// migration.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// Refused requests by id (ids shared with [`RECORDS`]), kept apart so that
/// they are pruned on their own.
const REFUSALS: TableDefinition<u64, &[u8]> = TableDefinition::new("refusals");

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
    pub yaml: Option<std::sync::Arc<str>>,
    /// HTTP status of the answer.
    pub status: u16,
    /// What happened, in a few words.
    pub outcome: String,
    /// How long the answer took.
    pub duration_ms: f64,
}

/// The most bytes kept of any one text a request supplied.
pub const MAX_FIELD_BYTES: usize = 256;

/// The most affected service names kept in one record.
const MAX_AFFECTED: usize = 1_000;

impl Record {
    /// A refused request: status 4xx, or anything refused before the
    /// signature was verified.
    pub fn is_refusal(&self) -> bool {
        (400..500).contains(&self.status)
    }

    /// Cuts every text a request could supply to [`MAX_FIELD_BYTES`].
    fn bounded(mut self) -> Record {
        for field in [
            &mut self.repo,
            &mut self.event,
            &mut self.reference,
            &mut self.outcome,
        ] {
            cut(field, MAX_FIELD_BYTES);
        }
        for sha in [&mut self.base, &mut self.head].into_iter().flatten() {
            cut(sha, 64);
        }
        self.affected.truncate(MAX_AFFECTED);
        self
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary, marking the
/// cut.
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max - '…'.len_utf8();
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push('…');
    }
}

/// How much history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Answered builds kept; refusals keep a tenth of this (at least 100).
    pub max_records: u64,
    /// Records older than this are pruned.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_records: 10_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Retention {
    fn max_refusals(&self) -> u64 {
        (self.max_records / 10)
            .max(100)
            .min(self.max_records.max(1))
    }
}

/// Why the history could not be opened at start.
#[derive(Debug)]
pub enum OpenError {
    /// Another process holds the file: the server must not start.
    Locked,
}

/// A history failure, as text: the server logs it and carries on.
pub type HistoryResult<T> = Result<T, String>;

/// What a redb failure calls for.
enum Failure {
    /// An I/O error: reopening may be enough (the disk had room again).
    Io(String),
    /// The file is not a database redb can read: move it aside.
    Damaged(String),
    /// Another process has it open.
    Locked,
}

impl Failure {
    fn of(error: impl Into<redb::Error>) -> Failure {
        let error: redb::Error = error.into();
        match error {
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => Failure::Locked,
            // redb says "not a redb database" and the like this way.
            redb::Error::Io(ref e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                Failure::Damaged(error.to_string())
            }
            redb::Error::Io(_)
            | redb::Error::PreviousIo
            | redb::Error::DatabaseClosed
            | redb::Error::ValueTooLarge(_) => Failure::Io(error.to_string()),
            other => Failure::Damaged(other.to_string()),
        }
    }

    fn panicked() -> Failure {
        Failure::Damaged("the database library panicked reading it".into())
    }

    fn text(&self) -> String {
        match self {
            Failure::Io(why) | Failure::Damaged(why) => why.clone(),
            Failure::Locked => "another process has it open".into(),
        }
    }
}

/// Runs `work` on redb, turning its errors and panics into a [`Failure`].
fn guarded<T>(work: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| Err(Failure::panicked()))
}

/// A record on its way to the writer, and who waits for it.
type Queued = (Record, Option<tokio::sync::oneshot::Sender<()>>);

/// How many records may wait for the writer; past this they are dropped
/// (and counted) rather than held in memory.
const QUEUE: usize = 4_096;

/// The most records committed in one transaction.
const BATCH: usize = 256;

/// The database file, its writer thread and its state.
pub struct History {
    shared: Arc<Shared>,
    sender: Option<SyncSender<Queued>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    path: PathBuf,
    retention: Retention,
    /// `None` while the file cannot be opened.
    db: Mutex<Option<Arc<Database>>>,
    /// Why the history is not being written, when it is not.
    problem: Mutex<Option<String>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

impl History {
    /// Opens (or creates) the database at `path`, and starts its writer.
    /// A damaged file is moved aside (the log says where) and a new one
    /// started; a file that cannot be opened at all leaves the history
    /// off, with [`History::problem`] saying why. Only a file another
    /// process holds stops the start.
    pub fn open(
        path: &Path,
        retention: Retention,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<History, OpenError> {
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            retention,
            db: Mutex::new(None),
            problem: Mutex::new(None),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
            log: Box::new(log),
        });
        match shared.open_checked() {
            Ok(db) => shared.install(db),
            Err(Failure::Locked) => return Err(OpenError::Locked),
            Err(Failure::Damaged(why)) => shared.start_over(&why),
            Err(Failure::Io(why)) => shared.set_problem(Some(format!("cannot open: {why}"))),
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let writer_state = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("ripple-history".into())
            .spawn(move || writer_state.write_all(receiver))
            .ok();
        Ok(History {
            shared,
            sender: Some(sender),
            writer,
        })
    }

    /// Queues `record` for storing. The answer to wait on tells when it is
    /// committed (or given up); `None`: the queue is full and the record
    /// was dropped, or the history is off.
    pub fn record(&self, record: Record) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sender = self.sender.as_ref()?;
        match sender.try_send((record.bounded(), Some(done))) {
            Ok(()) => Some(wait),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Said at 1, 2, 4, 8, ...: a flood must not flood the log.
                if dropped.is_power_of_two() {
                    (self.shared.log)(&format!(
                        "history: the writer is behind; {dropped} record(s) dropped so far"
                    ));
                }
                None
            }
        }
    }

    /// Why records are not being written, or `None` when all is well.
    pub fn problem(&self) -> Option<String> {
        self.shared
            .problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The newest `limit` records, answered builds and refusals together,
    /// newest first. A record that cannot be decoded is shown as damaged.
    pub fn recent(&self, limit: usize) -> HistoryResult<Vec<Record>> {
        self.shared.read(|db| {
            let txn = db.begin_read().map_err(Failure::of)?;
            let mut records = Vec::new();
            for definition in [RECORDS, REFUSALS] {
                let table = txn.open_table(definition).map_err(Failure::of)?;
                for entry in table
                    .range::<u64>(..)
                    .map_err(Failure::of)?
                    .rev()
                    .take(limit)
                {
                    let (id, value) = entry.map_err(Failure::of)?;
                    records.push(decode(id.value(), value.value()));
                }
            }
            records.sort_by_key(|r| std::cmp::Reverse(r.id));
            records.truncate(limit);
            Ok(records)
        })
    }

    /// The record `id`.
    pub fn get(&self, id: u64) -> HistoryResult<Option<Record>> {
        self.shared.read(|db| {
            let txn = db.begin_read().map_err(Failure::of)?;
            for definition in [RECORDS, REFUSALS] {
                let table = txn.open_table(definition).map_err(Failure::of)?;
                if let Some(value) = table.get(id).map_err(Failure::of)? {
                    return Ok(Some(decode(id, value.value())));
                }
            }
            Ok(None)
        })
    }
}

impl Drop for History {
    /// Lets the writer commit what is queued, then waits for it.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A stored record, or a stand-in saying it is damaged.
fn decode(id: u64, bytes: &[u8]) -> Record {
    serde_json::from_slice(bytes).unwrap_or_else(|e| Record {
        id,
        repo: "-".into(),
        outcome: format!("damaged record: {e}"),
        ..Record::default()
    })
}

impl Shared {
    fn set_problem(&self, problem: Option<String>) {
        let mut current = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        if *current != problem {
            match &problem {
                Some(why) => (self.log)(&format!("history: {why}; plans are still answered")),
                None => (self.log)("history: writing again"),
            }
            *current = problem;
        }
    }

    /// Opens the file and checks it through: a damaged file is found now,
    /// not at the first read of a bad page.
    fn open_checked(&self) -> Result<Database, Failure> {
        guarded(|| {
            let mut db = Database::create(&self.path).map_err(Failure::of)?;
            if !db.check_integrity().map_err(Failure::of)? {
                (self.log)("history: redb repaired the file after an unclean stop");
            }
            let txn = db.begin_write().map_err(Failure::of)?;
            let mut last = 0;
            for definition in [RECORDS, REFUSALS] {
                let table = txn.open_table(definition).map_err(Failure::of)?;
                if let Some((id, _)) = table.last().map_err(Failure::of)? {
                    last = last.max(id.value());
                }
            }
            txn.commit().map_err(Failure::of)?;
            self.next_id.fetch_max(last + 1, Ordering::Relaxed);
            Ok(db)
        })
    }

    fn install(&self, db: Database) {
        *self.db.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
        self.set_problem(None);
    }

    /// Moves a damaged file aside and starts a new one.
    fn start_over(&self, why: &str) {
        self.db.lock().unwrap_or_else(|e| e.into_inner()).take();
        let seconds = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = self.path.with_extension(format!("redb.damaged-{seconds}"));
        if let Err(e) = std::fs::rename(&self.path, &aside) {
            self.set_problem(Some(format!(
                "`{}` is damaged ({why}) and cannot be moved aside: {e}",
                self.path.display()
            )));
            return;
        }
        (self.log)(&format!(
            "history: `{}` is damaged ({why}); moved it to `{}` and started a new one",
            self.path.display(),
            aside.display()
        ));
        match self.open_checked() {
            Ok(db) => self.install(db),
            Err(failure) => self.set_problem(Some(format!(
                "cannot start a new history: {}",
                failure.text()
            ))),
        }
    }

    fn current(&self) -> Option<Arc<Database>> {
        self.db.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn read<T>(&self, work: impl FnOnce(&Database) -> Result<T, Failure>) -> HistoryResult<T> {
        let db = self.current().ok_or_else(|| {
            self.problem
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| "the history is not open".into())
        })?;
        guarded(|| work(&db)).map_err(|failure| failure.text())
    }

    /// The writer thread: batches from the queue until the last sender is
    /// gone.
    fn write_all(&self, receiver: Receiver<Queued>) {
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (mut records, waiting): (Vec<Record>, Vec<_>) = batch.into_iter().unzip();
            self.commit_healing(&mut records);
            for done in waiting.into_iter().flatten() {
                let _ = done.send(());
            }
        }
    }

    /// Commits `records`, reopening after an I/O error (redb refuses every
    /// write after one until reopened) and starting over on damage, once.
    fn commit_healing(&self, records: &mut [Record]) {
        let failure = match self.current() {
            Some(db) => match guarded(|| self.commit(&db, records)) {
                Ok(()) => return self.set_problem(None),
                Err(failure) => failure,
            },
            None => Failure::Io("the history is not open".into()),
        };
        // The old handle must be gone before the file can be opened again.
        self.db.lock().unwrap_or_else(|e| e.into_inner()).take();
        let reopened = match failure {
            Failure::Damaged(why) => {
                self.start_over(&why);
                self.current()
            }
            Failure::Io(_) | Failure::Locked => match self.open_checked() {
                Ok(db) => {
                    self.install(db);
                    self.current()
                }
                Err(Failure::Damaged(why)) => {
                    self.start_over(&why);
                    self.current()
                }
                Err(again) => {
                    self.set_problem(Some(format!("cannot write: {}", again.text())));
                    None
                }
            },
        };
        if let Some(db) = reopened {
            match guarded(|| self.commit(&db, records)) {
                Ok(()) => self.set_problem(None),
                Err(failure) => self.set_problem(Some(format!("cannot write: {}", failure.text()))),
            }
        }
    }

    fn commit(&self, db: &Database, records: &mut [Record]) -> Result<(), Failure> {
        let txn = db.begin_write().map_err(Failure::of)?;
        {
            let mut answered = txn.open_table(RECORDS).map_err(Failure::of)?;
            let mut refused = txn.open_table(REFUSALS).map_err(Failure::of)?;
            for record in records.iter_mut() {
                // Numbered at each try: a retried batch takes new ids.
                record.id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let json = serde_json::to_vec(&*record).map_err(|e| Failure::Io(e.to_string()))?;
                let table = if record.is_refusal() {
                    &mut refused
                } else {
                    &mut answered
                };
                table
                    .insert(record.id, json.as_slice())
                    .map_err(Failure::of)?;
            }
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let oldest = now.saturating_sub(self.retention.max_age.as_secs());
            prune(&mut answered, self.retention.max_records, oldest)?;
            prune(&mut refused, self.retention.max_refusals(), oldest)?;
        }
        txn.commit().map_err(Failure::of)
    }
}

/// When a stored record was made, reading nothing else of it (a damaged
/// one counts as old).
fn time_of(bytes: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct Stamp {
        time: u64,
    }
    serde_json::from_slice::<Stamp>(bytes).map_or(0, |stamp| stamp.time)
}

/// Removes the oldest records while there are more than `keep` or they are
/// older than `oldest` (seconds since the epoch).
fn prune(table: &mut redb::Table<u64, &[u8]>, keep: u64, oldest: u64) -> Result<(), Failure> {
    use redb::ReadableTableMetadata as _;
    let mut count = table.len().map_err(Failure::of)?;
    loop {
        let expired = match table.first().map_err(Failure::of)? {
            Some((_, value)) => count > keep || time_of(value.value()) < oldest,
            None => false,
        };
        if !expired {
            return Ok(());
        }
        table.pop_first().map_err(Failure::of)?;
        count -= 1;
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

    fn quiet(_: &str) {}

    /// Stores `record` (stamped now, unless it has a time) and waits for
    /// the commit.
    fn wait(history: &History, mut record: Record) {
        if record.time == 0 {
            record.time = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
        }
        let done = history.record(record).expect("queued");
        done.blocking_recv().expect("committed");
    }

    #[test]
    fn records_survive_reopening_and_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.redb");
        {
            let history = History::open(&path, Retention::default(), quiet).unwrap();
            for repo in ["a/one", "b/two", "c/three"] {
                wait(
                    &history,
                    Record {
                        repo: repo.into(),
                        status: 200,
                        ..Record::default()
                    },
                );
            }
        }
        let history = History::open(&path, Retention::default(), quiet).unwrap();
        let recent = history.recent(2).unwrap();
        let repos: Vec<_> = recent.iter().map(|r| (r.id, r.repo.as_str())).collect();
        assert_eq!(repos, [(3, "c/three"), (2, "b/two")]);
        assert_eq!(history.get(1).unwrap().unwrap().repo, "a/one");
        assert!(history.get(9).unwrap().is_none());
        assert_eq!(history.problem(), None);
    }

    /// Issue 13.1: refused requests once filled the disk, attacker text
    /// verbatim and nothing pruned.
    #[test]
    fn history_is_bounded_by_count_age_and_field_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.redb");
        let retention = Retention {
            max_records: 5,
            max_age: Duration::from_secs(3600),
        };
        let history = History::open(&path, retention, quiet).unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // An old record goes at the next write.
        wait(
            &history,
            Record {
                time: now - 7200,
                repo: "old/one".into(),
                status: 200,
                ..Record::default()
            },
        );
        for i in 0..300 {
            wait(
                &history,
                Record {
                    time: now,
                    repo: "x".repeat(60_000),
                    outcome: format!("refusal {i} {}", "y".repeat(60_000)),
                    status: 401,
                    ..Record::default()
                },
            );
        }
        for i in 0..8 {
            wait(
                &history,
                Record {
                    time: now,
                    repo: format!("team/{i}"),
                    status: 200,
                    ..Record::default()
                },
            );
        }
        let all = history.recent(1_000).unwrap();
        let answered: Vec<_> = all.iter().filter(|r| !r.is_refusal()).collect();
        let refused: Vec<_> = all.iter().filter(|r| r.is_refusal()).collect();
        assert_eq!(answered.len(), 5, "newest five builds");
        assert_eq!(answered[0].repo, "team/7");
        assert!(answered.iter().all(|r| r.repo != "old/one"));
        assert_eq!(refused.len(), 5, "refusals keep their own, smaller limit");
        assert!(refused[0].outcome.starts_with("refusal 299"));
        for record in refused {
            assert!(record.repo.len() <= MAX_FIELD_BYTES);
            assert!(record.outcome.len() <= MAX_FIELD_BYTES);
        }
        drop(history);
        // 300 records of 120 kB each were offered; the file stays small.
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 4 * 1024 * 1024, "history file is {size} bytes");
    }

    /// Issue 13.11: a damaged file is moved aside and a new one started;
    /// it never panics and never passes for a lock.
    #[test]
    fn a_damaged_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.redb");
        {
            let history = History::open(&path, Retention::default(), quiet).unwrap();
            wait(
                &history,
                Record {
                    status: 200,
                    ..Record::default()
                },
            );
        }
        let good = std::fs::read(&path).unwrap();
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let damages: [(&str, Damage); 4] = [
            (
                "truncated",
                Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 3)),
            ),
            (
                "zeroed",
                Box::new(|b: &mut Vec<u8>| b.iter_mut().for_each(|x| *x = 0)),
            ),
            (
                "random",
                Box::new(|b: &mut Vec<u8>| {
                    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
                    for x in b.iter_mut().skip(512) {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        *x = seed as u8;
                    }
                }),
            ),
            (
                "text",
                Box::new(|b: &mut Vec<u8>| *b = b"not a database\n".to_vec()),
            ),
        ];
        for (name, damage) in damages {
            let mut bytes = good.clone();
            damage(&mut bytes);
            std::fs::write(&path, &bytes).unwrap();
            let log = Arc::new(Mutex::new(Vec::<String>::new()));
            let lines = Arc::clone(&log);
            let history = History::open(&path, Retention::default(), move |line| {
                lines.lock().unwrap().push(line.to_string())
            })
            .unwrap_or_else(|_| panic!("{name}: damage is not a lock"));
            wait(
                &history,
                Record {
                    repo: "after".into(),
                    status: 200,
                    ..Record::default()
                },
            );
            assert_eq!(history.problem(), None, "{name}");
            let records = history.recent(10).unwrap();
            assert_eq!(records[0].repo, "after", "{name}");
            let logged = log.lock().unwrap().join("\n");
            if records.len() == 1 {
                assert!(logged.contains("moved it to"), "{name}: {logged}");
            }
            drop(history);
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let entry = entry.unwrap().path();
                if entry != path {
                    std::fs::remove_file(entry).unwrap();
                }
            }
        }
    }

    #[test]
    fn a_file_in_use_is_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.redb");
        let _first = History::open(&path, Retention::default(), quiet).unwrap();
        assert!(matches!(
            History::open(&path, Retention::default(), quiet),
            Err(OpenError::Locked)
        ));
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
