//! Announce and scrape query strings: strict percent-decoding, every BEP 3 parameter, BEP 7 `ipv4`/`ipv6`,
//! BEP 23 `compact`, BEP 48 multi-hash scrapes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use metainfo::InfoHashV1;
use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::common::clamp_numwant;
use crate::{Event, PeerId};

/// The longest query string accepted (8 KiB, what common HTTP servers allow for a whole request line).
pub const MAX_QUERY_LEN: usize = 8192;

/// The most `info_hash` parameters one HTTP scrape may carry (100 fit well within [`MAX_QUERY_LEN`]).
pub const MAX_SCRAPE_HASHES: usize = 100;

/// The longest `key` accepted, decoded (clients send 4 to 8 bytes).
pub const MAX_KEY_LEN: usize = 64;

/// The longest `trackerid` accepted, decoded.
pub const MAX_TRACKER_ID_LEN: usize = 256;

/// Bytes left unescaped when encoding: RFC 3986 unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An announce (BEP 3), as a tracker receives it and a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// `info_hash`: the swarm (20 bytes, percent-encoded binary).
    pub info_hash: InfoHashV1,
    /// `peer_id`: the announcing peer (20 bytes, percent-encoded binary).
    pub peer_id: PeerId,
    /// `port`: where the peer listens.
    pub port: u16,
    /// `uploaded`: bytes uploaded so far.
    pub uploaded: u64,
    /// `downloaded`: bytes downloaded so far.
    pub downloaded: u64,
    /// `left`: bytes still missing.
    pub left: u64,
    /// `event`: absent, empty or `empty` is [`Event::None`].
    pub event: Event,
    /// `compact` (BEP 23): the client prefers compact peer lists. Absent means yes: BEP 23 suggests trackers
    /// answer compactly by default.
    pub compact: bool,
    /// `no_peer_id`: the client does not need peer ids in a dictionary peer list.
    pub no_peer_id: bool,
    /// `numwant`: peers wanted, clamped to [`crate::MAX_NUMWANT`]; absent or negative is `None` (the
    /// tracker's default).
    pub numwant: Option<u32>,
    /// `key`: a random value the client keeps per torrent, so the tracker can recognise it on another address
    /// (BEP 7); at most [`MAX_KEY_LEN`] bytes.
    pub key: Option<Vec<u8>>,
    /// `trackerid`: echoed from an earlier response's `tracker id`; at most [`MAX_TRACKER_ID_LEN`] bytes.
    pub trackerid: Option<Vec<u8>>,
    /// `ip`: the address the client claims. BEP 3 also allows a DNS name, which is ignored (`None`), as is
    /// anything else that is not an IP address: a tracker must not trust this field anyway.
    pub ip: Option<IpAddr>,
    /// `ipv4` (BEP 7): an IPv4 address or endpoint; an address alone takes the `port` parameter's port.
    /// Unparsable values are ignored (trackers MAY ignore the field).
    pub ipv4: Option<SocketAddrV4>,
    /// `ipv6` (BEP 7): an IPv6 address or `[address]:port` endpoint, as for `ipv4`.
    pub ipv6: Option<SocketAddrV6>,
}

/// A scrape (BEP 48): zero or more `info_hash` parameters; zero asks for every swarm, which trackers may
/// refuse. Other parameters (a passkey, say) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeRequest {
    /// The swarms, in query order (repeats kept).
    pub info_hashes: Vec<InfoHashV1>,
}

