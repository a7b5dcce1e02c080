//! A misbehaving IMAP server, through the binary: a real Dovecot on 127.0.0.1 behind a
//! scripted relay that refuses commands with NO or BAD in Dovecot's place, says BYE in the
//! middle of a session, adds garbage or unasked-for FETCH replies, gives a message under a
//! wrong UID, announces a literal of gigabytes, lies about UIDVALIDITY, or lets another client
//! delete the mailbox in the middle of a run.
//!
//! Every case follows the same course on a fresh Dovecot user: a normal first sync, then
//! changes on both sides (new mail each way, flag changes each way, a deletion, a new
//! folder), then the run through the faulty relay, then a normal run. The faulty run must
//! end as the case says (mostly exit code 1 with an error naming the store, mailbox or
//! command), and after the normal run both sides must hold exactly the expected messages:
//! nothing lost, nothing duplicated, flags converged.
//!
//! Each test prints one line for the reliability table (`--nocapture` shows it):
//! `RELIABILITY category=<name> tried=<n> compared=<n> lost=<n> duplicated=<n>`.

mod dovecot;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use dovecot::Dovecot;

const USER_PASS: &str = "pw";
const MAX_USERS: u32 = 120;

// ---- The server ----------------------------------------------------------------------------

/// A Dovecot with test users `u1…` prepared before the first login.
struct Server {
    dovecot: Dovecot,
    next_user: AtomicU32,
}

impl Server {
    fn start() -> Server {
        let dovecot = Dovecot::start();
        dovecot.add_users(MAX_USERS, USER_PASS);
        Server {
            dovecot,
            next_user: AtomicU32::new(1),
        }
    }

    fn add_user(&self) -> String {
        let n = self.next_user.fetch_add(1, Ordering::SeqCst);
        assert!(n <= MAX_USERS, "more than {MAX_USERS} users needed");
        format!("u{n}")
    }

    fn doveadm(&self, args: &[&str]) -> Result<String, String> {
        self.dovecot.try_doveadm(args)
    }

    fn must(&self, args: &[&str]) -> String {
        self.doveadm(args).unwrap_or_else(|e| panic!("{e}"))
    }
}

// ---- The scripted relay --------------------------------------------------------------------

/// What the relay does to the command it picks (or to its answer).
#[derive(Clone)]
enum Action {
    /// Answers the command itself with a tagged `NO` or `BAD`; Dovecot never sees it.
    Refuse(&'static str),
    /// Sends `* BYE` instead of forwarding the command, then closes the connection.
    Bye,
    /// Forwards the command; these lines reach the client just before its tagged answer.
    InjectBeforeAnswer(Vec<u8>),
    /// Answers a UID FETCH of a body itself with a FETCH announcing a literal of this many
    /// bytes, followed by 64 KiB of data, and keeps the connection open.
    HugeLiteral(u64),
    /// Forwards the command; in its answer, `UID <n>` becomes `UID <n + 100000>`.
    ShiftUids,
    /// Forwards the command; once Dovecot answered it, runs this (another client acting)
    /// before the answer goes on to the client.
    AfterAnswer(Arc<dyn Fn() + Send + Sync>),
}

/// Which command the relay picks: the first line after the tag starts with `verb`
/// (upper case) and contains `needle`; `skip` matching commands pass before it fires, once.
#[derive(Clone)]
struct Fault {
    verb: &'static str,
    needle: &'static str,
    skip: usize,
    action: Action,
}

impl Fault {
    fn new(verb: &'static str, action: Action) -> Fault {
        Fault {
            verb,
            needle: "",
            skip: 0,
            action,
        }
    }

    fn containing(mut self, needle: &'static str) -> Fault {
        self.needle = needle;
        self
    }
}

/// A relay on 127.0.0.1 in front of Dovecot's plain port applying one [`Fault`], and
/// rewriting server text (`rewrite`) on every connection.
struct FaultRelay {
    port: u16,
    fired: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Shared state of one relayed connection.
struct Link {
    fault: Option<Fault>,
    seen: AtomicUsize,
    fired: Arc<AtomicBool>,
    /// Writes to the client, one whole response at a time.
    client: Mutex<TcpStream>,
    /// Tag → what to do with the answer to that command.
    answers: Mutex<BTreeMap<String, Action>>,
    rewrite: Vec<(String, String)>,
}

impl FaultRelay {
    fn start(target: u16, fault: Option<Fault>, rewrite: Vec<(String, String)>) -> FaultRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let fired = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (fired2, stop2) = (fired.clone(), stop.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let Ok(client_writer) = client.try_clone() else {
                    continue;
                };
                let link = Arc::new(Link {
                    fault: fault.clone(),
                    seen: AtomicUsize::new(0),
                    fired: fired2.clone(),
                    client: Mutex::new(client_writer),
                    answers: Mutex::new(BTreeMap::new()),
                    rewrite: rewrite.clone(),
                });
                let Ok(server_reader) = server.try_clone() else {
                    continue;
                };
                let up = link.clone();
                thread::spawn(move || client_to_server(client, server, &up));
                thread::spawn(move || server_to_client(server_reader, &link));
            }
        });
        FaultRelay { port, fired, stop }
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// The size a line ending in `{n}` or `{n+}` announces, and whether it is synchronising.
fn literal_at_end(line: &[u8]) -> Option<(usize, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let digits = &inner[open + 1..];
    let (digits, sync) = match digits.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (digits, true),
    };
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, sync))
}

