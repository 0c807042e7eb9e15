//! The announce driver: runs a [`tracker_proto::client::AnnounceClient`] over real sockets.
//!
//! One task owns the client. It resolves tracker host names (`tokio::net::lookup_host`, with a timeout and a
//! short cache), sends UDP datagrams from one IPv4 and one IPv6 socket, performs HTTP(S) GETs on spawned
//! tasks (each with a timeout and a bounded body), feeds every answer and failure back with the time, and
//! sleeps until the client's next timeout. Datagrams are accepted only from addresses the driver sent to.
//!
//! Use [`spawn`] for a handle with channels, or [`run`] to drive a client on the current task.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracker_proto::client::{
    AnnounceClient, ClientEvent, HttpResponse, RequestId, ToSend, TrackerId, Transmit,
};
use tracker_proto::http::MAX_RESPONSE_LEN;
use tracker_proto::Event;

use crate::Clock;

/// What the owner asks of the announce client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Bytes uploaded and downloaded so far, bytes still missing (sent with the next announces).
    Progress {
        /// Bytes uploaded.
        uploaded: u64,
        /// Bytes downloaded.
        downloaded: u64,
        /// Bytes still missing.
        left: u64,
    },
    /// An announce with this event (see `AnnounceClient::announce_event`); [`Event::Stopped`] shuts down.
    Event(Event),
    /// Scrape the current tracker; the counts come back as `ClientEvent::Stats`.
    Scrape,
}

/// Sockets, timeouts and limits of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Where the IPv4 UDP socket binds; `None` for no IPv4 UDP. Default `0.0.0.0:0`.
    pub udp_v4: Option<SocketAddr>,
    /// Where the IPv6 UDP socket binds; `None` for no IPv6 UDP. Default `[::]:0`. A machine without IPv6
    /// simply has no IPv6 socket: UDP trackers reachable only over IPv6 then fail with a clear error.
    pub udp_v6: Option<SocketAddr>,
    /// The local address HTTP requests are sent from; `None` lets the system choose. Set it to the peer's
    /// listen address when that is a specific one, so the tracker records the address peers can reach.
    pub http_local_address: Option<IpAddr>,
    /// The whole of one HTTP request, connection to last byte. Default 30 s.
    pub http_timeout: Duration,
    /// Connecting to an HTTP tracker. Default 10 s.
    pub connect_timeout: Duration,
    /// Resolving a UDP tracker's host name. Default 10 s.
    pub resolve_timeout: Duration,
    /// How long a resolved address is reused. Default 5 min.
    pub resolve_ttl: Duration,
    /// The largest HTTP body read; a larger one fails the request. Default 8 MiB
    /// ([`tracker_proto::http::MAX_RESPONSE_LEN`]).
    pub max_http_body: usize,
    /// Redirects followed per HTTP request. Default 5.
    pub max_redirects: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Events buffered for the owner before the driver waits for it to read them. Default 64.
    pub event_capacity: usize,
    /// The clock that maps real time onto the client's time. Default: epoch when the config was made.
    pub clock: Clock,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            udp_v4: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
            udp_v6: Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)),
            http_local_address: None,
            http_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            resolve_timeout: Duration::from_secs(10),
            resolve_ttl: Duration::from_secs(300),
            max_http_body: MAX_RESPONSE_LEN,
            max_redirects: 5,
            user_agent: concat!("bitswarm/", env!("CARGO_PKG_VERSION")).to_owned(),
            event_capacity: 64,
            clock: Clock::new(),
        }
    }
}

/// Why the driver could not run.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The HTTP client could not be built (its TLS setup failed).
    #[error("cannot set up the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// The driver task panicked or was cancelled.
    #[error("the announce driver task ended abnormally: {0}")]
    Task(String),
}

/// An RNG for the announce client, seeded from the operating system.
pub fn os_rng() -> StdRng {
    StdRng::from_os_rng()
}

/// A running announce driver: send it commands, read its events, shut it down.
#[derive(Debug)]
pub struct AnnounceHandle {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<ClientEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DriverError>>,
}