/// Why a query string was refused; each error names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The whole query is longer than [`MAX_QUERY_LEN`].
    #[error("query of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The query's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A required parameter is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A parameter that may appear once appears again.
    #[error("{0} appears more than once")]
    Duplicate(&'static str),
    /// `%` not followed by two hex digits.
    #[error("bad percent-encoding in {param} at byte {offset} of its value")]
    BadPercentEncoding {
        /// The parameter (its raw name, if the name itself is badly encoded).
        param: String,
        /// Offset of the `%` within the raw value (or name).
        offset: usize,
    },
    /// A binary parameter of the wrong length.
    #[error("{param} must be {expected} bytes, got {got}")]
    WrongLength {
        /// The parameter.
        param: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has, decoded.
        got: usize,
    },
    /// A numeric parameter that is not a plain decimal number.
    #[error("{param} must be a decimal number, got {value:?}")]
    NotANumber {
        /// The parameter.
        param: &'static str,
        /// Its decoded value, shortened.
        value: String,
    },
    /// A number too large for the parameter.
    #[error("{param} is out of range: {value}")]
    OutOfRange {
        /// The parameter.
        param: &'static str,
        /// Its decoded value, shortened.
        value: String,
    },
    /// A value outside the parameter's vocabulary.
    #[error("{param} must be {expected}, got {value:?}")]
    BadValue {
        /// The parameter.
        param: &'static str,
        /// Its decoded value, shortened.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// A parameter value longer than its limit.
    #[error("{param} of {len} bytes exceeds the limit of {max}")]
    ValueTooLong {
        /// The parameter.
        param: &'static str,
        /// Its decoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A scrape with more than [`MAX_SCRAPE_HASHES`] info-hashes.
    #[error("more than {max} info_hash parameters")]
    TooManyHashes {
        /// The limit.
        max: usize,
    },
}

impl AnnounceRequest {
    /// A request with the required fields set, nothing transferred yet, `left` 0, no event, compact.
    pub fn new(info_hash: InfoHashV1, peer_id: PeerId, port: u16) -> Self {
        AnnounceRequest {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            compact: true,
            no_peer_id: false,
            numwant: None,
            key: None,
            trackerid: None,
            ip: None,
            ipv4: None,
            ipv6: None,
        }
    }

    /// Parse the raw query string of an announce (a leading `?` is allowed). Unknown parameters are ignored;
    /// known ones may appear once. `+` is kept as a literal byte (clients percent-encode it in binary values).
    pub fn parse_query(query: &[u8]) -> Result<Self, QueryError> {
        let query = check_len(query)?;
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut uploaded = None;
        let mut downloaded = None;
        let mut left = None;
        let mut event = None;
        let mut compact = None;
        let mut no_peer_id = None;
        let mut numwant = None;
        let mut key = None;
        let mut trackerid = None;
        let mut ip = None;
        let mut ipv4 = None;
        let mut ipv6 = None;
        for (raw_name, raw_value) in pairs(query) {
            let name = decode_name(raw_name)?;
            let Some(param) = KNOWN.iter().copied().find(|p| p.as_bytes() == name) else {
                continue;
            };
            let value = percent_decode(raw_value, param)?;
            match param {
                "info_hash" => set(&mut info_hash, param, InfoHashV1(fixed20(param, &value)?))?,
                "peer_id" => set(&mut peer_id, param, PeerId(fixed20(param, &value)?))?,
                "port" => {
                    let n = number(param, &value)?;
                    let p = u16::try_from(n).map_err(|_| QueryError::OutOfRange {
                        param,
                        value: shorten(&value),
                    })?;
                    set(&mut port, param, p)?
                }
                "uploaded" => set(&mut uploaded, param, number(param, &value)?)?,
                "downloaded" => set(&mut downloaded, param, number(param, &value)?)?,
                "left" => set(&mut left, param, number(param, &value)?)?,
                "event" => {
                    let e = Event::from_http(&value).ok_or_else(|| QueryError::BadValue {
                        param,
                        value: shorten(&value),
                        expected: "started, completed, stopped, paused, empty or nothing",
                    })?;
                    set(&mut event, param, e)?
                }
                "compact" => set(&mut compact, param, flag(param, &value)?)?,
                "no_peer_id" => set(&mut no_peer_id, param, flag(param, &value)?)?,
                "numwant" => set(&mut numwant, param, parse_numwant(&value)?)?,
                "key" => set(&mut key, param, bounded(param, value, MAX_KEY_LEN)?)?,
                "trackerid" => set(&mut trackerid, param, bounded(param, value, MAX_TRACKER_ID_LEN)?)?,
                "ip" => set(&mut ip, param, text(&value).and_then(|s| s.parse().ok()))?,
                "ipv4" => set(&mut ipv4, param, value)?,
                "ipv6" => set(&mut ipv6, param, value)?,
                _ => {}
            }
        }
        let port = port.ok_or(QueryError::Missing("port"))?;
        Ok(AnnounceRequest {
            info_hash: info_hash.ok_or(QueryError::Missing("info_hash"))?,
            peer_id: peer_id.ok_or(QueryError::Missing("peer_id"))?,
            port,
            uploaded: uploaded.ok_or(QueryError::Missing("uploaded"))?,
            downloaded: downloaded.ok_or(QueryError::Missing("downloaded"))?,
            left: left.ok_or(QueryError::Missing("left"))?,
            event: event.unwrap_or_default(),
            compact: compact.unwrap_or(true),
            no_peer_id: no_peer_id.unwrap_or(false),
            numwant: numwant.flatten(),
            key,
            trackerid,
            ip: ip.flatten(),
            ipv4: ipv4.and_then(|v| endpoint_v4(&v, port)),
            ipv6: ipv6.and_then(|v| endpoint_v6(&v, port)),
        })
    }

    /// The query string (without `?`), with binary values percent-encoded and parameters in a fixed order.
    pub fn to_query(&self) -> String {
        let mut q = String::with_capacity(256);
        push(&mut q, "info_hash", &self.info_hash.0);
        push(&mut q, "peer_id", &self.peer_id.0);
        push(&mut q, "port", self.port.to_string().as_bytes());
        push(&mut q, "uploaded", self.uploaded.to_string().as_bytes());
        push(&mut q, "downloaded", self.downloaded.to_string().as_bytes());
        push(&mut q, "left", self.left.to_string().as_bytes());
        if self.event != Event::None {
            push(&mut q, "event", self.event.as_http_str().as_bytes());
        }
        push(&mut q, "compact", if self.compact { b"1" } else { b"0" });
        if self.no_peer_id {
            push(&mut q, "no_peer_id", b"1");
        }
        if let Some(n) = self.numwant {
            push(&mut q, "numwant", n.to_string().as_bytes());
        }
        if let Some(k) = &self.key {
            push(&mut q, "key", k);
        }
        if let Some(t) = &self.trackerid {
            push(&mut q, "trackerid", t);
        }
        if let Some(ip) = self.ip {
            push(&mut q, "ip", ip.to_string().as_bytes());
        }
        if let Some(a) = self.ipv4 {
            push(&mut q, "ipv4", a.to_string().as_bytes());
        }
        if let Some(a) = self.ipv6 {
            push(&mut q, "ipv6", a.to_string().as_bytes());
        }
        q
    }

    /// The full announce URL: `announce_url` (which may carry a query of its own, such as a passkey) plus
    /// this request's query.
    pub fn url(&self, announce_url: &str) -> String {
        join(announce_url, &self.to_query())
    }
}

impl ScrapeRequest {
    /// Parse the raw query string of a scrape (a leading `?` is allowed).
    pub fn parse_query(query: &[u8]) -> Result<Self, QueryError> {
        let query = check_len(query)?;
        let mut info_hashes = Vec::new();
        for (raw_name, raw_value) in pairs(query) {
            if decode_name(raw_name)? != b"info_hash" {
                continue;
            }
            if info_hashes.len() == MAX_SCRAPE_HASHES {
                return Err(QueryError::TooManyHashes {
                    max: MAX_SCRAPE_HASHES,
                });
            }
            let value = percent_decode(raw_value, "info_hash")?;
            info_hashes.push(InfoHashV1(fixed20("info_hash", &value)?));
        }
        Ok(ScrapeRequest { info_hashes })
    }

    /// The query string (without `?`).
    pub fn to_query(&self) -> String {
        let mut q = String::with_capacity(self.info_hashes.len() * 71);
        for h in &self.info_hashes {
            push(&mut q, "info_hash", &h.0);
        }
        q
    }

    /// The full scrape URL, given the scrape URL (see [`scrape_url`]).
    pub fn url(&self, scrape_url: &str) -> String {
        join(scrape_url, &self.to_query())
    }
}

/// The scrape URL of an announce URL (BEP 48): the last path segment must start with `announce`, which
/// becomes `scrape`; `None` when the tracker has no conventional scrape URL.
///
/// ```
/// use tracker_proto::http::scrape_url;
/// assert_eq!(scrape_url("http://t.example/x/announce.php?pk=1").as_deref(), Some("http://t.example/x/scrape.php?pk=1"));
/// assert_eq!(scrape_url("http://t.example/a/announce/b"), None);
/// ```
pub fn scrape_url(announce_url: &str) -> Option<String> {
    let (path, query) = match announce_url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (announce_url, None),
    };
    // The path starts at the first `/` after the authority (`scheme://host:port`).
    let authority_start = path.find("://").map_or(0, |i| i + 3);
    let path_start = authority_start + path.get(authority_start..)?.find('/')?;
    let slash = path_start + path.get(path_start..)?.rfind('/')?;
    let (head, last) = path.split_at_checked(slash + 1)?;
    let rest = last.strip_prefix("announce")?;
    let mut url = format!("{head}scrape{rest}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

/// Parameters the announce parser reads.
const KNOWN: [&str; 15] = [
    "info_hash",
    "peer_id",
    "port",
    "uploaded",
    "downloaded",
    "left",
    "event",
    "compact",
    "no_peer_id",
    "numwant",
    "key",
    "trackerid",
    "ip",
    "ipv4",
    "ipv6",
];

fn check_len(query: &[u8]) -> Result<&[u8], QueryError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong {
            len: query.len(),
            max: MAX_QUERY_LEN,
        });
    }
    Ok(query.strip_prefix(b"?").unwrap_or(query))
}

