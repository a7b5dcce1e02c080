//! One IMAP connection: the transport (TCP, tunnel, TLS), the protocol flow driven through
//! imap-next's sans-I/O client, pipelined command execution with tags, timeouts, and the
//! bookkeeping of untagged responses (capabilities, EXISTS/RECENT/EXPUNGE, codes).
//!
//! Reading and writing happen here only; deciding what responses mean is left to the callers
//! (the store and the session set-up), which look at [`Outcome`]s and the collected data.

use super::bypass::LiteralBypass;
use super::compress::Deflate;
use super::tls::{FailureSlot, TlsSetup};
use crate::store::{FailureScope, StoreError, StoreResult};
use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::auth::AuthenticateData;
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::extensions::compress::CompressionAlgorithm;
use imap_next::imap_types::response::{
    Capability, Code, CommandContinuationRequest, Data, GreetingKind, Response, Status, StatusBody,
    StatusKind, Tagged,
};
use imap_next::imap_types::secret::Secret;
use imap_next::{Interrupt, Io, State};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Above this many messages, sequence numbers are not tracked (EXPUNGE then goes unnoticed
/// until the next load). The table grows only with the FETCH replies that fill it (4 bytes a
/// message), so a bogus EXISTS costs nothing by itself.
const MAX_TRACKED_MESSAGES: u32 = 10_000_000;

/// How long LOGOUT's answer is waited for before the connection is closed anyway.
pub const LOGOUT_WAIT: Duration = Duration::from_millis(5);

/// The largest literal accepted from a server unless the store sets another limit (mbsync
/// accepts literals below 2 GiB). A larger announcement fails the connection at once, before
/// any of its data is read or buffered.
pub const DEFAULT_MAX_LITERAL: u64 = i32::MAX as u64;

/// Anything we can speak IMAP over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// The result of one tagged command.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub kind: StatusKind,
    pub code: Option<Code<'static>>,
    pub text: String,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        self.kind == StatusKind::Ok
    }
}

/// What the greeting said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GreetingType {
    Ok,
    PreAuth,
}

/// A command waiting for or in execution.
struct Pending {
    tag: String,
    /// The command as queued, kept until it is sent in full (see [`Connection::submit`]).
    command: Option<Command<'static>>,
    authenticate: bool,
    sent: bool,
    /// Written by [`Connection::submit_streamed`], not by the client: a refusal before its
    /// literal needs no client reset.
    raw: bool,
}

/// COMPRESS DEFLATE (RFC 4978) on a connection. The command is sent ahead of the first
/// command submitted after [`Connection::offer_compression`], not at once: a session that
/// ends with its log-in round (a run that finds nothing changed) pays no round trip for it.
enum Compression {
    /// Not offered, disabled, refused, or not worth it any more (log-out).
    Off,
    /// The server offers it: COMPRESS goes ahead of the next command.
    Offered,
    /// COMPRESS is in flight; the commands submitted meanwhile wait for its answer (nothing
    /// may follow it on the wire before the answer).
    Asked {
        tag: String,
        held: Vec<Command<'static>>,
    },
    /// Both directions are compressed.
    On(Box<Deflate>),
}

/// A SASL exchange driven during an AUTHENTICATE command.
pub trait SaslSteps {
    fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String>;
}

/// An established IMAP connection.
pub struct Connection {
    /// How the connection is named in messages: `host (ip:port)` or `tunnel 'cmd'`.
    pub name: String,
    stream: Option<Box<dyn Transport>>,
    client: Client,
    timeout: Option<Duration>,
    /// TLS is active.
    pub encrypted: bool,
    /// The connection is a tunnel (counts as secure for LOGIN).
    pub tunnel: bool,
    child: Option<std::process::Child>,
    next_tag: u32,
    /// Capabilities (upper case) minus the disabled ones.
    pub capabilities: Vec<String>,
    /// A CAPABILITY list was seen since the last reset.
    pub capabilities_known: bool,
    disabled: Vec<String>,
    /// Untagged data collected since the caller last took it.
    pub data: Vec<Data<'static>>,
    /// Response codes of untagged OK responses collected since the caller last took them.
    pub codes: Vec<Code<'static>>,
    /// Messages for the user (alerts, server warnings).
    pub notes: Vec<String>,
    /// Protocol trace lines (`-Dn`), when `trace` is on.
    pub trace: bool,
    pub traces: Vec<String>,
    /// Mailbox state of the selected mailbox.
    pub exists: u32,
    pub recent: u32,
    /// UIDs by sequence number − 1, as far as known (0: unknown; shorter than `exists` when
    /// the last messages were not seen yet).
    seq_uids: Vec<u32>,
    /// UIDs reported expunged since the mailbox was selected.
    pub expunged: BTreeSet<u32>,
    /// The connection cannot be used any more.
    pub broken: bool,
    /// A BYE is expected (LOGOUT).
    expect_bye: bool,
    /// Text of the last unexpected BYE.
    bye: Option<String>,
    /// Makes 8-bit status texts parseable.
    status_text: StatusTextFilter,
    /// Takes message bodies past the parser.
    bypass: LiteralBypass,
    /// What the bypass passes on from one read (kept to reuse its allocation).
    parser_input: Vec<u8>,
    /// Where reads land (allocated once).
    read_buffer: Vec<u8>,
    /// COMPRESS=DEFLATE: offered, asked for, or on.
    compression: Compression,
    /// What one compressed read inflates to (kept to reuse its allocation).
    inflated: Vec<u8>,
    /// Commands submitted whose tagged response was not read yet, oldest first.
    in_flight: VecDeque<Pending>,
    /// Outcomes of finished commands not collected yet, by tag.
    finished: HashMap<String, Outcome>,
    /// A streamed APPEND waits for the server's continuation request …
    awaiting_continuation: bool,
    /// … which has arrived.
    continuation_arrived: bool,
}

