//! The `-D` debug categories: each prints something of its own (driver calls, message data,
//! Maildir details, main-loop steps, sync decisions), no line of the `### … ###` form, and
//! enabling them changes no result.

mod support;

use support::inputs::{example_01, example_04, example_06, example_16};
use support::{Fixture, outcome_diff};

/// Runs `args` on a fresh copy of `input` and again with `debug` added on another copy;
/// asserts equal exit codes, summaries and on-disk outcomes; returns the debug run's stdout.
fn compare(input: &Fixture, args: &[&str], debug: &[&str]) -> String {
    let mut plain = input.copy_fresh();
    let plain_run = plain.run(args);
    let mut debugged = input.copy_fresh();
    let with_debug: Vec<&str> = debug.iter().chain(args).copied().collect();
    let debug_run = debugged.run(&with_debug);
    assert_eq!(
        debug_run.code, plain_run.code,
        "exit code with {debug:?}:\n{}{}",
        debug_run.stdout, debug_run.stderr
    );
    assert_eq!(
        debug_run.last_stdout_line(),
        plain_run.last_stdout_line(),
        "summary with {debug:?}"
    );
    let diff = outcome_diff(&debugged.outcome(), &plain.outcome());
    assert!(diff.is_empty(), "{debug:?} changed the result:\n{diff}");
    for line in debug_run.stdout.lines() {
        assert!(
            !(line.starts_with("###") || line.ends_with("###")),
            "{debug:?} printed {line:?}"
        );
    }
    debug_run.stdout
}

fn has_line_starting(stdout: &str, prefix: &str) -> bool {
    stdout.lines().any(|line| line.starts_with(prefix))
}

#[test]
fn debug_categories_do_not_change_results() {
    let inputs = [
        ("example 1", example_01(), vec![]),
        ("example 4", example_04(), vec![]),
        ("example 6", example_06(), vec![]),
        ("example 16", example_16(), vec![]),
        ("example 1 -Tu", example_01(), vec!["-Tu"]),
    ];
    for (name, input, args) in &inputs {
        for debug in [
            &["-D"][..],
            &["-Dd"],
            &["-DD"],
            &["-Dm"],
            &["-DM"],
            &["-Ds"],
        ] {
            let stdout = compare(input, args, debug);
            let want = |prefix: &str| {
                assert!(
                    has_line_starting(&stdout, prefix),
                    "{name} {debug:?}: no {prefix:?} line in\n{stdout}"
                );
            };
            let not = |prefix: &str| {
                assert!(
                    !has_line_starting(&stdout, prefix),
                    "{name} {debug:?}: unexpected {prefix:?} line in\n{stdout}"
                );
            };
            match debug[0] {
                "-D" => {
                    want("driver: far side far: open box farbox -> ok");
                    want("maildir: near side box nearbox is the directory ");
                    want("main: channel ex: pair far farbox <-> near nearbox");
                    want("sync: journal record ");
                    not("driver:   | ");
                }
                "-Dd" => {
                    want("driver: near side near: load range ");
                    not("sync:");
                    not("maildir:");
                }
                "-DD" => {
                    want("driver: far side far: open box farbox");
                    not("sync:");
                }
                "-Dm" => {
                    want("maildir: far side UID ");
                    not("driver:");
                }
                "-DM" => {
                    want("main: channel ex:");
                    not("driver:");
                }
                _ => {
                    want("sync: ");
                    not("driver:");
                    not("maildir:");
                }
            }
        }
    }
}

#[test]
fn driver_data_category_shows_the_messages_and_sync_shows_decisions() {
    let stdout = compare(&example_01(), &[], &["-DD"]);
    // The stored copy's header lines, with the X-TUID the copy carries.
    assert!(stdout.contains("driver:   | Subject: a\n"), "{stdout}");
    assert!(stdout.contains("driver:   | X-TUID: "), "{stdout}");

    let stdout = compare(&example_04(), &[], &["-Ds"]);
    for line in [
        "sync: journal record '* 1 1 48'",
        "sync: far side messages selected for expunging: UIDs [1, 4]",
        "sync: near side messages selected for expunging: UIDs [1, 3]",
        "sync: pass 4: far side UID 1: add 'T', remove ''",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in\n{stdout}"
        );
    }
}

#[test]
fn step_numbering_with_debug_and_tj_keeps_one_hash_line() {
    // -D with -Tj: the ### line is printed once, alone on its line, by -Tj.
    let mut fx = example_01();
    let run = fx.run(&["-D", "-Tj"]);
    run.assert_code(0);
    let hash_lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("###") || l.ends_with("###"))
        .collect();
    assert_eq!(hash_lines, vec!["### 17 steps, 14 entries ###"]);
}
