//! The global directory: a web site and JSON API where people publish, find and fetch torrents, with
//! per-tracker seeder figures scraped over HTTP and UDP and an embedded bitswarm tracker whose swarms it
//! shows live.
//!
//! The server is handed its sockets and a shutdown signal, so tests bind port 0:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = directory::DirectoryConfig::default();
//! config.web.listen = "127.0.0.1:0".parse()?;
//! config.tracker.http.listen = "127.0.0.1:0".parse()?;
//! config.tracker.udp.listen = "127.0.0.1:0".parse()?;
//! config.database.path = "directory.db".into();
//! let listeners = directory::Listeners::bind(&config)?;
//! println!("site on http://{:?}", listeners.web_addr());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(directory::run(config, listeners, async { let _ = stopped.await; }));
//! let _ = stop.send(());
//! server.await??;
//! # Ok(()) }
//! ```
//!
//! # Storage
//! SQLite in WAL mode ([`db`]): versioned migrations (`PRAGMA user_version`), an FTS5 index over names, file
//! names and descriptions ranked by bm25 weighted with seeders, indexes for recent, popular and per-category
//! lists, one writer and a pool of readers, prepared statements only. The uploaded .torrent bytes are
//! stored exactly and served back byte for byte: **the info dict is never changed**. The directory's own
//! tracker is not written into the file; it is added to the magnet link shown for each (non-private)
//! torrent (outside `info`, so the info-hash is unchanged). For benchmarks, [`Db::bulk_insert_synthetic`]
//! fills the database quickly.
//!
//! # Pages and their stable element ids (for browser tests)
//! Every page: `#home-link`, `#nav-upload`, `#nav-login`, `#nav-register` (signed out), `#signed-in-as`,
//! `#logout-form` / `#logout-submit` (signed in); an error is shown in `#error` (error pages keep the
//! visitor's frame: signed in there too). Empty tables are `hidden` (a note below says so).
//! - `/` home: `#search-form` with `input[name=q]#search-q` and `#search-submit`; tables `#recent` and
//!   `#popular`, whose rows are `tr.result` (`data-info-hash`) with `a.result-link`, `td.seeders`.
//! - `/search?q=&category=&min_mb=&max_mb=&sort=relevance|seeders|date|size|name&order=desc|asc&page=`:
//!   `#search-form`, `#filter-form` (`#filter-category`, `#filter-min-mb`, `#filter-max-mb`, `#filter-sort`,
//!   `#filter-order`, `#filter-submit`), `#result-count`, table `#results` (rows as above), `#prev-page`,
//!   `#next-page`.
//! - `/t/{info-hash}` torrent: `#torrent-name`, `#magnet-link`, `#download-link`, `#torrent-size`
//!   (`data-bytes`), `#torrent-category`, `#info-hash-v1`, `#info-hash-v2`, `#seeders-total`,
//!   `#leechers-total`, `#uploader`, `#description`, table `#trackers` (rows `tr.tracker` with
//!   `data-embedded`, cells `td.seeders`, `td.leechers`, `td.completed`, `td.fresh`), the swarm view `#swarm`
//!   (`#swarm-summary` with `#swarm-seeders`, `#swarm-leechers`, `#swarm-completed`, table `#swarm-peers`
//!   with `tr.peer` rows and `span.completion`; refreshed every 5 s by `/static/app.js` from
//!   `/t/{info-hash}/swarm`, with the embedded tracker's row and the totals), table `#files`
//!   (`tr.file`). `/t/{info-hash}/download` is the .torrent.
//! - `/upload`: `#upload-form` (multipart) with `input[type=file][name=torrent]#upload-file`,
//!   `select[name=category]#upload-category`, `textarea[name=description]#upload-description`, hidden
//!   `csrf`, `#upload-submit`; a success redirects (303) to the torrent page, a refusal shows `#error`.
//! - `/register` and `/login`: `#register-form` / `#login-form` with `#register-name`, `#register-password`,
//!   `#register-submit` (and `login-` alike); success redirects to `/` with the session cookie.
//! - `/rss.xml` and `/rss/{category}.xml`; `/metrics` (Prometheus).
//!
//! # JSON API
//! `/api/search`, `/api/torrents/{hash}`, `/api/torrents/{hash}/swarm`, `/api/torrents/{hash}/download`,
//! `POST /api/upload` (multipart; `Authorization: Bearer` from `POST /api/login`, or a session cookie with
//! `X-CSRF-Token`), `/api/stats`, `/api/categories`; the OpenAPI document is `/api/openapi.json`
//! ([`web::OPENAPI`]). Errors are `{"error": "..."}`; an invalid torrent's error is the parser's reason.
//!
//! # Security
//! Pages are built with `maud`, which escapes every value; responses carry a strict Content-Security-Policy.
//! Passwords are Argon2id hashes; session tokens are random and stored as SHA-256; cookies are HttpOnly,
//! SameSite=Lax and Secure (unless `accounts.secure_cookies = false`). Every form carries a CSRF token
//! derived from a per-visitor cookie and a server secret. Sign-ins, registrations and uploads are
//! rate-limited per address. No page or API answer contains a peer's address.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod auth;
pub mod config;
pub mod db;
pub mod metrics;
pub mod pages;
pub mod scrape;
pub mod server;
pub mod upload;
pub mod web;

pub use config::DirectoryConfig;
pub use db::{Db, DbError, SearchQuery, Sort, SyntheticTorrent};
pub use server::{run, run_with, Listeners, ServerError};
