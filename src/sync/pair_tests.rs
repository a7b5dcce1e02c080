//! Executor tests over the in-memory store, mirroring the spec's worked examples (§9) and
//! their mirror images with far and near swapped.

use super::*;
use crate::config::{ExpireUnread, OpTypes, SideOps};
use crate::store::Flags;
use crate::sync::entry::Entry;
use crate::sync::mem_store::{MemStore, message, tuid_of};
use crate::sync::plan::StoreTraits;

const S: Flags = Flags::SEEN;
const F: Flags = Flags::FLAGGED;
const T: Flags = Flags::TRASHED;
const R: Flags = Flags::REPLIED;
const D: Flags = Flags::DRAFT;
const P: Flags = Flags::PASSED;
const NO: Flags = Flags::EMPTY;

/// An in-memory state file and journal.
#[derive(Default)]
struct MemFiles {
    state: Option<PairState>,
    records: Vec<Record>,
    saved: Option<PairState>,
    steps: u64,
    limit: u64,
    deleted: bool,
    locked: bool,
    ended: bool,
    dry_run: bool,
}

impl StateFiles for MemFiles {
    fn load(&mut self, _expire_side: Side) -> Result<PairState, SyncError> {
        Ok(match &self.state {
            Some(state) => {
                let mut state = state.clone();
                state.existed = true;
                state.newmaxuid = state.maxuid;
                state
            }
            None => PairState::default(),
        })
    }
    fn lock(&mut self) -> Result<(), SyncError> {
        self.locked = !self.dry_run;
        Ok(())
    }
    fn log(&mut self, record: &Record) -> Result<(), SyncError> {
        self.records.push(record.clone());
        self.count_step()
    }
    fn count_step(&mut self) -> Result<(), SyncError> {
        self.steps += 1;
        if self.limit != 0 && self.steps == self.limit {
            return Err(SyncError::Interrupted);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
    fn wrote_records(&self) -> bool {
        !self.records.is_empty()
    }
    fn hash_line(&self) -> String {
        format!(
            "### {} steps, {} entries ###",
            self.steps,
            self.records.len()
        )
    }
    fn save(&mut self, state: &PairState, _expire_side: Side) -> Result<(), SyncError> {
        if !self.dry_run {
            self.saved = Some(state.clone());
        }
        Ok(())
    }
    fn delete(&mut self) -> Result<(), SyncError> {
        self.deleted = true;
        Ok(())
    }
    fn end(&mut self) {
        self.ended = true;
    }
}

fn types(new: bool, old: bool, upgrade: bool, gone: bool, flags: bool) -> OpTypes {
    OpTypes {
        new,
        old,
        upgrade,
        gone,
        flags,
    }
}

fn settings() -> PairSettings {
    PairSettings {
        channel: "ex".into(),
        box_names: ["farbox".into(), "nearbox".into()],
        ops: [
            SideOps {
                types: OpTypes::DEFAULT,
                ..SideOps::default()
            },
            SideOps {
                types: OpTypes::DEFAULT,
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

/// Swaps far and near in settings (ops, stores, names, expire side).
fn swapped(mut s: PairSettings) -> PairSettings {
    s.ops.swap(0, 1);
    s.stores.swap(0, 1);
    s.box_names.swap(0, 1);
    s.expire_side = s.expire_side.other();
    s
}

fn state(maxuid: [u32; 2], entries: &[(u32, u32, Flags)]) -> PairState {
    PairState {
        uid_validity: [Some(1000), Some(2000)],
        maxuid,
        newmaxuid: maxuid,
        entries: entries
            .iter()
            .map(|&(f, n, flags)| Entry {
                uid: [f, n],
                flags,
                ..Entry::default()
            })
            .collect(),
        ..PairState::default()
    }
}

fn swap_state(mut st: PairState) -> PairState {
    st.uid_validity.swap(0, 1);
    st.maxuid.swap(0, 1);
    st.newmaxuid.swap(0, 1);
    for e in &mut st.entries {
        e.uid.swap(0, 1);
        let s = e.status;
        let mut n = s.without(Status::DUMMY_F.with(Status::DUMMY_N));
        if s.has(Status::DUMMY_F) {
            n.set(Status::DUMMY_N);
        }
        if s.has(Status::DUMMY_N) {
            n.set(Status::DUMMY_F);
        }
        e.status = n;
    }
    st
}

/// Renders entries like a state file body (markers and flags), for comparisons.
fn render(state: &PairState) -> Vec<String> {
    state
        .entries
        .iter()
        .filter(|e| !e.is_dead())
        .map(|e| {
            let mut s = format!("{} {} ", e.uid[0], e.uid[1]);
            if e.status.has(Status::DUMMY_F) {
                s.push('<');
            } else if e.status.has(Status::DUMMY_N) {
                s.push('>');
            }
            if e.status.has(Status::SKIPPED) {
                s.push('^');
            } else if e.status.has(Status::EXPIRED) {
                s.push('~');
            }
            s.push_str(&e.flags.letters());
            s
        })
        .collect()
}

struct Outcome {
    result: PairResult,
    files: MemFiles,
    counters: Counters,
    progress: RecordingProgress,
    settings: PairSettings,
}

fn run_with(
    far: &mut MemStore,
    near: &mut MemStore,
    mut settings: PairSettings,
    st: Option<PairState>,
    options: PairOptions,
    limit: u64,
) -> Result<Outcome, SyncError> {
    let mut files = MemFiles {
        state: st,
        limit,
        dry_run: options.dry_run,
        ..MemFiles::default()
    };
    let mut counters = Counters::default();
    let mut planned = Counters::default();
    let mut next = 0u8;
    let mut tuids = move || {
        next = next.wrapping_add(1);
        [b'A' + (next % 26); 12]
    };
    let mut progress = RecordingProgress::default();
    let result = PairRun {
        settings: &mut settings,
        stores: [far, near],
        files: &mut files,
        options: &options,
        counters: &mut counters,
        planned: &mut planned,
        progress: &mut progress,
        new_tuid: &mut tuids,
        ops_after_earlier_pairs: None,
    }
    .run()?;
    // The progress totals end equal to what was done, and never fall behind it.
    assert_eq!(planned, counters, "progress totals at the end of the pair");
    for (done, planned) in &progress.updates {
        assert!(
            within(done, planned),
            "progress total below its done value: {done:?} / {planned:?}"
        );
    }
    Ok(Outcome {
        result,
        files,
        counters,
        progress,
        settings,
    })
}

/// Keeps every progress update of a pair run.
#[derive(Default)]
struct RecordingProgress {
    updates: Vec<(Counters, Counters)>,
}

impl ProgressReport for RecordingProgress {
    fn update(&mut self, done: &Counters, planned: &Counters) {
        self.updates.push((*done, *planned));
    }
}

/// Every done counter is at most its total.
fn within(done: &Counters, planned: &Counters) -> bool {
    (0..2).all(|t| {
        done.stored[t] <= planned.stored[t]
            && done.flagged[t] <= planned.flagged[t]
            && done.trashed[t] <= planned.trashed[t]
            && done.expunged[t] <= planned.expunged[t]
    })
}

fn boxes() -> PairOptions {
    PairOptions {
        store_boxes: ["farbox".into(), "nearbox".into()],
        ..PairOptions::default()
    }
}

fn run(
    far: &mut MemStore,
    near: &mut MemStore,
    settings: PairSettings,
    st: Option<PairState>,
) -> Outcome {
    match run_with(far, near, settings, st, boxes(), 0) {
        Ok(o) => o,
        Err(e) => panic!("pair aborted: {e}"),
    }
}

fn far_store(messages: &[(u32, &str, Flags)]) -> MemStore {
    MemStore::new("far").with_box("farbox", 1000, messages)
}

fn near_store(messages: &[(u32, &str, Flags)]) -> MemStore {
    MemStore::new("near").with_box("nearbox", 2000, messages)
}

fn summary(store: &MemStore, name: &str) -> Vec<(u32, String, Flags)> {
    store.summary(name)
}

fn sv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn counters(far: [u32; 4], near: [u32; 4]) -> Counters {
    Counters {
        stored: [far[0], near[0]],
        flagged: [far[1], near[1]],
        trashed: [far[2], near[2]],
        expunged: [far[3], near[3]],
    }
}

fn saved(o: &Outcome) -> &PairState {
    match &o.files.saved {
        Some(s) => s,
        None => panic!("state was not saved"),
    }
}

// ---- Example 1: first sync in both directions (and mirrored).

#[test]
fn first_sync_copies_both_ways_in_record_order() {
    let mut far = far_store(&[(1, "a", S), (2, "b", NO)]);
    let mut near = near_store(&[(1, "c", F | R)]);
    let o = run(&mut far, &mut near, settings(), None);
    assert!(!o.result.failed);
    assert_eq!(o.counters, counters([1, 0, 0, 0], [2, 0, 0, 0]));
    let kinds: Vec<String> = o.files.records.iter().map(record_text).collect();
    assert_eq!(
        kinds,
        sv(&[
            "| 1000 2000",
            "+ 0 1",
            "+ 1 0",
            "+ 2 0",
            "F 0 2",
            "F 1 1",
            "# 0 1",
            "# 1 0",
            "# 2 0",
            "% 0 1 10",
            "< 0 1 3",
            "% 1 0 16",
            "> 1 0 2",
            "> 2 0 3",
        ])
    );
    let st = saved(&o);
    assert_eq!(render(st), sv(&["3 1 FR", "1 2 S", "2 3 "]));
    assert_eq!(st.maxuid, [3, 3]);
    assert_eq!(
        summary(&far, "farbox"),
        vec![
            (1, "a".into(), S),
            (2, "b".into(), NO),
            (3, "c".into(), F | R)
        ]
    );
    assert_eq!(
        summary(&near, "nearbox"),
        vec![
            (1, "c".into(), F | R),
            (2, "a".into(), S),
            (3, "b".into(), NO)
        ]
    );
    // Copies carry their TUID.
    let copy = &near.mailbox("nearbox").messages[&2].data;
    assert!(tuid_of(copy).is_some());
}

#[test]
fn progress_totals_are_known_before_the_copies_are_made() {
    let mut far = far_store(&[(1, "a", S), (2, "b", NO)]);
    let mut near = near_store(&[(1, "c", F | R)]);
    let o = run(&mut far, &mut near, settings(), None);
    let first_done = o
        .progress
        .updates
        .iter()
        .find(|(done, _)| done.stored != [0, 0]);
    let Some((done, planned)) = first_done else {
        panic!(
            "no progress update after a copy: {:?}",
            o.progress.updates.len()
        );
    };
    // The first copy (a push) is done; all three copies are already in the totals.
    assert_eq!(done.stored, [1, 0]);
    assert_eq!(planned.stored, [1, 2]);
    // Every completed copy was reported.
    let stored: Vec<[u32; 2]> = o.progress.updates.iter().map(|(d, _)| d.stored).collect();
    for expected in [[1, 0], [1, 1], [1, 2]] {
        assert!(stored.contains(&expected), "{stored:?} lacks {expected:?}");
    }
}

#[test]
fn first_sync_mirrored() {
    let mut far = far_store(&[(1, "c", F | R)]);
    let mut near = near_store(&[(1, "a", S), (2, "b", NO)]);
    let o = run(&mut far, &mut near, swapped(settings()), None);
    assert_eq!(o.counters, counters([2, 0, 0, 0], [1, 0, 0, 0]));
    let st = saved(&o);
    // Push entries (near messages) come first.
    assert_eq!(render(st), sv(&["2 1 S", "3 2 ", "1 3 FR"]));
    assert_eq!(st.maxuid, [3, 3]);
}

fn record_text(r: &Record) -> String {
    let side = |s: Side| s.index();
    match r {
        Record::UidValidity { far, near } => format!("| {far} {near}"),
        Record::New { far, near } => format!("+ {far} {near}"),
        Record::Dead { far, near } => format!("- {far} {near}"),
        Record::Tuid { far, near, .. } => format!("# {far} {near}"),
        Record::TuidLost { far, near } => format!("& {far} {near}"),
        Record::Assign {
            side: s,
            far,
            near,
            uid,
        } => {
            format!(
                "{} {far} {near} {uid}",
                if *s == Side::Far { '<' } else { '>' }
            )
        }
        Record::Flags { far, near, flags } => format!("* {far} {near} {}", flags.bits()),
        Record::PFlags { far, near, flags } => format!("% {far} {near} {}", flags.bits()),
        Record::Status { far, near, status } => format!("~ {far} {near} {status}"),
        Record::Dummy { far, near } => format!("_ {far} {near}"),
        Record::Upgrade { far, near, flags } => format!("^ {far} {near} {}", flags.bits()),
        Record::UpgradeDelta {
            far,
            near,
            add,
            del,
        } => {
            format!("$ {far} {near} {} {}", add.bits(), del.bits())
        }
        Record::Purged { far, near } => format!("P {far} {near}"),
        Record::FindThreshold { side: s, uid } => format!("F {} {uid}", side(*s)),
        Record::Trashed { side: s, uid } => format!("T {} {uid}", side(*s)),
        Record::MaxUid { side: s, uid } => format!("N {} {uid}", side(*s)),
    }
}

fn records(o: &Outcome) -> Vec<String> {
    o.files.records.iter().map(record_text).collect()
}

// ---- Example 2: three-way flag merge.

#[test]
fn flags_merge_three_way() {
    let mut far = far_store(&[(1, "a", F | S), (2, "b", S), (3, "c", R | S)]);
    let mut near = near_store(&[(1, "a", NO), (2, "b", D | S), (3, "c", S)]);
    let st = state([3, 3], &[(1, 1, S), (2, 2, S), (3, 3, S)]);
    let o = run(&mut far, &mut near, settings(), Some(st));
    assert_eq!(o.counters, counters([0, 2, 0, 0], [0, 2, 0, 0]));
    assert_eq!(
        records(&o),
        sv(&["* 1 1 0", "* 1 1 2", "* 2 2 17", "* 3 3 24"])
    );
    assert_eq!(render(saved(&o)), sv(&["1 1 F", "2 2 DS", "3 3 RS"]));
    let flags: Vec<Flags> = summary(&far, "farbox").iter().map(|m| m.2).collect();
    assert_eq!(flags, vec![F, D | S, R | S]);
    let flags: Vec<Flags> = summary(&near, "nearbox").iter().map(|m| m.2).collect();
    assert_eq!(flags, vec![F, D | S, R | S]);
}

#[test]
fn a_refused_queued_flag_change_is_left_for_the_next_run() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S), (3, "c", S)]);
    far.queue_flags = true;
    far.refuse_flags = vec![1];
    let mut near = near_store(&[(1, "a", F | S), (2, "b", F | S), (3, "c", R | S)]);
    let st = state([3, 3], &[(1, 1, S), (2, 2, S), (3, 3, S)]);
    let o = run(&mut far, &mut near, settings(), Some(st));
    // The refused change is neither made nor recorded; the other two are both.
    let flags: Vec<Flags> = summary(&far, "farbox").iter().map(|m| m.2).collect();
    assert_eq!(flags, vec![S, F | S, R | S]);
    assert_eq!(records(&o), sv(&["* 2 2 18", "* 3 3 24"]));
    assert_eq!(render(saved(&o)), sv(&["1 1 S", "2 2 FS", "3 3 RS"]));
    assert_eq!(o.counters, counters([0, 2, 0, 0], [0, 0, 0, 0]));
    // The next run makes exactly the refused change.
    far.refuse_flags.clear();
    let o = run(&mut far, &mut near, settings(), Some(saved(&o).clone()));
    let flags: Vec<Flags> = summary(&far, "farbox").iter().map(|m| m.2).collect();
    assert_eq!(flags, vec![F | S, F | S, R | S]);
    assert_eq!(records(&o), sv(&["* 1 1 18"]));
    assert_eq!(o.counters, counters([0, 1, 0, 0], [0, 0, 0, 0]));
}

#[test]
fn flags_only_in_one_direction() {
    let mut far = far_store(&[(1, "a", F | S)]);
    let mut near = near_store(&[(1, "a", S | R)]);
    let mut s = settings();
    s.ops[0].types = OpTypes::NONE; // pull only
    let o = run(&mut far, &mut near, s, Some(state([1, 1], &[(1, 1, S)])));
    assert_eq!(summary(&near, "nearbox")[0].2, F | S | R);
    assert_eq!(summary(&far, "farbox")[0].2, F | S);
    assert_eq!(records(&o), sv(&["* 1 1 18"]));
}

// ---- Example 3: expunge propagated as T; state not rewritten.

#[test]
fn far_expunge_propagates_deletion_without_saving() {
    let mut far = far_store(&[(2, "b", S)]);
    let mut near = near_store(&[(1, "a", S), (2, "b", S)]);
    let st = state([2, 2], &[(1, 1, S), (2, 2, S)]);
    let o = run(&mut far, &mut near, settings(), Some(st.clone()));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 1, 0, 0]));
    assert!(o.files.records.is_empty());
    assert!(o.files.saved.is_none());
    assert_eq!(summary(&near, "nearbox")[0].2, S | T);

    // Run 2 with Expunge Near removes it, still nothing saved.
    let mut s = settings();
    s.ops[1].expunge = true;
    let o = run(&mut far, &mut near, s, Some(st.clone()));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 0, 0, 1]));
    assert!(o.files.saved.is_none());
    assert_eq!(summary(&near, "nearbox").len(), 1);

    // Run 3 kills the entry.
    let o = run(&mut far, &mut near, settings(), Some(st));
    assert_eq!(records(&o), sv(&["- 1 1"]));
    assert_eq!(render(saved(&o)), sv(&["2 2 S"]));
}

