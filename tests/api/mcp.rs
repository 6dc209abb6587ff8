//! MCP tools inside conversations, end to end: a small MCP server over
//! stdio (a standard-library Python script the tests write) configured in
//! the agent's `mcp_config`, the scripted LLM calling its tools. Covers the
//! tools offered to the LLM and recorded in the `SystemPromptEvent`, a call
//! and its observation, an error result, a validation error, a server that
//! crashes mid-call (and is started again), one that never answers (the
//! call times out), a bad command and a silent server at start (the first
//! message is refused), two servers (prefixed names), remote servers over
//! streamable HTTP and SSE, and the server's process group gone after
//! delete and eviction; the config's secrets stay out of answers and the
//! data directory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::llm::{Reply, ScriptedLlm};

/// The test server: JSON-RPC over stdin/stdout, one message a line.
/// `MCP_PID_FILE` gets its pid (and its child's, with `MCP_CHILD=1`);
/// `MCP_MODE=silent` never answers, `MCP_MODE=exit` (or an existing
/// `MCP_FAIL_IF_EXISTS` file) dies at once.
const SERVER: &str = r#"
import json, os, subprocess, sys, time

mode = os.environ.get("MCP_MODE", "")
if os.path.exists(os.environ.get("MCP_FAIL_IF_EXISTS", "/nonexistent")):
    mode = "exit"
if mode == "exit":
    sys.stderr.write("fatal: no credentials\n")
    sys.exit(3)
pid_file = os.environ.get("MCP_PID_FILE")
child = None
if os.environ.get("MCP_CHILD") == "1":
    child = subprocess.Popen(["sleep", "300"])
if pid_file:
    with open(pid_file, "a") as f:
        f.write("%d\n" % os.getpid())
        if child:
            f.write("%d\n" % child.pid)
print("a banner that is not JSON", flush=True)

TOOLS = [
    {"name": "add", "description": "Add two integers.",
     "inputSchema": {"type": "object", "properties": {
         "a": {"type": "integer", "description": "first addend"},
         "b": {"type": "integer"}}, "required": ["a", "b"]},
     "annotations": {"title": "Adder", "readOnlyHint": True}},
    {"name": "whoami", "inputSchema": {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "description": "labels"}}}},
    {"name": "fail", "description": "Always fails.", "inputSchema": {"type": "object"}},
    {"name": "crash", "description": "Exits.", "inputSchema": {"type": "object"}},
    {"name": "hang", "description": "Never answers.", "inputSchema": {"type": "object"}},
    {"name": "picture", "description": "An image.", "inputSchema": {"type": "object"}},
]

def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()

def result(mid, content, is_error=False):
    send({"jsonrpc": "2.0", "id": mid, "result": {"content": content, "isError": is_error}})

for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    method, mid = msg.get("method"), msg.get("id")
    if mode == "silent":
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "test", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "listing"}})
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        args = msg["params"].get("arguments") or {}
        if name == "add":
            result(mid, [{"type": "text", "text": str(args["a"] + args["b"])}])
        elif name == "whoami":
            text = json.dumps({"token": os.environ.get("MCP_TOKEN"), "tags": args.get("tags"),
                               "leaked": [k for k in os.environ if k.startswith("OH_")]})
            result(mid, [{"type": "text", "text": text}])
        elif name == "fail":
            result(mid, [{"type": "text", "text": "it failed"}], True)
        elif name == "crash":
            os._exit(4)
        elif name == "hang":
            time.sleep(3600)
        elif name == "picture":
            result(mid, [{"type": "image", "data": "aGk=", "mimeType": "image/png"},
                         {"type": "audio", "data": "aGk=", "mimeType": "audio/wav"}])
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": "Unknown tool: " + name}})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
"#;

/// Writes the server script into the app's directory; returns its path.
fn write_server(app: &TestApp) -> String {
    let path = app.path("mcp_server.py");
    std::fs::write(&path, SERVER).unwrap();
    path.to_string_lossy().into_owned()
}

/// A stdio server config for the test script, with extra environment.
fn server(app: &TestApp, env: Value) -> Value {
    let mut env = env;
    env["MCP_TOKEN"] = json!("tok-7f3a-secret");
    json!({"command": "python3", "args": ["-u", write_server(app)], "env": env})
}

