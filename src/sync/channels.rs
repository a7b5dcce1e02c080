//! Running the selected channels (spec sync-semantics §4.1 phase 1, §3.3 of the config spec,
//! §7): effective operations, opening the stores, selecting the boxes, running each mailbox
//! pair with its state files on disk, the summary line and the exit code.
//!
//! The pairs of a channel run concurrently (mailsync extension `MaxConnections`): up to
//! [`pairs_at_once`] workers take the pairs in order, each with its own store instances and
//! journal writer. The main thread is the first worker and keeps the connections that listed
//! the boxes and asked their STATUS; the other workers' IMAP instances start from what those
//! learnt ([`ImapSeed`]) and connect only when a pair has a command to send. What the pairs
//! share ([`ChannelRun`]) is behind locks: the queue, the outcome, the progress counter and
//! the order of planning rule 5 ([`UpgradeOrder`]).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::config::patterns::{
    channel_boxes, channel_list_areas, listed_to_canonical, name_to_open, state_file_path,
};
use crate::config::{
    ChannelConfig, ChannelRef, Config, DEFAULT_MAX_CONNECTIONS, ImapStoreConfig,
    MaildirStoreConfig, Side, SideOps, StoreConfig, SyncStateLocation, effective_ops,
};
use crate::output;
use crate::store::imap::{ImapOptions, ImapSeed, ImapStore};
use crate::store::maildir::layout::Layout;
use crate::store::maildir::{MaildirOptions, MaildirStore, ReadAhead};
use crate::store::{FailureScope, Reporter, Store, StoreError};
use crate::sync::convert::new_tuid;
use crate::sync::debug::{self, DebugStore};
use crate::sync::entry::{PairState, Record};
use crate::sync::error::SyncError;
use crate::sync::files::{
    StateLock, StatePaths, create_state_dir, delete_channel_state, load_state, load_state_locked,
    save_state,
};
use crate::sync::journal::{Journal, JournalOptions};
use crate::sync::listing_file;
use crate::sync::pair::{BoxesSeen, Counters, PairOptions, PairRun, ProgressReport, StateFiles};
use crate::sync::plan::{PairSettings, StoreTraits};
use crate::sync::stats::{
    ProgressMeter, RunProgress, ext_exit_bits, progress_erase, summary_line, terminal_columns,
};
use crate::sync::status_ahead;
use crate::sync::{DebugFlags, RunOptions};

/// The state files of one pair on disk, journalling through the process-wide [`Journal`].
pub struct DiskFiles<'j> {
    pub journal: &'j mut Journal,
    pub paths: StatePaths,
    pub lock: Option<StateLock>,
    /// `:<farstore>:<farbox>-:<nearstore>:<nearbox>` for the lock error.
    pub label: String,
    pub channel: String,
    pub dry_run: bool,
    pub fsync: bool,
    pub keep_journal: bool,
}

impl StateFiles for DiskFiles<'_> {
    fn load(&mut self, expire_side: Side) -> Result<PairState, SyncError> {
        let state = if self.dry_run {
            load_state(&self.paths, expire_side)?
        } else {
            load_state_locked(&self.paths, expire_side, &mut self.lock, &self.label)?
        };
        self.journal.begin_pair(self.paths.clone(), state.replayed);
        Ok(state)
    }
    fn lock(&mut self) -> Result<(), SyncError> {
        if !self.dry_run && self.lock.is_none() {
            self.lock = Some(StateLock::acquire(&self.paths, &self.label)?);
        }
        Ok(())
    }
    fn log(&mut self, record: &Record) -> Result<(), SyncError> {
        self.journal.log(record)
    }
    fn count_step(&mut self) -> Result<(), SyncError> {
        self.journal.count_step()
    }
    fn flush(&mut self) -> Result<(), SyncError> {
        self.journal.flush_to_disk()
    }
    fn wrote_records(&self) -> bool {
        self.journal.wrote_records()
    }
    fn hash_line(&self) -> String {
        self.journal.hash_line()
    }
    fn save(&mut self, state: &PairState, expire_side: Side) -> Result<(), SyncError> {
        self.journal.end_pair();
        if self.dry_run {
            return Ok(());
        }
        save_state(
            &self.paths,
            state,
            expire_side,
            self.fsync,
            self.keep_journal,
        )
    }
    fn delete(&mut self) -> Result<(), SyncError> {
        if self.dry_run {
            return Ok(());
        }
        delete_channel_state(&self.paths, &self.channel)?;
        // The lock file is gone with the state; do not unlink it again.
        if let Some(lock) = self.lock.take() {
            lock.close();
        }
        Ok(())
    }
    fn end(&mut self) {
        self.journal.end_pair();
        if let Some(lock) = self.lock.take() {
            lock.release();
        }
    }
}

/// Passes store notices to the console with the run's verbosity.
struct ConsoleReporter {
    debug: bool,
}

impl Reporter for ConsoleReporter {
    fn notice(&self, text: &str) {
        output::notice(text);
    }
    fn warning(&self, text: &str) {
        output::warning(text);
    }
    fn debug(&self, text: &str) {
        if self.debug {
            output::stdout_line(text);
        }
    }
}

/// What the pair needs to know about a store: the config's settings and what the opened
/// store can do.
fn traits_of(config: &StoreConfig, store: &dyn Store) -> StoreTraits {
    let common = config.common();
    StoreTraits {
        max_size: common.max_size,
        has_trash: common.trash.is_some(),
        trash_new_only: common.trash_new_only,
        trash_remote_new: common.trash_remote_new,
        supported_flags: store.supported_flags(),
        maildir: matches!(config, StoreConfig::Maildir(_)),
    }
}

/// An opened store of either driver.
enum OpenedStore {
    Maildir(Box<MaildirStore>),
    Imap(Box<ImapStore>),
}

impl OpenedStore {
    fn as_store(&mut self) -> &mut dyn Store {
        match self {
            OpenedStore::Maildir(store) => &mut **store,
            OpenedStore::Imap(store) => &mut **store,
        }
    }

    fn as_store_ref(&self) -> &dyn Store {
        match self {
            OpenedStore::Maildir(store) => &**store,
            OpenedStore::Imap(store) => &**store,
        }
    }

    /// The IMAP store, if this is one.
    fn imap(&mut self) -> Option<&mut ImapStore> {
        match self {
            OpenedStore::Imap(store) => Some(store),
            OpenedStore::Maildir(_) => None,
        }
    }

    /// Lets a Maildir store's scans use the directories `read_ahead` lists.
    fn take_read_ahead(&mut self, read_ahead: &Option<ReadAhead>) {
        if let (OpenedStore::Maildir(store), Some(read_ahead)) = (self, read_ahead) {
            store.set_read_ahead(read_ahead.clone());
        }
    }

