//! A fault-injecting TCP proxy on 127.0.0.1 between mailsync and Dovecot (plain IMAP, so the
//! bytes can be seen). One fault at a time is armed; the first connection whose stream reaches
//! the trigger — a byte offset in one direction, or a point inside the n-th literal of a
//! direction (a `BODY[]` literal of a FETCH response from the server, an APPEND literal from
//! the client) — takes it: the connection is cut, stalled (shorter or longer than the client's
//! Timeout) or slowed down from there on. What fired is recorded for the test.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does once the trigger is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Closes both connections.
    Cut,
    /// Holds the data back this long, then goes on.
    Stall(Duration),
    /// Forwards the next `bytes` in small pieces with pauses, then normally.
    Slow { bytes: usize },
}

/// Which stream the trigger counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    ServerToClient,
    ClientToServer,
}

/// Where in the stream the fault fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Before the byte at this offset of the connection's stream.
    Offset(u64),
    /// Inside the `nth` (from 1) literal of at least 64 bytes of the connection's stream, after
    /// `permille`/1000 of it (at least one byte in, at least one byte before its end).
    InLiteral { nth: u32, permille: u32 },
    /// Right after this text appeared outside a literal (the rest of that line is held).
    Text(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub flow: Flow,
    pub trigger: Trigger,
}

/// A fault that fired.
#[derive(Clone, Debug)]
pub struct Fired {
    pub fault: Fault,
    /// Offset in the connection's stream where it fired.
    pub offset: u64,
    /// Size of the literal it fired in, if any, and how far into it.
    pub literal: Option<(u64, u64)>,
    /// The text of the line that announced that literal (to tell FETCH from APPEND).
    pub literal_line: String,
}

