//! An in-memory `Store` for unit tests of the executor: mailboxes are maps from UID to
//! message, with a UIDVALIDITY and a highest-assigned-UID counter like a Maildir.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::store::{
    FetchedMessage, Flags, FlagsTicket, ListAreas, LoadRequest, Loaded, MessageBody, MessageInfo,
    NewMessage, OpenOutcome, RefusedFlags, Store, StoreError, StoreResult, Tuid,
};

/// One message in a memory mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemMessage {
    pub data: Vec<u8>,
    pub flags: Flags,
    pub recent: bool,
    pub date: Option<SystemTime>,
}

/// One memory mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemBox {
    pub uid_validity: u32,
    /// Highest UID assigned so far.
    pub highest: u32,
    pub messages: BTreeMap<u32, MemMessage>,
    /// Messages in the trash (unnumbered), in arrival order.
    pub unnumbered: Vec<MemMessage>,
}

/// A store holding mailboxes in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    pub name: String,
    pub boxes: BTreeMap<String, MemBox>,
    pub trash: Option<String>,
    /// `-Tu`: stored messages get UIDs but the store does not report them.
    pub withhold_uids: bool,
    /// UIDVALIDITY given to created boxes.
    pub new_uid_validity: u32,
    /// UIDs for which `store` fails with a message-level error (by source content).
    pub refuse_containing: Option<Vec<u8>>,
    /// UIDs that another client removes from the open box when a message is stored.
    pub vanish_on_store: Vec<u32>,
    /// UIDs that another client removes from the open box right after it was loaded.
    pub vanish_after_load: Vec<u32>,
    /// `set_flags_queued` queues changes (like IMAP) until `finish_flag_changes` …
    pub queue_flags: bool,
    /// … which refuses the changes of these UIDs (they are not made).
    pub refuse_flags: Vec<u32>,
    queued_flags: Vec<(u32, Flags, Flags)>,
    /// Calls of `flush` that had stored messages to make durable.
    pub flushes: u32,
    /// `flush_start` only starts a flush (as a Maildir's sync thread), `flush_finish`
    /// completes it.
    pub background_flush: bool,
    /// Messages whose flush was started and not finished.
    pub flushing: u32,
    /// The background flush completed after this many flushes fails instead.
    pub fail_flush_after: Option<u32>,
    /// Messages stored since the last `flush`.
    pub unflushed: u32,
    /// Each `fetch` takes this long (a slow source).
    pub fetch_delay: Option<std::time::Duration>,
    current: Option<String>,
    /// Highest UID at load time (for `find_new`).
    loaded_up_to: u32,
}

/// Builds message text with the usual test headers.
pub fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: {subject}\nMessage-ID: <{subject}@example.org>\n\nBody of {subject}\n"
    )
    .into_bytes()
}

fn header_value<'a>(data: &'a [u8], name: &str) -> Option<&'a [u8]> {
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() || line == b"\r" {
            return None;
        }
        if line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            let value = &line[name.len()..];
            let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
            let mut value = &value[start..];
            if value.last() == Some(&b'\r') {
                value = &value[..value.len() - 1];
            }
            return Some(value);
        }
    }
    None
}

/// The X-TUID of message text, if any.
pub fn tuid_of(data: &[u8]) -> Option<Tuid> {
    let value = header_value(data, "X-TUID:")?;
    value.get(..12)?.try_into().ok()
}

impl MemStore {
    pub fn new(name: &str) -> MemStore {
        MemStore {
            name: name.to_string(),
            new_uid_validity: 1,
            ..MemStore::default()
        }
    }

    /// Adds a box with messages at the given UIDs.
    pub fn with_box(
        mut self,
        name: &str,
        uid_validity: u32,
        messages: &[(u32, &str, Flags)],
    ) -> MemStore {
        let mut mailbox = MemBox {
            uid_validity,
            ..MemBox::default()
        };
        for &(uid, subject, flags) in messages {
            mailbox.messages.insert(
                uid,
                MemMessage {
                    data: message(subject),
                    flags,
                    recent: false,
                    date: None,
                },
            );
            mailbox.highest = mailbox.highest.max(uid);
        }
        self.boxes.insert(name.to_string(), mailbox);
        self
    }

    pub fn mailbox(&self, name: &str) -> &MemBox {
        static EMPTY: std::sync::OnceLock<MemBox> = std::sync::OnceLock::new();
        self.boxes
            .get(name)
            .unwrap_or_else(|| EMPTY.get_or_init(MemBox::default))
    }

