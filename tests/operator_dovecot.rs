//! End to end with a real IMAP server: `mailsync operator` on the real control plane, the
//! test playing kubelet for the sync Jobs (see `operator_e2e/kubelet.rs`), and a private
//! Dovecot on 127.0.0.1 (`tests/dovecot`) as the far side, reached with STARTTLS, its CA from
//! a ConfigMap and the password from a Secret. Shows: apply → Job → the Maildir holds exactly
//! the server's messages and the status has Dovecot's UIDVALIDITY and the counts; a new
//! message arrives with the next manual run; a wrong password gives Degraded with a clear
//! message and loses nothing; the fixed Secret recovers on the next run.

#[path = "chart_support/mod.rs"]
mod chart_support;
mod dovecot;
mod k8s;
#[path = "operator_e2e/kubelet.rs"]
mod kubelet;
#[path = "operator_e2e/support.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;

use kubelet::Kubelet;
use support::{Channel, Operator, subjects, wait_for};

/// Dovecot's UIDVALIDITY of `mailbox`.
fn server_uid_validity(server: &dovecot::Dovecot, mailbox: &str) -> i64 {
    let output = server.doveadm(&[
        "mailbox",
        "status",
        "-u",
        dovecot::USER,
        "uidvalidity",
        mailbox,
    ]);
    output
        .split_whitespace()
        .find_map(|field| field.strip_prefix("uidvalidity="))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("doveadm printed {output:?}"))
}

/// The Subject lines of the server's messages in `mailbox`, sorted.
fn server_subjects(server: &dovecot::Dovecot, mailbox: &str) -> Vec<String> {
    let mut found: Vec<String> = server
        .uids(mailbox)
        .into_iter()
        .filter_map(|uid| {
            server
                .text(mailbox, uid)
                .lines()
                .find(|line| line.starts_with("Subject: "))
                .map(|line| line.trim_start_matches("Subject: ").trim().to_string())
        })
        .collect();
    found.sort();
    found
}

fn message(subject: &str) -> String {
    format!(
        "From: sender@example.org\r\nTo: tester@example.org\r\nSubject: {subject}\r\n\r\nBody of {subject}.\r\n"
    )
}

fn manifests(port: u16) -> String {
    format!(
        r#"
apiVersion: mailsync.io/v1alpha1
kind: MailStore
metadata:
  name: dovecot
spec:
  imap:
    host: 127.0.0.1
    port: {port}
    tls:
      mode: StartTLS
      systemCertificates: false
      ca:
        configMapKeyRef:
          name: dovecot-ca
          key: ca.crt
    auth:
      username: {user}
      passwordSecretRef:
        name: dovecot-login
        key: password
---
apiVersion: mailsync.io/v1alpha1
kind: MailStore
metadata:
  name: local
spec:
  maildir:
    volume:
      claimName: mail
      subPath: tester
---
apiVersion: mailsync.io/v1alpha1
kind: MailChannel
metadata:
  name: inbox
spec:
  far:
    storeRef:
      name: dovecot
  near:
    storeRef:
      name: local
  trigger:
    manual: "1"
"#,
        user = dovecot::USER
    )
}

/// Waits for the active Job, runs it, and returns its exit code.
fn run_next_job(kubelet: &Kubelet, operator: &Operator) -> i32 {
    let job = wait_for("a sync Job", Duration::from_secs(30), operator, || {
        kubelet.active_jobs().into_iter().next()
    });
    let run = kubelet.run_job(&job);
    if run.exit_code != 0 {
        eprintln!("{} failed:\n{}\n{}", run.job, run.stdout, run.stderr);
    }
    run.exit_code
}

#[test]

