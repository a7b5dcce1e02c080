//! Config-language tests: the spec's sample file, a file using every keyword, and one test per
//! kind of error with its exact `FILE:LINE: message` text.

use mailsync::config::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    fn home(&self) -> String {
        self.dir
            .path()
            .to_str()
            .expect("utf-8 temp path")
            .to_string()
    }
    fn env(&self) -> Environment {
        Environment {
            home: self.home(),
            xdg_config_home: None,
            xdg_state_home: None,
        }
    }
    fn parse(&self, text: &str) -> Result<Loaded, ConfigError> {
        parse_text("/cfg/rc", text.as_bytes(), &self.env())
    }
    fn config(&self, text: &str) -> Config {
        match self.parse(text) {
            Ok(loaded) => loaded.config,
            Err(error) => panic!("unexpected errors:\n{error}"),
        }
    }
    fn errors(&self, text: &str) -> Vec<String> {
        match self.parse(text) {
            Ok(_) => panic!("no error for:\n{text}"),
            Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
            Err(other) => panic!("unexpected {other}"),
        }
    }
}

fn maildir(config: &Config, name: &str) -> MaildirStoreConfig {
    match config.store(name) {
        Some(StoreConfig::Maildir(m)) => m.clone(),
        other => panic!("no maildir store {name}: {other:?}"),
    }
}

fn imap(config: &Config, name: &str) -> ImapStoreConfig {
    match config.store(name) {
        Some(StoreConfig::Imap(i)) => i.clone(),
        other => panic!("no IMAP store {name}: {other:?}"),
    }
}

fn types(letters: &str) -> OpTypes {
    OpTypes {
        new: letters.contains('n'),
        old: letters.contains('o'),
        upgrade: letters.contains('u'),
        gone: letters.contains('g'),
        flags: letters.contains('f'),
    }
}

/// The sample of spec §1.12. Its annotation line "# blank line ends the section" is made a
/// really blank line: a comment-only line does not end a section (§1.2, and mbsync agrees).
const SAMPLE: &str = r#"# global defaults (must come first)
Expunge None
Create Near
SyncState ~/.local/state/mail/

MaildirStore local          # section 1
Path ~/Mail/                # relative paths would be relative to this file's folder
Inbox ~/Mail/INBOX
SubFolders Verbatim
Trash Trash

IMAPAccount work
Host imap.example.org
User "john doe"             # quoted: contains a space
PassCmd "+pass show mail\\work"   # \\ -> single backslash
TLSType IMAPS

IMAPStore work-remote
Account work

Channel work
Far :work-remote:
Near :local:work/
Patterns * !Spam
Sync PullNew PullGone Push
Expunge Near

Group all work personal:INBOX,Sent
"#;

