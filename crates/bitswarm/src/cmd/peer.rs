//! What `get`, `seed` and `demo` share: client options, loading a torrent, the live display and the
//! shutdown signal.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::{Client, ClientConfig, Discovery, Phase, TorrentHandle, TorrentStatus};
use metainfo::Torrent;

use super::settings::Settings;
use crate::output::{human_bytes, parse_size};

/// Options of every command that runs the peer client. Each overrides the settings file and the
/// environment (see `--print-config`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Where to accept peer connections (default: all addresses, first free port of 6881-6889).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// A peer to connect to directly (repeat for more); trackers are still used.
    #[arg(long = "peer", value_name = "ADDR:PORT")]
    pub peers: Vec<SocketAddr>,
    /// Download limit for the whole process, per second (e.g. 500K, 10M; 0: none).
    #[arg(long, value_name = "RATE")]
    pub max_down: Option<String>,
    /// Upload limit for the whole process, per second (e.g. 500K, 10M; 0: none).
    #[arg(long, value_name = "RATE")]
    pub max_up: Option<String>,
    /// Where resume data is kept (default: $XDG_STATE_HOME/bitswarm/resume, or
    /// ~/.local/state/bitswarm/resume).
    #[arg(long, value_name = "DIR")]
    pub resume_dir: Option<PathBuf>,
    /// Do not contact the torrent's trackers (peers come from --peer, the DHT and incoming connections).
    #[arg(long)]
    pub no_trackers: bool,
    /// The port told to trackers, when it differs from the listen port (behind a port forward).
    #[arg(long, value_name = "PORT")]
    pub announce_port: Option<u16>,
    /// Seconds between resume-data saves while pieces complete (default 30).
    #[arg(long, value_name = "SECS")]
    pub resume_interval: Option<u64>,
    /// Machine-readable output: one JSON object per line on stdout (`listening`, then a `status` of each
    /// torrent every second and at every phase change); the human display is off.
    #[arg(long)]
    pub json: bool,
    /// Most connections per torrent (default 60).
    #[arg(long, value_name = "N")]
    pub max_peers: Option<usize>,
    /// Do not use the DHT (BEP 5). Private torrents never do.
    #[arg(long)]
    pub no_dht: bool,
    /// DHT nodes to join through, HOST:PORT (repeat for more). Replaces the default routers
    /// (router.bittorrent.com:6881, dht.transmissionbt.com:6881, router.utorrent.com:6881,
    /// dht.libtorrent.org:25401); so does BITSWARM_DHT_BOOTSTRAP (comma-separated; empty: none).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// Find peers on the local network by multicast (BEP 14 local service discovery). Private torrents
    /// never do.
    #[arg(long)]
    pub lsd: bool,
    /// A TOML settings file (default: $XDG_CONFIG_HOME/bitswarm/client.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective settings (defaults, file, environment, flags) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The DHT routers a fresh node joins through when told nothing else.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// The environment variable that replaces [`DEFAULT_BOOTSTRAP`] (comma-separated; empty: none).
pub const BOOTSTRAP_ENV: &str = "BITSWARM_DHT_BOOTSTRAP";

/// A rate option: a size per second; 0 means unlimited.
fn rate(s: &Option<String>, what: &str) -> Result<Option<u64>> {
    let r = s
        .as_deref()
        .map(|r| {
            parse_size(r.trim_end_matches("/s"))
                .map_err(anyhow::Error::msg)
                .with_context(|| what.to_string())
        })
        .transpose()?;
    Ok(r.filter(|r| *r > 0))
}

/// The default resume folder.
pub fn default_resume_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("bitswarm/resume"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/bitswarm/resume"))
}

impl ClientArgs {
    /// The settings: defaults, the file, the environment, then these flags.
    pub fn settings(&self) -> Result<Settings> {
        let mut s = Settings::load(self.config.as_deref())?;
        if let Ok(v) = std::env::var(BOOTSTRAP_ENV) {
            s.dht.bootstrap = v
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect();
        }
        if self.listen.is_some() {
            s.listen = self.listen;
        }
        if let Some(r) = &self.max_down {
            s.max_down = r.clone();
        }
        if let Some(r) = &self.max_up {
            s.max_up = r.clone();
        }
        if self.resume_dir.is_some() {
            s.resume_dir = self.resume_dir.clone();
        }
        if self.no_trackers {
            s.trackers = false;
        }
        if self.announce_port.is_some() {
            s.announce_port = self.announce_port;
        }
        if let Some(n) = self.resume_interval {
            s.resume_interval = n;
        }
        if let Some(n) = self.max_peers {
            s.max_peers = n;
        }
        if self.no_dht {
            s.dht.enabled = false;
        }
        if !self.bootstrap.is_empty() {
            s.dht.bootstrap = self.bootstrap.clone();
        }
        if self.lsd {
            s.lsd.enabled = true;
        }
        Ok(s)
    }

