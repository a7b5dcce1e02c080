//! The Maildir store driver (spec config-cli-stores §4, sync-semantics §4.15): mailboxes are
//! maildirs on the local disk, UIDs live in the file names and in `.uidvalidity`.
//!
//! The driver never prints: notices and warnings go to the [`Reporter`], errors are
//! [`StoreError`]s carrying the exact texts of the spec.
//!
//! Entry points: [`MaildirStore::new`] with [`MaildirOptions`]; [`MaildirStore::box_dir`]
//! gives a mailbox's directory (for `SyncState *`). The pure helpers live in [`names`]
//! (file names), [`order`] (numbering order), [`layout`] (name → directory) and [`header`].

pub mod environment;
pub mod header;
pub mod layout;
pub mod list;
pub mod names;
pub mod order;
mod read_ahead;
mod scan;
pub mod uidvalidity;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, DirBuilder, FileTimes, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::rc::Rc;

use self::environment::{Environment, SystemEnvironment, unix_secs};
use self::layout::Layout;
use self::names::GeneratedBase;
pub use self::read_ahead::ReadAhead;
use self::scan::ScanContext;
use self::uidvalidity::UidFile;
use crate::config::MaildirStoreConfig;
use crate::store::body::{BodyFile, STREAM_CHUNK};
use crate::store::{
    FetchedMessage, Flags, ListAreas, LoadRequest, Loaded, MessageBody, MessageInfo, NewMessage,
    OpenOutcome, Reporter, Store, StoreError, StoreResult,
};

/// Temporary files at least this old are removed when a mailbox is opened.
const STALE_TMP_AGE_SECS: i64 = 24 * 60 * 60;

/// Run options that come from the command line rather than the store section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaildirOptions {
    /// `FSync`: fsync stored messages, fdatasync `.uidvalidity`.
    pub fsync: bool,
    /// `-Tz`: never wait for a directory modified in the current second.
    pub no_fresh_wait: bool,
    /// `-Tu`: store messages as usual but do not tell the caller their UIDs.
    pub withhold_uids: bool,
}

/// One of the two message sub-directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sub {
    Cur,
    New,
}

impl Sub {
    const BOTH: [Sub; 2] = [Sub::Cur, Sub::New];

    fn dir_name(self) -> &'static str {
        match self {
            Sub::Cur => "cur",
            Sub::New => "new",
        }
    }

    /// Where a new message goes: `cur/` if it is seen, else `new/`.
    fn for_flags(flags: Flags) -> Sub {
        if flags.contains(Flags::SEEN) {
            Sub::Cur
        } else {
            Sub::New
        }
    }

    fn index(self) -> usize {
        match self {
            Sub::Cur => 0,
            Sub::New => 1,
        }
    }
}

/// Where a message of the open mailbox lives.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MessageFile {
    name: String,
    sub: Sub,
}

/// How `OpenBox::files` keeps a message's file. A name this store generated is kept as the
/// parts it was made of, not as a string: a first download stores tens of thousands of
/// messages, and their names would be the largest thing it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeptFile {
    name: KeptName,
    sub: Sub,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeptName {
    /// `<secs>.<pid>_<counter>.<host>,U=<uid><delimiter>2,<flags>`, the UID being the key.
    Generated {
        secs: u64,
        pid: u32,
        counter: u32,
        flags: Flags,
    },
    /// A name found on disk (or given by a rename).
    Found(Box<str>),
}

impl KeptFile {
    fn found(file: MessageFile) -> KeptFile {
        KeptFile {
            name: KeptName::Found(file.name.into_boxed_str()),
            sub: file.sub,
        }
    }

    /// The file as named on disk; `host` and `delimiter` are those of the store that
    /// generated it.
    fn file(&self, uid: u32, host: &str, delimiter: char) -> MessageFile {
        let name = match &self.name {
            KeptName::Generated {
                secs,
                pid,
                counter,
                flags,
            } => {
                let base = GeneratedBase {
                    secs: *secs,
                    pid: *pid,
                    counter: *counter,
                    host,
                };
                names::generate(&base, Some(uid), delimiter, *flags)
            }
            KeptName::Found(name) => name.to_string(),
        };
        MessageFile {
            name,
            sub: self.sub,
        }
    }
}