#[test]
fn near_expunge_propagates_deletion_to_far() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S)]);
    let mut near = near_store(&[(2, "b", S)]);
    let st = state([2, 2], &[(1, 1, S), (2, 2, S)]);
    let o = run(&mut far, &mut near, settings(), Some(st));
    assert_eq!(o.counters, counters([0, 1, 0, 0], [0, 0, 0, 0]));
    assert_eq!(summary(&far, "farbox")[0].2, S | T);
}

#[test]
fn gone_disabled_does_not_propagate() {
    let mut far = far_store(&[(2, "b", S)]);
    let mut near = near_store(&[(1, "a", S), (2, "b", S)]);
    let mut s = settings();
    s.ops[1].types.gone = false;
    let o = run(
        &mut far,
        &mut near,
        s,
        Some(state([2, 2], &[(1, 1, S), (2, 2, S)])),
    );
    assert_eq!(o.counters, Counters::default());
    assert_eq!(summary(&near, "nearbox")[0].2, S);
}

// ---- Example 4: Expunge Both, far Trash with TrashRemoteNew.

#[test]
fn expunge_both_with_far_trash_and_remote_new() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S), (4, "d", T)]);
    far.trash = Some("fartrash".into());
    let mut near = near_store(&[(1, "a", S | T), (2, "b", S), (3, "c", S | T)]);
    let mut s = settings();
    s.stores[0].has_trash = true;
    s.stores[0].trash_remote_new = true;
    s.ops[0].expunge = true;
    s.ops[1].expunge = true;
    let o = run(
        &mut far,
        &mut near,
        s,
        Some(state([2, 2], &[(1, 1, S), (2, 2, S)])),
    );
    assert_eq!(o.counters, counters([0, 1, 2, 2], [0, 0, 1, 2]));
    // The flag change and the trash moves are in the totals before any is done.
    let first_done = o
        .progress
        .updates
        .iter()
        .find(|(done, _)| *done != Counters::default());
    assert_eq!(
        first_done.map(|(done, planned)| (done.flagged, planned.flagged)),
        Some(([1, 0], [1, 0]))
    );
    let first_trash = o
        .progress
        .updates
        .iter()
        .find(|(done, _)| done.trashed != [0, 0]);
    assert_eq!(first_trash.map(|(_, planned)| planned.trashed[0]), Some(2));
    assert_eq!(
        records(&o),
        sv(&[
            "+ 0 3", "- 0 3", "+ 4 0", "- 4 0", "* 1 1 48", "T 0 1", "T 0 4", "T 1 3"
        ])
    );
    assert_eq!(summary(&far, "farbox"), vec![(2, "b".into(), S)]);
    assert_eq!(summary(&near, "nearbox"), vec![(2, "b".into(), S)]);
    let trash: Vec<Flags> = far
        .mailbox("fartrash")
        .unnumbered
        .iter()
        .map(|m| m.flags)
        .collect();
    assert_eq!(trash, vec![S | T, T, S | T]);
    let st = saved(&o);
    assert_eq!(render(st), sv(&["2 2 S"]));
    assert_eq!(st.maxuid, [4, 3]);
}

