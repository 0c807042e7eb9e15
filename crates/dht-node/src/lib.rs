//! The standalone DHT node service behind `bitswarm dht`: configuration, the UDP node, and its stats as
//! JSON and Prometheus metrics over HTTP.
//!
//! A participating node in the Mainline DHT acts as a tracker for the torrents whose info-hashes are near
//! its id: it stores the peers announced to it and hands them to whoever looks them up. [`run`] is handed
//! its UDP socket, an optional HTTP listener and a shutdown signal (tests bind port 0), drives the node
//! through [`net::dht`], samples its counters every second (for queries per second by kind over the last
//! ten seconds), serves `GET /stats` and `GET /metrics`, and saves its routing table on the way out.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use dht::Stats;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use net::dht::{DhtDriverConfig, DhtHandle};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::{TcpListener, UdpSocket};

/// Environment variables with this prefix override the file (`BITSWARM_DHT__NODE__READ_ONLY=true`).
pub const ENV_PREFIX: &str = "BITSWARM_DHT__";

/// Everything the service needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhtNodeConfig {
    /// UDP address of the node. Default 0.0.0.0:6881.
    pub listen: SocketAddr,
    /// Nodes to join through (`host:port`). Default: none (others must find us, or a saved table is used).
    pub bootstrap: Vec<String>,
    /// File keeping the routing table across restarts. Default: none.
    pub state_file: Option<PathBuf>,
    /// Seconds between saves of the routing table. Default 300.
    pub save_interval: u64,
    /// HTTP address for `/stats` and `/metrics`. Default: none (no HTTP).
    pub http: Option<SocketAddr>,
    /// The node's own settings.
    pub node: NodeSettings,
}

/// The node's settings (a subset of [`dht::Config`] worth changing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// BEP 43 read-only mode: query others but answer nobody. Default false.
    pub read_only: bool,
    /// Peers stored per info-hash. Default 100.
    pub max_peers_per_hash: usize,
    /// Info-hashes stored. Default 1000.
    pub max_info_hashes: usize,
    /// Queries taken per second from one IP (0: no limit). Default 20.
    pub max_queries_per_sec_per_ip: u32,
    /// Keep nodes whose id does not match their address (BEP 42) out of the table. Default false (such
    /// nodes are only ranked below verified ones).
    pub bep42_enforce: bool,
}

impl Default for DhtNodeConfig {
    fn default() -> Self {
        DhtNodeConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            bootstrap: Vec::new(),
            state_file: None,
            save_interval: 300,
            http: None,
            node: NodeSettings::default(),
        }
    }
}

impl Default for NodeSettings {
    fn default() -> Self {
        let d = dht::Config::default();
        NodeSettings {
            read_only: d.read_only,
            max_peers_per_hash: d.max_peers_per_hash,
            max_info_hashes: d.max_info_hashes,
            max_queries_per_sec_per_ip: d.max_queries_per_sec_per_ip,
            bep42_enforce: d.bep42_enforce,
        }
    }
}

