//! Conversation events: the kinds this server emits, and their JSON exactly
//! as the strict Python client validates it (common fields `id`, `timestamp`,
//! `source` first, then the kind's fields in the reference's order, then
//! `kind` last; no extra keys).
//!
//! Events read back from storage that this server does not model are kept as
//! [`EventBody::Other`] so nothing is ever dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tools::content::Content;

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The agent (LLM output).
    Agent,
    /// The user.
    User,
    /// The environment (tools, state).
    Environment,
    /// A hook.
    Hook,
}

impl Source {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Agent => "agent",
            Source::User => "user",
            Source::Environment => "environment",
            Source::Hook => "hook",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Source> {
        Some(match s {
            "agent" => Source::Agent,
            "user" => Source::User,
            "environment" => Source::Environment,
            "hook" => Source::Hook,
            _ => return None,
        })
    }
}

/// A tool call as the LLM made it (`MessageToolCall`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageToolCall {
    /// Call id.
    pub id: String,
    /// Responses-API item id.
    #[serde(default)]
    pub responses_item_id: Option<String>,
    /// Tool name.
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
    /// `completion` or `responses`.
    #[serde(default = "completion")]
    pub origin: String,
}

fn completion() -> String {
    "completion".into()
}

/// An LLM message (`Message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user`, `system`, `assistant` or `tool`.
    pub role: String,
    /// Parts.
    #[serde(default)]
    pub content: Vec<Content>,
    /// Tool calls of an assistant message.
    #[serde(default)]
    pub tool_calls: Option<Vec<MessageToolCall>>,
    /// Tool call answered by a tool message.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// Tool name of a tool message.
    #[serde(default)]
    pub name: Option<String>,
    /// Reasoning text.
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// Thinking blocks.
    #[serde(default)]
    pub thinking_blocks: Vec<Value>,
    /// Responses-API reasoning item.
    #[serde(default)]
    pub responses_reasoning_item: Option<Value>,
}

impl Message {
    /// A message with text parts only.
    pub fn new(role: &str, content: Vec<Content>) -> Message {
        Message {
            role: role.into(),
            content,
            tool_calls: None,
            tool_call_id: None,
            name: None,
            reasoning_content: None,
            thinking_blocks: vec![],
            responses_reasoning_item: None,
        }
    }
}

/// `MessageEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    /// The message.
    pub llm_message: Message,
    /// LLM response id (agent messages).
    #[serde(default)]
    pub llm_response_id: Option<String>,
    /// Skills activated by this message.
    #[serde(default)]
    pub activated_skills: Vec<String>,
    /// Extra content appended for the LLM.
    #[serde(default)]
    pub extended_content: Vec<Content>,
    /// Sender label.
    #[serde(default)]
    pub sender: Option<String>,
    /// Critic result.
    #[serde(default)]
    pub critic_result: Option<Value>,
}

impl MessageEvent {
    /// A plain message: no response id, skills, extra content, sender or
    /// critic result.
    pub fn new(llm_message: Message) -> MessageEvent {
        MessageEvent {
            llm_message,
            llm_response_id: None,
            activated_skills: vec![],
            extended_content: vec![],
            sender: None,
            critic_result: None,
        }
    }
}

/// `ActionEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// Text the LLM produced alongside the call (first call of a response only).
    pub thought: Vec<Content>,
    /// Reasoning text.
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// Thinking blocks.
    #[serde(default)]
    pub thinking_blocks: Vec<Value>,
    /// Responses-API reasoning item.
    #[serde(default)]
    pub responses_reasoning_item: Option<Value>,
    /// The validated action (`null` when the call could not be validated).
    #[serde(default)]
    pub action: Option<Value>,
    /// Tool name.
    pub tool_name: String,
    /// Tool call id.
    pub tool_call_id: String,
    /// The call as the LLM made it (normalized arguments).
    pub tool_call: MessageToolCall,
    /// LLM response id.
    pub llm_response_id: String,
    /// `UNKNOWN`, `LOW`, `MEDIUM` or `HIGH`.
    #[serde(default = "unknown_risk")]
    pub security_risk: String,
    /// Critic result.
    #[serde(default)]
    pub critic_result: Option<Value>,
    /// Short summary.
    #[serde(default)]
    pub summary: Option<String>,
}

