//! `mailsync worker`: the entry point of a sync Job's container. It runs the engine on the
//! mounted config (Maildirs on the mounted volumes, passwords read from the mounted Secret
//! files), then writes the outcome into its MailChannel's status by server-side apply with
//! its own field manager ([`FIELD_MANAGER`]): per mailbox the UIDVALIDITY and message count
//! of both sides and errors, totals, the last sync time, duration and result, the `Ready` and
//! `Degraded` conditions and `lastManualSync`. It talks to the API with the Pod's
//! ServiceAccount token and needs no access to Secrets.
//!
//! The exit code is the engine's (non-zero when the sync failed), or 1 when the status
//! could not be written.

use std::path::PathBuf;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};
use serde_json::json;
use tracing::Instrument;

use crate::config::{self, ChannelRef, Environment};
use crate::operator::MailChannel;
use crate::operator::common::condition;
use crate::operator::job::env;
use crate::operator::status::{
    MAX_MAILBOX_STATUSES, MailChannelStatus, MailboxSideStatus, MailboxState, MailboxStatus,
    SideChanges, SyncOutcome, SyncResult, SyncTotals, bounded_message,
};
use crate::output;
use crate::sync::RunOptions;
use crate::sync::channels::RunReport;

/// Field manager of the worker's status writes.
pub const FIELD_MANAGER: &str = "mailsync-worker";
/// Where the Pod's ServiceAccount token and CA are, relative to the working directory (`/`).
pub const SERVICE_ACCOUNT_DIR: &str = "var/run/secrets/kubernetes.io/serviceaccount";

/// What the worker needs to know.
#[derive(Clone, Debug)]
pub struct WorkerArgs {
    /// The rendered config file.
    pub config: PathBuf,
    /// Folder with `token` and `ca.crt` of the ServiceAccount.
    pub service_account_dir: PathBuf,
}

/// Why the worker could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(String),
    #[error("cannot write the status of MailChannel {channel}: {error}")]
    Status { channel: String, error: kube::Error },
}

fn required_env(name: &'static str) -> Result<String, WorkerError> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .ok_or(WorkerError::MissingEnv(name))
}

/// Runs the worker and returns the process exit code. Logs and traces follow the
/// environment the controller gives the Job (`RUST_LOG`, `MAILSYNC_LOG_FORMAT`, `OTEL_*`); the
/// sync's span continues the trace of the reconcile that started the Job (`TRACEPARENT`).
pub fn main(args: &WorkerArgs) -> i32 {
    let telemetry = match crate::telemetry::TelemetryConfig::from_env("mailsync-worker")
        .and_then(|config| crate::telemetry::init(&config))
    {
        Ok(telemetry) => Some(telemetry),
        Err(error) => {
            output::warning(&format!(
                "mailsync worker: no logs or traces through tracing: {error}"
            ));
            None
        }
    };
    let code = run(args);
    if let Some(telemetry) = telemetry {
        // Sends the spans still buffered before the Pod ends.
        telemetry.shutdown();
    }
    code
}

fn run(args: &WorkerArgs) -> i32 {
    let (channel, namespace) = match (required_env(env::CHANNEL), required_env(env::NAMESPACE)) {
        (Ok(channel), Ok(namespace)) => (channel, namespace),
        (Err(error), _) | (_, Err(error)) => {
            output::error(&format!("mailsync worker: {error}"));
            return 1;
        }
    };
    let job = std::env::var(env::JOB).unwrap_or_default();
    let span = tracing::info_span!(
        "sync_job",
        namespace = %namespace,
        channel = %channel,
        job = %job,
        exit_code = tracing::field::Empty,
    );
    if crate::telemetry::continue_trace_from_env(&span) {
        tracing::debug!("continuing the trace of the reconcile that started the Job");
    }
    let _entered = span.enter();
    let manual = std::env::var(env::MANUAL_TRIGGER)
        .ok()
        .filter(|v| !v.is_empty());
    let started = Timestamp::now();
    let clock = Instant::now();
    let report = tracing::info_span!("sync").in_scope(|| run_engine(args, &channel));
    let elapsed = clock.elapsed();
    tracing::info!(
        exit_code = report.exit_code,
        mailboxes = report.mailboxes.len(),
        seconds = elapsed.as_secs_f64(),
        "sync finished"
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            output::error(&format!(
                "mailsync worker: cannot start the runtime: {error}"
            ));
            return 1;
        }
    };
    let written = runtime.block_on(
        async {
            let client = client(&args.service_account_dir).await?;
            write_status(
                &client,
                &namespace,
                &channel,
                &report,
                manual.as_deref(),
                started,
                elapsed,
            )
            .await
        }
        .instrument(tracing::info_span!("write_status")),
    );
    let code = match written {
        Ok(()) => report.exit_code,
        Err(error) => {
            output::error(&format!("mailsync worker: {error}"));
            if report.exit_code == 0 {
                1
            } else {
                report.exit_code
            }
        }
    };
    span.record("exit_code", code);
    code
}

