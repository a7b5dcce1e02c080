//! The controller's decisions as a pure function: a channel, its stores, the Secrets' keys,
//! the Jobs in its namespace and the time in, the actions out (the ConfigMap to keep, the Job
//! to start, the Jobs to delete, the controller's part of the status, Events, when to look
//! again). [`super::controller`] applies them.
//!
//! Rules: one deterministically named Job per run (an existing one is adopted); never two
//! runs of a channel at once; while one runs, at most one more is pending; missed schedule
//! slots are not replayed (only the latest slot counts); an IMAP store's `maxConnections`
//! bounds the runs using it at once; a missing Secret or key stops the run before a Job is
//! made; the `Synchronizing` condition is derived from the Jobs that exist, so a Job that
//! died or was deleted never leaves it stuck.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::common::condition;
use super::job::{
    CHANNEL_ANNOTATION, IMAP_STORES_ANNOTATION, MANUAL_ANNOTATION, REPORTED_ANNOTATION, RunKind,
};
use super::render::{RenderedChannel, render};
use super::schedule::{Schedule, jitter};
use super::{MailChannel, MailStore};

/// Reason of `Synchronizing=False` while a run waits for a free connection of its store.
pub const REASON_WAITING_FOR_CONNECTION: &str = "WaitingForConnection";
/// Reason of `CredentialsInvalid`.
pub const REASON_SECRET_MISSING: &str = "SecretMissing";
/// Reason of `CredentialsInvalid=False`.
pub const REASON_SECRETS_FOUND: &str = "SecretsFound";
/// How often a channel is looked at when nothing else is due.
pub const IDLE_REQUEUE: Duration = Duration::from_secs(300);
/// How soon a run waiting for a connection slot is looked at again.
pub const BUSY_REQUEUE: Duration = Duration::from_secs(10);

/// What the controller sees of one channel.
pub struct Observed<'a> {
    pub channel: &'a MailChannel,
    /// The MailStores of the namespace by name.
    pub stores: &'a BTreeMap<String, MailStore>,
    /// The keys of the Secrets of the namespace by name (only those the channel reads need
    /// to be there).
    pub secrets: &'a BTreeMap<String, BTreeSet<String>>,
    /// The mailsync Jobs of the namespace (of all channels).
    pub jobs: &'a [Job],
    pub now: Timestamp,
}

/// An Event to publish about the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// The controller's part of the status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControllerStatus {
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    pub last_sync_start_time: Option<Time>,
    pub next_sync_time: Option<Time>,
    pub last_schedule_time: Option<Time>,
    pub last_run_generation: Option<i64>,
}

/// What to do for one channel.
#[derive(Clone, Debug, Default)]
pub struct Actions {
    /// The rendered channel (for the ConfigMap and the Job); `None` when it cannot be.
    pub rendered: Option<RenderedChannel>,
    /// The run to start (its Job is created unless it already exists).
    pub start: Option<RunKind>,
    /// Finished Jobs beyond the history limits.
    pub delete_jobs: Vec<String>,
    /// Finished Jobs to report with an Event (then annotated as reported): (name, event).
    pub report_jobs: Vec<(String, EventNote)>,
    pub status: ControllerStatus,
    pub events: Vec<EventNote>,
    pub requeue_after: Duration,
}

/// How a Job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Active,
    Succeeded,
    Failed,
}

/// The state of `job` from its conditions.
pub fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref());
    for condition in conditions.into_iter().flatten() {
        if condition.status == "True" {
            match condition.type_.as_str() {
                "Complete" => return JobState::Succeeded,
                "Failed" => return JobState::Failed,
                _ => {}
            }
        }
    }
    JobState::Active
}

fn job_message(job: &Job) -> String {
    job.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
        })
        .and_then(|c| c.message.clone().or_else(|| c.reason.clone()))
        .unwrap_or_default()
}

