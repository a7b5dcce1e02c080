//! Security review, as tests through the binary against a real Dovecot on 127.0.0.1 (and a
//! small scripted server where Dovecot cannot misbehave enough):
//!
//! - certificate verification cannot be silently off: an untrusted CA, no trust anchors at
//!   all, a host name the certificate does not name — each fails; the only way to accept a
//!   certificate that does not verify is mbsync's explicit one, the exact certificate listed
//!   in CertificateFile; a relay hiding STARTTLS does not make the password go in the clear;
//! - no plaintext credentials unless the config says so: on an unencrypted connection the
//!   default `AuthMechs *` uses neither LOGIN (mbsync's rule) nor PLAIN (beyond mbsync), and
//!   nothing secret crosses the wire; naming the mechanism allows it, with a warning;
//! - mailbox names from a server cannot escape the Maildir root: `..`, absolute names, NUL
//!   and control characters are refused with an error naming them, and nothing is written
//!   outside the root;
//! - the password never reaches the output, with every debug category on and `RUST_LOG=trace`,
//!   for each authentication mechanism, nor after a failed login;
//! - the operator's rendered config, ConfigMap and Job carry no password (only the Secret's
//!   mounted file is named), no environment variable reads a Secret, and a field with a line
//!   break cannot add config lines.

mod dovecot;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use dovecot::{Dovecot, PASS, USER};

/// The password used where it is looked for in output and traffic: distinctive enough not to
/// appear by chance.
const MARKED_PASS: &str = "Zq7-secret-Wx9";

struct Run {
    code: i32,
    output: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n{}", self.code, self.output)
    }
}

/// A config with an IMAP far side (these account lines) and a Maildir near side, and a run.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("near")).expect("near root");
        Setup { dir }
    }

    fn write(&self, account_lines: &str, channel_lines: &str) {
        let text = format!(
            "IMAPAccount acc\n{account_lines}\n\nIMAPStore far\nAccount acc\n\n\
             MaildirStore near\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n\n\
             Channel ex\nFar :far:\nNear :near:\nCreate Near\nSyncState {state}/\n{channel_lines}\n",
            root = self.dir.path().join("near").display(),
            state = self.dir.path().join("state").display(),
        );
        std::fs::write(self.dir.path().join("cfg"), text).expect("write config");
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_mailsync"))
            .arg("sync")
            .arg("-c")
            .arg(self.dir.path().join("cfg"))
            .args(args)
            .arg("ex")
            .env("HOME", self.dir.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run mailsync");
        Run {
            code: output.status.code().unwrap_or(-1),
            output: format!(
                "--- stdout\n{}--- stderr\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// Messages in the near INBOX.
    fn near_count(&self) -> usize {
        ["cur", "new"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.dir.path().join("near/INBOX").join(sub)).ok())
            .map(|d| d.count())
            .sum()
    }
}

fn message(id: &str) -> String {
    format!("From: a@example.org\nSubject: {id}\nMessage-ID: <{id}@test>\n\nbody {id}\n")
}

/// A relay that records what the client sent and rewrites the server's lines.
struct Relay {
    port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
}

fn relay(target: u16, rewrite: Vec<(&'static str, &'static str)>) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().expect("address").port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (Ok(mut to_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone())
            else {
                continue;
            };
            let record = record.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(client);
                let mut line = Vec::new();
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    if let Ok(mut all) = record.lock() {
                        all.extend_from_slice(&line);
                    }
                    if to_server.write_all(&line).is_err() {
                        break;
                    }
                    line.clear();
                }
                let _ = to_server.shutdown(Shutdown::Both);
            });
            let rewrite = rewrite.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(server);
                let mut line = Vec::new();
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    let mut text = String::from_utf8_lossy(&line).into_owned();
                    for (from, to) in &rewrite {
                        text = text.replace(from, to);
                    }
                    if to_client.write_all(text.as_bytes()).is_err() {
                        break;
                    }
                    line.clear();
                }
                let _ = to_client.shutdown(Shutdown::Both);
            });
        }
    });
    Relay { port, sent }
}

impl Relay {
    fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().map(|s| s.clone()).unwrap_or_default())
            .into_owned()
    }
}