/// Replaces 8-bit bytes in the human-readable text of status responses (`* OK …`,
/// `<tag> NO …`) by `?`. Servers put mailbox names there in UTF-8 (Dovecot:
/// `NO [TRYCREATE] Mailbox doesn't exist: new öne`), which the strict parser refuses as a
/// malformed response. Literals (message data) and other responses pass unchanged; the
/// filter works across reads, byte for byte, so nothing moves.
#[derive(Debug, Default)]
pub struct StatusTextFilter {
    /// Bytes of literal data still to come.
    literal_left: u64,
    /// The start of the current line (enough to see the tag and the status word).
    head: Vec<u8>,
    /// The end of the current line (enough to see a literal announcement `{123}`).
    tail: Vec<u8>,
    /// Literals above this size are refused ([`DEFAULT_MAX_LITERAL`] if unset).
    pub max_literal: Option<u64>,
    /// The first announcement over the limit: its size and the start of its line.
    pub oversized: Option<(u64, String)>,
}

impl StatusTextFilter {
    const HEAD: usize = 48;
    const TAIL: usize = 24;

    pub fn filter(&mut self, data: &mut [u8]) {
        let mut i = 0;
        while i < data.len() {
            if self.literal_left > 0 {
                let take = usize::try_from(self.literal_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len() - i);
                self.literal_left -= take as u64;
                i += take;
                continue;
            }
            let byte = data[i];
            if byte >= 0x80 && self.is_status_line() {
                data[i] = b'?';
            }
            if self.head.len() < Self::HEAD {
                self.head.push(data[i]);
            }
            self.tail.push(data[i]);
            if self.tail.len() > Self::TAIL {
                self.tail.remove(0);
            }
            if byte == b'\n' {
                self.literal_left = literal_announced(&self.tail).unwrap_or(0);
                let limit = self.max_literal.unwrap_or(DEFAULT_MAX_LITERAL);
                if self.literal_left > limit && self.oversized.is_none() {
                    let head = String::from_utf8_lossy(&self.head);
                    let head = head.trim_end().escape_debug().to_string();
                    self.oversized = Some((self.literal_left, head));
                }
                self.head.clear();
                self.tail.clear();
            }
            i += 1;
        }
    }

    /// The current line is a status response: a tag or `*`, then OK/NO/BAD/BYE/PREAUTH.
    fn is_status_line(&self) -> bool {
        let mut words = self.head.split(|b| *b == b' ');
        let (Some(tag), Some(word)) = (words.next(), words.next()) else {
            return false;
        };
        if tag.is_empty() || tag == b"+" {
            return false;
        }
        let word = word.to_ascii_uppercase();
        [&b"OK"[..], b"NO", b"BAD", b"BYE", b"PREAUTH"].contains(&word.as_slice())
            && self.head.len() > tag.len() + word.len() + 1
    }
}

/// The size of the literal a line ending (`…{123}\r\n`, `{123+}`) announces.
fn literal_announced(tail: &[u8]) -> Option<u64> {
    super::bypass::announcement(tail).map(|announced| announced.size)
}

fn temporary(message: String) -> StoreError {
    StoreError::new(FailureScope::Temporary, message)
}

/// The text of a capability, upper case.
pub fn capability_name(capability: &Capability<'_>) -> String {
    capability.to_string().to_ascii_uppercase()
}

impl Connection {
    pub(super) fn new(
        name: String,
        stream: Box<dyn Transport>,
        timeout: Option<Duration>,
    ) -> Connection {
        Connection {
            name,
            stream: Some(stream),
            client: Client::new(client_options(false)),
            timeout,
            encrypted: false,
            tunnel: false,
            child: None,
            next_tag: 1,
            capabilities: Vec::new(),
            capabilities_known: false,
            disabled: Vec::new(),
            data: Vec::new(),
            codes: Vec::new(),
            notes: Vec::new(),
            trace: false,
            traces: Vec::new(),
            exists: 0,
            recent: 0,
            seq_uids: Vec::new(),
            expunged: BTreeSet::new(),
            broken: false,
            expect_bye: false,
            bye: None,
            status_text: StatusTextFilter::default(),
            bypass: LiteralBypass::default(),
            parser_input: Vec::new(),
            read_buffer: Vec::new(),
            compression: Compression::Off,
            inflated: Vec::new(),
            in_flight: VecDeque::new(),
            finished: HashMap::new(),
            awaiting_continuation: false,
            continuation_arrived: false,
        }
    }

