//! KRPC messages (BEP 5) with the BEP 32, 33, 42 and 43 additions, and their codec on byte slices.
//!
//! A message is one bencoded dictionary: `t` (transaction id, echoed as given), `y` (`q`, `r` or `e`), and
//! `q` + `a` for a query, `r` for a response, `e` for an error. Top-level extras: `v` (client version),
//! `ip` (BEP 42: the requester's address as seen by the responder) and `ro` (BEP 43: read-only sender).
//!
//! [`decode`] is strict about what a message needs (a 20-byte `id`, compact node strings whose length is a
//! multiple of 26 or 38, peer strings of 6 or 18 bytes, a port in range) and names the key at fault in its
//! [`DecodeError`]; it ignores keys it does not know, and ignores a `v`, `ip` or `ro` of an unexpected shape
//! rather than dropping a message for them. Packets over [`MAX_PACKET`] bytes are refused before parsing.
//! [`Message::encode`] writes canonical bencode (keys sorted), so `decode(encode(m)) == m`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bencode::{DecodeOptions, Dict, Encoder, Limits, Value};

use crate::NodeId;

/// The largest packet [`decode`] accepts (one Ethernet MTU; BEP 32 senders stay under 1024 bytes).
pub const MAX_PACKET: usize = 1500;
/// The longest transaction id accepted (BEP 5: "typically 2 characters are enough").
pub const MAX_TRANSACTION: usize = 32;
/// The longest token accepted in a response or an announce.
pub const MAX_TOKEN: usize = 64;
/// The longest `v` (version) kept; a longer one is ignored.
pub const MAX_VERSION: usize = 16;
/// The longest query method name accepted.
pub const MAX_METHOD: usize = 32;
/// Size of a BEP 33 bloom filter in bytes.
pub const BLOOM_BYTES: usize = 256;
/// Compact node info: 20-byte id + 6-byte IPv4 address and port.
pub const COMPACT_NODE_V4: usize = 26;
/// Compact node info for IPv6 (BEP 32): 20-byte id + 18-byte address and port.
pub const COMPACT_NODE_V6: usize = 38;

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `t`: the transaction id, chosen by the querier and echoed in the reply.
    pub transaction: Vec<u8>,
    /// `v`: the sender's client version (e.g. `"BS"` + 2 bytes), if given.
    pub version: Option<Vec<u8>>,
    /// `ip` (BEP 42): in a reply, the address the querier's packet came from.
    pub ip: Option<SocketAddr>,
    /// `ro` (BEP 43): the sender is a read-only node (set in its queries).
    pub read_only: bool,
    /// The query, response or error.
    pub body: Body,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `y = q`.
    Query(Query),
    /// `y = r`.
    Response(Response),
    /// `y = e`.
    Error(KrpcError),
}

/// A query: the querier's id and the method with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `a.id`: the querying node's id.
    pub id: NodeId,
    /// The method and its arguments.
    pub kind: QueryKind,
}

/// BEP 32 `want`: which node lists the querier wants in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `"n4"`: include `nodes` (IPv4).
    pub n4: bool,
    /// `"n6"`: include `nodes6` (IPv6).
    pub n6: bool,
}

/// The query methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// `ping`.
    Ping,
    /// `find_node`: the closest nodes to `target`.
    FindNode {
        /// `a.target`.
        target: NodeId,
        /// `a.want` (BEP 32), if given.
        want: Option<Want>,
    },
    /// `get_peers`: peers for `info_hash`, or the closest nodes to it, and a token.
    GetPeers {
        /// `a.info_hash`.
        info_hash: [u8; 20],
        /// `a.want` (BEP 32), if given.
        want: Option<Want>,
        /// `a.noseed = 1` (BEP 33): prefer non-seeds in `values`.
        noseed: bool,
        /// `a.scrape = 1` (BEP 33): add the `BFsd` and `BFpe` bloom filters.
        scrape: bool,
    },
    /// `announce_peer`: store the querier as a peer for `info_hash`.
    AnnouncePeer {
        /// `a.info_hash`.
        info_hash: [u8; 20],
        /// `a.port` (0 when absent and `implied_port` is set).
        port: u16,
        /// `a.implied_port`: use the UDP source port instead of `port`.
        implied_port: bool,
        /// `a.token` from an earlier `get_peers` reply.
        token: Vec<u8>,
        /// `a.seed = 1` (BEP 33): the announcer is a seed.
        seed: bool,
    },
    /// Any other method (answered with error 204).
    Unknown {
        /// The method name.
        method: Vec<u8>,
    },
}

