//! An owned bencode value, for building documents.

use std::collections::BTreeMap;

use crate::Encoder;

/// An owned value. Dictionaries are `BTreeMap`s, so encoding is always canonical.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnedValue {
    /// Integer.
    Int(i64),
    /// Byte string.
    Bytes(Vec<u8>),
    /// List.
    List(Vec<OwnedValue>),
    /// Dictionary with keys sorted as raw bytes.
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl OwnedValue {
    /// Encode canonically.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        self.encode_into(&mut e);
        e.finish()
    }

    /// Encode into an existing encoder.
    pub fn encode_into(&self, e: &mut Encoder) {
        match self {
            OwnedValue::Int(i) => e.int(*i),
            OwnedValue::Bytes(b) => e.bytes(b),
            OwnedValue::List(l) => e.list(|e| l.iter().for_each(|v| v.encode_into(e))),
            OwnedValue::Dict(d) => e.dict(|de| {
                for (k, v) in d {
                    de.entry(k, |e| v.encode_into(e));
                }
            }),
        }
    }
}

impl From<i64> for OwnedValue {
    fn from(i: i64) -> Self {
        OwnedValue::Int(i)
    }
}
impl From<&[u8]> for OwnedValue {
    fn from(b: &[u8]) -> Self {
        OwnedValue::Bytes(b.to_vec())
    }
}
impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }
}
