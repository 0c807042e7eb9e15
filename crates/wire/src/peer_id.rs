//! The 20-byte peer id of the handshake: the one `metainfo::PeerId`, shared with the tracker protocol.

pub use metainfo::PeerId;
