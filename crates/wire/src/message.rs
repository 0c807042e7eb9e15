//! Length-prefixed peer messages (BEP 3, 5, 6, 10, 52): decoding from a byte slice and encoding into a
//! `Vec<u8>`.

use metainfo::PieceIndex;

use crate::WireError;

/// The block size every current client requests: 16 KiB (BEP 3: "All current implementations use 2^14").
pub const BLOCK_LEN: u32 = 16 * 1024;

/// Default cap on a message's declared length (id byte plus payload): 1 MiB. It fits a bitfield for 8
/// million pieces, a 16 KiB ut_metadata piece and any piece message this crate's request cap allows.
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 1 << 20;

/// Default cap on the length of a `request` we accept: 8 blocks, 128 KiB. BEP 3 says current
/// implementations close connections that ask for more than 16 KiB; a few old clients asked for 32 or
/// 128 KiB, so the default tolerates them and a session may lower it to [`BLOCK_LEN`].
pub const DEFAULT_MAX_REQUEST_LEN: u32 = 8 * BLOCK_LEN;

/// Bytes before the block in a `piece` message: length prefix, id, index, begin.
pub const PIECE_HEADER_LEN: usize = 13;

/// Message ids, as assigned by BEP 3 (0-8), BEP 5 (9), BEP 6 (13-17), BEP 10 (20) and BEP 52 (21-23).
pub mod id {
    /// `choke` (BEP 3).
    pub const CHOKE: u8 = 0;
    /// `unchoke` (BEP 3).
    pub const UNCHOKE: u8 = 1;
    /// `interested` (BEP 3).
    pub const INTERESTED: u8 = 2;
    /// `not interested` (BEP 3).
    pub const NOT_INTERESTED: u8 = 3;
    /// `have` (BEP 3).
    pub const HAVE: u8 = 4;
    /// `bitfield` (BEP 3).
    pub const BITFIELD: u8 = 5;
    /// `request` (BEP 3).
    pub const REQUEST: u8 = 6;
    /// `piece` (BEP 3).
    pub const PIECE: u8 = 7;
    /// `cancel` (BEP 3).
    pub const CANCEL: u8 = 8;
    /// `port` (BEP 5).
    pub const PORT: u8 = 9;
    /// `suggest piece` (BEP 6).
    pub const SUGGEST_PIECE: u8 = 13;
    /// `have all` (BEP 6).
    pub const HAVE_ALL: u8 = 14;
    /// `have none` (BEP 6).
    pub const HAVE_NONE: u8 = 15;
    /// `reject request` (BEP 6).
    pub const REJECT_REQUEST: u8 = 16;
    /// `allowed fast` (BEP 6).
    pub const ALLOWED_FAST: u8 = 17;
    /// `extended` (BEP 10).
    pub const EXTENDED: u8 = 20;
    /// `hash request` (BEP 52).
    pub const HASH_REQUEST: u8 = 21;
    /// `hashes` (BEP 52).
    pub const HASHES: u8 = 22;
    /// `hash reject` (BEP 52).
    pub const HASH_REJECT: u8 = 23;
}

/// The name of a message id, for errors and logs ("unknown" for ids no BEP here assigns).
pub fn name_of(id: u8) -> &'static str {
    match id {
        id::CHOKE => "choke",
        id::UNCHOKE => "unchoke",
        id::INTERESTED => "interested",
        id::NOT_INTERESTED => "not interested",
        id::HAVE => "have",
        id::BITFIELD => "bitfield",
        id::REQUEST => "request",
        id::PIECE => "piece",
        id::CANCEL => "cancel",
        id::PORT => "port",
        id::SUGGEST_PIECE => "suggest piece",
        id::HAVE_ALL => "have all",
        id::HAVE_NONE => "have none",
        id::REJECT_REQUEST => "reject request",
        id::ALLOWED_FAST => "allowed fast",
        id::EXTENDED => "extended",
        id::HASH_REQUEST => "hash request",
        id::HASHES => "hashes",
        id::HASH_REJECT => "hash reject",
        _ => "unknown",
    }
}

