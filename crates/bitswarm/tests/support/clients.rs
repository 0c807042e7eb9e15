//! Real BitTorrent clients as seeders and leechers, for interop tests of the form "client X seeds torrent T
//! from DIR, bitswarm downloads", "bitswarm seeds, client X downloads", or swarms of several.
//!
//! ```ignore
//! let mut tracker = Tracker::start(&Net::Loopback, dir);                        // support::tracker
//! let announce = tracker.announce_url(Scheme::Http).to_string();
//! let (torrent, hash) = create_torrent(&seed_dir.join("tree"), &[&announce], &out); // support::payload
//! let seeder = start_seeder(Client::Qbittorrent, &torrent, &seed_dir, &Placement::Loopback);
//! let mut leecher = start_leecher(Client::Libtorrent, &torrent, &dl_dir, &Placement::Loopback);
//! leecher.wait_complete(Duration::from_secs(30)).unwrap();
//! assert_same_tree(&seed_dir.join("tree"), &dl_dir.join("tree"), false, "qBittorrent -> libtorrent");
//! ```
//!
//! API:
//! - [`Client`]: `Libtorrent` (libtorrent 2.0 through `tests/interop/lt_tool.py seed|download`), `Aria2`
//!   (aria2c 1.36 with its JSON-RPC on), `Transmission` (transmission-daemon 3.00 `-f` driven by
//!   transmission-remote), `Qbittorrent` (qbittorrent-nox 4.5, Web API on 127.0.0.1). `require()` fails the
//!   test when its programs are missing; `dials_loopback()`, `creates_empty_files()` and `can_add_peers()`
//!   say what it cannot do.
//! - [`Placement`]: `Loopback` (127.0.0.1) or `Netns { name, ip }` (made by
//!   `Placement::in_netns(&mut Netns, ip)`: inside that namespace, listening on and sending from `ip`, tracker
//!   requests included). Transmission as a *leecher* must be in a namespace, and so must everything it is
//!   to reach: it never dials 127.0.0.0/8 (it accepts connections from there).
//! - `start_seeder(client, torrent: &Path, data_dir: &Path, &Placement) -> RunningClient`,
//!   `start_leecher(client, torrent, download_dir, &Placement) -> RunningClient`, and
//!   `start(client, Role, torrent, dir, &Placement, &Options) -> RunningClient` with [`Options`] (upload and
//!   download limits in bytes/s, peers to dial at start, whether a seeder waits for its first announce,
//!   startup bound, self-exit safety net). `dir` is the *save folder*: the one holding the torrent's name
//!   (a multi-file torrent `NAME` lives in `dir/NAME/`). A seeder is returned once it has verified every
//!   piece and (by default) a tracker has answered its first announce, so a leecher started next finds it;
//!   a leecher once its client runs with the torrent added (it seeds on after completing). Both fail the
//!   test, with the client's log, when that does not happen within `Options::startup_timeout`.
//! - [`RunningClient`]: `listen_addr() -> SocketAddr`, `info_hash() -> &str`, `pid()`,
//!   `status() -> Result<Status, String>` ([`Status`]: complete, progress, uploaded and downloaded bytes,
//!   announced, paused, state, error, from the client's own report), `wait_status(what, timeout, predicate)`,
//!   `wait_complete(timeout) -> Result<(), String>` (every piece verified and on disk),
//!   `wait_announced(timeout)`, `add_peer(SocketAddr) -> Result<(), String>` (libtorrent `connect_peer`,
//!   qBittorrent `torrents/addPeers`; aria2 and Transmission cannot), `pause()` / `pause_and_wait(timeout)`
//!   (the torrent stops and the tracker is told `stopped`; the client stays up), `log_tail() -> String`
//!   (stdout, stderr, log file and the client's own view of trackers and peers). DHT (libtorrent and aria2,
//!   with `Options::dht_bootstrap`; `Options::no_trackers` leaves the DHT as the only source of peers):
//!   `dht_addr()`, `dht_table()` (libtorrent's routing table), `shutdown(timeout)` (aria2 exits gracefully,
//!   writing its routing table) and `aria2_saved_dht_nodes()`; see [`super::dht`]. Dropping it kills the
//!   client by PID and process group and removes its configuration folder; every process also gets SIGKILL
//!   when the thread that started it ends (`setpriv --pdeathsig`). Every wait is bounded.
//!
//! How each is driven, and facts learnt on Debian 12 (2 cores, loopback; times from start to ready):
//! - libtorrent: `lt_tool.py seed` prints `seeding` after its full hash check; `download` prints `ready`,
//!   `progress` each second and `complete` once the finished torrent's cache is flushed, then seeds on. Both
//!   print `announced` per tracker reply and take `connect IP:PORT`, `pause` and `resume` on stdin. Its rate
//!   limits leave local peers (loopback, private ranges) out unless the peer class filter puts every address
//!   in the global class, which lt_tool does. Ready in 0.1-0.5 s; 3.5 MB from it or to it in 0.3 s.
//! - aria2: `--check-integrity=true --seed-ratio=0.0` seeds forever (and keeps seeding after a download);
//!   `--interface=IP` binds its peer listener, outgoing and tracker sockets to the placement's address;
//!   `--disk-cache=0` so that a completed download is on disk; status from `aria2.tellStatus` on its RPC
//!   port (127.0.0.1), the download given a fixed GID. It says nothing of tracker replies over RPC:
//!   `announced` comes from its info log (a `DefaultBtAnnounce.cc` line per HTTP reply, `UDPT received
//!   ANNOUNCE reply` per UDP one). It speaks UDP tracker only through its DHT socket, so with a `udp://`
//!   tracker its DHT is on, with no entry point (it then sends no DHT message). Seeder ready in 1.3 s.
//! - Transmission: its own config folder (`-g`), `cache-size-mb` 0, `bind-address-ipv4` the placement's
//!   address (its tracker requests leave from there too), RPC on 127.0.0.1; adding a torrent whose data
//!   exists verifies it by itself (state `Idle` at 100% when seeding). It accepts peers from 127.0.0.1, so it
//!   seeds on loopback. It unchokes only on its 10-second cycle, seeding as well as leeching: 12-17 s pass
//!   before a transfer of any size completes. Does not create 0-byte files. Sizes in `transmission-remote
//!   -i` are rounded to three digits (kB = 1000 B). Seeder ready in 1.5 s.
//! - qBittorrent: a `--profile` folder whose `qBittorrent.conf` is written before the first start: legal
//!   notice accepted, Web UI on 127.0.0.1 with no authentication for localhost, DHT, LSD, PeX, UPnP/NAT-PMP
//!   off, TCP only, several connections per IP allowed, queueing off, peer-country lookup off (else it tries
//!   to download a GeoIP database at start), `InterfaceAddress` the placement's address (it then listens
//!   there only, and its connections and tracker requests leave from there). Torrents added by
//!   `torrents/add` (multipart) with `savepath`; existing data is checked before seeding. Its Web server
//!   keeps the connection open after a response despite `Connection: close`, so the HTTP helper reads
//!   `Content-Length` bytes rather than to the end. Web API up in 0.2 s; seeder ready in 1.7-3 s.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::dht::{lt_table, read_aria2_dht_dat, SavedNode, TableNode};
use super::http::{self, Request};
use super::netns::{Net, Netns};
use super::payload::inspect;
use super::proc::Proc;
use super::{
    file_tail, free_port, free_udp_port, lt_tool_path, require_root, require_tools, run_with_timeout,
    COMMAND_TIMEOUT, PYTHON,
};

