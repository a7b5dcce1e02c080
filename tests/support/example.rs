//! Table-driven checks of the worked examples of §9 of the sync specification: an example is
//! its input [`Fixture`] and a list of [`Run`]s, each carrying everything the example says
//! about that run's result. [`check_example`] performs the runs in order and asserts every
//! expectation; a run with a [`Journalled`] variant is also repeated with `-Tj` on a copy of
//! the fixture, where the same boxes, the same state (in `.new`) and the journal must appear,
//! and one with `ext_exit` is repeated with `-e`, which must only change the exit code.

use super::*;

/// The `-Tj` variant of a run: the state goes to `.new`, the journal is kept.
pub struct Journalled {
    /// The `### <steps> steps, <records> entries ###` line printed before the summary.
    pub step_line: &'static str,
    /// The journal lines, TUIDs written as `<tuid>`.
    pub journal: Vec<String>,
}

/// One run of an example and what it must leave behind.
///
/// Unset fields are not checked, with three rules that always apply: stderr must consist of
/// exactly `stderr` (nothing by default); a run that exits 100 must
/// print no summary line; a run that succeeds (exit code 0, or with `-e` 32, 64 or 96) and
/// expects no journal, `.new` or other file must leave no journal, `.new` or lock file behind.
#[derive(Default)]
pub struct Run {
    /// A user's action between the previous run and this one (e.g. flagging a message).
    pub before: Option<fn(&Fixture)>,
    pub args: Vec<&'static str>,
    pub code: i32,
    /// The exact stdout lines; with `debug`, only the `###` lines and the last line are
    /// compared with them (debug output interleaves with the rest).
    pub stdout: Option<Vec<String>>,
    pub debug: bool,
    pub stderr: Vec<&'static str>,
    /// Boxes whose messages must be exactly as before the run.
    pub unchanged: Vec<&'static str>,
    /// Nothing at all may change below the test directory.
    pub nothing_changes: bool,
    /// Expected message listings of boxes.
    pub boxes: Vec<(&'static str, Vec<Listed>)>,
    /// Expected `.uidvalidity` bytes of boxes.
    pub uidvalidity: Vec<(&'static str, &'static str)>,
    /// The committed state file after the run.
    pub state: Option<String>,
    /// There is no committed state file after the run.
    pub no_state: bool,
    /// The `.new` state file after the run.
    pub new_state: Option<String>,
    /// The journal after the run (TUIDs as `<tuid>`).
    pub journal: Option<Vec<String>>,
    /// Exact bytes of further files, relative to the test directory.
    pub files: Vec<(String, String)>,
    /// Further checks of the result.
    pub check: Option<fn(&Fixture)>,
    /// Also run with `-Tj` (on a copy of the fixture as it is before this run).
    pub journalled: Option<Journalled>,
    /// Also run with `-e` (on a copy): this exit code, and the same outcome as the run.
    pub ext_exit: Option<i32>,
}

/// Owned lines, for [`Run::stdout`] and journals.
pub fn lines(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `text` after checking that it has the length the example gives for it.
pub fn sized(text: &str, len: usize) -> String {
    assert_eq!(text.len(), len, "length of {text:?} differs from the spec");
    text.to_string()
}

/// The path of a state file companion (`suffix` like `.new`), for [`Run::files`].
pub fn state_file(suffix: &str) -> String {
    format!("{STATE}{suffix}")
}

/// Performs the runs of an example on `fixture` in order, checking each.
pub fn check_example(mut fixture: Fixture, runs: &[Run]) {
    for (index, run) in runs.iter().enumerate() {
        if let Some(before) = run.before {
            before(&fixture);
        }
        if let Some(journalled) = &run.journalled {
            check_journalled(fixture.copy_fresh(), run, journalled, index + 1);
        }
        let with_ext_exit = run.ext_exit.map(|code| {
            let mut copy = fixture.copy_fresh();
            let mut args = run.args.clone();
            args.push("-e");
            copy.run(&args).assert_code(code);
            copy
        });
        let before = fixture.exact_outcome();
        let result = fixture.run(&run.args);
        check_result(
            &fixture,
            run,
            &result,
            &before,
            run.stdout.clone(),
            index + 1,
        );
        if let Some(copy) = with_ext_exit {
            let (got, want) = (copy.outcome(), fixture.outcome());
            if got != want {
                panic!(
                    "run {} with -e differs from the run without:\n{}",
                    index + 1,
                    outcome_diff(&got, &want)
                );
            }
        }
        if let Some(state) = &run.state {
            fixture.assert_state(state);
        }
        if run.no_state {
            assert!(
                fixture.state().is_none(),
                "run {}: state file written",
                index + 1
            );
        }
        if let Some(new_state) = &run.new_state {
            fixture.assert_file(&state_file(".new"), new_state);
        }
        if let Some(journal) = &run.journal {
            let want: Vec<&str> = journal.iter().map(String::as_str).collect();
            fixture.assert_journal(&want);
        }
        for (path, bytes) in &run.files {
            fixture.assert_file(path, bytes);
        }
        let keeps_files = run.new_state.is_some() || run.journal.is_some() || !run.files.is_empty();
        // 0, or with `-e` 32/64/96 for changes on far/near.
        let succeeded = run.code & !(32 | 64) == 0;
        if succeeded && !keeps_files {
            fixture.assert_no_leftovers();
        }
    }
}

/// The `-Tj` variant of `run` on a copy: same result, the committed state untouched, the
/// expected state in `.new`, and the journal kept.
fn check_journalled(mut copy: Fixture, run: &Run, journalled: &Journalled, number: usize) {
    let state_before = copy.state();
    let before = copy.exact_outcome();
    let mut args = run.args.clone();
    args.push("-Tj");
    let result = copy.run(&args);
    let stdout = run.stdout.as_ref().map(|stdout| {
        let mut with_steps = vec![journalled.step_line.to_string()];
        with_steps.extend(stdout.iter().cloned());
        with_steps
    });
    check_result(&copy, run, &result, &before, stdout, number);
    assert_eq!(
        copy.state(),
        state_before,
        "run {number} with -Tj: the state file must not be committed"
    );
    let new_state = run
        .state
        .as_ref()
        .unwrap_or_else(|| panic!("run {number}: a journalled run needs the expected state"));
    copy.assert_file(&state_file(".new"), new_state);
    let want: Vec<&str> = journalled.journal.iter().map(String::as_str).collect();
    copy.assert_journal(&want);
}

/// The Maildir store's notice before it waits for the clock to tick past a directory's
/// modification time.
const FRESHNESS_NOTICE: &str = "Maildir notice: sleeping due to recent directory modification.";

/// The checks shared by a run and its `-Tj` variant.
fn check_result(
    fixture: &Fixture,
    run: &Run,
    result: &RunResult,
    before: &Outcome,
    stdout: Option<Vec<String>>,
    number: usize,
) {
    result.assert_code(run.code);
    if let Some(stdout) = stdout {
        let want: Vec<&str> = stdout.iter().map(String::as_str).collect();
        if !run.debug {
            // The freshness wait depends on the clock: when the second ticks between a
            // write into a Maildir and its rescan, no wait is needed (nor made by mbsync).
            let unwaited: Vec<&str> = want
                .iter()
                .copied()
                .filter(|line| *line != FRESHNESS_NOTICE)
                .collect();
            if unwaited.len() < want.len() && !result.stdout.contains(FRESHNESS_NOTICE) {
                result.assert_stdout(&unwaited);
            } else {
                result.assert_stdout(&want);
            }
        } else if !ignoring_stdout() {
            let mut got: Vec<&str> = result
                .stdout
                .lines()
                .filter(|l| l.starts_with("###"))
                .collect();
            got.push(result.last_stdout_line());
            assert_eq!(
                got, want,
                "run {number}: step lines and summary; run was:\n{result}"
            );
        }
    }
    if run.code == 100 {
        assert!(
            !result.stdout.lines().any(|l| l.starts_with("Channels:")),
            "run {number}: a stopped run prints no summary: {result}"
        );
    }
    result.assert_stderr(&run.stderr);
    for box_name in &run.unchanged {
        assert_eq!(
            fixture.messages(box_name),
            before.boxes[*box_name].messages,
            "run {number}: {box_name} must not change"
        );
    }
    if run.nothing_changes {
        let after = fixture.exact_outcome();
        if after != *before {
            panic!(
                "run {number} must change nothing:\n{}",
                outcome_diff(&after, before)
            );
        }
    }
    for (box_name, listing) in &run.boxes {
        fixture.assert_box(box_name, listing);
    }
    for (box_name, text) in &run.uidvalidity {
        fixture.assert_uidvalidity(box_name, text);
    }
    if let Some(check) = run.check {
        check(fixture);
    }
}
