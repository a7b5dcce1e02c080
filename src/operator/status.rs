//! The status of a `MailChannel`: conditions, sync times, the latest result, totals and a
//! bounded per-mailbox summary. The authoritative sync state stays in the state files on the
//! volume; this is a report for people and tools, small enough for etcd.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most entries in `status.mailboxes`; mailboxes beyond it are only counted in the totals.
pub const MAX_MAILBOX_STATUSES: usize = 500;
/// Longest `latestResult.message` and `mailboxes[].lastError`, in characters (as the API
/// server counts `maxLength`).
pub const MAX_STATUS_MESSAGE_CHARS: usize = 1024;

/// `text` cut to [`MAX_STATUS_MESSAGE_CHARS`] characters (the end replaced by `…`), so that a
/// long error does not make the API server reject the whole status update.
pub fn bounded_message(text: &str) -> String {
    if text.chars().count() <= MAX_STATUS_MESSAGE_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_STATUS_MESSAGE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// What the operator knows about a channel's syncs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailChannelStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Synchronizing` (reasons SyncInProgress, WaitingForSchedule,
    /// WaitingForManual, Suspended, Error), `Degraded`, `CredentialsInvalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Option<Vec<Condition>>,
    /// When the running sync started; unset when none is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_start_time: Option<Time>,
    /// When the last successful sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// How long the last successful sync took, as a Go duration (`1m30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub last_sync_duration: Option<String>,
    /// When the next scheduled sync starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_time: Option<Time>,
    /// The scheduled time of the last run the controller started for the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// Without schedule and manual trigger: the `metadata.generation` of the last run the
    /// controller started (one run per spec change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_generation: Option<i64>,
    /// The `spec.trigger.manual` value of the last manual sync that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub last_manual_sync: Option<String>,
    /// Outcome of the most recent sync attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_result: Option<SyncResult>,
    /// Sums over all mailboxes of the channel after the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<SyncTotals>,
    /// Per mailbox, at most 500 (mailboxes with problems first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MAILBOX_STATUSES))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub mailboxes: Option<Vec<MailboxStatus>>,
}

/// The outcome of one sync attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    pub result: SyncOutcome,
    /// Short summary or the first error, at most 1024 characters (see [`bounded_message`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_MESSAGE_CHARS))]
    pub message: Option<String>,
    /// Exit status of the sync process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// What the attempt changed on the far side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far_changes: Option<SideChanges>,
    /// What the attempt changed on the near side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near_changes: Option<SideChanges>,
}

/// How a sync attempt ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SyncOutcome {
    /// Every mailbox synced.
    #[default]
    Succeeded,
    /// Some mailboxes failed or were skipped.
    Partial,
    /// The run failed as a whole.
    Failed,
}

/// Counts of changes made to one side in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SideChanges {
    /// Messages added.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub added: i64,
    /// Messages whose flags were changed.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub flags_updated: i64,
    /// Messages marked deleted because they vanished on the other side.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub deleted: i64,
    /// Messages expunged.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub expunged: i64,
}

/// Sums over all mailboxes of a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncTotals {
    /// Mailboxes the channel selected (also those not listed in `status.mailboxes`).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub mailboxes: i64,
    /// Mailboxes whose last sync failed or was skipped.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub mailboxes_with_errors: i64,
    /// Messages on the far side.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub messages_far: i64,
    /// Messages on the near side.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub messages_near: i64,
}

/// One mailbox pair of a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxStatus {
    /// Canonical mailbox name (without the sides' prefixes).
    #[schemars(length(min = 1, max = 1024))]
    pub name: String,
    /// The far mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far: Option<MailboxSideStatus>,
    /// The near mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<MailboxSideStatus>,
    pub state: MailboxState,
    /// When this mailbox last synced without error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// The last error, at most 1024 characters (see [`bounded_message`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_MESSAGE_CHARS))]
    pub last_error: Option<String>,
}

/// One side of a mailbox pair, as the sync state records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSideStatus {
    /// UIDVALIDITY of the mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295_i64))]
    pub uid_validity: Option<i64>,
    /// UIDNEXT of the mailbox (the UID the next message will get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295_i64))]
    pub uid_next: Option<i64>,
    /// Messages in the mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub messages: Option<i64>,
}

/// State of a mailbox pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MailboxState {
    /// Not synchronized yet.
    #[default]
    Pending,
    /// The last sync succeeded.
    InSync,
    /// The last sync of this mailbox failed.
    Error,
    /// Skipped, e.g. too many unread messages for MaxMessages.
    Skipped,
    /// A side's UIDVALIDITY changed; the pair needs attention.
    UidValidityChanged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_message_keeps_short_text_and_cuts_long_text_at_a_character() {
        assert_eq!(bounded_message("login failed"), "login failed");
        let exact = "é".repeat(MAX_STATUS_MESSAGE_CHARS);
        assert_eq!(bounded_message(&exact), exact);
        let long = "é".repeat(MAX_STATUS_MESSAGE_CHARS + 1);
        let cut = bounded_message(&long);
        assert_eq!(cut.chars().count(), MAX_STATUS_MESSAGE_CHARS);
        assert!(cut.ends_with("é…"));
    }
}
