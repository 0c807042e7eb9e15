//! LSD (BEP 14) between two drivers over real multicast, inside a network namespace of the test's own whose
//! loopback has multicast turned on (so nothing leaves the machine). The test re-runs itself inside the
//! namespace; it needs root and iproute2, as the project's other namespace tests do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use metainfo::InfoHashV1;
use net::lsd::{spawn, LsdConfig};

const CHILD: &str = "BITSWARM_LSD_TEST_CHILD";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_peers_find_each_other_by_multicast() {
    if std::env::var_os(CHILD).is_some() {
        return inside_namespace();
    }
    let ns = format!("bsw-lsd-{}", std::process::id());
    ip(&["netns", "add", &ns]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(ns.clone());
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    ip(&["-n", &ns, "link", "set", "lo", "multicast", "on"]);
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", &ns])
        .arg(exe)
        .args(["--exact", "two_peers_find_each_other_by_multicast", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the run inside the namespace failed:\n{text}"
    );
    assert!(text.contains("both found"), "{text}");
}

fn inside_namespace() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hash = InfoHashV1([7; 20]);
        let other = InfoHashV1([8; 20]);
        let config = |port: u16, cookie: &str| {
            let mut c = LsdConfig::new(port, cookie.into());
            c.interface = Ipv4Addr::LOCALHOST;
            c
        };
        let mut a = spawn(config(7001, "a")).expect("join the group in the namespace");
        let mut b = spawn(config(7002, "b")).unwrap();
        a.add_torrent(hash).await;
        b.add_torrent(hash).await;
        b.add_torrent(other).await; // a does not have it: not reported to a
        let a_found = tokio::time::timeout(Duration::from_secs(20), a.next_found())
            .await
            .unwrap()
            .unwrap();
        let b_found = tokio::time::timeout(Duration::from_secs(20), b.next_found())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a_found.info_hash, hash);
        assert_eq!(a_found.peer, "127.0.0.1:7002".parse::<SocketAddr>().unwrap());
        assert_eq!(b_found.info_hash, hash);
        assert_eq!(b_found.peer, "127.0.0.1:7001".parse::<SocketAddr>().unwrap());
        // Nothing else: a's own announce is recognised by its cookie, b's other torrent is not a's.
        let more = tokio::time::timeout(Duration::from_millis(500), a.next_found()).await;
        assert!(more.is_err(), "unexpected: {more:?}");
        println!("both found");
        a.shutdown();
        b.shutdown();
    });
}
