//! Incremental listings with CONDSTORE / QRESYNC on a real Dovecot.
//!
//! - The store: after another client changed flags, expunged and added messages, a load
//!   served from the previous run's snapshot plus the changes equals a full `UID FETCH`
//!   listing for every kind of load request the planner makes (with QRESYNC, with CONDSTORE
//!   only), and the server was really asked only for changes.
//! - Whole runs through the binary (IMAP far side, Maildir near side): several runs with
//!   changes on both sides give the same mailboxes on a server with CONDSTORE/QRESYNC and
//!   on one without; the side file `<state>.mailsync` is written only where the server
//!   has CONDSTORE; a damaged or stale side file is ignored (full listing, same result).
//! - Many mailboxes: one STATUS round lets unchanged mailboxes go unselected; a mailbox
//!   changed on either side is still selected and synced.
//! - COMPRESS=DEFLATE (inside STARTTLS): asked for when a run has more to do than its log-in
//!   round, not by a run that finds nothing changed; runs with changes on both sides and a
//!   big message give the same mailboxes compressed; DisableExtension turns it off.
//! - Ordering for latency: a no-change run lists the Maildir boxes ahead while it logs in;
//!   the bodies of new messages are asked for before flag changes are made.

mod dovecot;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;

use dovecot::{Collect, Dovecot, Options, PASS, USER};
use mailsync::config::TlsType;
use mailsync::store::imap::condstore::MailboxSnapshot;
use mailsync::store::imap::{ImapOptions, ImapStore};
use mailsync::store::{LoadRequest, Loaded, OpenOutcome, Store};

fn message(id: &str) -> String {
    format!(
        "From: a@example.org\nTo: b@example.org\nSubject: {id}\nMessage-ID: <{id}@test>\nX-TUID: {:0>12}\n\nbody {id}\n",
        id.len()
    )
}

/// A store with protocol tracing on.
fn traced_store(server: &Dovecot) -> (ImapStore, Collect) {
    let collect = Collect::default();
    let options = ImapOptions {
        trace: true,
        ..ImapOptions::default()
    };
    let store = ImapStore::new(
        &dovecot::store_config(None),
        &dovecot::account(server, TlsType::StartTls),
        options,
        Rc::new(collect.clone()),
    )
    .expect("IMAP store");
    (store, collect)
}

/// Opens `mailbox` (primed with `snapshot`) and loads it; returns the listing, the snapshot
/// the store learnt and the protocol trace.
fn open_and_load(
    server: &Dovecot,
    mailbox: &str,
    snapshot: Option<MailboxSnapshot>,
    request: &LoadRequest,
) -> (Loaded, Option<MailboxSnapshot>, Vec<String>) {
    let (mut store, trace) = traced_store(server);
    store.prime_listing(mailbox, snapshot);
    let opened = store.open_box(mailbox).expect("open mailbox");
    assert!(matches!(opened, OpenOutcome::Opened { .. }), "{opened:?}");
    let mut loaded = store.load(request).expect("load");
    // `\Recent` belongs to whichever session selects first; it is not compared.
    loaded.recent = 0;
    for message in &mut loaded.messages {
        message.recent = false;
    }
    let learnt = store.take_listing();
    store.close_box();
    drop(store);
    (loaded, learnt, trace.lines())
}

fn requests(old_max: u32) -> Vec<(&'static str, LoadRequest)> {
    vec![
        (
            "everything, sizes and TUIDs of new messages",
            LoadRequest {
                range: Some((1, u32::MAX)),
                new: true,
                flags: true,
                sizes_from: Some(old_max + 1),
                tuids_from: Some(old_max + 1),
                ..LoadRequest::default()
            },
        ),
        (
            "old messages only",
            LoadRequest {
                range: Some((1, old_max - 5)),
                flags: true,
                ..LoadRequest::default()
            },
        ),
        (
            "from a start with exceptions, Message-IDs and all sizes",
            LoadRequest {
                range: Some((10, u32::MAX)),
                exceptions: vec![2, 3, 5],
                new: true,
                flags: true,
                sizes_from: Some(1),
                message_ids_upto: Some(15),
                ..LoadRequest::default()
            },
        ),
        (
            "exceptions only, no flags",
            LoadRequest {
                range: None,
                exceptions: vec![4, 7, 26],
                message_ids_upto: Some(30),
                ..LoadRequest::default()
            },
        ),
    ]
}

