//! Events → LLM messages, as the reference agent builds them: the system
//! prompt, user and agent messages, one assistant message per LLM response
//! (its tool calls grouped), tool results in call order; actions without a
//! result and results without an action are left out.

use std::collections::HashSet;

use serde_json::Value;

use crate::llm::{ChatMessage, ContentPart, Role, ToolCall};
use crate::model::event::{Event, EventBody, Message};
use crate::tools::content::Content;

/// Longest tool result text sent to the model; longer ones are cut in the middle.
pub const MAX_TOOL_TEXT: usize = 50_000;
/// Longest terminal rendering (the terminal's own limit).
pub const MAX_TERMINAL_TEXT: usize = 30_000;
/// Header of error observations.
pub const ERROR_HEADER: &str = "[An error occurred during execution.]\n";

/// Whether an event takes part in the LLM's view.
pub fn is_llm_event(e: &Event) -> bool {
    matches!(
        e.body,
        EventBody::SystemPrompt(_)
            | EventBody::Message(_)
            | EventBody::Action(_)
            | EventBody::Observation(_)
            | EventBody::UserReject(_)
            | EventBody::AgentError(_)
    ) || crate::agent::condense::is_condensation(e)
}

/// Cuts `text` to `max` characters, keeping head and tail with a notice.
pub fn truncate_middle(text: &str, max: usize) -> String {
    if text.len() <= max {
        // No more bytes than `max`, so no more characters either.
        return text.to_string();
    }
    truncate_owned(text.to_string(), max)
}

/// [`truncate_middle`] of an owned text, which comes back as it is (no
/// copy) when it is short enough.
pub fn truncate_owned(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let n = text.chars().count();
    if n <= max {
        return text;
    }
    let notice = "\n<response clipped><NOTE>The middle of this output was removed to keep it short.</NOTE>\n";
    let keep = max.saturating_sub(notice.len());
    let head: String = text.chars().take(keep / 2).collect();
    let tail: String = text.chars().skip(n - (keep - keep / 2)).collect();
    format!("{head}{notice}{tail}")
}

fn content_parts(content: &[Content]) -> Vec<ContentPart> {
    content
        .iter()
        .flat_map(|c| match c {
            Content::Text(t) => vec![ContentPart::Text {
                text: t.text.clone(),
                cache_prompt: t.cache_prompt,
            }],
            Content::Image(i) => i
                .image_urls
                .iter()
                .map(|u| ContentPart::Image { url: u.clone() })
                .collect(),
        })
        .collect()
}

fn json_texts(v: Option<&Value>) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut images = vec![];
    if let Some(Value::Array(items)) = v {
        for it in items {
            match it.get("type").and_then(Value::as_str) {
                Some("image") => {
                    if let Some(Value::Array(urls)) = it.get("image_urls") {
                        images.extend(urls.iter().filter_map(Value::as_str).map(str::to_string));
                    }
                }
                _ => {
                    if let Some(t) = it.get("text").and_then(Value::as_str) {
                        text.push_str(t);
                    }
                }
            }
        }
    }
    (text, images)
}

/// The model's rendering of an observation JSON (any tool).
pub fn observation_parts(obs: &Value) -> Vec<ContentPart> {
    let is_error = obs
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut parts = vec![];
    if obs.get("kind").and_then(Value::as_str) == Some(crate::tools::task::OBSERVATION_KIND) {
        // The reference puts the task's id, type and status before everything else,
        // the error header included.
        parts.push(ContentPart::text(crate::tools::task::info_text(obs)));
    }
    if is_error {
        parts.push(ContentPart::text(ERROR_HEADER));
    }
    if obs.get("kind").and_then(Value::as_str) == Some(crate::mcp::tools::OBSERVATION_KIND) {
        // The reference sends each block of an MCP result as its own part
        // (the `[Tool … executed.]` line, then the server's blocks).
        if let Some(Value::Array(items)) = obs.get("content") {
            for it in items {
                let (text, images) = json_texts(Some(&Value::Array(vec![it.clone()])));
                if it.get("type").and_then(Value::as_str) == Some("image") {
                    parts.extend(images.into_iter().map(|url| ContentPart::Image { url }));
                } else {
                    parts.push(ContentPart::text(text));
                }
            }
        }
        return parts;
    }
    let (text, images) = json_texts(obs.get("content"));
    let body = if obs.get("kind").and_then(Value::as_str) == Some("TerminalObservation") {
        terminal_text(obs, &text)
    } else {
        text
    };
    if !body.is_empty() || images.is_empty() {
        parts.push(ContentPart::text(body));
    }
    parts.extend(images.into_iter().map(|url| ContentPart::Image { url }));
    parts
}

