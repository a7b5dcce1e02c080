//! The IMAP store's `Store` methods against a real Dovecot, the same scenario on weaker
//! server variants, mailbox names, and failures (dropped connection, hostile names).

mod dovecot;

use dovecot::{Dovecot, Relay, RelayMode, USER, account, open_store, store_config};
use mailsync::config::TlsType;
use mailsync::store::imap::{ImapOptions, ImapStore};
use mailsync::store::{Flags, ListAreas, LoadRequest, MessageData, NewMessage, OpenOutcome, Store};
use std::time::{Duration, UNIX_EPOCH};

const MESSAGE_A: &str =
    "From: a@example.org\nSubject: first\nMessage-ID: <first@example.org>\n\nbody one\n";
const MESSAGE_B: &str = "From: b@example.org\nSubject: second\nX-TUID: AbCdEfGhIjKl\n\nbody two\n";
const MESSAGE_C: &str = "From: c@example.org\nSubject: third\n\nbody three\n";

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

fn load_all() -> LoadRequest {
    LoadRequest {
        range: Some((1, u32::MAX)),
        flags: true,
        sizes_from: Some(1),
        tuids_from: Some(2),
        message_ids_upto: Some(1),
        ..LoadRequest::default()
    }
}

fn opened(store: &mut ImapStore, name: &str) -> u32 {
    match store.open_box(name).expect("open") {
        OpenOutcome::Opened { uid_validity } => uid_validity,
        OpenOutcome::Missing => panic!("{name} is missing"),
    }
}

#[test]
fn store_methods() {
    let server = Dovecot::start();
    server.append("INBOX", MESSAGE_A, "\\Seen");
    server.append("INBOX", MESSAGE_B, "\\Flagged \\Answered");
    server.append("INBOX", MESSAGE_C, "");
    let (mut store, _) = open_store(
        &account(&server, TlsType::StartTls),
        &store_config(Some("Trash")),
    );
    assert!(store.crlf());
    assert!(store.selective_expunge());
    opened(&mut store, "INBOX");
    assert!(!store.is_empty().unwrap());
    let loaded = store.load(&load_all()).unwrap();
    assert_eq!(loaded.total, 3);
    let uids: Vec<u32> = loaded.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![1, 2, 3]);
    assert_eq!(loaded.messages[0].flags, Flags::SEEN);
    assert_eq!(loaded.messages[1].flags, Flags::FLAGGED | Flags::REPLIED);
    assert_eq!(loaded.messages[0].size, crlf(MESSAGE_A).len() as u64);
    assert_eq!(
        loaded.messages[0].message_id.as_deref(),
        Some(&b"<first@example.org>"[..])
    );
    assert_eq!(
        loaded.messages[1].message_id, None,
        "not requested above UID 1"
    );
    assert_eq!(loaded.messages[1].tuid, Some(*b"AbCdEfGhIjKl"));
    assert_eq!(loaded.messages[0].tuid, None, "not requested below UID 2");
    // Without FLAGS requested, flags read as empty.
    let bare = store
        .load(&LoadRequest {
            range: Some((2, 3)),
            ..LoadRequest::default()
        })
        .unwrap();
    assert_eq!(bare.messages.len(), 2);
    assert!(
        bare.messages
            .iter()
            .all(|m| m.flags.is_empty() && m.size == 0)
    );
    // Exceptions outside the range.
    let some = store
        .load(&LoadRequest {
            range: Some((3, 3)),
            exceptions: vec![1],
            flags: true,
            ..LoadRequest::default()
        })
        .unwrap();
    assert_eq!(
        some.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 3]
    );

    let fetched = store.fetch(1).unwrap().expect("message 1");
    assert_eq!(fetched.body.to_vec().unwrap(), crlf(MESSAGE_A));
    assert_eq!(fetched.flags, Flags::SEEN);
    assert!(fetched.date.is_some());
    assert!(store.fetch(99).unwrap().is_none());

    // Flags: batched until the next command.
    assert!(
        store
            .set_flags(1, Flags::FLAGGED | Flags::PASSED, Flags::SEEN)
            .unwrap()
    );
    assert!(
        store
            .set_flags(3, Flags::FLAGGED | Flags::PASSED, Flags::SEEN)
            .unwrap()
    );
    assert!(store.set_flags(2, Flags::DRAFT, Flags::EMPTY).unwrap());
    let after = store.load(&load_all()).unwrap();
    assert_eq!(after.messages[0].flags, Flags::FLAGGED | Flags::PASSED);
    assert_eq!(
        after.messages[1].flags,
        Flags::DRAFT | Flags::FLAGGED | Flags::REPLIED
    );
    assert_eq!(after.messages[2].flags, Flags::FLAGGED | Flags::PASSED);
    assert_eq!(
        server.flags("INBOX")[0],
        (1, "\\Flagged $Forwarded".to_string())
    );

    // Append with flags and date.
    let date = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let data = crlf("Subject: new\n\nnew body\n");
    let uid = store
        .store(NewMessage {
            data: MessageData::Bytes(&data),
            flags: Flags::SEEN | Flags::DRAFT,
            date: Some(date),
        })
        .unwrap();
    assert_eq!(uid, Some(4));
    assert_eq!(store.uid_next_hint().unwrap(), 5);
    let copy = store.fetch(4).unwrap().expect("appended");
    assert_eq!(copy.body.to_vec().unwrap(), data);
    assert_eq!(copy.flags, Flags::SEEN | Flags::DRAFT);
    assert_eq!(copy.date, Some(date));

    // Trash (the Trash folder is created on demand), then expunge.
    assert!(store.trash(2).unwrap());
    assert!(server.mailboxes().contains(&"Trash".to_string()));
    assert_eq!(server.uids("Trash"), vec![1]);
    store.set_flags(3, Flags::TRASHED, Flags::EMPTY).unwrap();
    let removed = store.expunge(&[3]).unwrap();
    assert!(removed.contains(&3), "{removed:?}");
    assert_eq!(server.uids("INBOX"), vec![1, 4]);
    store
        .store_to_trash(NewMessage {
            data: MessageData::Bytes(&data),
            flags: Flags::SEEN,
            date: None,
        })
        .unwrap();
    assert_eq!(server.uids("Trash").len(), 2);
    store.close_box();

    // Missing box, create, delete.
    assert_eq!(store.open_box("New/Box").unwrap(), OpenOutcome::Missing);
    let uv = store.create_box().unwrap();
    assert!(uv > 0);
    assert!(store.is_empty().unwrap());
    assert!(server.mailboxes().contains(&"New/Box".to_string()));
    store.delete_box().unwrap();
    assert!(!server.mailboxes().contains(&"New/Box".to_string()));
}

