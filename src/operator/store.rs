//! The `MailStore` resource: one mail store, an IMAP account or a Maildir tree on a
//! PersistentVolumeClaim, with everything an mbsync `IMAPAccount`/`IMAPStore` or `MaildirStore`
//! section can say, in Kubernetes style (credentials from Secrets, a CA from a ConfigMap or
//! Secret, the Maildir on a volume).
//!
//! mbsync keywords and their fields here:
//!
//! | mbsync | MailStore |
//! |---|---|
//! | `Trash`, `TrashNewOnly`, `TrashRemoteNew` | `trash`, `trashNewOnly`, `trashRemoteNew` |
//! | `MaxSize` | `maxMessageSize` |
//! | `MapInbox`, `Flatten` | `mapInbox`, `flatten` |
//! | `Host`, `Port`, `Tunnel`, `Timeout` | `imap.host`, `imap.port`, `imap.tunnel`, `imap.timeoutSeconds` |
//! | `User` / `UserCmd` | `imap.auth.username` / `imap.auth.usernameSecretRef` |
//! | `Pass` / `PassCmd` | `imap.auth.passwordSecretRef` (or `imap.auth.oauth2` for tokens) |
//! | `AuthMechs` | `imap.auth.mechanisms` |
//! | `TLSType`, `TLSVersions` | `imap.tls.mode`, `imap.tls.versions` |
//! | `SystemCertificates`, `CertificateFile` | `imap.tls.systemCertificates`, `imap.tls.ca` |
//! | `ClientCertificate`, `ClientKey` | `imap.tls.clientCertificate` |
//! | `CipherString` | `imap.tls.cipherString` |
//! | `PipelineDepth`, `DisableExtension` | `imap.pipelineDepth`, `imap.disableExtensions` |
//! | `MaxConnections` (mailsync extension) | `imap.connectionsPerRun` (runs of all channels together stay within `imap.maxConnections`) |
//! | `Path`, `PathDelimiter`, `UseNamespace`, `SubscribedOnly` (IMAPStore) | `imap.path`, `imap.pathDelimiter`, `imap.useNamespace`, `imap.subscribedOnly` |
//! | `Path`, `Inbox`, `SubFolders`, `InfoDelimiter`, `AltMap` (MaildirStore) | `maildir.path`, `maildir.inbox`, `maildir.subFolders`, `maildir.infoDelimiter`, `maildir.altMap` |
//! | global `FSync` | `maildir.fsync` |
//!
//! `UseKeychain` (macOS only) has no counterpart; the `*Cmd` keywords are replaced by Secrets.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ConfigMapKeyRef, RELATIVE_PATH_MESSAGE, RELATIVE_PATH_RULE, SecretKeyRef, VolumeRef,
};

/// CEL rule for a byte size given as a Kubernetes quantity (`10Mi`) or a number of bytes.
pub(crate) const BYTE_SIZE_RULE: &str =
    "type(self) == int ? self >= 0 : isQuantity(self) && !quantity(self).isLessThan(quantity('0'))";
pub(crate) const BYTE_SIZE_MESSAGE: &str =
    "must be a byte size such as 10Mi, 500k or 1048576 (0 means unlimited)";

/// A mail store: exactly one of `imap` or `maildir`, plus the settings every store has.
// clippy mistakes the repeated `type_ = …` inside the printcolumn lists for duplicated
// attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "mailsync.io",
    version = "v1alpha1",
    kind = "MailStore",
    plural = "mailstores",
    namespaced,
    status = "MailStoreStatus",
    shortname = "mst",
    category = "mailsync",
    derive = "PartialEq",
    derive = "Default",
    doc = "A mail store that MailChannels synchronize: an IMAP account or a Maildir tree on a PersistentVolumeClaim.",
    printcolumn(
        name = "Host",
        type_ = "string",
        json_path = ".spec.imap.host",
        description = "IMAP server"
    ),
    printcolumn(
        name = "Claim",
        type_ = "string",
        json_path = ".spec.maildir.volume.claimName",
        description = "PersistentVolumeClaim holding the Maildir tree"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.imap) != has(self.maildir)").message("exactly one of spec.imap and spec.maildir must be set"))]
#[serde(rename_all = "camelCase")]
pub struct MailStoreSpec {
    /// An IMAP server account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<ImapStore>,
    /// A Maildir tree on a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maildir: Option<MaildirStore>,

