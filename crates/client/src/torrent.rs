//! One torrent's task: owns the `TorrentState`, the file store and the announce client; the only place
//! the torrent's state changes. See the crate documentation for the shape.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::metadata::MetadataFetch;
use engine::picker::PickMode;
use engine::session::Transmit;
use engine::torrent::{DiskOp, TorrentEvent, TorrentState};
use engine::PeerKey;
use metainfo::{InfoHashV1, PieceIndex, Torrent};
use net::announce::{AnnounceHandle, Command as AnnounceCommand, DriverConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use storage::{
    AlignedBuf, FileStore, FileStoreOptions, Layout, PieceStore, Progress, ResumeData, StorageError,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tracing::Instrument;
use tracker_proto::client::{AnnounceClient, AnnounceParams, ClientEvent};
use tracker_proto::Event;
use wire::{Bitfield, BlockRequest};

use crate::conn::Outgoing;
use crate::peers::Peers;
use crate::{AddTorrent, Command, Phase, Shared, TorrentStatus};

/// What arrives at a torrent task from its connections and the listener.
#[derive(Debug)]
pub(crate) enum Inbox {
    /// Bytes from a peer.
    Data { key: PeerKey, data: Bytes },
    /// A connection ended (read EOF or error, or write error).
    Gone { key: PeerKey },
    /// An incoming connection for this torrent, with the handshake bytes already read.
    Incoming {
        stream: TcpStream,
        addr: SocketAddr,
        prefix: Vec<u8>,
        permit: OwnedSemaphorePermit,
    },
    /// An outgoing connection is open.
    Connected {
        stream: TcpStream,
        addr: SocketAddr,
        permit: OwnedSemaphorePermit,
    },
    /// An outgoing connection attempt failed.
    ConnectFailed { addr: SocketAddr },
}

/// A finished disk job.
#[derive(Debug)]
enum DiskDone {
    Written {
        req: BlockRequest,
        data: Vec<u8>,
        result: Result<(), StorageError>,
    },
    Verified {
        piece: PieceIndex,
        result: Result<bool, StorageError>,
        digests: Option<Vec<[u8; 20]>>,
    },
    Read {
        peer: PeerKey,
        req: BlockRequest,
        result: Result<Vec<u8>, StorageError>,
    },
    /// A whole piece read for uploads.
    PieceRead {
        piece: u32,
        result: Result<Vec<u8>, StorageError>,
    },
    /// A piece verified in memory and, when good, written; `buf` comes back when the write failed.
    CachedVerified {
        piece: PieceIndex,
        ok: bool,
        digests: Option<Vec<[u8; 20]>>,
        write: Result<(), StorageError>,
        /// The piece's buffer, back for reuse (or for another try when the write failed).
        buf: AlignedBuf,
    },
    ResumeSaved(Result<(), StorageError>),
}

/// A piece being downloaded into memory: verified there, then written in one go.
#[derive(Debug)]
struct PieceBuf {
    /// Aligned, so the writer thread can write the verified piece with `O_DIRECT` (no page-cache copy).
    data: AlignedBuf,
}

/// Rates over a few seconds from cumulative counters sampled once a second.
#[derive(Debug, Default)]
struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    const WINDOW: usize = 5;

    fn sample(&mut self, at: Instant, total: u64) -> f64 {
        self.samples.push_back((at, total));
        while self.samples.len() > Self::WINDOW {
            self.samples.pop_front();
        }
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, v0)), Some(&(t1, v1))) if t1 > t0 => {
                v1.saturating_sub(v0) as f64 / t1.duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

struct Task {
    shared: Arc<Shared>,
    info_hash: InfoHashV1,
    torrent: Arc<Torrent>,
    store: Arc<FileStore>,
    state: TorrentState<StdRng>,
    seed_only: bool,
    peers: Peers,
    disk_tx: mpsc::UnboundedSender<DiskDone>,
    /// Block bytes handed to the disk pool and not yet written.
    write_backlog: usize,
    /// Reads and verifies handed to the disk pool and not back yet.
    disk_jobs: usize,
    deferred_total: usize,
    /// Pieces downloading into memory (see [`PieceBuf`]), and their bytes.
    cache: HashMap<u32, PieceBuf>,
    cache_bytes: usize,
    /// Buffers of written pieces, for the next pieces.
    spare: Vec<AlignedBuf>,
    /// Buffers of pieces evicted from the read cache, for the next reads.
    spare_reads: Vec<Vec<u8>>,
    /// Pieces downloading straight to disk (the cache was full when they started).
    on_disk: HashSet<u32>,
    /// Whole pieces recently read for uploads, oldest first, and their bytes.
    read_cache: VecDeque<(u32, Arc<Vec<u8>>)>,
    read_cache_bytes: usize,
    /// Requests waiting for a whole-piece read in flight.
    pending_reads: HashMap<u32, Vec<(PeerKey, BlockRequest)>>,
    status: TorrentStatus,
    status_tx: watch::Sender<TorrentStatus>,
    down_meter: RateMeter,
    up_meter: RateMeter,
    resume_dirty: bool,
    /// A piece completed in this run (the first one is published at once).
    first_piece_seen: bool,
    resume_saving: bool,
    last_resume: Instant,
    banned: u64,
    failure: Option<String>,
    /// `completed` was asked of the trackers and not yet acknowledged.
    completed_pending: bool,
}

/// What a torrent task starts from.
#[derive(Debug)]
pub(crate) enum Source {
    /// A torrent file.
    Torrent(AddTorrent),
    /// A magnet link: the metadata is fetched from peers first.
    Magnet(crate::AddMagnet),
}

/// The channels a torrent task is driven by and reports through.
#[derive(Debug)]
pub(crate) struct Channels {
    pub(crate) inbox_tx: mpsc::Sender<Inbox>,
    pub(crate) inbox_rx: mpsc::Receiver<Inbox>,
    pub(crate) cmd_rx: mpsc::Receiver<Command>,
    pub(crate) status_tx: watch::Sender<TorrentStatus>,
    pub(crate) torrent_tx: watch::Sender<Option<Arc<Torrent>>>,
}

/// Answer stop commands until the handle goes away (a torrent that failed to start).
async fn answer_stops(cmd_rx: &mut mpsc::Receiver<Command>) {
    while let Some(cmd) = cmd_rx.recv().await {
        if let Command::Stop(done) = cmd {
            let _ = done.send(());
            break;
        }
    }
}

/// Run one torrent until it is stopped. Reports through the status channel; unregisters itself at the
/// end.
pub(crate) async fn run(shared: Arc<Shared>, source: Source, info_hash: InfoHashV1, channels: Channels) {
    let name = match &source {
        Source::Torrent(add) => add.torrent.info.name.clone(),
        Source::Magnet(m) => m.magnet.display_name.clone().unwrap_or_default(),
    };
    let span = tracing::info_span!("torrent", info_hash = %info_hash, name = %name);
    async move {
        let Channels {
            inbox_tx,
            mut inbox_rx,
            mut cmd_rx,
            status_tx,
            torrent_tx,
        } = channels;
        let fail = |e: String| {
            tracing::error!("{e}");
            status_tx.send_modify(|s| s.phase = Phase::Failed(e));
            shared.torrents().remove(&info_hash);
        };
        let (add, peers, handover) = match source {
            Source::Torrent(add) => {
                let peers = Peers::new(
                    Arc::clone(&shared),
                    inbox_tx.clone(),
                    add.download_limit,
                    add.upload_limit,
                );
                (add, peers, None)
            }
            Source::Magnet(m) => {
                let mut peers = Peers::new(
                    Arc::clone(&shared),
                    inbox_tx.clone(),
                    m.download_limit,
                    m.upload_limit,
                );
                let fetched = crate::magnet::fetch(
                    &shared,
                    &m,
                    info_hash,
                    &mut peers,
                    &mut inbox_rx,
                    &mut cmd_rx,
                    &status_tx,
                )
                .await;
                match fetched {
                    crate::magnet::Fetched::Done {
                        torrent,
                        fetch,
                        announce,
                    } => {
                        torrent_tx.send_replace(Some(Arc::clone(&torrent)));
                        (m.into_add(torrent), peers, Some((fetch, announce)))
                    }
                    crate::magnet::Fetched::Stopped(done) => {
                        status_tx.send_modify(|s| s.phase = Phase::Stopped);
                        shared.torrents().remove(&info_hash);
                        if let Some(done) = done {
                            let _ = done.send(());
                        }
                        return;
                    }
                    crate::magnet::Fetched::Failed(e) => {
                        fail(e);
                        answer_stops(&mut cmd_rx).await;
                        return;
                    }
                }
            }
        };
        let result = start(&shared, &add, info_hash, &status_tx).await;
        let (store, have) = match result {
            Ok(x) => x,
            Err(e) => {
                fail(e.to_string());
                answer_stops(&mut cmd_rx).await;
                return;
            }
        };
        let failed = status_tx.clone();
        let (fetch, announce) = match handover {
            Some((fetch, announce)) => (Some(fetch), Some(announce)),
            None => (None, None),
        };
        let (mut task, disk_rx) = match Task::new(
            Arc::clone(&shared),
            add,
            info_hash,
            store,
            have,
            peers,
            status_tx,
            fetch,
        ) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{e}");
                failed.send_modify(|s| s.phase = Phase::Failed(e.to_string()));
                shared.torrents().remove(&info_hash);
                return;
            }
        };
        let announce = match announce {
            // The magnet's announces go on (same trackers, same swarm).
            Some(a) => a,
            None => task.start_announce().await,
        };
        task.main_loop(inbox_rx, disk_rx, cmd_rx, announce).await;
        shared.torrents().remove(&info_hash);
    }
    .instrument(span)
    .await;
}

