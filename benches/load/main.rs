//! The load and soak tool: drives the real `agent-server` binary from the
//! outside over loopback and prints a table of figures next to the budgets
//! of the issues.
//!
//! `cargo bench --bench load -- <scenario> [options]`; scenarios: `health`,
//! `idle`, `idle-conversations`, `events-page`, `agent-step`, `bash-echo`,
//! `transfer`, `soak`, `all` (every scenario with its default options but a
//! shorter soak), and `criterion-table` (the criterion results under
//! `target/criterion` as a table). Each scenario starts its own server (and
//! a scripted instant LLM where it needs one) in a temporary directory,
//! kills everything it started and removes its files. It exits with 1 when
//! a correctness check fails (a subscriber missed or repeated an event, a
//! request failed); a missed budget is reported, not a failure. Every loop
//! is bounded in count and in time. Run without a scenario (as plain
//! `cargo bench` does) it prints its usage and does nothing.

mod agent;
mod basic;
mod criterion_table;
mod http;
mod llm;
mod report;
mod server;
mod ws;

use std::path::PathBuf;
use std::time::Duration;

use report::Report;

const USAGE: &str = "\
Usage: cargo bench --bench load -- <scenario> [options]

Scenarios:
  health              /health throughput: --connections N (64) --duration S (10) --threads T (2)
  idle                resident memory of a started, idle server
  idle-conversations  RSS with --conversations N (1000) idle conversations
  events-page         page latency in a conversation of --events N (100000) events
  agent-step          agent-loop overhead per step with an instant LLM: --steps N (200)
  bash-echo           execute_bash_command `echo` latency: --requests N (300)
  transfer            upload and download of --size-mib N (1024) MiB
  soak                --duration S (120) --conversations N (100) --subscribers N (200)
  all                 every scenario with its defaults (soak: --duration 30)
  criterion-table     criterion results (target/criterion) as a markdown table

Options:
  --server PATH       the binary to drive (default: the one cargo built)
  --log LEVEL         RUST_LOG of the server (default: warn)
  --durability MODE   storage.durability of the server: sync (default) or relaxed
  --set OH_KEY=VALUE  an extra server setting (repeatable), e.g. OH_STORAGE_CACHE_MB=16
  --markdown FILE     also append the result tables to FILE
";

/// Options of every scenario (each uses the ones it needs).
#[derive(Debug, Clone)]
pub struct Opts {
    /// The server binary.
    pub server: PathBuf,
    /// `RUST_LOG` of the server.
    pub log: String,
    /// `OH_STORAGE_DURABILITY`.
    pub durability: String,
    /// Seconds of load.
    pub duration: Option<u64>,
    /// Concurrent connections.
    pub connections: Option<usize>,
    /// Client threads.
    pub threads: Option<usize>,
    /// Conversations.
    pub conversations: Option<usize>,
    /// WebSocket subscribers.
    pub subscribers: Option<usize>,
    /// Events to fill.
    pub events: Option<u64>,
    /// Agent steps per run.
    pub steps: Option<usize>,
    /// Requests to time.
    pub requests: Option<usize>,
    /// Transfer size in MiB.
    pub size_mib: Option<u64>,
    /// Where criterion keeps its results.
    pub criterion_dir: Option<PathBuf>,
    /// Markdown output file.
    pub markdown: Option<PathBuf>,
    /// Extra server settings (`--set OH_KEY=VALUE`).
    pub set: Vec<(String, String)>,
}

fn default_server() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-server"))
}

