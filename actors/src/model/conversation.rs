//! A conversation's durable record and the request bodies that create and
//! change it, with the JSON views the API shows of it: `ConversationInfo`
//! (REST), the `full_state` snapshot (WebSocket) and the sealed storage form.
//!
//! The record is owned and written by the conversation's actor; HTTP handlers
//! only read it. Nothing here does I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::agent::{Agent, AgentError, clean_serde_message, path_segments};
use super::secrets::{self, SecretAction};
use super::stats::ConversationStats;
use crate::crypto::Cipher;
use crate::ids::Uuid;
use crate::tools::content::Content;

/// Execution status of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Not running; ready for messages and runs.
    Idle,
    /// The agent loop is running.
    Running,
    /// Paused by the user.
    Paused,
    /// Actions wait for the user's confirmation.
    WaitingForConfirmation,
    /// The agent finished.
    Finished,
    /// The run ended with an error.
    Error,
    /// Stuck detection stopped the run.
    Stuck,
    /// Being deleted (only ever sent in the delete webhook).
    Deleting,
}

impl ExecutionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Idle => "idle",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Paused => "paused",
            ExecutionStatus::WaitingForConfirmation => "waiting_for_confirmation",
            ExecutionStatus::Finished => "finished",
            ExecutionStatus::Error => "error",
            ExecutionStatus::Stuck => "stuck",
            ExecutionStatus::Deleting => "deleting",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Some(match s {
            "idle" => ExecutionStatus::Idle,
            "running" => ExecutionStatus::Running,
            "paused" => ExecutionStatus::Paused,
            "waiting_for_confirmation" => ExecutionStatus::WaitingForConfirmation,
            "finished" => ExecutionStatus::Finished,
            "error" => ExecutionStatus::Error,
            "stuck" => ExecutionStatus::Stuck,
            "deleting" => ExecutionStatus::Deleting,
            _ => return None,
        })
    }

    /// All values, for validation messages.
    pub const ALL: [&'static str; 8] = [
        "idle",
        "running",
        "paused",
        "waiting_for_confirmation",
        "finished",
        "error",
        "stuck",
        "deleting",
    ];
}

/// The workspace of a conversation (`LocalWorkspace`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// Working directory as given (relative paths resolve against the server's CWD).
    pub working_dir: String,
    /// Always `LocalWorkspace`.
    #[serde(default = "local_kind")]
    pub kind: String,
}

fn local_kind() -> String {
    "LocalWorkspace".into()
}

/// A validation problem in a request body, located pydantic-style.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Location below the body, e.g. `["agent", "llm", "model"]`.
    pub loc: Vec<String>,
    /// Message.
    pub msg: String,
    /// pydantic error type (`missing`, `value_error`, …).
    pub kind: &'static str,
}

impl FieldError {
    fn new(loc: &[&str], msg: impl Into<String>, kind: &'static str) -> FieldError {
        FieldError {
            loc: loc.iter().map(|s| s.to_string()).collect(),
            msg: msg.into(),
            kind,
        }
    }

    fn from_agent(prefix: &str, e: AgentError) -> FieldError {
        let mut loc = vec![prefix.to_string()];
        loc.extend(e.loc);
        let kind = if e.msg == "Field required" {
            "missing"
        } else {
            "value_error"
        };
        FieldError {
            loc,
            msg: e.msg,
            kind,
        }
    }
}

/// A message as `POST …/events` and `initial_message` carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct SendMessageRequest {
    /// `user` (the only role the conversation accepts), `system`, `assistant` or `tool`.
    pub role: String,
    /// Text and image parts.
    pub content: Vec<Content>,
    /// Start a run after appending.
    pub run: bool,
}

impl SendMessageRequest {
    /// Parses the body; unknown top-level keys are ignored, content items are strict.
    pub fn from_value(v: &Value, prefix: &[&str]) -> Result<SendMessageRequest, FieldError> {
        let loc = |rest: &[&str]| -> Vec<String> {
            prefix
                .iter()
                .chain(rest.iter())
                .map(|s| s.to_string())
                .collect()
        };
        let obj = v.as_object().ok_or_else(|| FieldError {
            loc: loc(&[]),
            msg: "Input should be a valid dictionary or object".into(),
            kind: "model_type",
        })?;
        let role = match obj.get("role") {
            None | Some(Value::Null) => "user".to_string(),
            Some(Value::String(r))
                if ["user", "system", "assistant", "tool"].contains(&r.as_str()) =>
            {
                r.clone()
            }
            Some(_) => {
                return Err(FieldError {
                    loc: loc(&["role"]),
                    msg: "Input should be 'user', 'system', 'assistant' or 'tool'".into(),
                    kind: "literal_error",
                });
            }
        };
        let content = parse_content_list(obj.get("content"), &loc(&["content"]))?;
        let run = match obj.get("run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(FieldError {
                    loc: loc(&["run"]),
                    msg: "Input should be a valid boolean".into(),
                    kind: "bool_type",
                });
            }
        };
        Ok(SendMessageRequest { role, content, run })
    }
}

