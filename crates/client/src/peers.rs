//! One torrent's connections and peer addresses: the addresses known (from trackers, PEX, the caller),
//! dialling them within the limits, and opening a connection's reader and writer tasks. Shared by the
//! metadata phase of a magnet link and the torrent that follows, so connections carry over from one to
//! the other.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::bandwidth::TokenBucket;
use engine::PeerKey;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tracing::Instrument;
use wire::BlockRequest;

use crate::conn::{self, Outgoing};
use crate::limit::Limiter;
use crate::torrent::Inbox;
use crate::Shared;

/// One open connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) addr: SocketAddr,
    pub(crate) tx: mpsc::UnboundedSender<Outgoing>,
    reader: JoinHandle<()>,
    /// Block bytes read or being read from disk for this peer and not yet written to its socket.
    pub(crate) queued: Arc<AtomicUsize>,
    /// Requests waiting for the upload queue to drain.
    pub(crate) deferred: VecDeque<BlockRequest>,
    _permit: OwnedSemaphorePermit,
}

/// A peer address we know of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Known {
    failures: u32,
    next_try: Instant,
}

/// Connection attempts an address gets before it is forgotten.
const MAX_FAILURES: u32 = 5;

/// How long an address waits before it is dialled again: after a disconnect, and growing with failures.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(30u64.saturating_mul(1u64 << failures.min(5)))
}

/// Connect to `addr` from `local` (the listen address) when that is a specific address of the same
/// family, so the peer sees the address we accept connections on.
async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if !local.is_unspecified() && local.is_ipv4() == addr.is_ipv4() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(addr).await
}

/// The connections and addresses of one torrent.
#[derive(Debug)]
pub(crate) struct Peers {
    shared: Arc<Shared>,
    pub(crate) conns: HashMap<PeerKey, Conn>,
    /// Addresses connected or being connected to.
    busy: HashSet<SocketAddr>,
    pub(crate) known: BTreeMap<SocketAddr, Known>,
    connecting: usize,
    pub(crate) inbox_tx: mpsc::Sender<Inbox>,
    /// Notified when a connection's upload queue drains.
    pub(crate) drained: Arc<Notify>,
    /// This torrent's rate limits.
    pub(crate) down: Arc<Mutex<TokenBucket>>,
    pub(crate) up: Arc<Mutex<TokenBucket>>,
}

impl Peers {
    pub(crate) fn new(
        shared: Arc<Shared>,
        inbox_tx: mpsc::Sender<Inbox>,
        download_limit: Option<u64>,
        upload_limit: Option<u64>,
    ) -> Peers {
        let now = shared.now();
        Peers {
            shared,
            conns: HashMap::new(),
            busy: HashSet::new(),
            known: BTreeMap::new(),
            connecting: 0,
            inbox_tx,
            drained: Arc::new(Notify::new()),
            down: Arc::new(Mutex::new(TokenBucket::with_rate(download_limit, now))),
            up: Arc::new(Mutex::new(TokenBucket::with_rate(upload_limit, now))),
        }
    }

    /// Addresses known (connected or not).
    pub(crate) fn known_count(&self) -> usize {
        self.known.len().max(self.conns.len())
    }

    /// Remember addresses to dial (bounded: a few times the connection limit).
    pub(crate) fn add_known(&mut self, peers: impl IntoIterator<Item = SocketAddr>) {
        let now = Instant::now();
        let own = self.shared.listen_addr;
        for addr in peers {
            let is_self = addr.port() == own.port()
                && (addr.ip() == own.ip() || own.ip().is_unspecified() && addr.ip().is_loopback());
            if is_self || addr.port() == 0 {
                continue;
            }
            if self.known.len() >= self.shared.config.max_peers_per_torrent.saturating_mul(8).max(64)
                && !self.known.contains_key(&addr)
            {
                break;
            }
            self.known.entry(addr).or_insert(Known {
                failures: 0,
                next_try: now,
            });
        }
    }

    /// Forget an address (ourselves, a banned peer, a seed we no longer need).
    pub(crate) fn forget(&mut self, addr: &SocketAddr) {
        self.known.remove(addr);
    }

