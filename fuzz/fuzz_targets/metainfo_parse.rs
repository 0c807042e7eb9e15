//! Torrent files and info dictionaries from arbitrary bytes.
//!
//! The input is tried as a whole torrent file, as a bare info dictionary (what a peer sends through BEP 9),
//! and wrapped as `d4:info<input>e` so that mutations reach the info checks quickly. Properties: no panic;
//! an accepted torrent's raw `info` bytes re-encode to themselves and parse alone to the same info and
//! info-hashes; the hashes are those of the raw bytes; no accepted path can leave the download folder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metainfo::{Info, InfoHashV1, InfoHashV2, InfoHashes, Torrent};

fn check_paths(info: &Info) {
    for i in 0..info.files.len() {
        let path = info.disk_path(i).expect("index in range");
        let file = info.files.get(i).expect("index in range");
        let target = file.symlink_target.iter().flatten().map(String::as_str);
        for c in path.iter().copied().chain(target) {
            assert!(
                !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0']),
                "unsafe path component {c:?} in {path:?}"
            );
            assert!(
                !c.chars().any(|ch| ch.is_ascii_control()),
                "control character in {c:?}"
            );
        }
    }
}

fn check_info(info: &Info, hashes: &InfoHashes, raw: &[u8]) {
    assert_eq!(hashes.v1.is_some(), info.version.has_v1());
    assert_eq!(hashes.v2.is_some(), info.version.has_v2());
    if let Some(h) = hashes.v1 {
        assert_eq!(h, InfoHashV1::of_info(raw));
    }
    if let Some(h) = hashes.v2 {
        assert_eq!(h, InfoHashV2::of_info(raw));
    }
    assert!(info.total_size() > 0);
    if info.version.has_v1() {
        assert_eq!(info.pieces.len() as u64, u64::from(info.geometry.piece_count()));
    }
    check_paths(info);
}

fn torrent(bytes: Vec<u8>) {
    if let Ok(t) = Torrent::from_bytes(bytes) {
        let raw = t.raw_info();
        let encoded = bencode::decode(raw).expect("raw info decodes").encode();
        assert_eq!(encoded, raw, "raw info is not canonical");
        let (info, hashes) = Info::parse(raw).expect("the raw info of an accepted torrent parses alone");
        assert_eq!(hashes, t.info_hashes);
        assert_eq!(info, t.info);
        check_info(&t.info, &t.info_hashes, raw);
    }
}

fuzz_target!(|data: &[u8]| {
    torrent(data.to_vec());

    if let Ok((info, hashes)) = Info::parse(data) {
        check_info(&info, &hashes, data);
        let again = Info::parse(data).expect("parsing is deterministic");
        assert_eq!(again, (info, hashes));
    }

    let mut wrapped = Vec::with_capacity(data.len() + 8);
    wrapped.extend_from_slice(b"d4:info");
    wrapped.extend_from_slice(data);
    wrapped.push(b'e');
    torrent(wrapped);
});
