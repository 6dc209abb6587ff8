//! File routes: upload/download round trips (binary-safe, special names,
//! overwrite, limits), memory use of big streamed transfers, home and
//! subdirectory listing, and the trajectory archive (layout, no secrets).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Big-transfer tests measure this process's memory; run them one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BOUNDARY: &str = "----agent-server-test-boundary-5c2f9e";

/// Percent-encodes a query value (everything but unreserved and `/`).
pub use agent_server::routes::files::percent_encode as enc;

/// A multipart form with one file field.
pub fn form(field: &str, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let mut body = form_head(field, filename);
    body.extend_from_slice(data);
    body.extend_from_slice(form_tail().as_bytes());
    (form_type(), body)
}

fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

fn form_head(field: &str, filename: &str) -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes()
}

fn form_tail() -> String {
    format!("\r\n--{BOUNDARY}--\r\n")
}

/// Pseudo-random bytes (xorshift), NULs included.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn upload(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let r = app
        .client
        .post(format!(
            "{}/api/file/upload?path={}",
            app.address,
            enc(path)
        ))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn download(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!(
            "{}/api/file/download?path={}",
            app.address,
            enc(path)
        ))
        .send()
        .await
        .expect("request")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Temporary upload files left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".oh-upload-") || n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// One raw HTTP/1.1 exchange (for requests a URL library would rewrite);
/// returns the status and body. Reads until the declared body is complete.
pub async fn raw_http(port: u16, head: String) -> (u16, String) {
    actix_web::rt::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(head.as_bytes()).expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let status = head[9..12].parse().unwrap_or(0);
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return (status, body);
                }
            }
            assert!(Instant::now() < deadline, "raw response incomplete");
            match s.read(&mut chunk) {
                Ok(0) => panic!("connection closed early: {}", String::from_utf8_lossy(&buf)),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read failed: {e}"),
            }
        }
    })
    .await
    .expect("raw request thread")
}

/// Resident memory of this process (the server runs in it), KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Samples RSS on its own thread until stopped; returns the peak.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    fn start() -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssPeak {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("sampler");
        }
        self.peak.load(Ordering::Relaxed).max(rss_kib())
    }
}

#[actix_web::test]
async fn upload_download_round_trip_is_binary_safe() {
    let app = spawn_app().await;
    let data = noise(300_000, 7);
    assert!(data.contains(&0), "test data has NUL bytes");
    let target = app.path("deep/new dir/blob.bin");
    let target_s = target.to_string_lossy().to_string();
    let (ct, body) = form("file", "blob.bin", &data);
    let (status, resp) = upload(&app, &target_s, &ct, body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"success": true, "file_size": 300_000}));
    assert_eq!(
        std::fs::read(&target).unwrap(),
        data,
        "parents created, bytes intact"
    );

    let r = download(&app, &target_s).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert_eq!(
        header(&r, "content-disposition"),
        "attachment; filename=\"blob.bin\""
    );
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert!(!header(&r, "etag").is_empty());
    assert!(!header(&r, "last-modified").is_empty());
    assert_eq!(header(&r, "content-length"), "300000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());

    let r = app
        .client
        .get(format!(
            "{}/api/file/download?path={}",
            app.address,
            enc(&target_s)
        ))
        .header("range", "bytes=1000-1009")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[1000..1010]);
    assert!(leftovers(target.parent().unwrap()).is_empty());
}

