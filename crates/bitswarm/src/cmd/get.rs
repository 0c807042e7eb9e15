//! `bitswarm get`: download a torrent, verify it, and optionally keep seeding it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use client::{AddTorrent, Client};

use super::peer::{emit, json_loop, load_torrent, show, shutdown_signal, status_json, ClientArgs};
use crate::output::human_bytes;

pub const EXAMPLES: &str = "Examples:
  bitswarm get movie.torrent -o ~/Downloads
  bitswarm get https://example.org/disk.vmdk.torrent --max-down 10M --seed
  bitswarm get album.torrent --only .flac --listen 0.0.0.0:6881
  bitswarm get file.torrent --peer 192.0.2.7:6881 --no-trackers

Exit status: 0 once every wanted piece is downloaded and verified; 1 on an error; 130 when interrupted
(run the same command again to resume). Ctrl-C sends `stopped` to the trackers and saves resume data.";

/// `get` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .torrent file, or an http(s) URL of one.
    pub torrent: String,
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
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(a: Args) -> Result<()> {
    let config = a.client.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let torrent = load_torrent(&a.torrent).await?;
        let name = torrent.info.name.clone();
        let client = Client::start(config, None).await?;
        tracing::info!("listening on {}", client.listen_addr());
        let mut add = AddTorrent::new(torrent, a.output.clone());
        add.only = a.only.clone();
        add.sequential = a.sequential;
        add.peers = a.client.peers.clone();
        let handle = client.add_torrent(add).await?;
        let json = a.client.json;
        if json {
            emit(&serde_json::json!({"event": "listening", "addr": client.listen_addr().to_string()}));
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