/// Open the files and find out which pieces are already there.
async fn start(
    shared: &Arc<Shared>,
    add: &AddTorrent,
    info_hash: InfoHashV1,
    status_tx: &watch::Sender<TorrentStatus>,
) -> Result<(Arc<FileStore>, Vec<bool>), crate::ClientError> {
    let layout = Layout::from_torrent(&add.torrent)?;
    // A fresh download (no file of the torrent exists yet, or only empty ones) has nothing to check: the
    // store is about to create the files, and hashing sparse zeros would only waste a pass over them.
    let fresh =
        layout.files().iter().filter(|f| f.stored()).all(|f| {
            std::fs::symlink_metadata(add.dir.join(f.relative_path())).map_or(true, |m| m.len() == 0)
        });
    let dir = add.dir.clone();
    let options = FileStoreOptions {
        read_only: add.seed_only,
        direct_writes: shared.config.direct_writes,
        ..FileStoreOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || FileStore::open(layout, &dir, options))
        .await
        .map_err(|e| crate::ClientError::Failed(e.to_string()))??;
    let store = Arc::new(store);
    let progress = Arc::new(Progress::default());
    let threads = shared.config.disk_threads.max(1);
    let resume_dir = shared.config.resume_dir.clone();
    if fresh && !add.seed_only {
        tracing::debug!("a fresh download: nothing to check");
        let pieces = store.layout().piece_count() as usize;
        return Ok((store, vec![false; pieces]));
    }
    let check = {
        let store = Arc::clone(&store);
        let progress = Arc::clone(&progress);
        tokio::task::spawn_blocking(move || match resume_dir {
            Some(dir) => store
                .resume(&dir, &info_hash, threads, &progress)
                .map(|o| (o.have, o.checked_bytes)),
            None => {
                let have = store.check_existing(threads, &progress)?;
                Ok((have, progress.bytes.load(Ordering::Relaxed)))
            }
        })
    };
    tokio::pin!(check);
    let (have, checked) = loop {
        tokio::select! {
            r = &mut check => break r.map_err(|e| crate::ClientError::Failed(e.to_string()))??,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                let done = progress.bytes.load(Ordering::Relaxed);
                status_tx.send_modify(|s| s.checked_bytes = done);
            }
        }
    };
    status_tx.send_modify(|s| s.checked_bytes = checked);
    Ok((store, have))
}

