//! mailsync: a mail synchronizer compatible with isync/mbsync, and a Kubernetes operator that
//! runs it.
//!
//! - [`config`] reads an mbsyncrc into typed configuration;
//! - [`cli`] is the mbsync-compatible command line and the subcommands;
//! - [`store`] holds the `Store` trait and its drivers;
//! - [`sync`] is the sync core (planner, executor, state file and journal);
//! - [`operator`] holds the Kubernetes custom resources, their CRDs and the controller;
//! - [`worker`] runs a sync inside a Job and reports it in the channel's status;
//! - [`output`] prints with mbsync's verbosity rules;
//! - [`telemetry`] sets up logs and traces (JSON logs, OTLP export, trace context for Jobs).

pub mod cli;
pub mod config;
pub mod operator;
pub mod output;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod worker;

/// Helpers shared by unit tests.
#[cfg(test)]
mod test_env {
    /// An environment lookup (as `std::env::var(..).ok()`) over fixed pairs.
    pub fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }
}
