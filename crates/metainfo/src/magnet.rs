//! Magnet links: BEP 9 (`xt`, `dn`, `tr`, `x.pe`), BEP 52 v2 `urn:btmh:` hashes, web seeds (`ws`) and
//! BEP 53 select-only file indices (`so`).
//!
//! Parsing is bounded against hostile input (at most [`MAX_LEN`] bytes and [`MAX_PARAMS`] parameters) and
//! never panics. [`Magnet::to_uri`] writes a canonical form that [`Magnet::parse`] reads back unchanged.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use data_encoding::HEXLOWER;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::hash::{InfoHashV1, InfoHashV2, InfoHashes};

/// The longest magnet link [`Magnet::parse`] accepts, in bytes (64 KiB).
pub const MAX_LEN: usize = 64 * 1024;

/// The most `&`-separated parameters [`Magnet::parse`] accepts (empty segments are not counted).
pub const MAX_PARAMS: usize = 256;

/// How many characters of an offending value an error message quotes.
const SNIPPET_CHARS: usize = 100;

/// Everything but RFC 3986 unreserved characters is percent-encoded on output.
const VALUE_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The multihash prefix of a SHA2-256 digest: code 0x12, length 0x20.
const SHA256_MULTIHASH_PREFIX: &str = "1220";

/// A parsed magnet link.
///
/// A link needs at least one of [`v1`](Magnet::v1) and [`v2`](Magnet::v2) to be parseable; a value built
/// by hand without either still renders with [`Magnet::to_uri`], but that text will not parse back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Magnet {
    /// The v1 info-hash, from `xt=urn:btih:` (40 hex digits or 32 base32 characters, either case).
    pub v1: Option<InfoHashV1>,
    /// The v2 info-hash, from `xt=urn:btmh:1220<64 hex digits>` (a SHA2-256 multihash).
    pub v2: Option<InfoHashV2>,
    /// The display name, from `dn`.
    pub display_name: Option<String>,
    /// Tracker URLs, from every `tr`, in order of first appearance with duplicates removed. Empty values
    /// are skipped.
    pub trackers: Vec<String>,
    /// Peer addresses from `x.pe`, as `host:port` or `[ipv6]:port` text (the port is checked, 1–65535).
    pub peers: Vec<String>,
    /// Web seed URLs, from `ws`, in order. Empty values are skipped.
    pub web_seeds: Vec<String>,
    /// BEP 53 select-only file indices, from `so` (e.g. `0,2,4-6`), as inclusive ranges in order.
    pub select_only: Vec<RangeInclusive<u32>>,
}

/// Why a magnet link could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The input is longer than [`MAX_LEN`].
    #[error("magnet: link is {len} bytes long, more than the limit of {max}")]
    TooLong {
        /// The input's length in bytes.
        len: usize,
        /// The limit, [`MAX_LEN`].
        max: usize,
    },
    /// The input has more than [`MAX_PARAMS`] parameters.
    #[error("magnet: link has more than {max} parameters")]
    TooManyParams {
        /// The limit, [`MAX_PARAMS`].
        max: usize,
    },
    /// The input does not start with `magnet:?`.
    #[error("magnet: link does not start with \"magnet:?\": {got:?}")]
    NotMagnet {
        /// The start of the input.
        got: String,
    },
    /// A value has a `%` not followed by two hex digits.
    #[error("magnet: parameter {param:?}: {value:?} has invalid percent-encoding")]
    BadPercentEncoding {
        /// The parameter, as written.
        param: String,
        /// The raw (still encoded) value.
        value: String,
    },
    /// A value is not UTF-8 once percent-decoded.
    #[error("magnet: parameter {param:?}: {value:?} is not UTF-8 after percent-decoding")]
    NotUtf8 {
        /// The parameter, as written.
        param: String,
        /// The raw (still encoded) value.
        value: String,
    },
    /// A `urn:btih:` value is not a v1 info-hash.
    #[error("magnet: parameter \"xt\": {value:?} is not a 40-hex or 32-base32 info-hash")]
    BadBtih {
        /// The decoded `xt` value.
        value: String,
    },
    /// A `urn:btmh:` value is not a well-formed SHA2-256 multihash.
    #[error("magnet: parameter \"xt\": {value:?} is not a \"1220\"-prefixed 64-hex SHA2-256 multihash")]
    BadBtmh {
        /// The decoded `xt` value.
        value: String,
    },
    /// A `urn:btmh:` value uses a multihash other than SHA2-256 (`0x12 0x20`).
    #[error("magnet: parameter \"xt\": {value:?} has multihash prefix {prefix:?}, only \"1220\" (SHA2-256) is supported")]
    UnsupportedMultihash {
        /// The decoded `xt` value.
        value: String,
        /// Its first four characters (multihash code and length, in hex).
        prefix: String,
    },
    /// Two `urn:btih:` values name different info-hashes.
    #[error("magnet: parameter \"xt\": two different v1 info-hashes, {first} and {second}")]
    ConflictingV1 {
        /// The first v1 hash seen.
        first: InfoHashV1,
        /// The conflicting one.
        second: InfoHashV1,
    },
    /// Two `urn:btmh:` values name different info-hashes.
    #[error("magnet: parameter \"xt\": two different v2 info-hashes, {first} and {second}")]
    ConflictingV2 {
        /// The first v2 hash seen.
        first: InfoHashV2,
        /// The conflicting one.
        second: InfoHashV2,
    },
    /// No `xt` gives a `urn:btih:` or `urn:btmh:` hash.
    #[error("magnet: parameter \"xt\": missing, no urn:btih: or urn:btmh: info-hash in the link")]
    MissingInfoHash,
    /// An `x.pe` value is not `host:port` or `[ipv6]:port`.
    #[error("magnet: parameter \"x.pe\": {value:?} is not host:port or [ipv6]:port with a port of 1-65535")]
    BadPeer {
        /// The decoded value.
        value: String,
    },
    /// An `so` value is not a comma-separated list of `N` or `N-M` with `N <= M`.
    #[error("magnet: parameter \"so\": {value:?} is not a comma-separated list of N or N-M file indices with N <= M")]
    BadSelectOnly {
        /// The decoded value.
        value: String,
    },
}

