//! Session establishment (spec config-cli-stores §5.3–§5.5, §5.8): connect, TLS, greeting,
//! capabilities, STARTTLS, authentication with credentials from the config, ENABLE
//! UTF8=ACCEPT / QRESYNC, NAMESPACE and the resulting name mapping. Also `get-cert`'s
//! handshake.
//!
//! **One round for the log-in.** What follows the log-in does not wait for its answer: an
//! ENABLE of QRESYNC and UTF8=ACCEPT (when the server offers ENABLE before log-in), the
//! NAMESPACE the name mapping needs and, when the caller will list the store with the
//! pattern `*`, that LIST and the STATUS of the mailboxes the caller names (`status_ahead`,
//! after the others) are written right behind LOGIN (RFC 3501 §5.5 allows pipelining;
//! behind AUTHENTICATE they go once it ends; PipelineDepth bounds them). Their answers are
//! read only after the log-in's: a refused log-in is reported as such, and the commands
//! behind it, refused by the server as not authenticated, are ignored. Whatever the server
//! does not know (`BAD` to ENABLE or NAMESPACE) leaves the session as if it had not been
//! asked; the capabilities after log-in still decide what is used (a NAMESPACE answer
//! counts only if NAMESPACE is advertised, ENABLE only for what `* ENABLED` names). A
//! refused LIST is kept to fail the listing it stands for; a refused STATUS leaves its
//! mailbox without a status. The capabilities after log-in
//! come with its answer on most servers; a CAPABILITY round follows otherwise.

use super::auth::{self, Choice, Sasl};
use super::connection::{Connection, GreetingType, Outcome, SaslSteps};
use super::names::{NameMap, normalize_inbox};
use super::tls;
use crate::config::{CredentialCommand, ImapAccountConfig, ImapStoreConfig, TlsType};
use crate::store::{FailureScope, Reporter, StoreError, StoreResult};
use imap_next::imap_types::auth::AuthMechanism;
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::extensions::enable::CapabilityEnable;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::secret::Secret;
use std::borrow::Cow;
use std::io::BufRead;
use std::str::FromStr;
use std::time::Duration;

fn permanent(message: String) -> StoreError {
    StoreError::store(message)
}

struct SaslAdapter<'a>(&'a mut Sasl);

impl SaslSteps for SaslAdapter<'_> {
    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        self.0.step(challenge)
    }
}

/// What the log-in round learnt besides the connection and the name mapping.
#[derive(Debug, Default)]
pub struct LoginExtras {
    /// `ENABLE QRESYNC` succeeded.
    pub qresync_enabled: bool,
    /// The untagged answers of the `LIST "" "*"` (or LSUB) sent along with the log-in, or
    /// its refusal; valid for a listing whose only pattern is `*` (an empty name prefix).
    pub listed_ahead: Option<Result<Vec<Data<'static>>, Outcome>>,
    /// The mailboxes (names as sent) whose STATUS went out behind the log-in, whatever the
    /// answer; a refused one is left without a status, as in the STATUS round.
    pub status_asked: Vec<String>,
    /// The `* STATUS` answers to them.
    pub status_answers: Vec<Data<'static>>,
}

/// A command written right behind the log-in, and what it was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FollowUp {
    Enable,
    Namespace,
    List,
    Status,
}

