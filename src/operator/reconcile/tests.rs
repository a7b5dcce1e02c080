use super::*;
use crate::operator::MailChannelSpec;
use crate::operator::channel::{ChannelSide, Trigger};
use crate::operator::common::{SecretKeyRef, StoreRef, VolumeRef};
use crate::operator::job::{JobTemplate, sync_job};
use crate::operator::store::{ImapAuth, ImapStore, MailStoreSpec, MaildirStore};
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn stores() -> BTreeMap<String, MailStore> {
    let server = MailStore::new(
        "server",
        MailStoreSpec {
            imap: Some(ImapStore {
                host: Some("127.0.0.1".into()),
                auth: Some(ImapAuth {
                    username: Some("alice".into()),
                    password_secret_ref: Some(SecretKeyRef {
                        name: "pass".into(),
                        key: "password".into(),
                    }),
                    ..ImapAuth::default()
                }),
                ..ImapStore::default()
            }),
            ..MailStoreSpec::default()
        },
    );
    let local = MailStore::new(
        "local",
        MailStoreSpec {
            maildir: Some(MaildirStore {
                volume: VolumeRef {
                    claim_name: "mail".into(),
                    sub_path: None,
                },
                ..MaildirStore::default()
            }),
            ..MailStoreSpec::default()
        },
    );
    BTreeMap::from([("server".into(), server), ("local".into(), local)])
}

fn secrets() -> BTreeMap<String, BTreeSet<String>> {
    BTreeMap::from([("pass".into(), BTreeSet::from(["password".into()]))])
}

fn channel(name: &str, trigger: Trigger) -> MailChannel {
    let mut channel = MailChannel::new(
        name,
        MailChannelSpec {
            far: ChannelSide {
                store_ref: StoreRef {
                    name: "server".into(),
                },
                mailbox: None,
            },
            near: ChannelSide {
                store_ref: StoreRef {
                    name: "local".into(),
                },
                mailbox: None,
            },
            trigger: Some(trigger),
            ..MailChannelSpec::default()
        },
    );
    channel.metadata.namespace = Some("ns".into());
    channel.metadata.generation = Some(1);
    channel.metadata.uid = Some(format!("uid-{name}"));
    channel.metadata.creation_timestamp = Some(Time(at("2026-01-01T00:00:00Z")));
    channel
}

fn every_minute() -> Trigger {
    Trigger {
        schedule: Some("* * * * *".into()),
        ..Trigger::default()
    }
}

fn manual(token: &str) -> Trigger {
    Trigger {
        manual: Some(token.into()),
        ..Trigger::default()
    }
}

/// The Job the controller would make for `run`, in `state`, created at `created`.
fn job(channel: &MailChannel, run: RunKind, state: Option<&str>, created: &str) -> Job {
    let rendered = render(channel, &stores()["server"], &stores()["local"]).expect("renders");
    let mut job = sync_job(channel, &rendered, &run, &JobTemplate::new("mailsync"), &[]);
    job.metadata.creation_timestamp = Some(Time(at(created)));
    if let Some(state) = state {
        job.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: state.into(),
                status: "True".into(),
                message: Some("BackoffLimitExceeded".into()),
                ..JobCondition::default()
            }]),
            completion_time: Some(Time(at(created))),
            ..JobStatus::default()
        });
    }
    job
}

fn plan_at(channel: &MailChannel, jobs: &[Job], now: &str) -> Actions {
    plan(&Observed {
        channel,
        stores: &stores(),
        secrets: &secrets(),
        jobs,
        now: at(now),
    })
}

fn synchronizing(actions: &Actions) -> (String, String) {
    let found = actions
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::SYNCHRONIZING)
        .expect("Synchronizing condition");
    (found.status.clone(), found.reason.clone())
}

#[test]
fn a_scheduled_slot_starts_one_run_and_missed_slots_are_not_replayed() {
    let channel = channel("inbox", every_minute());
    // Hours after creation, many slots were missed: only the latest one runs.
    let actions = plan_at(&channel, &[], "2026-01-01T05:30:30Z");
    let Some(RunKind::Schedule(slot)) = actions.start else {
        panic!("no scheduled run: {:?}", actions.start);
    };
    assert_eq!(slot, at("2026-01-01T05:30:00Z").as_second());
    assert_eq!(
        actions.status.last_schedule_time,
        Some(Time(at("2026-01-01T05:30:00Z")))
    );
    assert!(
        actions.requeue_after <= Duration::from_secs(41),
        "{:?}",
        actions.requeue_after
    );
    // With that slot recorded, nothing more until the next one.
    let mut done = channel.clone();
    done.status = Some(crate::operator::MailChannelStatus {
        last_schedule_time: actions.status.last_schedule_time.clone(),
        ..Default::default()
    });
    let again = plan_at(&done, &[], "2026-01-01T05:30:40Z");
    assert_eq!(again.start, None);
    assert_eq!(
        synchronizing(&again).1,
        condition::REASON_WAITING_FOR_SCHEDULE
    );
}

