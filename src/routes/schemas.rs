//! OpenAPI shapes of request bodies and enumerated query parameters, for
//! `/openapi.json` and `/docs` (and so for clients and fuzzers that
//! generate requests from it).
//!
//! These types only describe: handlers never deserialize into them (they
//! parse bodies with the reference's validation messages in the models),
//! so nothing here may be used to accept or refuse input. Field names and
//! bounds mirror what the handlers accept.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

/// Schemas referenced only by parameters (request bodies register theirs).
#[derive(OpenApi)]
#[openapi(components(schemas(
    ExecutionStatus,
    ConversationSortOrder,
    EventSortOrder,
    EventSource,
    BashEventKind,
    ExposeSecrets
)))]
pub struct SchemasApi;

/// `Agent`.
#[derive(Deserialize, ToSchema)]
pub enum AgentKind {
    /// The only agent kind.
    Agent,
}

/// `LocalWorkspace`.
#[derive(Deserialize, ToSchema)]
pub enum WorkspaceKind {
    /// The only workspace kind this server runs.
    LocalWorkspace,
}

/// An LLM configuration (the most used fields; others are accepted too).
#[derive(Deserialize, ToSchema)]
pub struct Llm {
    /// Model, `provider/name` (e.g. `openai/gpt-4o`).
    #[schema(min_length = 1, example = "openai/gpt-4o")]
    pub model: String,
    /// API key (a secret: never echoed back).
    pub api_key: Option<String>,
    /// Base URL of the provider's API.
    pub base_url: Option<String>,
    /// API version (Azure).
    pub api_version: Option<String>,
    /// Sampling temperature.
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    /// Output token cap.
    #[schema(minimum = 1)]
    pub max_output_tokens: Option<u32>,
    /// Request timeout in seconds.
    #[schema(minimum = 0)]
    pub timeout: Option<u32>,
    /// Retries after a failed call.
    #[schema(minimum = 0, maximum = 20)]
    pub num_retries: Option<u32>,
    /// Stream the answer.
    pub stream: Option<bool>,
    /// Name used in usage statistics.
    pub usage_id: Option<String>,
}

/// A tool given to the agent.
#[derive(Deserialize, ToSchema)]
pub struct ToolSpec {
    /// Tool name (`terminal`, `file_editor`, `task_tracker`, …).
    #[schema(example = "terminal")]
    pub name: String,
    /// Tool parameters.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

/// The agent of a conversation.
#[derive(Deserialize, ToSchema)]
pub struct AgentSpec {
    /// The agent's LLM.
    pub llm: Llm,
    /// Tools (default: none).
    pub tools: Option<Vec<ToolSpec>>,
    /// Always `Agent`.
    pub kind: Option<AgentKind>,
    /// Skills and extra context.
    #[schema(value_type = Option<Object>)]
    pub agent_context: Option<Value>,
    /// MCP servers (`{"mcpServers": {...}}`).
    #[schema(value_type = Option<Object>)]
    pub mcp_config: Option<Value>,
}

/// Where the agent works.
#[derive(Deserialize, ToSchema)]
pub struct LocalWorkspace {
    /// Working directory; relative paths resolve against the server's
    /// working directory. Created when missing.
    #[schema(min_length = 1)]
    pub working_dir: String,
    /// Always `LocalWorkspace`.
    pub kind: Option<WorkspaceKind>,
}

/// A text block.
#[derive(Deserialize, ToSchema)]
pub struct TextContent {
    /// `text`.
    #[serde(rename = "type")]
    #[schema(rename = "type", pattern = "^text$")]
    pub kind: String,
    /// The text.
    pub text: String,
}

/// An image block.
#[derive(Deserialize, ToSchema)]
pub struct ImageContent {
    /// `image`.
    #[serde(rename = "type")]
    #[schema(rename = "type", pattern = "^image$")]
    pub kind: String,
    /// Image URLs (http(s) or data URLs).
    pub image_urls: Vec<String>,
}

/// A content block.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ContentBlock {
    /// Text.
    Text(TextContent),
    /// Images.
    Image(ImageContent),
}

/// Message roles.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (the only role a client may send).
    User,
    /// Refused with 400.
    System,
    /// Refused with 400.
    Assistant,
    /// Refused with 400.
    Tool,
}

/// `SendMessageRequest`.
#[derive(Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// Only `user` is accepted (default).
    pub role: Option<Role>,
    /// Content blocks (a bare string is taken as one text block).
    pub content: Option<Vec<ContentBlock>>,
    /// Start a run after appending the message.
    pub run: Option<bool>,
}

