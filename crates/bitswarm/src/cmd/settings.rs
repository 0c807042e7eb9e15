//! The peer client's settings (`get`, `seed`): one serde tree with defaults, read from an optional TOML file
//! (`--config FILE`, else `$XDG_CONFIG_HOME/bitswarm/client.toml` or `~/.config/bitswarm/client.toml` when
//! it exists), then `BITSWARM_CLIENT__<KEY>` / `BITSWARM_CLIENT__<SECTION>__<KEY>` environment variables,
//! then the command-line flags; `--print-config` shows the result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Environment variables with this prefix override the file (`BITSWARM_CLIENT__MAX_PEERS=100`,
/// `BITSWARM_CLIENT__DHT__ENABLED=false`).
pub const ENV_PREFIX: &str = "BITSWARM_CLIENT__";

/// Everything `get` and `seed` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where to accept peer connections (unset: all addresses, first free port of 6881-6889).
    pub listen: Option<SocketAddr>,
    /// Download limit for the whole process per second ("10M", "500K"; "0": none).
    pub max_down: String,
    /// Upload limit for the whole process per second ("0": none).
    pub max_up: String,
    /// Most connections per torrent.
    pub max_peers: usize,
    /// Most connections in all.
    pub max_connections: usize,
    /// Where resume data (and the DHT's table) is kept (unset: $XDG_STATE_HOME/bitswarm/resume or
    /// ~/.local/state/bitswarm/resume).
    pub resume_dir: Option<PathBuf>,
    /// Seconds between resume-data saves while pieces complete.
    pub resume_interval: u64,
    /// Contact the torrents' trackers.
    pub trackers: bool,
    /// The port told to trackers when it differs from the listen port.
    pub announce_port: Option<u16>,
    /// The Mainline DHT (BEP 5).
    pub dht: DhtSettings,
    /// Local service discovery (BEP 14).
    pub lsd: LsdSettings,
    /// Memory and disk.
    pub disk: DiskSettings,
}

/// The DHT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhtSettings {
    /// Run a DHT node (private torrents never use it).
    pub enabled: bool,
    /// Nodes to join through (HOST:PORT).
    pub bootstrap: Vec<String>,
}

/// Local service discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LsdSettings {
    /// Announce torrents and find peers by multicast on the local network (off: multicast leaves the machine).
    pub enabled: bool,
}

/// Memory and disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskSettings {
    /// MiB of pieces being downloaded held in memory per torrent (verified there, written whole).
    pub piece_cache_mib: usize,
    /// MiB of whole pieces kept per torrent for uploads.
    pub read_cache_mib: usize,
    /// Write verified pieces with O_DIRECT where the file system allows (no page-cache copy).
    pub direct_writes: bool,
    /// Disk threads (0: one per core).
    pub threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let c = client::ClientConfig::default();
        Settings {
            listen: None,
            max_down: "0".into(),
            max_up: "0".into(),
            max_peers: c.max_peers_per_torrent,
            max_connections: c.max_connections,
            resume_dir: None,
            resume_interval: c.resume_interval.as_secs(),
            trackers: true,
            announce_port: None,
            dht: DhtSettings::default(),
            lsd: LsdSettings::default(),
            disk: DiskSettings::default(),
        }
    }
}

impl Default for DhtSettings {
    fn default() -> Self {
        DhtSettings {
            enabled: true,
            bootstrap: super::peer::DEFAULT_BOOTSTRAP
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Default for DiskSettings {
    fn default() -> Self {
        let c = client::ClientConfig::default();
        DiskSettings {
            piece_cache_mib: c.piece_cache >> 20,
            read_cache_mib: c.read_cache >> 20,
            direct_writes: c.direct_writes,
            threads: 0,
        }
    }
}

/// The default settings file, when it exists.
pub fn default_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    let f = base.join("bitswarm/client.toml");
    f.is_file().then_some(f)
}

impl Settings {
    /// Defaults, then `file` (or the default file), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        let file = file.map(Path::to_path_buf).or_else(default_file);
        if let Some(f) = &file {
            if !f.is_file() {
                anyhow::bail!("{}: no such configuration file", f.display());
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        let s: Settings = fig
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .with_context(|| match &file {
                Some(f) => format!("configuration ({})", f.display()),
                None => "configuration (environment)".into(),
            })?;
        Ok(s)
    }

    /// The whole tree as TOML with a header, for `--print-config`.
    pub fn to_commented_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        format!(
            "# bitswarm client configuration (get, seed); every key may be left out.\n\
             # Read from --config FILE, else $XDG_CONFIG_HOME/bitswarm/client.toml (~/.config/...) when it exists;\n\
             # then BITSWARM_CLIENT__<KEY> or BITSWARM_CLIENT__<SECTION>__<KEY> (e.g. BITSWARM_CLIENT__DHT__ENABLED=false);\n\
             # then the command-line flags. BITSWARM_DHT_BOOTSTRAP (comma-separated) replaces dht.bootstrap.\n\n{body}"
        )
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let s = Settings::default();
        let back: Settings = toml::from_str(&s.to_commented_toml()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client.toml");
        std::fs::write(
            &f,
            "max_peers = 7\n[dht]\nbootstrap = [\"127.0.0.1:7000\"]\n[disk]\npiece_cache_mib = 32\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("BITSWARM_CLIENT__DHT__ENABLED", "false");
            jail.set_env("BITSWARM_CLIENT__MAX_UP", "1M");
            let s = Settings::load(Some(&f)).map_err(|e| e.to_string())?;
            assert_eq!(s.max_peers, 7);
            assert_eq!(s.dht.bootstrap, vec!["127.0.0.1:7000".to_string()]);
            assert!(!s.dht.enabled);
            assert_eq!(s.max_up, "1M");
            assert_eq!(s.disk.piece_cache_mib, 32);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client.toml");
        std::fs::write(&f, "max_peer = 7\n").unwrap();
        let e = format!("{:#}", Settings::load(Some(&f)).unwrap_err());
        assert!(e.contains("max_peer"), "{e}");
    }
}
