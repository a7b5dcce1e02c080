//! Shared harness for the end-to-end sync tests: builds the common setup of §9.0 of the sync
//! specification (config, far/near Maildirs, state file) in a temporary directory, runs the
//! binary under test on it, and takes normalised snapshots of mailboxes, state and journal so
//! that the tests can compare them byte for byte with the worked examples.
//!
//! The binary under test is mailsync (`mailsync sync -c <dir>/cfg … ex`), or any
//! mbsync-compatible binary named by `MAILSYNC_TEST_MBSYNC` (then `<binary> -c <dir>/cfg … ex`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

pub mod example;

/// Name of the far mailbox directory below the test directory.
pub const FAR: &str = "farbox";
/// Name of the near mailbox directory below the test directory.
pub const NEAR: &str = "nearbox";
/// Path of the state file relative to the test directory (`SyncState *`).
pub const STATE: &str = "nearbox/.mbsyncstate";
/// The all-zero summary line.
pub const ZERO_SUMMARY: &str = "Channels: 1    Boxes: 1    Far: +0 *0 #0 -0    Near: +0 *0 #0 -0";

/// The standard message content of §9.0 for subject `subj`.
pub fn std_msg(subj: &str) -> String {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: {subj}\n\
         Message-ID: <{subj}@example.org>\n\nBody of {subj}\n"
    )
}

/// A standard message whose body is `lines` lines of 70 `x` (the "big" messages of §9).
pub fn big_msg(subj: &str, lines: usize) -> String {
    let mut text = format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: {subj}\n\
         Message-ID: <{subj}@example.org>\n\n"
    );
    for _ in 0..lines {
        text.push_str(&"x".repeat(70));
        text.push('\n');
    }
    text
}

/// Inserts the abstracted `X-TUID: <tuid>` line before the empty line ending the header, as a
/// copy made by the synchroniser carries it (compare with normalised snapshots).
pub fn with_tuid(content: &str) -> String {
    with_header(content, "X-TUID: <tuid>")
}

/// Inserts `line` as the last header line (before the empty line ending the header).
pub fn with_header(content: &str, line: &str) -> String {
    match content.find("\n\n") {
        Some(pos) => format!("{}\n{}\n{}", &content[..pos], line, &content[pos + 1..]),
        None => format!("{content}{line}\n"),
    }
}

/// The (possibly overridden) command under test.
fn binary_under_test() -> (PathBuf, bool) {
    match std::env::var_os("MAILSYNC_TEST_MBSYNC") {
        Some(path) if !path.is_empty() => (PathBuf::from(path), false),
        _ => (PathBuf::from(env!("CARGO_BIN_EXE_mailsync")), true),
    }
}

/// Whether stdout checks are switched off (`MAILSYNC_TEST_IGNORE_STDOUT`, see
/// [`RunResult::assert_stdout`]).
pub fn ignoring_stdout() -> bool {
    std::env::var_os("MAILSYNC_TEST_IGNORE_STDOUT").is_some_and(|v| !v.is_empty())
}

/// This machine's host name up to the first dot, as it appears in generated Maildir names.
pub fn short_hostname() -> String {
    let full = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let full = if full.is_empty() {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(rc, 0, "gethostname failed");
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        full
    };
    full.split('.').next().unwrap_or_default().to_string()
}

/// Result of one run of the binary under test.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
}

impl RunResult {
    /// Asserts the exit code, printing the run's output on failure.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code; run was:\n{self}");
        self
    }

    /// Asserts that stdout consists exactly of the given lines. (Skipped when
    /// `MAILSYNC_TEST_IGNORE_STDOUT` is set: a debugging aid for checking the other assertions
    /// against mbsync 1.4.4, which prints no summary line.)
    pub fn assert_stdout(&self, lines: &[&str]) -> &Self {
        if ignoring_stdout() {
            return self;
        }
        let mut want = lines.join("\n");
        if !lines.is_empty() {
            want.push('\n');
        }
        assert_eq!(self.stdout, want, "unexpected stdout; run was:\n{self}");
        self
    }

    /// Asserts that stderr consists exactly of the given lines.
    pub fn assert_stderr(&self, lines: &[&str]) -> &Self {
        let mut want = lines.join("\n");
        if !lines.is_empty() {
            want.push('\n');
        }
        assert_eq!(self.stderr, want, "unexpected stderr; run was:\n{self}");
        self
    }

    /// The numbers of the `### <steps> steps, <records> entries ###` line, if printed.
    pub fn step_line(&self) -> Option<(i64, i64)> {
        self.stdout.lines().find_map(parse_step_line)
    }

    /// The last line of stdout (the summary, normally).
    pub fn last_stdout_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Parses `### <steps> steps, <records> entries ###`.
pub fn parse_step_line(line: &str) -> Option<(i64, i64)> {
    let inner = line.strip_prefix("### ")?.strip_suffix(" ###")?;
    let (steps, rest) = inner.split_once(" steps, ")?;
    let records = rest.strip_suffix(" entries")?;
    Some((steps.parse().ok()?, records.parse().ok()?))
}

/// Extra configuration lines of one example (§9.0 `<… extras>`).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub far_store: Vec<String>,
    pub near_store: Vec<String>,
    pub channel: Vec<String>,
}

impl Extras {
    pub fn none() -> Self {
        Self::default()
    }
    pub fn far(mut self, line: &str) -> Self {
        self.far_store.push(line.to_string());
        self
    }
    pub fn near(mut self, line: &str) -> Self {
        self.near_store.push(line.to_string());
        self
    }
    pub fn channel(mut self, line: &str) -> Self {
        self.channel.push(line.to_string());
        self
    }
    /// These extras, with `add` applied if `condition` holds (for example variants).
    pub fn when(self, condition: bool, add: impl FnOnce(Self) -> Self) -> Self {
        if condition { add(self) } else { self }
    }
}

/// One test directory with its configuration, mailboxes and state.
pub struct Fixture {
    tmp: tempfile::TempDir,
    extras: Extras,
    /// Process ids of all runs that produced files in this directory (inherited by copies).
    pids: Vec<u32>,
}