/// Confirmation policy kinds.
#[derive(Deserialize, ToSchema)]
pub enum PolicyKind {
    /// Run every action.
    NeverConfirm,
    /// Ask before every action.
    AlwaysConfirm,
    /// Ask before actions at or above `threshold`.
    ConfirmRisky,
}

/// Risk levels.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Risk {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// A confirmation policy.
#[derive(Deserialize, ToSchema)]
pub struct ConfirmationPolicy {
    /// Which policy.
    pub kind: PolicyKind,
    /// `ConfirmRisky`: the lowest risk that needs confirmation (default HIGH).
    pub threshold: Option<Risk>,
    /// `ConfirmRisky`: confirm actions of unknown risk (default true).
    pub confirm_unknown: Option<bool>,
}

/// Security analyzer kinds.
#[derive(Deserialize, ToSchema)]
pub enum AnalyzerKind {
    /// The LLM rates its own actions.
    LLMSecurityAnalyzer,
    /// Pattern rules.
    PatternSecurityAnalyzer,
    /// Policy rails.
    PolicyRailSecurityAnalyzer,
    /// Several analyzers.
    EnsembleSecurityAnalyzer,
    /// Gray Swan.
    GraySwanAnalyzer,
}

/// A security analyzer (further fields depend on the kind).
#[derive(Deserialize, ToSchema)]
pub struct SecurityAnalyzer {
    /// Which analyzer.
    pub kind: AnalyzerKind,
}

/// A secret given by value.
#[derive(Deserialize, ToSchema)]
pub struct StaticSecret {
    /// The value.
    pub value: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// `StaticSecret`.
    #[schema(pattern = "^StaticSecret$")]
    pub kind: Option<String>,
}

/// A secret fetched from a URL when used.
#[derive(Deserialize, ToSchema)]
pub struct LookupSecret {
    /// Where to fetch the value.
    pub url: String,
    /// Headers of the fetch (secrets: never echoed back).
    pub headers: Option<BTreeMap<String, String>>,
    /// What it is for.
    pub description: Option<String>,
    /// `LookupSecret`.
    #[schema(pattern = "^LookupSecret$")]
    pub kind: String,
}

/// A secret: a plain string, or a source object.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SecretSource {
    /// The value itself.
    Value(String),
    /// By value, with a description.
    Static(StaticSecret),
    /// Fetched when used.
    Lookup(LookupSecret),
}

/// `StartConversationRequest`.
#[derive(Deserialize, ToSchema)]
pub struct StartConversationRequest {
    /// The agent (or give `agent_settings`).
    pub agent: Option<AgentSpec>,
    /// Settings form of the agent, used when `agent` is absent.
    #[schema(value_type = Option<Object>)]
    pub agent_settings: Option<Value>,
    /// Where the agent works.
    pub workspace: LocalWorkspace,
    /// Id to use; an existing id returns that conversation (200).
    #[schema(format = "uuid")]
    pub conversation_id: Option<String>,
    /// Confirmation policy (default NeverConfirm).
    pub confirmation_policy: Option<ConfirmationPolicy>,
    /// Security analyzer.
    pub security_analyzer: Option<SecurityAnalyzer>,
    /// A first user message.
    pub initial_message: Option<SendMessageRequest>,
    /// Most agent steps per run (default 500).
    #[schema(minimum = 1)]
    pub max_iterations: Option<u32>,
    /// Detect repeated actions (default true).
    pub stuck_detection: Option<bool>,
    /// Secrets, name → value or source.
    pub secrets: Option<BTreeMap<String, SecretSource>>,
    /// Tags: keys `^[a-z0-9]+$`, values at most 256 characters.
    pub tags: Option<BTreeMap<String, String>>,
    /// Generate a title from the first message (default true).
    pub autotitle: Option<bool>,
    /// Hooks the server runs (`HookConfig`): `pre_tool_use`,
    /// `post_tool_use`, `user_prompt_submit`, `session_start`,
    /// `session_end`, `stop` (PascalCase accepted), each a list of
    /// `{"matcher", "hooks": [{"type", "command", "prompt", "timeout", "async"}]}`.
    #[schema(value_type = Option<Object>)]
    pub hook_config: Option<Value>,
}

/// `UpdateConversationRequest`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateConversationRequest {
    /// New title.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// New tags (replace the old ones).
    pub tags: Option<BTreeMap<String, String>>,
}

