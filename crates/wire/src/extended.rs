//! The BEP 10 extended handshake: which extension messages a peer speaks, and what it says about itself.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bencode::{DecodeOptions, Dict, Value};

use crate::WireError;

/// The extension message id of the extended handshake itself (BEP 10: "0 = handshake").
pub const HANDSHAKE_ID: u8 = 0;

/// Name of the metadata exchange extension (BEP 9) in `m`.
pub const UT_METADATA: &str = "ut_metadata";

/// Name of the peer exchange extension (BEP 11) in `m`.
pub const UT_PEX: &str = "ut_pex";

/// Most entries accepted in `m` (real clients send under a dozen).
pub const MAX_EXTENSIONS: usize = 128;

/// Bounds on the bencode of any extension message this crate reads.
pub(crate) const LIMITS: bencode::Limits = bencode::Limits {
    max_depth: 16,
    max_input: crate::message::DEFAULT_MAX_MESSAGE_LEN as usize,
    max_values: 8192,
    max_string: crate::message::DEFAULT_MAX_MESSAGE_LEN as usize,
};

/// Extension dictionaries are read leniently about key order (older clients do not sort them) but
/// bounded by [`LIMITS`].
pub(crate) fn options() -> DecodeOptions {
    DecodeOptions::lenient().with_limits(LIMITS)
}

/// The dictionary of an extension message, or why it is not one.
pub(crate) fn as_dict<'v, 'a>(what: &'static str, v: &'v Value<'a>) -> Result<&'v Dict<'a>, WireError> {
    v.as_dict().ok_or(WireError::NotADict {
        what,
        found: v.type_name(),
    })
}

/// An integer value that fits `T`, or `None` if absent, not an integer or out of range.
pub(crate) fn int<T: TryFrom<i64>>(d: &Dict<'_>, key: &[u8]) -> Option<T> {
    d.get(key)
        .and_then(Value::as_int)
        .and_then(|i| T::try_from(i).ok())
}

/// The payload of an extended handshake (`extended` message id 0): a bencoded dictionary.
///
/// Reading is lenient as BEP 10 asks ("Any unknown names should be ignored"): unknown keys are skipped,
/// and so is a known key holding the wrong type or an out-of-range value (a `p` of 0 or 70000, a `yourip`
/// of 5 bytes), since every item is optional. It is strict about what would make the message
/// unusable: the payload must be one bencoded dictionary, within [`MAX_EXTENSIONS`] `m` entries and the
/// crate's bencode limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedHandshake {
    /// Extension names to the ids the sender wants them sent with. An id of 0 means "disabled": BEP 10
    /// lets a later handshake switch one extension off by sending only that entry, so 0 entries are kept.
    pub m: BTreeMap<String, u8>,
    /// Client name and version (`v`), such as "libtorrent/2.0.8.0" or "Transmission 3.00".
    pub v: Option<String>,
    /// The sender's TCP listen port (`p`).
    pub p: Option<u16>,
    /// How many outstanding requests the sender queues without dropping (`reqq`).
    pub reqq: Option<u32>,
    /// The receiver's address as the sender sees it (`yourip`, 4 or 16 bytes).
    pub yourip: Option<IpAddr>,
    /// The sender's IPv4 address (`ipv4`).
    pub ipv4: Option<Ipv4Addr>,
    /// The sender's IPv6 address (`ipv6`).
    pub ipv6: Option<Ipv6Addr>,
    /// Size in bytes of the info dictionary (`metadata_size`, BEP 9). Not bounded here: a session checks
    /// it against what it is willing to download.
    pub metadata_size: Option<u32>,
    /// The sender only uploads (`upload_only`, BEP 21: a seed or a partial seed).
    pub upload_only: bool,
    /// The sender prefers encrypted connections (`e`, the message stream encryption convention; BEP 11's
    /// PEX flag 0x01 repeats it).
    pub prefers_encryption: bool,
}