fn imap_channel_syncs_from_dovecot_and_reports_its_uidvalidity() {
    let server = dovecot::Dovecot::start();
    for subject in ["first", "second", "third"] {
        server.append("INBOX", &message(subject), "");
    }
    let control_plane = k8s::control_plane();
    control_plane.install_crds();
    let namespace = control_plane.namespace("operator-dovecot");
    let kubelet = Kubelet::new(control_plane, &namespace);
    let operator = Operator::start(control_plane, kubelet.scratch.path(), &[&namespace]);
    let channel = Channel {
        control_plane,
        namespace: namespace.clone(),
        name: "inbox".into(),
    };
    let near_inbox = kubelet.volume("mail").join("tester/INBOX");
    let ca = server.ca_file.to_string_lossy().into_owned();
    control_plane.kubectl_ok(&[
        "-n",
        &namespace,
        "create",
        "configmap",
        "dovecot-ca",
        &format!("--from-file=ca.crt={ca}"),
    ]);
    control_plane.kubectl_ok(&[
        "-n",
        &namespace,
        "create",
        "secret",
        "generic",
        "dovecot-login",
        &format!("--from-literal=password={}", dovecot::PASS),
    ]);
    control_plane.kubectl_ok_with_input(
        &["-n", &namespace, "apply", "-f", "-"],
        &manifests(server.port),
    );

    // First run: the Maildir holds exactly the server's messages; the status has Dovecot's
    // UIDVALIDITY and the counts.
    assert_eq!(run_next_job(&kubelet, &operator), 0, "{}", server.log());
    assert_eq!(subjects(&near_inbox), server_subjects(&server, "INBOX"));
    assert_eq!(subjects(&near_inbox), ["first", "second", "third"]);
    let status = wait_for("the status", Duration::from_secs(20), &operator, || {
        let json = channel.json();
        (json.pointer("/status/lastManualSync") == Some(&Value::from("1"))).then_some(json)
    });
    let mailbox = &status["status"]["mailboxes"][0];
    assert_eq!(mailbox["name"], "INBOX");
    assert_eq!(
        mailbox["far"]["uidValidity"],
        server_uid_validity(&server, "INBOX")
    );
    assert_eq!(mailbox["far"]["messages"], 3);
    assert_eq!(mailbox["near"]["messages"], 3);

    // A new message on the server arrives with the next run.
    server.append("INBOX", &message("fourth"), "");
    channel.patch(r#"{"spec":{"trigger":{"manual":"2"}}}"#);
    assert_eq!(run_next_job(&kubelet, &operator), 0);
    assert_eq!(
        subjects(&near_inbox),
        ["first", "fourth", "second", "third"]
    );

    // A wrong password: Degraded with a clear message, nothing lost.
    control_plane.kubectl_ok(&[
        "-n",
        &namespace,
        "patch",
        "secret",
        "dovecot-login",
        "--type=merge",
        "-p",
        r#"{"stringData":{"password":"not the password"}}"#,
    ]);
    channel.patch(r#"{"spec":{"trigger":{"manual":"3"}}}"#);
    assert_ne!(run_next_job(&kubelet, &operator), 0);
    let (_, _, degraded) = wait_for("Degraded", Duration::from_secs(20), &operator, || {
        channel.condition("Degraded").filter(|c| c.0 == "True")
    });
    assert!(
        degraded.to_lowercase().contains("auth") || degraded.to_lowercase().contains("login"),
        "not a clear message: {degraded}"
    );
    assert_eq!(
        subjects(&near_inbox),
        ["first", "fourth", "second", "third"]
    );
    assert_eq!(server.uids("INBOX").len(), 4);

    // The fixed Secret recovers on the next run.
    control_plane.kubectl_ok(&[
        "-n",
        &namespace,
        "patch",
        "secret",
        "dovecot-login",
        "--type=merge",
        "-p",
        &serde_json::json!({"stringData": {"password": dovecot::PASS}}).to_string(),
    ]);
    server.append("INBOX", &message("fifth"), "");
    channel.patch(r#"{"spec":{"trigger":{"manual":"4"}}}"#);
    assert_eq!(run_next_job(&kubelet, &operator), 0);
    wait_for("Ready again", Duration::from_secs(20), &operator, || {
        (channel.condition("Ready")?.0 == "True").then_some(())
    });
    assert_eq!(subjects(&near_inbox), server_subjects(&server, "INBOX"));
    assert_eq!(subjects(&near_inbox).len(), 5);
}
