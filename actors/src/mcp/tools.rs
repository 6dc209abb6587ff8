//! MCP tools as the agent sees them, shaped as the reference shapes them:
//!
//! * names: a tool keeps its server's name when the agent has one server,
//!   and becomes `<server>_<tool>` when it has several;
//! * what the LLM is offered: the tool's description (`No description
//!   provided` when it has none) and parameters derived from its
//!   `inputSchema` the way the reference's generated action model renders
//!   them (each property reduced to its JSON type, description and item
//!   type), with `security_risk` (unless the tool is read-only) and
//!   `summary` first;
//! * the `MCPToolDefinition` objects of the `SystemPromptEvent`;
//! * a call's arguments validated against that model (`MCPToolAction`,
//!   `{"data": {…}}`), with pydantic's lax coercions and error texts;
//! * the `MCPToolObservation` of a `tools/call` result: a first text
//!   `[Tool '<name>' executed.]`, then the result's text and image blocks,
//!   `is_error` from the result's `isError`.
//!
//! Pure functions over JSON: no I/O here.

use serde_json::{Map, Number, Value, json};

use crate::tools::catalog::{self, ParsedCall, SECURITY_RISKS, py_json_dumps, py_repr};
use crate::tools::content::Content;

/// Most MCP tools one conversation may be offered (all servers together).
pub const MAX_TOOLS: usize = 512;
/// `kind` of the action of every MCP tool.
pub const ACTION_KIND: &str = "MCPToolAction";
/// `kind` of the observation of every MCP tool.
pub const OBSERVATION_KIND: &str = "MCPToolObservation";
/// `kind` of an MCP tool's definition in `SystemPromptEvent.tools`.
pub const DEFINITION_KIND: &str = "MCPToolDefinition";
/// Description of a tool whose server gave none.
const NO_DESCRIPTION: &str = "No description provided";

/// The JSON type a property is reduced to (the reference's `py_type`).
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
    List(Box<Ty>),
    Dict,
    Any,
}

impl Ty {
    fn of(spec: &Value) -> Ty {
        let t = match spec.get("type") {
            Some(Value::Array(types)) => {
                let non_null: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                match non_null.as_slice() {
                    [one] => one.as_str(),
                    _ => return Ty::Any,
                }
            }
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        match t {
            Some("string") => Ty::Str,
            Some("integer") => Ty::Int,
            Some("number") => Ty::Float,
            Some("boolean") => Ty::Bool,
            Some("object") => Ty::Dict,
            Some("array") => match spec.get("items") {
                Some(items @ Value::Object(_)) => Ty::List(Box::new(Ty::of(items))),
                _ => Ty::List(Box::new(Ty::Any)),
            },
            _ => Ty::Any,
        }
    }

    /// The schema the LLM sees for this type (no description).
    fn schema(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let name = match self {
            Ty::Str => "string",
            Ty::Int => "integer",
            Ty::Float => "number",
            Ty::Bool => "boolean",
            Ty::Dict => "object",
            Ty::List(_) => "array",
            Ty::Any => return m,
        };
        m.insert("type".into(), Value::String(name.into()));
        if let Ty::List(inner) = self {
            m.insert("items".into(), Value::Object(inner.schema()));
        }
        m
    }
}

/// One property of a tool's input.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: Ty,
    required: bool,
    description: Option<String>,
}

/// One MCP tool of a conversation.
#[derive(Debug, Clone)]
pub struct McpTool {
    /// The name the LLM calls (prefixed with its server's name when the
    /// agent has several servers).
    pub name: String,
    /// The name on its server.
    pub remote_name: String,
    /// Index of its server in the agent's configuration.
    pub server: usize,
    /// The `Tool` object its server listed.
    raw: Map<String, Value>,
    fields: Vec<Field>,
    read_only: bool,
}

/// The name the LLM calls a server's tool by.
pub fn exposed_name(server: &str, tool: &str, several_servers: bool) -> String {
    if several_servers {
        format!("{server}_{tool}")
    } else {
        tool.to_string()
    }
}