#[test]
fn find_new_reads_tuids_when_uids_are_withheld() {
    let server = Dovecot::start();
    server.append("INBOX", MESSAGE_A, "");
    let collect = dovecot::Collect::default();
    let options = ImapOptions {
        withhold_uids: true,
        ..ImapOptions::default()
    };
    let mut store = ImapStore::new(
        &store_config(None),
        &account(&server, TlsType::StartTls),
        options,
        std::rc::Rc::new(collect.clone()),
    )
    .unwrap();
    opened(&mut store, "INBOX");
    store.load(&load_all()).unwrap();
    let hint = store.uid_next_hint().unwrap();
    let data = crlf("Subject: copy\nX-TUID: QQQQQQQQQQQQ\n\nx\n");
    assert_eq!(
        store
            .store(NewMessage {
                data: MessageData::Bytes(&data),
                flags: Flags::SEEN,
                date: None
            })
            .unwrap(),
        None
    );
    let found = store.find_new(hint).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].uid, 2);
    assert_eq!(found[0].tuid, Some(*b"QQQQQQQQQQQQ"));
    assert_eq!(found[0].flags, Flags::SEEN);
    assert_eq!(store.find_new(hint + 5).unwrap(), vec![]);
}

#[test]
fn listing_round_trips_names() {
    let server = Dovecot::start();
    let names = [
        "with space",
        "Ünïcode & Co",
        "Top/Child",
        "Top/Other",
        "日本語/サブ",
        "x&y~z",
    ];
    for name in names {
        server.create_mailbox(name);
    }
    server.subscribe("Top/Child");
    let a = account(&server, TlsType::StartTls);
    let (mut store, _) = open_store(&a, &store_config(None));
    let listed = store.list(ListAreas::ALL).unwrap();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    // The implicit parents `Top` and `日本語` are \Noselect on Dovecot: not listed.
    expected.push("INBOX".to_string());
    expected.sort();
    assert_eq!(listed, expected);
    for name in &listed {
        opened(&mut store, name);
    }
    // A message stored under a non-ASCII name lands in that mailbox on the server.
    opened(&mut store, "Ünïcode & Co");
    let data = crlf("Subject: x\n\ny\n");
    store
        .store(NewMessage {
            data: MessageData::Bytes(&data),
            flags: Flags::EMPTY,
            date: None,
        })
        .unwrap();
    assert_eq!(server.uids("Ünïcode & Co"), vec![1]);
    // With a Path, names are relative to it (INBOX stays).
    let mut with_path = store_config(None);
    with_path.path = Some("Top/".into());
    let (mut store, _) = open_store(&a, &with_path);
    assert_eq!(
        store.list(ListAreas::ALL).unwrap(),
        vec!["Child", "INBOX", "Other"]
    );
    opened(&mut store, "Child");
    // SubscribedOnly lists with LSUB.
    let mut subscribed = store_config(None);
    subscribed.subscribed_only = true;
    let (mut store, _) = open_store(&a, &subscribed);
    assert_eq!(store.list(ListAreas::ALL).unwrap(), vec!["Top/Child"]);
    // A hierarchy delimiter inside a canonical name is refused.
    let (mut store, _) = open_store(&a, &store_config(None));
    let mut dotted = store_config(None);
    dotted.path_delimiter = Some('.');
    let (mut dotted_store, _) = open_store(&a, &dotted);
    let error = dotted_store.open_box("a.b").unwrap_err();
    assert!(
        error
            .message
            .contains("contains server's hierarchy delimiter"),
        "{}",
        error.message
    );
    assert!(
        store
            .open_box("Inbox")
            .unwrap_err()
            .message
            .contains("Did you mean INBOX")
    );
}