fn body(app: &TestApp, llm: &ScriptedLlm, servers: Value) -> Value {
    let mut b = app.conversation_body(Some(&llm.openai_base));
    b["agent"]["mcp_config"] = json!({ "mcpServers": servers });
    b
}

async fn create(app: &TestApp, b: Value) -> String {
    let (status, info) = app.post("/api/conversations", b).await;
    assert_eq!(status, 201, "{info}");
    info["id"].as_str().unwrap().to_string()
}

async fn run_to_end(app: &TestApp, id: &str, text: &str) -> Vec<Value> {
    app.send_message(id, text, true).await;
    let info = app.wait_status(id, &["finished", "error", "stuck"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    app.all_events(id).await
}

fn observations(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "ObservationEvent")
        .map(|e| &e["observation"])
        .collect()
}

/// The texts of an observation's content.
fn texts(obs: &Value) -> Vec<&str> {
    obs["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect()
}

/// The `role: tool` message content the LLM got for the call `call_id`.
fn tool_result(request: &Value, call_id: &str) -> Value {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == call_id)
        .map(|m| m["content"].clone())
        .unwrap_or(Value::Null)
}

fn pids(file: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether a process exists and is not a zombie.
fn running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

async fn wait_gone(pids: &[i32], what: &str) {
    for _ in 0..100 {
        if pids.iter().all(|p| !running(*p)) {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: processes {pids:?} still running");
}

#[actix_web::test]
async fn mcp_tools_are_offered_called_and_observed() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::Tools(
            Some("Adding.".into()),
            vec![(
                "add".into(),
                json!({"a": "2", "b": 3, "summary": "add two numbers"}),
            )],
        ),
        Reply::tool("whoami", json!({"tags": ["x"], "security_risk": "LOW"})),
        Reply::tool("picture", json!({})),
        Reply::finish("Done."),
    ])
    .await;
    let id = create(
        &app,
        body(&app, &llm, json!({"calc": server(&app, json!({}))})),
    )
    .await;
    let events = run_to_end(&app, &id, "Add 2 and 3.").await;

    // The system prompt lists the MCP tools after the agent's own, before
    // finish and think, as the reference's MCPToolDefinition.
    let sp = events
        .iter()
        .find(|e| e["kind"] == "SystemPromptEvent")
        .unwrap();
    let kinds: Vec<&str> = sp["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "TerminalTool",
            "FileEditorTool",
            "TaskTrackerTool",
            "MCPToolDefinition",
            "MCPToolDefinition",
            "MCPToolDefinition",
            "MCPToolDefinition",
            "MCPToolDefinition",
            "MCPToolDefinition",
            "FinishTool",
            "ThinkTool"
        ]
    );
    let add_def = &sp["tools"][3];
    assert_eq!(add_def["description"], "Add two integers.");
    assert_eq!(add_def["action_type"], "MCPToolAction");
    assert_eq!(add_def["observation_type"], "MCPToolObservation");
    assert_eq!(add_def["title"], "Adder");
    assert_eq!(add_def["annotations"]["readOnlyHint"], true);
    assert_eq!(add_def["mcp_tool"]["name"], "add");
    assert_eq!(
        add_def["mcp_tool"]["inputSchema"]["required"],
        json!(["a", "b"])
    );
    assert_eq!(sp["tools"][4]["description"], "No description provided");

    // The LLM is offered them with parameters derived from the input schema.
    let reqs = llm.agent_requests();
    let names: Vec<&str> = reqs[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "terminal",
            "file_editor",
            "task_tracker",
            "add",
            "whoami",
            "fail",
            "crash",
            "hang",
            "picture",
            "finish",
            "think"
        ]
    );
    let add = &reqs[0]["tools"][3]["function"];
    assert_eq!(add["description"], "Add two integers.");
    let props = add["parameters"]["properties"].as_object().unwrap();
    // Read-only: no security_risk.
    assert_eq!(
        props.keys().collect::<Vec<_>>(),
        ["summary", "a", "b"],
        "{add}"
    );
    assert_eq!(
        props["a"],
        json!({"type": "integer", "description": "first addend"})
    );
    assert_eq!(add["parameters"]["required"], json!(["a", "b"]));
    let whoami = &reqs[0]["tools"][4]["function"]["parameters"]["properties"];
    assert_eq!(whoami["security_risk"]["enum"][0], "UNKNOWN");
    assert_eq!(
        whoami["tags"],
        json!({"type": "array", "items": {"type": "string"}, "description": "labels"})
    );

    // The call: its action, its observation, what the LLM saw of it.
    let actions: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "ActionEvent")
        .collect();
    assert_eq!(actions[0]["tool_name"], "add");
    assert_eq!(
        actions[0]["action"],
        json!({"data": {"a": 2, "b": 3}, "kind": "MCPToolAction"})
    );
    assert_eq!(actions[0]["summary"], "add two numbers");
    let obs = observations(&events);
    assert_eq!(
        *obs[0],
        json!({"content": [
            {"cache_prompt": false, "type": "text", "text": "[Tool 'add' executed.]"},
            {"cache_prompt": false, "type": "text", "text": "5"}],
            "is_error": false, "tool_name": "add", "kind": "MCPToolObservation"})
    );
    let call_id = actions[0]["tool_call_id"].as_str().unwrap();
    let seen = tool_result(&reqs[1], call_id);
    let seen_texts: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert_eq!(seen_texts, ["[Tool 'add' executed.]", "5"]);

    // The server got its configured environment, and none of ours.
    let who: Value = serde_json::from_str(texts(obs[1])[1]).unwrap();
    assert_eq!(
        who,
        json!({"token": "tok-7f3a-secret", "tags": ["x"], "leaked": []})
    );
    // Images are kept; other block types are left out.
    assert_eq!(
        obs[2]["content"][1]["image_urls"],
        json!(["data:image/png;base64,aGk="])
    );
    assert_eq!(obs[2]["content"].as_array().unwrap().len(), 2);

    // The config's secrets never come back.
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert!(info["agent"].get("mcp_config").is_none(), "{info}");
    assert!(!info.to_string().contains("tok-7f3a-secret"));
}

