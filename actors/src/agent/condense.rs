//! Context condensation (the reference's `LLMSummarizingCondenser`): when
//! the agent's view grows past `max_size` events, the middle of it is
//! replaced by an LLM-written summary. A `Condensation` event records which
//! events are forgotten and the summary; the view applies it on every
//! build, so the log itself is never rewritten.
//!
//! Pure functions: planning a cut, applying condensations, and the
//! summarizing prompt. The actor performs the LLM call and the append.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::llm::ChatMessage;
use crate::model::event::{Event, EventBody, Message, MessageEvent, Source};
use crate::tools::content::Content;

/// Condenser settings read from `agent.condenser`.
#[derive(Debug, Clone, PartialEq)]
pub struct CondenserConfig {
    /// The summarizing LLM (JSON of the LLM object).
    pub llm: Value,
    /// Condense when the view holds more events than this.
    pub max_size: usize,
    /// Events always kept at the start.
    pub keep_first: usize,
    /// Skip a (soft) condensation that would forget less than this share.
    pub minimum_progress: f64,
}

impl CondenserConfig {
    /// The condenser of an agent, if it has a summarizing one.
    pub fn from_agent(condenser: Option<&Value>) -> Option<CondenserConfig> {
        let c = condenser?;
        if c.get("kind").and_then(Value::as_str) != Some("LLMSummarizingCondenser") {
            return None;
        }
        Some(CondenserConfig {
            llm: c.get("llm").cloned()?,
            max_size: c
                .get("max_size")
                .and_then(Value::as_u64)
                .unwrap_or(120)
                .max(4) as usize,
            keep_first: c.get("keep_first").and_then(Value::as_u64).unwrap_or(4) as usize,
            minimum_progress: c
                .get("minimum_progress")
                .and_then(Value::as_f64)
                .unwrap_or(0.1),
        })
    }
}

/// A condensation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Condensation {
    /// Forgotten event ids.
    pub forgotten: Vec<String>,
    /// The summary of what was forgotten (including earlier summaries).
    pub summary: Option<String>,
    /// Where the summary goes in the view.
    pub offset: Option<usize>,
}

