//! The decision part of the algorithm (spec sync-semantics §4.4–§4.8, §4.13, §5) as pure code
//! over the pair state and the two loaded message lists. Journal records go to a
//! [`RecordSink`], so everything here is testable without I/O; the executor (`pair.rs`)
//! performs the mailbox operations these functions decide on.

use crate::config::{ExpireUnread, Side};
use crate::output;
use crate::store::{Flags, MessageInfo};
use crate::sync::entry::{Entry, PairState, Record, Status};
use crate::sync::plan::{LoadPlan, PairSettings, Requests};

pub use crate::sync::error::SyncError;

/// Receives the journal records the algorithm emits, in order.
pub trait RecordSink {
    /// Writes (or, in a dry run, counts) one record. `Err(SyncError::Interrupted)` means the
    /// step limit was reached: stop at once.
    fn log(&mut self, record: &Record) -> Result<(), SyncError>;
}

/// A sink that collects records (tests, and whoever wants to look at them).
#[derive(Debug, Default)]
pub struct VecSink {
    pub records: Vec<Record>,
}

impl RecordSink for VecSink {
    fn log(&mut self, record: &Record) -> Result<(), SyncError> {
        self.records.push(record.clone());
        Ok(())
    }
}

/// Sets uid[side] of an entry with the assign rule of §3.2 (shared with journal replay).
pub fn assign(state: &mut PairState, index: usize, side: Side, uid: u32) {
    state.assign(index, side, uid);
}

/// The in-memory working set of one mailbox pair during a run.
#[derive(Debug, Default)]
pub struct Work {
    pub state: PairState,
    /// Parallel to `state.entries`: index of the linked loaded message per side.
    pub links: Links,
    /// Loaded messages per side, ascending UID.
    pub msgs: [Vec<MessageInfo>; 2],
    /// Messages that left their box during the run (trashed away, expunged).
    pub removed: [Vec<bool>; 2],
    /// Side was loaded (at all).
    pub loaded: [bool; 2],
    /// Dry run: the box does not exist and only pretends to be empty.
    pub virtual_box: [bool; 2],
    pub plan: LoadPlan,
    /// Side needs copies in this run.
    pub any_new: [bool; 2],
    /// newmaxuid snapshot of phase 7.
    pub old_newmaxuid: [u32; 2],
}

/// Per entry, the index of its linked loaded message on each side (a side's index as in
/// `Side::index()`). Kept as index + 1 in a `u32`, 0 meaning none: a quarter of the memory of
/// `Option<usize>`, which counts at tens of thousands of messages.
#[derive(Debug, Default)]
pub struct Links(Vec<[u32; 2]>);

impl Links {
    fn unlinked(len: usize) -> Links {
        Links(vec![[0, 0]; len])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The message linked to entry `index` on side `t`.
    pub fn get(&self, index: usize, t: usize) -> Option<usize> {
        match self.0.get(index)?[t] {
            0 => None,
            stored => Some(stored as usize - 1),
        }
    }

    pub fn set(&mut self, index: usize, t: usize, message: Option<usize>) {
        self.0[index][t] = message.map_or(0, |m| {
            u32::try_from(m + 1).expect("a mailbox holds fewer than 2^32 messages")
        });
    }

    fn push_unlinked(&mut self) {
        self.0.push([0, 0]);
    }

    fn insert_unlinked(&mut self, index: usize) {
        self.0.insert(index, [0, 0]);
    }

    fn unlink_side(&mut self, t: usize) {
        for link in &mut self.0 {
            link[t] = 0;
        }
    }
}

fn records_uids(entry: &Entry) -> (u32, u32) {
    (entry.uid[0], entry.uid[1])
}

impl Work {
    /// Starts a working set from the loaded (or replayed) state.
    pub fn new(state: PairState) -> Work {
        let links = Links::unlinked(state.entries.len());
        Work {
            state,
            links,
            ..Work::default()
        }
    }

    pub fn requests(&self, side: Side) -> &Requests {
        &self.plan.requests[side.index()]
    }

    /// Flags of loaded messages are known on this side.
    pub fn flags_known(&self, side: Side) -> bool {
        self.plan.requests[side.index()].flags
    }

    /// The loaded message of an entry on a side, if linked and still there.
    pub fn msg(&self, index: usize, side: Side) -> Option<&MessageInfo> {
        let m = self.links.get(index, side.index())?;
        if self.removed[side.index()].get(m).copied().unwrap_or(false) {
            return None;
        }
        self.msgs[side.index()].get(m)
    }

    /// Appends an entry (pass 2) and returns its index.
    pub fn push_entry(&mut self, entry: Entry) -> usize {
        self.state.entries.push(entry);
        self.links.push_unlinked();
        self.state.entries.len() - 1
    }

    /// Installs the loaded messages of a side.
    pub fn set_loaded(&mut self, side: Side, messages: Vec<MessageInfo>) {
        let t = side.index();
        self.removed[t] = vec![false; messages.len()];
        self.msgs[t] = messages;
        self.loaded[t] = true;
        self.links.unlink_side(t);
    }

    /// Which entry each message of a side is linked to.
    pub fn reverse_links(&self, side: Side) -> Vec<Option<usize>> {
        let t = side.index();
        let mut rev = vec![None; self.msgs[t].len()];
        for i in 0..self.links.len() {
            if self.state.entries[i].is_dead() {
                continue;
            }
            if let Some(m) = self.links.get(i, t) {
                rev[m] = Some(i);
            }
        }
        rev
    }

    fn log(&self, sink: &mut dyn RecordSink, record: Record) -> Result<(), SyncError> {
        sink.log(&record)
    }

    /// TUID matching (§4.4 step 1) over `candidates` (indices into the loaded list of the
    /// side, ascending UID); returns how many entries were not found.
    pub fn match_tuids(
        &mut self,
        side: Side,
        candidates: &[usize],
        sink: &mut dyn RecordSink,
    ) -> Result<u32, SyncError> {
        let t = side.index();
        let mut lost = 0;
        let mut next = 0usize;
        for i in 0..self.state.entries.len() {
            let entry = &self.state.entries[i];
            if entry.is_dead() || entry.uid[t] != 0 {
                continue;
            }
            let Some(tuid) = entry.tuid else { continue };
            let n = candidates.len();
            let found = (0..n).map(|k| (next + k) % n.max(1)).find(|&k| {
                let m = candidates[k];
                !self.removed[t][m] && self.msgs[t][m].tuid == Some(tuid)
            });
            let (f, nn) = records_uids(&self.state.entries[i]);
            match found {
                Some(k) => {
                    let m = candidates[k];
                    let uid = self.msgs[t][m].uid;
                    self.log(
                        sink,
                        Record::Assign {
                            side,
                            far: f,
                            near: nn,
                            uid,
                        },
                    )?;
                    assign(&mut self.state, i, side, uid);
                    self.links.set(i, t, Some(m));
                    next = k + 1;
                }
                None => {
                    self.log(sink, Record::TuidLost { far: f, near: nn })?;
                    self.state.entries[i].tuid = None;
                    lost += 1;
                }
            }
        }
        Ok(lost)
    }

