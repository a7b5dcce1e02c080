//! The `MailChannel` resource: what an mbsync `Channel` section says (two stores, the
//! mailboxes, what to propagate), plus when to run (`trigger`, `suspend`) and how to run the
//! sync Job (`job`).
//!
//! mbsync keywords and their fields here:
//!
//! | mbsync | MailChannel |
//! |---|---|
//! | `Far`, `Near` (`:store:mailbox`) | `far.storeRef.name` + `far.mailbox`, `near.…` |
//! | `Patterns` | `patterns` |
//! | `Sync` | `sync.pull` (modifies near), `sync.push` (modifies far) |
//! | `Create`, `Remove`, `Expunge`, `ExpungeSolo` | `create`, `remove`, `expunge`, `expungeSolo` |
//! | `CopyArrivalDate`, `MaxMessages`, `ExpireSide`, `ExpireUnread` | same names, camelCase |
//! | `MaxSize` | `maxMessageSize` (for this channel's run only) |
//! | `SyncState` | `syncState` |
//! | global `BufferLimit`, `FieldDelimiter` | `bufferLimit`, `syncState.fieldDelimiter` |
//!
//! mbsync's global defaults for Sync, Create, … have no counterpart: every MailChannel says
//! what it wants, and the unset fields mean mbsync's built-in defaults. Groups are replaced by
//! Kubernetes labels.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Side, Sides, StoreRef, VolumeRef};
use super::status::MailChannelStatus;
use super::store::{BYTE_SIZE_MESSAGE, BYTE_SIZE_RULE};

/// Regular expression (RE2, as CEL's `matches` uses) for a standard 5-field cron expression:
/// minute, hour, day of month, month (1-12 or JAN-DEC), day of week (0-6 or SUN-SAT); each
/// field a comma-separated list of `*`, values or ranges, each optionally with `/step`. Or
/// one of the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
/// `@midnight`, `@hourly`.
pub const CRON_REGEX: &str = concat!(
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|",
    r"\s*",
    r"(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?(,(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?)*",
    r"\s+",
    r"(\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]+)?(,(\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]+)?)*",
    r"\s+",
    r"(\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]+)?(,(\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]+)?)*",
    r"\s+",
    r"(?i:(\*|(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[0-9]+)?(,(\*|(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[0-9]+)?)*)",
    r"\s+",
    r"(?i:(\*|([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[0-9]+)?(,(\*|([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[0-9]+)?)*)",
    r"\s*)$"
);

/// Regular expression for a schedule with six or more fields (a seconds field, Quartz style).
pub const CRON_TOO_MANY_FIELDS_REGEX: &str = r"^\s*\S+(\s+\S+){5,}\s*$";

/// Regular expression for a schedule that sets its own time zone (`TZ=…`, `CRON_TZ=…`).
pub const CRON_TIME_ZONE_PREFIX_REGEX: &str = r"^\s*(CRON_TZ|TZ)=";

/// Regular expression for an IANA time zone name (`UTC`, `Europe/Berlin`, `Etc/GMT+2`).
pub const TIME_ZONE_REGEX: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";

