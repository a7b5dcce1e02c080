//! Load planning (spec sync-semantics §4.3): from the pair state, the operations and the
//! stores' properties, decide what each side must load, as a pure function.

use crate::config::{ExpireUnread, Side, SideOps};
use crate::store::{Flags, LoadRequest};
use crate::sync::entry::{PairState, Status};

/// What the sync core needs to know about one side's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreTraits {
    /// `MaxSize`; 0 = unlimited.
    pub max_size: u64,
    /// The store has a `Trash` mailbox.
    pub has_trash: bool,
    pub trash_new_only: bool,
    pub trash_remote_new: bool,
    /// Flags the store can keep.
    pub supported_flags: Flags,
    /// Maildir amends requests (PAIRED with SETFLAGS, full load with EXPUNGE).
    pub maildir: bool,
}

impl Default for StoreTraits {
    fn default() -> Self {
        StoreTraits {
            max_size: 0,
            has_trash: false,
            trash_new_only: false,
            trash_remote_new: false,
            supported_flags: Flags::ALL,
            maildir: true,
        }
    }
}

/// The per-pair settings the algorithm depends on; `ops` may be changed by planning
/// (rule 5) and the caller keeps the change for later boxes of the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairSettings {
    /// Channel name, for messages.
    pub channel: String,
    /// Box names [far, near] as shown in messages.
    pub box_names: [String; 2],
    /// Operations per target side [far, near].
    pub ops: [SideOps; 2],
    pub stores: [StoreTraits; 2],
    /// 0 = unlimited.
    pub max_messages: u32,
    pub expire_side: Side,
    pub expire_unread: ExpireUnread,
    pub copy_arrival_date: bool,
    /// `MaxDeletePercent` of the mass-deletion guard (100 = off).
    pub max_delete_percent: u8,
}

impl PairSettings {
    /// The side that is not the expire side.
    pub fn keep_side(&self) -> Side {
        self.expire_side.other()
    }
    pub fn ops(&self, side: Side) -> &SideOps {
        &self.ops[side.index()]
    }
    pub fn store(&self, side: Side) -> &StoreTraits {
        &self.stores[side.index()]
    }
    /// Expunge is enabled for this side or the other one.
    pub fn expunge_either(&self) -> bool {
        self.ops[0].expunge || self.ops[1].expunge
    }
}

/// The load requests of one side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub paired: bool,
    pub old: bool,
    pub new: bool,
    pub find: bool,
    pub flags: bool,
    pub old_size: bool,
    pub new_size: bool,
    pub paired_ids: bool,
    pub append: bool,
    pub setflags: bool,
    pub expunge: bool,
    pub uid_expunge: bool,
}

/// Counts gathered by the pre-scan, per side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreScan {
    pub dummies: [u32; 2],
    pub purges: [u32; 2],
    pub upgrades: [u32; 2],
    pub old: [u32; 2],
    pub new: [u32; 2],
    pub tuids: [u32; 2],
    /// A replayed expiration transaction is open.
    pub expiring: bool,
}

/// The outcome of planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// Requests per side [far, near], after store amendments and range decisions.
    pub requests: [Requests; 2],
    /// What to ask each store [far, near].
    pub loads: [LoadRequest; 2],
    pub expiration_active: bool,
    pub prescan: PreScan,
}

fn has_type_op(ops: &SideOps) -> bool {
    ops.types.old || ops.types.new || ops.types.upgrade
}

/// Counts placeholders, purges, pending copies and TUIDs (only when needed).
pub fn prescan(state: &PairState, ops: &[SideOps; 2]) -> PreScan {
    let mut scan = PreScan::default();
    let any_upgrade = ops[0].types.upgrade || ops[1].types.upgrade;
    if !state.replayed && !any_upgrade {
        return scan;
    }
    for entry in state.entries.iter().filter(|e| !e.is_dead()) {
        if entry.status.has(Status::DUMMY_F) {
            scan.dummies[0] += 1;
        } else if entry.status.has(Status::DUMMY_N) {
            scan.dummies[1] += 1;
        } else if entry.status.has(Status::SKIPPED) {
            let side = if entry.uid[0] == 0 { 0 } else { 1 };
            scan.dummies[side] += 1;
        }
        if !state.replayed {
            continue;
        }
        if entry.status.has(Status::EXPIRE) != entry.status.has(Status::EXPIRED) {
            scan.expiring = true;
        }
        if entry.status.has(Status::PURGE) {
            let side = if entry.uid[0] != 0 { 0 } else { 1 };
            scan.purges[side] += 1;
        }
        if entry.status.has(Status::PENDING) {
            let target = if entry.uid[0] == 0 { 0 } else { 1 };
            let source = 1 - target;
            if entry.status.has(Status::UPGRADE) {
                scan.upgrades[target] += 1;
            } else if entry.uid[source] <= state.maxuid[source] {
                scan.old[target] += 1;
            } else {
                scan.new[target] += 1;
            }
            if entry.tuid.is_some() {
                scan.tuids[target] += 1;
            }
        }
    }
    scan
}

