//! The Helm chart (`charts/mailsync/`), the Dockerfile and the Grafana dashboard: `helm lint`
//! and `helm template` pass; the rendered chart applies with `kubectl apply --server-side` to a
//! real kube-apiserver; the controller's pods pass Pod Security `restricted` in a namespace that
//! enforces it; RBAC grants each ServiceAccount what it needs and nothing more (checked with
//! `kubectl auth can-i --as=…`), cluster-wide and namespace-scoped; the dashboard only queries
//! series the controller exports; the Dockerfile's build command is the locked cargo build.
//!
//! helm is built by `scripts/k8s-test-env helm` (pinned in scripts/k8s-tools/helm/go.mod) and
//! cached next to the control plane; `$HELM` overrides it.

mod k8s;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use k8s::{ControlPlane, control_plane, repo_root};
use serde_json::{Value, json};

// --- helm --------------------------------------------------------------------------------------

/// The helm binary: `$HELM`, else the pinned one `scripts/k8s-test-env helm` builds.
fn helm_program() -> &'static Path {
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

/// A scratch HOME for helm's cache, config and data, so that tests leave nothing in ~.
fn helm_home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fn helm(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let home = helm_home();
    let mut command = Command::new(helm_program());
    command
        .args(args)
        .current_dir(repo_root())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null());
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env("KUBECONFIG", home.join("no-kubeconfig")),
    };
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"))
}

