//! Parsing torrent files and info dictionaries (BEP 3, 12, 19, 27, 47, 52), with consistency checks.

use std::collections::BTreeMap;

use bencode::{Dict, Value};

use crate::error::MetainfoError;
use crate::geometry::{Geometry, GeometryError, Version, MAX_TOTAL};
use crate::hash::{InfoHashV1, InfoHashV2, InfoHashes};
use crate::merkle::{root_from_piece_layer, Hash256};
use crate::path::{check_unique, sanitize_component, sanitize_path};

type Result<T> = std::result::Result<T, MetainfoError>;

/// BEP 47 file attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileAttr {
    /// `p`: a pad file (zeros, not stored).
    pub pad: bool,
    /// `x`: executable.
    pub executable: bool,
    /// `h`: hidden.
    pub hidden: bool,
    /// `l`: a symbolic link.
    pub symlink: bool,
}

impl FileAttr {
    fn parse(s: &[u8]) -> Self {
        FileAttr {
            pad: s.contains(&b'p'),
            executable: s.contains(&b'x'),
            hidden: s.contains(&b'h'),
            symlink: s.contains(&b'l'),
        }
    }
    /// The attribute string, as BEP 47 writes it (empty when none is set).
    pub fn to_attr_string(self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.executable, 'x'),
            (self.hidden, 'h'),
            (self.symlink, 'l'),
            (self.pad, 'p'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitised path components within the torrent (for a single-file torrent: just its name).
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// BEP 47 attributes.
    pub attr: FileAttr,
    /// BEP 52 merkle root of the file (v2 and hybrid; absent for empty files).
    pub pieces_root: Option<Hash256>,
    /// BEP 47 symlink target, sanitised, relative to the torrent root.
    pub symlink_target: Option<Vec<String>>,
}

/// The parsed `info` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Sanitised name: the file name of a single-file torrent, the folder name of a multi-file one.
    pub name: String,
    /// Piece length in bytes.
    pub piece_length: u64,
    /// v1, v2 or hybrid.
    pub version: Version,
    /// BEP 27 private flag.
    pub private: bool,
    /// The `source` field private trackers use to make info-hashes unique, if any.
    pub source: Option<String>,
    /// True when files live under a folder named [`Info::name`].
    pub multi_file: bool,
    /// The files, in piece-space order (v1 order, pad files included, for v1 and hybrid).
    pub files: Vec<FileEntry>,
    /// v1 SHA-1 piece hashes (empty for v2-only torrents).
    pub pieces: Vec<[u8; 20]>,
    /// Where files and pieces lie.
    pub geometry: Geometry,
}

/// A parsed torrent file: the bytes as received plus what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torrent {
    bytes: Vec<u8>,
    info_span: (usize, usize),
    /// The info-hashes, computed over the raw `info` bytes as received.
    pub info_hashes: InfoHashes,
    /// The info dictionary.
    pub info: Info,
    /// Tracker URLs by tier (BEP 12); `announce` alone becomes a single tier.
    pub trackers: Vec<Vec<String>>,
    /// BEP 19 web seeds (`url-list`).
    pub web_seeds: Vec<String>,
    /// Free-text comment.
    pub comment: Option<String>,
    /// The program that made the torrent.
    pub created_by: Option<String>,
    /// Creation time, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// BEP 52 piece layers, verified against each file's pieces root, keyed by that root.
    pub piece_layers: BTreeMap<Hash256, Vec<Hash256>>,
    /// Problems in optional fields outside `info` that were skipped rather than refused.
    pub warnings: Vec<String>,
}

fn wrong(field: &str, v: &Value<'_>, expected: &'static str) -> MetainfoError {
    MetainfoError::WrongType {
        field: field.to_string(),
        offset: v.offset(),
        expected,
        found: v.type_name(),
    }
}

fn req<'d, 'a>(d: &'d Dict<'a>, key: &str, field: &str) -> Result<&'d Value<'a>> {
    d.get(key.as_bytes()).ok_or_else(|| MetainfoError::Missing {
        field: field.to_string(),
    })
}

fn as_dict<'d, 'a>(v: &'d Value<'a>, field: &str) -> Result<&'d Dict<'a>> {
    v.as_dict().ok_or_else(|| wrong(field, v, "a dictionary"))
}

fn as_bytes<'a>(v: &Value<'a>, field: &str) -> Result<&'a [u8]> {
    v.as_bytes().ok_or_else(|| wrong(field, v, "a string"))
}

