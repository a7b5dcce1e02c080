//! Parsing the mbsync command line (spec config-cli-stores §3.1–§3.2, sync-semantics §6.1):
//! bundled letters, `-c FILE`, the operation options with their one-letter suffixes, `-D`
//! and `-T` letters, long options, `--`, and the usage errors.

use crate::config::OpSettings;
use crate::config::ops::{BoxOpTokens, Deprecated, OpTokens, OpType, OpsLocation};
use crate::output::Verbosity;
use crate::sync::{DebugFlags, TestHooks};

/// What the command line asks to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Sync,
    /// `-l`: list the boxes of the selected channels.
    List,
    /// `-ls`: list the raw mailboxes of stores.
    ListStores,
}

/// A parsed mbsync command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MbsyncArgs {
    /// `-c FILE` as given.
    pub config_file: Option<String>,
    pub mode: Mode,
    /// `-a`.
    pub all: bool,
    /// Channel/group arguments (store names with `-ls`).
    pub names: Vec<String>,
    /// `-V` given.
    pub verbose: bool,
    /// Number of `-q`.
    pub quiet: u32,
    /// Operation settings of the command line, already evaluated.
    pub ops: OpSettings,
    pub dry_run: bool,
    pub ext_exit: bool,
    pub hooks: TestHooks,
    pub debug: DebugFlags,
    /// Deprecation notices to print (stderr).
    pub notices: Vec<String>,
}

impl MbsyncArgs {
    /// The verbosity these options ask for (debug categories other than `C` force verbose).
    pub fn verbosity(&self) -> Verbosity {
        if self.debug.any_output() {
            return Verbosity::Verbose;
        }
        match self.quiet {
            0 if self.verbose => Verbosity::Verbose,
            0 => Verbosity::Normal,
            1 => Verbosity::Quiet,
            _ => Verbosity::VeryQuiet,
        }
    }
}

/// The outcome of parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<MbsyncArgs>),
    /// `-v`/`--version` (seen before any error).
    Version,
    /// `-h`/`--help`.
    Help,
}

/// A usage error: printed to stderr, exit status 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
}

impl UsageError {
    fn new(message: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
        }
    }
    /// The exit status for a usage error.
    pub fn exit_code(&self) -> i32 {
        1
    }
}

const NOTICE_MASTER_SLAVE: &str =
    "Notice: -master/-slave/m/s suffixes are deprecated; use -far/-near/f/n instead.";
const NOTICE_RENEW: &str = "Notice: --renew/-N are deprecated; use --upgrade/-u instead.";
const NOTICE_DELETE: &str = "Notice: --delete/-d are deprecated; use --gone/-g instead.";

struct State {
    args: MbsyncArgs,
    ops: OpTokens,
}

impl State {
    fn notice(&mut self, deprecated: Option<Deprecated>) {
        let text = match deprecated {
            Some(Deprecated::MasterSlave) => NOTICE_MASTER_SLAVE,
            Some(Deprecated::ReNew) => NOTICE_RENEW,
            Some(Deprecated::Delete) => NOTICE_DELETE,
            None => return,
        };
        if !self.args.notices.iter().any(|n| n == text) {
            self.args.notices.push(text.to_string());
        }
    }

    fn class(&mut self, letter: char) -> &mut BoxOpTokens {
        match letter {
            'C' => &mut self.ops.create,
            'R' => &mut self.ops.remove,
            'X' => &mut self.ops.expunge,
            _ => &mut self.ops.expunge_solo,
        }
    }
}

/// A type letter of `-n -o -u -g -f -N -d` and after `-L`/`-H`.
fn type_letter(letter: char) -> Option<(OpType, Option<Deprecated>)> {
    Some(match letter {
        'n' => (OpType::New, None),
        'o' => (OpType::Old, None),
        'u' => (OpType::Upgrade, None),
        'g' => (OpType::Gone, None),
        'f' => (OpType::Flags, None),
        'N' => (OpType::Upgrade, Some(Deprecated::ReNew)),
        'd' => (OpType::Gone, Some(Deprecated::Delete)),
        _ => return None,
    })
}

/// A type word of the long options (`new`, `renew`, `full`, …).
fn type_word(word: &str) -> Option<(OpType, Option<Deprecated>)> {
    Some(match word {
        "new" => (OpType::New, None),
        "old" => (OpType::Old, None),
        "upgrade" => (OpType::Upgrade, None),
        "gone" => (OpType::Gone, None),
        "flags" => (OpType::Flags, None),
        "full" => (OpType::Full, None),
        "renew" => (OpType::Upgrade, Some(Deprecated::ReNew)),
        "delete" => (OpType::Gone, Some(Deprecated::Delete)),
        _ => return None,
    })
}

