//! The executor for one mailbox pair (spec sync-semantics §4.1): state, open, lock, plan,
//! load, validate, the four passes, trashing, copies, expunge and finish, performing through
//! the two stores what `passes.rs` decides, and journalling through [`StateFiles`].
//!
//! **Group commit of copies.** Copies into one target are made in batches (at most
//! [`COPY_BATCH_MESSAGES`] messages or [`COPY_BATCH_BYTES`]; one copy at a time into a target
//! receiving fewer than [`SMALL_COPY_RUN`]). Within a batch each copy is written by the
//! store without a sync of its own, then one `Store::flush` makes the whole batch durable,
//! and only then are the batch's `<`/`>` records written, in copy order. A target may queue
//! its stores (`Store::store_queued`, IMAP: APPENDs not waited for); their outcomes are
//! collected with `Store::finish_stores` before that flush, so a copy is still recorded only
//! once the server confirmed it. The source is told the messages to copy up front, before
//! the flag changes are made (`Store::prefetch`, a read that changes nothing), so it can read
//! them ahead meanwhile. The crash guarantee
//! of spec sync-semantics §3.4 still holds because it only needs two orderings:
//!
//! - *A record is written after the operation it confirms is durable.* A `<`/`>` record
//!   follows the flush that covered its copy; `T` after a copy into a remote Trash likewise
//!   follows a flush of that copy.
//! - *A record that prepares an operation is on disk before the operation.* The `F` records
//!   and the `#` (TUID) records of every pending entry are written and flushed to disk before
//!   the first copy; the `%`/`$` of a copy is still written right before its store.
//!
//! An interruption anywhere inside a batch (a kill, `-Ts`, or a power loss) therefore leaves
//! copies that are stored — visible at once, durable or not — but not yet recorded. Their
//! entries are still PENDING with a journalled TUID, so the next run finds each copy that
//! survived by its `X-TUID` header and records its UID (§4.4), and copies again those that
//! did not survive (`&`). No message is lost and none is duplicated, exactly as when a run
//! is stopped between one copy and its record; a batch only widens that window from one
//! message to a batch. The steps of §3.4 keep their count (a store's proxy step is still
//! counted right after the store); only the position of the `<`/`>` records moves behind
//! the batch's later `%`/`$` records and stores, which replay does not care about (it
//! finds entries by their UIDs, not by position).
//!
//! **Overlapped commit.** A target that can make a batch durable in the background (a
//! Maildir with FSync: a thread runs its `syncfs`) gets the batch sealed instead
//! (`Store::flush_start`) and the next batch copied meanwhile; the sealed batch's records
//! are written once `Store::flush_finish` says it is durable, before the next batch is
//! sealed. Records therefore still follow the flush that covers their copies; they only
//! trail by up to one more batch, which widens the window above by one batch. Such a batch
//! is also sealed once it has been filling for [`COPY_BATCH_TIME`]: from a slow source
//! (a WAN link) the records keep coming, and the flush left after the last copy, the one
//! nothing overlaps, stays small.

use crate::config::{Side, SideOps};
use crate::output;
use crate::store::{
    FailureScope, Flags, FlagsTicket, NewMessage, OpenOutcome, Store, StoreError, StoreTicket, Tuid,
};
use crate::sync::convert::PreparedCopy;
use crate::sync::debug;
use crate::sync::entry::{PairState, Record, Status};
use crate::sync::passes::{Notices, RecordSink, SyncError, Work};
use crate::sync::plan::{PairSettings, plan_load};

/// A flag change whose *finish* (its `*` record) waits for the stores' queued changes.
struct Deferred {
    index: usize,
    side: Side,
    /// A change the store queued (UID, added, removed): applied to the pair's view only
    /// once the store did not refuse it.
    pending: Option<(u32, Flags, Flags)>,
}

/// Where the pair's state lives and where its journal records go. The disk implementation
/// wraps the state file, journal and lock (`files.rs`); tests use an in-memory one.
pub trait StateFiles {
    /// Reads the state and replays the journal (§1.5); takes the lock if a file was read.
    fn load(&mut self, expire_side: Side) -> Result<PairState, SyncError>;
    /// Takes the lock if not held yet (no-op in dry runs).
    fn lock(&mut self) -> Result<(), SyncError>;
    /// Writes one journal record (counts one step).
    fn log(&mut self, record: &Record) -> Result<(), SyncError>;
    /// Counts one proxy step (§3.4 item 2).
    fn count_step(&mut self) -> Result<(), SyncError>;
    /// Flushes the journal to disk after the TUIDs were written.
    fn flush(&mut self) -> Result<(), SyncError>;
    /// At least one record was written for this pair.
    fn wrote_records(&self) -> bool;
    /// The `### <steps> steps, <records> entries ###` line.
    fn hash_line(&self) -> String;
    /// Saves the state (§1.4).
    fn save(&mut self, state: &PairState, expire_side: Side) -> Result<(), SyncError>;
    /// Deletes the state (§1.6).
    fn delete(&mut self) -> Result<(), SyncError>;
    /// Ends the pair: closes the journal and releases (deletes) the lock.
    fn end(&mut self);
}

/// Passes the algorithm's records to the state files, showing them with `-Ds`.
struct Sink<'a> {
    files: &'a mut dyn StateFiles,
    debug: bool,
}

impl<'a> Sink<'a> {
    fn new(files: &'a mut dyn StateFiles, debug: bool) -> Sink<'a> {
        Sink { files, debug }
    }
}

impl RecordSink for Sink<'_> {
    fn log(&mut self, record: &Record) -> Result<(), SyncError> {
        if self.debug {
            debug::line("sync", &format!("journal record '{}'", record.to_line()));
        }
        self.files.log(record)
    }
}

/// Per-side counters of the summary line (§7.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `+`: copies stored into the side.
    pub stored: [u32; 2],
    /// `*`: flag updates.
    pub flagged: [u32; 2],
    /// `#`: messages trashed from the side.
    pub trashed: [u32; 2],
    /// `-`: messages expunged from the side.
    pub expunged: [u32; 2],
}

impl Counters {
    /// The shared statistics form (done counters; totals equal what was done).
    pub fn to_stats(&self) -> crate::sync::stats::Stats {
        let mut stats = crate::sync::stats::Stats::default();
        for t in 0..2 {
            let side = &mut stats.sides[t];
            for (counter, value) in [
                (&mut side.new, self.stored[t]),
                (&mut side.flags, self.flagged[t]),
                (&mut side.trash, self.trashed[t]),
                (&mut side.expunge, self.expunged[t]),
            ] {
                counter.done = u64::from(value);
                counter.total = u64::from(value);
            }
        }
        stats
    }

