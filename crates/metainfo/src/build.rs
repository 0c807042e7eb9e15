//! Building torrent files: a [`TorrentBuilder`] describes the content, [`TorrentBuilder::plan`] lays it out
//! (sorting files, inserting BEP 47 pad files for hybrids) and says which pieces to hash, and
//! [`Plan::finish`] turns the piece hashes into the torrent's bytes. Reading and hashing the data is the
//! caller's job (see the `storage` crate), so this stays pure.

use bencode::Encoder;

use crate::geometry::{Geometry, GeometryError, Version};
use crate::merkle::{root_from_piece_layer, Hash256, BLOCK_SIZE};
use crate::path::{check_unique, sanitize_component};

/// One file to put in a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFile {
    /// Path components within the torrent (for a single-file torrent, just the name).
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Mark executable (BEP 47 `x`).
    pub executable: bool,
}

/// What to put in a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentBuilder {
    /// The torrent's name: the file name (single file) or folder name.
    pub name: String,
    /// The files; for a single-file torrent one file whose path is `[name]`.
    pub files: Vec<BuildFile>,
    /// Files live under a folder named `name`.
    pub multi_file: bool,
    /// v1, v2 or hybrid.
    pub version: Version,
    /// Piece length (a power of two >= 16 KiB for v2 and hybrid).
    pub piece_length: u64,
    /// Tracker tiers.
    pub trackers: Vec<Vec<String>>,
    /// BEP 19 web seeds.
    pub web_seeds: Vec<String>,
    /// Comment.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date`, seconds since the epoch; `None` to leave it out (for reproducible output).
    pub creation_date: Option<i64>,
    /// BEP 27 private flag.
    pub private: bool,
    /// `source` field (private trackers).
    pub source: Option<String>,
}

/// Why a torrent cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No files, or only empty ones.
    #[error("nothing to share: no file has any data")]
    Empty,
    /// A name that would not survive a round trip through the parser.
    #[error("file name {0:?} cannot be stored in a torrent")]
    BadName(String),
    /// Two files with the same path, or a file that is also a folder.
    #[error("file {0:?} clashes with another file")]
    Clash(String),
    /// Layout problem.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// Wrong number or kind of piece hashes given to [`Plan::finish`].
    #[error("piece hashes do not match the plan: {0}")]
    Hashes(String),
}

/// Hashes computed for one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PieceHashes {
    /// SHA-1 of the piece (v1 and hybrid).
    pub v1: Option<[u8; 20]>,
    /// Merkle root of the piece's subtree (v2 and hybrid).
    pub v2: Option<Hash256>,
}

/// One entry of the planned file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// Index into the builder's (sorted) files, or `None` for a pad file.
    pub source: Option<usize>,
    /// Length in bytes.
    pub length: u64,
}

/// A laid-out torrent, waiting for its piece hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    builder: TorrentBuilder,
    entries: Vec<PlanEntry>,
    geometry: Geometry,
}

/// Automatic piece length: the smallest power of two giving at most about 1500 pieces, within
/// 16 KiB ..= 16 MiB (close to what libtorrent and Transmission 4 choose).
pub fn auto_piece_length(total: u64) -> u64 {
    let target = total / 1500;
    target.max(BLOCK_SIZE).next_power_of_two().min(16 << 20)
}

impl TorrentBuilder {
    /// A builder with no trackers, web seeds, comment, date or flags; set those fields as needed.
    pub fn new(
        name: impl Into<String>,
        files: Vec<BuildFile>,
        multi_file: bool,
        version: Version,
        piece_length: u64,
    ) -> Self {
        TorrentBuilder {
            name: name.into(),
            files,
            multi_file,
            version,
            piece_length,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            private: false,
            source: None,
        }
    }

    /// Sort the files, add pad files (hybrid) and lay them out.
    pub fn plan(mut self) -> Result<Plan, BuildError> {
        sanitize_component(self.name.as_bytes())
            .ok()
            .filter(|s| *s == self.name)
            .ok_or_else(|| BuildError::BadName(self.name.clone()))?;
        for f in &self.files {
            for c in &f.path {
                sanitize_component(c.as_bytes())
                    .ok()
                    .filter(|s| s == c)
                    .ok_or_else(|| BuildError::BadName(f.path.join("/")))?;
            }
            if f.path.is_empty() {
                return Err(BuildError::BadName(String::new()));
            }
        }
        // BEP 52 orders files as the file tree's sorted keys; use the same order for every version.
        self.files.sort_by(|a, b| {
            let ka: Vec<&[u8]> = a.path.iter().map(|s| s.as_bytes()).collect();
            let kb: Vec<&[u8]> = b.path.iter().map(|s| s.as_bytes()).collect();
            ka.cmp(&kb)
        });
        check_unique(self.files.iter().map(|f| f.path.as_slice())).map_err(|(i, _)| {
            BuildError::Clash(self.files.get(i).map(|f| f.path.join("/")).unwrap_or_default())
        })?;
        if self.files.iter().all(|f| f.length == 0) {
            return Err(BuildError::Empty);
        }
        let pl = self.piece_length;
        let mut entries = Vec::new();
        let last_data = self.files.iter().rposition(|f| f.length > 0);
        for (i, f) in self.files.iter().enumerate() {
            entries.push(PlanEntry {
                source: Some(i),
                length: f.length,
            });
            let tail = f.length % pl;
            if self.version == Version::Hybrid && tail != 0 && Some(i) != last_data {
                entries.push(PlanEntry {
                    source: None,
                    length: pl - tail,
                });
            }
        }
        let spans: Vec<(u64, bool)> = entries.iter().map(|e| (e.length, e.source.is_none())).collect();
        let geometry = Geometry::new(self.version, pl, &spans)?;
        Ok(Plan {
            builder: self,
            entries,
            geometry,
        })
    }
}

