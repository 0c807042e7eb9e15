//! The directory server: the web site on its listener, the embedded tracker on its own, the scraper, the
//! embedded tracker's live figures and session expiry beside them; all handed their sockets and one
//! shutdown signal (so tests bind port 0 and stop it at will).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::DirectoryConfig;
use crate::db::{Db, DbError};
use crate::scrape::{self, EmbeddedRefresh};
use crate::web::{self, App};

/// The sockets the directory runs on, bound before it starts.
#[derive(Debug)]
pub struct Listeners {
    /// The web site's listener.
    pub web: std::net::TcpListener,
    /// The embedded tracker's sockets, when it runs.
    pub tracker: Option<tracker::Listeners>,
}

/// Why the server could not start or stopped with an error.
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
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The embedded tracker failed.
    #[error("embedded tracker: {0}")]
    Tracker(#[from] tracker::ServerError),
    /// The embedded tracker could not start.
    #[error("embedded tracker: {0}")]
    TrackerService(#[from] tracker::service::ServiceError),
}

impl Listeners {
    /// Bind the web address and, if the embedded tracker runs, its HTTP and UDP addresses.
    pub fn bind(config: &DirectoryConfig) -> Result<Self, ServerError> {
        let addr = config.web.listen;
        let io = |what| move |source| ServerError::Io { what, addr, source };
        let web = std::net::TcpListener::bind(addr).map_err(io("binding the web site to"))?;
        web.set_nonblocking(true).map_err(io("configuring"))?;
        let tracker = if config.embedded_tracker.enabled {
            Some(tracker::Listeners::bind(&config.tracker)?)
        } else {
            None
        };
        Ok(Listeners { web, tracker })
    }

    /// The web address actually bound.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web.local_addr().ok()
    }

    /// The embedded tracker's HTTP address.
    pub fn tracker_http_addr(&self) -> Option<SocketAddr> {
        self.tracker.as_ref().and_then(|t| t.http_addr())
    }

    /// The embedded tracker's UDP address.
    pub fn tracker_udp_addr(&self) -> Option<SocketAddr> {
        self.tracker.as_ref().and_then(|t| t.udp_addr())
    }
}

/// The announce URL shown for the embedded tracker: the configured one, else its HTTP (or UDP) address with
/// an unspecified IP replaced by 127.0.0.1 (set `embedded_tracker.announce_url` for a public site).
pub fn announce_url(config: &DirectoryConfig, listeners: &Listeners) -> Option<String> {
    if !config.embedded_tracker.enabled {
        return None;
    }
    if let Some(u) = &config.embedded_tracker.announce_url {
        return Some(u.clone());
    }
    let fix = |mut a: SocketAddr| {
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        a
    };
    if let Some(a) = listeners.tracker_http_addr() {
        return Some(format!("http://{}/announce", fix(a)));
    }
    listeners
        .tracker_udp_addr()
        .map(|a| format!("udp://{}/announce", fix(a)))
}

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

/// Run the directory until `shutdown` resolves, then stop everything and return.
pub async fn run(
    config: DirectoryConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with(config, listeners, shutdown, None).await
}