fn terminal_text(obs: &Value, output: &str) -> String {
    let meta = obs.get("metadata");
    let s = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let mut out = format!("{}{}{}", s("prefix"), output, s("suffix"));
    if let Some(dir) = meta
        .and_then(|m| m.get("working_dir"))
        .and_then(Value::as_str)
    {
        out.push_str(&format!("\n[Current working directory: {dir}]"));
    }
    if let Some(py) = meta
        .and_then(|m| m.get("py_interpreter_path"))
        .and_then(Value::as_str)
    {
        out.push_str(&format!("\n[Python interpreter: {py}]"));
    }
    if let Some(code) = meta
        .and_then(|m| m.get("exit_code"))
        .and_then(Value::as_i64)
        && code != -1
    {
        out.push_str(&format!("\n[Command finished with exit code {code}]"));
    }
    truncate_owned(out, MAX_TERMINAL_TEXT)
}

fn clip_parts(parts: Vec<ContentPart>) -> Vec<ContentPart> {
    parts
        .into_iter()
        .map(|p| match p {
            ContentPart::Text { text, cache_prompt } => ContentPart::Text {
                text: truncate_owned(text, MAX_TOOL_TEXT),
                cache_prompt,
            },
            other => other,
        })
        .collect()
}

fn message_to_chat(m: &Message, extended: &[Content]) -> ChatMessage {
    let role = match m.role.as_str() {
        "system" => Role::System,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => Role::User,
    };
    let mut content = content_parts(&m.content);
    content.extend(content_parts(extended));
    let mut c = ChatMessage::new(role, content);
    c.reasoning_content = m.reasoning_content.clone();
    c.thinking_blocks = m.thinking_blocks.clone();
    c.tool_call_id = m.tool_call_id.clone();
    c.name = m.name.clone();
    if let Some(calls) = &m.tool_calls {
        c.tool_calls = calls
            .iter()
            .map(|t| ToolCall {
                id: t.id.clone(),
                name: t.name.clone(),
                arguments: t.arguments.clone(),
            })
            .collect();
    }
    c
}