/// The other client's changes: flags set and cleared, expunges, new messages.
fn change_mailbox(server: &Dovecot, mailbox: &str) {
    let flags = |how: &str, names: &str, uids: &str| {
        server.doveadm(&[
            "flags", how, "-u", USER, names, "mailbox", mailbox, "uid", uids,
        ]);
    };
    flags("add", "\\Seen \\Flagged", "2:4");
    flags("remove", "\\Seen", "8");
    flags("add", "$Forwarded \\Answered", "12");
    flags("add", "\\Deleted", "13");
    server.doveadm(&["expunge", "-u", USER, "mailbox", mailbox, "uid", "5,6,20"]);
    for n in 0..4 {
        server.append(mailbox, &message(&format!("new{n}")), "");
    }
    server.append(mailbox, &message("newseen"), "\\Seen");
}

fn incremental_equals_full(options: Options, expect_in_select: bool) {
    let server = Dovecot::start_with(options);
    let mailbox = "box";
    server.create_mailbox(mailbox);
    for n in 1..=25 {
        let flags = match n % 4 {
            0 => "\\Seen",
            1 => "",
            2 => "\\Seen \\Answered",
            _ => "\\Flagged",
        };
        server.append(mailbox, &message(&format!("m{n}")), flags);
    }
    let everything = &requests(25)[0].1;
    let (first, snapshot, _) = open_and_load(&server, mailbox, None, everything);
    assert_eq!(first.messages.len(), 25);
    let snapshot = snapshot.expect("a full listing on a CONDSTORE server gives a snapshot");
    assert_eq!(snapshot.messages.len(), 25);
    assert!(snapshot.highest_modseq > 0);

    // Nothing changed: the snapshot serves the load, no FETCH at all.
    let (again, unchanged, trace) =
        open_and_load(&server, mailbox, Some(snapshot.clone()), everything);
    assert_eq!(again, first);
    assert_eq!(unchanged.as_ref(), Some(&snapshot));
    assert!(
        !trace.iter().any(|l| l.contains("FETCH")),
        "an unchanged mailbox needs no FETCH:\n{}",
        trace.join("\n")
    );

    change_mailbox(&server, mailbox);
    for (what, request) in requests(25) {
        let (full, full_snapshot, full_trace) = open_and_load(&server, mailbox, None, &request);
        let (incremental, incremental_snapshot, trace) =
            open_and_load(&server, mailbox, Some(snapshot.clone()), &request);
        assert_eq!(
            incremental,
            full,
            "{what}: incremental listing differs from the full one\n{}",
            trace.join("\n")
        );
        assert!(
            full_trace
                .iter()
                .any(|l| l.contains("UID FETCH") && l.contains("FLAGS")),
            "{what}: the full load lists the mailbox:\n{}",
            full_trace.join("\n")
        );
        let asked_changes = if expect_in_select {
            trace
                .iter()
                .any(|l| l.contains("SELECT") && l.contains("QRESYNC ("))
        } else {
            trace.iter().any(|l| l.contains("CHANGEDSINCE"))
        };
        assert!(
            asked_changes,
            "{what}: changes were not asked for:\n{}",
            trace.join("\n")
        );
        assert!(
            !trace.iter().any(|l| l.contains(">>> ")
                && l.contains("UID FETCH")
                && l.contains("FLAGS")
                && !l.contains("CHANGEDSINCE")),
            "{what}: the incremental load listed the mailbox in full:\n{}",
            trace.join("\n")
        );
        let incremental_snapshot = incremental_snapshot.expect("snapshot after changes");
        assert_eq!(incremental_snapshot.messages.len(), 27, "{what}");
        assert!(incremental_snapshot.highest_modseq > snapshot.highest_modseq);
        if let Some(full_snapshot) = full_snapshot {
            assert_eq!(incremental_snapshot, full_snapshot, "{what}");
        }
    }
    // A snapshot of another UIDVALIDITY is not used.
    let foreign = MailboxSnapshot {
        uid_validity: snapshot.uid_validity.wrapping_add(1),
        ..snapshot.clone()
    };
    let (full, _, _) = open_and_load(&server, mailbox, None, everything);
    let (fallback, _, trace) = open_and_load(&server, mailbox, Some(foreign), everything);
    assert_eq!(fallback, full);
    assert!(trace.iter().any(|l| l.contains("UID FETCH 1:")));
}

