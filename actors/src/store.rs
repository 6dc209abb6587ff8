//! The one sled database: conversation records and their event logs.
//!
//! Trees by record kind (never one tree per conversation):
//! - `conversations`: id(16) → record JSON (secrets sealed);
//! - `events`: id(16) ‖ seq(u64 big-endian) → header ‖ event JSON, where `seq`
//!   is the gap-free 1-based position of the event in its log;
//! - `event_ids`: id(16) ‖ event id (UTF-8) → seq (u64 big-endian);
//! - `catalog`: id(16) → a small summary (times, status) so that listing,
//!   sorting and counting conversations never parse whole records;
//! - `meta`: server-wide facts (schema version, key check).
//!
//! An append writes the events, their id index and (optionally) the record in
//! one transaction. Only a conversation's actor appends to its key range;
//! anyone may read, since sled reads are consistent and lock-free. Durability
//! is the caller's choice through [`Store::flush`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Db, IVec, Tree};

use crate::ids::Uuid;
use crate::model::event::Source;

/// A storage failure.
#[derive(Debug)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    Sled(sled::Error),
    /// A stored value could not be decoded.
    Corrupt(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sled(e) => write!(f, "database error: {e}"),
            StoreError::Corrupt(what) => write!(f, "damaged record in the database: {what}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

const FORMAT_VERSION: u8 = 1;

/// An event ready to append: its position, id and encoded bytes.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// Position in the log (1-based).
    pub seq: u64,
    /// Event id.
    pub id: String,
    /// Header and JSON.
    pub bytes: Vec<u8>,
}

impl EncodedEvent {
    /// Encodes an event's JSON with the small header used by filters, so that
    /// searches by kind, source or time never parse JSON.
    pub fn new(
        seq: u64,
        id: &str,
        source: Source,
        kind: &str,
        timestamp: &str,
        json: &str,
    ) -> EncodedEvent {
        let kind = &kind.as_bytes()[..kind.len().min(255)];
        let ts = &timestamp.as_bytes()[..timestamp.len().min(255)];
        let idb = &id.as_bytes()[..id.len().min(255)];
        let mut bytes = Vec::with_capacity(5 + kind.len() + ts.len() + idb.len() + json.len());
        bytes.push(FORMAT_VERSION);
        bytes.push(source as u8);
        bytes.push(kind.len() as u8);
        bytes.extend_from_slice(kind);
        bytes.push(ts.len() as u8);
        bytes.extend_from_slice(ts);
        bytes.push(idb.len() as u8);
        bytes.extend_from_slice(idb);
        bytes.extend_from_slice(json.as_bytes());
        EncodedEvent {
            seq,
            id: id.to_string(),
            bytes,
        }
    }
}

/// A stored event, decoded lazily from the raw value.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position in the log (1-based).
    pub seq: u64,
    raw: IVec,
    kind_end: usize,
    ts_end: usize,
    id_end: usize,
}

impl StoredEvent {
    fn decode(seq: u64, raw: IVec) -> Result<StoredEvent, StoreError> {
        let bad = || StoreError::Corrupt(format!("event {seq} has a damaged header"));
        if raw.len() < 4 || raw[0] != FORMAT_VERSION {
            return Err(bad());
        }
        let kind_end = 3 + raw[2] as usize;
        if raw.len() <= kind_end {
            return Err(bad());
        }
        let ts_end = kind_end + 1 + raw[kind_end] as usize;
        if raw.len() <= ts_end {
            return Err(bad());
        }
        let id_end = ts_end + 1 + raw[ts_end] as usize;
        if raw.len() < id_end {
            return Err(bad());
        }
        let ev = StoredEvent {
            seq,
            raw,
            kind_end,
            ts_end,
            id_end,
        };
        let parts = [
            3..kind_end,
            kind_end + 1..ts_end,
            ts_end + 1..id_end,
            id_end..ev.raw.len(),
        ];
        if parts
            .into_iter()
            .any(|r| std::str::from_utf8(&ev.raw[r]).is_err())
        {
            return Err(bad());
        }
        Ok(ev)
    }

    /// Producer.
    pub fn source(&self) -> Source {
        match self.raw[1] {
            0 => Source::Agent,
            1 => Source::User,
            3 => Source::Hook,
            _ => Source::Environment,
        }
    }

    /// Class name.
    pub fn kind(&self) -> &str {
        std::str::from_utf8(&self.raw[3..self.kind_end]).unwrap_or("")
    }

    /// Time stamp text.
    pub fn timestamp(&self) -> &str {
        std::str::from_utf8(&self.raw[self.kind_end + 1..self.ts_end]).unwrap_or("")
    }

