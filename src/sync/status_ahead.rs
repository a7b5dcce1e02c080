//! Which mailboxes of a channel's side an earlier run kept a listing snapshot of (a listing
//! side file `<state>.mailsync` exists for their pair), worked out before the stores are
//! opened, so an IMAP store can ask their STATUS in its log-in round
//! (`ImapOptions::status_ahead`).
//!
//! For a channel with named boxes (or none and no Patterns) the pairs are known; for a
//! Patterns channel the pairs of the last run are read back from the side files' names in
//! the SyncState folder. The result is a hint: a name that is wrong or gone only costs a
//! STATUS the server refuses, and a mailbox missing from it is asked in the STATUS round.

use crate::config::patterns::{box_list_name, name_to_open, state_file_path};
use crate::config::{ChannelConfig, ChannelRef, Config, Side, StoreConfig, SyncStateLocation};
use crate::store::SilentReporter;
use crate::store::maildir::{self, layout::Layout};
use crate::sync::listing_file;
use std::path::Path;

const SIDE_FILE_SUFFIX: &str = ".mailsync";

/// The store-side names (as `open_box` takes them) on `side` of the mailboxes whose pair has
/// a listing side file.
pub fn boxes_with_snapshots(
    config: &Config,
    channel: &ChannelConfig,
    selected: &ChannelRef,
    stores: [&StoreConfig; 2],
    side: Side,
) -> Vec<String> {
    let Some(pair_names) = named_pairs(channel, selected) else {
        return listed_side_files(config, channel, stores, side);
    };
    pair_names
        .iter()
        .filter_map(|names| {
            let far = name_to_open(stores[0].common(), &names[0]).ok()?;
            let near = name_to_open(stores[1].common(), &names[1]).ok()?;
            let state = state_file_path(config, channel, &far, &near, None).ok()?;
            listing_file::listing_path(Path::new(&state))
                .exists()
                .then(|| if side == Side::Far { far } else { near })
        })
        .collect()
}

/// The (far, near) mailbox names of a channel whose pairs are known without listing the
/// stores: the boxes named on the command line, or the channel's single pair when it has
/// no Patterns (an empty mailbox stands for INBOX). `None` for a Patterns channel.
pub fn named_pairs(channel: &ChannelConfig, selected: &ChannelRef) -> Option<Vec<[String; 2]>> {
    let prefixes = [&channel.sides[0].mailbox, &channel.sides[1].mailbox];
    if let Some(list) = &selected.boxes {
        Some(
            list.iter()
                .map(|element| {
                    let name = box_list_name(element);
                    [
                        format!("{}{name}", prefixes[0]),
                        format!("{}{name}", prefixes[1]),
                    ]
                })
                .collect(),
        )
    } else if channel.patterns.is_empty() {
        let single = |p: &str| {
            if p.is_empty() {
                "INBOX".to_string()
            } else {
                p.to_string()
            }
        };
        Some(vec![[single(prefixes[0]), single(prefixes[1])]])
    } else {
        None
    }
}

/// A Patterns channel: the side files in the SyncState folder that belong to the channel,
/// their store-side names recovered from the file names (`!` read back as `/`).
fn listed_side_files(
    config: &Config,
    channel: &ChannelConfig,
    stores: [&StoreConfig; 2],
    side: Side,
) -> Vec<String> {
    let (prefix, per_channel) = match (&channel.sync_state, &config.sync_state) {
        (Some(SyncStateLocation::Prefix(prefix)), _) => (prefix, true),
        (None, SyncStateLocation::Prefix(prefix)) => (prefix, false),
        _ => return side_files_in_boxes(config, channel, stores, side),
    };
    let Some((folder, base)) = prefix.rsplit_once('/') else {
        return Vec::new();
    };
    let folder = if folder.is_empty() { "/" } else { folder };
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let d = config.field_delimiter;
    let far_head = format!("{d}{}{d}", channel.sides[0].store);
    let near_head = format!("_{d}{}{d}", channel.sides[1].store);
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pair) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(base))
            .and_then(|n| n.strip_suffix(SIDE_FILE_SUFFIX))
        else {
            continue;
        };
        let name = if per_channel {
            // Only the near name is in the file name.
            let near = pair.replace('!', "/");
            if side == Side::Near {
                Some(near)
            } else {
                near.strip_prefix(channel.sides[1].mailbox.as_str())
                    .and_then(|canonical| {
                        let far = format!("{}{canonical}", channel.sides[0].mailbox);
                        name_to_open(stores[0].common(), &far).ok()
                    })
            }
        } else {
            pair.strip_prefix(&far_head)
                .and_then(|rest| rest.split_once(&near_head))
                .map(|(far, near)| if side == Side::Far { far } else { near }.replace('!', "/"))
        };
        names.extend(name);
    }
    names.sort();
    names
}

/// A Patterns channel keeping its state in the near Maildir boxes (`SyncState *`): the near
/// boxes holding a side file next to their state file, found by listing the near store.
fn side_files_in_boxes(
    config: &Config,
    channel: &ChannelConfig,
    stores: [&StoreConfig; 2],
    side: Side,
) -> Vec<String> {
    let StoreConfig::Maildir(near_store) = stores[1] else {
        return Vec::new();
    };
    let layout = Layout::from_config(near_store);
    let Ok(listed) = maildir::list::list(&layout, true, layout.path.is_some(), &SilentReporter)
    else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for near in listed {
        let Some(far) = near
            .strip_prefix(channel.sides[1].mailbox.as_str())
            .and_then(|canonical| {
                let far = format!("{}{canonical}", channel.sides[0].mailbox);
                name_to_open(stores[0].common(), &far).ok()
            })
        else {
            continue;
        };
        let has_side_file = layout.box_dir(&near).is_ok_and(|dir| {
            state_file_path(config, channel, &far, &near, Some(&dir))
                .is_ok_and(|state| listing_file::listing_path(Path::new(&state)).exists())
        });
        if has_side_file {
            names.push(if side == Side::Near { near } else { far });
        }
    }
    names.sort();
    names.dedup();
    names
}
