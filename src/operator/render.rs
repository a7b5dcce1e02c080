//! Renders a `MailChannel` and its two `MailStore`s into the engine's own config language (an
//! mbsyncrc), plus the list of what the sync Pod must mount for it: the claims holding
//! Maildirs and sync state, and the Secrets and ConfigMaps whose keys the config reads as
//! files (`PassFile`, `UserFile`, `CertificateFile`). Passwords never appear in the config.
//!
//! Paths in the rendered config are relative to the config file's folder
//! ([`CONFIG_DIR`]), so the config works wherever the Pod's filesystem is rooted: in a
//! container (working directory `/`) and in a test that maps the volumes into a temporary
//! folder.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::channel::{MailChannel, Operation, SyncStateLocation};
use super::common::{SecretKeyRef, Side, Sides, VolumeRef};
use super::store::{ImapStore, MailStore, MaildirStore, SubFolders, TlsMode, TlsVersion};

/// Folder (relative to the container's root) of the mounted config; the worker is started
/// with `--config` [`CONFIG_FILE`].
pub const CONFIG_DIR: &str = "mailsync/config";
/// The config file, relative to the container's root.
pub const CONFIG_FILE: &str = "mailsync/config/mbsyncrc";
/// The key of the config in the ConfigMap.
pub const CONFIG_KEY: &str = "mbsyncrc";
/// Folder of the mounted Secrets (one sub-folder per Secret).
pub const SECRETS_DIR: &str = "mailsync/secrets";
/// Folder of the mounted ConfigMaps with certificates (one sub-folder per ConfigMap).
pub const CONFIG_MAPS_DIR: &str = "mailsync/configmaps";
/// Folder of the mounted claims (one sub-folder per PersistentVolumeClaim).
pub const VOLUMES_DIR: &str = "mailsync/volumes";
/// Folder for the sync state on the near store's volume when `syncState` does not say.
pub const DEFAULT_STATE_FOLDER: &str = ".mailsync-state";

/// A channel rendered for one sync Job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderedChannel {
    /// The mbsyncrc text.
    pub config: String,
    /// The channel's name in the config (the MailChannel's name).
    pub channel_name: String,
    /// Folders of PersistentVolumeClaims to mount under [`VOLUMES_DIR`]: (claim, sub-path;
    /// empty for the volume's root). Each is mounted with the volume's `subPath`, so the
    /// kubelet creates a missing folder, and the Maildir root exists.
    pub claims: BTreeSet<(String, String)>,
    /// Secret keys the config reads; their Secrets are mounted under [`SECRETS_DIR`].
    pub secret_keys: BTreeSet<(String, String)>,
    /// ConfigMaps to mount under [`CONFIG_MAPS_DIR`] (with the keys read).
    pub config_map_keys: BTreeSet<(String, String)>,
    /// Names of the IMAP MailStores the channel uses (their `maxConnections` applies).
    pub imap_stores: BTreeSet<String>,
}

impl RenderedChannel {
    /// Names of the Secrets to mount.
    pub fn secrets(&self) -> BTreeSet<String> {
        self.secret_keys
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }
    /// Names of the ConfigMaps to mount.
    pub fn config_maps(&self) -> BTreeSet<String> {
        self.config_map_keys
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Why a channel cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("MailStore {store}: {what} is not supported by the operator yet")]
    Unsupported { store: String, what: String },
    #[error("MailStore {store}: {message}")]
    InvalidStore { store: String, message: String },
    #[error("MailChannel {channel}: {message}")]
    InvalidChannel { channel: String, message: String },
}

