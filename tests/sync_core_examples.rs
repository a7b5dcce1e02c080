//! Worked examples of the sync spec (sync-semantics §9) run through the `mbsync`-compatible
//! command line (`mailsync sync …`) on real Maildirs, checking exit codes, console output,
//! state files and mailbox contents.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Example {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn content(subject: &str) -> String {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: {subject}\nMessage-ID: <{subject}@example.org>\n\nBody of {subject}\n"
    )
}

fn check<T>(result: std::io::Result<T>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("I/O failed: {e}"),
    }
}

impl Example {
    fn new(
        far: &[(u32, &str, &str)],
        near: &[(u32, &str, &str)],
        far_extra: &str,
        near_extra: &str,
        channel_extra: &str,
    ) -> Example {
        let dir = check(tempfile::tempdir());
        let root = dir.path().to_path_buf();
        let example = Example { _dir: dir, root };
        example.make_box("farbox", 1000, far);
        example.make_box("nearbox", 2000, near);
        let r = example.root.display();
        let cfg = format!(
            "MaildirStore far\nPath {r}/\nInbox {r}/farinbox\n{far_extra}\n\nMaildirStore near\nPath {r}/\nInbox {r}/nearinbox\n{near_extra}\n\nChannel ex\nFar :far:farbox\nNear :near:nearbox\nSyncState *\n{channel_extra}\n"
        );
        check(fs::write(example.root.join("cfg"), cfg));
        example
    }

    fn make_box(&self, name: &str, uid_validity: u32, messages: &[(u32, &str, &str)]) {
        let base = self.root.join(name);
        for sub in ["cur", "new", "tmp"] {
            check(fs::create_dir_all(base.join(sub)));
        }
        let mut highest = 0;
        for &(uid, subject, flags) in messages {
            check(fs::write(
                base.join("cur")
                    .join(format!("m{subject},U={uid}:2,{flags}")),
                content(subject),
            ));
            highest = highest.max(uid);
        }
        check(fs::write(
            base.join(".uidvalidity"),
            format!("{uid_validity}\n{highest}\n"),
        ));
    }