#[test]
fn incremental_listing_equals_full_listing_with_qresync() {
    incremental_equals_full(Options::default(), true);
}

#[test]
fn incremental_listing_equals_full_listing_with_condstore_only() {
    incremental_equals_full(Options::without(&["QRESYNC"]), false);
}

#[test]
fn no_snapshot_without_condstore() {
    let server = Dovecot::start_with(Options::without(&["CONDSTORE", "QRESYNC"]));
    server.create_mailbox("box");
    server.append("box", &message("a"), "\\Seen");
    let request = &requests(25)[0].1;
    let (loaded, snapshot, trace) = open_and_load(&server, "box", None, request);
    assert_eq!(loaded.messages.len(), 1);
    assert_eq!(snapshot, None);
    assert!(
        !trace
            .iter()
            .any(|l| l.contains("CONDSTORE") && l.starts_with(">>>"))
    );
}

// ---------------------------------------------------------------------------------------
// Whole runs through the binary.

/// A channel between the Dovecot user (far) and a Maildir (near), run by the binary.
struct Setup {
    server: Dovecot,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(options: Options) -> Setup {
        let server = Dovecot::start_with(options);
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("near")).expect("near store folder");
        let config = format!(
            "IMAPAccount acc\nHost localhost\nPort {port}\nUser {USER}\nPass \"{PASS}\"\n\
             TLSType STARTTLS\nCertificateFile {ca}\nSystemCertificates no\n\n\
             IMAPStore far\nAccount acc\n\n\
             MaildirStore near\nPath {root}/near/\nInbox {root}/near/INBOX\nSubFolders Verbatim\n\n\
             Channel ex\nFar :far:\nNear :near:\nPatterns *\nSyncState {root}/state/\n\
             Create Both\nExpunge Both\n",
            port = server.port,
            ca = server.ca_file.display(),
            root = dir.path().display(),
        );
        std::fs::write(dir.path().join("cfg"), config).expect("write config");
        Setup { server, dir }
    }

    /// Runs `mailsync sync <args> ex`; returns standard output (asserting success).
    fn run(&self, args: &[&str]) -> String {
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
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "mailsync {args:?} failed:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn near_box(&self, mailbox: &str) -> PathBuf {
        self.dir.path().join("near").join(mailbox)
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Side files in the state folder.
    fn side_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.state_dir())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with(".mailsync"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Both sides of every mailbox: mailbox → (far: id → flag letters, near: id → letters).
    fn contents(&self, mailboxes: &[&str]) -> BTreeMap<String, [BTreeMap<String, String>; 2]> {
        let mut result = BTreeMap::new();
        for mailbox in mailboxes {
            let far = self.server.flags_by_id(USER, mailbox);
            let near = dovecot::maildir_flags_by_id(&self.near_box(mailbox));
            result.insert(mailbox.to_string(), [far, near]);
        }
        result
    }

    /// Asserts that INBOX holds `count` messages with the same flags on both sides; returns
    /// the far side's flags by Message-ID.
    fn inbox_alike(&self, count: usize) -> BTreeMap<String, String> {
        let mut contents = self.contents(&["INBOX"]);
        let [far, near] = contents.remove("INBOX").unwrap_or_default();
        assert_eq!(far.len(), count, "far: {far:?}");
        assert_eq!(far, near);
        far
    }

    /// Appends the messages `<prefix><n>` for each `n` of `numbers` to the server's INBOX.
    fn append_new(&self, prefix: &str, numbers: std::ops::Range<usize>) {
        for n in numbers {
            self.server
                .append("INBOX", &message(&format!("{prefix}{n}")), "");
        }
    }

    /// Adds and removes flag letters on a near-side message (another Maildir client).
    fn near_flags(&self, mailbox: &str, id: &str, add: &str, remove: &str) {
        for sub in ["cur", "new"] {
            let dir = self.near_box(mailbox).join(sub);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let text = std::fs::read_to_string(entry.path()).expect("read message");
                if !text.contains(&format!("Message-ID: <{id}@test>")) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let (base, old) = name.split_once(":2,").unwrap_or((&name, ""));
                let mut flags: Vec<char> = old
                    .chars()
                    .chain(add.chars())
                    .filter(|c| !remove.contains(*c))
                    .collect();
                flags.sort();
                flags.dedup();
                let target = self.near_box(mailbox).join("cur").join(format!(
                    "{base}:2,{}",
                    flags.into_iter().collect::<String>()
                ));
                std::fs::rename(entry.path(), target).expect("rename message");
                return;
            }
        }
        panic!("no near message {id} in {mailbox}");
    }

    fn far_flags(&self, mailbox: &str, id: &str, how: &str, names: &str) {
        let header = format!("<{id}@test>");
        self.server
            .flags_by_message_id(USER, mailbox, &header, how, names);
    }

    fn far_expunge(&self, mailbox: &str, id: &str) {
        let header = format!("<{id}@test>");
        self.server.expunge_by_message_id(USER, mailbox, &header);
    }

    fn near_add(&self, mailbox: &str, id: &str, flags: &str) {
        let dir = self.near_box(mailbox).join("cur");
        std::fs::write(
            dir.join(format!("1700000000.M{id}P1.test:2,{flags}")),
            message(id),
        )
        .expect("write near message");
    }
}

