//! Storage: SQLite in WAL mode with versioned migrations, an FTS5 index over names, file names and
//! descriptions, one writer connection and a small pool of readers. Every statement is prepared with
//! parameters (`prepare_cached`); no SQL text is ever built from input (sort orders come from a fixed table).
//!
//! The uploaded .torrent bytes are stored exactly as uploaded and served back unchanged.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::upload::Validated;

/// The schema, one entry per version: migration `i` brings the database from version `i` to `i + 1`
/// (`PRAGMA user_version` holds the version). Never edit a released entry; add one.
const MIGRATIONS: &[&str] = &[
    // 1: torrents, their stored files, per-tracker figures, the full-text index, accounts.
    "CREATE TABLE torrents (
        id INTEGER PRIMARY KEY,
        info_hash BLOB NOT NULL UNIQUE,      -- the swarm hash: v1, or the truncated v2 of a v2-only torrent
        info_hash_v1 BLOB,
        info_hash_v2 BLOB,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        size INTEGER NOT NULL,
        file_count INTEGER NOT NULL,
        created_at INTEGER NOT NULL,         -- unix seconds
        uploader INTEGER,
        seeders INTEGER NOT NULL DEFAULT 0,  -- the best figure over its trackers
        leechers INTEGER NOT NULL DEFAULT 0,
        completed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX torrents_v2 ON torrents(info_hash_v2) WHERE info_hash_v2 IS NOT NULL;
    CREATE INDEX torrents_seeders ON torrents(seeders DESC, id DESC);
    CREATE INDEX torrents_category_id ON torrents(category, id DESC);
    CREATE INDEX torrents_category_seeders ON torrents(category, seeders DESC, id DESC);
    CREATE INDEX torrents_size ON torrents(size);
    CREATE INDEX torrents_name ON torrents(name);
    CREATE TABLE torrent_meta (
        torrent_id INTEGER PRIMARY KEY REFERENCES torrents(id) ON DELETE CASCADE,
        bytes BLOB NOT NULL,                 -- the .torrent exactly as uploaded
        description TEXT NOT NULL,
        files TEXT NOT NULL,                 -- JSON [[path, length], ...] (pad files left out)
        trackers TEXT NOT NULL,              -- JSON [[url, ...], ...] tiers
        piece_length INTEGER NOT NULL,
        version TEXT NOT NULL,
        private INTEGER NOT NULL,
        comment TEXT,
        created_by TEXT,
        creation_date INTEGER
    );
    CREATE TABLE tracker_stats (
        torrent_id INTEGER NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        seeders INTEGER,
        leechers INTEGER,
        completed INTEGER,
        scraped_at INTEGER,                  -- unix seconds of the last answer
        next_at INTEGER NOT NULL,            -- when to scrape next
        error TEXT,                          -- the last failure, cleared by an answer
        PRIMARY KEY (torrent_id, url)
    ) WITHOUT ROWID;
    CREATE INDEX tracker_stats_due ON tracker_stats(next_at);
    CREATE VIRTUAL TABLE torrents_fts USING fts5(
        name, files, description, tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,         -- SHA-256 of the cookie value: a stolen database holds no session
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_expiry ON sessions(expires_at);",
];

/// Rows a count stops at (a search for a common word says "10000+" rather than count a million rows).
pub const COUNT_CAP: u64 = 10_000;

/// Matches ranked by relevance (or date) when a search has more than [`COUNT_CAP`]: the newest this many
/// (see [`Db::search`]).
pub const RANK_WINDOW: u64 = 2_000;

/// The deepest page a search serves.
pub const MAX_PAGE: u32 = 1000;

/// Words of a query used at most.
const MAX_QUERY_WORDS: usize = 16;

/// File names put in the full-text index per torrent at most (bytes).
const MAX_FTS_FILES_BYTES: usize = 32 * 1024;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column could not be read back.
    #[error("database: stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The torrent is already listed.
    #[error("this torrent is already in the directory (info-hash {0})")]
    Duplicate(String),
    /// The user name is taken.
    #[error("the name {0:?} is taken")]
    NameTaken(String),
    /// A worker thread failed.
    #[error("database: {0}")]
    Internal(String),
    /// The database is newer than this program.
    #[error("database schema version {found} is newer than this program's {known}")]
    TooNew {
        /// Found in the file.
        found: i64,
        /// The newest this program knows.
        known: usize,
    },
}

/// One torrent in a list (search results, home page, RSS).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TorrentSummary {
    /// Database id.
    #[serde(skip)]
    pub id: i64,
    /// The swarm info-hash (v1, or truncated v2), 40 hex digits: the torrent's key in URLs.
    pub info_hash: String,
    /// The torrent's name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Total size in bytes.
    pub size: u64,
    /// Files (pad files not counted).
    pub file_count: u64,
    /// Upload time, unix seconds.
    pub created_at: i64,
    /// Best seeder figure over its trackers.
    pub seeders: u64,
    /// Leechers on the tracker with the most seeders.
    pub leechers: u64,
    /// Completed downloads, as that tracker counts them.
    pub completed: u64,
}