    fn run(&self, args: &[&str]) -> Output {
        let cfg = self.root.join("cfg");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mailsync"));
        command
            .arg("sync")
            .arg("-c")
            .arg(&cfg)
            .arg("-Tz")
            .args(args)
            .arg("ex")
            .env("HOME", &self.root)
            .env_remove("XDG_CONFIG_HOME")
            .env("XDG_STATE_HOME", self.root.join("state"));
        let out = check(command.output());
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn state(&self, suffix: &str) -> Option<String> {
        fs::read_to_string(
            self.root
                .join("nearbox")
                .join(format!(".mbsyncstate{suffix}")),
        )
        .ok()
    }

    fn write_state(&self, text: &str) {
        check(fs::write(self.root.join("nearbox/.mbsyncstate"), text));
    }

    fn files(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["cur", "new"] {
            if let Ok(entries) = fs::read_dir(self.root.join(name).join(sub)) {
                for e in entries.flatten() {
                    out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        out.sort();
        out
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn exists(path: &Path) -> bool {
    path.exists()
}

#[test]
fn example_1_first_sync_and_summary() {
    let ex = Example::new(
        &[(1, "a", "S"), (2, "b", "")],
        &[(1, "c", "FR")],
        "",
        "",
        "",
    );
    let out = ex.run(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Channels: 1    Boxes: 1    Far: +1 *0 #0 -0    Near: +2 *0 #0 -0\n"
    );
    assert_eq!(out.stderr, "");
    assert_eq!(
        ex.state("").as_deref(),
        Some(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n3 1 FR\n1 2 S\n2 3 \n"
        )
    );
    for suffix in [".journal", ".new", ".lock"] {
        assert!(ex.state(suffix).is_none());
    }
    assert_eq!(
        check(fs::read_to_string(ex.path("farbox/.uidvalidity"))),
        "1000\n3\n"
    );
}

#[test]
fn example_10_genuine_uid_validity_change() {
    let ex = Example::new(
        &[(1, "m1", "S"), (2, "m2", "S"), (3, "m3", "S")],
        &[(1, "m1", "S"), (2, "other", "S"), (3, "m3", "S")],
        "",
        "",
        "",
    );
    let state = "FarUidValidity 1000\nNearUidValidity 1999\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n";
    ex.write_state(state);
    let out = ex.run(&[]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error: channel ex, near side box nearbox (at UID 2): UIDVALIDITY genuinely changed.\n"
    );
    assert_eq!(
        out.stdout,
        "Channels: 1    Boxes: 1    Far: +0 *0 #0 -0    Near: +0 *0 #0 -0\n"
    );
    assert_eq!(ex.state("").as_deref(), Some(state));
    assert!(ex.state(".journal").is_none());
}

#[test]
fn example_9_recovered_uid_validity_change() {
    let ex = Example::new(
        &[(1, "m1", "S"), (2, "m2", "S"), (3, "m3", "S")],
        &[(1, "m1", "S"), (2, "m2", "S"), (3, "m3", "S")],
        "",
        "",
        "",
    );
    ex.write_state("FarUidValidity 1000\nNearUidValidity 1999\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n");
    let out = ex.run(&[]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "Notice: channel ex, near side box nearbox: Recovered from change of UIDVALIDITY.\nChannels: 1    Boxes: 1    Far: +0 *0 #0 -0    Near: +0 *0 #0 -0\n"
    );
    assert_eq!(
        ex.state("").as_deref(),
        Some(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n"
        )
    );
}

#[test]
fn example_16_expunge_solo_with_conflict_notice() {
    let ex = Example::new(
        &[(2, "b", "ST"), (3, "c", "S"), (5, "e", "T")],
        &[
            (1, "a", "FS"),
            (2, "b", "S"),
            (3, "c", "ST"),
            (4, "d", "ST"),
        ],
        "",
        "",
        "ExpungeSolo Both",
    );
    ex.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n");
    let out = ex.run(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Notice: conflicting changes in (1,1)\nChannels: 1    Boxes: 1    Far: +1 *1 #0 -0    Near: +1 *2 #0 -1\n"
    );
    assert_eq!(
        ex.state("").as_deref(),
        Some(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 5\n\n2 2 ST\n3 3 ST\n6 4 ST\n5 5 T\n"
        )
    );
    let near = ex.files("nearbox");
    assert!(!near.iter().any(|f| f.contains("ma,")), "{near:?}");
}

#[test]
fn example_18_dry_run_with_ext_exit() {
    let ex = Example::new(&[(1, "a", "S"), (2, "b", "")], &[(1, "c", "F")], "", "", "");
    let before = (ex.files("farbox"), ex.files("nearbox"));
    let out = ex.run(&["-y"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "Channels: 1    Boxes: 1    Far: +1 *0 #0 -0    Near: +2 *0 #0 -0\n"
    );
    let out = ex.run(&["-y", "-e"]);
    assert_eq!(out.code, 96);
    assert_eq!((ex.files("farbox"), ex.files("nearbox")), before);
    for suffix in ["", ".journal", ".new", ".lock"] {
        assert!(ex.state(suffix).is_none());
    }
}

#[test]
fn example_20_unread_stop_message() {
    let far: Vec<(u32, String)> = (1..=6).map(|u| (u, format!("m{u}"))).collect();
    let far: Vec<(u32, &str, &str)> = far.iter().map(|(u, s)| (*u, s.as_str(), "")).collect();
    let ex = Example::new(&far, &[], "", "", "MaxMessages 2");
    let out = ex.run(&[]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "nearbox: 4 unread messages in excess of MaxMessages (2).\nPlease set ExpireUnread to decide outcome. Skipping mailbox.\n"
    );
    assert_eq!(
        out.stdout,
        "Channels: 1    Boxes: 1    Far: +0 *0 #0 -0    Near: +0 *0 #0 -0\n"
    );
    assert_eq!(
        ex.state(".journal").as_deref(),
        Some("5\n| 1000 2000\n+ 1 0\n+ 2 0\n+ 3 0\n+ 4 0\n+ 5 0\n+ 6 0\n")
    );
    assert_eq!(ex.state(".new").as_deref(), Some(""));
}

#[test]
fn example_22_step_numbering_with_debug_and_interruption() {
    let ex = Example::new(
        &[(1, "a", "S"), (2, "b", "")],
        &[(1, "c", "FR")],
        "",
        "",
        "",
    );
    let out = ex.run(&["-D", "-Tj"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "### 17 steps, 14 entries ###"),
        "{}",
        out.stdout
    );

    let ex = Example::new(
        &[(1, "a", "S"), (2, "b", "")],
        &[(1, "c", "FR")],
        "",
        "",
        "",
    );
    let out = ex.run(&["-D", "-Ts11"]);
    assert_eq!(out.code, 100);
    assert!(!out.stdout.contains("Channels:"));
    assert_eq!(
        check(fs::read_to_string(ex.path("farbox/.uidvalidity"))),
        "1000\n3\n"
    );
    assert!(
        ex.state(".journal")
            .is_some_and(|j| j.ends_with("% 0 1 10\n") && j.lines().count() == 11)
    );
    assert!(exists(&ex.path("nearbox/.mbsyncstate.lock")));
    let out = ex.run(&["-Tj"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "### 9 steps, 9 entries ###\nChannels: 1    Boxes: 1    Far: +0 *0 #0 -0    Near: +2 *0 #0 -0\n"
    );
    assert_eq!(
        ex.state(".new").as_deref(),
        Some(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n3 1 FR\n1 2 S\n2 3 \n"
        )
    );
}

#[test]
fn verified_step_counts_with_trash_and_flag_changes() {
    // §3.4: Expunge Both, a far Trash, two flag changes and two trash moves.
    let make = || {
        let ex = Example::new(
            &[(1, "a", "S"), (2, "b", "S")],
            &[(1, "a", "ST"), (2, "b", "ST")],
            "Trash fartrash",
            "",
            "Expunge Both",
        );
        ex.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n");
        ex
    };
    for (args, line) in [
        (vec!["-D", "-Tj"], "### 10 steps, 4 entries ###"),
        (vec!["-D", "-Tj", "-Tx"], "### 8 steps, 4 entries ###"),
        (vec!["-Tj"], "### 4 steps, 4 entries ###"),
    ] {
        let ex = make();
        let out = ex.run(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.lines().any(|l| l == line),
            "{args:?}: {}",
            out.stdout
        );
    }
}

#[test]
fn missing_near_box_is_created_with_create_near() {
    let ex = Example::new(&[(1, "a", "S")], &[], "", "", "Create Near");
    check(fs::remove_dir_all(ex.path("nearbox")));
    let out = ex.run(&["-V"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Creating near side box nearbox...\n"),
        "{}",
        out.stdout
    );
    assert_eq!(ex.files("nearbox").len(), 1);
}

#[test]
fn imap_store_that_cannot_connect_fails_the_run() {
    let ex = Example::new(&[], &[], "", "", "");
    let r = ex.root.display();
    let cfg = format!(
        "IMAPStore far\nHost 127.0.0.1\nUser u\nPass p\n\nMaildirStore near\nPath {r}/\nInbox {r}/nearinbox\n\nChannel ex\nFar :far:box\nNear :near:nearbox\nSyncState *\n"
    );
    check(fs::write(ex.path("cfg"), cfg));
    // Nothing listens there (the IMAP tests use a private Dovecot on other ports).
    let out = ex.run(&[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("No working address found for 127.0.0.1"),
        "{}",
        out.stderr
    );
    assert!(!ex.path("nearinbox").exists());
}

#[test]
fn async_far_hook_counts_only_far_store_steps() {
    let ex = Example::new(
        &[(1, "a", "S"), (2, "b", "")],
        &[(1, "c", "FR")],
        "",
        "",
        "",
    );
    let out = ex.run(&["-Ta", "-Tj"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("### 15 steps, 14 entries ###\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn several_boxes_share_the_step_counter() {
    let ex = Example::new(&[], &[], "", "", "");
    for name in ["far/one", "far/two", "near/one", "near/two"] {
        let messages: &[(u32, &str, &str)] = if name.starts_with("far") {
            &[(1, "m", "S")]
        } else {
            &[]
        };
        ex.make_box(name, 1000, messages);
    }
    let r = ex.root.display();
    let cfg = format!(
        "MaildirStore far\nPath {r}/far/\nInbox {r}/farinbox\n\nMaildirStore near\nPath {r}/near/\nInbox {r}/nearinbox\n\nChannel ex\nFar :far:\nNear :near:\nPatterns *\nSyncState {r}/state/\n"
    );
    check(fs::write(ex.path("cfg"), cfg));
    let out = ex.run(&["-Tj"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "### 6 steps, 6 entries ###\n### 12 steps, 12 entries ###\nChannels: 1    Boxes: 2    Far: +0 *0 #0 -0    Near: +2 *0 #0 -0\n"
    );
}

#[test]
fn dry_run_with_create_pretends_an_empty_box() {
    let ex = Example::new(&[(1, "a", "S"), (2, "b", "")], &[], "", "", "Create Near");
    check(fs::remove_dir_all(ex.path("nearbox")));
    let out = ex.run(&["-y", "-Tj"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // | + + F # # % > > : 9 records, plus 1 create and 2 stores through the dry-run proxy.
    assert_eq!(
        out.stdout,
        "### 12 steps, 9 entries ###\nChannels: 1    Boxes: 1    Far: +0 *0 #0 -0    Near: +2 *0 #0 -0\n"
    );
    assert!(!exists(&ex.path("nearbox")));
}
