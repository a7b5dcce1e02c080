//! The objects the controller makes for a channel run: the ConfigMap with the rendered config
//! and the hardened sync Job (non-root, read-only root filesystem, no privilege escalation, all
//! capabilities dropped, `RuntimeDefault` seccomp: Pod Security `restricted`), plus the
//! names and labels that tie them to their channel.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    LocalObjectReference, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::MailChannel;
use super::channel::JobSettings;
use super::render::{CONFIG_FILE, CONFIG_KEY, RenderedChannel};

/// Label on every object the operator makes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "mailsync-operator";
/// Label naming the channel (bounded to 63 characters) of a Job or ConfigMap.
pub const CHANNEL_LABEL: &str = "mailsync.io/channel";
/// Annotation with the full channel name of a Job.
pub const CHANNEL_ANNOTATION: &str = "mailsync.io/channel";
/// Annotation: why the run started (`schedule`, `manual`, `spec`).
pub const RUN_KIND_ANNOTATION: &str = "mailsync.io/run";
/// Annotation: the manual trigger value a manual run serves.
pub const MANUAL_ANNOTATION: &str = "mailsync.io/manual-trigger";
/// Annotation: the IMAP MailStores a run connects to, comma-separated.
pub const IMAP_STORES_ANNOTATION: &str = "mailsync.io/imap-stores";
/// Annotation set once the controller published the Event for a finished Job.
pub const REPORTED_ANNOTATION: &str = "mailsync.io/reported";
/// ServiceAccount of the sync Pods.
pub const WORKER_SERVICE_ACCOUNT: &str = "mailsync-worker";
/// User and group the worker runs as.
pub const WORKER_UID: i64 = 65532;
/// Mount point (absolute, in the container) of the mailsync folders.
pub const MOUNT_ROOT: &str = "/mailsync";

/// Environment variables the worker reads.
pub mod env {
    pub const CHANNEL: &str = "MAILSYNC_CHANNEL";
    pub const NAMESPACE: &str = "MAILSYNC_NAMESPACE";
    pub const JOB: &str = "MAILSYNC_JOB";
    pub const MANUAL_TRIGGER: &str = "MAILSYNC_MANUAL_TRIGGER";
}

/// What a run is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// The scheduled slot (seconds since the epoch).
    Schedule(i64),
    /// A new `spec.trigger.manual` value.
    Manual(String),
    /// A spec change of a channel without triggers (its generation).
    Spec(i64),
}

impl RunKind {
    fn label(&self) -> &'static str {
        match self {
            RunKind::Schedule(_) => "schedule",
            RunKind::Manual(_) => "manual",
            RunKind::Spec(_) => "spec",
        }
    }

    /// The Job name suffix: one name per run, so a run is never started twice.
    fn suffix(&self) -> String {
        match self {
            RunKind::Schedule(slot) => format!("s{}", slot / 60),
            RunKind::Manual(token) => format!("m{:08x}", fnv32(token)),
            RunKind::Spec(generation) => format!("g{generation}"),
        }
    }
}

/// Settings of the controller that shape the Jobs (from the chart's `MAILSYNC_WORKER_*`,
/// `MAILSYNC_JOB_DEFAULTS` and telemetry variables, see [`super::settings`]).
#[derive(Clone, Debug, PartialEq)]
pub struct JobTemplate {
    /// Container image with the `mailsync` binary.
    pub image: String,
    /// `imagePullPolicy` of the sync container; `None`: the cluster's default.
    pub image_pull_policy: Option<String>,
    /// Secrets with registry credentials for the sync Pods.
    pub image_pull_secrets: Vec<String>,
    /// ServiceAccount of the sync Pods (also the name of its Role and RoleBinding).
    pub service_account: String,
    /// Defaults for every field a channel leaves unset in `spec.job`.
    pub defaults: JobSettings,
    /// Environment variables every sync container gets (log level and format, OTLP export
    /// settings). Never credentials: these are visible to anyone who can read Jobs.
    pub env: Vec<(String, String)>,
}

impl JobTemplate {
    /// A template with `image` and nothing else set: the ServiceAccount
    /// [`WORKER_SERVICE_ACCOUNT`], no defaults, no extra environment.
    pub fn new(image: &str) -> Self {
        JobTemplate {
            image: image.to_string(),
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            service_account: WORKER_SERVICE_ACCOUNT.to_string(),
            defaults: JobSettings::default(),
            env: Vec::new(),
        }
    }
}