fn bitfield_of(have: &[bool]) -> Bitfield {
    let count = u32::try_from(have.len()).unwrap_or(u32::MAX);
    let mut bf = Bitfield::new(count);
    for (i, h) in have.iter().enumerate() {
        if *h {
            if let Ok(i) = u32::try_from(i) {
                let _ = bf.set(PieceIndex(i), true);
            }
        }
    }
    bf
}

impl Task {
    /// The task of a torrent whose files are open and checked (`have`). With `fetch`, the connections of
    /// a magnet's metadata phase carry over: their sessions are adopted, and the peers it banned stay
    /// banned.
    #[allow(clippy::too_many_arguments)]
    fn new(
        shared: Arc<Shared>,
        add: AddTorrent,
        info_hash: InfoHashV1,
        store: Arc<FileStore>,
        have: Vec<bool>,
        peers: Peers,
        status_tx: watch::Sender<TorrentStatus>,
        fetch: Option<Box<MetadataFetch<StdRng>>>,
    ) -> Result<(Task, mpsc::UnboundedReceiver<DiskDone>), crate::ClientError> {
        let now = shared.now();
        let mut engine_config = shared.config.engine.clone();
        engine_config.listen_port = Some(shared.config.announce_port.unwrap_or(shared.listen_addr.port()));
        if add.sequential {
            engine_config.picker.mode = PickMode::Sequential;
        }
        let geometry = store.layout().geometry().clone();
        let mut state = TorrentState::new(
            engine_config,
            &geometry,
            info_hash,
            shared.peer_id,
            bitfield_of(&have),
            StdRng::from_os_rng(),
        )?
        .with_metadata(Arc::from(add.torrent.raw_info()))
        .with_private(add.torrent.info.private);
        if add.seed_only {
            let zeros = vec![0u8; store.layout().piece_count() as usize];
            state.set_piece_priorities(now, &zeros)?;
        } else if !add.only.is_empty() {
            let prios: Vec<u8> = store
                .layout()
                .files()
                .iter()
                .map(|f| {
                    let path = f.path.join("/");
                    u8::from(add.only.iter().any(|p| path.contains(p.as_str())))
                        .saturating_mul(engine::picker::DEFAULT_PRIORITY)
                })
                .collect();
            let selected = store
                .layout()
                .files()
                .iter()
                .zip(&prios)
                .any(|(f, p)| *p > 0 && f.stored());
            if !selected {
                return Err(crate::ClientError::NoFileSelected(add.only.join(", ")));
            }
            state.set_file_priorities(now, &prios)?;
        }
        // A Complete event now only says what the status already shows.
        while state.poll_event().is_some() {}
        let (disk_tx, disk_rx) = mpsc::unbounded_channel();
        let resumed = state.bytes_have();
        let mut status = status_tx.borrow().clone();
        status.phase = if state.is_complete() {
            Phase::Seeding
        } else {
            Phase::Downloading
        };
        status.resumed_bytes = resumed;
        status.pieces_total = store.layout().piece_count();
        let mut peers = peers;
        if let Some(fetch) = fetch {
            for id in fetch.banned_ids() {
                state.refuse_peer_id(id);
            }
            for handed in fetch.into_peers() {
                let key = handed.key;
                if let Err(e) = state.adopt_peer(now, handed) {
                    tracing::debug!(key = key.0, "cannot carry the connection over: {e}");
                    peers.close(key);
                }
            }
        }
        // Peers banned in a magnet's metadata phase count too.
        let banned = status.banned;
        let mut task = Task {
            shared,
            info_hash,
            torrent: add.torrent,
            store,
            state,
            seed_only: add.seed_only,
            peers,
            disk_tx,
            write_backlog: 0,
            disk_jobs: 0,
            deferred_total: 0,
            cache: HashMap::new(),
            cache_bytes: 0,
            spare: Vec::new(),
            spare_reads: Vec::new(),
            on_disk: HashSet::new(),
            read_cache: VecDeque::new(),
            read_cache_bytes: 0,
            pending_reads: HashMap::new(),
            status,
            status_tx,
            down_meter: RateMeter::default(),
            up_meter: RateMeter::default(),
            resume_dirty: false,
            first_piece_seen: false,
            resume_saving: false,
            last_resume: Instant::now(),
            banned,
            failure: None,
            completed_pending: false,
        };
        task.peers.add_known(add.peers);
        Ok((task, disk_rx))
    }
}