impl AnnounceHandle {
    /// Send a command; `false` if the driver has ended.
    pub async fn command(&self, command: Command) -> bool {
        self.commands.send(command).await.is_ok()
    }

    /// The next event; `None` once the driver has ended.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// The event channel itself, for `select!` loops.
    pub fn events(&mut self) -> &mut mpsc::Receiver<ClientEvent> {
        &mut self.events
    }

    /// Leave the swarm: the client sends `stopped` to the trackers that know this peer and the driver ends
    /// when they answer or the client's stop timeout passes. Returns the events not yet read, the last being
    /// `ClientEvent::Finished`.
    pub async fn shutdown(mut self) -> Result<Vec<ClientEvent>, DriverError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut rest = Vec::new();
        while let Some(e) = self.events.recv().await {
            rest.push(e);
        }
        match self.task.await {
            Ok(result) => result.map(|()| rest),
            Err(e) => Err(DriverError::Task(e.to_string())),
        }
    }
}

/// Run `client` on a new task. The driver sets up its sockets on that task; if it cannot run, the event
/// channel closes and [`AnnounceHandle::shutdown`] returns the error. Dropping the handle shuts the client
/// down too (in the background).
pub fn spawn<R: Rng + Send + 'static>(client: AnnounceClient<R>, config: DriverConfig) -> AnnounceHandle {
    let (commands_tx, commands_rx) = mpsc::channel(16);
    let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop_rx.await;
        };
        run(client, config, commands_rx, events_tx, stopped)
            .await
            .map(|_| ())
    });
    AnnounceHandle {
        commands: commands_tx,
        events: events_rx,
        stop: Some(stop_tx),
        task,
    }
}

