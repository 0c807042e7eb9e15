//! What the storage layer needs to know about a torrent: where its files lie in piece space, their paths
//! relative to the download folder, and the hash every piece must have.

use std::collections::BTreeMap;
use std::path::PathBuf;

use metainfo::merkle::Hash256;
use metainfo::{Geometry, Info, Torrent};

use crate::StorageError;

/// One file of a torrent, as storage sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutFile {
    /// Path components relative to the download folder (already sanitised by `metainfo`, and including the
    /// torrent's folder name for a multi-file torrent), as [`Info::disk_path`] gives them.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// A BEP 47 pad file: zeros that are never created, written or read from disk.
    pub pad: bool,
    /// A BEP 47 symbolic link entry: never materialised as a link (a link made from torrent data could
    /// later lead writes out of the download folder); an empty one is not created at all.
    pub symlink: bool,
}

impl LayoutFile {
    /// The path relative to the download folder.
    pub fn relative_path(&self) -> PathBuf {
        self.path.iter().collect()
    }

    /// True if the file is stored on disk (not a pad file, not an empty symlink entry).
    pub fn stored(&self) -> bool {
        !(self.pad || (self.symlink && self.length == 0))
    }
}

/// A torrent's storage layout and expected piece hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    geometry: Geometry,
    files: Vec<LayoutFile>,
    /// v1 SHA-1 per piece (empty when the torrent has no v1 hashes).
    v1: Vec<[u8; 20]>,
    /// v2 subtree root per piece (empty when the torrent has no v2 hashes; `None` for a piece with no file
    /// data, which only hostile hybrids produce, and which v1 still covers).
    v2: Vec<Option<Hash256>>,
}

impl Layout {
    /// The layout of a parsed torrent file (its info dictionary and BEP 52 piece layers).
    pub fn from_torrent(torrent: &Torrent) -> Result<Self, StorageError> {
        Self::new(&torrent.info, &torrent.piece_layers)
    }

    /// The layout of an info dictionary with the piece layers known so far (keyed by pieces root, as in
    /// [`Torrent::piece_layers`]). A v2-only torrent needs the layer of every file longer than one piece; a
    /// hybrid without some layer is verified by its SHA-1 hashes alone for those pieces.
    pub fn new(info: &Info, piece_layers: &BTreeMap<Hash256, Vec<Hash256>>) -> Result<Self, StorageError> {
        let geometry = info.geometry.clone();
        let files: Vec<LayoutFile> = (0..info.files.len())
            .filter_map(|i| {
                let f = info.files.get(i)?;
                let path = info.disk_path(i)?.into_iter().map(str::to_string).collect();
                Some(LayoutFile {
                    path,
                    length: f.length,
                    pad: f.attr.pad,
                    symlink: f.attr.symlink,
                })
            })
            .collect();
        let has_v1 = geometry.version().has_v1();
        let v1 = if has_v1 { info.pieces.clone() } else { Vec::new() };
        let mut v2 = Vec::new();
        if geometry.version().has_v2() {
            v2.reserve(geometry.piece_count() as usize);
            for p in 0..geometry.piece_count() {
                let spec = geometry.piece(p).ok_or(StorageError::OutOfRange {
                    piece: p,
                    offset: 0,
                    len: 0,
                })?;
                let Some(vp) = spec.v2 else {
                    v2.push(None);
                    continue;
                };
                let entry = info.files.get(vp.file);
                let path = || {
                    files
                        .get(vp.file)
                        .map(LayoutFile::relative_path)
                        .unwrap_or_default()
                };
                let root = entry.and_then(|f| f.pieces_root);
                let expected = match (entry, root) {
                    (Some(f), Some(root)) if f.length <= geometry.piece_length() => Some(root),
                    (Some(_), Some(root)) => piece_layers
                        .get(&root)
                        .and_then(|layer| layer.get(vp.index_in_file as usize))
                        .copied(),
                    _ => None,
                };
                if expected.is_none() && !has_v1 {
                    return Err(StorageError::MissingPieceLayer { path: path() });
                }
                v2.push(expected);
            }
        }
        Ok(Layout {
            geometry,
            files,
            v1,
            v2,
        })
    }

    /// Where files and pieces lie.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The files, in piece-space order (pad files included), indexed like the geometry's spans.
    pub fn files(&self) -> &[LayoutFile] {
        &self.files
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.geometry.piece_count()
    }

    /// Length of piece `piece` in bytes, or `None` past the end.
    pub fn piece_len(&self, piece: u32) -> Option<u64> {
        self.geometry.piece(piece).map(|s| s.len())
    }

    /// The expected SHA-1 of a piece (v1 and hybrid torrents).
    pub fn v1_hash(&self, piece: u32) -> Option<&[u8; 20]> {
        self.v1.get(piece as usize)
    }

    /// The expected merkle subtree root of a piece (v2 and hybrid torrents, when known).
    pub fn v2_hash(&self, piece: u32) -> Option<&Hash256> {
        self.v2.get(piece as usize).and_then(Option::as_ref)
    }

    /// True when the torrent has v1 hashes to check.
    pub(crate) fn checks_v1(&self) -> bool {
        !self.v1.is_empty()
    }
}
