//! Sub-agent tools through the agent loop, against the scripted LLM (which answers the
//! parent's and the sub-agents' requests in the order they are made): the `task` tool
//! of `task_tool_set`, with its results, resumption, the client's agent definitions and
//! the workspace's definition files, usage under `task:<id>`, errors the LLM reads, and
//! pause and interrupt stopping a sub-agent at work; `delegate`'s `spawn` and parallel
//! `delegate` with its limits and errors.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::spawn_app;
use crate::llm::{Reply, ScriptedLlm};

fn body(app: &TestApp, llm: &ScriptedLlm, tools: &[&str]) -> Value {
    let mut b = app.conversation_body(Some(&llm.openai_base));
    b["agent"]["tools"] = json!(
        tools
            .iter()
            .map(|t| json!({"name": t, "params": {}}))
            .collect::<Vec<_>>()
    );
    b
}

async fn create(app: &TestApp, b: Value) -> String {
    let (status, info) = app.post("/api/conversations", b).await;
    assert_eq!(status, 201, "{info}");
    info["id"].as_str().unwrap().to_string()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

fn offered(req: &Value) -> Vec<String> {
    req["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The text parts of the last tool result in a request.
fn last_tool_parts(req: &Value) -> Vec<String> {
    let msgs = req["messages"].as_array().unwrap();
    let tool = msgs.iter().rev().find(|m| m["role"] == "tool").unwrap();
    match &tool["content"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect(),
        other => panic!("unexpected tool content {other}"),
    }
}

fn text_of(msg: &Value) -> String {
    match &msg["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// Waits until the scripted LLM has received `n` agent requests.
async fn wait_requests(llm: &ScriptedLlm, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while llm.agent_requests().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} requests",
            llm.agent_requests().len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_task_runs_a_sub_agent_in_the_workspace_and_can_be_resumed() {
    let app = spawn_app().await;
    let ws = app.path("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let notes = ws.join("notes.txt");
    let llm = ScriptedLlm::start(vec![
        // The parent hands the work over.
        Reply::tool(
            "task",
            json!({"description": "Write notes", "prompt": "Create notes.txt saying hello",
                   "subagent_type": "general-purpose"}),
        ),
        // The sub-agent does it and finishes.
        Reply::tool(
            "file_editor",
            json!({"command": "create", "path": notes.to_string_lossy(), "file_text": "hello\n",
                   "security_risk": "LOW"}),
        ),
        Reply::finish("Created notes.txt with a greeting."),
        // The parent resumes the task; the sub-agent answers in text.
        Reply::tool(
            "task",
            json!({"prompt": "Which file did you create?", "resume": "task_00000001"}),
        ),
        Reply::Text("notes.txt, in the workspace.".into()),
        Reply::finish("all done"),
    ])
    .await;
    let id = create(&app, body(&app, &llm, &["task_tool_set"])).await;
    app.send_message(&id, "delegate it", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "hello\n");

    let reqs = llm.agent_requests();
    assert_eq!(reqs.len(), 6);
    // The parent is offered `task`, whose description lists the sub-agent types.
    assert_eq!(offered(&reqs[0]), ["task", "finish", "think"]);
    let task_def = &reqs[0]["tools"][0]["function"];
    let desc = task_def["description"].as_str().unwrap();
    assert!(desc.contains("- **general-purpose**: "), "{desc}");
    assert!(desc.contains("(tools: terminal, file_editor, task_tracker)"));
    assert_eq!(task_def["parameters"]["required"], json!(["prompt"]));
    let props: Vec<&str> = task_def["parameters"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        props,
        [
            "security_risk",
            "summary",
            "description",
            "prompt",
            "subagent_type",
            "resume"
        ]
    );
    // The sub-agent: its own tools and prompt, the task as its first message, no stream.
    assert_eq!(
        offered(&reqs[1]),
        ["terminal", "file_editor", "task_tracker", "finish", "think"]
    );
    let sub_msgs = reqs[1]["messages"].as_array().unwrap();
    assert_eq!(sub_msgs.len(), 2);
    assert!(text_of(&sub_msgs[0]).contains("general-purpose helper"));
    assert_eq!(text_of(&sub_msgs[1]), "Create notes.txt saying hello");
    assert_ne!(reqs[1]["stream"], json!(true));
    // The parent reads the task's result.
    assert_eq!(
        last_tool_parts(&reqs[3]),
        [
            "Task ID: task_00000001\nSubagent: general-purpose\nStatus: completed",
            "Created notes.txt with a greeting."
        ]
    );
    // The resumed sub-agent has its history, then the new prompt.
    let resumed = reqs[4]["messages"].as_array().unwrap();
    assert!(resumed.len() > 4, "{resumed:?}");
    assert_eq!(text_of(&resumed[1]), "Create notes.txt saying hello");
    assert_eq!(
        text_of(resumed.last().unwrap()),
        "Which file did you create?"
    );
    assert_eq!(
        last_tool_parts(&reqs[5]),
        [
            "Task ID: task_00000001\nSubagent: general-purpose\nStatus: completed",
            "notes.txt, in the workspace."
        ]
    );

    // Only the parent's own actions are recorded.
    let events = app.all_events(&id).await;
    let actions = of_kind(&events, "ActionEvent");
    assert_eq!(actions.len(), 3);
    assert_eq!(
        actions[0]["action"],
        json!({"description": "Write notes", "prompt": "Create notes.txt saying hello",
               "subagent_type": "general-purpose", "resume": null, "max_turns": null,
               "kind": "TaskAction"})
    );
    assert_eq!(actions[0]["tool_name"], "task");
    let obs = of_kind(&events, "ObservationEvent");
    assert_eq!(obs.len(), 3);
    assert_eq!(
        obs[0]["observation"],
        json!({"content": [{"cache_prompt": false, "type": "text",
                            "text": "Created notes.txt with a greeting."}],
               "is_error": false, "task_id": "task_00000001", "subagent": "general-purpose",
               "status": "completed", "kind": "TaskObservation"})
    );
    let sys = of_kind(&events, "SystemPromptEvent");
    assert_eq!(sys[0]["tools"][0]["kind"], "TaskTool");
    assert_eq!(sys[0]["tools"][0]["action_type"], "TaskAction");
    assert_eq!(sys[0]["tools"][0]["observation_type"], "TaskObservation");

    // The sub-agent's three calls count under `task:task_00000001`.
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    let usage = &info["stats"]["usage_to_metrics"];
    assert_eq!(
        usage["task:task_00000001"]["accumulated_token_usage"]["prompt_tokens"], 300,
        "{usage}"
    );
    // The parent's own calls (and its title) stay under its LLM's usage id.
    assert!(
        usage["default"]["accumulated_token_usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            >= 300
    );
}

#[actix_web::test]
async fn task_errors_are_results_the_llm_reads() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("task", json!({"prompt": "x", "subagent_type": "nope"})),
        Reply::tool("task", json!({"prompt": "x", "resume": "task_00000009"})),
        Reply::tool("task", json!({"description": "no prompt"})),
        // A sub-agent whose LLM fails.
        Reply::tool("task", json!({"prompt": "fail"})),
        Reply::Status(400, "the model refuses".into()),
        Reply::finish("done"),
    ])
    .await;
    let id = create(&app, body(&app, &llm, &["terminal", "task_tool_set"])).await;
    app.send_message(&id, "go", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    let reqs = llm.agent_requests();
    assert_eq!(reqs.len(), 6);
    assert_eq!(
        last_tool_parts(&reqs[1]),
        [
            "Task ID: unknown\nSubagent: nope\nStatus: error",
            "[An error occurred during execution.]\n",
            "Failed to execute task: Unknown agent 'nope'. Available types: bash-runner, \
             code-explorer, general-purpose. Use register_agent() to add custom agent types."
        ]
    );
    assert_eq!(
        last_tool_parts(&reqs[2])[2],
        "Failed to execute task: Task 'task_00000009' not found. Available tasks: "
    );
    let invalid = last_tool_parts(&reqs[3]).join("");
    assert!(
        invalid.starts_with("Error validating tool 'task': 1 validation error for TaskAction\nprompt\n  Field required"),
        "{invalid}"
    );
    let failed = last_tool_parts(&reqs[5]);
    assert_eq!(
        failed[0],
        "Task ID: task_00000001\nSubagent: general-purpose\nStatus: error"
    );
    assert!(
        failed[2].starts_with("Conversation run failed for id="),
        "{failed:?}"
    );
    assert!(failed[2].contains("the model refuses"), "{failed:?}");
    let events = app.all_events(&id).await;
    assert_eq!(of_kind(&events, "AgentErrorEvent").len(), 1);
    assert!(of_kind(&events, "ConversationErrorEvent").is_empty());
}

#[actix_web::test]
async fn the_clients_agent_definitions_are_sub_agent_types() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "task",
            json!({"prompt": "Check README.md", "subagent_type": "grammar-checker"}),
        ),
        Reply::Text("No errors found.".into()),
        Reply::finish("checked"),
    ])
    .await;
    let mut b = body(&app, &llm, &["task_tool_set"]);
    b["agent_definitions"] = json!([{
        "name": "grammar-checker", "description": "Checks documents for grammatical errors.",
        "model": "inherit", "color": null, "tools": ["file_editor"], "skills": [],
        "system_prompt": "You are a grammar expert.", "source": null,
        "when_to_use_examples": [], "hooks": null, "permission_mode": null,
        "max_iteration_per_run": null, "mcp_servers": null, "profile_store_dir": null,
        "metadata": {}
    }]);
    let id = create(&app, b).await;
    app.send_message(&id, "check", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    let reqs = llm.agent_requests();
    let desc = reqs[0]["tools"][0]["function"]["description"]
        .as_str()
        .unwrap();
    assert!(
        desc.contains(
            "- **grammar-checker**: Checks documents for grammatical errors. (tools: file_editor)"
        ),
        "{desc}"
    );
    assert_eq!(offered(&reqs[1]), ["file_editor", "finish", "think"]);
    assert!(text_of(&reqs[1]["messages"][0]).ends_with("You are a grammar expert."));
    assert_eq!(
        last_tool_parts(&reqs[2]),
        [
            "Task ID: task_00000001\nSubagent: grammar-checker\nStatus: completed",
            "No errors found."
        ]
    );
}

#[actix_web::test]
async fn interrupt_stops_a_sub_agent_at_work() {
    let app = spawn_app().await;
    let marker = app.path("ws").join("late.txt");
    let llm = ScriptedLlm::start(vec![
        Reply::tool("task", json!({"prompt": "wait"})),
        Reply::terminal(&format!("sleep 20 && touch {}", marker.display())),
        Reply::finish("resumed"),
    ])
    .await;
    let id = create(&app, body(&app, &llm, &["task_tool_set"])).await;
    app.send_message(&id, "go", true).await;
    wait_requests(&llm, 2).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let t0 = std::time::Instant::now();
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(5));
    let info = app.wait_status(&id, &["paused"]).await;
    assert_eq!(info["execution_status"], "paused");
    let events = app.all_events(&id).await;
    let errs = of_kind(&events, "AgentErrorEvent");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["tool_name"], "task");
    assert!(errs[0]["error"].as_str().unwrap().contains("interrupted"));
    // The sub-agent's shell is gone with its command.
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    assert!(!marker.exists());
    // The next run goes on with the parent.
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200);
    app.wait_status(&id, &["finished"]).await;
    assert_eq!(llm.remaining(), 0);
}

