//! Test harness: a private Dovecot IMAP server on 127.0.0.1 for the IMAP store tests.
//!
//! [`Dovecot::start`] writes a self-contained `dovecot.conf` into a temporary folder (free
//! ports for plain/STARTTLS and IMAPS, a CA and a server certificate made with `openssl`,
//! users in a passwd-file), starts `/usr/sbin/dovecot -c <conf>` and stops it on drop.
//! `doveadm -c <conf>` helpers prepare mailboxes and read flags back for assertions.
//! [`Relay`] is a small TCP relay that can strip UIDPLUS response codes or cut the stream.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The uid/gid owning the test users' mail (a "valid" uid for Dovecot).
const MAIL_UID: u32 = 1000;

/// The default test user and password.
pub const USER: &str = "tester";
pub const PASS: &str = "secret pw";

/// Dovecot 2.3's full post-login capability list, used to build cut-down variants.
const FULL_CAPABILITIES: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY \
PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE";

/// How to configure the server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Capabilities to remove from the advertised list (e.g. `UIDPLUS`, `LITERAL+`).
    pub remove_capabilities: Vec<String>,
    /// Capabilities to add to the advertised list (e.g. `LITERAL-`).
    pub add_capabilities: Vec<String>,
    /// Hierarchy separator of the inbox namespace (default `/`).
    pub separator: Option<char>,
    /// Namespace prefix of the inbox namespace (default empty).
    pub prefix: Option<String>,
    /// Logins need a client certificate signed by the test CA.
    pub require_client_cert: bool,
    /// COMPRESS=DEFLATE is offered (the imap_zlib plugin).
    pub compress: bool,
}

impl Options {
    pub fn without(capabilities: &[&str]) -> Options {
        Options {
            remove_capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            ..Options::default()
        }
    }
}

/// A running private Dovecot.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    /// Plain port (STARTTLS available).
    pub port: u16,
    /// IMAPS port.
    pub imaps_port: u16,
    /// The CA certificate that signed the server certificate (PEM file).
    pub ca_file: PathBuf,
    /// The server certificate itself (PEM file, non-CA).
    pub server_cert_file: PathBuf,
    /// Where the users' Maildirs are.
    pub mail_root: PathBuf,
    pid: Option<u32>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Makes a CA and a server certificate for localhost / 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    let ca_key = dir.join("ca.key");
    let ca_cert = dir.join("ca.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=mailsync test CA",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca_cert)
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost/O=mailsync test server",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write ext file");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "30"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca_cert)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(dir.join("server.pem"))
        .arg("-extfile")
        .arg(&ext));
}

/// Makes a certificate/key pair signed by nobody relevant (a different self-signed CA).
pub fn make_unrelated_ca(dir: &Path) -> PathBuf {
    let cert = dir.join("other-ca.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=unrelated CA",
        ])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&cert)
        .args(["-addext", "basicConstraints=critical,CA:TRUE"]));
    cert
}

/// Writes `dovecot.conf` for a server on the given ports and returns its path.
fn write_config(
    base: &Path,
    mail_root: &Path,
    passwd: &Path,
    options: &Options,
    port: u16,
    imaps_port: u16,
) -> PathBuf {
    let capabilities =
        if options.remove_capabilities.is_empty() && options.add_capabilities.is_empty() {
            String::new()
        } else {
            let mut kept: Vec<&str> = FULL_CAPABILITIES
                .split_whitespace()
                .filter(|c| {
                    !options
                        .remove_capabilities
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(c))
                })
                .collect();
            kept.extend(options.add_capabilities.iter().map(String::as_str));
            format!("imap_capability = {}\n", kept.join(" "))
        };
    let client_cert = if options.require_client_cert {
        format!(
            "ssl_ca = <{base}/ca.pem\nssl_verify_client_cert = yes\nssl_require_crl = no\nauth_ssl_require_client_cert = yes\n",
            base = base.display()
        )
    } else {
        String::new()
    };
    let compress = if options.compress {
        "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n"
    } else {
        ""
    };
    let separator = options.separator.unwrap_or('/');
    let prefix = options.prefix.clone().unwrap_or_default();
    let instance = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mailsync".into());
    let conf = base.join("dovecot.conf");
    let text = format!(
        r#"instance_name = {instance}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{base}/server.pem
ssl_key = <{base}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-256
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {MAIL_UID}
last_valid_uid = {MAIL_UID}
mail_location = maildir:{mail}/%u
{capabilities}{client_cert}{compress}namespace inbox {{
  inbox = yes
  separator = {separator}
  prefix = {prefix}
}}
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"#,
        base = base.display(),
        mail = mail_root.display(),
        passwd = passwd.display(),
    );
    std::fs::write(&conf, text).expect("write dovecot.conf");
    conf
}

