//! Maildir message file names: reading the UID and flags out of a name, generating names for
//! new files, and rewriting the `,U=` part and the info part (spec config-cli-stores §4.6,
//! §4.7, §4.9, §4.10).
//!
//! Everything here is pure string handling apart from the process-wide counter.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::store::Flags;

/// The marker that introduces a UID inside a file name.
const UID_MARKER: &str = ",U=";

/// The process-wide counter of generated names (stored files and trash moves), from 1.
static NAME_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns the next value of the process-wide counter (1 for the first call).
pub fn next_counter() -> u32 {
    NAME_COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
}

/// The host name as it appears in generated names: cut at the first `.`.
pub fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// The byte offset of the info part (`<delimiter>2,`), if the name has one.
pub fn info_start(name: &str, delimiter: char) -> Option<usize> {
    let marker = format!("{delimiter}2,");
    name.find(&marker)
}

/// The UID written in a name: the digits after the first `,U=`. Missing, zero or
/// non-numeric (or too large) digits mean "no UID yet".
pub fn parse_uid(name: &str) -> Option<u32> {
    let start = name.find(UID_MARKER)? + UID_MARKER.len();
    let digits: &str = digit_run(&name[start..]);
    match digits.parse::<u32>() {
        Ok(0) | Err(_) => None,
        Ok(uid) => Some(uid),
    }
}

/// The flags of a name: every one of the six letters occurring after the first
/// `<delimiter>2,`. A name without info part has no flags.
pub fn parse_flags(name: &str, delimiter: char) -> Flags {
    let Some(start) = info_start(name, delimiter) else {
        return Flags::EMPTY;
    };
    let letters_start = start + delimiter.len_utf8() + 2;
    name[letters_start..]
        .chars()
        .filter_map(Flags::from_letter)
        .fold(Flags::EMPTY, |all, flag| all | flag)
}

/// Generates the name of a new file:
/// `<secs>.<pid>_<counter>.<host>[,U=<uid>]<delimiter>2,<flags>`.
pub fn generate(
    base: &GeneratedBase<'_>,
    uid: Option<u32>,
    delimiter: char,
    flags: Flags,
) -> String {
    let mut name = base.to_string();
    if let Some(uid) = uid {
        name.push_str(&format!("{UID_MARKER}{uid}"));
    }
    name.push(delimiter);
    name.push_str("2,");
    name.push_str(&flags.letters());
    name
}

/// The unique part of a generated name: `<secs>.<pid>_<counter>.<host>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratedBase<'a> {
    pub secs: u64,
    pub pid: u32,
    pub counter: u32,
    /// The full host name; it is cut at the first `.` when written.
    pub host: &'a str,
}

impl std::fmt::Display for GeneratedBase<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}_{}.{}",
            self.secs,
            self.pid,
            self.counter,
            short_host(self.host)
        )
    }
}

/// The name with `,U=<uid>` put in: replacing the digits after an existing `,U=`, else
/// inserted before the first info delimiter, else appended.
pub fn with_uid(name: &str, uid: u32, delimiter: char) -> String {
    if let Some(marker) = name.find(UID_MARKER) {
        let digits_start = marker + UID_MARKER.len();
        let digits_end = digits_start + digit_run(&name[digits_start..]).len();
        format!("{}{uid}{}", &name[..digits_start], &name[digits_end..])
    } else if let Some(position) = name.find(delimiter) {
        format!(
            "{}{UID_MARKER}{uid}{}",
            &name[..position],
            &name[position..]
        )
    } else {
        format!("{name}{UID_MARKER}{uid}")
    }
}

/// The name without its first `,U=<digits>` part.
pub fn without_uid(name: &str) -> String {
    match name.find(UID_MARKER) {
        Some(marker) => {
            let digits_start = marker + UID_MARKER.len();
            let digits_end = digits_start + digit_run(&name[digits_start..]).len();
            format!("{}{}", &name[..marker], &name[digits_end..])
        }
        None => name.to_string(),
    }
}

/// The info part of a name (from the first `<delimiter>2,` on) without any `,U=` part, or
/// the empty string; this is what a trashed message keeps of its old name.
pub fn info_part_for_trash(name: &str, delimiter: char) -> String {
    match info_start(name, delimiter) {
        Some(start) => without_uid(&name[start..]),
        None => String::new(),
    }
}

/// The name after a flag change: removed letters are deleted from the info part, added
/// letters inserted before the first character not smaller than them; a name without info
/// part gets `<delimiter>2,<added letters>` appended. Unknown characters are preserved.
pub fn with_flags(name: &str, add: Flags, remove: Flags, delimiter: char) -> String {
    let add = add.minus(remove);
    let Some(start) = info_start(name, delimiter) else {
        return format!("{name}{delimiter}2,{}", add.letters());
    };
    let letters_start = start + delimiter.len_utf8() + 2;
    let mut letters: Vec<char> = name[letters_start..]
        .chars()
        .filter(|c| !Flags::from_letter(*c).is_some_and(|flag| remove.contains(flag)))
        .collect();
    for (letter, flag) in Flags::LETTERS {
        if !add.contains(flag) || letters.contains(&letter) {
            continue;
        }
        let position = letters
            .iter()
            .position(|existing| *existing >= letter)
            .unwrap_or(letters.len());
        letters.insert(position, letter);
    }
    let mut result = name[..letters_start].to_string();
    result.extend(letters);
    result
}

