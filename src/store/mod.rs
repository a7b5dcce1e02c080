//! Mail stores: the `Store` trait the sync core talks to, the types it exchanges, and the
//! drivers (`maildir`, later `imap`).
//!
//! A store object serves one store definition of the config for one channel run. It has at most
//! one mailbox open at a time. Messages are identified by their UID in the open mailbox.
//! All operations are synchronous from the caller's point of view; a driver may pipeline
//! internally.

pub mod body;
pub mod imap;
pub mod maildir;

pub use body::{BodySource, MessageBody, MessageData};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A set of the six synchronized message flags. The bit values are those of the journal
/// (Draft 1, Flagged 2, Passed 4, Replied 8, Seen 16, Trashed 32).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    pub const DRAFT: Flags = Flags(1);
    pub const FLAGGED: Flags = Flags(2);
    pub const PASSED: Flags = Flags(4);
    pub const REPLIED: Flags = Flags(8);
    pub const SEEN: Flags = Flags(16);
    pub const TRASHED: Flags = Flags(32);
    pub const EMPTY: Flags = Flags(0);
    pub const ALL: Flags = Flags(63);

    /// The flag letters in canonical order, with their bits.
    pub const LETTERS: [(char, Flags); 6] = [
        ('D', Flags::DRAFT),
        ('F', Flags::FLAGGED),
        ('P', Flags::PASSED),
        ('R', Flags::REPLIED),
        ('S', Flags::SEEN),
        ('T', Flags::TRASHED),
    ];

    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Builds a set from journal bits; bits above the six flags are dropped.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits & 63)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub const fn minus(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
    pub const fn intersection(self, other: Flags) -> Flags {
        Flags(self.0 & other.0)
    }
    /// The letters of the set in canonical order (`DFPRST` subset).
    pub fn letters(self) -> String {
        Flags::LETTERS
            .iter()
            .filter(|(_, f)| self.contains(*f))
            .map(|(c, _)| *c)
            .collect()
    }
    /// The flag for a letter, if it is one of the six.
    pub fn from_letter(letter: char) -> Option<Flags> {
        Flags::LETTERS
            .iter()
            .find(|(c, _)| *c == letter)
            .map(|(_, f)| *f)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        *self = self.union(rhs);
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({})", self.letters())
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.letters())
    }
}

/// A temporary UID: 12 characters from `A-Z a-z 0-9 + /`, written into a copy's `X-TUID`
/// header so the copy can be found again when the target returns no UID.
pub type Tuid = [u8; 12];

/// Which parts of a store's namespace a listing must cover (spec config-cli-stores §2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListAreas {
    /// INBOX and its sub-folders.
    pub inbox: bool,
    /// Everything under the store's Path.
    pub path: bool,
    /// The Path area, but only if the store has a Path ("Path if configured").
    pub path_if_configured: bool,
}

impl ListAreas {
    pub const ALL: ListAreas = ListAreas {
        inbox: true,
        path: true,
        path_if_configured: false,
    };
}

/// What opening a mailbox found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenOutcome {
    /// The mailbox exists and is now the open one.
    Opened { uid_validity: u32 },
    /// The mailbox does not exist (it may be created with `create_box`).
    Missing,
}

/// What the sync core asks a store to load (spec sync-semantics §4.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadRequest {
    /// Load messages with `range.0 <= uid <= range.1`; `None` loads nothing from the range.
    pub range: Option<(u32, u32)>,
    /// Further UIDs to load although they are outside the range.
    pub exceptions: Vec<u32>,
    /// The range is open-ended (NEW requested): Maildir gives UID-less files UIDs.
    pub new: bool,
    /// Flags must be reported; otherwise they read as empty.
    pub flags: bool,
    /// Sizes must be reported (only for UIDs at or above this value).
    pub sizes_from: Option<u32>,
    /// TUIDs must be read from messages with UID at or above this value.
    pub tuids_from: Option<u32>,
    /// Message-IDs must be read from messages with UID up to this value.
    pub message_ids_upto: Option<u32>,
}

/// One message as loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo {
    pub uid: u32,
    /// Empty unless flags were requested.
    pub flags: Flags,
    /// Zero unless sizes were requested for this UID.
    pub size: u64,
    /// Only when TUIDs were requested for this UID and the message has an `X-TUID` header.
    pub tuid: Option<Tuid>,
    /// Only when Message-IDs were requested for this UID.
    pub message_id: Option<Vec<u8>>,
    /// The message is in `new/` (Maildir) or has `\Recent` (IMAP).
    pub recent: bool,
}

/// The result of a load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The loaded messages in ascending UID order.
    pub messages: Vec<MessageInfo>,
    /// Messages in the mailbox (all of them, not only the loaded ones).
    pub total: u32,
    /// Recent messages in the mailbox.
    pub recent: u32,
}

/// A message read in full (a big one into a file, see [`MessageBody`]).
#[derive(Debug)]
pub struct FetchedMessage {
    pub body: MessageBody,
    /// The message's real flags (read even when the load did not ask for flags).
    pub flags: Flags,
    /// Arrival time (Maildir: file mtime; IMAP: INTERNALDATE).
    pub date: Option<SystemTime>,
}

