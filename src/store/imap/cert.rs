//! Just enough X.509 (DER) reading for certificate checks and messages: the subject, the
//! DNS and IP subjectAltNames, the Common Name and whether the certificate is a CA.

/// What we read from a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject as `CN=…, O=…` (attributes we know by name, in order).
    pub subject: String,
    pub common_names: Vec<Vec<u8>>,
    pub dns_names: Vec<Vec<u8>>,
    pub ip_addresses: Vec<Vec<u8>>,
    /// basicConstraints cA is true.
    pub is_ca: bool,
}

/// One DER element: tag, content.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Reads one element from the front of `data`, returning it and the rest.
fn read_element(data: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for i in 0..count {
            length = (length << 8) | usize::from(*data.get(2 + i)?);
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    let content = data.get(header..end)?;
    Some((Element { tag, content }, &data[end..]))
}

/// All elements of a constructed content.
fn elements(mut data: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (element, rest) = read_element(data)?;
        out.push(element);
        data = rest;
    }
    Some(out)
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        _ => None,
    }
}

/// Parses a DER certificate; `None` if it is not one we can read.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (certificate, _) = read_element(der)?;
    let parts = elements(certificate.content)?;
    let tbs = elements(parts.first()?.content)?;
    // tbsCertificate: [0] version (optional), serial, signature alg, issuer, validity,
    // subject, spki, then optional [1] [2] [3].
    let start = usize::from(tbs.first()?.tag == 0xa0);
    let subject = tbs.get(start + 4)?;
    let mut info = CertInfo::default();
    let mut shown = Vec::new();
    for set in elements(subject.content)? {
        for attribute in elements(set.content)? {
            let fields = elements(attribute.content)?;
            let (oid, value) = (fields.first()?, fields.get(1)?);
            let text = String::from_utf8_lossy(value.content).into_owned();
            if oid.content == OID_CN {
                info.common_names.push(value.content.to_vec());
            }
            let name = attribute_name(oid.content)
                .map(str::to_string)
                .unwrap_or_else(|| "?".into());
            shown.push(format!("{name}={text}"));
        }
    }
    info.subject = shown.join(", ");
    for element in &tbs[start + 6..] {
        if element.tag != 0xa3 {
            continue;
        }
        let (extensions, _) = read_element(element.content)?;
        for extension in elements(extensions.content)? {
            let fields = elements(extension.content)?;
            let oid = fields.first()?.content;
            let value = fields.last()?.content;
            if oid == OID_SAN {
                let (names, _) = read_element(value)?;
                for name in elements(names.content)? {
                    match name.tag {
                        0x82 => info.dns_names.push(name.content.to_vec()),
                        0x87 => info.ip_addresses.push(name.content.to_vec()),
                        _ => {}
                    }
                }
            } else if oid == OID_BASIC_CONSTRAINTS {
                let (constraints, _) = read_element(value)?;
                if let Some(first) = elements(constraints.content)?.first() {
                    info.is_ca =
                        first.tag == 0x01 && first.content.first().is_some_and(|&b| b != 0);
                }
            }
        }
    }
    Some(info)
}

/// mbsync's host name rule for one certificate name: case-insensitive, `*.<rest>` matches
/// exactly one leading label; names with NUL bytes never match.
pub fn name_matches(pattern: &[u8], host: &str) -> bool {
    if pattern.contains(&0) {
        return false;
    }
    let Ok(pattern) = std::str::from_utf8(pattern) else {
        return false;
    };
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    if let Some(rest) = pattern.strip_prefix("*.")
        && let Some((first, host_rest)) = host.split_once('.')
    {
        return !first.is_empty() && host_rest.eq_ignore_ascii_case(rest);
    }
    false
}

/// Checks the host against the certificate: DNS SANs, then Common Names (mbsync), and for an
/// IP-literal host also the IP SANs (an addition: mbsync does not consult them).
pub fn host_matches(info: &CertInfo, host: &str) -> bool {
    if info.dns_names.iter().any(|n| name_matches(n, host))
        || info.common_names.iter().any(|n| name_matches(n, host))
    {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => info.ip_addresses.iter().any(|a| a[..] == ip.octets()),
        Ok(std::net::IpAddr::V6(ip)) => info.ip_addresses.iter().any(|a| a[..] == ip.octets()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches(b"*.example.test", "a.example.test"));
        assert!(name_matches(b"*.Example.TEST", "A.example.test"));
        assert!(!name_matches(b"*.example.test", "a.b.example.test"));
        assert!(!name_matches(b"*.example.test", "example.test"));
        assert!(!name_matches(b"a*.example.test", "ab.example.test"));
        assert!(!name_matches(b"localhost\0.evil", "localhost"));
        assert!(name_matches(b"localhost", "LOCALHOST"));
    }

    #[test]
    fn truncated_der_is_refused() {
        assert_eq!(parse(&[0x30, 0x82, 0x01]), None);
        assert_eq!(parse(&[]), None);
    }
}
