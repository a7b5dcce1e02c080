//! Sync runs through the binary with IMAP stores on a private Dovecot: the worked scenarios of
//! the sync specification with Dovecot on the far side, on the near side and on both sides
//! (two users), on a full server, on one talking COMPRESS=DEFLATE and on a cut-down one (no
//! UIDPLUS, LITERAL+ or NAMESPACE, PipelineDepth 1) with identical results; error cases
//! (wrong password, unknown host, certificate mismatch, a connection cut mid-FETCH) and
//! mailbox names that round-trip or must be refused.
//!
//! Each test uses one Dovecot and a fresh user per scenario; messages are compared by
//! Message-ID and body together with their flags.

mod dovecot;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use dovecot::{Dovecot, Options, Relay, RelayMode};

const USER_PASS: &str = "pw";
/// Users made per server.
const MAX_USERS: u32 = 400;

/// A Dovecot with the way to reach it.
struct Server {
    dovecot: Dovecot,
    /// A relay in front of the plain port (the no-UIDPLUS variant strips response codes).
    relay: Option<Relay>,
    /// Lines added to every IMAPAccount.
    account_lines: String,
    next_user: AtomicU32,
    label: &'static str,
}

impl Server {
    /// Dovecot as it comes, reached with STARTTLS.
    fn full() -> Server {
        let dovecot = Dovecot::start();
        let account_lines = format!(
            "Host localhost\nPort {}\nTLSType STARTTLS\nCertificateFile {}\nSystemCertificates no\n",
            dovecot.port,
            dovecot.ca_file.display()
        );
        Server::new(dovecot, None, account_lines, "full")
    }

    /// Dovecot offering COMPRESS=DEFLATE, reached in the clear: every scenario runs over a
    /// compressed connection.
    fn compressed() -> Server {
        let dovecot = Dovecot::start_with(Options {
            compress: true,
            ..Options::default()
        });
        let account_lines = format!(
            "Host 127.0.0.1\nPort {}\nTLSType None\nAuthMechs PLAIN\n",
            dovecot.port
        );
        Server::new(dovecot, None, account_lines, "compressed")
    }

    /// Dovecot without UIDPLUS (also stripped from responses), LITERAL+ and NAMESPACE, used
    /// with PipelineDepth 1 (in the clear, so that the relay can edit the responses).
    fn cut_down() -> Server {
        let dovecot = Dovecot::start_with(Options::without(&["UIDPLUS", "LITERAL+", "NAMESPACE"]));
        let relay = Relay::start(dovecot.port, RelayMode::StripUidPlus);
        let account_lines = format!(
            "Host 127.0.0.1\nPort {}\nTLSType None\nAuthMechs PLAIN\nPipelineDepth 1\n",
            relay.port
        );
        Server::new(dovecot, Some(relay), account_lines, "cut-down")
    }

    fn new(
        dovecot: Dovecot,
        relay: Option<Relay>,
        account_lines: String,
        label: &'static str,
    ) -> Server {
        dovecot.add_users(MAX_USERS, USER_PASS);
        Server {
            dovecot,
            relay,
            account_lines,
            next_user: AtomicU32::new(1),
            label,
        }
    }

    /// A fresh user (prepared in the passwd-file at start).
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

/// Which driver serves a side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Maildir,
    Imap,
}

/// One message as the tests compare it: Message-ID, body (LF line ends) and flag letters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Mail {
    id: String,
    body: String,
    flags: String,
}

fn parse_message(text: &str) -> (String, String) {
    let (id, body) = dovecot::message_id_and_body(text);
    (id, body.trim_end().to_string())
}

fn message_text(id: &str, body: &str) -> String {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: test {id}\nMessage-ID: <{id}@test>\n\n{body}\n"
    )
}

/// One side of a channel: a Maildir under the test folder or a Dovecot user.
struct SideStore {
    kind: Kind,
    /// Dovecot user (IMAP) or Maildir root (`<dir>/<far|near>`).
    user: String,
    root: PathBuf,
}

static MAILDIR_SEQ: AtomicU32 = AtomicU32::new(1);

impl SideStore {
    fn box_dir(&self, mailbox: &str) -> PathBuf {
        self.root.join(mailbox)
    }

