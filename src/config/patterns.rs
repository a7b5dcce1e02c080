//! Mailbox selection for channels (spec config-cli-stores §2.2, §2.3, §2.6): glob patterns,
//! which store areas to list, Flatten/MapInbox name mapping, merging both sides' mailbox
//! lists, box-list parsing (`chan:box1,box2`) and the sync-state file path.
//!
//! Everything here is a pure function of its arguments; the stores and the sync core call it.

use super::types::{ChannelConfig, ChannelRef, CommonStoreConfig, Config, SyncStateLocation};
use crate::store::ListAreas;

/// Matches a whole mailbox name against one glob (without a leading `!`).
///
/// `*` matches any sequence (including `/`), `%` any sequence without `/`; every other
/// character matches itself. Matching is byte-wise and case-sensitive.
pub fn glob_match(glob: &str, name: &str) -> bool {
    glob_match_bytes(glob.as_bytes(), name.as_bytes())
}

fn glob_match_bytes(glob: &[u8], name: &[u8]) -> bool {
    match glob.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob_match_bytes(rest, &name[skip..])),
        Some((b'%', rest)) => {
            for skip in 0..=name.len() {
                if glob_match_bytes(rest, &name[skip..]) {
                    return true;
                }
                if name.get(skip) == Some(&b'/') {
                    return false;
                }
            }
            false
        }
        Some((literal, rest)) => {
            name.first() == Some(literal) && glob_match_bytes(rest, &name[1..])
        }
    }
}

/// Applies a channel's pattern list to a (prefix-stripped) mailbox name: the name is selected
/// iff the last matching pattern is positive (has no leading `!`).
pub fn is_selected(patterns: &[String], name: &str) -> bool {
    for pattern in patterns.iter().rev() {
        let (negative, glob) = match pattern.strip_prefix('!') {
            Some(glob) => (true, glob),
            None => (false, pattern.as_str()),
        };
        if glob_match(glob, name) {
            return !negative;
        }
    }
    false
}

/// Which areas of one side's store must be listed for these patterns (§2.2 step 1).
/// `prefix` is the side's mailbox prefix, `flattened` whether the store has `Flatten`.
pub fn list_areas(prefix: &str, patterns: &[String], flattened: bool) -> ListAreas {
    let mut areas = ListAreas::default();
    for pattern in patterns.iter().filter(|p| !p.starts_with('!')) {
        let full = format!("{prefix}{pattern}");
        if full == "INBOX" {
            areas.inbox = true;
        } else if full.starts_with("INBOX/") {
            if flattened {
                areas.path = true;
            } else {
                areas.inbox = true;
            }
        } else if full.starts_with("INBOX*") || full.starts_with("INBOX%") {
            areas.inbox = true;
            areas.path_if_configured = true;
        } else {
            areas.path = true;
        }
    }
    areas
}

/// The list areas of both sides of a channel (far, near). Stores that are not defined are
/// treated as not flattened.
pub fn channel_list_areas(config: &Config, channel: &ChannelConfig) -> [ListAreas; 2] {
    let side_areas = |index: usize| {
        let side = &channel.sides[index];
        let flattened = config
            .store(&side.store)
            .is_some_and(|store| store.common().flatten.is_some());
        list_areas(&side.mailbox, &channel.patterns, flattened)
    };
    [side_areas(0), side_areas(1)]
}

/// A mailbox name that cannot be mapped between canonical and store-side form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Printed as `Error: flattened mailbox name '<n>' contains canonical hierarchy delimiter`.
    #[error("flattened mailbox name '{0}' contains canonical hierarchy delimiter")]
    ListedNameHasSlash(String),
    /// Printed as `Error: canonical mailbox name '<n>' contains flattened hierarchy delimiter`.
    #[error("canonical mailbox name '{0}' contains flattened hierarchy delimiter")]
    CanonicalNameHasFlattenDelimiter(String),
}

/// Converts a store-side name from a listing into its canonical form (Flatten reversed).
pub fn store_to_canonical(name: &str, flatten: Option<&str>) -> Result<String, NameError> {
    match flatten {
        None => Ok(name.to_string()),
        Some(delimiter) => {
            if name.contains('/') {
                return Err(NameError::ListedNameHasSlash(name.to_string()));
            }
            Ok(name.replace(delimiter, "/"))
        }
    }
}