    /// The statistics with these counters as done values and `planned` as totals (a total
    /// is never shown below its done value).
    pub fn to_stats_with_totals(&self, planned: &Counters) -> crate::sync::stats::Stats {
        let mut stats = self.to_stats();
        for t in 0..2 {
            let side = &mut stats.sides[t];
            for (counter, total) in [
                (&mut side.new, planned.stored[t]),
                (&mut side.flags, planned.flagged[t]),
                (&mut side.trash, planned.trashed[t]),
                (&mut side.expunge, planned.expunged[t]),
            ] {
                counter.total = counter.done.max(u64::from(total));
            }
        }
        stats
    }

    /// Adds another run's counters to these.
    pub fn add(&mut self, other: &Counters) {
        for t in 0..2 {
            self.stored[t] += other.stored[t];
            self.flagged[t] += other.flagged[t];
            self.trashed[t] += other.trashed[t];
            self.expunged[t] += other.expunged[t];
        }
    }

    /// Anything was done on this side.
    pub fn touched(&self, side: Side) -> bool {
        let t = side.index();
        self.stored[t] + self.flagged[t] + self.trashed[t] + self.expunged[t] > 0
    }
}

/// Receives the counters whenever work is discovered or completed, for the progress
/// counter of §7.3 (which decides itself whether to show anything).
pub trait ProgressReport {
    /// `done` holds what was completed so far in the run, `planned` the totals known so far.
    fn update(&mut self, done: &Counters, planned: &Counters);
}

/// A progress report that shows nothing.
pub struct NoProgress;

impl ProgressReport for NoProgress {
    fn update(&mut self, _done: &Counters, _planned: &Counters) {}
}

/// How a run treats this pair, besides the settings.
#[derive(Clone, Debug, Default)]
pub struct PairOptions {
    pub dry_run: bool,
    /// Proxy steps are counted for [far, near].
    pub proxy: [bool; 2],
    /// `-Tx`.
    pub no_expunge: bool,
    /// `-TJ`.
    pub journal_end: bool,
    /// `-Tj`: print the `###` line.
    pub keep_journal: bool,
    /// The box is known to exist (it was listed) [far, near].
    pub listed: [bool; 2],
    /// Store-side box names [far, near].
    pub store_boxes: [String; 2],
    /// `--allow-mass-delete`: the mass-deletion guard is off for this run.
    pub allow_mass_delete: bool,
    /// `-Ds`: show the sync decisions.
    pub debug_sync: bool,
}

/// The result of a pair that was not aborted by a fatal error or the step limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairResult {
    /// The pair failed (error already printed).
    pub failed: bool,
    /// A store failed in a way that affects later channels: (side, scope).
    pub store_failure: Option<(Side, FailureScope)>,
    /// What the pair saw of its two boxes; `None` when it ended before loading them.
    pub boxes: Option<BoxesSeen>,
}

/// The two boxes of a pair as a run left them: UIDVALIDITY as the stores reported it and
/// the message count (the count at load, plus messages stored, minus messages expunged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoxesSeen {
    /// [far, near].
    pub uid_validity: [u32; 2],
    /// [far, near].
    pub messages: [u64; 2],
}

/// Source of fresh TUIDs.
pub type TuidSource<'a> = &'a mut dyn FnMut() -> Tuid;

/// Everything one pair run uses.
pub struct PairRun<'a> {
    pub settings: &'a mut PairSettings,
    pub stores: [&'a mut dyn Store; 2],
    pub files: &'a mut dyn StateFiles,
    pub options: &'a PairOptions,
    pub counters: &'a mut Counters,
    /// Totals of the progress counter: operations found to be needed so far in the run.
    pub planned: &'a mut Counters,
    pub progress: &'a mut dyn ProgressReport,
    pub new_tuid: TuidSource<'a>,
    /// When pairs of a channel run concurrently: waits until the channel's earlier pairs
    /// are done and returns the operations they left (planning rule 5 drops Upgrade for the
    /// later pairs, spec sync-semantics §4.3). Asked only by a pair with placeholders, the
    /// only pairs whose plan depends on it; `None` when the pairs run one after another and
    /// `settings` already holds what the earlier pairs left.
    pub ops_after_earlier_pairs: Option<&'a (dyn Fn() -> [SideOps; 2] + Sync)>,
}

/// The state has placeholders (or skipped messages) on either side: the entries planning
/// rule 5 looks at.
fn has_placeholders(state: &PairState) -> bool {
    state.entries.iter().filter(|e| !e.is_dead()).any(|entry| {
        entry.status.has(Status::DUMMY_F)
            || entry.status.has(Status::DUMMY_N)
            || entry.status.has(Status::SKIPPED)
    })
}

/// What opening found: UIDVALIDITYs, and boxes that only pretend to exist (dry run).
#[derive(Default)]
struct OpenedBoxes {
    uid_validity: [u32; 2],
    virtual_empty: [bool; 2],
}

fn store_failure(side: Side, err: StoreError) -> Stop {
    Stop::Store(side, err)
}

/// How copying a message into the other store's Trash ended.
enum RemoteTrash {
    Stored,
    /// The message vanished before it could be read.
    Vanished,
    /// Reading (on the message's side) or storing (on the other side) failed.
    Failed(Side, StoreError),
}

enum Stop {
    /// A store error: print it, the pair failed; the scope may affect later channels.
    Store(Side, StoreError),
    Sync(SyncError),
}

impl From<SyncError> for Stop {
    fn from(e: SyncError) -> Stop {
        Stop::Sync(e)
    }
}