fn unknown_risk() -> String {
    "UNKNOWN".into()
}

/// `ObservationEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationEvent {
    /// Tool name.
    pub tool_name: String,
    /// Tool call id.
    pub tool_call_id: String,
    /// The tool's observation (with its own `kind`).
    pub observation: Value,
    /// Id of the action event.
    pub action_id: String,
}

/// `UserRejectObservation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRejectObservation {
    /// Tool name.
    pub tool_name: String,
    /// Tool call id.
    pub tool_call_id: String,
    /// Why.
    pub rejection_reason: String,
    /// `user` or `hook`.
    pub rejection_source: String,
    /// Id of the action event.
    pub action_id: String,
}

/// `AgentErrorEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentErrorEvent {
    /// Tool name.
    pub tool_name: String,
    /// Tool call id.
    pub tool_call_id: String,
    /// Error text (the LLM sees it as the tool result).
    pub error: String,
}

/// `SystemPromptEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemPromptEvent {
    /// The system prompt.
    pub system_prompt: Content,
    /// Tool definitions.
    pub tools: Vec<Value>,
    /// Per-conversation context (secret names, date).
    #[serde(default)]
    pub dynamic_context: Option<Content>,
}

/// `ConversationStateUpdateEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdate {
    /// State field name, or `full_state`.
    pub key: String,
    /// New value.
    pub value: Value,
}

/// `ConversationErrorEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationErrorEvent {
    /// Error class name.
    pub code: String,
    /// Details.
    pub detail: String,
}

/// `HookExecutionEvent`: one hook run (source `hook`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookExecutionEvent {
    /// `PreToolUse`, `PostToolUse`, `UserPromptSubmit`, `SessionStart`,
    /// `SessionEnd` or `Stop`.
    pub hook_event_type: String,
    /// The command that ran.
    pub hook_command: String,
    /// Tool of a PreToolUse/PostToolUse hook.
    #[serde(default)]
    pub tool_name: Option<String>,
    /// Exit code 0.
    pub success: bool,
    /// The hook blocked the operation.
    #[serde(default)]
    pub blocked: bool,
    /// Exit code (-1 when it did not exit on its own).
    pub exit_code: i64,
    /// Captured stdout (truncated).
    #[serde(default)]
    pub stdout: String,
    /// Captured stderr (truncated).
    #[serde(default)]
    pub stderr: String,
    /// The hook's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Context the hook added.
    #[serde(default)]
    pub additional_context: Option<String>,
    /// Why it could not run.
    #[serde(default)]
    pub error: Option<String>,
    /// The action it ran for.
    #[serde(default)]
    pub action_id: Option<String>,
    /// The user message it ran for.
    #[serde(default)]
    pub message_id: Option<String>,
    /// What the hook was given.
    #[serde(default)]
    pub hook_input: Option<Value>,
}

/// The kind-specific part of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// `SystemPromptEvent`.
    SystemPrompt(SystemPromptEvent),
    /// `MessageEvent`.
    Message(MessageEvent),
    /// `ActionEvent`.
    Action(ActionEvent),
    /// `ObservationEvent`.
    Observation(ObservationEvent),
    /// `UserRejectObservation`.
    UserReject(UserRejectObservation),
    /// `AgentErrorEvent`.
    AgentError(AgentErrorEvent),
    /// `ConversationStateUpdateEvent`.
    StateUpdate(StateUpdate),
    /// `ConversationErrorEvent`.
    ConversationError(ConversationErrorEvent),
    /// `PauseEvent`.
    Pause,
    /// `InterruptEvent`.
    Interrupt,
    /// `HookExecutionEvent`.
    HookExecution(HookExecutionEvent),
    /// Any other kind, kept verbatim.
    Other {
        /// Class name.
        kind: String,
        /// Fields after `source`.
        fields: Map<String, Value>,
    },
}

