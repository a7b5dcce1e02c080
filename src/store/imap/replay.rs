//! A pure entry point for fuzzing the IMAP response handling above imap-codec: bytes given as
//! everything a server sends on one connection go through the same connection code a session
//! uses (reading with the NUL and status-text filters, the literal limit, imap-next's
//! client flow, pipelined commands with tags, untagged bookkeeping) and then through the
//! store's interpretation of what came back (FETCH items, X-TUID and Message-ID headers,
//! SELECT codes, listed mailbox names). Nothing touches the network or the disk.

use super::connection::{Connection, GreetingType};
use super::messages;
use super::names::{ListedName, NameMap};
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::core::Literal;
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Code, Data};
use imap_next::imap_types::sequence::SequenceSet;
use std::str::FromStr;

/// What the replayed server bytes amounted to.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    /// The greeting was read.
    pub greeted: bool,
    /// The commands all got a tagged answer (otherwise `error` says why not).
    pub answered: usize,
    /// The error that ended the exchange, if any.
    pub error: Option<String>,
    /// UIDs of FETCH replies, with whether a body came.
    pub fetched: Vec<(u32, bool)>,
    /// UIDVALIDITY and UIDNEXT codes seen.
    pub uid_validity: Option<u32>,
    pub uid_next: Option<u32>,
    /// Listed mailbox names accepted as canonical names (for both name encodings).
    pub accepted_names: Vec<String>,
    /// Listed names refused as dangerous or malformed.
    pub rejected_names: usize,
}

/// The commands replayed against the canned server: what a sync of one mailbox sends.
fn commands() -> Vec<CommandBody<'static>> {
    let mut commands = Vec::new();
    if let (Ok(reference), Ok(wildcard)) = (Mailbox::try_from(""), ListMailbox::try_from("*")) {
        commands.push(CommandBody::List {
            reference,
            mailbox_wildcard: wildcard,
        });
    }
    commands.push(CommandBody::Select {
        mailbox: Mailbox::Inbox,
        parameters: Vec::new(),
    });
    let fetch = |set: &str, items: Vec<MessageDataItemName<'static>>| {
        SequenceSet::from_str(set)
            .ok()
            .map(|sequence_set| CommandBody::Fetch {
                sequence_set,
                macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
                uid: true,
                modifiers: Vec::new(),
            })
    };
    let mut load = vec![
        MessageDataItemName::Uid,
        MessageDataItemName::Flags,
        MessageDataItemName::Rfc822Size,
    ];
    if let Some(header) = super::header_fields(&["X-TUID", "MESSAGE-ID"]) {
        load.push(header);
    }
    commands.extend(fetch("1:*", load));
    commands.extend(fetch(
        "1",
        vec![
            MessageDataItemName::Uid,
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::BodyExt {
                section: None,
                partial: None,
                peek: true,
            },
        ],
    ));
    // A synchronising literal: the continuation request and its refusal are exercised too.
    if let Ok(literal) = Literal::try_from(b"Subject: x\r\n\r\nbody\r\n".to_vec()) {
        commands.push(CommandBody::Append {
            mailbox: Mailbox::Inbox,
            flags: Vec::new(),
            date: None,
            message: LiteralOrLiteral8::Literal(literal),
        });
    }
    commands.push(CommandBody::Expunge);
    commands
}