impl Fixture {
    /// Creates the common setup with the given extras: config, and empty far and near boxes
    /// with `.uidvalidity` `1000\n0\n` and `2000\n0\n` (adjusted by [`Fixture::msg`]).
    pub fn new(extras: Extras) -> Fixture {
        let fixture = Fixture::bare(extras);
        fixture.make_box(FAR, 1000, 0);
        fixture.make_box(NEAR, 2000, 0);
        fixture
    }

    /// A test directory with only the config file.
    fn bare(extras: Extras) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("mailsync-ex")
            .tempdir()
            .expect("cannot create temporary directory");
        let fixture = Fixture {
            tmp,
            extras,
            pids: Vec::new(),
        };
        fixture.write_config();
        fixture
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    fn write_config(&self) {
        let dir = self.dir().display().to_string();
        let mut cfg = String::new();
        cfg.push_str(&format!(
            "MaildirStore far\nPath {dir}/\nInbox {dir}/farinbox\n"
        ));
        for line in &self.extras.far_store {
            cfg.push_str(line);
            cfg.push('\n');
        }
        cfg.push_str(&format!(
            "\nMaildirStore near\nPath {dir}/\nInbox {dir}/nearinbox\n"
        ));
        for line in &self.extras.near_store {
            cfg.push_str(line);
            cfg.push('\n');
        }
        cfg.push_str("\nChannel ex\nFar :far:farbox\nNear :near:nearbox\nSyncState *\n");
        for line in &self.extras.channel {
            cfg.push_str(line);
            cfg.push('\n');
        }
        fs::write(self.path("cfg"), cfg).expect("cannot write config");
    }

