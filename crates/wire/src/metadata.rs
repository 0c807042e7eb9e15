//! ut_metadata (BEP 9): fetching the info dictionary from peers, 16 KiB at a time.

use crate::extended::{as_dict, int, options};
use crate::WireError;

/// Size of every metadata piece but the last (BEP 9: "The metadata is handled in blocks of 16KiB").
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

/// Pieces of metadata for an info dictionary of `total_size` bytes.
pub fn metadata_piece_count(total_size: u32) -> u32 {
    total_size.div_ceil(METADATA_PIECE_LEN as u32)
}

/// The length piece `piece` must have for an info dictionary of `total_size` bytes, or `None` if there is
/// no such piece. BEP 9: "If it is not the last piece of the metadata, it MUST be 16kiB."
pub fn metadata_piece_len(total_size: u32, piece: u32) -> Option<usize> {
    let start = (piece as usize).checked_mul(METADATA_PIECE_LEN)?;
    let left = (total_size as usize).checked_sub(start)?;
    (left > 0).then_some(left.min(METADATA_PIECE_LEN))
}

/// A ut_metadata message: a bencoded dictionary, followed in `data` messages by the raw piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    /// `msg_type` 0: please send this piece.
    Request {
        /// The metadata piece.
        piece: u32,
    },
    /// `msg_type` 1: this piece, borrowed from the input (the bytes after the dictionary).
    Data {
        /// The metadata piece.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u32,
        /// The piece's bytes (at most [`METADATA_PIECE_LEN`]; check the exact length with
        /// [`metadata_piece_len`]).
        data: &'a [u8],
    },
    /// `msg_type` 2: the sender will not send this piece.
    Reject {
        /// The metadata piece.
        piece: u32,
    },
    /// Another `msg_type`: BEP 9 says "an unrecognized message ID MUST be ignored", so it is returned
    /// rather than refused.
    Unknown {
        /// The `msg_type` value.
        msg_type: i64,
    },
}

impl<'a> MetadataMessage<'a> {
    /// Read a ut_metadata payload (the bytes after the `extended` message's extension id).
    ///
    /// Extra keys are ignored (libtorrent 2.0.8 puts `total_size` in its rejects too). Bytes after the
    /// dictionary are the piece of a `data` message and an error for any other type.
    pub fn parse(payload: &'a [u8]) -> Result<Self, WireError> {
        const WHAT: &str = "ut_metadata";
        let (value, used) = bencode::decode_prefix(payload, options())
            .map_err(|source| WireError::Bencode { what: WHAT, source })?;
        let d = as_dict(WHAT, &value)?;
        let rest = payload.get(used..).unwrap_or_default();
        let msg_type = d
            .get(b"msg_type")
            .ok_or(WireError::MissingKey {
                what: WHAT,
                key: "msg_type",
            })?
            .as_int()
            .ok_or_else(|| bad(WHAT, "msg_type", "is not an integer"))?;
        let u32_key = |key: &'static str| -> Result<u32, WireError> {
            match d.get(key.as_bytes()) {
                None => Err(WireError::MissingKey { what: WHAT, key }),
                Some(_) => int(d, key.as_bytes())
                    .ok_or_else(|| bad(WHAT, key, "is not an integer from 0 to 4294967295")),
            }
        };
        let no_trailing = |m: MetadataMessage<'a>| {
            if rest.is_empty() {
                Ok(m)
            } else {
                Err(WireError::TrailingBytes {
                    what: WHAT,
                    len: rest.len(),
                })
            }
        };
        match msg_type {
            0 => no_trailing(MetadataMessage::Request {
                piece: u32_key("piece")?,
            }),
            1 => {
                let piece = u32_key("piece")?;
                let total_size = u32_key("total_size")?;
                if rest.len() > METADATA_PIECE_LEN {
                    return Err(bad(
                        WHAT,
                        "piece",
                        &format!(
                            "{piece} carries {} bytes, more than {METADATA_PIECE_LEN}",
                            rest.len()
                        ),
                    ));
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: rest,
                })
            }
            2 => no_trailing(MetadataMessage::Reject {
                piece: u32_key("piece")?,
            }),
            other => Ok(MetadataMessage::Unknown { msg_type: other }),
        }
    }

    /// The payload: the bencoded dictionary, then for `data` the piece itself.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = bencode::Encoder::new();
        let (msg_type, piece, total_size) = match *self {
            MetadataMessage::Request { piece } => (0, Some(piece), None),
            MetadataMessage::Data {
                piece, total_size, ..
            } => (1, Some(piece), Some(total_size)),
            MetadataMessage::Reject { piece } => (2, Some(piece), None),
            MetadataMessage::Unknown { msg_type } => (msg_type, None, None),
        };
        e.dict(|d| {
            d.entry(b"msg_type", |e| e.int(msg_type));
            if let Some(piece) = piece {
                d.entry(b"piece", |e| e.int(i64::from(piece)));
            }
            if let Some(size) = total_size {
                d.entry(b"total_size", |e| e.int(i64::from(size)));
            }
        });
        let mut out = e.finish();
        if let MetadataMessage::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }
}

