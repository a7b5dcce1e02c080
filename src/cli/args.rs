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
    /// `--allow-mass-delete` (mailsync extension): propagate deletions even where the
    /// mass-deletion guard would refuse them, for this run.
    pub allow_mass_delete: bool,
    /// `--max-connections N` (mailsync extension): overrides every store's MaxConnections.
    pub max_connections: Option<u32>,
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
        "allow-mass-delete" => args.allow_mass_delete = true,
        "max-connections" => {
            let limit = crate::config::MAX_CONNECTIONS_LIMIT;
            let count = argv
                .get(*index)
                .and_then(|value| value.parse::<u32>().ok())
                .filter(|count| (1..=limit).contains(count))
                .ok_or_else(|| {
                    UsageError::new(format!(
                        "--max-connections requires a number from 1 to {limit}."
                    ))
                })?;
            args.max_connections = Some(count);
            *index += 1;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BoxOpSpec, OpTypes, SyncSpec};

    fn run(args: &[&str]) -> MbsyncArgs {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse_args(&argv) {
            Ok(Parsed::Run(parsed)) => *parsed,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse_args(&argv) {
            Err(error) => {
                assert_eq!(error.exit_code(), 1);
                error.message
            }
            other => panic!("{args:?} gave {other:?}"),
        }
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

    fn sync(args: &[&str]) -> Option<SyncSpec> {
        run(args).ops.sync
    }

    fn both(far: &str, near: &str) -> Option<SyncSpec> {
        Some(SyncSpec {
            types: [types(far), types(near)],
        })
    }

    const FAR: BoxOpSpec = BoxOpSpec {
        far: true,
        near: false,
    };
    const NEAR: BoxOpSpec = BoxOpSpec {
        far: false,
        near: true,
    };
    const BOTH: BoxOpSpec = BoxOpSpec {
        far: true,
        near: true,
    };
    const NONE: BoxOpSpec = BoxOpSpec {
        far: false,
        near: false,
    };

    #[test]
    fn selection_and_mode() {
        let parsed = run(&["-a", "x"]);
        assert!(parsed.all);
        assert_eq!(parsed.names, vec!["x"]);
        assert!(run(&["--all"]).all);
        assert_eq!(run(&["-l", "c"]).mode, Mode::List);
        assert_eq!(run(&["--list"]).mode, Mode::List);
        assert_eq!(run(&["-ls", "s1", "s2"]).mode, Mode::ListStores);
        assert_eq!(run(&["-ls", "s1", "s2"]).names, vec!["s1", "s2"]);
        assert_eq!(run(&["--list-stores"]).mode, Mode::ListStores);
        assert_eq!(run(&[]).mode, Mode::Sync);
    }

    #[test]
    fn options_end_at_first_name_or_double_dash() {
        assert_eq!(run(&["c", "-V"]).names, vec!["c", "-V"]);
        assert!(!run(&["c", "-V"]).verbose);
        assert_eq!(run(&["-V", "--", "-x", "y"]).names, vec!["-x", "y"]);
    }

    #[test]
    fn config_file() {
        assert_eq!(run(&["-c", "rc", "ch"]).config_file.as_deref(), Some("rc"));
        let parsed = run(&["-cV", "rc", "ch"]);
        assert_eq!(parsed.config_file.as_deref(), Some("rc"));
        assert!(parsed.verbose);
        assert_eq!(parsed.names, vec!["ch"]);
        assert_eq!(
            run(&["--config", "a/rc"]).config_file.as_deref(),
            Some("a/rc")
        );
        assert_eq!(run(&["--config=b"]).config_file.as_deref(), Some("b"));
        assert_eq!(error(&["-c"]), "-c requires an argument.");
        assert_eq!(error(&["--config"]), "--config requires an argument.");
    }

    /// Asserts the Sync operation types (far, near) parsed from each argument list.
    fn assert_sync_types(cases: &[(&[&str], &str, &str)]) {
        for &(args, far, near) in cases {
            assert_eq!(sync(args), both(far, near), "{args:?}");
        }
    }

    #[test]
    fn simple_types() {
        assert_sync_types(&[
            (&["-n"], "n", "n"),
            (&["-o"], "o", "o"),
            (&["-u"], "u", "u"),
            (&["-g"], "g", "g"),
            (&["-f"], "f", "f"),
            (&["-nf"], "nf", "nf"),
            (&["--new", "--old", "--upgrade"], "nou", "nou"),
            (&["--gone", "--flags"], "gf", "gf"),
            (&["--full"], "nougf", "nougf"),
            (&["-F"], "nugf", "nugf"),
            (&["-0"], "", ""),
            (&["--noop"], "", ""),
        ]);
        assert_eq!(sync(&[]), None);
    }

    #[test]
    fn deprecated_types_give_notices() {
        let parsed = run(&["-N", "--renew"]);
        assert_eq!(parsed.ops.sync, both("u", "u"));
        assert_eq!(
            parsed.notices,
            vec!["Notice: --renew/-N are deprecated; use --upgrade/-u instead."]
        );
        let parsed = run(&["-d"]);
        assert_eq!(parsed.ops.sync, both("g", "g"));
        assert_eq!(
            parsed.notices,
            vec!["Notice: --delete/-d are deprecated; use --gone/-g instead."]
        );
        assert_eq!(run(&["--delete"]).ops.sync, both("g", "g"));
    }

    #[test]
    fn directions() {
        assert_sync_types(&[
            (&["-L"], "", "nugf"),
            (&["--pull"], "", "nugf"),
            (&["-H"], "nugf", ""),
            (&["--push"], "nugf", ""),
            (&["-L", "-n"], "", "n"),
            (&["-Lnf"], "", "nf"),
            (&["-Hg"], "g", ""),
            (&["-Ln", "-Hf"], "f", "n"),
            (&["--pull-new", "--push-flags"], "f", "n"),
            (&["--pull-full"], "", "nougf"),
            (&["--push-old", "--push-upgrade", "--push-gone"], "oug", ""),
            (&["--pull-renew"], "", "u"),
            (&["--pull-delete"], "", "g"),
            (&["-LN"], "", "u"),
        ]);
        assert_eq!(
            error(&["--pull-sideways"]),
            "Unknown option '--pull-sideways'"
        );
    }

    /// The Create, Remove, Expunge and ExpungeSolo settings parsed from `args`.
    fn box_ops(args: &[&str]) -> [Option<BoxOpSpec>; 4] {
        let ops = run(args).ops;
        [ops.create, ops.remove, ops.expunge, ops.expunge_solo]
    }

    #[test]
    fn box_operations() {
        let cases: [(&[&str], _); 5] = [
            (
                &["-C", "-Rf", "-Xn", "-x-"],
                [Some(BOTH), Some(FAR), Some(NEAR), Some(NONE)],
            ),
            (
                &[
                    "--create-far",
                    "--remove-near",
                    "--expunge",
                    "--expunge-solo-far",
                ],
                [Some(FAR), Some(NEAR), Some(BOTH), Some(FAR)],
            ),
            (
                &[
                    "--no-create",
                    "--no-remove",
                    "--no-expunge",
                    "--no-expunge-solo",
                ],
                [Some(NONE); 4],
            ),
            (
                &["--remove", "--expunge-solo"],
                [None, Some(BOTH), None, Some(BOTH)],
            ),
            (&["-xn"], [None, None, None, Some(NEAR)]),
        ];
        for (args, want) in cases {
            assert_eq!(box_ops(args), want, "{args:?}");
        }
    }

    #[test]
    fn one_suffix_letter_only() {
        let parsed = run(&["-Cfn"]);
        assert_eq!(parsed.ops.create, Some(FAR));
        assert_eq!(parsed.ops.sync, both("n", "n"));
        let parsed = run(&["-CV"]);
        assert_eq!(parsed.ops.create, Some(BOTH));
        assert!(parsed.verbose);
        assert_eq!(run(&["-X-", "--expunge-near"]).ops.expunge, Some(NEAR));
    }

    #[test]
    fn legacy_suffixes() {
        let args = ["-Cm", "-Rs", "--expunge-master", "--expunge-solo-slave"];
        assert_eq!(
            box_ops(&args),
            [Some(FAR), Some(NEAR), Some(FAR), Some(NEAR)]
        );
        let parsed = run(&args);
        assert_eq!(
            parsed.notices,
            vec!["Notice: -master/-slave/m/s suffixes are deprecated; use -far/-near/f/n instead."]
        );
        assert_eq!(run(&["--create-slave"]).ops.create, Some(NEAR));
        assert_eq!(run(&["--remove-master"]).ops.remove, Some(FAR));
    }

    #[test]
    fn conflicts_on_the_command_line() {
        assert_eq!(
            error(&["--create-near", "--no-create"]),
            "Conflicting Create options specified on the command line."
        );
        assert_eq!(
            error(&["-X", "-Xf"]),
            "Redundant Expunge options specified on the command line."
        );
        assert_eq!(
            error(&["-0", "-n"]),
            "Conflicting Sync options specified on the command line."
        );
        assert_eq!(
            error(&["-Ln", "-L"]),
            "Redundant Sync options specified on the command line."
        );
        assert_eq!(
            error(&["-Ln", "-H", "-f"]),
            "Invalid combination of simple and compound Sync options on the command line."
        );
    }

    #[test]
    fn verbosity_and_run_flags() {
        let verbosities: [(&[&str], _); 8] = [
            (&["-V"], Verbosity::Verbose),
            (&["--verbose"], Verbosity::Verbose),
            (&[], Verbosity::Normal),
            (&["-q"], Verbosity::Quiet),
            (&["--quiet"], Verbosity::Quiet),
            (&["-qq"], Verbosity::VeryQuiet),
            (&["-Dm", "-q"], Verbosity::Verbose),
            (&["-DC"], Verbosity::Normal),
        ];
        for (args, verbosity) in verbosities {
            assert_eq!(run(args).verbosity(), verbosity, "{args:?}");
        }
        assert!(run(&["-y"]).dry_run);
        assert!(run(&["--dry-run"]).dry_run);
        assert!(run(&["-e"]).ext_exit);
        assert!(run(&["--ext-exit"]).ext_exit);
        assert!(run(&["--allow-mass-delete"]).allow_mass_delete);
        assert!(!run(&["-e"]).allow_mass_delete);
        assert_eq!(run(&["--max-connections", "6"]).max_connections, Some(6));
        assert_eq!(run(&["-e"]).max_connections, None);
    }

    #[test]
    fn debug_letters() {
        let all = DebugFlags {
            crash: true,
            driver: true,
            maildir: true,
            main: true,
            net: true,
            sync: true,
            ..Default::default()
        };
        assert_eq!(run(&["-D"]).debug, all);
        assert_eq!(run(&["--debug"]).debug, all);
        let parsed = run(&["-Dms"]);
        assert!(parsed.debug.maildir && parsed.debug.sync && !parsed.debug.main);
        assert_eq!(error(&["-DmV"]), "Unknown -D flag 'V'");
        let parsed = run(&["-DCdDMnN"]);
        assert!(parsed.debug.crash && parsed.debug.driver && parsed.debug.driver_all);
        assert!(parsed.debug.main && parsed.debug.net && parsed.debug.net_all);
        for (word, check) in [
            (
                "--debug-crash",
                (|d: &DebugFlags| d.crash) as fn(&DebugFlags) -> bool,
            ),
            ("--debug-driver", |d| d.driver && !d.driver_all),
            ("--debug-driver-all", |d| d.driver_all),
            ("--debug-maildir", |d| d.maildir),
            ("--debug-main", |d| d.main),
            ("--debug-net", |d| d.net && !d.net_all),
            ("--debug-net-all", |d| d.net_all),
            ("--debug-sync", |d| d.sync && !d.main),
        ] {
            assert!(check(&run(&[word]).debug), "{word}");
        }
        assert_eq!(error(&["--debug-bogus"]), "Unknown option '--debug-bogus'");
    }

    #[test]
    fn test_hooks() {
        let hooks = run(&["-TaAjJuxzs15"]).hooks;
        assert_eq!(
            hooks,
            TestHooks {
                async_far: true,
                async_both: true,
                keep_journal: true,
                journal_end: true,
                step_limit: 15,
                withhold_uids: true,
                no_expunge: true,
                no_fresh_wait: true,
            }
        );
        assert_eq!(run(&["-Ts3j"]).hooks.step_limit, 3);
        assert!(run(&["-Ts3j"]).hooks.keep_journal);
        assert_eq!(error(&["-Tq"]), "Unknown -T flag 'q'");
    }

    #[test]
    fn version_and_help_stop_parsing() {
        let parse =
            |args: &[&str]| parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parse(&["-v", "--bogus"]), Ok(Parsed::Version));
        assert_eq!(parse(&["--version"]), Ok(Parsed::Version));
        assert_eq!(parse(&["-h"]), Ok(Parsed::Help));
        assert_eq!(parse(&["-Vh"]), Ok(Parsed::Help));
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
        assert!(parse(&["--bogus", "-v"]).is_err());
    }

    #[test]
    fn usage_errors() {
        assert_eq!(error(&["-"]), "Invalid option '-'");
        assert_eq!(error(&["--frob"]), "Unknown option '--frob'");
        assert_eq!(
            error(&["--create-sideways"]),
            "Unknown option '--create-sideways'"
        );
        assert_eq!(error(&["-Vk"]), "Unknown option '-k'");
        assert_eq!(error(&["-s"]), "Unknown option '-s'");
    }
}
