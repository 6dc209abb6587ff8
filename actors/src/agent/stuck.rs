//! Stuck detection: the agent repeating itself with no progress, judged on
//! the events since the last user message (at most the last 20), ignoring
//! ids and time stamps, as the reference does:
//! - the same action followed by the same observation 4 times;
//! - the same action followed by an error 3 times;
//! - 3 agent messages in a row;
//! - two action/observation pairs alternating 6 times.

use serde_json::Value;

use crate::model::event::{Event, EventBody, Source};

const WINDOW: usize = 20;

/// A comparable digest of one step: the action and what it produced.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Pair {
        action: String,
        result: String,
        error: bool,
    },
    AgentMessage,
    Other,
}

fn action_key(tool: &str, action: &Option<Value>, args: &str) -> String {
    match action {
        Some(a) => format!("{tool}:{a}"),
        None => format!("{tool}:{args}"),
    }
}

fn observation_key(v: &Value) -> String {
    v.get("content").map(|c| c.to_string()).unwrap_or_default()
}

fn steps(events: &[Event]) -> Vec<Step> {
    let mut out = vec![];
    let mut pending: Option<(String, String)> = None;
    for e in events {
        match &e.body {
            EventBody::Action(a) => {
                pending = Some((
                    a.tool_call_id.clone(),
                    action_key(&a.tool_name, &a.action, &a.tool_call.arguments),
                ));
            }
            EventBody::Observation(o) => {
                if let Some((id, key)) = pending.take()
                    && id == o.tool_call_id
                {
                    out.push(Step::Pair {
                        action: key,
                        result: observation_key(&o.observation),
                        error: false,
                    });
                }
            }
            EventBody::AgentError(o) => {
                if let Some((id, key)) = pending.take()
                    && id == o.tool_call_id
                {
                    out.push(Step::Pair {
                        action: key,
                        result: o.error.clone(),
                        error: true,
                    });
                }
            }
            EventBody::Message(_) if e.source == Source::Agent => out.push(Step::AgentMessage),
            EventBody::Message(_) => out.push(Step::Other),
            _ => {}
        }
    }
    out
}

/// Whether the events since the last user message show a stuck agent.
pub fn is_stuck(events: &[Event]) -> bool {
    let since_user = events
        .iter()
        .rposition(|e| e.source == Source::User && matches!(e.body, EventBody::Message(_)))
        .map(|i| i + 1)
        .unwrap_or(0);
    let recent = &events[since_user..];
    let recent = &recent[recent.len().saturating_sub(WINDOW)..];
    let s = steps(recent);
    if s.len() >= 4 {
        let last = &s[s.len() - 4..];
        if matches!(last[0], Step::Pair { error: false, .. }) && last.iter().all(|x| x == &last[0])
        {
            return true;
        }
    }
    // Same action, each time ending in an error (the error texts may differ).
    if s.len() >= 3 {
        let last = &s[s.len() - 3..];
        if let Step::Pair {
            action,
            error: true,
            ..
        } = &last[0]
            && last
                .iter()
                .all(|x| matches!(x, Step::Pair { action: a, error: true, .. } if a == action))
        {
            return true;
        }
    }
    if s.len() >= 3 && s[s.len() - 3..].iter().all(|x| *x == Step::AgentMessage) {
        return true;
    }
    if s.len() >= 6 {
        let last = &s[s.len() - 6..];
        let (a, b) = (&last[0], &last[1]);
        if matches!(a, Step::Pair { .. })
            && matches!(b, Step::Pair { .. })
            && a != b
            && last
                .iter()
                .enumerate()
                .all(|(i, x)| x == if i % 2 == 0 { a } else { b })
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::*;
    use crate::tools::content::Content;
    use serde_json::json;

    fn ev(source: Source, body: EventBody) -> Event {
        Event {
            id: "i".into(),
            timestamp: "t".into(),
            source,
            body,
        }
    }

    fn pair(n: usize, cmd: &str, out: &str) -> Vec<Event> {
        let id = format!("c{n}");
        vec![
            ev(
                Source::Agent,
                EventBody::Action(ActionEvent {
                    thought: vec![],
                    reasoning_content: None,
                    thinking_blocks: vec![],
                    responses_reasoning_item: None,
                    action: Some(json!({"command": cmd, "kind": "TerminalAction"})),
                    tool_name: "terminal".into(),
                    tool_call_id: id.clone(),
                    tool_call: MessageToolCall {
                        id: id.clone(),
                        responses_item_id: None,
                        name: "terminal".into(),
                        arguments: "{}".into(),
                        origin: "completion".into(),
                    },
                    llm_response_id: format!("r{n}"),
                    security_risk: "UNKNOWN".into(),
                    critic_result: None,
                    summary: None,
                }),
            ),
            ev(
                Source::Environment,
                EventBody::Observation(ObservationEvent {
                    tool_name: "terminal".into(),
                    tool_call_id: id,
                    observation: json!({"content": [{"type": "text", "text": out}], "kind": "TerminalObservation"}),
                    action_id: "a".into(),
                }),
            ),
        ]
    }

    fn user() -> Event {
        ev(
            Source::User,
            EventBody::Message(MessageEvent::new(Message::new(
                "user",
                vec![Content::text("go")],
            ))),
        )
    }

    #[test]
    fn repeats_are_stuck_progress_is_not() {
        let mut e = vec![user()];
        for i in 0..3 {
            e.extend(pair(i, "ls", "same"));
        }
        assert!(!is_stuck(&e));
        e.extend(pair(3, "ls", "same"));
        assert!(is_stuck(&e));
        let mut p = vec![user()];
        for i in 0..6 {
            p.extend(pair(i, &format!("echo {i}"), &i.to_string()));
        }
        assert!(!is_stuck(&p));
        let mut alt = vec![user()];
        for i in 0..6 {
            let (c, o) = if i % 2 == 0 { ("a", "1") } else { ("b", "2") };
            alt.extend(pair(i, c, o));
        }
        assert!(is_stuck(&alt));
        e.push(user());
        assert!(!is_stuck(&e), "a new user message resets the window");
    }
}