/// `settings` with every unset field taken from `defaults` (field by field, not merged
/// inside a field: a channel's `resources` replace the default `resources` whole).
pub fn job_settings_with_defaults(
    settings: Option<&JobSettings>,
    defaults: &JobSettings,
) -> JobSettings {
    let own = settings.cloned().unwrap_or_default();
    JobSettings {
        resources: own.resources.or_else(|| defaults.resources.clone()),
        node_selector: own.node_selector.or_else(|| defaults.node_selector.clone()),
        tolerations: own.tolerations.or_else(|| defaults.tolerations.clone()),
        affinity: own.affinity.or_else(|| defaults.affinity.clone()),
        active_deadline_seconds: own
            .active_deadline_seconds
            .or(defaults.active_deadline_seconds),
        backoff_limit: own.backoff_limit.or(defaults.backoff_limit),
        successful_jobs_history_limit: own
            .successful_jobs_history_limit
            .or(defaults.successful_jobs_history_limit),
        failed_jobs_history_limit: own
            .failed_jobs_history_limit
            .or(defaults.failed_jobs_history_limit),
    }
}

/// `channel` with its `spec.job` completed from `defaults`, as the controller plans and
/// renders it (the stored object is not changed).
pub fn with_job_defaults(channel: &MailChannel, defaults: &JobSettings) -> MailChannel {
    let mut channel = channel.clone();
    if *defaults != JobSettings::default() {
        channel.spec.job = Some(job_settings_with_defaults(
            channel.spec.job.as_ref(),
            defaults,
        ));
    }
    channel
}

fn fnv32(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// `name` cut to `max` characters, with a hash of the whole name at the end when cut, so
/// that distinct long names stay distinct (and the result is still a DNS label).
pub fn bounded(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = format!("{:08x}", fnv32(name));
    let keep = max.saturating_sub(hash.len() + 1);
    let head: String = name.chars().take(keep).collect();
    format!("{}-{hash}", head.trim_end_matches(['-', '.']))
}

/// The Job name of a run of `channel` (at most 63 characters: it becomes a label value).
pub fn job_name(channel: &str, run: &RunKind) -> String {
    let suffix = run.suffix();
    format!("{}-{suffix}", bounded(channel, 62 - suffix.len()))
}

/// The ConfigMap holding a channel's rendered config.
pub fn config_map_name(channel: &str) -> String {
    format!("{}-mailsync", bounded(channel, 253 - 9))
}

/// The labels of everything made for `channel`.
pub fn channel_labels(channel: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (CHANNEL_LABEL.to_string(), bounded(channel, 63)),
    ])
}

fn owner_reference(channel: &MailChannel) -> Option<OwnerReference> {
    channel.controller_owner_ref(&())
}

/// The ConfigMap with the rendered config of `channel`.
pub fn config_map(channel: &MailChannel, rendered: &RenderedChannel) -> ConfigMap {
    let name = channel.metadata.name.clone().unwrap_or_default();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&name)),
            namespace: channel.metadata.namespace.clone(),
            labels: Some(channel_labels(&name)),
            owner_references: owner_reference(channel).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_string(),
            rendered.config.clone(),
        )])),
        ..ConfigMap::default()
    }
}

fn volume_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index}")
}

