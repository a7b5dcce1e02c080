//! The `### <steps> steps, <records> entries ###` line of `-Tj` (sync spec §3.4, §6.2) through
//! the command line on real Maildirs: how the debug proxies (`-D`), the asynchronous far proxy
//! (`-Ta`), several boxes of one channel and a dry run that pretends to create a box count.
//! (The worked examples' own step lines are checked in `sync_examples.rs`.)

mod support;

use support::inputs::{example_01, setup};
use support::*;

/// The `###` lines of a run's stdout, after asserting that it exited 0.
fn step_lines(result: &RunResult) -> Vec<&str> {
    result.assert_code(0);
    result
        .stdout
        .lines()
        .filter(|l| l.starts_with("###"))
        .collect()
}

#[test]
fn verified_step_counts_with_trash_and_flag_changes() {
    // §3.4: Expunge Both, a far Trash, two flag changes and two trash moves.
    for (args, line) in [
        (vec!["-D", "-Tj"], "### 10 steps, 4 entries ###"),
        (vec!["-D", "-Tj", "-Tx"], "### 8 steps, 4 entries ###"),
        (vec!["-Tj"], "### 4 steps, 4 entries ###"),
    ] {
        let mut fx = setup(
            Extras::none().far("Trash fartrash").channel("Expunge Both"),
            &[("a", 1, "S"), ("b", 2, "S")],
            &[("a", 1, "ST"), ("b", 2, "ST")],
            Some(
                "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 S\n",
            ),
        );
        let result = fx.run(&args);
        assert_eq!(step_lines(&result), [line], "{args:?}: {result}");
    }
}

#[test]
fn async_far_hook_counts_only_far_store_steps() {
    let mut fx = example_01();
    let result = fx.run(&["-Ta", "-Tj"]);
    assert_eq!(
        step_lines(&result),
        ["### 15 steps, 14 entries ###"],
        "{result}"
    );
    assert!(result.stdout.starts_with("### "), "{result}");
}

#[test]
fn several_boxes_share_the_step_counter() {
    let mut fx = Fixture::new(Extras::none());
    for name in ["far/one", "far/two", "near/one", "near/two"] {
        fx.make_box(name, 1000, 0);
        if name.starts_with("far") {
            fx.msg(name, "m", 1, "S");
        }
    }
    let r = fx.dir().display().to_string();
    fx.write(
        "cfg",
        format!(
            "MaildirStore far\nPath {r}/far/\nInbox {r}/farinbox\n\nMaildirStore near\nPath {r}/near/\nInbox {r}/nearinbox\n\nChannel ex\nFar :far:\nNear :near:\nPatterns *\nSyncState {r}/state/\n"
        )
        .as_bytes(),
    );
    fx.run(&["-Tj"]).assert_code(0).assert_stdout(&[
        "### 6 steps, 6 entries ###",
        "### 12 steps, 12 entries ###",
        "Channels: 1    Boxes: 2    Far: +0 *0 #0 -0    Near: +2 *0 #0 -0",
    ]);
}

#[test]
fn dry_run_with_create_pretends_an_empty_box() {
    let mut fx = Fixture::new(Extras::none().channel("Create Near"));
    fx.msg(FAR, "a", 1, "S");
    fx.msg(FAR, "b", 2, "");
    std::fs::remove_dir_all(fx.path(NEAR)).expect("cannot remove the near box");
    // | + + F # # % > > : 9 records, plus 1 create and 2 stores through the dry-run proxy.
    fx.run(&["-y", "-Tj"]).assert_code(0).assert_stdout(&[
        "### 12 steps, 9 entries ###",
        &summary("+0 *0 #0 -0", "+2 *0 #0 -0"),
    ]);
    assert!(!fx.exists(NEAR), "a dry run created the near box");
}
