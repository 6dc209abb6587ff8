//! Server settings: `config/default.toml` (built in) < a TOML file
//! (`--config` or `OH_CONFIG_FILE`) < environment < command-line flags.
//!
//! The environment follows the reference's grammar (`OH_<KEY>`, indexed list
//! items `OH_<KEY>_0..N` read until the first gap, JSON lists, `_IS_NONE`,
//! booleans true only for `1`/`TRUE`), which the `config` crate cannot express
//! on its own, so a table-driven pass turns known variables into overrides.
//! The environment is passed in as a map so that tests never touch the real
//! process environment. Loading never panics: every problem is a one-line
//! [`SettingsError`] naming the key.

use std::collections::HashMap;
use std::path::PathBuf;

use agent_actors::webhook::WebhookSpec;
use config::{Config, File, FileFormat, Value as CValue, ValueKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as JValue};

/// The documented defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A configuration problem, printed as one line at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

/// Database settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Database directory (default `<persistence_dir>/agent-server.db`).
    pub path: Option<String>,
    /// `sync` or `relaxed`.
    pub durability: String,
    /// Page cache, MiB.
    pub cache_mb: u64,
}

/// HTTP settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Worker threads (default: CPU cores).
    pub workers: Option<usize>,
    /// Largest JSON body, bytes.
    pub max_json_bytes: usize,
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// Answer an upload only once the file is on disk (fsync).
    pub sync_uploads: bool,
    /// Seconds a request body may send nothing before 408 (0: no limit).
    pub body_idle_timeout_seconds: u64,
}

/// WebSocket settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSettings {
    /// Most subscribers per conversation.
    pub max_subscribers: usize,
    /// Frames queued per subscriber before it is closed as too slow.
    pub queue_frames: usize,
    /// Seconds between pings.
    pub heartbeat_seconds: u64,
    /// Seconds of silence before a socket is closed.
    pub client_timeout_seconds: u64,
    /// Seconds allowed for first-frame auth.
    pub auth_timeout_seconds: u64,
    /// Largest client frame, bytes.
    pub max_frame_bytes: usize,
}

/// Conversation settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationSettings {
    /// Idle seconds before an actor is evicted (None: never).
    pub idle_eviction_seconds: Option<u64>,
    /// Terminal soft timeout, seconds.
    pub terminal_no_change_timeout_seconds: u64,
    /// Longest wait for one MCP tool call, seconds.
    pub mcp_tool_timeout_seconds: u64,
    /// Longest wait for an agent's MCP servers to start and list their tools, seconds.
    pub mcp_startup_timeout_seconds: u64,
}

/// The `/metrics` endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` (false: 404).
    pub enabled: bool,
    /// Require a session API key on `/metrics` (when keys are configured).
    pub require_key: bool,
}

/// Test-only switches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestingSettings {
    /// Enables the fault-injection routes.
    pub fault_injection: bool,
}

/// All settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Bind address.
    pub host: String,
    /// Bind port (0: any free port).
    pub port: u16,
    /// Accepted session API keys (empty: no auth).
    pub session_api_keys: Vec<String>,
    /// Allowed CORS origins.
    pub allow_cors_origins: Vec<String>,
    /// Per-conversation scratch folders.
    pub conversations_path: String,
    /// Reference compatibility; unused.
    pub bash_events_dir: String,
    /// Bash event retention, seconds.
    pub bash_events_retention_seconds: Option<u64>,
    /// Static front end directory.
    pub static_files_path: Option<String>,
    /// Settings/secrets/database directory.
    pub persistence_dir: Option<String>,
    /// Secret sealing key.
    pub secret_key: Option<String>,
    /// Public URL.
    pub web_url: Option<String>,
    /// Idle timeout reported in /server_info.
    pub runtime_idle_timeout_seconds: Option<f64>,
    /// Concurrent agent runs.
    pub max_concurrent_runs: usize,
    /// Seconds between returns of freed heap memory to the system (0: off).
    pub memory_trim_seconds: Option<u64>,
    /// Reference compatibility; not acted on.
    pub enable_vscode: bool,
    /// Reference compatibility; not acted on.
    pub vscode_port: u16,
    /// Reference compatibility; not acted on.
    pub vscode_base_path: Option<String>,
    /// Reference compatibility; not acted on.
    pub enable_vnc: bool,
    /// Reference compatibility; not acted on.
    pub preload_tools: bool,
    /// Services that receive conversation events and conversation info
    /// (the reference's `WebhookSpec` list).
    pub webhooks: Vec<WebhookSpec>,
    /// Database.
    pub storage: StorageSettings,
    /// HTTP.
    pub http: HttpSettings,
    /// WebSockets.
    pub websocket: WebSocketSettings,
    /// Conversations.
    pub conversations: ConversationSettings,
    /// Metrics endpoint.
    pub metrics: MetricsSettings,
    /// Seconds each shutdown phase may take (in-flight requests, then
    /// conversations and bash commands) before the server moves on.
    pub shutdown_timeout_seconds: u64,
    /// Tests only.
    pub testing: TestingSettings,
    /// The file the settings were read from, if any (for SIGHUP reloads).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    List,
}

