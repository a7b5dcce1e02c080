//! Logs and traces of the operator and the sync Jobs: one `tracing` subscriber that writes
//! human or JSON log lines (level from a `RUST_LOG`-style filter) and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, exports spans over OTLP (HTTP/protobuf); the W3C trace
//! context carried in environment variables, so that a sync Job continues the trace of the
//! reconcile that started it; and the redaction rule: a field or attribute whose name says
//! password, token, secret, credential or authorization is never recorded, only `[redacted]`.
//!
//! Environment variables read by [`TelemetryConfig::from_env`]:
//!
//! | variable | meaning |
//! |---|---|
//! | `RUST_LOG` | log filter, e.g. `info` or `info,mailsync::operator=debug` (default `info`) |
//! | `MAILSYNC_LOG_FORMAT` | `json` or `text` (default `text`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL; spans go to `…/v1/traces` |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | full URL for spans, wins over the above |
//! | `OTEL_SERVICE_NAME` | `service.name` of the spans |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, `key=value,key=value` |
//! | `TRACEPARENT`, `TRACESTATE` | the parent trace context (see [`parent_context_from_env`]) |

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, Span as SdkSpan, SpanData, SpanProcessor,
};
use tracing::Level;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{FilterExt as _, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The value recorded instead of a field that could hold a credential.
pub const REDACTED: &str = "[redacted]";
/// Environment variable that carries the W3C `traceparent` into a Job.
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";
/// Environment variable that carries the W3C `tracestate` into a Job.
pub const TRACESTATE_ENV: &str = "TRACESTATE";
/// Environment variable choosing the log format.
pub const LOG_FORMAT_ENV: &str = "MAILSYNC_LOG_FORMAT";

/// Parts of a field name that mark its value as a credential (compared case-insensitively).
const SENSITIVE_NAME_PARTS: [&str; 6] = [
    "password",
    "passwd",
    "token",
    "secret",
    "credential",
    "authorization",
];

/// Whether a field, attribute or variable called `name` may hold a credential and must not be
/// recorded. `secretRef` names count too: the name of a Secret is not secret, but a rule that
/// needs no exceptions cannot be got wrong.
pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_NAME_PARTS.iter().any(|part| lower.contains(part))
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{variable}={value:?}: unknown log format (use json or text)")]
    LogFormat { variable: String, value: String },
    #[error("invalid log filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error(
        "OTLP endpoint {endpoint:?}: only http:// URLs are supported (export to a collector in the cluster over plain HTTP)"
    )]
    UnsupportedEndpoint { endpoint: String },
    #[error("cannot set up the OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("cannot start the telemetry export thread: {0}")]
    ExportThread(std::io::Error),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors in pods.
    Json,
}

impl FromStr for LogFormat {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" | "human" | "plain" => Ok(LogFormat::Text),
            _ => Err(()),
        }
    }
}

/// What to set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `service.name` of exported spans.
    pub service_name: String,
    pub log_format: LogFormat,
    /// A `RUST_LOG`-style filter.
    pub filter: String,
    /// The full URL spans are posted to (`…/v1/traces`); `None`: no export.
    pub traces_endpoint: Option<String>,
    /// Resource attributes besides `service.name`.
    pub resource_attributes: Vec<(String, String)>,
}

impl TelemetryConfig {
    /// Text logs at `info`, no export.
    pub fn new(service_name: &str) -> Self {
        TelemetryConfig {
            service_name: service_name.to_string(),
            log_format: LogFormat::Text,
            filter: "info".to_string(),
            traces_endpoint: None,
            resource_attributes: Vec::new(),
        }
    }

    /// The configuration the process environment asks for (see the module table);
    /// `default_service_name` unless `OTEL_SERVICE_NAME` says otherwise.
    pub fn from_env(default_service_name: &str) -> Result<Self, TelemetryError> {
        Self::from_lookup(default_service_name, |name| {
            std::env::var(name).ok().filter(|value| !value.is_empty())
        })
    }

