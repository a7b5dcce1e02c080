//! `mailsync operator` as the chart runs it, observed from outside against a real
//! kube-apiserver: the real binary with the chart's arguments, environment and controller
//! ServiceAccount token, its `/metrics`, `/healthz` and `/readyz` scraped over HTTP, its spans
//! and the sync Job's received by an OTLP/HTTP collector stand-in on 127.0.0.1 (the Job's
//! `TRACEPARENT` links the two), the Lease released on SIGTERM; and, namespace-scoped, the
//! controller working with nothing but the chart's Roles in the watched namespaces.

#[path = "chart_support/mod.rs"]
mod chart_support;
mod k8s;
#[path = "operator_e2e/kubelet.rs"]
mod kubelet;
#[path = "operator_e2e/support.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde_json::Value;

use kubelet::Kubelet;
use support::{Operator, deliver, wait_for};

/// Held by each test while its operator runs: a cluster-wide operator would otherwise also
/// reconcile the other test's channels.
static ONE_OPERATOR_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_operator_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_OPERATOR_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One span as the collector received it.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// A stand-in OTLP/HTTP collector: accepts `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, answers 200 and keeps the spans.
struct Collector {
    address: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Requests that were not a decodable export to /v1/traces.
    rejected: Arc<Mutex<Vec<String>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds 127.0.0.1");
        let address = listener.local_addr().expect("an address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let (kept, refused) = (Arc::clone(&spans), Arc::clone(&rejected));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (kept, refused) = (Arc::clone(&kept), Arc::clone(&refused));
                std::thread::spawn(move || serve(stream, &kept, &refused));
            }
        });
        Collector {
            address,
            spans,
            rejected,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        let rejected = self.rejected.lock().expect("lock").clone();
        assert!(rejected.is_empty(), "the collector rejected: {rejected:?}");
        self.spans.lock().expect("lock").clone()
    }
}

/// Reads one request from `stream`, records its spans, answers and closes.
fn serve(stream: TcpStream, kept: &Mutex<Vec<ReceivedSpan>>, refused: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let mut length = 0;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).is_err() {
                return;
            }
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            if reader.read_exact(&mut chunk).is_err() {
                return;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
    }
    let mut stream = reader.into_inner();
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let request = match ExportTraceServiceRequest::decode(body.as_slice()) {
        Ok(request) if request_line.starts_with("POST ") && path == "/v1/traces" => request,
        Ok(_) => {
            refused.lock().expect("lock").push(request_line);
            return;
        }
        Err(error) => {
            refused
                .lock()
                .expect("lock")
                .push(format!("{request_line}: {error}"));
            return;
        }
    };
    let mut spans = kept.lock().expect("lock");
    for resource_spans in &request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| resource.attributes.iter())
            .find(|attribute| attribute.key == "service.name")
            .and_then(
                |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(text) => Some(text.clone()),
                    _ => None,
                },
            )
            .unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .iter()
            .flat_map(|scope| scope.spans.iter())
        {
            spans.push(ReceivedSpan {
                service: service.clone(),
                name: span.name.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
            });
        }
    }
}

/// `GET path` from the operator's metrics server: (status code, body); `None` when nothing
/// answers.
fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of the series `series` (name and labels exactly as printed) in `/metrics` text.
fn series(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn scrape(operator: &Operator) -> String {
    let (status, body) = http_get(&operator.metrics_address, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    body
}

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

/// The value of the environment variable `name` of the Job's container.
fn job_env(job: &Value, name: &str) -> Option<String> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|variable| variable["name"] == name)
        .and_then(|variable| variable["value"].as_str())
        .map(str::to_string)
}