    /// Creates a Maildir `name` with `cur/ new/ tmp/` and `.uidvalidity` `<uv>\n<max>\n`.
    pub fn make_box(&self, name: &str, uidvalidity: u32, max_uid: u32) {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(self.path(name).join(sub)).expect("cannot create box dir");
        }
        self.set_uidvalidity(name, uidvalidity, max_uid);
    }

    /// Overwrites the `.uidvalidity` file of a box.
    pub fn set_uidvalidity(&self, name: &str, uidvalidity: u32, max_uid: u32) {
        self.write(
            &format!("{name}/.uidvalidity"),
            format!("{uidvalidity}\n{max_uid}\n").as_bytes(),
        );
    }

    /// Writes any file below the test directory.
    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("cannot create parent directory");
        }
        fs::write(path, bytes).expect("cannot write file");
    }

    /// Reads a file below the test directory (None if it does not exist).
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        fs::read(self.path(rel)).ok()
    }

    /// Asserts the exact bytes of a file below the test directory (shown as text on failure).
    pub fn assert_file(&self, rel: &str, bytes: &str) {
        let got = self
            .read(rel)
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        assert_eq!(got.as_deref(), Some(bytes), "file {rel} differs");
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// The names of the entries of a directory below the test directory, sorted (none if it
    /// does not exist).
    pub fn dir_names(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path(rel))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Puts the standard message `subj` into `box_name` as `cur/m<subj>,U=<uid>:2,<flags>` and
    /// raises the box's `.uidvalidity` counter to `uid` if it is lower.
    pub fn msg(&self, box_name: &str, subj: &str, uid: u32, flags: &str) {
        self.put(box_name, "cur", subj, uid, flags, &std_msg(subj));
    }

    /// Puts `content` into `box_name` as `<sub>/m<subj>,U=<uid>:2,<flags>` and raises the
    /// `.uidvalidity` counter to `uid` if it is lower.
    pub fn put(&self, box_name: &str, sub: &str, subj: &str, uid: u32, flags: &str, content: &str) {
        let name = format!("m{subj},U={uid}:2,{flags}");
        self.put_file(box_name, sub, &name, content.as_bytes());
        let (uv, max) = self.uidvalidity(box_name);
        if uid > max {
            self.set_uidvalidity(box_name, uv, uid);
        }
    }

    /// Puts a file with an arbitrary name into `<box>/<sub>/`.
    pub fn put_file(&self, box_name: &str, sub: &str, name: &str, content: &[u8]) {
        self.write(&format!("{box_name}/{sub}/{name}"), content);
    }

    /// The parsed `.uidvalidity` of a box.
    pub fn uidvalidity(&self, box_name: &str) -> (u32, u32) {
        let text = self
            .read(&format!("{box_name}/.uidvalidity"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut lines = text.lines();
        let uv = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let max = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        (uv, max)
    }

    /// Writes the state file (`nearbox/.mbsyncstate`).
    pub fn write_state(&self, bytes: &str) {
        self.write(STATE, bytes.as_bytes());
    }

    /// The state file's bytes as a string (None if absent).
    pub fn state(&self) -> Option<String> {
        self.read(STATE)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Renames the single message file of `box_name` whose name ends with `from_suffix` so that
    /// it ends with `to_suffix` instead (a user's flag change between runs).
    pub fn rename_suffix(&self, box_name: &str, from_suffix: &str, to_suffix: &str) {
        let mut found = Vec::new();
        for sub in ["cur", "new"] {
            let dir = self.path(box_name).join(sub);
            for entry in fs::read_dir(&dir).expect("cannot list box").flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(from_suffix) {
                    found.push((sub, name));
                }
            }
        }
        assert_eq!(
            found.len(),
            1,
            "expected one file ending in {from_suffix}: {found:?}"
        );
        let (sub, name) = &found[0];
        let new_name = format!("{}{}", &name[..name.len() - from_suffix.len()], to_suffix);
        fs::rename(
            self.path(box_name).join(sub).join(name),
            self.path(box_name).join("cur").join(new_name),
        )
        .expect("cannot rename message");
    }

    /// Sets the modification time of every directory below the test directory into the past,
    /// as if the previous change had happened long ago (§9.0: no one-second wait).
    pub fn age_directories(&self) {
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        fn walk(dir: &Path, past: SystemTime) {
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&entry.path(), past);
                    }
                }
            }
            if let Ok(handle) = fs::File::open(dir) {
                let _ = handle.set_modified(past);
            }
        }
        walk(self.dir(), past);
    }

    /// Runs the binary under test with the mbsync command line `-c <dir>/cfg <args> ex`, after
    /// ageing the directories.
    pub fn run(&mut self, args: &[&str]) -> RunResult {
        self.age_directories();
        let (binary, is_mailsync) = binary_under_test();
        let mut cmd = Command::new(&binary);
        if is_mailsync {
            cmd.arg("sync");
        }
        cmd.arg("-c").arg(self.path("cfg"));
        cmd.args(args);
        cmd.arg("ex");
        cmd.current_dir(self.dir());
        cmd.env("HOME", self.dir());
        cmd.env("XDG_STATE_HOME", self.path("xdg-state"));
        cmd.env_remove("COLUMNS");
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id();
        self.pids.push(pid);
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", binary.display()));
        let code = match output.status.code() {
            Some(code) => code,
            None => panic!(
                "{} was killed by a signal: {:?}",
                binary.display(),
                output.status
            ),
        };
        RunResult {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            pid,
        }
    }

    /// A fresh copy of this directory (all files, same relative layout, config rewritten for
    /// the new location).
    pub fn copy_fresh(&self) -> Fixture {
        let copy = Fixture::bare(self.extras.clone());
        fn copy_dir(from: &Path, to: &Path) {
            fs::create_dir_all(to).expect("cannot create directory");
            for entry in fs::read_dir(from).expect("cannot list directory").flatten() {
                let target = to.join(entry.file_name());
                let kind = entry.file_type().expect("cannot stat");
                if kind.is_dir() {
                    copy_dir(&entry.path(), &target);
                } else {
                    fs::copy(entry.path(), &target).expect("cannot copy file");
                }
            }
        }
        for entry in fs::read_dir(self.dir()).expect("cannot list").flatten() {
            if entry.file_name() == "cfg" {
                continue;
            }
            let target = copy.dir().join(entry.file_name());
            if entry.file_type().expect("cannot stat").is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).expect("cannot copy file");
            }
        }
        Fixture {
            pids: self.pids.clone(),
            ..copy
        }
    }

    /// Normalised listing of the messages of a box (`cur/`, `new/`, `tmp/`).
    pub fn messages(&self, box_name: &str) -> Vec<Listed> {
        self.messages_with(box_name, Counter::Keep)
    }

    fn messages_with(&self, box_name: &str, counter: Counter) -> Vec<Listed> {
        let host = short_hostname();
        let mut out = Vec::new();
        for sub in ["cur", "new", "tmp"] {
            let dir = self.path(box_name).join(sub);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let bytes = fs::read(entry.path()).expect("cannot read message");
                let (norm_name, generated) = normalise_name(&name, &self.pids, &host, counter)
                    .unwrap_or_else(|e| panic!("{box_name}/{sub}/{name}: {e}"));
                let content = String::from_utf8_lossy(&bytes).into_owned();
                let content = if generated {
                    normalise_tuid(&content)
                        .unwrap_or_else(|e| panic!("{box_name}/{sub}/{name}: {e}"))
                } else {
                    content
                };
                out.push(Listed {
                    path: format!("{sub}/{norm_name}"),
                    content,
                });
            }
        }
        out.sort();
        out
    }

    /// Files directly in a box directory (`.uidvalidity`, `.mbsyncstate*`) with their bytes.
    pub fn box_files(&self, box_name: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(self.path(box_name)) {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    let bytes = fs::read(entry.path()).expect("cannot read file");
                    out.insert(
                        entry.file_name().to_string_lossy().into_owned(),
                        String::from_utf8_lossy(&bytes).into_owned(),
                    );
                }
            }
        }
        out
    }

    /// Names of the mailbox directories (and other entries) directly in the test directory.
    pub fn top_level(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.dir())
            .expect("cannot list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    /// Asserts the message listing of a box.
    pub fn assert_box(&self, box_name: &str, expected: &[Listed]) {
        let mut want = expected.to_vec();
        want.sort();
        let got = self.messages(box_name);
        if got != want {
            panic!(
                "box {box_name} differs from the expected listing\n{}",
                listing_diff(&got, &want)
            );
        }
    }

    /// Asserts the `.uidvalidity` file of a box.
    pub fn assert_uidvalidity(&self, box_name: &str, text: &str) {
        let got = self
            .read(&format!("{box_name}/.uidvalidity"))
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        assert_eq!(
            got.as_deref(),
            Some(text),
            "{box_name}/.uidvalidity differs"
        );
    }

    /// Asserts the state file bytes (and, optionally, its length as the example gives it).
    pub fn assert_state(&self, bytes: &str) {
        assert_eq!(self.state().as_deref(), Some(bytes), "state file differs");
    }

    /// Asserts that the near box holds exactly the committed state and `.uidvalidity`: no
    /// journal, `.new` or lock file remain.
    pub fn assert_no_leftovers(&self) {
        let files: Vec<String> = self.box_files(NEAR).into_keys().collect();
        let extra: Vec<&String> = files
            .iter()
            .filter(|f| f.starts_with(".mbsyncstate."))
            .collect();
        assert!(extra.is_empty(), "leftover state companions: {extra:?}");
    }

    /// The journal, TUIDs abstracted, as lines (None if absent).
    pub fn journal(&self) -> Option<Vec<String>> {
        let bytes = self.read(&format!("{STATE}.journal"))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "journal does not end in a newline: {text:?}"
        );
        Some(text.lines().map(normalise_journal_line).collect())
    }

    /// Asserts the journal lines (TUIDs written as `<tuid>`).
    pub fn assert_journal(&self, lines: &[&str]) {
        let want: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        assert_eq!(self.journal(), Some(want), "journal differs");
    }

    /// A snapshot of everything a resumed run must reproduce: all boxes' messages (generated
    /// names with their `_<n>` counter abstracted), all files in box directories (journal
    /// TUIDs abstracted, lock files left out) and the set of top-level entries.
    pub fn outcome(&self) -> Outcome {
        self.outcome_with(Counter::Abstract)
    }

    /// Like [`Fixture::outcome`] but with generated names kept exactly (for no-op checks).
    pub fn exact_outcome(&self) -> Outcome {
        self.outcome_with(Counter::Keep)
    }

    fn outcome_with(&self, counter: Counter) -> Outcome {
        let mut boxes = BTreeMap::new();
        for name in self.top_level() {
            if !self.path(&name).is_dir() {
                continue;
            }
            let mut files = self.box_files(&name);
            files.remove(".mbsyncstate.lock");
            if let Some(journal) = files.get_mut(".mbsyncstate.journal") {
                *journal = journal
                    .lines()
                    .map(|l| normalise_journal_line(l) + "\n")
                    .collect();
            }
            boxes.insert(
                name.clone(),
                BoxOutcome {
                    files,
                    messages: self.messages_with(&name, counter),
                },
            );
        }
        Outcome {
            top_level: self.top_level(),
            boxes,
        }
    }
}

