//! Network faults: a fault-injecting proxy (tests/reliability/proxy.rs) sits between the real
//! `mailsync` binary and Dovecot on 127.0.0.1 and cuts, stalls (shorter and longer than the
//! configured `Timeout`) or slows the connection at random byte offsets — often inside a
//! message literal of a FETCH response or of an APPEND. Each faulty run must either complete
//! (a short stall, a slow stretch, a fault after the work was done) or end with exit code 1
//! and an error naming the server or the mailbox; the next run without faults must converge:
//! both sides compared message by message, nothing lost or duplicated, the state consistent.
//!
//! Faults per kind: `MAILSYNC_FAULTS`, else 50 with `MAILSYNC_LONG=1`, else a few. The seed
//! is printed; `MAILSYNC_SEED=<n>` replays the choice of faults.

mod dovecot;
mod reliability;

use std::collections::BTreeMap;
use std::time::Duration;

use reliability::proxy::{Fault, FaultKind, FaultProxy, Flow, Trigger};
use reliability::{Direction, Rng, Server, Tally, World, account_lines_for_port, count};

/// The client's `Timeout` (seconds) in these tests.
const TIMEOUT_SECONDS: u32 = 2;

/// The fault categories and how a fault of each is made.
const KINDS: [&str; 4] = [
    "fault cut",
    "fault stall<Timeout",
    "fault stall>Timeout",
    "fault slow",
];

fn make_kind(name: &str, rng: &mut Rng) -> FaultKind {
    match name {
        "fault cut" => FaultKind::Cut,
        "fault stall<Timeout" => FaultKind::Stall(Duration::from_millis(300 + rng.below(1200))),
        "fault stall>Timeout" => FaultKind::Stall(Duration::from_millis(
            u64::from(TIMEOUT_SECONDS) * 1000 + 1500 + rng.below(1000),
        )),
        _ => FaultKind::Slow {
            bytes: 2000 + rng.below(30_000) as usize,
        },
    }
}

/// Runs that hang longer than this are killed and reported (no fault should hang a run).
const HANG_LIMIT: Duration = Duration::from_secs(90);

#[derive(Default)]
struct KindStats {
    tally: Tally,
    /// Faulty runs that still completed (exit 0).
    completed: u64,
    /// Faulty runs that failed with a clear error.
    failed_clearly: u64,
    /// Faults that fired inside a FETCH / APPEND literal.
    in_fetch_literal: u64,
    in_append_literal: u64,
    /// The first error line a faulty run printed (shown in the summary).
    sample_error: Option<String>,
}