    /// The Maildir directory of a box (Maildir stores only).
    fn box_dir(&self, name: &str) -> Option<String> {
        match self {
            OpenedStore::Maildir(store) => store.box_dir(name).ok(),
            OpenedStore::Imap(_) => None,
        }
    }
}

/// For a channel between a Maildir and an IMAP store: starts listing the Maildir directories
/// of the boxes an earlier run synced (those with a listing snapshot) on a thread, so that
/// their scans need not read them while the IMAP side logs in.
fn start_read_ahead(
    config: &Config,
    channel: &ChannelConfig,
    selected: &ChannelRef,
    stores: &[&StoreConfig],
) -> Option<ReadAhead> {
    let (side, maildir) = match stores {
        [StoreConfig::Imap(_), StoreConfig::Maildir(maildir)] => (Side::Near, maildir),
        [StoreConfig::Maildir(maildir), StoreConfig::Imap(_)] => (Side::Far, maildir),
        _ => return None,
    };
    let layout = Layout::from_config(maildir);
    let dirs =
        status_ahead::boxes_with_snapshots(config, channel, selected, [stores[0], stores[1]], side)
            .iter()
            .filter_map(|name| layout.box_dir(name).ok())
            .collect();
    Some(ReadAhead::start(dirs))
}

/// Opens a store: a Maildir is checked, an IMAP store connects and logs in (spec §3.3: a
/// failure here fails the store for the rest of the run, "temporarily" for connection
/// failures).
fn open_store(
    config: &Config,
    store: &StoreConfig,
    options: &RunOptions,
    list_ahead: bool,
    status_ahead: Vec<String>,
) -> Result<OpenedStore, StoreError> {
    match store {
        StoreConfig::Maildir(maildir) => {
            let maildir_options = MaildirOptions {
                fsync: config.fsync,
                no_fresh_wait: options.hooks.no_fresh_wait,
                withhold_uids: options.hooks.withhold_uids,
            };
            let reporter = Rc::new(ConsoleReporter {
                debug: options.debug.maildir,
            });
            MaildirStore::new(maildir, maildir_options, reporter)
                .map(|store| OpenedStore::Maildir(Box::new(store)))
        }
        StoreConfig::Imap(imap) => {
            let mut opened = new_imap_store(config, imap, options, list_ahead, status_ahead)?;
            opened.connect()?;
            Ok(OpenedStore::Imap(Box::new(opened)))
        }
    }
}

/// An IMAP store instance, not connected yet.
fn new_imap_store(
    config: &Config,
    imap: &ImapStoreConfig,
    options: &RunOptions,
    list_ahead: bool,
    status_ahead: Vec<String>,
) -> Result<ImapStore, StoreError> {
    let Some(account) = imap.account_config(config) else {
        return Err(StoreError::store(format!(
            "Error: store '{}': no IMAP account '{}' defined",
            imap.common.name, imap.account
        )));
    };
    let imap_options = ImapOptions {
        buffer_limit: config.buffer_limit,
        withhold_uids: options.hooks.withhold_uids,
        trace: options.debug.net || options.debug.net_all,
        list_ahead,
        status_ahead,
        ..ImapOptions::default()
    };
    let reporter = Rc::new(ConsoleReporter {
        debug: options.debug.net || options.debug.net_all,
    });
    ImapStore::new(imap, account, imap_options, reporter)
}

/// Checks that each side can expunge as its operations ask (spec sync-semantics §4.3, store
/// amendments): ExpungeSolo needs selective expunge; trashing without it is announced as racy
/// once per store and process.
fn check_expunge_support(
    ops: &[SideOps; 2],
    traits: &[StoreTraits; 2],
    names: [&str; 2],
    selective_expunge: [bool; 2],
    racy_noticed: &mut HashSet<String>,
) -> Result<(), String> {
    for side in Side::BOTH {
        let t = side.index();
        let o = side.other().index();
        if selective_expunge[t] {
            continue;
        }
        let name = names[t];
        if ops[t].expunge_solo {
            return Err(format!("Error: Store {name} does not support ExpungeSolo."));
        }
        let trashing = traits[t].has_trash || traits[o].trash_remote_new;
        if ops[t].expunge && trashing && racy_noticed.insert(name.to_string()) {
            output::notice(&format!(
                "Notice: Trashing in Store {name} is prone to race conditions."
            ));
        }
    }
    Ok(())
}

/// The progress counter (§7.3): shown only when stdout is a terminal, at normal verbosity
/// and without debug output; refreshed (at most every 300 ms) as work is discovered and
/// done, erased before any other output (by `output`) and at the end.
struct ConsoleProgress {
    enabled: bool,
    meter: ProgressMeter,
    run: RunProgress,
    /// Done and planned counters of the channels finished so far …
    earlier: (Counters, Counters),
    /// … and of each worker of the running channel (by slot).
    workers: Vec<(Counters, Counters)>,
}

impl ConsoleProgress {
    fn new(options: &RunOptions, channels_total: u32) -> ConsoleProgress {
        // SAFETY: isatty only inspects the file descriptor.
        let tty = unsafe { libc::isatty(1) } == 1;
        ConsoleProgress {
            enabled: tty
                && output::verbosity() == output::Verbosity::Normal
                && !options.debug.any_output(),
            meter: ProgressMeter::new(terminal_columns()),
            run: RunProgress {
                channels_total,
                ..RunProgress::default()
            },
            earlier: (Counters::default(), Counters::default()),
            workers: Vec::new(),
        }
    }

    /// Shows the line if a refresh is due.
    fn refresh(&mut self) {
        if !self.enabled {
            return;
        }
        let (mut done, mut planned) = self.earlier;
        for (worker_done, worker_planned) in &self.workers {
            done.add(worker_done);
            planned.add(worker_planned);
        }
        let stats = done.to_stats_with_totals(&planned);
        if let Some(line) = self.meter.refresh(Instant::now(), &self.run, &stats) {
            output::show_progress(&line, &progress_erase(&line));
        }
    }

    fn boxes_found(&mut self, count: u32) {
        self.run.boxes_total += count;
        self.refresh();
    }

    fn box_done(&mut self) {
        self.run.boxes_done += 1;
        self.refresh();
    }

    fn channel_done(&mut self) {
        for (done, planned) in std::mem::take(&mut self.workers) {
            self.earlier.0.add(&done);
            self.earlier.1.add(&planned);
        }
        self.run.channels_done += 1;
        self.refresh();
    }

    /// A worker's counters of the running channel changed.
    fn worker_update(&mut self, slot: usize, done: &Counters, planned: &Counters) {
        if self.workers.len() <= slot {
            self.workers.resize(slot + 1, Default::default());
        }
        self.workers[slot] = (*done, *planned);
        self.refresh();
    }
}