/// A message to store.
#[derive(Clone, Copy, Debug)]
pub struct NewMessage<'a> {
    pub data: MessageData<'a>,
    pub flags: Flags,
    /// Arrival time to give the message (CopyArrivalDate), or none.
    pub date: Option<SystemTime>,
}

/// What [`Store::store_queued`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreTicket {
    /// Stored at once; the UID if known.
    Done(Option<u32>),
    /// Handed to the server; [`Store::finish_stores`] reports the outcome under this number.
    Queued(u64),
}

/// The outcome of one queued store: its ticket number and the UID if known, or the failure.
pub type QueuedOutcome = (u64, StoreResult<Option<u32>>);

/// What [`Store::set_flags_queued`] did with a flag change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagsTicket {
    /// Made at once: `true`, or `false` if the message is gone.
    Done(bool),
    /// Queued; [`Store::finish_flag_changes`] says whether the server refused it.
    Queued,
}

/// Messages whose queued flag change was refused, with the refusal (scope `Message`).
pub type RefusedFlags = (Vec<u32>, StoreError);

/// How bad a store failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureScope {
    /// Only this message operation failed (e.g. the target refuses the message).
    Message,
    /// The open mailbox cannot be synced in this run.
    Mailbox,
    /// The store is unusable for the rest of the run (missing Path, login failure).
    Store,
    /// The store is unusable for now (connection failure); a later run may succeed.
    Temporary,
}

/// A store failure. `message` is the complete text the user sees, e.g.
/// `Maildir error: duplicate UID 4 in /home/u/Mail/INBOX.`
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub scope: FailureScope,
    pub message: String,
}

