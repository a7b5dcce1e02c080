//! IMAP connection set-up against a real Dovecot: TLS modes and certificate rules, tunnels,
//! authentication mechanisms, credentials and their errors, and `get_cert`.

mod dovecot;

use dovecot::{Dovecot, account, open_store, store_config};
use mailsync::config::{CredentialCommand, TlsType};
use mailsync::store::{FailureScope, ListAreas, Store};

fn lists_inbox(account: &mailsync::config::ImapAccountConfig) -> Result<Vec<String>, String> {
    let (mut store, _) = open_store(account, &store_config(None));
    store.list(ListAreas::ALL).map_err(|e| e.message)
}

#[test]
fn tls_modes_and_certificate_rules() {
    let server = Dovecot::start();
    for tls in [TlsType::StartTls, TlsType::Imaps] {
        let names = lists_inbox(&account(&server, tls)).expect("login");
        assert!(names.contains(&"INBOX".to_string()), "{names:?}");
    }
    // Pinned: the server certificate itself (non-CA) in CertificateFile; host name ignored.
    let mut pinned = account(&server, TlsType::Imaps);
    pinned.certificate_file = Some(server.server_cert_file.clone());
    pinned.host = Some("127.0.0.1".into());
    assert!(lists_inbox(&pinned).is_ok());
    // Untrusted: an unrelated CA.
    let mut untrusted = account(&server, TlsType::Imaps);
    untrusted.certificate_file = Some(dovecot::make_unrelated_ca(server.dir.path()));
    let error = lists_inbox(&untrusted).unwrap_err();
    assert!(error.contains("SSL error connecting localhost"), "{error}");
    assert!(error.contains("CN=localhost"), "{error}");
    // Trusted CA but a host name the certificate does not name (tunnel to reach it).
    let mut wrong_name = account(&server, TlsType::Imaps);
    wrong_name.host = Some("mail.example.test".into());
    wrong_name.tunnel = Some(dovecot::tcp_tunnel(server.imaps_port));
    let error = lists_inbox(&wrong_name).unwrap_err();
    assert!(
        error.contains("does not match hostname mail.example.test"),
        "{error}"
    );
    // The same tunnel with a host the certificate names is fine.
    wrong_name.host = Some("localhost".into());
    assert!(lists_inbox(&wrong_name).is_ok());
    // A tunnel without Host: only a pinned certificate can be accepted.
    let mut hostless = account(&server, TlsType::Imaps);
    hostless.host = None;
    hostless.tunnel = Some(dovecot::tcp_tunnel(server.imaps_port));
    let error = lists_inbox(&hostless).unwrap_err();
    assert!(
        error.contains("Neither host nor matching certificate specified"),
        "{error}"
    );
    hostless.certificate_file = Some(server.server_cert_file.clone());
    assert_eq!(lists_inbox(&hostless).err(), None);
    // IP literal host matches the IP SAN.
    let mut by_ip = account(&server, TlsType::StartTls);
    by_ip.host = Some("127.0.0.1".into());
    assert!(lists_inbox(&by_ip).is_ok());
}

