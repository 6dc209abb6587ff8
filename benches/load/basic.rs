//! The request-level scenarios: `/health` throughput, idle memory, memory
//! of idle conversations, event-page latency in a 100,000-event
//! conversation, `execute_bash_command` latency, and large-file transfer.
//! Also the helpers every scenario shares (starting the server, the
//! conversation body, query encoding). Each scenario owns the server it
//! starts; nothing here outlives its scenario.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::Opts;
use crate::http::{Conn, prepared_get};
use crate::report::{Report, Summary, mib, ms};
use crate::server::{Server, ServerSpec};

/// Starts the server under test with extra `OH_*` settings.
pub fn start_server(opts: &Opts, env: &[(&str, String)]) -> Result<Server, String> {
    let mut all = vec![("OH_STORAGE_DURABILITY".to_string(), opts.durability.clone())];
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    // Operator overrides (`--set`) come last and win.
    all.extend(opts.set.iter().cloned());
    Server::start(&ServerSpec {
        binary: &opts.server,
        log_level: &opts.log,
        env: all,
    })
}

/// The common part of every setup line: durability, log level, load.
pub fn setup(opts: &Opts, extra: &str) -> String {
    format!(
        "{extra}; durability {}, RUST_LOG={}, load average at start {}",
        opts.durability,
        opts.log,
        crate::load_average()
    )
}

/// Percent-encodes a query value (the server's own encoder).
pub use agent_server::routes::files::percent_encode as enc;

/// A start-conversation body: an OpenAI-style LLM at `llm_base`, the three
/// standard tools, a workspace inside the server's directory.
pub fn conversation_body(server: &Server, llm_base: &str, max_iterations: u64) -> Value {
    let ws = server.dir.path().join("ws");
    json!({
        "agent": {
            "llm": {"model": "openai/load-test", "api_key": "sk-load-test", "base_url": llm_base,
                    "num_retries": 0, "timeout": 30},
            "tools": [{"name": "terminal"}, {"name": "file_editor"}, {"name": "task_tracker"}],
            "kind": "Agent"
        },
        "workspace": {"working_dir": ws.to_string_lossy(), "kind": "LocalWorkspace"},
        "max_iterations": max_iterations,
    })
}

/// Creates a conversation and returns its id.
pub async fn create_conversation(conn: &mut Conn, body: &Value) -> Result<String, String> {
    let r = conn
        .post_json("/api/conversations", body)
        .await
        .map_err(|e| format!("create conversation: {e}"))?;
    if r.status != 201 && r.status != 200 {
        return Err(format!("create conversation: {} {}", r.status, r.text()));
    }
    r.json()["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("create conversation: no id in {}", r.text()))
}

/// Connects, with a readable error.
pub async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    Conn::connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))
}

/// Budget of `/health` throughput (issue 2).
const HEALTH_RPS: f64 = 30_000.0;
/// Latencies kept per client thread (bounded memory).
const MAX_LATENCIES: usize = 4_000_000;

struct HealthThread {
    count: u64,
    errors: u64,
    latencies: Vec<u64>,
}

/// `/health` with N keep-alive connections for a duration.
pub async fn health(opts: &Opts) -> Result<Report, String> {
    let conns = opts.connections.unwrap_or(64).max(1);
    let secs = opts.duration.unwrap_or(10).max(1);
    let threads = opts.threads.unwrap_or(2).clamp(1, conns);
    let mut report = Report::new(
        "health",
        setup(
            opts,
            &format!(
                "{conns} keep-alive connections on {threads} client thread(s), 1 s warm-up, {secs} s measured; the client shares the machine's cores with the server"
            ),
        ),
    );
    let server = start_server(opts, &[])?;
    let rss_before = server.rss_kb();
    let sampler = server.sample_rss(Duration::from_millis(200));
    let addr = server.addr;
    let warm_end = Instant::now() + Duration::from_secs(1);
    let end = warm_end + Duration::from_secs(secs);
    let pid = server.pid;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let n = conns / threads + usize::from(t < conns % threads);
            std::thread::spawn(move || health_thread(addr, n, warm_end, end))
        })
        .collect();
    // Server CPU is read at the end of the warm-up, from this thread.
    std::thread::sleep(warm_end.saturating_duration_since(Instant::now()));
    let cpu_start = crate::server::cpu_seconds(pid);
    let mut count = 0;
    let mut errors = 0;
    let mut lat = Vec::new();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| "a client thread panicked".to_string())??;
        count += r.count;
        errors += r.errors;
        lat.extend(r.latencies);
    }
    let cpu = server.cpu_seconds() - cpu_start;
    let samples = sampler.finish();
    let rps = count as f64 / secs as f64;
    let s = Summary::of_micros(lat);
    report.budget(
        "/health throughput",
        format!("{rps:.0} req/s"),
        "≥ 30,000 req/s",
        rps >= HEALTH_RPS,
    );
    report.info("/health latency", s.line());
    report.info(
        "server CPU during the run",
        format!("{:.2} cores", cpu / secs as f64),
    );
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    report.info(
        "server RSS before / peak / after",
        format!(
            "{} / {} / {}",
            mib(rss_before),
            mib(peak),
            mib(server.rss_kb())
        ),
    );
    if errors > 0 {
        report.fail(format!("{errors} /health requests failed"));
    }
    if count == 0 {
        report.fail("no /health request completed".into());
    }
    Ok(report)
}