fn parse(args: &[String]) -> Result<(String, Opts), String> {
    let mut opts = Opts {
        server: default_server(),
        log: "warn".into(),
        durability: "sync".into(),
        duration: None,
        connections: None,
        threads: None,
        conversations: None,
        subscribers: None,
        events: None,
        steps: None,
        requests: None,
        size_mib: None,
        criterion_dir: None,
        markdown: None,
        set: vec![],
    };
    let mut scenario = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let num = |name: &str, v: String| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{name} expects a number, got {v:?}"))
        };
        match a.as_str() {
            "--server" => opts.server = PathBuf::from(value(a)?),
            "--log" => opts.log = value(a)?,
            "--durability" => opts.durability = value(a)?,
            "--duration" => opts.duration = Some(num(a, value(a)?)?),
            "--connections" => opts.connections = Some(num(a, value(a)?)? as usize),
            "--threads" => opts.threads = Some(num(a, value(a)?)? as usize),
            "--conversations" => opts.conversations = Some(num(a, value(a)?)? as usize),
            "--subscribers" => opts.subscribers = Some(num(a, value(a)?)? as usize),
            "--events" => opts.events = Some(num(a, value(a)?)?),
            "--steps" => opts.steps = Some(num(a, value(a)?)? as usize),
            "--requests" => opts.requests = Some(num(a, value(a)?)? as usize),
            "--size-mib" => opts.size_mib = Some(num(a, value(a)?)?),
            "--criterion-dir" => opts.criterion_dir = Some(PathBuf::from(value(a)?)),
            "--markdown" => opts.markdown = Some(PathBuf::from(value(a)?)),
            "--set" => {
                let v = value(a)?;
                match v.split_once('=') {
                    Some((k, val)) if k.starts_with("OH_") => {
                        opts.set.push((k.to_string(), val.to_string()))
                    }
                    _ => return Err(format!("--set expects OH_KEY=VALUE, got {v:?}")),
                }
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s if scenario.is_none() => scenario = Some(s.to_string()),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if !matches!(opts.durability.as_str(), "sync" | "relaxed") {
        return Err("--durability is sync or relaxed".into());
    }
    scenario
        .map(|s| (s, opts))
        .ok_or_else(|| "no scenario".to_string())
}

fn run_one(name: &str, opts: &Opts) -> Result<Report, String> {
    let system = actix_web::rt::System::new();
    system.block_on(async {
        match name {
            "health" => basic::health(opts).await,
            "idle" => basic::idle(opts).await,
            "idle-conversations" => basic::idle_conversations(opts).await,
            "events-page" => basic::events_page(opts).await,
            "bash-echo" => basic::bash_echo(opts).await,
            "transfer" => basic::transfer(opts).await,
            "agent-step" => agent::agent_step(opts).await,
            "soak" => agent::soak(opts).await,
            "criterion-table" => criterion_table::table(opts),
            other => Err(format!("unknown scenario {other:?}\n\n{USAGE}")),
        }
    })
}

fn main() {
    // cargo passes `--bench` to every bench binary; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (scenario, opts) = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            if args.is_empty() || args.iter().all(|a| a.starts_with("--")) {
                // Plain `cargo bench` (or `cargo bench -- --quick`): nothing to run.
                print!("{USAGE}");
                return;
            }
            eprintln!("load: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let names: Vec<&str> = if scenario == "all" {
        vec![
            "idle",
            "health",
            "idle-conversations",
            "events-page",
            "agent-step",
            "bash-echo",
            "transfer",
            "soak",
        ]
    } else {
        vec![scenario.as_str()]
    };
    let mut failed = false;
    for name in names {
        let mut o = opts.clone();
        if scenario == "all" && name == "soak" && o.duration.is_none() {
            o.duration = Some(30);
        }
        eprintln!("load: running {name} (load average {})", load_average());
        let report = match run_one(name, &o) {
            Ok(r) => r,
            Err(e) => {
                let mut r = Report::new(name, String::new());
                r.fail(format!("the scenario could not run: {e}"));
                r
            }
        };
        failed |= !report.passed();
        let md = report.markdown();
        println!("{md}");
        if let Some(path) = &opts.markdown {
            use std::io::Write;
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(format!("{md}\n").as_bytes()));
            if let Err(e) = written {
                eprintln!("load: cannot write {}: {e}", path.display());
                failed = true;
            }
        }
        // Let the machine settle between scenarios.
        std::thread::sleep(Duration::from_millis(500));
    }
    if failed {
        std::process::exit(1);
    }
}

/// The 1-minute load average, as text.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
