//! The agent scenarios, driven against the scripted instant LLM:
//! `agent-step` (server-side overhead of one agent-loop iteration, and the
//! `terminal` round trip inside a run, both read from the server's own
//! event time stamps) and `soak` (many conversations running agent loops
//! while WebSocket subscribers check exactly-once, in-order delivery
//! against the REST log, `/health` is sampled and RSS is watched). All
//! tasks are bounded by the scenario's deadline plus fixed drain timeouts.

use std::cell::Cell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::Opts;
use crate::basic::{connect, conversation_body, create_conversation, enc, setup, start_server};
use crate::http::{Conn, prepared_get};
use crate::llm::{Policy, ScriptedLlm};
use crate::report::{Report, Summary, mib, ms};
use crate::ws;

/// Budget of agent-loop overhead per step (issue 3), ms.
const STEP_MS: f64 = 2.0;
/// Budget of a `terminal` echo round trip (issue 3), ms at p50.
const TERMINAL_P50_MS: f64 = 5.0;
/// Budget of `/health` p99 during the soak (issue 5), ms.
const SOAK_HEALTH_P99_MS: f64 = 50.0;
/// RSS growth over the second half of the soak still called flat, as a
/// share of the RSS at half time (sampling noise of a busy allocator).
const FLAT_RSS_SHARE: f64 = 0.10;
/// `max_size` of the soak agents' condenser (events in the LLM's view).
const CONDENSER_MAX_SIZE: u64 = 60;
/// The longest one run may take before the soak calls it stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Microseconds since 1970 of a naive `YYYY-MM-DDTHH:MM:SS.ffffff` time stamp.
fn stamp_micros(ts: &str) -> Option<i64> {
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    let frac = format!("{frac:0<6}");
    let micros: i64 = frac.get(..6)?.parse().ok()?;
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000_000 + s * 1_000_000 + micros)
}

/// Every event of a conversation, walking the REST search in pages of 100.
pub async fn all_events(conn: &mut Conn, id: &str) -> Result<Vec<Value>, String> {
    let search = format!("/api/conversations/{id}/events/search");
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    // Bounded: a million events is far beyond any scenario here.
    for _ in 0..10_000 {
        let path = match &next {
            Some(p) => format!("{search}?limit=100&page_id={}", enc(p)),
            None => format!("{search}?limit=100"),
        };
        let r = conn.get(&path).await.map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("events/search: {} {}", r.status, r.text()));
        }
        let page = r.json();
        out.extend(page["items"].as_array().into_iter().flatten().cloned());
        match page["next_page_id"].as_str() {
            Some(p) => next = Some(p.to_string()),
            None => return Ok(out),
        }
    }
    Err("events/search never ended".into())
}

/// Polls a conversation until its status is final; returns that status.
/// Polls are sparse (every 100 ms) so that they do not load the server
/// being measured; run times come from event time stamps, not from here.
async fn wait_final(conn: &mut Conn, id: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let path = format!("/api/conversations/{id}");
    while Instant::now() < deadline {
        let r = conn.get(&path).await.map_err(|e| e.to_string())?;
        let status = r.json()["execution_status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if matches!(status.as_str(), "finished" | "error" | "stuck" | "paused") {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "conversation {id} did not finish within {timeout:?}"
    ))
}

fn user_message(text: &str, run: bool) -> Value {
    json!({"role": "user", "run": run, "content": [{"type": "text", "text": text}]})
}

/// One measured run: its events and the counters around it.
struct RunFigures {
    events: Vec<Value>,
    llm_calls: u64,
    llm_seconds: f64,
    cpu_seconds: f64,
}

