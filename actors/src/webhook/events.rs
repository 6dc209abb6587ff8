//! The event feed of one conversation to one webhook: a subscriber of the
//! conversation actor's publisher (so it sees the durable events in log
//! order, plus the `full_state` snapshots and streaming deltas) and a task
//! that batches them into `POST {base_url}/events/{conversation hex id}`.
//!
//! The task never waits on the network while it reads its channel: the one
//! request in flight is polled next to the channel and the flush timer. So
//! the actor's `try_send` finds room, and the conversation never waits for
//! the webhook. Behaviour, per spec:
//! - a batch leaves when `event_buffer_size` events (or `max_batch_bytes`)
//!   are queued, or `flush_delay` after the first queued event (later events
//!   do not push that deadline back);
//! - a request carries at most `event_buffer_size` events and
//!   `max_batch_bytes` bytes (one larger event goes alone); one request is in
//!   flight at a time, and is retried `num_retries` times `retry_delay` apart;
//! - a batch that still failed goes back to the front of the queue and the
//!   feed waits for the next flush deadline before trying again (a failing
//!   service is not hammered once per new event);
//! - the queue keeps at most `max_queue_size` events and `max_queue_bytes`
//!   bytes; beyond that the oldest events are dropped with a warning;
//! - when the actor lets go of the feed (delete, eviction, shutdown, crash)
//!   the task sends what is queued, stopping at the first batch that fails
//!   for good, and ends.
//!
//! It must not block, and must not hold anything the actor needs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use super::queue::{BoundedQueue, worth_reporting};
use super::{Poster, Target};
use crate::conversation::publisher::Frame;
use crate::ids::Uuid;
use crate::metrics::Counters;

/// Frames the channel from the actor holds. The task drains it as frames
/// come, so it only fills if the task cannot run at all; blocks are
/// allocated lazily, so an idle feed costs little.
const CHANNEL_FRAMES: usize = 1024;

/// One webhook subscription of a conversation.
#[derive(Debug)]
pub struct EventFeed {
    /// Frames for the delivery task; the publisher keeps this.
    pub tx: mpsc::Sender<Frame>,
    /// Frames the publisher dropped because the channel was full.
    pub missed: Arc<AtomicU64>,
    /// The delivery task. It ends after its final flush once `tx` is
    /// dropped; awaiting it waits for that flush.
    pub task: JoinHandle<()>,
}

impl EventFeed {
    /// Spawns the delivery task on the current arbiter.
    pub fn start(
        target: Arc<Target>,
        poster: Poster,
        counters: Arc<Counters>,
        conversation: Uuid,
    ) -> EventFeed {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        let missed = Arc::new(AtomicU64::new(0));
        let delivery = Delivery {
            url: target.events_url(&conversation),
            conversation: conversation.simple(),
            queue: BoundedQueue::new(target.spec.max_queue_size, target.spec.max_queue_bytes),
            target,
            poster,
            counters,
            missed: missed.clone(),
            missed_total: 0,
            reported: 0,
            failing: false,
        };
        let task = actix::spawn(delivery.run(rx));
        EventFeed { tx, missed, task }
    }
}

type Sending = Pin<Box<dyn Future<Output = Result<(), String>>>>;
type Batch = Vec<(Arc<str>, usize)>;

struct Delivery {
    target: Arc<Target>,
    poster: Poster,
    counters: Arc<Counters>,
    url: String,
    conversation: String,
    queue: BoundedQueue<Arc<str>>,
    missed: Arc<AtomicU64>,
    missed_total: u64,
    /// Drops already logged (see [`worth_reporting`]).
    reported: u64,
    /// The last batch failed for good (its warning was logged).
    failing: bool,
}

