//! End-to-end tests of `sync::run` on real Maildirs in a temporary directory, checking state
//! files and journals byte for byte against the spec's worked examples (§9).

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::{ChannelRef, Config, Environment, parse_text};
use crate::sync::{RunOptions, TestHooks};

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn content(subject: &str) -> String {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: {subject}\nMessage-ID: <{subject}@example.org>\n\nBody of {subject}\n"
    )
}

impl Setup {
    /// Creates far and near boxes with messages `(uid, subject, flags)` in `cur/`.
    fn new(far: &[(u32, &str, &str)], near: &[(u32, &str, &str)]) -> Setup {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let root = dir.path().to_path_buf();
        let setup = Setup { _dir: dir, root };
        setup.make_box("farbox", 1000, far);
        setup.make_box("nearbox", 2000, near);
        setup
    }

    fn make_box(&self, name: &str, uid_validity: u32, messages: &[(u32, &str, &str)]) {
        let base = self.root.join(name);
        for sub in ["cur", "new", "tmp"] {
            write_ok(fs::create_dir_all(base.join(sub)));
        }
        let mut highest = 0;
        for &(uid, subject, flags) in messages {
            let file = base
                .join("cur")
                .join(format!("m{subject},U={uid}:2,{flags}"));
            write_ok(fs::write(file, content(subject)));
            highest = highest.max(uid);
        }
        write_ok(fs::write(
            base.join(".uidvalidity"),
            format!("{uid_validity}\n{highest}\n"),
        ));
    }

    fn config(&self, far_extra: &str, near_extra: &str, channel_extra: &str) -> Config {
        let root = self.root.display();
        let text = format!(
            "MaildirStore far\nPath {root}/\nInbox {root}/farinbox\n{far_extra}\n\nMaildirStore near\nPath {root}/\nInbox {root}/nearinbox\n{near_extra}\n\nChannel ex\nFar :far:farbox\nNear :near:nearbox\nSyncState *\n{channel_extra}\n"
        );
        let env = Environment {
            home: root.to_string(),
            xdg_config_home: None,
            xdg_state_home: Some(format!("{root}/state")),
        };
        match parse_text(&format!("{root}/cfg"), text.as_bytes(), &env) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("config: {e}"),
        }
    }

    fn state_path(&self, suffix: &str) -> PathBuf {
        self.root
            .join("nearbox")
            .join(format!(".mbsyncstate{suffix}"))
    }

    fn read(&self, suffix: &str) -> String {
        fs::read_to_string(self.state_path(suffix)).unwrap_or_else(|_| "<missing>".into())
    }

    fn write_state(&self, text: &str) {
        write_ok(fs::write(self.state_path(""), text));
    }

    /// File names (without directory) of a box's `cur` and `new`, sorted, with subdir prefix.
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

    fn uidvalidity(&self, name: &str) -> String {
        fs::read_to_string(self.root.join(name).join(".uidvalidity")).unwrap_or_default()
    }
}

fn write_ok(r: std::io::Result<()>) {
    if let Err(e) = r {
        panic!("write: {e}");
    }
}

fn hooks() -> TestHooks {
    TestHooks {
        no_fresh_wait: true,
        ..TestHooks::default()
    }
}

fn run(config: &Config, options: &RunOptions) -> i32 {
    let selection = [ChannelRef {
        channel: "ex".into(),
        boxes: None,
    }];
    crate::sync::run(config, &selection, options)
}

fn opts(hooks: TestHooks) -> RunOptions {
    RunOptions {
        hooks,
        ..RunOptions::default()
    }
}

/// Journal lines with TUIDs masked.
fn journal_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            if l.starts_with("# ") {
                let mut parts: Vec<&str> = l.split(' ').collect();
                parts.pop();
                format!("{} <tuid>", parts.join(" "))
            } else {
                l.to_string()
            }
        })
        .collect()
}

fn has_suffix(files: &[String], suffix: &str) -> bool {
    files.iter().any(|f| f.ends_with(suffix))
}

