//! Identifier newtypes: info-hashes (v1 SHA-1, v2 SHA-256) and piece indices.

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