/// The directory that must exist for the Maildir box at `box_dir` to be real: the parent of
/// the `Inbox` for boxes in the Inbox area, else the store's `Path`, else the box's parent.
/// Returns it if it does not exist.
fn missing_maildir_root(store: &MaildirStoreConfig, box_dir: &str) -> Option<String> {
    let parent_of = |dir: &str| -> String {
        let trimmed = dir.trim_end_matches('/');
        match trimmed.rfind('/') {
            Some(0) => "/".to_string(),
            Some(pos) => trimmed[..pos].to_string(),
            None => ".".to_string(),
        }
    };
    let box_dir = box_dir.trim_end_matches('/');
    let in_inbox = store.inbox.as_deref().is_some_and(|inbox| {
        let inbox = inbox.trim_end_matches('/');
        box_dir == inbox || box_dir.starts_with(&format!("{inbox}/"))
    });
    let root = match (&store.inbox, &store.path) {
        (Some(inbox), _) if in_inbox => parent_of(inbox),
        (_, Some(path)) if path.ends_with('/') => path.trim_end_matches('/').to_string(),
        (_, Some(path)) => parent_of(path),
        _ => parent_of(box_dir),
    };
    let root = if root.is_empty() {
        "/".to_string()
    } else {
        root
    };
    (!std::path::Path::new(&root).is_dir()).then_some(root)
}

/// The store of one side as the pair sees it: every call passes through, reported on the
/// console for the `d`, `D` and `m` debug categories.
fn debug_store<'s>(
    store: &'s mut OpenedStore,
    side: Side,
    box_name: &str,
    flags: &DebugFlags,
) -> DebugStore<'s> {
    let box_dirs = store
        .box_dir(box_name)
        .map(|dir| vec![(box_name.to_string(), dir)])
        .unwrap_or_default();
    DebugStore {
        inner: store.as_store(),
        side,
        calls: flags.driver,
        data: flags.driver_all,
        listing: flags.maildir,
        box_dirs,
    }
}

/// What a run saw: its exit code, each mailbox pair, and the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The process exit code [`run_channels`] returns.
    pub exit_code: i32,
    /// One entry per mailbox pair that was attempted, in order.
    pub mailboxes: Vec<MailboxReport>,
    /// Error lines not printed for a particular pair (stores that cannot be opened or
    /// listed, fatal errors); only while `output::record_errors` is on.
    pub errors: Vec<String>,
    /// The summary counters of the whole run.
    pub stats: crate::sync::stats::Stats,
    pub(crate) counters: Counters,
}

/// One mailbox pair of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxReport {
    pub channel: String,
    /// Canonical names [far, near] (with the channel's prefixes).
    pub names: [String; 2],
    /// UIDVALIDITYs and message counts once the pair completed.
    pub boxes: Option<BoxesSeen>,
    /// Something in the pair failed.
    pub failed: bool,
    /// The error lines printed for this pair (only while `output::record_errors` is on).
    pub errors: Vec<String>,
}

/// Files a pair's report when the pair's iteration ends, however it ends, with the error
/// lines printed meanwhile.
struct PairReportGuard<'a> {
    report: &'a mut MailboxReport,
    /// (pair index, report) of the worker that ran the pair.
    reports: &'a mut Vec<(usize, MailboxReport)>,
    index: usize,
}

impl Drop for PairReportGuard<'_> {
    fn drop(&mut self) {
        let mut report = std::mem::take(self.report);
        report.errors = output::take_recorded_errors();
        report.failed |= !report.errors.is_empty() && report.boxes.is_none();
        self.reports.push((self.index, report));
    }
}

/// One mailbox pair to run: canonical names [far, near] and whether each was listed.
struct BoxPair {
    names: [String; 2],
    listed: [bool; 2],
}

/// The whole run over the selected channels; returns the exit code.
pub fn run_channels(config: &Config, selection: &[ChannelRef], options: &RunOptions) -> i32 {
    run_channels_with_report(config, selection, options).exit_code
}

/// The whole run over the selected channels; returns the exit code with what was seen of
/// each mailbox pair. Error lines are attributed to the pair they were printed for only
/// while `output::record_errors` is on.
pub fn run_channels_with_report(
    config: &Config,
    selection: &[ChannelRef],
    options: &RunOptions,
) -> RunReport {
    let mut report = RunReport::default();
    report.exit_code = run_channels_into(config, selection, options, &mut report);
    report.stats = report.counters.to_stats();
    report
}

fn run_channels_into(
    config: &Config,
    selection: &[ChannelRef],
    options: &RunOptions,
    report: &mut RunReport,
) -> i32 {
    let hooks = &options.hooks;
    let mut journal = Journal::new(JournalOptions {
        dry_run: options.dry_run,
        fsync: config.fsync,
        step_limit: hooks.step_limit,
        keep_journal: hooks.keep_journal,
        journal_end: hooks.journal_end,
    });
    let driver_debug = options.debug.driver || options.debug.driver_all;
    let proxy = [
        options.dry_run || driver_debug || hooks.async_far || hooks.async_both,
        options.dry_run || driver_debug || hooks.async_both,
    ];
    let counters = &mut report.counters;
    let mut planned_total = Counters::default();
    let mut channels_done = 0u32;
    let mut boxes_done = 0u32;
    let mut failed = false;
    let mut failed_stores: HashMap<String, FailureScope> = HashMap::new();
    let mut racy_noticed: HashSet<String> = HashSet::new();
    let mut upgrade_dropped: HashMap<String, [bool; 2]> = HashMap::new();
    let progress = Mutex::new(ConsoleProgress::new(options, selection.len() as u32));

    for selected in selection {
        let Some(channel) = config.channel(&selected.channel) else {
            output::error(&format!(
                "No channel or group named '{}' defined.",
                selected.channel
            ));
            failed = true;
            continue;
        };
        channels_done += 1;
        output::info(&format!("Channel {}", channel.name));
        let outcome = run_channel(
            config,
            channel,
            selected,
            options,
            proxy,
            &mut journal,
            counters,
            &mut planned_total,
            &progress,
            &mut boxes_done,
            &mut failed_stores,
            &mut racy_noticed,
            &mut upgrade_dropped,
            &mut report.mailboxes,
        );
        report.errors.extend(output::take_recorded_errors());
        lock(&progress).channel_done();
        match outcome {
            Ok(ok) => failed |= !ok,
            Err(SyncError::Interrupted) => return 100,
            Err(SyncError::Fatal(text)) | Err(SyncError::Pair(text)) => {
                output::error(&text);
                report.errors.extend(output::take_recorded_errors());
                return 1;
            }
        }
    }

    output::erase_progress();
    let stats = counters.to_stats();
    if boxes_done > 0 {
        output::notice(&summary_line(channels_done, boxes_done, &stats));
    }
    let mut code = i32::from(failed);
    if options.ext_exit {
        code += ext_exit_bits(&stats);
    }
    code
}