const EX1_STATE: &str = "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n3 1 FR\n1 2 S\n2 3 \n";

#[test]
fn example_1_first_sync() {
    let s = Setup::new(&[(1, "a", "S"), (2, "b", "")], &[(1, "c", "FR")]);
    let config = s.config("", "", "");
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(s.read(""), EX1_STATE);
    assert_eq!(s.uidvalidity("farbox"), "1000\n3\n");
    assert_eq!(s.uidvalidity("nearbox"), "2000\n3\n");
    let far = s.files("farbox");
    assert!(
        far.iter()
            .any(|f| f.starts_with("new/") && f.ends_with(",U=3:2,FR")),
        "{far:?}"
    );
    let near = s.files("nearbox");
    assert!(
        near.iter()
            .any(|f| f.starts_with("cur/") && f.ends_with(",U=2:2,S")),
        "{near:?}"
    );
    assert!(
        near.iter()
            .any(|f| f.starts_with("new/") && f.ends_with(",U=3:2,")),
        "{near:?}"
    );
    for suffix in [".journal", ".new", ".lock"] {
        assert!(!s.state_path(suffix).exists(), "{suffix} left behind");
    }
}

#[test]
fn example_1_with_keep_journal() {
    let s = Setup::new(&[(1, "a", "S"), (2, "b", "")], &[(1, "c", "FR")]);
    let config = s.config("", "", "");
    let mut h = hooks();
    h.keep_journal = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(s.read(".new"), EX1_STATE);
    assert_eq!(s.read(""), "<missing>");
    assert_eq!(
        journal_lines(&s.read(".journal")),
        vec![
            "5",
            "| 1000 2000",
            "+ 0 1",
            "+ 1 0",
            "+ 2 0",
            "F 0 2",
            "F 1 1",
            "# 0 1 <tuid>",
            "# 1 0 <tuid>",
            "# 2 0 <tuid>",
            "% 0 1 10",
            "< 0 1 3",
            "% 1 0 16",
            "> 1 0 2",
            "> 2 0 3",
        ]
    );
}

#[test]
fn example_2_flag_merge_on_disk() {
    let s = Setup::new(
        &[(1, "a", "FS"), (2, "b", "S"), (3, "c", "RS")],
        &[(1, "a", ""), (2, "b", "DS"), (3, "c", "S")],
    );
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 S\n");
    let config = s.config("", "", "");
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 F\n2 2 DS\n3 3 RS\n"
    );
    assert!(has_suffix(&s.files("farbox"), "ma,U=1:2,F"));
    assert!(has_suffix(&s.files("nearbox"), "mc,U=3:2,RS"));
}

#[test]
fn example_11_resume_from_journal_with_tuids() {
    let s = Setup::new(&[(1, "m1", "S"), (2, "m2", "S"), (3, "m3", "")], &[]);
    let near = s.root.join("nearbox");
    for (uid, subject, tuid) in [(1, "m1", "AAAAAAAAAAAA"), (2, "m2", "BBBBBBBBBBBB")] {
        let text = content(subject).replacen("\n\n", &format!("\nX-TUID: {tuid}\n\n"), 1);
        write_ok(fs::write(
            near.join("cur").join(format!("r{uid},U={uid}:2,S")),
            text,
        ));
    }
    write_ok(fs::write(near.join(".uidvalidity"), "2000\n2\n"));
    write_ok(fs::write(s.state_path(".new"), ""));
    write_ok(fs::write(
        s.state_path(".journal"),
        "5\n| 1000 2000\n+ 1 0\n+ 2 0\n+ 3 0\nF 1 0\n# 1 0 AAAAAAAAAAAA\n# 2 0 BBBBBBBBBBBB\n# 3 0 CCCCCCCCCCCC\n% 1 0 16\n> 1 0 1\n% 2 0 16\n",
    ));
    let config = s.config("", "", "");
    let mut h = hooks();
    h.keep_journal = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(
        s.read(".new"),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 1 S\n2 2 S\n3 3 \n"
    );
    let lines = journal_lines(&s.read(".journal"));
    assert_eq!(
        lines[12..].to_vec(),
        vec!["> 2 0 2", "& 3 0", "F 1 2", "# 3 0 <tuid>", "> 3 0 3"]
    );
    assert_eq!(s.files("nearbox").len(), 3);
}

