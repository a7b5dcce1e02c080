//! Checks the systemd units in `contrib/systemd/` with `systemd-analyze verify`.
//!
//! The units start `/usr/local/bin/mailsync`; the test points them at the binary cargo built,
//! so that the check does not depend on an installed copy.

use std::path::{Path, PathBuf};
use std::process::Command;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

/// Copies the named units into a temp dir with ExecStart pointing at the built binary.
fn prepared_units(names: &[&str]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = env!("CARGO_BIN_EXE_mailsync");
    let mut paths = Vec::new();
    for name in names {
        let text = std::fs::read_to_string(units_dir().join(name)).expect("unit file");
        assert!(
            text.contains("/usr/local/bin/mailsync") || name.ends_with(".timer"),
            "{name} should start /usr/local/bin/mailsync"
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/local/bin/mailsync", binary)).expect("write");
        paths.push(path);
    }
    (dir, paths)
}

/// Runs `systemd-analyze [--user] verify` and returns (success, everything it printed).
fn verify(user: bool, units: &[PathBuf], runtime_dir: &Path) -> (bool, String) {
    let mut command = Command::new("systemd-analyze");
    if user {
        command.arg("--user").env("XDG_RUNTIME_DIR", runtime_dir);
    }
    command.arg("verify").arg("--man=no").args(units);
    let output = command
        .output()
        .expect("systemd-analyze must be installed (scripts/test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn system_template_service_and_timer_verify_cleanly() {
    let (dir, units) = prepared_units(&["mailsync@.service", "mailsync@.timer"]);
    let (ok, text) = verify(false, &units, dir.path());
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify complained:\n{text}"
    );
}

#[test]
fn user_service_and_timer_verify_cleanly() {
    let (dir, units) = prepared_units(&["mailsync.service", "mailsync.timer"]);
    let (ok, text) = verify(true, &units, dir.path());
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze --user verify complained:\n{text}"
    );
}

#[test]
fn the_check_notices_a_broken_unit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("broken.service");
    std::fs::write(&unit, "[Service]\nExecStart=/bin/true\nNoSuchSetting=1\n").expect("write");
    let (_, text) = verify(false, &[unit], dir.path());
    assert!(
        text.contains("NoSuchSetting"),
        "expected a complaint, got:\n{text}"
    );
}

#[test]
fn timers_start_their_service_periodically() {
    for (timer, user) in [("mailsync@.timer", false), ("mailsync.timer", true)] {
        let text = std::fs::read_to_string(units_dir().join(timer)).expect("timer");
        assert!(text.contains("OnUnitActiveSec="), "{timer} has no period");
        assert!(
            text.contains("WantedBy=timers.target"),
            "{timer} is not installable"
        );
        let service = units_dir().join(timer.replace(".timer", ".service"));
        assert!(
            service.exists(),
            "{timer} has no service next to it (user: {user})"
        );
    }
}