/// Loads the config and syncs the channel; a config that cannot be read is a failed run.
fn run_engine(args: &WorkerArgs, channel: &str) -> RunReport {
    let failed = |message: String| {
        output::error(&message);
        RunReport {
            exit_code: 1,
            errors: vec![message],
            ..RunReport::default()
        }
    };
    let env = match Environment::from_process() {
        Ok(env) => env,
        Err(error) => return failed(error.to_string()),
    };
    let loaded = match config::load(&args.config.to_string_lossy(), &env) {
        Ok(loaded) => loaded,
        Err(error) => return failed(error.to_string()),
    };
    for notice in &loaded.notices {
        output::warning(notice);
    }
    let selection = [ChannelRef {
        channel: channel.to_string(),
        boxes: None,
    }];
    crate::sync::run_with_report(&loaded.config, &selection, &RunOptions::default())
}

/// A client authenticated with the Pod's ServiceAccount token, for the API server the
/// kubelet names in `KUBERNETES_SERVICE_HOST`/`_PORT`.
async fn client(service_account_dir: &std::path::Path) -> Result<Client, WorkerError> {
    let host = required_env("KUBERNETES_SERVICE_HOST")?;
    let port = required_env("KUBERNETES_SERVICE_PORT")?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let absolute = |name: &str| {
        let path = service_account_dir.join(name);
        std::path::absolute(&path).unwrap_or(path)
    };
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": {
            "server": format!("https://{host}:{port}"),
            "certificate-authority": absolute("ca.crt"),
        }}],
        "users": [{"name": "worker", "user": {"tokenFile": absolute("token")}}],
        "contexts": [{"name": "worker", "context": {"cluster": "cluster", "user": "worker"}}],
        "current-context": "worker",
    });
    let kubeconfig: Kubeconfig = serde_json::from_value(kubeconfig)
        .map_err(|error| WorkerError::Client(error.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|error| WorkerError::Client(error.to_string()))?;
    Client::try_from(config).map_err(|error| WorkerError::Client(error.to_string()))
}

fn time(timestamp: Timestamp) -> Time {
    Time(timestamp)
}

fn go_duration(elapsed: std::time::Duration) -> String {
    format!("{:.3}s", elapsed.as_secs_f64())
}