    /// The client configuration the settings describe.
    pub fn config(&self) -> Result<ClientConfig> {
        let s = self.settings()?;
        let d = ClientConfig::default();
        Ok(ClientConfig {
            listen: s.listen,
            announce_port: s.announce_port,
            download_limit: rate(&Some(s.max_down.clone()), "max_down")?,
            upload_limit: rate(&Some(s.max_up.clone()), "max_up")?,
            resume_dir: s.resume_dir.clone().or_else(default_resume_dir),
            use_trackers: s.trackers,
            max_peers_per_torrent: s.max_peers.max(1),
            max_connections: s.max_connections.max(1),
            resume_interval: Duration::from_secs(s.resume_interval.max(1)),
            piece_cache: s.disk.piece_cache_mib << 20,
            read_cache: s.disk.read_cache_mib << 20,
            direct_writes: s.disk.direct_writes,
            disk_threads: if s.disk.threads == 0 {
                d.disk_threads
            } else {
                s.disk.threads
            },
            ..d
        })
    }

    /// With `--print-config`, prints the settings as TOML and returns true (the command then exits).
    pub fn print_config(&self) -> Result<bool> {
        if self.print_config {
            print!("{}", self.settings()?.to_commented_toml());
        }
        Ok(self.print_config)
    }

    /// Starts the client with `config`: its listen socket, and (unless `--no-dht`) a DHT node on the same
    /// address and port over UDP (any free port if that one is taken) keeping its table in the resume
    /// folder, and with `--lsd` local service discovery.
    pub async fn start_client(&self, config: ClientConfig) -> Result<Client> {
        let listener = client::bind_listener(config.listen).await?;
        let addr = listener.local_addr().context("the listen socket")?;
        let mut discovery = Discovery::default();
        let settings = self.settings()?;
        if settings.dht.enabled {
            let udp = match tokio::net::UdpSocket::bind(addr).await {
                Ok(s) => s,
                Err(_) => tokio::net::UdpSocket::bind((addr.ip(), 0))
                    .await
                    .with_context(|| format!("cannot open a UDP socket on {} for the DHT", addr.ip()))?,
            };
            let state_file = config.resume_dir.as_ref().and_then(|d| {
                std::fs::create_dir_all(d).ok()?;
                Some(d.join("dht.dat"))
            });
            let driver = net::dht::DhtDriverConfig {
                bootstrap: settings.dht.bootstrap.clone(),
                state_file,
                ..net::dht::DhtDriverConfig::default()
            };
            let (dht, _task) = net::dht::spawn(udp, driver)
                .await
                .context("cannot start the DHT node")?;
            tracing::info!(addr = %dht.local_addr(), "DHT node running");
            discovery.dht = Some(dht);
        }
        if settings.lsd.enabled {
            let cookie = format!("bitswarm-{:08x}", rand_cookie());
            let mut lsd = net::lsd::LsdConfig::new(addr.port(), cookie);
            if let std::net::IpAddr::V4(ip) = addr.ip() {
                if !ip.is_unspecified() {
                    lsd.interface = ip;
                }
            }
            match net::lsd::spawn(lsd) {
                Ok(h) => discovery.lsd = Some(h),
                Err(e) => eprintln!("local service discovery is off: cannot join its multicast group: {e}"),
            }
        }
        Ok(Client::start_with(config, Some(listener), discovery).await?)
    }
}

/// A cookie for our LSD announces: process id and time, enough to tell our own apart.
fn rand_cookie() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    t ^ std::process::id().rotate_left(16)
}

/// True if `src` is a magnet link (the scheme in any case).
pub fn is_magnet(src: &str) -> bool {
    src.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
}

/// A torrent from a file path or an http(s) URL.
pub async fn load_torrent(src: &str) -> Result<Torrent> {
    if is_magnet(src) {
        bail!("{src}: a magnet link is not a torrent file here; `bitswarm get` takes magnet links");
    }
    let bytes = if src.starts_with("http://") || src.starts_with("https://") {
        net::fetch::get_bytes(src, 64 << 20, Duration::from_secs(60))
            .await
            .with_context(|| "cannot fetch the torrent".to_string())?
    } else {
        std::fs::read(src).with_context(|| format!("{src}: cannot read"))?
    };
    Torrent::from_bytes(bytes).with_context(|| src.to_string())
}

/// Resolves on Ctrl-C or SIGTERM (the same signal handling as the servers').
pub use super::tracker::shutdown_signal;

/// The status line of a magnet link whose metadata is being fetched.
fn metadata_line(name: &str, s: &TorrentStatus) -> String {
    let (have, total) = s.metadata_pieces;
    let pieces = if total > 0 {
        format!(" {have}/{total} pieces")
    } else {
        String::new()
    };
    format!(
        "{name}: fetching metadata{pieces} from peers {}/{}",
        s.peers, s.known_peers
    )
}