impl Plan {
    /// Where the pieces lie: hash each of `geometry().piece(i)`.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// The planned file list (pad files included), in piece-space order.
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }
    /// The builder's files, sorted as in the torrent.
    pub fn files(&self) -> &[BuildFile] {
        &self.builder.files
    }

    /// Encode the torrent from the hashes of every piece, in order.
    pub fn finish(&self, hashes: &[PieceHashes]) -> Result<Vec<u8>, BuildError> {
        let b = &self.builder;
        let g = &self.geometry;
        if hashes.len() != g.piece_count() as usize {
            return Err(BuildError::Hashes(format!(
                "{} given for {} pieces",
                hashes.len(),
                g.piece_count()
            )));
        }
        let v = b.version;
        let mut v1_pieces = Vec::new();
        if v.has_v1() {
            v1_pieces.reserve(hashes.len() * 20);
            for (i, h) in hashes.iter().enumerate() {
                let h =
                    h.v1.ok_or_else(|| BuildError::Hashes(format!("piece {i} has no SHA-1")))?;
                v1_pieces.extend_from_slice(&h);
            }
        }
        // Per source file: its pieces root and (when longer than a piece) its piece layer.
        let mut roots: Vec<Option<Hash256>> = vec![None; b.files.len()];
        let mut layers: Vec<(Hash256, Vec<u8>)> = Vec::new();
        if v.has_v2() {
            for (gi, e) in self.entries.iter().enumerate() {
                let Some(src) = e.source else { continue };
                let Some((first, count)) = g.file_pieces(gi) else {
                    continue;
                };
                if count == 0 {
                    continue;
                }
                let mut layer = Vec::with_capacity(count as usize);
                for p in first..first + count {
                    let h = hashes
                        .get(p as usize)
                        .and_then(|h| h.v2)
                        .ok_or_else(|| BuildError::Hashes(format!("piece {p} has no v2 hash")))?;
                    layer.push(h);
                }
                let root = if e.length <= g.piece_length() {
                    layer.first().copied().unwrap_or([0; 32])
                } else {
                    let root = root_from_piece_layer(&layer, g.piece_length());
                    layers.push((root, layer.concat()));
                    root
                };
                if let Some(slot) = roots.get_mut(src) {
                    *slot = Some(root);
                }
            }
        }

        let mut info = Encoder::new();
        info.dict(|d| {
            if v.has_v1() {
                if b.multi_file {
                    d.entry(b"files", |e| {
                        e.list(|l| {
                            for entry in &self.entries {
                                l.dict(|fd| match entry.source.and_then(|s| b.files.get(s)) {
                                    Some(f) => {
                                        if f.executable {
                                            fd.entry(b"attr", |e| e.bytes(b"x"));
                                        }
                                        fd.entry(b"length", |e| e.int(f.length as i64));
                                        fd.entry(b"path", |e| {
                                            e.list(|l| f.path.iter().for_each(|c| l.bytes(c.as_bytes())))
                                        });
                                    }
                                    None => {
                                        fd.entry(b"attr", |e| e.bytes(b"p"));
                                        fd.entry(b"length", |e| e.int(entry.length as i64));
                                        fd.entry(b"path", |e| {
                                            e.list(|l| {
                                                l.bytes(b".pad");
                                                l.bytes(entry.length.to_string().as_bytes());
                                            })
                                        });
                                    }
                                })
                            }
                        })
                    });
                } else if let Some(f) = b.files.first() {
                    if f.executable {
                        d.entry(b"attr", |e| e.bytes(b"x"));
                    }
                    d.entry(b"length", |e| e.int(f.length as i64));
                }
                d.entry(b"pieces", |e| e.bytes(&v1_pieces));
            }
            if v.has_v2() {
                d.entry(b"meta version", |e| e.int(2));
                d.entry(b"file tree", |e| {
                    encode_tree(e, &b.files, &roots, 0, 0, b.files.len())
                });
            }
            d.entry(b"name", |e| e.bytes(b.name.as_bytes()));
            d.entry(b"piece length", |e| e.int(g.piece_length() as i64));
            if b.private {
                d.entry(b"private", |e| e.int(1));
            }
            if let Some(s) = &b.source {
                d.entry(b"source", |e| e.bytes(s.as_bytes()));
            }
        });
        let info = info.finish();

        let mut out = Encoder::new();
        out.dict(|d| {
            let all: Vec<&String> = b.trackers.iter().flatten().collect();
            if let Some(first) = all.first() {
                d.entry(b"announce", |e| e.bytes(first.as_bytes()));
            }
            if all.len() > 1 {
                d.entry(b"announce-list", |e| {
                    e.list(|l| {
                        for tier in b.trackers.iter().filter(|t| !t.is_empty()) {
                            l.list(|t| tier.iter().for_each(|u| t.bytes(u.as_bytes())));
                        }
                    })
                });
            }
            if let Some(c) = &b.comment {
                d.entry(b"comment", |e| e.bytes(c.as_bytes()));
            }
            if let Some(c) = &b.created_by {
                d.entry(b"created by", |e| e.bytes(c.as_bytes()));
            }
            if let Some(t) = b.creation_date {
                d.entry(b"creation date", |e| e.int(t));
            }
            d.entry(b"info", |e| e.raw(&info));
            if !layers.is_empty() {
                d.entry(b"piece layers", |e| {
                    e.dict(|ld| {
                        for (root, layer) in &layers {
                            ld.entry(root, |e| e.bytes(layer));
                        }
                    })
                });
            }
            match b.web_seeds.as_slice() {
                [] => {}
                [one] => d.entry(b"url-list", |e| e.bytes(one.as_bytes())),
                many => d.entry(b"url-list", |e| {
                    e.list(|l| many.iter().for_each(|u| l.bytes(u.as_bytes())))
                }),
            }
        });
        Ok(out.finish())
    }
}