const BOXES: [&str; 3] = ["INBOX", "work", "lists"];

/// The scenario: runs with changes on both sides in between; returns the contents after
/// every run.
fn scenario(
    setup: &Setup,
    damage_side_file: bool,
) -> Vec<BTreeMap<String, [BTreeMap<String, String>; 2]>> {
    for mailbox in &BOXES[1..] {
        setup.server.create_mailbox(mailbox);
    }
    for mailbox in BOXES {
        for n in 0..6 {
            let flags = if n % 2 == 0 { "\\Seen" } else { "" };
            setup
                .server
                .append(mailbox, &message(&format!("{mailbox}{n}")), flags);
        }
    }
    let mut seen = Vec::new();
    setup.run(&[]);
    seen.push(setup.contents(&BOXES));

    // Far: flags and an expunge; near: a flag and a new message.
    setup.far_flags("work", "work1", "add", "\\Flagged \\Seen");
    setup.far_flags("work", "work2", "remove", "\\Seen");
    setup.far_expunge("lists", "lists3");
    setup.near_flags("INBOX", "INBOX1", "R", "");
    setup.near_add("lists", "nearnew", "S");
    setup.run(&[]);
    seen.push(setup.contents(&BOXES));

    if damage_side_file {
        for file in setup.side_files() {
            let text = std::fs::read_to_string(&file).expect("side file");
            // A foreign UIDVALIDITY for the first mailbox, a truncation elsewhere.
            let damaged = if text.contains("side far\n") {
                text.replacen("side far\n", "side far\n9", 1)
            } else {
                text.clone()
            };
            std::fs::write(&file, &damaged[..damaged.len() / 2 + 3]).expect("damage");
        }
    }
    // No change at all.
    setup.run(&[]);
    seen.push(setup.contents(&BOXES));

    // Both sides change the same mailbox; a far-side message arrives elsewhere.
    setup.far_flags("INBOX", "INBOX2", "add", "\\Deleted");
    setup.near_flags("INBOX", "INBOX4", "F", "S");
    setup
        .server
        .append("work", &message("farnew"), "\\Answered");
    setup.far_expunge("work", "work5");
    setup.run(&[]);
    seen.push(setup.contents(&BOXES));

    setup.run(&[]);
    seen.push(setup.contents(&BOXES));
    seen
}

