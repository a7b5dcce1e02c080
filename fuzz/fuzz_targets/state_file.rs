//! Fuzz target: the sync state file reader. Any bytes either parse or give an error; what
//! parses must format to a file that parses back to the same state and formats to the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailsync::config::Side;
use mailsync::sync::state::{format_state, parse_state};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the ExpireSide the file is read with.
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let expire_side = if selector & 1 == 0 {
        Side::Near
    } else {
        Side::Far
    };
    let Ok(first) = parse_state(text, "P", expire_side) else {
        return;
    };
    let written = format_state(&first, expire_side);
    let second = match parse_state(&written, "P", expire_side) {
        Ok(state) => state,
        Err(err) => panic!(
            "a written state file does not parse ({err}):\n{}",
            String::from_utf8_lossy(&written)
        ),
    };
    assert_eq!(first, second, "parse -> format -> parse changed the state");
    let rewritten = format_state(&second, expire_side);
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&rewritten),
        "format -> parse -> format is not stable"
    );
});