/// Renders `channel` with its `far` and `near` stores (the ones its `storeRef`s name).
pub fn render(
    channel: &MailChannel,
    far: &MailStore,
    near: &MailStore,
) -> Result<RenderedChannel, RenderError> {
    let channel_name = channel.metadata.name.clone().unwrap_or_default();
    if let Some(field) = field_with_control_character(&channel.spec) {
        return Err(RenderError::InvalidChannel {
            channel: channel_name,
            message: format!("{field} contains a control character (such as a line break)"),
        });
    }
    for store in [far, near] {
        if let Some(field) = field_with_control_character(&store.spec) {
            return Err(RenderError::InvalidStore {
                store: store_name(store),
                message: format!("{field} contains a control character (such as a line break)"),
            });
        }
    }
    let spec = &channel.spec;
    let mut rendered = RenderedChannel {
        channel_name: channel_name.clone(),
        ..RenderedChannel::default()
    };
    let mut text = String::from("# Rendered by the mailsync operator; do not edit.\n");
    let stores: Vec<&MailStore> = if store_name(far) == store_name(near) {
        vec![far]
    } else {
        vec![far, near]
    };
    if stores.iter().any(|store| {
        store
            .spec
            .maildir
            .as_ref()
            .is_some_and(|m| m.fsync == Some(false))
    }) {
        text.push_str("FSync no\n");
    }
    if let Some(delimiter) = spec
        .sync_state
        .as_ref()
        .and_then(|s| s.field_delimiter.as_ref())
    {
        let _ = writeln!(text, "FieldDelimiter {}", quote(delimiter));
    }
    if let Some(limit) = &spec.buffer_limit {
        let bytes = quantity_bytes(limit).ok_or_else(|| RenderError::InvalidChannel {
            channel: channel_name.clone(),
            message: format!("bufferLimit {:?} is not a byte size", limit.0),
        })?;
        let _ = writeln!(text, "BufferLimit {bytes}");
    }
    text.push('\n');
    for store in stores {
        render_store(store, &mut text, &mut rendered)?;
        text.push('\n');
    }
    render_channel(channel, near, &mut text, &mut rendered)?;
    rendered.config = text;
    Ok(rendered)
}

/// The first field (as a JSON path) of a spec whose text holds a control character. Such a
/// value would end its config line and add lines of its own (a `PassCmd`, a `Pass`), so it
/// is refused rather than rendered.
fn field_with_control_character<T: serde::Serialize>(spec: &T) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::String(text) => {
                text.chars().any(char::is_control).then(|| path.to_string())
            }
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(index, item)| walk(item, &format!("{path}[{index}]"))),
            serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
                if key.chars().any(char::is_control) {
                    return Some(path.to_string());
                }
                walk(item, &format!("{path}.{key}"))
            }),
            _ => None,
        }
    }
    let value = serde_json::to_value(spec).ok()?;
    walk(&value, "spec")
}

fn store_name(store: &MailStore) -> String {
    store.metadata.name.clone().unwrap_or_default()
}