/// Reads one line (up to LF); `None` at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

fn read_exact_vec(reader: &mut impl Read, size: usize) -> Option<Vec<u8>> {
    let mut data = vec![0u8; size];
    reader.read_exact(&mut data).ok()?;
    Some(data)
}

/// Tag and the upper-cased rest of a command line.
fn split_command(line: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(line);
    let (tag, rest) = text.split_once(' ').unwrap_or((&text, ""));
    (tag.to_string(), rest.trim_end().to_ascii_uppercase())
}

fn client_to_server(client: TcpStream, mut server: TcpStream, link: &Link) {
    let mut reader = BufReader::new(client);
    while let Some(first) = read_line(&mut reader) {
        let (tag, rest) = split_command(&first);
        let picked = link.fault.as_ref().filter(|fault| {
            !link.fired.load(Ordering::SeqCst)
                && rest.starts_with(fault.verb)
                && rest.contains(fault.needle)
                && link.seen.fetch_add(1, Ordering::SeqCst) >= fault.skip
        });
        let action = picked.map(|f| f.action.clone());
        if action.is_some() {
            link.fired.store(true, Ordering::SeqCst);
        }
        // Registered before the command goes on: the answer may come at once.
        if let Some(
            a @ (Action::InjectBeforeAnswer(_) | Action::ShiftUids | Action::AfterAnswer(_)),
        ) = &action
            && let Ok(mut answers) = link.answers.lock()
        {
            answers.insert(tag.clone(), a.clone());
        }
        // The whole command: its literals (a synchronising one only after the server's `+`).
        let mut line = first;
        loop {
            let literal = literal_at_end(&line);
            match &action {
                Some(Action::Refuse(_)) | Some(Action::Bye) | Some(Action::HugeLiteral(_)) => {
                    if let Some((size, false)) = literal {
                        // A non-synchronising literal follows at once: read it, drop it.
                        if read_exact_vec(&mut reader, size).is_none() {
                            return;
                        }
                        match read_line(&mut reader) {
                            Some(next) => {
                                line = next;
                                continue;
                            }
                            None => return,
                        }
                    }
                    break;
                }
                _ => {
                    if server.write_all(&line).is_err() {
                        return;
                    }
                    let Some((size, _)) = literal else { break };
                    let Some(data) = read_exact_vec(&mut reader, size) else {
                        return;
                    };
                    if server.write_all(&data).is_err() {
                        return;
                    }
                    match read_line(&mut reader) {
                        Some(next) => line = next,
                        None => return,
                    }
                }
            }
        }
        let Some(action) = action else { continue };
        match action {
            Action::Refuse(kind) => {
                let answer = format!("{tag} {kind} [UNAVAILABLE] refused by the test relay\r\n");
                if let Ok(mut client) = link.client.lock() {
                    let _ = client.write_all(answer.as_bytes());
                }
            }
            Action::Bye => {
                if let Ok(mut client) = link.client.lock() {
                    let _ = client.write_all(b"* BYE the test relay ends this session\r\n");
                    let _ = client.shutdown(Shutdown::Both);
                }
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            Action::HugeLiteral(size) => {
                let uid = rest
                    .split_whitespace()
                    .nth(2)
                    .and_then(|set| set.split([':', ',']).next())
                    .unwrap_or("1")
                    .to_string();
                if let Ok(mut client) = link.client.lock() {
                    let head = format!("* 1 FETCH (UID {uid} BODY[] {{{size}}}\r\n");
                    let _ = client.write_all(head.as_bytes());
                    let _ = client.write_all(&vec![b'x'; 65536]);
                }
                // The connection stays open: the client has to give up by itself.
            }
            Action::InjectBeforeAnswer(_) | Action::ShiftUids | Action::AfterAnswer(_) => {}
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// `UID <n>` → `UID <n + 100000>` in a response line.
fn shift_uids(line: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(line).into_owned();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("UID ") {
        out.push_str(&rest[..at + 4]);
        rest = &rest[at + 4..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(uid) = digits.parse::<u64>() {
            out.push_str(&(uid + 100_000).to_string());
            rest = &rest[digits.len()..];
        }
    }
    out.push_str(rest);
    out.into_bytes()
}

fn server_to_client(server: TcpStream, link: &Link) {
    let mut reader = BufReader::new(server);
    // Responses to commands whose answers are being shifted.
    let mut shifting = false;
    while let Some(mut line) = read_line(&mut reader) {
        // One whole response: the line and any literals with the lines after them.
        let mut response = Vec::new();
        loop {
            for (from, to) in &link.rewrite {
                let text = String::from_utf8_lossy(&line).replace(from.as_str(), to);
                line = text.into_bytes();
            }
            let literal = literal_at_end(&line);
            response.extend_from_slice(&line);
            let Some((size, _)) = literal else { break };
            let Some(data) = read_exact_vec(&mut reader, size) else {
                return;
            };
            response.extend_from_slice(&data);
            match read_line(&mut reader) {
                Some(next) => line = next,
                None => return,
            }
        }
        let (tag, _) = split_command(&response);
        let pending = link
            .answers
            .lock()
            .ok()
            .and_then(|mut answers| answers.remove(&tag));
        let shifted_any = link
            .answers
            .lock()
            .map(|a| a.values().any(|v| matches!(v, Action::ShiftUids)))
            .unwrap_or(false);
        shifting = shifting || shifted_any;
        let Ok(mut client) = link.client.lock() else {
            return;
        };
        match pending {
            Some(Action::InjectBeforeAnswer(lines)) => {
                let _ = client.write_all(&lines);
            }
            Some(Action::ShiftUids) => shifting = false,
            Some(Action::AfterAnswer(run)) => run(),
            _ => {}
        }
        let out = if shifting && tag == "*" {
            shift_uids(&response)
        } else {
            response
        };
        if client.write_all(&out).is_err() {
            return;
        }
    }
    if let Ok(client) = link.client.lock() {
        let _ = client.shutdown(Shutdown::Both);
    }
}

// ---- One channel between a Dovecot user and a Maildir ---------------------------------------

/// One message as compared: folder, Message-ID, body and flag letters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Mail {
    folder: String,
    id: String,
    body: String,
    flags: String,
}

fn parse_message(text: &str) -> (String, String) {
    let (id, body) = dovecot::message_id_and_body(text);
    (id, body.trim_end().to_string())
}

fn message_text(id: &str) -> String {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: test {id}\nMessage-ID: <{id}@test>\n\nbody of {id}\n"
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

static FILE_SEQ: AtomicU32 = AtomicU32::new(1);

/// A Dovecot user (far) and a Maildir (near) joined by channel `ex` over all folders.
struct World<'s> {
    server: &'s Server,
    user: String,
    dir: tempfile::TempDir,
}

/// The messages every case ends with, as `(folder, id, flags)`.
const CONVERGED: [(&str, &str, &str); 7] = [
    ("INBOX", "a", "FS"),
    ("INBOX", "b", "S"),
    ("INBOX", "c", ""),
    ("INBOX", "e", ""),
    ("INBOX", "g", ""),
    ("made", "f", ""),
    ("old", "h", ""),
];

impl<'s> World<'s> {
    fn new(server: &'s Server) -> World<'s> {
        let world = World {
            server,
            user: server.add_user(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::create_dir_all(world.near_root()).expect("near root");
        world
    }

    fn near_root(&self) -> PathBuf {
        self.dir.path().join("near")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("cfg")
    }

    /// Writes the config for an IMAP server on this port. One connection (`MaxConnections
    /// 1`): the relay's faults address commands by their place in one session, which
    /// mailbox pairs synchronized concurrently would make a matter of chance.
    fn write_config(&self, port: u16) {
        let text = format!(
            "IMAPAccount acc\nHost 127.0.0.1\nPort {port}\nTLSType None\nAuthMechs LOGIN\nUser {user}\nPass {USER_PASS}\nTimeout 20\nMaxConnections 1\n\n\
             IMAPStore far\nAccount acc\n\n\
             MaildirStore near\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n\n\
             Channel ex\nFar :far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\nSyncState {state}/\n",
            user = self.user,
            root = self.near_root().display(),
            state = self.dir.path().join("state").display(),
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    fn run(&self, port: u16, args: &[&str]) -> Run {
        self.write_config(port);
        let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .arg("ex")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run mailsync");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// A normal run straight to Dovecot, which must succeed.
    fn run_ok(&self) -> Run {
        let run = self.run(self.server.dovecot.port, &[]);
        assert_eq!(run.code, 0, "normal run failed:\n{run}");
        run
    }

    fn add_far(&self, folder: &str, id: &str, flags: &str) {
        if folder != "INBOX" {
            let _ = self
                .server
                .doveadm(&["mailbox", "create", "-u", &self.user, folder]);
        }
        let mut child = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(&self.server.dovecot.conf)
            .args(["save", "-u", &self.user, "-m", folder])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("doveadm save");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(message_text(id).as_bytes())
                .expect("message to doveadm");
        }
        assert!(child.wait().expect("doveadm save").success());
        if !flags.is_empty() {
            self.far_flags(folder, id, "add", flags);
        }
    }

    fn far_flags(&self, folder: &str, id: &str, how: &str, names: &str) {
        let header = format!("<{id}@test>");
        self.server.must(&[
            "flags",
            how,
            "-u",
            &self.user,
            names,
            "mailbox",
            folder,
            "header",
            "Message-ID",
            &header,
        ]);
    }

    fn add_near(&self, folder: &str, id: &str, flags: &str) {
        let dir = self.near_root().join(folder);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("maildir");
        }
        let n = FILE_SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("1700000000.M{n}P1.test:2,{flags}");
        std::fs::write(dir.join("cur").join(name), message_text(id)).expect("write message");
    }

    /// Sets the near flags of a message to these letters.
    fn near_set_flags(&self, folder: &str, id: &str, letters: &str) {
        let path = near_files(&self.near_root().join(folder))
            .into_iter()
            .find(|p| parse_message(&read_text(p)).0 == id)
            .unwrap_or_else(|| panic!("no near message {id} in {folder}"));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = name.split_once(":2,").map(|(b, _)| b).unwrap_or(&name);
        let target = self
            .near_root()
            .join(folder)
            .join("cur")
            .join(format!("{base}:2,{letters}"));
        std::fs::rename(&path, target).expect("rename");
    }

    /// The first sync and the changes every case then makes on both sides.
    fn prepare(&self) {
        self.add_far("INBOX", "a", "\\Seen");
        self.add_far("INBOX", "b", "");
        self.add_far("INBOX", "d", "");
        self.add_near("INBOX", "c", "");
        self.add_far("old", "h", "");
        self.run_ok();
        // Near → far: a flag, a new message, a new folder with a message.
        self.near_set_flags("INBOX", "a", "FS");
        self.add_near("INBOX", "e", "");
        self.add_near("made", "f", "");
        // Far → near: a flag, a deletion, a new message.
        self.far_flags("INBOX", "b", "add", "\\Seen");
        self.far_flags("INBOX", "d", "add", "\\Deleted");
        self.add_far("INBOX", "g", "");
    }

    fn far_mails(&self) -> Vec<Mail> {
        let Ok(out) = self.server.doveadm(&[
            "-f",
            "json",
            "fetch",
            "-u",
            &self.user,
            "mailbox flags text",
            "all",
        ]) else {
            return Vec::new();
        };
        let rows: Vec<BTreeMap<String, String>> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("doveadm json {e}: {out}"));
        let mut mails: Vec<Mail> = rows
            .iter()
            .map(|row| {
                let field = |name: &str| row.get(name).map(String::as_str).unwrap_or("");
                let (id, body) = parse_message(field("text"));
                Mail {
                    folder: field("mailbox").to_string(),
                    id,
                    body,
                    flags: dovecot::flag_letters(field("flags")),
                }
            })
            .collect();
        mails.sort();
        mails
    }

    fn near_mails(&self) -> Vec<Mail> {
        let mut mails = Vec::new();
        collect_near(&self.near_root(), "", &mut mails);
        mails.sort();
        mails
    }

    /// Compares both sides with [`CONVERGED`] (less `gone_far` on the far side); returns
    /// (compared, lost, duplicated).
    fn tally(&self, gone_far: &[(&str, &str)]) -> (usize, usize, usize) {
        let far = self.far_mails();
        let near = self.near_mails();
        let mut lost = 0;
        let mut duplicated = 0;
        for (n, side) in [&far, &near].into_iter().enumerate() {
            for (folder, id, _) in CONVERGED {
                if n == 0 && gone_far.contains(&(folder, id)) {
                    continue;
                }
                let count = side
                    .iter()
                    .filter(|m| m.folder == folder && m.id == id)
                    .count();
                if count == 0 {
                    lost += 1;
                }
                duplicated += count.saturating_sub(1);
            }
        }
        (CONVERGED.len() * 2 - gone_far.len(), lost, duplicated)
    }

    /// Both sides hold exactly the converged messages with their flags.
    fn assert_converged(&self, case: &str, gone_far: &[(&str, &str)]) {
        let want: Vec<Mail> = CONVERGED
            .iter()
            .map(|(folder, id, flags)| Mail {
                folder: folder.to_string(),
                id: id.to_string(),
                body: format!("body of {id}"),
                flags: flags.to_string(),
            })
            .collect();
        let want_far: Vec<Mail> = want
            .iter()
            .filter(|m| !gone_far.contains(&(m.folder.as_str(), m.id.as_str())))
            .cloned()
            .collect();
        assert_eq!(self.far_mails(), want_far, "{case}: far side (Dovecot)");
        assert_eq!(self.near_mails(), want, "{case}: near side (Maildir)");
    }
}

fn near_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            files.extend(entries.filter_map(|e| Some(e.ok()?.path())));
        }
    }
    files
}

fn collect_near(dir: &Path, prefix: &str, mails: &mut Vec<Mail>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir() || ["cur", "new", "tmp"].contains(&name.as_str()) {
            continue;
        }
        let folder = format!("{prefix}{name}");
        for file in near_files(&path) {
            let (id, body) = parse_message(&read_text(&file));
            let file_name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut flags: Vec<char> = file_name
                .split_once(":2,")
                .map(|(_, f)| f.chars().filter(char::is_ascii_uppercase).collect())
                .unwrap_or_default();
            flags.sort();
            mails.push(Mail {
                folder: folder.clone(),
                id,
                body,
                flags: flags.into_iter().collect(),
            });
        }
        collect_near(&path, &format!("{folder}/"), mails);
    }
}

fn read_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

// ---- Cases -----------------------------------------------------------------------------------

/// How the faulty run must end.
struct Expect {
    /// Exit code of the faulty run.
    code: i32,
    /// Each of these appears in its standard error (or output).
    texts: Vec<String>,
    /// Options of one more run after the normal one, for what the spec leaves to it (a
    /// message the server refused to store is retried only by a run with `Old`).
    then: Option<&'static [&'static str]>,
    /// What the next normal run must print instead of succeeding (exit code 1).
    normal_fails_with: Option<&'static str>,
    /// Messages deliberately gone from the far side (deleted there by another client).
    gone_far: Vec<(&'static str, &'static str)>,
}

fn fails_with(texts: &[&str]) -> Expect {
    Expect {
        code: 1,
        texts: texts.iter().map(|t| t.to_string()).collect(),
        then: None,
        normal_fails_with: None,
        gone_far: Vec::new(),
    }
}

/// Totals of one category.
#[derive(Default)]
struct Tally {
    tried: usize,
    compared: usize,
    lost: usize,
    duplicated: usize,
    failures: Vec<String>,
}

impl Tally {
    fn print_and_check(&self, category: &str) {
        println!(
            "RELIABILITY category={category} tried={} compared={} lost={} duplicated={}",
            self.tried, self.compared, self.lost, self.duplicated
        );
        assert!(
            self.failures.is_empty(),
            "{category}: {} case(s) failed:\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
        assert_eq!((self.lost, self.duplicated), (0, 0), "{category}");
    }
}

/// Makes a case's fault once its world exists (some act on the world's Dovecot user).
type FaultFor = Box<dyn FnOnce(&World) -> Option<Fault> + Send>;

fn fixed(fault: Option<Fault>) -> FaultFor {
    Box::new(move |_| fault)
}

/// Runs one case: prepare, the faulty run, a normal run, the comparison.
fn run_case(
    server: &Server,
    name: &str,
    fault: FaultFor,
    rewrite: Vec<(String, String)>,
    expect: Expect,
    tally: &Mutex<Tally>,
) {
    let world = World::new(server);
    world.prepare();
    let fault = fault(&world);
    let has_fault = fault.is_some();
    let relay = FaultRelay::start(server.dovecot.port, fault, rewrite);
    let faulty = world.run(relay.port, &[]);
    let mut problems = Vec::new();
    if has_fault && !relay.fired() {
        problems.push("the fault never fired (the command was not sent)".to_string());
    }
    if faulty.code != expect.code {
        problems.push(format!(
            "faulty run exit code {} (want {})",
            faulty.code, expect.code
        ));
    }
    let all = format!("{}{}", faulty.stdout, faulty.stderr);
    for text in &expect.texts {
        if !all.contains(text.as_str()) {
            problems.push(format!("faulty run does not say {text:?}"));
        }
    }
    drop(relay);
    let normal = world.run(server.dovecot.port, &[]);
    match expect.normal_fails_with {
        None if normal.code != 0 => {
            problems.push(format!("the next normal run failed:\n{normal}"));
        }
        Some(text) if normal.code != 1 || !normal.stderr.contains(text) => {
            problems.push(format!(
                "the next normal run does not fail with {text:?}:\n{normal}"
            ));
        }
        _ => {}
    }
    if let Some(args) = expect.then {
        let extra = world.run(server.dovecot.port, args);
        if extra.code != 0 {
            problems.push(format!("the run with {args:?} failed:\n{extra}"));
        }
    }
    let (compared, lost, duplicated) = world.tally(&expect.gone_far);
    let converged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        world.assert_converged(name, &expect.gone_far)
    }));
    if converged.is_err() {
        problems.push("the sides did not converge (see the panic above)".to_string());
    }
    let mut t = tally.lock().expect("tally");
    t.tried += 1;
    t.compared += compared;
    t.lost += lost;
    t.duplicated += duplicated;
    if !problems.is_empty() {
        t.failures.push(format!(
            "[{name}] {}\n=== faulty run\n{faulty}",
            problems.join("; ")
        ));
    }
}

