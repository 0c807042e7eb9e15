//! The announce client: every tracker of a torrent, its tiers (BEP 12), backoff, intervals, events and
//! scrapes, as one state machine.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use metainfo::InfoHashV1;
use rand::seq::SliceRandom;
use rand::Rng;

use super::udp_session::{UdpConfig, UdpError, UdpOperation, UdpOutcome, UdpSession};
use super::Time;
use crate::http::{self, Reply};
use crate::udp::{self, AddressFamily, ResponsePeers};
use crate::{Event, PeerId};

/// The most trackers one client keeps; further URLs are ignored with a warning (a hostile torrent may list
/// thousands).
pub const MAX_TRACKERS: usize = 256;

/// A tracker of this client: an index into the tracker list as given (first tier first), stable for the
/// client's life whatever the tier order becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackerId(u32);

impl TrackerId {
    /// Position in the client's tracker list (see [`AnnounceClient::tracker_url`]).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for TrackerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tracker #{}", self.0)
    }
}

/// One request to one tracker: an announce, a scrape or a stop, over HTTP or UDP. The driver hands it back
/// with [`AnnounceClient::handle_http_response`] or [`AnnounceClient::handle_failure`]; a response or failure
/// for a request the client no longer waits on is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The tracker it goes to.
    pub tracker: TrackerId,
    /// The request it belongs to.
    pub id: RequestId,
    /// What to send.
    pub request: ToSend,
}

/// What to send, by protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToSend {
    /// An HTTP(S) GET of this URL; answer with [`AnnounceClient::handle_http_response`].
    Http {
        /// The full URL, query included.
        url: String,
    },
    /// A datagram to `host:port` (a name to resolve, or an IP address; IPv6 without brackets); feed the
    /// answers to [`AnnounceClient::handle_udp_datagram`]. Retransmissions come as further transmits.
    Udp {
        /// The tracker's host.
        host: String,
        /// The tracker's port.
        port: u16,
        /// The datagram.
        bytes: Vec<u8>,
    },
}

/// An HTTP response as the driver received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body (the driver bounds its size; see [`http::MAX_RESPONSE_LEN`]).
    pub body: Vec<u8>,
}

/// What the client tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A tracker accepted an announce.
    Announced {
        /// The tracker.
        tracker: TrackerId,
        /// The event the announce carried.
        event: Event,
        /// When the next regular announce is due, after the client's bounds were applied.
        interval: Duration,
    },
    /// Peers from an announce response (never empty). Trackers often list the announcing peer itself.
    Peers {
        /// The tracker.
        tracker: TrackerId,
        /// The peers, IPv4 and IPv6.
        peers: Vec<SocketAddr>,
    },
    /// Swarm counts, from an announce response that has them or from a scrape.
    Stats {
        /// The tracker.
        tracker: TrackerId,
        /// Seeders.
        complete: u32,
        /// Leechers.
        incomplete: u32,
        /// Completed downloads ever (scrapes only).
        downloaded: Option<u32>,
    },
    /// Something for the user's eyes: a tracker's `warning message`, or a tracker URL that was ignored.
    Warning {
        /// The tracker, if the warning is about one of the client's trackers.
        tracker: Option<TrackerId>,
        /// The text.
        message: String,
    },
    /// A request to a tracker failed.
    TrackerError {
        /// The tracker.
        tracker: TrackerId,
        /// Its URL, for messages.
        url: String,
        /// What went wrong.
        error: TrackerFailure,
    },
    /// After [`AnnounceClient::shutdown`]: every `stopped` announce was answered or failed, or the deadline
    /// passed. The client does nothing more.
    Finished,
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::Announced {
                tracker,
                event,
                interval,
            } => {
                let event = if *event == Event::None {
                    "regular"
                } else {
                    event.as_http_str()
                };
                write!(f, "{tracker}: announce ({event}) accepted")?;
                if !interval.is_zero() {
                    write!(f, ", next in {}s", interval.as_secs())?;
                }
                Ok(())
            }
            ClientEvent::Peers { tracker, peers } => write!(f, "{tracker}: {} peers", peers.len()),
            ClientEvent::Stats {
                tracker,
                complete,
                incomplete,
                downloaded,
            } => {
                write!(f, "{tracker}: {complete} seeders, {incomplete} leechers")?;
                if let Some(d) = downloaded {
                    write!(f, ", {d} downloads")?;
                }
                Ok(())
            }
            ClientEvent::Warning {
                tracker: Some(t),
                message,
            } => write!(f, "{t}: warning: {message}"),
            ClientEvent::Warning {
                tracker: None,
                message,
            } => write!(f, "warning: {message}"),
            ClientEvent::TrackerError { url, error, .. } => write!(f, "{url}: {error}"),
            ClientEvent::Finished => write!(f, "announcing finished"),
        }
    }
}

