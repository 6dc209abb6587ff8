//! The `SettingsSchema` documents served by `GET /api/settings/agent-schema`
//! and `GET /api/settings/conversation-schema`: the sections and fields a
//! GUI renders as forms. Keys, value types, defaults, choices, dependencies,
//! prominence and variants follow the reference's `AgentSettings` /
//! `ConversationSettings` models; labels and descriptions are our own.
//!
//! Pure data; defaults come from [`super::agent`] so the two never drift.

use serde_json::{Value, json};

use super::agent::{
    ACP_SERVERS, CRITIC_MODES, REASONING_EFFORTS, REASONING_SUMMARIES, SECURITY_ANALYZERS,
    default_agent_settings, default_conversation_settings, normalize_agent_settings,
};

/// One field: key (relative to its section's object), value type,
/// prominence, label, description, choices, dependencies, secret.
struct F {
    key: &'static str,
    ty: &'static str,
    prominence: &'static str,
    label: &'static str,
    description: &'static str,
    choices: &'static [&'static str],
    depends_on: &'static [&'static str],
    secret: bool,
}

const fn f(
    key: &'static str,
    ty: &'static str,
    label: &'static str,
    description: &'static str,
) -> F {
    F {
        key,
        ty,
        prominence: "minor",
        label,
        description,
        choices: &[],
        depends_on: &[],
        secret: false,
    }
}

const fn with_prominence(mut x: F, p: &'static str) -> F {
    x.prominence = p;
    x
}

const fn with_choices(mut x: F, c: &'static [&'static str]) -> F {
    x.choices = c;
    x
}

const fn with_deps(mut x: F, d: &'static [&'static str]) -> F {
    x.depends_on = d;
    x
}

const fn secret(mut x: F) -> F {
    x.secret = true;
    x
}

const GENERAL: &[F] = &[
    with_prominence(
        f(
            "agent",
            "string",
            "Agent",
            "Which agent implementation runs the conversation.",
        ),
        "major",
    ),
    with_prominence(
        f(
            "tools",
            "array",
            "Tools",
            "Tools the agent may call, by registered name, with their parameters.",
        ),
        "major",
    ),
    with_prominence(
        f(
            "enable_sub_agents",
            "boolean",
            "Sub-agents",
            "Let the agent hand tasks to helper agents.",
        ),
        "major",
    ),
    f(
        "enable_switch_llm_tool",
        "boolean",
        "LLM switching tool",
        "Give the agent a tool to change to another saved LLM profile.",
    ),
    f(
        "mcp_config",
        "object",
        "MCP servers",
        "Model Context Protocol servers whose tools the agent can use.",
    ),
];