#[test]
fn example_12_journal_without_new_is_ignored() {
    let s = Setup::new(&[(1, "m1", "S"), (2, "m2", "")], &[(1, "m1", "S")]);
    s.write_state(
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 1\nMaxPushedUid 1\n\n1 1 S\n",
    );
    write_ok(fs::write(s.state_path(".journal"), "5\n* 1 1 0\n"));
    let config = s.config("", "", "");
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 \n"
    );
    assert!(!s.state_path(".journal").exists());
}

#[test]
fn example_19_step_limit_and_resumption() {
    let s = Setup::new(&[(1, "a", "S"), (2, "b", "")], &[(1, "c", "F")]);
    let config = s.config("", "", "");
    let mut h = hooks();
    h.step_limit = 6;
    assert_eq!(run(&config, &opts(h)), 100);
    assert_eq!(
        s.read(".journal"),
        "5\n| 1000 2000\n+ 0 1\n+ 1 0\n+ 2 0\nF 0 2\nF 1 1\n"
    );
    assert_eq!(s.read(".new"), "");
    assert!(s.state_path(".lock").exists());
    assert_eq!(s.files("nearbox").len(), 1);
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n3 1 F\n1 2 S\n2 3 \n"
    );
    assert!(!s.state_path(".journal").exists() && !s.state_path(".lock").exists());
}

#[test]
fn example_22_interrupted_at_a_store_completion_with_debug_proxies() {
    let s = Setup::new(&[(1, "a", "S"), (2, "b", "")], &[(1, "c", "FR")]);
    let config = s.config("", "", "");
    let mut options = opts(TestHooks {
        step_limit: 11,
        ..hooks()
    });
    options.debug.driver = true;
    assert_eq!(run(&config, &options), 100);
    assert_eq!(s.uidvalidity("farbox"), "1000\n3\n");
    assert_eq!(s.uidvalidity("nearbox"), "2000\n1\n");
    assert!(s.read(".journal").ends_with("% 0 1 10\n"));
    let mut h = hooks();
    h.keep_journal = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(s.read(".new"), EX1_STATE);
    let lines = journal_lines(&s.read(".journal"));
    let appended: Vec<String> = lines[11..].to_vec();
    assert_eq!(
        appended,
        vec![
            "< 0 1 3",
            "& 1 0",
            "& 2 0",
            "F 1 1",
            "# 1 0 <tuid>",
            "# 2 0 <tuid>",
            "% 1 0 16",
            "> 1 0 2",
            "> 2 0 3",
        ]
    );
    assert_eq!(s.files("farbox").len(), 3);
    assert_eq!(s.files("nearbox").len(), 3);
}

#[test]
fn example_21_high_water_mark_alone_with_journal_end_and_replay_only_run() {
    let s = Setup::new(
        &[(1, "a", "S"), (3, "c", "S")],
        &[(1, "a", "S"), (2, "b", "S"), (3, "c", "S")],
    );
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 0\nMaxExpiredNearUid 2\n\n1 1 S\n3 3 S\n");
    let config = s.config("", "", "Sync Flags\nExpireSide Far");
    let mut h = hooks();
    h.keep_journal = true;
    h.journal_end = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(s.read(".journal"), "5\nN 1 3\n");
    let expected = "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\nMaxExpiredNearUid 2\n\n1 1 S\n3 3 S\n";
    assert_eq!(s.read(".new"), expected);
    // Replay-only run: no operations, no expunge.
    let mut options = opts(hooks());
    options.ops.sync = Some(crate::config::SyncSpec::default());
    options.ops.expunge = Some(crate::config::BoxOpSpec::default());
    assert_eq!(run(&config, &options), 0);
    assert_eq!(s.read(""), expected);
    assert!(!s.state_path(".journal").exists() && !s.state_path(".new").exists());
}

