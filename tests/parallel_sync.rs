//! Several mailbox pairs synchronized at once (`MaxConnections`), against a real Dovecot
//! behind a counting relay, with the binary:
//!
//! - a channel of 12 folders with new messages on both sides, flag changes and deletions on
//!   both sides ends exactly as with `MaxConnections 1`: the same messages and flags on both
//!   sides, the same state files (apart from the UIDVALIDITYs the two servers chose), the
//!   same summary line;
//! - the relay sees at most `MaxConnections` connections open at once, more than one when
//!   several folders have work, exactly one when nothing changed (unchanged mailboxes cost
//!   no SELECT and no extra connection), and one with `MaxConnections 1`;
//! - a folder whose pair fails (the mass-deletion guard, a mailbox-level error) does not
//!   stop the others: the same end state and exit code 1 as one pair after the other, and
//!   the error names that folder.

mod dovecot;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use dovecot::{Dovecot, PASS, Relay, RelayMode, USER};

/// INBOX and 11 more folders.
fn folders() -> Vec<String> {
    let mut folders = vec!["INBOX".to_string()];
    folders.extend((1..12).map(|n| format!("f{n:02}")));
    folders
}

fn message(id: &str) -> String {
    format!(
        "From: a@example.org\nTo: b@example.org\nSubject: {id}\nMessage-ID: <{id}@test>\n\nbody {id}\n"
    )
}

/// A channel between a Dovecot user (far, through a relay) and a Maildir (near).
struct Setup {
    server: Dovecot,
    relay: Relay,
    dir: tempfile::TempDir,
}

/// What one run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The summary line (`Channels: … Boxes: … Far: … Near: …`).
    fn summary(&self) -> String {
        self.stdout
            .lines()
            .find(|line| line.starts_with("Channels: "))
            .unwrap_or_else(|| panic!("no summary line in:\n{}", self.stdout))
            .to_string()
    }
}