impl QueryKind {
    /// The method name as sent in `q`.
    pub fn method(&self) -> &[u8] {
        match self {
            QueryKind::Ping => b"ping",
            QueryKind::FindNode { .. } => b"find_node",
            QueryKind::GetPeers { .. } => b"get_peers",
            QueryKind::AnnouncePeer { .. } => b"announce_peer",
            QueryKind::Unknown { method } => method,
        }
    }
}

/// A response's return values. Responses do not name their method; the querier knows it by `t`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// `r.id`: the responding node's id.
    pub id: NodeId,
    /// `r.nodes`: IPv4 compact node info (`None` when absent; an IPv6 entry here is not encoded).
    pub nodes: Option<Vec<NodeInfo>>,
    /// `r.nodes6` (BEP 32): IPv6 compact node info (an IPv4 entry here is not encoded).
    pub nodes6: Option<Vec<NodeInfo>>,
    /// `r.values`: compact peers (6 bytes IPv4, 18 bytes IPv6); encoded only when not empty.
    pub values: Vec<SocketAddr>,
    /// `r.token`: the write token of a `get_peers` reply.
    pub token: Option<Vec<u8>>,
    /// `r.BFsd` (BEP 33): bloom filter of the stored seeds.
    pub seeds_bloom: Option<Box<[u8; BLOOM_BYTES]>>,
    /// `r.BFpe` (BEP 33): bloom filter of the stored peers.
    pub peers_bloom: Option<Box<[u8; BLOOM_BYTES]>>,
}

/// A KRPC error: `e = [code, message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrpcError {
    /// The error code (201 generic, 202 server, 203 protocol, 204 method unknown).
    pub code: i64,
    /// The message.
    pub message: String,
}

/// BEP 5 error codes.
pub mod code {
    /// Generic Error.
    pub const GENERIC: i64 = 201;
    /// Server Error.
    pub const SERVER: i64 = 202;
    /// Protocol Error, such as a malformed packet, invalid arguments, or bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method Unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
}

/// A node's contact: its id and UDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// What was wrong with a packet, naming the key (`a.id`, `r.nodes`, `e[0]`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The packet is larger than the limit.
    #[error("packet of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Packet size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not bencode, or bencode that breaks the limits.
    #[error("{0}")]
    Bencode(bencode::Error),
    /// A required key is absent.
    #[error("{what} is missing")]
    Missing {
        /// The key.
        what: &'static str,
    },
    /// A key holds the wrong type.
    #[error("{what} is a {found}, expected a {expected}")]
    WrongType {
        /// The key.
        what: &'static str,
        /// The type found.
        found: &'static str,
        /// The type expected.
        expected: &'static str,
    },
    /// A string of the wrong length (an id that is not 20 bytes, compact data of a bad length, ...).
    #[error("{what} has {len} bytes, expected {expected}")]
    BadLength {
        /// The key.
        what: &'static str,
        /// Its length.
        len: usize,
        /// What was expected.
        expected: &'static str,
    },
    /// An integer out of its range (a port above 65535, ...).
    #[error("{what} = {value} is out of range")]
    OutOfRange {
        /// The key.
        what: &'static str,
        /// The value.
        value: i64,
    },
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type y = {0:?}")]
    UnknownType(String),
}

