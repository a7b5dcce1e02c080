//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several controller replicas
//! only one reconciles at a time: acquire the Lease when it is free or its holder stopped
//! renewing it, renew it while leading, step down when renewal fails, and release it on
//! shutdown so that a standby replica takes over at once.
//!
//! Writes use the Lease's `resourceVersion` (optimistic concurrency): of two replicas racing
//! for a free Lease, the API server accepts one write and refuses the other with 409 Conflict.
//! Expiry is judged on this process's monotonic clock (how long the holder's record has not
//! changed since we first saw it), not by comparing the holder's clock with ours, so clock
//! skew between nodes does not matter.
//!
//! The RBAC it needs, in the Lease's namespace: `create` on `leases`, and `get`, `update` on
//! the Lease by name.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// How the election runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease (the controller's own).
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's name in `holderIdentity` (the pod name).
    pub identity: String,
    /// How long a claim is valid without renewal; others take over after it.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it steps down (less than
    /// `lease_duration`, so it stops before anyone else may start).
    pub renew_deadline: Duration,
    /// Pause between attempts: renewals while leading, acquisitions while standing by.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Lease duration 15 s, renewal deadline 10 s, retries every 2 s (client-go's defaults).
    pub fn new(namespace: &str, lease_name: &str, identity: &str) -> Self {
        LeaderElectionConfig {
            namespace: namespace.to_string(),
            lease_name: lease_name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The chart's settings for the election, from the controller's environment (see
/// `charts/mailsync/templates/deployment.yaml`): `MAILSYNC_LEADER_ELECTION` (`true`/`false`),
/// `MAILSYNC_LEADER_ELECTION_LEASE`, `MAILSYNC_LEADER_ELECTION_LEASE_DURATION`,
/// `MAILSYNC_LEADER_ELECTION_RENEW_DEADLINE`, `MAILSYNC_LEADER_ELECTION_RETRY_PERIOD` (seconds),
/// `POD_NAMESPACE` (the Lease's namespace) and `POD_NAME` (the identity). `Ok(None)`: election
/// switched off.
pub fn config_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<LeaderElectionConfig>, LeaderConfigError> {
    let enabled = lookup("MAILSYNC_LEADER_ELECTION").unwrap_or_else(|| "true".to_string());
    match enabled.trim() {
        "false" => return Ok(None),
        "true" => {}
        other => {
            return Err(LeaderConfigError {
                variable: "MAILSYNC_LEADER_ELECTION",
                value: other.to_string(),
                expected: "true or false",
            });
        }
    }
    let required = |variable: &'static str| {
        lookup(variable)
            .filter(|value| !value.trim().is_empty())
            .ok_or(LeaderConfigError {
                variable,
                value: String::new(),
                expected: "a value (set by the chart)",
            })
    };
    let mut config = LeaderElectionConfig::new(
        &required("POD_NAMESPACE")?,
        &required("MAILSYNC_LEADER_ELECTION_LEASE")?,
        &required("POD_NAME")?,
    );
    let seconds = |variable: &'static str, default: Duration| match lookup(variable) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
            _ => Err(LeaderConfigError {
                variable,
                value: text,
                expected: "a positive number of seconds",
            }),
        },
    };
    config.lease_duration = seconds(
        "MAILSYNC_LEADER_ELECTION_LEASE_DURATION",
        config.lease_duration,
    )?;
    config.renew_deadline = seconds(
        "MAILSYNC_LEADER_ELECTION_RENEW_DEADLINE",
        config.renew_deadline,
    )?;
    config.retry_period = seconds("MAILSYNC_LEADER_ELECTION_RETRY_PERIOD", config.retry_period)?;
    if config.renew_deadline >= config.lease_duration
        || config.retry_period >= config.renew_deadline
    {
        return Err(LeaderConfigError {
            variable: "MAILSYNC_LEADER_ELECTION_RENEW_DEADLINE",
            value: format!(
                "{}s (lease {}s, retry {}s)",
                config.renew_deadline.as_secs(),
                config.lease_duration.as_secs(),
                config.retry_period.as_secs()
            ),
            expected: "retry period < renew deadline < lease duration",
        });
    }
    Ok(Some(config))
}