/// One block of a piece: what `request`, `cancel` and `reject request` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRequest {
    /// The piece.
    pub index: PieceIndex,
    /// Byte offset of the block within the piece.
    pub begin: u32,
    /// Bytes in the block.
    pub length: u32,
}

/// The fixed part of the BEP 52 `hash request`, `hashes` and `hash reject` messages (48 bytes).
///
/// The codec checks only the layout; whether `index` is a multiple of `length` and the other rules of
/// BEP 52 hold is for the session to judge (libtorrent 2.0.8 answers some requests that break them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// Root of the file's merkle tree (its `pieces root`).
    pub pieces_root: [u8; 32],
    /// Layer of the first requested hashes, counted up from the 16 KiB leaves (0).
    pub base_layer: u32,
    /// Offset, in hashes, of the first requested hash within the base layer.
    pub index: u32,
    /// Number of hashes requested from the base layer.
    pub length: u32,
    /// Number of ancestor layers whose uncle hashes to include.
    pub proof_layers: u32,
}

/// Bytes in the fixed part of the BEP 52 hash messages.
const HASH_REQUEST_LEN: usize = 48;

/// One peer-wire message, borrowing its variable parts from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A zero-length message, sent to keep the connection open.
    KeepAlive,
    /// No data will be sent until unchoked.
    Choke,
    /// Requests will be served.
    Unchoke,
    /// The sender wants data.
    Interested,
    /// The sender wants no data.
    NotInterested,
    /// The sender completed and checked this piece.
    Have(PieceIndex),
    /// The sender's pieces, first byte's high bit = piece 0 (check it with
    /// [`Bitfield::from_bytes`](crate::Bitfield::from_bytes)).
    Bitfield(&'a [u8]),
    /// Ask for a block.
    Request(BlockRequest),
    /// A block of data, borrowed from the input buffer (no copy).
    Piece {
        /// The piece.
        index: PieceIndex,
        /// Byte offset of the block in the piece.
        begin: u32,
        /// The data.
        block: &'a [u8],
    },
    /// Withdraw a request.
    Cancel(BlockRequest),
    /// The sender's DHT node listens on this UDP port (BEP 5).
    Port(u16),
    /// "You might like to download this piece" (BEP 6).
    SuggestPiece(PieceIndex),
    /// The sender has every piece; replaces the bitfield (BEP 6).
    HaveAll,
    /// The sender has no piece; replaces the bitfield (BEP 6).
    HaveNone,
    /// A request that will not be served (BEP 6).
    RejectRequest(BlockRequest),
    /// This piece will be served even while choked (BEP 6).
    AllowedFast(PieceIndex),
    /// A BEP 10 extension message: `id` 0 is the extended handshake, others are the ids the receiver
    /// assigned in its handshake's `m` dictionary.
    Extended {
        /// Extension message id.
        id: u8,
        /// The rest of the message (for ut_metadata, ut_pex and the handshake: bencode, see
        /// [`ExtendedHandshake`](crate::ExtendedHandshake), [`MetadataMessage`](crate::MetadataMessage)
        /// and [`PexMessage`](crate::PexMessage)).
        payload: &'a [u8],
    },
    /// Ask for merkle tree hashes (BEP 52).
    HashRequest(HashRequest),
    /// Merkle tree hashes answering a hash request (BEP 52).
    Hashes {
        /// The request being answered.
        request: HashRequest,
        /// The hashes, 32 bytes each: the base layer's, then the uncle hashes toward the root.
        hashes: &'a [u8],
    },
    /// A hash request that will not be served (BEP 52).
    HashReject(HashRequest),
    /// A message with an id this crate does not know, kept whole so the session can ignore it rather than
    /// close the connection. Encoding one whose `id` is known writes that message's bytes unchecked.
    Unknown {
        /// The message id.
        id: u8,
        /// Everything after the id.
        payload: &'a [u8],
    },
}

/// Decoding limits: a session sets them once and passes them to [`decode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest declared message length (id byte plus payload) accepted. A larger length prefix is an
    /// error as soon as its four bytes arrive, so a peer cannot make the receiver buffer a huge body.
    pub max_message_len: u32,
    /// Largest `request` length accepted (1 to this many bytes).
    pub max_request_len: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_request_len: DEFAULT_MAX_REQUEST_LEN,
        }
    }
}