/// A packet that is not a valid KRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("krpc: {kind}")]
pub struct DecodeError {
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// For a query whose `t` could be read but whose arguments could not: its transaction id, so that the
    /// node can answer with error 203.
    pub query_transaction: Option<Vec<u8>>,
}

impl From<DecodeErrorKind> for DecodeError {
    fn from(kind: DecodeErrorKind) -> Self {
        DecodeError {
            kind,
            query_transaction: None,
        }
    }
}

type R<T> = Result<T, DecodeErrorKind>;

/// Decode one packet, refusing packets over [`MAX_PACKET`] bytes.
pub fn decode(packet: &[u8]) -> Result<Message, DecodeError> {
    decode_with_limit(packet, MAX_PACKET)
}

/// Decode one packet, refusing packets over `limit` bytes.
pub fn decode_with_limit(packet: &[u8], limit: usize) -> Result<Message, DecodeError> {
    if packet.len() > limit {
        return Err(DecodeErrorKind::TooLarge {
            size: packet.len(),
            limit,
        }
        .into());
    }
    // Lenient about key order (some implementations do not sort), strict about everything else.
    let options = DecodeOptions::lenient().with_limits(Limits {
        max_depth: 16,
        max_input: limit,
        max_values: limit,
        max_string: limit,
    });
    let value = bencode::decode_with(packet, options).map_err(DecodeErrorKind::Bencode)?;
    let top = as_dict(&value, "message")?;
    let transaction = bytes(req(top, b"t", "t")?, "t")?;
    if transaction.len() > MAX_TRANSACTION {
        return Err(bad_len("t", transaction.len(), "at most 32").into());
    }
    let y = bytes(req(top, b"y", "y")?, "y")?;
    let body = match y {
        b"q" => decode_query(top).map(Body::Query).map_err(|kind| DecodeError {
            kind,
            query_transaction: Some(transaction.to_vec()),
        })?,
        b"r" => Body::Response(decode_response(top)?),
        b"e" => Body::Error(decode_error(top)?),
        other => {
            return Err(DecodeErrorKind::UnknownType(String::from_utf8_lossy(other).into_owned()).into())
        }
    };
    let version = top
        .get(b"v")
        .and_then(Value::as_bytes)
        .filter(|v| v.len() <= MAX_VERSION)
        .map(<[u8]>::to_vec);
    let ip = top
        .get(b"ip")
        .and_then(Value::as_bytes)
        .and_then(parse_compact_addr);
    let read_only = top.get(b"ro").and_then(Value::as_int) == Some(1);
    Ok(Message {
        transaction: transaction.to_vec(),
        version,
        ip,
        read_only,
        body,
    })
}

fn decode_query(top: &Dict<'_>) -> R<Query> {
    let method = bytes(req(top, b"q", "q")?, "q")?;
    if method.len() > MAX_METHOD {
        return Err(bad_len("q", method.len(), "at most 32"));
    }
    let a = as_dict(req(top, b"a", "a")?, "a")?;
    let id = NodeId(id20(req(a, b"id", "a.id")?, "a.id")?);
    let kind = match method {
        b"ping" => QueryKind::Ping,
        b"find_node" => QueryKind::FindNode {
            target: NodeId(id20(req(a, b"target", "a.target")?, "a.target")?),
            want: want(a),
        },
        b"get_peers" => QueryKind::GetPeers {
            info_hash: id20(req(a, b"info_hash", "a.info_hash")?, "a.info_hash")?,
            want: want(a),
            noseed: flag(a, b"noseed", "a.noseed")?,
            scrape: flag(a, b"scrape", "a.scrape")?,
        },
        b"announce_peer" => {
            let info_hash = id20(req(a, b"info_hash", "a.info_hash")?, "a.info_hash")?;
            let implied_port = flag(a, b"implied_port", "a.implied_port")?;
            let port = match a.get(b"port") {
                Some(v) => {
                    let p = int(v, "a.port")?;
                    u16::try_from(p).map_err(|_| DecodeErrorKind::OutOfRange {
                        what: "a.port",
                        value: p,
                    })?
                }
                None if implied_port => 0,
                None => return Err(DecodeErrorKind::Missing { what: "a.port" }),
            };
            let token = bytes(req(a, b"token", "a.token")?, "a.token")?;
            if token.len() > MAX_TOKEN {
                return Err(bad_len("a.token", token.len(), "at most 64"));
            }
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token: token.to_vec(),
                seed: flag(a, b"seed", "a.seed")?,
            }
        }
        other => QueryKind::Unknown {
            method: other.to_vec(),
        },
    };
    Ok(Query { id, kind })
}

