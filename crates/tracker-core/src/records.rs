//! What survives a restart: completed counters, the allow-list, users with their passkeys and totals.

use metainfo::InfoHashV1;
use serde::{Deserialize, Serialize};

use crate::passkey::{Passkey, UserId};

/// The store's state of record, for the driver to save (any serde format) and hand back to
/// [`crate::SwarmStore::restore`] after a restart. Peers are not of record: they re-announce.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Records {
    /// Completed counters above zero, by info-hash.
    pub completed: Vec<CompletedRecord>,
    /// The allow-list, by info-hash.
    pub allow_list: Vec<AllowEntry>,
    /// Private-mode users, by id.
    pub users: Vec<UserRecord>,
}

/// A swarm's completed counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedRecord {
    /// The swarm.
    #[serde(with = "crate::stats::hex_info_hash")]
    pub info_hash: InfoHashV1,
    /// Completed downloads counted.
    pub completed: u32,
}

/// A registered torrent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowEntry {
    /// The torrent.
    #[serde(with = "crate::stats::hex_info_hash")]
    pub info_hash: InfoHashV1,
    /// Its total size in bytes, when the registrar knows it (it makes completion exact).
    pub size: Option<u64>,
    /// Its name, for stats pages.
    pub name: String,
}

/// A private-mode user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's id.
    pub id: UserId,
    /// The user's passkey.
    pub passkey: Passkey,
    /// Bytes uploaded over all the user's announces.
    pub uploaded: u64,
    /// Bytes downloaded over all the user's announces.
    pub downloaded: u64,
}

/// Records that cannot be restored; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Two users with one id.
    #[error("{0} appears twice in the records")]
    DuplicateUserId(UserId),
    /// Two users with one passkey.
    #[error("{0} has the passkey of another user")]
    DuplicatePasskey(UserId),
}

/// What [`crate::SwarmStore::restore`] could not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Completed counters of unregistered torrents dropped because `max_torrents` swarms were already held.
    pub completed_dropped: usize,
}

/// A user's totals, as [`crate::SwarmStore::user`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStats {
    /// The user's id.
    pub id: UserId,
    /// Bytes uploaded over all the user's announces.
    pub uploaded: u64,
    /// Bytes downloaded over all the user's announces.
    pub downloaded: u64,
}

/// Why a user could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Another user has this passkey.
    #[error("the passkey is already {0}'s")]
    PasskeyInUse(UserId),
    /// Every user id is taken.
    #[error("no user id left")]
    NoIdLeft,
}