/// At most [`SNIPPET_CHARS`] characters of `s`, for error messages.
fn snippet(s: &str) -> String {
    s.chars().take(SNIPPET_CHARS).collect()
}

/// The known parameters, after stripping a numeric `.N` suffix.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Xt,
    Dn,
    Tr,
    Ws,
    Peer,
    So,
}

impl Key {
    /// Recognise `key`, also in its indexed form (`xt.1`, `tr.2`, `x.pe.1`), ASCII case-insensitively.
    fn recognise(key: &str) -> Option<Key> {
        let base = match key.rsplit_once('.') {
            Some((base, idx)) if !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => key,
        };
        [
            ("xt", Key::Xt),
            ("dn", Key::Dn),
            ("tr", Key::Tr),
            ("ws", Key::Ws),
            ("x.pe", Key::Peer),
            ("so", Key::So),
        ]
        .into_iter()
        .find(|(name, _)| base.eq_ignore_ascii_case(name))
        .map(|(_, k)| k)
    }
}

/// Percent-decode `raw` (after turning `+` into a space when `plus_is_space`), rejecting a `%` not followed
/// by two hex digits and a result that is not UTF-8.
fn decode(param: &str, raw: &str, plus_is_space: bool) -> Result<String, MagnetError> {
    let well_formed = raw.split('%').skip(1).all(|after| {
        let mut b = after.bytes();
        matches!((b.next(), b.next()), (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
    });
    if !well_formed {
        return Err(MagnetError::BadPercentEncoding {
            param: snippet(param),
            value: snippet(raw),
        });
    }
    let spaced;
    let src = if plus_is_space && raw.contains('+') {
        spaced = raw.replace('+', " ");
        spaced.as_str()
    } else {
        raw
    };
    percent_decode_str(src)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| MagnetError::NotUtf8 {
            param: snippet(param),
            value: snippet(raw),
        })
}

/// Strip an ASCII case-insensitive `prefix` from `s`.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Parse a `urn:btmh:` payload: `1220` followed by 64 hex digits.
fn parse_btmh(value: &str, payload: &str) -> Result<InfoHashV2, MagnetError> {
    let bad = || MagnetError::BadBtmh {
        value: snippet(value),
    };
    let (Some(prefix), Some(digest)) = (payload.get(..4), payload.get(4..)) else {
        return Err(bad());
    };
    if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    if !prefix.eq_ignore_ascii_case(SHA256_MULTIHASH_PREFIX) {
        return Err(MagnetError::UnsupportedMultihash {
            value: snippet(value),
            prefix: prefix.to_owned(),
        });
    }
    InfoHashV2::from_hex(digest).map_err(|_| bad())
}

/// Whether `s` is `host:port` or `[ipv6]:port`, with a port of 1–65535.
fn is_valid_peer(s: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return false;
        };
        let Some(port) = after.strip_prefix(':') else {
            return false;
        };
        (host.parse::<std::net::Ipv6Addr>().is_ok(), port)
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return false;
        };
        let host_ok = !host.is_empty()
            && !host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "[]:/@?#".contains(c));
        (host_ok, port)
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    host_ok && port_ok
}