    /// Mailbox (canonical name, relative to the store's path) that messages are copied or moved
    /// to before they are expunged from this store (mbsync `Trash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub trash: Option<String>,
    /// Trash only messages that were never propagated to the other side (`TrashNewOnly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trash_new_only: Option<bool>,
    /// When the other side of a channel expunges messages that were never propagated, keep
    /// copies in this store's trash (`TrashRemoteNew`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trash_remote_new: Option<bool>,
    /// Messages larger than this are propagated into this store only as a placeholder
    /// (`MaxSize`); a quantity (`10Mi`) or bytes; 0 or unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(BYTE_SIZE_RULE).message(BYTE_SIZE_MESSAGE))]
    pub max_message_size: Option<Quantity>,
    /// Name of a virtual mailbox that is an alias for this store's INBOX (`MapInbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub map_inbox: Option<String>,
    /// Hierarchy delimiter used in this store's mailbox names instead of `/` (`Flatten`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("!self.contains('/')").message("flatten cannot contain the canonical hierarchy delimiter '/'"))]
    pub flatten: Option<String>,
}

/// An IMAP account and the part of its server to use (`IMAPAccount` + `IMAPStore`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.host) != has(self.tunnel)").message("exactly one of imap.host and imap.tunnel must be set"))]
#[x_kube(validation = Rule::new("!has(self.tls) || self.tls.mode != 'None' || has(self.tunnel) || (has(self.tls.allowInsecure) && self.tls.allowInsecure)").message("tls.mode None sends the password unencrypted: set tls.allowInsecure: true to allow it (not needed with a tunnel)"))]
#[x_kube(validation = Rule::new("!has(self.port) || has(self.host)").message("imap.port needs imap.host (a tunnel has no port)"))]
#[x_kube(validation = Rule::new("!has(self.connectionsPerRun) || self.connectionsPerRun <= (has(self.maxConnections) ? self.maxConnections : 1)").message("imap.connectionsPerRun cannot exceed imap.maxConnections (default 1)"))]
#[serde(rename_all = "camelCase")]
pub struct ImapStore {
    /// Server host name or IP address; also the name checked in its certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    /// TCP port; unset: 993 with tls.mode Implicit, else 143.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Shell command whose stdin/stdout speak IMAP, instead of a TCP connection (`Tunnel`);
    /// runs with `sh -c` in the sync Job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub tunnel: Option<String>,
    /// Seconds to wait for connecting and for each server response; 0 waits forever
    /// (`Timeout`, default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub timeout_seconds: Option<i32>,
    /// Login: user name, password or OAuth2 token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ImapAuth>,
    /// Transport security; unset: implicit TLS (port 993) with TLS 1.2 and 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ImapTls>,
    /// Most IMAP commands in flight at once (`PipelineDepth`); unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub pipeline_depth: Option<i32>,
    /// Server capabilities to ignore (`DisableExtension`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub disable_extensions: Option<Vec<ImapExtension>>,
    /// Most connections to this server at once, over all channels using this store; sync
    /// Jobs wait for a free slot (default 1). A run takes `connectionsPerRun` of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_connections: Option<i32>,
    /// Connections one sync run opens to this server at most, synchronizing that many
    /// mailboxes at once (`MaxConnections` in the run's config; default 1, at most
    /// `maxConnections`). Runs of other channels using this store wait while the store's
    /// `maxConnections` are taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub connections_per_run: Option<i32>,
    /// Server-side prefix of every mailbox except INBOX, e.g. `INBOX.` (`Path`); overrides
    /// the server's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub path: Option<String>,
    /// The server's hierarchy delimiter, one character (`PathDelimiter`); unset: as the
    /// server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1))]
    pub path_delimiter: Option<String>,
    /// Without `path`, use the server's personal namespace as prefix (`UseNamespace`,
    /// default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_namespace: Option<bool>,
    /// List only subscribed mailboxes (`SubscribedOnly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_only: Option<bool>,
}

impl ImapStore {
    /// The store's connection budget over all runs (`maxConnections`, default 1).
    pub fn connection_budget(&self) -> i32 {
        self.max_connections.unwrap_or(1).max(1)
    }

