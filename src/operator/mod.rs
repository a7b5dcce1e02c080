//! The Kubernetes side of mailsync: the `MailStore` and `MailChannel` custom resources
//! (group `mailsync.io`, version `v1alpha1`) as Rust types, and their CustomResourceDefinitions
//! as YAML (`mailsync crds`, checked in under `crds/`).
//!
//! - [`store`]: `MailStore`, one IMAP account or Maildir tree;
//! - [`channel`]: `MailChannel`, what to sync between two stores and when;
//! - [`status`]: the channel's status;
//! - [`common`]: references and condition names shared by both;
//! - [`metrics`]: the controller's Prometheus metrics and `/metrics`, `/healthz`, `/readyz`;
//! - [`leader`]: leader election on a Lease among controller replicas;
//! - [`settings`]: the controller's settings from the chart's environment variables;
//! - [`serve`]: the `mailsync operator` process (telemetry, metrics server, election, shutdown);
//!
//! and the controller (`mailsync operator`) that runs the syncs as Jobs:
//!
//! - [`render`]: a channel and its stores as an mbsyncrc, plus what the Pod mounts;
//! - [`schedule`]: cron schedules in a time zone, and the per-channel jitter;
//! - [`job`]: the ConfigMap and the hardened sync Job of a run;
//! - [`reconcile`]: the controller's decisions as a pure function;
//! - [`controller`]: the kube runtime controller applying them.
//!
//! The Job's container runs `mailsync worker` ([`crate::worker`]), which writes the sync's
//! result into the status. Status fields have one writer each: the controller owns
//! `observedGeneration`, `Synchronizing`, `CredentialsInvalid`, `lastSyncStartTime`,
//! `nextSyncTime`, `lastScheduleTime` and `lastRunGeneration`; the worker owns `Ready`,
//! `Degraded`, `latestResult`, `lastSyncTime`, `lastSyncDuration`, `totals`, `mailboxes`
//! and `lastManualSync`.
//!
//! Schema rules the types follow, because of how kube and schemars turn Rust into a
//! structural schema the API server accepts:
//!
//! - no enums with data (internally tagged or untagged enums, flattened enums): a choice
//!   between alternatives is a struct of `Option`s plus a CEL rule "exactly one of";
//! - every `Option` field has `skip_serializing_if = "Option::is_none"`, so an unset field is
//!   left out rather than sent as `null` (a `null` would also clear the field in a merge
//!   patch);
//! - `Option<Enum>` fields get a `null` among their enum values from schemars; [`crds`]
//!   removes it ([`tidy_crd`]);
//! - lists say how they merge: `conditions` is a map keyed by `type`, `status.mailboxes` by
//!   `name`, value lists are sets;
//! - cross-field and format rules are CEL `x-kubernetes-validations` with messages that say
//!   what to write instead.

pub mod channel;
pub mod common;
pub mod controller;
pub mod job;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod schedule;
pub mod serve;
pub mod settings;
pub mod status;
pub mod store;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

pub use channel::{MailChannel, MailChannelSpec};
pub use common::condition;
pub use status::MailChannelStatus;
pub use store::{MailStore, MailStoreSpec, MailStoreStatus};

/// The API group of the resources.
pub const API_GROUP: &str = "mailsync.io";
/// The API version of the resources.
pub const API_VERSION: &str = "v1alpha1";

/// Could not render a CRD as YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the CustomResourceDefinition {name} as YAML: {message}")]
pub struct CrdRenderError {
    pub name: String,
    pub message: String,
}

/// One CRD as a YAML document, with the file name it has under `crds/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdDocument {
    /// `<plural>.<group>.yaml`.
    pub file_name: String,
    /// The YAML text, starting with a comment line and ending in a newline.
    pub yaml: String,
}

/// The CustomResourceDefinitions of all mailsync resources, in a fixed order. Use these rather
/// than `MailStore::crd()` / `MailChannel::crd()`: they are tidied (see [`tidy_crd`]).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![MailStore::crd(), MailChannel::crd()];
    crds.iter_mut().for_each(tidy_crd);
    crds
}

/// Removes what schemars leaves behind for `Option<Enum>` fields: a `null` among the `enum`
/// values (the field is already `nullable`, and a `null` value is pruned by the API server).
pub fn tidy_crd(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|validation| validation.open_api_v3_schema.as_mut())
        {
            remove_null_enum_values(schema);
        }
    }
}

fn remove_null_enum_values(schema: &mut JSONSchemaProps) {
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|value| !value.0.is_null());
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|properties| properties.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten());
    for child in children {
        remove_null_enum_values(child);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => remove_null_enum_values(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(remove_null_enum_values)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(additional)) = schema.additional_properties.as_mut() {
        remove_null_enum_values(additional);
    }
}