fn decode_response(top: &Dict<'_>) -> R<Response> {
    let r = as_dict(req(top, b"r", "r")?, "r")?;
    let id = NodeId(id20(req(r, b"id", "r.id")?, "r.id")?);
    let nodes = match r.get(b"nodes") {
        Some(v) => Some(parse_nodes(bytes(v, "r.nodes")?, COMPACT_NODE_V4, "r.nodes")?),
        None => None,
    };
    let nodes6 = match r.get(b"nodes6") {
        Some(v) => Some(parse_nodes(bytes(v, "r.nodes6")?, COMPACT_NODE_V6, "r.nodes6")?),
        None => None,
    };
    let mut values = Vec::new();
    if let Some(v) = r.get(b"values") {
        let list = v.as_list().ok_or_else(|| wrong(v, "r.values", "list"))?;
        for item in list {
            let b = bytes(item, "r.values[]")?;
            values.push(parse_compact_addr(b).ok_or_else(|| bad_len("r.values[]", b.len(), "6 or 18"))?);
        }
    }
    let token = match r.get(b"token") {
        Some(v) => {
            let t = bytes(v, "r.token")?;
            if t.len() > MAX_TOKEN {
                return Err(bad_len("r.token", t.len(), "at most 64"));
            }
            Some(t.to_vec())
        }
        None => None,
    };
    Ok(Response {
        id,
        nodes,
        nodes6,
        values,
        token,
        seeds_bloom: bloom(r, b"BFsd", "r.BFsd")?,
        peers_bloom: bloom(r, b"BFpe", "r.BFpe")?,
    })
}

fn decode_error(top: &Dict<'_>) -> R<KrpcError> {
    let e = req(top, b"e", "e")?;
    let list = e.as_list().ok_or_else(|| wrong(e, "e", "list"))?;
    let code = int(
        list.first().ok_or(DecodeErrorKind::Missing { what: "e[0]" })?,
        "e[0]",
    )?;
    let message = match list.get(1) {
        Some(m) => String::from_utf8_lossy(bytes(m, "e[1]")?).into_owned(),
        None => String::new(),
    };
    Ok(KrpcError { code, message })
}

fn req<'b, 'a>(d: &'b Dict<'a>, key: &[u8], what: &'static str) -> R<&'b Value<'a>> {
    d.get(key).ok_or(DecodeErrorKind::Missing { what })
}

fn wrong(v: &Value<'_>, what: &'static str, expected: &'static str) -> DecodeErrorKind {
    DecodeErrorKind::WrongType {
        what,
        found: v.type_name(),
        expected,
    }
}

fn bad_len(what: &'static str, len: usize, expected: &'static str) -> DecodeErrorKind {
    DecodeErrorKind::BadLength { what, len, expected }
}

fn as_dict<'b, 'a>(v: &'b Value<'a>, what: &'static str) -> R<&'b Dict<'a>> {
    v.as_dict().ok_or_else(|| wrong(v, what, "dictionary"))
}

fn bytes<'a>(v: &Value<'a>, what: &'static str) -> R<&'a [u8]> {
    v.as_bytes().ok_or_else(|| wrong(v, what, "string"))
}

fn int(v: &Value<'_>, what: &'static str) -> R<i64> {
    v.as_int().ok_or_else(|| wrong(v, what, "integer"))
}

