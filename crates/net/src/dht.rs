//! The DHT driver: one UDP socket feeding the pure Mainline DHT node ([`dht::Dht`]), its timers, and the
//! owner's commands (look up peers, announce, add a node, stats, save).
//!
//! The owner gets a cheap, clonable [`DhtHandle`]; each lookup streams its peers back on a channel of its
//! own, closed when the lookup is done. The routing table is saved to a file (if given) every
//! [`DhtDriverConfig::save_interval`] and at shutdown, and restored at start, so a restarted node rejoins
//! without a bootstrap node.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dht::{Announce, Dht, Event, LookupId, Stats, Time};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How the driver runs (the node's own settings are in [`dht::Config`]).
#[derive(Debug, Clone)]
pub struct DhtDriverConfig {
    /// The node's settings.
    pub node: dht::Config,
    /// Nodes to bootstrap from (`host:port`, resolved at start; unresolvable names are logged and skipped).
    pub bootstrap: Vec<String>,
    /// Where the routing table is kept across restarts.
    pub state_file: Option<PathBuf>,
    /// How often the routing table is saved.
    pub save_interval: Duration,
}

impl Default for DhtDriverConfig {
    fn default() -> Self {
        DhtDriverConfig {
            node: dht::Config::default(),
            bootstrap: Vec::new(),
            state_file: None,
            save_interval: Duration::from_secs(300),
        }
    }
}

/// What a lookup reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupEvent {
    /// Peers found (each reported once per lookup).
    Peers(Vec<SocketAddr>),
    /// A BEP 33 scrape's estimate, from the closest nodes' bloom filters.
    Scrape {
        /// Estimated seeds.
        seeds: u32,
        /// Estimated peers that are not seeds.
        peers: u32,
    },
    /// The lookup finished: how many of the closest nodes answered, and how many we announced to.
    Done {
        /// Nodes that answered.
        responded: usize,
        /// `announce_peer` queries sent.
        announced: usize,
        /// Queries sent.
        queries: u32,
    },
}

enum Cmd {
    GetPeers {
        info_hash: [u8; 20],
        announce: Option<Announce>,
        reply: mpsc::Sender<LookupEvent>,
    },
    Scrape {
        info_hash: [u8; 20],
        reply: mpsc::Sender<LookupEvent>,
    },
    AddNode(SocketAddr),
    Stats(oneshot::Sender<Stats>),
    Id(oneshot::Sender<dht::NodeId>),
    Save(oneshot::Sender<io::Result<()>>),
    Shutdown(oneshot::Sender<()>),
}

/// The owner's side of a running DHT node. Clones share the node.
#[derive(Clone)]
pub struct DhtHandle {
    cmds: mpsc::Sender<Cmd>,
    local: SocketAddr,
}

impl std::fmt::Debug for DhtHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtHandle").field("local", &self.local).finish()
    }
}

/// The driver's task; await it after [`DhtHandle::shutdown`].
pub type DhtTask = JoinHandle<()>;

impl DhtHandle {
    /// The node's UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Looks up peers of `info_hash` (and announces us with `announce`); events come on the returned
    /// channel, which closes after [`LookupEvent::Done`].
    pub async fn get_peers(
        &self,
        info_hash: [u8; 20],
        announce: Option<Announce>,
    ) -> mpsc::Receiver<LookupEvent> {
        let (tx, rx) = mpsc::channel(64);
        let _ = self
            .cmds
            .send(Cmd::GetPeers {
                info_hash,
                announce,
                reply: tx,
            })
            .await;
        rx
    }

    /// Estimates a torrent's seeds and peers (BEP 33); the estimate, then [`LookupEvent::Done`], come on
    /// the returned channel.
    pub async fn scrape(&self, info_hash: [u8; 20]) -> mpsc::Receiver<LookupEvent> {
        let (tx, rx) = mpsc::channel(4);
        let _ = self.cmds.send(Cmd::Scrape { info_hash, reply: tx }).await;
        rx
    }

    /// Pings a node and adds it to the table if it answers (e.g. from a peer's `port` message).
    pub async fn add_node(&self, addr: SocketAddr) {
        let _ = self.cmds.send(Cmd::AddNode(addr)).await;
    }