// ---- Example 26: near Trash with and without TrashNewOnly, -Tx.

fn example26(new_only: bool) -> (Outcome, MemStore) {
    let mut far = far_store(&[(1, "a", T), (2, "b", F | T)]);
    let mut near = near_store(&[(1, "a", T), (2, "b", NO), (3, "z", T)]);
    near.trash = Some("neartrash".into());
    let mut s = settings();
    s.stores[1].has_trash = true;
    s.stores[1].trash_new_only = new_only;
    s.ops[0].expunge = true;
    s.ops[1].expunge = true;
    let mut options = boxes();
    options.no_expunge = true;
    options.keep_journal = true;
    let st = state([2, 2], &[(1, 1, T), (2, 2, NO)]);
    let o = match run_with(&mut far, &mut near, s, Some(st), options, 0) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    (o, near)
}

#[test]
fn trash_new_only_trashes_only_unpropagated() {
    let (o, near) = example26(true);
    assert_eq!(records(&o), sv(&["+ 0 3", "- 0 3", "* 2 2 32", "T 1 3"]));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 1, 1, 1]));
    assert_eq!(
        summary(&near, "nearbox"),
        vec![(1, "a".into(), T), (2, "b".into(), T)]
    );
    assert_eq!(render(saved(&o)), sv(&["1 1 T", "2 2 T"]));
}