    /// Like [`TelemetryConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        default_service_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        let mut config = TelemetryConfig::new(default_service_name);
        if let Some(format) = lookup(LOG_FORMAT_ENV) {
            config.log_format = format.parse().map_err(|()| TelemetryError::LogFormat {
                variable: LOG_FORMAT_ENV.to_string(),
                value: format.clone(),
            })?;
        }
        if let Some(filter) = lookup("RUST_LOG") {
            config.filter = filter;
        }
        if let Some(name) = lookup("OTEL_SERVICE_NAME") {
            config.service_name = name;
        }
        config.traces_endpoint = match lookup("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => Some(url),
            None => lookup("OTEL_EXPORTER_OTLP_ENDPOINT").map(|base| traces_url(&base)),
        };
        if let Some(attributes) = lookup("OTEL_RESOURCE_ATTRIBUTES") {
            config.resource_attributes = parse_resource_attributes(&attributes);
        }
        Ok(config)
    }
}

/// The spans URL under an OTLP base endpoint (the OTLP/HTTP rule: append `v1/traces`).
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// `key=value,key=value` pairs; entries without `=` or with an empty key are skipped.
fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The running telemetry: keep it alive for the life of the program, and call
/// [`Telemetry::shutdown`] (or drop it) before exiting so that the last spans are sent.
pub struct Telemetry {
    provider: SdkTracerProvider,
    export_thread: Option<ExportThread>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Telemetry")
            .field("exporting", &self.export_thread.is_some())
            .finish()
    }
}

impl Telemetry {
    /// Sends the spans still buffered (waits at most a few seconds).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// Sends the spans still buffered and stops the export.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.provider.shutdown();
        if let Some(thread) = self.export_thread.take() {
            thread.stop();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if self.export_thread.is_some() {
            self.stop();
        }
    }
}

/// Sets up logging and tracing as `config` says and installs it as the global subscriber.
/// Logs go to stderr.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let (subscriber, telemetry) = build(config, std::io::stderr)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(telemetry)
}

/// The subscriber `init` would install, writing log lines to `writer`, without installing it
/// (for tests and for callers that scope it with `tracing::subscriber::with_default`).
pub fn build<W>(
    config: &TelemetryConfig,
    writer: W,
) -> Result<(Box<dyn Subscriber + Send + Sync>, Telemetry), TelemetryError>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let parse_filter = || {
        EnvFilter::builder()
            .parse(&config.filter)
            .map_err(|error| TelemetryError::Filter {
                filter: config.filter.clone(),
                message: error.to_string(),
            })
    };
    let log_filter = parse_filter()?;
    // mailsync's own spans are traced whatever the log level: a quieter RUST_LOG must not cut
    // the trace (nor the TRACEPARENT handed to Jobs, which needs a recorded span).
    let trace_filter = parse_filter()?.or(Targets::new().with_target("mailsync", Level::INFO));
    let (provider, export_thread) = tracer_provider(config)?;
    let tracer = provider.tracer("mailsync");
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(trace_filter);
    let registry = tracing_subscriber::registry().with(otel_layer);
    let subscriber: Box<dyn Subscriber + Send + Sync> = match config.log_format {
        LogFormat::Text => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .fmt_fields(RedactingFields::Text)
                    .with_filter(log_filter),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .fmt_fields(RedactingFields::Json)
                    .event_format(JsonLines)
                    .with_filter(log_filter),
            ),
        ),
    };
    Ok((
        subscriber,
        Telemetry {
            provider,
            export_thread,
        },
    ))
}

