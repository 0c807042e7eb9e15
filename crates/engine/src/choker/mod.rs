//! The choker: which interested peers we upload to, as BEP 3's "Choking and optimistic unchoking" describes,
//! with anti-snubbing and the seeding algorithms libtorrent offers. It is the swarm's defence against
//! free-riding: while we download, upload slots go to the peers that upload the most to us.
//!
//! # Driving it (sans-IO)
//! Inputs carry the time they happened: [`Choker::peer_connected`], [`Choker::peer_disconnected`],
//! [`Choker::set_interested`] (the peer wants data from us), [`Choker::set_we_are_interested`] (we want data
//! from the peer), [`Choker::on_downloaded_from`] / [`Choker::on_uploaded_to`] (payload bytes),
//! [`Choker::set_seeding`] and [`Choker::handle_timeout`] (with the caller's RNG). After every input drain
//! [`Choker::poll_decision`] (only changes are emitted, chokes before unchokes, each group in key order) and
//! re-arm the timer from [`Choker::poll_timeout`]. Nothing here reads a clock or a global RNG.
//!
//! The rechoke clock starts at the first time the choker is told (any input with a `now`): the first rechoke
//! is `rechoke_interval` after that, then one every `rechoke_interval` (drift-free: a late
//! `handle_timeout` does not shift later rounds).
//!
//! # The algorithm
//! - **Regular slots, every `rechoke_interval` (10 s).** Candidates are connected peers that are interested
//!   in us and not snubbed. While downloading they are ranked by how fast they upload to us (tit-for-tat);
//!   while seeding by [`SeedMode`]. The best `regular_slots` (4) are unchoked, everyone else not holding an
//!   optimistic slot is choked. Ties (for example peers that sent nothing) go to the peer that has waited
//!   longest since it was last unchoked, then the earliest connected, then the lowest key, so zero-rate peers
//!   take turns instead of the lowest keys keeping the slots.
//! - **Optimistic slots, each held for `optimistic_interval` (30 s).** When a slot is empty or its term is
//!   over, it goes to a random interested peer without a regular slot; peers connected for less than
//!   `new_peer_window` weigh `new_peer_weight` (3) times as much. A peer whose term just ended is only picked
//!   again if nobody else can be. A slot empties early when its peer disconnects, loses interest, or is
//!   promoted to a regular slot by a rechoke; it is refilled at the next rechoke, not 30 s later. Snubbed
//!   peers can hold an optimistic slot (that is how they get a chance to start reciprocating).
//! - **Anti-snubbing.** A peer is snubbed when we are interested in it and it has sent us no payload for
//!   `snub_timeout` (60 s); the clock starts when it connects and restarts when we become interested in it,
//!   so peers we want nothing from are never snubbed. Snubbed peers lose their regular slot at the next
//!   rechoke; sending us payload lifts the snub at once. While seeding nobody can reciprocate, so snubbing
//!   is ignored then.
//! - **Peers that are not interested** never count against slots. As libtorrent does, a peer that says "not
//!   interested" while unchoked is choked at once (there is nothing to send it, and its slot is freed), and
//!   choked peers that are not interested stay choked. (BEP 3's original client instead kept fast
//!   uninterested peers unchoked; libtorrent and we do not.)
//! - **Preemptive unchoke** (`preemptive_unchoke`, on by default, as in libtorrent): a peer that becomes
//!   interested while a regular slot is unused is unchoked at once instead of waiting up to 10 s for the next
//!   rechoke. Slots freed by a disconnect are only refilled at the next rechoke.
//! - **Rates** are exact sliding-window sums over the last `rate_window` (20 s) in 20 buckets; see
//!   [`Choker::download_rate`].

mod rate;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use rand::Rng;

use crate::{PeerKey, Time};
use rate::RateWindow;

/// Intervals shorter than this are raised to it, so a zero interval cannot make the driver spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// How to rank peers for regular slots while seeding (we have everything, so nobody can reciprocate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeedMode {
    /// Rotate the regular slots: a peer keeps its slot until it has had its turn (at least
    /// `round_robin_min_turn` and `round_robin_quota` bytes, or `round_robin_max_turn` whatever it got), then
    /// the peers that have waited longest get the slots. Every interested peer is served over time, which
    /// spreads pieces across the swarm. The default, as in libtorrent.
    #[default]
    RoundRobin,
    /// Unchoke the peers we upload to fastest. Gets the most bytes out per second, but the same fast peers
    /// keep the slots and slower ones can starve.
    FastestUpload,
}

