//! The options of the sync core through the binary on real Maildirs, each scenario run twice:
//! once as written (role A is the far side, B the near side) and once with far and near
//! swapped (A near, B far: the messages, the state, the store settings and every side named
//! by an option exchanged), asserting the mirrored result.
//!
//! Scenarios are written in terms of the roles: in configuration lines and arguments
//! `{A}`/`{B}` become `Far`/`Near` (or the reverse), `{a}`/`{b}` the option letters `f`/`n`,
//! `{toB}`/`{toA}` the directions `Pull`/`Push`, `{-toB}`/`{-toA}` the options `-L`/`-H`,
//! `{--toB}`/`{--toA}` the options `--pull`/`--push`, `{sideA}`/`{sideB}` the words
//! `far side`/`near side`, `{boxA}`/`{boxB}` the box names, and in state flags `{dB}`/`{dA}`
//! the placeholder markers.

mod support;

use std::fs;
use std::time::{Duration, SystemTime};

use support::{Extras, FAR, Fixture, NEAR};

/// Which side plays role A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Orientation {
    /// A is far, B is near.
    Direct,
    /// A is near, B is far.
    Swapped,
}

use Orientation::{Direct, Swapped};

impl Orientation {
    /// The box directory of a role (0 = A, 1 = B).
    fn box_of(self, role: usize) -> &'static str {
        match (self, role) {
            (Direct, 0) | (Swapped, 1) => FAR,
            _ => NEAR,
        }
    }

    /// Replaces the role tokens.
    fn text(self, text: &str) -> String {
        let (a, b) = if self == Direct {
            (
                ["Far", "f", "Push", "far side", "<"],
                ["Near", "n", "Pull", "near side", ">"],
            )
        } else {
            (
                ["Near", "n", "Pull", "near side", ">"],
                ["Far", "f", "Push", "far side", "<"],
            )
        };
        let (to_b_short, to_a_short) = if self == Direct {
            ("-L", "-H")
        } else {
            ("-H", "-L")
        };
        let (to_b_long, to_a_long) = if self == Direct {
            ("--pull", "--push")
        } else {
            ("--push", "--pull")
        };
        text.replace("{A}", a[0])
            .replace("{B}", b[0])
            .replace("{a}", a[1])
            .replace("{b}", b[1])
            .replace("{toB}", b[2])
            .replace("{toA}", a[2])
            .replace("{-toB}", to_b_short)
            .replace("{-toA}", to_a_short)
            .replace("{--toB}", to_b_long)
            .replace("{--toA}", to_a_long)
            .replace("{sideA}", a[3])
            .replace("{sideB}", b[3])
            .replace("{dA}", a[4])
            .replace("{dB}", b[4])
            .replace("{boxA}", self.box_of(0))
            .replace("{boxB}", self.box_of(1))
    }
}

/// A message: subject, UID, flags.
type Msg = (&'static str, u32, &'static str);
/// A state: high-water marks [A, B] and entries (A uid, B uid, flags).
type StateSpec = ([u32; 2], &'static [(u32, u32, &'static str)]);
/// A message as found after the run: subject, flags.
type Found = (&'static str, &'static str);

/// One scenario in role terms.
#[derive(Clone, Default)]
struct Scenario {
    name: &'static str,
    /// Messages of A and B before the run.
    msgs: [&'static [Msg]; 2],
    /// The state before the run: high-water marks [A, B] and entries (A uid, B uid, flags).
    state: Option<StateSpec>,
    /// Extra lines of the store of A and B.
    stores: [&'static [&'static str]; 2],
    channel: &'static [&'static str],
    args: &'static [&'static str],
    /// The box of this role does not exist before the run.
    missing: Option<usize>,
    code: i32,
    /// With `-e`: whether A and B were changed (adds 32 for far, 64 for near).
    ext: Option<[bool; 2]>,
    /// Nothing at all on stdout.
    quiet: bool,
    /// Messages of A and B after the run (order does not matter).
    expect: [&'static [Found]; 2],
    /// Further boxes (by directory name) and their messages after the run.
    others: &'static [(&'static str, &'static [Found])],
    /// The summary counters of A and B (`+n *f #t -e`); None: no summary line expected.
    summary: Option<[&'static str; 2]>,
    /// State entries after the run (A uid, B uid, flags); None: not checked.
    state_after: Option<&'static [(u32, u32, &'static str)]>,
    /// Lines that must be on stdout / stderr (role tokens allowed).
    stdout_has: &'static [&'static str],
    stderr_has: &'static [&'static str],
    /// Extra preparation and checks.
    prepare: Option<fn(&Fixture, Orientation)>,
    check: Option<fn(&Fixture, Orientation)>,
}

const STATE_DIR: &str = "state";
const STATE_FILE: &str = "state/nearbox";

