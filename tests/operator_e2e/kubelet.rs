//! A stand-in for the kubelet, for a control plane without one: it runs the Pod template of a
//! sync Job as a local process and reports the outcome in the Job's status.
//!
//! The container's filesystem root is a temporary folder: each volume is laid out at its
//! `mountPath` inside it (ConfigMap and Secret keys as files, a PersistentVolumeClaim as a
//! symlink to a folder that outlives the run, an emptyDir as a new folder, the
//! ServiceAccount token as the kubelet projects it), and the process starts in the
//! container's working directory there, with the container's command and arguments, the
//! container's environment plus `KUBERNETES_SERVICE_HOST`/`_PORT` (as a kubelet sets them)
//! and nothing else. The token is a real one of the Pod's ServiceAccount, so RBAC applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::Value;

use crate::k8s::ControlPlane;

/// Runs Jobs of one namespace.
pub struct Kubelet<'a> {
    pub control_plane: &'a ControlPlane,
    pub namespace: String,
    /// Folder holding one sub-folder per PersistentVolumeClaim (the "volumes").
    pub volumes: PathBuf,
    /// Where the container roots are made.
    pub scratch: tempfile::TempDir,
}

/// How a run ended.
#[derive(Debug)]
pub struct PodRun {
    pub job: String,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

impl<'a> Kubelet<'a> {
    pub fn new(control_plane: &'a ControlPlane, namespace: &str) -> Kubelet<'a> {
        let scratch = tempfile::tempdir().expect("scratch folder");
        let volumes = scratch.path().join("persistent-volumes");
        std::fs::create_dir_all(&volumes).expect("volumes folder");
        Kubelet {
            control_plane,
            namespace: namespace.to_string(),
            volumes,
            scratch,
        }
    }

    /// The folder standing for the PersistentVolume of `claim`.
    pub fn volume(&self, claim: &str) -> PathBuf {
        let path = self.volumes.join(claim);
        std::fs::create_dir_all(&path).expect("volume folder");
        path
    }

    fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-n", &self.namespace];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let text = self.control_plane.kubectl_ok(&all);
        serde_json::from_str(&text).expect("kubectl printed JSON")
    }