#[test]
fn trash_without_new_only_trashes_everything() {
    let (o, near) = example26(false);
    assert_eq!(
        records(&o),
        sv(&["+ 0 3", "- 0 3", "* 2 2 34", "T 1 1", "T 1 2", "T 1 3"])
    );
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 1, 3, 3]));
    assert!(summary(&near, "nearbox").is_empty());
    let trash: Vec<Flags> = near
        .mailbox("neartrash")
        .unnumbered
        .iter()
        .map(|m| m.flags)
        .collect();
    assert_eq!(trash, vec![T, F | T, T]);
    assert_eq!(render(saved(&o)), sv(&["1 0 T", "2 0 FT"]));
}

// ---- Example 5 / 6: placeholders and upgrade.

fn big(subject: &str, lines: usize) -> Vec<u8> {
    let mut data = message(subject);
    for _ in 0..lines {
        data.extend_from_slice(&[b'x'; 70]);
        data.push(b'\n');
    }
    data
}

#[test]
fn max_size_makes_placeholders_and_upgrade_fetches_the_real_message() {
    let mut far = far_store(&[(1, "small", S), (2, "big1", F | S)]);
    if let Some(m) = far
        .boxes
        .get_mut("farbox")
        .and_then(|b| b.messages.get_mut(&2))
    {
        m.data = big("big1", 40);
    }
    let mut near = near_store(&[]);
    let mut s = settings();
    s.stores[1].max_size = 1024;
    let o = run(&mut far, &mut near, s.clone(), None);
    assert_eq!(o.counters, counters([0, 0, 0, 0], [2, 0, 0, 0]));
    let st = saved(&o).clone();
    assert_eq!(render(&st), sv(&["1 1 S", "2 2 >S"]));
    let placeholder =
        String::from_utf8_lossy(&near.mailbox("nearbox").messages[&2].data).into_owned();
    assert!(
        placeholder.contains("Subject: [placeholder] big1\n"),
        "{placeholder}"
    );
    assert!(
        placeholder.contains("Having a size of 2KiB, this message is over the MaxSize limit.\n")
    );
    assert_eq!(summary(&near, "nearbox")[1].2, S);

    // The user flags the placeholder; Upgrade replaces it.
    if let Some(m) = near
        .boxes
        .get_mut("nearbox")
        .and_then(|b| b.messages.get_mut(&2))
    {
        m.flags = F | S;
    }
    let o = run(&mut far, &mut near, s.clone(), Some(st));
    assert_eq!(
        records(&o),
        sv(&[
            "^ 2 2 16",
            "P 0 2",
            "F 1 2",
            "# 2 0",
            "$ 2 0 2 0",
            "> 2 0 3"
        ])
    );
    assert_eq!(o.counters, counters([0, 0, 0, 0], [1, 1, 0, 0]));
    let st = saved(&o).clone();
    assert_eq!(render(&st), sv(&["1 1 S", "2 3 FS", "0 2 "]));
    assert_eq!(st.maxuid, [2, 3]);
    assert_eq!(summary(&near, "nearbox")[1].2, F | S | T);
    assert_eq!(summary(&near, "nearbox")[2].2, F | S);
    assert_eq!(
        near.mailbox("nearbox").messages[&3].data.len(),
        big("big1", 40).len() + 21
    );

    // Expunge removes the placeholder without saving; a later run kills the entry.
    s.ops[1].expunge = true;
    let o = run(&mut far, &mut near, s.clone(), Some(st.clone()));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 0, 0, 1]));
    assert!(o.files.saved.is_none());
    s.ops[1].expunge = false;
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(records(&o), sv(&["- 0 2"]));
}

#[test]
fn placeholders_mirrored_to_far() {
    let mut far = far_store(&[]);
    let mut near = near_store(&[(1, "big", S)]);
    if let Some(m) = near
        .boxes
        .get_mut("nearbox")
        .and_then(|b| b.messages.get_mut(&1))
    {
        m.data = big("big", 40);
    }
    let mut s = settings();
    s.stores[0].max_size = 1024;
    let o = run(&mut far, &mut near, s, None);
    assert_eq!(render(saved(&o)), sv(&["1 1 <S"]));
    let text = String::from_utf8_lossy(&far.mailbox("farbox").messages[&1].data).into_owned();
    assert!(text.contains("[placeholder] big"));
}

#[test]
fn upgrade_cancelled_when_doomed() {
    // §10.7: far ST big message, near placeholder flagged, Expunge Near.
    let mut far = far_store(&[(1, "big", S | T)]);
    if let Some(m) = far
        .boxes
        .get_mut("farbox")
        .and_then(|b| b.messages.get_mut(&1))
    {
        m.data = big("big", 40);
    }
    let mut near = near_store(&[(1, "big", F | S)]);
    let mut s = settings();
    s.stores[1].max_size = 1024;
    s.ops[1].expunge = true;
    let mut st = state([1, 1], &[(1, 1, S)]);
    st.entries[0].status = Status::DUMMY_N;
    let mut options = boxes();
    options.journal_end = true;
    let o = match run_with(&mut far, &mut near, s, Some(st), options, 0) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(records(&o), sv(&["^ 1 1 16", "~ 1 0 64", "P 0 1", "- 0 1"]));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 1, 0, 1]));
    assert_eq!(render(saved(&o)), sv(&["1 0 >S"]));
}

// ---- Examples 7, 8, 20, 23: MaxMessages.

fn seven() -> MemStore {
    far_store(&[
        (1, "m1", S),
        (2, "m2", F | S),
        (3, "m3", S),
        (4, "m4", NO),
        (5, "m5", S),
        (6, "m6", S),
        (7, "m7", S),
    ])
}

#[test]
fn max_messages_first_sync_expires_unborn() {
    let mut far = seven();
    let mut near = near_store(&[]);
    let mut s = settings();
    s.max_messages = 3;
    let o = run(&mut far, &mut near, s.clone(), None);
    assert_eq!(o.counters, counters([0, 0, 0, 0], [5, 0, 0, 0]));
    assert!(records(&o).contains(&"~ 1 0 6".to_string()));
    assert!(records(&o).contains(&"~ 3 0 6".to_string()));
    let st = saved(&o).clone();
    assert_eq!(
        render(&st),
        sv(&["2 1 FS", "4 2 ", "5 3 S", "6 4 S", "7 5 S"])
    );
    assert_eq!(st.maxuid, [7, 5]);
    assert_eq!(st.max_expired, 3);

    // Example 8: two more messages, Expunge Near.
    let far_msgs = far.boxes.get_mut("farbox");
    if let Some(b) = far_msgs {
        b.messages.remove(&1);
        for (uid, subj) in [(8, "m8"), (9, "m9")] {
            b.messages.insert(
                uid,
                crate::sync::mem_store::MemMessage {
                    data: message(subj),
                    flags: S,
                    recent: false,
                    date: None,
                },
            );
            b.highest = uid;
        }
    }
    s.ops[1].expunge = true;
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [2, 2, 0, 2]));
    let st = saved(&o);
    assert_eq!(
        render(st),
        sv(&["2 1 FS", "4 2 ", "7 5 S", "8 6 S", "9 7 S"])
    );
    assert_eq!(st.max_expired, 6);
    assert_eq!(st.maxuid, [9, 7]);
}