fn bool_hint(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

impl McpTool {
    /// A tool as listed by server `server` (the raw `Tool` object, whose
    /// `name` is a string), offered as `name`.
    pub fn new(server: usize, name: String, raw: &Value) -> McpTool {
        let raw = raw.as_object().cloned().unwrap_or_default();
        let remote_name = raw
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let schema = raw.get("inputSchema").cloned().unwrap_or(Value::Null);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let fields = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, spec)| Field {
                        name: name.clone(),
                        ty: Ty::of(spec),
                        required: required.contains(&name.as_str()),
                        description: spec
                            .get("description")
                            .and_then(Value::as_str)
                            .filter(|d| !d.is_empty())
                            .map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let read_only = raw
            .get("annotations")
            .and_then(|a| bool_hint(a.get("readOnlyHint")))
            .unwrap_or(false);
        McpTool {
            name,
            remote_name,
            server,
            raw,
            fields,
            read_only,
        }
    }

    /// Whether the tool says it changes nothing (`readOnlyHint`): it gets no
    /// `security_risk` parameter and its actions are of unknown risk.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The description the LLM sees.
    pub fn description(&self) -> String {
        self.raw
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .unwrap_or(NO_DESCRIPTION)
            .to_string()
    }

    /// The JSON-schema parameters the LLM sees.
    pub fn parameters(&self) -> Value {
        let own_summary = self.fields.iter().any(|f| f.name == "summary");
        let (risk, summary) = catalog::added_parameter_schemas(self.read_only);
        let mut props = Map::new();
        for f in &self.fields {
            let mut schema = f.ty.schema();
            if let Some(d) = &f.description {
                // The reference's optional fields are `T | None`: their
                // description comes after the type's keys, a required one's
                // before `items`.
                if f.required {
                    let items = schema.shift_remove("items");
                    schema.insert("description".into(), Value::String(d.clone()));
                    if let Some(items) = items {
                        schema.insert("items".into(), items);
                    }
                } else {
                    schema.insert("description".into(), Value::String(d.clone()));
                }
            }
            props.insert(f.name.clone(), Value::Object(schema));
        }
        let mut ordered = Map::new();
        if let Some(risk) = risk {
            ordered.insert("security_risk".into(), risk);
            props.shift_remove("security_risk");
        } else if let Some(own) = props.shift_remove("security_risk") {
            ordered.insert("security_risk".into(), own);
        }
        match props.shift_remove("summary") {
            Some(own) if own_summary => {
                ordered.insert("summary".into(), own);
            }
            _ => {
                ordered.insert("summary".into(), summary);
            }
        }
        ordered.extend(props);
        let required: Vec<Value> = self
            .fields
            .iter()
            // A standard `security_risk` has a default: it is never required.
            .filter(|f| f.required && (self.read_only || f.name != "security_risk"))
            .map(|f| Value::String(f.name.clone()))
            .collect();
        let mut schema = Map::new();
        schema.insert("type".into(), Value::String("object".into()));
        schema.insert("properties".into(), Value::Object(ordered));
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
        Value::Object(schema)
    }

    /// The openhands `ToolAnnotations` of the tool, `null` without MCP annotations.
    fn annotations(&self) -> Value {
        let Some(Value::Object(a)) = self.raw.get("annotations") else {
            return Value::Null;
        };
        let hint = |k: &str, default: bool| Value::Bool(bool_hint(a.get(k)).unwrap_or(default));
        let mut out = Map::new();
        out.insert(
            "title".into(),
            a.get("title")
                .filter(|t| t.is_string())
                .cloned()
                .unwrap_or(Value::Null),
        );
        out.insert("readOnlyHint".into(), hint("readOnlyHint", false));
        out.insert("destructiveHint".into(), hint("destructiveHint", true));
        out.insert("idempotentHint".into(), hint("idempotentHint", false));
        out.insert("openWorldHint".into(), hint("openWorldHint", true));
        Value::Object(out)
    }

    /// The MCP `Tool` as the reference's MCP library dumps it: every field
    /// in its order (absent ones `null`), `_meta` as `meta`, unknown fields
    /// after, and the name the LLM calls.
    fn mcp_tool_json(&self) -> Value {
        const KNOWN: [&str; 9] = [
            "name",
            "title",
            "description",
            "inputSchema",
            "outputSchema",
            "icons",
            "annotations",
            "_meta",
            "execution",
        ];
        let get = |k: &str| self.raw.get(k).cloned().unwrap_or(Value::Null);
        let with_fields = |v: Option<&Value>, fields: &[&str]| -> Value {
            let Some(Value::Object(m)) = v else {
                return Value::Null;
            };
            let mut out = Map::new();
            for f in fields {
                out.insert((*f).into(), m.get(*f).cloned().unwrap_or(Value::Null));
            }
            for (k, v) in m {
                if !fields.contains(&k.as_str()) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Object(out)
        };
        let icons = match self.raw.get("icons") {
            Some(Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .map(|i| with_fields(Some(i), &["src", "mimeType", "sizes"]))
                    .collect(),
            ),
            _ => Value::Null,
        };
        let mut out = Map::new();
        out.insert("name".into(), Value::String(self.name.clone()));
        out.insert("title".into(), get("title"));
        out.insert("description".into(), get("description"));
        out.insert(
            "inputSchema".into(),
            self.raw
                .get("inputSchema")
                .filter(|s| s.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        );
        out.insert("outputSchema".into(), get("outputSchema"));
        out.insert("icons".into(), icons);
        out.insert(
            "annotations".into(),
            with_fields(
                self.raw.get("annotations"),
                &[
                    "title",
                    "readOnlyHint",
                    "destructiveHint",
                    "idempotentHint",
                    "openWorldHint",
                ],
            ),
        );
        out.insert("meta".into(), get("_meta"));
        out.insert(
            "execution".into(),
            with_fields(self.raw.get("execution"), &["taskSupport"]),
        );
        for (k, v) in &self.raw {
            if !KNOWN.contains(&k.as_str()) && k != "meta" {
                out.insert(k.clone(), v.clone());
            }
        }
        Value::Object(out)
    }

    /// The `MCPToolDefinition` for `SystemPromptEvent.tools`.
    pub fn definition(&self) -> Value {
        let annotations = self.annotations();
        let title = annotations
            .get("title")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or(&self.name)
            .to_string();
        let mut def = Map::new();
        def.insert("description".into(), Value::String(self.description()));
        def.insert("action_type".into(), Value::String(ACTION_KIND.into()));
        def.insert(
            "observation_type".into(),
            Value::String(OBSERVATION_KIND.into()),
        );
        def.insert("annotations".into(), annotations);
        def.insert(
            "meta".into(),
            self.raw.get("_meta").cloned().unwrap_or(Value::Null),
        );
        def.insert("mcp_tool".into(), self.mcp_tool_json());
        def.insert("kind".into(), Value::String(DEFINITION_KIND.into()));
        def.insert("title".into(), Value::String(title));
        Value::Object(def)
    }

    /// The action model's name in validation errors (`MCP<CamelName>Action`).
    fn model_name(&self) -> String {
        let camel: String = self
            .name
            .split(|c: char| c == '_' || c == '-' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                let first: String = chars
                    .next()
                    .map(|c| c.to_uppercase().collect())
                    .unwrap_or_default();
                first + &chars.as_str().to_lowercase()
            })
            .collect();
        format!("MCP{camel}Action")
    }

    /// Turns an LLM call of this tool into an action, as the reference
    /// does: arguments decoded, `security_risk` taken out (and checked when
    /// a security analyzer is set), `summary` taken out unless the tool
    /// has its own, the rest validated against the tool's input.
    pub fn parse_call(&self, arguments: &str, analyzer: bool) -> ParsedCall {
        let fail = |message: String| ParsedCall::Err {
            tool_name: self.name.clone(),
            arguments: arguments.to_string(),
            message,
        };
        let name = &self.name;
        let mut args = match catalog::decode_arguments(arguments) {
            Ok(a) => a,
            Err(e) => {
                return fail(format!(
                    "Error validating tool '{name}': {e}. Arguments: unparseable JSON"
                ));
            }
        };
        // The action model's only field is `data`: a JSON-encoded object
        // there is decoded, as for list and dict fields of other tools.
        if let Some(Value::String(raw)) = args.get("data")
            && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(raw)
        {
            args.insert("data".into(), v);
        }
        let normalized_arguments = py_json_dumps(&Value::Object(args.clone()));
        let raw_risk = args.shift_remove("security_risk");
        let security_risk = raw_risk.as_ref().map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let event_security_risk = if !analyzer || self.read_only {
            "UNKNOWN".to_string()
        } else {
            match &raw_risk {
                None => "UNKNOWN".to_string(),
                Some(Value::String(s)) if SECURITY_RISKS.contains(&s.as_str()) => s.clone(),
                Some(other) => {
                    return fail(format!(
                        "Error validating tool '{name}': {} is not a valid SecurityRisk. \
                         Parameters provided: {}",
                        py_repr(other),
                        key_list(&args)
                    ));
                }
            }
        };
        let own_summary = self.fields.iter().any(|f| f.name == "summary");
        let summary = if own_summary {
            match args.get("summary") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                _ => format!("{name}: {}", py_json_dumps(&Value::Object(args.clone()))),
            }
        } else {
            match args.shift_remove("summary") {
                Some(Value::String(s)) if !s.trim().is_empty() => s,
                _ => format!("{name}: {}", py_json_dumps(&Value::Object(args.clone()))),
            }
        };
        match self.validate(&args) {
            Ok(data) => {
                let mut action = Map::new();
                action.insert("data".into(), Value::Object(data));
                action.insert("kind".into(), Value::String(ACTION_KIND.into()));
                ParsedCall::Ok {
                    tool_name: self.name.clone(),
                    action: Value::Object(action),
                    normalized_arguments,
                    security_risk,
                    event_security_risk,
                    summary,
                }
            }
            Err(reason) => fail(format!(
                "Error validating tool '{name}': {reason}. Parameters provided: {}",
                key_list(&args)
            )),
        }
    }

    /// Validates arguments against the tool's input: unknown keys are
    /// errors, values get pydantic's lax coercions; the result holds the
    /// present fields in the schema's order.
    fn validate(&self, args: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let mut errors = vec![];
        let mut data = Map::new();
        let whole = Value::Object(args.clone());
        for f in &self.fields {
            match args.get(&f.name) {
                Some(v) => {
                    if let Some(v) = coerce(&f.ty, &f.name, v, &mut errors) {
                        data.insert(f.name.clone(), v);
                    }
                }
                None if f.required => errors.push(FieldError::new(
                    &f.name,
                    "Field required",
                    "missing",
                    &whole,
                )),
                None => {}
            }
        }
        for (k, v) in args {
            if !self.fields.iter().any(|f| &f.name == k) {
                errors.push(FieldError::new(
                    k,
                    "Extra inputs are not permitted",
                    "extra_forbidden",
                    v,
                ));
            }
        }
        if errors.is_empty() {
            Ok(data)
        } else {
            Err(render_errors(&self.model_name(), &errors))
        }
    }
}

/// `['a', 'b']`: the argument names, as Python prints a list of them.
fn key_list(args: &Map<String, Value>) -> String {
    let keys: Vec<String> = args
        .keys()
        .map(|k| py_repr(&Value::String(k.clone())))
        .collect();
    format!("[{}]", keys.join(", "))
}

struct FieldError {
    loc: String,
    msg: &'static str,
    kind: &'static str,
    input: Value,
}

impl FieldError {
    fn new(loc: &str, msg: &'static str, kind: &'static str, input: &Value) -> FieldError {
        FieldError {
            loc: loc.to_string(),
            msg,
            kind,
            input: input.clone(),
        }
    }
}

fn py_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// pydantic's short `repr` of an input: over 50 bytes, its first 25 and last
/// 24 bytes (at character boundaries) around `...`.
fn clipped_repr(value: &Value) -> String {
    let repr = py_repr(value);
    if repr.len() <= 50 {
        return repr;
    }
    let mut head = 25;
    while !repr.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = repr.len() - 24;
    while !repr.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}...{}", &repr[..head], &repr[tail..])
}