fn helm_ok(args: &[&str], kubeconfig: Option<&Path>) -> String {
    let output = helm(args, kubeconfig);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const CHART: &str = "charts/mailsync";

/// `helm template RELEASE charts/mailsync -n NAMESPACE ARGS…` as YAML text.
fn render(release: &str, namespace: &str, args: &[&str]) -> String {
    let mut all = vec!["template", release, CHART, "--namespace", namespace];
    all.extend_from_slice(args);
    helm_ok(&all, None)
}

/// The documents of a YAML stream, as JSON values (empty documents left out).
fn documents(yaml: &str) -> Vec<Value> {
    let values: Vec<Value> = serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|e| panic!("the rendered chart is not valid YAML: {e}\n{yaml}"));
    values
        .into_iter()
        .filter(|value| !value.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered chart"))
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|object| {
            format!(
                "{}/{}@{}",
                object["kind"].as_str().unwrap_or("?"),
                object["metadata"]["name"].as_str().unwrap_or("?"),
                object["metadata"]["namespace"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

// --- kubectl -------------------------------------------------------------------------------------

/// Applies `yaml` with server-side apply; returns kubectl's stderr (warnings).
fn apply_server_side(cluster: &ControlPlane, yaml: &str) -> String {
    let output = cluster.kubectl_with_input(
        &[
            "apply",
            "--server-side",
            "--field-manager=mailsync-chart-test",
            "-f",
            "-",
        ],
        Some(yaml),
    );
    assert!(
        output.status.success(),
        "kubectl apply --server-side failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `kubectl auth can-i VERB RESOURCE ARGS… --as=USER`: true for yes, false for no.
fn can_i(cluster: &ControlPlane, user: &str, verb: &str, resource: &str, args: &[&str]) -> bool {
    let as_user = format!("--as={user}");
    let mut all = vec!["auth", "can-i", verb, resource, as_user.as_str()];
    all.extend_from_slice(args);
    let output = cluster.kubectl(&all);
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => panic!(
            "kubectl {} answered {answer:?}: {}",
            all.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn service_account(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Checks every `(verb, resource, args, expected)` for `user`; reports all mismatches at once.
fn check_access(cluster: &ControlPlane, user: &str, cases: &[(&str, &str, &[&str], bool)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(verb, resource, args, expected)| {
            can_i(cluster, user, verb, resource, args) != *expected
        })
        .map(|(verb, resource, args, expected)| {
            format!(
                "{user} {} {verb} {resource} {}",
                if *expected { "cannot" } else { "can" },
                args.join(" ")
            )
        })
        .collect();
    assert!(wrong.is_empty(), "unexpected access:\n{}", wrong.join("\n"));
}

// --- without a cluster -----------------------------------------------------------------------------

#[test]
fn helm_lint_passes_for_default_and_namespaced_values() {
    let output = helm_ok(&["lint", "--strict", CHART], None);
    assert!(output.contains("0 chart(s) failed"), "{output}");
    let output = helm_ok(
        &[
            "lint",
            "--strict",
            CHART,
            "--set",
            "watchNamespaces={mail,archive}",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.dashboard.enabled=true",
            "--set",
            "opentelemetry.endpoint=http://collector:4318",
            "--set",
            "crds.install=false",
        ],
        None,
    );
    assert!(output.contains("0 chart(s) failed"), "{output}");
}

#[test]
fn chart_crds_are_the_generated_ones_and_are_kept_on_uninstall() {
    let generated = mailsync::operator::crd_documents().expect("CRDs render");
    for document in &generated {
        let path = repo_root()
            .join(CHART)
            .join("files/crds")
            .join(&document.file_name);
        let in_chart =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            in_chart == document.yaml,
            "{} is out of date: run `cargo run -- crds --dir {CHART}/files/crds`",
            path.display()
        );
    }

    let objects = documents(&render("mailsync", "mailsync-system", &[]));
    let crds: Vec<&Value> = objects
        .iter()
        .filter(|object| object["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), generated.len(), "{:?}", kinds(&objects));
    for crd in crds {
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{}",
            crd["metadata"]["name"]
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/name"],
            "mailsync"
        );
        // The schema survived the template round trip.
        let generated_crd: Value = serde_saphyr::from_str(
            &generated
                .iter()
                .find(|document| {
                    crd["metadata"]["name"]
                        .as_str()
                        .is_some_and(|name| document.file_name == format!("{name}.yaml"))
                })
                .expect("a generated CRD of that name")
                .yaml,
        )
        .expect("generated CRD parses");
        // Helm's fromYaml/toYaml round trip turns every number into a float: compare as such.
        assert_eq!(
            numbers_as_floats(&crd["spec"]),
            numbers_as_floats(&generated_crd["spec"])
        );
    }

    let objects = documents(&render(
        "mailsync",
        "mailsync-system",
        &["--set", "crds.install=false"],
    ));
    assert!(
        !objects
            .iter()
            .any(|object| object["kind"] == "CustomResourceDefinition"),
        "crds.install=false still renders CRDs"
    );
}

/// `value` with every number as an f64.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(number) => json!(number.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), numbers_as_floats(item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn deployment_runs_two_replicas_with_probes_leader_election_and_settings_from_values() {
    let objects = documents(&render(
        "mailsync",
        "mailsync-system",
        &[
            "--set",
            "image.tag=1.2.3",
            "--set",
            "controller.logLevel=debug",
            "--set",
            "opentelemetry.endpoint=http://collector.observability:4318",
            "--set",
            "jobDefaults.backoffLimit=5",
        ],
    ));
    let deployment = find(&objects, "Deployment", "mailsync-controller");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "mailsync-controller");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/mailsync/mailsync:1.2.3");
    assert_eq!(
        container["args"],
        json!(["operator", "--image=ghcr.io/mailsync/mailsync:1.2.3"])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env: std::collections::BTreeMap<String, Value> = container["env"]
        .as_array()
        .expect("env list")
        .iter()
        .map(|variable| {
            (
                variable["name"].as_str().unwrap_or_default().to_string(),
                variable
                    .get("value")
                    .cloned()
                    .unwrap_or_else(|| variable["valueFrom"].clone()),
            )
        })
        .collect();
    assert_eq!(env["RUST_LOG"], "debug");
    assert_eq!(env["MAILSYNC_LOG_FORMAT"], "json");
    assert_eq!(env["MAILSYNC_LEADER_ELECTION"], "true");
    assert_eq!(env["MAILSYNC_LEADER_ELECTION_LEASE"], "mailsync-controller");
    assert_eq!(env["MAILSYNC_WORKER_SERVICE_ACCOUNT"], "mailsync-worker");
    let worker_account = find(&objects, "ServiceAccount", "mailsync-worker");
    assert!(
        worker_account["metadata"]["labels"]
            .get("app.kubernetes.io/managed-by")
            .is_none(),
        "the controller owns that label of the worker objects"
    );
    assert_eq!(
        env["MAILSYNC_WORKER_IMAGE"],
        "ghcr.io/mailsync/mailsync:1.2.3"
    );
    assert_eq!(env["MAILSYNC_WATCH_NAMESPACES"], "");
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://collector.observability:4318"
    );
    assert_eq!(env["POD_NAME"]["fieldRef"]["fieldPath"], "metadata.name");
    let job_defaults: Value = serde_json::from_str(
        env["MAILSYNC_JOB_DEFAULTS"]
            .as_str()
            .expect("job defaults as a string"),
    )
    .expect("job defaults are JSON");
    assert_eq!(job_defaults["backoffLimit"], 5);
    // Same shape as MailChannel spec.job, so the controller reads it with the CRD's type.
    let settings: mailsync::operator::channel::JobSettings =
        serde_json::from_value(job_defaults).expect("job defaults fit JobSettings");
    assert_eq!(settings.backoff_limit, Some(5));

    let service = find(&objects, "Service", "mailsync-metrics");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http-metrics");
    find(&objects, "PodDisruptionBudget", "mailsync-controller");

    // Without an endpoint, no OTLP variable at all (the SDK would try to export).
    let objects = documents(&render("mailsync", "mailsync-system", &[]));
    let deployment = find(&objects, "Deployment", "mailsync-controller");
    let names: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env list")
        .iter()
        .filter_map(|variable| variable["name"].as_str())
        .collect();
    assert!(!names.contains(&"OTEL_EXPORTER_OTLP_ENDPOINT"), "{names:?}");
}

#[test]
fn optional_service_monitor_and_dashboard_render_when_enabled() {
    let objects = documents(&render("mailsync", "monitoring-test", &[]));
    assert!(
        !objects
            .iter()
            .any(|object| object["kind"] == "ServiceMonitor" || object["kind"] == "ConfigMap"),
        "{:?}",
        kinds(&objects)
    );
    let objects = documents(&render(
        "mailsync",
        "monitoring-test",
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.dashboard.enabled=true",
        ],
    ));
    let monitor = find(&objects, "ServiceMonitor", "mailsync-controller");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    let service = find(&objects, "Service", "mailsync-metrics");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects {key}={value}, the Service lacks it"
        );
    }
    let dashboard = find(&objects, "ConfigMap", "mailsync-dashboard");
    let json_text = dashboard["data"]["mailsync.json"]
        .as_str()
        .expect("dashboard JSON");
    let shipped = std::fs::read_to_string(repo_root().join(CHART).join("dashboards/mailsync.json"))
        .expect("dashboard file");
    assert_eq!(json_text.trim_end(), shipped.trim_end());
}

#[test]
fn dashboard_queries_only_series_the_controller_exports() {
    use mailsync::operator::metrics::{ChannelSnapshot, Metrics};
    use mailsync::operator::status::SyncOutcome;

    let text = std::fs::read_to_string(repo_root().join(CHART).join("dashboards/mailsync.json"))
        .expect("dashboard file");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut expressions = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            expressions.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["definition"].as_str() {
            expressions.push(query.to_string());
        }
    }
    let used: BTreeSet<String> = expressions
        .iter()
        .flat_map(|expression| series_names(expression))
        .collect();
    assert!(used.len() >= 8, "{used:?}");

    let metrics = Metrics::new();
    metrics.observe_reconcile(
        "MailChannel",
        std::time::Duration::from_millis(5),
        Some("X"),
    );
    metrics.job_started("n");
    metrics.job_succeeded("n");
    metrics.job_failed("n");
    metrics.set_leader(true);
    metrics.set_channel(
        "n",
        "c",
        &ChannelSnapshot {
            last_success: Some(std::time::SystemTime::now()),
            messages_far: Some(1),
            messages_near: Some(1),
            last_result: Some(SyncOutcome::Succeeded),
        },
    );
    let exported: BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series the controller does not export: {missing:?}\nexported: {exported:?}"
    );
}

/// The `mailsync_…` series names in a PromQL expression.
fn series_names(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("mailsync_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_value_is_documented() {
    let text =
        std::fs::read_to_string(repo_root().join(CHART).join("values.yaml")).expect("values.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let indent_of = |line: &str| line.len() - line.trim_start().len();
    // (indent, documented) of the keys enclosing the current line.
    let mut ancestors: Vec<(usize, bool)> = Vec::new();
    let mut undocumented = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        if key.contains(' ') {
            continue;
        }
        let indent = indent_of(line);
        while ancestors.last().is_some_and(|(depth, _)| *depth >= indent) {
            ancestors.pop();
        }
        let commented = index > 0 && lines[index - 1].trim_start().starts_with('#');
        // A section (its value is the block below) is documented by its fields; a field inside
        // a documented default (e.g. resources.requests.cpu) by that default's comment.
        let is_section = value.trim().is_empty()
            && lines.get(index + 1).is_some_and(|next| {
                indent_of(next) > indent && !next.trim_start().starts_with('#')
            });
        let inside_documented = ancestors.iter().any(|(_, documented)| *documented);
        if !commented && !inside_documented && !is_section {
            undocumented.push(format!("line {}: {trimmed}", index + 1));
        }
        ancestors.push((indent, commented || inside_documented));
    }
    assert!(
        undocumented.is_empty(),
        "values.yaml fields without a comment:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn dockerfile_build_stage_is_the_locked_cargo_build_ci_runs() {
    let dockerfile =
        std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile exists");
    let command = "cargo build --locked --release --bin mailsync";
    assert!(
        dockerfile.contains(command),
        "the Dockerfile does not run `{command}`"
    );
    assert!(
        dockerfile.contains("ln -s mailsync /out/usr/local/bin/mbsync"),
        "no mbsync link"
    );
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .collect();
    assert_eq!(
        stages.len(),
        2,
        "multi-stage: build and runtime: {stages:?}"
    );
    assert!(dockerfile.contains("USER 65532:65532"), "runs as root");
    assert!(dockerfile.contains("distroless/cc-debian12:nonroot"));
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore");
    for needed in ["!Cargo.toml", "!Cargo.lock", "!src/"] {
        assert!(ignore.contains(needed), ".dockerignore leaves out {needed}");
    }
    // The Dockerfile's command here, in the dev profile (CI shares two cores; the release
    // profile differs only in optimization): the lock file must be current and the binary build.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--locked", "--bin", "mailsync"])
        .current_dir(repo_root())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "the Dockerfile's build command fails:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// --- against the real API server -------------------------------------------------------------------

/// Labels `namespace` to enforce (and warn about) Pod Security `restricted`.
fn enforce_restricted(cluster: &ControlPlane, namespace: &str) {
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
        "--overwrite",
    ]);
}

/// A Pod made from a Deployment's pod template, named `name`.
fn pod_from_template(deployment: &Value, name: &str, namespace: &str) -> Value {
    let template = &deployment["spec"]["template"];
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    })
}

#[test]
fn rendered_chart_applies_server_side_and_its_pods_pass_pod_security_restricted() {
    let cluster = control_plane();
    // The CRDs may already be there (from crds/, for the RBAC tests): applying the chart's copy
    // over them must work too, as on a cluster where they were installed by hand first.
    cluster.install_crds();
    let namespace = cluster.namespace("chart-apply");
    enforce_restricted(cluster, &namespace);
    let release = "apply-test";
    let yaml = render(release, &namespace, &[]);
    let warnings = apply_server_side(cluster, &yaml);
    assert!(
        !warnings.to_lowercase().contains("warning"),
        "applying the chart warned (the Deployment's pod template violates restricted?):\n{warnings}"
    );
    // Applying twice changes nothing and conflicts with nothing.
    apply_server_side(cluster, &yaml);
    for crd in ["mailstores.mailsync.io", "mailchannels.mailsync.io"] {
        cluster.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ]);
    }
    let listed = cluster.kubectl_ok(&[
        "-n",
        &namespace,
        "get",
        "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget",
        "-o",
        "name",
    ]);
    for object in [
        "deployment.apps/apply-test-mailsync-controller",
        "service/apply-test-mailsync-metrics",
        "serviceaccount/apply-test-mailsync-controller",
        "serviceaccount/mailsync-worker",
        "role.rbac.authorization.k8s.io/apply-test-mailsync-leader-election",
        "rolebinding.rbac.authorization.k8s.io/mailsync-worker",
        "poddisruptionbudget.policy/apply-test-mailsync-controller",
    ] {
        assert!(
            listed.lines().any(|line| line == object),
            "{object} missing:\n{listed}"
        );
    }

    // There is no kubelet or controller-manager here, so make the Deployment's pod by hand:
    // the API server admits it only if it satisfies `restricted`.
    let objects = documents(&yaml);
    let deployment = find(&objects, "Deployment", "apply-test-mailsync-controller");
    let pod = pod_from_template(deployment, "controller-pod", &namespace);
    let output = cluster.kubectl_with_input(&["create", "-f", "-"], Some(&pod.to_string()));
    assert!(
        output.status.success(),
        "the controller pod is refused:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The namespace does enforce: the same pod without its security settings is refused.
    let mut insecure = pod_from_template(deployment, "insecure-pod", &namespace);
    insecure["spec"]["securityContext"] = json!({});
    insecure["spec"]["containers"][0]["securityContext"] = json!({});
    let output = cluster.kubectl_with_input(&["create", "-f", "-"], Some(&insecure.to_string()));
    assert!(
        !output.status.success(),
        "a pod without securityContext was admitted"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("violates PodSecurity \"restricted"),
        "{stderr}"
    );
}

#[test]
fn helm_install_into_the_api_server_prints_what_to_apply_next() {
    let cluster = control_plane();
    let namespace = cluster.namespace("chart-install");
    enforce_restricted(cluster, &namespace);
    // CRDs are cluster-wide and another test may own them through server-side apply: this
    // release leaves them out.
    let output = helm_ok(
        &[
            "install",
            "install-test",
            CHART,
            "--namespace",
            &namespace,
            "--set",
            "crds.install=false",
        ],
        Some(cluster.kubeconfig()),
    );
    assert!(output.contains("STATUS: deployed"), "{output}");
    assert!(output.contains("kubectl -n NAMESPACE apply"), "{output}");
    assert!(output.contains("create secret generic"), "{output}");
    assert!(
        output.contains("get lease install-test-mailsync-controller"),
        "{output}"
    );
    let listed = cluster.kubectl_ok(&["-n", &namespace, "get", "deployment", "-o", "name"]);
    assert!(
        listed.contains("install-test-mailsync-controller"),
        "{listed}"
    );
}

#[test]
fn rbac_cluster_wide_grants_each_service_account_only_what_it_needs() {
    let cluster = control_plane();
    // `kubectl auth can-i` resolves resource names through discovery.
    cluster.install_crds();
    let namespace = cluster.namespace("rbac-cluster");
    let elsewhere = cluster.namespace("rbac-cluster-other");
    let release = "rbac-cluster";
    apply_server_side(
        cluster,
        &render(release, &namespace, &["--set", "crds.install=false"]),
    );
    let controller = service_account(&namespace, "rbac-cluster-mailsync-controller");
    let worker = service_account(&namespace, "mailsync-worker");
    let lease = "leases/rbac-cluster-mailsync-controller";
    let ns: &[&str] = &["-n", &namespace];
    let other: &[&str] = &["-n", &elsewhere];
    let all: &[&str] = &["--all-namespaces"];
    let none: &[&str] = &[];
    let ns_status: &[&str] = &["-n", &namespace, "--subresource=status"];
    let other_status: &[&str] = &["-n", &elsewhere, "--subresource=status"];
    check_access(
        cluster,
        &controller,
        &[
            ("list", "mailchannels.mailsync.io", all, true),
            ("watch", "mailstores.mailsync.io", all, true),
            ("patch", "mailchannels.mailsync.io", other, true),
            ("patch", "mailchannels.mailsync.io", other_status, true),
            ("create", "jobs.batch", other, true),
            ("delete", "jobs.batch", ns, true),
            ("patch", "jobs.batch", ns, true),
            ("watch", "configmaps", all, true),
            ("create", "configmaps", other, true),
            ("delete", "configmaps", ns, true),
            ("create", "events", other, true),
            ("create", "events.events.k8s.io", other, true),
            ("get", lease, ns, true),
            ("update", lease, ns, true),
            ("create", "leases.coordination.k8s.io", ns, true),
            // The worker's identity, by name, in any namespace with channels.
            ("create", "serviceaccounts/mailsync-worker", other, true),
            (
                "patch",
                "roles.rbac.authorization.k8s.io/mailsync-worker",
                other,
                true,
            ),
            (
                "patch",
                "rolebindings.rbac.authorization.k8s.io/mailsync-worker",
                other,
                true,
            ),
            // Which Secrets and keys exist; never a Secret by name, never a write.
            ("list", "secrets", all, true),
            ("watch", "secrets", all, true),
            ("get", "secrets/imap-password", ns, false),
            ("get", "secrets", other, false),
            ("create", "secrets", ns, false),
            ("update", "secrets", ns, false),
            ("patch", "secrets", ns, false),
            ("delete", "secrets", ns, false),
            // Nothing it does not need.
            ("delete", "mailchannels.mailsync.io", ns, false),
            ("update", "mailchannels.mailsync.io", ns, false),
            ("create", "mailstores.mailsync.io", ns, false),
            ("patch", "mailstores.mailsync.io", ns, false),
            ("patch", "mailstores.mailsync.io", ns_status, false),
            ("update", "jobs.batch", ns, false),
            ("get", "pods", ns, false),
            ("create", "pods", ns, false),
            ("create", "pods/exec", ns, false),
            ("create", "serviceaccounts", ns, false),
            ("patch", "serviceaccounts/default", ns, false),
            ("create", "serviceaccounts/token", ns, false),
            (
                "create",
                "rolebindings.rbac.authorization.k8s.io/admin",
                ns,
                false,
            ),
            (
                "patch",
                "roles.rbac.authorization.k8s.io/other-role",
                ns,
                false,
            ),
            (
                "bind",
                "clusterroles.rbac.authorization.k8s.io",
                none,
                false,
            ),
            ("escalate", "roles.rbac.authorization.k8s.io", ns, false),
            ("update", "leases/someone-elses-lease", ns, false),
            ("get", lease, other, false),
            ("list", "namespaces", none, false),
        ],
    );
    check_access(
        cluster,
        &worker,
        &[
            ("get", "mailchannels.mailsync.io", ns, true),
            ("patch", "mailchannels.mailsync.io", ns_status, true),
            ("list", "mailchannels.mailsync.io", ns, false),
            ("update", "mailchannels.mailsync.io", ns, false),
            ("patch", "mailchannels.mailsync.io", ns, false),
            ("get", "mailstores.mailsync.io", ns, false),
            ("patch", "mailstores.mailsync.io", ns_status, false),
            ("patch", "mailchannels.mailsync.io", other_status, false),
            ("get", "secrets", ns, false),
            ("list", "secrets", ns, false),
            ("get", "mailchannels.mailsync.io", other, false),
            ("create", "jobs.batch", ns, false),
            ("get", "pods", ns, false),
            ("get", "configmaps", ns, false),
            ("get", "leases.coordination.k8s.io", ns, false),
        ],
    );
}

#[test]
fn rbac_namespace_scoped_stays_inside_the_watched_namespaces() {
    let cluster = control_plane();
    cluster.install_crds();
    let home = cluster.namespace("rbac-scoped-home");
    let watched_a = cluster.namespace("rbac-scoped-a");
    let watched_b = cluster.namespace("rbac-scoped-b");
    let unwatched = cluster.namespace("rbac-scoped-unwatched");
    let release = "rbac-scoped";
    let watch = format!("watchNamespaces={{{watched_a},{watched_b}}}");
    let yaml = render(
        release,
        &home,
        &["--set", "crds.install=false", "--set", &watch],
    );
    let objects = documents(&yaml);
    let cluster_wide: Vec<String> = objects
        .iter()
        .filter(|object| object["metadata"]["namespace"].is_null())
        .map(|object| format!("{}/{}", object["kind"], object["metadata"]["name"]))
        .collect();
    assert!(
        cluster_wide.is_empty(),
        "namespace-scoped mode renders cluster-wide objects: {cluster_wide:?}"
    );
    apply_server_side(cluster, &yaml);

    let controller = service_account(&home, "rbac-scoped-mailsync-controller");
    let a: &[&str] = &["-n", &watched_a];
    let b: &[&str] = &["-n", &watched_b];
    let outside: &[&str] = &["-n", &unwatched];
    let own: &[&str] = &["-n", &home];
    let all: &[&str] = &["--all-namespaces"];
    let a_status: &[&str] = &["-n", &watched_a, "--subresource=status"];
    let outside_status: &[&str] = &["-n", &unwatched, "--subresource=status"];
    check_access(
        cluster,
        &controller,
        &[
            ("list", "mailchannels.mailsync.io", a, true),
            ("watch", "mailstores.mailsync.io", b, true),
            ("create", "jobs.batch", b, true),
            ("patch", "mailchannels.mailsync.io", a_status, true),
            ("list", "secrets", a, true),
            ("create", "serviceaccounts/mailsync-worker", b, true),
            (
                "update",
                "leases/rbac-scoped-mailsync-controller",
                own,
                true,
            ),
            ("list", "mailchannels.mailsync.io", all, false),
            ("list", "mailchannels.mailsync.io", outside, false),
            ("patch", "mailchannels.mailsync.io", outside_status, false),
            ("create", "jobs.batch", outside, false),
            ("list", "configmaps", outside, false),
            ("create", "serviceaccounts/mailsync-worker", outside, false),
            (
                "patch",
                "roles.rbac.authorization.k8s.io/mailsync-worker",
                outside,
                false,
            ),
            ("get", "secrets/imap-password", a, false),
            ("list", "secrets", own, false),
            ("list", "secrets", outside, false),
            ("list", "secrets", all, false),
        ],
    );
    for watched in [&watched_a, &watched_b] {
        let worker = service_account(watched, "mailsync-worker");
        let here: &[&str] = &["-n", watched];
        let here_status: &[&str] = &["-n", watched, "--subresource=status"];
        let elsewhere: &[&str] = if watched == &watched_a { b } else { a };
        check_access(
            cluster,
            &worker,
            &[
                ("get", "mailchannels.mailsync.io", here, true),
                ("patch", "mailchannels.mailsync.io", here_status, true),
                ("get", "mailchannels.mailsync.io", elsewhere, false),
                ("get", "mailchannels.mailsync.io", outside, false),
                ("get", "secrets", here, false),
                ("list", "secrets", all, false),
            ],
        );
    }
    // The chart puts the worker ServiceAccount where Jobs run, and nowhere else.
    for (namespace, expected) in [
        (&watched_a, true),
        (&watched_b, true),
        (&unwatched, false),
        (&home, false),
    ] {
        let output =
            cluster.kubectl(&["-n", namespace, "get", "serviceaccount", "mailsync-worker"]);
        assert_eq!(
            output.status.success(),
            expected,
            "worker ServiceAccount in {namespace}"
        );
    }
}
