//! The swarm store: every swarm, the allow-list and the users, driven by announces, scrapes and expiry.

use std::collections::HashMap;
use std::net::SocketAddr;

use hashbrown::HashTable;
use metainfo::InfoHashV1;
use rand::Rng;
use tracker_proto::{Event, ScrapeStats};

use crate::announce::{AnnounceInput, AnnounceOutcome, Bytes, Ratio, Refusal};
use crate::client::client_name;
use crate::config::{ConfigError, Mode, SwarmConfig};
use crate::hash::HashKey;
use crate::passkey::{Passkey, UserId};
use crate::records::{
    AllowEntry, CompletedRecord, Records, RestoreError, RestoreReport, UserError, UserRecord, UserStats,
};
use crate::stats::{ExpireReport, GlobalStats, PeerView, TorrentStats};
use crate::swarm::{reserve_one, trim, PeerCore, Tag, Torrent, COUNTED, HAS_KEY, PAUSED};
use crate::time::Secs;

/// A swarm grows a peer-id index past this many peers (and drops it at half): below it a linear scan of
/// the compact records is as fast as hashing.
const INDEX_THRESHOLD: usize = 48;

/// When the store is full, this many swarms (from a rotating cursor) are looked at for a peerless one to
/// replace before "tracker full" is answered.
const EVICTION_SCAN: usize = 64;

/// A registered torrent.
#[derive(Debug, Clone)]
struct Allowed {
    size: Option<u64>,
    name: String,
    /// The completed counter while the torrent has no swarm in the table (the swarm's counter is the
    /// authority while it has one, and is written back here when the swarm is removed).
    completed: u32,
}

/// A private-mode user.
#[derive(Debug, Clone)]
struct User {
    passkey: Passkey,
    uploaded: u64,
    downloaded: u64,
}

/// Peer counts of one swarm, to keep the store's totals in step.
#[derive(Debug, Clone, Copy)]
struct Counts {
    peers: u64,
    seeders: u64,
    v6: u64,
}

impl Counts {
    fn of(t: &Torrent) -> Self {
        Counts {
            peers: t.len() as u64,
            seeders: u64::from(t.seeders()),
            v6: t.v6.list.len() as u64,
        }
    }
}

/// Every swarm the tracker knows, its allow-list and its users: a state machine with no clock, no sockets
/// and no RNG of its own. See the crate docs for the rules and the invariants.
#[derive(Debug)]
pub struct SwarmStore {
    config: SwarmConfig,
    key: HashKey,
    torrents: Vec<Torrent>,
    /// Info-hash -> position in `torrents`.
    index: HashTable<u32>,
    allowed: HashMap<InfoHashV1, Allowed, HashKey>,
    users: HashMap<u32, User, HashKey>,
    passkeys: HashMap<Passkey, u32, HashKey>,
    next_user: u32,
    /// Expiry position: swarm, then peer within it (IPv4 peers first).
    expire_cursor: (usize, usize),
    eviction_cursor: usize,
    totals: GlobalStats,
    index_threshold: usize,
}

