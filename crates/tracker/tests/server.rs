//! The tracker server end to end on loopback: real sockets bound on port 0, requests built with the
//! protocol crate, answers checked exactly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracker::{Listeners, TrackerConfig};
use tracker_proto::http::{self, Reply};
use tracker_proto::udp::{
    AddressFamily, AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, ResponsePeers,
    ScrapeRequest, TransactionId,
};
use tracker_proto::{Event, InfoHashV1, PeerId};

const HASH: InfoHashV1 = InfoHashV1([0xab; 20]);

struct Running {
    http: SocketAddr,
    udp: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tracker::ServerError>>>,
}

impl Running {
    async fn start(mut config: TrackerConfig) -> Running {
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.udp.listen = "127.0.0.1:0".parse().unwrap();
        config.udp.workers = 2;
        let listeners = Listeners::bind(&config).unwrap();
        let http = listeners.http_addr().unwrap();
        let udp = listeners.udp_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tracker::run(config, listeners, async move {
            let _ = stopped.await;
        }));
        Running {
            http,
            udp,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    async fn get(&self, path_and_query: &str, headers: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(self.http).await.unwrap();
        let req = format!("GET {path_and_query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, buf[split + 4..].to_vec())
    }
}

async fn udp_call(sock: &UdpSocket, to: SocketAddr, req: &Request) -> Response {
    let mut out = Vec::new();
    req.write(&mut out);
    sock.send_to(&out, to).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    Response::parse(&buf[..n], AddressFamily::V4).unwrap()
}

async fn udp_connect(sock: &UdpSocket, to: SocketAddr) -> ConnectionId {
    match udp_call(
        sock,
        to,
        &Request::Connect(ConnectRequest {
            transaction_id: TransactionId(1),
        }),
    )
    .await
    {
        Response::Connect(c) => {
            assert_eq!(c.transaction_id, TransactionId(1));
            c.connection_id
        }
        other => panic!("{other:?}"),
    }
}

fn udp_announce(cid: ConnectionId, peer: u8, left: u64, port: u16, event: Event) -> Request {
    Request::Announce(AnnounceRequest {
        connection_id: cid,
        transaction_id: TransactionId(u32::from(peer) + 100),
        info_hash: HASH,
        peer_id: PeerId([peer; 20]),
        downloaded: 0,
        left,
        uploaded: 0,
        event,
        ip: None,
        key: u32::from(peer),
        num_want: None,
        port,
        url_data: None,
    })
}

/// BEP 15: connect, then announce with the connection id; a leecher gets the seeder; scrape counts both.
#[tokio::test]
async fn udp_connect_announce_scrape() {
    let t = Running::start(TrackerConfig::default()).await;
    let seeder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let leecher = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let cid = udp_connect(&seeder, t.udp).await;
    match udp_call(&seeder, t.udp, &udp_announce(cid, 1, 0, 7001, Event::Started)).await {
        Response::Announce(a) => assert_eq!((a.seeders, a.leechers), (1, 0)),
        other => panic!("{other:?}"),
    }
    let cid2 = udp_connect(&leecher, t.udp).await;
    match udp_call(
        &leecher,
        t.udp,
        &udp_announce(cid2, 2, 1000, 7002, Event::Started),
    )
    .await
    {
        Response::Announce(a) => {
            assert_eq!((a.seeders, a.leechers), (1, 1));
            assert_eq!(
                a.peers,
                ResponsePeers::V4(vec!["127.0.0.1:7001".parse::<SocketAddrV4>().unwrap()])
            );
        }
        other => panic!("{other:?}"),
    }
    let scrape = Request::Scrape(ScrapeRequest {
        connection_id: cid2,
        transaction_id: TransactionId(9),
        info_hashes: vec![HASH, InfoHashV1([1; 20])],
    });
    match udp_call(&leecher, t.udp, &scrape).await {
        Response::Scrape(s) => {
            assert_eq!(s.stats.len(), 2);
            assert_eq!((s.stats[0].complete, s.stats[0].incomplete), (1, 1));
            assert_eq!((s.stats[1].complete, s.stats[1].incomplete), (0, 0));
        }
        other => panic!("{other:?}"),
    }
    t.stop().await;
}

/// BEP 15: a connection id is bound to the sender; another address's id, or a made-up one, is refused.
#[tokio::test]
async fn udp_refuses_forged_connection_ids_and_drops_garbage() {
    let t = Running::start(TrackerConfig::default()).await;
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cid_of_a = udp_connect(&a, t.udp).await;
    for cid in [cid_of_a, ConnectionId(0x1234)] {
        match udp_call(&b, t.udp, &udp_announce(cid, 3, 0, 7003, Event::None)).await {
            Response::Error(e) => assert!(e.message.contains("connection id"), "{}", e.message),
            other => panic!("{other:?}"),
        }
    }
    // Garbage gets no answer at all (no amplification), but is counted.
    b.send_to(b"\x00\x01garbage", t.udp).await.unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.recv_from(&mut buf))
            .await
            .is_err()
    );
    let (status, body) = t.get("/metrics", "").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("bitswarm_tracker_errors_total{protocol=\"udp\",kind=\"bad_connection_id\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("bitswarm_tracker_errors_total{protocol=\"udp\",kind=\"dropped\"} 1"),
        "{text}"
    );
    t.stop().await;
}

fn http_announce(peer: u8, port: u16, left: u64, event: Event) -> String {
    let mut r = http::AnnounceRequest::new(HASH, PeerId([peer; 20]), port);
    r.left = left;
    r.event = event;
    format!("/announce?{}", r.to_query())
}