impl Setup {
    fn new(max_connections: u32) -> Setup {
        let server = Dovecot::start();
        let relay = Relay::start(server.port, RelayMode::Latency(0));
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("near")).expect("near store folder");
        let config = format!(
            "IMAPAccount acc\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass \"{PASS}\"\n\
             TLSType None\nAuthMechs PLAIN\nMaxConnections {max_connections}\n\n\
             IMAPStore far\nAccount acc\n\n\
             MaildirStore near\nPath {root}/near/\nInbox {root}/near/INBOX\nSubFolders Verbatim\n\n\
             Channel ex\nFar :far:\nNear :near:\nPatterns *\nSyncState {root}/state/\n\
             Create Both\nExpunge Both\n",
            port = relay.port,
            root = dir.path().display(),
        );
        std::fs::write(dir.path().join("cfg"), config).expect("write config");
        Setup { server, relay, dir }
    }

    /// Runs `mailsync sync ex`.
    fn run(&self) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-c")
            .arg(self.dir.path().join("cfg"))
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

    /// Runs and asserts success.
    fn run_ok(&self) -> Run {
        let run = self.run();
        assert_eq!(
            run.code, 0,
            "mailsync failed:\n{}{}",
            run.stdout, run.stderr
        );
        run
    }

    /// Runs and returns the most connections the relay saw open at once during the run, and
    /// how many it accepted.
    fn run_counting(&self) -> (Run, usize, usize) {
        // The relay notices a closed connection a moment after the client closed it.
        for _ in 0..500 {
            if self.relay.counts().open_connections == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            self.relay.counts().open_connections,
            0,
            "a connection stays open"
        );
        let before = self.relay.counts();
        if let Ok(mut counts) = self.relay.counts.lock() {
            counts.max_open_connections = 0;
        }
        let run = self.run();
        let counts = self.relay.counts();
        (
            run,
            counts.max_open_connections,
            counts.connections - before.connections,
        )
    }

    fn near_box(&self, folder: &str) -> PathBuf {
        self.dir.path().join("near").join(folder)
    }

    /// Stores a message on the near side (another Maildir client).
    fn near_add(&self, folder: &str, id: &str, flags: &str) {
        let dir = self.near_box(folder).join("cur");
        std::fs::create_dir_all(&dir).expect("near cur folder");
        for sub in ["new", "tmp"] {
            std::fs::create_dir_all(self.near_box(folder).join(sub)).expect("near folder");
        }
        std::fs::write(
            dir.join(format!("1700000000.M{id}P1.test:2,{flags}")),
            message(id),
        )
        .expect("write near message");
    }

    /// The near file holding message `id`.
    fn near_file(&self, folder: &str, id: &str) -> PathBuf {
        for sub in ["cur", "new"] {
            let Ok(entries) = std::fs::read_dir(self.near_box(folder).join(sub)) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let text = std::fs::read_to_string(entry.path()).expect("read message");
                if text.contains(&format!("Message-ID: <{id}@test>")) {
                    return entry.path();
                }
            }
        }
        panic!("no near message {id} in {folder}");
    }

    /// Replaces the flag letters of a near message.
    fn near_set_flags(&self, folder: &str, id: &str, flags: &str) {
        let path = self.near_file(folder, id);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = name.split(":2,").next().unwrap_or(&name).to_string();
        let target = self
            .near_box(folder)
            .join("cur")
            .join(format!("{base}:2,{flags}"));
        std::fs::rename(&path, target).expect("rename near message");
    }

    fn near_delete(&self, folder: &str, id: &str) {
        std::fs::remove_file(self.near_file(folder, id)).expect("delete near message");
    }

    fn far_flags(&self, folder: &str, id: &str, how: &str, names: &str) {
        let header = format!("<{id}@test>");
        self.server
            .flags_by_message_id(USER, folder, &header, how, names);
    }

    fn far_expunge(&self, folder: &str, id: &str) {
        let header = format!("<{id}@test>");
        self.server.expunge_by_message_id(USER, folder, &header);
    }

    /// Both sides of every folder: folder → [far, near] (message id → flag letters).
    fn contents(&self) -> BTreeMap<String, [BTreeMap<String, String>; 2]> {
        let mut result = BTreeMap::new();
        for folder in folders() {
            let far = self.server.flags_by_id(USER, &folder);
            let near = dovecot::maildir_flags_by_id(&self.near_box(&folder));
            result.insert(folder, [far, near]);
        }
        result
    }

    /// The state files by name, without their UIDVALIDITY lines (each server and Maildir
    /// chooses its own); journals or `.new` files left behind would show here too.
    fn states(&self) -> BTreeMap<String, String> {
        let mut states = BTreeMap::new();
        let entries = std::fs::read_dir(self.dir.path().join("state")).expect("state folder");
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".mailsync") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).expect("read state file");
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| !line.contains("UidValidity"))
                .collect();
            states.insert(name, kept.join("\n"));
        }
        states
    }
}

/// Messages on both sides of every folder before the first run.
fn fill(setup: &Setup) {
    for folder in folders() {
        if folder != "INBOX" {
            setup.server.create_mailbox(&folder);
        }
        for n in 0..3 {
            let flags = if n % 2 == 0 { "\\Seen" } else { "" };
            setup
                .server
                .append(&folder, &message(&format!("{folder}far{n}")), flags);
        }
        setup.near_add(&folder, &format!("{folder}near0"), "S");
        setup.near_add(&folder, &format!("{folder}near1"), "");
    }
}

/// Changes on both sides: flags, deletions and new messages in most folders.
fn change(setup: &Setup) {
    for (index, folder) in folders().iter().enumerate() {
        match index % 4 {
            0 => {
                setup.far_flags(folder, &format!("{folder}far1"), "add", "\\Flagged");
                setup.near_delete(folder, &format!("{folder}near1"));
            }
            1 => {
                setup.near_set_flags(folder, &format!("{folder}far0"), "RS");
                setup.far_expunge(folder, &format!("{folder}far2"));
            }
            2 => {
                setup
                    .server
                    .append(folder, &message(&format!("{folder}farnew")), "\\Answered");
                setup.near_add(folder, &format!("{folder}nearnew"), "F");
            }
            _ => {
                setup.far_flags(folder, &format!("{folder}near0"), "remove", "\\Seen");
            }
        }
    }
}