/// Parses a content list (`null` → empty, a bare string → one text part).
pub fn parse_content_list(v: Option<&Value>, loc: &[String]) -> Result<Vec<Content>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![Content::text(s.clone())]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                serde_json::from_value::<Content>(item.clone()).map_err(|e| {
                    let mut l = loc.to_vec();
                    l.push(i.to_string());
                    FieldError {
                        loc: l,
                        msg: clean_serde_message(&e.to_string()),
                        kind: "value_error",
                    }
                })
            })
            .collect(),
        Some(_) => Err(FieldError {
            loc: loc.to_vec(),
            msg: "Input should be a valid list".into(),
            kind: "list_type",
        }),
    }
}

/// Parses one secret source: a plain string (→ StaticSecret), `{"value":…}`
/// without kind, or a full `StaticSecret` / `LookupSecret` object. Returns the
/// normalized object with `kind` last.
pub fn parse_secret_source(v: &Value) -> Result<Value, String> {
    match v {
        Value::String(s) => Ok(json!({"description": null, "value": s, "kind": "StaticSecret"})),
        Value::Object(o) => {
            let kind = match o.get("kind") {
                None | Some(Value::Null) => {
                    if o.contains_key("url") {
                        "LookupSecret"
                    } else {
                        "StaticSecret"
                    }
                }
                Some(Value::String(k)) => k.as_str(),
                Some(_) => return Err("kind should be a string".into()),
            };
            let description = match o.get("description") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(_) => return Err("description should be a string".into()),
            };
            match kind {
                "StaticSecret" => {
                    let value = match o.get("value") {
                        None | Some(Value::Null) => Value::Null,
                        Some(Value::String(s)) if s == secrets::REDACTED => Value::Null,
                        Some(Value::String(s)) => Value::String(s.clone()),
                        Some(_) => return Err("value should be a string".into()),
                    };
                    Ok(json!({"description": description, "value": value, "kind": "StaticSecret"}))
                }
                "LookupSecret" => {
                    let url = o
                        .get("url")
                        .and_then(Value::as_str)
                        .ok_or("LookupSecret needs a string url")?;
                    let headers = match o.get("headers") {
                        None | Some(Value::Null) => Map::new(),
                        Some(Value::Object(h)) if h.values().all(Value::is_string) => h.clone(),
                        Some(_) => return Err("headers should map names to strings".into()),
                    };
                    Ok(
                        json!({"description": description, "url": url, "headers": headers, "kind": "LookupSecret"}),
                    )
                }
                other => Err(format!(
                    "Unknown kind '{other}' for SecretSource; expected 'StaticSecret' or 'LookupSecret'"
                )),
            }
        }
        _ => Err("a secret must be a string or a SecretSource object".into()),
    }
}

/// Validates tags: keys `^[a-z0-9]+$`, values at most 256 characters.
pub fn validate_tags(v: &Value, loc: &[&str]) -> Result<Map<String, Value>, FieldError> {
    let Value::Object(m) = v else {
        return Err(FieldError::new(
            loc,
            "Input should be a valid dictionary",
            "dict_type",
        ));
    };
    for (k, val) in m {
        if k.is_empty()
            || !k
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(FieldError::new(
                loc,
                format!("Tag key '{k}' must contain only lowercase letters and digits"),
                "value_error",
            ));
        }
        match val {
            Value::String(s) if s.chars().count() <= 256 => {}
            Value::String(_) => {
                return Err(FieldError::new(
                    loc,
                    format!("Tag value for '{k}' must be at most 256 characters"),
                    "value_error",
                ));
            }
            _ => {
                return Err(FieldError::new(
                    loc,
                    format!("Tag value for '{k}' must be a string"),
                    "string_type",
                ));
            }
        }
    }
    Ok(m.clone())
}

/// Validates a confirmation policy object and returns it normalized.
pub fn parse_confirmation_policy(v: &Value) -> Result<Value, String> {
    let obj = v.as_object().ok_or("policy must be an object")?;
    match obj.get("kind").and_then(Value::as_str) {
        Some("NeverConfirm") => Ok(json!({"kind": "NeverConfirm"})),
        Some("AlwaysConfirm") => Ok(json!({"kind": "AlwaysConfirm"})),
        Some("ConfirmRisky") => {
            let threshold = match obj.get("threshold") {
                None | Some(Value::Null) => "HIGH",
                Some(Value::String(t)) if ["LOW", "MEDIUM", "HIGH"].contains(&t.as_str()) => {
                    t.as_str()
                }
                Some(_) => return Err("threshold must be 'LOW', 'MEDIUM' or 'HIGH'".into()),
            };
            let confirm_unknown = match obj.get("confirm_unknown") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("confirm_unknown must be a boolean".into()),
            };
            Ok(
                json!({"threshold": threshold, "confirm_unknown": confirm_unknown, "kind": "ConfirmRisky"}),
            )
        }
        Some(other) => Err(format!(
            "Unknown kind '{other}' for ConfirmationPolicyBase; expected 'NeverConfirm', 'AlwaysConfirm' or 'ConfirmRisky'"
        )),
        None => Err("policy needs a kind".into()),
    }
}