const LLM: &[F] = &[
    with_prominence(
        f(
            "model",
            "string",
            "Model",
            "Model identifier, usually prefixed by its provider (openai/…, anthropic/…).",
        ),
        "critical",
    ),
    with_prominence(
        secret(f(
            "api_key",
            "string",
            "API key",
            "Key sent to the model provider.",
        )),
        "critical",
    ),
    with_prominence(
        f(
            "base_url",
            "string",
            "Base URL",
            "Endpoint to use instead of the provider's default.",
        ),
        "major",
    ),
    f(
        "api_version",
        "string",
        "API version",
        "API version string some providers require (Azure).",
    ),
    secret(f(
        "aws_access_key_id",
        "string",
        "AWS access key ID",
        "Access key for Amazon Bedrock.",
    )),
    secret(f(
        "aws_secret_access_key",
        "string",
        "AWS secret access key",
        "Secret key for Amazon Bedrock.",
    )),
    secret(f(
        "aws_session_token",
        "string",
        "AWS session token",
        "Temporary session token for Amazon Bedrock.",
    )),
    f(
        "aws_region_name",
        "string",
        "AWS region",
        "Region of the Bedrock endpoint.",
    ),
    f(
        "aws_profile_name",
        "string",
        "AWS profile",
        "Named AWS credentials profile.",
    ),
    f(
        "aws_role_name",
        "string",
        "AWS role",
        "Role to assume for Bedrock calls.",
    ),
    f(
        "aws_session_name",
        "string",
        "AWS session name",
        "Session name used when assuming the role.",
    ),
    f(
        "aws_bedrock_runtime_endpoint",
        "string",
        "Bedrock runtime endpoint",
        "Custom Bedrock runtime URL.",
    ),
    f(
        "openrouter_site_url",
        "string",
        "Referer URL",
        "Site URL sent as HTTP-Referer (OpenRouter attribution).",
    ),
    f(
        "openrouter_app_name",
        "string",
        "Application name",
        "Application name sent as X-Title (OpenRouter attribution).",
    ),
    f(
        "num_retries",
        "integer",
        "Retries",
        "How many times a failed request is tried again.",
    ),
    f(
        "retry_multiplier",
        "number",
        "Retry back-off factor",
        "Multiplier of the exponential wait between retries.",
    ),
    f(
        "retry_min_wait",
        "integer",
        "Shortest retry wait",
        "Seconds to wait at least before a retry.",
    ),
    f(
        "retry_max_wait",
        "integer",
        "Longest retry wait",
        "Seconds to wait at most before a retry.",
    ),
    f(
        "timeout",
        "integer",
        "Request timeout",
        "Seconds before a model request is abandoned (empty: no limit).",
    ),
    f(
        "max_message_chars",
        "integer",
        "Message size cap",
        "Longest text, in characters, of one item sent to the model.",
    ),
    f(
        "temperature",
        "number",
        "Temperature",
        "Sampling temperature (empty: the provider's default).",
    ),
    f(
        "top_p",
        "number",
        "Top P",
        "Nucleus sampling mass, between 0 and 1.",
    ),
    f(
        "top_k",
        "number",
        "Top K",
        "Sample only among the K most likely tokens.",
    ),
    f(
        "max_input_tokens",
        "integer",
        "Context window",
        "Override of the model's input token limit.",
    ),
    f(
        "max_output_tokens",
        "integer",
        "Output token limit",
        "Most tokens the model may generate per reply.",
    ),
    f(
        "model_canonical_name",
        "string",
        "Canonical model name",
        "Name used to look up model capabilities when the model id is an alias.",
    ),
    f(
        "extra_headers",
        "object",
        "Extra headers",
        "Additional HTTP headers sent with every model request.",
    ),
    f(
        "input_cost_per_token",
        "number",
        "Input token price",
        "Cost of one input token, for spend reporting.",
    ),
    f(
        "output_cost_per_token",
        "number",
        "Output token price",
        "Cost of one output token, for spend reporting.",
    ),
    f(
        "ollama_base_url",
        "string",
        "Ollama URL",
        "Address of a local Ollama server.",
    ),
    f(
        "stream",
        "boolean",
        "Streaming",
        "Receive replies token by token.",
    ),
    f(
        "drop_params",
        "boolean",
        "Drop unsupported parameters",
        "Silently leave out parameters the provider does not accept.",
    ),
    f(
        "modify_params",
        "boolean",
        "Adapt parameters",
        "Allow small request fixes a provider needs (e.g. no empty messages).",
    ),
    f(
        "disable_vision",
        "boolean",
        "Disable images",
        "Do not send images even if the model accepts them.",
    ),
    f(
        "disable_stop_word",
        "boolean",
        "Disable stop words",
        "Do not send stop sequences.",
    ),
    f(
        "caching_prompt",
        "boolean",
        "Prompt caching",
        "Mark prompts for provider-side caching where supported.",
    ),
    f(
        "log_completions",
        "boolean",
        "Log completions",
        "Write every model exchange to files.",
    ),
    f(
        "log_completions_folder",
        "string",
        "Completion log folder",
        "Where completion logs are written.",
    ),
    f(
        "custom_tokenizer",
        "string",
        "Custom tokenizer",
        "Tokenizer used for counting tokens.",
    ),
    f(
        "native_tool_calling",
        "boolean",
        "Native tool calling",
        "Use the provider's function-calling API.",
    ),
    f(
        "force_string_serializer",
        "boolean",
        "Plain-text messages",
        "Send message content as plain strings (empty: decide per model).",
    ),
    with_choices(
        f(
            "reasoning_effort",
            "string",
            "Reasoning effort",
            "How much a reasoning model should think.",
        ),
        &REASONING_EFFORTS,
    ),
    with_choices(
        f(
            "reasoning_summary",
            "string",
            "Reasoning summary",
            "Detail of reasoning summaries, when the provider offers them.",
        ),
        &REASONING_SUMMARIES,
    ),
    f(
        "enable_encrypted_reasoning",
        "boolean",
        "Encrypted reasoning",
        "Ask for encrypted reasoning items to pass back on later turns.",
    ),
    f(
        "prompt_cache_retention",
        "string",
        "Prompt cache retention",
        "How long the provider keeps cached prompts, where supported.",
    ),
    f(
        "extended_thinking_budget",
        "integer",
        "Thinking budget",
        "Token budget for extended thinking (Anthropic).",
    ),
    f(
        "seed",
        "integer",
        "Seed",
        "Random seed for reproducible sampling.",
    ),
    f(
        "usage_id",
        "string",
        "Usage ID",
        "Name under which token use and cost are reported.",
    ),
    f(
        "litellm_extra_body",
        "object",
        "Extra request body",
        "Additional fields merged into each request body.",
    ),
];