/// Files larger than one read of the download stream (1 MiB): whole, a
/// range across read boundaries and a revalidation (304 without a body).
#[actix_web::test]
async fn large_downloads_ranges_and_revalidation() {
    let app = spawn_app().await;
    let data = noise(3 * 1024 * 1024 + 4321, 11);
    let target = app.path("large.bin");
    std::fs::write(&target, &data).unwrap();
    let url = format!(
        "{}/api/file/download?path={}",
        app.address,
        enc(&target.to_string_lossy())
    );
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = header(&r, "etag").to_string();
    assert!(
        r.bytes().await.unwrap().as_ref() == data.as_slice(),
        "whole file differs"
    );

    let (from, to) = (1024 * 1024 - 5, 2 * 1024 * 1024 + 5);
    let r = app
        .client
        .get(&url)
        .header("range", format!("bytes={from}-{to}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {from}-{to}/{}", data.len())
    );
    assert!(
        r.bytes().await.unwrap().as_ref() == &data[from..=to],
        "range differs"
    );

    let r = app
        .client
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());
}

#[actix_web::test]
async fn upload_and_download_refuse_bad_input() {
    let app = spawn_app().await;
    let (ct, body) = form("file", "up.txt", b"hello upload\n");

    let (status, resp) = upload(&app, "relative/up.txt", &ct, body.clone()).await;
    assert_eq!(
        (status, resp),
        (400, json!({"detail": "Path must be absolute"}))
    );
    assert!(
        !Path::new("relative").exists(),
        "nothing written relative to the CWD"
    );

    let r = app
        .client
        .post(format!("{}/api/file/upload", app.address))
        .header("content-type", ct.clone())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["detail"][0]["loc"], json!(["query", "path"]));

    let target = app.path("x.txt").to_string_lossy().to_string();
    let (wrong_ct, wrong_body) = form("other", "up.txt", b"data");
    let (status, resp) = upload(&app, &target, &wrong_ct, wrong_body).await;
    assert_eq!(status, 422, "{resp}");
    assert_eq!(resp["detail"][0]["loc"], json!(["body", "file"]));
    assert_eq!(resp["detail"][0]["type"], "missing");
    let (status, resp) = upload(&app, &target, "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 422, "{resp}");
    assert_eq!(resp["detail"][0]["loc"], json!(["body", "file"]));
    // A form cut off before its closing boundary is refused, and nothing is kept.
    let truncated = body[..body.len() - 20].to_vec();
    let (status, resp) = upload(&app, &target, &ct, truncated).await;
    assert_eq!(status, 400, "{resp}");
    assert!(!Path::new(&target).exists());
    assert!(leftovers(app.dir.path()).is_empty());

    // Uploading onto a directory, or below a file, is a client mistake.
    let dir = app.path("a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let (status, resp) = upload(&app, &dir.to_string_lossy(), &ct, body.clone()).await;
    assert_eq!(status, 400, "{resp}");
    std::fs::write(app.path("plain"), b"x").unwrap();
    let below = app.path("plain/child.txt").to_string_lossy().to_string();
    let (status, resp) = upload(&app, &below, &ct, body.clone()).await;
    assert_eq!(status, 400, "{resp}");

    let r = download(&app, "relative/up.txt").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Path must be absolute"})
    );
    let r = download(&app, &app.path("missing.txt").to_string_lossy()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "File not found"})
    );
    let r = download(&app, &dir.to_string_lossy()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Path is not a file"})
    );
    let r = download(&app, &app.path("plain/child.txt").to_string_lossy()).await;
    assert_eq!(r.status(), 404);
}

#[actix_web::test]
async fn special_names_and_overwrite() {
    let app = spawn_app().await;
    let name = "spaced n\u{e4}me 'q' #1 %41.txt";
    let target = app.path(name);
    let target_s = target.to_string_lossy().to_string();
    let (ct, body) = form("file", "x.txt", b"first version, longer");
    assert_eq!(upload(&app, &target_s, &ct, body).await.0, 200);
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o750)).unwrap();

    let (ct, body) = form("file", "x.txt", b"second");
    let (status, resp) = upload(&app, &target_s, &ct, body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["file_size"], 6);
    assert_eq!(std::fs::read(&target).unwrap(), b"second");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o750, "an overwrite keeps the file's mode");

    let r = download(&app, &target_s).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-disposition"),
        "attachment; filename*=utf-8''spaced%20n%C3%A4me%20%27q%27%20%231%20%2541.txt"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"second");
    assert!(leftovers(app.dir.path()).is_empty());

    // An empty file is a file.
    let empty = app.path("empty").to_string_lossy().to_string();
    let (ct, body) = form("file", "empty", b"");
    assert_eq!(
        upload(&app, &empty, &ct, body).await.1,
        json!({"success": true, "file_size": 0})
    );
    let r = download(&app, &empty).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
}