/// One tracker's figures for one torrent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackerStat {
    /// The announce URL.
    pub url: String,
    /// Seeders (none: never scraped successfully).
    pub seeders: Option<u64>,
    /// Leechers.
    pub leechers: Option<u64>,
    /// Completed downloads.
    pub completed: Option<u64>,
    /// When the figures were scraped, unix seconds.
    pub scraped_at: Option<i64>,
    /// The last failure, if the last scrape failed.
    pub error: Option<String>,
}

/// Everything the torrent page shows, from one row of each table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TorrentDetail {
    /// The list fields.
    #[serde(flatten)]
    pub summary: TorrentSummary,
    /// v1 info-hash, hex, if the torrent has v1 fields.
    pub info_hash_v1: Option<String>,
    /// v2 info-hash, hex (64 digits), if the torrent has v2 fields.
    pub info_hash_v2: Option<String>,
    /// The uploader's description.
    pub description: String,
    /// Files: path (with `/`) and length.
    pub files: Vec<(String, u64)>,
    /// Announce tiers as in the torrent.
    pub trackers: Vec<Vec<String>>,
    /// Piece length in bytes.
    pub piece_length: u64,
    /// "v1", "v2" or "hybrid".
    pub version: String,
    /// The private flag (BEP 27).
    pub private: bool,
    /// The torrent's comment.
    pub comment: Option<String>,
    /// The torrent's `created by`.
    pub created_by: Option<String>,
    /// The torrent's creation date, unix seconds.
    pub creation_date: Option<i64>,
    /// The uploader's name.
    pub uploader: Option<String>,
    /// Scraped figures per tracker.
    pub tracker_stats: Vec<TrackerStat>,
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Full-text relevance (bm25) weighted by seeders; seeders when there is no query.
    #[default]
    Relevance,
    /// Seeders.
    Seeders,
    /// Upload time.
    Date,
    /// Size.
    Size,
    /// Name.
    Name,
}

impl Sort {
    /// Every value, for forms.
    pub const ALL: [Sort; 5] = [Sort::Relevance, Sort::Seeders, Sort::Date, Sort::Size, Sort::Name];

    /// The value as in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Seeders => "seeders",
            Sort::Date => "date",
            Sort::Size => "size",
            Sort::Name => "name",
        }
    }

    /// Read a URL value; anything else is relevance.
    pub fn parse(s: &str) -> Sort {
        Sort::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .unwrap_or_default()
    }
}

/// A search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    /// The words (free text; only letters and digits count).
    pub text: String,
    /// Only this category.
    pub category: Option<String>,
    /// At least this many bytes.
    pub min_size: Option<u64>,
    /// At most this many bytes.
    pub max_size: Option<u64>,
    /// The order.
    pub sort: Sort,
    /// Ascending instead of the natural order (best, newest, largest first; names A to Z).
    pub reverse: bool,
    /// Page, from 1.
    pub page: u32,
    /// Results per page.
    pub per_page: u32,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    /// Matches, capped at [`COUNT_CAP`] (see `total_capped`).
    pub total: u64,
    /// The count stopped at the cap: there are at least `total`.
    pub total_capped: bool,
    /// This page, from 1.
    pub page: u32,
    /// Results per page.
    pub per_page: u32,
    /// The results.
    pub results: Vec<TorrentSummary>,
}

/// Totals for the stats API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirectoryStats {
    /// Torrents listed.
    pub torrents: u64,
    /// Accounts.
    pub users: u64,
    /// Sum of the torrents' best seeder figures.
    pub seeders: u64,
    /// Sum of their leechers.
    pub leechers: u64,
    /// Sum of their sizes in bytes.
    pub bytes: u64,
}

/// A user as the site knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A torrent-tracker pair due for a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueScrape {
    /// The torrent's id.
    pub torrent_id: i64,
    /// Its swarm info-hash.
    pub info_hash: [u8; 20],
    /// The tracker's announce URL.
    pub url: String,
}

/// The outcome of one scrape of one torrent on one tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrapeResult {
    /// Figures.
    Stats {
        /// Seeders.
        seeders: u32,
        /// Leechers.
        leechers: u32,
        /// Completed.
        completed: u32,
    },
    /// A failure, shown on the page.
    Failed(String),
}

/// A synthetic torrent for benchmarks: only what lists and search use (no file is stored, so it cannot be
/// downloaded). See [`Db::bulk_insert_synthetic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticTorrent {
    /// Swarm info-hash.
    pub info_hash: [u8; 20],
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Files (path, length).
    pub files: Vec<(String, u64)>,
    /// Description.
    pub description: String,
    /// Upload time, unix seconds.
    pub created_at: i64,
    /// Seeders, leechers, completed.
    pub seeders: u32,
    /// Leechers.
    pub leechers: u32,
}

/// A listed torrent for the allow-list: id, swarm info-hash, size, name.
pub type ListedHash = (i64, [u8; 20], u64, String);