/// The choker's settings. [`ChokerConfig::default`] is BEP 3's algorithm with libtorrent's seeding defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Regular upload slots, filled by rank every rechoke (4).
    pub regular_slots: usize,
    /// Optimistic upload slots, filled at random (1).
    pub optimistic_slots: usize,
    /// How often the regular slots are re-ranked (10 s).
    pub rechoke_interval: Duration,
    /// How long a peer holds an optimistic slot (30 s).
    pub optimistic_interval: Duration,
    /// A peer we are interested in that sent no payload for this long is snubbed (60 s).
    pub snub_timeout: Duration,
    /// Peers connected for less than this are "new" for the optimistic draw (60 s).
    pub new_peer_window: Duration,
    /// How many times as likely a new peer is to be picked for an optimistic slot (3).
    pub new_peer_weight: u32,
    /// The window rates are measured over (20 s, in 20 buckets).
    pub rate_window: Duration,
    /// How regular slots are ranked while seeding ([`SeedMode::RoundRobin`]).
    pub seed_mode: SeedMode,
    /// Round robin: bytes a peer should get in its turn before it yields its slot (5 MiB: libtorrent's
    /// 20-piece quota at 256 KiB pieces; set it to 20 x the torrent's piece length).
    pub round_robin_quota: u64,
    /// Round robin: the shortest turn (60 s, as libtorrent).
    pub round_robin_min_turn: Duration,
    /// Round robin: the longest turn, whatever the peer got (5 min), so a slow or idle peer cannot hold a
    /// slot for ever.
    pub round_robin_max_turn: Duration,
    /// Unchoke a peer at once when it becomes interested and a regular slot is unused (true).
    pub preemptive_unchoke: bool,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            regular_slots: 4,
            optimistic_slots: 1,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            snub_timeout: Duration::from_secs(60),
            new_peer_window: Duration::from_secs(60),
            new_peer_weight: 3,
            rate_window: Duration::from_secs(20),
            seed_mode: SeedMode::RoundRobin,
            round_robin_quota: 5 * 1024 * 1024,
            round_robin_min_turn: Duration::from_secs(60),
            round_robin_max_turn: Duration::from_secs(300),
            preemptive_unchoke: true,
        }
    }
}

/// What to tell a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Send `choke`: stop serving its requests.
    Choke,
    /// Send `unchoke`: serve its requests.
    Unchoke,
}

/// Why an unchoked peer is unchoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// It holds one of the `regular_slots` (by rank, or preemptively).
    Regular,
    /// It holds one of the `optimistic_slots`.
    Optimistic,
}

/// A peer's unchoke state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Choked,
    Regular,
    Optimistic { until: Time },
}

/// What the choker knows of one connection.
#[derive(Debug, Clone)]
struct Peer {
    connected_at: Time,
    /// The peer is interested in us.
    interested: bool,
    /// We are interested in the peer.
    we_interested: bool,
    /// The snub clock: the last time it sent us payload, or when we became interested, or when it connected.
    snub_clock: Time,
    /// Payload it sent us.
    down: RateWindow,
    /// Payload we sent it.
    up: RateWindow,
    state: State,
    /// When its current (or last) continuous unchoke began.
    last_unchoked_at: Option<Time>,
    /// Payload sent since then.
    uploaded_this_turn: u64,
}

impl Peer {
    fn new(now: Time, rate_window: Duration) -> Self {
        Peer {
            connected_at: now,
            interested: false,
            we_interested: false,
            snub_clock: now,
            down: RateWindow::new(rate_window),
            up: RateWindow::new(rate_window),
            state: State::Choked,
            last_unchoked_at: None,
            uploaded_this_turn: 0,
        }
    }

    fn is_unchoked(&self) -> bool {
        self.state != State::Choked
    }

    fn is_snubbed(&self, now: Time, snub_timeout: Duration) -> bool {
        self.we_interested && now.since(self.snub_clock) >= snub_timeout
    }
}

/// The choker for one torrent: see the [module documentation](self) for the algorithm.
#[derive(Debug, Clone)]
pub struct Choker {
    config: ChokerConfig,
    peers: BTreeMap<PeerKey, Peer>,
    seeding: bool,
    /// When the next regular rechoke is due; `None` until the first input with a time.
    next_rechoke: Option<Time>,
    /// Decisions not yet drained; at most one per peer (a later opposite decision cancels a pending one).
    decisions: VecDeque<(PeerKey, Decision)>,
}

