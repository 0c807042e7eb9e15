//! `bitswarm directory`: run the directory web site with its embedded tracker until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use directory::{DirectoryConfig, Listeners};

pub const EXAMPLES: &str = "Examples:
  bitswarm directory --listen 127.0.0.1:8080              # site on :8080, tracker on 0.0.0.0:6969
  bitswarm directory --listen 0.0.0.0:80 --announce-url http://dir.example:6969/announce
  bitswarm directory --config directory.toml --database /var/lib/bitswarm/directory.db
  bitswarm directory --print-config > directory.toml      # every setting, with its default

Environment: BITSWARM_DIRECTORY__<SECTION>__<KEY> overrides the file, e.g. BITSWARM_DIRECTORY__WEB__PAGE_SIZE=20,
BITSWARM_DIRECTORY__TRACKER__SWARM__MODE=allow_list (only listed torrents are tracked).
Pages: / (search, recent, popular), /upload, /register, /login, /t/HASH; API: /api/openapi.json; /metrics; /rss.xml.";

/// `directory` options (each overrides the config file and the environment).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the web site.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// HTTP address of the embedded tracker.
    #[arg(long, value_name = "ADDR")]
    pub tracker_http: Option<SocketAddr>,
    /// UDP address of the embedded tracker.
    #[arg(long, value_name = "ADDR")]
    pub tracker_udp: Option<SocketAddr>,
    /// Do not run the embedded tracker.
    #[arg(long)]
    pub no_tracker: bool,
    /// The announce URL shown for the embedded tracker (its public address).
    #[arg(long, value_name = "URL")]
    pub announce_url: Option<String>,
    /// The SQLite database file.
    #[arg(long, value_name = "FILE")]
    pub database: Option<PathBuf>,
    /// Cookies without the Secure flag, for a site served over plain HTTP (local tests only).
    #[arg(long)]
    pub insecure_cookies: bool,
    /// A TOML configuration file (see --print-config).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(a: Args) -> Result<()> {
    let mut config = DirectoryConfig::load(a.config.as_deref())?;
    if let Some(l) = a.listen {
        config.web.listen = l;
    }
    if let Some(h) = a.tracker_http {
        config.tracker.http.listen = h;
    }
    if let Some(u) = a.tracker_udp {
        config.tracker.udp.listen = u;
    }
    if a.no_tracker {
        config.embedded_tracker.enabled = false;
    }
    if a.announce_url.is_some() {
        config.embedded_tracker.announce_url = a.announce_url.clone();
    }
    if let Some(d) = &a.database {
        config.database.path = d.clone();
    }
    if a.insecure_cookies {
        config.accounts.secure_cookies = false;
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
        if let Some(addr) = listeners.web_addr() {
            println!("directory: http://{addr}/");
        }
        if let Some(url) = directory::server::announce_url(&config, &listeners) {
            println!("directory: embedded tracker {url}");
        }
        if let Some(addr) = listeners.tracker_udp_addr() {
            println!("directory: embedded tracker udp://{addr}/announce");
        }
        let fetcher = std::sync::Arc::new(PeerMetadata::default());
        let result = directory::run_with(
            config,
            listeners,
            super::tracker::shutdown_signal(),
            Some(fetcher.clone() as std::sync::Arc<dyn directory::upload::MetadataFetcher>),
        )
        .await;
        result?;
        Ok(())
    })
}

/// Magnet uploads: the peer client (started on first use, DHT on as for `get`) fetches the metadata from
/// the link's trackers, `x.pe` peers and the DHT, and is stopped once the info dictionary is verified;
/// nothing of the content is downloaded.
#[derive(Default)]
struct PeerMetadata {
    client: tokio::sync::OnceCell<client::Client>,
}

impl PeerMetadata {
    async fn client(&self) -> Result<&client::Client, String> {
        self.client
            .get_or_try_init(|| async {
                let args = super::peer::ClientArgs {
                    listen: Some(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
                    ..Default::default()
                };
                let mut config = args.config().map_err(|e| format!("{e:#}"))?;
                config.resume_dir = None;
                args.start_client(config).await.map_err(|e| format!("{e:#}"))
            })
            .await
    }
}

impl directory::upload::MetadataFetcher for PeerMetadata {
    fn fetch(
        &self,
        magnet: metainfo::Magnet,
        timeout: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send + '_>> {
        Box::pin(async move {
            let client = self.client().await?;
            let t = client
                .fetch_metadata(magnet, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(t.bytes().to_vec())
        })
    }
}