    /// Links a freshly loaded side to the entries (§4.4).
    pub fn match_loaded(&mut self, side: Side, sink: &mut dyn RecordSink) -> Result<(), SyncError> {
        let t = side.index();
        if self.plan.prescan.tuids[t] > 0 {
            let threshold = self.state.find_threshold[t].unwrap_or(0);
            let candidates: Vec<usize> = (0..self.msgs[t].len())
                .filter(|&m| self.msgs[t][m].uid >= threshold)
                .collect();
            self.match_tuids(side, &candidates, sink)?;
        }
        let mut by_uid = std::collections::HashMap::with_capacity(self.state.entries.len());
        for (i, entry) in self.state.entries.iter().enumerate() {
            if !entry.is_dead() && entry.uid[t] != 0 {
                by_uid.entry(entry.uid[t]).or_insert(i);
            }
        }
        let linked: Vec<bool> = {
            let mut v = vec![false; self.msgs[t].len()];
            for i in 0..self.links.len() {
                if let Some(m) = self.links.get(i, t) {
                    v[m] = true;
                }
            }
            v
        };
        for (m, msg) in self.msgs[t].iter().enumerate() {
            if linked[m] {
                continue;
            }
            if let Some(&i) = by_uid.get(&msg.uid)
                && self.links.get(i, t).is_none()
            {
                self.links.set(i, t, Some(m));
            }
        }
        Ok(())
    }

    /// UIDVALIDITY check and recovery (§5), then adoption with a `|` record.
    pub fn check_uid_validity(
        &mut self,
        settings: &PairSettings,
        current: [u32; 2],
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        let changed =
            [0, 1].map(|t| self.state.uid_validity[t].is_some_and(|stored| stored != current[t]));
        for side in Side::BOTH {
            let t = side.index();
            if !changed[t] {
                continue;
            }
            let o = 1 - t;
            let mut need = 0u64;
            let mut got = 0u64;
            for i in 0..self.state.entries.len() {
                if self.state.entries[i].is_dead() {
                    continue;
                }
                need += 1;
                let Some(mine) = self.msg(i, side) else {
                    continue;
                };
                let Some(mine_id) = mine.message_id.as_ref() else {
                    continue;
                };
                let Some(partner) = self.msg(i, side.other()) else {
                    continue;
                };
                if partner.message_id.as_ref() != Some(mine_id) {
                    let uid = self.state.entries[i].uid[t];
                    let what = if changed[o] {
                        "Unable to recover from both-sided UIDVALIDITY change, as it is genuine on at least one side."
                    } else {
                        "UIDVALIDITY genuinely changed."
                    };
                    return Err(SyncError::Pair(format!(
                        "Error: channel {}, {} box {} (at UID {}): {}",
                        settings.channel,
                        side.label(),
                        settings.box_names[t],
                        uid,
                        what
                    )));
                }
                got += 1;
            }
            if got >= 20 || 5 * got >= 4 * need {
                output::notice(&format!(
                    "Notice: channel {}, {} box {}: Recovered from change of UIDVALIDITY.",
                    settings.channel,
                    side.label(),
                    settings.box_names[t]
                ));
                self.state.uid_validity[t] = None;
            } else {
                return Err(SyncError::Pair(format!(
                    "Error: channel {}, {} box {}: Unable to recover from UIDVALIDITY change.",
                    settings.channel,
                    side.label(),
                    settings.box_names[t]
                )));
            }
        }
        if self.state.uid_validity.iter().any(Option::is_none) {
            self.state.uid_validity = [Some(current[0]), Some(current[1])];
            self.log(
                sink,
                Record::UidValidity {
                    far: current[0],
                    near: current[1],
                },
            )?;
        }
        Ok(())
    }

    /// The mass-deletion guard (a mailsync extension, not in mbsync): for each side whose
    /// vanished messages would be propagated as deletions (Gone or ExpungeSolo towards the
    /// other side), the messages the state knows on that side and how many of them are
    /// missing now while their partner on the other side is still there. Messages whose
    /// going is expected do not count: those the expiration of MaxMessages removes from the
    /// expire side, those deleted (T in the baseline) at the last sync, and those an
    /// interrupted run already trashed.
    pub fn deletion_losses(&self, settings: &PairSettings) -> [Option<DeletionLoss>; 2] {
        let xt = settings.expire_side;
        Side::BOTH.map(|side| {
            let t = side.index();
            let other = settings.ops(side.other());
            if !self.plan.requests[t].paired || !(other.types.gone || other.expunge_solo) {
                return None;
            }
            let mut loss = DeletionLoss {
                side,
                lost: 0,
                known: 0,
            };
            for (index, entry) in self.state.entries.iter().enumerate() {
                if entry.is_dead() || entry.uid[t] == 0 {
                    continue;
                }
                if side == xt && entry.status.has(Status::EXPIRE.with(Status::EXPIRED)) {
                    continue;
                }
                loss.known += 1;
                // Deleted at the last sync, or trashed by an interrupted run: expected to go.
                let expected = entry.flags.contains(Flags::TRASHED)
                    || self.state.trashed[t].contains(&entry.uid[t]);
                if !expected
                    && self.msg(index, side).is_none()
                    && self.msg(index, side.other()).is_some()
                {
                    loss.lost += 1;
                }
            }
            Some(loss)
        })
    }