#[actix_web::test]
async fn error_results_validation_errors_and_unknown_tools() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("fail", json!({"security_risk": "LOW"})),
        Reply::tool("add", json!({"a": "x", "b": 1, "c": 2})),
        Reply::finish("Gave up."),
    ])
    .await;
    let id = create(
        &app,
        body(&app, &llm, json!({"calc": server(&app, json!({}))})),
    )
    .await;
    let events = run_to_end(&app, &id, "Try.").await;
    let obs = observations(&events);
    assert_eq!(obs[0]["is_error"], true);
    assert_eq!(texts(obs[0]), ["[Tool 'fail' executed.]", "it failed"]);
    // The LLM is told it was an error.
    let reqs = llm.agent_requests();
    let call_id = events.iter().find(|e| e["kind"] == "ActionEvent").unwrap()["tool_call_id"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = tool_result(&reqs[1], &call_id);
    assert_eq!(
        seen[0]["text"], "[An error occurred during execution.]\n",
        "{seen}"
    );
    // Arguments that do not fit the input schema: the reference's
    // validation error, and no call.
    let err = events
        .iter()
        .find(|e| e["kind"] == "AgentErrorEvent")
        .unwrap();
    assert_eq!(err["tool_name"], "add");
    let text = err["error"].as_str().unwrap();
    assert!(
        text.starts_with("Error validating tool 'add': 2 validation errors for MCPAddAction\na\n  Input should be a valid integer, unable to parse string as an integer"),
        "{text}"
    );
    assert!(
        text.contains("c\n  Extra inputs are not permitted"),
        "{text}"
    );
    assert!(
        text.ends_with("Parameters provided: ['a', 'b', 'c']"),
        "{text}"
    );
}

