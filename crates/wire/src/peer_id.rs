//! The 20-byte peer id of the handshake.

use std::fmt;

/// A peer's self-chosen 20-byte id (BEP 3), the last field of the handshake.
///
/// `tracker_proto::PeerId` is the same idea for tracker messages; the two are kept apart so that neither
/// protocol crate depends on the other, and a later refactor may move one shared type into `metainfo`.
/// Client names ("libtorrent 2.0.8") are read from ids by `tracker_core::client_name`; this type only
/// offers the raw Azureus-style tag ([`PeerId::azureus_prefix`]).
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
mod tests {
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