/// Sets up the test directory for one orientation.
fn setup(sc: &Scenario, o: Orientation) -> Fixture {
    let role_of_far = if o == Direct { 0 } else { 1 };
    let mut extras = Extras::none();
    for line in sc.stores[role_of_far] {
        extras = extras.far(&o.text(line));
    }
    for line in sc.stores[1 - role_of_far] {
        extras = extras.near(&o.text(line));
    }
    for line in sc.channel {
        extras = extras.channel(&o.text(line));
    }
    let fx = Fixture::new(extras);
    // The state lives outside both boxes, so a missing box does not take it along.
    let cfg = String::from_utf8_lossy(&fx.read("cfg").unwrap_or_default()).replace(
        "SyncState *\n",
        &format!("SyncState {}/{STATE_DIR}/\n", fx.dir().display()),
    );
    fx.write("cfg", cfg.as_bytes());
    fs::create_dir_all(fx.path(STATE_DIR)).unwrap_or_else(|e| panic!("state dir: {e}"));
    for role in 0..2 {
        for &(subj, uid, flags) in sc.msgs[role] {
            fx.msg(o.box_of(role), subj, uid, flags);
        }
    }
    if let Some((maxuid, entries)) = sc.state {
        let (far, near) = if o == Direct { (0, 1) } else { (1, 0) };
        let mut text = format!(
            "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid {}\nMaxPushedUid {}\n\n",
            maxuid[far], maxuid[near]
        );
        for &(a, b, flags) in entries {
            let uids = [a, b];
            text.push_str(&format!("{} {} {}\n", uids[far], uids[near], o.text(flags)));
        }
        fx.write(STATE_FILE, text.as_bytes());
    }
    if let Some(prepare) = sc.prepare {
        prepare(&fx, o);
    }
    if let Some(role) = sc.missing {
        fs::remove_dir_all(fx.path(o.box_of(role))).unwrap_or_else(|e| panic!("remove: {e}"));
    }
    fx
}

/// The messages of a box directory: (subject, flags), sorted.
fn contents(fx: &Fixture, box_name: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = fs::read_dir(fx.path(box_name).join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let flags = name.split_once(":2,").map_or("", |(_, f)| f).to_string();
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_string();
            found.push((subject, flags));
        }
    }
    found.sort();
    found
}

fn expected(list: &[Found]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(s, f)| (s.to_string(), f.to_string()))
        .collect();
    v.sort();
    v
}

/// The entries of the state file after the run, as (A uid, B uid, flags).
fn state_entries(fx: &Fixture, o: Orientation) -> Vec<(u32, u32, String)> {
    let text = String::from_utf8_lossy(&fx.read(STATE_FILE).unwrap_or_default()).into_owned();
    let body = text.split_once("\n\n").map_or("", |(_, b)| b);
    body.lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let far: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let near: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let flags = parts.next().unwrap_or("").to_string();
            // Placeholder markers in role terms: `<` marks the far message, `>` the near one.
            let (far_role, near_role) = if o == Direct {
                ("{dA}", "{dB}")
            } else {
                ("{dB}", "{dA}")
            };
            let flags = flags.replace('<', far_role).replace('>', near_role);
            if o == Direct {
                (far, near, flags)
            } else {
                (near, far, flags)
            }
        })
        .collect()
}

/// Runs one scenario in one orientation and checks everything it specifies.
fn run_one(sc: &Scenario, o: Orientation) {
    let mut fx = setup(sc, o);
    let args: Vec<String> = sc.args.iter().map(|a| o.text(a)).collect();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = fx.run(&arg_refs);
    let context = format!(
        "scenario {} ({o:?}), args {args:?}\nstdout:\n{}\nstderr:\n{}",
        sc.name, result.stdout, result.stderr
    );
    let mut code = sc.code;
    if let Some(changed) = sc.ext {
        for (role, changed) in changed.iter().enumerate() {
            if *changed {
                code += if o.box_of(role) == FAR { 32 } else { 64 };
            }
        }
    }
    assert_eq!(result.code, code, "exit code: {context}");
    if sc.quiet {
        assert_eq!(result.stdout, "", "stdout: {context}");
    }
    for role in 0..2 {
        assert_eq!(
            contents(&fx, o.box_of(role)),
            expected(sc.expect[role]),
            "messages of role {}: {context}",
            ["A", "B"][role]
        );
    }
    for (name, list) in sc.others {
        assert_eq!(contents(&fx, name), expected(list), "box {name}: {context}");
    }
    let last = result.stdout.lines().last().unwrap_or("");
    match sc.summary {
        Some(parts) => {
            let (far, near) = if o == Direct {
                (parts[0], parts[1])
            } else {
                (parts[1], parts[0])
            };
            assert_eq!(
                last,
                format!("Channels: 1    Boxes: 1    Far: {far}    Near: {near}"),
                "summary: {context}"
            );
        }
        None => assert!(!last.starts_with("Channels:"), "summary: {context}"),
    }
    if let Some(entries) = sc.state_after {
        let want: Vec<(u32, u32, String)> = entries
            .iter()
            .map(|&(a, b, f)| (a, b, f.to_string()))
            .collect();
        assert_eq!(state_entries(&fx, o), want, "state: {context}");
    }
    for line in sc.stdout_has {
        let line = o.text(line);
        assert!(
            result.stdout.lines().any(|l| l == line),
            "stdout lacks {line:?}: {context}"
        );
    }
    for line in sc.stderr_has {
        let line = o.text(line);
        assert!(
            result.stderr.lines().any(|l| l == line),
            "stderr lacks {line:?}: {context}"
        );
    }
    if let Some(check) = sc.check {
        check(&fx, o);
    }
}