/// What a scenario leaves behind, for comparing server variants.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    listed: Vec<String>,
    loaded: Vec<(u32, Flags, u64)>,
    appended_found: Vec<Option<[u8; 12]>>,
    inbox_after: Vec<(u32, String)>,
    trash_after: usize,
}

fn scenario(
    server: &Dovecot,
    a: &mailsync::config::ImapAccountConfig,
    options: ImapOptions,
) -> Summary {
    server.append("INBOX", MESSAGE_A, "\\Seen");
    server.append("INBOX", MESSAGE_B, "");
    server.append("INBOX", MESSAGE_C, "\\Flagged");
    server.create_mailbox("Sub/Leaf");
    let mut store = ImapStore::new(
        &store_config(Some("Trash")),
        a,
        options,
        std::rc::Rc::new(mailsync::store::SilentReporter),
    )
    .unwrap();
    let listed = store.list(ListAreas::ALL).unwrap();
    opened(&mut store, "INBOX");
    let loaded = store.load(&load_all()).unwrap();
    let hint = store.uid_next_hint().unwrap();
    let mut appended = Vec::new();
    let big = format!(
        "Subject: big\nX-TUID: BBBBBBBBBBBB\n\n{}\n",
        "x".repeat(200_000)
    );
    for (i, text) in ["Subject: one\nX-TUID: AAAAAAAAAAAA\n\nx\n", big.as_str()]
        .iter()
        .enumerate()
    {
        let data = crlf(text);
        let uid = store
            .store(NewMessage {
                data: MessageData::Bytes(&data),
                flags: if i == 0 { Flags::SEEN } else { Flags::EMPTY },
                date: None,
            })
            .unwrap();
        appended.push(uid);
    }
    let found = if appended.iter().all(Option::is_some) {
        appended.iter().map(|_| None).collect()
    } else {
        store
            .find_new(hint)
            .unwrap()
            .into_iter()
            .map(|m| m.tuid)
            .collect()
    };
    store.set_flags(1, Flags::REPLIED, Flags::SEEN).unwrap();
    store.set_flags(2, Flags::TRASHED, Flags::EMPTY).unwrap();
    store.set_flags(3, Flags::TRASHED, Flags::EMPTY).unwrap();
    assert!(store.trash(3).unwrap());
    let removed = store.expunge(&[2, 3]).unwrap();
    assert!(removed.contains(&2) && removed.contains(&3), "{removed:?}");
    store.close_box();
    drop(store);
    Summary {
        listed,
        loaded: loaded
            .messages
            .iter()
            .map(|m| (m.uid, m.flags, m.size))
            .collect(),
        appended_found: found,
        inbox_after: server.flags("INBOX"),
        trash_after: server.uids("Trash").len(),
    }
}

#[test]
fn weaker_servers_give_identical_results() {
    let reference = {
        let server = Dovecot::start();
        scenario(
            &server,
            &account(&server, TlsType::StartTls),
            ImapOptions::default(),
        )
    };
    assert_eq!(
        reference
            .inbox_after
            .iter()
            .map(|(u, _)| *u)
            .collect::<Vec<_>>(),
        vec![1, 4, 5]
    );
    assert_eq!(reference.trash_after, 1);
    for cut in [
        &["LITERAL+"][..],
        &["NAMESPACE"],
        &["CONDSTORE", "QRESYNC"],
        &["MOVE"],
    ] {
        let server = Dovecot::start_with(dovecot::Options::without(cut));
        let result = scenario(
            &server,
            &account(&server, TlsType::StartTls),
            ImapOptions::default(),
        );
        assert_eq!(result, reference, "without {cut:?}");
    }
    // LITERAL- instead of LITERAL+ (non-synchronising literals only up to 4096 bytes).
    {
        let mut options = dovecot::Options::without(&["LITERAL+"]);
        options.add_capabilities = vec!["LITERAL-".into()];
        let server = Dovecot::start_with(options);
        let result = scenario(
            &server,
            &account(&server, TlsType::StartTls),
            ImapOptions::default(),
        );
        assert_eq!(result, reference, "with LITERAL-");
    }
    // No UIDPLUS: APPENDUID/COPYUID codes stripped by a relay, found again by X-TUID.
    {
        let server = Dovecot::start_with(dovecot::Options::without(&["UIDPLUS"]));
        let relay = Relay::start(server.port, RelayMode::StripUidPlus);
        let mut a = account(&server, TlsType::None);
        a.port = Some(relay.port);
        a.auth_mechs = vec!["PLAIN".into()];
        let mut result = scenario(&server, &a, ImapOptions::default());
        assert_eq!(
            result.appended_found,
            vec![Some(*b"AAAAAAAAAAAA"), Some(*b"BBBBBBBBBBBB")]
        );
        result.appended_found = reference.appended_found.clone();
        assert_eq!(result, reference, "without UIDPLUS");
    }
    // DisableExtension and PipelineDepth 1 on the client side.
    {
        let server = Dovecot::start();
        let mut a = account(&server, TlsType::Imaps);
        a.disable_extensions = vec!["LITERAL+".into(), "MOVE".into()];
        a.pipeline_depth = Some(1);
        let result = scenario(&server, &a, ImapOptions::default());
        assert_eq!(
            result, reference,
            "DisableExtension LITERAL+ MOVE, PipelineDepth 1"
        );
    }
}

