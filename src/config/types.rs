//! The typed configuration: what an mbsyncrc says once parsed and validated.
//!
//! Paths are already expanded (`~`, relative to the config file's folder). Names of stores,
//! accounts, channels and groups are case-sensitive; lookups find the first definition.

use std::path::PathBuf;

/// A side of a channel. Far is index 0 (usually the server), Near index 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Far,
    Near,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Far, Side::Near];

    pub fn index(self) -> usize {
        match self {
            Side::Far => 0,
            Side::Near => 1,
        }
    }
    pub fn other(self) -> Side {
        match self {
            Side::Far => Side::Near,
            Side::Near => Side::Far,
        }
    }
    /// `far side` / `near side`, as used in messages.
    pub fn label(self) -> &'static str {
        match self {
            Side::Far => "far side",
            Side::Near => "near side",
        }
    }
    /// `F` / `N`.
    pub fn letter(self) -> char {
        match self {
            Side::Far => 'F',
            Side::Near => 'N',
        }
    }
}

/// The message-level operation types of a direction (spec config-cli-stores §2.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OpTypes {
    pub new: bool,
    pub old: bool,
    pub upgrade: bool,
    pub gone: bool,
    pub flags: bool,
}

impl OpTypes {
    /// New + Upgrade + Gone + Flags: the implicit default.
    pub const DEFAULT: OpTypes = OpTypes {
        new: true,
        old: false,
        upgrade: true,
        gone: true,
        flags: true,
    };
    /// New + Old + Upgrade + Gone + Flags: `Full` / `All` / `--full`.
    pub const FULL: OpTypes = OpTypes {
        new: true,
        old: true,
        upgrade: true,
        gone: true,
        flags: true,
    };
    pub const NONE: OpTypes = OpTypes {
        new: false,
        old: false,
        upgrade: false,
        gone: false,
        flags: false,
    };

    pub fn is_empty(&self) -> bool {
        *self == OpTypes::NONE
    }
}

/// The per-side operations of a channel after precedence was applied: `ops[Far]` is what is
/// pushed (modifies far), `ops[Near]` what is pulled (modifies near).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideOps {
    pub types: OpTypes,
    pub create: bool,
    pub remove: bool,
    pub expunge: bool,
    pub expunge_solo: bool,
}

/// A specification of the Sync types at one level (channel, global, command line), before
/// precedence. `None` = this level does not specify Sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSpec {
    /// Types modifying [far, near].
    pub types: [OpTypes; 2],
}

/// A specification of a box operation class (Create, Remove, Expunge, ExpungeSolo) at one
/// level: which sides it applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoxOpSpec {
    pub far: bool,
    pub near: bool,
}

/// Operation settings as specified at one level; `None` fields are unspecified (inherit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpSettings {
    pub sync: Option<SyncSpec>,
    pub create: Option<BoxOpSpec>,
    pub remove: Option<BoxOpSpec>,
    pub expunge: Option<BoxOpSpec>,
    pub expunge_solo: Option<BoxOpSpec>,
}

/// Maildir sub-folder layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubFolders {
    Verbatim,
    MaildirPlusPlus,
    Legacy,
}

/// Settings every store type has (spec §1.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommonStoreConfig {
    pub name: String,
    pub trash: Option<String>,
    pub trash_new_only: bool,
    pub trash_remote_new: bool,
    /// 0 = unlimited.
    pub max_size: u64,
    pub map_inbox: Option<String>,
    pub flatten: Option<String>,
}

/// A `MaildirStore` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirStoreConfig {
    pub common: CommonStoreConfig,
    /// Expanded `Path` as written (may end in `/`); `None` if unset or `~user` unknown.
    pub path: Option<String>,
    /// Expanded `Inbox` (default `$HOME/Maildir`).
    pub inbox: Option<String>,
    pub sub_folders: Option<SubFolders>,
    pub info_delimiter: char,
    /// Global `FSync`.
    pub fsync: bool,
}

/// TLS mode of an IMAP account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsType {
    None,
    StartTls,
    Imaps,
}

/// TLS protocol versions enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsVersions {
    pub v1_0: bool,
    pub v1_1: bool,
    pub v1_2: bool,
    pub v1_3: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions {
            v1_0: false,
            v1_1: false,
            v1_2: true,
            v1_3: true,
        }
    }
}

/// A command whose output supplies a value (`UserCmd`, `PassCmd`); `plus` = the `+` prefix
/// (run interactively).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialCommand {
    pub command: String,
    pub plus: bool,
}

