//! Fuzz target: the Maildir header reader (`X-TUID` and `Message-ID`) on arbitrary message
//! bytes must not panic, and reading through a one-byte buffer gives the same answer.
#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use mailsync::store::maildir::header::{Wanted, read_fields};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let wanted = Wanted {
        tuid: selector & 1 != 0,
        message_id: selector & 2 != 0,
    };
    let Ok(fields) = read_fields(message, wanted) else {
        panic!("reading from memory cannot fail");
    };
    if !wanted.tuid {
        assert!(fields.tuid.is_none() && !fields.malformed_tuid);
    }
    if !wanted.message_id {
        assert!(fields.message_id.is_none());
    }
    let small = BufReader::with_capacity(1, message);
    match read_fields(small, wanted) {
        Ok(again) => assert_eq!(again, fields, "the answer depends on the buffer size"),
        Err(err) => panic!("reading from memory failed: {err}"),
    }
});
