//! The metadata phase of a magnet link: connect to the link's peers (its trackers, `x.pe`, the caller's,
//! incoming connections, PEX), run an [`engine::metadata::MetadataFetch`] over those connections until the
//! info dictionary is verified, and hand the connections and the announce driver on to the torrent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use engine::metadata::{MetadataEvent, MetadataFetch};
use engine::session::Transmit;
use metainfo::{InfoHashV1, Torrent};
use net::announce::{AnnounceHandle, Command as AnnounceCommand};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, oneshot, watch};
use tracker_proto::client::ClientEvent;

use crate::peers::Peers;
use crate::torrent::{start_announce, Inbox};
use crate::{AddMagnet, Command, Phase, Shared, TorrentStatus};

/// What `left` we tell trackers while we have no metadata. libtorrent says 16 KiB: a tracker may take
/// `left=0` for a seed and then list no seeds for us.
const LEFT_WITHOUT_METADATA: u64 = 16 * 1024;

/// How long resolving the link's `x.pe` host names may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the metadata phase ended.
pub(crate) enum Fetched {
    /// The metadata is here and verified.
    Done {
        /// The torrent built from it (with the link's trackers and web seeds).
        torrent: Arc<Torrent>,
        /// The fetch, whose sessions the torrent adopts.
        fetch: Box<MetadataFetch<StdRng>>,
        /// The announce driver, which goes on for the torrent.
        announce: Option<AnnounceHandle>,
    },
    /// Stopped by a command (answer it once the torrent is unregistered).
    Stopped(Option<oneshot::Sender<()>>),
    /// The metadata cannot become a torrent (such as a v2-only one, which needs piece layers).
    Failed(String),
}

/// The link's `x.pe` peers as socket addresses (host names resolved, bounded in time).
async fn resolve_peers(peers: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for p in peers {
        if let Ok(a) = p.parse::<SocketAddr>() {
            out.push(a);
            continue;
        }
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(p.as_str())).await {
            Ok(Ok(addrs)) => out.extend(addrs.take(4)),
            Ok(Err(e)) => tracing::warn!("x.pe {p}: {e}"),
            Err(_) => tracing::warn!("x.pe {p}: not resolved in {RESOLVE_TIMEOUT:?}"),
        }
    }
    out
}

/// Fetch the metadata of `add.magnet`: returns when it is verified, when a command stops the torrent, or
/// when the metadata turns out unusable.
pub(crate) async fn fetch(
    shared: &Arc<Shared>,
    add: &AddMagnet,
    info_hash: InfoHashV1,
    peers: &mut Peers,
    inbox: &mut mpsc::Receiver<Inbox>,
    cmds: &mut mpsc::Receiver<Command>,
    status_tx: &watch::Sender<TorrentStatus>,
) -> Fetched {
    let mut engine_config = shared.config.engine.clone();
    engine_config.listen_port = Some(shared.config.announce_port.unwrap_or(shared.listen_addr.port()));
    let mut fetch = match MetadataFetch::new(
        engine_config,
        add.magnet.info_hashes(),
        shared.peer_id,
        StdRng::from_os_rng(),
    ) {
        Ok(f) => f,
        Err(e) => return Fetched::Failed(e.to_string()),
    };
    let mut phase = MetaPhase {
        shared: Arc::clone(shared),
        fetch: &mut fetch,
        peers,
        status_tx,
        done: None,
        banned: 0,
    };
    phase.peers.add_known(add.peers.iter().copied());
    phase.peers.add_known(resolve_peers(&add.magnet.peers).await);
    // Each of the link's trackers in a tier of its own (the order of the link), as in the torrent built
    // from it.
    let tiers: Vec<Vec<String>> = add.magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
    let mut announce = start_announce(shared, info_hash, tiers, progress()).await;
    tracing::info!(
        "fetching the metadata from peers ({} trackers, {} peers given)",
        add.magnet.trackers.len(),
        phase.peers.known_count()
    );
    phase.publish();
    phase.peers.connect_more();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = phase.fetch.poll_timeout().map(|t| shared.instant(t));
        let timer = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut ticked = false;
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Command::AddPeers(list)) => {
                    phase.peers.add_known(list);
                    phase.peers.connect_more();
                }
                Some(Command::Stop(done)) => {
                    phase.stop(announce).await;
                    return Fetched::Stopped(Some(done));
                }
                None => {
                    phase.stop(announce).await;
                    return Fetched::Stopped(None);
                }
            },
            Some(msg) = inbox.recv() => phase.on_inbox(msg),
            ev = next_announce(&mut announce) => match ev {
                Some(ClientEvent::Peers { peers: list, .. }) => {
                    tracing::debug!("{} peers from a tracker", list.len());
                    phase.peers.add_known(list);
                    phase.peers.connect_more();
                }
                Some(ClientEvent::TrackerError { url, error, .. }) => tracing::warn!("tracker {url}: {error}"),
                Some(ClientEvent::Warning { message, .. }) => tracing::warn!("tracker: {message}"),
                Some(_) => {}
                None => announce = None,
            },
            () = timer => phase.fetch.handle_timeout(shared.now()),
            _ = tick.tick() => ticked = true,
        }
        phase.drain();
        if ticked {
            phase.peers.connect_more();
            phase.publish();
            if let Some(a) = announce.as_ref() {
                let _ = a.command(progress()).await;
            }
        }
        if let Some(raw) = phase.done.take() {
            let torrent = match Torrent::from_info(&raw, &add.magnet.trackers, &add.magnet.web_seeds) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    phase.stop(announce).await;
                    return Fetched::Failed(format!("the metadata from peers is unusable: {e}"));
                }
            };
            tracing::info!(
                name = %torrent.info.name,
                bytes = raw.len(),
                "metadata fetched and verified"
            );
            let pieces = wire::metadata_piece_count(u32::try_from(raw.len()).unwrap_or(u32::MAX));
            let total = torrent.info.total_size();
            status_tx.send_modify(|s| {
                s.phase = crate::Phase::Checking;
                s.total_bytes = total;
                s.metadata_pieces = (pieces, pieces);
            });
            drop(phase);
            return Fetched::Done {
                torrent,
                fetch: Box::new(fetch),
                announce,
            };
        }
    }
}