/// The password and the forms it takes on the wire in the clear (SASL PLAIN, base64).
fn password_forms(user: &str, pass: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        pass.to_string(),
        b64.encode(format!("\0{user}\0{pass}")),
        b64.encode(pass),
    ]
}

fn assert_no_password(text: &str, user: &str, pass: &str, context: &str) {
    for form in password_forms(user, pass) {
        assert!(
            !text.contains(&form),
            "{context}: the password (as {form:?}) appears in:\n{text}"
        );
    }
}

/// A Dovecot whose default user has the marked password.
fn dovecot_with_marked_password() -> Dovecot {
    let server = Dovecot::start();
    let passwd = server.dir.path().join("passwd");
    let text = std::fs::read_to_string(&passwd).expect("read passwd");
    // Dovecot sees a changed passwd-file by its modification time (seconds).
    thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(
        &passwd,
        text.replace(
            &format!("{{PLAIN}}{PASS}:"),
            &format!("{{PLAIN}}{MARKED_PASS}:"),
        ),
    )
    .expect("write passwd");
    server
}

// ---- Certificates ------------------------------------------------------------------------

#[test]
fn certificate_verification_cannot_be_silently_off() {
    let server = Dovecot::start();
    server.append("INBOX", &message("m1"), "");
    let setup = Setup::new();
    let other_ca = dovecot::make_unrelated_ca(setup.dir.path());
    let imaps = |host: &str, extra: &str| {
        format!(
            "Host {host}\nPort {}\nTLSType IMAPS\nUser {USER}\nPass \"{PASS}\"\n{extra}",
            server.imaps_port
        )
    };
    let ca = server.ca_file.display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a CA nobody trusts",
            imaps(
                "localhost",
                &format!(
                    "SystemCertificates no\nCertificateFile {}\n",
                    other_ca.display()
                ),
            ),
            "is not trusted",
        ),
        (
            "no trust anchors at all",
            imaps("localhost", "SystemCertificates no\n"),
            "SSL error connecting localhost",
        ),
        (
            "only the system CAs",
            imaps("localhost", ""),
            "SSL error connecting localhost",
        ),
        (
            "a host name the certificate does not name",
            // The server reached through a tunnel: Host is only the name checked.
            format!(
                "Host other.example\nTunnel \"{}\"\nTLSType IMAPS\nUser {USER}\nPass \"{PASS}\"\nSystemCertificates no\nCertificateFile {ca}\n",
                dovecot::tcp_tunnel(server.imaps_port)
            ),
            "certificate owner does not match hostname other.example",
        ),
        (
            "a pinned certificate that is not the server's",
            imaps(
                "127.0.0.1",
                &format!(
                    "SystemCertificates no\nCertificateFile {}\n",
                    other_ca.display()
                ),
            ),
            "SSL error connecting 127.0.0.1",
        ),
    ];
    for (what, lines, error) in &cases {
        setup.write(lines, "");
        // Nothing in the environment switches verification off either.
        let run = setup.run(
            &[],
            &[
                ("SSL_CERT_FILE", "/dev/null"),
                ("MAILSYNC_INSECURE", "1"),
                ("RUSTLS_DANGEROUS", "1"),
            ],
        );
        assert_eq!(run.code, 1, "{what}: {run}");
        assert!(run.output.contains(error), "{what}: want {error:?}:\n{run}");
        assert_eq!(setup.near_count(), 0, "{what}: mail was synced");
    }
    // The one explicit way: the server's own certificate listed in CertificateFile is
    // accepted as it is (even for a host name it does not carry).
    setup.write(
        &imaps(
            "127.0.0.1",
            &format!(
                "SystemCertificates no\nCertificateFile {}\n",
                server.server_cert_file.display()
            ),
        ),
        "",
    );
    let run = setup.run(&[], &[]);
    assert_eq!(run.code, 0, "pinned certificate: {run}");
    assert_eq!(setup.near_count(), 1);
}