/// Drive `client` until it has finished: apply `commands`, send its events to `events`, and shut it down
/// (sending `stopped`) when `shutdown` completes, the command channel closes or the event receiver is
/// dropped. Returns the client, finished.
pub async fn run<R: Rng>(
    mut client: AnnounceClient<R>,
    config: DriverConfig,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<AnnounceClient<R>, DriverError> {
    let mut d = Driver::new(config).await?;
    let mut shutdown = pin!(shutdown);
    let mut stopping = false;
    let mut commands_open = true;
    let mut events_open = true;
    let mut buf4 = vec![0u8; 65536];
    let mut buf6 = vec![0u8; 65536];
    loop {
        d.flush(&mut client).await;
        let mut owner_gone = false;
        while let Some(event) = client.poll_event() {
            tracing::debug!(%event, "announce");
            if events_open && events.send(event).await.is_err() {
                events_open = false;
                owner_gone = true;
            }
        }
        if owner_gone && !stopping {
            stopping = true;
            client.shutdown(d.clock.now());
            continue;
        }
        if client.is_finished() {
            return Ok(client);
        }
        let deadline = client.poll_timeout().map(|t| d.clock.instant(t));
        let sleep = tokio::time::sleep_until(
            deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                .into(),
        );
        tokio::select! {
            () = sleep, if deadline.is_some() => client.handle_timeout(d.clock.now()),
            command = commands.recv(), if commands_open => {
                let now = d.clock.now();
                match command {
                    Some(Command::Progress { uploaded, downloaded, left }) => {
                        client.set_progress(uploaded, downloaded, left);
                    }
                    Some(Command::Event(Event::Stopped)) | None => {
                        commands_open = commands_open && command.is_some();
                        stopping = true;
                        client.shutdown(now);
                    }
                    Some(Command::Event(e)) => client.announce_event(now, e),
                    Some(Command::Scrape) => {
                        client.scrape(now);
                    }
                }
            }
            received = recv(d.v4.as_ref(), &mut buf4) => d.datagram(&mut client, received, &buf4),
            received = recv(d.v6.as_ref(), &mut buf6) => d.datagram(&mut client, received, &buf6),
            Some(done) = d.tasks.join_next(), if !d.tasks.is_empty() => match done {
                Ok(done) => d.done(&mut client, done).await,
                Err(e) => tracing::warn!("announce driver task failed: {e}"),
            },
            () = &mut shutdown, if !stopping => {
                stopping = true;
                client.shutdown(d.clock.now());
            }
        }
    }
}

/// A datagram from `sock`, or never if there is no such socket.
async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// What a spawned task found out.
#[derive(Debug)]
enum Done {
    Http {
        id: RequestId,
        result: Result<HttpResponse, String>,
    },
    Resolved {
        tracker: TrackerId,
        id: RequestId,
        host: String,
        port: u16,
        bytes: Vec<u8>,
        result: Result<SocketAddr, String>,
    },
}

struct Driver {
    config: DriverConfig,
    clock: Clock,
    http: reqwest::Client,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    /// Why there is no socket of a family, for error messages.
    v4_missing: String,
    v6_missing: String,
    tasks: JoinSet<Done>,
    resolved: HashMap<(String, u16), (SocketAddr, Instant)>,
    /// Which trackers each address speaks for: datagrams from elsewhere are dropped.
    routes: HashMap<SocketAddr, Vec<TrackerId>>,
}

impl Driver {
    async fn new(config: DriverConfig) -> Result<Driver, DriverError> {
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::limited(config.max_redirects))
            .user_agent(config.user_agent.clone())
            // No idle connections kept: announces are minutes apart, and trackers such as opentracker
            // close the connection after each response, so a pooled one can be dead when reused
            // ("connection closed before message completed"), which failed announces and scrapes.
            .pool_max_idle_per_host(0)
            .local_address(config.http_local_address)
            .build()
            .map_err(DriverError::Http)?;
        let (v4, v4_missing) = bind(config.udp_v4, "IPv4").await;
        let (v6, v6_missing) = bind(config.udp_v6, "IPv6").await;
        Ok(Driver {
            clock: config.clock,
            config,
            http,
            v4,
            v6,
            v4_missing,
            v6_missing,
            tasks: JoinSet::new(),
            resolved: HashMap::new(),
            routes: HashMap::new(),
        })
    }

    /// Carry out everything the client wants sent (failures to send feed back and may queue more).
    async fn flush<R: Rng>(&mut self, client: &mut AnnounceClient<R>) {
        while let Some(t) = client.poll_transmit() {
            self.dispatch(client, t).await;
        }
    }

    async fn dispatch<R: Rng>(&mut self, client: &mut AnnounceClient<R>, t: Transmit) {
        match t.request {
            ToSend::Http { url } => {
                tracing::debug!(tracker = %t.tracker, "GET {url}");
                let http = self.http.clone();
                let max = self.config.max_http_body;
                let id = t.id;
                self.tasks.spawn(async move {
                    Done::Http {
                        id,
                        result: get(http, url, max).await,
                    }
                });
            }
            ToSend::Udp { host, port, bytes } => {
                let key = (host, port);
                let fresh = self
                    .resolved
                    .get(&key)
                    .filter(|(_, at)| at.elapsed() < self.config.resolve_ttl)
                    .map(|(addr, _)| *addr);
                if let Some(addr) = fresh {
                    self.send_datagram(client, t.tracker, t.id, addr, &bytes).await;
                    return;
                }
                let (host, port) = key;
                let timeout = self.config.resolve_timeout;
                let families = (self.v4.is_some(), self.v6.is_some());
                let missing = (self.v4_missing.clone(), self.v6_missing.clone());
                let (tracker, id) = (t.tracker, t.id);
                self.tasks.spawn(async move {
                    let result = resolve(&host, port, timeout, families, missing).await;
                    Done::Resolved {
                        tracker,
                        id,
                        host,
                        port,
                        bytes,
                        result,
                    }
                });
            }
        }
    }

    async fn done<R: Rng>(&mut self, client: &mut AnnounceClient<R>, done: Done) {
        match done {
            Done::Http { id, result } => client.handle_http_response(self.clock.now(), id, result),
            Done::Resolved {
                tracker,
                id,
                host,
                port,
                bytes,
                result,
            } => match result {
                Ok(addr) => {
                    self.resolved.insert((host, port), (addr, Instant::now()));
                    self.send_datagram(client, tracker, id, addr, &bytes).await;
                }
                Err(e) => client.handle_failure(self.clock.now(), id, e),
            },
        }
    }

    async fn send_datagram<R: Rng>(
        &mut self,
        client: &mut AnnounceClient<R>,
        tracker: TrackerId,
        id: RequestId,
        addr: SocketAddr,
        bytes: &[u8],
    ) {
        let (sock, missing) = if addr.is_ipv4() {
            (self.v4.as_ref(), &self.v4_missing)
        } else {
            (self.v6.as_ref(), &self.v6_missing)
        };
        let Some(sock) = sock else {
            let reason = format!("cannot send to {addr}: {missing}");
            return client.handle_failure(self.clock.now(), id, reason);
        };
        // Answers are matched on the canonical address (an IPv4-mapped IPv6 address reads as IPv4).
        let key = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let routes = self.routes.entry(key).or_default();
        if !routes.contains(&tracker) {
            routes.push(tracker);
        }
        tracing::debug!(%tracker, "UDP {} bytes to {addr}", bytes.len());
        if let Err(e) = sock.send_to(bytes, addr).await {
            client.handle_failure(self.clock.now(), id, format!("cannot send to {addr}: {e}"));
        }
    }

    fn datagram<R: Rng>(
        &mut self,
        client: &mut AnnounceClient<R>,
        received: io::Result<(usize, SocketAddr)>,
        buf: &[u8],
    ) {
        let (len, from) = match received {
            Ok(r) => r,
            // Linux reports ICMP errors on UDP sockets as receive errors: nothing to read, nothing broken.
            Err(e) => return tracing::debug!("UDP receive: {e}"),
        };
        let Some(bytes) = buf.get(..len) else {
            return;
        };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let Some(trackers) = self.routes.get(&from) else {
            return tracing::debug!("dropping a datagram from {from}: not a tracker this client asked");
        };
        let now = self.clock.now();
        for &tracker in trackers {
            client.handle_udp_datagram(now, tracker, from, bytes);
        }
    }
}

