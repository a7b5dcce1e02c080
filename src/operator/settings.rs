//! What `mailsync operator` reads from its environment, as the chart's Deployment sets it
//! (`charts/mailsync/templates/deployment.yaml`): which namespaces to watch, how the sync Jobs
//! look (image, pull policy and Secrets, ServiceAccount, defaults of `spec.job`, log level),
//! and which telemetry settings the Jobs inherit. The metrics address and leader election have
//! their own readers ([`super::metrics::address_from_lookup`],
//! [`super::leader::config_from_lookup`]); logs and traces are [`crate::telemetry`]'s.
//!
//! | variable | meaning |
//! |---|---|
//! | `MAILSYNC_WATCH_NAMESPACES` | comma-separated namespaces; empty: all |
//! | `MAILSYNC_WORKER_IMAGE` | image of the Jobs, unless `--image` names one |
//! | `MAILSYNC_WORKER_IMAGE_PULL_POLICY` | `imagePullPolicy` of the sync container |
//! | `MAILSYNC_WORKER_IMAGE_PULL_SECRETS` | JSON list of `{"name": …}` |
//! | `MAILSYNC_WORKER_SERVICE_ACCOUNT` | ServiceAccount of the sync Pods (default `mailsync-worker`) |
//! | `MAILSYNC_WORKER_LOG_LEVEL` | `RUST_LOG` of the sync Pods |
//! | `MAILSYNC_JOB_DEFAULTS` | JSON object shaped like MailChannel `spec.job` |
//! | `MAILSYNC_LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | passed on to the sync Pods as they are |

use serde::Deserialize;

use super::channel::JobSettings;
use super::job::{JobTemplate, WORKER_SERVICE_ACCOUNT};
use crate::telemetry::LOG_FORMAT_ENV;

/// The image of the Jobs when neither `--image` nor `MAILSYNC_WORKER_IMAGE` names one.
pub const DEFAULT_IMAGE: &str = concat!("mailsync:", env!("CARGO_PKG_VERSION"));

/// Variables the sync Pods get with the controller's value, when it has one.
const INHERITED_ENV: [&str; 5] = [
    LOG_FORMAT_ENV,
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
];

/// Which objects the controller sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (cluster-wide watches, a ClusterRole).
    AllNamespaces,
    /// Only these namespaces (one set of namespaced watches each, a Role in each).
    Namespaces(Vec<String>),
}

impl WatchScope {
    /// The scope `MAILSYNC_WATCH_NAMESPACES` describes: comma-separated names, blanks and
    /// repeats ignored; nothing: all namespaces.
    pub fn parse(text: &str) -> Self {
        let mut namespaces: Vec<String> = Vec::new();
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            if !namespaces.iter().any(|known| known == name) {
                namespaces.push(name.to_string());
            }
        }
        if namespaces.is_empty() {
            WatchScope::AllNamespaces
        } else {
            WatchScope::Namespaces(namespaces)
        }
    }
}

/// The controller's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorSettings {
    pub scope: WatchScope,
    /// How the sync Jobs look.
    pub template: JobTemplate,
}

/// A setting in the environment is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?}: expected {expected}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

#[derive(Deserialize)]
struct PullSecret {
    name: String,
}

