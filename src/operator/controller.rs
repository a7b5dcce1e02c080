//! `mailsync operator`: the kube runtime controller for MailChannels. It watches the channels,
//! their Jobs, and the MailStores and Secrets they depend on; each reconcile reads what it
//! needs, asks [`super::reconcile::plan`] what to do and does it: the worker's ServiceAccount
//! and Role, the ConfigMap with the rendered config, the run's Job (created under a lock so
//! concurrent reconciles respect the stores' connection limits), history cleanup, Events, and
//! the controller's part of the status (server-side apply, field manager
//! [`FIELD_MANAGER`]).
//!
//! Deleting a MailChannel: a finalizer deletes its Jobs and ConfigMap before the channel goes.
//! ownerReferences are set as well, but garbage collection needs a controller-manager, and
//! the finalizer also stops a running sync at once; the mail on the volumes is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::job::{
    CHANNEL_ANNOTATION, JobTemplate, MANAGED_BY, MANAGED_BY_LABEL, REPORTED_ANNOTATION,
    WORKER_SERVICE_ACCOUNT, config_map, config_map_name, sync_job,
};
use super::reconcile::{Actions, EventNote, Observed, plan};
use super::{MailChannel, MailStore};

/// Field manager of the controller's status writes.
pub const FIELD_MANAGER: &str = "mailsync-controller";
/// Finalizer that removes a channel's Jobs and ConfigMap.
pub const FINALIZER: &str = "mailsync.io/cleanup";
/// Name of the worker's Role and RoleBinding in each namespace with channels.
pub const WORKER_ROLE: &str = "mailsync-worker";

/// A failure of one reconcile; the channel is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// The controller's settings.
#[derive(Clone, Debug)]
pub struct OperatorSettings {
    /// Image of the sync Jobs.
    pub image: String,
}

struct Context {
    client: Client,
    recorder: Recorder,
    template: JobTemplate,
    /// Held while deciding and creating a Job, so concurrent reconciles see each other's Jobs
    /// (connection limits of shared stores).
    start_lock: tokio::sync::Mutex<()>,
    /// Consecutive failures per channel, for the error backoff.
    failures: std::sync::Mutex<BTreeMap<String, u32>>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, settings: OperatorSettings) {
    let channels = Api::<MailChannel>::all(client.clone());
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let controller = Controller::new(channels, watcher::Config::default());
    let for_stores = controller.store();
    let for_secrets = controller.store();
    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "mailsync-operator".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        client: client.clone(),
        template: JobTemplate {
            image: settings.image,
        },
        start_lock: tokio::sync::Mutex::new(()),
        failures: std::sync::Mutex::new(BTreeMap::new()),
    });
    controller
        .owns(Api::<Job>::all(client.clone()), managed.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), managed)
        .watches(
            Api::<MailStore>::all(client.clone()),
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
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            move |secret: Secret| {
                let namespace = secret.namespace();
                for_secrets
                    .state()
                    .into_iter()
                    .filter(|channel| channel.namespace() == namespace)
                    .map(|channel| ObjectRef::from_obj(&*channel))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                crate::output::warning(&format!("mailsync operator: {error}"));
            }
        })
        .await;
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
    crate::output::warning(&format!(
        "mailsync operator: reconciling {} failed (attempt {attempts}): {error}",
        channel_key(&channel)
    ));
    // 1 s, 2 s, 4 s … up to 5 minutes.
    let seconds = 1u64 << attempts.saturating_sub(1).min(8);
    Action::requeue(Duration::from_secs(seconds.min(300)))
}

async fn reconcile(
    channel: Arc<MailChannel>,
    context: Arc<Context>,
) -> Result<Action, ControllerError> {
    let namespace = channel.namespace().unwrap_or_default();
    let api = Api::<MailChannel>::namespaced(context.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, channel.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(channel) => apply(&channel, &context).await,
            FinalizerEvent::Cleanup(channel) => cleanup(&channel, &context).await,
        }
    })
    .await
    .map_err(|error| ControllerError::Finalizer(error.to_string()));
    if result.is_ok()
        && let Ok(mut failures) = context.failures.lock()
    {
        failures.remove(&channel_key(&channel));
    }
    result
}

async fn list_jobs(client: &Client, namespace: &str) -> Result<Vec<Job>, kube::Error> {
    let jobs = Api::<Job>::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    Ok(jobs.list(&params).await?.items)
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
    let secrets: BTreeMap<String, BTreeSet<String>> =
        Api::<Secret>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|secret| {
                let mut keys: BTreeSet<String> = secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.extend(secret.string_data.iter().flatten().map(|(k, _)| k.clone()));
                (secret.name_any(), keys)
            })
            .collect();
    let jobs = list_jobs(client, namespace).await?;
    Ok(plan(&Observed {
        channel,
        stores: &stores,
        secrets: &secrets,
        jobs: &jobs,
        now: jiff::Timestamp::now(),
    }))
}

async fn apply(channel: &MailChannel, context: &Context) -> Result<Action, ControllerError> {
    let client = &context.client;
    let namespace = channel.namespace().unwrap_or_default();
    let name = channel.name_any();
    let apply_params = PatchParams::apply(FIELD_MANAGER).force();

    let mut actions = observe_and_plan(channel, client, &namespace).await?;
    if let Some(rendered) = &actions.rendered {
        ensure_worker_access(client, &namespace).await?;
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
            let job = sync_job(channel, rendered, run, &context.template);
            let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
            match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => {}
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
            Ok(_) => {}
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
        crate::output::warning(&format!(
            "mailsync operator: cannot publish an Event: {error}"
        ));
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

/// The worker's ServiceAccount, and a Role letting it read its channel and write the status.
async fn ensure_worker_access(client: &Client, namespace: &str) -> Result<(), kube::Error> {
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
    let account = ServiceAccount {
        metadata: meta(WORKER_SERVICE_ACCOUNT),
        ..ServiceAccount::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .patch(
            WORKER_SERVICE_ACCOUNT,
            &params,
            &Patch::Apply(&typed(&account, "v1", "ServiceAccount")),
        )
        .await?;
    let role = Role {
        metadata: meta(WORKER_ROLE),
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
            WORKER_ROLE,
            &params,
            &Patch::Apply(&typed(&role, "rbac.authorization.k8s.io/v1", "Role")),
        )
        .await?;
    let binding = RoleBinding {
        metadata: meta(WORKER_ROLE),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: WORKER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: WORKER_SERVICE_ACCOUNT.into(),
            namespace: Some(namespace.to_string()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .patch(
            WORKER_ROLE,
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
