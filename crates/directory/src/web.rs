//! The HTTP side: the axum router with the pages, the JSON API, RSS, metrics, sessions, CSRF checks and
//! rate limits. Database work runs on blocking threads; every handler is bounded by the body limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{self, RateLimiter, CSRF_COOKIE, SESSION_COOKIE};
use crate::config::DirectoryConfig;
use crate::db::{Db, DbError, SearchQuery, Sort, TorrentDetail, User};
use crate::metrics::Metrics;
use crate::pages::{self, Frame, SearchForm};
use crate::upload::{self, UploadError};

/// The OpenAPI 3 document of the JSON API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Shared state of the site.
pub struct App {
    /// The configuration.
    pub config: DirectoryConfig,
    /// The database.
    pub db: Arc<Db>,
    /// The embedded tracker, when it runs.
    pub tracker: Option<Arc<tracker::Service>>,
    /// The embedded tracker's public announce URL.
    pub announce_url: Option<String>,
    /// Counters.
    pub metrics: Metrics,
    /// Fetches magnet links' metadata for magnet uploads (none: magnet uploads are refused).
    pub metadata: Option<Arc<dyn upload::MetadataFetcher>>,
    secret: [u8; 32],
    login_limit: RateLimiter,
    upload_limit: RateLimiter,
    dummy_hash: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The site's state.
    pub fn new(
        config: DirectoryConfig,
        db: Arc<Db>,
        tracker: Option<Arc<tracker::Service>>,
        announce_url: Option<String>,
    ) -> Self {
        let mut secret = [0u8; 32];
        let token = auth::new_token();
        if let Ok(b) = data_encoding::HEXLOWER.decode(token.as_bytes()) {
            for (s, v) in secret.iter_mut().zip(b) {
                *s = v;
            }
        }
        let l = &config.limits;
        App {
            login_limit: RateLimiter::new(l.login_burst, l.login_per_minute, l.max_addresses),
            upload_limit: RateLimiter::new(l.upload_burst, l.upload_per_minute, l.max_addresses),
            dummy_hash: auth::dummy_hash(
                config.accounts.argon2_memory_kib,
                config.accounts.argon2_iterations,
            ),
            config,
            db,
            tracker,
            announce_url,
            metrics: Metrics::default(),
            metadata: None,
            secret,
        }
    }
}

/// One tracker row on the torrent page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackerRow {
    /// Announce URL.
    pub url: String,
    /// This directory's embedded tracker (figures live, not scraped).
    pub embedded: bool,
    /// Seeders.
    pub seeders: Option<u64>,
    /// Leechers.
    pub leechers: Option<u64>,
    /// Completed.
    pub completed: Option<u64>,
    /// When scraped (unix seconds); none for live figures or never.
    pub scraped_at: Option<i64>,
    /// The last scrape's failure.
    pub error: Option<String>,
}

/// One peer in the swarm view: no address, by design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwarmPeer {
    /// Fraction complete, 0 to 1.
    pub completion: f32,
    /// Upload rate, bytes per second.
    pub upload_rate: f32,
    /// Download rate, bytes per second.
    pub download_rate: f32,
    /// Has everything.
    pub is_seed: bool,
    /// Client name from its peer id.
    pub client: String,
}

/// The embedded tracker's view of one swarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwarmView {
    /// Swarm info-hash, hex.
    pub info_hash: String,
    /// Seeders.
    pub seeders: u32,
    /// Leechers.
    pub leechers: u32,
    /// Completed downloads.
    pub completed: u32,
    /// Peers, most complete first.
    pub peers: Vec<SwarmPeer>,
}

/// The torrent as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TorrentJson {
    /// Stored facts.
    #[serde(flatten)]
    pub detail: TorrentDetail,
    /// Magnet link (with this directory's tracker added).
    pub magnet: String,
    /// Where the .torrent is.
    pub download_url: String,
    /// Figures per tracker, the embedded one live.
    pub tracker_figures: Vec<TrackerRow>,
    /// The embedded tracker's swarm view, when it runs.
    pub swarm: Option<SwarmView>,
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A failed request: status and the message shown (as a page or as `{"error": ...}`).
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
    json: bool,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            json: false,
        }
    }

    fn api(mut self) -> Self {
        self.json = true;
        self
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Duplicate(_) => Failure::new(StatusCode::CONFLICT, e.to_string()),
            DbError::NameTaken(_) => Failure::new(StatusCode::CONFLICT, e.to_string()),
            other => {
                tracing::warn!(error = %other, "database error");
                Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error (database)")
            }
        }
    }
}

