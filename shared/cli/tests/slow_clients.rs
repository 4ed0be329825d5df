//! `migrations serve` against slow, idle and greedy clients, as a real process
//! with short limits passed as flags: idle sockets and half-sent heads are
//! closed at the header timeout, a dribbled body is cut at the body timeout while
//! other clients are served, an absurd `Content-Length` is refused at once, more
//! idle sockets than `--max-connections` only delay a normal client, and SIGTERM
//! drains and exits 0.
//!
//! Timing assertions are generous upper bounds (about 3x the configured value,
//! plus start-up slack); lower bounds only where a timer cannot fire early.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const TENANT: &str = "6f1c2b1e-8a43-4f0e-9a55-0c0e8f1e2d3c";
const SCENARIO: &str = "4b7a5c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";

struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_migrations"))
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(dir.path())
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn migrations serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read address line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        // Keep reading the logs: a full pipe would block the server.
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// A parsed response: status, lower-cased head, body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Reads one response (bodies here always carry `content-length`).
fn read_reply(stream: &mut TcpStream) -> std::io::Result<Reply> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("closed after {raw:?}"),
            ));
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response head: {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(Reply {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn get_scenario_request(connection: &str) -> String {
    format!(
        "GET /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
         Connection: {connection}\r\n\r\n"
    )
}

/// A well-behaved client: GET a scenario that does not exist, expect 404 JSON.
fn normal_request(server: &Server) -> Reply {
    let mut stream = server.connect();
    stream
        .write_all(get_scenario_request("close").as_bytes())
        .unwrap();
    let reply = read_reply(&mut stream).expect("a normal client gets an answer");
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(reply.body.contains("\"detail\""), "{}", reply.body);
    reply
}

/// Waits until the server closes `stream` (EOF or reset). Panics if it sends
/// anything else than an optional 408, or if the read times out.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {:?}", started.elapsed())
            }
            Err(_) => break, // reset: closed too
        }
    }
    let received = String::from_utf8_lossy(&received);
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "unexpected answer: {received:?}"
    );
    started.elapsed()
}

#[test]
fn idle_socket_and_half_sent_head_are_closed_at_the_header_timeout() {
    let mut server = Server::start(&["--header-timeout-secs", "1", "--idle-timeout-secs", "60"]);

    // (a) Connected, nothing sent: closed at the header timeout, not the idle one.
    let mut idle = server.connect();
    // (b) Half a request line, then silence.
    let mut half = server.connect();
    half.write_all(b"GET /scenarios/4b7a5c1d-2e3f").unwrap();
    // A head dribbled one byte every 200 ms is cut at the same deadline.
    let mut dribble = server.connect();
    let mut writer = dribble.try_clone().unwrap();
    let dribbler = thread::spawn(move || {
        for byte in get_scenario_request("close").bytes() {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });

    for (name, stream) in [
        ("idle", &mut idle),
        ("half line", &mut half),
        ("dribbled head", &mut dribble),
    ] {
        let took = wait_closed(stream, Duration::from_secs(6));
        assert!(
            took < Duration::from_secs(6),
            "{name}: closed after {took:?}"
        );
    }
    dribbler.join().unwrap();
    assert!(server.alive());
    normal_request(&server);
}

#[test]
fn keep_alive_connections_wait_for_the_idle_timeout_not_the_header_timeout() {
    let server = Server::start(&["--header-timeout-secs", "1", "--idle-timeout-secs", "4"]);
    let mut stream = server.connect();
    stream
        .write_all(get_scenario_request("keep-alive").as_bytes())
        .unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().status, 404);

    // Past the header timeout, still open: idle between requests is not a slow head.
    stream
        .set_read_timeout(Some(Duration::from_millis(2000)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("closed before the idle timeout: {other:?}"),
    }
    // A second request on the same connection is served.
    stream
        .write_all(get_scenario_request("keep-alive").as_bytes())
        .unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().status, 404);
    // Then, left idle, it is closed at the idle timeout.
    let took = wait_closed(&mut stream, Duration::from_secs(15));
    assert!(took >= Duration::from_secs(3), "closed after {took:?}");
}