impl Condensation {
    /// Reads a `Condensation` event.
    pub fn from_event(e: &Event) -> Option<Condensation> {
        let EventBody::Other { kind, fields } = &e.body else {
            return None;
        };
        if kind != "Condensation" {
            return None;
        }
        Some(Condensation {
            forgotten: fields
                .get("forgotten_event_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            summary: fields
                .get("summary")
                .and_then(Value::as_str)
                .map(str::to_string),
            offset: fields
                .get("summary_offset")
                .and_then(Value::as_u64)
                .map(|n| n as usize),
        })
    }

    /// The event body of a new condensation.
    pub fn body(
        forgotten: Vec<String>,
        summary: String,
        offset: usize,
        llm_response_id: String,
    ) -> EventBody {
        let mut fields = Map::new();
        fields.insert("forgotten_event_ids".into(), json!(forgotten));
        fields.insert("summary".into(), Value::String(summary));
        fields.insert("summary_offset".into(), json!(offset));
        fields.insert("llm_response_id".into(), Value::String(llm_response_id));
        EventBody::Other {
            kind: "Condensation".into(),
            fields,
        }
    }
}

/// Whether an event is a condensation.
pub fn is_condensation(e: &Event) -> bool {
    matches!(&e.body, EventBody::Other { kind, .. } if kind == "Condensation")
}

/// Drops from a cached view what no later view can show: the events any
/// condensation forgot, and the condensations older than the latest one
/// with a summary. `effective` gives the same result before and after, and
/// the cache of a condensed conversation stays as small as its view
/// instead of growing with its history.
pub fn compact(events: &mut Vec<Event>) {
    let mut forgotten: HashSet<String> = HashSet::new();
    let mut latest_summary = None;
    for (i, e) in events.iter().enumerate() {
        if let Some(c) = Condensation::from_event(e) {
            if c.summary.is_some() && c.offset.is_some() {
                latest_summary = Some(i);
            }
            forgotten.extend(c.forgotten);
        }
    }
    if forgotten.is_empty() && latest_summary.is_none() {
        return;
    }
    let mut i = 0;
    events.retain(|e| {
        let keep = if is_condensation(e) {
            latest_summary.is_none_or(|l| i >= l)
        } else {
            !forgotten.contains(&e.id)
        };
        i += 1;
        keep
    });
}

/// The view after applying every condensation: forgotten events removed,
/// the latest summary inserted (as a user message) at its offset.
pub fn effective(events: &[Event]) -> Vec<Event> {
    let mut forgotten: HashSet<String> = HashSet::new();
    let mut latest: Option<(String, usize, String)> = None;
    for e in events {
        if let Some(c) = Condensation::from_event(e) {
            if let (Some(s), Some(o)) = (c.summary, c.offset) {
                latest = Some((s, o, e.id.clone()));
            }
            forgotten.extend(c.forgotten);
        }
    }
    let mut out: Vec<Event> = events
        .iter()
        .filter(|e| !is_condensation(e) && !forgotten.contains(&e.id))
        .cloned()
        .collect();
    if let Some((summary, offset, id)) = latest {
        let at = offset.min(out.len());
        out.insert(
            at,
            Event {
                id: format!("{id}-summary"),
                timestamp: String::new(),
                source: Source::Environment,
                body: EventBody::Message(MessageEvent::new(Message::new(
                    "user",
                    vec![Content::text(summary)],
                ))),
            },
        );
    }
    out
}

fn is_result(e: &Event) -> bool {
    matches!(
        e.body,
        EventBody::Observation(_) | EventBody::AgentError(_) | EventBody::UserReject(_)
    )
}

/// Whether cutting before `i` would separate a tool result from its call or
/// two calls of one response.
fn splits_a_step(view: &[Event], i: usize, head: usize) -> bool {
    is_result(&view[i])
        || (i > head
            && matches!(view[i].body, EventBody::Action(_))
            && matches!(view[i - 1].body, EventBody::Action(_)))
}

/// The events to forget so that the view shrinks to about `target`
/// events: everything between the first `keep_first` and a tail, with the
/// cut moved so that no tool call is separated from its result. `None` when
/// the cut would be too small (`minimum` events).
pub fn plan(
    view: &[Event],
    keep_first: usize,
    target: usize,
    minimum: usize,
) -> Option<Vec<String>> {
    let n = view.len();
    let head = keep_first.min(n);
    let tail = target.saturating_sub(head + 1).max(1);
    if n <= head + tail {
        return None;
    }
    let mut start_tail = n - tail;
    // Never start the kept tail with a tool result whose call is forgotten,
    // nor end the forgotten part between calls of one response.
    while start_tail < n && splits_a_step(view, start_tail, head) {
        start_tail += 1;
    }
    let forgotten: Vec<String> = view[head..start_tail]
        .iter()
        .filter(|e| !e.id.ends_with("-summary"))
        .map(|e| e.id.clone())
        .collect();
    if forgotten.len() < minimum.max(1) {
        return None;
    }
    Some(forgotten)
}

/// Short text of one event for the summarizer.
fn event_text(e: &Event) -> String {
    let clip = |s: &str| crate::agent::view::truncate_middle(s, 2000);
    match &e.body {
        EventBody::Message(m) => {
            let text: Vec<&str> = m
                .llm_message
                .content
                .iter()
                .filter_map(|c| c.as_text())
                .collect();
            format!("{} message: {}", m.llm_message.role, clip(&text.join("\n")))
        }
        EventBody::Action(a) => format!("action {}: {}", a.tool_name, clip(&a.tool_call.arguments)),
        EventBody::Observation(o) => {
            let parts = crate::agent::view::observation_parts(&o.observation);
            let text: Vec<&str> = parts.iter().filter_map(|p| p.as_text()).collect();
            format!("result of {}: {}", o.tool_name, clip(&text.join("")))
        }
        EventBody::AgentError(o) => format!("error from {}: {}", o.tool_name, clip(&o.error)),
        EventBody::UserReject(o) => {
            format!("user rejected {}: {}", o.tool_name, o.rejection_reason)
        }
        _ => String::new(),
    }
}

/// The summarizing request: earlier summary plus the forgotten events.
pub fn prompt(previous_summary: Option<&str>, forgotten: &[&Event]) -> Vec<ChatMessage> {
    let mut body = String::new();
    if let Some(prev) = previous_summary {
        body.push_str("<PREVIOUS SUMMARY>\n");
        body.push_str(prev);
        body.push_str("\n</PREVIOUS SUMMARY>\n\n");
    }
    body.push_str("<EVENTS>\n");
    for e in forgotten {
        let t = event_text(e);
        if !t.is_empty() {
            body.push_str(&t);
            body.push_str("\n\n");
        }
    }
    body.push_str("</EVENTS>");
    vec![
        ChatMessage::system(
            "You keep the working memory of a software agent whose conversation grew too long. \
             Rewrite the earlier summary and the events below into one concise summary the agent can \
             continue from. Keep: the user's goals and constraints (USER_CONTEXT), the task list and \
             its status (TASK_TRACKING), what was done and verified (COMPLETED), what is left (PENDING), \
             the current state of the work (CURRENT_STATE), and important code facts: files, functions, \
             commands, errors (CODE_STATE). Be specific; drop chatter.",
        ),
        ChatMessage::user(body),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::*;

    fn msg(id: &str, role: &str) -> Event {
        Event {
            id: id.into(),
            timestamp: "t".into(),
            source: if role == "user" {
                Source::User
            } else {
                Source::Agent
            },
            body: EventBody::Message(MessageEvent::new(Message::new(
                role,
                vec![Content::text(id)],
            ))),
        }
    }

    #[test]
    fn plan_and_apply() {
        let view: Vec<Event> = (0..20).map(|i| msg(&format!("e{i}"), "user")).collect();
        let forgotten = plan(&view, 2, 8, 2).unwrap();
        assert_eq!(forgotten.first().unwrap(), "e2");
        assert_eq!(forgotten.len(), 20 - 2 - 5);
        let mut events = view.clone();
        events.push(Event {
            id: "c1".into(),
            timestamp: "t".into(),
            source: Source::Environment,
            body: Condensation::body(forgotten.clone(), "SUMMARY".into(), 2, "r".into()),
        });
        let eff = effective(&events);
        assert_eq!(eff.len(), 2 + 1 + 5);
        assert_eq!(eff[2].id, "c1-summary");
        assert!(plan(&eff, 2, 8, 2).is_none(), "already small enough");
    }

    fn condensation(id: &str, forgotten: &[&str], summary: &str) -> Event {
        Event {
            id: id.into(),
            timestamp: "t".into(),
            source: Source::Environment,
            body: Condensation::body(
                forgotten.iter().map(|s| s.to_string()).collect(),
                summary.into(),
                1,
                "r".into(),
            ),
        }
    }

    #[test]
    fn compact_keeps_the_effective_view() {
        let mut events: Vec<Event> = (0..10).map(|i| msg(&format!("e{i}"), "user")).collect();
        events.push(condensation("c1", &["e1", "e2", "e3"], "S1"));
        events.extend((10..14).map(|i| msg(&format!("e{i}"), "user")));
        events.push(condensation("c2", &["e4", "e5", "e6", "e7"], "S2"));
        events.push(msg("e14", "user"));
        let ids = |v: &[Event]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        let before = ids(&effective(&events));
        let mut compacted = events.clone();
        compact(&mut compacted);
        assert_eq!(ids(&effective(&compacted)), before);
        assert_eq!(
            ids(&compacted),
            ["e0", "e8", "e9", "e10", "e11", "e12", "e13", "c2", "e14"],
            "forgotten events and the older condensation are gone"
        );
        // Idempotent, and a view with no condensation is left alone.
        let again = compacted.clone();
        compact(&mut compacted);
        assert_eq!(ids(&compacted), ids(&again));
        let mut plain: Vec<Event> = (0..3).map(|i| msg(&format!("p{i}"), "user")).collect();
        compact(&mut plain);
        assert_eq!(plain.len(), 3);
    }
}
