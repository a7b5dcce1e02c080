//! Tests of the library entry point `sync::run` on real Maildirs in a temporary directory: a
//! pair whose state is locked by another holder, and `Patterns` with `Create` over several
//! boxes. The worked examples of the spec (§9) are checked once, through the binary, in
//! `tests/sync_examples.rs` (resumption in `tests/sync_resume.rs`).

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

    /// The §9.0 configuration: channel `ex` between `farbox` and `nearbox`.
    fn config(&self) -> Config {
        let root = self.root.display();
        let text = format!(
            "MaildirStore far\nPath {root}/\nInbox {root}/farinbox\n\nMaildirStore near\nPath {root}/\nInbox {root}/nearinbox\n\nChannel ex\nFar :far:farbox\nNear :near:nearbox\nSyncState *\n"
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

#[test]
fn locked_pair_fails() {
    let s = Setup::new(&[(1, "a", "S")], &[]);
    s.write_state("FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 0\nMaxPushedUid 0\n\n");
    let paths = crate::sync::files::StatePaths::new(s.state_path(""));
    let lock = match crate::sync::files::StateLock::acquire(&paths, "x") {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let config = s.config();
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
