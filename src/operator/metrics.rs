//! The controller's Prometheus metrics and its small HTTP server: `/metrics` (OpenMetrics
//! text), `/healthz` (liveness) and `/readyz` (readiness) on one configurable address.
//!
//! Series (all prefixed `mailsync_`):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `reconciles_total` | counter | `kind` (MailChannel, MailStore) |
//! | `reconcile_errors_total` | counter | `kind`, `reason` (a short error class, never a message) |
//! | `reconcile_duration_seconds` | histogram | `kind` |
//! | `jobs_started_total`, `jobs_succeeded_total`, `jobs_failed_total` | counter | `namespace` |
//! | `channel_last_success_timestamp_seconds` | gauge | `namespace`, `channel` |
//! | `channel_messages` | gauge | `namespace`, `channel`, `side` (far, near) |
//! | `channel_last_result` | gauge, 1 for the latest outcome, 0 for the others | `namespace`, `channel`, `result` (Succeeded, Partial, Failed) |
//! | `leader` | gauge, 1 while this replica leads | |
//! | `build_info` | gauge, always 1 | `version` |
//!
//! Label values are names of Kubernetes objects and fixed words: nothing from a Secret, no
//! error text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::status::{MailChannelStatus, SyncOutcome};

/// The content type of `/metrics` answers.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest request head the server reads; longer requests get 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    namespace: String,
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelSideLabels {
    namespace: String,
    channel: String,
    side: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelResultLabels {
    namespace: String,
    channel: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// Every outcome, in the order `channel_last_result` lists them.
const OUTCOMES: [SyncOutcome; 3] = [
    SyncOutcome::Succeeded,
    SyncOutcome::Partial,
    SyncOutcome::Failed,
];

fn outcome_name(outcome: SyncOutcome) -> &'static str {
    match outcome {
        SyncOutcome::Succeeded => "Succeeded",
        SyncOutcome::Partial => "Partial",
        SyncOutcome::Failed => "Failed",
    }
}

/// What the metrics show about one channel, taken from its status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelSnapshot {
    /// When the last successful sync finished.
    pub last_success: Option<SystemTime>,
    /// Messages on the far side after the last sync.
    pub messages_far: Option<i64>,
    /// Messages on the near side after the last sync.
    pub messages_near: Option<i64>,
    /// Outcome of the latest attempt.
    pub last_result: Option<SyncOutcome>,
}

impl ChannelSnapshot {
    /// The snapshot of a channel's status.
    pub fn from_status(status: &MailChannelStatus) -> Self {
        let last_success = status.last_sync_time.as_ref().map(|time| {
            let seconds = time.0.as_second();
            let nanos = time.0.subsec_nanosecond();
            if seconds >= 0 {
                UNIX_EPOCH + Duration::new(seconds.unsigned_abs(), nanos.unsigned_abs())
            } else {
                UNIX_EPOCH
            }
        });
        ChannelSnapshot {
            last_success,
            messages_far: status.totals.as_ref().map(|totals| totals.messages_far),
            messages_near: status.totals.as_ref().map(|totals| totals.messages_near),
            last_result: status.latest_result.as_ref().map(|result| result.result),
        }
    }
}

/// The registry and every series; share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    jobs_started: Family<NamespaceLabels, Counter>,
    jobs_succeeded: Family<NamespaceLabels, Counter>,
    jobs_failed: Family<NamespaceLabels, Counter>,
    channel_last_success: Family<ChannelLabels, Gauge<f64, AtomicU64>>,
    channel_messages: Family<ChannelSideLabels, Gauge>,
    channel_last_result: Family<ChannelResultLabels, Gauge>,
    leader: Gauge,
}

