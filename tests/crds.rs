//! The MailStore and MailChannel CRDs: `crds/` is what `mailsync crds` prints, the samples
//! fit the Rust types, and against a real kube-apiserver the CRDs install, the samples apply,
//! invalid manifests are rejected with their messages, status goes through the status
//! subresource and `kubectl get` shows the printer columns.

mod k8s;

use std::process::Command;

use mailsync::operator::status::{
    MAX_STATUS_MESSAGE_CHARS, MailChannelStatus, MailboxSideStatus, MailboxState, MailboxStatus,
    SyncOutcome, SyncResult, SyncTotals, bounded_message,
};
use mailsync::operator::{self, MailChannel, MailStore, condition};

use k8s::{ControlPlane, control_plane, repo_root};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

// --- without a cluster ------------------------------------------------------------------

#[test]
fn crds_dir_holds_exactly_what_mailsync_crds_generates() {
    let documents = operator::crd_documents().expect("CRDs render");
    let crds_dir = repo_root().join("crds");
    let mut files: Vec<String> = std::fs::read_dir(&crds_dir)
        .expect("crds/ exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut expected: Vec<String> = documents.iter().map(|d| d.file_name.clone()).collect();
    expected.sort();
    assert_eq!(
        files, expected,
        "crds/ has other files than `mailsync crds --dir crds` writes"
    );
    for document in &documents {
        let on_disk =
            std::fs::read_to_string(crds_dir.join(&document.file_name)).expect("CRD file readable");
        assert!(
            on_disk == document.yaml,
            "crds/{} is out of date: run `cargo run -- crds --dir crds`",
            document.file_name
        );
    }

    let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
        .arg("crds")
        .output()
        .expect("mailsync runs");
    assert!(output.status.success(), "mailsync crds failed");
    let printed = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert_eq!(printed, operator::join_documents(&documents));
    let names: Vec<&str> = printed
        .lines()
        .filter_map(|line| line.strip_prefix("  name: "))
        .filter(|name| name.ends_with(".mailsync.io"))
        .collect();
    assert_eq!(
        names,
        ["mailstores.mailsync.io", "mailchannels.mailsync.io"]
    );
}

/// Every YAML document of the samples, with the file it came from.
fn sample_documents() -> Vec<(String, Value)> {
    let samples_dir = repo_root().join("config/samples");
    let mut paths: Vec<_> = std::fs::read_dir(&samples_dir)
        .expect("config/samples exists")
        .map(|entry| entry.expect("readable entry").path())
        .collect();
    paths.sort();
    let mut documents = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("sample readable");
        let values: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        for value in values {
            documents.push((name.clone().unwrap_or_default(), value));
        }
    }
    documents
}

#[test]
fn samples_fit_the_rust_types_without_unknown_fields() {
    let mut kinds = Vec::new();
    for (file, document) in sample_documents() {
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let round_trip = match kind.as_str() {
            "MailStore" => {
                let store: MailStore = serde_json::from_value(document.clone())
                    .unwrap_or_else(|e| panic!("{file}: not a MailStore: {e}"));
                serde_json::to_value(&store).expect("serializes")
            }
            "MailChannel" => {
                let channel: MailChannel = serde_json::from_value(document.clone())
                    .unwrap_or_else(|e| panic!("{file}: not a MailChannel: {e}"));
                serde_json::to_value(&channel).expect("serializes")
            }
            _ => continue,
        };
        // A field the types do not know would be dropped here.
        assert_eq!(
            round_trip, document,
            "{file}: {kind} changed in a round trip"
        );
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "MailChannel",
            "MailChannel",
            "MailStore",
            "MailStore",
            "MailStore",
            "MailStore"
        ]
    );
}

#[test]
fn the_gmail_sample_says_what_the_mbsync_channel_says() {
    let documents = sample_documents();
    let gmail = documents
        .iter()
        .find(|(_, d)| d["kind"] == "MailChannel" && d["metadata"]["name"] == "gmail")
        .map(|(_, d)| d.clone())
        .expect("a MailChannel named gmail");
    let channel: MailChannel = serde_json::from_value(gmail).expect("a MailChannel");
    let spec = &channel.spec;
    assert_eq!(spec.far.store_ref.name, "gmail-remote");
    assert_eq!(spec.far.mailbox, None);
    assert_eq!(spec.near.store_ref.name, "gmail-local");
    assert_eq!(spec.near.mailbox, None);
    assert_eq!(
        spec.patterns.as_deref(),
        Some(
            &[
                "*",
                "![Gmail]*",
                "[Gmail]/Sent Mail",
                "[Gmail]/Starred",
                "[Gmail]/All Mail"
            ]
            .map(String::from)[..]
        )
    );
    use mailsync::operator::channel::SyncStateLocation;
    use mailsync::operator::common::Sides;
    assert_eq!(spec.create, Some(Sides::Both));
    assert_eq!(spec.expunge, Some(Sides::Both));
    let location = spec.sync_state.as_ref().and_then(|s| s.location);
    assert_eq!(location, Some(SyncStateLocation::InMailbox));
}

