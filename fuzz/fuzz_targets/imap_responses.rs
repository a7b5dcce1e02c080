//! Fuzz target: the IMAP response handling above imap-codec. Arbitrary bytes are played as a
//! server's whole side of one connection against the commands of a mailbox sync
//! (`mailsync::store::imap::replay_server_bytes`): reading, the literal limit, the tagged and
//! pipelined command flow, untagged bookkeeping and the store's interpretation of FETCH,
//! SELECT codes and LIST. Any input must end without a panic, and no listed mailbox name
//! that could escape a Maildir root may ever be accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailsync::store::imap::replay_server_bytes;

/// A small literal limit, so that the limit's path is reached by ordinary inputs too.
const MAX_LITERAL: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let summary = replay_server_bytes(data, MAX_LITERAL);
    for name in &summary.accepted_names {
        assert!(
            !name.starts_with('/')
                && !name.split('/').any(|c| c == ".." || c == "." || c.is_empty())
                && !name.chars().any(char::is_control),
            "a dangerous mailbox name was accepted: {name:?}"
        );
    }
    if summary.error.is_none() {
        assert!(summary.greeted, "no error, yet no greeting");
    }
});