fn scalar(var: &str, kind: Kind, raw: &str) -> Result<CValue, SettingsError> {
    Ok(match kind {
        Kind::Int => CValue::from(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| SettingsError(format!("{var}: '{raw}' is not an integer")))?,
        ),
        Kind::Float => CValue::from(
            raw.trim()
                .parse::<f64>()
                .map_err(|_| SettingsError(format!("{var}: '{raw}' is not a number")))?,
        ),
        Kind::Bool => CValue::from(env_bool(raw)),
        Kind::Str | Kind::List => CValue::from(raw),
    })
}

/// Every setting that can come from the environment, with its type and
/// whether it may be cleared (`_IS_NONE`).
const ENV_KEYS: &[(&str, Kind, bool)] = &[
    ("host", Kind::Str, false),
    ("port", Kind::Int, false),
    ("session_api_keys", Kind::List, false),
    ("allow_cors_origins", Kind::List, false),
    ("conversations_path", Kind::Str, false),
    ("bash_events_dir", Kind::Str, false),
    ("bash_events_retention_seconds", Kind::Int, true),
    ("static_files_path", Kind::Str, true),
    ("persistence_dir", Kind::Str, true),
    ("secret_key", Kind::Str, true),
    ("web_url", Kind::Str, true),
    ("runtime_idle_timeout_seconds", Kind::Float, true),
    ("max_concurrent_runs", Kind::Int, false),
    ("memory_trim_seconds", Kind::Int, true),
    ("enable_vscode", Kind::Bool, false),
    ("vscode_port", Kind::Int, false),
    ("vscode_base_path", Kind::Str, true),
    ("enable_vnc", Kind::Bool, false),
    ("preload_tools", Kind::Bool, false),
    ("storage.path", Kind::Str, true),
    ("storage.durability", Kind::Str, false),
    ("storage.cache_mb", Kind::Int, false),
    ("http.workers", Kind::Int, true),
    ("http.max_json_bytes", Kind::Int, false),
    ("http.max_upload_bytes", Kind::Int, false),
    ("http.sync_uploads", Kind::Bool, false),
    ("http.body_idle_timeout_seconds", Kind::Int, false),
    ("websocket.max_subscribers", Kind::Int, false),
    ("websocket.queue_frames", Kind::Int, false),
    ("websocket.heartbeat_seconds", Kind::Int, false),
    ("websocket.client_timeout_seconds", Kind::Int, false),
    ("websocket.auth_timeout_seconds", Kind::Int, false),
    ("websocket.max_frame_bytes", Kind::Int, false),
    ("conversations.idle_eviction_seconds", Kind::Int, true),
    (
        "conversations.terminal_no_change_timeout_seconds",
        Kind::Int,
        false,
    ),
    ("conversations.mcp_tool_timeout_seconds", Kind::Int, false),
    (
        "conversations.mcp_startup_timeout_seconds",
        Kind::Int,
        false,
    ),
    ("metrics.enabled", Kind::Bool, false),
    ("metrics.require_key", Kind::Bool, false),
    ("shutdown_timeout_seconds", Kind::Int, false),
    ("testing.fault_injection", Kind::Bool, false),
];

/// The environment variable of a settings key.
pub fn env_name(key: &str) -> String {
    format!("OH_{}", key.replace('.', "_").to_ascii_uppercase())
}

fn env_bool(v: &str) -> bool {
    matches!(v.trim().to_ascii_uppercase().as_str(), "1" | "TRUE")
}