fn as_int(v: &Value<'_>, field: &str) -> Result<i64> {
    v.as_int().ok_or_else(|| wrong(field, v, "an integer"))
}

fn as_len(v: &Value<'_>, field: &str) -> Result<u64> {
    let i = as_int(v, field)?;
    u64::try_from(i).map_err(|_| MetainfoError::invalid(field, v.offset(), format!("{i} is negative")))
}

fn as_list<'d, 'a>(v: &'d Value<'a>, field: &str) -> Result<&'d [Value<'a>]> {
    v.as_list().ok_or_else(|| wrong(field, v, "a list"))
}

/// Prefer `key.utf-8` (set by some creators for non-UTF-8 names) over `key`, when it has the type `usable`
/// accepts (a string for `name`, a list for `path`).
fn utf8_variant<'d, 'a>(
    d: &'d Dict<'a>,
    key: &str,
    usable: impl Fn(&Value<'a>) -> bool,
) -> Option<(&'d Value<'a>, String)> {
    let alt = format!("{key}.utf-8");
    d.get(alt.as_bytes())
        .filter(|v| usable(v))
        .map(|v| (v, alt))
        .or_else(|| d.get(key.as_bytes()).map(|v| (v, key.to_string())))
}

fn path_components<'a>(v: &Value<'a>, field: &str) -> Result<Vec<&'a [u8]>> {
    as_list(v, field)?
        .iter()
        .enumerate()
        .map(|(i, c)| as_bytes(c, &format!("{field}[{i}]")))
        .collect()
}

fn sanitize(field: &str, raw: &[&[u8]]) -> Result<Vec<String>> {
    sanitize_path(raw.iter().copied()).map_err(|reason| MetainfoError::UnsafePath {
        field: field.to_string(),
        shown: raw
            .iter()
            .map(|c| String::from_utf8_lossy(c))
            .collect::<Vec<_>>()
            .join("/"),
        reason,
    })
}

impl Info {
    /// Parse raw `info` bytes (as from a torrent file or from peers via BEP 9), computing the info-hashes
    /// over exactly these bytes.
    pub fn parse(raw: &[u8]) -> Result<(Info, InfoHashes)> {
        let v = bencode::decode(raw)?;
        Self::from_value(&v)
    }