#[test]
fn spec_sample_config() {
    let fx = Fixture::new();
    let home = fx.home();
    let config = fx.config(SAMPLE);
    assert_eq!(config.file, "/cfg/rc");
    assert_eq!(
        config.sync_state,
        SyncStateLocation::Prefix(format!("{home}/.local/state/mail/"))
    );
    assert_eq!(
        config.ops.expunge,
        Some(BoxOpSpec {
            far: false,
            near: false
        })
    );
    assert_eq!(
        config.ops.create,
        Some(BoxOpSpec {
            far: false,
            near: true
        })
    );
    assert_eq!(config.ops.sync, None);

    let local = maildir(&config, "local");
    assert_eq!(local.path, Some(format!("{home}/Mail/")));
    assert_eq!(local.inbox, Some(format!("{home}/Mail/INBOX")));
    assert_eq!(local.sub_folders, Some(SubFolders::Verbatim));
    assert_eq!(local.common.trash.as_deref(), Some("Trash"));
    assert_eq!(local.info_delimiter, ':');
    assert!(local.fsync);

    let account = config.account("work").expect("account work");
    assert_eq!(account.host.as_deref(), Some("imap.example.org"));
    assert_eq!(account.user.as_deref(), Some("john doe"));
    assert_eq!(
        account.pass_cmd,
        Some(CredentialCommand {
            command: r"pass show mail\work".into(),
            plus: true
        })
    );
    assert_eq!(account.tls_type, TlsType::Imaps);
    assert_eq!(account.port, None);
    assert_eq!(account.timeout, 20);

    let remote = imap(&config, "work-remote");
    assert_eq!(remote.account, "work");
    assert!(remote.implicit_account.is_none());
    assert_eq!(remote.account_config(&config), Some(account));

    let channel = config.channel("work").expect("channel");
    assert_eq!(channel.sides[0].store, "work-remote");
    assert_eq!(channel.sides[0].mailbox, "");
    assert_eq!(channel.sides[1].store, "local");
    assert_eq!(channel.sides[1].mailbox, "work/");
    assert_eq!(channel.patterns, vec!["*", "!Spam"]);
    assert_eq!(channel.line, 21);
    assert_eq!(
        channel.ops.sync,
        Some(SyncSpec {
            types: [types("nugf"), types("ng")]
        })
    );
    assert_eq!(
        channel.ops.expunge,
        Some(BoxOpSpec {
            far: false,
            near: true
        })
    );

    let [far, near] = effective_ops(&config, channel, &OpSettings::default());
    assert_eq!(far.types, types("nugf"));
    assert_eq!(near.types, types("ng"));
    assert!(near.expunge && !far.expunge);
    assert!(near.create && !far.create);

    let group = config.group("all").expect("group");
    assert_eq!(
        group.members,
        vec![
            ChannelRef {
                channel: "work".into(),
                boxes: None
            },
            ChannelRef {
                channel: "personal".into(),
                boxes: Some(vec!["INBOX".into(), "Sent".into()])
            },
        ]
    );
}