/// The message of an HTML error page, kept in the response's extensions so that the outer middleware
/// ([`security_headers`]) can draw the page again in the visitor's own frame (signed in or not, with the
/// site's name and a CSRF token for the sign-out form): a handler that fails has no visitor at hand.
#[derive(Debug, Clone)]
struct ErrorPage(String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.json {
            return (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        }
        let frame = Frame {
            site: "bitswarm directory",
            user: None,
            csrf: "",
            categories: &[],
        };
        let mut r = (
            self.status,
            Html(pages::error(&frame, self.status.as_u16(), &self.message).into_string()),
        )
            .into_response();
        r.extensions_mut().insert(ErrorPage(self.message));
        r
    }
}

/// An HTML body.
struct Html(String);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.0).into_response()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DbError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Failure::from),
        Err(_) => Err(Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

/// Who is asking: their session's user, their CSRF seed (new if they had none) and their address.
struct Visitor {
    user: Option<User>,
    seed: String,
    new_seed: bool,
    session_token: Option<String>,
    ip: IpAddr,
}

impl Visitor {
    fn csrf(&self, app: &App) -> String {
        auth::csrf_token(&app.secret, &self.seed)
    }

    fn check_csrf(&self, app: &App, sent: &str) -> bool {
        !self.new_seed && !sent.is_empty() && auth::same(&self.csrf(app), sent)
    }

    fn frame<'a>(&'a self, app: &'a App, csrf: &'a str) -> Frame<'a> {
        Frame {
            site: &app.config.web.site_name,
            user: self.user.as_ref(),
            csrf,
            categories: &app.config.upload.categories,
        }
    }

    /// Headers to send with a page: the CSRF seed cookie when it is new.
    fn cookies(&self, app: &App) -> Vec<(header::HeaderName, String)> {
        if self.new_seed {
            vec![(
                header::SET_COOKIE,
                auth::set_cookie(CSRF_COOKIE, &self.seed, None, app.config.accounts.secure_cookies),
            )]
        } else {
            Vec::new()
        }
    }
}