/// The commands a run sends that the relay refuses, with what the error must name.
fn refusable_commands() -> Vec<(&'static str, Fault, Vec<&'static str>)> {
    vec![
        (
            "LOGIN",
            Fault::new("LOGIN", Action::Refuse("NO")),
            vec!["LOGIN"],
        ),
        (
            "LIST",
            Fault::new("LIST", Action::Refuse("NO")),
            vec!["LIST"],
        ),
        (
            "SELECT",
            Fault::new("SELECT", Action::Refuse("NO")).containing("INBOX"),
            vec!["SELECT", "store far, mailbox INBOX"],
        ),
        (
            "UID FETCH (load)",
            Fault::new("UID FETCH", Action::Refuse("NO")).containing("FLAGS"),
            vec!["UID FETCH", "store far, mailbox INBOX"],
        ),
        (
            "UID FETCH (body)",
            Fault::new("UID FETCH", Action::Refuse("NO")).containing("BODY.PEEK[]"),
            vec!["UID FETCH", "store far, mailbox INBOX"],
        ),
        (
            "APPEND",
            Fault::new("APPEND", Action::Refuse("NO")),
            vec!["APPEND", "store far, mailbox INBOX"],
        ),
        (
            "UID STORE",
            Fault::new("UID STORE", Action::Refuse("NO")),
            vec!["UID STORE 1 +FLAGS", "store far, mailbox INBOX"],
        ),
        (
            "EXPUNGE",
            Fault::new("UID EXPUNGE", Action::Refuse("NO")),
            vec!["UID EXPUNGE", "store far, mailbox INBOX"],
        ),
        (
            "CREATE",
            Fault::new("CREATE", Action::Refuse("NO")),
            vec!["CREATE", "store far, mailbox made"],
        ),
    ]
}

