//! The tracker server: UDP workers and the HTTP router around one [`Service`], handed their sockets and a
//! shutdown signal (so tests bind port 0), with expiry and persistence running beside them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::TrackerConfig;
use crate::service::{Service, ServiceError};
use crate::{http, persist};

/// The sockets the server runs on, bound before it starts.
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP listener, if HTTP is served.
    pub http: Option<std::net::TcpListener>,
    /// UDP sockets sharing one address (SO_REUSEPORT), one per worker; empty if UDP is off.
    pub udp: Vec<std::net::UdpSocket>,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A socket could not be bound or used.
    #[error("{what} {addr}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The service could not start.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Persistence failed at start or at the final save.
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
}

impl Listeners {
    /// Bind what `config` asks for: the HTTP address, and `udp.workers` sockets (0: one per core) on the
    /// UDP address. With port 0 the first UDP socket picks a port and the others join it.
    pub fn bind(config: &TrackerConfig) -> Result<Self, ServerError> {
        let http = if config.http.enabled {
            let addr = config.http.listen;
            let l = std::net::TcpListener::bind(addr).map_err(|source| ServerError::Io {
                what: "binding HTTP",
                addr,
                source,
            })?;
            l.set_nonblocking(true).map_err(|source| ServerError::Io {
                what: "configuring HTTP",
                addr,
                source,
            })?;
            Some(l)
        } else {
            None
        };
        let mut udp = Vec::new();
        if config.udp.enabled {
            let workers = match config.udp.workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            };
            let mut addr = config.udp.listen;
            for _ in 0..workers.clamp(1, 64) {
                let s = bind_udp(addr, config.udp.recv_buffer).map_err(|source| ServerError::Io {
                    what: "binding UDP",
                    addr,
                    source,
                })?;
                if addr.port() == 0 {
                    addr = s.local_addr().map_err(|source| ServerError::Io {
                        what: "binding UDP",
                        addr,
                        source,
                    })?;
                }
                udp.push(s);
            }
        }
        Ok(Listeners { http, udp })
    }

    /// The HTTP address actually bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The UDP address actually bound.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.first().and_then(|s| s.local_addr().ok())
    }
}

fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    if let Err(e) = s.set_recv_buffer_size(recv_buffer) {
        warn!(%addr, error = %e, "could not set the UDP receive buffer");
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Run the tracker until `shutdown` resolves, then save what is of record and return.
pub async fn run(
    config: TrackerConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let service = Arc::new(Service::new(config)?);
    run_service(service, listeners, shutdown).await
}

/// Run the tracker around a [`Service`] the caller made and keeps a handle on (an embedding program, such as
/// the directory, reads its swarm stats and feeds its allow-list while it runs), until `shutdown` resolves.
/// The service's own configuration is used.
pub async fn run_service(
    service: Arc<Service>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let config = service.config().clone();
    let db = match &config.persistence.database {
        Some(path) => Some(restore(&service, path.clone()).await?),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    // UDP workers are plain threads with blocking sockets: one receive and one send system call per
    // request and no scheduler between them (the store's lock is held for about a microsecond).
    let udp_stop = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    for (i, socket) in listeners.udp.into_iter().enumerate() {
        let addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let io = |source| ServerError::Io {
            what: "configuring UDP",
            addr,
            source,
        };
        // Bound blocking; a short read timeout lets the worker notice the stop flag.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(io)?;
        let (service, stop) = (service.clone(), udp_stop.clone());
        let t = std::thread::Builder::new()
            .name(format!("udp-{i}"))
            .spawn(move || udp_worker(socket, service, stop))
            .map_err(|source| ServerError::Io {
                what: "starting a UDP worker for",
                addr,
                source,
            })?;
        udp_threads.push(t);
    }
    if let Some(listener) = listeners.http {
        let addr = listener.local_addr().ok();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| ServerError::Io {
            what: "registering HTTP",
            addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        })?;
        let app = http::router(service.clone());
        let mut rx = stop_rx.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    stopped(&mut rx).await;
                });
            if let Err(e) = serve.await {
                warn!(error = %e, "HTTP server stopped");
            }
        });
    }
    {
        let service = service.clone();
        let mut rx = stop_rx.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => service.expire(20_000),
                    _ = stopped(&mut rx) => break,
                }
            }
        });
    }
    if let Some(path) = db.clone() {
        let service = service.clone();
        let mut rx = stop_rx.clone();
        let every = Duration::from_secs(config.persistence.save_interval);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = save(&service, path.clone()).await {
                            warn!(error = %e, "periodic save failed");
                        }
                    }
                    _ = stopped(&mut rx) => break,
                }
            }
        });
    }
    info!("tracker running");
    shutdown.await;
    info!("tracker shutting down");
    let _ = stop_tx.send(true);
    udp_stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let _ = tokio::task::spawn_blocking(move || {
        udp_threads.into_iter().for_each(|t| {
            let _ = t.join();
        })
    })
    .await;
    if let Some(path) = db {
        save(&service, path).await?;
        info!("records saved");
    }
    Ok(())
}