/// Converts a canonical name into the store-side form (Flatten applied).
pub fn canonical_to_store(name: &str, flatten: Option<&str>) -> Result<String, NameError> {
    match flatten {
        None => Ok(name.to_string()),
        Some(delimiter) => {
            if name.contains(delimiter) {
                return Err(NameError::CanonicalNameHasFlattenDelimiter(
                    name.to_string(),
                ));
            }
            Ok(name.replace('/', delimiter))
        }
    }
}

/// The store-side name to open for a canonical mailbox name: the store's `MapInbox` name maps
/// to `INBOX`, everything else goes through Flatten. This is also the name used in the
/// sync-state file name.
pub fn name_to_open(store: &CommonStoreConfig, canonical: &str) -> Result<String, NameError> {
    if store.map_inbox.as_deref() == Some(canonical) {
        return Ok("INBOX".to_string());
    }
    canonical_to_store(canonical, store.flatten.as_deref())
}

/// Turns a store listing (store-side names) into canonical names and adds the `MapInbox`
/// name (§2.2 step 2).
pub fn listed_to_canonical(
    store: &CommonStoreConfig,
    listed: &[String],
) -> Result<Vec<String>, NameError> {
    let mut names = listed
        .iter()
        .map(|name| store_to_canonical(name, store.flatten.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(map_inbox) = &store.map_inbox {
        names.push(map_inbox.clone());
    }
    Ok(names)
}

/// One side's selected boxes (§2.2 step 3): names starting with the side's prefix, prefix
/// stripped, filtered by the patterns.
pub fn select_side(canonical_names: &[String], prefix: &str, patterns: &[String]) -> Vec<String> {
    canonical_names
        .iter()
        .filter_map(|name| name.strip_prefix(prefix))
        .filter(|name| is_selected(patterns, name))
        .map(str::to_string)
        .collect()
}

/// A mailbox of a pattern channel and the sides it was found on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoxPresence {
    /// The name without the sides' prefixes.
    pub name: String,
    pub far: bool,
    pub near: bool,
}

fn is_inbox_family(name: &str) -> bool {
    name == "INBOX" || name.starts_with("INBOX/")
}

/// Sorts names the way boxes are processed: `INBOX` and `INBOX/…` first, then byte-wise;
/// duplicates are dropped.
pub fn sort_box_names(names: &mut Vec<String>) {
    names.sort_by(|a, b| {
        is_inbox_family(b)
            .cmp(&is_inbox_family(a))
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    });
    names.dedup();
}

/// Merges both sides' selected names (§2.2 step 4). If `INBOX` heads one side's sorted list
/// and the other side lacks it, it counts as present on both sides.
pub fn merge_sides(mut far: Vec<String>, mut near: Vec<String>) -> Vec<BoxPresence> {
    sort_box_names(&mut far);
    sort_box_names(&mut near);
    let inbox_assumed = (far.first().is_some_and(|n| n == "INBOX")
        && !near.iter().any(|n| n == "INBOX"))
        || (near.first().is_some_and(|n| n == "INBOX") && !far.iter().any(|n| n == "INBOX"));
    let mut merged: Vec<BoxPresence> = Vec::with_capacity(far.len() + near.len());
    let (mut far_iter, mut near_iter) = (far.into_iter().peekable(), near.into_iter().peekable());
    loop {
        let order = match (far_iter.peek(), near_iter.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(f), Some(n)) => is_inbox_family(n)
                .cmp(&is_inbox_family(f))
                .then_with(|| f.as_bytes().cmp(n.as_bytes())),
        };
        let entry = match order {
            std::cmp::Ordering::Less => far_iter.next().map(|name| BoxPresence {
                name,
                far: true,
                near: false,
            }),
            std::cmp::Ordering::Greater => near_iter.next().map(|name| BoxPresence {
                name,
                far: false,
                near: true,
            }),
            std::cmp::Ordering::Equal => {
                near_iter.next();
                far_iter.next().map(|name| BoxPresence {
                    name,
                    far: true,
                    near: true,
                })
            }
        };
        merged.extend(entry);
    }
    if inbox_assumed {
        for entry in merged.iter_mut().filter(|e| e.name == "INBOX") {
            entry.far = true;
            entry.near = true;
        }
    }
    merged
}

