//! The directory's configuration: one serde tree with defaults for everything, read from built-in defaults,
//! then an optional TOML file, then `BITSWARM_DIRECTORY__SECTION__KEY` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use tracker::TrackerConfig;

/// Environment variables with this prefix override the file (`__` separates levels:
/// `BITSWARM_DIRECTORY__WEB__LISTEN=127.0.0.1:8080`, `BITSWARM_DIRECTORY__TRACKER__SWARM__MODE=allow_list`).
pub const ENV_PREFIX: &str = "BITSWARM_DIRECTORY__";

/// Everything the directory needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The web site and API.
    pub web: WebConfig,
    /// The SQLite database.
    pub database: DatabaseConfig,
    /// What an upload may be.
    pub upload: UploadConfig,
    /// Accounts and sessions.
    pub accounts: AccountConfig,
    /// Per-address rate limits.
    pub limits: LimitConfig,
    /// Periodic scrapes of the trackers torrents name.
    pub scrape: ScrapeConfig,
    /// The embedded bitswarm tracker.
    pub embedded_tracker: EmbeddedTrackerConfig,
    /// The tracker's own tree (HTTP/UDP listen addresses, swarm mode, ...), as `bitswarm tracker` reads it.
    pub tracker: TrackerConfig,
}

/// The web site and API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address to listen on. Default 0.0.0.0:8080.
    pub listen: SocketAddr,
    /// The site's name, shown in titles and feeds. Default "bitswarm directory".
    pub site_name: String,
    /// The site's public base URL (for RSS links), e.g. `https://dir.example`; none: taken from the
    /// request's Host header. Default none.
    pub base_url: Option<String>,
    /// Take the client's address from this header (set by a reverse proxy, first address), for rate limits.
    /// Default none: the connection's source address.
    pub real_ip_header: Option<String>,
    /// Results per search page (1-200). Default 50.
    pub page_size: u32,
    /// Torrents in the home page's recent and popular lists, and in an RSS feed. Default 20, 50.
    pub home_list: u32,
    /// Items in an RSS feed. Default 50.
    pub rss_items: u32,
    /// Reader connections in the pool (the writer is one more). Default 4.
    pub readers: usize,
}

/// The SQLite database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The file. Default `directory.db`.
    pub path: PathBuf,
}

/// What an upload may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Largest .torrent file accepted, in bytes. Default 8 MiB.
    pub max_torrent_bytes: usize,
    /// Longest description, in characters. Default 10,000.
    pub max_description_chars: usize,
    /// The categories offered (lower-case words). Default movies, tv, music, games, software, books,
    /// images, other.
    pub categories: Vec<String>,
    /// Uploads need an account. Default true.
    pub require_account: bool,
    /// How long a magnet upload may wait for its metadata from peers, in seconds. Default 60.
    pub magnet_timeout_secs: u64,
}

/// Accounts and sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountConfig {
    /// Anyone may register. Default true.
    pub open_registration: bool,
    /// Session lifetime in seconds. Default 30 days.
    pub session_secs: u64,
    /// Mark cookies `Secure` (sent over HTTPS only). Default true; turn off only for plain-HTTP set-ups
    /// such as tests on loopback.
    pub secure_cookies: bool,
    /// Argon2id memory cost in KiB. Default 19456 (OWASP's minimum for Argon2id).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations. Default 2.
    pub argon2_iterations: u32,
}

/// Per-address rate limits (token buckets: a burst, then a steady rate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Login and registration attempts per address: burst. Default 10.
    pub login_burst: u32,
    /// Login and registration attempts per address: per minute after the burst. Default 5.
    pub login_per_minute: u32,
    /// Uploads per address: burst. Default 10.
    pub upload_burst: u32,
    /// Uploads per address: per minute after the burst. Default 5.
    pub upload_per_minute: u32,
    /// Addresses tracked at once (the oldest are forgotten past it). Default 100,000.
    pub max_addresses: usize,
}

/// Periodic scrapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Scrape at all. Default true.
    pub enabled: bool,
    /// Seconds between two scrapes of one torrent on one tracker. Default 1800.
    pub interval_secs: u64,
    /// Seconds between two passes of the scraper (each takes what is due). Default 10.
    pub tick_secs: u64,
    /// Tracker-torrent pairs scraped per pass at most. Default 2000.
    pub batch: usize,
    /// Seconds before a tracker's answer is given up. Default 10.
    pub timeout_secs: u64,
    /// Trackers of one torrent scraped at most (the first in its announce list). Default 8.
    pub max_trackers_per_torrent: usize,
    /// Seconds between refreshes of the embedded tracker's figures into the database. Default 5.
    pub embedded_refresh_secs: u64,
}

