//! Resumption tests (§3.4 of the sync spec): for every worked example of §9, each run is
//! interrupted at every step with `-Ts<k>` and then resumed by an ordinary run; the result
//! must equal that of one uninterrupted run (mailboxes, `.uidvalidity`, Trash boxes, state
//! file). A second identical run must then change nothing, except where the spec documents
//! otherwise. Multi-run examples are checked run by run, each run starting from the
//! uninterrupted result of the previous one.

mod support;

use support::inputs::*;
use support::*;

fn default() -> ResumeOptions {
    ResumeOptions::default()
}

#[test]
fn resume_example_01_first_sync() {
    check_resume(&example_01(), &[], default());
}

#[test]
fn resume_example_02_flag_merge() {
    check_resume(&example_02(), &[], default());
}

#[test]
fn resume_example_03_far_expunge_three_runs() {
    let after_1 = check_resume(&example_03(), &[], default());
    // Example 3: after `-Xn` emptied the near side, the next run deletes the entry.
    let after_2 = check_resume(
        &after_1,
        &["-Xn"],
        default().second_run(SecondRun::NotChecked),
    );
    check_resume(&after_2, &[], default());
}

#[test]
fn resume_example_04_expunge_both_trash() {
    check_resume(&example_04(), &[], default());
}

#[test]
fn resume_example_05_placeholders() {
    check_resume(&example_05(), &[], default());
}

#[test]
fn resume_example_06_upgrade_three_runs() {
    let after_1 = check_resume(&example_06(), &[], default());
    after_1.rename_suffix(NEAR, ",U=2:2,S", ",U=2:2,FS");
    let after_2 = check_resume(&after_1, &[], default());
    // Example 6: after `-X` removed the placeholder, a later run drops its entry.
    check_resume(
        &after_2,
        &["-X"],
        default().second_run(SecondRun::NotChecked),
    );
}

#[test]
fn resume_example_07_max_messages_first_sync() {
    check_resume(&example_07(), &[], default());
}

#[test]
fn resume_example_08_max_messages_expunge_near() {
    check_resume(&example_08(true), &[], default());
}

#[test]
fn resume_example_08_max_messages_without_expunge() {
    check_resume(&example_08(false), &[], default());
}

#[test]
fn resume_example_09_uidvalidity_recovered() {
    check_resume(&example_09(false), &[], default());
}

#[test]
fn resume_example_10_genuine_uidvalidity_change() {
    check_resume(&example_09(true), &[], ResumeOptions::failing());
}

#[test]
fn resume_example_11_resume_from_journal() {
    check_resume(&example_11(), &[], default());
}

#[test]
fn resume_example_12_journal_without_new() {
    check_resume(&example_12(), &[], default());
}

#[test]
fn resume_example_13_old_and_full_two_runs() {
    let after_1 = check_resume(&example_13(), &[], default());
    check_resume(&after_1, &["-L", "--full"], default());
}

#[test]
fn resume_example_14_one_direction_three_runs() {
    let after_1 = check_resume(&example_14(), &["-L"], default());
    // A run resumed after `+ 0 1` was journalled finds near c paired, so topping goes on to
    // near 3 (§4.6 N1) and the replayed journal makes it save MaxPushedUid 3.
    let topped = "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid 3\nMaxPushedUid 3\n\n1 2 S\n2 3 \n3 1 F\n";
    let after_2 = check_resume(
        &after_1,
        &["-H"],
        default().alternative(Alternative::State(topped)),
    );
    check_resume(&after_2, &[], default());
}

#[test]
fn resume_example_15_legacy_state() {
    check_resume(&example_15(), &[], default());
}

#[test]
fn resume_example_16_expunge_solo() {
    check_resume(&example_16(), &[], default());
}

#[test]
fn resume_example_17_expired_placeholders_two_runs() {
    let after_1 = check_resume(&example_17(), &[], default());
    after_1.rename_suffix(FAR, "m3,U=3:2,S", "m3,U=3:2,FS");
    check_resume(&after_1, &[], default());
}