/// `name=value` pairs split on `&`; empty pairs are skipped and a pair without `=` has an empty value.
fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (p.get(..i).unwrap_or_default(), p.get(i + 1..).unwrap_or_default()),
            None => (p, &b""[..]),
        })
}

fn decode_name(raw: &[u8]) -> Result<Vec<u8>, QueryError> {
    if !raw.contains(&b'%') {
        return Ok(raw.to_vec());
    }
    percent_decode(raw, &shorten(raw))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Strict percent-decoding: every `%` must start `%XX` with two hex digits.
fn percent_decode(raw: &[u8], param: &str) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().enumerate();
    while let Some((offset, &b)) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(|(_, &h)| hex(h));
        let lo = bytes.next().and_then(|(_, &l)| hex(l));
        match (hi, lo) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => {
                return Err(QueryError::BadPercentEncoding {
                    param: param.to_owned(),
                    offset,
                })
            }
        }
    }
    Ok(out)
}

fn set<T>(slot: &mut Option<T>, param: &'static str, value: T) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Duplicate(param));
    }
    *slot = Some(value);
    Ok(())
}

fn fixed20(param: &'static str, value: &[u8]) -> Result<[u8; 20], QueryError> {
    value.try_into().map_err(|_| QueryError::WrongLength {
        param,
        expected: 20,
        got: value.len(),
    })
}

