//! Message-level translation: IMAP flags ↔ [`Flags`], FETCH replies, header fields (X-TUID,
//! Message-ID) and INTERNALDATE ↔ `SystemTime`.

use crate::store::{Flags, Tuid};
use imap_next::imap_types::core::Atom;
use imap_next::imap_types::datetime::DateTime;
use imap_next::imap_types::fetch::{MessageDataItem, Section};
use imap_next::imap_types::flag::{Flag, FlagFetch, FlagPerm};
use imap_next::imap_types::response::Data;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The IMAP flags for a set, in mbsync's order (`\Draft \Flagged $Forwarded \Answered \Seen
/// \Deleted`); `$Forwarded` only where it can be stored.
pub fn imap_flags(flags: Flags, forwarded_ok: bool) -> Vec<Flag<'static>> {
    let mut out = Vec::new();
    if flags.contains(Flags::DRAFT) {
        out.push(Flag::Draft);
    }
    if flags.contains(Flags::FLAGGED) {
        out.push(Flag::Flagged);
    }
    if flags.contains(Flags::PASSED)
        && forwarded_ok
        && let Ok(atom) = Atom::try_from("$Forwarded")
    {
        out.push(Flag::Keyword(atom));
    }
    if flags.contains(Flags::REPLIED) {
        out.push(Flag::Answered);
    }
    if flags.contains(Flags::SEEN) {
        out.push(Flag::Seen);
    }
    if flags.contains(Flags::TRASHED) {
        out.push(Flag::Deleted);
    }
    out
}

/// True if a PERMANENTFLAGS entry allows storing `$Forwarded`.
pub fn allows_forwarded(flag: &FlagPerm<'_>) -> bool {
    match flag {
        FlagPerm::Asterisk => true,
        FlagPerm::Flag(Flag::Keyword(atom)) => atom.as_ref().eq_ignore_ascii_case("$Forwarded"),
        FlagPerm::Flag(_) => false,
    }
}

