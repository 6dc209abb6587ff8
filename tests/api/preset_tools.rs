//! The tools of the openhands-tools presets through the agent loop, against the
//! scripted LLM: the GPT-5 preset's `apply_patch`, the Gemini preset's file tools, the
//! planning preset's `glob`, `grep`, `planning_file_editor` and system prompt, and the
//! reference's answer to an agent naming a tool nobody registered.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::llm::{Reply, ScriptedLlm};

/// A conversation body whose agent has `tools`, talking to `llm`.
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

async fn run(app: &TestApp, b: Value, text: &str) -> (String, Vec<Value>) {
    let (status, info) = app.post("/api/conversations", b).await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    app.send_message(&id, text, true).await;
    let info = app.wait_status(&id, &["finished", "error", "stuck"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    let events = app.all_events(&id).await;
    (id, events)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The text of the tool result the LLM was sent in request `n` for the call `call_n`
/// (0-based) of the conversation.
fn tool_text(req: &Value, call_n: usize) -> String {
    let tools: Vec<&Value> = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    match &tools[call_n]["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
        other => panic!("unexpected tool content {other}"),
    }
}

fn offered(req: &Value) -> Vec<String> {
    req["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn gpt5_preset_applies_patches() {
    let app = spawn_app().await;
    let ws = app.path("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("app.py"), "def main():\n    return 1\n").unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "apply_patch",
            json!({"patch": "*** Begin Patch\n*** Add File: docs/NOTES.md\n+# Notes\n+first\n*** Update File: app.py\n@@ def main():\n-    return 1\n+    return 2\n*** End Patch", "security_risk": "LOW"}),
        ),
        Reply::tool(
            "apply_patch",
            json!({"patch": "*** Begin Patch\n*** Update File: app.py\n@@\n-    return 7\n+    return 8\n*** End Patch"}),
        ),
        Reply::tool(
            "apply_patch",
            json!({"patch": "*** Begin Patch\n*** Add File: ../outside.txt\n+x\n*** End Patch"}),
        ),
        Reply::finish("patched"),
    ])
    .await;
    let (_, events) = run(
        &app,
        body(&app, &llm, &["terminal", "apply_patch", "task_tracker"]),
        "patch it",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(ws.join("app.py")).unwrap(),
        "def main():\n    return 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("docs/NOTES.md")).unwrap(),
        "# Notes\nfirst"
    );
    assert!(!app.path("outside.txt").exists());
    let system = &of_kind(&events, "SystemPromptEvent")[0];
    let defs: Vec<&str> = system["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        defs,
        [
            "TerminalTool",
            "ApplyPatchTool",
            "TaskTrackerTool",
            "FinishTool",
            "ThinkTool"
        ]
    );
    let actions = of_kind(&events, "ActionEvent");
    assert_eq!(actions[0]["tool_name"], "apply_patch");
    assert_eq!(actions[0]["action"]["kind"], "ApplyPatchAction");
    let obs = of_kind(&events, "ObservationEvent");
    let first = &obs[0]["observation"];
    assert_eq!(first["kind"], "ApplyPatchObservation");
    assert_eq!(first["message"], "Done!");
    assert_eq!(first["fuzz"], 0);
    assert_eq!(first["commit"]["changes"]["docs/NOTES.md"]["type"], "add");
    assert_eq!(
        first["commit"]["changes"]["app.py"]["new_content"],
        "def main():\n    return 2\n"
    );
    assert_eq!(obs[1]["observation"]["is_error"], true);
    assert_eq!(
        obs[1]["observation"]["content"][0]["text"],
        "Invalid Context 0:\n    return 7"
    );
    assert_eq!(
        obs[2]["observation"]["content"][0]["text"],
        "Absolute or escaping paths are not allowed"
    );
    let reqs = llm.agent_requests();
    assert_eq!(
        offered(&reqs[0]),
        ["terminal", "apply_patch", "task_tracker", "finish", "think"]
    );
    assert_eq!(tool_text(&reqs[1], 0), "Done!");
    assert_eq!(
        tool_text(&reqs[2], 1),
        "[An error occurred during execution.]\nInvalid Context 0:\n    return 7"
    );
}

#[actix_web::test]
async fn gemini_preset_reads_writes_edits_and_lists() {
    let app = spawn_app().await;
    let ws = app.path("ws");
    let shown = ws.display().to_string();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "write_file",
            json!({"file_path": "src/lib.py", "content": "X = 1\nY = 2\n"}),
        ),
        Reply::tool(
            "edit",
            json!({"file_path": format!("{shown}/src/lib.py"), "old_string": "Y = 2", "new_string": "Y = 3"}),
        ),
        Reply::tool("read_file", json!({"file_path": "src/lib.py", "offset": 1})),
        Reply::tool("list_directory", json!({"dir_path": "src"})),
        Reply::tool(
            "edit",
            json!({"file_path": "src/lib.py", "old_string": "Z", "new_string": "W"}),
        ),
        Reply::finish("done"),
    ])
    .await;
    let tools = [
        "terminal",
        "read_file",
        "write_file",
        "edit",
        "list_directory",
        "task_tracker",
    ];
    let (_, events) = run(&app, body(&app, &llm, &tools), "work on files").await;
    assert_eq!(
        std::fs::read_to_string(ws.join("src/lib.py")).unwrap(),
        "X = 1\nY = 3\n"
    );
    let obs = of_kind(&events, "ObservationEvent");
    let kinds: Vec<&str> = obs
        .iter()
        .map(|o| o["observation"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "WriteFileObservation",
            "EditObservation",
            "ReadFileObservation",
            "ListDirectoryObservation",
            "EditObservation",
            "FinishObservation"
        ]
    );
    assert_eq!(obs[0]["observation"]["is_new_file"], true);
    assert_eq!(obs[1]["observation"]["replacements_made"], 1);
    let read = &obs[2]["observation"];
    assert_eq!(read["file_content"], "     2  Y = 3\n");
    assert_eq!(read["total_lines"], 2);
    let listing = &obs[3]["observation"];
    assert_eq!(listing["total_count"], 1);
    assert_eq!(listing["entries"][0]["name"], "lib.py");
    assert_eq!(listing["entries"][0]["size"], 12);
    // The system prompt's definitions carry the workspace root for the file tools.
    let system = &of_kind(&events, "SystemPromptEvent")[0];
    assert_eq!(
        system["tools"][1]["meta"],
        json!({"workspace_root": shown.clone()})
    );
    assert_eq!(system["tools"][4]["kind"], "ListDirectoryTool");
    let reqs = llm.agent_requests();
    assert_eq!(
        tool_text(&reqs[1], 0),
        format!("Created file: {shown}/src/lib.py")
    );
    assert_eq!(
        tool_text(&reqs[3], 2),
        format!("Read file: {shown}/src/lib.py\n\n     2  Y = 3\n")
    );
    // The LLM reads only the summary of a listing.
    assert_eq!(
        tool_text(&reqs[4], 3),
        format!("Listed directory: {shown}/src (1 entries)")
    );
    assert_eq!(
        tool_text(&reqs[5], 4),
        format!(
            "[An error occurred during execution.]\nError: Could not find the string to replace. \
             0 occurrences found in {shown}/src/lib.py. Use read_file to verify the exact text."
        )
    );
    // Read-only tools are offered without `security_risk`.
    let read_tool = reqs[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "read_file")
        .unwrap();
    assert!(
        read_tool["function"]["parameters"]["properties"]
            .get("security_risk")
            .is_none()
    );
}