/// Start announcing `info_hash` to `tiers` (unless trackers are off or there are none): `progress`, then
/// `started`.
pub(crate) async fn start_announce(
    shared: &Shared,
    info_hash: InfoHashV1,
    tiers: Vec<Vec<String>>,
    progress: AnnounceCommand,
) -> Option<AnnounceHandle> {
    let config = &shared.config;
    if !config.use_trackers || tiers.iter().all(Vec::is_empty) {
        return None;
    }
    let port = config.announce_port.unwrap_or(shared.listen_addr.port());
    let params = AnnounceParams::new(info_hash, shared.peer_id, port);
    let client = AnnounceClient::new(tiers, params, net::announce::os_rng());
    // Tracker requests go out from the listen address when it is a specific one, so trackers record an
    // address peers can reach (inside a network namespace, say).
    let mut driver = DriverConfig::default();
    let ip = shared.listen_addr.ip();
    if !ip.is_unspecified() {
        driver.http_local_address = Some(ip);
        match ip {
            std::net::IpAddr::V4(_) => {
                driver.udp_v4 = Some(SocketAddr::new(ip, 0));
                driver.udp_v6 = None;
            }
            std::net::IpAddr::V6(_) => {
                driver.udp_v6 = Some(SocketAddr::new(ip, 0));
                driver.udp_v4 = None;
            }
        }
    }
    let handle = net::announce::spawn(client, driver);
    let _ = handle.command(progress).await;
    let _ = handle.command(AnnounceCommand::Event(Event::Started)).await;
    Some(handle)
}

/// The next event of the announce driver, or never if there is none.
async fn next_announce(announce: &mut Option<AnnounceHandle>) -> Option<ClientEvent> {
    match announce.as_mut() {
        Some(a) => a.events().recv().await,
        None => std::future::pending().await,
    }
}

/// Piece buffers kept for reuse once their piece is written.
const MAX_SPARE_BUFFERS: usize = 4;

/// Pieces up to this size are read whole for uploads (and kept a while in the read cache).
const MAX_PIECE_READ: u64 = 4 << 20;

/// A `piece` message buffer for `req` cut from a whole piece: header room, then the block.
fn frame(piece: &[u8], req: BlockRequest) -> Option<Vec<u8>> {
    let at = req.begin as usize;
    let block = piece.get(at..at.checked_add(req.length as usize)?)?;
    let mut m = Vec::with_capacity(wire::PIECE_HEADER_LEN + block.len());
    m.resize(wire::PIECE_HEADER_LEN, 0);
    m.extend_from_slice(block);
    Some(m)
}

impl Task {
    async fn main_loop(
        &mut self,
        mut inbox: mpsc::Receiver<Inbox>,
        mut disk_rx: mpsc::UnboundedReceiver<DiskDone>,
        mut cmds: mpsc::Receiver<Command>,
        announce: Option<AnnounceHandle>,
    ) {
        let mut announce = announce;
        // What adopting a magnet's connections produced, if anything.
        self.drain();
        self.publish();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let drained = Arc::clone(&self.peers.drained);
        self.peers.connect_more();
        loop {
            let deadline = self.state.poll_timeout().map(|t| self.shared.instant(t));
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let reading = self.write_backlog < self.shared.config.max_write_backlog;
            let mut progress = None;
            tokio::select! {
                biased;
                Some(done) = disk_rx.recv() => self.on_disk(done),
                cmd = cmds.recv() => match cmd {
                    Some(Command::AddPeers(peers)) => {
                        self.peers.add_known(peers);
                        self.peers.connect_more();
                    }
                    Some(Command::Stop(done)) => {
                        self.stop(announce.take(), &mut disk_rx).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.stop(announce.take(), &mut disk_rx).await;
                        return;
                    }
                },
                Some(msg) = inbox.recv(), if reading => self.on_inbox(msg),
                ev = next_announce(&mut announce) => match ev {
                    Some(ev) => self.on_announce(ev),
                    None => announce = None,
                },
                () = timer => {
                    let now = self.shared.now();
                    self.state.handle_timeout(now);
                }
                () = drained.notified(), if self.deferred_total > 0 => self.serve_deferred(),
                _ = tick.tick() => progress = Some(self.on_tick()),
            }
            let completed = self.drain();
            if let Some(a) = announce.as_ref() {
                if let Some(p) = progress {
                    let _ = a.command(p).await;
                }
                if completed {
                    let _ = a.command(self.progress()).await;
                    let _ = a.command(AnnounceCommand::Event(Event::Completed)).await;
                    self.completed_pending = true;
                }
            }
        }
    }

    async fn start_announce(&mut self) -> Option<AnnounceHandle> {
        let tiers = self.torrent.trackers.clone();
        start_announce(&self.shared, self.info_hash, tiers, self.progress()).await
    }

    fn progress(&self) -> AnnounceCommand {
        let stats = self.state.stats();
        AnnounceCommand::Progress {
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
            left: self.state.bytes_left(),
        }
    }

    fn on_inbox(&mut self, msg: Inbox) {
        let now = self.shared.now();
        match msg {
            Inbox::Data { key, data } => self.state.handle_peer_bytes(now, key, &data),
            Inbox::Gone { key } => {
                if self.close_conn(key) {
                    self.state.peer_disconnected(now, key);
                }
            }
            Inbox::Incoming {
                stream,
                addr,
                prefix,
                permit,
            } => {
                if self.peers.full() {
                    tracing::debug!(%addr, "incoming connection refused: torrent peer limit");
                    return;
                }
                self.attach(stream, addr, permit, false, Some(prefix));
            }
            Inbox::Connected { stream, addr, permit } => {
                self.peers.on_connected(addr);
                self.attach(stream, addr, permit, true, None);
            }
            Inbox::ConnectFailed { addr } => self.peers.on_connect_failed(addr),
        }
    }

