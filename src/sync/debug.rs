//! Debug output of the `-D` categories: driver calls (`d`, with message data `D`), Maildir
//! details (`m`), main-loop steps (`M`) and sync decisions per entry (`s`). Every line
//! starts with its category's prefix (`driver:`, `maildir:`, `main:`, `sync:`), so none can
//! look like the `### … ###` line of `-Tj`. Printing only: enabling it changes no result.

use crate::config::Side;
use crate::output;
use crate::store::{
    FetchedMessage, Flags, FlagsTicket, ListAreas, LoadRequest, Loaded, MessageData, MessageInfo,
    NewMessage, OpenOutcome, QueuedOutcome, RefusedFlags, Store, StoreResult, StoreTicket,
};
use crate::sync::DebugFlags;
use crate::sync::entry::{Entry, Status};

/// Prints one debug line with its category prefix.
pub fn line(prefix: &str, text: &str) {
    output::stdout_line(&format!("{prefix}: {text}"));
}

/// A `main:` line when the `M` category is on.
pub fn main(flags: &DebugFlags, text: &str) {
    if flags.main {
        line("main", text);
    }
}

/// The names of the status bits set in `status`, e.g. `PENDING|DUMMY_N`.
pub fn status_names(status: Status) -> String {
    const NAMES: [(Status, &str); 16] = [
        (Status::DEAD, "DEAD"),
        (Status::EXPIRE, "EXPIRE"),
        (Status::EXPIRED, "EXPIRED"),
        (Status::NEXPIRE, "NEXPIRE"),
        (Status::PENDING, "PENDING"),
        (Status::DUMMY_F, "DUMMY_F"),
        (Status::DUMMY_N, "DUMMY_N"),
        (Status::SKIPPED, "SKIPPED"),
        (Status::GONE_F, "GONE_F"),
        (Status::GONE_N, "GONE_N"),
        (Status::DEL_F, "DEL_F"),
        (Status::DEL_N, "DEL_N"),
        (Status::DELETE, "DELETE"),
        (Status::UPGRADE, "UPGRADE"),
        (Status::PURGE, "PURGE"),
        (Status::PURGED, "PURGED"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| status.has(*bit))
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join("|")
    }
}

/// One entry as a `sync:` line shows it: UIDs, baseline, status and the planned changes.
pub fn describe_entry(entry: &Entry) -> String {
    let mut text = format!(
        "entry ({},{}) baseline '{}' status {}",
        entry.uid[0],
        entry.uid[1],
        entry.flags.letters(),
        status_names(entry.status)
    );
    for side in Side::BOTH {
        let t = side.index();
        if !entry.add[t].is_empty() || !entry.del[t].is_empty() {
            text.push_str(&format!(
                "; {}: +'{}' -'{}'",
                side.label(),
                entry.add[t].letters(),
                entry.del[t].letters()
            ));
        }
    }
    text
}

/// A store whose calls are reported on the console (`d`, `D` and `m` categories); it passes
/// every call through unchanged.
pub struct DebugStore<'a> {
    pub inner: &'a mut dyn Store,
    pub side: Side,
    /// `d`: calls and results.
    pub calls: bool,
    /// `D`: also the message data fetched and stored.
    pub data: bool,
    /// `m`: the loaded messages one by one (Maildir listing).
    pub listing: bool,
    /// Where the store's boxes live, for the `m` lines: (box name, Maildir directory).
    pub box_dirs: Vec<(String, String)>,
}

impl DebugStore<'_> {
    fn call(&self, text: impl FnOnce() -> String) {
        if self.calls || self.data {
            let text = text();
            line(
                "driver",
                &format!("{} {}: {text}", self.side.label(), self.inner.name()),
            );
        }
    }

    fn data_lines(&self, what: &str, data: MessageData<'_>) {
        if !self.data {
            return;
        }
        let data = match data.to_vec() {
            Ok(data) => data,
            Err(err) => {
                self.call(|| format!("{what} ({} bytes): unreadable: {err}", data.len()));
                return;
            }
        };
        self.call(|| format!("{what} ({} bytes):", data.len()));
        for text in String::from_utf8_lossy(&data).lines() {
            line("driver", &format!("  | {text}"));
        }
    }
}

fn result_text<T: std::fmt::Debug>(result: &StoreResult<T>) -> String {
    match result {
        Ok(value) => format!("ok {value:?}"),
        Err(err) => format!("failed ({:?}): {}", err.scope, err.message),
    }
}