fn refusals(kind: &'static str, category: &str) {
    let server = Server::start();
    let tally = Mutex::new(Tally::default());
    thread::scope(|scope| {
        for (name, mut fault, texts) in refusable_commands() {
            fault.action = Action::Refuse(kind);
            let mut wanted: Vec<&str> = texts.clone();
            // The server's own words reach the user.
            wanted.push("refused by the test relay");
            let mut expect = fails_with(&wanted);
            if name == "UID STORE" && kind == "NO" {
                // The engine reports a refused flag change and carries on without marking
                // the run failed (the change is not recorded, so the next run makes it).
                expect.code = 0;
            }
            if name == "APPEND" {
                expect
                    .texts
                    .push("far side refuses to store message".into());
                expect.then = Some(&["-o"]);
            }
            let (server, tally) = (&server, &tally);
            scope.spawn(move || {
                run_case(
                    server,
                    &format!("{kind} to {name}"),
                    fixed(Some(fault)),
                    Vec::new(),
                    expect,
                    tally,
                )
            });
        }
    });
    tally.into_inner().expect("tally").print_and_check(category);
}

#[test]
fn no_to_each_command() {
    refusals("NO", "server_no");
}

#[test]
fn bad_to_each_command() {
    refusals("BAD", "server_bad");
}

