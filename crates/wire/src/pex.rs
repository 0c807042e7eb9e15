//! ut_pex (BEP 11): peers a peer is connected to, and peers it dropped.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bencode::Value;

use crate::extended::{as_dict, options};
use crate::WireError;

/// Most addresses accepted under one key. BEP 11 asks for at most 50 added and 50 dropped per message
/// after the first; the first may list every connected peer, so the bound is generous.
pub const MAX_PEX_PEERS: usize = 1000;

/// The per-peer flags of `added.f` / `added6.f` (BEP 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// 0x01: prefers encryption.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// 0x02: seed or upload-only.
    pub const SEED: u8 = 0x02;
    /// 0x04: supports uTP.
    pub const UTP: u8 = 0x04;
    /// 0x08: supports ut_holepunch.
    pub const HOLEPUNCH: u8 = 0x08;
    /// 0x10: the sender connected to it (outgoing), so it is reachable.
    pub const REACHABLE: u8 = 0x10;

    /// The peer prefers encryption.
    pub fn prefers_encryption(self) -> bool {
        self.0 & Self::PREFERS_ENCRYPTION != 0
    }
    /// The peer is a seed (or upload-only).
    pub fn seed(self) -> bool {
        self.0 & Self::SEED != 0
    }
    /// The peer supports uTP.
    pub fn utp(self) -> bool {
        self.0 & Self::UTP != 0
    }
    /// The peer supports ut_holepunch.
    pub fn holepunch(self) -> bool {
        self.0 & Self::HOLEPUNCH != 0
    }
    /// The peer accepted an outgoing connection.
    pub fn reachable(self) -> bool {
        self.0 & Self::REACHABLE != 0
    }
}

/// A ut_pex message.
///
/// Reading: each address list must be a whole number of compact entries (6 bytes for IPv4, 18 for IPv6)
/// and at most [`MAX_PEX_PEERS`] entries; a flags string whose length does not match its list is ignored
/// (every flag reads 0); absent keys are empty lists. BEP 11's rules about what a message may contain
/// (no duplicates, no peer both added and dropped) are for the session to judge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PexMessage {
    /// IPv4 peers connected since the last message (`added`, `added.f`).
    pub added: Vec<(SocketAddrV4, PexFlags)>,
    /// IPv4 peers disconnected since the last message (`dropped`).
    pub dropped: Vec<SocketAddrV4>,
    /// IPv6 peers connected since the last message (`added6`, `added6.f`).
    pub added6: Vec<(SocketAddrV6, PexFlags)>,
    /// IPv6 peers disconnected since the last message (`dropped6`).
    pub dropped6: Vec<SocketAddrV6>,
}

const WHAT: &str = "ut_pex";

impl PexMessage {
    /// Read a ut_pex payload (the bytes after the `extended` message's extension id).
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let value = bencode::decode_with(payload, options())
            .map_err(|source| WireError::Bencode { what: WHAT, source })?;
        let d = as_dict(WHAT, &value)?;
        let list = |key: &'static str, unit: usize| -> Result<&[u8], WireError> {
            let bytes = match d.get(key.as_bytes()) {
                None => return Ok(&[]),
                Some(v) => v.as_bytes().ok_or_else(|| WireError::BadValue {
                    what: WHAT,
                    key,
                    problem: format!("is a {}, expected a string", v.type_name()),
                })?,
            };
            if !bytes.len().is_multiple_of(unit) {
                return Err(WireError::CompactLength {
                    key,
                    len: bytes.len(),
                    unit,
                });
            }
            let count = bytes.len() / unit;
            if count > MAX_PEX_PEERS {
                return Err(WireError::TooMany {
                    what: WHAT,
                    key,
                    count,
                    max: MAX_PEX_PEERS,
                });
            }
            Ok(bytes)
        };
        let flags = |key: &[u8], count: usize| -> Vec<PexFlags> {
            match d.get(key).and_then(Value::as_bytes) {
                Some(f) if f.len() == count => f.iter().map(|&b| PexFlags(b)).collect(),
                _ => vec![PexFlags::default(); count],
            }
        };
        let added: Vec<SocketAddrV4> = list("added", 6)?.chunks_exact(6).filter_map(v4).collect();
        let added6: Vec<SocketAddrV6> = list("added6", 18)?.chunks_exact(18).filter_map(v6).collect();
        let added_f = flags(b"added.f", added.len());
        let added6_f = flags(b"added6.f", added6.len());
        Ok(PexMessage {
            added: added.into_iter().zip(added_f).collect(),
            dropped: list("dropped", 6)?.chunks_exact(6).filter_map(v4).collect(),
            added6: added6.into_iter().zip(added6_f).collect(),
            dropped6: list("dropped6", 18)?.chunks_exact(18).filter_map(v6).collect(),
        })
    }

    /// The bencoded payload. Every key is written, empty or not, as libtorrent does (so a message always
    /// has one of the address keys BEP 11 requires); flags are written for every added peer. Scope ids
    /// and flow labels of IPv6 addresses are not part of the compact form.
    pub fn encode(&self) -> Vec<u8> {
        let mut added = Vec::with_capacity(self.added.len() * 6);
        let mut added_f = Vec::with_capacity(self.added.len());
        for (a, f) in &self.added {
            put_v4(&mut added, a);
            added_f.push(f.0);
        }
        let mut added6 = Vec::with_capacity(self.added6.len() * 18);
        let mut added6_f = Vec::with_capacity(self.added6.len());
        for (a, f) in &self.added6 {
            put_v6(&mut added6, a);
            added6_f.push(f.0);
        }
        let mut dropped = Vec::with_capacity(self.dropped.len() * 6);
        self.dropped.iter().for_each(|a| put_v4(&mut dropped, a));
        let mut dropped6 = Vec::with_capacity(self.dropped6.len() * 18);
        self.dropped6.iter().for_each(|a| put_v6(&mut dropped6, a));
        let mut e = bencode::Encoder::new();
        e.dict(|d| {
            d.entry(b"added", |e| e.bytes(&added));
            d.entry(b"added.f", |e| e.bytes(&added_f));
            d.entry(b"added6", |e| e.bytes(&added6));
            d.entry(b"added6.f", |e| e.bytes(&added6_f));
            d.entry(b"dropped", |e| e.bytes(&dropped));
            d.entry(b"dropped6", |e| e.bytes(&dropped6));
        });
        e.finish()
    }
}

