//! Operation settings (spec config-cli-stores §2.4, sync-semantics §6.1): collecting the
//! `Sync`/`Create`/`Remove`/`Expunge`/`ExpungeSolo` tokens of one level (a Channel section,
//! the global section or the command line), evaluating them into [`OpSettings`], and the
//! precedence that yields a channel's effective per-side operations.

use std::fmt;

use super::types::{BoxOpSpec, ChannelConfig, Config, OpSettings, OpTypes, SideOps, SyncSpec};

/// Where a specification was given; its `Display` is the `<where>` of the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsLocation<'a> {
    Channel(&'a str),
    Global,
    CommandLine,
}

impl fmt::Display for OpsLocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpsLocation::Channel(name) => write!(f, "in Channel '{name}'"),
            OpsLocation::Global => f.write_str("in global config section"),
            OpsLocation::CommandLine => f.write_str("on the command line"),
        }
    }
}

/// A message type as named by a Sync token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpType {
    New,
    Old,
    Upgrade,
    Gone,
    Flags,
    /// `Full` / `All`: all five types.
    Full,
}

impl OpType {
    fn as_types(self) -> OpTypes {
        let mut types = OpTypes::NONE;
        match self {
            OpType::New => types.new = true,
            OpType::Old => types.old = true,
            OpType::Upgrade => types.upgrade = true,
            OpType::Gone => types.gone = true,
            OpType::Flags => types.flags = true,
            OpType::Full => types = OpTypes::FULL,
        }
        types
    }
}

fn union(a: OpTypes, b: OpTypes) -> OpTypes {
    OpTypes {
        new: a.new || b.new,
        old: a.old || b.old,
        upgrade: a.upgrade || b.upgrade,
        gone: a.gone || b.gone,
        flags: a.flags || b.flags,
    }
}

fn intersects(a: OpTypes, b: OpTypes) -> bool {
    (a.new && b.new)
        || (a.old && b.old)
        || (a.upgrade && b.upgrade)
        || (a.gone && b.gone)
        || (a.flags && b.flags)
}

/// The Sync tokens of one level, as collected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncTokens {
    /// `None`/`Noop` was given.
    pub none: bool,
    pub pull: bool,
    pub push: bool,
    /// Simple types.
    pub simple: OpTypes,
    /// Types of compound tokens: `[Push<T> (far), Pull<T> (near)]`.
    pub compound: [OpTypes; 2],
}

impl SyncTokens {
    fn is_empty(&self) -> bool {
        *self == SyncTokens::default()
    }

    pub fn add_simple(&mut self, ty: OpType) {
        self.simple = union(self.simple, ty.as_types());
    }
    /// `Pull<T>` (near = true) or `Push<T>`.
    pub fn add_compound(&mut self, near: bool, ty: OpType) {
        let index = usize::from(near);
        self.compound[index] = union(self.compound[index], ty.as_types());
    }

    /// Parses one Sync token (case-insensitive). Returns `false` if it is not one; the
    /// second value is the deprecated word used (`ReNew`, `Delete`), if any.
    pub fn add_token(&mut self, token: &str) -> (bool, Option<Deprecated>) {
        let lower = token.to_ascii_lowercase();
        match lower.as_str() {
            "none" | "noop" => {
                self.none = true;
                return (true, None);
            }
            "pull" => {
                self.pull = true;
                return (true, None);
            }
            "push" => {
                self.push = true;
                return (true, None);
            }
            _ => {}
        }
        let (compound, word) = if let Some(rest) = lower.strip_prefix("pull") {
            (Some(true), rest)
        } else if let Some(rest) = lower.strip_prefix("push") {
            (Some(false), rest)
        } else {
            (None, lower.as_str())
        };
        let Some((ty, deprecated)) = type_word(word, compound.is_none()) else {
            return (false, None);
        };
        match compound {
            Some(near) => self.add_compound(near, ty),
            None => self.add_simple(ty),
        }
        (true, deprecated)
    }

