//! Crash tests: the real `mailsync` binary syncs a channel (IMAP → Maildir, Maildir → IMAP,
//! both ways between IMAP and Maildir, both ways between two Maildirs) and is killed with
//! SIGKILL at random instants; then it is run again until a run completes, and both sides are
//! compared message by message (Message-ID and body hash: nothing lost, nothing duplicated,
//! flags equal to the last change another client made, deleted mail gone) and with the state
//! file (every message paired once, each pair the same message, no journal left).
//!
//! Between cycles "another client" adds messages (small and large), changes flags and deletes
//! messages on the side(s) the channel reads from (Dovecot through doveadm, Maildir directly).
//! The kill instant is drawn from 0 to a little over the median duration of recent complete
//! runs.
//!
//! Kills per direction: `MAILSYNC_KILLS`, else 200 with `MAILSYNC_LONG=1` (the long mode,
//! `scripts/long`), else a few. The seed is printed; `MAILSYNC_SEED=<n>` replays a run.

mod dovecot;
mod reliability;

use std::time::Duration;

use reliability::{Direction, Rng, Server, Tally, World, count};

/// Runs kill cycles on a channel until `MAILSYNC_KILLS` kills were made, then prints the
/// category's line and asserts that nothing was lost, duplicated or left inconsistent.
fn crash_loop(category: &str, far_imap: bool, near_imap: bool, direction: Direction) {
    let server = (far_imap || near_imap).then(|| Server::start(4));
    let mut rng = Rng::from_env(category);
    let seed_hint = "(see the seed printed above; MAILSYNC_SEED replays it)";
    let target = count("KILLS", 6, 200) as u64;
    let mut world = World::new(server.as_ref(), far_imap, near_imap, direction);
    for _ in 0..8 {
        let side = *rng.pick(&world.writable_sides());
        world.add_message(&mut rng, side);
    }
    let mut tally = Tally::default();
    let (_, first) = world
        .run_to_completion(1)
        .unwrap_or_else(|e| panic!("{category}: first run: {e}"));
    world.verify(&mut tally, "first run");
    // Durations of recent complete runs: kill instants are drawn up to a little over them.
    let mut recent = vec![first.elapsed];
    let mut cycle = 0;
    let mut completed_before_kill = 0u64;
    while tally.tried < target && tally.problems.is_empty() {
        cycle += 1;
        world.mutate(&mut rng);
        let kills = 1 + rng.below(3);
        for _ in 0..kills {
            // Up to 1.2 × the median recent duration: a max would let one slow run (a busy
            // machine) push most kills past the end of the next runs.
            let mut sorted = recent.clone();
            sorted.sort();
            let typical = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
            let span = (typical.as_micros() as u64 * 6 / 5).max(20_000);
            let delay = Duration::from_micros(rng.below(span));
            let run = world.run_killed_after(delay);
            match run.code {
                None => {
                    tally.tried += 1;
                    if tally.tried % 25 == 0 {
                        eprintln!(
                            "{category}: {} kills so far, cycle {cycle}, {} messages",
                            tally.tried,
                            world.expected.len()
                        );
                    }
                }
                Some(0) => {
                    completed_before_kill += 1;
                    recent.push(run.elapsed);
                }
                Some(_) => tally
                    .problems
                    .push(format!("cycle {cycle}: a run after a kill failed:\n{run}")),
            }
        }
        match world.run_to_completion(3) {
            Ok((failed, done)) => {
                for run in failed {
                    tally.problems.push(format!(
                        "cycle {cycle}: a run resuming after a kill failed:\n{run}"
                    ));
                }
                recent.push(done.elapsed);
            }
            Err(e) => tally.problems.push(format!("cycle {cycle}: {e}")),
        }
        if recent.len() > 8 {
            recent.remove(0);
        }
        world.verify(&mut tally, &format!("cycle {cycle}"));
    }
    println!(
        "{category}: {cycle} cycles, {} kills, {completed_before_kill} runs ended before their kill, {} messages on each side at the end, {} deleted",
        tally.tried,
        world.expected.len(),
        world.deleted.len()
    );
    tally.print(category);
    tally.assert_clean(category, seed_hint);
    assert!(
        tally.tried >= target,
        "{category}: only {} kills of {target}",
        tally.tried
    );
}

#[test]
fn killed_imap_to_maildir_runs_resume_without_loss() {
    crash_loop("crash IMAP->Maildir", true, false, Direction::Pull);
}

