//! The IMAP4 store driver (spec config-cli-stores §5): an [`ImapStore`] serves one IMAPStore
//! of the config over one connection, implementing the [`Store`] trait on top of a
//! current-thread tokio runtime. Commands of one call are pipelined up to PipelineDepth, and
//! two kinds stay in flight across calls, so first copies do not wait a round trip per
//! message: read-ahead FETCHes (`prefetch`, bounded by BufferLimit, collected by `fetch`)
//! and APPENDs (`store_queued`, written at once, their outcomes collected by
//! `finish_stores` at the copy batch's group commit). Any other command first finishes the
//! read-ahead in flight, so replies never mix.
//!
//! Memory: a listing holds no bodies. A message up to [`STREAM_CHUNK`] (1 MiB) is fetched
//! whole: the parser's input buffer holds it while its reply arrives, then the decoded literal
//! is moved (not copied) into the [`FetchedMessage`], and the read-ahead holds at most
//! BufferLimit of such messages. A larger message is fetched in chunks
//! (`BODY.PEEK[]<offset.length>`, each counted against BufferLimit only while it is on its
//! way) into a spool file (`Store::set_spool_dir`: the target Maildir's `tmp/`; unlinked at
//! once, so a crash leaves nothing), at most [`MAX_SPOOLED_AHEAD`] such messages ahead; and a
//! message to store that comes as a stream is APPENDed by writing its literal a chunk at a
//! time ([`connection::Connection::submit_streamed`]). No big message is ever whole in memory.
//!
//! - `connection` — transport, TLS, the protocol flow (imap-next) and pipelining;
//! - `session` — greeting, STARTTLS, authentication, capabilities, NAMESPACE;
//! - `auth` — mechanism choice and the SASL mechanisms;
//! - `tls`, `cert` — certificate verification with mbsync's rules;
//! - `names` — modified UTF-7 and canonical ↔ server mailbox names;
//! - `messages` — FETCH replies, flags and dates;
//! - `replay` — a pure entry point feeding canned server bytes through the above (fuzzing).

mod auth;
mod bypass;
mod cert;
mod compress;
pub mod condstore;
mod connection;
mod messages;
mod names;
mod replay;
mod session;
mod tls;

pub use auth::{cram_md5_response, oauthbearer_response, plain_response, xoauth2_response};
pub use names::{utf7_decode, utf7_encode};
pub use replay::{ReplaySummary, replay_server_bytes};

use crate::config::{ImapAccountConfig, ImapStoreConfig};
use crate::store::body::{STREAM_CHUNK, Spool};
use crate::store::{
    BodySource, FailureScope, FetchedMessage, Flags, FlagsTicket, ListAreas, LoadRequest, Loaded,
    MessageBody, MessageData, MessageInfo, NewMessage, OpenOutcome, QueuedOutcome, RefusedFlags,
    Reporter, Store, StoreError, StoreResult, StoreTicket,
};
use condstore::{BoxStatus, Changes, MailboxSnapshot, MergedListing};
use connection::{Connection, Outcome};
use imap_next::imap_types::command::{CommandBody, FetchModifier, SelectParameter};
use imap_next::imap_types::core::{AString, IString, Literal, LiteralMode};
use imap_next::imap_types::extensions::binary::{Literal8, LiteralOrLiteral8};
use imap_next::imap_types::extensions::utf8::QuotedUtf8;
use imap_next::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_next::imap_types::flag::{StoreResponse, StoreType};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Code, Data, StatusKind};
use imap_next::imap_types::sequence::SequenceSet;
use names::{ListedName, NameMap};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::time::SystemTime;

/// Run-wide settings the store needs besides its config sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapOptions {
    /// `BufferLimit`: the most message data the read-ahead (`Store::prefetch`) asks for at
    /// once, counting what is buffered and what its FETCHes in flight announce (a message
    /// larger than the limit is read alone). Queued APPENDs hold no data once written.
    pub buffer_limit: u64,
    /// `-Tu`: withhold the UIDs of stored messages (forces the X-TUID search).
    pub withhold_uids: bool,
    /// `-Dn`: report the protocol traffic through `Reporter::debug` (credentials masked,
    /// message data summarised).
    pub trace: bool,
    /// The largest literal (message) accepted from the server; a larger announcement fails
    /// the connection before any of its data is buffered.
    pub max_literal: u64,
    /// The caller lists the store right after connecting: the listing is asked for in the
    /// log-in's round (used by `list` when its pattern is `*`).
    pub list_ahead: bool,
    /// Mailboxes (canonical names) whose STATUS is asked in the log-in's round, for the
    /// STATUS round (`prefetch_status`) or an `open_box` to use: the ones an earlier run
    /// kept a snapshot of. The server names are guessed from the config alone (Path,
    /// PathDelimiter; plain ASCII names only); a wrong guess only leaves that mailbox to be
    /// asked later.
    pub status_ahead: Vec<String>,
}

impl Default for ImapOptions {
    fn default() -> Self {
        ImapOptions {
            buffer_limit: 10 * 1024 * 1024,
            withhold_uids: false,
            trace: false,
            max_literal: connection::DEFAULT_MAX_LITERAL,
            list_ahead: false,
            status_ahead: Vec::new(),
        }
    }
}

/// The currently selected mailbox.
#[derive(Clone, Debug)]
struct Selected {
    /// Server name as sent (encoded).
    server: String,
    uid_next: u32,
    /// `$Forwarded` can be stored here.
    forwarded_ok: bool,
    uid_validity: u32,
    /// HIGHESTMODSEQ when selected (CONDSTORE servers, unless NOMODSEQ).
    highest_modseq: Option<u64>,
    /// Not selected on the server yet: a STATUS showed the mailbox unchanged since the
    /// snapshot, which serves the load; anything else selects it first.
    lazy: bool,
    /// EXISTS and RECENT as the STATUS answer gave them (only while `lazy`, when the
    /// mailbox is not selected on any connection).
    lazy_counts: (u32, u32),
}

/// What a connected store learnt that another instance for the same store can use without
/// connecting first: the capabilities, the name mapping, the STATUS answers and a password
/// typed at the prompt. An instance given a seed (see [`ImapStore::adopt_seed`]) opens a
/// mailbox that STATUS showed unchanged without connecting; it connects when it first has a
/// command to send.
#[derive(Clone, Debug, Default)]
pub struct ImapSeed {
    capabilities: Vec<String>,
    names: NameMap,
    statuses: HashMap<String, BoxStatus>,
    prompted_password: Option<String>,
}

/// An IMAP store: one connection to one account, serving one IMAPStore.
pub struct ImapStore {
    name: String,
    store: ImapStoreConfig,
    account: ImapAccountConfig,
    options: ImapOptions,
    reporter: Rc<dyn Reporter>,
    runtime: tokio::runtime::Runtime,
    connection: Option<Connection>,
    names: NameMap,
    /// A permanent failure of the account: no further connection attempts.
    failed: Option<StoreError>,
    selected: Option<Selected>,
    /// Canonical name last passed to `open_box`.
    wanted: Option<String>,
    trash_known: bool,
    /// A password typed at the prompt, kept for the run.
    prompted_password: Option<String>,
    /// Messages read ahead by `prefetch`, and their total size.
    prefetched: BTreeMap<u32, Option<FetchedMessage>>,
    prefetched_bytes: u64,
    /// Messages `prefetch` announced whose FETCH is not sent yet, in order, with sizes …
    read_ahead: std::collections::VecDeque<(u32, u64)>,
    /// … and those whose size is not known yet (sized a chunk at a time).
    not_sized: std::collections::VecDeque<u32>,
    /// Sizes of the messages that arrived since the snapshot, asked for in the SELECT's
    /// round (see `select_mailbox`), so a read-ahead of them needs no size round.
    new_sizes: HashMap<u32, u64>,
    /// The size round in flight, if any (see [`SizeRound`]).
    size_round: Option<SizeRound>,
    /// Body FETCHes sent and not finished yet (oldest first), and the bytes they announce.
    body_fetches: std::collections::VecDeque<BodyFetch>,
    body_fetch_bytes: u64,
    /// APPENDs sent by `store_queued` whose outcome was not collected yet.
    queued_appends: Vec<QueuedAppend>,
    next_ticket: u64,
    /// Flag changes not sent yet: UID → (add, remove), later changes merged in.
    pending_flags: BTreeMap<u32, (Flags, Flags)>,
    /// UIDs the last load saw (to answer "is it gone?").
    loaded: std::collections::BTreeSet<u32>,
    /// The snapshot a caller handed in for the next `open_box` of this (canonical) name.
    primed: Option<(String, MailboxSnapshot)>,
    /// STATUS answers by server mailbox name, each used for one `open_box`.
    statuses: HashMap<String, BoxStatus>,
    /// Server names whose STATUS was asked in the log-in's round (answered or refused): the
    /// STATUS round does not ask them again.
    status_asked: HashSet<String>,
    /// The open mailbox's complete listing, known without listing it (CONDSTORE).
    current: Option<MergedListing>,
    /// What this run learnt about the open (or last) mailbox, for the caller to keep.
    snapshot_out: Option<MailboxSnapshot>,
    /// `ENABLE QRESYNC` succeeded on this connection.
    qresync_enabled: bool,
    /// The answers (or the refusal) of a `LIST "" "*"` sent with the log-in, for the first
    /// `list`.
    listed_ahead: Option<Result<Vec<Data<'static>>, Outcome>>,
    /// A connection was established before (a reconnection does not list ahead).
    connected_before: bool,
    /// The capabilities of a seed (see [`ImapSeed`]), in force until this instance connects.
    seeded_capabilities: Option<Vec<String>>,
    /// Big messages the read-ahead is fetching in chunks, by UID.
    spools: HashMap<u32, ChunkedFetch>,
    /// Spooled messages waiting in `prefetched` (each holds a file, not memory).
    spooled_ready: usize,
    /// Where spool files are made (`Store::set_spool_dir`; the temporary directory until then).
    spool_dir: PathBuf,
}

/// At most this many big messages are spooled ahead (being fetched or waiting to be taken).
const MAX_SPOOLED_AHEAD: usize = 2;

/// Chunk FETCHes of one big message fetched alone are sent this many at a time.
const CHUNKS_PER_ROUND: u64 = 4;

/// A big message the read-ahead fetches in chunks of [`STREAM_CHUNK`] into a spool file.
#[derive(Default)]
struct ChunkedFetch {
    /// Made when the first data arrives.
    spool: Option<Spool>,
    /// Offset of the next chunk to ask for.
    next_offset: u64,
    /// Chunk FETCHes sent and not finished.
    outstanding: usize,
    /// Where the message ends, once a short chunk (or the whole message) arrived.
    end: Option<u64>,
    flags: Flags,
    date: Option<SystemTime>,
}

/// Most characters in one UID set (mbsync keeps command lines below ~1000 bytes).
const MAX_SET_LEN: usize = 960;

/// Read-ahead FETCHes ask for at most this many messages each …
const READ_AHEAD_MESSAGES: usize = 64;
/// … and at most this many bytes (a larger message goes alone), so that replies arrive as a
/// stream of finished commands and the window can slide.
const READ_AHEAD_COMMAND_BYTES: u64 = 1024 * 1024;
/// Sizes for the read-ahead are asked for this many messages at a time (bounding what a
/// huge mailbox's size replies hold in memory).
const READ_AHEAD_SIZE_CHUNK: usize = 2000;
/// The next size round is sent once fewer sized messages than this wait for their FETCH:
/// its answer then comes back while the bodies before it still stream in, and the
/// read-ahead never runs dry at a chunk's end (that cost two round trips per chunk).
const SIZE_ROUND_LOW_WATER: usize = READ_AHEAD_SIZE_CHUNK / 2;

/// A `UID FETCH … (UID RFC822.SIZE)` round for the read-ahead, pipelined with the body
/// FETCHes.
struct SizeRound {
    /// Its commands' tags, and their outcomes as they finish.
    tags: Vec<(String, Option<Outcome>)>,
    /// The UID sets asked for (for errors), by command.
    sets: Vec<String>,
    /// The messages that join the read-ahead once sized, in announcement order.
    chunk: Vec<u32>,
    /// The messages asked for.
    asked: HashSet<u32>,
    /// The sizes arrived so far.
    sizes: HashMap<u32, u64>,
}

/// A `UID FETCH … BODY.PEEK[]` sent for reading ahead.
struct BodyFetch {
    tag: String,
    /// The UIDs asked for, with their announced sizes (a chunk: its one UID and length).
    uids: Vec<(u32, u64)>,
    /// A chunk of a big message: its offset.
    chunk: Option<u64>,
    /// The UIDs whose bodies arrived (the others are gone once the FETCH ends).
    arrived: Vec<u32>,
}

/// An APPEND sent by `store_queued`.
struct QueuedAppend {
    ticket: u64,
    tag: String,
    /// How the command is shown in errors.
    shown: String,
}

