//! What the operator end-to-end tests share: the operator process (run as the chart's
//! Deployment runs it: its arguments, environment and controller ServiceAccount), polling,
//! Maildir helpers and a handle on one MailChannel.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{chart_support, k8s};

/// The operator process, stopped on drop.
pub struct Operator {
    child: Child,
    log: PathBuf,
    launch: Launch,
    /// Namespace of the controller (its ServiceAccount and Lease).
    pub namespace: String,
    /// The Lease of the leader election.
    pub lease: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_address: String,
}

static RELEASES: AtomicUsize = AtomicUsize::new(0);

impl Operator {
    /// Installs the chart (a release of its own, with the worker ServiceAccount, Role and
    /// RoleBinding in each of `worker_namespaces`) and starts `mailsync operator` as its
    /// Deployment would: the container's arguments and environment from the rendered chart,
    /// authenticated with a token of the chart's controller ServiceAccount, so that the chart's
    /// RBAC and settings are the ones tested. The metrics server listens on a free port of
    /// 127.0.0.1.
    pub fn start(
        control_plane: &k8s::ControlPlane,
        log_dir: &Path,
        worker_namespaces: &[&str],
    ) -> Operator {
        Self::start_with(control_plane, log_dir, worker_namespaces, &[], &[])
    }

    /// [`Operator::start`] with more `helm template` arguments and environment variables.
    pub fn start_with(
        control_plane: &k8s::ControlPlane,
        log_dir: &Path,
        worker_namespaces: &[&str],
        chart_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Operator {
        let namespace = control_plane.namespace("mailsync-system");
        let release = format!("e2e{}", RELEASES.fetch_add(1, Ordering::SeqCst));
        let workers = format!("worker.namespaces={{{}}}", worker_namespaces.join(","));
        let mut args = vec!["--set", &workers];
        args.extend_from_slice(chart_args);
        chart_support::install_chart(control_plane, &release, &namespace, &args);
        let yaml = chart_support::render_without_crds(&release, &namespace, &args);
        let (command, env) = chart_support::controller_command(&yaml);
        let kubeconfig = chart_support::service_account_kubeconfig(
            control_plane,
            &namespace,
            &chart_support::controller_account(&release),
            log_dir,
        );
        let launch = Launch {
            release: release.clone(),
            namespace,
            command,
            env: env
                .into_iter()
                .chain(
                    extra_env
                        .iter()
                        .map(|(name, value)| (name.to_string(), value.to_string())),
                )
                .collect(),
            kubeconfig,
            log_dir: log_dir.to_path_buf(),
        };
        launch.spawn(&format!("{release}-controller-0"))
    }

    /// Another replica of the same release (same Lease, own metrics port), as a Deployment
    /// with more replicas has; `pod` is its POD_NAME.
    pub fn replica(&self, pod: &str) -> Operator {
        self.launch.spawn(pod)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) with the pid of our own child process and a valid signal number.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "cannot send SIGTERM to the operator");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("operator status") {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// How to start a replica of an installed release.
#[derive(Clone)]
struct Launch {
    release: String,
    namespace: String,
    command: Vec<String>,
    env: Vec<(String, String)>,
    kubeconfig: PathBuf,
    log_dir: PathBuf,
}

impl Launch {
    fn spawn(&self, pod: &str) -> Operator {
        let metrics_address = free_local_address();
        let log = self.log_dir.join(format!("operator-{pod}.log"));
        let file = std::fs::File::create(&log).expect("operator log");
        let mut process = Command::new(env!("CARGO_BIN_EXE_mailsync"));
        process
            .args(&self.command)
            .env_clear()
            .envs(self.env.iter().cloned())
            .env("POD_NAME", pod)
            .env("POD_NAMESPACE", &self.namespace)
            .env("MAILSYNC_METRICS_ADDRESS", &metrics_address)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let child = process.spawn().expect("start mailsync operator");
        Operator {
            child,
            log,
            launch: self.clone(),
            namespace: self.namespace.clone(),
            lease: chart_support::lease_name(&self.release),
            metrics_address,
        }
    }
}

/// `127.0.0.1:PORT` with a port that was free a moment ago.
fn free_local_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds 127.0.0.1");
    let address = listener.local_addr().expect("an address");
    address.to_string()
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
