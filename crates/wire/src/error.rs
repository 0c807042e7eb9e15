//! The one error type of the crate: what was wrong, in which message, with the lengths involved.

/// Why bytes could not be read (or a value could not be written) as peer-wire protocol.
///
/// Every variant but [`WireError::Incomplete`] means the peer sent something malformed: a session closes
/// the connection (or, for an extension message, may choose to ignore it). `Incomplete` only comes from
/// [`Handshake::parse`](crate::Handshake::parse) and means "wait for more bytes"; message decoding reports
/// that as `Ok(None)` instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input is a valid start of a handshake but ends too soon.
    #[error("handshake incomplete: {needed} more bytes needed")]
    Incomplete {
        /// How many more bytes are needed.
        needed: usize,
    },
    /// The handshake's first byte (the protocol string length) is not 19.
    #[error("handshake: protocol string length is {0}, expected 19")]
    BadProtocolLength(u8),
    /// The handshake's protocol string is not `BitTorrent protocol`.
    #[error("handshake: protocol string is {found:?}, expected \"BitTorrent protocol\"")]
    BadProtocolString {
        /// The bytes received (lossily as text).
        found: String,
    },
    /// A length prefix larger than the receiver allows; reported as soon as the prefix is read.
    #[error("message {} declares length {len}, over the limit of {max}", id_text(*.id))]
    MessageTooLong {
        /// The message id, if it had arrived.
        id: Option<u8>,
        /// The declared length (id byte plus payload).
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A message whose length is fixed by its type declared another length.
    #[error("{name} message (id {id}) declares length {len}, expected {expected}")]
    BadLength {
        /// Message name.
        name: &'static str,
        /// Message id.
        id: u8,
        /// The declared length (id byte plus payload).
        len: u32,
        /// The only valid length.
        expected: u32,
    },
    /// A message shorter than its type's fixed part.
    #[error("{name} message (id {id}) declares length {len}, at least {min} needed")]
    TooShort {
        /// Message name.
        name: &'static str,
        /// Message id.
        id: u8,
        /// The declared length (id byte plus payload).
        len: u32,
        /// The minimum length.
        min: u32,
    },
    /// A BEP 52 `hashes` message whose hash list is not a whole number of 32-byte hashes.
    #[error("hashes message (id 22) carries {len} bytes of hashes, not a multiple of 32")]
    HashesNotWhole {
        /// Bytes after the 48-byte header.
        len: usize,
    },
    /// A `request` for more bytes than the receiver serves.
    #[error("request (id 6) for {length} bytes at piece {index} offset {begin}, over the limit of {max}")]
    RequestTooLong {
        /// Piece index.
        index: u32,
        /// Byte offset in the piece.
        begin: u32,
        /// Requested length.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// A `request` for zero bytes.
    #[error("request (id 6) for 0 bytes at piece {index} offset {begin}")]
    EmptyRequest {
        /// Piece index.
        index: u32,
        /// Byte offset in the piece.
        begin: u32,
    },
    /// A bitfield of the wrong size for the torrent (BEP 3: drop the connection).
    #[error("bitfield of {len} bytes for {num_pieces} pieces, expected {expected} bytes")]
    BitfieldLength {
        /// Bytes received.
        len: usize,
        /// Bytes a bitfield for this torrent has.
        expected: usize,
        /// Pieces in the torrent.
        num_pieces: u32,
    },
    /// A bitfield with spare bits set after the last piece (BEP 3: drop the connection).
    #[error("bitfield for {num_pieces} pieces has spare bits set in its last byte (0x{last_byte:02x})")]
    BitfieldSpareBits {
        /// Pieces in the torrent.
        num_pieces: u32,
        /// The last byte received.
        last_byte: u8,
    },
    /// A piece index past the end of the torrent.
    #[error("piece index {index} out of range: the torrent has {num_pieces} pieces")]
    PieceOutOfRange {
        /// The index.
        index: u32,
        /// Pieces in the torrent.
        num_pieces: u32,
    },
    /// An extension message's bencoded part could not be decoded.
    #[error("{what}: {source}")]
    Bencode {
        /// Which message.
        what: &'static str,
        /// The decoding error (with its byte offset in the extension payload).
        source: bencode::Error,
    },
    /// An extension message's bencoded part is not a dictionary.
    #[error("{what}: payload is a bencoded {found}, expected a dictionary")]
    NotADict {
        /// Which message.
        what: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("{what}: key {key:?} missing")]
    MissingKey {
        /// Which message.
        what: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A key holds a value of the wrong type or out of range.
    #[error("{what}: key {key:?} {problem}")]
    BadValue {
        /// Which message.
        what: &'static str,
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// More entries than this crate accepts in one extension message.
    #[error("{what}: {count} entries in {key:?}, over the limit of {max}")]
    TooMany {
        /// Which message.
        what: &'static str,
        /// The key.
        key: &'static str,
        /// Entries received.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A compact address list whose length is not a whole number of entries.
    #[error("ut_pex: {key:?} is {len} bytes, not a multiple of {unit}")]
    CompactLength {
        /// The key.
        key: &'static str,
        /// Its length.
        len: usize,
        /// Bytes per entry (6 for IPv4, 18 for IPv6).
        unit: usize,
    },
    /// Bytes after an extension message's dictionary where none may follow.
    #[error("{what}: {len} bytes after the dictionary")]
    TrailingBytes {
        /// Which message.
        what: &'static str,
        /// How many.
        len: usize,
    },
    /// A value too long to be written with a 32-bit length prefix (or otherwise not encodable).
    #[error("cannot encode {name} message: {problem}")]
    Unencodable {
        /// Message name.
        name: &'static str,
        /// Why.
        problem: String,
    },
}

impl WireError {
    /// True if the input was a valid prefix that ended too soon (only the handshake reports this).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, WireError::Incomplete { .. })
    }
}

fn id_text(id: Option<u8>) -> String {
    match id {
        Some(id) => format!("{} (id {id})", crate::message::name_of(id)),
        None => "(id not yet received)".to_string(),
    }
}
