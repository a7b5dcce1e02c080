//! Reading the `X-TUID` and `Message-ID` headers of a message file (spec config-cli-stores
//! §4.7, sync-semantics §4.11 and §4.15).

use std::io::BufRead;

use crate::store::Tuid;

/// The header prefix of a temporary UID line (case-sensitive).
const TUID_PREFIX: &[u8] = b"X-TUID: ";
/// The Message-ID header name (matched case-insensitively).
const MESSAGE_ID_NAME: &[u8] = b"message-id:";

/// What was found in a header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderFields {
    pub tuid: Option<Tuid>,
    pub message_id: Option<Vec<u8>>,
    /// An `X-TUID: ` line with fewer than 12 characters was met (and ignored).
    pub malformed_tuid: bool,
}

/// Which fields to look for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub tuid: bool,
    pub message_id: bool,
}

/// Reads header lines up to the first empty line and extracts the wanted fields.
pub fn read_fields(reader: impl BufRead, wanted: Wanted) -> std::io::Result<HeaderFields> {
    let mut fields = HeaderFields::default();
    let mut lines = reader.split(b'\n');
    let mut awaiting_continuation = false;
    while let Some(line) = lines.next().transpose()? {
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.is_empty() {
            break;
        }
        if awaiting_continuation {
            awaiting_continuation = false;
            if line[0] == b' ' || line[0] == b'\t' {
                let value = trim(line);
                if !value.is_empty() {
                    fields.message_id = Some(value.to_vec());
                }
                continue;
            }
        }
        if wanted.tuid
            && fields.tuid.is_none()
            && let Some(rest) = line.strip_prefix(TUID_PREFIX)
        {
            match rest.get(..12).and_then(|t| <Tuid>::try_from(t).ok()) {
                Some(tuid) => fields.tuid = Some(tuid),
                None => fields.malformed_tuid = true,
            }
            continue;
        }
        if wanted.message_id
            && fields.message_id.is_none()
            && line.len() >= MESSAGE_ID_NAME.len()
            && line[..MESSAGE_ID_NAME.len()].eq_ignore_ascii_case(MESSAGE_ID_NAME)
        {
            let value = trim(&line[MESSAGE_ID_NAME.len()..]);
            if value.is_empty() {
                awaiting_continuation = true;
            } else {
                fields.message_id = Some(value.to_vec());
            }
            continue;
        }
        let tuid_done = !wanted.tuid || fields.tuid.is_some();
        let id_done = !wanted.message_id || fields.message_id.is_some();
        if tuid_done && id_done {
            break;
        }
    }
    Ok(fields)
}

/// The bytes without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_blank(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_blank(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Wanted = Wanted {
        tuid: true,
        message_id: true,
    };

    fn read(text: &str, wanted: Wanted) -> HeaderFields {
        read_fields(text.as_bytes(), wanted).unwrap()
    }

    #[test]
    fn tuid_is_case_sensitive_and_twelve_chars() {
        let fields = read("From: a\nX-TUID: AbCdEfGh12+/extra\n\nbody\n", BOTH);
        assert_eq!(fields.tuid, Some(*b"AbCdEfGh12+/"));
        let fields = read("x-tuid: AbCdEfGh12+/\n\n", BOTH);
        assert_eq!(fields.tuid, None);
        assert!(!fields.malformed_tuid);
    }

    #[test]
    fn short_tuid_is_malformed_and_ignored() {
        let fields = read("X-TUID: short\nX-TUID: AAAAAAAAAAAA\n\n", BOTH);
        assert!(fields.malformed_tuid);
        assert_eq!(fields.tuid, Some(*b"AAAAAAAAAAAA"));
    }

    #[test]
    fn tuid_in_body_is_not_read() {
        let fields = read("From: a\n\nX-TUID: AAAAAAAAAAAA\n", BOTH);
        assert_eq!(fields.tuid, None);
    }

    #[test]
    fn message_id_forms() {
        let fields = read("Message-ID: <a@b>\n\n", BOTH);
        assert_eq!(fields.message_id.as_deref(), Some(&b"<a@b>"[..]));
        let fields = read("message-id:\t <x@y>  \r\n\r\n", BOTH);
        assert_eq!(fields.message_id.as_deref(), Some(&b"<x@y>"[..]));
        let fields = read("MESSAGE-ID:\n   <cont@y>\nSubject: s\n\n", BOTH);
        assert_eq!(fields.message_id.as_deref(), Some(&b"<cont@y>"[..]));
        let fields = read("Subject: s\n\nMessage-ID: <body@y>\n", BOTH);
        assert_eq!(fields.message_id, None);
    }

    #[test]
    fn only_wanted_fields_are_read() {
        let text = "Message-ID: <a@b>\nX-TUID: AAAAAAAAAAAA\n\n";
        let fields = read(
            text,
            Wanted {
                tuid: true,
                message_id: false,
            },
        );
        assert_eq!(fields.message_id, None);
        assert_eq!(fields.tuid, Some(*b"AAAAAAAAAAAA"));
    }
}