#[test]
fn runs_give_the_same_mailboxes_with_and_without_condstore() {
    let with = Setup::new(Options::default());
    let without = Setup::new(Options::without(&["CONDSTORE", "QRESYNC"]));
    let damaged = Setup::new(Options::default());
    let seen_with = scenario(&with, false);
    let seen_without = scenario(&without, false);
    let seen_damaged = scenario(&damaged, true);
    for (run, ((a, b), c)) in seen_with
        .iter()
        .zip(&seen_without)
        .zip(&seen_damaged)
        .enumerate()
    {
        assert_eq!(a, b, "run {run}: with and without CONDSTORE differ");
        assert_eq!(
            a, c,
            "run {run}: with a damaged side file the result differs"
        );
        for (mailbox, [far, near]) in a {
            assert_eq!(far, near, "run {run}: {mailbox} not in sync");
        }
    }
    // The scenario really changed things.
    assert!(seen_with[1]["work"][0]["work1"].contains('F'));
    assert!(seen_with[3]["INBOX"][1]["INBOX4"].contains('F'));
    assert!(!seen_with[3]["work"][1].contains_key("work5"));
    assert!(seen_with[3]["work"][1].contains_key("farnew"));
    // One side file per pair where the server has CONDSTORE, none without.
    assert_eq!(with.side_files().len(), BOXES.len());
    assert_eq!(damaged.side_files().len(), BOXES.len());
    assert!(without.side_files().is_empty());
    for file in with.side_files() {
        let text = std::fs::read_to_string(&file).expect("side file");
        assert!(text.starts_with("mailsync listing 1\nside far\n"), "{text}");
        assert!(text.ends_with("end\n"), "{text}");
        // The state file next to it is mbsync's, unchanged in form.
        let state = PathBuf::from(file.to_string_lossy().trim_end_matches(".mailsync"));
        let state_text = std::fs::read_to_string(&state).expect("state file");
        assert!(state_text.starts_with("FarUidValidity "), "{state_text}");
    }
}

/// SELECT commands in a `-Dn` trace, by mailbox.
fn selects(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|l| {
            let rest = l.split(">>> ").nth(1)?;
            let mut words = rest.split_whitespace();
            let _tag = words.next()?;
            (words.next()? == "SELECT")
                .then(|| words.next().unwrap_or("").trim_matches('"').to_string())
        })
        .collect()
}

#[test]
fn unchanged_mailboxes_are_not_selected() {
    let setup = Setup::new(Options::default());
    let boxes = ["INBOX", "a", "b", "c", "d"];
    for mailbox in &boxes[1..] {
        setup.server.create_mailbox(mailbox);
    }
    for mailbox in boxes {
        for n in 0..3 {
            setup
                .server
                .append(mailbox, &message(&format!("{mailbox}{n}")), "\\Seen");
        }
    }
    let first = setup.run(&["-Dn"]);
    assert_eq!(selects(&first).len(), boxes.len(), "{first}");
    let before = setup.contents(&boxes);

    let quiet = setup.run(&["-Dn"]);
    assert!(selects(&quiet).is_empty(), "no mailbox changed:\n{quiet}");
    assert!(quiet.contains("STATUS"), "{quiet}");
    assert_eq!(setup.contents(&boxes), before);

    // A far-side change: only that mailbox is selected.
    setup.far_flags("b", "b1", "add", "\\Flagged");
    let one = setup.run(&["-Dn"]);
    assert_eq!(selects(&one), vec!["b".to_string()], "{one}");
    assert_eq!(setup.contents(&["b"])["b"][1]["b1"], "FS");

    // A near-side change: the far mailbox is selected to store the flag.
    setup.near_flags("c", "c2", "R", "");
    let near = setup.run(&["-Dn"]);
    assert_eq!(selects(&near), vec!["c".to_string()], "{near}");
    assert_eq!(setup.contents(&["c"])["c"][0]["c2"], "RS");
    // The snapshot was taken before the run stored the flag, so the next run learns its
    // own change once; after that the mailbox is quiet again.
    let settle = setup.run(&["-Dn"]);
    assert_eq!(selects(&settle), vec!["c".to_string()], "{settle}");

    // A new far message in a mailbox whose count stays (one expunged, one added).
    setup.far_expunge("d", "d0");
    setup.server.append("d", &message("dnew"), "");
    let swapped = setup.run(&["-Dn"]);
    assert_eq!(selects(&swapped), vec!["d".to_string()], "{swapped}");
    let d = &setup.contents(&["d"])["d"];
    assert_eq!(d[0], d[1]);
    assert!(d[1].contains_key("dnew") && !d[1].contains_key("d0"));

    let quiet = setup.run(&["-Dn"]);
    assert!(selects(&quiet).is_empty(), "no mailbox changed:\n{quiet}");
}