/// Why the service could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DhtNodeError {
    /// The configuration could not be read.
    #[error("configuration: {0}")]
    Config(#[from] Box<figment::Error>),
    /// A setting is out of range.
    #[error("configuration: {0}")]
    Invalid(String),
    /// A socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl DhtNodeConfig {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, DhtNodeError> {
        let mut fig = Figment::from(Serialized::defaults(DhtNodeConfig::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        let config: DhtNodeConfig = fig
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Check the settings.
    pub fn validate(&self) -> Result<(), DhtNodeError> {
        if self.save_interval == 0 {
            return Err(DhtNodeError::Invalid("save_interval must be at least 1".into()));
        }
        if self.node.max_peers_per_hash == 0 || self.node.max_info_hashes == 0 {
            return Err(DhtNodeError::Invalid(
                "node.max_peers_per_hash and node.max_info_hashes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The node's full settings.
    pub fn dht_config(&self) -> dht::Config {
        dht::Config {
            read_only: self.node.read_only,
            max_peers_per_hash: self.node.max_peers_per_hash,
            max_info_hashes: self.node.max_info_hashes,
            max_queries_per_sec_per_ip: self.node.max_queries_per_sec_per_ip,
            bep42_enforce: self.node.bep42_enforce,
            ..dht::Config::default()
        }
    }

    /// The whole tree as TOML with a header, for `--print-config`.
    pub fn to_commented_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        format!(
            "# bitswarm dht configuration (defaults shown). Every key may be left out.\n\
             # Environment overrides: BITSWARM_DHT__<KEY> or BITSWARM_DHT__NODE__<KEY>, e.g. BITSWARM_DHT__NODE__READ_ONLY=true\n\
             # http = \"127.0.0.1:9881\" serves /stats (JSON) and /metrics (Prometheus).\n\n{body}"
        )
    }
}

/// Counters sampled once a second, for rates.
#[derive(Debug, Default)]
struct Sampler {
    samples: VecDeque<(Instant, Stats)>,
    started: Option<Instant>,
}

impl Sampler {
    const WINDOW: usize = 11;

    fn push(&mut self, at: Instant, s: Stats) {
        self.started.get_or_insert(at);
        self.samples.push_back((at, s));
        while self.samples.len() > Self::WINDOW {
            self.samples.pop_front();
        }
    }

    fn latest(&self) -> Option<&Stats> {
        self.samples.back().map(|(_, s)| s)
    }

    /// Queries per second by kind over the window.
    fn rates(&self) -> Value {
        let (Some((t0, a)), Some((t1, b))) = (self.samples.front(), self.samples.back()) else {
            return json!({});
        };
        let secs = t1.duration_since(*t0).as_secs_f64();
        let rate = |x: u64, y: u64| {
            if secs > 0.0 {
                (y.saturating_sub(x)) as f64 / secs
            } else {
                0.0
            }
        };
        json!({
            "ping": rate(a.queries_in.ping, b.queries_in.ping),
            "find_node": rate(a.queries_in.find_node, b.queries_in.find_node),
            "get_peers": rate(a.queries_in.get_peers, b.queries_in.get_peers),
            "announce_peer": rate(a.queries_in.announce_peer, b.queries_in.announce_peer),
            "other": rate(a.queries_in.other, b.queries_in.other),
            "window_seconds": secs,
        })
    }
}

#[derive(Clone)]
struct App {
    sampler: Arc<Mutex<Sampler>>,
    local: SocketAddr,
    /// Our node id, hex (it changes when BEP 42 voting finds our external address: sampled with the stats).
    id: Arc<Mutex<String>>,
}

fn kinds(k: &dht::KindCounts) -> Value {
    json!({"ping": k.ping, "find_node": k.find_node, "get_peers": k.get_peers,
           "announce_peer": k.announce_peer, "other": k.other})
}

/// The stats as JSON (what `/stats` serves).
pub fn stats_json(s: &Stats, local: SocketAddr) -> Value {
    json!({
        "address": local.to_string(),
        "table": {"good": s.nodes_good, "questionable": s.nodes_questionable, "bad": s.nodes_bad, "buckets": s.buckets},
        "store": {"info_hashes": s.info_hashes, "peers": s.peers, "announces_stored": s.announces_stored},
        "queries_in": kinds(&s.queries_in),
        "queries_out": kinds(&s.queries_out),
        "responses_in": s.responses_in,
        "errors_in": s.errors_in,
        "errors_out": s.errors_out,
        "timeouts": s.timeouts,
        "dropped": {
            "oversized": s.dropped.oversized, "malformed": s.dropped.malformed,
            "unexpected": s.dropped.unexpected, "rate_limited": s.dropped.rate_limited,
            "read_only": s.dropped.read_only, "bad_token": s.dropped.bad_token,
            "queue_full": s.dropped.queue_full,
        },
        "replies_trimmed": s.replies_trimmed,
        "lookups": {"active": s.lookups_active, "queued": s.lookups_queued, "done": s.lookups_done},
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The stats as Prometheus text (what `/metrics` serves).
pub fn render_metrics(s: &Stats) -> String {
    let mut o = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, rows: &[(&str, u64)]| {
        let _ = writeln!(o, "# HELP bitswarm_dht_{name} {help}");
        let _ = writeln!(o, "# TYPE bitswarm_dht_{name} {kind}");
        for (labels, v) in rows {
            if labels.is_empty() {
                let _ = writeln!(o, "bitswarm_dht_{name} {v}");
            } else {
                let _ = writeln!(o, "bitswarm_dht_{name}{{{labels}}} {v}");
            }
        }
    };
    let n = |x: usize| x as u64;
    gauge(
        "table_nodes",
        "Nodes in the routing table, by state.",
        "gauge",
        &[
            ("state=\"good\"", n(s.nodes_good)),
            ("state=\"questionable\"", n(s.nodes_questionable)),
            ("state=\"bad\"", n(s.nodes_bad)),
        ],
    );
    gauge(
        "buckets",
        "Buckets in the routing table.",
        "gauge",
        &[("", n(s.buckets))],
    );
    gauge(
        "stored_info_hashes",
        "Info-hashes in the peer store.",
        "gauge",
        &[("", n(s.info_hashes))],
    );
    gauge(
        "stored_peers",
        "Peers in the peer store.",
        "gauge",
        &[("", n(s.peers))],
    );
    for (name, help, k) in [
        ("queries_in_total", "Queries received, by method.", &s.queries_in),
        ("queries_out_total", "Queries sent, by method.", &s.queries_out),
    ] {
        gauge(
            name,
            help,
            "counter",
            &[
                ("method=\"ping\"", k.ping),
                ("method=\"find_node\"", k.find_node),
                ("method=\"get_peers\"", k.get_peers),
                ("method=\"announce_peer\"", k.announce_peer),
                ("method=\"other\"", k.other),
            ],
        );
    }
    gauge(
        "responses_in_total",
        "Responses to our queries.",
        "counter",
        &[("", s.responses_in)],
    );
    gauge(
        "timeouts_total",
        "Our queries that timed out.",
        "counter",
        &[("", s.timeouts)],
    );
    gauge(
        "errors_out_total",
        "Errors sent.",
        "counter",
        &[("", s.errors_out)],
    );
    gauge(
        "lookups_done_total",
        "Lookups finished.",
        "counter",
        &[("", s.lookups_done)],
    );
    o
}

async fn stats_handler(State(app): State<App>) -> impl IntoResponse {
    let s = app.sampler.lock().unwrap_or_else(PoisonError::into_inner);
    let mut v = s.latest().map_or(json!({}), |st| stats_json(st, app.local));
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "node_id".into(),
            json!(app.id.lock().unwrap_or_else(PoisonError::into_inner).clone()),
        );
        obj.insert("queries_per_second".into(), s.rates());
        obj.insert(
            "uptime_seconds".into(),
            json!(s.started.map_or(0, |t| t.elapsed().as_secs())),
        );
    }
    Json(v)
}

async fn metrics_handler(State(app): State<App>) -> impl IntoResponse {
    let s = app.sampler.lock().unwrap_or_else(PoisonError::into_inner);
    let body = s.latest().map(render_metrics).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Runs the node on `udp` (and the stats server on `http`, if given) until `shutdown` completes; then saves
/// the table and returns. `ready` gets the node's handle once it runs (for callers that want to use it).
pub async fn run(
    config: DhtNodeConfig,
    udp: UdpSocket,
    http: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<tokio::sync::oneshot::Sender<DhtHandle>>,
) -> Result<(), DhtNodeError> {
    let driver = DhtDriverConfig {
        node: config.dht_config(),
        bootstrap: config.bootstrap.clone(),
        state_file: config.state_file.clone(),
        save_interval: Duration::from_secs(config.save_interval),
    };
    let (handle, task) = net::dht::spawn(udp, driver)
        .await
        .map_err(|source| DhtNodeError::Io {
            what: "starting the DHT node".into(),
            source,
        })?;
    let local = handle.local_addr();
    let sampler = Arc::new(Mutex::new(Sampler::default()));
    let id = Arc::new(Mutex::new(String::new()));
    let sampling = {
        let (h, sampler, id) = (handle.clone(), Arc::clone(&sampler), Arc::clone(&id));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(s) = h.stats().await else { return };
                sampler
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Instant::now(), s);
                if let Some(node) = h.id().await {
                    *id.lock().unwrap_or_else(PoisonError::into_inner) = hex(&node.0);
                }
            }
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = http.map(|listener| {
        let app = Router::new()
            .route("/stats", get(stats_handler))
            .route("/metrics", get(metrics_handler))
            .with_state(App {
                sampler: Arc::clone(&sampler),
                local,
                id: Arc::clone(&id),
            });
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        })
    });
    if let Some(tx) = ready {
        let _ = tx.send(handle.clone());
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    sampling.abort();
    handle.shutdown().await;
    let _ = task.await;
    if let Some(s) = server {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = DhtNodeConfig::default();
        let back: DhtNodeConfig = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.toml");
        std::fs::write(
            &f,
            "bootstrap = [\"127.0.0.1:7000\"]\n[node]\nmax_info_hashes = 5\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("BITSWARM_DHT__NODE__READ_ONLY", "true");
            let c = DhtNodeConfig::load(Some(&f)).map_err(|e| e.to_string())?;
            assert_eq!(c.bootstrap, vec!["127.0.0.1:7000".to_string()]);
            assert_eq!(c.node.max_info_hashes, 5);
            assert!(c.node.read_only);
            assert!(c.dht_config().read_only);
            Ok(())
        });
    }

    #[test]
    fn zero_save_interval_is_refused() {
        let c = DhtNodeConfig {
            save_interval: 0,
            ..DhtNodeConfig::default()
        };
        assert!(matches!(c.validate(), Err(DhtNodeError::Invalid(_))));
    }
}
