//! Fuzz target: Maildir file names. Reading the UID and flags of any name must not panic, and
//! rewriting a name must change exactly what was asked: `with_uid` sets the UID and keeps the
//! flags, `with_flags` sets the flags and keeps a UID written before the info part, and a
//! generated name reads back with its UID and flags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailsync::store::Flags;
use mailsync::store::maildir::names::{
    GeneratedBase, generate, info_part_for_trash, info_start, parse_flags, parse_uid, with_flags,
    with_uid, without_uid,
};

/// The delimiters mbsync uses: `:` normally, `;` with `AltMap yes`.
const DELIMITERS: [char; 2] = [':', ';'];

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let delimiter = DELIMITERS[usize::from(data[0] & 1)];
    let add = Flags::from_bits(data[1] & Flags::ALL.bits());
    let remove = Flags::from_bits(data[2] & Flags::ALL.bits());
    let uid = u32::from_le_bytes([data[3], data[4], data[5], data[6]]);
    let name = String::from_utf8_lossy(&data[7..]).into_owned();

    let old_uid = parse_uid(&name);
    let old_flags = parse_flags(&name, delimiter);
    let _ = info_part_for_trash(&name, delimiter);
    let _ = without_uid(&name);

    let renumbered = with_uid(&name, uid, delimiter);
    assert_eq!(
        parse_uid(&renumbered),
        (uid != 0).then_some(uid),
        "with_uid({name:?}, {uid}) gave {renumbered:?}"
    );
    assert_eq!(
        parse_flags(&renumbered, delimiter),
        old_flags,
        "with_uid({name:?}, {uid}) changed the flags: {renumbered:?}"
    );

    let reflagged = with_flags(&name, add, remove, delimiter);
    assert_eq!(
        parse_flags(&reflagged, delimiter),
        old_flags.union(add).minus(remove),
        "with_flags({name:?}, +{}, -{}) gave {reflagged:?}",
        add.letters(),
        remove.letters()
    );
    let uid_before_info = match (name.find(",U="), info_start(&name, delimiter)) {
        (Some(marker), Some(info)) => marker < info,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if uid_before_info {
        assert_eq!(
            parse_uid(&reflagged),
            old_uid,
            "with_flags({name:?}) lost the UID: {reflagged:?}"
        );
    }

    // A generated name with a plain host name reads back exactly.
    let host: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(30)
        .collect();
    let base = GeneratedBase {
        secs: u64::from(uid),
        pid: uid.rotate_left(7),
        counter: uid.rotate_left(13),
        host: &host,
    };
    let wanted_uid = (uid != 0).then_some(uid);
    let generated = generate(&base, wanted_uid, delimiter, add);
    assert_eq!(parse_uid(&generated), wanted_uid, "generated {generated:?}");
    assert_eq!(
        parse_flags(&generated, delimiter),
        add,
        "generated {generated:?}"
    );
});
