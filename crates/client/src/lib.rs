//! The peer client's runtime: many torrents in one process, driven from TCP sockets, a disk pool and
//! timers.
//!
//! The protocol lives in the pure `engine` crate ([`engine::torrent::TorrentState`]); this crate is its
//! driver, the "`quinn`" to the engine's "`quinn-proto`":
//!
//! - **One task per torrent** owns its `TorrentState`, its [`storage::FileStore`] and its announce client,
//!   and is the only place that state changes. Every input (bytes from a peer, a finished disk job, a timer,
//!   a command) arrives on the task's channels; after each input the task drains the state machine's
//!   outputs: bytes to peers, disk jobs, events, the next timer.
//! - **Two tasks per connection**: a reader that moves socket bytes to the torrent task as `Bytes` chunks
//!   (bounded channel: a torrent that cannot keep up stops reading, and TCP pushes back on the peer), and a
//!   writer that batches the torrent's messages into few `write` calls. Both take from the bandwidth token
//!   buckets (global and per torrent) before each read and write.
//! - **A disk pool** of one thread per core, shared by all torrents, writes blocks, reads blocks for
//!   uploads, and hashes pieces, so hashing never runs on the network path. Writes waiting for the disk are
//!   bounded per torrent ([`ClientConfig::max_write_backlog`]): past it the torrent stops reading from its
//!   peers until the disk catches up. Blocks queued for one peer's upload are bounded too
//!   ([`ClientConfig::max_upload_queue`]).
//! - **One listen socket** for all torrents: an incoming connection is routed by the info-hash in its
//!   handshake. Connection limits are global ([`ClientConfig::max_connections`]) and per torrent.
//! - Peers come from trackers (the `net` announce driver: multi-tracker tiers, `started`, `completed` and
//!   `stopped` events), from incoming connections, from the caller ([`TorrentHandle::add_peers`]) and,
//!   for torrents that are not private, from peer exchange (BEP 11).
//! - **Magnet links** ([`Client::add_magnet`]): the torrent starts in [`Phase::FetchingMetadata`], with
//!   peers from the link's trackers (announcing 16 KiB left, as libtorrent does while it has no metadata),
//!   its `x.pe` peers, [`TorrentHandle::add_peers`] and incoming connections. The info dictionary comes
//!   from the peers (BEP 9, [`engine::metadata`]), is verified against the info-hash, and becomes the
//!   torrent ([`TorrentHandle::torrent`]); the data is then checked and downloaded as for a torrent file,
//!   over the same connections.
//! - **Resume data** (the have-bitfield plus each file's size and modification time) is written every
//!   [`ClientConfig::resume_interval`] while pieces complete, on completion and at shutdown; at start it is
//!   trusted only if the files still match, otherwise the data is re-checked on all cores.
//!
//! ```no_run
//! # async fn demo(torrent: metainfo::Torrent) -> Result<(), client::ClientError> {
//! let client = client::Client::start(client::ClientConfig::default(), None).await?;
//! let handle = client.add_torrent(client::AddTorrent::new(torrent, "downloads".into())).await?;
//! handle.wait_complete().await?;
//! client.shutdown().await;
//! # Ok(()) }
//! ```
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod conn;
mod discovery;
mod disk;
mod limit;
mod listen;
mod magnet;
mod peers;
mod torrent;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use engine::bandwidth::TokenBucket;
use engine::torrent::TorrentConfig;
use engine::Time;
use metainfo::{InfoHashV1, Magnet, Torrent};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use wire::PeerId;

pub use limit::Limiter;

