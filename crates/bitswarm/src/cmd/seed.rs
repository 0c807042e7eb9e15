//! `bitswarm seed`: serve torrents from content already on disk (verified first), downloading nothing;
//! or make a torrent of a file or folder and serve it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use client::{AddTorrent, Phase};
use metainfo::Torrent;

use super::create::{make_torrent, tiers, write_atomically, MakeOptions};
use super::peer::{emit, json_loop, load_torrent, show, shutdown_signal, status_line, ClientArgs};

pub const EXAMPLES: &str = "Examples:
  bitswarm seed movie.torrent -o ~/Downloads            # the content is ~/Downloads/NAME
  bitswarm seed a.torrent b.torrent c.torrent -o /srv/data
  bitswarm seed ./my-folder --tracker http://tracker.example:6969/announce --save-torrent my-folder.torrent

A PATH that is not a .torrent file is hashed into a new torrent, whose magnet link is printed.
The content is verified before it is served (resume data makes a restart quick); nothing is downloaded.
Ctrl-C or SIGTERM sends `stopped` to the trackers and exits with status 0.";

/// `seed` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// .torrent files (or http(s) URLs of them), or one file or folder to make a torrent of.
    #[arg(required_unless_present = "print_config")]
    pub sources: Vec<String>,
    /// The folder holding the content (for a torrent file; a multi-file torrent's folder is inside it).
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// For a PATH: a tracker tier for the new torrent (commas separate trackers within a tier).
    #[arg(short, long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// For a PATH: also write the new torrent to FILE.
    #[arg(long, value_name = "FILE")]
    pub save_torrent: Option<PathBuf>,
    /// For a PATH: mark the new torrent private.
    #[arg(long)]
    pub private: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn is_torrent_source(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.ends_with(".torrent")
}

pub fn run(a: Args) -> Result<()> {
    if a.client.print_config()? {
        return Ok(());
    }
    if let Some(m) = a.sources.iter().find(|s| super::peer::is_magnet(s)) {
        anyhow::bail!(
            "{m}: seed serves content from disk, so it needs the .torrent file (or the content's path); \
             `bitswarm get` downloads a magnet link"
        );
    }
    let config = a.client.config()?;
    // A PATH to share: hash it first (on every core, before the runtime starts).
    let mut made: Vec<(Torrent, PathBuf)> = Vec::new();
    for src in a.sources.iter().filter(|s| !is_torrent_source(s)) {
        let path = Path::new(src);
        let opts = MakeOptions {
            trackers: tiers(&a.trackers),
            private: a.private,
            creation_date: super::create::creation_date(false)?,
            ..MakeOptions::default()
        };
        let m = make_torrent(path, &opts)?;
        let canon = std::fs::canonicalize(path).with_context(|| format!("{src}: cannot resolve"))?;
        let dir = canon.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(out) = &a.save_torrent {
            write_atomically(out, m.torrent.bytes())?;
        }
        println!("{}", super::inspect::magnet_of(&m.torrent).to_uri());
        made.push((m.torrent, dir));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut torrents = made;
        for src in a.sources.iter().filter(|s| is_torrent_source(s)) {
            torrents.push((load_torrent(src).await?, a.output.clone()));
        }
        let client = a.client.start_client(config).await?;
        eprintln!("listening on {}", client.listen_addr());
        let json = a.client.json;
        if json {
            emit(&serde_json::json!({"event": "listening", "addr": client.listen_addr().to_string()}));
        }
        let mut handles = Vec::new();
        for (torrent, dir) in torrents {
            let name = torrent.info.name.clone();
            let mut add = AddTorrent::new(torrent, dir);
            add.seed_only = true;
            add.peers = a.client.peers.clone();
            let h = client.add_torrent(add).await?;
            handles.push((name, h));
        }
        // Report the check of each; with many torrents, one line each.
        let many = handles.len() > 1;
        let mut displays = Vec::new();
        if json {
            displays.push(tokio::spawn(json_loop(handles.clone())));
        } else if !many {
            for (name, h) in &handles {
                displays.push(tokio::spawn(show(
                    h.clone(),
                    name.clone(),
                    Duration::from_secs(5),
                )));
            }
        }
        let checked = async {
            for (name, h) in &handles {
                let mut rx = h.watch();
                loop {
                    let s = rx.borrow_and_update().clone();
                    if !matches!(s.phase, Phase::Checking) {
                        if s.pieces_have < s.pieces_total {
                            eprintln!(
                                "{name}: warning: only {} of {} pieces are present; serving those",
                                s.pieces_have, s.pieces_total
                            );
                        }
                        if let Phase::Failed(e) = &s.phase {
                            eprintln!("{name}: {e}");
                        } else if many {
                            eprintln!("{}", status_line(name, &s));
                        }
                        break;
                    }
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            }
        };
        tokio::select! {
            () = checked => {}
            () = shutdown_signal() => {
                client.shutdown().await;
                return Ok(());
            }
        }
        let failed: Vec<String> = handles
            .iter()
            .filter_map(|(name, h)| match h.status().phase {
                Phase::Failed(e) => Some(format!("{name}: {e}")),
                _ => None,
            })
            .collect();
        if !failed.is_empty() && failed.len() == handles.len() {
            client.shutdown().await;
            anyhow::bail!("{}", failed.join("; "));
        }
        eprintln!(
            "seeding {} torrent(s); Ctrl-C to stop",
            handles.len() - failed.len()
        );
        let periodic = async {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                for (name, h) in &handles {
                    tracing::info!("{}", status_line(name, &h.status()));
                }
            }
        };
        tokio::select! {
            () = shutdown_signal() => {}
            () = periodic => {}
        }
        for d in displays {
            d.abort();
        }
        client.shutdown().await;
        for (name, h) in &handles {
            eprintln!("{name}: uploaded {} bytes in this run", h.status().uploaded);
        }
        Ok(())
    })
}