/// The commands to write behind the log-in (see the module doc), decided from the
/// capabilities before log-in and the config.
fn follow_ups(
    connection: &Connection,
    store: &ImapStoreConfig,
    list_ahead: bool,
    status_ahead: &[CommandBody<'static>],
    pipeline_depth: Option<u32>,
) -> Vec<(FollowUp, CommandBody<'static>)> {
    let mut commands = Vec::new();
    if connection.has("ENABLE") {
        let mut wanted = Vec::new();
        if !connection.is_disabled("QRESYNC") && !connection.is_disabled("CONDSTORE") {
            wanted.push(CapabilityEnable::from(
                imap_next::imap_types::core::Atom::unvalidated("QRESYNC"),
            ));
        }
        if !connection.is_disabled("UTF8=ACCEPT") {
            wanted.push(CapabilityEnable::from_str_accept());
        }
        if let Ok(capabilities) = Vec1::try_from(wanted) {
            commands.push((FollowUp::Enable, CommandBody::Enable { capabilities }));
        }
    }
    if wants_namespace(store) && !connection.is_disabled("NAMESPACE") {
        commands.push((FollowUp::Namespace, CommandBody::Namespace));
    }
    // STATUS before LIST: Dovecot (2.3, Maildir) answers a STATUS or SELECT after a LIST in
    // the same session by re-reading the mailbox, 0.35 s for 50,000 messages, and at once
    // before it.
    if !connection.is_disabled("CONDSTORE") {
        for status in status_ahead {
            commands.push((FollowUp::Status, status.clone()));
        }
    }
    if list_ahead
        && store.path.is_none()
        && let Some(list) = list_command(store.subscribed_only, "*")
    {
        commands.push((FollowUp::List, list));
    }
    // PipelineDepth counts the log-in too.
    let room = pipeline_depth.map_or(usize::MAX, |d| (d.max(1) as usize) - 1);
    commands.truncate(room);
    commands
}

/// `LIST "" <pattern>`, or `LSUB` for a store with SubscribedOnly; `None` if the pattern
/// cannot be sent.
pub fn list_command(subscribed_only: bool, pattern: &str) -> Option<CommandBody<'static>> {
    let reference = imap_next::imap_types::mailbox::Mailbox::try_from("").ok()?;
    let mailbox_wildcard =
        imap_next::imap_types::mailbox::ListMailbox::try_from(pattern.to_string()).ok()?;
    Some(if subscribed_only {
        CommandBody::Lsub {
            reference,
            mailbox_wildcard,
        }
    } else {
        CommandBody::List {
            reference,
            mailbox_wildcard,
        }
    })
}

/// The name mapping needs NAMESPACE (for the delimiter or the prefix).
fn wants_namespace(store: &ImapStoreConfig) -> bool {
    store.path_delimiter.is_none() || (store.path.is_none() && store.use_namespace)
}

