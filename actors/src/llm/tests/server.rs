//! A scripted HTTP/1.1 server for the LLM client tests: binds 127.0.0.1:0, answers each
//! connection with the next scripted reply (JSON, chunked SSE, silence), records what it
//! received, and counts clients that hang up while it stays silent. One std thread per
//! server, no dependencies; it stops when dropped or after a fixed lifetime, so a failed
//! test never leaves it running for long.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a test server lives.
const LIFETIME: Duration = Duration::from_secs(30);

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete JSON (or any text) response.
    Json(u16, String),
    /// A chunked `text/event-stream`: each string is written as its own chunk.
    Sse(Vec<String>),
    /// Headers of an event stream and one chunk, then silence for the duration.
    SseStall(String, Duration),
    /// No response at all for the duration (counts a disconnect if the client leaves).
    Silence(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Request path with query.
    pub path: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Recorded {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running scripted server.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    disconnects: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Starts a server that answers requests with `script`, in order; requests beyond the
    /// script get a 500.
    pub fn start(script: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let disconnects = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, d, s) = (requests.clone(), disconnects.clone(), stop.clone());
        thread::spawn(move || serve(listener, script, r, d, s));
        Server {
            base,
            requests,
            disconnects,
            stop,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// Clients that closed the connection while the server was silent.
    pub fn disconnects(&self) -> usize {
        self.disconnects.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    listener: TcpListener,
    script: Vec<Reply>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    disconnects: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let deadline = Instant::now() + LIFETIME;
    let mut script = script.into_iter();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let mut conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => return,
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let Some(rec) = read_request(&mut conn) else {
            continue;
        };
        requests.lock().expect("lock").push(rec);
        let reply = script
            .next()
            .unwrap_or_else(|| Reply::Json(500, r#"{"error":"script exhausted"}"#.into()));
        match reply {
            Reply::Json(status, body) => {
                let head = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(body.as_bytes());
            }
            Reply::Sse(events) => {
                let _ = conn.write_all(SSE_HEAD.as_bytes());
                for e in events {
                    let _ = write_chunk(&mut conn, &e);
                    thread::sleep(Duration::from_millis(2));
                }
                let _ = conn.write_all(b"0\r\n\r\n");
            }
            Reply::SseStall(first, wait) => {
                let _ = conn.write_all(SSE_HEAD.as_bytes());
                let _ = write_chunk(&mut conn, &first);
                wait_for_hangup(&mut conn, wait, &stop, &disconnects);
            }
            Reply::Silence(wait) => wait_for_hangup(&mut conn, wait, &stop, &disconnects),
        }
        let _ = conn.flush();
        let _ = conn.shutdown(std::net::Shutdown::Both);
    }
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

fn write_chunk(conn: &mut TcpStream, data: &str) -> std::io::Result<()> {
    conn.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    conn.write_all(data.as_bytes())?;
    conn.write_all(b"\r\n")?;
    conn.flush()
}

fn wait_for_hangup(
    conn: &mut TcpStream,
    wait: Duration,
    stop: &AtomicBool,
    disconnects: &AtomicUsize,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(10)));
    let until = Instant::now() + wait;
    let mut buf = [0u8; 256];
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => {
                disconnects.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                disconnects.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn read_request(conn: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}