#[test]
fn example_18_dry_run_and_ext_exit() {
    let s = Setup::new(&[(1, "a", "S"), (2, "b", "")], &[(1, "c", "F")]);
    let config = s.config("", "", "");
    let before = (s.files("farbox"), s.files("nearbox"));
    let mut options = opts(hooks());
    options.dry_run = true;
    assert_eq!(run(&config, &options), 0);
    options.ext_exit = true;
    assert_eq!(run(&config, &options), 96);
    assert_eq!((s.files("farbox"), s.files("nearbox")), before);
    for suffix in ["", ".journal", ".new", ".lock"] {
        assert!(
            !s.state_path(suffix).exists(),
            "{suffix} created in dry run"
        );
    }
    assert_eq!(s.uidvalidity("nearbox"), "2000\n1\n");
}

#[test]
fn example_4_trash_and_remote_trash_on_disk() {
    let s = Setup::new(
        &[(1, "a", "S"), (2, "b", "S"), (4, "d", "T")],
        &[(1, "a", "ST"), (2, "b", "S"), (3, "c", "ST")],
    );
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n");
    let config = s.config("Trash fartrash\nTrashRemoteNew yes", "", "Expunge Both");
    let mut options = opts(hooks());
    options.ext_exit = true;
    assert_eq!(run(&config, &options), 96);
    assert_eq!(s.files("farbox"), vec!["cur/mb,U=2:2,S"]);
    assert_eq!(s.files("nearbox"), vec!["cur/mb,U=2:2,S"]);
    assert_eq!(s.files("fartrash").len(), 3);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 3\n\n2 2 S\n"
    );
}

#[test]
fn example_20_unread_stop_leaves_journal() {
    let s = Setup::new(
        &[
            (1, "m1", ""),
            (2, "m2", ""),
            (3, "m3", ""),
            (4, "m4", ""),
            (5, "m5", ""),
            (6, "m6", ""),
        ],
        &[],
    );
    let config = s.config("", "", "MaxMessages 2");
    assert_eq!(run(&config, &opts(hooks())), 1);
    assert_eq!(
        s.read(".journal"),
        "5\n| 1000 2000\n+ 1 0\n+ 2 0\n+ 3 0\n+ 4 0\n+ 5 0\n+ 6 0\n"
    );
    assert_eq!(s.read(".new"), "");
    // The second run replays it and stops the same way.
    assert_eq!(run(&config, &opts(hooks())), 1);
    assert!(s.files("nearbox").is_empty());
}

