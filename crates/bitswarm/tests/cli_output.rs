//! What `inspect` prints for people: names from a torrent or link cannot drive the terminal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::process::Command;

#[test]
fn crafted_names_are_escaped_in_text_output() {
    let link = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\
                &dn=%1B%5B31mRED%0Afake%20line&tr=http%3A%2F%2Fa%2F%0D%0Ax";
    let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args(["inspect", link])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert!(text.contains("\\u{1b}[31mRED\\nfake line"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("fake")), "{text}");
}

#[test]
fn json_output_keeps_the_exact_text() {
    let link = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=a%0Ab";
    let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args(["inspect", "--json", link])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "a\nb");
    assert_eq!(v["kind"], "magnet");
}

/// The client's settings: defaults, then the file, then `BITSWARM_CLIENT__*`, then flags, shown by
/// `--print-config` (for `get` and `seed` alike); an unknown key is refused with its name.
#[test]
fn client_settings_come_from_file_environment_and_flags_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.toml");
    std::fs::write(
        &file,
        "max_peers = 7\nmax_up = \"2M\"\n[dht]\nbootstrap = [\"127.0.0.1:7000\"]\n",
    )
    .unwrap();
    for cmd in ["get", "seed"] {
        let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
            .env_remove("BITSWARM_DHT_BOOTSTRAP")
            .env("BITSWARM_CLIENT__MAX_UP", "3M")
            .env("BITSWARM_CLIENT__LSD__ENABLED", "true")
            .args([
                cmd,
                "--print-config",
                "--config",
                file.to_str().unwrap(),
                "--no-dht",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["max_peers"].as_integer(), Some(7), "file: {text}");
        assert_eq!(v["max_up"].as_str(), Some("3M"), "environment over file: {text}");
        assert_eq!(v["lsd"]["enabled"].as_bool(), Some(true), "environment: {text}");
        assert_eq!(v["dht"]["enabled"].as_bool(), Some(false), "flag: {text}");
        assert_eq!(
            v["dht"]["bootstrap"][0].as_str(),
            Some("127.0.0.1:7000"),
            "file: {text}"
        );
    }
    std::fs::write(&file, "max_peer = 7\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args(["get", "--print-config", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_peer") && err.contains("client.toml"), "{err}");
}