    fn add(&self, server: &Server, mailbox: &str, id: &str, body: &str, flags: &str) {
        let text = message_text(id, body);
        match self.kind {
            Kind::Maildir => {
                let dir = self.box_dir(mailbox);
                for sub in ["cur", "new", "tmp"] {
                    std::fs::create_dir_all(dir.join(sub)).expect("maildir");
                }
                let n = MAILDIR_SEQ.fetch_add(1, Ordering::SeqCst);
                let name = format!("1700000000.M{n}P1.test:2,{flags}");
                std::fs::write(dir.join("cur").join(name), text).expect("write message");
            }
            Kind::Imap => {
                if !mailbox.eq_ignore_ascii_case("INBOX") {
                    // Fails harmlessly when it exists.
                    let _ = server.doveadm(&["mailbox", "create", "-u", &self.user, mailbox]);
                }
                let mut child = Command::new("/usr/bin/doveadm")
                    .arg("-c")
                    .arg(&server.dovecot.conf)
                    .args(["save", "-u", &self.user, "-m", mailbox])
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
                    self.set_flags(server, mailbox, id, flags, "");
                }
            }
        }
    }

    /// Adds and removes flags (letters) on the message with this Message-ID.
    fn set_flags(&self, server: &Server, mailbox: &str, id: &str, add: &str, remove: &str) {
        match self.kind {
            Kind::Maildir => {
                let path = self
                    .files(mailbox)
                    .into_iter()
                    .find(|p| parse_message(&read_text(p)).0 == id)
                    .unwrap_or_else(|| panic!("no message {id} in {mailbox}"));
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (base, old) = name.split_once(":2,").unwrap_or((&name, ""));
                let mut letters: Vec<char> = old
                    .chars()
                    .chain(add.chars())
                    .filter(|c| !remove.contains(*c))
                    .collect();
                letters.sort();
                letters.dedup();
                let new_name = format!("{base}:2,{}", letters.into_iter().collect::<String>());
                let target = path
                    .parent()
                    .and_then(Path::parent)
                    .expect("box")
                    .join("cur")
                    .join(new_name);
                std::fs::rename(&path, target).expect("rename");
            }
            Kind::Imap => {
                let header = format!("<{id}@test>");
                for (how, letters) in [("add", add), ("remove", remove)] {
                    let names = dovecot::flag_names(letters);
                    if names.is_empty() {
                        continue;
                    }
                    let names = names.join(" ");
                    server.must(&[
                        "flags",
                        how,
                        "-u",
                        &self.user,
                        &names,
                        "mailbox",
                        mailbox,
                        "header",
                        "Message-ID",
                        &header,
                    ]);
                }
            }
        }
    }

    /// Removes the message at once (another client's expunge).
    fn expunge_now(&self, server: &Server, mailbox: &str, id: &str) {
        match self.kind {
            Kind::Maildir => {
                for path in self.files(mailbox) {
                    if parse_message(&read_text(&path)).0 == id {
                        std::fs::remove_file(path).expect("remove");
                    }
                }
            }
            Kind::Imap => {
                let header = format!("<{id}@test>");
                server.must(&[
                    "expunge",
                    "-u",
                    &self.user,
                    "mailbox",
                    mailbox,
                    "header",
                    "Message-ID",
                    &header,
                ]);
            }
        }
    }

    fn files(&self, mailbox: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            if let Ok(entries) = std::fs::read_dir(self.box_dir(mailbox).join(sub)) {
                files.extend(entries.filter_map(|e| Some(e.ok()?.path())));
            }
        }
        files
    }

    /// The messages of a mailbox, sorted; empty if the mailbox does not exist.
    fn mails(&self, server: &Server, mailbox: &str) -> Vec<Mail> {
        let mut mails: Vec<Mail> = match self.kind {
            Kind::Maildir => self
                .files(mailbox)
                .iter()
                .map(|path| {
                    let (id, body) = parse_message(&read_text(path));
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let mut flags: Vec<char> = name
                        .split_once(":2,")
                        .map(|(_, f)| f.chars().filter(|c| c.is_ascii_uppercase()).collect())
                        .unwrap_or_default();
                    flags.sort();
                    Mail {
                        id,
                        body,
                        flags: flags.into_iter().collect(),
                    }
                })
                .collect(),
            Kind::Imap => {
                let Ok(out) = server.doveadm(&[
                    "-f",
                    "json",
                    "fetch",
                    "-u",
                    &self.user,
                    "flags text",
                    "mailbox",
                    mailbox,
                    "all",
                ]) else {
                    return Vec::new();
                };
                let rows: Vec<BTreeMap<String, String>> = serde_json::from_str(&out)
                    .unwrap_or_else(|e| panic!("doveadm json {e}: {out}"));
                rows.iter()
                    .map(|row| {
                        let (id, body) =
                            parse_message(row.get("text").map(String::as_str).unwrap_or(""));
                        Mail {
                            id,
                            body,
                            flags: dovecot::flag_letters(
                                row.get("flags").map(String::as_str).unwrap_or(""),
                            ),
                        }
                    })
                    .collect()
            }
        };
        mails.sort();
        mails
    }

    /// The messages of an IMAP mailbox in UID order.
    fn mails_by_uid(&self, server: &Server, mailbox: &str) -> Vec<Mail> {
        let out = server.must(&[
            "-f",
            "json",
            "fetch",
            "-u",
            &self.user,
            "uid flags text",
            "mailbox",
            mailbox,
            "all",
        ]);
        let rows: Vec<BTreeMap<String, String>> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("doveadm json {e}: {out}"));
        let mut mails: Vec<(u32, Mail)> = rows
            .iter()
            .map(|row| {
                let field = |name: &str| row.get(name).map(String::as_str).unwrap_or("");
                let (id, body) = parse_message(field("text"));
                let uid = field("uid").parse().unwrap_or(0);
                let flags = dovecot::flag_letters(field("flags"));
                (uid, Mail { id, body, flags })
            })
            .collect();
        mails.sort();
        mails.into_iter().map(|(_, mail)| mail).collect()
    }

    fn mailboxes(&self, server: &Server) -> Vec<String> {
        match self.kind {
            Kind::Imap => {
                let mut names: Vec<String> = server
                    .must(&["mailbox", "list", "-u", &self.user])
                    .lines()
                    .map(str::to_string)
                    .collect();
                names.sort();
                names
            }
            Kind::Maildir => {
                let mut names = Vec::new();
                collect_maildirs(&self.root, "", &mut names);
                names.sort();
                names
            }
        }
    }
}