fn run_both(sc: &Scenario) {
    run_one(sc, Direct);
    run_one(sc, Swapped);
}

// ---- Operation types and directions.

/// A has: p1 (paired, got R), p2 (paired; its B partner was expunged), old (below the
/// high-water mark, never synced), p3 (paired), anew (new). B has: p1, p3 (got F), bnew.
const MIX_A: &[Msg] = &[
    ("p1", 1, "RS"),
    ("p2", 2, "S"),
    ("old", 3, "S"),
    ("p3", 5, "S"),
    ("anew", 6, ""),
];
const MIX_B: &[Msg] = &[("p1", 1, "S"), ("p3", 3, "FS"), ("bnew", 4, "")];
const MIX_STATE: StateSpec = ([5, 3], &[(1, 1, "S"), (2, 2, "S"), (5, 3, "S")]);

/// What the mixed set-up becomes under one operation set.
struct MixOutcome {
    a: &'static [Found],
    b: &'static [Found],
    summary: [&'static str; 2],
}

const MIX_UNCHANGED_A: &[Found] = &[
    ("p1", "RS"),
    ("p2", "S"),
    ("old", "S"),
    ("p3", "S"),
    ("anew", ""),
];
const MIX_UNCHANGED_B: &[Found] = &[("p1", "S"), ("p3", "FS"), ("bnew", "")];

const MIX_DEFAULT: MixOutcome = MixOutcome {
    a: &[
        ("p1", "RS"),
        ("p2", "ST"),
        ("old", "S"),
        ("p3", "FS"),
        ("anew", ""),
        ("bnew", ""),
    ],
    b: &[("p1", "RS"), ("p3", "FS"), ("bnew", ""), ("anew", "")],
    summary: ["+1 *2 #0 -0", "+1 *1 #0 -0"],
};

const MIX_FULL: MixOutcome = MixOutcome {
    a: MIX_DEFAULT.a,
    b: &[
        ("p1", "RS"),
        ("p3", "FS"),
        ("bnew", ""),
        ("anew", ""),
        ("old", "S"),
    ],
    summary: ["+1 *2 #0 -0", "+2 *1 #0 -0"],
};

const MIX_TO_B: MixOutcome = MixOutcome {
    a: MIX_UNCHANGED_A,
    b: MIX_DEFAULT.b,
    summary: ["+0 *0 #0 -0", "+1 *1 #0 -0"],
};

const MIX_TO_A: MixOutcome = MixOutcome {
    a: MIX_DEFAULT.a,
    b: MIX_UNCHANGED_B,
    summary: ["+1 *2 #0 -0", "+0 *0 #0 -0"],
};

const MIX_NEW: MixOutcome = MixOutcome {
    a: &[
        ("p1", "RS"),
        ("p2", "S"),
        ("old", "S"),
        ("p3", "S"),
        ("anew", ""),
        ("bnew", ""),
    ],
    b: &[("p1", "S"), ("p3", "FS"), ("bnew", ""), ("anew", "")],
    summary: ["+1 *0 #0 -0", "+1 *0 #0 -0"],
};

const MIX_OLD: MixOutcome = MixOutcome {
    a: MIX_UNCHANGED_A,
    b: &[("p1", "S"), ("p3", "FS"), ("bnew", ""), ("old", "S")],
    summary: ["+0 *0 #0 -0", "+1 *0 #0 -0"],
};

const MIX_GONE: MixOutcome = MixOutcome {
    a: &[
        ("p1", "RS"),
        ("p2", "ST"),
        ("old", "S"),
        ("p3", "S"),
        ("anew", ""),
    ],
    b: MIX_UNCHANGED_B,
    summary: ["+0 *1 #0 -0", "+0 *0 #0 -0"],
};

const MIX_FLAGS: MixOutcome = MixOutcome {
    a: &[
        ("p1", "RS"),
        ("p2", "S"),
        ("old", "S"),
        ("p3", "FS"),
        ("anew", ""),
    ],
    b: &[("p1", "RS"), ("p3", "FS"), ("bnew", "")],
    summary: ["+0 *1 #0 -0", "+0 *1 #0 -0"],
};

const MIX_NONE: MixOutcome = MixOutcome {
    a: MIX_UNCHANGED_A,
    b: MIX_UNCHANGED_B,
    summary: ["+0 *0 #0 -0", "+0 *0 #0 -0"],
};

fn mix(
    name: &'static str,
    channel: &'static [&'static str],
    args: &'static [&'static str],
    outcome: &MixOutcome,
) -> Scenario {
    Scenario {
        name,
        msgs: [MIX_A, MIX_B],
        state: Some(MIX_STATE),
        channel,
        args,
        expect: [outcome.a, outcome.b],
        summary: Some(outcome.summary),
        ..Scenario::default()
    }
}

