//! `bitswarm get`: download a torrent, verify it, and optionally keep seeding it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use client::{AddMagnet, AddTorrent, TorrentHandle};
use metainfo::{Magnet, Torrent};

use super::peer::{emit, is_magnet, json_loop, load_torrent, show, shutdown_signal, status_json, ClientArgs};
use crate::output::human_bytes;

pub const EXAMPLES: &str = "Examples:
  bitswarm get movie.torrent -o ~/Downloads
  bitswarm get https://example.org/disk.vmdk.torrent --max-down 10M --seed
  bitswarm get album.torrent --only .flac --listen 0.0.0.0:6881
  bitswarm get file.torrent --peer 192.0.2.7:6881 --no-trackers
  bitswarm get 'magnet:?xt=urn:btih:...&tr=http://tracker.example/announce' -o ~/Downloads
  bitswarm get --directory https://directory.example 'Movie-xyz'          # search, take the best match
  bitswarm get --directory https://directory.example 'debian iso' --pick 2

A magnet link's metadata comes from peers (BEP 9): its trackers (`tr`), its peers (`x.pe`) and --peer;
the status shows \"fetching metadata\" meanwhile. The fetched torrent is saved next to the resume data
(<resume dir>/<info-hash>.torrent), so running the same command again needs no peers for it.

Exit status: 0 once every wanted piece is downloaded and verified; 1 on an error; 130 when interrupted
(run the same command again to resume). Ctrl-C sends `stopped` to the trackers and saves resume data.";

/// `get` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .torrent file, an http(s) URL of one, or a magnet link (quote it: it contains `&`).
    #[arg(required_unless_present = "print_config")]
    pub torrent: Option<String>,
    /// The folder to download into (a multi-file torrent gets its own folder inside it).
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// Keep seeding after the download completes, until Ctrl-C.
    #[arg(long)]
    pub seed: bool,
    /// Only download files whose path contains PATTERN (repeat for more).
    #[arg(long, value_name = "PATTERN")]
    pub only: Vec<String>,
    /// Download pieces in order (for playing while downloading) instead of rarest first.
    #[arg(long)]
    pub sequential: bool,
    /// Search this directory site (its base URL) for TORRENT as words, list the matches with size and
    /// seeders, and download the best one (the directory ranks by relevance and seeders) or --pick N.
    #[arg(long, value_name = "URL")]
    pub directory: Option<String>,
    /// With --directory: take the Nth match (from 1) instead of the best.
    #[arg(long, value_name = "N", requires = "directory")]
    pub pick: Option<usize>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `get` downloads.
enum Source {
    Torrent(Box<Torrent>),
    Magnet(Magnet),
}

/// Where the torrent fetched for a magnet link is kept.
fn saved_torrent_path(resume_dir: &std::path::Path, hash_hex: &str) -> PathBuf {
    resume_dir.join(format!("{hash_hex}.torrent"))
}

/// The torrent an earlier run fetched for `magnet`, if it is there and has the link's info-hashes.
fn saved_torrent(resume_dir: Option<&std::path::Path>, magnet: &Magnet) -> Option<Torrent> {
    let hash = magnet.info_hashes().swarm_hash()?;
    let path = saved_torrent_path(resume_dir?, &hash.to_hex());
    let bytes = std::fs::read(&path).ok()?;
    match Torrent::from_bytes(bytes) {
        Ok(t)
            if magnet.v1.is_none_or(|h| t.info_hashes.v1 == Some(h))
                && magnet.v2.is_none_or(|h| t.info_hashes.v2 == Some(h)) =>
        {
            tracing::info!("using the metadata saved in {}", path.display());
            let mut t = t;
            // The link's trackers count even if the saved file lacks some.
            for tr in &magnet.trackers {
                if !t.trackers.iter().flatten().any(|x| x == tr) {
                    t.trackers.push(vec![tr.clone()]);
                }
            }
            Some(t)
        }
        _ => {
            tracing::warn!(
                "{} does not match the magnet link; fetching the metadata again",
                path.display()
            );
            None
        }
    }
}

/// Once the metadata of a magnet link is here, save it as a torrent file next to the resume data.
async fn save_fetched_torrent(handle: TorrentHandle, dir: PathBuf) {
    let Ok(torrent) = handle.wait_metadata().await else {
        return;
    };
    let path = saved_torrent_path(&dir, &handle.info_hash().to_hex());
    let result = std::fs::create_dir_all(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| super::create::write_atomically(&path, torrent.bytes()));
    match result {
        Ok(()) => tracing::info!("saved the fetched torrent to {}", path.display()),
        Err(e) => tracing::warn!("cannot save the fetched torrent to {}: {e:#}", path.display()),
    }
}