async fn measured_run(
    conn: &mut Conn,
    server: &crate::server::Server,
    llm: &ScriptedLlm,
    body: &Value,
) -> Result<RunFigures, String> {
    let id = create_conversation(conn, body).await?;
    let calls0 = llm.calls();
    let llm0 = llm.handler_seconds();
    let cpu0 = server.cpu_seconds();
    let r = conn
        .post_json(
            &format!("/api/conversations/{id}/events"),
            &user_message("Run the scripted steps.", true),
        )
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("send message: {} {}", r.status, r.text()));
    }
    let status = wait_final(conn, &id, Duration::from_secs(300)).await?;
    if status != "finished" {
        return Err(format!("the run ended as {status}"));
    }
    let cpu = server.cpu_seconds() - cpu0;
    Ok(RunFigures {
        events: all_events(conn, &id).await?,
        llm_calls: llm.calls() - calls0,
        llm_seconds: llm.handler_seconds() - llm0,
        cpu_seconds: cpu,
    })
}

/// Time from the user's message to the final status event, µs.
fn run_span(events: &[Value]) -> Option<i64> {
    let start = events
        .iter()
        .find(|e| e["kind"] == "MessageEvent" && e["source"] == "user")?;
    let end = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "ConversationStateUpdateEvent" && e["key"] == "execution_status")?;
    Some(stamp_micros(end["timestamp"].as_str()?)? - stamp_micros(start["timestamp"].as_str()?)?)
}

/// Durations between consecutive `ActionEvent`s (one loop iteration each), µs.
fn iterations(events: &[Value]) -> Vec<u64> {
    let stamps: Vec<i64> = events
        .iter()
        .filter(|e| e["kind"] == "ActionEvent")
        .filter_map(|e| stamp_micros(e["timestamp"].as_str()?))
        .collect();
    stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).max(0) as u64)
        .collect()
}

/// `ActionEvent` → its `ObservationEvent`, for one tool, µs.
fn tool_round_trips(events: &[Value], tool: &str) -> Vec<u64> {
    let actions: std::collections::HashMap<&str, i64> = events
        .iter()
        .filter(|e| e["kind"] == "ActionEvent" && e["tool_name"] == tool)
        .filter_map(|e| Some((e["id"].as_str()?, stamp_micros(e["timestamp"].as_str()?)?)))
        .collect();
    events
        .iter()
        .filter(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == tool)
        .filter_map(|e| {
            let start = actions.get(e["action_id"].as_str()?)?;
            Some((stamp_micros(e["timestamp"].as_str()?)? - start).max(0) as u64)
        })
        .collect()
}