/// Starts the daemon; on failure returns what it printed and logged.
fn start_daemon(base: &Path, conf: &Path) -> Result<(), String> {
    // The daemon keeps its standard streams: give it files, so nothing waits on a pipe.
    let stderr_path = base.join("dovecot.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("create dovecot.stderr");
    let status = Command::new("/usr/sbin/dovecot")
        .arg("-c")
        .arg(conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .status()
        .expect("start dovecot");
    if status.success() {
        return Ok(());
    }
    Err(format!(
        "{status}: {}{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        std::fs::read_to_string(base.join("dovecot.log")).unwrap_or_default()
    ))
}

impl Dovecot {
    pub fn start() -> Dovecot {
        Dovecot::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("mailsync-dovecot")
            .tempdir()
            .expect("temp dir");
        let base = dir.path();
        // Dovecot's processes (running as other users) must be able to reach the folder.
        set_mode(base, 0o755);
        make_certificates(base);
        let mail_root = base.join("mail");
        std::fs::create_dir(&mail_root).expect("mail dir");
        chown(&mail_root, MAIL_UID);
        let passwd = base.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "{USER}:{{PLAIN}}{PASS}:{MAIL_UID}:{MAIL_UID}::{home}::\nother:{{PLAIN}}other:{MAIL_UID}:{MAIL_UID}::{home2}::\n",
                home = mail_root.join(USER).display(),
                home2 = mail_root.join("other").display()
            ),
        )
        .expect("passwd file");
        for d in ["run", "state"] {
            std::fs::create_dir(base.join(d)).expect("dir");
            set_mode(&base.join(d), 0o755);
        }
        // The ports are free when chosen but another test may take one before Dovecot binds
        // it: a start that fails is retried with new ports.
        let mut attempt = 0;
        let (conf, port, imaps_port) = loop {
            attempt += 1;
            let port = free_port();
            let imaps_port = free_port();
            let conf = write_config(base, &mail_root, &passwd, &options, port, imaps_port);
            let failure = match start_daemon(base, &conf) {
                Ok(()) => break (conf, port, imaps_port),
                Err(failure) => failure,
            };
            assert!(
                attempt < 5,
                "dovecot failed to start {attempt} times; last: {failure}"
            );
            thread::sleep(Duration::from_millis(100));
        };
        let pid_file = base.join("run/master.pid");
        let mut dovecot = Dovecot {
            ca_file: base.join("ca.pem"),
            server_cert_file: base.join("server.pem"),
            conf,
            port,
            imaps_port,
            mail_root,
            pid: None,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file) {
                dovecot.pid = text.trim().parse().ok();
            }
            let up = TcpStream::connect(("127.0.0.1", port)).is_ok()
                && TcpStream::connect(("127.0.0.1", imaps_port)).is_ok();
            if up && dovecot.pid.is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not start: {}",
                std::fs::read_to_string(dovecot.dir.path().join("dovecot.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    /// The server log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Adds users `u1` … `u<count>` with this password, each with a Maildir under the mail
    /// root. Call it before the first login: Dovecot notices a changed passwd-file by its
    /// modification time, in whole seconds, so users added while tests run could be missed.
    pub fn add_users(&self, count: u32, password: &str) {
        let passwd = self.dir.path().join("passwd");
        let mut text = std::fs::read_to_string(&passwd).expect("read passwd");
        for n in 1..=count {
            text.push_str(&format!(
                "u{n}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{}::\n",
                self.mail_root.join(format!("u{n}")).display()
            ));
        }
        thread::sleep(Duration::from_millis(1100));
        std::fs::write(&passwd, text).expect("write passwd");
    }

    /// Runs `doveadm -c <conf> <args>`: its standard output, or what it printed on failure.
    pub fn try_doveadm(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "doveadm {args:?}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// `doveadm flags <how> <names>` on the messages of `user`'s `mailbox` whose Message-ID
    /// header is `message_id` (`how`: add, remove or replace).
    pub fn flags_by_message_id(
        &self,
        user: &str,
        mailbox: &str,
        message_id: &str,
        how: &str,
        names: &str,
    ) {
        self.doveadm(&[
            "flags",
            how,
            "-u",
            user,
            names,
            "mailbox",
            mailbox,
            "header",
            "Message-ID",
            message_id,
        ]);
    }

    /// `user`'s `mailbox` as message id (the local part of `<id@…>`) → flag letters.
    pub fn flags_by_id(&self, user: &str, mailbox: &str) -> BTreeMap<String, String> {
        let listing = self.doveadm(&[
            "-f",
            "flow",
            "fetch",
            "-u",
            user,
            "flags hdr.message-id",
            "mailbox",
            mailbox,
        ]);
        let mut flags_by_id = BTreeMap::new();
        for line in listing.lines() {
            let id = line
                .split("hdr.message-id=<")
                .nth(1)
                .and_then(|rest| rest.split('@').next())
                .unwrap_or("")
                .to_string();
            let flags = line
                .split("flags=")
                .nth(1)
                .and_then(|rest| rest.split(" hdr.").next())
                .unwrap_or("");
            flags_by_id.insert(id, flag_letters(flags));
        }
        flags_by_id
    }

    /// `doveadm expunge` of the messages of `user`'s `mailbox` whose Message-ID header is
    /// `message_id`.
    pub fn expunge_by_message_id(&self, user: &str, mailbox: &str, message_id: &str) {
        self.doveadm(&[
            "expunge",
            "-u",
            user,
            "mailbox",
            mailbox,
            "header",
            "Message-ID",
            message_id,
        ]);
    }

    /// Runs `doveadm -c <conf> <args>` and returns its standard output.
    pub fn doveadm(&self, args: &[&str]) -> String {
        run(Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args))
    }

    pub fn create_mailbox(&self, name: &str) {
        self.doveadm(&["mailbox", "create", "-u", USER, name]);
    }

    pub fn subscribe(&self, name: &str) {
        self.doveadm(&["mailbox", "subscribe", "-u", USER, name]);
    }

    /// Mailbox names as Dovecot lists them (UTF-8).
    pub fn mailboxes(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .doveadm(&["mailbox", "list", "-u", USER])
            .lines()
            .map(|l| l.to_string())
            .collect();
        names.sort();
        names
    }

    /// Appends a message (given with LF or CRLF line ends) with IMAP flags like `\Seen`.
    pub fn append(&self, mailbox: &str, message: &str, flags: &str) {
        let file = self.dir.path().join("append.eml");
        std::fs::write(&file, message).expect("write message");
        set_mode(&file, 0o644);
        let mut command = Command::new("/usr/bin/doveadm");
        command
            .arg("-c")
            .arg(&self.conf)
            .args(["save", "-u", USER, "-m", mailbox])
            .stdin(std::fs::File::open(&file).expect("open message"));
        run(&mut command);
        if !flags.is_empty() {
            let uid = self.uids(mailbox).into_iter().max().unwrap_or(0);
            self.doveadm(&[
                "flags",
                "add",
                "-u",
                USER,
                flags,
                "mailbox",
                mailbox,
                "uid",
                &uid.to_string(),
            ]);
        }
    }

    /// Stores many messages in INBOX at once, without flags: a `doveadm import` of a
    /// Maildir holding them, far faster than an `append` each.
    pub fn import_into_inbox(&self, messages: &[String]) {
        let staging = self.dir.path().join("import");
        let cur = staging.join("cur");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(staging.join(sub)).expect("import maildir");
            chown(&staging.join(sub), MAIL_UID);
        }
        chown(&staging, MAIL_UID);
        for (number, text) in messages.iter().enumerate() {
            let file = cur.join(format!("{}.{number:07}.import:2,", 1_600_000_000 + number));
            std::fs::write(&file, text).expect("write message");
            chown(&file, MAIL_UID);
        }
        let source = format!("maildir:{}", staging.display());
        self.doveadm(&["import", "-u", USER, &source, "", "mailbox", "INBOX"]);
        std::fs::remove_dir_all(&staging).expect("remove the import maildir");
    }

    /// UIDs in a mailbox, ascending.
    pub fn uids(&self, mailbox: &str) -> Vec<u32> {
        let mut uids: Vec<u32> = self
            .doveadm(&["-f", "flow", "fetch", "-u", USER, "uid", "mailbox", mailbox])
            .lines()
            .filter_map(|l| l.trim().strip_prefix("uid=")?.trim().parse().ok())
            .collect();
        uids.sort();
        uids
    }

    /// `(uid, flags)` of every message, flags as Dovecot prints them (e.g. `\Seen \Flagged`),
    /// without the session-dependent `\Recent`.
    pub fn flags(&self, mailbox: &str) -> Vec<(u32, String)> {
        let out = self.doveadm(&[
            "-f",
            "flow",
            "fetch",
            "-u",
            USER,
            "uid flags",
            "mailbox",
            mailbox,
        ]);
        let mut result = Vec::new();
        for line in out.lines() {
            let Some(rest) = line.trim().strip_prefix("uid=") else {
                continue;
            };
            let (uid, flags) = rest.split_once(" flags=").unwrap_or((rest, ""));
            if let Ok(uid) = uid.trim().parse() {
                let flags: Vec<&str> = flags
                    .split_whitespace()
                    .filter(|f| *f != "\\Recent")
                    .collect();
                result.push((uid, flags.join(" ")));
            }
        }
        result.sort();
        result
    }

    /// The full text of a message.
    pub fn text(&self, mailbox: &str, uid: u32) -> String {
        self.doveadm(&[
            "-f",
            "pager",
            "fetch",
            "-u",
            USER,
            "text",
            "mailbox",
            mailbox,
            "uid",
            &uid.to_string(),
        ])
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let Some(pid) = self.pid else { return };
        // SIGTERM first; Dovecot may take seconds to wind down its children, so the whole
        // process group (the master leads its own session) is killed if it is still there.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        if !wait_for_exit(pid, Duration::from_millis(300)) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            wait_for_exit(pid, Duration::from_secs(3));
        }
    }
}

/// Waits until a process is gone (or a zombie); true if it went in time.
fn wait_for_exit(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = state.is_empty()
            || state
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

fn chown(path: &Path, uid: u32) {
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(uid));
}

/// What a [`Relay`] does to the server's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMode {
    /// Passes everything through (and counts commands in flight), each tagged completion
    /// 50 ms late.
    Pass,
    /// Delivers the server's data this many milliseconds late (a link with latency, without
    /// holding answers back one after the other), counting commands, rounds and continuation
    /// requests: a client that waits for each answer needs a round per command.
    Latency(u64),
    /// Removes `[APPENDUID …]` and `[COPYUID …]` response codes (a server without UIDPLUS).
    StripUidPlus,
    /// Closes both directions once this many bytes of a `BODY[]` literal (or of a chunk,
    /// `BODY[]<origin>`) went to the client.
    CutInBody(usize),
}