impl ImapStore {
    /// Makes the store; the connection is opened on first use.
    pub fn new(
        store: &ImapStoreConfig,
        account: &ImapAccountConfig,
        options: ImapOptions,
        reporter: Rc<dyn Reporter>,
    ) -> StoreResult<ImapStore> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::store(format!("Error: cannot start the I/O runtime: {e}")))?;
        if account.use_keychain {
            return Err(StoreError::store(format!(
                "IMAP account '{}': UseKeychain is only available on macOS builds; use PassCmd or PassFile instead",
                account.name
            )));
        }
        Ok(ImapStore {
            name: store.common.name.clone(),
            store: store.clone(),
            account: account.clone(),
            options,
            reporter,
            runtime,
            connection: None,
            names: NameMap::default(),
            failed: None,
            selected: None,
            wanted: None,
            trash_known: false,
            prompted_password: None,
            prefetched: BTreeMap::new(),
            prefetched_bytes: 0,
            read_ahead: Default::default(),
            not_sized: Default::default(),
            new_sizes: HashMap::new(),
            size_round: None,
            body_fetches: Default::default(),
            body_fetch_bytes: 0,
            queued_appends: Vec::new(),
            next_ticket: 1,
            pending_flags: BTreeMap::new(),
            loaded: Default::default(),
            primed: None,
            statuses: HashMap::new(),
            status_asked: HashSet::new(),
            current: None,
            snapshot_out: None,
            qresync_enabled: false,
            listed_ahead: None,
            connected_before: false,
            seeded_capabilities: None,
            spools: HashMap::new(),
            spooled_ready: 0,
            spool_dir: std::env::temp_dir(),
        })
    }

    /// What this connected store knows for another instance of it (`None` before it
    /// connected).
    pub fn seed(&self) -> Option<ImapSeed> {
        let connection = self.connection.as_ref()?;
        Some(ImapSeed {
            capabilities: connection.capabilities.clone(),
            names: self.names.clone(),
            statuses: self.statuses.clone(),
            prompted_password: self.prompted_password.clone(),
        })
    }

    /// Takes over what another instance learnt (before this one connected): mailboxes STATUS
    /// showed unchanged then open without a connection.
    pub fn adopt_seed(&mut self, seed: ImapSeed) {
        if self.connection.is_some() {
            return;
        }
        self.seeded_capabilities = Some(seed.capabilities);
        self.names = seed.names;
        self.statuses = seed.statuses;
        if self.prompted_password.is_none() {
            self.prompted_password = seed.prompted_password;
        }
    }

    /// Connects and logs in now (otherwise done on first use).
    pub fn connect(&mut self) -> StoreResult<()> {
        self.ensure_connected().map(|_| ())
    }

    /// The capabilities in force (after DisableExtension), upper case.
    pub fn capabilities(&self) -> Vec<String> {
        self.connection
            .as_ref()
            .map(|c| c.capabilities.clone())
            .unwrap_or_default()
    }

    fn report_notes(&mut self) {
        if let Some(connection) = self.connection.as_mut() {
            for line in connection.traces.drain(..) {
                self.reporter.debug(&line);
            }
            for note in connection.notes.drain(..) {
                self.reporter.warning(&note);
            }
        }
    }

    fn ensure_connected(&mut self) -> StoreResult<&mut Connection> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        if self.connection.as_ref().is_some_and(|c| c.broken) {
            self.connection = None;
            self.selected = None;
        }
        if self.connection.is_none() {
            let list_ahead = self.options.list_ahead && !self.connected_before;
            let status_ahead = if self.connected_before {
                Vec::new()
            } else {
                self.status_ahead_commands()
            };
            self.connected_before = true;
            let established = self.runtime.block_on(session::establish(
                &self.account,
                &self.store,
                &*self.reporter,
                &mut self.prompted_password,
                self.options.trace,
                list_ahead,
                &status_ahead,
            ));
            match established {
                Ok((mut connection, names, extras)) => {
                    connection.set_max_literal(self.options.max_literal);
                    self.connection = Some(connection);
                    self.names = names;
                    self.trash_known = false;
                    self.qresync_enabled = extras.qresync_enabled;
                    self.listed_ahead = extras.listed_ahead;
                    self.status_asked = extras.status_asked.into_iter().collect();
                    for data in extras.status_answers {
                        if let Some((server, status)) = box_status(data) {
                            self.statuses.insert(server, status);
                        }
                    }
                }
                Err(error) => {
                    // Not connecting (or not logging in) fails the store for the run: a
                    // temporary failure only means a later run may succeed.
                    self.failed = Some(error.clone());
                    return Err(error);
                }
            }
        }
        self.report_notes();
        self.connection
            .as_mut()
            .ok_or_else(|| StoreError::store("IMAP error: no connection"))
    }

    /// Runs commands on the connection (pipelined up to PipelineDepth). Read-ahead FETCHes
    /// still in flight are finished first, so their replies do not mix with the commands'.
    fn run(&mut self, commands: Vec<CommandBody<'static>>) -> StoreResult<Vec<Outcome>> {
        let depth = self.account.pipeline_depth;
        self.ensure_connected()?;
        self.settle_read_ahead()?;
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::store("IMAP error: no connection"));
        };
        let result = self.runtime.block_on(connection.execute(commands, depth));
        self.after_io(result)
    }

    /// What follows every wait on the connection: its notes are reported, and a failure
    /// (BYE, EOF, malformed data, timeout) leaves no mailbox selected and says where it
    /// happened.
    fn after_io<T>(&mut self, mut result: StoreResult<T>) -> StoreResult<T> {
        self.report_notes();
        if let Err(error) = &mut result {
            self.selected = None;
            error.message.push_str(&self.whereabouts());
        }
        result
    }

    /// ` (store S, mailbox M)` for messages, or ` (store S)` before a mailbox was opened.
    fn whereabouts(&self) -> String {
        match &self.wanted {
            Some(name) => format!(" (store {}, mailbox {name})", self.name),
            None => format!(" (store {})", self.name),
        }
    }

    /// Like `run`, but hands the untagged data to `sink` as it arrives instead of collecting
    /// it, so a listing of a big mailbox is never held as a whole in reply form.
    fn run_draining(
        &mut self,
        commands: Vec<CommandBody<'static>>,
        sink: &mut dyn FnMut(Data<'static>),
    ) -> StoreResult<Vec<Outcome>> {
        let depth = self.depth_limit();
        self.ensure_connected()?;
        self.settle_read_ahead()?;
        let mut waiting: std::collections::VecDeque<_> = commands.into();
        let mut tags = Vec::new();
        let mut outcomes: Vec<Option<Outcome>> = Vec::new();
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Err(StoreError::store("IMAP error: no connection"));
            };
            while connection.in_flight() < depth
                && let Some(command) = waiting.pop_front()
            {
                tags.push(connection.submit(command)?);
                outcomes.push(None);
            }
            for data in connection.data.drain(..) {
                sink(data);
            }
            for (tag, outcome) in tags.iter().zip(outcomes.iter_mut()) {
                if outcome.is_none() {
                    *outcome = connection.take_finished(tag);
                }
            }
            if waiting.is_empty() && outcomes.iter().all(Option::is_some) {
                return Ok(outcomes.into_iter().flatten().collect());
            }
            let result = self.runtime.block_on(connection.pump());
            self.after_io(result)?;
        }
    }

    fn run_one(&mut self, command: CommandBody<'static>) -> StoreResult<Outcome> {
        self.run(vec![command])?
            .pop()
            .ok_or_else(|| StoreError::mailbox("IMAP error: a command got no answer"))
    }

    fn take_data(&mut self) -> Vec<Data<'static>> {
        self.connection
            .as_mut()
            .map(|c| std::mem::take(&mut c.data))
            .unwrap_or_default()
    }

    /// Drops untagged data left over before a command whose answers are collected. The
    /// read-ahead's answers are taken in first (it is settled): dropping one would make a
    /// message it read look gone.
    fn clear_data(&mut self) -> StoreResult<()> {
        self.settle_read_ahead()?;
        self.take_data();
        Ok(())
    }

    fn has(&self, capability: &str) -> bool {
        match (&self.connection, &self.seeded_capabilities) {
            (Some(c), _) => c.has(capability),
            (None, Some(seeded)) => seeded.iter().any(|c| c == capability),
            (None, None) => false,
        }
    }

    /// EXISTS and RECENT of the open mailbox (from its STATUS answer while opened lazily).
    fn counts(&self) -> (u32, u32) {
        match &self.selected {
            Some(selected) if selected.lazy => selected.lazy_counts,
            _ => self
                .connection
                .as_ref()
                .map(|c| (c.exists, c.recent))
                .unwrap_or((0, 0)),
        }
    }

    /// Learns the hierarchy delimiter with `LIST "" ""` if neither the config, NAMESPACE nor
    /// a listing told it yet and a hierarchical name needs it.
    fn ensure_delimiter(&mut self, canonical: &str) -> StoreResult<()> {
        if self.names.delimiter.is_some() || !canonical.contains('/') {
            return Ok(());
        }
        let (Ok(reference), Ok(wildcard)) = (Mailbox::try_from(""), ListMailbox::try_from(""))
        else {
            return Ok(());
        };
        self.clear_data()?;
        let outcome = self.run_one(CommandBody::List {
            reference,
            mailbox_wildcard: wildcard,
        })?;
        if outcome.is_ok() {
            for data in self.take_data() {
                if let Data::List { delimiter, .. } = data {
                    self.names.delimiter = delimiter.map(|d| d.inner());
                }
            }
        }
        Ok(())
    }

    fn server_mailbox(&self, canonical: &str, trash: bool) -> StoreResult<String> {
        let name = self
            .names
            .to_server(canonical, trash)
            .map_err(StoreError::mailbox)?;
        Ok(self.names.encode(&name))
    }

    fn selected(&self) -> StoreResult<&Selected> {
        self.selected
            .as_ref()
            .ok_or_else(|| StoreError::mailbox("IMAP error: no mailbox is open"))
    }

    /// Fails with the first refused command of a batch (all of it must succeed); `shown`
    /// names command `i` for the error.
    fn check_all(
        &mut self,
        outcomes: &[Outcome],
        scope: FailureScope,
        shown: impl Fn(usize) -> String,
    ) -> StoreResult<()> {
        match outcomes.iter().position(|outcome| !outcome.is_ok()) {
            Some(i) => Err(self.command_error(&shown(i), &outcomes[i], scope)),
            None => Ok(()),
        }
    }

    /// Runs a batch of commands that must all succeed (see [`ImapStore::check_all`]), their
    /// untagged answers left for [`ImapStore::take_data`] alone.
    fn run_batch(
        &mut self,
        commands: Vec<CommandBody<'static>>,
        scope: FailureScope,
        shown: impl Fn(usize) -> String,
    ) -> StoreResult<()> {
        self.clear_data()?;
        let outcomes = self.run(commands)?;
        self.check_all(&outcomes, scope, shown)
    }

    /// A failed command as the user sees it; BAD also breaks the connection.
    fn command_error(
        &mut self,
        command: &str,
        outcome: &Outcome,
        scope: FailureScope,
    ) -> StoreError {
        if outcome.kind == StatusKind::Bad
            && !matches!(outcome.code, Some(Code::TooBig))
            && let Some(c) = self.connection.as_mut()
        {
            c.broken = true;
        }
        let mut message = format!(
            "IMAP command '{command}' returned an error: {} {}",
            status_word(outcome.kind),
            outcome.text
        );
        message.push_str(&self.whereabouts());
        StoreError::new(scope, message)
    }

    /// Sends the queued flag changes; a refusal is reported as a warning, and fails the call
    /// only if it broke the connection.
    fn flush_flags(&mut self) -> StoreResult<()> {
        let refused = self.send_flags()?;
        let broken = self.connection.as_ref().is_some_and(|c| c.broken);
        let mut first = None;
        for (_, error) in refused {
            self.reporter.warning(&error.message);
            first.get_or_insert(error);
        }
        match first {
            Some(error) if broken => Err(error),
            _ => Ok(()),
        }
    }

    /// Sends the queued flag changes, grouped by change (flags added, flags removed) into
    /// `UID STORE <set> +FLAGS.SILENT` / `-FLAGS.SILENT` commands, all pipelined in one
    /// round; returns the refusals (commands answered NO or BAD) with the UIDs each covered.
    fn send_flags(&mut self) -> StoreResult<Vec<RefusedFlags>> {
        if self.pending_flags.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_selected()?;
        if self.selected.is_none() {
            let lost = std::mem::take(&mut self.pending_flags).len();
            return Err(StoreError::mailbox(format!(
                "IMAP error: {lost} flag change(s) could not be sent: the mailbox is no longer open"
            )));
        }
        let pending = std::mem::take(&mut self.pending_flags);
        let forwarded_ok = self.selected.as_ref().is_some_and(|s| s.forwarded_ok);
        let mut groups: BTreeMap<(u8, u8), Vec<u32>> = BTreeMap::new();
        for (uid, (add, remove)) in pending {
            groups
                .entry((add.bits(), remove.bits()))
                .or_default()
                .push(uid);
        }
        let mut commands = Vec::new();
        let mut shown = Vec::new();
        let mut refused = Vec::new();
        for ((add, remove), uids) in groups {
            if add == 0 && remove == 0 {
                continue;
            }
            for (set, covered) in uid_sets_with_members(&uids) {
                for (bits, kind) in [(add, StoreType::Add), (remove, StoreType::Remove)] {
                    let flags = messages::imap_flags(Flags::from_bits(bits), forwarded_ok);
                    if flags.is_empty() {
                        continue;
                    }
                    let Ok(sequence_set) = SequenceSet::from_str(&set) else {
                        refused.push((
                            covered.clone(),
                            StoreError::message(format!(
                                "IMAP error: bad UID set {set}{}",
                                self.whereabouts()
                            )),
                        ));
                        continue;
                    };
                    shown.push((
                        format!(
                            "UID STORE {set} {}FLAGS.SILENT",
                            if kind == StoreType::Add { "+" } else { "-" }
                        ),
                        covered.clone(),
                    ));
                    commands.push(CommandBody::Store {
                        sequence_set,
                        kind,
                        response: StoreResponse::Silent,
                        flags,
                        uid: true,
                        modifiers: Vec::new(),
                    });
                }
            }
        }
        let outcomes = self.run(commands)?;
        for (outcome, (command, uids)) in outcomes.iter().zip(shown) {
            if !outcome.is_ok() {
                refused.push((
                    uids,
                    self.command_error(&command, outcome, FailureScope::Message),
                ));
            }
        }
        Ok(refused)
    }

    /// Lists the store with these patterns (LIST, or LSUB for SubscribedOnly) in one
    /// pipelined round and returns the untagged answers.
    fn list_patterns(&mut self, patterns: &[String]) -> StoreResult<Vec<Data<'static>>> {
        let mut commands = Vec::new();
        for pattern in patterns {
            let Some(command) = session::list_command(self.store.subscribed_only, pattern) else {
                return Err(StoreError::store(format!(
                    "IMAP error: cannot list with pattern '{pattern}'"
                )));
            };
            commands.push(command);
        }
        self.run_batch(commands, FailureScope::Store, |i| {
            let pattern = &patterns[i];
            format!("LIST \"\" \"{pattern}\"")
        })?;
        Ok(self.take_data())
    }

    /// Runs a command addressing the Trash; creates the Trash on `[TRYCREATE]` and retries.
    fn run_to_trash(
        &mut self,
        make: &dyn Fn() -> Option<CommandBody<'static>>,
        shown: &str,
    ) -> StoreResult<Outcome> {
        let Some(command) = make() else {
            return Err(StoreError::message(format!(
                "IMAP error: cannot build '{shown}'"
            )));
        };
        let outcome = self.run_one(command)?;
        if outcome.kind == StatusKind::No && matches!(outcome.code, Some(Code::TryCreate)) {
            self.create_trash()?;
            let Some(command) = make() else {
                return Err(StoreError::message(format!(
                    "IMAP error: cannot build '{shown}'"
                )));
            };
            return self.run_one(command);
        }
        if outcome.is_ok() {
            self.trash_known = true;
        }
        Ok(outcome)
    }

    /// Creates the Trash mailbox (after a `[TRYCREATE]`).
    fn create_trash(&mut self) -> StoreResult<()> {
        let trash = self.trash_server_name()?;
        self.create_mailbox(&trash, FailureScope::Message)?;
        self.trash_known = true;
        Ok(())
    }

    /// CREATEs a mailbox by its server name; a refusal fails what `scope` says.
    fn create_mailbox(&mut self, server: &str, scope: FailureScope) -> StoreResult<()> {
        let Ok(create) = CommandBody::create(server.to_string()) else {
            return Err(StoreError::mailbox(format!(
                "IMAP error: bad mailbox name {server}"
            )));
        };
        let outcome = self.run_one(create)?;
        if !outcome.is_ok() {
            return Err(self.command_error(&format!("CREATE \"{server}\""), &outcome, scope));
        }
        Ok(())
    }

    fn trash_server_name(&mut self) -> StoreResult<String> {
        let Some(trash) = &self.store.common.trash else {
            return Err(StoreError::store(format!(
                "IMAP error: store {} has no Trash",
                self.name
            )));
        };
        let trash = trash.clone();
        self.ensure_delimiter(&trash)?;
        self.server_mailbox(&trash, true)
    }

    fn append_command(
        &self,
        mailbox: &str,
        message: &NewMessage<'_>,
        sync_literal: bool,
    ) -> StoreResult<CommandBody<'static>> {
        let forwarded_ok = self.selected.as_ref().is_none_or(|s| s.forwarded_ok);
        let flags = messages::imap_flags(message.flags, forwarded_ok);
        let date = message.date.and_then(messages::to_imap_date);
        let MessageData::Bytes(data) = message.data else {
            return Err(StoreError::message(
                "IMAP error: a streamed message cannot go into an APPEND command",
            ));
        };
        let size = data.len();
        let non_sync = !sync_literal
            && ((self.has("LITERAL+") && size <= 102_400)
                || (self.has("LITERAL-") && size <= 4096));
        let mode = if non_sync {
            LiteralMode::NonSync
        } else {
            LiteralMode::Sync
        };
        let literal = match Literal::try_from(data.to_vec()) {
            Ok(mut literal) => {
                literal.set_mode(mode);
                LiteralOrLiteral8::Literal(literal)
            }
            // NUL bytes need a binary literal (RFC 3516).
            Err(_) if self.has("BINARY") => LiteralOrLiteral8::Literal8(Literal8 {
                data: Cow::Owned(data.to_vec()),
                mode,
            }),
            Err(_) => {
                return Err(StoreError::message(
                    "IMAP error: the message contains NUL bytes and the server lacks BINARY to store it",
                ));
            }
        };
        let mailbox = mailbox_arg(mailbox, self.names.utf8)?;
        Ok(CommandBody::Append {
            mailbox,
            flags,
            date,
            message: literal,
        })
    }

    /// The start of an APPEND of a streamed message: `APPEND <mailbox> (<flags>) "<date>" `,
    /// encoded as the codec encodes the command, without the literal.
    fn append_head(&self, mailbox: &str, message: &NewMessage<'_>) -> StoreResult<Vec<u8>> {
        use imap_codec::encode::Encoder;
        use imap_next::imap_types::command::Command;
        use imap_next::imap_types::core::Tag;
        let forwarded_ok = self.selected.as_ref().is_none_or(|s| s.forwarded_ok);
        let flags = messages::imap_flags(message.flags, forwarded_ok);
        let date = message.date.and_then(messages::to_imap_date);
        let mut literal = Literal::try_from(&b"x"[..])
            .map_err(|_| StoreError::message("IMAP error: cannot build an APPEND"))?;
        literal.set_mode(LiteralMode::Sync);
        let command = Command {
            tag: Tag::try_from("A").map_err(|_| StoreError::message("IMAP error: bad tag"))?,
            body: CommandBody::Append {
                mailbox: mailbox_arg(mailbox, self.names.utf8)?,
                flags,
                date,
                message: LiteralOrLiteral8::Literal(literal),
            },
        };
        let encoded = imap_codec::CommandCodec::default().encode(&command).dump();
        encoded
            .strip_prefix(b"A ")
            .and_then(|rest| rest.strip_suffix(b"{1}\r\nx\r\n"))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| StoreError::message("IMAP error: cannot build an APPEND"))
    }

    /// Sends an APPEND of a streamed message (its literal written a chunk at a time as the
    /// source is read) and returns its tag once the literal is out (or the server refused it
    /// before). Read-ahead FETCHes in flight finish first.
    fn append_streamed(
        &mut self,
        mailbox: &str,
        message: &NewMessage<'_>,
        source: &dyn BodySource,
    ) -> StoreResult<String> {
        let unreadable = |error: std::io::Error| {
            StoreError::mailbox(format!("Error: cannot read the message to store: {error}"))
        };
        let binary = source.contains_nul().map_err(unreadable)?;
        let len = source.len().map_err(unreadable)?;
        if binary && !self.has("BINARY") {
            return Err(StoreError::message(
                "IMAP error: the message contains NUL bytes and the server lacks BINARY to store it",
            ));
        }
        let head = self.append_head(mailbox, message)?;
        self.wait_for_pipeline_room()?;
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::store("IMAP error: no connection"));
        };
        let mut reader = source.reader();
        let result =
            self.runtime
                .block_on(connection.submit_streamed(&head, binary, len, &mut *reader));
        self.after_io(result)
    }

    /// APPENDs a message and waits for the outcome.
    fn append_now(
        &mut self,
        mailbox: &str,
        message: &NewMessage<'_>,
        sync_literal: bool,
    ) -> StoreResult<Outcome> {
        match message.data {
            MessageData::Bytes(_) => {
                let command = self.append_command(mailbox, message, sync_literal)?;
                self.run_one(command)
            }
            MessageData::Stream(source) => {
                self.ensure_connected()?;
                let tag = self.append_streamed(mailbox, message, source)?;
                let Some(connection) = self.connection.as_mut() else {
                    return Err(StoreError::store("IMAP error: no connection"));
                };
                let waited = self.runtime.block_on(connection.wait_for(&tag));
                self.after_io(waited)
            }
        }
    }

    /// Runs chunk FETCHes of one message (`offsets`, [`STREAM_CHUNK`] bytes each, the first
    /// also asking flags and date) and returns the replies for `uid`.
    fn run_chunk_fetches(&mut self, uid: u32, offsets: &[u64]) -> StoreResult<Vec<BodyReply>> {
        let mut commands = Vec::new();
        for offset in offsets {
            commands.push(chunk_command(uid, *offset, STREAM_CHUNK)?);
        }
        self.run_batch(commands, FailureScope::Mailbox, |i| {
            let offset = &offsets[i];
            format!("UID FETCH {uid} (UID FLAGS INTERNALDATE BODY.PEEK[]<{offset}.{STREAM_CHUNK}>)")
        })?;
        let mut replies = Vec::new();
        for data in self.take_data() {
            if let Ok(Some(reply)) = take_body(data) {
                if reply.uid != uid {
                    // Taking it for the asked one would copy the wrong message; ignoring it
                    // would make the asked one look vanished.
                    return Err(StoreError::mailbox(format!(
                        "IMAP error: the server sent the message with UID {} in reply to UID FETCH {uid} (store {}, mailbox {})",
                        reply.uid,
                        self.name,
                        self.wanted.as_deref().unwrap_or("?")
                    )));
                }
                replies.push(reply);
            }
        }
        Ok(replies)
    }

    /// Fetches a message that was not read ahead: its first chunk with flags and date in one
    /// command, so a small message costs one round trip; a message larger than a chunk is
    /// fetched on in pipelined chunks into a spool file. `None` if the message is gone.
    fn fetch_alone(&mut self, uid: u32) -> StoreResult<Option<FetchedMessage>> {
        let Some(first) = self.run_chunk_fetches(uid, &[0])?.pop() else {
            return Ok(None);
        };
        let (flags, date) = (first.flags.unwrap_or_default(), first.date);
        let Some(data) = first.data else {
            return Ok(None);
        };
        let message = |body| FetchedMessage { body, flags, date };
        if first.origin.is_none() || (data.len() as u64) < STREAM_CHUNK {
            return Ok(Some(message(MessageBody::Memory(data))));
        }
        let mut spool = self.new_spool()?;
        self.spool_write(&mut spool, uid, 0, &data)?;
        drop(data);
        let mut offset = STREAM_CHUNK;
        loop {
            let offsets: Vec<u64> = (0..CHUNKS_PER_ROUND)
                .map(|n| offset + n * STREAM_CHUNK)
                .collect();
            let replies = self.run_chunk_fetches(uid, &offsets)?;
            let mut end = None;
            for chunk_offset in &offsets {
                let reply = replies
                    .iter()
                    .find(|r| r.origin.map(u64::from) == Some(*chunk_offset));
                let got = match reply.and_then(|r| r.data.as_ref()) {
                    Some(data) => {
                        self.spool_write(&mut spool, uid, *chunk_offset, data)?;
                        data.len() as u64
                    }
                    None => 0,
                };
                if got < STREAM_CHUNK {
                    end = Some(chunk_offset + got);
                    break;
                }
            }
            if let Some(end) = end {
                return Ok(Some(message(spool.into_body(end))));
            }
            offset += CHUNKS_PER_ROUND * STREAM_CHUNK;
        }
    }

    /// A spool file in the spool directory (or, if that fails, e.g. because the mailbox
    /// whose `tmp/` it was is gone, in the temporary directory).
    fn new_spool(&self) -> StoreResult<Spool> {
        Spool::create(&self.spool_dir)
            .or_else(|_| Spool::create(&std::env::temp_dir()))
            .map_err(|error| {
                StoreError::mailbox(format!(
                    "Error: cannot create a spool file in {}: {error}",
                    self.spool_dir.display()
                ))
            })
    }

    fn spool_write(
        &self,
        spool: &mut Spool,
        uid: u32,
        offset: u64,
        data: &[u8],
    ) -> StoreResult<()> {
        spool.write_at(offset, data).map_err(|error| {
            StoreError::mailbox(format!(
                "Error: cannot write message {uid} to its spool file in {}: {error}",
                self.spool_dir.display()
            ))
        })
    }

    /// The most commands in flight at once (PipelineDepth; unlimited by default).
    fn depth_limit(&self) -> usize {
        self.account
            .pipeline_depth
            .map(|d| d.max(1) as usize)
            .unwrap_or(usize::MAX)
    }

    /// Finishes the read-ahead FETCHes in flight and waits until fewer than PipelineDepth
    /// commands are, so the next command can be submitted.
    fn wait_for_pipeline_room(&mut self) -> StoreResult<()> {
        self.settle_read_ahead()?;
        let depth = self.depth_limit();
        while self
            .connection
            .as_ref()
            .is_some_and(|c| c.in_flight() >= depth)
        {
            self.pump_connection()?;
        }
        Ok(())
    }

    /// Processes one event of the connection (a write, a read, a response).
    fn pump_connection(&mut self) -> StoreResult<()> {
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::store("IMAP error: no connection"));
        };
        let result = self.runtime.block_on(connection.pump());
        self.after_io(result)
    }

    /// Writes every submitted command in full.
    fn send_submitted(&mut self) -> StoreResult<()> {
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::store("IMAP error: no connection"));
        };
        let result = self.runtime.block_on(connection.send_all());
        self.after_io(result)
    }

    /// True if a read-ahead FETCH in flight asks for `uid`.
    fn on_its_way(&self, uid: u32) -> bool {
        self.body_fetches
            .iter()
            .any(|f| f.uids.iter().any(|(u, _)| *u == uid))
    }

    /// Asks the sizes of the next announced messages (one `UID FETCH … RFC822.SIZE` round per
    /// [`READ_AHEAD_SIZE_CHUNK`] messages), so the read-ahead can be bounded in bytes. The
    /// round is only submitted: [`Self::absorb_size_round`] takes its answers.
    fn send_size_round(&mut self) -> StoreResult<()> {
        let count = self.not_sized.len().min(READ_AHEAD_SIZE_CHUNK);
        if count == 0 || self.size_round.is_some() {
            return Ok(());
        }
        let in_flight = self.connection.as_ref().map_or(0, |c| c.in_flight());
        // One FETCH per UID set, as many sets as PipelineDepth leaves room for (at least one);
        // the UIDs of the others wait for the next round, in front and in their order.
        let room = self.depth_limit().saturating_sub(in_flight).max(1);
        let mut chunk: Vec<u32> = self.not_sized.drain(..count).collect();
        let mut parts = uid_sets_with_members(&chunk);
        if parts.len() > room {
            let later: HashSet<u32> = parts
                .drain(room..)
                .flat_map(|(_, members)| members)
                .collect();
            let waiting: Vec<u32>;
            (waiting, chunk) = chunk.into_iter().partition(|uid| later.contains(uid));
            for &uid in waiting.iter().rev() {
                self.not_sized.push_front(uid);
            }
        }
        let sets: Vec<String> = parts.into_iter().map(|(set, _)| set).collect();
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::store("IMAP error: no connection"));
        };
        let mut tags = Vec::new();
        for set in &sets {
            let command = fetch_command(
                set,
                vec![MessageDataItemName::Uid, MessageDataItemName::Rfc822Size],
            )?;
            tags.push((connection.submit(command)?, None));
        }
        self.size_round = Some(SizeRound {
            tags,
            sets,
            asked: chunk.iter().copied().collect(),
            chunk,
            sizes: HashMap::new(),
        });
        Ok(())
    }

    /// True if the size round in flight asks for `uid`.
    fn sizing(&self, uid: u32) -> bool {
        self.size_round
            .as_ref()
            .is_some_and(|round| round.asked.contains(&uid))
    }

    /// Takes the size answers of the round in flight out of the connection's data; once all
    /// its commands finished, the sized messages join the read-ahead in order (one the
    /// server did not report is gone: it is buffered as `None`).
    fn absorb_size_round(&mut self) -> StoreResult<()> {
        let (Some(round), Some(connection)) = (self.size_round.as_mut(), self.connection.as_mut())
        else {
            return Ok(());
        };
        let mut kept = Vec::new();
        for data in std::mem::take(&mut connection.data) {
            match messages::parse_fetch(&data) {
                Some(fetched) if fetched.body.is_none() && round.asked.contains(&fetched.uid) => {
                    match fetched.size {
                        Some(size) => {
                            round.sizes.insert(fetched.uid, size);
                        }
                        None => kept.push(data),
                    }
                }
                _ => kept.push(data),
            }
        }
        kept.append(&mut connection.data);
        connection.data = kept;
        for (tag, outcome) in &mut round.tags {
            if outcome.is_none() {
                *outcome = connection.take_finished(tag);
            }
        }
        if round.tags.iter().any(|(_, outcome)| outcome.is_none()) {
            return Ok(());
        }
        let Some(round) = self.size_round.take() else {
            return Ok(());
        };
        for ((_, outcome), set) in round.tags.iter().zip(&round.sets) {
            if let Some(outcome) = outcome
                && !outcome.is_ok()
            {
                return Err(self.command_error(
                    &format!("UID FETCH {set} (UID RFC822.SIZE)"),
                    outcome,
                    FailureScope::Mailbox,
                ));
            }
        }
        for uid in round.chunk {
            match round.sizes.get(&uid) {
                Some(size) => self.read_ahead.push_back((uid, *size)),
                None => {
                    self.prefetched.insert(uid, None);
                }
            }
        }
        Ok(())
    }

    /// Sends further read-ahead FETCHes while the bytes they announce plus the bytes buffered
    /// stay within BufferLimit and PipelineDepth allows. With `force`, one FETCH goes even over
    /// BufferLimit (the message asked for next, or one larger than the limit when nothing
    /// else is buffered or in flight); never over PipelineDepth.
    fn top_up_read_ahead(&mut self, mut force: bool) -> StoreResult<()> {
        let limit = self.options.buffer_limit;
        let depth = self.depth_limit();
        let mut sent = false;
        loop {
            if self.read_ahead.len() < SIZE_ROUND_LOW_WATER
                && self.size_round.is_none()
                && !self.not_sized.is_empty()
                && self
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.in_flight() < depth)
            {
                self.send_size_round()?;
                sent = true;
            }
            if self.read_ahead.is_empty() {
                break;
            }
            let Some(connection) = self.connection.as_mut() else {
                break;
            };
            if connection.in_flight() >= depth {
                break;
            }
            let used = self.prefetched_bytes + self.body_fetch_bytes;
            let idle = self.prefetched_bytes == 0 && self.body_fetches.is_empty();
            // A big message at the front goes in chunks into a spool file, one FETCH per
            // chunk, each counted against the limit only while it is on its way.
            if let Some(&(uid, size)) = self.read_ahead.front()
                && size > STREAM_CHUNK
            {
                let starting = !self.spools.contains_key(&uid);
                if starting && self.spools.len() + self.spooled_ready >= MAX_SPOOLED_AHEAD && !force
                {
                    break;
                }
                let chunked = self.spools.entry(uid).or_default();
                // One byte more than announced: a short last chunk proves the end.
                let end = size + 1;
                let offset = chunked.next_offset;
                let len = (end - offset).min(STREAM_CHUNK);
                if !(used + len <= limit || idle || force) {
                    break;
                }
                let tag = connection.submit(chunk_command(uid, offset, len)?)?;
                chunked.next_offset += len;
                chunked.outstanding += 1;
                if chunked.next_offset >= end {
                    self.read_ahead.pop_front();
                }
                self.body_fetch_bytes += len;
                self.body_fetches.push_back(BodyFetch {
                    tag,
                    uids: vec![(uid, len)],
                    chunk: Some(offset),
                    arrived: Vec::new(),
                });
                force = false;
                sent = true;
                continue;
            }
            let mut uids = Vec::new();
            let mut bytes = 0u64;
            while let Some(&(uid, size)) = self.read_ahead.front() {
                if size > STREAM_CHUNK {
                    break;
                }
                let fits = used + bytes + size <= limit;
                let first = uids.is_empty();
                if first && !(fits || idle || force) {
                    break;
                }
                if !first
                    && (uids.len() >= READ_AHEAD_MESSAGES
                        || bytes + size > READ_AHEAD_COMMAND_BYTES
                        || !fits)
                {
                    break;
                }
                self.read_ahead.pop_front();
                uids.push((uid, size));
                bytes += size;
            }
            if uids.is_empty() {
                break;
            }
            force = false;
            let list: Vec<u32> = uids.iter().map(|(u, _)| *u).collect();
            let set = uid_sets(&list).join(",");
            let command = fetch_command(&set, body_items())?;
            let tag = connection.submit(command)?;
            self.body_fetch_bytes += bytes;
            self.body_fetches.push_back(BodyFetch {
                tag,
                uids,
                chunk: None,
                arrived: Vec::new(),
            });
            sent = true;
        }
        if sent {
            self.send_submitted()?;
        }
        Ok(())
    }

    /// Moves bodies that arrived for read-ahead FETCHes from the connection's data into the
    /// buffer (taking the literal over, not copying it) and ends the FETCHes that finished; a
    /// UID they did not return is gone (`None`).
    fn absorb_read_ahead(&mut self) -> StoreResult<()> {
        self.absorb_bodies()?;
        self.absorb_size_round()
    }

    /// The bodies' part of [`Self::absorb_read_ahead`].
    fn absorb_bodies(&mut self) -> StoreResult<()> {
        if self.body_fetches.is_empty() {
            return Ok(());
        }
        let Some(connection) = self.connection.as_mut() else {
            return Ok(());
        };
        let arrived = std::mem::take(&mut connection.data);
        let mut kept = Vec::new();
        let mut unasked = None;
        let mut chunks = Vec::new();
        for data in arrived {
            match take_body(data) {
                Err(other) => kept.push(other),
                Ok(None) => {}
                Ok(Some(reply)) if self.spools.contains_key(&reply.uid) => chunks.push(reply),
                Ok(Some(reply)) if reply.origin.is_some() => {
                    unasked.get_or_insert(reply.uid);
                }
                Ok(Some(reply)) => {
                    let uid = reply.uid;
                    let Some(message) = reply.into_message() else {
                        continue;
                    };
                    let asking = self
                        .body_fetches
                        .iter_mut()
                        .find(|f| f.uids.iter().any(|(u, _)| *u == uid));
                    let wanted = asking.is_some();
                    if let Some(fetch) = asking {
                        fetch.arrived.push(uid);
                    }
                    if !wanted {
                        // Taking it for an asked one would copy the wrong message; ignoring it
                        // would make the asked one look vanished.
                        unasked.get_or_insert(uid);
                    } else if !self.prefetched.contains_key(&uid) {
                        self.prefetched_bytes += message.body.memory_bytes();
                        self.prefetched.insert(uid, Some(message));
                    }
                }
            }
        }
        kept.append(&mut connection.data);
        connection.data = kept;
        for reply in chunks {
            self.absorb_chunk(reply)?;
        }
        if let Some(uid) = unasked {
            let asked: Vec<u32> = self
                .body_fetches
                .iter()
                .flat_map(|f| f.uids.iter().map(|(u, _)| *u))
                .collect();
            return Err(StoreError::mailbox(format!(
                "IMAP error: the server sent the message with UID {uid} in reply to UID FETCH {} (store {}, mailbox {})",
                uid_sets(&asked).join(","),
                self.name,
                self.wanted.as_deref().unwrap_or("?")
            )));
        }
        let mut index = 0;
        while index < self.body_fetches.len() {
            let Some(connection) = self.connection.as_mut() else {
                break;
            };
            let Some(outcome) = connection.take_finished(&self.body_fetches[index].tag) else {
                index += 1;
                continue;
            };
            let Some(fetch) = self.body_fetches.remove(index) else {
                break;
            };
            let bytes: u64 = fetch.uids.iter().map(|(_, size)| size).sum();
            self.body_fetch_bytes = self.body_fetch_bytes.saturating_sub(bytes);
            if fetch.chunk.is_some() {
                for (uid, _) in &fetch.uids {
                    if let Some(chunked) = self.spools.get_mut(uid) {
                        chunked.outstanding = chunked.outstanding.saturating_sub(1);
                    }
                    if outcome.is_ok() {
                        self.finish_chunked(*uid);
                    } else {
                        self.spools.remove(uid);
                    }
                }
            } else {
                // A message that did not come is gone; one that came may have been taken
                // already and must not come back as gone.
                for (uid, _) in &fetch.uids {
                    if !fetch.arrived.contains(uid) {
                        self.prefetched.entry(*uid).or_insert(None);
                    }
                }
            }
            if !outcome.is_ok() {
                let list: Vec<u32> = fetch.uids.iter().map(|(u, _)| *u).collect();
                return Err(self.command_error(
                    &format!(
                        "UID FETCH {} (UID FLAGS INTERNALDATE BODY.PEEK[])",
                        uid_sets(&list).join(",")
                    ),
                    &outcome,
                    FailureScope::Mailbox,
                ));
            }
        }
        Ok(())
    }

    /// Writes a chunk of a big message into its spool file (made at the first data). A reply
    /// without origin is the whole message (a server that ignores the partial request).
    fn absorb_chunk(&mut self, reply: BodyReply) -> StoreResult<()> {
        let uid = reply.uid;
        let requested = reply.origin.and_then(|origin| {
            self.body_fetches
                .iter()
                .filter(|f| f.chunk == Some(u64::from(origin)))
                .find_map(|f| f.uids.iter().find(|(u, _)| *u == uid).map(|(_, len)| *len))
        });
        let needs_spool = self
            .spools
            .get(&uid)
            .is_some_and(|c| c.spool.is_none() && reply.data.is_some());
        let fresh = if needs_spool {
            Some(self.new_spool()?)
        } else {
            None
        };
        let Some(chunked) = self.spools.get_mut(&uid) else {
            return Ok(());
        };
        if let Some(flags) = reply.flags {
            chunked.flags = flags;
        }
        if reply.date.is_some() {
            chunked.date = reply.date;
        }
        let Some(data) = reply.data else {
            return Ok(());
        };
        if let Some(fresh) = fresh {
            chunked.spool = Some(fresh);
        }
        let Some(spool) = chunked.spool.as_mut() else {
            return Ok(());
        };
        let (offset, end) = match reply.origin {
            None => (0, Some(data.len() as u64)),
            Some(origin) => {
                let origin = u64::from(origin);
                let short = (data.len() as u64) < requested.unwrap_or(STREAM_CHUNK);
                (origin, short.then_some(origin + data.len() as u64))
            }
        };
        let written = spool.write_at(offset, &data);
        if let Some(end) = end {
            chunked.end = Some(chunked.end.map_or(end, |known| known.min(end)));
        }
        written.map_err(|error| {
            StoreError::mailbox(format!(
                "Error: cannot write message {uid} to its spool file in {}: {error}",
                self.spool_dir.display()
            ))
        })
    }

    /// Once every chunk of a big message asked for so far has come back: the spooled message
    /// goes into the buffer (or `None` if the server sent nothing: it is gone), or, if every
    /// chunk came back full (the message is longer than announced), more chunks are asked.
    fn finish_chunked(&mut self, uid: u32) {
        let Some(chunked) = self.spools.get(&uid) else {
            return;
        };
        if chunked.outstanding > 0 || self.read_ahead.iter().any(|(u, _)| *u == uid) {
            return;
        }
        if chunked.spool.is_some() && chunked.end.is_none() {
            let size = chunked.next_offset + STREAM_CHUNK - 1;
            self.read_ahead.push_front((uid, size));
            return;
        }
        let Some(chunked) = self.spools.remove(&uid) else {
            return;
        };
        let message = match (chunked.spool, chunked.end) {
            (Some(spool), Some(end)) => {
                self.spooled_ready += 1;
                Some(FetchedMessage {
                    body: spool.into_body(end),
                    flags: chunked.flags,
                    date: chunked.date,
                })
            }
            _ => None,
        };
        self.prefetched.insert(uid, message);
    }

    /// Waits for every read-ahead FETCH in flight and buffers what it returns.
    fn settle_read_ahead(&mut self) -> StoreResult<()> {
        loop {
            self.absorb_read_ahead()?;
            if self.body_fetches.is_empty() && self.size_round.is_none() {
                return Ok(());
            }
            self.pump_connection()?;
        }
    }

    /// Takes a buffered message out of the read-ahead buffer.
    fn take_prefetched(&mut self, uid: u32) -> Option<Option<FetchedMessage>> {
        let message = self.prefetched.remove(&uid)?;
        if let Some(message) = &message {
            self.prefetched_bytes -= message.body.memory_bytes();
            if let MessageBody::File(_) = message.body {
                self.spooled_ready = self.spooled_ready.saturating_sub(1);
            }
        }
        Some(message)
    }

    /// Serves `fetch` from the read-ahead: waits for the message if it is on its way, sends
    /// its FETCH first if it is announced but not asked for yet, and tops the window up
    /// again. `None` if the message was never announced (a plain FETCH is needed).
    fn fetch_read_ahead(&mut self, uid: u32) -> StoreResult<Option<Option<FetchedMessage>>> {
        loop {
            self.absorb_read_ahead()?;
            if let Some(message) = self.take_prefetched(uid) {
                self.top_up_read_ahead(false)?;
                return Ok(Some(message));
            }
            if self.on_its_way(uid) || self.sizing(uid) {
                self.pump_connection()?;
                continue;
            }
            // A FETCH for it must wait for room under PipelineDepth, like any command.
            let pipeline_full = self
                .connection
                .as_ref()
                .is_some_and(|c| c.in_flight() >= self.depth_limit());
            if !self.read_ahead.iter().any(|(u, _)| *u == uid) {
                if let Some(position) = self.not_sized.iter().position(|u| *u == uid) {
                    if self.size_round.is_some() || pipeline_full {
                        // Another chunk's round is on its way (its answers come first), or
                        // the pipeline is full.
                        self.pump_connection()?;
                        continue;
                    }
                    // Not sized yet: size it now (and the messages before it).
                    if position >= READ_AHEAD_SIZE_CHUNK {
                        self.not_sized.remove(position);
                        self.not_sized.push_front(uid);
                    }
                    self.send_size_round()?;
                    self.send_submitted()?;
                    continue;
                }
                return Ok(None);
            }
            if pipeline_full {
                self.pump_connection()?;
                continue;
            }
            // Asked for before the read-ahead reached it: it goes next, over the limit if need be.
            if let Some(position) = self.read_ahead.iter().position(|(u, _)| *u == uid)
                && let Some(entry) = self.read_ahead.remove(position)
            {
                self.read_ahead.push_front(entry);
            }
            self.top_up_read_ahead(true)?;
            if !self.on_its_way(uid) && !self.prefetched.contains_key(&uid) {
                return Ok(None);
            }
        }
    }

    /// Drops the read-ahead (after reading what is in flight, so that no reply arrives later).
    fn forget_prefetched(&mut self) {
        let in_flight = !self.body_fetches.is_empty() || self.size_round.is_some();
        if in_flight && self.settle_read_ahead().is_err() {
            self.body_fetches.clear();
            self.body_fetch_bytes = 0;
            self.size_round = None;
        }
        self.prefetched.clear();
        self.prefetched_bytes = 0;
        self.read_ahead.clear();
        self.not_sized.clear();
        self.spools.clear();
        self.spooled_ready = 0;
    }

    fn highest_uid(&mut self) -> StoreResult<Option<u32>> {
        let command = fetch_command("*", vec![MessageDataItemName::Uid])?;
        let outcome = self.run_one(command)?;
        if !outcome.is_ok() {
            return Err(self.command_error("UID FETCH * (UID)", &outcome, FailureScope::Mailbox));
        }
        let highest = self
            .take_data()
            .iter()
            .filter_map(|d| messages::parse_fetch(d).map(|f| f.uid))
            .max();
        Ok(highest)
    }

    /// Hands in what an earlier run learnt about the mailbox `name` (canonical), used by the
    /// next `open_box` of that name to ask the server only for changes.
    pub fn prime_listing(&mut self, name: &str, snapshot: Option<MailboxSnapshot>) {
        self.primed = snapshot.map(|s| (name.to_string(), s));
    }

    /// What the last opened mailbox's load learnt (a complete listing at a HIGHESTMODSEQ),
    /// to be kept for the next run; `None` without CONDSTORE or when no complete listing was
    /// seen.
    pub fn take_listing(&mut self) -> Option<MailboxSnapshot> {
        self.snapshot_out.take()
    }

    /// Asks STATUS of these mailboxes (canonical names) in one pipelined round, when the
    /// server has CONDSTORE; a later `open_box` of a mailbox whose status equals its primed
    /// snapshot then needs no SELECT until something is to be changed in it.
    pub fn prefetch_status(&mut self, names: &[String]) -> StoreResult<()> {
        // Answers from the log-in's round stay: they are older than the log-in, and no
        // change of ours has happened yet.
        let asked_early = std::mem::take(&mut self.status_asked);
        self.statuses
            .retain(|server, _| asked_early.contains(server));
        self.ensure_connected()?;
        if !self.has("CONDSTORE") {
            return Ok(());
        }
        let mut commands = Vec::new();
        for name in names {
            self.ensure_delimiter(name)?;
            let Ok(server) = self.server_mailbox(name, false) else {
                continue;
            };
            if asked_early.contains(&server) {
                continue;
            }
            let Ok(mailbox) = mailbox_arg(&server, self.names.utf8) else {
                continue;
            };
            commands.push(status_command(mailbox));
        }
        if commands.is_empty() {
            return Ok(());
        }
        self.clear_data()?;
        // Failed STATUS commands (a mailbox that does not exist) only leave that mailbox
        // without a status; it is then selected as usual.
        self.run(commands)?;
        for data in self.take_data() {
            if let Some((server, status)) = box_status(data) {
                self.statuses.insert(server, status);
            }
        }
        Ok(())
    }

    /// The STATUS commands for `ImapOptions::status_ahead`, with server names guessed from
    /// the config (the namespace is not known before the log-in).
    fn status_ahead_commands(&self) -> Vec<CommandBody<'static>> {
        let guess = NameMap {
            prefix: self.store.path.clone().unwrap_or_default(),
            delimiter: self.store.path_delimiter,
            utf8: false,
        };
        self.options
            .status_ahead
            .iter()
            .filter_map(|name| guess.to_server(name, false).ok())
            .filter(|server| server.is_ascii())
            .filter_map(|server| mailbox_arg(&server, false).ok())
            .map(status_command)
            .collect()
    }

    /// Selects the mailbox for real if `open_box` only pretended (lazy open).
    fn ensure_selected(&mut self) -> StoreResult<()> {
        let Some(selected) = self.selected.as_ref().filter(|s| s.lazy) else {
            return Ok(());
        };
        let (server, uid_validity) = (selected.server.clone(), selected.uid_validity);
        let Some(name) = self.wanted.clone() else {
            return Err(StoreError::mailbox("IMAP error: no mailbox is open"));
        };
        let snapshot = self.snapshot_out.clone();
        let current = self.current.take();
        let loaded = std::mem::take(&mut self.loaded);
        match self.select_mailbox(&name, server, snapshot.as_ref(), None)? {
            OpenOutcome::Opened { uid_validity: now } if now == uid_validity => {}
            _ => {
                self.selected = None;
                return Err(StoreError::mailbox(format!(
                    "IMAP error: mailbox {name} changed its UIDVALIDITY or vanished during the run"
                )));
            }
        }
        self.current = current;
        self.loaded = loaded;
        Ok(())
    }

    /// SELECTs the mailbox; with CONDSTORE and a snapshot of it, learns the changes since
    /// and, if they add up, the complete listing (`current`) and a new snapshot. With
    /// `new_from` (the STATUS of the log-in round showed messages from that UID on, new since
    /// the snapshot), their sizes are asked for in the same round (`new_sizes`).
    fn select_mailbox(
        &mut self,
        name: &str,
        server: String,
        snapshot: Option<&MailboxSnapshot>,
        new_from: Option<u32>,
    ) -> StoreResult<OpenOutcome> {
        if let Some(c) = self.connection.as_mut() {
            c.reset_mailbox_state();
        }
        self.new_sizes.clear();
        let condstore = self.has("CONDSTORE");
        let qresync = self.has("QRESYNC");
        let mut commands = Vec::new();
        // QRESYNC is enabled (pipelined with the SELECT) once there is a snapshot to resync.
        let enabling = qresync && !self.qresync_enabled && snapshot.is_some();
        if enabling
            && let Ok(enable) = CommandBody::enable(vec![
                imap_next::imap_types::extensions::enable::CapabilityEnable::from(
                    imap_next::imap_types::core::Atom::unvalidated("QRESYNC"),
                ),
            ])
        {
            commands.push(enable);
        }
        let resync = snapshot.and_then(|s| {
            Some(SelectParameter::QResync {
                uid_validity: NonZeroU32::new(s.uid_validity)?,
                mod_sequence_value: NonZeroU64::new(s.highest_modseq)?,
                known_uids: None,
                seq_match_data: None,
            })
        });
        let parameters = match resync {
            Some(resync) if qresync && (self.qresync_enabled || !commands.is_empty()) => {
                vec![resync]
            }
            _ if condstore => vec![SelectParameter::CondStore],
            _ => Vec::new(),
        };
        let used_qresync = matches!(parameters.first(), Some(SelectParameter::QResync { .. }));
        commands.push(CommandBody::Select {
            mailbox: mailbox_arg(&server, self.names.utf8)?,
            parameters,
        });
        let sent_enable = commands.len() == 2;
        let select_at = commands.len() - 1;
        if let Some(from) = new_from {
            // Answered BAD if the SELECT fails; its answer is not looked at.
            commands.push(fetch_command(
                &format!("{from}:*"),
                vec![MessageDataItemName::Uid, MessageDataItemName::Rfc822Size],
            )?);
        }
        let outcomes = self.run(commands)?;
        if sent_enable && outcomes.first().is_some_and(|o| o.is_ok()) {
            self.qresync_enabled = true;
        }
        let Some(outcome) = outcomes.into_iter().nth(select_at) else {
            return Err(StoreError::mailbox("IMAP error: SELECT got no answer"));
        };
        if outcome.kind == StatusKind::No && !is_refusal(&outcome) {
            return Ok(OpenOutcome::Missing);
        }
        if !outcome.is_ok() {
            return Err(self.command_error(
                &format!("SELECT \"{server}\""),
                &outcome,
                FailureScope::Mailbox,
            ));
        }
        let codes = self
            .connection
            .as_mut()
            .map(|c| std::mem::take(&mut c.codes))
            .unwrap_or_default();
        let mut uid_validity = None;
        let mut uid_next = None;
        let mut forwarded_ok = false;
        let mut highest_modseq = None;
        let mut no_modseq = false;
        for code in codes.iter().chain(outcome.code.iter()) {
            match code {
                Code::UidValidity(v) => uid_validity = Some(v.get()),
                Code::UidNext(n) => uid_next = Some(n.get()),
                Code::PermanentFlags(flags) => {
                    forwarded_ok = flags.iter().any(messages::allows_forwarded);
                }
                Code::HighestModSeq(m) => highest_modseq = Some(m.get()),
                Code::NoModSeq => no_modseq = true,
                _ => {}
            }
        }
        if no_modseq || !condstore {
            highest_modseq = None;
        }
        let mut changes = Changes::default();
        for data in self.take_data() {
            match &data {
                Data::Vanished {
                    earlier: true,
                    known_uids,
                } => changes.vanished.extend(condstore::uid_ranges(known_uids)),
                Data::Fetch { .. } => {
                    let Some(fetched) = messages::parse_fetch(&data) else {
                        continue;
                    };
                    if let (Some(from), Some(size)) = (new_from, fetched.size)
                        && fetched.uid >= from
                    {
                        self.new_sizes.insert(fetched.uid, size);
                    }
                    if let Some((flags, recent)) = fetched.flags {
                        for warning in &fetched.warnings {
                            self.reporter.warning(warning);
                        }
                        changes.changed.insert(fetched.uid, (flags, recent));
                    }
                }
                _ => {}
            }
        }
        let Some(uid_validity) = uid_validity else {
            return Err(StoreError::mailbox(format!(
                "IMAP error: no UIDVALIDITY for mailbox {name}"
            )));
        };
        let uid_next = match uid_next {
            Some(n) => n,
            None => {
                let exists = self.connection.as_ref().map(|c| c.exists).unwrap_or(0);
                match self.highest_uid()? {
                    Some(highest) => highest.saturating_add(1),
                    None if exists == 0 => 1,
                    None => {
                        return Err(StoreError::mailbox(
                            "IMAP error: querying server for highest UID failed",
                        ));
                    }
                }
            }
        };
        self.selected = Some(Selected {
            server,
            uid_next,
            forwarded_ok,
            uid_validity,
            highest_modseq,
            lazy: false,
            lazy_counts: (0, 0),
        });
        // Messages expunged since the snapshot are gone for whoever asks.
        if let (Some(snapshot), Some(c)) = (snapshot, self.connection.as_mut()) {
            for &(first, last) in &changes.vanished {
                c.expunged
                    .extend(snapshot.messages.range(first..=last).map(|(u, _)| *u));
            }
        }
        if let (Some(snapshot), Some(modseq)) = (snapshot, highest_modseq)
            && snapshot.uid_validity == uid_validity
            && modseq >= snapshot.highest_modseq
        {
            let unchanged = modseq == snapshot.highest_modseq && uid_next == snapshot.uid_next;
            if !used_qresync && !unchanged {
                self.fetch_changes_since(snapshot.highest_modseq, &mut changes)?;
            }
            let mut merged = condstore::merge(snapshot, &changes);
            let exists = self.connection.as_ref().map(|c| c.exists).unwrap_or(0);
            if !used_qresync && merged.messages.len() != exists as usize {
                // CONDSTORE alone does not report expunges: learn which old UIDs are left.
                let left = self.search_uids_below(snapshot.uid_next)?;
                for uid in snapshot.messages.keys() {
                    if !left.contains(uid) {
                        changes.vanished.push((*uid, *uid));
                    }
                }
                merged = condstore::merge(snapshot, &changes);
            }
            // Without VANISHED, expunges show only in the count; a count that does not add
            // up (or any other surprise) means listing the mailbox in full.
            if merged.messages.len() == exists as usize {
                if let Some(c) = self.connection.as_mut() {
                    c.set_sequence_uids(merged.messages.keys().copied());
                }
                self.snapshot_out = Some(MailboxSnapshot {
                    uid_validity,
                    highest_modseq: modseq,
                    uid_next,
                    forwarded_ok,
                    messages: merged.messages.clone(),
                });
                self.current = Some(merged);
            }
        }
        Ok(OpenOutcome::Opened { uid_validity })
    }

    /// `UID SEARCH UID 1:<below - 1>`: the UIDs below `below` still in the mailbox.
    fn search_uids_below(&mut self, below: u32) -> StoreResult<std::collections::BTreeSet<u32>> {
        use imap_next::imap_types::search::SearchKey;
        let mut found = std::collections::BTreeSet::new();
        if below <= 1 {
            return Ok(found);
        }
        let set = format!("1:{}", below - 1);
        let Ok(sequence_set) = SequenceSet::from_str(&set) else {
            return Err(StoreError::mailbox(format!(
                "IMAP error: bad UID set {set}"
            )));
        };
        let command = CommandBody::search(
            None,
            imap_next::imap_types::core::Vec1::from(SearchKey::Uid(sequence_set)),
            true,
        );
        for data in self.run_for_data(command, &format!("UID SEARCH UID {set}"))? {
            if let Data::Search(uids, _) = data {
                found.extend(uids.iter().map(|u| u.get()));
            }
        }
        Ok(found)
    }

    /// Runs one command and returns the untagged data it brought; a refusal (shown as
    /// `shown`) fails the mailbox.
    fn run_for_data(
        &mut self,
        command: CommandBody<'static>,
        shown: &str,
    ) -> StoreResult<Vec<Data<'static>>> {
        self.clear_data()?;
        let outcome = self.run_one(command)?;
        if !outcome.is_ok() {
            return Err(self.command_error(shown, &outcome, FailureScope::Mailbox));
        }
        Ok(self.take_data())
    }

    /// `UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE <modseq>)` into `changes`.
    fn fetch_changes_since(&mut self, modseq: u64, changes: &mut Changes) -> StoreResult<()> {
        let Some(since) = NonZeroU64::new(modseq) else {
            return Ok(());
        };
        let Ok(sequence_set) = SequenceSet::from_str("1:*") else {
            return Err(StoreError::mailbox("IMAP error: bad UID set 1:*"));
        };
        let command = CommandBody::Fetch {
            sequence_set,
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(vec![
                MessageDataItemName::Uid,
                MessageDataItemName::Flags,
            ]),
            uid: true,
            modifiers: vec![FetchModifier::ChangedSince(since)],
        };
        let shown = format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq})");
        for data in self.run_for_data(command, &shown)? {
            if let Some(fetched) = messages::parse_fetch(&data)
                && let Some((flags, recent)) = fetched.flags
            {
                for warning in &fetched.warnings {
                    self.reporter.warning(warning);
                }
                changes.changed.insert(fetched.uid, (flags, recent));
            }
        }
        Ok(())
    }

    /// After a full load: keeps the listing as the mailbox's snapshot if it covers every
    /// message (the request started at UID 1 and was open-ended or reached UIDNEXT) and the
    /// server gave a HIGHESTMODSEQ.
    fn capture_listing(&mut self, request: &LoadRequest, listing: BTreeMap<u32, Flags>) {
        let Some(selected) = self.selected.as_ref() else {
            return;
        };
        let Some(highest_modseq) = selected.highest_modseq else {
            return;
        };
        let exists = self.counts().0;
        let top = selected.uid_next.saturating_sub(1);
        let complete = exists == 0
            || request
                .range
                .is_some_and(|(lo, hi)| lo <= 1 && (hi == u32::MAX || hi >= top));
        if !complete || listing.len() != exists as usize {
            return;
        }
        self.snapshot_out = Some(MailboxSnapshot {
            uid_validity: selected.uid_validity,
            highest_modseq,
            uid_next: selected.uid_next,
            forwarded_ok: selected.forwarded_ok,
            messages: listing,
        });
    }

    /// Serves a load from the complete listing learnt incrementally: the same messages,
    /// flags and `\Recent` marks a full load would report; sizes, TUIDs and Message-IDs are
    /// fetched for just the messages that need them, exactly where a full load reads them.
    fn load_from_listing(
        &mut self,
        request: &LoadRequest,
        current: &MergedListing,
        mut loaded: Loaded,
    ) -> StoreResult<Loaded> {
        let top = self.selected()?.uid_next.saturating_sub(1);
        let range = request.range.map(|(lo, hi)| {
            let hi = if hi == u32::MAX { hi } else { hi.min(top) };
            (lo.max(1), hi)
        });
        let in_range = |uid: u32| range.is_some_and(|(lo, hi)| uid >= lo && uid <= hi);
        // What a full load reads per message: (size, TUID, Message-ID).
        let wants = |uid: u32| -> (bool, bool, bool) {
            let id = request.message_ids_upto.is_some_and(|m| uid <= m);
            if in_range(uid) {
                (
                    request.sizes_from.is_some_and(|s| uid >= s),
                    request.tuids_from.is_some_and(|t| uid >= t),
                    id,
                )
            } else {
                (false, false, id)
            }
        };
        // In ascending UID order, as the listing is.
        let mut messages: Vec<MessageInfo> = Vec::new();
        let mut groups: BTreeMap<(bool, bool, bool), Vec<u32>> = BTreeMap::new();
        for (&uid, &flags) in &current.messages {
            if !(in_range(uid) || request.exceptions.contains(&uid)) {
                continue;
            }
            messages.push(MessageInfo {
                uid,
                flags: if request.flags { flags } else { Flags::EMPTY },
                recent: current.recent.contains(&uid),
                ..MessageInfo::default()
            });
            let want = wants(uid);
            if want != (false, false, false) {
                groups.entry(want).or_default().push(uid);
            }
        }
        let mut commands = Vec::new();
        let mut shown = Vec::new();
        for ((sizes, tuids, ids), uids) in &groups {
            for set in uid_sets(uids) {
                let mut items = vec![MessageDataItemName::Uid];
                if *sizes {
                    items.push(MessageDataItemName::Rfc822Size);
                }
                let fields: Vec<&str> = [(*tuids, "X-TUID"), (*ids, "MESSAGE-ID")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, f)| *f)
                    .collect();
                if !fields.is_empty()
                    && let Some(item) = header_fields(&fields)
                {
                    items.push(item);
                }
                commands.push(fetch_command(&set, items)?);
                shown.push(set);
            }
        }
        if !commands.is_empty() {
            self.run_batch(commands, FailureScope::Mailbox, |i| {
                let set = &shown[i];
                format!("UID FETCH {set} (…)")
            })?;
            for data in self.take_data() {
                let Some(fetched) = messages::parse_fetch(&data) else {
                    continue;
                };
                let uid = fetched.uid;
                let (sizes, tuids, ids) = wants(uid);
                let Ok(index) = messages.binary_search_by_key(&uid, |m| m.uid) else {
                    continue;
                };
                let info = &mut messages[index];
                if sizes {
                    info.size = fetched.size.unwrap_or(0);
                }
                if let Some(header) = &fetched.header {
                    if tuids {
                        match messages::header_tuid(header) {
                            Ok(tuid) => info.tuid = tuid,
                            Err(()) => self.reporter.warning(&format!(
                                "IMAP warning: malformed X-TUID header (UID {uid})"
                            )),
                        }
                    }
                    if ids {
                        info.message_id = messages::header_value(header, "Message-ID");
                    }
                }
            }
        }
        self.loaded = messages.iter().map(|m| m.uid).collect();
        loaded.messages = messages;
        Ok(loaded)
    }
}

