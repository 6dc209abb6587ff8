//! Criterion benches of the per-event CPU work outside the store: event
//! serialization (`Event::to_json`, `Event::from_json`, the stored header
//! of `EncodedEvent::new`) and secret sealing (`Cipher` seal/open with
//! AES-256-GCM, and the HKDF key derivation done once at start). Figures
//! only: nothing here asserts a time.
//!
//! Quick run: `cargo bench --bench codec -- --quick`.

use std::hint::black_box;
use std::time::Duration;

use agent_actors::crypto::Cipher;
use agent_actors::model::event::Event;
use agent_actors::store::EncodedEvent;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A terminal `ActionEvent` as the agent loop writes it.
const ACTION: &str = concat!(
    r#"{"id":"5b0e2a52-1d6c-4d8e-9a57-0c1f5a6b7d21","timestamp":"2026-03-02T10:15:04.125031","source":"agent","#,
    r#""thought":[{"cache_prompt":false,"type":"text","text":"Let me run the test suite to see what fails."}],"#,
    r#""reasoning_content":null,"thinking_blocks":[],"responses_reasoning_item":null,"#,
    r#""action":{"command":"cargo test --quiet 2>&1 | tail -n 30","is_input":false,"timeout":null,"reset":false,"kind":"TerminalAction"},"#,
    r#""tool_name":"terminal","tool_call_id":"call_7","tool_call":{"id":"call_7","responses_item_id":null,"name":"terminal","#,
    r#""arguments":"{\"command\": \"cargo test --quiet 2>&1 | tail -n 30\", \"security_risk\": \"LOW\"}","origin":"completion"},"#,
    r#""llm_response_id":"chatcmpl-81","security_risk":"UNKNOWN","critic_result":null,"summary":"terminal: cargo test","kind":"ActionEvent"}"#
);

/// The matching `ObservationEvent` with a few KiB of output.
fn observation() -> String {
    let output: String = (0..60)
        .map(|i| format!("test module_{i}::case_{i} ... ok\n"))
        .collect();
    let obs = serde_json::json!({
        "id": "9c3d6f10-7e2b-4a8c-b1d4-2f6e8a9c0b13",
        "timestamp": "2026-03-02T10:15:06.480112",
        "source": "environment",
        "tool_name": "terminal",
        "tool_call_id": "call_7",
        "observation": {
            "content": [{"cache_prompt": false, "type": "text", "text": output}],
            "is_error": false,
            "command": "cargo test --quiet 2>&1 | tail -n 30",
            "exit_code": 0,
            "timeout": false,
            "metadata": {"exit_code": 0, "pid": -1, "username": "dev", "hostname": "box",
                         "working_dir": "/work/project", "py_interpreter_path": null,
                         "prefix": "", "suffix": "\n[The command completed with exit code 0.]"},
            "full_output_save_dir": null,
            "kind": "TerminalObservation"
        },
        "action_id": "5b0e2a52-1d6c-4d8e-9a57-0c1f5a6b7d21",
        "kind": "ObservationEvent"
    });
    obs.to_string()
}

fn events(c: &mut Criterion) {
    let obs_json = observation();
    let mut group = c.benchmark_group("event");
    group.measurement_time(Duration::from_secs(2));
    for (name, text) in [("action", ACTION), ("observation", obs_json.as_str())] {
        let event = Event::from_json(text).expect("the sample event parses");
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{name}/from_json"), |b| {
            b.iter(|| Event::from_json(black_box(text)))
        });
        group.bench_function(format!("{name}/to_json"), |b| {
            b.iter(|| black_box(&event).to_json())
        });
        let json = event.to_json();
        group.bench_function(format!("{name}/encode_for_store"), |b| {
            b.iter(|| {
                EncodedEvent::new(
                    7,
                    &event.id,
                    event.source,
                    event.body.kind(),
                    &event.timestamp,
                    black_box(&json),
                )
            })
        });
    }
    group.finish();
}

fn secrets(c: &mut Criterion) {
    let cipher = Cipher::from_secret("bench secret key: not a real one");
    let aad = "conversation:2f6e8a9c0b13:agent.llm.api_key";
    let secret = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP";
    let sealed = cipher.seal_str(aad, secret).expect("seal");
    let mut group = c.benchmark_group("secret");
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("seal", |b| {
        b.iter(|| cipher.seal_str(aad, black_box(secret)))
    });
    group.bench_function("open", |b| {
        b.iter(|| cipher.open_str(aad, black_box(&sealed)))
    });
    group.bench_function("derive_key", |b| {
        b.iter(|| Cipher::from_secret(black_box("bench secret key: not a real one")))
    });
    group.finish();
}

criterion_group!(benches, events, secrets);
criterion_main!(benches);