/// Encode files `lo..hi` (sorted, sharing their first `depth` components) as a file-tree dictionary.
fn encode_tree(
    e: &mut Encoder,
    files: &[BuildFile],
    roots: &[Option<Hash256>],
    depth: usize,
    lo: usize,
    hi: usize,
) {
    e.dict(|d| {
        let mut i = lo;
        while i < hi {
            let Some(key) = files.get(i).and_then(|f| f.path.get(depth)) else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < hi && files.get(j).and_then(|f| f.path.get(depth)) == Some(key) {
                j += 1;
            }
            let is_leaf = files.get(i).is_some_and(|f| f.path.len() == depth + 1);
            d.entry(key.as_bytes(), |e| {
                if is_leaf {
                    let f = files.get(i);
                    e.dict(|leaf| {
                        leaf.entry(b"", |e| {
                            e.dict(|fd| {
                                if f.is_some_and(|f| f.executable) {
                                    fd.entry(b"attr", |e| e.bytes(b"x"));
                                }
                                fd.entry(b"length", |e| e.int(f.map_or(0, |f| f.length) as i64));
                                if let Some(Some(root)) = roots.get(i) {
                                    fd.entry(b"pieces root", |e| e.bytes(root));
                                }
                            })
                        })
                    });
                } else {
                    encode_tree(e, files, roots, depth + 1, i, j);
                }
            });
            i = j;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::Torrent;

    #[test]
    fn auto_piece_length_is_sane() {
        assert_eq!(auto_piece_length(0), 16 * 1024);
        assert_eq!(auto_piece_length(100 << 20), 128 * 1024);
        assert_eq!(auto_piece_length(4 << 30), 4 << 20);
        assert_eq!(auto_piece_length(1 << 50), 16 << 20);
    }

    #[test]
    fn hybrid_plan_pads_all_but_the_last_file() {
        let f = |p: &str, n: u64| BuildFile {
            path: vec![p.into()],
            length: n,
            executable: false,
        };
        let b = TorrentBuilder::new(
            "d",
            vec![f("b", 10), f("a", 20_000), f("c", 0)],
            true,
            Version::Hybrid,
            16384,
        );
        let plan = b.plan().unwrap();
        let lens: Vec<(Option<usize>, u64)> = plan.entries().iter().map(|e| (e.source, e.length)).collect();
        // Sorted a, b, c; a padded; b is the last file with data, so not padded; c empty.
        assert_eq!(
            lens,
            vec![
                (Some(0), 20_000),
                (None, 32768 - 20_000),
                (Some(1), 10),
                (Some(2), 0)
            ]
        );
        let hashes = vec![
            PieceHashes {
                v1: Some([1; 20]),
                v2: Some([2; 32])
            };
            plan.geometry().piece_count() as usize
        ];
        let bytes = plan.finish(&hashes).unwrap();
        let t = Torrent::from_bytes(bytes).unwrap();
        assert_eq!(t.info.version, Version::Hybrid);
        let names: Vec<String> = t.info.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(names, ["a", ".pad/12768", "b", "c"]);
        assert!(t.info.files[1].attr.pad);
        assert_eq!(t.info.total_size(), 20_010);
        assert_eq!(t.piece_layers.len(), 1);
    }
}