/// The tracer provider: always there (so that spans have trace ids that propagate to Jobs),
/// exporting only when an endpoint is configured.
fn tracer_provider(
    config: &TelemetryConfig,
) -> Result<(SdkTracerProvider, Option<ExportThread>), TelemetryError> {
    let resource = Resource::builder_empty()
        .with_service_name(config.service_name.clone())
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = &config.traces_endpoint else {
        return Ok((builder.build(), None));
    };
    if !endpoint.starts_with("http://") {
        return Err(TelemetryError::UnsupportedEndpoint {
            endpoint: endpoint.clone(),
        });
    }
    let export_thread = ExportThread::start()?;
    let client = RuntimeHttpClient {
        runtime: export_thread.handle.clone(),
        inner: opentelemetry_http::hyper::HyperClient::with_default_connector(
            Duration::from_secs(10),
            None,
        ),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(endpoint.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|error| TelemetryError::Exporter {
            endpoint: endpoint.clone(),
            message: error.to_string(),
        })?;
    let processor = RedactingProcessor(BatchSpanProcessor::builder(exporter).build());
    Ok((
        builder.with_span_processor(processor).build(),
        Some(export_thread),
    ))
}

/// A thread running a small Tokio runtime that the OTLP HTTP client sends on. The SDK's batch
/// processor exports from a thread of its own without a runtime; this keeps export independent
/// of the program's runtime (which may not exist, or may be shutting down).
struct ExportThread {
    handle: tokio::runtime::Handle,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ExportThread {
    fn start() -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TelemetryError::ExportThread)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-export".to_string())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })
            .map_err(TelemetryError::ExportThread)?;
        Ok(ExportThread {
            handle,
            stop,
            thread,
        })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The Hyper OTLP client, run on the export thread's runtime whoever calls it.
#[derive(Debug)]
struct RuntimeHttpClient {
    runtime: tokio::runtime::Handle,
    inner: opentelemetry_http::hyper::HyperClient,
}

impl HttpClient for RuntimeHttpClient {
    // The expansion of `#[async_trait]`, written out to avoid depending on the macro crate.
    fn send_bytes<'client, 'future>(
        &'client self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'future>>
    where
        'client: 'future,
        Self: 'future,
    {
        let inner = self.inner.clone();
        let task = self
            .runtime
            .spawn(async move { inner.send_bytes(request).await });
        Box::pin(async move { task.await.map_err(|error| Box::new(error) as HttpError)? })
    }
}

/// Hands finished spans to the exporter with every sensitive attribute replaced by
/// [`REDACTED`] (span attributes and the attributes of span events, which carry log fields).
#[derive(Debug)]
struct RedactingProcessor<P>(P);

impl<P: SpanProcessor> SpanProcessor for RedactingProcessor<P> {
    fn on_start(&self, span: &mut SdkSpan, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        redact_attributes(&mut span.attributes);
        for event in span.events.events.iter_mut() {
            redact_attributes(&mut event.attributes);
        }
        for link in span.links.links.iter_mut() {
            redact_attributes(&mut link.attributes);
        }
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

fn redact_attributes(attributes: &mut [KeyValue]) {
    for attribute in attributes.iter_mut() {
        if is_sensitive_name(attribute.key.as_str()) {
            attribute.value = Value::from(REDACTED);
        }
    }
}

// --- log formatting --------------------------------------------------------------------------

/// Formats the fields of events and spans, with sensitive ones redacted: `key=value` pairs, or
/// a JSON object for [`JsonLines`].
#[derive(Clone, Copy, Debug)]
enum RedactingFields {
    Text,
    Json,
}

impl<'writer> FormatFields<'writer> for RedactingFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        match self {
            RedactingFields::Text => {
                let mut visitor = TextVisitor {
                    out: String::new(),
                    message: None,
                };
                fields.record(&mut visitor);
                let mut line = visitor.message.unwrap_or_default();
                if !visitor.out.is_empty() {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(&visitor.out);
                }
                writer.write_str(&line)
            }
            RedactingFields::Json => {
                let mut visitor = JsonVisitor::default();
                fields.record(&mut visitor);
                let text = serde_json::to_string(&visitor.fields).map_err(|_| fmt::Error)?;
                writer.write_str(&text)
            }
        }
    }
}

/// Collects `key=value` pairs, and the message apart.
struct TextVisitor {
    out: String,
    message: Option<String>,
}

impl TextVisitor {
    fn push(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        let _ = write!(self.out, "{name}={value}");
    }
}

impl Visit for TextVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else if is_sensitive_name(field.name()) {
            self.push(field.name(), format_args!("{REDACTED}"));
        } else {
            self.push(field.name(), format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else if is_sensitive_name(field.name()) {
            self.push(field.name(), format_args!("{REDACTED}"));
        } else {
            self.push(field.name(), format_args!("{value:?}"));
        }
    }
}

/// Collects fields as JSON values.
#[derive(Default)]
struct JsonVisitor {
    fields: serde_json::Map<String, serde_json::Value>,
}

impl JsonVisitor {
    fn insert(&mut self, field: &Field, value: serde_json::Value) {
        let value = if is_sensitive_name(field.name()) {
            serde_json::Value::from(REDACTED)
        } else {
            value
        };
        self.fields.insert(field.name().to_string(), value);
    }
}

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

/// One JSON object per event: `timestamp`, `level`, `target`, `fields` (with `message`), and
/// `spans`, the enclosing spans from the root, each with its `name` and fields.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        line.insert("fields".into(), fields.fields.into());
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let mut entry = serde_json::Map::new();
                entry.insert("name".into(), span.name().into());
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(serde_json::Value::Object(span_fields)) =
                        serde_json::from_str::<serde_json::Value>(formatted.as_str())
                {
                    entry.extend(span_fields);
                }
                spans.push(serde_json::Value::Object(entry));
            }
        }
        if !spans.is_empty() {
            line.insert("spans".into(), spans.into());
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

// --- trace context in environment variables --------------------------------------------------

/// Maps the propagator's header names to environment variable names and back.
fn env_name(header: &str) -> String {
    header.to_ascii_uppercase()
}

struct EnvInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for EnvInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((env_name(key), value));
    }
}