fn id20(v: &Value<'_>, what: &'static str) -> R<[u8; 20]> {
    let b = bytes(v, what)?;
    <[u8; 20]>::try_from(b).map_err(|_| bad_len(what, b.len(), "20"))
}

fn flag(d: &Dict<'_>, key: &[u8], what: &'static str) -> R<bool> {
    match d.get(key) {
        Some(v) => Ok(int(v, what)? != 0),
        None => Ok(false),
    }
}

/// BEP 32: "other strings may be present in the list, and must be silently ignored"; a `want` that is
/// not a list is ignored too.
fn want(d: &Dict<'_>) -> Option<Want> {
    let list = d.get(b"want")?.as_list()?;
    let mut w = Want::default();
    for item in list {
        match item.as_bytes() {
            Some(b"n4") => w.n4 = true,
            Some(b"n6") => w.n6 = true,
            _ => {}
        }
    }
    Some(w)
}

fn bloom(d: &Dict<'_>, key: &[u8], what: &'static str) -> R<Option<Box<[u8; BLOOM_BYTES]>>> {
    match d.get(key) {
        Some(v) => {
            let b = bytes(v, what)?;
            let arr = <[u8; BLOOM_BYTES]>::try_from(b).map_err(|_| bad_len(what, b.len(), "256"))?;
            Ok(Some(Box::new(arr)))
        }
        None => Ok(None),
    }
}

fn parse_nodes(b: &[u8], size: usize, what: &'static str) -> R<Vec<NodeInfo>> {
    if !b.len().is_multiple_of(size) {
        let expected = if size == COMPACT_NODE_V4 {
            "a multiple of 26"
        } else {
            "a multiple of 38"
        };
        return Err(bad_len(what, b.len(), expected));
    }
    Ok(b.chunks_exact(size).filter_map(parse_compact_node).collect())
}

/// Parse one compact node (26 or 38 bytes).
pub fn parse_compact_node(b: &[u8]) -> Option<NodeInfo> {
    let id = <[u8; 20]>::try_from(b.get(..20)?).ok()?;
    Some(NodeInfo {
        id: NodeId(id),
        addr: parse_compact_addr(b.get(20..)?)?,
    })
}

/// Parse compact address and port: 6 bytes (IPv4) or 18 bytes (IPv6), big endian.
pub fn parse_compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        6 => {
            let ip = <[u8; 4]>::try_from(b.get(..4)?).ok()?;
            let port = u16::from_be_bytes(<[u8; 2]>::try_from(b.get(4..)?).ok()?);
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        18 => {
            let ip = <[u8; 16]>::try_from(b.get(..16)?).ok()?;
            let port = u16::from_be_bytes(<[u8; 2]>::try_from(b.get(16..)?).ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)))
        }
        _ => None,
    }
}

/// Append the compact form of `addr` (6 or 18 bytes).
pub fn write_compact_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The compact form of `addr`.
pub fn compact_addr(addr: &SocketAddr) -> Vec<u8> {
    let mut v = Vec::with_capacity(18);
    write_compact_addr(&mut v, addr);
    v
}

/// The compact node info of the nodes of one family (`v6` false: IPv4, 26 bytes each; true: 38 bytes).
pub fn compact_nodes(nodes: &[NodeInfo], v6: bool) -> Vec<u8> {
    let size = if v6 { COMPACT_NODE_V6 } else { COMPACT_NODE_V4 };
    let mut out = Vec::with_capacity(nodes.len() * size);
    for n in nodes.iter().filter(|n| n.addr.is_ipv6() == v6) {
        out.extend_from_slice(&n.id.0);
        write_compact_addr(&mut out, &n.addr);
    }
    out
}

