//! The decoder: recursive descent over a byte slice, bounded by [`Limits`].

use std::collections::HashSet;

use crate::{lossy, Dict, Error, ErrorKind, Kind, Value};

/// Bounds against hostile input. The defaults fit any real torrent file, DHT or tracker message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of lists and dictionaries (the top-level value is depth 1).
    pub max_depth: usize,
    /// Maximum input size in bytes.
    pub max_input: usize,
    /// Maximum number of values (integers, strings, lists, dictionaries; keys included).
    pub max_values: usize,
    /// Maximum length of one byte string.
    pub max_string: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_input: 256 << 20,
            max_values: 16 << 20,
            max_string: 256 << 20,
        }
    }
}

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Resource limits.
    pub limits: Limits,
    /// Require dictionary keys in strictly ascending order (duplicates are always rejected).
    pub sorted_keys: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            limits: Limits::default(),
            sorted_keys: true,
        }
    }
}

impl DecodeOptions {
    /// Strict options (the default).
    pub fn strict() -> Self {
        Self::default()
    }
    /// Accept dictionaries whose keys are out of order (still no duplicates). For peers known to misorder.
    pub fn lenient() -> Self {
        DecodeOptions {
            sorted_keys: false,
            ..Self::default()
        }
    }
    /// Replace the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// Decode exactly one value that fills `input`, strictly and with default limits.
pub fn decode(input: &[u8]) -> Result<Value<'_>, Error> {
    decode_with(input, DecodeOptions::default())
}

/// Decode exactly one value that fills `input`, with the given options.
pub fn decode_with(input: &[u8], options: DecodeOptions) -> Result<Value<'_>, Error> {
    let (value, used) = Decoder::new(input, options).value_prefix()?;
    if used != input.len() {
        return Err(Error {
            offset: used,
            kind: ErrorKind::TrailingBytes,
        });
    }
    Ok(value)
}

/// Decode one value from the start of `input`, returning it and the number of bytes it used. Bytes after it
/// are left alone (for stream framing); a buffer that ends inside the value gives [`ErrorKind::Incomplete`].
pub fn decode_prefix(input: &[u8], options: DecodeOptions) -> Result<(Value<'_>, usize), Error> {
    Decoder::new(input, options).value_prefix()
}

/// A single-use decoder over one input.
#[derive(Debug)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
    options: DecodeOptions,
}

impl<'a> Decoder<'a> {
    /// A decoder over `input`.
    pub fn new(input: &'a [u8], options: DecodeOptions) -> Self {
        Decoder {
            input,
            pos: 0,
            values: 0,
            options,
        }
    }

    /// Decode the value at the start; returns it and the bytes used.
    pub fn value_prefix(mut self) -> Result<(Value<'a>, usize), Error> {
        let limit = self.options.limits.max_input;
        if self.input.len() > limit {
            return Err(Error {
                offset: limit,
                kind: ErrorKind::InputTooLarge {
                    size: self.input.len(),
                    limit,
                },
            });
        }
        let v = self.value(1)?;
        Ok((v, self.pos))
    }

    fn err(&self, offset: usize, kind: ErrorKind) -> Error {
        Error { offset, kind }
    }

    fn peek(&self) -> Result<u8, Error> {
        self.input.get(self.pos).copied().ok_or(Error {
            offset: self.pos,
            kind: ErrorKind::Incomplete,
        })
    }