/// `UpdateSecretsRequest`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateSecretsRequest {
    /// Secrets to add or replace.
    pub secrets: BTreeMap<String, SecretSource>,
}

/// `SetConfirmationPolicyRequest`.
#[derive(Deserialize, ToSchema)]
pub struct SetConfirmationPolicyRequest {
    /// The policy.
    pub policy: ConfirmationPolicy,
}

/// `SetSecurityAnalyzerRequest`.
#[derive(Deserialize, ToSchema)]
pub struct SetSecurityAnalyzerRequest {
    /// The analyzer, or null to remove it.
    pub security_analyzer: Option<SecurityAnalyzer>,
}

/// `AskAgentRequest`.
#[derive(Deserialize, ToSchema)]
pub struct AskAgentRequest {
    /// The question.
    pub question: String,
}

/// `SwitchLLMRequest`.
#[derive(Deserialize, ToSchema)]
pub struct SwitchLlmRequest {
    /// The new LLM.
    pub llm: Llm,
}

/// `ConfirmationResponseRequest`.
#[derive(Deserialize, ToSchema)]
pub struct ConfirmationResponseRequest {
    /// Run (true) or reject (false) the pending actions.
    pub accept: bool,
    /// Why they were rejected.
    pub reason: Option<String>,
}

/// `ExecuteBashRequest`.
#[derive(Deserialize, ToSchema)]
pub struct ExecuteBashRequest {
    /// The command (run by `bash -c`).
    pub command: String,
    /// Working directory (relative to the server's; default: it).
    pub cwd: Option<String>,
    /// Seconds the command may run (default 300).
    pub timeout: Option<i64>,
}

/// `SettingsUpdateRequest`: at least one diff.
#[derive(Deserialize, ToSchema)]
pub struct SettingsUpdateRequest {
    /// Deep-merged into the agent settings.
    #[schema(value_type = Option<Object>)]
    pub agent_settings_diff: Option<Value>,
    /// Deep-merged into the conversation settings.
    #[schema(value_type = Option<Object>)]
    pub conversation_settings_diff: Option<Value>,
}

/// `SecretCreateRequest`.
#[derive(Deserialize, ToSchema)]
pub struct SecretCreateRequest {
    /// Letters, digits and underscores, starting with a letter.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,63}$")]
    pub name: String,
    /// The value.
    pub value: String,
    /// What it is for.
    pub description: Option<String>,
}

/// `SaveProfileRequest`.
#[derive(Deserialize, ToSchema)]
pub struct SaveProfileRequest {
    /// The LLM to save.
    pub llm: Llm,
    /// Keep the API key and other secrets (default true).
    pub include_secrets: Option<bool>,
}

/// `RenameProfileRequest`.
#[derive(Deserialize, ToSchema)]
pub struct RenameProfileRequest {
    /// New profile name.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub new_name: String,
}

/// A saved workspace.
#[derive(Deserialize, ToSchema)]
pub struct SavedWorkspace {
    /// Client-chosen id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Absolute path.
    pub path: String,
    /// The parent it was found under.
    #[serde(rename = "parentPath")]
    #[schema(rename = "parentPath")]
    pub parent_path: Option<String>,
}

/// `AddWorkspacesRequest`.
#[derive(Deserialize, ToSchema)]
pub struct AddWorkspacesRequest {
    /// Workspaces to add.
    pub workspaces: Vec<SavedWorkspace>,
}

/// A saved parent directory of workspaces.
#[derive(Deserialize, ToSchema)]
pub struct WorkspaceParent {
    /// Client-chosen id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Absolute path.
    pub path: String,
}

/// `AddWorkspaceParentsRequest`.
#[derive(Deserialize, ToSchema)]
pub struct AddWorkspaceParentsRequest {
    /// Parents to add.
    pub parents: Vec<WorkspaceParent>,
}

/// `HooksRequest`.
#[derive(Deserialize, ToSchema)]
pub struct HooksRequest {
    /// Project directory whose `.openhands/hooks.json` is read.
    pub project_dir: Option<String>,
}

/// `SkillsRequest`.
#[derive(Deserialize, ToSchema)]
pub struct SkillsRequest {
    /// Public skills (none on this server).
    pub load_public: Option<bool>,
    /// `~/.openhands/skills`.
    pub load_user: Option<bool>,
    /// The project's skills.
    pub load_project: Option<bool>,
    /// The organization's skills.
    pub load_org: Option<bool>,
    /// A marketplace file.
    pub marketplace_path: Option<String>,
    /// Project directory.
    pub project_dir: Option<String>,
    /// Organization repository.
    #[schema(value_type = Option<Object>)]
    pub org_config: Option<Value>,
    /// Sandbox facts (exposed URLs).
    #[schema(value_type = Option<Object>)]
    pub sandbox_config: Option<Value>,
}

