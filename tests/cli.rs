//! Command-line tests running the built binary, as `mailsync sync …` and through an `mbsync`
//! symlink: version/help, usage errors and exit codes, config errors, channel selection
//! errors, and `-l`/`-ls` on a Maildir tree in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::create_dir_all(sandbox.path("bin")).expect("bin dir");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_mailsync"), sandbox.path("bin/mbsync"))
            .expect("mbsync symlink");
        sandbox
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> String {
        self.dir.path().to_str().expect("utf-8").to_string()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    fn maildir(&self, rel: &str) {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(self.path(rel).join(sub)).expect("maildir");
        }
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", "/usr/bin:/bin")
            .current_dir(self.dir.path());
        command
    }

    fn finish(mut command: Command) -> Run {
        let output = command.output().expect("run binary");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `mailsync sync ARGS`.
    fn sync(&self, args: &[&str]) -> Run {
        let mut all = vec!["sync"];
        all.extend_from_slice(args);
        Sandbox::finish(self.command(Path::new(env!("CARGO_BIN_EXE_mailsync")), &all))
    }

    /// `mbsync ARGS` through the symlink.
    fn mbsync(&self, args: &[&str]) -> Run {
        Sandbox::finish(self.command(&self.path("bin/mbsync"), args))
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn version_depends_on_the_program_name() {
    let sandbox = Sandbox::new();
    let version = env!("CARGO_PKG_VERSION");
    let run = sandbox.mbsync(&["-v"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, format!("isync 1.5.1 (mailsync {version})\n").as_str())
    );
    let run = sandbox.mbsync(&["--version"]);
    assert_eq!(run.stdout, format!("isync 1.5.1 (mailsync {version})\n"));
    let run = sandbox.sync(&["-v"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, format!("mailsync {version}\n").as_str())
    );
}

#[test]
fn help_prints_usage() {
    let sandbox = Sandbox::new();
    for args in [["-h"], ["--help"]] {
        let run = sandbox.mbsync(&args);
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("mbsync [options]"), "{}", run.stdout);
        assert!(run.stdout.contains("--list-stores"));
    }
    let run = sandbox.sync(&["-h"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("mailsync sync [options]"));
}

#[test]
fn usage_errors_exit_1() {
    let sandbox = Sandbox::new();
    for (args, message) in [
        (vec!["-"], "Invalid option '-'"),
        (vec!["--frobnicate"], "Unknown option '--frobnicate'"),
        (vec!["-Vk"], "Unknown option '-k'"),
        (vec!["-c"], "-c requires an argument."),
        (vec!["--config"], "--config requires an argument."),
        (vec!["-Dz"], "Unknown -D flag 'z'"),
        (vec!["-Tk"], "Unknown -T flag 'k'"),
        (
            vec!["--create-near", "--no-create"],
            "Conflicting Create options specified on the command line.",
        ),
    ] {
        for run in [sandbox.mbsync(&args), sandbox.sync(&args)] {
            assert_eq!(run.code, 1, "{args:?}");
            assert_eq!(run.stderr, format!("{message}\n"), "{args:?}");
            assert_eq!(run.stdout, "");
        }
    }
}

#[test]
fn home_must_be_set() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(&sandbox.path("bin/mbsync"), &["-v"]);
    command.env_remove("HOME");
    let run = Sandbox::finish(command);
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "Fatal: $HOME not set\n");
}