#[test]
fn a_relay_hiding_starttls_does_not_get_the_password() {
    let server = dovecot_with_marked_password();
    // A man in the middle removing STARTTLS from the capabilities (a downgrade attack).
    let mitm = relay(server.port, vec![(" STARTTLS", "")]);
    let setup = Setup::new();
    setup.write(
        &format!(
            "Host localhost\nPort {}\nTLSType STARTTLS\nUser {USER}\nPass \"{MARKED_PASS}\"\nSystemCertificates no\nCertificateFile {}\n",
            mitm.port,
            server.ca_file.display()
        ),
        "",
    );
    let run = setup.run(&[], &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.output.contains("IMAP error: SSL support not available"),
        "no error about the missing STARTTLS:\n{run}"
    );
    let sent = mitm.sent_text();
    assert!(
        !sent.to_ascii_uppercase().contains("LOGIN ")
            && !sent.to_ascii_uppercase().contains("AUTHENTICATE"),
        "credentials were offered in the clear:\n{sent}"
    );
    assert_no_password(&sent, USER, MARKED_PASS, "traffic");
    assert_no_password(&run.output, USER, MARKED_PASS, "output");
}

// ---- Plaintext credentials -----------------------------------------------------------------

#[test]
fn no_password_in_the_clear_unless_the_config_names_the_mechanism() {
    let server = dovecot_with_marked_password();
    server.append("INBOX", &message("m1"), "");
    // The server offers only mechanisms that send the password as it is.
    let plain_only = relay(
        server.port,
        vec![(" AUTH=CRAM-MD5", ""), (" AUTH=SCRAM-SHA-256", "")],
    );
    let lines = |mechs: &str| {
        format!(
            "Host 127.0.0.1\nPort {}\nTLSType None\nUser {USER}\nPass \"{MARKED_PASS}\"\n{mechs}",
            plain_only.port
        )
    };
    let setup = Setup::new();
    setup.write(&lines(""), "");
    let run = setup.run(&[], &[]);
    assert_eq!(run.code, 1, "default AuthMechs: {run}");
    for note in [
        "not using LOGIN because connection is not encrypted",
        "not using PLAIN because connection is not encrypted",
    ] {
        assert!(run.output.contains(note), "want {note:?}:\n{run}");
    }
    let sent = plain_only.sent_text();
    assert_no_password(&sent, USER, MARKED_PASS, "traffic with AuthMechs *");
    assert!(
        !sent.to_ascii_uppercase().contains(" LOGIN ")
            && !sent.to_ascii_uppercase().contains("AUTHENTICATE"),
        "{sent}"
    );
    assert_eq!(setup.near_count(), 0);
    // Named explicitly, each is used — with a warning that the password goes in the clear.
    for mechs in ["AuthMechs PLAIN\n", "AuthMechs LOGIN\n"] {
        let setup = Setup::new();
        setup.write(&lines(mechs), "");
        let run = setup.run(&[], &[]);
        assert_eq!(run.code, 0, "{mechs}: {run}");
        assert!(
            run.output
                .contains("*** IMAP Warning *** Password is being sent in the clear"),
            "{mechs}: {run}"
        );
        assert_eq!(setup.near_count(), 1);
    }
    // Over TLS, `*` may use them.
    let setup = Setup::new();
    setup.write(
        &format!(
            "Host localhost\nPort {}\nTLSType STARTTLS\nUser {USER}\nPass \"{MARKED_PASS}\"\nSystemCertificates no\nCertificateFile {}\nAuthMechs *\n",
            server.port,
            server.ca_file.display()
        ),
        "",
    );
    let run = setup.run(&[], &[]);
    assert_eq!(run.code, 0, "STARTTLS: {run}");
}

// ---- Mailbox names from the server ---------------------------------------------------------

