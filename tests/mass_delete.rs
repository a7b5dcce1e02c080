//! The mass-deletion guard (a mailsync extension): a side that suddenly lost more than
//! `MaxDeletePercent` (default 50) of the messages the state knows, while the other side
//! still has them, gets no deletions propagated, an error naming channel, box, side and
//! counts, and exit code 1, unless `--allow-mass-delete` confirms; the state is not advanced,
//! so the run after restoring the box syncs normally. A Maildir whose store directory
//! vanished (an unmounted volume) is never treated as empty nor created.

mod support;

use std::fs;

use support::{Extras, FAR, Fixture, NEAR, STATE, ZERO_SUMMARY};

const COUNT: u32 = 100;

/// 100 messages on both sides, all paired and seen.
fn hundred(extras: Extras) -> Fixture {
    let fx = Fixture::new(extras);
    let mut state = format!(
        "FarUidValidity 1000\nNearUidValidity 2000\nMaxPulledUid {COUNT}\nMaxPushedUid {COUNT}\n\n"
    );
    for uid in 1..=COUNT {
        fx.msg(FAR, &format!("m{uid}"), uid, "S");
        fx.msg(NEAR, &format!("m{uid}"), uid, "S");
        state.push_str(&format!("{uid} {uid} S\n"));
    }
    fx.write_state(&state);
    fx
}

/// File names in `cur/` of a box, sorted.
fn cur_files(fx: &Fixture, box_name: &str) -> Vec<String> {
    fx.dir_names(&format!("{box_name}/cur"))
}