/// Validates a security analyzer object (or null).
pub fn parse_security_analyzer(v: &Value) -> Result<Value, String> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Object(o) => match o.get("kind").and_then(Value::as_str) {
            Some(k) if crate::agent::security::KNOWN.contains(&k) => {
                // Members and custom patterns are checked now, not at the first risky action.
                crate::agent::security::validate(v)?;
                let mut out = o.clone();
                if let Some(kind) = out.shift_remove("kind") {
                    out.insert("kind".into(), kind);
                }
                Ok(Value::Object(out))
            }
            Some(k) => Err(format!("Unknown kind '{k}' for SecurityAnalyzerBase")),
            None => Err("security_analyzer needs a kind".into()),
        },
        _ => Err("security_analyzer must be an object or null".into()),
    }
}

/// `POST /api/conversations` body, validated.
#[derive(Debug, Clone)]
pub struct StartConversationRequest {
    /// Agent definition.
    pub agent: Agent,
    /// Workspace.
    pub workspace: Workspace,
    /// Requested id.
    pub conversation_id: Option<Uuid>,
    /// Git worktree flag (accepted; not acted on).
    pub worktree: bool,
    /// Confirmation policy.
    pub confirmation_policy: Value,
    /// Security analyzer.
    pub security_analyzer: Value,
    /// First message, sent and run on creation.
    pub initial_message: Option<SendMessageRequest>,
    /// The initial message as posted (kept in the record).
    pub initial_message_raw: Value,
    /// Iteration cap per run.
    pub max_iterations: u64,
    /// Stuck detection on/off.
    pub stuck_detection: bool,
    /// Secrets by name (normalized sources).
    pub secrets: Map<String, Value>,
    /// Python import hints (accepted, unused).
    pub tool_module_qualnames: Map<String, Value>,
    /// Sub-agent definitions the client registered: the `task` and `delegate` tools' types.
    pub agent_definitions: Vec<Value>,
    /// Plugins (accepted, unused).
    pub plugins: Value,
    /// Hook configuration, normalized (null when none was given).
    pub hook_config: Value,
    /// Tags.
    pub tags: Map<String, Value>,
    /// Caller's user id.
    pub user_id: Option<String>,
    /// Generate a title from the first message.
    pub autotitle: bool,
    /// Profile for title generation.
    pub title_llm_profile: Option<String>,
    /// Stuck-detection thresholds the SDK may send.
    pub stuck_detection_thresholds: Value,
}

fn opt_bool(obj: &Map<String, Value>, key: &str, default: bool) -> Result<bool, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(FieldError::new(
            &[key],
            "Input should be a valid boolean",
            "bool_type",
        )),
    }
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::new(
            &[key],
            "Input should be a valid string",
            "string_type",
        )),
    }
}