/// Runs one channel; `Ok(false)` if something in it failed.
#[allow(clippy::too_many_arguments)]
fn run_channel(
    config: &Config,
    channel: &ChannelConfig,
    selected: &ChannelRef,
    options: &RunOptions,
    proxy: [bool; 2],
    journal: &mut Journal,
    counters: &mut Counters,
    planned_total: &mut Counters,
    progress: &Mutex<ConsoleProgress>,
    boxes_done: &mut u32,
    failed_stores: &mut HashMap<String, FailureScope>,
    racy_noticed: &mut HashSet<String>,
    upgrade_dropped: &mut HashMap<String, [bool; 2]>,
    reports: &mut Vec<MailboxReport>,
) -> Result<bool, SyncError> {
    let mut store_configs = Vec::with_capacity(2);
    for side in Side::BOTH {
        let name = &channel.sides[side.index()].store;
        if let Some(scope) = failed_stores.get(name) {
            let how = if *scope == FailureScope::Temporary {
                "temporarily failed"
            } else {
                "failed"
            };
            output::info(&format!(
                "Skipping due to {how} {} store {name}.",
                side.label()
            ));
            return Ok(true);
        }
        let Some(store) = config.store(name) else {
            output::error(&format!(
                "Error: channel {}: {} store '{name}' is not defined",
                channel.name,
                side.label()
            ));
            return Ok(false);
        };
        store_configs.push(store);
    }
    let read_ahead = start_read_ahead(config, channel, selected, &store_configs);
    let mut stores: Vec<OpenedStore> = Vec::with_capacity(2);
    for side in Side::BOTH {
        let store = store_configs[side.index()];
        output::info(&format!(
            "Opening {} store {}...",
            side.label(),
            store.name()
        ));
        // A channel with Patterns lists both stores first: an IMAP store asks for the
        // listing in its log-in round.
        let list_ahead = selected.boxes.is_none() && !channel.patterns.is_empty();
        // The mailboxes an earlier run kept a listing snapshot of: their STATUS goes with
        // the log-in too.
        let status_ahead = if matches!(store, StoreConfig::Imap(_)) && store_configs.len() == 2 {
            status_ahead::boxes_with_snapshots(
                config,
                channel,
                selected,
                [store_configs[0], store_configs[1]],
                side,
            )
        } else {
            Vec::new()
        };
        match open_store(config, store, options, list_ahead, status_ahead) {
            Ok(mut opened) => {
                opened.take_read_ahead(&read_ahead);
                stores.push(opened);
            }
            Err(err) => {
                output::error(&err.message);
                let scope = if err.scope == FailureScope::Temporary {
                    FailureScope::Temporary
                } else {
                    FailureScope::Store
                };
                failed_stores.insert(store.name().to_string(), scope);
                return Ok(false);
            }
        }
    }
    let (far_slot, near_slot) = stores.split_at_mut(1);
    let (far_store, near_store) = (&mut far_slot[0], &mut near_slot[0]);

    // Box selection.
    let prefixes = [&channel.sides[0].mailbox, &channel.sides[1].mailbox];
    let pairs: Vec<BoxPair> = if let Some(names) = status_ahead::named_pairs(channel, selected) {
        names
            .into_iter()
            .map(|names| BoxPair {
                names,
                listed: [false, false],
            })
            .collect()
    } else {
        let areas = channel_list_areas(config, channel);
        let mut listings: Vec<Vec<String>> = Vec::with_capacity(2);
        for side in Side::BOTH {
            let t = side.index();
            let store: &mut OpenedStore = if t == 0 { far_store } else { near_store };
            let listed = match store.as_store().list(areas[t]) {
                Ok(listed) => listed,
                Err(err) => {
                    output::error(&err.message);
                    failed_stores.insert(store_configs[t].name().to_string(), err.scope);
                    return Ok(false);
                }
            };
            match listed_to_canonical(store_configs[t].common(), &listed) {
                Ok(names) => listings.push(names),
                Err(err) => {
                    output::error(&format!("Error: {err}"));
                    return Ok(false);
                }
            }
        }
        channel_boxes(channel, &listings[0], &listings[1])
            .into_iter()
            .map(|presence| BoxPair {
                names: [
                    format!("{}{}", prefixes[0], presence.name),
                    format!("{}{}", prefixes[1], presence.name),
                ],
                listed: [presence.far, presence.near],
            })
            .collect()
    };

    // Planning drops Upgrade from the channel's operations for the rest of the process
    // (§4.3 rule 5, a quirk), also when the channel is selected again.
    let mut ops = effective_ops(config, channel, &options.ops);
    let dropped = upgrade_dropped.entry(channel.name.clone()).or_default();
    for (side_ops, gone) in ops.iter_mut().zip(dropped.iter()) {
        if *gone {
            side_ops.types.upgrade = false;
        }
    }
    lock(progress).boxes_found(pairs.len() as u32);
    prefetch_statuses(
        config,
        channel,
        &pairs,
        &store_configs,
        [&mut *far_store, &mut *near_store],
    );
    let workers = pairs_at_once(
        config,
        [store_configs[0], store_configs[1]],
        options,
        pairs.len(),
    );
    let seeds = [far_store.imap(), near_store.imap()].map(|store| store.and_then(|s| s.seed()));
    let run = ChannelRun {
        config,
        channel,
        options,
        proxy,
        store_configs: [store_configs[0], store_configs[1]],
        traits: [
            traits_of(store_configs[0], far_store.as_store_ref()),
            traits_of(store_configs[1], near_store.as_store_ref()),
        ],
        selective_expunge: [
            far_store.as_store_ref().selective_expunge(),
            near_store.as_store_ref().selective_expunge(),
        ],
        expunge_check: Mutex::new(None),
        racy_noticed: Mutex::new(racy_noticed),
        queue: Mutex::new(PairQueue {
            next: 0,
            stopped: false,
        }),
        upgrade: UpgradeOrder {
            initial: ops,
            finished: Mutex::new(vec![None; pairs.len()]),
            changed: Condvar::new(),
        },
        pairs,
        progress,
        outcome: Mutex::new(ChannelOutcome::default()),
        read_ahead,
    };
    let primaries: Option<[OpenedStore; 2]> = stores.try_into().ok();
    let mut primary = Worker {
        slot: 0,
        stores: primaries,
        seeds: [None, None],
        journal,
        counters: Counters::default(),
        planned: Counters::default(),
        reports: Vec::new(),
    };
    let journal_options = *primary.journal.options();
    let finished = std::thread::scope(|scope| {
        let spawned: Vec<_> = (1..workers)
            .map(|slot| {
                let run = &run;
                let seeds = seeds.clone();
                scope.spawn(move || {
                    let mut journal = Journal::new(journal_options);
                    let mut worker = Worker {
                        slot,
                        stores: None,
                        seeds,
                        journal: &mut journal,
                        counters: Counters::default(),
                        planned: Counters::default(),
                        reports: Vec::new(),
                    };
                    run.work(&mut worker);
                    // The worker's connections close (LOGOUT) here, in its own thread.
                    worker.stores = None;
                    (worker.counters, worker.planned, worker.reports)
                })
            })
            .collect();
        run.work(&mut primary);
        let mut finished = vec![(
            primary.counters,
            primary.planned,
            std::mem::take(&mut primary.reports),
        )];
        for handle in spawned {
            match handle.join() {
                Ok(result) => finished.push(result),
                Err(_) => run.stop(Some(SyncError::Fatal(
                    "Error: a mailbox worker stopped unexpectedly".to_string(),
                ))),
            }
        }
        finished
    });
    let mut channel_reports = Vec::new();
    for (done, planned, pair_reports) in finished {
        counters.add(&done);
        planned_total.add(&planned);
        channel_reports.extend(pair_reports);
    }
    channel_reports.sort_by_key(|(index, _)| *index);
    reports.extend(channel_reports.into_iter().map(|(_, report)| report));
    *boxes_done += lock(&run.queue).next as u32;
    let run_dropped = run.upgrade.dropped();
    for t in 0..2 {
        dropped[t] |= run_dropped[t];
    }
    let outcome = std::mem::take(&mut *lock(&run.outcome));
    for (side, scope) in outcome.failed_stores {
        failed_stores.insert(channel.sides[side.index()].store.clone(), scope);
    }
    match outcome.fatal {
        Some(error) => Err(error),
        None => Ok(!outcome.failed),
    }
}