/// A real BitTorrent client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Libtorrent,
    Aria2,
    Transmission,
    Qbittorrent,
}

impl Client {
    pub const ALL: [Client; 4] = [
        Client::Libtorrent,
        Client::Aria2,
        Client::Transmission,
        Client::Qbittorrent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Client::Libtorrent => "libtorrent",
            Client::Aria2 => "aria2",
            Client::Transmission => "Transmission",
            Client::Qbittorrent => "qBittorrent",
        }
    }

    /// The programs it needs on PATH (besides what [`require_tools`] always checks).
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            Client::Libtorrent => &[],
            Client::Aria2 => &["aria2c"],
            Client::Transmission => &["transmission-daemon", "transmission-remote"],
            Client::Qbittorrent => &["qbittorrent-nox"],
        }
    }

    /// Fails the test (never skips) when its programs are missing.
    pub fn require(self) {
        require_tools(self.programs());
    }

    /// Whether it connects to peers on 127.0.0.0/8 (Transmission does not; it accepts them).
    pub fn dials_loopback(self) -> bool {
        self != Client::Transmission
    }

    /// Whether a download creates the torrent's 0-byte files (Transmission 3 does not).
    pub fn creates_empty_files(self) -> bool {
        self != Client::Transmission
    }

    /// Whether [`RunningClient::add_peer`] works for it.
    pub fn can_add_peers(self) -> bool {
        matches!(self, Client::Libtorrent | Client::Qbittorrent)
    }
}

/// Seeding what is in its folder, or downloading into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Seeder,
    Leecher,
}

/// Where a client runs and which address it listens on (and sends from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// This machine's loopback, 127.0.0.1.
    Loopback,
    /// Inside the network namespace `name`, at `ip` (on its `lo`).
    Netns { name: String, ip: Ipv4Addr },
}

impl Placement {
    /// At `ip` inside `ns` (the address is added to its `lo` when missing).
    pub fn in_netns(ns: &mut Netns, ip: Ipv4Addr) -> Placement {
        ns.add_addr(ip);
        Placement::Netns {
            name: ns.name().to_string(),
            ip,
        }
    }

    pub fn ip(&self) -> Ipv4Addr {
        match self {
            Placement::Loopback => Ipv4Addr::LOCALHOST,
            Placement::Netns { ip, .. } => *ip,
        }
    }

    pub fn net(&self) -> Net {
        match self {
            Placement::Loopback => Net::Loopback,
            Placement::Netns { name, .. } => Net::Netns(name.clone()),
        }
    }
}

/// How to start a client; `Options::default()` suits most tests.
#[derive(Clone, Debug)]
pub struct Options {
    /// Upload limit in bytes per second (rounded up to the client's unit: KiB/s for qBittorrent, kB/s for
    /// Transmission).
    pub upload_limit: Option<u64>,
    /// Download limit in bytes per second.
    pub download_limit: Option<u64>,
    /// Peers to connect to once the torrent is added, besides the tracker's (libtorrent and qBittorrent
    /// only: starting aria2 or Transmission with peers fails the test).
    pub peers: Vec<SocketAddr>,
    /// For seeders: return only once the client reports a tracker reply (where it reports them: all but
    /// aria2 over RPC, for which its log is read). Default true.
    pub wait_announced: bool,
    /// Bound on the whole start (process up, torrent added, data verified, first announce).
    pub startup_timeout: Duration,
    /// A safety net when a test process dies without dropping the client: libtorrent and aria2 exit by
    /// themselves after this long. (Everything also gets SIGKILL when the starting thread ends.)
    pub self_timeout: Duration,
    /// DHT nodes to join through (libtorrent and aria2 only): empty leaves the DHT off. libtorrent gets
    /// each with `add_dht_node` (kept in its routing table once it answers); aria2 takes the first as its
    /// `--dht-entry-point`. Either listens for the DHT on the placement's address
    /// ([`RunningClient::dht_addr`]).
    pub dht_bootstrap: Vec<SocketAddr>,
    /// Drop the torrent's trackers (libtorrent `replace_trackers([])`, aria2 `--bt-exclude-tracker=*`):
    /// peers come from the DHT (or `peers`) only. A seeder then waits for no announce.
    pub no_trackers: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            upload_limit: None,
            download_limit: None,
            peers: Vec::new(),
            wait_announced: true,
            startup_timeout: Duration::from_secs(60),
            self_timeout: Duration::from_secs(600),
            dht_bootstrap: Vec::new(),
            no_trackers: false,
        }
    }
}

/// What a client says of its torrent at one moment.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Every piece verified (and, for a download, written to disk as far as the client tells).
    pub complete: bool,
    /// 0.0 to 1.0.
    pub progress: f64,
    pub uploaded: u64,
    pub downloaded: u64,
    /// Whether a tracker has answered an announce; None when the client does not say.
    pub announced: Option<bool>,
    /// Paused or stopped by [`RunningClient::pause`] (the trackers told `stopped`).
    pub paused: bool,
    /// The client's own word for its state.
    pub state: String,
    /// Set when the client reports an error, or has exited.
    pub error: Option<String>,
}