    /// Parse a decoded `info` value (offsets in errors are those of the enclosing document).
    fn from_value(v: &Value<'_>) -> Result<(Info, InfoHashes)> {
        let d = as_dict(v, "info")?;
        let (name_v, name_field) =
            utf8_variant(d, "name", |v| v.as_bytes().is_some()).ok_or_else(|| MetainfoError::Missing {
                field: "info.name".into(),
            })?;
        let name_field = format!("info.{name_field}");
        let name_raw = as_bytes(name_v, &name_field)?;
        let name = sanitize_component(name_raw).map_err(|reason| MetainfoError::UnsafePath {
            field: name_field.clone(),
            shown: String::from_utf8_lossy(name_raw).into_owned(),
            reason,
        })?;

        let pl_v = req(d, "piece length", "info.piece length")?;
        let piece_length = as_len(pl_v, "info.piece length")?;

        let private = match d.get(b"private") {
            None => false,
            Some(p) => as_int(p, "info.private")? == 1,
        };
        let source = d
            .get(b"source")
            .and_then(|s| s.as_bytes())
            .map(|s| String::from_utf8_lossy(s).into_owned());

        let has_v1 = d.get(b"pieces").is_some();
        let tree = d.get(b"file tree");
        let meta_version = match d.get(b"meta version") {
            None => None,
            Some(m) => Some(as_int(m, "info.meta version")?),
        };
        let has_v2 = match (meta_version, tree) {
            (Some(2), Some(_)) => true,
            (Some(2), None) => {
                return Err(MetainfoError::Missing {
                    field: "info.file tree".into(),
                })
            }
            (Some(other), _) => {
                return Err(MetainfoError::invalid(
                    "info.meta version",
                    d.get(b"meta version").map_or(0, |m| m.offset()),
                    format!("version {other} is not supported (only 2)"),
                ))
            }
            (None, Some(t)) => {
                return Err(MetainfoError::invalid(
                    "info.file tree",
                    t.offset(),
                    "present without `meta version` 2",
                ))
            }
            (None, None) => false,
        };
        let version = match (has_v1, has_v2) {
            (true, true) => Version::Hybrid,
            (true, false) => Version::V1,
            (false, true) => Version::V2,
            (false, false) => {
                return Err(MetainfoError::Missing {
                    field: "info.pieces".into(),
                })
            }
        };

        let v2_files = match tree {
            Some(t) if has_v2 => Some(parse_file_tree(t)?),
            _ => None,
        };
        let (mut files, multi_file) = if has_v1 {
            parse_v1_files(d, &name)?
        } else {
            let files = v2_files.clone().unwrap_or_default();
            // A single file at the top of the tree is a single-file torrent.
            let single = files.len() == 1 && files.first().is_some_and(|f| f.path.len() == 1);
            (files, !single)
        };

        // Pad files may share a path (`.pad/N`): they are never stored.
        let real: Vec<&FileEntry> = files.iter().filter(|f| !f.attr.pad).collect();
        check_unique(real.iter().map(|f| f.path.as_slice())).map_err(|(i, reason)| {
            MetainfoError::UnsafePath {
                field: "info.files".to_string(),
                shown: real.get(i).map(|f| f.path.join("/")).unwrap_or_default(),
                reason,
            }
        })?;

        let spans: Vec<(u64, bool)> = files.iter().map(|f| (f.length, f.attr.pad)).collect();
        let geometry = Geometry::new(version, piece_length, &spans).map_err(|e| match e {
            GeometryError::PieceLength(_) => {
                MetainfoError::invalid("info.piece length", pl_v.offset(), e.to_string())
            }
            GeometryError::TooLarge(_) => too_large(d, &spans, piece_length),
        })?;
        if geometry.data_size() == 0 {
            return Err(MetainfoError::invalid(
                "info",
                v.offset(),
                "the torrent holds no data (total length 0)",
            ));
        }

        if version == Version::Hybrid {
            let v2 = v2_files.unwrap_or_default();
            merge_hybrid(&mut files, &v2, &geometry, &V1Offsets::of(d))?;
        }

        let pieces = if has_v1 {
            let pv = req(d, "pieces", "info.pieces")?;
            let raw = as_bytes(pv, "info.pieces")?;
            if raw.len() % 20 != 0 {
                return Err(MetainfoError::invalid(
                    "info.pieces",
                    pv.offset(),
                    format!("length {} is not a multiple of 20", raw.len()),
                ));
            }
            let expected = u64::from(geometry.piece_count());
            if raw.len() as u64 / 20 != expected {
                return Err(MetainfoError::invalid(
                    "info.pieces",
                    pv.offset(),
                    format!(
                        "has {} hashes but {} bytes in pieces of {} need {}",
                        raw.len() / 20,
                        geometry.end(),
                        piece_length,
                        expected
                    ),
                ));
            }
            raw.chunks_exact(20)
                .map(|c| <[u8; 20]>::try_from(c).unwrap_or([0; 20]))
                .collect()
        } else {
            Vec::new()
        };

        let raw = v.raw();
        let hashes = InfoHashes {
            v1: has_v1.then(|| InfoHashV1::of_info(raw)),
            v2: has_v2.then(|| InfoHashV2::of_info(raw)),
        };
        Ok((
            Info {
                name,
                piece_length,
                version,
                private,
                source,
                multi_file,
                files,
                pieces,
                geometry,
            },
            hashes,
        ))
    }

    /// The path of file `i` relative to the download folder (under [`Info::name`] for multi-file torrents).
    pub fn disk_path(&self, i: usize) -> Option<Vec<&str>> {
        let f = self.files.get(i)?;
        let mut p = Vec::with_capacity(f.path.len() + 1);
        if self.multi_file {
            p.push(self.name.as_str());
        }
        p.extend(f.path.iter().map(String::as_str));
        Some(p)
    }

    /// Total bytes of file data (pad files excluded).
    pub fn total_size(&self) -> u64 {
        self.geometry.data_size()
    }
}

/// Where the files are too large for a torrent: the field that holds their lengths, and what is wrong.
fn too_large(d: &Dict<'_>, spans: &[(u64, bool)], piece_length: u64) -> MetainfoError {
    let (field, at) = ["files", "length", "file tree"]
        .iter()
        .find_map(|k| d.get(k.as_bytes()).map(|v| (format!("info.{k}"), v.offset())))
        .unwrap_or_else(|| ("info".to_string(), 0));
    let total: u128 = spans.iter().map(|&(len, _)| u128::from(len)).sum();
    let reason = if total > u128::from(MAX_TOTAL) {
        format!("the files add up to {total} bytes, more than the limit of {MAX_TOTAL}")
    } else {
        format!(
            "{total} bytes in pieces of {piece_length} need more than {} pieces",
            u32::MAX
        )
    };
    MetainfoError::invalid(field, at, reason)
}