fn client_ip(app: &App, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    if let Some(h) = &app.config.web.real_ip_header {
        if let Some(ip) = headers
            .get(h.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
    }
    peer.ip()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

async fn visitor(app: &Arc<App>, headers: &HeaderMap, peer: SocketAddr) -> Result<Visitor, Failure> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let token = auth::cookie(&cookies, SESSION_COOKIE)
        .map(str::to_string)
        .or_else(|| bearer(headers))
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    let user = match &token {
        Some(t) => {
            let (db, h) = (app.db.clone(), auth::token_hash(t));
            blocking(move || db.session_user(&h, now_unix())).await?
        }
        None => None,
    };
    let (seed, new_seed) = match auth::cookie(&cookies, CSRF_COOKIE).filter(|s| s.len() == 64) {
        Some(s) => (s.to_string(), false),
        None => (auth::new_token(), true),
    };
    Ok(Visitor {
        user,
        seed,
        new_seed,
        session_token: token,
        ip: client_ip(app, headers, peer),
    })
}

fn page(v: &Visitor, app: &App, status: StatusCode, markup: maud::Markup) -> Response {
    let mut r = (status, Html(markup.into_string())).into_response();
    for (k, val) in v.cookies(app) {
        if let Ok(val) = HeaderValue::from_str(&val) {
            r.headers_mut().append(k, val);
        }
    }
    r
}

fn parse_hash(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_suffix(".torrent").unwrap_or(s);
    if s.len() != 40 && s.len() != 64 {
        return None;
    }
    data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()
}

/// Build the site's router.
pub fn router(app: Arc<App>) -> Router {
    let upload_limit =
        app.config.upload.max_torrent_bytes + app.config.upload.max_description_chars * 4 + 64 * 1024;
    Router::new()
        .route("/", get(home))
        .route("/search", get(search_page))
        .route("/t/{hash}", get(torrent_page))
        .route("/t/{hash}/download", get(download))
        .route("/t/{hash}/swarm", get(swarm_fragment))
        .route(
            "/upload",
            get(upload_page)
                .post(upload_post)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/register", get(register_page).post(register_post))
        .route("/login", get(login_page).post(login_post))
        .route("/logout", post(logout_post))
        .route("/rss.xml", get(rss_all))
        .route("/rss/{category}", get(rss_category))
        .route("/static/app.js", get(app_js))
        .route("/metrics", get(metrics))
        .route("/api/search", get(api_search))
        .route("/api/torrents/{hash}", get(api_torrent))
        .route("/api/torrents/{hash}/swarm", get(api_swarm))
        .route("/api/torrents/{hash}/download", get(download))
        .route(
            "/api/upload",
            post(api_upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/login", post(api_login))
        .route("/api/stats", get(api_stats))
        .route("/api/categories", get(api_categories))
        .route("/api/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn_with_state(app.clone(), security_headers))
        .with_state(app)
}

async fn security_headers(State(app): State<Arc<App>>, req: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let api = req.uri().path().starts_with("/api/");
    let headers = req.headers().clone();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let mut r = next.run(req).await;
    if let (Some(ErrorPage(message)), Some(peer)) = (r.extensions().get::<ErrorPage>().cloned(), peer) {
        if let Ok(v) = visitor(&app, &headers, peer).await {
            let csrf = v.csrf(&app);
            let status = r.status();
            r = page(
                &v,
                &app,
                status,
                pages::error(&v.frame(&app, &csrf), status.as_u16(), &message),
            );
        }
    }
    app.metrics.request(api, r.status().as_u16(), started.elapsed());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}

async fn not_found() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, "no such page")
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages::APP_JS,
    )
        .into_response()
}

async fn home(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let v = visitor(&app, &headers, peer).await?;
    let (db, n) = (app.db.clone(), app.config.web.home_list);
    let (recent, popular) = blocking(move || Ok((db.recent(None, n)?, db.popular(n)?))).await?;
    let csrf = v.csrf(&app);
    Ok(page(
        &v,
        &app,
        StatusCode::OK,
        pages::home(&v.frame(&app, &csrf), &recent, &popular, now_unix()),
    ))
}

/// Search parameters as in URLs (pages and API).
#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    /// Words.
    #[serde(default)]
    pub q: String,
    /// Category.
    #[serde(default)]
    pub category: String,
    /// Minimum size, MiB.
    #[serde(default)]
    pub min_mb: String,
    /// Maximum size, MiB.
    #[serde(default)]
    pub max_mb: String,
    /// Minimum size, bytes (API).
    #[serde(default)]
    pub min_size: Option<u64>,
    /// Maximum size, bytes (API).
    #[serde(default)]
    pub max_size: Option<u64>,
    /// relevance, seeders, date, size, name.
    #[serde(default)]
    pub sort: String,
    /// asc or desc.
    #[serde(default)]
    pub order: String,
    /// Page from 1.
    #[serde(default)]
    pub page: Option<u32>,
    /// Results per page (API; capped by the configuration).
    #[serde(default)]
    pub per_page: Option<u32>,
}

impl SearchParams {
    fn query(&self, app: &App) -> SearchQuery {
        let mb = |s: &str| s.trim().parse::<u64>().ok().map(|v| v.saturating_mul(1 << 20));
        let category = Some(self.category.clone()).filter(|c| app.config.upload.categories.contains(c));
        SearchQuery {
            text: self.q.chars().take(200).collect(),
            category,
            min_size: self.min_size.or_else(|| mb(&self.min_mb)),
            max_size: self.max_size.or_else(|| mb(&self.max_mb)),
            sort: Sort::parse(&self.sort),
            reverse: self.order == "asc",
            page: self.page.unwrap_or(1).max(1),
            per_page: self
                .per_page
                .unwrap_or(app.config.web.page_size)
                .clamp(1, app.config.web.page_size.max(1)),
        }
    }
}

async fn search_page(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let p = params.map(|Query(p)| p).unwrap_or_default();
    let v = visitor(&app, &headers, peer).await?;
    let q = p.query(&app);
    let form = SearchForm {
        q: q.text.clone(),
        category: q.category.clone().unwrap_or_default(),
        min_mb: p.min_mb.chars().take(20).collect(),
        max_mb: p.max_mb.chars().take(20).collect(),
        sort: q.sort,
        asc: q.reverse,
    };
    let db = app.db.clone();
    let started = Instant::now();
    let result = blocking(move || db.search(&q)).await?;
    app.metrics.search(started.elapsed());
    let csrf = v.csrf(&app);
    Ok(page(
        &v,
        &app,
        StatusCode::OK,
        pages::search(&v.frame(&app, &csrf), &form, &result, now_unix()),
    ))
}

fn magnet_for(app: &App, t: &TorrentDetail) -> String {
    let mut trackers: Vec<String> = Vec::new();
    if let Some(u) = &app.announce_url {
        if !t.private {
            trackers.push(u.clone());
        }
    }
    for u in t.trackers.iter().flatten() {
        if trackers.len() >= 10 {
            break;
        }
        if !trackers.contains(u) {
            trackers.push(u.clone());
        }
    }
    let hash = |h: &Option<String>| {
        h.as_deref()
            .and_then(|s| data_encoding::HEXLOWER.decode(s.as_bytes()).ok())
    };
    let m = metainfo::Magnet {
        v1: hash(&t.info_hash_v1)
            .and_then(|b| <[u8; 20]>::try_from(b.as_slice()).ok())
            .map(metainfo::InfoHashV1),
        v2: hash(&t.info_hash_v2)
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .map(metainfo::InfoHashV2),
        display_name: Some(t.summary.name.clone()),
        trackers,
        ..Default::default()
    };
    m.to_uri()
}

fn swarm_view(app: &App, info_hash: &str) -> Option<SwarmView> {
    let service = app.tracker.as_ref()?;
    let bytes = data_encoding::HEXLOWER.decode(info_hash.as_bytes()).ok()?;
    let h = metainfo::InfoHashV1(<[u8; 20]>::try_from(bytes.as_slice()).ok()?);
    let Some(s) = service.torrent_stats(&h, false) else {
        return Some(SwarmView {
            info_hash: info_hash.to_string(),
            seeders: 0,
            leechers: 0,
            completed: 0,
            peers: Vec::new(),
        });
    };
    Some(SwarmView {
        info_hash: info_hash.to_string(),
        seeders: s.seeders,
        leechers: s.leechers,
        completed: s.completed,
        peers: s
            .peers
            .into_iter()
            .take(200)
            .map(|p| SwarmPeer {
                completion: p.completion,
                upload_rate: p.upload_rate,
                download_rate: p.download_rate,
                is_seed: p.is_seed,
                client: p.client,
            })
            .collect(),
    })
}

fn tracker_rows(app: &App, t: &TorrentDetail, swarm: Option<&SwarmView>) -> Vec<TrackerRow> {
    let mut rows = Vec::new();
    if let (Some(url), Some(s)) = (&app.announce_url, swarm) {
        rows.push(TrackerRow {
            url: url.clone(),
            embedded: true,
            seeders: Some(u64::from(s.seeders)),
            leechers: Some(u64::from(s.leechers)),
            completed: Some(u64::from(s.completed)),
            scraped_at: None,
            error: None,
        });
    }
    for s in &t.tracker_stats {
        if Some(&s.url) == app.announce_url.as_ref() {
            continue;
        }
        rows.push(TrackerRow {
            url: s.url.clone(),
            embedded: false,
            seeders: s.seeders,
            leechers: s.leechers,
            completed: s.completed,
            scraped_at: s.scraped_at,
            error: s.error.clone(),
        });
    }
    // Trackers the torrent names that cannot be scraped are still listed.
    for u in t.trackers.iter().flatten() {
        if !rows.iter().any(|r| &r.url == u) && rows.len() < 50 {
            rows.push(TrackerRow {
                url: u.clone(),
                embedded: false,
                seeders: None,
                leechers: None,
                completed: None,
                scraped_at: None,
                error: None,
            });
        }
    }
    rows
}

async fn load_torrent(app: &Arc<App>, hash: &str) -> Result<TorrentJson, Failure> {
    let Some(bytes) = parse_hash(hash) else {
        return Err(Failure::new(StatusCode::NOT_FOUND, "no such torrent"));
    };
    let db = app.db.clone();
    let Some(detail) = blocking(move || db.torrent(&bytes)).await? else {
        return Err(Failure::new(StatusCode::NOT_FOUND, "no such torrent"));
    };
    let swarm = swarm_view(app, &detail.summary.info_hash);
    let mut detail = detail;
    if let Some(s) = &swarm {
        // The live figure may be ahead of the stored one (refreshed every few seconds).
        if u64::from(s.seeders) > detail.summary.seeders {
            detail.summary.seeders = u64::from(s.seeders);
            detail.summary.leechers = u64::from(s.leechers);
        }
    }
    Ok(TorrentJson {
        magnet: magnet_for(app, &detail),
        download_url: format!("/t/{}/download", detail.summary.info_hash),
        tracker_figures: tracker_rows(app, &detail, swarm.as_ref()),
        swarm,
        detail,
    })
}

async fn torrent_page(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, Failure> {
    let v = visitor(&app, &headers, peer).await?;
    let started = Instant::now();
    let t = load_torrent(&app, &hash).await?;
    app.metrics.torrent_page(started.elapsed());
    let csrf = v.csrf(&app);
    let html = pages::torrent(
        &v.frame(&app, &csrf),
        &t.detail,
        &t.magnet,
        &t.tracker_figures,
        t.swarm.as_ref(),
        now_unix(),
    );
    Ok(page(&v, &app, StatusCode::OK, html))
}

async fn swarm_fragment(State(app): State<Arc<App>>, Path(hash): Path<String>) -> Result<Response, Failure> {
    let view = parse_hash(&hash)
        .filter(|b| b.len() == 20)
        .and_then(|b| swarm_view(&app, &data_encoding::HEXLOWER.encode(&b)))
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "no swarm view"))?;
    Ok(Html(pages::swarm_table(&view).into_string()).into_response())
}