/// What to do with the `_<n>` counter of generated names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Keep,
    Abstract,
}

/// One message of a normalised box listing: `subdir/name` with generated name parts written as
/// `<T>.<P>_<n>.<H>`, and the content with a generated file's X-TUID written as `<tuid>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub path: String,
    pub content: String,
}

/// A readable account of how two listings differ (contents shortened).
pub fn listing_diff(got: &[Listed], want: &[Listed]) -> String {
    fn show(item: &Listed) -> String {
        let mut content: String = item.content.chars().take(400).collect();
        if content.len() < item.content.len() {
            content.push('…');
        }
        format!("{}  {content:?}", item.path)
    }
    let mut out = String::new();
    for item in want.iter().filter(|w| !got.contains(w)) {
        out.push_str(&format!("  missing:    {}\n", show(item)));
    }
    for item in got.iter().filter(|g| !want.contains(g)) {
        out.push_str(&format!("  unexpected: {}\n", show(item)));
    }
    out
}

/// A message with a literal file name, e.g. `file("cur/ma,U=1:2,S", std_msg("a"))`.
pub fn file(path: &str, content: impl Into<String>) -> Listed {
    Listed {
        path: path.to_string(),
        content: content.into(),
    }
}

/// A standard message `cur/m<subj>,U=<uid>:2,<flags>` as put by [`Fixture::msg`].
pub fn std_file(subj: &str, uid: u32, flags: &str) -> Listed {
    file(&format!("cur/m{subj},U={uid}:2,{flags}"), std_msg(subj))
}

/// A message with a generated name `<sub>/<T>.<P>_<n>.<H><suffix>`.
pub fn generated(sub: &str, n: u32, suffix: &str, content: impl Into<String>) -> Listed {
    file(&format!("{sub}/<T>.<P>_{n}.<H>{suffix}"), content)
}

/// The state of one box directory in an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxOutcome {
    pub files: BTreeMap<String, String>,
    pub messages: Vec<Listed>,
}

/// Everything observable a run leaves behind in the test directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub top_level: Vec<String>,
    pub boxes: BTreeMap<String, BoxOutcome>,
}

/// Normalises a generated Maildir name `<T>.<P>_<n>.<H><rest>`; other names are returned
/// unchanged. The boolean tells whether the name was a generated one.
fn normalise_name(
    name: &str,
    pids: &[u32],
    host: &str,
    counter: Counter,
) -> Result<(String, bool), String> {
    let Some((time, rest)) = name.split_once('.') else {
        return Ok((name.to_string(), false));
    };
    if time.is_empty() || !time.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((name.to_string(), false));
    }
    let (pid, rest) = rest
        .split_once('_')
        .ok_or_else(|| "generated name without `_<n>`".to_string())?;
    let pid: u32 = pid
        .parse()
        .map_err(|_| format!("generated name with a bad pid {pid:?}"))?;
    if !pids.contains(&pid) {
        return Err(format!("pid {pid} is not one of the test's runs {pids:?}"));
    }
    let (seq, rest) = rest
        .split_once('.')
        .ok_or_else(|| "generated name without host".to_string())?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("generated name with a bad sequence number {seq:?}"));
    }
    let after_host = rest
        .strip_prefix(host)
        .ok_or_else(|| format!("generated name without host {host:?}"))?;
    if !(after_host.is_empty() || after_host.starts_with(',') || after_host.starts_with(':')) {
        return Err(format!("generated name with a bad host part {rest:?}"));
    }
    let seq = match counter {
        Counter::Keep => seq.to_string(),
        Counter::Abstract => "*".to_string(),
    };
    Ok((format!("<T>.<P>_{seq}.<H>{after_host}"), true))
}

/// Replaces the value of `X-TUID: ` header lines by `<tuid>` after checking it is 12
/// characters of the TUID alphabet.
fn normalise_tuid(content: &str) -> Result<String, String> {
    let mut out = String::with_capacity(content.len());
    let mut in_header = true;
    for line in content.split_inclusive('\n') {
        if in_header {
            if line == "\n" || line == "\r\n" {
                in_header = false;
            } else if let Some(value) = line.strip_prefix("X-TUID: ") {
                let value = value.trim_end_matches(['\n', '\r']);
                if !is_tuid(value) {
                    return Err(format!("malformed X-TUID value {value:?}"));
                }
                out.push_str("X-TUID: <tuid>");
                out.push_str(&line[8 + value.len()..]);
                continue;
            }
        }
        out.push_str(line);
    }
    Ok(out)
}

fn is_tuid(value: &str) -> bool {
    value.len() == 12
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Abstracts the TUID of a `# f n <tuid>` journal record.
fn normalise_journal_line(line: &str) -> String {
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() == 4 && parts[0] == "#" && is_tuid(parts[3]) {
        format!("# {} {} <tuid>", parts[1], parts[2])
    } else {
        line.to_string()
    }
}

/// What a second identical run on the result of a scenario must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondRun {
    /// Change nothing on disk and print the all-zero summary.
    NoOp,
    /// Change nothing on disk (the summary may show work, e.g. a dry run).
    Unchanged,
    /// Not checked: the spec documents that a repeated run does more work.
    NotChecked,
}