fn collect_maildirs(dir: &Path, prefix: &str, names: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["cur", "new", "tmp"].contains(&name.as_str()) {
            continue;
        }
        let full = format!("{prefix}{name}");
        if path.join("cur").is_dir() {
            names.push(full.clone());
        }
        collect_maildirs(&path, &format!("{full}/"), names);
    }
}

fn read_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Store/channel lines a scenario adds.
#[derive(Clone, Default)]
struct Extra {
    far: String,
    near: String,
    channel: String,
}

/// One channel between two sides in a temporary folder.
struct World<'s> {
    server: &'s Server,
    dir: tempfile::TempDir,
    sides: [SideStore; 2],
    mailbox: String,
    extra: Extra,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl World<'_> {
    fn new<'s>(server: &'s Server, kinds: [Kind; 2], mailbox: &str, extra: Extra) -> World<'s> {
        let dir = tempfile::tempdir().expect("temp dir");
        let make = |kind: Kind, label: &str| SideStore {
            kind,
            user: if kind == Kind::Imap {
                server.add_user()
            } else {
                String::new()
            },
            root: dir.path().join(label),
        };
        let sides = [make(kinds[0], "far"), make(kinds[1], "near")];
        for side in &sides {
            if side.kind == Kind::Maildir {
                std::fs::create_dir_all(&side.root).expect("maildir root");
            }
        }
        let world = World {
            server,
            dir,
            sides,
            mailbox: mailbox.to_string(),
            extra,
        };
        world.write_config(&world.account_lines());
        world
    }

    fn far(&self) -> &SideStore {
        &self.sides[0]
    }
    fn near(&self) -> &SideStore {
        &self.sides[1]
    }

    fn account_lines(&self) -> String {
        self.server.account_lines.clone()
    }

    /// Writes the config with `account_lines` for every IMAPAccount.
    fn write_config(&self, account_lines: &str) {
        self.write_config_with(account_lines, USER_PASS);
    }

    /// Writes the config with `account_lines` and this password for every IMAPAccount.
    fn write_config_with(&self, account_lines: &str, pass: &str) {
        let mut text = String::new();
        for (side, label, extra) in [
            (&self.sides[0], "far", &self.extra.far),
            (&self.sides[1], "near", &self.extra.near),
        ] {
            match side.kind {
                Kind::Imap => text.push_str(&format!(
                    "IMAPAccount acc_{label}\nUser {}\nPass \"{pass}\"\n{account_lines}\nIMAPStore {label}\nAccount acc_{label}\n{extra}\n",
                    side.user
                )),
                Kind::Maildir => text.push_str(&format!(
                    "MaildirStore {label}\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n{extra}\n",
                    root = side.root.display()
                )),
            }
        }
        text.push_str(&format!(
            "Channel ex\nFar :far:{m}\nNear :near:{m}\nSyncState {}/state/\nCreate Both\n{}\n",
            self.dir.path().display(),
            self.extra.channel,
            m = self.mailbox
        ));
        std::fs::write(self.dir.path().join("cfg"), text).expect("config");
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-c")
            .arg(self.dir.path().join("cfg"))
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

    fn run_ok(&self, args: &[&str], want_code: i32) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            want_code,
            "[{}] mailsync {args:?} ({:?} <-> {:?}) exited {}:\n{}{}",
            self.server.label,
            self.far().kind,
            self.near().kind,
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }

    fn add(&self, side: usize, id: &str, flags: &str) {
        self.sides[side].add(
            self.server,
            &self.mailbox,
            id,
            &format!("body of {id}"),
            flags,
        );
    }

    fn mails(&self, side: usize) -> Vec<Mail> {
        self.sides[side].mails(self.server, &self.mailbox)
    }

    /// The state file's entries as `(far uid, near uid, flags)` text lines (after the header).
    fn state_entries(&self) -> Vec<String> {
        let dir = self.dir.path().join("state");
        let mut entries = Vec::new();
        let Ok(files) = std::fs::read_dir(&dir) else {
            return entries;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".lock") || name.ends_with(".journal") || name.ends_with(".new") {
                continue;
            }
            let text = read_text(&file.path());
            if let Some((_, body)) = text.split_once("\n\n") {
                entries.extend(body.lines().map(str::to_string));
            }
        }
        entries
    }

    fn state_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("state"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Both sides hold exactly these messages.
    fn assert_both(&self, want: &[(&str, &str)]) {
        let want: Vec<Mail> = {
            let mut w: Vec<Mail> = want
                .iter()
                .map(|(id, flags)| Mail {
                    id: id.to_string(),
                    body: format!("body of {id}"),
                    flags: flags.to_string(),
                })
                .collect();
            w.sort();
            w
        };
        for side in 0..2 {
            assert_eq!(
                self.mails(side),
                want,
                "[{}] {} side ({:?}) of {:?} <-> {:?}",
                self.server.label,
                ["far", "near"][side],
                self.sides[side].kind,
                self.far().kind,
                self.near().kind
            );
        }
    }

    /// A second run changes nothing: `-e` gives 0 and the contents stay.
    fn assert_noop(&self) {
        let before = [self.mails(0), self.mails(1)];
        let entries = self.state_entries();
        self.run_ok(&["-e"], 0);
        assert_eq!(
            [self.mails(0), self.mails(1)],
            before,
            "second run changed mail"
        );
        assert_eq!(
            self.state_entries(),
            entries,
            "second run changed the state"
        );
    }
}