/// A config token: always quoted, with `"` and `\` escaped.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// Bytes of a Kubernetes quantity (`10Mi`, `500k`, `1048576`); `None` when it is not one.
pub fn quantity_bytes(quantity: &Quantity) -> Option<u64> {
    let text = quantity.0.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let bytes = (value * multiplier).round();
    (bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A folder on a mounted claim, relative to the config's folder, ending in `/`.
fn volume_folder(volume: &VolumeRef, rendered: &mut RenderedChannel) -> String {
    let sub_path = volume
        .sub_path
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let mut folder = format!("../volumes/{}/", volume.claim_name);
    if !sub_path.is_empty() {
        folder.push_str(&sub_path);
        folder.push('/');
    }
    rendered
        .claims
        .insert((volume.claim_name.clone(), sub_path));
    folder
}

fn secret_file(key: &SecretKeyRef, rendered: &mut RenderedChannel) -> String {
    rendered
        .secret_keys
        .insert((key.name.clone(), key.key.clone()));
    format!("../secrets/{}/{}", key.name, key.key)
}

fn render_store(
    store: &MailStore,
    text: &mut String,
    rendered: &mut RenderedChannel,
) -> Result<(), RenderError> {
    let name = store_name(store);
    let spec = &store.spec;
    match (&spec.imap, &spec.maildir) {
        (Some(imap), None) => {
            rendered.imap_stores.insert(name.clone());
            render_imap(&name, imap, text, rendered)?;
        }
        (None, Some(maildir)) => render_maildir(&name, maildir, text, rendered),
        _ => {
            return Err(RenderError::InvalidStore {
                store: name,
                message: "exactly one of spec.imap and spec.maildir must be set".into(),
            });
        }
    }
    if let Some(trash) = &spec.trash {
        let _ = writeln!(text, "Trash {}", quote(trash));
    }
    if let Some(value) = spec.trash_new_only {
        let _ = writeln!(text, "TrashNewOnly {}", yes_no(value));
    }
    if let Some(value) = spec.trash_remote_new {
        let _ = writeln!(text, "TrashRemoteNew {}", yes_no(value));
    }
    if let Some(size) = &spec.max_message_size {
        let bytes = quantity_bytes(size).ok_or_else(|| RenderError::InvalidStore {
            store: name.clone(),
            message: format!("maxMessageSize {:?} is not a byte size", size.0),
        })?;
        let _ = writeln!(text, "MaxSize {bytes}");
    }
    if let Some(map_inbox) = &spec.map_inbox {
        let _ = writeln!(text, "MapInbox {}", quote(map_inbox));
    }
    if let Some(flatten) = &spec.flatten {
        let _ = writeln!(text, "Flatten {}", quote(flatten));
    }
    Ok(())
}

fn render_maildir(
    name: &str,
    maildir: &MaildirStore,
    text: &mut String,
    rendered: &mut RenderedChannel,
) {
    let root = volume_folder(&maildir.volume, rendered);
    let _ = writeln!(text, "MaildirStore {}", quote(name));
    let path = format!("{root}{}", maildir.path.as_deref().unwrap_or(""));
    let _ = writeln!(text, "Path {}", quote(&path));
    let inbox = format!("{root}{}", maildir.inbox.as_deref().unwrap_or("INBOX"));
    let _ = writeln!(text, "Inbox {}", quote(&inbox));
    if let Some(layout) = maildir.sub_folders {
        let keyword = match layout {
            SubFolders::Verbatim => "Verbatim",
            SubFolders::MaildirPlusPlus => "Maildir++",
            SubFolders::Legacy => "Legacy",
        };
        let _ = writeln!(text, "SubFolders {keyword}");
    }
    if let Some(delimiter) = &maildir.info_delimiter {
        let _ = writeln!(text, "InfoDelimiter {}", quote(delimiter));
    }
}

fn render_imap(
    name: &str,
    imap: &ImapStore,
    text: &mut String,
    rendered: &mut RenderedChannel,
) -> Result<(), RenderError> {
    let unsupported = |what: &str| RenderError::Unsupported {
        store: name.to_string(),
        what: what.to_string(),
    };
    let _ = writeln!(text, "IMAPAccount {}", quote(name));
    if let Some(host) = &imap.host {
        let _ = writeln!(text, "Host {}", quote(host));
    }
    if let Some(port) = imap.port {
        let _ = writeln!(text, "Port {port}");
    }
    if let Some(tunnel) = &imap.tunnel {
        let _ = writeln!(text, "Tunnel {}", quote(tunnel));
    }
    if let Some(timeout) = imap.timeout_seconds {
        let _ = writeln!(text, "Timeout {timeout}");
    }
    if let Some(auth) = &imap.auth {
        if auth.oauth2.is_some() {
            return Err(unsupported("imap.auth.oauth2"));
        }
        if let Some(user) = &auth.username {
            let _ = writeln!(text, "User {}", quote(user));
        }
        if let Some(key) = &auth.username_secret_ref {
            let _ = writeln!(text, "UserFile {}", quote(&secret_file(key, rendered)));
        }
        if let Some(key) = &auth.password_secret_ref {
            let _ = writeln!(text, "PassFile {}", quote(&secret_file(key, rendered)));
        }
        if let Some(mechanisms) = auth.mechanisms.as_ref().filter(|m| !m.is_empty()) {
            let _ = writeln!(text, "AuthMechs {}", mechanisms.join(" "));
        }
    }
    let tls = imap.tls.clone().unwrap_or_default();
    let tls_type = match tls.mode {
        TlsMode::Implicit => "IMAPS",
        TlsMode::StartTls => "STARTTLS",
        TlsMode::None => "None",
    };
    let _ = writeln!(text, "TLSType {tls_type}");
    if let Some(versions) = tls.versions.as_ref().filter(|v| !v.is_empty()) {
        let names: Vec<&str> = versions
            .iter()
            .map(|version| match version {
                TlsVersion::V1_0 => "+1.0",
                TlsVersion::V1_1 => "+1.1",
                TlsVersion::V1_2 => "+1.2",
                TlsVersion::V1_3 => "+1.3",
            })
            .collect();
        let _ = writeln!(text, "TLSVersions -1.0 -1.1 -1.2 -1.3 {}", names.join(" "));
    }
    if let Some(system) = tls.system_certificates {
        let _ = writeln!(text, "SystemCertificates {}", yes_no(system));
    }
    if let Some(ca) = &tls.ca {
        let file = match (&ca.secret_key_ref, &ca.config_map_key_ref) {
            (Some(key), _) => secret_file(key, rendered),
            (None, Some(key)) => {
                rendered
                    .config_map_keys
                    .insert((key.name.clone(), key.key.clone()));
                format!("../configmaps/{}/{}", key.name, key.key)
            }
            (None, None) => String::new(),
        };
        if !file.is_empty() {
            let _ = writeln!(text, "CertificateFile {}", quote(&file));
        }
    }
    if let Some(client) = &tls.client_certificate {
        let certificate = secret_file(&client.certificate_secret_ref, rendered);
        let key = secret_file(&client.private_key_secret_ref, rendered);
        let _ = writeln!(text, "ClientCertificate {}", quote(&certificate));
        let _ = writeln!(text, "ClientKey {}", quote(&key));
    }
    if let Some(ciphers) = &tls.cipher_string {
        let _ = writeln!(text, "CipherString {}", quote(ciphers));
    }
    if let Some(depth) = imap.pipeline_depth {
        let _ = writeln!(text, "PipelineDepth {depth}");
    }
    let _ = writeln!(text, "MaxConnections {}", imap.run_connections());
    for extension in imap.disable_extensions.iter().flatten() {
        let value = serde_json::to_value(extension)
            .ok()
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(text, "DisableExtension {value}");
    }
    text.push('\n');
    let _ = writeln!(text, "IMAPStore {}", quote(name));
    let _ = writeln!(text, "Account {}", quote(name));
    if let Some(path) = &imap.path {
        let _ = writeln!(text, "Path {}", quote(path));
    }
    if let Some(delimiter) = &imap.path_delimiter {
        let _ = writeln!(text, "PathDelimiter {}", quote(delimiter));
    }
    if let Some(value) = imap.use_namespace {
        let _ = writeln!(text, "UseNamespace {}", yes_no(value));
    }
    if let Some(value) = imap.subscribed_only {
        let _ = writeln!(text, "SubscribedOnly {}", yes_no(value));
    }
    Ok(())
}

fn sides_keyword(sides: Sides) -> &'static str {
    match sides {
        Sides::None => "None",
        Sides::Far => "Far",
        Sides::Near => "Near",
        Sides::Both => "Both",
    }
}

fn operation_keyword(operation: Operation) -> &'static str {
    match operation {
        Operation::New => "New",
        Operation::Old => "Old",
        Operation::Upgrade => "Upgrade",
        Operation::Gone => "Gone",
        Operation::Flags => "Flags",
    }
}