// --- against the API server ------------------------------------------------------------

fn cluster() -> &'static ControlPlane {
    let control_plane = control_plane();
    control_plane.install_crds();
    control_plane
}

#[test]
fn crds_install_and_become_established() {
    let cluster = control_plane();
    let warnings = cluster.install_crds();
    assert!(
        warnings.trim().is_empty(),
        "kubectl apply -f crds/ printed:\n{warnings}"
    );
    for crd in ["mailstores.mailsync.io", "mailchannels.mailsync.io"] {
        let conditions = cluster.kubectl_ok(&[
            "get",
            "crd",
            crd,
            "-o",
            r#"jsonpath={range .status.conditions[*]}{.type}={.status}{"\n"}{end}"#,
        ]);
        let lines: Vec<&str> = conditions.lines().collect();
        assert!(lines.contains(&"Established=True"), "{crd}: {conditions}");
        assert!(lines.contains(&"NamesAccepted=True"), "{crd}: {conditions}");
        assert!(
            !lines.iter().any(|l| l.starts_with("NonStructuralSchema")),
            "{crd}: {conditions}"
        );
    }
    let resources = cluster.kubectl_ok(&["api-resources", "--api-group=mailsync.io", "-o", "wide"]);
    let rows: Vec<Vec<&str>> = resources
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect())
        .collect();
    let mailchannels = rows
        .iter()
        .find(|r| r[0] == "mailchannels")
        .expect("mailchannels");
    assert_eq!(mailchannels[1], "mch");
    assert_eq!(mailchannels[2], "mailsync.io/v1alpha1");
    assert_eq!(mailchannels[3], "true", "namespaced");
    assert_eq!(mailchannels[4], "MailChannel");
    assert!(
        mailchannels.last() == Some(&"mailsync"),
        "category: {mailchannels:?}"
    );
    let mailstores = rows
        .iter()
        .find(|r| r[0] == "mailstores")
        .expect("mailstores");
    assert_eq!(mailstores[1], "mst");
    assert_eq!(mailstores[4], "MailStore");
    assert!(
        mailstores.last() == Some(&"mailsync"),
        "category: {mailstores:?}"
    );
}

#[test]
fn samples_apply_and_come_back_as_the_rust_types() {
    let cluster = cluster();
    let namespace = cluster.namespace("samples");
    let samples = repo_root().join("config/samples");
    let applied =
        cluster.kubectl_ok(&["apply", "-n", &namespace, "-f", &samples.to_string_lossy()]);
    for created in [
        "mailstore.mailsync.io/work-imap created",
        "mailstore.mailsync.io/local-maildir created",
        "mailstore.mailsync.io/gmail-remote created",
        "mailstore.mailsync.io/gmail-local created",
        "mailchannel.mailsync.io/work created",
        "mailchannel.mailsync.io/gmail created",
    ] {
        assert!(
            applied.contains(created),
            "missing '{created}' in:\n{applied}"
        );
    }
    // The category lists both kinds.
    let listed = cluster.kubectl_ok(&["get", "mailsync", "-n", &namespace, "-o", "name"]);
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "mailchannel.mailsync.io/gmail",
            "mailchannel.mailsync.io/work",
            "mailstore.mailsync.io/gmail-local",
            "mailstore.mailsync.io/gmail-remote",
            "mailstore.mailsync.io/local-maildir",
            "mailstore.mailsync.io/work-imap",
        ]
    );
    let json = cluster.kubectl_ok(&["get", "mailchannel", "work", "-n", &namespace, "-o", "json"]);
    let work: MailChannel = serde_json::from_str(&json).expect("the server's MailChannel parses");
    let trigger = work.spec.trigger.expect("trigger");
    assert_eq!(trigger.schedule.as_deref(), Some("*/15 * * * *"));
    assert_eq!(trigger.time_zone.as_deref(), Some("Europe/Berlin"));
    let json = cluster.kubectl_ok(&["get", "mst", "work-imap", "-n", &namespace, "-o", "json"]);
    let store: MailStore = serde_json::from_str(&json).expect("the server's MailStore parses");
    let imap = store.spec.imap.expect("imap");
    assert_eq!(imap.host.as_deref(), Some("imap.example.org"));
    let password = imap
        .auth
        .and_then(|auth| auth.password_secret_ref)
        .expect("password ref");
    assert_eq!(
        (password.name.as_str(), password.key.as_str()),
        ("work-imap-credentials", "password")
    );
}

