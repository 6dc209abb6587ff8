//! Conversation hooks end to end, against the scripted LLM and real hook
//! commands: PreToolUse blocking (exit 2 and a JSON `deny`) and allowing,
//! matchers that do not match, PostToolUse, UserPromptSubmit blocking and
//! adding context, Stop denying then allowing, SessionStart/SessionEnd and
//! the `hook_config` state, timeouts, interrupts and actor restarts while a
//! hook runs, and refused configurations.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::llm::{Reply, ScriptedLlm};

async fn hook_app(script: Vec<Reply>, hook_config: Value) -> (TestApp, ScriptedLlm, String) {
    hook_app_with(script, hook_config, |_| {}).await
}

async fn hook_app_with(
    script: Vec<Reply>,
    hook_config: Value,
    settings: impl FnOnce(&mut agent_server::settings::Settings),
) -> (TestApp, ScriptedLlm, String) {
    let app = spawn_app_with(settings).await;
    let llm = ScriptedLlm::start(script).await;
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["agent"]["llm"]["model"] = json!("openai/mock-model");
    body["hook_config"] = hook_config;
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    (app, llm, id)
}

/// Kinds in order, state updates as `state:<key>`.
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "ConversationStateUpdateEvent" => format!("state:{}", e["key"].as_str().unwrap()),
            "HookExecutionEvent" => format!("hook:{}", e["hook_event_type"].as_str().unwrap()),
            k => k.to_string(),
        })
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

fn hooks_of<'a>(events: &'a [Value], hook_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "HookExecutionEvent" && e["hook_event_type"] == hook_type)
        .collect()
}

fn position(events: &[Value], id: &str) -> usize {
    events
        .iter()
        .position(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no event {id}"))
}

/// The tool results the LLM was shown in one request (OpenAI shape).
fn tool_texts(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].to_string())
        .collect()
}

fn user_texts(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].to_string())
        .collect()
}

async fn wait_for(
    app: &TestApp,
    id: &str,
    what: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = app.all_events(id).await;
        if pred(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            kinds(&events)
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn pre_tool_use_exit_2_blocks_the_action() {
    let (app, llm, id) = hook_app(
        vec![Reply::terminal("touch ran.txt"), Reply::finish("done")],
        json!({"pre_tool_use": [{"matcher": "terminal", "hooks": [{
            "command": "cat > pre.json; env | grep -E '^OPENHANDS_(EVENT_TYPE|PROJECT_DIR|SESSION_ID|TOOL_NAME)=' | sort > env.txt; echo 'dangerous command' >&2; exit 2",
            "timeout": 10}]}]}),
    )
    .await;
    app.send_message(&id, "touch a file", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    assert_eq!(info["blocked_actions"], json!({}), "the block was used up");
    let ws = app.path("ws");
    assert!(
        !ws.join("ran.txt").exists(),
        "the blocked command did not run"
    );
    let events = app.all_events(&id).await;
    let k = kinds(&events);
    let action = of_kind(&events, "ActionEvent")[0];
    let hook = hooks_of(&events, "PreToolUse")[0];
    let at = position(&events, action["id"].as_str().unwrap());
    assert_eq!(k[at - 2], "hook:PreToolUse", "{k:?}");
    assert_eq!(k[at - 1], "state:blocked_actions", "{k:?}");
    assert_eq!(
        events[at - 1]["value"],
        json!({action["id"].as_str().unwrap(): "dangerous command"})
    );
    assert_eq!(hook["source"], "hook");
    assert_eq!(hook["tool_name"], "terminal");
    assert_eq!(hook["action_id"], action["id"]);
    assert_eq!(
        (
            hook["success"].clone(),
            hook["blocked"].clone(),
            hook["exit_code"].clone()
        ),
        (json!(false), json!(true), json!(2))
    );
    assert_eq!(hook["stderr"], "dangerous command\n");
    assert_eq!(hook["message_id"], Value::Null);
    assert_eq!(
        hook["hook_input"],
        json!({"tool_name": "terminal", "tool_input": action["action"]})
    );
    let keys: Vec<&String> = hook.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "timestamp",
            "source",
            "hook_event_type",
            "hook_command",
            "tool_name",
            "success",
            "blocked",
            "exit_code",
            "stdout",
            "stderr",
            "reason",
            "additional_context",
            "error",
            "action_id",
            "message_id",
            "hook_input",
            "kind"
        ]
    );
    let reject = of_kind(&events, "UserRejectObservation")[0];
    assert_eq!(reject["rejection_source"], "hook");
    assert_eq!(reject["rejection_reason"], "dangerous command");
    assert_eq!(reject["action_id"], action["id"]);
    assert!(
        of_kind(&events, "ObservationEvent")
            .iter()
            .all(|o| o["tool_name"] != "terminal")
    );
    // The LLM saw the rejection as the tool's result.
    let second = &llm.agent_requests()[1];
    assert!(
        tool_texts(second)
            .iter()
            .any(|t| t.contains("Action rejected: dangerous command")),
        "{second}"
    );
    // The hook ran in the working directory with the input and variables of the reference.
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("pre.json")).unwrap()).unwrap();
    assert_eq!(input["event_type"], "PreToolUse");
    assert_eq!(input["tool_name"], "terminal");
    assert_eq!(input["tool_input"]["command"], "touch ran.txt");
    assert_eq!(input["tool_input"]["kind"], "TerminalAction");
    assert_eq!(input["session_id"], id);
    assert_eq!(input["working_dir"], ws.to_string_lossy().as_ref());
    assert_eq!(input["tool_response"], Value::Null);
    assert_eq!(input["metadata"], json!({}));
    let env = std::fs::read_to_string(ws.join("env.txt")).unwrap();
    assert_eq!(
        env,
        format!(
            "OPENHANDS_EVENT_TYPE=PreToolUse\nOPENHANDS_PROJECT_DIR={}\nOPENHANDS_SESSION_ID={id}\nOPENHANDS_TOOL_NAME=terminal\n",
            ws.display()
        )
    );
}