#[test]
fn every_keyword() {
    let fx = Fixture::new();
    let home = fx.home();
    let cert = format!("{home}/cert.pem");
    std::fs::write(&cert, "x").expect("write cert");
    let text = format!(
        r#"FSync no
FieldDelimiter ;
BufferLimit 2m
Sync Pull New
Create Both
Remove Far
Expunge Near
ExpungeSolo Far
MaxMessages 7
ExpireSide Far
ExpireUnread yes
CopyArrivalDate yes
SyncState *

MaildirStore md
Path rel/
Inbox /abs/inbox
SubFolders Legacy
InfoDelimiter !
AltMap no
Trash T
TrashNewOnly yes
TrashRemoteNew on
MaxSize 100k
MapInbox Inbox
Flatten .

IMAPAccount acc
Host 127.0.0.1
Port 1143
Timeout 5
UserFile ~/user.txt
PassFile pass.txt
TLSType starttls
TLSVersions +1.1 -1.3
SystemCertificates no
CertificateFile {cert}
ClientCertificate ~/cert.pem
ClientKey ~/cert.pem
CipherString HIGH
AuthMechs plain Login
PipelineDepth 3
DisableExtension move LITERAL+
DisableExtensions compress=deflate

IMAPStore is
Account acc
Path INBOX.
PathDelimiter .
UseNamespace no
SubscribedOnly yes
Trash Deleted
MaxSize 1M

IMAPStore own
Tunnel "ssh host imapd"
UserCmd "echo me"
Pass secret
AuthMech *

Channel ch
Far :is:pre/
Near :md:
Pattern INBOX
Patterns % !x*
MaxSize 5k
Sync PushFlags
Create None
Remove Both
Expunge Far
ExpungeSolo None
CopyArrivalDate no
MaxMessages 9
ExpireSide Near
ExpireUnread no
SyncState state/

Channel defaults
Far :own:
Near :md:sub

Group g
Channel ch
Channels defaults:a,b other
"#
    );
    let config = fx.config(&text);
    assert!(!config.fsync);
    assert_eq!(config.field_delimiter, ';');
    assert_eq!(config.buffer_limit, 2 << 20);
    assert_eq!(config.sync_state, SyncStateLocation::InBox);
    assert_eq!(
        config.ops,
        OpSettings {
            sync: Some(SyncSpec {
                types: [types(""), types("n")]
            }),
            create: Some(BoxOpSpec {
                far: true,
                near: true
            }),
            remove: Some(BoxOpSpec {
                far: true,
                near: false
            }),
            expunge: Some(BoxOpSpec {
                far: false,
                near: true
            }),
            expunge_solo: Some(BoxOpSpec {
                far: true,
                near: false
            }),
        }
    );

    let md = maildir(&config, "md");
    assert_eq!(
        md,
        MaildirStoreConfig {
            common: CommonStoreConfig {
                name: "md".into(),
                trash: Some("T".into()),
                trash_new_only: true,
                trash_remote_new: true,
                max_size: 5 * 1024,
                map_inbox: Some("Inbox".into()),
                flatten: Some(".".into()),
            },
            path: Some("/cfg/rel/".into()),
            inbox: Some("/abs/inbox".into()),
            sub_folders: Some(SubFolders::Legacy),
            info_delimiter: '!',
            fsync: false,
        }
    );

    let acc = config.account("acc").expect("account");
    assert_eq!(
        *acc,
        ImapAccountConfig {
            name: "acc".into(),
            host: Some("127.0.0.1".into()),
            port: Some(1143),
            tunnel: None,
            timeout: 5,
            user: None,
            user_cmd: None,
            user_file: Some(format!("{home}/user.txt").into()),
            pass: None,
            pass_cmd: None,
            pass_file: Some("/cfg/pass.txt".into()),
            use_keychain: false,
            tls_type: TlsType::StartTls,
            tls_versions: TlsVersions {
                v1_0: false,
                v1_1: true,
                v1_2: true,
                v1_3: false
            },
            system_certificates: false,
            certificate_file: Some(cert.clone().into()),
            client_certificate: Some(cert.clone().into()),
            client_key: Some(cert.clone().into()),
            cipher_string: Some("HIGH".into()),
            auth_mechs: vec!["PLAIN".into(), "LOGIN".into()],
            pipeline_depth: Some(3),
            max_connections: mailsync::config::DEFAULT_MAX_CONNECTIONS,
            disable_extensions: vec!["MOVE".into(), "LITERAL+".into(), "COMPRESS=DEFLATE".into()],
        }
    );

    let is = imap(&config, "is");
    assert_eq!(is.account, "acc");
    assert_eq!(is.path.as_deref(), Some("INBOX."));
    assert_eq!(is.path_delimiter, Some('.'));
    assert!(!is.use_namespace);
    assert!(is.subscribed_only);
    assert_eq!(is.common.trash.as_deref(), Some("Deleted"));
    assert_eq!(
        is.common.max_size,
        5 * 1024,
        "Channel MaxSize overrides both stores"
    );

    let own = imap(&config, "own");
    let own_account = own.implicit_account.clone().expect("implicit account");
    assert_eq!(own.account, "own");
    assert_eq!(own_account.name, "own");
    assert_eq!(own_account.tunnel.as_deref(), Some("ssh host imapd"));
    assert_eq!(
        own_account.tls_type,
        TlsType::None,
        "Tunnel defaults to TLSType None"
    );
    assert_eq!(
        own_account.user_cmd,
        Some(CredentialCommand {
            command: "echo me".into(),
            plus: false
        })
    );
    assert_eq!(own_account.pass.as_deref(), Some("secret"));
    assert!(own_account.auth_mechs.is_empty());
    assert_eq!(own.account_config(&config), Some(&*own_account));

    let ch = config.channel("ch").expect("channel ch");
    assert_eq!(
        ch.sides,
        [
            ChannelSide {
                store: "is".into(),
                mailbox: "pre/".into()
            },
            ChannelSide {
                store: "md".into(),
                mailbox: "".into()
            }
        ]
    );
    assert_eq!(ch.patterns, vec!["INBOX", "%", "!x*"]);
    assert_eq!(
        ch.ops,
        OpSettings {
            sync: Some(SyncSpec {
                types: [types("f"), types("")]
            }),
            create: Some(BoxOpSpec {
                far: false,
                near: false
            }),
            remove: Some(BoxOpSpec {
                far: true,
                near: true
            }),
            expunge: Some(BoxOpSpec {
                far: true,
                near: false
            }),
            expunge_solo: Some(BoxOpSpec {
                far: false,
                near: false
            }),
        }
    );
    assert!(!ch.copy_arrival_date);
    assert_eq!(ch.max_messages, 9);
    assert_eq!(ch.expire_side, Side::Near);
    assert_eq!(ch.expire_unread, ExpireUnread::No);
    assert_eq!(
        ch.sync_state,
        Some(SyncStateLocation::Prefix("/cfg/state/".into()))
    );

    let defaults = config.channel("defaults").expect("channel defaults");
    assert!(defaults.copy_arrival_date);
    assert_eq!(defaults.max_messages, 7);
    assert_eq!(defaults.expire_side, Side::Far);
    assert_eq!(defaults.expire_unread, ExpireUnread::Yes);
    assert_eq!(defaults.sync_state, None);
    assert_eq!(defaults.ops, OpSettings::default());
    assert_eq!(defaults.sides[1].mailbox, "sub");
    let [far, near] = effective_ops(&config, defaults, &OpSettings::default());
    assert_eq!((far.types, near.types), (types(""), types("n")));
    assert!(far.create && near.create && far.remove && !near.remove);
    assert!(!near.expunge_solo && near.expunge);
    assert!(
        far.expunge_solo && !far.expunge,
        "ExpungeSolo wins over Expunge from config"
    );

    let group = config.group("g").expect("group");
    let members: Vec<(&str, Option<Vec<String>>)> = group
        .members
        .iter()
        .map(|m| (m.channel.as_str(), m.boxes.clone()))
        .collect();
    assert_eq!(
        members,
        vec![
            ("ch", None),
            ("defaults", Some(vec!["a".to_string(), "b".to_string()])),
            ("other", None)
        ]
    );
}