/// What the trackers hear while the metadata is fetched.
fn progress() -> AnnounceCommand {
    AnnounceCommand::Progress {
        uploaded: 0,
        downloaded: 0,
        left: LEFT_WITHOUT_METADATA,
    }
}

/// The next event of the announce driver, or never if there is none.
async fn next_announce(announce: &mut Option<AnnounceHandle>) -> Option<ClientEvent> {
    match announce.as_mut() {
        Some(a) => a.events().recv().await,
        None => std::future::pending().await,
    }
}

/// The state of the metadata phase.
struct MetaPhase<'a> {
    shared: Arc<Shared>,
    fetch: &'a mut MetadataFetch<StdRng>,
    peers: &'a mut Peers,
    status_tx: &'a watch::Sender<TorrentStatus>,
    /// The verified metadata, once here.
    done: Option<Arc<[u8]>>,
    /// Peers banned for lying about the metadata.
    banned: u64,
}

impl MetaPhase<'_> {
    fn on_inbox(&mut self, msg: Inbox) {
        let now = self.shared.now();
        match msg {
            Inbox::Data { key, data } => self.fetch.handle_peer_bytes(now, key, &data),
            Inbox::Gone { key } => {
                if self.peers.close(key).is_some() {
                    self.fetch.peer_disconnected(now, key);
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
                let key = crate::next_key(&self.shared);
                if self.fetch.add_peer(now, key, false, Some(addr)).is_ok() {
                    self.peers.open(key, stream, addr, permit);
                    self.fetch.handle_peer_bytes(now, key, &prefix);
                }
            }
            Inbox::Connected { stream, addr, permit } => {
                self.peers.on_connected(addr);
                let key = crate::next_key(&self.shared);
                if self.fetch.add_peer(now, key, true, Some(addr)).is_ok() {
                    self.peers.open(key, stream, addr, permit);
                } else {
                    self.peers.release(&addr);
                }
            }
            Inbox::ConnectFailed { addr } => self.peers.on_connect_failed(addr),
        }
    }

    /// Carry out what the fetch asked for.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some((key, t)) = self.fetch.poll_transmit() {
                moved = true;
                if let Transmit::Bytes(b) = t {
                    self.peers.send(key, b);
                }
            }
            while let Some(ev) = self.fetch.poll_event() {
                moved = true;
                match ev {
                    MetadataEvent::Complete(raw) => self.done = Some(raw),
                    MetadataEvent::PeerClosed { key, reason } => {
                        if let Some(c) = self.peers.close(key) {
                            tracing::debug!(addr = %c.addr, "peer closed: {reason}");
                            if matches!(reason, engine::session::SessionError::ConnectedToSelf) {
                                self.peers.forget(&c.addr);
                            }
                        }
                    }
                    MetadataEvent::Banned { key } => {
                        self.banned = self.banned.saturating_add(1);
                        if let Some(c) = self.peers.conns.get(&key) {
                            tracing::warn!(addr = %c.addr, "peer banned: it sent metadata that failed verification");
                            let addr = c.addr;
                            self.peers.forget(&addr);
                        }
                    }
                    MetadataEvent::PexPeers(list) => {
                        tracing::debug!("{} peers from peer exchange", list.len());
                        self.peers.add_known(list.into_iter().map(|(a, _)| a));
                        self.peers.connect_more();
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn publish(&self) {
        let peers = self.peers.conns.len();
        let known = self.peers.known_count();
        let (have, total) = self.fetch.progress();
        let banned = self.banned;
        self.status_tx.send_modify(|s| {
            s.phase = Phase::FetchingMetadata;
            s.banned = banned;
            s.peers = peers;
            s.known_peers = known;
            s.metadata_pieces = (have, total);
        });
    }

    /// Stopped before the metadata came: `stopped` to the trackers, connections closed.
    async fn stop(&mut self, announce: Option<AnnounceHandle>) {
        let keys: Vec<engine::PeerKey> = self.peers.conns.keys().copied().collect();
        for key in keys {
            self.peers.close(key);
        }
        if let Some(a) = announce {
            let _ = a.command(progress()).await;
            if let Err(e) = a.shutdown().await {
                tracing::warn!("announce driver: {e}");
            }
        }
    }
}
