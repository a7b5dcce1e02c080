//! `mailsync operator`: the kube runtime controller for MailChannels. It watches the channels,
//! their Jobs, and the MailStores and Secrets they depend on (Secrets as metadata only: a
//! change triggers the channels of its namespace, the watch carries no Secret data; a
//! reconcile reads the key names of the Secrets its channel uses, and of no others); each
//! reconcile reads what it needs, asks [`super::reconcile::plan`] what to do and does it: the
//! worker's ServiceAccount and Role, the ConfigMap with the rendered config, the run's Job
//! (created under a lock so concurrent reconciles respect the stores' connection limits, with
//! the reconcile's trace context in its environment), history cleanup, Events, and the
//! controller's part of the status (server-side apply, field manager [`FIELD_MANAGER`]).
//!
//! Cluster-wide, or one set of namespaced watches per namespace of
//! [`WatchScope::Namespaces`]. Every reconcile runs in a `reconcile` span and updates the
//! metrics (reconciles, errors, durations, Jobs started / succeeded / failed, the per-channel
//! series from the status the worker wrote).
//!
//! Deleting a MailChannel: a finalizer deletes its Jobs and ConfigMap before the channel goes.
//! ownerReferences are set as well, but garbage collection needs a controller-manager, and
//! the finalizer also stops a running sync at once; the mail on the volumes is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Error as FinalizerError, Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::job::{
    CHANNEL_ANNOTATION, JobTemplate, MANAGED_BY, MANAGED_BY_LABEL, REPORTED_ANNOTATION, config_map,
    config_map_name, sync_job, with_job_defaults,
};
use super::metrics::{ChannelSnapshot, Metrics};
use super::reconcile::{Actions, EventNote, Observed, plan};
use super::render::render;
use super::settings::{OperatorSettings, WatchScope};
use super::{MailChannel, MailStore};

/// Field manager of the controller's status writes.
pub const FIELD_MANAGER: &str = "mailsync-controller";
/// Finalizer that removes a channel's Jobs and ConfigMap.
pub const FINALIZER: &str = "mailsync.io/cleanup";
/// The `kind` label of the controller's reconcile metrics.
const KIND: &str = "MailChannel";

/// A failure of one reconcile; the channel is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("finalizer: {message}")]
    Finalizer {
        /// A short, fixed class of the error for the metrics.
        class: &'static str,
        message: String,
    },
}

impl ControllerError {
    /// A short, fixed name of the kind of error (a metrics label: never the message).
    pub fn class(&self) -> &'static str {
        match self {
            ControllerError::Api(error) => api_error_class(error),
            ControllerError::Finalizer { class, .. } => class,
        }
    }
}

fn api_error_class(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) if status.code == 403 => "Forbidden",
        kube::Error::Api(status) if status.code == 404 => "NotFound",
        kube::Error::Api(status) if status.code == 409 => "Conflict",
        kube::Error::Api(status) if status.code == 422 => "Invalid",
        kube::Error::Api(_) => "ApiError",
        _ => "ClientError",
    }
}

fn finalizer_error(error: FinalizerError<ControllerError>) -> ControllerError {
    let class = match &error {
        FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => inner.class(),
        FinalizerError::AddFinalizer(_) | FinalizerError::RemoveFinalizer(_) => "FinalizerError",
        FinalizerError::UnnamedObject | FinalizerError::InvalidFinalizer => "InvalidObject",
    };
    ControllerError::Finalizer {
        class,
        message: error.to_string(),
    }
}

/// A future that completes when the controller is to stop (shutdown, or lost leadership);
/// cloned for each namespace's controller.
pub type StopSignal = Shared<BoxFuture<'static, ()>>;

struct Context {
    client: Client,
    recorder: Recorder,
    template: JobTemplate,
    metrics: Arc<Metrics>,
    /// Held while deciding and creating a Job, so concurrent reconciles see each other's Jobs
    /// (connection limits of shared stores).
    start_lock: tokio::sync::Mutex<()>,
    /// Consecutive failures per channel, for the error backoff.
    failures: std::sync::Mutex<BTreeMap<String, u32>>,
}

