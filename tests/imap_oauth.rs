//! XOAUTH2 and OAUTHBEARER at the protocol level against a canned server (Dovecot cannot
//! check tokens offline): the exact SASL strings sent, SASL-IR, and the error exchange.

mod dovecot;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mailsync::config::TlsType;
use mailsync::store::{ListAreas, Store};
use std::io::{BufRead, BufReader, Write};

/// Serves one connection: greeting with `capabilities`, then checks the AUTHENTICATE data
/// with `valid` and answers LIST with INBOX. Returns what the client sent as SASL data.
fn oauth_server(
    capabilities: &'static str,
    valid: fn(&[u8]) -> bool,
) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let Ok((stream, _)) = listener.accept() else {
            return seen;
        };
        let mut out = stream.try_clone().unwrap();
        let _ = out.write_all(format!("* OK [CAPABILITY {capabilities}] ready\r\n").as_bytes());
        let mut lines = BufReader::new(stream).lines();
        while let Some(Ok(line)) = lines.next() {
            let words: Vec<&str> = line.split(' ').collect();
            let tag = words[0];
            let reply = match words.get(1).map(|w| w.to_ascii_uppercase()).as_deref() {
                Some("AUTHENTICATE") => {
                    let data = match words.get(3) {
                        Some(ir) => B64.decode(ir).unwrap_or_default(),
                        None => {
                            // No SASL-IR: ask for the initial response.
                            let _ = out.write_all(b"+ \r\n");
                            let Some(Ok(answer)) = lines.next() else {
                                break;
                            };
                            B64.decode(answer.trim()).unwrap_or_default()
                        }
                    };
                    seen.push(data.clone());
                    if valid(&data) {
                        format!("{tag} OK [CAPABILITY IMAP4rev1] Logged in\r\n")
                    } else {
                        // The error report of RFC 7628; the client must answer with an empty line.
                        let _ = out.write_all(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");
                        let Some(Ok(answer)) = lines.next() else {
                            break;
                        };
                        seen.push(answer.into_bytes());
                        format!("{tag} NO [AUTHENTICATIONFAILED] invalid token\r\n")
                    }
                }
                Some("LIST") => format!("* LIST () \"/\" INBOX\r\n{tag} OK done\r\n"),
                Some("LOGOUT") => format!("* BYE bye\r\n{tag} OK done\r\n"),
                _ => format!("{tag} OK done\r\n"),
            };
            if out.write_all(reply.as_bytes()).is_err() || reply.starts_with("* BYE") {
                break;
            }
        }
        seen
    });
    (port, serve)
}

fn oauth_account(port: u16, mechanism: &str, token: &str) -> mailsync::config::ImapAccountConfig {
    mailsync::config::ImapAccountConfig {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        tls_type: TlsType::None,
        user: Some("someuser@example.com".into()),
        pass: Some(token.into()),
        auth_mechs: vec![mechanism.into()],
        ..dovecot::account_template()
    }
}

fn list(account: &mailsync::config::ImapAccountConfig) -> Result<Vec<String>, String> {
    let (mut store, _) = dovecot::open_store(account, &dovecot::store_config(None));
    store.list(ListAreas::ALL).map_err(|e| e.message)
}

const TOKEN: &str = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";

#[test]
fn xoauth2_sends_the_documented_string() {
    fn valid(data: &[u8]) -> bool {
        data == b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    }
    for capabilities in ["IMAP4rev1 SASL-IR AUTH=XOAUTH2", "IMAP4rev1 AUTH=XOAUTH2"] {
        let (port, serve) = oauth_server(capabilities, valid);
        assert_eq!(
            list(&oauth_account(port, "XOAUTH2", TOKEN)).unwrap(),
            vec!["INBOX"]
        );
        let seen = serve.join().unwrap();
        assert_eq!(seen.len(), 1, "{capabilities}");
    }
    // A refused token: the client answers the error report with an empty line and fails.
    let (port, serve) = oauth_server("IMAP4rev1 SASL-IR AUTH=XOAUTH2", valid);
    let error = list(&oauth_account(port, "XOAUTH2", "expired")).unwrap_err();
    assert!(
        error.contains("IMAP command 'AUTHENTICATE XOAUTH2' returned an error: invalid token"),
        "{error}"
    );
    let seen = serve.join().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1], b"".to_vec());
}

#[test]
fn oauthbearer_sends_the_rfc7628_string() {
    fn valid(data: &[u8]) -> bool {
        let text = String::from_utf8_lossy(data);
        text.starts_with("n,a=someuser@example.com,\x01host=127.0.0.1\x01port=")
            && text.ends_with(&format!("\x01auth=Bearer {TOKEN}\x01\x01"))
    }
    let (port, serve) = oauth_server("IMAP4rev1 SASL-IR AUTH=OAUTHBEARER AUTH=PLAIN", valid);
    assert_eq!(
        list(&oauth_account(port, "OAUTHBEARER", TOKEN)).unwrap(),
        vec!["INBOX"]
    );
    let seen = serve.join().unwrap();
    assert!(String::from_utf8_lossy(&seen[0]).contains(&format!("port={port}\x01")));
    // `*` never picks a token mechanism by itself, and on this unencrypted connection not
    // PLAIN either: nothing secret is sent.
    fn plain(data: &[u8]) -> bool {
        data == format!("\0someuser@example.com\0{TOKEN}").as_bytes()
    }
    let (port, serve) = oauth_server("IMAP4rev1 SASL-IR AUTH=OAUTHBEARER AUTH=PLAIN", plain);
    let mut any = oauth_account(port, "*", TOKEN);
    any.auth_mechs = Vec::new();
    let error = list(&any).unwrap_err();
    assert!(
        error.contains("not using PLAIN because connection is not encrypted"),
        "{error}"
    );
    assert!(serve.join().unwrap().is_empty());
}