/// A NO that says the server would not do it now (`[UNAVAILABLE]`, `[LIMIT]`, `[NOPERM]`, …)
/// rather than that the mailbox does not exist (no code, `[NONEXISTENT]`, `[TRYCREATE]`): a
/// refused SELECT must fail the mailbox, not make it look missing (which could lead to
/// creating it again or propagating its deletion).
fn is_refusal(outcome: &Outcome) -> bool {
    match &outcome.code {
        None | Some(Code::TryCreate) => false,
        Some(Code::Other(other)) => !other
            .inner()
            .to_ascii_uppercase()
            .starts_with(b"NONEXISTENT"),
        Some(_) => true,
    }
}

fn status_word(kind: StatusKind) -> &'static str {
    match kind {
        StatusKind::Ok => "OK",
        StatusKind::No => "NO",
        StatusKind::Bad => "BAD",
    }
}

/// A mailbox argument: in UTF-8 mode non-ASCII names go as UTF-8 quoted strings (RFC 6855),
/// otherwise the (already modified-UTF-7) name is an atom, quoted string or literal.
/// `STATUS <mailbox> (MESSAGES RECENT UIDNEXT UIDVALIDITY HIGHESTMODSEQ)`.
fn status_command(mailbox: Mailbox<'static>) -> CommandBody<'static> {
    use imap_next::imap_types::status::StatusDataItemName;
    CommandBody::Status {
        mailbox,
        item_names: Cow::Owned(vec![
            StatusDataItemName::Messages,
            StatusDataItemName::Recent,
            StatusDataItemName::UidNext,
            StatusDataItemName::UidValidity,
            StatusDataItemName::HighestModSeq,
        ]),
    }
}

/// The server name and the figures of a `* STATUS` answer.
fn box_status(data: Data<'static>) -> Option<(String, BoxStatus)> {
    use imap_next::imap_types::status::StatusDataItem;
    let Data::Status { mailbox, items } = data else {
        return None;
    };
    let mut status = BoxStatus::default();
    for item in items.iter() {
        match item {
            StatusDataItem::Messages(n) => status.messages = *n,
            StatusDataItem::Recent(n) => status.recent = *n,
            StatusDataItem::UidNext(n) => status.uid_next = n.get(),
            StatusDataItem::UidValidity(n) => status.uid_validity = n.get(),
            StatusDataItem::HighestModSeq(n) => status.highest_modseq = *n,
            _ => {}
        }
    }
    Some((session::mailbox_text(&mailbox), status))
}

fn mailbox_arg(name: &str, utf8: bool) -> StoreResult<Mailbox<'static>> {
    let bad = || StoreError::mailbox(format!("IMAP error: bad mailbox name {name}"));
    if utf8 && !name.is_ascii() {
        let quoted = QuotedUtf8::try_from(name.to_string()).map_err(|_| bad())?;
        return Ok(Mailbox::from(AString::String(IString::QuotedUtf8(quoted))));
    }
    Mailbox::try_from(name.to_string()).map_err(|_| bad())
}