/// Opens a connection for the account, logs in and works out the store's name mapping.
/// With `list_ahead`, a listing of the whole store is asked for in the log-in's round (the
/// caller lists the store next). `status_ahead` are STATUS commands written behind the
/// log-in too (after the others, within PipelineDepth); their answers come back in the
/// extras.
pub async fn establish(
    account: &ImapAccountConfig,
    store: &ImapStoreConfig,
    reporter: &dyn Reporter,
    prompted: &mut Option<String>,
    trace: bool,
    list_ahead: bool,
    status_ahead: &[CommandBody<'static>],
) -> StoreResult<(Connection, NameMap, LoginExtras)> {
    let tls_type = account.tls_type;
    let setup = if tls_type != TlsType::None {
        let setup = tls::client_config(account).map_err(permanent)?;
        for warning in &setup.warnings {
            reporter.warning(warning);
        }
        Some(setup)
    } else {
        if account.cipher_string.is_some() {
            reporter.warning(
                "Warning: CipherString has no effect: rustls chooses its cipher suites itself.",
            );
        }
        None
    };
    let port = account
        .port
        .unwrap_or(if tls_type == TlsType::Imaps { 993 } else { 143 });
    let timeout = (account.timeout > 0).then(|| Duration::from_secs(u64::from(account.timeout)));
    if let Some(tunnel) = &account.tunnel {
        reporter.debug(&format!("Starting tunnel '{tunnel}'..."));
    } else if let Some(host) = &account.host {
        reporter.debug(&format!("Resolving {host}..."));
    }
    let mut connection = Connection::open(
        account.host.as_deref(),
        port,
        account.tunnel.as_deref(),
        timeout,
        &account.disable_extensions,
    )
    .await?;
    connection.trace = trace;
    let host = account.host.as_deref();
    if tls_type == TlsType::Imaps
        && let Some(setup) = &setup
    {
        connection.start_tls(setup, host).await?;
        reporter.debug("Connection is now encrypted");
    }
    let greeting = connection.read_greeting().await?;
    if !connection.capabilities_known {
        run_ok(&mut connection, CommandBody::Capability, "CAPABILITY").await?;
    }
    let mut extras = LoginExtras::default();
    let mut follow_up_outcomes: Vec<(FollowUp, Outcome)> = Vec::new();
    if !connection.has("IMAP4REV1") {
        return Err(permanent(
            "IMAP error: Server does not support IMAP4rev1".into(),
        ));
    }
    if greeting == GreetingType::PreAuth {
        if tls_type == TlsType::StartTls {
            return Err(permanent("IMAP error: SSL support not available".into()));
        }
    } else {
        if tls_type == TlsType::StartTls
            && let Some(setup) = &setup
        {
            if !connection.has("STARTTLS") {
                return Err(permanent("IMAP error: SSL support not available".into()));
            }
            run_ok(&mut connection, CommandBody::StartTLS, "STARTTLS").await?;
            connection.start_tls(setup, host).await?;
            reporter.debug("Connection is now encrypted");
            connection.forget_capabilities();
            run_ok(&mut connection, CommandBody::Capability, "CAPABILITY").await?;
        }
        let follow = follow_ups(
            &connection,
            store,
            list_ahead,
            status_ahead,
            account.pipeline_depth,
        );
        for (kind, command) in &follow {
            if *kind == FollowUp::Status
                && let CommandBody::Status { mailbox, .. } = command
            {
                extras.status_asked.push(mailbox_text(mailbox));
            }
        }
        let tags = authenticate(&mut connection, account, port, reporter, prompted, follow).await?;
        // The log-in succeeded: the answers of the commands behind it.
        for (kind, tag) in tags {
            let outcome = connection.wait_for(&tag).await?;
            follow_up_outcomes.push((kind, outcome));
        }
        if !connection.capabilities_known {
            run_ok(&mut connection, CommandBody::Capability, "CAPABILITY").await?;
        }
    }
    // COMPRESS=DEFLATE goes ahead of the next command (not in a round of its own).
    if connection.has("COMPRESS=DEFLATE") {
        connection.offer_compression();
    }
    let asked = |kind: FollowUp| follow_up_outcomes.iter().any(|(k, _)| *k == kind);
    let answered = |kind: FollowUp| {
        follow_up_outcomes
            .iter()
            .any(|(k, outcome)| *k == kind && outcome.is_ok())
    };
    let mut names = NameMap::default();
    let mut namespace_data = Vec::new();
    let mut list_data = Vec::new();
    for data in std::mem::take(&mut connection.data) {
        match data {
            Data::Enabled { capabilities } if answered(FollowUp::Enable) => {
                for capability in capabilities {
                    match capability.to_string().to_ascii_uppercase().as_str() {
                        "QRESYNC" => extras.qresync_enabled = true,
                        "UTF8=ACCEPT" => names.utf8 = true,
                        _ => {}
                    }
                }
            }
            Data::Namespace { .. } => namespace_data.push(data),
            Data::List { .. } | Data::Lsub { .. } => list_data.push(data),
            Data::Status { .. } if asked(FollowUp::Status) => extras.status_answers.push(data),
            _ => {}
        }
    }
    if let Some((_, outcome)) = follow_up_outcomes
        .iter()
        .find(|(kind, _)| *kind == FollowUp::List)
    {
        extras.listed_ahead = Some(if outcome.is_ok() {
            Ok(list_data)
        } else {
            Err(outcome.clone())
        });
    }
    // UTF8=ACCEPT went with the ENABLE behind the log-in unless DisableExtension left it
    // out; a server with UTF8=ONLY is still asked for it then.
    let utf8_asked = asked(FollowUp::Enable) && !connection.is_disabled("UTF8=ACCEPT");
    if !names.utf8 && !utf8_asked && (connection.has("UTF8=ACCEPT") || connection.has("UTF8=ONLY"))
    {
        let capabilities = Vec1::from(CapabilityEnable::from_str_accept());
        run_ok(
            &mut connection,
            CommandBody::Enable { capabilities },
            "ENABLE UTF8=ACCEPT",
        )
        .await?;
        names.utf8 = true;
    }
    let mut namespace: Option<(String, Option<char>)> = None;
    if connection.has("NAMESPACE") && wants_namespace(store) {
        if !answered(FollowUp::Namespace) {
            run_ok(&mut connection, CommandBody::Namespace, "NAMESPACE").await?;
            namespace_data = std::mem::take(&mut connection.data);
        }
        for data in namespace_data {
            if let Data::Namespace { personal, .. } = data
                && let Some(first) = personal.first()
            {
                let raw = first.prefix.as_ref();
                let prefix = if names.utf8 {
                    String::from_utf8_lossy(raw).into_owned()
                } else {
                    super::names::utf7_decode(raw)
                        .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
                };
                namespace = Some((prefix, first.delimiter.map(|d| d.inner())));
            }
        }
    }
    names.delimiter = store
        .path_delimiter
        .or_else(|| namespace.as_ref().and_then(|n| n.1));
    names.prefix = match (&store.path, &namespace) {
        (Some(path), _) => path.clone(),
        (None, Some((prefix, _))) if store.use_namespace => prefix.clone(),
        _ => String::new(),
    };
    names.prefix = normalize_inbox(&names.prefix, names.delimiter);
    Ok((connection, names, extras))
}

/// A mailbox argument or answer as the text sent (`INBOX` for the inbox).
pub fn mailbox_text(mailbox: &imap_next::imap_types::mailbox::Mailbox<'_>) -> String {
    match mailbox {
        imap_next::imap_types::mailbox::Mailbox::Inbox => "INBOX".to_string(),
        imap_next::imap_types::mailbox::Mailbox::Other(other) => {
            String::from_utf8_lossy(other.inner().as_ref()).into_owned()
        }
    }
}

trait EnableUtf8 {
    fn from_str_accept() -> Self;
}

impl EnableUtf8 for CapabilityEnable<'static> {
    fn from_str_accept() -> Self {
        CapabilityEnable::Utf8(imap_next::imap_types::extensions::utf8::Utf8Kind::Accept)
    }
}