    /// Event id.
    pub fn id(&self) -> &str {
        std::str::from_utf8(&self.raw[self.ts_end + 1..self.id_end]).unwrap_or("")
    }

    /// The event's JSON text.
    pub fn json(&self) -> &str {
        std::str::from_utf8(&self.raw[self.id_end..]).unwrap_or("{}")
    }
}

fn event_key(conv: &Uuid, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(conv.as_bytes());
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn id_key(conv: &Uuid, event_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + event_id.len());
    k.extend_from_slice(conv.as_bytes());
    k.extend_from_slice(event_id.as_bytes());
    k
}

fn seq_of_key(key: &[u8]) -> Result<u64, StoreError> {
    key.get(16..24)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("event key".into()))
}

/// The catalog entry of a conversation: what listing and counting need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Creation time (UTC text; sorts as time).
    #[serde(rename = "c")]
    pub created_at: String,
    /// Last change (UTC text).
    #[serde(rename = "u")]
    pub updated_at: String,
    /// Execution status (wire name).
    #[serde(rename = "s")]
    pub status: String,
}

impl Summary {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Summary, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("catalog entry: {e}")))
    }
}

/// A record to write with an append: its bytes, its catalog entry and any
/// change to its LLM usage.
#[derive(Debug, Clone, Copy)]
pub struct RecordWrite<'a> {
    /// The record (secrets sealed; without the usage, kept apart).
    pub bytes: &'a [u8],
    /// Its catalog entry.
    pub summary: &'a Summary,
    /// Usage written with it, if it changed.
    pub stats: Option<StatsWrite<'a>>,
}

/// A change to a conversation's stored LLM usage, which is a snapshot plus
/// a log of the calls made since (see `model::stats`).
#[derive(Debug, Clone, Copy)]
pub enum StatsWrite<'a> {
    /// Calls appended to the log, the first at position `first`.
    Calls {
        /// Log position of the first entry.
        first: u64,
        /// Encoded `LoggedCall`s.
        entries: &'a [Vec<u8>],
    },
    /// A new snapshot; the log entries `0..clear` are removed.
    Snapshot {
        /// The encoded full `ConversationStats`.
        bytes: &'a [u8],
        /// Length of the log the snapshot replaces.
        clear: u64,
    },
}

/// A conversation's stored usage: the snapshot and the log after it.
#[derive(Debug, Default)]
pub struct StoredStats {
    /// The snapshot (absent for a record written before usage was kept apart).
    pub snapshot: Option<IVec>,
    /// Log entries, oldest first.
    pub calls: Vec<IVec>,
}

fn stats_snapshot_key(conv: &Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..16].copy_from_slice(conv.as_bytes());
    k
}

