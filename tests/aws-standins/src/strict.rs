//! A strict CloudWatch Logs endpoint on 127.0.0.1 (plain HTTP or TLS with a throw-away CA).
//!
//! It enforces every documented PutLogEvents rule that moto skips — 1..=10,000 events, batch
//! bytes Σ(UTF-8 length + 26) ≤ 1,048,576, each message 1..=1,048,550 bytes, chronological
//! order, a span under 24 hours among the valid events — answers with real error shapes
//! (`__type`, `x-amzn-ErrorType`, `x-amzn-RequestId`), keeps groups and streams, records every
//! accepted event, rejects events older than 14 days or more than 2 hours ahead one by one in
//! `rejectedLogEventsInfo`, and injects faults on demand: CloudWatch's own, and the odd answers
//! of what may stand in front of it (`OddAnswer`: redirects, HTML pages, non-JSON 200s). A
//! request it refuses for breaking a rule is counted in `rule_violations`: a correct client
//! causes none.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const MAX_EVENTS: usize = 10_000;
pub const MAX_MESSAGE_BYTES: usize = 1_048_576 - 26;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Probabilities (0.0..=1.0) that a PutLogEvents call meets each fault.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// 400 ThrottlingException
    pub throttle: f64,
    /// 500 InternalFailure
    pub http500: f64,
    /// 503 ServiceUnavailableException
    pub http503: f64,
    /// the connection is reset (RST) halfway through reading the request body
    pub reset: f64,
    /// the answer is held back for `slow_for`; if the client gave up meanwhile, the request is
    /// discarded unprocessed
    pub slow: f64,
    pub slow_for: Duration,
    /// the target stream is deleted just before the call is processed
    pub delete_stream: f64,
    /// the target group (and its streams) is deleted just before the call is processed
    pub delete_group: f64,
    /// 400 ExpiredTokenException
    pub expired_token: f64,
    /// 400 InvalidParameterException in CloudWatch's own shape: a genuine refusal of the batch
    pub invalid_parameter: f64,
    /// the first 1-3 events are answered as too old (and not stored)
    pub reject_old: f64,
    /// the last 1-3 events are answered as too new (and not stored)
    pub reject_new: f64,
    /// after this many accepted PutLogEvents calls, every further one is throttled
    pub throttle_after_puts: Option<u64>,
    /// a PutLogEvents call meets this odd answer with this probability (see also
    /// `StrictEndpoint::odd_answers_for_next`)
    pub odd: Option<(OddAnswer, f64)>,
}

/// What a proxy, load balancer or captive portal answers instead of CloudWatch Logs. The call is
/// not processed: nothing is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OddAnswer {
    /// 302 to a login page, no body
    Redirect302,
    /// 404 with an HTML page
    Html404,
    /// 413 Request Entity Too Large with an HTML body
    Html413,
    /// 200 with CloudWatch's content type and a body that is not JSON
    NotJson200,
    /// 200 with a `text/html` page
    Html200,
    /// 200 with `text/html` and no body (which the SDK alone would take for success)
    Empty200,
    /// 400 with a JSON body that is not CloudWatch's error shape
    ForeignJson400,
    /// 502 Bad Gateway from a load balancer, HTML
    Html502,
    /// 504 Gateway Time-out from a load balancer, HTML
    Html504,
}

impl OddAnswer {
    pub const ALL: [OddAnswer; 9] = [
        OddAnswer::Redirect302,
        OddAnswer::Html404,
        OddAnswer::Html413,
        OddAnswer::NotJson200,
        OddAnswer::Html200,
        OddAnswer::Empty200,
        OddAnswer::ForeignJson400,
        OddAnswer::Html502,
        OddAnswer::Html504,
    ];

