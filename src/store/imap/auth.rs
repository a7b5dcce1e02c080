//! IMAP authentication: choosing a mechanism (spec config-cli-stores §5.4) and the SASL
//! mechanisms themselves (PLAIN, CRAM-MD5, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER), written as
//! pure challenge → response steps.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use std::num::NonZeroU32;

/// SASL mechanisms we implement, in our order of preference. XOAUTH2 and OAUTHBEARER need a
/// token instead of a password, so they are only used when AuthMechs names them.
pub const SUPPORTED: [&str; 5] = [
    "SCRAM-SHA-256",
    "CRAM-MD5",
    "PLAIN",
    "OAUTHBEARER",
    "XOAUTH2",
];

/// What authentication to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A SASL mechanism (upper-case name).
    Sasl(String),
    /// The IMAP LOGIN command.
    Login,
}

/// Chooses the authentication from the server's capabilities and AuthMechs.
///
/// `server_mechs` are the `AUTH=` names (upper case); `login_available` is false with
/// LOGINDISABLED; `secure` is true on TLS or tunnel connections.
pub fn choose(
    configured: &[String],
    server_mechs: &[String],
    login_available: bool,
    secure: bool,
) -> Result<Choice, String> {
    let configured: Vec<String> = if configured.is_empty() {
        vec!["*".to_string()]
    } else {
        configured.iter().map(|c| c.to_ascii_uppercase()).collect()
    };
    let mut server: Vec<String> = server_mechs
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .filter(|m| m != "LOGIN")
        .collect();
    let login_offered =
        login_available || server_mechs.iter().any(|m| m.eq_ignore_ascii_case("LOGIN"));
    if login_offered {
        server.push("LOGIN".to_string());
    }
    let mut login_ok = false;
    let mut login_skipped = false;
    let mut plain_skipped = false;
    let mut sasl: Vec<String> = Vec::new();
    for c in &configured {
        for m in &server {
            if c != "*" && c != m {
                continue;
            }
            if m == "LOGIN" {
                if c != "*" || secure {
                    login_ok = true;
                } else {
                    login_skipped = true;
                }
            } else if !sasl.contains(m) {
                // Token mechanisms only when asked for by name.
                if c == "*" && (m == "XOAUTH2" || m == "OAUTHBEARER") {
                    continue;
                }
                // Beyond mbsync (which leaves this to Cyrus SASL): `*` never sends the
                // password in the clear with PLAIN either; naming PLAIN allows it.
                if c == "*" && m == "PLAIN" && !secure {
                    plain_skipped = true;
                    continue;
                }
                sasl.push(m.clone());
            }
        }
    }
    if !sasl.is_empty() {
        if let Some(best) = SUPPORTED.iter().find(|s| sasl.iter().any(|m| m == *s)) {
            return Ok(Choice::Sasl(best.to_string()));
        }
        if !login_ok {
            return Err(format!(
                "IMAP error: selected SASL mechanism(s) not available;\n   selected: {}\n   available: {}",
                sasl.join(" "),
                SUPPORTED.join(" ")
            ));
        }
    }
    if login_ok {
        return Ok(Choice::Login);
    }
    let mut message =
        "IMAP error: server supports no acceptable authentication mechanism".to_string();
    if login_skipped {
        message.push_str(
            "\nNote: not using LOGIN because connection is not encrypted;\n      use 'AuthMechs LOGIN' explicitly to force it.",
        );
    }
    if plain_skipped {
        message.push_str(
            "\nNote: not using PLAIN because connection is not encrypted;\n      use 'AuthMechs PLAIN' explicitly to force it.",
        );
    }
    Err(message)
}

/// A running SASL exchange.
pub struct Sasl {
    mechanism: String,
    user: String,
    secret: String,
    host: String,
    port: u16,
    scram: Option<ScramState>,
    done: bool,
}

