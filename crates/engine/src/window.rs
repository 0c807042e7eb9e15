//! Request windows: how many block requests to keep outstanding to one peer.
//!
//! BEP 3: "When data is being transferred, downloaders should keep several piece requests queued up at
//! once in order to get good TCP performance (this is called 'pipelining'.)" How many is the sliding
//! window of flow control between a fast and a slow peer: a peer's pipe is full when the requests in
//! flight cover the data it can send in one round trip (the bandwidth-delay product), so a fast peer needs
//! hundreds and a slow one a handful. Too few and a fast link idles between requests; too many and a slow
//! peer holds blocks hostage (they cannot be asked of anyone else until it answers or times out, and in
//! endgame they are the last ones).
//!
//! One [`RequestWindow`] per peer connection. The session reports each block that arrives
//! ([`RequestWindow::on_block`]) and, when it knows it, how long the block took from request to arrival
//! ([`RequestWindow::on_rtt_sample`]); it keeps `target(now)` requests in flight, asking the picker for
//! `target(now) - in_flight` more blocks whenever a block arrives or the window grows.
//!
//! ```text
//! target = clamp(rate * delay / block_size, floor, min(cap, reqq))
//! delay  = max(rtt_gain * base_rtt, min_delay)      once request latencies are reported
//!        = fallback_queue_time                      before that (libtorrent's `request_queue_time`)
//! ```
//!
//! - `rate` is the download rate from this peer over the last `rate_window` (bytes per second).
//! - `base_rtt` is the shortest request latency seen: the round trip plus the peer's time to serve one
//!   block, without queueing (early requests, sent while the window is small, see an empty queue). With
//!   `rtt_gain` 2 the window holds two bandwidth-delay products: one in the pipe and one queued at the
//!   peer to cover its hiccups, as BBR keeps its congestion window at twice the BDP. The loop is stable: a
//!   window above one BDP fills the pipe, so the measured rate is the link's and the target stays put; a
//!   window below it is limited by the round trip, and the gain makes the next target larger.
//! - **Slow start**: the rate estimate needs seconds, so a new connection starts at `initial` requests and
//!   adds one per block received (doubling each round trip), like TCP, but never beyond
//!   `fallback_queue_time` of data at the measured rate (so a slow peer is not flooded meanwhile). It
//!   stops when the blocks delivered per `base_rtt` grow by less than half from one round trip to the
//!   next (BBR's full-pipe test, with a threshold for a window that doubles: that count is then the
//!   pipe's size), when the rate stops growing over half a
//!   `rate_window` (the test without latencies), at the cap, or on a timeout. For one `rate_window` after
//!   the full-pipe exit the target keeps at least `rtt_gain` times the pipe's size while the rate
//!   estimate catches up. A peer silent for a whole `rate_window` starts over.
//! - **Timeouts and snubbing** shrink the window: a timeout halves it, a snub drops it to the floor; it
//!   then grows back by one request per window's worth of blocks (TCP's additive increase) until the rate
//!   target is reached again.
//! - `reqq` is what the peer says it accepts (BEP 10 extended handshake: "the number of outstanding
//!   request messages this client supports without dropping any"); it bounds the window even below the
//!   floor.

use std::time::Duration;

use crate::Time;

/// Slots of the rate estimate's sliding window.
const SLOTS: usize = 8;

/// Settings of a [`RequestWindow`].
#[derive(Debug, Clone, PartialEq)]
pub struct WindowConfig {
    /// Fewest requests kept in flight (unless the peer's `reqq` is lower).
    pub floor: usize,
    /// Most requests kept in flight (libtorrent's `max_out_request_queue` is 500).
    pub cap: usize,
    /// Requests in flight when a connection starts (slow start begins here).
    pub initial: usize,
    /// Multiple of the base round trip the window covers once latencies are known.
    pub rtt_gain: f64,
    /// Smallest delay the window covers (LAN peers: disk and scheduling latency dominate the round trip).
    pub min_delay: Duration,
    /// Delay the window covers while no request latency is known.
    pub fallback_queue_time: Duration,
    /// Span of the download-rate estimate.
    pub rate_window: Duration,
    /// Bytes per request.
    pub block_size: u32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            floor: 4,
            cap: 500,
            initial: 4,
            rtt_gain: 2.0,
            min_delay: Duration::from_millis(50),
            fallback_queue_time: Duration::from_secs(1),
            rate_window: Duration::from_secs(2),
            block_size: wire::BLOCK_LEN,
        }
    }
}

/// Bytes received in one slot of time.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    id: u64,
    bytes: u64,
}

