//! The BitTorrent peer wire protocol as a pure codec on byte slices: the handshake and its reserved bits,
//! every message of BEP 3, 5, 6, 10 and 52, the BEP 10 extended handshake, ut_metadata (BEP 9) and
//! ut_pex (BEP 11).
//!
//! Nothing here owns a socket, reads a clock or draws random numbers. A session feeds received bytes to
//! [`Handshake::parse`] and then to [`decode`], which returns one message and the bytes it used, `None`
//! while a message is still arriving ([`needed`] says how many bytes are missing), or a [`WireError`]
//! naming the message and the lengths involved. Oversized length prefixes and lengths that a message type
//! cannot have are refused as soon as the prefix and id arrive, before any body is buffered. Variable parts
//! (`bitfield`, `piece` blocks, extension payloads) borrow from the input: a block is never copied by the
//! decoder, and [`encode_piece_header`] lets a sender write a block straight from its disk buffer.
//!
//! Extension payloads are read on demand from [`Message::Extended`]: [`ExtendedHandshake`],
//! [`MetadataMessage`] and [`PexMessage`]. [`Bitfield`] checks a bitfield against the torrent's piece count.
//!
//! ```
//! use metainfo::{InfoHashV1, PieceIndex};
//! use wire::{decode, Handshake, Message, PeerId, Reserved, DEFAULT_MAX_MESSAGE_LEN};
//!
//! // Open a connection: extension protocol, fast extension, DHT.
//! let ours = Handshake {
//!     reserved: Reserved::EXTENDED | Reserved::FAST | Reserved::DHT,
//!     info_hash: InfoHashV1([0x6f; 20]),
//!     peer_id: PeerId(*b"-BS0100-0123456789ab"),
//! };
//! let bytes = ours.to_bytes();
//! let theirs = Handshake::parse(&bytes).unwrap();
//! assert!(theirs.reserved.fast() && theirs.reserved.extended());
//!
//! // Messages arrive in pieces; decode what is there, wait for the rest.
//! let mut out = Vec::new();
//! Message::HaveAll.encode(&mut out).unwrap();
//! Message::Piece { index: PieceIndex(1), begin: 0, block: b"data" }.encode(&mut out).unwrap();
//! assert_eq!(decode(&out[..7], DEFAULT_MAX_MESSAGE_LEN).unwrap(), Some((Message::HaveAll, 5)));
//! assert_eq!(decode(&out[5..10], DEFAULT_MAX_MESSAGE_LEN).unwrap(), None);
//! assert_eq!(wire::needed(&out[5..10]), 12);
//! let (piece, used) = decode(&out[5..], DEFAULT_MAX_MESSAGE_LEN).unwrap().unwrap();
//! assert_eq!(piece, Message::Piece { index: PieceIndex(1), begin: 0, block: b"data" });
//! assert_eq!(used, 17);
//!
//! // A length prefix over the limit is refused before its body arrives.
//! assert!(decode(&[0x7f, 0, 0, 0], DEFAULT_MAX_MESSAGE_LEN).is_err());
//! ```
//!
//! Encoding writes into a `Vec<u8>` rather than a `bytes::BytesMut`: a session appends to one growing
//! buffer and hands slices of it to its driver, which needs nothing more, and the crate stays free of
//! dependencies beyond bencode and metainfo.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod bitfield;
mod error;
pub mod extended;
mod handshake;
pub mod message;
mod metadata;
mod peer_id;
mod pex;

pub use bitfield::{bitfield_len, Bitfield};
pub use error::WireError;
pub use extended::{ExtendedHandshake, HANDSHAKE_ID, UT_METADATA, UT_PEX};
pub use handshake::{Handshake, Reserved, HANDSHAKE_HEADER_LEN, HANDSHAKE_LEN, PROTOCOL};
pub use message::{
    decode, decode_with, encode_piece_header, needed, piece_header, BlockRequest, HashRequest, Limits,
    Message, BLOCK_LEN, DEFAULT_MAX_MESSAGE_LEN, DEFAULT_MAX_REQUEST_LEN, PIECE_HEADER_LEN,
};
pub use metadata::{metadata_piece_count, metadata_piece_len, MetadataMessage, METADATA_PIECE_LEN};
pub use metainfo::{InfoHashV1, PieceIndex};
pub use peer_id::PeerId;
pub use pex::{PexFlags, PexMessage, MAX_PEX_PEERS};
