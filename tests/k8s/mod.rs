//! A real Kubernetes control plane for the tests of one test binary: etcd and kube-apiserver
//! started once by `scripts/k8s-test-env` on 127.0.0.1, the mailsync CRDs installed once, a
//! namespace per test, and `kubectl` run against it.
//!
//! The control plane is stopped when the test binary exits (an `atexit` handler), and by the
//! script's watcher of the test process should the binary die without running it.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The running control plane.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    /// The kubectl program the tests run.
    kubectl: std::ffi::OsString,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
/// What `kubectl apply -f crds/` wrote to stderr, or why the install failed.
static CRDS: OnceLock<Result<String, String>> = OnceLock::new();
static NAMESPACE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubectl to run: `$KUBECTL`, else the one `scripts/k8s-test-env` built with the control
/// plane (same release as the API server; a fresh machine may have no kubectl at all).
fn kubectl_program(dir: &Path) -> std::ffi::OsString {
    std::env::var_os("KUBECTL").unwrap_or_else(|| {
        env_value(dir, "KUBECTL")
            .unwrap_or_else(|| "kubectl".into())
            .into()
    })
}

/// A value of the control plane's `env` file.
fn env_value(dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("env")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

fn script() -> PathBuf {
    repo_root().join("scripts/k8s-test-env")
}

/// The control plane of this test binary, started on first use. Panics when it cannot start.
pub fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(start) {
        Ok(control_plane) => control_plane,
        Err(error) => panic!("no Kubernetes control plane for the test: {error}"),
    }
}

fn start() -> Result<ControlPlane, String> {
    let dir = std::env::temp_dir().join(format!("mailsync-k8s-test-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    let pid = std::process::id().to_string();
    let output = Command::new(script())
        .arg("start")
        .arg(&dir)
        .args(["--watch-pid", &pid])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    // Stop at exit even if the start failed half-way: `stop` refuses a directory without env.
    register_stop_at_exit();
    if !output.status.success() {
        return Err(format!(
            "scripts/k8s-test-env start failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let kubectl = kubectl_program(&dir);
    let kubectl_version = Command::new(&kubectl)
        .args(["version", "--client"])
        .output();
    if !kubectl_version.is_ok_and(|output| output.status.success()) {
        return Err(format!("kubectl {kubectl:?} cannot be run"));
    }
    Ok(ControlPlane {
        kubeconfig: dir.join("kubeconfig"),
        kubectl,
        dir,
    })
}

fn register_stop_at_exit() {
    // SAFETY: `stop_at_exit` is an `extern "C" fn()` without arguments, as atexit wants.
    let status = unsafe { libc::atexit(stop_at_exit) };
    if status != 0 {
        eprintln!("atexit failed; the control plane stops through its watcher instead");
    }
}

extern "C" fn stop_at_exit() {
    if let Some(Ok(control_plane)) = CONTROL_PLANE.get() {
        let _ = Command::new(script())
            .arg("stop")
            .arg(&control_plane.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&control_plane.dir);
    }
}

impl ControlPlane {
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A value of the control plane's `env` file (`K8S_API_SERVER`, `K8S_CA_FILE`, …).
    pub fn env(&self, key: &str) -> Option<String> {
        env_value(&self.dir, key)
    }

    /// Runs kubectl with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_input(args, None)
    }

    /// Runs kubectl with `args` and `input` on its stdin.
    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("cannot write to kubectl: {e}"));
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("kubectl did not finish: {e}"))
    }

    /// Runs kubectl and returns its stdout; panics with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        expect_success(args, &output)
    }

    /// Like [`ControlPlane::kubectl_ok`], with `input` on stdin.
    pub fn kubectl_ok_with_input(&self, args: &[&str], input: &str) -> String {
        let output = self.kubectl_with_input(args, Some(input));
        expect_success(args, &output)
    }

    /// Installs the CRDs from `crds/` once per test binary and waits until they are
    /// Established; returns what `kubectl apply` printed on stderr (warnings).
    pub fn install_crds(&self) -> &'static str {
        let result = CRDS.get_or_init(|| {
            let crds_dir = repo_root().join("crds");
            let crds_dir = crds_dir.to_string_lossy();
            let applied = self.kubectl(&["apply", "-f", &crds_dir]);
            if !applied.status.success() {
                return Err(format!(
                    "kubectl apply -f crds/ failed: {}",
                    String::from_utf8_lossy(&applied.stderr)
                ));
            }
            // Right after the apply a CRD may have no conditions yet, which `kubectl wait`
            // reports as an error rather than waiting: ask again then.
            let mut output = self.kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/mailstores.mailsync.io",
                "crd/mailchannels.mailsync.io",
            ]);
            for _ in 0..50 {
                let no_conditions_yet = !output.status.success()
                    && String::from_utf8_lossy(&output.stderr).contains(".status.conditions");
                if !no_conditions_yet {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
                output = self.kubectl(&[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "crd/mailstores.mailsync.io",
                    "crd/mailchannels.mailsync.io",
                ]);
            }
            if !output.status.success() {
                return Err(format!(
                    "the CRDs did not become Established: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&applied.stderr).into_owned())
        });
        match result {
            Ok(stderr) => stderr,
            Err(error) => panic!("{error}"),
        }
    }

    /// Creates a new namespace for one test, named after `test`.
    pub fn namespace(&self, test: &str) -> String {
        let number = NAMESPACE_COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut name: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        name.truncate(50);
        let name = format!("t{number}-{}", name.trim_matches('-'));
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }
}

fn expect_success(args: &[&str], output: &Output) -> String {
    if !output.status.success() {
        panic!(
            "kubectl {} failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}
