//! The command line: `mailsync <subcommand>`, and the mbsync-compatible command line used by
//! `mailsync sync …` and by the binary when started under the name `mbsync`.