/// Settings of a [`Client`]. `Default` gives values fit for a desktop client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where to listen when [`Client::start`] is not handed a socket: `None` tries `0.0.0.0` ports
    /// 6881-6889 and takes the first free one.
    pub listen: Option<SocketAddr>,
    /// The port announced to trackers; `None`: the listen socket's port.
    pub announce_port: Option<u16>,
    /// Connections (incoming and outgoing, all torrents) open at once.
    pub max_connections: usize,
    /// Connections per torrent.
    pub max_peers_per_torrent: usize,
    /// Outgoing connection attempts in progress per torrent.
    pub max_half_open: usize,
    /// Giving up on a connection attempt.
    pub connect_timeout: Duration,
    /// How long an incoming connection may take to send the first 48 bytes of its handshake.
    pub handshake_timeout: Duration,
    /// Global download limit in bytes per second (`None`: unlimited).
    pub download_limit: Option<u64>,
    /// Global upload limit in bytes per second (`None`: unlimited).
    pub upload_limit: Option<u64>,
    /// Threads writing, reading and hashing (default: one per core).
    pub disk_threads: usize,
    /// Where resume files go (`None`: no resume data; the data is checked at every start).
    pub resume_dir: Option<PathBuf>,
    /// How often resume data is saved while pieces complete.
    pub resume_interval: Duration,
    /// Bytes of downloaded blocks waiting for the disk, per torrent, before the torrent stops reading
    /// from its peers.
    pub max_write_backlog: usize,
    /// Bytes of pieces being downloaded held in memory per torrent: such a piece is verified there and
    /// written whole (never read back); pieces beyond this go block by block to disk and are verified
    /// from there.
    pub piece_cache: usize,
    /// Bytes of whole pieces kept per torrent after reading them for uploads (requests for the other
    /// blocks of a piece are then served from memory).
    pub read_cache: usize,
    /// Write verified pieces with `O_DIRECT` where the file system allows (Linux): from the piece's
    /// buffer straight to the disk, without a copy into the page cache (that copy was the leecher's largest
    /// CPU cost at 1 GiB/s). Pieces are still read back through the page cache when uploading.
    pub direct_writes: bool,
    /// Bytes read from disk and queued for one peer before its further requests wait.
    pub max_upload_queue: usize,
    /// Bytes one socket read takes at most.
    pub read_chunk: usize,
    /// Chunks read from peers and queued for a torrent task.
    pub inbox_capacity: usize,
    /// Contact trackers (off: peers come only from [`TorrentHandle::add_peers`] and incoming connections).
    pub use_trackers: bool,
    /// Our peer id (`None`: `-BS0100-` and twelve random characters).
    pub peer_id: Option<PeerId>,
    /// The engine's settings for every torrent.
    pub engine: TorrentConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let mut engine = TorrentConfig::default();
        // The `reqq` we announce. Some peers refill their requests on a timer, not per block received:
        // Transmission 3.00 sends at most `reqq` requests per cycle of about a second (two 500 ms
        // bandwidth pulses), so its rate from us is capped at `reqq` x 16 KiB per second (256 held it at
        // 4 MiB/s; libtorrent's high-performance seed announces 2000). 4096 allows 64 MiB/s. Queued
        // requests cost a few bytes each: the blocks read for a peer stay bounded by `max_upload_queue`.
        engine.session.max_incoming_requests = 4096;
        ClientConfig {
            listen: None,
            announce_port: None,
            max_connections: 500,
            max_peers_per_torrent: 60,
            max_half_open: 16,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            download_limit: None,
            upload_limit: None,
            disk_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            resume_dir: None,
            resume_interval: Duration::from_secs(30),
            max_write_backlog: 8 << 20,
            max_upload_queue: 2 << 20,
            piece_cache: 16 << 20,
            read_cache: 8 << 20,
            direct_writes: true,
            read_chunk: 64 << 10,
            inbox_capacity: 32,
            use_trackers: true,
            peer_id: None,
            engine,
        }
    }
}

/// Why the client or a torrent could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No listen socket could be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The torrent is already in this client.
    #[error("torrent {0} is already added")]
    Duplicate(InfoHashV1),
    /// The torrent has no info-hash usable on the wire.
    #[error("the torrent has no info-hash")]
    NoInfoHash,
    /// The torrent's files could not be opened or checked.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// The engine refused the torrent.
    #[error(transparent)]
    Engine(#[from] engine::torrent::TorrentError),
    /// `--only` patterns matched no file.
    #[error("no file of the torrent matches {0}")]
    NoFileSelected(String),
    /// The torrent stopped with an error.
    #[error("{0}")]
    Failed(String),
    /// The client is shutting down.
    #[error("the client is shutting down")]
    ShuttingDown,
}

/// A torrent to add.
#[derive(Debug, Clone)]
pub struct AddTorrent {
    /// The torrent.
    pub torrent: Arc<Torrent>,
    /// The folder the content goes in (a multi-file torrent's folder is created inside it).
    pub dir: PathBuf,
    /// Serve what is there and download nothing; the files are opened read-only.
    pub seed_only: bool,
    /// Only files whose path (relative, with `/`) contains one of these substrings (empty: all files).
    pub only: Vec<String>,
    /// Pieces in order (for streaming) rather than rarest first.
    pub sequential: bool,
    /// This torrent's download limit in bytes per second.
    pub download_limit: Option<u64>,
    /// This torrent's upload limit in bytes per second.
    pub upload_limit: Option<u64>,
    /// Peers to connect to at once.
    pub peers: Vec<SocketAddr>,
}

