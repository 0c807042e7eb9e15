//! `bitswarm directory`: the site and its embedded tracker start on the addresses given, serve pages and
//! metrics, print their effective configuration, and stop cleanly on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn directory_serves_pages_and_metrics_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args([
            "directory",
            "--listen",
            "127.0.0.1:0",
            "--tracker-http",
            "127.0.0.1:0",
            "--tracker-udp",
            "127.0.0.1:0",
            "--insecure-cookies",
            "--database",
        ])
        .arg(dir.path().join("d.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("directory: http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let second = lines.next().unwrap().unwrap();
    assert!(
        second.starts_with("directory: embedded tracker http://127.0.0.1:"),
        "{second}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let home = loop {
        if TcpStream::connect(&addr).is_ok() {
            break http_get(&addr, "/");
        }
        assert!(Instant::now() < deadline, "the site did not answer");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    assert!(home.contains("id=\"search-form\""));
    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.contains("directory_torrents 0"), "{metrics}");
    let api = http_get(&addr, "/api/openapi.json");
    assert!(api.contains("\"openapi\""));
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bitswarm directory did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn directory_print_config_shows_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("d.toml");
    std::fs::write(&f, "[web]\npage_size = 25\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args([
            "directory",
            "--print-config",
            "--listen",
            "127.0.0.1:9999",
            "--config",
        ])
        .arg(&f)
        .env("BITSWARM_DIRECTORY__WEB__SITE_NAME", "Example Directory")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("page_size = 25"), "{text}");
    assert!(text.contains("site_name = \"Example Directory\""));
    assert!(text.contains("listen = \"127.0.0.1:9999\""));
    assert!(text.contains("[tracker.swarm]"));
    let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args(["directory", "--print-config"])
        .env("BITSWARM_DIRECTORY__WEB__PAGE_SISE", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("page_sise"));
}