/// A channel: two stores and the mailboxes to synchronize between them.
// clippy mistakes the repeated `type_ = …` inside the printcolumn lists for duplicated
// attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "mailsync.io",
    version = "v1alpha1",
    kind = "MailChannel",
    plural = "mailchannels",
    namespaced,
    status = "MailChannelStatus",
    shortname = "mch",
    category = "mailsync",
    derive = "PartialEq",
    doc = "Synchronizes mailboxes between two MailStores, on a schedule or on demand, in a Job.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Synchronizing\")].reason",
        description = "What the sync loop is doing"
    ),
    printcolumn(
        name = "Last Sync",
        type_ = "date",
        json_path = ".status.lastSyncTime",
        description = "When the last successful sync finished"
    ),
    printcolumn(
        name = "Next Sync",
        type_ = "string",
        format = "date-time",
        json_path = ".status.nextSyncTime",
        description = "When the next scheduled sync starts"
    ),
    printcolumn(
        name = "Messages",
        type_ = "integer",
        json_path = ".status.totals.messagesNear",
        description = "Messages on the near side after the last sync"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Far",
        type_ = "string",
        json_path = ".spec.far.storeRef.name",
        priority = 1
    ),
    printcolumn(
        name = "Near",
        type_ = "string",
        json_path = ".spec.near.storeRef.name",
        priority = 1
    ),
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.trigger.schedule",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MailChannelSpec {
    /// The far side, usually the server.
    pub far: ChannelSide,
    /// The near side, usually the local Maildir.
    pub near: ChannelSide,
    /// Mailboxes to synchronize, mbsync globs (`*` any text, `%` any text without `/`, a
    /// leading `!` excludes); the last matching pattern decides. Unset: only the mailbox
    /// named by each side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 1024)))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub patterns: Option<Vec<String>>,
    /// What to propagate in each direction; unset: New, Upgrade, Gone and Flags both ways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncOperations>,
    /// Create mailboxes missing on these sides (`Create`, default None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<Sides>,
    /// Delete mailboxes on these sides whose counterpart was deleted (`Remove`, default None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Sides>,
    /// Permanently remove messages marked deleted on these sides (`Expunge`, default None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expunge: Option<Sides>,
    /// Remove only deleted messages without a live counterpart (`ExpungeSolo`, default None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expunge_solo: Option<Sides>,
    /// Propagate arrival times with new messages (`CopyArrivalDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_arrival_date: Option<bool>,
    /// Keep at most this many messages on `expireSide`; 0 or unset: no limit (`MaxMessages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_messages: Option<i32>,
    /// The side trimmed by `maxMessages` (`ExpireSide`, default Near).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_side: Option<Side>,
    /// Whether unread messages expire too (`ExpireUnread`); unset: a mailbox with too many
    /// unread messages is skipped with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_unread: Option<bool>,
    /// Messages larger than this are propagated only as placeholders, on both sides, in this
    /// channel's runs (`MaxSize` in a Channel); overrides the stores' `maxMessageSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(BYTE_SIZE_RULE).message(BYTE_SIZE_MESSAGE))]
    pub max_message_size: Option<Quantity>,
    /// Data buffered for a store before fetching pauses (`BufferLimit`, default 10Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("type(self) == int ? self > 0 : isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("bufferLimit must be a positive byte size such as 10Mi"))]
    pub buffer_limit: Option<Quantity>,
    /// Where the sync state lives; unset: a directory on the near store's volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_state: Option<SyncState>,
    /// When to sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Start no new syncs (a running one finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Settings of the sync Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSettings>,
}

/// One side of a channel (mbsync `Far`/`Near` `:store:mailbox`). Fixed once created: the
/// sync state records which messages were paired on these mailboxes, and pointing it at other
/// ones would make their messages look deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self == oldSelf").message("far and near cannot be changed: the sync state belongs to these mailboxes; create a new MailChannel instead"))]
#[serde(rename_all = "camelCase")]
pub struct ChannelSide {
    /// The MailStore of this side.
    pub store_ref: StoreRef,
    /// Without patterns: the mailbox to synchronize (unset: INBOX). With patterns: a prefix
    /// put before every selected mailbox name on this side (e.g. `Archive/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub mailbox: Option<String>,
}

/// The message operations per direction (mbsync `Sync`). A direction left out propagates
/// nothing; `sync: {}` propagates nothing at all (mbsync `Sync None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperations {
    /// Far to near: changes applied to the near side (mbsync `Pull…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub pull: Option<Vec<Operation>>,
    /// Near to far: changes applied to the far side (mbsync `Push…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub push: Option<Vec<Operation>>,
}