#[actix_web::test]
async fn a_crashed_server_gives_an_error_and_is_started_again() {
    let app = spawn_app().await;
    let pid_file = app.path("pids");
    let llm = ScriptedLlm::start(vec![
        Reply::tool("crash", json!({"security_risk": "LOW"})),
        Reply::tool("add", json!({"a": 1, "b": 1})),
        Reply::finish("Recovered."),
    ])
    .await;
    let env = json!({"MCP_PID_FILE": pid_file.to_string_lossy()});
    let id = create(&app, body(&app, &llm, json!({"calc": server(&app, env)}))).await;
    let events = run_to_end(&app, &id, "Crash it.").await;
    let obs = observations(&events);
    assert_eq!(obs[0]["kind"], "MCPToolObservation");
    assert_eq!(obs[0]["is_error"], true);
    let text = texts(obs[0])[0];
    assert!(text.starts_with("Error calling MCP tool crash: "), "{text}");
    // The next call started the server again.
    assert_eq!(texts(obs[1]), ["[Tool 'add' executed.]", "2"]);
    assert_eq!(pids(&pid_file).len(), 2, "one start, one restart");
}

#[actix_web::test]
async fn a_server_that_never_answers_times_out() {
    let app = spawn_app_with(|s| s.conversations.mcp_tool_timeout_seconds = 1).await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("hang", json!({"security_risk": "LOW"})),
        Reply::finish("It hung."),
    ])
    .await;
    let id = create(
        &app,
        body(&app, &llm, json!({"calc": server(&app, json!({}))})),
    )
    .await;
    let started = std::time::Instant::now();
    let events = run_to_end(&app, &id, "Hang.").await;
    assert!(started.elapsed() < Duration::from_secs(20));
    let obs = observations(&events);
    assert_eq!(obs[0]["is_error"], true);
    assert!(
        texts(obs[0])[0].starts_with("MCP tool 'hang' timed out after 1 seconds."),
        "{}",
        obs[0]
    );
}

#[actix_web::test]
async fn an_interrupt_cancels_a_call_in_flight() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("hang", json!({"security_risk": "LOW"})),
        Reply::finish("never"),
    ])
    .await;
    let id = create(
        &app,
        body(&app, &llm, json!({"calc": server(&app, json!({}))})),
    )
    .await;
    app.send_message(&id, "Hang.", true).await;
    for _ in 0..200 {
        let events = app.all_events(&id).await;
        if events.iter().any(|e| e["kind"] == "ActionEvent") {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    let started = std::time::Instant::now();
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 200);
    let info = app.wait_status(&id, &["paused"]).await;
    assert_eq!(info["execution_status"], "paused");
    assert!(started.elapsed() < Duration::from_secs(5));
    let events = app.all_events(&id).await;
    let err = events
        .iter()
        .find(|e| e["kind"] == "AgentErrorEvent")
        .expect("the interrupted call is answered");
    assert_eq!(err["tool_name"], "hang");
    assert!(observations(&events).is_empty());
}

#[actix_web::test]
async fn a_loaded_conversation_whose_server_fails_ends_its_run_in_error() {
    let app = spawn_app_with(|s| {
        s.conversations.idle_eviction_seconds = Some(1);
        s.secret_key = Some("test-secret-key".into());
    })
    .await;
    let llm = ScriptedLlm::start(vec![Reply::finish("ok")]).await;
    let marker = app.path("fail-now");
    let pid_file = app.path("pids");
    let env = json!({"MCP_FAIL_IF_EXISTS": marker.to_string_lossy(),
                     "MCP_PID_FILE": pid_file.to_string_lossy()});
    let id = create(&app, body(&app, &llm, json!({"calc": server(&app, env)}))).await;
    run_to_end(&app, &id, "hi").await;
    // Evicted, then loaded again by the next message; its server now fails.
    wait_gone(&pids(&pid_file), "after eviction").await;
    std::fs::write(&marker, "").unwrap();
    app.send_message(&id, "again", true).await;
    let info = app.wait_status(&id, &["error", "finished"]).await;
    assert_eq!(info["execution_status"], "error", "{info}");
    let events = app.all_events(&id).await;
    let err = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "ConversationErrorEvent")
        .expect("an error event");
    assert_eq!(err["code"], "MCPError");
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .starts_with("MCP Connection Failure"),
        "{err}"
    );
}