pub fn run(a: Args) -> Result<()> {
    let t0 = Instant::now();
    if a.client.print_config()? {
        return Ok(());
    }
    let src = a.torrent.clone().unwrap_or_default();
    let config = a.client.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let resume_dir = config.resume_dir.clone();
        let source = if let Some(dir_url) = &a.directory {
            Source::Torrent(Box::new(
                from_directory(dir_url, &src, a.pick, a.client.json).await?,
            ))
        } else if is_magnet(&src) {
            let magnet = Magnet::parse(&src).context("cannot read the magnet link")?;
            // A torrent fetched by an earlier run of this link needs no peers for its metadata.
            match saved_torrent(resume_dir.as_deref(), &magnet) {
                Some(t) => Source::Torrent(Box::new(t)),
                None => Source::Magnet(magnet),
            }
        } else {
            Source::Torrent(Box::new(load_torrent(&src).await?))
        };
        let name = match &source {
            Source::Torrent(t) => t.info.name.clone(),
            Source::Magnet(m) => m
                .display_name
                .clone()
                .or_else(|| m.info_hashes().swarm_hash().map(|h| h.to_hex()))
                .unwrap_or_default(),
        };
        let client = a.client.start_client(config).await?;
        tracing::info!("listening on {}", client.listen_addr());
        let handle = match source {
            Source::Torrent(torrent) => {
                let mut add = AddTorrent::new(*torrent, a.output.clone());
                add.only = a.only.clone();
                add.sequential = a.sequential;
                add.peers = a.client.peers.clone();
                client.add_torrent(add).await?
            }
            Source::Magnet(magnet) => {
                let mut add = AddMagnet::new(magnet, a.output.clone());
                add.only = a.only.clone();
                add.sequential = a.sequential;
                add.peers = a.client.peers.clone();
                let handle = client.add_magnet(add).await?;
                if !a.client.json {
                    eprintln!("{name}: fetching metadata from peers (magnet link)");
                }
                if let Some(dir) = resume_dir.clone() {
                    tokio::spawn(save_fetched_torrent(handle.clone(), dir));
                }
                handle
            }
        };
        let json = a.client.json;
        if json {
            emit(&serde_json::json!({"event": "listening", "addr": client.listen_addr().to_string()}));
        }
        if json {
            tokio::spawn(milestones(handle.clone(), t0));
        }
        let display = if json {
            tokio::spawn(json_loop(vec![(name.clone(), handle.clone())]))
        } else {
            tokio::spawn(show(handle.clone(), name.clone(), Duration::from_secs(5)))
        };
        let started = Instant::now();
        let outcome = tokio::select! {
            r = handle.wait_complete() => Some(r),
            () = shutdown_signal() => None,
        };
        if json {
            display.abort();
            emit(&status_json(&name, &handle));
        } else {
            let _ = tokio::time::timeout(Duration::from_secs(1), display).await;
        }
        let status = handle.status();
        match outcome {
            Some(Ok(())) => {
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "{name}: complete and verified, {} downloaded in {:.1} s ({}/s)",
                    human_bytes(status.downloaded),
                    secs,
                    human_bytes((status.downloaded as f64 / secs.max(0.001)) as u64)
                );
                if status.resumed_bytes > 0 || status.checked_bytes > 0 {
                    eprintln!(
                        "{name}: {} were already here ({} re-checked); downloaded {} bytes, resumed {} bytes",
                        human_bytes(status.resumed_bytes),
                        human_bytes(status.checked_bytes),
                        status.downloaded,
                        status.resumed_bytes
                    );
                }
                if a.seed {
                    eprintln!("{name}: seeding; Ctrl-C to stop");
                    let seeding = if json {
                        tokio::spawn(json_loop(vec![(name.clone(), handle.clone())]))
                    } else {
                        tokio::spawn(show(handle.clone(), name.clone(), Duration::from_secs(30)))
                    };
                    shutdown_signal().await;
                    seeding.abort();
                }
                client.shutdown().await;
                Ok(())
            }
            Some(Err(e)) => {
                client.shutdown().await;
                Err(e.into())
            }
            None => {
                client.shutdown().await;
                eprintln!(
                    "{name}: interrupted at {} of {}; run the same command to resume",
                    human_bytes(status.bytes_have),
                    human_bytes(status.bytes_have.saturating_add(status.bytes_left))
                );
                std::process::exit(130);
            }
        }
    })
}