#[test]
fn locked_pair_fails() {
    let s = Setup::new(&[(1, "a", "S")], &[]);
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 0\nMaxPushedUid 0\n\n");
    let paths = crate::sync::files::StatePaths::new(s.state_path(""));
    let lock = match crate::sync::files::StateLock::acquire(&paths, "x") {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let config = s.config("", "", "");
    assert_eq!(run(&config, &opts(hooks())), 1);
    assert!(s.files("nearbox").is_empty());
    lock.release();
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(s.files("nearbox").len(), 1);
}

#[test]
fn patterns_with_create_sync_every_box() {
    let s = Setup::new(&[(1, "a", "S")], &[]);
    s.make_box("farother", 1001, &[(1, "x", "")]);
    let root = s.root.display().to_string();
    let text = format!(
        "MaildirStore far\nPath {root}/far/\nInbox {root}/farinbox\n\nMaildirStore near\nPath {root}/near/\nInbox {root}/nearinbox\n\nChannel ex\nFar :far:\nNear :near:\nPatterns b*\nCreate Near\nSyncState {root}/state/\n"
    );
    for (from, to) in [("farbox", "far/box1"), ("farother", "far/box2")] {
        write_ok(fs::create_dir_all(s.root.join("far")));
        write_ok(fs::rename(s.root.join(from), s.root.join(to)));
    }
    write_ok(fs::create_dir_all(s.root.join("near")));
    let env = Environment {
        home: root.clone(),
        xdg_config_home: None,
        xdg_state_home: None,
    };
    let config = match parse_text(&format!("{root}/cfg"), text.as_bytes(), &env) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(s.files("near/box1").len(), 1);
    assert_eq!(s.files("near/box2").len(), 1);
    assert!(Path::new(&format!("{root}/state/box1")).exists());
    assert!(Path::new(&format!("{root}/state/box2")).exists());
}

fn big_content(subject: &str, lines: usize) -> String {
    let mut text = content(subject);
    for _ in 0..lines {
        text.push_str(&"x".repeat(70));
        text.push('\n');
    }
    text
}

fn read_file(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn find_file(s: &Setup, name: &str, suffix: &str) -> PathBuf {
    match s.files(name).into_iter().find(|f| f.ends_with(suffix)) {
        Some(f) => s.root.join(name).join(f),
        None => panic!("no file *{suffix} in {name}: {:?}", s.files(name)),
    }
}

#[test]
fn example_5_and_6_placeholders_and_upgrade_on_disk() {
    let s = Setup::new(&[(1, "small", "S")], &[]);
    write_ok(fs::write(
        s.root.join("farbox/cur/mbig1,U=2:2,FS"),
        big_content("big1", 40),
    ));
    write_ok(fs::write(s.root.join("farbox/.uidvalidity"), "1000\n2\n"));
    let config = s.config("", "MaxSize 1k", "");
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 >S\n"
    );
    let placeholder = find_file(&s, "nearbox", ",U=2:2,S");
    let text = read_file(&placeholder);
    let tuid_line = text
        .lines()
        .find(|l| l.starts_with("X-TUID: "))
        .unwrap_or("")
        .to_string();
    assert_eq!(
        text,
        format!(
            "From: sender@example.org\nTo: rcpt@example.org\nSubject: [placeholder] big1\nMessage-ID: <big1@example.org>\n{tuid_line}\n\nHaving a size of 2KiB, this message is over the MaxSize limit.\nFlag it and sync again (Sync mode Upgrade) to fetch its real contents.\n"
        )
    );
    // Flag the placeholder, then Upgrade.
    let flagged = placeholder.with_file_name(
        placeholder
            .file_name()
            .map(|n| n.to_string_lossy().replace(":2,S", ":2,FS"))
            .unwrap_or_default(),
    );
    write_ok(fs::rename(&placeholder, &flagged));
    let mut h = hooks();
    h.keep_journal = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(
        journal_lines(&s.read(".journal")),
        vec![
            "5",
            "^ 2 2 16",
            "P 0 2",
            "F 1 2",
            "# 2 0 <tuid>",
            "$ 2 0 2 0",
            "> 2 0 3"
        ]
    );
    assert_eq!(
        s.read(".new"),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 3\n\n1 1 S\n2 3 FS\n0 2 \n"
    );
    assert!(has_suffix(&s.files("nearbox"), ",U=2:2,FST"));
    let full = read_file(&find_file(&s, "nearbox", ",U=3:2,FS"));
    assert!(full.ends_with(&"x".repeat(70).add_newline()));
}

trait AddNewline {
    fn add_newline(self) -> String;
}

impl AddNewline for String {
    fn add_newline(mut self) -> String {
        self.push('\n');
        self
    }
}

#[test]
fn example_15_legacy_state_with_skipped_entries() {
    let s = Setup::new(&[(1, "a", "S"), (7, "g", "S")], &[(1, "a", "S")]);
    for (uid, subject) in [(5, "big5"), (6, "big6")] {
        write_ok(fs::write(
            s.root.join(format!("farbox/cur/m{subject},U={uid}:2,S")),
            big_content(subject, 50),
        ));
    }
    s.write_state("MasterUidValidity 1000\nSlaveUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 1\n\n1 1 SF\n5 0 ^\n6 -1 S\n");
    let config = s.config("", "", "");
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 7\nMaxPushedUid 4\n\n1 1 S\n5 2 >S\n6 3 >S\n7 4 S\n"
    );
    assert!(read_file(&find_file(&s, "nearbox", ",U=2:2,S")).contains("[placeholder] big5"));
}

