//! The sync core: mbsync 1.5 semantics between two stores, with the state file and journal.
//!
//! [`run`] synchronizes the selected channels; the command line fills [`RunOptions`].
//! [`run_with_report`] also returns what each mailbox pair saw ([`channels::RunReport`]).

pub mod channels;
pub mod convert;
pub mod debug;
#[cfg(test)]
mod disk_tests;
pub mod entry;
pub mod error;
pub mod files;
pub mod journal;
pub mod listing_file;
#[cfg(test)]
pub mod mem_store;
pub mod pair;
pub mod passes;
pub mod plan;
pub mod state;
pub mod stats;
pub mod status_ahead;

use crate::config::{ChannelRef, Config, OpSettings};

/// The `-T` test hooks (spec sync-semantics §6.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestHooks {
    /// `a`: far store through the asynchronous proxy (counts proxy steps).
    pub async_far: bool,
    /// `A`: both stores through the asynchronous proxy.
    pub async_both: bool,
    /// `j`: keep the journal, write `.new` only, print the `###` line.
    pub keep_journal: bool,
    /// `J`: also journal the end-of-run records.
    pub journal_end: bool,
    /// `s<N>`: stop with exit code 100 when step N is counted (0 = no limit).
    pub step_limit: u64,
    /// `u`: stores withhold the UIDs of stored messages.
    pub withhold_uids: bool,
    /// `x`: do not expunge at the end.
    pub no_expunge: bool,
    /// `z`: Maildir does not wait when a directory was modified in the current second.
    pub no_fresh_wait: bool,
}

/// The `-D` debug categories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugFlags {
    pub crash: bool,
    pub driver: bool,
    pub driver_all: bool,
    pub maildir: bool,
    pub main: bool,
    pub net: bool,
    pub net_all: bool,
    pub sync: bool,
}

impl DebugFlags {
    /// Any category other than `crash`: forces verbose mode and disables progress counters.
    pub fn any_output(&self) -> bool {
        self.driver
            || self.driver_all
            || self.maildir
            || self.main
            || self.net
            || self.net_all
            || self.sync
    }
}

/// Everything the command line says about a sync run besides the channel selection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Operation settings given on the command line (they take precedence, per class).
    pub ops: OpSettings,
    /// `-y`: compute and print everything, change nothing.
    pub dry_run: bool,
    /// `-e`: extended exit code (+32 far changed, +64 near changed).
    pub ext_exit: bool,
    /// `--allow-mass-delete` (mailsync extension): the user confirms that deletions are to be
    /// propagated even where the mass-deletion guard would refuse them.
    pub allow_mass_delete: bool,
    /// `--max-connections` (mailsync extension): replaces every store's `MaxConnections`.
    pub max_connections: Option<u32>,
    pub hooks: TestHooks,
    pub debug: DebugFlags,
}

/// Synchronizes the selected channels in order and returns the process exit code
/// (0, 1, +32/+64 with `ext_exit`, 100 when the step limit was reached).
pub fn run(config: &Config, selection: &[ChannelRef], options: &RunOptions) -> i32 {
    channels::run_channels(config, selection, options)
}

/// Like [`run`], and also reports what the run saw of each mailbox pair (UIDVALIDITYs,
/// message counts, the error lines printed for it) for callers that publish it, such as the
/// Kubernetes worker. Error lines are still printed as usual.
pub fn run_with_report(
    config: &Config,
    selection: &[ChannelRef],
    options: &RunOptions,
) -> channels::RunReport {
    crate::output::record_errors(true);
    let _ = crate::output::take_recorded_errors();
    let report = channels::run_channels_with_report(config, selection, options);
    crate::output::record_errors(false);
    report
}