#[test]
fn a_running_job_blocks_a_second_run() {
    let channel = channel("inbox", manual("2"));
    let running = job(
        &channel,
        RunKind::Manual("1".into()),
        None,
        "2026-01-01T01:00:00Z",
    );
    let actions = plan_at(&channel, &[running], "2026-01-01T01:00:05Z");
    assert_eq!(actions.start, None);
    assert_eq!(
        synchronizing(&actions),
        (
            "True".to_string(),
            condition::REASON_SYNC_IN_PROGRESS.to_string()
        )
    );
}

#[test]
fn a_manual_trigger_runs_once_and_an_existing_job_is_adopted() {
    let channel = channel("inbox", manual("1"));
    let actions = plan_at(&channel, &[], "2026-01-01T01:00:00Z");
    assert_eq!(actions.start, Some(RunKind::Manual("1".into())));
    // The Job for that value exists (finished): no second one.
    let finished = job(
        &channel,
        RunKind::Manual("1".into()),
        Some("Failed"),
        "2026-01-01T01:00:00Z",
    );
    let actions = plan_at(&channel, &[finished], "2026-01-01T01:01:00Z");
    assert_eq!(actions.start, None);
    assert_eq!(synchronizing(&actions).1, condition::REASON_ERROR);
    assert_eq!(actions.report_jobs.len(), 1);
    assert!(actions.report_jobs[0].1.warning);
}

#[test]
fn suspend_starts_nothing() {
    let mut channel = channel("inbox", every_minute());
    channel.spec.suspend = Some(true);
    let actions = plan_at(&channel, &[], "2026-01-01T05:30:30Z");
    assert_eq!(actions.start, None);
    assert_eq!(synchronizing(&actions).1, condition::REASON_SUSPENDED);
    assert_eq!(actions.status.next_sync_time, None);
}

#[test]
fn a_missing_secret_key_stops_before_a_job() {
    let channel = channel("inbox", manual("1"));
    let wrong_key = BTreeMap::from([("pass".to_string(), BTreeSet::from(["pw".to_string()]))]);
    let actions = plan(&Observed {
        channel: &channel,
        stores: &stores(),
        secrets: &wrong_key,
        jobs: &[],
        now: at("2026-01-01T01:00:00Z"),
    });
    assert_eq!(actions.start, None);
    let credentials = actions
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::CREDENTIALS_INVALID)
        .expect("CredentialsInvalid");
    assert_eq!(credentials.status, "True");
    assert!(
        credentials.message.contains("has no key \"password\""),
        "{credentials:?}"
    );
}

#[test]
fn the_store_connection_limit_holds_other_channels_back() {
    let first = channel("first", manual("1"));
    let second = channel("second", manual("1"));
    let running = job(
        &first,
        RunKind::Manual("1".into()),
        None,
        "2026-01-01T01:00:00Z",
    );
    let actions = plan_at(&second, &[running], "2026-01-01T01:00:01Z");
    assert_eq!(actions.start, None);
    assert_eq!(synchronizing(&actions).1, REASON_WAITING_FOR_CONNECTION);
    assert_eq!(actions.requeue_after, BUSY_REQUEUE);
}

#[test]
fn runs_with_several_connections_take_several_of_the_store_budget() {
    let first = channel("first", manual("1"));
    let second = channel("second", manual("1"));
    let running = job(
        &first,
        RunKind::Manual("1".into()),
        None,
        "2026-01-01T01:00:00Z",
    );
    let with_budget = |max: i32, per_run: i32| {
        let mut stores = stores();
        if let Some(imap) = stores
            .get_mut("server")
            .and_then(|store| store.spec.imap.as_mut())
        {
            imap.max_connections = Some(max);
            imap.connections_per_run = Some(per_run);
        }
        stores
    };
    let plan_with = |stores: &BTreeMap<String, MailStore>| {
        plan(&Observed {
            channel: &second,
            stores,
            secrets: &secrets(),
            jobs: std::slice::from_ref(&running),
            now: at("2026-01-01T01:00:01Z"),
        })
    };
    // 4 connections, 2 per run: a second run fits.
    let actions = plan_with(&with_budget(4, 2));
    assert!(actions.start.is_some(), "{:?}", actions.start);
    // 4 connections, 3 per run: it waits.
    let actions = plan_with(&with_budget(4, 3));
    assert_eq!(actions.start, None);
    assert_eq!(synchronizing(&actions).1, REASON_WAITING_FOR_CONNECTION);
}

#[test]
fn finished_jobs_beyond_the_history_are_deleted_oldest_first() {
    let channel = channel("inbox", manual("9"));
    let jobs = vec![
        job(
            &channel,
            RunKind::Manual("1".into()),
            Some("Complete"),
            "2026-01-01T01:00:00Z",
        ),
        job(
            &channel,
            RunKind::Manual("2".into()),
            Some("Complete"),
            "2026-01-01T02:00:00Z",
        ),
        job(
            &channel,
            RunKind::Manual("3".into()),
            Some("Failed"),
            "2026-01-01T03:00:00Z",
        ),
    ];
    let actions = plan_at(&channel, &jobs, "2026-01-01T04:00:00Z");
    assert_eq!(
        actions.delete_jobs,
        vec![crate::operator::job::job_name(
            "inbox",
            &RunKind::Manual("1".into())
        )]
    );
}