#[actix_web::test]
async fn upload_limit_is_enforced_without_leftovers() {
    let limit = 1u64 << 20;
    let app = spawn_app_with(|s| s.http.max_upload_bytes = limit).await;
    let target = app.path("big/over.bin");
    let target_s = target.to_string_lossy().to_string();

    let (ct, body) = form("file", "ok.bin", &noise(limit as usize, 3));
    let (status, resp) = upload(&app, &target_s, &ct, body).await;
    assert_eq!(status, 200, "exactly the limit is accepted: {resp}");

    let (ct, body) = form("file", "over.bin", &noise(limit as usize + 300_000, 4));
    let (status, resp) = upload(&app, &target_s, &ct, body).await;
    assert_eq!(status, 413, "{resp}");
    assert!(
        resp["detail"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string())
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().len(),
        limit,
        "the previous file is untouched"
    );
    assert!(leftovers(target.parent().unwrap()).is_empty());

    // A declared length far over the limit is refused before any body is read.
    let head = format!(
        "POST /api/file/upload?path={} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {}\r\n\
         Content-Length: 53687091200\r\nConnection: close\r\n\r\n",
        enc(&app.path("huge.bin").to_string_lossy()),
        form_type()
    );
    let (status, body) = raw_http(app.port, head).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("upload limit"), "{body}");
    assert!(!app.path("huge.bin").exists());
    assert!(leftovers(app.dir.path()).is_empty());
}

#[actix_web::test]
async fn large_upload_streams_with_flat_memory() {
    let _heavy = HEAVY.lock().await;
    let app = spawn_app().await;
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 800; // 200 MiB
    let target = app.path("large/upload.bin");
    let head = Bytes::from(form_head("file", "upload.bin"));
    let tail = Bytes::from(form_tail());
    let pattern = |i: usize| Bytes::from(vec![(i % 251) as u8; CHUNK]);
    let body = futures_util::stream::iter(std::iter::once(head))
        .chain(futures_util::stream::iter((0..CHUNKS).map(pattern)))
        .chain(futures_util::stream::iter(std::iter::once(tail)))
        .map(Ok::<_, std::io::Error>);

    let before = rss_kib();
    let sampler = RssPeak::start();
    let started = Instant::now();
    let r = app
        .client
        .post(format!(
            "{}/api/file/upload?path={}",
            app.address,
            enc(&target.to_string_lossy())
        ))
        .header("content-type", form_type())
        .timeout(Duration::from_secs(300))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("upload");
    let status = r.status();
    let resp: Value = r.json().await.unwrap_or(Value::Null);
    let peak = sampler.finish();
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["file_size"], (CHUNK * CHUNKS) as u64);
    let growth_mib = peak.saturating_sub(before) / 1024;
    log::info!(
        "200 MiB upload took {:?}, RSS growth {growth_mib} MiB",
        started.elapsed()
    );
    assert!(
        growth_mib < 50,
        "server memory grew by {growth_mib} MiB during a 200 MiB upload"
    );

    // The file holds exactly what was sent.
    let check = target.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(check).unwrap();
        assert_eq!(f.metadata().unwrap().len(), (CHUNK * CHUNKS) as u64);
        let mut buf = vec![0u8; CHUNK];
        for i in 0..CHUNKS {
            f.read_exact(&mut buf).unwrap();
            assert!(buf.iter().all(|b| *b == (i % 251) as u8), "chunk {i}");
        }
    })
    .await
    .unwrap();
    assert!(leftovers(target.parent().unwrap()).is_empty());
}