fn read_list(
    var: &str,
    env: &HashMap<String, String>,
) -> Result<Option<Vec<String>>, SettingsError> {
    let mut items: Vec<Option<String>> = vec![];
    let mut present = false;
    if let Some(raw) = env.get(var) {
        present = true;
        let parsed: serde_json::Value = serde_json::from_str(raw).map_err(|_| {
            SettingsError(format!(
                "{var}: expected a JSON list of strings or an item count, got '{raw}'"
            ))
        })?;
        match parsed {
            serde_json::Value::Array(a) => {
                for x in a {
                    match x {
                        serde_json::Value::String(s) => items.push(Some(s)),
                        other => items.push(Some(other.to_string())),
                    }
                }
            }
            serde_json::Value::Number(n) => {
                let count = n.as_u64().ok_or_else(|| {
                    SettingsError(format!("{var}: item count must be a non-negative integer"))
                })?;
                items.resize(count.min(10_000) as usize, None);
            }
            _ => {
                return Err(SettingsError(format!(
                    "{var}: expected a JSON list of strings or an item count"
                )));
            }
        }
    }
    let mut i = 0usize;
    loop {
        let item_var = format!("{var}_{i}");
        match env.get(&item_var) {
            Some(v) => {
                present = true;
                if i < items.len() {
                    items[i] = Some(v.clone());
                } else {
                    items.push(Some(v.clone()));
                }
            }
            // Without an explicit list, the first gap ends the list.
            None if i >= items.len() => break,
            None => {}
        }
        i += 1;
    }
    if !present {
        return Ok(None);
    }
    Ok(Some(items.into_iter().flatten().collect()))
}

fn env_overrides(env: &HashMap<String, String>) -> Result<Vec<(String, CValue)>, SettingsError> {
    let mut out = vec![];
    for (key, kind, optional) in ENV_KEYS {
        let var = env_name(key);
        if *optional
            && env
                .get(&format!("{var}_IS_NONE"))
                .is_some_and(|v| env_bool(v))
        {
            out.push((key.to_string(), CValue::new(None, ValueKind::Nil)));
            continue;
        }
        let value: Option<CValue> = match kind {
            Kind::List => read_list(&var, env)?.map(CValue::from),
            _ => env
                .get(&var)
                .map(|raw| scalar(&var, *kind, raw))
                .transpose()?,
        };
        if let Some(v) = value {
            out.push((key.to_string(), v));
        }
    }
    Ok(out)
}

/// Command-line options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cli {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--help`.
    pub help: bool,
    /// `--version`.
    pub version: bool,
    /// Python-only flags that were accepted and ignored.
    pub ignored: Vec<String>,
}

/// Usage text for `--help`.
pub const USAGE: &str = "\
agent-server — an HTTP + WebSocket server for OpenHands agent conversations

Usage: agent-server [--host HOST] [--port PORT] [--config FILE]

Options:
  --host HOST        address to bind (default 127.0.0.1)
  --port PORT        port to bind (default 8000; 0 = any free port)
  --config FILE      TOML settings file (see config/default.toml); also OH_CONFIG_FILE
  --help             print this help
  --version          print the version

Compatibility: --reload, --check-browser, --import-modules M and
--extra-python-path P of the Python server are accepted and ignored.
Environment: SESSION_API_KEY, OH_SESSION_API_KEYS_0..N, OH_SECRET_KEY,
OH_ALLOW_CORS_ORIGINS_0..N and OH_<KEY> for every key of config/default.toml.
Logging: RUST_LOG (default info).
Signals: SIGTERM/SIGINT shut down gracefully (a second one exits at once);
SIGHUP re-reads the settings and applies session keys and CORS origins.
Metrics: GET /metrics (Prometheus text format; see [metrics]).
";

impl Cli {
    /// Parses arguments (without the program name).
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, SettingsError> {
        let mut cli = Cli::default();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String, SettingsError> {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| SettingsError(format!("{name} needs a value")))
            };
            match flag.as_str() {
                "--host" => cli.host = Some(value("--host")?),
                "--port" => {
                    let v = value("--port")?;
                    cli.port = Some(v.parse().map_err(|_| {
                        SettingsError(format!("--port: '{v}' is not a port number (0-65535)"))
                    })?);
                }
                "--config" => cli.config = Some(PathBuf::from(value("--config")?)),
                "-h" | "--help" => cli.help = true,
                "-V" | "--version" => cli.version = true,
                "--reload" | "--check-browser" => cli.ignored.push(flag),
                "--import-modules" | "--extra-python-path" => {
                    let _ = value(&flag)?;
                    cli.ignored.push(flag);
                }
                other => {
                    return Err(SettingsError(format!(
                        "unknown argument '{other}' (try --help)"
                    )));
                }
            }
        }
        Ok(cli)
    }
}