#[actix_web::test]
async fn pre_tool_use_json_deny_and_allow_in_one_response() {
    let app = spawn_app().await;
    let made = app
        .path("ws")
        .join("made.txt")
        .to_string_lossy()
        .into_owned();
    let llm = ScriptedLlm::start(vec![
        Reply::Tools(
            None,
            vec![
                (
                    "file_editor".into(),
                    json!({"command": "create", "path": made, "file_text": "x\n"}),
                ),
                ("terminal".into(), json!({"command": "touch nope.txt"})),
            ],
        ),
        Reply::finish("done"),
    ])
    .await;
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["hook_config"] = json!({"PreToolUse": [
        {"matcher": "terminal", "hooks": [{"command": "echo '{\"decision\": \"deny\", \"reason\": \"no terminal today\"}'"}]},
        {"matcher": "file_.*", "hooks": [{"command": "echo '{\"decision\": \"allow\"}'"}]}
    ]});
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    app.send_message(&id, "two things", true).await;
    app.wait_status(&id, &["finished"]).await;
    assert!(
        app.path("ws").join("made.txt").exists(),
        "the allowed edit ran"
    );
    assert!(
        !app.path("ws").join("nope.txt").exists(),
        "the denied command did not"
    );
    let events = app.all_events(&id).await;
    let k: Vec<String> = kinds(&events)
        .into_iter()
        .filter(|k| k != "state:stats" && k != "state:execution_status")
        .collect();
    let from = k.iter().position(|k| k == "hook:PreToolUse").unwrap();
    assert_eq!(
        k[from..from + 8],
        [
            "hook:PreToolUse",
            "ActionEvent",
            "hook:PreToolUse",
            "state:blocked_actions",
            "ActionEvent",
            "ObservationEvent",
            "state:blocked_actions",
            "UserRejectObservation"
        ],
        "{k:?}"
    );
    let pre = hooks_of(&events, "PreToolUse");
    assert_eq!(pre.len(), 2, "finish matches neither matcher");
    assert_eq!(
        (
            pre[0]["tool_name"].clone(),
            pre[0]["blocked"].clone(),
            pre[0]["success"].clone()
        ),
        (json!("file_editor"), json!(false), json!(true))
    );
    assert_eq!(
        (
            pre[1]["tool_name"].clone(),
            pre[1]["blocked"].clone(),
            pre[1]["success"].clone()
        ),
        (json!("terminal"), json!(true), json!(true))
    );
    assert_eq!(pre[1]["reason"], "no terminal today");
    assert_eq!(pre[1]["exit_code"], 0);
    assert_eq!(
        of_kind(&events, "UserRejectObservation")[0]["rejection_reason"],
        "no terminal today"
    );
    // Time stamps follow the log order even though actions waited for hooks.
    let stamps: Vec<&str> = events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
}