/// Byte offsets of the v1 file entries (the `files` list or the single `length`), for messages.
struct V1Offsets {
    list: usize,
    entries: Vec<usize>,
}

impl V1Offsets {
    fn of(d: &Dict<'_>) -> Self {
        match (d.get(b"files"), d.get(b"length")) {
            (Some(f), _) => V1Offsets {
                list: f.offset(),
                entries: f
                    .as_list()
                    .unwrap_or_default()
                    .iter()
                    .map(Value::offset)
                    .collect(),
            },
            (None, Some(l)) => V1Offsets {
                list: l.offset(),
                entries: vec![l.offset()],
            },
            (None, None) => V1Offsets {
                list: 0,
                entries: Vec::new(),
            },
        }
    }
    fn entry(&self, i: usize) -> usize {
        self.entries.get(i).copied().unwrap_or(self.list)
    }
}

/// A v1 file entry with only `length`, `path` and maybe `attr` (no symlink, no `path.utf-8`), all valid.
fn plain_v1_file(f: &Value<'_>) -> Option<FileEntry> {
    let fd = f.as_dict()?;
    if fd.get(b"path.utf-8").is_some() {
        return None;
    }
    let length = u64::try_from(fd.get(b"length")?.as_int()?).ok()?;
    let attr = match fd.get(b"attr") {
        Some(a) => FileAttr::parse(a.as_bytes()?),
        None => FileAttr::default(),
    };
    if attr.symlink {
        return None;
    }
    let comps = fd.get(b"path")?.as_list()?;
    let mut raw = Vec::with_capacity(comps.len());
    for c in comps {
        raw.push(c.as_bytes()?);
    }
    let path = sanitize_path(raw.iter().copied()).ok()?;
    Some(FileEntry {
        path,
        length,
        attr,
        pieces_root: None,
        symlink_target: None,
    })
}

fn parse_v1_files(d: &Dict<'_>, name: &str) -> Result<(Vec<FileEntry>, bool)> {
    match (d.get(b"files"), d.get(b"length")) {
        (Some(_), Some(l)) => Err(MetainfoError::invalid(
            "info.length",
            l.offset(),
            "both `length` and `files` are present",
        )),
        (None, None) => Err(MetainfoError::Missing {
            field: "info.length or info.files".into(),
        }),
        (None, Some(l)) => {
            let length = as_len(l, "info.length")?;
            let attr = d
                .get(b"attr")
                .and_then(|a| a.as_bytes())
                .map(FileAttr::parse)
                .unwrap_or_default();
            Ok((
                vec![FileEntry {
                    path: vec![name.to_string()],
                    length,
                    attr,
                    pieces_root: None,
                    symlink_target: None,
                }],
                false,
            ))
        }
        (Some(fv), None) => {
            let list = as_list(fv, "info.files")?;
            if list.is_empty() {
                return Err(MetainfoError::invalid(
                    "info.files",
                    fv.offset(),
                    "the list is empty",
                ));
            }
            let mut files = Vec::with_capacity(list.len());
            for (i, f) in list.iter().enumerate() {
                // The common case without building field names; anything unusual takes the slow path,
                // which names the field in its error.
                if let Some(entry) = plain_v1_file(f) {
                    files.push(entry);
                    continue;
                }
                let field = format!("info.files[{i}]");
                let fd = as_dict(f, &field)?;
                let length = as_len(
                    req(fd, "length", &format!("{field}.length"))?,
                    &format!("{field}.length"),
                )?;
                let (pv, pkey) = utf8_variant(fd, "path", |v| v.as_list().is_some()).ok_or_else(|| {
                    MetainfoError::Missing {
                        field: format!("{field}.path"),
                    }
                })?;
                let pfield = format!("{field}.{pkey}");
                let raw = path_components(pv, &pfield)?;
                let path = sanitize(&pfield, &raw)?;
                let attr = fd
                    .get(b"attr")
                    .and_then(|a| a.as_bytes())
                    .map(FileAttr::parse)
                    .unwrap_or_default();
                let symlink_target = match fd.get(b"symlink path") {
                    Some(s) if attr.symlink => {
                        let sf = format!("{field}.symlink path");
                        Some(sanitize(&sf, &path_components(s, &sf)?)?)
                    }
                    _ => None,
                };
                files.push(FileEntry {
                    path,
                    length,
                    attr,
                    pieces_root: None,
                    symlink_target,
                });
            }
            Ok((files, true))
        }
    }
}