/// The boxes of a pattern channel (§2.2 steps 3–4), given both sides' canonical listings
/// (after [`listed_to_canonical`]).
pub fn channel_boxes(
    channel: &ChannelConfig,
    far_names: &[String],
    near_names: &[String],
) -> Vec<BoxPresence> {
    let far = select_side(far_names, &channel.sides[0].mailbox, &channel.patterns);
    let near = select_side(near_names, &channel.sides[1].mailbox, &channel.patterns);
    merge_sides(far, near)
}

/// Parses a channel reference `channel[:box[{,|\n}box…]]` (§2.3). An empty box means
/// INBOX and is kept as `""`.
pub fn parse_channel_ref(spec: &str) -> ChannelRef {
    match spec.split_once(':') {
        None => ChannelRef {
            channel: spec.to_string(),
            boxes: None,
        },
        Some((channel, boxes)) => ChannelRef {
            channel: channel.to_string(),
            boxes: Some(boxes.split([',', '\n']).map(str::to_string).collect()),
        },
    }
}

/// The mailbox name a box-list element denotes (`""` → `INBOX`).
pub fn box_list_name(element: &str) -> &str {
    if element.is_empty() { "INBOX" } else { element }
}

/// Why no state-file path could be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatePathError {
    /// Printed as `Error: store '<near>' does not support in-box sync state`.
    #[error("store '{0}' does not support in-box sync state")]
    InBoxUnsupported(String),
    /// Printed as `Error: invalid SyncState location '<path>'`.
    #[error("invalid SyncState location '{0}'")]
    NoSlash(String),
}

