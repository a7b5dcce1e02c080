//! Running the selected channels (spec sync-semantics §4.1 phase 1, §3.3 of the config spec,
//! §7): effective operations, opening the stores, selecting the boxes, running each mailbox
//! pair with its state files on disk, the summary line and the exit code.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Instant;

use crate::config::patterns::{
    box_list_name, channel_boxes, channel_list_areas, listed_to_canonical, name_to_open,
    state_file_path,
};
use crate::config::{
    ChannelConfig, ChannelRef, Config, MaildirStoreConfig, Side, SideOps, StoreConfig,
    SyncStateLocation, effective_ops,
};
use crate::output;
use crate::store::imap::{ImapOptions, ImapStore};
use crate::store::maildir::{MaildirOptions, MaildirStore};
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

    /// The Maildir directory of a box (Maildir stores only).
    fn box_dir(&self, name: &str) -> Option<String> {
        match self {
            OpenedStore::Maildir(store) => store.box_dir(name).ok(),
            OpenedStore::Imap(_) => None,
        }
    }
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
            let mut opened = ImapStore::new(imap, account, imap_options, reporter)?;
            opened.connect()?;
            Ok(OpenedStore::Imap(Box::new(opened)))
        }
    }
}

/// Checks that each side can expunge as its operations ask (spec sync-semantics §4.3, store
/// amendments): ExpungeSolo needs selective expunge; trashing without it is announced as racy
/// once per store and process.
fn check_expunge_support(
    ops: &[SideOps; 2],
    traits: &[StoreTraits; 2],
    stores: [&dyn Store; 2],
    racy_noticed: &mut HashSet<String>,
) -> Result<(), String> {
    for side in Side::BOTH {
        let t = side.index();
        let o = side.other().index();
        if stores[t].selective_expunge() {
            continue;
        }
        let name = stores[t].name();
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
    done: Counters,
    planned: Counters,
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
            done: Counters::default(),
            planned: Counters::default(),
        }
    }

    /// Shows the line if a refresh is due.
    fn refresh(&mut self) {
        if !self.enabled {
            return;
        }
        let stats = self.done.to_stats_with_totals(&self.planned);
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
        self.run.channels_done += 1;
        self.refresh();
    }
}

impl ProgressReport for ConsoleProgress {
    fn update(&mut self, done: &Counters, planned: &Counters) {
        self.done = *done;
        self.planned = *planned;
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
    reports: &'a mut Vec<MailboxReport>,
}

impl Drop for PairReportGuard<'_> {
    fn drop(&mut self) {
        let mut report = std::mem::take(self.report);
        report.errors = output::take_recorded_errors();
        report.failed |= !report.errors.is_empty() && report.boxes.is_none();
        self.reports.push(report);
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
    let mut planned = Counters::default();
    let mut channels_done = 0u32;
    let mut boxes_done = 0u32;
    let mut failed = false;
    let mut failed_stores: HashMap<String, FailureScope> = HashMap::new();
    let mut racy_noticed: HashSet<String> = HashSet::new();
    let mut upgrade_dropped: HashMap<String, [bool; 2]> = HashMap::new();
    let mut progress = ConsoleProgress::new(options, selection.len() as u32);

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
            &mut planned,
            &mut progress,
            &mut boxes_done,
            &mut failed_stores,
            &mut racy_noticed,
            &mut upgrade_dropped,
            &mut report.mailboxes,
        );
        report.errors.extend(output::take_recorded_errors());
        progress.channel_done();
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
    planned: &mut Counters,
    progress: &mut ConsoleProgress,
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
            crate::sync::status_ahead::boxes_with_snapshots(
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
            Ok(opened) => stores.push(opened),
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
    let pairs: Vec<BoxPair> = if let Some(list) = &selected.boxes {
        list.iter()
            .map(|element| {
                let name = box_list_name(element);
                BoxPair {
                    names: [
                        format!("{}{name}", prefixes[0]),
                        format!("{}{name}", prefixes[1]),
                    ],
                    listed: [false, false],
                }
            })
            .collect()
    } else if channel.patterns.is_empty() {
        let single = |p: &str| {
            if p.is_empty() {
                "INBOX".to_string()
            } else {
                p.to_string()
            }
        };
        vec![BoxPair {
            names: [single(prefixes[0]), single(prefixes[1])],
            listed: [false, false],
        }]
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
    let mut all_ok = true;
    progress.boxes_found(pairs.len() as u32);
    prefetch_statuses(&pairs, &store_configs, [&mut *far_store, &mut *near_store]);
    for pair in pairs {
        *boxes_done += 1;
        let mut pair_report = MailboxReport {
            channel: channel.name.clone(),
            names: pair.names.clone(),
            ..MailboxReport::default()
        };
        let pair_report = PairReportGuard {
            report: &mut pair_report,
            reports: &mut *reports,
        };
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
            all_ok = false;
            continue;
        }
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
            all_ok = false;
            continue;
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
                all_ok = false;
                continue;
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
            all_ok = false;
            continue;
        }
        let traits = [
            traits_of(store_configs[0], far_store.as_store_ref()),
            traits_of(store_configs[1], near_store.as_store_ref()),
        ];
        if let Err(text) = check_expunge_support(
            &ops,
            &traits,
            [far_store.as_store_ref(), near_store.as_store_ref()],
            racy_noticed,
        ) {
            output::error(&text);
            all_ok = false;
            continue;
        }
        let mut settings = PairSettings {
            channel: channel.name.clone(),
            box_names: pair.names.clone(),
            ops,
            stores: traits,
            max_messages: channel.max_messages,
            expire_side: channel.expire_side,
            expire_unread: channel.expire_unread,
            copy_arrival_date: channel.copy_arrival_date,
            max_delete_percent: channel.max_delete_percent,
        };
        let pair_options = PairOptions {
            dry_run: options.dry_run,
            proxy,
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
            journal: &mut *journal,
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
        let boxes = &pair_options.store_boxes;
        let mut far_debug = debug_store(far_store, Side::Far, &boxes[0], &options.debug);
        let mut near_debug = debug_store(near_store, Side::Near, &boxes[1], &options.debug);
        let result = PairRun {
            settings: &mut settings,
            stores: [&mut far_debug, &mut near_debug],
            files: &mut files,
            options: &pair_options,
            counters: &mut *counters,
            planned: &mut *planned,
            progress: &mut *progress,
            new_tuid: &mut tuids,
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
        progress.box_done();
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
        for t in 0..2 {
            if ops[t].types.upgrade && !settings.ops[t].types.upgrade {
                dropped[t] = true;
            }
        }
        ops = settings.ops;
        pair_report.report.failed = result.failed;
        pair_report.report.boxes = result.boxes;
        if result.failed {
            all_ok = false;
        }
        if let Some((side, scope)) = result.store_failure {
            // A broken connection only abandons this channel; later channels connect anew
            // (spec §5: errors on an established connection). Anything else fails the store
            // for the run.
            if scope != FailureScope::Temporary {
                failed_stores.insert(channel.sides[side.index()].store.clone(), scope);
            }
            break;
        }
    }
    Ok(all_ok)
}

/// With several mailboxes to run, asks each IMAP side for the status of all of them in one
/// pipelined round, so mailboxes unchanged since the last run need no SELECT (a failure
/// here only means the boxes are selected as usual).
fn prefetch_statuses(pairs: &[BoxPair], configs: &[&StoreConfig], stores: [&mut OpenedStore; 2]) {
    if pairs.len() < 2 {
        return;
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
