//! Reading the sections and keywords of an mbsyncrc (spec config-cli-stores §1.3–§1.11) into
//! a [`Config`], collecting every error of the file with its `FILE:LINE:` and the
//! deprecation notices.

use super::lexer::{Line, split_line};
use super::location::{Environment, base_dir_of, default_sync_state, expand_local_path};
use super::ops::{BoxOpTokens, Deprecated, OpTokens, OpsLocation};
use super::patterns::parse_channel_ref;
use super::types::*;

/// What parsing a file produced: the configuration (only meaningful without errors), the
/// error lines and the notice lines, in the order they arose.
pub struct ParseOutcome {
    pub config: Config,
    pub errors: Vec<String>,
    pub notices: Vec<String>,
}

const BOOL_HINT: &str = " (expected yes/no/true/false/on/off/1/0)";

/// IMAP capabilities `DisableExtension` knows.
const KNOWN_EXTENSIONS: [&str; 12] = [
    "IMAP4REV1",
    "LOGINDISABLED",
    "SASL-IR",
    "STARTTLS",
    "UIDPLUS",
    "LITERAL+",
    "LITERAL-",
    "MOVE",
    "NAMESPACE",
    "UTF8=ACCEPT",
    "UTF8=ONLY",
    "COMPRESS=DEFLATE",
];

struct MaildirBuilder {
    store: MaildirStoreConfig,
    inbox_set: bool,
}

struct AccountBuilder {
    account: ImapAccountConfig,
    tls_type: Option<TlsType>,
    require_cram: Option<bool>,
    auth_mechs_given: bool,
    /// Some account keyword was used (for stores: conflicts with `Account`).
    any_keyword: bool,
}

impl AccountBuilder {
    fn new(name: &str) -> AccountBuilder {
        AccountBuilder {
            account: ImapAccountConfig {
                name: name.to_string(),
                host: None,
                port: None,
                tunnel: None,
                timeout: 20,
                user: None,
                user_cmd: None,
                user_file: None,
                pass: None,
                pass_cmd: None,
                pass_file: None,
                use_keychain: false,
                tls_type: TlsType::StartTls,
                tls_versions: TlsVersions::default(),
                system_certificates: true,
                certificate_file: None,
                client_certificate: None,
                client_key: None,
                cipher_string: None,
                auth_mechs: Vec::new(),
                pipeline_depth: None,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                disable_extensions: Vec::new(),
            },
            tls_type: None,
            require_cram: None,
            auth_mechs_given: false,
            any_keyword: false,
        }
    }
}

struct ImapStoreBuilder {
    store: ImapStoreConfig,
    account_ref: Option<String>,
    own: AccountBuilder,
}

struct ChannelBuilder {
    channel: ChannelConfig,
    far: Option<ChannelSide>,
    near: Option<ChannelSide>,
    ops: OpTokens,
    max_size: Option<u64>,
}

enum Section {
    None,
    /// An unknown block: skipped up to the next blank line.
    Skipping,
    Maildir(Box<MaildirBuilder>),
    Account(Box<AccountBuilder>),
    ImapStore(Box<ImapStoreBuilder>),
    Channel(Box<ChannelBuilder>),
    Group(GroupConfig),
}

/// Channel options that globals provide defaults for when a `Channel` line is read.
struct ChannelDefaults {
    max_messages: u32,
    expire_side: Side,
    expire_unread: ExpireUnread,
    copy_arrival_date: bool,
    /// `MaxDeletePercent` (mailsync extension).
    max_delete_percent: u8,
}

struct Parser<'a> {
    file: &'a str,
    base_dir: String,
    env: &'a Environment,
    line: usize,
    errors: Vec<String>,
    notices: Vec<String>,
    config: Config,
    global_ops: OpTokens,
    global_sync_state: Option<SyncStateLocation>,
    channel_defaults: ChannelDefaults,
    seen_section: bool,
    notice_master_slave: bool,
    notice_renew: bool,
    notice_delete: bool,
    notice_ssl_type: bool,
    notice_ssl_versions: bool,
}