fn number(param: &'static str, value: &[u8]) -> Result<u64, QueryError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(QueryError::NotANumber {
            param,
            value: shorten(value),
        });
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or_else(|| QueryError::OutOfRange {
            param,
            value: shorten(value),
        })
}

/// `numwant`: a number (clamped; huge ones too) or a negative number meaning "default".
fn parse_numwant(value: &[u8]) -> Result<Option<u32>, QueryError> {
    if let Some(digits) = value.strip_prefix(b"-") {
        number("numwant", digits)?;
        return Ok(None);
    }
    match number("numwant", value) {
        Ok(n) => Ok(Some(clamp_numwant(n))),
        Err(QueryError::OutOfRange { .. }) => Ok(Some(clamp_numwant(u64::MAX))),
        Err(e) => Err(e),
    }
}

fn flag(param: &'static str, value: &[u8]) -> Result<bool, QueryError> {
    match value {
        b"1" => Ok(true),
        b"0" => Ok(false),
        _ => Err(QueryError::BadValue {
            param,
            value: shorten(value),
            expected: "0 or 1",
        }),
    }
}

fn bounded(param: &'static str, value: Vec<u8>, max: usize) -> Result<Vec<u8>, QueryError> {
    if value.len() > max {
        return Err(QueryError::ValueTooLong {
            param,
            len: value.len(),
            max,
        });
    }
    Ok(value)
}