/// Decode the message at the start of `buf`, accepting declared lengths up to `max_len` and the default
/// request cap ([`DEFAULT_MAX_REQUEST_LEN`]). See [`decode_with`].
pub fn decode(buf: &[u8], max_len: u32) -> Result<Option<(Message<'_>, usize)>, WireError> {
    decode_with(
        buf,
        &Limits {
            max_message_len: max_len,
            ..Limits::default()
        },
    )
}

/// Decode the message at the start of `buf`.
///
/// - `Ok(Some((message, used)))`: a whole message; the next one starts at `buf[used..]`.
/// - `Ok(None)`: `buf` is a valid start of a message that has not fully arrived; [`needed`] says how many
///   more bytes to wait for.
/// - `Err(_)`: malformed. Checked as early as possible: a length over `limits.max_message_len` as soon
///   as the prefix is in, a length that the message type does not allow as soon as the id is in, the
///   payload once it is all there.
pub fn decode_with<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<(Message<'a>, usize)>, WireError> {
    let Some(len) = read_u32(buf, 0) else {
        return Ok(None);
    };
    if len > limits.max_message_len {
        return Err(WireError::MessageTooLong {
            id: buf.get(4).copied(),
            len,
            max: limits.max_message_len,
        });
    }
    if len == 0 {
        return Ok(Some((Message::KeepAlive, 4)));
    }
    let Some(&msg_id) = buf.get(4) else {
        return Ok(None);
    };
    check_len(msg_id, len)?;
    let total = (len as usize).saturating_add(4);
    let Some(payload) = buf.get(5..total) else {
        return Ok(None);
    };
    let message = parse_payload(msg_id, payload, limits)?;
    Ok(Some((message, total)))
}

/// How many more bytes `buf` needs before the message at its start is complete: 0 if it is (or if its
/// length prefix is one [`decode`] rejects); while fewer than 4 bytes are in, the bytes missing from the
/// length prefix (a lower bound).
pub fn needed(buf: &[u8]) -> usize {
    match read_u32(buf, 0) {
        None => 4usize.saturating_sub(buf.len()),
        Some(len) => (len as usize).saturating_add(4).saturating_sub(buf.len()),
    }
}

/// Check a declared length against the message type before waiting for the payload.
fn check_len(msg_id: u8, len: u32) -> Result<(), WireError> {
    let exact = |expected: u32| {
        if len == expected {
            Ok(())
        } else {
            Err(WireError::BadLength {
                name: name_of(msg_id),
                id: msg_id,
                len,
                expected,
            })
        }
    };
    let at_least = |min: u32| {
        if len >= min {
            Ok(())
        } else {
            Err(WireError::TooShort {
                name: name_of(msg_id),
                id: msg_id,
                len,
                min,
            })
        }
    };
    match msg_id {
        id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED | id::HAVE_ALL | id::HAVE_NONE => {
            exact(1)
        }
        id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => exact(5),
        id::REQUEST | id::CANCEL | id::REJECT_REQUEST => exact(13),
        id::PORT => exact(3),
        id::PIECE => at_least(9),
        id::EXTENDED => at_least(2),
        id::HASH_REQUEST | id::HASH_REJECT => exact(1 + HASH_REQUEST_LEN as u32),
        id::HASHES => {
            at_least(1 + HASH_REQUEST_LEN as u32)?;
            let hashes = (len as usize).saturating_sub(1 + HASH_REQUEST_LEN);
            if hashes.is_multiple_of(32) {
                Ok(())
            } else {
                Err(WireError::HashesNotWhole { len: hashes })
            }
        }
        // Bitfield: any length here (its size depends on the torrent, see `Bitfield::from_bytes`);
        // unknown ids: any length within the cap.
        _ => Ok(()),
    }
}

