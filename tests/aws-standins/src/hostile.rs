//! A hostile stand-in on 127.0.0.1: a raw-TCP HTTP/1.1 server (plain HTTP) that answers every
//! request with the `Answer` set at run time — a body that never ends, a huge one, any fixed
//! status, headers and body — or behaves, by forwarding the request to a well-behaved server
//! (the strict endpoint) and relaying its answer. It plays the proxies, load balancers and
//! broken middleboxes a plugin meets in production, for any endpoint kind: CloudWatch, STS,
//! container credentials, `credentials_endpoint`, ECS task metadata.
//!
//! Per connection it counts the bytes it wrote and whether the client hung up, so a test can
//! bound what a client read before it gave up on an answer.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the stand-in answers to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with neither Content-Length nor chunking (the body ends when the connection does),
    /// written forever until the client hangs up.
    EndlessBody,
    /// 200, chunked, chunks forever until the client hangs up.
    EndlessChunked,
    /// 200 with `Content-Length: n`, and n bytes written (unless the client hangs up first).
    HugeBody(u64),
    /// This status, these headers, this body; Content-Length is added unless `headers` has one.
    Fixed { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// Behave: forward the request to this plain-HTTP server (`http://host:port`) and relay its
    /// answer.
    Forward(String),
}

impl Answer {
    /// A fixed answer with a Content-Type.
    pub fn fixed(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
        Answer::Fixed { status, headers: vec![("Content-Type".into(), content_type.into())], body: body.into() }
    }
}

/// What happened on one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Requests read on it.
    pub requests: u64,
    /// Bytes of answers written to it (whole writes the kernel took).
    pub written: u64,
    /// The client closed it (or reset it), rather than the stand-in.
    pub client_hung_up: bool,
    /// Its thread still runs.
    pub open: bool,
}

#[derive(Debug, Default)]
struct ConnState {
    requests: AtomicU64,
    written: AtomicU64,
    client_hung_up: AtomicBool,
    open: AtomicBool,
    /// Inside an answer not yet written whole.
    answering: AtomicBool,
}

#[derive(Debug)]
struct State {
    answer: Mutex<Answer>,
    connections: Mutex<Vec<Arc<ConnState>>>,
    stop: AtomicBool,
}

/// A running hostile stand-in; stopped on drop.
pub struct Hostile {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    state: Arc<State>,
    port: u16,
}

/// The send buffer each connection asks the kernel for: small, so what the stand-in managed to
/// write is close to what the client read (plus its own receive buffer).
pub const SEND_BUFFER: usize = 32 << 10;
/// The size of each write of an endless or huge body.
const PIECE: usize = 16 << 10;
/// A connection idle this long (no request) is closed by the stand-in.
const IDLE: Duration = Duration::from_secs(60);

impl Hostile {
    /// Starts on a free port of 127.0.0.1, answering `answer`.
    pub fn start(answer: Answer) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state =
            Arc::new(State { answer: Mutex::new(answer), connections: Mutex::default(), stop: AtomicBool::new(false) });
        let st = state.clone();
        std::thread::Builder::new()
            .name("hostile-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.stop.load(Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let stats = Arc::new(ConnState { open: AtomicBool::new(true), ..Default::default() });
                    st.connections.lock().unwrap().push(stats.clone());
                    let st = st.clone();
                    std::thread::spawn(move || {
                        serve(conn, &st, &stats);
                        stats.open.store(false, Relaxed);
                    });
                }
            })
            .unwrap();
        Hostile { url: format!("http://127.0.0.1:{port}"), state, port }
    }

    /// What every request from now on gets.
    pub fn set(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    /// Behave from now on: forward every request to `backend` (`http://host:port`).
    pub fn behave(&self, backend: &str) {
        self.set(Answer::Forward(backend.to_string()));
    }

    /// Every connection so far, in the order they were accepted.
    pub fn connections(&self) -> Vec<Connection> {
        self.state
            .connections
            .lock()
            .unwrap()
            .iter()
            .map(|c| Connection {
                requests: c.requests.load(Relaxed),
                written: c.written.load(Relaxed),
                client_hung_up: c.client_hung_up.load(Relaxed),
                open: c.open.load(Relaxed),
            })
            .collect()
    }

    /// Requests read on every connection.
    pub fn requests(&self) -> u64 {
        self.connections().iter().map(|c| c.requests).sum()
    }

    /// Waits (up to `limit`) until no connection is still writing an endless or huge answer;
    /// whether that happened.
    pub fn wait_until_answers_end(&self, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            let busy = self
                .state
                .connections
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.open.load(Relaxed) && c.answering.load(Relaxed));
            if !busy {
                return true;
            }
            if started.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.state.stop.store(true, Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut conn: TcpStream, st: &State, stats: &ConnState) {
    set_send_buffer(&conn, SEND_BUFFER);
    let _ = conn.set_read_timeout(Some(IDLE));
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(16 << 10);
    loop {
        let request = match read_message(&mut conn, &mut buf, false) {
            Ok(request) => request,
            Err(Ended::PeerClosed) => {
                stats.client_hung_up.store(true, Relaxed);
                return;
            }
            Err(Ended::TimedOut) => return,
        };
        stats.requests.fetch_add(1, Relaxed);
        let answer = st.answer.lock().unwrap().clone();
        stats.answering.store(true, Relaxed);
        let mut out = Counting { conn: &mut conn, stats };
        let keep_open = match answer {
            Answer::EndlessBody => out.endless(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nConnection: close\r\n\r\n",
                false,
            ),
            Answer::EndlessChunked => out.endless(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
            ),
            Answer::HugeBody(n) => out.huge(n),
            Answer::Fixed { status, headers, body } => out.fixed(status, &headers, &body),
            Answer::Forward(backend) => out.forward(&backend, &request),
        };
        stats.answering.store(false, Relaxed);
        match keep_open {
            Ok(true) => {}
            Ok(false) => {
                let _ = conn.shutdown(Shutdown::Both);
                return;
            }
            Err(_) => {
                stats.client_hung_up.store(true, Relaxed);
                return;
            }
        }
    }
}

/// A connection that counts the bytes written to it.
struct Counting<'a> {
    conn: &'a mut TcpStream,
    stats: &'a ConnState,
}

