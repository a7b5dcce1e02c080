//! Tests of the Maildir store through the `Store` trait, on temporary directories.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::environment::Environment;
use super::{MaildirOptions, MaildirStore, ReadAhead, read_ahead};
use crate::config::{CommonStoreConfig, MaildirStoreConfig, SubFolders};
use crate::store::{
    FailureScope, Flags, ListAreas, LoadRequest, MessageData, NewMessage, OpenOutcome, Reporter,
    Store,
};

/// Collects what the store reports.
#[derive(Default)]
struct Recorder {
    notices: RefCell<Vec<String>>,
    warnings: RefCell<Vec<String>>,
}

impl Reporter for Recorder {
    fn notice(&self, text: &str) {
        self.notices.borrow_mut().push(text.to_string());
    }
    fn warning(&self, text: &str) {
        self.warnings.borrow_mut().push(text.to_string());
    }
    fn debug(&self, _text: &str) {}
}

/// A settable clock whose `sleep` advances the time; fixed host name.
struct FakeEnvironment {
    now: Cell<SystemTime>,
    sleeps: Cell<u32>,
    /// Runs (once) when a scan pass has read the directories.
    on_scan_listed: RefCell<Option<Box<dyn FnOnce()>>>,
    scan_passes: Cell<u32>,
}

impl FakeEnvironment {
    fn at(now: SystemTime) -> Rc<FakeEnvironment> {
        Rc::new(FakeEnvironment {
            now: Cell::new(now),
            sleeps: Cell::new(0),
            on_scan_listed: RefCell::new(None),
            scan_passes: Cell::new(0),
        })
    }
}

impl Environment for FakeEnvironment {
    fn now(&self) -> SystemTime {
        self.now.get()
    }
    fn sleep(&self, duration: Duration) {
        self.sleeps.set(self.sleeps.get() + 1);
        self.now.set(self.now.get() + duration);
    }
    fn host_name(&self) -> String {
        "vm.example.org".to_string()
    }
    fn scan_listed(&self) {
        self.scan_passes.set(self.scan_passes.get() + 1);
        if let Some(action) = self.on_scan_listed.borrow_mut().take() {
            action();
        }
    }
}

/// A temporary mail root with an INBOX directory `<root>/INBOX` and Path `<root>/` (unless
/// changed).
struct Fixture {
    root: tempfile::TempDir,
    config: MaildirStoreConfig,
    recorder: Rc<Recorder>,
    environment: Rc<FakeEnvironment>,
    options: MaildirOptions,
}

const NOW: u64 = 1_795_630_145;

/// A Verbatim store `name` with Path `<base>/` and INBOX `<base>/INBOX`.
fn store_config(name: &str, base: &str) -> MaildirStoreConfig {
    MaildirStoreConfig {
        common: CommonStoreConfig {
            name: name.to_string(),
            ..CommonStoreConfig::default()
        },
        path: Some(format!("{base}/")),
        inbox: Some(format!("{base}/INBOX")),
        sub_folders: Some(SubFolders::Verbatim),
        info_delimiter: ':',
        fsync: false,
    }
}

/// Options of a store in another thread or process: no wait for fresh directories.
fn worker_options() -> MaildirOptions {
    MaildirOptions {
        no_fresh_wait: true,
        ..MaildirOptions::default()
    }
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().to_string_lossy().into_owned();
        let config = store_config("local", &base);
        Fixture {
            root,
            config,
            recorder: Rc::new(Recorder::default()),
            environment: FakeEnvironment::at(UNIX_EPOCH + Duration::from_secs(NOW)),
            options: MaildirOptions {
                fsync: true,
                no_fresh_wait: true,
                withhold_uids: false,
            },
        }
    }

    fn base(&self) -> String {
        self.root.path().to_string_lossy().into_owned()
    }

    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.root.path().join(relative)
    }

    fn store(&self) -> MaildirStore {
        MaildirStore::with_environment(
            &self.config,
            self.options,
            self.recorder.clone(),
            self.environment.clone(),
        )
        .unwrap()
    }

    /// Makes a maildir with cur/new/tmp.
    fn make_box(&self, relative: &str) {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(self.path(relative).join(sub)).unwrap();
        }
    }

    fn write(&self, relative: &str, content: &str) {
        std::fs::write(self.path(relative), content).unwrap();
    }

    fn files(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(relative))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    /// Makes a maildir with the given `.uidvalidity` contents.
    fn make_box_with_uidvalidity(&self, relative: &str, uidvalidity: &str) {
        self.make_box(relative);
        self.write(&format!("{relative}/.uidvalidity"), uidvalidity);
    }

    /// `text` with `{base}` replaced by the mail root.
    fn at_base(&self, text: &str) -> String {
        text.replace("{base}", &self.base())
    }

    /// A new store with box `name` open.
    fn opened(&self, name: &str) -> MaildirStore {
        let mut store = self.store();
        open(&mut store, name);
        store
    }

    /// A new store with box `name` open and all of it loaded.
    fn loaded(&self, name: &str) -> MaildirStore {
        let mut store = self.opened(name);
        store.load(&everything()).unwrap();
        store
    }
}

fn open(store: &mut MaildirStore, name: &str) -> u32 {
    match store.open_box(name).unwrap() {
        OpenOutcome::Opened { uid_validity } => uid_validity,
        OpenOutcome::Missing => panic!("{name} is missing"),
    }
}

fn everything() -> LoadRequest {
    LoadRequest {
        range: Some((1, u32::MAX)),
        new: true,
        flags: true,
        ..LoadRequest::default()
    }
}

fn flags(letters: &str) -> Flags {
    letters
        .chars()
        .filter_map(Flags::from_letter)
        .fold(Flags::EMPTY, |all, f| all | f)
}

fn message<'a>(data: &'a [u8], letters: &str) -> NewMessage<'a> {
    NewMessage {
        data: MessageData::Bytes(data),
        flags: flags(letters),
        date: None,
    }
}

/// The UIDs of the loaded messages, in order.
fn uids(loaded: &crate::store::Loaded) -> Vec<u32> {
    loaded.messages.iter().map(|m| m.uid).collect()
}

/// The `<secs>.<pid>_<n>.vm` pattern with a given UID/info tail.
fn assert_generated(name: &str, tail: &str) {
    let prefix = format!("{NOW}.{}_", std::process::id());
    assert!(name.starts_with(&prefix), "{name}");
    let rest = &name[prefix.len()..];
    let (counter, after) = rest.split_once('.').unwrap();
    assert!(counter.parse::<u32>().unwrap() >= 1, "{name}");
    assert_eq!(after, format!("vm{tail}"), "{name}");
}