#[test]
fn max_messages_without_expunge_marks_expired() {
    let mut far = far_store(&[(1, "m1", S), (2, "m2", S), (3, "m3", S), (4, "m4", S)]);
    let mut near = near_store(&[(1, "m1", S), (2, "m2", S), (3, "m3", S), (4, "m4", S)]);
    let mut s = settings();
    s.max_messages = 2;
    let st = state([4, 4], &[(1, 1, S), (2, 2, S), (3, 3, S), (4, 4, S)]);
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(
        render(saved(&o)),
        sv(&["1 1 ~S", "2 2 ~S", "3 3 S", "4 4 S"])
    );
    assert_eq!(saved(&o).max_expired, 2);
    assert_eq!(summary(&near, "nearbox")[0].2, S | T);
    // Far is never touched by expiration.
    assert!(summary(&far, "farbox").iter().all(|m| m.2 == S));
    assert_eq!(
        records(&o),
        sv(&["~ 1 1 2", "~ 2 2 2", "~ 1 1 6", "~ 2 2 6"])
    );
}

#[test]
fn max_messages_expire_side_far() {
    let mut far = far_store(&[(1, "m1", S), (2, "m2", S), (3, "m3", S)]);
    let mut near = near_store(&[(1, "m1", S), (2, "m2", S), (3, "m3", S)]);
    let mut s = settings();
    s.max_messages = 2;
    s.expire_side = Side::Far;
    let st = state([3, 3], &[(1, 1, S), (2, 2, S), (3, 3, S)]);
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(summary(&far, "farbox")[0].2, S | T);
    assert_eq!(summary(&near, "nearbox")[0].2, S);
    assert_eq!(render(saved(&o)), sv(&["1 1 ~S", "2 2 S", "3 3 S"]));
}

#[test]
fn too_many_unread_without_expire_unread_fails_the_pair() {
    let mut far = far_store(&[
        (1, "m1", NO),
        (2, "m2", NO),
        (3, "m3", NO),
        (4, "m4", NO),
        (5, "m5", NO),
        (6, "m6", NO),
    ]);
    let mut near = near_store(&[]);
    let mut s = settings();
    s.max_messages = 2;
    let o = run(&mut far, &mut near, s.clone(), None);
    assert!(o.result.failed);
    assert_eq!(o.counters, Counters::default());
    assert_eq!(
        records(&o),
        sv(&[
            "| 1000 2000",
            "+ 1 0",
            "+ 2 0",
            "+ 3 0",
            "+ 4 0",
            "+ 5 0",
            "+ 6 0"
        ])
    );
    assert!(o.files.saved.is_none());
    assert!(summary(&near, "nearbox").is_empty());

    // ExpireUnread yes expires the old unread ones.
    s.expire_unread = ExpireUnread::Yes;
    let o = run(&mut far, &mut near, s.clone(), None);
    assert!(!o.result.failed);
    assert_eq!(o.counters, counters([0, 0, 0, 0], [2, 0, 0, 0]));
    // ExpireUnread no keeps unread ones (they are important).
    let mut near = near_store(&[]);
    s.expire_unread = ExpireUnread::No;
    let o = run(&mut far, &mut near, s, None);
    assert_eq!(o.counters, counters([0, 0, 0, 0], [6, 0, 0, 0]));
}

#[test]
fn pushed_messages_are_expired_one_run_later() {
    let mut far = far_store(&[]);
    let mut near = near_store(&[(1, "a", S), (2, "b", S), (3, "c", S)]);
    let mut s = settings();
    s.max_messages = 2;
    let o = run(&mut far, &mut near, s.clone(), None);
    assert_eq!(o.counters, counters([3, 0, 0, 0], [0, 0, 0, 0]));
    let st = saved(&o).clone();
    assert_eq!(render(&st), sv(&["1 1 S", "2 2 S", "3 3 S"]));
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 1, 0, 0]));
    assert_eq!(render(saved(&o)), sv(&["1 1 ~S", "2 2 S", "3 3 S"]));
    assert_eq!(saved(&o).max_expired, 1);
}

// ---- Example 9 / 10: UIDVALIDITY.

#[test]
fn uid_validity_change_recovered() {
    let mut far = far_store(&[(1, "m1", S), (2, "m2", S), (3, "m3", S)]);
    let mut near = near_store(&[(1, "m1", S), (2, "m2", S), (3, "m3", S)]);
    let mut st = state([3, 3], &[(1, 1, S), (2, 2, S), (3, 3, S)]);
    st.uid_validity[1] = Some(1999);
    let o = run(&mut far, &mut near, settings(), Some(st));
    assert!(!o.result.failed);
    assert_eq!(records(&o), sv(&["| 1000 2000"]));
    assert_eq!(saved(&o).uid_validity, [Some(1000), Some(2000)]);
}

#[test]
fn uid_validity_genuine_change_fails_without_changes() {
    for changed in [Side::Far, Side::Near] {
        let other_far = if changed == Side::Far { "other" } else { "m2" };
        let other_near = if changed == Side::Near { "other" } else { "m2" };
        let mut far = far_store(&[(1, "m1", S), (2, other_far, S), (3, "m3", S)]);
        let mut near = near_store(&[(1, "m1", S), (2, other_near, S), (3, "m3", S)]);
        let mut st = state([3, 3], &[(1, 1, S), (2, 2, S), (3, 3, S)]);
        st.uid_validity[changed.index()] = Some(1);
        let o = run(&mut far, &mut near, settings(), Some(st));
        assert!(o.result.failed, "{changed:?}");
        assert!(o.files.records.is_empty());
        assert!(o.files.saved.is_none());
        assert_eq!(o.counters, Counters::default());
    }
}

#[test]
fn uid_validity_change_without_enough_confirmations_fails() {
    // Only 1 of 3 entries can be confirmed (the others lack their partner).
    let mut far = far_store(&[(1, "m1", S)]);
    let mut near = near_store(&[(1, "m1", S), (2, "m2", S), (3, "m3", S)]);
    let mut st = state([3, 3], &[(1, 1, S), (2, 2, S), (3, 3, S)]);
    st.uid_validity[1] = Some(1999);
    let o = run(&mut far, &mut near, settings(), Some(st));
    assert!(o.result.failed);
    assert!(o.files.saved.is_none());
}

// ---- Example 13 / 14: Old and one direction at a time.

#[test]
fn old_messages_only_with_old() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S), (3, "c", S), (4, "d", S)]);
    let mut near = near_store(&[(1, "a", S), (2, "c", S)]);
    let st = state([3, 2], &[(1, 1, S), (3, 2, S)]);
    let o = run(&mut far, &mut near, settings(), Some(st));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [1, 0, 0, 0]));
    let st = saved(&o).clone();
    assert_eq!(render(&st), sv(&["1 1 S", "3 2 S", "4 3 S"]));
    let mut s = settings();
    s.ops[0].types = OpTypes::NONE;
    s.ops[1].types = OpTypes::FULL;
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [1, 0, 0, 0]));
    assert_eq!(render(saved(&o)), sv(&["1 1 S", "3 2 S", "4 3 S", "2 4 S"]));
    assert_eq!(saved(&o).maxuid, [4, 4]);
}