/// A scripted IMAP server on 127.0.0.1 that lists these raw mailbox entries (`* LIST …`
/// lines, literals included) and answers every other command with OK.
fn listing_server(entries: Vec<Vec<u8>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let entries = entries.clone();
            thread::spawn(move || {
                let Ok(mut out) = client.try_clone() else {
                    return;
                };
                let _ = out.write_all(b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] scripted\r\n");
                let mut reader = BufReader::new(client);
                let mut line = Vec::new();
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    let mut words = text.split_whitespace();
                    let tag = words.next().unwrap_or("*").to_string();
                    let verb = words.next().unwrap_or("").to_ascii_uppercase();
                    let mut reply: Vec<u8> = Vec::new();
                    match verb.as_str() {
                        "CAPABILITY" => reply.extend(b"* CAPABILITY IMAP4rev1 UIDPLUS\r\n"),
                        "LIST" | "LSUB" => {
                            for entry in &entries {
                                reply.extend(entry);
                            }
                        }
                        "SELECT" => reply.extend(
                            b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n",
                        ),
                        "LOGOUT" => reply.extend(b"* BYE bye\r\n"),
                        _ => {}
                    }
                    reply.extend(format!("{tag} OK done\r\n").as_bytes());
                    if out.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Every file and folder under `dir`, relative.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    fn walk(base: &Path, dir: &Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(rel) = path.strip_prefix(base) {
                found.push(rel.to_string_lossy().into_owned());
            }
            if path.is_dir() {
                walk(base, &path, found);
            }
        }
    }
    walk(dir, dir, &mut found);
    found.sort();
    found
}

#[test]
fn server_mailbox_names_cannot_escape_the_maildir_root() {
    // (what, LIST entry, exit code, what the output must say). The delimiter is the first
    // one the server gave (here `/`), so a `.`-delimited entry is judged with `/` too.
    let hostile: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "..",
            b"* LIST () \"/\" \"..\"\r\n".to_vec(),
            1,
            "'..' component",
        ),
        (
            "a/../../b",
            b"* LIST () \"/\" \"a/../../b\"\r\n".to_vec(),
            1,
            "'..' component",
        ),
        (
            "/etc/x",
            b"* LIST () \"/\" \"/etc/x\"\r\n".to_vec(),
            1,
            "is absolute",
        ),
        (
            "NUL",
            b"* LIST () \"/\" {5}\r\nab\0cd\r\n".to_vec(),
            1,
            "invalid modified-UTF-7",
        ),
        (
            "newline",
            b"* LIST () \"/\" {6}\r\nab\ncd/\r\n".to_vec(),
            1,
            "contains control characters",
        ),
        (
            "escape",
            b"* LIST () \"/\" {3}\r\na\x1bb\r\n".to_vec(),
            1,
            "contains control characters",
        ),
        (
            "'..' under another delimiter",
            b"* LIST () \".\" \"..\"\r\n".to_vec(),
            1,
            "'..' component",
        ),
        (
            "'/' under another delimiter",
            b"* LIST () \".\" \"a/../b\"\r\n".to_vec(),
            1,
            "'..' component",
        ),
    ];
    let mut tried = 0;
    for (what, entry, code, error) in hostile {
        let mut entries = vec![b"* LIST () \"/\" INBOX\r\n".to_vec()];
        entries.push(entry);
        let port = listing_server(entries);
        let setup = Setup::new();
        setup.write(
            &format!(
                "Host 127.0.0.1\nPort {port}\nTLSType None\nAuthMechs LOGIN\nUser u\nPass p\n"
            ),
            "Patterns *\n",
        );
        let run = setup.run(&[], &[]);
        assert_eq!(run.code, code, "{what}: {run}");
        assert!(run.output.contains(error), "{what}: want {error:?}:\n{run}");
        // Nothing outside the near root; inside, no folder but INBOX.
        let top = tree(setup.dir.path());
        assert!(
            top.iter()
                .all(|p| p == "cfg" || p.starts_with("near") || p.starts_with("state")),
            "{what}: {top:?}"
        );
        let near = tree(&setup.dir.path().join("near"));
        assert!(
            near.iter().all(|p| p.starts_with("INBOX")),
            "{what}: made {near:?}"
        );
        tried += 1;
    }
    println!(
        "RELIABILITY category=hostile_mailbox_names tried={tried} compared=0 lost=0 duplicated=0"
    );
}

// ---- Secrets in the output -----------------------------------------------------------------