fn debug_all() -> DebugFlags {
    DebugFlags {
        crash: true,
        driver: true,
        maildir: true,
        main: true,
        net: true,
        sync: true,
        ..Default::default()
    }
}

fn set_debug_letter(debug: &mut DebugFlags, letter: char) -> bool {
    match letter {
        'C' => debug.crash = true,
        'd' => debug.driver = true,
        'D' => {
            debug.driver = true;
            debug.driver_all = true;
        }
        'm' => debug.maildir = true,
        'M' => debug.main = true,
        'n' => debug.net = true,
        'N' => {
            debug.net = true;
            debug.net_all = true;
        }
        's' => debug.sync = true,
        _ => return false,
    }
    true
}

/// Parses the mbsync command line (without the program name).
pub fn parse_args(argv: &[String]) -> Result<Parsed, UsageError> {
    let mut state = State {
        args: MbsyncArgs::default(),
        ops: OpTokens::default(),
    };
    let mut index = 0;
    while index < argv.len() {
        let arg = &argv[index];
        index += 1;
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            if let Some(done) = parse_long(&mut state, long, argv, &mut index)? {
                return Ok(done);
            }
            continue;
        }
        let Some(letters) = arg.strip_prefix('-') else {
            index -= 1;
            break;
        };
        if letters.is_empty() {
            return Err(UsageError::new("Invalid option '-'"));
        }
        if let Some(done) = parse_letters(&mut state, letters, argv, &mut index)? {
            return Ok(done);
        }
    }
    state.args.names = argv[index..].to_vec();
    state.args.ops = state
        .ops
        .evaluate(OpsLocation::CommandLine)
        .map_err(|messages| UsageError::new(messages.join("\n")))?;
    Ok(Parsed::Run(Box::new(state.args)))
}

fn parse_long(
    state: &mut State,
    long: &str,
    argv: &[String],
    index: &mut usize,
) -> Result<Option<Parsed>, UsageError> {
    let unknown = || UsageError::new(format!("Unknown option '--{long}'"));
    let args = &mut state.args;
    match long {
        "all" => args.all = true,
        "list" => args.mode = Mode::List,
        "list-stores" => args.mode = Mode::ListStores,
        "config" => match argv.get(*index) {
            Some(file) => {
                args.config_file = Some(file.clone());
                *index += 1;
            }
            None => return Err(UsageError::new("--config requires an argument.")),
        },
        "noop" => {
            state.ops.sync.none = true;
        }
        "pull" => state.ops.sync.pull = true,
        "push" => state.ops.sync.push = true,
        "verbose" => args.verbose = true,
        "quiet" => args.quiet += 1,
        "dry-run" => args.dry_run = true,
        "ext-exit" => args.ext_exit = true,
        "version" => return Ok(Some(Parsed::Version)),
        "help" => return Ok(Some(Parsed::Help)),
        "debug" => {
            let all = debug_all();
            let debug = &mut args.debug;
            debug.crash |= all.crash;
            debug.driver |= all.driver;
            debug.maildir |= all.maildir;
            debug.main |= all.main;
            debug.net |= all.net;
            debug.sync |= all.sync;
        }
        _ => {
            if let Some(file) = long.strip_prefix("config=") {
                args.config_file = Some(file.to_string());
                return Ok(None);
            }
            if let Some(category) = long.strip_prefix("debug-") {
                let letter = match category {
                    "crash" => 'C',
                    "driver" => 'd',
                    "driver-all" => 'D',
                    "maildir" => 'm',
                    "main" => 'M',
                    "net" => 'n',
                    "net-all" => 'N',
                    "sync" => 's',
                    _ => return Err(unknown()),
                };
                set_debug_letter(&mut args.debug, letter);
                return Ok(None);
            }
            if let Some((ty, deprecated)) = type_word(long) {
                state.ops.sync.add_simple(ty);
                state.notice(deprecated);
                return Ok(None);
            }
            for (direction, near) in [("pull-", true), ("push-", false)] {
                if let Some(word) = long.strip_prefix(direction) {
                    let (ty, deprecated) = type_word(word).ok_or_else(unknown)?;
                    state.ops.sync.add_compound(near, ty);
                    state.notice(deprecated);
                    return Ok(None);
                }
            }
            for (name, letter) in [
                ("expunge-solo", 'x'),
                ("create", 'C'),
                ("remove", 'R'),
                ("expunge", 'X'),
            ] {
                if long.strip_prefix("no-") == Some(name) {
                    let class = state.class(letter);
                    class.specified = true;
                    class.none = true;
                    return Ok(None);
                }
                let Some(suffix) = long.strip_prefix(name) else {
                    continue;
                };
                let word = match suffix {
                    "" => "both",
                    "-far" => "far",
                    "-near" => "near",
                    "-master" => "master",
                    "-slave" => "slave",
                    _ => continue,
                };
                let deprecated = state.class(letter).add_word(word).flatten();
                state.notice(deprecated);
                return Ok(None);
            }
            return Err(unknown());
        }
    }
    Ok(None)
}

