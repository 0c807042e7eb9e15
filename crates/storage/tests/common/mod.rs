//! Shared fixtures: torrents built with `TorrentBuilder` and `storage::hash_pieces` from payloads written
//! to a source folder, with the expected bytes of every file and piece kept in memory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use metainfo::{BuildFile, Segment, Torrent, TorrentBuilder, Version};
use storage::{hash_pieces, Layout, MemoryStore, PieceStore, Progress};

/// The torrent's folder (or single file) name.
pub const NAME: &str = "payload";

/// A torrent and its content.
pub struct Fixture {
    pub torrent: Torrent,
    pub layout: Layout,
    /// Expected contents per layout file (pad files: zeros).
    pub contents: Vec<Vec<u8>>,
    /// The folder holding the complete payload (`src/payload/...`, or `src/payload` for a single file).
    pub src: tempfile::TempDir,
}

/// Deterministic bytes for a file.
pub fn data_for(name: &str, len: usize) -> Vec<u8> {
    let salt = name
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(salt) >> 7) as u8)
        .collect()
}

/// Build a torrent of `files` (`"dir/sub/name"`, length); multi-file unless it is one file named [`NAME`].
pub fn fixture(version: Version, piece_length: u64, files: &[(&str, usize)]) -> Fixture {
    let src = tempfile::tempdir().unwrap();
    let multi = !(files.len() == 1 && files[0].0 == NAME);
    let base = if multi {
        src.path().join(NAME)
    } else {
        src.path().to_path_buf()
    };
    let build: Vec<BuildFile> = files
        .iter()
        .map(|(name, len)| {
            let p = base.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data_for(name, *len)).unwrap();
            BuildFile {
                path: name.split('/').map(String::from).collect(),
                length: *len as u64,
                executable: false,
            }
        })
        .collect();
    let plan = TorrentBuilder::new(NAME, build, multi, version, piece_length)
        .plan()
        .unwrap();
    let paths: Vec<Option<PathBuf>> = plan
        .entries()
        .iter()
        .map(|e| e.source.map(|s| base.join(plan.files()[s].path.join("/"))))
        .collect();
    let hashes = hash_pieces(plan.geometry(), &paths, 2, &Progress::default()).unwrap();
    let torrent = Torrent::from_bytes(plan.finish(&hashes).unwrap()).unwrap();
    let layout = Layout::from_torrent(&torrent).unwrap();
    let contents = torrent
        .info
        .files
        .iter()
        .map(|f| {
            if f.attr.pad {
                vec![0; f.length as usize]
            } else {
                data_for(&f.path.join("/"), f.length as usize)
            }
        })
        .collect();
    Fixture {
        torrent,
        layout,
        contents,
        src,
    }
}

impl Fixture {
    /// The expected bytes of piece `i`.
    pub fn piece(&self, i: u32) -> Vec<u8> {
        let spec = self.layout.geometry().piece(i).unwrap();
        let mut out = Vec::new();
        for s in spec.segments {
            match s {
                Segment::Data { file, offset, len } => {
                    out.extend_from_slice(&self.contents[file][offset as usize..(offset + len) as usize])
                }
                Segment::Zeros(n) => out.extend(std::iter::repeat_n(0u8, n as usize)),
            }
        }
        out
    }

    /// Every block `(piece, offset, bytes)` of the torrent cut at `block` bytes, in shuffled order.
    pub fn blocks(&self, block: usize, rng: &mut Rng) -> Vec<(u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        for p in 0..self.layout.piece_count() {
            let bytes = self.piece(p);
            for (k, chunk) in bytes.chunks(block).enumerate() {
                out.push((p, (k * block) as u32, chunk.to_vec()));
            }
        }
        rng.shuffle(&mut out);
        out
    }

    /// The swarm info-hash.
    pub fn info_hash(&self) -> metainfo::InfoHashV1 {
        self.torrent.info_hashes.swarm_hash().unwrap()
    }

    /// Indexes of the pad files.
    pub fn pads(&self) -> Vec<usize> {
        (0..self.layout.files().len())
            .filter(|&i| self.layout.files()[i].pad)
            .collect()
    }

    /// Index of the layout file at `path` (relative to the torrent folder).
    pub fn file_index(&self, path: &str) -> usize {
        self.torrent
            .info
            .files
            .iter()
            .position(|f| !f.attr.pad && f.path.join("/") == path)
            .unwrap()
    }

    /// The pieces that hold any byte of file `file` in `from..to`.
    pub fn pieces_touching(&self, file: usize, from: u64, to: u64) -> Vec<u32> {
        (0..self.layout.piece_count())
            .filter(|&p| {
                self.layout
                    .geometry()
                    .piece(p)
                    .unwrap()
                    .segments
                    .iter()
                    .any(|s| match *s {
                        Segment::Data { file: f, offset, len } => {
                            f == file && offset < to && offset + len > from
                        }
                        Segment::Zeros(_) => false,
                    })
            })
            .collect()
    }
}

/// Files used by most tests: nested folders, an empty file, sizes that do not line up with pieces.
pub const FILES: &[(&str, usize)] = &[
    ("a/b/c.bin", 40_000),
    ("a/empty", 0),
    ("d/e/f/g.dat", 70_001),
    ("top.txt", 5),
    ("z", 16384 * 2 + 3),
];

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// What a test can see of a store's files, whichever store it is.
pub trait Probe {
    /// The file's bytes, or `None` if it does not exist.
    fn contents(&self, file: usize) -> Option<Vec<u8>>;
}

impl Probe for MemoryStore {
    fn contents(&self, file: usize) -> Option<Vec<u8>> {
        self.file_contents(file)
    }
}

impl Probe for storage::FileStore {
    fn contents(&self, file: usize) -> Option<Vec<u8>> {
        let path = self.file_path(file)?;
        match std::fs::symlink_metadata(path) {
            Ok(_) => Some(std::fs::read(path).unwrap()),
            Err(_) => None,
        }
    }
}

/// Every file under `dir`, relative, sorted (symbolic links included, not followed).
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if ft.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// Write every block, in the order given.
pub fn write_all<S: PieceStore + ?Sized>(store: &S, blocks: &[(u32, u32, Vec<u8>)]) {
    for (p, o, b) in blocks {
        store.write_block(*p, *o, b).unwrap();
    }
}