#[test]
fn resume_example_18_dry_run() {
    check_resume(
        &ab_far_c_near("F"),
        &["-y"],
        default().second_run(SecondRun::Unchanged),
    );
    let with_ext_exit = ResumeOptions {
        code: 96,
        ..default().second_run(SecondRun::Unchanged)
    };
    check_resume(&ab_far_c_near("F"), &["-y", "-e"], with_ext_exit);
}

#[test]
fn resume_example_19_step_limit() {
    check_resume(&ab_far_c_near("F"), &[], default());
}

#[test]
fn resume_example_20_too_many_unread() {
    check_resume(&example_20(), &[], ResumeOptions::failing());
}

#[test]
fn resume_example_21_high_water_mark_with_capital_j() {
    check_resume(&example_21(2), &["-TJ"], default());
}

#[test]
fn resume_example_21_topping_stops_above_max_expired() {
    check_resume(&example_21(1), &["-TJ"], default());
}

#[test]
fn resume_example_21_replay_only_run() {
    let mut after_1 = example_21(2);
    after_1.run(&["-Tj", "-TJ"]).assert_code(0);
    check_resume(&after_1, &["-0", "--no-expunge"], default());
}

#[test]
fn resume_example_22_steps_with_debug() {
    check_resume(&example_01(), &["-D"], default());
}

// With `-D` the debug proxies count a step per store operation as well, so a run can also be
// stopped between the operations of one record: Examples 1 (above, as Example 22), 4 (trash and
// expunge, without TrashRemoteNew), 6 (the upgrade run) and 8 (expiration) are resumed from
// every such step too.

#[test]
fn resume_example_04_without_trash_remote_new_with_proxy_steps() {
    check_resume(&example_04_with(false), &["-D"], default());
}

// Example 4 as specified (far `TrashRemoteNew yes`): near c is copied into the far Trash, a
// store on the far side that `-D` counts as a step of its own, before its `T 1 3` record.
// Steps: 1–4 `+ 0 3` `- 0 3` `+ 4 0` `- 4 0`; 5 flag change of far a, 6 `* 1 1 48`; 7 trash
// move of far a, 8 `T 0 1`; 9 trash move of far d, 10 `T 0 4`; 11 store of near c into
// fartrash; 12 `T 1 3`; 13 and 14 the expunges. A stop at 11 is §3.4's "known imperfection":
// no record precedes a remote trash copy, so the resumed run cannot know it was made and copies
// c into fartrash again (observed with the reference). Every other stop resumes exactly.
#[test]
fn resume_example_04_with_trash_remote_new_with_proxy_steps() {
    let repeated = RepeatedRemoteTrashCopy {
        step: 11,
        trash: "fartrash",
        subject: "c",
    };
    check_resume(
        &example_04_with(true),
        &["-D"],
        default().repeated_remote_trash_copy(repeated),
    );
}

#[test]
fn resume_example_06_upgrade_with_proxy_steps() {
    let mut after_1 = example_06();
    after_1.run(&[]).assert_code(0);
    after_1.rename_suffix(NEAR, ",U=2:2,S", ",U=2:2,FS");
    check_resume(&after_1, &["-D"], default());
}

#[test]
fn resume_example_08_with_proxy_steps() {
    check_resume(&example_08(true), &["-D"], default());
}

#[test]
fn resume_example_23_expired_one_run_later_two_runs() {
    // Example 23: the second run expires a pushed message, so run 1 is not idempotent; a run
    // resumed after the last copy was journalled already counts the pushed messages (§4.7).
    let after_1 = check_resume(
        &example_23(),
        &[],
        default()
            .second_run(SecondRun::NotChecked)
            .alternative(Alternative::OneMoreRun),
    );
    check_resume(&after_1, &[], default());
}

#[test]
fn resume_example_24a_gone_without_flags() {
    check_resume(&example_24a("Sync Gone"), &["-TJ"], default());
}

#[test]
fn resume_example_24a_gone_flags() {
    check_resume(&example_24a("Sync Gone Flags"), &["-TJ"], default());
}

#[test]
fn resume_example_24b_copies_carry_flags() {
    check_resume(&example_24b(), &[], default());
}