/// Server-side overhead of one agent-loop iteration with an instant LLM.
pub async fn agent_step(opts: &Opts) -> Result<Report, String> {
    let steps = opts.steps.unwrap_or(200).max(2);
    let runs = 3;
    let term_steps = 50;
    let mut report = Report::new(
        "agent-step",
        setup(
            opts,
            &format!(
                "{runs} runs of {steps} `think` steps + finish (after one warm-up run), then one run of {term_steps} `terminal` `echo` steps, each in a new conversation, against an in-process instant LLM; times from the server's event time stamps"
            ),
        ),
    );
    let llm = ScriptedLlm::start(Policy {
        steps,
        terminal_every: 0,
    })?;
    let server = start_server(opts, &[])?;
    let mut conn = connect(server.addr).await?;
    let body = conversation_body(&server, &llm.base_url, steps as u64 + 20);
    let mut per_step = Vec::new();
    let mut iters = Vec::new();
    let mut first_iters = Vec::new();
    let mut last_iters = Vec::new();
    let (mut calls, mut llm_s, mut cpu_s, mut span_s) = (0u64, 0.0, 0.0, 0.0);
    for r in 0..=runs {
        let f = measured_run(&mut conn, &server, &llm, &body).await?;
        let actions = f
            .events
            .iter()
            .filter(|e| e["kind"] == "ActionEvent")
            .count();
        if actions != steps + 1 {
            report.fail(format!(
                "run {r}: {actions} actions instead of {}",
                steps + 1
            ));
        }
        if r == 0 {
            continue;
        }
        let span = run_span(&f.events).ok_or("no time stamps in the run")? as f64 / 1e6;
        per_step.push(span / f.llm_calls.max(1) as f64 * 1000.0);
        let it = iterations(&f.events);
        let tenth = (it.len() / 10).max(1);
        first_iters.extend_from_slice(&it[..tenth.min(it.len())]);
        last_iters.extend_from_slice(&it[it.len().saturating_sub(tenth)..]);
        iters.extend(it);
        calls += f.llm_calls;
        llm_s += f.llm_seconds;
        cpu_s += f.cpu_seconds;
        span_s += span;
    }
    let it = Summary::of_micros(iters);
    let llm_ms = llm_s / calls.max(1) as f64 * 1000.0;
    let server_ms = (span_s - llm_s) / calls.max(1) as f64 * 1000.0;
    report.budget(
        "agent-loop overhead per step, server side",
        format!("{} ms (mean over {calls} steps)", ms(server_ms)),
        "≤ 2 ms",
        server_ms <= STEP_MS,
    );
    report.info("one iteration (ActionEvent to ActionEvent)", it.line());
    report.info(
        "iteration p50: first 10% / last 10% of each run",
        format!(
            "{} / {} ms (the LLM request carries the whole history)",
            ms(Summary::of_micros(first_iters).p50),
            ms(Summary::of_micros(last_iters).p50)
        ),
    );
    report.info(
        "LLM handler time per call (subtracted)",
        format!("{} ms", ms(llm_ms)),
    );
    report.info(
        "server CPU per step",
        format!("{} ms", ms(cpu_s / calls.max(1) as f64 * 1000.0)),
    );

    // The terminal round trip inside a run.
    let term_llm = ScriptedLlm::start(Policy {
        steps: term_steps,
        terminal_every: 1,
    })?;
    let body = conversation_body(&server, &term_llm.base_url, term_steps as u64 + 20);
    let f = measured_run(&mut conn, &server, &term_llm, &body).await?;
    let trips = tool_round_trips(&f.events, "terminal");
    if trips.len() != term_steps {
        report.fail(format!(
            "{} terminal observations instead of {term_steps}",
            trips.len()
        ));
    }
    let bad = f
        .events
        .iter()
        .filter(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "terminal")
        .filter(|e| e["observation"]["exit_code"] != 0)
        .count();
    if bad > 0 {
        report.fail(format!("{bad} terminal echo(s) did not exit with 0"));
    }
    // The first command starts the shell; it is reported apart.
    let first = trips.first().copied().unwrap_or(0);
    let s = Summary::of_micros(trips.into_iter().skip(1).collect());
    report.budget(
        "terminal `echo` round trip in a run (action → observation)",
        format!("p50 {} ms", ms(s.p50)),
        "p50 ≤ 5 ms",
        s.p50 <= TERMINAL_P50_MS,
    );
    report.info("terminal round trip: distribution", s.line());
    report.info(
        "first terminal command (starts the shell)",
        format!("{} ms", ms(first as f64 / 1000.0)),
    );
    report.info(
        "per step with terminal echo (wall, instant LLM)",
        format!(
            "{} ms",
            ms(run_span(&f.events).unwrap_or(0) as f64 / 1000.0 / f.llm_calls.max(1) as f64)
        ),
    );
    report.info("server RSS after", mib(server.rss_kb()));
    Ok(report)
}

/// `/health` sampled at 20 Hz on its own thread until stopped.
fn health_sampler(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<u64>, u64)> {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return (Vec::new(), 1);
        };
        rt.block_on(async move {
            let req = prepared_get("/health");
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut conn = None;
            // Bounded by the stop flag and by a hard cap of one hour.
            for _ in 0..72_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let t0 = Instant::now();
                if conn.is_none() {
                    conn = Conn::connect(addr).await.ok();
                }
                let ok = match conn.as_mut() {
                    Some(c) => matches!(c.send_prepared(&req).await, Ok(h) if h.status == 200),
                    None => false,
                };
                if ok {
                    lat.push(t0.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                    conn = None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (lat, errors)
        })
    })
}