#[actix_web::test]
async fn matchers_that_do_not_match_run_nothing() {
    let (app, _llm, id) = hook_app(
        vec![Reply::terminal("touch ran.txt"), Reply::finish("done")],
        json!({"pre_tool_use": [
            {"matcher": "file_editor", "hooks": [{"command": "exit 2"}]},
            {"matcher": "/task_.*/", "hooks": [{"command": "exit 2"}]},
            {"matcher": "term", "hooks": [{"command": "exit 2"}]}
        ], "stop": [{"matcher": "finish", "hooks": [{"command": "exit 2"}]}]}),
    )
    .await;
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["finished"]).await;
    assert!(app.path("ws").join("ran.txt").exists());
    let events = app.all_events(&id).await;
    assert!(
        of_kind(&events, "HookExecutionEvent").is_empty(),
        "{:?}",
        kinds(&events)
    );
    assert!(of_kind(&events, "UserRejectObservation").is_empty());
}

#[actix_web::test]
async fn post_tool_use_runs_after_each_observation() {
    let (app, _llm, id) = hook_app(
        vec![Reply::terminal("echo hello-post"), Reply::finish("done")],
        json!({"post_tool_use": [{"matcher": "*", "hooks": [{"command": "cat >> post.jsonl; echo >> post.jsonl; echo logged"}]}]}),
    )
    .await;
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["finished"]).await;
    let events = app.all_events(&id).await;
    let post = hooks_of(&events, "PostToolUse");
    assert_eq!(post.len(), 2, "terminal and finish: {:?}", kinds(&events));
    let observations = of_kind(&events, "ObservationEvent");
    for (hook, obs) in post.iter().zip(&observations) {
        assert_eq!(hook["tool_name"], obs["tool_name"]);
        assert_eq!(hook["action_id"], obs["action_id"]);
        assert_eq!(hook["stdout"], "logged\n");
        assert!(hook["success"].as_bool().unwrap() && !hook["blocked"].as_bool().unwrap());
        assert_eq!(hook["hook_input"]["tool_response"], obs["observation"]);
        let at = position(&events, obs["id"].as_str().unwrap());
        assert_eq!(
            events[at - 1]["id"],
            hook["id"],
            "the hook is recorded right before its observation"
        );
    }
    let lines: Vec<Value> = std::fs::read_to_string(app.path("ws").join("post.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event_type"], "PostToolUse");
    assert_eq!(lines[0]["tool_response"]["kind"], "TerminalObservation");
    assert!(lines[0]["tool_response"].to_string().contains("hello-post"));
    assert_eq!(lines[1]["tool_name"], "finish");
}

#[actix_web::test]
async fn user_prompt_submit_blocks_a_message() {
    let (app, llm, id) = hook_app(
        vec![Reply::finish("never")],
        json!({"user_prompt_submit": [{"hooks": [{"command": "cat > prompt.json; echo '{\"decision\": \"deny\", \"reason\": \"no secrets please\"}'"}]}]}),
    )
    .await;
    app.send_message(&id, "my password is hunter2", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    assert_eq!(info["blocked_messages"], json!({}));
    assert!(llm.agent_requests().is_empty(), "the LLM was not called");
    let events = app.all_events(&id).await;
    let message = of_kind(&events, "MessageEvent")[0];
    let at = position(&events, message["id"].as_str().unwrap());
    let k = kinds(&events);
    assert_eq!(
        k[at - 2..at],
        ["hook:UserPromptSubmit", "state:blocked_messages"],
        "{k:?}"
    );
    assert_eq!(
        events[at - 1]["value"],
        json!({message["id"].as_str().unwrap(): "no secrets please"})
    );
    let hook = &events[at - 2];
    assert_eq!(hook["message_id"], message["id"]);
    assert_eq!(
        hook["hook_input"],
        json!({"message": "my password is hunter2"})
    );
    assert_eq!(hook["blocked"], true);
    assert_eq!(hook["tool_name"], Value::Null);
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(app.path("ws").join("prompt.json")).unwrap())
            .unwrap();
    assert_eq!(input["event_type"], "UserPromptSubmit");
    assert_eq!(input["message"], "my password is hunter2");
    assert_eq!(info["last_user_message_id"], message["id"]);
}