/// Runs cases in parallel and prints the category's line.
type Case = (&'static str, FaultFor, Vec<(String, String)>, Expect);

fn run_cases(category: &str, cases: Vec<Case>) {
    let server = Server::start();
    let tally = Mutex::new(Tally::default());
    thread::scope(|scope| {
        for (name, fault, rewrite, expect) in cases {
            let (server, tally) = (&server, &tally);
            scope.spawn(move || run_case(server, name, fault, rewrite, expect, tally));
        }
    });
    tally.into_inner().expect("tally").print_and_check(category);
}

#[test]
fn bye_in_the_middle_of_a_session() {
    let bye = |verb: &'static str, needle: &'static str| {
        fixed(Some(Fault::new(verb, Action::Bye).containing(needle)))
    };
    let said = "unexpected BYE response: the test relay ends this session";
    run_cases(
        "server_bye",
        vec![
            ("BYE at LIST", bye("LIST", ""), vec![], fails_with(&[said])),
            (
                "BYE at SELECT",
                bye("SELECT", ""),
                vec![],
                fails_with(&[said]),
            ),
            (
                "BYE at UID FETCH (body)",
                bye("UID FETCH", "BODY.PEEK[]"),
                vec![],
                fails_with(&[said]),
            ),
            (
                "BYE at APPEND",
                bye("APPEND", ""),
                vec![],
                fails_with(&[said]),
            ),
            (
                "BYE at UID STORE",
                bye("UID STORE", ""),
                vec![],
                fails_with(&[said]),
            ),
            (
                "BYE at UID EXPUNGE",
                bye("UID EXPUNGE", ""),
                vec![],
                fails_with(&[said]),
            ),
        ],
    );
}

#[test]
fn malformed_and_unasked_for_responses() {
    let inject = |verb: &'static str, needle: &'static str, lines: &str| {
        fixed(Some(
            Fault::new(verb, Action::InjectBeforeAnswer(lines.as_bytes().to_vec()))
                .containing(needle),
        ))
    };
    let fine = || Expect {
        code: 0,
        ..fails_with(&[])
    };
    run_cases(
        "malformed_responses",
        vec![
            (
                "garbage line during the load",
                inject("UID FETCH", "FLAGS", "* 1 FETCH (UID \x01garbage\r\n"),
                vec![],
                fails_with(&["malformed response from 127.0.0.1"]),
            ),
            (
                "garbage line after SELECT",
                inject("SELECT", "", "this is no IMAP at all\r\n"),
                vec![],
                fails_with(&["malformed response from 127.0.0.1"]),
            ),
            (
                "a FETCH for a UID not asked for during the load",
                inject(
                    "UID FETCH",
                    "FLAGS",
                    "* 1 FETCH (UID 4000000 FLAGS (\\Seen))\r\n",
                ),
                vec![],
                fine(),
            ),
            (
                "a FETCH for a UID not asked for with a body",
                inject(
                    "UID FETCH",
                    "BODY.PEEK[]",
                    "* 2 FETCH (UID 4000001 FLAGS () BODY[] {12}\r\nSubject: x\r\n)\r\n",
                ),
                vec![],
                fails_with(&[
                    "UID 4000001 in reply to UID FETCH",
                    "store far, mailbox INBOX",
                ]),
            ),
            (
                "the asked message under a wrong UID",
                fixed(Some(
                    Fault::new("UID FETCH", Action::ShiftUids).containing("BODY.PEEK[]"),
                )),
                vec![],
                fails_with(&["in reply to UID FETCH", "store far, mailbox INBOX"]),
            ),
            (
                "an EXPUNGE for a message that does not exist",
                inject("UID FETCH", "FLAGS", "* 4000 EXPUNGE\r\n"),
                vec![],
                fine(),
            ),
        ],
    );
}

#[test]
fn oversized_literal_is_refused_at_its_announcement() {
    // 3 GB announced (over the 2 GiB limit), 64 KiB sent, and the connection held open:
    // the run must end by itself, naming the size and the UID, without reading the rest.
    run_cases(
        "oversized_literal",
        vec![(
            "3 GB literal",
            fixed(Some(
                Fault::new("UID FETCH", Action::HugeLiteral(3_000_000_000))
                    .containing("BODY.PEEK[]"),
            )),
            vec![],
            fails_with(&[
                "announced a literal of 3000000000 bytes, more than the limit of 2147483647 bytes",
                "FETCH (UID ",
            ]),
        )],
    );
}

#[test]
fn uidvalidity_changing_between_runs() {
    // A server that reports another UIDVALIDITY for the same mailboxes (same messages, same
    // UIDs): by the spec (sync-semantics §5) the pairs are re-confirmed by Message-ID and the
    // change is judged unfounded; the next run, seeing the true value again, recovers the
    // same way. Nothing is copied again, nothing is lost.
    let lie = vec![("[UIDVALIDITY 1".to_string(), "[UIDVALIDITY 2".to_string())];
    run_cases(
        "uidvalidity_change",
        vec![(
            "UIDVALIDITY reported differently",
            fixed(None),
            lie,
            Expect {
                code: 0,
                ..fails_with(&["Recovered from change of UIDVALIDITY"])
            },
        )],
    );
}

#[test]
fn mailbox_deleted_by_another_client_mid_sync() {
    // Folder `old` is deleted on Dovecot by another client right after mailsync selected it
    // (the relay holds the SELECT answer back until doveadm is done).
    let delete_old: FaultFor = Box::new(|world: &World| {
        // Without the side files of the last run, `old` is selected (with them, its unchanged
        // STATUS would spare the SELECT, and the deletion would only be seen by the next run).
        let state = world.dir.path().join("state");
        for entry in std::fs::read_dir(&state).expect("state folder").flatten() {
            if entry.file_name().to_string_lossy().ends_with(".mailsync") {
                std::fs::remove_file(entry.path()).expect("remove side file");
            }
        }
        let conf = world.server.dovecot.conf.clone();
        let user = world.user.clone();
        let delete: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let status = Command::new("/usr/bin/doveadm")
                .arg("-c")
                .arg(&conf)
                .args(["mailbox", "delete", "-u", &user, "old"])
                .status();
            assert!(status.is_ok_and(|s| s.success()), "doveadm mailbox delete");
        });
        Some(Fault::new("SELECT", Action::AfterAnswer(delete)).containing("OLD"))
    });
    run_cases(
        "mailbox_deleted",
        vec![(
            "old deleted after SELECT",
            delete_old,
            vec![],
            Expect {
                // The next run refuses the pair as mbsync does (sync-semantics: a box that
                // existed is not created again without the user's say), and deletes nothing:
                // the near copy of the deleted folder stays.
                normal_fails_with: Some("far side box old cannot be opened anymore"),
                gone_far: vec![("old", "h")],
                ..fails_with(&["Mailbox was deleted", "store far, mailbox old"])
            },
        )],
    );
}