    /// `(uid, subject, flags)` of a box, ascending UID.
    pub fn summary(&self, name: &str) -> Vec<(u32, String, Flags)> {
        self.mailbox(name)
            .messages
            .iter()
            .map(|(&uid, m)| {
                let subject = header_value(&m.data, "Subject:")
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .unwrap_or_default();
                (uid, subject, m.flags)
            })
            .collect()
    }

    fn current_box(&mut self) -> StoreResult<&mut MemBox> {
        let name = self
            .current
            .clone()
            .ok_or_else(|| StoreError::mailbox("no mailbox open"))?;
        self.boxes
            .get_mut(&name)
            .ok_or_else(|| StoreError::mailbox(format!("mailbox {name} vanished")))
    }

    fn put_in_trash(&mut self, msg: MemMessage) -> StoreResult<()> {
        let trash = self
            .trash
            .clone()
            .ok_or_else(|| StoreError::message("no trash configured"))?;
        self.boxes.entry(trash).or_default().unnumbered.push(msg);
        Ok(())
    }
}

impl Store for MemStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn crlf(&self) -> bool {
        false
    }

    fn list(&mut self, _areas: ListAreas) -> StoreResult<Vec<String>> {
        Ok(self.boxes.keys().cloned().collect())
    }

    fn open_box(&mut self, name: &str) -> StoreResult<OpenOutcome> {
        self.current = Some(name.to_string());
        Ok(match self.boxes.get(name) {
            Some(b) => OpenOutcome::Opened {
                uid_validity: b.uid_validity,
            },
            None => OpenOutcome::Missing,
        })
    }

    fn create_box(&mut self) -> StoreResult<u32> {
        let name = self
            .current
            .clone()
            .ok_or_else(|| StoreError::mailbox("no mailbox selected"))?;
        let uid_validity = self.new_uid_validity;
        self.boxes.insert(
            name,
            MemBox {
                uid_validity,
                ..MemBox::default()
            },
        );
        Ok(uid_validity)
    }

    fn delete_box(&mut self) -> StoreResult<()> {
        let name = self
            .current
            .take()
            .ok_or_else(|| StoreError::mailbox("no mailbox open"))?;
        self.boxes.remove(&name);
        Ok(())
    }

    fn is_empty(&mut self) -> StoreResult<bool> {
        Ok(self.current_box()?.messages.is_empty())
    }

    fn load(&mut self, request: &LoadRequest) -> StoreResult<Loaded> {
        let mailbox = self.current_box()?;
        let total = mailbox.messages.len() as u32;
        let recent = mailbox.messages.values().filter(|m| m.recent).count() as u32;
        let highest = mailbox.highest;
        let mut messages = Vec::new();
        for (&uid, m) in &mailbox.messages {
            let in_range = request.range.is_some_and(|(lo, hi)| lo <= uid && uid <= hi);
            if !in_range && !request.exceptions.contains(&uid) {
                continue;
            }
            messages.push(MessageInfo {
                uid,
                flags: if request.flags { m.flags } else { Flags::EMPTY },
                size: if request.sizes_from.is_some_and(|from| uid >= from) {
                    m.data.len() as u64
                } else {
                    0
                },
                tuid: if request.tuids_from.is_some_and(|from| uid >= from) {
                    tuid_of(&m.data)
                } else {
                    None
                },
                message_id: if request.message_ids_upto.is_some_and(|upto| uid <= upto) {
                    header_value(&m.data, "Message-ID:").map(<[u8]>::to_vec)
                } else {
                    None
                },
                recent: m.recent,
            });
        }
        self.loaded_up_to = if request.new { u32::MAX } else { highest };
        let vanishing = std::mem::take(&mut self.vanish_after_load);
        let mailbox = self.current_box()?;
        for uid in vanishing {
            mailbox.messages.remove(&uid);
        }
        Ok(Loaded {
            messages,
            total,
            recent,
        })
    }

    fn uid_next_hint(&mut self) -> StoreResult<u32> {
        Ok(self.current_box()?.highest)
    }

    fn fetch(&mut self, uid: u32) -> StoreResult<Option<FetchedMessage>> {
        if let Some(delay) = self.fetch_delay {
            std::thread::sleep(delay);
        }
        Ok(self
            .current_box()?
            .messages
            .get(&uid)
            .map(|m| FetchedMessage {
                body: MessageBody::Memory(m.data.clone()),
                flags: m.flags,
                date: m.date,
            }))
    }

    fn store(&mut self, message: NewMessage<'_>) -> StoreResult<Option<u32>> {
        let data = message
            .data
            .to_vec()
            .map_err(|e| StoreError::message(format!("cannot read the message: {e}")))?;
        if let Some(needle) = &self.refuse_containing
            && data.windows(needle.len()).any(|w| w == needle.as_slice())
        {
            return Err(StoreError::message("refused"));
        }
        let withhold = self.withhold_uids;
        let vanishing = std::mem::take(&mut self.vanish_on_store);
        let mailbox = self.current_box()?;
        for uid in vanishing {
            mailbox.messages.remove(&uid);
        }
        mailbox.highest += 1;
        let uid = mailbox.highest;
        mailbox.messages.insert(
            uid,
            MemMessage {
                data,
                flags: message.flags,
                recent: !message.flags.contains(Flags::SEEN),
                date: message.date,
            },
        );
        self.unflushed += 1;
        Ok(if withhold { None } else { Some(uid) })
    }

    fn flush(&mut self) -> StoreResult<()> {
        self.flush_finish()?;
        if self.unflushed > 0 {
            self.flushes += 1;
            self.unflushed = 0;
        }
        Ok(())
    }

    fn flushes_in_background(&self) -> bool {
        self.background_flush
    }

    fn flush_start(&mut self) -> StoreResult<()> {
        if !self.background_flush {
            return self.flush();
        }
        self.flush_finish()?;
        self.flushing = std::mem::take(&mut self.unflushed);
        Ok(())
    }

    fn flush_finish(&mut self) -> StoreResult<()> {
        if self.flushing == 0 {
            return Ok(());
        }
        self.flushing = 0;
        if self.fail_flush_after == Some(self.flushes) {
            return Err(StoreError::mailbox("cannot sync the messages".to_string()));
        }
        self.flushes += 1;
        Ok(())
    }

    fn store_to_trash(&mut self, message: NewMessage<'_>) -> StoreResult<()> {
        self.unflushed += 1;
        let data = message
            .data
            .to_vec()
            .map_err(|e| StoreError::message(format!("cannot read the message: {e}")))?;
        self.put_in_trash(MemMessage {
            data,
            flags: message.flags,
            recent: false,
            date: message.date,
        })
    }

    fn set_flags(&mut self, uid: u32, add: Flags, remove: Flags) -> StoreResult<bool> {
        let mailbox = self.current_box()?;
        Ok(match mailbox.messages.get_mut(&uid) {
            Some(m) => {
                m.flags = m.flags.union(add).minus(remove);
                m.recent = false;
                true
            }
            None => false,
        })
    }

    fn set_flags_queued(
        &mut self,
        uid: u32,
        add: Flags,
        remove: Flags,
    ) -> StoreResult<FlagsTicket> {
        if !self.queue_flags {
            return self.set_flags(uid, add, remove).map(FlagsTicket::Done);
        }
        self.queued_flags.push((uid, add, remove));
        Ok(FlagsTicket::Queued)
    }

    fn finish_flag_changes(&mut self) -> StoreResult<Vec<RefusedFlags>> {
        let mut refused = Vec::new();
        for (uid, add, remove) in std::mem::take(&mut self.queued_flags) {
            if self.refuse_flags.contains(&uid) {
                refused.push((
                    vec![uid],
                    StoreError::message(format!("flag change of UID {uid} refused")),
                ));
                continue;
            }
            self.set_flags(uid, add, remove)?;
        }
        Ok(refused)
    }

    fn trash(&mut self, uid: u32) -> StoreResult<bool> {
        let mailbox = self.current_box()?;
        let Some(msg) = mailbox.messages.remove(&uid) else {
            return Ok(false);
        };
        self.put_in_trash(msg)?;
        Ok(true)
    }

    fn expunge(&mut self, uids: &[u32]) -> StoreResult<Vec<u32>> {
        let mailbox = self.current_box()?;
        Ok(uids
            .iter()
            .copied()
            .filter(|uid| mailbox.messages.remove(uid).is_some())
            .collect())
    }

    fn find_new(&mut self, from_uid: u32) -> StoreResult<Vec<MessageInfo>> {
        let up_to = self.loaded_up_to;
        let mailbox = self.current_box()?;
        Ok(mailbox
            .messages
            .range(from_uid..)
            .filter(|(uid, _)| **uid <= up_to)
            .map(|(&uid, m)| MessageInfo {
                uid,
                tuid: tuid_of(&m.data),
                ..MessageInfo::default()
            })
            .collect())
    }

    fn close_box(&mut self) {
        self.current = None;
    }
}