    /// Evaluates the tokens (§2.4). `Ok(None)` = this level does not specify Sync.
    pub fn evaluate(&self, location: OpsLocation<'_>) -> Result<Option<SyncSpec>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let default = OpTypes::DEFAULT;
        let [comp_far, comp_near] = self.compound;
        let conflicting = || format!("Conflicting Sync options specified {location}.");
        let redundant = || format!("Redundant Sync options specified {location}.");
        let invalid =
            || format!("Invalid combination of simple and compound Sync options {location}.");
        if !comp_far.is_empty() || !comp_near.is_empty() {
            if self.none {
                return Err(conflicting());
            }
            if intersects(self.simple, union(comp_far, comp_near)) {
                return Err(redundant());
            }
            let (far, near) = if self.pull {
                if self.push || !self.simple.is_empty() {
                    return Err(invalid());
                }
                if intersects(comp_near, default) {
                    return Err(redundant());
                }
                (comp_far, union(comp_near, default))
            } else if self.push {
                if !self.simple.is_empty() {
                    return Err(invalid());
                }
                if intersects(comp_far, default) {
                    return Err(redundant());
                }
                (union(comp_far, default), comp_near)
            } else {
                (union(comp_far, self.simple), union(comp_near, self.simple))
            };
            return Ok(Some(SyncSpec { types: [far, near] }));
        }
        if self.pull || self.push || !self.simple.is_empty() {
            if self.none {
                return Err(conflicting());
            }
            let types = if self.simple.is_empty() {
                default
            } else {
                self.simple
            };
            let (pull, push) = if self.pull || self.push {
                (self.pull, self.push)
            } else {
                (true, true)
            };
            let pick = |on: bool| if on { types } else { OpTypes::NONE };
            return Ok(Some(SyncSpec {
                types: [pick(push), pick(pull)],
            }));
        }
        Ok(Some(SyncSpec {
            types: [OpTypes::NONE; 2],
        }))
    }
}

/// A deprecated word that was accepted; the caller prints the notice once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deprecated {
    /// `ReNew`, `--renew`, `-N`.
    ReNew,
    /// `Delete`, `--delete`, `-d`.
    Delete,
    /// `Master`/`Slave` and the m/s suffixes.
    MasterSlave,
}

fn type_word(word: &str, simple: bool) -> Option<(OpType, Option<Deprecated>)> {
    Some(match word {
        "new" => (OpType::New, None),
        "old" => (OpType::Old, None),
        "upgrade" => (OpType::Upgrade, None),
        "renew" => (OpType::Upgrade, Some(Deprecated::ReNew)),
        "gone" => (OpType::Gone, None),
        "delete" => (OpType::Gone, Some(Deprecated::Delete)),
        "flags" => (OpType::Flags, None),
        "full" => (OpType::Full, None),
        "all" if simple => (OpType::Full, None),
        _ => return None,
    })
}

/// The tokens of one box operation class (`Create`, `Remove`, `Expunge`, `ExpungeSolo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoxOpTokens {
    /// The class was mentioned at all (also `-X-`, which enables nothing).
    pub specified: bool,
    pub none: bool,
    pub both: bool,
    pub far: bool,
    pub near: bool,
}

impl BoxOpTokens {
    /// Parses one argument (`None`, `Far`, `Near`, `Both`, legacy `Master`/`Slave`;
    /// case-insensitive). Returns `None` if the word is not one of these.
    pub fn add_word(&mut self, word: &str) -> Option<Option<Deprecated>> {
        let mut deprecated = None;
        match word.to_ascii_lowercase().as_str() {
            "none" => self.none = true,
            "both" => self.both = true,
            "far" => self.far = true,
            "near" => self.near = true,
            "master" => {
                self.far = true;
                deprecated = Some(Deprecated::MasterSlave);
            }
            "slave" => {
                self.near = true;
                deprecated = Some(Deprecated::MasterSlave);
            }
            _ => return None,
        }
        self.specified = true;
        Some(deprecated)
    }

