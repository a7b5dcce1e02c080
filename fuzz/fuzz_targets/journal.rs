//! Fuzz target: journal lines and journal replay. The input is a state file and a journal
//! separated by a NUL byte. Every journal line that parses must write back to a line that
//! parses to the same record; replaying the journal onto the parsed state must not panic, and
//! the replayed state, once written, must read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailsync::config::Side;
use mailsync::sync::entry::Record;
use mailsync::sync::journal::replay;
use mailsync::sync::state::{format_state, parse_state};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let expire_side = if selector & 1 == 0 {
        Side::Near
    } else {
        Side::Far
    };
    let (state_text, journal) = match rest.iter().position(|&b| b == 0) {
        Some(split) => (&rest[..split], &rest[split + 1..]),
        None => (&b""[..], rest),
    };

    for (index, line) in journal.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Ok(record) = Record::parse_line(line, "J", index + 1) else {
            continue;
        };
        let written = record.to_line();
        match Record::parse_line(&written, "J", 1) {
            Ok(again) => assert_eq!(again, record, "record changed through {written:?}"),
            Err(err) => panic!("written record line {written:?} does not parse: {err}"),
        }
    }

    let mut state = if state_text.is_empty() {
        Default::default()
    } else {
        match parse_state(state_text, "P", expire_side) {
            Ok(state) => state,
            Err(_) => return,
        }
    };
    if replay(&mut state, journal, "J", expire_side).is_ok() {
        // A replayed state is what the run later saves: it must read back.
        let written = format_state(&state, expire_side);
        if let Err(err) = parse_state(&written, "P", expire_side) {
            panic!(
                "the replayed state, written, does not parse ({err}):\n{}",
                String::from_utf8_lossy(&written)
            );
        }
    }
});