#[test]
fn slow_bodies_are_cut_at_the_body_timeout_while_others_are_served() {
    // One request slot: a slow body must not hold it.
    let mut server = Server::start(&[
        "--body-timeout-secs",
        "2",
        "--max-in-flight",
        "1",
        "--header-timeout-secs",
        "5",
    ]);
    let head = format!(
        "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );

    // (c) A body at one byte every 300 ms would take 30 s.
    let mut slow = server.connect();
    slow.write_all(head.as_bytes()).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let dribbler = thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(300));
        }
    });
    // A body that stops halfway.
    let mut stalled = server.connect();
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(b"{\"name\": ").unwrap();
    let started = Instant::now();

    // (d) Meanwhile, other clients are answered promptly.
    for _ in 0..5 {
        let asked = Instant::now();
        normal_request(&server);
        assert!(asked.elapsed() < Duration::from_secs(2));
        thread::sleep(Duration::from_millis(200));
    }

    let reply = read_reply(&mut stalled).expect("the stalled body is answered");
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert!(reply.body.contains("Request timeout"), "{}", reply.body);
    assert!(reply.head.contains("connection: close"), "{}", reply.head);
    assert!(started.elapsed() < Duration::from_secs(6));

    // The dribbled one gets the same 408, or just a closed socket when the
    // bytes still in flight reset it first.
    let took = wait_closed(&mut slow, Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed {took:?} after"
    );
    dribbler.join().unwrap();
    assert!(server.alive());
    normal_request(&server);
}