/// Per-client details of a running client.
enum Kind {
    Libtorrent,
    Aria2 {
        rpc: String,
        gid: String,
        log: PathBuf,
        /// Its DHT's UDP port and routing-table file, when its DHT is on.
        dht: Option<(u16, PathBuf)>,
    },
    Transmission {
        rpc: String,
    },
    Qbittorrent {
        api: String,
        log: PathBuf,
    },
}

/// A client running one torrent; killed (PID and process group) and its config folder removed on drop.
pub struct RunningClient {
    client: Client,
    role: Role,
    placement: Placement,
    info_hash: String,
    listen: SocketAddr,
    kind: Kind,
    proc: Proc,
    /// Config, profile and log folder; removed after `proc` is killed (fields drop in order).
    config: TempDir,
}

/// Starts `client` seeding `torrent` from `data_dir` (the folder holding the torrent's name) with default
/// [`Options`]; returns once it seeds and has announced.
pub fn start_seeder(client: Client, torrent: &Path, data_dir: &Path, placement: &Placement) -> RunningClient {
    start(
        client,
        Role::Seeder,
        torrent,
        data_dir,
        placement,
        &Options::default(),
    )
}

/// Starts `client` downloading `torrent` into `download_dir` with default [`Options`]; returns once the
/// torrent is added. It goes on seeding after completing.
pub fn start_leecher(
    client: Client,
    torrent: &Path,
    download_dir: &Path,
    placement: &Placement,
) -> RunningClient {
    start(
        client,
        Role::Leecher,
        torrent,
        download_dir,
        placement,
        &Options::default(),
    )
}

