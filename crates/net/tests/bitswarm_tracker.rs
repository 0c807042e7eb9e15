//! The announce client and its driver against bitswarm's own tracker, in-process on loopback, over HTTP
//! and UDP: the same script as against opentracker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;
use common::*;

use std::time::Duration;

use tracker::{Listeners, TrackerConfig};

struct Running {
    http: String,
    udp: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tracker::ServerError>>,
}

async fn start() -> Running {
    let mut config = TrackerConfig::default();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.udp.listen = "127.0.0.1:0".parse().unwrap();
    config.udp.workers = 1;
    let listeners = Listeners::bind(&config).unwrap();
    let http = format!("http://{}/announce", listeners.http_addr().unwrap());
    let udp = format!("udp://{}/announce", listeners.udp_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(tracker::run(config, listeners, async move {
        let _ = stopped.await;
    }));
    Running {
        http,
        udp,
        stop: Some(stop),
        task,
    }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn over_http_the_second_peer_hears_of_the_first_and_a_scrape_counts_both() {
    let t = start().await;
    two_peers_meet(t.http.clone()).await;
    t.stop().await;
}

#[tokio::test]
async fn over_udp_the_second_peer_hears_of_the_first_and_a_scrape_counts_both() {
    let t = start().await;
    two_peers_meet(t.udp.clone()).await;
    t.stop().await;
}