impl PairRun<'_> {
    /// Runs the pair. `Err` is returned only for `Interrupted` and `Fatal`, which end the
    /// process; pair failures are printed here and reported in the result.
    pub fn run(mut self) -> Result<PairResult, SyncError> {
        let mut boxes = None;
        let outcome = self.run_inner(&mut boxes);
        let mut result = PairResult::default();
        match outcome {
            Ok(failed) => {
                result.failed = failed;
                result.boxes = boxes;
            }
            Err(Stop::Sync(SyncError::Interrupted)) => return Err(SyncError::Interrupted),
            Err(Stop::Sync(SyncError::Fatal(text))) => return Err(SyncError::Fatal(text)),
            Err(Stop::Sync(SyncError::Pair(text))) => {
                print_error_lines(&text);
                result.failed = true;
            }
            Err(Stop::Store(side, err)) => {
                print_error_lines(&err.message);
                result.failed = true;
                if matches!(err.scope, FailureScope::Store | FailureScope::Temporary) {
                    result.store_failure = Some((side, err.scope));
                }
            }
        }
        for store in self.stores.iter_mut() {
            store.close_box();
        }
        self.files.end();
        Ok(result)
    }

    /// Passes the counters to the progress report.
    fn report_progress(&mut self) {
        self.progress.update(self.counters, self.planned);
    }

    /// Writes a journal record (shown with `-Ds`).
    fn log_record(&mut self, record: &Record) -> Result<(), SyncError> {
        Sink::new(self.files, self.options.debug_sync).log(record)
    }

    /// A `sync:` debug line (`-Ds`).
    fn debug_sync(&self, text: impl FnOnce() -> String) {
        if self.options.debug_sync {
            debug::line("sync", &text());
        }
    }

    /// `-Ds`: the entries a pass left with something to do.
    fn debug_entries(&self, work: &Work, pass: &str, wanted: Status) {
        if !self.options.debug_sync {
            return;
        }
        for entry in &work.state.entries {
            let changes = entry.add.iter().chain(&entry.del).any(|f| !f.is_empty());
            if !entry.is_dead() && (changes || entry.status.has(wanted)) {
                debug::line("sync", &format!("{pass}: {}", debug::describe_entry(entry)));
            }
        }
    }

    fn step(&mut self, side: Side) -> Result<(), SyncError> {
        if self.options.proxy[side.index()] {
            self.files.count_step()?;
        }
        Ok(())
    }

    /// Runs the phases of §4.1; `Ok(true)` when the pair completed but something in it
    /// failed (a copy or a trash move).
    /// `boxes` receives what was seen of the boxes once the pair completed.
    fn run_inner(&mut self, boxes: &mut Option<BoxesSeen>) -> Result<bool, Stop> {
        let xt = self.settings.expire_side;
        let state = self.files.load(xt)?;
        let Some(opened) = self.open_boxes(&state)? else {
            return Ok(false);
        };
        self.files.lock()?;
        let counted_before = (self.counters.stored, self.counters.expunged);
        let (mut work, totals) = self.load_boxes(state, &opened)?;
        output::info("Synchronizing...");
        self.guard_mass_deletion(&work)?;

        work.check_uid_validity(
            self.settings,
            opened.uid_validity,
            &mut Sink::new(self.files, self.options.debug_sync),
        )?;
        work.old_newmaxuid = work.state.newmaxuid;
        let mut notices = Notices::default();
        work.pass1(
            self.settings,
            &mut notices,
            &mut Sink::new(self.files, self.options.debug_sync),
        )?;
        self.debug_entries(
            &work,
            "pass 1 (existing messages)",
            Status::GONE_F
                .with(Status::GONE_N)
                .with(Status::DELETE)
                .with(Status::UPGRADE)
                .with(Status::PURGE),
        );
        work.pass2(
            self.settings,
            &mut Sink::new(self.files, self.options.debug_sync),
        )?;
        self.debug_entries(&work, "pass 2 (to copy)", Status::PENDING);
        self.debug_sync(|| {
            format!(
                "pass 2: copies into far side: {}, into near side: {}",
                work.copy_list(Side::Far).len(),
                work.copy_list(Side::Near).len()
            )
        });
        work.pass3(
            self.settings,
            &mut Sink::new(self.files, self.options.debug_sync),
        )?;
        self.debug_entries(&work, "pass 3 (expiration)", Status::NEXPIRE);
        self.announce_copies(&work)?;
        self.apply_flags(&mut work)?;

        let mut failed = false;
        let mut to_expunge: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        let mut expunge_cancelled = [false; 2];
        for side in Side::BOTH {
            let t = side.index();
            let (list, trash_failed) = self.trash_side(&mut work, side)?;
            to_expunge[t] = list;
            if trash_failed {
                failed = true;
                expunge_cancelled[t] = !self.stores[t].selective_expunge();
            }
        }
        failed |= self.copy_all(&mut work)?;
        for side in Side::BOTH {
            let t = side.index();
            if !expunge_cancelled[t] {
                self.expunge_side(&mut work, side, &to_expunge[t])?;
            }
        }
        for store in self.stores.iter_mut() {
            store.close_box();
        }
        self.finish(&mut work)?;
        let mut messages = [0u64; 2];
        for (t, count) in messages.iter_mut().enumerate() {
            let stored = self.counters.stored[t].saturating_sub(counted_before.0[t]);
            let expunged = self.counters.expunged[t].saturating_sub(counted_before.1[t]);
            *count = (u64::from(totals[t]) + u64::from(stored)).saturating_sub(u64::from(expunged));
        }
        *boxes = Some(BoxesSeen {
            uid_validity: opened.uid_validity,
            messages,
        });
        Ok(failed)
    }

    /// The mass-deletion guard (mailsync extension): when a side lost more than
    /// MaxDeletePercent of the messages the state knows while the other side still has
    /// them, the pair stops before anything is changed (so the state is not advanced),
    /// unless `--allow-mass-delete` confirms the deletions.
    fn guard_mass_deletion(&self, work: &Work) -> Result<(), Stop> {
        if self.options.allow_mass_delete {
            return Ok(());
        }
        let percent = self.settings.max_delete_percent;
        let lines: Vec<String> = work
            .deletion_losses(self.settings)
            .into_iter()
            .flatten()
            .filter(|loss| loss.exceeds(percent))
            .map(|loss| {
                let side = loss.side;
                format!(
                    "Error: channel {}: {} box {} lost {} of the {} messages the sync state \
                     knows, while {} box {} still has them; not propagating these deletions \
                     (more than MaxDeletePercent {percent}%). Check that the mailbox is \
                     intact; if the deletions are intended, run again with \
                     --allow-mass-delete.",
                    self.settings.channel,
                    side.label(),
                    self.settings.box_names[side.index()],
                    loss.lost,
                    loss.known,
                    side.other().label(),
                    self.settings.box_names[side.other().index()],
                )
            })
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        Err(self.pair_error(lines.join("\n")))
    }

    fn pair_error(&self, text: String) -> Stop {
        Stop::Sync(SyncError::Pair(text))
    }

    /// Phase 3 and §4.2: opens both boxes, creating or removing as configured. `None` when
    /// the pair ends here (state deleted, box removed, or nothing to do).
    fn open_boxes(&mut self, state: &PairState) -> Result<Option<OpenedBoxes>, Stop> {
        let existed = state.existed || state.replayed;
        let mut opened = OpenedBoxes::default();
        let mut absent = [false; 2];
        for side in Side::BOTH {
            let t = side.index();
            let name = &self.settings.box_names[t];
            output::info(&format!("Opening {} box {name}...", side.label()));
            match self.stores[t].open_box(&self.options.store_boxes[t]) {
                Ok(OpenOutcome::Opened { uid_validity }) => opened.uid_validity[t] = uid_validity,
                Ok(OpenOutcome::Missing) if self.options.listed[t] => {
                    return Err(self.pair_error(format!(
                        "Error: channel {}: {} box {name} cannot be opened.",
                        self.settings.channel,
                        side.label()
                    )));
                }
                Ok(OpenOutcome::Missing) => absent[t] = true,
                Err(err) => return Err(Stop::Store(side, err)),
            }
        }
        if absent[0] && absent[1] {
            if existed {
                self.delete_state()?;
                return Ok(None);
            }
            return Err(self.pair_error(format!(
                "Error: channel {}: both far side {} and near side {} cannot be opened.",
                self.settings.channel, self.settings.box_names[0], self.settings.box_names[1]
            )));
        }
        for side in Side::BOTH {
            if !absent[side.index()] {
                continue;
            }
            if existed {
                self.remove_other_box(side)?;
                return Ok(None);
            }
            self.create_box(side, &mut opened)?;
        }
        Ok(Some(opened))
    }

    /// §4.2: the box on `side` vanished although the pair existed; with Remove on the other
    /// side, that box is deleted too when it is empty.
    fn remove_other_box(&mut self, side: Side) -> Result<(), Stop> {
        let t = side.index();
        let other = side.other();
        let o = other.index();
        let channel = &self.settings.channel;
        if !self.settings.ops(other).remove {
            return Err(self.pair_error(format!(
                "Error: channel {channel}: {} box {} cannot be opened anymore.",
                side.label(),
                self.settings.box_names[t]
            )));
        }
        let empty = self.stores[o]
            .is_empty()
            .map_err(|e| Stop::Store(other, e))?;
        if !empty {
            output::warning(&format!(
                "Warning: channel {channel}: {} box {} cannot be opened anymore, and {} box {} is not empty.",
                side.label(),
                self.settings.box_names[t],
                other.label(),
                self.settings.box_names[o]
            ));
            return Ok(());
        }
        output::info(&format!(
            "Deleting {} box {}...",
            other.label(),
            self.settings.box_names[o]
        ));
        if !self.options.dry_run {
            self.stores[o]
                .delete_box()
                .map_err(|e| Stop::Store(other, e))?;
        }
        self.step(other)?;
        self.delete_state()?;
        if !self.options.dry_run {
            self.stores[o].remove_box_leftovers();
        }
        Ok(())
    }

    /// §4.2: creates the missing box on `side` (with Create), or fails the pair.
    fn create_box(&mut self, side: Side, opened: &mut OpenedBoxes) -> Result<(), Stop> {
        let t = side.index();
        if !self.settings.ops(side).create {
            return Err(self.pair_error(format!(
                "Error: channel {}: {} box {} cannot be opened.",
                self.settings.channel,
                side.label(),
                self.settings.box_names[t]
            )));
        }
        output::info(&format!(
            "Creating {} box {}...",
            side.label(),
            self.settings.box_names[t]
        ));
        if self.options.dry_run {
            // A box that would be created behaves as an empty one with UIDVALIDITY 1.
            opened.uid_validity[t] = 1;
            opened.virtual_empty[t] = true;
        } else {
            opened.uid_validity[t] = self.stores[t]
                .create_box()
                .map_err(|e| Stop::Store(side, e))?;
        }
        self.step(side)?;
        Ok(())
    }

    /// Phases 4–5: plans the loads and loads the keep side, then the expire side, matching
    /// each to the entries.
    /// Also returns the message counts the stores reported, [far, near].
    fn load_boxes(
        &mut self,
        state: PairState,
        opened: &OpenedBoxes,
    ) -> Result<(Work, [u32; 2]), Stop> {
        if let Some(ops_in_order) = self.ops_after_earlier_pairs
            && self.settings.ops.iter().any(|ops| ops.types.upgrade)
            && has_placeholders(&state)
        {
            self.settings.ops = ops_in_order();
        }
        let plan = plan_load(&state, self.settings, opened.uid_validity);
        let mut work = Work::new(state);
        work.plan = plan;
        work.virtual_box = opened.virtual_empty;
        let xt = self.settings.expire_side;
        let mut totals = [0u32; 2];
        for side in [xt.other(), xt] {
            let t = side.index();
            output::info(&format!("Loading {} box...", side.label()));
            let loaded = if opened.virtual_empty[t] {
                crate::store::Loaded::default()
            } else {
                self.stores[t]
                    .load(&work.plan.loads[t])
                    .map_err(|e| Stop::Store(side, e))?
            };
            output::info(&format!(
                "{}: {} messages, {} recent",
                side.label(),
                loaded.total,
                loaded.recent
            ));
            totals[t] = loaded.total;
            work.set_loaded(side, loaded.messages);
            work.match_loaded(side, &mut Sink::new(self.files, self.options.debug_sync))?;
        }
        Ok((work, totals))
    }

    /// §4.12: removes the selected messages of a side that are still there.
    fn expunge_side(
        &mut self,
        work: &mut Work,
        side: Side,
        selected: &[usize],
    ) -> Result<(), Stop> {
        let t = side.index();
        let ops = self.settings.ops(side);
        if !(ops.expunge || ops.expunge_solo) || self.options.no_expunge {
            return Ok(());
        }
        let uids: Vec<u32> = selected
            .iter()
            .filter(|&&m| !work.removed[t][m])
            .map(|&m| work.msgs[t][m].uid)
            .collect();
        self.planned.expunged[t] += uids.len() as u32;
        self.report_progress();
        let planned = uids.len() as u32;
        let removed = if self.options.dry_run {
            uids
        } else {
            self.stores[t]
                .expunge(&uids)
                .map_err(|e| Stop::Store(side, e))?
        };
        self.step(side)?;
        let rev = work.reverse_links(side);
        let position: std::collections::HashMap<u32, usize> = work.msgs[t]
            .iter()
            .enumerate()
            .map(|(m, msg)| (msg.uid, m))
            .collect();
        let mut count = 0;
        for uid in removed {
            if let Some(&m) = position.get(&uid)
                && !work.removed[t][m]
            {
                work.message_removed(side, m, &rev);
                self.counters.expunged[t] += 1;
                count += 1;
            }
        }
        // Messages that were gone already are not expunged by us.
        self.planned.expunged[t] =
            self.planned.expunged[t].saturating_sub(planned.saturating_sub(count));
        self.report_progress();
        Ok(())
    }

    /// §4.13: the `###` line, high-water marks, purge, and the save when something was
    /// journalled (or a journal replayed).
    fn finish(&mut self, work: &mut Work) -> Result<(), Stop> {
        if self.options.keep_journal {
            output::stdout_line(&self.files.hash_line());
        }
        self.debug_sync(|| {
            format!(
                "finish: high-water marks far {} near {}",
                work.state.newmaxuid[0], work.state.newmaxuid[1]
            )
        });
        work.finish_run(
            self.settings,
            self.options.journal_end,
            &mut Sink::new(self.files, self.options.debug_sync),
        )?;
        if self.files.wrote_records() || work.state.replayed {
            self.files.save(&work.state, self.settings.expire_side)?;
        }
        Ok(())
    }

    fn delete_state(&mut self) -> Result<(), SyncError> {
        if self.options.dry_run {
            return Ok(());
        }
        self.files.delete()
    }

    fn apply_flags(&mut self, work: &mut Work) -> Result<(), Stop> {
        // The totals first (deciding an update twice gives the same answer).
        for index in 0..work.state.entries.len() {
            for side in Side::BOTH {
                if let Some((add, del)) = work.flag_update(index, side, self.settings)
                    && (!add.is_empty() || !del.is_empty())
                {
                    self.planned.flagged[side.index()] += 1;
                }
            }
        }
        self.report_progress();
        // The `*` record of a flag change must not precede the change itself: a store may
        // queue flag changes (IMAP: `Store::set_flags_queued`, sent as a few pipelined
        // `UID STORE`s, one per set of messages with the same change) — a run killed between
        // the record and the STORE left a state claiming flags the server never got, so the
        // change was never made (one-way sync) or even undone from the other side (two
        // ways). So an entry with a change queued, or made on a store that is not Maildir
        // (whose renames are done at once), has its *finish* steps wait until both stores
        // finished their queued changes and flushed; a queued change the server refused is
        // then reported and left unrecorded (the next run makes it again), the others are
        // applied and recorded.
        let mut deferred: Vec<Deferred> = Vec::new();
        let mut queued = [false; 2];
        for index in 0..work.state.entries.len() {
            let mut defer_entry = false;
            for side in Side::BOTH {
                let t = side.index();
                let Some((add, del)) = work.flag_update(index, side, self.settings) else {
                    continue;
                };
                let mut pending = None;
                if !add.is_empty() || !del.is_empty() {
                    let uid = work.state.entries[index].uid[t];
                    self.debug_sync(|| {
                        format!(
                            "pass 4: {} UID {uid}: add '{}', remove '{}'",
                            side.label(),
                            add.letters(),
                            del.letters()
                        )
                    });
                    let ticket = if self.options.dry_run {
                        FlagsTicket::Done(true)
                    } else {
                        match self.stores[t].set_flags_queued(uid, add, del) {
                            Ok(ticket) => ticket,
                            Err(err) if err.scope == FailureScope::Message => {
                                output::error(&err.message);
                                FlagsTicket::Done(false)
                            }
                            Err(err) => return Err(store_failure(side, err)),
                        }
                    };
                    if ticket == FlagsTicket::Done(false) {
                        // Failed, or the message vanished: the operation completed without
                        // effect, which a proxy counts like any completion (§3.4).
                        self.step(side)?;
                        self.planned.flagged[t] = self.planned.flagged[t].saturating_sub(1);
                        continue;
                    }
                    self.step(side)?;
                    self.counters.flagged[t] += 1;
                    self.report_progress();
                    if ticket == FlagsTicket::Queued {
                        queued[t] = true;
                        defer_entry = true;
                        pending = Some((uid, add, del));
                    } else {
                        work.flags_applied(index, side, add, del);
                        if !self.options.dry_run && !self.settings.store(side).maildir {
                            queued[t] = true;
                            defer_entry = true;
                        }
                    }
                }
                if defer_entry {
                    deferred.push(Deferred {
                        index,
                        side,
                        pending,
                    });
                    continue;
                }
                work.finish_flags(
                    index,
                    side,
                    self.settings,
                    &mut Sink::new(self.files, self.options.debug_sync),
                )?;
            }
        }
        if deferred.is_empty() {
            return Ok(());
        }
        let mut refused: [std::collections::HashSet<u32>; 2] = Default::default();
        for side in Side::BOTH {
            let t = side.index();
            if queued[t] {
                let refusals = self.stores[t]
                    .finish_flag_changes()
                    .map_err(|e| store_failure(side, e))?;
                for (uids, error) in refusals {
                    output::error(&error.message);
                    refused[t].extend(uids);
                }
                self.stores[t].flush().map_err(|e| store_failure(side, e))?;
            }
        }
        for Deferred {
            index,
            side,
            pending,
        } in deferred
        {
            let t = side.index();
            if let Some((uid, add, del)) = pending {
                if refused[t].contains(&uid) {
                    // Not made: not recorded either, so the next run makes it again.
                    self.counters.flagged[t] = self.counters.flagged[t].saturating_sub(1);
                    self.planned.flagged[t] = self.planned.flagged[t].saturating_sub(1);
                    continue;
                }
                work.flags_applied(index, side, add, del);
            }
            work.finish_flags(
                index,
                side,
                self.settings,
                &mut Sink::new(self.files, self.options.debug_sync),
            )?;
        }
        self.report_progress();
        Ok(())
    }

    /// §4.9 for one side: returns the messages still to expunge and whether trashing failed.
    fn trash_side(&mut self, work: &mut Work, side: Side) -> Result<(Vec<usize>, bool), Stop> {
        let t = side.index();
        let other = side.other();
        let ops = *self.settings.ops(side);
        if !(ops.expunge || ops.expunge_solo) {
            return Ok((Vec::new(), false));
        }
        let selected = work.expunge_selection(side, self.settings);
        self.debug_sync(|| {
            let uids: Vec<u32> = selected.iter().map(|&m| work.msgs[t][m].uid).collect();
            format!(
                "{} messages selected for expunging: UIDs {uids:?}",
                side.label()
            )
        });
        let rev = work.reverse_links(side);
        let store = self.settings.store(side).clone();
        let other_store = self.settings.store(other).clone();
        // (local?, new_only)
        let mode = if store.has_trash {
            Some((true, store.trash_new_only))
        } else if other_store.has_trash && other_store.trash_remote_new {
            Some((false, true))
        } else {
            None
        };
        let mut keep = Vec::new();
        let mut to_trash = Vec::new();
        for m in selected {
            match mode {
                Some((_, new_only))
                    if work.should_trash(side, m, new_only, &rev, self.settings) =>
                {
                    to_trash.push(m)
                }
                _ => keep.push(m),
            }
        }
        let Some((local, _)) = mode else {
            return Ok((keep, false));
        };
        let count = to_trash.len() as u32;
        self.planned.trashed[t] += count;
        if local {
            // A local trash move takes the message out of the box: it counts as expunged.
            self.planned.expunged[t] += count;
        }
        self.report_progress();
        let mut failed = false;
        for m in to_trash {
            let uid = work.msgs[t][m].uid;
            if local {
                let moved = if self.options.dry_run {
                    Ok(true)
                } else {
                    self.stores[t].trash(uid)
                };
                match moved {
                    Ok(true) => {
                        self.step(side)?;
                        self.log_record(&Record::Trashed { side, uid })?;
                        self.counters.trashed[t] += 1;
                        work.message_removed(side, m, &rev);
                        self.counters.expunged[t] += 1;
                        self.report_progress();
                    }
                    Ok(false) => {
                        // The message vanished; the move completed without effect.
                        self.step(side)?;
                        self.planned.trashed[t] = self.planned.trashed[t].saturating_sub(1);
                        self.planned.expunged[t] = self.planned.expunged[t].saturating_sub(1);
                    }
                    Err(err) if err.scope == FailureScope::Message => {
                        output::error(&err.message);
                        self.step(side)?;
                        self.planned.trashed[t] = self.planned.trashed[t].saturating_sub(1);
                        self.planned.expunged[t] = self.planned.expunged[t].saturating_sub(1);
                        failed = true;
                    }
                    Err(err) => return Err(store_failure(side, err)),
                }
            } else {
                match self.trash_remotely(side, uid) {
                    RemoteTrash::Stored => {
                        self.step(other)?;
                        self.log_record(&Record::Trashed { side, uid })?;
                        self.counters.trashed[t] += 1;
                        self.report_progress();
                        keep.push(m);
                    }
                    RemoteTrash::Vanished => {
                        self.planned.trashed[t] = self.planned.trashed[t].saturating_sub(1)
                    }
                    RemoteTrash::Failed(failing, err) if err.scope == FailureScope::Message => {
                        output::error(&err.message);
                        if failing == other {
                            // The store into the Trash completed (with a failure).
                            self.step(other)?;
                        }
                        self.planned.trashed[t] = self.planned.trashed[t].saturating_sub(1);
                        failed = true;
                    }
                    RemoteTrash::Failed(failing, err) => return Err(store_failure(failing, err)),
                }
            }
        }
        Ok((keep, failed))
    }

    /// Copies a message of `side` unchanged into the Trash of the other store (§4.9).
    fn trash_remotely(&mut self, side: Side, uid: u32) -> RemoteTrash {
        if self.options.dry_run {
            return RemoteTrash::Stored;
        }
        let t = side.index();
        let other = side.other();
        let o = other.index();
        let msg = match self.stores[t].fetch(uid) {
            Ok(Some(msg)) => msg,
            Ok(None) => return RemoteTrash::Vanished,
            Err(err) => return RemoteTrash::Failed(side, err),
        };
        let shown = msg.body.describe();
        let copy =
            match PreparedCopy::line_ends(msg.body, self.stores[t].crlf(), self.stores[o].crlf()) {
                Ok(copy) => copy,
                Err(err) => return RemoteTrash::Failed(side, read_failure(&shown, uid, &err)),
            };
        let stored = self.stores[o].store_to_trash(NewMessage {
            data: copy.data(),
            flags: msg.flags,
            date: None,
        });
        // The `T` record confirms the copy, so the copy must be durable first.
        match stored.and_then(|()| self.stores[o].flush()) {
            Ok(()) => RemoteTrash::Stored,
            Err(err) => RemoteTrash::Failed(other, err),
        }
    }

    /// Ends a copy batch: [`Self::seal_batch`], then [`Self::record_sealed`].
    fn confirm_batch(
        &mut self,
        work: &mut Work,
        target: Side,
        batch: &mut CopyBatch,
    ) -> Result<(), Stop> {
        self.seal_batch(work, target, batch)?;
        self.record_sealed(work, target, batch)
    }

    /// Closes the batch being filled: records the batch sealed before it, if any (see
    /// [`Self::record_sealed`]), collects the outcomes of queued stores
    /// (`Store::finish_stores`) and starts making the copies durable on the target
    /// (`Store::flush_start`; a store that cannot work in the background is flushed here).
    fn seal_batch(
        &mut self,
        work: &mut Work,
        target: Side,
        batch: &mut CopyBatch,
    ) -> Result<(), Stop> {
        self.record_sealed(work, target, batch)?;
        if batch.stored == 0 {
            return Ok(());
        }
        let mut outcomes = std::collections::HashMap::new();
        if !self.options.dry_run {
            if batch
                .slots
                .iter()
                .any(|slot| matches!(slot, CopySlot::Queued { .. }))
            {
                outcomes = self.stores[target.index()]
                    .finish_stores()
                    .map_err(|e| store_failure(target, e))?
                    .into_iter()
                    .collect();
            }
            self.stores[target.index()]
                .flush_start()
                .map_err(|e| store_failure(target, e))?;
        }
        batch.sealed = Some(SealedBatch {
            slots: std::mem::take(&mut batch.slots),
            outcomes,
        });
        batch.stored = 0;
        batch.bytes = 0;
        batch.opened = None;
        Ok(())
    }

    /// Waits until the sealed batch is durable (`Store::flush_finish`), then writes its
    /// `<`/`>` records and assigns their UIDs, in copy order. A queued copy the target
    /// refused is reported and its entry marked dead, as a refusal at once would be.
    fn record_sealed(
        &mut self,
        work: &mut Work,
        target: Side,
        batch: &mut CopyBatch,
    ) -> Result<(), Stop> {
        let Some(SealedBatch {
            slots,
            mut outcomes,
        }) = batch.sealed.take()
        else {
            return Ok(());
        };
        if !self.options.dry_run {
            self.stores[target.index()]
                .flush_finish()
                .map_err(|e| store_failure(target, e))?;
        }
        for slot in slots {
            let confirmation = match slot {
                CopySlot::Stored(confirmation) => confirmation,
                CopySlot::Queued {
                    ticket,
                    index,
                    far,
                    near,
                    source_uid,
                } => match outcomes.remove(&ticket) {
                    Some(Ok(Some(uid))) => Confirmation {
                        index,
                        far,
                        near,
                        uid,
                    },
                    Some(Ok(None)) => {
                        batch.unknown_uid = true;
                        continue;
                    }
                    Some(Err(err)) if err.scope == FailureScope::Message => {
                        output::error(&format!(
                            "Error: {} refuses to store message {} from {}.",
                            target.label(),
                            source_uid,
                            target.other().label()
                        ));
                        self.log_record(&Record::Dead { far, near })?;
                        work.state.entries[index].status.set(Status::DEAD);
                        batch.refused = true;
                        continue;
                    }
                    Some(Err(err)) => return Err(store_failure(target, err)),
                    None => {
                        return Err(store_failure(
                            target,
                            StoreError::mailbox(format!(
                                "Error: no outcome for the copy of message {source_uid} into {}",
                                target.label()
                            )),
                        ));
                    }
                },
            };
            self.log_record(&Record::Assign {
                side: target,
                far: confirmation.far,
                near: confirmation.near,
                uid: confirmation.uid,
            })?;
            crate::sync::passes::assign(
                &mut work.state,
                confirmation.index,
                target,
                confirmation.uid,
            );
        }
        Ok(())
    }

    /// §4.11: rescans the target over the range of its load, reading TUIDs from the find
    /// threshold on. Messages that appeared are appended to the loaded list (the index of
    /// the first one is returned); loaded messages that disappeared meanwhile are removed,
    /// their entries get GONE (§4.12).
    fn rescan(&mut self, work: &mut Work, target: Side) -> Result<usize, Stop> {
        let t = target.index();
        let from = work.state.find_threshold[t].unwrap_or(0);
        let mut request = work.plan.loads[t].clone();
        request.tuids_from = Some(from);
        request.sizes_from = None;
        request.message_ids_upto = None;
        let rescanned = self.stores[t]
            .load(&request)
            .map_err(|e| store_failure(target, e))?
            .messages;
        let present: std::collections::HashSet<u32> = rescanned.iter().map(|m| m.uid).collect();
        let rev = work.reverse_links(target);
        for m in 0..work.msgs[t].len() {
            if !work.removed[t][m] && !present.contains(&work.msgs[t][m].uid) {
                work.message_removed(target, m, &rev);
            }
        }
        let first = work.msgs[t].len();
        let known: std::collections::HashSet<u32> = work.msgs[t].iter().map(|m| m.uid).collect();
        for msg in rescanned {
            if msg.uid >= from && !known.contains(&msg.uid) {
                work.msgs[t].push(msg);
                work.removed[t].push(false);
            }
        }
        Ok(first)
    }

    /// §4.10–§4.11: `F` records, TUIDs, push copies, then pull copies. Returns true if a copy
    /// failed.
    /// Tells each copy source the messages it will be asked for, in copy order, so that it
    /// can read them ahead (pipelined, within BufferLimit) instead of one round trip each,
    /// and start while the flag changes, the trash moves and the copies into the other side
    /// are made.
    fn announce_copies(&mut self, work: &Work) -> Result<(), Stop> {
        if self.options.dry_run {
            return Ok(());
        }
        for target in Side::BOTH {
            let (t, source) = (target.index(), target.other());
            let s = source.index();
            let uids: Vec<u32> = work
                .copy_list(target)
                .iter()
                .filter(|(_, index)| {
                    let entry = &work.state.entries[*index];
                    !entry.is_dead() && entry.status.has(Status::PENDING)
                })
                .map(|(m, _)| work.msgs[s][*m].uid)
                .collect();
            if uids.is_empty() {
                continue;
            }
            // A big message is spooled where its copy goes (a Maildir's tmp/).
            if let Some(dir) = self.stores[t].spool_dir() {
                self.stores[s].set_spool_dir(&dir);
            }
            match self.stores[s].prefetch(&uids) {
                Ok(()) => {}
                Err(err) if err.scope == FailureScope::Message => {}
                Err(err) => return Err(store_failure(source, err)),
            }
        }
        Ok(())
    }

    fn copy_all(&mut self, work: &mut Work) -> Result<bool, Stop> {
        if !(work.any_new[0] || work.any_new[1]) {
            return Ok(false);
        }
        let mut fake_next = [0u32; 2];
        for side in Side::BOTH {
            let t = side.index();
            if !work.any_new[t] {
                continue;
            }
            let hint = if work.virtual_box[t] {
                0
            } else {
                self.stores[t]
                    .uid_next_hint()
                    .map_err(|e| store_failure(side, e))?
            };
            fake_next[t] = hint.max(work.msgs[t].last().map_or(0, |m| m.uid));
            work.state.find_threshold[t] = Some(hint);
            self.log_record(&Record::FindThreshold { side, uid: hint })?;
        }
        for index in work.pending_entries() {
            let tuid = (self.new_tuid)();
            let entry = &mut work.state.entries[index];
            entry.tuid = Some(tuid);
            let record = Record::Tuid {
                far: entry.uid[0],
                near: entry.uid[1],
                tuid,
            };
            self.log_record(&record)?;
        }
        self.files.flush()?;
        for target in Side::BOTH {
            self.planned.stored[target.index()] += work.copy_list(target).len() as u32;
        }
        self.report_progress();

        let mut failed = false;
        for target in Side::BOTH {
            let t = target.index();
            let source = target.other();
            let s = source.index();
            let mut unknown_uid = false;
            let copies = work.copy_list(target);
            let mut batch =
                CopyBatch::for_copies(copies.len(), self.stores[t].flushes_in_background());
            for (m, index) in copies {
                if batch.is_full() {
                    if batch.overlapped {
                        // This batch becomes durable while the next one is copied.
                        self.seal_batch(work, target, &mut batch)?;
                    } else {
                        self.confirm_batch(work, target, &mut batch)?;
                    }
                }
                let entry = &work.state.entries[index];
                if entry.is_dead() || !entry.status.has(Status::PENDING) {
                    self.planned.stored[t] = self.planned.stored[t].saturating_sub(1);
                    continue;
                }
                let (f, n) = (entry.uid[0], entry.uid[1]);
                let src_uid = work.msgs[s][m].uid;
                let fetched = if self.options.dry_run {
                    Some(crate::store::FetchedMessage {
                        body: crate::store::MessageBody::Memory(Vec::new()),
                        flags: work.msgs[s][m].flags,
                        date: None,
                    })
                } else {
                    match self.stores[s].fetch(src_uid) {
                        Ok(found) => found,
                        Err(err) if err.scope == FailureScope::Message => None,
                        Err(err) => return Err(store_failure(source, err)),
                    }
                };
                let Some(fetched) = fetched else {
                    self.planned.stored[t] = self.planned.stored[t].saturating_sub(1);
                    self.log_record(&Record::Dead { far: f, near: n })?;
                    work.state.entries[index].status.set(Status::DEAD);
                    continue;
                };
                let entry = &mut work.state.entries[index];
                let flags = if entry.status.has(Status::UPGRADE) {
                    let (add, del) = (entry.add[t], entry.del[t]);
                    if !add.is_empty() || !del.is_empty() {
                        self.log_record(&Record::UpgradeDelta {
                            far: f,
                            near: n,
                            add,
                            del,
                        })?;
                    }
                    entry.pflags.union(add).minus(del)
                } else {
                    let real = if work.plan.requests[s].flags {
                        work.msgs[s][m].flags
                    } else {
                        fetched.flags
                    };
                    let mut flags = real.intersection(self.settings.store(target).supported_flags);
                    if entry.status.has(Status::dummy(target)) {
                        flags = flags.minus(Flags::FLAGGED);
                    }
                    if !flags.is_empty() {
                        entry.pflags = flags;
                        self.log_record(&Record::PFlags {
                            far: f,
                            near: n,
                            flags,
                        })?;
                    }
                    flags
                };
                let entry = &work.state.entries[index];
                let tuid = entry.tuid.unwrap_or_else(|| (self.new_tuid)());
                let placeholder = entry
                    .status
                    .has(Status::dummy(target))
                    .then_some(fetched.body.len());
                let shown = fetched.body.describe();
                let copy = PreparedCopy::message(
                    fetched.body,
                    self.stores[s].crlf(),
                    self.stores[t].crlf(),
                    &tuid,
                    placeholder,
                )
                .map_err(|err| store_failure(source, read_failure(&shown, src_uid, &err)))?;
                let date = if self.settings.copy_arrival_date {
                    fetched.date
                } else {
                    None
                };
                let stored = if self.options.dry_run {
                    fake_next[t] += 1;
                    Ok(StoreTicket::Done(Some(fake_next[t])))
                } else {
                    self.stores[t].store_queued(NewMessage {
                        data: copy.data(),
                        flags,
                        date,
                    })
                };
                self.counters.stored[t] += 1;
                self.report_progress();
                match stored {
                    Ok(ticket) => {
                        batch.add_stored(copy.size_hint() as usize);
                        self.step(target)?;
                        match ticket {
                            StoreTicket::Done(Some(uid)) => {
                                batch.slots.push(CopySlot::Stored(Confirmation {
                                    index,
                                    far: f,
                                    near: n,
                                    uid,
                                }));
                            }
                            StoreTicket::Done(None) => unknown_uid = true,
                            StoreTicket::Queued(ticket) => batch.slots.push(CopySlot::Queued {
                                ticket,
                                index,
                                far: f,
                                near: n,
                                source_uid: src_uid,
                            }),
                        }
                    }
                    Err(err) if err.scope == FailureScope::Message => {
                        self.step(target)?;
                        output::error(&format!(
                            "Error: {} refuses to store message {} from {}.",
                            target.label(),
                            src_uid,
                            source.label()
                        ));
                        self.log_record(&Record::Dead { far: f, near: n })?;
                        work.state.entries[index].status.set(Status::DEAD);
                        failed = true;
                    }
                    Err(err) => {
                        // Confirm what was stored before the failure, if the store still
                        // can; otherwise the next run finds those copies by their TUIDs.
                        if let Err(Stop::Sync(stop)) = self.confirm_batch(work, target, &mut batch)
                            && matches!(stop, SyncError::Interrupted | SyncError::Fatal(_))
                        {
                            return Err(Stop::Sync(stop));
                        }
                        return Err(store_failure(target, err));
                    }
                }
            }
            self.confirm_batch(work, target, &mut batch)?;
            failed |= batch.refused;
            if unknown_uid || batch.unknown_uid {
                let first = self.rescan(work, target)?;
                let candidates: Vec<usize> = (first..work.msgs[t].len()).collect();
                let lost = work.match_tuids(
                    target,
                    &candidates,
                    &mut Sink::new(self.files, self.options.debug_sync),
                )?;
                if lost > 0 {
                    let dir = if target == Side::Far {
                        "pushed"
                    } else {
                        "pulled"
                    };
                    output::warning(&format!("Warning: lost track of {lost} {dir} message(s)"));
                }
            }
        }
        Ok(failed)
    }
}

