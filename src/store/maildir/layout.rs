//! The path model of a Maildir store (spec config-cli-stores §4.1, §4.2): where INBOX and
//! Path are, and which directory a mailbox name maps to under each SubFolders style.

use crate::config::{MaildirStoreConfig, SubFolders};
use crate::store::StoreError;

/// Where a store's mailboxes live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The store's name (for error texts).
    pub store_name: String,
    /// The INBOX directory `I`.
    pub inbox: String,
    /// The Path base directory `B` and name prefix `P`, if Path is set.
    pub path: Option<PathModel>,
    pub style: Option<SubFolders>,
}

/// `Path` split at its last `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathModel {
    /// The part before the last `/` (may be empty for a Path like `/x`).
    pub base: String,
    /// The part after the last `/`, glued to every mailbox name.
    pub prefix: String,
}

impl PathModel {
    /// Splits a Path string at its last `/`; a Path without `/` is relative to `.`.
    pub fn split(path: &str) -> PathModel {
        match path.rfind('/') {
            Some(slash) => PathModel {
                base: path[..slash].to_string(),
                prefix: path[slash + 1..].to_string(),
            },
            None => PathModel {
                base: ".".to_string(),
                prefix: path.to_string(),
            },
        }
    }

    /// The base directory as a path that can be opened (`/` for an empty base).
    pub fn base_dir(&self) -> &str {
        if self.base.is_empty() {
            "/"
        } else {
            &self.base
        }
    }
}

impl Layout {
    /// Builds the layout from a store section. A missing Inbox falls back to `$HOME/Maildir`.
    pub fn from_config(config: &MaildirStoreConfig) -> Layout {
        let inbox = match &config.inbox {
            Some(inbox) => inbox.clone(),
            None => {
                let home = std::env::var("HOME").unwrap_or_default();
                format!("{home}/Maildir")
            }
        };
        Layout {
            store_name: config.common.name.clone(),
            inbox,
            path: config.path.as_deref().map(PathModel::split),
            style: config.sub_folders,
        }
    }

    /// The directory of a mailbox (store-side, `/`-separated name), or the spec's error.
    pub fn box_dir(&self, name: &str) -> Result<String, StoreError> {
        if name == "INBOX" {
            return Ok(self.inbox.clone());
        }
        if let Some(rest) = name.strip_prefix("INBOX/") {
            return match self.style {
                None => Err(self.unset_style_error(name)),
                Some(SubFolders::Verbatim) => Ok(format!("{}/{rest}", self.inbox)),
                Some(SubFolders::Legacy) => Ok(format!("{}/{}", self.inbox, legacy_tail(rest))),
                Some(SubFolders::MaildirPlusPlus) => {
                    self.check_no_dots(name)?;
                    Ok(format!("{}/..{}", self.inbox, rest.replace('/', ".")))
                }
            };
        }
        if self.style == Some(SubFolders::MaildirPlusPlus) {
            self.check_no_dots(name)?;
            return Ok(format!("{}/.{}", self.inbox, name.replace('/', ".")));
        }
        let Some(path) = &self.path else {
            return Err(StoreError::store(format!(
                "Maildir error: store '{}' has no Path",
                self.store_name
            )));
        };
        let tail = match self.style {
            None if name.contains('/') => return Err(self.unset_style_error(name)),
            None | Some(SubFolders::Verbatim) => name.to_string(),
            Some(SubFolders::Legacy) => match name.split_once('/') {
                Some((top, rest)) => format!("{top}/{}", legacy_tail(rest)),
                None => name.to_string(),
            },
            Some(SubFolders::MaildirPlusPlus) => name.to_string(),
        };
        Ok(format!("{}/{}{tail}", path.base, path.prefix))
    }

    fn check_no_dots(&self, name: &str) -> Result<(), StoreError> {
        if name.contains('.') {
            return Err(StoreError::mailbox(format!(
                "Maildir error: store '{}', folder '{name}': SubFolders style Maildir++ does not support dots in mailbox names",
                self.store_name
            )));
        }
        Ok(())
    }

    fn unset_style_error(&self, name: &str) -> StoreError {
        StoreError::mailbox(format!(
            "Maildir error: accessing subfolder '{name}', but store '{}' does not specify SubFolders style",
            self.store_name
        ))
    }
}