fn annotation<'j>(job: &'j Job, key: &str) -> Option<&'j str> {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(key))
        .map(String::as_str)
}

fn job_time(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()
        .and_then(|status| status.completion_time.clone())
        .or_else(|| job.metadata.creation_timestamp.clone())
        .map(|time| time.0)
}

fn time(timestamp: Timestamp) -> Time {
    Time(timestamp)
}

/// A condition, keeping the transition time of `previous` when the status did not change.
fn condition(
    previous: Option<&Vec<Condition>>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .into_iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| time(now));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: super::status::bounded_message(message),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Decides what to do for `observed.channel`.
pub fn plan(observed: &Observed) -> Actions {
    let channel = observed.channel;
    let now = observed.now;
    let name = channel.metadata.name.clone().unwrap_or_default();
    let namespace = channel.metadata.namespace.clone().unwrap_or_default();
    let generation = channel.metadata.generation;
    let status = channel.status.clone().unwrap_or_default();
    let previous = status.conditions.as_ref();
    let spec = &channel.spec;
    let trigger = spec.trigger.clone().unwrap_or_default();
    let suspended = spec.suspend.unwrap_or(false);

    let mut actions = Actions {
        requeue_after: IDLE_REQUEUE,
        ..Actions::default()
    };
    actions.status.observed_generation = generation;
    actions.status.last_schedule_time = status.last_schedule_time.clone();
    actions.status.last_run_generation = status.last_run_generation;

    // This channel's Jobs, oldest first.
    let mut jobs: Vec<&Job> = observed
        .jobs
        .iter()
        .filter(|job| annotation(job, CHANNEL_ANNOTATION) == Some(name.as_str()))
        .collect();
    jobs.sort_by_key(|job| job.metadata.creation_timestamp.clone().map(|t| t.0));
    let active: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|job| job_state(job) == JobState::Active)
        .collect();
    let latest_finished = jobs
        .iter()
        .copied()
        .filter(|job| job_state(job) != JobState::Active)
        .max_by_key(|job| job_time(job));

    // Events for Jobs that finished since the last look.
    for job in &jobs {
        let state = job_state(job);
        if state == JobState::Active || annotation(job, REPORTED_ANNOTATION).is_some() {
            continue;
        }
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let note = if state == JobState::Succeeded {
            EventNote {
                warning: false,
                reason: "SyncSucceeded".into(),
                note: format!("Sync Job {job_name} succeeded"),
            }
        } else {
            EventNote {
                warning: true,
                reason: "SyncFailed".into(),
                note: format!("Sync Job {job_name} failed: {}", job_message(job)),
            }
        };
        actions.report_jobs.push((job_name, note));
    }
    actions.delete_jobs = history_to_delete(&jobs, spec.job.as_ref());

    // Stores, rendering and credentials.
    let blocked = |actions: &mut Actions, reason: &str, message: String| {
        actions.status.conditions.push(condition(
            previous,
            condition::SYNCHRONIZING,
            !active.is_empty(),
            if active.is_empty() {
                condition::REASON_ERROR
            } else {
                condition::REASON_SYNC_IN_PROGRESS
            },
            &message,
            generation,
            now,
        ));
        actions.events.push(EventNote {
            warning: true,
            reason: reason.to_string(),
            note: message,
        });
        actions.requeue_after = Duration::from_secs(60);
    };
    let far = observed.stores.get(&spec.far.store_ref.name);
    let near = observed.stores.get(&spec.near.store_ref.name);
    let (Some(far), Some(near)) = (far, near) else {
        let missing = if far.is_none() {
            &spec.far.store_ref.name
        } else {
            &spec.near.store_ref.name
        };
        blocked(
            &mut actions,
            "StoreMissing",
            format!("MailStore {namespace}/{missing} does not exist"),
        );
        return actions;
    };
    let rendered = match render(channel, far, near) {
        Ok(rendered) => rendered,
        Err(error) => {
            blocked(&mut actions, "InvalidSpec", error.to_string());
            return actions;
        }
    };
    let missing: Vec<String> = rendered
        .secret_keys
        .iter()
        .filter_map(|(secret, key)| match observed.secrets.get(secret) {
            None => Some(format!("Secret {namespace}/{secret} does not exist")),
            Some(keys) if !keys.contains(key) => {
                Some(format!("Secret {namespace}/{secret} has no key {key:?}"))
            }
            Some(_) => None,
        })
        .collect();
    if !missing.is_empty() {
        let message = missing.join("; ");
        actions.status.conditions.push(condition(
            previous,
            condition::CREDENTIALS_INVALID,
            true,
            REASON_SECRET_MISSING,
            &message,
            generation,
            now,
        ));
        blocked(&mut actions, "CredentialsInvalid", message);
        actions.rendered = Some(rendered);
        return actions;
    }
    actions.status.conditions.push(condition(
        previous,
        condition::CREDENTIALS_INVALID,
        false,
        REASON_SECRETS_FOUND,
        "every Secret key the channel reads exists",
        generation,
        now,
    ));

    // Which run is due.
    let schedule = match trigger.schedule.as_deref() {
        Some(expression) => match Schedule::parse(expression, trigger.time_zone.as_deref()) {
            Ok(schedule) => Some(schedule),
            Err(error) => {
                blocked(&mut actions, "InvalidSchedule", error.to_string());
                actions.rendered = Some(rendered);
                return actions;
            }
        },
        None => None,
    };
    let delay = jitter(&format!("{namespace}/{name}"));
    let delay_span = jiff::SignedDuration::try_from(delay).unwrap_or_default();
    let created = channel
        .metadata
        .creation_timestamp
        .clone()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut due: Option<RunKind> = None;
    let mut next_slot: Option<Timestamp> = None;
    if !suspended {
        if let Some(token) = trigger.manual.as_ref()
            && status.last_manual_sync.as_ref() != Some(token)
            && !jobs
                .iter()
                .any(|job| annotation(job, MANUAL_ANNOTATION) == Some(token.as_str()))
        {
            due = Some(RunKind::Manual(token.clone()));
        }
        if let Some(schedule) = &schedule {
            let shifted = now.checked_sub(delay_span).unwrap_or(now);
            let baseline = status
                .last_schedule_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(created);
            if let Some(slot) = schedule.latest_at_or_before(shifted)
                && slot > baseline
                && due.is_none()
            {
                due = Some(RunKind::Schedule(slot.as_second()));
            }
            next_slot = schedule
                .next_after(shifted)
                .and_then(|slot| slot.checked_add(delay_span).ok());
        }
        if schedule.is_none()
            && trigger.manual.is_none()
            && due.is_none()
            && status.last_run_generation != generation
        {
            due = generation.map(RunKind::Spec);
        }
    }
    actions.status.next_sync_time = next_slot.map(time);
    if let Some(next) = next_slot {
        let wait = next.duration_since(now);
        let wait = Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(200);
        actions.requeue_after = actions.requeue_after.min(wait);
    }

    // Start it, or say why not.
    let (sync_status, reason, message) = if let Some(job) = active.first() {
        let job_name = job.metadata.name.clone().unwrap_or_default();
        actions.status.last_sync_start_time = job
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .or_else(|| job.metadata.creation_timestamp.clone());
        let pending = if due.is_some() {
            "; another run is pending"
        } else {
            ""
        };
        (
            true,
            condition::REASON_SYNC_IN_PROGRESS,
            format!("Job {job_name} is running{pending}"),
        )
    } else if let Some(run) = due {
        match busy_store(observed, &rendered) {
            Some(store) => {
                actions.requeue_after = BUSY_REQUEUE;
                (
                    false,
                    REASON_WAITING_FOR_CONNECTION,
                    format!("waiting for a free connection of MailStore {store}"),
                )
            }
            None => {
                let job_name = super::job::job_name(&name, &run);
                match &run {
                    RunKind::Schedule(slot) => {
                        actions.status.last_schedule_time =
                            Timestamp::from_second(*slot).ok().map(time);
                    }
                    RunKind::Spec(generation) => {
                        actions.status.last_run_generation = Some(*generation)
                    }
                    RunKind::Manual(_) => {}
                }
                actions.status.last_sync_start_time = Some(time(now));
                actions.events.push(EventNote {
                    warning: false,
                    reason: "SyncStarted".into(),
                    note: format!("Started sync Job {job_name}"),
                });
                actions.start = Some(run);
                (
                    true,
                    condition::REASON_SYNC_IN_PROGRESS,
                    format!("Job {job_name} is running"),
                )
            }
        }
    } else if suspended {
        (
            false,
            condition::REASON_SUSPENDED,
            "spec.suspend is set: no new syncs start".to_string(),
        )
    } else if let Some(job) = latest_finished.filter(|job| job_state(job) == JobState::Failed) {
        (
            false,
            condition::REASON_ERROR,
            format!(
                "the last sync Job {} failed: {}",
                job.metadata.name.clone().unwrap_or_default(),
                job_message(job)
            ),
        )
    } else if schedule.is_some() {
        (
            false,
            condition::REASON_WAITING_FOR_SCHEDULE,
            "waiting for the next scheduled time".to_string(),
        )
    } else {
        (
            false,
            condition::REASON_WAITING_FOR_MANUAL,
            "waiting for spec.trigger.manual to change".to_string(),
        )
    };
    actions.status.conditions.push(condition(
        previous,
        condition::SYNCHRONIZING,
        sync_status,
        reason,
        &message,
        generation,
        now,
    ));
    if !active.is_empty() {
        actions.requeue_after = actions.requeue_after.min(Duration::from_secs(60));
    }
    actions.rendered = Some(rendered);
    actions
}