    /// Evaluates the class; `class` is `Create`, `Remove`, `Expunge` or `ExpungeSolo`.
    pub fn evaluate(
        &self,
        class: &str,
        location: OpsLocation<'_>,
    ) -> Result<Option<BoxOpSpec>, String> {
        if !self.specified {
            return Ok(None);
        }
        if self.none && (self.both || self.far || self.near) {
            return Err(format!("Conflicting {class} options specified {location}."));
        }
        if self.both && (self.far || self.near) {
            return Err(format!("Redundant {class} options specified {location}."));
        }
        Ok(Some(BoxOpSpec {
            far: self.both || self.far,
            near: self.both || self.near,
        }))
    }
}

/// All operation tokens of one level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpTokens {
    pub sync: SyncTokens,
    pub create: BoxOpTokens,
    pub remove: BoxOpTokens,
    pub expunge: BoxOpTokens,
    pub expunge_solo: BoxOpTokens,
}

impl OpTokens {
    /// Evaluates every class at this level (§2.4), collecting all error messages.
    pub fn evaluate(&self, location: OpsLocation<'_>) -> Result<OpSettings, Vec<String>> {
        fn keep<T>(errors: &mut Vec<String>, result: Result<Option<T>, String>) -> Option<T> {
            result.unwrap_or_else(|message| {
                errors.push(message);
                None
            })
        }
        let mut errors = Vec::new();
        let settings = OpSettings {
            sync: keep(&mut errors, self.sync.evaluate(location)),
            create: keep(&mut errors, self.create.evaluate("Create", location)),
            remove: keep(&mut errors, self.remove.evaluate("Remove", location)),
            expunge: keep(&mut errors, self.expunge.evaluate("Expunge", location)),
            expunge_solo: keep(
                &mut errors,
                self.expunge_solo.evaluate("ExpungeSolo", location),
            ),
        };
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }
}

/// The effective operations of a channel, `[far, near]`: per class the command line, else the
/// channel, else the global section, else the default (types New+Upgrade+Gone+Flags both
/// ways; box operations none). When Expunge and ExpungeSolo are both set for a side,
/// ExpungeSolo wins (see [`cmdline_expunge_conflict`] for the command-line error).
pub fn effective_ops(
    config: &Config,
    channel: &ChannelConfig,
    cmdline: &OpSettings,
) -> [SideOps; 2] {
    let levels = [cmdline, &channel.ops, &config.ops];
    let sync = levels
        .iter()
        .find_map(|level| level.sync)
        .unwrap_or(SyncSpec {
            types: [OpTypes::DEFAULT; 2],
        });
    let pick = |class: fn(&OpSettings) -> Option<BoxOpSpec>| {
        levels
            .iter()
            .find_map(|level| class(level))
            .unwrap_or_default()
    };
    let create = pick(|s| s.create);
    let remove = pick(|s| s.remove);
    let expunge = pick(|s| s.expunge);
    let expunge_solo = pick(|s| s.expunge_solo);
    let side = |index: usize, on: fn(&BoxOpSpec) -> bool| {
        let solo = on(&expunge_solo);
        SideOps {
            types: sync.types[index],
            create: on(&create),
            remove: on(&remove),
            expunge: on(&expunge) && !solo,
            expunge_solo: solo,
        }
    };
    [side(0, |spec| spec.far), side(1, |spec| spec.near)]
}