/// A raw name for a message: lossy UTF-8 with control characters escaped (so a key cannot break the line
/// or send terminal escapes).
fn escape_controls(raw: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(raw).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Walk a BEP 52 `file tree`: `{dir: {file: {"": {length, pieces root}}}}`, in key order.
fn parse_file_tree(tree: &Value<'_>) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut prefix: Vec<&[u8]> = Vec::new();
    walk_tree(tree, &mut prefix, &mut out)?;
    if out.is_empty() {
        return Err(MetainfoError::invalid(
            "info.file tree",
            tree.offset(),
            "holds no files",
        ));
    }
    Ok(out)
}

fn walk_tree<'a>(node: &Value<'a>, prefix: &mut Vec<&'a [u8]>, out: &mut Vec<FileEntry>) -> Result<()> {
    let field = || {
        let shown: Vec<String> = prefix.iter().map(|c| escape_controls(c)).collect();
        format!("info.file tree/{}", shown.join("/"))
    };
    let d = as_dict(node, &field())?;
    if let Some(leaf) = d.get(b"") {
        if d.len() != 1 {
            return Err(MetainfoError::invalid(
                field(),
                node.offset(),
                "a file entry has sibling keys",
            ));
        }
        let f = field();
        let ld = as_dict(leaf, &f)?;
        let length = as_len(req(ld, "length", &format!("{f}.length"))?, &format!("{f}.length"))?;
        let pieces_root = match ld.get(b"pieces root") {
            Some(r) => {
                let b = as_bytes(r, &format!("{f}.pieces root"))?;
                let h: Hash256 = b.try_into().map_err(|_| {
                    MetainfoError::invalid(
                        format!("{f}.pieces root"),
                        r.offset(),
                        format!("is {} bytes, not 32", b.len()),
                    )
                })?;
                Some(h)
            }
            None if length > 0 => {
                return Err(MetainfoError::Missing {
                    field: format!("{f}.pieces root"),
                })
            }
            None => None,
        };
        let attr = ld
            .get(b"attr")
            .and_then(|a| a.as_bytes())
            .map(FileAttr::parse)
            .unwrap_or_default();
        let path = sanitize(&f, prefix)?;
        out.push(FileEntry {
            path,
            length,
            attr,
            pieces_root,
            symlink_target: None,
        });
        return Ok(());
    }
    if d.is_empty() {
        return Err(MetainfoError::invalid(
            field(),
            node.offset(),
            "an empty directory",
        ));
    }
    for (k, child) in d.iter() {
        prefix.push(k);
        walk_tree(child, prefix, out)?;
        prefix.pop();
    }
    Ok(())
}

/// Check that the v1 file list (with pad files) describes the same files as the v2 tree, and copy each
/// file's pieces root onto the v1 entries.
fn merge_hybrid(
    v1: &mut [FileEntry],
    v2: &[FileEntry],
    geometry: &Geometry,
    offsets: &V1Offsets,
) -> Result<()> {
    let real: Vec<usize> = v1
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.attr.pad)
        .map(|(i, _)| i)
        .collect();
    if real.len() != v2.len() {
        return Err(MetainfoError::invalid(
            "info.files",
            offsets.list,
            format!(
                "hybrid torrent lists {} v1 files but {} v2 files",
                real.len(),
                v2.len()
            ),
        ));
    }
    for (&i, f2) in real.iter().zip(v2) {
        let f1 = v1
            .get_mut(i)
            .ok_or_else(|| MetainfoError::invalid("info.files", offsets.list, "index"))?;
        if f1.path != f2.path || f1.length != f2.length {
            return Err(MetainfoError::invalid(
                format!("info.files[{i}]"),
                offsets.entry(i),
                format!(
                    "hybrid mismatch: v1 has {} ({} bytes), v2 has {} ({} bytes)",
                    f1.path.join("/"),
                    f1.length,
                    f2.path.join("/"),
                    f2.length
                ),
            ));
        }
        let span = geometry.spans().get(i).copied();
        if let Some(s) = span {
            if s.length > 0 && s.offset % geometry.piece_length() != 0 {
                return Err(MetainfoError::invalid(
                    format!("info.files[{i}]"),
                    offsets.entry(i),
                    "hybrid file does not start on a piece boundary (missing pad file)",
                ));
            }
        }
        f1.pieces_root = f2.pieces_root;
    }
    Ok(())
}