#[test]
fn dropped_connection_mid_fetch_is_a_clear_error() {
    let server = Dovecot::start();
    let body = format!("Subject: big\n\n{}\n", "line of text\n".repeat(5000));
    server.append("INBOX", &body, "");
    let relay = Relay::start(server.port, RelayMode::CutInBody(1000));
    let mut a = account(&server, TlsType::None);
    a.port = Some(relay.port);
    a.auth_mechs = vec!["PLAIN".into()];
    let (mut store, _) = open_store(&a, &store_config(None));
    opened(&mut store, "INBOX");
    let error = store.fetch(1).unwrap_err();
    assert_eq!(error.scope, mailsync::store::FailureScope::Temporary);
    assert!(
        error
            .message
            .contains("unexpected EOF from localhost (127.0.0.1:"),
        "{}",
        error.message
    );
    // The store connects anew on the next call.
    opened(&mut store, "INBOX");
    assert_eq!(store.load(&load_all()).unwrap().messages.len(), 1);
    drop(relay);
}

/// A canned server listing a hostile mailbox name.
#[test]
fn hostile_listed_names_are_refused() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        out.write_all(b"* PREAUTH [CAPABILITY IMAP4rev1] ready\r\n")
            .unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split(' ');
            let tag = words.next().unwrap_or("*").to_string();
            let command = words.next().unwrap_or("").to_ascii_uppercase();
            if command == "LIST" {
                out.write_all(
                    b"* LIST () \"/\" \"good\"\r\n* LIST () \"/\" \"evil/../../etc\"\r\n",
                )
                .unwrap();
            }
            if out
                .write_all(format!("{tag} OK done\r\n").as_bytes())
                .is_err()
                || command == "LOGOUT"
            {
                break;
            }
        }
    });
    let server_stub = mailsync::config::ImapAccountConfig {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        tls_type: TlsType::None,
        ..dovecot::account_template()
    };
    let (mut store, _) = open_store(&server_stub, &store_config(None));
    let error = store.list(ListAreas::ALL).unwrap_err();
    assert!(
        error
            .message
            .contains("'evil/../../etc' contains '..' component"),
        "{}",
        error.message
    );
    drop(store);
    let _ = serve.join();
}

#[test]
fn trash_is_created_when_first_appended_to() {
    // The first APPEND into an unknown Trash uses a synchronising literal; Dovecot answers
    // NO [TRYCREATE] instead of a continuation, then the Trash is created and the APPEND
    // retried. With and without LITERAL+.
    for cut in [&[][..], &["LITERAL+"]] {
        let server = Dovecot::start_with(dovecot::Options::without(cut));
        let (mut store, _) = open_store(
            &account(&server, TlsType::StartTls),
            &store_config(Some("Trash/Bin")),
        );
        opened(&mut store, "INBOX");
        let data = crlf("Subject: gone\n\nbye\n");
        for _ in 0..2 {
            store
                .store_to_trash(NewMessage {
                    data: MessageData::Bytes(&data),
                    flags: Flags::SEEN,
                    date: None,
                })
                .unwrap();
        }
        // The connection is still in step: more commands work.
        let uid = store
            .store(NewMessage {
                data: MessageData::Bytes(&data),
                flags: Flags::EMPTY,
                date: None,
            })
            .unwrap();
        assert_eq!(uid, Some(1), "without {cut:?}");
        assert_eq!(
            server.flags("Trash/Bin"),
            vec![(1, "\\Seen".into()), (2, "\\Seen".into())]
        );
        assert_eq!(server.uids("INBOX"), vec![1]);
    }
}

/// Serves a canned IMAP conversation: a PREAUTH greeting, then `answer` for each command.
fn canned_server(
    capabilities: &'static str,
    answer: fn(&str, &str, &str) -> Option<String>,
) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut out = stream.try_clone().unwrap();
        let _ =
            out.write_all(format!("* PREAUTH [CAPABILITY {capabilities}] ready\r\n").as_bytes());
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split(' ');
            let tag = words.next().unwrap_or("*").to_string();
            let command = words.next().unwrap_or("").to_ascii_uppercase();
            match answer(&tag, &command, &line) {
                Some(reply) => {
                    // A BYE ends the conversation: the server closes after it.
                    if out.write_all(reply.as_bytes()).is_err() || reply.starts_with("* BYE") {
                        break;
                    }
                }
                None => break,
            }
        }
    });
    (port, serve)
}