#[test]
fn example_17_expired_placeholders_lose_their_marker() {
    let s = Setup::new(&[(5, "m5", "S"), (6, "m6", "S")], &[]);
    for uid in 1..=4 {
        write_ok(fs::write(
            s.root.join(format!("farbox/cur/mm{uid},U={uid}:2,S")),
            big_content(&format!("m{uid}"), 40),
        ));
    }
    for (uid, subject) in [(1, "mm3"), (2, "mm4")] {
        write_ok(fs::write(
            s.root.join(format!("nearbox/cur/{subject},U={uid}:2,S")),
            content(subject),
        ));
    }
    write_ok(fs::write(s.root.join("nearbox/.uidvalidity"), "2000\n2\n"));
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 2\nMaxExpiredFarUid 2\n\n3 1 >S\n4 2 >S\n");
    let config = s.config("", "MaxSize 1k", "MaxMessages 2\nExpireUnread yes");
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 4\nMaxExpiredFarUid 4\n\n3 1 >~S\n4 2 >~S\n5 3 S\n6 4 S\n"
    );
    // Far m3 gets flagged: near 1 is un-expired and gets F.
    write_ok(fs::rename(
        s.root.join("farbox/cur/mm3,U=3:2,S"),
        s.root.join("farbox/cur/mm3,U=3:2,FS"),
    ));
    assert_eq!(run(&config, &opts(hooks())), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 6\nMaxPushedUid 4\nMaxExpiredFarUid 4\n\n3 1 FS\n4 2 ~S\n5 3 S\n6 4 S\n"
    );
    assert!(has_suffix(&s.files("nearbox"), "mm3,U=1:2,FS"));
}

#[test]
fn example_25_withheld_uids_with_maildir_rescan() {
    for (extra, expected) in [
        (
            "Sync Pull",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 1\n\n1 1 S\n2 0 \n",
        ),
        (
            "",
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n",
        ),
    ] {
        let s = Setup::new(&[(1, "a", "S"), (2, "b", "S")], &[(1, "a", "S")]);
        s.write_state(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 1\nMaxPushedUid 1\n\n1 1 S\n",
        );
        let config = s.config("", "", extra);
        let mut h = hooks();
        h.withhold_uids = true;
        assert_eq!(run(&config, &opts(h)), 0);
        assert_eq!(s.read(""), expected, "{extra}");
        assert_eq!(s.uidvalidity("nearbox"), "2000\n2\n");
    }
}

#[test]
fn example_26_near_trash_without_new_only_on_disk() {
    let s = Setup::new(
        &[(1, "a", "T"), (2, "b", "FT")],
        &[(1, "a", "T"), (2, "b", ""), (3, "z", "T")],
    );
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 T\n2 2 \n");
    let config = s.config("", "Trash neartrash", "Expunge Both");
    let mut h = hooks();
    h.keep_journal = true;
    h.no_expunge = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(
        s.read(".journal"),
        "5\n+ 0 3\n- 0 3\n* 2 2 34\nT 1 1\nT 1 2\nT 1 3\n"
    );
    assert!(s.files("nearbox").is_empty());
    assert_eq!(s.files("neartrash").len(), 3);
    assert_eq!(
        s.read(".new"),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 3\n\n1 0 T\n2 0 FT\n"
    );
    assert_eq!(s.files("farbox").len(), 2);
}