    /// Connects over TCP (trying each address) or through a tunnel command.
    pub async fn open(
        host: Option<&str>,
        port: u16,
        tunnel: Option<&str>,
        timeout: Option<Duration>,
        disabled: &[String],
    ) -> StoreResult<Connection> {
        let mut connection = if let Some(command) = tunnel {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()
                .map_err(|e| temporary(format!("Error: cannot start tunnel '{command}': {e}")))?;
            let theirs_out = theirs
                .try_clone()
                .map_err(|e| temporary(format!("Error: cannot start tunnel '{command}': {e}")))?;
            let child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                    theirs,
                )))
                .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                    theirs_out,
                )))
                .spawn()
                .map_err(|e| temporary(format!("Error: cannot start tunnel '{command}': {e}")))?;
            ours.set_nonblocking(true)
                .map_err(|e| temporary(format!("Error: cannot start tunnel '{command}': {e}")))?;
            let stream = tokio::net::UnixStream::from_std(ours)
                .map_err(|e| temporary(format!("Error: cannot start tunnel '{command}': {e}")))?;
            let mut connection =
                Connection::new(format!("tunnel '{command}'"), Box::new(stream), timeout);
            connection.tunnel = true;
            connection.child = Some(child);
            connection
        } else {
            let host = host.unwrap_or_default();
            let lookup = tokio::net::lookup_host((host, port));
            let addresses = match with_timeout(timeout, lookup).await {
                Some(Ok(a)) => a.collect::<Vec<_>>(),
                Some(Err(e)) => {
                    return Err(temporary(format!(
                        "Error: Cannot resolve server '{host}': {e}"
                    )));
                }
                None => {
                    return Err(temporary(format!(
                        "Error: Cannot resolve server '{host}': timeout."
                    )));
                }
            };
            let mut failures = Vec::new();
            let mut connected = None;
            for address in addresses {
                let shown = format!("{host} ({address})");
                match with_timeout(timeout, tokio::net::TcpStream::connect(address)).await {
                    Some(Ok(stream)) => {
                        // Pipelined commands are small writes in a row: without this, Nagle's
                        // algorithm holds each back until the previous one is acknowledged.
                        let _ = stream.set_nodelay(true);
                        connected = Some((shown, stream));
                        break;
                    }
                    Some(Err(e)) => failures.push(format!("Cannot connect to {shown}: {e}")),
                    None => failures.push(format!("Cannot connect to {shown}: timeout.")),
                }
            }
            let Some((name, stream)) = connected else {
                failures.push(format!("No working address found for {host}"));
                return Err(temporary(failures.join("\n")));
            };
            Connection::new(name, Box::new(stream), timeout)
        };
        connection.disabled = disabled.iter().map(|d| d.to_ascii_uppercase()).collect();
        Ok(connection)
    }

    /// Runs the TLS handshake over the current stream.
    pub async fn start_tls(&mut self, setup: &TlsSetup, host: Option<&str>) -> StoreResult<()> {
        let failure: &FailureSlot = &setup.failure;
        let stream = self.stream.take().ok_or_else(|| {
            temporary(format!("IMAP error: connection to {} is closed", self.name))
        })?;
        let server_name =
            rustls::pki_types::ServerName::try_from(host.unwrap_or("imap.invalid").to_string())
                .map_err(|e| StoreError::store(format!("Error: invalid host name for TLS: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(setup.config.clone());
        match with_timeout(self.timeout, connector.connect(server_name, stream)).await {
            Some(Ok(tls)) => {
                self.stream = Some(Box::new(tls));
                self.encrypted = true;
                Ok(())
            }
            Some(Err(e)) => {
                self.broken = true;
                let message = match failure.take() {
                    Some(why) => format!("SSL error connecting {}: {why}", self.name),
                    None => format!("Socket error: secure connect to {}: {e}", self.name),
                };
                Err(StoreError::store(message))
            }
            None => {
                self.broken = true;
                Err(temporary(format!(
                    "Socket error on {}: timeout.",
                    self.name
                )))
            }
        }
    }

    /// Reads the greeting; returns its type and whether it carried capabilities.
    pub async fn read_greeting(&mut self) -> StoreResult<GreetingType> {
        loop {
            match self.client.next() {
                Ok(Event::GreetingReceived { greeting }) => {
                    if let Some(Code::Capability(caps)) = &greeting.code {
                        self.set_capabilities(caps.as_ref().iter());
                    }
                    return match greeting.kind {
                        GreetingKind::Ok => Ok(GreetingType::Ok),
                        GreetingKind::PreAuth => Ok(GreetingType::PreAuth),
                        GreetingKind::Bye => {
                            self.broken = true;
                            Err(temporary(format!(
                                "IMAP error: unexpected BYE response: {}",
                                greeting.text.as_ref()
                            )))
                        }
                    };
                }
                Ok(_) => {}
                Err(Interrupt::Io(Io::NeedMoreInput)) => self.read_more().await?,
                Err(Interrupt::Io(Io::Output(bytes))) => self.write(&bytes).await?,
                Err(Interrupt::Error(e)) => {
                    self.broken = true;
                    return Err(temporary(format!(
                        "IMAP error: bogus greeting response from {}: {e}",
                        self.name
                    )));
                }
            }
        }
    }

    fn set_capabilities<'a>(&mut self, caps: impl Iterator<Item = &'a Capability<'a>>) {
        self.capabilities = caps
            .map(capability_name)
            .filter(|c| !self.disabled.contains(c))
            .collect();
        self.capabilities_known = true;
    }

    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// The config disables this extension (DisableExtension; `capability` in upper case).
    pub fn is_disabled(&self, capability: &str) -> bool {
        self.disabled.iter().any(|c| c == capability)
    }

    /// Forgets the capabilities (they change with login).
    pub fn forget_capabilities(&mut self) {
        self.capabilities.clear();
        self.capabilities_known = false;
    }

    async fn read_more(&mut self) -> StoreResult<()> {
        let name = self.name.clone();
        let timeout = self.timeout;
        let mut buffer = std::mem::take(&mut self.read_buffer);
        buffer.resize(READ_SIZE, 0);
        let result = self.read_into(&mut buffer, timeout, &name).await;
        self.read_buffer = buffer;
        result
    }

    /// One read into `buffer`, then the filters, then the parser's queue.
    async fn read_into(
        &mut self,
        buffer: &mut [u8],
        timeout: Option<Duration>,
        name: &str,
    ) -> StoreResult<()> {
        let Some(stream) = self.stream.as_mut() else {
            self.broken = true;
            return Err(temporary(format!(
                "IMAP error: connection to {name} is closed"
            )));
        };
        match with_timeout(timeout, stream.read(buffer)).await {
            Some(Ok(0)) => {
                self.broken = true;
                Err(temporary(match self.bye.take() {
                    Some(text) => format!("IMAP error: unexpected BYE response: {text}"),
                    None => format!("IMAP error: unexpected EOF from {name}"),
                }))
            }
            Some(Ok(n)) => {
                if let Compression::On(deflate) = &mut self.compression {
                    let mut inflated = std::mem::take(&mut self.inflated);
                    inflated.clear();
                    if let Err(why) = deflate.decompress(&buffer[..n], &mut inflated) {
                        self.broken = true;
                        return Err(temporary(format!(
                            "IMAP error: cannot decompress data from {name}: {why}"
                        )));
                    }
                    let result = self.take_in(&mut inflated, name);
                    self.inflated = inflated;
                    return result;
                }
                self.take_in(&mut buffer[..n], name)
            }
            Some(Err(e)) => {
                self.broken = true;
                Err(temporary(format!("Socket error: read from {name}: {e}")))
            }
            None => {
                self.broken = true;
                Err(temporary(format!("Socket error on {name}: timeout.")))
            }
        }
    }

    /// Bytes received (decompressed): through the filters into the parser's queue.
    fn take_in(&mut self, data: &mut [u8], name: &str) -> StoreResult<()> {
        // The parser refuses NUL inside literals; some servers send them in message
        // bodies. They become 0x80 (as Dovecot itself does), with a warning.
        if data.contains(&0) {
            data.iter_mut().filter(|b| **b == 0).for_each(|b| *b = 0x80);
            self.notes.push(format!(
                "IMAP warning: NUL bytes from {name} were replaced by 0x80"
            ));
        }
        self.status_text.filter(data);
        if let Some((size, line)) = self.status_text.oversized.take() {
            // Refused before anything of it is buffered: the claimed size is never
            // allocated, and a server cannot make us read gigabytes first.
            self.broken = true;
            let limit = self.status_text.max_literal.unwrap_or(DEFAULT_MAX_LITERAL);
            return Err(temporary(format!(
                "IMAP error: {name} announced a literal of {size} bytes, more than the limit of {limit} bytes, in '{line}…'"
            )));
        }
        let mut parser_input = std::mem::take(&mut self.parser_input);
        parser_input.clear();
        self.bypass.feed(data, &mut parser_input);
        self.client.enqueue_input(&parser_input);
        self.parser_input = parser_input;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        let name = self.name.clone();
        let timeout = self.timeout;
        let compressed;
        let bytes = match &mut self.compression {
            Compression::On(deflate) => {
                let mut out = Vec::new();
                if let Err(why) = deflate.compress(bytes, &mut out) {
                    self.broken = true;
                    return Err(temporary(format!(
                        "IMAP error: cannot compress data for {name}: {why}"
                    )));
                }
                compressed = out;
                &compressed[..]
            }
            _ => bytes,
        };
        let Some(stream) = self.stream.as_mut() else {
            self.broken = true;
            return Err(temporary(format!(
                "IMAP error: connection to {name} is closed"
            )));
        };
        let result = with_timeout(timeout, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                self.broken = true;
                Err(temporary(format!("Socket error: write to {name}: {e}")))
            }
            None => {
                self.broken = true;
                Err(temporary(format!("Socket error on {name}: timeout.")))
            }
        }
    }

    /// A write failed, most often because the server closed the connection. With commands
    /// pipelined, the server may have said why (a BYE) before closing: what it sent is still
    /// readable, so that reason is reported rather than the write error. Nothing more is
    /// written; the reading stops at the end of the stream or after two seconds.
    async fn why_write_failed(&mut self, write_error: StoreError) -> StoreError {
        let timeout = self.timeout;
        self.timeout =
            Some(timeout.map_or(DRAIN_AFTER_WRITE_ERROR, |t| t.min(DRAIN_AFTER_WRITE_ERROR)));
        let mut reason = write_error;
        loop {
            if let Some(text) = self.bye.take() {
                reason = temporary(format!("IMAP error: unexpected BYE response: {text}"));
                break;
            }
            match self.client.next() {
                Err(Interrupt::Io(Io::NeedMoreInput)) => {
                    if self.read_more().await.is_err() {
                        break;
                    }
                }
                // Nothing more is written on a broken connection.
                Err(Interrupt::Io(Io::Output(_))) => {}
                Err(Interrupt::Error(_)) => break,
                Ok(Event::StatusReceived { status }) => {
                    self.status_received(status);
                }
                Ok(_) => {}
            }
        }
        self.timeout = timeout;
        self.broken = true;
        reason
    }

    fn new_tag(&mut self) -> String {
        let tag = self.next_tag.to_string();
        self.next_tag += 1;
        tag
    }

    /// Resets the sans-I/O client after the server refused a command before its literal was
    /// sent (imap-next would otherwise wait for a continuation that never comes). Commands
    /// not sent yet are queued again; one whose copy was not kept (a non-synchronizing APPEND,
    /// see [`Connection::submit`]) is finished as not sent.
    fn reset_client(&mut self) {
        self.client = Client::new(client_options(true));
        // Commands held back behind a COMPRESS go out when it is answered.
        let held: Vec<String> = match &self.compression {
            Compression::Asked { held, .. } => {
                held.iter().map(|c| c.tag.as_ref().to_string()).collect()
            }
            _ => Vec::new(),
        };
        let mut lost = Vec::new();
        for pending in self
            .in_flight
            .iter_mut()
            .filter(|p| !p.sent && !p.raw && !held.contains(&p.tag))
        {
            match &pending.command {
                Some(command) => {
                    self.client.enqueue_command(command.clone());
                }
                None => lost.push(pending.tag.clone()),
            }
        }
        for tag in lost {
            self.in_flight.retain(|p| p.tag != tag);
            self.finished.insert(
                tag,
                Outcome {
                    kind: StatusKind::No,
                    code: None,
                    text: "not sent: an earlier command was refused".to_string(),
                },
            );
        }
    }

    /// Commands submitted whose tagged response has not been read yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Queues a command to be sent and returns its tag; nothing is written until the flow is
    /// driven ([`Connection::send_all`], [`Connection::wait_for`], [`Connection::pump`]).
    /// Its outcome is kept until [`Connection::take_finished`] or `wait_for` collects it.
    pub fn submit(&mut self, body: CommandBody<'static>) -> StoreResult<String> {
        if self.broken {
            return Err(temporary(format!(
                "IMAP error: connection to {} was lost",
                self.name
            )));
        }
        let tag = self.new_tag();
        let Ok(tag_value) = Tag::try_from(tag.clone()) else {
            return Err(temporary("IMAP error: cannot make a command tag".into()));
        };
        let command = Command {
            tag: tag_value,
            body,
        };
        let authenticate = is_authenticate(&command);
        // A copy is kept until the command is sent, in case the client must be reset; not
        // for an APPEND with a non-synchronizing literal (the server cannot refuse it before
        // its literal, and the copy would double the message in memory).
        let keep = (!is_non_sync_append(&command.body)).then(|| command.clone());
        if matches!(self.compression, Compression::Offered) {
            self.ask_for_compression()?;
        }
        match &mut self.compression {
            Compression::Asked { held, .. } => held.push(command),
            _ => {
                self.client.enqueue_command(command);
            }
        }
        self.in_flight.push_back(Pending {
            tag: tag.clone(),
            command: keep,
            authenticate,
            sent: false,
            raw: false,
        });
        Ok(tag)
    }

    /// The server offers COMPRESS=DEFLATE (and the config does not disable it): it is asked
    /// for ahead of the next command.
    pub fn offer_compression(&mut self) {
        if matches!(self.compression, Compression::Off) {
            self.compression = Compression::Offered;
        }
    }

    /// Queues `COMPRESS DEFLATE`; what is submitted next waits for its answer.
    fn ask_for_compression(&mut self) -> StoreResult<()> {
        let tag = self.new_tag();
        let Ok(tag_value) = Tag::try_from(tag.clone()) else {
            return Err(temporary("IMAP error: cannot make a command tag".into()));
        };
        let command = Command {
            tag: tag_value,
            body: CommandBody::Compress {
                algorithm: CompressionAlgorithm::Deflate,
            },
        };
        self.client.enqueue_command(command.clone());
        self.in_flight.push_back(Pending {
            tag: tag.clone(),
            command: Some(command),
            authenticate: false,
            sent: false,
            raw: false,
        });
        self.compression = Compression::Asked {
            tag,
            held: Vec::new(),
        };
        Ok(())
    }

    /// The answer to `COMPRESS DEFLATE`: compression starts with the next byte either way
    /// round (RFC 4978 §3), then the commands held back go out. A refusal is reported and
    /// the session goes on uncompressed.
    fn compression_answered(&mut self, outcome: &Outcome) {
        let Compression::Asked { held, .. } =
            std::mem::replace(&mut self.compression, Compression::Off)
        else {
            return;
        };
        if outcome.is_ok() {
            self.compression = Compression::On(Box::default());
        } else {
            self.notes.push(format!(
                "IMAP command 'COMPRESS DEFLATE' returned an error: {} {}",
                super::status_word(outcome.kind),
                outcome.text
            ));
        }
        for command in held {
            self.client.enqueue_command(command);
        }
    }

    /// Sends a command ending in a literal whose bytes are read from `literal` a chunk at a
    /// time, so a big message is never whole in memory: writes `<tag> <head>{<len>}` (`~{…}`
    /// for a binary literal), waits for the continuation request, then writes the literal
    /// and the line end. Returns the tag; the outcome is collected like any command's. If
    /// the server refuses before the literal, nothing more is written and the outcome is
    /// already there. Commands submitted earlier are written in full first.
    pub async fn submit_streamed(
        &mut self,
        head: &[u8],
        binary: bool,
        len: u64,
        literal: &mut dyn std::io::Read,
    ) -> StoreResult<String> {
        if self.broken {
            return Err(temporary(format!(
                "IMAP error: connection to {} was lost",
                self.name
            )));
        }
        self.send_all().await?;
        let tag = self.new_tag();
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(head);
        line.extend_from_slice(
            format!("{}{{{len}}}\r\n", if binary { "~" } else { "" }).as_bytes(),
        );
        self.in_flight.push_back(Pending {
            tag: tag.clone(),
            command: None,
            authenticate: false,
            sent: false,
            raw: true,
        });
        if self.trace {
            let outstanding = self.in_flight.iter().filter(|p| p.sent).count();
            let prefix = if outstanding > 0 {
                format!("({outstanding} in progress) >>> ")
            } else {
                ">>> ".to_string()
            };
            self.traces.push(format!(
                "{prefix}{} … ({len} bytes streamed)",
                trace_text(&line)
            ));
        }
        self.write(&line).await?;
        self.awaiting_continuation = true;
        self.continuation_arrived = false;
        while !self.continuation_arrived {
            if self.finished.contains_key(&tag) {
                self.awaiting_continuation = false;
                return Ok(tag);
            }
            if let Err(error) = self.step(&mut None).await {
                self.awaiting_continuation = false;
                return Err(error);
            }
        }
        let mut buffer = vec![0u8; crate::store::body::READ_CHUNK];
        let mut written = 0u64;
        while written < len {
            let want = usize::try_from(len - written)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            let got = match literal.read(&mut buffer[..want]) {
                Ok(0) => {
                    self.broken = true;
                    return Err(StoreError::mailbox(format!(
                        "IMAP error: the message to store ended after {written} of {len} bytes; the connection to {} cannot go on",
                        self.name
                    )));
                }
                Ok(got) => got,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // Half a literal is out: the connection cannot be used any more.
                    self.broken = true;
                    return Err(StoreError::mailbox(format!(
                        "IMAP error: cannot read the message to store: {error}"
                    )));
                }
            };
            self.write(&buffer[..got]).await?;
            written += got as u64;
        }
        self.write(b"\r\n").await?;
        if let Some(pending) = self.in_flight.iter_mut().find(|p| p.tag == tag) {
            pending.sent = true;
        }
        Ok(tag)
    }

    /// The outcome of a finished command, once.
    pub fn take_finished(&mut self, tag: &str) -> Option<Outcome> {
        self.finished.remove(tag)
    }

    /// Drives the flow until every submitted command is written in full (reading only what
    /// must be read meanwhile, such as continuation requests for synchronizing literals).
    pub async fn send_all(&mut self) -> StoreResult<()> {
        while self.in_flight.iter().any(|p| !p.sent) {
            self.step(&mut None).await?;
        }
        Ok(())
    }

    /// Drives the flow until `tag` finishes and returns its outcome.
    pub async fn wait_for(&mut self, tag: &str) -> StoreResult<Outcome> {
        self.wait_for_with(tag, None).await
    }

    /// Like [`Connection::wait_for`], with a SASL responder for an AUTHENTICATE in flight.
    pub async fn wait_for_with(
        &mut self,
        tag: &str,
        mut sasl: Option<&mut dyn SaslSteps>,
    ) -> StoreResult<Outcome> {
        loop {
            if let Some(outcome) = self.finished.remove(tag) {
                return Ok(outcome);
            }
            if !self.in_flight.iter().any(|p| p.tag == tag) {
                self.broken = true;
                return Err(temporary("IMAP error: a command got no answer".to_string()));
            }
            self.step(&mut sasl).await?;
        }
    }

    /// Processes one event of the flow (a write, a read or a response); the caller must have
    /// a command in flight, or this waits for the server (up to the timeout).
    pub async fn pump(&mut self) -> StoreResult<()> {
        if self.in_flight.is_empty() {
            return Ok(());
        }
        self.step(&mut None).await
    }

    /// Executes commands, pipelining up to `depth` at a time (`None` = unlimited), and returns
    /// one outcome per command, in order. Untagged data is collected in `self.data`. Commands
    /// submitted earlier and still in flight count against the depth and finish meanwhile.
    pub async fn execute(
        &mut self,
        bodies: Vec<CommandBody<'static>>,
        depth: Option<u32>,
    ) -> StoreResult<Vec<Outcome>> {
        self.execute_with(bodies, depth, None).await
    }

    /// Like [`Connection::execute`], with a SASL responder for AUTHENTICATE.
    pub async fn execute_with(
        &mut self,
        bodies: Vec<CommandBody<'static>>,
        depth: Option<u32>,
        mut sasl: Option<&mut dyn SaslSteps>,
    ) -> StoreResult<Vec<Outcome>> {
        if self.broken {
            return Err(temporary(format!(
                "IMAP error: connection to {} was lost",
                self.name
            )));
        }
        let total = bodies.len();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; total];
        let mut waiting: VecDeque<CommandBody<'static>> = bodies.into();
        let mut tags: Vec<String> = Vec::with_capacity(total);
        let limit = depth.map(|d| d.max(1) as usize).unwrap_or(usize::MAX);
        let mut done = 0;
        let mut first_open = 0;
        while done < total {
            while self.in_flight.len() < limit {
                let Some(body) = waiting.pop_front() else {
                    break;
                };
                tags.push(self.submit(body)?);
            }
            for (index, tag) in tags.iter().enumerate().skip(first_open) {
                if outcomes[index].is_none()
                    && let Some(outcome) = self.finished.remove(tag)
                {
                    outcomes[index] = Some(outcome);
                    done += 1;
                }
            }
            while first_open < tags.len() && outcomes[first_open].is_some() {
                first_open += 1;
            }
            if done == total {
                break;
            }
            if self.in_flight.is_empty() {
                self.broken = true;
                return Err(temporary("IMAP error: a command got no answer".to_string()));
            }
            self.step(&mut sasl).await?;
        }
        let mut result = Vec::with_capacity(total);
        for outcome in outcomes {
            match outcome {
                Some(o) => result.push(o),
                None => {
                    self.broken = true;
                    return Err(temporary("IMAP error: a command got no answer".to_string()));
                }
            }
        }
        Ok(result)
    }

    /// One event of the flow: writes what the client has to send, reads when it needs input,
    /// and books responses (a tagged one finishes its command into `self.finished`).
    async fn step(&mut self, sasl: &mut Option<&mut dyn SaslSteps>) -> StoreResult<()> {
        let event = self.client.next();
        let finished: Option<(String, Outcome)> = match event {
            Ok(Event::CommandSent { command, .. }) => {
                if self.trace {
                    let outstanding = self.in_flight.iter().filter(|p| p.sent).count();
                    self.traces.push(trace_command(&command, outstanding));
                }
                if let Some(p) = self
                    .in_flight
                    .iter_mut()
                    .find(|p| p.tag == command.tag.as_ref())
                {
                    p.sent = true;
                    // Sent in full: the copy kept for a client reset is not needed any more.
                    p.command = None;
                }
                None
            }
            Ok(Event::AuthenticateStarted { .. }) => {
                if let Some(p) = self.in_flight.iter_mut().find(|p| p.authenticate) {
                    p.sent = true;
                    if self.trace
                        && let Some(command) = &p.command
                    {
                        self.traces.push(trace_command(command, 0));
                    }
                }
                None
            }
            Ok(Event::AuthenticateContinuationRequestReceived {
                continuation_request,
                ..
            }) => {
                let challenge = continuation_bytes(&continuation_request);
                let answer = match sasl.as_mut() {
                    Some(steps) => steps.respond(&challenge),
                    None => Err("unexpected authentication challenge".to_string()),
                };
                let data = match answer {
                    Ok(bytes) => AuthenticateData::Continue(Secret::new(Cow::Owned(bytes))),
                    Err(why) => {
                        self.notes
                            .push(format!("IMAP error: authentication: {why}"));
                        AuthenticateData::Cancel
                    }
                };
                if self.client.set_authenticate_data(data).is_err() {
                    self.broken = true;
                    return Err(temporary(
                        "IMAP error: authentication got out of step".to_string(),
                    ));
                }
                None
            }
            Ok(Event::AuthenticateStatusReceived {
                command_authenticate,
                status,
                ..
            }) => {
                if self.trace {
                    let traced = Response::Status(status.clone());
                    self.traces.push(trace_response(&traced));
                }
                status_outcome(&status).map(|o| (command_authenticate.tag.as_ref().to_string(), o))
            }
            Ok(Event::CommandRejected {
                command, status, ..
            }) => status_outcome(&status).map(|o| (command.tag.as_ref().to_string(), o)),
            Ok(Event::StatusReceived { status }) => {
                if self.trace {
                    let traced = Response::Status(status.clone());
                    self.traces.push(trace_response(&traced));
                }
                self.status_received(status)
            }
            Ok(Event::DataReceived { data }) => {
                let data = match self.bypass.restore(data) {
                    Ok(data) => data,
                    Err(why) => {
                        self.broken = true;
                        return Err(temporary(format!(
                            "IMAP error: response from {}: {why}",
                            self.name
                        )));
                    }
                };
                if self.trace {
                    self.traces
                        .push(trace_response(&Response::Data(data.clone())));
                }
                self.untagged_data(data);
                None
            }
            Ok(Event::ContinuationRequestReceived { .. }) if self.awaiting_continuation => {
                self.awaiting_continuation = false;
                self.continuation_arrived = true;
                None
            }
            Ok(Event::ContinuationRequestReceived { .. }) => {
                self.broken = true;
                return Err(temporary(
                    "IMAP error: unexpected command continuation request".to_string(),
                ));
            }
            Ok(Event::GreetingReceived { .. })
            | Ok(Event::IdleCommandSent { .. })
            | Ok(Event::IdleAccepted { .. })
            | Ok(Event::IdleRejected { .. })
            | Ok(Event::IdleDoneSent { .. }) => None,
            Err(Interrupt::Io(Io::Output(bytes))) => {
                if let Err(error) = self.write(&bytes).await {
                    return Err(self.why_write_failed(error).await);
                }
                None
            }
            Err(Interrupt::Io(Io::NeedMoreInput)) => {
                self.read_more().await?;
                None
            }
            Err(Interrupt::Error(e)) => {
                self.broken = true;
                return Err(temporary(format!(
                    "IMAP error: malformed response from {}: {e}",
                    self.name
                )));
            }
        };
        let Some((tag, outcome)) = finished else {
            return Ok(());
        };
        let Some(position) = self.in_flight.iter().position(|p| p.tag == tag) else {
            self.broken = true;
            return Err(temporary(format!("IMAP error: unexpected tag {tag}")));
        };
        let Some(pending) = self.in_flight.remove(position) else {
            return Ok(());
        };
        match &outcome.code {
            Some(Code::Alert) => {
                self.notes
                    .push(format!("*** IMAP ALERT *** {}", outcome.text));
            }
            // Capabilities in a tagged OK (typically after login) replace the list.
            Some(Code::Capability(caps)) => {
                let caps: Vec<Capability> = caps.as_ref().to_vec();
                self.set_capabilities(caps.iter());
            }
            _ => {}
        }
        if let Compression::Asked { tag: asked, .. } = &self.compression
            && *asked == tag
        {
            self.compression_answered(&outcome);
            return Ok(());
        }
        if !pending.sent && !pending.authenticate && !pending.raw {
            if self.trace
                && let Some(command) = &pending.command
            {
                let line = trace_command(command, 0);
                self.traces
                    .push(format!("{line} (refused before its literal)"));
            }
            self.reset_client();
        }
        self.finished.insert(tag, outcome);
        Ok(())
    }

    /// A status response: a tagged one finishes its command, others are bookkeeping.
    fn status_received(&mut self, status: Status<'static>) -> Option<(String, Outcome)> {
        match status {
            Status::Tagged(Tagged { tag, body }) => {
                Some((tag.as_ref().to_string(), body_outcome(&body)))
            }
            Status::Untagged(body) => {
                self.untagged_status(body);
                None
            }
            Status::Bye(bye) => {
                if !self.expect_bye {
                    self.bye = Some(bye.text.as_ref().to_string());
                }
                None
            }
        }
    }

    fn untagged_status(&mut self, body: StatusBody<'static>) {
        match body.kind {
            StatusKind::Ok => {
                if let Some(code) = body.code {
                    match code {
                        Code::Alert => self
                            .notes
                            .push(format!("*** IMAP ALERT *** {}", body.text.as_ref())),
                        Code::Capability(caps) => {
                            let caps: Vec<Capability> = caps.into_iter().collect();
                            self.set_capabilities(caps.iter());
                        }
                        other => self.codes.push(other),
                    }
                }
            }
            StatusKind::No => self
                .notes
                .push(format!("Warning from IMAP server: {}", body.text.as_ref())),
            StatusKind::Bad => self
                .notes
                .push(format!("Error from IMAP server: {}", body.text.as_ref())),
        }
    }

    fn untagged_data(&mut self, data: Data<'static>) {
        match &data {
            Data::Capability(caps) => {
                let caps: Vec<Capability> = caps.as_ref().to_vec();
                self.set_capabilities(caps.iter());
                return;
            }
            Data::Exists(n) => {
                self.exists = *n;
                // Sequence numbers are tracked for mailboxes of sane size only.
                if *n <= MAX_TRACKED_MESSAGES {
                    self.seq_uids.truncate(*n as usize);
                } else {
                    self.seq_uids.clear();
                }
                return;
            }
            Data::Recent(n) => {
                self.recent = *n;
                return;
            }
            Data::Expunge(seq) => {
                let index = seq.get() as usize - 1;
                if index < self.seq_uids.len() {
                    let uid = self.seq_uids.remove(index);
                    if uid != 0 {
                        self.expunged.insert(uid);
                    }
                }
                self.exists = self.exists.saturating_sub(1);
                return;
            }
            // With QRESYNC enabled the server reports expunges by UID (RFC 7162 §3.2.10).
            Data::Vanished {
                earlier: false,
                known_uids,
            } => {
                let uids: std::collections::HashSet<u32> = known_uids
                    .iter(std::num::NonZeroU32::MAX)
                    .map(|u| u.get())
                    .take(MAX_TRACKED_MESSAGES as usize)
                    .collect();
                self.seq_uids
                    .retain(|slot| *slot == 0 || !uids.contains(slot));
                self.exists = self.exists.saturating_sub(uids.len() as u32);
                self.expunged.extend(uids);
                return;
            }
            Data::Fetch { seq, items } => {
                let index = seq.get() as usize - 1;
                let tracked = self.exists.min(MAX_TRACKED_MESSAGES) as usize;
                for item in items.as_ref() {
                    if let imap_next::imap_types::fetch::MessageDataItem::Uid(uid) = item
                        && index < tracked
                    {
                        if index >= self.seq_uids.len() {
                            self.seq_uids.resize(index + 1, 0);
                        }
                        self.seq_uids[index] = uid.get();
                    }
                }
            }
            _ => {}
        }
        self.data.push(data);
    }

    /// Sets the largest literal accepted from now on.
    pub fn set_max_literal(&mut self, limit: u64) {
        self.status_text.max_literal = Some(limit);
    }

    /// Declares the UIDs of the selected mailbox in sequence order (learnt without a FETCH
    /// of every message, e.g. from an incremental listing), so EXPUNGE responses map to UIDs.
    pub fn set_sequence_uids(&mut self, uids: impl Iterator<Item = u32>) {
        if self.exists <= MAX_TRACKED_MESSAGES {
            self.seq_uids = uids.take(self.exists as usize).collect();
        }
    }

    /// Forgets the per-mailbox state (a new SELECT follows).
    pub fn reset_mailbox_state(&mut self) {
        self.exists = 0;
        self.recent = 0;
        self.seq_uids.clear();
        self.expunged.clear();
        self.data.clear();
        self.codes.clear();
    }

    /// Sends LOGOUT and closes the connection (errors are ignored). The answer is waited for
    /// [`LOGOUT_WAIT`] at most: nothing depends on it (RFC 3501 §6.1.3 has the server answer
    /// and close; the client has nothing left to say), and on a link with latency waiting
    /// would cost a whole round trip at the end of every run. Answers of other commands
    /// still in flight are not waited for either.
    pub async fn logout(&mut self) {
        if matches!(self.compression, Compression::Offered) {
            self.compression = Compression::Off;
        }
        if !self.broken {
            self.expect_bye = true;
            if let Ok(tag) = self.submit(CommandBody::Logout)
                && self.send_all().await.is_ok()
            {
                let _ = tokio::time::timeout(LOGOUT_WAIT, self.wait_for(&tag)).await;
            }
        }
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.shutdown().await;
        }
        if let Some(child) = self.child.take() {
            finish_tunnel(child);
        }
        self.broken = true;
    }
}