/// Plans both loads. `current_uid_validity` is what the stores reported when opening.
pub fn plan_load(
    state: &PairState,
    settings: &mut PairSettings,
    current_uid_validity: [u32; 2],
) -> LoadPlan {
    let scan = prescan(state, &settings.ops);
    let mut req = [Requests::default(); 2];
    for side in Side::BOTH {
        let t = side.index();
        let o = 1 - t;
        // Rule 1: changed UIDVALIDITY.
        if let Some(stored) = state.uid_validity[t]
            && stored != current_uid_validity[t]
        {
            for r in req.iter_mut() {
                r.paired = true;
                r.paired_ids = true;
            }
        }
        // Rule 2.
        if scan.purges[t] > 0 {
            req[t].setflags = true;
        }
        // Rule 3.
        if scan.tuids[t] > 0 {
            req[t].new = true;
            req[t].find = true;
        }
        // Rule 4.
        let types = settings.ops[t].types;
        if types.gone || types.flags {
            req[t].setflags = true;
            req[o].paired = true;
        }
        if types.flags {
            req[o].flags = true;
        }
        // Rule 5 (quirk: the change outlives this box).
        if types.upgrade && scan.dummies[t] == 0 {
            settings.ops[t].types.upgrade = false;
        }
        let types = settings.ops[t].types;
        // Rule 6.
        if types.old
            || types.new
            || types.upgrade
            || scan.old[t] > 0
            || scan.new[t] > 0
            || scan.upgrades[t] > 0
        {
            req[t].append = true;
            let limited = settings.stores[t].max_size > 0;
            if types.old || scan.old[t] > 0 {
                req[o].old = true;
                req[o].old_size |= limited;
            }
            if types.new || scan.new[t] > 0 {
                req[o].new = true;
                req[o].new_size |= limited;
            }
            if types.upgrade {
                req[t].paired = true;
                req[t].flags = true;
                req[t].setflags = true;
            }
            if types.upgrade || scan.upgrades[t] > 0 {
                req[o].paired = true;
            }
            if settings.ops[t].expunge || settings.ops[o].expunge {
                req[o].flags = true;
            }
        }
        // Rule 7.
        let ops = &settings.ops[t];
        if ops.expunge || ops.expunge_solo {
            req[t].expunge = true;
            if ops.expunge_solo {
                req[t].old = true;
                req[t].new = true;
                req[t].flags = true;
                req[t].uid_expunge = true;
                req[o].old = true;
            } else if settings.stores[t].has_trash {
                req[t].new = true;
                req[t].flags = true;
                req[t].uid_expunge = true;
                if !settings.stores[t].trash_new_only {
                    req[t].old = true;
                }
            } else if settings.stores[o].has_trash && settings.stores[o].trash_remote_new {
                req[t].new = true;
                req[t].flags = true;
                req[t].uid_expunge = true;
            }
        }
    }

    let xt = settings.expire_side.index();
    let k = 1 - xt;
    let xops = settings.ops[xt].types;
    let expiration_active = scan.expiring
        || (settings.max_messages > 0 && (has_type_op(&settings.ops[xt]) || xops.flags));
    if expiration_active {
        req[xt].paired = true;
        req[xt].flags = true;
        if scan.dummies[xt] > 0 {
            req[k].paired = true;
            req[k].flags = true;
        } else if has_type_op(&settings.ops[xt]) {
            req[k].flags = true;
        }
    }

    // Store amendments. An expunged box is loaded whole with flags for every store, not only
    // Maildir: mailsync expunges selectively wherever it can (Maildir, and IMAP with UIDPLUS
    // through UID EXPUNGE of the selection), so a T message that was not loaded is never
    // selected. Without this, `Sync Push` + `Expunge Far` on an IMAP far side (which loads
    // nothing there) set T on the far copy of a message deleted on the near side but never
    // removed it, in this run or any later one. (mbsync's IMAP driver closes the box with
    // CLOSE instead, removing every T message; loading them all gives the same result.)
    for (r, store) in req.iter_mut().zip(&settings.stores) {
        if store.maildir && r.setflags {
            r.paired = true;
        }
        if r.expunge {
            r.paired = true;
            r.old = true;
            r.new = true;
            r.flags = true;
            if store.maildir {
                r.uid_expunge = true;
            }
        }
    }

    // Expired-range exceptions of the keep side.
    let mut start = [1u32; 2];
    let mut exceptions: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    if req[k].paired && !req[k].old && settings.max_messages > 0 {
        start[k] = state.max_expired.saturating_add(1);
        for entry in state.entries.iter().filter(|e| !e.is_dead()) {
            let uid = entry.uid[k];
            if uid == 0 || uid >= start[k] {
                continue;
            }
            if req[k].new && uid > state.maxuid[k] {
                continue;
            }
            if entry.uid[xt] != 0 || entry.status.has(Status::PENDING) {
                exceptions[k].push(uid);
            }
        }
        exceptions[k].sort_unstable();
        exceptions[k].dedup();
    }

    let mut loads: [LoadRequest; 2] = Default::default();
    for t in [k, xt] {
        let r = &mut req[t];
        let hw = state.maxuid[t];
        let seen = state
            .entries
            .iter()
            .filter(|e| !e.is_dead())
            .map(|e| e.uid[t])
            .max()
            .unwrap_or(0);
        let mut load = LoadRequest {
            exceptions: std::mem::take(&mut exceptions[t]),
            flags: r.flags,
            ..LoadRequest::default()
        };
        if r.new {
            let from = if r.old {
                r.paired = true;
                1
            } else if !r.paired || start[t] > hw.saturating_add(1) {
                hw.saturating_add(1)
            } else {
                start[t]
            };
            load.range = Some((from, u32::MAX));
            load.new = true;
            if r.paired_ids {
                load.message_ids_upto = Some(seen);
            }
        } else if r.paired || r.old {
            if r.old {
                let mut upto = hw;
                if seen > hw {
                    if r.paired {
                        upto = seen;
                    }
                } else {
                    r.paired = true;
                }
                load.range = Some((1, upto));
            } else {
                load.range = Some((start[t], seen));
            }
            if r.paired_ids {
                load.message_ids_upto = Some(seen);
            }
        } else {
            load.exceptions.clear();
        }
        if load.range.is_some() {
            if r.old_size {
                load.sizes_from = Some(1);
            } else if r.new_size {
                load.sizes_from = Some(hw.saturating_add(1));
            }
            if r.find {
                load.tuids_from = Some(state.find_threshold[t].unwrap_or(0));
            }
        }
        loads[t] = load;
    }

    LoadPlan {
        requests: req,
        loads,
        expiration_active,
        prescan: scan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OpTypes;
    use crate::sync::entry::Entry;

    pub(crate) fn settings(ops_far: OpTypes, ops_near: OpTypes) -> PairSettings {
        PairSettings {
            channel: "ex".into(),
            box_names: ["farbox".into(), "nearbox".into()],
            ops: [
                SideOps {
                    types: ops_far,
                    ..SideOps::default()
                },
                SideOps {
                    types: ops_near,
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

    fn entry(f: u32, n: u32, status: Status) -> Entry {
        Entry {
            uid: [f, n],
            status,
            ..Entry::default()
        }
    }

    fn state(maxuid: [u32; 2], entries: Vec<Entry>) -> PairState {
        PairState {
            uid_validity: [Some(1000), Some(2000)],
            maxuid,
            newmaxuid: maxuid,
            entries,
            ..PairState::default()
        }
    }

    #[test]
    fn default_ops_first_sync_loads_everything_new() {
        let st = PairState::default();
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        for t in 0..2 {
            assert!(plan.requests[t].new && plan.requests[t].flags && plan.requests[t].paired);
            assert_eq!(plan.loads[t].range, Some((1, u32::MAX)));
            assert!(plan.loads[t].new);
        }
        // No placeholders: Upgrade is removed from both sides (rule 5).
        assert!(!s.ops[0].types.upgrade && !s.ops[1].types.upgrade);
    }

    #[test]
    fn upgrade_kept_only_where_placeholders_exist() {
        let st = state(
            [2, 2],
            vec![entry(1, 1, Status::EMPTY), entry(2, 2, Status::DUMMY_N)],
        );
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert!(!s.ops[0].types.upgrade);
        assert!(s.ops[1].types.upgrade);
        assert_eq!(plan.prescan.dummies, [0, 1]);
        assert!(plan.requests[1].paired && plan.requests[1].setflags);
    }

    #[test]
    fn pull_new_only_loads_far_above_high_water_and_nothing_near() {
        let st = state([5, 3], vec![entry(5, 3, Status::EMPTY)]);
        let new_only = OpTypes {
            new: true,
            ..OpTypes::NONE
        };
        let mut s = settings(OpTypes::NONE, new_only);
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert_eq!(plan.loads[0].range, Some((6, u32::MAX)));
        assert!(!plan.loads[0].flags);
        assert_eq!(plan.loads[1].range, None);
        assert!(plan.requests[1].append);
    }

    #[test]
    fn flags_only_loads_paired_ranges_with_flags() {
        let st = state(
            [5, 7],
            vec![entry(5, 7, Status::EMPTY), entry(2, 3, Status::EMPTY)],
        );
        let flags_only = OpTypes {
            flags: true,
            ..OpTypes::NONE
        };
        let mut s = settings(flags_only, flags_only);
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert_eq!(plan.loads[0].range, Some((1, 5)));
        assert_eq!(plan.loads[1].range, Some((1, 7)));
        assert!(plan.loads[0].flags && plan.loads[1].flags);
    }

    #[test]
    fn changed_uid_validity_requests_message_ids_on_both_sides() {
        let st = state([3, 3], vec![entry(3, 3, Status::EMPTY)]);
        let mut s = settings(OpTypes::NONE, OpTypes::NONE);
        let plan = plan_load(&st, &mut s, [1000, 2001]);
        for t in 0..2 {
            assert!(plan.requests[t].paired_ids);
            assert_eq!(plan.loads[t].message_ids_upto, Some(3));
            assert_eq!(plan.loads[t].range, Some((1, 3)));
        }
    }

    #[test]
    fn expunge_on_maildir_loads_whole_box_with_flags() {
        let st = state([3, 3], vec![entry(3, 3, Status::EMPTY)]);
        let mut s = settings(OpTypes::NONE, OpTypes::NONE);
        s.ops[1].expunge = true;
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert_eq!(plan.loads[1].range, Some((1, u32::MAX)));
        assert!(plan.loads[1].flags);
        assert!(plan.requests[1].uid_expunge);
        assert_eq!(plan.loads[0].range, None);
    }

    #[test]
    fn expunge_solo_also_loads_old_of_other_side() {
        let st = state([3, 3], vec![entry(3, 3, Status::EMPTY)]);
        let mut s = settings(OpTypes::NONE, OpTypes::NONE);
        s.ops[0].expunge_solo = true;
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert_eq!(plan.loads[0].range, Some((1, u32::MAX)));
        assert_eq!(plan.loads[1].range, Some((1, 3)));
    }

    #[test]
    fn max_size_requests_sizes_for_the_source() {
        let st = state([4, 4], vec![]);
        let mut s = settings(OpTypes::DEFAULT, OpTypes::DEFAULT);
        s.stores[1].max_size = 1024;
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert_eq!(plan.loads[0].sizes_from, Some(5));
        assert_eq!(plan.loads[1].sizes_from, None);
    }

    #[test]
    fn max_messages_keep_side_starts_after_max_expired_with_exceptions() {
        let mut st = state(
            [9, 7],
            vec![
                entry(2, 1, Status::EMPTY),
                entry(4, 2, Status::EMPTY),
                entry(7, 5, Status::EMPTY),
                entry(3, 0, Status::EXPIRE.with(Status::EXPIRED)),
            ],
        );
        st.max_expired = 6;
        let flags_only = OpTypes {
            flags: true,
            ..OpTypes::NONE
        };
        let mut s = settings(OpTypes::NONE, flags_only);
        s.max_messages = 3;
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert!(plan.expiration_active);
        // Keep side (far) only has PAIRED: bulk range from 7, exceptions for paired 2 and 4.
        assert_eq!(plan.loads[0].range, Some((7, 7)));
        assert_eq!(plan.loads[0].exceptions, vec![2, 4]);
        // Expire side: paired messages up to the highest near UID of an entry.
        assert_eq!(plan.loads[1].range, Some((1, 5)));
    }

    #[test]
    fn expire_side_far_swaps_the_roles() {
        let mut st = state(
            [7, 9],
            vec![entry(1, 2, Status::EMPTY), entry(5, 7, Status::EMPTY)],
        );
        st.max_expired = 6;
        let flags_only = OpTypes {
            flags: true,
            ..OpTypes::NONE
        };
        let mut s = settings(flags_only, OpTypes::NONE);
        s.expire_side = Side::Far;
        s.max_messages = 3;
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert!(plan.expiration_active);
        assert_eq!(plan.loads[1].range, Some((7, 7)));
        assert_eq!(plan.loads[1].exceptions, vec![2]);
    }

    #[test]
    fn replayed_pending_entries_request_tuid_search() {
        let mut pending = entry(1, 0, Status::PENDING);
        pending.tuid = Some(*b"AAAAAAAAAAAA");
        let mut st = state([0, 0], vec![pending]);
        st.replayed = true;
        st.find_threshold = [None, Some(4)];
        let mut s = settings(OpTypes::NONE, OpTypes::NONE);
        let plan = plan_load(&st, &mut s, [1000, 2000]);
        assert_eq!(plan.prescan.tuids, [0, 1]);
        assert_eq!(plan.prescan.new, [0, 1]);
        assert_eq!(plan.loads[1].tuids_from, Some(4));
        assert_eq!(plan.loads[0].range, Some((1, u32::MAX)));
    }
}
