//! A FIFO bounded both by item count and by bytes, which sheds its oldest
//! items when either bound is exceeded. Webhook deliveries keep what they
//! have not sent yet here, so a downstream that fails or stalls costs a fixed
//! amount of memory however long it stays down. Pure data structure: no I/O,
//! no clock, no logging (callers report drops).

use std::collections::VecDeque;

/// Bytes a JSON array adds around its items: `[` and `]`.
const ARRAY_BRACKETS: usize = 2;

/// A queue bounded by count and bytes; drop-oldest.
#[derive(Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
    dropped: u64,
}

impl<T> BoundedQueue<T> {
    /// An empty queue holding at most `max_items` items and `max_bytes`
    /// bytes (both at least 1).
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        BoundedQueue {
            items: VecDeque::new(),
            bytes: 0,
            max_items: max_items.max(1),
            max_bytes: max_bytes.max(1),
            dropped: 0,
        }
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Items dropped since the queue was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends an item of `size` bytes; returns how many old items were
    /// dropped to stay within the bounds (an item larger than the byte
    /// bound on its own is dropped too).
    pub fn push_back(&mut self, item: T, size: usize) -> usize {
        self.items.push_back((item, size));
        self.bytes += size;
        self.trim()
    }

    /// Puts items taken with [`Self::take_batch`] back at the front, in
    /// their order, after a failed delivery; returns how many items were
    /// dropped (the oldest go first, so those are the ones put back).
    pub fn requeue_front(&mut self, batch: Vec<(T, usize)>) -> usize {
        for (item, size) in batch.into_iter().rev() {
            self.bytes += size;
            self.items.push_front((item, size));
        }
        self.trim()
    }

    /// Removes and returns the oldest item for which `pick` holds.
    pub fn take_first(&mut self, mut pick: impl FnMut(&T) -> bool) -> Option<(T, usize)> {
        let at = self.items.iter().position(|(item, _)| pick(item))?;
        let taken = self.items.remove(at)?;
        self.bytes -= taken.1;
        Some(taken)
    }

    /// Removes up to `max_items` of the oldest items whose JSON array
    /// (`[a,b,…]`) stays within `max_bytes`. The first item is always taken,
    /// however large, so that one big item cannot block the queue.
    pub fn take_batch(&mut self, max_items: usize, max_bytes: usize) -> Vec<(T, usize)> {
        let mut count = 0;
        let mut body = ARRAY_BRACKETS;
        for (_, size) in &self.items {
            if count >= max_items.max(1) {
                break;
            }
            let comma = usize::from(count > 0);
            if count > 0 && body + comma + size > max_bytes {
                break;
            }
            body += comma + size;
            count += 1;
        }
        let batch: Vec<(T, usize)> = self.items.drain(..count).collect();
        self.bytes -= batch.iter().map(|(_, s)| s).sum::<usize>();
        batch
    }

    /// Removes everything (for a final report of what could not be sent).
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        self.bytes = 0;
        n
    }

    fn trim(&mut self) -> usize {
        let mut dropped = 0;
        while self.items.len() > self.max_items || self.bytes > self.max_bytes {
            let Some((_, size)) = self.items.pop_front() else {
                break;
            };
            self.bytes -= size;
            dropped += 1;
        }
        self.dropped += dropped as u64;
        dropped
    }
}

/// Whether a running total of dropped items just reached a point worth a
/// log line: the first drop, then every hundredth.
pub fn worth_reporting(before: u64, after: u64) -> bool {
    after > before && (before == 0 || after / 100 > before / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(max_items: usize, max_bytes: usize) -> BoundedQueue<u32> {
        BoundedQueue::new(max_items, max_bytes)
    }

    #[test]
    fn count_bound_drops_the_oldest() {
        let mut queue = q(3, 1000);
        for i in 0..5 {
            queue.push_back(i, 10);
        }
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.dropped(), 2);
        let left: Vec<u32> = queue
            .take_batch(10, 1000)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(left, vec![2, 3, 4]);
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn byte_bound_drops_the_oldest_and_oversized_items() {
        let mut queue = q(100, 25);
        queue.push_back(1, 10);
        queue.push_back(2, 10);
        assert_eq!(queue.push_back(3, 10), 1, "30 bytes > 25: the oldest goes");
        assert_eq!(queue.bytes(), 20);
        assert_eq!(queue.push_back(4, 40), 3, "alone over the bound: all go");
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn requeue_keeps_order_and_sheds_the_requeued_first() {
        let mut queue = q(4, 1000);
        for i in 0..3 {
            queue.push_back(i, 1);
        }
        let batch = queue.take_batch(3, 1000);
        for i in 3..6 {
            queue.push_back(i, 1);
        }
        assert_eq!(queue.requeue_front(batch), 2);
        let all: Vec<u32> = queue
            .take_batch(10, 1000)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(all, vec![2, 3, 4, 5]);
    }

    #[test]
    fn batches_respect_count_and_bytes_but_always_take_one() {
        let mut queue = q(100, 10_000);
        for (i, size) in [(1, 4), (2, 4), (3, 4), (4, 50), (5, 1)] {
            queue.push_back(i, size);
        }
        // [a,b] = 2 + 4 + 1 + 4 = 11 bytes; a third would make 16.
        let ids = |b: Vec<(u32, usize)>| b.into_iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(ids(queue.take_batch(5, 11)), vec![1, 2]);
        assert_eq!(ids(queue.take_batch(1, 1000)), vec![3]);
        assert_eq!(
            ids(queue.take_batch(5, 11)),
            vec![4],
            "oversized goes alone"
        );
        assert_eq!(ids(queue.take_batch(5, 11)), vec![5]);
        assert!(queue.take_batch(5, 11).is_empty());
    }

    #[test]
    fn take_first_skips_what_the_caller_rejects() {
        let mut queue = q(10, 100);
        for i in 0..4 {
            queue.push_back(i, 2);
        }
        assert_eq!(queue.take_first(|x| *x % 2 == 1), Some((1, 2)));
        assert_eq!(queue.bytes(), 6);
        assert_eq!(queue.take_first(|x| *x > 10), None);
        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn drops_are_reported_first_then_per_hundred() {
        assert!(worth_reporting(0, 1));
        assert!(!worth_reporting(1, 50));
        assert!(worth_reporting(99, 100));
        assert!(!worth_reporting(100, 150));
        assert!(worth_reporting(150, 260));
        assert!(!worth_reporting(5, 5));
    }
}
