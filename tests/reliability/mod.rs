//! Shared harness of the reliability tests (`tests/crash_kill.rs`, `tests/fault_proxy.rs`):
//! a seeded random generator whose seed is printed (so a failure can be replayed), channels
//! between a Maildir and a Dovecot user (or two Maildirs) run through the real `mailsync`
//! binary, a model of what each side must hold (every message by Message-ID with a body hash
//! and its flags), and the comparison of both sides with the model and with the state file.
//!
//! Every test prints one machine-readable line per category,
//! `RELIABILITY|<category>|<kills/faults tried>|<messages compared>|<lost>|<duplicated>`,
//! which `scripts/long` collects into its table.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::dovecot::Dovecot;

pub mod proxy;

/// Password of the extra Dovecot users.
pub const USER_PASS: &str = "pw";

/// True in the suite's long mode (`MAILSYNC_LONG` set and not `0`).
pub fn long_mode() -> bool {
    std::env::var("MAILSYNC_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A count for the current mode: `MAILSYNC_<name>` if set, else `long` in long mode, else
/// `short`.
pub fn count(name: &str, short: usize, long: usize) -> usize {
    if let Ok(text) = std::env::var(format!("MAILSYNC_{name}"))
        && let Ok(n) = text.trim().parse()
    {
        return n;
    }
    if long_mode() { long } else { short }
}

/// SplitMix64: small, seeded, good enough to pick instants and offsets.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `MAILSYNC_SEED` (to replay a failure) or from the clock; the seed is
    /// printed with the label.
    pub fn from_env(label: &str) -> Rng {
        let seed = std::env::var("MAILSYNC_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{label}: seed {seed} (replay with MAILSYNC_SEED={seed})");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A Dovecot with many prepared users (one per channel side).
pub struct Server {
    pub dovecot: Dovecot,
    next_user: AtomicU32,
    max_users: u32,
}

impl Server {
    pub fn start(max_users: u32) -> Server {
        let dovecot = Dovecot::start();
        dovecot.add_users(max_users, USER_PASS);
        Server {
            dovecot,
            next_user: AtomicU32::new(1),
            max_users,
        }
    }

    pub fn add_user(&self) -> String {
        let n = self.next_user.fetch_add(1, Ordering::SeqCst);
        assert!(n <= self.max_users, "more than {} users", self.max_users);
        format!("u{n}")
    }

    pub fn doveadm(&self, args: &[&str]) -> Result<String, String> {
        self.dovecot.try_doveadm(args)
    }

    pub fn must(&self, args: &[&str]) -> String {
        self.doveadm(args).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// One side of a channel.
#[derive(Clone, Debug)]
pub enum Side {
    /// A Maildir store rooted here; the mailbox is `<root>/INBOX`.
    Maildir(PathBuf),
    /// A Dovecot user; the mailbox is its INBOX.
    Imap(String),
}

/// One message found on a side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub body_hash: u64,
    /// Flag letters among D F R S, sorted.
    pub flags: String,
    /// UID on that side (IMAP UID, or the `,U=` of a Maildir file name; 0 if none).
    pub uid: u32,
}

/// FNV-1a of the body with CRLF turned into LF and trailing line ends dropped.
pub fn body_hash(body: &str) -> u64 {
    let normalized = body.replace("\r\n", "\n");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in normalized.trim_end().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Message-ID (without `<…@crash>`) and body of a message text.
pub fn parse_message(text: &str) -> (String, String) {
    crate::dovecot::message_id_and_body(text)
}

pub fn message_text(id: &str, body: &str) -> String {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: crash test {id}\nMessage-ID: <{id}@crash>\n\n{body}"
    )
}

fn sorted_letters(letters: impl Iterator<Item = char>) -> String {
    let mut v: Vec<char> = letters.filter(|c| "DFRS".contains(*c)).collect();
    v.sort();
    v.dedup();
    v.into_iter().collect()
}

/// The synchronized letters this test tracks (`DFRS`) of IMAP flags.
fn imap_flag_letters(text: &str) -> String {
    sorted_letters(crate::dovecot::flag_letters(text).chars())
}

/// IMAP flag names of the tracked letters, blank-separated.
fn imap_flag_names(letters: &str) -> String {
    crate::dovecot::flag_names(&sorted_letters(letters.chars())).join(" ")
}

static MAILDIR_SEQ: AtomicU32 = AtomicU32::new(1);

impl Side {
    pub fn kind(&self) -> &'static str {
        match self {
            Side::Maildir(_) => "Maildir",
            Side::Imap(_) => "IMAP",
        }
    }

    fn inbox(root: &Path) -> PathBuf {
        root.join("INBOX")
    }

    /// Adds a message as another client would.
    pub fn add(&self, server: Option<&Server>, id: &str, body: &str, flags: &str) {
        let text = message_text(id, body);
        match self {
            Side::Maildir(root) => {
                let dir = Side::inbox(root);
                for sub in ["cur", "new", "tmp"] {
                    std::fs::create_dir_all(dir.join(sub)).expect("maildir");
                }
                let n = MAILDIR_SEQ.fetch_add(1, Ordering::SeqCst);
                let tmp = dir.join("tmp").join(format!("t{n}"));
                std::fs::write(&tmp, text).expect("write message");
                let name = format!("1700000000.M{n}P{}.crashtest:2,{flags}", std::process::id());
                std::fs::rename(tmp, dir.join("cur").join(name)).expect("deliver message");
            }
            Side::Imap(user) => {
                let server = server.expect("IMAP side needs the server");
                let mut child = Command::new("/usr/bin/doveadm")
                    .arg("-c")
                    .arg(&server.dovecot.conf)
                    .args(["save", "-u", user, "-m", "INBOX"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("doveadm save");
                if let Some(mut stdin) = child.stdin.take() {
                    stdin
                        .write_all(text.as_bytes())
                        .expect("message to doveadm");
                }
                assert!(child.wait().expect("doveadm save").success());
                if !flags.is_empty() {
                    self.set_flags(Some(server), id, flags);
                }
            }
        }
    }

    /// Gives the message exactly these flags (letters among D F R S).
    pub fn set_flags(&self, server: Option<&Server>, id: &str, flags: &str) {
        match self {
            Side::Maildir(root) => {
                for path in maildir_files(root) {
                    if parse_message(&read_text(&path)).0 != id {
                        continue;
                    }
                    let name = file_name(&path);
                    let (base, old) = name.split_once(":2,").unwrap_or((&name, ""));
                    // Letters other than ours (none expected) are kept.
                    let kept = old.chars().filter(|c| !"DFRS".contains(*c));
                    let mut letters: Vec<char> = kept.chain(flags.chars()).collect();
                    letters.sort();
                    let target = Side::inbox(root).join("cur").join(format!(
                        "{base}:2,{}",
                        letters.into_iter().collect::<String>()
                    ));
                    std::fs::rename(&path, target).expect("rename for flags");
                }
            }
            Side::Imap(user) => {
                let server = server.expect("IMAP side needs the server");
                let header = format!("<{id}@crash>");
                let all = imap_flag_names("DFRS");
                server.must(&[
                    "flags",
                    "remove",
                    "-u",
                    user,
                    &all,
                    "mailbox",
                    "INBOX",
                    "header",
                    "Message-ID",
                    &header,
                ]);
                if !flags.is_empty() {
                    server.must(&[
                        "flags",
                        "add",
                        "-u",
                        user,
                        &imap_flag_names(flags),
                        "mailbox",
                        "INBOX",
                        "header",
                        "Message-ID",
                        &header,
                    ]);
                }
            }
        }
    }

    /// Removes the message at once (another client's expunge).
    pub fn delete(&self, server: Option<&Server>, id: &str) {
        match self {
            Side::Maildir(root) => {
                for path in maildir_files(root) {
                    if parse_message(&read_text(&path)).0 == id {
                        std::fs::remove_file(path).expect("remove message");
                    }
                }
            }
            Side::Imap(user) => {
                let server = server.expect("IMAP side needs the server");
                let header = format!("<{id}@crash>");
                server.must(&[
                    "expunge",
                    "-u",
                    user,
                    "mailbox",
                    "INBOX",
                    "header",
                    "Message-ID",
                    &header,
                ]);
            }
        }
    }

    /// Every message of the mailbox (empty when it does not exist yet).
    pub fn list(&self, server: Option<&Server>) -> Vec<Found> {
        match self {
            Side::Maildir(root) => maildir_files(root)
                .iter()
                .map(|path| {
                    let (id, body) = parse_message(&read_text(path));
                    let name = file_name(path);
                    let flags = name
                        .split_once(":2,")
                        .map(|(_, f)| sorted_letters(f.chars()))
                        .unwrap_or_default();
                    let uid = name
                        .split_once(",U=")
                        .and_then(|(_, rest)| {
                            let digits: String =
                                rest.chars().take_while(char::is_ascii_digit).collect();
                            digits.parse().ok()
                        })
                        .unwrap_or(0);
                    Found {
                        id,
                        body_hash: body_hash(&body),
                        flags,
                        uid,
                    }
                })
                .collect(),
            Side::Imap(user) => {
                let server = server.expect("IMAP side needs the server");
                let Ok(out) = server.doveadm(&[
                    "-f",
                    "json",
                    "fetch",
                    "-u",
                    user,
                    "uid flags text",
                    "mailbox",
                    "INBOX",
                    "all",
                ]) else {
                    return Vec::new();
                };
                let rows: Vec<BTreeMap<String, String>> = serde_json::from_str(&out)
                    .unwrap_or_else(|e| panic!("doveadm json {e}: {out}"));
                rows.iter()
                    .map(|row| {
                        let field = |name: &str| row.get(name).map(String::as_str).unwrap_or("");
                        let (id, body) = parse_message(field("text"));
                        Found {
                            id,
                            body_hash: body_hash(&body),
                            flags: imap_flag_letters(field("flags")),
                            uid: field("uid").parse().unwrap_or(0),
                        }
                    })
                    .collect()
            }
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn maildir_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(entries) = std::fs::read_dir(Side::inbox(root).join(sub)) {
            files.extend(entries.filter_map(|e| Some(e.ok()?.path())));
        }
    }
    files.sort();
    files
}

fn read_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// What one message must look like on both sides once a run completed.
#[derive(Clone, Debug)]
pub struct Expected {
    /// The side (0 far, 1 near) where it was added and where its flags change.
    pub owner: usize,
    pub body_hash: u64,
    pub flags: String,
}

/// Totals of the comparisons made by a test.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Kills or faults actually injected.
    pub tried: u64,
    /// Messages compared (each expected message, once per side, per check).
    pub compared: u64,
    /// Expected messages missing on a side.
    pub lost: u64,
    /// Extra copies of a message on a side.
    pub duplicated: u64,
    /// Everything else that was wrong (flags, deleted mail back, state), described.
    pub problems: Vec<String>,
}

impl Tally {
    /// Prints the machine-readable line `scripts/long` collects.
    pub fn print(&self, category: &str) {
        println!(
            "RELIABILITY|{category}|{}|{}|{}|{}",
            self.tried, self.compared, self.lost, self.duplicated
        );
    }

    /// Fails the test unless nothing was lost, duplicated or otherwise wrong.
    pub fn assert_clean(&self, category: &str, seed_hint: &str) {
        assert!(
            self.lost == 0 && self.duplicated == 0 && self.problems.is_empty(),
            "{category}: lost {}, duplicated {}, problems ({}):\n{}\n{seed_hint}",
            self.lost,
            self.duplicated,
            self.problems.len(),
            self.problems
                .iter()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// How the channel synchronizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `Sync Pull`: far changes reach near.
    Pull,
    /// `Sync Push`: near changes reach far.
    Push,
    /// `Sync All`: both ways.
    Both,
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Exit code; `None` when it was killed.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// One channel `ex` between two sides in a temporary folder, and the model of its mailbox.
pub struct World<'s> {
    pub server: Option<&'s Server>,
    pub dir: tempfile::TempDir,
    /// `[far, near]`.
    pub sides: [Side; 2],
    pub direction: Direction,
    /// Messages that must be on both sides.
    pub expected: BTreeMap<String, Expected>,
    /// Messages deleted by "another client": on neither side once synced.
    pub deleted: BTreeSet<String>,
    next_id: u32,
}

impl<'s> World<'s> {
    /// `far_imap`/`near_imap`: which sides are Dovecot users (the others are Maildirs).
    pub fn new(
        server: Option<&'s Server>,
        far_imap: bool,
        near_imap: bool,
        direction: Direction,
    ) -> World<'s> {
        let dir = tempfile::tempdir().expect("temp dir");
        let make = |imap: bool, label: &str| {
            if imap {
                Side::Imap(server.expect("server for an IMAP side").add_user())
            } else {
                let root = dir.path().join(label);
                std::fs::create_dir_all(&root).expect("maildir root");
                Side::Maildir(root)
            }
        };
        let sides = [make(far_imap, "far"), make(near_imap, "near")];
        let world = World {
            server,
            dir,
            sides,
            direction,
            expected: BTreeMap::new(),
            deleted: BTreeSet::new(),
            next_id: 1,
        };
        if let Some(server) = server {
            world.write_config(&default_account_lines(server), "");
        } else {
            world.write_config("", "");
        }
        world
    }

    /// Writes the config; `account_lines` go into every IMAPAccount (host, port, TLS, …),
    /// `channel_extra` into the channel.
    pub fn write_config(&self, account_lines: &str, channel_extra: &str) {
        let mut text = String::new();
        for (side, label) in [(&self.sides[0], "far"), (&self.sides[1], "near")] {
            match side {
                Side::Imap(user) => text.push_str(&format!(
                    "IMAPAccount acc_{label}\nUser {user}\nPass {USER_PASS}\n{account_lines}\nIMAPStore {label}\nAccount acc_{label}\n\n"
                )),
                Side::Maildir(root) => text.push_str(&format!(
                    "MaildirStore {label}\nPath {root}/\nInbox {root}/INBOX\n\n",
                    root = root.display()
                )),
            }
        }
        let sync = match self.direction {
            Direction::Pull => "Pull",
            Direction::Push => "Push",
            Direction::Both => "All",
        };
        text.push_str(&format!(
            "Channel ex\nFar :far:INBOX\nNear :near:INBOX\nSyncState {}/state/\nCreate Both\nSync {sync}\nExpunge Both\n{channel_extra}\n",
            self.dir.path().display(),
        ));
        std::fs::write(self.dir.path().join("cfg"), text).expect("config");
    }

    /// Starts `mailsync sync -c cfg ex` (output to files, so that it never waits on a pipe).
    pub fn spawn(&self) -> Child {
        self.spawn_with(&[])
    }

    /// Like [`World::spawn`] with extra options before the channel name.
    pub fn spawn_with(&self, options: &[&str]) -> Child {
        let out = std::fs::File::create(self.dir.path().join("run.out")).expect("run.out");
        let err = std::fs::File::create(self.dir.path().join("run.err")).expect("run.err");
        Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-c")
            .arg(self.dir.path().join("cfg"))
            .args(options)
            .arg("ex")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start mailsync")
    }

    fn finish(&self, mut child: Child, started: Instant, killed: bool) -> Run {
        if killed {
            let _ = child.kill();
        }
        let status = child.wait().expect("wait for mailsync");
        Run {
            code: if killed { None } else { status.code() },
            stdout: read_text(&self.dir.path().join("run.out")),
            stderr: read_text(&self.dir.path().join("run.err")),
            elapsed: started.elapsed(),
        }
    }

    /// One run to its end.
    pub fn run(&self) -> Run {
        self.run_with(&[])
    }

    /// One run with extra options to its end.
    pub fn run_with(&self, options: &[&str]) -> Run {
        let started = Instant::now();
        let child = self.spawn_with(options);
        self.finish(child, started, false)
    }

    /// One run killed with SIGKILL after `delay` unless it ended before (then `code` is set).
    pub fn run_killed_after(&self, delay: Duration) -> Run {
        let started = Instant::now();
        let mut child = self.spawn();
        let deadline = started + delay;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return self.finish(child, started, false);
            }
            let now = Instant::now();
            if now >= deadline {
                return self.finish(child, started, true);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(2)));
        }
    }

    /// Runs until one exits 0 (at most `attempts` runs); returns the runs that failed and the
    /// successful one, or an error with the last run.
    pub fn run_to_completion(&self, attempts: usize) -> Result<(Vec<Run>, Run), String> {
        let mut failed = Vec::new();
        for _ in 0..attempts {
            let run = self.run();
            if run.code == Some(0) {
                return Ok((failed, run));
            }
            failed.push(run);
        }
        Err(format!(
            "no run of {attempts} completed; last:\n{}",
            failed.last().map(ToString::to_string).unwrap_or_default()
        ))
    }

    /// A fresh Message-ID.
    pub fn new_id(&mut self) -> String {
        let id = format!("m{}", self.next_id);
        self.next_id += 1;
        id
    }

    /// The sides where changes are made: the source of a one-way channel, both otherwise.
    pub fn writable_sides(&self) -> Vec<usize> {
        match self.direction {
            Direction::Pull => vec![0],
            Direction::Push => vec![1],
            Direction::Both => vec![0, 1],
        }
    }

    /// Adds a new message on `side` (a mix of small and larger bodies) and records it.
    pub fn add_message(&mut self, rng: &mut Rng, side: usize) -> String {
        let id = self.new_id();
        let lines = match rng.below(10) {
            0 => 2000 + rng.below(2000),
            1..=3 => 50 + rng.below(300),
            _ => 1 + rng.below(5),
        };
        let mut body = String::new();
        for n in 0..lines {
            body.push_str(&format!(
                "{id} line {n} {}\n",
                "y".repeat(40 + (n % 30) as usize)
            ));
        }
        let flags = random_flags(rng);
        self.sides[side].add(self.server, &id, &body, &flags);
        self.expected.insert(
            id.clone(),
            Expected {
                owner: side,
                body_hash: body_hash(&body),
                flags,
            },
        );
        id
    }

    /// Random changes made by "another client" on the writable sides: new messages, flag
    /// changes and deletions of messages owned by that side.
    pub fn mutate(&mut self, rng: &mut Rng) {
        let sides = self.writable_sides();
        let adds = 1 + rng.below(6);
        for _ in 0..adds {
            let side = *rng.pick(&sides);
            self.add_message(rng, side);
        }
        let ids: Vec<String> = self.expected.keys().cloned().collect();
        for id in ids {
            let Some(owner) = self.expected.get(&id).map(|e| e.owner) else {
                continue;
            };
            if !sides.contains(&owner) {
                continue;
            }
            match rng.below(100) {
                0..=9 => {
                    let flags = random_flags(rng);
                    self.sides[owner].set_flags(self.server, &id, &flags);
                    if let Some(e) = self.expected.get_mut(&id) {
                        e.flags = flags;
                    }
                }
                10..=14 => {
                    self.sides[owner].delete(self.server, &id);
                    self.expected.remove(&id);
                    self.deleted.insert(id);
                }
                _ => {}
            }
        }
    }

    /// Compares both sides with the model and the state file, adding to `tally`.
    pub fn verify(&self, tally: &mut Tally, context: &str) {
        let lists = [
            self.sides[0].list(self.server),
            self.sides[1].list(self.server),
        ];
        for (side, found) in lists.iter().enumerate() {
            let label = ["far", "near"][side];
            let mut by_id: BTreeMap<&str, Vec<&Found>> = BTreeMap::new();
            for f in found {
                by_id.entry(f.id.as_str()).or_default().push(f);
            }
            for (id, want) in &self.expected {
                tally.compared += 1;
                let copies = by_id.get(id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                match copies {
                    [] => {
                        tally.lost += 1;
                        tally
                            .problems
                            .push(format!("{context}: {id} lost on {label}"));
                    }
                    [one] => {
                        if one.body_hash != want.body_hash {
                            tally.lost += 1;
                            tally
                                .problems
                                .push(format!("{context}: {id} on {label} has another body"));
                        }
                        if one.flags != want.flags {
                            tally.problems.push(format!(
                                "{context}: {id} on {label} has flags '{}', want '{}'",
                                one.flags, want.flags
                            ));
                        }
                    }
                    more => {
                        tally.duplicated += (more.len() - 1) as u64;
                        tally
                            .problems
                            .push(format!("{context}: {id} {} times on {label}", more.len()));
                    }
                }
            }
            for (id, copies) in &by_id {
                if self.expected.contains_key(*id) {
                    continue;
                }
                if self.deleted.contains(*id) {
                    tally.problems.push(format!(
                        "{context}: {id} was deleted but is on {label} ({} copies)",
                        copies.len()
                    ));
                } else {
                    tally.duplicated += copies.len() as u64;
                    tally
                        .problems
                        .push(format!("{context}: unknown message '{id}' on {label}"));
                }
            }
        }
        self.check_state(&lists, tally, context);
    }

    /// The state file pairs exactly the messages on both sides, each pair the same message.
    fn check_state(&self, lists: &[Vec<Found>; 2], tally: &mut Tally, context: &str) {
        let state_dir = self.dir.path().join("state");
        let Ok(entries) = std::fs::read_dir(&state_dir) else {
            if !self.expected.is_empty() {
                tally.problems.push(format!(
                    "{context}: no state folder {}",
                    state_dir.display()
                ));
            }
            return;
        };
        let mut state_text = None;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A journal without `.new` may stay after a completed run that wrote nothing (a
            // killed run had committed but not deleted it): it is ignored by design (sync
            // spec §1.5). A `.new` means an unfinished commit.
            if name.ends_with(".new") {
                tally
                    .problems
                    .push(format!("{context}: {name} left behind by a completed run"));
            } else if !name.ends_with(".lock") && !name.ends_with(".journal") {
                state_text = Some(read_text(&entry.path()));
            }
        }
        let Some(text) = state_text else {
            if !self.expected.is_empty() {
                tally.problems.push(format!("{context}: no state file"));
            }
            return;
        };
        let uid_to_id = |side: usize| -> BTreeMap<u32, &str> {
            lists[side]
                .iter()
                .filter(|f| f.uid != 0)
                .map(|f| (f.uid, f.id.as_str()))
                .collect()
        };
        let far_ids = uid_to_id(0);
        let near_ids = uid_to_id(1);
        let body = text.split_once("\n\n").map(|(_, b)| b).unwrap_or("");
        let mut paired = BTreeSet::new();
        for line in body.lines() {
            let mut parts = line.split(' ');
            let far: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let near: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let far_id = far_ids.get(&far);
            let near_id = near_ids.get(&near);
            match (far_id, near_id) {
                // An entry whose messages are gone on both sides: a run that only propagated
                // deletions does not rewrite the state file (as mbsync, sync spec §3.2 "Not
                // journalled"); the next run drops the entry.
                (None, None) => {}
                (Some(a), Some(b)) if a == b => {
                    if !paired.insert(a.to_string()) {
                        tally
                            .problems
                            .push(format!("{context}: state pairs {a} twice"));
                    }
                }
                _ => tally.problems.push(format!(
                    "{context}: state entry '{line}' pairs {far_id:?} with {near_id:?}"
                )),
            }
        }
        for id in self.expected.keys() {
            if !paired.contains(id) {
                tally
                    .problems
                    .push(format!("{context}: {id} is not paired in the state file"));
            }
        }
    }
}

/// Random flags among S F R (Draft left out: it is rarely changed and makes no difference).
pub fn random_flags(rng: &mut Rng) -> String {
    let mut flags = String::new();
    for letter in ['F', 'R', 'S'] {
        if rng.chance(40) {
            flags.push(letter);
        }
    }
    flags
}

/// Account lines for a direct plain connection to the server.
pub fn default_account_lines(server: &Server) -> String {
    account_lines_for_port(server.dovecot.port, 10)
}

/// Account lines for a plain, unencrypted connection to 127.0.0.1 on `port` (a relay or the
/// server) with this `Timeout`.
pub fn account_lines_for_port(port: u16, timeout: u32) -> String {
    format!("Host 127.0.0.1\nPort {port}\nTLSType None\nAuthMechs PLAIN\nTimeout {timeout}\n")
}