#[test]
fn metrics_health_traces_and_shutdown_of_the_operator_as_the_chart_runs_it() {
    let _serial = one_operator_at_a_time();
    let control_plane = k8s::control_plane();
    control_plane.install_crds();
    let namespace = control_plane.namespace("observability");
    let kubelet = Kubelet::new(control_plane, &namespace);
    let collector = Collector::start();
    let endpoint = format!("opentelemetry.endpoint={}", collector.endpoint());
    let mut operator = Operator::start_with(
        control_plane,
        kubelet.scratch.path(),
        &[&namespace],
        &[
            "--set",
            &endpoint,
            "--set",
            "opentelemetry.serviceName=mailsync-test",
        ],
        &[],
    );

    // Live and ready once it has reached the API server.
    wait_for("/readyz", Duration::from_secs(30), &operator, || {
        (http_get(&operator.metrics_address, "/readyz")?.0 == 200).then_some(())
    });
    let (status, _) = http_get(&operator.metrics_address, "/healthz").expect("/healthz answers");
    assert_eq!(status, 200);
    wait_for("leadership", Duration::from_secs(30), &operator, || {
        (series(&scrape(&operator), "mailsync_leader") == Some(1.0)).then_some(())
    });

    for (id, subject) in [("a", "first"), ("b", "second"), ("c", "third")] {
        deliver(&kubelet.volume("server-mail").join("INBOX"), id, subject);
    }
    control_plane.kubectl_ok_with_input(&["-n", &namespace, "apply", "-f", "-"], MANIFESTS);
    let job = wait_for("the Job", Duration::from_secs(30), &operator, || {
        kubelet.active_jobs().into_iter().next()
    });

    // The Job carries the reconcile's trace context and the chart's telemetry settings,
    // and nothing that could be a credential.
    let traceparent = job_env(&job, "TRACEPARENT").expect("TRACEPARENT in the Job");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    let (trace_id, reconcile_span_id) = (parts[1].to_string(), parts[2].to_string());
    assert!(
        trace_id.len() == 32 && trace_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{traceparent}"
    );
    assert_eq!(
        job_env(&job, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        Some(collector.endpoint())
    );
    assert_eq!(
        job_env(&job, "OTEL_SERVICE_NAME").as_deref(),
        Some("mailsync-test")
    );
    assert_eq!(
        job_env(&job, "MAILSYNC_LOG_FORMAT").as_deref(),
        Some("json")
    );
    assert_eq!(job_env(&job, "RUST_LOG").as_deref(), Some("info"));
    let job_spec = &job["spec"];
    assert_eq!(job_spec["backoffLimit"], 2, "the chart's jobDefaults");
    assert_eq!(job_spec["activeDeadlineSeconds"], 3600, "{job_spec}");
    assert_eq!(
        job_spec["template"]["spec"]["serviceAccountName"],
        "mailsync-worker"
    );
    for variable in job_spec["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
    {
        let name = variable["name"].as_str().unwrap_or_default();
        assert!(
            !mailsync::telemetry::is_sensitive_name(name),
            "{name} in the Job's environment"
        );
    }

    let metrics = scrape(&operator);
    let reconciles = series(&metrics, r#"mailsync_reconciles_total{kind="MailChannel"}"#)
        .unwrap_or_else(|| panic!("no reconcile counter in\n{metrics}"));
    assert!(reconciles >= 1.0, "{metrics}");
    assert!(
        series(
            &metrics,
            r#"mailsync_reconcile_duration_seconds_count{kind="MailChannel"}"#
        )
        .is_some_and(|count| count >= 1.0),
        "{metrics}"
    );
    let started = format!(r#"mailsync_jobs_started_total{{namespace="{namespace}"}}"#);
    assert_eq!(series(&metrics, &started), Some(1.0), "{metrics}");
    assert_eq!(series(&metrics, "mailsync_leader"), Some(1.0));

    // The sync runs (the test plays kubelet, with a token of the chart's worker
    // ServiceAccount); its spans continue the reconcile's trace.
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
    let sync_job = wait_for(
        "the worker's spans",
        Duration::from_secs(20),
        &operator,
        || {
            collector
                .spans()
                .into_iter()
                .find(|span| span.name == "sync_job")
        },
    );
    assert_eq!(sync_job.service, "mailsync-test");
    assert_eq!(
        sync_job.trace_id, trace_id,
        "the worker's span is in the reconcile's trace"
    );
    assert_eq!(sync_job.parent_span_id, reconcile_span_id);
    let worker_children: Vec<String> = collector
        .spans()
        .into_iter()
        .filter(|span| span.trace_id == trace_id && span.parent_span_id == sync_job.span_id)
        .map(|span| span.name)
        .collect();
    assert!(
        worker_children.contains(&"write_status".to_string()),
        "{worker_children:?}"
    );

    // The per-channel series follow the status the worker wrote; the Job counts as succeeded.
    let labels = format!(r#"namespace="{namespace}",channel="inbox""#);
    let metrics = wait_for(
        "the channel's series",
        Duration::from_secs(30),
        &operator,
        || {
            let metrics = scrape(&operator);
            let succeeded = format!(r#"mailsync_jobs_succeeded_total{{namespace="{namespace}"}}"#);
            (series(
                &metrics,
                &format!(r#"mailsync_channel_messages{{{labels},side="near"}}"#),
            ) == Some(3.0)
                && series(&metrics, &succeeded) == Some(1.0))
            .then_some(metrics)
        },
    );
    assert_eq!(
        series(
            &metrics,
            &format!(r#"mailsync_channel_messages{{{labels},side="far"}}"#)
        ),
        Some(3.0)
    );
    for (result, expected) in [("Succeeded", 1.0), ("Partial", 0.0), ("Failed", 0.0)] {
        assert_eq!(
            series(
                &metrics,
                &format!(r#"mailsync_channel_last_result{{{labels},result="{result}"}}"#)
            ),
            Some(expected),
            "{result}:\n{metrics}"
        );
    }
    let last_success = series(
        &metrics,
        &format!("mailsync_channel_last_success_timestamp_seconds{{{labels}}}"),
    )
    .unwrap_or_default();
    assert!(last_success > 1.7e9, "{metrics}");

    // SIGTERM: the operator stops, releases the Lease and sends its last spans.
    let code = operator.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "operator log:\n{}", operator.log());
    let lease: Value = serde_json::from_str(&control_plane.kubectl_ok(&[
        "-n",
        &operator.namespace,
        "get",
        "lease",
        &operator.lease,
        "-o",
        "json",
    ]))
    .expect("Lease JSON");
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_none_or(str::is_empty),
        "the Lease is still held: {lease}"
    );
    let reconcile = collector
        .spans()
        .into_iter()
        .find(|span| span.name == "reconcile" && span.span_id == reconcile_span_id)
        .unwrap_or_else(|| {
            panic!(
                "the reconcile span that started the Job was not exported: {:?}",
                collector.spans()
            )
        });
    assert_eq!(reconcile.trace_id, trace_id);
    assert_eq!(reconcile.service, "mailsync-test");
    assert!(
        http_get(&operator.metrics_address, "/healthz").is_none(),
        "the metrics server still answers after exit"
    );

    // The chart asks for JSON logs: every line the operator wrote is a JSON object.
    let log = operator.log();
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the operator logged nothing");
    for line in lines {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
}

#[test]
fn namespace_scoped_operator_works_with_only_the_roles_of_the_watched_namespace() {
    let _serial = one_operator_at_a_time();
    let control_plane = k8s::control_plane();
    control_plane.install_crds();
    let watched = control_plane.namespace("scoped-watched");
    let unwatched = control_plane.namespace("scoped-unwatched");
    let kubelet = Kubelet::new(control_plane, &watched);
    let elsewhere = Kubelet::new(control_plane, &unwatched);
    let scope = format!("watchNamespaces={{{watched}}}");
    let operator = Operator::start_with(
        control_plane,
        kubelet.scratch.path(),
        &[],
        &["--set", &scope],
        &[],
    );
    control_plane.kubectl_ok_with_input(&["-n", &unwatched, "apply", "-f", "-"], MANIFESTS);
    control_plane.kubectl_ok_with_input(&["-n", &watched, "apply", "-f", "-"], MANIFESTS);
    // Namespaced watches only: a cluster-wide one would be forbidden by the chart's Roles.
    let job = wait_for("the Job", Duration::from_secs(30), &operator, || {
        kubelet.active_jobs().into_iter().next()
    });
    let run = kubelet.run_job(&job);
    assert_eq!(run.exit_code, 0, "{}\n{}", run.stdout, run.stderr);
    wait_for(
        "the channel's status",
        Duration::from_secs(30),
        &operator,
        || {
            let text = control_plane.kubectl_ok(&[
                "-n",
                &watched,
                "get",
                "mailchannel",
                "inbox",
                "-o",
                "json",
            ]);
            let channel: Value = serde_json::from_str(&text).expect("JSON");
            (channel["status"]["latestResult"]["result"] == "Succeeded").then_some(())
        },
    );
    let metrics = scrape(&operator);
    let started = |namespace: &str| {
        series(
            &metrics,
            &format!(r#"mailsync_jobs_started_total{{namespace="{namespace}"}}"#),
        )
    };
    assert_eq!(started(&watched), Some(1.0), "{metrics}");
    assert_eq!(started(&unwatched), None, "{metrics}");
    assert!(
        elsewhere.jobs().is_empty(),
        "a Job in the unwatched namespace"
    );
    let log = operator.log();
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "requests outside the watched namespace:\n{log}"
    );
}

#[test]
fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_stops() {
    let _serial = one_operator_at_a_time();
    let control_plane = k8s::control_plane();
    control_plane.install_crds();
    let namespace = control_plane.namespace("standby");
    let kubelet = Kubelet::new(control_plane, &namespace);
    let mut leader = Operator::start(control_plane, kubelet.scratch.path(), &[&namespace]);
    wait_for("the first leader", Duration::from_secs(30), &leader, || {
        let (status, body) = http_get(&leader.metrics_address, "/metrics")?;
        (status == 200 && series(&body, "mailsync_leader") == Some(1.0)).then_some(())
    });
    let standby = leader.replica("standby-1");
    // A standby is ready (it can take over) but does not lead.
    wait_for(
        "the standby's /readyz",
        Duration::from_secs(30),
        &standby,
        || (http_get(&standby.metrics_address, "/readyz")?.0 == 200).then_some(()),
    );
    assert_eq!(series(&scrape(&standby), "mailsync_leader"), Some(0.0));

    control_plane.kubectl_ok_with_input(&["-n", &namespace, "apply", "-f", "-"], MANIFESTS);
    let first = wait_for("the first Job", Duration::from_secs(30), &leader, || {
        kubelet.active_jobs().into_iter().next()
    });
    let started = format!(r#"mailsync_jobs_started_total{{namespace="{namespace}"}}"#);
    let reconciles = r#"mailsync_reconciles_total{kind="MailChannel"}"#;
    assert_eq!(series(&scrape(&leader), &started), Some(1.0));
    let standby_metrics = scrape(&standby);
    assert_eq!(
        series(&standby_metrics, reconciles),
        None,
        "the standby reconciled:\n{standby_metrics}"
    );
    assert_eq!(series(&standby_metrics, "mailsync_leader"), Some(0.0));
    assert_eq!(kubelet.run_job(&first).exit_code, 0);

    // The leader stops and releases the Lease; the standby takes over and reconciles.
    assert_eq!(
        leader.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        leader.log()
    );
    wait_for("the takeover", Duration::from_secs(30), &standby, || {
        (series(&scrape(&standby), "mailsync_leader") == Some(1.0)).then_some(())
    });
    control_plane.kubectl_ok(&[
        "-n",
        &namespace,
        "patch",
        "mailchannel",
        "inbox",
        "--type=merge",
        "-p",
        r#"{"spec":{"trigger":{"manual":"2"}}}"#,
    ]);
    let second = wait_for(
        "the new leader's Job",
        Duration::from_secs(30),
        &standby,
        || kubelet.active_jobs().into_iter().next(),
    );
    assert_ne!(second["metadata"]["name"], first["metadata"]["name"]);
    let metrics = scrape(&standby);
    assert_eq!(series(&metrics, &started), Some(1.0), "{metrics}");
    assert!(
        series(&metrics, reconciles).is_some_and(|count| count >= 1.0),
        "{metrics}"
    );
}