impl StoreError {
    pub fn new(scope: FailureScope, message: impl Into<String>) -> StoreError {
        StoreError {
            scope,
            message: message.into(),
        }
    }
    pub fn mailbox(message: impl Into<String>) -> StoreError {
        StoreError::new(FailureScope::Mailbox, message)
    }
    pub fn store(message: impl Into<String>) -> StoreError {
        StoreError::new(FailureScope::Store, message)
    }
    pub fn message(message: impl Into<String>) -> StoreError {
        StoreError::new(FailureScope::Message, message)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Notices a store wants printed (e.g. `Maildir notice: …`). The sync core decides on
/// verbosity and stream; stores never print themselves.
pub trait Reporter {
    fn notice(&self, text: &str);
    fn warning(&self, text: &str);
    fn debug(&self, text: &str);
}

/// A reporter that drops everything (for tests and listings).
pub struct SilentReporter;

impl Reporter for SilentReporter {
    fn notice(&self, _text: &str) {}
    fn warning(&self, _text: &str) {}
    fn debug(&self, _text: &str) {}
}

/// The operations the sync core needs from a mail store.
///
/// Mailbox names passed in and out are *store-side* names: canonical `/`-separated names
/// after Flatten and MapInbox mapping, which the caller applies.
pub trait Store {
    /// The store's name from the config.
    fn name(&self) -> &str;

    /// Flags this store can keep (Maildir: all six).
    fn supported_flags(&self) -> Flags {
        Flags::ALL
    }

    /// True if the store keeps messages with CRLF line ends (IMAP), false for LF (Maildir).
    fn crlf(&self) -> bool;

    /// True if expunge removes exactly the selected messages (Maildir, IMAP with UIDPLUS).
    fn selective_expunge(&self) -> bool {
        true
    }

    /// Lists mailbox names (store-side, `/`-separated, INBOX included as the spec says).
    fn list(&mut self, areas: ListAreas) -> StoreResult<Vec<String>>;

    /// Opens a mailbox, making it the current one.
    fn open_box(&mut self, name: &str) -> StoreResult<OpenOutcome>;

    /// Creates the mailbox last passed to `open_box` (which reported `Missing`) and opens it.
    fn create_box(&mut self) -> StoreResult<u32>;

    /// Deletes the current mailbox, which must be empty (spec §4.11); the directory itself is
    /// removed by `remove_box_leftovers` after the sync state is gone.
    fn delete_box(&mut self) -> StoreResult<()>;

    /// Removes what is left of a deleted mailbox (ignoring failures).
    fn remove_box_leftovers(&mut self) {}

    /// Returns true if the current mailbox holds no message.
    fn is_empty(&mut self) -> StoreResult<bool>;

    /// Loads the current mailbox's message list.
    fn load(&mut self, request: &LoadRequest) -> StoreResult<Loaded>;

    /// The next-UID hint for finding copies (Maildir: highest UID assigned so far).
    fn uid_next_hint(&mut self) -> StoreResult<u32>;

    /// Reads a message in full; `Ok(None)` if it vanished.
    fn fetch(&mut self, uid: u32) -> StoreResult<Option<FetchedMessage>>;

    /// Stores a message into the current mailbox and returns its UID if known.
    fn store(&mut self, message: NewMessage<'_>) -> StoreResult<Option<u32>>;

    /// Hints that these messages of the current mailbox will be fetched next, in this order,
    /// so a driver may read them ahead (IMAP: pipelined FETCHes within BufferLimit). Messages
    /// are still fetched one by one with `fetch`; a UID not fetched is simply dropped later.
    fn prefetch(&mut self, _uids: &[u32]) -> StoreResult<()> {
        Ok(())
    }

    /// Where this store can take a big message's spool file so that it lands on the disk
    /// that receives the copy (Maildir: the open mailbox's `tmp/`); `None` if it has no
    /// such place.
    fn spool_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Tells the store where to spool big messages it fetches (see `spool_dir`); a driver
    /// that keeps no spool files ignores it.
    fn set_spool_dir(&mut self, _dir: &Path) {}

    /// Like `store`, but a driver may send the message and return before the outcome is
    /// known (IMAP: pipelined APPENDs); the outcome then comes from `finish_stores`. A
    /// `Queued` message is not stored for sure until `finish_stores` says so.
    fn store_queued(&mut self, message: NewMessage<'_>) -> StoreResult<StoreTicket> {
        self.store(message).map(StoreTicket::Done)
    }

    /// Waits for every message `store_queued` queued and returns their outcomes in queue
    /// order (a per-message failure has scope `Message`). An `Err` of the call itself means
    /// the outcomes are unknown (e.g. the connection was lost).
    fn finish_stores(&mut self) -> StoreResult<Vec<QueuedOutcome>> {
        Ok(Vec::new())
    }

    /// Makes durable everything `store` and `store_to_trash` wrote since the last flush (group
    /// commit): when it returns `Ok`, those messages, the directory entries naming them and
    /// the UID counter that numbered them survive a crash or power loss, so a journal record
    /// confirming them may be written. Before a flush, stored messages are already visible
    /// (complete files under their final names) but may be lost by a power failure. A store
    /// that does not sync (`FSync no`) or whose server commits each message itself (IMAP)
    /// returns `Ok` at once, which is the default. A store that queues flag changes (IMAP)
    /// sends them here, so that their `*` records may follow.
    fn flush(&mut self) -> StoreResult<()> {
        Ok(())
    }

    /// True if [`Store::flush_start`] really works in the background (a Maildir with FSync):
    /// the executor then copies the next batch while the last one is made durable.
    fn flushes_in_background(&self) -> bool {
        false
    }

    /// Starts a [`Store::flush`] without waiting for it (a store that cannot do that flushes
    /// here, the default); [`Store::flush_finish`] waits for it. At most one is under way:
    /// a second start first finishes the one before.
    fn flush_start(&mut self) -> StoreResult<()> {
        self.flush()
    }

    /// Waits for the last [`Store::flush_start`]: on `Ok`, what was stored before it is as
    /// durable as after a `flush`.
    fn flush_finish(&mut self) -> StoreResult<()> {
        Ok(())
    }

    /// Stores a message into this store's Trash mailbox (created on demand), unnumbered.
    fn store_to_trash(&mut self, message: NewMessage<'_>) -> StoreResult<()>;

    /// Adds and removes flags; `Ok(false)` if the message is gone.
    fn set_flags(&mut self, uid: u32, add: Flags, remove: Flags) -> StoreResult<bool>;

    /// Like `set_flags`, but a driver may queue the change and send it later, batched with
    /// others (IMAP: one pipelined `UID STORE` per set of messages with the same change);
    /// the outcome of a `Queued` change then comes from `finish_flag_changes`, which must be
    /// called before the change is relied on (journalled).
    fn set_flags_queued(
        &mut self,
        uid: u32,
        add: Flags,
        remove: Flags,
    ) -> StoreResult<FlagsTicket> {
        self.set_flags(uid, add, remove).map(FlagsTicket::Done)
    }

    /// Sends every flag change `set_flags_queued` queued and waits for the answers; returns
    /// the messages whose change the server refused (not made, or not for sure), each set
    /// with its refusal; every other queued change is made. An `Err` of the call itself
    /// means the outcomes are unknown (e.g. the connection was lost).
    fn finish_flag_changes(&mut self) -> StoreResult<Vec<RefusedFlags>> {
        Ok(Vec::new())
    }

    /// Moves a message into this store's Trash mailbox; `Ok(false)` if it is gone.
    fn trash(&mut self, uid: u32) -> StoreResult<bool>;

    /// Removes the given messages (or, for a non-selective store, all `T` messages) and
    /// returns the UIDs known to be removed.
    fn expunge(&mut self, uids: &[u32]) -> StoreResult<Vec<u32>>;

    /// Lists messages with UID at or above `from_uid` that appeared since the load, with
    /// their TUIDs (used to find copies whose UID was not returned).
    fn find_new(&mut self, from_uid: u32) -> StoreResult<Vec<MessageInfo>>;

    /// Closes the current mailbox (releases locks).
    fn close_box(&mut self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_in_canonical_order() {
        let f = Flags::TRASHED | Flags::SEEN | Flags::DRAFT;
        assert_eq!(f.letters(), "DST");
        assert_eq!(f.bits(), 49);
        assert_eq!(Flags::from_letter('R'), Some(Flags::REPLIED));
        assert_eq!(Flags::from_letter('x'), None);
    }
}
