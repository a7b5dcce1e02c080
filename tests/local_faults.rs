//! Local faults, through the binary on real Maildirs: a full disk, a read-only near Maildir,
//! damaged state files, journals and `.uidvalidity` files, and two runs on one channel.
//!
//! Every case checks that the run fails with exit code 1 and an error naming the file (and
//! line, where there is one), that the mail of both Maildirs is untouched, and that the
//! recovery documented in `docs/recovery.md` works: nothing lost, nothing copied twice.
//!
//! The disk-full and read-only cases mount file systems (a small tmpfs, a read-only bind
//! mount): they need root or CAP_SYS_ADMIN, as in CI, and FAIL with a clear message where
//! mounting is not permitted.

mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use support::*;

/// The channel label of the harness's channel in messages.
const LABEL: &str = ":far:farbox-:near:nearbox";

/// Every file of both Maildirs (messages in `cur/ new/ tmp/`, and `.uidvalidity`) with its
/// bytes; the sync state files kept in the near box are left out.
fn mail_snapshot(fx: &Fixture) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for box_name in [FAR, NEAR] {
        let uidvalidity = format!("{box_name}/.uidvalidity");
        if let Some(bytes) = fx.read(&uidvalidity) {
            files.insert(uidvalidity, bytes);
        }
        for sub in ["cur", "new", "tmp"] {
            let Ok(entries) = fs::read_dir(fx.path(box_name).join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let rel = format!("{box_name}/{sub}/{}", entry.file_name().to_string_lossy());
                let bytes = fs::read(entry.path()).expect("cannot read message");
                files.insert(rel, bytes);
            }
        }
    }
    files
}

/// Asserts that both Maildirs are byte for byte as in `before`.
fn assert_mail_untouched(fx: &Fixture, before: &BTreeMap<String, Vec<u8>>) {
    let after = mail_snapshot(fx);
    let names = |map: &BTreeMap<String, Vec<u8>>| map.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&after), names(before), "the Maildirs' files changed");
    for (name, bytes) in before {
        assert!(after.get(name) == Some(bytes), "{name} changed");
    }
}

/// The subjects of the messages in a box (`cur/` and `new/`), sorted, one per message: the
/// harness's messages are told apart by subject, so a duplicate shows up twice.
fn subjects(fx: &Fixture, box_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = fs::read_dir(fx.path(box_name).join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let text = fs::read_to_string(entry.path()).expect("cannot read message");
            let subject = text
                .lines()
                .take_while(|line| !line.is_empty())
                .find_map(|line| line.strip_prefix("Subject: "))
                .unwrap_or("<no subject>");
            out.push(subject.to_string());
        }
    }
    out.sort();
    out
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Asserts that both boxes hold exactly the given subjects, each once.
fn assert_both_hold(fx: &Fixture, wanted: &[&str]) {
    assert_eq!(subjects(fx, FAR), owned(wanted), "far box");
    assert_eq!(subjects(fx, NEAR), owned(wanted), "near box");
}