fn eta(s: &TorrentStatus) -> String {
    if s.bytes_left == 0 {
        return "-".into();
    }
    if s.download_rate < 1.0 {
        return "?".into();
    }
    let secs = (s.bytes_left as f64 / s.download_rate) as u64;
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

fn percent(s: &TorrentStatus) -> f64 {
    let wanted = s.bytes_have.saturating_add(s.bytes_left);
    if wanted == 0 {
        100.0
    } else {
        s.bytes_have as f64 * 100.0 / wanted as f64
    }
}

/// One line describing a torrent's state.
pub fn status_line(name: &str, s: &TorrentStatus) -> String {
    match &s.phase {
        Phase::FetchingMetadata => metadata_line(name, s),
        Phase::Checking => format!(
            "{name}: checking {} of {}",
            human_bytes(s.checked_bytes),
            human_bytes(s.total_bytes)
        ),
        phase => {
            let what = match phase {
                Phase::Seeding => "seeding",
                Phase::Failed(_) => "failed",
                Phase::Stopped => "stopped",
                _ => "downloading",
            };
            let mut line = format!(
                "{name}: {what} {:.1}% ({} of {}) down {}/s up {}/s peers {}/{} eta {}",
                percent(s),
                human_bytes(s.bytes_have),
                human_bytes(s.bytes_have.saturating_add(s.bytes_left)),
                human_bytes(s.download_rate as u64),
                human_bytes(s.upload_rate as u64),
                s.peers,
                s.known_peers,
                eta(s)
            );
            if let Some(e) = &s.error {
                line.push_str(&format!(" [{e}]"));
            }
            line
        }
    }
}

/// Show a torrent's progress until it completes or `done` fires: a progress bar on a terminal, a line
/// every `every` otherwise.
pub async fn show(handle: TorrentHandle, name: String, every: Duration) {
    let tty = std::io::stderr().is_terminal();
    let mut rx = handle.watch();
    if tty {
        let bar = indicatif::ProgressBar::new(1000);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.clone());
        loop {
            let s = rx.borrow_and_update().clone();
            let pos = match s.phase {
                Phase::FetchingMetadata => 0,
                Phase::Checking if s.total_bytes > 0 => s.checked_bytes.saturating_mul(1000) / s.total_bytes,
                _ => (percent(&s) * 10.0) as u64,
            };
            bar.set_position(pos);
            bar.set_message(status_line("", &s).trim_start_matches(": ").to_string());
            if matches!(s.phase, Phase::Seeding | Phase::Failed(_) | Phase::Stopped) {
                bar.finish();
                return;
            }
            if rx.changed().await.is_err() {
                bar.abandon();
                return;
            }
        }
    } else {
        let mut last = Instant::now();
        let mut last_phase = None;
        loop {
            let s = rx.borrow_and_update().clone();
            let phase_changed = last_phase.as_ref() != Some(&s.phase);
            if phase_changed || last.elapsed() >= every {
                eprintln!("{}", status_line(&name, &s));
                last = Instant::now();
                last_phase = Some(s.phase.clone());
            }
            if matches!(s.phase, Phase::Seeding | Phase::Failed(_) | Phase::Stopped) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A torrent's status as one JSON object (the `--json` output).
pub fn status_json(name: &str, h: &TorrentHandle) -> serde_json::Value {
    let s = h.status();
    let (phase, error) = match &s.phase {
        Phase::FetchingMetadata => ("fetching_metadata", s.error.clone()),
        Phase::Checking => ("checking", s.error.clone()),
        Phase::Downloading => ("downloading", s.error.clone()),
        Phase::Seeding => ("seeding", s.error.clone()),
        Phase::Failed(e) => ("failed", Some(e.clone())),
        Phase::Stopped => ("stopped", s.error.clone()),
    };
    serde_json::json!({
        "event": "status",
        "name": name,
        "info_hash": h.info_hash().to_hex(),
        "phase": phase,
        "error": error,
        "pieces_have": s.pieces_have,
        "pieces_total": s.pieces_total,
        "bytes_have": s.bytes_have,
        "bytes_left": s.bytes_left,
        "total_bytes": s.total_bytes,
        "downloaded": s.downloaded,
        "uploaded": s.uploaded,
        "download_rate": s.download_rate as u64,
        "upload_rate": s.upload_rate as u64,
        "peers": s.peers,
        "known_peers": s.known_peers,
        "failed_pieces": s.failed_pieces,
        "banned": s.banned,
        "resumed_bytes": s.resumed_bytes,
        "checked_bytes": s.checked_bytes,
        "metadata_pieces_have": s.metadata_pieces.0,
        "metadata_pieces_total": s.metadata_pieces.1,
    })
}

/// Print one JSON line.
pub fn emit(v: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// With `--json`: a status line of every torrent each second and whenever one changes phase; runs until
/// dropped.
pub async fn json_loop(handles: Vec<(String, TorrentHandle)>) {
    let mut phases: Vec<Phase> = handles.iter().map(|_| Phase::Checking).collect();
    let mut last = Instant::now() - Duration::from_secs(10);
    loop {
        let mut changed = false;
        for ((_, h), p) in handles.iter().zip(phases.iter_mut()) {
            let now = h.status().phase;
            if now != *p {
                *p = now;
                changed = true;
            }
        }
        if changed || last.elapsed() >= Duration::from_secs(1) {
            for (name, h) in &handles {
                emit(&status_json(name, h));
            }
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
