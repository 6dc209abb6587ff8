//! The bash event log: every `BashCommand` and `BashOutput`, in one global
//! order, in the server's sled database, plus the live fan-out to socket
//! subscribers.
//!
//! Trees (all owned by this module):
//! - `bash_events`: seq (u64 big-endian) → header ‖ event JSON. The seq is
//!   handed out under one lock together with the fan-out, so the stored
//!   order, the replay order and the live order are the same, whatever the
//!   wall clock does;
//! - `bash_event_ids`: event id (16 bytes) → seq;
//! - `bash_by_command`: command id ‖ seq → kind ‖ order, so one command's
//!   events (what the client polls) are a short key range;
//! - `bash_running`: command id → process group and start time, for every
//!   command without a final output; it is what start-up recovery reads.
//!
//! An append is one transaction across the trees it touches. Subscribers
//! get frames through bounded queues; one that falls behind is dropped and
//! told why, the writer never waits. Reads need no lock. Everything here
//! blocks on sled: call it from actor threads or `spawn_blocking`.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sled::transaction::{ConflictableTransactionError, Transactional};
use sled::{IVec, Tree};
use tokio::sync::mpsc;

use super::model::{BashKind, OutputEvent, RecordHeader, stored_json};
use crate::ids::Uuid;
use crate::store::{Store, StoreError};

/// Meta key holding the next seq, so a cleared log never reuses one.
const NEXT_SEQ_KEY: &str = "bash_next_seq";
/// Keys removed per batch when clearing or sweeping.
const DELETE_BATCH: usize = 1000;
/// Bytes of queued frames one subscriber may hold before it is dropped.
pub const SUBSCRIBER_MAX_BYTES: usize = 64 << 20;

/// Why a subscription ended (read by the socket when its queue closes).
pub mod end {
    /// Still open (or ended without a known reason).
    pub const NONE: u8 = 0;
    /// The subscriber fell too far behind.
    pub const OVERFLOW: u8 = 1;
    /// The server is shutting down.
    pub const SHUTDOWN: u8 = 2;
}

/// One event for a socket.
#[derive(Debug, Clone)]
pub struct BashFrame {
    /// Position in the global order.
    pub seq: u64,
    /// The event's JSON.
    pub text: Arc<str>,
}

/// A new subscription.
#[derive(Debug, Clone)]
pub struct Subscribed {
    /// Id for [`BashLog::unsubscribe`].
    pub id: u64,
    /// Every event with seq ≤ head is stored; every later one arrives on
    /// the queue.
    pub head: u64,
    /// Bytes queued for this subscriber; the reader subtracts what it took.
    pub queued: Arc<AtomicUsize>,
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<BashFrame>,
    end: Arc<AtomicU8>,
    queued: Arc<AtomicUsize>,
}

struct LogState {
    next_seq: u64,
    subscribers: Vec<Subscriber>,
    next_subscriber: u64,
}

/// What an append does to the running-commands tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    /// Leave it.
    Keep,
    /// The command starts running (a `BashCommand`).
    Start,
    /// The command has its final output.
    Finish,
}

/// Filters of `GET /api/bash/bash_events/search`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BashFilter {
    /// Only this kind.
    pub kind: Option<BashKind>,
    /// Only events of this command (the command itself and its outputs).
    pub command_id: Option<Uuid>,
    /// Time ≥ this (µs since the epoch).
    pub micros_gte: Option<i64>,
    /// Time < this (µs since the epoch).
    pub micros_lt: Option<i64>,
    /// Drops `BashOutput` events whose order is ≤ this.
    pub order_gt: Option<i64>,
}

impl BashFilter {
    fn pre_matches(&self, kind: BashKind, order: u64) -> bool {
        if self.kind.is_some_and(|k| k != kind) {
            return false;
        }
        match self.order_gt {
            Some(g) if kind == BashKind::Output => i128::from(order) > i128::from(g),
            _ => true,
        }
    }