impl Message {
    /// Encode canonically (keys in sorted order).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        // Keys are written in their sorted order: a e ip q r ro t v y.
        e.dict(|d| {
            match &self.body {
                Body::Query(q) => {
                    d.entry(b"a", |e| encode_args(e, q));
                }
                Body::Error(x) => d.entry(b"e", |e| {
                    e.list(|l| {
                        l.int(x.code);
                        l.bytes(x.message.as_bytes());
                    })
                }),
                Body::Response(_) => {}
            }
            if let Some(ip) = &self.ip {
                d.entry(b"ip", |e| e.bytes(&compact_addr(ip)));
            }
            match &self.body {
                Body::Query(q) => d.entry(b"q", |e| e.bytes(q.kind.method())),
                Body::Response(r) => d.entry(b"r", |e| encode_response(e, r)),
                Body::Error(_) => {}
            }
            if self.read_only {
                d.entry(b"ro", |e| e.int(1));
            }
            d.entry(b"t", |e| e.bytes(&self.transaction));
            if let Some(v) = &self.version {
                d.entry(b"v", |e| e.bytes(v));
            }
            let y: &[u8] = match self.body {
                Body::Query(_) => b"q",
                Body::Response(_) => b"r",
                Body::Error(_) => b"e",
            };
            d.entry(b"y", |e| e.bytes(y));
        });
        e.finish()
    }
}

fn encode_want(e: &mut Encoder, w: &Want) {
    e.list(|l| {
        if w.n4 {
            l.bytes(b"n4");
        }
        if w.n6 {
            l.bytes(b"n6");
        }
    });
}

fn encode_args(e: &mut Encoder, q: &Query) {
    // Sorted: id implied_port info_hash noseed port scrape seed target token want.
    e.dict(|a| {
        a.entry(b"id", |e| e.bytes(&q.id.0));
        match &q.kind {
            QueryKind::Ping | QueryKind::Unknown { .. } => {}
            QueryKind::FindNode { target, want } => {
                a.entry(b"target", |e| e.bytes(&target.0));
                if let Some(w) = want {
                    a.entry(b"want", |e| encode_want(e, w));
                }
            }
            QueryKind::GetPeers {
                info_hash,
                want,
                noseed,
                scrape,
            } => {
                a.entry(b"info_hash", |e| e.bytes(info_hash));
                if *noseed {
                    a.entry(b"noseed", |e| e.int(1));
                }
                if *scrape {
                    a.entry(b"scrape", |e| e.int(1));
                }
                if let Some(w) = want {
                    a.entry(b"want", |e| encode_want(e, w));
                }
            }
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => {
                if *implied_port {
                    a.entry(b"implied_port", |e| e.int(1));
                }
                a.entry(b"info_hash", |e| e.bytes(info_hash));
                a.entry(b"port", |e| e.int(i64::from(*port)));
                if *seed {
                    a.entry(b"seed", |e| e.int(1));
                }
                a.entry(b"token", |e| e.bytes(token));
            }
        }
    });
}