fn v4(c: &[u8]) -> Option<SocketAddrV4> {
    let ip: [u8; 4] = c.get(..4)?.try_into().ok()?;
    let port: [u8; 2] = c.get(4..6)?.try_into().ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip), u16::from_be_bytes(port)))
}

fn v6(c: &[u8]) -> Option<SocketAddrV6> {
    let ip: [u8; 16] = c.get(..16)?.try_into().ok()?;
    let port: [u8; 2] = c.get(16..18)?.try_into().ok()?;
    Some(SocketAddrV6::new(
        Ipv6Addr::from(ip),
        u16::from_be_bytes(port),
        0,
        0,
    ))
}

fn put_v4(out: &mut Vec<u8>, a: &SocketAddrV4) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn put_v6(out: &mut Vec<u8>, a: &SocketAddrV6) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes_both_ways() {
        let m = PexMessage {
            added: vec![(
                "10.0.0.1:6881".parse().unwrap(),
                PexFlags(PexFlags::SEED | PexFlags::UTP),
            )],
            dropped: vec!["192.168.1.2:80".parse().unwrap()],
            added6: vec![],
            dropped6: vec!["[::1]:258".parse().unwrap()],
        };
        let bytes = m.encode();
        let mut expected = b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x066:added60:8:added6.f0:\
                             7:dropped6:\xc0\xa8\x01\x02\x00\x508:dropped618:"
            .to_vec();
        expected.extend_from_slice(&[0; 15]);
        expected.extend_from_slice(&[1, 1, 2, b'e']);
        assert_eq!(bytes, expected);
        assert_eq!(PexMessage::parse(&bytes).unwrap(), m);
        let f = m.added[0].1;
        assert!(f.seed() && f.utp() && !f.prefers_encryption() && !f.holepunch() && !f.reachable());
    }

    #[test]
    fn missing_keys_are_empty_and_mismatched_flags_ignored() {
        let m = PexMessage::parse(b"d5:added6:\x7f\x00\x00\x01\x1a\xe17:added.f2:\x01\x02e").unwrap();
        assert_eq!(m.added, vec![("127.0.0.1:6881".parse().unwrap(), PexFlags(0))]);
        assert!(m.dropped.is_empty() && m.added6.is_empty() && m.dropped6.is_empty());
        assert_eq!(PexMessage::parse(b"de").unwrap(), PexMessage::default());
    }

    #[test]
    fn broken_lists_are_errors() {
        assert_eq!(
            PexMessage::parse(b"d5:added5:abcdee"),
            Err(WireError::CompactLength {
                key: "added",
                len: 5,
                unit: 6
            })
        );
        assert!(matches!(
            PexMessage::parse(b"d7:droppedi1ee"),
            Err(WireError::BadValue { key: "dropped", .. })
        ));
        let mut many = format!("d5:added{}:", 6 * (MAX_PEX_PEERS + 1)).into_bytes();
        many.extend_from_slice(&vec![1; 6 * (MAX_PEX_PEERS + 1)]);
        many.push(b'e');
        assert!(matches!(
            PexMessage::parse(&many),
            Err(WireError::TooMany { count: 1001, .. })
        ));
        assert!(PexMessage::parse(b"le").is_err());
    }
}