impl Settings {
    /// Loads the settings from the layers described in the module docs.
    pub fn load(cli: &Cli, env: &HashMap<String, String>) -> Result<Settings, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        let config_file = cli
            .config
            .clone()
            .or_else(|| env.get("OH_CONFIG_FILE").map(PathBuf::from));
        if let Some(path) = &config_file {
            if !path.is_file() {
                return Err(SettingsError(format!(
                    "config file '{}' not found",
                    path.display()
                )));
            }
            builder = builder.add_source(
                File::from(path.as_path())
                    .format(FileFormat::Toml)
                    .required(true),
            );
        }
        for (key, value) in env_overrides(env)? {
            builder = builder
                .set_override(key.as_str(), value)
                .map_err(|e| SettingsError(format!("{}: {e}", env_name(&key))))?;
        }
        if let Some(h) = &cli.host {
            builder = builder
                .set_override("host", h.as_str())
                .map_err(|e| SettingsError(format!("--host: {e}")))?;
        }
        if let Some(p) = cli.port {
            builder = builder
                .set_override("port", i64::from(p))
                .map_err(|e| SettingsError(format!("--port: {e}")))?;
        }
        let cfg = builder
            .build()
            .map_err(|e| SettingsError(one_line(&e.to_string())))?;
        let mut s: Settings = cfg
            .try_deserialize()
            .map_err(|e| SettingsError(one_line(&e.to_string())))?;
        s.config_file = config_file;
        if let Some(webhooks) = webhooks_from_env(&s.webhooks, env)? {
            s.webhooks = webhooks;
        }
        // The reference's legacy single key.
        if s.session_api_keys.is_empty()
            && let Some(k) = env.get("SESSION_API_KEY").filter(|k| !k.is_empty())
        {
            s.session_api_keys = vec![k.clone()];
        }
        s.session_api_keys.retain(|k| !k.is_empty());
        if s.secret_key.as_deref().is_none_or(str::is_empty) {
            s.secret_key = env
                .get("SESSION_API_KEY")
                .filter(|k| !k.is_empty())
                .cloned()
                .or_else(|| s.session_api_keys.first().cloned());
        }
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, why: &str| Err(SettingsError(format!("{key}: {why}")));
        if !matches!(self.storage.durability.as_str(), "sync" | "relaxed") {
            return bad("storage.durability", "must be \"sync\" or \"relaxed\"");
        }
        if self.max_concurrent_runs == 0 {
            return bad("max_concurrent_runs", "must be at least 1");
        }
        if self.vscode_port == 0 {
            return bad("vscode_port", "must be between 1 and 65535");
        }
        if self.websocket.max_subscribers == 0 || self.websocket.queue_frames == 0 {
            return bad(
                "websocket",
                "max_subscribers and queue_frames must be at least 1",
            );
        }
        if self.websocket.heartbeat_seconds == 0
            || self.websocket.client_timeout_seconds <= self.websocket.heartbeat_seconds
        {
            return bad(
                "websocket.client_timeout_seconds",
                "must be greater than heartbeat_seconds (both > 0)",
            );
        }
        if self.http.workers == Some(0) {
            return bad("http.workers", "must be at least 1");
        }
        if self.http.max_json_bytes < 1024 {
            return bad("http.max_json_bytes", "must be at least 1024");
        }
        if self.bash_events_retention_seconds == Some(0) {
            return bad("bash_events_retention_seconds", "must be greater than 0");
        }
        if self.runtime_idle_timeout_seconds.is_some_and(|t| t <= 0.0) {
            return bad("runtime_idle_timeout_seconds", "must be greater than 0");
        }
        if self.shutdown_timeout_seconds == 0 {
            return bad("shutdown_timeout_seconds", "must be at least 1");
        }
        if self.conversations.mcp_tool_timeout_seconds == 0 {
            return bad(
                "conversations.mcp_tool_timeout_seconds",
                "must be at least 1",
            );
        }
        if self.conversations.mcp_startup_timeout_seconds == 0 {
            return bad(
                "conversations.mcp_startup_timeout_seconds",
                "must be at least 1",
            );
        }
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty");
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            hook.validate()
                .map_err(|why| SettingsError(format!("webhooks[{i}].{why}")))?;
        }
        Ok(())
    }

    /// Directory of the settings/secrets stores and the database.
    pub fn persistence_dir(&self) -> PathBuf {
        match &self.persistence_dir {
            Some(p) => PathBuf::from(p),
            None => {
                let conv = PathBuf::from(&self.conversations_path);
                let parent = conv
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."));
                parent.join(".openhands")
            }
        }
    }

    /// The database directory.
    pub fn storage_path(&self) -> PathBuf {
        match &self.storage.path {
            Some(p) => PathBuf::from(p),
            None => self.persistence_dir().join("agent-server.db"),
        }
    }
}