const CONDENSER: &[F] = &[
    with_prominence(
        f(
            "enabled",
            "boolean",
            "Condense history",
            "Summarize old events when the history grows too long.",
        ),
        "critical",
    ),
    with_deps(
        f(
            "max_size",
            "integer",
            "History size limit",
            "Events kept before older ones are summarized (at least 20).",
        ),
        &["enabled"],
    ),
];

const VERIFICATION: &[F] = &[
    with_prominence(
        f(
            "critic_enabled",
            "boolean",
            "Critic",
            "Have a critic model score the agent's work.",
        ),
        "critical",
    ),
    with_deps(
        with_choices(
            f(
                "critic_mode",
                "string",
                "Critic timing",
                "When the critic runs.",
            ),
            &CRITIC_MODES,
        ),
        &["critic_enabled"],
    ),
    with_deps(
        with_prominence(
            f(
                "enable_iterative_refinement",
                "boolean",
                "Refine on low scores",
                "Retry automatically when the critic's score is below the threshold.",
            ),
            "critical",
        ),
        &["critic_enabled"],
    ),
    with_deps(
        f(
            "critic_threshold",
            "number",
            "Score threshold",
            "Score between 0 and 1 below which work is refined.",
        ),
        &["critic_enabled", "enable_iterative_refinement"],
    ),
    with_deps(
        f(
            "max_refinement_iterations",
            "integer",
            "Refinement rounds",
            "Most refinement attempts after critic feedback.",
        ),
        &["critic_enabled", "enable_iterative_refinement"],
    ),
    with_deps(
        f(
            "critic_server_url",
            "string",
            "Critic URL",
            "Critic service address (empty: the default service).",
        ),
        &["critic_enabled"],
    ),
    with_deps(
        f(
            "critic_model_name",
            "string",
            "Critic model",
            "Critic model (empty: the default model).",
        ),
        &["critic_enabled"],
    ),
];

const ACP: &[F] = &[
    with_prominence(
        with_choices(
            f(
                "acp_server",
                "string",
                "ACP server",
                "Which Agent Client Protocol agent to launch.",
            ),
            &ACP_SERVERS,
        ),
        "critical",
    ),
    f(
        "acp_command",
        "array",
        "Launch command",
        "Command starting the ACP agent (empty: the server's default command).",
    ),
    f(
        "acp_args",
        "array",
        "Extra arguments",
        "Arguments appended to the launch command.",
    ),
    f(
        "acp_env",
        "object",
        "Environment",
        "Environment variables given to the ACP agent process.",
    ),
    with_prominence(
        f(
            "acp_model",
            "string",
            "ACP model",
            "Model the ACP agent should use (empty: its default).",
        ),
        "critical",
    ),
    f(
        "acp_session_mode",
        "string",
        "Session mode",
        "Session mode id (empty: chosen from the server type).",
    ),
    f(
        "acp_prompt_timeout",
        "number",
        "Prompt timeout",
        "Seconds one ACP prompt round trip may take.",
    ),
];

const CONVERSATION_GENERAL: &[F] = &[with_prominence(
    f(
        "max_iterations",
        "integer",
        "Iteration limit",
        "Most agent steps a conversation runs before it stops.",
    ),
    "major",
)];

const CONVERSATION_VERIFICATION: &[F] = &[
    with_prominence(
        f(
            "confirmation_mode",
            "boolean",
            "Ask before acting",
            "Ask the user to confirm risky actions before they run.",
        ),
        "critical",
    ),
    with_deps(
        with_prominence(
            with_choices(
                f(
                    "security_analyzer",
                    "string",
                    "Risk analyzer",
                    "What rates the risk of each action.",
                ),
                &SECURITY_ANALYZERS,
            ),
            "major",
        ),
        &["confirmation_mode"],
    ),
];

struct Section {
    key: &'static str,
    label: &'static str,
    /// Whether the fields live under the object named `key` (else at the top level).
    nested: bool,
    section_variant: Option<&'static str>,
    field_variant: Option<&'static str>,
    fields: &'static [F],
}