#[actix_web::test]
async fn servers_that_fail_at_start_refuse_the_first_message() {
    let app = spawn_app_with(|s| s.conversations.mcp_startup_timeout_seconds = 2).await;
    let llm = ScriptedLlm::start(vec![]).await;
    let send = |id: String| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/conversations/{id}/events"),
                json!({"role": "user", "content": [{"type": "text", "text": "hi"}], "run": true}),
            )
            .await
        }
    };
    // A command that does not exist.
    let bad = json!({"bad": {"command": "/nonexistent/mcp-server", "env": {"K": "v-secret-1"}}});
    let id = create(&app, body(&app, &llm, bad)).await;
    let (status, answer) = send(id.clone()).await;
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["detail"], "Internal Server Error");
    let text = answer["exception"].as_str().unwrap();
    assert!(text.starts_with("MCP Connection Failure"), "{text}");
    assert!(text.contains("/nonexistent/mcp-server"), "{text}");
    assert!(!text.contains("v-secret-1"));
    // Nothing was recorded, and the conversation is still there.
    let events = app.all_events(&id).await;
    assert!(
        events
            .iter()
            .all(|e| e["kind"] != "SystemPromptEvent" && e["kind"] != "MessageEvent"),
        "{events:?}"
    );
    let (status, _) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);

    // A server that dies at once.
    let dies = json!({"dies": server(&app, json!({"MCP_MODE": "exit"}))});
    let id = create(&app, body(&app, &llm, dies)).await;
    let (status, answer) = send(id).await;
    assert_eq!(status, 500);
    assert!(
        answer["exception"]
            .as_str()
            .unwrap()
            .starts_with("MCP Connection Failure"),
        "{answer}"
    );

    // A server that never answers: the set-up times out.
    let silent = json!({"silent": server(&app, json!({"MCP_MODE": "silent"}))});
    let id = create(&app, body(&app, &llm, silent)).await;
    let started = std::time::Instant::now();
    let (status, answer) = send(id).await;
    assert_eq!(status, 500);
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = answer["exception"].as_str().unwrap();
    assert!(
        text.starts_with("MCP tool listing timed out after 2 seconds"),
        "{text}"
    );
    assert!(text.contains("silent"), "{text}");

    // A malformed config is the client's mistake: 400, naming the field.
    let malformed = json!({"nothing": {"args": ["x"], "env": {"K": "v-secret-2"}}});
    let id = create(&app, body(&app, &llm, malformed)).await;
    let (status, answer) = send(id).await;
    assert_eq!(status, 400, "{answer}");
    let detail = answer["detail"].as_str().unwrap();
    assert!(
        detail.contains("mcp_config.mcpServers['nothing']"),
        "{detail}"
    );
    assert!(!detail.contains("v-secret-2"));

    // An initial message meets the same refusal.
    let mut b = body(&app, &llm, json!({"bad": {"command": "/nonexistent/x"}}));
    b["initial_message"] = json!({"role": "user", "content": [{"type": "text", "text": "hi"}]});
    let (status, answer) = app.post("/api/conversations", b).await;
    assert_eq!(status, 500, "{answer}");
    assert!(llm.agent_requests().is_empty());
}

#[actix_web::test]
async fn two_servers_prefix_their_tools_and_skip_a_broken_one() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("one_add", json!({"a": 20, "b": 22})),
        Reply::finish("42."),
    ])
    .await;
    let servers = json!({
        "one": server(&app, json!({})),
        "two": server(&app, json!({})),
        "broken": {"command": "/nonexistent/mcp-server"},
    });
    let id = create(&app, body(&app, &llm, servers)).await;
    let events = run_to_end(&app, &id, "Add.").await;
    let names: Vec<String> = llm.agent_requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"one_add".to_string()), "{names:?}");
    assert!(names.contains(&"two_picture".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("broken")));
    let obs = observations(&events);
    assert_eq!(texts(obs[0]), ["[Tool 'one_add' executed.]", "42"]);
}