fn canned_account(port: u16) -> mailsync::config::ImapAccountConfig {
    mailsync::config::ImapAccountConfig {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        tls_type: TlsType::None,
        timeout: 1,
        ..dovecot::account_template()
    }
}

#[test]
fn a_silent_server_times_out() {
    let (port, serve) = canned_server("IMAP4rev1", |tag, command, _| match command {
        "LIST" => Some(String::new()),
        _ => Some(format!("{tag} OK done\r\n")),
    });
    let (mut store, _) = open_store(&canned_account(port), &store_config(None));
    let error = store.list(ListAreas::ALL).unwrap_err();
    assert_eq!(
        error.message,
        format!("Socket error on 127.0.0.1 (127.0.0.1:{port}): timeout. (store remote)")
    );
    drop(store);
    let _ = serve.join();
}

#[test]
fn an_unexpected_bye_is_reported() {
    let (port, serve) = canned_server("IMAP4rev1", |tag, command, _| match command {
        "LIST" => Some("* BYE server shutting down\r\n".to_string()),
        "LOGOUT" => None,
        _ => Some(format!("{tag} OK done\r\n")),
    });
    let (mut store, _) = open_store(&canned_account(port), &store_config(None));
    let error = store.list(ListAreas::ALL).unwrap_err();
    assert_eq!(
        error.message,
        "IMAP error: unexpected BYE response: server shutting down (store remote)"
    );
    drop(store);
    let _ = serve.join();
}

#[test]
fn a_flag_update_during_the_listing_keeps_the_sizes() {
    // Another client sets a flag while the listing is sent: the server adds a FETCH with the
    // new flags and no RFC822.SIZE for a UID it has already listed.
    let (port, serve) = canned_server("IMAP4rev1", |tag, command, line| {
        let reply = match command {
            "SELECT" => "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 3] ok\r\n",
            "UID" if line.contains("RFC822.SIZE") => concat!(
                "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 100)\r\n",
                "* 2 FETCH (UID 2 FLAGS () RFC822.SIZE 200)\r\n",
                "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n",
            ),
            "LOGOUT" => return None,
            _ => "",
        };
        Some(format!("{reply}{tag} OK done\r\n"))
    });
    let (mut store, _) = open_store(&canned_account(port), &store_config(None));
    opened(&mut store, "INBOX");
    let loaded = store
        .load(&LoadRequest {
            range: Some((1, u32::MAX)),
            flags: true,
            sizes_from: Some(1),
            ..LoadRequest::default()
        })
        .unwrap();
    let listed: Vec<(u32, u64, Flags)> = loaded
        .messages
        .iter()
        .map(|m| (m.uid, m.size, m.flags))
        .collect();
    assert_eq!(
        listed,
        [(1, 100, Flags::SEEN), (2, 200, Flags::EMPTY)],
        "the later FETCH updates the flags and leaves the size"
    );
    drop(store);
    let _ = serve.join();
}

#[test]
fn utf8_accept_names_are_raw_utf8() {
    let (port, serve) = canned_server("IMAP4rev1 ENABLE UTF8=ACCEPT", |tag, command, line| {
        let reply = match command {
            "ENABLE" if line.ends_with("UTF8=ACCEPT") => "* ENABLED UTF8=ACCEPT\r\n".to_string(),
            "LIST" => {
                "* LIST () \"/\" \"Ünïcode & Co/Sub\"\r\n* LIST () \"/\" INBOX\r\n".to_string()
            }
            "SELECT" if line.ends_with(" \"Ünïcode & Co/Sub\"") => {
                "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n".to_string()
            }
            "SELECT" => return Some(format!("{tag} NO [NONEXISTENT] unknown: {line}\r\n")),
            "LOGOUT" => return None,
            _ => String::new(),
        };
        Some(format!("{reply}{tag} OK done\r\n"))
    });
    let (mut store, _) = open_store(&canned_account(port), &store_config(None));
    assert_eq!(
        store.list(ListAreas::ALL).unwrap(),
        vec!["INBOX", "Ünïcode & Co/Sub"]
    );
    assert_eq!(
        store.open_box("Ünïcode & Co/Sub").unwrap(),
        OpenOutcome::Opened { uid_validity: 7 }
    );
    drop(store);
    let _ = serve.join();
}