    /// The whole HTTP answer.
    fn bytes(self) -> Vec<u8> {
        let page = |title: &str| {
            format!("<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
        };
        let (status, content_type, extra, body) = match self {
            OddAnswer::Redirect302 => {
                ("302 Found", None, "Location: https://portal.example/login?next=%2F\r\n", String::new())
            }
            OddAnswer::Html404 => ("404 Not Found", Some("text/html"), "", page("404 Not Found")),
            OddAnswer::Html413 => {
                ("413 Request Entity Too Large", Some("text/html"), "", page("413 Request Entity Too Large"))
            }
            OddAnswer::NotJson200 => ("200 OK", Some("application/x-amz-json-1.1"), "", "OK".to_string()),
            OddAnswer::Html200 => {
                ("200 OK", Some("text/html; charset=utf-8"), "", page("Welcome to the guest network"))
            }
            OddAnswer::Empty200 => ("200 OK", Some("text/html"), "", String::new()),
            OddAnswer::ForeignJson400 => (
                "400 Bad Request",
                Some("application/json"),
                "",
                r#"{"error":"Bad Request","message":"request rejected by policy","status":400}"#.to_string(),
            ),
            OddAnswer::Html502 => ("502 Bad Gateway", Some("text/html"), "", page("502 Bad Gateway")),
            OddAnswer::Html504 => ("504 Gateway Time-out", Some("text/html"), "", page("504 Gateway Time-out")),
        };
        let mut head = format!("HTTP/1.1 {status}\r\nServer: nginx\r\n{extra}Content-Length: {}\r\n", body.len());
        if let Some(t) = content_type {
            head.push_str(&format!("Content-Type: {t}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }
}

impl Faults {
    /// Every kind at once, each at `p`.
    pub fn mixed(p: f64, slow_for: Duration) -> Faults {
        Faults {
            throttle: p,
            http500: p,
            http503: p,
            reset: p,
            slow: p / 2.0,
            slow_for,
            delete_stream: p / 4.0,
            delete_group: p / 8.0,
            expired_token: p,
            reject_old: p,
            reject_new: p,
            ..Faults::default()
        }
    }
}

/// One accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub group: String,
    pub stream: String,
    pub timestamp: i64,
    pub len: usize,
    /// `"seq":N` when the message starts `{"seq":N` (the test corpora do)
    pub seq: Option<u64>,
    /// the first 400 characters
    pub head: String,
    /// when the endpoint accepted it
    pub at: SystemTime,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub put_calls_ok: AtomicU64,
    pub rule_violations: AtomicU64,
    pub not_found: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_rejected_old: AtomicU64,
    pub events_rejected_new: AtomicU64,
    pub injected_throttle: AtomicU64,
    pub injected_500: AtomicU64,
    pub injected_503: AtomicU64,
    pub injected_reset: AtomicU64,
    pub injected_slow: AtomicU64,
    pub slow_discarded: AtomicU64,
    pub injected_delete_stream: AtomicU64,
    pub injected_delete_group: AtomicU64,
    pub injected_expired_token: AtomicU64,
    pub injected_invalid_parameter: AtomicU64,
    pub injected_reject_old: AtomicU64,
    pub injected_reject_new: AtomicU64,
    /// odd answers given instead of CloudWatch's
    pub injected_odd: AtomicU64,
    pub groups_created: AtomicU64,
    pub streams_created: AtomicU64,
    /// PutLogEvents calls being read or answered now, and the most seen at once.
    pub puts_in_flight: AtomicU64,
    pub max_puts_in_flight: AtomicU64,
}

/// Counts one PutLogEvents call in flight while it lives.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn start(c: &'a Counters) -> InFlight<'a> {
        let now = c.puts_in_flight.fetch_add(1, Relaxed) + 1;
        c.max_puts_in_flight.fetch_max(now, Relaxed);
        InFlight(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.puts_in_flight.fetch_sub(1, Relaxed);
    }
}

/// A request other than PutLogEvents (CreateLogGroup, PutRetentionPolicy…), as received.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: String,
    pub body: serde_json::Value,
    pub user_agent: String,
}

#[derive(Default)]
struct State {
    calls: Mutex<Vec<Call>>,
    /// `x-amzn-logs-format` and `user-agent` of the last accepted PutLogEvents.
    last_put_headers: Mutex<(Option<String>, String)>,
    /// group → its streams
    groups: Mutex<HashMap<String, std::collections::HashSet<String>>>,
    accepted: Mutex<Vec<Accepted>>,
    violations: Mutex<Vec<String>>,
    faults: Mutex<Faults>,
    /// this odd answer for the next N PutLogEvents calls
    odd_for_next: Mutex<Option<(OddAnswer, u64)>>,
    rng: Mutex<u64>,
    counters: Counters,
    stop: AtomicBool,
    sts: crate::strict_sts::Sts,
}

/// A running endpoint; stopped on drop.
pub struct StrictEndpoint {
    pub url: String,
    /// PEM of the CA that signed the TLS certificate (TLS mode only).
    pub ca_pem: Option<String>,
    state: Arc<State>,
    port: u16,
}

impl StrictEndpoint {
    /// Starts on 127.0.0.1 on a free port.
    pub fn start(tls: bool, faults: Faults, seed: u64) -> StrictEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State { rng: Mutex::new(seed | 1), faults: Mutex::new(faults), ..Default::default() });
        let (tls_config, ca_pem) = if tls {
            let (config, ca) = tls_server_config();
            (Some(config), Some(ca))
        } else {
            (None, None)
        };
        let st = state.clone();
        std::thread::Builder::new()
            .name("strict-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.stop.load(Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let st = st.clone();
                    let tls_config = tls_config.clone();
                    std::thread::spawn(move || serve(conn, tls_config, &st));
                }
            })
            .unwrap();
        let scheme = if tls { "https" } else { "http" };
        let host = if tls { "localhost" } else { "127.0.0.1" };
        StrictEndpoint { url: format!("{scheme}://{host}:{port}"), ca_pem, state, port }
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().unwrap() = faults;
    }

    /// The next `calls` PutLogEvents calls get `odd` (then the endpoint behaves again).
    pub fn odd_answers_for_next(&self, odd: OddAnswer, calls: u64) {
        *self.state.odd_for_next.lock().unwrap() = Some((odd, calls));
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    /// The STS / container-credentials / IMDS stand-in served on the same port.
    pub fn sts(&self) -> &crate::strict_sts::Sts {
        &self.state.sts
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// Every call other than PutLogEvents, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// `(x-amzn-logs-format, user-agent)` of the last PutLogEvents that got through.
    pub fn last_put_headers(&self) -> (Option<String>, String) {
        self.state.last_put_headers.lock().unwrap().clone()
    }

    /// What each rule violation was (empty for a correct client).
    pub fn violations(&self) -> Vec<String> {
        self.state.violations.lock().unwrap().clone()
    }

    pub fn create_group(&self, group: &str) {
        self.state.groups.lock().unwrap().entry(group.to_string()).or_default();
    }

    pub fn delete_group(&self, group: &str) {
        self.state.groups.lock().unwrap().remove(group);
    }

    pub fn delete_stream(&self, group: &str, stream: &str) {
        if let Some(g) = self.state.groups.lock().unwrap().get_mut(group) {
            g.remove(stream);
        }
    }

    /// A one-line summary of the counters.
    pub fn summary(&self) -> String {
        let c = &self.state.counters;
        let f = |a: &AtomicU64| a.load(Relaxed);
        format!(
            "requests={} put_ok={} rule_violations={} not_found={} events_accepted={} rejected_old={} rejected_new={} \
             injected: throttle={} 500={} 503={} reset={} slow={} (discarded {}) delete_stream={} delete_group={} \
             expired_token={} reject_old={} reject_new={} odd={} max_puts_in_flight={}",
            f(&c.requests),
            f(&c.put_calls_ok),
            f(&c.rule_violations),
            f(&c.not_found),
            f(&c.events_accepted),
            f(&c.events_rejected_old),
            f(&c.events_rejected_new),
            f(&c.injected_throttle),
            f(&c.injected_500),
            f(&c.injected_503),
            f(&c.injected_reset),
            f(&c.injected_slow),
            f(&c.slow_discarded),
            f(&c.injected_delete_stream),
            f(&c.injected_delete_group),
            f(&c.injected_expired_token),
            f(&c.injected_reject_old),
            f(&c.injected_reject_new),
            f(&c.injected_odd),
            f(&c.max_puts_in_flight),
        )
    }
}

impl Drop for StrictEndpoint {
    fn drop(&mut self) {
        self.state.stop.store(true, Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A new self-signed CA ("cwrs test CA", a fresh key each time): its parameters and key.
fn new_ca() -> (rcgen::CertificateParams, rcgen::KeyPair, rcgen::Certificate) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "cwrs test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    (ca_params, ca_key, ca)
}

/// The PEM of a new test CA certificate, a different one each call.
pub fn new_ca_pem() -> String {
    new_ca().2.pem()
}

pub(crate) fn tls_server_config() -> (Arc<rustls::ServerConfig>, String) {
    let (ca_params, ca_key, ca) = new_ca();
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca.der().clone()], key)
        .unwrap();
    (Arc::new(config), ca.pem())
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

fn serve(tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, st: &State) {
    let _ = tcp.set_nodelay(true);
    let raw = match tcp.try_clone() {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut conn: Box<dyn Conn> = match tls {
        Some(config) => match rustls::ServerConnection::new(config) {
            Ok(c) => Box::new(rustls::StreamOwned::new(c, tcp)),
            Err(_) => return,
        },
        None => Box::new(tcp),
    };
    let mut buf = Vec::with_capacity(64 << 10);
    loop {
        let Some((head_len, headers)) = read_head(&mut conn, &mut buf) else { return };
        let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let target = headers.get("x-amz-target").cloned().unwrap_or_default();
        let is_put = target.ends_with(".PutLogEvents");
        st.counters.requests.fetch_add(1, Relaxed);
        let _in_flight = is_put.then(|| InFlight::start(&st.counters));
        let fault = if is_put { draw_fault(st) } else { None };
        if fault == Some(Fault::Reset) {
            // read about half the body, then reset the connection
            let want = head_len + length / 2;
            while buf.len() < want {
                if !fill(&mut conn, &mut buf) {
                    break;
                }
            }
            reset(&raw);
            return;
        }
        while buf.len() < head_len + length {
            if !fill(&mut conn, &mut buf) {
                return;
            }
        }
        let body: Vec<u8> = buf[head_len..head_len + length].to_vec();
        buf.drain(..head_len + length);
        if let Some(Fault::Odd(odd)) = fault {
            if conn.write_all(&odd.bytes()).and_then(|_| conn.flush()).is_err() {
                return;
            }
            continue;
        }
        if fault == Some(Fault::Slow) {
            let slow_for = st.faults.lock().unwrap().slow_for;
            std::thread::sleep(slow_for);
            if client_gone(&raw) {
                st.counters.slow_discarded.fetch_add(1, Relaxed);
                return;
            }
        }
        let (status, error_type, response) = if target.is_empty() {
            crate::strict_sts::handle(&st.sts, &headers, &body)
        } else {
            match crate::strict_sts::check_signature(&st.sts, &headers) {
                Some(refusal) => refusal,
                None => {
                    let answer = handle(st, &target, &body, fault);
                    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
                    if is_put && answer.0 == 200 {
                        *st.last_put_headers.lock().unwrap() = (headers.get("x-amzn-logs-format").cloned(), user_agent);
                    } else if !is_put {
                        let op = target.rsplit('.').next().unwrap_or("").to_string();
                        let body = serde_json::from_slice(&body).unwrap_or_default();
                        st.calls.lock().unwrap().push(Call { op, body, user_agent });
                    }
                    answer
                }
            }
        };
        let request_id = format!("{:016x}-strict", next_rand(st));
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\nx-amzn-RequestId: {request_id}\r\nContent-Length: {}\r\n",
            reason(status),
            if response.starts_with('<') { "text/xml" } else { "application/x-amz-json-1.1" },
            response.len()
        );
        if let Some(t) = error_type {
            out.push_str(&format!("x-amzn-ErrorType: {t}\r\n"));
        }
        if headers.get(":path").is_some_and(|p| p == "/latest/api/token") {
            out.push_str("x-aws-ec2-metadata-token-ttl-seconds: 21600\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(response.as_bytes());
        if conn.write_all(&bytes).and_then(|_| conn.flush()).is_err() {
            return;
        }
        if headers.get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            let _ = raw.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn fill(conn: &mut Box<dyn Conn>, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 << 10];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn read_head(conn: &mut Box<dyn Conn>, buf: &mut Vec<u8>) -> Option<(usize, HashMap<String, String>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut headers: HashMap<String, String> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let mut request_line = text.lines().next().unwrap_or("").split_whitespace();
            headers.insert(":method".into(), request_line.next().unwrap_or("").to_string());
            headers.insert(":path".into(), request_line.next().unwrap_or("").to_string());
            return Some((end + 4, headers));
        }
        if !fill(conn, buf) {
            return None;
        }
    }
}

fn reset(tcp: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = tcp.shutdown(Shutdown::Both);
}

/// Whether the client abandoned the request: an HTTP/1.1 client sends nothing while it waits
/// for an answer, so anything readable (EOF, or a TLS close_notify) means it went away.
fn client_gone(tcp: &TcpStream) -> bool {
    let _ = tcp.set_nonblocking(true);
    let mut b = [0u8; 1];
    let gone = !matches!(tcp.peek(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
    let _ = tcp.set_nonblocking(false);
    gone
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Throttle,
    Http500,
    Http503,
    Reset,
    Slow,
    DeleteStream,
    DeleteGroup,
    ExpiredToken,
    InvalidParameter,
    RejectOld,
    RejectNew,
    Odd(OddAnswer),
}

fn next_rand(st: &State) -> u64 {
    let mut s = st.rng.lock().unwrap();
    // xorshift64*
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn draw_fault(st: &State) -> Option<Fault> {
    {
        let mut next = st.odd_for_next.lock().unwrap();
        if let Some((odd, left)) = next.as_mut() {
            let odd = *odd;
            *left -= 1;
            if *left == 0 {
                *next = None;
            }
            st.counters.injected_odd.fetch_add(1, Relaxed);
            return Some(Fault::Odd(odd));
        }
    }
    let f = st.faults.lock().unwrap().clone();

    let mut table = vec![
        (f.throttle, Fault::Throttle),
        (f.http500, Fault::Http500),
        (f.http503, Fault::Http503),
        (f.reset, Fault::Reset),
        (f.slow, Fault::Slow),
        (f.delete_stream, Fault::DeleteStream),
        (f.delete_group, Fault::DeleteGroup),
        (f.expired_token, Fault::ExpiredToken),
        (f.invalid_parameter, Fault::InvalidParameter),
        (f.reject_old, Fault::RejectOld),
        (f.reject_new, Fault::RejectNew),
    ];
    table.extend(f.odd.map(|(odd, p)| (p, Fault::Odd(odd))));
    let x = (next_rand(st) >> 11) as f64 / (1u64 << 53) as f64;
    let mut acc = 0.0;
    for (p, fault) in table {
        acc += p;
        if x < acc {
            let c = &st.counters;
            match fault {
                Fault::Throttle => &c.injected_throttle,
                Fault::Http500 => &c.injected_500,
                Fault::Http503 => &c.injected_503,
                Fault::Reset => &c.injected_reset,
                Fault::Slow => &c.injected_slow,
                Fault::DeleteStream => &c.injected_delete_stream,
                Fault::DeleteGroup => &c.injected_delete_group,
                Fault::ExpiredToken => &c.injected_expired_token,
                Fault::InvalidParameter => &c.injected_invalid_parameter,
                Fault::RejectOld => &c.injected_reject_old,
                Fault::RejectNew => &c.injected_reject_new,
                Fault::Odd(_) => &c.injected_odd,
            }
            .fetch_add(1, Relaxed);
            return Some(fault);
        }
    }
    None
}

fn error(status: u16, kind: &'static str, message: &str) -> (u16, Option<&'static str>, String) {
    (status, Some(kind), serde_json::json!({ "__type": kind, "message": message }).to_string())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn handle(st: &State, target: &str, body: &[u8], fault: Option<Fault>) -> (u16, Option<&'static str>, String) {
    let op = target.rsplit('.').next().unwrap_or("");
    if !target.starts_with("Logs_20140328.") {
        return error(400, "UnknownOperationException", &format!("unknown target {target}"));
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
        return violation(st, "SerializationException", "body is not JSON".into());
    };
    let group = req["logGroupName"].as_str().unwrap_or("").to_string();
    let stream = req["logStreamName"].as_str().unwrap_or("").to_string();
    match op {
        "CreateLogGroup" => {
            if let Some(refusal) = check_create_group(st, &req) {
                return refusal;
            }
            let mut groups = st.groups.lock().unwrap();
            if groups.contains_key(&group) {
                return error(400, "ResourceAlreadyExistsException", "The specified log group already exists");
            }
            groups.insert(group, Default::default());
            st.counters.groups_created.fetch_add(1, Relaxed);
            (200, None, String::new())
        }
        "CreateLogStream" => {
            let mut groups = st.groups.lock().unwrap();
            let Some(g) = groups.get_mut(&group) else {
                st.counters.not_found.fetch_add(1, Relaxed);
                return error(400, "ResourceNotFoundException", "The specified log group does not exist.");
            };
            if !g.insert(stream) {
                return error(400, "ResourceAlreadyExistsException", "The specified log stream already exists");
            }
            st.counters.streams_created.fetch_add(1, Relaxed);
            (200, None, String::new())
        }
        "PutLogEvents" => put(st, &group, &stream, &req, fault),
        "PutRetentionPolicy" => {
            let days = req["retentionInDays"].as_i64().unwrap_or(0);
            if !RETENTION_DAYS.contains(&days) {
                return violation(st, "InvalidParameterException", format!("retentionInDays {days}"));
            }
            if !st.groups.lock().unwrap().contains_key(&group) {
                return error(400, "ResourceNotFoundException", "The specified log group does not exist.");
            }
            (200, None, String::new())
        }
        _ => error(400, "UnknownOperationException", &format!("{op} is not served here")),
    }
}

/// What CloudWatch accepts for `retentionInDays`.
pub const RETENTION_DAYS: &[i64] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// CreateLogGroup's optional fields, checked as CloudWatch does.
fn check_create_group(st: &State, req: &serde_json::Value) -> Option<(u16, Option<&'static str>, String)> {
    if let Some(class) = req.get("logGroupClass") {
        if !matches!(class.as_str(), Some("STANDARD" | "INFREQUENT_ACCESS" | "DELIVERY")) {
            return Some(violation(st, "InvalidParameterException", format!("logGroupClass {class}")));
        }
    }
    if let Some(key) = req.get("kmsKeyId") {
        if !key.as_str().is_some_and(|k| k.starts_with("arn:") && k.contains(":kms:")) {
            return Some(violation(st, "InvalidParameterException", format!("kmsKeyId {key}")));
        }
    }
    if let Some(tags) = req.get("tags") {
        let ok = tags.as_object().is_some_and(|m| {
            m.len() <= 50
                && m.iter().all(|(k, v)| (1..=128).contains(&k.len()) && v.as_str().is_some_and(|v| v.len() <= 256))
        });
        if !ok {
            return Some(violation(st, "InvalidParameterException", format!("tags {tags}")));
        }
    }
    None
}

fn violation(st: &State, kind: &'static str, message: String) -> (u16, Option<&'static str>, String) {
    st.counters.rule_violations.fetch_add(1, Relaxed);
    st.violations.lock().unwrap().push(message.clone());
    error(400, kind, &message)
}

fn put(
    st: &State,
    group: &str,
    stream: &str,
    req: &serde_json::Value,
    fault: Option<Fault>,
) -> (u16, Option<&'static str>, String) {
    match fault {
        Some(Fault::Throttle) => return error(400, "ThrottlingException", "Rate exceeded"),
        Some(Fault::Http500) => return error(500, "InternalFailure", "An internal error occurred"),
        Some(Fault::Http503) => return error(503, "ServiceUnavailableException", "The service is unavailable"),
        Some(Fault::ExpiredToken) => {
            return error(400, "ExpiredTokenException", "The security token included in the request is expired")
        }
        Some(Fault::InvalidParameter) => {
            return error(400, "InvalidParameterException", "1 validation error detected: injected by the test")
        }
        Some(Fault::DeleteStream) => {
            if let Some(g) = st.groups.lock().unwrap().get_mut(group) {
                g.remove(stream);
            }
        }
        Some(Fault::DeleteGroup) => {
            st.groups.lock().unwrap().remove(group);
        }
        _ => {}
    }
    {
        let groups = st.groups.lock().unwrap();
        match groups.get(group) {
            None => {
                st.counters.not_found.fetch_add(1, Relaxed);
                return error(400, "ResourceNotFoundException", "The specified log group does not exist.");
            }
            Some(g) if !g.contains(stream) => {
                st.counters.not_found.fetch_add(1, Relaxed);
                return error(400, "ResourceNotFoundException", "The specified log stream does not exist.");
            }
            _ => {}
        }
    }
    let Some(events) = req["logEvents"].as_array() else {
        return violation(st, "InvalidParameterException", "logEvents missing".into());
    };
    let n = events.len();
    if n == 0 || n > MAX_EVENTS {
        return violation(st, "InvalidParameterException", format!("{n} events in one batch"));
    }
    let mut bytes = 0usize;
    let mut parsed = Vec::with_capacity(n);
    for (i, e) in events.iter().enumerate() {
        let (Some(ts), Some(msg)) = (e["timestamp"].as_i64(), e["message"].as_str()) else {
            return violation(st, "InvalidParameterException", format!("event {i} lacks timestamp or message"));
        };
        if msg.is_empty() {
            return violation(st, "InvalidParameterException", format!("event {i} has an empty message"));
        }
        if msg.len() > MAX_MESSAGE_BYTES {
            return violation(st, "InvalidParameterException", format!("event {i} is {} bytes", msg.len()));
        }
        bytes += msg.len() + 26;
        parsed.push((ts, msg));
    }
    if bytes > MAX_BATCH_BYTES {
        return violation(st, "InvalidParameterException", format!("batch of {bytes} bytes"));
    }
    if parsed.windows(2).any(|w| w[0].0 > w[1].0) {
        return violation(
            st,
            "InvalidParameterException",
            "Log events in a single PutLogEvents request must be in chronological order.".into(),
        );
    }
    let now = now_ms();
    let mut old_end = parsed.iter().take_while(|(ts, _)| *ts < now - 14 * DAY_MS).count();
    let mut new_start = n - parsed.iter().rev().take_while(|(ts, _)| *ts > now + 2 * 3600 * 1000).count();
    if fault == Some(Fault::RejectOld) && old_end < new_start {
        old_end = (old_end + 1 + (next_rand(st) % 3) as usize).min(new_start);
    }
    if fault == Some(Fault::RejectNew) && new_start > old_end {
        new_start = new_start.saturating_sub(1 + (next_rand(st) % 3) as usize).max(old_end);
    }
    let valid = &parsed[old_end..new_start];
    if let (Some(first), Some(last)) = (valid.first(), valid.last()) {
        if last.0 - first.0 > DAY_MS {
            return violation(
                st,
                "InvalidParameterException",
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.".into(),
            );
        }
    }
    // admission and acceptance under one lock, so `throttle_after_puts` is exact under concurrency
    let mut accepted = st.accepted.lock().unwrap();
    let limit = st.faults.lock().unwrap().throttle_after_puts;
    if limit.is_some_and(|n| st.counters.put_calls_ok.load(Relaxed) >= n) {
        st.counters.injected_throttle.fetch_add(1, Relaxed);
        return error(400, "ThrottlingException", "Rate exceeded");
    }
    st.counters.events_rejected_old.fetch_add(old_end as u64, Relaxed);
    st.counters.events_rejected_new.fetch_add((n - new_start) as u64, Relaxed);
    st.counters.events_accepted.fetch_add(valid.len() as u64, Relaxed);
    st.counters.put_calls_ok.fetch_add(1, Relaxed);
    {
        for (ts, msg) in valid {
            accepted.push(Accepted {
                group: group.to_string(),
                stream: stream.to_string(),
                timestamp: *ts,
                len: msg.len(),
                seq: seq_of(msg),
                head: msg.chars().take(400).collect(),
                at: SystemTime::now(),
            });
        }
    }
    drop(accepted);
    let mut info = serde_json::Map::new();
    if old_end > 0 {
        info.insert("tooOldLogEventEndIndex".into(), old_end.into());
    }
    if new_start < n {
        info.insert("tooNewLogEventStartIndex".into(), new_start.into());
    }
    let body =
        if info.is_empty() { serde_json::json!({}) } else { serde_json::json!({ "rejectedLogEventsInfo": info }) };
    (200, None, body.to_string())
}

/// `N` from a message starting `{"seq":N`.
fn seq_of(msg: &str) -> Option<u64> {
    let rest = msg.strip_prefix("{\"seq\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}