fn render_errors(model: &str, errors: &[FieldError]) -> String {
    let mut out = format!(
        "{} validation error{} for {model}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        out.push_str(&format!(
            "\n{}\n  {} [type={}, input_value={}, input_type={}]",
            e.loc,
            e.msg,
            e.kind,
            clipped_repr(&e.input),
            py_type_name(&e.input)
        ));
    }
    out
}

fn coerce(ty: &Ty, loc: &str, v: &Value, errors: &mut Vec<FieldError>) -> Option<Value> {
    let result: Result<Value, (&'static str, &'static str)> = match ty {
        Ty::Any => Ok(v.clone()),
        Ty::Str => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(("Input should be a valid string", "string_type")),
        },
        Ty::Bool => match v {
            Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                bool_hint(Some(v)).map(Value::Bool).ok_or((
                    "Input should be a valid boolean, unable to interpret input",
                    "bool_parsing",
                ))
            }
            _ => Err(("Input should be a valid boolean", "bool_type")),
        },
        Ty::Int => coerce_int(v).map(Value::from),
        Ty::Float => coerce_float(v),
        Ty::Dict => match v {
            Value::Object(_) => Ok(v.clone()),
            _ => Err(("Input should be a valid dictionary", "dict_type")),
        },
        Ty::List(inner) => match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match coerce(inner, &format!("{loc}.{i}"), item, errors) {
                        Some(x) => out.push(x),
                        None => ok = false,
                    }
                }
                return ok.then_some(Value::Array(out));
            }
            _ => Err(("Input should be a valid list", "list_type")),
        },
    };
    match result {
        Ok(v) => Some(v),
        Err((msg, kind)) => {
            errors.push(FieldError::new(loc, msg, kind, v));
            None
        }
    }
}