/// Parse a payload whose length `check_len` accepted.
fn parse_payload<'a>(msg_id: u8, p: &'a [u8], limits: &Limits) -> Result<Message<'a>, WireError> {
    let u32_at = |at: usize| read_u32(p, at).unwrap_or_default();
    let block = || BlockRequest {
        index: PieceIndex(u32_at(0)),
        begin: u32_at(4),
        length: u32_at(8),
    };
    let hash_request = || {
        let mut pieces_root = [0u8; 32];
        if let Some(root) = p.get(..32) {
            pieces_root.copy_from_slice(root);
        }
        HashRequest {
            pieces_root,
            base_layer: u32_at(32),
            index: u32_at(36),
            length: u32_at(40),
            proof_layers: u32_at(44),
        }
    };
    Ok(match msg_id {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE => Message::Have(PieceIndex(u32_at(0))),
        id::BITFIELD => Message::Bitfield(p),
        id::REQUEST => {
            let r = block();
            if r.length == 0 {
                return Err(WireError::EmptyRequest {
                    index: r.index.0,
                    begin: r.begin,
                });
            }
            if r.length > limits.max_request_len {
                return Err(WireError::RequestTooLong {
                    index: r.index.0,
                    begin: r.begin,
                    length: r.length,
                    max: limits.max_request_len,
                });
            }
            Message::Request(r)
        }
        id::PIECE => Message::Piece {
            index: PieceIndex(u32_at(0)),
            begin: u32_at(4),
            block: p.get(8..).unwrap_or_default(),
        },
        id::CANCEL => Message::Cancel(block()),
        id::PORT => Message::Port(u16::from_be_bytes([
            p.first().copied().unwrap_or_default(),
            p.get(1).copied().unwrap_or_default(),
        ])),
        id::SUGGEST_PIECE => Message::SuggestPiece(PieceIndex(u32_at(0))),
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::REJECT_REQUEST => Message::RejectRequest(block()),
        id::ALLOWED_FAST => Message::AllowedFast(PieceIndex(u32_at(0))),
        id::EXTENDED => Message::Extended {
            id: p.first().copied().unwrap_or_default(),
            payload: p.get(1..).unwrap_or_default(),
        },
        id::HASH_REQUEST => Message::HashRequest(hash_request()),
        id::HASHES => Message::Hashes {
            request: hash_request(),
            hashes: p.get(HASH_REQUEST_LEN..).unwrap_or_default(),
        },
        id::HASH_REJECT => Message::HashReject(hash_request()),
        other => Message::Unknown {
            id: other,
            payload: p,
        },
    })
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