/// The currently open mailbox.
struct OpenBox {
    dir: String,
    uid_file: UidFile,
    /// `.uidvalidity` was freshly initialised: UIDs in existing names do not count until a
    /// scan has renumbered the files.
    fresh_uids: bool,
    /// `cur/` and `new/` were created during this open (exempt from the freshness wait).
    created: [bool; 2],
    /// UID → file, from the last scan plus later changes.
    files: BTreeMap<u32, KeptFile>,
    /// The request of the last load; rescans use its range.
    load_request: Option<LoadRequest>,
    /// UIDs of the files this store object wrote while `fresh_uids` was set: such a file's
    /// UID is valid all the same, as long as it still has the name `files` gives it (a UID
    /// each, not a name: a first download stores tens of thousands).
    stored_uids: HashSet<u32>,
}

/// A mailbox that `open_box` found missing, to be created by `create_box`.
struct PendingBox {
    dir: String,
}

/// The outcome of one attempt of a file operation.
enum Attempt<T> {
    Done(T),
    /// The file was not found under its known name.
    Vanished,
}

/// A Maildir store.
pub struct MaildirStore {
    name: String,
    layout: Layout,
    delimiter: char,
    options: MaildirOptions,
    /// The global `FSync` as copied into the store section.
    config_fsync: bool,
    reporter: Rc<dyn Reporter>,
    environment: Rc<dyn Environment>,
    host: String,
    trash_dir: Option<String>,
    listed_inbox: bool,
    listed_path: bool,
    listed: Vec<String>,
    pending: Option<PendingBox>,
    current: Option<OpenBox>,
    /// The directory of the last deleted mailbox, for `remove_box_leftovers`.
    deleted_dir: Option<String>,
    /// Message files written since the last `flush`.
    unflushed: Unflushed,
    /// The sync `flush_start` left running.
    background_sync: Option<std::thread::JoinHandle<StoreResult<()>>>,
    /// Mailbox directories listed ahead of their scan.
    read_ahead: Option<ReadAhead>,
}

/// What `flush` must make durable: message files and the directories holding them.
#[derive(Default)]
struct Unflushed {
    /// Full paths of the message files, in writing order.
    files: Vec<String>,
    /// The `cur/` and `new/` directories the files were renamed into.
    dirs: BTreeSet<String>,
}

impl MaildirStore {
    /// Opens a store for a run: checks that Path's base directory exists and computes the
    /// Trash directory. A failure makes the store unusable for the run.
    pub fn new(
        config: &MaildirStoreConfig,
        options: MaildirOptions,
        reporter: Rc<dyn Reporter>,
    ) -> StoreResult<MaildirStore> {
        MaildirStore::with_environment(config, options, reporter, Rc::new(SystemEnvironment))
    }

    /// Like `new`, with a given clock and host name.
    pub fn with_environment(
        config: &MaildirStoreConfig,
        options: MaildirOptions,
        reporter: Rc<dyn Reporter>,
        environment: Rc<dyn Environment>,
    ) -> StoreResult<MaildirStore> {
        let layout = Layout::from_config(config);
        if let Some(path) = &layout.path
            && !fs::metadata(path.base_dir()).is_ok_and(|m| m.is_dir())
        {
            return Err(StoreError::store(format!(
                "Maildir error: cannot open store '{}'",
                path.base
            )));
        }
        let trash_dir = match &config.common.trash {
            Some(trash) => Some(layout.box_dir(trash)?),
            None => None,
        };
        Ok(MaildirStore {
            name: config.common.name.clone(),
            delimiter: config.info_delimiter,
            host: environment.host_name(),
            layout,
            options,
            config_fsync: config.fsync,
            reporter,
            environment,
            trash_dir,
            listed_inbox: false,
            listed_path: false,
            listed: Vec::new(),
            pending: None,
            current: None,
            deleted_dir: None,
            unflushed: Unflushed::default(),
            background_sync: None,
            read_ahead: None,
        })
    }

