#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! The hostile corpus in `tests/hostile/` (written by `make_hostile.py`): every bad torrent is refused with
//! an error that says what is wrong and where, every bad magnet link is refused, and nothing panics. Then
//! every prefix and many single-byte corruptions of real torrents: refused or accepted, never a panic, and
//! whatever is accepted is safe (no path can leave the download folder) and self-consistent.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use metainfo::{Info, Magnet, MetainfoError, Torrent};
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

/// (file name, expected error substring, expected location substring).
fn cases() -> Vec<(String, String, String)> {
    let text = fs::read_to_string(dir("hostile").join("cases.json")).unwrap();
    let Value::Object(m) = serde_json::from_str(&text).unwrap() else {
        panic!("cases.json is not an object")
    };
    m.into_iter()
        .map(|(k, v)| {
            (
                k,
                v["error"].as_str().unwrap().to_string(),
                v["where"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (link, expected error substring).
fn magnets() -> Vec<(String, String)> {
    fs::read_to_string(dir("hostile").join("magnets.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (link, want) = l.split_once('\t').unwrap();
            (link.to_string(), want.to_string())
        })
        .collect()
}

fn parse(bytes: &[u8]) -> Result<Torrent, MetainfoError> {
    catch_unwind(AssertUnwindSafe(|| Torrent::from_bytes(bytes.to_vec())))
        .unwrap_or_else(|_| panic!("Torrent::from_bytes panicked on {} bytes", bytes.len()))
}

/// Does the message say where the problem is: a byte offset, or a field in backticks?
fn says_where(msg: &str) -> bool {
    let at_byte = msg
        .split("at byte ")
        .skip(1)
        .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    let field =
        msg.starts_with("missing field `") || msg.starts_with("field `") || msg.starts_with("file path `");
    at_byte || field
}

#[test]
fn corpus_is_complete() {
    let cases = cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut on_disk: Vec<String> = fs::read_dir(dir("hostile"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".torrent"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "cases.json and the .torrent files disagree");
    assert!(magnets().len() >= 30);
}

#[test]
fn every_hostile_torrent_is_refused_with_a_precise_message() {
    let mut failures = Vec::new();
    for (name, want, place) in cases() {
        let bytes = fs::read(dir("hostile").join(&name)).unwrap();
        match parse(&bytes) {
            Ok(t) => failures.push(format!("{name}: accepted ({:?})", t.info.files)),
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(&want) {
                    failures.push(format!("{name}: {msg:?} lacks {want:?}"));
                }
                if !msg.contains(&place) {
                    failures.push(format!("{name}: {msg:?} does not say {place:?}"));
                }
                if !says_where(&msg) {
                    failures.push(format!("{name}: {msg:?} names no field or byte offset"));
                }
                if msg.contains('\n') || msg.len() > 400 {
                    failures.push(format!("{name}: message is not one short line: {msg:?}"));
                }
            }
        }
        // The info dictionary alone (as a peer would send it via BEP 9) must not panic either.
        if let Some(info) = bencode::decode(&bytes)
            .ok()
            .and_then(|v| v.as_dict().and_then(|d| d.get(b"info")).map(|i| i.raw()))
        {
            let _ =
                catch_unwind(|| Info::parse(info)).unwrap_or_else(|_| panic!("{name}: Info::parse panicked"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_hostile_magnet_is_refused() {
    let mut failures = Vec::new();
    for (link, want) in magnets() {
        let shown: String = link.chars().take(80).collect();
        match catch_unwind(|| Magnet::parse(&link)).unwrap_or_else(|_| panic!("{shown}: panicked")) {
            Ok(m) => failures.push(format!("{shown}: accepted as {m:?}")),
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(&want) {
                    failures.push(format!("{shown}: {msg:?} lacks {want:?}"));
                }
                if msg.len() > 400 {
                    failures.push(format!("{shown}: message is {} bytes long", msg.len()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn fixture(name: &str) -> Vec<u8> {
    fs::read(dir("fixtures").join(name)).unwrap()
}

/// What an accepted torrent must satisfy, however it was mangled.
fn check_accepted(t: &Torrent, what: &str) {
    for (i, f) in t.info.files.iter().enumerate() {
        let path = t.info.disk_path(i).unwrap();
        let target = f.symlink_target.iter().flatten().map(String::as_str);
        for c in path.iter().copied().chain(target) {
            assert!(
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && !c.contains(['/', '\\', '\0'])
                    && !c.chars().any(|ch| ch.is_ascii_control()),
                "{what}: unsafe component {c:?} in {path:?}"
            );
        }
    }
    let raw = t.raw_info();
    assert_eq!(bencode::decode(raw).unwrap().encode(), raw, "{what}");
    let (info, hashes) = Info::parse(raw).unwrap_or_else(|e| panic!("{what}: raw info refused: {e}"));
    assert_eq!(info, t.info, "{what}");
    assert_eq!(hashes, t.info_hashes, "{what}");
    assert!(t.info.total_size() > 0, "{what}");
    if t.info.version.has_v1() {
        assert_eq!(
            t.info.pieces.len(),
            t.info.geometry.piece_count() as usize,
            "{what}"
        );
    }
}

const SMALL_VALID: [&str; 4] = [
    "mktorrent-single.torrent",
    "libtorrent-v1.torrent",
    "libtorrent-v2.torrent",
    "libtorrent-hybrid.torrent",
];

/// Every proper prefix of a valid torrent is refused as incomplete bencode, and the whole file is accepted.
#[test]
fn every_prefix_is_refused() {
    for name in SMALL_VALID {
        let bytes = fixture(name);
        check_accepted(&parse(&bytes).unwrap(), name);
        for n in 0..bytes.len() {
            match parse(&bytes[..n]) {
                Ok(_) => panic!("{name}: prefix of {n} bytes accepted"),
                Err(MetainfoError::Bencode(e)) if e.is_incomplete() => {
                    assert_eq!(e.offset, n, "{name}: prefix of {n} bytes: {e}");
                }
                Err(e) => panic!("{name}: prefix of {n} bytes: not an incomplete error: {e}"),
            }
        }
    }
}

/// Each byte of small valid torrents changed in several ways: never a panic; what is accepted is safe.
#[test]
fn corrupting_any_byte_never_panics() {
    let mut accepted = 0usize;
    let mut refused = 0usize;
    for name in SMALL_VALID {
        let bytes = fixture(name);
        for i in 0..bytes.len() {
            let orig = bytes[i];
            let mut variants: Vec<u8> = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff]
                .iter()
                .map(|m| orig ^ m)
                .collect();
            variants.extend_from_slice(b"0159:-deil./\\\0");
            for b in variants {
                if b == orig {
                    continue;
                }
                let mut m = bytes.clone();
                m[i] = b;
                match parse(&m) {
                    Ok(t) => {
                        accepted += 1;
                        check_accepted(&t, &format!("{name} byte {i} = {b:#04x}"));
                    }
                    Err(e) => {
                        refused += 1;
                        let msg = e.to_string();
                        assert!(says_where(&msg), "{name} byte {i} = {b:#04x}: {msg}");
                    }
                }
            }
        }
    }
    // Both outcomes happen: changing a string's content is fine, changing structure is not.
    assert!(
        accepted > 0 && refused > accepted,
        "{accepted} accepted, {refused} refused"
    );
}

/// Deleting or duplicating any one byte: never a panic.
#[test]
fn deleting_or_duplicating_any_byte_never_panics() {
    for name in SMALL_VALID {
        let bytes = fixture(name);
        for i in 0..bytes.len() {
            let mut del = bytes.clone();
            del.remove(i);
            if let Ok(t) = parse(&del) {
                check_accepted(&t, &format!("{name} without byte {i}"));
            }
            let mut dup = bytes.clone();
            dup.insert(i, bytes[i]);
            if let Ok(t) = parse(&dup) {
                check_accepted(&t, &format!("{name} with byte {i} doubled"));
            }
        }
    }
}