impl OperatorSettings {
    /// The settings for an `--image` argument (`None`: not given) and the environment read
    /// through `lookup` (empty values count as unset).
    pub fn from_lookup(
        image: Option<&str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let lookup = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let image = image
            .map(str::to_string)
            .or_else(|| lookup("MAILSYNC_WORKER_IMAGE"))
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
        let mut template = JobTemplate::new(&image);
        template.image_pull_policy = match lookup("MAILSYNC_WORKER_IMAGE_PULL_POLICY") {
            None => None,
            Some(policy) => match policy.trim() {
                "Always" | "IfNotPresent" | "Never" => Some(policy.trim().to_string()),
                _ => {
                    return Err(SettingsError {
                        variable: "MAILSYNC_WORKER_IMAGE_PULL_POLICY",
                        value: policy,
                        expected: "Always, IfNotPresent or Never".into(),
                    });
                }
            },
        };
        if let Some(text) = lookup("MAILSYNC_WORKER_IMAGE_PULL_SECRETS") {
            let secrets: Vec<PullSecret> =
                serde_json::from_str(&text).map_err(|error| SettingsError {
                    variable: "MAILSYNC_WORKER_IMAGE_PULL_SECRETS",
                    value: text.clone(),
                    expected: format!("a JSON list like [{{\"name\": \"regcred\"}}] ({error})"),
                })?;
            template.image_pull_secrets = secrets.into_iter().map(|secret| secret.name).collect();
        }
        if let Some(account) = lookup("MAILSYNC_WORKER_SERVICE_ACCOUNT") {
            template.service_account = account.trim().to_string();
        } else {
            template.service_account = WORKER_SERVICE_ACCOUNT.to_string();
        }
        if let Some(text) = lookup("MAILSYNC_JOB_DEFAULTS") {
            template.defaults =
                serde_json::from_str::<JobSettings>(&text).map_err(|error| SettingsError {
                    variable: "MAILSYNC_JOB_DEFAULTS",
                    value: text.clone(),
                    expected: format!("a JSON object shaped like MailChannel spec.job ({error})"),
                })?;
        }
        if let Some(level) = lookup("MAILSYNC_WORKER_LOG_LEVEL") {
            template.env.push(("RUST_LOG".to_string(), level));
        }
        for variable in INHERITED_ENV {
            if let Some(value) = lookup(variable) {
                template.env.push((variable.to_string(), value));
            }
        }
        let scope = WatchScope::parse(&lookup("MAILSYNC_WATCH_NAMESPACES").unwrap_or_default());
        Ok(OperatorSettings { scope, template })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::lookup;

    #[test]
    fn watch_namespaces_are_a_comma_separated_list() {
        assert_eq!(WatchScope::parse(""), WatchScope::AllNamespaces);
        assert_eq!(WatchScope::parse(" , "), WatchScope::AllNamespaces);
        assert_eq!(
            WatchScope::parse("mail, team-b,mail"),
            WatchScope::Namespaces(vec!["mail".into(), "team-b".into()])
        );
    }

    #[test]
    fn the_charts_environment_shapes_the_jobs() {
        let settings = OperatorSettings::from_lookup(
            None,
            lookup(&[
                ("MAILSYNC_WATCH_NAMESPACES", "a,b"),
                ("MAILSYNC_WORKER_IMAGE", "registry/mailsync:2"),
                ("MAILSYNC_WORKER_IMAGE_PULL_POLICY", "Always"),
                ("MAILSYNC_WORKER_IMAGE_PULL_SECRETS", r#"[{"name":"regcred"}]"#),
                ("MAILSYNC_WORKER_SERVICE_ACCOUNT", "sync-pods"),
                ("MAILSYNC_WORKER_LOG_LEVEL", "debug"),
                (
                    "MAILSYNC_JOB_DEFAULTS",
                    r#"{"backoffLimit":5,"activeDeadlineSeconds":600,"resources":{"limits":{"memory":"512Mi"}}}"#,
                ),
                ("MAILSYNC_LOG_FORMAT", "json"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_SERVICE_NAME", "mailsync"),
                ("OTEL_RESOURCE_ATTRIBUTES", ""),
                ("POD_NAME", "not passed on"),
            ]),
        )
        .expect("valid settings");
        assert_eq!(
            settings.scope,
            WatchScope::Namespaces(vec!["a".into(), "b".into()])
        );
        let template = &settings.template;
        assert_eq!(template.image, "registry/mailsync:2");
        assert_eq!(template.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(template.image_pull_secrets, ["regcred"]);
        assert_eq!(template.service_account, "sync-pods");
        assert_eq!(template.defaults.backoff_limit, Some(5));
        assert_eq!(template.defaults.active_deadline_seconds, Some(600));
        assert!(template.defaults.resources.is_some());
        let env: Vec<(&str, &str)> = template
            .env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("RUST_LOG", "debug"),
                ("MAILSYNC_LOG_FORMAT", "json"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_SERVICE_NAME", "mailsync"),
            ]
        );
    }

    #[test]
    fn the_image_argument_wins_and_defaults_apply() {
        let settings = OperatorSettings::from_lookup(
            Some("cli/image:1"),
            lookup(&[("MAILSYNC_WORKER_IMAGE", "env/image:1")]),
        )
        .expect("valid settings");
        assert_eq!(settings.template.image, "cli/image:1");
        assert_eq!(settings.scope, WatchScope::AllNamespaces);
        assert_eq!(settings.template.service_account, WORKER_SERVICE_ACCOUNT);
        assert!(settings.template.env.is_empty());
        let settings = OperatorSettings::from_lookup(None, lookup(&[])).expect("valid");
        assert_eq!(settings.template.image, DEFAULT_IMAGE);
    }

    #[test]
    fn malformed_settings_name_the_variable() {
        for (variable, value) in [
            ("MAILSYNC_JOB_DEFAULTS", "{not json"),
            ("MAILSYNC_JOB_DEFAULTS", r#"{"backoffLimit":"many"}"#),
            ("MAILSYNC_WORKER_IMAGE_PULL_SECRETS", "regcred"),
            ("MAILSYNC_WORKER_IMAGE_PULL_POLICY", "Sometimes"),
        ] {
            let error = OperatorSettings::from_lookup(None, lookup(&[(variable, value)]))
                .expect_err("refused");
            assert_eq!(error.variable, variable);
            assert!(error.to_string().contains(variable), "{error}");
        }
    }
}