    fn attach(
        &mut self,
        stream: TcpStream,
        addr: SocketAddr,
        permit: OwnedSemaphorePermit,
        outgoing: bool,
        prefix: Option<Vec<u8>>,
    ) {
        let now = self.shared.now();
        let key = crate::next_key(&self.shared);
        if let Err(e) = self.state.add_peer_addr(now, key, outgoing, addr) {
            tracing::warn!(%addr, "cannot add peer: {e}");
            self.peers.release(&addr);
            return;
        }
        self.peers.open(key, stream, addr, permit);
        tracing::debug!(%addr, key = key.0, outgoing, "peer connected");
        if let Some(prefix) = prefix {
            self.state.handle_peer_bytes(now, key, &prefix);
        }
    }

    /// Forget a connection: its writer flushes what is queued and closes, its reader stops. False if it
    /// was already gone.
    fn close_conn(&mut self, key: PeerKey) -> bool {
        let Some(c) = self.peers.close(key) else {
            return false;
        };
        self.deferred_total = self.deferred_total.saturating_sub(c.deferred.len());
        true
    }

    /// Carry out everything the state machine asked for. True if the torrent just completed.
    fn drain(&mut self) -> bool {
        let mut completed = false;
        loop {
            let mut moved = false;
            while let Some((key, t)) = self.state.poll_transmit() {
                moved = true;
                let Some(c) = self.peers.conns.get(&key) else {
                    continue;
                };
                let out = match t {
                    Transmit::Bytes(b) => Outgoing::Bytes(b),
                    Transmit::Block { message, .. } => {
                        c.queued.fetch_add(message.len(), Ordering::AcqRel);
                        Outgoing::Block(message)
                    }
                    Transmit::PieceHeader { .. } => continue,
                };
                let _ = c.tx.send(out);
            }
            while let Some(op) = self.state.poll_disk() {
                moved = true;
                self.disk(op);
            }
            while let Some(ev) = self.state.poll_event() {
                moved = true;
                completed |= self.on_event(ev);
            }
            if !moved {
                return completed;
            }
        }
    }

    fn disk(&mut self, op: DiskOp) {
        let store = Arc::clone(&self.store);
        let done = self.disk_tx.clone();
        match op {
            DiskOp::Write { req, data } => {
                let piece = req.index.0;
                if !self.on_disk.contains(&piece) && self.cache_block(req, &data) {
                    // In memory: "written" as far as the engine is concerned.
                    self.state.on_block_written(req);
                    return;
                }
                self.on_disk.insert(piece);
                self.write_backlog = self.write_backlog.saturating_add(data.len());
                self.submit_write(req, data);
            }
            DiskOp::Verify(piece) => {
                self.disk_jobs = self.disk_jobs.saturating_add(1);
                let want_digests = self.state.wants_block_digests(piece);
                if let Some(buf) = self.cache.remove(&piece.0) {
                    self.cache_bytes = self.cache_bytes.saturating_sub(buf.data.len());
                    self.write_backlog = self.write_backlog.saturating_add(buf.data.len());
                    self.submit_cached_verify(piece, buf.data, want_digests);
                    return;
                }
                self.on_disk.remove(&piece.0);
                self.shared.disk.submit(move || {
                    let result = store.verify_piece(piece.0);
                    // Smart-ban needs the blocks of a failed copy (and of the good copy that follows),
                    // read in this same job so no new write can land in between.
                    let digests = match result {
                        Ok(ok) if !ok || want_digests => store.block_digests(piece.0).ok(),
                        _ => None,
                    };
                    let _ = done.send(DiskDone::Verified {
                        piece,
                        result,
                        digests,
                    });
                });
            }
            DiskOp::Read { peer, req } => {
                let Some(c) = self.peers.conns.get_mut(&peer) else {
                    return;
                };
                if c.queued.load(Ordering::Acquire) >= self.shared.config.max_upload_queue {
                    c.deferred.push_back(req);
                    self.deferred_total = self.deferred_total.saturating_add(1);
                } else {
                    self.issue_read(peer, req);
                }
            }
        }
    }