#[test]
fn one_direction_at_a_time_and_unsaved_high_water_mark() {
    let mut far = far_store(&[(1, "a", S), (2, "b", NO)]);
    let mut near = near_store(&[(1, "c", F)]);
    let mut pull = settings();
    pull.ops[0].types = OpTypes::NONE;
    let o = run(&mut far, &mut near, pull, None);
    let st = saved(&o).clone();
    assert_eq!(render(&st), sv(&["1 2 S", "2 3 "]));
    assert_eq!(st.maxuid, [2, 0]);
    let mut push = settings();
    push.ops[1].types = OpTypes::NONE;
    let o = run(&mut far, &mut near, push, Some(st));
    let st = saved(&o).clone();
    assert_eq!(render(&st), sv(&["1 2 S", "2 3 ", "3 1 F"]));
    assert_eq!(st.maxuid, [3, 1]);
    let o = run(&mut far, &mut near, settings(), Some(st));
    assert_eq!(o.counters, Counters::default());
    assert!(o.files.saved.is_none());
}

// ---- Example 16: ExpungeSolo.

#[test]
fn expunge_solo_removes_only_orphans() {
    let mut far = far_store(&[(2, "b", S | T), (3, "c", S), (5, "e", T)]);
    let mut near = near_store(&[
        (1, "a", F | S),
        (2, "b", S),
        (3, "c", S | T),
        (4, "d", S | T),
    ]);
    let mut s = settings();
    s.ops[0].expunge_solo = true;
    s.ops[1].expunge_solo = true;
    let st = state([4, 3], &[(1, 1, S), (2, 2, S), (3, 3, S)]);
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(o.counters, counters([1, 1, 0, 0], [1, 2, 0, 1]));
    assert_eq!(
        render(saved(&o)),
        sv(&["2 2 ST", "3 3 ST", "6 4 ST", "5 5 T"])
    );
    assert_eq!(saved(&o).maxuid, [6, 5]);
    let near_uids: Vec<u32> = summary(&near, "nearbox").iter().map(|m| m.0).collect();
    assert_eq!(near_uids, vec![2, 3, 4, 5]);
}

// ---- Example 18: dry run.

#[test]
fn dry_run_changes_nothing_but_counts() {
    let mut far = far_store(&[(1, "a", S), (2, "b", NO)]);
    let mut near = near_store(&[(1, "c", F)]);
    let before = (summary(&far, "farbox"), summary(&near, "nearbox"));
    let mut options = boxes();
    options.dry_run = true;
    options.proxy = [true, true];
    let o = match run_with(&mut far, &mut near, settings(), None, options, 0) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(o.counters, counters([1, 0, 0, 0], [2, 0, 0, 0]));
    assert_eq!((summary(&far, "farbox"), summary(&near, "nearbox")), before);
    assert!(o.files.saved.is_none());
    assert!(!o.files.locked);
    // Records count as steps, plus the three proxy store completions.
    assert_eq!(o.files.steps, 17);
}

// ---- Example 22: step limit interrupts.

#[test]
fn step_limit_interrupts_after_the_store_completion() {
    let mut far = far_store(&[(1, "a", S), (2, "b", NO)]);
    let mut near = near_store(&[(1, "c", F | R)]);
    let mut options = boxes();
    options.proxy = [true, true];
    let r = run_with(&mut far, &mut near, settings(), None, options, 11);
    assert!(matches!(r, Err(SyncError::Interrupted)));
    // c was stored into far, but nothing into near.
    assert_eq!(summary(&far, "farbox").len(), 3);
    assert_eq!(summary(&near, "nearbox").len(), 1);
}

// ---- Example 24: flags that were not loaded.

#[test]
fn gone_only_sends_a_flag_change_even_if_the_flag_is_there() {
    let mut far = far_store(&[(2, "b", NO)]);
    let mut near = near_store(&[(1, "a", T), (2, "b", NO)]);
    let mut s = settings();
    for t in 0..2 {
        s.ops[t].types = types(false, false, false, true, false);
    }
    let mut options = boxes();
    options.journal_end = true;
    let st = state([2, 2], &[(1, 1, T), (2, 2, NO)]);
    let o = match run_with(
        &mut far,
        &mut near,
        s.clone(),
        Some(st.clone()),
        options.clone(),
        0,
    ) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 1, 0, 0]));
    assert_eq!(records(&o), sv(&["< 1 1 0"]));
    assert_eq!(render(saved(&o)), sv(&["0 1 T", "2 2 "]));

    for t in 0..2 {
        s.ops[t].types = types(false, false, false, true, true);
    }
    let o = match run_with(&mut far, &mut near, s, Some(st), options, 0) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(o.counters, Counters::default());
    assert_eq!(records(&o), sv(&["< 1 1 0"]));
}

#[test]
fn new_only_copies_keep_their_real_flags() {
    let mut far = far_store(&[(1, "a", P), (2, "b", F | T)]);
    let mut near = near_store(&[]);
    let mut s = settings();
    for t in 0..2 {
        s.ops[t].types = types(true, false, false, false, false);
    }
    let o = run(&mut far, &mut near, s, None);
    assert_eq!(
        records(&o),
        sv(&[
            "| 1000 2000",
            "+ 1 0",
            "+ 2 0",
            "F 1 0",
            "# 1 0",
            "# 2 0",
            "% 1 0 4",
            "> 1 0 1",
            "% 2 0 34",
            "> 2 0 2"
        ])
    );
    assert_eq!(render(saved(&o)), sv(&["1 1 P", "2 2 FT"]));
}

// ---- Example 25 / -Tu: finding copies without UIDs.

#[test]
fn rescan_after_withheld_uids_notices_vanished_messages() {
    // Far 1 was deleted (T); near 1 gets T in pass 4 and is then expunged by another client
    // while the copy of far 2 is stored. The rescan sees it gone: the entry loses its near
    // UID at the end (§4.13), as if the store had reported the expunge.
    let mut far = far_store(&[(1, "a", S | T), (2, "b", S)]);
    let mut near = near_store(&[(1, "a", S)]);
    near.withhold_uids = true;
    near.vanish_on_store = vec![1];
    let o = run(
        &mut far,
        &mut near,
        settings(),
        Some(state([1, 1], &[(1, 1, S)])),
    );
    assert!(!o.result.failed);
    assert_eq!(render(saved(&o)), sv(&["1 0 ST", "2 2 S"]));
    assert_eq!(o.counters, counters([0, 0, 0, 0], [1, 1, 0, 0]));
}

