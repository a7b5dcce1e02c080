//! The progress counter of §7.3 through a pseudo-terminal (`script` from util-linux): shown
//! only on a terminal at normal verbosity without debug output, with real totals, erased
//! before any other output and at the end.

mod support;

use std::process::Command;

use support::inputs::example_01;
use support::{FAR, Fixture, NEAR};

/// Runs mailsync on the fixture with stdout on a pseudo-terminal; returns the exit code and
/// everything written to the terminal (stdout and stderr, with the terminal's `\r\n`).
fn run_on_terminal(fx: &mut Fixture, args: &[&str], columns: &str) -> Option<(i32, String)> {
    // `script` is in Debian's essential bsdutils package (scripts/test installs it if missing):
    // without it the test fails rather than passing unchecked.
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "script(1) is needed for the pseudo-terminal tests"
    );
    fx.age_directories();
    let mut command = format!(
        "{} sync -c {}/cfg",
        env!("CARGO_BIN_EXE_mailsync"),
        fx.dir().display()
    );
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    command.push_str(" ex");
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("COLUMNS", columns)
        .env("HOME", fx.dir())
        .current_dir(fx.dir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run script: {e}"));
    let code = output.status.code().unwrap_or(-1);
    Some((code, String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// One progress line's counters: (channels, boxes, [far, near] side parts as
/// [(done, total); 4]).
type Parsed = ([u32; 4], [[(u32, u32); 4]; 2]);

fn parse_progress(line: &str) -> Parsed {
    fn fail(line: &str) -> ! {
        panic!("not a progress line: {line:?}")
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() != 14 || words[0] != "C:" || words[2] != "B:" {
        fail(line);
    }
    let pair = |word: &str| -> (u32, u32) {
        let (done, total) = word.split_once('/').unwrap_or_else(|| fail(line));
        (
            done.parse().unwrap_or_else(|_| fail(line)),
            total.parse().unwrap_or_else(|_| fail(line)),
        )
    };
    let (cd, ct) = pair(words[1]);
    let (bd, bt) = pair(words[3]);
    let mut sides = [[(0, 0); 4]; 2];
    for (s, start) in [(0, 5), (1, 10)] {
        for (k, sigil) in ['+', '*', '#', '-'].iter().enumerate() {
            let word = words[start + k];
            let rest = word.strip_prefix(*sigil).unwrap_or_else(|| fail(line));
            sides[s][k] = pair(rest);
        }
    }
    ([cd, ct, bd, bt], sides)
}

/// Splits terminal output into progress lines (as shown, without `\r`) and the other
/// lines, checking that each shown progress line is erased (by `\r`, spaces of its length
/// and `\r`) before any other output and at the end.
fn split_output(text: &str) -> (Vec<String>, Vec<String>) {
    let mut progress = Vec::new();
    let mut other = Vec::new();
    let mut rest = text;
    let mut shown: Option<String> = None;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("\rC: ") {
            let end = after.find('\r').unwrap_or(after.len());
            let line = format!("C: {}", &after[..end]);
            shown = Some(line.clone());
            progress.push(line);
            rest = &after[end..];
            continue;
        }
        if let Some(line) = &shown {
            let erase = format!("\r{}\r", " ".repeat(line.chars().count()));
            if let Some(after) = rest.strip_prefix(&erase) {
                shown = None;
                rest = after;
                continue;
            }
        }
        assert!(
            shown.is_none(),
            "output while the progress line {shown:?} was shown: {rest:?}"
        );
        let end = rest
            .find("\r\n")
            .unwrap_or_else(|| panic!("unterminated: {rest:?}"));
        other.push(rest[..end].to_string());
        rest = &rest[end + 2..];
    }
    assert!(shown.is_none(), "progress line left on screen: {text:?}");
    (progress, other)
}

/// Files in `cur/` and `new/` of a box.
fn message_count(fx: &Fixture, box_name: &str) -> usize {
    ["cur", "new"]
        .iter()
        .map(|sub| {
            std::fs::read_dir(fx.path(box_name).join(sub))
                .map(|entries| entries.count())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn progress_on_a_terminal_has_real_totals_and_is_erased() {
    let mut fx = example_01();
    // -Tu makes the copies be searched for by a rescan, which waits for the directory's
    // second to pass: the run lasts more than 300 ms, so later refreshes are shown too.
    let Some((code, text)) = run_on_terminal(&mut fx, &["-Tu"], "80") else {
        return;
    };
    assert_eq!(code, 0, "{text}");
    let (progress, other) = split_output(&text);
    assert_eq!(
        other.last().map(String::as_str),
        Some("Channels: 1    Boxes: 1    Far: +1 *0 #0 -0    Near: +2 *0 #0 -0")
    );
    // The first refresh comes when the channel's boxes are known, before any work.
    assert_eq!(
        progress.first().map(String::as_str),
        Some("C: 0/1  B: 0/1  F: +0/0 *0/0 #0/0 -0/0  N: +0/0 *0/0 #0/0 -0/0")
    );
    let parsed: Vec<Parsed> = progress.iter().map(|l| parse_progress(l)).collect();
    for (line, (run, sides)) in progress.iter().zip(&parsed) {
        assert!(run[0] <= run[1] && run[2] <= run[3], "{line}");
        for side in sides {
            for (done, total) in side {
                assert!(done <= total, "done above total: {line}");
            }
        }
        // Once copying started, all copies are in the totals.
        if sides[0][0].0 + sides[1][0].0 > 0 {
            assert_eq!((sides[0][0].1, sides[1][0].1), (1, 2), "{line}");
        }
    }
    for window in parsed.windows(2) {
        let ((before_run, before), (after_run, after)) = (&window[0], &window[1]);
        for k in 0..4 {
            assert!(
                after_run[k] >= before_run[k],
                "progress went back: {progress:?}"
            );
            for s in 0..2 {
                assert!(after[s][k].0 >= before[s][k].0, "{progress:?}");
                assert!(after[s][k].1 >= before[s][k].1, "{progress:?}");
            }
        }
    }
    assert!(
        parsed.iter().any(|(_, sides)| sides[1][0].0 > 0),
        "no refresh after the waits: {progress:?}"
    );
    // The result is that of Example 1.
    assert_eq!(message_count(&fx, FAR), 3);
    assert_eq!(message_count(&fx, NEAR), 3);
}

#[test]
fn progress_line_is_cut_to_the_terminal_width() {
    let mut fx = example_01();
    let Some((code, text)) = run_on_terminal(&mut fx, &[], "50") else {
        return;
    };
    assert_eq!(code, 0, "{text}");
    let (progress, _) = split_output(&text);
    // "C: 0/1  B: 0/1" is 14 characters: each side part is cut to (50 - 14 - 10) / 2 = 13.
    assert_eq!(
        progress.first().map(String::as_str),
        Some("C: 0/1  B: 0/1  F: +0/0 *0/0 #0~  N: +0/0 *0/0 #0~")
    );
}

#[test]
fn no_progress_when_verbose_quiet_or_debugging() {
    for args in [&["-V"][..], &["-q"], &["-Dm"]] {
        let mut fx = example_01();
        let Some((code, text)) = run_on_terminal(&mut fx, args, "80") else {
            return;
        };
        assert_eq!(code, 0, "{args:?}: {text}");
        assert!(!text.contains("C: "), "{args:?}: {text:?}");
        let (progress, _) = split_output(&text);
        assert!(progress.is_empty());
    }
}
