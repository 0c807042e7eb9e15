//! The service on loopback: another node joins through it and announces; `/stats` and `/metrics` show it;
//! shutdown saves the table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::Duration;

use dht_node::{run, DhtNodeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

#[tokio::test]
async fn serves_stats_and_metrics_and_saves_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dht.dat");
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let config = DhtNodeConfig {
        state_file: Some(state.clone()),
        ..DhtNodeConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(
        config,
        udp,
        Some(http),
        async {
            let _ = stop_rx.await;
        },
        None,
    ));

    // A client node joins through it and announces a torrent.
    let client_udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (client, _task) = net::dht::spawn(
        client_udp,
        net::dht::DhtDriverConfig {
            bootstrap: vec![udp_addr.to_string()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut done = false;
    for _ in 0..50 {
        let mut rx = client
            .get_peers(
                [9; 20],
                Some(dht::Announce {
                    port: 7777,
                    implied_port: false,
                    seed: false,
                }),
            )
            .await;
        while let Some(ev) = rx.recv().await {
            if let net::dht::LookupEvent::Done { announced, .. } = ev {
                done = announced > 0;
            }
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "the announce reached the service");
    // Stats are sampled once a second.
    let mut stats = serde_json::Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stats = serde_json::from_str(&http_get(http_addr, "/stats").await).unwrap();
        if stats["store"]["peers"].as_u64() == Some(1) {
            break;
        }
    }
    assert_eq!(stats["store"]["peers"], 1, "{stats}");
    assert_eq!(stats["store"]["info_hashes"], 1, "{stats}");
    assert!(
        stats["queries_in"]["announce_peer"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(stats["table"]["good"].as_u64().unwrap() + stats["table"]["questionable"].as_u64().unwrap() >= 1);
    assert!(stats["queries_per_second"]["get_peers"].is_number(), "{stats}");
    assert_eq!(stats["node_id"].as_str().map(str::len), Some(40), "{stats}");
    assert_eq!(stats["dropped"]["malformed"], 0, "{stats}");
    let metrics = http_get(http_addr, "/metrics").await;
    assert!(metrics.contains("bitswarm_dht_stored_peers 1"), "{metrics}");
    assert!(
        metrics.contains("bitswarm_dht_queries_in_total{method=\"announce_peer\"}"),
        "{metrics}"
    );

    client.shutdown().await;
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        std::fs::metadata(&state).unwrap().len() > 0,
        "table saved at shutdown"
    );
}
