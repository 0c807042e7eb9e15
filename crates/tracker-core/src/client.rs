//! Client names from peer ids: Azureus-style `-XXvvvv-` tags and the few other shapes still seen.

use tracker_proto::PeerId;

/// Azureus-style two-letter codes and how their four version characters read.
const AZUREUS: &[(&str, &str, Version)] = &[
    ("TR", "Transmission", Version::Transmission),
    ("qB", "qBittorrent", Version::Digits(3)),
    ("LT", "libtorrent", Version::Digits(3)),
    ("lt", "libTorrent (rakshasa)", Version::Hex3),
    ("DE", "Deluge", Version::Digits(3)),
    ("BS", "bitswarm", Version::Digits(3)),
    ("UT", "µTorrent", Version::Digits(3)),
    ("UM", "µTorrent Mac", Version::Digits(3)),
    ("BT", "BitTorrent", Version::Digits(3)),
    ("AZ", "Vuze", Version::Digits(4)),
    ("BI", "BiglyBT", Version::Digits(4)),
    ("KT", "KTorrent", Version::Digits(3)),
    ("WW", "WebTorrent", Version::Digits(4)),
    ("rQ", "rqbit", Version::Unknown),
    ("BC", "BitComet", Version::Digits(4)),
    ("FD", "Free Download Manager", Version::Digits(3)),
    ("XL", "Xunlei", Version::Digits(4)),
    ("SD", "Thunder", Version::Digits(4)),
];

#[derive(Debug, Clone, Copy)]
enum Version {
    /// Transmission: `-TR2940-` is 2.94, `-TR300Z-` 3.00+ (a development build), and from 4 on `-TR4050-` is
    /// 4.0.5.
    Transmission,
    /// Each character one component (0-9, then A-Z for 10-35, as libtorrent writes them); this many.
    Digits(usize),
    /// rakshasa's libTorrent: three hex characters, `-lt0D60-` is 0.13.6.
    Hex3,
    /// The characters do not encode a version in a known way (rqbit changed its scheme): name only.
    Unknown,
}

/// A readable client name and version for a peer id, such as "Transmission 3.00", "libtorrent 2.0.8",
/// "qBittorrent 4.6.3", "aria2 1.36.0", "bitswarm 0.1.0"; "unknown (-XX1234-)" for an unknown Azureus-style
/// tag and "unknown" otherwise.
pub fn client_name(id: &PeerId) -> String {
    if let Some(tag) = id.azureus_prefix() {
        let code = tag.get(1..3).unwrap_or_default();
        let version: Vec<u8> = tag.bytes().skip(3).take(4).collect();
        return match AZUREUS.iter().find(|(c, _, _)| *c == code) {
            Some((_, name, style)) => match format_version(*style, &version) {
                Some(v) => format!("{name} {v}"),
                None => (*name).to_string(),
            },
            None => format!("unknown ({tag})"),
        };
    }
    let bytes = &id.0;
    if let Some(rest) = bytes.strip_prefix(b"A2-") {
        // aria2: "A2-1-36-0-" then random bytes.
        if let Some(v) = dashed_version(rest) {
            return format!("aria2 {v}");
        }
    }
    if let Some(rest) = bytes.strip_prefix(b"M") {
        // BitTorrent Mainline: "M7-2-2--".
        if let Some(v) = dashed_version(rest) {
            return format!("Mainline {v}");
        }
    }
    "unknown".to_string()
}

fn digit(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 36),
        _ => None,
    }
}

fn format_version(style: Version, v: &[u8]) -> Option<String> {
    let d = |i: usize| v.get(i).copied().and_then(digit);
    match style {
        Version::Transmission => {
            let (major, minor1, minor2) = (d(0)?, d(1)?, d(2)?);
            if major >= 4 {
                Some(format!("{major}.{minor1}.{minor2}"))
            } else {
                let dev = matches!(v.get(3), Some(b'Z' | b'X'));
                Some(format!("{major}.{minor1}{minor2}{}", if dev { "+" } else { "" }))
            }
        }
        Version::Digits(n) => {
            let parts: Option<Vec<String>> = (0..n).map(|i| d(i).map(|x| x.to_string())).collect();
            Some(parts?.join("."))
        }
        Version::Unknown => None,
        Version::Hex3 => {
            let hex = |i: usize| v.get(i).and_then(|&c| (c as char).to_digit(16));
            Some(format!("{}.{}.{}", hex(0)?, hex(1)?, hex(2)?))
        }
    }
}

/// "1-36-0-" or "7-2-2--": up to three decimal numbers separated by `-`, ended by `-`.
fn dashed_version(rest: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    for &b in rest.iter().take(12) {
        match b {
            b'0'..=b'9' => current.push(b as char),
            b'-' if !current.is_empty() => {
                parts.push(std::mem::take(&mut current));
                if parts.len() == 3 {
                    break;
                }
            }
            b'-' => break,
            _ => return None,
        }
    }
    (parts.len() == 3).then(|| parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(id: &[u8; 20]) -> String {
        client_name(&PeerId(*id))
    }

    #[test]
    fn clients_are_named_from_peer_ids() {
        assert_eq!(name(b"-TR3000-u43jooybnzsh"), "Transmission 3.00");
        assert_eq!(name(b"-TR2940-u43jooybnzsh"), "Transmission 2.94");
        assert_eq!(name(b"-TR300Z-u43jooybnzsh"), "Transmission 3.00+");
        assert_eq!(name(b"-TR4050-u43jooybnzsh"), "Transmission 4.0.5");
        assert_eq!(name(b"-LT2080-u43jooybnzsh"), "libtorrent 2.0.8");
        assert_eq!(name(b"-lt0D60-u43jooybnzsh"), "libTorrent (rakshasa) 0.13.6");
        assert_eq!(name(b"-qB4630-u43jooybnzsh"), "qBittorrent 4.6.3");
        assert_eq!(name(b"-DE211s-u43jooybnzsh"), "Deluge 2.1.1");
        assert_eq!(name(b"-BS0100-u43jooybnzsh"), "bitswarm 0.1.0");
        assert_eq!(
            name(b"A2-1-36-0-\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"),
            "aria2 1.36.0"
        );
        assert_eq!(name(b"M7-2-2--xxxxxxxxxxxx"), "Mainline 7.2.2");
        assert_eq!(name(b"-rQ0001-xxxxxxxxxxxx"), "rqbit");
        assert_eq!(name(b"-ZZ1234-u43jooybnzsh"), "unknown (-ZZ1234-)");
        assert_eq!(name(&[0xff; 20]), "unknown");
        assert_eq!(name(b"-TR!!!!-u43jooybnzsh"), "unknown");
    }
}