/// Parses the text of a config file named `file` (as opened; also the base of relative
/// paths).
pub fn parse(file: &str, text: &[u8], env: &Environment) -> ParseOutcome {
    let mut parser = Parser {
        file,
        base_dir: base_dir_of(file),
        env,
        line: 0,
        errors: Vec::new(),
        notices: Vec::new(),
        config: Config {
            file: file.to_string(),
            fsync: true,
            field_delimiter: ':',
            buffer_limit: 10 * 1024 * 1024,
            ops: OpSettings::default(),
            sync_state: SyncStateLocation::InBox,
            accounts: Vec::new(),
            stores: Vec::new(),
            channels: Vec::new(),
            groups: Vec::new(),
        },
        global_ops: OpTokens::default(),
        global_sync_state: None,
        channel_defaults: ChannelDefaults {
            max_messages: 0,
            expire_side: Side::Near,
            expire_unread: ExpireUnread::Unset,
            copy_arrival_date: false,
            max_delete_percent: DEFAULT_MAX_DELETE_PERCENT,
        },
        seen_section: false,
        notice_master_slave: false,
        notice_renew: false,
        notice_delete: false,
        notice_ssl_type: false,
        notice_ssl_versions: false,
    };
    parser.run(text);
    ParseOutcome {
        config: parser.config,
        errors: parser.errors,
        notices: parser.notices,
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_int(value: &str) -> Option<i64> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value
        .parse::<i64>()
        .ok()
        .filter(|v| i32::try_from(*v).is_ok())
}

fn parse_size(value: &str) -> Option<u64> {
    let digits_end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    if digits_end == 0 {
        return None;
    }
    let number: u64 = value[..digits_end].parse().ok()?;
    let mut rest = &value[digits_end..];
    let mut factor = 1u64;
    if let Some(first) = rest.chars().next() {
        match first {
            'k' | 'K' => factor = 1024,
            'm' | 'M' => factor = 1024 * 1024,
            _ => {}
        }
        if factor != 1 {
            rest = &rest[1..];
        }
    }
    if let Some(stripped) = rest.strip_prefix(['b', 'B']) {
        rest = stripped;
    }
    if !rest.is_empty() {
        return None;
    }
    number.checked_mul(factor)
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
}

fn single_char(value: &str) -> Option<char> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn describe_os_error(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(index) => text[..index].to_string(),
        None => text,
    }
}