/// Why a request to a tracker failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerFailure {
    /// The tracker refused: an HTTP `failure reason` or a UDP error packet.
    #[error("the tracker refused: {0}")]
    Refused(String),
    /// A UDP answer of only the 8-byte header.
    #[error("{}", UdpError::EmptyAnswer)]
    EmptyUdpAnswer,
    /// No UDP answer on the whole retransmission schedule.
    #[error("no answer after {sends} UDP sends over {}s", .waited.as_secs())]
    UdpTimedOut {
        /// Datagrams sent.
        sends: u32,
        /// From the first send to giving up.
        waited: Duration,
    },
    /// No HTTP response in time.
    #[error("no HTTP response within {}s", .0.as_secs())]
    HttpTimedOut(Duration),
    /// An HTTP status other than 200, with no `failure reason` in the body.
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// A response that could not be read.
    #[error("unreadable response: {0}")]
    Malformed(String),
    /// The driver could not complete the exchange: name resolution, connection, TLS, an oversized body.
    #[error("{0}")]
    Transport(String),
    /// A scrape asked of an HTTP tracker whose announce URL gives no scrape URL.
    #[error("the tracker has no scrape URL (BEP 48: the announce URL's last path segment must start with \"announce\")")]
    NoScrapeUrl,
    /// A scrape response that does not mention the torrent.
    #[error("the scrape response does not mention this torrent")]
    NotInScrape,
}

/// Tuning of the client; the defaults suit real trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// The wait before retrying a tracker after its first failure; it doubles with each further failure.
    /// Default 15 s.
    pub backoff_base: Duration,
    /// The longest backoff. Default 30 min.
    pub backoff_max: Duration,
    /// Random extra wait added to each backoff, up to this percentage of it, so that clients that failed
    /// together do not retry together. Default 20.
    pub backoff_jitter_percent: u32,
    /// The shortest announce interval the client follows, whatever a tracker says (a tracker that says 0
    /// must not make it announce in a loop). Default 60 s.
    pub min_interval_floor: Duration,
    /// The longest announce interval the client follows. Default 2 h.
    pub max_interval: Duration,
    /// How long an HTTP request may take. Default 30 s.
    pub http_timeout: Duration,
    /// How long [`AnnounceClient::shutdown`] waits for the `stopped` announces. Default 5 s.
    pub stop_timeout: Duration,
    /// Timing of UDP exchanges.
    pub udp: UdpConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            backoff_base: Duration::from_secs(15),
            backoff_max: Duration::from_secs(30 * 60),
            backoff_jitter_percent: 20,
            min_interval_floor: Duration::from_secs(60),
            max_interval: Duration::from_secs(2 * 3600),
            http_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(5),
            udp: UdpConfig::default(),
        }
    }
}

/// Who announces, for what torrent, and how the client behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceParams {
    /// The swarm.
    pub info_hash: InfoHashV1,
    /// This peer's id.
    pub peer_id: PeerId,
    /// The TCP port this peer listens on.
    pub port: u16,
    /// Peers wanted per announce; `None` leaves it to the tracker (usually 50). `stopped` announces ask for 0.
    pub numwant: Option<u32>,
    /// Tuning.
    pub config: ClientConfig,
}

impl AnnounceParams {
    /// Parameters with the default tuning and the tracker's default `numwant`.
    pub fn new(info_hash: InfoHashV1, peer_id: PeerId, port: u16) -> Self {
        AnnounceParams {
            info_hash,
            peer_id,
            port,
            numwant: None,
            config: ClientConfig::default(),
        }
    }
}

/// The client's timers, in one table (one `poll_timeout` for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The next announce round.
    Announce = 0,
    /// The end of the wait for `stopped` announces.
    StopDeadline = 1,
}

#[derive(Debug, Clone, Copy, Default)]
struct TimerTable {
    at: [Option<Time>; 2],
}

impl TimerTable {
    fn set(&mut self, timer: Timer, at: Time) {
        if let Some(slot) = self.at.get_mut(timer as usize) {
            *slot = Some(at);
        }
    }
    fn get(&self, timer: Timer) -> Option<Time> {
        self.at.get(timer as usize).copied().flatten()
    }
    fn stop(&mut self, timer: Timer) {
        if let Some(slot) = self.at.get_mut(timer as usize) {
            *slot = None;
        }
    }
    /// Stop the timer and say whether it had expired at `now`.
    fn take_expired(&mut self, timer: Timer, now: Time) -> bool {
        let expired = self.get(timer).is_some_and(|t| t <= now);
        if expired {
            self.stop(timer);
        }
        expired
    }
    fn next(&self) -> Option<Time> {
        self.at.iter().flatten().min().copied()
    }
}

/// The parsed form of a tracker URL.
#[derive(Debug, Clone)]
enum Proto {
    Http {
        scrape_url: Option<String>,
    },
    Udp {
        host: String,
        port: u16,
        /// BEP 41 URLData: the path and query, if any.
        url_data: Option<Vec<u8>>,
        session: Box<UdpSession>,
    },
}

/// Why a request was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Part of an announce round.
    Announce(Event),
    /// A `stopped` announce at shutdown.
    Stop,
    /// A scrape.
    Scrape,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: RequestId,
    purpose: Purpose,
    /// HTTP only: when the request times out (UDP sessions keep their own schedule).
    deadline: Option<Time>,
    /// The download was complete when the request was made.
    completed: bool,
}

#[derive(Debug, Clone)]
struct Tracker {
    url: String,
    proto: Proto,
    /// Failures since the last success.
    failures: u32,
    /// Skipped by announce rounds until then.
    retry_at: Option<Time>,
    /// The tracker accepted a `started` (or later) announce: it knows this peer.
    started: bool,
    /// The tracker was told of the completed download (or first heard of this peer as a seeder).
    completed_sent: bool,
    /// `tracker id` from its last response, echoed as `trackerid`.
    tracker_id: Option<Vec<u8>>,
    in_flight: Option<InFlight>,
    /// A scrape waits until the tracker is free.
    scrape_wanted: bool,
}