/// Awaits the future in `slot`, or never when there is none.
async fn maybe<F: Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    match slot {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl Delivery {
    async fn run(mut self, mut rx: mpsc::Receiver<Frame>) {
        let spec = self.target.spec.clone();
        let mut open = true;
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        let mut sending: Option<Sending> = None;
        let mut in_flight: Batch = Vec::new();
        // Events the current flush still owes (a timer flush sends what
        // was queued when it fired, whatever the batch size).
        let mut owed = 0usize;
        // After a batch failed for good, wait for the next deadline.
        let mut backoff = false;
        loop {
            tokio::select! {
                biased;
                result = maybe(&mut sending) => {
                    sending = None;
                    let batch = std::mem::take(&mut in_flight);
                    self.count_outcome(&result);
                    if let Err(e) = result {
                        let n = batch.len();
                        self.queue.requeue_front(batch);
                        self.report_drops();
                        owed = 0;
                        backoff = true;
                        self.failed(n, &e);
                    }
                }
                () = maybe(&mut timer) => {
                    timer = None;
                    backoff = false;
                    owed = self.queue.len();
                }
                frame = rx.recv(), if open => match frame {
                    Some(frame) => {
                        let size = frame.text.len();
                        self.queue.push_back(frame.text, size);
                    }
                    None => open = false,
                },
            }
            self.count_missed();
            self.report_drops();
            if sending.is_some() {
                continue;
            }
            if !open {
                break;
            }
            let full = self.queue.len() >= spec.event_buffer_size
                || self.queue.bytes() >= spec.max_batch_bytes;
            if !self.queue.is_empty() && (owed > 0 || (full && !backoff)) {
                if owed == 0 {
                    // A full buffer flushes now; its deadline goes with it.
                    timer = None;
                }
                let batch = self
                    .queue
                    .take_batch(spec.event_buffer_size, spec.max_batch_bytes);
                owed = owed.saturating_sub(batch.len());
                sending = Some(self.send(&batch));
                in_flight = batch;
            }
            if timer.is_none() && !self.queue.is_empty() {
                timer = Some(Box::pin(tokio::time::sleep(spec.flush_delay())));
            }
        }
        self.final_flush().await;
    }

    fn send(&self, batch: &Batch) -> Sending {
        let mut body = String::with_capacity(2 + batch.iter().map(|(_, s)| s + 1).sum::<usize>());
        body.push('[');
        for (i, (text, _)) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(text);
        }
        body.push(']');
        let (poster, target, url) = (self.poster.clone(), self.target.clone(), self.url.clone());
        Box::pin(async move { poster.post(&target, &url, &body).await })
    }

    /// What is still queued when the actor let go of the feed: sent in
    /// batches until one fails for good; the rest is dropped.
    async fn final_flush(&mut self) {
        let spec = self.target.spec.clone();
        while !self.queue.is_empty() {
            let batch = self
                .queue
                .take_batch(spec.event_buffer_size, spec.max_batch_bytes);
            let result = self.send(&batch).await;
            self.count_outcome(&result);
            if let Err(e) = result {
                let lost = batch.len() + self.queue.clear();
                Counters::add(&self.counters.webhook_events_dropped, lost as u64);
                log::warn!(
                    "webhook {}: conversation {}: {lost} event(s) dropped at close: {e}",
                    self.target.label,
                    self.conversation
                );
                return;
            }
        }
    }

    fn count_missed(&mut self) {
        let n = self.missed.swap(0, Ordering::Relaxed);
        self.missed_total += n;
    }

    fn count_outcome(&mut self, result: &Result<(), String>) {
        let counter = match result {
            Ok(()) => &self.counters.webhook_event_deliveries,
            Err(_) => &self.counters.webhook_event_failures,
        };
        Counters::add(counter, 1);
        if result.is_ok() && std::mem::take(&mut self.failing) {
            log::info!(
                "webhook {}: conversation {}: delivering again",
                self.target.label,
                self.conversation
            );
        }
    }

    /// Logs a failed batch: at `warn` when deliveries were working, at
    /// `debug` while they keep failing (one line per conversation per
    /// flush delay would flood the log while a service is down).
    fn failed(&mut self, n: usize, why: &str) {
        if std::mem::replace(&mut self.failing, true) {
            log::debug!(
                "webhook {}: conversation {}: {n} event(s) still not delivered: {why}",
                self.target.label,
                self.conversation
            );
        } else {
            log::warn!(
                "webhook {}: conversation {}: {n} event(s) not delivered: {why}; kept and retried every flush_delay",
                self.target.label,
                self.conversation
            );
        }
    }

    fn report_drops(&mut self) {
        let total = self.queue.dropped() + self.missed_total;
        Counters::add(
            &self.counters.webhook_events_dropped,
            total.saturating_sub(self.reported),
        );
        if worth_reporting(self.reported, total) {
            let spec = &self.target.spec;
            log::warn!(
                "webhook {}: conversation {}: delivery is behind its bounds (max_queue_size {}, max_queue_bytes {}); {total} event(s) dropped so far, oldest first",
                self.target.label,
                self.conversation,
                spec.max_queue_size,
                spec.max_queue_bytes
            );
        }
        self.reported = total;
    }
}
