//! Helpers for tests that run mailsync with the chart's identities: render the chart with the
//! pinned helm, apply it server-side to the test control plane, and write a kubeconfig that
//! authenticates as one of its ServiceAccounts (a token from `kubectl create token`), so that
//! code runs with exactly the RBAC the chart grants.
//!
//! Use from a test binary that also has `mod k8s;`:
//! `#[path = "chart_support/mod.rs"] mod chart_support;`

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use super::k8s::{ControlPlane, repo_root};

/// The helm binary: `$HELM`, else the pinned one `scripts/k8s-test-env helm` builds (once).
pub fn helm_program() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(helm) = std::env::var_os("HELM") {
            return PathBuf::from(helm);
        }
        let output = Command::new(repo_root().join("scripts/k8s-test-env"))
            .arg("helm")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/k8s-test-env helm: {e}"));
        assert!(
            output.status.success(),
            "scripts/k8s-test-env helm failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    })
}

/// `helm template RELEASE charts/mailsync --namespace NAMESPACE --set crds.install=false ARGS…`
/// (the CRDs come from `ControlPlane::install_crds`).
pub fn render_without_crds(release: &str, namespace: &str, args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(helm_program())
        .args([
            "template",
            release,
            "charts/mailsync",
            "--namespace",
            namespace,
            "--set",
            "crds.install=false",
        ])
        .args(args)
        .current_dir(repo_root())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", home.path().join("none"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        output.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Installs the chart's objects (CRDs from `crds/`, the rest rendered) into `namespace` with
/// server-side apply, as release `release`.
pub fn install_chart(cluster: &ControlPlane, release: &str, namespace: &str, args: &[&str]) {
    cluster.install_crds();
    let yaml = render_without_crds(release, namespace, args);
    cluster.kubectl_ok_with_input(
        &[
            "apply",
            "--server-side",
            "--field-manager=mailsync-chart-test",
            "-f",
            "-",
        ],
        &yaml,
    );
}

/// The controller ServiceAccount of release `release` (chart default names).
pub fn controller_account(release: &str) -> String {
    format!("{release}-mailsync-controller")
}

/// The leader-election Lease of release `release` (chart default names).
pub fn lease_name(release: &str) -> String {
    format!("{release}-mailsync-controller")
}

/// Writes `dir/NAME.kubeconfig` for the control plane's API server, authenticated with a fresh
/// token of ServiceAccount `namespace/account`, and returns its path.
pub fn service_account_kubeconfig(
    cluster: &ControlPlane,
    namespace: &str,
    account: &str,
    dir: &Path,
) -> PathBuf {
    let token = cluster
        .kubectl_ok(&["-n", namespace, "create", "token", account, "--duration=1h"])
        .trim()
        .to_string();
    let admin = std::fs::read_to_string(cluster.kubeconfig()).expect("admin kubeconfig");
    let admin: Value = serde_saphyr::from_str(&admin).expect("admin kubeconfig parses");
    let cluster_entry = &admin["clusters"][0]["cluster"];
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster_entry}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": account, "namespace": namespace}}],
        "current-context": "test",
    });
    let path = dir.join(format!("{namespace}-{account}.kubeconfig"));
    std::fs::write(&path, kubeconfig.to_string()).expect("kubeconfig written");
    path
}

/// The controller Deployment of a rendered chart: its container's arguments, and its
/// environment with the literal values (the `fieldRef` variables, POD_NAME and POD_NAMESPACE,
/// are left out: the caller plays the kubelet and sets them).
pub fn controller_command(yaml: &str) -> (Vec<String>, Vec<(String, String)>) {
    let documents: Vec<Value> = serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|e| panic!("the rendered chart is not valid YAML: {e}"));
    let deployment = documents
        .iter()
        .find(|document| document["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"]
        .as_array()
        .expect("controller args")
        .iter()
        .map(|arg| arg.as_str().expect("string argument").to_string())
        .collect();
    let env = container["env"]
        .as_array()
        .expect("controller env")
        .iter()
        .filter_map(|variable| {
            let name = variable["name"].as_str()?;
            let value = variable.get("value")?;
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            Some((name.to_string(), value))
        })
        .collect();
    (args, env)
}