#[test]
fn a_deleted_job_does_not_leave_the_channel_synchronizing() {
    let mut channel = channel("inbox", manual("1"));
    // The status still says a sync runs, but its Job is gone (deleted, or its run was
    // recorded and the Job cleaned up).
    channel.status = Some(crate::operator::MailChannelStatus {
        last_manual_sync: Some("1".into()),
        conditions: Some(vec![Condition {
            type_: condition::SYNCHRONIZING.into(),
            status: "True".into(),
            reason: condition::REASON_SYNC_IN_PROGRESS.into(),
            message: "Job inbox-m1 is running".into(),
            observed_generation: Some(1),
            last_transition_time: Time(at("2026-01-01T00:00:00Z")),
        }]),
        last_sync_start_time: Some(Time(at("2026-01-01T00:00:00Z"))),
        ..Default::default()
    });
    let actions = plan_at(&channel, &[], "2026-01-01T01:00:00Z");
    assert_eq!(actions.start, None);
    assert_eq!(
        synchronizing(&actions),
        (
            "False".to_string(),
            condition::REASON_WAITING_FOR_MANUAL.to_string()
        )
    );
    assert_eq!(actions.status.last_sync_start_time, None);
}

#[test]
fn a_channel_without_triggers_syncs_once_per_spec_change() {
    let mut channel = channel("inbox", Trigger::default());
    let actions = plan_at(&channel, &[], "2026-01-01T01:00:00Z");
    assert_eq!(actions.start, Some(RunKind::Spec(1)));
    channel.status = Some(crate::operator::MailChannelStatus {
        last_run_generation: actions.status.last_run_generation,
        ..Default::default()
    });
    assert_eq!(plan_at(&channel, &[], "2026-01-01T01:00:10Z").start, None);
    channel.metadata.generation = Some(2);
    assert_eq!(
        plan_at(&channel, &[], "2026-01-01T01:00:20Z").start,
        Some(RunKind::Spec(2))
    );
}

#[test]
fn the_charts_job_template_and_defaults_shape_the_job() {
    use crate::operator::channel::JobSettings;
    use crate::operator::job::with_job_defaults;

    let mut template = JobTemplate::new("registry/mailsync:2");
    template.service_account = "sync-pods".into();
    template.image_pull_policy = Some("Always".into());
    template.image_pull_secrets = vec!["regcred".into()];
    template.env = vec![
        ("RUST_LOG".into(), "debug".into()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            "http://collector:4318".into(),
        ),
        // A template variable cannot replace one the worker depends on.
        ("MAILSYNC_CHANNEL".into(), "other".into()),
    ];
    template.defaults = JobSettings {
        backoff_limit: Some(5),
        active_deadline_seconds: Some(600),
        successful_jobs_history_limit: Some(0),
        ..JobSettings::default()
    };
    let mut own = channel("inbox", manual("1"));
    own.spec.job = Some(JobSettings {
        backoff_limit: Some(1),
        ..JobSettings::default()
    });
    let rendered = render(&own, &stores()["server"], &stores()["local"]).expect("renders");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let made = sync_job(
        &own,
        &rendered,
        &RunKind::Manual("1".into()),
        &template,
        &[("TRACEPARENT".into(), traceparent.into())],
    );
    let spec = made.spec.as_ref().expect("a Job spec");
    assert_eq!(
        spec.backoff_limit,
        Some(1),
        "the channel's own setting wins"
    );
    assert_eq!(spec.active_deadline_seconds, Some(600), "from the defaults");
    let pod = spec.template.spec.as_ref().expect("a Pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("sync-pods"));
    let pull_secrets: Vec<&str> = pod
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|secret| secret.name.as_str())
        .collect();
    assert_eq!(pull_secrets, ["regcred"]);
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("registry/mailsync:2"));
    assert_eq!(container.image_pull_policy.as_deref(), Some("Always"));
    let env: BTreeMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .map(|variable| {
            (
                variable.name.as_str(),
                variable.value.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(env["MAILSYNC_CHANNEL"], "inbox");
    assert_eq!(env["RUST_LOG"], "debug");
    assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://collector:4318");
    assert_eq!(env["TRACEPARENT"], traceparent);
    assert!(
        container
            .env
            .iter()
            .flatten()
            .all(|variable| variable.value_from.is_none()),
        "literal values only"
    );

    // The history limit of the defaults applies to a channel that sets none.
    let plain = channel("inbox", manual("2"));
    let finished = job(
        &plain,
        RunKind::Manual("1".into()),
        Some("Complete"),
        "2026-01-01T00:01:00Z",
    );
    let completed = with_job_defaults(&plain, &template.defaults);
    let actions = plan_at(
        &completed,
        std::slice::from_ref(&finished),
        "2026-01-01T00:02:00Z",
    );
    assert_eq!(
        actions.delete_jobs,
        [finished.metadata.name.clone().expect("a name")]
    );
    let actions = plan_at(&plain, &[finished], "2026-01-01T00:02:00Z");
    assert!(actions.delete_jobs.is_empty(), "{:?}", actions.delete_jobs);
}
