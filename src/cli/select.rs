//! Turning channel/group arguments into the list of channels to process (spec
//! config-cli-stores §3.3): groups expand to their members, `chan:box,…` overrides Patterns,
//! `-a` takes every channel.

use crate::config::patterns::parse_channel_ref;
use crate::config::{ChannelRef, Config};

/// Resolves the selection. On failure returns every error line (exit status 1).
pub fn select_channels(
    config: &Config,
    all: bool,
    names: &[String],
) -> Result<Vec<ChannelRef>, Vec<String>> {
    if config.channels.is_empty() {
        return Err(vec!["No channels defined. Try 'man mbsync'".to_string()]);
    }
    if all {
        return Ok(config
            .channels
            .iter()
            .map(|channel| ChannelRef {
                channel: channel.name.clone(),
                boxes: None,
            })
            .collect());
    }
    if names.is_empty() {
        return Err(vec!["No channel specified. Try 'mbsync -h'".to_string()]);
    }
    let mut selection = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let refs = match config.group(name) {
            Some(group) => group.members.clone(),
            None => vec![parse_channel_ref(name)],
        };
        for reference in refs {
            match config.channel(&reference.channel) {
                None => errors.push(format!(
                    "No channel or group named '{}' defined.",
                    reference.channel
                )),
                Some(channel) if reference.boxes.is_some() && channel.patterns.is_empty() => errors
                    .push(format!(
                        "Cannot override mailbox in channel '{}' - no Patterns.",
                        channel.name
                    )),
                Some(_) => selection.push(reference),
            }
        }
    }
    if errors.is_empty() {
        Ok(selection)
    } else {
        Err(errors)
    }
}