#[test]
fn pipeline_depth_limits_commands_in_flight() {
    let server = Dovecot::start();
    for _ in 0..6 {
        server.append("INBOX", MESSAGE_C, "");
    }
    for (depth, expect_pipelining) in [(None, true), (Some(1), false), (Some(2), true)] {
        // The depth bound must hold on every attempt; pipelining must be seen on one of
        // three (how many commands the relay sees at once also depends on thread scheduling).
        let mut most_in_flight = 0;
        for _ in 0..3 {
            let relay = Relay::start(server.port, RelayMode::Pass);
            let mut a = account(&server, TlsType::None);
            a.port = Some(relay.port);
            a.pipeline_depth = depth;
            let (mut store, _) = open_store(&a, &store_config(None));
            opened(&mut store, "INBOX");
            // Six messages queued for APPEND: six commands written without waiting for an
            // answer, within the depth bound.
            let data = MESSAGE_C.replace('\n', "\r\n").into_bytes();
            for _ in 0..6 {
                store
                    .store_queued(NewMessage {
                        data: MessageData::Bytes(&data),
                        flags: Flags::SEEN,
                        date: None,
                    })
                    .unwrap();
            }
            let outcomes = store.finish_stores().unwrap();
            assert_eq!(outcomes.len(), 6);
            for (_, outcome) in &outcomes {
                assert!(outcome.is_ok(), "{outcome:?}");
            }
            let max = relay.max_in_flight();
            if let Some(d) = depth {
                assert!(max <= d as usize, "depth {d}: {max} in flight");
            }
            most_in_flight = most_in_flight.max(max);
            store.close_box();
            if most_in_flight > 1 {
                break;
            }
        }
        assert_eq!(
            most_in_flight > 1,
            expect_pipelining,
            "depth {depth:?}: {most_in_flight} in flight"
        );
    }
}

#[test]
fn size_rounds_stay_within_pipeline_depth() {
    // Messages whose UIDs do not run on: the read-ahead asks their sizes in several UID sets,
    // one FETCH each. Under PipelineDepth 1 those go one at a time, like every command.
    let server = Dovecot::start();
    let messages: Vec<String> = (1..=1200)
        .map(|n| format!("From: s@example.org\nSubject: m{n}\n\nbody {n}\n"))
        .collect();
    server.import_into_inbox(&messages);
    let odd: Vec<String> = (1..=1200).step_by(2).map(|uid| uid.to_string()).collect();
    let odd = odd.join(",");
    server.doveadm(&["expunge", "-u", USER, "mailbox", "INBOX", "uid", &odd]);
    let relay = Relay::start(server.port, RelayMode::Pass);
    let mut a = account(&server, TlsType::None);
    a.port = Some(relay.port);
    a.pipeline_depth = Some(1);
    let (mut store, _) = open_store(&a, &store_config(None));
    opened(&mut store, "INBOX");
    let loaded = store
        .load(&LoadRequest {
            range: Some((1, u32::MAX)),
            flags: true,
            ..LoadRequest::default()
        })
        .unwrap();
    let uids: Vec<u32> = loaded.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, (2..=1200).step_by(2).collect::<Vec<u32>>());
    store.prefetch(&uids).unwrap();
    for &uid in &uids {
        let fetched = store.fetch(uid).unwrap();
        let body = match fetched.map(|f| f.body) {
            Some(mailsync::store::MessageBody::Memory(bytes)) => bytes,
            other => panic!("UID {uid}: {other:?}"),
        };
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains(&format!("body {uid}\r\n")),
            "UID {uid}: {text}"
        );
    }
    let most = relay.max_in_flight();
    assert_eq!(most, 1, "{most} commands in flight under PipelineDepth 1");
    store.close_box();
}

#[test]
fn messages_with_nul_bytes() {
    let server = Dovecot::start();
    let (mut store, _) = open_store(&account(&server, TlsType::StartTls), &store_config(None));
    opened(&mut store, "INBOX");
    // Stored through a binary literal (the server has BINARY).
    let data = b"Subject: nul\r\n\r\nbefore\0after\r\n".to_vec();
    let uid = store
        .store(NewMessage {
            data: MessageData::Bytes(&data),
            flags: Flags::EMPTY,
            date: None,
        })
        .unwrap();
    assert_eq!(uid, Some(1));
    // Read back: the server sends it without the NUL (Dovecot: 0x80), never breaking the
    // connection.
    let fetched = store.fetch(1).unwrap().expect("message");
    assert_eq!(fetched.body.to_vec().unwrap().len(), data.len());
    assert!(
        fetched
            .body
            .to_vec()
            .unwrap()
            .starts_with(b"Subject: nul\r\n\r\nbefore")
    );
    assert!(fetched.body.to_vec().unwrap().ends_with(b"after\r\n"));
    // Without BINARY such a message is refused as a per-message error.
    let server = Dovecot::start_with(dovecot::Options::without(&["BINARY"]));
    let (mut store, _) = open_store(&account(&server, TlsType::StartTls), &store_config(None));
    opened(&mut store, "INBOX");
    let error = store
        .store(NewMessage {
            data: MessageData::Bytes(&data),
            flags: Flags::EMPTY,
            date: None,
        })
        .unwrap_err();
    assert_eq!(error.scope, mailsync::store::FailureScope::Message);
    assert!(error.message.contains("NUL bytes"), "{}", error.message);
}