/// A message that could not be read back from its file (a spool file or a Maildir file).
fn read_failure(shown: &str, uid: u32, error: &std::io::Error) -> StoreError {
    StoreError::mailbox(format!(
        "Error: cannot read message {uid} from {shown}: {error}"
    ))
}

/// The most copies one batch holds before the target is flushed and the batch confirmed.
/// Every flush of a Maildir also writes its directories' blocks, and each rename into a
/// directory block being written waits for it: with 256, a 10,000-message download spent a
/// fifth of its time more than with 2,048.
pub const COPY_BATCH_MESSAGES: usize = 2048;
/// The most bytes of copies one batch holds (a single larger message makes its own batch).
pub const COPY_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// The longest an overlapped batch keeps filling before it is sealed.
pub const COPY_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(500);
/// Into a target receiving fewer copies than this, each copy is confirmed on its own: the
/// few flushes cost little, and the journal keeps the exact record order of §8.3.
pub const SMALL_COPY_RUN: usize = 8;

/// A copy stored into the target whose `<`/`>` record waits for the batch's flush.
struct Confirmation {
    /// The entry in the state.
    index: usize,
    far: u32,
    near: u32,
    /// The UID the target gave the copy.
    uid: u32,
}

/// A copy of the batch waiting for its record.
enum CopySlot {
    /// Stored, with the UID the target gave it.
    Stored(Confirmation),
    /// Handed to the target by `Store::store_queued`; the outcome comes with the batch's end.
    Queued {
        ticket: u64,
        index: usize,
        far: u32,
        near: u32,
        /// The message's UID on the source (for the error if the target refuses it).
        source_uid: u32,
    },
}