const ORIENTATIONS: [[Kind; 2]; 3] = [
    [Kind::Imap, Kind::Maildir],
    [Kind::Maildir, Kind::Imap],
    [Kind::Imap, Kind::Imap],
];

// ---- Scenarios (spec sync-semantics §9) --------------------------------------------------

/// First sync both ways; the state pairs every message; `-e` says both sides changed.
fn first_sync(server: &Server, kinds: [Kind; 2]) {
    let w = World::new(server, kinds, "INBOX", Extra::default());
    w.add(0, "a", "S");
    w.add(0, "b", "F");
    w.add(1, "c", "");
    w.run_ok(&["-e"], 32 + 64);
    w.assert_both(&[("a", "S"), ("b", "F"), ("c", "")]);
    let entries = w.state_entries();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| !e.starts_with("0 ") && !e.contains(" 0 ")),
        "{entries:?}"
    );
    w.assert_noop();
}

/// Three-way flag merge against the baseline.
fn flag_merge(server: &Server, kinds: [Kind; 2]) {
    let w = World::new(server, kinds, "INBOX", Extra::default());
    w.add(0, "a", "S");
    w.add(0, "b", "");
    w.run_ok(&[], 0);
    w.sides[0].set_flags(server, "INBOX", "a", "F", "");
    w.sides[1].set_flags(server, "INBOX", "a", "", "S");
    w.sides[1].set_flags(server, "INBOX", "b", "R", "");
    w.sides[0].set_flags(server, "INBOX", "b", "S", "");
    w.run_ok(&[], 0);
    w.assert_both(&[("a", "F"), ("b", "RS")]);
    w.assert_noop();
}

/// Deletions: a message expunged on one side goes on the other; one flagged deleted is
/// expunged on both with Expunge Both.
fn expunge_propagation(server: &Server, kinds: [Kind; 2]) {
    let extra = Extra {
        channel: "Expunge Both\n".into(),
        ..Extra::default()
    };
    let w = World::new(server, kinds, "INBOX", extra);
    for id in ["a", "b", "c"] {
        w.add(0, id, "");
    }
    w.run_ok(&[], 0);
    w.sides[0].expunge_now(server, "INBOX", "a");
    w.sides[1].set_flags(server, "INBOX", "b", "T", "");
    w.run_ok(&[], 0);
    w.assert_both(&[("c", "")]);
    assert_eq!(w.state_entries().len(), 1, "{:?}", w.state_entries());
    w.assert_noop();
}

/// Expunge Both with a far Trash: the far copy of a message deleted on the near side goes
/// to the Trash; with TrashRemoteNew a new near message deleted before it was synced too.
fn expunge_with_trash(server: &Server, kinds: [Kind; 2]) {
    let extra = Extra {
        far: "Trash Trash\nTrashRemoteNew yes\n".into(),
        channel: "Expunge Both\n".into(),
        ..Extra::default()
    };
    let w = World::new(server, kinds, "INBOX", extra);
    w.add(0, "a", "");
    w.add(0, "b", "");
    w.run_ok(&[], 0);
    w.sides[1].set_flags(server, "INBOX", "a", "T", "");
    w.add(1, "n", "T");
    w.run_ok(&[], 0);
    w.assert_both(&[("b", "")]);
    let trash: Vec<String> = w
        .far()
        .mails(server, "Trash")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(trash, vec!["a".to_string(), "n".to_string()], "far Trash");
    w.assert_noop();
}

/// MaxMessages 2 on the near side: only the newest two far messages are kept there.
fn max_messages(server: &Server, kinds: [Kind; 2]) {
    let extra = Extra {
        channel: "MaxMessages 2\nExpireUnread yes\n".into(),
        ..Extra::default()
    };
    let w = World::new(server, kinds, "INBOX", extra);
    for id in ["m1", "m2", "m3", "m4"] {
        w.add(0, id, "S");
    }
    w.run_ok(&[], 0);
    let near: Vec<String> = w.mails(1).into_iter().map(|m| m.id).collect();
    assert_eq!(near, vec!["m3".to_string(), "m4".to_string()]);
    assert_eq!(w.mails(0).len(), 4);
    w.add(0, "m5", "S");
    w.run_ok(&[], 0);
    let near: Vec<String> = w.mails(1).into_iter().map(|m| m.id).collect();
    // Expired messages stay until expunged; the newest arrives.
    assert!(near.contains(&"m5".to_string()), "{near:?}");
    assert_eq!(w.mails(0).len(), 5);
    w.assert_noop();
}