/// A TCP relay on 127.0.0.1 in front of a server port.
pub struct Relay {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// The most commands the client had sent without their tagged response yet.
    pub max_in_flight: Arc<std::sync::Mutex<(usize, usize)>>,
    /// What the client and server exchanged, over all connections.
    pub counts: Arc<std::sync::Mutex<RelayCounts>>,
}

/// Traffic counts of a [`Relay`] (commands are recognised as lines starting with a numeric
/// tag, so message data must not contain such lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounts {
    /// Tagged commands the client sent.
    pub commands: usize,
    /// Times the client sent a command while none was outstanding: each is a round trip the
    /// client waited for (a client that pipelines needs few).
    pub rounds: usize,
    /// Continuation requests (`+ …`) the server sent: for synchronizing literals each is a
    /// round trip too.
    pub continuations: usize,
    /// Client connections accepted.
    pub connections: usize,
    /// Client connections open now (until the client closes its side) …
    pub open_connections: usize,
    /// … and the most that were open at once.
    pub max_open_connections: usize,
    /// `UID FETCH` commands the client sent.
    pub fetches: usize,
}

impl Relay {
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.lock().map(|c| c.1).unwrap_or(0)
    }

    pub fn counts(&self) -> RelayCounts {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }
}

/// True for a line starting with a numeric tag and a space followed by `what` (any word if empty).
fn tagged_line(line: &[u8], what: &[&str]) -> bool {
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || line.get(digits) != Some(&b' ') {
        return false;
    }
    let rest = &line[digits + 1..];
    if what.is_empty() {
        return rest.first().is_some_and(|b| b.is_ascii_alphabetic());
    }
    what.iter().any(|w| rest.starts_with(w.as_bytes()))
}