#[test]
fn operation_types_and_directions_from_the_config() {
    let cases = [
        mix("default", &[], &[], &MIX_DEFAULT),
        mix("Sync toB", &["Sync {toB}"], &[], &MIX_TO_B),
        mix("Sync toA", &["Sync {toA}"], &[], &MIX_TO_A),
        mix("Sync New", &["Sync New"], &[], &MIX_NEW),
        mix("Sync Old", &["Sync Old"], &[], &MIX_OLD),
        mix("Sync Gone", &["Sync Gone"], &[], &MIX_GONE),
        mix("Sync Flags", &["Sync Flags"], &[], &MIX_FLAGS),
        mix("Sync Full", &["Sync Full"], &[], &MIX_FULL),
        mix("Sync None", &["Sync None"], &[], &MIX_NONE),
        mix(
            "Sync toBNew toANew",
            &["Sync {toB}New {toA}New"],
            &[],
            &MIX_NEW,
        ),
        mix("Sync toBOld", &["Sync {toB}Old"], &[], &MIX_OLD),
        mix(
            "Sync toAGone toBFlags",
            &["Sync {toA}Gone {toB}Flags"],
            &[],
            &MixOutcome {
                a: MIX_GONE.a,
                b: MIX_FLAGS.b,
                summary: ["+0 *1 #0 -0", "+0 *1 #0 -0"],
            },
        ),
    ];
    for case in &cases {
        run_both(case);
    }
}

#[test]
fn operation_types_and_directions_from_the_command_line() {
    // The command line replaces the channel's Sync.
    let cases = [
        mix("-L/-H", &["Sync {toA}"], &["{-toB}"], &MIX_TO_B),
        mix("--pull/--push", &["Sync {toB}"], &["{--toA}"], &MIX_TO_A),
        mix("-n", &["Sync Full"], &["-n"], &MIX_NEW),
        mix("-o", &[], &["-o"], &MIX_OLD),
        mix("-g", &[], &["-g"], &MIX_GONE),
        mix("-f", &[], &["-f"], &MIX_FLAGS),
        mix("--full", &[], &["--full"], &MIX_FULL),
        mix("-F", &["Sync None"], &["-F"], &MIX_DEFAULT),
        mix("-0", &[], &["-0"], &MIX_NONE),
        mix("--noop", &[], &["--noop"], &MIX_NONE),
        mix("-Lo", &[], &["{-toB}o"], &MIX_OLD),
        mix(
            "--pull-new --push-new",
            &[],
            &["{--toB}-new", "{--toA}-new"],
            &MIX_NEW,
        ),
    ];
    for case in &cases {
        run_both(case);
    }
}

#[test]
fn dry_run_ext_exit_and_verbosity() {
    let dry = Scenario {
        args: &["--dry-run"],
        expect: [MIX_UNCHANGED_A, MIX_UNCHANGED_B],
        check: Some(|fx, o| {
            // The state is untouched and nothing was left behind.
            assert_eq!(
                state_entries(fx, o),
                vec![(1, 1, "S".into()), (2, 2, "S".into()), (5, 3, "S".into())]
            );
            assert_eq!(fx.dir_names(STATE_DIR), ["nearbox"], "{o:?}");
        }),
        ..mix("-y", &[], &[], &MIX_DEFAULT)
    };
    run_both(&dry);
    run_both(&Scenario {
        args: &["-e"],
        ext: Some([true, true]),
        ..mix("-e both", &[], &[], &MIX_DEFAULT)
    });
    run_both(&Scenario {
        args: &["-e"],
        ext: Some([false, true]),
        ..mix("-e toB", &["Sync {toB}"], &[], &MIX_TO_B)
    });
    run_both(&Scenario {
        args: &["-e", "--dry-run"],
        ext: Some([true, false]),
        expect: [MIX_UNCHANGED_A, MIX_UNCHANGED_B],
        ..mix("-e -y toA", &["Sync {toA}"], &[], &MIX_TO_A)
    });
    run_both(&Scenario {
        args: &["-e"],
        ext: Some([false, false]),
        ..mix("-e none", &["Sync None"], &[], &MIX_NONE)
    });
    run_both(&Scenario {
        args: &["-V"],
        stdout_has: &[
            "{sideA}: 5 messages, 0 recent",
            "{sideB}: 3 messages, 0 recent",
            "Synchronizing...",
        ],
        ..mix("-V", &[], &[], &MIX_DEFAULT)
    });
    run_both(&Scenario {
        args: &["-q"],
        summary: None,
        quiet: true,
        ..mix("-q", &[], &[], &MIX_DEFAULT)
    });
}

// ---- Create and Remove.

const TWO: &[Msg] = &[("a1", 1, "S"), ("a2", 2, "")];
const TWO_FOUND: &[Found] = &[("a1", "S"), ("a2", "")];