    /// Pass 1 (§4.5): expunges, upgrade triggers, flag deltas of existing entries.
    pub fn pass1(
        &mut self,
        settings: &PairSettings,
        notices: &mut Notices,
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        let xt = settings.expire_side;
        let mut i = 0;
        while i < self.state.entries.len() {
            let index = i;
            i += 1;
            if self.state.entries[index].is_dead() {
                continue;
            }
            let missing = [Side::Far, Side::Near]
                .map(|s| self.msg(index, s).is_none() && self.plan.requests[s.index()].paired);
            if missing[0] && missing[1] {
                let (f, n) = records_uids(&self.state.entries[index]);
                self.log(sink, Record::Dead { far: f, near: n })?;
                self.state.entries[index].status.set(Status::DEAD);
                continue;
            }
            let gone = [0, 1].map(|t| missing[t] && self.state.entries[index].uid[t] != 0);

            // Step A.
            for side in Side::BOTH {
                let t = side.index();
                if let Some(m) = self.msg(index, side)
                    && m.flags.contains(Flags::TRASHED)
                {
                    self.state.entries[index].status.set(Status::del(side));
                }
                let entry = &self.state.entries[index];
                let Some(placeholder) = self.msg(index, side) else {
                    continue;
                };
                if settings.ops(side).types.upgrade
                    && entry.status.has(Status::dummy(side))
                    && entry.uid[1 - t] != 0
                    && placeholder.flags.contains(Flags::FLAGGED)
                {
                    let mut saved = placeholder.flags.minus(Flags::FLAGGED);
                    if !entry.flags.contains(Flags::SEEN) {
                        saved = saved.minus(Flags::SEEN);
                    }
                    let (f, n) = records_uids(entry);
                    self.log(
                        sink,
                        Record::Upgrade {
                            far: f,
                            near: n,
                            flags: saved,
                        },
                    )?;
                    self.split_for_upgrade(index, side, saved);
                    i += 1; // the split-off entry is not visited
                }
            }

            // Step B.
            for side in Side::BOTH {
                self.pass1_side(index, side, xt, gone, settings, notices, sink)?;
            }
        }
        Ok(())
    }

    /// The upgrade split of §4.5: the placeholder moves to a new entry right after.
    fn split_for_upgrade(&mut self, index: usize, side: Side, saved: Flags) {
        let t = side.index();
        self.state.entries[index].pflags = saved;
        let link = self.links.get(index, t);
        self.links.set(index, t, None);
        let placeholder = self.state.upgrade_split(index, side);
        self.links.insert_unlinked(placeholder);
        self.links.set(placeholder, t, link);
    }

    #[allow(clippy::too_many_arguments)]
    fn pass1_side(
        &mut self,
        index: usize,
        side: Side,
        xt: Side,
        gone: [bool; 2],
        settings: &PairSettings,
        notices: &mut Notices,
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        let t = side.index();
        let o = 1 - t;
        let entry = &self.state.entries[index];
        let source = if entry.status.has(Status::UPGRADE) {
            if entry.uid[t] != 0 {
                entry.pflags
            } else if let Some(m) = self.msg(index, side.other()) {
                m.flags
            } else {
                return Ok(());
            }
        } else if gone[t] {
            self.state.entries[index].status.set(Status::gone(side));
            return Ok(());
        } else if entry.uid[t] == 0 {
            return Ok(());
        } else if gone[o] {
            let expiring = Status::EXPIRE.with(Status::EXPIRED);
            if side != xt && entry.status.has(expiring) {
                let (f, n) = records_uids(entry);
                if !entry.status.has_all(expiring) {
                    self.state.entries[index].status.set(expiring);
                    let status = self.state.entries[index].status.0;
                    self.log(
                        sink,
                        Record::Status {
                            far: f,
                            near: n,
                            status,
                        },
                    )?;
                }
                self.log(
                    sink,
                    Record::Assign {
                        side: xt,
                        far: f,
                        near: n,
                        uid: 0,
                    },
                )?;
                assign(&mut self.state, index, xt, 0);
                self.links.set(index, xt.index(), None);
            } else {
                if self.flags_known(side)
                    && let Some(m) = self.msg(index, side)
                {
                    let base = entry.flags;
                    if m.flags.minus(Flags::TRASHED) != base.minus(Flags::TRASHED)
                        || (!m.flags.contains(Flags::TRASHED) && base.contains(Flags::TRASHED))
                    {
                        output::notice(&format!(
                            "Notice: conflicting changes in ({},{})",
                            entry.uid[0], entry.uid[1]
                        ));
                    }
                }
                if settings.ops(side).types.gone {
                    let entry = &mut self.state.entries[index];
                    entry.add[t] = Flags::TRASHED;
                    entry.status.set(Status::DELETE);
                }
            }
            return Ok(());
        } else if let Some(m) = self.msg(index, side.other()) {
            m.flags
        } else {
            return Ok(());
        };

        // Flag delta.
        if !settings.ops(side).types.flags {
            return Ok(());
        }
        let supported = settings.store(side).supported_flags;
        let unsupported = source.minus(supported);
        if !unsupported.is_empty() {
            notices.unsupported_flags(side, unsupported);
        }
        let mut source = source.intersection(supported);
        let entry = &mut self.state.entries[index];
        if side != xt && entry.status.has(Status::EXPIRE.with(Status::EXPIRED)) {
            source = source.minus(Flags::TRASHED);
        }
        if entry.status.has(Status::dummy(side.other())) {
            source = source.minus(Flags::FLAGGED);
            if !entry.flags.contains(Flags::SEEN) {
                source = source.minus(Flags::SEEN);
            }
        } else if entry.status.has(Status::dummy(side)) {
            source = source.minus(Flags::FLAGGED);
        }
        entry.add[t] = source.minus(entry.flags);
        entry.del[t] = entry.flags.minus(source);
        Ok(())
    }

    /// Pass 2 (§4.6): new messages, push then pull.
    pub fn pass2(
        &mut self,
        settings: &PairSettings,
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        for target in Side::BOTH {
            self.pass2_direction(target, settings, sink)?;
        }
        Ok(())
    }