    /// The node's counters and table size (`None` if the driver stopped).
    pub async fn stats(&self) -> Option<Stats> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The node's id (`None` if the driver stopped).
    pub async fn id(&self) -> Option<dht::NodeId> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Id(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Saves the routing table now (to the state file, if one is set).
    pub async fn save(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Save(tx))
            .await
            .map_err(|_| io::Error::other("the DHT driver has stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("the DHT driver has stopped"))?
    }

    /// Saves the table and stops the driver.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts a node on `socket` (servers are handed their sockets: tests bind port 0).
pub async fn spawn(socket: UdpSocket, config: DhtDriverConfig) -> io::Result<(DhtHandle, DhtTask)> {
    let local = socket.local_addr()?;
    let mut bootstrap = Vec::new();
    for name in &config.bootstrap {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(addrs) => bootstrap.extend(addrs.filter(|a| a.is_ipv4() == local.is_ipv4())),
            Err(e) => tracing::warn!(node = %name, error = %e, "DHT bootstrap node not resolved"),
        }
    }
    let epoch = Instant::now();
    let now = Time(Duration::ZERO);
    let mut node = Dht::new(config.node.clone(), local, StdRng::from_os_rng(), now);
    if let Some(path) = &config.state_file {
        match std::fs::read(path) {
            Ok(bytes) => match node.restore(now, &bytes) {
                Ok(n) => tracing::info!(nodes = n, file = %path.display(), "DHT table restored"),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "DHT state not usable; starting afresh")
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "DHT state not readable"),
        }
    }
    if !bootstrap.is_empty() {
        node.bootstrap(now, &bootstrap);
    }
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(run(socket, node, config, epoch, rx));
    Ok((DhtHandle { cmds: tx, local }, task))
}

fn save_file(path: &PathBuf, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

async fn run(
    socket: UdpSocket,
    mut node: Dht<StdRng>,
    config: DhtDriverConfig,
    epoch: Instant,
    mut cmds: mpsc::Receiver<Cmd>,
) {
    let mut buf = vec![0u8; 2048];
    let mut lookups: HashMap<LookupId, mpsc::Sender<LookupEvent>> = HashMap::new();
    let mut next_save = Instant::now() + config.save_interval;
    let now = || Time(epoch.elapsed());
    loop {
        let wake = node.poll_timeout().map(|t| epoch + t.0);
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => node.handle_packet(now(), from, buf.get(..n).unwrap_or_default()),
                // ICMP port unreachable surfaces here on Linux as ConnectionRefused: nothing to do.
                Err(e) => tracing::trace!(error = %e, "DHT receive"),
            },
            cmd = cmds.recv() => match cmd {
                Some(Cmd::GetPeers { info_hash, announce, reply }) => {
                    let id = node.get_peers(now(), info_hash, announce);
                    lookups.insert(id, reply);
                }
                Some(Cmd::Scrape { info_hash, reply }) => {
                    let id = node.scrape(now(), info_hash);
                    lookups.insert(id, reply);
                }
                Some(Cmd::AddNode(addr)) => node.add_node(now(), addr),
                Some(Cmd::Id(reply)) => {
                    let _ = reply.send(node.id());
                }
                Some(Cmd::Stats(reply)) => { let _ = reply.send(node.stats()); }
                Some(Cmd::Save(reply)) => {
                    let r = match &config.state_file { Some(p) => save_file(p, &node.save()), None => Ok(()) };
                    let _ = reply.send(r);
                }
                Some(Cmd::Shutdown(reply)) => {
                    if let Some(p) = &config.state_file {
                        if let Err(e) = save_file(p, &node.save()) {
                            tracing::warn!(file = %p.display(), error = %e, "DHT table not saved");
                        }
                    }
                    let _ = reply.send(());
                    return;
                }
                None => return,
            },
            () = sleep_until(wake) => node.handle_timeout(now()),
            () = tokio::time::sleep_until(next_save.into()), if config.state_file.is_some() => {
                next_save = Instant::now() + config.save_interval;
                if let Some(p) = &config.state_file {
                    if let Err(e) = save_file(p, &node.save()) {
                        tracing::warn!(file = %p.display(), error = %e, "DHT table not saved");
                    }
                }
            }
        }
        while let Some(t) = node.poll_transmit() {
            if let Err(e) = socket.send_to(&t.data, t.to).await {
                tracing::trace!(to = %t.to, error = %e, "DHT send");
            }
        }
        while let Some(ev) = node.poll_event() {
            match ev {
                Event::Peers { lookup, peers, .. } => {
                    if let Some(tx) = lookups.get(&lookup) {
                        if tx.try_send(LookupEvent::Peers(peers)).is_err() {
                            tracing::debug!("DHT lookup owner not keeping up; peers dropped");
                        }
                    }
                }
                Event::Scrape {
                    lookup, seeds, peers, ..
                } => {
                    if let Some(tx) = lookups.get(&lookup) {
                        let _ = tx.try_send(LookupEvent::Scrape { seeds, peers });
                    }
                }
                Event::LookupDone {
                    lookup,
                    responded,
                    announced,
                    queries,
                    ..
                } => {
                    if let Some(tx) = lookups.remove(&lookup) {
                        let _ = tx.try_send(LookupEvent::Done {
                            responded,
                            announced,
                            queries,
                        });
                    }
                }
                Event::ExternalIp(ip) => tracing::info!(%ip, "DHT: external address"),
                Event::Bootstrapped { nodes } => tracing::info!(nodes, "DHT: bootstrapped"),
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
