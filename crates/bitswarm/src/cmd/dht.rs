//! `bitswarm dht`: a standalone DHT node (a participating node that acts as a tracker for the torrents
//! near its id) until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use dht_node::DhtNodeConfig;

pub const EXAMPLES: &str = "Examples:
  bitswarm dht --listen 0.0.0.0:6881 --bootstrap router.bittorrent.com:6881
  bitswarm dht --listen 127.0.0.1:7000 --http 127.0.0.1:9881        # then GET /stats or /metrics
  bitswarm dht --state dht.dat                                      # keep the routing table across restarts
  bitswarm dht --print-config > dht.toml

Environment: BITSWARM_DHT__<KEY> or BITSWARM_DHT__NODE__<KEY> overrides the file, e.g. BITSWARM_DHT__NODE__READ_ONLY=true.";

/// `dht` options (each overrides the config file and the environment).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// UDP address of the node.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Nodes to join through (HOST:PORT; repeat).
    #[arg(long, value_name = "HOST:PORT", num_args = 1..)]
    pub bootstrap: Vec<String>,
    /// File keeping the routing table across restarts.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// HTTP address serving /stats (JSON) and /metrics (Prometheus).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// BEP 43 read-only: query others, answer nobody.
    #[arg(long)]
    pub read_only: bool,
    /// A TOML configuration file (see --print-config).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(a: Args) -> Result<()> {
    let mut config = DhtNodeConfig::load(a.config.as_deref())?;
    if let Some(l) = a.listen {
        config.listen = l;
    }
    if !a.bootstrap.is_empty() {
        config.bootstrap = a.bootstrap.clone();
    }
    if a.state.is_some() {
        config.state_file = a.state.clone();
    }
    if a.http.is_some() {
        config.http = a.http;
    }
    if a.read_only {
        config.node.read_only = true;
    }
    config.validate()?;
    if a.print_config {
        print!("{}", config.to_commented_toml());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let udp = tokio::net::UdpSocket::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on udp {}", config.listen))?;
        let http = match config.http {
            Some(h) => Some(
                tokio::net::TcpListener::bind(h)
                    .await
                    .with_context(|| format!("cannot listen on http {h}"))?,
            ),
            None => None,
        };
        println!("dht: udp {}", udp.local_addr()?);
        if let Some(h) = &http {
            let addr = h.local_addr()?;
            println!("dht: stats http://{addr}/stats, metrics http://{addr}/metrics");
        }
        dht_node::run(config, udp, http, super::tracker::shutdown_signal(), None).await?;
        println!("dht: stopped");
        Ok(())
    })
}