/// A MailChannel manifest named `name` whose spec is the two sides plus `extra` (YAML lines
/// indented by two spaces).
fn channel_manifest(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: mailsync.io/v1alpha1\nkind: MailChannel\nmetadata:\n  name: {name}\nspec:\n  far:\n    storeRef:\n      name: far-store\n  near:\n    storeRef:\n      name: near-store\n{extra}"
    )
}

/// A MailStore manifest named `name` with `spec` (YAML lines indented by two spaces).
fn store_manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: mailsync.io/v1alpha1\nkind: MailStore\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Submits `manifest` with a server-side dry run; returns the error text if it was rejected.
fn rejection(cluster: &ControlPlane, namespace: &str, manifest: &str) -> Option<String> {
    let output = cluster.kubectl_with_input(
        &["apply", "--dry-run=server", "-n", namespace, "-f", "-"],
        Some(manifest),
    );
    if output.status.success() {
        None
    } else {
        Some(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

const SIX_FIELDS: &str = "schedule has more than 5 fields: there is no seconds field";
const NOT_CRON: &str = "schedule must be 5 cron fields";

#[test]
fn invalid_manifests_are_rejected_with_their_messages() {
    let cluster = cluster();
    let namespace = cluster.namespace("invalid");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "store with imap and maildir",
            store_manifest("both", "  imap:\n    host: imap.example.org\n  maildir:\n    volume:\n      claimName: mail\n"),
            "exactly one of spec.imap and spec.maildir must be set",
        ),
        (
            "store with neither imap nor maildir",
            store_manifest("neither", "  trash: Trash\n"),
            "exactly one of spec.imap and spec.maildir must be set",
        ),
        (
            "imap with host and tunnel",
            store_manifest("host-tunnel", "  imap:\n    host: imap.example.org\n    tunnel: ssh mail imapd\n"),
            "exactly one of imap.host and imap.tunnel must be set",
        ),
        (
            "TLS None without opt-in",
            store_manifest("plain", "  imap:\n    host: imap.example.org\n    tls:\n      mode: None\n"),
            "tls.mode None sends the password unencrypted: set tls.allowInsecure: true",
        ),
        (
            "unknown TLS mode",
            store_manifest("tls-mode", "  imap:\n    host: imap.example.org\n    tls:\n      mode: SSL\n"),
            r#"spec.imap.tls.mode: Unsupported value: "SSL": supported values: "Implicit", "StartTLS", "None""#,
        ),
        (
            "port out of range",
            store_manifest("port", "  imap:\n    host: imap.example.org\n    port: 70000\n"),
            "spec.imap.port: Invalid value: 70000: spec.imap.port in body should be less than or equal to 65535",
        ),
        (
            "more connections per run than the store allows",
            store_manifest("per-run", "  imap:\n    host: imap.example.org\n    maxConnections: 2\n    connectionsPerRun: 3\n"),
            "imap.connectionsPerRun cannot exceed imap.maxConnections (default 1)",
        ),
        (
            "connections per run out of range",
            store_manifest("per-run-range", "  imap:\n    host: imap.example.org\n    maxConnections: 64\n    connectionsPerRun: 65\n"),
            "spec.imap.connectionsPerRun in body should be less than or equal to 64",
        ),
        (
            "password and OAuth2 together",
            store_manifest("pass-oauth", "  imap:\n    host: imap.example.org\n    auth:\n      username: me\n      passwordSecretRef: {name: s, key: p}\n      oauth2:\n        accessTokenSecretRef: {name: s, key: t}\n"),
            "set either auth.passwordSecretRef or auth.oauth2, not both",
        ),
        (
            "password without user",
            store_manifest("no-user", "  imap:\n    host: imap.example.org\n    auth:\n      passwordSecretRef: {name: s, key: p}\n"),
            "a password or OAuth2 token needs auth.username or auth.usernameSecretRef",
        ),
        (
            "secret reference without key",
            store_manifest("no-key", "  imap:\n    host: imap.example.org\n    auth:\n      username: me\n      passwordSecretRef: {name: s}\n"),
            "spec.imap.auth.passwordSecretRef.key: Required value",
        ),
        (
            "refresh token without token URL",
            store_manifest("refresh", "  imap:\n    host: imap.example.org\n    auth:\n      username: me\n      oauth2:\n        refreshTokenSecretRef: {name: s, key: r}\n        clientId: abc\n"),
            "oauth2.refreshTokenSecretRef needs tokenUrl and clientId or clientIdSecretRef",
        ),
        (
            "token URL over http",
            store_manifest("http-token", "  imap:\n    host: imap.example.org\n    auth:\n      username: me\n      oauth2:\n        refreshTokenSecretRef: {name: s, key: r}\n        clientId: abc\n        tokenUrl: http://oauth.example.org/token\n"),
            "oauth2.tokenUrl must be an https:// URL",
        ),
        (
            "CA from both a ConfigMap and a Secret",
            store_manifest("ca", "  imap:\n    host: imap.example.org\n    tls:\n      ca:\n        configMapKeyRef: {name: ca, key: ca.crt}\n        secretKeyRef: {name: ca, key: ca.crt}\n"),
            "tls.ca needs exactly one of configMapKeyRef and secretKeyRef",
        ),
        (
            "unknown IMAP extension",
            store_manifest("ext", "  imap:\n    host: imap.example.org\n    disableExtensions: [IDLE]\n"),
            r#"spec.imap.disableExtensions[0]: Unsupported value: "IDLE""#,
        ),
        (
            "maildir without volume",
            store_manifest("no-volume", "  maildir:\n    path: Mail/\n"),
            "spec.maildir.volume: Required value",
        ),
        (
            "maildir sub-path escaping the volume",
            store_manifest("escape", "  maildir:\n    volume:\n      claimName: mail\n      subPath: alice/../bob\n"),
            "spec.maildir.volume.subPath: Invalid value: \"string\": must be a relative path (no leading '/') without '..' components",
        ),
        (
            "maildir absolute inbox",
            store_manifest("absolute", "  maildir:\n    volume:\n      claimName: mail\n    inbox: /var/mail/alice\n"),
            "spec.maildir.inbox: Invalid value: \"string\": must be a relative path",
        ),
        (
            "Maildir++ with a path",
            store_manifest("mpp", "  maildir:\n    volume:\n      claimName: mail\n    subFolders: MaildirPlusPlus\n    path: Mail/\n"),
            "maildir.path cannot be set with subFolders MaildirPlusPlus",
        ),
        (
            "info delimiter not punctuation",
            store_manifest("delim", "  maildir:\n    volume:\n      claimName: mail\n    infoDelimiter: x\n"),
            "spec.maildir.infoDelimiter: Invalid value: \"x\": spec.maildir.infoDelimiter in body should match",
        ),
        (
            "Berkeley DB UID map",
            store_manifest("altmap", "  maildir:\n    volume:\n      claimName: mail\n    altMap: true\n"),
            "altMap: true (Berkeley DB UID maps) is not supported",
        ),
        (
            "flatten with a slash",
            store_manifest("flatten", "  maildir:\n    volume:\n      claimName: mail\n  flatten: a/b\n"),
            "flatten cannot contain the canonical hierarchy delimiter '/'",
        ),
        (
            "size that is no quantity",
            store_manifest("size", "  maildir:\n    volume:\n      claimName: mail\n  maxMessageSize: ten megs\n"),
            "must be a byte size such as 10Mi, 500k or 1048576 (0 means unlimited)",
        ),
        (
            "channel without near side",
            "apiVersion: mailsync.io/v1alpha1\nkind: MailChannel\nmetadata:\n  name: one-side\nspec:\n  far:\n    storeRef:\n      name: far-store\n".to_string(),
            "spec.near: Required value",
        ),
        (
            "channel side without store",
            "apiVersion: mailsync.io/v1alpha1\nkind: MailChannel\nmetadata:\n  name: no-store\nspec:\n  far:\n    mailbox: INBOX\n  near:\n    storeRef:\n      name: near-store\n".to_string(),
            "spec.far.storeRef: Required value",
        ),
        (
            "unknown create value",
            channel_manifest("create", "  create: Sometimes\n"),
            r#"spec.create: Unsupported value: "Sometimes": supported values: "None", "Far", "Near", "Both""#,
        ),
        (
            "unknown operation",
            channel_manifest("op", "  sync:\n    pull: [New, Renew]\n"),
            r#"spec.sync.pull[1]: Unsupported value: "Renew""#,
        ),
        (
            "operation twice",
            channel_manifest("dup", "  sync:\n    push: [New, Flags, New]\n"),
            r#"spec.sync.push[2]: Duplicate value: "New""#,
        ),
        (
            "negative maxMessages",
            channel_manifest("max", "  maxMessages: -1\n"),
            "spec.maxMessages: Invalid value: -1: spec.maxMessages in body should be greater than or equal to 0",
        ),
        (
            "zero buffer limit",
            channel_manifest("buffer", "  bufferLimit: 0\n"),
            "bufferLimit must be a positive byte size such as 10Mi",
        ),
        (
            "state volume with in-mailbox state",
            channel_manifest("state", "  syncState:\n    location: InMailbox\n    volume:\n      claimName: state\n"),
            "syncState.volume cannot be used with location InMailbox",
        ),
        (
            "six-field cron (seconds first)",
            channel_manifest("six", "  trigger:\n    schedule: \"0 0 1 * * *\"\n"),
            SIX_FIELDS,
        ),
        (
            "minute 60",
            channel_manifest("minute", "  trigger:\n    schedule: \"60 * * * *\"\n"),
            NOT_CRON,
        ),
        (
            "hour 24",
            channel_manifest("hour", "  trigger:\n    schedule: \"0 24 * * *\"\n"),
            NOT_CRON,
        ),
        (
            "day of month 0",
            channel_manifest("dom", "  trigger:\n    schedule: \"0 1 0 * *\"\n"),
            NOT_CRON,
        ),
        (
            "month 13",
            channel_manifest("month", "  trigger:\n    schedule: \"0 1 1 13 *\"\n"),
            NOT_CRON,
        ),
        (
            "day of week 7",
            channel_manifest("dow", "  trigger:\n    schedule: \"0 1 * * 7\"\n"),
            NOT_CRON,
        ),
        (
            "four fields",
            channel_manifest("four", "  trigger:\n    schedule: \"0 1 * *\"\n"),
            NOT_CRON,
        ),
        (
            "unknown descriptor",
            channel_manifest("reboot", "  trigger:\n    schedule: \"@reboot\"\n"),
            NOT_CRON,
        ),
        (
            "time zone inside the schedule",
            channel_manifest("tz", "  trigger:\n    schedule: \"CRON_TZ=Europe/Berlin 0 1 * *\"\n"),
            "set the time zone with trigger.timeZone, not with TZ= or CRON_TZ= in the schedule",
        ),
        (
            "time zone that is no IANA name",
            channel_manifest("tzname", "  trigger:\n    schedule: \"@daily\"\n    timeZone: \"+02:00\"\n"),
            "timeZone must be an IANA time zone name such as Europe/Berlin or UTC",
        ),
        (
            "time zone without schedule",
            channel_manifest("tzalone", "  trigger:\n    timeZone: Europe/Berlin\n"),
            "trigger.timeZone needs trigger.schedule",
        ),
        (
            "negative history limit",
            channel_manifest("history", "  job:\n    successfulJobsHistoryLimit: -1\n"),
            "spec.job.successfulJobsHistoryLimit: Invalid value: -1",
        ),
    ];
    let mut failures = Vec::new();
    for (what, manifest, expected) in &cases {
        match rejection(cluster, &namespace, manifest) {
            None => failures.push(format!("{what}: accepted")),
            Some(error) if !error.contains(expected) => {
                failures.push(format!("{what}: expected '{expected}' in:\n{error}"))
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn valid_edge_cases_are_accepted() {
    let cluster = cluster();
    let namespace = cluster.namespace("valid");
    let schedules = [
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "0 1 * * *",
        "*/15 * * * *",
        "0,30 1-5/2 * jan-mar MON-FRI",
        "59 23 31 12 6",
        "0 0 1,15 * 0",
    ];
    let mut manifests: Vec<(String, String)> = schedules
        .iter()
        .enumerate()
        .map(|(i, schedule)| {
            (
                format!("schedule {schedule}"),
                channel_manifest(
                    &format!("schedule-{i}"),
                    &format!("  trigger:\n    schedule: \"{schedule}\"\n    timeZone: America/Argentina/Buenos_Aires\n"),
                ),
            )
        })
        .collect();
    manifests.extend([
        (
            "TLS None with opt-in".to_string(),
            store_manifest("plain", "  imap:\n    host: 127.0.0.1\n    port: 143\n    tls:\n      mode: None\n      allowInsecure: true\n"),
        ),
        (
            "TLS None over a tunnel".to_string(),
            store_manifest("tunnel", "  imap:\n    tunnel: ssh -q mail.example.org /usr/lib/dovecot/imap\n    tls:\n      mode: None\n"),
        ),
        (
            "OAuth2 access token".to_string(),
            store_manifest("token", "  imap:\n    host: outlook.office365.com\n    auth:\n      usernameSecretRef: {name: s, key: u}\n      oauth2:\n        accessTokenSecretRef: {name: s, key: t}\n      mechanisms: [XOAUTH2, OAUTHBEARER]\n"),
        ),
        (
            "client certificate and CA from a Secret".to_string(),
            store_manifest("certs", "  imap:\n    host: imap.example.org\n    tls:\n      mode: StartTLS\n      versions: [\"1.3\"]\n      ca:\n        secretKeyRef: {name: ca, key: ca.crt}\n      clientCertificate:\n        certificateSecretRef: {name: client, key: tls.crt}\n        privateKeySecretRef: {name: client, key: tls.key}\n    disableExtensions: [COMPRESS=DEFLATE, LITERAL+]\n"),
        ),
        (
            "every Maildir option".to_string(),
            store_manifest("maildir", "  maildir:\n    volume:\n      claimName: mail\n      subPath: alice\n    path: Mail/work-\n    inbox: Mail/INBOX\n    subFolders: Legacy\n    infoDelimiter: \";\"\n    altMap: false\n    fsync: true\n  trash: Trash\n  trashNewOnly: true\n  trashRemoteNew: false\n  maxMessageSize: 10Mi\n  mapInbox: Inbox\n  flatten: .\n"),
        ),
        (
            "every channel option".to_string(),
            channel_manifest("all", "  patterns: [\"*\", \"!Junk*\", Junk/keep]\n  sync:\n    pull: [New, Old, Upgrade, Gone, Flags]\n    push: []\n  create: Both\n  remove: Near\n  expunge: Far\n  expungeSolo: Near\n  copyArrivalDate: true\n  maxMessages: 1000\n  expireSide: Far\n  expireUnread: false\n  maxMessageSize: 0\n  bufferLimit: 10Mi\n  syncState:\n    volume:\n      claimName: state\n      subPath: channels/all\n    fieldDelimiter: \";\"\n  trigger:\n    manual: \"2026-11-25T10:00:00Z\"\n  suspend: true\n  job:\n    resources:\n      limits: {memory: 128Mi}\n    nodeSelector: {kubernetes.io/os: linux}\n    tolerations:\n    - {key: dedicated, operator: Equal, value: mail, effect: NoSchedule}\n    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n          nodeSelectorTerms:\n          - matchExpressions:\n            - {key: kubernetes.io/arch, operator: In, values: [amd64]}\n    activeDeadlineSeconds: 600\n    backoffLimit: 0\n    successfulJobsHistoryLimit: 0\n    failedJobsHistoryLimit: 5\n"),
        ),
    ]);
    let mut failures = Vec::new();
    for (what, manifest) in &manifests {
        if let Some(error) = rejection(cluster, &namespace, manifest) {
            failures.push(format!("{what}: rejected:\n{error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn channel_sides_and_sync_state_cannot_be_changed_after_creation() {
    let cluster = cluster();
    let namespace = cluster.namespace("immutable");
    cluster.kubectl_ok_with_input(
        &["apply", "-n", &namespace, "-f", "-"],
        &channel_manifest("ch", "  suspend: false\n"),
    );
    let moved = channel_manifest("ch", "  suspend: false\n")
        .replace("name: far-store", "name: other-store");
    let output = cluster.kubectl_with_input(&["apply", "-n", &namespace, "-f", "-"], Some(&moved));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the far store was changed");
    assert!(
        error.contains("spec.far: Invalid value: \"object\": far and near cannot be changed"),
        "{error}"
    );
    let prefixed = channel_manifest("ch", "  suspend: false\n").replace(
        "      name: near-store\n",
        "      name: near-store\n    mailbox: archive/\n",
    );
    let output =
        cluster.kubectl_with_input(&["apply", "-n", &namespace, "-f", "-"], Some(&prefixed));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the near mailbox was changed");
    assert!(
        error.contains("spec.near: Invalid value: \"object\": far and near cannot be changed"),
        "{error}"
    );
    let with_state = |claim: &str| {
        channel_manifest(
            "state",
            &format!("  syncState:\n    volume:\n      claimName: {claim}\n"),
        )
    };
    cluster.kubectl_ok_with_input(&["apply", "-n", &namespace, "-f", "-"], &with_state("one"));
    let output = cluster.kubectl_with_input(
        &["apply", "-n", &namespace, "-f", "-"],
        Some(&with_state("two")),
    );
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the state volume was changed");
    assert!(error.contains("syncState cannot be changed"), "{error}");
    // Other fields stay editable.
    let suspended = channel_manifest("ch", "  suspend: true\n");
    cluster.kubectl_ok_with_input(&["apply", "-n", &namespace, "-f", "-"], &suspended);
    assert_eq!(
        get_channel(cluster, &namespace, "ch").spec.suspend,
        Some(true)
    );
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: time("2026-11-25T10:00:00Z"),
        observed_generation: Some(1),
    }
}

fn time(text: &str) -> Time {
    Time(text.parse().expect("a valid timestamp"))
}

fn sample_status() -> MailChannelStatus {
    MailChannelStatus {
        observed_generation: Some(1),
        conditions: Some(vec![
            condition(
                condition::READY,
                "True",
                "Synchronized",
                "last sync succeeded",
            ),
            condition(
                condition::SYNCHRONIZING,
                "False",
                condition::REASON_WAITING_FOR_SCHEDULE,
                "",
            ),
        ]),
        last_sync_start_time: None,
        last_sync_time: Some(time("2026-11-25T10:00:00Z")),
        last_sync_duration: Some("1m30.5s".into()),
        next_sync_time: Some(time("2026-11-25T10:15:00Z")),
        last_schedule_time: Some(time("2026-11-25T09:59:55Z")),
        last_run_generation: None,
        last_manual_sync: Some("initial".into()),
        latest_result: Some(SyncResult {
            result: SyncOutcome::Succeeded,
            message: Some("3 mailboxes synced".into()),
            exit_code: Some(0),
            completion_time: Some(time("2026-11-25T10:00:00Z")),
            far_changes: None,
            near_changes: None,
        }),
        totals: Some(SyncTotals {
            mailboxes: 3,
            mailboxes_with_errors: 0,
            messages_far: 1234,
            messages_near: 1230,
        }),
        mailboxes: Some(vec![MailboxStatus {
            name: "INBOX".into(),
            far: Some(MailboxSideStatus {
                uid_validity: Some(4_294_967_295),
                uid_next: Some(1001),
                messages: Some(1000),
            }),
            near: Some(MailboxSideStatus {
                uid_validity: Some(1_700_000_000),
                uid_next: Some(997),
                messages: Some(996),
            }),
            state: MailboxState::InSync,
            last_sync_time: Some(time("2026-11-25T10:00:00Z")),
            last_error: None,
        }]),
    }
}

fn get_channel(cluster: &ControlPlane, namespace: &str, name: &str) -> MailChannel {
    let json = cluster.kubectl_ok(&["get", "mailchannel", name, "-n", namespace, "-o", "json"]);
    serde_json::from_str(&json).expect("the server's MailChannel parses")
}

fn patch_status(
    cluster: &ControlPlane,
    namespace: &str,
    name: &str,
    status: &Value,
) -> std::process::Output {
    let patch = json!({ "status": status }).to_string();
    cluster.kubectl(&[
        "patch",
        "mailchannel",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
}

#[test]
fn status_is_written_through_the_status_subresource_only() {
    let cluster = cluster();
    let namespace = cluster.namespace("status");
    cluster.kubectl_ok_with_input(
        &["apply", "-n", &namespace, "-f", "-"],
        &channel_manifest("ch", ""),
    );
    let status = sample_status();
    let status_json = serde_json::to_value(&status).expect("status serializes");
    assert!(
        !status_json.to_string().contains("null"),
        "unset fields must be left out, not sent as null: {status_json}"
    );
    let output = patch_status(cluster, &namespace, "ch", &status_json);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let stored = get_channel(cluster, &namespace, "ch");
    assert_eq!(
        stored.status.as_ref(),
        Some(&status),
        "the status comes back as written"
    );
    assert_eq!(
        stored.metadata.generation,
        Some(1),
        "a status write is no spec change"
    );

    // Through the main resource the status is ignored...
    let output = cluster.kubectl(&[
        "patch",
        "mailchannel",
        "ch",
        "-n",
        &namespace,
        "--type=merge",
        "-p",
        r#"{"status":{"lastManualSync":"from-main-resource"}}"#,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = get_channel(cluster, &namespace, "ch");
    assert_eq!(
        stored
            .status
            .as_ref()
            .and_then(|s| s.last_manual_sync.as_deref()),
        Some("initial")
    );
    // ...and through the status subresource the spec is.
    let output = cluster.kubectl(&[
        "patch",
        "mailchannel",
        "ch",
        "-n",
        &namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true},"status":{"lastManualSync":"second"}}"#,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = get_channel(cluster, &namespace, "ch");
    assert_eq!(stored.spec.suspend, None);
    assert_eq!(stored.metadata.generation, Some(1));
    assert_eq!(
        stored
            .status
            .as_ref()
            .and_then(|s| s.last_manual_sync.as_deref()),
        Some("second")
    );

    // A long error message is cut to fit.
    let mut long_error = status.clone();
    if let Some(result) = long_error.latest_result.as_mut() {
        result.result = SyncOutcome::Failed;
        result.message = Some(bounded_message(&"connection refused; ".repeat(200)));
    }
    let long_error_json = serde_json::to_value(&long_error).expect("status serializes");
    let output = patch_status(cluster, &namespace, "ch", &long_error_json);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let uncut = json!({ "latestResult": { "result": "Failed", "message": "x".repeat(MAX_STATUS_MESSAGE_CHARS + 1) } });
    let output = patch_status(cluster, &namespace, "ch", &uncut);
    assert!(
        !output.status.success(),
        "an over-long message was accepted"
    );

    // The status schema is enforced too: conditions are a map keyed by type, and the
    // mailbox states an enum.
    let mut twice =
        serde_json::to_value(condition(condition::READY, "True", "A", "")).expect("json");
    let twice = json!({ "conditions": [twice.take(), serde_json::to_value(condition(condition::READY, "False", "B", "")).expect("json")] });
    let output = patch_status(cluster, &namespace, "ch", &twice);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "two Ready conditions were accepted"
    );
    assert!(
        error.contains(r#"status.conditions[1]: Duplicate value: {"type":"Ready"}"#),
        "{error}"
    );
    let bad_state = json!({ "mailboxes": [{ "name": "INBOX", "state": "Fine" }] });
    let output = patch_status(cluster, &namespace, "ch", &bad_state);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "an unknown mailbox state was accepted"
    );
    assert!(
        error.contains(r#"status.mailboxes[0].state: Unsupported value: "Fine""#),
        "{error}"
    );
    let too_many: Vec<Value> = (0..501)
        .map(|i| json!({ "name": format!("box{i}"), "state": "InSync" }))
        .collect();
    let output = patch_status(cluster, &namespace, "ch", &json!({ "mailboxes": too_many }));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "501 mailboxes were accepted");
    assert!(
        error.contains("status.mailboxes: Too many: 501: must have at most 500 items"),
        "{error}"
    );
}

/// Splits `kubectl get` table output into rows of cells, cutting at the header's column
/// starts (cells may contain blanks, headers like `LAST SYNC` do).
fn table(output: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let bytes = header.as_bytes();
    // A column starts at 0 and after two or more blanks.
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| {
            bytes[i] != b' ' && (i == 0 || (i >= 2 && bytes[i - 1] == b' ' && bytes[i - 2] == b' '))
        })
        .collect();
    let cut = |line: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(n, &start)| {
                let end = starts
                    .get(n + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line.get(start.min(line.len())..end)
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .collect()
    };
    (cut(header), lines.map(cut).collect())
}

#[test]
fn kubectl_get_mailchannels_shows_the_printer_columns() {
    let cluster = cluster();
    let namespace = cluster.namespace("columns");
    cluster.kubectl_ok_with_input(
        &["apply", "-n", &namespace, "-f", "-"],
        &channel_manifest("synced", "  trigger:\n    schedule: \"*/15 * * * *\"\n"),
    );
    cluster.kubectl_ok_with_input(
        &["apply", "-n", &namespace, "-f", "-"],
        &channel_manifest("fresh", ""),
    );
    // Ninety minutes ago, so that LAST SYNC is an age kubectl prints in minutes.
    let mut status = sample_status();
    let now = k8s_openapi::jiff::Timestamp::now();
    status.last_sync_time = Some(Time(now - k8s_openapi::jiff::SignedDuration::from_mins(90)));
    let output = patch_status(
        cluster,
        &namespace,
        "synced",
        &serde_json::to_value(status).expect("json"),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let printed = cluster.kubectl_ok(&["get", "mailchannels", "-n", &namespace]);
    println!("kubectl get mailchannels:\n{printed}");
    let (header, rows) = table(&printed);
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "LAST SYNC",
            "NEXT SYNC",
            "MESSAGES",
            "AGE"
        ]
    );
    let synced = rows
        .iter()
        .find(|r| r[0] == "synced")
        .expect("row of synced");
    assert_eq!(synced[1], condition::REASON_WAITING_FOR_SCHEDULE);
    assert!(
        ["90m", "91m"].contains(&synced[2].as_str()),
        "last sync as an age: {synced:?}"
    );
    assert_eq!(synced[3], "2026-11-25T10:15:00Z");
    assert_eq!(synced[4], "1230");
    assert!(!synced[5].is_empty());
    let fresh = rows.iter().find(|r| r[0] == "fresh").expect("row of fresh");
    assert_eq!(&fresh[1..5], ["", "", "", ""], "no status yet: {fresh:?}");

    let wide = cluster.kubectl_ok(&["get", "mch", "-n", &namespace, "-o", "wide"]);
    println!("kubectl get mch -o wide:\n{wide}");
    let (header, rows) = table(&wide);
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "LAST SYNC",
            "NEXT SYNC",
            "MESSAGES",
            "AGE",
            "FAR",
            "NEAR",
            "SCHEDULE",
            "READY"
        ]
    );
    let synced = rows
        .iter()
        .find(|r| r[0] == "synced")
        .expect("row of synced");
    assert_eq!(
        &synced[6..],
        ["far-store", "near-store", "*/15 * * * *", "True"]
    );

    let stores = cluster.kubectl_ok_with_input(
        &["apply", "-n", &namespace, "-f", "-"],
        &store_manifest("remote", "  imap:\n    host: imap.example.org\n"),
    );
    assert!(stores.contains("created"));
    let printed = cluster.kubectl_ok(&["get", "mailstores", "-n", &namespace]);
    let (header, rows) = table(&printed);
    assert_eq!(header, ["NAME", "HOST", "CLAIM", "READY", "AGE"]);
    assert_eq!(&rows[0][..3], ["remote", "imap.example.org", ""]);
}

#[test]
fn table_splits_cells_at_header_columns() {
    let (header, rows) =
        table("NAME   LAST SYNC   AGE\nabc    5m          1d\nlonger             2h\n");
    assert_eq!(header, ["NAME", "LAST SYNC", "AGE"]);
    assert_eq!(rows, [["abc", "5m", "1d"], ["longer", "", "2h"]]);
}