    /// Dial known addresses until the peer and half-open limits are reached.
    pub(crate) fn connect_more(&mut self) {
        let config = &self.shared.config;
        let now = Instant::now();
        let room = config
            .max_peers_per_torrent
            .saturating_sub(self.conns.len().saturating_add(self.connecting))
            .min(config.max_half_open.saturating_sub(self.connecting));
        if room == 0 {
            return;
        }
        let picks: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|(a, k)| k.next_try <= now && !self.busy.contains(a))
            .map(|(a, _)| *a)
            .take(room)
            .collect();
        for addr in picks {
            let Ok(permit) = Arc::clone(&self.shared.connections).try_acquire_owned() else {
                break;
            };
            if let Some(k) = self.known.get_mut(&addr) {
                k.next_try = now + retry_delay(k.failures);
            }
            self.busy.insert(addr);
            self.connecting = self.connecting.saturating_add(1);
            let inbox = self.inbox_tx.clone();
            let timeout = config.connect_timeout;
            let local = self.shared.listen_addr.ip();
            tokio::spawn(async move {
                let msg = match tokio::time::timeout(timeout, connect_from(local, addr)).await {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        Inbox::Connected { stream, addr, permit }
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, "connect: {e}");
                        Inbox::ConnectFailed { addr }
                    }
                    Err(_) => {
                        tracing::debug!(%addr, "connect: timed out");
                        Inbox::ConnectFailed { addr }
                    }
                };
                let _ = inbox.send(msg).await;
            });
        }
    }

    /// An outgoing connection opened (it is attached next).
    pub(crate) fn on_connected(&mut self, addr: SocketAddr) {
        self.connecting = self.connecting.saturating_sub(1);
        if let Some(k) = self.known.get_mut(&addr) {
            k.failures = 0;
        }
    }

    /// An outgoing connection attempt failed.
    pub(crate) fn on_connect_failed(&mut self, addr: SocketAddr) {
        self.connecting = self.connecting.saturating_sub(1);
        self.busy.remove(&addr);
        if let Some(k) = self.known.get_mut(&addr) {
            k.failures = k.failures.saturating_add(1);
            k.next_try = Instant::now() + retry_delay(k.failures);
            if k.failures > MAX_FAILURES {
                self.known.remove(&addr);
            }
        }
        self.connect_more();
    }

    /// True if another incoming connection would exceed the torrent's limit.
    pub(crate) fn full(&self) -> bool {
        self.conns.len() >= self.shared.config.max_peers_per_torrent
    }

    /// Start the reader and writer of a connection under `key`.
    pub(crate) fn open(
        &mut self,
        key: PeerKey,
        stream: TcpStream,
        addr: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let (rd, wr) = stream.into_split();
        let epoch = self.shared.epoch;
        let down = Limiter::new(
            epoch,
            vec![Arc::clone(&self.shared.download), Arc::clone(&self.down)],
        );
        let up = Limiter::new(epoch, vec![Arc::clone(&self.shared.upload), Arc::clone(&self.up)]);
        let span = tracing::debug_span!("peer", %addr, key = key.0);
        let reader = tokio::spawn(
            conn::reader(
                key,
                rd,
                self.inbox_tx.clone(),
                down,
                self.shared.config.read_chunk,
            )
            .instrument(span.clone()),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(
            conn::writer(
                key,
                wr,
                rx,
                self.inbox_tx.clone(),
                up,
                conn::UploadQueue {
                    queued: Arc::clone(&queued),
                    drained: Arc::clone(&self.drained),
                    low: self.shared.config.max_upload_queue,
                },
            )
            .instrument(span),
        );
        self.busy.insert(addr);
        self.conns.insert(
            key,
            Conn {
                addr,
                tx,
                reader,
                queued,
                deferred: VecDeque::new(),
                _permit: permit,
            },
        );
    }

    /// A connection could not be attached: its address is free again.
    pub(crate) fn release(&mut self, addr: &SocketAddr) {
        self.busy.remove(addr);
    }

    /// Forget a connection: its writer flushes what is queued and closes, its reader stops. Returns it,
    /// or `None` if it was already gone.
    pub(crate) fn close(&mut self, key: PeerKey) -> Option<Conn> {
        let c = self.conns.remove(&key)?;
        c.reader.abort();
        self.busy.remove(&c.addr);
        Some(c)
    }

    /// Queue bytes for a peer (dropped if it is gone).
    pub(crate) fn send(&self, key: PeerKey, bytes: Vec<u8>) {
        if let Some(c) = self.conns.get(&key) {
            let _ = c.tx.send(Outgoing::Bytes(bytes));
        }
    }
}