impl Message<'_> {
    /// The message id (`None` for a keep-alive, which has none).
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::SuggestPiece(_) => id::SUGGEST_PIECE,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::RejectRequest(_) => id::REJECT_REQUEST,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::HashRequest(_) => id::HASH_REQUEST,
            Message::Hashes { .. } => id::HASHES,
            Message::HashReject(_) => id::HASH_REJECT,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// A short name for logs ("keep-alive", "piece", ...).
    pub fn name(&self) -> &'static str {
        match self.id() {
            None => "keep-alive",
            Some(i) => name_of(i),
        }
    }

    /// Bytes [`Message::encode`] writes, length prefix included.
    pub fn encoded_len(&self) -> usize {
        let payload = match self {
            Message::KeepAlive => return 4,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 0,
            Message::Have(_) | Message::SuggestPiece(_) | Message::AllowedFast(_) => 4,
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 12,
            Message::Port(_) => 2,
            Message::Bitfield(b) => b.len(),
            Message::Piece { block, .. } => 8usize.saturating_add(block.len()),
            Message::Extended { payload, .. } => 1usize.saturating_add(payload.len()),
            Message::HashRequest(_) | Message::HashReject(_) => HASH_REQUEST_LEN,
            Message::Hashes { hashes, .. } => HASH_REQUEST_LEN.saturating_add(hashes.len()),
            Message::Unknown { payload, .. } => payload.len(),
        };
        payload.saturating_add(5)
    }

    /// Append this message, length prefix included, to `out`.
    ///
    /// Fails only for a message no peer could decode: a payload too long for the 32-bit length prefix, or
    /// a `hashes` list that is not a whole number of 32-byte hashes. To send a block straight from a disk
    /// buffer without copying it here, write [`encode_piece_header`] and then the block.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let Some(msg_id) = self.id() else {
            out.extend_from_slice(&[0, 0, 0, 0]);
            return Ok(());
        };
        if let Message::Hashes { hashes, .. } = self {
            if !hashes.len().is_multiple_of(32) {
                return Err(WireError::Unencodable {
                    name: "hashes",
                    problem: format!("{} bytes of hashes is not a multiple of 32", hashes.len()),
                });
            }
        }
        let len =
            u32::try_from(self.encoded_len().saturating_sub(4)).map_err(|_| WireError::Unencodable {
                name: name_of(msg_id),
                problem: format!("{} bytes do not fit a 32-bit length", self.encoded_len()),
            })?;
        out.reserve(self.encoded_len());
        out.extend_from_slice(&len.to_be_bytes());
        out.push(msg_id);
        let block = |out: &mut Vec<u8>, r: &BlockRequest| {
            out.extend_from_slice(&r.index.0.to_be_bytes());
            out.extend_from_slice(&r.begin.to_be_bytes());
            out.extend_from_slice(&r.length.to_be_bytes());
        };
        let hash_request = |out: &mut Vec<u8>, r: &HashRequest| {
            out.extend_from_slice(&r.pieces_root);
            for v in [r.base_layer, r.index, r.length, r.proof_layers] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        };
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(i) | Message::SuggestPiece(i) | Message::AllowedFast(i) => {
                out.extend_from_slice(&i.0.to_be_bytes())
            }
            Message::Bitfield(b) => out.extend_from_slice(b),
            Message::Request(r) | Message::Cancel(r) | Message::RejectRequest(r) => block(out, r),
            Message::Piece { index, begin, block } => {
                out.extend_from_slice(&index.0.to_be_bytes());
                out.extend_from_slice(&begin.to_be_bytes());
                out.extend_from_slice(block);
            }
            Message::Port(port) => out.extend_from_slice(&port.to_be_bytes()),
            Message::Extended { id, payload } => {
                out.push(*id);
                out.extend_from_slice(payload);
            }
            Message::HashRequest(r) | Message::HashReject(r) => hash_request(out, r),
            Message::Hashes { request, hashes } => {
                hash_request(out, request);
                out.extend_from_slice(hashes);
            }
            Message::Unknown { payload, .. } => out.extend_from_slice(payload),
        }
        Ok(())
    }

    /// This message's bytes in a new vector (see [`Message::encode`]).
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// The 13-byte header of a `piece` message carrying `block_len` bytes: write it, then the block itself
/// from wherever it lies (a disk buffer, a memory map), so the data is never copied into a message buffer.
pub fn piece_header(
    index: PieceIndex,
    begin: u32,
    block_len: usize,
) -> Result<[u8; PIECE_HEADER_LEN], WireError> {
    let len = u32::try_from(block_len)
        .ok()
        .and_then(|n| n.checked_add(9))
        .ok_or_else(|| WireError::Unencodable {
            name: "piece",
            problem: format!("a block of {block_len} bytes does not fit a 32-bit length"),
        })?;
    let mut h = [0u8; PIECE_HEADER_LEN];
    let parts: [(usize, [u8; 4]); 3] = [
        (0, len.to_be_bytes()),
        (5, index.0.to_be_bytes()),
        (9, begin.to_be_bytes()),
    ];
    for (at, bytes) in parts {
        if let Some(dst) = h.get_mut(at..at + 4) {
            dst.copy_from_slice(&bytes);
        }
    }
    if let Some(b) = h.get_mut(4) {
        *b = id::PIECE;
    }
    Ok(h)
}