/// A second result a resumed run may legitimately end with, besides that of the uninterrupted
/// run. The resumption promise of §3.4 meets two rules of §4 that make a resumed run (which
/// starts from the replayed entries of the interrupted one) see more than the uninterrupted run
/// saw; only the cases named here are accepted, and only where a scenario asks for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    /// Only the uninterrupted result is accepted.
    None,
    /// The resumed run may also do the work of the next identical run: entries pushed towards
    /// the keep side are counted for MaxMessages only once they exist at the start of a run
    /// (§4.7, Example 23); a run resumed after all copies were journalled sees them.
    OneMoreRun,
    /// The resumed run may end with this state file instead: a message whose entry was
    /// replayed from the journal no longer ends *topping* (§4.6 N1), so the high-water mark may
    /// end higher than in the uninterrupted run, and the resumed run saves it (Example 14).
    State(&'static str),
}

/// The one documented exception to the resumption promise (§3.4 "known imperfection"): a run
/// stopped right after a message was copied into the *remote* Trash (TrashRemoteNew) but before
/// its `T` record copies that message into the Trash a second time when resumed. The journal
/// has no record before a remote trash copy (§3.2), so nothing tells the resumed run that the
/// copy was made; the reference (mbsync 1.5.1) was observed doing exactly this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatedRemoteTrashCopy {
    /// The `-Ts` limit that stops the run right after the store into the Trash.
    pub step: i64,
    /// The Trash box that ends up with the second copy.
    pub trash: &'static str,
    /// The subject of the message copied twice (its content is [`std_msg`] of it).
    pub subject: &'static str,
}

impl RepeatedRemoteTrashCopy {
    /// `expected` with one more copy of the message in the Trash: the resumed run must end
    /// with exactly this (the Trash copy is made again under a fresh generated name, which the
    /// outcome writes as `<T>.<P>_<n>.<H>`, so the second copy lists like the first).
    fn apply(&self, expected: &Outcome) -> Outcome {
        let mut outcome = expected.clone();
        let trash = outcome
            .boxes
            .get_mut(self.trash)
            .unwrap_or_else(|| panic!("the reference run left no Trash box {}", self.trash));
        let content = std_msg(self.subject);
        let copies: Vec<Listed> = trash
            .messages
            .iter()
            .filter(|m| m.content == content)
            .cloned()
            .collect();
        assert_eq!(
            copies.len(),
            1,
            "the reference run must leave exactly one copy of {} in {}: {:?}",
            self.subject,
            self.trash,
            trash.messages
        );
        trash.messages.extend(copies);
        trash.messages.sort();
        outcome
    }
}

/// Options of a resumption check (see [`check_resume`]).
#[derive(Debug, Clone, Copy)]
pub struct ResumeOptions {
    /// Expected exit code of the uninterrupted run.
    pub code: i32,
    /// Whether the `-Tj` run must print the `###` line (not for pairs that fail).
    pub step_line: bool,
    pub second_run: SecondRun,
    pub alternative: Alternative,
    /// The stop whose resumption must repeat a remote Trash copy (see
    /// [`RepeatedRemoteTrashCopy`]); every other stop must still give the reference outcome.
    pub repeated_remote_trash_copy: Option<RepeatedRemoteTrashCopy>,
}

impl Default for ResumeOptions {
    fn default() -> Self {
        ResumeOptions {
            code: 0,
            step_line: true,
            second_run: SecondRun::NoOp,
            alternative: Alternative::None,
            repeated_remote_trash_copy: None,
        }
    }
}

impl ResumeOptions {
    /// A scenario whose pair fails with exit code 1 (no `###` line is required).
    pub fn failing() -> Self {
        ResumeOptions {
            code: 1,
            step_line: false,
            ..Self::default()
        }
    }

    pub fn second_run(self, second_run: SecondRun) -> Self {
        ResumeOptions { second_run, ..self }
    }

    pub fn alternative(self, alternative: Alternative) -> Self {
        ResumeOptions {
            alternative,
            ..self
        }
    }

    pub fn repeated_remote_trash_copy(self, repeated: RepeatedRemoteTrashCopy) -> Self {
        ResumeOptions {
            repeated_remote_trash_copy: Some(repeated),
            ..self
        }
    }
}