async fn download(State(app): State<Arc<App>>, Path(hash): Path<String>) -> Result<Response, Failure> {
    let Some(bytes) = parse_hash(&hash).filter(|b| b.len() == 20) else {
        return Err(Failure::new(StatusCode::NOT_FOUND, "no such torrent"));
    };
    let db = app.db.clone();
    let Some((name, file)) = blocking(move || db.torrent_file(&bytes)).await? else {
        return Err(Failure::new(StatusCode::NOT_FOUND, "no such torrent file"));
    };
    // A file name safe in a header: letters, digits and a few marks; the rest become `_`.
    let safe: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_. ()[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{}.torrent\"", safe.trim());
    let mut r = ([(header::CONTENT_TYPE, "application/x-bittorrent")], file).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

async fn upload_page(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let v = visitor(&app, &headers, peer).await?;
    let csrf = v.csrf(&app);
    let first = app.config.upload.categories.first().cloned().unwrap_or_default();
    Ok(page(
        &v,
        &app,
        StatusCode::OK,
        pages::upload(&v.frame(&app, &csrf), None, &first, ""),
    ))
}

/// The fields of an upload form.
#[derive(Debug, Default)]
struct UploadForm {
    torrent: Vec<u8>,
    too_large: bool,
    magnet: String,
    category: String,
    description: String,
    csrf: String,
}

async fn read_upload(app: &App, mut mp: Multipart) -> Result<UploadForm, String> {
    let max = app.config.upload.max_torrent_bytes;
    let max_text = app.config.upload.max_description_chars * 4 + 1024;
    let mut form = UploadForm::default();
    let mut fields = 0;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    form.too_large = true;
                    return Ok(form);
                }
                return Err(format!("the upload could not be read: {}", e.body_text()));
            }
        };
        fields += 1;
        if fields > 16 {
            return Err("too many form fields".into());
        }
        let name = field.name().unwrap_or_default().to_string();
        let cap = if name == "torrent" { max + 1 } else { max_text };
        let mut buf = Vec::new();
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(c)) => {
                    if buf.len() + c.len() > cap {
                        if name == "torrent" {
                            form.too_large = true;
                            return Ok(form);
                        }
                        return Err(format!("the field {name:?} is too long"));
                    }
                    buf.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        form.too_large = true;
                        return Ok(form);
                    }
                    return Err(format!("the upload could not be read: {}", e.body_text()));
                }
            }
        }
        let text = || String::from_utf8_lossy(&buf).into_owned();
        match name.as_str() {
            "torrent" => form.torrent = buf,
            "magnet" => form.magnet = text().trim().to_string(),
            "category" => form.category = text(),
            "description" => form.description = text().replace("\r\n", "\n"),
            "csrf" => form.csrf = text(),
            _ => {}
        }
    }
    Ok(form)
}