async fn restore(service: &Arc<Service>, path: PathBuf) -> Result<PathBuf, ServerError> {
    let p = path.clone();
    let records = tokio::task::spawn_blocking(move || persist::open(&p).and_then(|c| persist::load(&c)))
        .await
        .map_err(|e| persist::PersistError::BadRow {
            table: "-",
            what: e.to_string(),
        })??;
    let report = service.restore(records)?;
    if report.completed_dropped > 0 {
        warn!(
            dropped = report.completed_dropped,
            "completed counters dropped: more torrents than max_torrents"
        );
    }
    Ok(path)
}

async fn save(service: &Arc<Service>, path: PathBuf) -> Result<(), persist::PersistError> {
    let records = service.records();
    tokio::task::spawn_blocking(move || {
        let mut conn = persist::open(&path)?;
        persist::save(&mut conn, &records)
    })
    .await
    .map_err(|e| persist::PersistError::BadRow {
        table: "-",
        what: e.to_string(),
    })?
}

/// Datagrams taken (and answers sent) per system call on Linux.
#[cfg(target_os = "linux")]
const UDP_BATCH: usize = 32;

/// On Linux, `recvmmsg` and `sendmmsg` move up to [`UDP_BATCH`] datagrams per system call: under load
/// most of a tracker's time is in the kernel, much of it entering and leaving it. A batch is answered
/// as soon as its first datagram is in (`MSG_WAITFORONE`), so a lone request waits for nothing. Answers
/// the kernel does not take in one `sendmmsg` are dropped, as a full socket buffer would drop them.
#[cfg(target_os = "linux")]
fn udp_worker(socket: std::net::UdpSocket, service: Arc<Service>, stop: Arc<AtomicBool>) {
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; 2048]; UDP_BATCH];
    let mut outs: Vec<Vec<u8>> = (0..UDP_BATCH).map(|_| Vec::with_capacity(2048)).collect();
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(UDP_BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(UDP_BATCH, None);
    let mut received: Vec<(Option<SocketAddr>, usize)> = Vec::with_capacity(UDP_BATCH);
    let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(UDP_BATCH);
    while !stop.load(Ordering::Relaxed) {
        received.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
            match recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(msgs) => {
                    for m in msgs {
                        received.push((m.address.as_ref().and_then(to_std), m.bytes));
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed");
                    continue;
                }
            }
        }
        addrs.clear();
        let mut answered = 0;
        for ((src, len), buf) in received.iter().zip(bufs.iter()) {
            let (Some(src), Some(out)) = (src, outs.get_mut(answered)) else {
                continue;
            };
            let packet = buf.get(..*len).unwrap_or_default();
            if service.handle_udp(*src, packet, out) {
                addrs.push(Some(SockaddrStorage::from(*src)));
                answered += 1;
            }
        }
        if answered > 0 {
            let slices: Vec<[IoSlice<'_>; 1]> =
                outs.iter().take(answered).map(|o| [IoSlice::new(o)]).collect();
            if let Err(e) = sendmmsg(fd, &mut send_headers, &slices, &addrs, [], MsgFlags::empty()) {
                tracing::debug!(error = %e, "UDP send failed");
            }
        }
    }

    fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(SocketAddr::V4(std::net::SocketAddrV4::from(*v4)));
        }
        let v6 = a.as_sockaddr_in6()?;
        Some(SocketAddr::V6(std::net::SocketAddrV6::from(*v6)))
    }
}

#[cfg(not(target_os = "linux"))]
fn udp_worker(socket: std::net::UdpSocket, service: Arc<Service>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, src)) => {
                let packet = buf.get(..n).unwrap_or_default();
                if service.handle_udp(src, packet, &mut out) {
                    if let Err(e) = socket.send_to(&out, src) {
                        tracing::debug!(%src, error = %e, "UDP send failed");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
        }
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