impl Torrent {
    /// Parse a torrent file. The bytes are kept, so the `info` span is hashed exactly as received.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Torrent> {
        Self::parse_document(bytes, true)
    }

    /// A torrent made of an info dictionary fetched from peers (BEP 9), with the trackers and web seeds
    /// of its magnet link: `d8:announce..13:announce-list..4:info<raw_info>8:url-list..e`, each tracker in
    /// a tier of its own, in the magnet's order. The raw bytes go in unchanged, so the info-hash is the
    /// hash of exactly what was fetched.
    ///
    /// BEP 52 piece layers live outside the info dictionary, so a fetched hybrid torrent has none: its
    /// pieces are checked with their SHA-1 hashes alone. A v2-only torrent with a file longer than one
    /// piece cannot be checked without them (they come from peers with BEP 52 hash requests, which this
    /// crate does not make) and is refused.
    pub fn from_info(raw_info: &[u8], trackers: &[String], web_seeds: &[String]) -> Result<Torrent> {
        let mut e = bencode::Encoder::new();
        e.dict(|d| {
            if let Some(first) = trackers.first() {
                d.entry(b"announce", |e| e.bytes(first.as_bytes()));
                d.entry(b"announce-list", |e| {
                    e.list(|e| {
                        for t in trackers {
                            e.list(|e| e.bytes(t.as_bytes()));
                        }
                    })
                });
            }
            d.entry(b"info", |e| e.raw(raw_info));
            if !web_seeds.is_empty() {
                d.entry(b"url-list", |e| {
                    e.list(|e| web_seeds.iter().for_each(|w| e.bytes(w.as_bytes())))
                });
            }
        });
        Self::parse_document(e.finish(), false)
    }

    fn parse_document(bytes: Vec<u8>, layers_required: bool) -> Result<Torrent> {
        let (info, info_hashes, info_span, outer) = {
            let root = bencode::decode(&bytes)?;
            let d = as_dict(&root, "torrent")?;
            let iv = req(d, "info", "info")?;
            let (info, hashes) = Info::from_value(iv)?;
            let span = (iv.offset(), iv.offset() + iv.raw().len());
            let mut warnings = Vec::new();
            let trackers = parse_trackers(d, &mut warnings);
            let web_seeds = parse_web_seeds(d, &mut warnings);
            let text = |k: &str, warnings: &mut Vec<String>| -> Option<String> {
                let (v, key) = utf8_variant(d, k, |v| v.as_bytes().is_some())?;
                match v.as_bytes() {
                    Some(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    None => {
                        warnings.push(format!("`{key}` is {}, not a string: ignored", v.type_name()));
                        None
                    }
                }
            };
            let comment = text("comment", &mut warnings);
            let created_by = text("created by", &mut warnings);
            let creation_date = match d.get(b"creation date") {
                None => None,
                Some(v) => match v.as_int() {
                    Some(i) => Some(i),
                    None => {
                        warnings.push(format!(
                            "`creation date` is {}, not an integer: ignored",
                            v.type_name()
                        ));
                        None
                    }
                },
            };
            let piece_layers = if info.version.has_v2() && (layers_required || info.version == Version::V2) {
                parse_piece_layers(d, &info).map_err(|e| match e {
                    MetainfoError::Missing { .. } if !layers_required => MetainfoError::invalid(
                        "piece layers",
                        0,
                        "a v2-only torrent fetched from peers needs its piece layers (BEP 52 hash \
                         requests), which are not fetched yet; use the .torrent file",
                    ),
                    e => e,
                })?
            } else {
                BTreeMap::new()
            };
            (
                info,
                hashes,
                span,
                (
                    trackers,
                    web_seeds,
                    comment,
                    created_by,
                    creation_date,
                    piece_layers,
                    warnings,
                ),
            )
        };
        let (trackers, web_seeds, comment, created_by, creation_date, piece_layers, warnings) = outer;
        Ok(Torrent {
            bytes,
            info_span,
            info_hashes,
            info,
            trackers,
            web_seeds,
            comment,
            created_by,
            creation_date,
            piece_layers,
            warnings,
        })
    }

    /// The whole file as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The raw `info` dictionary, exactly as received (what the info-hashes are computed over).
    pub fn raw_info(&self) -> &[u8] {
        self.bytes
            .get(self.info_span.0..self.info_span.1)
            .unwrap_or_default()
    }
}