// `-Tz` avoids the one-second wait of the TUID re-listing (§4.11, §6.2); it changes no result.
//
// With `Sync Pull` the uninterrupted run loses track of its copy (§4.11, Example 25), so
// resumption cannot reproduce it exactly: a resumed run that finds a TUID in the journal loads
// near open-ended and then does find its copy, and a run stopped right after the `&` record
// copies the still pending message again. What must hold is that no mail is lost and the
// far box is untouched; the second run after an uninterrupted run must change nothing.
#[test]
fn resume_example_25_tu_pull_only() {
    let input = example_25(true);
    let args = ["-Tu", "-Tz"];
    let mut reference = input.copy_fresh();
    reference.run(&args).assert_code(0);
    let mut again = reference.copy_fresh();
    let before = again.exact_outcome();
    again.run(&args).assert_code(0);
    assert_eq!(
        again.exact_outcome(),
        before,
        "second run changed something"
    );

    let mut counting = input.copy_fresh();
    let counted = counting.run(&["-Tu", "-Tz", "-Tj"]);
    counted.assert_code(0);
    let (steps, _) = counted
        .step_line()
        .unwrap_or_else(|| panic!("no ### line: {counted}"));
    assert!(steps >= 1, "the run journals its copy: {counted}");
    let far_before = input.messages(FAR);
    for k in 1..=steps {
        let mut attempt = input.copy_fresh();
        let limit = format!("-Ts{k}");
        attempt.run(&["-Tu", "-Tz", &limit]).assert_code(100);
        attempt.run(&args).assert_code(0);
        assert_eq!(
            attempt.messages(FAR),
            far_before,
            "far changed after -Ts{k}"
        );
        let copies_of_b = attempt
            .messages(NEAR)
            .iter()
            .filter(|m| m.content == with_tuid(&std_msg("b")))
            .count();
        assert!(copies_of_b >= 1, "b was lost after stopping at step {k}");
        assert!(attempt.state().is_some(), "no state after -Ts{k}");
        attempt.assert_no_leftovers();
    }
}

#[test]
fn resume_example_25_tu_default_operations() {
    check_resume(&example_25(false), &["-Tu", "-Tz"], default());
}

#[test]
fn resume_example_26a_trash_new_only() {
    check_resume(&example_26(true), &["-Tx"], default());
}

#[test]
fn resume_example_26b_trash_all() {
    check_resume(&example_26(false), &["-Tx"], default());
}

/// Enough messages each way that copies go in batches (group commit: one flush, then the
/// batch's `<`/`>` records), with flags on most of them so `%` records interleave.
fn batched_copies() -> Fixture {
    let fx = Fixture::new(Extras::none());
    let flags = ["S", "", "FS", "RS", "S", "P"];
    for uid in 1..=12u32 {
        fx.msg(
            FAR,
            &format!("far{uid}"),
            uid,
            flags[uid as usize % flags.len()],
        );
    }
    for uid in 1..=9u32 {
        fx.msg(
            NEAR,
            &format!("near{uid}"),
            uid,
            flags[(uid as usize + 1) % flags.len()],
        );
    }
    fx
}

#[test]
fn resume_batched_copies() {
    check_resume(&batched_copies(), &[], default());
}

#[test]
fn resume_batched_copies_with_proxy_steps() {
    check_resume(&batched_copies(), &["-D"], default());
}

#[test]
fn batched_copies_record_each_uid_after_the_batch_was_stored() {
    let mut fx = batched_copies().copy_fresh();
    fx.run(&["-Tj"]).assert_code(0);
    let journal = fx.journal().unwrap_or_else(|| panic!("no journal kept"));
    // Near receives 12 copies in one batch: every `%` of a pull copy comes before the first
    // `>` record, and the `>` records follow in copy order (far UIDs 1..12).
    let first_assign = journal
        .iter()
        .position(|line| line.starts_with("> "))
        .unwrap_or_else(|| panic!("no > record: {journal:?}"));
    let pull_flags_after = journal[first_assign..]
        .iter()
        .filter(|line| line.starts_with("% ") && !line.starts_with("% 0 "))
        .count();
    assert_eq!(
        pull_flags_after, 0,
        "a % record after the batch: {journal:?}"
    );
    let assigned: Vec<u32> = journal
        .iter()
        .filter_map(|line| line.strip_prefix("> "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(assigned, (1..=12).collect::<Vec<u32>>(), "{journal:?}");
}