fn coerce_int(v: &Value) -> Result<i64, (&'static str, &'static str)> {
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18) {
                Ok(f as i64)
            } else if n.is_u64() {
                Err((
                    "Input should be a valid integer, got a number too large",
                    "int_parsing_size",
                ))
            } else {
                Err((
                    "Input should be a valid integer, got a number with a fractional part",
                    "int_from_float",
                ))
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            (
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            )
        }),
        _ => Err(("Input should be a valid integer", "int_type")),
    }
}

fn coerce_float(v: &Value) -> Result<Value, (&'static str, &'static str)> {
    let f = match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n
            .as_f64()
            .ok_or(("Input should be a valid number", "float_type")),
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| {
            (
                "Input should be a valid number, unable to parse string as a number",
                "float_parsing",
            )
        }),
        _ => Err(("Input should be a valid number", "float_type")),
    }?;
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or(("Input should be a finite number", "finite_number"))
}

/// The observation of a `tools/call` result.
pub fn observation(tool_name: &str, result: &Value) -> Value {
    let mut content = vec![Content::text(format!("[Tool '{tool_name}' executed.]")).to_json()];
    if let Some(Value::Array(blocks)) = result.get("content") {
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(t) = block.get("text").and_then(Value::as_str) {
                        content.push(Content::text(t).to_json());
                    }
                }
                Some("image") => {
                    if let (Some(mime), Some(data)) = (
                        block.get("mimeType").and_then(Value::as_str),
                        block.get("data").and_then(Value::as_str),
                    ) {
                        content.push(
                            Content::image(vec![format!("data:{mime};base64,{data}")]).to_json(),
                        );
                    }
                }
                // Audio, resources and links are not shown to the LLM, as
                // in the reference.
                _ => {}
            }
        }
    }
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    observation_json(tool_name, content, is_error)
}