    fn pass2_direction(
        &mut self,
        target: Side,
        settings: &PairSettings,
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        let t = target.index();
        let source = target.other();
        let s = source.index();
        let xt = settings.expire_side;
        let types = settings.ops(target).types;
        let rev = self.reverse_links(source);
        let mut topping = true;
        for (m, linked) in rev.iter().copied().enumerate() {
            if self.removed[s][m] {
                continue;
            }
            let (uid, mflags, size) = {
                let msg = &self.msgs[s][m];
                (msg.uid, msg.flags, msg.size)
            };
            let index = match linked {
                Some(index) => {
                    if topping && self.state.newmaxuid[s] < uid {
                        self.state.newmaxuid[s] = uid;
                    }
                    let entry = &self.state.entries[index];
                    let (f, n) = records_uids(entry);
                    if entry.status.has(Status::SKIPPED) {
                        if !types.upgrade {
                            continue;
                        }
                        self.state.entries[index].status =
                            Status::PENDING.with(Status::dummy(target));
                        self.log(sink, Record::Dummy { far: f, near: n })?;
                    } else if !entry.status.has(Status::PENDING) {
                        if entry.uid[t] != 0 || !types.old {
                            continue;
                        }
                        if target != xt || !entry.status.has(Status::EXPIRED) {
                            continue;
                        }
                        if !mflags.contains(Flags::FLAGGED)
                            && (mflags.contains(Flags::SEEN)
                                || settings.expire_unread == ExpireUnread::Yes)
                        {
                            continue;
                        }
                        // §10.1: the reference aborts here; we re-propagate instead.
                        let entry = &mut self.state.entries[index];
                        entry.status = entry.status.without(Status::LOGGED).with(Status::PENDING);
                        self.log(
                            sink,
                            Record::Status {
                                far: f,
                                near: n,
                                status: Status::PENDING.0,
                            },
                        )?;
                    } else if entry.status.has(Status::UPGRADE) {
                        let ops_t = settings.ops(target);
                        let ops_s = settings.ops(source);
                        let doomed_target = ops_t.expunge
                            && entry
                                .pflags
                                .union(entry.add[t])
                                .minus(entry.del[t])
                                .contains(Flags::TRASHED);
                        let doomed_source = ops_s.expunge
                            && mflags
                                .union(entry.add[s])
                                .minus(entry.del[s])
                                .contains(Flags::TRASHED);
                        if doomed_target || doomed_source {
                            let entry = &mut self.state.entries[index];
                            entry.status.clear(Status::PENDING.with(Status::UPGRADE));
                            entry.status.set(Status::dummy(target));
                            let status = entry.status.only(Status::LOGGED).0;
                            self.log(
                                sink,
                                Record::Status {
                                    far: f,
                                    near: n,
                                    status,
                                },
                            )?;
                        } else {
                            self.any_new[t] = true;
                        }
                        continue;
                    }
                    index
                }
                None => {
                    if target != xt || uid > self.state.max_expired {
                        topping = false;
                    }
                    if uid <= self.state.maxuid[s] {
                        if !types.old {
                            continue;
                        }
                        if topping
                            && !(mflags.contains(Flags::FLAGGED)
                                || (!mflags.contains(Flags::SEEN)
                                    && settings.expire_unread != ExpireUnread::Yes))
                        {
                            continue;
                        }
                    } else if !types.new {
                        continue;
                    }
                    let mut entry = Entry {
                        status: Status::PENDING,
                        ..Entry::default()
                    };
                    entry.uid[s] = uid;
                    if self.state.newmaxuid[s] < uid {
                        self.state.newmaxuid[s] = uid;
                    }
                    self.log(
                        sink,
                        Record::New {
                            far: entry.uid[0],
                            near: entry.uid[1],
                        },
                    )?;
                    let index = self.push_entry(entry);
                    self.links.set(index, s, Some(m));
                    index
                }
            };
            // Tail.
            let (f, n) = records_uids(&self.state.entries[index]);
            if settings.expunge_either() && mflags.contains(Flags::TRASHED) {
                self.log(sink, Record::Dead { far: f, near: n })?;
                self.state.entries[index].status.set(Status::DEAD);
                self.links.set(index, s, None);
                continue;
            }
            let max_size = settings.store(target).max_size;
            let entry = &mut self.state.entries[index];
            if max_size > 0
                && size > max_size
                && !entry.status.has(Status::DUMMY_F.with(Status::DUMMY_N))
            {
                entry.status.set(Status::dummy(target));
                self.log(sink, Record::Dummy { far: f, near: n })?;
            }
            self.any_new[t] = true;
        }
        Ok(())
    }

    /// Pass 3 (§4.7): decides which messages to expire for MaxMessages.
    pub fn pass3(
        &mut self,
        settings: &PairSettings,
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        // A replayed open transaction activates expiration even without MaxMessages; then
        // nothing new is expired (that would expire everything) and pass 4 cancels it.
        if !self.plan.expiration_active || settings.max_messages == 0 {
            return Ok(());
        }
        let xt = settings.expire_side;
        let x = xt.index();
        let keep = xt.other();
        let k = keep.index();
        let mut candidates: Vec<(u32, usize, Flags)> = Vec::new();
        for (index, entry) in self.state.entries.iter().enumerate() {
            if entry.is_dead() || entry.uid[k] == 0 {
                continue;
            }
            let nf = if !entry.status.has(Status::PENDING) {
                let Some(xmsg) = self.msg(index, xt) else {
                    continue;
                };
                let mut nf = xmsg.flags;
                if entry.status.has(Status::dummy(xt)) {
                    let Some(kmsg) = self.msg(index, keep) else {
                        continue;
                    };
                    let r = kmsg.flags;
                    let b = entry.flags;
                    nf = nf.minus(Flags::FLAGGED);
                    if !b.contains(Flags::SEEN) {
                        nf = nf.minus(Flags::SEEN);
                    }
                    nf = nf
                        .minus(b.minus(r).intersection(Flags::SEEN))
                        .union(r.minus(b).intersection(Flags::SEEN.union(Flags::FLAGGED)));
                }
                nf.union(entry.add[x]).minus(entry.del[x])
            } else if entry.status.has(Status::UPGRADE) {
                entry.pflags.union(entry.add[x]).minus(entry.del[x])
            } else {
                let Some(kmsg) = self.msg(index, keep) else {
                    continue;
                };
                kmsg.flags
            };
            if !nf.contains(Flags::TRASHED)
                || entry.status.has(Status::EXPIRE.with(Status::EXPIRED))
            {
                candidates.push((entry.uid[k], index, nf));
            }
        }
        candidates.sort_by_key(|c| c.0);
        let mut excess = candidates.len() as i64 - i64::from(settings.max_messages);
        let mut unread = 0u32;
        for &(_, index, nf) in &candidates {
            let flagged = nf.contains(Flags::FLAGGED);
            let seen = nf.contains(Flags::SEEN);
            if !seen && !flagged && excess > 0 {
                unread += 1;
            }
            let important = flagged || (!seen && settings.expire_unread != ExpireUnread::Yes);
            if important {
                excess -= 1;
                continue;
            }
            let status = self.state.entries[index].status;
            let xmsg_trashed = self
                .msg(index, xt)
                .is_some_and(|m| m.flags.contains(Flags::TRASHED));
            if excess > 0
                || status.has_all(Status::EXPIRE.with(Status::EXPIRED))
                || (status.has(Status::EXPIRE.with(Status::EXPIRED)) && xmsg_trashed)
            {
                self.state.entries[index].status.set(Status::NEXPIRE);
                excess -= 1;
            }
        }
        if settings.expire_unread == ExpireUnread::Unset
            && 2 * u64::from(unread) > u64::from(settings.max_messages)
        {
            return Err(SyncError::Pair(format!(
                "{}: {} unread messages in excess of MaxMessages ({}).\nPlease set ExpireUnread to decide outcome. Skipping mailbox.",
                settings.box_names[x], unread, settings.max_messages
            )));
        }
        for &(_, index, _) in &candidates {
            let entry = &self.state.entries[index];
            let (f, n) = records_uids(entry);
            let nexpire = entry.status.has(Status::NEXPIRE);
            if !entry.status.has(Status::PENDING) {
                if nexpire != entry.status.has(Status::EXPIRED)
                    && nexpire != entry.status.has(Status::EXPIRE)
                {
                    let entry = &mut self.state.entries[index];
                    if nexpire {
                        entry.status.set(Status::EXPIRE);
                    } else {
                        entry.status.clear(Status::EXPIRE);
                    }
                    let status = entry.status.only(Status::LOGGED).0;
                    self.log(
                        sink,
                        Record::Status {
                            far: f,
                            near: n,
                            status,
                        },
                    )?;
                }
            } else if nexpire {
                let keep_uid = entry.uid[k];
                self.state.entries[index].status = Status::EXPIRE.with(Status::EXPIRED);
                self.log(
                    sink,
                    Record::Status {
                        far: f,
                        near: n,
                        status: 6,
                    },
                )?;
                self.state.max_expired = self.state.max_expired.max(keep_uid);
                self.links.set(index, k, None);
            }
        }
        Ok(())
    }