/// The path of the sync-state file for one mailbox pair (§2.6, sync-semantics §1.1).
///
/// `far_box`/`near_box` are the store-side names (after Flatten/MapInbox, see
/// [`name_to_open`]); `near_box_dir` is the near mailbox's directory when the near store is
/// a Maildir (needed for `SyncState *`).
pub fn state_file_path(
    config: &Config,
    channel: &ChannelConfig,
    far_box: &str,
    near_box: &str,
    near_box_dir: Option<&str>,
) -> Result<String, StatePathError> {
    let far_store = &channel.sides[0].store;
    let near_store = &channel.sides[1].store;
    let path = match (&channel.sync_state, &config.sync_state) {
        (Some(SyncStateLocation::InBox), _) | (None, SyncStateLocation::InBox) => {
            return match near_box_dir {
                Some(dir) => Ok(format!("{}/.mbsyncstate", dir.trim_end_matches('/'))),
                None => Err(StatePathError::InBoxUnsupported(near_store.clone())),
            };
        }
        (Some(SyncStateLocation::Prefix(prefix)), _) => {
            format!("{prefix}{}", near_box.replace('/', "!"))
        }
        (None, SyncStateLocation::Prefix(prefix)) => {
            let d = config.field_delimiter;
            format!(
                "{prefix}{d}{far_store}{d}{}_{d}{near_store}{d}{}",
                far_box.replace('/', "!"),
                near_box.replace('/', "!")
            )
        }
    };
    if !path.contains('/') {
        return Err(StatePathError::NoSlash(path));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn star_crosses_levels_percent_does_not() {
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("*", ""));
        assert!(glob_match("%", "abc"));
        assert!(!glob_match("%", "a/b"));
        assert!(glob_match("a/%", "a/b"));
        assert!(!glob_match("a/%", "a/b/c"));
        assert!(glob_match("a/*", "a/b/c"));
        assert!(glob_match("%/c", "ab/c"));
        assert!(glob_match("J*k", "Junk"));
        assert!(!glob_match("junk", "Junk"));
        assert!(!glob_match("Jun", "Junk"));
        assert!(glob_match("%x%", "axb"));
        assert!(!glob_match("%x%", "a/xb"));
    }

    #[test]
    fn last_matching_pattern_wins() {
        let patterns = strings(&["*", "!Junk*", "Junk/keep"]);
        assert!(is_selected(&patterns, "Inbox"));
        assert!(!is_selected(&patterns, "Junk"));
        assert!(!is_selected(&patterns, "Junk/other"));
        assert!(is_selected(&patterns, "Junk/keep"));
        assert!(!is_selected(&strings(&["A"]), "B"));
        assert!(!is_selected(&[], "A"));
    }

    #[test]
    fn list_areas_classification() {
        let areas =
            |prefix: &str, pats: &[&str], flat: bool| list_areas(prefix, &strings(pats), flat);
        assert_eq!(
            areas("", &["INBOX"], false),
            ListAreas {
                inbox: true,
                path: false,
                path_if_configured: false
            }
        );
        assert_eq!(
            areas("", &["INBOX/sub"], false),
            ListAreas {
                inbox: true,
                path: false,
                path_if_configured: false
            }
        );
        assert_eq!(
            areas("", &["INBOX/sub"], true),
            ListAreas {
                inbox: false,
                path: true,
                path_if_configured: false
            }
        );
        assert_eq!(
            areas("IN", &["BOX*"], false),
            ListAreas {
                inbox: true,
                path: false,
                path_if_configured: true
            }
        );
        assert_eq!(
            areas("", &["INBOX%"], false),
            ListAreas {
                inbox: true,
                path: false,
                path_if_configured: true
            }
        );
        assert_eq!(
            areas("", &["*", "!INBOX"], false),
            ListAreas {
                inbox: false,
                path: true,
                path_if_configured: false
            }
        );
        assert_eq!(
            areas("", &["INB*"], false),
            ListAreas {
                inbox: false,
                path: true,
                path_if_configured: false
            }
        );
        assert_eq!(areas("", &["!INBOX"], false), ListAreas::default());
    }

    #[test]
    fn flatten_maps_both_ways() {
        assert_eq!(
            store_to_canonical("a.b.c", Some(".")),
            Ok("a/b/c".to_string())
        );
        assert_eq!(
            store_to_canonical("a--b", Some("--")),
            Ok("a/b".to_string())
        );
        assert_eq!(
            store_to_canonical("a/b", Some(".")),
            Err(NameError::ListedNameHasSlash("a/b".to_string()))
        );
        assert_eq!(store_to_canonical("a/b", None), Ok("a/b".to_string()));
        assert_eq!(canonical_to_store("a/b", Some(".")), Ok("a.b".to_string()));
        let err = canonical_to_store("a.b/c", Some(".")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "canonical mailbox name 'a.b/c' contains flattened hierarchy delimiter"
        );
        assert_eq!(
            NameError::ListedNameHasSlash("x/y".into()).to_string(),
            "flattened mailbox name 'x/y' contains canonical hierarchy delimiter"
        );
    }

    fn common(flatten: Option<&str>, map_inbox: Option<&str>) -> CommonStoreConfig {
        CommonStoreConfig {
            name: "s".into(),
            flatten: flatten.map(str::to_string),
            map_inbox: map_inbox.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn map_inbox_opens_inbox_and_is_listed() {
        let store = common(Some("."), Some("Inbox"));
        assert_eq!(name_to_open(&store, "Inbox"), Ok("INBOX".to_string()));
        assert_eq!(name_to_open(&store, "a/b"), Ok("a.b".to_string()));
        let listed = listed_to_canonical(&store, &strings(&["INBOX", "x.y"])).unwrap();
        assert_eq!(
            listed,
            strings(&["INBOX", "x/y"])
                .into_iter()
                .chain(["Inbox".to_string()])
                .collect::<Vec<_>>()
        );
        assert!(listed_to_canonical(&store, &strings(&["a/b"])).is_err());
    }

    #[test]
    fn sides_are_filtered_by_prefix_and_patterns() {
        let names = strings(&["work/a", "work/Spam", "other", "work/b/c", "INBOX"]);
        let selected = select_side(&names, "work/", &strings(&["*", "!Spam"]));
        assert_eq!(selected, strings(&["a", "b/c"]));
    }

    #[test]
    fn merge_sorts_inbox_first_and_records_sides() {
        let merged = merge_sides(
            strings(&["b", "INBOX/x", "a", "INBOX", "c"]),
            strings(&["c", "a", "d", "INBOX/x"]),
        );
        let got: Vec<(&str, bool, bool)> = merged
            .iter()
            .map(|e| (e.name.as_str(), e.far, e.near))
            .collect();
        assert_eq!(
            got,
            vec![
                ("INBOX", true, true),
                ("INBOX/x", true, true),
                ("a", true, true),
                ("b", true, false),
                ("c", true, true),
                ("d", false, true),
            ]
        );
    }

    #[test]
    fn inbox_assumed_only_when_heading_a_list() {
        let merged = merge_sides(strings(&["a"]), strings(&["a", "b"]));
        assert!(merged.iter().all(|e| e.name != "INBOX"));
        let merged = merge_sides(strings(&["Sent"]), strings(&["INBOX", "Sent"]));
        assert_eq!(
            merged[0],
            BoxPresence {
                name: "INBOX".into(),
                far: true,
                near: true
            }
        );
        assert_eq!(
            merged[1],
            BoxPresence {
                name: "Sent".into(),
                far: true,
                near: true
            }
        );
    }

    #[test]
    fn channel_refs_with_box_lists() {
        assert_eq!(
            parse_channel_ref("ch"),
            ChannelRef {
                channel: "ch".into(),
                boxes: None
            }
        );
        assert_eq!(
            parse_channel_ref("ch:,Sent\nDrafts,a:b"),
            ChannelRef {
                channel: "ch".into(),
                boxes: Some(strings(&["", "Sent", "Drafts", "a:b"]))
            }
        );
        assert_eq!(box_list_name(""), "INBOX");
        assert_eq!(box_list_name("x"), "x");
    }

    fn test_config(
        global: SyncStateLocation,
        channel_state: Option<SyncStateLocation>,
    ) -> (Config, ChannelConfig) {
        let channel = ChannelConfig {
            name: "c".into(),
            sides: [
                ChannelSide {
                    store: "work".into(),
                    mailbox: String::new(),
                },
                ChannelSide {
                    store: "local".into(),
                    mailbox: String::new(),
                },
            ],
            patterns: vec![],
            ops: OpSettings::default(),
            copy_arrival_date: false,
            max_delete_percent: DEFAULT_MAX_DELETE_PERCENT,
            max_messages: 0,
            expire_side: Side::Near,
            expire_unread: ExpireUnread::Unset,
            sync_state: channel_state,
            line: 1,
        };
        let config = Config {
            file: "rc".into(),
            fsync: true,
            field_delimiter: ':',
            buffer_limit: 10 << 20,
            ops: OpSettings::default(),
            sync_state: global,
            accounts: vec![],
            stores: vec![],
            channels: vec![channel.clone()],
            groups: vec![],
        };
        (config, channel)
    }

    #[test]
    fn state_paths() {
        let (config, channel) = test_config(SyncStateLocation::Prefix("/st/isync/".into()), None);
        assert_eq!(
            state_file_path(&config, &channel, "INBOX", "a/b", None),
            Ok("/st/isync/:work:INBOX_:local:a!b".to_string())
        );
        let (mut config, channel) = test_config(
            SyncStateLocation::InBox,
            Some(SyncStateLocation::Prefix("/st/ch-".into())),
        );
        config.field_delimiter = ';';
        assert_eq!(
            state_file_path(&config, &channel, "x", "a/b", None),
            Ok("/st/ch-a!b".to_string())
        );
        let (config, channel) = test_config(
            SyncStateLocation::Prefix("/g/".into()),
            Some(SyncStateLocation::InBox),
        );
        assert_eq!(
            state_file_path(&config, &channel, "x", "y", Some("/m/y")),
            Ok("/m/y/.mbsyncstate".to_string())
        );
        assert_eq!(
            state_file_path(&config, &channel, "x", "y", None)
                .unwrap_err()
                .to_string(),
            "store 'local' does not support in-box sync state"
        );
        let (config, channel) = test_config(
            SyncStateLocation::Prefix("/g/".into()),
            Some(SyncStateLocation::Prefix("rel".into())),
        );
        assert_eq!(
            state_file_path(&config, &channel, "x", "INBOX", None)
                .unwrap_err()
                .to_string(),
            "invalid SyncState location 'relINBOX'"
        );
        let (mut config, channel) = test_config(SyncStateLocation::Prefix("/g/".into()), None);
        config.field_delimiter = ';';
        assert_eq!(
            state_file_path(&config, &channel, "INBOX", "INBOX", None),
            Ok("/g/;work;INBOX_;local;INBOX".to_string())
        );
    }
}