impl AddTorrent {
    /// Download `torrent` into `dir`, all files, no limits.
    pub fn new(torrent: Torrent, dir: PathBuf) -> Self {
        AddTorrent {
            torrent: Arc::new(torrent),
            dir,
            seed_only: false,
            only: Vec::new(),
            sequential: false,
            download_limit: None,
            upload_limit: None,
            peers: Vec::new(),
        }
    }
}

/// A magnet link to add: the torrent's metadata is fetched from peers first (BEP 9).
#[derive(Debug, Clone)]
pub struct AddMagnet {
    /// The link (its `xt` hashes, `dn`, `tr` trackers, `x.pe` peers and `ws` web seeds are used).
    pub magnet: Magnet,
    /// The folder the content goes in, as for [`AddTorrent::dir`].
    pub dir: PathBuf,
    /// As [`AddTorrent::only`].
    pub only: Vec<String>,
    /// As [`AddTorrent::sequential`].
    pub sequential: bool,
    /// This torrent's download limit in bytes per second.
    pub download_limit: Option<u64>,
    /// This torrent's upload limit in bytes per second.
    pub upload_limit: Option<u64>,
    /// Peers to connect to at once (besides the link's `x.pe` peers).
    pub peers: Vec<SocketAddr>,
}

impl AddMagnet {
    /// Download what `magnet` names into `dir`, all files, no limits.
    pub fn new(magnet: Magnet, dir: PathBuf) -> Self {
        AddMagnet {
            magnet,
            dir,
            only: Vec::new(),
            sequential: false,
            download_limit: None,
            upload_limit: None,
            peers: Vec::new(),
        }
    }

    /// The torrent to add once its metadata is here.
    pub(crate) fn into_add(self, torrent: Arc<Torrent>) -> AddTorrent {
        AddTorrent {
            torrent,
            dir: self.dir,
            seed_only: false,
            only: self.only,
            sequential: self.sequential,
            download_limit: self.download_limit,
            upload_limit: self.upload_limit,
            // Dialled already during the metadata phase.
            peers: Vec::new(),
        }
    }
}

/// What a torrent is doing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Phase {
    /// A magnet link: fetching the torrent's metadata from peers.
    FetchingMetadata,
    /// Checking the existing data.
    #[default]
    Checking,
    /// Downloading.
    Downloading,
    /// Every wanted piece is verified; serving.
    Seeding,
    /// Stopped by an error (the message says what).
    Failed(String),
    /// Stopped.
    Stopped,
}

/// A snapshot of a torrent, updated about once a second and on every phase change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TorrentStatus {
    /// The phase.
    pub phase: Phase,
    /// Bytes hashed to find out what is already here: while checking, so far; afterwards, in all (zero
    /// when resume data was trusted for every file, or the download is fresh).
    pub checked_bytes: u64,
    /// Pieces verified.
    pub pieces_have: u32,
    /// Pieces in the torrent.
    pub pieces_total: u32,
    /// Bytes of the pieces we have.
    pub bytes_have: u64,
    /// Bytes of wanted pieces still missing.
    pub bytes_left: u64,
    /// The torrent's size.
    pub total_bytes: u64,
    /// Block bytes downloaded in this run.
    pub downloaded: u64,
    /// Block bytes uploaded in this run.
    pub uploaded: u64,
    /// Download rate, bytes per second over the last few seconds.
    pub download_rate: f64,
    /// Upload rate, bytes per second over the last few seconds.
    pub upload_rate: f64,
    /// Connected peers.
    pub peers: usize,
    /// Peer addresses known (connected or not).
    pub known_peers: usize,
    /// Pieces that failed verification in this run.
    pub failed_pieces: u64,
    /// Bytes counted as wanted but already present at start (from resume data or the check).
    pub resumed_bytes: u64,
    /// Peers banned for sending bad data.
    pub banned: u64,
    /// A problem the torrent is waiting out (a full disk: writes are retried), if any.
    pub error: Option<String>,
    /// While a magnet's metadata is fetched: pieces of it received (of the copy being assembled), and
    /// pieces in all (0 until a peer told the size).
    pub metadata_pieces: (u32, u32),
}

impl TorrentStatus {
    /// True once every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Seeding
    }
}

/// Commands to a torrent task.
#[derive(Debug)]
enum Command {
    AddPeers(Vec<SocketAddr>),
    Stop(oneshot::Sender<()>),
}