/// Legacy layout of the components below the first level: each gets a leading dot.
fn legacy_tail(rest: &str) -> String {
    rest.split('/')
        .map(|component| format!(".{component}"))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FailureScope;

    fn layout(style: Option<SubFolders>, path: Option<&str>) -> Layout {
        Layout {
            store_name: "s".to_string(),
            inbox: "/I".to_string(),
            path: path.map(PathModel::split),
            style,
        }
    }

    #[test]
    fn path_is_split_at_last_slash() {
        assert_eq!(
            PathModel::split("/home/u/Mail/"),
            PathModel {
                base: "/home/u/Mail".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            PathModel::split("/home/u/Mail/work-"),
            PathModel {
                base: "/home/u/Mail".into(),
                prefix: "work-".into()
            }
        );
        assert_eq!(
            PathModel::split("/home/u/Mail"),
            PathModel {
                base: "/home/u".into(),
                prefix: "Mail".into()
            }
        );
        assert_eq!(PathModel::split("/x").base_dir(), "/");
    }

    #[test]
    fn inbox_row() {
        for style in [
            None,
            Some(SubFolders::Verbatim),
            Some(SubFolders::Legacy),
            Some(SubFolders::MaildirPlusPlus),
        ] {
            assert_eq!(layout(style, Some("/B/P")).box_dir("INBOX").unwrap(), "/I");
            assert_eq!(layout(style, None).box_dir("INBOX").unwrap(), "/I");
        }
    }

    #[test]
    fn inbox_subfolder_row() {
        let path = Some("/B/P");
        assert_eq!(
            layout(Some(SubFolders::Verbatim), path)
                .box_dir("INBOX/a/b")
                .unwrap(),
            "/I/a/b"
        );
        assert_eq!(
            layout(Some(SubFolders::Legacy), path)
                .box_dir("INBOX/a/b")
                .unwrap(),
            "/I/.a/.b"
        );
        assert_eq!(
            layout(Some(SubFolders::MaildirPlusPlus), None)
                .box_dir("INBOX/a/b")
                .unwrap(),
            "/I/..a.b"
        );
        let error = layout(None, path).box_dir("INBOX/a/b").unwrap_err();
        assert_eq!(
            error.message,
            "Maildir error: accessing subfolder 'INBOX/a/b', but store 's' does not specify SubFolders style"
        );
        assert_eq!(error.scope, FailureScope::Mailbox);
    }

    #[test]
    fn top_row() {
        let path = Some("/B/P");
        for style in [None, Some(SubFolders::Verbatim), Some(SubFolders::Legacy)] {
            assert_eq!(layout(style, path).box_dir("top").unwrap(), "/B/Ptop");
        }
        assert_eq!(
            layout(Some(SubFolders::MaildirPlusPlus), None)
                .box_dir("top")
                .unwrap(),
            "/I/.top"
        );
        // Name matching is case-sensitive: `Inbox` is an ordinary folder.
        assert_eq!(layout(None, path).box_dir("Inbox").unwrap(), "/B/PInbox");
    }

    #[test]
    fn nested_row() {
        let path = Some("/B/P");
        assert_eq!(
            layout(Some(SubFolders::Verbatim), path)
                .box_dir("top/sub/leaf")
                .unwrap(),
            "/B/Ptop/sub/leaf"
        );
        assert_eq!(
            layout(Some(SubFolders::Legacy), path)
                .box_dir("top/sub/leaf")
                .unwrap(),
            "/B/Ptop/.sub/.leaf"
        );
        assert_eq!(
            layout(Some(SubFolders::MaildirPlusPlus), None)
                .box_dir("top/sub/leaf")
                .unwrap(),
            "/I/.top.sub.leaf"
        );
        let error = layout(None, path).box_dir("top/sub/leaf").unwrap_err();
        assert_eq!(
            error.message,
            "Maildir error: accessing subfolder 'top/sub/leaf', but store 's' does not specify SubFolders style"
        );
    }

    #[test]
    fn maildirpp_rejects_dots() {
        for name in ["a.b", "INBOX/x.y", "top/s.t"] {
            let error = layout(Some(SubFolders::MaildirPlusPlus), None)
                .box_dir(name)
                .unwrap_err();
            assert_eq!(
                error.message,
                format!(
                    "Maildir error: store 's', folder '{name}': SubFolders style Maildir++ does not support dots in mailbox names"
                )
            );
            assert_eq!(error.scope, FailureScope::Mailbox);
        }
    }

    #[test]
    fn missing_path_fails_the_store() {
        for style in [None, Some(SubFolders::Verbatim), Some(SubFolders::Legacy)] {
            let error = layout(style, None).box_dir("top").unwrap_err();
            assert_eq!(error.message, "Maildir error: store 's' has no Path");
            assert_eq!(error.scope, FailureScope::Store);
        }
    }

    #[test]
    fn observed_layouts_of_spec_4_13() {
        let names = ["INBOX/kid", "Top/Child", "Top/Other"];
        let dirs =
            |l: Layout| -> Vec<String> { names.iter().map(|n| l.box_dir(n).unwrap()).collect() };
        assert_eq!(
            dirs(layout(Some(SubFolders::MaildirPlusPlus), None)),
            ["/I/..kid", "/I/.Top.Child", "/I/.Top.Other"]
        );
        assert_eq!(
            dirs(layout(Some(SubFolders::Legacy), Some("/B/"))),
            ["/I/.kid", "/B/Top/.Child", "/B/Top/.Other"]
        );
        assert_eq!(
            dirs(layout(Some(SubFolders::Verbatim), Some("/B/pre-"))),
            ["/I/kid", "/B/pre-Top/Child", "/B/pre-Top/Other"]
        );
    }
}