fn health_thread(
    addr: SocketAddr,
    conns: usize,
    warm_end: Instant,
    end: Instant,
) -> Result<HealthThread, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("client runtime: {e}"))?;
    rt.block_on(async move {
        let req = prepared_get("/health");
        let per_conn = MAX_LATENCIES / conns.max(1);
        let tasks = (0..conns).map(|_| {
            let req = req.clone();
            async move {
                let mut out = HealthThread {
                    count: 0,
                    errors: 0,
                    latencies: Vec::with_capacity(per_conn.min(100_000)),
                };
                let mut conn = match Conn::connect(addr).await {
                    Ok(c) => c,
                    Err(_) => {
                        out.errors += 1;
                        return out;
                    }
                };
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let ok = matches!(conn.send_prepared(&req).await, Ok(h) if h.status == 200);
                    let t1 = Instant::now();
                    if t0 < warm_end {
                        if !ok {
                            out.errors += 1;
                            break;
                        }
                        continue;
                    }
                    if ok {
                        out.count += 1;
                        if out.latencies.len() < per_conn {
                            out.latencies.push((t1 - t0).as_micros() as u64);
                        }
                    } else {
                        out.errors += 1;
                        break;
                    }
                }
                out
            }
        });
        let results = join_all(tasks).await;
        let mut all = HealthThread {
            count: 0,
            errors: 0,
            latencies: Vec::new(),
        };
        for r in results {
            all.count += r.count;
            all.errors += r.errors;
            all.latencies.extend(r.latencies);
        }
        Ok(all)
    })
}

/// Budget of idle RSS (issue 2).
const IDLE_RSS_KB: u64 = 30 * 1024;

/// Resident memory of a started, idle server.
pub async fn idle(opts: &Opts) -> Result<Report, String> {
    let mut report = Report::new(
        "idle",
        setup(opts, "server started, 2 s idle, then one /health"),
    );
    let server = start_server(opts, &[])?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = connect(server.addr).await?;
    let r = conn.get("/health").await.map_err(|e| e.to_string())?;
    if r.status != 200 {
        report.fail(format!("/health answered {}", r.status));
    }
    let rss = server.rss_kb();
    report.budget("idle RSS", mib(rss), "≤ 30 MB", rss <= IDLE_RSS_KB);
    report.info("peak RSS since start (VmHWM)", mib(server.peak_rss_kb()));
    report.info(
        "CPU used by start-up",
        format!("{:.0} ms", server.cpu_seconds() * 1000.0),
    );
    Ok(report)
}

/// Budget of 1,000 idle conversations (issue 2).
const CONVERSATIONS_RSS_KB: u64 = 100 * 1024;

/// RSS with many idle conversations.
pub async fn idle_conversations(opts: &Opts) -> Result<Report, String> {
    let n = opts.conversations.unwrap_or(1000).max(1);
    let clients = 8.min(n);
    let mut report = Report::new(
        "idle-conversations",
        setup(
            opts,
            &format!("{n} conversations created over {clients} connections, then 2 s idle"),
        ),
    );
    let server = start_server(opts, &[])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kb();
    // Never contacted: the conversations stay idle.
    let body = conversation_body(&server, "http://127.0.0.1:9/v1", 100);
    let start = Instant::now();
    let tasks = (0..clients).map(|c| {
        let body = body.clone();
        let addr = server.addr;
        let mine = n / clients + usize::from(c < n % clients);
        async move {
            let mut conn = connect(addr).await?;
            let mut lat = Vec::with_capacity(mine);
            for _ in 0..mine {
                let t0 = Instant::now();
                create_conversation(&mut conn, &body).await?;
                lat.push(t0.elapsed());
            }
            Ok::<_, String>(lat)
        }
    });
    let mut lat = Vec::new();
    for r in join_all(tasks).await {
        lat.extend(r?);
    }
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kb();
    let mut conn = connect(server.addr).await?;
    let count = conn
        .get("/api/conversations/count")
        .await
        .map_err(|e| e.to_string())?;
    if count.text().trim() != n.to_string() {
        report.fail(format!(
            "/api/conversations/count answered {} instead of {n}",
            count.text()
        ));
    }
    report.budget(
        &format!("RSS with {n} idle conversations"),
        mib(after),
        "≤ 100 MB (for 1,000)",
        after <= CONVERSATIONS_RSS_KB * n as u64 / 1000,
    );
    report.info("RSS before creating them", mib(before));
    report.info(
        "RSS per conversation",
        format!("{:.1} KiB", after.saturating_sub(before) as f64 / n as f64),
    );
    report.info(
        "create latency",
        format!(
            "{} ({:.0} conversations/s)",
            Summary::of(&lat).line(),
            n as f64 / took.as_secs_f64()
        ),
    );
    Ok(report)
}