/// The messages a load collects. FETCH answers nearly always come in ascending UID order:
/// those are appended to a vector, half the memory of a tree at tens of thousands of
/// messages. Any other answer goes to a side map, merged in at the end.
#[derive(Default)]
struct CollectedMessages {
    in_order: Vec<MessageInfo>,
    others: BTreeMap<u32, MessageInfo>,
}

impl CollectedMessages {
    /// The entry of `uid`, added if it is not there yet.
    fn entry(&mut self, uid: u32) -> &mut MessageInfo {
        let fresh = MessageInfo {
            uid,
            ..MessageInfo::default()
        };
        let end = self.in_order.len();
        if self.in_order.last().is_none_or(|last| last.uid < uid) {
            self.in_order.push(fresh);
            return &mut self.in_order[end];
        }
        match self.in_order.binary_search_by_key(&uid, |m| m.uid) {
            Ok(found) => &mut self.in_order[found],
            Err(_) => self.others.entry(uid).or_insert(fresh),
        }
    }

    /// All messages in ascending UID order.
    fn into_sorted(self) -> Vec<MessageInfo> {
        let mut messages = self.in_order;
        if !self.others.is_empty() {
            messages.extend(self.others.into_values());
            messages.sort_unstable_by_key(|m| m.uid);
        }
        messages
    }
}

