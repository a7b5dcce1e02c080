//! Listing the mailboxes of a Maildir store (spec config-cli-stores §4.3): walking the INBOX
//! and Path areas under the store's SubFolders style and reporting store-side names.

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::layout::Layout;
use super::strerror;
use crate::config::SubFolders;
use crate::store::{Reporter, StoreError};

/// Folder nesting deeper than this is taken for a symlink loop.
const MAX_DEPTH: usize = 10;

/// Which area a walk belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Inbox,
    Path,
}

/// Lists the mailboxes of the requested areas. `inbox` and `path` say which areas to walk
/// (the caller decides about "Path if configured"); names come out in walk order and may
/// repeat `INBOX` when INBOX lives under Path (the caller removes duplicates).
pub fn list(
    layout: &Layout,
    inbox: bool,
    path: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, StoreError> {
    let mut walker = Walker {
        layout,
        reporter,
        names: Vec::new(),
        inbox_identity: identity(&layout.inbox),
    };
    if layout.style == Some(SubFolders::MaildirPlusPlus) {
        walker.list_maildir_plus_plus(inbox, path)?;
    } else {
        if inbox {
            walker.list_inbox()?;
        }
        if path {
            walker.list_path()?;
        }
    }
    Ok(walker.names)
}

struct Walker<'a> {
    layout: &'a Layout,
    reporter: &'a dyn Reporter,
    names: Vec<String>,
    /// Device and inode of the INBOX directory, to recognise it inside Path.
    inbox_identity: Option<(u64, u64)>,
}

impl Walker<'_> {
    fn list_inbox(&mut self) -> Result<(), StoreError> {
        self.names.push("INBOX".to_string());
        let inbox = self.layout.inbox.clone();
        self.walk_folder(&inbox, "INBOX", 1, Area::Inbox)
    }

    fn list_path(&mut self) -> Result<(), StoreError> {
        let Some(path) = &self.layout.path else {
            return Err(StoreError::store(format!(
                "Maildir error: store '{}' has no Path",
                self.layout.store_name
            )));
        };
        let base = path.base_dir().to_string();
        let Some(entries) = read_dir_names(&base)? else {
            return Ok(());
        };
        for entry in entries {
            let Some(rest) = entry.strip_prefix(path.prefix.as_str()) else {
                continue;
            };
            let dir = format!("{}/{entry}", path.base);
            if is_ignored_entry(&entry) || !is_dir(&dir) {
                continue;
            }
            if rest.is_empty() {
                return Err(StoreError::store(format!(
                    "Maildir error: empty mailbox name under {}/ - did you forget the trailing slash?",
                    path.base
                )));
            }
            if self.layout.style == Some(SubFolders::Legacy) && rest.starts_with('.') {
                continue;
            }
            // The INBOX directory itself may live under Path (`Inbox ~/Mail/INBOX`); it is
            // reported as INBOX by `visit_folder`. Any other entry named INBOX would collide.
            let is_inbox_dir =
                self.inbox_identity.is_some() && identity(&dir) == self.inbox_identity;
            if rest == "INBOX" && !is_inbox_dir {
                self.reporter.warning(&format!(
                    "Maildir warning: ignoring INBOX in {}/",
                    path.base
                ));
                continue;
            }
            self.visit_folder(&dir, rest, 1)?;
        }
        Ok(())
    }

    /// Reports a folder of the Path area (or INBOX, if it is the INBOX directory) and walks
    /// its sub-folders.
    fn visit_folder(&mut self, dir: &str, name: &str, depth: usize) -> Result<(), StoreError> {
        if self.inbox_identity.is_some() && identity(dir) == self.inbox_identity {
            return self.list_inbox();
        }
        if is_dir(&format!("{dir}/cur")) {
            self.names.push(name.to_string());
        }
        self.walk_folder(dir, name, depth, Area::Path)
    }

    /// Walks the sub-folders inside the folder `dir` named `name`.
    fn walk_folder(
        &mut self,
        dir: &str,
        name: &str,
        depth: usize,
        area: Area,
    ) -> Result<(), StoreError> {
        if depth > MAX_DEPTH {
            return Err(StoreError::store(format!(
                "Maildir error: path {dir} is too deeply nested. Symlink loop?"
            )));
        }
        let Some(entries) = read_dir_names(dir)? else {
            return Ok(());
        };
        for entry in entries {
            let child_dir = format!("{dir}/{entry}");
            if is_ignored_entry(&entry) || !is_dir(&child_dir) {
                continue;
            }
            let child = match self.layout.style {
                None => {
                    return Err(StoreError::store(format!(
                        "Maildir error: found subfolder '{name}/{entry}', but store '{}' does not specify SubFolders style",
                        self.layout.store_name
                    )));
                }
                Some(SubFolders::Legacy) => match entry.strip_prefix('.') {
                    Some(stripped) if !stripped.is_empty() => stripped.to_string(),
                    _ => continue,
                },
                Some(_) => entry.clone(),
            };
            let child_name = format!("{name}/{child}");
            match area {
                Area::Path => self.visit_folder(&child_dir, &child_name, depth + 1)?,
                Area::Inbox => {
                    if is_dir(&format!("{child_dir}/cur")) {
                        self.names.push(child_name.clone());
                    }
                    self.walk_folder(&child_dir, &child_name, depth + 1, Area::Inbox)?;
                }
            }
        }
        Ok(())
    }

    /// Maildir++: all folders are `.`-entries of the INBOX directory.
    fn list_maildir_plus_plus(&mut self, inbox: bool, path: bool) -> Result<(), StoreError> {
        self.names.push("INBOX".to_string());
        let inbox_dir = self.layout.inbox.clone();
        let Some(entries) = read_dir_names(&inbox_dir)? else {
            return Ok(());
        };
        for entry in entries {
            let Some(folder) = entry.strip_prefix('.') else {
                continue;
            };
            if folder.is_empty() || folder == "." {
                continue;
            }
            if !is_dir(&format!("{inbox_dir}/{entry}/cur")) {
                continue;
            }
            if let Some(sub) = folder.strip_prefix('.') {
                if inbox {
                    self.names.push(format!("INBOX/{}", sub.replace('.', "/")));
                }
            } else if folder == "INBOX" || folder.starts_with("INBOX.") {
                self.reporter
                    .warning(&format!("Maildir warning: ignoring INBOX in {inbox_dir}/"));
            } else if path {
                self.names.push(folder.replace('.', "/"));
            }
        }
        Ok(())
    }
}

/// `.`, `..` and the maildir sub-directories are never folders.
fn is_ignored_entry(entry: &str) -> bool {
    matches!(entry, "." | ".." | "cur" | "new" | "tmp")
}

fn is_dir(path: &str) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_dir())
}

fn identity(path: &str) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The entry names of a directory, sorted; `None` if it does not exist.
fn read_dir_names(dir: &str) -> Result<Option<Vec<String>>, StoreError> {
    let cannot_list = |error: &std::io::Error| {
        StoreError::store(format!(
            "Maildir error: cannot list {dir}: {}",
            strerror(error)
        ))
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(cannot_list(&error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| cannot_list(&e))?;
        // Names that are not UTF-8 cannot be mailbox names; they are skipped.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(Some(names))
}
