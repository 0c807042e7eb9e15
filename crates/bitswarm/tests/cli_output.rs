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
