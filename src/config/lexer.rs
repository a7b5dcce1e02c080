//! Splitting one mbsyncrc line into tokens (spec config-cli-stores §1.2): white space
//! separates tokens, `"` toggles quoting, `\` takes the next character literally, `#` at the
//! start of a token begins a comment.

/// The longest line accepted, in bytes (without the newline).
pub const MAX_LINE_BYTES: usize = 1022;

/// What one line holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Empty or white space only: ends a section.
    Blank,
    /// Only a comment: ignored, does not end a section.
    Comment,
    /// A keyword and its arguments.
    Tokens(Vec<String>),
}

/// A line that cannot be split; the text is the message after `FILE:LINE: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError(pub String);

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// Splits a line (without its newline) into tokens.
pub fn split_line(line: &[u8]) -> Result<Line, LexError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(LexError(format!(
            "line too long (at most {MAX_LINE_BYTES} bytes are allowed)"
        )));
    }
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        while pos < line.len() && is_space(line[pos]) {
            pos += 1;
        }
        if pos >= line.len() {
            break;
        }
        if line[pos] == b'#' {
            break;
        }
        let mut token = Vec::new();
        let mut quoted = false;
        while pos < line.len() {
            let byte = line[pos];
            if !quoted && is_space(byte) {
                break;
            }
            pos += 1;
            match byte {
                b'"' => quoted = !quoted,
                b'\\' => match line.get(pos) {
                    Some(&next) if next >= 32 => {
                        token.push(next);
                        pos += 1;
                    }
                    _ => {
                        return Err(LexError("unterminated escape sequence".to_string()));
                    }
                },
                _ => token.push(byte),
            }
        }
        if quoted {
            return Err(LexError("missing closing quote".to_string()));
        }
        tokens.push(String::from_utf8_lossy(&token).into_owned());
    }
    if !tokens.is_empty() {
        return Ok(Line::Tokens(tokens));
    }
    let rest = line.iter().position(|&b| !is_space(b));
    Ok(match rest {
        None => Line::Blank,
        Some(_) => Line::Comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(line: &str) -> Vec<String> {
        match split_line(line.as_bytes()) {
            Ok(Line::Tokens(t)) => t,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(tokens("User \"john doe\""), ["User", "john doe"]);
        assert_eq!(tokens("  x ab\"c d\"e"), ["x", "abc de"]);
        assert_eq!(
            tokens(r#"PassCmd "+pass show mail\\work""#),
            ["PassCmd", r"+pass show mail\work"]
        );
        assert_eq!(tokens(r#"a \"b\" c\ d \n"#), ["a", "\"b\"", "c d", "n"]);
        assert_eq!(tokens("k \"\""), ["k", ""]);
        assert_eq!(tokens("k Ünïcode"), ["k", "Ünïcode"]);
    }

    #[test]
    fn comments() {
        assert_eq!(split_line(b"   # only a comment"), Ok(Line::Comment));
        assert_eq!(split_line(b""), Ok(Line::Blank));
        assert_eq!(split_line(b" \t "), Ok(Line::Blank));
        assert_eq!(
            tokens("Patterns foo bar   # comment"),
            ["Patterns", "foo", "bar"]
        );
        assert_eq!(tokens("Patterns foo#bar"), ["Patterns", "foo#bar"]);
        assert_eq!(tokens("Patterns \"#x\""), ["Patterns", "#x"]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            split_line(b"Path \"abc"),
            Err(LexError("missing closing quote".into()))
        );
        assert_eq!(
            split_line(b"Path abc\\"),
            Err(LexError("unterminated escape sequence".into()))
        );
        assert_eq!(
            split_line(b"Path a\\\tb"),
            Err(LexError("unterminated escape sequence".into()))
        );
        let long = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(split_line(&long).is_err());
        assert!(split_line(&long[..MAX_LINE_BYTES]).is_ok());
    }
}
