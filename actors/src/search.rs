//! Reads of a conversation's event log for REST search, counting and socket
//! replay. Pages cost O(page) for unfiltered walks: the log is a keyed range
//! in seq order, and filters on kind, source and time use the stored header
//! without parsing JSON. Damaged entries are skipped and logged, never fatal.

use crate::ids::Uuid;
use crate::model::event::{Source, kind_matches, message_search_text};
use crate::store::{Store, StoreError, StoredEvent};

/// Filters of `/events/search` and `/events/count`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Class name or fully qualified class path.
    pub kind: Option<String>,
    /// Producer.
    pub source: Option<Source>,
    /// Case-insensitive text inside message events.
    pub body: Option<String>,
    /// Time stamp ≥ (naive local, event format).
    pub timestamp_gte: Option<String>,
    /// Time stamp < (naive local, event format).
    pub timestamp_lt: Option<String>,
}

impl EventFilter {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.source.is_none()
            && self.body.is_none()
            && self.timestamp_gte.is_none()
            && self.timestamp_lt.is_none()
    }

    /// Whether an event passes every filter.
    pub fn matches(&self, e: &StoredEvent) -> bool {
        if let Some(k) = &self.kind
            && !kind_matches(e.kind(), k)
        {
            return false;
        }
        if let Some(s) = self.source
            && e.source() != s
        {
            return false;
        }
        if let Some(t) = &self.timestamp_gte
            && e.timestamp() < t.as_str()
        {
            return false;
        }
        if let Some(t) = &self.timestamp_lt
            && e.timestamp() >= t.as_str()
        {
            return false;
        }
        if let Some(b) = &self.body {
            if e.kind() != "MessageEvent" {
                return false;
            }
            match message_search_text(e.json()) {
                Some(text) => {
                    if !text.contains(&b.to_lowercase()) {
                        return false;
                    }
                }
                None => return false,
            }
        }
        true
    }
}

/// One page of events.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Matching events, in the requested order.
    pub items: Vec<StoredEvent>,
    /// Id of the first event of the next page.
    pub next_page_id: Option<String>,
}

impl EventPage {
    /// `{"items":[...],"next_page_id":...}` built from the stored JSON
    /// without re-serializing the events.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(
            64 + self.items.iter().map(|e| e.json().len() + 1).sum::<usize>(),
        );
        out.push_str("{\"items\":[");
        for (i, e) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e.json());
        }
        out.push_str("],\"next_page_id\":");
        match &self.next_page_id {
            Some(id) => out.push_str(&serde_json::Value::String(id.clone()).to_string()),
            None => out.push_str("null"),
        }
        out.push('}');
        out
    }
}

fn skip_damaged(conv: &Uuid, r: Result<StoredEvent, StoreError>) -> Option<StoredEvent> {
    match r {
        Ok(e) => Some(e),
        Err(e) => {
            log::warn!("conversation {conv}: skipping a damaged event: {e}");
            None
        }
    }
}

/// A page of events: starting at the event `page_id` (the start of the log
/// when absent or unknown), `limit` matches, in ascending or descending
/// log order.
pub fn search(
    store: &Store,
    conv: &Uuid,
    filter: &EventFilter,
    page_id: Option<&str>,
    limit: usize,
    descending: bool,
) -> Result<EventPage, StoreError> {
    let start = match page_id
        .map(|p| store.event_seq(conv, p))
        .transpose()?
        .flatten()
    {
        Some(seq) => seq,
        None if descending => u64::MAX,
        None => 1,
    };
    let mut page = EventPage::default();
    for e in store
        .events_from(conv, start, descending)
        .filter_map(|r| skip_damaged(conv, r))
    {
        if !filter.matches(&e) {
            continue;
        }
        if page.items.len() == limit {
            page.next_page_id = Some(e.id().to_string());
            break;
        }
        page.items.push(e);
    }
    Ok(page)
}

/// Number of matching events (O(1) without filters).
pub fn count(store: &Store, conv: &Uuid, filter: &EventFilter) -> Result<u64, StoreError> {
    if filter.is_empty() {
        return store.last_seq(conv);
    }
    Ok(store
        .events_from(conv, 1, false)
        .filter_map(|r| skip_damaged(conv, r))
        .filter(|e| filter.matches(e))
        .count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EncodedEvent;

    fn fill(store: &Store, conv: &Uuid, n: u64) {
        let evs: Vec<EncodedEvent> = (1..=n)
            .map(|i| {
                let kind = if i % 2 == 0 { "MessageEvent" } else { "ActionEvent" };
                let json = format!(
                    r#"{{"id":"e{i}","timestamp":"t{i:03}","source":"agent","llm_message":{{"role":"user","content":[{{"type":"text","text":"Hello {i}"}}]}},"kind":"{kind}"}}"#
                );
                EncodedEvent::new(i, &format!("e{i}"), Source::Agent, kind, &format!("t{i:03}"), &json)
            })
            .collect();
        store.append(conv, &evs, None).unwrap();
    }

    #[test]
    fn paging_both_ways() {
        let s = Store::temporary().unwrap();
        let c = Uuid::new_v4();
        fill(&s, &c, 7);
        let f = EventFilter::default();
        let p1 = search(&s, &c, &f, None, 3, false).unwrap();
        assert_eq!(
            p1.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(p1.next_page_id.as_deref(), Some("e4"));
        let p3 = search(&s, &c, &f, Some("e7"), 3, false).unwrap();
        assert_eq!(p3.items.len(), 1);
        assert_eq!(p3.next_page_id, None);
        let d = search(&s, &c, &f, None, 2, true).unwrap();
        assert_eq!(
            d.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![7, 6]
        );
        assert_eq!(d.next_page_id.as_deref(), Some("e5"));
        let unknown = search(&s, &c, &f, Some("nope"), 2, false).unwrap();
        assert_eq!(unknown.items[0].seq, 1);
        let v: serde_json::Value = serde_json::from_str(&p1.to_json()).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn filters() {
        let s = Store::temporary().unwrap();
        let c = Uuid::new_v4();
        fill(&s, &c, 10);
        let f = EventFilter {
            kind: Some("openhands.sdk.event.llm_convertible.message.MessageEvent".into()),
            ..Default::default()
        };
        assert_eq!(count(&s, &c, &f).unwrap(), 5);
        let f = EventFilter {
            body: Some("hello 4".into()),
            ..Default::default()
        };
        assert_eq!(count(&s, &c, &f).unwrap(), 1);
        let f = EventFilter {
            timestamp_gte: Some("t003".into()),
            timestamp_lt: Some("t006".into()),
            ..Default::default()
        };
        assert_eq!(count(&s, &c, &f).unwrap(), 3);
        assert_eq!(count(&s, &c, &EventFilter::default()).unwrap(), 10);
    }
}