/// Plays `server_bytes` as a server's whole side of one connection (greeting first) against
/// the commands of a mailbox sync, with this literal limit, and interprets the replies as
/// the store does. Never panics on any input; errors are reported in the summary.
pub fn replay_server_bytes(server_bytes: &[u8], max_literal: u64) -> ReplaySummary {
    let mut summary = ReplaySummary::default();
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            summary.error = Some(format!("no runtime: {e}"));
            return summary;
        }
    };
    let stream = tokio::io::join(
        std::io::Cursor::new(server_bytes.to_vec()),
        tokio::io::sink(),
    );
    let mut connection = Connection::new("replay".to_string(), Box::new(stream), None);
    connection.set_max_literal(max_literal);
    runtime.block_on(async {
        match connection.read_greeting().await {
            Ok(GreetingType::Ok) | Ok(GreetingType::PreAuth) => summary.greeted = true,
            Err(e) => {
                summary.error = Some(e.message);
                return;
            }
        }
        match connection.execute(commands(), None).await {
            Ok(outcomes) => summary.answered = outcomes.len(),
            Err(e) => summary.error = Some(e.message),
        }
    });
    let data = std::mem::take(&mut connection.data);
    let codes = std::mem::take(&mut connection.codes);
    for code in &codes {
        match code {
            Code::UidValidity(v) => summary.uid_validity = Some(v.get()),
            Code::UidNext(n) => summary.uid_next = Some(n.get()),
            _ => {}
        }
    }
    for item in &data {
        if let Some(fetched) = messages::parse_fetch(item) {
            if let Some(header) = &fetched.header {
                let _ = messages::header_tuid(header);
                let _ = messages::header_value(header, "Message-ID");
            }
            summary.fetched.push((fetched.uid, fetched.body.is_some()));
            continue;
        }
        if let Data::List {
            delimiter, mailbox, ..
        } = item
        {
            let raw: Vec<u8> = match mailbox {
                Mailbox::Inbox => b"INBOX".to_vec(),
                Mailbox::Other(other) => other.inner().as_ref().to_vec(),
            };
            for utf8 in [false, true] {
                let names = NameMap {
                    prefix: String::new(),
                    delimiter: delimiter.as_ref().map(|d| d.inner()),
                    utf8,
                };
                match names.canonical_of_listed(&raw) {
                    ListedName::Name(name) => summary.accepted_names.push(name),
                    ListedName::Reject(_) => summary.rejected_names += 1,
                    ListedName::Skip(_) => {}
                }
            }
        }
    }
    drop(connection);
    summary
}

#[cfg(test)]
mod tests {
    use super::replay_server_bytes;

    /// A well-behaved server's answers to the replayed commands (tags 1–6).
    fn good_session(body_literal: &str) -> String {
        format!(
            "* OK [CAPABILITY IMAP4rev1] ready\r\n\
             * LIST () \"/\" INBOX\r\n* LIST () \"/\" \"a/b\"\r\n1 OK listed\r\n\
             * 2 EXISTS\r\n* OK [UIDVALIDITY 42] v\r\n* OK [UIDNEXT 8] n\r\n2 OK [READ-WRITE] sel\r\n\
             * 1 FETCH (UID 5 FLAGS (\\Seen) RFC822.SIZE 20 BODY[HEADER.FIELDS (X-TUID MESSAGE-ID)] {{21}}\r\nMessage-ID: <a@b>\r\n\r\n)\r\n\
             3 OK fetched\r\n\
             * 1 FETCH (UID 5 FLAGS (\\Seen) INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" BODY[] {body_literal}\r\n\
             4 OK fetched\r\n+ go\r\n5 OK [APPENDUID 42 8] appended\r\n6 OK expunged\r\n"
        )
    }

    #[test]
    fn a_good_session_is_interpreted_like_the_store_does() {
        let text = good_session("{5}\r\nhello)");
        let summary = replay_server_bytes(text.as_bytes(), 1 << 20);
        assert_eq!(summary.error, None);
        assert!(summary.greeted);
        assert_eq!(summary.answered, 6);
        assert_eq!(summary.uid_validity, Some(42));
        assert_eq!(summary.uid_next, Some(8));
        assert_eq!(summary.fetched, vec![(5, false), (5, true)]);
        assert!(summary.accepted_names.contains(&"a/b".to_string()));
    }

    #[test]
    fn a_literal_over_the_limit_is_refused_before_its_data() {
        // The server claims 3 GB but sends a few bytes: the claim alone ends the exchange.
        let text = good_session("{3000000000}\r\nhello)");
        let summary = replay_server_bytes(text.as_bytes(), 1 << 20);
        let error = summary.error.expect("an error");
        assert!(
            error.contains("literal of 3000000000 bytes, more than the limit of 1048576")
                && error.contains("UID 5"),
            "{error}"
        );
        assert_eq!(summary.answered, 0);
    }

    #[test]
    fn hostile_listed_names_are_never_accepted() {
        for name in ["\"..\"", "\"a/../b\"", "\"/etc\"", "{3}\r\na\u{1}b"] {
            let text = format!("* OK hi\r\n* LIST () \"/\" {name}\r\n1 OK listed\r\n");
            let summary = replay_server_bytes(text.as_bytes(), 1 << 20);
            assert!(summary.accepted_names.is_empty(), "{name}: {summary:?}");
            assert!(
                summary.rejected_names > 0,
                "{name} not refused: {summary:?}"
            );
        }
    }
}