#[actix_web::test]
async fn pause_stops_a_sub_agent_waiting_for_its_llm() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("task", json!({"prompt": "think hard"})),
        Reply::Delay(30_000, Box::new(Reply::finish("too late"))),
    ])
    .await;
    let id = create(&app, body(&app, &llm, &["task_tool_set"])).await;
    app.send_message(&id, "go", true).await;
    wait_requests(&llm, 2).await;
    let t0 = std::time::Instant::now();
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/pause"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let info = app.wait_status(&id, &["paused"]).await;
    assert_eq!(info["execution_status"], "paused");
    let events = app.all_events(&id).await;
    let obs = of_kind(&events, "ObservationEvent");
    assert_eq!(obs.len(), 1);
    assert_eq!(obs[0]["observation"]["status"], "error");
    assert_eq!(obs[0]["observation"]["is_error"], true);
    assert_eq!(
        obs[0]["observation"]["content"][0]["text"],
        "Task 'task_00000001' was stopped before it finished."
    );
}

#[actix_web::test]
async fn task_named_alone_fails_the_first_message_like_the_reference() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![]).await;
    let id = create(&app, body(&app, &llm, &["task"])).await;
    let (status, err) = app
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}], "run": true}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        err["exception"],
        "TaskTool.create() got an unexpected keyword argument 'conv_state'"
    );
    let (_, tools) = app.get("/api/tools/").await;
    let tools = tools.as_array().unwrap();
    assert!(tools.contains(&json!("task_tool_set")));
    assert!(tools.contains(&json!("task")));
}

