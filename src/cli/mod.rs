//! The command line: `mailsync <subcommand>`, and the mbsync-compatible command line used by
//! `mailsync sync …` and by the binary when started under the name `mbsync`.
//!
//! [`run_mbsync`] runs a whole mbsync command line and returns the exit status;
//! [`run_mailsync`] parses `mailsync`'s own subcommands with clap.

pub mod args;
pub mod list;
pub mod select;

use clap::{Parser, Subcommand};

use crate::config::{self, Environment};
use crate::output;
use crate::sync::RunOptions;
use args::{Mode, Parsed};

pub use args::{MbsyncArgs, UsageError, parse_args};
pub use select::select_channels;

/// The isync release whose behaviour mailsync reproduces.
pub const ISYNC_VERSION: &str = "1.5.1";

/// How the program was started: as `mbsync`, or as `mailsync sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Mbsync,
    MailsyncSync,
}

impl Program {
    /// The `-v` text.
    pub fn version_text(self) -> String {
        let version = env!("CARGO_PKG_VERSION");
        match self {
            Program::Mbsync => format!("isync {ISYNC_VERSION} (mailsync {version})"),
            Program::MailsyncSync => format!("mailsync {version}"),
        }
    }
    fn command(self) -> &'static str {
        match self {
            Program::Mbsync => "mbsync",
            Program::MailsyncSync => "mailsync sync",
        }
    }
}

/// The `-h` text.
pub fn usage_text(program: Program) -> String {
    let cmd = program.command();
    format!(
        "{version} - synchronize mailboxes (mbsync-compatible)

Usage:
  {cmd} [options] {{channel[:box,...] | group}}...
  {cmd} [options] -a
  {cmd} [options] -l {{channel | group}}...     list the boxes channels would sync
  {cmd} [options] -ls [store...]             list the mailboxes of stores

Selection and mode:
  -a, --all             every channel of the config file
  -l, --list            list boxes instead of syncing
  -ls, --list-stores    list the raw mailboxes of stores
  -c, --config FILE     read FILE instead of the default config file

What to propagate (default: everything but old messages, both ways):
  -n, --new             newly arrived messages
  -o, --old             messages skipped earlier
  -u, --upgrade         full versions of placeholders
  -g, --gone            deletions of messages
  -f, --flags           flag changes
  -F                    new, upgrade, gone and flags in both directions
  --full                all of the above including old
  -0, --noop            nothing
  -L, --pull            far to near only; -L<types> / --pull-<type> for single types
  -H, --push            near to far only; -H<types> / --push-<type> for single types
  -C[f|n], --create[-far|-near]          create missing mailboxes
  -R[f|n], --remove[-far|-near]          remove mailboxes deleted on the other side
  -X[f|n], --expunge[-far|-near]         expunge deleted messages
  -x[f|n], --expunge-solo[-far|-near]    expunge only unpaired deleted messages
  --no-create, --no-remove, --no-expunge, --no-expunge-solo   none of that

Output and run control:
  -V, --verbose         say what is happening
  -q, --quiet           less output (twice: no warnings either)
  -y, --dry-run         compute everything, change nothing
  -e, --ext-exit        exit status +32 / +64 when far / near changed
  --allow-mass-delete   propagate deletions although a side lost more than
                        MaxDeletePercent of its messages (mailsync extension)
  --max-connections N   synchronize up to N mailboxes at once, N connections per
                        store (overrides MaxConnections; mailsync extension)
  -D[CdDmMnNs], --debug[-<category>]   debugging output
  -v, --version         print the version
  -h, --help            print this help

Command-line operation options replace the configured ones per category.
",
        version = program.version_text()
    )
}

fn quote_args(argv: &[String]) -> String {
    argv.iter().map(|a| format!(" '{a}'")).collect()
}