impl StartConversationRequest {
    /// Validates a posted body. `agent_from_settings` builds an agent from
    /// `agent_settings` when `agent` is absent.
    pub fn from_value(
        body: &Value,
        agent_from_settings: &dyn Fn(&Value) -> Result<Value, String>,
    ) -> Result<StartConversationRequest, FieldError> {
        let obj = body.as_object().ok_or_else(|| {
            FieldError::new(
                &[],
                "Input should be a valid dictionary or object",
                "model_type",
            )
        })?;
        let workspace = match obj.get("workspace") {
            None | Some(Value::Null) => {
                return Err(FieldError::new(&["workspace"], "Field required", "missing"));
            }
            Some(w) => {
                let ws: Workspace = serde_path_to_error::deserialize(w.clone()).map_err(|e| {
                    let mut loc = vec!["workspace".to_string()];
                    loc.extend(path_segments(e.path()));
                    FieldError {
                        loc,
                        msg: clean_serde_message(&e.inner().to_string()),
                        kind: "value_error",
                    }
                })?;
                if ws.kind != "LocalWorkspace" {
                    return Err(FieldError::new(
                        &["workspace", "kind"],
                        format!(
                            "Unsupported workspace kind '{}'; this server runs LocalWorkspace",
                            ws.kind
                        ),
                        "value_error",
                    ));
                }
                if ws.working_dir.trim().is_empty() {
                    return Err(FieldError::new(
                        &["workspace", "working_dir"],
                        "working_dir must not be empty",
                        "value_error",
                    ));
                }
                ws
            }
        };
        let agent_input = match (obj.get("agent"), obj.get("agent_settings")) {
            (Some(a), _) if !a.is_null() => a.clone(),
            (_, Some(s)) if !s.is_null() => agent_from_settings(s)
                .map_err(|m| FieldError::new(&["agent_settings"], m, "value_error"))?,
            _ => {
                return Err(FieldError::new(
                    &["agent"],
                    "Field required: provide 'agent' (or 'agent_settings')",
                    "missing",
                ));
            }
        };
        let agent =
            Agent::from_input(agent_input).map_err(|e| FieldError::from_agent("agent", e))?;
        let conversation_id = match obj.get("conversation_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Uuid::parse(s).ok_or_else(|| {
                FieldError::new(
                    &["conversation_id"],
                    "Input should be a valid UUID",
                    "uuid_parsing",
                )
            })?),
            Some(_) => {
                return Err(FieldError::new(
                    &["conversation_id"],
                    "UUID input should be a string",
                    "uuid_type",
                ));
            }
        };
        let confirmation_policy = match obj.get("confirmation_policy") {
            None | Some(Value::Null) => json!({"kind": "NeverConfirm"}),
            Some(p) => parse_confirmation_policy(p)
                .map_err(|m| FieldError::new(&["confirmation_policy"], m, "value_error"))?,
        };
        let security_analyzer = match obj.get("security_analyzer") {
            None => Value::Null,
            Some(a) => parse_security_analyzer(a)
                .map_err(|m| FieldError::new(&["security_analyzer"], m, "value_error"))?,
        };
        let initial_message_raw = obj.get("initial_message").cloned().unwrap_or(Value::Null);
        let initial_message = match &initial_message_raw {
            Value::Null => None,
            v => Some(SendMessageRequest::from_value(v, &["initial_message"])?),
        };
        let max_iterations = match obj.get("max_iterations") {
            None | Some(Value::Null) => 500,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => n,
                _ => {
                    return Err(FieldError::new(
                        &["max_iterations"],
                        "Input should be greater than or equal to 1",
                        "greater_than_equal",
                    ));
                }
            },
        };
        let mut secrets = Map::new();
        match obj.get("secrets") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (name, v) in m {
                    let src = parse_secret_source(v)
                        .map_err(|msg| FieldError::new(&["secrets", name], msg, "value_error"))?;
                    secrets.insert(name.clone(), src);
                }
            }
            Some(_) => {
                return Err(FieldError::new(
                    &["secrets"],
                    "Input should be a valid dictionary",
                    "dict_type",
                ));
            }
        }
        let tags = match obj.get("tags") {
            None | Some(Value::Null) => Map::new(),
            Some(t) => validate_tags(t, &["tags"])?,
        };
        let obj_field = |key: &str| -> Result<Map<String, Value>, FieldError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(m)) => Ok(m.clone()),
                Some(_) => Err(FieldError::new(
                    &[key],
                    "Input should be a valid dictionary",
                    "dict_type",
                )),
            }
        };
        let agent_definitions = match obj.get("agent_definitions") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                return Err(FieldError::new(
                    &["agent_definitions"],
                    "Input should be a valid list",
                    "list_type",
                ));
            }
        };
        Ok(StartConversationRequest {
            agent,
            workspace,
            conversation_id,
            worktree: opt_bool(obj, "worktree", false)?,
            confirmation_policy,
            security_analyzer,
            initial_message,
            initial_message_raw,
            max_iterations,
            stuck_detection: opt_bool(obj, "stuck_detection", true)?,
            secrets,
            tool_module_qualnames: obj_field("tool_module_qualnames")?,
            agent_definitions,
            plugins: obj.get("plugins").cloned().unwrap_or(Value::Null),
            hook_config: crate::hooks::HookConfig::from_request(obj.get("hook_config"))
                .map_err(|e| {
                    let mut loc = vec!["hook_config".to_string()];
                    loc.extend(e.loc);
                    FieldError {
                        loc,
                        msg: e.msg,
                        kind: e.kind,
                    }
                })?
                .map_or(Value::Null, |c| c.to_value()),
            tags,
            user_id: opt_string(obj, "user_id")?,
            autotitle: opt_bool(obj, "autotitle", true)?,
            title_llm_profile: opt_string(obj, "title_llm_profile")?,
            stuck_detection_thresholds: obj
                .get("stuck_detection_thresholds")
                .cloned()
                .unwrap_or(Value::Null),
        })
    }
}

