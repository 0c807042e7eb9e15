//! `bitswarm demo`: a whole swarm in one process on loopback: a tracker, a seeder whose upload is
//! limited (so the peers must trade pieces among themselves), and several peers that start empty, all
//! shown filling up live. No network beyond 127.0.0.1, no arguments needed.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::{AddTorrent, Client, ClientConfig, Phase, TorrentHandle};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::create::{make_torrent, MakeOptions};
use super::peer::{shutdown_signal, status_line};
use crate::output::{human_bytes, parse_size};

pub const EXAMPLES: &str = "Examples:
  bitswarm demo                       # 64 MiB, a seeder limited to 16 MiB/s, 4 peers
  bitswarm demo --size 1G --peers 8 --seed-rate 100M
  bitswarm demo --keep                # keep the swarm running until Ctrl-C

Everything runs on 127.0.0.1 in this process: an HTTP tracker, one seeder, the peers. Each peer prints
how much it downloaded and uploaded: with the seeder's upload limited, most of a peer's data comes from
the other peers (tit-for-tat). Exit status 0 when every peer holds a verified, byte-identical copy.";

/// `demo` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the generated payload.
    #[arg(long, default_value = "64M")]
    pub size: String,
    /// Peers that start empty.
    #[arg(long, default_value_t = 4)]
    pub peers: usize,
    /// The seeder's upload limit per second (0: unlimited).
    #[arg(long, default_value = "16M")]
    pub seed_rate: String,
    /// Each peer's upload limit per second (0: unlimited).
    #[arg(long, default_value = "0")]
    pub peer_rate: String,
    /// Where to put the payload and the peers' copies (default: a temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the swarm running after every peer completes, until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
}

fn limit(s: &str, what: &str) -> Result<Option<u64>> {
    let v = parse_size(s.trim_end_matches("/s"))
        .map_err(anyhow::Error::msg)
        .context(what.to_string())?;
    Ok((v > 0).then_some(v))
}

/// A payload that does not compress and is different on every run.
fn write_payload(path: &Path, size: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?,
    );
    let mut x: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut left = size;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(bytes) {
                *d = s;
            }
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(buf.get(..n).unwrap_or_default())?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