/// What one conversation's driver did.
#[derive(Default)]
struct Driven {
    runs: u64,
    problems: Vec<String>,
}

async fn drive(
    addr: SocketAddr,
    id: String,
    mut runs: watch::Receiver<u64>,
    deadline: Instant,
    pause: Duration,
    posted: Rc<Cell<u64>>,
) -> Driven {
    let mut out = Driven::default();
    let mut conn = match connect(addr).await {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(e);
            return out;
        }
    };
    let path = format!("/api/conversations/{id}/events");
    let mut n = 0u64;
    while Instant::now() < deadline {
        let before = *runs.borrow_and_update();
        n += 1;
        let msg = user_message(&format!("Soak round {n}: run the scripted steps."), true);
        match conn.post_json(&path, &msg).await {
            Ok(r) if r.status == 200 => posted.set(posted.get() + 1),
            Ok(r) => {
                out.problems
                    .push(format!("{id}: send message: {} {}", r.status, r.text()));
                return out;
            }
            Err(e) => {
                out.problems.push(format!("{id}: send message: {e}"));
                return out;
            }
        }
        let ended = tokio::time::timeout(RUN_TIMEOUT, runs.wait_for(|v| *v > before)).await;
        match ended {
            Ok(Ok(_)) => out.runs += 1,
            _ => {
                out.problems
                    .push(format!("{id}: run {n} did not end within {RUN_TIMEOUT:?}"));
                return out;
            }
        }
        tokio::time::sleep(pause).await;
    }
    out
}

/// Compares what a subscriber saw with the REST log; `None` when identical.
fn compare(seen: &ws::Seen, rest: &[String]) -> Option<String> {
    if seen.ids == rest {
        return None;
    }
    let distinct: HashSet<&String> = seen.ids.iter().collect();
    let repeated = seen.ids.len() - distinct.len();
    let missing = rest.iter().filter(|i| !distinct.contains(i)).count();
    let first_diff = seen
        .ids
        .iter()
        .zip(rest)
        .position(|(a, b)| a != b)
        .unwrap_or(seen.ids.len().min(rest.len()));
    Some(format!(
        "subscriber of {}: got {} events, REST has {}: {missing} missing, {repeated} repeated, first difference at position {first_diff}",
        seen.conversation,
        seen.ids.len(),
        rest.len()
    ))
}

