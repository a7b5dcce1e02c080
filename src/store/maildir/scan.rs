//! One scan of a mailbox (spec config-cli-stores §4.7): list `cur/` and `new/` with the
//! freshness wait and the restart on concurrent change, check the UIDs, number the UID-less
//! files in delivery order, and collect what the load asked for.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::environment::{Environment, unix_secs};
use super::read_ahead::{DirStamp, Listing};
use super::{
    KeptFile, MessageFile, OpenBox, Sub, header, list_error, names, order, read_error,
    rename_message, strerror,
};
use crate::store::{LoadRequest, Loaded, MessageInfo, Reporter, StoreError, StoreResult};

/// What a scan needs besides the open mailbox.
pub(super) struct ScanContext<'a> {
    pub(super) environment: &'a dyn Environment,
    pub(super) reporter: &'a dyn Reporter,
    pub(super) delimiter: char,
    /// The host name in the names this store generates.
    pub(super) host: &'a str,
    pub(super) no_fresh_wait: bool,
}

/// Why a scan pass ended early.
enum ScanPass {
    Finished(Loaded),
    Restart,
}

impl ScanContext<'_> {
    /// Scans `open`; `ahead` is what a read-ahead listed of it, used if still current.
    pub(super) fn scan(
        &self,
        open: &mut OpenBox,
        request: &LoadRequest,
        mut ahead: Option<Listing>,
    ) -> StoreResult<Loaded> {
        loop {
            if let ScanPass::Finished(loaded) = self.scan_pass(open, request, ahead.take())? {
                if request.new {
                    open.fresh_uids = false;
                }
                return Ok(loaded);
            }
        }
    }

    fn scan_pass(
        &self,
        open: &mut OpenBox,
        request: &LoadRequest,
        ahead: Option<Listing>,
    ) -> StoreResult<ScanPass> {
        let now = unix_secs(self.environment.now());
        // What each directory looked like before the listing; any change restarts the pass.
        let mut stamps = Vec::with_capacity(2);
        for sub in Sub::BOTH {
            let meta = self.stat_sub(open, sub)?;
            if !self.no_fresh_wait
                && !open.created[sub.index()]
                && u64::try_from(meta.mtime()).ok() == Some(now)
            {
                self.reporter
                    .notice("Maildir notice: sleeping due to recent directory modification.");
                self.environment.sleep(Duration::from_secs(1));
                return Ok(ScanPass::Restart);
            }
            stamps.push(DirStamp::of(&meta));
        }
        let listed = match ahead.filter(|listing| listing.stamps[..] == stamps[..]) {
            Some(listing) => {
                self.reporter.debug(&format!(
                    "Maildir: {}: the names listed ahead are current",
                    open.dir
                ));
                listing.names
            }
            None => [
                self.list_sub(open, Sub::Cur)?,
                self.list_sub(open, Sub::New)?,
            ],
        };

        // Files with a UID, and UID-less files (new deliveries) to be numbered.
        let mut numbered: Vec<(u32, MessageFile)> = Vec::new();
        let mut unnumbered: Vec<MessageFile> = Vec::new();
        let mut recent = 0u32;
        for (sub, names) in Sub::BOTH.into_iter().zip(listed) {
            for name in names {
                if sub == Sub::New {
                    recent += 1;
                }
                let uid = names::parse_uid(&name).filter(|uid| {
                    !open.fresh_uids
                        || (open.stored_uids.contains(uid)
                            && open.files.get(uid).is_some_and(|kept| {
                                kept.file(*uid, self.host, self.delimiter).name == name
                            }))
                });
                let file = MessageFile { name, sub };
                match uid {
                    Some(uid) => numbered.push((uid, file)),
                    None => unnumbered.push(file),
                }
            }
        }
        let total = u32::try_from(numbered.len() + unnumbered.len()).unwrap_or(u32::MAX);
        self.environment.scan_listed();

        for sub in Sub::BOTH {
            let meta = self.stat_sub(open, sub)?;
            if DirStamp::of(&meta) != stamps[sub.index()] {
                return Ok(ScanPass::Restart);
            }
        }

        // By UID (of two files with one UID, the one with the greater name stays in `files`),
        // then the UID-less ones oldest delivery first.
        numbered.sort_unstable_by(|(a, a_file), (b, b_file)| {
            a.cmp(b).then_with(|| a_file.name.cmp(&b_file.name))
        });
        let unnumbered = if request.new {
            order::sort_tolerant(unnumbered, &|a: &MessageFile, b: &MessageFile| {
                order::compare_uidless(&a.name, &b.name)
            })
        } else {
            Vec::new()
        };

        let mut messages = Vec::new();
        let highest = open.uid_file.highest();
        for (index, (uid, file)) in numbered.iter().enumerate() {
            if !uid_wanted(*uid, request) {
                continue;
            }
            if index > 0 && numbered[index - 1].0 == *uid {
                return Err(StoreError::mailbox(format!(
                    "Maildir error: duplicate UID {uid} in {}.",
                    open.dir
                )));
            }
            if *uid > highest {
                return Err(StoreError::mailbox(format!(
                    "Maildir error: UID {uid} is beyond highest assigned UID {highest} in {}.",
                    open.dir
                )));
            }
            let Some(info) = self.message_info(open, request, *uid, file)? else {
                return Ok(ScanPass::Restart);
            };
            messages.push(info);
        }
        let mut files: BTreeMap<u32, KeptFile> = numbered
            .into_iter()
            .map(|(uid, file)| (uid, KeptFile::found(file)))
            .collect();
        for mut file in unnumbered {
            let uid = open.uid_file.allocate()?;
            let new_name = names::with_uid(&file.name, uid, self.delimiter);
            let sub_dir = format!("{}/{}", open.dir, file.sub.dir_name());
            let from = format!("{sub_dir}/{}", file.name);
            let to = format!("{sub_dir}/{new_name}");
            if !rename_message(&from, &to)? {
                return Ok(ScanPass::Restart);
            }
            file.name = new_name;
            let Some(info) = self.message_info(open, request, uid, &file)? else {
                return Ok(ScanPass::Restart);
            };
            messages.push(info);
            files.insert(uid, KeptFile::found(file));
        }
        // The file holds the highest UID given to a file name, not the end of a block.
        open.uid_file.release()?;
        open.files = files;
        Ok(ScanPass::Finished(Loaded {
            messages,
            total,
            recent,
        }))
    }

    /// The loaded form of one message; `None` if its file vanished meanwhile.
    fn message_info(
        &self,
        open: &OpenBox,
        request: &LoadRequest,
        uid: u32,
        file: &MessageFile,
    ) -> StoreResult<Option<MessageInfo>> {
        let path = || format!("{}/{}/{}", open.dir, file.sub.dir_name(), file.name);
        let mut info = MessageInfo {
            uid,
            recent: file.sub == Sub::New,
            ..MessageInfo::default()
        };
        if request.flags {
            info.flags = names::parse_flags(&file.name, self.delimiter);
        }
        if request.sizes_from.is_some_and(|from| uid >= from) {
            let path = path();
            match fs::metadata(&path) {
                Ok(meta) => info.size = meta.len(),
                Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(read_error(&path, &error)),
            }
        }
        let wanted = header::Wanted {
            tuid: request.tuids_from.is_some_and(|from| uid >= from),
            message_id: request.message_ids_upto.is_some_and(|upto| uid <= upto),
        };
        if wanted.tuid || wanted.message_id {
            let path = path();
            let reader = match File::open(&path) {
                Ok(file) => BufReader::new(file),
                Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(read_error(&path, &error)),
            };
            let fields = header::read_fields(reader, wanted).map_err(|e| read_error(&path, &e))?;
            if fields.malformed_tuid {
                self.reporter
                    .warning(&format!("Maildir error: malformed X-TUID header in {path}"));
            }
            info.tuid = fields.tuid;
            if wanted.message_id {
                info.message_id = fields.message_id;
            }
        }
        Ok(Some(info))
    }

    /// The message file names in `cur/` or `new/` (names starting with a dot are not).
    fn list_sub(&self, open: &OpenBox, sub: Sub) -> StoreResult<Vec<String>> {
        let dir = format!("{}/{}", open.dir, sub.dir_name());
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| list_error(&dir, &e))? {
            let entry = entry.map_err(|e| list_error(&dir, &e))?;
            let Ok(name) = entry.file_name().into_string() else {
                // A name that is not UTF-8 can neither be numbered nor renamed safely.
                self.reporter.warning(&format!(
                    "Maildir warning: ignoring file with non-UTF-8 name in {dir}"
                ));
                continue;
            };
            if !name.starts_with('.') {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn stat_sub(&self, open: &OpenBox, sub: Sub) -> StoreResult<fs::Metadata> {
        let path = format!("{}/{}", open.dir, sub.dir_name());
        fs::metadata(&path).map_err(|error| {
            StoreError::mailbox(format!(
                "Maildir error: cannot stat {path}: {}",
                strerror(&error)
            ))
        })
    }
}

/// True if a load request covers this UID (range or exception list).
fn uid_wanted(uid: u32, request: &LoadRequest) -> bool {
    request
        .range
        .is_some_and(|(low, high)| low <= uid && uid <= high)
        || request.exceptions.contains(&uid)
}