/// Round trips of a no-change run through a relay with 30 ms latency (the WAN profile), for
/// a mailbox config `Far :far:<far>` plus `Patterns` lines. The design: one round for the
/// log-in with everything that can follow it unasked (CAPABILITY, ENABLE QRESYNC, NAMESPACE,
/// the LIST of a Patterns channel and the STATUS of every mailbox the last run kept a
/// snapshot of, so an unchanged mailbox needs no SELECT), and the LOGOUT, whose answer is not
/// waited for but which the relay counts as a round of its own.
const NO_CHANGE_ROUNDS: usize = 2;

fn no_change_rounds(boxes: &[&str], channel: &str) -> (dovecot::RelayCounts, String) {
    let server = Dovecot::start();
    for mailbox in boxes {
        if *mailbox != "INBOX" {
            server.create_mailbox(mailbox);
        }
        for n in 0..5 {
            server.append(mailbox, &message(&format!("{mailbox}{n}")), "\\Seen");
        }
    }
    let relay = dovecot::Relay::start(server.port, dovecot::RelayMode::Latency(30));
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("near")).expect("near store folder");
    let config = format!(
        "IMAPAccount acc\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass \"{PASS}\"\n\
         TLSType None\nAuthMechs LOGIN\n\n\
         IMAPStore far\nAccount acc\n\n\
         MaildirStore near\nPath {root}/near/\nInbox {root}/near/INBOX\nSubFolders Verbatim\n\n\
         Channel ex\n{channel}{sync_state}Create Both\nExpunge Both\n",
        port = relay.port,
        root = dir.path().display(),
        sync_state = if channel.contains("SyncState") {
            String::new()
        } else {
            format!("SyncState {}/state/\n", dir.path().display())
        },
    );
    std::fs::write(dir.path().join("cfg"), config).expect("write config");
    let run = || {
        let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-Dnm")
            .arg("-c")
            .arg(dir.path().join("cfg"))
            .arg("ex")
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run mailsync");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "mailsync failed:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let first = run();
    assert_eq!(selects(&first).len(), boxes.len(), "{first}");
    // Mailbox directories are listed ahead (while the log-in round travels) only once they
    // have been left alone for two seconds, as any scheduled run finds them.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let before = relay.counts();
    let quiet = run();
    let after = relay.counts();
    assert!(selects(&quiet).len() <= 1, "no mailbox changed:\n{quiet}");
    let counts = dovecot::RelayCounts {
        commands: after.commands - before.commands,
        rounds: after.rounds - before.rounds,
        continuations: after.continuations - before.continuations,
        ..dovecot::RelayCounts::default()
    };
    (counts, quiet)
}

