//! Criterion bench of the agent's `terminal` tool: one `echo` round trip
//! through a warm `TerminalSession` (message to the actor, command typed
//! into the PTY, prompt marker detected, output cleaned, observation
//! built). The shell starts before measuring; its start-up is measured
//! apart as `terminal/first_command` (a new shell per iteration). Figures
//! only: nothing here asserts a time.
//!
//! Quick run: `cargo bench --bench terminal -- --quick`.

use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use agent_actors::tools::terminal::{Close, Execute, TerminalConfig, TerminalSession};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

fn action(command: &str) -> Value {
    json!({"command": command, "is_input": false, "timeout": null, "reset": false, "kind": "TerminalAction"})
}

async fn run(addr: &Addr<TerminalSession>, command: &str) {
    let obs = addr
        .send(Execute {
            action: action(command),
            secrets: Vec::new(),
        })
        .await
        .expect("the terminal actor answers")
        .expect("the command runs");
    assert_eq!(obs.exit_code(), Some(0), "{}", obs.output());
}

fn terminal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let system = actix::System::new();
    let cfg = TerminalConfig::new(dir.path());
    let addr = system.block_on(async {
        let addr = TerminalSession::new(cfg.clone()).start();
        run(&addr, "true").await;
        addr
    });
    let mut group = c.benchmark_group("terminal");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("echo_round_trip", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    run(&addr, "echo hello").await;
                }
                start.elapsed()
            })
        })
    });
    group.sample_size(10);
    group.bench_function("first_command", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let fresh = TerminalSession::new(cfg.clone()).start();
                    let start = Instant::now();
                    run(&fresh, "echo hello").await;
                    total += start.elapsed();
                    let _ = fresh.send(Close).await;
                }
                total
            })
        })
    });
    group.finish();
    system.block_on(async {
        let _ = addr.send(Close).await;
    });
}

criterion_group!(benches, terminal);
criterion_main!(benches);