#[test]
fn uidvalidity_genuinely_changed_is_refused_without_touching_mail() {
    // Folder `old` is deleted and made again on Dovecot (a new UIDVALIDITY) with another
    // message under the UID `h` had: the change is genuine (sync-semantics §5), so the pair is
    // refused with the spec's message on every run, and neither side is changed.
    let server = Server::start();
    let world = World::new(&server);
    world.prepare();
    world.run_ok();
    world.assert_converged("before the change", &[]);
    world
        .server
        .must(&["mailbox", "delete", "-u", &world.user, "old"]);
    world.add_far("old", "other", "");
    world.add_far("old", "h", "");
    let far_before = world.far_mails();
    let near_before = world.near_mails();
    let mut tally = Tally::default();
    for attempt in 0..2 {
        let run = world.run(server.dovecot.port, &[]);
        tally.tried += 1;
        if run.code != 1
            || !run
                .stderr
                .contains("far side box old (at UID 1): UIDVALIDITY genuinely changed.")
        {
            tally.failures.push(format!("run {attempt}: {run}"));
        }
        let (far, near) = (world.far_mails(), world.near_mails());
        tally.compared += far.len() + near.len();
        let lost = far_before.iter().filter(|m| !far.contains(m)).count()
            + near_before.iter().filter(|m| !near.contains(m)).count();
        tally.lost += lost;
        tally.duplicated +=
            (far.len() + near.len()).saturating_sub(far_before.len() + near_before.len());
    }
    tally.print_and_check("uidvalidity_genuine");
}

