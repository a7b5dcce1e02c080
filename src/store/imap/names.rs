//! Mailbox names on an IMAP server: modified UTF-7 (RFC 3501 §5.1.3), the mapping between
//! canonical `/`-separated names and server names (prefix, hierarchy delimiter), and the
//! checks applied to names the server lists (spec config-cli-stores §5.8, §5.9).

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes UTF-8 text as modified UTF-7.
pub fn utf7_encode(text: &str) -> String {
    let mut out = String::new();
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        let mut bits: u32 = 0;
        let mut count = 0;
        for byte in bytes {
            bits = (bits << 8) | u32::from(byte);
            count += 8;
            while count >= 6 {
                count -= 6;
                out.push(BASE64[((bits >> count) & 63) as usize] as char);
            }
        }
        if count > 0 {
            out.push(BASE64[((bits << (6 - count)) & 63) as usize] as char);
        }
        out.push('-');
        run.clear();
    };
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Decodes modified UTF-7; `None` if the text is not valid modified UTF-7.
pub fn utf7_decode(text: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < text.len() {
        let byte = text[i];
        if byte >= 0x80 {
            return None;
        }
        if byte != b'&' {
            out.push(byte as char);
            i += 1;
            continue;
        }
        i += 1;
        if text.get(i) == Some(&b'-') {
            out.push('&');
            i += 1;
            continue;
        }
        let mut bits: u32 = 0;
        let mut count = 0;
        let mut units: Vec<u16> = Vec::new();
        loop {
            let &c = text.get(i)?;
            i += 1;
            if c == b'-' {
                break;
            }
            let value = BASE64.iter().position(|&b| b == c)? as u32;
            bits = (bits << 6) | value;
            count += 6;
            if count >= 16 {
                count -= 16;
                units.push(((bits >> count) & 0xFFFF) as u16);
            }
        }
        if count > 6 {
            return None;
        }
        out.push_str(&String::from_utf16(&units).ok()?);
    }
    Some(out)
}

/// Why a listed server name is not usable.
#[derive(Debug, PartialEq, Eq)]
pub enum ListedName {
    /// A canonical name to report.
    Name(String),
    /// The entry is skipped, with an optional warning to show.
    Skip(Option<String>),
    /// The name is dangerous or malformed: the listing fails with this error.
    Reject(String),
}

/// How names map between the canonical form and the server.
#[derive(Clone, Debug, Default)]
pub struct NameMap {
    /// Prefix of the store's mailboxes on the server (Path or the namespace prefix).
    pub prefix: String,
    /// The server's hierarchy delimiter, if known.
    pub delimiter: Option<char>,
    /// Names are raw UTF-8 (UTF8=ACCEPT enabled) instead of modified UTF-7.
    pub utf8: bool,
}

/// True for INBOX or `INBOX<delim>…`, in any case.
fn is_inbox_like(name: &str, delimiter: Option<char>) -> bool {
    let Some(head) = name.get(..5) else {
        return false;
    };
    if !head.eq_ignore_ascii_case("INBOX") {
        return false;
    }
    let rest = &name[5..];
    rest.is_empty() || delimiter.is_some_and(|d| rest.starts_with(d))
}

/// Upper-cases the first five characters of an INBOX-like name.
pub fn normalize_inbox(name: &str, delimiter: Option<char>) -> String {
    if is_inbox_like(name, delimiter) {
        format!("INBOX{}", &name[5..])
    } else {
        name.to_string()
    }
}