/// Renders every CRD as a YAML document.
pub fn crd_documents() -> Result<Vec<CrdDocument>, CrdRenderError> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let body = serde_saphyr::to_string(&crd).map_err(|error| CrdRenderError {
                name: name.clone(),
                message: error.to_string(),
            })?;
            Ok(CrdDocument {
                file_name: format!("{name}.yaml"),
                yaml: format!("# Generated by `mailsync crds`; do not edit.\n{body}"),
            })
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream (what `mailsync crds` prints).
pub fn crds_yaml() -> Result<String, CrdRenderError> {
    Ok(join_documents(&crd_documents()?))
}

/// Joins YAML documents into one stream, separated by `---` lines.
pub fn join_documents(documents: &[CrdDocument]) -> String {
    let texts: Vec<&str> = documents.iter().map(|doc| doc.yaml.as_str()).collect();
    texts.join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every `enum` list in `value` (a schema as JSON), with its JSON path.
    fn enums(value: &Value, path: &str, found: &mut Vec<(String, Vec<Value>)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "enum" {
                        found.push((
                            path.to_string(),
                            child.as_array().cloned().unwrap_or_default(),
                        ));
                    } else {
                        enums(child, &format!("{path}.{key}"), found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| enums(item, path, found)),
            _ => {}
        }
    }

    #[test]
    fn tidy_crd_removes_null_from_option_enum_values() {
        let raw = serde_json::to_value(MailChannel::crd()).expect("CRD serializes");
        let mut raw_enums = Vec::new();
        enums(&raw, "", &mut raw_enums);
        assert!(
            raw_enums
                .iter()
                .any(|(_, values)| values.contains(&Value::Null)),
            "schemars no longer puts null into Option<Enum> values: tidy_crd may be unneeded"
        );
        for crd in crds() {
            let mut found = Vec::new();
            enums(
                &serde_json::to_value(&crd).expect("CRD serializes"),
                "",
                &mut found,
            );
            let with_null: Vec<&String> = found
                .iter()
                .filter(|(_, values)| values.contains(&Value::Null))
                .map(|(path, _)| path)
                .collect();
            assert!(
                with_null.is_empty(),
                "null enum values left at {with_null:?}"
            );
        }
        let mut tidy = Vec::new();
        enums(
            &serde_json::to_value(&crds()[1]).expect("CRD serializes"),
            "",
            &mut tidy,
        );
        let create = tidy
            .iter()
            .find(|(path, _)| path.ends_with(".spec.properties.create"))
            .map(|(_, values)| values.clone());
        assert_eq!(
            create,
            Some(vec![
                "None".into(),
                "Far".into(),
                "Near".into(),
                "Both".into()
            ])
        );
    }

    #[test]
    fn crds_have_status_subresource_names_and_category() {
        let crds = crds();
        let names: Vec<_> = crds.iter().map(|crd| crd.metadata.name.clone()).collect();
        assert_eq!(
            names,
            [
                Some("mailstores.mailsync.io".to_string()),
                Some("mailchannels.mailsync.io".to_string())
            ]
        );
        for (crd, short_name) in crds.iter().zip(["mst", "mch"]) {
            assert_eq!(crd.spec.group, API_GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(
                crd.spec.names.short_names,
                Some(vec![short_name.to_string()])
            );
            assert_eq!(
                crd.spec.names.categories,
                Some(vec!["mailsync".to_string()])
            );
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, API_VERSION);
            let status = version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref());
            assert!(
                status.is_some(),
                "{:?} has no status subresource",
                crd.metadata.name
            );
        }
    }

    #[test]
    fn unset_fields_are_left_out_not_sent_as_null() {
        let channel = MailChannel::new(
            "c",
            MailChannelSpec {
                trigger: Some(channel::Trigger::default()),
                job: Some(channel::JobSettings::default()),
                ..Default::default()
            },
        );
        let json = serde_json::to_string(&channel).expect("serializes");
        assert!(!json.contains("null"), "{json}");
        let store = MailStore::new(
            "s",
            MailStoreSpec {
                imap: Some(store::ImapStore {
                    auth: Some(store::ImapAuth::default()),
                    tls: Some(store::ImapTls::default()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        let json = serde_json::to_string(&store).expect("serializes");
        assert!(!json.contains("null"), "{json}");
        assert!(json.contains(r#""tls":{"mode":"Implicit"}"#), "{json}");
    }

    #[test]
    fn crds_yaml_joins_the_documents() {
        let documents = crd_documents().expect("CRDs render");
        let yaml = crds_yaml().expect("CRDs render");
        assert_eq!(yaml.matches("\n---\n").count(), documents.len() - 1);
        for document in &documents {
            assert!(document.yaml.starts_with("# Generated by `mailsync crds`"));
            assert!(yaml.contains(&document.yaml));
        }
    }
}