impl Relay {
    pub fn start(target_port: u16, mode: RelayMode) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let counter = Arc::new(std::sync::Mutex::new((0usize, 0usize)));
        let max_in_flight = counter.clone();
        let counts = Arc::new(std::sync::Mutex::new(RelayCounts::default()));
        let connection_counts = counts.clone();
        listener.set_nonblocking(true).expect("nonblocking");
        thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(mut counts) = connection_counts.lock() {
                            counts.connections += 1;
                            counts.open_connections += 1;
                            counts.max_open_connections =
                                counts.max_open_connections.max(counts.open_connections);
                        }
                        if let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) {
                            relay_connection(
                                client,
                                server,
                                mode,
                                counter.clone(),
                                connection_counts.clone(),
                            );
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Relay {
            port,
            stop,
            max_in_flight,
            counts,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay_connection(
    client: TcpStream,
    server: TcpStream,
    mode: RelayMode,
    counter: Arc<std::sync::Mutex<(usize, usize)>>,
    counts: Arc<std::sync::Mutex<RelayCounts>>,
) {
    let (Ok(client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let sent_counter = counter.clone();
    let sent_counts = counts.clone();
    thread::spawn(move || {
        let mut reader = BufReader::new(client_in);
        // Bytes of a literal (message data) still to pass: not looked at.
        let mut literal_left = 0usize;
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if literal_left > 0 {
                literal_left = literal_left.saturating_sub(line.len());
                if server_out.write_all(&line).is_err() {
                    break;
                }
                continue;
            }
            literal_left = announced_literal(&line);
            if tagged_line(&line, &[])
                && let Ok(mut c) = sent_counter.lock()
            {
                if let Ok(mut counts) = sent_counts.lock() {
                    counts.commands += 1;
                    if tagged_line(&line, &["UID FETCH"]) {
                        counts.fetches += 1;
                    }
                    if c.0 == 0 {
                        counts.rounds += 1;
                    }
                }
                c.0 += 1;
                c.1 = c.1.max(c.0);
            }
            if server_out.write_all(&line).is_err() {
                break;
            }
        }
        if let Ok(mut counts) = sent_counts.lock() {
            counts.open_connections = counts.open_connections.saturating_sub(1);
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let mut client_out = client;
    if let RelayMode::Latency(millis) = mode {
        relay_with_latency(
            server,
            client_out,
            Duration::from_millis(millis),
            counter,
            counts,
        );
        return;
    }
    thread::spawn(move || {
        let mut reader = BufReader::new(server);
        let mut body_bytes_sent = 0usize;
        let mut in_body = false;
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let completion = tagged_line(&line, &["OK", "NO", "BAD"]);
            if completion && mode == RelayMode::Pass {
                // Completions are held back a little, so that a pipelining client has sent
                // its further commands before the first answer arrives: what `max_in_flight`
                // measures then depends on the client, not on how fast the server answers.
                thread::sleep(Duration::from_millis(50));
            }
            if completion && let Ok(mut c) = counter.lock() {
                c.0 = c.0.saturating_sub(1);
            }
            match mode {
                RelayMode::Pass | RelayMode::Latency(_) => {}
                RelayMode::StripUidPlus => {
                    for code in ["[APPENDUID ", "[COPYUID "] {
                        strip_code(&mut line, code);
                    }
                }
                RelayMode::CutInBody(limit) => {
                    if in_body {
                        if body_bytes_sent + line.len() >= limit {
                            let keep = limit.saturating_sub(body_bytes_sent);
                            let _ = client_out.write_all(&line[..keep]);
                            let _ = client_out.shutdown(Shutdown::Both);
                            let _ = reader.get_ref().shutdown(Shutdown::Both);
                            return;
                        }
                        body_bytes_sent += line.len();
                    } else if line.windows(7).any(|w| w == b"BODY[] " || w == b"BODY[]<") {
                        in_body = true;
                    }
                }
            }
            if client_out.write_all(&line).is_err() {
                break;
            }
        }
        let _ = client_out.shutdown(Shutdown::Both);
    });
}

/// The server-to-client direction of [`RelayMode::Latency`]: a reader queues each line with
/// its arrival time, a writer delivers it `latency` later (and only then counts it, so that
/// the counts see what the client could see).
fn relay_with_latency(
    server: TcpStream,
    mut client_out: TcpStream,
    latency: Duration,
    counter: Arc<std::sync::Mutex<(usize, usize)>>,
    counts: Arc<std::sync::Mutex<RelayCounts>>,
) {
    let (queue, delivery) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut reader = BufReader::new(server);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if queue.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    thread::spawn(move || {
        let mut literal_left = 0usize;
        while let Ok((arrived, line)) = delivery.recv() {
            let due = arrived + latency;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if literal_left > 0 {
                literal_left = literal_left.saturating_sub(line.len());
            } else {
                if tagged_line(&line, &["OK", "NO", "BAD"])
                    && let Ok(mut c) = counter.lock()
                {
                    c.0 = c.0.saturating_sub(1);
                }
                if line.starts_with(b"+")
                    && let Ok(mut c) = counts.lock()
                {
                    c.continuations += 1;
                }
                literal_left = announced_literal(&line);
            }
            if client_out.write_all(&line).is_err() {
                break;
            }
        }
        let _ = client_out.shutdown(Shutdown::Both);
    });
}

/// The size of a literal announced at the end of a line (`{123}\r\n`), or 0.
fn announced_literal(line: &[u8]) -> usize {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    let Some(inner) = text.strip_suffix('}') else {
        return 0;
    };
    let Some(open) = inner.rfind('{') else {
        return 0;
    };
    inner[open + 1..].trim_end_matches('+').parse().unwrap_or(0)
}

fn strip_code(line: &mut Vec<u8>, code: &str) {
    let code = code.as_bytes();
    if let Some(start) = line.windows(code.len()).position(|w| w == code)
        && let Some(len) = line[start..].iter().position(|&b| b == b']')
    {
        let mut end = start + len + 1;
        if line.get(end) == Some(&b' ') {
            end += 1;
        }
        line.drain(start..end);
    }
}

/// An account for the default user on this server (plain port, the given TLS mode; the
/// CA certificate is trusted through CertificateFile, system certificates are off).
pub fn account(
    server: &Dovecot,
    tls_type: mailsync::config::TlsType,
) -> mailsync::config::ImapAccountConfig {
    use mailsync::config::{ImapAccountConfig, TlsType, TlsVersions};
    ImapAccountConfig {
        name: "test".into(),
        host: Some("localhost".into()),
        port: Some(if tls_type == TlsType::Imaps {
            server.imaps_port
        } else {
            server.port
        }),
        tunnel: None,
        timeout: 10,
        user: Some(USER.into()),
        user_cmd: None,
        user_file: None,
        pass: Some(PASS.into()),
        pass_cmd: None,
        pass_file: None,
        use_keychain: false,
        tls_type,
        tls_versions: TlsVersions::default(),
        system_certificates: false,
        certificate_file: Some(server.ca_file.clone()),
        client_certificate: None,
        client_key: None,
        cipher_string: None,
        auth_mechs: Vec::new(),
        pipeline_depth: None,
        max_connections: mailsync::config::DEFAULT_MAX_CONNECTIONS,
        disable_extensions: Vec::new(),
    }
}

/// An IMAPStore section using the account, with an optional Trash.
pub fn store_config(trash: Option<&str>) -> mailsync::config::ImapStoreConfig {
    use mailsync::config::{CommonStoreConfig, ImapStoreConfig};
    ImapStoreConfig {
        common: CommonStoreConfig {
            name: "remote".into(),
            trash: trash.map(str::to_string),
            ..CommonStoreConfig::default()
        },
        account: "test".into(),
        path: None,
        path_delimiter: None,
        use_namespace: true,
        subscribed_only: false,
        implicit_account: None,
    }
}

/// A reporter that keeps everything for assertions.
#[derive(Clone, Default)]
pub struct Collect(pub std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Collect {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl mailsync::store::Reporter for Collect {
    fn notice(&self, text: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.push(text.to_string());
        }
    }
    fn warning(&self, text: &str) {
        self.notice(text);
    }
    fn debug(&self, text: &str) {
        self.notice(text);
    }
}

/// Opens a store on the server.
pub fn open_store(
    account: &mailsync::config::ImapAccountConfig,
    store: &mailsync::config::ImapStoreConfig,
) -> (mailsync::store::imap::ImapStore, Collect) {
    let collect = Collect::default();
    let imap = mailsync::store::imap::ImapStore::new(
        store,
        account,
        mailsync::store::imap::ImapOptions::default(),
        std::rc::Rc::new(collect.clone()),
    )
    .expect("store");
    (imap, collect)
}

/// A Tunnel command reaching a TCP port on 127.0.0.1 (bash's /dev/tcp, no extra tools).
pub fn tcp_tunnel(port: u16) -> String {
    format!("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; cat <&3 & exec cat >&3'")
}

impl Dovecot {
    /// A Tunnel command running the IMAP server directly, logged in (PREAUTH). Dovecot ends
    /// lines with LF alone on a pipe, so `sed` restores the CRLF (fine for listings).
    pub fn preauth_tunnel(&self) -> String {
        format!(
            "/usr/lib/dovecot/imap -c {} -u {USER} 2>/dev/null | sed -u 's/\\r*$/\\r/'",
            self.conf.display()
        )
    }
}

/// An account with no server details (for canned servers).
pub fn account_template() -> mailsync::config::ImapAccountConfig {
    use mailsync::config::{ImapAccountConfig, TlsType, TlsVersions};
    ImapAccountConfig {
        name: "test".into(),
        host: None,
        port: None,
        tunnel: None,
        timeout: 10,
        user: Some(USER.into()),
        user_cmd: None,
        user_file: None,
        pass: Some(PASS.into()),
        pass_cmd: None,
        pass_file: None,
        use_keychain: false,
        tls_type: TlsType::None,
        tls_versions: TlsVersions::default(),
        system_certificates: false,
        certificate_file: None,
        client_certificate: None,
        client_key: None,
        cipher_string: None,
        auth_mechs: Vec::new(),
        pipeline_depth: None,
        max_connections: mailsync::config::DEFAULT_MAX_CONNECTIONS,
        disable_extensions: Vec::new(),
    }
}

impl Dovecot {
    /// A client certificate and key signed by the test CA (PEM files).
    pub fn make_client_certificate(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        let key = dir.join("client.key");
        let csr = dir.join("client.csr");
        let cert = dir.join("client.pem");
        let ext = dir.join("client.ext");
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write ext file");
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-subj", "/CN=mailsync test client"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "30"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&self.ca_file)
            .arg("-CAkey")
            .arg(dir.join("ca.key"))
            .arg("-CAcreateserial")
            .arg("-out")
            .arg(&cert)
            .arg("-extfile")
            .arg(&ext));
        (cert, key)
    }
}

/// Message-ID (the part between `<` and `@`) and body (LF line ends) of a message text.
pub fn message_id_and_body(text: &str) -> (String, String) {
    let text = text.replace("\r\n", "\n");
    let (header, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let id = header
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    let id = id
        .trim_start_matches('<')
        .split('@')
        .next()
        .unwrap_or("")
        .to_string();
    (id, body.to_string())
}

/// The Maildir flag letters (sorted `DFPRST`) of IMAP flags as Dovecot prints them.
pub fn flag_letters(imap_flags: &str) -> String {
    let mut letters: Vec<char> = imap_flags
        .split_whitespace()
        .filter_map(|f| match f {
            "\\Draft" => Some('D'),
            "\\Flagged" => Some('F'),
            "$Forwarded" => Some('P'),
            "\\Answered" => Some('R'),
            "\\Seen" => Some('S'),
            "\\Deleted" => Some('T'),
            _ => None,
        })
        .collect();
    letters.sort();
    letters.dedup();
    letters.into_iter().collect()
}

/// The IMAP flag names of Maildir flag letters.
pub fn flag_names(letters: &str) -> Vec<&'static str> {
    letters
        .chars()
        .filter_map(|c| match c {
            'D' => Some("\\Draft"),
            'F' => Some("\\Flagged"),
            'P' => Some("$Forwarded"),
            'R' => Some("\\Answered"),
            'S' => Some("\\Seen"),
            'T' => Some("\\Deleted"),
            _ => None,
        })
        .collect()
}

/// A Maildir folder's messages as message id (the local part of `<id@…>`) → the flag letters
/// of the file name; a missing `cur/` or `new/` counts as empty.
pub fn maildir_flags_by_id(folder: &Path) -> BTreeMap<String, String> {
    let mut flags_by_id = BTreeMap::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path()).expect("read message");
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: <"))
                .and_then(|rest| rest.split('@').next())
                .unwrap_or("")
                .to_string();
            let flags = name.split(":2,").nth(1).unwrap_or("").to_string();
            flags_by_id.insert(id, flags);
        }
    }
    flags_by_id
}