    /// The connections one run may open (`connectionsPerRun`, default 1, within the budget).
    pub fn run_connections(&self) -> i32 {
        self.connections_per_run
            .unwrap_or(1)
            .clamp(1, self.connection_budget())
    }

    /// How many runs may use the store at once.
    pub fn concurrent_runs(&self) -> usize {
        (self.connection_budget() / self.run_connections()).max(1) as usize
    }
}

/// How to log in. Unset fields are not sent; with neither password nor OAuth2 the store can
/// only be used through a pre-authenticating tunnel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!(has(self.username) && has(self.usernameSecretRef))").message("set either auth.username or auth.usernameSecretRef, not both"))]
#[x_kube(validation = Rule::new("!(has(self.passwordSecretRef) && has(self.oauth2))").message("set either auth.passwordSecretRef or auth.oauth2, not both"))]
#[x_kube(validation = Rule::new("!(has(self.passwordSecretRef) || has(self.oauth2)) || has(self.username) || has(self.usernameSecretRef)").message("a password or OAuth2 token needs auth.username or auth.usernameSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct ImapAuth {
    /// Login name (`User`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub username: Option<String>,
    /// Login name from a Secret (replaces `UserCmd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretKeyRef>,
    /// Password from a Secret (replaces `Pass` and `PassCmd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// OAuth2 login (SASL XOAUTH2 / OAUTHBEARER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    /// Acceptable SASL mechanisms, e.g. `PLAIN`, `LOGIN`, `XOAUTH2` (`AuthMechs`); unset:
    /// any the server offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), inner(regex(pattern = r"^[A-Za-z0-9_-]{1,40}$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub mechanisms: Option<Vec<String>>,
}

/// An OAuth2 access token, given directly or obtained from a refresh token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.accessTokenSecretRef) != has(self.refreshTokenSecretRef)").message("oauth2 needs exactly one of accessTokenSecretRef (a token kept fresh by something else) and refreshTokenSecretRef"))]
#[x_kube(validation = Rule::new("!has(self.refreshTokenSecretRef) || (has(self.tokenUrl) && (has(self.clientId) || has(self.clientIdSecretRef)))").message("oauth2.refreshTokenSecretRef needs tokenUrl and clientId or clientIdSecretRef"))]
#[x_kube(validation = Rule::new("!(has(self.clientId) && has(self.clientIdSecretRef))").message("set either oauth2.clientId or oauth2.clientIdSecretRef, not both"))]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    /// A current access token in a Secret, refreshed by something else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_secret_ref: Option<SecretKeyRef>,
    /// A refresh token in a Secret; the sync Job exchanges it at `tokenUrl` for an access
    /// token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_secret_ref: Option<SecretKeyRef>,
    /// Token endpoint, e.g. `https://oauth2.googleapis.com/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("oauth2.tokenUrl must be an https:// URL"))]
    pub token_url: Option<String>,
    /// OAuth2 client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub client_id: Option<String>,
    /// OAuth2 client ID from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_secret_ref: Option<SecretKeyRef>,
    /// OAuth2 client secret from a Secret (not needed by public clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_secret_ref: Option<SecretKeyRef>,
    /// Scopes to request with the refresh token, e.g. `https://mail.google.com/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub scopes: Option<Vec<String>>,
}

/// TLS settings (`TLSType`, `TLSVersions`, certificates).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImapTls {
    /// `Implicit`: TLS from the start (IMAPS, port 993); `StartTLS`: upgrade a plain
    /// connection (port 143); `None`: no encryption, only with `allowInsecure`.
    #[serde(default)]
    pub mode: TlsMode,
    /// Allow `mode: None` over TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure: Option<bool>,
    /// Enabled protocol versions; unset: 1.2 and 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub versions: Option<Vec<TlsVersion>>,
    /// Trust the system's CA certificates (`SystemCertificates`, default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_certificates: Option<bool>,
    /// Extra trusted certificates, PEM (`CertificateFile`): CA certificates are trust
    /// anchors, others are pinned server certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaSource>,
    /// Client certificate for TLS client authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
    /// OpenSSL cipher list for TLS 1.2 and older (`CipherString`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub cipher_string: Option<String>,
}