struct ScramState {
    client_nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl Sasl {
    pub fn new(mechanism: &str, user: &str, secret: &str, host: &str, port: u16) -> Sasl {
        Sasl {
            mechanism: mechanism.to_string(),
            user: user.to_string(),
            secret: secret.to_string(),
            host: host.to_string(),
            port,
            scram: None,
            done: false,
        }
    }

    /// The initial response (sent with SASL-IR, or after the first empty challenge).
    pub fn initial_response(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self.mechanism.as_str() {
            "PLAIN" => Ok(Some(plain_response(&self.user, &self.secret))),
            "XOAUTH2" => Ok(Some(xoauth2_response(&self.user, &self.secret))),
            "OAUTHBEARER" => Ok(Some(oauthbearer_response(
                &self.user,
                &self.secret,
                &self.host,
                self.port,
            ))),
            "SCRAM-SHA-256" => {
                let nonce = random_nonce()?;
                let (message, bare) = scram_client_first(&self.user, &nonce);
                self.scram = Some(ScramState {
                    client_nonce: nonce,
                    client_first_bare: bare,
                    server_signature: None,
                });
                Ok(Some(message.into_bytes()))
            }
            _ => Ok(None),
        }
    }

    /// Answers a server challenge (already base64-decoded).
    pub fn step(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        match self.mechanism.as_str() {
            "CRAM-MD5" => Ok(cram_md5_response(&self.user, &self.secret, challenge)),
            "PLAIN" | "XOAUTH2" | "OAUTHBEARER" if challenge.is_empty() && !self.done => {
                self.done = true;
                Ok(self.initial_response()?.unwrap_or_default())
            }
            // An error report (XOAUTH2/OAUTHBEARER JSON): answer empty, the server then fails.
            "PLAIN" | "XOAUTH2" | "OAUTHBEARER" => Ok(Vec::new()),
            "SCRAM-SHA-256" => {
                if self.scram.is_none() {
                    // No initial response was sent: the first challenge is empty.
                    return Ok(self.initial_response()?.unwrap_or_default());
                }
                let Some(state) = self.scram.as_mut() else {
                    return Err("SCRAM state missing".into());
                };
                if let Some(expected) = &state.server_signature {
                    let text = String::from_utf8_lossy(challenge);
                    let signature = text
                        .strip_prefix("v=")
                        .and_then(|v| B64.decode(v.trim()).ok())
                        .ok_or_else(|| format!("SCRAM: bad server final message '{text}'"))?;
                    if &signature != expected {
                        return Err("SCRAM: the server's signature is wrong".into());
                    }
                    return Ok(Vec::new());
                }
                let (reply, signature) = scram_client_final(
                    &self.secret,
                    &state.client_nonce,
                    &state.client_first_bare,
                    challenge,
                )?;
                state.server_signature = Some(signature);
                Ok(reply.into_bytes())
            }
            other => Err(format!("unsupported SASL mechanism {other}")),
        }
    }
}

pub fn plain_response(user: &str, pass: &str) -> Vec<u8> {
    format!("\0{user}\0{pass}").into_bytes()
}

pub fn xoauth2_response(user: &str, token: &str) -> Vec<u8> {
    format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

pub fn oauthbearer_response(user: &str, token: &str, host: &str, port: u16) -> Vec<u8> {
    let user = user.replace('=', "=3D").replace(',', "=2C");
    format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

pub fn cram_md5_response(user: &str, pass: &str, challenge: &[u8]) -> Vec<u8> {
    let digest = hmac_md5(pass.as_bytes(), challenge);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{user} {hex}").into_bytes()
}

fn random_nonce() -> Result<String, String> {
    let mut bytes = [0u8; 18];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "cannot get random bytes for the SCRAM nonce".to_string())?;
    Ok(B64.encode(bytes))
}

/// Returns the client-first message and its "bare" part.
pub fn scram_client_first(user: &str, nonce: &str) -> (String, String) {
    let name = user.replace('=', "=3D").replace(',', "=2C");
    let bare = format!("n={name},r={nonce}");
    (format!("n,,{bare}"), bare)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

/// Computes the client-final message and the expected server signature.
pub fn scram_client_final(
    pass: &str,
    client_nonce: &str,
    client_first_bare: &str,
    server_first: &[u8],
) -> Result<(String, Vec<u8>), String> {
    let server_first = std::str::from_utf8(server_first)
        .map_err(|_| "SCRAM: server message is not UTF-8".to_string())?;
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for field in server_first.split(',') {
        if let Some(v) = field.strip_prefix("r=") {
            nonce = Some(v);
        } else if let Some(v) = field.strip_prefix("s=") {
            salt = B64.decode(v).ok();
        } else if let Some(v) = field.strip_prefix("i=") {
            iterations = v.parse::<u32>().ok().and_then(NonZeroU32::new);
        }
    }
    let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
        return Err(format!("SCRAM: malformed server message '{server_first}'"));
    };
    if !nonce.starts_with(client_nonce) {
        return Err("SCRAM: the server's nonce does not extend ours".into());
    }
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        pass.as_bytes(),
        &mut salted,
    );
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, &client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let client_signature = hmac_sha256(stored_key.as_ref(), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(client_signature.iter())
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = hmac_sha256(&salted, b"Server Key");
    let server_signature = hmac_sha256(&server_key, auth_message.as_bytes());
    Ok((
        format!("{without_proof},p={}", B64.encode(proof)),
        server_signature,
    ))
}

/// HMAC-MD5 (RFC 2104) for CRAM-MD5.
pub fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..16].copy_from_slice(&md5(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let inner_hash = md5(&inner);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&inner_hash);
    md5(&outer)
}

/// MD5 (RFC 1321); only used inside HMAC-MD5 for CRAM-MD5.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let constants: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in message.chunks_exact(64) {
        let words: Vec<u32> = chunk
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let sum = a
                .wrapping_add(f)
                .wrapping_add(constants[i])
                .wrapping_add(words[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(sum.rotate_left(SHIFTS[i]));
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, word) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_known_vectors() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(&md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            cram_md5_response("tim", "tanstaaftanstaaf", challenge),
            b"tim b913a602c7eda7a495b4e6e7334d3890".to_vec()
        );
    }