/// Locks a mutex, also one a panicking worker left poisoned (its data stays consistent:
/// every change under these locks is a single assignment or push).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Pairs of a channel between two Maildir stores run this many at a time (unless
/// `--max-connections` says otherwise).
const MAILDIR_PAIRS_AT_ONCE: usize = 4;

/// How many pairs of a channel run at once, each with its own store instances: the smallest
/// `MaxConnections` of its IMAP stores (`--max-connections` replaces them), halved when both
/// sides are the same IMAP store; [`MAILDIR_PAIRS_AT_ONCE`] between Maildir stores. The
/// `-Ts` and `-Tj` test hooks count steps over the whole process and the debug output traces
/// one pair at a time, so they run one pair at a time.
fn pairs_at_once(
    config: &Config,
    stores: [&StoreConfig; 2],
    options: &RunOptions,
    pairs: usize,
) -> usize {
    let hooks = &options.hooks;
    if hooks.step_limit != 0 || hooks.keep_journal || options.debug.any_output() {
        return 1;
    }
    let imap_limits = stores.iter().filter_map(|store| match store {
        StoreConfig::Imap(imap) => Some(options.max_connections.unwrap_or_else(|| {
            imap.account_config(config)
                .map_or(DEFAULT_MAX_CONNECTIONS, |account| account.max_connections)
        }) as usize),
        StoreConfig::Maildir(_) => None,
    });
    let mut limit = imap_limits.min().unwrap_or_else(|| {
        options
            .max_connections
            .map_or(MAILDIR_PAIRS_AT_ONCE, |count| count as usize)
    });
    if let [StoreConfig::Imap(far), StoreConfig::Imap(near)] = stores
        && far.common.name == near.common.name
    {
        limit /= 2;
    }
    limit.clamp(1, pairs.max(1))
}

/// Which pair a worker takes next; `stopped` once a store failed or the run must end.
struct PairQueue {
    next: usize,
    stopped: bool,
}

/// How the pairs of a channel ended, together.
#[derive(Default)]
struct ChannelOutcome {
    /// Something failed.
    failed: bool,
    /// Stores that failed for the rest of the run.
    failed_stores: Vec<(Side, FailureScope)>,
    /// The first error that ends the process (`Interrupted` or `Fatal`).
    fatal: Option<SyncError>,
}

/// Planning rule 5 (a quirk, spec sync-semantics §4.3) makes a pair's operations depend on
/// the pairs before it: the first pair without placeholders on a side drops Upgrade there
/// for all later pairs. Pairs running concurrently get the operations the earlier pairs left
/// exactly as one after another would: a pair without placeholders plans the same with or
/// without Upgrade (it drops it itself), and a pair with placeholders waits for the earlier
/// pairs to finish first ([`PairRun::ops_after_earlier_pairs`]).
struct UpgradeOrder {
    /// The operations at the channel's start.
    initial: [SideOps; 2],
    /// Per pair: `None` until it finished, then whether it dropped Upgrade [far, near].
    finished: Mutex<Vec<Option<[bool; 2]>>>,
    changed: Condvar,
}

impl UpgradeOrder {
    /// The operations for pair `index` given the earlier pairs finished so far; with `wait`,
    /// once all earlier pairs finished.
    fn ops_before(&self, index: usize, wait: bool) -> [SideOps; 2] {
        let mut finished = lock(&self.finished);
        while wait && finished[..index].iter().any(Option::is_none) {
            finished = self
                .changed
                .wait(finished)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let mut ops = self.initial;
        for dropped in finished[..index].iter().flatten() {
            for (side_ops, gone) in ops.iter_mut().zip(dropped) {
                if *gone {
                    side_ops.types.upgrade = false;
                }
            }
        }
        ops
    }

    fn finish(&self, index: usize, dropped: [bool; 2]) {
        lock(&self.finished)[index] = Some(dropped);
        self.changed.notify_all();
    }

    /// Upgrade was dropped on [far, near] by any pair.
    fn dropped(&self) -> [bool; 2] {
        let finished = lock(&self.finished);
        let mut any = [false; 2];
        for dropped in finished.iter().flatten() {
            for t in 0..2 {
                any[t] |= dropped[t];
            }
        }
        any
    }
}

/// Marks a pair finished in the [`UpgradeOrder`] however its run ends.
struct PairInOrder<'r> {
    order: &'r UpgradeOrder,
    index: usize,
    dropped: [bool; 2],
}

impl Drop for PairInOrder<'_> {
    fn drop(&mut self) {
        self.order.finish(self.index, self.dropped);
    }
}

/// What the workers running the pairs of one channel share.
struct ChannelRun<'a> {
    config: &'a Config,
    channel: &'a ChannelConfig,
    options: &'a RunOptions,
    proxy: [bool; 2],
    store_configs: [&'a StoreConfig; 2],
    pairs: Vec<BoxPair>,
    /// What the pairs need to know about the stores (the same for every instance).
    traits: [StoreTraits; 2],
    selective_expunge: [bool; 2],
    /// The outcome of [`check_expunge_support`], once the first pair asked.
    expunge_check: Mutex<Option<Result<(), String>>>,
    racy_noticed: Mutex<&'a mut HashSet<String>>,
    queue: Mutex<PairQueue>,
    upgrade: UpgradeOrder,
    progress: &'a Mutex<ConsoleProgress>,
    outcome: Mutex<ChannelOutcome>,
    /// Maildir directories being listed ahead of their scans, for every Maildir store.
    read_ahead: Option<ReadAhead>,
}