/// The durable state of one conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// Id.
    pub id: Uuid,
    /// Workspace.
    pub workspace: Workspace,
    /// `<conversations_path>/<hex id>`.
    pub persistence_dir: String,
    /// Iteration cap per run.
    pub max_iterations: u64,
    /// Stuck detection on/off.
    pub stuck_detection: bool,
    /// Status.
    pub execution_status: ExecutionStatus,
    /// Confirmation policy.
    pub confirmation_policy: Value,
    /// Security analyzer or null.
    pub security_analyzer: Value,
    /// Activated knowledge skills.
    pub activated_knowledge_skills: Vec<String>,
    /// Invoked skills.
    pub invoked_skills: Vec<String>,
    /// Actions blocked by hooks.
    pub blocked_actions: Map<String, Value>,
    /// Messages blocked by hooks.
    pub blocked_messages: Map<String, Value>,
    /// Id of the latest user message event.
    pub last_user_message_id: Option<String>,
    /// LLM usage. Left out of the derived serialization: `to_stored`
    /// writes it straight to bytes (its per-call lists grow with the
    /// conversation and carry no secret, so they skip the sealing pass and
    /// its `Value` tree); the API builds its own views.
    #[serde(default, skip_serializing)]
    pub stats: ConversationStats,
    /// Secret sources by name (values sealed at rest).
    pub secret_sources: Map<String, Value>,
    /// Agent scratch state.
    pub agent_state: Map<String, Value>,
    /// Hook configuration in effect, as the state shows it: null until the
    /// first message or run (the reference sets it then, see
    /// [`Self::pending_hook_config`]).
    pub hook_config: Value,
    /// Hook configuration of the creation request, normalized; becomes
    /// [`Self::hook_config`] when the conversation's first session starts.
    #[serde(default)]
    pub pending_hook_config: Value,
    /// Title.
    pub title: Option<String>,
    /// Creation time (UTC, `Z`).
    pub created_at: String,
    /// Last change (UTC, `Z`).
    pub updated_at: String,
    /// Tags.
    pub tags: Map<String, Value>,
    /// Agent.
    pub agent: Agent,
    /// Worktree flag from the request.
    #[serde(default)]
    pub worktree: bool,
    /// Initial message as posted.
    #[serde(default)]
    pub initial_message: Value,
    /// Python import hints from the request.
    #[serde(default)]
    pub tool_module_qualnames: Map<String, Value>,
    /// Sub-agent definitions from the request.
    #[serde(default)]
    pub agent_definitions: Vec<Value>,
    /// Plugins from the request.
    #[serde(default)]
    pub plugins: Value,
    /// User id from the request.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Auto-title flag.
    #[serde(default)]
    pub autotitle: bool,
    /// Title profile.
    #[serde(default)]
    pub title_llm_profile: Option<String>,
    /// Stuck-detection thresholds from the request.
    #[serde(default)]
    pub stuck_detection_thresholds: Value,
    /// Whether the `SystemPromptEvent` has been emitted.
    #[serde(default)]
    pub agent_initialized: bool,
}

impl ConversationRecord {
    /// A new record from a validated request.
    pub fn new(
        id: Uuid,
        req: StartConversationRequest,
        conversations_path: &str,
    ) -> ConversationRecord {
        let now = crate::time::now_utc();
        ConversationRecord {
            id,
            workspace: req.workspace,
            persistence_dir: format!(
                "{}/{}",
                conversations_path.trim_end_matches('/'),
                id.simple()
            ),
            max_iterations: req.max_iterations,
            stuck_detection: req.stuck_detection,
            execution_status: ExecutionStatus::Idle,
            confirmation_policy: req.confirmation_policy,
            security_analyzer: req.security_analyzer,
            activated_knowledge_skills: vec![],
            invoked_skills: vec![],
            blocked_actions: Map::new(),
            blocked_messages: Map::new(),
            last_user_message_id: None,
            stats: ConversationStats::default(),
            secret_sources: req.secrets,
            agent_state: Map::new(),
            hook_config: Value::Null,
            pending_hook_config: req.hook_config,
            title: None,
            created_at: now.clone(),
            updated_at: now,
            tags: req.tags,
            agent: req.agent,
            worktree: req.worktree,
            initial_message: req.initial_message_raw,
            tool_module_qualnames: req.tool_module_qualnames,
            agent_definitions: req.agent_definitions,
            plugins: req.plugins,
            user_id: req.user_id,
            autotitle: req.autotitle,
            title_llm_profile: req.title_llm_profile,
            stuck_detection_thresholds: req.stuck_detection_thresholds,
            agent_initialized: false,
        }
    }

    fn agent_value(&self, include_skills: bool) -> Value {
        let mut agent = self.agent.to_value();
        if !include_skills
            && let Some(Value::Object(ctx)) = agent.get_mut("agent_context")
            && ctx.contains_key("skills")
        {
            ctx.insert("skills".into(), Value::Array(vec![]));
        }
        agent
    }

    fn registry_value(&self, action: &mut SecretAction<'_>) -> Value {
        let mut sources = self.secret_sources.clone();
        secrets::visit_registry_secrets(&mut sources, &mut |p, v| action.apply(p, v));
        json!({ "secret_sources": sources })
    }