/// The sync Job of one run of `channel`. `trace_env` carries the trace context of the
/// reconcile that starts it (`TRACEPARENT`, see [`crate::telemetry::trace_context_env`]), so
/// that the sync's spans join that trace.
pub fn sync_job(
    channel: &MailChannel,
    rendered: &RenderedChannel,
    run: &RunKind,
    template: &JobTemplate,
    trace_env: &[(String, String)],
) -> Job {
    let name = channel.metadata.name.clone().unwrap_or_default();
    let namespace = channel.metadata.namespace.clone().unwrap_or_default();
    let job_name = job_name(&name, run);
    let settings = job_settings_with_defaults(channel.spec.job.as_ref(), &template.defaults);

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: format!("/{}", super::render::CONFIG_DIR),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        },
    ];
    for (index, secret) in rendered.secrets().iter().enumerate() {
        let volume = volume_name("secret", index);
        volumes.push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: format!("/{}/{secret}", super::render::SECRETS_DIR),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    for (index, config_map) in rendered.config_maps().iter().enumerate() {
        let volume = volume_name("configmap", index);
        volumes.push(Volume {
            name: volume.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: format!("/{}/{config_map}", super::render::CONFIG_MAPS_DIR),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let claims: std::collections::BTreeSet<&String> =
        rendered.claims.iter().map(|(claim, _)| claim).collect();
    for (index, claim) in claims.into_iter().enumerate() {
        let volume = volume_name("claim", index);
        volumes.push(Volume {
            name: volume.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
        for (_, sub_path) in rendered.claims.iter().filter(|(c, _)| c == claim) {
            let mount_path = if sub_path.is_empty() {
                format!("/{}/{claim}", super::render::VOLUMES_DIR)
            } else {
                format!("/{}/{claim}/{sub_path}", super::render::VOLUMES_DIR)
            };
            mounts.push(VolumeMount {
                name: volume.clone(),
                mount_path,
                sub_path: (!sub_path.is_empty()).then(|| sub_path.clone()),
                ..VolumeMount::default()
            });
        }
    }

    let mut env = vec![
        EnvVar {
            name: env::CHANNEL.into(),
            value: Some(name.clone()),
            ..EnvVar::default()
        },
        EnvVar {
            name: env::NAMESPACE.into(),
            value: Some(namespace.clone()),
            ..EnvVar::default()
        },
        EnvVar {
            name: env::JOB.into(),
            value: Some(job_name.clone()),
            ..EnvVar::default()
        },
        EnvVar {
            name: "HOME".into(),
            value: Some("/tmp".into()),
            ..EnvVar::default()
        },
    ];
    for (variable, value) in template.env.iter().chain(trace_env) {
        // An empty value (e.g. an empty TRACESTATE) says nothing; the API server would
        // store the variable without a value.
        if value.is_empty() || env.iter().any(|existing| existing.name == *variable) {
            continue;
        }
        env.push(EnvVar {
            name: variable.clone(),
            value: Some(value.clone()),
            ..EnvVar::default()
        });
    }
    let mut annotations = BTreeMap::from([
        (CHANNEL_ANNOTATION.to_string(), name.clone()),
        (RUN_KIND_ANNOTATION.to_string(), run.label().to_string()),
    ]);
    if let RunKind::Manual(token) = run {
        env.push(EnvVar {
            name: env::MANUAL_TRIGGER.into(),
            value: Some(token.clone()),
            ..EnvVar::default()
        });
        annotations.insert(MANUAL_ANNOTATION.to_string(), token.clone());
    }
    if !rendered.imap_stores.is_empty() {
        let stores: Vec<&str> = rendered.imap_stores.iter().map(String::as_str).collect();
        annotations.insert(IMAP_STORES_ANNOTATION.to_string(), stores.join(","));
    }

    let container = Container {
        name: "sync".into(),
        image: Some(template.image.clone()),
        image_pull_policy: template.image_pull_policy.clone(),
        command: Some(vec!["mailsync".into(), "worker".into()]),
        args: Some(vec!["--config".into(), CONFIG_FILE.into()]),
        working_dir: Some("/".into()),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: settings.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let labels = channel_labels(&name);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name),
            namespace: Some(namespace),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            owner_references: owner_reference(channel).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(settings.backoff_limit.unwrap_or(2)),
            active_deadline_seconds: settings.active_deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(template.service_account.clone()),
                    image_pull_secrets: (!template.image_pull_secrets.is_empty()).then(|| {
                        template
                            .image_pull_secrets
                            .iter()
                            .map(|name| LocalObjectReference { name: name.clone() })
                            .collect()
                    }),
                    automount_service_account_token: Some(true),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(WORKER_UID),
                        run_as_group: Some(WORKER_UID),
                        fs_group: Some(WORKER_UID),
                        fs_group_change_policy: Some("OnRootMismatch".into()),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    node_selector: settings.node_selector.clone(),
                    tolerations: settings.tolerations.clone(),
                    affinity: settings.affinity.clone(),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_labels_and_distinct_per_run() {
        let long = "a".repeat(200);
        for run in [
            RunKind::Schedule(1_800_000_000),
            RunKind::Manual("now".into()),
            RunKind::Spec(7),
        ] {
            let name = job_name(&long, &run);
            assert!(name.len() <= 63, "{name}");
            assert_eq!(name, job_name(&long, &run));
        }
        assert_ne!(
            job_name("inbox", &RunKind::Manual("1".into())),
            job_name("inbox", &RunKind::Manual("2".into()))
        );
        assert_eq!(
            job_name("inbox", &RunKind::Schedule(120)),
            "inbox-s2".to_string()
        );
        assert_ne!(bounded(&"b".repeat(100), 63), bounded(&"b".repeat(101), 63));
    }
}