/// One of the workers of a channel: its own store instances (created at its first pair; an
/// IMAP instance connects only when it has a command to send), its journal writer and its
/// counters.
struct Worker<'j> {
    /// Its place in the progress counter.
    slot: usize,
    stores: Option<[OpenedStore; 2]>,
    /// What the channel's first IMAP connections learnt, for this worker's instances.
    seeds: [Option<ImapSeed>; 2],
    journal: &'j mut Journal,
    counters: Counters,
    planned: Counters,
    /// (pair index, report).
    reports: Vec<(usize, MailboxReport)>,
}

/// Passes a worker's counters to the shared progress counter.
struct WorkerProgress<'a> {
    slot: usize,
    shared: &'a Mutex<ConsoleProgress>,
}

impl ProgressReport for WorkerProgress<'_> {
    fn update(&mut self, done: &Counters, planned: &Counters) {
        lock(self.shared).worker_update(self.slot, done, planned);
    }
}

impl ChannelRun<'_> {
    /// Takes the next pair to run, unless the channel was stopped.
    fn take_pair(&self) -> Option<usize> {
        let mut queue = lock(&self.queue);
        if queue.stopped || queue.next >= self.pairs.len() {
            return None;
        }
        queue.next += 1;
        Some(queue.next - 1)
    }

    /// No further pairs start; `fatal` ends the process after the running pairs.
    fn stop(&self, fatal: Option<SyncError>) {
        lock(&self.queue).stopped = true;
        if let Some(error) = fatal {
            lock(&self.outcome).fatal.get_or_insert(error);
        }
    }

    fn pair_failed(&self) {
        lock(&self.outcome).failed = true;
    }

    /// A store failed: no further pairs start; `record` keeps the failure for later
    /// channels.
    fn store_failed(&self, side: Side, scope: FailureScope, record: bool) {
        {
            let mut outcome = lock(&self.outcome);
            outcome.failed = true;
            if record {
                outcome.failed_stores.push((side, scope));
            }
        }
        self.stop(None);
    }

    /// Runs pairs until none is left or the channel stopped.
    fn work(&self, worker: &mut Worker) {
        while let Some(index) = self.take_pair() {
            if let Err(error) = self.run_pair(worker, index) {
                self.stop(Some(error));
            }
        }
    }

    /// The worker's store instances, created at its first pair.
    fn worker_stores<'w>(
        &self,
        stores: &'w mut Option<[OpenedStore; 2]>,
        seeds: &mut [Option<ImapSeed>; 2],
    ) -> Result<&'w mut [OpenedStore; 2], (Side, StoreError)> {
        if stores.is_none() {
            let mut opened = Vec::with_capacity(2);
            for side in Side::BOTH {
                let t = side.index();
                let mut store = worker_store(
                    self.config,
                    self.store_configs[t],
                    self.options,
                    seeds[t].take(),
                )
                .map_err(|error| (side, error))?;
                store.take_read_ahead(&self.read_ahead);
                opened.push(store);
            }
            let near = opened.pop();
            let far = opened.pop();
            if let (Some(far), Some(near)) = (far, near) {
                *stores = Some([far, near]);
            }
        }
        stores
            .as_mut()
            .ok_or_else(|| (Side::Far, StoreError::store("Error: no store instance")))
    }

    /// The expunge check of the channel's stores, made (and its notice shown) once.
    fn check_expunge(&self, ops: &[SideOps; 2]) -> Result<(), String> {
        let mut check = lock(&self.expunge_check);
        check
            .get_or_insert_with(|| {
                let names = [self.store_configs[0].name(), self.store_configs[1].name()];
                check_expunge_support(
                    ops,
                    &self.traits,
                    names,
                    self.selective_expunge,
                    &mut lock(&self.racy_noticed),
                )
            })
            .clone()
    }

    /// Runs one mailbox pair; `Err` only for errors that end the process.
    fn run_pair(&self, worker: &mut Worker, index: usize) -> Result<(), SyncError> {
        let pair = &self.pairs[index];
        let mut in_order = PairInOrder {
            order: &self.upgrade,
            index,
            dropped: [false; 2],
        };
        let mut pair_report = MailboxReport {
            channel: self.channel.name.clone(),
            names: pair.names.clone(),
            ..MailboxReport::default()
        };
        let mut worker_reports = std::mem::take(&mut worker.reports);
        let guard = PairReportGuard {
            report: &mut pair_report,
            reports: &mut worker_reports,
            index,
        };
        let result = self.run_pair_reported(worker, index, &mut in_order, &mut *guard.report);
        drop(guard);
        worker.reports = worker_reports;
        result
    }

    fn run_pair_reported(
        &self,
        worker: &mut Worker,
        index: usize,
        in_order: &mut PairInOrder,
        report: &mut MailboxReport,
    ) -> Result<(), SyncError> {
        let channel = self.channel;
        let config = self.config;
        let options = self.options;
        let store_configs = self.store_configs;
        let pair = &self.pairs[index];
        let mut store_boxes = [String::new(), String::new()];
        let mut bad_name = false;
        for t in 0..2 {
            match name_to_open(store_configs[t].common(), &pair.names[t]) {
                Ok(name) => store_boxes[t] = name,
                Err(err) => {
                    output::error(&format!("Error: {err}"));
                    bad_name = true;
                }
            }
        }
        if bad_name {
            self.pair_failed();
            return Ok(());
        }
        let stores = match self.worker_stores(&mut worker.stores, &mut worker.seeds) {
            Ok(stores) => stores,
            Err((side, err)) => {
                output::error(&err.message);
                let scope = if err.scope == FailureScope::Temporary {
                    FailureScope::Temporary
                } else {
                    FailureScope::Store
                };
                self.store_failed(side, scope, true);
                return Ok(());
            }
        };
        let (far_slot, near_slot) = stores.split_at_mut(1);
        let (far_store, near_store) = (&mut far_slot[0], &mut near_slot[0]);
        // A box whose store directory vanished (an unmounted volume) is not an empty or
        // missing box: never create it there, never sync against it.
        let stores_ref: [&OpenedStore; 2] = [far_store, near_store];
        let mut root_missing = false;
        for side in Side::BOTH {
            let t = side.index();
            if let StoreConfig::Maildir(maildir) = store_configs[t]
                && let Some(dir) = stores_ref[t].box_dir(&store_boxes[t])
                && let Some(root) = missing_maildir_root(maildir, &dir)
            {
                output::error(&format!(
                    "Error: channel {}: {} box {}: the directory {root} that should hold \
                     {dir} does not exist (unmounted volume?); not treating the box as empty \
                     and not creating it.",
                    channel.name,
                    side.label(),
                    pair.names[t]
                ));
                root_missing = true;
            }
        }
        if root_missing {
            self.pair_failed();
            return Ok(());
        }
        let near_dir = near_store.box_dir(&store_boxes[1]);
        let path = match state_file_path(
            config,
            channel,
            &store_boxes[0],
            &store_boxes[1],
            near_dir.as_deref(),
        ) {
            Ok(path) => path,
            Err(err) => {
                output::error(&format!("Error: {err}"));
                self.pair_failed();
                return Ok(());
            }
        };
        let in_box = matches!(
            channel.sync_state.as_ref().unwrap_or(&config.sync_state),
            SyncStateLocation::InBox
        );
        if !options.dry_run
            && !in_box
            && let Err(err) = create_state_dir(&path)
        {
            output::error(&err.to_string());
            self.pair_failed();
            return Ok(());
        }
        let ops = self.upgrade.ops_before(index, false);
        if let Err(text) = self.check_expunge(&ops) {
            output::error(&text);
            self.pair_failed();
            return Ok(());
        }
        let mut settings = PairSettings {
            channel: channel.name.clone(),
            box_names: pair.names.clone(),
            ops,
            stores: self.traits.clone(),
            max_messages: channel.max_messages,
            expire_side: channel.expire_side,
            expire_unread: channel.expire_unread,
            copy_arrival_date: channel.copy_arrival_date,
            max_delete_percent: channel.max_delete_percent,
        };
        let pair_options = PairOptions {
            dry_run: options.dry_run,
            proxy: self.proxy,
            no_expunge: options.hooks.no_expunge,
            journal_end: options.hooks.journal_end,
            keep_journal: options.hooks.keep_journal,
            listed: pair.listed,
            store_boxes,
            allow_mass_delete: options.allow_mass_delete,
            debug_sync: options.debug.sync,
        };
        let label = format!(
            ":{}:{}-:{}:{}",
            channel.sides[0].store, pair.names[0], channel.sides[1].store, pair.names[1]
        );
        let mut files = DiskFiles {
            journal: &mut *worker.journal,
            paths: StatePaths::new(path),
            lock: None,
            label,
            channel: channel.name.clone(),
            dry_run: options.dry_run,
            fsync: config.fsync,
            keep_journal: options.hooks.keep_journal,
        };
        let listing_path = listing_file::listing_path(&files.paths.state);
        let listings_before = listing_file::read(&listing_path);
        for (t, store) in [&mut *far_store, &mut *near_store].into_iter().enumerate() {
            if let Some(imap) = store.imap() {
                imap.prime_listing(&pair_options.store_boxes[t], listings_before[t].clone());
            }
        }
        let mut tuids = new_tuid;
        debug::main(
            &options.debug,
            &format!(
                "channel {}: pair far {} <-> near {}, state {}",
                channel.name,
                pair.names[0],
                pair.names[1],
                files.paths.state.display()
            ),
        );
        let ops_in_order = || self.upgrade.ops_before(index, true);
        let mut progress = WorkerProgress {
            slot: worker.slot,
            shared: self.progress,
        };
        let boxes = &pair_options.store_boxes;
        let mut far_debug = debug_store(far_store, Side::Far, &boxes[0], &options.debug);
        let mut near_debug = debug_store(near_store, Side::Near, &boxes[1], &options.debug);
        let result = PairRun {
            settings: &mut settings,
            stores: [&mut far_debug, &mut near_debug],
            files: &mut files,
            options: &pair_options,
            counters: &mut worker.counters,
            planned: &mut worker.planned,
            progress: &mut progress,
            new_tuid: &mut tuids,
            ops_after_earlier_pairs: Some(&ops_in_order),
        }
        .run()?;
        let listings_after = [far_store.imap(), near_store.imap()]
            .map(|store| store.and_then(|imap| imap.take_listing()));
        if !options.dry_run && !result.failed {
            keep_listings(
                &files.paths.state,
                &listing_path,
                &listings_before,
                &listings_after,
                config.fsync,
            );
        }
        lock(self.progress).box_done();
        debug::main(
            &options.debug,
            &format!(
                "channel {}: pair far {} <-> near {} {}",
                channel.name,
                pair.names[0],
                pair.names[1],
                if result.failed { "failed" } else { "done" }
            ),
        );
        for ((dropped, before), after) in in_order.dropped.iter_mut().zip(&ops).zip(&settings.ops) {
            *dropped = before.types.upgrade && !after.types.upgrade;
        }
        report.failed = result.failed;
        report.boxes = result.boxes;
        if result.failed {
            self.pair_failed();
        }
        if let Some((side, scope)) = result.store_failure {
            // A broken connection only abandons this channel; later channels connect anew
            // (spec §5: errors on an established connection). Anything else fails the store
            // for the run.
            self.store_failed(side, scope, scope != FailureScope::Temporary);
        }
        Ok(())
    }
}