fn encode_response(e: &mut Encoder, r: &Response) {
    // Sorted: BFpe BFsd id nodes nodes6 token values.
    e.dict(|d| {
        if let Some(b) = &r.peers_bloom {
            d.entry(b"BFpe", |e| e.bytes(&b[..]));
        }
        if let Some(b) = &r.seeds_bloom {
            d.entry(b"BFsd", |e| e.bytes(&b[..]));
        }
        d.entry(b"id", |e| e.bytes(&r.id.0));
        if let Some(n) = &r.nodes {
            d.entry(b"nodes", |e| e.bytes(&compact_nodes(n, false)));
        }
        if let Some(n) = &r.nodes6 {
            d.entry(b"nodes6", |e| e.bytes(&compact_nodes(n, true)));
        }
        if let Some(t) = &r.token {
            d.entry(b"token", |e| e.bytes(t));
        }
        if !r.values.is_empty() {
            d.entry(b"values", |e| {
                e.list(|l| {
                    for p in &r.values {
                        l.bytes(&compact_addr(p));
                    }
                })
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(packet: &[u8]) -> DecodeErrorKind {
        decode(packet).unwrap_err().kind
    }

    #[test]
    fn ping_query_from_bep5_decodes() {
        // "ping Query = {"t":"aa", "y":"q", "q":"ping", "a":{"id":"abcdefghij0123456789"}}"
        let m = decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").unwrap();
        assert_eq!(m.transaction, b"aa");
        assert_eq!(
            m.body,
            Body::Query(Query {
                id: NodeId(*b"abcdefghij0123456789"),
                kind: QueryKind::Ping
            })
        );
    }

    #[test]
    fn missing_and_mistyped_keys_are_named() {
        assert_eq!(
            kind(b"d1:ade1:q4:ping1:t2:aa1:y1:qe"),
            DecodeErrorKind::Missing { what: "a.id" }
        );
        assert_eq!(
            kind(b"d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe"),
            DecodeErrorKind::WrongType {
                what: "a.id",
                found: "integer",
                expected: "string"
            }
        );
        assert_eq!(
            kind(b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"),
            DecodeErrorKind::BadLength {
                what: "a.id",
                len: 3,
                expected: "20"
            }
        );
        assert_eq!(kind(b"d1:t2:aa1:y1:xe"), DecodeErrorKind::UnknownType("x".into()));
        assert_eq!(kind(b"d1:y1:qe"), DecodeErrorKind::Missing { what: "t" });
        assert!(matches!(
            kind(b"li1ee"),
            DecodeErrorKind::WrongType { what: "message", .. }
        ));
    }

    #[test]
    fn a_malformed_query_keeps_its_transaction_for_a_203_reply() {
        let e = decode(b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe").unwrap_err();
        assert_eq!(e.query_transaction.as_deref(), Some(&b"xy"[..]));
        // A malformed response has nobody to answer.
        let e = decode(b"d1:rd2:id3:abce1:t2:xy1:y1:re").unwrap_err();
        assert_eq!(e.query_transaction, None);
    }

    #[test]
    fn bad_compact_lengths_are_errors() {
        let mut p = b"d1:rd2:id20:abcdefghij01234567895:nodes25:".to_vec();
        p.extend_from_slice(&[7u8; 25]);
        p.extend_from_slice(b"e1:t2:aa1:y1:re");
        assert_eq!(
            kind(&p),
            DecodeErrorKind::BadLength {
                what: "r.nodes",
                len: 25,
                expected: "a multiple of 26"
            }
        );
        assert!(matches!(
            kind(b"d1:rd2:id20:abcdefghij01234567896:valuesl5:abcdeee1:t2:aa1:y1:re"),
            DecodeErrorKind::BadLength {
                what: "r.values[]",
                len: 5,
                ..
            }
        ));
    }

    #[test]
    fn oversized_packets_are_refused_before_parsing() {
        let big = vec![b'x'; MAX_PACKET + 1];
        assert_eq!(
            kind(&big),
            DecodeErrorKind::TooLarge {
                size: MAX_PACKET + 1,
                limit: MAX_PACKET
            }
        );
    }

    #[test]
    fn announce_port_range_and_implied_port() {
        let p = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234565:token2:tke1:q13:announce_peer1:t2:aa1:y1:qe";
        let m = decode(p).unwrap();
        let Body::Query(Query {
            kind: QueryKind::AnnouncePeer {
                port, implied_port, ..
            },
            ..
        }) = m.body
        else {
            panic!("not an announce")
        };
        assert_eq!((port, implied_port), (0, true));
        let p = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token2:tke1:q13:announce_peer1:t2:aa1:y1:qe";
        assert_eq!(
            kind(p),
            DecodeErrorKind::OutOfRange {
                what: "a.port",
                value: 70000
            }
        );
    }

    #[test]
    fn odd_extras_are_ignored_not_fatal() {
        // `v` too long, `ip` of a bad length, `ro` as a string: the message still decodes.
        let p = b"d2:ip3:abc1:rd2:id20:mnopqrstuvwxyz123456e2:ro1:x1:t2:aa1:v20:aaaaaaaaaaaaaaaaaaaa1:y1:re";
        let m = decode(p).unwrap();
        assert_eq!((m.ip, m.version, m.read_only), (None, None, false));
    }
}