    /// Put a downloaded block into its piece's memory buffer; false if the piece is not cached and there
    /// is no room to start caching it.
    fn cache_block(&mut self, req: BlockRequest, data: &[u8]) -> bool {
        let piece = req.index.0;
        if !self.cache.contains_key(&piece) {
            let Some(len) = self.store.layout().piece_len(piece) else {
                return false;
            };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if self.cache_bytes.saturating_add(len) > self.shared.config.piece_cache {
                return false;
            }
            self.cache_bytes = self.cache_bytes.saturating_add(len);
            // A spare buffer of the right size is reused as it is: every byte of it is overwritten
            // before the piece is verified (all its blocks must arrive first).
            let data = match self.spare.iter().position(|b| b.len() == len) {
                Some(i) => self.spare.swap_remove(i),
                None => AlignedBuf::zeroed(len),
            };
            self.cache.insert(piece, PieceBuf { data });
        }
        let Some(buf) = self.cache.get_mut(&piece) else {
            return false;
        };
        let at = req.begin as usize;
        match buf.data.get_mut(at..at.saturating_add(data.len())) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Verify a piece held in memory on the disk pool, then (when good) write it on the writer thread;
    /// digests for smart-ban.
    fn submit_cached_verify(&mut self, piece: PieceIndex, data: AlignedBuf, want_digests: bool) {
        let store = Arc::clone(&self.store);
        let done = self.disk_tx.clone();
        let writer = self.shared.disk.writer();
        self.shared.disk.submit(move || {
            let ok = storage::verify_piece_data(store.layout(), piece.0, &data).unwrap_or(false);
            let digests = (!ok || want_digests).then(|| {
                use sha1::{Digest, Sha1};
                data.chunks(wire::BLOCK_LEN as usize)
                    .map(|b| Sha1::digest(b).into())
                    .collect()
            });
            if ok {
                write_piece(&writer, store, done, piece, digests, data);
            } else {
                let _ = done.send(DiskDone::CachedVerified {
                    piece,
                    ok,
                    digests,
                    write: Ok(()),
                    buf: data,
                });
            }
        });
    }

    fn submit_write(&mut self, req: BlockRequest, data: Vec<u8>) {
        let store = Arc::clone(&self.store);
        let done = self.disk_tx.clone();
        self.shared.disk.writer().submit(move || {
            let result = store.write_block(req.index.0, req.begin, &data);
            let _ = done.send(DiskDone::Written { req, data, result });
        });
    }

    fn issue_read(&mut self, peer: PeerKey, req: BlockRequest) {
        let piece = req.index.0;
        let now = self.shared.now();
        // A piece read recently: served from memory.
        if let Some(buf) = self
            .read_cache
            .iter()
            .find(|(p, _)| *p == piece)
            .map(|(_, b)| Arc::clone(b))
        {
            if let Some(message) = frame(&buf, req) {
                self.state.on_block_read_framed(now, peer, req, message);
            }
            return;
        }
        let Some(c) = self.peers.conns.get(&peer) else {
            return;
        };
        let len = (req.length as usize).saturating_add(wire::PIECE_HEADER_LEN);
        c.queued.fetch_add(len, Ordering::AcqRel);
        if let Some(waiting) = self.pending_reads.get_mut(&piece) {
            waiting.push((peer, req));
            return;
        }
        let piece_len = self.store.layout().piece_len(piece).unwrap_or(0);
        let store = Arc::clone(&self.store);
        let done = self.disk_tx.clone();
        self.disk_jobs = self.disk_jobs.saturating_add(1);
        if piece_len > 0 && piece_len <= MAX_PIECE_READ && self.shared.config.read_cache > 0 {
            self.pending_reads.insert(piece, vec![(peer, req)]);
            let len = piece_len as usize;
            // A buffer of an evicted piece is reused as it is (the read overwrites all of it).
            let buf = match self.spare_reads.iter().position(|b| b.len() == len) {
                Some(i) => Some(self.spare_reads.swap_remove(i)),
                None => None,
            };
            self.shared.disk.submit(move || {
                let mut buf = buf.unwrap_or_else(|| vec![0u8; len]);
                let result = store.read_block(piece, 0, &mut buf).map(|()| buf);
                let _ = done.send(DiskDone::PieceRead { piece, result });
            });
        } else {
            self.shared.disk.submit(move || {
                let mut buf = vec![0u8; wire::PIECE_HEADER_LEN.saturating_add(req.length as usize)];
                let result = store
                    .read_block(
                        piece,
                        req.begin,
                        buf.get_mut(wire::PIECE_HEADER_LEN..).unwrap_or_default(),
                    )
                    .map(|()| buf);
                let _ = done.send(DiskDone::Read { peer, req, result });
            });
        }
    }

    /// A whole piece arrived from disk: keep it for a while and answer the requests waiting for it.
    fn on_piece_read(&mut self, piece: u32, result: Result<Vec<u8>, StorageError>) {
        let now = self.shared.now();
        let waiting = self.pending_reads.remove(&piece).unwrap_or_default();
        let data = match result {
            Ok(d) => Arc::new(d),
            Err(e) => {
                tracing::warn!("cannot read piece {piece} for peers: {e}");
                for (peer, req) in waiting {
                    self.unqueue(peer, req);
                }
                return;
            }
        };
        for (peer, req) in waiting {
            self.unqueue(peer, req);
            if let Some(message) = frame(&data, req) {
                self.state.on_block_read_framed(now, peer, req, message);
            }
        }
        self.read_cache_bytes = self.read_cache_bytes.saturating_add(data.len());
        self.read_cache.push_back((piece, data));
        while self.read_cache_bytes > self.shared.config.read_cache {
            let Some((_, old)) = self.read_cache.pop_front() else {
                break;
            };
            self.read_cache_bytes = self.read_cache_bytes.saturating_sub(old.len());
            if self.spare_reads.len() < MAX_SPARE_BUFFERS {
                if let Ok(buf) = Arc::try_unwrap(old) {
                    self.spare_reads.push(buf);
                }
            }
        }
    }

    /// A read for `req` is no longer in flight for `peer`.
    fn unqueue(&self, peer: PeerKey, req: BlockRequest) {
        if let Some(c) = self.peers.conns.get(&peer) {
            let len = (req.length as usize).saturating_add(wire::PIECE_HEADER_LEN);
            let _ = c.queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(len))
            });
        }
    }

    fn serve_deferred(&mut self) {
        let cap = self.shared.config.max_upload_queue;
        let keys: Vec<PeerKey> = self
            .peers
            .conns
            .iter()
            .filter(|(_, c)| !c.deferred.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            while let Some(req) = self
                .peers
                .conns
                .get_mut(&key)
                .filter(|c| c.queued.load(Ordering::Acquire) < cap)
                .and_then(|c| c.deferred.pop_front())
            {
                self.deferred_total = self.deferred_total.saturating_sub(1);
                self.issue_read(key, req);
            }
        }
    }

    fn on_disk(&mut self, done: DiskDone) {
        let now = self.shared.now();
        match done {
            DiskDone::Written { req, data, result } => match result {
                Ok(()) => {
                    self.write_backlog = self.write_backlog.saturating_sub(data.len());
                    if self.failure.take().is_some() {
                        tracing::info!("writing works again; the download goes on");
                    }
                    self.state.on_block_written(req);
                }
                Err(e) => {
                    // Keep the block and try again: a full disk that gets space back lets the download
                    // go on. Until then the backlog stays high, so no more data is read from peers.
                    self.disk_failed(format!("cannot write: {e}"));
                    let store = Arc::clone(&self.store);
                    let tx = self.disk_tx.clone();
                    let pool = Arc::clone(&self.shared);
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        pool.disk.submit(move || {
                            let result = store.write_block(req.index.0, req.begin, &data);
                            let _ = tx.send(DiskDone::Written { req, data, result });
                        });
                    });
                }
            },
            DiskDone::Verified {
                piece,
                result,
                digests,
            } => {
                self.disk_jobs = self.disk_jobs.saturating_sub(1);
                let ok = result.unwrap_or_else(|e| {
                    tracing::warn!("cannot verify piece {}: {e}", piece.0);
                    false
                });
                self.state
                    .on_piece_verified_with_digests(now, piece, ok, digests.as_deref());
            }
            DiskDone::Read { peer, req, result } => {
                self.disk_jobs = self.disk_jobs.saturating_sub(1);
                self.unqueue(peer, req);
                match result {
                    Ok(message) => self.state.on_block_read_framed(now, peer, req, message),
                    Err(e) => tracing::warn!("cannot read piece {} for a peer: {e}", req.index.0),
                }
            }
            DiskDone::PieceRead { piece, result } => {
                self.disk_jobs = self.disk_jobs.saturating_sub(1);
                self.on_piece_read(piece, result);
            }
            DiskDone::CachedVerified {
                piece,
                ok,
                digests,
                write,
                buf,
            } => match write {
                Ok(()) => {
                    self.disk_jobs = self.disk_jobs.saturating_sub(1);
                    self.write_backlog = self.write_backlog.saturating_sub(buf.len());
                    if self.failure.take().is_some() {
                        tracing::info!("writing works again; the download goes on");
                    }
                    if self.spare.len() < MAX_SPARE_BUFFERS {
                        self.spare.push(buf);
                    }
                    self.state
                        .on_piece_verified_with_digests(now, piece, ok, digests.as_deref());
                }
                Err(e) => {
                    // The piece is good but could not be written: keep it and try again (a full disk
                    // that gets space back lets the download go on; nothing more is read meanwhile).
                    self.disk_failed(format!("cannot write: {e}"));
                    let writer = self.shared.disk.writer();
                    let store = Arc::clone(&self.store);
                    let tx = self.disk_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        write_piece(&writer, store, tx, piece, digests, buf);
                    });
                }
            },
            DiskDone::ResumeSaved(result) => {
                self.resume_saving = false;
                if let Err(e) = result {
                    tracing::warn!("cannot save resume data: {e}");
                }
            }
        }
    }

    /// A write failed: say so (once per distinct message) and stop reading from peers until a retry works.
    fn disk_failed(&mut self, msg: String) {
        if self.failure.as_deref() != Some(msg.as_str()) {
            tracing::error!("{msg}; retrying every 5 s");
        }
        self.failure = Some(msg);
        self.write_backlog = self.write_backlog.max(self.shared.config.max_write_backlog);
        self.publish();
    }

    /// Handle one engine event; true when it is the torrent's completion.
    fn on_event(&mut self, ev: TorrentEvent) -> bool {
        match ev {
            TorrentEvent::PieceCompleted(_) => {
                self.resume_dirty = true;
                // The first piece of this run is published at once (watchers time it: first byte).
                if !self.first_piece_seen {
                    self.first_piece_seen = true;
                    self.publish();
                }
                false
            }
            TorrentEvent::PieceFailed(p) => {
                tracing::info!("piece {} failed verification; it will be downloaded again", p.0);
                false
            }
            TorrentEvent::Complete => {
                tracing::info!("download complete");
                self.status.phase = Phase::Seeding;
                self.resume_dirty = true;
                self.save_resume();
                self.publish();
                !self.seed_only
            }
            TorrentEvent::PeerClosed { key, reason } => {
                if let Some(c) = self.peers.conns.get(&key) {
                    tracing::debug!(addr = %c.addr, "peer closed: {reason}");
                    // Ourselves, or a seed while we want nothing more: not worth dialling again.
                    let useless = matches!(reason, engine::session::SessionError::ConnectedToSelf)
                        || matches!(reason, engine::session::SessionError::ClosedLocally)
                            && self.state.is_complete();
                    if useless {
                        let addr = c.addr;
                        self.peers.forget(&addr);
                    }
                }
                self.close_conn(key);
                false
            }
            TorrentEvent::DhtNode(addr) => {
                if let Some(dht) = self.shared.dht.clone() {
                    tokio::spawn(async move { dht.add_node(addr).await });
                }
                false
            }
            TorrentEvent::PexPeers(list) => {
                tracing::debug!("{} peers from peer exchange", list.len());
                self.peers.add_known(list.into_iter().map(|(a, _)| a));
                self.peers.connect_more();
                false
            }
            TorrentEvent::Banned { key } => {
                self.banned = self.banned.saturating_add(1);
                if let Some(c) = self.peers.conns.get(&key) {
                    tracing::warn!(addr = %c.addr, "peer banned: it sent data that failed verification");
                    let addr = c.addr;
                    self.peers.forget(&addr);
                }
                false
            }
        }
    }

    fn on_announce(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Announced {
                event: Event::Completed,
                ..
            } => self.completed_pending = false,
            ClientEvent::Peers { peers, .. } => {
                tracing::debug!("{} peers from a tracker", peers.len());
                self.peers.add_known(peers);
                self.peers.connect_more();
            }
            ClientEvent::TrackerError { url, error, .. } => {
                tracing::warn!("tracker {url}: {error}");
            }
            ClientEvent::Warning { message, .. } => tracing::warn!("tracker: {message}"),
            _ => {}
        }
    }

    /// Once a second: status, reconnects, resume data. Returns the progress for the trackers.
    fn on_tick(&mut self) -> AnnounceCommand {
        self.peers.connect_more();
        if self.deferred_total > 0 {
            self.serve_deferred();
        }
        if self.resume_dirty && self.last_resume.elapsed() >= self.shared.config.resume_interval {
            self.save_resume();
        }
        self.publish();
        self.progress()
    }

    fn publish(&mut self) {
        let now = Instant::now();
        let stats = self.state.stats();
        let s = &mut self.status;
        s.pieces_have = self.state.have().count();
        s.bytes_have = self.state.bytes_have();
        s.bytes_left = self.state.bytes_left();
        s.downloaded = stats.downloaded;
        s.uploaded = stats.uploaded;
        s.failed_pieces = stats.failed_pieces;
        s.download_rate = self.down_meter.sample(now, stats.downloaded);
        s.upload_rate = self.up_meter.sample(now, stats.uploaded);
        s.peers = self.peers.conns.len();
        s.known_peers = self.peers.known_count();
        s.banned = self.banned;
        s.error = self.failure.clone();
        let snapshot = s.clone();
        self.status_tx.send_replace(snapshot);
    }

    /// Save resume data on the disk pool (after flushing what was written), if a folder is configured.
    fn save_resume(&mut self) {
        let Some(dir) = self.shared.config.resume_dir.clone() else {
            return;
        };
        if self.resume_saving || self.seed_only {
            return;
        }
        self.resume_saving = true;
        self.resume_dirty = false;
        self.last_resume = Instant::now();
        let store = Arc::clone(&self.store);
        let have = self.have_flags();
        let info_hash = self.info_hash;
        let done = self.disk_tx.clone();
        self.shared.disk.submit(move || {
            let result = save_resume(&store, &dir, info_hash, &have);
            let _ = done.send(DiskDone::ResumeSaved(result));
        });
    }

    fn have_flags(&self) -> Vec<bool> {
        let have = self.state.have();
        (0..have.len()).map(|i| have.get(PieceIndex(i))).collect()
    }

    /// Leave: `stopped` to the trackers, connections closed, writes finished, resume data saved.
    async fn stop(
        &mut self,
        announce: Option<AnnounceHandle>,
        disk_rx: &mut mpsc::UnboundedReceiver<DiskDone>,
    ) {
        let keys: Vec<PeerKey> = self.peers.conns.keys().copied().collect();
        for key in keys {
            self.close_conn(key);
        }
        let last_progress = self.progress();
        let completed_pending = self.completed_pending;
        let announce_done = async {
            if let Some(mut a) = announce {
                // A `completed` just asked for is worth a short wait: trackers count it, and `stopped`
                // would abandon it in flight.
                if completed_pending {
                    let wait = async {
                        while let Some(ev) = a.events().recv().await {
                            match ev {
                                ClientEvent::Announced {
                                    event: Event::Completed,
                                    ..
                                }
                                | ClientEvent::TrackerError { .. } => return,
                                _ => {}
                            }
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(3), wait).await;
                }
                let _ = a.command(last_progress).await;
                if let Err(e) = a.shutdown().await {
                    tracing::warn!("announce driver: {e}");
                }
            }
        };
        // Let the writes and verifies in flight land (bounded), so the resume data counts them.
        let settle = async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while (self.write_backlog > 0 && self.failure.is_none()
                || self.disk_jobs > 0
                || self.resume_saving)
                && Instant::now() < deadline
            {
                match tokio::time::timeout(Duration::from_millis(200), disk_rx.recv()).await {
                    Ok(Some(done)) => {
                        self.on_disk(done);
                        self.drain();
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
        };
        let ((), ()) = tokio::join!(announce_done, settle);
        if let Some(dir) = self.shared.config.resume_dir.clone() {
            if !self.seed_only {
                let store = Arc::clone(&self.store);
                let have = self.have_flags();
                let info_hash = self.info_hash;
                let result =
                    tokio::task::spawn_blocking(move || save_resume(&store, &dir, info_hash, &have)).await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("cannot save resume data: {e}"),
                    Err(e) => tracing::warn!("cannot save resume data: {e}"),
                }
            }
        }
        self.status.phase = Phase::Stopped;
        self.publish();
    }
}

fn save_resume(
    store: &FileStore,
    dir: &std::path::Path,
    info_hash: InfoHashV1,
    have: &[bool],
) -> Result<(), StorageError> {
    store.flush()?;
    ResumeData::capture(store, info_hash, have)?.save(dir)?;
    Ok(())
}

/// Write a verified piece on the writer thread and report it.
fn write_piece(
    writer: &crate::disk::Writer,
    store: Arc<FileStore>,
    done: mpsc::UnboundedSender<DiskDone>,
    piece: PieceIndex,
    digests: Option<Vec<[u8; 20]>>,
    buf: AlignedBuf,
) {
    writer.submit(move || {
        let write = store.write_block(piece.0, 0, &buf);
        let _ = done.send(DiskDone::CachedVerified {
            piece,
            ok: true,
            digests,
            write,
            buf,
        });
    });
}