impl NameMap {
    /// The server name (before transfer encoding) of a canonical name; `trash` names always
    /// get the prefix.
    pub fn to_server(&self, canonical: &str, trash: bool) -> Result<String, String> {
        let is_inbox = canonical == "INBOX" || canonical.starts_with("INBOX/");
        if !is_inbox && self.prefix.is_empty() && is_inbox_like(canonical, Some('/')) {
            return Err(format!(
                "IMAP error: cannot use unqualified '{canonical}'. Did you mean INBOX?"
            ));
        }
        let mut name = String::new();
        if !is_inbox || trash {
            name.push_str(&self.prefix);
        }
        match self.delimiter {
            Some(d) if d != '/' && canonical.contains(d) => {
                return Err(format!(
                    "IMAP error: mailbox name {canonical} contains server's hierarchy delimiter"
                ));
            }
            Some(d) => name.extend(canonical.chars().map(|c| if c == '/' { d } else { c })),
            None if canonical.contains('/') => {
                return Err("IMAP error: server's hierarchy delimiter not known".to_string());
            }
            None => name.push_str(canonical),
        }
        Ok(name)
    }

    /// The bytes to send for a server name: modified UTF-7 unless UTF-8 mode.
    pub fn encode(&self, server_name: &str) -> String {
        if self.utf8 {
            server_name.to_string()
        } else {
            utf7_encode(server_name)
        }
    }

    /// Turns a listed server name (raw bytes as received) into a canonical name.
    pub fn canonical_of_listed(&self, raw: &[u8]) -> ListedName {
        if raw.len() > 1000 {
            let shown: String = String::from_utf8_lossy(raw).chars().take(100).collect();
            return ListedName::Skip(Some(format!(
                "IMAP warning: ignoring unreasonably long mailbox name '{shown}[...]'"
            )));
        }
        let shown = String::from_utf8_lossy(raw).into_owned();
        // Decode first (on the whole name, as the server sends it).
        let decoded = if self.utf8 {
            match String::from_utf8(raw.to_vec()) {
                Ok(s) => s,
                Err(_) => {
                    return ListedName::Reject(format!(
                        "IMAP error: invalid UTF-8 mailbox name '{shown}'"
                    ));
                }
            }
        } else {
            match utf7_decode(raw) {
                Some(s) => s,
                None => {
                    return ListedName::Reject(format!(
                        "IMAP error: invalid modified-UTF-7 string '{shown}'."
                    ));
                }
            }
        };
        let mut name = normalize_inbox(&decoded, self.delimiter);
        let prefix = self.prefix.as_str();
        if !prefix.is_empty() {
            if let Some(rest) = name.strip_prefix(prefix) {
                let rest = normalize_inbox(rest, self.delimiter);
                if rest == "INBOX" {
                    return ListedName::Skip(None);
                }
                if is_inbox_like(&rest, self.delimiter) {
                    return ListedName::Skip(Some(format!(
                        "IMAP warning: ignoring INBOX in {prefix}"
                    )));
                }
                name = rest;
            } else if !is_inbox_like(&name, self.delimiter) {
                return ListedName::Skip(None);
            }
        }
        if name.ends_with(".lock") {
            return ListedName::Skip(None);
        }
        if let Some(d) = self.delimiter
            && d != '/'
        {
            if name.contains('/') {
                return ListedName::Skip(Some(format!(
                    "IMAP warning: ignoring mailbox {name} (reserved character '/' in name)"
                )));
            }
            name = name.replace(d, "/");
        }
        check_canonical(&name)
    }
}