/// How a webhook field is written in its variable.
#[derive(Clone, Copy)]
enum HookKind {
    Str,
    Int,
    Float,
    /// A JSON object (`headers`).
    Object,
}

/// Fields of a webhook, read from `OH_WEBHOOKS_<i>_<FIELD upper-cased>`.
const WEBHOOK_FIELDS: &[(&str, HookKind)] = &[
    ("base_url", HookKind::Str),
    ("event_buffer_size", HookKind::Int),
    ("headers", HookKind::Object),
    ("flush_delay", HookKind::Float),
    ("num_retries", HookKind::Int),
    ("retry_delay", HookKind::Int),
    ("max_queue_size", HookKind::Int),
    ("max_queue_bytes", HookKind::Int),
    ("max_batch_bytes", HookKind::Int),
];

/// Most webhook items read from the environment.
const MAX_ENV_WEBHOOKS: usize = 1000;

fn json_object(var: &str, raw: &str, what: &str) -> Result<Map<String, JValue>, SettingsError> {
    match serde_json::from_str::<JValue>(raw) {
        Ok(JValue::Object(m)) => Ok(m),
        _ => Err(SettingsError(format!(
            "{var}: expected a JSON object ({what})"
        ))),
    }
}

/// One webhook item from `OH_WEBHOOKS_<i>` (a JSON object) and its field
/// variables, which override it; `None` when none is set.
fn webhook_item_from_env(
    var: &str,
    env: &HashMap<String, String>,
) -> Result<Option<Map<String, JValue>>, SettingsError> {
    let mut item = match env.get(var).filter(|v| !v.is_empty()) {
        Some(raw) => Some(json_object(var, raw, "a webhook")?),
        None => None,
    };
    let prefix = format!("{var}_");
    for (name, raw) in env {
        let Some(field) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some((key, kind)) = WEBHOOK_FIELDS
            .iter()
            .find(|(k, _)| k.to_ascii_uppercase() == field)
        else {
            let known: Vec<String> = WEBHOOK_FIELDS
                .iter()
                .map(|(k, _)| k.to_ascii_uppercase())
                .collect();
            return Err(SettingsError(format!(
                "{name}: unknown webhook field (known: {}; headers take a JSON object in {var}_HEADERS)",
                known.join(", ")
            )));
        };
        let value = match kind {
            HookKind::Str => JValue::String(raw.clone()),
            HookKind::Int => JValue::from(
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| SettingsError(format!("{name}: '{raw}' is not an integer")))?,
            ),
            HookKind::Float => {
                let f = raw
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| SettingsError(format!("{name}: '{raw}' is not a number")))?;
                serde_json::Number::from_f64(f)
                    .map(JValue::Number)
                    .ok_or_else(|| {
                        SettingsError(format!("{name}: '{raw}' is not a finite number"))
                    })?
            }
            HookKind::Object => JValue::Object(json_object(name, raw, "header names to values")?),
        };
        let item = item.get_or_insert_with(Map::new);
        match (item.get_mut(*key), value) {
            // Headers from both places are merged, the field variable winning.
            (Some(JValue::Object(old)), JValue::Object(new)) => old.extend(new),
            (_, value) => {
                item.insert((*key).to_string(), value);
            }
        }
    }
    Ok(item)
}