#[test]
fn example_13_full_pulls_old_messages_on_disk() {
    let s = Setup::new(
        &[(1, "a", "S"), (2, "b", "S"), (3, "c", "S"), (4, "d", "S")],
        &[(1, "a", "S"), (2, "c", "S")],
    );
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 2\n\n1 1 S\n3 2 S\n");
    let config = s.config("", "", "");
    assert_eq!(run(&config, &opts(hooks())), 0);
    let mut options = opts(hooks());
    options.ops.sync = Some(crate::config::SyncSpec {
        types: [crate::config::OpTypes::NONE, crate::config::OpTypes::FULL],
    });
    assert_eq!(run(&config, &options), 0);
    assert_eq!(
        s.read(""),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 4\nMaxPushedUid 4\n\n1 1 S\n3 2 S\n4 3 S\n2 4 S\n"
    );
}

/// `(subdir-independent uid, subject, flags)` of every message in a box, plus trash contents.
fn box_contents(s: &Setup, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(entries) = fs::read_dir(s.root.join(name).join(sub)) {
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                let uid = file
                    .split(",U=")
                    .nth(1)
                    .map(|rest| rest.split(':').next().unwrap_or("").to_string())
                    .unwrap_or_default();
                let flags = file.rsplit(":2,").next().unwrap_or("").to_string();
                let text = read_file(&e.path());
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap_or("")
                    .to_string();
                out.push((format!("{uid} {flags}"), subject));
            }
        }
    }
    out.sort();
    out
}

/// Runs a scenario uninterrupted, then for every step limit interrupted and resumed, and
/// checks that the final boxes and state are the same.
fn check_resumption(
    build: &dyn Fn() -> Setup,
    far: &str,
    near: &str,
    channel: &str,
    boxes: &[&str],
) {
    let reference = build();
    let config = reference.config(far, near, channel);
    let mut options = opts(hooks());
    options.debug.driver = true;
    assert_eq!(run(&config, &options), 0);
    let expected_state = reference.read("");
    let expected: Vec<_> = boxes.iter().map(|b| box_contents(&reference, b)).collect();
    let mut limit = 1;
    loop {
        let s = build();
        let config = s.config(far, near, channel);
        let mut interrupted = opts(TestHooks {
            step_limit: limit,
            ..hooks()
        });
        interrupted.debug.driver = true;
        let code = run(&config, &interrupted);
        assert!(code == 100 || code == 0, "limit {limit}: exit {code}");
        assert_eq!(run(&config, &options), 0, "resume after limit {limit}");
        assert_eq!(s.read(""), expected_state, "state after limit {limit}");
        let got: Vec<_> = boxes.iter().map(|b| box_contents(&s, b)).collect();
        assert_eq!(got, expected, "boxes after limit {limit}");
        if code == 0 {
            break;
        }
        limit += 1;
    }
    assert!(limit > 3, "scenario too small to test resumption");
}

#[test]
fn resumption_after_any_step_of_a_first_sync() {
    check_resumption(
        &|| Setup::new(&[(1, "a", "S"), (2, "b", "")], &[(1, "c", "FR")]),
        "",
        "",
        "",
        &["farbox", "nearbox"],
    );
}

#[test]
fn resumption_after_any_step_with_trash_and_expunge() {
    check_resumption(
        &|| {
            let s = Setup::new(
                &[(1, "a", "S"), (2, "b", "S"), (4, "d", "T")],
                &[(1, "a", "ST"), (2, "b", "S"), (3, "c", "ST")],
            );
            s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n");
            s
        },
        "Trash fartrash",
        "",
        "Expunge Both",
        &["farbox", "nearbox", "fartrash"],
    );
}