    fn matches(&self, h: &RecordHeader) -> bool {
        self.pre_matches(h.kind, h.order)
            && self.command_id.is_none_or(|c| c == h.command_id)
            && self.micros_gte.is_none_or(|t| h.micros >= t)
            && self.micros_lt.is_none_or(|t| h.micros < t)
    }
}

/// One page of search results.
#[derive(Debug, Clone, Default)]
pub struct BashPage {
    /// Stored values (header ‖ JSON), in the requested order.
    pub items: Vec<IVec>,
    /// Seq of the first item of the next page.
    pub next: Option<u64>,
}

impl BashPage {
    /// `{"items":[...],"next_page_id":...}` from the stored JSON, without
    /// re-serializing the events. The cursor is the decimal seq.
    pub fn to_json(&self) -> String {
        let size: usize = self.items.iter().map(|i| i.len() + 1).sum();
        let mut out = String::with_capacity(48 + size);
        out.push_str("{\"items\":[");
        for (i, raw) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(stored_json(raw));
        }
        out.push_str("],\"next_page_id\":");
        match self.next {
            Some(seq) => {
                out.push('"');
                out.push_str(&seq.to_string());
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push('}');
        out
    }
}

/// What is known about a command id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandState {
    /// No trace of it.
    Unknown,
    /// Started and not finished.
    Running,
    /// It has its final output (or its events were cleared).
    Finished,
}

/// Process of a running command, as recorded for crash recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMark {
    /// Process group (= the shell's pid).
    pub pgid: i32,
    /// The shell's start time in clock ticks since boot (`/proc/<pid>/stat`
    /// field 22), so a recycled pid is never mistaken for it.
    pub start_ticks: u64,
}

impl ProcessMark {
    fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.pgid.to_be_bytes());
        b[4..].copy_from_slice(&self.start_ticks.to_be_bytes());
        b
    }

    fn decode(raw: &[u8]) -> Option<ProcessMark> {
        let raw: &[u8; 12] = raw.try_into().ok()?;
        Some(ProcessMark {
            pgid: i32::from_be_bytes(raw[..4].try_into().ok()?),
            start_ticks: u64::from_be_bytes(raw[4..].try_into().ok()?),
        })
    }
}

struct Inner {
    store: Store,
    events: Tree,
    ids: Tree,
    by_command: Tree,
    running: Tree,
    state: Mutex<LogState>,
    max_subscribers: usize,
}

/// Handle to the bash event log; cheap to clone.
#[derive(Clone)]
pub struct BashLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BashLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BashLog(..)")
    }
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn seq_of(raw: &[u8]) -> Option<u64> {
    raw.try_into().ok().map(u64::from_be_bytes)
}

fn command_key(command: &Uuid, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(command.as_bytes());
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn index_value(kind: BashKind, order: u64) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[0] = u8::from(kind == BashKind::Output);
    v[1..].copy_from_slice(&order.to_be_bytes());
    v
}

fn decode_index(raw: &[u8]) -> Option<(BashKind, u64)> {
    let kind = match raw.first()? {
        0 => BashKind::Command,
        _ => BashKind::Output,
    };
    Some((kind, u64::from_be_bytes(raw.get(1..9)?.try_into().ok()?)))
}

