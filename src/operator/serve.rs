//! The `mailsync operator` process around the controller: logs and traces
//! ([`crate::telemetry`]), the `/metrics`, `/healthz` and `/readyz` server
//! ([`super::metrics`]), leader election ([`super::leader`]) and graceful shutdown.
//!
//! The sequence: telemetry and the metrics server start first (live, not ready); the API
//! server is reached (ready: this replica can lead); with leader election on, the replica
//! waits for the Lease, then runs the controller while it leads (`mailsync_leader` is 1 then)
//! and goes back to waiting if it loses the Lease. SIGTERM or SIGINT stops the controller
//! (the reconciles in flight finish), then the Lease is released so a standby replica takes
//! over at once, the metrics server stops and the last spans are sent.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::watch;

use super::controller::{self, StopSignal};
use super::leader::{self, LeaderElector};
use super::metrics::{self, Health, Metrics, MetricsServer};
use super::settings::OperatorSettings;
use crate::telemetry::{self, TelemetryConfig};

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error(transparent)]
    Settings(#[from] super::settings::SettingsError),
    #[error(transparent)]
    MetricsAddress(#[from] metrics::AddressError),
    #[error(transparent)]
    MetricsServer(#[from] metrics::MetricsServerError),
    #[error(transparent)]
    LeaderConfig(#[from] leader::LeaderConfigError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot listen for SIGTERM: {0}")]
    Signal(std::io::Error),
    #[error("no Kubernetes API: {0}")]
    Client(kube::Error),
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Runs `mailsync operator` (`image`: the `--image` argument) until SIGTERM or SIGINT and
/// returns the exit code.
pub fn main(image: Option<&str>) -> i32 {
    let config = match TelemetryConfig::from_env("mailsync-operator") {
        Ok(config) => config,
        Err(error) => {
            crate::output::error(&format!("mailsync operator: {error}"));
            return 1;
        }
    };
    let telemetry = match telemetry::init(&config) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            crate::output::error(&format!("mailsync operator: {error}"));
            return 1;
        }
    };
    let result = run(image);
    let code = match &result {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!(%error, "mailsync operator stopped");
            1
        }
    };
    // Sends the spans still buffered.
    telemetry.shutdown();
    code
}

fn run(image: Option<&str>) -> Result<(), OperatorError> {
    let settings = OperatorSettings::from_lookup(image, env_lookup)?;
    let address = metrics::address_from_lookup(env_lookup)?;
    let election = leader::config_from_lookup(env_lookup)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(OperatorError::Runtime)?;
    runtime.block_on(async {
        let (shutdown, shutdown_requested) = watch::channel(false);
        let signals = listen_for_signals(shutdown).map_err(OperatorError::Signal)?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let server =
            MetricsServer::start(address, Arc::clone(&metrics), Arc::clone(&health)).await?;
        let result = operate(
            settings,
            election,
            Arc::clone(&metrics),
            &health,
            shutdown_requested,
        )
        .await;
        health.set_ready(false);
        server.shutdown().await;
        signals.abort();
        result
    })
}

/// Sends `true` on `shutdown` at the first SIGTERM or SIGINT.
fn listen_for_signals(
    shutdown: watch::Sender<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        shutdown.send_replace(true);
    }))
}

/// Completes once `flag` is true (or its sender is gone).
async fn raised(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

fn stop_signal(future: impl Future<Output = ()> + Send + 'static) -> StopSignal {
    future.boxed().shared()
}

async fn operate(
    settings: OperatorSettings,
    election: Option<leader::LeaderElectionConfig>,
    metrics: Arc<Metrics>,
    health: &Health,
    shutdown: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    let client = kube::Client::try_default()
        .await
        .map_err(OperatorError::Client)?;
    // Ready once the API server answers: this replica can take over as leader.
    let version = tokio::select! {
        version = client.apiserver_version() => version.map_err(OperatorError::Client)?,
        _ = raised(shutdown.clone()) => return Ok(()),
    };
    tracing::info!(server = %version.git_version, "connected to the Kubernetes API");
    health.set_ready(true);

    let Some(election) = election else {
        tracing::info!("leader election is off: this replica reconciles");
        metrics.set_leader(true);
        controller::run(
            client,
            &settings,
            Arc::clone(&metrics),
            stop_signal(raised(shutdown)),
        )
        .await;
        metrics.set_leader(false);
        return Ok(());
    };

    // The election runs until the controller has stopped, so that the Lease is released
    // only after the reconciles in flight have finished.
    let (election_done, election_stop) = watch::channel(false);
    let elector = LeaderElector::new(client.clone(), election);
    let (mut leadership, election_task) = elector.spawn(raised(election_stop));
    loop {
        let acquired = tokio::select! {
            acquired = leadership.acquired() => acquired,
            _ = raised(shutdown.clone()) => false,
        };
        if !acquired || *shutdown.borrow() {
            break;
        }
        metrics.set_leader(true);
        let mut lost = leadership.clone();
        let stop = futures::future::select(
            raised(shutdown.clone()).boxed(),
            async move { lost.lost().await }.boxed(),
        )
        .map(|_| ());
        controller::run(
            client.clone(),
            &settings,
            Arc::clone(&metrics),
            stop_signal(stop),
        )
        .await;
        metrics.set_leader(false);
        if *shutdown.borrow() {
            break;
        }
        tracing::warn!("lost the leader Lease; standing by");
    }
    election_done.send_replace(true);
    let _ = election_task.await;
    Ok(())
}