/// What an accepted upload answers.
#[derive(Debug, Clone, Serialize)]
pub struct Uploaded {
    /// Swarm info-hash, hex.
    pub info_hash: String,
    /// The torrent's page.
    pub url: String,
    /// The .torrent file.
    pub download_url: String,
    /// Its name.
    pub name: String,
}

/// Validate and store an upload.
async fn accept_upload(app: &Arc<App>, form: UploadForm, user: Option<&User>) -> Result<Uploaded, Failure> {
    let bad = |e: UploadError| Failure::new(StatusCode::BAD_REQUEST, e.to_string());
    if form.too_large {
        app.metrics.upload(false);
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::TooLarge {
                max: app.config.upload.max_torrent_bytes,
            }
            .to_string(),
        ));
    }
    let cfg = &app.config.upload;
    upload::check_fields(
        &form.category,
        &form.description,
        &cfg.categories,
        cfg.max_description_chars,
    )
    .map_err(|e| {
        app.metrics.upload(false);
        bad(e)
    })?;
    let bytes = if form.torrent.is_empty() && !form.magnet.is_empty() {
        let Some(fetcher) = app.metadata.clone() else {
            app.metrics.upload(false);
            return Err(bad(UploadError::MagnetUnsupported));
        };
        let magnet = metainfo::Magnet::parse(&form.magnet).map_err(|e| {
            app.metrics.upload(false);
            bad(UploadError::BadMagnet(e.to_string()))
        })?;
        let timeout = std::time::Duration::from_secs(cfg.magnet_timeout_secs.max(1));
        fetcher.fetch(magnet, timeout).await.map_err(|e| {
            app.metrics.upload(false);
            bad(UploadError::MetadataUnavailable(e))
        })?
    } else {
        form.torrent
    };
    let max = cfg.max_torrent_bytes;
    let validated = match tokio::task::spawn_blocking(move || upload::validate(bytes, max)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            app.metrics.upload(false);
            return Err(bad(e));
        }
        Err(_) => return Err(Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    };
    let (db, uid, cat, desc) = (
        app.db.clone(),
        user.map(|u| u.id),
        form.category,
        form.description,
    );
    let max_trackers = app.config.scrape.max_trackers_per_torrent;
    let v = validated.clone();
    blocking(move || db.insert_torrent(&v, &cat, &desc, uid, now_unix(), max_trackers))
        .await
        .inspect_err(|_| app.metrics.upload(false))?;
    app.metrics.upload(true);
    if let (Some(service), true) = (&app.tracker, app.config.embedded_tracker.feed_allow_list) {
        service.register(
            metainfo::InfoHashV1(validated.info_hash),
            Some(validated.size),
            validated.name.chars().take(200).collect(),
        );
    }
    let hex = data_encoding::HEXLOWER.encode(&validated.info_hash);
    Ok(Uploaded {
        url: format!("/t/{hex}"),
        download_url: format!("/t/{hex}/download"),
        info_hash: hex,
        name: validated.name,
    })
}