/// The leading ASCII digits of a string.
fn digit_run(text: &str) -> &str {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(letters: &str) -> Flags {
        letters
            .chars()
            .filter_map(Flags::from_letter)
            .fold(Flags::EMPTY, |all, flag| all | flag)
    }

    #[test]
    fn uid_is_read_after_first_marker() {
        assert_eq!(parse_uid("1795630145.20256_2.vm,U=2:2,S"), Some(2));
        assert_eq!(parse_uid("x,U=17"), Some(17));
        assert_eq!(parse_uid("x,U=12abc,U=5"), Some(12));
        assert_eq!(parse_uid("x,U=0:2,S"), None);
        assert_eq!(parse_uid("x,U=:2,S"), None);
        assert_eq!(parse_uid("x,U=99999999999:2,"), None);
        assert_eq!(parse_uid("1700000000.M1P1.myhost"), None);
    }

    #[test]
    fn flags_in_any_order_after_info_marker() {
        assert_eq!(parse_flags("a,U=1:2,SF", ':'), flags("FS"));
        assert_eq!(parse_flags("a:2,TabcDR", ':'), flags("DRT"));
        assert_eq!(parse_flags("a:2,", ':'), Flags::EMPTY);
        assert_eq!(parse_flags("aS", ':'), Flags::EMPTY);
        // The letters before the info part do not count.
        assert_eq!(parse_flags("DS:2,F", ':'), flags("F"));
        // Another delimiter: the colon form is not an info part.
        assert_eq!(parse_flags("x:2,S", ';'), Flags::EMPTY);
        assert_eq!(parse_flags("x;2,S", ';'), flags("S"));
    }

    #[test]
    fn generated_names_follow_the_pattern() {
        let base = GeneratedBase {
            secs: 1795630145,
            pid: 20256,
            counter: 2,
            host: "vm.example.org",
        };
        assert_eq!(
            generate(&base, Some(2), ':', flags("S")),
            "1795630145.20256_2.vm,U=2:2,S"
        );
        assert_eq!(
            generate(&base, None, '!', flags("TSFD")),
            "1795630145.20256_2.vm!2,DFST"
        );
        let parsed = generate(&base, Some(77), ':', flags("PR"));
        assert_eq!(parse_uid(&parsed), Some(77));
        assert_eq!(parse_flags(&parsed, ':'), flags("PR"));
    }

    #[test]
    fn round_trip_of_all_flag_sets() {
        let base = GeneratedBase {
            secs: 1,
            pid: 2,
            counter: 3,
            host: "h",
        };
        for bits in 0..64u8 {
            let set = Flags::from_bits(bits);
            for delimiter in [':', '!', ';'] {
                let name = generate(&base, Some(u32::from(bits) + 1), delimiter, set);
                assert_eq!(parse_flags(&name, delimiter), set, "{name}");
                assert_eq!(parse_uid(&name), Some(u32::from(bits) + 1));
                let changed = with_flags(&name, Flags::ALL.minus(set), set, delimiter);
                assert_eq!(parse_flags(&changed, delimiter), Flags::ALL.minus(set));
            }
        }
    }

    #[test]
    fn uid_insertion_rules() {
        assert_eq!(
            with_uid("1700000000.M1P1.myhost", 4, ':'),
            "1700000000.M1P1.myhost,U=4"
        );
        assert_eq!(
            with_uid("weird-name-no-info", 5, ':'),
            "weird-name-no-info,U=5"
        );
        assert_eq!(with_uid("abc:2,S", 9, ':'), "abc,U=9:2,S");
        assert_eq!(with_uid("abc:x:2,S", 9, ':'), "abc,U=9:x:2,S");
        assert_eq!(with_uid("abc,U=17:2,S", 3, ':'), "abc,U=3:2,S");
        assert_eq!(with_uid("abc,U=:2,S", 3, ':'), "abc,U=3:2,S");
        assert_eq!(with_uid("abc!2,S", 3, '!'), "abc,U=3!2,S");
        assert_eq!(parse_uid(&with_uid("abc:2,S", 123, ':')), Some(123));
    }

    #[test]
    fn flag_changes_insert_sorted_and_keep_unknown_letters() {
        assert_eq!(
            with_flags("a,U=1:2,", flags("SF"), Flags::EMPTY, ':'),
            "a,U=1:2,FS"
        );
        assert_eq!(
            with_flags("a,U=1:2,Sab", flags("T"), Flags::EMPTY, ':'),
            "a,U=1:2,STab"
        );
        assert_eq!(
            with_flags("a,U=1:2,DSab", flags("F"), flags("S"), ':'),
            "a,U=1:2,DFab"
        );
        assert_eq!(
            with_flags("a,U=1:2,S", flags("S"), Flags::EMPTY, ':'),
            "a,U=1:2,S"
        );
        assert_eq!(
            with_flags("plain,U=5", flags("RS"), Flags::EMPTY, ':'),
            "plain,U=5:2,RS"
        );
        assert_eq!(
            with_flags("plain", Flags::EMPTY, flags("S"), '!'),
            "plain!2,"
        );
        // Unsorted existing letters: insertion before the first letter not smaller.
        assert_eq!(
            with_flags("a:2,SD", flags("F"), Flags::EMPTY, ':'),
            "a:2,FSD"
        );
    }

    #[test]
    fn trash_info_part_drops_uid() {
        assert_eq!(info_part_for_trash("x,U=3:2,FS", ':'), ":2,FS");
        assert_eq!(info_part_for_trash("x:2,S,U=3", ':'), ":2,S");
        assert_eq!(info_part_for_trash("x,U=3", ':'), "");
        assert_eq!(without_uid("x,U=3:2,S"), "x:2,S");
    }

    #[test]
    fn counter_increases_by_one() {
        let first = next_counter();
        let second = next_counter();
        assert!(first >= 1);
        assert!(second > first);
    }

    #[test]
    fn host_is_cut_at_first_dot() {
        assert_eq!(short_host("vm.example.org"), "vm");
        assert_eq!(short_host("plain"), "plain");
    }
}