impl Store for DebugStore<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn supported_flags(&self) -> Flags {
        self.inner.supported_flags()
    }
    fn crlf(&self) -> bool {
        self.inner.crlf()
    }
    fn selective_expunge(&self) -> bool {
        self.inner.selective_expunge()
    }
    fn list(&mut self, areas: ListAreas) -> StoreResult<Vec<String>> {
        let result = self.inner.list(areas);
        self.call(|| format!("list {areas:?} -> {}", result_text(&result)));
        result
    }
    fn open_box(&mut self, name: &str) -> StoreResult<OpenOutcome> {
        if self.listing
            && let Some((_, dir)) = self.box_dirs.iter().find(|(known, _)| known == name)
        {
            line(
                "maildir",
                &format!("{} box {name} is the directory {dir}", self.side.label()),
            );
        }
        let result = self.inner.open_box(name);
        self.call(|| format!("open box {name} -> {}", result_text(&result)));
        result
    }
    fn create_box(&mut self) -> StoreResult<u32> {
        let result = self.inner.create_box();
        self.call(|| format!("create box -> UIDVALIDITY {}", result_text(&result)));
        result
    }
    fn delete_box(&mut self) -> StoreResult<()> {
        let result = self.inner.delete_box();
        self.call(|| format!("delete box -> {}", result_text(&result)));
        result
    }
    fn remove_box_leftovers(&mut self) {
        self.call(|| "remove what is left of the deleted box".to_string());
        self.inner.remove_box_leftovers();
    }
    fn is_empty(&mut self) -> StoreResult<bool> {
        let result = self.inner.is_empty();
        self.call(|| format!("is empty -> {}", result_text(&result)));
        result
    }
    fn load(&mut self, request: &LoadRequest) -> StoreResult<Loaded> {
        self.call(|| {
            format!(
                "load range {:?} plus {} more UIDs, new {}, flags {}, sizes from {:?}, TUIDs from \
             {:?}, Message-IDs up to {:?}",
                request.range,
                request.exceptions.len(),
                request.new,
                request.flags,
                request.sizes_from,
                request.tuids_from,
                request.message_ids_upto
            )
        });
        let result = self.inner.load(request);
        match &result {
            Ok(loaded) => {
                self.call(|| {
                    format!(
                        "loaded {} of {} messages ({} recent)",
                        loaded.messages.len(),
                        loaded.total,
                        loaded.recent
                    )
                });
                if self.listing {
                    for msg in &loaded.messages {
                        line(
                            "maildir",
                            &format!(
                                "{} UID {} flags '{}'{}{}{}",
                                self.side.label(),
                                msg.uid,
                                msg.flags.letters(),
                                if msg.recent { " in new/" } else { "" },
                                if msg.size > 0 {
                                    format!(" size {}", msg.size)
                                } else {
                                    String::new()
                                },
                                if msg.tuid.is_some() {
                                    " with X-TUID"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                }
            }
            Err(_) => self.call(|| format!("load -> {}", result_text(&result))),
        }
        result
    }
    fn uid_next_hint(&mut self) -> StoreResult<u32> {
        let result = self.inner.uid_next_hint();
        self.call(|| format!("next UID hint -> {}", result_text(&result)));
        result
    }
    fn fetch(&mut self, uid: u32) -> StoreResult<Option<FetchedMessage>> {
        let result = self.inner.fetch(uid);
        match &result {
            Ok(Some(msg)) => {
                self.call(|| {
                    format!(
                        "fetch UID {uid} -> {} bytes, flags '{}'",
                        msg.body.len(),
                        msg.flags.letters()
                    )
                });
                if self.data
                    && let Ok(bytes) = msg.body.to_vec()
                {
                    self.data_lines("fetched data", MessageData::Bytes(&bytes));
                }
            }
            Ok(None) => self.call(|| format!("fetch UID {uid} -> vanished")),
            Err(_) => self.call(|| format!("fetch UID {uid} -> {}", result_text(&result))),
        }
        result
    }
    fn store(&mut self, message: NewMessage<'_>) -> StoreResult<Option<u32>> {
        self.data_lines("data to store", message.data);
        let result = self.inner.store(message);
        self.call(|| {
            format!(
                "store {} bytes, flags '{}' -> UID {}",
                message.data.len(),
                message.flags.letters(),
                result_text(&result)
            )
        });
        result
    }
    fn spool_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.spool_dir()
    }
    fn set_spool_dir(&mut self, dir: &std::path::Path) {
        self.inner.set_spool_dir(dir)
    }
    fn prefetch(&mut self, uids: &[u32]) -> StoreResult<()> {
        let result = self.inner.prefetch(uids);
        self.call(|| {
            format!(
                "prefetch {} messages -> {}",
                uids.len(),
                result_text(&result)
            )
        });
        result
    }
    fn store_queued(&mut self, message: NewMessage<'_>) -> StoreResult<StoreTicket> {
        self.data_lines("data to store", message.data);
        let result = self.inner.store_queued(message);
        self.call(|| {
            let outcome = match &result {
                Ok(StoreTicket::Done(uid)) => format!("UID {}", result_text(&Ok(*uid))),
                Ok(StoreTicket::Queued(ticket)) => format!("queued as {ticket}"),
                Err(_) => format!("UID {}", result_text(&result)),
            };
            format!(
                "store {} bytes, flags '{}' -> {outcome}",
                message.data.len(),
                message.flags.letters(),
            )
        });
        result
    }
    fn finish_stores(&mut self) -> StoreResult<Vec<QueuedOutcome>> {
        let result = self.inner.finish_stores();
        self.call(|| match &result {
            Ok(outcomes) => format!("finish {} queued stores", outcomes.len()),
            Err(err) => format!("finish queued stores -> failed: {}", err.message),
        });
        result
    }
    fn flush(&mut self) -> StoreResult<()> {
        let result = self.inner.flush();
        self.call(|| format!("flush -> {}", result_text(&result)));
        result
    }
    fn flushes_in_background(&self) -> bool {
        self.inner.flushes_in_background()
    }
    fn flush_start(&mut self) -> StoreResult<()> {
        let result = self.inner.flush_start();
        self.call(|| format!("flush_start -> {}", result_text(&result)));
        result
    }
    fn flush_finish(&mut self) -> StoreResult<()> {
        let result = self.inner.flush_finish();
        self.call(|| format!("flush_finish -> {}", result_text(&result)));
        result
    }
    fn store_to_trash(&mut self, message: NewMessage<'_>) -> StoreResult<()> {
        self.data_lines("data to store in the Trash", message.data);
        let result = self.inner.store_to_trash(message);
        self.call(|| {
            format!(
                "store {} bytes into the Trash -> {}",
                message.data.len(),
                result_text(&result)
            )
        });
        result
    }
    fn set_flags(&mut self, uid: u32, add: Flags, remove: Flags) -> StoreResult<bool> {
        let result = self.inner.set_flags(uid, add, remove);
        self.call(|| {
            format!(
                "set flags of UID {uid}: +'{}' -'{}' -> {}",
                add.letters(),
                remove.letters(),
                result_text(&result)
            )
        });
        result
    }
    fn set_flags_queued(
        &mut self,
        uid: u32,
        add: Flags,
        remove: Flags,
    ) -> StoreResult<FlagsTicket> {
        let result = self.inner.set_flags_queued(uid, add, remove);
        self.call(|| {
            let outcome = match &result {
                Ok(FlagsTicket::Done(done)) => result_text(&Ok(*done)),
                Ok(FlagsTicket::Queued) => "queued".to_string(),
                Err(err) => format!("failed: {}", err.message),
            };
            format!(
                "set flags of UID {uid}: +'{}' -'{}' -> {outcome}",
                add.letters(),
                remove.letters(),
            )
        });
        result
    }
    fn finish_flag_changes(&mut self) -> StoreResult<Vec<RefusedFlags>> {
        let result = self.inner.finish_flag_changes();
        self.call(|| match &result {
            Ok(refused) => format!(
                "finish queued flag changes -> {} message(s) refused",
                refused.iter().map(|(uids, _)| uids.len()).sum::<usize>()
            ),
            Err(err) => format!("finish queued flag changes -> failed: {}", err.message),
        });
        result
    }
    fn trash(&mut self, uid: u32) -> StoreResult<bool> {
        let result = self.inner.trash(uid);
        self.call(|| format!("trash UID {uid} -> {}", result_text(&result)));
        result
    }
    fn expunge(&mut self, uids: &[u32]) -> StoreResult<Vec<u32>> {
        let result = self.inner.expunge(uids);
        self.call(|| format!("expunge UIDs {uids:?} -> {}", result_text(&result)));
        result
    }
    fn find_new(&mut self, from_uid: u32) -> StoreResult<Vec<MessageInfo>> {
        let result = self.inner.find_new(from_uid);
        match &result {
            Ok(found) => {
                self.call(|| format!("find new from UID {from_uid} -> {} messages", found.len()))
            }
            Err(_) => self.call(|| format!("find new -> {}", result_text(&result))),
        }
        result
    }
    fn close_box(&mut self) {
        self.inner.close_box();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_description_names_bits_and_changes() {
        let mut entry = Entry {
            uid: [3, 0],
            flags: Flags::SEEN,
            status: Status::PENDING.with(Status::DUMMY_N),
            ..Entry::default()
        };
        entry.add[1] = Flags::TRASHED;
        assert_eq!(
            describe_entry(&entry),
            "entry (3,0) baseline 'S' status PENDING|DUMMY_N; near side: +'T' -''"
        );
        assert_eq!(status_names(Status::EMPTY), "-");
    }
}