async fn upload_post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, Failure> {
    let v = visitor(&app, &headers, peer).await?;
    let csrf = v.csrf(&app);
    let first = app.config.upload.categories.first().cloned().unwrap_or_default();
    let fail = |status: StatusCode, msg: &str, cat: &str, desc: &str| {
        page(
            &v,
            &app,
            status,
            pages::upload(&v.frame(&app, &csrf), Some(msg), cat, desc),
        )
    };
    if !app.upload_limit.allow(v.ip, Instant::now()) {
        app.metrics.rate_limited();
        return Ok(fail(
            StatusCode::TOO_MANY_REQUESTS,
            "too many uploads from your address: wait a minute",
            &first,
            "",
        ));
    }
    let Ok(mp) = mp else {
        return Ok(fail(
            StatusCode::BAD_REQUEST,
            "the form must be sent as multipart/form-data",
            &first,
            "",
        ));
    };
    let form = match read_upload(&app, mp).await {
        Ok(f) => f,
        Err(e) => return Ok(fail(StatusCode::BAD_REQUEST, &e, &first, "")),
    };
    if !form.too_large && !v.check_csrf(&app, &form.csrf) {
        app.metrics.csrf_rejected();
        return Ok(fail(
            StatusCode::FORBIDDEN,
            "the form's security token is missing or stale: reload the page and try again",
            &first,
            "",
        ));
    }
    if app.config.upload.require_account && v.user.is_none() {
        return Ok(fail(
            StatusCode::UNAUTHORIZED,
            "sign in to upload",
            &form.category,
            &form.description,
        ));
    }
    let (cat, desc) = (form.category.clone(), form.description.clone());
    match accept_upload(&app, form, v.user.as_ref()).await {
        Ok(u) => Ok(Redirect::to(&u.url).into_response()),
        Err(f) => Ok(fail(f.status, &f.message, &cat, &desc)),
    }
}

/// The fields of the sign-in and registration forms.
#[derive(Debug, Deserialize)]
pub struct AccountForm {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// CSRF token (forms only).
    #[serde(default)]
    pub csrf: String,
}

async fn register_page(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    account_page(&app, &headers, peer, true).await
}

async fn login_page(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    account_page(&app, &headers, peer, false).await
}

/// The empty sign-up (`register`) or sign-in form.
async fn account_page(
    app: &Arc<App>,
    headers: &HeaderMap,
    peer: SocketAddr,
    register: bool,
) -> Result<Response, Failure> {
    let v = visitor(app, headers, peer).await?;
    let csrf = v.csrf(app);
    Ok(page(
        &v,
        app,
        StatusCode::OK,
        pages::account_form(&v.frame(app, &csrf), register, None, ""),
    ))
}

/// Start a session for `user`: its token and the cookie that carries it.
async fn start_session(app: &Arc<App>, user: &User) -> Result<(String, String, i64), Failure> {
    let token = auth::new_token();
    if token.is_empty() {
        return Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness available",
        ));
    }
    let secs = app.config.accounts.session_secs;
    let expires = now_unix().saturating_add(i64::try_from(secs).unwrap_or(i64::MAX / 2));
    let (db, h, id) = (app.db.clone(), auth::token_hash(&token), user.id);
    blocking(move || db.create_session(&h, id, expires)).await?;
    let cookie = auth::set_cookie(
        SESSION_COOKIE,
        &token,
        Some(secs),
        app.config.accounts.secure_cookies,
    );
    Ok((token, cookie, expires))
}

