//! Peers beyond trackers: the Mainline DHT (BEP 5) and local service discovery (BEP 14), for every torrent
//! that is not private (BEP 27: "the client MUST NOT use the DHT" nor other sources than the tracker).
//!
//! One task per torrent looks its info-hash up in the DHT and announces our port there: at once, then every
//! 5 minutes while downloading (sooner, backing off from 10 s, while lookups find nobody), every 15 minutes
//! while seeding (peers stay stored for 30); it registers the torrent with LSD. A magnet's privacy is
//! unknown until its metadata arrives: it is looked up meanwhile, and dropped from both if the metadata says
//! private. Peers found go to the torrent as [`TorrentHandle::add_peers`] does.

use std::sync::Arc;
use std::time::Duration;

use dht::Announce;
use net::dht::LookupEvent;
use tokio::time::Instant;

use crate::{Phase, Shared, TorrentHandle};

/// Between DHT lookups of a torrent that is downloading and finds peers.
const DOWNLOADING: Duration = Duration::from_secs(300);
/// Between DHT announces of a torrent that is seeding.
const SEEDING: Duration = Duration::from_secs(900);
/// The first retry of a lookup that found nobody (doubling up to [`DOWNLOADING`]).
const RETRY: Duration = Duration::from_secs(10);

fn ended(phase: &Phase) -> bool {
    matches!(phase, Phase::Stopped | Phase::Failed(_))
}

/// Runs until the torrent stops.
pub(crate) async fn torrent(shared: Arc<Shared>, handle: TorrentHandle) {
    let info_hash = handle.info_hash();
    let port = shared.config.announce_port.unwrap_or(shared.listen_addr.port());
    let mut status = handle.watch();
    let mut in_lsd = false;
    let mut next_lookup = Instant::now();
    let mut empty = 0u32;
    loop {
        let phase = status.borrow_and_update().phase.clone();
        if ended(&phase) || handle.is_private() == Some(true) {
            break;
        }
        if let (Some(lsd), false) = (&shared.lsd, in_lsd) {
            lsd.add_torrent(info_hash).await;
            in_lsd = true;
        }
        if let Some(dht) = shared.dht.as_ref().filter(|_| Instant::now() >= next_lookup) {
            let seeding = phase == Phase::Seeding;
            let announce = Announce {
                port,
                implied_port: false,
                seed: seeding,
            };
            let mut events = dht.get_peers(info_hash.0, Some(announce)).await;
            let mut found = 0usize;
            let mut stop = false;
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(LookupEvent::Peers(peers)) => {
                            let peers: Vec<_> = peers.into_iter().filter(|p| *p != shared.listen_addr).collect();
                            found += peers.len();
                            if !peers.is_empty() {
                                handle.add_peers(peers).await;
                            }
                        }
                        Some(LookupEvent::Scrape { .. }) => {}
                        Some(LookupEvent::Done { responded, .. }) => {
                            tracing::debug!(info_hash = %info_hash.to_hex(), found, responded, "DHT lookup done");
                            break;
                        }
                        None => break,
                    },
                    r = status.changed() => {
                        if r.is_err() || ended(&status.borrow().phase) {
                            stop = true;
                            break;
                        }
                    }
                }
            }
            if stop {
                break;
            }
            let wait = if seeding {
                SEEDING
            } else if found == 0 {
                empty = empty.saturating_add(1);
                RETRY
                    .saturating_mul(1 << empty.saturating_sub(1).min(5))
                    .min(DOWNLOADING)
            } else {
                empty = 0;
                DOWNLOADING
            };
            next_lookup = Instant::now() + wait;
        }
        let dht_wait = async {
            if shared.dht.is_some() {
                tokio::time::sleep_until(next_lookup).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = dht_wait => {}
            r = status.changed() => if r.is_err() { break },
        }
    }
    if in_lsd {
        if let Some(lsd) = &shared.lsd {
            lsd.remove_torrent(info_hash).await;
        }
    }
    shared.sinks().remove(&info_hash);
}

/// Hands peers heard by LSD to their torrents.
pub(crate) async fn lsd_router(shared: Arc<Shared>, mut found: tokio::sync::mpsc::Receiver<lsd::Found>) {
    while let Some(f) = found.recv().await {
        if f.peer == shared.listen_addr {
            continue;
        }
        let handle = shared.sinks().get(&f.info_hash).cloned();
        if let Some(h) = handle {
            if h.is_private() != Some(true) {
                h.add_peers(vec![f.peer]).await;
            }
        }
    }
}