/// The resumption property of §3.4 for one run with `args` on the input `input`:
///
/// 1. a run on a fresh copy gives the reference outcome;
/// 2. per `second_run`, a further identical run on a copy of the reference changes nothing;
/// 3. a run with `-Tj` on a fresh copy gives the step count N (`###` line);
/// 4. for every k from 1: a fresh copy run with `-Ts<k>` must exit 100 while k ≤ N, and an
///    ordinary run afterwards must reproduce the reference outcome (generated names compared
///    without their counters); the first k that does not stop the run must be N + 1 (or later
///    when `-TJ` adds records after the `###` line), and that run must give the reference too.
///
/// Returns the reference fixture (after the uninterrupted run), for chaining multi-run
/// examples.
pub fn check_resume(input: &Fixture, args: &[&str], options: ResumeOptions) -> Fixture {
    let has_big_j = args.iter().any(|a| a.starts_with("-T") && a.contains('J'));

    let mut reference = input.copy_fresh();
    let first = reference.run(args);
    assert_eq!(first.code, options.code, "reference run; run was:\n{first}");
    let expected = reference.outcome();
    let alternative = match options.alternative {
        Alternative::None => None,
        Alternative::OneMoreRun => {
            let mut next = reference.copy_fresh();
            let run = next.run(args);
            assert_eq!(run.code, options.code, "run after the reference: {run}");
            Some(next.outcome())
        }
        Alternative::State(state) => {
            let mut outcome = expected.clone();
            if let Some(near) = outcome.boxes.get_mut(NEAR) {
                near.files
                    .insert(".mbsyncstate".to_string(), state.to_string());
            }
            Some(outcome)
        }
    };
    let acceptable = |got: &Outcome| *got == expected || alternative.as_ref() == Some(got);

    if options.second_run != SecondRun::NotChecked {
        let mut again = reference.copy_fresh();
        let before = again.exact_outcome();
        let second = again.run(args);
        assert_eq!(second.code, options.code, "second run: {second}");
        let after = again.exact_outcome();
        if after != before {
            panic!(
                "a second identical run changed something:\n{}",
                outcome_diff(&after, &before)
            );
        }
        if options.second_run == SecondRun::NoOp && !ignoring_stdout() {
            assert_eq!(
                second.last_stdout_line(),
                ZERO_SUMMARY,
                "second run did work: {second}"
            );
        }
    }

    let mut counting = input.copy_fresh();
    let mut with_j: Vec<&str> = args.to_vec();
    with_j.push("-Tj");
    let counted = counting.run(&with_j);
    assert_eq!(
        counted.code, options.code,
        "counting run (-Tj) exit code; run was:\n{counted}"
    );
    let steps = match counted.step_line() {
        Some((steps, _)) => {
            assert!(steps >= 0, "negative step count: {counted}");
            Some(steps)
        }
        None if options.step_line => {
            panic!("no `### … ###` line from the -Tj run:\n{counted}")
        }
        None => None,
    };

    let mut k: i64 = 1;
    loop {
        let limit = format!("-Ts{k}");
        let mut limited_args: Vec<&str> = args.to_vec();
        limited_args.push(&limit);
        let mut attempt = input.copy_fresh();
        let stopped = attempt.run(&limited_args);
        if stopped.code != 100 {
            if let Some(steps) = steps {
                if has_big_j {
                    assert!(
                        k > steps,
                        "run with -Ts{k} did not stop although the -Tj run counted {steps} steps:\n{stopped}"
                    );
                } else {
                    assert_eq!(
                        k,
                        steps + 1,
                        "run with -Ts{k} did not stop (exit {}), but the -Tj run counted {steps} steps:\n{stopped}",
                        stopped.code
                    );
                }
            }
            assert_eq!(stopped.code, options.code, "unlimited run: {stopped}");
            let got = attempt.outcome();
            if !acceptable(&got) {
                panic!(
                    "run with a step limit above the step count differs from the reference:\n{}",
                    outcome_diff(&got, &expected)
                );
            }
            break;
        }
        if let Some(steps) = steps {
            assert!(
                k <= steps || has_big_j,
                "run with -Ts{k} stopped although the -Tj run counted only {steps} steps"
            );
        }
        assert!(
            stopped.step_line().is_none(),
            "a stopped run printed a ### line: {stopped}"
        );
        let resumed = attempt.run(args);
        assert_eq!(
            resumed.code, options.code,
            "resumed run after -Ts{k}; run was:\n{resumed}"
        );
        let got = attempt.outcome();
        match options.repeated_remote_trash_copy {
            Some(repeated) if repeated.step == k => {
                let with_second_copy = repeated.apply(&expected);
                if got != with_second_copy {
                    panic!(
                        "after stopping at step {k} (right after the copy of {} into the remote \
                         Trash {}, before its `T` record) the resumed run must copy it a second \
                         time (§3.4); outcome differs:\n{}",
                        repeated.subject,
                        repeated.trash,
                        outcome_diff(&got, &with_second_copy)
                    );
                }
            }
            _ => {
                if !acceptable(&got) {
                    panic!(
                        "outcome after stopping at step {k} and resuming differs from the \
                         uninterrupted run:\n{}",
                        outcome_diff(&got, &expected)
                    );
                }
            }
        }
        k += 1;
        assert!(k < 1000, "runaway step loop");
    }
    if let Some(repeated) = options.repeated_remote_trash_copy {
        assert!(
            repeated.step < k,
            "the run never stopped at step {} (the remote Trash copy of {}); it stops at steps \
             1..{} only",
            repeated.step,
            repeated.subject,
            k - 1
        );
    }
    reference
}

/// A readable account of how two outcomes differ.
pub fn outcome_diff(got: &Outcome, want: &Outcome) -> String {
    let mut out = String::new();
    if got.top_level != want.top_level {
        out.push_str(&format!(
            "top-level entries: got {:?}, want {:?}\n",
            got.top_level, want.top_level
        ));
    }
    let names: std::collections::BTreeSet<&String> =
        got.boxes.keys().chain(want.boxes.keys()).collect();
    for name in names {
        match (got.boxes.get(name), want.boxes.get(name)) {
            (Some(g), Some(w)) => {
                if g.files != w.files {
                    out.push_str(&format!(
                        "{name}: files got {:?}\n{name}: files want {:?}\n",
                        g.files, w.files
                    ));
                }
                if g.messages != w.messages {
                    out.push_str(&format!(
                        "{name}: messages\n{}",
                        listing_diff(&g.messages, &w.messages)
                    ));
                }
            }
            (g, w) => out.push_str(&format!(
                "{name}: present in got: {}, in want: {}\n",
                g.is_some(),
                w.is_some()
            )),
        }
    }
    out
}

/// The summary line with the given far and near counter groups, e.g.
/// `summary("+1 *0 #0 -0", "+2 *0 #0 -0")`.
pub fn summary(far: &str, near: &str) -> String {
    format!("Channels: 1    Boxes: 1    Far: {far}    Near: {near}")
}

/// Input set-ups of the worked examples of §9 (shared by the example and resumption tests).
pub mod inputs {
    use super::*;

    /// A standard message `(subject, UID, flags)` in `cur/`.
    pub type Msg<'a> = (&'a str, u32, &'a str);

    /// The §9.0 setup with `extras`, the standard messages `far` and `near`, and the state file
    /// if given.
    pub fn setup(extras: Extras, far: &[Msg], near: &[Msg], state: Option<&str>) -> Fixture {
        let fx = Fixture::new(extras);
        for (box_name, messages) in [(FAR, far), (NEAR, near)] {
            for &(subj, uid, flags) in messages {
                fx.msg(box_name, subj, uid, flags);
            }
        }
        if let Some(state) = state {
            fx.write_state(state);
        }
        fx
    }