fn bad(what: &'static str, key: &'static str, problem: &str) -> WireError {
    WireError::BadValue {
        what,
        key,
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep9_examples() {
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei0e5:piecei0ee").unwrap(),
            MetadataMessage::Request { piece: 0 }
        );
        let data = b"d8:msg_typei1e5:piecei0e10:total_sizei34256eexxxxxxxx";
        let m = MetadataMessage::parse(data).unwrap();
        assert_eq!(
            m,
            MetadataMessage::Data {
                piece: 0,
                total_size: 34256,
                data: b"xxxxxxxx"
            }
        );
        assert_eq!(m.encode(), data);
        // BEP 9's reject example says msg_type 1 by mistake; a real reject is msg_type 2.
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei2e5:piecei0ee").unwrap(),
            MetadataMessage::Reject { piece: 0 }
        );
        assert_eq!(
            MetadataMessage::Reject { piece: 7 }.encode(),
            b"d8:msg_typei2e5:piecei7ee"
        );
    }

    #[test]
    fn unknown_types_are_returned_and_bad_ones_refused() {
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei9ee").unwrap(),
            MetadataMessage::Unknown { msg_type: 9 }
        );
        assert!(matches!(
            MetadataMessage::parse(b"d5:piecei0ee"),
            Err(WireError::MissingKey { key: "msg_type", .. })
        ));
        assert!(matches!(
            MetadataMessage::parse(b"d8:msg_typei1e5:piecei0ee"),
            Err(WireError::MissingKey {
                key: "total_size",
                ..
            })
        ));
        assert!(matches!(
            MetadataMessage::parse(b"d8:msg_typei0e5:piecei-1ee"),
            Err(WireError::BadValue { key: "piece", .. })
        ));
        assert!(matches!(
            MetadataMessage::parse(b"d8:msg_typei0e5:piecei0eeX"),
            Err(WireError::TrailingBytes { len: 1, .. })
        ));
        let mut big = b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee".to_vec();
        big.extend_from_slice(&[0; METADATA_PIECE_LEN + 1]);
        assert!(matches!(
            MetadataMessage::parse(&big),
            Err(WireError::BadValue { key: "piece", .. })
        ));
        assert!(MetadataMessage::parse(b"d8:msg_typei0e5:piecei0e").is_err());
    }

    #[test]
    fn piece_geometry() {
        assert_eq!(metadata_piece_count(0), 0);
        assert_eq!(metadata_piece_count(1), 1);
        assert_eq!(metadata_piece_count(16384), 1);
        assert_eq!(metadata_piece_count(16385), 2);
        assert_eq!(metadata_piece_len(16385, 0), Some(16384));
        assert_eq!(metadata_piece_len(16385, 1), Some(1));
        assert_eq!(metadata_piece_len(16385, 2), None);
        assert_eq!(metadata_piece_len(16384, 1), None);
        assert_eq!(metadata_piece_len(u32::MAX, u32::MAX), None);
    }
}