/// UID sets of at most [`MAX_SET_LEN`] characters, contiguous UIDs merged into `a:b`.
fn uid_sets(uids: &[u32]) -> Vec<String> {
    uid_sets_with_members(uids)
        .into_iter()
        .map(|(set, _)| set)
        .collect()
}

/// Like [`uid_sets`], each set with the UIDs it covers (ascending, without duplicates).
fn uid_sets_with_members(uids: &[u32]) -> Vec<(String, Vec<u32>)> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for uid in sorted {
        match runs.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(uid) => *end = uid,
            _ => runs.push((uid, uid)),
        }
    }
    let mut sets = Vec::new();
    let mut current = String::new();
    let mut members = Vec::new();
    for (start, end) in runs {
        let item = if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        };
        if !current.is_empty() && current.len() + 1 + item.len() > MAX_SET_LEN {
            sets.push((std::mem::take(&mut current), std::mem::take(&mut members)));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&item);
        members.extend(start..=end);
    }
    if !current.is_empty() {
        sets.push((current, members));
    }
    sets
}

fn fetch_command(
    set: &str,
    items: Vec<MessageDataItemName<'static>>,
) -> StoreResult<CommandBody<'static>> {
    let sequence_set = SequenceSet::from_str(set)
        .map_err(|_| StoreError::mailbox(format!("IMAP error: bad UID set {set}")))?;
    Ok(CommandBody::Fetch {
        sequence_set,
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
        uid: true,
        modifiers: Vec::new(),
    })
}