/// The copies stored since the target was last flushed.
struct CopyBatch {
    /// Copies per batch.
    limit: usize,
    /// Copies stored or queued (with or without a returned UID).
    stored: usize,
    /// Bytes of the stored copies.
    bytes: usize,
    /// Copies whose records wait until the batch is durable, in copy order.
    slots: Vec<CopySlot>,
    /// A queued copy came back without UID (the target must be searched by TUID).
    unknown_uid: bool,
    /// A queued copy was refused by the target.
    refused: bool,
    /// A full batch is sealed and the next one copied while the target makes it durable in
    /// the background (a target that can, receiving a whole batch or more).
    overlapped: bool,
    /// The batch whose flush was started, waiting for its records.
    sealed: Option<SealedBatch>,
    /// When the first copy of this batch was stored.
    opened: Option<std::time::Instant>,
}

/// A batch whose flush was started: what its records need.
struct SealedBatch {
    slots: Vec<CopySlot>,
    /// Outcomes of its queued stores, by ticket.
    outcomes: std::collections::HashMap<u64, crate::store::StoreResult<Option<u32>>>,
}

impl CopyBatch {
    /// An empty batch for a target that is to receive `copies` copies (`background`: it
    /// makes a batch durable in the background).
    fn for_copies(copies: usize, background: bool) -> CopyBatch {
        CopyBatch {
            overlapped: background && copies >= SMALL_COPY_RUN,
            sealed: None,
            limit: if copies < SMALL_COPY_RUN {
                1
            } else {
                COPY_BATCH_MESSAGES
            },
            stored: 0,
            bytes: 0,
            slots: Vec::new(),
            unknown_uid: false,
            refused: false,
            opened: None,
        }
    }

    fn add_stored(&mut self, bytes: usize) {
        if self.stored == 0 {
            self.opened = Some(std::time::Instant::now());
        }
        self.stored += 1;
        self.bytes += bytes;
    }

    /// Full by count or bytes; an overlapped batch also by age ([`COPY_BATCH_TIME`]).
    fn is_full(&self) -> bool {
        let aged = || {
            self.overlapped
                && self.stored > 0
                && self
                    .opened
                    .is_some_and(|opened| opened.elapsed() >= COPY_BATCH_TIME)
        };
        self.stored >= self.limit || self.bytes >= COPY_BATCH_BYTES || aged()
    }
}

fn print_error_lines(text: &str) {
    if !text.is_empty() {
        output::error(text);
    }
}

#[cfg(test)]
#[path = "pair_tests.rs"]
mod tests;