#[test]
fn create_and_remove() {
    run_both(&Scenario {
        name: "Create B",
        msgs: [TWO, &[]],
        channel: &["Create {B}"],
        args: &["-V"],
        missing: Some(1),
        expect: [TWO_FOUND, TWO_FOUND],
        summary: Some(["+0 *0 #0 -0", "+2 *0 #0 -0"]),
        state_after: Some(&[(1, 1, "S"), (2, 2, "")]),
        stdout_has: &["Creating {sideB} box {boxB}..."],
        ..Scenario::default()
    });
    run_both(&Scenario {
        name: "Create A only",
        msgs: [TWO, &[]],
        args: &["-C{a}"],
        missing: Some(1),
        code: 1,
        expect: [TWO_FOUND, &[]],
        summary: Some(["+0 *0 #0 -0", "+0 *0 #0 -0"]),
        stderr_has: &["Error: channel ex: {sideB} box {boxB} cannot be opened."],
        check: Some(|fx, o| assert!(!fx.path(o.box_of(1)).exists())),
        ..Scenario::default()
    });
    run_both(&Scenario {
        name: "Remove B",
        msgs: [&[], &[]],
        state: Some(([0, 0], &[])),
        channel: &["Remove {B}"],
        missing: Some(0),
        summary: Some(["+0 *0 #0 -0", "+0 *0 #0 -0"]),
        check: Some(|fx, o| {
            assert!(!fx.path(o.box_of(1)).exists(), "{o:?}: box B not removed");
            assert!(!fx.exists(STATE_FILE), "{o:?}: state not deleted");
        }),
        ..Scenario::default()
    });
    run_both(&Scenario {
        name: "Remove B, B not empty",
        msgs: [&[], TWO],
        state: Some(([0, 2], &[])),
        args: &["-R{b}"],
        missing: Some(0),
        expect: [&[], TWO_FOUND],
        summary: Some(["+0 *0 #0 -0", "+0 *0 #0 -0"]),
        stderr_has: &[
            "Warning: channel ex: {sideA} box {boxA} cannot be opened anymore, and {sideB} box {boxB} is not empty.",
        ],
        ..Scenario::default()
    });
    run_both(&Scenario {
        name: "Remove A only",
        msgs: [&[], &[]],
        state: Some(([0, 0], &[])),
        channel: &["Remove {A}"],
        missing: Some(0),
        code: 1,
        summary: Some(["+0 *0 #0 -0", "+0 *0 #0 -0"]),
        stderr_has: &["Error: channel ex: {sideA} box {boxA} cannot be opened anymore."],
        check: Some(|fx, o| assert!(fx.path(o.box_of(1)).exists())),
        ..Scenario::default()
    });
}

// ---- Expunge and ExpungeSolo.

/// p2 was deleted in A; B's p3 was deleted and is paired; B's p4 lost its A partner and
/// was deleted in B too (an orphan).
const DEL_A: &[Msg] = &[("p1", 1, "S"), ("p2", 2, "ST"), ("p3", 3, "S")];
const DEL_B: &[Msg] = &[
    ("p1", 1, "S"),
    ("p2", 2, "S"),
    ("p3", 3, "ST"),
    ("p4", 4, "ST"),
];
const DEL_STATE: StateSpec = (
    [4, 4],
    &[(1, 1, "S"), (2, 2, "S"), (3, 3, "S"), (4, 4, "S")],
);