/// A message-level operation type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Operation {
    /// Propagate newly arrived messages.
    New,
    /// Propagate messages skipped, failed or expired earlier.
    Old,
    /// Replace placeholders by the full messages.
    Upgrade,
    /// Propagate deletions.
    Gone,
    /// Propagate flag changes.
    Flags,
}

/// Where the per-mailbox sync state files live (mbsync `SyncState`). They are the
/// authoritative record of what was synchronized; the status only summarizes them. Fixed once
/// set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self == oldSelf").message("syncState cannot be changed: the existing state would be lost and every message copied again; create a new MailChannel instead"))]
#[x_kube(validation = Rule::new("!has(self.location) || self.location != 'InMailbox' || !has(self.volume)").message("syncState.volume cannot be used with location InMailbox (the state is kept inside each near mailbox)"))]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// `Directory` (default): state files in a directory; `InMailbox`: in each near Maildir
    /// mailbox (mbsync `SyncState *`, needs a Maildir near store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SyncStateLocation>,
    /// With `Directory`: the volume and folder for the state files; unset: a folder on the
    /// near store's volume (required when the near store is IMAP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeRef>,
    /// Separator in state file names, one punctuation character (`FieldDelimiter`, default
    /// `:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[!-/:-@\[-`{-~]$"))]
    pub field_delimiter: Option<String>,
}

/// Where sync state files are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SyncStateLocation {
    #[default]
    Directory,
    InMailbox,
}

/// When the channel syncs. With neither `schedule` nor `manual`, it syncs once after each
/// change of the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.timeZone) || has(self.schedule)").message("trigger.timeZone needs trigger.schedule"))]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// Standard 5-field cron expression (minute hour day-of-month month day-of-week, e.g.
    /// `30 2 * * *` for 02:30 every day) or `@hourly`, `@daily`, `@weekly`, `@monthly`,
    /// `@yearly`. There is no seconds field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(format!("!self.matches({})", cel_string(CRON_TIME_ZONE_PREFIX_REGEX))).message("set the time zone with trigger.timeZone, not with TZ= or CRON_TZ= in the schedule"))]
    #[x_kube(validation = Rule::new(format!("!self.matches({})", cel_string(CRON_TOO_MANY_FIELDS_REGEX))).message("schedule has more than 5 fields: there is no seconds field, so daily at 01:00 is '0 1 * * *'"))]
    #[x_kube(validation = Rule::new(cron_rule()).message("schedule must be 5 cron fields (minute hour day-of-month month day-of-week, e.g. '30 2 * * *') or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"))]
    pub schedule: Option<String>,
    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin`; unset: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new(time_zone_rule()).message("timeZone must be an IANA time zone name such as Europe/Berlin or UTC"))]
    pub time_zone: Option<String>,
    /// Any value: a sync runs whenever it differs from `status.lastManualSync`, which is set
    /// to it when that sync finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub manual: Option<String>,
}

/// Escapes `regex` for a single-quoted CEL string literal.
fn cel_string(regex: &str) -> String {
    format!("'{}'", regex.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// CEL rule: the schedule is a valid 5-field expression or descriptor, or has too many fields
/// (reported by its own rule).
fn cron_rule() -> String {
    format!(
        "self.matches({}) || self.matches({})",
        cel_string(CRON_TOO_MANY_FIELDS_REGEX),
        cel_string(CRON_REGEX)
    )
}

fn time_zone_rule() -> String {
    format!("self.matches({})", cel_string(TIME_ZONE_REGEX))
}

/// Settings of the Jobs that run the syncs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSettings {
    /// CPU and memory for the sync container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the sync Pod must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the sync Pod tolerates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub tolerations: Option<Vec<Toleration>>,
    /// Scheduling constraints of the sync Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Seconds a sync may run before it is stopped and counted as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Retries of a failed sync Pod within one Job (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,
    /// Finished successful Jobs to keep (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: Option<i32>,
    /// Finished failed Jobs to keep (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: Option<i32>,
}