/// A leader-election setting in the environment is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?}: expected {expected}")]
pub struct LeaderConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// A Lease operation failed for another reason than losing a race.
#[derive(Debug, thiserror::Error)]
#[error("Lease {namespace}/{name}: {source}")]
pub struct LeaderElectionError {
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

/// The holder record as last seen, and when (on our clock) it last changed.
#[derive(Debug)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    seen_at: Instant,
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    observed: Mutex<Option<Observed>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LeaderElector")
            .field("config", &self.config)
            .finish()
    }
}

/// Whether this replica leads, as the election goes on.
#[derive(Clone, Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
}

impl Leadership {
    /// True while this replica holds the Lease.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until this replica leads; false when the election ended first (shutdown).
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|leading| *leading).await.is_ok()
    }

    /// Waits until this replica stops leading (it lost the Lease, or the election ended). A
    /// controller should stop reconciling then; exiting and being restarted is simplest.
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaderElectionConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    fn error(&self, source: kube::Error) -> LeaderElectionError {
        LeaderElectionError {
            namespace: self.config.namespace.clone(),
            name: self.config.lease_name.clone(),
            source,
        }
    }

    /// One attempt to acquire or renew the Lease. `Ok(true)`: this replica holds it now;
    /// `Ok(false)`: another one does, or won a race for it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderElectionError> {
        let now = Timestamp::now();
        let Some(current) = self
            .api
            .get_opt(&self.config.lease_name)
            .await
            .map_err(|error| self.error(error))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.claim(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(error) if is_conflict(&error) => Ok(false),
                Err(error) => Err(self.error(error)),
            };
        };

        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|name| !name.is_empty());
        let renew_time = spec.renew_time.as_ref().map(|time| time.0);
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder.as_deref() == Some(self.config.identity.as_str()) {
            // Renewal: keep acquireTime and the transition count.
            let acquired = spec.acquire_time.as_ref().map_or(now, |time| time.0);
            self.claim(acquired, now, transitions)
        } else if holder.is_none() || self.expired(holder.as_deref(), renew_time, &spec) {
            self.claim(now, now, transitions.saturating_add(1))
        } else {
            return Ok(false);
        };
        let mut lease = current;
        lease.spec = Some(next);
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(self.error(error)),
        }
    }

    /// A Lease spec naming this replica as holder.
    fn claim(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Whether another holder's claim has run out: its record has not changed for longer than
    /// the lease duration it asked for, measured on our clock from when we first saw it.
    fn expired(
        &self,
        holder: Option<&str>,
        renew_time: Option<Timestamp>,
        spec: &LeaseSpec,
    ) -> bool {
        let duration = spec
            .lease_duration_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        let Ok(mut observed) = self.observed.lock() else {
            return false;
        };
        let unchanged = observed
            .as_ref()
            .is_some_and(|seen| seen.holder.as_deref() == holder && seen.renew_time == renew_time);
        if !unchanged {
            *observed = Some(Observed {
                holder: holder.map(str::to_string),
                renew_time,
                seen_at: Instant::now(),
            });
            return false;
        }
        observed
            .as_ref()
            .is_some_and(|seen| seen.seen_at.elapsed() >= duration)
    }

    /// Gives the Lease up if this replica holds it, so that another takes over without waiting
    /// for it to expire.
    pub async fn release(&self) -> Result<(), LeaderElectionError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.lease_name)
            .await
            .map_err(|error| self.error(error))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else wrote it meanwhile: it is not ours to release any more.
            Err(error) if is_conflict(&error) => Ok(()),
            Err(error) => Err(self.error(error)),
        }
    }

    /// Runs the election in a task until `shutdown` completes, then releases the Lease if held.
    /// The returned [`Leadership`] tells whether this replica leads.
    pub fn spawn(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (Leadership, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = watch::channel(false);
        let task = tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut last_renewal: Option<Instant> = None;
            loop {
                let leading = *sender.borrow();
                let attempt = tokio::select! {
                    _ = &mut shutdown => break,
                    attempt = self.try_acquire_or_renew() => attempt,
                };
                match attempt {
                    Ok(true) => {
                        last_renewal = Some(Instant::now());
                        if !leading {
                            tracing::info!(
                                lease = %self.config.lease_name,
                                identity = %self.config.identity,
                                "became the leader"
                            );
                            sender.send_replace(true);
                        }
                    }
                    Ok(false) => {
                        if leading {
                            tracing::warn!(
                                lease = %self.config.lease_name,
                                "another replica holds the Lease now; stepping down"
                            );
                            sender.send_replace(false);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "leader election attempt failed");
                        let deadline_passed = last_renewal
                            .is_none_or(|renewed| renewed.elapsed() >= self.config.renew_deadline);
                        if leading && deadline_passed {
                            tracing::warn!(
                                lease = %self.config.lease_name,
                                "could not renew the Lease in time; stepping down"
                            );
                            sender.send_replace(false);
                        }
                    }
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(self.config.retry_period) => {}
                }
            }
            if *sender.borrow() {
                sender.send_replace(false);
                if let Err(error) = self.release().await {
                    tracing::warn!(%error, "could not release the Lease");
                } else {
                    tracing::info!(lease = %self.config.lease_name, "released the Lease");
                }
            }
            // Dropping the sender ends `Leadership::acquired` waits with false.
        });
        (Leadership { leading: receiver }, task)
    }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::lookup;

    #[test]
    fn config_comes_from_the_charts_environment() {
        let base = [
            ("POD_NAMESPACE", "mailsync-system"),
            ("POD_NAME", "mailsync-controller-abc"),
            ("MAILSYNC_LEADER_ELECTION_LEASE", "mailsync-controller"),
        ];
        let config = config_from_lookup(lookup(&base))
            .expect("valid")
            .expect("on by default");
        assert_eq!(
            config,
            LeaderElectionConfig::new(
                "mailsync-system",
                "mailsync-controller",
                "mailsync-controller-abc"
            )
        );

        let mut timed = base.to_vec();
        timed.extend([
            ("MAILSYNC_LEADER_ELECTION", "true"),
            ("MAILSYNC_LEADER_ELECTION_LEASE_DURATION", "30"),
            ("MAILSYNC_LEADER_ELECTION_RENEW_DEADLINE", "20"),
            ("MAILSYNC_LEADER_ELECTION_RETRY_PERIOD", "4"),
        ]);
        let config = config_from_lookup(lookup(&timed))
            .expect("valid")
            .expect("on");
        assert_eq!(config.lease_duration, Duration::from_secs(30));
        assert_eq!(config.renew_deadline, Duration::from_secs(20));
        assert_eq!(config.retry_period, Duration::from_secs(4));

        let off = config_from_lookup(lookup(&[("MAILSYNC_LEADER_ELECTION", "false")]));
        assert!(matches!(off, Ok(None)));

        let error = config_from_lookup(lookup(&base[..2])).expect_err("no lease name");
        assert_eq!(error.variable, "MAILSYNC_LEADER_ELECTION_LEASE");
        let mut bad = base.to_vec();
        bad.push(("MAILSYNC_LEADER_ELECTION_RENEW_DEADLINE", "15"));
        let error = config_from_lookup(lookup(&bad)).expect_err("deadline = lease duration");
        assert!(error.to_string().contains("renew deadline"), "{error}");
        let mut bad = base.to_vec();
        bad.push(("MAILSYNC_LEADER_ELECTION_RETRY_PERIOD", "soon"));
        assert!(config_from_lookup(lookup(&bad)).is_err());
    }

    #[test]
    fn default_timings_leave_the_leader_time_to_step_down() {
        let config = LeaderElectionConfig::new("ns", "lease", "pod-a");
        assert!(config.renew_deadline < config.lease_duration);
        assert!(config.retry_period < config.renew_deadline);
    }
}
