//! Decoding a torrent with 100,000 files: bencode alone, and the whole metainfo parse with its checks.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use metainfo::{BuildFile, PieceHashes, Torrent, TorrentBuilder, Version};

fn big_torrent(files: usize) -> Vec<u8> {
    let files: Vec<BuildFile> = (0..files)
        .map(|i| BuildFile {
            path: vec![format!("dir{:03}", i % 500), format!("file-{i:06}.dat")],
            length: 1000 + (i as u64 * 7919) % 100_000,
            executable: false,
        })
        .collect();
    let mut builder = TorrentBuilder::new("many", files, true, Version::V1, 1 << 20);
    builder.trackers = vec![vec!["http://127.0.0.1:6969/announce".into()]];
    let plan = builder.plan().unwrap();
    let n = plan.geometry().piece_count() as usize;
    plan.finish(&vec![
        PieceHashes {
            v1: Some([7; 20]),
            v2: None
        };
        n
    ])
    .unwrap()
}

fn decode(c: &mut Criterion) {
    let bytes = big_torrent(100_000);
    let mut g = c.benchmark_group("100k-files");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("bencode::decode", |b| {
        b.iter(|| bencode::decode(&bytes).unwrap().raw().len())
    });
    g.bench_function("Torrent::from_bytes", |b| {
        b.iter(|| Torrent::from_bytes(bytes.clone()).unwrap().info.files.len())
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
