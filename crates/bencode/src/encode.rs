//! The encoder: canonical output (dictionary keys sorted as raw bytes, no duplicates) into a `Vec<u8>`.

use crate::{Kind, Value};

/// Writes bencode. Build with the closure methods; [`Encoder::finish`] returns the bytes.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }
    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
    /// Write an integer.
    pub fn int(&mut self, i: i64) {
        self.buf.push(b'i');
        self.buf.extend_from_slice(i.to_string().as_bytes());
        self.buf.push(b'e');
    }
    /// Write a byte string.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b.len().to_string().as_bytes());
        self.buf.push(b':');
        self.buf.extend_from_slice(b);
    }
    /// Write a list whose items `f` writes.
    pub fn list(&mut self, f: impl FnOnce(&mut Encoder)) {
        self.buf.push(b'l');
        f(self);
        self.buf.push(b'e');
    }
    /// Write a dictionary whose entries `f` adds; entries may come in any order and are sorted on close.
    pub fn dict(&mut self, f: impl FnOnce(&mut DictEncoder<'_>)) {
        self.buf.push(b'd');
        let start = self.buf.len();
        let mut d = DictEncoder {
            enc: self,
            start,
            entries: Vec::new(),
            sorted: true,
        };
        f(&mut d);
        d.close();
        self.buf.push(b'e');
    }
    /// Append bytes that are already valid bencode (such as a raw `info` span), unchanged.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
    }
    /// Write a decoded value canonically.
    pub fn value(&mut self, v: &Value<'_>) {
        match v.kind() {
            Kind::Int(i) => self.int(*i),
            Kind::Bytes(b) => self.bytes(b),
            Kind::List(l) => self.list(|e| l.iter().for_each(|x| e.value(x))),
            Kind::Dict(d) => self.dict(|de| {
                for (k, x) in d.iter() {
                    de.entry(k, |e| e.value(x));
                }
            }),
        }
    }
}

/// Adds entries to a dictionary being encoded.
#[derive(Debug)]
pub struct DictEncoder<'e> {
    enc: &'e mut Encoder,
    start: usize,
    /// (key, start of entry, end of entry) in `enc.buf`.
    entries: Vec<(Vec<u8>, usize, usize)>,
    sorted: bool,
}

impl DictEncoder<'_> {
    /// Add `key` with the value that `f` writes.
    pub fn entry(&mut self, key: &[u8], f: impl FnOnce(&mut Encoder)) {
        let at = self.enc.buf.len();
        self.enc.bytes(key);
        f(self.enc);
        if let Some((last, _, _)) = self.entries.last() {
            if last.as_slice() >= key {
                self.sorted = false;
            }
        }
        self.entries.push((key.to_vec(), at, self.enc.buf.len()));
    }

    fn close(self) {
        if self.sorted {
            return;
        }
        let DictEncoder {
            enc,
            start,
            mut entries,
            ..
        } = self;
        let body: Vec<u8> = enc.buf.split_off(start);
        // Stable sort then keep the first of equal keys.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        for (_, s, e) in entries {
            if let Some(part) = body.get(s - start..e - start) {
                enc.buf.extend_from_slice(part);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_canonically_and_sorts_keys() {
        let mut e = Encoder::new();
        e.dict(|d| {
            d.entry(b"zeta", |e| e.int(-3));
            d.entry(b"alpha", |e| e.list(|e| e.bytes(b"x")));
            d.entry(b"alpha", |e| e.int(9));
        });
        assert_eq!(e.finish(), b"d5:alphal1:xe4:zetai-3ee");
    }

    #[test]
    fn nested_unsorted_dicts_are_sorted() {
        let mut e = Encoder::new();
        e.dict(|d| {
            d.entry(b"b", |e| {
                e.dict(|d| {
                    d.entry(b"y", |e| e.int(1));
                    d.entry(b"x", |e| e.int(2));
                })
            });
            d.entry(b"a", |e| e.int(0));
        });
        assert_eq!(e.finish(), b"d1:ai0e1:bd1:xi2e1:yi1eee");
    }
}
