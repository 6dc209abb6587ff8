//! The server under test: the real `agent-server` binary started as a
//! child process in a temporary directory on a free loopback port, with a
//! clean `OH_*` environment plus the scenario's settings, and read-outs of
//! its memory and CPU time from `/proc`. Dropping a [`Server`] kills the
//! process (SIGTERM, then SIGKILL) and removes its directory. This module
//! starts nothing else and never touches a process it did not start.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the server may take to print its port.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// Process id.
    pub pid: u32,
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// The temporary directory the server runs in.
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

/// What to start.
pub struct ServerSpec<'a> {
    /// The binary.
    pub binary: &'a Path,
    /// `RUST_LOG` of the server.
    pub log_level: &'a str,
    /// Extra `OH_*` settings.
    pub env: Vec<(String, String)>,
}

impl Server {
    /// Starts the binary and waits until `/health` answers.
    pub fn start(spec: &ServerSpec<'_>) -> Result<Server, String> {
        if !spec.binary.exists() {
            return Err(format!(
                "{} does not exist; build it with `cargo build --release`",
                spec.binary.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("agent-server-load-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let log = dir.path().join("server.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("cannot create the log: {e}"))?;
        let mut cmd = Command::new(spec.binary);
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .env("RUST_LOG", spec.log_level)
            .env_remove("SESSION_API_KEY");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OH_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("OH_SECRET_KEY", "load-test-secret-key");
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe and touches only the child.
        // It makes the server die with this tool even when the tool is
        // killed before its Drop runs.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.binary.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the port line, then keeps draining stdout so the server
        // never blocks on a full pipe.
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if !sent
                    && let Some(rest) = line
                        .trim()
                        .strip_prefix("Starting OpenHands Agent Server on ")
                {
                    let port = rest.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    let _ = tx.send(port);
                    sent = true;
                }
                line.clear();
            }
        });
        let mut server = Server {
            child: Some(child),
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            log,
        };
        let port = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(p)) => p,
            _ => {
                return Err(format!(
                    "the server did not report its port; log:\n{}",
                    server.log_tail()
                ));
            }
        };
        server.addr = SocketAddr::from(([127, 0, 0, 1], port));
        server.wait_healthy()?;
        Ok(server)
    }

    fn wait_healthy(&self) -> Result<(), String> {
        use std::io::{Read, Write};
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ =
                    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                if buf.starts_with(b"HTTP/1.1 200") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "the server never became healthy; log:\n{}",
            self.log_tail()
        ))
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Current resident memory, KiB.
    pub fn rss_kb(&self) -> u64 {
        status_kb(self.pid, "VmRSS:")
    }

    /// Peak resident memory since start, KiB.
    pub fn peak_rss_kb(&self) -> u64 {
        status_kb(self.pid, "VmHWM:")
    }

    /// User plus system CPU time used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid)
    }

    /// Samples the resident memory every `every` until the sampler is stopped.
    pub fn sample_rss(&self, every: Duration) -> RssSampler {
        RssSampler::start(self.pid, every)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the id of a child this process started and has
        // not reaped yet, so the id cannot have been reused.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A `kB` field of `/proc/<pid>/status` (0 when unreadable).
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of `/proc/<pid>/stat`, in seconds (0 when unreadable).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may contain spaces; fields after it are fixed.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// Background sampling of a process's resident memory.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The most samples kept (a day at one per second would still fit).
const MAX_SAMPLES: usize = 100_000;

impl RssSampler {
    fn start(pid: u32, every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let samples = samples.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let kb = status_kb(pid, "VmRSS:");
                    if let Ok(mut s) = samples.lock()
                        && s.len() < MAX_SAMPLES
                    {
                        s.push((start.elapsed().as_secs_f64(), kb));
                    }
                    std::thread::sleep(every);
                }
            })
        };
        RssSampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns `(seconds since start, KiB)` pairs.
    pub fn finish(mut self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