/// The webhook list when the environment sets any of it, with the
/// reference's grammar: `OH_WEBHOOKS` (a JSON list, or a count of items)
/// replaces the list of the files; then `OH_WEBHOOKS_<i>` (a JSON object)
/// and `OH_WEBHOOKS_<i>_<FIELD>` override fields of item `i`. Without
/// `OH_WEBHOOKS`, items continue past the files' ones until the first index
/// with no variable.
fn webhooks_from_env(
    from_files: &[WebhookSpec],
    env: &HashMap<String, String>,
) -> Result<Option<Vec<WebhookSpec>>, SettingsError> {
    const VAR: &str = "OH_WEBHOOKS";
    if !env
        .keys()
        .any(|k| k == VAR || k.starts_with("OH_WEBHOOKS_"))
    {
        return Ok(None);
    }
    let explicit = env.get(VAR).filter(|v| !v.is_empty());
    let mut items: Vec<Option<Map<String, JValue>>> = match explicit {
        Some(raw) => match serde_json::from_str::<JValue>(raw) {
            Ok(JValue::Array(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    JValue::Object(m) => Ok(Some(m)),
                    _ => Err(SettingsError(format!(
                        "{VAR}: item {i} is not a JSON object"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Ok(JValue::Number(n)) => {
                let count = n
                    .as_u64()
                    .filter(|c| *c as usize <= MAX_ENV_WEBHOOKS)
                    .ok_or_else(|| {
                        SettingsError(format!(
                            "{VAR}: an item count must be between 0 and {MAX_ENV_WEBHOOKS}"
                        ))
                    })?;
                vec![None; count as usize]
            }
            _ => {
                return Err(SettingsError(format!(
                    "{VAR}: expected a JSON list of webhooks or an item count"
                )));
            }
        },
        None => from_files
            .iter()
            .map(|spec| match serde_json::to_value(spec) {
                Ok(JValue::Object(m)) => Some(m),
                _ => None,
            })
            .collect(),
    };
    let limit = if explicit.is_some() {
        items.len()
    } else {
        MAX_ENV_WEBHOOKS
    };
    for i in 0..limit {
        let var = format!("{VAR}_{i}");
        let found = webhook_item_from_env(&var, env)?;
        let Some(overrides) = found else {
            if i >= items.len() {
                break;
            }
            continue;
        };
        if i >= items.len() {
            items.push(None);
        }
        match &mut items[i] {
            Some(item) => {
                for (k, v) in overrides {
                    match (item.get_mut(&k), v) {
                        (Some(JValue::Object(old)), JValue::Object(new)) => old.extend(new),
                        (_, v) => {
                            item.insert(k, v);
                        }
                    }
                }
            }
            empty => *empty = Some(overrides),
        }
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let item = item.ok_or_else(|| {
                SettingsError(format!(
                    "{VAR}_{i}: webhook {i} is counted in {VAR} but not set (set {VAR}_{i}_BASE_URL)"
                ))
            })?;
            WebhookSpec::from_json(JValue::Object(item))
                .map_err(|why| SettingsError(format!("{VAR}_{i}: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let s = Settings::load(&Cli::default(), &HashMap::new()).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert!(s.session_api_keys.is_empty());
        assert_eq!(
            s.storage_path(),
            PathBuf::from("workspace/.openhands/agent-server.db")
        );
        assert_eq!(s.secret_key, None);
    }

    #[test]
    fn indexed_lists_and_precedence() {
        let e = env(&[
            ("OH_SESSION_API_KEYS_0", "a"),
            ("OH_SESSION_API_KEYS_1", "b"),
            ("OH_SESSION_API_KEYS_3", "gap"),
            ("OH_ALLOW_CORS_ORIGINS", "[\"https://x\"]"),
            ("OH_PORT", "9000"),
            ("OH_ENABLE_VNC", "yes"),
            ("OH_STORAGE_DURABILITY", "relaxed"),
        ]);
        let cli = Cli::parse(["--port".to_string(), "9100".to_string()]).unwrap();
        let s = Settings::load(&cli, &e).unwrap();
        assert_eq!(s.session_api_keys, vec!["a", "b"]);
        assert_eq!(s.allow_cors_origins, vec!["https://x"]);
        assert_eq!(s.port, 9100);
        assert!(!s.enable_vnc, "only 1/TRUE are true");
        assert_eq!(s.storage.durability, "relaxed");
        assert_eq!(s.secret_key.as_deref(), Some("a"));
    }

    #[test]
    fn http_body_settings() {
        let s = Settings::load(&Cli::default(), &env(&[])).unwrap();
        assert!(!s.http.sync_uploads, "uploads are not fsynced by default");
        assert_eq!(s.http.body_idle_timeout_seconds, 60);
        let e = env(&[
            ("OH_HTTP_SYNC_UPLOADS", "true"),
            ("OH_HTTP_BODY_IDLE_TIMEOUT_SECONDS", "0"),
        ]);
        let s = Settings::load(&Cli::default(), &e).unwrap();
        assert!(s.http.sync_uploads);
        assert_eq!(s.http.body_idle_timeout_seconds, 0);
    }

    #[test]
    fn legacy_key_and_none() {
        let e = env(&[
            ("SESSION_API_KEY", "legacy"),
            ("OH_CONVERSATIONS_IDLE_EVICTION_SECONDS_IS_NONE", "1"),
        ]);
        let s = Settings::load(&Cli::default(), &e).unwrap();
        assert_eq!(s.session_api_keys, vec!["legacy"]);
        assert_eq!(s.conversations.idle_eviction_seconds, None);
        assert_eq!(s.memory_trim_seconds, Some(10), "the documented default");
        let off = env(&[("OH_MEMORY_TRIM_SECONDS", "0")]);
        let s = Settings::load(&Cli::default(), &off).unwrap();
        assert_eq!(s.memory_trim_seconds, Some(0));
        let bad = env(&[("OH_MEMORY_TRIM_SECONDS", "often")]);
        let err = Settings::load(&Cli::default(), &bad).unwrap_err().0;
        assert!(err.contains("OH_MEMORY_TRIM_SECONDS"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = env(&[("OH_PORT", "eighty")]);
        assert!(
            Settings::load(&Cli::default(), &e)
                .unwrap_err()
                .0
                .contains("OH_PORT")
        );
        let e = env(&[("OH_STORAGE_DURABILITY", "maybe")]);
        assert!(
            Settings::load(&Cli::default(), &e)
                .unwrap_err()
                .0
                .contains("storage.durability")
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "prot = 1\n").unwrap();
        let cli = Cli {
            config: Some(f),
            ..Default::default()
        };
        let err = Settings::load(&cli, &HashMap::new()).unwrap_err().0;
        assert!(err.contains("prot"), "{err}");
        assert!(Cli::parse(["--bogus".to_string()]).is_err());
        assert!(Cli::parse(["--port".to_string(), "x".to_string()]).is_err());
    }

    #[test]
    fn webhooks_from_indexed_variables() {
        let e = env(&[
            ("OH_WEBHOOKS_0_BASE_URL", "http://127.0.0.1:9/hooks"),
            ("OH_WEBHOOKS_0_EVENT_BUFFER_SIZE", " 7 "),
            ("OH_WEBHOOKS_0_FLUSH_DELAY", "0.25"),
            ("OH_WEBHOOKS_0_HEADERS", r#"{"X-Team": "blue"}"#),
            ("OH_WEBHOOKS_0_NUM_RETRIES", "0"),
            ("OH_WEBHOOKS_0_RETRY_DELAY", "2"),
            ("OH_WEBHOOKS_0_MAX_QUEUE_SIZE", "20"),
            ("OH_WEBHOOKS_1_BASE_URL", "https://hooks.example.com"),
            ("OH_WEBHOOKS_3_BASE_URL", "http://after-a-gap"),
        ]);
        let s = Settings::load(&Cli::default(), &e).unwrap();
        assert_eq!(s.webhooks.len(), 2, "the gap at 2 ends the list");
        let h = &s.webhooks[0];
        assert_eq!(h.base_url, "http://127.0.0.1:9/hooks");
        assert_eq!(
            (
                h.event_buffer_size,
                h.flush_delay,
                h.num_retries,
                h.retry_delay
            ),
            (7, 0.25, 0, 2)
        );
        assert_eq!(h.max_queue_size, 20);
        assert_eq!(h.headers.get("X-Team").map(String::as_str), Some("blue"));
        assert_eq!(
            s.webhooks[1],
            WebhookSpec::new("https://hooks.example.com"),
            "unset fields take the reference's defaults"
        );
        let none = Settings::load(&Cli::default(), &HashMap::new()).unwrap();
        assert!(none.webhooks.is_empty());
    }

    #[test]
    fn webhooks_from_a_json_list_merged_with_indexed_variables() {
        let e = env(&[
            (
                "OH_WEBHOOKS",
                r#"[{"base_url": "http://a", "headers": {"X-A": "1"}}, {"base_url": "http://b"}]"#,
            ),
            ("OH_WEBHOOKS_0_HEADERS", r#"{"X-B": "2"}"#),
            ("OH_WEBHOOKS_1_NUM_RETRIES", "9"),
            ("OH_WEBHOOKS_2_BASE_URL", "http://beyond-the-list"),
        ]);
        let s = Settings::load(&Cli::default(), &e).unwrap();
        assert_eq!(s.webhooks.len(), 2);
        assert_eq!(s.webhooks[0].headers.len(), 2, "headers are merged");
        assert_eq!(s.webhooks[1].num_retries, 9);
        // A count: the items come from the indexed variables (a JSON object each, or fields).
        let e = env(&[
            ("OH_WEBHOOKS", "2"),
            (
                "OH_WEBHOOKS_0",
                r#"{"base_url": "http://x", "flush_delay": 1}"#,
            ),
            ("OH_WEBHOOKS_0_FLUSH_DELAY", "2.5"),
            ("OH_WEBHOOKS_1_BASE_URL", "http://y"),
        ]);
        let s = Settings::load(&Cli::default(), &e).unwrap();
        assert_eq!(s.webhooks[0].flush_delay, 2.5, "the field variable wins");
        assert_eq!(s.webhooks[1].base_url, "http://y");
    }

    #[test]
    fn webhooks_from_the_config_file_and_environment_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[[webhooks]]\nbase_url = \"http://file\"\nflush_delay = 3\n\
             headers = { Authorization = \"Bearer t\" }\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(f),
            ..Default::default()
        };
        let s = Settings::load(&cli, &HashMap::new()).unwrap();
        assert_eq!(s.webhooks.len(), 1);
        assert_eq!(s.webhooks[0].flush_delay, 3.0);
        assert_eq!(
            s.webhooks[0]
                .headers
                .get("Authorization")
                .map(String::as_str),
            Some("Bearer t"),
            "header names keep their case"
        );
        let e = env(&[("OH_WEBHOOKS_0_NUM_RETRIES", "1")]);
        let s = Settings::load(&cli, &e).unwrap();
        assert_eq!(
            (s.webhooks[0].base_url.as_str(), s.webhooks[0].num_retries),
            ("http://file", 1)
        );
        let e = env(&[("OH_WEBHOOKS", "[]")]);
        assert!(Settings::load(&cli, &e).unwrap().webhooks.is_empty());
    }

    #[test]
    fn bad_webhooks_stop_start_up_naming_the_problem() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("OH_WEBHOOKS_0_FLUSH_DELAY", "1")], "base_url"),
            (
                &[
                    ("OH_WEBHOOKS_0_BASE_URL", "http://h"),
                    ("OH_WEBHOOKS_0_FLUSH_DELAY", "soon"),
                ],
                "OH_WEBHOOKS_0_FLUSH_DELAY",
            ),
            (
                &[
                    ("OH_WEBHOOKS_0_BASE_URL", "http://h"),
                    ("OH_WEBHOOKS_0_FLUSH_DELAY", "0"),
                ],
                "webhooks[0].flush_delay",
            ),
            (
                &[
                    ("OH_WEBHOOKS_0_BASE_URL", "http://h"),
                    ("OH_WEBHOOKS_0_EVENT_BUFFER_SIZE", "0"),
                ],
                "webhooks[0].event_buffer_size",
            ),
            (
                &[
                    ("OH_WEBHOOKS_0_BASE_URL", "http://h"),
                    ("OH_WEBHOOKS_0_NUM_RETRIES", "-1"),
                ],
                "num_retries",
            ),
            (
                &[
                    ("OH_WEBHOOKS_0_BASE_URL", "http://h"),
                    ("OH_WEBHOOKS_0_MAX_QUEUE_SIZE", "0"),
                ],
                "webhooks[0].max_queue_size",
            ),
            (
                &[
                    ("OH_WEBHOOKS_0_BASE_URL", "http://h"),
                    ("OH_WEBHOOKS_0_BASEURL", "x"),
                ],
                "OH_WEBHOOKS_0_BASEURL",
            ),
            (
                &[
                    ("OH_WEBHOOKS_0_BASE_URL", "http://h"),
                    ("OH_WEBHOOKS_0_HEADERS", "X-A: 1"),
                ],
                "OH_WEBHOOKS_0_HEADERS",
            ),
            (
                &[("OH_WEBHOOKS_0_BASE_URL", "mailto:me@example.com")],
                "webhooks[0].base_url",
            ),
            (
                &[("OH_WEBHOOKS", r#"{"base_url": "http://h"}"#)],
                "OH_WEBHOOKS",
            ),
            (
                &[("OH_WEBHOOKS", r#"[{"base_url": "http://h", "flush": 1}]"#)],
                "flush",
            ),
            (&[("OH_WEBHOOKS", "1")], "OH_WEBHOOKS_0"),
        ];
        for (vars, needle) in cases {
            let err = Settings::load(&Cli::default(), &env(vars)).unwrap_err().0;
            assert!(err.contains(needle), "{vars:?}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[[webhooks]]\nbase_url = \"http://h\"\nretries = 2\n").unwrap();
        let cli = Cli {
            config: Some(f),
            ..Default::default()
        };
        let err = Settings::load(&cli, &HashMap::new()).unwrap_err().0;
        assert!(err.contains("retries"), "{err}");
    }
}