#[test]
fn mechanisms_and_credentials() {
    let server = Dovecot::start();
    for mechs in [
        &["PLAIN"][..],
        &["LOGIN"],
        &["CRAM-MD5"],
        &["SCRAM-SHA-256"],
        &[],
    ] {
        let mut a = account(&server, TlsType::StartTls);
        a.auth_mechs = mechs.iter().map(|m| m.to_string()).collect();
        assert!(lists_inbox(&a).is_ok(), "{mechs:?}: {:?}", lists_inbox(&a));
    }
    // `*` prefers SCRAM-SHA-256.
    let (mut store, collect) =
        open_store(&account(&server, TlsType::StartTls), &store_config(None));
    assert!(store.list(ListAreas::ALL).is_ok());
    assert!(
        collect
            .lines()
            .iter()
            .any(|l| l == "Authenticating with SASL mechanism SCRAM-SHA-256..."),
        "{:?}",
        collect.lines()
    );
    // Without TLS, `*` does not use LOGIN but SASL mechanisms are fine.
    let plain = account(&server, TlsType::None);
    assert!(lists_inbox(&plain).is_ok());
    // PLAIN chosen explicitly on a clear connection works, with a warning.
    let mut clear_plain = account(&server, TlsType::None);
    clear_plain.auth_mechs = vec!["PLAIN".into()];
    let (mut store, collect) = open_store(&clear_plain, &store_config(None));
    assert!(store.list(ListAreas::ALL).is_ok());
    let lines = collect.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Password is being sent in the clear")),
        "{lines:?}"
    );
    let mut only_login = account(&server, TlsType::None);
    only_login.auth_mechs = vec!["LOGIN".into()];
    let (mut store, collect) = open_store(&only_login, &store_config(None));
    assert!(store.list(ListAreas::ALL).is_ok());
    assert!(
        collect
            .lines()
            .iter()
            .any(|l| l.contains("Password is being sent in the clear"))
    );
    // Wrong password: a permanent, clear error.
    let mut wrong = account(&server, TlsType::StartTls);
    wrong.pass = Some("nope".into());
    let (mut store, _) = open_store(&wrong, &store_config(None));
    let error = store.list(ListAreas::ALL).unwrap_err();
    assert_eq!(error.scope, FailureScope::Store);
    assert!(
        error.message.contains("returned an error"),
        "{}",
        error.message
    );
    assert!(error.message.contains("tester"), "{}", error.message);
    // PassCmd and PassFile, UserCmd.
    let mut by_cmd = account(&server, TlsType::StartTls);
    by_cmd.pass = None;
    by_cmd.pass_cmd = Some(CredentialCommand {
        command: format!("echo '{}'; echo ignored", dovecot::PASS),
        plus: false,
    });
    by_cmd.user = None;
    by_cmd.user_cmd = Some(CredentialCommand {
        command: "printf tester".into(),
        plus: false,
    });
    assert!(lists_inbox(&by_cmd).is_ok());
    let file = server.dir.path().join("passfile");
    std::fs::write(&file, format!("{}\nsecond line\n", dovecot::PASS)).unwrap();
    let mut by_file = account(&server, TlsType::StartTls);
    by_file.pass = None;
    by_file.pass_file = Some(file);
    assert!(lists_inbox(&by_file).is_ok());
    let mut failing = account(&server, TlsType::StartTls);
    failing.pass = None;
    failing.pass_cmd = Some(CredentialCommand {
        command: "exit 3".into(),
        plus: false,
    });
    assert!(
        lists_inbox(&failing)
            .unwrap_err()
            .contains("PassCmd exited with status 3")
    );
    let mut keychain = account(&server, TlsType::StartTls);
    keychain.use_keychain = true;
    let result = mailsync::store::imap::ImapStore::new(
        &store_config(None),
        &keychain,
        Default::default(),
        std::rc::Rc::new(mailsync::store::SilentReporter),
    );
    assert!(
        result
            .err()
            .is_some_and(|e| e.message.contains("UseKeychain"))
    );
}

#[test]
fn unknown_host_and_closed_port_fail_clearly() {
    let server = Dovecot::start();
    let mut unknown = account(&server, TlsType::None);
    unknown.host = Some("no-such-host.invalid".into());
    let error = lists_inbox(&unknown).unwrap_err();
    assert!(
        error.contains("Cannot resolve server 'no-such-host.invalid'"),
        "{error}"
    );
    let mut closed = account(&server, TlsType::None);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    closed.port = Some(port);
    closed.host = Some("127.0.0.1".into());
    let error = lists_inbox(&closed).unwrap_err();
    assert!(
        error.contains(&format!("Cannot connect to 127.0.0.1 (127.0.0.1:{port})")),
        "{error}"
    );
}