#[test]
fn killed_maildir_to_imap_runs_resume_without_loss() {
    crash_loop("crash Maildir->IMAP", true, false, Direction::Push);
}

#[test]
fn killed_two_way_imap_maildir_runs_converge() {
    crash_loop("crash IMAP<->Maildir", true, false, Direction::Both);
}

#[test]
fn killed_two_way_maildir_maildir_runs_converge() {
    crash_loop("crash Maildir<->Maildir", false, false, Direction::Both);
}

/// Regression (found by these tests): with `Sync Push` and `Expunge Both`, a message deleted on
/// the near Maildir must leave the IMAP far side, also when an earlier run (killed after its
/// flag update) already gave the far copy `\Deleted`. The far box used not to be loaded, so
/// the far copy kept `\Deleted` forever.
#[test]
fn push_deletion_is_expunged_on_the_imap_far_side() {
    let server = Server::start(2);
    let mut rng = Rng::from_env("push deletion");
    let mut world = World::new(Some(&server), true, false, Direction::Push);
    let first = world.add_message(&mut rng, 1);
    let second = world.add_message(&mut rng, 1);
    // Three more, so that two deletions stay below the mass-deletion guard's 50 %.
    for _ in 0..3 {
        world.add_message(&mut rng, 1);
    }
    let run = world.run();
    assert_eq!(run.code, Some(0), "{run}");
    let reliability::Side::Imap(user) = &world.sides[0] else {
        panic!("far side is IMAP")
    };
    // As a killed run leaves it: T already set on the far copy of the first message.
    let far_uid = world.sides[0]
        .list(Some(&server))
        .into_iter()
        .find(|f| f.id == first)
        .expect("first message on far")
        .uid
        .to_string();
    server.must(&[
        "flags",
        "add",
        "-u",
        user,
        "\\Deleted",
        "mailbox",
        "INBOX",
        "uid",
        &far_uid,
    ]);
    for id in [&first, &second] {
        world.sides[1].delete(None, id);
        world.expected.remove(id);
        world.deleted.insert(id.clone());
    }
    let run = world.run();
    assert_eq!(run.code, Some(0), "{run}");
    let mut tally = Tally::default();
    world.verify(&mut tally, "after the deletions");
    tally.assert_clean("push deletion", "");
    assert_eq!(tally.compared, 6, "three messages compared on both sides");
}

/// Regression (found by these tests): a flag change pushed to an IMAP far side is journalled
/// only once the server has it. The IMAP store queues flag changes and sends them in a batch;
/// the `*` record used to be written at once, so a run killed before the batch went out left
/// a state claiming the new flags and the far copy kept its old flags for good. Here a proxy
/// holds back the UID STORE and the run is killed while it waits.
#[test]
fn a_flag_change_is_journalled_only_once_the_server_has_it() {
    use reliability::proxy::{Fault, FaultKind, FaultProxy, Flow, Trigger};
    let server = Server::start(2);
    let proxy = FaultProxy::start(server.dovecot.port);
    let mut rng = Rng::from_env("pushed flags");
    let mut world = World::new(Some(&server), true, false, Direction::Push);
    world.write_config(&reliability::account_lines_for_port(proxy.port, 30), "");
    let ids: Vec<String> = (0..4).map(|_| world.add_message(&mut rng, 1)).collect();
    let run = world.run();
    assert_eq!(run.code, Some(0), "{run}");
    for (id, flags) in ids.iter().zip(["FS", "", "R", "DS"]) {
        world.sides[1].set_flags(None, id, flags);
        if let Some(e) = world.expected.get_mut(id) {
            e.flags = flags.to_string();
        }
    }
    proxy.arm(Fault {
        kind: FaultKind::Stall(Duration::from_secs(20)),
        flow: Flow::ClientToServer,
        trigger: Trigger::Text("UID STORE"),
    });
    let mut child = world.spawn();
    let started = std::time::Instant::now();
    while proxy.fired_count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run sent no UID STORE"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) without sending UID STORE");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Whatever the run would journal before the server answered is written by now.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().expect("kill mailsync");
    let _ = child.wait();
    proxy.disarm();
    let resumed = world.run();
    assert_eq!(resumed.code, Some(0), "{resumed}");
    let mut tally = Tally::default();
    world.verify(&mut tally, "resumed after a kill during UID STORE");
    tally.assert_clean("pushed flags", "");
}