#[actix_web::test]
async fn user_prompt_submit_context_reaches_the_llm() {
    let (app, llm, id) = hook_app(
        vec![Reply::finish("ok")],
        json!({"UserPromptSubmit": [{"matcher": "*", "hooks": [
            {"command": "echo '{\"additionalContext\": \"Remember: tabs, not spaces.\"}'"},
            {"command": "echo '{\"additionalContext\": \"And short lines.\"}'"}
        ]}]}),
    )
    .await;
    app.send_message(&id, "write code", true).await;
    app.wait_status(&id, &["finished"]).await;
    let events = app.all_events(&id).await;
    let message = of_kind(&events, "MessageEvent")[0];
    assert_eq!(
        message["extended_content"],
        json!([{"cache_prompt": false, "type": "text", "text": "Remember: tabs, not spaces.\nAnd short lines."}])
    );
    assert_eq!(hooks_of(&events, "UserPromptSubmit").len(), 2);
    let first = &llm.agent_requests()[0];
    let users = user_texts(first);
    assert!(
        users
            .iter()
            .any(|u| u.contains("write code") && u.contains("Remember: tabs, not spaces.")),
        "{users:?}"
    );
}

#[actix_web::test]
async fn stop_hook_denies_then_allows() {
    // Denies finishing until ok.txt exists, like the reference's example.
    let script = "if [ -f ok.txt ]; then exit 0; fi; echo '{\"decision\": \"deny\", \"additionalContext\": \"create ok.txt first\"}'; exit 2";
    let (app, llm, id) = hook_app(
        vec![
            Reply::finish("first try"),
            Reply::terminal("touch ok.txt"),
            Reply::finish("second try"),
        ],
        json!({"stop": [{"matcher": "*", "hooks": [{"command": script, "timeout": 10}]}]}),
    )
    .await;
    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    sock.json(5).await;
    app.send_message(&id, "finish when done", true).await;
    let events = wait_for(&app, &id, "two Stop hook runs", |e| {
        hooks_of(e, "Stop").len() == 2
    })
    .await;
    let info = app.wait_status(&id, &["finished"]).await;
    assert_eq!(info["execution_status"], "finished");
    let stop = hooks_of(&events, "Stop");
    assert_eq!(
        (
            stop[0]["blocked"].clone(),
            stop[0]["success"].clone(),
            stop[0]["exit_code"].clone()
        ),
        (json!(true), json!(false), json!(2))
    );
    assert_eq!(stop[0]["additional_context"], "create ok.txt first");
    assert_eq!(stop[0]["hook_input"], json!({"reason": "agent_finished"}));
    assert_eq!(
        (stop[1]["blocked"].clone(), stop[1]["success"].clone()),
        (json!(false), json!(true))
    );
    let feedback: Vec<&Value> = of_kind(&events, "MessageEvent")
        .into_iter()
        .filter(|m| m["source"] == "environment")
        .collect();
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0]["llm_message"]["role"], "user");
    assert_eq!(
        feedback[0]["llm_message"]["content"][0]["text"],
        "[Stop hook feedback] create ok.txt first"
    );
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e["key"] == "execution_status")
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["running", "finished", "running", "finished"]);
    let reqs = llm.agent_requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        user_texts(&reqs[1])
            .iter()
            .any(|u| u.contains("[Stop hook feedback] create ok.txt first"))
    );
    // Subscribers saw the same events, in order.
    let mut seen = vec![];
    while let Some(crate::helpers::WsItem::Json(v)) = sock.next(2).await {
        if v["key"] != "full_state" {
            seen.push(v["id"].clone());
        }
    }
    let stored: Vec<Value> = app
        .all_events(&id)
        .await
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        seen, stored,
        "the socket streamed every event, hook events included"
    );
    // /run on the finished conversation asks the Stop hooks again; they allow.
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200);
    wait_for(&app, &id, "a third Stop run", |e| {
        hooks_of(e, "Stop").len() == 3
    })
    .await;
    assert_eq!(
        app.wait_status(&id, &["finished"]).await["execution_status"],
        "finished"
    );
    assert_eq!(llm.agent_requests().len(), 3);
}