#[derive(Default)]
struct Shared {
    armed: Option<Fault>,
    fired: Vec<Fired>,
    /// Bytes seen per flow since the last `arm`/`disarm`.
    totals: [u64; 2],
    /// Pump threads still running (two per connection).
    active: usize,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

/// Smallest literal the `InLiteral` trigger counts (skips short strings sent as literals).
const MIN_LITERAL: u64 = 64;

impl FaultProxy {
    pub fn start(target_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_shared, accept_stop) = (shared.clone(), stop.clone());
        thread::spawn(move || {
            while !accept_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let _ = client.set_nodelay(true);
                        if let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) {
                            let _ = server.set_nodelay(true);
                            start_pumps(client, server, accept_shared.clone());
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { port, shared, stop }
    }

    /// Arms one fault (replacing any armed one) and resets the byte totals.
    pub fn arm(&self, fault: Fault) {
        if let Ok(mut s) = self.shared.lock() {
            s.armed = Some(fault);
            s.totals = [0, 0];
        }
    }

    /// Disarms; returns the faults that fired since the last call.
    pub fn disarm(&self) -> Vec<Fired> {
        match self.shared.lock() {
            Ok(mut s) => {
                s.armed = None;
                std::mem::take(&mut s.fired)
            }
            Err(_) => Vec::new(),
        }
    }

    /// Waits until every connection has ended, at most `limit`: a stalled stream goes on
    /// once its stall is over (data the client sent before giving up still reaches the
    /// server, as it would from a slow network), and the next run should start after that.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.shared.lock().map(|s| s.active == 0).unwrap_or(true) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many faults fired since the last `disarm`.
    pub fn fired_count(&self) -> usize {
        self.shared.lock().map(|s| s.fired.len()).unwrap_or(0)
    }

    /// Bytes seen per flow (server→client, client→server) since the last `arm`.
    pub fn totals(&self) -> [u64; 2] {
        self.shared.lock().map(|s| s.totals).unwrap_or([0, 0])
    }

    pub fn reset_totals(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.totals = [0, 0];
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn start_pumps(client: TcpStream, server: TcpStream, shared: Arc<Mutex<Shared>>) {
    let clone_both = || -> Option<[Option<TcpStream>; 2]> {
        Some([
            Some(client.try_clone().ok()?),
            Some(server.try_clone().ok()?),
        ])
    };
    let (Some(both_a), Some(both_b)) = (clone_both(), clone_both()) else {
        return;
    };
    let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if let Ok(mut s) = shared.lock() {
        s.active += 2;
    }
    let shared2 = shared.clone();
    thread::spawn(move || pump(server, client, Flow::ServerToClient, shared, both_a));
    thread::spawn(move || pump(client_in, server_out, Flow::ClientToServer, shared2, both_b));
}

/// Follows one stream: lines, and the literals they announce.
struct Scanner {
    offset: u64,
    line: Vec<u8>,
    /// Bytes of the current literal still to come.
    literal_left: u64,
    literal_size: u64,
    literal_line: String,
    /// Literals of at least MIN_LITERAL bytes begun so far.
    literals: u32,
}

impl Scanner {
    /// Accounts for one byte; true when it starts a counted literal's first byte next.
    fn feed(&mut self, byte: u8) {
        self.offset += 1;
        if self.literal_left > 0 {
            self.literal_left -= 1;
            return;
        }
        self.line.push(byte);
        if byte != b'\n' {
            if self.line.len() > 4096 {
                self.line.drain(..2048);
            }
            return;
        }
        let line = std::mem::take(&mut self.line);
        if let Some(size) = announced_literal(&line) {
            self.literal_left = size;
            self.literal_size = size;
            if size >= MIN_LITERAL {
                self.literals += 1;
                self.literal_line = String::from_utf8_lossy(&line[..line.len().min(120)])
                    .trim_end()
                    .to_string();
            }
        }
    }

    /// How far into a counted literal the next byte is, if it is in one.
    fn in_literal(&self) -> Option<(u64, u64)> {
        (self.literal_left > 0 && self.literal_size >= MIN_LITERAL)
            .then(|| (self.literal_size, self.literal_size - self.literal_left))
    }
}

/// `{N}` or `{N+}` at the end of a line (before CRLF).
fn announced_literal(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let text = text.strip_suffix('\n')?;
    let text = text.strip_suffix('\r').unwrap_or(text);
    let inner = text.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    let digits = inner[open + 1..].trim_end_matches('+');
    digits.parse().ok()
}

fn trigger_reached(fault: &Fault, scanner: &Scanner) -> bool {
    match fault.trigger {
        Trigger::Offset(at) => scanner.offset >= at,
        Trigger::Text(text) => scanner.literal_left == 0 && scanner.line.ends_with(text.as_bytes()),
        Trigger::InLiteral { nth, permille } => {
            let Some((size, done)) = scanner.in_literal() else {
                return false;
            };
            if scanner.literals != nth {
                return false;
            }
            let want = (size * u64::from(permille) / 1000).clamp(1, size - 1);
            done >= want
        }
    }
}

/// Forwards one direction and then counts the pump as ended.
fn pump(
    from: TcpStream,
    to: TcpStream,
    flow: Flow,
    shared: Arc<Mutex<Shared>>,
    both: [Option<TcpStream>; 2],
) {
    forward(from, to, flow, shared.clone(), both);
    if let Ok(mut s) = shared.lock() {
        s.active = s.active.saturating_sub(1);
    }
}

fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    flow: Flow,
    shared: Arc<Mutex<Shared>>,
    both: [Option<TcpStream>; 2],
) {
    let index = match flow {
        Flow::ServerToClient => 0,
        Flow::ClientToServer => 1,
    };
    let mut scanner = Scanner {
        offset: 0,
        line: Vec::new(),
        literal_left: 0,
        literal_size: 0,
        literal_line: String::new(),
        literals: 0,
    };
    let mut buffer = vec![0u8; 16384];
    // Bytes still to forward slowly (a Slow fault that fired).
    let mut slow_left = 0usize;
    let cut_all = |both: &[Option<TcpStream>; 2]| {
        for s in both.iter().flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
    };
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut start = 0;
        let mut i = 0;
        while i < n {
            let armed = shared
                .lock()
                .ok()
                .and_then(|s| s.armed)
                .filter(|f| f.flow == flow);
            // Check the trigger at this byte (cheap enough: a lock per byte only while a
            // fault for this flow is armed and the data is small; skip ahead otherwise).
            if let Some(fault) = armed
                && trigger_reached(&fault, &scanner)
            {
                let fired = {
                    let Ok(mut s) = shared.lock() else { return };
                    if s.armed != Some(fault) {
                        None
                    } else {
                        s.armed = None;
                        let record = Fired {
                            fault,
                            offset: scanner.offset,
                            literal: scanner.in_literal(),
                            literal_line: scanner.literal_line.clone(),
                        };
                        s.fired.push(record);
                        Some(fault)
                    }
                };
                if let Some(fault) = fired {
                    if to.write_all(&buffer[start..i]).is_err() {
                        cut_all(&both);
                        return;
                    }
                    start = i;
                    match fault.kind {
                        FaultKind::Cut => {
                            cut_all(&both);
                            return;
                        }
                        FaultKind::Stall(pause) => thread::sleep(pause),
                        FaultKind::Slow { bytes } => slow_left = bytes,
                    }
                }
            }
            scanner.feed(buffer[i]);
            i += 1;
            if armed.is_none() {
                // Nothing armed for this flow: account the rest of the chunk at once.
                while i < n {
                    scanner.feed(buffer[i]);
                    i += 1;
                }
            }
        }
        if let Ok(mut s) = shared.lock() {
            s.totals[index] += n as u64;
        }
        let mut rest = &buffer[start..n];
        while slow_left > 0 && !rest.is_empty() {
            let piece = rest.len().min(slow_left).min(256);
            if to.write_all(&rest[..piece]).is_err() {
                cut_all(&both);
                return;
            }
            rest = &rest[piece..];
            slow_left -= piece;
            thread::sleep(Duration::from_millis(3));
        }
        if to.write_all(rest).is_err() {
            break;
        }
    }
    cut_all(&both);
}