/// With `--json`: `{"event":"metadata","seconds":S}` when a magnet's metadata is here and
/// `{"event":"first_piece","seconds":S}` when the first piece of this run is verified, seconds since `t0`
/// (for "magnet link to first byte" timings).
async fn milestones(handle: TorrentHandle, t0: Instant) {
    let mut rx = handle.watch();
    let mut metadata = rx.borrow().phase != client::Phase::FetchingMetadata;
    loop {
        let (phase, pieces) = {
            let s = rx.borrow_and_update();
            (s.phase.clone(), s.pieces_have)
        };
        if !metadata && phase != client::Phase::FetchingMetadata {
            metadata = true;
            emit(&serde_json::json!({"event": "metadata", "seconds": t0.elapsed().as_secs_f64()}));
        }
        if pieces > 0 {
            emit(&serde_json::json!({"event": "first_piece", "seconds": t0.elapsed().as_secs_f64()}));
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// One match from a directory's `/api/search`.
#[derive(Debug, serde::Deserialize)]
struct Match {
    info_hash: String,
    name: String,
    size: u64,
    seeders: u64,
    #[serde(default)]
    leechers: u64,
}

#[derive(Debug, serde::Deserialize)]
struct Matches {
    total: u64,
    results: Vec<Match>,
}

/// Step 1 of the seed's design: ask the directory for `words`, show the matches, fetch the chosen torrent
/// file (checked against the info-hash the directory listed).
async fn from_directory(base: &str, words: &str, pick: Option<usize>, json: bool) -> Result<Torrent> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        anyhow::bail!("--directory {base}: give the site's http:// or https:// address");
    }
    let q = utf8_percent_encode(words, NON_ALPHANUMERIC);
    let url = format!("{base}/api/search?q={q}");
    let body = net::fetch::get_bytes(&url, 4 << 20, Duration::from_secs(30))
        .await
        .with_context(|| format!("cannot search the directory ({url})"))?;
    let found: Matches =
        serde_json::from_slice(&body).with_context(|| format!("{url}: not a directory search answer"))?;
    if found.results.is_empty() {
        anyhow::bail!("the directory has nothing matching {words:?}");
    }
    let shown = found.results.len().min(10);
    if json {
        let list: Vec<_> = found
            .results
            .iter()
            .take(shown)
            .map(|m| serde_json::json!({"info_hash": m.info_hash, "name": m.name, "size": m.size, "seeders": m.seeders, "leechers": m.leechers}))
            .collect();
        emit(&serde_json::json!({"event": "matches", "total": found.total, "matches": list}));
    } else {
        eprintln!("{} match(es) for {words:?} on {base}:", found.total);
        for (i, m) in found.results.iter().take(shown).enumerate() {
            eprintln!(
                "  {:>2}. {}  {}  {} seeders, {} leechers",
                i + 1,
                crate::output::clean(&m.name),
                human_bytes(m.size),
                m.seeders,
                m.leechers
            );
        }
    }
    let index = pick.map_or(0, |n| n.saturating_sub(1));
    let Some(chosen) = found.results.get(index) else {
        anyhow::bail!(
            "--pick {}: only {} match(es) on this page",
            index + 1,
            found.results.len()
        );
    };
    if !json {
        eprintln!("taking {}: {}", index + 1, crate::output::clean(&chosen.name));
    }
    let url = format!("{base}/api/torrents/{}/download", chosen.info_hash);
    let bytes = net::fetch::get_bytes(&url, 64 << 20, Duration::from_secs(60))
        .await
        .with_context(|| format!("cannot fetch the torrent file ({url})"))?;
    let torrent = Torrent::from_bytes(bytes).with_context(|| url.clone())?;
    let got = torrent
        .info_hashes
        .swarm_hash()
        .map(|h| h.to_hex())
        .unwrap_or_default();
    if !got.eq_ignore_ascii_case(&chosen.info_hash) {
        anyhow::bail!(
            "{url}: the torrent's info-hash is {got}, not the {} the directory listed",
            chosen.info_hash
        );
    }
    Ok(torrent)
}