async fn run_ok(
    connection: &mut Connection,
    command: CommandBody<'static>,
    shown: &str,
) -> StoreResult<()> {
    let outcome = connection
        .execute(vec![command], Some(1))
        .await?
        .pop()
        .ok_or_else(|| permanent("IMAP error: a command got no answer".into()))?;
    if !outcome.is_ok() {
        return Err(permanent(format!(
            "IMAP command '{shown}' returned an error: {} {}",
            super::status_word(outcome.kind),
            outcome.text
        )));
    }
    Ok(())
}

/// Authenticates with the mechanism chosen from the capabilities and AuthMechs, writing
/// `follow` right behind the log-in command; returns their tags once the log-in succeeded
/// (their answers are still to be read).
async fn authenticate(
    connection: &mut Connection,
    account: &ImapAccountConfig,
    port: u16,
    reporter: &dyn Reporter,
    prompted: &mut Option<String>,
    follow: Vec<(FollowUp, CommandBody<'static>)>,
) -> StoreResult<Vec<(FollowUp, String)>> {
    let server_mechs: Vec<String> = connection
        .capabilities
        .iter()
        .filter_map(|c| c.strip_prefix("AUTH=").map(str::to_string))
        .collect();
    let login_available = !connection.has("LOGINDISABLED");
    let secure = connection.encrypted || connection.tunnel;
    let choice = auth::choose(&account.auth_mechs, &server_mechs, login_available, secure)
        .map_err(permanent)?;
    let user = user(account)?;
    let pass = password(account, prompted)?;
    connection.forget_capabilities();
    match choice {
        Choice::Login => {
            if !secure {
                reporter.warning("*** IMAP Warning *** Password is being sent in the clear");
            }
            let Ok(command) = CommandBody::login(user.clone(), pass) else {
                return Err(permanent(format!(
                    "IMAP error: user name or password cannot be sent with LOGIN (account {})",
                    account.name
                )));
            };
            let (login, tags) = submit_with_follow_ups(connection, command, follow)?;
            let o = connection.wait_for(&login).await?;
            if !o.is_ok() {
                return Err(permanent(format!(
                    "IMAP command 'LOGIN <user> <pass>' returned an error: {} (account {}, user {user}, server {})",
                    o.text, account.name, connection.name
                )));
            }
            Ok(tags)
        }
        Choice::Sasl(mechanism) => {
            reporter.debug(&format!(
                "Authenticating with SASL mechanism {mechanism}..."
            ));
            if !secure && matches!(mechanism.as_str(), "PLAIN" | "XOAUTH2" | "OAUTHBEARER") {
                reporter.warning("*** IMAP Warning *** Password is being sent in the clear");
            }
            let host = account.host.clone().unwrap_or_default();
            let mut sasl = Sasl::new(&mechanism, &user, &pass, &host, port);
            let initial = if connection.has("SASL-IR") {
                sasl.initial_response().map_err(permanent)?
            } else {
                None
            };
            let Ok(mech) = AuthMechanism::from_str(&mechanism) else {
                return Err(permanent(format!(
                    "IMAP error: bad mechanism name {mechanism}"
                )));
            };
            let command = CommandBody::Authenticate {
                mechanism: mech,
                initial_response: initial.map(|ir| Secret::new(Cow::Owned(ir))),
            };
            let mut adapter = SaslAdapter(&mut sasl);
            let (authenticate, tags) = submit_with_follow_ups(connection, command, follow)?;
            let o = connection
                .wait_for_with(&authenticate, Some(&mut adapter))
                .await?;
            if !o.is_ok() {
                let shown = if mechanism == "PLAIN" {
                    "AUTHENTICATE PLAIN <authdata>".to_string()
                } else {
                    format!("AUTHENTICATE {mechanism}")
                };
                let mut message = format!(
                    "IMAP command '{shown}' returned an error: {} (account {}, user {user}, server {})",
                    o.text, account.name, connection.name
                );
                // Say why the client gave up, if it did (e.g. a wrong SCRAM server signature).
                for note in connection.notes.drain(..) {
                    message.push('\n');
                    message.push_str(&note);
                }
                return Err(permanent(message));
            }
            Ok(tags)
        }
    }
}

/// Submits the log-in command and the commands to follow it, and writes them all.
fn submit_with_follow_ups(
    connection: &mut Connection,
    login: CommandBody<'static>,
    follow: Vec<(FollowUp, CommandBody<'static>)>,
) -> StoreResult<(String, Vec<(FollowUp, String)>)> {
    let login_tag = connection.submit(login)?;
    let mut tags = Vec::with_capacity(follow.len());
    for (kind, command) in follow {
        tags.push((kind, connection.submit(command)?));
    }
    Ok((login_tag, tags))
}

/// The login name: User, UserCmd or UserFile.
fn user(account: &ImapAccountConfig) -> StoreResult<String> {
    if let Some(user) = &account.user {
        return Ok(user.clone());
    }
    if let Some(command) = &account.user_cmd {
        return run_credential_command(account, command, "UserCmd");
    }
    if let Some(file) = &account.user_file {
        return first_line_of_file(account, file, "UserFile");
    }
    Err(permanent(format!(
        "Skipping account {}, no user",
        account.name
    )))
}

/// The password (or OAuth token): Pass, PassCmd, PassFile, else asked for on the terminal.
fn password(account: &ImapAccountConfig, prompted: &mut Option<String>) -> StoreResult<String> {
    if let Some(pass) = &account.pass {
        return Ok(pass.clone());
    }
    if let Some(command) = &account.pass_cmd {
        return run_credential_command(account, command, "PassCmd");
    }
    if let Some(file) = &account.pass_file {
        return first_line_of_file(account, file, "PassFile");
    }
    if account.use_keychain {
        return Err(permanent(format!(
            "Skipping account {}, UseKeychain is not supported on this system",
            account.name
        )));
    }
    if let Some(pass) = prompted {
        return Ok(pass.clone());
    }
    let pass = prompt_password(&account.name)?;
    if pass.is_empty() {
        return Err(permanent(format!(
            "Skipping account {}, no password",
            account.name
        )));
    }
    *prompted = Some(pass.clone());
    Ok(pass)
}

/// Asks for a password on the controlling terminal without echo.
fn prompt_password(account: &str) -> StoreResult<String> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let no_terminal = |e: std::io::Error| {
        permanent(format!(
            "Skipping account {account}, no password (cannot ask: {e})"
        ))
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_terminal)?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid descriptor.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the duration of these calls.
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut writer = &tty;
    let _ = write!(writer, "Password ({account}): ");
    let _ = writer.flush();
    let mut line = String::new();
    let result = std::io::BufReader::new(&tty).read_line(&mut line);
    if have_termios {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    let _ = writeln!(writer);
    result.map_err(no_terminal)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn first_line_of_file(
    account: &ImapAccountConfig,
    file: &std::path::Path,
    kind: &str,
) -> StoreResult<String> {
    let handle = std::fs::File::open(file).map_err(|e| {
        permanent(format!(
            "Skipping account {}, {kind} '{}' cannot be read: {e}",
            account.name,
            file.display()
        ))
    })?;
    let mut line = String::new();
    std::io::BufReader::new(handle)
        .read_line(&mut line)
        .map_err(|e| {
            permanent(format!(
                "Skipping account {}, {kind} '{}' cannot be read: {e}",
                account.name,
                file.display()
            ))
        })?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        return Err(permanent(format!(
            "Skipping account {}, {kind} '{}' is empty",
            account.name,
            file.display()
        )));
    }
    Ok(line)
}

fn run_credential_command(
    account: &ImapAccountConfig,
    command: &CredentialCommand,
    kind: &str,
) -> StoreResult<String> {
    use std::os::unix::process::ExitStatusExt;
    let mut process = std::process::Command::new("/bin/sh");
    process.arg("-c").arg(&command.command);
    if !command.plus {
        process.stdin(std::process::Stdio::null());
    }
    let output = process
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| {
            permanent(format!(
                "Skipping account {}, {kind} failed: {e}",
                account.name
            ))
        })?;
    if output.status.signal().is_some() {
        return Err(permanent(format!(
            "Skipping account {}, {kind} crashed",
            account.name
        )));
    }
    if !output.status.success() {
        return Err(permanent(format!(
            "Skipping account {}, {kind} exited with status {}",
            account.name,
            output.status.code().unwrap_or(-1)
        )));
    }
    let first = output
        .stdout
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let first = &first[..first.len().min(8191)];
    if first.is_empty() {
        return Err(permanent(format!(
            "Skipping account {}, {kind} produced no output",
            account.name
        )));
    }
    Ok(String::from_utf8_lossy(first).into_owned())
}

/// `get-cert`: the server's certificate chain as PEM (nothing is verified).
pub async fn fetch_certificates(host: &str, port: u16, starttls: bool) -> StoreResult<String> {
    let (config, chain) = tls::recording_config().map_err(permanent)?;
    let setup = tls::TlsSetup {
        config,
        failure: Default::default(),
        warnings: Vec::new(),
    };
    let timeout = Some(Duration::from_secs(20));
    let mut connection = Connection::open(Some(host), port, None, timeout, &[]).await?;
    if starttls {
        connection.read_greeting().await?;
        if !connection.capabilities_known {
            run_ok(&mut connection, CommandBody::Capability, "CAPABILITY").await?;
        }
        if !connection.has("STARTTLS") {
            return Err(StoreError::new(
                FailureScope::Store,
                format!("IMAP error: {host} does not offer STARTTLS"),
            ));
        }
        run_ok(&mut connection, CommandBody::StartTLS, "STARTTLS").await?;
    }
    connection.start_tls(&setup, Some(host)).await?;
    let certificates = chain.lock().map(|c| c.clone()).unwrap_or_default();
    if certificates.is_empty() {
        return Err(permanent(format!(
            "Error, no server certificate from {host}:{port}"
        )));
    }
    connection.logout().await;
    Ok(tls::to_pem(&certificates))
}