#[test]
fn concurrent_pairs_end_as_sequential_ones_within_the_connection_bound() {
    let parallel = Setup::new(4);
    let sequential = Setup::new(1);
    for setup in [&parallel, &sequential] {
        fill(setup);
    }

    let (first, first_max, first_connections) = parallel.run_counting();
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let (first_seq, seq_max, _) = sequential.run_counting();
    assert_eq!(
        first_seq.code, 0,
        "{}{}",
        first_seq.stdout, first_seq.stderr
    );
    assert!(
        (2..=4).contains(&first_max),
        "MaxConnections 4 with work in 12 folders: {first_max} connections open at once"
    );
    assert!(first_connections <= 4, "{first_connections} connections");
    assert_eq!(seq_max, 1, "MaxConnections 1 opens one connection");
    assert_eq!(first.summary(), first_seq.summary());
    assert!(first.summary().contains("Boxes: 12"), "{}", first.summary());

    let contents = parallel.contents();
    assert_eq!(contents, sequential.contents());
    for (folder, [far, near]) in &contents {
        assert_eq!(far, near, "{folder} not in sync");
        assert_eq!(far.len(), 5, "{folder}: {far:?}");
    }
    assert_eq!(parallel.states(), sequential.states());
    assert_eq!(parallel.states().len(), 12);

    for setup in [&parallel, &sequential] {
        change(setup);
    }
    let (second, second_max, _) = parallel.run_counting();
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let second_seq = sequential.run_ok();
    assert!(
        (2..=4).contains(&second_max),
        "{second_max} connections open at once"
    );
    assert_eq!(second.summary(), second_seq.summary());
    let contents = parallel.contents();
    assert_eq!(contents, sequential.contents());
    for (folder, [far, near]) in &contents {
        assert_eq!(far, near, "{folder} not in sync");
    }
    // The changes really happened.
    assert_eq!(
        contents["INBOX"][0].get("INBOXfar1").map(String::as_str),
        Some("F")
    );
    assert!(!contents["INBOX"][0].contains_key("INBOXnear1"));
    assert_eq!(
        contents["f01"][0].get("f01far0").map(String::as_str),
        Some("RS")
    );
    assert!(!contents["f01"][1].contains_key("f01far2"));
    assert!(contents["f02"][0].contains_key("f02nearnew"));
    assert!(contents["f02"][1].contains_key("f02farnew"));
    assert_eq!(
        contents["f03"][1].get("f03near0").map(String::as_str),
        Some("")
    );
    assert_eq!(parallel.states(), sequential.states());

    // The runs learn their own flag changes once; after that nothing changed, and the
    // unchanged mailboxes need no SELECT and no connection besides the first.
    parallel.run_ok();
    sequential.run_ok();
    let (quiet, quiet_max, quiet_connections) = parallel.run_counting();
    assert_eq!(quiet.code, 0, "{}{}", quiet.stdout, quiet.stderr);
    assert_eq!(
        (quiet_max, quiet_connections),
        (1, 1),
        "nothing changed: one connection"
    );
    assert_eq!(quiet.summary(), sequential.run_ok().summary());
    assert_eq!(parallel.contents(), contents);
    assert_eq!(parallel.states(), sequential.states());
}

#[test]
fn a_failing_folder_does_not_stop_the_others() {
    let parallel = Setup::new(4);
    let sequential = Setup::new(1);
    for setup in [&parallel, &sequential] {
        fill(setup);
        setup.run_ok();
        // f05 loses all its near messages (the mass-deletion guard stops that pair), and
        // every folder gets a new far message.
        for id in ["far0", "far1", "far2", "near0", "near1"] {
            setup.near_delete("f05", &format!("f05{id}"));
        }
        for folder in folders() {
            setup
                .server
                .append(&folder, &message(&format!("{folder}late")), "");
        }
    }
    let run = parallel.run();
    let run_seq = sequential.run();
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run_seq.code, 1, "{}{}", run_seq.stdout, run_seq.stderr);
    for stderr in [&run.stderr, &run_seq.stderr] {
        assert!(
            stderr.contains("near side box f05 lost 5 of the 5 messages"),
            "{stderr}"
        );
    }
    assert_eq!(run.summary(), run_seq.summary());
    let contents = parallel.contents();
    assert_eq!(contents, sequential.contents());
    for (folder, [far, near]) in &contents {
        if folder == "f05" {
            assert!(near.is_empty() && far.len() == 6, "{far:?} {near:?}");
        } else {
            assert_eq!(far, near, "{folder} not in sync");
            assert!(near.contains_key(&format!("{folder}late")), "{folder}");
        }
    }
    assert_eq!(parallel.states(), sequential.states());
}
