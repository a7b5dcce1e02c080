//! Types shared by the `MailStore` and `MailChannel` resources: references to Secrets,
//! ConfigMaps, PersistentVolumeClaims and other MailStores, and the condition types and reasons
//! the operator reports.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One key of a Secret in the resource's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// One key of a ConfigMap in the resource's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the ConfigMap's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A PersistentVolumeClaim in the resource's namespace, and the folder on it to use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRef {
    /// Name of the PersistentVolumeClaim.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Folder on the volume to use as the root (relative, no `..`); empty or unset: the
    /// volume's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new(RELATIVE_PATH_RULE).message(RELATIVE_PATH_MESSAGE))]
    pub sub_path: Option<String>,
}

/// CEL rule: a relative path without `..` components.
pub(crate) const RELATIVE_PATH_RULE: &str =
    "!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')";
pub(crate) const RELATIVE_PATH_MESSAGE: &str =
    "must be a relative path (no leading '/') without '..' components";

/// A reference to a `MailStore` in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreRef {
    /// Name of the MailStore.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A side of a channel: the far side (usually the server) or the near side (usually local).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Side {
    Far,
    #[default]
    Near,
}

/// Which sides a mailbox operation (create, remove, expunge) applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Sides {
    #[default]
    None,
    Far,
    Near,
    Both,
}

impl Sides {
    /// Whether the operation applies to `side`.
    pub fn includes(self, side: Side) -> bool {
        matches!(
            (self, side),
            (Sides::Both, _) | (Sides::Far, Side::Far) | (Sides::Near, Side::Near)
        )
    }
}

/// Condition types and reasons written to `status.conditions`.
pub mod condition {
    /// The resource is usable: for a MailStore, its settings and credentials check out; for a
    /// MailChannel, its last sync succeeded and nothing blocks the next one.
    pub const READY: &str = "Ready";
    /// What the channel's sync loop is doing; the reason says it (see the `REASON_*`
    /// constants).
    pub const SYNCHRONIZING: &str = "Synchronizing";
    /// Some mailboxes failed or were skipped while others synced.
    pub const DEGRADED: &str = "Degraded";
    /// A referenced Secret or key is missing, or the server refused the login.
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";

    /// Synchronizing=True: a sync Job is running.
    pub const REASON_SYNC_IN_PROGRESS: &str = "SyncInProgress";
    /// Synchronizing=False: waiting for the next scheduled time.
    pub const REASON_WAITING_FOR_SCHEDULE: &str = "WaitingForSchedule";
    /// Synchronizing=False: no schedule; waiting for `spec.trigger.manual` to change.
    pub const REASON_WAITING_FOR_MANUAL: &str = "WaitingForManual";
    /// Synchronizing=False: `spec.suspend` is set.
    pub const REASON_SUSPENDED: &str = "Suspended";
    /// Synchronizing=False: the last attempt failed; the message says why.
    pub const REASON_ERROR: &str = "Error";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_include_the_sides_they_name() {
        assert!(Sides::Both.includes(Side::Far) && Sides::Both.includes(Side::Near));
        assert!(Sides::Far.includes(Side::Far) && !Sides::Far.includes(Side::Near));
        assert!(Sides::Near.includes(Side::Near) && !Sides::Near.includes(Side::Far));
        assert!(!Sides::None.includes(Side::Far) && !Sides::None.includes(Side::Near));
    }
}