/// Append the header of a `piece` message (see [`piece_header`]) to `out`; the caller sends the
/// `block_len` bytes of the block after it.
pub fn encode_piece_header(
    out: &mut Vec<u8>,
    index: PieceIndex,
    begin: u32,
    block_len: usize,
) -> Result<(), WireError> {
    out.extend_from_slice(&piece_header(index, begin, block_len)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = DEFAULT_MAX_MESSAGE_LEN;

    fn one(bytes: &[u8]) -> Message<'_> {
        let (m, used) = decode(bytes, MAX).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(m.to_vec().unwrap(), bytes, "{m:?} re-encodes");
        assert_eq!(m.encoded_len(), bytes.len());
        m
    }

    fn req(index: u32, begin: u32, length: u32) -> BlockRequest {
        BlockRequest {
            index: PieceIndex(index),
            begin,
            length,
        }
    }

    #[test]
    fn bep3_messages_have_exact_bytes() {
        assert_eq!(one(&[0, 0, 0, 0]), Message::KeepAlive);
        assert_eq!(one(&[0, 0, 0, 1, 0]), Message::Choke);
        assert_eq!(one(&[0, 0, 0, 1, 1]), Message::Unchoke);
        assert_eq!(one(&[0, 0, 0, 1, 2]), Message::Interested);
        assert_eq!(one(&[0, 0, 0, 1, 3]), Message::NotInterested);
        assert_eq!(one(&[0, 0, 0, 5, 4, 0, 0, 1, 2]), Message::Have(PieceIndex(258)));
        assert_eq!(
            one(&[0, 0, 0, 3, 5, 0xff, 0xc0]),
            Message::Bitfield(&[0xff, 0xc0])
        );
        assert_eq!(
            one(&[0, 0, 0, 13, 6, 0, 0, 0, 7, 0, 0, 0x40, 0, 0, 0, 0x40, 0]),
            Message::Request(req(7, 0x4000, 0x4000))
        );
        assert_eq!(
            one(&[0, 0, 0, 12, 7, 0, 0, 0, 7, 0, 0, 0x40, 0, b'a', b'b', b'c']),
            Message::Piece {
                index: PieceIndex(7),
                begin: 0x4000,
                block: b"abc"
            }
        );
        assert_eq!(
            one(&[0, 0, 0, 13, 8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0x40, 0]),
            Message::Cancel(req(7, 0, 0x4000))
        );
    }

    #[test]
    fn bep5_6_10_52_messages_have_exact_bytes() {
        assert_eq!(one(&[0, 0, 0, 3, 9, 0x1a, 0xe1]), Message::Port(6881));
        assert_eq!(
            one(&[0, 0, 0, 5, 13, 0, 0, 0, 3]),
            Message::SuggestPiece(PieceIndex(3))
        );
        assert_eq!(one(&[0, 0, 0, 1, 14]), Message::HaveAll);
        assert_eq!(one(&[0, 0, 0, 1, 15]), Message::HaveNone);
        assert_eq!(
            one(&[0, 0, 0, 13, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0]),
            Message::RejectRequest(req(1, 0, 0x4000))
        );
        assert_eq!(
            one(&[0, 0, 0, 5, 17, 0, 0, 0, 0x37]),
            Message::AllowedFast(PieceIndex(0x37))
        );
        assert_eq!(
            one(b"\0\0\0\x04\x14\x00de"),
            Message::Extended {
                id: 0,
                payload: b"de"
            }
        );
        assert_eq!(
            one(&[0, 0, 0, 2, 20, 3]),
            Message::Extended { id: 3, payload: b"" }
        );
        let mut hr = vec![0, 0, 0, 49, 21];
        hr.extend_from_slice(&[0xaa; 32]);
        hr.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 3]);
        let request = HashRequest {
            pieces_root: [0xaa; 32],
            base_layer: 1,
            index: 2,
            length: 4,
            proof_layers: 3,
        };
        assert_eq!(one(&hr), Message::HashRequest(request));
        hr[4] = 23;
        assert_eq!(one(&hr), Message::HashReject(request));
        hr[4] = 22;
        hr[3] = 49 + 64;
        hr.extend_from_slice(&[0x11; 64]);
        assert_eq!(
            one(&hr),
            Message::Hashes {
                request,
                hashes: &[0x11; 64]
            }
        );
        assert_eq!(
            one(&[0, 0, 0, 3, 0xc8, 1, 2]),
            Message::Unknown {
                id: 0xc8,
                payload: &[1, 2]
            }
        );
        // Old ids no BEP here covers are tolerated too.
        assert_eq!(one(&[0, 0, 0, 1, 10]), Message::Unknown { id: 10, payload: &[] });
    }

    #[test]
    fn prefixes_are_incomplete_with_a_hint() {
        let bytes = [0, 0, 0, 5, 4, 0, 0, 1, 2];
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n], MAX), Ok(None), "prefix {n}");
            assert_eq!(needed(&bytes[..n]), if n < 4 { 4 - n } else { 9 - n });
        }
        assert_eq!(needed(&bytes), 0);
    }

    #[test]
    fn over_long_prefix_is_refused_before_the_body() {
        // 1 MiB + 1 declared; only the prefix has arrived.
        let e = decode(&[0, 0x10, 0, 1], MAX).unwrap_err();
        assert_eq!(
            e,
            WireError::MessageTooLong {
                id: None,
                len: (1 << 20) + 1,
                max: MAX
            }
        );
        let e = decode(&[0, 0, 0x40, 0, 7], 0x3fff).unwrap_err();
        assert_eq!(
            e.to_string(),
            "message piece (id 7) declares length 16384, over the limit of 16383"
        );
    }

    #[test]
    fn fixed_sizes_are_checked_as_soon_as_the_id_arrives() {
        let e = decode(&[0, 0, 0, 6, 4], MAX).unwrap_err();
        assert_eq!(
            e,
            WireError::BadLength {
                name: "have",
                id: 4,
                len: 6,
                expected: 5
            }
        );
        assert_eq!(e.to_string(), "have message (id 4) declares length 6, expected 5");
        for (bytes, expect) in [
            (&[0u8, 0, 0, 2, 0][..], 1),
            (&[0, 0, 0, 2, 15][..], 1),
            (&[0, 0, 0, 12, 6][..], 13),
            (&[0, 0, 0, 14, 8][..], 13),
            (&[0, 0, 0, 2, 9][..], 3),
            (&[0, 0, 0, 48, 21][..], 49),
        ] {
            match decode(bytes, MAX) {
                Err(WireError::BadLength { expected, .. }) => assert_eq!(expected, expect),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        assert!(matches!(
            decode(&[0, 0, 0, 8, 7], MAX),
            Err(WireError::TooShort { min: 9, .. })
        ));
        assert!(matches!(
            decode(&[0, 0, 0, 1, 20], MAX),
            Err(WireError::TooShort { min: 2, .. })
        ));
        assert_eq!(
            decode(&[0, 0, 0, 50, 22], MAX),
            Err(WireError::HashesNotWhole { len: 1 })
        );
    }

    #[test]
    fn request_length_is_capped() {
        let mut r = vec![0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0, 0];
        r.extend_from_slice(&(128 * 1024 + 1u32).to_be_bytes());
        assert_eq!(
            decode(&r, MAX),
            Err(WireError::RequestTooLong {
                index: 1,
                begin: 0,
                length: 131_073,
                max: 131_072
            })
        );
        let strict = Limits {
            max_request_len: BLOCK_LEN,
            ..Limits::default()
        };
        r[15..17].copy_from_slice(&[0x40, 0x01]);
        r[13..15].copy_from_slice(&[0, 0]);
        assert!(matches!(
            decode_with(&r, &strict),
            Err(WireError::RequestTooLong { length: 16385, .. })
        ));
        r[15..17].copy_from_slice(&[0x40, 0x00]);
        assert!(decode_with(&r, &strict).unwrap().is_some());
        r[15..17].copy_from_slice(&[0, 0]);
        assert_eq!(
            decode(&r, MAX),
            Err(WireError::EmptyRequest { index: 1, begin: 0 })
        );
    }

    #[test]
    fn piece_header_then_block_equals_the_whole_message() {
        let block = [7u8; 100];
        let mut out = Vec::new();
        encode_piece_header(&mut out, PieceIndex(5), 16384, block.len()).unwrap();
        assert_eq!(out.len(), PIECE_HEADER_LEN);
        out.extend_from_slice(&block);
        let whole = Message::Piece {
            index: PieceIndex(5),
            begin: 16384,
            block: &block,
        };
        assert_eq!(out, whole.to_vec().unwrap());
        assert!(piece_header(PieceIndex(0), 0, u32::MAX as usize).is_err());
    }

    #[test]
    fn uneven_hashes_are_not_encoded() {
        let m = Message::Hashes {
            request: HashRequest {
                pieces_root: [0; 32],
                base_layer: 0,
                index: 0,
                length: 1,
                proof_layers: 0,
            },
            hashes: &[0; 31],
        };
        assert!(m.to_vec().is_err());
    }
}