struct Cleanup(Option<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    let size = parse_size(&a.size)
        .map_err(anyhow::Error::msg)
        .context("--size")?;
    if size == 0 {
        bail!("--size must be more than 0");
    }
    if a.peers == 0 || a.peers > 64 {
        bail!("--peers must be between 1 and 64");
    }
    let seed_rate = limit(&a.seed_rate, "--seed-rate")?;
    let peer_rate = limit(&a.peer_rate, "--peer-rate")?;
    let (root, _cleanup) = match &a.dir {
        Some(d) => (d.clone(), Cleanup(None)),
        None => {
            let d = std::env::temp_dir().join(format!("bitswarm-demo-{}", std::process::id()));
            (d.clone(), Cleanup(Some(d)))
        }
    };
    let seed_dir = root.join("seeder");
    std::fs::create_dir_all(&seed_dir).with_context(|| format!("{}: cannot create", seed_dir.display()))?;
    let payload = seed_dir.join("demo-payload.bin");
    eprintln!(
        "demo: writing a {} payload in {}",
        human_bytes(size),
        root.display()
    );
    write_payload(&payload, size)?;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        // The tracker, on a port of its own choosing.
        let mut tconfig = tracker::TrackerConfig::default();
        tconfig.http.listen = "127.0.0.1:0".parse()?;
        tconfig.udp.enabled = false;
        let listeners = tracker::Listeners::bind(&tconfig)?;
        let http = listeners.http_addr().context("the tracker has no HTTP address")?;
        let announce = format!("http://{http}/announce");
        let (stop_tracker, stopped) = oneshot::channel::<()>();
        let tracker_task = tokio::spawn(tracker::run(tconfig, listeners, async move {
            let _ = stopped.await;
        }));
        eprintln!("demo: tracker at {announce}");

        let opts = MakeOptions {
            trackers: vec![vec![announce.clone()]],
            ..MakeOptions::default()
        };
        let payload2 = payload.clone();
        let made = tokio::task::spawn_blocking(move || make_torrent(&payload2, &opts)).await??;
        let torrent = made.torrent;
        eprintln!(
            "demo: torrent {} ({} pieces of {})",
            torrent
                .info_hashes
                .swarm_hash()
                .map(|h| h.to_hex())
                .unwrap_or_default(),
            torrent.info.geometry.piece_count(),
            human_bytes(made.piece_length)
        );

        let start_client = |upload_limit: Option<u64>| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let config = ClientConfig {
                upload_limit,
                ..ClientConfig::default()
            };
            anyhow::Ok(Client::start(config, Some(listener)).await?)
        };
        let seeder = start_client(seed_rate).await?;
        let mut add = AddTorrent::new(torrent.clone(), seed_dir.clone());
        add.seed_only = true;
        let seed_handle = seeder.add_torrent(add).await?;
        seed_handle.wait_complete().await?;
        eprintln!(
            "demo: seeder on {} (upload limit {})",
            seeder.listen_addr(),
            seed_rate.map_or("none".into(), |r| format!("{}/s", human_bytes(r)))
        );

        let mut peers: Vec<(String, Client, TorrentHandle, PathBuf)> = Vec::new();
        for i in 0..a.peers {
            let dir = root.join(format!("peer{}", i + 1));
            let c = start_client(peer_rate).await?;
            let h = c
                .add_torrent(AddTorrent::new(torrent.clone(), dir.clone()))
                .await?;
            peers.push((format!("peer{}", i + 1), c, h, dir));
        }
        let started = Instant::now();
        let mut done_at: Vec<Option<Duration>> = vec![None; peers.len()];
        let tty = std::io::stderr().is_terminal();
        let multi = indicatif::MultiProgress::new();
        let bars: Vec<indicatif::ProgressBar> = peers
            .iter()
            .map(|(name, ..)| {
                let b = multi.add(indicatif::ProgressBar::new(1000));
                b.set_style(
                    indicatif::ProgressStyle::with_template("{prefix:>6} [{bar:30}] {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                b.set_prefix(name.clone());
                if !tty {
                    b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                }
                b
            })
            .collect();
        let mut last_line = Instant::now();
        let interrupted = loop {
            let mut all = true;
            for (i, (name, _, h, _)) in peers.iter().enumerate() {
                let s = h.status();
                if let Phase::Failed(e) = &s.phase {
                    bail!("{name}: {e}");
                }
                if s.is_complete() {
                    if done_at.get(i).copied().flatten().is_none() {
                        if let Some(d) = done_at.get_mut(i) {
                            *d = Some(started.elapsed());
                        }
                    }
                } else {
                    all = false;
                }
                if let Some(b) = bars.get(i) {
                    let wanted = s.bytes_have.saturating_add(s.bytes_left).max(1);
                    b.set_position(s.bytes_have.saturating_mul(1000) / wanted);
                    b.set_message(status_line("", &s).trim_start_matches(": ").to_string());
                }
            }
            if !tty && (all || last_line.elapsed() >= Duration::from_secs(1)) {
                for (name, _, h, _) in &peers {
                    eprintln!("{}", status_line(name, &h.status()));
                }
                last_line = Instant::now();
            }
            if all {
                break false;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = shutdown_signal() => break true,
            }
        };
        for b in &bars {
            b.finish();
        }
        if interrupted {
            eprintln!("demo: interrupted");
        } else {
            // Every copy must be the payload, byte for byte.
            let want = std::fs::read(&payload)?;
            println!(
                "demo: every peer complete in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            println!(
                "{:>6} {:>10} {:>12} {:>12} {:>10}",
                "peer", "done in", "downloaded", "uploaded", "copy"
            );
            let seed_up = seed_handle.status().uploaded;
            println!(
                "{:>6} {:>10} {:>12} {:>12} {:>10}",
                "seeder",
                "-",
                "-",
                human_bytes(seed_up),
                "-"
            );
            let mut bad = Vec::new();
            for (i, (name, _, h, dir)) in peers.iter().enumerate() {
                let s = h.status();
                let got = std::fs::read(dir.join("demo-payload.bin"))?;
                let ok = got == want;
                if !ok {
                    bad.push(name.clone());
                }
                println!(
                    "{:>6} {:>9.1}s {:>12} {:>12} {:>10}",
                    name,
                    done_at
                        .get(i)
                        .copied()
                        .flatten()
                        .unwrap_or_default()
                        .as_secs_f64(),
                    human_bytes(s.downloaded),
                    human_bytes(s.uploaded),
                    if ok { "identical" } else { "DIFFERENT" }
                );
            }
            let total_down: u64 = peers.iter().map(|(_, _, h, _)| h.status().downloaded).sum();
            println!(
                "demo: the seeder sent {} of the {} the peers downloaded; the peers traded the other {:.0}%",
                human_bytes(seed_up),
                human_bytes(total_down),
                100.0 * (1.0 - seed_up as f64 / total_down.max(1) as f64)
            );
            if !bad.is_empty() {
                bail!("copies differ from the payload: {}", bad.join(", "));
            }
            if a.keep {
                eprintln!("demo: the swarm keeps running; Ctrl-C to stop");
                shutdown_signal().await;
            }
        }
        for (_, c, _, _) in peers {
            c.shutdown().await;
        }
        seeder.shutdown().await;
        let _ = stop_tracker.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker_task).await;
        Ok(())
    })
}