/// The database: one writer and a pool of readers on the same WAL file.
#[derive(Debug)]
pub struct Db {
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    free: Condvar,
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "temp_store", "MEMORY")?;
    c.pragma_update(None, "cache_size", "-32768")?;
    c.pragma_update(None, "mmap_size", "268435456")?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(c: &mut Connection) -> Result<(), DbError> {
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() as i64 {
        return Err(DbError::TooNew {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = c.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The words of a free-text query as an FTS5 expression: each word quoted (so no FTS5 operator or syntax
/// from the input survives), all required. None when the query has no word.
pub fn fts_expression(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_QUERY_WORDS)
        .map(|w| format!("\"{}\"", w.chars().take(64).collect::<String>()))
        .collect();
    if words.is_empty() {
        None
    } else {
        Some(words.join(" "))
    }
}

const SUMMARY_COLS: &str =
    "t.id, t.info_hash, t.name, t.category, t.size, t.file_count, t.created_at, t.seeders, t.leechers, t.completed";

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<TorrentSummary> {
    let hash: Vec<u8> = r.get(1)?;
    Ok(TorrentSummary {
        id: r.get(0)?,
        info_hash: data_encoding::HEXLOWER.encode(&hash),
        name: r.get(2)?,
        category: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        file_count: r.get::<_, i64>(5)?.max(0) as u64,
        created_at: r.get(6)?,
        seeders: r.get::<_, i64>(7)?.max(0) as u64,
        leechers: r.get::<_, i64>(8)?.max(0) as u64,
        completed: r.get::<_, i64>(9)?.max(0) as u64,
    })
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.map(|x| x.max(0) as u64)
}

/// A page of results from a count capped at `COUNT_CAP + 1`.
fn page_of(counted: i64, page: u32, per_page: u32, results: Vec<TorrentSummary>) -> SearchPage {
    let counted = counted.max(0) as u64;
    SearchPage {
        total: counted.min(COUNT_CAP),
        total_capped: counted > COUNT_CAP,
        page,
        per_page,
        results,
    }
}

/// Clamp a u64 into SQLite's integer.
fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The ORDER BY clause for a search, from a fixed table (never from input).
fn order_clause(sort: Sort, reverse: bool, fts: bool) -> &'static str {
    match (sort, reverse, fts) {
        // bm25 is lower for better matches; scaled up to twice as good with seeders (saturating).
        (Sort::Relevance, false, true) => {
            "bm25(torrents_fts, 10.0, 2.0, 1.0) * (1.0 + t.seeders / (t.seeders + 10.0)), t.id DESC"
        }
        (Sort::Relevance, true, true) => {
            "bm25(torrents_fts, 10.0, 2.0, 1.0) * (1.0 + t.seeders / (t.seeders + 10.0)) DESC, t.id"
        }
        (Sort::Relevance | Sort::Seeders, false, _) => "t.seeders DESC, t.id DESC",
        (Sort::Relevance | Sort::Seeders, true, _) => "t.seeders, t.id",
        (Sort::Date, false, _) => "t.id DESC",
        (Sort::Date, true, _) => "t.id",
        (Sort::Size, false, _) => "t.size DESC, t.id DESC",
        (Sort::Size, true, _) => "t.size, t.id",
        (Sort::Name, false, _) => "t.name, t.id",
        (Sort::Name, true, _) => "t.name DESC, t.id DESC",
    }
}

impl Db {
    /// Open (creating if needed) the database at `path` with `readers` reader connections, and bring its
    /// schema up to date.
    pub fn open(path: &Path, readers: usize) -> Result<Db, DbError> {
        let mut writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers.max(1) {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )?;
            configure(&r)?;
            pool.push(r);
        }
        Ok(Db {
            writer: Mutex::new(writer),
            readers: Mutex::new(pool),
            free: Condvar::new(),
        })
    }

    /// The schema version this program writes.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let conn = {
            let mut pool = lock(&self.readers);
            loop {
                if let Some(c) = pool.pop() {
                    break c;
                }
                pool = self.free.wait(pool).unwrap_or_else(|p| p.into_inner());
            }
        };
        let out = f(&conn);
        lock(&self.readers).push(conn);
        self.free.notify_one();
        out
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let mut c = lock(&self.writer);
        f(&mut c)
    }

    /// Store a validated upload; returns its database id. The bytes go in unchanged.
    pub fn insert_torrent(
        &self,
        v: &Validated,
        category: &str,
        description: &str,
        uploader: Option<i64>,
        now: i64,
        max_trackers: usize,
    ) -> Result<i64, DbError> {
        let files_json = serde_json::to_string(&v.files)?;
        let trackers_json = serde_json::to_string(&v.trackers)?;
        let fts_files = fts_files(v.files.iter().map(|(p, _)| p.as_str()));
        self.write(|c| {
            let tx = c.transaction()?;
            let exists: Option<i64> = tx
                .prepare_cached("SELECT id FROM torrents WHERE info_hash = ?1")?
                .query_row(params![&v.info_hash[..]], |r| r.get(0))
                .optional()?;
            if exists.is_some() {
                return Err(DbError::Duplicate(data_encoding::HEXLOWER.encode(&v.info_hash)));
            }
            tx.prepare_cached(
                "INSERT INTO torrents (info_hash, info_hash_v1, info_hash_v2, name, category, size, file_count,
                 created_at, uploader) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                &v.info_hash[..],
                v.info_hash_v1.as_ref().map(|h| &h[..]),
                v.info_hash_v2.as_ref().map(|h| &h[..]),
                v.name,
                category,
                sql_int(v.size),
                v.files.len() as i64,
                now,
                uploader
            ])?;
            let id = tx.last_insert_rowid();
            tx.prepare_cached(
                "INSERT INTO torrent_meta (torrent_id, bytes, description, files, trackers, piece_length, version,
                 private, comment, created_by, creation_date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                id,
                v.bytes,
                description,
                files_json,
                trackers_json,
                sql_int(v.piece_length),
                v.version,
                v.private,
                v.comment,
                v.created_by,
                v.creation_date
            ])?;
            tx.prepare_cached("INSERT INTO torrents_fts (rowid, name, files, description) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![id, v.name, fts_files, description])?;
            let mut seen = std::collections::HashSet::new();
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO tracker_stats (torrent_id, url, next_at) VALUES (?1, ?2, ?3)",
            )?;
            for url in v.trackers.iter().flatten().filter(|u| scrapable(u)) {
                if seen.len() >= max_trackers {
                    break;
                }
                if seen.insert(url.as_str()) {
                    stmt.execute(params![id, url, now])?;
                }
            }
            drop(stmt);
            tx.commit()?;
            Ok(id)
        })
    }

    /// Insert synthetic torrents in one transaction (for the benchmark filler: about a million in a few
    /// minutes). They are searchable and listed like uploads but have no stored file and no trackers.
    /// Returns how many were inserted (duplicates of an existing info-hash are skipped).
    pub fn bulk_insert_synthetic(&self, torrents: &[SyntheticTorrent]) -> Result<usize, DbError> {
        self.write(|c| {
            let tx = c.transaction()?;
            let mut inserted = 0;
            {
                let mut t = tx.prepare_cached(
                    "INSERT OR IGNORE INTO torrents (info_hash, info_hash_v1, name, category, size, file_count,
                     created_at, seeders, leechers) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                let mut m = tx.prepare_cached(
                    "INSERT INTO torrent_meta (torrent_id, bytes, description, files, trackers, piece_length,
                     version, private) VALUES (?1, x'', ?2, ?3, '[]', 262144, 'v1', 0)",
                )?;
                let mut f = tx.prepare_cached(
                    "INSERT INTO torrents_fts (rowid, name, files, description) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for s in torrents {
                    let size: u64 = s.files.iter().map(|(_, l)| *l).sum();
                    let n = t.execute(params![
                        &s.info_hash[..],
                        s.name,
                        s.category,
                        sql_int(size),
                        s.files.len() as i64,
                        s.created_at,
                        s.seeders,
                        s.leechers
                    ])?;
                    if n == 0 {
                        continue;
                    }
                    let id = tx.last_insert_rowid();
                    m.execute(params![id, s.description, serde_json::to_string(&s.files)?])?;
                    f.execute(params![
                        id,
                        s.name,
                        fts_files(s.files.iter().map(|(p, _)| p.as_str())),
                        s.description
                    ])?;
                    inserted += 1;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
    }

    /// Maintenance after a bulk load (the benchmark filler runs it): merge the full-text index into one
    /// segment, refresh the query planner's statistics (`ANALYZE`) and fold the WAL back into the database.
    /// Safe at any time; it holds the writer for as long as it takes (about a minute per million rows).
    pub fn optimize(&self) -> Result<(), DbError> {
        self.write(|c| {
            c.execute_batch(
                "INSERT INTO torrents_fts (torrents_fts) VALUES ('optimize');
                 ANALYZE;",
            )?;
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    /// Search (or browse, with no words).
    ///
    /// A search matching more than [`COUNT_CAP`] torrents reports `total_capped`; sorted by relevance or
    /// date, it then ranks only the newest [`RANK_WINDOW`] matches (more for a page beyond them: the newest
    /// `page * per_page`). Relevance has to score every row it ranks (bm25 costs about 1-3 µs a row, plus a
    /// scan of each word's whole index entry), and a word in a third of a million torrents cannot be scored
    /// within a page's time budget. Searches with up to `COUNT_CAP` matches rank them all; sorting by
    /// seeders, size or name orders every match.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchPage, DbError> {
        let per_page = q.per_page.clamp(1, 200);
        let page = q.page.clamp(1, MAX_PAGE);
        let offset = i64::from(page - 1) * i64::from(per_page);
        let fts = fts_expression(&q.text);
        let min = q.min_size.map(sql_int);
        let max = q.max_size.map(sql_int);
        let order = order_clause(q.sort, q.reverse, fts.is_some());
        let filtered = q.category.is_some() || min.is_some() || max.is_some();
        // Relevance and date orders of a search with more matches than the count cap rank only the newest
        // RANK_WINDOW matches (see `search`'s documentation): that bounds the rows scored.
        let windowed = matches!(q.sort, Sort::Relevance | Sort::Date);
        self.read(|c| {
            let filter = "(?2 IS NULL OR t.category = ?2) AND (?3 IS NULL OR t.size >= ?3) \
                          AND (?4 IS NULL OR t.size <= ?4)";
            let cap = sql_int(COUNT_CAP) + 1;
            // The statement texts depend only on which fixed pieces are used, so each shape is prepared once.
            let Some(fts) = &fts else {
                let list_sql = format!(
                    "SELECT {SUMMARY_COLS} FROM torrents t WHERE {filter} ORDER BY {order} LIMIT ?5 OFFSET ?6"
                );
                let count_sql = format!("SELECT count(*) FROM (SELECT 1 FROM torrents t WHERE {filter} LIMIT ?5)");
                let results = c
                    .prepare_cached(&list_sql)?
                    .query_map(
                        params![None::<String>, q.category, min, max, i64::from(per_page), offset],
                        summary,
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                let counted: i64 = c.prepare_cached(&count_sql)?.query_row(
                    params![None::<String>, q.category, min, max, cap],
                    |r| r.get(0),
                )?;
                return Ok(page_of(counted, page, per_page, results));
            };
            let from = "torrents_fts JOIN torrents t ON t.id = torrents_fts.rowid";
            // Count first (up to the cap). Without filters the full-text index alone answers: no row of
            // `torrents` is read.
            let counted: i64 = if filtered {
                c.prepare_cached(&format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {from} WHERE torrents_fts MATCH ?1 AND {filter} LIMIT ?5)"
                ))?
                .query_row(params![fts, q.category, min, max, cap], |r| r.get(0))?
            } else {
                c.prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM torrents_fts WHERE torrents_fts MATCH ?1 LIMIT ?2)",
                )?
                .query_row(params![fts, cap], |r| r.get(0))?
            };
            // The lowest id ranked: the RANK_WINDOW-th newest match (or deeper, to cover the page asked for),
            // found by walking the index backwards (rowids only, nothing scored), then handed to FTS5 as a
            // rowid range.
            let mut lowest: i64 = 0;
            if windowed && counted > sql_int(COUNT_CAP) {
                let skip = sql_int(RANK_WINDOW).max(offset + i64::from(per_page)) - 1;
                let found: Option<i64> = if filtered {
                    c.prepare_cached(&format!(
                        "SELECT torrents_fts.rowid FROM {from} WHERE torrents_fts MATCH ?1 AND {filter}
                         ORDER BY torrents_fts.rowid DESC LIMIT 1 OFFSET ?5"
                    ))?
                    .query_row(params![fts, q.category, min, max, skip], |r| r.get(0))
                    .optional()?
                } else {
                    c.prepare_cached(
                        "SELECT rowid FROM torrents_fts WHERE torrents_fts MATCH ?1 ORDER BY rowid DESC
                         LIMIT 1 OFFSET ?2",
                    )?
                    .query_row(params![fts, skip], |r| r.get(0))
                    .optional()?
                };
                lowest = found.unwrap_or(0);
            }
            // Ids first, so the sort carries only the id and its keys (not names and hashes) for each of the
            // rows ranked; then the page's rows by id.
            let ids_sql = format!(
                "SELECT t.id FROM {from} WHERE torrents_fts MATCH ?1 AND torrents_fts.rowid >= ?7 AND {filter}
                 ORDER BY {order} LIMIT ?5 OFFSET ?6"
            );
            let ids = c
                .prepare_cached(&ids_sql)?
                .query_map(
                    params![fts, q.category, min, max, i64::from(per_page), offset, lowest],
                    |r| r.get::<_, i64>(0),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let mut by_id = c.prepare_cached(&format!("SELECT {SUMMARY_COLS} FROM torrents t WHERE t.id = ?1"))?;
            let mut results = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(s) = by_id.query_row(params![id], summary).optional()? {
                    results.push(s);
                }
            }
            Ok(page_of(counted, page, per_page, results))
        })
    }

    /// The newest torrents (in `category`, if given).
    pub fn recent(&self, category: Option<&str>, limit: u32) -> Result<Vec<TorrentSummary>, DbError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {SUMMARY_COLS} FROM torrents t WHERE (?1 IS NULL OR t.category = ?1) ORDER BY t.id DESC LIMIT ?2"
            );
            Ok(c.prepare_cached(&sql)?
                .query_map(params![category, limit], summary)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The torrents with the most seeders.
    pub fn popular(&self, limit: u32) -> Result<Vec<TorrentSummary>, DbError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {SUMMARY_COLS} FROM torrents t WHERE t.seeders > 0 ORDER BY t.seeders DESC, t.id DESC LIMIT ?1"
            );
            Ok(c.prepare_cached(&sql)?
                .query_map(params![limit], summary)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Look a torrent up by its swarm info-hash (20 bytes) or v2 info-hash (32 bytes).
    pub fn torrent(&self, hash: &[u8]) -> Result<Option<TorrentDetail>, DbError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {SUMMARY_COLS}, t.info_hash_v1, t.info_hash_v2, m.description, m.files, m.trackers,
                 m.piece_length, m.version, m.private, m.comment, m.created_by, m.creation_date, u.name
                 FROM torrents t JOIN torrent_meta m ON m.torrent_id = t.id LEFT JOIN users u ON u.id = t.uploader
                 WHERE t.info_hash = ?1 OR (length(?1) = 32 AND t.info_hash_v2 = ?1)"
            );
            let row = c
                .prepare_cached(&sql)?
                .query_row(params![hash], |r| {
                    Ok((
                        summary(r)?,
                        r.get::<_, Option<Vec<u8>>>(10)?,
                        r.get::<_, Option<Vec<u8>>>(11)?,
                        r.get::<_, String>(12)?,
                        r.get::<_, String>(13)?,
                        r.get::<_, String>(14)?,
                        r.get::<_, i64>(15)?,
                        r.get::<_, String>(16)?,
                        r.get::<_, bool>(17)?,
                        r.get::<_, Option<String>>(18)?,
                        r.get::<_, Option<String>>(19)?,
                        r.get::<_, Option<i64>>(20)?,
                        r.get::<_, Option<String>>(21)?,
                    ))
                })
                .optional()?;
            let Some((s, v1, v2, description, files, trackers, pl, version, private, comment, created_by, cd, up)) =
                row
            else {
                return Ok(None);
            };
            let tracker_stats = c
                .prepare_cached(
                    "SELECT url, seeders, leechers, completed, scraped_at, error FROM tracker_stats
                     WHERE torrent_id = ?1 ORDER BY url",
                )?
                .query_map(params![s.id], |r| {
                    Ok(TrackerStat {
                        url: r.get(0)?,
                        seeders: opt_u64(r.get(1)?),
                        leechers: opt_u64(r.get(2)?),
                        completed: opt_u64(r.get(3)?),
                        scraped_at: r.get(4)?,
                        error: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(TorrentDetail {
                summary: s,
                info_hash_v1: v1.map(|h| data_encoding::HEXLOWER.encode(&h)),
                info_hash_v2: v2.map(|h| data_encoding::HEXLOWER.encode(&h)),
                description,
                files: serde_json::from_str(&files)?,
                trackers: serde_json::from_str(&trackers)?,
                piece_length: pl.max(0) as u64,
                version,
                private,
                comment,
                created_by,
                creation_date: cd,
                uploader: up,
                tracker_stats,
            }))
        })
    }

    /// The stored .torrent bytes and name of a torrent (by swarm info-hash); None if unknown or synthetic.
    pub fn torrent_file(&self, info_hash: &[u8]) -> Result<Option<(String, Vec<u8>)>, DbError> {
        self.read(|c| {
            let row: Option<(String, Vec<u8>)> = c
                .prepare_cached(
                    "SELECT t.name, m.bytes FROM torrents t JOIN torrent_meta m ON m.torrent_id = t.id
                     WHERE t.info_hash = ?1",
                )?
                .query_row(params![info_hash], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(row.filter(|(_, b)| !b.is_empty()))
        })
    }

    /// Every listed swarm info-hash with its size and name, in id order from `after_id`, at most `limit`
    /// (for feeding the tracker's allow-list at start).
    pub fn info_hashes(&self, after_id: i64, limit: u32) -> Result<Vec<ListedHash>, DbError> {
        self.read(|c| {
            let mut out = Vec::new();
            let mut stmt = c.prepare_cached(
                "SELECT id, info_hash, size, name FROM torrents WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after_id, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            for row in rows {
                let (id, h, size, name) = row?;
                if let Ok(h) = <[u8; 20]>::try_from(h.as_slice()) {
                    out.push((id, h, size.max(0) as u64, name));
                }
            }
            Ok(out)
        })
    }

    /// Totals.
    pub fn stats(&self) -> Result<DirectoryStats, DbError> {
        self.read(|c| {
            let (torrents, seeders, leechers, bytes): (i64, i64, i64, i64) = c
                .prepare_cached(
                    "SELECT count(*), coalesce(sum(seeders), 0), coalesce(sum(leechers), 0), coalesce(sum(size), 0)
                     FROM torrents",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let users: i64 = c.prepare_cached("SELECT count(*) FROM users")?.query_row([], |r| r.get(0))?;
            Ok(DirectoryStats {
                torrents: torrents.max(0) as u64,
                users: users.max(0) as u64,
                seeders: seeders.max(0) as u64,
                leechers: leechers.max(0) as u64,
                bytes: bytes.max(0) as u64,
            })
        })
    }

    // ----- scraping -----------------------------------------------------------------------------------

    /// Up to `limit` torrent-tracker pairs whose next scrape time has come.
    pub fn due_scrapes(&self, now: i64, limit: usize) -> Result<Vec<DueScrape>, DbError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT s.torrent_id, t.info_hash, s.url FROM tracker_stats s JOIN torrents t ON t.id = s.torrent_id
                 WHERE s.next_at <= ?1 ORDER BY s.next_at LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (torrent_id, h, url) = row?;
                if let Ok(info_hash) = <[u8; 20]>::try_from(h.as_slice()) {
                    out.push(DueScrape {
                        torrent_id,
                        info_hash,
                        url,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Record scrape outcomes (all in one transaction) and refresh the torrents' best figures.
    pub fn record_scrapes(
        &self,
        results: &[(i64, String, ScrapeResult)],
        now: i64,
        next_at: i64,
    ) -> Result<(), DbError> {
        self.write(|c| {
            let tx = c.transaction()?;
            {
                let mut ok = tx.prepare_cached(
                    "INSERT INTO tracker_stats (torrent_id, url, seeders, leechers, completed, scraped_at, next_at, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)
                     ON CONFLICT (torrent_id, url) DO UPDATE SET seeders = ?3, leechers = ?4, completed = ?5,
                     scraped_at = ?6, next_at = ?7, error = NULL",
                )?;
                let mut failed = tx.prepare_cached(
                    "UPDATE tracker_stats SET error = ?3, next_at = ?4 WHERE torrent_id = ?1 AND url = ?2",
                )?;
                let mut best = tx.prepare_cached(
                    "UPDATE torrents SET (seeders, leechers, completed) =
                     (SELECT coalesce(seeders, 0), coalesce(leechers, 0), coalesce(completed, 0) FROM tracker_stats
                      WHERE torrent_id = ?1 AND seeders IS NOT NULL ORDER BY seeders DESC, leechers DESC LIMIT 1)
                     WHERE id = ?1 AND EXISTS (SELECT 1 FROM tracker_stats WHERE torrent_id = ?1 AND seeders IS NOT NULL)",
                )?;
                let mut touched = std::collections::BTreeSet::new();
                for (id, url, result) in results {
                    match result {
                        ScrapeResult::Stats {
                            seeders,
                            leechers,
                            completed,
                        } => {
                            ok.execute(params![id, url, seeders, leechers, completed, now, next_at])?;
                            touched.insert(*id);
                        }
                        ScrapeResult::Failed(e) => {
                            let e: String = e.chars().take(300).collect();
                            failed.execute(params![id, url, e, next_at])?;
                        }
                    }
                }
                for id in touched {
                    best.execute(params![id])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Record live figures from the embedded tracker (by swarm info-hash) under `url`, for the torrents the
    /// directory lists; returns how many rows changed.
    pub fn record_embedded(
        &self,
        url: &str,
        figures: &[([u8; 20], u32, u32, u32)],
        now: i64,
    ) -> Result<usize, DbError> {
        let mut results = Vec::with_capacity(figures.len());
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT id FROM torrents WHERE info_hash = ?1")?;
            for (h, s, l, d) in figures {
                if let Some(id) = stmt
                    .query_row(params![&h[..]], |r| r.get::<_, i64>(0))
                    .optional()?
                {
                    results.push((
                        id,
                        url.to_string(),
                        ScrapeResult::Stats {
                            seeders: *s,
                            leechers: *l,
                            completed: *d,
                        },
                    ));
                }
            }
            Ok(())
        })?;
        let n = results.len();
        // Embedded rows are refreshed from the tracker in memory, never scraped over the network.
        self.record_scrapes(&results, now, i64::MAX)?;
        Ok(n)
    }

    // ----- accounts -----------------------------------------------------------------------------------

    /// Create an account; the hash is a PHC string.
    pub fn create_user(&self, name: &str, password_hash: &str, now: i64) -> Result<User, DbError> {
        self.write(|c| {
            let n = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO users (name, password_hash, created_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![name, password_hash, now])?;
            if n == 0 {
                return Err(DbError::NameTaken(name.to_string()));
            }
            Ok(User {
                id: c.last_insert_rowid(),
                name: name.to_string(),
            })
        })
    }

    /// A user and their password hash, by name (case-insensitive).
    pub fn user_by_name(&self, name: &str) -> Result<Option<(User, String)>, DbError> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT id, name, password_hash FROM users WHERE name = ?1")?
                    .query_row(params![name], |r| {
                        Ok((
                            User {
                                id: r.get(0)?,
                                name: r.get(1)?,
                            },
                            r.get(2)?,
                        ))
                    })
                    .optional()?,
            )
        })
    }

    /// Store a session (by the SHA-256 of its token).
    pub fn create_session(
        &self,
        token_hash: &[u8; 32],
        user_id: i64,
        expires_at: i64,
    ) -> Result<(), DbError> {
        self.write(|c| {
            c.prepare_cached("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)")?
                .execute(params![&token_hash[..], user_id, expires_at])?;
            Ok(())
        })
    }

    /// The user of a live session.
    pub fn session_user(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<User>, DbError> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT u.id, u.name FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
            )?
            .query_row(params![&token_hash[..], now], |r| {
                Ok(User {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })
            .optional()?)
        })
    }

    /// End a session.
    pub fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), DbError> {
        self.write(|c| {
            c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute(params![&token_hash[..]])?;
            Ok(())
        })
    }

    /// Drop expired sessions.
    pub fn expire_sessions(&self, now: i64) -> Result<usize, DbError> {
        self.write(|c| {
            Ok(c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
                .execute(params![now])?)
        })
    }
}

/// Whether the scraper can ask this tracker (HTTP(S) with a BEP 48 scrape URL, or UDP).
pub fn scrapable(url: &str) -> bool {
    url.starts_with("udp://")
        || ((url.starts_with("http://") || url.starts_with("https://"))
            && tracker_proto::http::scrape_url(url).is_some())
}

fn fts_files<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for p in paths {
        if out.len() + p.len() + 1 > MAX_FTS_FILES_BYTES {
            break;
        }
        out.push_str(p);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_expression_quotes_every_word_and_drops_operators() {
        assert_eq!(
            fts_expression("Movie-xyz 2020").as_deref(),
            Some("\"Movie\" \"xyz\" \"2020\"")
        );
        assert_eq!(
            fts_expression("a\" OR 1=1; DROP TABLE torrents; --").as_deref(),
            Some("\"a\" \"OR\" \"1\" \"1\" \"DROP\" \"TABLE\" \"torrents\"")
        );
        assert_eq!(fts_expression("*** ()"), None);
    }

    #[test]
    fn migrations_run_once_and_record_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.db");
        drop(Db::open(&p, 1).unwrap());
        let db = Db::open(&p, 1).unwrap();
        let v: i64 = db
            .read(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(v as usize, Db::schema_version());
    }

    #[test]
    fn a_search_with_more_matches_than_the_count_cap_ranks_the_newest_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db"), 1).unwrap();
        let n = COUNT_CAP as u32 + 50;
        let rows: Vec<SyntheticTorrent> = (1..=n)
            .map(|i| SyntheticTorrent {
                info_hash: {
                    let mut h = [0u8; 20];
                    h[..4].copy_from_slice(&i.to_be_bytes());
                    h
                },
                // The oldest torrent is the best match (the word three times in a short name, most seeders).
                name: if i == 1 {
                    "common common common".into()
                } else {
                    format!("common torrent number {i}")
                },
                category: "other".into(),
                files: vec![(format!("f{i}.bin"), 1)],
                description: String::new(),
                created_at: i64::from(i),
                seeders: if i == 1 { 10_000 } else { 0 },
                leechers: 0,
            })
            .collect();
        assert_eq!(db.bulk_insert_synthetic(&rows).unwrap(), n as usize);
        let q = |page| SearchQuery {
            text: "common".into(),
            page,
            per_page: 50,
            ..Default::default()
        };
        let first = db.search(&q(1)).unwrap();
        assert!(first.total_capped);
        assert_eq!(first.total, COUNT_CAP);
        assert_eq!(first.results.len(), 50);
        // Outside the newest RANK_WINDOW matches, so not ranked on page 1 despite its score.
        let newest_window = i64::from(n) - RANK_WINDOW as i64;
        assert!(
            first.results.iter().all(|r| r.id > newest_window),
            "{:?}",
            first.results[0]
        );
        // A page beyond the window still has results: the window grows to cover it.
        let deep = db.search(&q(RANK_WINDOW as u32 / 50 + 3)).unwrap();
        assert_eq!(deep.results.len(), 50);
        // Sorting by seeders still orders every match.
        let sorted_by_seeders = db
            .search(&SearchQuery {
                text: "common".into(),
                sort: Sort::Seeders,
                per_page: 1,
                page: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(sorted_by_seeders.results[0].name, "common common common");
    }

    #[test]
    fn bulk_synthetic_rows_are_searchable_and_ranked_by_seeders() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db"), 2).unwrap();
        let mk = |i: u8, name: &str, seeders: u32| SyntheticTorrent {
            info_hash: [i; 20],
            name: name.into(),
            category: "movies".into(),
            files: vec![(format!("{name}/a.mkv"), 1000 * u64::from(i))],
            description: String::new(),
            created_at: i64::from(i),
            seeders,
            leechers: 0,
        };
        let n = db
            .bulk_insert_synthetic(&[
                mk(1, "alpha beta", 1),
                mk(2, "alpha gamma", 50),
                mk(3, "delta", 9),
            ])
            .unwrap();
        assert_eq!(n, 3);
        let page = db
            .search(&SearchQuery {
                text: "alpha".into(),
                per_page: 10,
                page: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(page.results[0].name, "alpha gamma");
        let page = db
            .search(&SearchQuery {
                text: "".into(),
                min_size: Some(2500),
                per_page: 10,
                page: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.results.len(), 1);
        assert_eq!(page.results[0].name, "delta");
    }
}
