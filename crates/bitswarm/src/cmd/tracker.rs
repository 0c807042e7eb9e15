//! `bitswarm tracker`: run the tracker server until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tracker::{Listeners, TrackerConfig};

pub const EXAMPLES: &str = "Examples:
  bitswarm tracker                                   # HTTP and UDP on 0.0.0.0:6969
  bitswarm tracker --http 127.0.0.1:8000 --no-udp
  bitswarm tracker --config tracker.toml --database tracker.db
  bitswarm tracker --print-config > tracker.toml     # every setting, with its default

Environment: BITSWARM_TRACKER__<SECTION>__<KEY> overrides the file, e.g. BITSWARM_TRACKER__SWARM__MODE=private.
Announce URLs: http://HOST:PORT/announce, udp://HOST:PORT/announce; private mode: http://HOST:PORT/PASSKEY/announce.";

/// `tracker` options (each overrides the config file and the environment).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// HTTP address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// UDP address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<SocketAddr>,
    /// Do not serve HTTP.
    #[arg(long)]
    pub no_http: bool,
    /// Do not serve UDP.
    #[arg(long)]
    pub no_udp: bool,
    /// A TOML configuration file (see --print-config).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SQLite file keeping completed counters, the allow-list and users across restarts.
    #[arg(long, value_name = "FILE")]
    pub database: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(a: Args) -> Result<()> {
    let mut config = TrackerConfig::load(a.config.as_deref())?;
    if let Some(h) = a.http {
        config.http.listen = h;
    }
    if let Some(u) = a.udp {
        config.udp.listen = u;
    }
    if a.no_http {
        config.http.enabled = false;
    }
    if a.no_udp {
        config.udp.enabled = false;
    }
    if a.database.is_some() {
        config.persistence.database = a.database.clone();
    }
    config.validate()?;
    if a.print_config {
        print!("{}", config.to_commented_toml());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listeners = Listeners::bind(&config)?;
        if let Some(addr) = listeners.http_addr() {
            println!("tracker: http://{addr}/announce");
        }
        if let Some(addr) = listeners.udp_addr() {
            println!("tracker: udp://{addr}/announce ({} workers)", listeners.udp.len());
        }
        tracker::run(config, listeners, shutdown_signal()).await?;
        Ok(())
    })
}

pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