/// A torrent in a [`Client`].
#[derive(Debug, Clone)]
pub struct TorrentHandle {
    info_hash: InfoHashV1,
    status: watch::Receiver<TorrentStatus>,
    commands: mpsc::Sender<Command>,
    torrent: watch::Receiver<Option<Arc<Torrent>>>,
}

impl TorrentHandle {
    /// The info-hash used on the wire.
    pub fn info_hash(&self) -> InfoHashV1 {
        self.info_hash
    }

    /// The latest status.
    pub fn status(&self) -> TorrentStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status update.
    pub fn watch(&self) -> watch::Receiver<TorrentStatus> {
        self.status.clone()
    }

    /// The torrent: known from the start for a torrent file, once its metadata is fetched for a magnet
    /// link. Its [`bytes`](Torrent::bytes) are a complete torrent file (the fetched info dictionary with
    /// the link's trackers), worth saving so a later run needs no peers for the metadata.
    pub fn torrent(&self) -> Option<Arc<Torrent>> {
        self.torrent.borrow().clone()
    }

    /// Whether the torrent is private (BEP 27: no DHT, no PEX, no local discovery): `None` while a magnet
    /// link's metadata is still being fetched (its privacy is not known yet; libtorrent, too, looks for
    /// peers everywhere until then).
    pub fn is_private(&self) -> Option<bool> {
        self.torrent.borrow().as_ref().map(|t| t.info.private)
    }

    /// Wait until the torrent is known (at once for a torrent file); an error if it fails or stops first.
    pub async fn wait_metadata(&self) -> Result<Arc<Torrent>, ClientError> {
        let mut rx = self.torrent.clone();
        let mut status = self.status.clone();
        loop {
            if let Some(t) = rx.borrow_and_update().clone() {
                return Ok(t);
            }
            match status.borrow_and_update().phase.clone() {
                Phase::Failed(e) => return Err(ClientError::Failed(e)),
                Phase::Stopped => return Err(ClientError::ShuttingDown),
                _ => {}
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(ClientError::ShuttingDown) },
                r = status.changed() => if r.is_err() { return Err(ClientError::ShuttingDown) },
            }
        }
    }

    /// Connect to these peers (during a magnet's metadata phase too).
    pub async fn add_peers(&self, peers: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::AddPeers(peers)).await;
    }

    /// Wait until every wanted piece is verified; an error if the torrent fails or stops first.
    pub async fn wait_complete(&self) -> Result<(), ClientError> {
        let mut rx = self.status.clone();
        loop {
            let phase = rx.borrow_and_update().phase.clone();
            match phase {
                Phase::Seeding => return Ok(()),
                Phase::Failed(e) => return Err(ClientError::Failed(e)),
                Phase::Stopped => return Err(ClientError::ShuttingDown),
                Phase::FetchingMetadata | Phase::Checking | Phase::Downloading => {}
            }
            if rx.changed().await.is_err() {
                return Err(ClientError::ShuttingDown);
            }
        }
    }

    /// Stop the torrent: `stopped` announces, resume data saved, connections closed.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Everything the torrent tasks and the listener share.
#[derive(Debug)]
struct Shared {
    config: ClientConfig,
    peer_id: PeerId,
    epoch: Instant,
    listen_addr: SocketAddr,
    next_key: AtomicU32,
    /// The inbox of every torrent, by the info-hash peers use in the handshake.
    torrents: Mutex<HashMap<InfoHashV1, mpsc::Sender<torrent::Inbox>>>,
    connections: Arc<Semaphore>,
    download: Arc<Mutex<TokenBucket>>,
    upload: Arc<Mutex<TokenBucket>>,
    disk: disk::DiskPool,
    /// Our DHT node, when we run one.
    dht: Option<net::dht::DhtHandle>,
    /// Local service discovery, when on.
    lsd: Option<net::lsd::LsdCommands>,
    /// Torrents that take peers from the DHT and LSD, by info-hash.
    sinks: Mutex<HashMap<InfoHashV1, TorrentHandle>>,
}