#[test]
fn nul_bytes_from_the_server_do_not_break_the_connection() {
    let (port, serve) = canned_server("IMAP4rev1", |tag, command, _| {
        let reply = match command {
            "SELECT" => {
                "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n* OK [UIDNEXT 6] x\r\n".to_string()
            }
            "UID" => "* 1 FETCH (UID 5 FLAGS (\\Seen) BODY[] {5}\r\na\0bcd)\r\n".to_string(),
            "LOGOUT" => return None,
            _ => String::new(),
        };
        Some(format!("{reply}{tag} OK done\r\n"))
    });
    let (mut store, collect) = open_store(&canned_account(port), &store_config(None));
    opened(&mut store, "INBOX");
    let fetched = store.fetch(5).unwrap().expect("message");
    assert_eq!(fetched.body.to_vec().unwrap(), b"a\x80bcd".to_vec());
    assert_eq!(fetched.flags, Flags::SEEN);
    let lines = collect.lines();
    assert!(lines.iter().any(|l| l.contains("NUL bytes")), "{lines:?}");
    drop(store);
    let _ = serve.join();
}

#[test]
fn inbox_namespace_with_dot_delimiter() {
    let server = Dovecot::start_with(dovecot::Options {
        separator: Some('.'),
        prefix: Some("INBOX.".into()),
        ..dovecot::Options::default()
    });
    server.create_mailbox("INBOX.Sub");
    server.create_mailbox("INBOX.Sub.Child");
    let a = account(&server, TlsType::StartTls);
    let (mut store, _) = open_store(&a, &store_config(None));
    assert_eq!(
        store.list(ListAreas::ALL).unwrap(),
        vec!["INBOX", "Sub", "Sub/Child"]
    );
    opened(&mut store, "Sub/Child");
    let data = crlf("Subject: deep\n\nx\n");
    store
        .store(NewMessage {
            data: MessageData::Bytes(&data),
            flags: Flags::EMPTY,
            date: None,
        })
        .unwrap();
    assert_eq!(server.uids("INBOX.Sub.Child"), vec![1]);
    // Without the namespace prefix, the same folders are INBOX's children.
    let mut plain = store_config(None);
    plain.use_namespace = false;
    let (mut store, _) = open_store(&a, &plain);
    assert_eq!(
        store.list(ListAreas::ALL).unwrap(),
        vec!["INBOX", "INBOX/Sub", "INBOX/Sub/Child"]
    );
    opened(&mut store, "INBOX/Sub");
}

#[test]
fn prefetch_pipelines_bodies_within_the_buffer_limit() {
    let server = Dovecot::start();
    for i in 0..20 {
        server.append(
            "INBOX",
            &format!("Subject: m{i}\n\nbody {i}\n"),
            if i % 2 == 0 { "\\Seen" } else { "" },
        );
    }
    let expected: Vec<Vec<u8>> = (0..20)
        .map(|i| crlf(&format!("Subject: m{i}\n\nbody {i}\n")))
        .collect();
    for limit in [10 * 1024 * 1024, 1] {
        let relay = Relay::start(server.port, RelayMode::Latency(10));
        let mut a = account(&server, TlsType::None);
        a.port = Some(relay.port);
        let options = ImapOptions {
            buffer_limit: limit,
            ..ImapOptions::default()
        };
        let mut store = ImapStore::new(
            &store_config(None),
            &a,
            options,
            std::rc::Rc::new(mailsync::store::SilentReporter),
        )
        .unwrap();
        opened(&mut store, "INBOX");
        let before = relay.counts().rounds;
        let uids: Vec<u32> = (1..=20).collect();
        store.prefetch(&uids).unwrap();
        for (uid, body) in uids.iter().zip(&expected) {
            let message = store.fetch(*uid).unwrap().expect("message");
            assert_eq!(
                &message.body.to_vec().unwrap(),
                body,
                "limit {limit}, UID {uid}"
            );
            assert_eq!(message.flags.contains(Flags::SEEN), uid % 2 == 1);
        }
        let rounds = relay.counts().rounds - before;
        if limit > 1 {
            // The sizes, then every body in one go.
            assert!(
                rounds <= 2,
                "limit {limit}: {rounds} round trips for 20 messages"
            );
        } else {
            // Never more than one message ahead: a round trip each.
            assert!(rounds >= 20, "limit {limit}: only {rounds} round trips");
        }
        assert!(store.fetch(21).unwrap().is_none());
    }
}