/// Runs an mbsync command line (`argv` without the program name) and returns the exit status.
pub fn run_mbsync(argv: &[String], program: Program) -> i32 {
    let env = match Environment::from_process() {
        Ok(env) => env,
        Err(error) => {
            output::error(&error.to_string());
            return 1;
        }
    };
    let args = match parse_args(argv) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Version) => {
            output::stdout_line(&program.version_text());
            return 0;
        }
        Ok(Parsed::Help) => {
            print!("{}", usage_text(program));
            return 0;
        }
        Err(error) => {
            output::error(&error.message);
            return error.exit_code();
        }
    };
    output::set_verbosity(args.verbosity());
    for notice in &args.notices {
        output::warning(notice);
    }
    if args.debug.any_output() {
        let package = match program {
            Program::Mbsync => format!("isync {ISYNC_VERSION}"),
            Program::MailsyncSync => format!("mailsync {}", env!("CARGO_PKG_VERSION")),
        };
        output::info(&format!("{package} called with:{}", quote_args(argv)));
    }
    let location = config::locate_config(args.config_file.as_deref(), &env);
    if let Some(warning) = &location.warning {
        output::warning(warning);
    }
    output::info(&format!("Reading configuration file {}", location.path));
    let loaded = match config::load(&location.path, &env) {
        Ok(loaded) => loaded,
        Err(error) => {
            for notice in error.notices() {
                output::warning(notice);
            }
            output::error(&error.to_string());
            return 1;
        }
    };
    for notice in &loaded.notices {
        output::warning(notice);
    }
    let config = loaded.config;
    let mut stdout = std::io::stdout();
    if args.mode == Mode::ListStores {
        return list::list_stores(&config, &args.names, &mut stdout);
    }
    let selection = match select_channels(&config, args.all, &args.names) {
        Ok(selection) => selection,
        Err(errors) => {
            for error in errors {
                output::error(&error);
            }
            return 1;
        }
    };
    if args.mode == Mode::List {
        return list::list_channels(&config, &selection, &mut stdout);
    }
    let options = RunOptions {
        ops: args.ops,
        dry_run: args.dry_run,
        ext_exit: args.ext_exit,
        allow_mass_delete: args.allow_mass_delete,
        max_connections: args.max_connections,
        hooks: args.hooks,
        debug: args.debug,
    };
    crate::sync::run(&config, &selection, &options)
}

/// `mailsync`'s own command line.
#[derive(Debug, Parser)]
#[command(
    name = "mailsync",
    version,
    about = "A mail synchronizer compatible with isync/mbsync"
)]
struct MailsyncCli {
    #[command(subcommand)]
    command: MailsyncCommand,
}

#[derive(Debug, Subcommand)]
enum MailsyncCommand {
    /// Synchronize mailboxes: takes the mbsync command line (see `mailsync sync -h`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Sync {
        /// mbsync options, channels and groups, passed on verbatim.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Print an IMAP server's certificate chain as PEM, ready for CertificateFile (like
    /// mbsync-get-cert). Check the fingerprints out of band before trusting it.
    GetCert {
        /// The server, `HOST` or `HOST:PORT` (default port 993, or 143 with --starttls).
        server: String,
        /// Connect in plain text and upgrade with STARTTLS first.
        #[arg(long)]
        starttls: bool,
    },
    /// Print the Kubernetes CustomResourceDefinitions (MailStore, MailChannel) as YAML.
    Crds {
        /// Write one file per CRD into this directory instead (`<plural>.<group>.yaml`).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Run the Kubernetes controller for MailChannels (kubeconfig or in-cluster credentials).
    Operator {
        /// Container image of the sync Jobs (with `mailsync` on its PATH); default:
        /// `MAILSYNC_WORKER_IMAGE`, else `mailsync:VERSION`. The other settings come from the
        /// environment the chart sets (see `mailsync::operator::settings`).
        #[arg(long)]
        image: Option<String>,
    },
    /// Run one sync inside a Job and write the result into the MailChannel's status.
    Worker {
        /// The rendered config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Folder with the ServiceAccount's token and ca.crt.
        #[arg(long, value_name = "DIR", default_value = crate::worker::SERVICE_ACCOUNT_DIR)]
        service_account_dir: std::path::PathBuf,
    },
}

/// Runs `mailsync` with its arguments (`argv` includes the program name) and returns the exit
/// status.
pub fn run_mailsync(argv: &[String]) -> i32 {
    // `sync` takes everything after it verbatim (including `--`), so it is split off before
    // clap sees the rest.
    if argv.get(1).map(String::as_str) == Some("sync") {
        return run_mbsync(&argv[2..], Program::MailsyncSync);
    }
    match MailsyncCli::try_parse_from(argv) {
        Ok(cli) => match cli.command {
            MailsyncCommand::Sync { args } => run_mbsync(&args, Program::MailsyncSync),
            MailsyncCommand::Crds { dir } => print_crds(dir.as_deref()),
            MailsyncCommand::GetCert { server, starttls } => print_cert(&server, starttls),
            MailsyncCommand::Operator { image } => crate::operator::serve::main(image.as_deref()),
            MailsyncCommand::Worker {
                config,
                service_account_dir,
            } => crate::worker::main(&crate::worker::WorkerArgs {
                config,
                service_account_dir,
            }),
        },
        Err(error) => {
            let _ = error.print();
            if error.use_stderr() { 2 } else { 0 }
        }
    }
}

/// Splits `HOST[:PORT]` (IPv6 addresses in brackets: `[::1]:993`); the default port is 993,
/// or 143 with STARTTLS.
pub fn parse_server(server: &str, starttls: bool) -> Result<(String, u16), String> {
    let default_port = if starttls { 143 } else { 993 };
    let bad = || format!("Error: bad server '{server}': expected HOST or HOST:PORT");
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match server.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => (server, None),
            Some((host, port)) => (host, Some(port)),
            None => (server, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => default_port,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("Error: bad port '{text}' in '{server}'")),
        },
    };
    Ok((host.to_string(), port))
}