    /// The Jobs of the namespace as JSON.
    pub fn jobs(&self) -> Vec<Value> {
        self.get_json(&["get", "jobs"])["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The Jobs without a Complete or Failed condition.
    pub fn active_jobs(&self) -> Vec<Value> {
        self.jobs()
            .into_iter()
            .filter(|job| {
                let conditions = job
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                !conditions.iter().any(|c| {
                    matches!(str_at(c, "/type"), Some("Complete") | Some("Failed"))
                        && str_at(c, "/status") == Some("True")
                })
            })
            .collect()
    }

    /// Runs the Pod of `job` and marks the Job Complete or Failed by the exit code.
    pub fn run_job(&self, job: &Value) -> PodRun {
        let name = str_at(job, "/metadata/name").expect("job name").to_string();
        let started = now();
        let run = self.run_pod(&name, &job["spec"]["template"]["spec"]);
        self.finish_job(&name, run.exit_code == 0, &started);
        run
    }

    fn run_pod(&self, job_name: &str, pod: &Value) -> PodRun {
        let root = self.scratch.path().join(format!("root-{job_name}"));
        std::fs::create_dir_all(&root).expect("container root");
        let containers = pod["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "one container per sync Pod");
        let container = &containers[0];
        let volumes: BTreeMap<String, &Value> = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| (str_at(v, "/name").unwrap_or_default().to_string(), v))
            .collect();
        for mount in container["volumeMounts"].as_array().into_iter().flatten() {
            let volume = volumes[str_at(mount, "/name").expect("mount name")];
            let target = inside(&root, str_at(mount, "/mountPath").expect("mountPath"));
            self.lay_out(volume, str_at(mount, "/subPath").unwrap_or(""), &target);
        }
        // The ServiceAccount token, as the kubelet projects it.
        let account = str_at(pod, "/serviceAccountName").unwrap_or("default");
        let token =
            self.control_plane
                .kubectl_ok(&["-n", &self.namespace, "create", "token", account]);
        let account_dir = inside(&root, "/var/run/secrets/kubernetes.io/serviceaccount");
        std::fs::create_dir_all(&account_dir).expect("token folder");
        std::fs::write(account_dir.join("token"), token.trim()).expect("token");
        std::fs::write(account_dir.join("namespace"), &self.namespace).expect("namespace");
        let ca = self.control_plane.env("K8S_CA_FILE").expect("K8S_CA_FILE");
        std::fs::copy(ca, account_dir.join("ca.crt")).expect("ca.crt");

        let server = self.control_plane.env("K8S_API_SERVER").expect("server");
        let address = server.trim_start_matches("https://");
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let command: Vec<String> = container["command"]
            .as_array()
            .expect("command")
            .iter()
            .chain(container["args"].as_array().into_iter().flatten())
            .map(|v| v.as_str().expect("string argument").to_string())
            .collect();
        assert_eq!(command[0], "mailsync", "the image's program");
        let mut process = Command::new(env!("CARGO_BIN_EXE_mailsync"));
        process
            .args(&command[1..])
            .env_clear()
            .env("KUBERNETES_SERVICE_HOST", host)
            .env("KUBERNETES_SERVICE_PORT", port)
            .current_dir(inside(
                &root,
                str_at(container, "/workingDir").unwrap_or("/"),
            ));
        for variable in container["env"].as_array().into_iter().flatten() {
            process.env(
                str_at(variable, "/name").expect("env name"),
                str_at(variable, "/value").expect("literal env value"),
            );
        }
        let output = process.output().expect("run the worker");
        PodRun {
            job: job_name.to_string(),
            exit_code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn lay_out(&self, volume: &Value, sub_path: &str, target: &Path) {
        if let Some(name) = str_at(volume, "/configMap/name") {
            let config_map = self.get_json(&["get", "configmap", name]);
            std::fs::create_dir_all(target).expect("configMap folder");
            for (key, value) in config_map["data"].as_object().into_iter().flatten() {
                std::fs::write(target.join(key), value.as_str().unwrap_or_default())
                    .expect("configMap key");
            }
        } else if let Some(name) = str_at(volume, "/secret/secretName") {
            let secret = self.get_json(&["get", "secret", name]);
            std::fs::create_dir_all(target).expect("secret folder");
            for (key, value) in secret["data"].as_object().into_iter().flatten() {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.as_str().unwrap_or_default())
                    .expect("base64 secret data");
                std::fs::write(target.join(key), bytes).expect("secret key");
            }
        } else if let Some(claim) = str_at(volume, "/persistentVolumeClaim/claimName") {
            // Like the kubelet, a missing subPath folder is created on the volume.
            let source = self.volume(claim).join(sub_path);
            std::fs::create_dir_all(&source).expect("subPath folder");
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mount parent");
            std::os::unix::fs::symlink(source, target).expect("claim symlink");
        } else if volume.get("emptyDir").is_some() {
            std::fs::create_dir_all(target).expect("emptyDir");
        } else {
            panic!("volume kind not emulated: {volume}");
        }
    }

    fn finish_job(&self, name: &str, succeeded: bool, started: &str) {
        let finished = now();
        let condition = |type_: &str| {
            serde_json::json!({
                "type": type_, "status": "True", "lastProbeTime": finished,
                "lastTransitionTime": finished,
                "reason": if succeeded { "CompletionsReached" } else { "BackoffLimitExceeded" },
                "message": if succeeded { "Reached expected number of succeeded pods" } else { "Job has reached the specified backoff limit" },
            })
        };
        let status = if succeeded {
            serde_json::json!({"status": {
                "startTime": started, "completionTime": finished, "succeeded": 1, "active": 0,
                "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
            }})
        } else {
            serde_json::json!({"status": {
                "startTime": started, "failed": 1, "active": 0,
                "conditions": [condition("FailureTarget"), condition("Failed")],
            }})
        };
        self.control_plane.kubectl_ok(&[
            "-n",
            &self.namespace,
            "patch",
            "job",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
    }
}

/// `path` (absolute, in the container) inside the container root `root`.
fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    jiff::Timestamp::from_second(seconds)
        .expect("timestamp")
        .to_string()
}