#[actix_web::test]
async fn planning_preset_searches_and_writes_the_plan() {
    let app = spawn_app().await;
    let ws = app.path("ws");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(
        ws.join("src/main.rs"),
        "fn main() { println!(\"TODO\"); }\n",
    )
    .unwrap();
    std::fs::write(ws.join("src/lib.rs"), "pub fn helper() {}\n").unwrap();
    let plan = ws.join(".agents_tmp/PLAN.md");
    let plan_s = plan.display().to_string();
    let main_s = ws.join("src/main.rs").display().to_string();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("glob", json!({"pattern": "**/*.rs"})),
        Reply::tool("grep", json!({"pattern": "todo", "include": "*.rs"})),
        Reply::tool(
            "planning_file_editor",
            json!({"command": "str_replace", "path": main_s, "old_str": "TODO", "new_str": "x"}),
        ),
        Reply::tool(
            "planning_file_editor",
            json!({"command": "str_replace", "path": plan_s, "old_str": "# 1. OBJECTIVE\n", "new_str": "# 1. OBJECTIVE\nReplace the TODO.\n"}),
        ),
        Reply::finish("plan written"),
    ])
    .await;
    let mut b = body(&app, &llm, &["glob", "grep", "planning_file_editor"]);
    b["agent"]["system_prompt_filename"] = json!("system_prompt_planning.j2");
    b["agent"]["system_prompt_kwargs"] =
        json!({"plan_structure": "The plan must follow this structure exactly:\n\n1. OBJECTIVE"});
    let (_, events) = run(&app, b, "plan the change").await;
    let written = std::fs::read_to_string(&plan).unwrap();
    assert!(written.starts_with("# 1. OBJECTIVE\nReplace the TODO.\n\n# 2. CONTEXT SUMMARY\n"));
    assert!(
        std::fs::read_to_string(ws.join("src/main.rs"))
            .unwrap()
            .contains("TODO")
    );
    let system = &of_kind(&events, "SystemPromptEvent")[0];
    let prompt = system["system_prompt"]["text"].as_str().unwrap();
    assert!(prompt.starts_with("You are a planning agent"), "{prompt}");
    assert!(prompt.contains(
        "<PLAN_STRUCTURE>\nThe plan must follow this structure exactly:\n\n1. OBJECTIVE\n</PLAN_STRUCTURE>"
    ));
    assert!(
        system["tools"][2]["description"]
            .as_str()
            .unwrap()
            .contains(&format!("Plan file: {plan_s}"))
    );
    let obs = of_kind(&events, "ObservationEvent");
    let glob = &obs[0]["observation"];
    assert_eq!(glob["kind"], "GlobObservation");
    let mut files: Vec<&str> = glob["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [ws.join("src/lib.rs").display().to_string(), main_s.clone()]
    );
    assert_eq!(obs[1]["observation"]["matches"], json!([main_s.clone()]));
    assert_eq!(obs[1]["observation"]["include_pattern"], "*.rs");
    let refused = &obs[2]["observation"];
    assert_eq!(refused["kind"], "PlanningFileEditorObservation");
    assert_eq!(refused["is_error"], true);
    assert_eq!(obs[3]["observation"]["is_error"], false);
    let reqs = llm.agent_requests();
    assert_eq!(
        offered(&reqs[0]),
        ["glob", "grep", "planning_file_editor", "finish", "think"]
    );
    assert_eq!(
        tool_text(&reqs[2], 1),
        format!(
            "Found 1 file(s) containing pattern 'todo' in '{}' (filtered by '*.rs'):\n{main_s}",
            ws.display()
        )
    );
    assert_eq!(
        tool_text(&reqs[3], 2),
        format!(
            "[An error occurred during execution.]\nOperation 'str_replace' is not allowed on \
             file '{main_s}'. Only the following files can be edited: ['{plan_s}']"
        )
    );
}