impl BashLog {
    /// Opens the log's trees in the server's database.
    pub fn open(store: &Store, max_subscribers: usize) -> Result<BashLog, StoreError> {
        let db = store.db();
        let events = db.open_tree("bash_events")?;
        let last = match events.last()? {
            Some((k, _)) => seq_of(&k).unwrap_or(0),
            None => 0,
        };
        let saved = store
            .meta_get(NEXT_SEQ_KEY)?
            .and_then(|v| seq_of(&v))
            .unwrap_or(1);
        Ok(BashLog {
            inner: Arc::new(Inner {
                ids: db.open_tree("bash_event_ids")?,
                by_command: db.open_tree("bash_by_command")?,
                running: db.open_tree("bash_running")?,
                events,
                store: store.clone(),
                state: Mutex::new(LogState {
                    next_seq: (last + 1).max(saved).max(1),
                    subscribers: Vec::new(),
                    next_subscriber: 0,
                }),
                max_subscribers,
            }),
        })
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock leaves the state consistent (the
        // seq only advances after a successful write), so keep going.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one event and fans it out; returns its seq.
    pub fn append(
        &self,
        header: &RecordHeader,
        json: &str,
        running: Running,
    ) -> Result<u64, StoreError> {
        let bytes = header.encode(json);
        let i = &self.inner;
        let mut st = self.lock();
        let seq = st.next_seq;
        let cmd = header.command_id;
        (&i.events, &i.ids, &i.by_command, &i.running)
            .transaction(|(events, ids, by_command, run)| {
                events.insert(&seq_key(seq)[..], bytes.as_slice())?;
                ids.insert(&header.event_id.as_bytes()[..], &seq_key(seq)[..])?;
                by_command.insert(
                    &command_key(&cmd, seq)[..],
                    &index_value(header.kind, header.order)[..],
                )?;
                match running {
                    Running::Keep => {}
                    Running::Start => {
                        run.insert(&cmd.as_bytes()[..], &[][..])?;
                    }
                    Running::Finish => {
                        run.remove(&cmd.as_bytes()[..])?;
                    }
                }
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(StoreError::from)?;
        st.next_seq = seq + 1;
        if !st.subscribers.is_empty() {
            let frame = BashFrame {
                seq,
                text: Arc::from(json),
            };
            broadcast(&mut st.subscribers, &frame);
        }
        Ok(seq)
    }

    /// Records the process of a running command (for crash recovery).
    pub fn mark_process(&self, command: &Uuid, mark: ProcessMark) -> Result<(), StoreError> {
        // Only a command still marked running (without a process yet) gets
        // its mark; one that already finished stays unmarked.
        let _ = self.inner.running.compare_and_swap(
            command.as_bytes(),
            Some(&[][..]),
            Some(&mark.encode()[..]),
        )?;
        Ok(())
    }

    /// Adds a subscriber, or `None` when there are as many as allowed.
    pub fn subscribe(&self, tx: mpsc::Sender<BashFrame>, end: Arc<AtomicU8>) -> Option<Subscribed> {
        let mut st = self.lock();
        st.subscribers.retain(|s| !s.tx.is_closed());
        if st.subscribers.len() >= self.inner.max_subscribers {
            return None;
        }
        st.next_subscriber += 1;
        let id = st.next_subscriber;
        let queued = Arc::new(AtomicUsize::new(0));
        st.subscribers.push(Subscriber {
            id,
            tx,
            end,
            queued: queued.clone(),
        });
        Some(Subscribed {
            id,
            head: st.next_seq - 1,
            queued,
        })
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, id: u64) {
        self.lock().subscribers.retain(|s| s.id != id);
    }

    /// Drops every subscriber, telling them why.
    pub fn close_subscribers(&self, reason: u8) {
        for s in self.lock().subscribers.drain(..) {
            s.end.store(reason, Ordering::SeqCst);
        }
    }

    /// Stored events with `from ≤ seq ≤ to`, at most `max_items` and about
    /// `max_bytes` (always at least one); also returns the seq to continue
    /// from, `None` when the range is done.
    pub fn read_range(
        &self,
        from: u64,
        to: u64,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<(Vec<BashFrame>, Option<u64>), StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        if from > to {
            return Ok((out, None));
        }
        for r in self.inner.events.range(seq_key(from)..=seq_key(to)) {
            let (k, v) = r?;
            let Some(seq) = seq_of(&k) else { continue };
            if out.len() >= max_items || (bytes >= max_bytes && !out.is_empty()) {
                return Ok((out, Some(seq)));
            }
            bytes += v.len();
            out.push(BashFrame {
                seq,
                text: Arc::from(stored_json(&v)),
            });
        }
        Ok((out, None))
    }

    /// An event's stored value by id.
    pub fn get(&self, event_id: &Uuid) -> Result<Option<IVec>, StoreError> {
        let Some(seq) = self.inner.ids.get(event_id.as_bytes())? else {
            return Ok(None);
        };
        match seq_of(&seq) {
            Some(seq) => Ok(self.inner.events.get(seq_key(seq))?),
            None => Err(StoreError::Corrupt("bash event index".into())),
        }
    }

    /// What is known about a command.
    pub fn command_state(&self, command: &Uuid) -> Result<CommandState, StoreError> {
        let i = &self.inner;
        if i.running.contains_key(command.as_bytes())? {
            return Ok(CommandState::Running);
        }
        if i.ids.contains_key(command.as_bytes())?
            || i.by_command
                .scan_prefix(command.as_bytes())
                .next()
                .is_some()
        {
            return Ok(CommandState::Finished);
        }
        Ok(CommandState::Unknown)
    }

    /// The last stored `BashOutput` of a command.
    pub fn last_output(&self, command: &Uuid) -> Result<Option<IVec>, StoreError> {
        for r in self.inner.by_command.scan_prefix(command.as_bytes()).rev() {
            let (k, v) = r?;
            if decode_index(&v).is_some_and(|(kind, _)| kind == BashKind::Output) {
                let Some(seq) = k.get(16..).and_then(seq_of) else {
                    continue;
                };
                if let Some(raw) = self.inner.events.get(seq_key(seq))? {
                    return Ok(Some(raw));
                }
            }
        }
        Ok(None)
    }

    /// A page of matching events, starting at seq `cursor` (inclusive) in
    /// the requested direction, at most `limit` items and about
    /// `max_bytes` of JSON (always at least one item).
    pub fn search(
        &self,
        filter: &BashFilter,
        cursor: Option<u64>,
        limit: usize,
        descending: bool,
        max_bytes: usize,
    ) -> Result<BashPage, StoreError> {
        let mut page = BashPage::default();
        let mut bytes = 0usize;
        // Returns false when the page is full (and records the cursor).
        let mut take = |page: &mut BashPage, seq: u64, raw: IVec| -> bool {
            if page.items.len() >= limit
                || (bytes + raw.len() > max_bytes && !page.items.is_empty())
            {
                page.next = Some(seq);
                return false;
            }
            bytes += raw.len();
            page.items.push(raw);
            true
        };
        let i = &self.inner;
        if let Some(cmd) = filter.command_id {
            let lo = command_key(&cmd, if descending { 0 } else { cursor.unwrap_or(0) });
            let hi = command_key(
                &cmd,
                if descending {
                    cursor.unwrap_or(u64::MAX)
                } else {
                    u64::MAX
                },
            );
            let range = i.by_command.range(lo..=hi);
            let iter: Box<dyn Iterator<Item = _>> = if descending {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            for r in iter {
                let (k, v) = r?;
                let Some(seq) = k.get(16..).and_then(seq_of) else {
                    continue;
                };
                let Some((kind, order)) = decode_index(&v) else {
                    continue;
                };
                if !filter.pre_matches(kind, order) {
                    continue;
                }
                let Some(raw) = i.events.get(seq_key(seq))? else {
                    continue;
                };
                if !RecordHeader::decode(&raw).is_some_and(|h| filter.matches(&h)) {
                    continue;
                }
                if !take(&mut page, seq, raw) {
                    break;
                }
            }
        } else {
            let range = if descending {
                i.events.range(..=seq_key(cursor.unwrap_or(u64::MAX)))
            } else {
                i.events.range(seq_key(cursor.unwrap_or(0))..)
            };
            let iter: Box<dyn Iterator<Item = _>> = if descending {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            for r in iter {
                let (k, raw) = r?;
                let Some(seq) = seq_of(&k) else { continue };
                match RecordHeader::decode(&raw) {
                    Some(h) if filter.matches(&h) => {}
                    Some(_) => continue,
                    None => {
                        log::warn!("bash event {seq}: damaged record skipped");
                        continue;
                    }
                }
                if !take(&mut page, seq, raw) {
                    break;
                }
            }
        }
        Ok(page)
    }

    /// Removes the stored events with seq ≤ `head` that `doomed` selects;
    /// returns how many. With `stop_at_first_kept`, the walk ends at the
    /// first event kept (the log is in time order, so an age sweep can stop
    /// there).
    fn delete_where(
        &self,
        head: u64,
        stop_at_first_kept: bool,
        doomed: impl Fn(&RecordHeader) -> bool,
    ) -> Result<usize, StoreError> {
        let i = &self.inner;
        let mut removed = 0;
        let mut from = 0u64;
        loop {
            let mut events = sled::Batch::default();
            let mut ids = sled::Batch::default();
            let mut by_command = sled::Batch::default();
            let mut n = 0;
            let mut done = true;
            for r in i.events.range(seq_key(from)..=seq_key(head)) {
                let (k, v) = r?;
                let Some(seq) = seq_of(&k) else { continue };
                from = seq.saturating_add(1);
                let header = RecordHeader::decode(&v);
                if let Some(h) = &header {
                    if !doomed(h) {
                        if stop_at_first_kept {
                            break;
                        }
                        continue;
                    }
                    ids.remove(&h.event_id.as_bytes()[..]);
                    by_command.remove(&command_key(&h.command_id, seq)[..]);
                }
                events.remove(k);
                n += 1;
                if n >= DELETE_BATCH {
                    done = false;
                    break;
                }
            }
            // Index entries first: an index entry without its event is
            // skipped by readers, an event without its index is not.
            i.ids.apply_batch(ids)?;
            i.by_command.apply_batch(by_command)?;
            i.events.apply_batch(events)?;
            removed += n;
            if done || from > head {
                return Ok(removed);
            }
        }
    }

    fn save_next_seq(&self) -> Result<(), StoreError> {
        let next = self.lock().next_seq;
        self.inner.store.meta_put(NEXT_SEQ_KEY, &seq_key(next))
    }

    /// Deletes every stored event (running commands keep running and keep
    /// recording); returns how many were deleted.
    pub fn clear(&self) -> Result<usize, StoreError> {
        let head = self.lock().next_seq - 1;
        let n = self.delete_where(head, false, |_| true)?;
        self.save_next_seq()?;
        Ok(n)
    }

    /// Deletes events older than `cutoff_micros`, walking from the oldest
    /// and stopping at the first younger one; returns how many.
    pub fn sweep_older_than(&self, cutoff_micros: i64) -> Result<usize, StoreError> {
        let head = self.lock().next_seq - 1;
        let n = self.delete_where(head, true, |h| h.micros < cutoff_micros)?;
        if n > 0 {
            self.save_next_seq()?;
        }
        Ok(n)
    }

    /// Commands recorded as running, with their process when known.
    pub fn running_commands(&self) -> Result<Vec<(Uuid, Option<ProcessMark>)>, StoreError> {
        let mut out = Vec::new();
        for r in self.inner.running.iter() {
            let (k, v) = r?;
            if let Some(id) = Uuid::from_slice(&k) {
                out.push((id, ProcessMark::decode(&v)));
            }
        }
        Ok(out)
    }

    /// The order the next `BashOutput` of a command gets.
    pub fn next_order(&self, command: &Uuid) -> Result<u64, StoreError> {
        let mut next = 0;
        for r in self.inner.by_command.scan_prefix(command.as_bytes()) {
            let (_, v) = r?;
            if let Some((BashKind::Output, order)) = decode_index(&v) {
                next = next.max(order + 1);
            }
        }
        Ok(next)
    }

    /// Gives every command left running by a previous server process a
    /// final output (exit code -1, `note` on stderr); returns how many.
    /// Their process groups are killed first when they still exist.
    pub fn finish_interrupted(&self, note: &str) -> Result<usize, StoreError> {
        let running = self.running_commands()?;
        for (id, mark) in &running {
            if let Some(mark) = mark {
                super::process::kill_leftover_group(*mark);
            }
            let event = OutputEvent {
                id: Uuid::new_v4(),
                micros: crate::time::now_micros(),
                command_id: *id,
                order: self.next_order(id)?,
                exit_code: Some(-1),
                stdout: None,
                stderr: Some(note.to_string()),
            };
            self.append(&event.header(), &event.to_json(), Running::Finish)?;
        }
        Ok(running.len())
    }

    /// Number of stored events.
    pub fn len(&self) -> usize {
        self.inner.events.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.events.is_empty()
    }
}

fn broadcast(subscribers: &mut Vec<Subscriber>, frame: &BashFrame) {
    let size = frame.text.len();
    subscribers.retain(|s| {
        let queued = s.queued.fetch_add(size, Ordering::SeqCst) + size;
        if queued > SUBSCRIBER_MAX_BYTES {
            s.end.store(end::OVERFLOW, Ordering::SeqCst);
            return false;
        }
        match s.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.end.store(end::OVERFLOW, Ordering::SeqCst);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bash::model::{ExecuteBashRequest, command_json};

    fn log() -> BashLog {
        BashLog::open(&Store::temporary().unwrap(), 2).unwrap()
    }

    fn command(log: &BashLog, micros: i64) -> Uuid {
        let id = Uuid::new_v4();
        let req = ExecuteBashRequest {
            command: "true".into(),
            cwd: None,
            timeout: 5,
        };
        log.append(
            &RecordHeader::command(id, micros),
            &command_json(&id, &req, micros),
            Running::Start,
        )
        .unwrap();
        id
    }

    fn output(log: &BashLog, cmd: Uuid, order: u64, exit: Option<i64>, micros: i64) -> Uuid {
        let e = OutputEvent {
            id: Uuid::new_v4(),
            micros,
            command_id: cmd,
            order,
            exit_code: exit,
            stdout: Some(format!("o{order}")),
            stderr: None,
        };
        let running = if exit.is_some() {
            Running::Finish
        } else {
            Running::Keep
        };
        log.append(&e.header(), &e.to_json(), running).unwrap();
        e.id
    }

    fn texts(page: &BashPage) -> Vec<String> {
        page.items
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(stored_json(r)).unwrap();
                format!("{}:{}", v["kind"].as_str().unwrap(), v["order"])
            })
            .collect()
    }

    #[test]
    fn search_filters_and_pages_in_log_order() {
        let l = log();
        let a = command(&l, 10);
        let b = command(&l, 11);
        output(&l, a, 0, None, 12);
        output(&l, b, 0, Some(0), 13);
        output(&l, a, 1, Some(0), 14);
        let all = l
            .search(&BashFilter::default(), None, 100, false, 1 << 30)
            .unwrap();
        assert_eq!(all.items.len(), 5);
        let f = BashFilter {
            command_id: Some(a),
            kind: Some(BashKind::Output),
            order_gt: Some(0),
            ..Default::default()
        };
        let p = l.search(&f, None, 100, false, 1 << 30).unwrap();
        assert_eq!(texts(&p), ["BashOutput:1"]);
        let f = BashFilter {
            command_id: Some(a),
            ..Default::default()
        };
        let p1 = l.search(&f, None, 2, false, 1 << 30).unwrap();
        assert_eq!(texts(&p1), ["BashCommand:null", "BashOutput:0"]);
        let p2 = l.search(&f, p1.next, 2, false, 1 << 30).unwrap();
        assert_eq!(texts(&p2), ["BashOutput:1"]);
        assert_eq!(p2.next, None);
        let d = l.search(&f, None, 2, true, 1 << 30).unwrap();
        assert_eq!(texts(&d), ["BashOutput:1", "BashOutput:0"]);
        let d2 = l.search(&f, d.next, 2, true, 1 << 30).unwrap();
        assert_eq!(texts(&d2), ["BashCommand:null"]);
        let t = BashFilter {
            micros_gte: Some(12),
            micros_lt: Some(14),
            ..Default::default()
        };
        assert_eq!(
            l.search(&t, None, 100, false, 1 << 30).unwrap().items.len(),
            2
        );
        // A byte budget cuts the page but keeps at least one item.
        let small = l
            .search(&BashFilter::default(), None, 100, false, 1)
            .unwrap();
        assert_eq!(small.items.len(), 1);
        assert!(small.next.is_some());
    }

    #[test]
    fn running_state_and_recovery() {
        let l = log();
        let a = command(&l, 1);
        output(&l, a, 0, None, 2);
        let b = command(&l, 3);
        output(&l, b, 0, Some(0), 4);
        assert_eq!(l.command_state(&a).unwrap(), CommandState::Running);
        assert_eq!(l.command_state(&b).unwrap(), CommandState::Finished);
        assert_eq!(
            l.command_state(&Uuid::new_v4()).unwrap(),
            CommandState::Unknown
        );
        assert_eq!(l.finish_interrupted("gone").unwrap(), 1);
        assert_eq!(l.command_state(&a).unwrap(), CommandState::Finished);
        let last: serde_json::Value =
            serde_json::from_str(stored_json(&l.last_output(&a).unwrap().unwrap())).unwrap();
        assert_eq!(last["order"], 1);
        assert_eq!(last["exit_code"], -1);
        assert_eq!(last["stderr"], "gone");
        assert_eq!(l.finish_interrupted("gone").unwrap(), 0);
    }

    #[test]
    fn clear_and_sweep_keep_indexes_consistent() {
        let l = log();
        let a = command(&l, 100);
        let o = output(&l, a, 0, Some(0), 200);
        let b = command(&l, 300);
        assert_eq!(l.sweep_older_than(250).unwrap(), 2);
        assert!(l.get(&a).unwrap().is_none());
        assert!(l.get(&o).unwrap().is_none());
        assert!(l.get(&b).unwrap().is_some());
        let f = BashFilter {
            command_id: Some(a),
            ..Default::default()
        };
        assert!(
            l.search(&f, None, 100, false, 1 << 30)
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(l.clear().unwrap(), 1);
        assert!(l.is_empty());
        // A running command keeps its running mark and its seqs move on.
        assert_eq!(l.command_state(&b).unwrap(), CommandState::Running);
        let before = l.lock().next_seq;
        output(&l, b, 0, Some(0), 400);
        assert_eq!(l.lock().next_seq, before + 1);
    }

    #[test]
    fn subscribers_get_live_frames_and_slow_ones_are_dropped() {
        let l = log();
        let (tx, mut rx) = mpsc::channel(8);
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let slow_end = Arc::new(AtomicU8::new(end::NONE));
        let s = l.subscribe(tx, Arc::new(AtomicU8::new(end::NONE))).unwrap();
        l.subscribe(slow_tx, slow_end.clone()).unwrap();
        // At most two subscribers in this log.
        let (extra, _x) = mpsc::channel(1);
        assert!(l.subscribe(extra, Arc::new(AtomicU8::new(0))).is_none());
        let a = command(&l, 1);
        output(&l, a, 0, Some(0), 2);
        assert_eq!(slow_end.load(Ordering::SeqCst), end::OVERFLOW);
        let f1 = rx.try_recv().unwrap();
        let f2 = rx.try_recv().unwrap();
        assert_eq!((f1.seq, f2.seq), (s.head + 1, s.head + 2));
        let (frames, next) = l.read_range(1, s.head + 2, 1, 1 << 20).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(next, Some(s.head + 2));
    }
}
