//! An agent's `mcp_config` (the canonical `{"mcpServers": {name: server}}`
//! format the reference reads with fastmcp's `MCPConfig`) turned into the
//! servers to start: `{"command", "args", "env", "cwd"}` is a stdio server,
//! `{"url", "transport"?, "headers"?, "auth"?}` a remote one (streamable
//! HTTP unless the transport says `sse` or the URL path has an `/sse`
//! segment). Server configs at the top level, without `mcpServers`, are
//! taken as servers, as there.
//!
//! `${VAR}` and `${VAR:-default}` in any string are expanded first, from
//! the conversation's secrets, then from the few harmless variables a stdio
//! server inherits anyway (`PATH`, `HOME`, …), then the default; unknown
//! names stay as written. The server's own environment is not consulted
//! beyond that, so a config cannot read this server's keys.
//!
//! Nothing here starts a process or logs a value: configs hold secrets.

use serde_json::{Map, Value};

use super::client::{McpServer, Transport};

/// Most servers one agent may configure.
pub const MAX_SERVERS: usize = 32;

/// Environment variables that `${VAR}` may read (those stdio servers
/// inherit anyway; never a key).
const READABLE_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TMPDIR",
];

/// One configured server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Its name in `mcpServers` (the tool-name prefix when there are several).
    pub name: String,
    /// How to reach it.
    pub server: McpServer,
}

/// The `mcpServers` of a config (servers at the top level count too);
/// `None` when there is none.
pub fn servers_of(config: &Map<String, Value>) -> Option<&Map<String, Value>> {
    match config.get("mcpServers") {
        Some(Value::Object(s)) => (!s.is_empty()).then_some(s),
        Some(_) => None,
        None => None,
    }
}

/// Whether `config` names at least one server.
pub fn has_servers(config: Option<&Map<String, Value>>) -> bool {
    let Some(config) = config else {
        return false;
    };
    servers_of(config).is_some() || config.values().any(looks_like_server)
}

fn looks_like_server(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.contains_key("command") || o.contains_key("url"))
}

/// The `${NAME}` variables `config` refers to, each once, in order.
pub fn referenced_variables(config: &Map<String, Value>) -> Vec<String> {
    let mut names = vec![];
    visit_strings(&Value::Object(config.clone()), &mut |s| {
        for (name, _) in placeholders(s) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    });
    names
}

fn visit_strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| visit_strings(i, f)),
        Value::Object(m) => {
            for (k, v) in m {
                f(k);
                visit_strings(v, f);
            }
        }
        _ => {}
    }
}

/// The `${NAME}` / `${NAME:-default}` placeholders of `s`, as
/// (name, default) with their byte ranges.
fn placeholder_spans(s: &str) -> Vec<(std::ops::Range<usize>, String, Option<String>)> {
    let bytes = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'$' || bytes[i + 1] != b'{' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 2;
        let name_start = j;
        if j < bytes.len() && (bytes[j].is_ascii_alphabetic() || bytes[j] == b'_') {
            j += 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
        }
        if j == name_start {
            i += 2;
            continue;
        }
        let name = s[name_start..j].to_string();
        if j < bytes.len() && bytes[j] == b'}' {
            out.push((start..j + 1, name, None));
            i = j + 1;
            continue;
        }
        if s[j..].starts_with(":-")
            && let Some(end) = s[j + 2..].find('}')
        {
            let default = s[j + 2..j + 2 + end].to_string();
            out.push((start..j + 2 + end + 1, name, Some(default)));
            i = j + 2 + end + 1;
            continue;
        }
        i += 2;
    }
    out
}

fn placeholders(s: &str) -> Vec<(String, Option<String>)> {
    placeholder_spans(s)
        .into_iter()
        .map(|(_, n, d)| (n, d))
        .collect()
}