/// Where an announce round is: the tracker being tried, by tier and position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Round {
    tier: usize,
    pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing announced yet.
    Idle,
    Running,
    Stopping,
    Finished,
}

/// What a tracker answered, whatever the protocol.
#[derive(Debug)]
enum Outcome {
    Announced(Answer),
    Scraped(crate::ScrapeStats),
    Failed(TrackerFailure),
}

#[derive(Debug, Default)]
struct Answer {
    interval: u32,
    min_interval: Option<u32>,
    tracker_id: Option<Vec<u8>>,
    complete: Option<u32>,
    incomplete: Option<u32>,
    peers: Vec<SocketAddr>,
    warning: Option<String>,
}

/// Transferred bytes, as reported with every announce.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    uploaded: u64,
    downloaded: u64,
    left: u64,
}

/// The client side of announcing one torrent to its trackers, over HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15,
/// 41), following BEP 12's tiers. Pure: the owner feeds it time, responses and commands, and carries out
/// what it asks.
///
/// **Tiers (BEP 12).** Each tier is shuffled once, when the client is made. An announce round tries the
/// trackers of the first tier in order, then those of the next tier, and ends at the first tracker that
/// answers; that tracker moves to the front of its tier. A tracker that fails is skipped by later rounds
/// until its backoff (15 s doubling to 30 min by default, with jitter) has passed; when every tracker is
/// backing off the next round waits for the first to come back.
///
/// **Timing.** After a successful round the next one comes after the tracker's `interval` (bounded by
/// [`ClientConfig::min_interval_floor`] and [`ClientConfig::max_interval`]). Events and re-announces asked
/// for with [`AnnounceClient::announce_event`] go out at once, but no sooner than the last response's
/// `min interval` allows.
///
/// **Events.** A tracker first hears `started`; `completed` goes out once after
/// `announce_event(.., Event::Completed)`; [`AnnounceClient::shutdown`] sends `stopped` to every tracker that
/// knows this peer and waits at most [`ClientConfig::stop_timeout`] for the answers.
///
/// **Driving it.** After every input, drain [`AnnounceClient::poll_transmit`] and
/// [`AnnounceClient::poll_event`], then call [`AnnounceClient::handle_timeout`] at
/// [`AnnounceClient::poll_timeout`]:
///
/// ```
/// use rand::SeedableRng;
/// use tracker_proto::client::{AnnounceClient, AnnounceParams, ClientEvent, HttpResponse, Time, ToSend};
/// use tracker_proto::http::AnnounceResponse;
/// use tracker_proto::{Event, InfoHashV1, PeerId};
///
/// let params = AnnounceParams::new(InfoHashV1([9; 20]), PeerId(*b"-BS0100-0123456789ab"), 6881);
/// let tiers = vec![vec!["http://tracker.example/announce".to_string()]];
/// let mut client = AnnounceClient::new(tiers, params, rand::rngs::SmallRng::seed_from_u64(1));
/// client.set_progress(0, 0, 1 << 20);
/// client.announce_event(Time::ZERO, Event::Started);
///
/// let t = client.poll_transmit().unwrap();
/// let ToSend::Http { url } = &t.request else { panic!() };
/// assert!(url.contains("&event=started"));
/// // ... the driver GETs the URL and hands back the body:
/// let body = AnnounceResponse { interval: 1800, peers: vec!["10.0.0.7:6881".parse().unwrap()], ..Default::default() };
/// client.handle_http_response(Time::from_secs(1), t.id, Ok(HttpResponse { status: 200, body: body.encode_compact() }));
/// assert!(matches!(client.poll_event(), Some(ClientEvent::Announced { .. })));
/// assert!(matches!(client.poll_event(), Some(ClientEvent::Peers { peers, .. }) if peers.len() == 1));
/// assert_eq!(client.poll_timeout(), Some(Time::from_secs(1801)));
/// ```
#[derive(Debug)]
pub struct AnnounceClient<R> {
    info_hash: InfoHashV1,
    peer_id: PeerId,
    port: u16,
    numwant: Option<u32>,
    config: ClientConfig,
    /// BEP 7 `key` (UDP: the number; HTTP: its 8 hex digits), the same for every tracker.
    key: u32,
    rng: R,
    trackers: Vec<Tracker>,
    tiers: Vec<Vec<TrackerId>>,
    progress: Progress,
    state: State,
    round: Option<Round>,
    /// An announce was asked for and no round has taken it up yet.
    wanted: bool,
    completed: bool,
    paused: bool,
    /// No event-driven announce before this (the last response's `min interval`).
    min_interval_until: Option<Time>,
    timers: TimerTable,
    /// The tracker that answered the last announce.
    last_success: Option<TrackerId>,
    next_request: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
}