/// MaxSize 1k on the near store: a big far message arrives as a placeholder (its F dropped);
/// flagging the placeholder upgrades it to the full message, the placeholder is marked
/// deleted and goes with the next expunge (spec sync-semantics §9 examples 5 and 6).
fn max_size_and_upgrade(server: &Server, kinds: [Kind; 2]) {
    let extra = Extra {
        near: "MaxSize 1k\n".into(),
        ..Extra::default()
    };
    let w = World::new(server, kinds, "INBOX", extra);
    let big_body = vec!["x".repeat(70); 40].join("\n");
    w.add(0, "small", "S");
    w.far().add(server, "INBOX", "big", &big_body, "FS");
    w.run_ok(&[], 0);
    let near = w.mails(1);
    assert_eq!(near.len(), 2, "{near:?}");
    let placeholder = near.iter().find(|m| m.id == "big").expect("placeholder");
    assert_eq!(placeholder.flags, "S");
    assert!(
        placeholder
            .body
            .contains("this message is over the MaxSize limit"),
        "{placeholder:?}"
    );
    assert_eq!(w.mails(0).len(), 2);
    w.near().set_flags(server, "INBOX", "big", "F", "");
    w.run_ok(&[], 0);
    let near = w.mails(1);
    let full: Vec<&Mail> = near.iter().filter(|m| m.body == big_body).collect();
    assert_eq!(full.len(), 1, "{near:?}");
    assert_eq!(full[0].flags, "FS");
    assert!(
        near.iter()
            .any(|m| m.id == "big" && m.body != big_body && m.flags.contains('T')),
        "placeholder not marked deleted: {near:?}"
    );
    w.run_ok(&["-X"], 0);
    let want = vec![
        Mail {
            id: "big".into(),
            body: big_body.clone(),
            flags: "FS".into(),
        },
        Mail {
            id: "small".into(),
            body: "body of small".into(),
            flags: "S".into(),
        },
    ];
    assert_eq!(w.mails(0), want);
    assert_eq!(w.mails(1), want);
    // The state still lists the purged placeholder (not journalled, example 6, run 3); the
    // next run drops it and changes no mail.
    assert!(
        w.state_entries().contains(&"0 2 ".to_string()),
        "{:?}",
        w.state_entries()
    );
    w.run_ok(&["-e"], 0);
    assert_eq!(w.state_entries().len(), 2, "{:?}", w.state_entries());
    w.assert_noop();
}

/// `--dry-run` changes nothing and writes no state; `-e` reports the sides a run changed.
fn dry_run_and_ext_exit(server: &Server, kinds: [Kind; 2]) {
    let w = World::new(server, kinds, "INBOX", Extra::default());
    w.add(0, "a", "S");
    w.run_ok(&["-y"], 0);
    assert_eq!(w.mails(1), Vec::new(), "dry run stored a message");
    assert!(
        w.state_files().is_empty(),
        "dry run wrote {:?}",
        w.state_files()
    );
    w.run_ok(&["-e"], 64);
    w.add(1, "b", "");
    w.run_ok(&["-e"], 32);
    w.assert_both(&[("a", "S"), ("b", "")]);
    w.assert_noop();
}

/// The IMAP mailbox (far, else near) is deleted and recreated (a new UIDVALIDITY). With the
/// same messages under the same UIDs the run recovers (spec sync-semantics §5: entries are
/// re-confirmed by Message-ID, nothing renumbered); with the UIDs swapped the change is genuine
/// and the pair fails. Either way nothing is duplicated or lost.
fn uidvalidity_change(server: &Server, kinds: [Kind; 2]) {
    for same_order in [true, false] {
        let w = World::new(server, kinds, "work", Extra::default());
        w.add(0, "a", "S");
        w.add(1, "b", "");
        w.run_ok(&[], 0);
        let Some(side) = (0..2).find(|&s| w.sides[s].kind == Kind::Imap) else {
            return;
        };
        let store = &w.sides[side];
        let mut before = store.mails_by_uid(server, "work");
        if !same_order {
            before.reverse();
        }
        server.must(&["mailbox", "delete", "-u", &store.user, "work"]);
        server.must(&["mailbox", "create", "-u", &store.user, "work"]);
        for mail in &before {
            store.add(server, "work", &mail.id, &mail.body, &mail.flags);
        }
        let run = w.run(&[]);
        if same_order {
            assert_eq!(run.code, 0, "recovery failed: {}{}", run.stdout, run.stderr);
            assert!(
                run.stdout.contains("Recovered from change of UIDVALIDITY"),
                "{}",
                run.stdout
            );
        } else {
            assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
            assert!(
                run.stderr.contains("UIDVALIDITY genuinely changed"),
                "{}",
                run.stderr
            );
        }
        w.assert_both(&[("a", "S"), ("b", "")]);
        if same_order {
            w.assert_noop();
        }
    }
}

/// Interrupted at every step `-Ts<k>`, then resumed: the same end result as one run.
fn resume_every_step(server: &Server, kinds: [Kind; 2]) {
    let setup = || {
        let w = World::new(
            server,
            kinds,
            "INBOX",
            Extra {
                channel: "Expunge Both\n".into(),
                ..Extra::default()
            },
        );
        w.add(0, "a", "S");
        w.add(0, "b", "");
        w.add(1, "c", "F");
        w.run_ok(&[], 0);
        w.sides[0].set_flags(server, "INBOX", "a", "R", "");
        w.sides[1].set_flags(server, "INBOX", "b", "T", "");
        w.add(0, "d", "");
        w.add(1, "e", "S");
        w
    };
    let want = [("a", "RS"), ("c", "F"), ("d", ""), ("e", "S")];
    for k in 1..40 {
        let w = setup();
        let run = w.run(&[&format!("-Ts{k}")]);
        if run.code != 100 {
            assert_eq!(run.code, 0, "-Ts{k}: {}{}", run.stdout, run.stderr);
            w.assert_both(&want);
            assert!(k > 3, "only {k} steps?");
            return;
        }
        w.run_ok(&[], 0);
        w.assert_both(&want);
        assert_eq!(
            w.state_entries().len(),
            4,
            "after -Ts{k}: {:?}",
            w.state_entries()
        );
        w.assert_noop();
    }
    panic!("the run never finished within 40 steps");
}