fn reconcile_duration_histogram() -> Histogram {
    // 5 ms to about 41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every series registered (and none yet observed).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mailsync");
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles run, by resource kind",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by resource kind and error class",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(
            reconcile_duration_histogram as fn() -> Histogram,
        );
        // The constructor type differs from the default one, so the family is registered
        // through a boxed clone.
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile took, in seconds",
            reconcile_duration.clone(),
        );
        let jobs_started = Family::<NamespaceLabels, Counter>::default();
        registry.register("jobs_started", "Sync Jobs created", jobs_started.clone());
        let jobs_succeeded = Family::<NamespaceLabels, Counter>::default();
        registry.register(
            "jobs_succeeded",
            "Sync Jobs that completed",
            jobs_succeeded.clone(),
        );
        let jobs_failed = Family::<NamespaceLabels, Counter>::default();
        registry.register("jobs_failed", "Sync Jobs that failed", jobs_failed.clone());
        let channel_last_success = Family::<ChannelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "channel_last_success_timestamp_seconds",
            "When the channel's last successful sync finished, Unix time in seconds",
            channel_last_success.clone(),
        );
        let channel_messages = Family::<ChannelSideLabels, Gauge>::default();
        registry.register(
            "channel_messages",
            "Messages on each side of the channel after its last sync",
            channel_messages.clone(),
        );
        let channel_last_result = Family::<ChannelResultLabels, Gauge>::default();
        registry.register(
            "channel_last_result",
            "Outcome of the channel's latest sync: 1 for the outcome it had, 0 for the others",
            channel_last_result.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this controller replica holds the leader Lease",
            leader.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("build_info", "The mailsync version running", build_info);
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            jobs_started,
            jobs_succeeded,
            jobs_failed,
            channel_last_success,
            channel_messages,
            channel_last_result,
            leader,
        }
    }

    /// Counts one reconcile of a `kind` object that took `duration`; `error` is a short,
    /// fixed error class (e.g. `ApiError`, `InvalidSpec`) when it failed.
    pub fn observe_reconcile(&self, kind: &str, duration: Duration, error: Option<&str>) {
        let labels = KindLabels {
            kind: kind.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        if let Some(reason) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    kind: kind.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    /// Counts a sync Job created in `namespace`.
    pub fn job_started(&self, namespace: &str) {
        self.jobs_started
            .get_or_create(&namespace_labels(namespace))
            .inc();
    }

    /// Counts a sync Job in `namespace` that completed.
    pub fn job_succeeded(&self, namespace: &str) {
        self.jobs_succeeded
            .get_or_create(&namespace_labels(namespace))
            .inc();
    }

    /// Counts a sync Job in `namespace` that failed.
    pub fn job_failed(&self, namespace: &str) {
        self.jobs_failed
            .get_or_create(&namespace_labels(namespace))
            .inc();
    }

    /// Sets the per-channel series of `namespace/channel`; unknown parts are left as they were.
    pub fn set_channel(&self, namespace: &str, channel: &str, snapshot: &ChannelSnapshot) {
        let labels = ChannelLabels {
            namespace: namespace.to_string(),
            channel: channel.to_string(),
        };
        if let Some(time) = snapshot.last_success {
            let seconds = time
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_secs_f64())
                .unwrap_or(0.0);
            self.channel_last_success
                .get_or_create(&labels)
                .set(seconds);
        }
        for (side, messages) in [
            ("far", snapshot.messages_far),
            ("near", snapshot.messages_near),
        ] {
            if let Some(messages) = messages {
                self.channel_messages
                    .get_or_create(&side_labels(namespace, channel, side))
                    .set(messages);
            }
        }
        if let Some(latest) = snapshot.last_result {
            for outcome in OUTCOMES {
                self.channel_last_result
                    .get_or_create(&result_labels(namespace, channel, outcome))
                    .set(i64::from(outcome == latest));
            }
        }
    }

    /// Drops every per-channel series of `namespace/channel` (after the channel was deleted).
    pub fn forget_channel(&self, namespace: &str, channel: &str) {
        self.channel_last_success.remove(&ChannelLabels {
            namespace: namespace.to_string(),
            channel: channel.to_string(),
        });
        for side in ["far", "near"] {
            self.channel_messages
                .remove(&side_labels(namespace, channel, side));
        }
        for outcome in OUTCOMES {
            self.channel_last_result
                .remove(&result_labels(namespace, channel, outcome));
        }
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Every series in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn namespace_labels(namespace: &str) -> NamespaceLabels {
    NamespaceLabels {
        namespace: namespace.to_string(),
    }
}

fn side_labels(namespace: &str, channel: &str, side: &str) -> ChannelSideLabels {
    ChannelSideLabels {
        namespace: namespace.to_string(),
        channel: channel.to_string(),
        side: side.to_string(),
    }
}

fn result_labels(namespace: &str, channel: &str, outcome: SyncOutcome) -> ChannelResultLabels {
    ChannelResultLabels {
        namespace: namespace.to_string(),
        channel: channel.to_string(),
        result: outcome_name(outcome).to_string(),
    }
}

/// What `/healthz` and `/readyz` answer. Starts live and not ready.
#[derive(Debug)]
pub struct Health {
    live: AtomicBool,
    ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            live: AtomicBool::new(true),
            ready: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// Ready: the controller has connected to the API server and can take over as leader.
    /// (Not "is the leader": standby replicas are ready too, or rolling updates would stall.)
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, std::sync::atomic::Ordering::SeqCst);
    }

    /// Live: false makes the kubelet restart the pod (e.g. a loop found stuck).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn is_live(&self) -> bool {
        self.live.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Where the server listens unless `MAILSYNC_METRICS_ADDRESS` says otherwise.
pub const DEFAULT_ADDRESS: &str = "0.0.0.0:8080";
/// The environment variable the chart sets to the listen address.
pub const ADDRESS_ENV: &str = "MAILSYNC_METRICS_ADDRESS";

/// The listen address `MAILSYNC_METRICS_ADDRESS` asks for (read through `lookup`), else
/// [`DEFAULT_ADDRESS`].
pub fn address_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SocketAddr, AddressError> {
    let text = lookup(ADDRESS_ENV)
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
    text.trim()
        .parse()
        .map_err(|_| AddressError { value: text })
}

/// `MAILSYNC_METRICS_ADDRESS` is not an address.
#[derive(Debug, thiserror::Error)]
#[error("{ADDRESS_ENV}={value:?}: expected IP:PORT, e.g. 0.0.0.0:8080")]
pub struct AddressError {
    pub value: String,
}

/// The metrics server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} for /metrics: {source}")]
pub struct MetricsServerError {
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The running HTTP server; dropping it does not stop it, [`MetricsServer::shutdown`] does.
#[derive(Debug)]
pub struct MetricsServer {
    local_address: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Listens on `address` (port 0 picks a free port) and serves in a task of the current
    /// Tokio runtime.
    pub async fn start(
        address: SocketAddr,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Result<Self, MetricsServerError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| MetricsServerError { address, source })?;
        let local_address = listener
            .local_addr()
            .map_err(|source| MetricsServerError { address, source })?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let metrics = Arc::clone(&metrics);
                            let health = Arc::clone(&health);
                            tokio::spawn(async move {
                                if let Err(error) = answer(stream, &metrics, &health).await {
                                    tracing::debug!(%error, "metrics request failed");
                                }
                            });
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot accept a metrics connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        });
        tracing::info!(address = %local_address, "serving /metrics, /healthz and /readyz");
        Ok(MetricsServer {
            local_address,
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Stops accepting connections and waits until the accept loop has ended.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Reads one request from `stream` and answers it; the connection is closed after.
async fn answer(mut stream: TcpStream, metrics: &Metrics, health: &Health) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let response = match head {
        None => respond(431, "text/plain", "request too large\n"),
        Some(head) => route(&head, metrics, health),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// The request line and headers, or `None` when they exceed [`MAX_REQUEST_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 1024];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
        if head.windows(4).any(|window| window == b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// The response to a request head.
fn route(head: &str, metrics: &Metrics, health: &Health) -> Vec<u8> {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" && method != "HEAD" {
        return respond(405, "text/plain", "only GET\n");
    }
    let response = match path {
        "/metrics" => respond(200, OPENMETRICS_CONTENT_TYPE, &metrics.encode()),
        "/healthz" | "/livez" if health.is_live() => respond(200, "text/plain", "ok\n"),
        "/healthz" | "/livez" => respond(503, "text/plain", "not live\n"),
        "/readyz" if health.is_ready() => respond(200, "text/plain", "ok\n"),
        "/readyz" => respond(503, "text/plain", "not ready\n"),
        _ => respond(404, "text/plain", "not found\n"),
    };
    if method == "HEAD" {
        // Same headers, no body.
        let text = String::from_utf8_lossy(&response).into_owned();
        return text
            .split_once("\r\n\r\n")
            .map(|(headers, _)| format!("{headers}\r\n\r\n").into_bytes())
            .unwrap_or(response);
    }
    response
}

fn respond(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::status::{SyncResult, SyncTotals};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// The value of the series line `series` (name and labels exactly as printed).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    async fn get(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).await.expect("connects");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("sends the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("reads the answer");
        response
    }

    #[test]
    fn reconciles_jobs_and_errors_are_counted() {
        let metrics = Metrics::new();
        metrics.observe_reconcile("MailChannel", Duration::from_millis(20), None);
        metrics.observe_reconcile("MailChannel", Duration::from_secs(3), Some("ApiError"));
        metrics.observe_reconcile("MailStore", Duration::from_millis(1), None);
        metrics.job_started("mail");
        metrics.job_started("mail");
        metrics.job_succeeded("mail");
        metrics.job_failed("other");
        metrics.set_leader(true);
        let text = metrics.encode();
        let expect = |series: &str, wanted: f64| {
            assert_eq!(value(&text, series), Some(wanted), "{series} in\n{text}");
        };
        expect(r#"mailsync_reconciles_total{kind="MailChannel"}"#, 2.0);
        expect(r#"mailsync_reconciles_total{kind="MailStore"}"#, 1.0);
        expect(
            r#"mailsync_reconcile_errors_total{kind="MailChannel",reason="ApiError"}"#,
            1.0,
        );
        expect(
            r#"mailsync_reconcile_duration_seconds_count{kind="MailChannel"}"#,
            2.0,
        );
        expect(
            r#"mailsync_reconcile_duration_seconds_sum{kind="MailChannel"}"#,
            3.02,
        );
        expect(
            r#"mailsync_reconcile_duration_seconds_bucket{le="0.04",kind="MailChannel"}"#,
            1.0,
        );
        expect(r#"mailsync_jobs_started_total{namespace="mail"}"#, 2.0);
        expect(r#"mailsync_jobs_succeeded_total{namespace="mail"}"#, 1.0);
        expect(r#"mailsync_jobs_failed_total{namespace="other"}"#, 1.0);
        expect("mailsync_leader", 1.0);
        expect(
            &format!(
                r#"mailsync_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn channel_series_follow_the_status_and_go_away_with_the_channel() {
        let metrics = Metrics::new();
        let status = MailChannelStatus {
            last_sync_time: Some(Time(
                "2026-03-01T12:00:00Z".parse().expect("a valid timestamp"),
            )),
            totals: Some(SyncTotals {
                messages_far: 120,
                messages_near: 118,
                ..Default::default()
            }),
            latest_result: Some(SyncResult {
                result: SyncOutcome::Partial,
                ..Default::default()
            }),
            ..Default::default()
        };
        metrics.set_channel("mail", "inbox", &ChannelSnapshot::from_status(&status));
        let text = metrics.encode();
        let labels = r#"namespace="mail",channel="inbox""#;
        assert_eq!(
            value(
                &text,
                &format!("mailsync_channel_last_success_timestamp_seconds{{{labels}}}")
            ),
            Some(1_772_366_400.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                &format!(r#"mailsync_channel_messages{{{labels},side="far"}}"#)
            ),
            Some(120.0)
        );
        assert_eq!(
            value(
                &text,
                &format!(r#"mailsync_channel_messages{{{labels},side="near"}}"#)
            ),
            Some(118.0)
        );
        for (result, wanted) in [("Succeeded", 0.0), ("Partial", 1.0), ("Failed", 0.0)] {
            assert_eq!(
                value(
                    &text,
                    &format!(r#"mailsync_channel_last_result{{{labels},result="{result}"}}"#)
                ),
                Some(wanted),
                "{result}: {text}"
            );
        }

        metrics.forget_channel("mail", "inbox");
        let text = metrics.encode();
        assert!(!text.contains(r#"channel="inbox""#), "{text}");
    }

    #[test]
    fn listen_address_comes_from_the_environment() {
        let none = |_: &str| None;
        assert_eq!(
            address_from_lookup(none).expect("default"),
            DEFAULT_ADDRESS.parse::<SocketAddr>().expect("valid")
        );
        let set = |_: &str| Some("127.0.0.1:9100".to_string());
        assert_eq!(address_from_lookup(set).expect("valid").port(), 9100);
        let bad = |_: &str| Some(":8080".to_string());
        assert!(address_from_lookup(bad).is_err());
    }

    #[tokio::test]
    async fn server_answers_metrics_health_and_readiness() {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let server = MetricsServer::start(
            "127.0.0.1:0".parse().expect("an address"),
            Arc::clone(&metrics),
            Arc::clone(&health),
        )
        .await
        .expect("starts");
        let address = server.local_address();
        metrics.job_started("mail");

        let response = get(address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains(&format!("Content-Type: {OPENMETRICS_CONTENT_TYPE}")),
            "{response}"
        );
        let (_, body) = response.split_once("\r\n\r\n").expect("a body");
        assert_eq!(
            value(body, r#"mailsync_jobs_started_total{namespace="mail"}"#),
            Some(1.0)
        );

        let response = get(address, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let response = get(address, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        health.set_ready(true);
        let response = get(address, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        health.set_live(false);
        let response = get(address, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");

        let response = get(address, "GET /nothing HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
        let response = get(address, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 405"), "{response}");
        let response = get(address, "HEAD /readyz HTTP/1.1\r\n\r\n").await;
        assert!(response.ends_with("\r\n\r\n"), "{response}");
        // Just over the limit, without the blank line that ends a head: the server has read it
        // all when it answers, so the answer is not lost to a reset.
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX: {}",
            "a".repeat(MAX_REQUEST_HEAD)
        );
        let response = get(address, &huge).await;
        assert!(response.starts_with("HTTP/1.1 431"), "{response}");

        server.shutdown().await;
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still listening after shutdown"
        );
    }
}