    /// Pass 4 decision (§4.8 steps 1–5): the flags to add and remove on side t of an entry;
    /// `None` when this side is skipped, `Some((∅, ∅))` when only *finish* is due.
    pub fn flag_update(
        &mut self,
        index: usize,
        side: Side,
        settings: &PairSettings,
    ) -> Option<(Flags, Flags)> {
        let t = side.index();
        let entry = &self.state.entries[index];
        if entry.is_dead() || entry.uid[t] == 0 || entry.status.has(Status::gone(side)) {
            return None;
        }
        let mut a = entry.add[t];
        let mut d = entry.del[t];
        if entry.status.has(Status::DELETE.with(Status::PURGE)) {
            if a.is_empty() {
                return None;
            }
        } else if side == settings.expire_side
            && entry.status.has(Status::EXPIRE) != entry.status.has(Status::EXPIRED)
        {
            if entry.status.has(Status::NEXPIRE) {
                a = a.union(Flags::TRASHED);
            } else {
                d = d.union(Flags::TRASHED);
            }
        }
        let known = if self.flags_known(side) {
            self.msg(index, side).map(|m| m.flags)
        } else {
            None
        };
        let store = settings.store(side);
        if settings.ops(side).expunge
            && known
                .unwrap_or(Flags::EMPTY)
                .union(a)
                .minus(d)
                .contains(Flags::TRASHED)
            && (!store.has_trash || store.trash_new_only)
        {
            let entry = &mut self.state.entries[index];
            entry.add[t] = entry.add[t].intersection(Flags::TRASHED);
            entry.del[t] = Flags::EMPTY;
            a = a.intersection(Flags::TRASHED);
            d = Flags::EMPTY;
        }
        if let Some(current) = known {
            a = a.minus(current);
            d = d.intersection(current);
        }
        Some((a, d))
    }

    /// Records the result of a successful flag change on side t (§4.8 step 6).
    pub fn flags_applied(&mut self, index: usize, side: Side, add: Flags, del: Flags) {
        let t = side.index();
        if add.contains(Flags::TRASHED) {
            self.state.entries[index].status.set(Status::del(side));
        } else if del.contains(Flags::TRASHED) {
            self.state.entries[index].status.clear(Status::del(side));
        }
        if let Some(m) = self.links.get(index, t) {
            let msg = &mut self.msgs[t][m];
            msg.flags = msg.flags.union(add).minus(del);
        }
    }

    /// *Finish(E, t)* of §4.8.
    pub fn finish_flags(
        &mut self,
        index: usize,
        side: Side,
        settings: &PairSettings,
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        let t = side.index();
        let (f, n) = records_uids(&self.state.entries[index]);
        let status = self.state.entries[index].status;
        if status.has(Status::PURGE) {
            self.log(sink, Record::Purged { far: f, near: n })?;
            let entry = &mut self.state.entries[index];
            entry.status.clear(Status::PURGE);
            entry.status.set(Status::PURGED);
            entry.add = [Flags::EMPTY; 2];
            entry.del = [Flags::EMPTY; 2];
            return Ok(());
        }
        if status.has(Status::DELETE) {
            return Ok(());
        }
        let entry = &self.state.entries[index];
        let nf = entry.flags.union(entry.add[t]).minus(entry.del[t]);
        if nf != entry.flags {
            self.log(
                sink,
                Record::Flags {
                    far: f,
                    near: n,
                    flags: nf,
                },
            )?;
            self.state.entries[index].flags = nf;
        }
        let entry = &self.state.entries[index];
        if side == settings.expire_side
            && entry.status.has(Status::EXPIRE) != entry.status.has(Status::EXPIRED)
        {
            let nexpire = entry.status.has(Status::NEXPIRE);
            let expire = entry.status.has(Status::EXPIRE);
            let keep_uid = entry.uid[settings.keep_side().index()];
            if nexpire == expire {
                if nexpire {
                    self.state.max_expired = self.state.max_expired.max(keep_uid);
                }
                set_bit(
                    &mut self.state.entries[index].status,
                    Status::EXPIRED,
                    nexpire,
                );
            } else {
                set_bit(
                    &mut self.state.entries[index].status,
                    Status::EXPIRE,
                    nexpire,
                );
            }
            let status = self.state.entries[index].status.only(Status::LOGGED).0;
            self.log(
                sink,
                Record::Status {
                    far: f,
                    near: n,
                    status,
                },
            )?;
        }
        Ok(())
    }

    /// Messages of side t to expunge (§4.9 selection), as indices into the loaded list.
    pub fn expunge_selection(&self, side: Side, settings: &PairSettings) -> Vec<usize> {
        let t = side.index();
        let o = side.other();
        let ops = settings.ops(side);
        let solo = ops.expunge_solo && !ops.expunge;
        let rev = self.reverse_links(side);
        let mut selected = Vec::new();
        for (m, msg) in self.msgs[t].iter().enumerate() {
            if self.removed[t][m] || !msg.flags.contains(Flags::TRASHED) {
                continue;
            }
            if let Some(index) = rev[m] {
                let entry = &self.state.entries[index];
                // Never while a copy of it is still to be made, in either mode: with
                // Expunge such an entry cannot normally arise (pass 2 drops doomed copies),
                // and expunging it would lose the message.
                if entry.status.has(Status::PENDING) {
                    continue;
                }
                if !solo {
                    selected.push(m);
                    continue;
                }
                let wanted = entry.uid[o.index()] == 0
                    || entry.status.has(Status::gone(o))
                    || (settings.ops(o).expunge && entry.status.has(Status::del(o)))
                    || (side == settings.expire_side
                        && entry.status.has(Status::EXPIRE.with(Status::EXPIRED)));
                if !wanted {
                    continue;
                }
            }
            selected.push(m);
        }
        selected
    }