/// Check a name and password; the same time is spent when the name is unknown.
async fn check_login(app: &Arc<App>, name: &str, password: &str) -> Result<Option<User>, Failure> {
    let (db, n) = (app.db.clone(), name.to_string());
    let found = blocking(move || db.user_by_name(&n)).await?;
    let (hash, user) = match found {
        Some((u, h)) => (h, Some(u)),
        None => (app.dummy_hash.clone(), None),
    };
    let pw = password.to_string();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &pw))
        .await
        .unwrap_or(false);
    Ok(user.filter(|_| ok))
}

async fn create_account(app: &Arc<App>, name: &str, password: &str) -> Result<User, Failure> {
    if !app.config.accounts.open_registration {
        return Err(Failure::new(StatusCode::FORBIDDEN, "registration is closed"));
    }
    if !auth::valid_name(name) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "a name is 3-32 letters, digits, '_', '-' or '.'",
        ));
    }
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "a password is 8 to 1024 characters",
        ));
    }
    let (m, i, pw) = (
        app.config.accounts.argon2_memory_kib,
        app.config.accounts.argon2_iterations,
        password.to_string(),
    );
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw, m, i))
        .await
        .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (db, n) = (app.db.clone(), name.to_string());
    blocking(move || db.create_user(&n, &hash, now_unix())).await
}

async fn account_post(
    app: Arc<App>,
    peer: SocketAddr,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, axum::extract::rejection::FormRejection>,
    register: bool,
) -> Result<Response, Failure> {
    let v = visitor(&app, &headers, peer).await?;
    let csrf = v.csrf(&app);
    let Ok(Form(form)) = form else {
        return Ok(page(
            &v,
            &app,
            StatusCode::BAD_REQUEST,
            pages::account_form(
                &v.frame(&app, &csrf),
                register,
                Some("the form could not be read"),
                "",
            ),
        ));
    };
    let fail = |status: StatusCode, msg: &str| {
        page(
            &v,
            &app,
            status,
            pages::account_form(&v.frame(&app, &csrf), register, Some(msg), &form.name),
        )
    };
    if !app.login_limit.allow(v.ip, Instant::now()) {
        app.metrics.rate_limited();
        return Ok(fail(
            StatusCode::TOO_MANY_REQUESTS,
            "too many attempts from your address: wait a minute",
        ));
    }
    if !v.check_csrf(&app, &form.csrf) {
        app.metrics.csrf_rejected();
        return Ok(fail(
            StatusCode::FORBIDDEN,
            "the form's security token is missing or stale: reload the page and try again",
        ));
    }
    let user = if register {
        match create_account(&app, &form.name, &form.password).await {
            Ok(u) => u,
            Err(f) => return Ok(fail(f.status, &f.message)),
        }
    } else {
        match check_login(&app, &form.name, &form.password).await? {
            Some(u) => {
                app.metrics.login(true);
                u
            }
            None => {
                app.metrics.login(false);
                return Ok(fail(StatusCode::UNAUTHORIZED, "wrong name or password"));
            }
        }
    };
    let (_, cookie, _) = start_session(&app, &user).await?;
    let mut r = Redirect::to("/").into_response();
    if let Ok(c) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

async fn register_post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    account_post(app, peer, headers, form, true).await
}

async fn login_post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<AccountForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    account_post(app, peer, headers, form, false).await
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// CSRF token.
    #[serde(default)]
    pub csrf: String,
}