    /// Lets this store's scans take what `read_ahead` lists ahead of them.
    pub fn set_read_ahead(&mut self, read_ahead: ReadAhead) {
        self.read_ahead = Some(read_ahead);
    }

    /// The directory of a mailbox name under this store's layout.
    pub fn box_dir(&self, name: &str) -> StoreResult<String> {
        self.layout.box_dir(name)
    }

    /// FSync from the options or the store section.
    /// What the next flush must sync, with the UID counter made ready for it: the unused
    /// rest of the reserved block given back, the counter synced (see `flush`).
    fn take_unflushed(&mut self) -> StoreResult<Unflushed> {
        let unflushed = std::mem::take(&mut self.unflushed);
        if let Some(open) = self.current.as_mut() {
            open.uid_file.release()?;
        }
        if !unflushed.files.is_empty()
            && let Some(open) = self.current.as_mut()
        {
            open.uid_file.sync()?;
        }
        Ok(unflushed)
    }

    fn fsync(&self) -> bool {
        self.options.fsync || self.config_fsync
    }

    fn now_secs(&self) -> u64 {
        unix_secs(self.environment.now())
    }

    fn open_box_ref(&mut self) -> StoreResult<&mut OpenBox> {
        self.current.as_mut().ok_or_else(no_open_box)
    }

    fn current_box(&self) -> StoreResult<&OpenBox> {
        self.current.as_ref().ok_or_else(no_open_box)
    }