/// An `IMAPAccount` section, or the implicit account of an `IMAPStore`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapAccountConfig {
    pub name: String,
    pub host: Option<String>,
    /// `None` = 993 for IMAPS, else 143.
    pub port: Option<u16>,
    pub tunnel: Option<String>,
    /// Seconds; 0 disables.
    pub timeout: u32,
    pub user: Option<String>,
    pub user_cmd: Option<CredentialCommand>,
    /// mailsync extension: first line of a file.
    pub user_file: Option<PathBuf>,
    pub pass: Option<String>,
    pub pass_cmd: Option<CredentialCommand>,
    /// mailsync extension: first line of a file.
    pub pass_file: Option<PathBuf>,
    pub use_keychain: bool,
    pub tls_type: TlsType,
    pub tls_versions: TlsVersions,
    pub system_certificates: bool,
    pub certificate_file: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub cipher_string: Option<String>,
    /// Upper-cased mechanism names; empty = `*` (any).
    pub auth_mechs: Vec<String>,
    /// `None` = unlimited.
    pub pipeline_depth: Option<u32>,
    /// `MaxConnections` (mailsync extension): most connections open to this account's
    /// server at once, one per mailbox pair synchronized concurrently (1 = one pair after
    /// the other); default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// Upper-cased capability names.
    pub disable_extensions: Vec<String>,
}

/// The default `MaxConnections`: few enough for every public server (Gmail allows 15 per
/// account, Dovecot 10 per user and address by default), enough to hide round trips.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// The largest `MaxConnections` accepted.
pub const MAX_CONNECTIONS_LIMIT: u32 = 64;

/// An `IMAPStore` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapStoreConfig {
    pub common: CommonStoreConfig,
    /// Name of the account (an `IMAPAccount`, or the store's own implicit one).
    pub account: String,
    pub path: Option<String>,
    pub path_delimiter: Option<char>,
    pub use_namespace: bool,
    pub subscribed_only: bool,
    /// The store's own account when it has no `Account` line (then `account` is the store's
    /// name); use [`ImapStoreConfig::account_config`] to find the account either way.
    pub implicit_account: Option<Box<ImapAccountConfig>>,
}

impl ImapStoreConfig {
    /// The account this store logs in with: its implicit account, else the first
    /// `IMAPAccount` named by `Account`.
    pub fn account_config<'a>(&'a self, config: &'a Config) -> Option<&'a ImapAccountConfig> {
        self.implicit_account
            .as_deref()
            .or_else(|| config.account(&self.account))
    }
}

/// A store definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    Maildir(MaildirStoreConfig),
    Imap(ImapStoreConfig),
}

impl StoreConfig {
    pub fn common(&self) -> &CommonStoreConfig {
        match self {
            StoreConfig::Maildir(m) => &m.common,
            StoreConfig::Imap(i) => &i.common,
        }
    }
    pub fn name(&self) -> &str {
        &self.common().name
    }
}

/// A channel side: `:store:mailbox` (the mailbox is a prefix when Patterns are used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSide {
    pub store: String,
    pub mailbox: String,
}

/// Three-valued `ExpireUnread`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpireUnread {
    #[default]
    Unset,
    No,
    Yes,
}

/// Where the sync state lives (spec §2.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncStateLocation {
    /// `*`: in the near Maildir box.
    InBox,
    /// A path prefix (expanded).
    Prefix(String),
}

/// A `Channel` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    pub name: String,
    /// Far side, then near side.
    pub sides: [ChannelSide; 2],
    pub patterns: Vec<String>,
    /// What the channel section itself specified.
    pub ops: OpSettings,
    pub copy_arrival_date: bool,
    /// `MaxDeletePercent` (mailsync extension, default [`DEFAULT_MAX_DELETE_PERCENT`]): a
    /// side that lost more than this share of the messages the state knows, while the other
    /// side still has them, gets no deletions propagated (100 switches the guard off).
    pub max_delete_percent: u8,
    pub max_messages: u32,
    pub expire_side: Side,
    pub expire_unread: ExpireUnread,
    /// The channel's own SyncState, if any.
    pub sync_state: Option<SyncStateLocation>,
    /// Line of the `Channel` keyword, for messages.
    pub line: usize,
}

/// The default of `MaxDeletePercent`.
pub const DEFAULT_MAX_DELETE_PERCENT: u8 = 50;

/// A channel reference with an optional box list (`chan:box1,box2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRef {
    pub channel: String,
    /// `None` = use the channel's Patterns; `Some` = these boxes (`""` means INBOX).
    pub boxes: Option<Vec<String>>,
}

/// A `Group` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    pub members: Vec<ChannelRef>,
}

/// A whole configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file name as opened (used in messages).
    pub file: String,
    pub fsync: bool,
    pub field_delimiter: char,
    pub buffer_limit: u64,
    /// Global operation settings.
    pub ops: OpSettings,
    /// Global SyncState (after defaulting: the XDG or legacy directory, with trailing `/`).
    pub sync_state: SyncStateLocation,
    pub accounts: Vec<ImapAccountConfig>,
    pub stores: Vec<StoreConfig>,
    pub channels: Vec<ChannelConfig>,
    pub groups: Vec<GroupConfig>,
}

impl Config {
    pub fn store(&self, name: &str) -> Option<&StoreConfig> {
        self.stores.iter().find(|s| s.name() == name)
    }
    pub fn account(&self, name: &str) -> Option<&ImapAccountConfig> {
        self.accounts.iter().find(|a| a.name == name)
    }
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name == name)
    }
    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.name == name)
    }
}