    fn count(&mut self) -> Result<(), Error> {
        self.values += 1;
        if self.values > self.options.limits.max_values {
            return Err(self.err(self.pos, ErrorKind::TooManyValues(self.options.limits.max_values)));
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        let start = self.pos;
        self.count()?;
        let kind = match self.peek()? {
            b'i' => {
                self.pos += 1;
                Kind::Int(self.int()?)
            }
            b'0'..=b'9' => Kind::Bytes(self.bytes()?),
            b'l' => {
                self.enter(depth)?;
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek()? == b'e' {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                }
                Kind::List(items)
            }
            b'd' => {
                self.enter(depth)?;
                self.pos += 1;
                Kind::Dict(self.dict(depth)?)
            }
            other => return Err(self.err(start, ErrorKind::UnexpectedByte(other))),
        };
        let raw = self.input.get(start..self.pos).unwrap_or_default();
        Ok(Value {
            raw,
            offset: start,
            kind,
        })
    }

    fn enter(&self, depth: usize) -> Result<(), Error> {
        if depth > self.options.limits.max_depth {
            return Err(self.err(self.pos, ErrorKind::TooDeep(self.options.limits.max_depth)));
        }
        Ok(())
    }

    fn dict(&mut self, depth: usize) -> Result<Dict<'a>, Error> {
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut seen: Option<HashSet<&'a [u8]>> = None;
        loop {
            let key_at = self.pos;
            match self.peek()? {
                b'e' => {
                    self.pos += 1;
                    break;
                }
                b'0'..=b'9' => {}
                _ => return Err(self.err(key_at, ErrorKind::KeyNotString)),
            }
            self.count()?;
            let key = self.bytes()?;
            let dup = || Error {
                offset: key_at,
                kind: ErrorKind::DuplicateKey { key: lossy(key) },
            };
            if let Some(seen) = seen.as_mut() {
                // Already out of order (lenient mode): every key must be checked against all before it.
                if !seen.insert(key) {
                    return Err(dup());
                }
            } else if let Some((prev, _)) = entries.last() {
                match (*prev).cmp(key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Err(dup()),
                    std::cmp::Ordering::Greater => {
                        if self.options.sorted_keys {
                            return Err(self.err(key_at, ErrorKind::UnsortedKey { key: lossy(key) }));
                        }
                        let mut set: HashSet<&[u8]> = entries.iter().map(|(k, _)| *k).collect();
                        if !set.insert(key) {
                            return Err(dup());
                        }
                        seen = Some(set);
                    }
                }
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Dict {
            entries,
            sorted: seen.is_none(),
        })
    }

    /// Parse the integer body after `i`, through the closing `e`.
    fn int(&mut self) -> Result<i64, Error> {
        let start = self.pos;
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut value: i64 = 0;
        loop {
            let b = self.peek()?;
            match b {
                b'0'..=b'9' => {
                    let d = i64::from(b - b'0');
                    value = value
                        .checked_mul(10)
                        .and_then(|v| {
                            if negative {
                                v.checked_sub(d)
                            } else {
                                v.checked_add(d)
                            }
                        })
                        .ok_or(Error {
                            offset: start,
                            kind: ErrorKind::IntegerOverflow,
                        })?;
                    self.pos += 1;
                }
                b'e' => break,
                other => return Err(self.err(self.pos, ErrorKind::UnexpectedByte(other))),
            }
        }
        let digits = self.input.get(digits_start..self.pos).unwrap_or_default();
        let canonical = match digits {
            [] => false,
            [b'0'] => !negative,
            [b'0', ..] => false,
            _ => true,
        };
        if !canonical {
            return Err(self.err(start, ErrorKind::NonCanonicalInteger));
        }
        self.pos += 1; // the 'e'
        Ok(value)
    }

    /// Parse `N:bytes` at the current position.
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let start = self.pos;
        let mut len: u64 = 0;
        let mut ndigits = 0usize;
        loop {
            let b = self.peek()?;
            match b {
                b'0'..=b'9' => {
                    ndigits += 1;
                    if ndigits > 1 && len == 0 {
                        return Err(self.err(start, ErrorKind::InvalidLength));
                    }
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(u64::from(b - b'0')))
                        .ok_or(Error {
                            offset: start,
                            kind: ErrorKind::InvalidLength,
                        })?;
                    if len > self.options.limits.max_string as u64 {
                        // Report the whole declared length (saturating), from the digits at hand.
                        let digits = self.input.get(start..).unwrap_or_default();
                        let declared = digits
                            .iter()
                            .take_while(|d| d.is_ascii_digit())
                            .fold(0u64, |acc, d| {
                                acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                            });
                        return Err(self.err(
                            start,
                            ErrorKind::StringTooLong {
                                len: declared,
                                limit: self.options.limits.max_string,
                            },
                        ));
                    }
                    self.pos += 1;
                }
                b':' => break,
                other => return Err(self.err(self.pos, ErrorKind::UnexpectedByte(other))),
            }
        }
        self.pos += 1; // ':'
        let len = len as usize; // bounded by max_string above
        let end = self.pos.checked_add(len).ok_or(Error {
            offset: start,
            kind: ErrorKind::InvalidLength,
        })?;
        match self.input.get(self.pos..end) {
            Some(b) => {
                self.pos = end;
                Ok(b)
            }
            None => Err(self.err(self.input.len(), ErrorKind::Incomplete)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(input: &[u8]) -> ErrorKind {
        decode(input).unwrap_err().kind
    }

    #[test]
    fn decodes_each_type() {
        assert_eq!(decode(b"i42e").unwrap().as_int(), Some(42));
        assert_eq!(decode(b"i-42e").unwrap().as_int(), Some(-42));
        assert_eq!(decode(b"i0e").unwrap().as_int(), Some(0));
        assert_eq!(decode(b"4:spam").unwrap().as_bytes(), Some(&b"spam"[..]));
        assert_eq!(decode(b"0:").unwrap().as_bytes(), Some(&b""[..]));
        let l = decode(b"l4:spami1ee").unwrap();
        assert_eq!(l.as_list().unwrap().len(), 2);
        let d = decode(b"d3:cow3:moo4:spam4:eggse").unwrap();
        assert_eq!(d.as_dict().unwrap().get(b"spam").unwrap().as_str(), Some("eggs"));
        assert_eq!(d.as_dict().unwrap().get(b"cow").unwrap().raw(), b"3:moo");
        assert!(d.as_dict().unwrap().get(b"nope").is_none());
    }

    #[test]
    fn extreme_integers() {
        assert_eq!(decode(b"i9223372036854775807e").unwrap().as_int(), Some(i64::MAX));
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(kind_of(b"i9223372036854775808e"), ErrorKind::IntegerOverflow);
        assert_eq!(kind_of(b"i-9223372036854775809e"), ErrorKind::IntegerOverflow);
    }

    /// BEP 3: "i-0e is invalid. All encodings with a leading zero, such as i03e, are invalid, other than i0e".
    #[test]
    fn rejects_non_canonical_integers() {
        for bad in [&b"i-0e"[..], b"i03e", b"i-03e", b"ie", b"i-e", b"i00e"] {
            assert_eq!(
                kind_of(bad),
                ErrorKind::NonCanonicalInteger,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(kind_of(b"i1.5e"), ErrorKind::UnexpectedByte(b'.'));
        assert_eq!(kind_of(b"i+1e"), ErrorKind::UnexpectedByte(b'+'));
    }

    #[test]
    fn rejects_bad_string_lengths() {
        assert_eq!(kind_of(b"04:spam"), ErrorKind::InvalidLength);
        assert_eq!(kind_of(b"00:"), ErrorKind::InvalidLength);
        assert!(matches!(
            kind_of(b"99999999999999999999999:x"),
            ErrorKind::StringTooLong { .. }
        ));
        assert_eq!(kind_of(b"-1:x"), ErrorKind::UnexpectedByte(b'-'));
    }

    /// BEP 3: "Keys must be strings and appear in sorted order (sorted as raw strings, not alphanumerics)."
    #[test]
    fn rejects_unsorted_and_duplicate_keys() {
        let e = decode(b"d1:bi1e1:ai2ee").unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(matches!(e.kind, ErrorKind::UnsortedKey { .. }));
        assert!(matches!(
            kind_of(b"d1:ai1e1:ai2ee"),
            ErrorKind::DuplicateKey { .. }
        ));
        assert_eq!(kind_of(b"di1ei2ee"), ErrorKind::KeyNotString);
        // Lenient mode accepts order but never duplicates.
        let v = decode_with(b"d1:bi1e1:ai2ee", DecodeOptions::lenient()).unwrap();
        assert_eq!(v.as_dict().unwrap().get(b"a").unwrap().as_int(), Some(2));
        let e = decode_with(b"d1:bi1e1:ai2e1:bi3ee", DecodeOptions::lenient()).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::DuplicateKey { .. }));
    }

    #[test]
    fn raw_keys_sort_as_bytes_not_text() {
        // 'Z' (0x5a) sorts before 'a' (0x61); a high byte sorts last.
        assert!(decode(b"d1:Zi1e1:ai2e1:\xffi3ee").is_ok());
        assert!(decode(b"d1:ai1e1:Zi2ee").is_err());
        // A prefix sorts before the longer key.
        assert!(decode(b"d1:ai1e2:aai2ee").is_ok());
    }

    #[test]
    fn trailing_bytes_and_prefix_mode() {
        let e = decode(b"i1ei2e").unwrap_err();
        assert_eq!(
            e,
            Error {
                offset: 3,
                kind: ErrorKind::TrailingBytes
            }
        );
        let (v, used) = decode_prefix(b"i1ei2e", DecodeOptions::default()).unwrap();
        assert_eq!((v.as_int(), used), (Some(1), 3));
    }

    #[test]
    fn incomplete_is_not_malformed() {
        let full = b"d4:infod6:lengthi10e4:name3:abcee";
        for cut in 0..full.len() {
            let e = decode(&full[..cut]).unwrap_err();
            assert!(e.is_incomplete(), "cut at {cut}: {e}");
        }
        assert!(!decode(b"d4:infoXe").unwrap_err().is_incomplete());
    }

    #[test]
    fn limits_each_have_an_error() {
        let deep = format!("{}{}", "l".repeat(65), "e".repeat(65));
        let e = decode(deep.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooDeep(64));
        assert_eq!(e.offset, 64);
        assert!(decode(format!("{}{}", "l".repeat(64), "e".repeat(64)).as_bytes()).is_ok());

        let small = Limits {
            max_depth: 4,
            max_input: 16,
            max_values: 3,
            max_string: 4,
        };
        let opts = DecodeOptions::default().with_limits(small);
        assert!(matches!(
            decode_with(b"l0:0:0:0:0:0:0:0:e", opts).unwrap_err().kind,
            ErrorKind::InputTooLarge { size: 18, limit: 16 }
        ));
        assert_eq!(
            decode_with(b"li1ei2ei3ee", opts).unwrap_err().kind,
            ErrorKind::TooManyValues(3)
        );
        assert_eq!(
            decode_with(b"5:hello", opts).unwrap_err().kind,
            ErrorKind::StringTooLong { len: 5, limit: 4 }
        );
    }

    #[test]
    fn spans_and_offsets() {
        let input = b"d1:ali1ei2ee1:bd1:ci3eee";
        let v = decode(input).unwrap();
        let d = v.as_dict().unwrap();
        let a = d.get(b"a").unwrap();
        assert_eq!((a.raw(), a.offset()), (&b"li1ei2ee"[..], 4));
        let b = d.get(b"b").unwrap();
        assert_eq!((b.raw(), b.offset()), (&b"d1:ci3ee"[..], 15));
        assert_eq!(v.raw(), input);
        assert_eq!(v.encode(), input);
    }

    #[test]
    fn error_messages_name_the_offset() {
        let e = decode(b"d1:bi1e1:ai2ee").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bencode: dictionary key \"a\" is out of order at byte 7"
        );
    }
}