impl Parser<'_> {
    fn error(&mut self, message: impl std::fmt::Display) {
        self.errors
            .push(format!("{}:{}: {message}", self.file, self.line));
    }

    /// The single value of a keyword; further tokens are reported.
    fn one<'t>(&mut self, args: &'t [String]) -> &'t str {
        if let Some(extra) = args.get(1) {
            self.error(format!("excess token '{extra}'"));
        }
        &args[0]
    }

    fn bool_value(&mut self, args: &[String]) -> bool {
        let value = self.one(args);
        match parse_bool(value) {
            Some(b) => b,
            None => {
                self.error(format!("invalid boolean value '{value}'{BOOL_HINT}"));
                false
            }
        }
    }

    fn int_value(&mut self, args: &[String]) -> Option<i64> {
        let value = self.one(args);
        let parsed = parse_int(value);
        if parsed.is_none() {
            self.error(format!(
                "invalid integer value '{value}' (expected a decimal number)"
            ));
        }
        parsed
    }

    fn size_value(&mut self, args: &[String]) -> Option<u64> {
        let value = self.one(args);
        let parsed = parse_size(value);
        if parsed.is_none() {
            self.error(format!(
                "invalid size '{value}' (expected a number with optional k/m suffix, e.g. 10M)"
            ));
        }
        parsed
    }

    fn local_path(&self, value: &str) -> Option<String> {
        expand_local_path(value, &self.base_dir, &self.env.home)
    }

    fn sync_state_value(&mut self, args: &[String]) -> Option<SyncStateLocation> {
        let value = self.one(args);
        if value == "*" {
            Some(SyncStateLocation::InBox)
        } else {
            self.local_path(value).map(SyncStateLocation::Prefix)
        }
    }

    fn deprecated(&mut self, which: Option<Deprecated>) {
        match which {
            Some(Deprecated::MasterSlave) => self.notice_master_slave = true,
            Some(Deprecated::ReNew) => self.notice_renew = true,
            Some(Deprecated::Delete) => self.notice_delete = true,
            None => {}
        }
    }

    fn run(&mut self, text: &[u8]) {
        let mut section = Section::None;
        let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        if text.ends_with(b"\n") {
            lines.pop();
        }
        for (index, raw) in lines.iter().enumerate() {
            self.line = index + 1;
            let tokens = match split_line(raw) {
                Ok(Line::Blank) => {
                    self.finish_section(std::mem::replace(&mut section, Section::None));
                    continue;
                }
                Ok(Line::Comment) => continue,
                Ok(Line::Tokens(tokens)) => tokens,
                Err(error) => {
                    self.error(error.0);
                    continue;
                }
            };
            let keyword = tokens[0].as_str();
            let args = &tokens[1..];
            if args.is_empty() {
                self.error("parameter missing");
                continue;
            }
            let lower = keyword.to_ascii_lowercase();
            match &mut section {
                Section::Skipping => {}
                Section::None => {
                    if let Some(started) = self.start_section(&lower, args) {
                        self.seen_section = true;
                        section = started;
                    } else if self.global_keyword(&lower, args) {
                        if self.seen_section {
                            self.error("global options may not follow sections");
                        }
                    } else {
                        self.error(format!(
                            "'{keyword}' is not a recognized section-starting or global keyword"
                        ));
                        section = Section::Skipping;
                    }
                }
                Section::Maildir(builder) => {
                    if !self.maildir_keyword(builder, &lower, args) {
                        self.error(format!(
                            "keyword '{keyword}' is not recognized in MaildirStore sections"
                        ));
                    }
                }
                Section::Account(builder) => {
                    if !self.account_keyword(builder, &lower, args) {
                        self.error(format!(
                            "keyword '{keyword}' is not recognized in IMAPAccount sections"
                        ));
                    }
                }
                Section::ImapStore(builder) => {
                    if !self.imap_store_keyword(builder, &lower, args) {
                        self.error(format!(
                            "keyword '{keyword}' is not recognized in IMAPStore sections"
                        ));
                    }
                }
                Section::Channel(builder) => {
                    if !self.channel_keyword(builder, &lower, args) {
                        self.error(format!(
                            "keyword '{keyword}' is not recognized in Channel sections"
                        ));
                    }
                }
                Section::Group(group) => {
                    if lower == "channel" || lower == "channels" {
                        group
                            .members
                            .extend(args.iter().map(|a| parse_channel_ref(a)));
                    } else {
                        self.error(format!(
                            "keyword '{keyword}' is not recognized in Group sections"
                        ));
                    }
                }
            }
        }
        self.finish_section(section);
        self.finish_file();
    }

    fn start_section(&mut self, keyword: &str, args: &[String]) -> Option<Section> {
        let section = match keyword {
            "maildirstore" => {
                let name = self.one(args).to_string();
                Section::Maildir(Box::new(MaildirBuilder {
                    store: MaildirStoreConfig {
                        common: CommonStoreConfig {
                            name,
                            ..Default::default()
                        },
                        path: None,
                        inbox: None,
                        sub_folders: None,
                        info_delimiter: self.config.field_delimiter,
                        fsync: true,
                    },
                    inbox_set: false,
                }))
            }
            "imapaccount" => {
                let name = self.one(args);
                Section::Account(Box::new(AccountBuilder::new(name)))
            }
            "imapstore" => {
                let name = self.one(args).to_string();
                Section::ImapStore(Box::new(ImapStoreBuilder {
                    own: AccountBuilder::new(&name),
                    store: ImapStoreConfig {
                        common: CommonStoreConfig {
                            name: name.clone(),
                            ..Default::default()
                        },
                        account: name,
                        path: None,
                        path_delimiter: None,
                        use_namespace: true,
                        subscribed_only: false,
                        implicit_account: None,
                    },
                    account_ref: None,
                }))
            }
            "channel" => {
                let name = self.one(args).to_string();
                let defaults = &self.channel_defaults;
                Section::Channel(Box::new(ChannelBuilder {
                    channel: ChannelConfig {
                        name,
                        sides: [
                            ChannelSide {
                                store: String::new(),
                                mailbox: String::new(),
                            },
                            ChannelSide {
                                store: String::new(),
                                mailbox: String::new(),
                            },
                        ],
                        patterns: Vec::new(),
                        ops: OpSettings::default(),
                        copy_arrival_date: defaults.copy_arrival_date,
                        max_delete_percent: defaults.max_delete_percent,
                        max_messages: defaults.max_messages,
                        expire_side: defaults.expire_side,
                        expire_unread: defaults.expire_unread,
                        sync_state: None,
                        line: self.line,
                    },
                    far: None,
                    near: None,
                    ops: OpTokens::default(),
                    max_size: None,
                }))
            }
            "group" => Section::Group(GroupConfig {
                name: args[0].clone(),
                members: args[1..].iter().map(|a| parse_channel_ref(a)).collect(),
            }),
            _ => return None,
        };
        Some(section)
    }

    /// Op keywords shared by the global section and channels; returns false if `keyword`
    /// is none of them.
    fn ops_keyword(&mut self, ops: &mut OpTokens, keyword: &str, args: &[String]) -> bool {
        let (class, name): (&mut BoxOpTokens, &str) = match keyword {
            "sync" => {
                for arg in args {
                    let (known, deprecated) = ops.sync.add_token(arg);
                    if known {
                        self.deprecated(deprecated);
                    } else {
                        self.error(format!(
                            "invalid Sync arg '{arg}' (expected Pull, Push, New, Old, Upgrade, \
                             Gone, Flags, Full, None, or Pull/Push followed by a type)"
                        ));
                    }
                }
                return true;
            }
            "create" => (&mut ops.create, "Create"),
            "remove" => (&mut ops.remove, "Remove"),
            "expunge" => (&mut ops.expunge, "Expunge"),
            "expungesolo" => (&mut ops.expunge_solo, "ExpungeSolo"),
            _ => return false,
        };
        for arg in args {
            match class.add_word(arg) {
                Some(deprecated) => self.deprecated(deprecated),
                None => self.error(format!(
                    "invalid {name} arg '{arg}' (expected None, Far, Near or Both)"
                )),
            }
        }
        true
    }

    /// Channel options that may also be given globally as defaults.
    fn channel_default_keyword(
        &mut self,
        defaults: &mut ChannelDefaults,
        keyword: &str,
        args: &[String],
    ) -> bool {
        match keyword {
            "maxmessages" => {
                if let Some(v) = self.int_value(args) {
                    defaults.max_messages = u32::try_from(v).unwrap_or(0);
                }
            }
            "expireside" => {
                let value = self.one(args);
                match value.to_ascii_lowercase().as_str() {
                    "far" => defaults.expire_side = Side::Far,
                    "near" => defaults.expire_side = Side::Near,
                    _ => self.error(format!(
                        "invalid ExpireSide argument '{value}' (expected Far or Near)"
                    )),
                }
            }
            "expireunread" => {
                defaults.expire_unread = if self.bool_value(args) {
                    ExpireUnread::Yes
                } else {
                    ExpireUnread::No
                };
            }
            "copyarrivaldate" => defaults.copy_arrival_date = self.bool_value(args),
            // mailsync extension: the mass-deletion guard's threshold.
            "maxdeletepercent" => {
                if let Some(v) = self.int_value(args) {
                    match u8::try_from(v) {
                        Ok(percent) if percent <= 100 => defaults.max_delete_percent = percent,
                        _ => self.error(format!(
                            "invalid MaxDeletePercent value '{v}' (expected 0 to 100)"
                        )),
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn global_keyword(&mut self, keyword: &str, args: &[String]) -> bool {
        let mut ops = std::mem::take(&mut self.global_ops);
        let is_op = self.ops_keyword(&mut ops, keyword, args);
        self.global_ops = ops;
        if is_op {
            return true;
        }
        let mut defaults = std::mem::replace(
            &mut self.channel_defaults,
            ChannelDefaults {
                max_messages: 0,
                expire_side: Side::Near,
                expire_unread: ExpireUnread::Unset,
                copy_arrival_date: false,
                max_delete_percent: DEFAULT_MAX_DELETE_PERCENT,
            },
        );
        let is_default = self.channel_default_keyword(&mut defaults, keyword, args);
        self.channel_defaults = defaults;
        if is_default {
            return true;
        }
        match keyword {
            "fsync" => self.config.fsync = self.bool_value(args),
            "fielddelimiter" => {
                let value = self.one(args);
                match single_char(value) {
                    None => self.error("Field delimiter must be exactly one character long"),
                    Some(c) if !is_punctuation(c) => {
                        self.error("Field delimiter must be a punctuation character")
                    }
                    Some(c) => self.config.field_delimiter = c,
                }
            }
            "bufferlimit" => {
                if let Some(size) = self.size_value(args) {
                    if size == 0 {
                        self.error("BufferLimit cannot be zero");
                    } else {
                        self.config.buffer_limit = size;
                    }
                }
            }
            "syncstate" => self.global_sync_state = self.sync_state_value(args),
            _ => return false,
        }
        true
    }

    fn common_store_keyword(
        &mut self,
        common: &mut CommonStoreConfig,
        keyword: &str,
        args: &[String],
    ) -> bool {
        match keyword {
            "trash" => common.trash = Some(self.one(args).to_string()),
            "trashnewonly" => common.trash_new_only = self.bool_value(args),
            "trashremotenew" => common.trash_remote_new = self.bool_value(args),
            "maxsize" => {
                if let Some(size) = self.size_value(args) {
                    common.max_size = size;
                }
            }
            "mapinbox" => common.map_inbox = Some(self.one(args).to_string()),
            "flatten" => {
                let value = self.one(args);
                if value.contains('/') {
                    self.error(
                        "flattened hierarchy delimiter cannot contain the canonical delimiter '/'",
                    );
                } else {
                    common.flatten = Some(value.to_string());
                }
            }
            _ => return false,
        }
        true
    }

    fn maildir_keyword(
        &mut self,
        builder: &mut MaildirBuilder,
        keyword: &str,
        args: &[String],
    ) -> bool {
        let store = &mut builder.store;
        match keyword {
            "path" => {
                let value = self.one(args);
                store.path = self.local_path(value);
            }
            "inbox" => {
                let value = self.one(args);
                store.inbox = self.local_path(value);
                builder.inbox_set = true;
            }
            "subfolders" => {
                let value = self.one(args);
                match value.to_ascii_lowercase().as_str() {
                    "verbatim" => store.sub_folders = Some(SubFolders::Verbatim),
                    "maildir++" => store.sub_folders = Some(SubFolders::MaildirPlusPlus),
                    "legacy" => store.sub_folders = Some(SubFolders::Legacy),
                    _ => self.error(
                        "Unrecognized SubFolders style (expected Verbatim, Maildir++ or Legacy)",
                    ),
                }
            }
            "infodelimiter" => {
                let value = self.one(args);
                match single_char(value) {
                    None => self.error("Info delimiter must be exactly one character long"),
                    Some(c) if !is_punctuation(c) => {
                        self.error("Info delimiter must be a punctuation character")
                    }
                    Some(c) => store.info_delimiter = c,
                }
            }
            "altmap" => {
                if self.bool_value(args) {
                    self.errors.push(format!(
                        "Error: AltMap=true is not supported by this build ({}:{}): mailsync \
                         has no Berkeley DB support. Remove the AltMap line to use the default \
                         .uidvalidity scheme, after converting existing mailboxes with isync's \
                         'mdconvert -n'.",
                        self.file, self.line
                    ));
                }
            }
            _ => return self.common_store_keyword(&mut store.common, keyword, args),
        }
        true
    }

    fn account_keyword(
        &mut self,
        builder: &mut AccountBuilder,
        keyword: &str,
        args: &[String],
    ) -> bool {
        let account = &mut builder.account;
        match keyword {
            "host" => account.host = Some(self.one(args).to_string()),
            "port" => {
                if let Some(port) = self.int_value(args) {
                    match u16::try_from(port) {
                        Ok(port) => account.port = Some(port),
                        Err(_) => self.error("Invalid port number (expected 0 to 65535)"),
                    }
                }
            }
            "tunnel" => account.tunnel = Some(self.one(args).to_string()),
            "timeout" => {
                if let Some(seconds) = self.int_value(args) {
                    account.timeout = u32::try_from(seconds).unwrap_or(0);
                }
            }
            "user" => account.user = Some(self.one(args).to_string()),
            "pass" => account.pass = Some(self.one(args).to_string()),
            "usercmd" | "passcmd" => {
                let value = self.one(args);
                let command = match value.strip_prefix('+') {
                    Some(rest) => CredentialCommand {
                        command: rest.to_string(),
                        plus: true,
                    },
                    None => CredentialCommand {
                        command: value.to_string(),
                        plus: false,
                    },
                };
                if keyword == "usercmd" {
                    account.user_cmd = Some(command);
                } else {
                    account.pass_cmd = Some(command);
                }
            }
            "userfile" | "passfile" => {
                let value = self.one(args);
                let path = self.local_path(value).map(Into::into);
                if keyword == "userfile" {
                    account.user_file = path;
                } else {
                    account.pass_file = path;
                }
            }
            "tlstype" | "ssltype" => {
                if keyword == "ssltype" && !self.notice_ssl_type {
                    self.notice_ssl_type = true;
                    self.notices.push(format!(
                        "{}: notice: SSLType is deprecated. Use TLSType instead.",
                        self.file
                    ));
                }
                let value = self.one(args);
                match value.to_ascii_lowercase().as_str() {
                    "none" => builder.tls_type = Some(TlsType::None),
                    "starttls" => builder.tls_type = Some(TlsType::StartTls),
                    "imaps" => builder.tls_type = Some(TlsType::Imaps),
                    _ => self.error("Invalid TLS type (expected None, STARTTLS or IMAPS)"),
                }
            }
            "tlsversions" => {
                for arg in args {
                    let (enable, version) = match arg.split_at_checked(1) {
                        Some(("+", rest)) => (true, rest),
                        Some(("-", rest)) => (false, rest),
                        _ => {
                            self.error("TLSVersions arguments must start with +/-");
                            continue;
                        }
                    };
                    let versions = &mut account.tls_versions;
                    let slot = match version {
                        "1.0" => &mut versions.v1_0,
                        "1.1" => &mut versions.v1_1,
                        "1.2" => &mut versions.v1_2,
                        "1.3" => &mut versions.v1_3,
                        _ => {
                            self.error(format!(
                                "Unrecognized TLS version '{version}' (expected 1.0, 1.1, 1.2 or 1.3)"
                            ));
                            continue;
                        }
                    };
                    *slot = enable;
                }
            }
            "sslversion" | "sslversions" => {
                if !self.notice_ssl_versions {
                    self.notice_ssl_versions = true;
                    self.notices.push(format!(
                        "{}: notice: SSLVersions is deprecated. Use TLSVersions instead.",
                        self.file
                    ));
                }
                let mut versions = TlsVersions {
                    v1_0: false,
                    v1_1: false,
                    v1_2: false,
                    v1_3: false,
                };
                for arg in args {
                    match arg.to_ascii_lowercase().as_str() {
                        "sslv2" => self
                            .notices
                            .push("Warning: SSLVersion SSLv2 is no longer supported".into()),
                        "sslv3" => self
                            .notices
                            .push("Warning: SSLVersion SSLv3 is no longer supported".into()),
                        "tlsv1" => versions.v1_0 = true,
                        "tlsv1.1" => versions.v1_1 = true,
                        "tlsv1.2" => versions.v1_2 = true,
                        "tlsv1.3" => versions.v1_3 = true,
                        _ => self.error(
                            "Unrecognized SSL version (expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)",
                        ),
                    }
                }
                account.tls_versions = versions;
            }
            "systemcertificates" => account.system_certificates = self.bool_value(args),
            "certificatefile" | "clientcertificate" | "clientkey" => {
                let name = match keyword {
                    "certificatefile" => "CertificateFile",
                    "clientcertificate" => "ClientCertificate",
                    _ => "ClientKey",
                };
                let value = self.one(args);
                let path = self.local_path(value);
                if let Some(path) = &path
                    && let Err(error) = std::fs::File::open(path)
                {
                    self.error(format!("{name} '{path}': {}", describe_os_error(&error)));
                }
                let path = path.map(Into::into);
                match keyword {
                    "certificatefile" => account.certificate_file = path,
                    "clientcertificate" => account.client_certificate = path,
                    _ => account.client_key = path,
                }
            }
            "cipherstring" => account.cipher_string = Some(self.one(args).to_string()),
            "authmechs" | "authmech" => {
                builder.auth_mechs_given = true;
                let mechs: Vec<String> = args.iter().map(|a| a.to_ascii_uppercase()).collect();
                account.auth_mechs = if mechs == ["*"] { Vec::new() } else { mechs };
            }
            "pipelinedepth" => {
                if let Some(depth) = self.int_value(args) {
                    if depth < 1 {
                        self.error("PipelineDepth must be at least 1");
                    } else {
                        account.pipeline_depth = u32::try_from(depth).ok();
                    }
                }
            }
            "maxconnections" => {
                if let Some(count) = self.int_value(args) {
                    match u32::try_from(count) {
                        Ok(count @ 1..=MAX_CONNECTIONS_LIMIT) => account.max_connections = count,
                        _ => self.error(format!(
                            "MaxConnections must be between 1 and {MAX_CONNECTIONS_LIMIT}"
                        )),
                    }
                }
            }
            "disableextension" | "disableextensions" => {
                for arg in args {
                    let upper = arg.to_ascii_uppercase();
                    if KNOWN_EXTENSIONS.contains(&upper.as_str()) {
                        if !account.disable_extensions.contains(&upper) {
                            account.disable_extensions.push(upper);
                        }
                    } else {
                        self.error(format!(
                            "Unrecognized IMAP extension '{arg}' (known: {})",
                            KNOWN_EXTENSIONS.join(", ")
                        ));
                    }
                }
            }
            "requirecram" => builder.require_cram = Some(self.bool_value(args)),
            _ => return false,
        }
        builder.any_keyword = true;
        true
    }

    fn imap_store_keyword(
        &mut self,
        builder: &mut ImapStoreBuilder,
        keyword: &str,
        args: &[String],
    ) -> bool {
        let store = &mut builder.store;
        match keyword {
            "account" => {
                let name = self.one(args);
                if self.config.account(name).is_some() {
                    builder.account_ref = Some(name.to_string());
                } else {
                    self.error(format!("unknown IMAP account '{name}'"));
                }
            }
            "path" => store.path = Some(self.one(args).to_string()),
            "pathdelimiter" => {
                let value = self.one(args);
                match single_char(value) {
                    Some(c) => store.path_delimiter = Some(c),
                    None => self.error("Path delimiter must be exactly one character long"),
                }
            }
            "usenamespace" => store.use_namespace = self.bool_value(args),
            "subscribedonly" => store.subscribed_only = self.bool_value(args),
            _ => {
                return self.common_store_keyword(&mut store.common, keyword, args)
                    || self.account_keyword(&mut builder.own, keyword, args);
            }
        }
        true
    }

    fn channel_keyword(
        &mut self,
        builder: &mut ChannelBuilder,
        keyword: &str,
        args: &[String],
    ) -> bool {
        if self.ops_keyword(&mut builder.ops, keyword, args) {
            return true;
        }
        let mut defaults = ChannelDefaults {
            max_messages: builder.channel.max_messages,
            expire_side: builder.channel.expire_side,
            expire_unread: builder.channel.expire_unread,
            copy_arrival_date: builder.channel.copy_arrival_date,
            max_delete_percent: builder.channel.max_delete_percent,
        };
        if self.channel_default_keyword(&mut defaults, keyword, args) {
            builder.channel.max_messages = defaults.max_messages;
            builder.channel.expire_side = defaults.expire_side;
            builder.channel.expire_unread = defaults.expire_unread;
            builder.channel.copy_arrival_date = defaults.copy_arrival_date;
            builder.channel.max_delete_percent = defaults.max_delete_percent;
            return true;
        }
        match keyword {
            "far" | "near" | "master" | "slave" => {
                if keyword == "master" || keyword == "slave" {
                    self.notice_master_slave = true;
                }
                let value = self.one(args);
                if let Some(side) = self.channel_side(value) {
                    if keyword == "far" || keyword == "master" {
                        builder.far = Some(side);
                    } else {
                        builder.near = Some(side);
                    }
                }
            }
            "pattern" | "patterns" => builder.channel.patterns.extend(args.iter().cloned()),
            "maxsize" => builder.max_size = self.size_value(args).or(builder.max_size),
            "syncstate" => builder.channel.sync_state = self.sync_state_value(args),
            _ => return false,
        }
        true
    }

    fn channel_side(&mut self, value: &str) -> Option<ChannelSide> {
        let Some((store, mailbox)) = value.strip_prefix(':').and_then(|v| v.split_once(':')) else {
            self.error("malformed mailbox spec (expected :store:[mailbox])");
            return None;
        };
        if self.config.store(store).is_none() {
            self.error(format!("unknown store '{store}'"));
            return None;
        }
        Some(ChannelSide {
            store: store.to_string(),
            mailbox: mailbox.to_string(),
        })
    }

    fn finish_section(&mut self, section: Section) {
        match section {
            Section::None | Section::Skipping => {}
            Section::Maildir(builder) => self.finish_maildir(*builder),
            Section::Account(builder) => {
                if let Some(account) = self.finish_account(*builder, "IMAP account") {
                    self.config.accounts.push(account);
                }
            }
            Section::ImapStore(builder) => self.finish_imap_store(*builder),
            Section::Channel(builder) => self.finish_channel(*builder),
            Section::Group(group) => self.config.groups.push(group),
        }
    }

    fn finish_maildir(&mut self, builder: MaildirBuilder) {
        let mut store = builder.store;
        if !builder.inbox_set {
            store.inbox = Some(format!("{}/Maildir", self.env.home));
        }
        let name = store.common.name.clone();
        if store.sub_folders == Some(SubFolders::MaildirPlusPlus) && store.path.is_some() {
            self.errors.push(format!(
                "Maildir store '{name}': Setting Path is incompatible with 'SubFolders Maildir++'"
            ));
        } else if let (Some(path), Some(inbox)) = (&store.path, &store.inbox)
            && path.starts_with(&format!("{inbox}/"))
        {
            self.errors.push(format!(
                "Maildir store '{name}': Path cannot be nested under Inbox"
            ));
        }
        self.config.stores.push(StoreConfig::Maildir(store));
    }

    /// Validates an account (§1.8); `what` is `IMAP account` or `IMAP store`.
    fn finish_account(&mut self, builder: AccountBuilder, what: &str) -> Option<ImapAccountConfig> {
        let mut account = builder.account;
        let name = account.name.clone();
        account.tls_type = builder.tls_type.unwrap_or(if account.tunnel.is_some() {
            TlsType::None
        } else {
            TlsType::StartTls
        });
        if let Some(require_cram) = builder.require_cram {
            self.notices.push(format!(
                "Notice: {what} '{name}': RequireCRAM is deprecated. Use AuthMech instead."
            ));
            if require_cram && !builder.auth_mechs_given {
                account.auth_mechs = vec!["CRAM-MD5".to_string()];
            }
        }
        let both = |a: bool, b: bool, first: &str, second: &str| {
            (a && b).then(|| format!("{what} '{name}' has both {first} and {second}"))
        };
        let problem = if account.host.is_none() && account.tunnel.is_none() {
            Some(format!("{what} '{name}' has neither Tunnel nor Host"))
        } else {
            both(
                account.user.is_some(),
                account.user_cmd.is_some(),
                "User",
                "UserCmd",
            )
            .or_else(|| {
                both(
                    account.pass.is_some(),
                    account.pass_cmd.is_some(),
                    "Pass",
                    "PassCmd",
                )
            })
            .or_else(|| {
                both(
                    account.user.is_some(),
                    account.user_file.is_some(),
                    "User",
                    "UserFile",
                )
            })
            .or_else(|| {
                both(
                    account.user_cmd.is_some(),
                    account.user_file.is_some(),
                    "UserCmd",
                    "UserFile",
                )
            })
            .or_else(|| {
                both(
                    account.pass.is_some(),
                    account.pass_file.is_some(),
                    "Pass",
                    "PassFile",
                )
            })
            .or_else(|| {
                both(
                    account.pass_cmd.is_some(),
                    account.pass_file.is_some(),
                    "PassCmd",
                    "PassFile",
                )
            })
            .or_else(|| {
                (builder.require_cram.is_some() && builder.auth_mechs_given).then(|| {
                    format!(
                        "{what} '{name}': The deprecated RequireCRAM option is mutually \
                             exclusive with AuthMech."
                    )
                })
            })
        };
        match problem {
            Some(message) => {
                self.errors.push(message);
                None
            }
            None => Some(account),
        }
    }

    fn finish_imap_store(&mut self, builder: ImapStoreBuilder) {
        let mut store = builder.store;
        match builder.account_ref {
            Some(account) => {
                if builder.own.any_keyword {
                    self.errors.push(format!(
                        "IMAP store '{}' has both Account and account-specific options",
                        store.common.name
                    ));
                }
                store.account = account;
            }
            None => {
                store.implicit_account =
                    self.finish_account(builder.own, "IMAP store").map(Box::new)
            }
        }
        self.config.stores.push(StoreConfig::Imap(store));
    }

    fn finish_channel(&mut self, builder: ChannelBuilder) {
        let mut channel = builder.channel;
        let name = channel.name.clone();
        match builder.ops.evaluate(OpsLocation::Channel(&name)) {
            Ok(ops) => channel.ops = ops,
            Err(messages) => self.errors.extend(messages),
        }
        if builder.far.is_none() {
            self.errors
                .push(format!("channel '{name}' refers to no far side store"));
        }
        if builder.near.is_none() {
            self.errors
                .push(format!("channel '{name}' refers to no near side store"));
        }
        let (Some(far), Some(near)) = (builder.far, builder.near) else {
            return;
        };
        if let Some(max_size) = builder.max_size
            && self.errors.is_empty()
        {
            for store in &[&far.store, &near.store] {
                if let Some(config) = self
                    .config
                    .stores
                    .iter_mut()
                    .find(|s| s.name() == store.as_str())
                {
                    match config {
                        StoreConfig::Maildir(m) => m.common.max_size = max_size,
                        StoreConfig::Imap(i) => i.common.max_size = max_size,
                    }
                }
            }
        }
        channel.sides = [far, near];
        self.config.channels.push(channel);
    }

    fn finish_file(&mut self) {
        match self.global_ops.evaluate(OpsLocation::Global) {
            Ok(ops) => self.config.ops = ops,
            Err(messages) => self.errors.extend(messages),
        }
        let fsync = self.config.fsync;
        for store in &mut self.config.stores {
            if let StoreConfig::Maildir(maildir) = store {
                maildir.fsync = fsync;
            }
        }
        self.config.sync_state = match self.global_sync_state.take() {
            Some(location) => location,
            None => match default_sync_state(self.env) {
                Ok(dir) => SyncStateLocation::Prefix(dir),
                Err(message) => {
                    self.errors.push(message);
                    SyncStateLocation::InBox
                }
            },
        };
        let file = self.file;
        if self.notice_master_slave {
            self.notices.push(format!(
                "{file}: notice: Master/Slave are deprecated; use Far/Near instead."
            ));
        }
        if self.notice_renew {
            self.notices.push(format!(
                "{file}: notice: ReNew is deprecated; use Upgrade instead."
            ));
        }
        if self.notice_delete {
            self.notices.push(format!(
                "{file}: notice: Delete is deprecated; use Gone instead."
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types() {
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("2"), None);
        assert_eq!(parse_int("-5"), Some(-5));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("7x"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("99999999999"), None);
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("3kb"), Some(3072));
        assert_eq!(parse_size("12B"), Some(12));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("1g"), None);
        assert_eq!(parse_size("1kk"), None);
        assert_eq!(parse_size("-1"), None);
    }

    #[test]
    fn max_connections_in_accounts_and_stores() {
        let env = Environment {
            home: "/home/u".into(),
            xdg_config_home: None,
            xdg_state_home: None,
        };
        let text = "IMAPAccount a\nHost h\nMaxConnections 7\n\n\
                    IMAPAccount plain\nHost h\n\n\
                    IMAPStore s\nHost h\nMaxConnections 1\n";
        let outcome = parse("/cfg/rc", text.as_bytes(), &env);
        assert_eq!(outcome.errors, Vec::<String>::new());
        let accounts: Vec<(String, u32)> = outcome
            .config
            .accounts
            .iter()
            .map(|a| (a.name.clone(), a.max_connections))
            .collect();
        assert_eq!(
            accounts,
            [
                ("a".to_string(), 7),
                ("plain".to_string(), DEFAULT_MAX_CONNECTIONS)
            ]
        );
        let Some(StoreConfig::Imap(store)) = outcome.config.store("s") else {
            panic!("store s missing");
        };
        let own = store.implicit_account.as_deref().map(|a| a.max_connections);
        assert_eq!(own, Some(1));

        let bad = "IMAPAccount a\nHost h\nMaxConnections 0\nMaxConnections 65\n\
                   MaxConnections many\n";
        let outcome = parse("/cfg/rc", bad.as_bytes(), &env);
        assert_eq!(
            outcome.errors,
            [
                "/cfg/rc:3: MaxConnections must be between 1 and 64",
                "/cfg/rc:4: MaxConnections must be between 1 and 64",
                "/cfg/rc:5: invalid integer value 'many' (expected a decimal number)",
            ]
        );
    }
}
