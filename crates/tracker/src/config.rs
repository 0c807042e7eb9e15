//! The tracker's configuration: one serde tree with defaults for everything, read from built-in defaults,
//! then an optional TOML file, then `BITSWARM_TRACKER__SECTION__KEY` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use tracker_core::SwarmConfig;

/// Environment variables with this prefix override the file (`__` separates levels:
/// `BITSWARM_TRACKER__UDP__WORKERS=4`, `BITSWARM_TRACKER__SWARM__MODE=private`).
pub const ENV_PREFIX: &str = "BITSWARM_TRACKER__";

/// Everything the tracker server needs to know.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// The HTTP front end: announce, scrape, stats, metrics and a status page.
    pub http: HttpConfig,
    /// The UDP front end (BEP 15).
    pub udp: UdpConfig,
    /// The swarm store: intervals, limits, mode (open, allow-list, private), ratio rules.
    pub swarm: SwarmConfig,
    /// What survives a restart.
    pub persistence: PersistenceConfig,
    /// Who may see peer addresses in stats.
    pub admin: AdminConfig,
}

/// The HTTP front end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve HTTP at all. Default true.
    pub enabled: bool,
    /// Address to listen on. Default 0.0.0.0:6969.
    pub listen: SocketAddr,
    /// Use the announce's `ip` parameter as the peer's address instead of the connection's source
    /// (only for trusted set-ups: anyone could announce someone else's address). Default false.
    pub trust_ip_param: bool,
    /// Take the peer's address from this request header (set by a reverse proxy), e.g.
    /// `X-Forwarded-For` (its first address). Default: none, the connection's source address.
    pub real_ip_header: Option<String>,
}

/// The UDP front end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpConfig {
    /// Serve UDP at all. Default true.
    pub enabled: bool,
    /// Address to listen on. Default 0.0.0.0:6969.
    pub listen: SocketAddr,
    /// Worker sockets sharing the port with SO_REUSEPORT; 0 means one per core. Default 0.
    pub workers: usize,
    /// Socket receive buffer in bytes (the kernel may cap it). Default 4 MiB.
    pub recv_buffer: usize,
}

/// Persistence of what is of record (completed counters, allow-list, users, passkeys and their totals).
/// Peer lists are not saved: clients re-announce within an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// SQLite database file; none keeps everything in memory only. Default none.
    pub database: Option<PathBuf>,
    /// Seconds between saves (and one more at shutdown). Default 60.
    pub save_interval: u64,
}

/// Administration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// A bearer token that unlocks peer addresses in `/stats` and the admin API (register torrents, add
    /// users). None: addresses are never shown and the admin API is off. Default none.
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 6969)),
            trust_ip_param: false,
            real_ip_header: None,
        }
    }
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 6969)),
            workers: 0,
            recv_buffer: 4 << 20,
        }
    }
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            database: None,
            save_interval: 60,
        }
    }
}

/// A configuration that could not be read or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
    /// The file or an environment variable does not fit the tree.
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// The swarm settings contradict each other.
    #[error("configuration: [swarm] {0}")]
    Swarm(#[from] tracker_core::ConfigError),
    /// Another setting is out of range.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl TrackerConfig {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigLoadError> {
        let mut fig = Figment::from(Serialized::defaults(TrackerConfig::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        let config: TrackerConfig = fig
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Check the settings.
    pub fn validate(&self) -> Result<(), ConfigLoadError> {
        self.swarm.validate()?;
        if !self.http.enabled && !self.udp.enabled {
            return Err(ConfigLoadError::Invalid(
                "both http and udp are disabled: nothing to serve".into(),
            ));
        }
        if self.persistence.save_interval == 0 {
            return Err(ConfigLoadError::Invalid(
                "persistence.save_interval must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The whole tree as TOML, each section and field with its documentation, for `--print-config`.
    pub fn to_commented_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        let mut out = String::from(
            "# bitswarm tracker configuration (defaults shown). Every key may be left out.\n\
             # Environment overrides: BITSWARM_TRACKER__<SECTION>__<KEY>, e.g. BITSWARM_TRACKER__UDP__WORKERS=4\n\
             # [http]: announce/scrape/stats/metrics over HTTP; [udp]: BEP 15; [swarm]: intervals, limits,\n\
             # mode = \"open\" | \"allow_list\" | \"private\", min_ratio and ratio_grace_bytes for private trackers;\n\
             # [persistence]: database = \"tracker.db\" keeps completed counters, allow-list and users;\n\
             # [admin]: token = \"...\" unlocks peer addresses in /stats and the admin API.\n\n",
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
        let c = TrackerConfig::default();
        let text = c.to_commented_toml();
        let back: TrackerConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(
            &f,
            "[udp]\nworkers = 3\n[swarm]\ninterval = 600\nmin_interval = 60\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("BITSWARM_TRACKER__SWARM__MODE", "private");
            let c = TrackerConfig::load(Some(&f)).map_err(|e| e.to_string())?;
            assert_eq!(c.udp.workers, 3);
            assert_eq!(c.swarm.interval, 600);
            assert_eq!(c.swarm.mode, tracker_core::Mode::Private);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(&f, "[swarm]\ninterval = 10\nmin_interval = 20\n").unwrap();
        let e = TrackerConfig::load(Some(&f)).unwrap_err().to_string();
        assert!(
            e.contains("min_interval (20) must not exceed interval (10)"),
            "{e}"
        );
        std::fs::write(&f, "[udp]\nwokers = 3\n").unwrap();
        let e = TrackerConfig::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("wokers"), "{e}");
    }
}