#[actix_web::test]
async fn filter_tools_regex_and_duplicate_names() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![Reply::finish("ok")]).await;
    let mut b = body(&app, &llm, json!({"calc": server(&app, json!({}))}));
    b["agent"]["filter_tools_regex"] = json!("add|who");
    let id = create(&app, b).await;
    run_to_end(&app, &id, "hi").await;
    let names: Vec<String> = llm.agent_requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"add".into()) && names.contains(&"whoami".into()));
    assert!(!names.contains(&"fail".into()), "{names:?}");

    // A tool named like one of the agent's: the reference's refusal.
    let script = app.path("dup.py");
    std::fs::write(
        &script,
        SERVER.replace("\"name\": \"add\"", "\"name\": \"terminal\""),
    )
    .unwrap();
    let dup = json!({"d": {"command": "python3", "args": [script.to_string_lossy()]}});
    let id = create(&app, body(&app, &llm, dup)).await;
    let (status, answer) = app
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        answer["exception"],
        "Duplicate tool names found: {'terminal'}"
    );
}

#[actix_web::test]
async fn sessions_close_with_the_conversation() {
    // With a key: the config must survive at rest for the revival.
    let app = spawn_app_with(|s| {
        s.conversations.idle_eviction_seconds = Some(1);
        s.secret_key = Some("test-secret-key".into());
    })
    .await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("add", json!({"a": 1, "b": 2})),
        Reply::finish("ok"),
        Reply::tool("add", json!({"a": 1, "b": 2})),
        Reply::finish("ok"),
        Reply::tool("add", json!({"a": 1, "b": 2})),
        Reply::finish("ok"),
    ])
    .await;
    // Deleted: the server and its child are gone.
    let pid_file = app.path("pids-delete");
    let env = json!({"MCP_PID_FILE": pid_file.to_string_lossy(), "MCP_CHILD": "1"});
    let id = create(&app, body(&app, &llm, json!({"calc": server(&app, env)}))).await;
    run_to_end(&app, &id, "Add.").await;
    let started = pids(&pid_file);
    assert_eq!(started.len(), 2, "server and child");
    assert!(started.iter().all(|p| running(*p)));
    let (status, _) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    wait_gone(&started, "after delete").await;

    // Evicted for idleness: the same.
    let pid_file = app.path("pids-evict");
    let env = json!({"MCP_PID_FILE": pid_file.to_string_lossy(), "MCP_CHILD": "1"});
    let id = create(&app, body(&app, &llm, json!({"calc": server(&app, env)}))).await;
    run_to_end(&app, &id, "Add.").await;
    let started = pids(&pid_file);
    assert_eq!(started.len(), 2);
    wait_gone(&started, "after eviction").await;
    // The conversation comes back and starts its server again on its next run.
    let events = run_to_end(&app, &id, "Again.").await;
    let adds: Vec<&Value> = observations(&events)
        .into_iter()
        .filter(|o| o["tool_name"] == "add")
        .collect();
    assert_eq!(adds.len(), 2);
    assert_eq!(texts(adds[1]), ["[Tool 'add' executed.]", "3"]);
    assert_eq!(pids(&pid_file).len(), 4, "started again after the eviction");
}