#[test]
fn defaults_and_duplicates() {
    let fx = Fixture::new();
    let config = fx.config(
        "MaildirStore a\nPath /p1/\n\nMaildirStore a\nPath /p2/\n\nChannel c\nFar :a:x\nNear :a:y\nMaster :a:z\n\nChannel c\nFar :a:\nNear :a:\n",
    );
    assert_eq!(maildir(&config, "a").path.as_deref(), Some("/p1/"));
    assert_eq!(
        maildir(&config, "a").inbox,
        Some(format!("{}/Maildir", fx.home()))
    );
    assert_eq!(config.stores.len(), 2);
    assert_eq!(config.channels.len(), 2);
    let channel = config.channel("c").expect("first channel");
    assert_eq!(channel.sides[0].mailbox, "z");
    assert_eq!(
        config.sync_state,
        SyncStateLocation::Prefix(format!("{}/.local/state/isync/", fx.home()))
    );
    assert!(config.fsync);
    assert_eq!(config.buffer_limit, 10 << 20);
    assert_eq!(config.field_delimiter, ':');
}

#[test]
fn notices_for_deprecated_forms() {
    let fx = Fixture::new();
    let loaded = fx
        .parse(
            "MaildirStore a\nPath /p/\n\nIMAPStore i\nHost h\nSSLType IMAPS\nSSLVersions TLSv1.2 SSLv3\nRequireCRAM yes\n\nIMAPAccount b\nHost h\nSSLType None\n\nChannel c\nMaster :a:\nSlave :a:\nSync PullReNew Delete\nCreate Slave\n",
        )
        .expect("valid");
    assert_eq!(
        loaded.notices,
        vec![
            "/cfg/rc: notice: SSLType is deprecated. Use TLSType instead.",
            "/cfg/rc: notice: SSLVersions is deprecated. Use TLSVersions instead.",
            "Warning: SSLVersion SSLv3 is no longer supported",
            "Notice: IMAP store 'i': RequireCRAM is deprecated. Use AuthMech instead.",
            "/cfg/rc: notice: Master/Slave are deprecated; use Far/Near instead.",
            "/cfg/rc: notice: ReNew is deprecated; use Upgrade instead.",
            "/cfg/rc: notice: Delete is deprecated; use Gone instead.",
        ]
    );
    let config = loaded.config;
    let account = imap(&config, "i").implicit_account.expect("implicit");
    assert_eq!(account.tls_type, TlsType::Imaps);
    assert_eq!(account.auth_mechs, vec!["CRAM-MD5"]);
    assert_eq!(
        account.tls_versions,
        TlsVersions {
            v1_0: false,
            v1_1: false,
            v1_2: true,
            v1_3: false
        }
    );
    assert_eq!(config.account("b").expect("b").tls_type, TlsType::None);
    let channel = config.channel("c").expect("c");
    assert_eq!(
        channel.ops.sync,
        Some(SyncSpec {
            types: [types("g"), types("ug")]
        })
    );
    assert_eq!(
        channel.ops.create,
        Some(BoxOpSpec {
            far: false,
            near: true
        })
    );
}

