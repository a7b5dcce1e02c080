//! Big messages stream to disk against a real Dovecot: a 50 MB message (generated here) is
//! downloaded IMAP → Maildir and uploaded Maildir → IMAP (with and without UIDPLUS) byte for
//! byte, the download in many chunk FETCHes (counted by a relay), and the peak RSS of the
//! mailsync process stays far below the message's size (a memory bound, read from the
//! kernel's accounting through `/usr/bin/time`).

mod dovecot;

use dovecot::{Dovecot, Options, PASS, Relay, RelayMode, USER};
use mailsync::store::{LoadRequest, OpenOutcome, Store};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Size of the big message's body.
const BODY_BYTES: usize = 50_000_000;
/// The most the mailsync process may use (dev build) while copying it: well below the
/// message's 50 MB, which it used about three times over when messages were held whole.
const MAX_RSS_KIB: u64 = 40 * 1024;
/// Chunk FETCHes the download needs at least (1 MiB chunks of 50 MB).
const MIN_CHUNK_FETCHES: usize = BODY_BYTES / (1024 * 1024);

/// The big message with the given line end: a short header and lines of pseudo-random
/// base64 text (no line starts with a digit, as the relay counts commands by line).
fn big_message(newline: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = [
        "From: sender@example.org",
        "To: you@example.com",
        "Subject: a big one",
        "Message-ID: <big@example.org>",
        "",
        "",
    ]
    .join(newline);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    // The same lines whatever the line end: 78-byte lines with CRLF.
    for _ in 0..BODY_BYTES / 78 {
        text.push('x');
        for _ in 0..75 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(ALPHABET[(state % 64) as usize] as char);
        }
        text.push_str(newline);
    }
    text
}

/// The message without its one `X-TUID` header line (whose value is random).
fn without_tuid(data: &[u8]) -> Vec<u8> {
    let header_end = data
        .windows(2)
        .position(|w| w == b"\n\n" || w == b"\n\r")
        .expect("header end");
    let start = data[..header_end]
        .windows(9)
        .position(|w| w == b"\nX-TUID: ")
        .expect("X-TUID header")
        + 1;
    let end = start
        + data[start..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("end of the X-TUID line")
        + 1;
    let headers = data[..header_end]
        .windows(9)
        .filter(|w| w == b"\nX-TUID: ")
        .count();
    assert_eq!(headers, 1, "X-TUID headers");
    [&data[..start], &data[end..]].concat()
}

/// Compares two big byte strings without printing them.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} bytes instead of {}, first difference at byte {first}",
            got.len(),
            want.len()
        );
    }
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(port: u16) -> Setup {
        let setup = Setup {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let near = setup.near();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(near.join("INBOX").join(sub)).expect("near maildir");
        }
        std::fs::create_dir_all(setup.dir.path().join("state")).expect("state dir");
        let text = format!(
            "IMAPAccount acc\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass \"{PASS}\"\nTLSType None\nAuthMechs PLAIN\n\n\
             IMAPStore far\nAccount acc\n\n\
             MaildirStore near\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n\n\
             Channel ex\nFar :far:INBOX\nNear :near:INBOX\nSyncState {state}/\nCreate Both\n",
            root = near.display(),
            state = setup.dir.path().join("state").display()
        );
        std::fs::write(setup.dir.path().join("cfg"), text).expect("config");
        setup
    }

    fn near(&self) -> PathBuf {
        self.dir.path().join("near")
    }

    /// Runs `mailsync sync ex` and returns its peak RSS in KiB, as `/usr/bin/time` reports it
    /// (its own child's `ru_maxrss`: this test process, which holds the big message several
    /// times, must not count, and a child forked or spawned from it directly inherits its
    /// high-water mark).
    fn run(&self) -> u64 {
        let out_path = self.dir.path().join("out.txt");
        let rss_path = self.dir.path().join("rss.txt");
        let out = std::fs::File::create(&out_path).expect("output file");
        let err = out.try_clone().expect("output file");
        let status = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_path)
            .arg(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-c")
            .arg(self.dir.path().join("cfg"))
            .arg("ex")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .expect("run mailsync under /usr/bin/time");
        let output = std::fs::read_to_string(&out_path).unwrap_or_default();
        assert!(status.success(), "mailsync failed ({status}):\n{output}");
        let rss = std::fs::read_to_string(&rss_path).expect("the RSS /usr/bin/time wrote");
        rss.trim()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no RSS figure in {rss:?}"))
    }

    /// The near INBOX's messages.
    fn near_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            for entry in std::fs::read_dir(self.near().join("INBOX").join(sub)).expect("list") {
                files.push(entry.expect("entry").path());
            }
        }
        files
    }
}