/// Starts `client` in `role` for `torrent`, with `dir` its save folder; see the module documentation.
pub fn start(
    client: Client,
    role: Role,
    torrent: &Path,
    dir: &Path,
    placement: &Placement,
    opts: &Options,
) -> RunningClient {
    client.require();
    if let Placement::Netns { .. } = placement {
        require_root("a client placed in a network namespace");
    }
    assert!(
        opts.peers.is_empty() || client.can_add_peers(),
        "{} cannot be given peers directly",
        client.name()
    );
    assert!(
        (opts.dht_bootstrap.is_empty() && !opts.no_trackers)
            || matches!(client, Client::Libtorrent | Client::Aria2),
        "{} is not driven with DHT or without trackers here",
        client.name()
    );
    fs::create_dir_all(dir).unwrap();
    let info = inspect(torrent);
    let info_hash = info["info_hash_v1"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: not a v1 torrent: {info}", torrent.display()))
        .to_ascii_lowercase();
    let config = tempfile::Builder::new()
        .prefix(&format!("bsw-{}-", client.name().to_ascii_lowercase()))
        .tempdir()
        .unwrap();
    let torrent = fs::canonicalize(torrent).unwrap();
    let dir = fs::canonicalize(dir).unwrap();
    let started = Instant::now();
    let udp_tracker = has_udp_tracker(&info);
    let mut rc = match client {
        Client::Libtorrent => start_libtorrent(role, &torrent, &dir, placement, opts, info_hash, config),
        Client::Aria2 => start_aria2(
            role,
            &torrent,
            &dir,
            placement,
            opts,
            info_hash,
            config,
            udp_tracker,
        ),
        Client::Transmission => start_transmission(role, &torrent, &dir, placement, opts, info_hash, config),
        Client::Qbittorrent => start_qbittorrent(role, &torrent, &dir, placement, opts, info_hash, config),
    };
    let left = |t: Duration| t.saturating_sub(started.elapsed());
    match role {
        Role::Seeder => {
            if let Err(e) = rc.wait_status("seeding", left(opts.startup_timeout), |s| s.complete) {
                panic!("{} seeder did not start: {e}", client.name());
            }
            if opts.wait_announced && !opts.no_trackers {
                if let Err(e) = rc.wait_announced(left(opts.startup_timeout)) {
                    panic!("{} seeder: {e}", client.name());
                }
            }
        }
        Role::Leecher => {
            if let Err(e) = rc.wait_status("running", left(opts.startup_timeout), |_| true) {
                panic!("{} leecher did not start: {e}", client.name());
            }
        }
    }
    for peer in &opts.peers {
        if client == Client::Qbittorrent {
            if let Err(e) = rc.add_peer(*peer) {
                panic!("{e}");
            }
        }
    }
    rc
}

/// Whether the torrent (as `bitswarm inspect --json` shows it) has a `udp://` tracker.
fn has_udp_tracker(info: &Value) -> bool {
    info["trackers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|tier| tier.as_array().into_iter().flatten())
        .any(|url| url.as_str().is_some_and(|u| u.starts_with("udp://")))
}

/// Starts libtorrent or aria2 downloading what `magnet` names (lowercase hex `info_hash`) into
/// `download_dir`: the metadata comes from peers first (BEP 9). libtorrent is returned once the metadata is
/// here and the files are checked (its `ready`), aria2 once its RPC answers. Both go on seeding after
/// completing. Options as for [`start`] (libtorrent dials `opts.peers` at once, for the metadata).
///
/// aria2 1.36 announces a magnet download with `left=0`, so a tracker that gives seeds no seeds (bitswarm's,
/// like most) lists it no peer until the metadata is here: a seeder must dial it (`--peer`) for the
/// metadata; after that aria2 announces the real `left` and finds the seeder. Its metadata download ends
/// ("complete") and is followed by the real one under another GID, which its status then follows.
pub fn start_magnet_leecher(
    client: Client,
    magnet: &str,
    info_hash: &str,
    download_dir: &Path,
    placement: &Placement,
    opts: &Options,
) -> RunningClient {
    client.require();
    assert!(
        matches!(client, Client::Libtorrent | Client::Aria2),
        "{} is not driven by magnet link here",
        client.name()
    );
    // A bare magnet link (no `tr=`) finds peers through the DHT, or through `opts.peers`.
    fs::create_dir_all(download_dir).unwrap();
    let config = tempfile::Builder::new()
        .prefix(&format!("bsw-{}-", client.name().to_ascii_lowercase()))
        .tempdir()
        .unwrap();
    let dir = fs::canonicalize(download_dir).unwrap();
    let target = Path::new(magnet);
    let info_hash = info_hash.to_ascii_lowercase();
    let mut rc = match client {
        Client::Libtorrent => {
            start_libtorrent(Role::Leecher, target, &dir, placement, opts, info_hash, config)
        }
        _ => {
            let udp = magnet.contains("tr=udp");
            start_aria2(
                Role::Leecher,
                target,
                &dir,
                placement,
                opts,
                info_hash,
                config,
                udp,
            )
        }
    };
    if let Err(e) = rc.wait_status("running", opts.startup_timeout, |_| true) {
        panic!("{} magnet leecher did not start: {e}", client.name());
    }
    rc
}

impl RunningClient {
    pub fn client(&self) -> Client {
        self.client
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The torrent's v1 info-hash, lowercase hex.
    pub fn info_hash(&self) -> &str {
        &self.info_hash
    }

    /// Where it accepts peer connections.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Its config, profile and log folder (removed on drop).
    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    /// Where its DHT listens (UDP), when [`Options::dht_bootstrap`] turned it on: libtorrent's listen
    /// port (as its `dht_port` event says), aria2's `--dht-listen-port`.
    pub fn dht_addr(&mut self) -> Option<SocketAddr> {
        let port = match &self.kind {
            Kind::Aria2 { dht, .. } => dht.as_ref().map(|(port, _)| *port),
            Kind::Libtorrent => self
                .libtorrent_events()
                .iter()
                .find_map(|v| (v["event"] == "dht_port").then(|| u16::try_from(v["port"].as_u64()?).ok())?),
            _ => None,
        }?;
        Some(socket(&self.placement, port))
    }

    /// libtorrent's DHT routing table as it last reported it (once a second while it changes): its own
    /// node id and the nodes. None for other clients, or before the first report.
    pub fn dht_table(&mut self) -> Option<(String, Vec<TableNode>)> {
        match self.kind {
            Kind::Libtorrent => {
                self.proc.drain();
                lt_table(&self.proc.seen)
            }
            _ => None,
        }
    }

    /// Ends aria2 gracefully (`aria2.shutdown` over RPC: it stops 3 seconds later, exiting 0, or 7 with a
    /// download unfinished) and waits at most `timeout` for it to exit: it then writes its DHT routing table ([`RunningClient::aria2_saved_dht_nodes`]). Other clients: an
    /// error.
    pub fn shutdown(&mut self, timeout: Duration) -> Result<(), String> {
        if !matches!(self.kind, Kind::Aria2 { .. }) {
            return Err(format!("{} has no graceful shutdown here", self.client.name()));
        }
        self.aria2_call("aria2.shutdown", serde_json::json!([]))?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.proc.try_wait() {
                // Exit code 7: "there were unfinished downloads" (a download in progress is one).
                return if status.success() || status.code() == Some(7) {
                    Ok(())
                } else {
                    Err(format!(
                        "aria2 exited with {status} after aria2.shutdown\n{}",
                        self.log_tail()
                    ))
                };
            }
            if started.elapsed() >= timeout {
                return Err(format!(
                    "aria2 did not exit within {timeout:?} of aria2.shutdown\n{}",
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The nodes aria2 saved in its `dht.dat` (written when it exits gracefully: see
    /// [`RunningClient::shutdown`]).
    pub fn aria2_saved_dht_nodes(&self) -> Result<Vec<SavedNode>, String> {
        match &self.kind {
            Kind::Aria2 {
                dht: Some((_, file)), ..
            } => read_aria2_dht_dat(file),
            _ => Err(format!("{}: no aria2 DHT here", self.client.name())),
        }
    }

    /// What the client says now; an error when it cannot be asked (it has exited, its RPC fails).
    pub fn status(&mut self) -> Result<Status, String> {
        if let Some(exit) = self.proc.try_wait() {
            return Err(format!("{} exited ({exit})", self.client.name()));
        }
        match self.kind {
            Kind::Libtorrent => Ok(self.libtorrent_status()),
            Kind::Aria2 { .. } => self.aria2_status(),
            Kind::Transmission { .. } => self.transmission_status(),
            Kind::Qbittorrent { .. } => self.qbittorrent_status(),
        }
    }

    /// Polls [`RunningClient::status`] until `done` holds; fails on a reported error or after `timeout`.
    pub fn wait_status(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Status) -> bool,
    ) -> Result<Status, String> {
        let started = Instant::now();
        loop {
            let status = self.status();
            match &status {
                Ok(s) if s.error.is_some() => {
                    let report = self.log_tail();
                    return Err(format!(
                        "{} reports an error while waiting for {what}: {s:?}\n{report}",
                        self.client.name()
                    ));
                }
                Ok(s) if done(s) => return status,
                Err(e) if self.proc.try_wait().is_some() => {
                    let e = e.clone();
                    let report = self.log_tail();
                    return Err(format!("{e} while waiting for {what}\n{report}"));
                }
                _ => {}
            }
            if started.elapsed() >= timeout {
                let report = self.log_tail();
                return Err(format!(
                    "{}: not {what} within {timeout:?}; last status {status:?}\n{report}",
                    self.client.name()
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every piece is verified and on disk (a seeder already is).
    pub fn wait_complete(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_status("complete", timeout, |s| s.complete).map(|_| ())
    }

    /// Waits until a tracker has answered an announce. Immediate success for a client that does not say
    /// (check the tracker's own view instead).
    pub fn wait_announced(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_status("announced", timeout, |s| s.announced != Some(false))
            .map(|_| ())
    }

    /// Makes the client connect to `addr` (libtorrent `connect_peer`, qBittorrent `torrents/addPeers`).
    pub fn add_peer(&mut self, addr: SocketAddr) -> Result<(), String> {
        match &self.kind {
            Kind::Libtorrent => self.proc.send_line(&format!("connect {addr}")),
            Kind::Qbittorrent { api, .. } => {
                let url = format!("{api}/api/v2/torrents/addPeers");
                let peers = addr.to_string();
                let req = Request::post_form(&url, &[("hashes", &self.info_hash), ("peers", &peers)]);
                match http::request(&self.placement.net(), &req) {
                    Ok((200, _)) => Ok(()),
                    Ok((status, body)) => Err(format!(
                        "qBittorrent addPeers {addr}: status {status}: {}",
                        String::from_utf8_lossy(&body)
                    )),
                    Err(e) => Err(format!("qBittorrent addPeers {addr}: {e}")),
                }
            }
            _ => Err(format!(
                "{} cannot be told to connect to a peer",
                self.client.name()
            )),
        }
    }

    /// Pauses (stops) the torrent, the client staying up: it tells the trackers `stopped` and closes its
    /// files. [`Status::paused`] says when it is done; [`RunningClient::pause_and_wait`] waits for it.
    pub fn pause(&mut self) -> Result<(), String> {
        let hash = self.info_hash.clone();
        match &self.kind {
            Kind::Libtorrent => self.proc.send_line("pause"),
            Kind::Aria2 { gid, .. } => {
                let gid = gid.clone();
                self.aria2_call("aria2.pause", serde_json::json!([gid]))
                    .map(|_| ())
            }
            Kind::Transmission { .. } => {
                let out = self.transmission_remote(&["-t", &hash, "-S"]);
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if out.status.success() && text.contains("success") {
                    Ok(())
                } else {
                    Err(format!(
                        "transmission-remote -S failed ({}): {text}{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            }
            Kind::Qbittorrent { api, .. } => {
                let url = format!("{api}/api/v2/torrents/pause");
                let req = Request::post_form(&url, &[("hashes", &hash)]);
                match http::request(&self.placement.net(), &req) {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("qBittorrent torrents/pause: {other:?}")),
                }
            }
        }
    }

    /// [`RunningClient::pause`], then waits until the client reports the torrent paused.
    pub fn pause_and_wait(&mut self, timeout: Duration) -> Result<(), String> {
        self.pause()?;
        self.wait_status("paused", timeout, |s| s.paused).map(|_| ())
    }

    /// The end of what the client printed and logged, for failure messages.
    pub fn log_tail(&mut self) -> String {
        let mut out = format!(
            "--- {} {:?} at {} (pid {}) ---\n",
            self.client.name(),
            self.role,
            self.listen,
            self.proc.pid()
        );
        out.push_str(&self.proc.report());
        let hash = self.info_hash.clone();
        match &self.kind {
            Kind::Aria2 { log, gid, .. } => {
                let _ = write!(out, "\naria2 log (end):\n{}", aria2_log_tail(log, 40));
                let gid = gid.clone();
                let peers = self.aria2_call("aria2.getPeers", serde_json::json!([gid]));
                let _ = write!(out, "\naria2 peers: {peers:?}");
            }
            Kind::Qbittorrent { log, .. } => {
                let _ = write!(out, "\nqBittorrent log (end):\n{}", file_tail(log, 30));
                for path in [
                    format!("/api/v2/torrents/trackers?hash={hash}"),
                    format!("/api/v2/sync/torrentPeers?hash={hash}&rid=0"),
                ] {
                    let _ = write!(out, "\nqBittorrent {path}: {:?}", self.qbittorrent_get(&path));
                }
            }
            Kind::Transmission { .. } => {
                for flag in ["-it", "-ip"] {
                    let o = self.transmission_remote(&["-t", &hash, flag]);
                    let _ = write!(
                        out,
                        "\ntransmission-remote {flag}:\n{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
            Kind::Libtorrent => {}
        }
        out
    }

    // -----------------------------------------------------------------------------------------------------
    // libtorrent

    fn libtorrent_events(&mut self) -> Vec<Value> {
        self.proc.drain();
        self.proc
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn libtorrent_status(&mut self) -> Status {
        let events = self.libtorrent_events();
        let mut s = Status::default();
        let mut announced = false;
        for v in &events {
            let num = |key: &str| v[key].as_u64().unwrap_or(0);
            match v["event"].as_str().unwrap_or_default() {
                "seeding" => {
                    s.complete = true;
                    s.progress = 1.0;
                    s.state = "seeding".into();
                }
                "ready" => {
                    s.state = "ready".into();
                    s.progress = ratio(num("pieces"), num("num_pieces"));
                }
                "progress" => {
                    s.progress = ratio(num("pieces"), num("num_pieces"));
                    s.downloaded = num("downloaded");
                    s.state = v["state"].as_str().unwrap_or_default().to_string();
                }
                "complete" => {
                    s.complete = true;
                    s.progress = 1.0;
                }
                "uploaded" => s.uploaded = s.uploaded.max(num("bytes")),
                "paused" => s.paused = true,
                "resumed" => s.paused = false,
                "announced" => announced = true,
                "error" | "timeout" => {
                    s.error.get_or_insert_with(|| v.to_string());
                }
                _ => {}
            }
        }
        s.announced = Some(announced);
        s
    }

    // -----------------------------------------------------------------------------------------------------
    // aria2

    fn aria2_call(&self, method: &str, params: Value) -> Result<Value, String> {
        let Kind::Aria2 { rpc, .. } = &self.kind else {
            unreachable!()
        };
        let body = serde_json::json!({"jsonrpc": "2.0", "id": "t", "method": method, "params": params});
        let req = Request::post(rpc, "application/json", body.to_string().into_bytes());
        let (status, body) = http::request(&self.placement.net(), &req)?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "aria2 {method}: status {status}, not JSON ({e}): {:?}",
                String::from_utf8_lossy(&body)
            )
        })?;
        if let Some(err) = v.get("error") {
            return Err(format!("aria2 {method}: {err}"));
        }
        Ok(v["result"].clone())
    }

    fn aria2_status(&mut self) -> Result<Status, String> {
        let Kind::Aria2 { gid, log, .. } = &self.kind else {
            unreachable!()
        };
        let gid = gid.clone();
        let log = log.clone();
        let mut r = self.aria2_call("aria2.tellStatus", serde_json::json!([gid]))?;
        // A magnet link's metadata download is followed by the real one, under another GID.
        if let Some(next) = r["followedBy"].get(0).and_then(Value::as_str).map(str::to_string) {
            r = self.aria2_call("aria2.tellStatus", serde_json::json!([next]))?;
        }
        let num = |key: &str| r[key].as_str().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        let state = r["status"].as_str().unwrap_or_default().to_string();
        let total = num("totalLength");
        let done = num("completedLength");
        let checking = r.get("verifiedLength").is_some() || r.get("verifyIntegrityPending").is_some();
        let error = match state.as_str() {
            "error" | "removed" => Some(format!(
                "{state}: {} (code {})",
                r["errorMessage"].as_str().unwrap_or_default(),
                r["errorCode"].as_str().unwrap_or_default()
            )),
            _ => None,
        };
        // Over RPC aria2 says nothing of trackers. Its info log has a `DefaultBtAnnounce.cc` line for each
        // HTTP tracker reply it processes ("No peers6 received." when the reply has no IPv6 list, as the
        // bitswarm tracker's have not, "No peer list received.", warnings), and a line per UDP reply.
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        let announced =
            log_text.contains("[DefaultBtAnnounce.cc") || log_text.contains("UDPT received ANNOUNCE reply");
        Ok(Status {
            complete: total > 0
                && done == total
                && !checking
                && matches!(state.as_str(), "active" | "complete"),
            progress: ratio(done, total),
            uploaded: num("uploadLength"),
            downloaded: done,
            announced: Some(announced),
            paused: state == "paused",
            state,
            error,
        })
    }

    // -----------------------------------------------------------------------------------------------------
    // Transmission

    fn transmission_remote(&self, args: &[&str]) -> Output {
        let Kind::Transmission { rpc } = &self.kind else {
            unreachable!()
        };
        transmission_remote(&self.placement.net(), rpc, args)
    }

    fn transmission_status(&mut self) -> Result<Status, String> {
        let out = self.transmission_remote(&["-t", &self.info_hash, "-i"]);
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "transmission-remote -i failed ({}): {raw}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let field = |key: &str| {
            raw.lines()
                .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
        };
        if field("Hash:").as_deref() != Some(self.info_hash.as_str()) {
            return Err(format!("transmission-remote -i: wrong or no torrent:\n{raw}"));
        }
        let percent: f64 = field("Percent Done:")
            .and_then(|p| p.trim_end_matches('%').parse().ok())
            .ok_or_else(|| format!("transmission-remote -i: no Percent Done:\n{raw}"))?;
        let state = field("State:").unwrap_or_default();
        let trackers = self.transmission_remote(&["-t", &self.info_hash, "-it"]);
        let trackers = String::from_utf8_lossy(&trackers.stdout);
        Ok(Status {
            complete: percent >= 100.0 && !state.contains("Verif") && !state.contains("check"),
            progress: percent / 100.0,
            uploaded: field("Uploaded:").map_or(0, |v| parse_size(&v)),
            downloaded: field("Downloaded:").map_or(0, |v| parse_size(&v)),
            announced: Some(trackers.contains("Got a list of")),
            paused: state == "Stopped",
            state,
            error: field("Error:"),
        })
    }

    // -----------------------------------------------------------------------------------------------------
    // qBittorrent

    fn qbittorrent_get(&self, path: &str) -> Result<Value, String> {
        let Kind::Qbittorrent { api, .. } = &self.kind else {
            unreachable!()
        };
        let url = format!("{api}{path}");
        match http::request(&self.placement.net(), &Request::get(&url))? {
            (200, body) => serde_json::from_slice(&body)
                .map_err(|e| format!("GET {url}: not JSON ({e}): {:?}", String::from_utf8_lossy(&body))),
            (status, body) => Err(format!(
                "GET {url}: status {status}: {:?}",
                String::from_utf8_lossy(&body)
            )),
        }
    }

    fn qbittorrent_status(&mut self) -> Result<Status, String> {
        let hash = self.info_hash.clone();
        let list = self.qbittorrent_get(&format!("/api/v2/torrents/info?hashes={hash}"))?;
        let t = list
            .as_array()
            .and_then(|a| a.first())
            .ok_or_else(|| format!("qBittorrent does not list {hash} (yet): {list}"))?;
        let state = t["state"].as_str().unwrap_or_default().to_string();
        let progress = t["progress"].as_f64().unwrap_or(0.0);
        let error = match state.as_str() {
            "error" | "missingFiles" => Some(format!("state {state}: {t}")),
            _ => None,
        };
        let trackers = self.qbittorrent_get(&format!("/api/v2/torrents/trackers?hash={hash}"))?;
        // Status 2 is "working": the tracker answered. DHT, PeX and LSD rows have URLs like "** [DHT] **".
        let announced = trackers.as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                let url = r["url"].as_str().unwrap_or_default();
                (url.starts_with("http") || url.starts_with("udp")) && r["status"] == 2
            })
        });
        Ok(Status {
            complete: progress >= 1.0
                && !state.starts_with("checking")
                && !matches!(state.as_str(), "metaDL" | "allocating" | "moving"),
            progress,
            uploaded: t["uploaded"].as_u64().unwrap_or(0),
            downloaded: t["downloaded"].as_u64().unwrap_or(0),
            announced: Some(announced),
            paused: state.starts_with("paused"),
            state,
            error,
        })
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        // Killed before `config` (its folder) is removed.
        self.proc.kill();
    }
}

/// The end of aria2's info log without the RPC traffic (each status poll logs a request of eight lines).
fn aria2_log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut kept = Vec::new();
    let mut in_rpc = false;
    for line in text.lines() {
        // Entries start with a timestamp ("2026-..."); a request's head continues on lines without one.
        if line.starts_with("20") {
            in_rpc = ["HttpListenCommand", "HttpServer", "rpc_helper"]
                .iter()
                .any(|m| line.contains(m));
        }
        if !in_rpc {
            kept.push(line);
        }
    }
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Transmission's rounded sizes ("None", "512 B", "4.2 MB", "1.1 GB"; kB = 1000 bytes), in bytes.
fn parse_size(text: &str) -> u64 {
    let mut parts = text.split_whitespace();
    let (Some(n), Some(unit)) = (parts.next(), parts.next()) else {
        return 0;
    };
    let Ok(n) = n.parse::<f64>() else { return 0 };
    let scale = match unit {
        "B" => 1.0,
        "kB" | "KB" | "KiB" => 1e3,
        "MB" | "MiB" => 1e6,
        "GB" | "GiB" => 1e9,
        "TB" | "TiB" => 1e12,
        _ => return 0,
    };
    (n * scale) as u64
}

fn socket(placement: &Placement, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(placement.ip()), port)
}

// ---------------------------------------------------------------------------------------------------------
// Starting each client

fn start_libtorrent(
    role: Role,
    torrent: &Path,
    dir: &Path,
    placement: &Placement,
    opts: &Options,
    info_hash: String,
    config: TempDir,
) -> RunningClient {
    let mut cmd = placement.net().command(true, PYTHON);
    cmd.arg(lt_tool_path())
        .arg(match role {
            Role::Seeder => "seed",
            Role::Leecher => "download",
        })
        .arg(torrent)
        .arg(dir)
        .args(["--listen", &format!("{}:0", placement.ip())])
        .args(["--timeout", &opts.self_timeout.as_secs().to_string()])
        .args(["--upload-limit", &opts.upload_limit.unwrap_or(0).to_string()])
        .args(["--download-limit", &opts.download_limit.unwrap_or(0).to_string()]);
    for peer in &opts.peers {
        cmd.args(["--peer", &peer.to_string()]);
    }
    for node in &opts.dht_bootstrap {
        cmd.args(["--dht-bootstrap", &node.to_string()]);
    }
    if opts.no_trackers {
        cmd.arg("--no-trackers");
    }
    let name = format!("libtorrent {}", role_name(role));
    let mut proc = Proc::spawn_with_stdin(&name, cmd, config.path());
    let first = match role {
        Role::Seeder => "seeding",
        Role::Leecher => "ready",
    };
    let port = proc.wait_line(&format!("{first} event"), opts.startup_timeout, |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        if v["event"] == "error" {
            panic!("{name}: {v}");
        }
        (v["event"] == first).then(|| v["port"].as_u64().unwrap())
    });
    RunningClient {
        client: Client::Libtorrent,
        role,
        placement: placement.clone(),
        info_hash,
        listen: socket(placement, u16::try_from(port).unwrap()),
        kind: Kind::Libtorrent,
        proc,
        config,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Seeder => "seeder",
        Role::Leecher => "leecher",
    }
}

#[allow(clippy::too_many_arguments)]
fn start_aria2(
    role: Role,
    torrent: &Path,
    dir: &Path,
    placement: &Placement,
    opts: &Options,
    info_hash: String,
    config: TempDir,
    udp_tracker: bool,
) -> RunningClient {
    let port = free_port();
    let rpc_port = free_port();
    let gid = "b175a4a000000001".to_string();
    let log = config.path().join("aria2.log");
    let mut cmd = placement.net().command(true, "aria2c");
    cmd.arg("--no-conf=true")
        .arg(format!("--dir={}", dir.display()))
        .arg(format!("--log={}", log.display()))
        .args([
            "--log-level=info",
            "--console-log-level=warn",
            "--summary-interval=0",
        ])
        .args(["--enable-color=false", "--show-console-readout=false"])
        .arg("--enable-dht6=false")
        .args(["--bt-enable-lpd=false", "--enable-peer-exchange=false"])
        .args(["--disable-ipv6=true", "--file-allocation=none"])
        .arg(format!("--interface={}", placement.ip()))
        .arg(format!("--listen-port={port}"))
        .args(["--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=10"])
        // Seed forever: after a download too (a leecher stays in the swarm as a seed).
        .arg("--seed-ratio=0.0")
        // Existing data is verified (a seeder's, or a partial download's) before anything else.
        .args(["--check-integrity=true", "--bt-seed-unverified=false"])
        // Nothing held in memory: a completed download is on disk.
        .arg("--disk-cache=0")
        .args(["--auto-file-renaming=false", "--allow-overwrite=true"])
        .args(["--enable-rpc=true", "--rpc-listen-all=false"])
        .arg(format!("--rpc-listen-port={rpc_port}"))
        .arg(format!("--gid={gid}"))
        .arg(format!("--stop={}", opts.self_timeout.as_secs()));
    let dht = if udp_tracker || !opts.dht_bootstrap.is_empty() {
        // aria2 speaks UDP tracker only through its DHT socket ("udp is not supported yet" otherwise). With
        // no entry point and an empty routing table its DHT knows nobody and sends nothing.
        let dht_port = free_udp_port();
        let dht_file = config.path().join("dht.dat");
        cmd.arg("--enable-dht=true")
            .arg(format!("--dht-listen-port={dht_port}"))
            .arg(format!("--dht-file-path={}", dht_file.display()));
        // It takes one entry point.
        if let Some(entry) = opts.dht_bootstrap.first() {
            cmd.arg(format!("--dht-entry-point={entry}"));
        }
        Some((dht_port, dht_file))
    } else {
        cmd.arg("--enable-dht=false");
        None
    };
    if opts.no_trackers {
        cmd.arg("--bt-exclude-tracker=*");
    }
    if let Some(limit) = opts.upload_limit {
        cmd.arg(format!("--max-overall-upload-limit={limit}"));
    }
    if let Some(limit) = opts.download_limit {
        cmd.arg(format!("--max-overall-download-limit={limit}"));
    }
    cmd.arg(torrent);
    let proc = Proc::spawn(&format!("aria2 {}", role_name(role)), cmd, config.path());
    RunningClient {
        client: Client::Aria2,
        role,
        placement: placement.clone(),
        info_hash,
        listen: socket(placement, port),
        kind: Kind::Aria2 {
            rpc: format!("http://127.0.0.1:{rpc_port}/jsonrpc"),
            gid,
            log,
            dht,
        },
        proc,
        config,
    }
}

fn transmission_remote(net: &Net, rpc: &str, args: &[&str]) -> Output {
    run_with_timeout(
        net.command(false, "transmission-remote").arg(rpc).args(args),
        COMMAND_TIMEOUT,
    )
}

fn start_transmission(
    role: Role,
    torrent: &Path,
    dir: &Path,
    placement: &Placement,
    opts: &Options,
    info_hash: String,
    config: TempDir,
) -> RunningClient {
    let port = free_port();
    let rpc_port = free_port();
    let settings_dir = config.path().join("transmission");
    fs::create_dir_all(&settings_dir).unwrap();
    // Transmission's speed unit is kB/s (1000 bytes).
    let kb = |limit: Option<u64>| limit.map_or(0, |b| b.div_ceil(1000).max(1));
    let settings = serde_json::json!({
        "rpc-enabled": true,
        "rpc-bind-address": "127.0.0.1",
        "rpc-port": rpc_port,
        "rpc-authentication-required": false,
        "rpc-whitelist-enabled": false,
        "rpc-host-whitelist-enabled": false,
        "bind-address-ipv4": placement.ip().to_string(),
        "bind-address-ipv6": "::1",
        "peer-port": port,
        "peer-port-random-on-start": false,
        "port-forwarding-enabled": false,
        "dht-enabled": false,
        "lpd-enabled": false,
        "pex-enabled": false,
        "utp-enabled": false,
        "blocklist-enabled": false,
        "download-dir": dir,
        "incomplete-dir-enabled": false,
        "watch-dir-enabled": false,
        "start-added-torrents": true,
        "cache-size-mb": 0,
        "speed-limit-up-enabled": opts.upload_limit.is_some(),
        "speed-limit-up": kb(opts.upload_limit),
        "speed-limit-down-enabled": opts.download_limit.is_some(),
        "speed-limit-down": kb(opts.download_limit),
        "alt-speed-enabled": false,
        "ratio-limit-enabled": false,
        "idle-seeding-limit-enabled": false,
        "download-queue-enabled": false,
        "seed-queue-enabled": false,
        "message-level": 2,
    });
    fs::write(
        settings_dir.join("settings.json"),
        serde_json::to_vec_pretty(&settings).unwrap(),
    )
    .unwrap();
    let mut cmd = placement.net().command(true, "transmission-daemon");
    cmd.arg("-f").arg("-g").arg(&settings_dir);
    let name = format!("Transmission {}", role_name(role));
    let proc = Proc::spawn(&name, cmd, config.path());
    let rpc = format!("127.0.0.1:{rpc_port}");
    let mut rc = RunningClient {
        client: Client::Transmission,
        role,
        placement: placement.clone(),
        info_hash,
        listen: socket(placement, port),
        kind: Kind::Transmission { rpc },
        proc,
        config,
    };
    // Its RPC answers once the session is up.
    let started = Instant::now();
    loop {
        if let Some(status) = rc.proc.try_wait() {
            panic!("{name} exited ({status}) at start\n{}", rc.log_tail());
        }
        if rc.transmission_remote(&["-l"]).status.success() {
            break;
        }
        assert!(
            started.elapsed() < opts.startup_timeout,
            "{name}: RPC did not answer within {:?}\n{}",
            opts.startup_timeout,
            rc.log_tail()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let torrent = torrent.to_str().unwrap();
    let dir = dir.to_str().unwrap();
    let added = rc.transmission_remote(&["-a", torrent, "-w", dir]);
    let text = String::from_utf8_lossy(&added.stdout).into_owned();
    if !(added.status.success() && text.contains("success")) {
        panic!(
            "{name}: transmission-remote -a failed ({}): {text}{}\n{}",
            added.status,
            String::from_utf8_lossy(&added.stderr),
            rc.log_tail()
        );
    }
    rc
}

fn start_qbittorrent(
    role: Role,
    torrent: &Path,
    dir: &Path,
    placement: &Placement,
    opts: &Options,
    info_hash: String,
    config: TempDir,
) -> RunningClient {
    let port = free_port();
    let web_port = free_port();
    let profile = config.path().join("profile");
    let conf_dir = profile.join("qBittorrent/config");
    fs::create_dir_all(&conf_dir).unwrap();
    let kib = |limit: Option<u64>| limit.map_or(0, |b| b.div_ceil(1024).max(1));
    let ip = placement.ip();
    let conf = format!(
        "[LegalNotice]\n\
         Accepted=true\n\
         \n\
         [BitTorrent]\n\
         Session\\DHTEnabled=false\n\
         Session\\LSDEnabled=false\n\
         Session\\PeXEnabled=false\n\
         Session\\Port={port}\n\
         Session\\InterfaceAddress={ip}\n\
         Session\\AnnounceIP={ip}\n\
         Session\\BTProtocol=TCP\n\
         Session\\MultiConnectionsPerIp=true\n\
         Session\\QueueingSystemEnabled=false\n\
         Session\\SSRFMitigation=false\n\
         Session\\AnnounceToAllTrackers=true\n\
         Session\\AddTorrentPaused=false\n\
         Session\\DefaultSavePath={dir}\n\
         Session\\GlobalUPSpeedLimit={up}\n\
         Session\\GlobalDLSpeedLimit={down}\n\
         \n\
         [Network]\n\
         PortForwardingEnabled=false\n\
         \n\
         [Preferences]\n\
         Connection\\UPnP=false\n\
         Connection\\ResolvePeerCountries=false\n\
         General\\Locale=en\n\
         WebUI\\Address=127.0.0.1\n\
         WebUI\\Port={web_port}\n\
         WebUI\\LocalHostAuth=false\n\
         WebUI\\CSRFProtection=false\n\
         WebUI\\HostHeaderValidation=false\n",
        dir = dir.display(),
        up = kib(opts.upload_limit),
        down = kib(opts.download_limit),
    );
    fs::write(conf_dir.join("qBittorrent.conf"), conf).unwrap();
    let mut cmd = placement.net().command(true, "qbittorrent-nox");
    cmd.arg(format!("--profile={}", profile.display()))
        .env("HOME", config.path());
    let name = format!("qBittorrent {}", role_name(role));
    let proc = Proc::spawn(&name, cmd, config.path());
    let api = format!("http://127.0.0.1:{web_port}");
    let mut rc = RunningClient {
        client: Client::Qbittorrent,
        role,
        placement: placement.clone(),
        info_hash,
        listen: socket(placement, port),
        kind: Kind::Qbittorrent {
            api: api.clone(),
            log: profile.join("qBittorrent/data/logs/qbittorrent.log"),
        },
        proc,
        config,
    };
    let net = placement.net();
    let started = Instant::now();
    let version_url = format!("{api}/api/v2/app/version");
    loop {
        if let Some(status) = rc.proc.try_wait() {
            panic!("{name} exited ({status}) at start\n{}", rc.log_tail());
        }
        if let Ok((200, _)) = http::request(&net, &Request::get(&version_url)) {
            break;
        }
        assert!(
            started.elapsed() < opts.startup_timeout,
            "{name}: Web API did not answer within {:?}\n{}",
            opts.startup_timeout,
            rc.log_tail()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let bytes = fs::read(torrent).unwrap();
    let dir_text = dir.display().to_string();
    let (content_type, body) = http::multipart(&[
        ("torrents", Some("t.torrent"), &bytes),
        ("savepath", None, dir_text.as_bytes()),
        ("paused", None, b"false"),
        ("skip_checking", None, b"false"),
        ("contentLayout", None, b"Original"),
        ("autoTMM", None, b"false"),
    ]);
    let url = format!("{api}/api/v2/torrents/add");
    let added = http::request(&net, &Request::post(&url, &content_type, body));
    match added {
        Ok((200, body)) if body.starts_with(b"Ok") => {}
        other => panic!(
            "{name}: torrents/add failed: {:?}\n{}",
            other.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned())),
            rc.log_tail()
        ),
    }
    rc
}
