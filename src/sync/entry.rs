//! The in-memory sync state of one mailbox pair: entries, their status bits, the high-water
//! marks, and the journal records that change them (spec sync-semantics §0, §2, §3).

use crate::config::Side;
use crate::store::{Flags, Tuid};

/// Entry status bits; the numeric values appear in journal `~` records.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u32);

impl Status {
    pub const DEAD: Status = Status(1);
    pub const EXPIRE: Status = Status(2);
    pub const EXPIRED: Status = Status(4);
    pub const NEXPIRE: Status = Status(8);
    pub const PENDING: Status = Status(16);
    pub const DUMMY_F: Status = Status(32);
    pub const DUMMY_N: Status = Status(64);
    pub const SKIPPED: Status = Status(128);
    pub const GONE_F: Status = Status(256);
    pub const GONE_N: Status = Status(512);
    pub const DEL_F: Status = Status(1024);
    pub const DEL_N: Status = Status(2048);
    pub const DELETE: Status = Status(4096);
    pub const UPGRADE: Status = Status(8192);
    pub const PURGE: Status = Status(16384);
    pub const PURGED: Status = Status(32768);
    /// The persistent subset EXPIRE|EXPIRED|PENDING|DUMMY_F|DUMMY_N|SKIPPED.
    pub const LOGGED: Status = Status(246);
    pub const EMPTY: Status = Status(0);

    pub fn has(self, bits: Status) -> bool {
        self.0 & bits.0 != 0
    }
    pub fn has_all(self, bits: Status) -> bool {
        self.0 & bits.0 == bits.0
    }
    pub fn set(&mut self, bits: Status) {
        self.0 |= bits.0;
    }
    pub fn clear(&mut self, bits: Status) {
        self.0 &= !bits.0;
    }
    pub fn with(self, bits: Status) -> Status {
        Status(self.0 | bits.0)
    }
    pub fn without(self, bits: Status) -> Status {
        Status(self.0 & !bits.0)
    }
    pub fn only(self, bits: Status) -> Status {
        Status(self.0 & bits.0)
    }
    /// DUMMY_F or DUMMY_N.
    pub fn dummy(side: Side) -> Status {
        match side {
            Side::Far => Status::DUMMY_F,
            Side::Near => Status::DUMMY_N,
        }
    }
    /// GONE_F or GONE_N.
    pub fn gone(side: Side) -> Status {
        match side {
            Side::Far => Status::GONE_F,
            Side::Near => Status::GONE_N,
        }
    }
    /// DEL_F or DEL_N.
    pub fn del(side: Side) -> Status {
        match side {
            Side::Far => Status::DEL_F,
            Side::Near => Status::DEL_N,
        }
    }
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Status({})", self.0)
    }
}

/// One sync entry: ties at most one far message to at most one near message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// UIDs indexed by `Side::index()`; 0 = no message on that side.
    pub uid: [u32; 2],
    /// Baseline flags: what both sides agreed on after the last sync.
    pub flags: Flags,
    pub status: Status,
    /// Flags a copy is made with; for an upgrade, the placeholder's saved flags.
    pub pflags: Flags,
    /// Flags to add on each side in this run.
    pub add: [Flags; 2],
    /// Flags to remove on each side in this run.
    pub del: [Flags; 2],
    /// Temporary UID of a copy in flight.
    pub tuid: Option<Tuid>,
}

impl Entry {
    pub fn uid(&self, side: Side) -> u32 {
        self.uid[side.index()]
    }
    pub fn is_dead(&self) -> bool {
        self.status.has(Status::DEAD)
    }
}

/// The state of one mailbox pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairState {
    /// UIDVALIDITY of [far, near] at the last sync; `None` = unknown.
    pub uid_validity: [Option<u32>; 2],
    /// Committed high-water marks: [MaxPulledUid, MaxPushedUid].
    pub maxuid: [u32; 2],
    /// Candidate high-water marks of this run (start at `maxuid`).
    pub newmaxuid: [u32; 2],
    /// MaxExpired of the keep side (MaxExpiredFarUid when ExpireSide is Near, else
    /// MaxExpiredNearUid).
    pub max_expired: u32,
    pub entries: Vec<Entry>,
    /// Find thresholds from `F` records, per side.
    pub find_threshold: [Option<u32>; 2],
    /// UIDs already copied to a trash, per side (from `T` records), sorted after replay.
    pub trashed: [Vec<u32>; 2],
    /// A state file was read (the pair existed before).
    pub existed: bool,
    /// A journal was replayed at start.
    pub replayed: bool,
}

/// One journal record (spec sync-semantics §3.2). `far`/`near` are the entry's UIDs at the
/// moment the record is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `|`: UIDVALIDITYs adopted.
    UidValidity { far: u32, near: u32 },
    /// `+`: new pending entry.
    New { far: u32, near: u32 },
    /// `-`: entry deleted.
    Dead { far: u32, near: u32 },
    /// `#`: TUID assigned.
    Tuid { far: u32, near: u32, tuid: Tuid },
    /// `&`: TUID not found.
    TuidLost { far: u32, near: u32 },
    /// `<` (side Far) / `>` (side Near): UID of that side assigned.
    Assign {
        side: Side,
        far: u32,
        near: u32,
        uid: u32,
    },
    /// `*`: baseline flags changed.
    Flags { far: u32, near: u32, flags: Flags },
    /// `%`: copy made with these flags.
    PFlags { far: u32, near: u32, flags: Flags },
    /// `~`: expiration state change (value may carry transient bits).
    Status { far: u32, near: u32, status: u32 },
    /// `_`: entry propagated as a placeholder.
    Dummy { far: u32, near: u32 },
    /// `^`: upgrade starts with the placeholder's saved flags.
    Upgrade { far: u32, near: u32, flags: Flags },
    /// `$`: upgrade copy with flag changes.
    UpgradeDelta {
        far: u32,
        near: u32,
        add: Flags,
        del: Flags,
    },
    /// `P`: the discarded placeholder was marked T.
    Purged { far: u32, near: u32 },
    /// `F`: find threshold of a side before copying into it.
    FindThreshold { side: Side, uid: u32 },
    /// `T`: message of a side copied to a trash.
    Trashed { side: Side, uid: u32 },
    /// `N`: high-water mark committed (only with `-TJ`).
    MaxUid { side: Side, uid: u32 },
}
