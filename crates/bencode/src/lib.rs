//! Strict, zero-copy bencode (BEP 3): decode into a borrowed tree that remembers each value's raw bytes, and
//! encode canonically.
//!
//! Every other part of bitswarm speaks bencode, and the info-hash of a torrent is the hash of the `info`
//! value's bytes *exactly as received*, so a decoded [`Value`] keeps the slice of input it was parsed from
//! ([`Value::raw`]) and its byte offset ([`Value::offset`]).
//!
//! The decoder is strict by default: integers must be canonical (`i0e`, never `i-0e` or `i03e`), dictionary
//! keys must be byte strings in strictly ascending order (no duplicates), and [`decode`] rejects trailing
//! bytes. Hostile input is bounded by [`Limits`] (nesting depth, input size, number of values, string length);
//! every failure is an [`Error`] with the byte offset where it was found. A buffer that merely ends too soon is
//! reported as [`ErrorKind::Incomplete`], so stream decoders can tell "wait for more" from "malformed".
//!
//! ```
//! let input = b"d4:infod4:name3:abce3:numi42ee";
//! let value = bencode::decode(input).unwrap();
//! let dict = value.as_dict().unwrap();
//! assert_eq!(dict.get(b"num").and_then(|v| v.as_int()), Some(42));
//! let info = dict.get(b"info").unwrap();
//! assert_eq!(info.raw(), b"d4:name3:abce");
//! assert_eq!(info.offset(), 7);
//!
//! let mut out = bencode::Encoder::new();
//! out.dict(|d| {
//!     d.entry(b"a", |e| e.int(1));
//!     d.entry(b"b", |e| e.bytes(b"xyz"));
//! });
//! assert_eq!(out.finish(), b"d1:ai1e1:b3:xyze");
//! ```
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod decode;
mod encode;
mod owned;

pub use decode::{decode, decode_prefix, decode_with, DecodeOptions, Decoder, Limits};
pub use encode::{DictEncoder, Encoder};
pub use owned::OwnedValue;

/// What went wrong while decoding, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {kind} at byte {offset}")]
pub struct Error {
    /// Byte offset in the input at which the problem was found.
    pub offset: usize,
    /// The kind of problem.
    pub kind: ErrorKind,
}

/// The kinds of decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The input ended inside a value: more bytes may complete it.
    #[error("input ends inside a value (incomplete)")]
    Incomplete,
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte 0x{0:02x}")]
    UnexpectedByte(u8),
    /// An integer with a leading zero, `-0`, an empty body or a lone `-`.
    #[error("non-canonical integer")]
    NonCanonicalInteger,
    /// An integer that does not fit in 64 signed bits.
    #[error("integer out of range")]
    IntegerOverflow,
    /// A string length with a leading zero or too many digits.
    #[error("invalid string length")]
    InvalidLength,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a byte string")]
    KeyNotString,
    /// A dictionary key not greater than the key before it.
    #[error("dictionary key {key:?} is out of order")]
    UnsortedKey {
        /// The offending key, lossily as text.
        key: String,
    },
    /// The same dictionary key twice.
    #[error("duplicate dictionary key {key:?}")]
    DuplicateKey {
        /// The repeated key, lossily as text.
        key: String,
    },
    /// Bytes after the one top-level value.
    #[error("trailing bytes after the value")]
    TrailingBytes,
    /// Lists and dictionaries nested deeper than allowed.
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// The whole input is larger than allowed.
    #[error("input of {size} bytes exceeds the limit of {limit}")]
    InputTooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More values than allowed in one document.
    #[error("more than {0} values")]
    TooManyValues(usize),
    /// A byte string longer than allowed.
    #[error("string of {len} bytes exceeds the limit of {limit}")]
    StringTooLong {
        /// Declared length.
        len: u64,
        /// The limit.
        limit: usize,
    },
}

impl Error {
    /// True if the input was a valid prefix that ended too soon.
    pub fn is_incomplete(&self) -> bool {
        matches!(self.kind, ErrorKind::Incomplete)
    }
}

/// A decoded value, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    raw: &'a [u8],
    offset: usize,
    kind: Kind<'a>,
}

/// The four bencode types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `i...e`
    Int(i64),
    /// `N:bytes`
    Bytes(&'a [u8]),
    /// `l...e`
    List(Vec<Value<'a>>),
    /// `d...e`
    Dict(Dict<'a>),
}

/// A decoded dictionary: entries in input order (ascending when decoded strictly).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    entries: Vec<(&'a [u8], Value<'a>)>,
    sorted: bool,
}

impl<'a> Value<'a> {
    /// The exact input bytes this value was decoded from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    /// Offset of the value's first byte in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// The value itself.
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }
    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }
    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }
    /// A short name of the type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Int(_) => "integer",
            Kind::Bytes(_) => "string",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dictionary",
        }
    }
    /// Re-encode canonically (for a strictly decoded value this equals [`Value::raw`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.value(self);
        e.finish()
    }
    /// An owned copy of this value.
    pub fn to_owned_value(&self) -> OwnedValue {
        match &self.kind {
            Kind::Int(i) => OwnedValue::Int(*i),
            Kind::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Kind::List(l) => OwnedValue::List(l.iter().map(Value::to_owned_value).collect()),
            Kind::Dict(d) => {
                OwnedValue::Dict(d.iter().map(|(k, v)| (k.to_vec(), v.to_owned_value())).collect())
            }
        }
    }
}

impl<'a> Dict<'a> {
    /// Look a key up (binary search when the keys are known to be sorted).
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        if self.sorted {
            self.entries
                .binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .and_then(|i| self.entries.get(i))
                .map(|(_, v)| v)
        } else {
            self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
        }
    }
    /// Entries in input order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 64 {
        let mut end = 64;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", s.get(..end).unwrap_or_default())
    } else {
        s.into_owned()
    }
}