/// The embedded bitswarm tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedTrackerConfig {
    /// Run it. Default true.
    pub enabled: bool,
    /// The announce URL people's clients should use (the tracker's public address), shown on torrent pages
    /// and added to magnet links. None: `http://<tracker.http.listen>/announce`. Default none.
    pub announce_url: Option<String>,
    /// Put every uploaded torrent on the tracker's allow-list (for `tracker.swarm.mode = "allow_list"`).
    /// Default true.
    pub feed_allow_list: bool,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        let mut tracker = TrackerConfig::default();
        tracker.http.listen = SocketAddr::from(([0, 0, 0, 0], 6969));
        tracker.udp.listen = SocketAddr::from(([0, 0, 0, 0], 6969));
        DirectoryConfig {
            web: WebConfig::default(),
            database: DatabaseConfig::default(),
            upload: UploadConfig::default(),
            accounts: AccountConfig::default(),
            limits: LimitConfig::default(),
            scrape: ScrapeConfig::default(),
            embedded_tracker: EmbeddedTrackerConfig::default(),
            tracker,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            site_name: "bitswarm directory".into(),
            base_url: None,
            real_ip_header: None,
            page_size: 50,
            home_list: 20,
            rss_items: 50,
            readers: 4,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: PathBuf::from("directory.db"),
        }
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_torrent_bytes: 8 << 20,
            max_description_chars: 10_000,
            categories: [
                "movies", "tv", "music", "games", "software", "books", "images", "other",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            require_account: true,
            magnet_timeout_secs: 60,
        }
    }
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig {
            open_registration: true,
            session_secs: 30 * 24 * 3600,
            secure_cookies: true,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
        }
    }
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            login_burst: 10,
            login_per_minute: 5,
            upload_burst: 10,
            upload_per_minute: 5,
            max_addresses: 100_000,
        }
    }
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            enabled: true,
            interval_secs: 1800,
            tick_secs: 10,
            batch: 2000,
            timeout_secs: 10,
            max_trackers_per_torrent: 8,
            embedded_refresh_secs: 5,
        }
    }
}

impl Default for EmbeddedTrackerConfig {
    fn default() -> Self {
        EmbeddedTrackerConfig {
            enabled: true,
            announce_url: None,
            feed_allow_list: true,
        }
    }
}

/// A configuration that could not be read or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    /// The file or an environment variable does not fit the tree.
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// The embedded tracker's settings are wrong.
    #[error("configuration: [tracker] {0}")]
    Tracker(#[from] tracker::config::ConfigLoadError),
    /// Another setting is out of range.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl DirectoryConfig {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigLoadError> {
        let mut fig = Figment::from(Serialized::defaults(DirectoryConfig::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        let config: DirectoryConfig = fig
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Check the settings.
    pub fn validate(&self) -> Result<(), ConfigLoadError> {
        if self.embedded_tracker.enabled {
            self.tracker.validate()?;
        }
        let bad = |m: &str| Err(ConfigLoadError::Invalid(m.into()));
        if !(1..=200).contains(&self.web.page_size) {
            return bad("web.page_size must be 1 to 200");
        }
        if self.web.readers == 0 || self.web.readers > 64 {
            return bad("web.readers must be 1 to 64");
        }
        if self.upload.categories.is_empty() {
            return bad("upload.categories must not be empty");
        }
        if self
            .upload
            .categories
            .iter()
            .any(|c| c.is_empty() || c.len() > 32 || !c.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        {
            return bad("upload.categories: each must be 1-32 lower-case letters or '-'");
        }
        if self.upload.max_torrent_bytes < 64 {
            return bad("upload.max_torrent_bytes must be at least 64");
        }
        if self.scrape.tick_secs == 0
            || self.scrape.interval_secs == 0
            || self.scrape.embedded_refresh_secs == 0
        {
            return bad("scrape intervals must be at least 1 second");
        }
        if self.limits.login_per_minute == 0 || self.limits.upload_per_minute == 0 {
            return bad("limits: rates must be at least 1 per minute");
        }
        Ok(())
    }

    /// The whole tree as TOML with a commented header, for `--print-config`.
    pub fn to_commented_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        let mut out = String::from(
            "# bitswarm directory configuration (defaults shown). Every key may be left out.\n\
             # Environment overrides: BITSWARM_DIRECTORY__<SECTION>__<KEY>, e.g. BITSWARM_DIRECTORY__WEB__LISTEN=127.0.0.1:8080\n\
             # [web]: the site and API; [database]: the SQLite file; [upload]: size cap, categories;\n\
             # [accounts]: sessions, cookies, Argon2id cost; [limits]: per-address login and upload rates;\n\
             # [scrape]: periodic HTTP/UDP scrapes of the trackers torrents name;\n\
             # [embedded_tracker]: the bitswarm tracker run beside the site; [tracker]: its own tree\n\
             # (as `bitswarm tracker --print-config` shows it).\n\n",
        );
        out.push_str(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = DirectoryConfig::default();
        let back: DirectoryConfig = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.toml");
        std::fs::write(
            &f,
            "[web]\npage_size = 20\n[tracker.swarm]\nmode = \"allow_list\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("BITSWARM_DIRECTORY__WEB__SITE_NAME", "Example");
            let c = DirectoryConfig::load(Some(&f)).map_err(|e| e.to_string())?;
            assert_eq!(c.web.page_size, 20);
            assert_eq!(c.web.site_name, "Example");
            assert_eq!(c.tracker.swarm.mode, tracker_core::Mode::AllowList);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.toml");
        std::fs::write(&f, "[web]\npage_sise = 3\n").unwrap();
        let e = DirectoryConfig::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("page_sise"), "{e}");
    }
}