fn deletions(
    name: &'static str,
    channel: &'static [&'static str],
    args: &'static [&'static str],
    expect: [&'static [Found]; 2],
    summary: [&'static str; 2],
) -> Scenario {
    Scenario {
        name,
        msgs: [DEL_A, DEL_B],
        state: Some(DEL_STATE),
        channel,
        args,
        expect,
        summary: Some(summary),
        ..Scenario::default()
    }
}

/// After the flag merge: p2 and p3 deleted on both sides, B's orphan p4 deleted.
const DEL_MERGED: &[Found] = &[("p1", "S"), ("p2", "ST"), ("p3", "ST")];
const DEL_MERGED_WITH_ORPHAN: &[Found] = &[("p1", "S"), ("p2", "ST"), ("p3", "ST"), ("p4", "ST")];
const ONLY_P1: &[Found] = &[("p1", "S")];
const EXPUNGED_A: [&str; 2] = ["+0 *1 #0 -2", "+0 *1 #0 -0"];
const ORPHAN_OF_B_EXPUNGED: [&str; 2] = ["+0 *1 #0 -0", "+0 *1 #0 -1"];

#[test]
fn expunge_and_expunge_solo() {
    let a_only = [ONLY_P1, DEL_MERGED_WITH_ORPHAN];
    run_both(&deletions(
        "Expunge A",
        &["Expunge {A}"],
        &[],
        a_only,
        EXPUNGED_A,
    ));
    run_both(&deletions(
        "-X a",
        &["Expunge {B}"],
        &["-X{a}"],
        a_only,
        EXPUNGED_A,
    ));
    run_both(&Scenario {
        state_after: Some(&[(1, 1, "S")]),
        ..deletions(
            "Expunge Both",
            &["Expunge Both"],
            &[],
            [ONLY_P1, ONLY_P1],
            ["+0 *1 #0 -2", "+0 *1 #0 -3"],
        )
    });
    // Solo: only B's orphan p4 goes; the paired deleted messages stay.
    let solo = [DEL_MERGED, DEL_MERGED];
    run_both(&deletions(
        "ExpungeSolo B",
        &["ExpungeSolo {B}"],
        &[],
        solo,
        ORPHAN_OF_B_EXPUNGED,
    ));
    run_both(&deletions(
        "-x b",
        &[],
        &["-x{b}"],
        solo,
        ORPHAN_OF_B_EXPUNGED,
    ));
    run_both(&deletions(
        "--no-expunge",
        &["Expunge Both"],
        &["--no-expunge"],
        [DEL_MERGED, DEL_MERGED_WITH_ORPHAN],
        ["+0 *1 #0 -0", "+0 *1 #0 -0"],
    ));
}

// ---- Trash, TrashNewOnly, TrashRemoteNew.

/// B's p2 was deleted (paired), B's p3 is new and deleted.
const TRASH_A: &[Msg] = &[("p1", 1, "S"), ("p2", 2, "S")];
const TRASH_B: &[Msg] = &[("p1", 1, "S"), ("p2", 2, "ST"), ("p3", 3, "T")];
const TRASH_STATE: StateSpec = ([2, 2], &[(1, 1, "S"), (2, 2, "S")]);

fn trashing(
    name: &'static str,
    stores: [&'static [&'static str]; 2],
    trash: &'static [(&'static str, &'static [Found])],
    summary: [&'static str; 2],
) -> Scenario {
    Scenario {
        name,
        msgs: [TRASH_A, TRASH_B],
        state: Some(TRASH_STATE),
        stores,
        channel: &["Expunge {B}"],
        expect: [&[("p1", "S"), ("p2", "ST")], &[("p1", "S")]],
        others: trash,
        summary: Some(summary),
        ..Scenario::default()
    }
}

#[test]
fn trash_trash_new_only_and_trash_remote_new() {
    run_both(&trashing(
        "Trash",
        [&[], &["Trash btrash"]],
        &[("btrash", &[("p2", "ST"), ("p3", "T")])],
        ["+0 *1 #0 -0", "+0 *0 #2 -2"],
    ));
    run_both(&trashing(
        "TrashNewOnly",
        [&[], &["Trash btrash", "TrashNewOnly yes"]],
        &[("btrash", &[("p3", "T")])],
        ["+0 *1 #0 -0", "+0 *0 #1 -2"],
    ));
    run_both(&trashing(
        "TrashRemoteNew",
        [&["Trash atrash", "TrashRemoteNew yes"], &[]],
        &[("atrash", &[("p3", "T")])],
        ["+0 *1 #0 -0", "+0 *0 #1 -2"],
    ));
    run_both(&trashing(
        "Trash of A without TrashRemoteNew",
        [&["Trash atrash"], &[]],
        &[("atrash", &[])],
        ["+0 *1 #0 -0", "+0 *0 #0 -2"],
    ));
}

// ---- MaxSize and Upgrade.

fn put_big_in_a(fx: &Fixture, o: Orientation) {
    fx.put(
        o.box_of(0),
        "cur",
        "big",
        2,
        "FS",
        &support::big_msg("big", 40),
    );
}

#[test]
fn max_size_placeholders_and_upgrade() {
    run_both(&Scenario {
        name: "MaxSize",
        msgs: [&[("small", 1, "S")], &[]],
        prepare: Some(put_big_in_a),
        stores: [&[], &["MaxSize 1k"]],
        expect: [
            &[("small", "S"), ("big", "FS")],
            &[("small", "S"), ("[placeholder] big", "S")],
        ],
        summary: Some(["+0 *0 #0 -0", "+2 *0 #0 -0"]),
        state_after: Some(&[(1, 1, "S"), (2, 2, "{dB}S")]),
        ..Scenario::default()
    });
    let flagged_placeholder = Scenario {
        name: "Upgrade",
        msgs: [&[("small", 1, "S")], &[("small", 1, "S")]],
        state: Some(([2, 2], &[(1, 1, "S"), (2, 2, "{dB}S")])),
        prepare: Some(|fx, o| {
            put_big_in_a(fx, o);
            let placeholder = support::with_header(
                &support::std_msg("[placeholder] big"),
                "X-TUID: AAAAAAAAAAAA",
            );
            fx.put(o.box_of(1), "cur", "ph", 2, "FS", &placeholder);
        }),
        stores: [&[], &["MaxSize 1k"]],
        expect: [
            &[("small", "S"), ("big", "FS")],
            &[("small", "S"), ("[placeholder] big", "FST"), ("big", "FS")],
        ],
        summary: Some(["+0 *0 #0 -0", "+1 *1 #0 -0"]),
        ..Scenario::default()
    };
    run_both(&flagged_placeholder);
    // Without Upgrade the flagged placeholder stays as it is.
    run_both(&Scenario {
        name: "no Upgrade",
        channel: &["Sync New Gone Flags"],
        expect: [
            &[("small", "S"), ("big", "FS")],
            &[("small", "S"), ("[placeholder] big", "FS")],
        ],
        summary: Some(["+0 *0 #0 -0", "+0 *0 #0 -0"]),
        ..flagged_placeholder.clone()
    });
    // Upgrade without Flags: the full copy gets the placeholder's saved flags, without the
    // F that only a flag delta would add (§4.5 B.1).
    run_both(&Scenario {
        name: "-u alone",
        args: &["-u"],
        expect: [
            &[("small", "S"), ("big", "FS")],
            &[("small", "S"), ("[placeholder] big", "FST"), ("big", "S")],
        ],
        ..flagged_placeholder
    });
}

// ---- MaxMessages, ExpireSide, ExpireUnread.

const FOUR_SEEN: &[Msg] = &[
    ("m1", 1, "S"),
    ("m2", 2, "S"),
    ("m3", 3, "S"),
    ("m4", 4, "S"),
];
const FOUR_UNREAD: &[Msg] = &[("m1", 1, ""), ("m2", 2, ""), ("m3", 3, ""), ("m4", 4, "")];
const FOUR_UNREAD_FOUND: &[Found] = &[("m1", ""), ("m2", ""), ("m3", ""), ("m4", "")];

#[test]
fn max_messages_on_either_expire_side() {
    // B is the expire side: ExpireSide Near as written, ExpireSide Far when swapped.
    run_both(&Scenario {
        name: "MaxMessages",
        msgs: [FOUR_SEEN, &[]],
        channel: &["MaxMessages 2", "ExpireSide {B}"],
        expect: [
            &[("m1", "S"), ("m2", "S"), ("m3", "S"), ("m4", "S")],
            &[("m3", "S"), ("m4", "S")],
        ],
        summary: Some(["+0 *0 #0 -0", "+2 *0 #0 -0"]),
        state_after: Some(&[(3, 1, "S"), (4, 2, "S")]),
        ..Scenario::default()
    });
    // The expire side is where the copies go: with A as the expire side nothing is expired
    // among messages copied from A.
    run_both(&Scenario {
        name: "MaxMessages, A expires",
        msgs: [FOUR_SEEN, &[]],
        channel: &["MaxMessages 2", "ExpireSide {A}"],
        expect: [
            &[("m1", "S"), ("m2", "S"), ("m3", "S"), ("m4", "S")],
            &[("m1", "S"), ("m2", "S"), ("m3", "S"), ("m4", "S")],
        ],
        summary: Some(["+0 *0 #0 -0", "+4 *0 #0 -0"]),
        ..Scenario::default()
    });
    run_both(&Scenario {
        name: "too many unread",
        msgs: [FOUR_UNREAD, &[]],
        channel: &["MaxMessages 2", "ExpireSide {B}"],
        code: 1,
        expect: [FOUR_UNREAD_FOUND, &[]],
        summary: Some(["+0 *0 #0 -0", "+0 *0 #0 -0"]),
        stderr_has: &[
            "{boxB}: 2 unread messages in excess of MaxMessages (2).",
            "Please set ExpireUnread to decide outcome. Skipping mailbox.",
        ],
        ..Scenario::default()
    });
    run_both(&Scenario {
        name: "ExpireUnread yes",
        msgs: [FOUR_UNREAD, &[]],
        channel: &["MaxMessages 2", "ExpireSide {B}", "ExpireUnread yes"],
        expect: [FOUR_UNREAD_FOUND, &[("m3", ""), ("m4", "")]],
        summary: Some(["+0 *0 #0 -0", "+2 *0 #0 -0"]),
        ..Scenario::default()
    });
    run_both(&Scenario {
        name: "ExpireUnread no",
        msgs: [FOUR_UNREAD, &[]],
        channel: &["MaxMessages 2", "ExpireSide {B}", "ExpireUnread no"],
        expect: [FOUR_UNREAD_FOUND, FOUR_UNREAD_FOUND],
        summary: Some(["+0 *0 #0 -0", "+4 *0 #0 -0"]),
        ..Scenario::default()
    });
}

// ---- CopyArrivalDate.

const PAST: Duration = Duration::from_secs(1_000_000_000);

fn age_a_message(fx: &Fixture, o: Orientation) {
    let path = fx.path(o.box_of(0)).join("cur/ma,U=1:2,S");
    let file = fs::File::options()
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.set_modified(SystemTime::UNIX_EPOCH + PAST)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Modification times of the messages of a box.
fn mtimes(fx: &Fixture, box_name: &str) -> Vec<SystemTime> {
    ["cur", "new"]
        .iter()
        .flat_map(|sub| {
            fs::read_dir(fx.path(box_name).join(sub))
                .into_iter()
                .flatten()
        })
        .flatten()
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .collect()
}

#[test]
fn copy_arrival_date() {
    let base = Scenario {
        name: "CopyArrivalDate yes",
        msgs: [&[("a", 1, "S")], &[]],
        prepare: Some(age_a_message),
        channel: &["CopyArrivalDate yes"],
        expect: [&[("a", "S")], &[("a", "S")]],
        summary: Some(["+0 *0 #0 -0", "+1 *0 #0 -0"]),
        check: Some(|fx, o| {
            assert_eq!(mtimes(fx, o.box_of(1)), vec![SystemTime::UNIX_EPOCH + PAST]);
        }),
        ..Scenario::default()
    };
    run_both(&base);
    run_both(&Scenario {
        name: "CopyArrivalDate no",
        channel: &["CopyArrivalDate no"],
        check: Some(|fx, o| {
            let times = mtimes(fx, o.box_of(1));
            let recent = SystemTime::now() - Duration::from_secs(3600);
            assert!(times.len() == 1 && times[0] > recent, "{o:?}: {times:?}");
        }),
        ..base
    });
}

// ---- UIDVALIDITY.

const THREE: &[Msg] = &[("m1", 1, "S"), ("m2", 2, "S"), ("m3", 3, "S")];
const THREE_FOUND: &[Found] = &[("m1", "S"), ("m2", "S"), ("m3", "S")];

fn new_uidvalidity_for_a(fx: &Fixture, o: Orientation) {
    let (uv, max) = fx.uidvalidity(o.box_of(0));
    fx.set_uidvalidity(o.box_of(0), uv + 500, max);
}

/// Asserts that the state file holds A's UIDVALIDITY as set up (far 1000, near 2000) plus
/// `raised_by`.
fn assert_uidvalidity_of_a_in_state(fx: &Fixture, o: Orientation, raised_by: u32) {
    let state = String::from_utf8_lossy(&fx.read(STATE_FILE).unwrap_or_default()).into_owned();
    let line = if o == Direct {
        format!("FarUidValidity {}", 1000 + raised_by)
    } else {
        format!("NearUidValidity {}", 2000 + raised_by)
    };
    assert!(state.lines().any(|l| l == line), "{o:?}: {state}");
}

#[test]
fn uidvalidity_change_recovered_or_genuine() {
    let recovered = Scenario {
        name: "UIDVALIDITY recovered",
        msgs: [THREE, THREE],
        state: Some(([3, 3], &[(1, 1, "S"), (2, 2, "S"), (3, 3, "S")])),
        prepare: Some(new_uidvalidity_for_a),
        expect: [THREE_FOUND, THREE_FOUND],
        summary: Some(["+0 *0 #0 -0", "+0 *0 #0 -0"]),
        stdout_has: &[
            "Notice: channel ex, {sideA} box {boxA}: Recovered from change of UIDVALIDITY.",
        ],
        check: Some(|fx, o| assert_uidvalidity_of_a_in_state(fx, o, 500)),
        ..Scenario::default()
    };
    run_both(&recovered);
    run_both(&Scenario {
        name: "UIDVALIDITY genuinely changed",
        prepare: Some(|fx, o| {
            new_uidvalidity_for_a(fx, o);
            fs::remove_file(fx.path(o.box_of(0)).join("cur/mm2,U=2:2,S"))
                .unwrap_or_else(|e| panic!("{e}"));
            fx.msg(o.box_of(0), "other", 2, "S");
        }),
        code: 1,
        expect: [&[("m1", "S"), ("other", "S"), ("m3", "S")], THREE_FOUND],
        stdout_has: &[],
        stderr_has: &[
            "Error: channel ex, {sideA} box {boxA} (at UID 2): UIDVALIDITY genuinely changed.",
        ],
        check: Some(|fx, o| assert_uidvalidity_of_a_in_state(fx, o, 0)),
        ..recovered
    });
}

// ---- Channels skipped because of a failed store.

#[test]
fn channels_skipped_for_a_failed_store_are_counted() {
    // mbsync counts a channel as done when its store failed or it was skipped for that
    // reason (1.4.4's progress counter goes C: 1/3, 2/3, 3/3); the summary's `Channels:`
    // is that count.
    let fx = Fixture::new(Extras::none());
    fx.msg(FAR, "a", 1, "S");
    let dir = fx.dir().display().to_string();
    fx.write("notadir", b"");
    let cfg = String::from_utf8_lossy(&fx.read("cfg").unwrap_or_default()).into_owned();
    let cfg = format!(
        "MaildirStore bad\nPath {dir}/notadir/\n\n{cfg}\n\
         Channel one\nFar :bad:\nNear :near:\nPatterns *\nSyncState {dir}/state/\n\n\
         Channel two\nFar :bad:\nNear :near:\nPatterns *\nSyncState {dir}/state/\n"
    );
    fx.write("cfg", cfg.as_bytes());
    let exe = env!("CARGO_BIN_EXE_mailsync");
    let output = std::process::Command::new(exe)
        .args(["sync", "-V", "-c"])
        .arg(fx.path("cfg"))
        .args(["one", "two", "ex"])
        .env("HOME", fx.dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l == "Skipping due to failed far side store bad."),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("Channels: 3    Boxes: 1    Far: +0 *0 #0 -0    Near: +1 *0 #0 -0"),
        "{stdout}{stderr}"
    );
}

#[test]
fn imap_store_that_cannot_connect_fails_the_run() {
    let mut fx = Fixture::new(Extras::none());
    let dir = fx.dir().display().to_string();
    fx.write(
        "cfg",
        format!(
            "IMAPStore far\nHost 127.0.0.1\nUser u\nPass p\n\n\
             MaildirStore near\nPath {dir}/\nInbox {dir}/nearinbox\n\n\
             Channel ex\nFar :far:box\nNear :near:nearbox\nSyncState *\n"
        )
        .as_bytes(),
    );
    // Nothing listens there (the IMAP tests use a private Dovecot on other ports).
    let result = fx.run(&[]);
    result.assert_code(1);
    assert!(
        result
            .stderr
            .contains("No working address found for 127.0.0.1"),
        "{result}"
    );
    assert!(!fx.exists("nearinbox"), "the near INBOX was created");
}