#[actix_web::test]
async fn large_download_streams_with_flat_memory() {
    let _heavy = HEAVY.lock().await;
    let app = spawn_app().await;
    let size: u64 = 256 << 20;
    let path = app.path("sparse.bin");
    {
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
    }
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_at(b"HEAD", 0).unwrap();
        f.write_at(b"TAIL", size - 4).unwrap();
    }
    let before = rss_kib();
    let sampler = RssPeak::start();
    let r = app
        .client
        .get(format!(
            "{}/api/file/download?path={}",
            app.address,
            enc(&path.to_string_lossy())
        ))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), size.to_string());
    let mut stream = r.bytes_stream();
    let mut total = 0u64;
    let mut first = Vec::new();
    let mut last = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if first.len() < 4 {
            first.extend_from_slice(&chunk[..chunk.len().min(4)]);
        }
        last = chunk[chunk.len().saturating_sub(4)..].to_vec();
        total += chunk.len() as u64;
    }
    let peak = sampler.finish();
    assert_eq!(total, size);
    assert_eq!(&first[..4], b"HEAD");
    assert_eq!(last, b"TAIL");
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 50,
        "memory grew by {growth_mib} MiB during a 256 MiB download"
    );
}

#[actix_web::test]
async fn home_and_subdirectory_listing() {
    let app = spawn_app().await;
    let (status, home) = app.get("/api/file/home").await;
    assert_eq!(status, 200, "{home}");
    let expected_home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    assert_eq!(home["home"], expected_home.as_str());
    assert_eq!(home["locations"], json!([{"label": "/", "path": "/"}]));
    let favorites = home["favorites"].as_array().unwrap();
    assert!(favorites.len() <= 50);
    for f in favorites {
        let label = f["label"].as_str().unwrap();
        assert!(!label.starts_with('.'));
        assert_eq!(
            f["path"].as_str().unwrap(),
            Path::new(&expected_home).join(label).to_string_lossy()
        );
    }

    let root = app.path("picker");
    for d in ["Beta", "alpha", "gamma", ".hidden", "Delta"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("file.txt"), b"x").unwrap();
    std::os::unix::fs::symlink(root.join("alpha"), root.join("link")).unwrap();
    let root_s = root.to_string_lossy().to_string();
    let list = |extra: &str| format!("/api/file/search_subdirs?path={}{extra}", enc(&root_s));

    let (status, page) = app.get(&list("&limit=2")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page,
        json!({"items": [
            {"name": "alpha", "path": format!("{root_s}/alpha")},
            {"name": "Beta", "path": format!("{root_s}/Beta")}],
         "next_page_id": "delta"})
    );
    let (_, page) = app.get(&list("&limit=2&page_id=delta")).await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Delta", "gamma"]);
    assert_eq!(page["next_page_id"], Value::Null);
    let (_, all) = app.get(&list("")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    // A trailing slash and `.` segments read like Python's pathlib paths.
    let (_, same) = app
        .get(&format!(
            "/api/file/search_subdirs?path={}/./&limit=1",
            enc(&root_s)
        ))
        .await;
    assert_eq!(same["items"][0]["path"], format!("{root_s}/alpha"));

    let (status, body) = app.get("/api/file/search_subdirs?path=rel/dir").await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "Path must be absolute"}))
    );
    let (status, body) = app
        .get(&format!(
            "/api/file/search_subdirs?path={}",
            enc(&format!("{root_s}/nope"))
        ))
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Directory not found"}))
    );
    let (status, body) = app
        .get(&format!(
            "/api/file/search_subdirs?path={}",
            enc(&format!("{root_s}/file.txt"))
        ))
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "Path is not a directory"}))
    );
    assert_eq!(app.get(&list("&limit=0")).await.0, 422);
    assert_eq!(app.get(&list("&limit=101")).await.0, 422);
    assert_eq!(app.get("/api/file/search_subdirs").await.0, 422);
}