impl Counting<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.write_all(bytes)?;
        self.stats.written.fetch_add(bytes.len() as u64, Relaxed);
        Ok(())
    }

    /// Writes until the client hangs up (the only way out is an error).
    fn endless(&mut self, head: &[u8], chunked: bool) -> std::io::Result<bool> {
        self.write(head)?;
        let piece = filler(PIECE);
        let mut chunk = format!("{:x}\r\n", PIECE).into_bytes();
        chunk.extend_from_slice(&piece);
        chunk.extend_from_slice(b"\r\n");
        loop {
            self.write(if chunked { &chunk } else { &piece })?;
        }
    }

    fn huge(&mut self, n: u64) -> std::io::Result<bool> {
        self.write(
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let piece = filler(PIECE);
        let mut left = n;
        while left > 0 {
            let take = left.min(PIECE as u64) as usize;
            self.write(&piece[..take])?;
            left -= take as u64;
        }
        Ok(false)
    }

    fn fixed(&mut self, status: u16, headers: &[(String, String)], body: &[u8]) -> std::io::Result<bool> {
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        let mut close = false;
        let mut has_length = false;
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
            has_length |= name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding");
            close |= name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close");
        }
        if !has_length {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut answer = head.into_bytes();
        answer.extend_from_slice(body);
        self.write(&answer)?;
        Ok(!close)
    }

    /// Sends `request` to `backend` on a fresh connection and relays its answer whole.
    fn forward(&mut self, backend: &str, request: &[u8]) -> std::io::Result<bool> {
        let addr = backend.trim_start_matches("http://").trim_end_matches('/');
        let mut upstream = TcpStream::connect(addr)?;
        upstream.set_read_timeout(Some(IDLE))?;
        upstream.write_all(request)?;
        let mut buf = Vec::new();
        let answer = read_message(&mut upstream, &mut buf, true)
            .map_err(|_| std::io::Error::other(format!("no whole answer from {backend}")))?;
        self.write(&answer)?;
        Ok(!header_is(&answer, "connection", "close"))
    }
}

/// Why no whole message came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// EOF or a reset.
    PeerClosed,
    /// Nothing for `IDLE`.
    TimedOut,
}

/// One whole HTTP/1.1 message (head and body: Content-Length, chunked, or — for an answer
/// without either — until EOF) from `conn`, taken off the front of `buf`.
fn read_message(conn: &mut TcpStream, buf: &mut Vec<u8>, answer: bool) -> Result<Vec<u8>, Ended> {
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        fill(conn, buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    let end = if let Some(length) = length {
        while buf.len() < head_end + length {
            fill(conn, buf)?;
        }
        head_end + length
    } else if chunked {
        loop {
            if let Some(end) = chunked_end(&buf[head_end..]) {
                break head_end + end;
            }
            fill(conn, buf)?;
        }
    } else if answer && !head.starts_with("http/1.1 204") && !head.starts_with("http/1.1 304") {
        while fill(conn, buf).is_ok() {}
        buf.len()
    } else {
        head_end
    };
    Ok(buf.drain(..end).collect())
}

/// Where a chunked body that starts `body` ends, once it is all there.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line = body[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[at..at + line]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at += line + 2;
        if size == 0 {
            // trailers, then an empty line
            let rest = &body[at..];
            return if rest.starts_with(b"\r\n") {
                Some(at + 2)
            } else {
                rest.windows(4).position(|w| w == b"\r\n\r\n").map(|p| at + p + 4)
            };
        }
        if body.len() < at + size + 2 {
            return None;
        }
        at += size + 2;
    }
}

fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), Ended> {
    let mut chunk = [0u8; 16 << 10];
    match conn.read(&mut chunk) {
        Ok(0) => Err(Ended::PeerClosed),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Err(Ended::TimedOut)
        }
        Err(_) => Err(Ended::PeerClosed),
    }
}

fn header_is(message: &[u8], name: &str, value: &str) -> bool {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(message.len());
    String::from_utf8_lossy(&message[..end]).lines().skip(1).any(|l| {
        l.split_once(':')
            .is_some_and(|(n, v)| n.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value))
    })
}

/// JSON-looking filler: an object that never closes.
fn filler(n: usize) -> Vec<u8> {
    let mut piece = b"{\"message\":\"".to_vec();
    piece.resize(n, b'x');
    piece
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn set_send_buffer(conn: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let size = bytes as libc::c_int;
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