    /// Whether a selected message is to be trashed (§4.9), given the trash mode; `rev` is
    /// [`Work::reverse_links`] of the side.
    pub fn should_trash(
        &self,
        side: Side,
        m: usize,
        new_only: bool,
        rev: &[Option<usize>],
        settings: &PairSettings,
    ) -> bool {
        let t = side.index();
        let uid = self.msgs[t][m].uid;
        if let Some(index) = rev.get(m).copied().flatten() {
            let status = self.state.entries[index].status;
            if side == settings.expire_side && status.has(Status::EXPIRE.with(Status::EXPIRED)) {
                return false;
            }
            if status.has(Status::dummy(side)) || status.has(Status::PURGED) {
                return false;
            }
            if new_only && !status.has(Status::dummy(side.other()).with(Status::SKIPPED)) {
                return false;
            }
        }
        !self.state.trashed[t].contains(&uid)
    }

    /// A message left its box (trashed away or expunged): its entry (from `rev`, see
    /// [`Work::reverse_links`]) gets GONE[t].
    pub fn message_removed(&mut self, side: Side, m: usize, rev: &[Option<usize>]) {
        let t = side.index();
        if let Some(index) = rev.get(m).copied().flatten() {
            self.state.entries[index].status.set(Status::gone(side));
        }
        self.removed[t][m] = true;
    }

    /// End of run (§4.13 steps 1–2): commits the high-water marks and purges entries.
    /// Records are emitted only when `journal_end` (`-TJ`).
    pub fn finish_run(
        &mut self,
        settings: &PairSettings,
        journal_end: bool,
        sink: &mut dyn RecordSink,
    ) -> Result<(), SyncError> {
        for side in Side::BOTH {
            let t = side.index();
            self.state.maxuid[t] = self.state.newmaxuid[t];
            if self.state.newmaxuid[t] != self.old_newmaxuid[t] && journal_end {
                self.log(
                    sink,
                    Record::MaxUid {
                        side,
                        uid: self.state.newmaxuid[t],
                    },
                )?;
            }
        }
        let xt = settings.expire_side.index();
        let k = 1 - xt;
        for index in 0..self.state.entries.len() {
            let entry = &self.state.entries[index];
            if entry.is_dead() {
                continue;
            }
            let (f, n) = records_uids(entry);
            let absent = |t: usize| entry.uid[t] == 0 || entry.status.has(Status::gone(side_of(t)));
            if entry.status.has(Status::EXPIRED)
                && absent(xt)
                && self.state.maxuid[k] >= entry.uid[k]
                && self.state.max_expired >= entry.uid[k]
            {
                self.end_record(journal_end, sink, Record::Dead { far: f, near: n })?;
                self.state.entries[index].status.set(Status::DEAD);
            } else if absent(1) {
                if absent(0) {
                    self.end_record(journal_end, sink, Record::Dead { far: f, near: n })?;
                    self.state.entries[index].status.set(Status::DEAD);
                } else if entry.uid[1] != 0 && entry.status.has(Status::DEL_F) {
                    self.end_record(
                        journal_end,
                        sink,
                        Record::Assign {
                            side: Side::Near,
                            far: f,
                            near: n,
                            uid: 0,
                        },
                    )?;
                    assign(&mut self.state, index, Side::Near, 0);
                }
            } else if entry.uid[0] != 0
                && entry.status.has(Status::GONE_F)
                && entry.status.has(Status::DEL_N)
            {
                self.end_record(
                    journal_end,
                    sink,
                    Record::Assign {
                        side: Side::Far,
                        far: f,
                        near: n,
                        uid: 0,
                    },
                )?;
                assign(&mut self.state, index, Side::Far, 0);
            }
        }
        Ok(())
    }

    fn end_record(
        &self,
        journal_end: bool,
        sink: &mut dyn RecordSink,
        record: Record,
    ) -> Result<(), SyncError> {
        if journal_end {
            sink.log(&record)
        } else {
            Ok(())
        }
    }

    /// Pending entries in list order (for TUID assignment).
    pub fn pending_entries(&self) -> Vec<usize> {
        (0..self.state.entries.len())
            .filter(|&i| {
                let e = &self.state.entries[i];
                !e.is_dead() && e.status.has(Status::PENDING)
            })
            .collect()
    }

    /// Copies into `target`, in source UID order: (source message index, entry index).
    pub fn copy_list(&self, target: Side) -> Vec<(usize, usize)> {
        let source = target.other();
        let t = target.index();
        let rev = self.reverse_links(source);
        rev.iter()
            .enumerate()
            .filter_map(|(m, e)| e.map(|i| (m, i)))
            .filter(|&(m, i)| {
                let e = &self.state.entries[i];
                !self.removed[source.index()][m] && e.status.has(Status::PENDING) && e.uid[t] == 0
            })
            .collect()
    }
}

fn set_bit(status: &mut Status, bit: Status, on: bool) {
    if on {
        status.set(bit);
    } else {
        status.clear(bit);
    }
}

fn side_of(t: usize) -> Side {
    if t == 0 { Side::Far } else { Side::Near }
}

/// Messages of one side that the state knows and that vanished while their partner is
/// still there (see [`Work::deletion_losses`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeletionLoss {
    pub side: Side,
    pub lost: u64,
    pub known: u64,
}

impl DeletionLoss {
    /// The loss is larger than `max_percent` of the known messages (never for 100).
    pub fn exceeds(&self, max_percent: u8) -> bool {
        max_percent < 100 && self.lost > 0 && self.lost * 100 > u64::from(max_percent) * self.known
    }
}

/// Once-per-store notices of the run.
#[derive(Debug, Default)]
pub struct Notices {
    unsupported: [Flags; 2],
}

