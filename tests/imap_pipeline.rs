//! Deep pipelining of first copies against a real Dovecot, seen through a relay that delays
//! the server's answers (a link with latency) and counts the round trips the client waited
//! for: a first download of 200 messages reads them ahead in a few FETCHes, a first upload
//! sends its APPENDs without waiting for each answer — with and without LITERAL+ (then each
//! message costs a continuation request, but the answers are still not waited for) and with
//! and without UIDPLUS (then the copies are found by their X-TUID). Every variant checks that
//! all messages arrive intact with their flags and that the next run has nothing to do.

mod dovecot;

use dovecot::{Dovecot, Options, PASS, Relay, RelayCounts, RelayMode, USER};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const MESSAGES: usize = 200;
/// Delay of the relay's answers (the round trip of the benchmark's WAN profile).
const LATENCY_MS: u64 = 30;
/// The most round trips a first copy of 200 messages may take. Pipelined, it needs about ten
/// (log-in, listing, select, load, sizes, the copies, logout); one round trip per message
/// would be over 200. The margin is for a loaded machine, where the client can be kept from
/// running for longer than the latency, so that an answer arrives before the next command.
const MAX_ROUNDS: usize = MESSAGES / 2;

/// Message `i` (no line starts with a digit or `+`: the relay counts commands by line).
fn message(i: usize) -> String {
    format!(
        "From: sender{i}@example.org\nTo: you@example.com\nSubject: message {i}\nMessage-ID: <m{i}@example.org>\n\nbody of message {i}\nsecond line of {i}\n"
    )
}

fn seen(i: usize) -> bool {
    i.is_multiple_of(3)
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn near(&self) -> PathBuf {
        self.dir.path().join("near")
    }

    fn write_config(&self, port: u16) {
        let near = self.near();
        std::fs::create_dir_all(&near).expect("near dir");
        let text = format!(
            "IMAPAccount acc\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass \"{PASS}\"\nTLSType None\nAuthMechs PLAIN\n\n\
             IMAPStore far\nAccount acc\n\n\
             MaildirStore near\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n\n\
             Channel ex\nFar :far:INBOX\nNear :near:INBOX\nSyncState {state}/\nCreate Both\n",
            root = near.display(),
            state = self.dir.path().join("state").display()
        );
        std::fs::create_dir_all(self.dir.path().join("state")).expect("state dir");
        std::fs::write(self.dir.path().join("cfg"), text).expect("config");
    }

    fn run(&self) {
        let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-c")
            .arg(self.dir.path().join("cfg"))
            .arg("ex")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run mailsync");
        assert_eq!(
            output.status.code(),
            Some(0),
            "mailsync failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Near messages by subject: (text, flags of the file name).
    fn near_messages(&self) -> BTreeMap<String, (String, String)> {
        let mut found = BTreeMap::new();
        for sub in ["cur", "new"] {
            let dir = self.near().join("INBOX").join(sub);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("dir entry").path();
                let text = std::fs::read_to_string(&path).expect("read message");
                let name = path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                let flags = name.split_once(":2,").map(|(_, f)| f.to_string());
                let subject = subject_of(&text);
                let previous = found.insert(subject.clone(), (text, flags.unwrap_or_default()));
                assert!(previous.is_none(), "{subject} is there twice");
            }
        }
        found
    }

    /// Writes the messages into the near INBOX (for uploads).
    fn fill_near(&self) {
        let inbox = self.near().join("INBOX");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(inbox.join(sub)).expect("maildir");
        }
        for i in 0..MESSAGES {
            let flags = if seen(i) { "S" } else { "" };
            let name = format!("{}.M{i}P1.test:2,{flags}", 1_700_000_000 + i);
            std::fs::write(inbox.join("cur").join(name), message(i)).expect("write message");
        }
    }
}