fn section(s: &Section, defaults: &Value) -> Value {
    let fields: Vec<Value> = s
        .fields
        .iter()
        .map(|x| {
            let (key, default) = if s.nested {
                (
                    format!("{}.{}", s.key, x.key),
                    defaults[s.key][x.key].clone(),
                )
            } else {
                (x.key.to_string(), defaults[x.key].clone())
            };
            // Secret values never appear as defaults; an empty MCP config is "none".
            let default = if x.secret || (x.key == "mcp_config" && default == json!({})) {
                Value::Null
            } else {
                default
            };
            let depends: Vec<String> = x
                .depends_on
                .iter()
                .map(|d| {
                    if s.nested {
                        format!("{}.{d}", s.key)
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            let choices: Vec<Value> = x
                .choices
                .iter()
                .map(|c| json!({"value": c, "label": c}))
                .collect();
            json!({
                "key": key,
                "label": x.label,
                "description": x.description,
                "section": s.key,
                "section_label": s.label,
                "value_type": x.ty,
                "default": default,
                "prominence": x.prominence,
                "depends_on": depends,
                "secret": x.secret,
                "choices": choices,
                "variant": s.field_variant,
            })
        })
        .collect();
    json!({"key": s.key, "label": s.label, "fields": fields, "variant": s.section_variant})
}

/// The `SettingsSchema` of the agent settings (both variants, sections
/// tagged with the variant they apply to).
pub fn agent_schema() -> Value {
    let openhands = default_agent_settings();
    let acp = normalize_agent_settings(&json!({"agent_kind": "acp"})).unwrap_or(Value::Null);
    let oh = Some("openhands");
    let sections = [
        (
            Section {
                key: "general",
                label: "General",
                nested: false,
                section_variant: None,
                field_variant: oh,
                fields: GENERAL,
            },
            &openhands,
        ),
        (
            Section {
                key: "llm",
                label: "LLM",
                nested: true,
                section_variant: oh,
                field_variant: oh,
                fields: LLM,
            },
            &openhands,
        ),
        (
            Section {
                key: "condenser",
                label: "Condenser",
                nested: true,
                section_variant: oh,
                field_variant: oh,
                fields: CONDENSER,
            },
            &openhands,
        ),
        (
            Section {
                key: "verification",
                label: "Verification",
                nested: true,
                section_variant: oh,
                field_variant: oh,
                fields: VERIFICATION,
            },
            &openhands,
        ),
        (
            Section {
                key: "acp",
                label: "ACP (Agent Client Protocol)",
                nested: false,
                section_variant: Some("acp"),
                field_variant: Some("acp"),
                fields: ACP,
            },
            &acp,
        ),
        (
            Section {
                key: "llm",
                label: "LLM (metrics only)",
                nested: true,
                section_variant: Some("acp"),
                field_variant: Some("acp"),
                fields: LLM,
            },
            &acp,
        ),
    ];
    let sections: Vec<Value> = sections.iter().map(|(s, d)| section(s, d)).collect();
    json!({"model_name": "AgentSettings", "sections": sections})
}

/// The `SettingsSchema` of the conversation settings.
pub fn conversation_schema() -> Value {
    let d = default_conversation_settings();
    let sections = [
        Section {
            key: "general",
            label: "General",
            nested: false,
            section_variant: None,
            field_variant: None,
            fields: CONVERSATION_GENERAL,
        },
        Section {
            key: "verification",
            label: "Verification",
            nested: false,
            section_variant: None,
            field_variant: None,
            fields: CONVERSATION_VERIFICATION,
        },
    ];
    let sections: Vec<Value> = sections.iter().map(|s| section(s, &d)).collect();
    json!({"model_name": "ConversationSettings", "sections": sections})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_schema_covers_every_field() {
        let s = agent_schema();
        let sections = s["sections"].as_array().unwrap();
        assert_eq!(sections.len(), 6);
        let llm = &sections[1];
        assert_eq!(llm["fields"].as_array().unwrap().len(), 49);
        let api_key = &llm["fields"][1];
        assert_eq!(api_key["key"], "llm.api_key");
        assert_eq!(api_key["secret"], true);
        assert_eq!(api_key["default"], Value::Null);
        assert_eq!(llm["fields"][0]["default"], "gpt-5.5");
        let max_size = &sections[2]["fields"][1];
        assert_eq!(max_size["depends_on"], json!(["condenser.enabled"]));
        assert_eq!(max_size["default"], 240);
        assert_eq!(
            sections[4]["fields"][0]["choices"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(sections[4]["fields"][6]["default"].to_string(), "1800.0");
        assert_eq!(sections[0]["variant"], Value::Null);
        assert_eq!(sections[0]["fields"][4]["default"], Value::Null);
    }

    #[test]
    fn conversation_schema_fields() {
        let s = conversation_schema();
        assert_eq!(s["sections"][0]["fields"][0]["default"], 500);
        assert_eq!(
            s["sections"][1]["fields"][1]["depends_on"],
            json!(["confirmation_mode"])
        );
        assert_eq!(s["sections"][1]["fields"][1]["variant"], Value::Null);
    }
}