/// Bind a UDP socket, or say why there is none.
async fn bind(addr: Option<SocketAddr>, family: &str) -> (Option<UdpSocket>, String) {
    let Some(addr) = addr else {
        return (None, format!("no {family} UDP socket (not configured)"));
    };
    match UdpSocket::bind(addr).await {
        Ok(s) => (Some(s), String::new()),
        Err(e) => {
            tracing::debug!("no {family} UDP socket on {addr}: {e}");
            (
                None,
                format!("no {family} UDP socket (binding {addr} failed: {e})"),
            )
        }
    }
}

/// The address to send a tracker's datagrams to: the first the name resolves to in a family with a socket.
async fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
    (has_v4, has_v6): (bool, bool),
    (v4_missing, v6_missing): (String, String),
) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("resolving {host} took longer than {}s", timeout.as_secs()))?
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect()
    };
    let usable = addrs.iter().find(|a| if a.is_ipv4() { has_v4 } else { has_v6 });
    match usable {
        Some(a) => Ok(*a),
        None if addrs.is_empty() => Err(format!("{host} resolves to no address")),
        None => {
            let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            let why = if addrs.iter().any(SocketAddr::is_ipv4) {
                v4_missing
            } else {
                v6_missing
            };
            Err(format!(
                "{host} resolves to {} only, and there is {why}",
                list.join(", ")
            ))
        }
    }
}

/// GET `url`, reading at most `max` bytes of body.
async fn get(http: reqwest::Client, url: String, max: usize) -> Result<HttpResponse, String> {
    let mut response = http.get(&url).send().await.map_err(describe)?;
    let status = response.status().as_u16();
    let too_big = || format!("the response is larger than the limit of {max} bytes");
    if response
        .content_length()
        .is_some_and(|len| usize::try_from(len).map_or(true, |len| len > max))
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len().saturating_add(chunk.len()) > max {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, body })
}

/// A reqwest error in a few words: what failed and the root cause, without the URL (the event names the
/// tracker already).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let root = chain.last().cloned().unwrap_or_default();
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() && chain.iter().any(|c| c.starts_with("dns error")) {
        format!("cannot resolve the host: {root}")
    } else if e.is_connect() {
        format!("cannot connect: {root}")
    } else {
        chain.dedup();
        chain.join(": ")
    }
}
