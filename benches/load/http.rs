//! A minimal HTTP/1.1 keep-alive client over one tokio `TcpStream`: fixed
//! request bytes out, status line, headers and a `Content-Length` or
//! chunked body back. Small enough that a load client built on it costs
//! the machine far less than the server it measures. It speaks only to
//! the loopback server this tool started; it does no TLS, redirects,
//! pipelining or compression, and never buffers a body it is told to
//! stream.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The most bytes a response head (status line and headers) may have.
const MAX_HEAD: usize = 64 * 1024;
/// A connection idle this long is replaced before use: servers close idle
/// keep-alive connections (actix after 5 s), and a request written into a
/// closing connection is lost.
const MAX_IDLE: Duration = Duration::from_secs(3);

/// Status line and the headers this client acts on.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Length`, when given.
    pub length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The server will close the connection after this response.
    pub close: bool,
}

/// A whole response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    line: Vec<u8>,
    /// Set once the server announced it closes the connection.
    closed: bool,
    last_used: Instant,
}

impl Conn {
    /// Connects (with `TCP_NODELAY`, as any latency-minded client does).
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        Ok(Conn {
            addr,
            rd: BufReader::with_capacity(64 * 1024, rd),
            wr,
            line: Vec::with_capacity(256),
            closed: false,
            last_used: Instant::now(),
        })
    }

    /// Reconnects when the server closed the connection after the last
    /// response, or may be about to close it for idleness.
    async fn ensure_open(&mut self) -> io::Result<()> {
        if self.closed || self.last_used.elapsed() > MAX_IDLE {
            *self = Conn::connect(self.addr).await?;
        }
        self.last_used = Instant::now();
        Ok(())
    }

    /// Writes raw bytes (a prepared request, or a piece of a streamed body).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.last_used = Instant::now();
        self.wr.write_all(bytes).await
    }

    /// Sends a request with an optional body and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> io::Result<Response> {
        self.ensure_open().await?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some((content_type, bytes)) = body {
            req.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        if let Some((_, bytes)) = body {
            out.extend_from_slice(bytes);
        }
        self.wr.write_all(&out).await?;
        let head = self.read_head().await?;
        let mut body = Vec::new();
        self.read_body(&head, |chunk| body.extend_from_slice(chunk))
            .await?;
        Ok(Response {
            status: head.status,
            body,
        })
    }

    /// GET returning the whole response.
    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, None).await
    }

    /// POST of a JSON body returning the whole response.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> io::Result<Response> {
        let bytes = body.to_string();
        self.request("POST", path, Some(("application/json", bytes.as_bytes())))
            .await
    }

    /// Sends a prepared request (head and body bytes) and reads the whole response.
    pub async fn send_prepared(&mut self, request: &[u8]) -> io::Result<Head> {
        self.ensure_open().await?;
        self.wr.write_all(request).await?;
        let head = self.read_head().await?;
        self.read_body(&head, |_| {}).await?;
        Ok(head)
    }

    /// Reads a status line and headers.
    pub async fn read_head(&mut self) -> io::Result<Head> {
        let mut head = Head {
            status: 0,
            length: None,
            chunked: false,
            close: false,
        };
        let mut size = 0;
        let mut first = true;
        loop {
            self.line.clear();
            let n = self.rd.read_until(b'\n', &mut self.line).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                ));
            }
            size += n;
            if size > MAX_HEAD {
                return Err(bad("response head too large"));
            }
            let line = std::str::from_utf8(&self.line)
                .map_err(|_| bad("response head is not UTF-8"))?
                .trim_end();
            if first {
                first = false;
                head.status = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("bad status line"))?;
                continue;
            }
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                head.length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                head.close = value.eq_ignore_ascii_case("close");
            }
        }
        self.closed = head.close;
        self.last_used = Instant::now();
        Ok(head)
    }

    /// Reads the body of `head`, handing each piece to `sink`; returns its length.
    pub async fn read_body(&mut self, head: &Head, mut sink: impl FnMut(&[u8])) -> io::Result<u64> {
        if head.chunked {
            let mut total = 0;
            loop {
                self.line.clear();
                self.rd.read_until(b'\n', &mut self.line).await?;
                let text = std::str::from_utf8(&self.line).map_err(|_| bad("bad chunk size"))?;
                let size_text = text.trim().split(';').next().unwrap_or("");
                let size = u64::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers end with an empty line.
                    loop {
                        self.line.clear();
                        let n = self.rd.read_until(b'\n', &mut self.line).await?;
                        if n == 0 || self.line.trim_ascii().is_empty() {
                            break;
                        }
                    }
                    return Ok(total);
                }
                self.copy_exact(size, &mut sink).await?;
                total += size;
                let mut crlf = [0u8; 2];
                self.rd.read_exact(&mut crlf).await?;
            }
        }
        match head.length {
            Some(n) => {
                self.copy_exact(n, &mut sink).await?;
                Ok(n)
            }
            None if head.status == 204 || head.status == 304 || head.status < 200 => Ok(0),
            None => {
                // No length: the body runs to the end of the connection.
                self.closed = true;
                let mut total = 0;
                loop {
                    let buf = self.rd.fill_buf().await?;
                    if buf.is_empty() {
                        return Ok(total);
                    }
                    let n = buf.len();
                    sink(buf);
                    self.rd.consume(n);
                    total += n as u64;
                }
            }
        }
    }

    async fn copy_exact(&mut self, mut left: u64, sink: &mut impl FnMut(&[u8])) -> io::Result<()> {
        while left > 0 {
            let buf = self.rd.fill_buf().await?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a body",
                ));
            }
            let n = buf.len().min(left as usize);
            sink(&buf[..n]);
            self.rd.consume(n);
            left -= n as u64;
        }
        Ok(())
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The bytes of a body-less request, prepared once and sent many times.
pub fn prepared_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}