fn text(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value).ok()
}

fn endpoint_v4(value: &[u8], port: u16) -> Option<SocketAddrV4> {
    let s = text(value)?;
    s.parse::<SocketAddrV4>()
        .ok()
        .or_else(|| Some(SocketAddrV4::new(s.parse::<Ipv4Addr>().ok()?, port)))
}

fn endpoint_v6(value: &[u8], port: u16) -> Option<SocketAddrV6> {
    let s = text(value)?;
    if let Ok(a) = s.parse::<SocketAddrV6>() {
        return Some(a);
    }
    let bare = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s);
    Some(SocketAddrV6::new(bare.parse::<Ipv6Addr>().ok()?, port, 0, 0))
}

/// A value for an error message: lossy UTF-8, at most 64 characters.
fn shorten(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(value);
    let mut out: String = s.chars().take(64).collect();
    if s.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}

fn push(q: &mut String, name: &str, value: &[u8]) {
    if !q.is_empty() {
        q.push('&');
    }
    q.push_str(name);
    q.push('=');
    q.extend(percent_encode(value, UNRESERVED));
}

fn join(base: &str, query: &str) -> String {
    let sep = match base.rsplit_once('?') {
        None => "?",
        Some((_, "")) => "",
        Some(_) if base.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{sep}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "%5e%f9%01%02%fd%e7%01%09pb%ee%92%88RY%06%22%3f%01%a8";

    fn base() -> String {
        format!("info_hash={HASH}&peer_id=-TR3000-u0swcvvz6h3r&port=6881&uploaded=0&downloaded=0&left=5")
    }

    fn parse(q: &str) -> Result<AnnounceRequest, QueryError> {
        AnnounceRequest::parse_query(q.as_bytes())
    }

    #[test]
    fn minimal_announce_gets_defaults() {
        let r = parse(&base()).unwrap();
        assert_eq!(r.info_hash.to_hex(), "5ef90102fde701097062ee9288525906223f01a8");
        assert_eq!(r.peer_id, PeerId(*b"-TR3000-u0swcvvz6h3r"));
        assert_eq!((r.port, r.uploaded, r.downloaded, r.left), (6881, 0, 0, 5));
        assert_eq!(r.event, Event::None);
        assert!(r.compact, "BEP 23: compact by default");
        assert!(!r.no_peer_id);
        assert_eq!(
            (r.numwant, &r.key, &r.trackerid, r.ip),
            (None, &None, &None, None)
        );
        assert_eq!(parse(&format!("?{}", base())).unwrap(), r);
    }

    #[test]
    fn errors_name_the_parameter() {
        let msg = |q: String| parse(&q).unwrap_err().to_string();
        for p in ["info_hash", "peer_id", "port", "uploaded", "downloaded", "left"] {
            let q: Vec<&str> = base()
                .leak()
                .split('&')
                .filter(|kv| !kv.starts_with(&format!("{p}=")))
                .collect();
            assert_eq!(msg(q.join("&")), format!("missing {p}"));
        }
        assert_eq!(
            msg(base().replace("%a8", "")),
            "info_hash must be 20 bytes, got 19"
        );
        assert_eq!(
            msg(base().replace("u0swcvvz6h3r", "u0swcvvz6h3r%00")),
            "peer_id must be 20 bytes, got 21"
        );
        assert_eq!(
            msg(base().replace("%5e", "%5g")),
            "bad percent-encoding in info_hash at byte 0 of its value"
        );
        assert_eq!(
            msg(base().replace("%a8", "%a")),
            "bad percent-encoding in info_hash at byte 49 of its value"
        );
        assert_eq!(
            msg(base().replace("port=6881", "port=65536")),
            "port is out of range: 65536"
        );
        assert_eq!(
            msg(base().replace("left=5", "left=-1")),
            "left must be a decimal number, got \"-1\""
        );
        assert_eq!(
            msg(base().replace("left=5", "left=99999999999999999999")),
            "left is out of range: 99999999999999999999"
        );
        assert_eq!(msg(format!("{}&port=1", base())), "port appears more than once");
        assert!(msg(format!("{}&event=begun", base())).starts_with("event must be started"));
        assert_eq!(
            msg(format!("{}&compact=yes", base())),
            "compact must be 0 or 1, got \"yes\""
        );
        assert_eq!(
            msg(format!("{}&key={}", base(), "k".repeat(65))),
            "key of 65 bytes exceeds the limit of 64"
        );
        assert_eq!(
            msg(format!("{}&x={}", base(), "a".repeat(MAX_QUERY_LEN))),
            format!(
                "query of {} bytes exceeds the limit of 8192",
                base().len() + 3 + MAX_QUERY_LEN
            )
        );
    }

    #[test]
    fn optional_parameters() {
        let r = parse(&format!(
            "{}&event=completed&compact=0&no_peer_id=1&numwant=30&key=ab%2Bc&trackerid=t1&ip=192.0.2.4\
             &ipv6=2001%3A%3A53Aa%3A64c%3A0%3A7f83%3Abc43%3Adec9&ipv4=198.51.100.1%3A7000&supportcrypto=1",
            base()
        ))
        .unwrap();
        assert_eq!(r.event, Event::Completed);
        assert!(!r.compact);
        assert!(r.no_peer_id);
        assert_eq!(r.numwant, Some(30));
        assert_eq!(r.key.as_deref(), Some(&b"ab+c"[..]));
        assert_eq!(r.trackerid.as_deref(), Some(&b"t1"[..]));
        assert_eq!(r.ip, Some("192.0.2.4".parse().unwrap()));
        // BEP 7: "In the case where only an address is supplied, the IPv6 port is assumed to be the same as
        // specified by the &port= parameter."
        assert_eq!(
            r.ipv6,
            Some("[2001::53aa:64c:0:7f83:bc43:dec9]:6881".parse().unwrap())
        );
        assert_eq!(r.ipv4, Some("198.51.100.1:7000".parse().unwrap()));
    }

    #[test]
    fn bep7_endpoint_form_and_unusable_hints() {
        let r = parse(&format!(
            "{}&ipv6=%5B2001%3A%3A53Aa%3A64c%3A0%3A7f83%3Abc43%3Adec9%5D%3A6882&ip=tracker.example&ipv4=261.52.89.12",
            base()
        ))
        .unwrap();
        assert_eq!(
            r.ipv6,
            Some("[2001::53aa:64c:0:7f83:bc43:dec9]:6882".parse().unwrap())
        );
        assert_eq!(r.ip, None, "a DNS name is ignored");
        assert_eq!(
            r.ipv4, None,
            "BEP 7's own example address 261.52.89.12 is not an address"
        );
    }

    #[test]
    fn numwant_forms() {
        let n = |v: &str| parse(&format!("{}&numwant={v}", base())).map(|r| r.numwant);
        assert_eq!(n("0"), Ok(Some(0)));
        assert_eq!(n("200"), Ok(Some(200)));
        assert_eq!(n("1000"), Ok(Some(crate::MAX_NUMWANT)));
        assert_eq!(n("99999999999999999999999"), Ok(Some(crate::MAX_NUMWANT)));
        assert_eq!(n("-1"), Ok(None));
        assert!(n("ten").is_err());
        assert!(n("-").is_err());
    }

    #[test]
    fn events() {
        for (v, e) in [
            ("started", Event::Started),
            ("stopped", Event::Stopped),
            ("paused", Event::Paused),
            ("", Event::None),
            ("empty", Event::None),
        ] {
            assert_eq!(parse(&format!("{}&event={v}", base())).unwrap().event, e);
        }
    }

    #[test]
    fn scrape_queries() {
        let one = "%5e%f9%01%02%fd%e7%01%09pb%ee%92%88RY%06%22%3f%01%a8";
        let r = ScrapeRequest::parse_query(
            format!("info_hash={one}&passkey=x&info_hash={}", "a".repeat(20)).as_bytes(),
        )
        .unwrap();
        assert_eq!(r.info_hashes.len(), 2);
        assert_eq!(r.info_hashes[1], InfoHashV1([b'a'; 20]));
        assert_eq!(ScrapeRequest::parse_query(b"").unwrap().info_hashes, vec![]);
        let many = vec![format!("info_hash={}", "b".repeat(20)); MAX_SCRAPE_HASHES + 1].join("&");
        assert_eq!(
            ScrapeRequest::parse_query(many.as_bytes()),
            Err(QueryError::TooManyHashes {
                max: MAX_SCRAPE_HASHES
            })
        );
        assert_eq!(
            ScrapeRequest::parse_query(b"info_hash=short")
                .unwrap_err()
                .to_string(),
            "info_hash must be 20 bytes, got 5"
        );
    }

    #[test]
    fn to_query_escapes_everything_but_unreserved() {
        let mut r = AnnounceRequest::new(InfoHashV1([0x00; 20]), PeerId(*b"-BS0100-a+b c/d&e=f~"), 1);
        r.key = Some(b"k".to_vec());
        let q = r.to_query();
        assert!(q.contains("peer_id=-BS0100-a%2Bb%20c%2Fd%26e%3Df~&"), "{q}");
        assert!(q.starts_with("info_hash=%00%00"));
        assert_eq!(AnnounceRequest::parse_query(q.as_bytes()).unwrap(), r);
    }

    #[test]
    fn urls() {
        let s = ScrapeRequest {
            info_hashes: vec![InfoHashV1([1; 20])],
        };
        assert_eq!(
            s.url("http://t/scrape"),
            format!("http://t/scrape?{}", s.to_query())
        );
        assert_eq!(
            s.url("http://t/scrape?a=1"),
            format!("http://t/scrape?a=1&{}", s.to_query())
        );
        assert_eq!(
            s.url("http://t/scrape?"),
            format!("http://t/scrape?{}", s.to_query())
        );
        assert_eq!(
            s.url("http://t/scrape?a=1&"),
            format!("http://t/scrape?a=1&{}", s.to_query())
        );
        assert_eq!(
            scrape_url("http://t:6969/announce").as_deref(),
            Some("http://t:6969/scrape")
        );
        assert_eq!(
            scrape_url("http://t/announce?passkey=1").as_deref(),
            Some("http://t/scrape?passkey=1")
        );
        assert_eq!(
            scrape_url("http://t/x/announce.php").as_deref(),
            Some("http://t/x/scrape.php")
        );
        assert_eq!(scrape_url("http://t/a"), None);
        assert_eq!(scrape_url("http://announce"), None);
        assert_eq!(scrape_url("http://t/announce/x"), None);
    }
}