impl<R: Rng> AnnounceClient<R> {
    /// A client for these tiers of tracker URLs (a torrent's `announce-list`, or `[[announce]]`). Each tier
    /// is shuffled with `rng`, which the client keeps for transaction ids, its `key` and backoff jitter.
    ///
    /// URLs other than `http://`, `https://` and `udp://host:port` are left out with a
    /// [`ClientEvent::Warning`], as are repeats and anything past [`MAX_TRACKERS`]. Nothing is sent until
    /// [`AnnounceClient::announce_event`] (normally with [`Event::Started`]).
    pub fn new(tiers: Vec<Vec<String>>, params: AnnounceParams, mut rng: R) -> Self {
        let mut events = VecDeque::new();
        let mut trackers: Vec<Tracker> = Vec::new();
        let mut tier_ids = Vec::new();
        for tier in tiers {
            let mut ids = Vec::new();
            for url in tier {
                let url = url.trim().to_owned();
                if trackers.iter().any(|t| t.url == url) {
                    continue;
                }
                if trackers.len() >= MAX_TRACKERS {
                    events.push_back(ClientEvent::Warning {
                        tracker: None,
                        message: format!("ignoring tracker {url:?}: more than {MAX_TRACKERS} trackers"),
                    });
                    continue;
                }
                let proto = match parse_url(&url, params.config.udp) {
                    Ok(p) => p,
                    Err(why) => {
                        events.push_back(ClientEvent::Warning {
                            tracker: None,
                            message: format!("ignoring tracker {url:?}: {why}"),
                        });
                        continue;
                    }
                };
                let Ok(index) = u32::try_from(trackers.len()) else {
                    continue;
                };
                ids.push(TrackerId(index));
                trackers.push(Tracker {
                    url,
                    proto,
                    failures: 0,
                    retry_at: None,
                    started: false,
                    completed_sent: false,
                    tracker_id: None,
                    in_flight: None,
                    scrape_wanted: false,
                });
            }
            if !ids.is_empty() {
                // BEP 12: "URLs within each tier will be processed in a randomly chosen order; in other words,
                // the list will be shuffled when first read, and then parsed in order."
                ids.shuffle(&mut rng);
                tier_ids.push(ids);
            }
        }
        let key = rng.random();
        AnnounceClient {
            info_hash: params.info_hash,
            peer_id: params.peer_id,
            port: params.port,
            numwant: params.numwant,
            config: params.config,
            key,
            rng,
            trackers,
            tiers: tier_ids,
            progress: Progress::default(),
            state: State::Idle,
            round: None,
            wanted: false,
            completed: false,
            paused: false,
            min_interval_until: None,
            timers: TimerTable::default(),
            last_success: None,
            next_request: 0,
            transmits: VecDeque::new(),
            events,
        }
    }

    /// The URL of a tracker.
    pub fn tracker_url(&self, tracker: TrackerId) -> Option<&str> {
        self.trackers.get(tracker.index()).map(|t| t.url.as_str())
    }

    /// The tiers in their current order: shuffled, with trackers that answered moved to the front.
    pub fn tiers(&self) -> &[Vec<TrackerId>] {
        &self.tiers
    }

    /// The BEP 7 `key` sent with every announce.
    pub fn key(&self) -> u32 {
        self.key
    }

    /// True once [`ClientEvent::Finished`] has been queued: nothing more will happen.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Bytes uploaded and downloaded so far, and bytes still missing, for the next announces.
    pub fn set_progress(&mut self, uploaded: u64, downloaded: u64, left: u64) {
        self.progress = Progress {
            uploaded,
            downloaded,
            left,
        };
    }

    /// Ask for an announce:
    /// - [`Event::Started`]: (re)join the swarm; every tracker hears `started` again.
    /// - [`Event::Completed`]: the download finished; the next announce says `completed`, at once (not held
    ///   back by `min interval`).
    /// - [`Event::None`]: a re-announce (more peers wanted, say).
    /// - [`Event::Paused`]: BEP 21 partial seed; later announces say `paused`.
    /// - [`Event::Stopped`]: the same as [`AnnounceClient::shutdown`].
    ///
    /// The first call starts the client (with `started`, whatever the event). The announce goes out at once
    /// if no round is running and the last `min interval` has passed (`completed` does not wait for it),
    /// otherwise as soon as both allow.
    pub fn announce_event(&mut self, now: Time, event: Event) {
        match self.state {
            State::Stopping | State::Finished => return,
            State::Idle => self.state = State::Running,
            State::Running => {}
        }
        match event {
            Event::Stopped => return self.shutdown(now),
            Event::Started => {
                for t in &mut self.trackers {
                    t.started = false;
                }
                self.paused = false;
                self.min_interval_until = None;
            }
            Event::Completed => self.completed = true,
            Event::Paused => self.paused = true,
            Event::None => {}
        }
        self.wanted = true;
        if self.round.is_none() {
            // `completed` is a one-time event that trackers count: it goes out at once, as libtorrent
            // sends it, rather than waiting out `min interval` (a client that exits right after finishing
            // would otherwise never send it). Other announces respect `min interval`.
            let at = if event == Event::Completed {
                now
            } else {
                self.event_time(now)
            };
            let due = self.timers.get(Timer::Announce).map_or(at, |t| t.min(at));
            self.timers.set(Timer::Announce, due);
        }
        self.run_due(now);
    }

    /// Scrape the tracker that answered the last announce (or the first usable one) for this torrent's
    /// counts, reported as [`ClientEvent::Stats`] or [`ClientEvent::TrackerError`]. Returns the tracker
    /// asked, or `None` if the client is shutting down or no tracker can be scraped (no trackers, or only HTTP
    /// trackers without a scrape URL; a [`ClientEvent::Warning`] says so).
    pub fn scrape(&mut self, now: Time) -> Option<TrackerId> {
        if matches!(self.state, State::Stopping | State::Finished) {
            return None;
        }
        let target = self.scrape_target(now);
        if target.is_none() {
            self.events.push_back(ClientEvent::Warning {
                tracker: None,
                message: "no tracker of this torrent can be scraped (HTTP trackers need an announce URL \
                          ending in /announce, BEP 48)"
                    .into(),
            });
        }
        let target = target?;
        let t = self.trackers.get_mut(target.index())?;
        if t.in_flight.is_some() {
            t.scrape_wanted = true;
        } else {
            self.send(now, target, Purpose::Scrape);
        }
        Some(target)
    }