impl Choker {
    /// A choker with no peers, downloading (not seeding).
    pub fn new(config: ChokerConfig) -> Self {
        Choker {
            config,
            peers: BTreeMap::new(),
            seeding: false,
            next_rechoke: None,
            decisions: VecDeque::new(),
        }
    }

    /// The settings it was made with.
    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// A connection is ready (handshake done). Peers start choked and not interested (BEP 3). A key already
    /// known is left as it is.
    pub fn peer_connected(&mut self, now: Time, key: PeerKey) {
        self.observe(now);
        let window = self.config.rate_window;
        self.peers.entry(key).or_insert_with(|| Peer::new(now, window));
    }

    /// A connection is gone: its slot is freed (refilled at the next rechoke) and any undrained decision for
    /// it is dropped.
    pub fn peer_disconnected(&mut self, key: PeerKey) {
        if self.peers.remove(&key).is_some() {
            self.decisions.retain(|(k, _)| *k != key);
        }
    }

    /// The peer sent `interested` (true) or `not interested` (false). Losing interest while unchoked chokes
    /// it at once; gaining interest while a regular slot is unused unchokes it at once (if
    /// `preemptive_unchoke`).
    pub fn set_interested(&mut self, now: Time, key: PeerKey, interested: bool) {
        self.observe(now);
        let free_regular_slot =
            self.config.preemptive_unchoke && self.regular_count() < self.config.regular_slots;
        let snub_timeout = self.config.snub_timeout;
        let seeding = self.seeding;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.interested == interested {
            return;
        }
        peer.interested = interested;
        let decision = if interested {
            if !free_regular_slot || peer.is_unchoked() || (!seeding && peer.is_snubbed(now, snub_timeout)) {
                return;
            }
            peer.state = State::Regular;
            peer.last_unchoked_at = Some(now);
            peer.uploaded_this_turn = 0;
            Decision::Unchoke
        } else {
            if !peer.is_unchoked() {
                return;
            }
            peer.state = State::Choked;
            Decision::Choke
        };
        self.push(key, decision);
    }

    /// We became interested (true) or not interested (false) in the peer. Snubbing only counts while we
    /// are interested; becoming interested restarts the peer's snub clock.
    pub fn set_we_are_interested(&mut self, now: Time, key: PeerKey, interested: bool) {
        self.observe(now);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if interested && !peer.we_interested {
            peer.snub_clock = peer.snub_clock.max(now);
        }
        peer.we_interested = interested;
    }

    /// The peer sent us `bytes` of payload (piece data). Any payload lifts a snub.
    pub fn on_downloaded_from(&mut self, now: Time, key: PeerKey, bytes: u64) {
        self.observe(now);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.down.record(now, bytes);
        if bytes > 0 {
            peer.snub_clock = peer.snub_clock.max(now);
        }
    }

    /// We sent the peer `bytes` of payload.
    pub fn on_uploaded_to(&mut self, now: Time, key: PeerKey, bytes: u64) {
        self.observe(now);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.up.record(now, bytes);
        if peer.is_unchoked() {
            peer.uploaded_this_turn = peer.uploaded_this_turn.saturating_add(bytes);
        }
    }

    /// We have (true) or no longer have (false) the whole torrent; the ranking changes at the next rechoke.
    pub fn set_seeding(&mut self, seeding: bool) {
        self.seeding = seeding;
    }

    /// Whether it ranks as a seed.
    pub fn is_seeding(&self) -> bool {
        self.seeding
    }