/// An IMAP store of `rendered` whose `maxConnections` are all taken by active Jobs (each
/// holding `connectionsPerRun` of them).
fn busy_store(observed: &Observed, rendered: &RenderedChannel) -> Option<String> {
    for store in &rendered.imap_stores {
        let limit = observed
            .stores
            .get(store)
            .and_then(|s| s.spec.imap.as_ref())
            .map_or(1, |imap| imap.concurrent_runs());
        let in_use = observed
            .jobs
            .iter()
            .filter(|job| job_state(job) == JobState::Active)
            .filter(|job| {
                annotation(job, IMAP_STORES_ANNOTATION)
                    .is_some_and(|stores| stores.split(',').any(|s| s == store))
            })
            .count();
        if in_use >= limit {
            return Some(store.clone());
        }
    }
    None
}

/// Finished Jobs beyond the history limits (default one succeeded and one failed), oldest
/// first. `jobs` is sorted oldest first.
fn history_to_delete(jobs: &[&Job], settings: Option<&super::channel::JobSettings>) -> Vec<String> {
    let keep_succeeded = settings
        .and_then(|s| s.successful_jobs_history_limit)
        .unwrap_or(1)
        .max(0) as usize;
    let keep_failed = settings
        .and_then(|s| s.failed_jobs_history_limit)
        .unwrap_or(1)
        .max(0) as usize;
    let mut delete = Vec::new();
    for (state, keep) in [
        (JobState::Succeeded, keep_succeeded),
        (JobState::Failed, keep_failed),
    ] {
        let mut finished: Vec<&&Job> = jobs.iter().filter(|job| job_state(job) == state).collect();
        finished.sort_by_key(|job| job_time(job));
        let excess = finished.len().saturating_sub(keep);
        delete.extend(
            finished
                .iter()
                .take(excess)
                .filter_map(|job| job.metadata.name.clone()),
        );
    }
    delete
}

#[cfg(test)]
mod tests;