async fn logout_post(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    let v = visitor(&app, &headers, peer).await?;
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !v.check_csrf(&app, &sent) {
        app.metrics.csrf_rejected();
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "the form's security token is missing or stale: reload the page and try again",
        ));
    }
    if let Some(t) = &v.session_token {
        let (db, h) = (app.db.clone(), auth::token_hash(t));
        blocking(move || db.delete_session(&h)).await?;
    }
    let mut r = Redirect::to("/").into_response();
    let expired = auth::set_cookie(SESSION_COOKIE, "", Some(0), app.config.accounts.secure_cookies);
    if let Ok(c) = HeaderValue::from_str(&expired) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(b) = &app.config.web.base_url {
        return b.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn rss_feed(app: Arc<App>, headers: HeaderMap, category: Option<String>) -> Result<Response, Failure> {
    if let Some(c) = &category {
        if !app.config.upload.categories.contains(c) {
            return Err(Failure::new(StatusCode::NOT_FOUND, "no such category"));
        }
    }
    let (db, n, c) = (app.db.clone(), app.config.web.rss_items, category.clone());
    let items = blocking(move || db.recent(c.as_deref(), n)).await?;
    let title = match &category {
        Some(c) => format!("new in {c}"),
        None => "new torrents".into(),
    };
    let body = pages::rss(
        &app.config.web.site_name,
        &base_url(&app, &headers),
        &title,
        &items,
    );
    Ok((
        [(header::CONTENT_TYPE, "application/rss+xml; charset=utf-8")],
        body,
    )
        .into_response())
}

async fn rss_all(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    rss_feed(app, headers, None).await
}

async fn rss_category(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(category): Path<String>,
) -> Result<Response, Failure> {
    let c = category.strip_suffix(".xml").unwrap_or(&category).to_string();
    rss_feed(app, headers, Some(c)).await
}

async fn metrics(State(app): State<Arc<App>>) -> Result<Response, Failure> {
    let db = app.db.clone();
    let stats = blocking(move || db.stats()).await?;
    let body = app.metrics.render(&stats);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

// ----- JSON API -------------------------------------------------------------------------------------------

async fn api_search(
    State(app): State<Arc<App>>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let Query(p) = params.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()).api())?;
    let q = p.query(&app);
    let db = app.db.clone();
    let started = Instant::now();
    let result = blocking(move || db.search(&q)).await.map_err(Failure::api)?;
    app.metrics.search(started.elapsed());
    Ok(Json(result).into_response())
}

async fn api_torrent(State(app): State<Arc<App>>, Path(hash): Path<String>) -> Result<Response, Failure> {
    let started = Instant::now();
    let t = load_torrent(&app, &hash).await.map_err(Failure::api)?;
    app.metrics.torrent_page(started.elapsed());
    Ok(Json(t).into_response())
}

async fn api_swarm(State(app): State<Arc<App>>, Path(hash): Path<String>) -> Result<Response, Failure> {
    let view = parse_hash(&hash)
        .filter(|b| b.len() == 20)
        .and_then(|b| swarm_view(&app, &data_encoding::HEXLOWER.encode(&b)))
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "no swarm view (no embedded tracker?)").api())?;
    Ok(Json(view).into_response())
}

async fn api_upload(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, Failure> {
    let v = visitor(&app, &headers, peer).await.map_err(Failure::api)?;
    if !app.upload_limit.allow(v.ip, Instant::now()) {
        app.metrics.rate_limited();
        return Err(Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many uploads from your address",
        )
        .api());
    }
    // A browser session needs the CSRF header; a bearer token cannot be sent by another site's page.
    if bearer(&headers).is_none() {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !v.check_csrf(&app, sent) {
            app.metrics.csrf_rejected();
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "send Authorization: Bearer <token> (from /api/login), or the X-CSRF-Token header with a session cookie",
            )
            .api());
        }
    }
    if app.config.upload.require_account && v.user.is_none() {
        return Err(Failure::new(StatusCode::UNAUTHORIZED, "sign in to upload (POST /api/login)").api());
    }
    let mp = mp.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()).api())?;
    let form = read_upload(&app, mp)
        .await
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e).api())?;
    let u = accept_upload(&app, form, v.user.as_ref())
        .await
        .map_err(Failure::api)?;
    Ok((StatusCode::CREATED, Json(u)).into_response())
}

/// The API's sign-in body.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    /// Name.
    pub name: String,
    /// Password.
    pub password: String,
}

async fn api_login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    let ip = client_ip(&app, &headers, peer);
    if !app.login_limit.allow(ip, Instant::now()) {
        app.metrics.rate_limited();
        return Err(Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many attempts from your address",
        )
        .api());
    }
    let Json(b) = body.map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()).api())?;
    let Some(user) = check_login(&app, &b.name, &b.password)
        .await
        .map_err(Failure::api)?
    else {
        app.metrics.login(false);
        return Err(Failure::new(StatusCode::UNAUTHORIZED, "wrong name or password").api());
    };
    app.metrics.login(true);
    let (token, _, expires) = start_session(&app, &user).await.map_err(Failure::api)?;
    Ok(Json(serde_json::json!({ "token": token, "expires_at": expires, "user": user })).into_response())
}

async fn api_stats(State(app): State<Arc<App>>) -> Result<Response, Failure> {
    let db = app.db.clone();
    let stats = blocking(move || db.stats()).await.map_err(Failure::api)?;
    let tracker = app.tracker.as_ref().map(|t| t.global_stats());
    Ok(Json(serde_json::json!({
        "directory": stats,
        "tracker": tracker,
        "announce_url": app.announce_url,
    }))
    .into_response())
}

async fn api_categories(State(app): State<Arc<App>>) -> Response {
    Json(&app.config.upload.categories).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