/// The most of one traced line that is shown.
const TRACE_WIDTH: usize = 300;

/// A trace line for a command: credentials are never shown, literals are summarised.
fn trace_command(command: &Command<'_>, outstanding: usize) -> String {
    use imap_codec::encode::Encoder;
    let prefix = if outstanding > 0 {
        format!("({outstanding} in progress) >>> ")
    } else {
        ">>> ".to_string()
    };
    let tag = command.tag.as_ref();
    match &command.body {
        CommandBody::Login { .. } => return format!("{prefix}{tag} LOGIN <user> <pass>"),
        CommandBody::Authenticate { mechanism, .. } => {
            return format!("{prefix}{tag} AUTHENTICATE {mechanism} <authdata>");
        }
        _ => {}
    }
    let bytes = imap_codec::CommandCodec::default().encode(command).dump();
    format!("{prefix}{}", trace_text(&bytes))
}

fn trace_response(response: &Response<'_>) -> String {
    use imap_codec::encode::Encoder;
    let bytes = imap_codec::ResponseCodec::default().encode(response).dump();
    trace_text(&bytes)
}

/// The first line of an encoded message, shortened, with the size of what follows.
fn trace_text(bytes: &[u8]) -> String {
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    let mut text: String = String::from_utf8_lossy(&bytes[..line_end])
        .chars()
        .take(TRACE_WIDTH)
        .collect();
    let rest = bytes.len().saturating_sub(line_end + 2);
    if rest > 0 {
        text.push_str(&format!(" … ({rest} more bytes)"));
    }
    text
}

