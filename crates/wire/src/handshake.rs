//! The 68-byte handshake that opens every peer connection (BEP 3), with its reserved bits.

use std::fmt;
use std::ops::BitOr;

use metainfo::InfoHashV1;

use crate::{PeerId, WireError};

/// The protocol string after the length byte: `BitTorrent protocol`.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// Bytes in a handshake: 1 + 19 + 8 reserved + 20 info-hash + 20 peer id.
pub const HANDSHAKE_LEN: usize = 68;

/// Bytes up to and including the info-hash: what a receiver needs to pick the torrent before the peer id.
pub const HANDSHAKE_HEADER_LEN: usize = 48;

/// The eight reserved bytes of the handshake, where extensions announce themselves.
///
/// Bits are named by the BEP that assigned them; the helpers read and set them without touching the others
/// (unknown bits are kept as received).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// No bits set.
    pub const NONE: Reserved = Reserved([0; 8]);
    /// BEP 10 extension protocol: "`(reserved_byte[5] & 0x10)`".
    pub const EXTENDED: Reserved = Reserved([0, 0, 0, 0, 0, 0x10, 0, 0]);
    /// BEP 6 fast extension: "`reserved[7] |= 0x04`".
    pub const FAST: Reserved = Reserved([0, 0, 0, 0, 0, 0, 0, 0x04]);
    /// BEP 5 DHT: "the last bit of the 8-byte reserved flags".
    pub const DHT: Reserved = Reserved([0, 0, 0, 0, 0, 0, 0, 0x01]);
    /// BEP 52 upgrade to v2: "the 4th most significant bit in the last byte of the reserved bitfield".
    pub const V2: Reserved = Reserved([0, 0, 0, 0, 0, 0, 0, 0x10]);

    /// True if every bit of `bits` is set here.
    pub fn contains(self, bits: Reserved) -> bool {
        self.0.iter().zip(bits.0).all(|(a, b)| a & b == b)
    }
    /// These bits with `bits` set (`on`) or cleared.
    pub fn with(mut self, bits: Reserved, on: bool) -> Reserved {
        for (a, b) in self.0.iter_mut().zip(bits.0) {
            if on {
                *a |= b;
            } else {
                *a &= !b;
            }
        }
        self
    }
    /// The peer supports the BEP 6 fast extension.
    pub fn fast(self) -> bool {
        self.contains(Reserved::FAST)
    }
    /// The peer supports the BEP 10 extension protocol.
    pub fn extended(self) -> bool {
        self.contains(Reserved::EXTENDED)
    }
    /// The peer runs a BEP 5 DHT node (and may send a `port` message).
    pub fn dht(self) -> bool {
        self.contains(Reserved::DHT)
    }
    /// The peer can upgrade a hybrid torrent's connection to v2 (BEP 52).
    pub fn v2(self) -> bool {
        self.contains(Reserved::V2)
    }
}

impl BitOr for Reserved {
    type Output = Reserved;
    fn bitor(self, rhs: Reserved) -> Reserved {
        self.with(rhs, true)
    }
}

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reserved(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        let names = [
            (self.extended(), "extended"),
            (self.fast(), "fast"),
            (self.dht(), "dht"),
            (self.v2(), "v2"),
        ];
        for (_, name) in names.iter().filter(|(on, _)| *on) {
            write!(f, " {name}")?;
        }
        write!(f, ")")
    }
}