/// BEP 3 and 23 over HTTP: compact peers; a malformed query gets a bencoded failure reason.
#[tokio::test]
async fn http_announce_and_failure_reason() {
    let t = Running::start(TrackerConfig::default()).await;
    let (status, body) = t.get(&http_announce(1, 6001, 0, Event::Started), "").await;
    assert_eq!(status, 200);
    let Reply::Success(first) = http::AnnounceResponse::decode(&body).unwrap() else {
        panic!()
    };
    assert_eq!((first.complete, first.incomplete), (Some(1), Some(0)));
    let (_, body) = t.get(&http_announce(2, 6002, 5, Event::Started), "").await;
    let Reply::Success(second) = http::AnnounceResponse::decode(&body).unwrap() else {
        panic!()
    };
    assert_eq!(
        second.peers,
        vec!["127.0.0.1:6001".parse::<SocketAddrV4>().unwrap()]
    );

    let (status, body) = t.get("/announce?info_hash=short&port=1", "").await;
    assert_eq!(status, 200);
    let Reply::Failure(f) = http::AnnounceResponse::decode(&body).unwrap() else {
        panic!()
    };
    assert!(f.reason.contains("info_hash"), "{}", f.reason);

    let q = http::ScrapeRequest {
        info_hashes: vec![HASH],
    }
    .to_query();
    let (_, body) = t.get(&format!("/scrape?{q}"), "").await;
    let Reply::Success(s) = http::ScrapeResponse::decode(&body).unwrap() else {
        panic!()
    };
    assert_eq!((s.files[&HASH].complete, s.files[&HASH].incomplete), (1, 1));
    t.stop().await;
}

/// Stats show completion and rates, and addresses only to the admin token.
#[tokio::test]
async fn stats_hide_addresses_unless_admin() {
    let mut c = TrackerConfig::default();
    c.admin.token = Some("sekrit".into());
    let t = Running::start(c).await;
    t.get(&http_announce(1, 6001, 0, Event::Started), "").await;
    let path = format!("/stats/{}", HASH.to_hex());
    let (status, body) = t.get(&path, "").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["peers"][0]["completion"], 1.0);
    assert!(v["peers"][0]["addr"].is_null(), "{v}");
    assert!(!String::from_utf8_lossy(&body).contains("127.0.0.1"));
    let (_, body) = t.get(&path, "Authorization: Bearer sekrit\r\n").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["peers"][0]["addr"], "127.0.0.1:6001");
    let (_, body) = t.get(&path, "Authorization: Bearer wrong!\r\n").await;
    assert!(!String::from_utf8_lossy(&body).contains("127.0.0.1"));
    let (status, _) = t
        .get(&format!("/stats/{}", InfoHashV1([9; 20]).to_hex()), "")
        .await;
    assert_eq!(status, 404);
    t.stop().await;
}

/// Private mode: announces need a known passkey in the path; the allow-list is enforced.
#[tokio::test]
async fn private_mode_needs_a_passkey() {
    let mut c = TrackerConfig::default();
    c.swarm.mode = tracker_core::Mode::Private;
    c.admin.token = Some("t0ken".into());
    let t = Running::start(c).await;
    let (_, body) = t.get(&http_announce(1, 6001, 0, Event::Started), "").await;
    let Reply::Failure(f) = http::AnnounceResponse::decode(&body).unwrap() else {
        panic!()
    };
    assert!(f.reason.contains("passkey"), "{}", f.reason);

    // Register the torrent and a user through the admin API.
    let user = post(&t, "/admin/users", "").await;
    let passkey = user["passkey"].as_str().unwrap().to_string();
    let reg = post(
        &t,
        "/admin/torrents",
        &format!("{{\"info_hash\":\"{}\",\"size\":1000}}", HASH.to_hex()),
    )
    .await;
    assert_eq!(reg["added"], true);

    let q =
        http_announce(1, 6001, 0, Event::Started).replacen("/announce", &format!("/{passkey}/announce"), 1);
    let (_, body) = t.get(&q, "").await;
    assert!(matches!(
        http::AnnounceResponse::decode(&body).unwrap(),
        Reply::Success(_)
    ));
    let wrong = q.replacen(&passkey, "0123456789abcdef0123456789abcdef", 1);
    let (_, body) = t.get(&wrong, "").await;
    let Reply::Failure(f) = http::AnnounceResponse::decode(&body).unwrap() else {
        panic!()
    };
    assert!(f.reason.contains("passkey"), "{}", f.reason);
    t.stop().await;
}

async fn post(t: &Running, path: &str, json: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(t.http).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer t0ken\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    serde_json::from_slice(&buf[split + 4..])
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf)))
}

/// A restart keeps what is of record: the completed counter survives in the database.
#[tokio::test]
async fn completed_counter_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("tracker.db");
    let mut c = TrackerConfig::default();
    c.persistence.database = Some(db.clone());
    let t = Running::start(c.clone()).await;
    t.get(&http_announce(1, 6001, 10, Event::Started), "").await;
    t.get(&http_announce(1, 6001, 0, Event::Completed), "").await;
    t.stop().await;

    let t = Running::start(c).await;
    let q = http::ScrapeRequest {
        info_hashes: vec![HASH],
    }
    .to_query();
    let (_, body) = t.get(&format!("/scrape?{q}"), "").await;
    let Reply::Success(s) = http::ScrapeResponse::decode(&body).unwrap() else {
        panic!()
    };
    assert_eq!(s.files[&HASH].downloaded, 1);
    assert_eq!(
        s.files[&HASH].complete, 0,
        "peer lists are not kept across restarts"
    );
    t.stop().await;
}