/// The items of a full-message FETCH.
fn body_items() -> Vec<MessageDataItemName<'static>> {
    vec![
        MessageDataItemName::Uid,
        MessageDataItemName::Flags,
        MessageDataItemName::InternalDate,
        MessageDataItemName::BodyExt {
            section: None,
            partial: None,
            peek: true,
        },
    ]
}

/// What a FETCH reply carrying `BODY[]` (whole or a chunk) holds.
struct BodyReply {
    uid: u32,
    /// The offset of a chunk (`BODY[]<origin>`); `None` for the whole message.
    origin: Option<u32>,
    /// `None` for NIL.
    data: Option<Vec<u8>>,
    flags: Option<Flags>,
    date: Option<SystemTime>,
}

impl BodyReply {
    /// The whole message, unless the body was NIL.
    fn into_message(self) -> Option<FetchedMessage> {
        Some(FetchedMessage {
            body: MessageBody::Memory(self.data?),
            flags: self.flags.unwrap_or_default(),
            date: self.date,
        })
    }
}

/// A chunk FETCH: `UID FETCH <uid> (UID FLAGS INTERNALDATE BODY.PEEK[]<offset.len>)`.
fn chunk_command(uid: u32, offset: u64, len: u64) -> StoreResult<CommandBody<'static>> {
    let bad = || StoreError::mailbox(format!("IMAP error: message {uid} is too large to fetch"));
    let origin = u32::try_from(offset).map_err(|_| bad())?;
    let len = u32::try_from(len)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(bad)?;
    fetch_command(
        &uid.to_string(),
        vec![
            MessageDataItemName::Uid,
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::BodyExt {
                section: None,
                partial: Some((origin, len)),
                peek: true,
            },
        ],
    )
}

/// Takes the body out of a FETCH reply carrying `BODY[]` or a chunk of it (moving the
/// literal, not copying it); other data comes back as `Err`. `Ok(None)` for a reply without
/// UID.
fn take_body(data: Data<'static>) -> Result<Option<BodyReply>, Data<'static>> {
    use imap_next::imap_types::core::Vec1;
    use imap_next::imap_types::fetch::MessageDataItem;
    let has_body = matches!(&data, Data::Fetch { items, .. }
        if items.as_ref().iter().any(|i| matches!(i, MessageDataItem::BodyExt { section: None, .. })));
    if !has_body {
        return Err(data);
    }
    let Data::Fetch { seq, items } = data else {
        return Err(data);
    };
    let mut rest = Vec::new();
    let mut body = None;
    let mut origin = None;
    for item in items.into_inner() {
        match item {
            MessageDataItem::BodyExt {
                section: None,
                data,
                origin: at,
            } => {
                body = data.0.map(|s| s.into_inner().into_owned());
                origin = at;
            }
            other => rest.push(other),
        }
    }
    let Ok(items) = Vec1::try_from(rest) else {
        return Ok(None);
    };
    let Some(fetched) = messages::parse_fetch(&Data::Fetch { seq, items }) else {
        return Ok(None);
    };
    Ok(Some(BodyReply {
        uid: fetched.uid,
        origin,
        data: body,
        flags: fetched.flags.map(|f| f.0),
        date: fetched.date,
    }))
}

fn header_fields(names: &[&str]) -> Option<MessageDataItemName<'static>> {
    let fields: Vec<_> = names
        .iter()
        .filter_map(|n| imap_next::imap_types::core::AString::try_from(n.to_string()).ok())
        .collect();
    let fields = imap_next::imap_types::core::Vec1::try_from(fields).ok()?;
    Some(MessageDataItemName::BodyExt {
        section: Some(Section::HeaderFields(None, fields)),
        partial: None,
        peek: true,
    })
}

/// A part of the load: a UID set with its item list.
struct LoadPart {
    set: String,
    sizes: bool,
    tuids: bool,
    ids: bool,
}