#[test]
fn tunnel_with_preauth() {
    let server = Dovecot::start();
    let mut tunnel = account(&server, TlsType::None);
    tunnel.host = None;
    tunnel.tunnel = Some(server.preauth_tunnel());
    tunnel.user = None;
    tunnel.pass = None;
    let names = lists_inbox(&tunnel).expect("preauth tunnel");
    assert!(names.contains(&"INBOX".to_string()));
    // STARTTLS cannot follow PREAUTH.
    tunnel.tls_type = TlsType::StartTls;
    let error = lists_inbox(&tunnel).unwrap_err();
    assert!(error.contains("SSL support not available"), "{error}");
    // A plain TCP tunnel: LOGIN is allowed without TLS and no clear-text warning is given.
    let mut tcp = account(&server, TlsType::None);
    tcp.tunnel = Some(dovecot::tcp_tunnel(server.port));
    tcp.auth_mechs = vec!["LOGIN".into()];
    let (mut store, collect) = open_store(&tcp, &store_config(None));
    assert!(store.list(ListAreas::ALL).is_ok());
    assert!(!collect.lines().iter().any(|l| l.contains("in the clear")));
}

#[test]
fn get_cert_returns_the_chain() {
    let server = Dovecot::start();
    let expected = std::fs::read_to_string(&server.server_cert_file).unwrap();
    for (port, starttls) in [(server.imaps_port, false), (server.port, true)] {
        let pem = mailsync::store::imap::get_cert("127.0.0.1", port, starttls).expect("get_cert");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let body = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>()
        };
        assert!(body(&pem).starts_with(&body(&expected)), "{pem}");
    }
}

#[test]
fn tls_settings() {
    let server = Dovecot::start();
    // CipherString is accepted with a warning.
    let mut ciphers = account(&server, TlsType::Imaps);
    ciphers.cipher_string = Some("HIGH:!aNULL".into());
    let (mut store, collect) = open_store(&ciphers, &store_config(None));
    assert!(store.list(ListAreas::ALL).is_ok());
    let lines = collect.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("CipherString has no effect")),
        "{lines:?}"
    );
    // Only TLS 1.3, only TLS 1.2: both work with Dovecot; only 1.0/1.1 cannot work.
    for (v12, v13) in [(false, true), (true, false)] {
        let mut versions = account(&server, TlsType::Imaps);
        versions.tls_versions.v1_2 = v12;
        versions.tls_versions.v1_3 = v13;
        assert!(lists_inbox(&versions).is_ok(), "1.2 {v12} 1.3 {v13}");
    }
    let mut old = account(&server, TlsType::Imaps);
    old.tls_versions = mailsync::config::TlsVersions {
        v1_0: true,
        v1_1: true,
        v1_2: false,
        v1_3: false,
    };
    assert!(
        lists_inbox(&old)
            .unwrap_err()
            .contains("no usable TLS version")
    );
    // SystemCertificates alone does not trust the test CA.
    let mut system = account(&server, TlsType::Imaps);
    system.certificate_file = None;
    system.system_certificates = true;
    let error = lists_inbox(&system).unwrap_err();
    assert!(error.contains("is not trusted"), "{error}");
    // A client certificate is loaded and offered; one without its key is an error.
    let (cert, key) = server.make_client_certificate();
    let mut client = account(&server, TlsType::StartTls);
    client.client_certificate = Some(cert.clone());
    client.client_key = Some(key);
    assert_eq!(lists_inbox(&client).err(), None);
    client.client_key = None;
    assert!(
        lists_inbox(&client)
            .unwrap_err()
            .contains("ClientCertificate and ClientKey")
    );
    // A server that requires client certificates: refused without, accepted with.
    let strict = Dovecot::start_with(dovecot::Options {
        require_client_cert: true,
        ..dovecot::Options::default()
    });
    let (cert, key) = strict.make_client_certificate();
    let mut with_cert = account(&strict, TlsType::Imaps);
    assert!(lists_inbox(&with_cert).is_err());
    with_cert.client_certificate = Some(cert);
    with_cert.client_key = Some(key);
    assert_eq!(lists_inbox(&with_cert).err(), None);
    // An unreadable CertificateFile is a clear error.
    let mut missing = account(&server, TlsType::Imaps);
    missing.certificate_file = Some(server.dir.path().join("nope.pem"));
    assert!(lists_inbox(&missing).unwrap_err().contains("nope.pem"));
}