#[test]
fn messages_expunged_by_another_client_are_noticed() {
    let server = Dovecot::start();
    server.append("INBOX", MESSAGE_A, "");
    server.append("INBOX", MESSAGE_B, "");
    server.append("INBOX", MESSAGE_C, "");
    let (mut store, _) = open_store(&account(&server, TlsType::StartTls), &store_config(None));
    opened(&mut store, "INBOX");
    assert_eq!(store.load(&load_all()).unwrap().messages.len(), 3);
    server.doveadm(&[
        "expunge",
        "-u",
        dovecot::USER,
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    // The next command brings the unsolicited EXPUNGE.
    assert!(store.fetch(1).unwrap().is_some());
    assert!(store.fetch(2).unwrap().is_none());
    assert!(!store.set_flags(2, Flags::SEEN, Flags::EMPTY).unwrap());
    assert!(store.set_flags(3, Flags::SEEN, Flags::EMPTY).unwrap());
    let loaded = store.load(&load_all()).unwrap();
    assert_eq!(loaded.total, 2);
    assert_eq!(
        loaded
            .messages
            .iter()
            .map(|m| (m.uid, m.flags))
            .collect::<Vec<_>>(),
        vec![(1, Flags::EMPTY), (3, Flags::SEEN)]
    );
    // A message arriving meanwhile (EXISTS) is seen by the next load.
    server.append("INBOX", MESSAGE_A, "");
    store.fetch(1).unwrap();
    let loaded = store.load(&load_all()).unwrap();
    assert_eq!(loaded.total, 3);
    assert_eq!(store.expunge(&[]).unwrap(), vec![2]);
}

#[test]
fn a_trash_that_cannot_be_created_fails_the_message_only() {
    let server = Dovecot::start();
    server.append("INBOX", MESSAGE_A, "");
    // Dovecot's Maildir++ layout refuses '.' in names.
    let (mut store, _) = open_store(
        &account(&server, TlsType::StartTls),
        &store_config(Some("bad.name")),
    );
    opened(&mut store, "INBOX");
    let data = crlf(MESSAGE_C);
    let error = store
        .store_to_trash(NewMessage {
            data: MessageData::Bytes(&data),
            flags: Flags::EMPTY,
            date: None,
        })
        .unwrap_err();
    assert_eq!(error.scope, mailsync::store::FailureScope::Message);
    assert!(
        error
            .message
            .starts_with("IMAP command 'APPEND \"bad.name\" {51}' returned an error: NO "),
        "{}",
        error.message
    );
    assert!(
        error.message.ends_with("(store remote, mailbox INBOX)"),
        "{}",
        error.message
    );
    let error = store.trash(1).unwrap_err();
    assert_eq!(error.scope, mailsync::store::FailureScope::Message);
    // The box is still usable.
    assert_eq!(store.load(&load_all()).unwrap().messages.len(), 1);
}

#[test]
fn delimiter_is_learned_without_namespace_or_listing() {
    let server = Dovecot::start_with(dovecot::Options::without(&["NAMESPACE"]));
    server.create_mailbox("Sub/Leaf");
    let (mut store, _) = open_store(&account(&server, TlsType::StartTls), &store_config(None));
    opened(&mut store, "Sub/Leaf");
    assert_eq!(store.open_box("Sub/New").unwrap(), OpenOutcome::Missing);
    store.create_box().unwrap();
    assert!(server.mailboxes().contains(&"Sub/New".to_string()));
}

#[test]
fn trace_shows_traffic_without_credentials() {
    let server = Dovecot::start();
    server.append("INBOX", MESSAGE_A, "");
    let collect = dovecot::Collect::default();
    let options = ImapOptions {
        trace: true,
        ..ImapOptions::default()
    };
    for mechs in [vec!["LOGIN".to_string()], vec!["PLAIN".to_string()]] {
        let mut a = account(&server, TlsType::StartTls);
        a.auth_mechs = mechs;
        let mut store = ImapStore::new(
            &store_config(None),
            &a,
            options.clone(),
            std::rc::Rc::new(collect.clone()),
        )
        .unwrap();
        opened(&mut store, "INBOX");
        store.fetch(1).unwrap();
    }
    let lines = collect.lines();
    assert!(
        lines.iter().any(|l| l.ends_with(" LOGIN <user> <pass>")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(" AUTHENTICATE PLAIN <authdata>")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(">>> ") && l.contains("SELECT INBOX")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* 1 FETCH") && l.contains("more bytes")),
        "{lines:#?}"
    );
    // Capabilities came with the login OK: no CAPABILITY command after login.
    let login = lines
        .iter()
        .position(|l| l.ends_with(" LOGIN <user> <pass>"))
        .unwrap_or(0);
    assert!(
        lines[login..]
            .iter()
            .take(3)
            .all(|l| !l.contains("CAPABILITY\"") && !l.ends_with(" CAPABILITY")),
        "{lines:#?}"
    );
    let secret = dovecot::PASS.replace(' ', "");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(dovecot::PASS) || l.contains(&secret)),
        "{lines:#?}"
    );
}

#[test]
fn later_flag_changes_win_over_earlier_ones() {
    let server = Dovecot::start();
    server.append("INBOX", MESSAGE_A, "");
    server.append("INBOX", MESSAGE_B, "\\Flagged");
    let (mut store, _) = open_store(&account(&server, TlsType::StartTls), &store_config(None));
    opened(&mut store, "INBOX");
    store.set_flags(1, Flags::SEEN, Flags::EMPTY).unwrap();
    store.set_flags(1, Flags::DRAFT, Flags::SEEN).unwrap();
    store.set_flags(2, Flags::EMPTY, Flags::FLAGGED).unwrap();
    store
        .set_flags(2, Flags::FLAGGED | Flags::SEEN, Flags::EMPTY)
        .unwrap();
    store.close_box();
    assert_eq!(
        server.flags("INBOX"),
        vec![
            (1, "\\Draft".to_string()),
            (2, "\\Flagged \\Seen".to_string())
        ]
    );
}