#[test]
fn proxy_counts_operations_on_vanished_messages() {
    // A flag change and a trash move on messages that vanished after the load complete
    // without effect; with proxies each completion is a step (§3.4), without none is.
    for proxy in [false, true] {
        let mut far = far_store(&[(1, "a", F | S), (2, "b", S | T)]);
        far.trash = Some("fartrash".into());
        far.vanish_after_load = vec![2];
        let mut near = near_store(&[(1, "a", S), (2, "b", S)]);
        near.vanish_after_load = vec![1];
        let mut s = settings();
        s.stores[0].has_trash = true;
        s.ops[0].expunge = true;
        let mut options = boxes();
        options.proxy = [proxy, proxy];
        let o = match run_with(
            &mut far,
            &mut near,
            s,
            Some(state([2, 2], &[(1, 1, S), (2, 2, S)])),
            options,
            0,
        ) {
            Ok(o) => o,
            Err(e) => panic!("pair aborted: {e}"),
        };
        // Far 2's T goes to near 2 (one record, one completion); near 1's F and the trash
        // move of far 2 find nothing.
        assert_eq!(records(&o), sv(&["* 2 2 48"]));
        assert_eq!(o.counters, counters([0, 0, 0, 0], [0, 1, 0, 0]));
        // Proxy steps: the record, two flag completions, the trash move, the far expunge.
        let expected = if proxy { 1 + 2 + 1 + 1 } else { 1 };
        assert_eq!(o.files.steps, expected, "proxy {proxy}");
    }
}

#[test]
fn withheld_uids_are_found_by_tuid_when_loaded_open_ended() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S)]);
    let mut near = near_store(&[(1, "a", S)]);
    near.withhold_uids = true;
    let o = run(
        &mut far,
        &mut near,
        settings(),
        Some(state([1, 1], &[(1, 1, S)])),
    );
    assert_eq!(render(saved(&o)), sv(&["1 1 S", "2 2 S"]));
    assert_eq!(saved(&o).maxuid, [2, 2]);
}

#[test]
fn withheld_uids_are_lost_when_target_not_loaded_open_ended() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S)]);
    let mut near = near_store(&[(1, "a", S)]);
    near.withhold_uids = true;
    let mut s = settings();
    s.ops[0].types = OpTypes::NONE;
    let o = run(&mut far, &mut near, s, Some(state([1, 1], &[(1, 1, S)])));
    assert_eq!(render(saved(&o)), sv(&["1 1 S", "2 0 "]));
    assert_eq!(saved(&o).maxuid, [2, 1]);
    assert!(records(&o).contains(&"& 2 0".to_string()));
}

// ---- Failure of a single copy.

#[test]
fn refused_copy_kills_the_entry_and_fails_the_run() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S)]);
    let mut near = near_store(&[]);
    near.refuse_containing = Some(b"Subject: b".to_vec());
    let o = run(&mut far, &mut near, settings(), None);
    assert!(o.result.failed);
    assert_eq!(o.counters, counters([0, 0, 0, 0], [2, 0, 0, 0]));
    assert!(records(&o).contains(&"- 2 0".to_string()));
    assert_eq!(render(saved(&o)), sv(&["1 1 S"]));
    assert_eq!(saved(&o).maxuid, [2, 1]);
}

// ---- Create / Remove.

#[test]
fn missing_box_is_created_with_create() {
    let mut far = far_store(&[(1, "a", S)]);
    let mut near = MemStore::new("near");
    near.new_uid_validity = 77;
    let mut s = settings();
    let o = run(&mut far, &mut near, s.clone(), None);
    assert!(o.result.failed);
    assert!(near.boxes.is_empty());
    s.ops[1].create = true;
    let o = run(&mut far, &mut near, s, None);
    assert!(!o.result.failed);
    assert_eq!(summary(&near, "nearbox").len(), 1);
    assert_eq!(saved(&o).uid_validity, [Some(1000), Some(77)]);
}

#[test]
fn vanished_box_with_remove_deletes_the_other_side() {
    let mut far = MemStore::new("far");
    let mut near = near_store(&[]);
    let mut s = settings();
    let st = state([0, 0], &[]);
    let o = run(&mut far, &mut near, s.clone(), Some(st.clone()));
    assert!(o.result.failed);
    s.ops[1].remove = true;
    let o = run(&mut far, &mut near, s, Some(st));
    assert!(!o.result.failed);
    assert!(o.files.deleted);
    assert!(near.boxes.is_empty());
}

#[test]
fn vanished_box_with_remove_keeps_a_non_empty_other_side() {
    let mut far = MemStore::new("far");
    let mut near = near_store(&[(1, "a", S)]);
    let mut s = settings();
    s.ops[1].remove = true;
    let o = run(&mut far, &mut near, s, Some(state([1, 1], &[(1, 1, S)])));
    assert!(!o.result.failed);
    assert!(!o.files.deleted);
    assert_eq!(summary(&near, "nearbox").len(), 1);
}

#[test]
fn both_boxes_gone_deletes_state_silently() {
    let mut far = MemStore::new("far");
    let mut near = MemStore::new("near");
    let o = run(
        &mut far,
        &mut near,
        settings(),
        Some(state([1, 1], &[(1, 1, S)])),
    );
    assert!(!o.result.failed && o.files.deleted);
    let o = run(&mut far, &mut near, settings(), None);
    assert!(o.result.failed);
}

// ---- Pull/Push/None.

#[test]
fn sync_none_copies_nothing_but_expunges() {
    let mut far = far_store(&[(1, "a", S), (2, "b", S | T)]);
    let mut near = near_store(&[(1, "a", S)]);
    let mut s = settings();
    s.ops[0].types = OpTypes::NONE;
    s.ops[1].types = OpTypes::NONE;
    s.ops[0].expunge = true;
    let o = run(&mut far, &mut near, s, Some(state([1, 1], &[(1, 1, S)])));
    assert_eq!(o.counters, counters([0, 0, 0, 1], [0, 0, 0, 0]));
    assert_eq!(summary(&near, "nearbox").len(), 1);
}

#[test]
fn copy_arrival_date_passes_the_source_date() {
    let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let mut far = far_store(&[(1, "a", S)]);
    if let Some(m) = far
        .boxes
        .get_mut("farbox")
        .and_then(|b| b.messages.get_mut(&1))
    {
        m.date = Some(date);
    }
    let mut near = near_store(&[]);
    let mut s = settings();
    let _ = run(&mut far, &mut near, s.clone(), None);
    assert_eq!(near.mailbox("nearbox").messages[&1].date, None);
    let mut near = near_store(&[]);
    s.copy_arrival_date = true;
    let _ = run(&mut far, &mut near, s, None);
    assert_eq!(near.mailbox("nearbox").messages[&1].date, Some(date));
}

#[test]
fn upgrade_is_removed_for_the_rest_of_the_process() {
    let mut far = far_store(&[(1, "a", S)]);
    let mut near = near_store(&[(1, "a", S)]);
    let o = run(
        &mut far,
        &mut near,
        settings(),
        Some(state([1, 1], &[(1, 1, S)])),
    );
    assert!(!o.settings.ops[0].types.upgrade && !o.settings.ops[1].types.upgrade);
}

#[test]
fn expunge_both_with_trash_mirrored() {
    // Example 4 with far and near exchanged (near Trash, TrashRemoteNew, ExpireSide Far).
    let mut near = near_store(&[(1, "a", S), (2, "b", S), (4, "d", T)]);
    near.trash = Some("neartrash".into());
    let mut far = far_store(&[(1, "a", S | T), (2, "b", S), (3, "c", S | T)]);
    let mut s = settings();
    s.stores[0].has_trash = true;
    s.stores[0].trash_remote_new = true;
    s.ops[0].expunge = true;
    s.ops[1].expunge = true;
    let s = swapped(s);
    let st = swap_state(state([2, 2], &[(1, 1, S), (2, 2, S)]));
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(o.counters, counters([0, 0, 1, 2], [0, 1, 2, 2]));
    assert_eq!(summary(&far, "farbox"), vec![(2, "b".into(), S)]);
    assert_eq!(summary(&near, "nearbox"), vec![(2, "b".into(), S)]);
    assert_eq!(near.mailbox("neartrash").unnumbered.len(), 3);
    assert_eq!(render(saved(&o)), sv(&["2 2 S"]));
    assert_eq!(saved(&o).maxuid, [3, 4]);
}