    /// `ConversationInfo` as REST routes return it (secrets `null`).
    pub fn info_value(&self, include_skills: bool) -> Value {
        let mut agent = self.agent_value(include_skills);
        secrets::apply_to_agent(&mut agent, &mut SecretAction::RedactNull);
        json!({
            "id": self.id.hyphenated(),
            "workspace": self.workspace,
            "persistence_dir": self.persistence_dir,
            "max_iterations": self.max_iterations,
            "stuck_detection": self.stuck_detection,
            "execution_status": self.execution_status,
            "confirmation_policy": self.confirmation_policy,
            "security_analyzer": self.security_analyzer,
            "activated_knowledge_skills": self.activated_knowledge_skills,
            "invoked_skills": self.invoked_skills,
            "blocked_actions": self.blocked_actions,
            "blocked_messages": self.blocked_messages,
            "last_user_message_id": self.last_user_message_id,
            "stats": self.stats.to_full_value(),
            "secret_registry": self.registry_value(&mut SecretAction::RedactNull),
            "agent_state": self.agent_state,
            "hook_config": self.hook_config,
            "title": self.title,
            "metrics": null,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "tags": self.tags,
            "current_model_id": null,
            "available_models": [],
            "supports_runtime_model_switch": false,
            "agent": agent,
        })
    }

    /// The value of an `agent` state update (the reference dumps the agent
    /// with its secrets as `**********`).
    pub fn agent_update_value(&self) -> Value {
        let mut agent = self.agent_value(true);
        secrets::apply_to_agent(&mut agent, &mut SecretAction::RedactStars);
        agent
    }

    /// The `full_state` snapshot value (nulls omitted, secrets `**********`).
    pub fn full_state_value(&self) -> Value {
        let mut agent = self.agent_value(true);
        secrets::apply_to_agent(&mut agent, &mut SecretAction::RedactStars);
        let mut v = json!({
            "id": self.id.hyphenated(),
            "agent": agent,
            "workspace": self.workspace,
            "persistence_dir": self.persistence_dir,
            "max_iterations": self.max_iterations,
            "stuck_detection": self.stuck_detection,
            "execution_status": self.execution_status,
            "confirmation_policy": self.confirmation_policy,
            "security_analyzer": self.security_analyzer,
            "activated_knowledge_skills": self.activated_knowledge_skills,
            "invoked_skills": self.invoked_skills,
            "blocked_actions": self.blocked_actions,
            "blocked_messages": self.blocked_messages,
            "last_user_message_id": self.last_user_message_id,
            "stats": self.stats.to_full_value(),
            "secret_registry": self.registry_value(&mut SecretAction::RedactStars),
            "tags": self.tags,
            "agent_state": self.agent_state,
            "hook_config": self.hook_config,
        });
        secrets::strip_nulls(&mut v);
        v
    }

    /// Plaintext secrets by name, for the tools (static values only; lookup
    /// secrets are resolved by the caller).
    pub fn static_secrets(&self) -> Vec<(String, String)> {
        self.secret_sources
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.get("value")?.as_str()?.to_string())))
            .collect()
    }

    /// The catalog entry of this record.
    pub fn summary(&self) -> crate::store::Summary {
        crate::store::Summary {
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            status: self.execution_status.as_str().to_string(),
        }
    }

    /// The storage form: JSON with every secret sealed (or dropped when no
    /// cipher is configured). The LLM usage is not part of it: the store
    /// keeps it apart (`store::StatsWrite`), and [`ConversationRecord::load`]
    /// joins the two.
    pub fn to_stored(&self, cipher: Option<&Cipher>) -> Vec<u8> {
        with_updated_at(&self.to_stored_unstamped(cipher), &self.updated_at)
    }

    /// [`ConversationRecord::to_stored`] without `updated_at`, the one field
    /// that changes with every event: the conversation actor keeps this part
    /// and reuses it while the rest of the record stays the same.
    pub fn to_stored_unstamped(&self, cipher: Option<&Cipher>) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let scope = self.id.simple();
        if let Value::Object(m) = &mut v {
            m.remove("updated_at");
        }
        if let Some(agent) = v.get_mut("agent") {
            secrets::apply_to_agent(agent, &mut SecretAction::Seal(cipher, &scope));
        }
        if let Some(Value::Object(sources)) = v.get_mut("secret_sources") {
            let mut action = SecretAction::Seal(cipher, &scope);
            secrets::visit_registry_secrets(sources, &mut |p, x| action.apply(p, x));
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Reads a conversation's record and its LLM usage from the store;
    /// `None` when there is no such conversation. Secrets that cannot be
    /// opened are listed as in [`ConversationRecord::from_stored`].
    pub fn load(
        store: &crate::store::Store,
        id: &Uuid,
        cipher: Option<&Cipher>,
    ) -> Result<Option<(ConversationRecord, Vec<String>)>, crate::store::StoreError> {
        use crate::store::StoreError;
        let Some(bytes) = store.get_record(id)? else {
            return Ok(None);
        };
        let (mut record, failures) =
            ConversationRecord::from_stored(&bytes, cipher).map_err(StoreError::Corrupt)?;
        let stored = store.stats(id)?;
        // A record written before the usage was kept apart carries its own
        // and has no snapshot; its log is then empty too.
        if stored.snapshot.is_some() || !stored.calls.is_empty() {
            record.stats = ConversationStats::rebuild(
                stored.snapshot.as_deref(),
                stored.calls.iter().map(|c| c.as_ref()),
            )
            .map_err(StoreError::Corrupt)?;
        }
        Ok(Some((record, failures)))
    }

    /// Reads the storage form. Secrets that cannot be opened become `null`
    /// and are listed in the second value.
    pub fn from_stored(
        bytes: &[u8],
        cipher: Option<&Cipher>,
    ) -> Result<(ConversationRecord, Vec<String>), String> {
        let mut v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let scope = v
            .get("id")
            .and_then(Value::as_str)
            .and_then(Uuid::parse)
            .map(|u| u.simple())
            .ok_or("record has no id")?;
        let mut failures = vec![];
        if let Some(agent) = v.get_mut("agent") {
            secrets::apply_to_agent(
                agent,
                &mut SecretAction::Open(cipher, &scope, &mut failures),
            );
        }
        if let Some(Value::Object(sources)) = v.get_mut("secret_sources") {
            let mut action = SecretAction::Open(cipher, &scope, &mut failures);
            secrets::visit_registry_secrets(sources, &mut |p, x| action.apply(p, x));
        }
        let record: ConversationRecord = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Ok((record, failures))
    }
}

