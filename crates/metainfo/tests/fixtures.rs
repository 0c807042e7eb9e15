#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Real torrents made by mktorrent, transmission-create and libtorrent (v1, v2, hybrid), captured as bytes in
//! `tests/fixtures/` by `make_fixtures.sh`, with what those tools report about each in `expected.json`.
//! bitswarm must parse every one and agree with the tools on hashes, files and pieces.

use std::fs;
use std::path::{Path, PathBuf};

use metainfo::Torrent;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> serde_json::Map<String, Value> {
    let text = fs::read_to_string(fixtures_dir().join("expected.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        other => panic!("expected.json is not an object: {other}"),
    }
}

fn opt_str(v: &Value) -> Option<&str> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => panic!("not a string or null: {other}"),
    }
}

/// Every `.torrent` in the folder is listed in expected.json and the other way round.
#[test]
fn every_fixture_is_described() {
    let exp = expected();
    let mut on_disk: Vec<String> = fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".torrent"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = exp.keys().cloned().collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    // The set covers each tool and each version.
    for needle in [
        "mktorrent-single",
        "mktorrent-multi",
        "transmission-single",
        "transmission-multi",
        "libtorrent-v1",
        "libtorrent-v2",
        "libtorrent-hybrid",
    ] {
        assert!(listed.iter().any(|n| n.starts_with(needle)), "{needle}");
    }
}

#[test]
fn fixtures_match_what_the_tools_report() {
    let exp = expected();
    assert!(!exp.is_empty());
    for (name, want) in &exp {
        let bytes = fs::read(fixtures_dir().join(name)).unwrap();
        let t = Torrent::from_bytes(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ctx = |what: &str| format!("{name}: {what}");

        // Info-hashes.
        let v1 = t.info_hashes.v1.map(|h| h.to_hex());
        let v2 = t.info_hashes.v2.map(|h| h.to_hex());
        assert_eq!(
            v1.as_deref(),
            opt_str(&want["info_hash_v1"]),
            "{}",
            ctx("v1 hash")
        );
        assert_eq!(
            v2.as_deref(),
            opt_str(&want["info_hash_v2"]),
            "{}",
            ctx("v2 hash")
        );
        if let Some(h) = want.get("transmission_show_hash") {
            assert_eq!(v1.as_deref(), h.as_str(), "{}", ctx("transmission-show hash"));
        }
        let version = match (v1.is_some(), v2.is_some()) {
            (true, true) => "hybrid",
            (true, false) => "v1",
            (false, true) => "v2",
            _ => unreachable!(),
        };
        assert_eq!(t.info.version.as_str(), version, "{}", ctx("version"));

        // Pieces.
        assert_eq!(
            Some(t.info.piece_length),
            want["piece_length"].as_u64(),
            "{}",
            ctx("piece length")
        );
        assert_eq!(
            Some(u64::from(t.info.geometry.piece_count())),
            want["piece_count"].as_u64(),
            "{}",
            ctx("piece count")
        );
        if t.info.version.has_v1() {
            assert_eq!(
                t.info.pieces.len() as u64,
                want["piece_count"].as_u64().unwrap(),
                "{}",
                ctx("v1 hashes")
            );
        }

        // Files (pad files left out), with the torrent's folder name in front for multi-file torrents, as
        // libtorrent reports them.
        let got: Vec<(String, u64)> = (0..t.info.files.len())
            .filter(|&i| !t.info.files[i].attr.pad)
            .map(|i| (t.info.disk_path(i).unwrap().join("/"), t.info.files[i].length))
            .collect();
        let want_files: Vec<(String, u64)> = want["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f[0].as_str().unwrap().to_string(), f[1].as_u64().unwrap()))
            .collect();
        assert_eq!(got, want_files, "{}", ctx("files"));
        assert_eq!(
            t.info.total_size(),
            want_files.iter().map(|f| f.1).sum::<u64>(),
            "{}",
            ctx("total size")
        );

        // v2: every file longer than a piece has a verified piece layer.
        if t.info.version.has_v2() {
            for f in t.info.files.iter().filter(|f| !f.attr.pad && f.length > 0) {
                let root = f.pieces_root.unwrap_or_else(|| panic!("{}", ctx("pieces root")));
                if f.length > t.info.piece_length {
                    let layer = &t.piece_layers[&root];
                    assert_eq!(
                        layer.len() as u64,
                        f.length.div_ceil(t.info.piece_length),
                        "{}",
                        ctx("piece layer")
                    );
                }
            }
        }
        if version == "hybrid" && t.info.multi_file {
            assert!(
                t.info.files.iter().any(|f| f.attr.pad),
                "{}",
                ctx("hybrid pad files")
            );
        }

        // The raw info dictionary is canonical bencode and re-encodes to the very same bytes, and parsing it
        // alone gives the same info and hashes.
        let raw = t.raw_info();
        assert_eq!(bencode::decode(raw).unwrap().encode(), raw, "{}", ctx("raw info"));
        let (info, hashes) = metainfo::Info::parse(raw).unwrap();
        assert_eq!(info, t.info, "{}", ctx("Info::parse"));
        assert_eq!(hashes, t.info_hashes, "{}", ctx("Info::parse hashes"));
        // And so does the whole file.
        assert_eq!(
            bencode::decode(t.bytes()).unwrap().encode(),
            t.bytes(),
            "{}",
            ctx("file")
        );
    }
}

/// The optional fields the tools were asked to write come through.
#[test]
fn optional_fields_from_the_tools() {
    let read = |n: &str| Torrent::from_bytes(fs::read(fixtures_dir().join(n)).unwrap()).unwrap();
    let mk = read("mktorrent-multi.torrent");
    assert!(mk.info.private);
    assert_eq!(mk.info.source.as_deref(), Some("bitswarm-fixture"));
    assert_eq!(mk.comment.as_deref(), Some("fixture comment"));
    assert_eq!(mk.web_seeds, vec!["http://127.0.0.1:3/seed/".to_string()]);
    assert_eq!(
        mk.trackers.concat(),
        vec![
            "http://127.0.0.1:1/announce".to_string(),
            "http://127.0.0.1:2/announce".to_string()
        ]
    );
    assert!(mk.info.multi_file);
    assert_eq!(mk.info.name, "payload");

    let tr = read("transmission-multi.torrent");
    assert!(tr.info.private);
    assert_eq!(tr.comment.as_deref(), Some("fixture comment"));
    assert!(tr
        .created_by
        .as_deref()
        .unwrap_or_default()
        .contains("Transmission"));

    for n in [
        "mktorrent-single.torrent",
        "transmission-single.torrent",
        "libtorrent-v2-single.torrent",
        "libtorrent-hybrid-single.torrent",
    ] {
        let t = read(n);
        assert!(!t.info.multi_file, "{n}");
        assert_eq!(t.info.name, "single.bin", "{n}");
        assert!(t.warnings.is_empty(), "{n}: {:?}", t.warnings);
    }
}