    /// Opens an existing maildir directory (which `cur/` decides), creating `new/` and
    /// `tmp/` if missing. `created` says which of cur/new were just made by us.
    fn open_existing(&mut self, dir: String, mut created: [bool; 2]) -> StoreResult<OpenOutcome> {
        for sub in ["cur", "new", "tmp"] {
            let sub_path = format!("{dir}/{sub}");
            match fs::metadata(&sub_path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(StoreError::mailbox(format!(
                        "Maildir error: '{sub_path}' is no valid mailbox"
                    )));
                }
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    if sub == "cur" {
                        self.pending = Some(PendingBox { dir });
                        return Ok(OpenOutcome::Missing);
                    }
                    create_dirs(&sub_path).map_err(|e| create_error(&dir, &e))?;
                    if sub == "new" {
                        created[Sub::New.index()] = true;
                    }
                }
                Err(error) => {
                    return Err(StoreError::mailbox(format!(
                        "Maildir error: cannot access mailbox '{dir}/': {}",
                        strerror(&error)
                    )));
                }
            }
        }
        self.remove_stale_tmp_files(&dir);
        let opened = UidFile::open(&dir, self.now_secs(), self.fsync(), self.reporter.as_ref())?;
        let mut uid_file = opened.file;
        uid_file.unlock();
        let uid_validity = uid_file.uid_validity();
        self.current = Some(OpenBox {
            dir,
            uid_file,
            fresh_uids: opened.fresh,
            created,
            files: BTreeMap::new(),
            load_request: None,
            stored_uids: HashSet::new(),
        });
        Ok(OpenOutcome::Opened { uid_validity })
    }

    /// Deletes regular files in `tmp/` whose status change is at least 24 hours old.
    fn remove_stale_tmp_files(&self, dir: &str) {
        let tmp = format!("{dir}/tmp");
        let Ok(entries) = fs::read_dir(&tmp) else {
            return;
        };
        let now = i64::try_from(self.now_secs()).unwrap_or(i64::MAX);
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() || now - meta.ctime() < STALE_TMP_AGE_SECS {
                continue;
            }
            let path = format!("{tmp}/{}", entry.file_name().to_string_lossy());
            self.reporter
                .notice(&format!("Maildir notice: removing stale file {path}"));
            // A file that cannot be removed is harmless; it is tried again next time.
            let _ = fs::remove_file(entry.path());
        }
    }

    /// Scans the open mailbox (spec §4.7) under the `.uidvalidity` lock.
    fn scan(&mut self, request: &LoadRequest) -> StoreResult<Loaded> {
        let context = ScanContext {
            environment: self.environment.as_ref(),
            reporter: self.reporter.as_ref(),
            delimiter: self.delimiter,
            host: &self.host,
            no_fresh_wait: self.options.no_fresh_wait,
        };
        let open = self
            .current
            .as_mut()
            .ok_or_else(|| StoreError::mailbox("Maildir error: no mailbox is open"))?;
        let ahead = self
            .read_ahead
            .as_ref()
            .and_then(|ahead| ahead.take(&open.dir));
        open.uid_file.lock_and_refresh()?;
        let result = context.scan(open, request, ahead);
        open.uid_file.unlock();
        result
    }

    /// Rescans with the range of the last load (used when a file has vanished).
    fn rescan(&mut self) -> StoreResult<()> {
        let request = self.rescan_request();
        self.scan(&request).map(|_| ())
    }

    fn rescan_request(&self) -> LoadRequest {
        let original = self
            .current
            .as_ref()
            .and_then(|open| open.load_request.clone())
            .unwrap_or(LoadRequest {
                range: Some((1, u32::MAX)),
                ..LoadRequest::default()
            });
        LoadRequest {
            range: original.range,
            exceptions: original.exceptions,
            new: original.new,
            flags: original.flags,
            sizes_from: None,
            tuids_from: None,
            message_ids_upto: None,
        }
    }

    /// Runs a file operation on a message, rescanning once if its file has vanished.
    /// `Ok(None)` means the message is really gone.
    fn with_message_file<T>(
        &mut self,
        uid: u32,
        mut operation: impl FnMut(&mut MaildirStore, &str, &MessageFile) -> StoreResult<Attempt<T>>,
    ) -> StoreResult<Option<T>> {
        let mut rescanned = false;
        loop {
            let open = self.current_box()?;
            let dir = open.dir.clone();
            let file = open
                .files
                .get(&uid)
                .map(|kept| kept.file(uid, &self.host, self.delimiter));
            if let Some(file) = file
                && let Attempt::Done(value) = operation(self, &dir, &file)?
            {
                return Ok(Some(value));
            }
            if rescanned {
                return Ok(None);
            }
            self.rescan()?;
            rescanned = true;
        }
    }

    /// A fresh unique base name `<secs>.<pid>_<counter>.<host>` (advances the counter).
    fn fresh_base(&self) -> String {
        self.next_base().to_string()
    }

    fn next_base(&self) -> GeneratedBase<'_> {
        GeneratedBase {
            secs: self.now_secs(),
            pid: std::process::id(),
            counter: names::next_counter(),
            host: &self.host,
        }
    }

    /// The name of a file written by this store (advances the counter).
    fn new_file_name(&self, uid: Option<u32>, flags: Flags) -> String {
        names::generate(&self.next_base(), uid, self.delimiter, flags)
    }

    fn trash_dir(&self) -> StoreResult<String> {
        self.trash_dir.clone().ok_or_else(|| {
            StoreError::mailbox(format!("Maildir error: store '{}' has no Trash", self.name))
        })
    }

    /// Creates the Trash maildir, or whatever part of it is missing.
    fn ensure_trash(&self, trash: &str) -> StoreResult<()> {
        create_maildir(trash)
    }
}