impl Notices {
    fn unsupported_flags(&mut self, side: Side, flags: Flags) {
        let t = side.index();
        let fresh = flags.minus(self.unsupported[t]);
        if fresh.is_empty() {
            return;
        }
        self.unsupported[t] = self.unsupported[t].union(fresh);
        output::notice(&format!(
            "Notice: {} store does not support flag(s) '{}'; not propagating.",
            side.label(),
            fresh.letters()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OpTypes, SideOps};
    use crate::sync::plan::{StoreTraits, plan_load};

    const S: Flags = Flags::SEEN;
    const F: Flags = Flags::FLAGGED;
    const T: Flags = Flags::TRASHED;

    fn settings(far: OpTypes, near: OpTypes) -> PairSettings {
        PairSettings {
            channel: "ex".into(),
            box_names: ["farbox".into(), "nearbox".into()],
            ops: [
                SideOps {
                    types: far,
                    ..SideOps::default()
                },
                SideOps {
                    types: near,
                    ..SideOps::default()
                },
            ],
            stores: [StoreTraits::default(), StoreTraits::default()],
            max_messages: 0,
            expire_side: Side::Near,
            expire_unread: ExpireUnread::Unset,
            copy_arrival_date: false,
            max_delete_percent: crate::config::DEFAULT_MAX_DELETE_PERCENT,
        }
    }

    fn msg(uid: u32, flags: Flags) -> MessageInfo {
        MessageInfo {
            uid,
            flags,
            ..MessageInfo::default()
        }
    }

    fn entry(f: u32, n: u32, flags: Flags, status: Status) -> Entry {
        Entry {
            uid: [f, n],
            flags,
            status,
            ..Entry::default()
        }
    }

    /// Plans, "loads" the given lists and matches them.
    fn work(
        entries: Vec<Entry>,
        maxuid: [u32; 2],
        s: &mut PairSettings,
        far: Vec<MessageInfo>,
        near: Vec<MessageInfo>,
        sink: &mut VecSink,
    ) -> Work {
        let state = PairState {
            uid_validity: [Some(1), Some(2)],
            maxuid,
            newmaxuid: maxuid,
            entries,
            ..PairState::default()
        };
        let plan = plan_load(&state, s, [1, 2]);
        let mut w = Work::new(state);
        w.plan = plan;
        w.set_loaded(Side::Far, far);
        w.set_loaded(Side::Near, near);
        for side in Side::BOTH {
            if let Err(e) = w.match_loaded(side, sink) {
                panic!("{e}");
            }
        }
        w
    }

    fn ok(r: Result<(), SyncError>) {
        if let Err(e) = r {
            panic!("{e}");
        }
    }

    #[test]
    fn pass1_flag_delta_ignores_placeholder_flagged_and_unseen() {
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        let mut sink = VecSink::default();
        let mut w = work(
            vec![entry(1, 1, S, Status::DUMMY_N)],
            [1, 1],
            &mut s,
            vec![msg(1, S | Flags::REPLIED)],
            vec![msg(1, Flags::EMPTY)],
            &mut sink,
        );
        ok(w.pass1(&s, &mut Notices::default(), &mut sink));
        let e = &w.state.entries[0];
        // Near placeholder lost S: un-seeing propagates to far; R goes to near.
        assert_eq!(e.add[0], Flags::EMPTY);
        assert_eq!(e.del[0], S);
        assert_eq!(e.add[1], Flags::REPLIED);
        assert!(sink.records.is_empty());
    }

    #[test]
    fn pass1_upgrade_trigger_splits_the_entry() {
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        let mut sink = VecSink::default();
        let mut w = work(
            vec![
                entry(2, 2, S, Status::DUMMY_N),
                entry(3, 3, S, Status::EMPTY),
            ],
            [3, 3],
            &mut s,
            vec![msg(2, F | S), msg(3, S)],
            vec![msg(2, F | S), msg(3, S)],
            &mut sink,
        );
        ok(w.pass1(&s, &mut Notices::default(), &mut sink));
        assert_eq!(
            sink.records,
            vec![Record::Upgrade {
                far: 2,
                near: 2,
                flags: S
            }]
        );
        let e = &w.state.entries;
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].uid, [2, 0]);
        assert!(e[0].status.has_all(Status::PENDING.with(Status::UPGRADE)));
        assert_eq!(e[0].add[1], F);
        assert_eq!(e[1].uid, [0, 2]);
        assert!(e[1].status.has(Status::PURGE));
        assert_eq!(e[1].add[1], T);
        assert_eq!(w.msg(1, Side::Near).map(|m| m.uid), Some(2));
    }

    #[test]
    fn pass1_expired_source_gone_orphans_the_expire_side() {
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        s.max_messages = 5;
        let mut sink = VecSink::default();
        let mut w = work(
            vec![entry(4, 2, S, Status::EXPIRE)],
            [4, 2],
            &mut s,
            vec![msg(4, S)],
            vec![],
            &mut sink,
        );
        ok(w.pass1(&s, &mut Notices::default(), &mut sink));
        assert_eq!(
            sink.records,
            vec![
                Record::Status {
                    far: 4,
                    near: 2,
                    status: 6
                },
                Record::Assign {
                    side: Side::Near,
                    far: 4,
                    near: 2,
                    uid: 0
                }
            ]
        );
        assert_eq!(w.state.entries[0].uid, [4, 0]);
        assert!(!w.state.entries[0].status.has(Status::DELETE));
    }

    #[test]
    fn pass2_topping_stops_at_first_unknown_message() {
        let mut s = settings(OpTypes::NONE, OpTypes::NONE);
        let mut sink = VecSink::default();
        let mut w = work(
            vec![entry(1, 1, S, Status::EMPTY), entry(3, 3, S, Status::EMPTY)],
            [3, 0],
            &mut s,
            vec![msg(1, S), msg(3, S)],
            vec![msg(1, S), msg(2, S), msg(3, S)],
            &mut sink,
        );
        // Sync None loads nothing; give the lists directly as if loaded.
        ok(w.pass2(&s, &mut sink));
        assert_eq!(w.state.newmaxuid, [3, 1]);
        // With MaxExpired 2 and ExpireSide Far, near 2 does not stop topping in the push pass.
        s.expire_side = Side::Far;
        w.state.newmaxuid = [3, 0];
        w.state.max_expired = 2;
        ok(w.pass2(&s, &mut sink));
        assert_eq!(w.state.newmaxuid, [3, 3]);
        assert!(sink.records.is_empty());
    }

    #[test]
    fn pass2_old_expired_message_flagged_is_repropagated_with_pending_record() {
        // §10.1: do not crash; mark PENDING and write `~ f n 16`.
        let mut old = OpTypes::DEFAULT;
        old.old = true;
        let mut s = settings(OpTypes::NONE, old);
        let mut sink = VecSink::default();
        let mut w = work(
            vec![entry(5, 0, S, Status::EXPIRE.with(Status::EXPIRED))],
            [5, 3],
            &mut s,
            vec![msg(5, F | S)],
            vec![],
            &mut sink,
        );
        ok(w.pass2(&s, &mut sink));
        assert_eq!(
            sink.records,
            vec![Record::Status {
                far: 5,
                near: 0,
                status: 16
            }]
        );
        assert!(w.state.entries[0].status.has(Status::PENDING));
        assert!(!w.state.entries[0].status.has(Status::EXPIRED));
        assert!(w.any_new[1]);
        assert_eq!(w.copy_list(Side::Near), vec![(0, 0)]);
    }