impl Shared {
    fn sinks(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHashV1, TorrentHandle>> {
        self.sinks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Time {
        Time(self.epoch.elapsed())
    }

    fn instant(&self, t: Time) -> Instant {
        self.epoch
            .checked_add(t.0)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn torrents(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHashV1, mpsc::Sender<torrent::Inbox>>> {
        self.torrents.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running client: one listen socket, a disk pool, any number of torrents.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    listener: JoinHandle<()>,
    tasks: Mutex<Vec<(TorrentHandle, JoinHandle<()>)>>,
}

/// A peer id for this process: `-BS0100-` (Azureus style: bitswarm 0.1.0.0) and 12 random characters.
pub fn random_peer_id() -> PeerId {
    use rand::{Rng, SeedableRng};
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = *b"-BS0100-000000000000";
    let mut rng = rand::rngs::StdRng::from_os_rng();
    for b in id.iter_mut().skip(8) {
        *b = CHARS
            .get(rng.random_range(0..CHARS.len()))
            .copied()
            .unwrap_or(b'0');
    }
    PeerId(id)
}

impl Client {
    /// Start a client listening on `listener` (tests bind port 0 and hand it over), or, when `None`, on
    /// [`ClientConfig::listen`].
    pub async fn start(config: ClientConfig, listener: Option<TcpListener>) -> Result<Client, ClientError> {
        Client::start_with(config, listener, Discovery::default()).await
    }

    /// [`Client::start`], with peer sources beyond trackers: a running DHT node (every torrent that is not
    /// private is looked up and announced in it, peers' `port` messages feed its table, and our handshake
    /// says we run one) and local service discovery.
    pub async fn start_with(
        mut config: ClientConfig,
        listener: Option<TcpListener>,
        discovery: Discovery,
    ) -> Result<Client, ClientError> {
        if let Some(d) = &discovery.dht {
            config.engine.reserved = config.engine.reserved | wire::Reserved::DHT;
            config.engine.dht_port = Some(d.local_addr().port());
        }
        let (lsd, lsd_found) = match discovery.lsd {
            Some(l) => {
                let (cmds, found) = l.split();
                (Some(cmds), Some(found))
            }
            None => (None, None),
        };
        let listener = match listener {
            Some(l) => l,
            None => bind_listener(config.listen).await?,
        };
        let listen_addr = listener.local_addr().map_err(|source| ClientError::Listen {
            addr: "the given socket".into(),
            source,
        })?;
        let epoch = Instant::now();
        let now = Time::default();
        let shared = Arc::new(Shared {
            peer_id: config.peer_id.unwrap_or_else(random_peer_id),
            epoch,
            listen_addr,
            next_key: AtomicU32::new(1),
            torrents: Mutex::new(HashMap::new()),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            download: Arc::new(Mutex::new(TokenBucket::with_rate(config.download_limit, now))),
            upload: Arc::new(Mutex::new(TokenBucket::with_rate(config.upload_limit, now))),
            disk: disk::DiskPool::new(config.disk_threads.max(1)),
            dht: discovery.dht,
            lsd,
            sinks: Mutex::new(HashMap::new()),
            config,
        });
        if let Some(found) = lsd_found {
            tokio::spawn(discovery::lsd_router(Arc::clone(&shared), found));
        }
        tracing::info!(addr = %listen_addr, peer_id = %String::from_utf8_lossy(&shared.peer_id.0), "client listening");
        let listener = tokio::spawn(listen::run(Arc::clone(&shared), listener));
        Ok(Client {
            shared,
            listener,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Where the client listens.
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen_addr
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer_id
    }

    /// Add a torrent: its data is checked (or resumed) and it starts downloading or seeding on its own
    /// task. Returns once the torrent is registered (checking goes on in the background: watch
    /// [`TorrentHandle::status`]).
    pub async fn add_torrent(&self, add: AddTorrent) -> Result<TorrentHandle, ClientError> {
        let info_hash = add
            .torrent
            .info_hashes
            .swarm_hash()
            .ok_or(ClientError::NoInfoHash)?;
        let status = TorrentStatus {
            total_bytes: add.torrent.info.total_size(),
            ..TorrentStatus::default()
        };
        let torrent = Some(Arc::clone(&add.torrent));
        self.spawn(torrent::Source::Torrent(add), info_hash, status, torrent)
    }

    /// Add a magnet link: its metadata is fetched from peers ([`Phase::FetchingMetadata`]), then it is
    /// checked and downloaded like a torrent file (see the crate documentation). Returns once the torrent
    /// is registered.
    pub async fn add_magnet(&self, add: AddMagnet) -> Result<TorrentHandle, ClientError> {
        let info_hash = add
            .magnet
            .info_hashes()
            .swarm_hash()
            .ok_or(ClientError::NoInfoHash)?;
        let status = TorrentStatus {
            phase: Phase::FetchingMetadata,
            ..TorrentStatus::default()
        };
        self.spawn(torrent::Source::Magnet(add), info_hash, status, None)
    }

    fn spawn(
        &self,
        source: torrent::Source,
        info_hash: InfoHashV1,
        status: TorrentStatus,
        torrent: Option<Arc<Torrent>>,
    ) -> Result<TorrentHandle, ClientError> {
        let (inbox_tx, inbox_rx) = mpsc::channel(self.shared.config.inbox_capacity.max(1));
        {
            let mut map = self.shared.torrents();
            if map.contains_key(&info_hash) {
                return Err(ClientError::Duplicate(info_hash));
            }
            map.insert(info_hash, inbox_tx.clone());
        }
        let (status_tx, status_rx) = watch::channel(status);
        let (torrent_tx, torrent_rx) = watch::channel(torrent);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let handle = TorrentHandle {
            info_hash,
            status: status_rx,
            commands: cmd_tx,
            torrent: torrent_rx,
        };
        let channels = torrent::Channels {
            inbox_tx,
            inbox_rx,
            cmd_rx,
            status_tx,
            torrent_tx,
        };
        let task = tokio::spawn(torrent::run(
            Arc::clone(&self.shared),
            source,
            info_hash,
            channels,
        ));
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((handle.clone(), task));
        if self.shared.dht.is_some() || self.shared.lsd.is_some() {
            self.shared.sinks().insert(info_hash, handle.clone());
            tokio::spawn(discovery::torrent(Arc::clone(&self.shared), handle.clone()));
        }
        Ok(handle)
    }

    /// Stop every torrent (each sends `stopped` to its trackers and saves its resume data) and the
    /// listener.
    pub async fn shutdown(self) {
        self.listener.abort();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let stops = tasks.iter().map(|(h, _)| h.stop());
        for stop in stops {
            stop.await;
        }
        for (_, task) in tasks {
            let _ = task.await;
        }
        if let Some(d) = &self.shared.dht {
            d.shutdown().await; // saves the routing table
        }
    }

    /// Fetches a magnet link's metadata from its swarm (its trackers, `x.pe` peers, the DHT) and stops: the
    /// torrent (the info dictionary as fetched and verified, the link's trackers outside it), or why not
    /// within `timeout`. No content is downloaded (no file is wanted; the scratch folder is removed).
    pub async fn fetch_metadata(
        &self,
        magnet: Magnet,
        timeout: Duration,
    ) -> Result<Arc<Torrent>, ClientError> {
        let hash = magnet.info_hashes().swarm_hash().ok_or(ClientError::NoInfoHash)?;
        let dir = std::env::temp_dir().join(format!(
            "bitswarm-metadata-{}-{}",
            std::process::id(),
            hash.to_hex()
        ));
        let mut add = AddMagnet::new(magnet, dir.clone());
        // A pattern no path contains: every file is skipped, so nothing but the metadata moves.
        add.only = vec!["\0".into()];
        let handle = self.add_magnet(add).await?;
        let got = tokio::time::timeout(timeout, handle.wait_metadata()).await;
        handle.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
        match got {
            Ok(r) => r,
            Err(_) => Err(ClientError::Failed(format!(
                "no peer gave the metadata within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Our DHT node, when the client runs one.
    pub fn dht(&self) -> Option<&net::dht::DhtHandle> {
        self.shared.dht.as_ref()
    }
}

/// Peer sources beyond trackers, handed to [`Client::start_with`].
#[derive(Debug, Default)]
pub struct Discovery {
    /// A running DHT node (see `net::dht::spawn`).
    pub dht: Option<net::dht::DhtHandle>,
    /// Local service discovery (see `net::lsd::spawn`).
    pub lsd: Option<net::lsd::LsdHandle>,
}

/// Bind `addr`, or the first free port of 6881-6889 on all IPv4 addresses.
pub async fn bind_listener(addr: Option<SocketAddr>) -> Result<TcpListener, ClientError> {
    if let Some(addr) = addr {
        return TcpListener::bind(addr)
            .await
            .map_err(|source| ClientError::Listen {
                addr: addr.to_string(),
                source,
            });
    }
    let mut last = None;
    for port in 6881..=6889 {
        match TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(ClientError::Listen {
        addr: "0.0.0.0:6881-6889".into(),
        source: last.unwrap_or_else(|| std::io::Error::other("no port")),
    })
}

fn next_key(shared: &Shared) -> engine::PeerKey {
    engine::PeerKey(shared.next_key.fetch_add(1, Ordering::Relaxed))
}