/// `mailsync get-cert HOST[:PORT] [--starttls]`: prints the certificate chain as PEM.
fn print_cert(server: &str, starttls: bool) -> i32 {
    let (host, port) = match parse_server(server, starttls) {
        Ok(parsed) => parsed,
        Err(message) => {
            output::error(&message);
            return 1;
        }
    };
    match crate::store::imap::get_cert(&host, port, starttls) {
        Ok(pem) => {
            print!("{pem}");
            0
        }
        Err(error) => {
            output::error(&error.message);
            1
        }
    }
}

/// `mailsync crds [--dir DIR]`: prints every CRD, or writes them as `crds/` holds them.
fn print_crds(dir: Option<&std::path::Path>) -> i32 {
    let documents = match crate::operator::crd_documents() {
        Ok(documents) => documents,
        Err(error) => {
            output::error(&error.to_string());
            return 1;
        }
    };
    let Some(dir) = dir else {
        print!("{}", crate::operator::join_documents(&documents));
        return 0;
    };
    for document in &documents {
        let path = dir.join(&document.file_name);
        if let Err(error) = std::fs::write(&path, &document.yaml) {
            output::error(&format!("Error: cannot write {}: {error}", path.display()));
            return 1;
        }
    }
    0
}

/// Runs the program: as mbsync when the binary is called `mbsync`, else as `mailsync`.
pub fn main_with_args(argv: Vec<String>) -> i32 {
    let invoked_as = argv
        .first()
        .map(|arg0| {
            std::path::Path::new(arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    if invoked_as == "mbsync" {
        run_mbsync(argv.get(1..).unwrap_or(&[]), Program::Mbsync)
    } else {
        run_mailsync(&argv)
    }
}

#[cfg(test)]
mod get_cert_tests {
    use super::parse_server;

    #[test]
    fn server_argument_with_and_without_port() {
        assert_eq!(
            parse_server("mail.example", false),
            Ok(("mail.example".into(), 993))
        );
        assert_eq!(
            parse_server("mail.example", true),
            Ok(("mail.example".into(), 143))
        );
        assert_eq!(
            parse_server("mail.example:1993", true),
            Ok(("mail.example".into(), 1993))
        );
        assert_eq!(parse_server("[::1]:995", false), Ok(("::1".into(), 995)));
        assert_eq!(parse_server("[::1]", false), Ok(("::1".into(), 993)));
        assert_eq!(parse_server("::1", false), Ok(("::1".into(), 993)));
        assert!(parse_server("mail.example:x", false).is_err());
        assert!(parse_server("mail.example:0", false).is_err());
        assert!(parse_server(":993", false).is_err());
    }
}