/// Removes the messages m<first>..=m<last> from `cur/` of a box.
fn remove_messages(fx: &Fixture, box_name: &str, first: u32, last: u32) {
    for uid in first..=last {
        let path = fx.path(box_name).join(format!("cur/mm{uid},U={uid}:2,S"));
        fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// How many messages of a box carry T.
fn deleted_count(fx: &Fixture, box_name: &str) -> usize {
    cur_files(fx, box_name)
        .iter()
        .filter(|name| name.ends_with('T'))
        .count()
}

fn summary_with(far: &str, near: &str) -> String {
    format!("Channels: 1    Boxes: 1    Far: {far}    Near: {near}")
}

#[test]
fn wiped_near_box_is_refused_and_the_restored_box_syncs_normally() {
    let mut fx = hundred(Extras::none());
    let far_before = cur_files(&fx, FAR);
    let near_before = cur_files(&fx, NEAR);
    let state_before = fx.state();
    remove_messages(&fx, NEAR, 1, COUNT);

    let run = fx.run(&[]);
    run.assert_code(1);
    assert!(
        run.stderr.lines().any(|line| line.starts_with(
            "Error: channel ex: near side box nearbox lost 100 of the 100 messages the sync \
             state knows, while far side box farbox still has them; not propagating these \
             deletions (more than MaxDeletePercent 50%)."
        ) && line.contains("--allow-mass-delete")),
        "stderr: {}",
        run.stderr
    );
    // Nothing deleted on far, the state not advanced, nothing left behind.
    assert_eq!(cur_files(&fx, FAR), far_before);
    assert_eq!(fx.state(), state_before);
    for leftover in [".journal", ".new", ".lock"] {
        assert!(
            !fx.exists(&format!("{STATE}{leftover}")),
            "{leftover} left behind"
        );
    }

    // The box comes back (the volume is mounted again): an ordinary run, no changes.
    for uid in 1..=COUNT {
        fx.msg(NEAR, &format!("m{uid}"), uid, "S");
    }
    assert_eq!(cur_files(&fx, NEAR), near_before);
    fx.run(&[]).assert_code(0).assert_stdout(&[ZERO_SUMMARY]);
    assert_eq!(cur_files(&fx, FAR), far_before);
    assert_eq!(fx.state(), state_before);
}

#[test]
fn wiped_far_box_is_refused_too() {
    let mut fx = hundred(Extras::none().channel("Expunge Near"));
    remove_messages(&fx, FAR, 1, COUNT);
    let run = fx.run(&[]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "Error: channel ex: far side box farbox lost 100 of the 100 messages the sync \
             state knows, while near side box nearbox still has them;"
        ),
        "stderr: {}",
        run.stderr
    );
    assert_eq!(cur_files(&fx, NEAR).len(), COUNT as usize);
    assert_eq!(deleted_count(&fx, NEAR), 0);
}

#[test]
fn allow_mass_delete_propagates_the_deletions() {
    let mut fx = hundred(Extras::none());
    remove_messages(&fx, NEAR, 1, COUNT);
    fx.run(&["--allow-mass-delete"])
        .assert_code(0)
        .assert_stdout(&[&summary_with("+0 *100 #0 -0", "+0 *0 #0 -0")]);
    assert_eq!(deleted_count(&fx, FAR), COUNT as usize);

    // With Expunge on far the messages go for good.
    let mut fx = hundred(Extras::none());
    remove_messages(&fx, NEAR, 1, COUNT);
    fx.run(&["--allow-mass-delete", "-Xf"]).assert_code(0);
    assert!(cur_files(&fx, FAR).is_empty());
}

#[test]
fn deletions_below_the_threshold_propagate_as_usual() {
    let mut fx = hundred(Extras::none());
    remove_messages(&fx, NEAR, 1, 50);
    fx.run(&[])
        .assert_code(0)
        .assert_stdout(&[&summary_with("+0 *50 #0 -0", "+0 *0 #0 -0")]);
    assert_eq!(deleted_count(&fx, FAR), 50);
    let far = cur_files(&fx, FAR);
    assert!(far.contains(&"mm1,U=1:2,ST".to_string()), "{far:?}");
    assert!(far.contains(&"mm51,U=51:2,S".to_string()), "{far:?}");
}

#[test]
fn max_delete_percent_from_channel_and_global_section() {
    // Channel: 5 % makes 10 deletions too many.
    let mut fx = hundred(Extras::none().channel("MaxDeletePercent 5"));
    remove_messages(&fx, NEAR, 1, 10);
    let run = fx.run(&[]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("lost 10 of the 100 messages the sync state knows")
            && run.stderr.contains("(more than MaxDeletePercent 5%)"),
        "{}",
        run.stderr
    );
    assert_eq!(deleted_count(&fx, FAR), 0);

    // Global default, before the channel.
    let mut fx = hundred(Extras::none());
    let cfg = String::from_utf8_lossy(&fx.read("cfg").unwrap_or_default()).into_owned();
    fx.write("cfg", format!("MaxDeletePercent 5\n\n{cfg}").as_bytes());
    remove_messages(&fx, NEAR, 1, 10);
    fx.run(&[]).assert_code(1);
    assert_eq!(deleted_count(&fx, FAR), 0);

    // The channel's own value wins over the global one.
    let mut fx = hundred(Extras::none().channel("MaxDeletePercent 20"));
    let cfg = String::from_utf8_lossy(&fx.read("cfg").unwrap_or_default()).into_owned();
    fx.write("cfg", format!("MaxDeletePercent 5\n\n{cfg}").as_bytes());
    remove_messages(&fx, NEAR, 1, 10);
    fx.run(&[]).assert_code(0);
    assert_eq!(deleted_count(&fx, FAR), 10);

    // 100 switches the guard off.
    let mut fx = hundred(Extras::none().channel("MaxDeletePercent 100"));
    remove_messages(&fx, NEAR, 1, COUNT);
    fx.run(&[]).assert_code(0);
    assert_eq!(deleted_count(&fx, FAR), COUNT as usize);

    // Out of range.
    let mut fx = hundred(Extras::none().channel("MaxDeletePercent 101"));
    let run = fx.run(&[]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("invalid MaxDeletePercent value '101' (expected 0 to 100)"),
        "{}",
        run.stderr
    );
}

#[test]
fn inbox_on_a_vanished_volume_is_neither_empty_nor_created() {
    let mut fx = Fixture::new(Extras::none().channel("Create Near"));
    fx.msg(FAR, "a", 1, "S");
    let dir = fx.dir().display().to_string();
    let cfg = String::from_utf8_lossy(&fx.read("cfg").unwrap_or_default()).into_owned();
    let cfg = cfg
        .replace(
            &format!("MaildirStore near\nPath {dir}/\nInbox {dir}/nearinbox\n"),
            &format!("MaildirStore near\nInbox {dir}/mnt/inbox\n"),
        )
        .replace("Near :near:nearbox\nSyncState *\n", "Near :near:\n")
        .replace(
            "Channel ex\n",
            &format!("Channel ex\nSyncState {dir}/state/\n"),
        );
    fx.write("cfg", cfg.as_bytes());
    let run = fx.run(&[]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!(
            "Error: channel ex: near side box INBOX: the directory {dir}/mnt that should hold \
             {dir}/mnt/inbox does not exist (unmounted volume?)"
        )),
        "stderr: {}",
        run.stderr
    );
    assert!(
        !fx.exists("mnt"),
        "the vanished volume's directory was created"
    );
    assert_eq!(cur_files(&fx, FAR), vec!["ma,U=1:2,S".to_string()]);
}

#[test]
fn store_path_on_a_vanished_volume_is_neither_empty_nor_created() {
    let mut fx = Fixture::new(Extras::none().channel("Create Near"));
    fx.msg(FAR, "a", 1, "S");
    let dir = fx.dir().display().to_string();
    let cfg = String::from_utf8_lossy(&fx.read("cfg").unwrap_or_default()).into_owned();
    let cfg = cfg
        .replace(
            &format!("MaildirStore near\nPath {dir}/\nInbox {dir}/nearinbox\n"),
            &format!("MaildirStore near\nPath {dir}/mnt/mail/\nInbox {dir}/nearinbox\n"),
        )
        .replace("SyncState *\n", &format!("SyncState {dir}/state/\n"));
    fx.write("cfg", cfg.as_bytes());
    let run = fx.run(&[]);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("{dir}/mnt/mail")),
        "stderr: {}",
        run.stderr
    );
    assert!(
        !fx.exists("mnt"),
        "the vanished volume's directory was created"
    );
    assert_eq!(cur_files(&fx, FAR), vec!["ma,U=1:2,S".to_string()]);
}
