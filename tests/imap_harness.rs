//! Checks of the Dovecot test harness itself.

mod dovecot;

#[test]
fn harness_starts_and_prepares_mail() {
    let server = dovecot::Dovecot::start();
    server.create_mailbox("Sub/Child");
    server.append("INBOX", "Subject: a\n\nbody\n", "\\Seen");
    server.append("INBOX", "Subject: b\n\nbody\n", "");
    assert_eq!(server.uids("INBOX"), vec![1, 2]);
    let flags = server.flags("INBOX");
    assert_eq!(flags[0], (1, "\\Seen".to_string()));
    assert!(server.mailboxes().contains(&"Sub/Child".to_string()));
}
