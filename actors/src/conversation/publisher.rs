//! Ordered, durable-first fan-out of one conversation's events to its
//! subscribers.
//!
//! Frames wait in the outbox until the events they carry are on disk (when
//! the durability policy asks for it), then go to every subscriber through
//! its own bounded queue. A socket subscriber whose queue is full is dropped
//! and told why through its end flag; a webhook feed keeps its place and the
//! frame is counted as missed (its own queue sheds the oldest events). The
//! writer never waits for a reader. Frames that are not persisted
//! (`full_state` snapshots, streaming deltas) keep their place in the order.
//! Each socket reports the last seq it handed to its connection, so that the
//! reply to a request can follow the events it caused ([`SentBarrier`]).
//! No I/O and no actix here: the actor drives it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// One text frame for subscribers.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Seq of the persisted event it carries; `None` for non-persisted frames.
    pub seq: Option<u64>,
    /// The JSON text.
    pub text: Arc<str>,
}

/// Why a subscription ended (read by the socket when its queue closes).
pub mod end {
    /// Still open, or ended without a known reason (actor crash): re-subscribe.
    pub const NONE: u8 = 0;
    /// The subscriber's queue overflowed.
    pub const OVERFLOW: u8 = 1;
    /// The conversation was deleted.
    pub const DELETED: u8 = 2;
    /// The server is shutting down.
    pub const SHUTDOWN: u8 = 3;
    /// The actor was evicted for idleness (only ever seen by a subscriber
    /// that raced the eviction): re-subscribe.
    pub const EVICTED: u8 = 4;
}

/// What a full queue does to a subscriber.
#[derive(Debug, Clone)]
pub enum OnFull {
    /// A socket: dropped, with [`end::OVERFLOW`]; it resumes with `after_seq`.
    Close(Arc<AtomicU8>),
    /// A webhook feed: kept; the frame is counted here as missed.
    Skip(Arc<AtomicU64>),
}

/// The sending side of one subscription.
#[derive(Debug)]
pub struct Subscriber {
    /// Id within the conversation.
    pub id: u64,
    /// Bounded queue to the socket or feed.
    pub tx: mpsc::Sender<Frame>,
    /// Overflow policy, with the socket's end reason or the feed's counter.
    pub on_full: OnFull,
    /// Seq of the last frame the socket wrote (sockets only).
    pub sent: Option<watch::Receiver<u64>>,
}

/// Outbox and subscriber list of one conversation.
#[derive(Debug, Default)]
pub struct Publisher {
    queue: VecDeque<Frame>,
    /// Highest seq known to be durable (or, in relaxed mode, appended).
    durable: u64,
    subscribers: Vec<Subscriber>,
    next_id: u64,
}

impl Publisher {
    /// A publisher whose log already holds `durable` events.
    pub fn new(durable: u64) -> Publisher {
        Publisher {
            durable,
            ..Default::default()
        }
    }

    /// Highest seq published (or publishable) to subscribers.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Frames waiting for durability.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Highest seq still waiting, if any.
    pub fn highest_pending(&self) -> Option<u64> {
        self.queue.iter().rev().find_map(|f| f.seq)
    }

    /// Queues a frame and publishes whatever is ready.
    pub fn push(&mut self, frame: Frame) {
        self.queue.push_back(frame);
        self.drain();
    }

    /// Records that every event up to `seq` is durable and publishes.
    pub fn mark_durable(&mut self, seq: u64) {
        if seq > self.durable {
            self.durable = seq;
        }
        self.drain();
    }

    /// Resets after a restart of the owning actor: the log holds `last_seq`
    /// events, of which those still queued have not been published yet.
    pub fn reset_durable_floor(&mut self, last_seq: u64) {
        let floor = self
            .queue
            .iter()
            .find_map(|f| f.seq)
            .map(|s| s.saturating_sub(1))
            .unwrap_or(last_seq);
        self.durable = self.durable.max(floor.min(last_seq));
    }

    fn drain(&mut self) {
        while let Some(front) = self.queue.front() {
            if front.seq.is_some_and(|s| s > self.durable) {
                break;
            }
            if let Some(frame) = self.queue.pop_front() {
                self.broadcast(&frame);
            }
        }
    }