    /// The tracker to scrape: the last to answer an announce, else the first not backing off, else the first.
    fn scrape_target(&self, now: Time) -> Option<TrackerId> {
        let scrapable = |t: &Tracker| !matches!(t.proto, Proto::Http { scrape_url: None });
        self.last_success
            .filter(|id| self.trackers.get(id.index()).is_some_and(scrapable))
            .or_else(|| {
                self.tiers.iter().flatten().copied().find(|id| {
                    self.trackers
                        .get(id.index())
                        .is_some_and(|t| scrapable(t) && t.retry_at.is_none_or(|r| r <= now))
                })
            })
            .or_else(|| {
                self.tiers
                    .iter()
                    .flatten()
                    .copied()
                    .find(|id| self.trackers.get(id.index()).is_some_and(scrapable))
            })
    }

    /// Leave the swarm: abandon what is in flight, send `stopped` to every tracker that knows this peer and
    /// finish when all have answered or failed, or after [`ClientConfig::stop_timeout`].
    pub fn shutdown(&mut self, now: Time) {
        if matches!(self.state, State::Stopping | State::Finished) {
            return;
        }
        self.round = None;
        self.wanted = false;
        self.timers.stop(Timer::Announce);
        for t in &mut self.trackers {
            t.in_flight = None;
            t.scrape_wanted = false;
            if let Proto::Udp { session, .. } = &mut t.proto {
                session.cancel();
            }
        }
        self.state = State::Stopping;
        let known: Vec<TrackerId> = self
            .tiers
            .iter()
            .flatten()
            .copied()
            .filter(|id| self.trackers.get(id.index()).is_some_and(|t| t.started))
            .collect();
        for id in known {
            self.send(now, id, Purpose::Stop);
        }
        self.timers
            .set(Timer::StopDeadline, now + self.config.stop_timeout);
        self.check_stopped();
    }

    /// A response to an HTTP request, or why there is none (the driver's words: "connection refused",
    /// "response larger than 8 MiB", ...).
    pub fn handle_http_response(&mut self, now: Time, id: RequestId, response: Result<HttpResponse, String>) {
        let Some(index) = self.in_flight_index(id) else {
            return;
        };
        let Some(purpose) = self
            .trackers
            .get(index)
            .and_then(|t| t.in_flight)
            .map(|f| f.purpose)
        else {
            return;
        };
        let outcome = match response {
            Err(e) => Outcome::Failed(TrackerFailure::Transport(e)),
            Ok(r) => self.read_http(purpose, &r),
        };
        self.complete(now, index, outcome);
        self.run_due(now);
    }

    /// A datagram that came from the address the driver sends this tracker's datagrams to. Datagrams that
    /// answer nothing the client waits for are ignored.
    pub fn handle_udp_datagram(&mut self, now: Time, tracker: TrackerId, from: SocketAddr, bytes: &[u8]) {
        let index = tracker.index();
        let Some(t) = self.trackers.get_mut(index) else {
            return;
        };
        let Proto::Udp { session, .. } = &mut t.proto else {
            return;
        };
        let outcome = session.handle_datagram(now, bytes, AddressFamily::of(&from), &mut self.rng);
        self.drain_udp(index);
        if let Some(outcome) = outcome {
            let outcome = self.read_udp(outcome);
            self.complete(now, index, outcome);
        }
        self.run_due(now);
    }

    /// The request failed in the driver before any response: a name that does not resolve, a datagram that
    /// could not be sent. For UDP the whole operation fails (no further retransmissions).
    pub fn handle_failure(&mut self, now: Time, id: RequestId, reason: String) {
        let Some(index) = self.in_flight_index(id) else {
            return;
        };
        if let Some(Tracker {
            proto: Proto::Udp { session, .. },
            ..
        }) = self.trackers.get_mut(index)
        {
            session.cancel();
        }
        self.complete(now, index, Outcome::Failed(TrackerFailure::Transport(reason)));
        self.run_due(now);
    }

    /// Time passed: time out requests, retransmit, start the announce rounds that are due.
    pub fn handle_timeout(&mut self, now: Time) {
        self.run_due(now);
    }