/// A file index: ASCII digits only, fitting in a `u32`.
fn parse_index(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a BEP 53 `so` list such as `0,2,4-6`.
fn parse_select_only(value: &str) -> Option<Vec<RangeInclusive<u32>>> {
    value
        .split(',')
        .map(|item| {
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            let (lo, hi) = (parse_index(lo)?, parse_index(hi)?);
            (lo <= hi).then_some(lo..=hi)
        })
        .collect()
}

impl Magnet {
    /// Parse a magnet link.
    ///
    /// The scheme is matched case-insensitively; `xt`, `dn`, `tr`, `ws`, `x.pe` and `so` are read, also in
    /// indexed form (`xt.1`, `tr.2`, ...); other parameters and `xt` URNs other than `urn:btih:` and
    /// `urn:btmh:` are ignored. At most one v1 and one v2 hash may be given (identical repeats are fine).
    /// Only the first `dn` is kept; `so` lists accumulate.
    ///
    /// # Errors
    ///
    /// A [`MagnetError`] naming the offending parameter: the link is too long or has too many parameters,
    /// lacks the `magnet:?` prefix or a btih/btmh hash, has conflicting hashes, or has a malformed value.
    pub fn parse(s: &str) -> Result<Magnet, MagnetError> {
        if s.len() > MAX_LEN {
            return Err(MagnetError::TooLong {
                len: s.len(),
                max: MAX_LEN,
            });
        }
        let query = strip_prefix_ignore_case(s, "magnet:?").ok_or_else(|| MagnetError::NotMagnet {
            got: s.chars().take(20).collect(),
        })?;

        let mut m = Magnet::default();
        for (n, pair) in query.split('&').filter(|p| !p.is_empty()).enumerate() {
            if n >= MAX_PARAMS {
                return Err(MagnetError::TooManyParams { max: MAX_PARAMS });
            }
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(k) = Key::recognise(key) else {
                continue;
            };
            let value = decode(key, raw, k == Key::Dn)?;
            match k {
                Key::Xt => m.add_xt(&value)?,
                Key::Dn => {
                    if m.display_name.is_none() {
                        m.display_name = Some(value);
                    }
                }
                Key::Tr => {
                    if !value.is_empty() && !m.trackers.contains(&value) {
                        m.trackers.push(value);
                    }
                }
                Key::Ws => {
                    if !value.is_empty() {
                        m.web_seeds.push(value);
                    }
                }
                Key::Peer => {
                    if !is_valid_peer(&value) {
                        return Err(MagnetError::BadPeer {
                            value: snippet(&value),
                        });
                    }
                    m.peers.push(value);
                }
                Key::So => {
                    let ranges = parse_select_only(&value).ok_or_else(|| MagnetError::BadSelectOnly {
                        value: snippet(&value),
                    })?;
                    m.select_only.extend(ranges);
                }
            }
        }
        if m.v1.is_none() && m.v2.is_none() {
            return Err(MagnetError::MissingInfoHash);
        }
        Ok(m)
    }

    /// Record one decoded `xt` value.
    fn add_xt(&mut self, value: &str) -> Result<(), MagnetError> {
        let Some(urn) = strip_prefix_ignore_case(value, "urn:") else {
            return Ok(());
        };
        if let Some(text) = strip_prefix_ignore_case(urn, "btih:") {
            let h = InfoHashV1::from_text(text).map_err(|_| MagnetError::BadBtih {
                value: snippet(value),
            })?;
            match self.v1 {
                Some(first) if first != h => return Err(MagnetError::ConflictingV1 { first, second: h }),
                _ => self.v1 = Some(h),
            }
        } else if let Some(payload) = strip_prefix_ignore_case(urn, "btmh:") {
            let h = parse_btmh(value, payload)?;
            match self.v2 {
                Some(first) if first != h => return Err(MagnetError::ConflictingV2 { first, second: h }),
                _ => self.v2 = Some(h),
            }
        }
        Ok(())
    }

    /// The canonical link: `xt=urn:btih:` (lower-case hex), `xt=urn:btmh:1220...`, `dn`, every `tr`, every
    /// `ws`, every `x.pe`, then `so`. Values are percent-encoded (all but RFC 3986 unreserved characters), so
    /// `Magnet::parse(&m.to_uri()) == Ok(m)` for any `m` with a hash, distinct non-empty trackers, non-empty
    /// web seeds and valid peers.
    #[must_use]
    pub fn to_uri(&self) -> String {
        let mut params: Vec<String> = Vec::new();
        if let Some(h) = &self.v1 {
            params.push(format!("xt=urn:btih:{}", h.to_hex()));
        }
        if let Some(h) = &self.v2 {
            params.push(format!(
                "xt=urn:btmh:{SHA256_MULTIHASH_PREFIX}{}",
                HEXLOWER.encode(&h.0)
            ));
        }
        let enc = |v: &str| utf8_percent_encode(v, VALUE_ENCODE).to_string();
        if let Some(dn) = &self.display_name {
            params.push(format!("dn={}", enc(dn)));
        }
        params.extend(self.trackers.iter().map(|t| format!("tr={}", enc(t))));
        params.extend(self.web_seeds.iter().map(|w| format!("ws={}", enc(w))));
        params.extend(self.peers.iter().map(|p| format!("x.pe={}", enc(p))));
        if !self.select_only.is_empty() {
            let list: Vec<String> = self
                .select_only
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect();
            params.push(format!("so={}", list.join(",")));
        }
        format!("magnet:?{}", params.join("&"))
    }

    /// The link's info-hashes.
    #[must_use]
    pub fn info_hashes(&self) -> InfoHashes {
        InfoHashes {
            v1: self.v1,
            v2: self.v2,
        }
    }
}

impl FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Magnet::parse(s)
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX1: &str = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
    const HEX2: &str = "631a31dd0a46257d5078c0dee4e66e26f73e42ac";
    const V2HEX: &str = "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb";

    fn v1(hex: &str) -> InfoHashV1 {
        InfoHashV1::from_text(hex).unwrap()
    }
    fn v2(hex: &str) -> InfoHashV2 {
        InfoHashV2::from_hex(hex).unwrap()
    }
    fn err(s: &str) -> MagnetError {
        Magnet::parse(s).unwrap_err()
    }

    #[test]
    fn hex_btih() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX1}")).unwrap();
        assert_eq!(
            m,
            Magnet {
                v1: Some(v1(HEX1)),
                ..Magnet::default()
            }
        );
        let upper = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", HEX1.to_uppercase())).unwrap();
        assert_eq!(upper.v1, Some(v1(HEX1)));
    }

    #[test]
    fn base32_btih_either_case() {
        let h = v1(HEX1);
        let b32 = h.to_base32();
        for text in [b32.clone(), b32.to_lowercase()] {
            let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{text}")).unwrap();
            assert_eq!(m.v1, Some(h));
        }
        // Canonical output is lower-case hex.
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}")).unwrap();
        assert_eq!(m.to_uri(), format!("magnet:?xt=urn:btih:{HEX1}"));
    }

    #[test]
    fn btmh() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{V2HEX}")).unwrap();
        assert_eq!(m.v1, None);
        assert_eq!(m.v2, Some(v2(V2HEX)));
        assert_eq!(
            m.info_hashes(),
            InfoHashes {
                v1: None,
                v2: Some(v2(V2HEX))
            }
        );
        assert_eq!(m.info_hashes().swarm_hash(), Some(v2(V2HEX).truncated()));
        // Upper-case hex works too.
        let up = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{}", V2HEX.to_uppercase())).unwrap();
        assert_eq!(up.v2, m.v2);
    }

    #[test]
    fn hybrid_real_world() {
        let s = format!("magnet:?xt=urn:btih:{HEX2}&xt=urn:btmh:1220{V2HEX}&dn=bittorrent-v1-v2-hybrid-test");
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.v1, Some(v1(HEX2)));
        assert_eq!(m.v2, Some(v2(V2HEX)));
        assert_eq!(m.display_name.as_deref(), Some("bittorrent-v1-v2-hybrid-test"));
        assert_eq!(
            m.info_hashes(),
            InfoHashes {
                v1: Some(v1(HEX2)),
                v2: Some(v2(V2HEX))
            }
        );
        assert_eq!(m.to_uri(), s);
        // Order of xt in the input doesn't matter; output is canonical.
        let swapped =
            format!("magnet:?dn=bittorrent-v1-v2-hybrid-test&xt=urn:btmh:1220{V2HEX}&xt=urn:btih:{HEX2}");
        assert_eq!(Magnet::parse(&swapped).unwrap().to_uri(), s);
    }

    #[test]
    fn typical_real_world_link() {
        let s = format!(
            "magnet:?xt=urn:btih:{HEX1}&dn=Big+Buck+Bunny&tr=udp%3A%2F%2Fexplodie.org%3A6969\
             &tr=udp%3A%2F%2Ftracker.coppersurfer.tk%3A6969&tr=udp%3A%2F%2Ftracker.empire-js.us%3A1337\
             &tr=udp%3A%2F%2Ftracker.leechers-paradise.org%3A6969&tr=udp%3A%2F%2Ftracker.opentrackr.org%3A1337\
             &tr=wss%3A%2F%2Ftracker.btorrent.xyz&tr=wss%3A%2F%2Ftracker.fastcast.nz\
             &tr=wss%3A%2F%2Ftracker.openwebtorrent.com&ws=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2F\
             &xs=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2Fbig-buck-bunny.torrent"
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.v1, Some(v1(HEX1)));
        assert_eq!(m.display_name.as_deref(), Some("Big Buck Bunny"));
        assert_eq!(m.trackers.len(), 8);
        assert_eq!(m.trackers[0], "udp://explodie.org:6969");
        assert_eq!(m.trackers[7], "wss://tracker.openwebtorrent.com");
        assert_eq!(m.web_seeds, vec!["https://webtorrent.io/torrents/".to_owned()]);
        assert!(m.peers.is_empty() && m.select_only.is_empty());
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
    }

    #[test]
    fn bep53_example() {
        let s = format!("magnet:?xt=urn:btih:{HEX1}&dn=NAME&tr=TRACKER&so=0,2,4,6-8");
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.display_name.as_deref(), Some("NAME"));
        assert_eq!(m.trackers, vec!["TRACKER".to_owned()]);
        assert_eq!(m.select_only, vec![0..=0, 2..=2, 4..=4, 6..=8]);
        assert_eq!(m.to_uri(), s);
    }

    #[test]
    fn several_trackers_in_order_deduplicated() {
        let s = format!(
            "magnet:?xt=urn:btih:{HEX1}&tr=http%3A%2F%2Fb%2Fannounce&tr=udp://a:80&tr=http%3A%2F%2Fb%2Fannounce\
             &tr=&tr=udp%3A%2F%2Fa%3A80&tr=udp://c:1"
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.trackers, vec!["http://b/announce", "udp://a:80", "udp://c:1"]);
    }

    #[test]
    fn peers() {
        let s = format!(
            "magnet:?xt=urn:btih:{HEX1}&x.pe=peer.example.com:6881&x.pe=10.0.0.1%3A51413\
             &x.pe=[2001:db8::1]:6881&x.pe=%5B%3A%3A1%5D%3A1"
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(
            m.peers,
            vec![
                "peer.example.com:6881",
                "10.0.0.1:51413",
                "[2001:db8::1]:6881",
                "[::1]:1"
            ]
        );
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
    }

    #[test]
    fn web_seeds() {
        let s =
            format!("magnet:?xt=urn:btih:{HEX1}&ws=https%3A%2F%2Fa.example%2Fx&ws=http://b.example/y%20z");
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.web_seeds, vec!["https://a.example/x", "http://b.example/y z"]);
    }

    #[test]
    fn select_only_ranges() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{HEX1}&so=4-6,0,2,7-7&so=4294967295"
        ))
        .unwrap();
        assert_eq!(
            m.select_only,
            vec![4..=6, 0..=0, 2..=2, 7..=7, u32::MAX..=u32::MAX]
        );
        assert!(m.to_uri().ends_with("&so=4-6,0,2,7,4294967295"));
    }

    #[test]
    fn indexed_keys() {
        let s = format!(
            "magnet:?xt.1=urn:btih:{HEX1}&xt.2=urn:btmh:1220{V2HEX}&dn.1=name&tr.1=udp://a:1&tr.2=udp://b:2\
             &ws.1=http://w/&x.pe.1=h:1&so.1=3"
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.v1, Some(v1(HEX1)));
        assert_eq!(m.v2, Some(v2(V2HEX)));
        assert_eq!(m.display_name.as_deref(), Some("name"));
        assert_eq!(m.trackers, vec!["udp://a:1", "udp://b:2"]);
        assert_eq!(m.web_seeds, vec!["http://w/"]);
        assert_eq!(m.peers, vec!["h:1"]);
        assert_eq!(m.select_only, vec![3..=3]);
        // Not an index: ignored as unknown.
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX1}&tr.x=udp://a:1&trx=1")).unwrap();
        assert!(m.trackers.is_empty());
    }

    #[test]
    fn scheme_case_unknowns_and_decoding() {
        let s = format!(
            "MAGNET:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C&xt=URN:BTIH:{HEX1}&kt=a+b&xl=10&&\
             &dn=a+b%2Bc%20d%26e%3D%C3%A9&unknown"
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.v1, Some(v1(HEX1)));
        assert_eq!(m.display_name.as_deref(), Some("a b+c d&e=é"));
        assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
        // `+` is a space only in dn.
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX1}&tr=http://x/a+b")).unwrap();
        assert_eq!(m.trackers, vec!["http://x/a+b"]);
        // Percent-encoded `xt` is accepted.
        let m = Magnet::parse(&format!("magnet:?xt=urn%3Abtih%3A{HEX1}")).unwrap();
        assert_eq!(m.v1, Some(v1(HEX1)));
        // Only the first dn is kept.
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX1}&dn=one&dn=two")).unwrap();
        assert_eq!(m.display_name.as_deref(), Some("one"));
    }

    #[test]
    fn canonical_order_and_display() {
        let m = Magnet {
            v1: Some(v1(HEX1)),
            v2: Some(v2(V2HEX)),
            display_name: Some("My file ü".into()),
            trackers: vec!["udp://t:1/announce".into()],
            peers: vec!["[::1]:2".into()],
            web_seeds: vec!["http://w/".into()],
            select_only: vec![1..=1, 3..=5],
        };
        let want = format!(
            "magnet:?xt=urn:btih:{HEX1}&xt=urn:btmh:1220{V2HEX}&dn=My%20file%20%C3%BC\
             &tr=udp%3A%2F%2Ft%3A1%2Fannounce&ws=http%3A%2F%2Fw%2F&x.pe=%5B%3A%3A1%5D%3A2&so=1,3-5"
        );
        assert_eq!(m.to_uri(), want);
        assert_eq!(m.to_string(), want);
        assert_eq!(want.parse::<Magnet>().unwrap(), m);
    }

    #[test]
    fn identical_repeats_are_fine() {
        let s = format!(
            "magnet:?xt=urn:btih:{HEX1}&xt=urn:btih:{}&xt=urn:btih:{}&xt=urn:btmh:1220{V2HEX}&xt=urn:btmh:1220{V2HEX}",
            HEX1.to_uppercase(),
            v1(HEX1).to_base32()
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(
            m.info_hashes(),
            InfoHashes {
                v1: Some(v1(HEX1)),
                v2: Some(v2(V2HEX))
            }
        );
    }

    #[test]
    fn error_not_magnet() {
        for s in [
            "",
            "magnet:",
            "magnet:xt=urn:btih:00",
            "http://x/?xt=1",
            "magnét:?xt",
        ] {
            assert!(matches!(err(s), MagnetError::NotMagnet { .. }), "{s}");
        }
    }

    #[test]
    fn error_missing_info_hash() {
        assert_eq!(err("magnet:?"), MagnetError::MissingInfoHash);
        assert_eq!(err("magnet:?dn=x&tr=udp://a:1"), MagnetError::MissingInfoHash);
        assert_eq!(
            err("magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C"),
            MagnetError::MissingInfoHash
        );
        assert_eq!(err("magnet:?xt"), MagnetError::MissingInfoHash);
    }

    #[test]
    fn error_bad_btih() {
        let e = err("magnet:?xt=urn:btih:zz");
        assert_eq!(
            e,
            MagnetError::BadBtih {
                value: "urn:btih:zz".into()
            }
        );
        assert_eq!(
            e.to_string(),
            r#"magnet: parameter "xt": "urn:btih:zz" is not a 40-hex or 32-base32 info-hash"#
        );
        assert!(matches!(
            err(&format!("magnet:?xt=urn:btih:{}", "g".repeat(40))),
            MagnetError::BadBtih { .. }
        ));
        assert!(matches!(
            err(&format!("magnet:?xt=urn:btih:{}", "1".repeat(32))),
            MagnetError::BadBtih { .. }
        ));
        assert!(matches!(
            err(&format!("magnet:?xt=urn:btih:{HEX1}0")),
            MagnetError::BadBtih { .. }
        ));
    }

    #[test]
    fn error_bad_btmh() {
        for payload in [
            "",
            "12",
            "1220",
            &format!("1220{}", &V2HEX[2..]),
            &format!("1220{V2HEX}00"),
            "zz20",
        ] {
            let e = err(&format!("magnet:?xt=urn:btmh:{payload}"));
            assert!(matches!(e, MagnetError::BadBtmh { .. }), "{payload}: {e}");
        }
        let e = err(&format!("magnet:?xt=urn:btmh:1120{}", &V2HEX[..40]));
        assert_eq!(
            e,
            MagnetError::UnsupportedMultihash {
                value: format!("urn:btmh:1120{}", &V2HEX[..40]),
                prefix: "1120".into()
            }
        );
        assert!(
            e.to_string()
                .starts_with(r#"magnet: parameter "xt": "urn:btmh:1120"#),
            "{e}"
        );
    }

    #[test]
    fn error_conflicting_hashes() {
        let e = err(&format!("magnet:?xt=urn:btih:{HEX1}&xt.2=urn:btih:{HEX2}"));
        assert_eq!(
            e,
            MagnetError::ConflictingV1 {
                first: v1(HEX1),
                second: v1(HEX2)
            }
        );
        assert!(e.to_string().contains(HEX1) && e.to_string().contains(HEX2));
        let other = "00".repeat(32);
        let e = err(&format!(
            "magnet:?xt=urn:btmh:1220{V2HEX}&xt=urn:btmh:1220{other}"
        ));
        assert_eq!(
            e,
            MagnetError::ConflictingV2 {
                first: v2(V2HEX),
                second: v2(&other)
            }
        );
    }

    #[test]
    fn error_percent_encoding_and_utf8() {
        for bad in ["%", "%4", "%zz", "a%2", "ok%20%g0"] {
            let e = err(&format!("magnet:?xt=urn:btih:{HEX1}&dn={bad}"));
            assert_eq!(
                e,
                MagnetError::BadPercentEncoding {
                    param: "dn".into(),
                    value: bad.into()
                }
            );
        }
        let e = err(&format!("magnet:?xt=urn:btih:{HEX1}&tr.3=%FF%FE"));
        assert_eq!(
            e,
            MagnetError::NotUtf8 {
                param: "tr.3".into(),
                value: "%FF%FE".into()
            }
        );
        assert_eq!(
            e.to_string(),
            r#"magnet: parameter "tr.3": "%FF%FE" is not UTF-8 after percent-decoding"#
        );
        assert!(matches!(
            err("magnet:?xt=urn:btih:%X0"),
            MagnetError::BadPercentEncoding { .. }
        ));
        // Unknown parameters are not decoded, so their encoding doesn't matter.
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX1}&foo=%zz%FF")).is_ok());
    }

    #[test]
    fn error_bad_peer() {
        for bad in [
            "",
            "host",
            "host:",
            ":6881",
            "host:0",
            "host:65536",
            "host:+1",
            "host:123456",
            "2001:db8::1:6881",
            "[2001:db8::1]",
            "[2001:db8::1]6881",
            "[not-v6]:1",
            "[]:1",
            "ho st:1",
            "a/b:1",
        ] {
            let e = err(&format!(
                "magnet:?xt=urn:btih:{HEX1}&x.pe={}",
                utf8_percent_encode(bad, VALUE_ENCODE)
            ));
            assert_eq!(e, MagnetError::BadPeer { value: bad.into() }, "{bad}");
        }
        assert!(err(&format!("magnet:?xt=urn:btih:{HEX1}&x.pe=h"))
            .to_string()
            .contains(r#"parameter "x.pe""#));
    }

    #[test]
    fn error_bad_select_only() {
        for bad in [
            "",
            "5-3",
            "a",
            "1-",
            "-1",
            "1,,2",
            "1, 2",
            "+1",
            "1-2-3",
            "4294967296",
            "1,",
        ] {
            let e = err(&format!("magnet:?xt=urn:btih:{HEX1}&so={bad}"));
            assert_eq!(e, MagnetError::BadSelectOnly { value: bad.into() }, "{bad}");
        }
        assert!(err(&format!("magnet:?xt=urn:btih:{HEX1}&so=2-1"))
            .to_string()
            .contains(r#"parameter "so""#));
    }

    #[test]
    fn error_limits() {
        let base = format!("magnet:?xt=urn:btih:{HEX1}");
        let long = format!("{base}&dn={}", "a".repeat(MAX_LEN));
        assert_eq!(
            err(&long),
            MagnetError::TooLong {
                len: long.len(),
                max: MAX_LEN
            }
        );
        let just_fits = format!("{base}&dn={}", "a".repeat(MAX_LEN - base.len() - 4));
        assert_eq!(just_fits.len(), MAX_LEN);
        assert!(Magnet::parse(&just_fits).is_ok());

        let many = format!("{base}{}", "&x=1".repeat(MAX_PARAMS));
        assert_eq!(err(&many), MagnetError::TooManyParams { max: MAX_PARAMS });
        let enough = format!("{base}{}", "&x=1".repeat(MAX_PARAMS - 1));
        assert!(Magnet::parse(&enough).is_ok());
        // Empty segments don't count.
        let empties = format!("{base}{}", "&".repeat(1000));
        assert!(Magnet::parse(&empties).is_ok());
        // Error messages quote a bounded snippet.
        let e = err(&format!("magnet:?xt=urn:btih:{}", "z".repeat(5000)));
        assert!(e.to_string().len() < 300);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        for s in [
            "magnet:?=",
            "magnet:?=&=&=",
            "magnet:?xt=urn:",
            "magnet:?xt=urn:btih:",
            "magnet:?xt=urn:btmh:",
            "magnet:?xt=urn:btmh:é",
            "magnet:?xt=urn:btih:ééééééééééééééééééééé",
            "magnet:?x.pe=[",
            "magnet:?x.pe=]:",
            "magnet:?so=-",
            "magnet:?so=,",
            "magné",
            "é",
        ] {
            let _ = Magnet::parse(s);
        }
    }

    fn peer_strategy() -> impl Strategy<Value = String> {
        let port = 1u16..=u16::MAX;
        prop_oneof![
            ("[a-z0-9][a-z0-9.-]{0,20}", port.clone()).prop_map(|(h, p)| format!("{h}:{p}")),
            (any::<[u8; 4]>(), port.clone())
                .prop_map(|(ip, p)| format!("{}:{p}", std::net::Ipv4Addr::from(ip))),
            (any::<[u8; 16]>(), port).prop_map(|(ip, p)| format!("[{}]:{p}", std::net::Ipv6Addr::from(ip))),
        ]
    }

    fn magnet_strategy() -> impl Strategy<Value = Magnet> {
        let hashes = (
            any::<Option<[u8; 20]>>(),
            any::<Option<[u8; 32]>>(),
            any::<[u8; 20]>(),
        )
            .prop_map(|(a, b, fallback)| {
                let v1 = a.map(InfoHashV1);
                let v2 = b.map(InfoHashV2);
                // At least one hash is required.
                if v1.is_none() && v2.is_none() {
                    (Some(InfoHashV1(fallback)), None)
                } else {
                    (v1, v2)
                }
            });
        let url = "\\PC{1,40}";
        (
            hashes,
            proptest::option::of("\\PC{0,40}"),
            proptest::collection::vec(url, 0..6),
            proptest::collection::vec(peer_strategy(), 0..4),
            proptest::collection::vec(url, 0..4),
            proptest::collection::vec((any::<u32>(), 0u32..100), 0..6),
        )
            .prop_map(|((v1, v2), display_name, trackers, peers, web_seeds, so)| {
                let mut unique: Vec<String> = Vec::new();
                for t in trackers {
                    if !unique.contains(&t) {
                        unique.push(t);
                    }
                }
                Magnet {
                    v1,
                    v2,
                    display_name,
                    trackers: unique,
                    peers,
                    web_seeds,
                    select_only: so
                        .into_iter()
                        .map(|(lo, len)| lo..=lo.saturating_add(len))
                        .collect(),
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip(m in magnet_strategy()) {
            let uri = m.to_uri();
            prop_assert!(uri.is_ascii());
            prop_assert_eq!(Magnet::parse(&uri), Ok(m.clone()));
            prop_assert_eq!(uri.parse::<Magnet>(), Ok(m));
        }

        #[test]
        fn parse_never_panics(s in "magnet:\\?[a-z.=&%0-9A-F:+\\[\\]-]{0,200}") {
            let _ = Magnet::parse(&s);
        }

        #[test]
        fn parse_never_panics_any(s in "\\PC{0,100}") {
            let _ = Magnet::parse(&s);
        }
    }
}