fn parse_letters(
    state: &mut State,
    letters: &str,
    argv: &[String],
    index: &mut usize,
) -> Result<Option<Parsed>, UsageError> {
    let chars: Vec<char> = letters.chars().collect();
    let mut pos = 0;
    while pos < chars.len() {
        let letter = chars[pos];
        pos += 1;
        match letter {
            'a' => state.args.all = true,
            'l' => {
                if chars.get(pos) == Some(&'s') {
                    pos += 1;
                    state.args.mode = Mode::ListStores;
                } else {
                    state.args.mode = Mode::List;
                }
            }
            'c' => match argv.get(*index) {
                Some(file) => {
                    state.args.config_file = Some(file.clone());
                    *index += 1;
                }
                None => return Err(UsageError::new("-c requires an argument.")),
            },
            'C' | 'R' | 'X' | 'x' => {
                let word = match chars.get(pos) {
                    Some('f') => Some("far"),
                    Some('n') => Some("near"),
                    Some('m') => Some("master"),
                    Some('s') => Some("slave"),
                    Some('-') => None,
                    _ => Some("both"),
                };
                if word != Some("both") {
                    pos += 1;
                }
                let class = state.class(letter);
                class.specified = true;
                if let Some(word) = word {
                    let deprecated = class.add_word(word).flatten();
                    state.notice(deprecated);
                }
            }
            'L' | 'H' => {
                let near = letter == 'L';
                let mut compound = false;
                while let Some((ty, deprecated)) = chars.get(pos).and_then(|c| type_letter(*c)) {
                    pos += 1;
                    compound = true;
                    state.ops.sync.add_compound(near, ty);
                    state.notice(deprecated);
                }
                if !compound {
                    if near {
                        state.ops.sync.pull = true;
                    } else {
                        state.ops.sync.push = true;
                    }
                }
            }
            'F' => {
                state.ops.sync.pull = true;
                state.ops.sync.push = true;
            }
            '0' => state.ops.sync.none = true,
            'V' => state.args.verbose = true,
            'q' => state.args.quiet += 1,
            'y' => state.args.dry_run = true,
            'e' => state.args.ext_exit = true,
            'v' => return Ok(Some(Parsed::Version)),
            'h' => return Ok(Some(Parsed::Help)),
            'D' => {
                let rest = &chars[pos..];
                pos = chars.len();
                if rest.is_empty() {
                    let all = debug_all();
                    let debug = &mut state.args.debug;
                    debug.crash |= all.crash;
                    debug.driver |= all.driver;
                    debug.maildir |= all.maildir;
                    debug.main |= all.main;
                    debug.net |= all.net;
                    debug.sync |= all.sync;
                }
                for &flag in rest {
                    if !set_debug_letter(&mut state.args.debug, flag) {
                        return Err(UsageError::new(format!("Unknown -D flag '{flag}'")));
                    }
                }
            }
            'T' => {
                let rest = &chars[pos..];
                pos = chars.len();
                parse_test_letters(&mut state.args.hooks, rest)?;
            }
            _ => {
                if let Some((ty, deprecated)) = type_letter(letter) {
                    state.ops.sync.add_simple(ty);
                    state.notice(deprecated);
                } else {
                    return Err(UsageError::new(format!("Unknown option '-{letter}'")));
                }
            }
        }
    }
    Ok(None)
}

fn parse_test_letters(hooks: &mut TestHooks, letters: &[char]) -> Result<(), UsageError> {
    let mut pos = 0;
    while pos < letters.len() {
        let letter = letters[pos];
        pos += 1;
        match letter {
            'a' => hooks.async_far = true,
            'A' => hooks.async_both = true,
            'j' => hooks.keep_journal = true,
            'J' => hooks.journal_end = true,
            'u' => hooks.withhold_uids = true,
            'x' => hooks.no_expunge = true,
            'z' => hooks.no_fresh_wait = true,
            's' => {
                let digits: String = letters[pos..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                pos += digits.len();
                hooks.step_limit = digits.parse().unwrap_or(0);
            }
            _ => return Err(UsageError::new(format!("Unknown -T flag '{letter}'"))),
        }
    }
    Ok(())
}