/// The request window of one peer connection. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct RequestWindow {
    config: WindowConfig,
    reqq: Option<usize>,
    slots: [Slot; SLOTS],
    /// Start of the current measurement (first block, or first after an idle restart).
    first_block: Option<Time>,
    last_block: Option<Time>,
    base_rtt: Option<Duration>,
    slow_start: bool,
    ss_window: usize,
    /// Slow start's last rate check: when, and the rate then.
    ss_check: Option<(Time, f64)>,
    /// Slow start's current round trip: when it began and blocks received in it.
    round: Option<(Time, usize)>,
    /// Blocks received in the previous round trip.
    last_round: Option<usize>,
    /// A lower bound on the target until the given time (after slow start ends on delay).
    hold: Option<(usize, Time)>,
    /// An upper bound after a timeout or snub, growing back; and blocks counted towards its next step.
    limit: Option<usize>,
    limit_credit: usize,
}

impl RequestWindow {
    /// A window for a new connection, in slow start.
    pub fn new(config: WindowConfig) -> Self {
        let ss_window = config.initial.max(1);
        RequestWindow {
            config,
            reqq: None,
            slots: [Slot::default(); SLOTS],
            first_block: None,
            last_block: None,
            base_rtt: None,
            slow_start: true,
            ss_window,
            ss_check: None,
            round: None,
            last_round: None,
            hold: None,
            limit: None,
            limit_credit: 0,
        }
    }

    /// The peer's `reqq` from its extended handshake (`None`: it gave none).
    pub fn set_reqq(&mut self, reqq: Option<usize>) {
        self.reqq = reqq;
    }

    /// Length of one slot of the rate window, in nanoseconds (at least 1).
    fn slot_nanos(&self) -> u64 {
        (self.config.rate_window.as_nanos() / SLOTS as u128).clamp(1, u128::from(u64::MAX)) as u64
    }

    fn nanos(t: Time) -> u64 {
        t.0.as_nanos().min(u128::from(u64::MAX)) as u64
    }

    /// Download rate from this peer in bytes per second, over the last `rate_window` (or since the first
    /// block, if that is more recent; never over less than one eighth of the window).
    pub fn rate(&self, now: Time) -> f64 {
        let Some(first) = self.first_block else {
            return 0.0;
        };
        let slot = self.slot_nanos();
        let now_ns = Self::nanos(now);
        let cur = now_ns / slot;
        let bytes: u64 = self
            .slots
            .iter()
            .filter(|s| s.id <= cur && s.id + SLOTS as u64 > cur)
            .map(|s| s.bytes)
            .sum();
        let covered = (SLOTS as u64 - 1) * slot + (now_ns - cur * slot);
        let since_first = now_ns.saturating_sub(Self::nanos(first));
        let elapsed = since_first.min(covered).max(slot);
        bytes as f64 * 1e9 / elapsed as f64
    }

    /// The bounds the target is clamped to: (lower, upper).
    fn bounds(&self) -> (usize, usize) {
        let upper = self.config.cap.min(self.reqq.unwrap_or(usize::MAX)).max(1);
        (self.config.floor.max(1).min(upper), upper)
    }

    /// The delay the window should cover.
    fn delay(&self) -> Duration {
        match self.base_rtt {
            Some(rtt) => rtt
                .mul_f64(self.config.rtt_gain.max(0.0))
                .max(self.config.min_delay),
            None => self.config.fallback_queue_time,
        }
    }

    /// `rate * delay` in blocks, unclamped.
    fn rate_target(&self, now: Time) -> usize {
        let blocks = self.rate(now) * self.delay().as_secs_f64() / f64::from(self.config.block_size.max(1));
        blocks.ceil() as usize
    }

    /// Requests to keep in flight to this peer now.
    pub fn target(&self, now: Time) -> usize {
        let (lower, upper) = self.bounds();
        let mut t = self.rate_target(now);
        if self.slow_start {
            t = t.max(self.ss_window);
        }
        if let Some((h, until)) = self.hold {
            if now < until {
                t = t.max(h);
            }
        }
        if let Some(l) = self.limit {
            t = t.min(l);
        }
        t.clamp(lower, upper)
    }