#[actix_web::test]
async fn session_hooks_and_the_hook_config_state() {
    let (app, _llm, id) = hook_app(
        vec![Reply::finish("done")],
        json!({"hooks": {"SessionStart": [{"hooks": [{"command": "echo started >> session.log"}]}],
                          "SessionEnd": [{"hooks": [{"command": "echo ended >> session.log", "async": false}]}]}}),
    )
    .await;
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(
        info["hook_config"],
        Value::Null,
        "set when the session starts, as in the reference"
    );
    app.send_message(&id, "hello", true).await;
    app.wait_status(&id, &["finished"]).await;
    let events = app.all_events(&id).await;
    let k = kinds(&events);
    assert_eq!(
        k[..3],
        [
            "state:hook_config",
            "hook:SessionStart",
            "SystemPromptEvent"
        ],
        "{k:?}"
    );
    let normalized = json!({
        "pre_tool_use": [], "post_tool_use": [], "user_prompt_submit": [],
        "session_start": [{"matcher": "*", "hooks": [{"type": "command", "command": "echo started >> session.log", "prompt": null, "timeout": 60, "async": false}]}],
        "session_end": [{"matcher": "*", "hooks": [{"type": "command", "command": "echo ended >> session.log", "prompt": null, "timeout": 60, "async": false}]}],
        "stop": []});
    assert_eq!(events[0]["value"], normalized);
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["hook_config"], normalized);
    let start = hooks_of(&events, "SessionStart")[0];
    assert_eq!(
        (start["hook_input"].clone(), start["success"].clone()),
        (Value::Null, json!(true))
    );
    // A second message does not start the session again.
    app.send_message(&id, "again", false).await;
    assert_eq!(
        hooks_of(&app.all_events(&id).await, "SessionStart").len(),
        1
    );
    let log = app.path("ws").join("session.log");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\n");
    let (status, _) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\nended\n");
}

#[actix_web::test]
async fn a_hook_that_times_out_is_killed_and_does_not_block() {
    let (app, _llm, id) = hook_app(
        vec![Reply::terminal("touch ran.txt"), Reply::finish("done")],
        json!({"pre_tool_use": [{"hooks": [{"command": "sleep 30; touch late.txt", "timeout": 1}]}]}),
    )
    .await;
    let started = Instant::now();
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["finished"]).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        app.path("ws").join("ran.txt").exists(),
        "a timed-out hook does not block"
    );
    let events = app.all_events(&id).await;
    let hook = hooks_of(&events, "PreToolUse")[0];
    assert_eq!(
        (
            hook["success"].clone(),
            hook["blocked"].clone(),
            hook["exit_code"].clone()
        ),
        (json!(false), json!(false), json!(-1))
    );
    assert!(
        hook["error"].as_str().unwrap().contains("timed out"),
        "{hook}"
    );
}

#[actix_web::test]
async fn interrupt_and_actor_restart_while_a_hook_runs() {
    let (app, llm, id) = hook_app_with(
        vec![Reply::terminal("echo one"), Reply::terminal("echo two"), Reply::finish("done")],
        json!({"pre_tool_use": [{"hooks": [{"command": "touch hook-started; sleep 3; touch late.txt", "timeout": 60}]}]}),
        |s| s.testing.fault_injection = true,
    )
    .await;
    let ws = app.path("ws");
    let wait_started = |ws: std::path::PathBuf| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ws.join("hook-started").exists() {
            assert!(Instant::now() < deadline, "the hook did not start");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(ws.join("hook-started"));
    };
    app.send_message(&id, "go", true).await;
    wait_started(ws.clone()).await;
    let t = Instant::now();
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        app.wait_status(&id, &["paused"]).await["execution_status"],
        "paused"
    );
    // The action waited for its hook and was never recorded.
    let events = app.all_events(&id).await;
    assert!(
        of_kind(&events, "ActionEvent").is_empty(),
        "{:?}",
        kinds(&events)
    );
    // Now an actor crash while the next hook runs: the run ends as recovered.
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200);
    wait_started(ws.clone()).await;
    let (status, _) = app
        .post(
            &format!("/api/_test/fault/conversations/{id}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let info = app.wait_status(&id, &["error"]).await;
    assert_eq!(info["execution_status"], "error");
    let events = app.all_events(&id).await;
    assert_eq!(
        of_kind(&events, "ConversationErrorEvent").last().unwrap()["code"],
        "ServerRestarted"
    );
    // The killed hooks never finished.
    actix_web::rt::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        !ws.join("late.txt").exists(),
        "the interrupted hooks were killed"
    );
    assert!(llm.remaining() <= 1);
}