/// Entries of a zip archive (name → bytes), checking every CRC.
fn unzip(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |i: usize| u16::from_le_bytes([data[i], data[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap()) as usize;
    let eocd = data
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .expect("end of central directory");
    let count = u16_at(eocd + 10);
    let mut p = u32_at(eocd + 16);
    let mut out = vec![];
    for _ in 0..count {
        assert_eq!(u32_at(p), 0x0201_4b50, "central header");
        assert_eq!(u16_at(p + 10), 0, "stored");
        let crc = u32_at(p + 16) as u32;
        let size = u32_at(p + 24);
        let n = u16_at(p + 28);
        let extra = u16_at(p + 30);
        let comment = u16_at(p + 32);
        let local = u32_at(p + 42);
        let name = String::from_utf8(data[p + 46..p + 46 + n].to_vec()).unwrap();
        assert_eq!(u32_at(local), 0x0403_4b50, "local header");
        let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let bytes = data[start..start + size].to_vec();
        assert_eq!(agent_server::files::zip::crc32(&bytes), crc, "{name}");
        out.push((name, bytes));
        p += 46 + n + extra + comment;
    }
    out
}

#[actix_web::test]
async fn trajectory_archive_has_events_and_no_secrets() {
    let app = spawn_app_with(|s| s.secret_key = Some("test-sealing-key".into())).await;
    let id = app.create_conversation().await;
    let hex = id.replace('-', "");
    let (status, body) = app
        .post(
            &format!("/api/conversations/{id}/secrets"),
            json!({"secrets": {"MY_TOKEN": "tok-very-secret-1"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.send_message(&id, "my key is sk-test-secret and tok-very-secret-1", false)
        .await;
    app.send_message(&id, "second message", false).await;
    let events = app.all_events(&id).await;
    assert!(events.len() >= 2);

    let r = app
        .client
        .get(format!("{}/api/file/download-trajectory/{id}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert_eq!(
        header(&r, "content-disposition"),
        format!("attachment; filename=\"{hex}.zip\"")
    );
    let zip = r.bytes().await.unwrap();
    for secret in ["sk-test-secret", "tok-very-secret-1"] {
        assert!(
            !zip.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} leaked into the archive"
        );
    }
    let entries = unzip(&zip);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], format!("{hex}/"));
    assert!(names.contains(&format!("{hex}/meta.json").as_str()));
    assert!(names.contains(&format!("{hex}/base_state.json").as_str()));
    assert!(names.contains(&format!("{hex}/events/").as_str()));
    let event_files: Vec<&(String, Vec<u8>)> = entries
        .iter()
        .filter(|(n, _)| n.starts_with(&format!("{hex}/events/event-")))
        .collect();
    assert_eq!(event_files.len(), events.len());
    for (i, ((name, bytes), ev)) in event_files.iter().zip(&events).enumerate() {
        let id = ev["id"].as_str().unwrap();
        assert_eq!(name, &format!("{hex}/events/event-{i:05}-{id}.json"));
        let parsed: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(parsed["id"], ev["id"]);
        assert_eq!(parsed["kind"], ev["kind"]);
    }
    let meta: Value = serde_json::from_slice(
        &entries
            .iter()
            .find(|(n, _)| n.ends_with("/meta.json"))
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(meta["id"], id.as_str());
    assert_eq!(meta["agent"]["llm"]["api_key"], Value::Null);
    let text = String::from_utf8_lossy(&zip);
    assert!(text.contains("my key is ********** and **********"));

    // Nothing is left in the conversations directory.
    let conv_dir = app.path("conversations");
    let stray: Vec<String> = std::fs::read_dir(&conv_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zip") || n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    let (status, body) = app
        .get("/api/file/download-trajectory/11111111-2222-3333-4444-555555555555")
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Conversation not found"}))
    );
    assert_eq!(
        app.get("/api/file/download-trajectory/not-a-uuid").await.0,
        422
    );
}