#[actix_web::test]
async fn delegate_spawns_sub_agents_and_runs_their_tasks_in_parallel() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "delegate",
            json!({"command": "spawn", "ids": ["alpha", "beta"], "agent_types": ["bash-runner"]}),
        ),
        Reply::tool(
            "delegate",
            json!({"command": "spawn", "ids": ["c", "d", "e", "f"]}),
        ),
        Reply::tool(
            "delegate",
            json!({"command": "delegate", "tasks": {"gamma": "x"}}),
        ),
        Reply::tool(
            "delegate",
            json!({"command": "spawn", "agent_types": ["x", "y"]}),
        ),
        Reply::tool(
            "delegate",
            json!({"command": "delegate",
                   "tasks": {"alpha": "ALPHA-TASK: say hi", "beta": "BETA-TASK: think"}}),
        ),
        Reply::tool(
            "delegate",
            json!({"command": "delegate", "tasks": {"alpha": "And again?"}}),
        ),
        Reply::finish("done"),
    ])
    .await;
    llm.route(
        "ALPHA-TASK",
        vec![
            Reply::terminal("echo alpha-out"),
            Reply::Text("alpha says hi".into()),
            Reply::Text("alpha again".into()),
        ],
    );
    llm.route("BETA-TASK", vec![Reply::Status(400, "beta broke".into())]);
    let id = create(&app, body(&app, &llm, &["delegate"])).await;
    app.send_message(&id, "go", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    let events = app.all_events(&id).await;
    let obs: Vec<&Value> = of_kind(&events, "ObservationEvent")
        .into_iter()
        .map(|e| &e["observation"])
        .collect();
    assert_eq!(obs.len(), 7, "{obs:?}");
    let text = |o: &Value| o["content"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(
        obs[0],
        &json!({"content": [{"cache_prompt": false, "type": "text",
                "text": "Successfully spawned 2 sub-agents: alpha (bash-runner), beta (default)"}],
                "is_error": false, "command": "spawn", "kind": "DelegateObservation"})
    );
    assert_eq!(
        text(obs[1]),
        "Cannot spawn 4 agents. Already have 2 agents, maximum is 5"
    );
    assert_eq!(obs[1]["is_error"], true);
    assert_eq!(
        text(obs[2]),
        "sub-agents not found: gamma. Available agents: alpha, beta"
    );
    assert_eq!(text(obs[3]), "At least one ID is required for spawn action");
    let results = text(obs[4]);
    assert!(
        results.starts_with(
            "Completed delegation of 2 tasks with 1 errors\n\nResults:\n1. Agent alpha: alpha says hi\n\
             2. Agent beta ERROR: Sub-agent beta failed: Conversation run failed for id="
        ),
        "{results}"
    );
    assert!(results.contains("beta broke"), "{results}");
    assert_eq!(obs[4]["is_error"], false);
    assert_eq!(
        text(obs[5]),
        "Completed delegation of 1 tasks\n\nResults:\n1. Agent alpha: alpha again"
    );
    // Alpha kept its history: its third request holds its first task and the second.
    let alpha: Vec<Value> = llm
        .agent_requests()
        .into_iter()
        .filter(|r| {
            r["messages"][1]["content"]
                .to_string()
                .contains("ALPHA-TASK")
        })
        .collect();
    assert_eq!(alpha.len(), 3);
    assert_eq!(offered(&alpha[0]), ["terminal", "finish", "think"]);
    assert_eq!(
        text_of(alpha[2]["messages"].as_array().unwrap().last().unwrap()),
        "And again?"
    );
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    let usage = &info["stats"]["usage_to_metrics"];
    assert_eq!(
        usage["delegate:alpha"]["accumulated_token_usage"]["prompt_tokens"], 300,
        "{usage}"
    );
    // The 1.24 client knows no `DelegateTool` definition: none is recorded.
    let sys = of_kind(&events, "SystemPromptEvent");
    assert_eq!(
        sys[0]["tools"].as_array().unwrap().len(),
        2,
        "{}",
        sys[0]["tools"]
    );
    let params = &llm.agent_requests()[0]["tools"][0]["function"]["parameters"];
    assert_eq!(params["required"], json!(["command"]));
    assert_eq!(
        params["properties"]["command"]["enum"],
        json!(["spawn", "delegate"])
    );
}

#[actix_web::test]
async fn definition_files_in_the_workspace_are_sub_agent_types() {
    let app = spawn_app().await;
    let agents = app.path("ws").join(".agents/agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("reviewer.md"),
        "---\nname: code-reviewer\ndescription: >-\n  Reviews a diff\n  for bugs.\ntools:\n  - terminal\n---\n\nYou review code carefully.\n",
    )
    .unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "task",
            json!({"prompt": "Review HEAD", "subagent_type": "code-reviewer"}),
        ),
        Reply::finish("Looks fine."),
        Reply::finish("reviewed"),
    ])
    .await;
    let id = create(&app, body(&app, &llm, &["task_tool_set"])).await;
    app.send_message(&id, "review", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    let reqs = llm.agent_requests();
    let desc = reqs[0]["tools"][0]["function"]["description"]
        .as_str()
        .unwrap();
    assert!(
        desc.contains("- **code-reviewer**: Reviews a diff for bugs. (tools: terminal)"),
        "{desc}"
    );
    assert_eq!(offered(&reqs[1]), ["terminal", "finish", "think"]);
    assert!(text_of(&reqs[1]["messages"][0]).ends_with("You review code carefully."));
    assert_eq!(
        last_tool_parts(&reqs[2]),
        [
            "Task ID: task_00000001\nSubagent: code-reviewer\nStatus: completed",
            "Looks fine."
        ]
    );
}

#[actix_web::test]
async fn deleting_the_conversation_stops_its_sub_agent() {
    let app = spawn_app().await;
    let marker = app.path("ws").join("never.txt");
    let llm = ScriptedLlm::start(vec![
        Reply::tool("task", json!({"prompt": "wait"})),
        Reply::terminal(&format!("sleep 4 && touch {}", marker.display())),
    ])
    .await;
    let id = create(&app, body(&app, &llm, &["task_tool_set"])).await;
    app.send_message(&id, "go", true).await;
    wait_requests(&llm, 2).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let t0 = std::time::Instant::now();
    let (status, _) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let (status, _) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 404);
    // The sub-agent's shell went with it: the command never completes.
    actix_web::rt::time::sleep(Duration::from_secs(5)).await;
    assert!(!marker.exists());
    assert_eq!(llm.agent_requests().len(), 2);
}