/// The far UID → flag letters of every entry in the state files of a world.
fn state_flags(world: &World) -> BTreeMap<u32, String> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(world.dir.path().join("state")) else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || name.ends_with(".mailsync") || name.ends_with(".journal") {
            continue;
        }
        for line in read_text(&entry.path()).lines() {
            let words: Vec<&str> = line.split(' ').collect();
            if let [far, near, ..] = words[..]
                && let (Ok(far), Ok(_)) = (far.parse::<u32>(), near.parse::<u32>())
            {
                found.insert(far, words.get(2).unwrap_or(&"").to_string());
            }
        }
    }
    found
}

/// Two sets of flag changes go as two pipelined `UID STORE`s; the relay refuses the one
/// adding `\Flagged`. Its messages are neither changed nor recorded (the run still ends
/// with exit code 0, naming the refusal); the other set's are both. The next run stores
/// exactly the refused set.
#[test]
fn one_refused_store_set_of_two_is_retried_alone() {
    let server = Server::start();
    let world = World::new(&server);
    for id in ["p", "q", "r", "s"] {
        world.add_far("INBOX", id, "");
    }
    world.run_ok();
    assert_eq!(
        state_flags(&world).values().cloned().collect::<Vec<_>>(),
        vec!["", "", "", ""]
    );
    world.near_set_flags("INBOX", "p", "F");
    world.near_set_flags("INBOX", "q", "F");
    world.near_set_flags("INBOX", "r", "R");
    world.near_set_flags("INBOX", "s", "R");
    let relay = FaultRelay::start(
        server.dovecot.port,
        Some(Fault::new("UID STORE", Action::Refuse("NO")).containing("\\FLAGGED")),
        Vec::new(),
    );
    let faulty = world.run(relay.port, &["-Dn"]);
    assert!(
        relay.fired(),
        "no STORE adding \\Flagged was seen:\n{faulty}"
    );
    drop(relay);
    assert_eq!(faulty.code, 0, "{faulty}");
    let all = format!("{}{}", faulty.stdout, faulty.stderr);
    assert!(all.contains("refused by the test relay"), "{faulty}");
    // Both STOREs were written before the first answer came: they were pipelined.
    let stores: Vec<&str> = all
        .lines()
        .filter(|l| l.contains(">>> ") && l.contains("UID STORE"))
        .collect();
    assert_eq!(stores.len(), 2, "{faulty}");
    assert!(
        stores.iter().any(|l| l.contains("in progress")),
        "the second STORE waited for the first:\n{faulty}"
    );
    let far_flags = |world: &World| -> BTreeMap<String, String> {
        world
            .far_mails()
            .into_iter()
            .map(|m| (m.id, m.flags))
            .collect()
    };
    let expected = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        far_flags(&world),
        expected(&[("p", ""), ("q", ""), ("r", "R"), ("s", "R")])
    );
    // UIDs 1–4 are p, q, r, s: the refused set is not recorded, the other one is.
    let recorded: Vec<String> = state_flags(&world).values().cloned().collect();
    assert_eq!(recorded, vec!["", "", "R", "R"], "{faulty}");

    let next = world.run(server.dovecot.port, &["-Ds"]);
    assert_eq!(next.code, 0, "{next}");
    let retried: Vec<&str> = next
        .stdout
        .lines()
        .chain(next.stderr.lines())
        .filter(|l| l.contains("pass 4: far side UID"))
        .collect();
    assert_eq!(retried.len(), 2, "{next}");
    assert!(
        retried[0].ends_with("far side UID 1: add 'F', remove ''"),
        "{next}"
    );
    assert!(
        retried[1].ends_with("far side UID 2: add 'F', remove ''"),
        "{next}"
    );
    assert_eq!(
        far_flags(&world),
        expected(&[("p", "F"), ("q", "F"), ("r", "R"), ("s", "R")])
    );
    let recorded: Vec<String> = state_flags(&world).values().cloned().collect();
    assert_eq!(recorded, vec!["F", "F", "R", "R"], "{next}");
}
