//! Magnet uploads: "a magnet link is accepted once the metadata can be fetched". The directory itself speaks
//! no peer protocol; it is handed a `MetadataFetcher`, here the real peer client (as `bitswarm directory`
//! does), which fetches the info dictionary from a peer seeding the torrent. Without a fetcher, or when no
//! peer has the metadata, the upload is refused saying why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, csrf_of, get_text, info_hash_hex, register, test_config};
use directory::upload::MetadataFetcher;

struct PeerClient(client::Client);

impl MetadataFetcher for PeerClient {
    fn fetch(
        &self,
        magnet: metainfo::Magnet,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send + '_>> {
        Box::pin(async move {
            let t = self
                .0
                .fetch_metadata(magnet, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(t.bytes().to_vec())
        })
    }
}

async fn start_client() -> client::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = client::ClientConfig {
        use_trackers: false,
        ..client::ClientConfig::default()
    };
    client::Client::start(config, Some(listener)).await.unwrap()
}

async fn upload_magnet(base: &str, c: &reqwest::Client, magnet: &str) -> (u16, String) {
    let (_, page) = get_text(c, &format!("{base}/upload")).await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf_of(&page))
        .text("category", "software")
        .text("description", "by magnet")
        .text("magnet", magnet.to_string());
    let r = c
        .post(format!("{base}/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 303 {
        (status, r.headers()["location"].to_str().unwrap().to_string())
    } else {
        (status, r.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_upload_fetches_the_metadata_from_peers() {
    // A peer seeding the torrent; it serves the metadata (BEP 9).
    let data = tempfile::tempdir().unwrap();
    let name = "Magnet Upload Test";
    let (a, b) = (vec![1u8; 1000], vec![2u8; 1000]);
    std::fs::create_dir_all(data.path().join(name)).unwrap();
    std::fs::write(data.path().join(name).join("a.bin"), &a).unwrap();
    std::fs::write(data.path().join(name).join("b.bin"), &b).unwrap();
    let files = ["a.bin", "b.bin"]
        .iter()
        .map(|f| metainfo::BuildFile {
            path: vec![f.to_string()],
            length: 1000,
            executable: false,
        })
        .collect();
    let plan = metainfo::TorrentBuilder::new(name, files, true, metainfo::Version::V1, 16384)
        .plan()
        .unwrap();
    let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
    let hashes = vec![metainfo::PieceHashes {
        v1: Some(metainfo::sha1_of(&whole)),
        v2: None,
    }];
    let bytes = plan.finish(&hashes).unwrap();
    let t = metainfo::Torrent::from_bytes(bytes.clone()).unwrap();
    let seeder = start_client().await;
    let mut add = client::AddTorrent::new(t.clone(), data.path().to_path_buf());
    add.seed_only = true;
    let h = seeder.add_torrent(add).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), h.wait_complete())
        .await
        .unwrap()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.upload.magnet_timeout_secs = 8;
    let listeners = directory::Listeners::bind(&config).unwrap();
    let base = format!("http://{}", listeners.web_addr().unwrap());
    let fetcher: Arc<dyn MetadataFetcher> = Arc::new(PeerClient(start_client().await));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(directory::run_with(
        config,
        listeners,
        async {
            let _ = stopped.await;
        },
        Some(fetcher),
    ));
    let c = client();
    for _ in 0..100 {
        if c.get(&base).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = common::Server::at(&base);
    register(&s, &c, "magnetuser").await;

    let hash = info_hash_hex(&bytes);
    let magnet = format!("magnet:?xt=urn:btih:{hash}&x.pe={}", seeder.listen_addr());
    let (status, location) = upload_magnet(&base, &c, &magnet).await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, format!("/t/{hash}"));
    let (_, page) = get_text(&c, &format!("{base}{location}")).await;
    assert!(
        page.contains("Magnet Upload Test") && page.contains("b.bin"),
        "the fetched metadata's names"
    );
    // The stored torrent carries the very info dictionary of the original (the same info-hash).
    let stored = c
        .get(format!("{base}/t/{hash}/download"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let back = metainfo::Torrent::from_bytes(stored.to_vec()).unwrap();
    assert_eq!(back.raw_info(), t.raw_info());

    // No peer has this one: refused with the reason, after the timeout.
    let missing = format!("magnet:?xt=urn:btih:{}", "ab".repeat(20));
    let started = std::time::Instant::now();
    let (status, page) = upload_magnet(&base, &c, &missing).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("cannot fetch the magnet link") && page.contains("within 8 s"),
        "{page}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    let (status, page) = upload_magnet(&base, &c, "magnet:?xt=urn:btih:nothex").await;
    assert_eq!(status, 400);
    assert!(page.contains("invalid magnet link"), "{page}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