    /// When [`AnnounceClient::handle_timeout`] should next be called; `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.state == State::Finished {
            return None;
        }
        let requests = self.trackers.iter().filter_map(|t| match &t.proto {
            Proto::Http { .. } => t.in_flight.and_then(|f| f.deadline),
            Proto::Udp { session, .. } => session.poll_timeout(),
        });
        requests.chain(self.timers.next()).min()
    }

    /// The next request to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When an event-driven announce may go out: now, unless the last `min interval` says later.
    fn event_time(&self, now: Time) -> Time {
        self.min_interval_until.map_or(now, |t| t.max(now))
    }

    fn in_flight_index(&self, id: RequestId) -> Option<usize> {
        self.trackers
            .iter()
            .position(|t| t.in_flight.is_some_and(|f| f.id == id))
    }

    /// Everything whose time has come, in order: request timeouts and retransmissions, the stop deadline, the
    /// next announce round.
    fn run_due(&mut self, now: Time) {
        if self.state == State::Finished {
            return;
        }
        for index in 0..self.trackers.len() {
            let Some(t) = self.trackers.get_mut(index) else {
                continue;
            };
            let outcome = match &mut t.proto {
                Proto::Http { .. } => match t.in_flight {
                    Some(InFlight {
                        deadline: Some(d), ..
                    }) if d <= now => Some(Outcome::Failed(TrackerFailure::HttpTimedOut(
                        self.config.http_timeout,
                    ))),
                    _ => None,
                },
                Proto::Udp { session, .. } => {
                    if session.poll_timeout().is_some_and(|d| d <= now) {
                        let outcome = session.handle_timeout(now, &mut self.rng);
                        self.drain_udp(index);
                        outcome.map(|o| self.read_udp(o))
                    } else {
                        None
                    }
                }
            };
            if let Some(outcome) = outcome {
                self.complete(now, index, outcome);
            }
        }
        if self.state == State::Stopping && self.timers.take_expired(Timer::StopDeadline, now) {
            self.finish();
            return;
        }
        if self.state == State::Running
            && self.round.is_none()
            && self.timers.take_expired(Timer::Announce, now)
        {
            self.wanted = false;
            self.round = Some(Round { tier: 0, pos: 0 });
            self.advance_round(now);
        }
    }

    /// Send the current round's announce to the next tracker that is not backing off, or end the round.
    fn advance_round(&mut self, now: Time) {
        while let Some(round) = self.round {
            let Some(tier) = self.tiers.get(round.tier) else {
                self.round_failed(now);
                return;
            };
            let Some(&id) = tier.get(round.pos) else {
                self.round = Some(Round {
                    tier: round.tier + 1,
                    pos: 0,
                });
                continue;
            };
            let skip = self
                .trackers
                .get(id.index())
                .is_none_or(|t| t.retry_at.is_some_and(|r| r > now));
            if skip {
                self.round = Some(Round {
                    tier: round.tier,
                    pos: round.pos + 1,
                });
                continue;
            }
            let event = self.event_for(id);
            if let Some(t) = self.trackers.get_mut(id.index()) {
                // An announce takes precedence over a scrape in progress, which is asked again afterwards.
                if t.in_flight.is_some_and(|f| f.purpose == Purpose::Scrape) {
                    t.scrape_wanted = true;
                }
            }
            self.send(now, id, Purpose::Announce(event));
            return;
        }
    }

    /// Every tracker failed or is backing off: try again when the first backoff ends.
    fn round_failed(&mut self, now: Time) {
        self.round = None;
        let next = self.trackers.iter().filter_map(|t| t.retry_at).min();
        if let Some(at) = next {
            self.timers.set(Timer::Announce, at.max(now));
        }
    }

    /// The event a tracker should hear now.
    fn event_for(&self, id: TrackerId) -> Event {
        let Some(t) = self.trackers.get(id.index()) else {
            return Event::None;
        };
        if !t.started {
            Event::Started
        } else if self.completed && !t.completed_sent {
            Event::Completed
        } else if self.paused {
            Event::Paused
        } else {
            Event::None
        }
    }

    /// Queue the request for `purpose` to tracker `id` and mark it in flight.
    fn send(&mut self, now: Time, id: TrackerId, purpose: Purpose) {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let event = match purpose {
            Purpose::Announce(e) => e,
            Purpose::Stop => Event::Stopped,
            Purpose::Scrape => Event::None,
        };
        let numwant = if purpose == Purpose::Stop {
            Some(0)
        } else {
            self.numwant
        };
        let index = id.index();
        let Some(t) = self.trackers.get_mut(index) else {
            return;
        };
        let mut deadline = None;
        match &mut t.proto {
            Proto::Http { scrape_url } => {
                let url = if purpose == Purpose::Scrape {
                    let Some(scrape_url) = scrape_url else {
                        let url = t.url.clone();
                        self.events.push_back(ClientEvent::TrackerError {
                            tracker: id,
                            url,
                            error: TrackerFailure::NoScrapeUrl,
                        });
                        return;
                    };
                    http::ScrapeRequest {
                        info_hashes: vec![self.info_hash],
                    }
                    .url(scrape_url)
                } else {
                    let mut r = http::AnnounceRequest::new(self.info_hash, self.peer_id, self.port);
                    r.uploaded = self.progress.uploaded;
                    r.downloaded = self.progress.downloaded;
                    r.left = self.progress.left;
                    r.event = event;
                    r.numwant = numwant;
                    r.key = Some(format!("{:08X}", self.key).into_bytes());
                    r.trackerid = t.tracker_id.clone();
                    r.url(&t.url)
                };
                deadline = Some(now + self.config.http_timeout);
                self.transmits.push_back(Transmit {
                    tracker: id,
                    id: request,
                    request: ToSend::Http { url },
                });
            }
            Proto::Udp {
                url_data, session, ..
            } => {
                let op = if purpose == Purpose::Scrape {
                    UdpOperation::Scrape(vec![self.info_hash])
                } else {
                    UdpOperation::Announce(udp::AnnounceRequest {
                        connection_id: crate::ConnectionId(0),
                        transaction_id: crate::TransactionId(0),
                        info_hash: self.info_hash,
                        peer_id: self.peer_id,
                        downloaded: self.progress.downloaded,
                        left: self.progress.left,
                        uploaded: self.progress.uploaded,
                        event,
                        ip: None,
                        key: self.key,
                        num_want: numwant,
                        port: self.port,
                        url_data: url_data.clone(),
                    })
                };
                session.start(now, op, &mut self.rng);
            }
        }
        t.in_flight = Some(InFlight {
            id: request,
            purpose,
            deadline,
            completed: self.completed,
        });
        self.drain_udp(index);
    }

    /// Move a UDP session's datagram (if any) to the transmit queue.
    fn drain_udp(&mut self, index: usize) {
        let Some(t) = self.trackers.get_mut(index) else {
            return;
        };
        let (
            Proto::Udp {
                host, port, session, ..
            },
            Some(f),
        ) = (&mut t.proto, t.in_flight)
        else {
            return;
        };
        while let Some(bytes) = session.poll_transmit() {
            let Ok(tracker) = u32::try_from(index) else {
                return;
            };
            self.transmits.push_back(Transmit {
                tracker: TrackerId(tracker),
                id: f.id,
                request: ToSend::Udp {
                    host: host.clone(),
                    port: *port,
                    bytes,
                },
            });
        }
    }

    fn read_http(&self, purpose: Purpose, r: &HttpResponse) -> Outcome {
        let result = match purpose {
            Purpose::Scrape => http::ScrapeResponse::decode(&r.body).map(|reply| match reply {
                Reply::Success(s) => match s.files.get(&self.info_hash) {
                    Some(stats) => Outcome::Scraped(*stats),
                    None => Outcome::Failed(TrackerFailure::NotInScrape),
                },
                Reply::Failure(f) => Outcome::Failed(TrackerFailure::Refused(f.reason)),
            }),
            Purpose::Announce(_) | Purpose::Stop => {
                http::AnnounceResponse::decode(&r.body).map(|reply| match reply {
                    Reply::Success(a) => Outcome::Announced(Answer {
                        interval: a.interval,
                        min_interval: a.min_interval,
                        tracker_id: a.tracker_id,
                        complete: a.complete,
                        incomplete: a.incomplete,
                        peers: a
                            .peers
                            .into_iter()
                            .map(SocketAddr::V4)
                            .chain(a.peers6.into_iter().map(SocketAddr::V6))
                            .collect(),
                        warning: a.warning,
                    }),
                    Reply::Failure(f) => Outcome::Failed(TrackerFailure::Refused(f.reason)),
                })
            }
        };
        match result {
            // A refusal is worth showing whatever the status; any other answer counts only with 200.
            Ok(o @ Outcome::Failed(TrackerFailure::Refused(_))) => o,
            _ if r.status != 200 => Outcome::Failed(TrackerFailure::HttpStatus(r.status)),
            Ok(o) => o,
            Err(e) => Outcome::Failed(TrackerFailure::Malformed(e.to_string())),
        }
    }

    fn read_udp(&self, outcome: UdpOutcome) -> Outcome {
        match outcome {
            UdpOutcome::Announced(a) => Outcome::Announced(Answer {
                interval: a.interval,
                complete: Some(a.seeders),
                incomplete: Some(a.leechers),
                peers: match a.peers {
                    ResponsePeers::V4(p) => p.into_iter().map(SocketAddr::V4).collect(),
                    ResponsePeers::V6(p) => p.into_iter().map(SocketAddr::V6).collect(),
                },
                ..Answer::default()
            }),
            UdpOutcome::Scraped(s) => match s.stats.first() {
                Some(stats) => Outcome::Scraped(*stats),
                None => Outcome::Failed(TrackerFailure::NotInScrape),
            },
            UdpOutcome::Failed(e) => Outcome::Failed(match e {
                UdpError::TimedOut { sends, waited } => TrackerFailure::UdpTimedOut { sends, waited },
                UdpError::Tracker(m) => TrackerFailure::Refused(if m.is_empty() {
                    UdpError::Tracker(m).to_string()
                } else {
                    m
                }),
                UdpError::EmptyAnswer => TrackerFailure::EmptyUdpAnswer,
                UdpError::Malformed(e) => TrackerFailure::Malformed(e.to_string()),
                e @ UdpError::BadScrape { .. } => TrackerFailure::Malformed(e.to_string()),
            }),
        }
    }

    /// A request to the tracker at `index` ended.
    fn complete(&mut self, now: Time, index: usize, outcome: Outcome) {
        let Some(t) = self.trackers.get_mut(index) else {
            return;
        };
        let Some(flight) = t.in_flight.take() else {
            return;
        };
        let Ok(raw) = u32::try_from(index) else {
            return;
        };
        let id = TrackerId(raw);
        let url = t.url.clone();
        match (flight.purpose, outcome) {
            (Purpose::Announce(event), Outcome::Announced(a)) => {
                self.announced(now, id, event, flight.completed, a)
            }
            (Purpose::Announce(_), Outcome::Failed(error)) => {
                self.events.push_back(ClientEvent::TrackerError {
                    tracker: id,
                    url,
                    error,
                });
                self.back_off(now, index);
                if let Some(r) = self.round {
                    self.round = Some(Round {
                        tier: r.tier,
                        pos: r.pos + 1,
                    });
                }
                self.advance_round(now);
            }
            (Purpose::Stop, Outcome::Announced(_)) => {
                if let Some(t) = self.trackers.get_mut(index) {
                    t.started = false;
                }
                self.events.push_back(ClientEvent::Announced {
                    tracker: id,
                    event: Event::Stopped,
                    interval: Duration::ZERO,
                });
            }
            (Purpose::Scrape, Outcome::Scraped(s)) => self.events.push_back(ClientEvent::Stats {
                tracker: id,
                complete: s.complete,
                incomplete: s.incomplete,
                downloaded: Some(s.downloaded),
            }),
            (_, Outcome::Failed(error)) => self.events.push_back(ClientEvent::TrackerError {
                tracker: id,
                url,
                error,
            }),
            // A scrape answered with an announce response or the reverse cannot happen: the reading follows
            // the purpose.
            (_, _) => {}
        }
        if self.state == State::Stopping {
            self.check_stopped();
            return;
        }
        if let Some(t) = self.trackers.get_mut(index) {
            if t.in_flight.is_none() && t.scrape_wanted {
                t.scrape_wanted = false;
                self.send(now, id, Purpose::Scrape);
            }
        }
    }

    /// A tracker answered the round's announce.
    fn announced(&mut self, now: Time, id: TrackerId, event: Event, completed: bool, a: Answer) {
        if let Some(t) = self.trackers.get_mut(id.index()) {
            t.failures = 0;
            t.retry_at = None;
            t.started = true;
            // A tracker that first heard of this peer as complete must not hear `completed` later.
            if event == Event::Completed || (event == Event::Started && completed) {
                t.completed_sent = true;
            }
            if a.tracker_id.is_some() {
                t.tracker_id = a.tracker_id;
            }
        }
        // BEP 12: "if a connection with a tracker is successful, it will be moved to the front of the tier."
        for tier in &mut self.tiers {
            if let Some(pos) = tier.iter().position(|&t| t == id) {
                tier.remove(pos);
                tier.insert(0, id);
            }
        }
        self.round = None;
        self.last_success = Some(id);
        let interval = Duration::from_secs(u64::from(a.interval)).clamp(
            self.config.min_interval_floor,
            self.config.max_interval.max(self.config.min_interval_floor),
        );
        self.min_interval_until = a
            .min_interval
            .map(|m| now + Duration::from_secs(u64::from(m)).min(interval));
        let owed = self.completed && self.trackers.get(id.index()).is_some_and(|t| !t.completed_sent);
        let next = if owed {
            now
        } else if self.wanted {
            self.event_time(now)
        } else {
            now + interval
        };
        self.timers.set(Timer::Announce, next);
        self.events.push_back(ClientEvent::Announced {
            tracker: id,
            event,
            interval,
        });
        if let Some(message) = a.warning {
            self.events.push_back(ClientEvent::Warning {
                tracker: Some(id),
                message,
            });
        }
        let peers: Vec<SocketAddr> = a.peers.into_iter().filter(|p| p.port() != 0).collect();
        if !peers.is_empty() {
            self.events.push_back(ClientEvent::Peers { tracker: id, peers });
        }
        if let (Some(complete), Some(incomplete)) = (a.complete, a.incomplete) {
            self.events.push_back(ClientEvent::Stats {
                tracker: id,
                complete,
                incomplete,
                downloaded: None,
            });
        }
    }

    /// One more failure for the tracker at `index`: skip it until the backoff has passed.
    fn back_off(&mut self, now: Time, index: usize) {
        let Some(t) = self.trackers.get_mut(index) else {
            return;
        };
        t.failures = t.failures.saturating_add(1);
        let doublings = t.failures.saturating_sub(1).min(31);
        let delay = self
            .config
            .backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.config.backoff_max);
        let max_jitter_ms = delay
            .as_millis()
            .saturating_mul(u128::from(self.config.backoff_jitter_percent))
            / 100;
        let max_jitter_ms = u64::try_from(max_jitter_ms).unwrap_or(u64::MAX);
        let jitter = if max_jitter_ms == 0 {
            0
        } else {
            self.rng.random_range(0..=max_jitter_ms)
        };
        t.retry_at = Some(now + delay + Duration::from_millis(jitter));
    }

    /// Finish once no `stopped` announce is in flight.
    fn check_stopped(&mut self) {
        if self.state == State::Stopping && self.trackers.iter().all(|t| t.in_flight.is_none()) {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.state = State::Finished;
        self.timers = TimerTable::default();
        for t in &mut self.trackers {
            t.in_flight = None;
            if let Proto::Udp { session, .. } = &mut t.proto {
                session.cancel();
            }
        }
        self.events.push_back(ClientEvent::Finished);
    }
}

/// Read a tracker URL: `http://` and `https://` URLs are used as they are; `udp://host:port[/path]` gives the
/// host, the port and BEP 41 URLData.
fn parse_url(url: &str, udp: UdpConfig) -> Result<Proto, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL (no scheme://)".into());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return Err("no host".into());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(Proto::Http {
            scrape_url: http::scrape_url(url),
        }),
        "udp" => {
            let (host, port) = host_port
                .rsplit_once(':')
                .filter(|(h, _)| !h.is_empty() && (!h.contains(':') || h.ends_with(']')))
                .ok_or("a UDP tracker URL needs a port (udp://host:port)")?;
            let port: u16 = port
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("bad port {port:?}"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let path = path.split('#').next().unwrap_or_default();
            Ok(Proto::Udp {
                host: host.to_owned(),
                port,
                url_data: (!path.is_empty()).then(|| path.as_bytes().to_vec()),
                session: Box::new(UdpSession::new(udp)),
            })
        }
        other => Err(format!(
            "unsupported scheme {other:?} (http, https and udp are supported)"
        )),
    }
}