    #[test]
    fn scram_sha256_rfc7677_example() {
        let (first, bare) = scram_client_first("user", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (reply, signature) =
            scram_client_final("pencil", "rOprNGfwEbeRWgbNEkqO", &bare, server_first).unwrap();
        assert_eq!(
            reply,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            B64.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn token_mechanisms_encode_as_documented() {
        // XOAUTH2 (Google's documented example).
        assert_eq!(
            B64.encode(xoauth2_response(
                "someuser@example.com",
                "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
            )),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        // OAUTHBEARER (RFC 7628 §4.1 shape).
        assert_eq!(
            oauthbearer_response("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143),
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01".to_vec()
        );
    }

    #[test]
    fn selection_follows_the_spec() {
        let server = vec![
            "PLAIN".to_string(),
            "LOGIN".to_string(),
            "CRAM-MD5".to_string(),
        ];
        let any: Vec<String> = vec![];
        assert_eq!(
            choose(&any, &server, true, false),
            Ok(Choice::Sasl("CRAM-MD5".into()))
        );
        let login = vec!["LOGIN".to_string()];
        assert_eq!(choose(&login, &server, true, false), Ok(Choice::Login));
        let plain_login = vec!["PLAIN".to_string(), "LOGIN".to_string()];
        assert_eq!(
            choose(&plain_login, &server, true, true),
            Ok(Choice::Sasl("PLAIN".into()))
        );
        let err = choose(&any, &[], true, false).unwrap_err();
        assert!(
            err.contains("not using LOGIN because connection is not encrypted"),
            "{err}"
        );
        assert_eq!(choose(&any, &[], true, true), Ok(Choice::Login));
        let gss = vec!["GSSAPI".to_string()];
        let err = choose(&gss, &["GSSAPI".to_string()], false, true).unwrap_err();
        assert!(
            err.contains("selected SASL mechanism(s) not available"),
            "{err}"
        );
        // PLAIN in the clear only when named; `*` keeps to it on an encrypted connection.
        let plain_only = vec!["PLAIN".to_string()];
        let err = choose(&any, &plain_only, true, false).unwrap_err();
        assert!(
            err.contains("not using PLAIN because connection is not encrypted")
                && err.contains("not using LOGIN"),
            "{err}"
        );
        assert_eq!(
            choose(&any, &plain_only, false, true),
            Ok(Choice::Sasl("PLAIN".into()))
        );
        let plain = vec!["PLAIN".to_string()];
        assert_eq!(
            choose(&plain, &plain_only, false, false),
            Ok(Choice::Sasl("PLAIN".into()))
        );
        // Token mechanisms only when named.
        let server = vec!["XOAUTH2".to_string()];
        assert!(choose(&any, &server, false, true).is_err());
        let x = vec!["XOAUTH2".to_string()];
        assert_eq!(
            choose(&x, &server, false, true),
            Ok(Choice::Sasl("XOAUTH2".into()))
        );
    }
}