impl SwarmStore {
    /// An empty store. `rng` keys the store's hash tables (so clients cannot aim info-hashes or peer ids at
    /// one bucket); with a seeded RNG everything the store does is reproducible.
    pub fn new(config: SwarmConfig, rng: &mut impl Rng) -> Result<Self, ConfigError> {
        config.validate()?;
        let key = HashKey::random(rng);
        Ok(SwarmStore {
            config,
            key,
            torrents: Vec::new(),
            index: HashTable::new(),
            allowed: HashMap::with_hasher(key),
            users: HashMap::with_hasher(key),
            passkeys: HashMap::with_hasher(key),
            next_user: 1,
            expire_cursor: (0, 0),
            eviction_cursor: 0,
            totals: GlobalStats::default(),
            index_threshold: INDEX_THRESHOLD,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SwarmConfig {
        &self.config
    }

    /// Change the configuration (a reload). Nothing is removed at once: lower limits stop growth, and a
    /// stricter mode refuses announces for swarms that no longer qualify, which then expire.
    pub fn set_config(&mut self, config: SwarmConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    // ----- announces --------------------------------------------------------------------------------

    /// Handle one announce at time `now`; `rng` picks the peers handed out.
    ///
    /// The rules, in order: port 0 is refused; in private mode the passkey must name a user; outside open
    /// mode the torrent must be registered; a new swarm needs room (a peerless swarm is replaced, a live one
    /// never: else "tracker full"); a peer id already in the swarm may only be updated from the same IP
    /// address or with the same `key` (else "peer id in use ..."); `stopped` removes the peer; a new peer
    /// in a full swarm replaces the one with the oldest last announce; `completed` counts once per peer; in
    /// private mode the deltas since the peer's previous announce (never negative) are added to its user's
    /// totals, and a downloading user below the minimum ratio past the grace amount is refused (after the
    /// accounting, so the deltas are not lost).
    pub fn announce(
        &mut self,
        now: Secs,
        req: AnnounceInput,
        rng: &mut impl Rng,
    ) -> Result<AnnounceOutcome, Refusal> {
        self.totals.announces += 1;
        let result = self.announce_inner(now, req, rng);
        if result.is_err() {
            self.totals.refused += 1;
        }
        result
    }

    fn announce_inner(
        &mut self,
        now: Secs,
        req: AnnounceInput,
        rng: &mut impl Rng,
    ) -> Result<AnnounceOutcome, Refusal> {
        let addr = SocketAddr::new(req.addr.ip().to_canonical(), req.addr.port());
        if addr.port() == 0 {
            return Err(Refusal::InvalidPort);
        }
        let user = match self.config.mode {
            Mode::Private => {
                let passkey = req.passkey.ok_or(Refusal::MissingPasskey)?;
                Some(*self.passkeys.get(&passkey).ok_or(Refusal::UnknownPasskey)?)
            }
            Mode::Open | Mode::AllowList => None,
        };
        let registration = self.allowed.get(&req.info_hash).map(|a| (a.size, a.completed));
        if self.config.mode != Mode::Open && registration.is_none() {
            return Err(Refusal::UnregisteredTorrent);
        }
        let ti = match self.find_torrent(&req.info_hash) {
            Some(ti) => ti,
            None => {
                if req.event == Event::Stopped {
                    return Ok(self.outcome(registration.map_or(0, |r| r.1), 0, 0));
                }
                if self.totals.peers >= u64::from(self.config.max_peers) {
                    return Err(Refusal::TrackerFull);
                }
                let (size, completed) = registration.unwrap_or((None, 0));
                self.add_torrent(Torrent::new(req.info_hash, size, completed))?
            }
        };
        let key = self.key;
        let threshold = self.index_threshold;
        let room = self.totals.peers < u64::from(self.config.max_peers);
        let max_in_swarm = self.config.max_peers_per_torrent as usize;
        let Some(t) = self.torrents.get_mut(ti) else {
            return Err(Refusal::TrackerFull);
        };
        let before = Counts::of(t);

        // The peer: update it, remove it, or add it.
        let mut evicted = false;
        let mut credit = (0u64, 0u64);
        let me: Option<Tag> = match t.find(&key, &req.peer_id.0) {
            Some(tag) => {
                let Some(old) = t.core(tag).copied() else {
                    return Err(Refusal::PeerIdInUse);
                };
                if user.is_some_and(|u| u != old.user) {
                    return Err(Refusal::PeerIdInUse);
                }
                let same_key = old.flags & HAS_KEY != 0 && req.key == Some(old.key);
                let same_ip = t.ip(tag) == Some(addr.ip());
                if !same_key && !same_ip {
                    return Err(Refusal::PeerIdInUse);
                }
                // Counters restart from zero when a client restarts: a smaller value credits nothing.
                credit = (
                    req.uploaded.saturating_sub(old.uploaded),
                    req.downloaded.saturating_sub(old.downloaded),
                );
                let mut counted = false;
                if let Some(c) = t.core_mut(tag) {
                    let dt = now.since(old.last);
                    if dt > 0 {
                        c.up_rate = credit.0 as f32 / dt as f32;
                        c.down_rate = credit.1 as f32 / dt as f32;
                    }
                    c.uploaded = req.uploaded;
                    c.downloaded = req.downloaded;
                    c.left = req.left;
                    c.last = now;
                    if let Some(k) = req.key {
                        c.key = k;
                        c.flags |= HAS_KEY;
                    }
                    set_flag(&mut c.flags, PAUSED, req.event == Event::Paused);
                    if req.event == Event::Completed && c.flags & COUNTED == 0 {
                        c.flags |= COUNTED;
                        counted = true;
                    }
                }
                if counted {
                    t.completed = t.completed.saturating_add(1);
                }
                if req.event == Event::Stopped {
                    t.remove(&key, tag);
                    None
                } else {
                    let tag = if t.ip(tag) != Some(addr.ip()) || old.port != addr.port() {
                        t.set_addr(&key, tag, addr)
                    } else {
                        tag
                    };
                    Some(t.repartition(&key, tag))
                }
            }
            None if req.event == Event::Stopped => None,
            None => {
                if t.len() >= max_in_swarm {
                    if let Some(oldest) = t.oldest() {
                        t.remove(&key, oldest);
                        evicted = true;
                    }
                } else if !room {
                    return Err(Refusal::TrackerFull);
                }
                let completed = req.event == Event::Completed;
                let mut flags = if completed { COUNTED } else { 0 };
                if req.key.is_some() {
                    flags |= HAS_KEY;
                }
                if req.event == Event::Paused {
                    flags |= PAUSED;
                }
                if completed {
                    t.completed = t.completed.saturating_add(1);
                }
                // The first announce of a peer sets its baseline: only later increases are credited.
                let core = PeerCore {
                    uploaded: req.uploaded,
                    downloaded: req.downloaded,
                    left: req.left,
                    key: req.key.unwrap_or(0),
                    user: user.unwrap_or(0),
                    first: now,
                    last: now,
                    up_rate: 0.0,
                    down_rate: 0.0,
                    peer_id: req.peer_id.0,
                    port: addr.port(),
                    flags,
                };
                let tag = t.insert(&key, core, addr.ip());
                t.maintain(&key, threshold);
                // Building the index does not move peers, so the tag stands.
                Some(tag)
            }
        };
        if !t.size_known {
            t.size = t.size.max(req.left.saturating_add(req.downloaded));
        }
        let after = Counts::of(t);
        let (complete, incomplete, completed) = (t.seeders(), t.leechers(), t.completed);
        let no_seeds = me
            .and_then(|tag| t.core(tag))
            .map_or(req.left == 0, PeerCore::wants_no_seeds);
        let numwant = if req.event == Event::Stopped {
            0
        } else {
            req.numwant
                .unwrap_or(self.config.default_numwant)
                .min(self.config.max_numwant)
        };
        let (peers_v4, peers_v6) = t.select(me, addr.is_ipv6(), no_seeds, numwant as usize, rng);
        self.adjust(before, after);
        if evicted {
            self.totals.peers_evicted += 1;
        }

        if let Some(u) = user.and_then(|u| self.users.get_mut(&u)) {
            u.uploaded = u.uploaded.saturating_add(credit.0);
            u.downloaded = u.downloaded.saturating_add(credit.1);
            let min = self.config.min_ratio;
            let (up, down) = (u.uploaded, u.downloaded);
            let downloading = req.left > 0 && req.event != Event::Stopped;
            if downloading && min > 0.0 && down > 0 && down >= self.config.ratio_grace_bytes {
                let ratio = up as f64 / down as f64;
                if ratio < min {
                    return Err(Refusal::RatioTooLow {
                        ratio: Ratio(ratio),
                        min: Ratio(min),
                        uploaded: Bytes(up),
                        downloaded: Bytes(down),
                    });
                }
            }
        }

        let mut outcome = self.outcome(completed, complete, incomplete);
        outcome.peers_v4 = peers_v4;
        outcome.peers_v6 = peers_v6;
        Ok(outcome)
    }

    fn outcome(&self, downloaded: u32, complete: u32, incomplete: u32) -> AnnounceOutcome {
        AnnounceOutcome {
            peers_v4: Vec::new(),
            peers_v6: Vec::new(),
            complete,
            incomplete,
            downloaded,
            interval: self.config.interval,
            min_interval: self.config.min_interval,
        }
    }

    /// Keep the totals in step with one swarm's change.
    fn adjust(&mut self, before: Counts, after: Counts) {
        let t = &mut self.totals;
        t.peers = t.peers.saturating_sub(before.peers).saturating_add(after.peers);
        t.seeders = t
            .seeders
            .saturating_sub(before.seeders)
            .saturating_add(after.seeders);
        t.ipv6_peers = t.ipv6_peers.saturating_sub(before.v6).saturating_add(after.v6);
    }

    // ----- the swarm table --------------------------------------------------------------------------

    fn find_torrent(&self, info_hash: &InfoHashV1) -> Option<usize> {
        let torrents = &self.torrents;
        self.index
            .find(self.key.hash(&info_hash.0), |&i| {
                torrents.get(i as usize).map(|t| &t.info_hash) == Some(info_hash)
            })
            .map(|&i| i as usize)
    }

    /// Add a swarm (its info-hash must be new), replacing a peerless one if the table is full.
    fn add_torrent(&mut self, torrent: Torrent) -> Result<usize, Refusal> {
        if self.torrents.len() >= self.config.max_torrents as usize && !self.evict_peerless_torrent() {
            return Err(Refusal::TrackerFull);
        }
        let i = self.torrents.len();
        let hash = self.key.hash(&torrent.info_hash.0);
        reserve_one(&mut self.torrents, 16);
        self.torrents.push(torrent);
        let (torrents, key) = (&self.torrents, &self.key);
        self.index.insert_unique(hash, i as u32, |&j| {
            torrents.get(j as usize).map_or(0, |t| key.hash(&t.info_hash.0))
        });
        Ok(i)
    }

    /// Look at up to [`EVICTION_SCAN`] swarms for one without peers and remove it.
    fn evict_peerless_torrent(&mut self) -> bool {
        let n = self.torrents.len();
        for _ in 0..EVICTION_SCAN.min(n) {
            if self.eviction_cursor >= self.torrents.len() {
                self.eviction_cursor = 0;
            }
            let i = self.eviction_cursor;
            if self.torrents.get(i).is_some_and(Torrent::is_empty) {
                self.remove_torrent(i);
                self.totals.torrents_evicted += 1;
                return true;
            }
            self.eviction_cursor += 1;
        }
        false
    }

    /// Remove the swarm at `i` (its peers too), writing a registered torrent's completed counter back to
    /// the allow-list.
    fn remove_torrent(&mut self, i: usize) {
        let Some(t) = self.torrents.get(i) else {
            return;
        };
        let hash = self.key.hash(&t.info_hash.0);
        if let Ok(entry) = self.index.find_entry(hash, |&v| v as usize == i) {
            entry.remove();
        }
        let t = self.torrents.swap_remove(i);
        self.adjust(
            Counts::of(&t),
            Counts {
                peers: 0,
                seeders: 0,
                v6: 0,
            },
        );
        if let Some(a) = self.allowed.get_mut(&t.info_hash) {
            a.completed = t.completed;
        }
        let last = self.torrents.len();
        if i < last {
            if let Some(moved) = self.torrents.get(i) {
                let hash = self.key.hash(&moved.info_hash.0);
                if let Some(v) = self.index.find_mut(hash, |&v| v as usize == last) {
                    *v = i as u32;
                }
            }
        }
    }

    // ----- scrape, expiry ---------------------------------------------------------------------------

    /// Scrape counts for each info-hash, in order; zeros for unknown ones (a registered torrent with no
    /// swarm still reports its completed count).
    pub fn scrape(&self, info_hashes: &[InfoHashV1]) -> Vec<ScrapeStats> {
        info_hashes
            .iter()
            .map(
                |h| match self.find_torrent(h).and_then(|i| self.torrents.get(i)) {
                    Some(t) => ScrapeStats {
                        complete: t.seeders(),
                        downloaded: t.completed,
                        incomplete: t.leechers(),
                    },
                    None => ScrapeStats {
                        complete: 0,
                        downloaded: self.allowed.get(h).map_or(0, |a| a.completed),
                        incomplete: 0,
                    },
                },
            )
            .collect()
    }

    /// The swarms that have peers now, with their scrape counts: at most `max`, in table order. An
    /// embedding program (the directory) polls this to show live figures without scraping itself.
    pub fn live_swarms(&self, max: usize) -> Vec<(InfoHashV1, ScrapeStats)> {
        self.torrents
            .iter()
            .filter(|t| !t.is_empty())
            .take(max)
            .map(|t| {
                (
                    t.info_hash,
                    ScrapeStats {
                        complete: t.seeders(),
                        downloaded: t.completed,
                        incomplete: t.leechers(),
                    },
                )
            })
            .collect()
    }

    /// Remove peers whose last announce is more than `interval + peer_timeout` seconds before `now`, and
    /// swarms left without peers and with nothing of record (a registered torrent's record lives on in the
    /// allow-list; an unregistered swarm with a completed count stays, peerless, until the table is full).
    ///
    /// Incremental: examines at most about `budget` peers (one unit per peer, one per swarm finished),
    /// continuing where the previous call stopped, and stops after one full pass. Call it often with a
    /// small budget (say every second with 10,000) so no call pauses the tracker for long; `usize::MAX`
    /// sweeps everything once.
    pub fn expire(&mut self, now: Secs, budget: usize) -> ExpireReport {
        let lifetime = self.config.peer_lifetime();
        let key = self.key;
        let threshold = self.index_threshold;
        let mut report = ExpireReport::default();
        // One pass ends where it began (including the swarm the cursor was inside of, whose start was done
        // by an earlier call). Removals swap the last swarm into the hole, so a swarm may be seen twice in a
        // pass, but none that stays is missed.
        let (start, start_peer) = self.expire_cursor;
        let end = start + usize::from(start_peer > 0);
        while report.work < budget {
            let (ti, mut p) = self.expire_cursor;
            if report.wrapped && ti >= end.min(self.torrents.len()) {
                break;
            }
            if ti >= self.torrents.len() {
                self.expire_cursor = (0, 0);
                if report.wrapped {
                    break;
                }
                report.wrapped = true;
                continue;
            }
            let Some(t) = self.torrents.get_mut(ti) else {
                break;
            };
            let before = Counts::of(t);
            while report.work < budget {
                let Some(tag) = t.tag_at(p) else {
                    break;
                };
                report.work += 1;
                if t.core(tag).is_some_and(|c| now.since(c.last) > lifetime) {
                    t.remove(&key, tag);
                    report.peers_expired += 1;
                } else {
                    p += 1;
                }
            }
            // A swarm is finished (one more unit) only when the budget allows; else the next call does it.
            let unfinished = p < t.len() || report.work >= budget;
            if !unfinished {
                t.maintain(&key, threshold);
                t.trim(&key);
            }
            let after = Counts::of(t);
            let removable = t.is_empty() && (t.completed == 0 || self.allowed.contains_key(&t.info_hash));
            self.adjust(before, after);
            if unfinished {
                self.expire_cursor = (ti, p);
                break;
            }
            report.work += 1;
            if removable {
                self.remove_torrent(ti);
                report.torrents_removed += 1;
                self.expire_cursor = (ti, 0);
            } else {
                self.expire_cursor = (ti + 1, 0);
            }
        }
        if report.torrents_removed > 0 {
            trim(&mut self.torrents);
            let (torrents, key) = (&self.torrents, &self.key);
            if self.index.capacity() > 2 * self.index.len() + 16 {
                self.index.shrink_to(self.index.len(), |&j| {
                    torrents.get(j as usize).map_or(0, |t| key.hash(&t.info_hash.0))
                });
            }
        }
        self.totals.peers_expired += report.peers_expired;
        self.totals.torrents_removed += report.torrents_removed;
        report
    }

    // ----- allow-list -------------------------------------------------------------------------------

    /// Put a torrent on the allow-list (or update its size and name); returns whether it is new. A known
    /// `size` makes peers' completion exact.
    pub fn register(&mut self, info_hash: InfoHashV1, size: Option<u64>, name: String) -> bool {
        if let Some(t) = self
            .find_torrent(&info_hash)
            .and_then(|i| self.torrents.get_mut(i))
        {
            if let Some(size) = size {
                t.size = size;
                t.size_known = true;
            }
        }
        match self.allowed.get_mut(&info_hash) {
            Some(a) => {
                a.size = size;
                a.name = name;
                false
            }
            None => {
                self.allowed.insert(
                    info_hash,
                    Allowed {
                        size,
                        name,
                        completed: 0,
                    },
                );
                true
            }
        }
    }

    /// Take a torrent off the allow-list; returns whether it was on it. Outside open mode its swarm goes
    /// too (peers and completed counter); in open mode the swarm stays, as any swarm would.
    pub fn unregister(&mut self, info_hash: &InfoHashV1) -> bool {
        if self.allowed.remove(info_hash).is_none() {
            return false;
        }
        if let Some(i) = self.find_torrent(info_hash) {
            if self.config.mode == Mode::Open {
                if let Some(t) = self.torrents.get_mut(i) {
                    t.size_known = false;
                }
            } else {
                self.remove_torrent(i);
            }
        }
        true
    }

    /// Whether a torrent is on the allow-list.
    pub fn is_registered(&self, info_hash: &InfoHashV1) -> bool {
        self.allowed.contains_key(info_hash)
    }

    // ----- users ------------------------------------------------------------------------------------

    /// Add a private-mode user with this passkey (generate it with [`Passkey::random`] from a secure RNG).
    pub fn add_user(&mut self, passkey: Passkey) -> Result<UserId, UserError> {
        if let Some(&id) = self.passkeys.get(&passkey) {
            return Err(UserError::PasskeyInUse(UserId(id)));
        }
        let id = self.next_user;
        self.next_user = id.checked_add(1).ok_or(UserError::NoIdLeft)?;
        self.users.insert(
            id,
            User {
                passkey,
                uploaded: 0,
                downloaded: 0,
            },
        );
        self.passkeys.insert(passkey, id);
        Ok(UserId(id))
    }

    /// Remove a user: their passkey stops working at once; their peers expire. Returns whether they existed.
    pub fn remove_user(&mut self, id: UserId) -> bool {
        match self.users.remove(&id.0) {
            Some(u) => {
                self.passkeys.remove(&u.passkey);
                true
            }
            None => false,
        }
    }

    /// A user's totals.
    pub fn user(&self, id: UserId) -> Option<UserStats> {
        self.users.get(&id.0).map(|u| UserStats {
            id,
            uploaded: u.uploaded,
            downloaded: u.downloaded,
        })
    }

    /// The user a passkey belongs to.
    pub fn user_id(&self, passkey: &Passkey) -> Option<UserId> {
        self.passkeys.get(passkey).map(|&id| UserId(id))
    }

    // ----- stats ------------------------------------------------------------------------------------

    /// A swarm's counts and peers (addresses only with `reveal_addresses`, for admins); `None` when the
    /// torrent is neither tracked nor registered.
    pub fn torrent_stats(&self, info_hash: &InfoHashV1, reveal_addresses: bool) -> Option<TorrentStats> {
        let allowed = self.allowed.get(info_hash);
        let torrent = self.find_torrent(info_hash).and_then(|i| self.torrents.get(i));
        if allowed.is_none() && torrent.is_none() {
            return None;
        }
        let mut stats = TorrentStats {
            info_hash: *info_hash,
            name: allowed.map(|a| a.name.clone()),
            size: allowed.and_then(|a| a.size),
            size_for_completion: allowed.and_then(|a| a.size).unwrap_or(0),
            seeders: 0,
            leechers: 0,
            completed: allowed.map_or(0, |a| a.completed),
            peers: Vec::new(),
        };
        if let Some(t) = torrent {
            stats.size_for_completion = t.size;
            stats.seeders = t.seeders();
            stats.leechers = t.leechers();
            stats.completed = t.completed;
            stats.peers = t
                .peers()
                .map(|(c, addr)| PeerView {
                    completion: completion(c.left, t.size),
                    upload_rate: c.up_rate,
                    download_rate: c.down_rate,
                    is_seed: c.is_seed(),
                    is_paused: c.flags & PAUSED != 0,
                    addr: reveal_addresses.then_some(addr),
                    client: client_name(&tracker_proto::PeerId(c.peer_id)),
                    first_announce: c.first,
                    last_announce: c.last,
                })
                .collect();
            stats.peers.sort_by(|a, b| b.completion.total_cmp(&a.completion));
        }
        Some(stats)
    }

    /// Totals over the whole store.
    pub fn global_stats(&self) -> GlobalStats {
        GlobalStats {
            torrents: self.torrents.len() as u64,
            leechers: self.totals.peers.saturating_sub(self.totals.seeders),
            ipv4_peers: self.totals.peers.saturating_sub(self.totals.ipv6_peers),
            registered_torrents: self.allowed.len() as u64,
            users: self.users.len() as u64,
            ..self.totals
        }
    }

    // ----- records ----------------------------------------------------------------------------------

    /// The state of record, sorted, for the driver to save: completed counters, the allow-list, users.
    pub fn records(&self) -> Records {
        let mut completed: Vec<CompletedRecord> = self
            .torrents
            .iter()
            .map(|t| CompletedRecord {
                info_hash: t.info_hash,
                completed: t.completed,
            })
            .chain(
                self.allowed
                    .iter()
                    .filter(|(h, _)| self.find_torrent(h).is_none())
                    .map(|(h, a)| CompletedRecord {
                        info_hash: *h,
                        completed: a.completed,
                    }),
            )
            .filter(|r| r.completed > 0)
            .collect();
        completed.sort_unstable_by_key(|r| r.info_hash);
        let mut allow_list: Vec<AllowEntry> = self
            .allowed
            .iter()
            .map(|(h, a)| AllowEntry {
                info_hash: *h,
                size: a.size,
                name: a.name.clone(),
            })
            .collect();
        allow_list.sort_unstable_by_key(|e| e.info_hash);
        let mut users: Vec<UserRecord> = self
            .users
            .iter()
            .map(|(&id, u)| UserRecord {
                id: UserId(id),
                passkey: u.passkey,
                uploaded: u.uploaded,
                downloaded: u.downloaded,
            })
            .collect();
        users.sort_unstable_by_key(|u| u.id);
        Records {
            completed,
            allow_list,
            users,
        }
    }

    /// Load saved records (normally into a fresh store, before the first announce): the allow-list and the
    /// users are replaced, completed counters are set. Counters of unregistered torrents become peerless
    /// swarms, as many as `max_torrents` allows. On error nothing changes.
    pub fn restore(&mut self, records: Records) -> Result<RestoreReport, RestoreError> {
        let mut users = HashMap::with_capacity_and_hasher(records.users.len(), self.key);
        let mut passkeys = HashMap::with_capacity_and_hasher(records.users.len(), self.key);
        let mut next_user = 1u32;
        for u in &records.users {
            if passkeys.insert(u.passkey, u.id.0).is_some() {
                return Err(RestoreError::DuplicatePasskey(u.id));
            }
            let user = User {
                passkey: u.passkey,
                uploaded: u.uploaded,
                downloaded: u.downloaded,
            };
            if users.insert(u.id.0, user).is_some() {
                return Err(RestoreError::DuplicateUserId(u.id));
            }
            next_user = next_user.max(u.id.0.saturating_add(1));
        }
        self.users = users;
        self.passkeys = passkeys;
        self.next_user = next_user;

        self.allowed = HashMap::with_capacity_and_hasher(records.allow_list.len(), self.key);
        for e in records.allow_list {
            if let Some(t) = self
                .find_torrent(&e.info_hash)
                .and_then(|i| self.torrents.get_mut(i))
            {
                if let Some(size) = e.size {
                    t.size = size;
                    t.size_known = true;
                }
            }
            let entry = Allowed {
                size: e.size,
                name: e.name,
                completed: 0,
            };
            self.allowed.insert(e.info_hash, entry);
        }

        let mut report = RestoreReport::default();
        for r in records.completed {
            if let Some(t) = self
                .find_torrent(&r.info_hash)
                .and_then(|i| self.torrents.get_mut(i))
            {
                t.completed = r.completed;
            } else if let Some(a) = self.allowed.get_mut(&r.info_hash) {
                a.completed = r.completed;
            } else if self.torrents.len() < self.config.max_torrents as usize {
                let _ = self.add_torrent(Torrent::new(r.info_hash, None, r.completed));
            } else {
                report.completed_dropped += 1;
            }
        }
        Ok(report)
    }

    // ----- test support -----------------------------------------------------------------------------

    /// Grow peer-id indexes past this many peers instead of the default (tests exercise the index with
    /// small swarms).
    #[cfg(test)]
    pub(crate) fn set_index_threshold(&mut self, threshold: usize) {
        self.index_threshold = threshold;
    }

    /// Check every invariant of the crate docs; a description of the first one broken.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let c = &self.config;
        if self.torrents.len() > c.max_torrents as usize {
            return Err(format!("{} swarms > max_torrents", self.torrents.len()));
        }
        if self.index.len() != self.torrents.len() {
            return Err("swarm index size".into());
        }
        let (mut peers, mut seeders, mut v6) = (0u64, 0u64, 0u64);
        for (i, t) in self.torrents.iter().enumerate() {
            if self.find_torrent(&t.info_hash) != Some(i) {
                return Err(format!("swarm {i} not found at its place"));
            }
            if t.len() > c.max_peers_per_torrent as usize {
                return Err(format!("swarm {i} has {} peers", t.len()));
            }
            t.check(&self.key).map_err(|e| format!("swarm {i}: {e}"))?;
            let n = Counts::of(t);
            let seeds = t.peers().filter(|(p, _)| p.left == 0).count() as u64;
            if seeds != n.seeders || u64::from(t.leechers()) + seeds != n.peers {
                return Err(format!(
                    "swarm {i}: seeders {} counted, {seeds} with left 0",
                    n.seeders
                ));
            }
            if t.len() > self.index_threshold && !t.has_index() {
                return Err(format!("swarm {i}: no index at {} peers", t.len()));
            }
            peers += n.peers;
            seeders += n.seeders;
            v6 += n.v6;
        }
        let g = self.global_stats();
        if (g.peers, g.seeders, g.ipv6_peers) != (peers, seeders, v6) {
            return Err(format!(
                "totals {}/{}/{} but swarms hold {peers}/{seeders}/{v6}",
                g.peers, g.seeders, g.ipv6_peers
            ));
        }
        if g.seeders + g.leechers != g.peers {
            return Err("seeders + leechers != peers".into());
        }
        if peers > u64::from(c.max_peers) {
            return Err(format!("{peers} peers > max_peers"));
        }
        if self.users.len() != self.passkeys.len() {
            return Err("users and passkeys differ".into());
        }
        Ok(())
    }
}

fn set_flag(flags: &mut u8, flag: u8, on: bool) {
    if on {
        *flags |= flag;
    } else {
        *flags &= !flag;
    }
}

/// `1 - left / size`, within 0 and 1; without a size, 1 for a seeder and 0 otherwise.
fn completion(left: u64, size: u64) -> f32 {
    if left == 0 {
        1.0
    } else if size == 0 {
        0.0
    } else {
        (1.0 - left.min(size) as f64 / size as f64) as f32
    }
}