/// `InstallSkillRequest`.
#[derive(Deserialize, ToSchema)]
pub struct InstallSkillRequest {
    /// Where the skill comes from.
    #[schema(min_length = 1)]
    pub source: String,
    /// Git ref.
    #[serde(rename = "ref")]
    #[schema(rename = "ref")]
    pub git_ref: Option<String>,
    /// Path in the repository.
    pub repo_path: Option<String>,
    /// Replace an installed skill.
    pub force: Option<bool>,
}

/// `UpdateSkillStateRequest`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateSkillStateRequest {
    /// Enable or disable.
    pub enabled: bool,
}

/// An MCP server started as a process.
#[derive(Deserialize, ToSchema)]
pub struct McpStdio {
    /// `stdio`.
    #[serde(rename = "type")]
    #[schema(rename = "type", pattern = "^stdio$")]
    pub kind: String,
    /// Program.
    #[schema(min_length = 1)]
    pub command: String,
    /// Arguments.
    pub args: Option<Vec<String>>,
    /// Environment (secrets: never echoed back).
    pub env: Option<BTreeMap<String, String>>,
    /// Working directory.
    pub cwd: Option<String>,
}

/// An MCP server reached over HTTP.
#[derive(Deserialize, ToSchema)]
pub struct McpRemote {
    /// `http`, `shttp`, `streamable-http` or `sse`.
    #[serde(rename = "type")]
    #[schema(rename = "type", pattern = "^(http|shttp|streamable-http|sse)$")]
    pub kind: String,
    /// Server URL.
    #[schema(min_length = 1)]
    pub url: String,
    /// Request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Sent as a bearer token.
    pub api_key: Option<String>,
}

/// An MCP server to test.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum McpServer {
    /// A process.
    Stdio(McpStdio),
    /// Over HTTP.
    Remote(McpRemote),
}

/// `MCPTestRequest`.
#[derive(Deserialize, ToSchema)]
pub struct McpTestRequest {
    /// Name shown in results.
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    /// The server.
    pub server: McpServer,
    /// Seconds for the whole test (default 15).
    #[schema(exclusive_minimum = 0.0, maximum = 120.0)]
    pub timeout: Option<f64>,
}

/// `CloudProxyRequest`.
#[derive(Deserialize, ToSchema)]
pub struct CloudProxyRequest {
    /// An allow-listed cloud host (`https://app.all-hands.dev`).
    pub host: String,
    /// HTTP method (default GET).
    pub method: Option<String>,
    /// Path (and query) on the host.
    pub path: String,
    /// Headers to send.
    pub headers: Option<BTreeMap<String, String>>,
    /// Body: a string as is, anything else as JSON.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// Seconds to wait (default 15).
    #[schema(minimum = 1.0, maximum = 60.0)]
    pub timeout_seconds: Option<f64>,
}

/// Execution status of a conversation.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Not running.
    Idle,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Waiting for the user to confirm actions.
    WaitingForConfirmation,
    /// Finished.
    Finished,
    /// Ended with an error.
    Error,
    /// Stuck.
    Stuck,
    /// Being deleted.
    Deleting,
}

/// Sort orders of conversation searches.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConversationSortOrder {
    /// Oldest first.
    CreatedAt,
    /// Least recently updated first.
    UpdatedAt,
    /// Newest first (default).
    CreatedAtDesc,
    /// Most recently updated first.
    UpdatedAtDesc,
}

/// Sort orders of event searches.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventSortOrder {
    /// Log order (default).
    Timestamp,
    /// Newest first.
    TimestampDesc,
}

/// Event sources.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// The agent.
    Agent,
    /// The user.
    User,
    /// The environment (tool results).
    Environment,
    /// Hooks.
    Hook,
}

/// Bash event kinds.
#[derive(Deserialize, ToSchema)]
pub enum BashEventKind {
    /// A command.
    BashCommand,
    /// A piece of output.
    BashOutput,
}

/// `X-Expose-Secrets` values.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExposeSecrets {
    /// Sealed with the server's key.
    Encrypted,
    /// In clear text.
    Plaintext,
}
