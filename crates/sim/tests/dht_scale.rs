//! The DHT at scale: the real node state machine, thousands of nodes, simulated latency and 5% loss.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::{Duration, Instant};

use sim::dht::{run, DhtScenario};

fn nodes() -> usize {
    std::env::var("SIM_DHT_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// The figures: 10,000 nodes bootstrap from a few others each, 100 announce, 1,000 random lookups
/// succeed at least 99% of the time; after 20% of the nodes leave abruptly, lookups still succeed.
#[test]
fn ten_thousand_nodes_find_announced_peers_before_and_after_churn() {
    let settle = std::env::var("SIM_DHT_SETTLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DhtScenario::default().settle, Duration::from_secs);
    let scenario = DhtScenario {
        nodes: nodes(),
        settle,
        ..DhtScenario::default()
    };
    let wall = Instant::now();
    let r = run(&scenario);
    println!("{r}\nwall time {:.1} s", wall.elapsed().as_secs_f64());
    assert_eq!(r.nodes, scenario.nodes);
    assert!(
        r.announced >= scenario.announcers * 99 / 100,
        "announces: {}",
        r.announced
    );
    assert!(
        r.before.success() >= 0.99,
        "lookup success {:.3}",
        r.before.success()
    );
    assert!(
        r.after.success() >= 0.99,
        "lookup success after churn {:.3}",
        r.after.success()
    );
    assert_eq!(r.left, scenario.nodes / 5);
    // A table of k = 8 buckets holds about 8 * log2(N / 8) nodes: 80 or so at 10,000.
    assert!(r.table_p50 >= 40, "median routing table {}", r.table_p50);
    assert!(r.before.queries_p50 > 0 && r.before.to_peer_p50 > Duration::ZERO);
}