/// The command-line check of §2.4: Expunge and ExpungeSolo both given on the command line
/// for one side is an error for every channel. The message names the side's *store* where
/// the channel would be expected, as 1.5.1 does:
/// `Specified both Expunge and ExpungeSolo for far side of Channel '<store>'.`
pub fn cmdline_expunge_conflict(channel: &ChannelConfig, cmdline: &OpSettings) -> Option<String> {
    let (Some(expunge), Some(solo)) = (cmdline.expunge, cmdline.expunge_solo) else {
        return None;
    };
    let (index, label) = if expunge.far && solo.far {
        (0, "far side")
    } else if expunge.near && solo.near {
        (1, "near side")
    } else {
        return None;
    };
    Some(format!(
        "Specified both Expunge and ExpungeSolo for {label} of Channel '{}'.",
        channel.sides[index].store
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync_of(tokens: &[&str]) -> Result<Option<SyncSpec>, String> {
        let mut sync = SyncTokens::default();
        for token in tokens {
            assert!(sync.add_token(token).0, "token {token}");
        }
        sync.evaluate(OpsLocation::Channel("c"))
    }

    fn types(letters: &str) -> OpTypes {
        OpTypes {
            new: letters.contains('n'),
            old: letters.contains('o'),
            upgrade: letters.contains('u'),
            gone: letters.contains('g'),
            flags: letters.contains('f'),
        }
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            sync_of(&["Pull", "New", "Flags"]),
            Ok(Some(SyncSpec {
                types: [types(""), types("nf")]
            }))
        );
        assert_eq!(
            sync_of(&["New", "Gone"]),
            Ok(Some(SyncSpec {
                types: [types("ng"), types("ng")]
            }))
        );
        assert_eq!(
            sync_of(&["Push"]),
            Ok(Some(SyncSpec {
                types: [types("nugf"), types("")]
            }))
        );
        assert_eq!(
            sync_of(&["PullNew", "PullGone", "Push"]),
            Ok(Some(SyncSpec {
                types: [types("nugf"), types("ng")]
            }))
        );
        assert_eq!(
            sync_of(&["PullNew", "Pull"]),
            Err("Redundant Sync options specified in Channel 'c'.".into())
        );
        assert_eq!(
            sync_of(&["None", "Pull"]),
            Err("Conflicting Sync options specified in Channel 'c'.".into())
        );
        assert_eq!(sync_of(&[]), Ok(None));
        assert_eq!(
            sync_of(&["Noop"]),
            Ok(Some(SyncSpec {
                types: [types(""), types("")]
            }))
        );
    }

    #[test]
    fn compound_rules() {
        assert_eq!(
            sync_of(&["PullNew", "None"]),
            Err("Conflicting Sync options specified in Channel 'c'.".into())
        );
        assert_eq!(
            sync_of(&["PullNew", "New"]),
            Err("Redundant Sync options specified in Channel 'c'.".into())
        );
        assert_eq!(
            sync_of(&["PullNew", "Pull", "Push"]),
            Err("Invalid combination of simple and compound Sync options in Channel 'c'.".into())
        );
        assert_eq!(
            sync_of(&["PushOld", "Push", "Gone"]),
            Err("Invalid combination of simple and compound Sync options in Channel 'c'.".into())
        );
        assert_eq!(
            sync_of(&["PullOld", "Pull"]),
            Ok(Some(SyncSpec {
                types: [types(""), types("nougf")]
            }))
        );
        assert_eq!(
            sync_of(&["PushFlags", "Old"]),
            Ok(Some(SyncSpec {
                types: [types("fo"), types("o")]
            }))
        );
        assert_eq!(
            sync_of(&["Full"]),
            Ok(Some(SyncSpec {
                types: [types("nougf"), types("nougf")]
            }))
        );
        assert_eq!(
            sync_of(&["PullFull", "PUSHRENEW"]),
            Ok(Some(SyncSpec {
                types: [types("u"), types("nougf")]
            }))
        );
        let mut sync = SyncTokens::default();
        assert_eq!(
            sync.add_token("PushDelete"),
            (true, Some(Deprecated::Delete))
        );
        assert_eq!(sync.add_token("pullall"), (false, None));
        assert_eq!(sync.add_token("bogus"), (false, None));
    }

    #[test]
    fn box_op_conflicts() {
        let eval = |words: &[&str]| {
            let mut tokens = BoxOpTokens::default();
            for word in words {
                tokens.add_word(word).expect("known word");
            }
            tokens.evaluate("Create", OpsLocation::Global)
        };
        assert_eq!(eval(&[]), Ok(None));
        assert_eq!(
            eval(&["None"]),
            Ok(Some(BoxOpSpec {
                far: false,
                near: false
            }))
        );
        assert_eq!(
            eval(&["far", "NEAR"]),
            Ok(Some(BoxOpSpec {
                far: true,
                near: true
            }))
        );
        assert_eq!(
            eval(&["Slave"]),
            Ok(Some(BoxOpSpec {
                far: false,
                near: true
            }))
        );
        assert_eq!(
            eval(&["None", "Far"]),
            Err("Conflicting Create options specified in global config section.".into())
        );
        assert_eq!(
            eval(&["Both", "Near"]),
            Err("Redundant Create options specified in global config section.".into())
        );
        assert_eq!(BoxOpTokens::default().add_word("sideways"), None);
    }

    fn channel_with(ops: OpSettings) -> ChannelConfig {
        use super::super::types::*;
        ChannelConfig {
            name: "c".into(),
            sides: [
                ChannelSide {
                    store: "far-store".into(),
                    mailbox: String::new(),
                },
                ChannelSide {
                    store: "near-store".into(),
                    mailbox: String::new(),
                },
            ],
            patterns: vec![],
            ops,
            copy_arrival_date: false,
            max_delete_percent: DEFAULT_MAX_DELETE_PERCENT,
            max_messages: 0,
            expire_side: Side::Near,
            expire_unread: ExpireUnread::Unset,
            sync_state: None,
            line: 1,
        }
    }

    fn config_with(ops: OpSettings) -> Config {
        Config {
            file: "rc".into(),
            fsync: true,
            field_delimiter: ':',
            buffer_limit: 1,
            ops,
            sync_state: super::super::types::SyncStateLocation::InBox,
            accounts: vec![],
            stores: vec![],
            channels: vec![],
            groups: vec![],
        }
    }

    #[test]
    fn precedence_per_class() {
        let both = BoxOpSpec {
            far: true,
            near: true,
        };
        let near = BoxOpSpec {
            far: false,
            near: true,
        };
        let far = BoxOpSpec {
            far: true,
            near: false,
        };
        let global = OpSettings {
            create: Some(both),
            expunge: Some(both),
            remove: Some(near),
            ..Default::default()
        };
        let channel = channel_with(OpSettings {
            create: Some(near),
            sync: Some(SyncSpec {
                types: [types(""), types("n")],
            }),
            ..Default::default()
        });
        let cmdline = OpSettings {
            expunge: Some(far),
            ..Default::default()
        };
        let [f, n] = effective_ops(&config_with(global), &channel, &cmdline);
        assert_eq!((f.create, n.create), (false, true));
        assert_eq!((f.remove, n.remove), (false, true));
        assert_eq!((f.expunge, n.expunge), (true, false));
        assert_eq!((f.types, n.types), (types(""), types("n")));
        let [f, n] = effective_ops(
            &config_with(OpSettings::default()),
            &channel_with(OpSettings::default()),
            &OpSettings::default(),
        );
        assert_eq!(f.types, OpTypes::DEFAULT);
        assert_eq!(n.types, OpTypes::DEFAULT);
        assert!(!f.create && !n.remove && !f.expunge && !n.expunge_solo);
    }

    #[test]
    fn expunge_solo_wins_and_cmdline_conflict() {
        let both = BoxOpSpec {
            far: true,
            near: true,
        };
        let near = BoxOpSpec {
            far: false,
            near: true,
        };
        let channel = channel_with(OpSettings {
            expunge: Some(both),
            expunge_solo: Some(near),
            ..Default::default()
        });
        let [f, n] = effective_ops(
            &config_with(OpSettings::default()),
            &channel,
            &OpSettings::default(),
        );
        assert!(f.expunge && !f.expunge_solo);
        assert!(!n.expunge && n.expunge_solo);
        let cmdline = OpSettings {
            expunge: Some(both),
            expunge_solo: Some(near),
            ..Default::default()
        };
        assert_eq!(
            cmdline_expunge_conflict(&channel, &cmdline),
            Some(
                "Specified both Expunge and ExpungeSolo for near side of Channel 'near-store'."
                    .into()
            )
        );
        assert_eq!(
            cmdline_expunge_conflict(&channel, &OpSettings::default()),
            None
        );
    }
}