#[test]
fn a_no_change_run_of_one_mailbox_takes_two_round_trips() {
    for channel in [
        "Far :far:\nNear :near:\nPatterns *\n",
        // The state (and the snapshot) inside the near Maildir box.
        "Far :far:\nNear :near:\nPatterns *\nSyncState *\n",
        "Far :far:INBOX\nNear :near:INBOX\n",
    ] {
        let (counts, trace) = no_change_rounds(&["INBOX"], channel);
        eprintln!("{channel:?}: {counts:?}");
        assert!(
            counts.rounds <= NO_CHANGE_ROUNDS,
            "{channel:?}: a no-change run took {counts:?}:\n{trace}"
        );
        assert_eq!(read_ahead_scans(&trace), 1, "{channel:?}:\n{trace}");
        // The mailbox's STATUS went with the log-in and showed it unchanged: no SELECT.
        assert!(selects(&trace).is_empty(), "{trace}");
        assert!(trace.contains("STATUS INBOX ("), "{trace}");
        assert!(!trace.contains("FETCH"), "{trace}");
        // STATUS goes ahead of LIST: Dovecot answers a STATUS after a LIST by re-reading the
        // mailbox (0.35 s at 50,000 messages).
        if let Some(list) = trace.find("LIST \"\" *") {
            let status = trace.find("STATUS INBOX (").unwrap_or(usize::MAX);
            assert!(status < list, "STATUS after LIST:\n{trace}");
        }
    }
}

#[test]
fn a_no_change_run_of_several_mailboxes_takes_two_round_trips() {
    let boxes = ["INBOX", "a", "b", "c", "d", "e"];
    let (counts, trace) = no_change_rounds(&boxes, "Far :far:\nNear :near:\nPatterns *\n");
    eprintln!("{counts:?}");
    assert!(selects(&trace).is_empty(), "{trace}");
    assert!(
        counts.rounds <= NO_CHANGE_ROUNDS,
        "a no-change run of {} mailboxes took {counts:?}:\n{trace}",
        boxes.len()
    );
    // The counts see every mailbox's STATUS: they went in the log-in's round.
    assert!(counts.commands >= boxes.len() + 2, "{counts:?}");
    assert_eq!(read_ahead_scans(&trace), boxes.len(), "{trace}");
}

/// Scans that took the names a read-ahead listed, in a `-Dm` trace.
fn read_ahead_scans(trace: &str) -> usize {
    trace
        .lines()
        .filter(|line| line.ends_with("the names listed ahead are current"))
        .count()
}

/// COMPRESS commands sent, in a `-Dn` trace.
fn compress_commands(trace: &str) -> usize {
    trace
        .lines()
        .filter(|l| l.contains(">>> ") && l.contains("COMPRESS DEFLATE"))
        .count()
}

#[test]
fn compression_is_used_when_a_run_has_work_beyond_its_log_in() {
    let setup = Setup::new(Options {
        compress: true,
        ..Options::default()
    });
    for n in 0..20 {
        setup
            .server
            .append("INBOX", &message(&format!("c{n}")), "\\Seen");
    }
    // A big message: its body crosses many compressed reads.
    let big_body: String = (0..6000)
        .map(|n| format!("line {n} of a long message, some text to compress\r\n"))
        .collect();
    let big = format!("Message-ID: <big@example.test>\r\nSubject: big\r\n\r\n{big_body}");
    setup.server.append("INBOX", &big, "");
    let first = setup.run(&["-Dn"]);
    assert_eq!(compress_commands(&first), 1, "{first}");
    setup.inbox_alike(21);
    let near_big = ["cur", "new"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(setup.near_box("INBOX").join(sub)).expect("near box"))
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .find(|data| data.starts_with(b"Message-ID: <big@"))
        .expect("the big message on the near side");
    assert!(
        near_big.ends_with(b"line 5999 of a long message, some text to compress\n"),
        "the big message arrived whole"
    );

    // Nothing changed: the run ends with its log-in round and asks for no compression.
    let quiet = setup.run(&["-Dn"]);
    assert_eq!(compress_commands(&quiet), 0, "{quiet}");

    // Changes on both sides, synced over the compressed connection both ways.
    setup.server.append("INBOX", &message("far-new"), "");
    std::fs::write(
        setup
            .near_box("INBOX")
            .join("new")
            .join("1700000000.near1.test"),
        message("near-new"),
    )
    .expect("near message");
    let both = setup.run(&["-Dn"]);
    assert_eq!(compress_commands(&both), 1, "{both}");
    setup.inbox_alike(23);

    // DisableExtension COMPRESS=DEFLATE: not asked for.
    let config = std::fs::read_to_string(setup.dir.path().join("cfg")).expect("config");
    std::fs::write(
        setup.dir.path().join("cfg"),
        config.replace(
            "TLSType STARTTLS\n",
            "TLSType STARTTLS\nDisableExtension COMPRESS=DEFLATE\n",
        ),
    )
    .expect("config");
    setup.server.append("INBOX", &message("far-plain"), "");
    let plain = setup.run(&["-Dn"]);
    assert_eq!(compress_commands(&plain), 0, "{plain}");
    setup.inbox_alike(24);
}