impl Store for ImapStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn supported_flags(&self) -> Flags {
        match &self.selected {
            Some(s) if !s.forwarded_ok => Flags::ALL.minus(Flags::PASSED),
            _ => Flags::ALL,
        }
    }

    fn crlf(&self) -> bool {
        true
    }

    fn selective_expunge(&self) -> bool {
        match (&self.connection, &self.seeded_capabilities) {
            (Some(c), _) => c.has("UIDPLUS"),
            (None, Some(seeded)) => seeded.iter().any(|c| c == "UIDPLUS"),
            (None, None) => !self
                .account
                .disable_extensions
                .iter()
                .any(|d| d.eq_ignore_ascii_case("UIDPLUS")),
        }
    }

    fn list(&mut self, areas: ListAreas) -> StoreResult<Vec<String>> {
        self.flush_flags()?;
        self.ensure_connected()?;
        let want_inbox = areas.inbox;
        let want_path = areas.path || areas.path_if_configured;
        let prefix = self.names.prefix.clone();
        let delimiter = self.names.delimiter;
        let inbox_like = prefix.len() >= 5
            && prefix[..5].eq_ignore_ascii_case("INBOX")
            && (prefix.len() == 5 || delimiter.is_some_and(|d| prefix[5..].starts_with(d)));
        let mut patterns = Vec::new();
        if prefix.is_empty() {
            patterns.push("*".to_string());
        } else if inbox_like {
            patterns.push("INBOX*".to_string());
        } else {
            if want_inbox {
                patterns.push("INBOX*".to_string());
            }
            if want_path {
                patterns.push(format!("{prefix}*"));
            }
        }
        // The listing sent with the log-in serves if it used the same pattern.
        let ahead = self.listed_ahead.take();
        let listed = match ahead {
            Some(Ok(data)) if patterns == ["*"] => data,
            Some(Err(refusal)) if patterns == ["*"] => {
                return Err(self.command_error("LIST \"\" \"*\"", &refusal, FailureScope::Store));
            }
            _ => self.list_patterns(&patterns)?,
        };
        let mut result = Vec::new();
        for data in listed {
            let (items, delim, mailbox) = match data {
                Data::List {
                    items,
                    delimiter,
                    mailbox,
                }
                | Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                } => (items, delimiter, mailbox),
                _ => continue,
            };
            if items
                .iter()
                .any(|a| a.to_string().eq_ignore_ascii_case("\\Noselect"))
            {
                continue;
            }
            if self.names.delimiter.is_none() {
                self.names.delimiter = delim.map(|d| d.inner());
            }
            let raw: Vec<u8> = match &mailbox {
                Mailbox::Inbox => b"INBOX".to_vec(),
                Mailbox::Other(other) => other.inner().as_ref().to_vec(),
            };
            match self.names.canonical_of_listed(&raw) {
                ListedName::Name(name) => result.push(name),
                ListedName::Skip(Some(warning)) => self.reporter.warning(&warning),
                ListedName::Skip(None) => {}
                ListedName::Reject(error) => {
                    if let Some(c) = self.connection.as_mut() {
                        c.broken = true;
                    }
                    return Err(StoreError::store(format!(
                        "{error} (store {}, server {})",
                        self.name,
                        self.connection
                            .as_ref()
                            .map(|c| c.name.as_str())
                            .unwrap_or("?")
                    )));
                }
            }
        }
        result.sort();
        result.dedup();
        Ok(result)
    }

    fn open_box(&mut self, name: &str) -> StoreResult<OpenOutcome> {
        self.flush_flags()?;
        // A seeded instance connects only when the mailbox cannot be opened lazily.
        if self.connection.is_some() || self.seeded_capabilities.is_none() {
            self.ensure_connected()?;
        }
        self.wanted = Some(name.to_string());
        self.selected = None;
        self.current = None;
        self.snapshot_out = None;
        self.forget_prefetched();
        self.loaded.clear();
        self.ensure_delimiter(name)?;
        let server = self.server_mailbox(name, false)?;
        let primed = match self.primed.take() {
            Some((primed_name, snapshot)) if primed_name == name => Some(snapshot),
            _ => None,
        };
        self.new_sizes.clear();
        let status = self.statuses.remove(&server);
        let new_from = match (&primed, status) {
            (Some(snapshot), Some(status))
                if status.uid_validity == snapshot.uid_validity
                    && status.uid_next > snapshot.uid_next =>
            {
                Some(snapshot.uid_next)
            }
            _ => None,
        };
        if let (Some(snapshot), Some(status)) = (&primed, status)
            && self.has("CONDSTORE")
            && snapshot.unchanged_per(&status)
        {
            if let Some(c) = self.connection.as_mut() {
                c.reset_mailbox_state();
                c.exists = status.messages;
                c.recent = status.recent;
            }
            self.selected = Some(Selected {
                server,
                uid_next: status.uid_next,
                forwarded_ok: snapshot.forwarded_ok,
                uid_validity: status.uid_validity,
                highest_modseq: Some(status.highest_modseq),
                lazy: true,
                lazy_counts: (status.messages, status.recent),
            });
            self.current = Some(MergedListing {
                messages: snapshot.messages.clone(),
                recent: Default::default(),
            });
            self.snapshot_out = primed;
            return Ok(OpenOutcome::Opened {
                uid_validity: status.uid_validity,
            });
        }
        self.select_mailbox(name, server, primed.as_ref(), new_from)
    }

    fn create_box(&mut self) -> StoreResult<u32> {
        let Some(name) = self.wanted.clone() else {
            return Err(StoreError::mailbox("IMAP error: no mailbox to create"));
        };
        self.ensure_delimiter(&name)?;
        let server = self.server_mailbox(&name, false)?;
        self.create_mailbox(&server, FailureScope::Mailbox)?;
        match self.open_box(&name)? {
            OpenOutcome::Opened { uid_validity } => Ok(uid_validity),
            OpenOutcome::Missing => Err(StoreError::mailbox(format!(
                "IMAP error: mailbox {name} cannot be opened after creating it"
            ))),
        }
    }

    fn delete_box(&mut self) -> StoreResult<()> {
        self.flush_flags()?;
        self.ensure_selected()?;
        let server = self.selected()?.server.clone();
        let outcome = self.run_one(CommandBody::Close)?;
        self.selected = None;
        if !outcome.is_ok() {
            return Err(self.command_error("CLOSE", &outcome, FailureScope::Mailbox));
        }
        let Ok(delete) = CommandBody::delete(server.clone()) else {
            return Err(StoreError::mailbox(format!(
                "IMAP error: bad mailbox name {server}"
            )));
        };
        let outcome = self.run_one(delete)?;
        if !outcome.is_ok() {
            return Err(self.command_error(
                &format!("DELETE \"{server}\""),
                &outcome,
                FailureScope::Mailbox,
            ));
        }
        Ok(())
    }

    fn is_empty(&mut self) -> StoreResult<bool> {
        self.selected()?;
        Ok(self.counts().0 == 0)
    }

    fn load(&mut self, request: &LoadRequest) -> StoreResult<Loaded> {
        self.flush_flags()?;
        let uid_next = self.selected()?.uid_next;
        let (exists, recent) = self.counts();
        let mut loaded = Loaded {
            messages: Vec::new(),
            total: exists,
            recent,
        };
        // The listing learnt at SELECT serves the first load only: a later load (the rescan
        // after copies) must see what this run stored, so it lists the server again.
        if let Some(current) = self.current.take() {
            return self.load_from_listing(request, &current, loaded);
        }
        if self.selected.as_ref().is_some_and(|s| s.lazy) {
            self.ensure_selected()?;
            return self.load(request);
        }
        if exists == 0 {
            self.capture_listing(request, BTreeMap::new());
            return Ok(loaded);
        }
        // UIDNEXT from SELECT is stale once messages were appended in this session (a server
        // without UIDPLUS reports no UIDs, and the rescan must see the new messages), so an
        // open-ended range stays open-ended.
        let top = uid_next.saturating_sub(1);
        let mut parts: Vec<LoadPart> = Vec::new();
        if let Some((lo, hi)) = request.range {
            let lo = u64::from(lo.max(1));
            let hi = if hi == u32::MAX {
                u64::from(hi)
            } else {
                u64::from(hi.min(top))
            };
            if lo <= hi {
                // Split points: where sizes, TUIDs and Message-IDs start or stop applying.
                let mut cuts = vec![lo, hi + 1];
                for cut in [
                    request.sizes_from.map(u64::from),
                    request.tuids_from.map(u64::from),
                    request.message_ids_upto.map(|u| u64::from(u) + 1),
                ]
                .into_iter()
                .flatten()
                {
                    if cut > lo && cut <= hi {
                        cuts.push(cut);
                    }
                }
                cuts.sort_unstable();
                cuts.dedup();
                for pair in cuts.windows(2) {
                    let (start, end) = (pair[0], pair[1] - 1);
                    let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) else {
                        continue;
                    };
                    parts.push(LoadPart {
                        set: format!("{start}:{end}"),
                        sizes: request.sizes_from.is_some_and(|s| start >= s),
                        tuids: request.tuids_from.is_some_and(|t| start >= t),
                        ids: request.message_ids_upto.is_some_and(|m| end <= m),
                    });
                }
            }
        }
        let outside: Vec<u32> = request
            .exceptions
            .iter()
            .copied()
            .filter(|u| request.range.is_none_or(|(lo, hi)| *u < lo || *u > hi))
            .collect();
        for set in uid_sets(&outside) {
            parts.push(LoadPart {
                set,
                sizes: false,
                tuids: false,
                ids: request.message_ids_upto.is_some(),
            });
        }
        let mut commands = Vec::new();
        for part in &parts {
            let mut items = vec![MessageDataItemName::Uid, MessageDataItemName::Flags];
            if part.sizes {
                items.push(MessageDataItemName::Rfc822Size);
            }
            let fields: Vec<&str> = [(part.tuids, "X-TUID"), (part.ids, "MESSAGE-ID")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| *f)
                .collect();
            if !fields.is_empty()
                && let Some(item) = header_fields(&fields)
            {
                items.push(item);
            }
            commands.push(fetch_command(&part.set, items)?);
        }
        let in_request = |uid: u32| {
            request.range.is_some_and(|(lo, hi)| uid >= lo && uid <= hi)
                || request.exceptions.contains(&uid)
        };
        let mut collected = CollectedMessages::default();
        let mut listing: BTreeMap<u32, Flags> = BTreeMap::new();
        let mut warnings = Vec::new();
        // Each reply is taken in as it arrives: a big mailbox's listing is never held whole.
        let mut take_in = |data: Data<'static>| {
            let Some(fetched) = messages::parse_fetch(&data) else {
                return;
            };
            if let Some((flags, _)) = fetched.flags {
                listing.insert(fetched.uid, flags);
            }
            if !in_request(fetched.uid) || fetched.flags.is_none() {
                return;
            }
            warnings.extend(fetched.warnings.iter().cloned());
            let uid = fetched.uid;
            let info = collected.entry(uid);
            let (flags, recent) = fetched.flags.unwrap_or_default();
            info.recent = recent;
            if request.flags {
                info.flags = flags;
            }
            // An unsolicited FETCH (a flag change by another client) carries no size.
            if request.sizes_from.is_some_and(|s| uid >= s)
                && let Some(size) = fetched.size
            {
                info.size = size;
            }
            if let Some(header) = &fetched.header {
                if request.tuids_from.is_some_and(|t| uid >= t) {
                    match messages::header_tuid(header) {
                        Ok(tuid) => info.tuid = tuid,
                        Err(()) => warnings
                            .push(format!("IMAP warning: malformed X-TUID header (UID {uid})")),
                    }
                }
                if request.message_ids_upto.is_some_and(|m| uid <= m) {
                    info.message_id = messages::header_value(header, "Message-ID");
                }
            }
        };
        self.clear_data()?;
        let outcomes = self.run_draining(commands, &mut take_in)?;
        for warning in &warnings {
            self.reporter.warning(warning);
        }
        self.check_all(&outcomes, FailureScope::Mailbox, |i| {
            let part = &parts[i];
            format!("UID FETCH {} (…)", part.set)
        })?;
        let messages = collected.into_sorted();
        self.loaded = messages.iter().map(|m| m.uid).collect();
        loaded.messages = messages;
        if let Some(c) = self.connection.as_ref() {
            loaded.total = c.exists;
        }
        self.capture_listing(request, listing);
        Ok(loaded)
    }

    fn uid_next_hint(&mut self) -> StoreResult<u32> {
        Ok(self.selected()?.uid_next)
    }

    fn fetch(&mut self, uid: u32) -> StoreResult<Option<FetchedMessage>> {
        self.flush_flags()?;
        self.ensure_selected()?;
        self.selected()?;
        if let Some(message) = self.fetch_read_ahead(uid)? {
            return Ok(message);
        }
        self.spools.remove(&uid);
        self.fetch_alone(uid)
    }

    /// Announces the messages to read ahead; their sizes are learned a chunk at a time and
    /// FETCHes of up to [`READ_AHEAD_MESSAGES`] messages are kept in flight while the bytes
    /// they announce plus those buffered stay within BufferLimit, so the connection streams
    /// while the caller writes. A message larger than BufferLimit is read alone.
    fn prefetch(&mut self, uids: &[u32]) -> StoreResult<()> {
        self.flush_flags()?;
        self.ensure_selected()?;
        self.selected()?;
        self.read_ahead.clear();
        self.not_sized.clear();
        let mut seen = std::collections::HashSet::new();
        if let Some(round) = self.size_round.as_mut() {
            // A round in flight still brings the sizes of those announced again; the others
            // do not join the read-ahead (their answers are still taken in).
            let announced: HashSet<u32> = uids.iter().copied().collect();
            round.chunk.retain(|uid| announced.contains(uid));
        }
        for uid in uids {
            if seen.insert(*uid)
                && !self.prefetched.contains_key(uid)
                && !self.on_its_way(*uid)
                && !self.sizing(*uid)
            {
                self.not_sized.push_back(*uid);
            }
        }
        // New messages whose sizes came with the SELECT need no size round.
        if self
            .not_sized
            .iter()
            .all(|uid| self.new_sizes.contains_key(uid))
        {
            let sizes = &self.new_sizes;
            self.read_ahead.extend(
                self.not_sized
                    .drain(..)
                    .filter_map(|uid| sizes.get(&uid).map(|size| (uid, *size))),
            );
        }
        self.top_up_read_ahead(false)
    }

    fn store_queued(&mut self, message: NewMessage<'_>) -> StoreResult<StoreTicket> {
        self.flush_flags()?;
        self.ensure_selected()?;
        let server = self.selected()?.server.clone();
        if let MessageData::Stream(source) = message.data {
            let tag = self.append_streamed(&server, &message, source)?;
            let ticket = self.next_ticket;
            self.next_ticket += 1;
            self.queued_appends.push(QueuedAppend {
                ticket,
                tag,
                shown: format!("APPEND \"{server}\" {{{}}}", message.data.len()),
            });
            return Ok(StoreTicket::Queued(ticket));
        }
        let command = self.append_command(&server, &message, false)?;
        self.wait_for_pipeline_room()?;
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::store("IMAP error: no connection"));
        };
        let tag = connection.submit(command)?;
        self.send_submitted()?;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queued_appends.push(QueuedAppend {
            ticket,
            tag,
            shown: format!("APPEND \"{server}\" {{{}}}", message.data.len()),
        });
        Ok(StoreTicket::Queued(ticket))
    }

    fn finish_stores(&mut self) -> StoreResult<Vec<QueuedOutcome>> {
        let queued = std::mem::take(&mut self.queued_appends);
        let mut outcomes = Vec::with_capacity(queued.len());
        for append in queued {
            let Some(connection) = self.connection.as_mut() else {
                return Err(StoreError::store("IMAP error: no connection"));
            };
            let waited = self.runtime.block_on(connection.wait_for(&append.tag));
            let outcome = self.after_io(waited)?;
            if !outcome.is_ok() {
                let error = self.command_error(&append.shown, &outcome, FailureScope::Message);
                // The engine says only that the store refused the message: the server's
                // reason is shown here.
                self.reporter.warning(&error.message);
                outcomes.push((append.ticket, Err(error)));
                continue;
            }
            let uid = match outcome.code {
                Some(Code::AppendUid { uid, .. }) => Some(uid.get()),
                _ => None,
            };
            if let (Some(uid), Some(selected)) = (uid, self.selected.as_mut()) {
                selected.uid_next = selected.uid_next.max(uid.saturating_add(1));
            }
            let uid = if self.options.withhold_uids {
                None
            } else {
                uid
            };
            outcomes.push((append.ticket, Ok(uid)));
        }
        Ok(outcomes)
    }

    fn store(&mut self, message: NewMessage<'_>) -> StoreResult<Option<u32>> {
        self.flush_flags()?;
        self.ensure_selected()?;
        let server = self.selected()?.server.clone();
        let outcome = self.append_now(&server, &message, false)?;
        if !outcome.is_ok() {
            let error = self.command_error(
                &format!("APPEND \"{server}\" {{{}}}", message.data.len()),
                &outcome,
                FailureScope::Message,
            );
            // The engine says only that the store refused the message: the server's reason
            // is shown here.
            self.reporter.warning(&error.message);
            return Err(error);
        }
        let uid = match outcome.code {
            Some(Code::AppendUid { uid, .. }) => Some(uid.get()),
            _ => None,
        };
        if let (Some(uid), Some(selected)) = (uid, self.selected.as_mut()) {
            selected.uid_next = selected.uid_next.max(uid.saturating_add(1));
        }
        if self.options.withhold_uids {
            return Ok(None);
        }
        Ok(uid)
    }

    fn store_to_trash(&mut self, message: NewMessage<'_>) -> StoreResult<()> {
        self.flush_flags()?;
        let trash = self.trash_server_name()?;
        let sync = !self.trash_known;
        let outcome = match message.data {
            MessageData::Bytes(_) => {
                let command = self.append_command(&trash, &message, sync)?;
                self.run_to_trash(&|| Some(command.clone()), &format!("APPEND \"{trash}\""))?
            }
            MessageData::Stream(_) => {
                let mut outcome = self.append_now(&trash, &message, true)?;
                if outcome.kind == StatusKind::No && matches!(outcome.code, Some(Code::TryCreate)) {
                    self.create_trash()?;
                    outcome = self.append_now(&trash, &message, true)?;
                }
                if outcome.is_ok() {
                    self.trash_known = true;
                }
                outcome
            }
        };
        if !outcome.is_ok() {
            return Err(self.command_error(
                &format!("APPEND \"{trash}\" {{{}}}", message.data.len()),
                &outcome,
                FailureScope::Message,
            ));
        }
        Ok(())
    }

    /// Sends the queued flag changes (the server commits each message itself), so that the
    /// engine may journal them.
    fn flush(&mut self) -> StoreResult<()> {
        self.flush_flags()
    }

    fn set_spool_dir(&mut self, dir: &Path) {
        self.spool_dir = dir.to_path_buf();
    }

    fn set_flags(&mut self, uid: u32, add: Flags, remove: Flags) -> StoreResult<bool> {
        self.selected()?;
        let gone = self
            .connection
            .as_ref()
            .is_some_and(|c| c.expunged.contains(&uid));
        if gone {
            return Ok(false);
        }
        if !add.is_empty() || !remove.is_empty() {
            // A later change to the same message wins over an earlier one.
            let entry = self
                .pending_flags
                .entry(uid)
                .or_insert((Flags::EMPTY, Flags::EMPTY));
            *entry = (entry.0.minus(remove) | add, entry.1.minus(add) | remove);
            // Sent at once: the caller takes the change as made when this returns, so a
            // refusal must be seen here (`set_flags_queued` is the batched way).
            if let Some((_, refusal)) = self.send_flags()?.into_iter().next() {
                return Err(refusal);
            }
        }
        Ok(true)
    }

    /// Queues the change; the queued changes go out together, grouped by change, at
    /// `finish_flag_changes` (or before any other command, reported as warnings then).
    fn set_flags_queued(
        &mut self,
        uid: u32,
        add: Flags,
        remove: Flags,
    ) -> StoreResult<FlagsTicket> {
        self.selected()?;
        let gone = self
            .connection
            .as_ref()
            .is_some_and(|c| c.expunged.contains(&uid));
        if gone {
            return Ok(FlagsTicket::Done(false));
        }
        if add.is_empty() && remove.is_empty() {
            return Ok(FlagsTicket::Done(true));
        }
        // A later change to the same message wins over an earlier one.
        let entry = self
            .pending_flags
            .entry(uid)
            .or_insert((Flags::EMPTY, Flags::EMPTY));
        *entry = (entry.0.minus(remove) | add, entry.1.minus(add) | remove);
        Ok(FlagsTicket::Queued)
    }

    /// Sends the queued flag changes (one round, however many) and returns the refused sets.
    /// A refusal that broke the connection (BAD) fails the call: what the rest became is
    /// then unknown to the caller, who retries it all in a later run.
    fn finish_flag_changes(&mut self) -> StoreResult<Vec<RefusedFlags>> {
        let refused = self.send_flags()?;
        let broken = self.connection.as_ref().is_some_and(|c| c.broken);
        if broken && let Some((_, error)) = refused.first() {
            return Err(error.clone());
        }
        Ok(refused)
    }

    fn trash(&mut self, uid: u32) -> StoreResult<bool> {
        self.flush_flags()?;
        self.ensure_selected()?;
        self.selected()?;
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.expunged.contains(&uid))
        {
            return Ok(false);
        }
        let trash = self.trash_server_name()?;
        let use_move = self.has("MOVE");
        let utf8 = self.names.utf8;
        let make = || -> Option<CommandBody<'static>> {
            let sequence_set = SequenceSet::from_str(&uid.to_string()).ok()?;
            let mailbox = mailbox_arg(&trash, utf8).ok()?;
            Some(if use_move {
                CommandBody::Move {
                    sequence_set,
                    mailbox,
                    uid: true,
                }
            } else {
                CommandBody::Copy {
                    sequence_set,
                    mailbox,
                    uid: true,
                }
            })
        };
        let shown = format!(
            "UID {} {uid} \"{trash}\"",
            if use_move { "MOVE" } else { "COPY" }
        );
        let outcome = self.run_to_trash(&make, &shown)?;
        if !outcome.is_ok() {
            return Err(self.command_error(&shown, &outcome, FailureScope::Message));
        }
        // A UID COPY/MOVE of a vanished message succeeds without copying anything: MOVE
        // reports the EXPUNGE of the original, COPY with UIDPLUS a COPYUID code.
        let copied = if use_move {
            self.connection
                .as_ref()
                .is_some_and(|c| c.expunged.contains(&uid))
        } else {
            matches!(outcome.code, Some(Code::CopyUid { .. })) || !self.has("UIDPLUS")
        };
        Ok(copied)
    }

    fn expunge(&mut self, uids: &[u32]) -> StoreResult<Vec<u32>> {
        self.flush_flags()?;
        if self.selected.as_ref().is_some_and(|s| s.lazy) {
            // Unchanged since the snapshot and nothing done in it: an expunge of nothing
            // (or of all `\Deleted` messages when there are none) need not select it.
            let deleted = self
                .current
                .as_ref()
                .is_none_or(|c| c.messages.values().any(|f| f.contains(Flags::TRASHED)));
            let nothing = if self.selective_expunge() {
                uids.is_empty()
            } else {
                !deleted
            };
            if nothing {
                return Ok(Vec::new());
            }
        }
        self.ensure_selected()?;
        self.selected()?;
        if self.selective_expunge() {
            let present: Vec<u32> = {
                let expunged = self
                    .connection
                    .as_ref()
                    .map(|c| c.expunged.clone())
                    .unwrap_or_default();
                uids.iter()
                    .copied()
                    .filter(|u| !expunged.contains(u))
                    .collect()
            };
            let mut commands = Vec::new();
            let mut sets = Vec::new();
            for set in uid_sets(&present) {
                let Ok(sequence_set) = SequenceSet::from_str(&set) else {
                    continue;
                };
                commands.push(CommandBody::ExpungeUid { sequence_set });
                sets.push(set);
            }
            let outcomes = self.run(commands)?;
            self.check_all(&outcomes, FailureScope::Mailbox, |i| {
                let set = &sets[i];
                format!("UID EXPUNGE {set}")
            })?;
        } else {
            let outcome = self.run_one(CommandBody::Expunge)?;
            if !outcome.is_ok() {
                return Err(self.command_error("EXPUNGE", &outcome, FailureScope::Mailbox));
            }
        }
        let expunged = self
            .connection
            .as_ref()
            .map(|c| c.expunged.iter().copied().collect())
            .unwrap_or_default();
        Ok(expunged)
    }

    fn find_new(&mut self, from_uid: u32) -> StoreResult<Vec<MessageInfo>> {
        self.flush_flags()?;
        self.ensure_selected()?;
        self.selected()?;
        let outcome = self.run_one(CommandBody::Check)?;
        if !outcome.is_ok() {
            return Err(self.command_error("CHECK", &outcome, FailureScope::Mailbox));
        }
        self.clear_data()?;
        let exists = self.connection.as_ref().map(|c| c.exists).unwrap_or(0);
        let Some(highest) = self.highest_uid()? else {
            if exists > 0 {
                return Err(StoreError::mailbox(
                    "IMAP error: re-querying server for highest UID failed",
                ));
            }
            return Ok(Vec::new());
        };
        if let Some(selected) = self.selected.as_mut() {
            selected.uid_next = selected.uid_next.max(highest.saturating_add(1));
        }
        if highest < from_uid.max(1) {
            return Ok(Vec::new());
        }
        let mut items = vec![MessageDataItemName::Uid, MessageDataItemName::Flags];
        if let Some(item) = header_fields(&["X-TUID"]) {
            items.push(item);
        }
        let set = format!("{}:{highest}", from_uid.max(1));
        let outcome = self.run_one(fetch_command(&set, items)?)?;
        if !outcome.is_ok() {
            return Err(self.command_error(
                &format!("UID FETCH {set} (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-TUID)])"),
                &outcome,
                FailureScope::Mailbox,
            ));
        }
        let mut found: BTreeMap<u32, MessageInfo> = BTreeMap::new();
        for data in self.take_data() {
            let Some(fetched) = messages::parse_fetch(&data) else {
                continue;
            };
            if fetched.uid < from_uid || fetched.uid > highest {
                continue;
            }
            let (flags, recent) = fetched.flags.unwrap_or_default();
            let tuid = match fetched.header.as_deref().map(messages::header_tuid) {
                Some(Ok(tuid)) => tuid,
                Some(Err(())) => {
                    self.reporter.warning(&format!(
                        "IMAP warning: malformed X-TUID header (UID {})",
                        fetched.uid
                    ));
                    None
                }
                None => None,
            };
            found.insert(
                fetched.uid,
                MessageInfo {
                    uid: fetched.uid,
                    flags,
                    recent,
                    tuid,
                    ..MessageInfo::default()
                },
            );
        }
        Ok(found.into_values().collect())
    }

    fn close_box(&mut self) {
        if let Err(error) = self.flush_flags() {
            self.reporter.warning(&error.message);
        }
        self.forget_prefetched();
        self.selected = None;
    }
}