/// Expands `${VAR}` / `${VAR:-default}` in every string (keys included):
/// `secret(name)` first, then the readable environment, then the default.
pub fn expand(config: &Map<String, Value>, secret: &dyn Fn(&str) -> Option<String>) -> Value {
    let lookup = |name: &str, default: Option<&String>| -> Option<String> {
        secret(name)
            .or_else(|| {
                READABLE_ENV
                    .contains(&name)
                    .then(|| std::env::var(name).ok())
                    .flatten()
            })
            .or_else(|| default.cloned())
    };
    let expand_str = |s: &str| -> String {
        let spans = placeholder_spans(s);
        if spans.is_empty() {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for (range, name, default) in spans {
            out.push_str(&s[at..range.start]);
            match lookup(&name, default.as_ref()) {
                Some(v) => out.push_str(&v),
                None => out.push_str(&s[range.clone()]),
            }
            at = range.end;
        }
        out.push_str(&s[at..]);
        out
    };
    fn walk(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
        match v {
            Value::String(s) => Value::String(f(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, f)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (f(k), walk(v, f))).collect()),
            other => other.clone(),
        }
    }
    walk(&Value::Object(config.clone()), &expand_str)
}

/// The servers of an (expanded) config, in their configured order. Errors
/// name the offending server and field; they never quote a value.
pub fn parse(config: &Value) -> Result<Vec<ServerConfig>, String> {
    let Value::Object(root) = config else {
        return Err("mcp_config must be an object".into());
    };
    let wrapped;
    let servers = match root.get("mcpServers") {
        Some(Value::Object(s)) => s,
        Some(_) => return Err("mcp_config.mcpServers must be an object".into()),
        None => {
            wrapped = root
                .iter()
                .filter(|(_, v)| looks_like_server(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<String, Value>>();
            &wrapped
        }
    };
    if servers.len() > MAX_SERVERS {
        return Err(format!(
            "mcp_config has {} servers; at most {MAX_SERVERS} are supported",
            servers.len()
        ));
    }
    servers
        .iter()
        .map(|(name, server)| {
            let at = format!("mcp_config.mcpServers[{}]", py_quote(name));
            let Value::Object(server) = server else {
                return Err(format!("{at} must be an object"));
            };
            Ok(ServerConfig {
                name: name.clone(),
                server: parse_server(server, &at)?,
            })
        })
        .collect()
}

fn py_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn parse_server(server: &Map<String, Value>, at: &str) -> Result<McpServer, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match server.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{at}.{key} must be a string")),
        }
    };
    let pairs = |key: &str| -> Result<Vec<(String, String)>, String> {
        match server.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(format!("{at}.{key}[{}] must be a string", py_quote(k))),
                })
                .collect(),
            Some(_) => Err(format!("{at}.{key} must be an object")),
        }
    };
    if let Some(command) = text("command")? {
        if let Some(t) = text("transport")?.filter(|t| t != "stdio") {
            return Err(format!(
                "{at}.transport is '{t}', but a server with a command uses stdio"
            ));
        }
        let args = match server.get("args") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| {
                    a.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{at}.args must be a list of strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("{at}.args must be a list of strings")),
        };
        return Ok(McpServer::Stdio {
            command,
            args,
            env: pairs("env")?,
            cwd: text("cwd")?,
        });
    }
    let Some(url) = text("url")? else {
        return Err(format!(
            "{at} needs a 'command' (stdio) or a 'url' (remote)"
        ));
    };
    if !url.starts_with("http") {
        return Err(format!("{at}.url must be an http(s) URL"));
    }
    let transport = match text("transport")?.as_deref() {
        None => infer_transport(&url),
        Some("http" | "streamable-http" | "shttp") => Transport::Http,
        Some("sse") => Transport::Sse,
        Some(other) => {
            return Err(format!(
                "{at}.transport '{other}' is not one of 'http', 'streamable-http', 'sse'"
            ));
        }
    };
    let mut headers = pairs("headers")?;
    match text("auth")?.as_deref() {
        None | Some("") => {}
        Some("oauth") => {
            return Err(format!(
                "{at}.auth 'oauth' needs an interactive login, which this server cannot do; \
                 pass a bearer token or an Authorization header"
            ));
        }
        Some(token) => {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            {
                headers.push(("Authorization".into(), format!("Bearer {token}")));
            }
        }
    }
    Ok(McpServer::Remote {
        transport,
        url,
        headers,
    })
}

