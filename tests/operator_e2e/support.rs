//! What the operator end-to-end tests share: the operator process (run with the
//! ServiceAccount of `config/operator/rbac.yaml`), polling, Maildir helpers and a handle on
//! one MailChannel.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::k8s;

/// The operator process, stopped on drop.
pub struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    /// Starts the operator with the ServiceAccount and ClusterRole of
    /// `config/operator/rbac.yaml`, so that the permissions it ships with are the ones tested.
    pub fn start(control_plane: &k8s::ControlPlane, log_dir: &Path) -> Operator {
        control_plane.kubectl_ok(&["create", "namespace", "mailsync-system"]);
        let rbac = k8s::repo_root().join("config/operator/rbac.yaml");
        control_plane.kubectl_ok(&["apply", "-f", &rbac.to_string_lossy()]);
        let token = control_plane.kubectl_ok(&[
            "-n",
            "mailsync-system",
            "create",
            "token",
            "mailsync-operator",
            "--duration=1h",
        ]);
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {
                "server": control_plane.env("K8S_API_SERVER").expect("K8S_API_SERVER"),
                "certificate-authority": control_plane.env("K8S_CA_FILE").expect("K8S_CA_FILE"),
            }}],
            "users": [{"name": "operator", "user": {"token": token.trim()}}],
            "contexts": [{"name": "operator", "context": {"cluster": "e2e", "user": "operator"}}],
            "current-context": "operator",
        });
        let kubeconfig_file = log_dir.join("operator.kubeconfig");
        std::fs::write(&kubeconfig_file, kubeconfig.to_string()).expect("kubeconfig");
        let log = log_dir.join("operator.log");
        let file = std::fs::File::create(&log).expect("operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .args(["operator", "--image", "mailsync:e2e"])
            .env("KUBECONFIG", &kubeconfig_file)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start mailsync operator");
        Operator { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` saying `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    operator: &Operator,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\noperator log:\n{}",
                operator.log()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Writes a message into the `new/` folder of a Maildir mailbox.
pub fn deliver(mailbox: &Path, id: &str, subject: &str) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(mailbox.join(sub)).expect("maildir folders");
    }
    let text = format!(
        "From: sender@example.org\nTo: tester@example.org\nSubject: {subject}\nMessage-ID: <{id}@example.org>\n\nBody of {subject}.\n"
    );
    std::fs::write(
        mailbox.join("new").join(format!("1700000000.{id}.e2e")),
        text,
    )
    .expect("deliver");
}

/// The Subject lines of the messages of a Maildir mailbox, sorted.
pub fn subjects(mailbox: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(mailbox.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with("Subject: ")) {
                found.push(line.trim_start_matches("Subject: ").to_string());
            }
        }
    }
    found.sort();
    found
}

/// The UIDVALIDITY a Maildir mailbox has given itself.
pub fn maildir_uid_validity(mailbox: &Path) -> i64 {
    let text = std::fs::read_to_string(mailbox.join(".uidvalidity")).expect(".uidvalidity");
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("UIDVALIDITY number")
}

pub struct Channel<'a> {
    pub control_plane: &'a k8s::ControlPlane,
    pub namespace: String,
    pub name: String,
}

impl Channel<'_> {
    pub fn json(&self) -> Value {
        let text = self.control_plane.kubectl_ok(&[
            "-n",
            &self.namespace,
            "get",
            "mailchannel",
            &self.name,
            "-o",
            "json",
        ]);
        serde_json::from_str(&text).expect("JSON")
    }

    pub fn condition(&self, type_: &str) -> Option<(String, String, String)> {
        let channel = self.json();
        channel
            .pointer("/status/conditions")
            .and_then(Value::as_array)?
            .iter()
            .find(|c| c["type"] == type_)
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or_default().to_string(),
                    c["reason"].as_str().unwrap_or_default().to_string(),
                    c["message"].as_str().unwrap_or_default().to_string(),
                )
            })
    }

    pub fn patch(&self, patch: &str) {
        self.control_plane.kubectl_ok(&[
            "-n",
            &self.namespace,
            "patch",
            "mailchannel",
            &self.name,
            "--type=merge",
            "-p",
            patch,
        ]);
    }
}
