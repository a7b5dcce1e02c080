//! `sync::run_with_report`: what a run tells its caller about each mailbox pair (the
//! Kubernetes worker publishes it): UIDVALIDITYs as the stores report them, message counts
//! after the run, and the error lines of a failed pair.

use std::path::Path;

use mailsync::config::{self, ChannelRef, Environment};
use mailsync::sync::{RunOptions, run_with_report};

fn deliver(mailbox: &Path, name: &str, subject: &str) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(mailbox.join(sub)).expect("maildir folders");
    }
    let text = format!("From: a@example.org\nSubject: {subject}\n\n{subject}\n");
    std::fs::write(mailbox.join("new").join(name), text).expect("deliver");
}

fn uid_validity(mailbox: &Path) -> u32 {
    std::fs::read_to_string(mailbox.join(".uidvalidity"))
        .expect(".uidvalidity")
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("a number")
}

#[test]
fn the_report_has_uidvalidity_and_counts_per_mailbox_and_errors_per_pair() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    deliver(&root.join("far/INBOX"), "1.a.host", "one");
    deliver(&root.join("far/INBOX"), "2.b.host", "two");
    deliver(&root.join("far/Work"), "3.c.host", "three");
    std::fs::create_dir_all(root.join("near")).expect("near root");
    let config_text = format!(
        "MaildirStore far\nPath {r}/far/\nInbox {r}/far/INBOX\n\n\
         MaildirStore near\nPath {r}/near/\nInbox {r}/near/INBOX\n\n\
         Channel both\nFar :far:\nNear :near:\nPatterns INBOX Work Missing\nCreate Near\nSyncState {r}/state/\n",
        r = root.display()
    );
    let config_file = root.join("mbsyncrc");
    std::fs::write(&config_file, config_text).expect("config");
    let env = Environment {
        home: root.to_string_lossy().into_owned(),
        xdg_config_home: None,
        xdg_state_home: None,
    };
    let loaded = config::load(&config_file.to_string_lossy(), &env).expect("config loads");
    let selection = [ChannelRef {
        channel: "both".into(),
        boxes: None,
    }];
    let report = run_with_report(&loaded.config, &selection, &RunOptions::default());
    assert_eq!(report.exit_code, 0, "{report:?}");
    let names: Vec<&str> = report
        .mailboxes
        .iter()
        .map(|m| m.names[1].as_str())
        .collect();
    assert_eq!(names, ["INBOX", "Work"]);
    let inbox = &report.mailboxes[0];
    let seen = inbox.boxes.expect("INBOX completed");
    assert_eq!(seen.messages, [2, 2]);
    assert_eq!(seen.uid_validity[0], uid_validity(&root.join("far/INBOX")));
    assert_eq!(seen.uid_validity[1], uid_validity(&root.join("near/INBOX")));
    assert_eq!(
        report.mailboxes[1].boxes.expect("Work completed").messages,
        [1, 1]
    );
    assert_eq!(report.stats.sides[1].new.done, 3);

    // The near INBOX made unreadable as a Maildir: that pair fails with its error line,
    // the other one still completes.
    std::fs::remove_dir_all(root.join("near/INBOX/cur")).expect("break near INBOX");
    std::fs::write(root.join("near/INBOX/cur"), "not a folder").expect("break near INBOX");
    deliver(&root.join("far/Work"), "4.d.host", "four");
    let report = run_with_report(&loaded.config, &selection, &RunOptions::default());
    assert_ne!(report.exit_code, 0);
    let inbox = &report.mailboxes[0];
    assert!(inbox.failed, "{inbox:?}");
    assert!(
        !inbox.errors.is_empty(),
        "no error line for the failed pair"
    );
    let work = report
        .mailboxes
        .iter()
        .find(|m| m.names[1] == "Work")
        .expect("Work still runs");
    assert!(!work.failed);
    assert_eq!(work.boxes.map(|b| b.messages), Some([2, 2]));
}