#[test]
fn faults_on_the_wire_end_clearly_and_the_next_run_converges() {
    let server = Server::start(4);
    let proxy = FaultProxy::start(server.dovecot.port);
    let mut rng = Rng::from_env("fault proxy");
    let per_kind = count("FAULTS", 2, 50) as u64;
    // Far IMAP through the proxy, near Maildir, both ways: every cycle fetches messages
    // (FETCH literals) and appends others (APPEND literals).
    let mut world = World::new(Some(&server), true, false, Direction::Both);
    world.write_config(&account_lines_for_port(proxy.port, TIMEOUT_SECONDS), "");
    for _ in 0..6 {
        let side = rng.below(2) as usize;
        world.add_message(&mut rng, side);
    }
    let mut stats: BTreeMap<&str, KindStats> = BTreeMap::new();
    let mut general = Tally::default();
    world
        .run_to_completion(1)
        .unwrap_or_else(|e| panic!("first run: {e}"));
    world.verify(&mut general, "first run");
    // Bytes per flow of a recent complete run (to draw offsets from).
    let mut typical = proxy.totals();
    let mut cycle = 0u64;
    let mut attempts = 0u64;
    loop {
        let pending: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| stats.get(k).map_or(0, |s| s.tally.tried) < per_kind)
            .collect();
        if pending.is_empty() || !general.problems.is_empty() {
            break;
        }
        attempts += 1;
        assert!(
            attempts < per_kind * 4 * 6 + 20,
            "faults keep missing their trigger: {attempts} attempts"
        );
        cycle += 1;
        world.mutate(&mut rng);
        let name = *rng.pick(&pending);
        let flow = if rng.chance(50) {
            Flow::ServerToClient
        } else {
            Flow::ClientToServer
        };
        let trigger = if rng.chance(60) {
            Trigger::InLiteral {
                nth: 1 + rng.below(3) as u32,
                permille: rng.below(1000) as u32,
            }
        } else {
            let span = typical[match flow {
                Flow::ServerToClient => 0,
                Flow::ClientToServer => 1,
            }]
            .max(200);
            Trigger::Offset(rng.below(span))
        };
        let fault = Fault {
            kind: make_kind(name, &mut rng),
            flow,
            trigger,
        };
        proxy.arm(fault);
        let run = world.run_killed_after(HANG_LIMIT);
        let fired = proxy.disarm();
        if !proxy.wait_idle(Duration::from_secs(30)) {
            general.problems.push(format!(
                "cycle {cycle}: a connection was still open 30 s after the run"
            ));
        }
        let context = format!("cycle {cycle} ({name}, {flow:?}, {trigger:?})");
        let entry = stats.entry(name).or_default();
        if fired.is_empty() {
            // The trigger lay beyond what this run sent: a fault-free run, not counted.
            if run.code == Some(0) {
                typical = proxy.totals();
            } else {
                general
                    .problems
                    .push(format!("{context}: a run without fault failed:\n{run}"));
            }
        } else {
            entry.tally.tried += 1;
            for f in &fired {
                if f.literal.is_some() {
                    if f.literal_line.contains("FETCH") {
                        entry.in_fetch_literal += 1;
                    } else if f.literal_line.contains("APPEND") {
                        entry.in_append_literal += 1;
                    }
                }
            }
            match run.code {
                Some(0) => entry.completed += 1,
                Some(1) => {
                    if clear_error(&run.stderr) {
                        entry.failed_clearly += 1;
                        if entry.sample_error.is_none() {
                            entry.sample_error = run
                                .stderr
                                .lines()
                                .find(|l| l.to_ascii_lowercase().contains("error"))
                                .map(str::to_string);
                        }
                    } else {
                        entry.tally.problems.push(format!(
                            "{context}: exit 1 without a clear error (fired {fired:?}):\n{run}"
                        ));
                    }
                }
                None => entry.tally.problems.push(format!(
                    "{context}: the run hung for {HANG_LIMIT:?} and was killed:\n{run}"
                )),
                Some(code) => entry
                    .tally
                    .problems
                    .push(format!("{context}: exit code {code}:\n{run}")),
            }
        }
        match world.run_to_completion(2) {
            Ok((failed, _)) => {
                for run in failed {
                    entry
                        .tally
                        .problems
                        .push(format!("{context}: the run after the fault failed:\n{run}"));
                }
            }
            Err(e) => entry.tally.problems.push(format!("{context}: {e}")),
        }
        let tally = if fired.is_empty() {
            &mut general
        } else {
            &mut entry.tally
        };
        world.verify(tally, &context);
        if !entry.tally.problems.is_empty() {
            break;
        }
    }
    for name in KINDS {
        let s = stats.entry(name).or_default();
        println!(
            "{name}: {} faults ({} inside a FETCH literal, {} inside an APPEND literal); {} runs still completed, {} failed with a clear error",
            s.tally.tried, s.in_fetch_literal, s.in_append_literal, s.completed, s.failed_clearly
        );
        if let Some(line) = &s.sample_error {
            println!("{name}: for example: {line}");
        }
        s.tally.print(name);
    }
    general.assert_clean("runs without a fault", "(see the seed above)");
    for name in KINDS {
        stats[name].tally.assert_clean(name, "(see the seed above)");
    }
    for name in KINDS {
        let s = &stats[name];
        assert!(
            s.tally.tried >= per_kind,
            "{name}: only {} of {per_kind} faults fired",
            s.tally.tried
        );
    }
}

/// An error that says where: it names the server or the far store/mailbox.
fn clear_error(stderr: &str) -> bool {
    stderr.lines().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.contains("error")
            && (line.contains("127.0.0.1") || line.contains("far") || line.contains("INBOX"))
    })
}