/// Maps fetched flags; returns the set, whether `\Recent` was there, and warnings.
fn map_flags(flags: &[FlagFetch<'_>], warnings: &mut Vec<String>) -> (Flags, bool) {
    let mut set = Flags::EMPTY;
    let mut recent = false;
    for flag in flags {
        match flag {
            FlagFetch::Recent => recent = true,
            FlagFetch::Flag(flag) => match flag {
                Flag::Draft => set |= Flags::DRAFT,
                Flag::Flagged => set |= Flags::FLAGGED,
                Flag::Answered => set |= Flags::REPLIED,
                Flag::Seen => set |= Flags::SEEN,
                Flag::Deleted => set |= Flags::TRASHED,
                Flag::Keyword(atom) => {
                    if atom.as_ref().eq_ignore_ascii_case("$Forwarded") {
                        set |= Flags::PASSED;
                    }
                }
                Flag::Extension(_) => {
                    let text = flag.to_string();
                    if !text.get(1..3).is_some_and(|p| p.eq_ignore_ascii_case("X-")) {
                        warnings.push(format!("IMAP warning: unknown system flag {text}"));
                    }
                }
            },
        }
    }
    (set, recent)
}

/// What one FETCH reply carried.
#[derive(Debug, Default)]
pub struct Fetched {
    pub uid: u32,
    /// Flags and `\Recent`, if FLAGS was in the reply.
    pub flags: Option<(Flags, bool)>,
    pub size: Option<u64>,
    pub date: Option<SystemTime>,
    pub body: Option<Vec<u8>>,
    pub header: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

/// Reads a FETCH reply; `None` for other data or replies without UID.
pub fn parse_fetch(data: &Data<'_>) -> Option<Fetched> {
    let Data::Fetch { items, .. } = data else {
        return None;
    };
    let mut fetched = Fetched::default();
    let mut uid = None;
    for item in items.as_ref() {
        match item {
            MessageDataItem::Uid(u) => uid = Some(u.get()),
            MessageDataItem::Flags(flags) => {
                fetched.flags = Some(map_flags(flags, &mut fetched.warnings));
            }
            MessageDataItem::Rfc822Size(size) => fetched.size = Some(u64::from(*size)),
            MessageDataItem::InternalDate(date) => fetched.date = Some(to_system_time(date)),
            MessageDataItem::BodyExt { section, data, .. } => {
                let bytes = data.0.as_ref().map(|s| s.as_ref().to_vec());
                match section {
                    None => fetched.body = bytes,
                    Some(Section::HeaderFields(..)) | Some(Section::Header(_)) => {
                        fetched.header = Some(bytes.unwrap_or_default())
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    fetched.uid = uid?;
    Some(fetched)
}

/// The unfolded value of the first header field with this name (case-insensitive).
pub fn header_value(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let text = header;
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                let next = next.strip_suffix(b"\r").unwrap_or(next);
                value.extend_from_slice(next);
                lines.next();
            } else {
                break;
            }
        }
        let start = value
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(start, |e| e + 1);
        return Some(value[start..end].to_vec());
    }
    None
}

/// The X-TUID of a header block: `Ok(None)` without one, `Err` if malformed.
pub fn header_tuid(header: &[u8]) -> Result<Option<Tuid>, ()> {
    match header_value(header, "X-TUID") {
        None => Ok(None),
        Some(value) => {
            let tuid: Tuid = value.as_slice().try_into().map_err(|_| ())?;
            Ok(Some(tuid))
        }
    }
}

fn to_system_time(date: &DateTime) -> SystemTime {
    let seconds = date.as_ref().timestamp();
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// The local time zone's offset from UTC at a moment, in seconds.
fn local_offset(seconds: i64) -> i32 {
    let time: libc::time_t = seconds as libc::time_t;
    // SAFETY: localtime_r only writes into the tm we pass.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let result = unsafe { libc::localtime_r(&time, &mut tm) };
    if result.is_null() {
        0
    } else {
        tm.tm_gmtoff as i32
    }
}

/// An arrival time as an IMAP date in the local time zone (as mbsync sends it).
pub fn to_imap_date(time: SystemTime) -> Option<DateTime> {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let offset = chrono::FixedOffset::east_opt(local_offset(seconds))?;
    let utc = chrono::DateTime::from_timestamp(seconds, 0)?;
    DateTime::try_from(utc.with_timezone(&offset)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_mbsync_order() {
        let all = imap_flags(Flags::ALL, true);
        let text: Vec<String> = all.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            text,
            [
                "\\Draft",
                "\\Flagged",
                "$Forwarded",
                "\\Answered",
                "\\Seen",
                "\\Deleted"
            ]
        );
        assert_eq!(imap_flags(Flags::PASSED, false).len(), 0);
    }

    #[test]
    fn header_fields_are_found_case_insensitively_and_unfolded() {
        let header = b"x-tuid: AbCdEfGhIjKl\r\nMessage-Id:\r\n <a@b>\r\n\r\n";
        assert_eq!(header_tuid(header), Ok(Some(*b"AbCdEfGhIjKl")));
        assert_eq!(header_value(header, "MESSAGE-ID"), Some(b"<a@b>".to_vec()));
        assert_eq!(header_tuid(b"X-TUID: short\r\n"), Err(()));
        assert_eq!(header_tuid(b"\r\n"), Ok(None));
    }

    #[test]
    fn fetched_flags_map_to_letters() {
        let flags: Vec<FlagFetch> = ["\\Seen", "$forwarded", "\\X-Custom", "\\Bogus", "Junk"]
            .iter()
            .filter_map(|f| Flag::try_from(*f).ok())
            .map(FlagFetch::Flag)
            .chain([FlagFetch::Recent])
            .collect();
        let mut warnings = Vec::new();
        let (set, recent) = map_flags(&flags, &mut warnings);
        assert_eq!(set, Flags::SEEN | Flags::PASSED);
        assert!(recent);
        assert_eq!(
            warnings,
            vec!["IMAP warning: unknown system flag \\Bogus".to_string()]
        );
    }

    #[test]
    fn dates_round_trip() {
        let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = to_imap_date(time).unwrap();
        assert_eq!(to_system_time(&date), time);
    }
}
