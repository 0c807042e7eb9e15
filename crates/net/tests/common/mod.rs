//! Shared by the announce-client interop tests: peers driven by the real driver, and the two-peer script
//! run against each tracker.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use net::announce::{self, AnnounceHandle, Command, DriverConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tracker_proto::client::{AnnounceClient, AnnounceParams, ClientConfig, ClientEvent};
use tracker_proto::{Event, InfoHashV1, PeerId};

pub const WAIT: Duration = Duration::from_secs(20);

/// opentracker on 127.0.0.1, TCP and UDP on one port, serving only the info-hashes it was started with.
/// Stopped (by its PID) when dropped.
pub const HASH: InfoHashV1 = InfoHashV1([0x5e; 20]);

pub fn params(hash: InfoHashV1, n: u8, port: u16) -> AnnounceParams {
    let mut id = *b"-BS0100-000000000000";
    id[19] = b'0' + n;
    let mut p = AnnounceParams::new(hash, PeerId(id), port);
    p.config = ClientConfig {
        stop_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    };
    p
}

pub fn driver() -> DriverConfig {
    DriverConfig {
        udp_v4: Some("127.0.0.1:0".parse().unwrap()),
        udp_v6: None,
        http_timeout: Duration::from_secs(5),
        ..DriverConfig::default()
    }
}

/// Start announcing `hash` to `tiers` as peer `n` listening on `port`, with `left` bytes missing.
pub async fn peer(tiers: Vec<Vec<String>>, hash: InfoHashV1, n: u8, port: u16, left: u64) -> AnnounceHandle {
    let client = AnnounceClient::new(tiers, params(hash, n, port), StdRng::seed_from_u64(u64::from(n)));
    let handle = announce::spawn(client, driver());
    assert!(
        handle
            .command(Command::Progress {
                uploaded: 0,
                downloaded: 0,
                left
            })
            .await
    );
    assert!(handle.command(Command::Event(Event::Started)).await);
    handle
}

/// Read events until one matches, failing after [`WAIT`] with every event seen.
pub async fn wait_for(
    handle: &mut AnnounceHandle,
    what: &str,
    mut matches: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = handle.next_event().await {
            if matches(&e) {
                return Some(e);
            }
            seen.push(e.to_string());
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the driver ended before {what}; events: {seen:#?}"),
        Err(_) => panic!("no {what} within {WAIT:?}; events: {seen:#?}"),
    }
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Two peers announce one swarm; the second hears of the first; a scrape counts both; both leave.
pub async fn two_peers_meet(url: String) {
    let tracker_url = url.clone();
    let mut seeder = peer(vec![vec![url.clone()]], HASH, 1, 6001, 0).await;
    wait_for(&mut seeder, "the seeder's started announce", |e| {
        matches!(
            e,
            ClientEvent::Announced {
                event: Event::Started,
                ..
            }
        )
    })
    .await;

    let mut leecher = peer(vec![vec![url]], HASH, 2, 6002, 1000).await;
    let ClientEvent::Peers { peers, .. } = wait_for(&mut leecher, "peers for the leecher", |e| {
        matches!(e, ClientEvent::Peers { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(peers.contains(&localhost(6001)), "the seeder is among {peers:?}");

    assert!(leecher.command(Command::Scrape).await);
    let stats = wait_for(&mut leecher, "scrape counts", |e| {
        matches!(
            e,
            ClientEvent::Stats {
                downloaded: Some(_),
                ..
            }
        )
    })
    .await;
    let ClientEvent::Stats {
        complete, incomplete, ..
    } = stats
    else {
        unreachable!()
    };
    assert_eq!(
        (complete, incomplete),
        (1, 1),
        "{tracker_url}: one seeder, one leecher"
    );

    // Both leave with `stopped`, and the tracker forgets them.
    for handle in [seeder, leecher] {
        let rest = handle.shutdown().await.unwrap();
        assert!(
            rest.iter().any(|e| matches!(
                e,
                ClientEvent::Announced {
                    event: Event::Stopped,
                    ..
                }
            )),
            "stopped was answered: {rest:?}"
        );
        assert_eq!(rest.last(), Some(&ClientEvent::Finished));
    }
    let mut observer = peer(vec![vec![tracker_url.clone()]], HASH, 3, 6003, 5).await;
    // The observer's own started announce makes it the one leecher.
    assert!(observer.command(Command::Scrape).await);
    let ClientEvent::Stats {
        complete, incomplete, ..
    } = wait_for(&mut observer, "scrape counts after both left", |e| {
        matches!(
            e,
            ClientEvent::Stats {
                downloaded: Some(_),
                ..
            }
        )
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(complete, 0, "{tracker_url}: the seeder's stopped was delivered");
    assert!(
        incomplete <= 1,
        "{tracker_url}: the leecher's stopped was delivered"
    );
    observer.shutdown().await.unwrap();
}