#[test]
fn the_password_never_reaches_the_output() {
    let server = dovecot_with_marked_password();
    server.append("INBOX", &message("m1"), "\\Seen");
    let everything = [("RUST_LOG", "trace"), ("RUST_BACKTRACE", "1")];
    // Every debug category (`D` and `N` include message data and protocol payloads).
    let debug = ["-DdDmMnNs"];
    let account = |mechs: &str, pass: &str| {
        format!(
            "Host localhost\nPort {}\nTLSType STARTTLS\nUser {USER}\nPass \"{pass}\"\nSystemCertificates no\nCertificateFile {}\n{mechs}",
            server.port,
            server.ca_file.display()
        )
    };
    for mechs in [
        "AuthMechs LOGIN\n",
        "AuthMechs PLAIN\n",
        "AuthMechs CRAM-MD5\n",
        "AuthMechs SCRAM-SHA-256\n",
        "",
    ] {
        let setup = Setup::new();
        setup.write(&account(mechs, MARKED_PASS), "");
        let run = setup.run(&debug, &everything);
        assert_eq!(run.code, 0, "{mechs}: {run}");
        assert!(
            run.output.contains(">>> "),
            "{mechs}: no protocol trace:\n{run}"
        );
        assert_no_password(&run.output, USER, MARKED_PASS, mechs);
        // Nor in the files the run leaves (state, journal).
        for file in tree(&setup.dir.path().join("state")) {
            let text = std::fs::read(setup.dir.path().join("state").join(&file))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            assert_no_password(&text, USER, MARKED_PASS, &file);
        }
    }
    // A wrong password is not echoed either (the server's answer is shown, the secret not).
    let wrong = "Wrong-Zq7-typed-pass";
    for mechs in ["AuthMechs LOGIN\n", "AuthMechs PLAIN\n"] {
        let setup = Setup::new();
        setup.write(&account(mechs, wrong), "");
        let run = setup.run(&debug, &everything);
        assert_eq!(run.code, 1, "{mechs}: {run}");
        assert!(run.output.contains("returned an error"), "{mechs}: {run}");
        assert_no_password(&run.output, USER, wrong, mechs);
    }
    // PassCmd: neither the command's output nor an error about it shows the secret.
    let setup = Setup::new();
    let lines =
        account("", "").replace("Pass \"\"\n", &format!("PassCmd \"echo {MARKED_PASS}\"\n"));
    setup.write(&lines, "");
    let run = setup.run(&debug, &everything);
    assert_eq!(run.code, 0, "PassCmd: {run}");
    assert_no_password(&run.output, USER, MARKED_PASS, "PassCmd");
}

// ---- The operator's objects ------------------------------------------------------------------