#[actix_web::test]
async fn an_unregistered_tool_fails_the_first_message_like_the_reference() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![]).await;
    let (status, info) = app
        .post(
            "/api/conversations",
            body(
                &app,
                &llm,
                &["terminal", "browser_tool_set", "no_such_tool"],
            ),
        )
        .await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap();
    let (status, err) = app
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}], "run": true}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        err,
        json!({"detail": "Internal Server Error",
               "exception": "\"ToolDefinition 'no_such_tool' is not registered\""})
    );
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let events = app.all_events(id).await;
    assert!(
        events
            .iter()
            .all(|e| e["kind"] == "ConversationStateUpdateEvent"),
        "nothing but state is recorded: {events:?}"
    );
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["execution_status"], "idle");
    assert!(llm.agent_requests().is_empty());

    // Tools the reference has but this server does not (the browser) are left out.
    let (status, info) = app
        .post(
            "/api/conversations",
            body(&app, &llm, &["terminal", "browser_tool_set"]),
        )
        .await;
    assert_eq!(status, 201);
    let id = info["id"].as_str().unwrap();
    app.send_message(id, "hi", false).await;
}

#[actix_web::test]
async fn server_info_lists_the_usable_tools() {
    let app = spawn_app().await;
    let (_, info) = app.get("/server_info").await;
    let tools = info["usable_tools"].as_array().unwrap();
    for t in [
        "apply_patch",
        "glob",
        "grep",
        "planning_file_editor",
        "read_file",
    ] {
        assert!(tools.contains(&json!(t)), "{t} in {tools:?}");
    }
}