#[test]
fn resumption_after_any_step_of_an_upgrade() {
    check_resumption(
        &|| {
            let s = Setup::new(&[(1, "small", "S")], &[(1, "small", "S")]);
            write_ok(fs::write(
                s.root.join("farbox/cur/mbig1,U=2:2,FS"),
                big_content("big1", 40),
            ));
            write_ok(fs::write(s.root.join("farbox/.uidvalidity"), "1000\n2\n"));
            write_ok(fs::write(
                s.root.join("nearbox/cur/pbig1,U=2:2,FS"),
                content("[placeholder] big1"),
            ));
            write_ok(fs::write(s.root.join("nearbox/.uidvalidity"), "2000\n2\n"));
            s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 >S\n");
            s
        },
        "",
        "MaxSize 1k",
        "",
        &["farbox", "nearbox"],
    );
}

#[test]
fn resumption_after_any_step_of_an_expiration() {
    check_resumption(
        &|| {
            let s = Setup::new(
                &[
                    (1, "m1", "S"),
                    (2, "m2", "S"),
                    (3, "m3", "S"),
                    (4, "m4", "S"),
                ],
                &[(1, "m1", "S"), (2, "m2", "S")],
            );
            s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n");
            s
        },
        "",
        "",
        "MaxMessages 2\nExpunge Near",
        &["farbox", "nearbox"],
    );
}

#[test]
fn copy_arrival_date_sets_the_copy_mtime() {
    let s = Setup::new(&[(1, "a", "S")], &[]);
    let source = s.root.join("farbox/cur/ma,U=1:2,S");
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    let file = match fs::File::options().write(true).open(&source) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    write_ok(file.set_modified(old));
    let config = s.config("", "", "CopyArrivalDate yes");
    assert_eq!(run(&config, &opts(hooks())), 0);
    let copy = find_file(&s, "nearbox", ",U=1:2,S");
    let modified = fs::metadata(&copy).and_then(|m| m.modified()).ok();
    assert_eq!(modified, Some(old));
}

#[test]
fn example_24b_copies_keep_flags_not_loaded() {
    let s = Setup::new(&[], &[]);
    for (uid, subject, flags) in [(1, "a", "P"), (2, "b", "FT")] {
        write_ok(fs::write(
            s.root
                .join(format!("farbox/new/m{subject},U={uid}:2,{flags}")),
            content(subject),
        ));
    }
    write_ok(fs::write(s.root.join("farbox/.uidvalidity"), "1000\n2\n"));
    let config = s.config("", "", "Sync New");
    let mut h = hooks();
    h.keep_journal = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(
        journal_lines(&s.read(".journal")),
        vec![
            "5",
            "| 1000 2000",
            "+ 1 0",
            "+ 2 0",
            "F 1 0",
            "# 1 0 <tuid>",
            "# 2 0 <tuid>",
            "% 1 0 4",
            "> 1 0 1",
            "% 2 0 34",
            "> 2 0 2",
        ]
    );
    assert_eq!(
        s.read(".new"),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 P\n2 2 FT\n"
    );
    let near = s.files("nearbox");
    assert!(
        near.iter()
            .any(|f| f.starts_with("new/") && f.ends_with(",U=1:2,P")),
        "{near:?}"
    );
    assert!(
        near.iter()
            .any(|f| f.starts_with("new/") && f.ends_with(",U=2:2,FT")),
        "{near:?}"
    );
}

#[test]
fn example_24a_gone_only_renames_into_cur() {
    let s = Setup::new(&[(2, "b", "")], &[(2, "b", "")]);
    write_ok(fs::write(
        s.root.join("nearbox/new/ma,U=1:2,T"),
        content("a"),
    ));
    write_ok(fs::write(s.root.join("nearbox/.uidvalidity"), "2000\n2\n"));
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 T\n2 2 \n");
    let config = s.config("", "", "Sync Gone");
    let mut h = hooks();
    h.keep_journal = true;
    h.journal_end = true;
    assert_eq!(run(&config, &opts(h)), 0);
    assert_eq!(s.read(".journal"), "5\n< 1 1 0\n");
    assert_eq!(
        s.read(".new"),
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n0 1 T\n2 2 \n"
    );
    assert!(s.files("nearbox").contains(&"cur/ma,U=1:2,T".to_string()));
}