struct EnvExtractor(HashMap<String, String>);

impl Extractor for EnvExtractor {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&env_name(key)).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The environment variables (`TRACEPARENT`, and `TRACESTATE` when there is one) that carry
/// `span`'s trace context into a Job; empty when the span is not recorded (e.g. filtered out).
pub fn trace_context_env(span: &tracing::Span) -> Vec<(String, String)> {
    let mut variables = Vec::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut EnvInjector(&mut variables));
    variables
}

/// The trace context carried by `TRACEPARENT`/`TRACESTATE`, read through `lookup`; an empty
/// context when they are missing or malformed.
pub fn parent_context_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Context {
    let carried: HashMap<String, String> = [TRACEPARENT_ENV, TRACESTATE_ENV]
        .into_iter()
        .filter_map(|name| lookup(name).map(|value| (name.to_string(), value)))
        .collect();
    TraceContextPropagator::new().extract(&EnvExtractor(carried))
}

/// The trace context this process was started with (its `TRACEPARENT`/`TRACESTATE`).
pub fn parent_context_from_env() -> Context {
    parent_context_from_lookup(|name| std::env::var(name).ok())
}

/// Makes `span` a child of the trace this process was started in, if it was started with a
/// `TRACEPARENT`; call it on the Job's root span before entering it. Returns whether it did.
pub fn continue_trace_from_env(span: &tracing::Span) -> bool {
    continue_trace(span, parent_context_from_env())
}