impl Store for MaildirStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn crlf(&self) -> bool {
        false
    }

    /// Lists the requested areas not listed before and returns every name listed so far by
    /// this store object, in listing order, without duplicates.
    fn list(&mut self, areas: ListAreas) -> StoreResult<Vec<String>> {
        let is_maildir_plus_plus =
            self.layout.style == Some(crate::config::SubFolders::MaildirPlusPlus);
        let path_configured = self.layout.path.is_some() || is_maildir_plus_plus;
        let want_path = areas.path || (areas.path_if_configured && path_configured);
        let inbox = areas.inbox && !self.listed_inbox;
        let path = want_path && !self.listed_path;
        if inbox || path {
            let found = list::list(&self.layout, inbox, path, self.reporter.as_ref())?;
            self.listed_inbox |= inbox;
            self.listed_path |= path;
            let mut seen: HashSet<String> = self.listed.iter().cloned().collect();
            for name in found {
                if seen.insert(name.clone()) {
                    self.listed.push(name);
                }
            }
        }
        Ok(self.listed.clone())
    }

    fn open_box(&mut self, name: &str) -> StoreResult<OpenOutcome> {
        self.close_box();
        let dir = self.layout.box_dir(name)?;
        match fs::metadata(format!("{dir}/")) {
            Ok(_) => self.open_existing(dir, [false, false]),
            Err(error) if error.kind() == ErrorKind::NotFound => {
                if name == "INBOX" {
                    create_maildir(&dir)?;
                    self.open_existing(dir, [true, true])
                } else {
                    self.pending = Some(PendingBox { dir });
                    Ok(OpenOutcome::Missing)
                }
            }
            Err(error) => Err(StoreError::mailbox(format!(
                "Maildir error: cannot access mailbox '{dir}/': {}",
                strerror(&error)
            ))),
        }
    }

    fn create_box(&mut self) -> StoreResult<u32> {
        let Some(pending) = self.pending.take() else {
            return Err(StoreError::mailbox(
                "Maildir error: no missing mailbox to create",
            ));
        };
        let had_cur = fs::metadata(format!("{}/cur", pending.dir)).is_ok();
        let had_new = fs::metadata(format!("{}/new", pending.dir)).is_ok();
        create_maildir(&pending.dir)?;
        match self.open_existing(pending.dir, [!had_cur, !had_new])? {
            OpenOutcome::Opened { uid_validity } => Ok(uid_validity),
            OpenOutcome::Missing => Err(StoreError::store(
                "Maildir error: mailbox vanished while being created",
            )),
        }
    }

    fn delete_box(&mut self) -> StoreResult<()> {
        if !self.is_empty()? {
            let dir = self.open_box_ref()?.dir.clone();
            return Err(StoreError::mailbox(format!(
                "Maildir error: cannot delete non-empty mailbox {dir}"
            )));
        }
        let Some(open) = self.current.take() else {
            return Err(StoreError::mailbox("Maildir error: no mailbox is open"));
        };
        let dir = open.dir.clone();
        drop(open);
        self.remove_stale_tmp_files(&dir);
        for file in [uidvalidity::FILE_NAME, ".isyncuidmap.db"] {
            let path = format!("{dir}/{file}");
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => return Err(remove_error(&path, &error)),
            }
        }
        for sub in ["tmp", "new", "cur"] {
            let path = format!("{dir}/{sub}");
            match fs::remove_dir(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => return Err(remove_error(&path, &error)),
            }
        }
        self.deleted_dir = Some(dir);
        Ok(())
    }

    fn remove_box_leftovers(&mut self) {
        if let Some(dir) = self.deleted_dir.take() {
            // Sub-folders or foreign files keep the directory; that is fine.
            let _ = fs::remove_dir(dir);
        }
    }

    fn is_empty(&mut self) -> StoreResult<bool> {
        let dir = self.open_box_ref()?.dir.clone();
        for sub in Sub::BOTH {
            let sub_dir = format!("{dir}/{}", sub.dir_name());
            let entries = match fs::read_dir(&sub_dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == ErrorKind::NotFound => continue,
                Err(error) => return Err(list_error(&sub_dir, &error)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| list_error(&sub_dir, &e))?;
                if !entry.file_name().as_encoded_bytes().starts_with(b".") {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn load(&mut self, request: &LoadRequest) -> StoreResult<Loaded> {
        self.open_box_ref()?.load_request = Some(request.clone());
        self.scan(request)
    }

    fn uid_next_hint(&mut self) -> StoreResult<u32> {
        let open = self.open_box_ref()?;
        open.uid_file.lock_and_refresh()?;
        let highest = open.uid_file.highest();
        open.uid_file.unlock();
        Ok(highest)
    }

    fn fetch(&mut self, uid: u32) -> StoreResult<Option<FetchedMessage>> {
        self.with_message_file(uid, |store, dir, file| {
            let path = format!("{dir}/{}/{}", file.sub.dir_name(), file.name);
            let body = match read_body(&path) {
                Ok(body) => body,
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    return Ok(Attempt::Vanished);
                }
                Err(error) => return Err(read_error(&path, &error)),
            };
            let date = fs::metadata(&path).and_then(|m| m.modified()).ok();
            Ok(Attempt::Done(FetchedMessage {
                body,
                flags: names::parse_flags(&file.name, store.delimiter),
                date,
            }))
        })
    }

    /// The open mailbox's `tmp/`: a big message fetched for it is spooled there, on the
    /// filesystem its copy goes to.
    fn spool_dir(&self) -> Option<std::path::PathBuf> {
        self.current
            .as_ref()
            .map(|open| std::path::PathBuf::from(format!("{}/tmp", open.dir)))
    }

    fn store(&mut self, message: NewMessage<'_>) -> StoreResult<Option<u32>> {
        let fsync = self.fsync();
        let open = self.open_box_ref()?;
        open.uid_file.lock_and_refresh()?;
        let allocated = open.uid_file.allocate();
        open.uid_file.unlock();
        let uid = allocated?;
        let base = self.next_base();
        let name = names::generate(&base, Some(uid), self.delimiter, message.flags);
        let kept = KeptName::Generated {
            secs: base.secs,
            pid: base.pid,
            counter: base.counter,
            flags: message.flags,
        };
        let sub = Sub::for_flags(message.flags);
        let open = self.open_box_ref()?;
        let path = write_message(&open.dir, &name, sub, &message)?;
        if open.fresh_uids {
            open.stored_uids.insert(uid);
        }
        let dir = format!("{}/{}", open.dir, sub.dir_name());
        if fsync {
            self.unflushed.add(path, dir);
        }
        let open = self.open_box_ref()?;
        open.files.insert(uid, KeptFile { name: kept, sub });
        Ok(if self.options.withhold_uids {
            None
        } else {
            Some(uid)
        })
    }

    fn store_to_trash(&mut self, message: NewMessage<'_>) -> StoreResult<()> {
        let trash = self.trash_dir()?;
        self.ensure_trash(&trash)?;
        let name = self.new_file_name(None, message.flags);
        let sub = Sub::for_flags(message.flags);
        let path = write_message(&trash, &name, sub, &message)?;
        if self.fsync() {
            self.unflushed
                .add(path, format!("{trash}/{}", sub.dir_name()));
        }
        Ok(())
    }

    /// With FSync, one `syncfs` of the filesystem holding the written files (Linux), or an
    /// fsync of each file and directory elsewhere. The UID counter was already written
    /// through to the device when each block of UIDs was reserved (see `uidvalidity`), so
    /// the filesystem commit that makes the renames durable also covers it; the unused
    /// rest of the block is given back first.
    fn flush(&mut self) -> StoreResult<()> {
        self.flush_finish()?;
        let unflushed = self.take_unflushed()?;
        unflushed.sync()
    }

    fn flushes_in_background(&self) -> bool {
        self.fsync()
    }

    /// The sync of `flush` on a thread of its own: the disk works while the next batch is
    /// fetched and written.
    fn flush_start(&mut self) -> StoreResult<()> {
        self.flush_finish()?;
        let unflushed = self.take_unflushed()?;
        if !unflushed.files.is_empty() {
            self.background_sync = Some(std::thread::spawn(move || unflushed.sync()));
        }
        Ok(())
    }

    fn flush_finish(&mut self) -> StoreResult<()> {
        match self.background_sync.take() {
            None => Ok(()),
            Some(sync) => sync.join().unwrap_or_else(|_| {
                let place = self.current.as_ref().map_or("", |open| open.dir.as_str());
                Err(StoreError::mailbox(format!(
                    "Maildir error: the thread syncing messages stored in {place} failed"
                )))
            }),
        }
    }

    fn set_flags(&mut self, uid: u32, add: Flags, remove: Flags) -> StoreResult<bool> {
        let delimiter = self.delimiter;
        let result = self.with_message_file(uid, |store, dir, file| {
            let new_name = names::with_flags(&file.name, add, remove, delimiter);
            let from = format!("{dir}/{}/{}", file.sub.dir_name(), file.name);
            let to = format!("{dir}/cur/{new_name}");
            if !rename_message(&from, &to)? {
                return Ok(Attempt::Vanished);
            }
            let open = store.open_box_ref()?;
            open.files.insert(
                uid,
                KeptFile {
                    name: KeptName::Found(new_name.into_boxed_str()),
                    sub: Sub::Cur,
                },
            );
            Ok(Attempt::Done(()))
        })?;
        Ok(result.is_some())
    }

    fn trash(&mut self, uid: u32) -> StoreResult<bool> {
        let trash = self.trash_dir()?;
        let base = self.fresh_base();
        let delimiter = self.delimiter;
        let result = self.with_message_file(uid, |store, dir, file| {
            let new_name = format!(
                "{base}{}",
                names::info_part_for_trash(&file.name, delimiter)
            );
            let sub_name = file.sub.dir_name();
            let from = format!("{dir}/{sub_name}/{}", file.name);
            let to = format!("{trash}/{sub_name}/{new_name}");
            let mut created_trash = false;
            loop {
                match fs::rename(&from, &to) {
                    Ok(()) => break,
                    Err(error) if error.kind() == ErrorKind::NotFound => {
                        if !created_trash
                            && !fs::metadata(format!("{trash}/{sub_name}"))
                                .is_ok_and(|m| m.is_dir())
                        {
                            store.ensure_trash(&trash)?;
                            created_trash = true;
                            continue;
                        }
                        return Ok(Attempt::Vanished);
                    }
                    Err(error) => return Err(rename_error(&from, &to, &error)),
                }
            }
            store.open_box_ref()?.files.remove(&uid);
            Ok(Attempt::Done(()))
        })?;
        Ok(result.is_some())
    }

    fn expunge(&mut self, uids: &[u32]) -> StoreResult<Vec<u32>> {
        let mut removed = Vec::with_capacity(uids.len());
        for &uid in uids {
            self.with_message_file(uid, |store, dir, file| {
                let path = format!("{dir}/{}/{}", file.sub.dir_name(), file.name);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == ErrorKind::NotFound => {
                        return Ok(Attempt::Vanished);
                    }
                    Err(error) => return Err(remove_error(&path, &error)),
                }
                store.open_box_ref()?.files.remove(&uid);
                Ok(Attempt::Done(()))
            })?;
            // Removed now, or already gone before: either way the message no longer exists.
            removed.push(uid);
        }
        Ok(removed)
    }

    fn find_new(&mut self, from_uid: u32) -> StoreResult<Vec<MessageInfo>> {
        let mut request = self.rescan_request();
        request.tuids_from = Some(from_uid);
        let loaded = self.scan(&request)?;
        Ok(loaded
            .messages
            .into_iter()
            .filter(|message| message.uid >= from_uid)
            .collect())
    }

    fn close_box(&mut self) {
        if let Err(error) = self.flush() {
            self.reporter.warning(&error.message);
        }
        self.current = None;
        self.pending = None;
    }
}

impl Unflushed {
    fn add(&mut self, file: String, dir: String) {
        self.files.push(file);
        self.dirs.insert(dir);
    }

    /// Makes the files and directories durable.
    fn sync(&self) -> StoreResult<()> {
        #[cfg(target_os = "linux")]
        if let Some(dir) = self.dirs.first()
            && sync_filesystem(dir).is_ok()
        {
            return Ok(());
        }
        for path in self.files.iter().chain(&self.dirs) {
            fsync_path(path).map_err(|error| {
                StoreError::mailbox(format!(
                    "Maildir error: cannot sync {path}: {}",
                    strerror(&error)
                ))
            })?;
        }
        Ok(())
    }
}

/// The error of an operation that needs an open mailbox.
fn no_open_box() -> StoreError {
    StoreError::mailbox("Maildir error: no mailbox is open")
}

/// One `syncfs` for the filesystem holding `dir`: writes back and commits every change on
/// it at once, which is what makes a batch cost one commit instead of one per file.
#[cfg(target_os = "linux")]
fn sync_filesystem(dir: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = fs::File::open(dir)?;
    // SAFETY: syncfs only reads the descriptor, which stays open for the call.
    let result = unsafe { libc::syncfs(handle.as_raw_fd()) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// fsync of a file or directory by path.
fn fsync_path(path: &str) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Writes a message into `<dir>/tmp/<name>` (exclusive, 0600), gives it the arrival date,
/// renames it into `<dir>/<sub>/<name>` and returns that path. Nothing is synced here:
/// `flush` makes a batch of messages durable at once.
fn write_message(dir: &str, name: &str, sub: Sub, message: &NewMessage<'_>) -> StoreResult<String> {
    let tmp_path = format!("{dir}/tmp/{name}");
    let write_error = |error: &std::io::Error| {
        if error.kind() == ErrorKind::WriteZero {
            StoreError::mailbox(format!(
                "Maildir error: cannot write {tmp_path}. Disk full?"
            ))
        } else {
            StoreError::mailbox(format!(
                "Maildir error: cannot write {tmp_path}: {}",
                strerror(error)
            ))
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp_path)
        .map_err(|e| write_error(&e))?;
    let written = message
        .data
        .write_to(&mut file)
        .and_then(|_| match message.date {
            Some(date) => file.set_times(FileTimes::new().set_accessed(date).set_modified(date)),
            None => Ok(()),
        });
    drop(file);
    if let Err(error) = written {
        // The message is still at its source; do not leave a partial copy behind.
        let _ = fs::remove_file(&tmp_path);
        return Err(write_error(&error));
    }
    let final_path = format!("{dir}/{}/{name}", sub.dir_name());
    if let Err(error) = fs::rename(&tmp_path, &final_path) {
        let _ = fs::remove_file(&tmp_path);
        return Err(rename_error(&tmp_path, &final_path, &error));
    }
    Ok(final_path)
}

/// A message file's bytes: read into memory if small, otherwise left in the (open) file and
/// read a chunk at a time when copied.
fn read_body(path: &str) -> std::io::Result<MessageBody> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len <= STREAM_CHUNK {
        let mut data = Vec::with_capacity(len as usize);
        file.read_to_end(&mut data)?;
        return Ok(MessageBody::Memory(data));
    }
    Ok(MessageBody::File(BodyFile::existing(
        file,
        len,
        path.into(),
    )))
}

/// Creates a maildir (the directory with parents, `cur/`, `new/`, `tmp/`, mode 0700).
fn create_maildir(dir: &str) -> StoreResult<()> {
    for sub in ["cur", "new", "tmp"] {
        create_dirs(&format!("{dir}/{sub}")).map_err(|e| create_error(dir, &e))?;
    }
    Ok(())
}

fn create_dirs(path: &str) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// The text of an I/O error without Rust's ` (os error N)` suffix, like C's strerror.
pub(crate) fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(start) if text.ends_with(')') => text[..start].to_string(),
        _ => text,
    }
}

fn create_error(dir: &str, error: &std::io::Error) -> StoreError {
    StoreError::store(format!(
        "Maildir error: cannot create mailbox '{dir}/': {}",
        strerror(error)
    ))
}

fn list_error(dir: &str, error: &std::io::Error) -> StoreError {
    StoreError::mailbox(format!(
        "Maildir error: cannot list {dir}: {}",
        strerror(error)
    ))
}

fn read_error(path: &str, error: &std::io::Error) -> StoreError {
    StoreError::mailbox(format!(
        "Maildir error: cannot read {path}: {}",
        strerror(error)
    ))
}

fn remove_error(path: &str, error: &std::io::Error) -> StoreError {
    StoreError::mailbox(format!(
        "Maildir error: cannot remove {path}: {}",
        strerror(error)
    ))
}

/// Renames a message file; false if it vanished meanwhile (another process moved or deleted
/// it), an error naming both paths for anything else.
fn rename_message(from: &str, to: &str) -> StoreResult<bool> {
    match fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(rename_error(from, to, &error)),
    }
}

fn rename_error(from: &str, to: &str, error: &std::io::Error) -> StoreError {
    StoreError::mailbox(format!(
        "Maildir error: cannot rename {from} to {to}: {}",
        strerror(error)
    ))
}