#[test]
fn lexer_errors() {
    let fx = Fixture::new();
    let long = format!("Trash {}", "x".repeat(1100));
    assert_eq!(
        fx.errors(&format!(
            "MaildirStore a\nPath \"/p/\nTrash a\\\n{long}\nMaxSize\n"
        )),
        vec![
            "/cfg/rc:2: missing closing quote",
            "/cfg/rc:3: unterminated escape sequence",
            "/cfg/rc:4: line too long (at most 1022 bytes are allowed)",
            "/cfg/rc:5: parameter missing",
        ]
    );
}

#[test]
fn comment_lines_do_not_end_sections() {
    let fx = Fixture::new();
    let config = fx.config("MaildirStore a\n# comment\n   # indented\nPath /p/\n");
    assert_eq!(maildir(&config, "a").path.as_deref(), Some("/p/"));
    assert_eq!(
        fx.errors("MaildirStore a\n\nPath /p/\n"),
        vec!["/cfg/rc:3: 'Path' is not a recognized section-starting or global keyword"]
    );
}

#[test]
fn unknown_keyword_in_each_section_type() {
    let fx = Fixture::new();
    let errors = fx.errors(
        "MaildirStore m\nPath /p/\nBogus 1\n\nIMAPAccount a\nHost h\nRequireSSL yes\nTrash x\nUseKeychain yes\n\nIMAPStore i\nAccount a\nBogus 2\n\nChannel c\nFar :m:\nNear :m:\nFSync no\n\nGroup g c\nBogus 3\n",
    );
    assert_eq!(
        errors,
        vec![
            "/cfg/rc:3: keyword 'Bogus' is not recognized in MaildirStore sections",
            "/cfg/rc:7: keyword 'RequireSSL' is not recognized in IMAPAccount sections",
            "/cfg/rc:8: keyword 'Trash' is not recognized in IMAPAccount sections",
            "/cfg/rc:9: keyword 'UseKeychain' is not recognized in IMAPAccount sections",
            "/cfg/rc:13: keyword 'Bogus' is not recognized in IMAPStore sections",
            "/cfg/rc:18: keyword 'FSync' is not recognized in Channel sections",
            "/cfg/rc:21: keyword 'Bogus' is not recognized in Group sections",
        ]
    );
}

#[test]
fn non_section_keyword_skips_its_block() {
    let fx = Fixture::new();
    let errors = fx.errors("Frobnicate yes\nPath /x/\nBogus 2\n\nMaildirStore m\nPath /p/\n");
    assert_eq!(
        errors,
        vec!["/cfg/rc:1: 'Frobnicate' is not a recognized section-starting or global keyword"]
    );
}