/// How the connection is encrypted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TlsMode {
    #[default]
    Implicit,
    #[serde(rename = "StartTLS")]
    StartTls,
    None,
}

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TlsVersion {
    #[serde(rename = "1.0")]
    V1_0,
    #[serde(rename = "1.1")]
    V1_1,
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// Where trusted certificates come from: a ConfigMap key or a Secret key, PEM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.configMapKeyRef) != has(self.secretKeyRef)").message("tls.ca needs exactly one of configMapKeyRef and secretKeyRef"))]
#[serde(rename_all = "camelCase")]
pub struct CaSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// A client certificate chain and its private key, PEM, from Secrets (`ClientCertificate`,
/// `ClientKey`); for a `kubernetes.io/tls` Secret use the keys `tls.crt` and `tls.key`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificate {
    pub certificate_secret_ref: SecretKeyRef,
    pub private_key_secret_ref: SecretKeyRef,
}

/// IMAP extensions that can be disabled (`DisableExtension`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImapExtension {
    #[serde(rename = "IMAP4REV1")]
    Imap4Rev1,
    #[serde(rename = "LOGINDISABLED")]
    LoginDisabled,
    #[serde(rename = "SASL-IR")]
    SaslIr,
    #[serde(rename = "STARTTLS")]
    StartTls,
    #[serde(rename = "UIDPLUS")]
    UidPlus,
    #[serde(rename = "LITERAL+")]
    LiteralPlus,
    #[serde(rename = "LITERAL-")]
    LiteralMinus,
    #[serde(rename = "MOVE")]
    Move,
    #[serde(rename = "NAMESPACE")]
    Namespace,
    #[serde(rename = "UTF8=ACCEPT")]
    Utf8Accept,
    #[serde(rename = "UTF8=ONLY")]
    Utf8Only,
    #[serde(rename = "COMPRESS=DEFLATE")]
    CompressDeflate,
}

/// A Maildir tree on a PersistentVolumeClaim (`MaildirStore`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!(has(self.subFolders) && self.subFolders == 'MaildirPlusPlus' && has(self.path))").message("maildir.path cannot be set with subFolders MaildirPlusPlus (the folders live inside the inbox)"))]
#[serde(rename_all = "camelCase")]
pub struct MaildirStore {
    /// The volume and the folder on it holding the tree.
    pub volume: VolumeRef,
    /// Root of the mailboxes other than INBOX, relative to the volume folder (`Path`): up to
    /// the last `/` a folder, after it a prefix glued to every mailbox name, e.g. `Mail/` or
    /// `Mail/work-`; unset: the volume folder itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new(RELATIVE_PATH_RULE).message(RELATIVE_PATH_MESSAGE))]
    pub path: Option<String>,
    /// INBOX, relative to the volume folder (`Inbox`); unset: `INBOX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new(RELATIVE_PATH_RULE).message(RELATIVE_PATH_MESSAGE))]
    pub inbox: Option<String>,
    /// On-disk layout of sub-folders (`SubFolders`); unset: mailboxes cannot have
    /// sub-folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_folders: Option<SubFolders>,
    /// Character before the flags in message file names, one punctuation character
    /// (`InfoDelimiter`, default `:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[!-/:-@\[-`{-~]$"))]
    pub info_delimiter: Option<String>,
    /// Keep the UID map in a Berkeley DB instead of file names (`AltMap`). mailsync has no
    /// Berkeley DB support, so only `false` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == false").message("altMap: true (Berkeley DB UID maps) is not supported: convert the mailboxes with isync's mdconvert and leave altMap out"))]
    pub alt_map: Option<bool>,
    /// Flush new messages and state to disk before going on (`FSync`, default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsync: Option<bool>,
}

/// Maildir sub-folder layouts.
// The variants have plain comments: doc comments would make schemars describe the enum with
// `oneOf`, and the field's own description would be lost when kube flattens it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SubFolders {
    // `a/b` is the directory `a/b`.
    Verbatim,
    // Courier style: `a/b` is `.a.b` inside the inbox (mbsync `Maildir++`).
    MaildirPlusPlus,
    // `a/b` is `a/.b` (mbsync `Legacy`).
    Legacy,
}

/// What the operator last found out about a store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailStoreStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `CredentialsInvalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Option<Vec<Condition>>,
    /// Capabilities the IMAP server announced at the last connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub capabilities: Option<Vec<String>>,
    /// When the store was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,
}