#[test]
fn an_absurd_content_length_is_refused_at_once() {
    let server = Server::start(&["--body-timeout-secs", "30"]);
    let mut stream = server.connect();
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
                 Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let reply = read_reply(&mut stream).expect("answered without the body");
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.body.contains("too large"), "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Just over 6 MB declared, same answer; a chunked body over the limit too.
    let mut stream = server.connect();
    stream
        .write_all(
            format!(
                "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
                 Content-Length: {}\r\n\r\n",
                6 * 1024 * 1024 + 1
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().status, 413);

    let mut stream = server.connect();
    stream
        .write_all(
            format!(
                "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let chunk = vec![b' '; 1024 * 1024];
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        for _ in 0..7 {
            if writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .is_err()
                || writer.write_all(&chunk).is_err()
                || writer.write_all(b"\r\n").is_err()
            {
                return;
            }
        }
    });
    match read_reply(&mut stream) {
        Ok(reply) => assert_eq!(reply.status, 413, "{}", reply.body),
        // The rest of the chunks may reset the connection before the answer is read.
        Err(e) => assert_ne!(e.kind(), ErrorKind::WouldBlock, "no answer"),
    }
    sender.join().unwrap();
    normal_request(&server);
}

/// A client that sends its whole body before reading (Python's urllib does)
/// still reads the 413: the server shuts its side, then reads and discards
/// what is still coming instead of resetting the connection.
#[test]
fn a_client_sending_a_whole_oversized_body_first_still_reads_the_413() {
    let mut server = Server::start(&[]);
    for (round, framing) in ["Content-Length: 10485760", "Transfer-Encoding: chunked"]
        .into_iter()
        .enumerate()
    {
        let mut stream = server.connect();
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .write_all(
                format!(
                    "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
                     Content-Type: application/json\r\n{framing}\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        // 10 MB, all of it, before reading anything.
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..10 {
            if round == 1 {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .expect("the server keeps reading");
            }
            stream.write_all(&chunk).expect("the server keeps reading");
            if round == 1 {
                stream.write_all(b"\r\n").expect("the server keeps reading");
            }
        }
        if round == 1 {
            stream
                .write_all(b"0\r\n\r\n")
                .expect("the server keeps reading");
        }
        let reply = read_reply(&mut stream).expect("the answer, not a reset");
        assert_eq!(reply.status, 413, "{framing}: {}", reply.body);
        assert!(reply.body.contains("too large"), "{}", reply.body);
    }
    assert!(server.alive());
    normal_request(&server);
}

#[test]
fn more_idle_sockets_than_the_connection_cap_only_delay_others() {
    let mut server = Server::start(&["--max-connections", "8", "--header-timeout-secs", "1"]);
    // (f) 20 sockets that never send a byte: 8 are accepted, 12 wait in the backlog.
    let mut idle: Vec<TcpStream> = (0..20).map(|_| server.connect()).collect();
    let started = Instant::now();
    let reply = normal_request(&server);
    assert_eq!(reply.status, 404);
    assert!(started.elapsed() < Duration::from_secs(20));
    // Every idle socket is closed in turn, none kept past a few header timeouts.
    for stream in &mut idle {
        wait_closed(stream, Duration::from_secs(20));
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(server.alive(), "{}", server.logs());
    normal_request(&server);
}

#[test]
fn at_the_connection_cap_the_longest_waiting_sockets_make_room() {
    // A header timeout far beyond the test: only eviction can free the slots.
    let mut server = Server::start(&[
        "--max-connections",
        "8",
        "--header-timeout-secs",
        "60",
        "--idle-timeout-secs",
        "60",
    ]);
    let mut idle: Vec<TcpStream> = (0..20).map(|_| server.connect()).collect();
    let started = Instant::now();
    normal_request(&server);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited {:?}",
        started.elapsed()
    );
    // The oldest idle sockets were the ones closed.
    wait_closed(&mut idle[0], Duration::from_secs(5));
    // A request that is being served is never evicted: a stalled body keeps its
    // connection (until its body timeout, 30 s by default) while the cap is hit.
    let mut serving = server.connect();
    serving
        .write_all(
            format!(
                "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
                 Content-Length: 50\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    let more: Vec<TcpStream> = (0..10).map(|_| server.connect()).collect();
    normal_request(&server);
    serving
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 1];
    match serving.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a connection serving a request was cut: {other:?}"),
    }
    drop(more);
    assert!(server.alive(), "{}", server.logs());
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let mut server = Server::start(&["--body-timeout-secs", "2", "--shutdown-grace-secs", "15"]);
    normal_request(&server);
    // Idle connections do not hold the shutdown up: neither a fresh one nor a
    // keep-alive one between requests (the idle timeout here is 60 s).
    let mut idle = server.connect();
    let mut kept_alive = server.connect();
    kept_alive
        .write_all(get_scenario_request("keep-alive").as_bytes())
        .unwrap();
    assert_eq!(read_reply(&mut kept_alive).unwrap().status, 404);
    // A request in flight (its body stalls) is allowed to finish: with 408 here.
    let mut in_flight = server.connect();
    in_flight
        .write_all(
            format!(
                "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
                 Content-Length: 50\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.sigterm();

    wait_closed(&mut idle, Duration::from_secs(5));
    wait_closed(&mut kept_alive, Duration::from_secs(5));
    // Idle connections close once the listener is gone: no new connection now.
    assert!(
        TcpStream::connect(&server.addr).is_err(),
        "still accepting while draining"
    );
    let reply = read_reply(&mut in_flight).expect("the in-flight request is answered");
    assert_eq!(reply.status, 408, "{}", reply.body);
    // (g) Exit 0, well within the grace period.
    let status = server
        .wait_exit(Duration::from_secs(12))
        .unwrap_or_else(|| panic!("still running after SIGTERM: {}", server.logs()));
    assert!(status.success(), "{status:?}: {}", server.logs());
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[test]
fn sigterm_cuts_requests_still_running_at_the_end_of_the_grace_period() {
    let mut server = Server::start(&[
        "--body-timeout-secs",
        "60",
        "--request-timeout-secs",
        "60",
        "--shutdown-grace-secs",
        "1",
    ]);
    let mut in_flight = server.connect();
    in_flight
        .write_all(
            format!(
                "PUT /scenarios/{SCENARIO} HTTP/1.1\r\nHost: localhost\r\nX-Tenant-ID: {TENANT}\r\n\
                 Content-Length: 50\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.sigterm();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running after SIGTERM: {}", server.logs()));
    assert!(status.success(), "{status:?}: {}", server.logs());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "no grace given"
    );
    wait_closed(&mut in_flight, Duration::from_secs(5));
}