#[test]
fn the_operator_puts_no_password_in_config_maps_or_environment() {
    use mailsync::operator::channel::ChannelSide;
    use mailsync::operator::common::{SecretKeyRef, StoreRef, VolumeRef};
    use mailsync::operator::job::{JobTemplate, RunKind, config_map, sync_job};
    use mailsync::operator::render::render;
    use mailsync::operator::store::{
        CaSource, ClientCertificate, ImapAuth, ImapStore, ImapTls, MaildirStore, TlsMode,
    };
    use mailsync::operator::{MailChannel, MailChannelSpec, MailStore, MailStoreSpec};

    let secret = |name: &str, key: &str| SecretKeyRef {
        name: name.into(),
        key: key.into(),
    };
    let far = MailStore::new(
        "server",
        MailStoreSpec {
            imap: Some(ImapStore {
                host: Some("imap.example.org".into()),
                auth: Some(ImapAuth {
                    username_secret_ref: Some(secret("mail-user", "user")),
                    password_secret_ref: Some(secret("mail-pass", "password")),
                    ..ImapAuth::default()
                }),
                tls: Some(ImapTls {
                    mode: TlsMode::Implicit,
                    ca: Some(CaSource {
                        secret_key_ref: Some(secret("mail-ca", "ca.pem")),
                        ..CaSource::default()
                    }),
                    client_certificate: Some(ClientCertificate {
                        certificate_secret_ref: secret("mail-client", "tls.crt"),
                        private_key_secret_ref: secret("mail-client", "tls.key"),
                    }),
                    ..ImapTls::default()
                }),
                ..ImapStore::default()
            }),
            ..MailStoreSpec::default()
        },
    );
    let near = MailStore::new(
        "local",
        MailStoreSpec {
            maildir: Some(MaildirStore {
                volume: VolumeRef {
                    claim_name: "mail-pvc".into(),
                    sub_path: None,
                },
                ..MaildirStore::default()
            }),
            ..MailStoreSpec::default()
        },
    );
    let mut channel = MailChannel::new(
        "inbox",
        MailChannelSpec {
            far: ChannelSide {
                store_ref: StoreRef {
                    name: "server".into(),
                },
                mailbox: None,
            },
            near: ChannelSide {
                store_ref: StoreRef {
                    name: "local".into(),
                },
                mailbox: None,
            },
            ..MailChannelSpec::default()
        },
    );
    channel.metadata.namespace = Some("mail".into());
    let rendered = render(&channel, &far, &near).expect("renders");
    // The config names files only: no Pass, PassCmd or user in it.
    for line in rendered.config.lines() {
        let keyword = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            !["pass", "passcmd", "user", "usercmd"].contains(&keyword.as_str()),
            "a credential line in the rendered config: {line:?}\n{}",
            rendered.config
        );
    }
    assert!(
        rendered
            .config
            .contains("PassFile \"../secrets/mail-pass/password\""),
        "{}",
        rendered.config
    );
    let map = config_map(&channel, &rendered);
    let map_json = serde_json::to_string(&map).expect("ConfigMap as JSON");
    for key in ["PassFile", "UserFile"] {
        assert!(map_json.contains(key), "{key} missing: {map_json}");
    }
    assert!(
        map.binary_data.is_none(),
        "the ConfigMap carries binary data: {map_json}"
    );
    let mut template = JobTemplate::new("mailsync:test");
    template.env = vec![("RUST_LOG".into(), "debug".into())];
    let trace_env = vec![(
        "TRACEPARENT".to_string(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
    )];
    for run in [
        RunKind::Schedule(1_700_000_000),
        RunKind::Manual("now".into()),
        RunKind::Spec(3),
    ] {
        let job = sync_job(&channel, &rendered, &run, &template, &trace_env);
        let pod = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec");
        for container in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            for var in container.env.iter().flatten() {
                let from_secret = var
                    .value_from
                    .as_ref()
                    .is_some_and(|v| v.secret_key_ref.is_some());
                assert!(!from_secret, "env {} reads a Secret", var.name);
                let value = var.value.as_deref().unwrap_or("");
                assert!(
                    !value.contains("mail-pass") && !value.to_lowercase().contains("password"),
                    "env {} = {value:?}",
                    var.name
                );
            }
            for from in container.env_from.iter().flatten() {
                assert!(
                    from.secret_ref.is_none(),
                    "envFrom a Secret in {:?}",
                    container.name
                );
            }
            for mount in container.volume_mounts.iter().flatten() {
                if mount.mount_path.contains("/secrets/") {
                    assert_eq!(mount.read_only, Some(true), "{} writable", mount.mount_path);
                }
            }
            // The command line names no secret value either.
            let args: Vec<&String> = container
                .command
                .iter()
                .flatten()
                .chain(container.args.iter().flatten())
                .collect();
            assert!(
                args.iter().all(|a| !a.to_lowercase().contains("pass")),
                "{args:?}"
            );
        }
        // The Secrets are mounted as files, readable by owner and group only.
        let secret_volumes: Vec<_> = pod
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.secret.as_ref())
            .collect();
        let mut names: Vec<String> = secret_volumes
            .iter()
            .filter_map(|s| s.secret_name.clone())
            .collect();
        names.sort();
        assert_eq!(names, ["mail-ca", "mail-client", "mail-pass", "mail-user"]);
        for volume in secret_volumes {
            let mode = volume.default_mode.unwrap_or(0o644);
            assert_eq!(
                mode & 0o007,
                0,
                "Secret volume readable by others: {mode:o}"
            );
        }
    }
    // A line break in a field cannot smuggle a Pass line into the config.
    let mut evil = far.clone();
    if let Some(imap) = evil.spec.imap.as_mut() {
        imap.host = Some("imap.example.org\nPass \"leaked\"".into());
    }
    let refused = render(&channel, &evil, &near);
    assert!(refused.is_err(), "rendered: {refused:?}");
}