/// The worker's part of the status for `report`, given the status found before.
pub fn status_from_report(
    report: &RunReport,
    previous: &MailChannelStatus,
    manual: Option<&str>,
    now: Timestamp,
    elapsed: std::time::Duration,
    generation: Option<i64>,
) -> MailChannelStatus {
    let failed_boxes = report.mailboxes.iter().filter(|m| m.failed).count();
    let outcome = if report.exit_code == 0 && failed_boxes == 0 {
        SyncOutcome::Succeeded
    } else if failed_boxes < report.mailboxes.len() && report.errors.is_empty() {
        SyncOutcome::Partial
    } else {
        SyncOutcome::Failed
    };
    let first_error = report
        .errors
        .iter()
        .chain(report.mailboxes.iter().flat_map(|m| m.errors.iter()))
        .next()
        .cloned();
    let message = match (&first_error, outcome) {
        (Some(error), _) => error.clone(),
        (None, SyncOutcome::Succeeded) => {
            format!("synchronized {} mailbox(es)", report.mailboxes.len())
        }
        (None, _) => format!("the sync failed with exit code {}", report.exit_code),
    };
    let previous_boxes: Vec<MailboxStatus> = previous.mailboxes.clone().unwrap_or_default();
    let mut mailboxes: Vec<MailboxStatus> = report
        .mailboxes
        .iter()
        .map(|mailbox| {
            let name = mailbox.names[1].clone();
            let before = previous_boxes.iter().find(|b| b.name == name);
            match mailbox.boxes {
                Some(seen) if !mailbox.failed => {
                    let side = |t: usize| MailboxSideStatus {
                        uid_validity: Some(i64::from(seen.uid_validity[t])),
                        uid_next: None,
                        messages: Some(seen.messages[t] as i64),
                    };
                    MailboxStatus {
                        name,
                        far: Some(side(0)),
                        near: Some(side(1)),
                        state: MailboxState::InSync,
                        last_sync_time: Some(time(now)),
                        last_error: None,
                    }
                }
                seen => {
                    let side = |t: usize, old: Option<&MailboxSideStatus>| {
                        seen.map(|seen| MailboxSideStatus {
                            uid_validity: Some(i64::from(seen.uid_validity[t])),
                            uid_next: None,
                            messages: Some(seen.messages[t] as i64),
                        })
                        .or_else(|| old.cloned())
                    };
                    let error = mailbox
                        .errors
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "the mailbox failed to sync".into());
                    let state = if error.to_lowercase().contains("uidvalidity") {
                        MailboxState::UidValidityChanged
                    } else {
                        MailboxState::Error
                    };
                    MailboxStatus {
                        name,
                        far: side(0, before.and_then(|b| b.far.as_ref())),
                        near: side(1, before.and_then(|b| b.near.as_ref())),
                        state,
                        last_sync_time: before.and_then(|b| b.last_sync_time.clone()),
                        last_error: Some(bounded_message(&error)),
                    }
                }
            }
        })
        .collect();
    if mailboxes.is_empty() && outcome == SyncOutcome::Failed {
        // Nothing ran (e.g. the server refused the login): keep what was known.
        mailboxes = previous_boxes;
    }
    // Problems first, then by name; bounded for etcd.
    mailboxes.sort_by(|a, b| {
        (a.state == MailboxState::InSync, &a.name).cmp(&(b.state == MailboxState::InSync, &b.name))
    });
    let totals = SyncTotals {
        mailboxes: mailboxes.len() as i64,
        mailboxes_with_errors: mailboxes
            .iter()
            .filter(|m| m.state != MailboxState::InSync)
            .count() as i64,
        messages_far: mailboxes
            .iter()
            .filter_map(|m| m.far.as_ref()?.messages)
            .sum(),
        messages_near: mailboxes
            .iter()
            .filter_map(|m| m.near.as_ref()?.messages)
            .sum(),
    };
    mailboxes.truncate(MAX_MAILBOX_STATUSES);
    let changes = |t: usize| {
        let side = &report.stats.sides[t];
        SideChanges {
            added: side.new.done as i64,
            flags_updated: side.flags.done as i64,
            deleted: side.trash.done as i64,
            expunged: side.expunge.done as i64,
        }
    };
    let succeeded = outcome == SyncOutcome::Succeeded;
    let condition = |type_: &str, status: bool, reason: &str, message: &str| {
        let status_text = if status { "True" } else { "False" };
        let last_transition_time = previous
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == status_text)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| time(now));
        Condition {
            type_: type_.into(),
            status: status_text.into(),
            reason: reason.into(),
            message: bounded_message(message),
            observed_generation: generation,
            last_transition_time,
        }
    };
    let conditions = vec![
        condition(
            condition::READY,
            succeeded,
            if succeeded {
                "SyncSucceeded"
            } else {
                "SyncFailed"
            },
            &message,
        ),
        condition(
            condition::DEGRADED,
            !succeeded,
            if succeeded {
                "SyncSucceeded"
            } else {
                "SyncFailed"
            },
            &message,
        ),
    ];
    MailChannelStatus {
        conditions: Some(conditions),
        last_sync_time: if succeeded {
            Some(time(now))
        } else {
            previous.last_sync_time.clone()
        },
        last_sync_duration: if succeeded {
            Some(go_duration(elapsed))
        } else {
            previous.last_sync_duration.clone()
        },
        last_manual_sync: manual
            .map(str::to_string)
            .or_else(|| previous.last_manual_sync.clone()),
        latest_result: Some(SyncResult {
            result: outcome,
            message: Some(bounded_message(&message)),
            exit_code: Some(report.exit_code),
            completion_time: Some(time(now)),
            far_changes: Some(changes(0)),
            near_changes: Some(changes(1)),
        }),
        totals: Some(totals),
        mailboxes: Some(mailboxes),
        ..MailChannelStatus::default()
    }
}