/// Makes `span` a child of `parent` when `parent` holds a valid remote span context.
pub fn continue_trace(span: &tracing::Span, parent: Context) -> bool {
    use opentelemetry::trace::TraceContextExt as _;
    if !parent.span().span_context().is_valid() {
        return false;
    }
    span.set_parent(parent).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A `MakeWriter` collecting everything written, for reading log lines back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            let bytes = self.0.lock().map(|bytes| bytes.clone()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut bytes) = self.0.lock() {
                bytes.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn config(format: LogFormat, filter: &str) -> TelemetryConfig {
        TelemetryConfig {
            log_format: format,
            filter: filter.to_string(),
            ..TelemetryConfig::new("test")
        }
    }

    use crate::test_env::lookup;

    #[test]
    fn sensitive_names_are_recognized_in_any_case_and_position() {
        for name in [
            "password",
            "imapPassword",
            "access_token",
            "TOKEN",
            "client_secret",
            "clientSecretSecretRef",
            "Authorization",
            "credentials",
            "passwd",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in ["channel", "namespace", "user", "traceparent", "messages"] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn config_from_environment_variables() {
        let config = TelemetryConfig::from_lookup(
            "mailsync-operator",
            lookup(&[
                ("MAILSYNC_LOG_FORMAT", "JSON"),
                ("RUST_LOG", "debug,kube=warn"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "k8s.namespace.name=mail, bad ,=x",
                ),
            ]),
        )
        .expect("valid configuration");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.filter, "debug,kube=warn");
        assert_eq!(config.service_name, "mailsync-operator");
        assert_eq!(
            config.traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            config.resource_attributes,
            vec![("k8s.namespace.name".to_string(), "mail".to_string())]
        );

        let config = TelemetryConfig::from_lookup(
            "x",
            lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4318/custom"),
                ("OTEL_SERVICE_NAME", "sync"),
            ]),
        )
        .expect("valid configuration");
        assert_eq!(
            config.traces_endpoint.as_deref(),
            Some("http://b:4318/custom")
        );
        assert_eq!(config.service_name, "sync");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.filter, "info");

        let error = TelemetryConfig::from_lookup("x", lookup(&[("MAILSYNC_LOG_FORMAT", "xml")]))
            .expect_err("xml is no log format");
        assert!(error.to_string().contains("MAILSYNC_LOG_FORMAT"), "{error}");
    }

    #[test]
    fn https_endpoints_and_bad_filters_are_refused() {
        let mut config = TelemetryConfig::new("x");
        config.traces_endpoint = Some("https://collector:4318/v1/traces".to_string());
        assert!(matches!(
            build(&config, Captured::default()),
            Err(TelemetryError::UnsupportedEndpoint { .. })
        ));
        let config = TelemetryConfig {
            filter: "info,=[".to_string(),
            ..TelemetryConfig::new("x")
        };
        assert!(matches!(
            build(&config, Captured::default()),
            Err(TelemetryError::Filter { .. })
        ));
    }

    #[test]
    fn json_logs_are_one_object_per_line_with_spans_and_redacted_secrets() {
        let captured = Captured::default();
        let (subscriber, _telemetry) =
            build(&config(LogFormat::Json, "info"), captured.clone()).expect("builds");
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("reconcile", channel = "inbox", token = "t0k3n");
            let _entered = span.enter();
            tracing::info!(messages = 42_u64, password = "hunter2", "synced");
            tracing::debug!("filtered out at info");
        });
        let text = captured.text();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("t0k3n"), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "synced");
        assert_eq!(line["fields"]["messages"], 42);
        assert_eq!(line["fields"]["password"], REDACTED);
        assert_eq!(line["spans"][0]["name"], "reconcile");
        assert_eq!(line["spans"][0]["channel"], "inbox");
        assert_eq!(line["spans"][0]["token"], REDACTED);
        assert!(line["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    }

    #[test]
    fn text_logs_redact_secrets_and_follow_the_filter() {
        let captured = Captured::default();
        let (subscriber, _telemetry) = build(
            &config(LogFormat::Text, "warn,mailsync::telemetry=debug"),
            captured.clone(),
        )
        .expect("builds");
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(client_secret = "s3cr3t", user = "anna", "logging in");
            tracing::info!(target: "elsewhere", "not shown below warn");
        });
        let text = captured.text();
        assert!(text.contains("logging in"), "{text}");
        assert!(text.contains("user=\"anna\""), "{text}");
        assert!(
            text.contains(&format!("client_secret={REDACTED}")),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!text.contains("not shown"), "{text}");
    }

    #[test]
    fn trace_context_goes_through_environment_variables() {
        let (subscriber, _telemetry) =
            build(&config(LogFormat::Text, "info"), Captured::default()).expect("builds");
        tracing::subscriber::with_default(subscriber, || {
            use opentelemetry::trace::TraceContextExt as _;
            let reconcile = tracing::info_span!("reconcile");
            let variables = trace_context_env(&reconcile);
            let traceparent = variables
                .iter()
                .find(|(name, _)| name == TRACEPARENT_ENV)
                .map(|(_, value)| value.clone())
                .expect("a TRACEPARENT variable");
            let parent = reconcile.context();
            let parent = parent.span().span_context().clone();
            assert_eq!(
                traceparent,
                format!("00-{}-{}-01", parent.trace_id(), parent.span_id())
            );

            let carried = parent_context_from_lookup(|name| {
                variables
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            });
            let job = tracing::info_span!("sync-job");
            assert!(continue_trace(&job, carried));
            let job_context = job.context();
            assert_eq!(
                job_context.span().span_context().trace_id(),
                parent.trace_id()
            );
            assert_ne!(
                job_context.span().span_context().span_id(),
                parent.span_id()
            );

            let nothing = parent_context_from_lookup(|name| {
                (name == TRACEPARENT_ENV).then(|| "not-a-traceparent".to_string())
            });
            assert!(!continue_trace(&tracing::info_span!("orphan"), nothing));
        });
    }

    #[test]
    fn a_quiet_log_level_still_traces_mailsyncs_spans() {
        let captured = Captured::default();
        let (subscriber, _telemetry) =
            build(&config(LogFormat::Text, "warn"), captured.clone()).expect("builds");
        tracing::subscriber::with_default(subscriber, || {
            let reconcile = tracing::info_span!("reconcile");
            let variables = trace_context_env(&reconcile);
            assert!(
                variables.iter().any(|(name, _)| name == TRACEPARENT_ENV),
                "no trace context at RUST_LOG=warn: {variables:?}"
            );
            let _entered = reconcile.enter();
            tracing::info!("below the log level");
            tracing::warn!("at the log level");
        });
        let text = captured.text();
        assert!(!text.contains("below the log level"), "{text}");
        assert!(text.contains("at the log level"), "{text}");
    }

    /// A stand-in OTLP/HTTP collector on 127.0.0.1: answers every request with 200 and hands
    /// over (path, content type, body).
    fn start_collector() -> (
        std::net::SocketAddr,
        std::sync::mpsc::Receiver<(String, String, Vec<u8>)>,
    ) {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds 127.0.0.1");
        let address = listener.local_addr().expect("has an address");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let mut length = 0;
                let mut content_type = String::new();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        match name.trim().to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap_or(0),
                            "content-type" => content_type = value.trim().to_string(),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut stream = reader.into_inner();
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if sender.send((path, content_type, body)).is_err() {
                    return;
                }
            }
        });
        (address, receiver)
    }

    #[test]
    fn spans_reach_an_otlp_collector_redacted_and_linked_to_the_parent_trace() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::any_value;
        use prost::Message as _;

        let (address, requests) = start_collector();
        let config = TelemetryConfig {
            traces_endpoint: Some(format!("http://{address}/v1/traces")),
            resource_attributes: vec![("k8s.namespace.name".into(), "mail".into())],
            ..config(LogFormat::Json, "info")
        };
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent_span_id = "00f067aa0ba902b7";
        let traceparent = format!("00-{trace_id}-{parent_span_id}-01");
        let (subscriber, telemetry) = build(&config, Captured::default()).expect("builds");
        tracing::subscriber::with_default(subscriber, || {
            let job = tracing::info_span!("sync_job", channel = "inbox", access_token = "t0k3n");
            assert!(continue_trace(
                &job,
                parent_context_from_lookup(|name| {
                    (name == TRACEPARENT_ENV).then(|| traceparent.clone())
                })
            ));
            let _entered = job.enter();
            tracing::info!(password = "hunter2", "logged in");
        });
        telemetry.shutdown();

        let (path, content_type, body) = requests
            .recv_timeout(Duration::from_secs(10))
            .expect("the collector received an export");
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        let resource_spans = &request.resource_spans[0];
        let resource_attributes: HashMap<String, String> = resource_spans
            .resource
            .as_ref()
            .expect("a resource")
            .attributes
            .iter()
            .filter_map(
                |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(text) => {
                        Some((attribute.key.clone(), text.clone()))
                    }
                    _ => None,
                },
            )
            .collect();
        assert_eq!(resource_attributes["service.name"], "test");
        assert_eq!(resource_attributes["k8s.namespace.name"], "mail");
        let span = resource_spans
            .scope_spans
            .iter()
            .flat_map(|scope| scope.spans.iter())
            .find(|span| span.name == "sync_job")
            .expect("the sync_job span was exported");
        let hex = |bytes: &[u8]| {
            bytes
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        };
        assert_eq!(
            hex(&span.trace_id),
            trace_id,
            "the span continues the trace"
        );
        assert_eq!(hex(&span.parent_span_id), parent_span_id);
        let text = |attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str| {
            attributes
                .iter()
                .find(|attribute| attribute.key == key)
                .and_then(
                    |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                        any_value::Value::StringValue(text) => Some(text.clone()),
                        _ => None,
                    },
                )
        };
        assert_eq!(text(&span.attributes, "channel").as_deref(), Some("inbox"));
        assert_eq!(
            text(&span.attributes, "access_token").as_deref(),
            Some(REDACTED)
        );
        let event = span.events.first().expect("the log event is a span event");
        assert_eq!(
            text(&event.attributes, "password").as_deref(),
            Some(REDACTED)
        );
        assert!(
            !body.windows(7).any(|window| window == b"hunter2"),
            "the password reached the collector"
        );
        assert!(!body.windows(5).any(|window| window == b"t0k3n"));
    }
}
