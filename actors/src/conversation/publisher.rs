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
//! No I/O and no actix here: the actor drives it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use tokio::sync::mpsc;

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

    /// Adds a socket subscriber; returns its id.
    pub fn subscribe(&mut self, tx: mpsc::Sender<Frame>, end: Arc<AtomicU8>) -> u64 {
        self.add(tx, OnFull::Close(end))
    }

    /// Adds a webhook feed; frames it cannot take are counted in `missed`.
    pub fn subscribe_feed(&mut self, tx: mpsc::Sender<Frame>, missed: Arc<AtomicU64>) -> u64 {
        self.add(tx, OnFull::Skip(missed))
    }

    fn add(&mut self, tx: mpsc::Sender<Frame>, on_full: OnFull) -> u64 {
        self.next_id += 1;
        self.subscribers.push(Subscriber {
            id: self.next_id,
            tx,
            on_full,
        });
        self.next_id
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
        p.subscribe(tx, Arc::new(AtomicU8::new(0)));
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
        p.subscribe(slow_tx, slow_end.clone());
        p.subscribe(fast_tx, Arc::new(AtomicU8::new(0)));
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
        p.subscribe(sock_tx, Arc::new(AtomicU8::new(0)));
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
}