/// Adds `updated_at` to a stored record made by
/// [`ConversationRecord::to_stored_unstamped`].
pub fn with_updated_at(unstamped: &[u8], updated_at: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(unstamped.len() + updated_at.len() + 20);
    out.extend_from_slice(unstamped);
    // The unstamped form is a non-empty JSON object: reopen it.
    if out.last() == Some(&b'}') {
        out.pop();
        out.extend_from_slice(b",\"updated_at\":");
        if serde_json::to_writer(&mut out, updated_at).is_err() {
            out.extend_from_slice(b"\"\"");
        }
        out.push(b'}');
    }
    out
}

/// Copies secrets the `old` record holds in memory into `new` where `new`
/// has none: a record reloaded from storage lacks the secrets that could
/// not be kept there (no cipher configured), but the live conversation must
/// not lose them.
pub fn carry_secrets(old: &ConversationRecord, new: &mut ConversationRecord) {
    if old.id != new.id {
        return;
    }
    let mut known = std::collections::HashMap::new();
    let mut old_agent = old.agent.to_value();
    secrets::visit_agent_secrets(&mut old_agent, &mut |p, v| {
        if !v.is_null() {
            known.insert(p.to_string(), v.clone());
        }
    });
    if !known.is_empty() {
        let mut agent = new.agent.to_value();
        secrets::visit_agent_secrets(&mut agent, &mut |p, v| {
            if v.is_null()
                && let Some(k) = known.get(p)
            {
                *v = k.clone();
            }
        });
        if let Ok(a) = serde_json::from_value(agent) {
            new.agent = a;
        }
    }
    if new.agent.mcp_config.is_none() {
        new.agent.mcp_config = old.agent.mcp_config.clone();
    }
    for (name, src) in &old.secret_sources {
        let Some(target) = new.secret_sources.get_mut(name) else {
            continue;
        };
        if let (Some(Value::Object(t)), Value::Object(o)) = (Some(&mut *target), src) {
            for (k, v) in o {
                if t.get(k).is_none_or(Value::is_null) && !v.is_null() {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// Validated `PATCH /api/conversations/{id}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateConversationRequest {
    /// New title (stripped), if given.
    pub title: Option<String>,
    /// New tags (replace all), if given.
    pub tags: Option<Map<String, Value>>,
}

impl UpdateConversationRequest {
    /// Validates the body.
    pub fn from_value(v: &Value) -> Result<UpdateConversationRequest, FieldError> {
        let obj = v.as_object().ok_or_else(|| {
            FieldError::new(
                &[],
                "Input should be a valid dictionary or object",
                "model_type",
            )
        })?;
        let title = match obj.get("title") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let t = s.trim();
                let n = t.chars().count();
                if n < 1 {
                    return Err(FieldError::new(
                        &["title"],
                        "String should have at least 1 character",
                        "string_too_short",
                    ));
                }
                if n > 200 {
                    return Err(FieldError::new(
                        &["title"],
                        "String should have at most 200 characters",
                        "string_too_long",
                    ));
                }
                Some(t.to_string())
            }
            Some(_) => {
                return Err(FieldError::new(
                    &["title"],
                    "Input should be a valid string",
                    "string_type",
                ));
            }
        };
        let tags = match obj.get("tags") {
            None | Some(Value::Null) => None,
            Some(t) => Some(validate_tags(t, &["tags"])?),
        };
        Ok(UpdateConversationRequest { title, tags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({"agent": {"llm": {"model": "openai/m", "api_key": "sk-live"}, "tools": [{"name": "terminal"}], "kind": "Agent"},
               "workspace": {"working_dir": "workspace/project", "kind": "LocalWorkspace"},
               "secrets": {"TOKEN": {"kind": "StaticSecret", "value": "tok-1"}, "PLAIN": "p-2"},
               "tags": {"team": "a"}, "stuck_detection_thresholds": {"monologue": 3}, "unknown": 1})
    }

    fn no_settings(_: &Value) -> Result<Value, String> {
        Err("no settings".into())
    }

    #[test]
    fn request_parses_and_record_renders() {
        let req = StartConversationRequest::from_value(&body(), &no_settings).unwrap();
        let id = Uuid::new_v4();
        let rec = ConversationRecord::new(id, req, "workspace/conversations");
        let info = rec.info_value(false);
        let keys: Vec<&String> = info.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "id");
        assert_eq!(keys.last().unwrap().as_str(), "agent");
        assert_eq!(info["agent"]["llm"]["api_key"], Value::Null);
        assert_eq!(
            info["secret_registry"]["secret_sources"]["TOKEN"]["value"],
            Value::Null
        );
        assert_eq!(
            info["persistence_dir"],
            format!("workspace/conversations/{}", id.simple())
        );
        let full = rec.full_state_value();
        assert_eq!(full["agent"]["llm"]["api_key"], "**********");
        assert!(full.get("last_user_message_id").is_none());
        assert!(full["agent"]["llm"].get("base_url").is_none());
    }

    #[test]
    fn storage_seals_every_secret() {
        let req = StartConversationRequest::from_value(&body(), &no_settings).unwrap();
        let mut rec = ConversationRecord::new(Uuid::new_v4(), req, "c");
        // The usage is kept apart from the record: it must not be stored.
        for i in 0..3 {
            rec.stats
                .entry("agent")
                .record(&crate::model::stats::CallUsage {
                    model: "m".into(),
                    response_id: format!("r{i}"),
                    prompt_tokens: 10,
                    completion_tokens: 2,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    reasoning_tokens: 0,
                    context_window: 1000,
                    cost: 0.5,
                    latency: 0.1,
                    timestamp: 1.0,
                });
        }
        let c = Cipher::from_secret("key");
        let stored = rec.to_stored(Some(&c));
        let text = String::from_utf8(stored.clone()).unwrap();
        for s in ["sk-live", "tok-1", "p-2"] {
            assert!(!text.contains(s));
        }
        assert!(!text.contains("usage_to_metrics"));
        let (back, failures) = ConversationRecord::from_stored(&stored, Some(&c)).unwrap();
        assert!(failures.is_empty());
        assert_eq!(back.stats, ConversationStats::default());
        let mut without_stats = rec.clone();
        without_stats.stats = ConversationStats::default();
        assert_eq!(back, without_stats);
        assert_eq!(
            with_updated_at(&rec.to_stored_unstamped(Some(&c)), &rec.updated_at).len(),
            stored.len()
        );
        let (lost, failures) =
            ConversationRecord::from_stored(&stored, Some(&Cipher::from_secret("other"))).unwrap();
        assert_eq!(failures.len(), 3);
        assert_eq!(lost.agent.llm.api_key, None);
        let (nokey, _) = ConversationRecord::from_stored(&rec.to_stored(None), None).unwrap();
        assert_eq!(nokey.agent.llm.api_key, None);
    }

    #[test]
    fn request_errors_are_located() {
        let e = StartConversationRequest::from_value(&json!({"agent": {"llm": {}}}), &no_settings)
            .unwrap_err();
        assert_eq!(e.loc, vec!["workspace"]);
        assert_eq!(e.kind, "missing");
        let e = StartConversationRequest::from_value(
            &json!({"workspace": {"working_dir": "w"}}),
            &no_settings,
        )
        .unwrap_err();
        assert_eq!(e.loc, vec!["agent"]);
        let mut b = body();
        b["tags"] = json!({"Bad-Key": "x"});
        assert_eq!(
            StartConversationRequest::from_value(&b, &no_settings)
                .unwrap_err()
                .loc,
            vec!["tags"]
        );
        let mut b = body();
        b["initial_message"] = json!({"content": [{"type": "text", "text": "hi", "extra": 1}]});
        assert_eq!(
            StartConversationRequest::from_value(&b, &no_settings)
                .unwrap_err()
                .loc,
            vec!["initial_message", "content", "0"]
        );
    }

    #[test]
    fn update_request_rules() {
        assert_eq!(
            UpdateConversationRequest::from_value(&json!({"title": "  t "}))
                .unwrap()
                .title
                .as_deref(),
            Some("t")
        );
        assert_eq!(
            UpdateConversationRequest::from_value(&json!({"title": "  "}))
                .unwrap_err()
                .kind,
            "string_too_short"
        );
    }
}