type Scenario = fn(&Server, [Kind; 2]);

const SCENARIOS: [(&str, Scenario); 9] = [
    ("first sync", first_sync),
    ("flag merge", flag_merge),
    ("expunge", expunge_propagation),
    ("trash", expunge_with_trash),
    ("max messages", max_messages),
    ("max size / upgrade", max_size_and_upgrade),
    ("dry run / -e", dry_run_and_ext_exit),
    ("uidvalidity", uidvalidity_change),
    ("resume", resume_every_step),
];

/// Runs every scenario in every orientation, in parallel threads.
fn run_all(server: &Server) {
    thread::scope(|scope| {
        let mut handles = Vec::new();
        for (name, scenario) in SCENARIOS {
            for kinds in ORIENTATIONS {
                handles.push((name, kinds, scope.spawn(move || scenario(server, kinds))));
            }
        }
        let mut failures = Vec::new();
        for (name, kinds, handle) in handles {
            if handle.join().is_err() {
                failures.push(format!("{name} {kinds:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "[{}] failed: {failures:?}",
            server.label
        );
    });
}

#[test]
fn scenarios_with_dovecot_on_either_and_both_sides() {
    let server = Server::full();
    run_all(&server);
}

#[test]
fn scenarios_over_a_compressed_connection() {
    let server = Server::compressed();
    run_all(&server);
}

#[test]
fn scenarios_with_cut_down_dovecot() {
    let server = Server::cut_down();
    run_all(&server);
    // Without UIDPLUS, ExpungeSolo is refused for the IMAP side.
    let w = World::new(
        &server,
        [Kind::Imap, Kind::Maildir],
        "INBOX",
        Extra::default(),
    );
    w.add(0, "a", "T");
    let run = w.run(&["-xf"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("does not support ExpungeSolo"),
        "{}",
        run.stderr
    );
    assert_eq!(w.far().mails(&server, "INBOX").len(), 1);
    // Trashing without UIDPLUS expunges with CLOSE: announced once per store.
    let extra = Extra {
        far: "Trash Trash\n".into(),
        channel: "Expunge Both\n".into(),
        ..Extra::default()
    };
    let w = World::new(&server, [Kind::Imap, Kind::Maildir], "INBOX", extra);
    w.add(0, "a", "T");
    w.add(0, "b", "");
    let run = w.run_ok(&[], 0);
    let notice = "Notice: Trashing in Store far is prone to race conditions.";
    assert_eq!(
        format!("{}{}", run.stdout, run.stderr)
            .matches(notice)
            .count(),
        1,
        "{}{}",
        run.stdout,
        run.stderr
    );
    w.assert_both(&[("b", "")]);
    let trash: Vec<String> = w
        .far()
        .mails(&server, "Trash")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(trash, vec!["a".to_string()]);
    let _ = &server.relay;
}

// ---- Errors: each a clear error and exit 1; the next run completes ----------------------

/// Runs with a fault, checks the error, then without it: everything arrives exactly once.
fn fault_then_recovery(w: &World, faulty_lines: &str, pass: &str, want_error: &[&str]) {
    w.write_config_with(faulty_lines, pass);
    let run = w.run(&[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        want_error.iter().any(|want| run.stderr.contains(want)),
        "expected one of {want_error:?} in:\n{}",
        run.stderr
    );
    w.write_config(&w.account_lines());
    w.run_ok(&[], 0);
    w.assert_both(&[("a", "S"), ("b", "F"), ("c", "")]);
    assert_eq!(w.state_entries().len(), 3, "{:?}", w.state_entries());
    w.assert_noop();
}

fn world_with_mail(server: &Server, kinds: [Kind; 2]) -> World<'_> {
    let w = World::new(server, kinds, "INBOX", Extra::default());
    w.add(0, "a", "S");
    w.add(0, "b", "F");
    w.add(1, "c", "");
    w
}

#[test]
fn errors_are_clear_and_the_next_run_completes() {
    let server = Server::full();
    for kinds in ORIENTATIONS {
        // Wrong password.
        let w = world_with_mail(&server, kinds);
        fault_then_recovery(
            &w,
            &w.account_lines(),
            "wrong password",
            &["AUTHENTICATIONFAILED", "Authentication failed"],
        );
        // A host name that cannot resolve (no traffic leaves the machine).
        let w = world_with_mail(&server, kinds);
        let lines = w
            .account_lines()
            .replace("Host localhost", "Host nonexistent.invalid");
        fault_then_recovery(
            &w,
            &lines,
            USER_PASS,
            &["Cannot resolve server 'nonexistent.invalid'"],
        );
        // A certificate signed by a CA that is not trusted.
        let w = world_with_mail(&server, kinds);
        let other_ca = dovecot::make_unrelated_ca(w.dir.path());
        let lines = w.account_lines().replace(
            &server.dovecot.ca_file.display().to_string(),
            &other_ca.display().to_string(),
        );
        fault_then_recovery(&w, &lines, USER_PASS, &["is not trusted"]);
    }
}

#[test]
fn connection_dropped_mid_fetch_then_next_run_completes() {
    let server = Server::full();
    let relay = Relay::start(server.dovecot.port, RelayMode::CutInBody(60));
    let cut_lines = format!(
        "Host 127.0.0.1\nPort {}\nTLSType None\nAuthMechs PLAIN\n",
        relay.port
    );
    // Every orientation reads a message from the IMAP side through the relay (the near
    // message `c` goes far), so every first run is cut inside a FETCH.
    for kinds in ORIENTATIONS {
        let w = world_with_mail(&server, kinds);
        fault_then_recovery(
            &w,
            &cut_lines,
            USER_PASS,
            &["unexpected EOF from 127.0.0.1"],
        );
    }
}

// ---- Mailbox names ----------------------------------------------------------------------

#[test]
fn mailbox_names_round_trip_through_maildir() {
    let server = Server::full();
    let extra = Extra {
        channel: "Patterns *\n".into(),
        ..Extra::default()
    };
    let w = World::new(&server, [Kind::Imap, Kind::Maildir], "", extra);
    let far = w.far();
    let names = ["with space", "Ünïcödé", "a/b/c", "Ünï/sub space"];
    for (n, name) in names.iter().enumerate() {
        far.add(
            &server,
            name,
            &format!("m{n}"),
            &format!("body of m{n}"),
            "S",
        );
    }
    w.run_ok(&[], 0);
    let near = w.near();
    for (n, name) in names.iter().enumerate() {
        let ids: Vec<String> = near
            .mails(&server, name)
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, vec![format!("m{n}")], "near box {name}");
        assert!(w.dir.path().join("near").join(name).join("cur").is_dir());
    }
    // Back: a new Maildir folder with non-ASCII letters, a space and hierarchy.
    near.add(&server, "new öne/sub", "back", "body of back", "F");
    near.add(&server, "a/b/c", "back2", "body of back2", "");
    w.run_ok(&[], 0);
    let far_boxes = far.mailboxes(&server);
    assert!(
        far_boxes.contains(&"new öne/sub".to_string()),
        "{far_boxes:?}"
    );
    let ids: Vec<String> = far
        .mails(&server, "new öne/sub")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec!["back".to_string()]);
    let ids: Vec<String> = far
        .mails(&server, "a/b/c")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec!["back2".to_string(), "m2".to_string()]);
    w.run_ok(&["-e"], 0);
}

/// A relay that renames mailboxes in both directions (server names `zzdots`, `zzabs` are
/// shown to the client as `..` and `/abs`).
fn renaming_relay(target_port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                continue;
            };
            let pipe =
                |from: TcpStream, mut to: TcpStream, pairs: [(&'static str, &'static str); 2]| {
                    thread::spawn(move || {
                        let mut reader = BufReader::new(from);
                        let mut line = String::new();
                        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                            let mut text = line.clone();
                            for (a, b) in pairs {
                                text = text.replace(a, b);
                            }
                            if to.write_all(text.as_bytes()).is_err() {
                                break;
                            }
                            line.clear();
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            pipe(server, c2, [("zzdots", ".."), ("zzabs", "/abs")]);
            pipe(client, s2, [("\"..\"", "zzdots"), ("\"/abs\"", "zzabs")]);
        }
    });
    port
}