/// A store instance for a worker: a Maildir is checked; an IMAP store takes over what the
/// channel's first connection learnt and connects only when it has a command to send.
fn worker_store(
    config: &Config,
    store: &StoreConfig,
    options: &RunOptions,
    seed: Option<ImapSeed>,
) -> Result<OpenedStore, StoreError> {
    let StoreConfig::Imap(imap) = store else {
        return open_store(config, store, options, false, Vec::new());
    };
    let mut opened = new_imap_store(config, imap, options, false, Vec::new())?;
    if let Some(seed) = seed {
        opened.adopt_seed(seed);
    }
    Ok(OpenedStore::Imap(Box::new(opened)))
}

/// Asks each IMAP side for the status of all the mailboxes to run in one pipelined round,
/// so mailboxes unchanged since the last run need no SELECT (a failure here only means the
/// boxes are selected as usual). A single mailbox is asked only when an earlier run left a
/// listing snapshot to compare with: a STATUS round costs less than the SELECT of a big
/// unchanged mailbox, but is wasted without one.
fn prefetch_statuses(
    config: &Config,
    channel: &ChannelConfig,
    pairs: &[BoxPair],
    configs: &[&StoreConfig],
    stores: [&mut OpenedStore; 2],
) {
    match pairs {
        [] => return,
        [single] if !has_listing_snapshot(config, channel, single, configs, &stores) => return,
        _ => {}
    }
    for (t, store) in stores.into_iter().enumerate() {
        let Some(imap) = store.imap() else {
            continue;
        };
        let names: Vec<String> = pairs
            .iter()
            .filter_map(|pair| name_to_open(configs[t].common(), &pair.names[t]).ok())
            .collect();
        let _ = imap.prefetch_status(&names);
    }
}