    /// A timer set from [`Choker::poll_timeout`] fired (early or spurious calls are harmless). Runs the
    /// regular rechoke if it is due, and refills optimistic slots whose term is over (or that are empty, at a
    /// rechoke), drawing from `rng`.
    pub fn handle_timeout<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R) {
        self.observe(now);
        let rechoke_due = self.next_rechoke.is_some_and(|t| t <= now);
        let expired: BTreeSet<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| matches!(p.state, State::Optimistic { until } if until <= now))
            .map(|(k, _)| *k)
            .collect();
        if !rechoke_due && expired.is_empty() {
            return;
        }
        let regular: BTreeSet<PeerKey> = if rechoke_due {
            let interval = self.config.rechoke_interval.max(MIN_INTERVAL);
            self.next_rechoke = self.next_rechoke.map(|t| {
                let next = t.plus(interval);
                if next <= now {
                    now.plus(interval)
                } else {
                    next
                }
            });
            self.rank_regular(now)
        } else {
            self.peers
                .iter()
                .filter(|(_, p)| p.state == State::Regular)
                .map(|(k, _)| *k)
                .collect()
        };
        // Optimistic slots that stay: term not over, and not promoted to a regular slot.
        let mut optimistic: BTreeMap<PeerKey, Time> = self
            .peers
            .iter()
            .filter_map(|(k, p)| match p.state {
                State::Optimistic { until } if until > now && !regular.contains(k) => Some((*k, until)),
                _ => None,
            })
            .collect();
        let wanted = self.config.optimistic_slots.saturating_sub(optimistic.len());
        if wanted > 0 {
            let until = now.plus(self.config.optimistic_interval.max(MIN_INTERVAL));
            for key in self.draw_optimistic(now, rng, wanted, &regular, &optimistic, &expired) {
                optimistic.insert(key, until);
            }
        }
        self.apply(now, &regular, &optimistic);
    }

    /// When [`Choker::handle_timeout`] should next be called: the next rechoke or the end of an optimistic
    /// term, whichever is sooner. `None` before the first input with a time.
    pub fn poll_timeout(&self) -> Option<Time> {
        let terms = self.peers.values().filter_map(|p| match p.state {
            State::Optimistic { until } => Some(until),
            _ => None,
        });
        self.next_rechoke.into_iter().chain(terms).min()
    }

    /// The next choke or unchoke to send. Only changes are emitted; within one round chokes come first, then
    /// unchokes, each in key order.
    pub fn poll_decision(&mut self) -> Option<(PeerKey, Decision)> {
        self.decisions.pop_front()
    }

    /// Whether the peer is (to be) unchoked, counting decisions not yet drained.
    pub fn is_unchoked(&self, key: PeerKey) -> bool {
        self.peers.get(&key).is_some_and(Peer::is_unchoked)
    }

    /// Which slot the peer holds, if it is unchoked.
    pub fn slot(&self, key: PeerKey) -> Option<Slot> {
        self.peers.get(&key).and_then(|p| match p.state {
            State::Choked => None,
            State::Regular => Some(Slot::Regular),
            State::Optimistic { .. } => Some(Slot::Optimistic),
        })
    }

    /// The unchoked peers and their slots, in key order.
    pub fn unchoked(&self) -> impl Iterator<Item = (PeerKey, Slot)> + '_ {
        self.peers.keys().filter_map(|k| self.slot(*k).map(|s| (*k, s)))
    }

    /// Whether the peer is snubbed at `now`: we are interested in it and it sent no payload for
    /// `snub_timeout`.
    pub fn is_snubbed(&self, now: Time, key: PeerKey) -> bool {
        self.peers
            .get(&key)
            .is_some_and(|p| p.is_snubbed(now, self.config.snub_timeout))
    }

    /// How fast the peer uploads to us, in payload bytes per second: the bytes it sent in the `rate_window`
    /// ending at `now` (20 one-second buckets by default, the current one counted in full), divided by the
    /// window. `None` for an unknown peer.
    pub fn download_rate(&self, now: Time, key: PeerKey) -> Option<u64> {
        self.peers.get(&key).map(|p| p.down.per_second(now))
    }

    /// How fast we upload to the peer, in payload bytes per second, measured as [`Choker::download_rate`].
    pub fn upload_rate(&self, now: Time, key: PeerKey) -> Option<u64> {
        self.peers.get(&key).map(|p| p.up.per_second(now))
    }

    /// How many peers are connected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Starts the rechoke clock at the first time the choker is told.
    fn observe(&mut self, now: Time) {
        if self.next_rechoke.is_none() {
            self.next_rechoke = Some(now.plus(self.config.rechoke_interval.max(MIN_INTERVAL)));
        }
    }

    fn regular_count(&self) -> usize {
        self.peers.values().filter(|p| p.state == State::Regular).count()
    }

    /// Queues a decision, or cancels the pending opposite one for the same peer (the state flipped back before
    /// the driver saw it, so nothing changed).
    fn push(&mut self, key: PeerKey, decision: Decision) {
        if let Some(pos) = self.decisions.iter().position(|(k, _)| *k == key) {
            self.decisions.remove(pos);
        } else {
            self.decisions.push_back((key, decision));
        }
    }

    /// The peers that get the regular slots at a rechoke at `now`.
    fn rank_regular(&self, now: Time) -> BTreeSet<PeerKey> {
        let cfg = &self.config;
        // Smaller sorts first: (class, Reverse(score), already unchoked, last unchoked (never first), connected
        // at, key). Among equal scores the peers that are waiting, and have waited longest, come first.
        let mut ranked: Vec<_> = self
            .peers
            .iter()
            .filter(|(_, p)| p.interested && (self.seeding || !p.is_snubbed(now, cfg.snub_timeout)))
            .map(|(k, p)| {
                let (class, score) = if !self.seeding {
                    (0u8, p.down.sum(now))
                } else {
                    match cfg.seed_mode {
                        SeedMode::FastestUpload => (0, p.up.sum(now)),
                        SeedMode::RoundRobin => {
                            if p.state == State::Regular {
                                let turn = p.last_unchoked_at.map_or(Duration::ZERO, |t| now.since(t));
                                let done = (turn >= cfg.round_robin_min_turn
                                    && p.uploaded_this_turn >= cfg.round_robin_quota)
                                    || turn >= cfg.round_robin_max_turn;
                                // Holders keep their slot until their turn is done, then go to the back.
                                (if done { 2 } else { 0 }, p.up.sum(now))
                            } else {
                                // Waiting peers (and optimistic ones): longest wait first.
                                (1, 0)
                            }
                        }
                    }
                };
                (
                    (
                        class,
                        Reverse(score),
                        p.is_unchoked(),
                        p.last_unchoked_at,
                        p.connected_at,
                        *k,
                    ),
                    *k,
                )
            })
            .collect();
        ranked.sort_unstable();
        ranked
            .into_iter()
            .take(cfg.regular_slots)
            .map(|(_, k)| k)
            .collect()
    }

    /// Draws up to `wanted` peers for optimistic slots: interested, without a regular or a kept optimistic
    /// slot; new peers weigh `new_peer_weight`, others 1; peers whose term just ended only if nobody else can.
    fn draw_optimistic<R: Rng + ?Sized>(
        &self,
        now: Time,
        rng: &mut R,
        wanted: usize,
        regular: &BTreeSet<PeerKey>,
        kept: &BTreeMap<PeerKey, Time>,
        expired: &BTreeSet<PeerKey>,
    ) -> Vec<PeerKey> {
        let cfg = &self.config;
        let (mut fresh, mut previous): (Vec<_>, Vec<_>) = self
            .peers
            .iter()
            .filter(|(k, p)| p.interested && !regular.contains(k) && !kept.contains_key(k))
            .map(|(k, p)| {
                let new = now.since(p.connected_at) < cfg.new_peer_window;
                (*k, if new { u64::from(cfg.new_peer_weight) } else { 1 })
            })
            .partition(|(k, _)| !expired.contains(k));
        let mut picked = Vec::new();
        while picked.len() < wanted {
            match draw_weighted(rng, &mut fresh).or_else(|| draw_weighted(rng, &mut previous)) {
                Some(key) => picked.push(key),
                None => break,
            }
        }
        picked
    }

    /// Moves every peer to its new state and queues the changes: chokes first, then unchokes, in key order.
    fn apply(&mut self, now: Time, regular: &BTreeSet<PeerKey>, optimistic: &BTreeMap<PeerKey, Time>) {
        let mut chokes = Vec::new();
        let mut unchokes = Vec::new();
        for (key, peer) in &mut self.peers {
            let state = if regular.contains(key) {
                State::Regular
            } else if let Some(&until) = optimistic.get(key) {
                State::Optimistic { until }
            } else {
                State::Choked
            };
            match (peer.is_unchoked(), state != State::Choked) {
                (false, true) => {
                    peer.last_unchoked_at = Some(now);
                    peer.uploaded_this_turn = 0;
                    unchokes.push(*key);
                }
                (true, false) => chokes.push(*key),
                _ => {}
            }
            peer.state = state;
        }
        for key in chokes {
            self.push(key, Decision::Choke);
        }
        for key in unchokes {
            self.push(key, Decision::Unchoke);
        }
    }
}

/// Removes and returns one entry of `pool`, each with probability proportional to its weight; `None` if the
/// pool is empty or weighs nothing.
fn draw_weighted<R: Rng + ?Sized>(rng: &mut R, pool: &mut Vec<(PeerKey, u64)>) -> Option<PeerKey> {
    let total = pool.iter().fold(0u64, |acc, &(_, w)| acc.saturating_add(w));
    if total == 0 {
        return None;
    }
    let mut ticket = rng.random_range(0..total);
    let mut chosen = None;
    for (i, &(_, weight)) in pool.iter().enumerate() {
        if ticket < weight {
            chosen = Some(i);
            break;
        }
        ticket -= weight;
    }
    chosen.map(|i| pool.remove(i).0)
}