/// An error observation (the call failed, timed out, or the server is gone).
pub fn error_observation(tool_name: &str, text: &str) -> Value {
    observation_json(tool_name, vec![Content::text(text).to_json()], true)
}

fn observation_json(tool_name: &str, content: Vec<Value>, is_error: bool) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), Value::Array(content));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("tool_name".into(), Value::String(tool_name.into()));
    obs.insert("kind".into(), Value::String(OBSERVATION_KIND.into()));
    Value::Object(obs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(schema: Value) -> McpTool {
        McpTool::new(0, "t".into(), &json!({"name": "t", "inputSchema": schema}))
    }

    /// The parameters without the two added ones.
    fn own(t: &McpTool) -> Value {
        let mut p = t.parameters();
        let props = p["properties"].as_object_mut().unwrap();
        props.shift_remove("security_risk");
        props.shift_remove("summary");
        p
    }

    // Expected values below were produced by the reference (openhands-sdk
    // 1.24.0) from the same input schemas.
    #[test]
    fn parameters_follow_the_reference_model() {
        let cases = [
            (
                json!({"type": "object"}),
                json!({"type": "object", "properties": {}}),
            ),
            (
                json!({"type": "object", "properties": {"s": {"type": "string", "description": "d", "enum": ["a", "b"], "default": "a", "title": "S"}}, "required": ["s"]}),
                json!({"type": "object", "properties": {"s": {"type": "string", "description": "d"}}, "required": ["s"]}),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "description": "d", "items": {"type": "integer"}}}, "required": ["l"]}),
                json!({"type": "object", "properties": {"l": {"type": "array", "description": "d", "items": {"type": "integer"}}}, "required": ["l"]}),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "description": "d", "items": {"type": "integer"}}}}),
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"}, "description": "d"}}}),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array"}}, "required": ["l"]}),
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}, "required": ["l"]}),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}),
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}}}}),
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "object"}}}}),
            ),
            (
                json!({"type": "object", "properties": {"o": {"type": "object", "properties": {"x": {"type": "string"}}, "description": "obj"}}, "required": ["o"]}),
                json!({"type": "object", "properties": {"o": {"type": "object", "description": "obj"}}, "required": ["o"]}),
            ),
            (
                json!({"type": "object", "properties": {"a": {}, "b": {"description": "any"}}, "required": ["a"]}),
                json!({"type": "object", "properties": {"a": {}, "b": {"description": "any"}}, "required": ["a"]}),
            ),
            (
                json!({"type": "object", "properties": {"u": {"type": ["string", "null"], "description": "u"}}, "required": ["u"]}),
                json!({"type": "object", "properties": {"u": {"type": "string", "description": "u"}}, "required": ["u"]}),
            ),
            (
                json!({"type": "object", "properties": {"u": {"type": ["string", "integer"]}}}),
                json!({"type": "object", "properties": {"u": {}}}),
            ),
            (
                json!({"type": "object", "properties": {"u": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}),
                json!({"type": "object", "properties": {"u": {}}}),
            ),
            (
                json!({"type": "object", "properties": {"b": {"type": "boolean"}, "n": {"type": "number"}, "i": {"type": "integer", "minimum": 0}}, "required": ["b", "n", "i"]}),
                json!({"type": "object", "properties": {"b": {"type": "boolean"}, "n": {"type": "number"}, "i": {"type": "integer"}}, "required": ["b", "n", "i"]}),
            ),
            (
                json!({"type": "object", "properties": {"x": "notadict", "y": {"type": "null"}}}),
                json!({"type": "object", "properties": {"x": {}, "y": {}}}),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": ["array", "null"], "items": {"type": "string"}}}}),
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}}}}),
            ),
            (
                json!({"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}}, "required": ["a", "zz", "b"]}),
                json!({"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}}, "required": ["b", "a"]}),
            ),
        ];
        for (schema, want) in cases {
            let t = tool(schema.clone());
            assert_eq!(own(&t), want, "{schema}");
            let p = t.parameters();
            let keys: Vec<&String> = p["properties"].as_object().unwrap().keys().collect();
            assert_eq!(keys[0], "security_risk", "{schema}");
            assert_eq!(keys[1], "summary", "{schema}");
        }
    }

    #[test]
    fn read_only_tools_and_own_meta_fields() {
        let ro = McpTool::new(
            0,
            "r".into(),
            &json!({"name": "r", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}),
        );
        assert!(ro.read_only());
        let p = ro.parameters();
        assert_eq!(p["properties"].as_object().unwrap().len(), 1);
        assert!(p["properties"]["summary"]["description"].is_string());
        // A tool's own `summary` is kept as it is; a non-read-only tool's
        // own `security_risk` gives way to the standard one.
        let t = tool(
            json!({"type": "object", "properties": {"summary": {"type": "string"}, "security_risk": {"type": "string"}}, "required": ["summary", "security_risk"]}),
        );
        let p = t.parameters();
        assert_eq!(p["properties"]["summary"], json!({"type": "string"}));
        assert_eq!(
            p["properties"]["security_risk"]["enum"],
            json!(SECURITY_RISKS)
        );
        assert_eq!(p["required"], json!(["summary"]));
    }

    #[test]
    fn definition_has_the_reference_shape() {
        let t = McpTool::new(
            1,
            "one_add".into(),
            &json!({"name": "add", "description": "Add.", "inputSchema": {"type": "object"},
                    "annotations": {"title": "Adder", "readOnlyHint": true, "x-extra": 1},
                    "_meta": {"k": "v"}, "vendor": true}),
        );
        let d = t.definition();
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "description",
                "action_type",
                "observation_type",
                "annotations",
                "meta",
                "mcp_tool",
                "kind",
                "title"
            ]
        );
        assert_eq!(
            d["annotations"],
            json!({"title": "Adder", "readOnlyHint": true, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true})
        );
        assert_eq!(d["title"], "Adder");
        assert_eq!(d["meta"], json!({"k": "v"}));
        let m = &d["mcp_tool"];
        let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "name",
                "title",
                "description",
                "inputSchema",
                "outputSchema",
                "icons",
                "annotations",
                "meta",
                "execution",
                "vendor"
            ]
        );
        assert_eq!(m["name"], "one_add");
        assert_eq!(
            m["annotations"],
            json!({"title": "Adder", "readOnlyHint": true, "destructiveHint": null, "idempotentHint": null, "openWorldHint": null, "x-extra": 1})
        );
        let plain = tool(json!({"type": "object"})).definition();
        assert_eq!(plain["description"], NO_DESCRIPTION);
        assert_eq!(plain["annotations"], Value::Null);
        assert_eq!(plain["title"], "t");
    }

    fn parse(t: &McpTool, args: Value, analyzer: bool) -> ParsedCall {
        t.parse_call(&args.to_string(), analyzer)
    }

    #[test]
    fn calls_validate_like_the_reference() {
        let t = McpTool::new(
            0,
            "val".into(),
            &json!({"name": "val", "inputSchema": {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "number"}, "l": {"type": "array", "items": {"type": "integer"}}, "o": {"type": "object"}, "f": {"type": "boolean"}, "s": {"type": "string"}, "x": {}}, "required": ["s", "zz"]}}),
        );
        match parse(
            &t,
            json!({"s": "q", "a": 1, "b": "7", "x": null, "l": ["1", 2.0], "f": "yes", "security_risk": "LOW", "summary": "sum"}),
            false,
        ) {
            ParsedCall::Ok {
                action,
                summary,
                event_security_risk,
                security_risk,
                normalized_arguments,
                ..
            } => {
                assert_eq!(
                    action,
                    json!({"data": {"b": 7, "a": 1.0, "l": [1, 2], "f": true, "s": "q"}, "kind": "MCPToolAction"})
                );
                assert_eq!(
                    action["data"].to_string(),
                    r#"{"b":7,"a":1.0,"l":[1,2],"f":true,"s":"q"}"#
                );
                assert_eq!(summary, "sum");
                assert_eq!(event_security_risk, "UNKNOWN");
                assert_eq!(security_risk.as_deref(), Some("LOW"));
                assert!(normalized_arguments.contains("\"security_risk\": \"LOW\""));
            }
            other => panic!("{other:?}"),
        }
        // Texts as the reference words them (without pydantic's links).
        let ParsedCall::Err { message, .. } = parse(
            &t,
            json!({"l": [1, "x", null], "o": "str", "b": 1.5, "a": "nan?", "f": 2}),
            false,
        ) else {
            panic!()
        };
        assert_eq!(
            message,
            "Error validating tool 'val': 7 validation errors for MCPValAction\n\
             b\n  Input should be a valid integer, got a number with a fractional part [type=int_from_float, input_value=1.5, input_type=float]\n\
             a\n  Input should be a valid number, unable to parse string as a number [type=float_parsing, input_value='nan?', input_type=str]\n\
             l.1\n  Input should be a valid integer, unable to parse string as an integer [type=int_parsing, input_value='x', input_type=str]\n\
             l.2\n  Input should be a valid integer [type=int_type, input_value=None, input_type=NoneType]\n\
             o\n  Input should be a valid dictionary [type=dict_type, input_value='str', input_type=str]\n\
             f\n  Input should be a valid boolean, unable to interpret input [type=bool_parsing, input_value=2, input_type=int]\n\
             s\n  Field required [type=missing, input_value={'l': [1, 'x', None], 'o'....5, 'a': 'nan?', 'f': 2}, input_type=dict]. \
             Parameters provided: ['l', 'o', 'b', 'a', 'f']"
        );
        let ParsedCall::Err { message, .. } = parse(&t, json!({"s": 1, "extra1": [1, 2]}), false)
        else {
            panic!()
        };
        assert!(message.contains("2 validation errors for MCPValAction\ns\n  Input should be a valid string [type=string_type, input_value=1, input_type=int]\nextra1\n  Extra inputs are not permitted [type=extra_forbidden, input_value=[1, 2], input_type=list]"), "{message}");
        let ParsedCall::Err { message, .. } =
            parse(&t, json!({"s": "x", "security_risk": "BAD"}), true)
        else {
            panic!()
        };
        assert_eq!(
            message,
            "Error validating tool 'val': 'BAD' is not a valid SecurityRisk. Parameters provided: ['s']"
        );
        match parse(&t, json!({"s": "x", "security_risk": "HIGH"}), true) {
            ParsedCall::Ok {
                event_security_risk,
                summary,
                ..
            } => {
                assert_eq!(event_security_risk, "HIGH");
                assert_eq!(summary, r#"val: {"s": "x"}"#);
            }
            other => panic!("{other:?}"),
        }
        let ParsedCall::Err { message, .. } = t.parse_call("{not json", false) else {
            panic!()
        };
        assert!(
            message.ends_with("Arguments: unparseable JSON"),
            "{message}"
        );
    }

    #[test]
    fn model_names_are_camel_cased() {
        let name = |n: &str| McpTool::new(0, n.into(), &json!({"name": n})).model_name();
        assert_eq!(name("add_numbers"), "MCPAddNumbersAction");
        assert_eq!(name("two-x_echo"), "MCPTwoXEchoAction");
        assert_eq!(name("getHTTPData"), "MCPGethttpdataAction");
    }

    #[test]
    fn observations() {
        let obs = observation(
            "echo",
            &json!({"content": [{"type": "text", "text": "hi"}, {"type": "image", "data": "aGk=", "mimeType": "image/png"}, {"type": "audio", "data": "x", "mimeType": "audio/wav"}], "isError": true}),
        );
        assert_eq!(
            obs,
            json!({"content": [
                {"cache_prompt": false, "type": "text", "text": "[Tool 'echo' executed.]"},
                {"cache_prompt": false, "type": "text", "text": "hi"},
                {"cache_prompt": false, "type": "image", "image_urls": ["data:image/png;base64,aGk="]}],
                "is_error": true, "tool_name": "echo", "kind": "MCPToolObservation"})
        );
        let err = error_observation("echo", "boom");
        assert_eq!(err["content"][0]["text"], "boom");
        assert_eq!(err["is_error"], true);
        assert_eq!(observation("x", &json!({}))["is_error"], false);
    }
}
