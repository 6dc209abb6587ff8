//! Criterion benches of the sled event store and of event search
//! (`agent_actors::store`, `agent_actors::search`): append throughput, one
//! page of 100 events (newest, oldest, after a `page_id`) from a
//! conversation of 100,000 events, with and without rendering the page as
//! the REST body, and counting. The store is opened exactly as the server
//! opens it (on disk, 64 MiB cache, low-space mode) in a temporary
//! directory. Figures only: nothing here asserts a time.
//!
//! Quick run: `cargo bench --bench store -- --quick`.

use std::hint::black_box;
use std::time::Duration;

use agent_actors::ids::Uuid;
use agent_actors::model::event::Source;
use agent_actors::search::{self, EventFilter};
use agent_actors::store::{EncodedEvent, RecordWrite, Store, Summary};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Events in the big conversation (the size named by the issue's budget).
const BIG: u64 = 100_000;
/// The server's default page cache (`storage.cache_mb = 64`).
const CACHE_BYTES: u64 = 64 << 20;

/// A realistic event: an `ActionEvent` of a terminal call, about 900 bytes.
fn encoded(seq: u64) -> EncodedEvent {
    let id = format!("00000000-0000-4000-8000-{seq:012}");
    let ts = format!(
        "2026-01-01T{:02}:{:02}:{:02}.{:06}",
        (seq / 3600) % 24,
        (seq / 60) % 60,
        seq % 60,
        seq % 1_000_000
    );
    let (kind, source) = if seq.is_multiple_of(2) {
        ("ActionEvent", Source::Agent)
    } else {
        ("ObservationEvent", Source::Environment)
    };
    let json = format!(
        concat!(
            r#"{{"id":"{id}","timestamp":"{ts}","source":"{src}","thought":[{{"cache_prompt":false,"type":"text","text":"Listing the files to see where the tests live (step {seq})."}}],"#,
            r#""reasoning_content":null,"thinking_blocks":[],"responses_reasoning_item":null,"#,
            r#""action":{{"command":"ls -la tests/ && cat README.md | head -n 40","is_input":false,"timeout":null,"reset":false,"kind":"TerminalAction"}},"#,
            r#""tool_name":"terminal","tool_call_id":"call_{seq}","tool_call":{{"id":"call_{seq}","responses_item_id":null,"name":"terminal","#,
            r#""arguments":"{{\"command\": \"ls -la tests/ && cat README.md | head -n 40\", \"security_risk\": \"LOW\"}}","origin":"completion"}},"#,
            r#""llm_response_id":"chatcmpl-{seq}","security_risk":"UNKNOWN","critic_result":null,"summary":"terminal: ls -la tests/","kind":"{kind}"}}"#
        ),
        id = id,
        ts = ts,
        src = source.as_str(),
        seq = seq,
        kind = kind,
    );
    EncodedEvent::new(seq, &id, source, kind, &ts, &json)
}

fn open_store(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("db"), CACHE_BYTES).expect("store opens")
}

/// Appends `n` events in transactions of 1,000.
fn fill(store: &Store, conv: &Uuid, n: u64) {
    let mut seq = 1;
    while seq <= n {
        let end = (seq + 1000).min(n + 1);
        let batch: Vec<EncodedEvent> = (seq..end).map(encoded).collect();
        store.append(conv, &batch, None).expect("append");
        seq = end;
    }
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(&dir);
    let conv = Uuid::new_v4();
    let record = vec![b'x'; 2048];
    let summary = Summary {
        created_at: "2026-01-01T00:00:00.000000Z".into(),
        updated_at: "2026-01-01T00:00:00.000000Z".into(),
        status: "running".into(),
    };
    let mut group = c.benchmark_group("store/append");
    group.measurement_time(Duration::from_secs(3));
    let mut seq = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_event", |b| {
        b.iter_batched(
            || {
                seq += 1;
                encoded(seq)
            },
            |e| store.append(&conv, std::slice::from_ref(&e), None),
            BatchSize::SmallInput,
        )
    });
    // What the agent loop writes per tool call: the stats update and the
    // action in one transaction, with the conversation record (2 KiB).
    group.throughput(Throughput::Elements(2));
    group.bench_function("step_with_record", |b| {
        b.iter_batched(
            || {
                seq += 2;
                [encoded(seq - 1), encoded(seq)]
            },
            |es| {
                store.append(
                    &conv,
                    &es,
                    Some(RecordWrite {
                        bytes: &record,
                        summary: &summary,
                        stats: None,
                    }),
                )
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(&dir);
    let conv = Uuid::new_v4();
    fill(&store, &conv, BIG);
    // A neighbour, so that range scans cross conversation boundaries as in
    // a real database.
    fill(&store, &Uuid::new_v4(), 1000);
    let none = EventFilter::default();
    let middle = encoded(BIG / 2).id;
    let mut group = c.benchmark_group("search/page_100_of_100k");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("newest", |b| {
        b.iter(|| search::search(&store, &conv, &none, None, 100, true).map(|p| p.items.len()))
    });
    group.bench_function("oldest", |b| {
        b.iter(|| search::search(&store, &conv, &none, None, 100, false).map(|p| p.items.len()))
    });
    group.bench_function("after_page_id", |b| {
        b.iter(|| {
            search::search(&store, &conv, &none, Some(middle.as_str()), 100, false)
                .map(|p| p.items.len())
        })
    });
    group.bench_function("newest_as_json", |b| {
        b.iter(|| {
            search::search(&store, &conv, &none, None, 100, true).map(|p| black_box(p.to_json()))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("search/count_100k");
    group.bench_function("unfiltered", |b| {
        b.iter(|| search::count(&store, &conv, &none))
    });
    let by_kind = EventFilter {
        kind: Some("ObservationEvent".into()),
        ..Default::default()
    };
    group.sample_size(10);
    group.bench_function("by_kind_full_scan", |b| {
        b.iter(|| search::count(&store, &conv, &by_kind))
    });
    group.finish();
}

criterion_group!(benches, append, pages);
criterion_main!(benches);