impl Drop for ImapStore {
    fn drop(&mut self) {
        if let Err(error) = self.flush_flags() {
            self.reporter.warning(&error.message);
        }
        if let Some(mut connection) = self.connection.take() {
            self.runtime.block_on(connection.logout());
        }
    }
}

/// Connects to `host:port` (with STARTTLS first if asked) and returns the server's
/// certificate chain as PEM, without checking it (for `mailsync get-cert`).
pub fn get_cert(host: &str, port: u16, starttls: bool) -> Result<String, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| StoreError::store(format!("Error: cannot start the I/O runtime: {e}")))?;
    runtime.block_on(session::fetch_certificates(host, port, starttls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_messages_come_out_sorted_whatever_order_the_answers_had() {
        let mut collected = CollectedMessages::default();
        for uid in [3, 5, 9, 4, 1, 9, 5, 12, 2] {
            collected.entry(uid).size += 1;
        }
        let messages = collected.into_sorted();
        let uids: Vec<u32> = messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, [1, 2, 3, 4, 5, 9, 12]);
        // A second answer for a UID updates its entry, in the vector or in the side map.
        let sizes: Vec<u64> = messages.iter().map(|m| m.size).collect();
        assert_eq!(sizes, [1, 1, 1, 1, 2, 2, 1]);
        let mut late = CollectedMessages::default();
        for uid in [7, 2, 2] {
            late.entry(uid).size += 1;
        }
        let sizes: Vec<(u32, u64)> = late.into_sorted().iter().map(|m| (m.uid, m.size)).collect();
        assert_eq!(sizes, [(2, 2), (7, 1)]);
    }

    #[test]
    fn uid_sets_merge_runs_and_split_long_lists() {
        assert_eq!(uid_sets(&[5, 6, 8, 1, 2, 3]), vec!["1:3,5:6,8".to_string()]);
        let many: Vec<u32> = (1..2000).map(|i| i * 2).collect();
        let sets = uid_sets(&many);
        assert!(sets.len() > 1);
        assert!(sets.iter().all(|s| s.len() <= MAX_SET_LEN));
        let total: usize = sets.iter().map(|s| s.split(',').count()).sum();
        assert_eq!(total, many.len());
    }
}