impl EventBody {
    /// Class name.
    pub fn kind(&self) -> &str {
        match self {
            EventBody::SystemPrompt(_) => "SystemPromptEvent",
            EventBody::Message(_) => "MessageEvent",
            EventBody::Action(_) => "ActionEvent",
            EventBody::Observation(_) => "ObservationEvent",
            EventBody::UserReject(_) => "UserRejectObservation",
            EventBody::AgentError(_) => "AgentErrorEvent",
            EventBody::StateUpdate(_) => "ConversationStateUpdateEvent",
            EventBody::ConversationError(_) => "ConversationErrorEvent",
            EventBody::Pause => "PauseEvent",
            EventBody::Interrupt => "InterruptEvent",
            EventBody::HookExecution(_) => "HookExecutionEvent",
            EventBody::Other { kind, .. } => kind,
        }
    }

    fn fields(&self) -> Map<String, Value> {
        let v = match self {
            EventBody::SystemPrompt(e) => serde_json::to_value(e),
            EventBody::Message(e) => serde_json::to_value(e),
            EventBody::Action(e) => serde_json::to_value(e),
            EventBody::Observation(e) => serde_json::to_value(e),
            EventBody::UserReject(e) => serde_json::to_value(e),
            EventBody::AgentError(e) => serde_json::to_value(e),
            EventBody::StateUpdate(e) => serde_json::to_value(e),
            EventBody::ConversationError(e) => serde_json::to_value(e),
            EventBody::HookExecution(e) => serde_json::to_value(e),
            EventBody::Pause | EventBody::Interrupt => Ok(Value::Object(Map::new())),
            EventBody::Other { fields, .. } => return fields.clone(),
        };
        match v {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

/// Fully qualified class path of an event kind, for the `kind` search filter.
pub fn kind_module_path(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "SystemPromptEvent" => "openhands.sdk.event.llm_convertible.system.SystemPromptEvent",
        "MessageEvent" => "openhands.sdk.event.llm_convertible.message.MessageEvent",
        "ActionEvent" => "openhands.sdk.event.llm_convertible.action.ActionEvent",
        "ObservationEvent" => "openhands.sdk.event.llm_convertible.observation.ObservationEvent",
        "UserRejectObservation" => {
            "openhands.sdk.event.llm_convertible.observation.UserRejectObservation"
        }
        "AgentErrorEvent" => "openhands.sdk.event.llm_convertible.observation.AgentErrorEvent",
        "ConversationStateUpdateEvent" => {
            "openhands.sdk.event.conversation_state.ConversationStateUpdateEvent"
        }
        "ConversationErrorEvent" => "openhands.sdk.event.conversation_error.ConversationErrorEvent",
        "PauseEvent" => "openhands.sdk.event.user_action.PauseEvent",
        "InterruptEvent" => "openhands.sdk.event.user_action.InterruptEvent",
        "Condensation" => "openhands.sdk.event.condenser.Condensation",
        "CondensationRequest" => "openhands.sdk.event.condenser.CondensationRequest",
        "CondensationSummaryEvent" => "openhands.sdk.event.condenser.CondensationSummaryEvent",
        "HookExecutionEvent" => "openhands.sdk.event.hook_execution.HookExecutionEvent",
        "LLMCompletionLogEvent" => "openhands.sdk.event.llm_completion_log.LLMCompletionLogEvent",
        "StreamingDeltaEvent" => "openhands.sdk.event.streaming_delta.StreamingDeltaEvent",
        _ => return None,
    })
}

/// Whether an event of `kind` matches a `kind` filter: the reference's fully
/// qualified class path, or (beyond the reference) the bare class name.
pub fn kind_matches(kind: &str, filter: &str) -> bool {
    if filter.contains('.') {
        kind_module_path(kind) == Some(filter)
    } else {
        kind == filter
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Id (hyphenated UUID text).
    pub id: String,
    /// Naive local time stamp.
    pub timestamp: String,
    /// Producer.
    pub source: Source,
    /// Kind and fields.
    pub body: EventBody,
}

impl Event {
    /// The JSON object: common fields, the kind's fields, `kind` last.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("timestamp".into(), Value::String(self.timestamp.clone()));
        m.insert("source".into(), Value::String(self.source.as_str().into()));
        m.extend(self.body.fields());
        m.insert("kind".into(), Value::String(self.body.kind().to_string()));
        Value::Object(m)
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// Parses an event object (as stored or as a client sends it).
    pub fn from_value(v: Value) -> Result<Event, String> {
        let Value::Object(mut m) = v else {
            return Err("event must be an object".into());
        };
        let take_str = |m: &mut Map<String, Value>, k: &str| -> Result<String, String> {
            match m.shift_remove(k) {
                Some(Value::String(s)) => Ok(s),
                _ => Err(format!("event field '{k}' must be a string")),
            }
        };
        let id = take_str(&mut m, "id")?;
        let timestamp = take_str(&mut m, "timestamp")?;
        let source = Source::parse(&take_str(&mut m, "source")?).ok_or("unknown event source")?;
        let kind = take_str(&mut m, "kind")?;
        let fields = Value::Object(m);
        fn de<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        let body = match kind.as_str() {
            "SystemPromptEvent" => EventBody::SystemPrompt(de(fields)?),
            "MessageEvent" => EventBody::Message(de(fields)?),
            "ActionEvent" => EventBody::Action(de(fields)?),
            "ObservationEvent" => EventBody::Observation(de(fields)?),
            "UserRejectObservation" => EventBody::UserReject(de(fields)?),
            "AgentErrorEvent" => EventBody::AgentError(de(fields)?),
            "ConversationStateUpdateEvent" => EventBody::StateUpdate(de(fields)?),
            "ConversationErrorEvent" => EventBody::ConversationError(de(fields)?),
            "PauseEvent" => EventBody::Pause,
            "InterruptEvent" => EventBody::Interrupt,
            "HookExecutionEvent" => EventBody::HookExecution(de(fields)?),
            _ => EventBody::Other {
                kind,
                fields: match fields {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
            },
        };
        Ok(Event {
            id,
            timestamp,
            source,
            body,
        })
    }

    /// Parses event JSON text.
    pub fn from_json(text: &str) -> Result<Event, String> {
        Event::from_value(serde_json::from_str(text).map_err(|e| e.to_string())?)
    }
}

/// Lower-cased searchable text of a message event (text parts, extended
/// content and reasoning), for the `body` search filter.
pub fn message_search_text(event_json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(event_json).ok()?;
    let mut out = String::new();
    let mut push_texts = |list: Option<&Value>| {
        if let Some(Value::Array(items)) = list {
            for it in items {
                if let Some(t) = it.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                    out.push('\n');
                }
            }
        }
    };
    push_texts(v.get("llm_message").and_then(|m| m.get("content")));
    push_texts(v.get("extended_content"));
    if let Some(r) = v
        .get("llm_message")
        .and_then(|m| m.get("reasoning_content"))
        .and_then(Value::as_str)
    {
        out.push_str(r);
    }
    Some(out.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kind_is_last_and_round_trips() {
        let e = Event {
            id: "e1".into(),
            timestamp: "2026-01-01T00:00:00.000000".into(),
            source: Source::User,
            body: EventBody::Message(MessageEvent::new(Message::new(
                "user",
                vec![Content::text("hi".to_string())],
            ))),
        };
        let v = e.to_value();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "timestamp",
                "source",
                "llm_message",
                "llm_response_id",
                "activated_skills",
                "extended_content",
                "sender",
                "critic_result",
                "kind"
            ]
        );
        assert_eq!(
            v["llm_message"]["content"][0],
            json!({"cache_prompt": false, "type": "text", "text": "hi"})
        );
        assert_eq!(Event::from_value(v).unwrap(), e);
        assert_eq!(message_search_text(&e.to_json()).unwrap().trim(), "hi");
    }

    #[test]
    fn unknown_kinds_are_kept() {
        let v = json!({"id": "x", "timestamp": "t", "source": "environment", "foo": 1, "kind": "Condensation"});
        let e = Event::from_value(v.clone()).unwrap();
        assert_eq!(e.to_value(), v);
        assert!(kind_matches(
            "ActionEvent",
            "openhands.sdk.event.llm_convertible.action.ActionEvent"
        ));
        assert!(kind_matches("ActionEvent", "ActionEvent"));
        assert!(!kind_matches(
            "ActionEvent",
            "openhands.sdk.event.ActionEvent"
        ));
    }
}
