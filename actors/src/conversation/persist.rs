//! What a conversation actor writes of its record on each append, kept
//! cheap for long runs: the sealed record without `updated_at` is reused
//! while the rest of the record is unchanged, and the LLM usage goes to the
//! store as a log of calls with a snapshot now and then, instead of the
//! whole per-call lists on every write.
//!
//! Owns no I/O: it prepares bytes for `Store::append` and learns from the
//! actor whether the write committed.

use crate::crypto::Cipher;
use crate::model::conversation::{ConversationRecord, with_updated_at};
use crate::model::stats::{CallUsage, ConversationStats, LoggedCall};
use crate::store::{StatsWrite, StoredStats};

/// Log entries after which the next usage write is a fresh snapshot.
const SNAPSHOT_EVERY: u64 = 64;

/// The usage part of one prepared write.
#[derive(Debug)]
pub enum PreparedStats {
    /// Nothing changed.
    None,
    /// New log entries from position `first`.
    Calls {
        /// Position of the first entry.
        first: u64,
        /// The encoded calls.
        entries: Vec<Vec<u8>>,
    },
    /// A snapshot replacing the log `0..clear`.
    Snapshot {
        /// The encoded usage.
        bytes: Vec<u8>,
        /// Log length it replaces.
        clear: u64,
    },
}

impl PreparedStats {
    /// The store's view of it.
    pub fn as_write(&self) -> Option<StatsWrite<'_>> {
        match self {
            PreparedStats::None => None,
            PreparedStats::Calls { first, entries } => Some(StatsWrite::Calls {
                first: *first,
                entries,
            }),
            PreparedStats::Snapshot { bytes, clear } => Some(StatsWrite::Snapshot {
                bytes,
                clear: *clear,
            }),
        }
    }
}

/// Per-actor state of the stored record.
#[derive(Debug, Default)]
pub struct RecordWriter {
    /// The record (with `updated_at` and `stats` emptied) whose sealed
    /// bytes are `unstamped`.
    cached: Option<(ConversationRecord, Vec<u8>)>,
    /// Calls recorded in memory and not yet written.
    pending: Vec<LoggedCall>,
    /// Entries in the stored log after the snapshot.
    log_len: u64,
    /// Whether the store holds a snapshot (a record written before usage
    /// was kept apart has none, and needs one with its next write).
    has_snapshot: bool,
}

impl RecordWriter {
    /// State after the record and `stored` usage were read from the store.
    pub fn loaded(&mut self, stored: &StoredStats) {
        self.pending.clear();
        self.log_len = stored.calls.len() as u64;
        self.has_snapshot = stored.snapshot.is_some();
        self.cached = None;
    }

    /// Adds a finished LLM call to `stats` and remembers it for the next write.
    pub fn record_call(&mut self, stats: &mut ConversationStats, usage_id: &str, call: CallUsage) {
        let logged = LoggedCall {
            usage_id: usage_id.to_string(),
            call: call.storable(),
        };
        stats.apply(&logged);
        self.pending.push(logged);
    }