/// A peer-wire handshake: protocol, reserved bits, the 20-byte info-hash and the sender's peer id.
///
/// For a v2-only torrent `info_hash` is the truncated v2 hash
/// ([`InfoHashV2::truncated`](metainfo::InfoHashV2::truncated)); for a hybrid torrent either hash may
/// appear (BEP 52).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Extension bits.
    pub reserved: Reserved,
    /// The torrent this connection is for.
    pub info_hash: InfoHashV1,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// Read a handshake from the first [`HANDSHAKE_LEN`] bytes of `buf` (later bytes are the message
    /// stream and are not looked at).
    ///
    /// A wrong length byte or protocol string is [`WireError::BadProtocolLength`] /
    /// [`WireError::BadProtocolString`] as soon as the first wrong byte is present; a correct but short
    /// input is [`WireError::Incomplete`].
    pub fn parse(buf: &[u8]) -> Result<Handshake, WireError> {
        let (reserved, info_hash) = Self::parse_header(buf)?;
        let peer_id = buf
            .get(HANDSHAKE_HEADER_LEN..HANDSHAKE_LEN)
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .ok_or(WireError::Incomplete {
                needed: HANDSHAKE_LEN.saturating_sub(buf.len()),
            })?;
        Ok(Handshake {
            reserved,
            info_hash,
            peer_id: PeerId(peer_id),
        })
    }

    /// Read only the reserved bits and info-hash (the first [`HANDSHAKE_HEADER_LEN`] bytes): an accepting
    /// peer that serves several torrents picks one with this before it answers, as BEP 3 allows, while
    /// some clients hold their peer id back until they see the answer.
    pub fn parse_header(buf: &[u8]) -> Result<(Reserved, InfoHashV1), WireError> {
        if let Some(&n) = buf.first() {
            if usize::from(n) != PROTOCOL.len() {
                return Err(WireError::BadProtocolLength(n));
            }
        }
        let got = buf.get(1..).unwrap_or_default();
        let got = got.get(..PROTOCOL.len()).unwrap_or(got);
        if !PROTOCOL.starts_with(got) {
            return Err(WireError::BadProtocolString {
                found: String::from_utf8_lossy(got).into_owned(),
            });
        }
        let incomplete = || WireError::Incomplete {
            needed: HANDSHAKE_LEN.saturating_sub(buf.len()),
        };
        let reserved = buf
            .get(20..28)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .ok_or_else(incomplete)?;
        let info_hash = buf
            .get(28..HANDSHAKE_HEADER_LEN)
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .ok_or_else(incomplete)?;
        Ok((Reserved(reserved), InfoHashV1(info_hash)))
    }

    /// Append the 68 bytes of this handshake to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The 68 bytes of this handshake.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        let parts: [&[u8]; 5] = [
            &[19],
            PROTOCOL,
            &self.reserved.0,
            &self.info_hash.0,
            &self.peer_id.0,
        ];
        let mut at = 0;
        for part in parts {
            if let Some(dst) = b.get_mut(at..at + part.len()) {
                dst.copy_from_slice(part);
            }
            at += part.len();
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::EXTENDED | Reserved::FAST | Reserved::DHT,
            info_hash: InfoHashV1([0xab; 20]),
            peer_id: PeerId(*b"-BS0100-0123456789ab"),
        }
    }

    #[test]
    fn handshake_bytes_are_exact() {
        let b = sample().to_bytes();
        let mut expected = vec![19];
        expected.extend_from_slice(b"BitTorrent protocol");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        expected.extend_from_slice(&[0xab; 20]);
        expected.extend_from_slice(b"-BS0100-0123456789ab");
        assert_eq!(b.to_vec(), expected);
        assert_eq!(Handshake::parse(&b).unwrap(), sample());
        let mut out = vec![9];
        sample().write(&mut out);
        assert_eq!(&out[1..], &b[..]);
    }

    #[test]
    fn reserved_bits_are_the_ones_the_beps_name() {
        let r = Reserved([0, 0, 0, 0, 0, 0x10, 0, 0x15]);
        assert!(r.extended() && r.fast() && r.dht() && r.v2());
        assert!(!Reserved::NONE.extended());
        let cleared = r.with(Reserved::FAST, false);
        assert!(!cleared.fast() && cleared.dht() && cleared.v2());
        assert_eq!(cleared.0, [0, 0, 0, 0, 0, 0x10, 0, 0x11]);
        // Unknown bits are kept.
        let odd = Reserved([0x80, 0, 0, 0, 0, 0, 0, 0]) | Reserved::FAST;
        assert_eq!(odd.0, [0x80, 0, 0, 0, 0, 0, 0, 0x04]);
        assert_eq!(
            format!("{:?}", r),
            "Reserved(0000000000100015 extended fast dht v2)"
        );
    }

    #[test]
    fn short_input_is_incomplete_and_wrong_protocol_is_malformed() {
        let b = sample().to_bytes();
        for n in 0..HANDSHAKE_LEN {
            let e = Handshake::parse(&b[..n]).unwrap_err();
            assert_eq!(e, WireError::Incomplete { needed: 68 - n }, "at {n}");
        }
        assert!(Handshake::parse_header(&b[..48]).is_ok());
        assert_eq!(
            Handshake::parse(&[18]).unwrap_err(),
            WireError::BadProtocolLength(18)
        );
        // A wrong byte is reported as soon as it arrives, without waiting for 68 bytes.
        let e = Handshake::parse(b"\x13BitTorrent protoX").unwrap_err();
        assert!(matches!(e, WireError::BadProtocolString { .. }), "{e}");
        assert!(!e.is_incomplete());
        // An HTTP request sent to a peer port.
        assert_eq!(
            Handshake::parse(b"GET / HTTP/1.1\r\n").unwrap_err(),
            WireError::BadProtocolLength(b'G')
        );
        // Bytes after the handshake belong to the message stream.
        let mut long = b.to_vec();
        long.extend_from_slice(&[0, 0, 0, 1, 1]);
        assert_eq!(Handshake::parse(&long).unwrap(), sample());
    }
}
