//! The tracker's swarm store, as a pure state machine: which peers are in which swarm, what each announce
//! gets back, what expires, what a scrape or a stats page shows, and what survives a restart. The `tracker`
//! crate's HTTP and UDP front ends parse requests (with `tracker-proto`), feed them here with the time and
//! an RNG, and encode what comes out; the store itself reads no clock, opens no socket and owns no RNG.
//!
//! ```
//! use rand::{rngs::SmallRng, SeedableRng};
//! use tracker_core::{AnnounceInput, Secs, SwarmConfig, SwarmStore};
//! use tracker_proto::{Event, InfoHashV1, PeerId};
//!
//! let mut rng = SmallRng::seed_from_u64(7);
//! let mut store = SwarmStore::new(SwarmConfig::default(), &mut rng).unwrap();
//! let torrent = InfoHashV1([0x5e; 20]);
//!
//! // A seeder announces, then a leecher, who gets the seeder back.
//! let mut seed = AnnounceInput::new(torrent, PeerId(*b"-TR3000-u43jooybnzsh"), "192.0.2.1:51413".parse().unwrap());
//! seed.event = Event::Started;
//! store.announce(Secs(0), seed, &mut rng).unwrap();
//! let mut leech = AnnounceInput::new(torrent, PeerId(*b"-LT2080-0123456789ab"), "198.51.100.7:6881".parse().unwrap());
//! leech.left = 1 << 20;
//! let out = store.announce(Secs(5), leech, &mut rng).unwrap();
//! assert_eq!((out.complete, out.incomplete), (1, 1));
//! assert_eq!(out.peers_v4, vec!["192.0.2.1:51413".parse().unwrap()]);
//!
//! // Stats name the clients; addresses only for admins.
//! let stats = store.torrent_stats(&torrent, false).unwrap();
//! assert_eq!(stats.peers[0].client, "Transmission 3.00");
//! assert_eq!(stats.peers[0].addr, None);
//!
//! // Nothing announced for interval + peer_timeout (1800 + 300 s): gone.
//! store.expire(Secs(5 + 2101), usize::MAX);
//! assert_eq!(store.global_stats().peers, 0);
//! ```
//!
//! # Rules
//! - **Time** is [`Secs`], seconds from an epoch the driver picks; **randomness** (the peers handed out, the
//!   hash keys) comes from the caller's RNG, so a seeded run is exactly reproducible.
//! - **Modes** ([`Mode`]): open (any info-hash), allow-list (only [`SwarmStore::register`]ed torrents), private
//!   (BEP 27: registered torrents, a user's [`Passkey`] in the announce path, per-user uploaded/downloaded
//!   totals from announce deltas, and a minimum ratio after a grace amount).
//! - **Identity**: within a swarm a peer is its peer id. A later announce with that id is the same peer
//!   only if it comes from the same IP address or carries the same `key` (BEP 7/15: the key "allows a
//!   client to prove its identity should its IP address change"); otherwise it is refused, so nobody can
//!   stop or redirect another client's entry. In private mode it must also carry the same user's passkey.
//! - **Events**: `stopped` removes the peer and returns no peers; `completed` counts once per peer entry;
//!   `paused` (BEP 21) marks a partial seed, which like a seeder gets no seeders.
//! - **Peer lists**: at most `numwant` (default `default_numwant`, capped at `max_numwant`), a random run of
//!   the swarm, never the requester, the requester's address family first, then the other (the driver
//!   sends what its protocol can carry); seeders get no seeders.
//! - **Derived per peer**: completion from `left` and the registered size, else the largest `left +
//!   downloaded` seen in the swarm; upload and download rates from the deltas between its last two
//!   announces (a counter that went down, a client restart, is a delta of 0).
//! - **Expiry**: a peer is removed once `interval + peer_timeout` seconds have passed since its last
//!   announce, by [`SwarmStore::expire`], which works in small steps with a budget.
//!
//! # Memory and eviction
//! Bounds: at most `max_torrents` swarms, `max_peers_per_torrent` peers in one, `max_peers` in all.
//! - **Swarms full**: a new info-hash replaces a swarm that has no peers (one of the next 64 from a
//!   rotating cursor); if there is none it is refused with "tracker full". Live swarms are never evicted.
//! - **A swarm full**: a new peer replaces the peer with the oldest last announce (the likeliest to be gone).
//! - **Peers full** (`max_peers`): a new peer is refused with "tracker full"; known peers keep announcing.
//! - **Expiry** removes swarms without peers and with nothing of record; an unregistered swarm with a
//!   completed count stays (peerless) until the table is full; a registered torrent's counter lives on in
//!   the allow-list.
//!
//! Layout: a peer is a fixed 80-byte record (IPv4; 88 for IPv6: peer id, port, key, user, the three
//! counters, first and last announce as `u32` seconds, two `f32` rates, flags), kept in one of two vectors
//! per swarm, leechers first then seeders, so a seeder's peer list is a slice away. Small swarms are
//! searched linearly; swarms above 48 peers get a hash index storing only 4-byte positions. Vectors grow by
//! an eighth instead of doubling. A swarm record is 112 bytes plus its 4-byte slot in the info-hash table. With
//! 1,000,000 IPv4 peers over 100,000 swarms the store holds 92.3 bytes per peer (measured by
//! `tests/memory.rs`, which counts allocated bytes and asserts at most 128);
//! [`SwarmConfig::memory_bound`] estimates the most the configured limits allow.
//!
//! # Invariants
//! Checked after every step of the property test (`check_invariants`):
//! - every peer is in exactly one swarm, once: peer ids are unique within a swarm;
//! - in each family's vector, leechers (`left > 0`) precede seeders (`left == 0`), and the swarm's seeder
//!   count equals its peers with `left == 0`; seeders + leechers == peers, per swarm and in the totals;
//! - the totals ([`SwarmStore::global_stats`]) equal the sums over the swarms;
//! - the info-hash table and every peer-id index point at the right entries, and a swarm above the index
//!   threshold has an index;
//! - swarms <= `max_torrents`, peers per swarm <= `max_peers_per_torrent`, peers <= `max_peers`;
//! - every user has one passkey and every passkey one user.
//!
//! Also true by construction: a completed counter only grows, except when its swarm is evicted (peerless,
//! unregistered, store full) or unregistered outside open mode; a peer's rates and its user's totals only
//! ever see non-negative deltas.
//!
//! # Persistence
//! [`SwarmStore::records`] gives what is of record (completed counters, the allow-list, users with their
//! passkeys and totals) as a serde value; the driver saves it and hands it to [`SwarmStore::restore`] after a
//! restart. Peers are not saved: clients re-announce within an interval.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod announce;
mod client;
mod config;
mod hash;
mod passkey;
mod records;
mod stats;
mod store;
mod swarm;
mod time;

#[cfg(test)]
mod tests;

pub use announce::{key_from_http, AnnounceInput, AnnounceOutcome, Bytes, Ratio, Refusal};
pub use client::client_name;
pub use config::{ConfigError, Mode, SwarmConfig, MAX_PEERS_PER_TORRENT_LIMIT};
pub use passkey::{Passkey, PasskeyParseError, UserId};
pub use records::{
    AllowEntry, CompletedRecord, Records, RestoreError, RestoreReport, UserError, UserRecord, UserStats,
};
pub use stats::{ExpireReport, GlobalStats, PeerView, TorrentStats};
pub use store::SwarmStore;
pub use time::Secs;