#[test]
fn sizes_of_new_messages_come_in_the_select_round() {
    let setup = Setup::new(Options::default());
    setup.append_new("s", 0..3);
    setup.run(&[]);
    setup.append_new("s", 3..6);
    let trace = setup.run(&["-Dn"]);
    let lines: Vec<&str> = trace.lines().collect();
    let position = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    let sizes: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(">>> ") && l.contains("RFC822.SIZE"))
        .collect();
    assert_eq!(sizes.len(), 1, "one size FETCH:\n{trace}");
    assert!(sizes[0].contains("UID FETCH 4:*"), "{trace}");
    // Written behind the SELECT, before its answer: the same round.
    let select = position(&|l| l.contains(">>> ") && l.contains("SELECT"));
    let size = position(&|l| l.contains(">>> ") && l.contains("RFC822.SIZE"));
    let selected = position(&|l| l.contains("OK [READ-WRITE]"));
    assert!(
        select < size && size < selected,
        "{select:?} {size:?} {selected:?}:\n{trace}"
    );
    setup.inbox_alike(6);
}

#[test]
fn the_next_sizes_are_asked_while_bodies_still_stream_in() {
    // A first download of more messages than one size round covers (2,000): the second
    // round goes out while FETCHes of the first round's messages are still being sent, so
    // the read-ahead never waits for the sizes of the next chunk.
    let setup = Setup::new(Options::default());
    let messages: Vec<String> = (0..2300).map(|n| message(&format!("z{n}"))).collect();
    setup.server.import_into_inbox(&messages);
    let trace = setup.run(&["-Dn"]);
    let sent: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains(">>> ") && l.contains("UID FETCH"))
        .collect();
    let size_rounds: Vec<usize> = (0..sent.len())
        .filter(|&i| sent[i].contains("RFC822.SIZE") && !sent[i].contains("BODY"))
        .collect();
    assert_eq!(size_rounds.len(), 2, "two size rounds:\n{trace}");
    let first_uid = |line: &str| -> Option<u32> {
        let set = line.split("UID FETCH ").nth(1)?;
        set.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let second = first_uid(sent[size_rounds[1]]).expect("the second round's UIDs");
    let bodies_of_the_first_chunk_after = sent[size_rounds[1]..]
        .iter()
        .filter(|l| l.contains("BODY.PEEK[]"))
        .filter(|l| first_uid(l).is_some_and(|uid| uid < second))
        .count();
    assert!(
        bodies_of_the_first_chunk_after > 0,
        "FETCHes of messages before UID {second} follow the second size round:\n{}",
        sent.join("\n")
    );
    setup.inbox_alike(2300);
}

#[test]
fn bodies_are_asked_for_before_flag_changes_are_made() {
    // With new far messages and near flag changes to send, the FETCH of the bodies goes
    // out first: the messages travel while the flag changes are made.
    let setup = Setup::new(Options::default());
    setup.append_new("b", 0..3);
    setup.run(&[]);
    setup.near_flags("INBOX", "b1", "F", "");
    setup.append_new("b", 3..5);
    let trace = setup.run(&["-Dn"]);
    let sent = |what: &str| {
        trace
            .lines()
            .position(|l| l.contains(">>> ") && l.contains(what))
    };
    let (fetch, store) = (sent("BODY.PEEK[]"), sent("UID STORE"));
    assert!(
        fetch.is_some() && store.is_some() && fetch < store,
        "{fetch:?} {store:?}:\n{trace}"
    );
    let far = setup.inbox_alike(5);
    assert_eq!(
        far.values().filter(|flags| flags.contains('F')).count(),
        1,
        "{far:?}"
    );
}
