//! End to end: `mailsync operator` against a real kube-apiserver, with the test standing in
//! for the kubelet (see `operator_e2e/kubelet.rs`): kubectl apply of two MailStores and a
//! MailChannel leads to a Job, the Job's Pod (run locally with the Pod's own ServiceAccount
//! token) syncs the mail and reports it in the channel's status; the manual trigger, the
//! schedule, suspend, one Job at a time, Pod Security `restricted`, and deletion.
//!
//! The engine does not drive IMAP stores yet, so the syncing channel has Maildirs on claims
//! on both sides (the far one standing for the server); an IMAP channel shows the Secret
//! checks and how a failed sync is reported.

#[path = "chart_support/mod.rs"]
mod chart_support;
mod k8s;
#[path = "operator_e2e/kubelet.rs"]
mod kubelet;
#[path = "operator_e2e/support.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;

use kubelet::Kubelet;
use support::{Channel, Operator, deliver, maildir_uid_validity, subjects, wait_for};

const MANIFESTS: &str = r#"
apiVersion: mailsync.io/v1alpha1
kind: MailStore
metadata:
  name: server
spec:
  maildir:
    volume:
      claimName: server-mail
---
apiVersion: mailsync.io/v1alpha1
kind: MailStore
metadata:
  name: local
spec:
  maildir:
    volume:
      claimName: local-mail
      subPath: alice
---
apiVersion: mailsync.io/v1alpha1
kind: MailChannel
metadata:
  name: inbox
spec:
  far:
    storeRef:
      name: server
  near:
    storeRef:
      name: local
  trigger:
    manual: "1"
"#;