#[test]
fn server_mailbox_names_escaping_the_maildir_are_refused() {
    let server = Server::full();
    let port = renaming_relay(server.dovecot.port);
    for (evil, shown) in [("zzdots", ".."), ("zzabs", "/abs")] {
        let extra = Extra {
            channel: "Patterns *\n".into(),
            ..Extra::default()
        };
        let w = World::new(&server, [Kind::Imap, Kind::Maildir], "", extra);
        w.far().add(&server, evil, "x", "body of x", "");
        w.far().add(&server, "INBOX", "a", "body of a", "");
        w.write_config(&format!(
            "Host 127.0.0.1\nPort {port}\nTLSType None\nAuthMechs PLAIN\n"
        ));
        let run = w.run(&[]);
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!("'{shown}'")),
            "no error naming {shown}:\n{}",
            run.stderr
        );
        // Nothing written outside the Maildir Path (nor anywhere for the refused name).
        let mut top: Vec<String> = std::fs::read_dir(w.dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert!(
            top.iter()
                .all(|n| ["cfg", "near", "state"].contains(&n.as_str())),
            "{top:?}"
        );
        assert!(!Path::new("/abs").exists());
        let stray: Vec<Mail> = w
            .near()
            .mails(&server, "..")
            .into_iter()
            .chain(w.near().mails(&server, "abs"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }
}

// ---- get-cert, -l, -ls --------------------------------------------------------------------

fn pem_blocks(text: &str) -> Vec<String> {
    text.split("-----END CERTIFICATE-----")
        .filter_map(|part| {
            let start = part.find("-----BEGIN CERTIFICATE-----")?;
            let lines: Vec<&str> = part[start..].lines().map(str::trim).collect();
            Some(format!("{}\n-----END CERTIFICATE-----", lines.join("\n")))
        })
        .collect()
}

#[test]
fn get_cert_prints_the_chain_usable_as_certificate_file() {
    let server = Server::full();
    let server_cert = pem_blocks(&read_text(&server.dovecot.server_cert_file));
    for (target, starttls) in [
        (format!("localhost:{}", server.dovecot.imaps_port), false),
        (format!("127.0.0.1:{}", server.dovecot.port), true),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mailsync"));
        command.args(["get-cert", &target]);
        if starttls {
            command.arg("--starttls");
        }
        let output = command.output().expect("get-cert");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let chain = pem_blocks(&stdout);
        assert_eq!(chain.first(), server_cert.first(), "{stdout}");
        // The first certificate pins the server: a sync trusting only it works.
        let w = world_with_mail(&server, [Kind::Imap, Kind::Maildir]);
        let pinned = w.dir.path().join("pinned.pem");
        std::fs::write(&pinned, format!("{}\n", chain[0])).expect("pinned");
        let lines = w.account_lines().replace(
            &server.dovecot.ca_file.display().to_string(),
            &pinned.display().to_string(),
        );
        w.write_config(&lines);
        w.run_ok(&[], 0);
        w.assert_both(&[("a", "S"), ("b", "F"), ("c", "")]);
        std::fs::remove_file(w.dir.path().join("pinned.pem")).expect("remove");
    }
    // Nothing listens there: a clear error.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
        .args(["get-cert", &format!("127.0.0.1:{port}")])
        .output()
        .expect("get-cert");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).is_empty());
    assert!(!output.stderr.is_empty());
}

