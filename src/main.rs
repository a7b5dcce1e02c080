//! The `mailsync` binary (also started as `mbsync` through a symlink): `mailsync sync …` and
//! the `mbsync` name run the mbsync-compatible command line.

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailsync::cli::main_with_args(argv));
}