/// `sse` when the URL's path has an `/sse` segment, else streamable HTTP.
fn infer_transport(url: &str) -> Transport {
    let path = reqwest::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let is_sse = path.match_indices("/sse").any(|(i, _)| {
        let rest = &path[i + 4..];
        rest.is_empty() || rest.starts_with('/')
    });
    if is_sse {
        Transport::Sse
    } else {
        Transport::Http
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn servers_stdio_and_remote() {
        let cfg = json!({"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "srv"], "env": {"TOKEN": "t", "N": "3"}, "cwd": "/tmp"},
            "web": {"url": "https://example.com/mcp", "headers": {"X-A": "1"}, "auth": "tok"},
            "old": {"url": "http://127.0.0.1:9/sse"},
            "forced": {"url": "http://127.0.0.1:9/x", "transport": "sse"},
        }});
        let servers = parse(&cfg).unwrap();
        assert_eq!(servers.len(), 4);
        match &servers[0].server {
            McpServer::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                assert_eq!(command, "npx");
                assert_eq!(args, &["-y", "srv"]);
                assert_eq!(
                    env,
                    &[("TOKEN".into(), "t".into()), ("N".into(), "3".into())]
                );
                assert_eq!(cwd.as_deref(), Some("/tmp"));
            }
            other => panic!("{other:?}"),
        }
        match &servers[1].server {
            McpServer::Remote {
                transport, headers, ..
            } => {
                assert_eq!(*transport, Transport::Http);
                assert!(headers.contains(&("Authorization".into(), "Bearer tok".into())));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            servers[2].server,
            McpServer::Remote {
                transport: Transport::Sse,
                ..
            }
        ));
        assert!(matches!(
            servers[3].server,
            McpServer::Remote {
                transport: Transport::Sse,
                ..
            }
        ));
    }

    #[test]
    fn top_level_servers_and_errors() {
        let servers = parse(&json!({"a": {"command": "x"}, "note": "kept out"})).unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].name, "a");
        let e = parse(&json!({"mcpServers": {"a": {"args": []}}})).unwrap_err();
        assert!(e.contains("'a'") && e.contains("command"), "{e}");
        let e = parse(&json!({"mcpServers": {"a": {"command": "x", "env": {"K": ["secret"]}}}}))
            .unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert!(parse(&json!({"mcpServers": {"a": {"url": "ftp://x"}}})).is_err());
        assert!(
            parse(&json!({"mcpServers": {"a": {"url": "http://x", "auth": "oauth"}}})).is_err()
        );
        assert!(!has_servers(Some(&obj(json!({"mcpServers": {}})))));
        assert!(has_servers(Some(&obj(json!({"x": {"url": "http://h"}})))));
        assert!(!has_servers(None));
    }

    #[test]
    fn variables_expand_from_secrets_then_defaults() {
        let cfg = obj(json!({"mcpServers": {"s": {
            "command": "run",
            "args": ["--token=${TOKEN}", "${MISSING}", "${UNSET:-fallback}", "$plain", "${}"],
            "env": {"K_${TOKEN}": "${HOME}"}
        }}}));
        assert_eq!(
            referenced_variables(&cfg),
            ["TOKEN", "MISSING", "UNSET", "HOME"]
        );
        let secret = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
        let out = expand(&cfg, &secret);
        let s = &out["mcpServers"]["s"];
        assert_eq!(
            s["args"],
            json!(["--token=s3cret", "${MISSING}", "fallback", "$plain", "${}"])
        );
        let home = std::env::var("HOME").unwrap_or_else(|_| "${HOME}".into());
        assert_eq!(s["env"]["K_s3cret"], json!(home));
        // This process's keys are never readable.
        let cfg = obj(json!({"a": "${OH_SECRET_KEY:-none}"}));
        assert_eq!(expand(&cfg, &|_| None)["a"], "none");
    }
}