#[actix_web::test]
async fn bad_hook_configs_are_refused_with_the_problem() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"OnBoot": []}),
            json!(["body", "hook_config"]),
            "value_error",
            "OnBoot",
        ),
        (
            json!({"on_boot": []}),
            json!(["body", "hook_config", "on_boot"]),
            "extra_forbidden",
            "not permitted",
        ),
        (
            json!({"stop": [], "Stop": []}),
            json!(["body", "hook_config"]),
            "value_error",
            "twice",
        ),
        (
            json!({"stop": {"hooks": []}}),
            json!(["body", "hook_config", "stop"]),
            "list_type",
            "list",
        ),
        (
            json!({"stop": [{"hooks": [{"timeout": 5}]}]}),
            json!(["body", "hook_config", "stop", 0, "hooks", 0, "command"]),
            "missing",
            "required",
        ),
        (
            json!({"pre_tool_use": [{"hooks": [{"command": "x", "timeout": "soon"}]}]}),
            json!([
                "body",
                "hook_config",
                "pre_tool_use",
                0,
                "hooks",
                0,
                "timeout"
            ]),
            "int_parsing",
            "integer",
        ),
        (
            json!({"stop": [{"hooks": [{"command": ""}]}]}),
            json!(["body", "hook_config", "stop", 0, "hooks", 0]),
            "value_error",
            "command",
        ),
        (
            json!("stop"),
            json!(["body", "hook_config"]),
            "model_type",
            "dictionary",
        ),
    ];
    for (cfg, loc, kind, needle) in cases {
        let mut body = app.conversation_body(None);
        body["hook_config"] = cfg.clone();
        let (status, resp) = app.post("/api/conversations", body).await;
        assert_eq!(status, 422, "{cfg}: {resp}");
        let d = &resp["detail"][0];
        assert_eq!(d["loc"], loc, "{cfg}: {resp}");
        assert_eq!(d["type"], kind, "{cfg}: {resp}");
        assert!(d["msg"].as_str().unwrap().contains(needle), "{cfg}: {resp}");
    }
    let (_, count) = app.get("/api/conversations/count").await;
    assert_eq!(count, 0, "nothing was created");
    // null and an empty object are accepted.
    for cfg in [Value::Null, json!({})] {
        let mut body = app.conversation_body(None);
        body["hook_config"] = cfg;
        let (status, resp) = app.post("/api/conversations", body).await;
        assert_eq!(status, 201, "{resp}");
    }
}

#[actix_web::test]
async fn a_hook_session_keeps_its_actor_loaded() {
    let (app, _llm, id) = hook_app_with(
        vec![],
        json!({"session_start": [{"hooks": [{"command": "echo started >> session.log"}]}]}),
        |s| s.conversations.idle_eviction_seconds = Some(1),
    )
    .await;
    app.send_message(&id, "hello", false).await;
    // Idle well past the eviction time: an evicted actor would start a
    // second session on the next message.
    actix_web::rt::time::sleep(Duration::from_millis(3500)).await;
    app.send_message(&id, "still the same session?", false)
        .await;
    assert_eq!(
        hooks_of(&app.all_events(&id).await, "SessionStart").len(),
        1
    );
    let log = std::fs::read_to_string(app.path("ws").join("session.log")).unwrap();
    assert_eq!(log, "started\n");
}

