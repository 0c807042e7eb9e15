//! Identifier newtypes: info-hashes (v1 SHA-1, v2 SHA-256), piece indices and peer ids.

use std::fmt;

use data_encoding::{BASE32, HEXLOWER, HEXLOWER_PERMISSIVE};

/// A 20-byte info-hash as trackers, the DHT and the v1 wire protocol see it: the SHA-1 of a v1 `info`
/// dictionary, or (from [`InfoHashV2::truncated`]) the first 20 bytes of a v2 one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoHashV1(pub [u8; 20]);

/// A 32-byte BEP 52 info-hash: the SHA-256 of a v2 `info` dictionary.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoHashV2(pub [u8; 32]);

/// The index of a piece within a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PieceIndex(pub u32);

/// Why a textual hash could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {expected}, got {got:?}")]
pub struct HashParseError {
    what: &'static str,
    expected: &'static str,
    got: String,
}

impl InfoHashV1 {
    /// The SHA-1 of the exact `info` bytes.
    pub fn of_info(raw_info: &[u8]) -> Self {
        use sha1::Digest;
        InfoHashV1(sha1::Sha1::digest(raw_info).into())
    }
    /// Lower-case hex (40 characters).
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }
    /// Upper-case base32 (32 characters), as in older magnet links.
    pub fn to_base32(&self) -> String {
        BASE32.encode(&self.0)
    }
    /// Parse 40 hex digits (either case) or 32 base32 characters (either case).
    pub fn from_text(s: &str) -> Result<Self, HashParseError> {
        let err = || HashParseError {
            what: "a v1 info-hash",
            expected: "40 hex digits or 32 base32 characters",
            got: s.chars().take(80).collect(),
        };
        let bytes = match s.len() {
            40 => HEXLOWER_PERMISSIVE.decode(s.as_bytes()).map_err(|_| err())?,
            32 => BASE32
                .decode(s.to_ascii_uppercase().as_bytes())
                .map_err(|_| err())?,
            _ => return Err(err()),
        };
        bytes.try_into().map(InfoHashV1).map_err(|_| err())
    }
}

impl InfoHashV2 {
    /// The SHA-256 of the exact `info` bytes.
    pub fn of_info(raw_info: &[u8]) -> Self {
        use sha2::Digest;
        InfoHashV2(sha2::Sha256::digest(raw_info).into())
    }
    /// The first 20 bytes, which v2 torrents use with trackers, the DHT and in the peer handshake.
    pub fn truncated(&self) -> InfoHashV1 {
        let mut t = [0u8; 20];
        t.copy_from_slice(self.0.get(..20).unwrap_or(&[0u8; 20]));
        InfoHashV1(t)
    }
    /// Lower-case hex (64 characters).
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }
    /// Parse 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, HashParseError> {
        let err = || HashParseError {
            what: "a v2 info-hash",
            expected: "64 hex digits",
            got: s.chars().take(80).collect(),
        };
        if s.len() != 64 {
            return Err(err());
        }
        let bytes = HEXLOWER_PERMISSIVE.decode(s.as_bytes()).map_err(|_| err())?;
        bytes.try_into().map(InfoHashV2).map_err(|_| err())
    }
}

impl fmt::Debug for InfoHashV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV1({})", self.to_hex())
    }
}
impl fmt::Display for InfoHashV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({})", self.to_hex())
    }
}
impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Display for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The info-hashes of a torrent: v1, v2, or both for a hybrid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InfoHashes {
    /// SHA-1 of the info dict, when the torrent has v1 fields.
    pub v1: Option<InfoHashV1>,
    /// SHA-256 of the info dict, when the torrent has v2 fields.
    pub v2: Option<InfoHashV2>,
}

impl InfoHashes {
    /// The 20-byte hash to use with trackers, the DHT and the handshake: v1 when present, else truncated v2.
    pub fn swarm_hash(&self) -> Option<InfoHashV1> {
        self.v1.or_else(|| self.v2.map(|h| h.truncated()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base32_agree() {
        let h = InfoHashV1::of_info(b"d4:name1:ae");
        assert_eq!(InfoHashV1::from_text(&h.to_hex()).unwrap(), h);
        assert_eq!(InfoHashV1::from_text(&h.to_hex().to_uppercase()).unwrap(), h);
        assert_eq!(InfoHashV1::from_text(&h.to_base32()).unwrap(), h);
        assert_eq!(InfoHashV1::from_text(&h.to_base32().to_lowercase()).unwrap(), h);
        assert!(InfoHashV1::from_text("abc").is_err());
        assert!(InfoHashV1::from_text(&"g".repeat(40)).is_err());
    }

    #[test]
    fn v2_truncation_is_the_prefix() {
        let h = InfoHashV2::of_info(b"d4:name1:ae");
        assert_eq!(&h.truncated().0[..], &h.0[..20]);
        assert_eq!(InfoHashV2::from_hex(&h.to_hex()).unwrap(), h);
    }
}

/// A peer's self-chosen 20-byte id (BEP 3): sent to trackers and as the last field of the peer handshake.
/// One type for both (`wire` and `tracker-proto` re-export it). Client names ("libtorrent 2.0.8") are read
/// from ids by `tracker_core::client_name`; this type only offers the raw Azureus-style tag
/// ([`PeerId::azureus_prefix`]).
///
/// `Debug` and `Display` show the id as text with non-printable bytes escaped (`-LT2080-\x2eOihH...`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// The client tag of an Azureus-style id (`-XXnnnn-...`), such as `-TR3000-` or `-LT2080-`.
    pub fn azureus_prefix(&self) -> Option<&str> {
        let prefix = self.0.get(..8)?;
        let ok = prefix.first() == Some(&b'-')
            && prefix.get(7) == Some(&b'-')
            && prefix.get(1..7)?.iter().all(u8::is_ascii_alphanumeric);
        if ok {
            std::str::from_utf8(prefix).ok()
        } else {
            None
        }
    }
}

impl From<[u8; 20]> for PeerId {
    fn from(b: [u8; 20]) -> Self {
        PeerId(b)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() && b != b'\\' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{self}\")")
    }
}

#[cfg(test)]
mod peer_id_tests {
    use super::*;

    #[test]
    fn azureus_prefix_and_display() {
        let id = PeerId(*b"-TR3000-u0swcvvz6h3r");
        assert_eq!(id.azureus_prefix(), Some("-TR3000-"));
        assert_eq!(id.to_string(), "-TR3000-u0swcvvz6h3r");
        let mut raw = *b"-LT2080-............";
        raw[10] = 0;
        raw[11] = b'\\';
        assert_eq!(PeerId(raw).to_string(), "-LT2080-..\\x00\\x5c........");
        assert_eq!(PeerId(*b"M7-2-2--abcdefghijkl").azureus_prefix(), None);
        assert_eq!(PeerId([0; 20]).azureus_prefix(), None);
    }
}