    #[test]
    fn pass2_doomed_new_message_is_not_copied_but_moves_the_mark() {
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        s.ops[1].expunge = true;
        let mut sink = VecSink::default();
        let mut w = work(
            vec![],
            [0, 0],
            &mut s,
            vec![msg(1, T), msg(2, S)],
            vec![],
            &mut sink,
        );
        ok(w.pass2(&s, &mut sink));
        assert_eq!(
            sink.records,
            vec![
                Record::New { far: 1, near: 0 },
                Record::Dead { far: 1, near: 0 },
                Record::New { far: 2, near: 0 }
            ]
        );
        assert_eq!(w.state.newmaxuid[0], 2);
        assert_eq!(w.copy_list(Side::Near), vec![(1, 1)]);
    }

    #[test]
    fn pass3_keeps_newest_and_important() {
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        s.max_messages = 2;
        let mut sink = VecSink::default();
        let entries = (1..=4).map(|u| entry(u, u, S, Status::EMPTY)).collect();
        let far = vec![msg(1, S), msg(2, F | S), msg(3, S), msg(4, S)];
        let near = far.clone();
        let mut w = work(entries, [4, 4], &mut s, far, near, &mut sink);
        ok(w.pass3(&s, &mut sink));
        // Candidates 4, excess 2: 1 expires, 2 is important (kept, excess 0), 3 and 4 kept.
        assert_eq!(
            sink.records,
            vec![Record::Status {
                far: 1,
                near: 1,
                status: 2
            }]
        );
        assert!(w.state.entries[0].status.has(Status::NEXPIRE));
        assert!(!w.state.entries[2].status.has(Status::NEXPIRE));
    }

    #[test]
    fn pass4_opens_and_commits_the_expiration() {
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        s.max_messages = 1;
        let mut sink = VecSink::default();
        let entries = vec![entry(1, 1, S, Status::EMPTY), entry(2, 2, S, Status::EMPTY)];
        let list = vec![msg(1, S), msg(2, S)];
        let mut w = work(entries, [2, 2], &mut s, list.clone(), list, &mut sink);
        ok(w.pass3(&s, &mut sink));
        assert_eq!(
            w.flag_update(0, Side::Far, &s),
            Some((Flags::EMPTY, Flags::EMPTY))
        );
        assert_eq!(w.flag_update(0, Side::Near, &s), Some((T, Flags::EMPTY)));
        w.flags_applied(0, Side::Near, T, Flags::EMPTY);
        ok(w.finish_flags(0, Side::Near, &s, &mut sink));
        assert_eq!(w.state.max_expired, 1);
        assert!(
            w.state.entries[0]
                .status
                .has_all(Status::EXPIRE.with(Status::EXPIRED))
        );
        assert_eq!(
            sink.records.last(),
            Some(&Record::Status {
                far: 1,
                near: 1,
                status: 6
            })
        );
        // The baseline keeps S only: expiration's T is not a flag change.
        assert_eq!(w.state.entries[0].flags, S);
    }

    #[test]
    fn deletion_losses_count_only_unexpected_vanishing() {
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        let mut sink = VecSink::default();
        let mut w = work(
            vec![
                entry(1, 1, S, Status::EMPTY),     // near vanished: lost
                entry(2, 2, S | T, Status::EMPTY), // deleted at last sync: expected
                entry(3, 3, S, Status::EXPIRE),    // expired on near: not counted
                entry(4, 4, S, Status::EMPTY),     // near trashed by an interrupted run
                entry(5, 5, S, Status::EMPTY),     // both gone: nothing to propagate
                entry(6, 6, S, Status::EMPTY),     // still there
            ],
            [6, 6],
            &mut s,
            vec![msg(1, S), msg(2, S | T), msg(3, S), msg(4, S), msg(6, S)],
            vec![msg(6, S)],
            &mut sink,
        );
        w.state.trashed[1].push(4);
        let losses = w.deletion_losses(&s);
        assert_eq!(
            losses[1],
            Some(DeletionLoss {
                side: Side::Near,
                lost: 1,
                known: 5
            })
        );
        assert_eq!(losses[0].map(|l| l.lost), Some(0));
        let near = losses[1].unwrap_or(DeletionLoss {
            side: Side::Near,
            lost: 0,
            known: 0,
        });
        assert!(near.exceeds(19));
        assert!(!near.exceeds(20));
        assert!(!near.exceeds(100));
        // Without Gone towards far (and no ExpungeSolo there) nothing would be propagated.
        s.ops[0].types.gone = false;
        assert_eq!(w.deletion_losses(&s)[1], None);
        s.ops[0].expunge_solo = true;
        assert!(w.deletion_losses(&s)[1].is_some());
    }

    #[test]
    fn expunge_selection_never_takes_a_pending_entry() {
        for solo in [false, true] {
            let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
            if solo {
                s.ops[1].expunge_solo = true;
            } else {
                s.ops[1].expunge = true;
            }
            let mut sink = VecSink::default();
            let w = work(
                vec![
                    entry(0, 1, S, Status::PENDING),
                    entry(0, 2, S, Status::EMPTY),
                ],
                [0, 2],
                &mut s,
                vec![],
                vec![msg(1, S | T), msg(2, S | T), msg(3, T)],
                &mut sink,
            );
            // Near 1 waits for its copy; near 2 is solo; near 3 has no entry.
            assert_eq!(
                w.expunge_selection(Side::Near, &s),
                vec![1, 2],
                "solo {solo}"
            );
        }
    }

    #[test]
    fn finish_run_purges_and_orphans_with_end_records_only_when_asked() {
        let s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        let mut w = Work::new(PairState {
            entries: vec![
                entry(1, 1, S, Status::GONE_F.with(Status::GONE_N)),
                entry(2, 2, S, Status::GONE_N.with(Status::DEL_F)),
                entry(3, 3, S, Status::GONE_F.with(Status::DEL_N)),
            ],
            newmaxuid: [5, 4],
            ..PairState::default()
        });
        let mut sink = VecSink::default();
        ok(w.finish_run(&s, false, &mut sink));
        assert!(sink.records.is_empty());
        assert_eq!(w.state.maxuid, [5, 4]);
        assert!(w.state.entries[0].is_dead());
        assert_eq!(w.state.entries[1].uid, [2, 0]);
        assert_eq!(w.state.entries[2].uid, [0, 3]);

        let mut w = Work::new(PairState {
            entries: vec![entry(1, 1, S, Status::GONE_F.with(Status::GONE_N))],
            newmaxuid: [5, 4],
            ..PairState::default()
        });
        ok(w.finish_run(&s, true, &mut sink));
        assert_eq!(
            sink.records,
            vec![
                Record::MaxUid {
                    side: Side::Far,
                    uid: 5
                },
                Record::MaxUid {
                    side: Side::Near,
                    uid: 4
                },
                Record::Dead { far: 1, near: 1 }
            ]
        );
    }
}