#[test]
fn list_boxes_and_stores_on_imap() {
    let server = Server::full();
    let extra = Extra {
        channel: "Patterns * !skip*\n".into(),
        ..Extra::default()
    };
    let w = World::new(&server, [Kind::Imap, Kind::Imap], "", extra);
    w.far().add(&server, "Work/Ünï", "a", "body", "");
    w.far().add(&server, "skipme", "b", "body", "");
    w.near().add(&server, "Near only", "c", "body", "");
    let run = w.run_ok(&["-l"], 0);
    let listed: Vec<&str> = run.stdout.lines().collect();
    // `Work` exists only as a parent on the server (not selectable), so it is not a box.
    assert_eq!(listed, ["INBOX", "Near only", "Work/Ünï"], "{}", run.stdout);
    let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
        .arg("sync")
        .arg("-c")
        .arg(w.dir.path().join("cfg"))
        .args(["-ls", "far"])
        .output()
        .expect("-ls");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"===== far:"));
    lines.remove(0);
    lines.sort();
    assert_eq!(lines, ["INBOX", "Work/Ünï", "skipme"], "{stdout}");
    // A listing changes nothing.
    assert!(w.near().mails(&server, "Work/Ünï").is_empty());
}

/// A login failure fails the store for the rest of the run, a connection failure
/// "temporarily" (spec config-cli-stores §3.3): later channels using it are skipped.
#[test]
fn failed_store_is_skipped_for_later_channels() {
    let server = Server::full();
    for (lines_of, pass, how) in [
        (None, "wrong password", "failed"),
        (Some("nonexistent.invalid"), USER_PASS, "temporarily failed"),
    ] {
        let w = world_with_mail(&server, [Kind::Imap, Kind::Maildir]);
        let lines = match lines_of {
            Some(host) => w
                .account_lines()
                .replace("Host localhost", &format!("Host {host}")),
            None => w.account_lines(),
        };
        w.write_config_with(&lines, pass);
        let cfg = w.dir.path().join("cfg");
        let mut text = std::fs::read_to_string(&cfg).expect("cfg");
        text.push_str(&format!(
            "\nChannel ex2\nFar :far:INBOX\nNear :near:other\nSyncState {}/state/\nCreate Both\n",
            w.dir.path().display()
        ));
        std::fs::write(&cfg, text).expect("cfg");
        let run = w.run(&["-V", "ex2"]);
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.contains(&format!("Skipping due to {how} far side store far.")),
            "{all}"
        );
        // Tried once only.
        assert_eq!(
            all.matches("Opening far side store far...").count(),
            1,
            "{all}"
        );
        // Nothing moved: the near side holds only its own message.
        let near: Vec<String> = w.mails(1).into_iter().map(|m| m.id).collect();
        assert_eq!(near, vec!["c".to_string()]);
    }
}

#[test]
fn each_auth_mechanism_syncs_through_the_binary() {
    let server = Server::full();
    for mechanism in ["LOGIN", "PLAIN", "CRAM-MD5", "SCRAM-SHA-256"] {
        let w = world_with_mail(&server, [Kind::Imap, Kind::Imap]);
        let lines = format!("{}AuthMechs {mechanism}\n", w.account_lines());
        w.write_config(&lines);
        let run = w.run_ok(&["-Dn"], 0);
        let sent = if mechanism == "LOGIN" {
            "LOGIN ".to_string()
        } else {
            format!("AUTHENTICATE {mechanism}")
        };
        assert!(run.stdout.contains(&sent), "{mechanism}: {}", run.stdout);
        for line in run.stdout.lines().filter(|l| l.contains(&sent)) {
            assert!(
                !line.trim_end().ends_with(USER_PASS) && !line.contains("\"pw\""),
                "password in the trace: {line}"
            );
        }
        w.assert_both(&[("a", "S"), ("b", "F"), ("c", "")]);
    }
}

#[test]
fn in_box_sync_state_is_refused_for_an_imap_near_store() {
    let server = Server::full();
    let extra = Extra {
        channel: "SyncState *\n".into(),
        ..Extra::default()
    };
    let w = World::new(&server, [Kind::Maildir, Kind::Imap], "INBOX", extra);
    w.add(0, "a", "");
    let run = w.run(&[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("store 'near' does not support in-box sync state"),
        "{}",
        run.stderr
    );
    assert!(w.mails(1).is_empty());
}