#[test]
fn config_file_errors() {
    let sandbox = Sandbox::new();
    let run = sandbox.mbsync(&["-a"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "Cannot open config file '{}/.config/isyncrc': No such file or directory\n",
            sandbox.root()
        )
    );
    sandbox.write("rc", "MaildirStore m\nPath /p/\nBogus x\nSubFolders Deep\n");
    let run = sandbox.mbsync(&["-c", "rc", "-a"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        lines(&run.stderr),
        vec![
            "./rc:3: keyword 'Bogus' is not recognized in MaildirStore sections",
            "./rc:4: Unrecognized SubFolders style (expected Verbatim, Maildir++ or Legacy)",
        ]
    );
}

#[test]
fn default_config_locations() {
    let sandbox = Sandbox::new();
    sandbox.write(".mbsyncrc", "MaildirStore legacy\nPath /p/\n");
    let run = sandbox.sync(&["-ls", "nope"]);
    assert_eq!(run.stderr, "No store named 'nope' defined.\n");
    sandbox.write(".config/isyncrc", "MaildirStore xdg\nPath /p/\n");
    let run = sandbox.sync(&["-ls", "nope"]);
    let root = sandbox.root();
    assert_eq!(
        lines(&run.stderr),
        vec![
            format!("Both {root}/.config/isyncrc and {root}/.mbsyncrc exist; using the former."),
            "No store named 'nope' defined.".to_string(),
        ]
    );
    let run = sandbox.sync(&["-V", "-ls", "nope"]);
    assert!(
        run.stdout.contains(&format!(
            "Reading configuration file {root}/.config/isyncrc"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn deprecation_notices_go_to_stderr() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "rc",
        "MaildirStore m\nPath /p/\n\nChannel c\nMaster :m:\nSlave :m:\n",
    );
    let run = sandbox.mbsync(&["-c", "rc", "-N", "-ls", "nope"]);
    assert_eq!(
        lines(&run.stderr),
        vec![
            "Notice: --renew/-N are deprecated; use --upgrade/-u instead.",
            "./rc: notice: Master/Slave are deprecated; use Far/Near instead.",
            "No store named 'nope' defined.",
        ]
    );
    assert_eq!(run.code, 1);
}

#[test]
fn selection_errors() {
    let sandbox = Sandbox::new();
    sandbox.write("empty", "MaildirStore m\nPath /p/\n");
    let run = sandbox.mbsync(&["-c", "empty", "-a"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "No channels defined. Try 'man mbsync'\n")
    );
    sandbox.write(
        "rc",
        "MaildirStore m\nPath /p/\n\nChannel plain\nFar :m:a\nNear :m:b\n\nGroup g plain:x later\n",
    );
    let run = sandbox.mbsync(&["-c", "rc"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "No channel specified. Try 'mbsync -h'\n")
    );
    let run = sandbox.mbsync(&["-c", "rc", "-l", "nope", "plain:INBOX", "g"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        lines(&run.stderr),
        vec![
            "No channel or group named 'nope' defined.",
            "Cannot override mailbox in channel 'plain' - no Patterns.",
            "Cannot override mailbox in channel 'plain' - no Patterns.",
            "No channel or group named 'later' defined.",
        ]
    );
    assert_eq!(run.stdout, "");
}

/// A Maildir tree: INBOX with a sub-folder, and Path with nested folders.
fn mail_tree(sandbox: &Sandbox) {
    sandbox.maildir("inbox");
    sandbox.maildir("inbox/Sub");
    sandbox.maildir("Mail/Archive");
    sandbox.maildir("Mail/Archive/2024");
    sandbox.maildir("Mail/Junk");
    sandbox.maildir("Mail/work/Sent");
    std::fs::create_dir_all(sandbox.path("Mail/nocur")).expect("plain dir");
    sandbox.maildir("near/Archive");
    sandbox.maildir("near/Local");
    let root = sandbox.root();
    sandbox.write(
        "rc",
        &format!(
            "MaildirStore far\nPath {root}/Mail/\nInbox {root}/inbox\nSubFolders Verbatim\n\n\
             MaildirStore near\nPath {root}/near/\nInbox {root}/near-inbox\nSubFolders Verbatim\n\n\
             MaildirStore flat\nPath {root}/near/\nInbox {root}/near-inbox\nFlatten .\n\n\
             IMAPStore remote\nHost 127.0.0.1\n\n\
             MaildirStore missing\nPath {root}/nonexistent/\n\n\
             Channel broken\nFar :far:\nNear :missing:\n\n\
             Channel all\nFar :far:\nNear :near:\nPatterns * !Junk INBOX\n\n\
             Channel prefixed\nFar :far:work/\nNear :near:\nPatterns %\n\n\
             Channel single\nFar :far:Archive\nNear :near:\n\n\
             Group both all single\n"
        ),
    );
}

fn sorted_block(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn list_stores_on_a_maildir_tree() {
    let sandbox = Sandbox::new();
    mail_tree(&sandbox);
    let run = sandbox.mbsync(&["-c", "rc", "-ls", "far"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().next(), Some("===== far:"));
    assert_eq!(
        sorted_block(&run.stdout),
        vec![
            "Archive",
            "Archive/2024",
            "INBOX",
            "INBOX/Sub",
            "Junk",
            "work/Sent"
        ]
    );
    let run = sandbox.sync(&["-c", "rc", "--list-stores", "near"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().next(), Some("===== near:"));
    assert_eq!(sorted_block(&run.stdout), vec!["Archive", "INBOX", "Local"]);
}

#[test]
fn list_stores_errors() {
    let sandbox = Sandbox::new();
    mail_tree(&sandbox);
    // An IMAP store is listed by connecting to it; without a password to log in with (and
    // nothing on stdin to prompt), or with nothing listening, the listing fails.
    let run = sandbox.mbsync(&["-c", "rc", "-ls", "remote"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("127.0.0.1"), "{}", run.stderr);
    let run = sandbox.mbsync(&["-c", "rc", "-ls", "ghost"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "No store named 'ghost' defined.\n")
    );
    sandbox.write("nostores", "FSync no\n");
    let run = sandbox.mbsync(&["-c", "nostores", "-ls"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, "No stores defined.\n"));
}

#[test]
fn list_channel_boxes() {
    let sandbox = Sandbox::new();
    mail_tree(&sandbox);
    let run = sandbox.mbsync(&["-c", "rc", "-l", "all"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        lines(&run.stdout),
        vec![
            "INBOX",
            "INBOX/Sub",
            "Archive",
            "Archive/2024",
            "Local",
            "work/Sent"
        ]
    );
    let run = sandbox.mbsync(&["-c", "rc", "--list", "prefixed"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        lines(&run.stdout),
        vec![
            "work/Archive <=> Archive",
            "work/Local <=> Local",
            "work/Sent <=> Sent"
        ]
    );
    let run = sandbox.mbsync(&["-c", "rc", "-l", "single", "all:,Junk", "prefixed:x"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        lines(&run.stdout),
        vec![
            "single:",
            "Archive <=> INBOX",
            "all:",
            "INBOX",
            "Junk",
            "prefixed:",
            "work/x <=> x",
        ]
    );
    let run = sandbox.sync(&["-c", "rc", "-l", "both"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lines(&run.stdout)[0], "all:");
    assert!(lines(&run.stdout).contains(&"single:"));
}

#[test]
fn list_skips_channels_whose_store_cannot_be_opened() {
    let sandbox = Sandbox::new();
    mail_tree(&sandbox);
    let run = sandbox.mbsync(&["-c", "rc", "-l", "broken", "single"]);
    assert_eq!(run.code, 1);
    let expected = format!(
        "Maildir error: cannot open store '{}/nonexistent",
        sandbox.root()
    );
    assert!(run.stderr.starts_with(&expected), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1);
    assert_eq!(lines(&run.stdout), vec!["single:", "Archive <=> INBOX"]);
}

#[test]
fn mailsync_sync_passes_arguments_verbatim() {
    let sandbox = Sandbox::new();
    mail_tree(&sandbox);
    let run = sandbox.sync(&["-c", "rc", "-l", "--", "-odd"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "No channel or group named '-odd' defined.\n")
    );
    let run =
        Sandbox::finish(sandbox.command(Path::new(env!("CARGO_BIN_EXE_mailsync")), &["nonsense"]));
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("nonsense"));
}