#[actix_web::test]
async fn mcp_secrets_are_sealed_at_rest() {
    let app = spawn_app_with(|s| s.secret_key = Some("test-secret-key".into())).await;
    let llm = ScriptedLlm::start(vec![Reply::finish("ok")]).await;
    let marker = "mcp-env-secret-91c2";
    let servers = json!({"calc": server(&app, json!({"EXTRA": marker}))});
    let id = create(&app, body(&app, &llm, servers)).await;
    run_to_end(&app, &id, "hi").await;
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert!(!info.to_string().contains(marker));
    let (_, events) = app
        .get(&format!("/api/conversations/{id}/events/search"))
        .await;
    assert!(!events.to_string().contains(marker));
    // Nothing under the data directory holds it in plaintext.
    let mut stack = vec![app.dir.path().to_path_buf()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "mcp_server.py") {
                files += 1;
                let bytes = std::fs::read(&path).unwrap_or_default();
                assert!(
                    !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
    }
    assert!(files > 0);
}

/// What the remote test server saw.
#[derive(Default)]
struct Seen {
    sse: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    deleted: Vec<String>,
    calls: Vec<String>,
}

fn remote_answer(msg: &Value, transport: &str, seen: &Mutex<Seen>) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let result = match msg["method"].as_str()? {
        "initialize" => {
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "r", "version": "1"}})
        }
        "tools/list" => json!({"tools": [{"name": "echo", "description": "Echoes.",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]}),
        "tools/call" => {
            seen.lock().unwrap().calls.push(transport.to_string());
            let text = msg["params"]["arguments"]["text"].as_str().unwrap_or("");
            json!({"content": [{"type": "text", "text": format!("{transport}: {text}")}]})
        }
        _ => {
            return Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "nope"}}),
            );
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// Streamable HTTP at `/mcp` (JSON answers, a session id, bearer auth) and
/// the HTTP+SSE transport at `/sse` + `/messages`, on loopback.
fn start_remote_server() -> (u16, Arc<Mutex<Seen>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route(
                "/mcp",
                web::post().to(
                    |req: HttpRequest, body: web::Bytes, seen: web::Data<Arc<Mutex<Seen>>>| async move {
                        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
                        if auth != Some("Bearer tok-remote") {
                            return HttpResponse::Unauthorized().finish();
                        }
                        let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let session = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok());
                        if msg["method"] != "initialize" && session != Some("sess-9") {
                            return HttpResponse::NotFound().finish();
                        }
                        match remote_answer(&msg, "http", &seen) {
                            None => HttpResponse::Accepted().finish(),
                            Some(a) => HttpResponse::Ok()
                                .insert_header(("mcp-session-id", "sess-9"))
                                .json(a),
                        }
                    },
                ),
            )
            .route(
                "/mcp",
                web::delete().to(|req: HttpRequest, seen: web::Data<Arc<Mutex<Seen>>>| async move {
                    if let Some(s) = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                        seen.lock().unwrap().deleted.push(s.to_string());
                    }
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/sse",
                web::get().to(|seen: web::Data<Arc<Mutex<Seen>>>| async move {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                    let _ = tx.send("event: endpoint\ndata: /messages?session_id=1\n\n".into());
                    seen.lock().unwrap().sse = Some(tx);
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|s| (Ok::<_, actix_web::Error>(web::Bytes::from(s)), rx))
                    });
                    HttpResponse::Ok()
                        .content_type("text/event-stream")
                        .streaming(stream)
                }),
            )
            .route(
                "/messages",
                web::post().to(|body: web::Bytes, seen: web::Data<Arc<Mutex<Seen>>>| async move {
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if let Some(a) = remote_answer(&msg, "sse", &seen) {
                        let tx = seen.lock().unwrap().sse.clone();
                        if let Some(tx) = tx {
                            let _ = tx.send(format!("event: message\ndata: {a}\n\n"));
                        }
                    }
                    HttpResponse::Accepted().finish()
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (port, seen)
}

#[actix_web::test]
async fn remote_servers_over_streamable_http_and_sse() {
    let app = spawn_app().await;
    let (port, seen) = start_remote_server();
    let llm = ScriptedLlm::start(vec![
        Reply::Tools(
            None,
            vec![
                (
                    "web_echo".into(),
                    json!({"text": "one", "security_risk": "LOW"}),
                ),
                (
                    "old_echo".into(),
                    json!({"text": "two", "security_risk": "LOW"}),
                ),
            ],
        ),
        Reply::finish("ok"),
    ])
    .await;
    let servers = json!({
        "web": {"url": format!("http://127.0.0.1:{port}/mcp"), "auth": "tok-remote"},
        "old": {"url": format!("http://127.0.0.1:{port}/sse")},
    });
    let id = create(&app, body(&app, &llm, servers)).await;
    let events = run_to_end(&app, &id, "Echo.").await;
    let obs = observations(&events);
    assert_eq!(texts(obs[0]), ["[Tool 'web_echo' executed.]", "http: one"]);
    assert_eq!(texts(obs[1]), ["[Tool 'old_echo' executed.]", "sse: two"]);
    assert_eq!(seen.lock().unwrap().calls, ["http", "sse"]);
    let (status, _) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    for _ in 0..100 {
        if !seen.lock().unwrap().deleted.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.lock().unwrap().deleted,
        ["sess-9"],
        "the HTTP session is ended"
    );
}