// ---------------------------------------------------------------- listing and layout

fn create_boxes(fixture: &Fixture, names: &[&str]) {
    let mut store = fixture.store();
    for name in names {
        if store.open_box(name).unwrap() == OpenOutcome::Missing {
            store.create_box().unwrap();
        }
        store.close_box();
    }
}

fn listed(fixture: &Fixture) -> BTreeSet<String> {
    let mut store = fixture.store();
    store.list(ListAreas::ALL).unwrap().into_iter().collect()
}

/// Only the Path area (no INBOX unless it is under Path).
fn path_area() -> ListAreas {
    ListAreas {
        path: true,
        ..ListAreas::default()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn verbatim_layout_with_prefix() {
    let mut fixture = Fixture::new();
    fixture.config.path = Some(fixture.at_base("{base}/mail/pre-"));
    std::fs::create_dir(fixture.path("mail")).unwrap();
    create_boxes(&fixture, &["INBOX/kid", "Top/Child", "Top/Other"]);
    assert!(fixture.path("INBOX/kid/cur").is_dir());
    assert!(fixture.path("mail/pre-Top/Child/cur").is_dir());
    assert!(fixture.path("mail/pre-Top/Other/new").is_dir());
    assert!(!fixture.path("mail/pre-Top/cur").exists());
    assert_eq!(
        listed(&fixture),
        set(&["INBOX", "INBOX/kid", "Top/Child", "Top/Other"])
    );
}

#[test]
fn legacy_layout() {
    let mut fixture = Fixture::new();
    fixture.config.sub_folders = Some(SubFolders::Legacy);
    create_boxes(&fixture, &["INBOX/kid", "Top/Child", "Top/Other", "Top"]);
    assert!(fixture.path("INBOX/.kid/cur").is_dir());
    assert!(fixture.path("Top/.Child/cur").is_dir());
    assert!(fixture.path("Top/.Other/tmp").is_dir());
    // Entries starting with a dot are ignored at the top, non-dot ones inside folders.
    fixture.make_box(".hidden");
    fixture.make_box("Top/plain");
    assert_eq!(
        listed(&fixture),
        set(&["INBOX", "INBOX/kid", "Top", "Top/Child", "Top/Other"])
    );
}

#[test]
fn maildir_plus_plus_layout() {
    let mut fixture = Fixture::new();
    fixture.config.path = None;
    fixture.config.sub_folders = Some(SubFolders::MaildirPlusPlus);
    create_boxes(&fixture, &["INBOX/kid", "Top/Child", "Top/Other"]);
    assert!(fixture.path("INBOX/..kid/cur").is_dir());
    assert!(fixture.path("INBOX/.Top.Child/cur").is_dir());
    assert!(fixture.path("INBOX/.Top.Other/cur").is_dir());
    fixture.make_box("INBOX/.INBOX.x");
    let mut store = fixture.store();
    let inbox_only = store
        .list(ListAreas {
            inbox: true,
            ..ListAreas::default()
        })
        .unwrap();
    assert_eq!(inbox_only, ["INBOX", "INBOX/kid"]);
    let mut store = fixture.store();
    let names: BTreeSet<String> = store.list(ListAreas::ALL).unwrap().into_iter().collect();
    assert_eq!(
        names,
        set(&["INBOX", "INBOX/kid", "Top/Child", "Top/Other"])
    );
    assert_eq!(
        fixture.recorder.warnings.borrow().last().unwrap(),
        &fixture.at_base("Maildir warning: ignoring INBOX in {base}/INBOX/")
    );
    // Dots cannot be represented.
    let error = store.open_box("a.b").unwrap_err();
    assert!(error.message.contains("does not support dots"));
}

#[test]
fn listing_without_subfolders_style() {
    let mut fixture = Fixture::new();
    fixture.config.sub_folders = None;
    fixture.make_box("Plain");
    fixture.make_box("INBOX");
    assert_eq!(listed(&fixture), set(&["INBOX", "Plain"]));
    fixture.make_box("Plain/Kid");
    let error = fixture.store().list(ListAreas::ALL).unwrap_err();
    assert_eq!(
        error.message,
        "Maildir error: found subfolder 'Plain/Kid', but store 'local' does not specify SubFolders style"
    );
    let error = fixture.store().open_box("Plain/Kid").unwrap_err();
    assert_eq!(
        error.message,
        "Maildir error: accessing subfolder 'Plain/Kid', but store 'local' does not specify SubFolders style"
    );
}

#[test]
fn inbox_outside_path_and_collision_warning() {
    let mut fixture = Fixture::new();
    std::fs::create_dir(fixture.path("mail")).unwrap();
    fixture.config.path = Some(fixture.at_base("{base}/mail/"));
    fixture.make_box("mail/INBOX");
    fixture.make_box("mail/Sent");
    fixture.make_box("INBOX/sub");
    // Only the Path area: no INBOX (it is elsewhere), the INBOX folder under Path ignored.
    let mut store = fixture.store();
    let names = store.list(path_area()).unwrap();
    assert_eq!(names, ["Sent"]);
    assert_eq!(
        fixture.recorder.warnings.borrow().as_slice(),
        [fixture.at_base("Maildir warning: ignoring INBOX in {base}/mail/")]
    );
    // Asking for the INBOX area later adds it; asking again adds nothing.
    let names = store.list(ListAreas::ALL).unwrap();
    assert_eq!(names, ["Sent", "INBOX", "INBOX/sub"]);
    assert_eq!(store.list(ListAreas::ALL).unwrap().len(), 3);
    assert_eq!(fixture.recorder.warnings.borrow().len(), 1);
}

#[test]
fn inbox_inside_path_is_listed_as_inbox() {
    let mut fixture = Fixture::new();
    fixture.config.inbox = Some(fixture.at_base("{base}/Inbox"));
    fixture.make_box("Inbox");
    fixture.make_box("Inbox/kid");
    fixture.make_box("Other");
    let mut store = fixture.store();
    let names = store.list(path_area()).unwrap();
    assert_eq!(names, ["INBOX", "INBOX/kid", "Other"]);
    let names = store.list(ListAreas::ALL).unwrap();
    assert_eq!(names, ["INBOX", "INBOX/kid", "Other"]);
}

#[test]
fn inbox_named_inbox_inside_path_is_listed_without_warning() {
    // `Path <b>/` with `Inbox <b>/INBOX` (the bundled sample's layout): the INBOX directory
    // under Path is the real INBOX, not a colliding folder.
    let mut fixture = Fixture::new();
    fixture.config.inbox = Some(fixture.at_base("{base}/INBOX"));
    fixture.make_box("INBOX");
    fixture.make_box("Sent");
    let mut store = fixture.store();
    let names = store.list(path_area()).unwrap();
    assert_eq!(names, ["INBOX", "Sent"]);
    assert!(fixture.recorder.warnings.borrow().is_empty());
}

#[test]
fn path_without_trailing_slash_is_a_prefix() {
    let mut fixture = Fixture::new();
    std::fs::create_dir(fixture.path("mail")).unwrap();
    fixture.make_box("mailbox-a");
    fixture.config.path = Some(fixture.at_base("{base}/mail"));
    let error = fixture.store().list(ListAreas::ALL).unwrap_err();
    assert_eq!(
        error.message,
        fixture.at_base(
            "Maildir error: empty mailbox name under {base}/ - did you forget the trailing slash?"
        )
    );
    std::fs::remove_dir(fixture.path("mail")).unwrap();
    assert_eq!(listed(&fixture), set(&["INBOX", "box-a"]));
    let mut store = fixture.store();
    assert!(matches!(
        store.open_box("box-a").unwrap(),
        OpenOutcome::Opened { .. }
    ));
}

#[test]
fn listing_requires_path_unless_only_if_configured() {
    let mut fixture = Fixture::new();
    fixture.config.path = None;
    let error = fixture.store().list(ListAreas::ALL).unwrap_err();
    assert_eq!(error.message, "Maildir error: store 'local' has no Path");
    assert_eq!(error.scope, FailureScope::Store);
    let names = fixture
        .store()
        .list(ListAreas {
            inbox: true,
            path: false,
            path_if_configured: true,
        })
        .unwrap();
    assert_eq!(names, ["INBOX"]);
    let error = fixture.store().open_box("Other").unwrap_err();
    assert_eq!(error.message, "Maildir error: store 'local' has no Path");
}

#[test]
fn symlink_loop_is_too_deeply_nested() {
    let fixture = Fixture::new();
    fixture.make_box("Loop");
    std::os::unix::fs::symlink(fixture.path("Loop"), fixture.path("Loop/again")).unwrap();
    let error = fixture.store().list(ListAreas::ALL).unwrap_err();
    assert!(
        error.message.starts_with("Maildir error: path ")
            && error
                .message
                .ends_with(" is too deeply nested. Symlink loop?"),
        "{}",
        error.message
    );
}

#[test]
fn missing_path_base_fails_the_store() {
    let mut fixture = Fixture::new();
    fixture.config.path = Some(fixture.at_base("{base}/nowhere/"));
    let error = MaildirStore::new(&fixture.config, fixture.options, fixture.recorder.clone())
        .err()
        .unwrap();
    assert_eq!(
        error.message,
        fixture.at_base("Maildir error: cannot open store '{base}/nowhere'")
    );
    assert_eq!(error.scope, FailureScope::Store);
}

// ---------------------------------------------------------------- opening

#[test]
fn inbox_is_created_other_boxes_are_missing() {
    let fixture = Fixture::new();
    let mut store = fixture.store();
    let uid_validity = open(&mut store, "INBOX");
    assert_eq!(uid_validity, NOW as u32);
    for sub in ["cur", "new", "tmp"] {
        assert!(fixture.path("INBOX").join(sub).is_dir());
    }
    assert_eq!(fixture.read("INBOX/.uidvalidity"), format!("{NOW}\n0\n"));
    assert_eq!(
        fixture.recorder.notices.borrow().as_slice(),
        [fixture.at_base("Maildir notice: no UIDVALIDITY in {base}/INBOX, creating new.")]
    );
    assert_eq!(store.open_box("Other").unwrap(), OpenOutcome::Missing);
    assert!(!fixture.path("Other").exists());
    assert_eq!(store.create_box().unwrap(), NOW as u32);
    assert!(fixture.path("Other/cur").is_dir());
    assert!(store.is_empty().unwrap());
}

#[test]
fn box_without_cur_is_missing_and_new_tmp_are_created() {
    let fixture = Fixture::new();
    std::fs::create_dir_all(fixture.path("NoCur/new")).unwrap();
    let mut store = fixture.store();
    assert_eq!(store.open_box("NoCur").unwrap(), OpenOutcome::Missing);
    std::fs::create_dir_all(fixture.path("OnlyCur/cur")).unwrap();
    open(&mut store, "OnlyCur");
    assert!(fixture.path("OnlyCur/new").is_dir());
    assert!(fixture.path("OnlyCur/tmp").is_dir());
}

#[test]
fn invalid_mailboxes() {
    let fixture = Fixture::new();
    fixture.write("File", "x");
    let mut store = fixture.store();
    let error = store.open_box("File").unwrap_err();
    assert_eq!(
        error.message,
        fixture.at_base("Maildir error: cannot access mailbox '{base}/File/': Not a directory")
    );
    assert_eq!(error.scope, FailureScope::Mailbox);
    std::fs::create_dir_all(fixture.path("Bad/cur")).unwrap();
    fixture.write("Bad/new", "x");
    let error = store.open_box("Bad").unwrap_err();
    assert_eq!(
        error.message,
        fixture.at_base("Maildir error: '{base}/Bad/new' is no valid mailbox")
    );
    fixture.make_box_with_uidvalidity("Garbage", "12\nxx\n");
    let error = store.open_box("Garbage").unwrap_err();
    assert_eq!(
        error.message,
        fixture.at_base("Maildir error: cannot read UIDVALIDITY in {base}/Garbage.")
    );
}

#[test]
fn stale_tmp_files_are_removed() {
    let fixture = Fixture::new();
    fixture.make_box("Box");
    fixture.write("Box/tmp/old", "x");
    let mut store = fixture.store();
    // Less than a day later: kept.
    fixture
        .environment
        .now
        .set(SystemTime::now() + Duration::from_secs(23 * 3600));
    open(&mut store, "Box");
    assert!(fixture.path("Box/tmp/old").exists());
    // A day and a bit later: removed with a notice.
    fixture
        .environment
        .now
        .set(SystemTime::now() + Duration::from_secs(24 * 3600 + 5));
    open(&mut store, "Box");
    assert!(!fixture.path("Box/tmp/old").exists());
    let expected = fixture.at_base("Maildir notice: removing stale file {base}/Box/tmp/old");
    assert!(fixture.recorder.notices.borrow().contains(&expected));
}

// ---------------------------------------------------------------- loading

/// The INBOX of spec §4.13: three messages stored by mbsync, UIDs 1-3.
fn spec_inbox(fixture: &Fixture) {
    fixture.make_box_with_uidvalidity("INBOX", "1795630145\n3\n");
    fixture.write("INBOX/cur/1795630145.20256_2.vm,U=2:2,S", "two\n");
    fixture.write("INBOX/new/1795630145.20256_1.vm,U=1:2,", "one\n");
    fixture.write("INBOX/new/1795630145.20256_3.vm,U=3:2,", "three\n");
}

#[test]
fn foreign_files_get_uids_in_delivery_order() {
    let fixture = Fixture::new();
    spec_inbox(&fixture);
    fixture.write("INBOX/new/1700000000.M1P1.myhost", "foreign\n");
    fixture.write("INBOX/cur/weird-name-no-info", "weird\n");
    fixture.write("INBOX/cur/.hidden", "ignored\n");
    let mut store = fixture.opened("INBOX");
    let loaded = store.load(&everything()).unwrap();
    let uids = uids(&loaded);
    assert_eq!(uids, [1, 2, 3, 4, 5]);
    assert_eq!(loaded.total, 5);
    assert_eq!(loaded.recent, 3);
    assert_eq!(
        fixture.files("INBOX/new"),
        [
            "1700000000.M1P1.myhost,U=4",
            "1795630145.20256_1.vm,U=1:2,",
            "1795630145.20256_3.vm,U=3:2,"
        ]
    );
    assert_eq!(
        fixture.files("INBOX/cur"),
        [
            ".hidden",
            "1795630145.20256_2.vm,U=2:2,S",
            "weird-name-no-info,U=5"
        ]
    );
    assert_eq!(fixture.read("INBOX/.uidvalidity"), "1795630145\n5\n");
    assert_eq!(loaded.messages[1].flags, Flags::SEEN);
    assert!(loaded.messages[0].recent && !loaded.messages[1].recent);
    // The renamed files are found by UID afterwards.
    assert_eq!(
        store.fetch(5).unwrap().unwrap().body.to_vec().unwrap(),
        b"weird\n"
    );
}

#[test]
fn uidless_files_are_numbered_only_for_open_ended_loads() {
    let fixture = Fixture::new();
    spec_inbox(&fixture);
    fixture.write("INBOX/new/1700000000.M1P1.myhost", "foreign\n");
    let mut store = fixture.opened("INBOX");
    let request = LoadRequest {
        range: Some((1, 3)),
        flags: true,
        ..LoadRequest::default()
    };
    let loaded = store.load(&request).unwrap();
    assert_eq!(loaded.messages.len(), 3);
    assert_eq!(loaded.total, 4);
    assert!(fixture.path("INBOX/new/1700000000.M1P1.myhost").exists());
    assert_eq!(fixture.read("INBOX/.uidvalidity"), "1795630145\n3\n");
}

#[test]
fn range_exceptions_and_optional_fields() {
    let fixture = Fixture::new();
    fixture.make_box_with_uidvalidity("Box", "77\n9\n");
    for uid in 1..=9u32 {
        let content =
            format!("From: a\nMessage-ID: <m{uid}@x>\nX-TUID: TUID{uid:08}\n\nbody {uid}\n");
        fixture.write(&format!("Box/cur/m{uid},U={uid}:2,FS"), &content);
    }
    let mut store = fixture.store();
    assert_eq!(open(&mut store, "Box"), 77);
    let request = LoadRequest {
        range: Some((6, 8)),
        exceptions: vec![2],
        new: false,
        flags: false,
        sizes_from: Some(7),
        tuids_from: Some(8),
        message_ids_upto: Some(6),
    };
    let loaded = store.load(&request).unwrap();
    assert_eq!(loaded.total, 9);
    assert_eq!(loaded.recent, 0);
    let uids = uids(&loaded);
    assert_eq!(uids, [2, 6, 7, 8]);
    for info in &loaded.messages {
        assert_eq!(info.flags, Flags::EMPTY, "flags only when requested");
        let expected_size = if info.uid >= 7 {
            std::fs::metadata(fixture.path(&format!("Box/cur/m{},U={}:2,FS", info.uid, info.uid)))
                .unwrap()
                .len()
        } else {
            0
        };
        assert_eq!(info.size, expected_size);
        let expected_tuid = (info.uid >= 8).then(|| {
            let text = format!("TUID{:08}", info.uid);
            <[u8; 12]>::try_from(text.as_bytes()).unwrap()
        });
        assert_eq!(info.tuid, expected_tuid);
        let expected_id = (info.uid <= 6).then(|| format!("<m{}@x>", info.uid).into_bytes());
        assert_eq!(info.message_id, expected_id);
    }
    let loaded = store
        .load(&LoadRequest {
            range: Some((9, 9)),
            flags: true,
            ..LoadRequest::default()
        })
        .unwrap();
    assert_eq!(loaded.messages[0].flags, flags("FS"));
}

#[test]
fn malformed_tuid_is_reported_and_ignored() {
    let fixture = Fixture::new();
    fixture.make_box_with_uidvalidity("Box", "1\n1\n");
    fixture.write("Box/new/a,U=1:2,", "X-TUID: short\n\nbody\n");
    let mut store = fixture.opened("Box");
    let loaded = store
        .load(&LoadRequest {
            tuids_from: Some(1),
            ..everything()
        })
        .unwrap();
    assert_eq!(loaded.messages[0].tuid, None);
    assert_eq!(
        fixture.recorder.warnings.borrow().as_slice(),
        [fixture.at_base("Maildir error: malformed X-TUID header in {base}/Box/new/a,U=1:2,")]
    );
}

#[test]
fn duplicate_and_excessive_uids_fail_the_box() {
    let fixture = Fixture::new();
    fixture.make_box_with_uidvalidity("Dup", "1\n5\n");
    fixture.write("Dup/cur/a,U=2:2,S", "");
    fixture.write("Dup/new/b,U=2:2,", "");
    let mut store = fixture.opened("Dup");
    let error = store.load(&everything()).unwrap_err();
    assert_eq!(
        error.message,
        fixture.at_base("Maildir error: duplicate UID 2 in {base}/Dup.")
    );
    assert_eq!(error.scope, FailureScope::Mailbox);

    fixture.make_box_with_uidvalidity("Big", "1\n5\n");
    fixture.write("Big/cur/a,U=6:2,S", "");
    open(&mut store, "Big");
    let error = store.load(&everything()).unwrap_err();
    assert_eq!(
        error.message,
        fixture.at_base("Maildir error: UID 6 is beyond highest assigned UID 5 in {base}/Big.")
    );
}

#[test]
fn fresh_uidvalidity_renumbers_existing_files() {
    let fixture = Fixture::new();
    fixture.make_box("Box");
    fixture.write("Box/cur/100.1_1.h,U=40:2,S", "a\n");
    fixture.write("Box/cur/100.1_2.h,U=7:2,", "b\n");
    let mut store = fixture.opened("Box");
    let loaded = store.load(&everything()).unwrap();
    let uids = uids(&loaded);
    assert_eq!(uids, [1, 2]);
    assert_eq!(
        fixture.files("Box/cur"),
        ["100.1_1.h,U=1:2,S", "100.1_2.h,U=2:2,"]
    );
    assert_eq!(fixture.read("Box/.uidvalidity"), format!("{NOW}\n2\n"));
    // Once renumbered, the names are trusted again.
    let loaded = store.load(&everything()).unwrap();
    assert_eq!(loaded.messages.len(), 2);
}

#[test]
fn files_stored_while_uids_are_fresh_keep_their_uids() {
    let fixture = Fixture::new();
    fixture.make_box("Box");
    fixture.write("Box/cur/100.1_1.h,U=1:2,S", "old\n");
    let mut store = fixture.opened("Box");
    // A load that does not number new messages leaves the old names untrusted.
    let listing_only = LoadRequest {
        new: false,
        ..everything()
    };
    let loaded = store.load(&listing_only).unwrap();
    assert!(loaded.messages.is_empty());
    let stored = store.store(message(b"new\n", "S")).unwrap();
    assert_eq!(stored, Some(1));
    // The next scan keeps the stored file's UID and numbers the old file after it.
    let loaded = store.load(&everything()).unwrap();
    assert_eq!(uids(&loaded), [1, 2]);
    let files = fixture.files("Box/cur");
    assert!(
        files.contains(&"100.1_1.h,U=2:2,S".to_string()),
        "{files:?}"
    );
}

#[test]
fn fresh_directories_make_the_scan_wait() {
    let mut fixture = Fixture::new();
    fixture.options.no_fresh_wait = false;
    fixture.make_box("Box");
    let mtime = std::fs::metadata(fixture.path("Box/cur"))
        .unwrap()
        .modified()
        .unwrap();
    let cur_secs = mtime.duration_since(UNIX_EPOCH).unwrap().as_secs();
    fixture
        .environment
        .now
        .set(UNIX_EPOCH + Duration::from_secs(cur_secs));
    fixture.loaded("Box");
    assert!(fixture.environment.sleeps.get() >= 1);
    assert!(
        fixture.recorder.notices.borrow().contains(
            &"Maildir notice: sleeping due to recent directory modification.".to_string()
        )
    );

    // With -Tz there is no wait.
    let fixture = Fixture::new();
    fixture.make_box("Box");
    fixture.environment.now.set(
        std::fs::metadata(fixture.path("Box/cur"))
            .unwrap()
            .modified()
            .unwrap(),
    );
    fixture.loaded("Box");
    assert_eq!(fixture.environment.sleeps.get(), 0);

    // Directories created in this open do not count as fresh.
    let mut fixture = Fixture::new();
    fixture.options.no_fresh_wait = false;
    fixture.environment.now.set(SystemTime::now());
    fixture.loaded("INBOX");
    assert_eq!(fixture.environment.sleeps.get(), 0);
}

#[test]
fn scan_restarts_when_a_directory_changes_meanwhile() {
    let fixture = Fixture::new();
    spec_inbox(&fixture);
    let late = fixture.path("INBOX/new/1795630146.1_1.other");
    *fixture.environment.on_scan_listed.borrow_mut() = Some(Box::new(move || {
        std::fs::write(late, "late delivery\n").unwrap();
    }));
    let mut store = fixture.opened("INBOX");
    let loaded = store.load(&everything()).unwrap();
    assert_eq!(fixture.environment.scan_passes.get(), 2);
    assert_eq!(loaded.total, 4);
    let uids = uids(&loaded);
    assert_eq!(uids, [1, 2, 3, 4]);
    assert!(fixture.path("INBOX/new/1795630146.1_1.other,U=4").exists());
}

// ---------------------------------------------------------------- storing and changing

#[test]
fn store_names_files_and_places_them_by_seen() {
    let fixture = Fixture::new();
    let mut store = fixture.loaded("INBOX");
    let unseen = store.store(message(b"unseen\n", "F")).unwrap();
    let seen = store.store(message(b"seen\n", "SR")).unwrap();
    assert_eq!((unseen, seen), (Some(1), Some(2)));
    let new = fixture.files("INBOX/new");
    let cur = fixture.files("INBOX/cur");
    assert_eq!((new.len(), cur.len()), (1, 1));
    assert_generated(&new[0], ",U=1:2,F");
    assert_generated(&cur[0], ",U=2:2,RS");
    assert!(fixture.files("INBOX/tmp").is_empty());
    // UIDs are reserved in blocks (1, then 2 and 3); the flush gives back the unused one.
    assert_eq!(fixture.read("INBOX/.uidvalidity"), format!("{NOW}\n3\n"));
    store.flush().unwrap();
    assert_eq!(fixture.read("INBOX/.uidvalidity"), format!("{NOW}\n2\n"));
    assert_eq!(fixture.read(&format!("INBOX/cur/{}", cur[0])), "seen\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(fixture.path(&format!("INBOX/cur/{}", cur[0])))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(store.uid_next_hint().unwrap(), 2);
    // The process-wide counter differs between the two files.
    assert_ne!(new[0].split(',').next(), cur[0].split(',').next());
}

#[test]
fn stored_messages_are_found_again_without_a_rescan() {
    let fixture = Fixture::new();
    let mut store = fixture.loaded("INBOX");
    let passes = fixture.environment.scan_passes.get();
    let first = store.store(message(b"first\n", "F")).unwrap().unwrap();
    let second = store.store(message(b"second\n", "S")).unwrap().unwrap();
    // `files` keeps these names as their parts; rebuilt, they must name the files on disk.
    let fetched = store.fetch(first).unwrap().unwrap();
    assert_eq!(fetched.flags, flags("F"));
    assert!(store.set_flags(second, flags("R"), Flags::EMPTY).unwrap());
    assert_eq!(store.expunge(&[first]).unwrap(), [first]);
    assert_eq!(store.fetch(second).unwrap().unwrap().flags, flags("RS"));
    assert_eq!(fixture.environment.scan_passes.get(), passes);
    assert!(fixture.files("INBOX/new").is_empty());
    assert_eq!(fixture.files("INBOX/cur").len(), 1);
}

#[test]
fn store_with_date_and_fetch() {
    let fixture = Fixture::new();
    let mut store = fixture.opened("INBOX");
    let date = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let uid = store
        .store(NewMessage {
            data: MessageData::Bytes(b"dated\n"),
            flags: flags("S"),
            date: Some(date),
        })
        .unwrap()
        .unwrap();
    let fetched = store.fetch(uid).unwrap().unwrap();
    assert_eq!(fetched.body.to_vec().unwrap(), b"dated\n");
    assert_eq!(fetched.flags, Flags::SEEN);
    assert_eq!(fetched.date, Some(date));
    assert!(store.fetch(99).unwrap().is_none());
}

#[test]
fn withheld_uids_still_name_the_file() {
    let mut fixture = Fixture::new();
    fixture.options.withhold_uids = true;
    let mut store = fixture.loaded("INBOX");
    assert_eq!(
        store
            .store(message(b"X-TUID: AAAAAAAAAAAA\n\nx\n", ""))
            .unwrap(),
        None
    );
    let new = fixture.files("INBOX/new");
    assert_generated(&new[0], ",U=1:2,");
    // The copy is found again by its TUID.
    let found = store.find_new(1).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].uid, 1);
    assert_eq!(found[0].tuid, Some(*b"AAAAAAAAAAAA"));
}

#[test]
fn find_new_only_sees_new_files_after_open_ended_load() {
    let fixture = Fixture::new();
    spec_inbox(&fixture);
    let mut store = fixture.opened("INBOX");
    store
        .load(&LoadRequest {
            range: Some((1, 3)),
            ..LoadRequest::default()
        })
        .unwrap();
    store
        .store(message(b"X-TUID: BBBBBBBBBBBB\n\n", ""))
        .unwrap();
    fixture.write("INBOX/new/foreign", "X-TUID: CCCCCCCCCCCC\n\n");
    let hint = 3;
    assert!(store.find_new(hint).unwrap().iter().all(|m| m.uid <= 3));
    assert!(fixture.path("INBOX/new/foreign").exists(), "not numbered");

    store.load(&everything()).unwrap();
    store
        .store(message(b"X-TUID: DDDDDDDDDDDD\n\n", ""))
        .unwrap();
    let found = store.find_new(6).unwrap();
    let tuids: Vec<_> = found.iter().map(|m| (m.uid, m.tuid)).collect();
    assert_eq!(tuids, [(6, Some(*b"DDDDDDDDDDDD"))]);
}

#[test]
fn flag_changes_rename_into_cur() {
    let fixture = Fixture::new();
    spec_inbox(&fixture);
    fixture.write("INBOX/new/foreign", "x\n");
    let mut store = fixture.loaded("INBOX");
    assert!(store.set_flags(1, flags("SF"), Flags::EMPTY).unwrap());
    assert!(
        fixture
            .path("INBOX/cur/1795630145.20256_1.vm,U=1:2,FS")
            .exists()
    );
    assert!(store.set_flags(2, flags("T"), flags("S")).unwrap());
    assert!(
        fixture
            .path("INBOX/cur/1795630145.20256_2.vm,U=2:2,T")
            .exists()
    );
    assert!(store.set_flags(4, flags("R"), Flags::EMPTY).unwrap());
    assert!(fixture.path("INBOX/cur/foreign,U=4:2,R").exists());
    assert_eq!(fixture.files("INBOX/new"), ["1795630145.20256_3.vm,U=3:2,"]);
    assert_eq!(store.fetch(1).unwrap().unwrap().flags, flags("FS"));
}

#[test]
fn vanished_file_is_found_by_rescan() {
    let fixture = Fixture::new();
    spec_inbox(&fixture);
    let mut store = fixture.loaded("INBOX");
    // Another program marks message 3 seen behind our back.
    std::fs::rename(
        fixture.path("INBOX/new/1795630145.20256_3.vm,U=3:2,"),
        fixture.path("INBOX/cur/1795630145.20256_3.vm,U=3:2,S"),
    )
    .unwrap();
    assert!(store.set_flags(3, flags("F"), Flags::EMPTY).unwrap());
    assert!(
        fixture
            .path("INBOX/cur/1795630145.20256_3.vm,U=3:2,FS")
            .exists()
    );
    // Another program deletes message 1: it is gone.
    std::fs::remove_file(fixture.path("INBOX/new/1795630145.20256_1.vm,U=1:2,")).unwrap();
    assert!(!store.set_flags(1, flags("S"), Flags::EMPTY).unwrap());
    assert!(store.fetch(1).unwrap().is_none());
}

#[test]
fn trash_moves_with_fresh_name_and_creates_trash() {
    let mut fixture = Fixture::new();
    fixture.config.common.trash = Some("Trash".to_string());
    spec_inbox(&fixture);
    let mut store = fixture.loaded("INBOX");
    assert!(store.trash(2).unwrap());
    assert!(store.trash(3).unwrap());
    let cur = fixture.files("Trash/cur");
    let new = fixture.files("Trash/new");
    assert_eq!((cur.len(), new.len()), (1, 1));
    assert_generated(&cur[0], ":2,S");
    assert_generated(&new[0], ":2,");
    assert!(!fixture.path("Trash/.uidvalidity").exists());
    assert_eq!(fixture.files("INBOX/cur"), Vec::<String>::new());
    assert!(!store.trash(2).unwrap(), "already moved");
    // Remote-trash copies: unnumbered, by S.
    store.store_to_trash(message(b"copy\n", "S")).unwrap();
    let cur = fixture.files("Trash/cur");
    assert_eq!(cur.len(), 2);
    assert!(cur.iter().all(|name| !name.contains(",U=")));
}

#[test]
fn store_to_trash_creates_the_trash_box() {
    let mut fixture = Fixture::new();
    fixture.config.common.trash = Some("Junk/Trash".to_string());
    let mut store = fixture.store();
    store.store_to_trash(message(b"copy\n", "")).unwrap();
    let new = fixture.files("Junk/Trash/new");
    assert_eq!(new.len(), 1);
    assert_generated(&new[0], ":2,");
}

#[test]
fn expunge_removes_exactly_the_given_uids() {
    let fixture = Fixture::new();
    spec_inbox(&fixture);
    fixture.write("INBOX/cur/x,U=3:2,T", "");
    std::fs::remove_file(fixture.path("INBOX/new/1795630145.20256_3.vm,U=3:2,")).unwrap();
    let mut store = fixture.loaded("INBOX");
    assert_eq!(store.expunge(&[2]).unwrap(), [2]);
    assert_eq!(fixture.files("INBOX/cur"), ["x,U=3:2,T"]);
    assert_eq!(fixture.files("INBOX/new"), ["1795630145.20256_1.vm,U=1:2,"]);
    assert_eq!(store.load(&everything()).unwrap().total, 2);
}

#[test]
fn delete_box_removes_in_order_and_leftovers() {
    let fixture = Fixture::new();
    fixture.make_box("Old");
    fixture.make_box("Kept");
    fixture.make_box("Kept/Child");
    let mut store = fixture.opened("Old");
    assert!(store.is_empty().unwrap());
    fixture.write("Old/.mbsyncstate", "state");
    store.delete_box().unwrap();
    assert_eq!(fixture.files("Old"), [".mbsyncstate"]);
    std::fs::remove_file(fixture.path("Old/.mbsyncstate")).unwrap();
    store.remove_box_leftovers();
    assert!(!fixture.path("Old").exists());
    // A box with a sub-folder keeps its directory.
    open(&mut store, "Kept");
    store.delete_box().unwrap();
    store.remove_box_leftovers();
    assert!(fixture.path("Kept/Child/cur").is_dir());
    assert!(!fixture.path("Kept/cur").exists());
    // A non-empty box is not deleted.
    fixture.make_box("Full");
    fixture.write("Full/cur/m", "x");
    open(&mut store, "Full");
    assert!(!store.is_empty().unwrap());
    assert!(store.delete_box().is_err());
    assert!(fixture.path("Full/.uidvalidity").exists());
}

#[test]
fn info_delimiter_bang() {
    let mut fixture = Fixture::new();
    fixture.config.info_delimiter = '!';
    let mut store = fixture.opened("INBOX");
    store.store(message(b"x\n", "")).unwrap();
    assert_generated(&fixture.files("INBOX/new")[0], ",U=1!2,");
    fixture.write("INBOX/cur/foreign:2,S", "");
    fixture.write("INBOX/cur/other!2,S", "");
    let loaded = store.load(&everything()).unwrap();
    let by_uid: Vec<(u32, Flags)> = loaded.messages.iter().map(|m| (m.uid, m.flags)).collect();
    // `:2,S` is no info part with `!`: no flags, and `,U=` is appended.
    assert_eq!(
        by_uid,
        [(1, Flags::EMPTY), (2, Flags::EMPTY), (3, Flags::SEEN)]
    );
    assert_eq!(
        fixture.files("INBOX/cur"),
        ["foreign:2,S,U=2", "other,U=3!2,S"]
    );
    assert!(store.set_flags(2, flags("F"), Flags::EMPTY).unwrap());
    assert!(fixture.path("INBOX/cur/foreign:2,S,U=2!2,F").exists());
}

// ---------------------------------------------------------------- concurrency

#[test]
fn concurrent_allocation_never_repeats_a_uid() {
    let fixture = Fixture::new();
    fixture.make_box_with_uidvalidity("Shared", "5\n0\n");
    let config = fixture.config.clone();
    const PER_THREAD: usize = 150;
    let start = std::sync::Arc::new(std::sync::Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let config = config.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut store = MaildirStore::new(
                    &config,
                    worker_options(),
                    Rc::new(crate::store::SilentReporter),
                )
                .unwrap();
                open(&mut store, "Shared");
                (0..PER_THREAD)
                    .map(|_| store.store(message(b"m\n", "")).unwrap().unwrap())
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    let all: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_distinct_and_counted(all, 3 * PER_THREAD, &fixture.read("Shared/.uidvalidity"));
    let mut store = fixture.opened("Shared");
    assert_eq!(
        store.load(&everything()).unwrap().messages.len(),
        3 * PER_THREAD
    );
}

#[test]
fn lock_excludes_another_process() {
    // While one `.uidvalidity` handle holds the lock, a second one (another thread here;
    // the lock is per open file, so this works like another process) waits for it.
    let fixture = Fixture::new();
    fixture.make_box_with_uidvalidity("Locked", "5\n0\n");
    let dir = fixture.at_base("{base}/Locked");
    let mut holder =
        super::uidvalidity::UidFile::open(&dir, 1, false, &crate::store::SilentReporter)
            .unwrap()
            .file;
    let (sender, receiver) = std::sync::mpsc::channel();
    let waiter_dir = dir.clone();
    let waiter = std::thread::spawn(move || {
        let mut file =
            super::uidvalidity::UidFile::open(&waiter_dir, 1, false, &crate::store::SilentReporter)
                .unwrap()
                .file;
        let uid = file.allocate().unwrap();
        sender.send(uid).unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(receiver.try_recv().is_err(), "second locker must wait");
    assert_eq!(holder.allocate().unwrap(), 1);
    holder.unlock();
    assert_eq!(receiver.recv_timeout(Duration::from_secs(10)).unwrap(), 2);
    waiter.join().unwrap();
}

/// Environment variable that turns `child_process_allocator` into a worker: it names the
/// Path of the store whose `Shared` box the worker stores messages into.
const CHILD_PATH_VARIABLE: &str = "MAILSYNC_MAILDIR_TEST_CHILD_PATH";
const CHILD_MESSAGES: usize = 200;

fn shared_box_config(path: &str) -> MaildirStoreConfig {
    store_config("shared", path)
}

/// Worker half of `concurrent_allocation_across_processes`; does nothing when run normally.
#[test]
fn child_process_allocator() {
    let Ok(path) = std::env::var(CHILD_PATH_VARIABLE) else {
        return;
    };
    let mut store = MaildirStore::new(
        &shared_box_config(&path),
        worker_options(),
        Rc::new(crate::store::SilentReporter),
    )
    .unwrap();
    open(&mut store, "Shared");
    // Start together with the other workers: wait for the parent's go file.
    let go = format!("{path}/go");
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while !Path::new(&go).exists() {
        assert!(std::time::Instant::now() < give_up, "no go file");
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..CHILD_MESSAGES {
        let uid = store.store(message(b"m\n", "")).unwrap().unwrap();
        println!("ALLOCATED {uid}");
    }
}

#[test]
fn concurrent_allocation_across_processes() {
    let fixture = Fixture::new();
    fixture.make_box_with_uidvalidity("Shared", "5\n0\n");
    let executable = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&executable)
                .args([
                    "--exact",
                    "store::maildir::tests::child_process_allocator",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_PATH_VARIABLE, fixture.base())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process allocates at the same time.
    std::thread::sleep(Duration::from_millis(300));
    fixture.write("go", "");
    let mut store = MaildirStore::new(
        &shared_box_config(&fixture.base()),
        fixture.options,
        Rc::new(crate::store::SilentReporter),
    )
    .unwrap();
    open(&mut store, "Shared");
    let mut all: Vec<u32> = (0..CHILD_MESSAGES)
        .map(|_| store.store(message(b"m\n", "")).unwrap().unwrap())
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let text = String::from_utf8(output.stdout).unwrap();
        all.extend(
            text.lines()
                // The harness may print its own text in front of a line.
                .filter_map(|line| line.split_once("ALLOCATED ").map(|(_, uid)| uid))
                .map(|uid| uid.parse::<u32>().unwrap()),
        );
    }
    assert_distinct_and_counted(
        all,
        3 * CHILD_MESSAGES,
        &fixture.read("Shared/.uidvalidity"),
    );
}

/// Concurrent allocators never hand out a UID twice, and the counter is not below any UID
/// handed out. (Reservations another allocator went past are not given back, so the UIDs
/// may have gaps.)
fn assert_distinct_and_counted(mut all: Vec<u32>, count: usize, uidvalidity: &str) {
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "a UID was handed out twice");
    let counter: u32 = uidvalidity
        .lines()
        .nth(1)
        .and_then(|line| line.parse().ok())
        .expect("a counter line");
    assert!(
        counter >= all[count - 1],
        "counter {counter} below a UID in use"
    );
    assert!(uidvalidity.starts_with("5\n"));
}

#[test]
fn stored_messages_are_visible_at_once_and_synced_by_flush() {
    let fixture = Fixture::new();
    let mut store = fixture.loaded("INBOX");
    store.store(message(b"one\n", "S")).unwrap();
    store.store(message(b"two\n", "")).unwrap();
    assert_eq!(fixture.files("INBOX/cur").len(), 1);
    assert_eq!(fixture.files("INBOX/new").len(), 1);
    assert_eq!(store.unflushed.files.len(), 2);
    let base = fixture.base();
    let dirs: Vec<&String> = store.unflushed.dirs.iter().collect();
    assert_eq!(
        dirs,
        [&format!("{base}/INBOX/cur"), &format!("{base}/INBOX/new")]
    );
    store.flush().unwrap();
    assert!(store.unflushed.files.is_empty() && store.unflushed.dirs.is_empty());
    // Nothing to do the second time.
    store.flush().unwrap();
}

#[test]
fn without_fsync_nothing_waits_for_flush() {
    let mut fixture = Fixture::new();
    fixture.options.fsync = false;
    let mut store = fixture.loaded("INBOX");
    store.store(message(b"one\n", "S")).unwrap();
    assert!(store.unflushed.files.is_empty());
    store.flush().unwrap();
}

#[test]
fn flush_names_a_file_it_cannot_sync() {
    let fixture = Fixture::new();
    let mut store = fixture.loaded("INBOX");
    store.store(message(b"one\n", "S")).unwrap();
    let name = fixture.files("INBOX/cur").remove(0);
    std::fs::remove_dir_all(fixture.path("INBOX")).unwrap();
    let error = store.flush().unwrap_err();
    assert!(
        error.message.starts_with("Maildir error: cannot sync ") && error.message.contains(&name),
        "{}",
        error.message
    );
}

// ---------------------------------------------------------------- read-ahead

/// A spec INBOX and what a read-ahead saw of it, without one of its messages: a scan that
/// misses that message took the listing (a real one never differs from directories with
/// the same stamps).
fn inbox_read_ahead_short_of_a_message(fixture: &Fixture) -> ReadAhead {
    spec_inbox(fixture);
    let stamp = |sub: &str| {
        read_ahead::DirStamp::of(&std::fs::metadata(fixture.path(&format!("INBOX/{sub}"))).unwrap())
    };
    let names = ["cur", "new"].map(|sub| {
        fixture
            .files(&format!("INBOX/{sub}"))
            .into_iter()
            .filter(|name| name != "1795630145.20256_3.vm,U=3:2,")
            .collect()
    });
    let listing = read_ahead::Listing {
        stamps: [stamp("cur"), stamp("new")],
        names,
    };
    ReadAhead::ready(&fixture.path("INBOX").to_string_lossy(), listing)
}

/// A store that takes its listings from `read_ahead`, with INBOX open.
fn store_reading_ahead(fixture: &Fixture, read_ahead: ReadAhead) -> MaildirStore {
    let mut store = fixture.store();
    store.set_read_ahead(read_ahead);
    open(&mut store, "INBOX");
    store
}

#[test]
fn a_scan_takes_the_names_read_ahead_while_the_directories_are_unchanged() {
    let fixture = Fixture::new();
    let read_ahead = inbox_read_ahead_short_of_a_message(&fixture);
    let mut store = store_reading_ahead(&fixture, read_ahead);
    assert_eq!(uids(&store.load(&everything()).unwrap()), [1, 2]);
    // Taken once: a later scan reads the directories.
    store.rescan().unwrap();
    assert_eq!(store.open_box_ref().unwrap().files.len(), 3);
}

#[test]
fn a_scan_reads_directories_changed_since_their_read_ahead() {
    let fixture = Fixture::new();
    let read_ahead = inbox_read_ahead_short_of_a_message(&fixture);
    // A delivery after the read-ahead changes new/'s stamp (after a clock tick: a file
    // system with coarse timestamps may stamp changes within one tick alike, which is why a
    // real read-ahead skips directories changed in the last two seconds).
    std::thread::sleep(Duration::from_millis(20));
    fixture.write("INBOX/new/1795630146.1_1.other", "late delivery\n");
    let mut store = store_reading_ahead(&fixture, read_ahead);
    assert_eq!(uids(&store.load(&everything()).unwrap()), [1, 2, 3, 4]);
}