    /// The far/near content of Examples 1, 18, 19 and 22 (c flagged as given).
    pub fn ab_far_c_near(near_flags: &str) -> Fixture {
        let far = [("a", 1, "S"), ("b", 2, "")];
        setup(Extras::none(), &far, &[("c", 1, near_flags)], None)
    }

    pub fn example_01() -> Fixture {
        ab_far_c_near("FR")
    }

    pub fn example_02() -> Fixture {
        setup(
            Extras::none(),
            &[("a", 1, "FS"), ("b", 2, "S"), ("c", 3, "RS")],
            &[("a", 1, ""), ("b", 2, "DS"), ("c", 3, "S")],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n",
            ),
        )
    }

    pub fn example_03() -> Fixture {
        let near = [("a", 1, "S"), ("b", 2, "S")];
        setup(
            Extras::none(),
            &[("b", 2, "S")],
            &near,
            Some(EXAMPLE_03_STATE),
        )
    }
    pub const EXAMPLE_03_STATE: &str = "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n";

    pub fn example_04() -> Fixture {
        example_04_with(true)
    }

    /// Example 4's input, with or without far's `TrashRemoteNew yes`.
    pub fn example_04_with(trash_remote_new: bool) -> Fixture {
        let extras = Extras::none()
            .far("Trash fartrash")
            .when(trash_remote_new, |e| e.far("TrashRemoteNew yes"));
        setup(
            extras.channel("Expunge Both"),
            &[("a", 1, "S"), ("b", 2, "S"), ("d", 4, "T")],
            &[("a", 1, "ST"), ("b", 2, "S"), ("c", 3, "ST")],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n",
            ),
        )
    }

    /// big1 of Examples 5 and 6: 40 lines of 70 `x`, 2932 bytes.
    pub fn big1() -> String {
        big_msg("big1", 40)
    }

    /// big2 of Example 5: no Subject, 2000 lines of 70 `x`, 142052 bytes.
    pub fn big2() -> String {
        let mut text = String::from("From: a@example.org\nMessage-ID: <big2@example.org>\n\n");
        for _ in 0..2000 {
            text.push_str(&"x".repeat(70));
            text.push('\n');
        }
        text
    }

    pub fn example_05() -> Fixture {
        let fx = Fixture::new(Extras::none().near("MaxSize 1k"));
        fx.msg(FAR, "small", 1, "S");
        fx.put(FAR, "cur", "big1", 2, "FS", &big1());
        fx.put(FAR, "cur", "big2", 3, "", &big2());
        fx
    }

    pub fn example_06() -> Fixture {
        let fx = Fixture::new(Extras::none().near("MaxSize 1k"));
        fx.msg(FAR, "small", 1, "S");
        fx.put(FAR, "cur", "big1", 2, "FS", &big1());
        fx
    }

    /// Far m1–m7 of Example 7 (`S`, `FS`, `S`, none, `S`, `S`, `S`).
    pub fn example_07() -> Fixture {
        let fx = Fixture::new(Extras::none().channel("MaxMessages 3"));
        for (uid, flags) in [
            (1, "S"),
            (2, "FS"),
            (3, "S"),
            (4, ""),
            (5, "S"),
            (6, "S"),
            (7, "S"),
        ] {
            fx.msg(FAR, &uid.to_string(), uid, flags);
        }
        fx
    }
    pub const EXAMPLE_07_STATE: &str = "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 7\nMaxPushedUid 5\nMaxExpiredFarUid 3\n\n2 1 FS\n4 2 \n5 3 S\n6 4 S\n7 5 S\n";

    /// Example 8's input; `expunge_near` selects the channel's `Expunge Near`.
    pub fn example_08(expunge_near: bool) -> Fixture {
        let extras = Extras::none()
            .channel("MaxMessages 3")
            .when(expunge_near, |e| e.channel("Expunge Near"));
        let fx = Fixture::new(extras);
        for (uid, flags) in [
            (2, "FS"),
            (3, "S"),
            (4, ""),
            (5, "S"),
            (6, "S"),
            (7, "S"),
            (8, "S"),
            (9, "S"),
        ] {
            fx.msg(FAR, &uid.to_string(), uid, flags);
        }
        for (uid, subj, sub, flags) in [
            (1, "2", "cur", "FS"),
            (2, "4", "new", ""),
            (3, "5", "cur", "S"),
            (4, "6", "cur", "S"),
            (5, "7", "cur", "S"),
        ] {
            fx.put(NEAR, sub, &format!("m{subj}"), uid, flags, &std_msg(subj));
        }
        fx.write_state(EXAMPLE_07_STATE);
        fx
    }

    /// Example 9's input; with `genuine`, near UID 2 is a different message (Example 10).
    pub fn example_09(genuine: bool) -> Fixture {
        let fx = Fixture::new(Extras::none());
        for uid in 1..=3 {
            fx.msg(FAR, &uid.to_string(), uid, "S");
            if genuine && uid == 2 {
                fx.msg(NEAR, "other", 2, "S");
            } else {
                fx.msg(NEAR, &uid.to_string(), uid, "S");
            }
        }
        fx.write_state(EXAMPLE_09_STATE);
        fx
    }
    pub const EXAMPLE_09_STATE: &str = "FarUidValidity 1000\nNearUidValidity 1999\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n";

    pub const EXAMPLE_11_JOURNAL: &str = "5\n| 1000 2000\n+ 1 0\n+ 2 0\n+ 3 0\nF 1 0\n# 1 0 AAAAAAAAAAAA\n# 2 0 BBBBBBBBBBBB\n# 3 0 CCCCCCCCCCCC\n% 1 0 16\n> 1 0 1\n% 2 0 16\n";

    pub fn example_11() -> Fixture {
        let fx = Fixture::new(Extras::none());
        fx.msg(FAR, "1", 1, "S");
        fx.msg(FAR, "2", 2, "S");
        fx.msg(FAR, "3", 3, "");
        // The copies made by the interrupted run, named as in the example.
        let r1 = with_header(&std_msg("1"), "X-TUID: AAAAAAAAAAAA");
        let r2 = with_header(&std_msg("2"), "X-TUID: BBBBBBBBBBBB");
        fx.put_file(NEAR, "cur", "r1,U=1:2,S", r1.as_bytes());
        fx.put_file(NEAR, "cur", "r2,U=2:2,S", r2.as_bytes());
        fx.set_uidvalidity(NEAR, 2000, 2);
        fx.write(&format!("{STATE}.new"), b"");
        fx.write(&format!("{STATE}.journal"), EXAMPLE_11_JOURNAL.as_bytes());
        fx
    }

    pub fn example_12() -> Fixture {
        let fx = setup(
            Extras::none(),
            &[("1", 1, "S"), ("2", 2, "")],
            &[("1", 1, "S")],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 1\nMaxPushedUid 1\n\n1 1 S\n",
            ),
        );
        fx.write(&format!("{STATE}.journal"), b"5\n* 1 1 0\n");
        fx
    }

    pub fn example_13() -> Fixture {
        setup(
            Extras::none(),
            &[("a", 1, "S"), ("b", 2, "S"), ("c", 3, "S"), ("d", 4, "S")],
            &[("a", 1, "S"), ("c", 2, "S")],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 2\n\n1 1 S\n3 2 S\n",
            ),
        )
    }

    pub fn example_14() -> Fixture {
        ab_far_c_near("F")
    }

    pub const EXAMPLE_15_STATE: &str = "MasterUidValidity 1000\nSlaveUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 1\n\n1 1 SF\n5 0 ^\n6 -1 S\n";

    pub fn example_15() -> Fixture {
        let fx = Fixture::new(Extras::none());
        fx.msg(FAR, "a", 1, "S");
        fx.put(FAR, "cur", "big5", 5, "S", &big_msg("big5", 50));
        fx.put(FAR, "cur", "big6", 6, "S", &big_msg("big6", 50));
        fx.msg(FAR, "g", 7, "S");
        fx.msg(NEAR, "a", 1, "S");
        fx.write_state(EXAMPLE_15_STATE);
        fx
    }

    pub fn example_16() -> Fixture {
        setup(
            Extras::none().channel("ExpungeSolo Both"),
            &[("b", 2, "ST"), ("c", 3, "S"), ("e", 5, "T")],
            &[
                ("a", 1, "FS"),
                ("b", 2, "S"),
                ("c", 3, "ST"),
                ("d", 4, "ST"),
            ],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n",
            ),
        )
    }

    pub fn example_17() -> Fixture {
        let fx = Fixture::new(
            Extras::none()
                .near("MaxSize 1k")
                .channel("MaxMessages 2")
                .channel("ExpireUnread yes"),
        );
        for uid in 1..=4u32 {
            fx.put(
                FAR,
                "cur",
                &uid.to_string(),
                uid,
                "S",
                &big_msg(&uid.to_string(), 40),
            );
        }
        fx.msg(FAR, "5", 5, "S");
        fx.msg(FAR, "6", 6, "S");
        fx.put(NEAR, "cur", "m3", 1, "S", &std_msg("3"));
        fx.put(NEAR, "cur", "m4", 2, "S", &std_msg("4"));
        fx.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 2\nMaxExpiredFarUid 2\n\n3 1 >S\n4 2 >S\n");
        fx
    }

    pub fn example_20() -> Fixture {
        let fx = Fixture::new(Extras::none().channel("MaxMessages 2"));
        for uid in 1..=6u32 {
            fx.msg(FAR, &uid.to_string(), uid, "");
        }
        fx
    }

    pub const EXAMPLE_21_STATE: &str = "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 0\nMaxExpiredNearUid 2\n\n1 1 S\n3 3 S\n";

    /// Example 21's input with the given `MaxExpiredNearUid` (2 in the example, 1 in its
    /// variant).
    pub fn example_21(max_expired_near: u32) -> Fixture {
        let state = EXAMPLE_21_STATE.replace(
            "MaxExpiredNearUid 2",
            &format!("MaxExpiredNearUid {max_expired_near}"),
        );
        setup(
            Extras::none()
                .channel("Sync Flags")
                .channel("ExpireSide Far"),
            &[("a", 1, "S"), ("c", 3, "S")],
            &[("a", 1, "S"), ("b", 2, "S"), ("c", 3, "S")],
            Some(&state),
        )
    }

    pub fn example_23() -> Fixture {
        let near = [("a", 1, "S"), ("b", 2, "S"), ("c", 3, "S")];
        setup(Extras::none().channel("MaxMessages 2"), &[], &near, None)
    }

    /// Example 24 (a) with the given channel `Sync` line.
    pub fn example_24a(sync: &str) -> Fixture {
        let fx = Fixture::new(Extras::none().channel(sync));
        fx.msg(FAR, "b", 2, "");
        fx.put(NEAR, "new", "a", 1, "T", &std_msg("a"));
        fx.msg(NEAR, "b", 2, "");
        fx.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 T\n2 2 \n");
        fx
    }

    pub fn example_24b() -> Fixture {
        let fx = Fixture::new(Extras::none().channel("Sync New"));
        fx.put(FAR, "new", "a", 1, "P", &std_msg("a"));
        fx.put(FAR, "new", "b", 2, "FT", &std_msg("b"));
        fx
    }

    /// Example 25 with `Sync Pull` (`pull_only`) or the default operations.
    pub fn example_25(pull_only: bool) -> Fixture {
        setup(
            Extras::none().when(pull_only, |e| e.channel("Sync Pull")),
            &[("a", 1, "S"), ("b", 2, "S")],
            &[("a", 1, "S")],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 1\nMaxPushedUid 1\n\n1 1 S\n",
            ),
        )
    }

    /// Example 26, variant A (`trash_new_only`) or B.
    pub fn example_26(trash_new_only: bool) -> Fixture {
        let extras = Extras::none()
            .near("Trash neartrash")
            .when(trash_new_only, |e| e.near("TrashNewOnly yes"));
        setup(
            extras.channel("Expunge Both"),
            &[("a", 1, "T"), ("b", 2, "FT")],
            &[("a", 1, "T"), ("b", 2, ""), ("z", 3, "T")],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 T\n2 2 \n",
            ),
        )
    }
}