/// Budget of one page of 100 events (issue 2), ms at p50.
const PAGE_P50_MS: f64 = 2.0;

/// Page latency in a conversation of 100,000 events.
pub async fn events_page(opts: &Opts) -> Result<Report, String> {
    let target = opts.events.unwrap_or(100_000).max(200);
    let samples = opts.requests.unwrap_or(300).max(10);
    let clients = 16;
    let mut report = Report::new(
        "events-page",
        setup(
            opts,
            &format!(
                "{target} events written through POST /events (run=false) over {clients} connections; then {samples} sequential requests per kind on one keep-alive connection"
            ),
        ),
    );
    let server = start_server(opts, &[])?;
    let body = conversation_body(&server, "http://127.0.0.1:9/v1", 100);
    let mut conn = connect(server.addr).await?;
    let id = create_conversation(&mut conn, &body).await?;
    let events_path = format!("/api/conversations/{id}/events");
    let count_path = format!("{events_path}/count");
    let count = |r: crate::http::Response| -> Result<u64, String> {
        r.text()
            .trim()
            .parse()
            .map_err(|_| format!("events/count answered {} {}", r.status, r.text()))
    };
    let message = |i: u64| {
        json!({"role": "user", "run": false, "content": [{"type": "text",
            "text": format!("Message {i}: please look at the failing test in module {} and explain the cause.", i % 97)}]})
    };
    // The first message also writes the system prompt; the second shows
    // how many events one message adds.
    for i in 0..2 {
        let r = conn
            .post_json(&events_path, &message(i))
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("send message: {} {}", r.status, r.text()));
        }
    }
    let have = count(conn.get(&count_path).await.map_err(|e| e.to_string())?)?;
    let r = conn
        .post_json(&events_path, &message(2))
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("send message: {} {}", r.status, r.text()));
    }
    let per_message =
        (count(conn.get(&count_path).await.map_err(|e| e.to_string())?)? - have).max(1);
    let have = have + per_message;
    let messages = target.saturating_sub(have).div_ceil(per_message);
    let fill_start = Instant::now();
    let tasks = (0..clients).map(|c| {
        let addr = server.addr;
        let path = events_path.clone();
        let mine = messages / clients + u64::from(c < messages % clients);
        async move {
            let mut conn = connect(addr).await?;
            let mut lat = Vec::with_capacity(mine as usize);
            for i in 0..mine {
                let t0 = Instant::now();
                let r = conn
                    .post_json(&path, &message(i * clients + c))
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status != 200 {
                    return Err(format!("send message: {} {}", r.status, r.text()));
                }
                lat.push(t0.elapsed());
            }
            Ok::<_, String>(lat)
        }
    });
    let mut post_lat = Vec::new();
    for r in join_all(tasks).await {
        post_lat.extend(r?);
    }
    let fill = fill_start.elapsed();
    let total = count(conn.get(&count_path).await.map_err(|e| e.to_string())?)?;
    if total < target {
        report.fail(format!("only {total} events after filling to {target}"));
    }
    report.info(
        "events written through the API",
        format!(
            "{total} in {:.1} s ({:.0} events/s, {} per message)",
            fill.as_secs_f64(),
            (total - have) as f64 / fill.as_secs_f64(),
            per_message
        ),
    );
    report.info(
        "POST /events latency while filling",
        Summary::of(&post_lat).line(),
    );

    // A full ascending walk: every event exactly once, and page ids to sample.
    let search = format!("{events_path}/search");
    let mut page_ids = Vec::new();
    let mut walked = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut next: Option<String> = None;
    for _ in 0..(total / 100 + 2) {
        let path = match &next {
            Some(p) => format!("{search}?limit=100&page_id={}", enc(p)),
            None => format!("{search}?limit=100"),
        };
        let page = conn.get(&path).await.map_err(|e| e.to_string())?.json();
        for item in page["items"].as_array().into_iter().flatten() {
            walked += 1;
            if let Some(i) = item["id"].as_str() {
                seen.insert(i.to_string());
            }
        }
        match page["next_page_id"].as_str() {
            Some(p) => {
                page_ids.push(p.to_string());
                next = Some(p.to_string());
            }
            None => break,
        }
    }
    if walked != total || seen.len() as u64 != total {
        report.fail(format!(
            "paging through the log gave {walked} items ({} distinct) for {total} events",
            seen.len()
        ));
    }

    let mut time = async |kind: &str, paths: Vec<String>| -> Result<Summary, String> {
        let mut lat = Vec::with_capacity(paths.len());
        for p in paths {
            let t0 = Instant::now();
            let r = conn.get(&p).await.map_err(|e| e.to_string())?;
            lat.push(t0.elapsed());
            if r.status != 200 {
                return Err(format!("{kind}: {} {}", r.status, r.text()));
            }
            if kind != "count" {
                let n = r.json()["items"].as_array().map_or(0, Vec::len);
                if n != 100 {
                    return Err(format!("{kind}: a page of {n} items instead of 100"));
                }
            }
        }
        Ok(Summary::of(&lat))
    };
    let newest = format!("{search}?limit=100&sort_order=TIMESTAMP_DESC");
    let oldest = format!("{search}?limit=100");
    // Warm-up, as a reader of a live server would have.
    time("warm-up", vec![newest.clone(); 20]).await?;
    let picks: Vec<String> = (0..samples)
        .map(|i| {
            // Spread over the log, never the last (short) page.
            let k = (i * 7919) % page_ids.len().saturating_sub(1).max(1);
            format!("{search}?limit=100&page_id={}", enc(&page_ids[k]))
        })
        .collect();
    let s_new = time("newest", vec![newest; samples]).await?;
    let s_old = time("oldest", vec![oldest; samples]).await?;
    let s_after = time("after page_id", picks).await?;
    let s_count = time("count", vec![count_path.clone(); samples]).await?;
    for (name, s) in [
        ("page of 100, newest first", s_new),
        ("page of 100, oldest first", s_old),
        ("page of 100 after a page_id", s_after),
    ] {
        report.budget(
            name,
            format!("p50 {} ms", ms(s.p50)),
            "p50 ≤ 2 ms",
            s.p50 <= PAGE_P50_MS,
        );
        report.info(&format!("{name}: distribution"), s.line());
    }
    report.info("events/count", s_count.line());
    report.info(
        "server RSS after filling and paging",
        format!(
            "{} (peak {})",
            mib(server.rss_kb()),
            mib(server.peak_rss_kb())
        ),
    );
    Ok(report)
}