/// Many conversations running agent loops, watched by WebSocket subscribers.
pub async fn soak(opts: &Opts) -> Result<Report, String> {
    let secs = opts.duration.unwrap_or(120).max(1);
    let n_conv = opts.conversations.unwrap_or(100).max(1);
    let n_subs = opts.subscribers.unwrap_or(2 * n_conv);
    if n_subs < n_conv {
        return Err(
            "--subscribers must be at least --conversations (each driver listens on one)".into(),
        );
    }
    let steps = opts.steps.unwrap_or(3).max(1);
    let pause = Duration::from_millis(200);
    let mut report = Report::new(
        "soak",
        setup(
            opts,
            &format!(
                "{n_conv} conversations × runs of {steps} tool steps (first `terminal` echo, then `think`) + finish, {} ms between runs, for {secs} s; {n_subs} WebSocket subscribers (one per conversation from the start, the others joining during the first half with resend_mode=all); /health sampled at 20 Hz; RSS sampled every second; max_concurrent_runs = {n_conv}",
                pause.as_millis()
            ),
        ),
    );
    let llm = ScriptedLlm::start(Policy {
        steps,
        terminal_every: steps,
    })?;
    let server = start_server(opts, &[("OH_MAX_CONCURRENT_RUNS", n_conv.to_string())])?;
    let addr = server.addr;
    let mut body = conversation_body(&server, &llm.base_url, 1000);
    // As a production agent is configured: a summarizing condenser keeps
    // the LLM's view (and what the server holds of it) bounded while the
    // stored history grows, so the run is a steady state in which the
    // resident size must stay flat.
    let mut condenser_llm = body["agent"]["llm"].clone();
    condenser_llm["usage_id"] = json!("condenser");
    body["agent"]["condenser"] = json!({
        "kind": "LLMSummarizingCondenser", "llm": condenser_llm,
        "max_size": CONDENSER_MAX_SIZE, "keep_first": 4,
    });
    let mut ids = Vec::with_capacity(n_conv);
    {
        let clients = 8.min(n_conv);
        let tasks = (0..clients).map(|c| {
            let body = body.clone();
            let mine = n_conv / clients + usize::from(c < n_conv % clients);
            async move {
                let mut conn = connect(addr).await?;
                let mut out = Vec::new();
                for _ in 0..mine {
                    out.push(create_conversation(&mut conn, &body).await?);
                }
                Ok::<_, String>(out)
            }
        });
        for r in join_all(tasks).await {
            ids.extend(r?);
        }
    }
    let rss_start = server.rss_kb();
    let cpu0 = server.cpu_seconds();
    let rss = server.sample_rss(Duration::from_secs(1));
    let stop_health = Arc::new(AtomicBool::new(false));
    let health = health_sampler(addr, stop_health.clone());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);

    let mut expects = Vec::with_capacity(n_conv);
    let mut run_rx = Vec::with_capacity(n_conv);
    let mut subs = Vec::with_capacity(n_subs);
    for id in &ids {
        let (etx, erx) = watch::channel(None);
        let (rtx, rrx) = watch::channel(0u64);
        expects.push(etx);
        run_rx.push(rrx);
        subs.push(actix_web::rt::spawn(ws::follow(
            addr,
            id.clone(),
            Some(rtx),
            erx,
        )));
    }
    let late = n_subs - n_conv;
    let half = Duration::from_secs(secs) / 2;
    for j in 0..late {
        let conv = j % n_conv;
        let delay = if late > 0 {
            half * j as u32 / late as u32
        } else {
            Duration::ZERO
        };
        let erx = expects[conv].subscribe();
        let id = ids[conv].clone();
        subs.push(actix_web::rt::spawn(async move {
            tokio::time::sleep(delay).await;
            ws::follow(addr, id, None, erx).await
        }));
    }
    let posted = Rc::new(Cell::new(0u64));
    let drivers: Vec<_> = ids
        .iter()
        .zip(run_rx)
        .map(|(id, rrx)| {
            actix_web::rt::spawn(drive(
                addr,
                id.clone(),
                rrx,
                deadline,
                pause,
                posted.clone(),
            ))
        })
        .collect();
    let mut runs = 0;
    for d in join_all(drivers).await {
        match d {
            Ok(d) => {
                runs += d.runs;
                for p in d.problems {
                    report.fail(p);
                }
            }
            Err(e) => report.fail(format!("a driver task failed: {e}")),
        }
    }
    let load_time = start.elapsed();
    stop_health.store(true, Ordering::Relaxed);
    let rss_samples = rss.finish();
    let cpu = server.cpu_seconds() - cpu0;
    let (health_lat, health_errors) = health
        .join()
        .map_err(|_| "the /health sampler panicked".to_string())?;

    // The REST log of every conversation, then each subscriber's view of it.
    let mut conn = connect(addr).await?;
    let mut rest: Vec<Vec<String>> = Vec::with_capacity(n_conv);
    let mut total_events = 0;
    for (i, id) in ids.iter().enumerate() {
        let events = all_events(&mut conn, id).await?;
        let list: Vec<String> = events
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect();
        total_events += list.len();
        let last_status = events
            .iter()
            .rev()
            .find(|e| e["key"] == "execution_status")
            .and_then(|e| e["value"].as_str().map(str::to_string));
        if last_status.as_deref() != Some("finished") {
            report.fail(format!("conversation {id} ended as {last_status:?}"));
        }
        let _ = expects[i].send(Some(list.len()));
        rest.push(list);
    }
    let mut frames = 0;
    let mut resumes = 0;
    let mut bad_subs = 0;
    for (j, s) in join_all(subs).await.into_iter().enumerate() {
        let Ok(seen) = s else {
            report.fail(format!("subscriber task {j} failed"));
            continue;
        };
        let conv = if j < n_conv { j } else { (j - n_conv) % n_conv };
        frames += seen.ids.len();
        resumes += seen.resumes;
        for d in &seen.drops {
            report.fail(format!("subscriber of {}: {d}", seen.conversation));
        }
        if seen.junk > 0 {
            report.fail(format!(
                "subscriber of {}: {} frames without an event id",
                seen.conversation, seen.junk
            ));
        }
        if let Some(problem) = compare(&seen, &rest[conv]) {
            bad_subs += 1;
            report.fail(problem);
        }
    }
    drop(expects);

    let health = Summary::of_micros(health_lat);
    report.budget(
        "subscribers with exactly-once, in-order delivery",
        format!("{} of {n_subs}", n_subs - bad_subs),
        "all",
        bad_subs == 0,
    );
    report.budget(
        "/health p99 during the soak",
        format!("{} ms", ms(health.p99)),
        "< 50 ms",
        health.p99 < SOAK_HEALTH_P99_MS && health_errors == 0,
    );
    report.info("/health during the soak", health.line());
    if health_errors > 0 {
        report.fail(format!("{health_errors} /health samples failed"));
    }
    let secs_f = load_time.as_secs_f64();
    report.info(
        "agent runs completed",
        format!(
            "{runs} ({:.1} runs/s) from {} messages, {} LLM calls",
            runs as f64 / secs_f,
            posted.get(),
            llm.calls()
        ),
    );
    report.info(
        "events persisted",
        format!(
            "{total_events} ({:.0} events/s)",
            total_events as f64 / secs_f
        ),
    );
    report.info(
        "events delivered over WebSockets",
        format!(
            "{frames} ({:.0} frames/s), {resumes} resume(s) after a 4008 close",
            frames as f64 / secs_f
        ),
    );
    report.info("server CPU", format!("{:.2} cores", cpu / secs_f));
    let at = |frac: f64| -> u64 {
        let t = secs_f * frac;
        rss_samples
            .iter()
            .find(|s| s.0 >= t)
            .or(rss_samples.last())
            .map_or(0, |s| s.1)
    };
    let peak = rss_samples.iter().map(|s| s.1).max().unwrap_or(0);
    let (q1, end) = (at(0.25), at(1.0));
    report.info(
        "RSS: after setup / 25% / 50% / 75% / end / peak",
        format!(
            "{} / {} / {} / {} / {} / {}",
            mib(rss_start),
            mib(q1),
            mib(at(0.5)),
            mib(at(0.75)),
            mib(end),
            mib(peak)
        ),
    );
    // The first half warms up (the database's page cache and the
    // allocator's arenas fill); a leak shows as growth in the second half.
    let half = at(0.5);
    let growth = end as f64 - half as f64;
    let per_kevent = growth / (total_events as f64 * 0.5 / 1000.0).max(1.0);
    report.budget(
        "RSS growth over the second half of the load",
        format!(
            "{:+.1} MiB ({:+.1} KiB per 1,000 events written meanwhile)",
            growth / 1024.0,
            per_kevent
        ),
        &format!(
            "flat (≤ {:.0}% of the RSS at half time)",
            FLAT_RSS_SHARE * 100.0
        ),
        growth <= FLAT_RSS_SHARE * half as f64,
    );
    report.note(format!(
        "The agents condense their history beyond {CONDENSER_MAX_SIZE} events, as a production \
         agent is configured, so what a conversation holds in memory is bounded while its stored \
         history grows; the database's page cache (storage.cache_mb) fills up to its limit during \
         the first part of the load."
    ));
    Ok(report)
}