fn stats_call_key(conv: &Uuid, n: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[..16].copy_from_slice(conv.as_bytes());
    k[16] = 1;
    k[17..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Lets one `flush_async` run at a time, and lets callers that wait during
/// a flush share the next one (group commit).
///
/// sled 0.34 runs `flush_async` on its own pool of 7 threads, which only
/// grows when more than 7 tasks are queued. When every pool thread waits
/// inside a flush for a log buffer to be written, the task that would write
/// it queues behind them and never runs; the flushing threads hold sled's
/// concurrency-control read lock meanwhile, so every later write blocks
/// too. Eight concurrent flushes (eight conversations created at once)
/// froze the server this way. One flush at a time keeps the pool free.
#[derive(Default)]
struct FlushGate {
    turn: tokio::sync::Mutex<()>,
    /// Flushes started so far.
    started: AtomicU64,
    /// Number (in `started` order) of the last flush that succeeded.
    completed: AtomicU64,
}

/// Handle to the database; cheap to clone (sled handles are shared).
#[derive(Clone)]
pub struct Store {
    db: Db,
    conversations: Tree,
    catalog: Tree,
    events: Tree,
    event_ids: Tree,
    meta: Tree,
    stats: Tree,
    flush_gate: Arc<FlushGate>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store(..)")
    }
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .open()?;
        Store::from_db(db)
    }

    /// A throw-away database for tests and benches.
    pub fn temporary() -> Result<Store, StoreError> {
        Store::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: Db) -> Result<Store, StoreError> {
        Ok(Store {
            conversations: db.open_tree("conversations")?,
            catalog: db.open_tree("catalog")?,
            events: db.open_tree("events")?,
            event_ids: db.open_tree("event_ids")?,
            meta: db.open_tree("meta")?,
            stats: db.open_tree("stats")?,
            db,
            flush_gate: Arc::default(),
        })
    }

    /// The underlying database, for modules that keep their own trees.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Writes everything buffered to disk and waits for it. Flushes run one
    /// at a time (see `FlushGate`); a caller that waited for its turn is
    /// done when a flush that started after its call has completed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let gate = &*self.flush_gate;
        // A flush numbered above `seen` started after this call, so it
        // covers every write the caller made before calling.
        let seen = gate.started.load(Ordering::SeqCst);
        let _turn = gate.turn.lock().await;
        if gate.completed.load(Ordering::SeqCst) > seen {
            return Ok(());
        }
        let number = gate.started.fetch_add(1, Ordering::SeqCst) + 1;
        self.db.flush_async().await?;
        gate.completed.store(number, Ordering::SeqCst);
        Ok(())
    }

    /// Blocking variant of [`Store::flush`].
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Reads a server-wide value.
    pub fn meta_get(&self, key: &str) -> Result<Option<IVec>, StoreError> {
        Ok(self.meta.get(key)?)
    }

    /// Writes a server-wide value.
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        Ok(())
    }

    /// Stores a conversation record and its catalog entry.
    pub fn put_record(&self, conv: &Uuid, record: RecordWrite<'_>) -> Result<(), StoreError> {
        self.append(conv, &[], Some(record))
    }

    /// A conversation record.
    pub fn get_record(&self, conv: &Uuid) -> Result<Option<IVec>, StoreError> {
        Ok(self.conversations.get(conv.as_bytes())?)
    }

    /// Whether a conversation exists.
    pub fn has_conversation(&self, conv: &Uuid) -> Result<bool, StoreError> {
        Ok(self.conversations.contains_key(conv.as_bytes())?)
    }

    /// Every conversation record, in id order.
    pub fn records(&self) -> impl Iterator<Item = Result<(Uuid, IVec), StoreError>> + '_ {
        self.conversations.iter().map(|r| {
            let (k, v) = r?;
            let id = Uuid::from_slice(&k)
                .ok_or_else(|| StoreError::Corrupt("conversation key".into()))?;
            Ok((id, v))
        })
    }

    /// Number of conversations.
    pub fn conversation_count(&self) -> usize {
        self.conversations.len()
    }

    /// A conversation's stored LLM usage.
    pub fn stats(&self, conv: &Uuid) -> Result<StoredStats, StoreError> {
        let snapshot = self.stats.get(stats_snapshot_key(conv))?;
        let calls = self
            .stats
            .range(stats_call_key(conv, 0)..=stats_call_key(conv, u64::MAX))
            .values()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StoredStats { snapshot, calls })
    }

    /// Appends events (and optionally the new record) in one transaction.
    /// The caller guarantees the seqs continue the log without a gap.
    pub fn append(
        &self,
        conv: &Uuid,
        events: &[EncodedEvent],
        record: Option<RecordWrite<'_>>,
    ) -> Result<(), StoreError> {
        let summary = record.map(|r| r.summary.encode());
        (
            &self.events,
            &self.event_ids,
            &self.conversations,
            &self.catalog,
            &self.stats,
        )
            .transaction(|(ev, ids, convs, cat, st)| {
                for e in events {
                    ev.insert(&event_key(conv, e.seq)[..], e.bytes.as_slice())?;
                    ids.insert(id_key(conv, &e.id), &e.seq.to_be_bytes()[..])?;
                }
                if let (Some(r), Some(s)) = (record, &summary) {
                    convs.insert(&conv.as_bytes()[..], r.bytes)?;
                    cat.insert(&conv.as_bytes()[..], s.as_slice())?;
                    match r.stats {
                        None => {}
                        Some(StatsWrite::Calls { first, entries }) => {
                            for (i, e) in entries.iter().enumerate() {
                                st.insert(
                                    &stats_call_key(conv, first + i as u64)[..],
                                    e.as_slice(),
                                )?;
                            }
                        }
                        Some(StatsWrite::Snapshot { bytes, clear }) => {
                            st.insert(&stats_snapshot_key(conv)[..], bytes)?;
                            for n in 0..clear {
                                st.remove(&stats_call_key(conv, n)[..])?;
                            }
                        }
                    }
                }
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(StoreError::from)
    }

    /// Every catalog entry, in id order; damaged entries come back as errors.
    pub fn summaries(&self) -> impl Iterator<Item = Result<(Uuid, Summary), StoreError>> + '_ {
        self.catalog.iter().map(|r| {
            let (k, v) = r?;
            let id =
                Uuid::from_slice(&k).ok_or_else(|| StoreError::Corrupt("catalog key".into()))?;
            Ok((id, Summary::decode(&v)?))
        })
    }

    /// Rebuilds the catalog from the records when the two disagree (a
    /// database written before the catalog existed); returns entries written.
    pub fn ensure_catalog(
        &self,
        summarize: impl Fn(&[u8]) -> Option<Summary>,
    ) -> Result<usize, StoreError> {
        if self.catalog.len() == self.conversations.len() {
            return Ok(0);
        }
        self.catalog.clear()?;
        let mut n = 0;
        for item in self.conversations.iter() {
            let (k, v) = item?;
            if let Some(s) = summarize(&v) {
                self.catalog.insert(k, s.encode())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Seq of the last event of a conversation (0 when it has none).
    pub fn last_seq(&self, conv: &Uuid) -> Result<u64, StoreError> {
        match self.events.scan_prefix(conv.as_bytes()).next_back() {
            Some(r) => seq_of_key(&r?.0),
            None => Ok(0),
        }
    }

    /// Seq of an event by id.
    pub fn event_seq(&self, conv: &Uuid, event_id: &str) -> Result<Option<u64>, StoreError> {
        match self.event_ids.get(id_key(conv, event_id))? {
            Some(v) => Ok(Some(
                <[u8; 8]>::try_from(v.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("event index".into()))?,
            )),
            None => Ok(None),
        }
    }

    /// The event at `seq`.
    pub fn event_at(&self, conv: &Uuid, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        match self.events.get(event_key(conv, seq))? {
            Some(raw) => Ok(Some(StoredEvent::decode(seq, raw)?)),
            None => Ok(None),
        }
    }

    /// An event by id.
    pub fn event_by_id(
        &self,
        conv: &Uuid,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        match self.event_seq(conv, event_id)? {
            Some(seq) => self.event_at(conv, seq),
            None => Ok(None),
        }
    }

    /// Events from `start` onward (ascending: seq ≥ start; descending:
    /// seq ≤ start, newest first). Damaged entries come back as errors and
    /// callers skip them.
    pub fn events_from(
        &self,
        conv: &Uuid,
        start: u64,
        descending: bool,
    ) -> Box<dyn Iterator<Item = Result<StoredEvent, StoreError>> + '_> {
        let decode = |r: Result<(IVec, IVec), sled::Error>| -> Result<StoredEvent, StoreError> {
            let (k, v) = r?;
            StoredEvent::decode(seq_of_key(&k)?, v)
        };
        if descending {
            let range = event_key(conv, 0)..=event_key(conv, start);
            Box::new(self.events.range(range).rev().map(decode))
        } else {
            let range = event_key(conv, start)..=event_key(conv, u64::MAX);
            Box::new(self.events.range(range).map(decode))
        }
    }

    /// Copies every event of `from` into the (new, empty) log of `to`, in
    /// batches; returns how many were copied. The copies keep their ids.
    pub fn copy_events(&self, from: &Uuid, to: &Uuid) -> Result<u64, StoreError> {
        let mut batch: Vec<EncodedEvent> = Vec::with_capacity(512);
        let mut n = 0;
        for item in self.events_from(from, 1, false) {
            let e = item?;
            batch.push(EncodedEvent {
                seq: e.seq,
                id: e.id().to_string(),
                bytes: e.raw.to_vec(),
            });
            n += 1;
            if batch.len() == 512 {
                self.append(to, &batch, None)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.append(to, &batch, None)?;
        }
        Ok(n)
    }

    /// Removes a conversation: its record first (so it disappears at once),
    /// then its events and index entries.
    pub fn delete_conversation(&self, conv: &Uuid) -> Result<(), StoreError> {
        self.conversations.remove(conv.as_bytes())?;
        self.catalog.remove(conv.as_bytes())?;
        for tree in [&self.events, &self.event_ids, &self.stats] {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for r in tree.scan_prefix(conv.as_bytes()).keys() {
                batch.remove(r?);
                n += 1;
                if n == 10_000 {
                    tree.apply_batch(std::mem::take(&mut batch))?;
                    n = 0;
                }
            }
            tree.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Removes events whose conversation record is gone (left behind by a
    /// crash in the middle of a delete). Returns how many were removed.
    pub fn sweep_orphans(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for tree in [&self.events, &self.event_ids, &self.stats] {
            let mut current: Option<(Vec<u8>, bool)> = None;
            let mut batch = sled::Batch::default();
            for r in tree.iter().keys() {
                let k = r?;
                let Some(prefix) = k.get(..16) else { continue };
                let orphan = match &current {
                    Some((p, orphan)) if p.as_slice() == prefix => *orphan,
                    _ => {
                        let orphan = !self.conversations.contains_key(prefix)?;
                        current = Some((prefix.to_vec(), orphan));
                        orphan
                    }
                };
                if orphan {
                    batch.remove(k);
                    removed += 1;
                }
            }
            tree.apply_batch(batch)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: &str) -> EncodedEvent {
        let id = format!("id-{seq}");
        let json = format!(r#"{{"id":"{id}","kind":"{kind}"}}"#);
        EncodedEvent::new(
            seq,
            &id,
            Source::Agent,
            kind,
            &format!("2026-01-01T00:00:{seq:02}.000000"),
            &json,
        )
    }

    #[test]
    fn append_read_delete() {
        let s = Store::temporary().unwrap();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let sum = Summary {
            created_at: "c".into(),
            updated_at: "u".into(),
            status: "idle".into(),
        };
        let rec = |bytes: &'static [u8]| RecordWrite {
            bytes,
            summary: &sum,
            stats: None,
        };
        s.put_record(&a, rec(b"{}")).unwrap();
        s.put_record(&b, rec(b"{}")).unwrap();
        s.append(
            &a,
            &[ev(1, "MessageEvent"), ev(2, "ActionEvent")],
            Some(rec(b"{\"x\":1}")),
        )
        .unwrap();
        assert_eq!(s.summaries().count(), 2);
        s.append(&b, &[ev(1, "PauseEvent")], None).unwrap();
        assert_eq!(s.last_seq(&a).unwrap(), 2);
        assert_eq!(s.last_seq(&b).unwrap(), 1);
        assert_eq!(s.get_record(&a).unwrap().unwrap().as_ref(), b"{\"x\":1}");
        let e = s.event_by_id(&a, "id-2").unwrap().unwrap();
        assert_eq!(
            (e.seq, e.kind(), e.source()),
            (2, "ActionEvent", Source::Agent)
        );
        assert_eq!(e.timestamp(), "2026-01-01T00:00:02.000000");
        assert_eq!(e.id(), "id-2");
        assert!(e.json().starts_with("{\"id\":\"id-2\""));
        let asc: Vec<u64> = s
            .events_from(&a, 1, false)
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(asc, vec![1, 2]);
        let desc: Vec<u64> = s.events_from(&a, 2, true).map(|e| e.unwrap().seq).collect();
        assert_eq!(desc, vec![2, 1]);
        s.delete_conversation(&a).unwrap();
        assert_eq!(s.last_seq(&a).unwrap(), 0);
        assert!(s.event_by_id(&a, "id-1").unwrap().is_none());
        assert_eq!(s.last_seq(&b).unwrap(), 1);
    }

    /// sled 0.34 runs `flush_async` on a small pool of its own; when every
    /// pool thread waits inside a flush, the buffer write they wait for
    /// never runs and every later write hangs. Many concurrent flushes must
    /// all complete. The work runs on its own thread so that a deadlock
    /// fails the test instead of hanging it.
    #[test]
    fn concurrent_flushes_complete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db"), 8 << 20).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ok = actix_rt::System::new().block_on(async move {
                for round in 0..30u64 {
                    let tasks = (0..12u64).map(|i| {
                        let s = s.clone();
                        async move {
                            s.append(&Uuid::new_v4(), &[ev(round * 100 + i + 1, "X")], None)?;
                            s.flush().await
                        }
                    });
                    let all = futures_util::future::join_all(tasks).await;
                    if !all.iter().all(Result::is_ok) {
                        return false;
                    }
                }
                true
            });
            let _ = tx.send(ok);
        });
        let done = rx.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(done, Ok(true), "concurrent flushes did not all complete");
    }

    #[test]
    fn catalog_is_rebuilt_when_missing() {
        let s = Store::temporary().unwrap();
        let sum = Summary {
            created_at: "c".into(),
            updated_at: "u".into(),
            status: "idle".into(),
        };
        for _ in 0..3 {
            let w = RecordWrite {
                bytes: b"{}",
                summary: &sum,
                stats: None,
            };
            s.put_record(&Uuid::new_v4(), w).unwrap();
        }
        assert_eq!(
            s.ensure_catalog(|_| None).unwrap(),
            0,
            "in step: nothing to do"
        );
        s.catalog.clear().unwrap();
        let rebuilt = s.ensure_catalog(|_| Some(sum.clone())).unwrap();
        assert_eq!(rebuilt, 3);
        assert_eq!(s.summaries().count(), 3);
    }

    #[test]
    fn orphans_are_swept() {
        let s = Store::temporary().unwrap();
        let a = Uuid::new_v4();
        s.append(&a, &[ev(1, "X")], None).unwrap();
        assert_eq!(s.sweep_orphans().unwrap(), 2);
        assert_eq!(s.last_seq(&a).unwrap(), 0);
    }
}