/// Builds the LLM messages from the conversation's LLM events.
pub fn build_messages(events: &[Event]) -> Vec<ChatMessage> {
    // Only a condensed view needs rewriting (and a cached one is compacted,
    // so small); an uncondensed one is read in place rather than copied on
    // every step.
    let effective;
    let events = if events.iter().any(crate::agent::condense::is_condensation) {
        effective = crate::agent::condense::effective(events);
        effective.as_slice()
    } else {
        events
    };
    let answered: HashSet<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Observation(o) => Some(o.tool_call_id.as_str()),
            EventBody::UserReject(o) => Some(o.tool_call_id.as_str()),
            EventBody::AgentError(o) => Some(o.tool_call_id.as_str()),
            _ => None,
        })
        .collect();
    let asked: HashSet<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Action(a) => Some(a.tool_call_id.as_str()),
            _ => None,
        })
        .collect();
    let mut out: Vec<ChatMessage> = vec![];
    let mut open_response: Option<String> = None;
    // Calls on the wire whose results have not followed yet, and messages
    // recorded in between (sent while a tool ran, or while a later call
    // waited for its hooks): providers accept nothing between an assistant
    // turn's tool calls and their results, so those messages follow the
    // results, as they do in the reference (whose step holds the state
    // lock that `send_message` waits for).
    let mut awaiting: HashSet<&str> = HashSet::new();
    let mut deferred: Vec<ChatMessage> = vec![];
    for e in events {
        let result_of = match &e.body {
            EventBody::Observation(o) => Some(o.tool_call_id.as_str()),
            EventBody::AgentError(o) => Some(o.tool_call_id.as_str()),
            EventBody::UserReject(o) => Some(o.tool_call_id.as_str()),
            _ => None,
        };
        match &e.body {
            EventBody::SystemPrompt(s) => {
                open_response = None;
                let mut parts = content_parts(std::slice::from_ref(&s.system_prompt));
                if let Some(d) = &s.dynamic_context {
                    parts.extend(content_parts(std::slice::from_ref(d)));
                }
                out.push(ChatMessage::new(Role::System, parts));
            }
            EventBody::Message(m) => {
                let message = message_to_chat(&m.llm_message, &m.extended_content);
                if awaiting.is_empty() {
                    open_response = None;
                    out.push(message);
                } else {
                    deferred.push(message);
                }
            }
            EventBody::Action(a) => {
                if !answered.contains(a.tool_call_id.as_str()) {
                    continue;
                }
                let call = ToolCall {
                    id: a.tool_call.id.clone(),
                    name: a.tool_call.name.clone(),
                    arguments: a.tool_call.arguments.clone(),
                };
                awaiting.insert(a.tool_call_id.as_str());
                let same_response = open_response.as_deref() == Some(a.llm_response_id.as_str());
                match out.last_mut() {
                    Some(last) if same_response && last.role == Role::Assistant => {
                        last.tool_calls.push(call)
                    }
                    _ => {
                        let mut m = ChatMessage::new(Role::Assistant, content_parts(&a.thought));
                        m.tool_calls = vec![call];
                        m.reasoning_content = a.reasoning_content.clone();
                        m.thinking_blocks = a.thinking_blocks.clone();
                        out.push(m);
                        open_response = Some(a.llm_response_id.clone());
                    }
                }
            }
            EventBody::Observation(o) => {
                if !asked.contains(o.tool_call_id.as_str()) {
                    continue;
                }
                let mut m =
                    ChatMessage::new(Role::Tool, clip_parts(observation_parts(&o.observation)));
                m.tool_call_id = Some(o.tool_call_id.clone());
                m.name = Some(o.tool_name.clone());
                out.push(m);
            }
            EventBody::AgentError(o) => {
                if !asked.contains(o.tool_call_id.as_str()) {
                    continue;
                }
                out.push(ChatMessage::tool_result(
                    o.tool_call_id.clone(),
                    o.tool_name.clone(),
                    truncate_middle(&o.error, MAX_TOOL_TEXT),
                ));
            }
            EventBody::UserReject(o) => {
                if !asked.contains(o.tool_call_id.as_str()) {
                    continue;
                }
                out.push(ChatMessage::tool_result(
                    o.tool_call_id.clone(),
                    o.tool_name.clone(),
                    format!("Action rejected: {}", o.rejection_reason),
                ));
            }
            _ => {}
        }
        if let Some(id) = result_of
            && asked.contains(id)
            && awaiting.remove(id)
            && awaiting.is_empty()
            && !deferred.is_empty()
        {
            out.append(&mut deferred);
            open_response = None;
        }
    }
    out.append(&mut deferred);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::*;
    use serde_json::json;

    fn ev(body: EventBody) -> Event {
        Event {
            id: "x".into(),
            timestamp: "t".into(),
            source: Source::Agent,
            body,
        }
    }

    fn action(call: &str, resp: &str) -> Event {
        ev(EventBody::Action(ActionEvent {
            thought: vec![Content::text("thinking")],
            reasoning_content: None,
            thinking_blocks: vec![],
            responses_reasoning_item: None,
            action: Some(json!({"command": "ls", "kind": "TerminalAction"})),
            tool_name: "terminal".into(),
            tool_call_id: call.into(),
            tool_call: MessageToolCall {
                id: call.into(),
                responses_item_id: None,
                name: "terminal".into(),
                arguments: "{}".into(),
                origin: "completion".into(),
            },
            llm_response_id: resp.into(),
            security_risk: "UNKNOWN".into(),
            critic_result: None,
            summary: None,
        }))
    }

    fn obs(call: &str) -> Event {
        ev(EventBody::Observation(ObservationEvent {
            tool_name: "terminal".into(),
            tool_call_id: call.into(),
            observation: json!({"content": [{"type": "text", "text": "out"}], "is_error": false, "command": "ls",
                "exit_code": 0, "metadata": {"exit_code": 0, "working_dir": "/w", "prefix": "", "suffix": "\n[The command completed with exit code 0.]"},
                "kind": "TerminalObservation"}),
            action_id: "a".into(),
        }))
    }

    #[test]
    fn groups_calls_and_drops_unanswered() {
        let events = vec![
            action("c1", "r1"),
            action("c2", "r1"),
            obs("c1"),
            obs("c2"),
            action("c3", "r2"),
        ];
        let msgs = build_messages(&events);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].tool_calls.len(), 2);
        assert_eq!(msgs[1].role, Role::Tool);
        let text = msgs[1].joined_text();
        assert!(text.starts_with("out\n[The command completed with exit code 0.]"));
        assert!(text.contains("[Current working directory: /w]"));
        assert!(text.ends_with("[Command finished with exit code 0]"));
    }

    #[test]
    fn a_message_between_calls_and_results_follows_the_results() {
        let user = || {
            let mut e = ev(EventBody::Message(MessageEvent::new(Message::new(
                "user",
                vec![Content::text("meanwhile")],
            ))));
            e.source = Source::User;
            e
        };
        // Sent while a tool ran, and while a later call of the same
        // response waited for its hooks.
        for events in [
            vec![
                action("c1", "r1"),
                action("c2", "r1"),
                user(),
                obs("c1"),
                obs("c2"),
            ],
            vec![
                action("c1", "r1"),
                user(),
                action("c2", "r1"),
                obs("c1"),
                obs("c2"),
            ],
        ] {
            let msgs = build_messages(&events);
            let roles: Vec<Role> = msgs.iter().map(|m| m.role).collect();
            assert_eq!(
                roles,
                [Role::Assistant, Role::Tool, Role::Tool, Role::User],
                "{:?}",
                events.iter().map(|e| e.body.kind()).collect::<Vec<_>>()
            );
            assert_eq!(msgs[0].tool_calls.len(), 2);
        }
        // Without results (not yet answered) the calls are left out and
        // the message keeps its place.
        let msgs = build_messages(&[action("c1", "r1"), user()]);
        assert_eq!(
            msgs.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::User]
        );
    }

    #[test]
    fn truncation_keeps_both_ends() {
        let t = format!("{}{}", "a".repeat(60_000), "z");
        let cut = truncate_middle(&t, 1000);
        assert!(cut.chars().count() <= 1000);
        assert!(cut.starts_with('a') && cut.ends_with('z'));
    }
}
