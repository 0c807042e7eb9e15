//! Payloads for transfer tests: a multi-file tree with nested folders and a 0-byte file, torrents made with
//! `bitswarm create`, and byte-for-byte comparison of what a client wrote against the original.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{pseudo_random, run_ok};

/// The files of [`make_tree`]: path inside the tree and length. Odd lengths, so that files and pieces
/// straddle each other and the last piece is short; one 0-byte file; folders two deep.
pub const TREE_FILES: &[(&str, usize)] = &[
    ("a.bin", 1_048_576 + 4_321),
    ("nested/b.txt", 70_001),
    ("nested/deeper/c.bin", 2_097_152 + 17),
    ("nested/deeper/empty.dat", 0),
    ("nested/deeper/tiny", 1),
    ("z.bin", 333_333),
];

/// Makes `parent/name/` holding [`TREE_FILES`] of deterministic content (differing with `seed`); returns
/// the tree's root (`parent/name`). A client's save folder for it is `parent`.
pub fn make_tree(parent: &Path, name: &str, seed: u64) -> PathBuf {
    let root = parent.join(name);
    for (i, (path, len)) in TREE_FILES.iter().enumerate() {
        let file = root.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, pseudo_random(*len, seed.wrapping_add(i as u64))).unwrap();
    }
    root
}

/// `bitswarm create PATH -o OUT --tracker URL... --no-date`; returns (torrent path, v1 info-hash in hex).
pub fn create_torrent(path: &Path, trackers: &[&str], out: &Path) -> (PathBuf, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitswarm"));
    cmd.arg("create").arg(path).arg("-o").arg(out);
    for tracker in trackers {
        cmd.args(["--tracker", tracker]);
    }
    let o = run_ok(cmd.args(["--no-date", "--json"]));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hash = v["info_hash_v1"]
        .as_str()
        .unwrap_or_else(|| panic!("bitswarm create --json: no info_hash_v1 in {v}"))
        .to_ascii_lowercase();
    (out.to_path_buf(), hash)
}

/// What `bitswarm inspect --json` says of a torrent file.
pub fn inspect(torrent: &Path) -> Value {
    let o = run_ok(
        Command::new(env!("CARGO_BIN_EXE_bitswarm"))
            .arg("inspect")
            .arg(torrent)
            .arg("--json"),
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("bitswarm inspect --json {}: {e}", torrent.display()))
}

/// Every regular file under `root`, by path relative to it ('/'-separated), with its length.
pub fn list_files(root: &Path) -> BTreeMap<String, u64> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, u64>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                walk(&entry.path(), &rel, out);
            } else {
                out.insert(rel, meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.is_file() {
        let len = fs::metadata(root).map(|m| m.len()).unwrap_or(0);
        out.insert(String::new(), len);
    } else {
        walk(root, "", &mut out);
    }
    out
}

/// Compares a downloaded tree (or single file) `got` with the original `want`, byte for byte: every file
/// of `want` must be in `got` with the same bytes, and `got` must hold nothing else. With
/// `allow_missing_empty`, a 0-byte file of `want` may be absent from `got` (Transmission 3 never creates
/// them).
pub fn compare_trees(want: &Path, got: &Path, allow_missing_empty: bool) -> Result<(), String> {
    let want_files = list_files(want);
    let got_files = list_files(got);
    if want_files.is_empty() {
        return Err(format!("{}: no files to compare with", want.display()));
    }
    let join = |root: &Path, rel: &str| {
        if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        }
    };
    let mut problems = Vec::new();
    for (rel, len) in &want_files {
        let Some(got_len) = got_files.get(rel) else {
            if !(allow_missing_empty && *len == 0) {
                problems.push(format!("{rel}: missing ({len} bytes expected)"));
            }
            continue;
        };
        let a = fs::read(join(want, rel)).map_err(|e| format!("{}/{rel}: {e}", want.display()))?;
        let b = fs::read(join(got, rel)).map_err(|e| format!("{}/{rel}: {e}", got.display()))?;
        if a != b {
            let first = a.iter().zip(&b).position(|(x, y)| x != y);
            problems.push(format!(
                "{rel}: {got_len} bytes against {len} expected, first difference at {first:?}"
            ));
        }
    }
    for rel in got_files.keys() {
        if !want_files.contains_key(rel) {
            problems.push(format!("{rel}: not in the original"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} differs from {}:\n  {}",
            got.display(),
            want.display(),
            problems.join("\n  ")
        ))
    }
}

/// [`compare_trees`], failing the test with `what` on a difference.
pub fn assert_same_tree(want: &Path, got: &Path, allow_missing_empty: bool, what: &str) {
    if let Err(e) = compare_trees(want, got, allow_missing_empty) {
        panic!("{what}: {e}");
    }
}