#[test]
fn global_after_section() {
    let fx = Fixture::new();
    match fx.parse("MaildirStore m\nPath /p/\n\nFSync no\n") {
        Err(ConfigError::Invalid { diagnostics, .. }) => assert_eq!(
            diagnostics,
            vec!["/cfg/rc:4: global options may not follow sections"]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_values() {
    let fx = Fixture::new();
    let errors = fx.errors(
        "FSync maybe\nMaxMessages 1x\nBufferLimit 10q\nBufferLimit 0\nFieldDelimiter ab\nFieldDelimiter a\nExpireSide Left\nCopyArrivalDate yes extra\n",
    );
    assert_eq!(
        errors,
        vec![
            "/cfg/rc:1: invalid boolean value 'maybe' (expected yes/no/true/false/on/off/1/0)",
            "/cfg/rc:2: invalid integer value '1x' (expected a decimal number)",
            "/cfg/rc:3: invalid size '10q' (expected a number with optional k/m suffix, e.g. 10M)",
            "/cfg/rc:4: BufferLimit cannot be zero",
            "/cfg/rc:5: Field delimiter must be exactly one character long",
            "/cfg/rc:6: Field delimiter must be a punctuation character",
            "/cfg/rc:7: invalid ExpireSide argument 'Left' (expected Far or Near)",
            "/cfg/rc:8: excess token 'extra'",
        ]
    );
}

#[test]
fn imap_value_errors() {
    let fx = Fixture::new();
    let errors = fx.errors(
        "IMAPAccount a\nHost h\nPort 70000\nPort -1\nTLSType SSL\nTLSVersions 1.2 +1.4 -1.0\nSSLVersions TLSv2\nPipelineDepth 0\nDisableExtension IDLE\nCertificateFile /nonexistent/cert.pem\nClientKey /nonexistent/key.pem\nPathDelimiter ab\n",
    );
    assert_eq!(
        errors,
        vec![
            "/cfg/rc:3: Invalid port number (expected 0 to 65535)",
            "/cfg/rc:4: Invalid port number (expected 0 to 65535)",
            "/cfg/rc:5: Invalid TLS type (expected None, STARTTLS or IMAPS)",
            "/cfg/rc:6: TLSVersions arguments must start with +/-",
            "/cfg/rc:6: Unrecognized TLS version '1.4' (expected 1.0, 1.1, 1.2 or 1.3)",
            "/cfg/rc:7: Unrecognized SSL version (expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)",
            "/cfg/rc:8: PipelineDepth must be at least 1",
            "/cfg/rc:9: Unrecognized IMAP extension 'IDLE' (known: IMAP4REV1, LOGINDISABLED, SASL-IR, STARTTLS, UIDPLUS, LITERAL+, LITERAL-, MOVE, NAMESPACE, UTF8=ACCEPT, UTF8=ONLY, COMPRESS=DEFLATE)",
            "/cfg/rc:10: CertificateFile '/nonexistent/cert.pem': No such file or directory",
            "/cfg/rc:11: ClientKey '/nonexistent/key.pem': No such file or directory",
            "/cfg/rc:12: keyword 'PathDelimiter' is not recognized in IMAPAccount sections",
        ]
    );
    let errors = fx.errors("IMAPStore s\nHost h\nPathDelimiter ab\n");
    assert_eq!(
        errors,
        vec!["/cfg/rc:3: Path delimiter must be exactly one character long"]
    );
}

#[test]
fn flatten_with_slash() {
    let fx = Fixture::new();
    assert_eq!(
        fx.errors("MaildirStore m\nPath /p/\nFlatten a/b\n"),
        vec!["/cfg/rc:3: flattened hierarchy delimiter cannot contain the canonical delimiter '/'"]
    );
}

#[test]
fn delimiters() {
    let fx = Fixture::new();
    assert_eq!(
        fx.errors("MaildirStore m\nInfoDelimiter ::\nInfoDelimiter x\nSubFolders Deep\n"),
        vec![
            "/cfg/rc:2: Info delimiter must be exactly one character long",
            "/cfg/rc:3: Info delimiter must be a punctuation character",
            "/cfg/rc:4: Unrecognized SubFolders style (expected Verbatim, Maildir++ or Legacy)",
        ]
    );
    let config = fx.config("FieldDelimiter ;\n\nMaildirStore m\nPath /p/\n");
    assert_eq!(maildir(&config, "m").info_delimiter, ';');
}

#[test]
fn unknown_store_and_account() {
    let fx = Fixture::new();
    assert_eq!(
        fx.errors("IMAPStore s\nAccount later\n\nIMAPAccount later\nHost h\n\nChannel c\nFar :nope:\nNear :s:\n"),
        vec![
            "/cfg/rc:2: unknown IMAP account 'later'",
            "IMAP store 's' has neither Tunnel nor Host",
            "/cfg/rc:8: unknown store 'nope'",
            "channel 'c' refers to no far side store",
        ]
    );
}

#[test]
fn malformed_mailbox_spec_and_missing_sides() {
    let fx = Fixture::new();
    assert_eq!(
        fx.errors("MaildirStore m\nPath /p/\n\nChannel c\nFar m:\nNear :m\n\nChannel d\n"),
        vec![
            "/cfg/rc:5: malformed mailbox spec (expected :store:[mailbox])",
            "/cfg/rc:6: malformed mailbox spec (expected :store:[mailbox])",
            "channel 'c' refers to no far side store",
            "channel 'c' refers to no near side store",
            "channel 'd' refers to no far side store",
            "channel 'd' refers to no near side store",
        ]
    );
}

#[test]
fn sync_option_conflicts() {
    let fx = Fixture::new();
    let errors = fx.errors(
        "Sync None New\nExpunge Both Near\n\nMaildirStore m\nPath /p/\n\nChannel a\nFar :m:\nNear :m:\nSync PullNew Pull\nCreate None Far\n\nChannel b\nFar :m:\nNear :m:\nSync PullNew Pull Push\nSync Sideways\nRemove Up\n",
    );
    assert_eq!(
        errors,
        vec![
            "Redundant Sync options specified in Channel 'a'.",
            "Conflicting Create options specified in Channel 'a'.",
            "/cfg/rc:17: invalid Sync arg 'Sideways' (expected Pull, Push, New, Old, Upgrade, Gone, Flags, Full, None, or Pull/Push followed by a type)",
            "/cfg/rc:18: invalid Remove arg 'Up' (expected None, Far, Near or Both)",
            "Invalid combination of simple and compound Sync options in Channel 'b'.",
            "Conflicting Sync options specified in global config section.",
            "Redundant Expunge options specified in global config section.",
        ]
    );
}

#[test]
fn maildir_end_checks() {
    let fx = Fixture::new();
    assert_eq!(
        fx.errors("MaildirStore pp\nPath /p/\nSubFolders Maildir++\n\nMaildirStore nested\nInbox /m/in\nPath /m/in/sub/\n\nMaildirStore fine\nInbox /m/in\nPath /m/inbox/\n"),
        vec![
            "Maildir store 'pp': Setting Path is incompatible with 'SubFolders Maildir++'",
            "Maildir store 'nested': Path cannot be nested under Inbox",
        ]
    );
}

#[test]
fn account_checks() {
    let fx = Fixture::new();
    let errors = fx.errors(
        "IMAPAccount none\nUser u\n\nIMAPAccount users\nHost h\nUser u\nUserCmd c\nPass p\nPassCmd c\n\nIMAPAccount passes\nHost h\nPass p\nPassCmd c\n\nIMAPAccount ufile\nHost h\nUserCmd c\nUserFile f\n\nIMAPAccount pfile\nHost h\nPass p\nPassFile f\n\nIMAPAccount cram\nHost h\nRequireCRAM yes\nAuthMechs PLAIN\n\nIMAPAccount ok\nHost h\n\nIMAPStore mixed\nAccount ok\nHost other\n",
    );
    assert_eq!(
        errors,
        vec![
            "IMAP account 'none' has neither Tunnel nor Host",
            "IMAP account 'users' has both User and UserCmd",
            "IMAP account 'passes' has both Pass and PassCmd",
            "IMAP account 'ufile' has both UserCmd and UserFile",
            "IMAP account 'pfile' has both Pass and PassFile",
            "IMAP account 'cram': The deprecated RequireCRAM option is mutually exclusive with AuthMech.",
            "IMAP store 'mixed' has both Account and account-specific options",
        ]
    );
}

#[test]
fn altmap_is_rejected() {
    let fx = Fixture::new();
    let errors = fx.errors("MaildirStore m\nPath /p/\nAltMap yes\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("Error: AltMap=true is not supported by this build (/cfg/rc:3): "),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("Berkeley DB"));
    assert!(errors[0].contains("mdconvert -n"));
    assert!(fx.parse("MaildirStore m\nPath /p/\nAltMap no\n").is_ok());
}

#[test]
fn channel_max_size_only_without_earlier_errors() {
    let fx = Fixture::new();
    let config = fx.config(
        "MaildirStore m\nPath /p/\nMaxSize 1k\n\nChannel c\nFar :m:\nNear :m:\nMaxSize 0\n",
    );
    assert_eq!(maildir(&config, "m").common.max_size, 0);
}

#[test]
fn unknown_user_leaves_path_unset() {
    let fx = Fixture::new();
    let config =
        fx.config("MaildirStore m\nPath ~no-such-user-xyz/Mail/\nInbox ~no-such-user-xyz/in\n");
    assert_eq!(maildir(&config, "m").path, None);
    assert_eq!(maildir(&config, "m").inbox, None);
}

#[test]
fn both_state_dirs_exist() {
    let fx = Fixture::new();
    let home = fx.home();
    std::fs::create_dir_all(format!("{home}/.local/state/isync")).expect("mkdir");
    std::fs::create_dir_all(format!("{home}/.mbsync")).expect("mkdir");
    assert_eq!(
        fx.errors("MaildirStore m\nPath /p/\n"),
        vec![format!(
            "Error: both {home}/.local/state/isync/ and {home}/.mbsync/ exist; delete one or set SyncState globally."
        )]
    );
    assert!(fx.parse("SyncState /s/\n").is_ok());
}

#[test]
fn load_reads_the_file_and_reports_open_failures() {
    let fx = Fixture::new();
    let path = format!("{}/rc", fx.home());
    std::fs::write(&path, "MaildirStore m\nPath sub/\n").expect("write");
    let loaded = load(&path, &fx.env()).expect("loads");
    assert_eq!(
        maildir(&loaded.config, "m").path,
        Some(format!("{}/sub/", fx.home()))
    );
    let missing = format!("{}/missing", fx.home());
    let error = load(&missing, &fx.env()).expect_err("missing file");
    assert_eq!(
        error.to_string(),
        format!("Cannot open config file '{missing}': No such file or directory")
    );
}

#[test]
fn max_connections_keyword() {
    let fx = Fixture::new();
    let config = fx.config(
        "IMAPAccount acc\nHost h\nMaxConnections 9\n\nIMAPStore own\nHost h\nMaxConnections 2\n\nIMAPStore shared\nAccount acc\n",
    );
    assert_eq!(config.account("acc").map(|a| a.max_connections), Some(9));
    let connections = |name: &str| match config.store(name) {
        Some(StoreConfig::Imap(store)) => store.account_config(&config).map(|a| a.max_connections),
        other => panic!("no IMAP store {name}: {other:?}"),
    };
    assert_eq!(connections("own"), Some(2));
    assert_eq!(connections("shared"), Some(9));
    let default = fx.config("IMAPAccount d\nHost h\n");
    assert_eq!(
        default.account("d").map(|a| a.max_connections),
        Some(DEFAULT_MAX_CONNECTIONS)
    );
    assert_eq!(
        fx.errors(
            "IMAPStore s\nHost h\nMaxConnections 0\n\nIMAPAccount a\nHost h\nMaxConnections 100\n"
        ),
        vec![
            "/cfg/rc:3: MaxConnections must be between 1 and 64",
            "/cfg/rc:7: MaxConnections must be between 1 and 64",
        ]
    );
}