    fn broadcast(&mut self, frame: &Frame) {
        self.subscribers
            .retain(|s| match s.tx.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => match &s.on_full {
                    OnFull::Close(end) => {
                        end.store(end::OVERFLOW, Ordering::SeqCst);
                        false
                    }
                    OnFull::Skip(missed) => {
                        missed.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                },
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// Number of live socket subscribers (webhook feeds not counted: they
    /// neither use up the subscriber limit nor keep an actor from eviction).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers
            .iter()
            .filter(|s| matches!(s.on_full, OnFull::Close(_)))
            .count()
    }

    /// Number of live webhook feeds.
    pub fn feed_count(&self) -> usize {
        self.subscribers.len() - self.subscriber_count()
    }

    /// Adds a socket subscriber, which reports in `sent` the seq of each
    /// frame it has written; returns its id.
    pub fn subscribe(
        &mut self,
        tx: mpsc::Sender<Frame>,
        end: Arc<AtomicU8>,
        sent: watch::Receiver<u64>,
    ) -> u64 {
        self.add(tx, OnFull::Close(end), Some(sent))
    }

    /// Adds a webhook feed; frames it cannot take are counted in `missed`.
    pub fn subscribe_feed(&mut self, tx: mpsc::Sender<Frame>, missed: Arc<AtomicU64>) -> u64 {
        self.add(tx, OnFull::Skip(missed), None)
    }

    fn add(
        &mut self,
        tx: mpsc::Sender<Frame>,
        on_full: OnFull,
        sent: Option<watch::Receiver<u64>>,
    ) -> u64 {
        self.next_id += 1;
        self.subscribers.push(Subscriber {
            id: self.next_id,
            tx,
            on_full,
            sent,
        });
        self.next_id
    }

    /// The barrier for a reply to a request whose events end at `seq`;
    /// `state_seq` is the seq of the last state update appended, which
    /// earns the client `settle` once the sockets have written it.
    pub fn sent_barrier(&self, seq: u64, state_seq: u64, settle: Duration) -> SentBarrier {
        let watches: Vec<watch::Receiver<u64>> = self
            .subscribers
            .iter()
            .filter_map(|s| s.sent.clone())
            .collect();
        let unsent_state = state_seq <= seq && watches.iter().any(|w| *w.borrow() < state_seq);
        SentBarrier {
            watches,
            seq,
            settle: unsent_state.then_some(settle),
        }
    }

    /// Removes a subscriber.
    pub fn unsubscribe(&mut self, id: u64) {
        self.subscribers.retain(|s| s.id != id);
    }

    /// Drops every subscriber, telling sockets why (a webhook feed sends
    /// what it still holds and ends).
    pub fn close_all(&mut self, reason: u8) {
        for s in self.subscribers.drain(..) {
            if let OnFull::Close(end) = &s.on_full {
                end.store(reason, Ordering::SeqCst);
            }
        }
    }

    /// Drops subscribers whose socket has gone away.
    pub fn prune_closed(&mut self) {
        self.subscribers.retain(|s| !s.tx.is_closed());
    }
}

/// What a reply waits for before it goes out, so that it reaches the client
/// after the events it caused.
///
/// The client reads state such as `execution_status` from what its socket
/// delivered, and applies each frame on another thread: a reply that
/// overtakes a state update lets it read stale state (the reference writes
/// the events well before its reply). So the reply waits until every socket
/// has written the frames up to `seq` (or went away), for at most `limit`,
/// and when a state update was among them, `settle` longer for the client to
/// apply it. A lagging socket is not waited for past `limit`; nothing here
/// slows the writer.
#[derive(Debug)]
pub struct SentBarrier {
    watches: Vec<watch::Receiver<u64>>,
    seq: u64,
    settle: Option<Duration>,
}

impl SentBarrier {
    /// Waits as described on [`SentBarrier`].
    pub async fn wait(self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        for mut w in self.watches {
            let _ = tokio::time::timeout_at(deadline, w.wait_for(|s| *s >= self.seq)).await;
        }
        if let Some(settle) = self.settle {
            tokio::time::sleep(settle).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(seq: Option<u64>, t: &str) -> Frame {
        Frame {
            seq,
            text: Arc::from(t),
        }
    }

    #[test]
    fn frames_wait_for_durability_in_order() {
        let mut p = Publisher::new(0);
        let (tx, mut rx) = mpsc::channel(10);
        p.subscribe(tx, Arc::new(AtomicU8::new(0)), watch::channel(0).1);
        p.push(f(Some(1), "a"));
        p.push(f(None, "snap"));
        p.push(f(Some(2), "b"));
        assert!(rx.try_recv().is_err());
        p.mark_durable(1);
        assert_eq!(&*rx.try_recv().unwrap().text, "a");
        assert_eq!(&*rx.try_recv().unwrap().text, "snap");
        assert!(rx.try_recv().is_err());
        p.mark_durable(2);
        assert_eq!(&*rx.try_recv().unwrap().text, "b");
        p.push(f(None, "x"));
        assert_eq!(&*rx.try_recv().unwrap().text, "x");
    }

    #[test]
    fn slow_subscriber_is_dropped_not_waited_for() {
        let mut p = Publisher::new(0);
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let (fast_tx, mut fast_rx) = mpsc::channel(10);
        let slow_end = Arc::new(AtomicU8::new(0));
        p.subscribe(slow_tx, slow_end.clone(), watch::channel(0).1);
        p.subscribe(fast_tx, Arc::new(AtomicU8::new(0)), watch::channel(0).1);
        for i in 1..=3 {
            p.push(f(Some(i), "e"));
            p.mark_durable(i);
        }
        assert_eq!(slow_end.load(Ordering::SeqCst), end::OVERFLOW);
        assert_eq!(p.subscriber_count(), 1);
        for _ in 1..=3 {
            assert!(fast_rx.try_recv().is_ok());
        }
    }

    #[test]
    fn a_full_feed_is_kept_and_counts_what_it_missed() {
        let mut p = Publisher::new(0);
        let (feed_tx, mut feed_rx) = mpsc::channel(1);
        let missed = Arc::new(AtomicU64::new(0));
        p.subscribe_feed(feed_tx, missed.clone());
        let (sock_tx, _sock_rx) = mpsc::channel(10);
        p.subscribe(sock_tx, Arc::new(AtomicU8::new(0)), watch::channel(0).1);
        assert_eq!((p.subscriber_count(), p.feed_count()), (1, 1));
        for i in 1..=3 {
            p.push(f(Some(i), "e"));
            p.mark_durable(i);
        }
        assert_eq!(missed.load(Ordering::Relaxed), 2);
        assert_eq!(p.feed_count(), 1, "a feed is never dropped for being full");
        assert!(feed_rx.try_recv().is_ok());
        p.push(f(None, "snap"));
        assert_eq!(&*feed_rx.try_recv().unwrap().text, "snap");
        p.close_all(end::DELETED);
        assert!(feed_rx.try_recv().is_err());
        assert!(feed_rx.is_closed());
    }

    #[tokio::test]
    async fn a_reply_waits_for_each_socket_but_not_forever() {
        let mut p = Publisher::new(0);
        let (fast, fast_rx) = watch::channel(0u64);
        let (gone, gone_rx) = watch::channel(0u64);
        drop(gone);
        p.subscribe(
            mpsc::channel(4).0,
            Arc::new(AtomicU8::new(0)),
            fast_rx.clone(),
        );
        p.subscribe(mpsc::channel(4).0, Arc::new(AtomicU8::new(0)), gone_rx);
        p.subscribe_feed(mpsc::channel(4).0, Arc::new(AtomicU64::new(0)));
        let barrier = p.sent_barrier(5, 4, Duration::from_millis(30));
        assert!(
            barrier.settle.is_some(),
            "a state update not yet written earns the settle time"
        );
        assert_eq!(barrier.watches.len(), 2, "feeds are not waited for");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            fast.send_replace(5);
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let t = tokio::time::Instant::now();
        barrier.wait(Duration::from_secs(2)).await;
        assert!(*fast_rx.borrow() >= 5);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(50),
            "written, then settled: {took:?}"
        );
        assert!(
            took < Duration::from_secs(1),
            "a closed socket is not waited for: {took:?}"
        );

        let mut p = Publisher::new(0);
        let (_lagging, lagging_rx) = watch::channel(7u64);
        p.subscribe(mpsc::channel(4).0, Arc::new(AtomicU8::new(0)), lagging_rx);
        let barrier = p.sent_barrier(9, 3, Duration::from_secs(5));
        assert!(
            barrier.settle.is_none(),
            "the state update was already written"
        );
        let t = tokio::time::Instant::now();
        barrier.wait(Duration::from_millis(50)).await;
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a lagging socket is waited for at most the limit"
        );
    }
}