/// Checks a canonical name coming from the server: no empty, `.` or `..` components, not
/// absolute, no NUL or control characters (these could escape a Maildir Path).
pub fn check_canonical(name: &str) -> ListedName {
    if name.chars().any(|c| c.is_control()) {
        return ListedName::Reject(format!(
            "IMAP error: LIST'd mailbox name '{}' contains control characters - THIS MIGHT BE AN ATTEMPT TO HACK YOU!",
            name.escape_debug()
        ));
    }
    if name.starts_with('/') {
        return ListedName::Reject(format!(
            "IMAP error: LIST'd mailbox name '{name}' is absolute - THIS MIGHT BE AN ATTEMPT TO HACK YOU!"
        ));
    }
    for component in name.split('/') {
        if component == ".." {
            return ListedName::Reject(format!(
                "IMAP error: LIST'd mailbox name '{name}' contains '..' component - THIS MIGHT BE AN ATTEMPT TO HACK YOU!"
            ));
        }
        if component.is_empty() {
            return ListedName::Skip(Some(format!(
                "IMAP warning: ignoring mailbox '{name}' due to empty name component"
            )));
        }
        if component == "." {
            return ListedName::Skip(Some(format!(
                "IMAP warning: ignoring mailbox '{name}' due to '.' component"
            )));
        }
    }
    ListedName::Name(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf7_round_trip() {
        assert_eq!(utf7_encode("Ünïcode & Co"), "&ANw-n&AO8-code &- Co");
        assert_eq!(
            utf7_decode(b"&ANw-n&AO8-code &- Co").as_deref(),
            Some("Ünïcode & Co")
        );
        for text in ["日本語", "a😀b", "x\u{7f}y", "plain", "&&", "Ä"] {
            assert_eq!(
                utf7_decode(utf7_encode(text).as_bytes()).as_deref(),
                Some(text)
            );
        }
        assert_eq!(utf7_encode("😀"), "&2D3eAA-");
    }

    #[test]
    fn utf7_rejects_bad_input() {
        assert_eq!(utf7_decode(b"&ANw"), None);
        assert_eq!(utf7_decode(b"&A!w-"), None);
        assert_eq!(utf7_decode("é".as_bytes()), None);
        assert_eq!(utf7_decode(b"&2D0-"), None);
    }

    fn map(prefix: &str, delimiter: char) -> NameMap {
        NameMap {
            prefix: prefix.into(),
            delimiter: Some(delimiter),
            utf8: false,
        }
    }

    #[test]
    fn canonical_to_server() {
        let m = map("", '.');
        assert_eq!(m.to_server("Top/Child", false).unwrap(), "Top.Child");
        assert_eq!(m.to_server("INBOX/x", false).unwrap(), "INBOX.x");
        assert!(m.to_server("a.b", false).unwrap_err().contains("delimiter"));
        assert!(
            m.to_server("Inbox", false)
                .unwrap_err()
                .contains("Did you mean INBOX")
        );
        let m = map("INBOX.", '.');
        assert_eq!(m.to_server("Sub", false).unwrap(), "INBOX.Sub");
        assert_eq!(m.to_server("INBOX", false).unwrap(), "INBOX");
        assert_eq!(m.to_server("INBOX", true).unwrap(), "INBOX.INBOX");
    }

    #[test]
    fn listed_names() {
        let m = map("Top.", '.');
        assert_eq!(
            m.canonical_of_listed(b"Top.Child"),
            ListedName::Name("Child".into())
        );
        assert_eq!(
            m.canonical_of_listed(b"inbox"),
            ListedName::Name("INBOX".into())
        );
        assert_eq!(m.canonical_of_listed(b"Other"), ListedName::Skip(None));
        let m = map("", '.');
        assert_eq!(
            m.canonical_of_listed(b"a.b.c"),
            ListedName::Name("a/b/c".into())
        );
        assert!(matches!(
            m.canonical_of_listed(b"a/b"),
            ListedName::Skip(Some(_))
        ));
        assert!(matches!(
            m.canonical_of_listed(b"a..b"),
            ListedName::Skip(Some(_))
        ));
        assert_eq!(m.canonical_of_listed(b"x.lock"), ListedName::Skip(None));
        let m = map("", '/');
        assert!(matches!(
            m.canonical_of_listed(b"a/../b"),
            ListedName::Reject(_)
        ));
        assert!(matches!(
            m.canonical_of_listed(b"/etc"),
            ListedName::Reject(_)
        ));
        assert!(matches!(
            m.canonical_of_listed(b"a\x01b"),
            ListedName::Reject(_)
        ));
        assert!(matches!(
            m.canonical_of_listed(b"&ANw"),
            ListedName::Reject(_)
        ));
        assert_eq!(
            m.canonical_of_listed(b"&ANw-n&AO8-code &- Co/x"),
            ListedName::Name("Ünïcode & Co/x".into())
        );
    }
}