    /// True while the window is in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// The shortest request latency seen, if any was reported.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.base_rtt
    }

    fn leave_slow_start(&mut self, hold: Option<(usize, Time)>) {
        self.slow_start = false;
        self.ss_check = None;
        self.round = None;
        self.last_round = None;
        self.hold = hold;
    }

    /// A block of `bytes` arrived at `now`.
    pub fn on_block(&mut self, now: Time, bytes: u32) {
        if let Some(last) = self.last_block {
            if now.since(last) > self.config.rate_window {
                // Idle for a whole rate window: what we knew of the pipe is stale.
                self.slow_start = true;
                self.ss_window = self.config.initial.max(1);
                self.ss_check = None;
                self.round = None;
                self.last_round = None;
                self.hold = None;
                self.first_block = None;
            }
        }
        if self.first_block.is_none() {
            self.first_block = Some(now);
        }
        self.last_block = Some(now);
        let id = Self::nanos(now) / self.slot_nanos();
        let bytes = u64::from(bytes);
        if let Some(slot) = self.slots.get_mut(id as usize % SLOTS) {
            if slot.id == id {
                slot.bytes += bytes;
            } else {
                *slot = Slot { id, bytes };
            }
        }
        if self.slow_start {
            self.slow_start_step(now);
        }
        if let Some(l) = self.limit {
            self.limit_credit += 1;
            if self.limit_credit >= l {
                self.limit_credit = 0;
                let grown = l.saturating_add(1);
                self.limit = (grown < self.rate_target(now).max(self.config.floor)).then_some(grown);
            }
        }
    }

    /// A request sent to this peer was answered `rtt` after it was sent (the session knows both times).
    pub fn on_rtt_sample(&mut self, _now: Time, rtt: Duration) {
        self.base_rtt = Some(self.base_rtt.map_or(rtt, |b| b.min(rtt)));
    }

    /// One block arrived during slow start: grow by one, or leave.
    fn slow_start_step(&mut self, now: Time) {
        let (_, upper) = self.bounds();
        // The full-pipe test (BBR's, with a threshold fit for slow start, which doubles what a round trip
        // carries until the pipe is full): blocks per round trip grew by less than half.
        if let Some(base) = self.base_rtt {
            match self.round {
                Some((start, blocks)) if now.since(start) < base => self.round = Some((start, blocks + 1)),
                Some((_, blocks)) => {
                    if self.last_round.is_some_and(|prev| blocks * 2 < prev * 3) {
                        // `blocks` is what one round trip carries: the pipe's size.
                        let hold = (blocks as f64 * self.config.rtt_gain).ceil() as usize;
                        self.leave_slow_start(Some((hold, now.plus(self.config.rate_window))));
                        return;
                    }
                    self.last_round = Some(blocks);
                    self.round = Some((now, 1));
                }
                None => self.round = Some((now, 1)),
            }
        }
        // Without latencies: the rate stopped growing over half a rate window.
        let rate = self.rate(now);
        match self.ss_check {
            None => self.ss_check = Some((now, rate)),
            Some((at, before)) if now.since(at) >= self.config.rate_window / 2 => {
                if rate < before * 1.25 {
                    self.leave_slow_start(None);
                    return;
                }
                self.ss_check = Some((now, rate));
            }
            Some(_) => {}
        }
        // Grow by one, but never queue more than `fallback_queue_time` of data at the measured rate:
        // a slow peer is not flooded while the tests above wait for a round trip.
        let ceiling = (rate * self.config.fallback_queue_time.as_secs_f64()
            / f64::from(self.config.block_size.max(1)))
        .ceil() as usize;
        let grown = self.ss_window.saturating_add(1);
        self.ss_window = grown.min(ceiling.max(self.config.floor).max(self.ss_window));
        if self.ss_window >= upper {
            self.leave_slow_start(Some((upper, now.plus(self.config.rate_window))));
        }
    }

    /// A request to this peer timed out: halve the window, then grow back slowly.
    pub fn on_timeout(&mut self, now: Time) {
        let half = (self.target(now) / 2).max(self.config.floor.max(1));
        self.leave_slow_start(None);
        self.limit = Some(half);
        self.limit_credit = 0;
    }

    /// The peer is snubbing us (nothing for a long time while requests are pending): drop to the floor,
    /// then grow back slowly.
    pub fn on_snubbed(&mut self, _now: Time) {
        self.leave_slow_start(None);
        self.limit = Some(self.config.floor.max(1));
        self.limit_credit = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    const B: u64 = 16 * 1024;

    /// One peer behind a link of `capacity` bytes per second and round trip `rtt`, serving requests in
    /// order: a request reaches the peer after rtt/2, waits for the link, takes B/capacity to send and
    /// arrives rtt/2 later. The window is kept full after every block, as the session will.
    struct Run {
        /// (time in seconds, target) after each block.
        targets: Vec<(f64, usize)>,
        /// (time in seconds) of each block's arrival.
        arrivals: Vec<f64>,
        window: RequestWindow,
        end: Time,
    }

    fn simulate(capacity: u64, rtt: Duration, reqq: Option<usize>, seconds: u64, with_rtt: bool) -> Run {
        simulate_jittery(capacity, rtt, reqq, seconds, with_rtt, Duration::ZERO, 0)
    }

    /// As [`simulate`], each answer delayed by a further random 0 to `jitter` (seeded).
    fn simulate_jittery(
        capacity: u64,
        rtt: Duration,
        reqq: Option<usize>,
        seconds: u64,
        with_rtt: bool,
        jitter: Duration,
        seed: u64,
    ) -> Run {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let jitter = jitter.as_nanos() as u64;
        let mut window = RequestWindow::new(WindowConfig::default());
        window.set_reqq(reqq);
        let half = rtt.as_nanos() as u64 / 2;
        let serialize = B * 1_000_000_000 / capacity;
        let end = seconds * 1_000_000_000;
        let mut peer_free = 0u64;
        let mut in_flight = 0usize;
        let mut queue: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let mut send = |t: u64, queue: &mut BinaryHeap<Reverse<(u64, u64)>>| {
            let start = (t + half).max(peer_free);
            peer_free = start + serialize;
            let extra = if jitter == 0 {
                0
            } else {
                rng.random_range(0..jitter)
            };
            queue.push(Reverse((peer_free + half + extra, t)));
        };
        let mut run = Run {
            targets: Vec::new(),
            arrivals: Vec::new(),
            window,
            end: Time(Duration::from_nanos(end)),
        };
        while in_flight < run.window.target(Time::default()) {
            send(0, &mut queue);
            in_flight += 1;
        }
        while let Some(Reverse((at, sent))) = queue.pop() {
            if at > end {
                break;
            }
            let now = Time(Duration::from_nanos(at));
            in_flight -= 1;
            run.window.on_block(now, B as u32);
            if with_rtt {
                run.window.on_rtt_sample(now, Duration::from_nanos(at - sent));
            }
            let target = run.window.target(now);
            run.targets.push((at as f64 / 1e9, target));
            run.arrivals.push(at as f64 / 1e9);
            while in_flight < target {
                send(at, &mut queue);
                in_flight += 1;
            }
        }
        run
    }

    fn throughput(run: &Run, from: f64, to: f64) -> f64 {
        let n = run.arrivals.iter().filter(|&&t| t >= from && t < to).count();
        n as f64 * B as f64 / (to - from)
    }

    #[test]
    fn fast_peer_window_settles_near_its_bandwidth_delay_product() {
        // The window is "rate x delay": a 50 MB/s peer 50 ms away needs its bandwidth-delay product
        // (2.5 MB, 153 blocks) in flight to keep the pipe full; the window holds about twice that
        // (rtt_gain 2), far from the cap of 500.
        let capacity = 50_000_000;
        let run = simulate(capacity, Duration::from_millis(50), None, 10, true);
        let bdp = capacity as f64 * 0.05 / B as f64;
        let target = run.window.target(run.end);
        assert!(target as f64 >= bdp, "target {target} below the BDP {bdp:.0}");
        assert!(
            (target as f64) <= 2.5 * bdp,
            "target {target} far above the BDP {bdp:.0}"
        );
        let rate = throughput(&run, 5.0, 10.0);
        assert!(rate >= 0.97 * capacity as f64, "pipe not full: {rate:.0} B/s");
        // Slow start fills the pipe within half a second (ten round trips) and does not overshoot far.
        assert!(throughput(&run, 0.5, 1.0) >= 0.97 * capacity as f64);
        let most = run.targets.iter().map(|&(_, w)| w).max().unwrap();
        assert!((most as f64) <= 2.5 * bdp, "slow start overshot to {most}");
        assert!(!run.window.in_slow_start());
    }

    #[test]
    fn slow_peer_window_stays_at_the_floor() {
        // A 50 KB/s peer sends three blocks a second: the floor of 4 already covers seconds of its data.
        let run = simulate(50_000, Duration::from_millis(50), None, 20, true);
        let late: Vec<usize> = run
            .targets
            .iter()
            .filter(|&&(t, _)| t > 2.0)
            .map(|&(_, w)| w)
            .collect();
        assert!(!late.is_empty());
        assert!(late.iter().all(|&w| w == 4), "{late:?}");
        let most = run.targets.iter().map(|&(_, w)| w).max().unwrap();
        assert!(most <= 5, "slow start flooded a slow peer: {most}");
        assert!(throughput(&run, 5.0, 20.0) >= 0.95 * 50_000.0);
    }

    #[test]
    fn reqq_caps_the_window() {
        // BEP 10 reqq: "The number of outstanding request messages this client supports without dropping
        // any." The window never exceeds it, even on a fast peer.
        let run = simulate(50_000_000, Duration::from_millis(50), Some(64), 5, true);
        assert!(run.targets.iter().all(|&(_, w)| w <= 64));
        assert_eq!(run.window.target(run.end), 64);
        // And it bounds even the floor.
        let mut w = RequestWindow::new(WindowConfig::default());
        w.set_reqq(Some(2));
        assert_eq!(w.target(Time::default()), 2);
    }

    #[test]
    fn the_cap_bounds_a_very_fast_peer() {
        // 500 MB/s, 100 ms: a BDP of 3000 blocks; the window stops at the cap of 500.
        let run = simulate(500_000_000, Duration::from_millis(100), None, 3, true);
        assert_eq!(run.window.target(run.end), 500);
        assert!(run.targets.iter().all(|&(_, w)| w <= 500));
    }

    #[test]
    fn without_latency_samples_the_fallback_queue_time_is_used() {
        // libtorrent's model: rate x request_queue_time. 50 KB/s x 1 s is 3 blocks: the floor.
        let run = simulate(50_000, Duration::from_millis(50), None, 20, false);
        assert_eq!(run.window.target(run.end), 4);
        // 5 MB/s x 1 s = 305 blocks.
        let run = simulate(5_000_000, Duration::from_millis(50), None, 10, false);
        let t = run.window.target(run.end);
        assert!((290..=320).contains(&t), "{t}");
    }

    #[test]
    fn slow_start_starts_small_and_doubles_per_round_trip() {
        // Like TCP: one more request per block received, so the window doubles each round trip while
        // the pipe is not full.
        let w = RequestWindow::new(WindowConfig::default());
        assert_eq!(w.target(Time::default()), 4);
        assert!(w.in_slow_start());
        let run = simulate(50_000_000, Duration::from_millis(50), None, 1, true);
        let at = |s: f64| run.targets.iter().find(|x| x.0 >= s).unwrap().1 as f64;
        for s in [0.15, 0.2, 0.25, 0.3] {
            let ratio = at(s + 0.05) / at(s);
            assert!(
                (1.8..=2.2).contains(&ratio),
                "window {} -> {} in a round trip",
                at(s),
                at(s + 0.05)
            );
        }
    }

    #[test]
    fn a_jittery_link_still_fills_its_pipe() {
        // Answers up to 20 ms late at random: the full-pipe test may fire early, but the rate target
        // (rate x 2 x base RTT) keeps growing the window until the pipe is full.
        for seed in 0..5 {
            let capacity = 20_000_000;
            let run = simulate_jittery(
                capacity,
                Duration::from_millis(40),
                None,
                10,
                true,
                Duration::from_millis(20),
                seed,
            );
            let bdp = capacity as f64 * 0.04 / B as f64;
            let target = run.window.target(run.end);
            assert!(
                (target as f64) >= bdp && (target as f64) <= 3.0 * bdp,
                "seed {seed}: {target} vs BDP {bdp:.0}"
            );
            let rate = throughput(&run, 3.0, 10.0);
            assert!(rate >= 0.95 * capacity as f64, "seed {seed}: {rate:.0} B/s");
        }
    }

    #[test]
    fn timeout_halves_and_snub_drops_to_the_floor() {
        let mut run = simulate(50_000_000, Duration::from_millis(50), None, 5, true);
        let now = run.end;
        let before = run.window.target(now);
        run.window.on_timeout(now);
        assert_eq!(run.window.target(now), before / 2);
        run.window.on_snubbed(now);
        assert_eq!(run.window.target(now), 4);
        // Grows back by one per window's worth of blocks.
        for k in 0..4 {
            run.window.on_block(now.plus(Duration::from_micros(k)), B as u32);
        }
        assert_eq!(run.window.target(now), 5);
    }

    #[test]
    fn an_idle_peer_starts_over_in_slow_start() {
        let mut run = simulate(50_000_000, Duration::from_millis(50), None, 3, true);
        assert!(!run.window.in_slow_start());
        let later = run.end.plus(Duration::from_secs(30));
        run.window.on_block(later, B as u32);
        assert!(run.window.in_slow_start());
        assert_eq!(run.window.target(later), 4);
    }
}