/// Budget of `execute_bash_command` `echo` (issue 4), ms at p50.
const BASH_P50_MS: f64 = 5.0;

/// `execute_bash_command` of `echo`, sequentially.
pub async fn bash_echo(opts: &Opts) -> Result<Report, String> {
    let n = opts.requests.unwrap_or(300).max(10);
    let mut report = Report::new(
        "bash-echo",
        setup(
            opts,
            &format!(
                "{n} sequential POST /api/bash/execute_bash_command {{\"command\": \"echo hello\"}} after 10 warm-up calls"
            ),
        ),
    );
    let server = start_server(opts, &[])?;
    let mut conn = connect(server.addr).await?;
    let body = json!({"command": "echo hello"});
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let t0 = Instant::now();
        let r = conn
            .post_json("/api/bash/execute_bash_command", &body)
            .await
            .map_err(|e| e.to_string())?;
        let took = t0.elapsed();
        let v = r.json();
        if r.status != 200 || v["exit_code"] != 0 || v["stdout"] != "hello\n" {
            report.fail(format!("call {i}: {} {}", r.status, r.text()));
            break;
        }
        if i >= 10 {
            lat.push(took);
        }
    }
    let s = Summary::of(&lat);
    report.budget(
        "execute_bash_command echo",
        format!("p50 {} ms", ms(s.p50)),
        "p50 ≤ 5 ms",
        s.p50 <= BASH_P50_MS,
    );
    report.info("distribution", s.line());
    report.info("server RSS after", mib(server.rss_kb()));
    Ok(report)
}

/// Budget of transfer throughput (issue 4), bytes/s.
const TRANSFER_BPS: f64 = 500e6;
/// Budget of RSS growth during a transfer (issue 4), KiB.
const TRANSFER_RSS_KB: u64 = 20 * 1024;
/// Size of the repeated data pattern.
const PATTERN: usize = 1 << 20;

fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..PATTERN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Upload then download of a large generated file.
pub async fn transfer(opts: &Opts) -> Result<Report, String> {
    let mib_size = opts.size_mib.unwrap_or(1024).max(1);
    let size = mib_size << 20;
    let mut report = Report::new(
        "transfer",
        setup(
            opts,
            &format!(
                "{mib_size} MiB generated on the fly, uploaded as multipart to /api/file/upload, then downloaded from /api/file/download and compared byte for byte; one connection each"
            ),
        ),
    );
    let server = start_server(opts, &[])?;
    let target = server.dir.path().join("transfer.bin");
    let data = pattern();
    let boundary = "agent-server-load-boundary-7d1f";
    let pre = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"transfer.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let post = format!("\r\n--{boundary}--\r\n");
    let length = pre.len() as u64 + size + post.len() as u64;
    let head = format!(
        "POST /api/file/upload?path={} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n",
        enc(&target.to_string_lossy())
    );
    let mut conn = connect(server.addr).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_kb();
    let sampler = server.sample_rss(Duration::from_millis(20));
    let t0 = Instant::now();
    conn.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    conn.write_all(pre.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut left = size;
    while left > 0 {
        let n = left.min(PATTERN as u64) as usize;
        conn.write_all(&data[..n])
            .await
            .map_err(|e| format!("upload: {e}"))?;
        left -= n as u64;
    }
    conn.write_all(post.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let up_head = conn.read_head().await.map_err(|e| e.to_string())?;
    let mut up_body = Vec::new();
    conn.read_body(&up_head, |c| up_body.extend_from_slice(c))
        .await
        .map_err(|e| e.to_string())?;
    let up = t0.elapsed();
    let up_samples = sampler.finish();
    if up_head.status != 200 {
        report.fail(format!(
            "upload answered {} {}",
            up_head.status,
            String::from_utf8_lossy(&up_body)
        ));
        return Ok(report);
    }
    let on_disk = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    if on_disk != size {
        report.fail(format!("the uploaded file has {on_disk} bytes, not {size}"));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_mid = server.rss_kb();
    let sampler = server.sample_rss(Duration::from_millis(20));
    let t0 = Instant::now();
    let req = prepared_get(&format!(
        "/api/file/download?path={}",
        enc(&target.to_string_lossy())
    ));
    conn.write_all(&req).await.map_err(|e| e.to_string())?;
    let down_head = conn.read_head().await.map_err(|e| e.to_string())?;
    let mut offset = 0usize;
    let mut mismatched = false;
    let got = conn
        .read_body(&down_head, |chunk| {
            let mut c = chunk;
            while !c.is_empty() {
                let at = offset % PATTERN;
                let n = c.len().min(PATTERN - at);
                mismatched |= c[..n] != data[at..at + n];
                offset += n;
                c = &c[n..];
            }
        })
        .await
        .map_err(|e| format!("download: {e}"))?;
    let down = t0.elapsed();
    let down_samples = sampler.finish();
    if down_head.status != 200 || got != size || mismatched {
        report.fail(format!(
            "download: status {}, {got} bytes of {size}, content {}",
            down_head.status,
            if mismatched { "differs" } else { "matches" }
        ));
    }
    if let Err(e) = std::fs::remove_file(&target) {
        report.fail(format!("cannot remove {}: {e}", target.display()));
    }
    let peak = |s: &[(f64, u64)]| s.iter().map(|x| x.1).max().unwrap_or(0);
    let up_growth = peak(&up_samples).saturating_sub(rss_before);
    let down_growth = peak(&down_samples).saturating_sub(rss_mid);
    let rate = |d: Duration| size as f64 / d.as_secs_f64();
    report.budget(
        "upload throughput",
        format!("{:.0} MB/s ({:.2} s)", rate(up) / 1e6, up.as_secs_f64()),
        "≥ 500 MB/s",
        rate(up) >= TRANSFER_BPS,
    );
    report.budget(
        "download throughput",
        format!("{:.0} MB/s ({:.2} s)", rate(down) / 1e6, down.as_secs_f64()),
        "≥ 500 MB/s",
        rate(down) >= TRANSFER_BPS,
    );
    report.budget(
        "RSS growth during upload",
        mib(up_growth),
        "< 20 MB",
        up_growth < TRANSFER_RSS_KB,
    );
    report.budget(
        "RSS growth during download",
        mib(down_growth),
        "< 20 MB",
        down_growth < TRANSFER_RSS_KB,
    );
    report.info("RSS before", mib(rss_before));
    Ok(report)
}
