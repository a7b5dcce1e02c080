//! `-l` (the boxes each selected channel would sync) and `-ls` (the raw mailboxes of stores),
//! spec config-cli-stores §3.4.

use std::io::Write;
use std::rc::Rc;

use crate::config::patterns::{
    box_list_name, channel_boxes, channel_list_areas, listed_to_canonical,
};
use crate::config::{ChannelConfig, ChannelRef, Config, StoreConfig};
use crate::output;
use crate::store::imap::{ImapOptions, ImapStore};
use crate::store::maildir::{MaildirOptions, MaildirStore};
use crate::store::{ListAreas, Reporter, Store};

/// Passes store notices to the console with mbsync's verbosity rules.
pub struct ConsoleReporter;

impl Reporter for ConsoleReporter {
    fn notice(&self, text: &str) {
        output::notice(text);
    }
    fn warning(&self, text: &str) {
        output::warning(text);
    }
    fn debug(&self, text: &str) {
        output::info(text);
    }
}

/// Opens a store for listing (an IMAP store connects and logs in on first use).
fn open_store(config: &Config, store: &StoreConfig) -> Result<Box<dyn Store>, String> {
    match store {
        StoreConfig::Maildir(maildir) => {
            let options = MaildirOptions {
                fsync: config.fsync,
                ..Default::default()
            };
            MaildirStore::new(maildir, options, Rc::new(ConsoleReporter))
                .map(|store| Box::new(store) as Box<dyn Store>)
                .map_err(|error| error.message)
        }
        StoreConfig::Imap(imap) => {
            let account = imap.account_config(config).ok_or_else(|| {
                format!(
                    "Error: store '{}': no IMAP account '{}' defined",
                    imap.common.name, imap.account
                )
            })?;
            let options = ImapOptions {
                buffer_limit: config.buffer_limit,
                ..ImapOptions::default()
            };
            ImapStore::new(imap, account, options, Rc::new(ConsoleReporter))
                .map(|store| Box::new(store) as Box<dyn Store>)
                .map_err(|error| error.message)
        }
    }
}

fn print_line(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `-ls`: lists the named stores (all if none are named). Returns the exit status.
pub fn list_stores(config: &Config, names: &[String], out: &mut dyn Write) -> i32 {
    if config.stores.is_empty() {
        output::error("No stores defined.");
        return 1;
    }
    let mut chosen = Vec::new();
    let mut missing = false;
    for name in names {
        match config.store(name) {
            Some(store) => chosen.push(store),
            None => {
                output::error(&format!("No store named '{name}' defined."));
                missing = true;
            }
        }
    }
    if missing {
        return 1;
    }
    if names.is_empty() {
        chosen = config.stores.iter().collect();
    }
    let mut status = 0;
    for store in chosen {
        let listed = open_store(config, store)
            .and_then(|mut opened| opened.list(ListAreas::ALL).map_err(|error| error.message));
        match listed {
            Ok(names) => {
                print_line(out, &format!("===== {}:", store.name()));
                for name in names {
                    print_line(out, &name);
                }
            }
            Err(message) => {
                output::error(&message);
                status = 1;
            }
        }
    }
    status
}

/// Opens both stores of a channel (far first), as a sync would.
fn open_sides(config: &Config, channel: &ChannelConfig) -> Result<[Box<dyn Store>; 2], String> {
    let open = |index: usize| {
        let store_name = &channel.sides[index].store;
        let store = config
            .store(store_name)
            .ok_or_else(|| format!("Error: no store named '{store_name}' defined."))?;
        open_store(config, store)
    };
    let far = open(0)?;
    let near = open(1)?;
    Ok([far, near])
}

/// The canonical mailbox names of one side of a pattern channel.
fn side_names(
    config: &Config,
    channel: &ChannelConfig,
    index: usize,
    store: &mut dyn Store,
) -> Result<Vec<String>, String> {
    let areas = channel_list_areas(config, channel)[index];
    let listed = store.list(areas).map_err(|error| error.message)?;
    let common = config
        .store(&channel.sides[index].store)
        .map(|s| s.common().clone())
        .unwrap_or_default();
    listed_to_canonical(&common, &listed).map_err(|error| format!("Error: {error}"))
}

/// The lines `-l` prints for one channel reference.
fn channel_lines(config: &Config, reference: &ChannelRef) -> Result<Vec<String>, String> {
    let channel = config
        .channel(&reference.channel)
        .ok_or_else(|| format!("No channel or group named '{}' defined.", reference.channel))?;
    let [mut far_store, mut near_store] = open_sides(config, channel)?;
    let [far_prefix, near_prefix] = [&channel.sides[0].mailbox, &channel.sides[1].mailbox];
    let names: Vec<String> = match &reference.boxes {
        Some(boxes) => boxes.iter().map(|b| box_list_name(b).to_string()).collect(),
        None if channel.patterns.is_empty() => {
            let or_inbox = |name: &str| {
                if name.is_empty() {
                    "INBOX".to_string()
                } else {
                    name.to_string()
                }
            };
            return Ok(vec![format!(
                "{} <=> {}",
                or_inbox(far_prefix),
                or_inbox(near_prefix)
            )]);
        }
        None => {
            let far = side_names(config, channel, 0, far_store.as_mut())?;
            let near = side_names(config, channel, 1, near_store.as_mut())?;
            channel_boxes(channel, &far, &near)
                .into_iter()
                .map(|entry| entry.name)
                .collect()
        }
    };
    Ok(names
        .into_iter()
        .map(|name| {
            if far_prefix.is_empty() && near_prefix.is_empty() {
                name
            } else {
                format!("{far_prefix}{name} <=> {near_prefix}{name}")
            }
        })
        .collect())
}

/// `-l`: prints the boxes of each selected channel. Returns the exit status.
pub fn list_channels(config: &Config, selection: &[ChannelRef], out: &mut dyn Write) -> i32 {
    let mut status = 0;
    for reference in selection {
        match channel_lines(config, reference) {
            Ok(lines) => {
                if selection.len() > 1 {
                    print_line(out, &format!("{}:", reference.channel));
                }
                for line in lines {
                    print_line(out, &line);
                }
            }
            Err(message) => {
                output::error(&message);
                status = 1;
            }
        }
    }
    status
}
