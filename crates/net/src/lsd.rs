//! The Local Service Discovery driver (BEP 14): one multicast UDP socket feeding the pure [`lsd::Lsd`].
//!
//! [`spawn`] joins the group on an interface, announces the torrents it is given on the state machine's
//! schedule, and hands the peers it hears to the owner through [`LsdHandle::next_found`]. Off by default in
//! bitswarm (multicast leaves the machine); tests run it in a network namespace whose loopback has
//! multicast turned on.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use lsd::{Config, Found, Lsd};
use metainfo::InfoHashV1;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct LsdConfig {
    /// The state machine's settings (our peer port, cookie, group, schedule).
    pub lsd: Config,
    /// The interface (by its IPv4 address) to join the group on and send from; unspecified: the default.
    pub interface: Ipv4Addr,
    /// Multicast TTL ("set the IP_MULTICAST_TTL socket option to a value above 1" for a wider scope).
    pub ttl: u32,
}

impl LsdConfig {
    /// BEP 14's defaults for a client listening on `port`, with a random cookie from `cookie`.
    pub fn new(port: u16, cookie: String) -> Self {
        LsdConfig {
            lsd: Config::new(port, cookie),
            interface: Ipv4Addr::UNSPECIFIED,
            ttl: 2,
        }
    }
}

#[derive(Debug)]
enum Cmd {
    Add(InfoHashV1),
    Remove(InfoHashV1),
}

/// The running driver.
#[derive(Debug)]
pub struct LsdHandle {
    cmds: mpsc::Sender<Cmd>,
    found: mpsc::Receiver<Found>,
    task: JoinHandle<()>,
}

impl LsdHandle {
    /// Announce a torrent (and report peers for it).
    pub async fn add_torrent(&self, info_hash: InfoHashV1) {
        let _ = self.cmds.send(Cmd::Add(info_hash)).await;
    }

    /// Stop announcing a torrent.
    pub async fn remove_torrent(&self, info_hash: InfoHashV1) {
        let _ = self.cmds.send(Cmd::Remove(info_hash)).await;
    }

    /// The next peer heard (`None` once the driver stopped).
    pub async fn next_found(&mut self) -> Option<Found> {
        self.found.recv().await
    }

    /// A sender of commands and the receiver of peers, for owners that select over both.
    pub fn split(self) -> (LsdCommands, mpsc::Receiver<Found>) {
        (
            LsdCommands {
                cmds: self.cmds,
                task: self.task,
            },
            self.found,
        )
    }

    /// Stops the driver.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// The command half of a split [`LsdHandle`].
#[derive(Debug)]
pub struct LsdCommands {
    cmds: mpsc::Sender<Cmd>,
    task: JoinHandle<()>,
}

impl LsdCommands {
    /// Announce a torrent.
    pub async fn add_torrent(&self, info_hash: InfoHashV1) {
        let _ = self.cmds.send(Cmd::Add(info_hash)).await;
    }

    /// Stop announcing a torrent.
    pub async fn remove_torrent(&self, info_hash: InfoHashV1) {
        let _ = self.cmds.send(Cmd::Remove(info_hash)).await;
    }

    /// Stops the driver.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

fn multicast_socket(config: &LsdConfig) -> io::Result<UdpSocket> {
    let group = match config.lsd.group {
        SocketAddr::V4(g) => g,
        SocketAddr::V6(_) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "LSD over IPv6 is not supported yet",
            ))
        }
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port())).into())?;
    s.join_multicast_v4(group.ip(), &config.interface)?;
    if !config.interface.is_unspecified() {
        s.set_multicast_if_v4(&config.interface)?;
    }
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_ttl_v4(config.ttl)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Joins the group and starts announcing. Fails if the socket cannot be set up (no multicast route, ...).
pub fn spawn(config: LsdConfig) -> io::Result<LsdHandle> {
    let socket = multicast_socket(&config)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (found_tx, found_rx) = mpsc::channel(256);
    let task = tokio::spawn(run(socket, config, cmd_rx, found_tx));
    Ok(LsdHandle {
        cmds: cmd_tx,
        found: found_rx,
        task,
    })
}

async fn run(
    socket: UdpSocket,
    config: LsdConfig,
    mut cmds: mpsc::Receiver<Cmd>,
    found: mpsc::Sender<Found>,
) {
    let epoch = Instant::now();
    let group = config.lsd.group;
    let mut lsd = Lsd::new(config.lsd, Duration::ZERO);
    let mut buf = vec![0u8; lsd::MAX_INPUT + 1];
    loop {
        let wake = lsd.poll_timeout().map(|t| epoch + t);
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Add(h)) => { lsd.add_torrent(h); }
                Some(Cmd::Remove(h)) => lsd.remove_torrent(&h),
                None => return,
            },
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => lsd.handle_packet(epoch.elapsed(), from, buf.get(..n).unwrap_or_default()),
                Err(e) => tracing::debug!(error = %e, "lsd receive"),
            },
            () = sleep_until(wake) => lsd.handle_timeout(epoch.elapsed()),
        }
        while let Some(packet) = lsd.poll_transmit() {
            if let Err(e) = socket.send_to(&packet, group).await {
                tracing::debug!(error = %e, "lsd send");
            }
        }
        while let Some(f) = lsd.poll_found() {
            tracing::debug!(peer = %f.peer, info_hash = %f.info_hash.to_hex(), "lsd: peer heard");
            if found.try_send(f).is_err() {
                tracing::debug!("lsd: owner is not keeping up; peer dropped");
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

/// A peer address the announce came from is one we can dial (not unspecified or multicast).
pub fn dialable(peer: SocketAddr) -> bool {
    let ip = peer.ip();
    !(ip.is_unspecified()
        || ip.is_multicast()
        || peer.port() == 0
        || matches!(ip, IpAddr::V4(v) if v.is_broadcast()))
}