/// Whether the pair's listing side file exists (see [`prefetch_statuses`]).
fn has_listing_snapshot(
    config: &Config,
    channel: &ChannelConfig,
    pair: &BoxPair,
    configs: &[&StoreConfig],
    stores: &[&mut OpenedStore; 2],
) -> bool {
    let (Ok(far), Ok(near)) = (
        name_to_open(configs[0].common(), &pair.names[0]),
        name_to_open(configs[1].common(), &pair.names[1]),
    ) else {
        return false;
    };
    let near_dir = stores[1].box_dir(&near);
    state_file_path(config, channel, &far, &near, near_dir.as_deref())
        .is_ok_and(|state| listing_file::listing_path(std::path::Path::new(&state)).exists())
}

/// After a pair: replaces its listing side file when the stores learnt something new (only
/// while the state file exists; a pair whose state was deleted loses its side file too).
fn keep_listings(
    state: &std::path::Path,
    path: &std::path::Path,
    before: &listing_file::Snapshots,
    after: &listing_file::Snapshots,
    fsync: bool,
) {
    let wanted = if state.exists() {
        after.clone()
    } else {
        [None, None]
    };
    if &wanted == before && (wanted.iter().any(Option::is_some) || !path.exists()) {
        return;
    }
    if let Err(err) = listing_file::write(path, &wanted, fsync) {
        output::warning(&format!("Warning: {err}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir(path: Option<&str>, inbox: Option<&str>) -> MaildirStoreConfig {
        MaildirStoreConfig {
            common: Default::default(),
            path: path.map(str::to_string),
            inbox: inbox.map(str::to_string),
            sub_folders: None,
            info_delimiter: ':',
            fsync: false,
        }
    }

    #[test]
    fn upgrade_order_gives_each_pair_what_the_earlier_pairs_left() {
        let mut initial = [SideOps::default(); 2];
        for ops in &mut initial {
            ops.types.upgrade = true;
            ops.types.new = true;
        }
        let order = UpgradeOrder {
            initial,
            finished: Mutex::new(vec![None; 4]),
            changed: Condvar::new(),
        };
        let upgrades = |ops: [SideOps; 2]| ops.map(|side| side.types.upgrade);
        // Pair 2 finished first and dropped Upgrade on the far side: that is no concern of
        // the pairs before it.
        order.finish(2, [true, false]);
        assert_eq!(upgrades(order.ops_before(1, false)), [true, true]);
        std::thread::scope(|scope| {
            // Pair 3 has placeholders: it waits for pairs 0 to 2 and sees both drops.
            let waiting = scope.spawn(|| order.ops_before(3, true));
            order.finish(0, [false, false]);
            order.finish(1, [false, true]);
            let ops = waiting.join().expect("waiting pair");
            assert_eq!(upgrades(ops), [false, false]);
            // Everything else is left as it was.
            assert!(ops.iter().all(|side| side.types.new));
        });
        order.finish(3, [false, false]);
        assert_eq!(order.dropped(), [true, true]);
    }

    #[test]
    fn pairs_at_once_follow_max_connections_and_the_hooks() {
        let env = crate::config::Environment {
            home: "/home/u".into(),
            xdg_config_home: None,
            xdg_state_home: None,
        };
        let text = "IMAPAccount a\nHost h\nMaxConnections 7\n\nIMAPStore far\nAccount a\n\n\
                    IMAPStore other\nHost h\n\n\
                    MaildirStore near\nPath /m/\n\nMaildirStore near2\nPath /n/\n";
        let config = match crate::config::parse_text("rc", text.as_bytes(), &env) {
            Ok(loaded) => loaded.config,
            Err(error) => panic!("{error}"),
        };
        let store = |name: &str| match config.store(name) {
            Some(store) => store,
            None => panic!("no store {name}"),
        };
        let at_once = |far: &str, near: &str, options: &RunOptions, pairs: usize| {
            pairs_at_once(&config, [store(far), store(near)], options, pairs)
        };
        let plain = RunOptions::default();
        assert_eq!(at_once("far", "near", &plain, 20), 7);
        assert_eq!(
            at_once("far", "near", &plain, 3),
            3,
            "never more than pairs"
        );
        assert_eq!(at_once("far", "near", &plain, 0), 1);
        assert_eq!(
            at_once("other", "near", &plain, 20),
            DEFAULT_MAX_CONNECTIONS as usize
        );
        assert_eq!(
            at_once("far", "other", &plain, 20),
            DEFAULT_MAX_CONNECTIONS as usize
        );
        assert_eq!(
            at_once("far", "far", &plain, 20),
            3,
            "two connections per pair"
        );
        assert_eq!(at_once("near", "near2", &plain, 20), MAILDIR_PAIRS_AT_ONCE);
        let overridden = RunOptions {
            max_connections: Some(2),
            ..RunOptions::default()
        };
        assert_eq!(at_once("far", "near", &overridden, 20), 2);
        assert_eq!(at_once("near", "near2", &overridden, 20), 2);
        let mut sequential = Vec::new();
        let mut options = RunOptions::default();
        options.hooks.step_limit = 5;
        sequential.push(options.clone());
        let mut options = RunOptions::default();
        options.hooks.keep_journal = true;
        sequential.push(options.clone());
        let mut options = RunOptions::default();
        options.debug.sync = true;
        sequential.push(options);
        for options in &sequential {
            assert_eq!(at_once("far", "near", options, 20), 1, "{options:?}");
        }
    }

    #[test]
    fn maildir_root_of_inbox_path_and_other_boxes() {
        let tmp = match tempfile::tempdir() {
            Ok(tmp) => tmp,
            Err(e) => panic!("{e}"),
        };
        let dir = tmp.path().display().to_string();
        let gone = format!("{dir}/mnt");
        // The Inbox's parent decides for the Inbox area.
        let store = maildir(Some(&format!("{dir}/")), Some(&format!("{gone}/inbox")));
        assert_eq!(
            missing_maildir_root(&store, &format!("{gone}/inbox")),
            Some(gone.clone())
        );
        assert_eq!(
            missing_maildir_root(&store, &format!("{gone}/inbox/sub")),
            Some(gone.clone())
        );
        // Boxes under an existing Path are fine, even nested ones whose parent is missing.
        assert_eq!(missing_maildir_root(&store, &format!("{dir}/box")), None);
        assert_eq!(missing_maildir_root(&store, &format!("{dir}/a/b")), None);
        // A Path that vanished.
        let store = maildir(Some(&format!("{gone}/mail/")), None);
        assert_eq!(
            missing_maildir_root(&store, &format!("{gone}/mail/box")),
            Some(format!("{gone}/mail"))
        );
        // An existing Inbox parent.
        let store = maildir(None, Some(&format!("{dir}/inbox")));
        assert_eq!(missing_maildir_root(&store, &format!("{dir}/inbox")), None);
    }
}