/// Options of the sans-I/O client: lines may end in LF alone (some tunnelled servers do so),
/// responses may be as large as a literal may be.
fn client_options(discard_greeting: bool) -> Options {
    let mut options = Options::default();
    options.crlf_relaxed = true;
    // Messages may be large; mbsync accepts literals below 2 GiB.
    options.max_response_size = i32::MAX as u32;
    options.discard_greeting = discard_greeting;
    options
}

fn is_authenticate(command: &Command<'_>) -> bool {
    matches!(command.body, CommandBody::Authenticate { .. })
}

/// An APPEND whose message goes as a non-synchronizing literal (LITERAL+ / LITERAL-).
fn is_non_sync_append(body: &CommandBody<'_>) -> bool {
    use imap_next::imap_types::core::LiteralMode;
    use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
    match body {
        CommandBody::Append { message, .. } => match message {
            LiteralOrLiteral8::Literal(literal) => literal.mode() == LiteralMode::NonSync,
            LiteralOrLiteral8::Literal8(literal) => literal.mode == LiteralMode::NonSync,
        },
        _ => false,
    }
}

fn continuation_bytes(request: &CommandContinuationRequest<'_>) -> Vec<u8> {
    use base64::Engine;
    match request {
        CommandContinuationRequest::Base64(data) => data.to_vec(),
        CommandContinuationRequest::Basic(basic) => base64::engine::general_purpose::STANDARD
            .decode(basic.text().as_ref().trim())
            .unwrap_or_default(),
    }
}