#[test]
fn upgrade_of_a_far_placeholder() {
    // Example 6 mirrored: the far side holds a flagged placeholder of a big near message.
    let mut near = near_store(&[(1, "small", S), (2, "big1", F | S)]);
    if let Some(m) = near
        .boxes
        .get_mut("nearbox")
        .and_then(|b| b.messages.get_mut(&2))
    {
        m.data = big("big1", 40);
    }
    let mut far = far_store(&[(1, "small", S), (2, "[placeholder] big1", F | S)]);
    let mut s = settings();
    s.stores[0].max_size = 1024;
    let mut st = state([2, 2], &[(1, 1, S), (2, 2, S)]);
    st.entries[1].status = Status::DUMMY_F;
    let o = run(&mut far, &mut near, s, Some(st));
    assert_eq!(
        records(&o),
        sv(&[
            "^ 2 2 16",
            "P 2 0",
            "F 0 2",
            "# 0 2",
            "$ 0 2 2 0",
            "< 0 2 3"
        ])
    );
    assert_eq!(o.counters, counters([1, 1, 0, 0], [0, 0, 0, 0]));
    assert_eq!(render(saved(&o)), sv(&["1 1 S", "3 2 FS", "2 0 "]));
    assert_eq!(summary(&far, "farbox")[1].2, F | S | T);
    assert_eq!(summary(&far, "farbox")[2], (3, "big1".into(), F | S));
}

#[test]
fn ext_exit_counters_reflect_each_side() {
    let mut far = far_store(&[(1, "a", S)]);
    let mut near = near_store(&[]);
    let o = run(&mut far, &mut near, settings(), None);
    assert!(!o.counters.touched(Side::Far));
    assert!(o.counters.touched(Side::Near));
    assert_eq!(
        crate::sync::stats::ext_exit_bits(&o.counters.to_stats()),
        64
    );
}

// ---- Group commit of copies.

fn many_far(count: u32) -> MemStore {
    let subjects: Vec<String> = (1..=count).map(|uid| format!("m{uid}")).collect();
    let messages: Vec<(u32, &str, Flags)> = subjects
        .iter()
        .zip(1..)
        .map(|(subject, uid)| (uid, subject.as_str(), S))
        .collect();
    far_store(&messages)
}

/// The journal records, the positions of the `>` (assign) records among them and the
/// position of the first `%` record.
fn copy_records(o: &Outcome) -> (Vec<String>, Vec<usize>, usize) {
    let lines = records(o);
    let assigns = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.starts_with("> "))
        .map(|(position, _)| position)
        .collect();
    let first_flags = lines.iter().position(|l| l.starts_with("% ")).unwrap_or(0);
    (lines, assigns, first_flags)
}

#[test]
fn copies_are_flushed_in_batches_before_their_records() {
    let count = (2 * COPY_BATCH_MESSAGES + 88) as u32;
    let mut far = many_far(count);
    let mut near = near_store(&[]);
    let o = run(&mut far, &mut near, settings(), None);
    assert_eq!(
        near.flushes, 3,
        "one flush per batch of {COPY_BATCH_MESSAGES}"
    );
    assert_eq!(far.flushes, 0);
    let (lines, assigns, first_flags) = copy_records(&o);
    assert_eq!(assigns.len(), count as usize);
    // Each batch: its `%` records (one per copy, all flagged S), then its `>` records.
    assert_eq!(assigns[0], first_flags + COPY_BATCH_MESSAGES);
    assert_eq!(lines[assigns[0]], "> 1 0 1");
    assert_eq!(
        lines[assigns[COPY_BATCH_MESSAGES]],
        format!("> {0} 0 {0}", COPY_BATCH_MESSAGES + 1)
    );
    assert_eq!(saved(&o).entries.len(), count as usize);
}

#[test]
fn a_target_flushing_in_the_background_gets_the_next_batch_meanwhile() {
    let count = (2 * COPY_BATCH_MESSAGES + 88) as u32;
    let mut far = many_far(count);
    let mut near = near_store(&[]);
    near.background_flush = true;
    let o = run(&mut far, &mut near, settings(), None);
    assert_eq!(near.flushes, 3, "one flush per batch");
    let (lines, assigns, first_flags) = copy_records(&o);
    assert_eq!(assigns.len(), count as usize);
    // The first batch's `>` records come after the second batch's copies (their `%`
    // records), once the first batch's flush finished.
    assert_eq!(assigns[0], first_flags + 2 * COPY_BATCH_MESSAGES);
    assert_eq!(lines[assigns[0]], "> 1 0 1");
    assert_eq!(saved(&o).entries.len(), count as usize);
}

#[test]
fn a_batch_from_a_slow_source_is_sealed_once_it_is_old_enough() {
    // 12 copies at 60 ms each: the batch reaches COPY_BATCH_TIME (0.5 s) after some nine.
    let count = 12;
    let mut far = many_far(count);
    far.fetch_delay = Some(std::time::Duration::from_millis(60));
    let mut near = near_store(&[]);
    near.background_flush = true;
    let o = run(&mut far, &mut near, settings(), None);
    assert!(
        near.flushes >= 2,
        "a batch older than {COPY_BATCH_TIME:?} is sealed: {} flushes",
        near.flushes
    );
    let (_, assigns, _) = copy_records(&o);
    assert_eq!(assigns.len(), count as usize);
    assert_eq!(saved(&o).entries.len(), count as usize);
}

#[test]
fn copies_of_a_batch_whose_background_flush_failed_are_not_recorded() {
    let count = (2 * COPY_BATCH_MESSAGES + 88) as u32;
    let mut far = many_far(count);
    let mut near = near_store(&[]);
    near.background_flush = true;
    near.fail_flush_after = Some(1);
    let result = run_with(&mut far, &mut near, settings(), None, boxes(), 0);
    let o = match result {
        Ok(o) => o,
        Err(e) => panic!("pair aborted: {e}"),
    };
    assert!(o.result.failed, "the pair failed");
    let assigned = records(&o).iter().filter(|l| l.starts_with("> ")).count();
    assert_eq!(
        assigned, COPY_BATCH_MESSAGES,
        "only the batch whose flush finished is recorded"
    );
}

#[test]
fn few_copies_are_flushed_one_by_one() {
    let count = (SMALL_COPY_RUN - 1) as u32;
    let mut far = many_far(count);
    let mut near = near_store(&[]);
    let o = run(&mut far, &mut near, settings(), None);
    assert_eq!(near.flushes, count);
    let copy_records: Vec<String> = records(&o)
        .into_iter()
        .filter(|l| l.starts_with("% ") || l.starts_with("> "))
        .collect();
    let expected: Vec<String> = (1..=count)
        .flat_map(|uid| [format!("% {uid} 0 16"), format!("> {uid} 0 {uid}")])
        .collect();
    assert_eq!(copy_records, expected);
}