/// [`run`], with a way to fetch magnet links' metadata from peers, so that magnet uploads are accepted.
pub async fn run_with(
    config: DirectoryConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    metadata: Option<Arc<dyn crate::upload::MetadataFetcher>>,
) -> Result<(), ServerError> {
    let path = config.database.path.clone();
    let readers = config.web.readers;
    let db = tokio::task::spawn_blocking(move || Db::open(&path, readers))
        .await
        .map_err(|e| DbError::Internal(e.to_string()))??;
    let db = Arc::new(db);
    let url = announce_url(&config, &listeners);
    let Listeners {
        web: web_listener,
        tracker: tracker_listeners,
    } = listeners;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let service = match tracker_listeners {
        Some(tl) => {
            let service = Arc::new(tracker::Service::new(config.tracker.clone())?);
            let (s, mut rx) = (service.clone(), stop_rx.clone());
            let (feed, d) = (config.embedded_tracker.feed_allow_list, db.clone());
            // The site serves at once; the tracker's sockets (bound already, so nothing is refused) are served
            // once the allow-list holds every listed torrent (about a second per 300,000).
            tasks.spawn(async move {
                if feed {
                    let started = std::time::Instant::now();
                    let fed = tokio::select! {
                        r = feed_allow_list(&d, &s) => r,
                        _ = stopped(&mut rx) => return,
                    };
                    match fed {
                        Ok(n) => info!(
                            torrents = n,
                            secs = started.elapsed().as_secs_f64(),
                            "allow-list fed"
                        ),
                        Err(e) => {
                            warn!(error = %e, "feeding the allow-list failed; the tracker runs without it")
                        }
                    }
                }
                if let Err(e) = tracker::run_service(s, tl, async move { stopped(&mut rx).await }).await {
                    warn!(error = %e, "embedded tracker stopped");
                }
            });
            Some(service)
        }
        None => None,
    };

    let mut app = App::new(config.clone(), db.clone(), service.clone(), url.clone());
    app.metadata = metadata;
    let app = Arc::new(app);

    if config.scrape.enabled {
        let (app, mut rx) = (app.clone(), stop_rx.clone());
        let skip = url.clone();
        tasks.spawn(async move {
            let http = match reqwest::Client::builder()
                .user_agent(concat!("bitswarm-directory/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::limited(3))
                .pool_max_idle_per_host(0)
                .build()
            {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "scraper: no HTTP client");
                    return;
                }
            };
            let s = &app.config.scrape;
            let mut tick = tokio::time::interval(Duration::from_secs(s.tick_secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped(&mut rx) => break,
                }
                let pass = scrape::scrape_due(
                    &app.db,
                    &http,
                    &app.metrics,
                    s.batch,
                    Duration::from_secs(s.interval_secs),
                    Duration::from_secs(s.timeout_secs),
                    skip.as_deref(),
                );
                tokio::select! {
                    r = pass => if let Err(e) = r { warn!(error = %e, "scrape pass failed") },
                    _ = stopped(&mut rx) => break,
                }
            }
        });
    }

    if let (Some(service), Some(url)) = (service.clone(), url.clone()) {
        let (db, mut rx) = (db.clone(), stop_rx.clone());
        let every = Duration::from_secs(config.scrape.embedded_refresh_secs);
        tasks.spawn(async move {
            let mut refresh = EmbeddedRefresh::default();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = refresh.tick(&db, &service, &url).await {
                            warn!(error = %e, "embedded tracker refresh failed");
                        }
                    }
                    _ = stopped(&mut rx) => break,
                }
            }
        });
    }

    {
        let (db, mut rx) = (db.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let d = db.clone();
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                        let _ = tokio::task::spawn_blocking(move || d.expire_sessions(now)).await;
                    }
                    _ = stopped(&mut rx) => break,
                }
            }
        });
    }

    let addr = web_listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let listener = tokio::net::TcpListener::from_std(web_listener).map_err(|source| ServerError::Io {
        what: "registering",
        addr,
        source,
    })?;
    let router = web::router(app);
    {
        let mut rx = stop_rx.clone();
        tasks.spawn(async move {
            let serve = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stopped(&mut rx).await });
            if let Err(e) = serve.await {
                warn!(error = %e, "web server stopped");
            }
        });
    }
    info!(%addr, announce = ?url, "directory running");
    shutdown.await;
    info!("directory shutting down");
    let _ = stop_tx.send(true);
    // Bounded: an open keep-alive connection must not hold the shutdown forever.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        warn!("some tasks did not stop within 10 s; aborting them");
    }
    Ok(())
}

/// Put every listed torrent on the tracker's allow-list with its size (for completion figures); returns how
/// many. Names are not given to the tracker (the directory shows its own): at a million torrents that saves
/// a heap string per entry.
async fn feed_allow_list(db: &Arc<Db>, service: &Arc<tracker::Service>) -> Result<usize, DbError> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let d = db.clone();
        let rows = tokio::task::spawn_blocking(move || d.info_hashes(after, 10_000))
            .await
            .unwrap_or_else(|_| Ok(Vec::new()))?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        n += rows.len();
        for (_, h, size, _) in rows {
            service.register(metainfo::InfoHashV1(h), Some(size), String::new());
        }
    }
    Ok(n)
}