fn parse_trackers(d: &Dict<'_>, warnings: &mut Vec<String>) -> Vec<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut tiers = Vec::new();
    if let Some(al) = d.get(b"announce-list") {
        match al.as_list() {
            None => warnings.push(format!(
                "`announce-list` is {}, not a list: ignored",
                al.type_name()
            )),
            Some(list) => {
                for (t, tier) in list.iter().enumerate() {
                    let Some(urls) = tier.as_list() else {
                        warnings.push(format!("`announce-list[{t}]` is not a list: ignored"));
                        continue;
                    };
                    let mut out = Vec::new();
                    for (u, url) in urls.iter().enumerate() {
                        match url.as_str() {
                            Some(s) if !s.trim().is_empty() => {
                                if seen.insert(s.trim().to_string()) {
                                    out.push(s.trim().to_string());
                                }
                            }
                            _ => warnings.push(format!("`announce-list[{t}][{u}]` is not a URL: ignored")),
                        }
                    }
                    if !out.is_empty() {
                        tiers.push(out);
                    }
                }
            }
        }
    }
    // BEP 12: "If the client is compatible with the multitracker specification, and if the announce-list key
    // is present, the client will ignore the announce key".
    if tiers.is_empty() {
        if let Some(a) = d.get(b"announce") {
            match a.as_str() {
                Some(s) if !s.trim().is_empty() => tiers.push(vec![s.trim().to_string()]),
                Some(_) => {}
                None => warnings.push("`announce` is not a UTF-8 string: ignored".into()),
            }
        }
    }
    tiers
}

fn parse_web_seeds(d: &Dict<'_>, warnings: &mut Vec<String>) -> Vec<String> {
    let Some(v) = d.get(b"url-list") else {
        return Vec::new();
    };
    if let Some(s) = v.as_str() {
        return if s.is_empty() {
            Vec::new()
        } else {
            vec![s.to_string()]
        };
    }
    match v.as_list() {
        Some(l) => l
            .iter()
            .filter_map(|u| {
                let s = u.as_str().filter(|s| !s.is_empty());
                if s.is_none() {
                    warnings.push("an entry of `url-list` is not a URL: ignored".into());
                }
                s.map(str::to_string)
            })
            .collect(),
        None => {
            warnings.push(format!("`url-list` is {}: ignored", v.type_name()));
            Vec::new()
        }
    }
}

fn parse_piece_layers(d: &Dict<'_>, info: &Info) -> Result<BTreeMap<Hash256, Vec<Hash256>>> {
    let mut out = BTreeMap::new();
    let needs: Vec<&FileEntry> = info
        .files
        .iter()
        .filter(|f| !f.attr.pad && f.length > info.piece_length)
        .collect();
    if needs.is_empty() {
        return Ok(out);
    }
    let lv = req(d, "piece layers", "piece layers")?;
    let layers = as_dict(lv, "piece layers")?;
    for f in needs {
        let Some(root) = f.pieces_root else { continue };
        let shown = f.path.join("/");
        let field = format!("piece layers[{shown}]");
        let v = layers
            .get(&root)
            .ok_or_else(|| MetainfoError::Missing { field: field.clone() })?;
        let raw = as_bytes(v, &field)?;
        let count = f.length.div_ceil(info.piece_length);
        if raw.len() as u64 != count * 32 {
            return Err(MetainfoError::invalid(
                field,
                v.offset(),
                format!("is {} bytes, but {} pieces need {}", raw.len(), count, count * 32),
            ));
        }
        let layer: Vec<Hash256> = raw
            .chunks_exact(32)
            .map(|c| <Hash256>::try_from(c).unwrap_or([0; 32]))
            .collect();
        if root_from_piece_layer(&layer, info.piece_length) != root {
            return Err(MetainfoError::invalid(
                field,
                v.offset(),
                "does not hash to the file's pieces root",
            ));
        }
        out.insert(root, layer);
    }
    Ok(out)
}