/// The server's INBOX messages, read back over IMAP byte for byte.
fn server_messages(server: &Dovecot) -> Vec<Vec<u8>> {
    let (mut store, _) = dovecot::open_store(
        &dovecot::account(server, mailsync::config::TlsType::None),
        &dovecot::store_config(None),
    );
    assert!(matches!(
        store.open_box("INBOX").expect("open INBOX"),
        OpenOutcome::Opened { .. }
    ));
    let loaded = store
        .load(&LoadRequest {
            range: Some((1, u32::MAX)),
            ..Default::default()
        })
        .expect("load");
    loaded
        .messages
        .iter()
        .map(|m| {
            store
                .fetch(m.uid)
                .expect("fetch")
                .expect("message there")
                .body
                .to_vec()
                .expect("read body")
        })
        .collect()
}

#[test]
fn big_message_downloads_in_chunks_with_bounded_memory() {
    let server = Dovecot::start();
    let message = big_message("\r\n");
    server.append("INBOX", &message, "");
    let relay = Relay::start(server.port, RelayMode::Latency(1));
    let setup = Setup::new(relay.port);
    let rss = setup.run();
    let counts = relay.counts();
    eprintln!(
        "download of {} bytes: peak RSS {rss} KiB, {counts:?}",
        message.len()
    );

    let files = setup.near_files();
    assert_eq!(files.len(), 1, "near messages: {files:?}");
    let copy = std::fs::read(&files[0]).expect("read the copy");
    assert_same(
        &without_tuid(&copy),
        big_message("\n").as_bytes(),
        "the downloaded copy",
    );
    assert!(
        counts.fetches >= MIN_CHUNK_FETCHES,
        "the message came in {} FETCHes, not in chunks",
        counts.fetches
    );
    assert!(
        rss < MAX_RSS_KIB,
        "peak RSS {rss} KiB for a {} byte message",
        message.len()
    );
    // No spool file is left behind in the Maildir's tmp/.
    let tmp: Vec<_> = std::fs::read_dir(setup.near().join("INBOX/tmp"))
        .expect("tmp")
        .collect();
    assert!(tmp.is_empty(), "left in tmp/: {tmp:?}");
    // The next run has nothing to do.
    setup.run();
    assert_eq!(setup.near_files().len(), 1);
    assert_eq!(server.uids("INBOX").len(), 1);
}

/// Uploads the big message from the near Maildir and checks the server's copy.
fn upload(server: &Dovecot, port: u16, label: &str) {
    let setup = Setup::new(port);
    let name = "1700000000.M1P1.test:2,S";
    std::fs::write(setup.near().join("INBOX/cur").join(name), big_message("\n"))
        .expect("write the big message");
    let rss = setup.run();
    eprintln!("[{label}] upload: peak RSS {rss} KiB");

    let messages = server_messages(server);
    assert_eq!(messages.len(), 1, "[{label}] messages on the server");
    assert_same(
        &without_tuid(&messages[0]),
        big_message("\r\n").as_bytes(),
        &format!("[{label}] the uploaded copy"),
    );
    assert_eq!(
        server.flags("INBOX"),
        vec![(server.uids("INBOX")[0], "\\Seen".to_string())],
        "[{label}] flags"
    );
    assert!(rss < MAX_RSS_KIB, "[{label}] peak RSS {rss} KiB");
    // The copy was recorded (found by its X-TUID without UIDPLUS): nothing is copied again.
    setup.run();
    assert_eq!(
        server.uids("INBOX").len(),
        1,
        "[{label}] after a second run"
    );
    assert_eq!(
        setup.near_files().len(),
        1,
        "[{label}] near after a second run"
    );
}

#[test]
fn big_message_uploads_with_bounded_memory() {
    let server = Dovecot::start();
    upload(&server, server.port, "UIDPLUS");
}

#[test]
fn big_message_uploads_without_uidplus() {
    let server = Dovecot::start_with(Options::without(&["UIDPLUS"]));
    let stripper = Relay::start(server.port, RelayMode::StripUidPlus);
    upload(&server, stripper.port, "no UIDPLUS");
}
