//! Piece geometry on disk: positioned reads across a torrent's files and parallel piece hashing, shared by
//! torrent creation and verification.