/// An `Api` for the scope: all namespaces, or one.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `stop` completes, then lets the reconciles in flight finish.
/// With [`WatchScope::Namespaces`] it watches each namespace on its own (namespaced requests
/// only, as the namespace-scoped RBAC of the chart allows), else the whole cluster.
pub async fn run(
    client: Client,
    settings: &OperatorSettings,
    metrics: Arc<Metrics>,
    stop: StopSignal,
) {
    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "mailsync-operator".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        client: client.clone(),
        template: settings.template.clone(),
        metrics,
        start_lock: tokio::sync::Mutex::new(()),
        failures: std::sync::Mutex::new(BTreeMap::new()),
    });
    let namespaces: Vec<Option<String>> = match &settings.scope {
        WatchScope::AllNamespaces => vec![None],
        WatchScope::Namespaces(namespaces) => namespaces.iter().cloned().map(Some).collect(),
    };
    tracing::info!(
        scope = ?settings.scope,
        image = %settings.template.image,
        "watching MailChannels"
    );
    let controllers = namespaces.into_iter().map(|namespace| {
        run_scope(
            client.clone(),
            namespace,
            Arc::clone(&context),
            stop.clone(),
        )
    });
    futures::future::join_all(controllers).await;
}

/// One kube runtime controller over one namespace, or over all (`None`).
async fn run_scope(
    client: Client,
    namespace: Option<String>,
    context: Arc<Context>,
    stop: StopSignal,
) {
    let namespace = namespace.as_deref();
    let channels = scoped::<MailChannel>(&client, namespace);
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let controller = Controller::new(channels, watcher::Config::default());
    let for_stores = controller.store();
    let for_secrets = controller.store();
    // Secrets only as metadata: a change (or a new Secret) triggers the channels of its
    // namespace; the watch never carries Secret data.
    let secret_changes = watcher(
        scoped::<PartialObjectMeta<Secret>>(&client, namespace),
        watcher::Config::default(),
    )
    .touched_objects();
    controller
        .owns(scoped::<Job>(&client, namespace), managed.clone())
        .owns(scoped::<ConfigMap>(&client, namespace), managed)
        .watches(
            scoped::<MailStore>(&client, namespace),
            watcher::Config::default(),
            move |store: MailStore| {
                let namespace = store.namespace();
                let name = store.name_any();
                for_stores
                    .state()
                    .into_iter()
                    .filter(|channel| {
                        channel.namespace() == namespace
                            && (channel.spec.far.store_ref.name == name
                                || channel.spec.near.store_ref.name == name)
                    })
                    .map(|channel| ObjectRef::from_obj(&*channel))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(secret_changes, move |secret| {
            let namespace = secret.namespace();
            for_secrets
                .state()
                .into_iter()
                .filter(|channel| channel.namespace() == namespace)
                .map(|channel| ObjectRef::from_obj(&*channel))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::warn!(%error, "controller");
            }
        })
        .await;
    tracing::info!(namespace = namespace.unwrap_or("*"), "controller stopped");
}

fn channel_key(channel: &MailChannel) -> String {
    format!(
        "{}/{}",
        channel.namespace().unwrap_or_default(),
        channel.name_any()
    )
}

fn error_policy(
    channel: Arc<MailChannel>,
    error: &ControllerError,
    context: Arc<Context>,
) -> Action {
    let attempts = match context.failures.lock() {
        Ok(mut failures) => {
            let count = failures.entry(channel_key(&channel)).or_insert(0);
            *count = count.saturating_add(1);
            *count
        }
        Err(_) => 1,
    };
    tracing::warn!(
        channel = %channel_key(&channel),
        attempt = attempts,
        %error,
        "reconcile failed"
    );
    // 1 s, 2 s, 4 s … up to 5 minutes.
    let seconds = 1u64 << attempts.saturating_sub(1).min(8);
    Action::requeue(Duration::from_secs(seconds.min(300)))
}

async fn reconcile(
    channel: Arc<MailChannel>,
    context: Arc<Context>,
) -> Result<Action, ControllerError> {
    let namespace = channel.namespace().unwrap_or_default();
    let span = tracing::info_span!(
        "reconcile",
        kind = KIND,
        namespace = %namespace,
        channel = %channel.name_any(),
        generation = channel.metadata.generation.unwrap_or_default(),
    );
    let started = Instant::now();
    let result = reconcile_channel(channel.clone(), &context, &namespace)
        .instrument(span)
        .await;
    context.metrics.observe_reconcile(
        KIND,
        started.elapsed(),
        result.as_ref().err().map(ControllerError::class),
    );
    if result.is_ok()
        && let Ok(mut failures) = context.failures.lock()
    {
        failures.remove(&channel_key(&channel));
    }
    result
}

async fn reconcile_channel(
    channel: Arc<MailChannel>,
    context: &Context,
    namespace: &str,
) -> Result<Action, ControllerError> {
    let api = Api::<MailChannel>::namespaced(context.client.clone(), namespace);
    finalizer(&api, FINALIZER, channel, |event| async {
        match event {
            FinalizerEvent::Apply(channel) => apply(&channel, context).await,
            FinalizerEvent::Cleanup(channel) => cleanup(&channel, context).await,
        }
    })
    .await
    .map_err(finalizer_error)
}

async fn list_jobs(client: &Client, namespace: &str) -> Result<Vec<Job>, kube::Error> {
    let jobs = Api::<Job>::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    Ok(jobs.list(&params).await?.items)
}

/// The key names of the Secrets the channel's config reads, by Secret name (a missing Secret
/// is left out). Only those Secrets are read, each by a list restricted to its name (the
/// chart grants `list`, not `get`); other Secrets of the namespace never reach the controller.
async fn referenced_secret_keys(
    channel: &MailChannel,
    stores: &BTreeMap<String, MailStore>,
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, BTreeSet<String>>, kube::Error> {
    let far = stores.get(&channel.spec.far.store_ref.name);
    let near = stores.get(&channel.spec.near.store_ref.name);
    let (Some(far), Some(near)) = (far, near) else {
        return Ok(BTreeMap::new());
    };
    // A channel that does not render is refused by the plan before Secrets matter.
    let Ok(rendered) = render(channel, far, near) else {
        return Ok(BTreeMap::new());
    };
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut found = BTreeMap::new();
    for name in rendered.secrets() {
        let params = ListParams::default().fields(&format!("metadata.name={name}"));
        for secret in api.list(&params).await?.items {
            let mut keys: BTreeSet<String> = secret
                .data
                .iter()
                .flatten()
                .map(|(key, _)| key.clone())
                .collect();
            keys.extend(
                secret
                    .string_data
                    .iter()
                    .flatten()
                    .map(|(key, _)| key.clone()),
            );
            found.insert(secret.name_any(), keys);
        }
    }
    Ok(found)
}

async fn observe_and_plan(
    channel: &MailChannel,
    client: &Client,
    namespace: &str,
) -> Result<Actions, kube::Error> {
    let stores: BTreeMap<String, MailStore> =
        Api::<MailStore>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|store| (store.name_any(), store))
            .collect();
    let secrets = referenced_secret_keys(channel, &stores, client, namespace).await?;
    let jobs = list_jobs(client, namespace).await?;
    Ok(plan(&Observed {
        channel,
        stores: &stores,
        secrets: &secrets,
        jobs: &jobs,
        now: jiff::Timestamp::now(),
    }))
}

async fn apply(stored: &MailChannel, context: &Context) -> Result<Action, ControllerError> {
    let client = &context.client;
    let namespace = stored.namespace().unwrap_or_default();
    let name = stored.name_any();
    let apply_params = PatchParams::apply(FIELD_MANAGER).force();
    if let Some(status) = &stored.status {
        context
            .metrics
            .set_channel(&namespace, &name, &ChannelSnapshot::from_status(status));
    }
    // The chart's Job defaults fill what spec.job leaves out (history limits included).
    let completed = with_job_defaults(stored, &context.template.defaults);
    let channel = &completed;

    let mut actions = observe_and_plan(channel, client, &namespace).await?;
    if let Some(rendered) = &actions.rendered {
        ensure_worker_access(client, &namespace, &context.template.service_account).await?;
        let config_map = config_map(channel, rendered);
        Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .patch(
                &config_map_name(&name),
                &apply_params,
                &Patch::Apply(&config_map),
            )
            .await?;
    }
    if actions.start.is_some() {
        // Decide again under the lock, with the Jobs as they are now.
        let _guard = context.start_lock.lock().await;
        actions = observe_and_plan(channel, client, &namespace).await?;
        if let (Some(run), Some(rendered)) = (&actions.start, &actions.rendered) {
            // The Job's spans continue this reconcile's trace.
            let trace_env = crate::telemetry::trace_context_env(&tracing::Span::current());
            let job = sync_job(channel, rendered, run, &context.template, &trace_env);
            let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
            match jobs.create(&PostParams::default(), &job).await {
                Ok(created) => {
                    context.metrics.job_started(&namespace);
                    tracing::info!(job = %created.name_any(), "started a sync Job");
                }
                // The run's Job exists already: adopt it.
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
    for job_name in &actions.delete_jobs {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match jobs.delete(job_name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    let reference = channel.object_ref(&());
    for (job_name, note) in &actions.report_jobs {
        publish(context, note, &reference).await;
        let patch = json!({"metadata": {"annotations": {REPORTED_ANNOTATION: "true"}}});
        match jobs
            .patch(job_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // Counted once: a reported Job is not reported again.
            Ok(_) if note.warning => context.metrics.job_failed(&namespace),
            Ok(_) => context.metrics.job_succeeded(&namespace),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    for note in &actions.events {
        publish(context, note, &reference).await;
    }
    write_status(channel, &actions, client, &namespace).await?;
    Ok(Action::requeue(actions.requeue_after))
}

async fn publish(
    context: &Context,
    note: &EventNote,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
) {
    let event = Event {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason.clone(),
        note: Some(note.note.clone()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(error) = context.recorder.publish(&event, reference).await {
        tracing::warn!(%error, reason = %note.reason, "cannot publish an Event");
    }
}

async fn write_status(
    channel: &MailChannel,
    actions: &Actions,
    client: &Client,
    namespace: &str,
) -> Result<(), kube::Error> {
    let status = &actions.status;
    let mut body = serde_json::Map::new();
    body.insert(
        "observedGeneration".into(),
        json!(status.observed_generation),
    );
    body.insert("conditions".into(), json!(status.conditions));
    for (key, value) in [
        ("lastSyncStartTime", &status.last_sync_start_time),
        ("nextSyncTime", &status.next_sync_time),
        ("lastScheduleTime", &status.last_schedule_time),
    ] {
        if let Some(value) = value {
            body.insert(key.into(), json!(value));
        }
    }
    if let Some(generation) = status.last_run_generation {
        body.insert("lastRunGeneration".into(), json!(generation));
    }
    let patch = json!({
        "apiVersion": MailChannel::api_version(&()),
        "kind": MailChannel::kind(&()),
        "status": body,
    });
    Api::<MailChannel>::namespaced(client.clone(), namespace)
        .patch_status(
            &channel.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

/// The worker's ServiceAccount `account`, and a Role and RoleBinding of the same name letting
/// it read its channel and write the status.
async fn ensure_worker_access(
    client: &Client,
    namespace: &str,
    account: &str,
) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let labels = Some(BTreeMap::from([(
        MANAGED_BY_LABEL.to_string(),
        MANAGED_BY.to_string(),
    )]));
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: labels.clone(),
        ..ObjectMeta::default()
    };
    let service_account = ServiceAccount {
        metadata: meta(account),
        ..ServiceAccount::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .patch(
            account,
            &params,
            &Patch::Apply(&typed(&service_account, "v1", "ServiceAccount")),
        )
        .await?;
    let role = Role {
        metadata: meta(account),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![super::API_GROUP.into()]),
                resources: Some(vec!["mailchannels".into()]),
                verbs: vec!["get".into()],
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(vec![super::API_GROUP.into()]),
                resources: Some(vec!["mailchannels/status".into()]),
                verbs: vec!["get".into(), "patch".into()],
                ..PolicyRule::default()
            },
        ]),
    };
    Api::<Role>::namespaced(client.clone(), namespace)
        .patch(
            account,
            &params,
            &Patch::Apply(&typed(&role, "rbac.authorization.k8s.io/v1", "Role")),
        )
        .await?;
    let binding = RoleBinding {
        metadata: meta(account),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: account.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(namespace.to_string()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .patch(
            account,
            &params,
            &Patch::Apply(&typed(
                &binding,
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
            )),
        )
        .await?;
    Ok(())
}

/// `object` as JSON with `apiVersion` and `kind`, as server-side apply wants them.
fn typed<T: serde::Serialize>(object: &T, api_version: &str, kind: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    value
}

/// Deletes the channel's Jobs and ConfigMap; the volumes and the mail on them stay.
async fn cleanup(channel: &MailChannel, context: &Context) -> Result<Action, ControllerError> {
    let client = &context.client;
    let namespace = channel.namespace().unwrap_or_default();
    let name = channel.name_any();
    context.metrics.forget_channel(&namespace, &name);
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    for job in list_jobs(client, &namespace).await? {
        let ours = job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANNEL_ANNOTATION))
            .is_some_and(|channel_name| *channel_name == name);
        if !ours {
            continue;
        }
        match jobs.delete(&job.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    match Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .delete(&config_map_name(&name), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(error.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> ControllerError {
        ControllerError::Api(kube::Error::Api(Box::new(
            kube::core::Status::failure("the server's words", "Whatever").with_code(code),
        )))
    }

    #[test]
    fn error_classes_are_fixed_words_not_messages() {
        assert_eq!(api_error(403).class(), "Forbidden");
        assert_eq!(api_error(404).class(), "NotFound");
        assert_eq!(api_error(409).class(), "Conflict");
        assert_eq!(api_error(422).class(), "Invalid");
        assert_eq!(api_error(500).class(), "ApiError");
        let wrapped = finalizer_error(FinalizerError::ApplyFailed(api_error(403)));
        assert_eq!(wrapped.class(), "Forbidden");
        assert!(
            wrapped.to_string().contains("the server's words"),
            "{wrapped}"
        );
        let cleanup = finalizer_error(FinalizerError::CleanupFailed(api_error(500)));
        assert_eq!(cleanup.class(), "ApiError");
        assert_eq!(
            finalizer_error(FinalizerError::UnnamedObject).class(),
            "InvalidObject"
        );
    }
}