fn subject_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The body after the header, with LF line ends and without a X-TUID header.
fn normalized(text: &str) -> String {
    text.replace("\r\n", "\n")
        .lines()
        .filter(|l| !l.starts_with("X-TUID: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Puts the messages on the server through mailsync's own IMAP store (no relay).
fn fill_server(server: &Dovecot) {
    use mailsync::store::{Flags, MessageData, NewMessage, OpenOutcome, Store};
    let (mut store, _) = dovecot::open_store(
        &dovecot::account(server, mailsync::config::TlsType::None),
        &dovecot::store_config(None),
    );
    assert!(matches!(
        store.open_box("INBOX").expect("open INBOX"),
        OpenOutcome::Opened { .. }
    ));
    for i in 0..MESSAGES {
        let data = message(i).replace('\n', "\r\n");
        store
            .store(NewMessage {
                data: MessageData::Bytes(data.as_bytes()),
                flags: if seen(i) { Flags::SEEN } else { Flags::EMPTY },
                date: None,
            })
            .expect("append");
    }
}

fn assert_all_near(setup: &Setup) {
    let near = setup.near_messages();
    assert_eq!(near.len(), MESSAGES, "messages in the near INBOX");
    for i in 0..MESSAGES {
        let (text, flags) = near
            .get(&format!("message {i}"))
            .unwrap_or_else(|| panic!("message {i} missing"));
        assert_eq!(normalized(text), normalized(&message(i)), "message {i}");
        assert_eq!(
            flags.contains('S'),
            seen(i),
            "flags of message {i}: {flags}"
        );
    }
}

/// Server messages by subject: (text, flags).
fn server_messages(server: &Dovecot) -> BTreeMap<String, (String, String)> {
    let flags: BTreeMap<u32, String> = server.flags("INBOX").into_iter().collect();
    let mut found = BTreeMap::new();
    for uid in server.uids("INBOX") {
        let text = server.text("INBOX", uid);
        let text = text.strip_prefix("text:\n").unwrap_or(&text).to_string();
        let subject = subject_of(&text.replace("\r\n", "\n"));
        let previous = found.insert(
            subject.clone(),
            (text, flags.get(&uid).cloned().unwrap_or_default()),
        );
        assert!(previous.is_none(), "{subject} is on the server twice");
    }
    found
}

fn assert_all_on_server(server: &Dovecot, label: &str) {
    let found = server_messages(server);
    assert_eq!(found.len(), MESSAGES, "[{label}] messages on the server");
    for i in 0..MESSAGES {
        let (text, flags) = found
            .get(&format!("message {i}"))
            .unwrap_or_else(|| panic!("[{label}] message {i} missing"));
        assert_eq!(
            normalized(text),
            normalized(&message(i)),
            "[{label}] message {i}"
        );
        assert_eq!(
            flags.contains("\\Seen"),
            seen(i),
            "[{label}] flags of message {i}: {flags}"
        );
    }
}

#[test]
fn first_download_reads_ahead_in_a_few_round_trips() {
    let server = Dovecot::start();
    fill_server(&server);
    let relay = Relay::start(server.port, RelayMode::Latency(LATENCY_MS));
    let setup = Setup::new();
    setup.write_config(relay.port);
    setup.run();
    let counts = relay.counts();
    eprintln!("first download: {counts:?}");
    assert_all_near(&setup);
    assert!(
        counts.rounds <= MAX_ROUNDS,
        "first download of {MESSAGES} messages took {counts:?}"
    );
    // The next run has nothing to copy: the state recorded every message.
    setup.run();
    assert_all_near(&setup);
    assert_eq!(server.uids("INBOX").len(), MESSAGES);
}

/// Uploads the near messages through a latency relay (optionally chained to a relay
/// stripping UIDPLUS codes) and checks the result; returns the counts of the first run.
fn upload(server: &Dovecot, strip_uidplus: bool, label: &str) -> RelayCounts {
    let stripper = strip_uidplus.then(|| Relay::start(server.port, RelayMode::StripUidPlus));
    let target = stripper.as_ref().map_or(server.port, |r| r.port);
    let relay = Relay::start(target, RelayMode::Latency(LATENCY_MS));
    let setup = Setup::new();
    setup.fill_near();
    setup.write_config(relay.port);
    setup.run();
    let counts = relay.counts();
    eprintln!("[{label}] first upload: {counts:?}");
    assert_all_on_server(server, label);
    setup.run();
    assert_all_on_server(server, label);
    assert_eq!(
        setup.near_messages().len(),
        MESSAGES,
        "[{label}] near messages after the second run"
    );
    let appends_again = relay.counts().commands - counts.commands;
    assert!(
        appends_again < 20,
        "[{label}] the second run sent {appends_again} commands (copied again?)"
    );
    counts
}

#[test]
fn first_upload_pipelines_appends_with_literal_plus() {
    let server = Dovecot::start();
    let counts = upload(&server, false, "LITERAL+ UIDPLUS");
    assert!(
        counts.rounds <= MAX_ROUNDS,
        "upload of {MESSAGES} messages took {counts:?}"
    );
    // The one continuation request is the log-in's (AUTHENTICATE PLAIN).
    assert!(
        counts.continuations <= 1,
        "LITERAL+ needs no continuation: {counts:?}"
    );
}

#[test]
fn first_upload_pipelines_appends_without_literal_plus() {
    let server = Dovecot::start_with(Options::without(&["LITERAL+"]));
    let counts = upload(&server, false, "no LITERAL+");
    // Each synchronizing literal waits for its continuation request, but no APPEND waits
    // for the answer to the one before.
    assert!(
        counts.continuations >= MESSAGES,
        "expected a continuation per message: {counts:?}"
    );
    assert!(
        counts.rounds <= MAX_ROUNDS,
        "upload of {MESSAGES} messages took {counts:?}"
    );
}

#[test]
fn first_upload_without_uidplus_finds_copies_by_tuid() {
    let server = Dovecot::start_with(Options::without(&["UIDPLUS", "LITERAL+"]));
    let counts = upload(&server, true, "no UIDPLUS, no LITERAL+");
    assert!(
        counts.rounds <= MAX_ROUNDS,
        "upload of {MESSAGES} messages took {counts:?}"
    );
}

/// Sets the near flag letters of message `i` (renames its file).
fn set_near_flags(setup: &Setup, i: usize, letters: &str) {
    for sub in ["cur", "new"] {
        let dir = setup.near().join("INBOX").join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let text = std::fs::read_to_string(&path).expect("read message");
            if subject_of(&text) != format!("message {i}") {
                continue;
            }
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let base = name.split_once(":2,").map_or(name.as_str(), |(b, _)| b);
            let target = setup
                .near()
                .join("INBOX")
                .join("cur")
                .join(format!("{base}:2,{letters}"));
            std::fs::rename(&path, target).expect("rename message");
            return;
        }
    }
    panic!("no near message {i}");
}

/// The most round trips a run storing 100 flag changes may take: log-in, the rest of the
/// log-in behind AUTHENTICATE, SELECT, the STOREs, LOGOUT, and a margin for a loaded machine.
/// One STORE per message waited for would be over 100.
const MAX_FLAG_ROUNDS: usize = 10;

#[test]
fn flag_changes_go_in_a_few_pipelined_stores() {
    let server = Dovecot::start();
    fill_server(&server);
    let setup = Setup::new();
    setup.write_config(server.port);
    setup.run();
    // 100 near flag changes in two kinds: flagged and answered, alternating.
    let changed = 100;
    let letters = |i: usize| {
        let mut letters = String::from(if i.is_multiple_of(2) { "F" } else { "R" });
        if seen(i) {
            letters.push('S');
        }
        letters
    };
    for i in 0..changed {
        set_near_flags(&setup, i, &letters(i));
    }
    let relay = Relay::start(server.port, RelayMode::Latency(LATENCY_MS));
    setup.write_config(relay.port);
    setup.run();
    let counts = relay.counts();
    eprintln!("{changed} flag changes: {counts:?}");
    let flags: BTreeMap<u32, String> = server.flags("INBOX").into_iter().collect();
    let by_subject = server_messages(&server);
    for i in 0..MESSAGES {
        let (_, flags_now) = &by_subject[&format!("message {i}")];
        let want = if i < changed {
            letters(i)
        } else if seen(i) {
            "S".to_string()
        } else {
            String::new()
        };
        assert_eq!(
            dovecot::flag_letters(flags_now),
            want,
            "far flags of message {i}"
        );
    }
    assert_eq!(flags.len(), MESSAGES);
    assert!(
        counts.rounds <= MAX_FLAG_ROUNDS,
        "{changed} flag changes took {counts:?}"
    );
    // Grouped by change: two UID STOREs (one per kind; the sets fit in one command each),
    // not one per message.
    assert!(
        counts.commands <= MAX_FLAG_ROUNDS + 2,
        "{changed} flag changes took {counts:?}"
    );
    // Recorded: the next run has nothing to store.
    let before = relay.counts();
    setup.run();
    let again = relay.counts();
    assert!(
        again.commands - before.commands <= MAX_FLAG_ROUNDS,
        "the next run sent {} commands",
        again.commands - before.commands
    );
    assert_eq!(server_messages(&server), by_subject);
}