    /// Whether a write must carry usage (calls to log, or a missing snapshot).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.has_snapshot
    }

    /// The record's bytes and the usage to write with them.
    pub fn prepare(
        &mut self,
        record: &mut ConversationRecord,
        cipher: Option<&Cipher>,
    ) -> (Vec<u8>, PreparedStats) {
        // Compare and cache the record without its two fast-changing parts;
        // moving them out and back costs nothing.
        let stats = std::mem::take(&mut record.stats);
        let updated_at = std::mem::take(&mut record.updated_at);
        let fresh = match &self.cached {
            Some((key, _)) => key != record,
            None => true,
        };
        if fresh {
            let bytes = record.to_stored_unstamped(cipher);
            self.cached = Some((record.clone(), bytes));
        }
        record.stats = stats;
        record.updated_at = updated_at;
        let unstamped = self
            .cached
            .as_ref()
            .map(|(_, b)| b.as_slice())
            .unwrap_or(b"{}");
        let bytes = with_updated_at(unstamped, &record.updated_at);

        let usage =
            if !self.has_snapshot || self.log_len + self.pending.len() as u64 > SNAPSHOT_EVERY {
                PreparedStats::Snapshot {
                    bytes: record.stats.encode(),
                    clear: self.log_len,
                }
            } else if self.pending.is_empty() {
                PreparedStats::None
            } else {
                PreparedStats::Calls {
                    first: self.log_len,
                    entries: self.pending.iter().map(LoggedCall::encode).collect(),
                }
            };
        (bytes, usage)
    }

    /// The prepared write committed.
    pub fn committed(&mut self, usage: &PreparedStats) {
        match usage {
            PreparedStats::None => {}
            PreparedStats::Calls { entries, .. } => self.log_len += entries.len() as u64,
            PreparedStats::Snapshot { .. } => {
                self.log_len = 0;
                self.has_snapshot = true;
            }
        }
        if !matches!(usage, PreparedStats::None) {
            self.pending.clear();
        }
    }

    /// Drops the cached record bytes (an idle conversation keeps none).
    pub fn release_memory(&mut self) {
        self.cached = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Uuid;
    use crate::model::conversation::StartConversationRequest;
    use crate::store::{RecordWrite, Store};
    use serde_json::json;

    fn record() -> ConversationRecord {
        let body = json!({
            "agent": {"llm": {"model": "openai/m", "api_key": "sk-secret"}, "tools": []},
            "workspace": {"working_dir": "/tmp/w"},
        });
        let req = StartConversationRequest::from_value(&body, &|_| Err("no".into())).unwrap();
        ConversationRecord::new(Uuid::new_v4(), req, "workspace/conversations")
    }

    fn call(i: u64) -> CallUsage {
        CallUsage {
            model: "m".into(),
            response_id: format!("r{i}"),
            prompt_tokens: i,
            completion_tokens: 1,
            timestamp: i as f64,
            ..Default::default()
        }
    }

    fn write(store: &Store, w: &mut RecordWriter, rec: &mut ConversationRecord, cipher: &Cipher) {
        let (bytes, usage) = w.prepare(rec, Some(cipher));
        let summary = rec.summary();
        store
            .append(
                &rec.id,
                &[],
                Some(RecordWrite {
                    bytes: &bytes,
                    summary: &summary,
                    stats: usage.as_write(),
                }),
            )
            .unwrap();
        w.committed(&usage);
    }

    #[test]
    fn usage_survives_many_writes_through_log_and_snapshots() {
        let store = Store::temporary().unwrap();
        let cipher = Cipher::from_secret("k");
        let mut rec = record();
        let mut w = RecordWriter::default();
        w.loaded(&StoredStats::default());
        write(&store, &mut w, &mut rec, &cipher);
        for i in 0..150 {
            w.record_call(
                &mut rec.stats,
                if i % 3 == 0 { "condenser" } else { "agent" },
                call(i),
            );
            rec.updated_at = format!("2026-01-01T00:00:{:02}Z", i % 60);
            write(&store, &mut w, &mut rec, &cipher);
            if i % 7 == 0 {
                // Writes without a new call in between.
                write(&store, &mut w, &mut rec, &cipher);
            }
            let (back, failures) = ConversationRecord::load(&store, &rec.id, Some(&cipher))
                .unwrap()
                .unwrap();
            assert!(failures.is_empty());
            assert_eq!(back, rec, "after call {i}");
        }
        // The log stays short: snapshots replace it.
        assert!(store.stats(&rec.id).unwrap().calls.len() as u64 <= SNAPSHOT_EVERY);
    }

    #[test]
    fn an_overflowing_cost_keeps_the_record_loadable() {
        let store = Store::temporary().unwrap();
        let cipher = Cipher::from_secret("k");
        let mut rec = record();
        let mut w = RecordWriter::default();
        w.loaded(&StoredStats::default());
        write(&store, &mut w, &mut rec, &cipher);
        // Finite prices can still multiply or add up past f64::MAX.
        for (i, cost) in [(1, f64::MAX), (2, f64::INFINITY), (3, f64::NAN)] {
            let mut c = call(i);
            c.cost = cost;
            c.latency = cost;
            w.record_call(&mut rec.stats, "agent", c);
            write(&store, &mut w, &mut rec, &cipher);
            let (mut back, _) = ConversationRecord::load(&store, &rec.id, Some(&cipher))
                .unwrap()
                .unwrap();
            assert_eq!(back.stats, rec.stats);
            assert!(back.stats.entry("agent").accumulated_cost.is_finite());
        }
        // A snapshot of the same usage loads as well.
        let mut w2 = RecordWriter::default();
        w2.loaded(&StoredStats {
            snapshot: None,
            ..store.stats(&rec.id).unwrap()
        });
        write(&store, &mut w2, &mut rec, &cipher);
        assert!(store.stats(&rec.id).unwrap().calls.is_empty());
        let (back, _) = ConversationRecord::load(&store, &rec.id, Some(&cipher))
            .unwrap()
            .unwrap();
        assert_eq!(back.stats, rec.stats);
    }

    #[test]
    fn a_changed_record_is_sealed_again() {
        let store = Store::temporary().unwrap();
        let cipher = Cipher::from_secret("k");
        let mut rec = record();
        let mut w = RecordWriter::default();
        w.loaded(&StoredStats::default());
        write(&store, &mut w, &mut rec, &cipher);
        rec.title = Some("renamed".into());
        rec.tags.insert("k".into(), json!("v"));
        write(&store, &mut w, &mut rec, &cipher);
        let (back, _) = ConversationRecord::load(&store, &rec.id, Some(&cipher))
            .unwrap()
            .unwrap();
        assert_eq!(back.title.as_deref(), Some("renamed"));
        assert_eq!(back, rec);
        let raw = store.get_record(&rec.id).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("sk-secret"));
    }

    #[test]
    fn a_legacy_record_gets_a_snapshot_with_its_next_write() {
        let store = Store::temporary().unwrap();
        let cipher = Cipher::from_secret("k");
        let mut rec = record();
        w_legacy(&store, &mut rec, &cipher);
        let (mut loaded, _) = ConversationRecord::load(&store, &rec.id, Some(&cipher))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.stats, rec.stats);
        let mut w = RecordWriter::default();
        w.loaded(&store.stats(&rec.id).unwrap());
        assert!(w.has_pending());
        write(&store, &mut w, &mut loaded, &cipher);
        let (back, _) = ConversationRecord::load(&store, &rec.id, Some(&cipher))
            .unwrap()
            .unwrap();
        assert_eq!(back.stats, rec.stats);
        assert!(store.stats(&rec.id).unwrap().snapshot.is_some());
    }

    /// Writes `rec` the way records were written before usage was kept
    /// apart: the full usage inside the record, no snapshot.
    fn w_legacy(store: &Store, rec: &mut ConversationRecord, cipher: &Cipher) {
        rec.stats.entry("agent").record(&call(1));
        let mut bytes = rec.to_stored(Some(cipher));
        bytes.pop();
        bytes.extend_from_slice(b",\"stats\":");
        bytes.extend_from_slice(&rec.stats.encode());
        bytes.push(b'}');
        let summary = rec.summary();
        store
            .append(
                &rec.id,
                &[],
                Some(RecordWrite {
                    bytes: &bytes,
                    summary: &summary,
                    stats: None,
                }),
            )
            .unwrap();
    }
}