async fn write_status(
    client: &Client,
    namespace: &str,
    channel: &str,
    report: &RunReport,
    manual: Option<&str>,
    started: Timestamp,
    elapsed: std::time::Duration,
) -> Result<(), WorkerError> {
    let api = Api::<MailChannel>::namespaced(client.clone(), namespace);
    let status_error = |error| WorkerError::Status {
        channel: format!("{namespace}/{channel}"),
        error,
    };
    let current = api.get_status(channel).await.map_err(status_error)?;
    let previous = current.status.clone().unwrap_or_default();
    let now = started
        .checked_add(jiff::SignedDuration::try_from(elapsed).unwrap_or_default())
        .unwrap_or(started);
    let status = status_from_report(
        report,
        &previous,
        manual,
        now,
        elapsed,
        current.metadata.generation,
    );
    let patch = json!({
        "apiVersion": MailChannel::api_version(&()),
        "kind": MailChannel::kind(&()),
        "status": status,
    });
    api.patch_status(
        channel,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(status_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::channels::MailboxReport;
    use crate::sync::pair::BoxesSeen;

    fn report(failed: bool) -> RunReport {
        RunReport {
            exit_code: i32::from(failed),
            mailboxes: vec![MailboxReport {
                channel: "c".into(),
                names: ["INBOX".into(), "INBOX".into()],
                boxes: (!failed).then_some(BoxesSeen {
                    uid_validity: [1_700_000_001, 42],
                    messages: [3, 3],
                }),
                failed,
                errors: if failed {
                    vec!["IMAP error: authentication failed".into()]
                } else {
                    Vec::new()
                },
            }],
            ..RunReport::default()
        }
    }

    #[test]
    fn a_successful_run_reports_uidvalidity_and_counts() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let status = status_from_report(
            &report(false),
            &MailChannelStatus::default(),
            Some("t1"),
            now,
            std::time::Duration::from_millis(1500),
            Some(3),
        );
        let mailbox = &status.mailboxes.as_ref().expect("mailboxes")[0];
        assert_eq!(
            mailbox.far.as_ref().and_then(|s| s.uid_validity),
            Some(1_700_000_001)
        );
        assert_eq!(mailbox.near.as_ref().and_then(|s| s.messages), Some(3));
        assert_eq!(status.totals.as_ref().map(|t| t.messages_far), Some(3));
        assert_eq!(status.last_manual_sync.as_deref(), Some("t1"));
        assert_eq!(status.last_sync_duration.as_deref(), Some("1.500s"));
        assert_eq!(
            status.latest_result.as_ref().map(|r| r.result),
            Some(SyncOutcome::Succeeded)
        );
    }

    #[test]
    fn a_failed_run_keeps_the_last_good_numbers_and_says_why() {
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().expect("time");
        let good = status_from_report(
            &report(false),
            &MailChannelStatus::default(),
            None,
            "2026-01-01T00:00:00Z".parse().expect("time"),
            std::time::Duration::from_secs(1),
            Some(1),
        );
        let bad = status_from_report(&report(true), &good, None, now, Default::default(), Some(1));
        let degraded = bad
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == condition::DEGRADED)
            .expect("Degraded");
        assert_eq!(degraded.status, "True");
        assert!(degraded.message.contains("authentication failed"));
        assert_eq!(bad.last_sync_time, good.last_sync_time);
        let mailbox = &bad.mailboxes.as_ref().expect("mailboxes")[0];
        assert_eq!(mailbox.state, MailboxState::Error);
        assert_eq!(mailbox.far.as_ref().and_then(|s| s.messages), Some(3));
        assert_eq!(
            bad.latest_result.as_ref().map(|r| r.result),
            Some(SyncOutcome::Failed)
        );
    }
}