/// Asserts a failed run: exit code 1 and `expected` as one line of stderr.
fn assert_failed_with(run: &RunResult, expected: &str) {
    run.assert_code(1);
    assert!(
        run.stderr.lines().any(|line| line == expected),
        "expected the error line\n  {expected}\nrun was:\n{run}"
    );
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// The state file's path as the binary names it in messages.
fn state_path(fx: &Fixture) -> String {
    shown(&fx.path(STATE))
}

/// A first sync: far has a and b, near has c; afterwards both hold a, b and c.
fn synced_abc() -> Fixture {
    let mut fx = Fixture::new(Extras::none());
    fx.msg(FAR, "a", 1, "S");
    fx.msg(FAR, "b", 2, "");
    fx.msg(NEAR, "c", 1, "F");
    fx.run(&[]).assert_code(0);
    assert_both_hold(&fx, &["a", "b", "c"]);
    fx
}

// ---------------------------------------------------------------------------------------
// Mounts

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

/// A file system mounted for one test; unmounted (lazily) when dropped. Declare it after
/// the fixture so that it is dropped first.
struct Mount {
    target: PathBuf,
}

impl Mount {
    fn call(
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> std::io::Result<()> {
        let source = source.map(|s| CString::new(s).expect("no NUL"));
        let fstype = fstype.map(|s| CString::new(s).expect("no NUL"));
        let data = data.map(|s| CString::new(s).expect("no NUL"));
        let target = c_path(target);
        let pointer =
            |value: &Option<CString>| value.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: every pointer is either null or a NUL-terminated string that outlives the
        // call.
        let result = unsafe {
            libc::mount(
                pointer(&source),
                target.as_ptr(),
                pointer(&fstype),
                flags,
                pointer(&data).cast(),
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn required(what: &str, target: &Path, result: std::io::Result<()>) {
        if let Err(err) = result {
            panic!(
                "cannot {what} on {}: {err}.\nThe local fault tests mount file systems: run them \
                 as root or with CAP_SYS_ADMIN (CI does); they must not pass without it.",
                target.display()
            );
        }
    }

    /// Mounts an empty tmpfs of `size` (e.g. `64k`) on the directory `target`.
    fn tmpfs(target: &Path, size: &str) -> Mount {
        let options = format!("size={size},mode=0755");
        let result = Mount::call(Some("tmpfs"), target, Some("tmpfs"), 0, Some(&options));
        Mount::required("mount a tmpfs", target, result);
        Mount {
            target: target.to_path_buf(),
        }
    }

    /// Changes the size of a tmpfs mounted by [`Mount::tmpfs`] (its files stay).
    fn resize(&self, size: &str) {
        let options = format!("size={size}");
        let result = Mount::call(None, &self.target, None, libc::MS_REMOUNT, Some(&options));
        Mount::required("resize the tmpfs", &self.target, result);
    }

    /// Makes the directory `target` read-only: binds it onto itself, then remounts the bind
    /// read-only (root ignores file modes, not a read-only mount).
    fn read_only(target: &Path) -> Mount {
        let result = Mount::call(Some(&shown(target)), target, None, libc::MS_BIND, None);
        Mount::required("bind-mount", target, result);
        let mount = Mount {
            target: target.to_path_buf(),
        };
        let result = Mount::call(
            None,
            target,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            None,
        );
        Mount::required("remount read-only", target, result);
        mount
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = c_path(&self.target);
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

// ---------------------------------------------------------------------------------------
// Disk full

#[test]
fn disk_full_while_storing_a_message_fails_cleanly_and_a_rerun_completes() {
    let mut fx = Fixture::new(Extras::none());
    fx.put(FAR, "cur", "big", 1, "S", &big_msg("big", 3000));
    let mount = Mount::tmpfs(&fx.path(NEAR), "64k");
    fx.make_box(NEAR, 2000, 0);
    let before = mail_snapshot(&fx);

    let run = fx.run(&[]);
    run.assert_code(1);
    let near_tmp = shown(&fx.path(NEAR).join("tmp"));
    assert!(
        run.stderr.lines().any(|line| line
            .starts_with(&format!("Maildir error: cannot write {near_tmp}/"))
            && line.ends_with(": No space left on device")),
        "expected a write error naming the file in {near_tmp}; run was:\n{run}"
    );
    // No partial message anywhere; the far side is as it was. The near `.uidvalidity` may
    // have counted the UID given to the failed copy, but its UIDVALIDITY is unchanged.
    let after = mail_snapshot(&fx);
    let messages = |map: &BTreeMap<String, Vec<u8>>| {
        map.iter()
            .filter(|(name, _)| !name.ends_with("/.uidvalidity"))
            .map(|(name, bytes)| (name.clone(), bytes.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(messages(&after), messages(&before), "mail changed");
    assert_eq!(fx.uidvalidity(FAR), (1000, 1));
    assert_eq!(fx.uidvalidity(NEAR).0, 2000);

    // Recovery: make room, run again: the interrupted copy completes exactly once.
    mount.resize("4m");
    fx.run(&[]).assert_code(0).assert_stderr(&[]);
    assert_both_hold(&fx, &["big"]);
    fx.assert_no_leftovers();
    let synced = mail_snapshot(&fx);
    fx.run(&[]).assert_code(0).assert_stdout(&[ZERO_SUMMARY]);
    assert_mail_untouched(&fx, &synced);
    drop(mount);
}

#[test]
fn disk_full_for_the_journal_is_fatal_names_the_file_and_a_rerun_completes() {
    let mut fx = Fixture::new(Extras::none());
    fx.msg(FAR, "a", 1, "S");
    let mount = Mount::tmpfs(&fx.path(NEAR), "64k");
    fx.make_box(NEAR, 2000, 0);
    // Fill the file system to the last block.
    let filler = fx.path(NEAR).join("filler");
    let _ = fs::write(&filler, vec![0u8; 128 * 1024]);
    let before = mail_snapshot(&fx);

    let run = fx.run(&[]);
    let journal = format!("{}.journal", state_path(&fx));
    assert_failed_with(
        &run,
        &format!("Error: cannot write file {journal}: No space left on device"),
    );
    assert_mail_untouched(&fx, &before);

    // Recovery: make room, run again (the journal left behind holds no complete record).
    fs::remove_file(&filler).expect("cannot remove the filler");
    let run = fx.run(&[]);
    run.assert_code(0);
    assert_both_hold(&fx, &["a"]);
    fx.assert_no_leftovers();
    drop(mount);
}

// ---------------------------------------------------------------------------------------
// Read-only near Maildir

#[test]
fn read_only_near_maildir_fails_cleanly_naming_the_file_and_syncs_once_writable() {
    let mut fx = Fixture::new(Extras::none());
    // Keep the state outside the near box, so that only the Maildir is read-only.
    let state_dir = format!("{}/state/", fx.dir().display());
    let config = String::from_utf8(fx.read("cfg").expect("config")).expect("UTF-8 config");
    fx.write(
        "cfg",
        config
            .replace("SyncState *", &format!("SyncState {state_dir}"))
            .as_bytes(),
    );
    fx.msg(FAR, "a", 1, "S");
    fx.msg(NEAR, "c", 1, "");
    fx.age_directories();
    let mount = Mount::read_only(&fx.path(NEAR));
    let before = mail_snapshot(&fx);

    let run = fx.run(&[]);
    let uidvalidity = shown(&fx.path(NEAR).join(".uidvalidity"));
    assert_failed_with(
        &run,
        &format!("Maildir error: cannot write {uidvalidity}: Read-only file system"),
    );
    assert_mail_untouched(&fx, &before);

    // Recovery: make the Maildir writable again and re-run.
    drop(mount);
    fx.run(&[]).assert_code(0).assert_stderr(&[]);
    assert_both_hold(&fx, &["a", "c"]);
}

// ---------------------------------------------------------------------------------------
// State file

#[test]
fn truncated_state_file_header_names_file_and_line_and_can_be_rewritten() {
    let mut fx = synced_abc();
    let state = fx.state().expect("state file");
    // Cut in the middle of the second header line, as a damaged disk may leave it.
    let cut = state.find("NearUidValidity").expect("header") + 8;
    fx.write_state(&state[..cut]);
    let before = mail_snapshot(&fx);

    let run = fx.run(&[]);
    assert_failed_with(
        &run,
        &format!(
            "Error: incomplete sync state header entry at {}:2",
            state_path(&fx)
        ),
    );
    assert_mail_untouched(&fx, &before);
    assert_eq!(fx.state().as_deref(), Some(&state[..cut]));

    // Recovery (docs/recovery.md, "state file without entries"): write a header from the
    // two `.uidvalidity` files. Nothing is copied again and nothing is lost.
    let (far_uv, far_max) = fx.uidvalidity(FAR);
    let (near_uv, near_max) = fx.uidvalidity(NEAR);
    fx.write_state(&format!(
        "FarUidValidity {far_uv}\nNearUidValidity {near_uv}\nMaxPulledUid {far_max}\nMaxPushedUid {near_max}\n\n"
    ));
    fx.run(&[]).assert_code(0).assert_stdout(&[ZERO_SUMMARY]);
    assert_mail_untouched(&fx, &before);

    // New mail on either side is synchronized as usual afterwards.
    fx.msg(FAR, "d", far_max + 1, "");
    fx.msg(NEAR, "e", near_max + 1, "");
    fx.run(&[]).assert_code(0);
    assert_both_hold(&fx, &["a", "b", "c", "d", "e"]);
}

#[test]
fn damaged_state_header_with_intact_entries_is_rebuilt_from_the_entries() {
    let mut fx = synced_abc();
    // Mail that arrived on each side after the last sync.
    let d_uid = fx.uidvalidity(FAR).1 + 1;
    fx.msg(FAR, "d", d_uid, "");
    let e_uid = fx.uidvalidity(NEAR).1 + 1;
    fx.msg(NEAR, "e", e_uid, "");
    let state = fx.state().expect("state file");
    let (header, entries) = state.split_once("\n\n").expect("header and entries");
    let mut header_lines: Vec<&str> = header.lines().collect();
    header_lines[2] = "MaxPulledUid twelve";
    fx.write_state(&format!("{}\n\n{entries}", header_lines.join("\n")));
    let before = mail_snapshot(&fx);

    let run = fx.run(&[]);
    assert_failed_with(
        &run,
        &format!(
            "Error: malformed sync state header entry at {}:3",
            state_path(&fx)
        ),
    );
    assert_mail_untouched(&fx, &before);

    // Recovery (docs/recovery.md): UIDVALIDITYs from the `.uidvalidity` files, MaxPulledUid
    // and MaxPushedUid the highest far and near UIDs of the entries.
    let highest = |column: usize| {
        entries
            .lines()
            .filter_map(|line| line.split(' ').nth(column)?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
    };
    let (far_uv, _) = fx.uidvalidity(FAR);
    let (near_uv, _) = fx.uidvalidity(NEAR);
    fx.write_state(&format!(
        "FarUidValidity {far_uv}\nNearUidValidity {near_uv}\nMaxPulledUid {}\nMaxPushedUid {}\n\n{entries}",
        highest(0),
        highest(1)
    ));
    fx.run(&[]).assert_code(0);
    assert_both_hold(&fx, &["a", "b", "c", "d", "e"]);
    // The pairs are still linked: a flag change on one side reaches the other.
    fx.rename_suffix(FAR, "ma,U=1:2,S", "ma,U=1:2,FS");
    fx.run(&[]).assert_code(0);
    let flagged = fs::read_dir(fx.path(NEAR).join("cur"))
        .expect("near box")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(":2,FS"))
        .count();
    assert_eq!(flagged, 1, "the flag did not reach the near side");
}

#[test]
fn truncated_state_file_entry_names_file_and_line_and_dropping_it_loses_nothing() {
    let mut fx = synced_abc();
    let state = fx.state().expect("state file");
    assert!(state.ends_with('\n'));
    let cut = state.len() - 2;
    fx.write_state(&state[..cut]);
    let line = state[..cut].lines().count();
    let before = mail_snapshot(&fx);

    let run = fx.run(&[]);
    assert_failed_with(
        &run,
        &format!(
            "Error: incomplete sync state entry at {}:{line}",
            state_path(&fx)
        ),
    );
    assert_mail_untouched(&fx, &before);

    // Recovery: delete the incomplete line. Its pair is no longer linked, but both copies
    // stay and nothing is copied again.
    let kept = &state[..state[..cut].rfind('\n').expect("line") + 1];
    fx.write_state(kept);
    fx.run(&[]).assert_code(0).assert_stdout(&[ZERO_SUMMARY]);
    assert_mail_untouched(&fx, &before);
}

#[test]
fn corrupted_state_entry_names_file_and_line_and_dropping_it_loses_nothing() {
    let mut fx = synced_abc();
    let state = fx.state().expect("state file");
    let mut lines: Vec<&str> = state.lines().collect();
    let bad = lines.len() - 1;
    lines[bad] = "\u{1}\u{2}garbage";
    fx.write_state(&(lines.join("\n") + "\n"));
    let before = mail_snapshot(&fx);

    let run = fx.run(&[]);
    assert_failed_with(
        &run,
        &format!(
            "Error: invalid sync state entry at {}:{}",
            state_path(&fx),
            bad + 1
        ),
    );
    assert_mail_untouched(&fx, &before);

    lines.remove(bad);
    fx.write_state(&(lines.join("\n") + "\n"));
    fx.run(&[]).assert_code(0).assert_stdout(&[ZERO_SUMMARY]);
    assert_mail_untouched(&fx, &before);
    assert_both_hold(&fx, &["a", "b", "c"]);
}

#[test]
fn lost_state_file_duplicates_everything_unless_a_header_is_written() {
    // What really happens: without a state file nothing is paired, so a re-run copies
    // every message to the other side once more.
    let mut fx = synced_abc();
    let mut lost = fx.copy_fresh();
    fs::remove_file(lost.path(STATE)).expect("cannot delete the state file");
    lost.run(&[]).assert_code(0);
    assert_both_hold(&lost, &["a", "a", "b", "b", "c", "c"]);

    // The documented recovery: a state file of just a header taken from the two
    // `.uidvalidity` files. Nothing is copied, nothing lost; new mail syncs again.
    fs::remove_file(fx.path(STATE)).expect("cannot delete the state file");
    let (far_uv, far_max) = fx.uidvalidity(FAR);
    let (near_uv, near_max) = fx.uidvalidity(NEAR);
    fx.write_state(&format!(
        "FarUidValidity {far_uv}\nNearUidValidity {near_uv}\nMaxPulledUid {far_max}\nMaxPushedUid {near_max}\n\n"
    ));
    let before = mail_snapshot(&fx);
    fx.run(&[]).assert_code(0).assert_stdout(&[ZERO_SUMMARY]);
    assert_mail_untouched(&fx, &before);
    fx.msg(FAR, "d", far_max + 1, "");
    fx.run(&[]).assert_code(0);
    assert_both_hold(&fx, &["a", "b", "c", "d"]);
}

#[test]
fn lost_state_file_resync_from_far_into_a_fresh_near_box() {
    // The other documented recovery: start the near box afresh from the far one, then put
    // back what only the old near box had (without its `,U=` part, so that it counts as new).
    let mut fx = synced_abc();
    let z_uid = fx.uidvalidity(NEAR).1 + 1;
    fx.msg(NEAR, "z", z_uid, "S");
    fs::remove_file(fx.path(STATE)).expect("cannot delete the state file");
    fs::rename(fx.path(NEAR), fx.path("nearbox.old")).expect("cannot move the near box");
    fx.make_box(NEAR, 3000, 0);
    fx.run(&[]).assert_code(0);
    assert_eq!(subjects(&fx, NEAR), owned(&["a", "b", "c"]));

    fs::copy(
        fx.path(&format!("nearbox.old/cur/mz,U={z_uid}:2,S")),
        fx.path(NEAR).join("cur").join("mz:2,S"),
    )
    .expect("cannot copy message");
    fx.run(&[]).assert_code(0);
    assert_both_hold(&fx, &["a", "b", "c", "z"]);
}

// ---------------------------------------------------------------------------------------
// Journal

/// Example 11's journal with its last line cut short, as a crash or a full disk leaves it.
fn example_11_truncated() -> Fixture {
    let fx = inputs::example_11();
    let journal = inputs::EXAMPLE_11_JOURNAL;
    fx.write(
        &format!("{STATE}.journal"),
        &journal.as_bytes()[..journal.len() - 3],
    );
    fx
}

#[test]
fn truncated_journal_names_file_and_line_and_dropping_the_last_line_resumes() {
    let mut fx = example_11_truncated();
    let before = mail_snapshot(&fx);
    let line = inputs::EXAMPLE_11_JOURNAL.lines().count();
    let journal = format!("{}.journal", state_path(&fx));

    let run = fx.run(&[]);
    assert_failed_with(
        &run,
        &format!("Error: incomplete journal entry at {journal}:{line}"),
    );
    assert_mail_untouched(&fx, &before);

    // Recovery: delete the incomplete last line and re-run. The result is that of the
    // intact journal (Example 11): the copies already made are found by their TUIDs.
    let text = fx.read(&format!("{STATE}.journal")).expect("journal");
    let keep = text.iter().rposition(|&b| b == b'\n').expect("a line") + 1;
    fx.write(&format!("{STATE}.journal"), &text[..keep]);
    fx.run(&[]).assert_code(0);
    let mut intact = inputs::example_11();
    intact.run(&[]).assert_code(0);
    assert_eq!(fx.messages(FAR), intact.messages(FAR));
    assert_eq!(fx.messages(NEAR), intact.messages(NEAR));
    assert_eq!(subjects(&fx, NEAR), owned(&["1", "2", "3"]));
    fx.assert_no_leftovers();
}

#[test]
fn corrupted_journal_line_names_file_and_line_and_cutting_there_loses_nothing() {
    let mut fx = inputs::example_11();
    let mut lines: Vec<&str> = inputs::EXAMPLE_11_JOURNAL.lines().collect();
    // Line 8 is `# 2 0 BBBBBBBBBBBB`, the TUID of the copy r2 that the run made.
    let bad = 7;
    assert!(lines[bad].starts_with("# 2 0 "));
    lines[bad] = "# 2 zz";
    fx.write(
        &format!("{STATE}.journal"),
        (lines.join("\n") + "\n").as_bytes(),
    );
    let before = mail_snapshot(&fx);
    let journal = format!("{}.journal", state_path(&fx));

    let run = fx.run(&[]);
    assert_failed_with(
        &run,
        &format!("Error: malformed journal entry at {journal}:{}", bad + 1),
    );
    assert_mail_untouched(&fx, &before);

    // Recovery: keep the lines before the bad one. Nothing is lost; a copy whose TUID was
    // in the lost part (r2) is not recognised, so that message ends up twice on each side.
    lines.truncate(bad);
    fx.write(
        &format!("{STATE}.journal"),
        (lines.join("\n") + "\n").as_bytes(),
    );
    fx.run(&[]).assert_code(0);
    assert_both_hold(&fx, &["1", "2", "2", "3"]);
    fx.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------
// .uidvalidity

#[test]
fn garbage_uidvalidity_names_the_box_and_rewriting_it_from_the_state_works() {
    let mut fx = synced_abc();
    let (near_uv, near_max) = fx.uidvalidity(NEAR);
    fx.write(&format!("{NEAR}/.uidvalidity"), b"garbage\n\x00\xff\n");
    let before = mail_snapshot(&fx);
    let state = fx.state();

    let run = fx.run(&[]);
    assert_failed_with(
        &run,
        &format!(
            "Maildir error: cannot read UIDVALIDITY in {}.",
            shown(&fx.path(NEAR))
        ),
    );
    assert_mail_untouched(&fx, &before);
    assert_eq!(fx.state(), state);

    // Recovery: NearUidValidity from the state file, and the highest UID in the near box's
    // file names.
    let state_text = state.expect("state file");
    let from_state: u32 = state_text
        .lines()
        .find_map(|line| line.strip_prefix("NearUidValidity "))
        .and_then(|value| value.parse().ok())
        .expect("NearUidValidity in the state file");
    assert_eq!(from_state, near_uv);
    let highest = highest_uid_in_names(&fx, NEAR);
    assert_eq!(highest, near_max);
    fx.set_uidvalidity(NEAR, from_state, highest);
    fx.run(&[]).assert_code(0).assert_stdout(&[ZERO_SUMMARY]);
    assert_both_hold(&fx, &["a", "b", "c"]);
    assert_eq!(fx.state().as_deref(), Some(state_text.as_str()));
}

/// The highest `,U=<n>` in the file names of a box.
fn highest_uid_in_names(fx: &Fixture, box_name: &str) -> u32 {
    let mut highest = 0;
    for sub in ["cur", "new"] {
        for entry in fs::read_dir(fx.path(box_name).join(sub))
            .expect("box")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.split(",U=").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                highest = highest.max(digits.parse().unwrap_or(0));
            }
        }
    }
    highest
}

// ---------------------------------------------------------------------------------------
// Two runs at once

/// Takes a classic POSIX record lock (the kind mbsync takes) on the whole file. The test
/// process is a different process from the binary under test, so holding the lock here is
/// what a concurrent run does.
fn hold_lock(path: &Path) -> fs::File {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("cannot open the lock file");
    // SAFETY: all-zero is a valid `flock`; the fields are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    // SAFETY: the descriptor is open and `lock` is a valid `flock`.
    let result = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
    assert_eq!(result, 0, "cannot lock {}", path.display());
    file
}

#[test]
fn second_run_on_a_locked_channel_refuses_cleanly() {
    let mut fx = synced_abc();
    let d_uid = fx.uidvalidity(FAR).1 + 1;
    fx.msg(FAR, "d", d_uid, "");
    let before = mail_snapshot(&fx);
    let state = fx.state();
    let lock_path = fx.path(&format!("{STATE}.lock"));
    let lock = hold_lock(&lock_path);

    let run = fx.run(&[]);
    assert_failed_with(&run, &format!("Error: channel {LABEL} is locked"));
    assert_mail_untouched(&fx, &before);
    assert_eq!(fx.state(), state);
    assert!(lock_path.exists(), "the other run's lock file was deleted");

    // Once the other run is done, the channel syncs.
    drop(lock);
    fs::remove_file(&lock_path).expect("cannot delete the lock file");
    fx.run(&[]).assert_code(0);
    assert_both_hold(&fx, &["a", "b", "c", "d"]);
}

#[test]
fn stale_lock_file_of_a_stopped_run_does_not_block_the_next_run() {
    let mut fx = Fixture::new(Extras::none());
    fx.msg(FAR, "a", 1, "S");
    fx.msg(FAR, "b", 2, "");
    fx.msg(NEAR, "c", 1, "");
    // Stop at the third step: the run ends with code 100 and leaves lock and journal.
    fx.run(&["-Ts3"]).assert_code(100);
    assert!(fx.exists(&format!("{STATE}.lock")), "no stale lock file");
    assert!(fx.exists(&format!("{STATE}.journal")), "no journal");

    fx.run(&[]).assert_code(0).assert_stderr(&[]);
    assert_both_hold(&fx, &["a", "b", "c"]);
    fx.assert_no_leftovers();
    assert!(
        !fx.exists(&format!("{STATE}.lock")),
        "lock file left behind"
    );
}