impl ExtendedHandshake {
    /// Read an extended handshake payload (the bytes after the `extended` id 0).
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        const WHAT: &str = "extended handshake";
        let value = bencode::decode_with(payload, options())
            .map_err(|source| WireError::Bencode { what: WHAT, source })?;
        let d = as_dict(WHAT, &value)?;
        let mut h = ExtendedHandshake::default();
        if let Some(m) = d.get(b"m").and_then(Value::as_dict) {
            if m.len() > MAX_EXTENSIONS {
                return Err(WireError::TooMany {
                    what: WHAT,
                    key: "m",
                    count: m.len(),
                    max: MAX_EXTENSIONS,
                });
            }
            for (name, id) in m.iter() {
                let id = id.as_int().and_then(|i| u8::try_from(i).ok());
                if let (Ok(name), Some(id)) = (std::str::from_utf8(name), id) {
                    h.m.insert(name.to_string(), id);
                }
            }
        }
        h.v = d
            .get(b"v")
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        h.p = int::<u16>(d, b"p").filter(|&p| p != 0);
        h.reqq = int(d, b"reqq");
        h.yourip = d
            .get(b"yourip")
            .and_then(Value::as_bytes)
            .and_then(|b| match b.len() {
                4 => ipv4(b).map(IpAddr::V4),
                16 => ipv6(b).map(IpAddr::V6),
                _ => None,
            });
        h.ipv4 = d.get(b"ipv4").and_then(Value::as_bytes).and_then(ipv4);
        h.ipv6 = d.get(b"ipv6").and_then(Value::as_bytes).and_then(ipv6);
        h.metadata_size = int(d, b"metadata_size");
        h.upload_only = int::<i64>(d, b"upload_only").is_some_and(|i| i != 0);
        h.prefers_encryption = int::<i64>(d, b"e").is_some_and(|i| i != 0);
        Ok(h)
    }

    /// The bencoded payload (canonical: keys sorted; absent items, a false `upload_only` and a false `e`
    /// left out).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = bencode::Encoder::new();
        e.dict(|d| {
            if self.prefers_encryption {
                d.entry(b"e", |e| e.int(1));
            }
            d.entry(b"m", |e| {
                e.dict(|m| {
                    for (name, id) in &self.m {
                        m.entry(name.as_bytes(), |e| e.int(i64::from(*id)));
                    }
                })
            });
            if let Some(v) = &self.v {
                d.entry(b"v", |e| e.bytes(v.as_bytes()));
            }
            if let Some(p) = self.p {
                d.entry(b"p", |e| e.int(i64::from(p)));
            }
            if let Some(reqq) = self.reqq {
                d.entry(b"reqq", |e| e.int(i64::from(reqq)));
            }
            match self.yourip {
                Some(IpAddr::V4(ip)) => d.entry(b"yourip", |e| e.bytes(&ip.octets())),
                Some(IpAddr::V6(ip)) => d.entry(b"yourip", |e| e.bytes(&ip.octets())),
                None => {}
            }
            if let Some(ip) = self.ipv4 {
                d.entry(b"ipv4", |e| e.bytes(&ip.octets()));
            }
            if let Some(ip) = self.ipv6 {
                d.entry(b"ipv6", |e| e.bytes(&ip.octets()));
            }
            if let Some(size) = self.metadata_size {
                d.entry(b"metadata_size", |e| e.int(i64::from(size)));
            }
            if self.upload_only {
                d.entry(b"upload_only", |e| e.int(1));
            }
        });
        e.finish()
    }

    /// The id the sender wants extension `name` sent with, if it enabled it (a non-zero entry in `m`).
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }
}

fn ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

fn ipv6(b: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep10_example_parses() {
        // The example of BEP 10 ("µT_PEX" is 7 bytes in UTF-8; the BEP's text says `6:`).
        let raw = b"d1:md11:LT_metadatai1e7:\xc2\xb5T_PEXi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e";
        let h = ExtendedHandshake::parse(raw).unwrap();
        assert_eq!(h.m.get("LT_metadata"), Some(&1));
        assert_eq!(h.m.get("µT_PEX"), Some(&2));
        assert_eq!(h.p, Some(6881));
        assert_eq!(h.v.as_deref(), Some("µTorrent 1.2"));
        assert_eq!(h.encode(), raw);
    }

    #[test]
    fn encodes_exact_bytes_and_reads_back() {
        let mut h = ExtendedHandshake {
            v: Some("bitswarm 0.1.0".into()),
            p: Some(6881),
            reqq: Some(250),
            yourip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            metadata_size: Some(31235),
            upload_only: true,
            ..Default::default()
        };
        h.m.insert(UT_METADATA.into(), 3);
        h.m.insert(UT_PEX.into(), 1);
        let bytes = h.encode();
        assert_eq!(
            bytes,
            b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi250e\
              11:upload_onlyi1e1:v14:bitswarm 0.1.06:yourip4:\x0a\x00\x00\x01e"
                .to_vec()
        );
        assert_eq!(ExtendedHandshake::parse(&bytes).unwrap(), h);
        assert_eq!(h.extension_id(UT_PEX), Some(1));
        assert_eq!(
            ExtendedHandshake::parse(b"de").unwrap(),
            ExtendedHandshake::default()
        );
    }

    #[test]
    fn lenient_about_unknown_keys_and_odd_values() {
        let raw = b"d1:ei1e1:md6:ut_pexi0e3:badi300e3:negi-1e2:oki9ee1:pi0e4:reqqi-5e\
                    6:yourip5:abcde4:ipv44:\x7f\x00\x00\x0113:metadata_size3:xyz1:v2:\xff\xfe\
                    11:upload_onlyi0e7:unknownld1:xi1eeee";
        let h = ExtendedHandshake::parse(raw).unwrap();
        assert_eq!(h.m.len(), 2);
        assert_eq!(h.m.get("ut_pex"), Some(&0));
        assert_eq!(h.extension_id("ut_pex"), None);
        assert_eq!(h.extension_id("ok"), Some(9));
        assert_eq!((h.p, h.reqq, h.yourip, h.metadata_size), (None, None, None, None));
        assert_eq!(h.ipv4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(h.v.as_deref(), Some("\u{fffd}\u{fffd}"));
        assert!(!h.upload_only);
        assert!(h.prefers_encryption);
        let e = ExtendedHandshake {
            prefers_encryption: true,
            ..Default::default()
        };
        assert_eq!(e.encode(), b"d1:ei1e1:mdee");
    }

    #[test]
    fn not_a_dictionary_or_trailing_bytes_is_an_error() {
        assert!(matches!(
            ExtendedHandshake::parse(b"li1ee"),
            Err(WireError::NotADict { found: "list", .. })
        ));
        assert!(matches!(
            ExtendedHandshake::parse(b"dexx"),
            Err(WireError::Bencode { .. })
        ));
        assert!(ExtendedHandshake::parse(b"").is_err());
        let mut many = b"d1:md".to_vec();
        for i in 0..=MAX_EXTENSIONS {
            many.extend_from_slice(format!("4:x{i:03}i1e").as_bytes());
        }
        many.extend_from_slice(b"ee");
        assert!(matches!(
            ExtendedHandshake::parse(&many),
            Err(WireError::TooMany { count: 129, .. })
        ));
    }
}