fn render_channel(
    channel: &MailChannel,
    near: &MailStore,
    text: &mut String,
    rendered: &mut RenderedChannel,
) -> Result<(), RenderError> {
    let spec = &channel.spec;
    let name = rendered.channel_name.clone();
    let _ = writeln!(text, "Channel {}", quote(&name));
    for (keyword, side) in [("Far", &spec.far), ("Near", &spec.near)] {
        let mailbox = side.mailbox.as_deref().unwrap_or("");
        let _ = writeln!(
            text,
            "{keyword} {}",
            quote(&format!(":{}:{mailbox}", side.store_ref.name))
        );
    }
    if let Some(patterns) = spec.patterns.as_ref().filter(|p| !p.is_empty()) {
        let quoted: Vec<String> = patterns.iter().map(|p| quote(p)).collect();
        let _ = writeln!(text, "Patterns {}", quoted.join(" "));
    }
    if let Some(sync) = &spec.sync {
        let mut words = Vec::new();
        for (prefix, operations) in [("Pull", &sync.pull), ("Push", &sync.push)] {
            for operation in operations.iter().flatten() {
                words.push(format!("{prefix}{}", operation_keyword(*operation)));
            }
        }
        if words.is_empty() {
            words.push("None".into());
        }
        let _ = writeln!(text, "Sync {}", words.join(" "));
    }
    for (keyword, value) in [
        ("Create", spec.create),
        ("Remove", spec.remove),
        ("Expunge", spec.expunge),
        ("ExpungeSolo", spec.expunge_solo),
    ] {
        if let Some(sides) = value {
            let _ = writeln!(text, "{keyword} {}", sides_keyword(sides));
        }
    }
    if let Some(value) = spec.copy_arrival_date {
        let _ = writeln!(text, "CopyArrivalDate {}", yes_no(value));
    }
    if let Some(value) = spec.max_messages {
        let _ = writeln!(text, "MaxMessages {value}");
    }
    if let Some(side) = spec.expire_side {
        let keyword = if side == Side::Far { "Far" } else { "Near" };
        let _ = writeln!(text, "ExpireSide {keyword}");
    }
    if let Some(value) = spec.expire_unread {
        let _ = writeln!(text, "ExpireUnread {}", yes_no(value));
    }
    if let Some(size) = &spec.max_message_size {
        let bytes = quantity_bytes(size).ok_or_else(|| RenderError::InvalidChannel {
            channel: name.clone(),
            message: format!("maxMessageSize {:?} is not a byte size", size.0),
        })?;
        let _ = writeln!(text, "MaxSize {bytes}");
    }
    let state = spec.sync_state.clone().unwrap_or_default();
    if state.location == Some(SyncStateLocation::InMailbox) {
        text.push_str("SyncState *\n");
    } else {
        let folder = match (&state.volume, &near.spec.maildir) {
            (Some(volume), _) => volume_folder(volume, rendered),
            (None, Some(maildir)) => format!(
                "{}{DEFAULT_STATE_FOLDER}/",
                volume_folder(&maildir.volume, rendered)
            ),
            (None, None) => {
                return Err(RenderError::InvalidChannel {
                    channel: name,
                    message: "the near store is not a Maildir: set syncState.volume".into(),
                });
            }
        };
        let _ = writeln!(text, "SyncState {}", quote(&format!("{folder}{name}/")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::MailChannelSpec;
    use crate::operator::channel::ChannelSide;
    use crate::operator::common::StoreRef;
    use crate::operator::store::{ImapAuth, MailStoreSpec};

    fn maildir_store(name: &str, claim: &str) -> MailStore {
        MailStore::new(
            name,
            MailStoreSpec {
                maildir: Some(MaildirStore {
                    volume: VolumeRef {
                        claim_name: claim.into(),
                        sub_path: Some("mail".into()),
                    },
                    sub_folders: Some(SubFolders::Verbatim),
                    ..MaildirStore::default()
                }),
                ..MailStoreSpec::default()
            },
        )
    }

    fn imap_store(name: &str) -> MailStore {
        MailStore::new(
            name,
            MailStoreSpec {
                imap: Some(ImapStore {
                    host: Some("127.0.0.1".into()),
                    port: Some(1143),
                    auth: Some(ImapAuth {
                        username: Some("alice".into()),
                        password_secret_ref: Some(SecretKeyRef {
                            name: "mail-pass".into(),
                            key: "password".into(),
                        }),
                        ..ImapAuth::default()
                    }),
                    ..ImapStore::default()
                }),
                ..MailStoreSpec::default()
            },
        )
    }

    fn channel(far: &str, near: &str) -> MailChannel {
        MailChannel::new(
            "inbox",
            MailChannelSpec {
                far: ChannelSide {
                    store_ref: StoreRef { name: far.into() },
                    mailbox: None,
                },
                near: ChannelSide {
                    store_ref: StoreRef { name: near.into() },
                    mailbox: None,
                },
                patterns: Some(vec!["*".into(), "!Trash".into()]),
                create: Some(Sides::Near),
                ..MailChannelSpec::default()
            },
        )
    }

    #[test]
    fn imap_to_maildir_renders_a_config_the_engine_reads() {
        let far = imap_store("server");
        let near = maildir_store("local", "mail-pvc");
        let rendered = render(&channel("server", "local"), &far, &near).expect("renders");
        assert!(
            rendered
                .config
                .contains("PassFile \"../secrets/mail-pass/password\"")
        );
        assert!(!rendered.config.to_lowercase().contains("pass \""));
        assert_eq!(
            rendered.secret_keys,
            BTreeSet::from([("mail-pass".to_string(), "password".to_string())])
        );
        assert_eq!(
            rendered.claims,
            BTreeSet::from([("mail-pvc".to_string(), "mail".to_string())])
        );
        assert_eq!(rendered.imap_stores, BTreeSet::from(["server".to_string()]));

        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("mbsyncrc");
        std::fs::write(&file, &rendered.config).expect("write config");
        let env = crate::config::Environment {
            home: dir.path().to_string_lossy().into_owned(),
            xdg_config_home: None,
            xdg_state_home: None,
        };
        let loaded = crate::config::load(&file.to_string_lossy(), &env)
            .unwrap_or_else(|e| panic!("{e}\n{}", rendered.config));
        let channel = loaded.config.channel("inbox").expect("channel inbox");
        assert_eq!(channel.sides[0].store, "server");
        assert_eq!(channel.sides[1].store, "local");
        assert_eq!(
            channel.patterns,
            vec!["*".to_string(), "!Trash".to_string()]
        );
    }

    /// The account's MaxConnections as the engine reads the rendered config.
    fn rendered_max_connections(far: &MailStore) -> u32 {
        let near = maildir_store("local", "mail-pvc");
        let rendered = render(&channel("server", "local"), far, &near).expect("renders");
        let env = crate::config::Environment {
            home: "/home/mailsync".into(),
            xdg_config_home: None,
            xdg_state_home: None,
        };
        let loaded = crate::config::parse_text("mbsyncrc", rendered.config.as_bytes(), &env)
            .unwrap_or_else(|e| panic!("{e}\n{}", rendered.config));
        let Some(crate::config::StoreConfig::Imap(store)) = loaded.config.store("server") else {
            panic!("no IMAP store in\n{}", rendered.config);
        };
        let account = store.account_config(&loaded.config).expect("account");
        assert!(
            rendered
                .config
                .contains(&format!("\nMaxConnections {}\n", account.max_connections)),
            "{}",
            rendered.config
        );
        account.max_connections
    }

    #[test]
    fn connections_per_run_become_max_connections() {
        let mut far = imap_store("server");
        // Unset: one connection, as one run used before.
        assert_eq!(rendered_max_connections(&far), 1);
        if let Some(imap) = far.spec.imap.as_mut() {
            imap.max_connections = Some(8);
            imap.connections_per_run = Some(3);
        }
        assert_eq!(rendered_max_connections(&far), 3);
        assert_eq!(far.spec.imap.as_ref().map(|i| i.concurrent_runs()), Some(2));
        // Never more than the store's budget (the CRD refuses it; a stored object from
        // before is clamped).
        if let Some(imap) = far.spec.imap.as_mut() {
            imap.max_connections = None;
        }
        assert_eq!(rendered_max_connections(&far), 1);
    }

    #[test]
    fn a_line_break_in_a_field_cannot_add_config_lines() {
        let mut far = imap_store("server");
        if let Some(imap) = far.spec.imap.as_mut() {
            imap.host = Some("mail.example\"\nPassCmd \"cat /etc/shadow".into());
        }
        let near = maildir_store("local", "mail-pvc");
        let error = render(&channel("server", "local"), &far, &near).unwrap_err();
        assert_eq!(
            error.to_string(),
            "MailStore server: spec.imap.host contains a control character (such as a line break)"
        );
        let mut channel = channel("server", "local");
        channel.spec.patterns = Some(vec!["INBOX\rPass x".into()]);
        let error = render(&channel, &imap_store("server"), &near).unwrap_err();
        assert!(error.to_string().contains("spec.patterns[0]"), "{error}");
    }

    #[test]
    fn near_imap_without_a_state_volume_is_refused() {
        let far = maildir_store("local", "pvc");
        let near = imap_store("server");
        let error = render(&channel("local", "server"), &far, &near).expect_err("refused");
        assert!(error.to_string().contains("syncState.volume"), "{error}");
    }

    #[test]
    fn quantities_become_bytes() {
        assert_eq!(
            quantity_bytes(&Quantity("10Mi".into())),
            Some(10 * 1024 * 1024)
        );
        assert_eq!(quantity_bytes(&Quantity("500k".into())), Some(500_000));
        assert_eq!(quantity_bytes(&Quantity("1048576".into())), Some(1_048_576));
        assert_eq!(quantity_bytes(&Quantity("lots".into())), None);
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }
}