/// The real binary: `kill -9` while a hook runs leaves a recoverable
/// conversation; a restart starts a new session; a clean shutdown runs and
/// records SessionEnd.
#[actix_web::test]
async fn restarts_while_a_hook_runs_and_session_end_at_shutdown() {
    use crate::helpers::{ServerProcess, client_with_key};
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::terminal("echo never")]).await;
    let ws = dir.path().join("ws");
    let client = client_with_key(None);
    let server = ServerProcess::start(dir.path(), &[]);
    let body = json!({
        "agent": {"llm": {"model": "openai/mock-model", "api_key": "sk-test", "base_url": llm.openai_base,
                          "num_retries": 1}, "tools": [{"name": "terminal"}], "kind": "Agent"},
        "workspace": {"working_dir": ws.to_string_lossy(), "kind": "LocalWorkspace"},
        "hook_config": {
            "session_start": [{"hooks": [{"command": "echo started >> session.log"}]}],
            "session_end": [{"hooks": [{"command": "echo ended >> session.log"}]}],
            "pre_tool_use": [{"hooks": [{"command": "touch hook-started; sleep 10", "timeout": 60}]}]
        }
    });
    let info: Value = client
        .post(format!("{}/api/conversations", server.address))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = info["id"].as_str().unwrap().to_string();
    let send = |addr: String, run: bool| {
        let (client, id) = (client.clone(), id.clone());
        async move {
            let r = client
                .post(format!("{addr}/api/conversations/{id}/events"))
                .json(&json!({"role": "user", "content": [{"type": "text", "text": "go"}], "run": run}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    send(server.address.clone(), true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ws.join("hook-started").exists() {
        assert!(
            Instant::now() < deadline,
            "the PreToolUse hook did not start"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();

    let server = ServerProcess::start(dir.path(), &[]);
    let get = |addr: String| {
        let (client, id) = (client.clone(), id.clone());
        async move {
            let v: Value = client
                .get(format!("{addr}/api/conversations/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let info = get(server.address.clone()).await;
    assert_eq!(
        info["execution_status"], "error",
        "recovered, not stuck running: {info}"
    );
    let list = |addr: String| {
        let (client, id) = (client.clone(), id.clone());
        async move {
            let v: Value = client
                .get(format!(
                    "{addr}/api/conversations/{id}/events/search?limit=100"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["items"].as_array().unwrap().clone()
        }
    };
    let events = list(server.address.clone()).await;
    assert!(
        of_kind(&events, "ActionEvent").is_empty(),
        "{:?}",
        kinds(&events)
    );
    assert_eq!(
        of_kind(&events, "ConversationErrorEvent").last().unwrap()["code"],
        "ServerRestarted"
    );
    assert_eq!(hooks_of(&events, "SessionStart").len(), 1);
    // The restarted server is a new session, as for the reference.
    send(server.address.clone(), false).await;
    let log = ws.join("session.log");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\nstarted\n");
    assert_eq!(server.terminate(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "started\nstarted\nended\n"
    );

    let server = ServerProcess::start(dir.path(), &[]);
    let events = list(server.address.clone()).await;
    let k = kinds(&events);
    assert_eq!(
        k.last().map(String::as_str),
        Some("hook:SessionEnd"),
        "{k:?}"
    );
    assert_eq!(hooks_of(&events, "SessionStart").len(), 2);
    drop(server);
}

#[actix_web::test]
async fn an_initial_message_goes_through_its_hooks() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![Reply::finish("ok")]).await;
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["hook_config"] = json!({"user_prompt_submit": [{"hooks": [
        {"command": "echo '{\"additionalContext\": \"from the hook\"}'"}]}]});
    body["initial_message"] =
        json!({"role": "user", "content": [{"type": "text", "text": "first"}]});
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(
        info["hook_config"]["user_prompt_submit"][0]["matcher"], "*",
        "the session started"
    );
    let id = info["id"].as_str().unwrap();
    app.wait_status(id, &["finished"]).await;
    let events = app.all_events(id).await;
    let k = kinds(&events);
    let at = k.iter().position(|k| k == "MessageEvent").unwrap();
    assert_eq!(k[at - 1], "hook:UserPromptSubmit", "{k:?}");
    assert!(
        user_texts(&llm.agent_requests()[0])
            .iter()
            .any(|u| u.contains("from the hook"))
    );
}