fn body_outcome(body: &StatusBody<'static>) -> Outcome {
    Outcome {
        kind: body.kind,
        code: body.code.clone(),
        text: body.text.as_ref().to_string(),
    }
}

fn status_outcome(status: &Status<'static>) -> Option<Outcome> {
    match status {
        Status::Tagged(Tagged { body, .. }) => Some(body_outcome(body)),
        _ => None,
    }
}

/// How long the server's last words are read for after a write failed.
const DRAIN_AFTER_WRITE_ERROR: Duration = Duration::from_secs(2);
/// How much one read from the server takes at most.
const READ_SIZE: usize = 256 * 1024;

async fn with_timeout<F: std::future::Future>(
    timeout: Option<Duration>,
    f: F,
) -> Option<F::Output> {
    match timeout {
        Some(t) => tokio::time::timeout(t, f).await.ok(),
        None => Some(f.await),
    }
}

/// Gives a tunnel command a moment to exit after its connection closed, then kills it.
fn finish_tunnel(mut child: std::process::Child) {
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod status_text_tests {
    use super::StatusTextFilter;

    fn filtered(chunks: &[&[u8]]) -> Vec<u8> {
        let mut filter = StatusTextFilter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut data = chunk.to_vec();
            filter.filter(&mut data);
            out.extend(data);
        }
        out
    }

    #[test]
    fn eight_bit_status_text_is_masked_but_literals_are_not() {
        let reply = "10 NO [TRYCREATE] Mailbox doesn't exist: new öne\r\n".as_bytes();
        assert_eq!(
            filtered(&[reply]),
            b"10 NO [TRYCREATE] Mailbox doesn't exist: new ??ne\r\n".to_vec()
        );
        // Split across reads, after a FETCH whose literal holds 8-bit data.
        let fetch = "* 1 FETCH (BODY[] {6}\r\nä\r\nö)\r\n* OK still ü\r\n".as_bytes();
        let (a, b) = fetch.split_at(20);
        assert_eq!(
            filtered(&[a, b]),
            "* 1 FETCH (BODY[] {6}\r\nä\r\nö)\r\n* OK still ??\r\n"
                .as_bytes()
                .to_vec()
        );
        // Not a status response: untouched.
        let list = "* LIST () \"/\" \"ä\"\r\n".as_bytes();
        assert_eq!(filtered(&[list]), list.to_vec());
    }
}
