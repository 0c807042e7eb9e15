//! Behaviour of the torrent parser on hand-made torrents, each test quoting the BEP sentence it checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use bencode::Encoder;
use metainfo::merkle::{root_from_piece_layer, SubtreeHasher};
use metainfo::{Info, InfoHashV1, InfoHashV2, Magnet, MetainfoError, Torrent, Version};

const PL: u64 = 16384;

fn v1_info(e: &mut Encoder, name: &[u8], len: u64, extra: impl FnOnce(&mut bencode::DictEncoder<'_>)) {
    let pieces = len.div_ceil(PL) as usize;
    e.dict(|d| {
        d.entry(b"length", |e| e.int(len as i64));
        d.entry(b"name", |e| e.bytes(name));
        d.entry(b"piece length", |e| e.int(PL as i64));
        d.entry(b"pieces", |e| e.bytes(&vec![0xab; 20 * pieces]));
        extra(d);
    });
}

fn torrent(outer: impl FnOnce(&mut bencode::DictEncoder<'_>)) -> Vec<u8> {
    let mut e = Encoder::new();
    e.dict(|d| {
        d.entry(b"info", |e| v1_info(e, b"file.bin", 40_000, |_| {}));
        outer(d);
    });
    e.finish()
}

/// BEP 3: "info_hash: The 20 byte sha1 hash of the bencoded form of the info value from the metainfo file."
#[test]
fn info_hash_is_sha1_of_the_raw_info_bytes() {
    let bytes = torrent(|_| {});
    let t = Torrent::from_bytes(bytes.clone()).unwrap();
    let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    let raw = &bytes[start..bytes.len() - 1];
    assert_eq!(t.raw_info(), raw);
    assert_eq!(t.info_hashes.v1, Some(InfoHashV1::of_info(raw)));
    assert_eq!(t.info_hashes.v2, None);
    assert_eq!(t.info.version, Version::V1);
    assert!(!t.info.multi_file);
    assert_eq!(t.info.disk_path(0).unwrap(), ["file.bin"]);
}

/// BEP 12: "If the client is compatible with the multitracker specification, and if the "announce-list" key is
/// present, the client will ignore the "announce" key and only use the URLs in "announce-list"."
#[test]
fn announce_list_wins_over_announce() {
    let t = Torrent::from_bytes(torrent(|d| {
        d.entry(b"announce", |e| e.bytes(b"http://a/announce"));
        d.entry(b"announce-list", |e| {
            e.list(|l| {
                l.list(|t| {
                    t.bytes(b"udp://b:1");
                    t.bytes(b"udp://c:2");
                });
                l.list(|t| t.bytes(b"http://d/announce"));
                l.list(|_| {});
            })
        });
    }))
    .unwrap();
    assert_eq!(
        t.trackers,
        vec![vec!["udp://b:1", "udp://c:2"], vec!["http://d/announce"]]
    );
    let t = Torrent::from_bytes(torrent(|d| {
        d.entry(b"announce", |e| e.bytes(b"http://a/announce"))
    }))
    .unwrap();
    assert_eq!(t.trackers, vec![vec!["http://a/announce"]]);
}

/// BEP 19: "url-list ... can be a single URL or a list of URLs".
#[test]
fn url_list_as_string_or_list() {
    let one = Torrent::from_bytes(torrent(|d| d.entry(b"url-list", |e| e.bytes(b"http://ws/x")))).unwrap();
    assert_eq!(one.web_seeds, ["http://ws/x"]);
    let many = Torrent::from_bytes(torrent(|d| {
        d.entry(b"url-list", |e| {
            e.list(|l| {
                l.bytes(b"http://a/");
                l.bytes(b"http://b/");
            })
        })
    }))
    .unwrap();
    assert_eq!(many.web_seeds, ["http://a/", "http://b/"]);
}

/// Optional fields outside `info` that have the wrong type are skipped with a warning, not fatal.
#[test]
fn bad_optional_fields_become_warnings() {
    let t = Torrent::from_bytes(torrent(|d| {
        d.entry(b"announce-list", |e| e.int(3));
        d.entry(b"comment", |e| e.int(1));
        d.entry(b"creation date", |e| e.bytes(b"yesterday"));
    }))
    .unwrap();
    assert_eq!(t.warnings.len(), 3, "{:?}", t.warnings);
    assert!(t.comment.is_none() && t.creation_date.is_none() && t.trackers.is_empty());
}

/// BEP 27: "private=1 ... the client MUST publish its presence (to get other peers) ONLY via the trackers".
#[test]
fn private_flag() {
    let mut e = Encoder::new();
    e.dict(|d| {
        d.entry(b"info", |e| {
            v1_info(e, b"x", 10, |d| d.entry(b"private", |e| e.int(1)))
        })
    });
    assert!(Torrent::from_bytes(e.finish()).unwrap().info.private);
}

#[test]
fn utf8_name_variant_is_preferred() {
    let mut e = Encoder::new();
    e.dict(|d| {
        d.entry(b"info", |e| {
            v1_info(e, b"caf\xe9", 10, |d| {
                d.entry(b"name.utf-8", |e| e.bytes("café".as_bytes()))
            })
        })
    });
    assert_eq!(Torrent::from_bytes(e.finish()).unwrap().info.name, "café");
}

/// BEP 3: "pieces maps to a string whose length is a multiple of 20."
#[test]
fn wrong_piece_count_names_the_field_and_offset() {
    let mut e = Encoder::new();
    e.dict(|d| {
        d.entry(b"info", |e| {
            e.dict(|d| {
                d.entry(b"length", |e| e.int(40_000));
                d.entry(b"name", |e| e.bytes(b"x"));
                d.entry(b"piece length", |e| e.int(PL as i64));
                d.entry(b"pieces", |e| e.bytes(&[0; 40]));
            })
        })
    });
    let err = Torrent::from_bytes(e.finish()).unwrap_err();
    assert!(
        matches!(err, MetainfoError::Invalid { ref field, .. } if field == "info.pieces"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("has 2 hashes but 40000 bytes in pieces of 16384 need 3"),
        "{err}"
    );
}

/// The info dict from BEP 9 metadata exchange parses on its own and gives the same hash.
#[test]
fn info_parses_alone() {
    let bytes = torrent(|_| {});
    let t = Torrent::from_bytes(bytes).unwrap();
    let (info, hashes) = Info::parse(t.raw_info()).unwrap();
    assert_eq!(info, t.info);
    assert_eq!(hashes, t.info_hashes);
}

/// BEP 52: "Note that identical files always result in the same root hash." and a v2 torrent of one file
/// whose tree holds one entry is a single-file torrent.
#[test]
fn v2_single_file_with_piece_layers() {
    let data: Vec<u8> = (0..(3 * PL + 100)).map(|i| (i % 251) as u8).collect();
    let layer: Vec<[u8; 32]> = data
        .chunks(PL as usize)
        .map(|c| {
            let mut h = SubtreeHasher::new(1);
            h.update(c);
            h.finish()
        })
        .collect();
    let root = root_from_piece_layer(&layer, PL);
    let build = |layer_bytes: Vec<u8>| {
        let mut e = Encoder::new();
        e.dict(|d| {
            d.entry(b"info", |e| {
                e.dict(|d| {
                    d.entry(b"file tree", |e| {
                        e.dict(|d| {
                            d.entry(b"a.bin", |e| {
                                e.dict(|d| {
                                    d.entry(b"", |e| {
                                        e.dict(|d| {
                                            d.entry(b"length", |e| e.int(data.len() as i64));
                                            d.entry(b"pieces root", |e| e.bytes(&root));
                                        })
                                    })
                                })
                            })
                        })
                    });
                    d.entry(b"meta version", |e| e.int(2));
                    d.entry(b"name", |e| e.bytes(b"a.bin"));
                    d.entry(b"piece length", |e| e.int(PL as i64));
                })
            });
            d.entry(b"piece layers", |e| {
                e.dict(|d| d.entry(&root, |e| e.bytes(&layer_bytes)))
            });
        });
        e.finish()
    };
    let t = Torrent::from_bytes(build(layer.concat())).unwrap();
    assert_eq!(t.info.version, Version::V2);
    assert!(!t.info.multi_file);
    assert_eq!(t.info_hashes.v2, Some(InfoHashV2::of_info(t.raw_info())));
    assert_eq!(t.info.geometry.piece_count(), 4);
    assert_eq!(t.piece_layers[&root], layer);

    let mut bad = layer.concat();
    bad[0] ^= 1;
    let err = Torrent::from_bytes(build(bad)).unwrap_err().to_string();
    assert!(
        err.contains("piece layers[a.bin]") && err.contains("does not hash to the file's pieces root"),
        "{err}"
    );
    let err = Torrent::from_bytes(build(layer.concat()[..64].to_vec()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is 64 bytes, but 4 pieces need 128"), "{err}");
}

#[test]
fn magnet_of_a_parsed_torrent_round_trips() {
    let t = Torrent::from_bytes(torrent(|d| d.entry(b"announce", |e| e.bytes(b"udp://t:1")))).unwrap();
    let m = Magnet {
        v1: t.info_hashes.v1,
        display_name: Some(t.info.name.clone()),
        trackers: t.trackers.concat(),
        ..Magnet::default()
    };
    assert_eq!(Magnet::parse(&m.to_uri()).unwrap(), m);
}

/// BEP 9: "This extension only transfers the info-dictionary part of the .torrent file. This part can be
/// validated by the info-hash." A torrent rebuilt from fetched info bytes has the same info-hash, and the
/// magnet's trackers (one tier each) outside `info`.
#[test]
fn torrent_from_fetched_info_keeps_the_info_hash_and_adds_the_magnets_trackers() {
    let original = Torrent::from_bytes(torrent(|_| {})).unwrap();
    let trackers = vec!["http://a/announce".to_string(), "udp://b:1".to_string()];
    let ws = vec!["http://w/".to_string()];
    let t = Torrent::from_info(original.raw_info(), &trackers, &ws).unwrap();
    assert_eq!(t.raw_info(), original.raw_info());
    assert_eq!(t.info_hashes, original.info_hashes);
    assert_eq!(t.info, original.info);
    assert_eq!(
        t.trackers,
        vec![vec![trackers[0].clone()], vec![trackers[1].clone()]]
    );
    assert_eq!(t.web_seeds, ws);
    // Written as a torrent file, it reads back the same.
    assert_eq!(Torrent::from_bytes(t.bytes().to_vec()).unwrap(), t);
    let bare = Torrent::from_info(original.raw_info(), &[], &[]).unwrap();
    assert!(bare.trackers.is_empty());
    assert_eq!(bare.info_hashes, original.info_hashes);
    assert!(Torrent::from_info(b"d4:name", &[], &[]).is_err());
}

/// BEP 52: "piece layers: ... Note that the piece layers are not part of the info dictionary": a fetched
/// v2-only info dictionary cannot be checked without them, a hybrid one can (by its SHA-1 pieces).
#[test]
fn fetched_info_without_piece_layers_is_refused_for_v2_only_but_not_for_hybrid() {
    let data: Vec<u8> = (0..(3 * PL + 100)).map(|i| (i % 251) as u8).collect();
    let layer: Vec<[u8; 32]> = data
        .chunks(PL as usize)
        .map(|c| {
            let mut h = SubtreeHasher::new(1);
            h.update(c);
            h.finish()
        })
        .collect();
    let root = root_from_piece_layer(&layer, PL);
    let info = |hybrid: bool| {
        let mut e = Encoder::new();
        e.dict(|d| {
            d.entry(b"file tree", |e| {
                e.dict(|d| {
                    d.entry(b"a.bin", |e| {
                        e.dict(|d| {
                            d.entry(b"", |e| {
                                e.dict(|d| {
                                    d.entry(b"length", |e| e.int(data.len() as i64));
                                    d.entry(b"pieces root", |e| e.bytes(&root));
                                })
                            })
                        })
                    })
                })
            });
            d.entry(b"meta version", |e| e.int(2));
            d.entry(b"name", |e| e.bytes(b"a.bin"));
            d.entry(b"piece length", |e| e.int(PL as i64));
            if hybrid {
                d.entry(b"length", |e| e.int(data.len() as i64));
                d.entry(b"pieces", |e| e.bytes(&[7u8; 80]));
            }
        });
        e.finish()
    };
    let err = Torrent::from_info(&info(false), &[], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("piece layers"), "{err}");
    let t = Torrent::from_info(&info(true), &[], &[]).unwrap();
    assert_eq!(t.info.version, Version::Hybrid);
    assert!(t.piece_layers.is_empty());
    assert_eq!(t.info_hashes.v2, Some(InfoHashV2::of_info(&info(true))));
}