#[test]
fn operator_schedules_jobs_and_the_worker_reports_status() {
    let control_plane = k8s::control_plane();
    control_plane.install_crds();
    let namespace = control_plane.namespace("operator-e2e");
    let kubelet = Kubelet::new(control_plane, &namespace);
    let operator = Operator::start(control_plane, kubelet.scratch.path(), &[&namespace]);
    let channel = Channel {
        control_plane,
        namespace: namespace.clone(),
        name: "inbox".into(),
    };
    let far_inbox = kubelet.volume("server-mail").join("INBOX");
    let near_inbox = kubelet.volume("local-mail").join("alice/INBOX");
    for (id, subject) in [("a", "first"), ("b", "second"), ("c", "third")] {
        deliver(&far_inbox, id, subject);
    }

    // kubectl apply → a Job.
    control_plane.kubectl_ok_with_input(&["-n", &namespace, "apply", "-f", "-"], MANIFESTS);
    let job = wait_for("the first Job", Duration::from_secs(30), &operator, || {
        kubelet.active_jobs().into_iter().next()
    });
    let job_name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["kind"], "MailChannel",
        "the Job is owned by its channel"
    );
    let (status, reason, _) = channel.condition("Synchronizing").expect("Synchronizing");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SyncInProgress")
    );

    // The Pod passes Pod Security `restricted`: a Pod made from the template is admitted
    // by a namespace enforcing it.
    let restricted = control_plane.namespace("operator-e2e-restricted");
    control_plane.kubectl_ok(&[
        "label",
        "namespace",
        &restricted,
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    control_plane.kubectl_ok(&[
        "-n",
        &restricted,
        "create",
        "serviceaccount",
        "mailsync-worker",
    ]);
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sync", "namespace": restricted},
        "spec": job["spec"]["template"]["spec"].clone(),
    });
    control_plane
        .kubectl_ok_with_input(&["create", "--dry-run=server", "-f", "-"], &pod.to_string());

    let run = kubelet.run_job(&job);
    assert_eq!(
        run.exit_code,
        0,
        "worker of {} failed:\n{}\n{}\noperator log:\n{}",
        run.job,
        run.stdout,
        run.stderr,
        operator.log()
    );
    assert_eq!(subjects(&near_inbox), subjects(&far_inbox));
    assert_eq!(subjects(&near_inbox), ["first", "second", "third"]);

    let status = wait_for(
        "the worker's status",
        Duration::from_secs(20),
        &operator,
        || {
            let json = channel.json();
            (json.pointer("/status/lastManualSync") == Some(&Value::from("1"))).then_some(json)
        },
    );
    let mailbox = &status["status"]["mailboxes"][0];
    assert_eq!(mailbox["name"], "INBOX");
    assert_eq!(mailbox["state"], "InSync");
    assert_eq!(
        mailbox["far"]["uidValidity"],
        maildir_uid_validity(&far_inbox)
    );
    assert_eq!(
        mailbox["near"]["uidValidity"],
        maildir_uid_validity(&near_inbox)
    );
    assert_eq!(mailbox["far"]["messages"], 3);
    assert_eq!(mailbox["near"]["messages"], 3);
    assert_eq!(status["status"]["totals"]["messagesNear"], 3);
    assert_eq!(status["status"]["latestResult"]["result"], "Succeeded");
    assert_eq!(status["status"]["latestResult"]["nearChanges"]["added"], 3);
    assert!(status["status"]["lastSyncTime"].is_string());
    wait_for("Ready=True", Duration::from_secs(20), &operator, || {
        (channel.condition("Ready")?.0 == "True").then_some(())
    });
    wait_for(
        "Synchronizing back to waiting",
        Duration::from_secs(20),
        &operator,
        || (channel.condition("Synchronizing")?.1 == "WaitingForManual").then_some(()),
    );

    // A new trigger starts one Job; a second trigger while it runs starts no second one.
    channel.patch(r#"{"spec":{"trigger":{"manual":"2"}}}"#);
    let second = wait_for(
        "the Job of trigger 2",
        Duration::from_secs(20),
        &operator,
        || kubelet.active_jobs().into_iter().next(),
    );
    channel.patch(r#"{"spec":{"trigger":{"manual":"3"}}}"#);
    std::thread::sleep(Duration::from_secs(3));
    let active = kubelet.active_jobs();
    assert_eq!(active.len(), 1, "two Jobs at once: {active:?}");
    assert_eq!(active[0]["metadata"]["name"], second["metadata"]["name"]);
    let (_, _, message) = channel.condition("Synchronizing").expect("Synchronizing");
    assert!(message.contains("pending"), "{message}");
    assert_eq!(kubelet.run_job(&second).exit_code, 0);
    // The pending run follows, once.
    let third = wait_for(
        "the pending run",
        Duration::from_secs(20),
        &operator,
        || kubelet.active_jobs().into_iter().next(),
    );
    assert_eq!(kubelet.run_job(&third).exit_code, 0);

    // A new message arrives in the Maildir with the next scheduled run.
    deliver(&far_inbox, "d", "fourth");
    channel.patch(r#"{"spec":{"trigger":{"schedule":"* * * * *","timeZone":"Europe/Berlin"}}}"#);
    wait_for("nextSyncTime", Duration::from_secs(20), &operator, || {
        channel.json().pointer("/status/nextSyncTime").cloned()
    });
    let scheduled = wait_for(
        "the scheduled Job",
        Duration::from_secs(100),
        &operator,
        || kubelet.active_jobs().into_iter().next(),
    );
    assert_eq!(
        scheduled["metadata"]["annotations"]["mailsync.io/run"],
        "schedule"
    );
    assert_eq!(kubelet.run_job(&scheduled).exit_code, 0);
    assert_eq!(
        subjects(&near_inbox),
        ["first", "fourth", "second", "third"]
    );
    wait_for(
        "4 messages in the status",
        Duration::from_secs(20),
        &operator,
        || {
            (channel.json().pointer("/status/totals/messagesNear") == Some(&Value::from(4)))
                .then_some(())
        },
    );

    // History: at most one finished successful Job is kept.
    wait_for(
        "history cleanup",
        Duration::from_secs(20),
        &operator,
        || (kubelet.jobs().len() == 1).then_some(()),
    );

    // Suspend: no new Jobs, neither scheduled nor manual.
    channel.patch(r#"{"spec":{"suspend":true,"trigger":{"manual":"4"}}}"#);
    wait_for("Suspended", Duration::from_secs(20), &operator, || {
        (channel.condition("Synchronizing")?.1 == "Suspended").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        kubelet.active_jobs().is_empty(),
        "a Job started while suspended"
    );

    // Credentials are checked before a Job is made, a failed sync is reported clearly and
    // loses nothing, and a fixed Secret recovers.
    check_credentials(control_plane, &kubelet, &operator, &namespace);

    // Events tell of starts and successes.
    let events = control_plane.kubectl_ok(&["-n", &namespace, "get", "events", "-o", "json"]);
    assert!(events.contains("SyncStarted"), "{events}");
    assert!(events.contains("SyncSucceeded"), "{events}");
    assert!(
        events.contains(&format!("Started sync Job {job_name}")),
        "{events}"
    );

    // Deleting the channel removes its Jobs and ConfigMap and keeps the mail.
    control_plane.kubectl_ok(&[
        "-n",
        &namespace,
        "delete",
        "mailchannel",
        "inbox",
        "--wait=false",
    ]);
    wait_for(
        "the channel to go",
        Duration::from_secs(30),
        &operator,
        || {
            let output = control_plane.kubectl(&["-n", &namespace, "get", "mailchannel", "inbox"]);
            (!output.status.success()).then_some(())
        },
    );
    assert!(kubelet.jobs().is_empty(), "Jobs left behind");
    let config_maps = control_plane.kubectl_ok(&[
        "-n",
        &namespace,
        "get",
        "configmaps",
        "-l",
        "mailsync.io/channel=inbox",
        "-o",
        "name",
    ]);
    assert!(
        config_maps.trim().is_empty(),
        "ConfigMap left behind: {config_maps}"
    );
    assert_eq!(
        subjects(&near_inbox),
        ["first", "fourth", "second", "third"]
    );
}

const REMOTE_MANIFESTS: &str = r#"
apiVersion: mailsync.io/v1alpha1
kind: MailStore
metadata:
  name: imap-server
spec:
  imap:
    host: 127.0.0.1
    port: 9
    tls:
      mode: None
      allowInsecure: true
    auth:
      username: tester
      passwordSecretRef:
        name: mail-pass
        key: password
---
apiVersion: mailsync.io/v1alpha1
kind: MailStore
metadata:
  name: remote-local
spec:
  maildir:
    volume:
      claimName: local-mail
      subPath: remote
---
apiVersion: mailsync.io/v1alpha1
kind: MailChannel
metadata:
  name: remote
spec:
  far:
    storeRef:
      name: imap-server
  near:
    storeRef:
      name: remote-local
  trigger:
    manual: "1"
"#;

/// The Jobs of channel `name`.
fn jobs_of(kubelet: &Kubelet, name: &str) -> Vec<Value> {
    kubelet
        .active_jobs()
        .into_iter()
        .filter(|job| job["metadata"]["annotations"]["mailsync.io/channel"] == name)
        .collect()
}

fn check_credentials(
    control_plane: &k8s::ControlPlane,
    kubelet: &Kubelet,
    operator: &Operator,
    namespace: &str,
) {
    let channel = Channel {
        control_plane,
        namespace: namespace.to_string(),
        name: "remote".into(),
    };
    let near_inbox = kubelet.volume("local-mail").join("remote/INBOX");
    deliver(&near_inbox, "local", "kept locally");
    control_plane.kubectl_ok_with_input(&["-n", namespace, "apply", "-f", "-"], REMOTE_MANIFESTS);
    let message = wait_for(
        "CredentialsInvalid",
        Duration::from_secs(20),
        operator,
        || {
            let (status, _, message) = channel.condition("CredentialsInvalid")?;
            (status == "True").then_some(message)
        },
    );
    assert!(
        message.contains("Secret")
            && message.contains("mail-pass")
            && message.contains("does not exist"),
        "{message}"
    );
    // A Secret without the key named by the store is refused too.
    control_plane.kubectl_ok(&[
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "mail-pass",
        "--from-literal=pw=wrong",
    ]);
    let message = wait_for("the missing key", Duration::from_secs(20), operator, || {
        let (status, _, message) = channel.condition("CredentialsInvalid")?;
        (status == "True" && message.contains("has no key")).then_some(message)
    });
    assert!(message.contains("\"password\""), "{message}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        jobs_of(kubelet, "remote").is_empty(),
        "a Job despite missing credentials"
    );

    // With the key there, a Job runs; the sync fails (the server does not answer), the
    // status says so clearly, and the local mail is untouched.
    control_plane.kubectl_ok(&[
        "-n",
        namespace,
        "patch",
        "secret",
        "mail-pass",
        "--type=merge",
        "-p",
        r#"{"stringData":{"password":"wrong password"}}"#,
    ]);
    let job = wait_for("the remote Job", Duration::from_secs(20), operator, || {
        jobs_of(kubelet, "remote").into_iter().next()
    });
    let credentials = channel.condition("CredentialsInvalid").expect("condition");
    assert_eq!(credentials.0, "False");
    let run = kubelet.run_job(&job);
    assert_ne!(run.exit_code, 0, "the sync cannot succeed: {run:?}");
    let (_, _, degraded) = wait_for("Degraded", Duration::from_secs(20), operator, || {
        channel.condition("Degraded").filter(|c| c.0 == "True")
    });
    assert!(!degraded.is_empty(), "Degraded without a message");
    assert!(
        run.stderr.contains(degraded.trim_end()) || degraded.contains("imap-server"),
        "the status message {degraded:?} is not the engine's error:\n{}",
        run.stderr
    );
    let json = channel.json();
    assert_eq!(json["status"]["latestResult"]["result"], "Failed");
    assert_ne!(json["status"]["latestResult"]["exitCode"], 0);
    wait_for(
        "Synchronizing=Error",
        Duration::from_secs(20),
        operator,
        || {
            let (_, reason, message) = channel.condition("Synchronizing")?;
            (reason == "Error" && message.contains("failed")).then_some(())
        },
    );
    assert_eq!(subjects(&near_inbox), ["kept locally"], "local mail lost");
    let events = control_plane.kubectl_ok(&["-n", namespace, "get", "events", "-o", "json"]);
    assert!(events.contains("SyncFailed"), "{events}");
    assert!(events.contains("CredentialsInvalid"), "{events}");
    control_plane.kubectl_ok(&["-n", namespace, "delete", "mailchannel", "remote"]);
}
