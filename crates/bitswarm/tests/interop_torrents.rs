#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

//! Interop tests for `bitswarm create` and `bitswarm inspect` against real BitTorrent programs: mktorrent,
//! Transmission 3 (`transmission-create`, `transmission-show`) and libtorrent 2.0 (through
//! `tests/interop/lt_tool.py` under `/usr/bin/python3`).
//!
//! The tools are required: when one is missing the tests fail and say to run `bash scripts/install-deps.sh`.
//!
//! Facts these tests rely on (checked by hand on Debian 12):
//! - Transmission 3.00 cannot parse any v2 or hybrid torrent (its bencode parser rejects the empty dictionary
//!   key that every BEP 52 `file tree` leaf uses), so for hybrid torrents the test only demands parity with
//!   a hybrid torrent libtorrent made of the same payload: if Transmission accepts one it must accept the
//!   other with the right v1 hash.
//! - `transmission-create` leaves 0-byte files out of the torrent; libtorrent hybrid/v2 adds `.pad/N` files.

mod support;
use support::{lt_tool_path, on_path, pseudo_random, run_with_timeout, tool_works};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

const TRACKER: &str = "http://127.0.0.1:1/announce";
const PYTHON: &str = "/usr/bin/python3";
const TIMEOUT: Duration = Duration::from_secs(150);
/// The limit lt_tool's own check loop gets; below [`TIMEOUT`] so it reports instead of being killed.
const LT_CHECK_TIMEOUT_SECS: &str = "100";

// ---------------------------------------------------------------------------------------------------------
// Processes

/// Runs `cmd` and fails the test unless it exits 0.
fn run_ok(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = run_with_timeout(cmd, TIMEOUT);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_json(out: &Output, what: &str) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not one JSON value ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

// ---------------------------------------------------------------------------------------------------------
// Tools

fn bitswarm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bitswarm"))
}

fn lt_tool() -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(lt_tool_path());
    cmd
}

/// Fails (never skips) when a tool the interop tests need is missing.
fn require_tools() {
    let mut missing = Vec::new();
    for program in ["mktorrent", "transmission-create", "transmission-show"] {
        if !on_path(program) {
            missing.push(program.to_string());
        }
    }
    if !tool_works(PYTHON, &["-c", "import libtorrent"]) {
        missing.push(format!(
            "libtorrent Python bindings for {PYTHON} (python3-libtorrent)"
        ));
    }
    if !lt_tool_path().is_file() {
        missing.push(format!("{}", lt_tool_path().display()));
    }
    assert!(
        missing.is_empty(),
        "interop tools missing: {}. Run `bash scripts/install-deps.sh` (from the workspace root) first.",
        missing.join(", ")
    );
}

// ---------------------------------------------------------------------------------------------------------
// Payloads

fn write_file(path: &Path, len: usize, seed: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, pseudo_random(len, seed)).unwrap();
}

/// A payload on disk: `root` is what gets passed to the creators, `save_dir` its parent (the save path a
/// client needs to find the data).
struct Payload {
    label: &'static str,
    root: PathBuf,
    save_dir: PathBuf,
}

impl Payload {
    fn name(&self) -> String {
        self.root.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// (path relative to the torrent root, length) of every file, sorted; a single file is its own name.
    fn files(&self) -> Vec<(String, u64)> {
        if self.root.is_file() {
            return vec![(self.name(), fs::metadata(&self.root).unwrap().len())];
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }

    fn total_size(&self) -> u64 {
        self.files().iter().map(|(_, len)| len).sum()
    }

    /// The payload's largest file (the one to corrupt), relative to `root` (empty for a single file).
    fn largest_file(&self) -> PathBuf {
        if self.root.is_file() {
            return PathBuf::new();
        }
        let (path, _) = self.files().into_iter().max_by_key(|(_, len)| *len).unwrap();
        PathBuf::from(path)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap();
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((rel.join("/"), fs::metadata(&path).unwrap().len()));
        }
    }
}

/// (a) one file of an odd size.
fn single_file_payload(base: &Path) -> Payload {
    let save_dir = base.join("single");
    let root = save_dir.join("one.bin");
    write_file(&root, 1_234_567, 1);
    Payload {
        label: "single",
        root,
        save_dir,
    }
}

/// (b) a folder: nested directories, a 0-byte file, files smaller than a piece, one spanning many pieces, one
/// exactly four 16 KiB pieces long.
fn folder_payload(base: &Path) -> Payload {
    let save_dir = base.join("multi");
    let root = save_dir.join("payload");
    write_file(&root.join("a.txt"), 1000, 2);
    write_file(&root.join("empty"), 0, 3);
    write_file(&root.join("sub/c.bin"), 300_003, 4);
    write_file(&root.join("sub/deep/b.bin"), 70_001, 5);
    write_file(&root.join("sub/deep/deeper/d.dat"), 33_333, 6);
    write_file(&root.join("sub/exact.bin"), 65_536, 7);
    write_file(&root.join("z.bin"), 17, 8);
    Payload {
        label: "folder",
        root,
        save_dir,
    }
}

fn payloads(base: &Path) -> Vec<Payload> {
    vec![single_file_payload(base), folder_payload(base)]
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_file() {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, to).unwrap();
        return;
    }
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        copy_tree(&entry.path(), &to.join(entry.file_name()));
    }
}

/// A copy of `payload` under `base` with one byte in the middle of its largest file flipped.
fn corrupted_copy(payload: &Payload, base: &Path) -> Payload {
    let save_dir = base.join(format!("corrupt-{}", payload.label));
    let root = save_dir.join(payload.name());
    copy_tree(&payload.root, &root);
    let largest = payload.largest_file();
    let victim = if largest.as_os_str().is_empty() {
        root.clone()
    } else {
        root.join(largest)
    };
    let mut bytes = fs::read(&victim).unwrap();
    assert!(!bytes.is_empty());
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&victim, bytes).unwrap();
    Payload {
        label: payload.label,
        root,
        save_dir,
    }
}

// ---------------------------------------------------------------------------------------------------------
// What each tool says about a torrent

/// The facts about one torrent that every tool can be asked for.
#[derive(Debug)]
struct Facts {
    v1: Option<String>,
    v2: Option<String>,
    name: String,
    piece_length: u64,
    piece_count: u64,
    /// Non-pad files: (path inside the torrent, without the torrent name for multi-file torrents, length).
    files: Vec<(String, u64)>,
}

fn hex_field(v: &Value, key: &str) -> Option<String> {
    match &v[key] {
        Value::Null => None,
        Value::String(s) => Some(s.to_ascii_lowercase()),
        other => panic!("{key}: expected hex string or null, got {other} in {v}"),
    }
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}: expected an integer in {v}"))
}

fn str_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key}: expected a string in {v}"))
        .to_string()
}

/// Strips a leading `name/` so that "payload/sub/c.bin" (libtorrent style) and "sub/c.bin" compare equal.
fn normalise_path(path: &str, name: &str) -> String {
    let path = path.trim_start_matches('/');
    match path.strip_prefix(name).and_then(|rest| rest.strip_prefix('/')) {
        Some(rest) => rest.to_string(),
        None => path.to_string(),
    }
}

fn non_pad_files(v: &Value, name: &str) -> Vec<(String, u64)> {
    let files = v["files"]
        .as_array()
        .unwrap_or_else(|| panic!("files: expected an array in {v}"));
    let mut out: Vec<(String, u64)> = files
        .iter()
        .filter(|f| !f["pad"].as_bool().unwrap_or(false))
        .map(|f| {
            (
                normalise_path(&str_field(f, "path"), name),
                u64_field(f, "length"),
            )
        })
        .collect();
    out.sort();
    out
}

fn bitswarm_inspect(target: &str) -> Value {
    let out = run_ok(bitswarm().args(["inspect", target, "--json"]));
    stdout_json(&out, "bitswarm inspect --json")
}

fn bitswarm_facts(torrent: &Path) -> (Facts, Value) {
    let v = bitswarm_inspect(torrent.to_str().unwrap());
    assert_eq!(v["kind"], "torrent", "kind of {}: {v}", torrent.display());
    let name = str_field(&v, "name");
    let facts = Facts {
        v1: hex_field(&v, "info_hash_v1"),
        v2: hex_field(&v, "info_hash_v2"),
        piece_length: u64_field(&v, "piece_length"),
        piece_count: u64_field(&v, "piece_count"),
        files: non_pad_files(&v, &name),
        name,
    };
    let total: u64 = facts.files.iter().map(|(_, len)| len).sum();
    assert_eq!(
        u64_field(&v, "total_size"),
        total,
        "total_size is not the sum of non-pad files: {v}"
    );
    (facts, v)
}

fn lt_facts(torrent: &Path) -> Facts {
    let out = run_ok(lt_tool().arg("info").arg(torrent));
    let v = stdout_json(&out, "lt_tool.py info");
    let name = str_field(&v, "name");
    Facts {
        v1: hex_field(&v, "info_hash_v1"),
        v2: hex_field(&v, "info_hash_v2"),
        piece_length: u64_field(&v, "piece_length"),
        piece_count: u64_field(&v, "num_pieces"),
        files: non_pad_files(&v, &name),
        name,
    }
}

/// What `transmission-show` printed: Ok((v1 hash, piece count)) or Err(its output) when it could not parse.
fn transmission_show(torrent: &Path) -> Result<(String, u64), String> {
    let out = run_with_timeout(Command::new("transmission-show").arg(torrent), TIMEOUT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(key).map(|rest| rest.trim().to_string()))
    };
    match (out.status.success(), field("Hash:"), field("Piece Count:")) {
        (true, Some(hash), Some(count)) => Ok((hash.to_ascii_lowercase(), count.parse().unwrap())),
        _ => Err(text),
    }
}

struct Check {
    ok: bool,
    pieces_have: u64,
    num_pieces: u64,
    raw: Value,
}

fn lt_check(torrent: &Path, save_dir: &Path) -> Check {
    let out = run_with_timeout(
        lt_tool()
            .arg("check")
            .arg(torrent)
            .arg(save_dir)
            .args(["--timeout", LT_CHECK_TIMEOUT_SECS]),
        TIMEOUT,
    );
    let raw = stdout_json(&out, "lt_tool.py check");
    let ok = raw["ok"].as_bool().unwrap();
    assert_eq!(
        ok,
        out.status.success(),
        "lt_tool.py check: exit status {} disagrees with {raw}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        raw["error"].is_null(),
        "lt_tool.py check of {} reported an error: {raw}",
        torrent.display()
    );
    Check {
        ok,
        pieces_have: u64_field(&raw, "pieces_have"),
        num_pieces: u64_field(&raw, "num_pieces"),
        raw,
    }
}

fn expected_version(v1: bool, v2: bool) -> &'static str {
    match (v1, v2) {
        (true, false) => "v1",
        (false, true) => "v2",
        (true, true) => "hybrid",
        (false, false) => panic!("a torrent with neither hash"),
    }
}

fn flat_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(flat_strings).collect(),
        _ => Vec::new(),
    }
}

/// Everything bitswarm's view of `torrent` must agree on with libtorrent's (and Transmission's for v1).
fn assert_agree(torrent: &Path, what: &str) -> (Facts, Value) {
    let (ours, json) = bitswarm_facts(torrent);
    let lt = lt_facts(torrent);
    assert_eq!(ours.v1, lt.v1, "{what}: info_hash_v1 (bitswarm vs libtorrent)");
    assert_eq!(ours.v2, lt.v2, "{what}: info_hash_v2 (bitswarm vs libtorrent)");
    assert_eq!(ours.name, lt.name, "{what}: name");
    assert_eq!(ours.piece_length, lt.piece_length, "{what}: piece length");
    assert_eq!(ours.piece_count, lt.piece_count, "{what}: piece count");
    assert_eq!(
        ours.files, lt.files,
        "{what}: non-pad files (bitswarm vs libtorrent)"
    );
    assert_eq!(
        json["version"],
        expected_version(ours.v1.is_some(), ours.v2.is_some()),
        "{what}: version field: {json}"
    );
    if let Some(v2) = &ours.v2 {
        assert_eq!(v2.len(), 64, "{what}: info_hash_v2 is not 64 hex digits");
        assert_eq!(
            hex_field(&json, "info_hash_v2_truncated").as_deref(),
            Some(&v2[..40]),
            "{what}: truncated v2"
        );
    }
    assert!(
        flat_strings(&json["trackers"]).iter().any(|t| t == TRACKER),
        "{what}: tracker missing: {json}"
    );
    let magnet = str_field(&json, "magnet").to_ascii_lowercase();
    assert!(magnet.starts_with("magnet:?"), "{what}: magnet {magnet}");
    if let Some(v1) = &ours.v1 {
        assert!(
            magnet.contains(&format!("xt=urn:btih:{v1}")),
            "{what}: magnet lacks btih: {magnet}"
        );
    }
    if let Some(v2) = &ours.v2 {
        assert!(
            magnet.contains(&format!("xt=urn:btmh:1220{v2}")),
            "{what}: magnet lacks btmh: {magnet}"
        );
    }
    // The magnet link inspects back to the same hashes.
    let m = bitswarm_inspect(&str_field(&json, "magnet"));
    assert_eq!(m["kind"], "magnet", "{what}: inspect of its magnet: {m}");
    assert_eq!(
        hex_field(&m, "info_hash_v1"),
        ours.v1,
        "{what}: magnet v1 hash: {m}"
    );
    assert_eq!(
        hex_field(&m, "info_hash_v2"),
        ours.v2,
        "{what}: magnet v2 hash: {m}"
    );
    if ours.v2.is_none() {
        let (hash, count) = transmission_show(torrent)
            .unwrap_or_else(|out| panic!("{what}: transmission-show rejected a v1 torrent:\n{out}"));
        assert_eq!(
            Some(hash),
            ours.v1,
            "{what}: info_hash_v1 (bitswarm vs transmission-show)"
        );
        assert_eq!(
            count, ours.piece_count,
            "{what}: piece count (bitswarm vs transmission-show)"
        );
    }
    (ours, json)
}

// ---------------------------------------------------------------------------------------------------------
// Creators

fn mktorrent(payload: &Payload, out: &Path) {
    run_ok(
        Command::new("mktorrent")
            .args(["-l", "15", "-a", TRACKER, "-o"])
            .arg(out)
            .arg(&payload.root),
    );
}

fn transmission_create(payload: &Payload, out: &Path) {
    run_ok(
        Command::new("transmission-create")
            .arg("-o")
            .arg(out)
            .args(["-t", TRACKER])
            .arg(&payload.root),
    );
}

fn lt_create(payload: &Payload, version: &str, out: &Path) {
    run_ok(
        lt_tool()
            .args([
                "create",
                "--version",
                version,
                "--piece-length",
                "16384",
                "--tracker",
                TRACKER,
            ])
            .arg(&payload.root)
            .arg(out),
    );
}

fn bitswarm_create(payload: &Payload, out: &Path, extra: &[&str]) {
    let out_arg = out.to_str().unwrap();
    run_ok(
        bitswarm()
            .arg("create")
            .arg(&payload.root)
            .args(["-o", out_arg])
            .args(extra),
    );
    assert!(
        out.is_file(),
        "bitswarm create {extra:?} exited 0 but wrote no {}",
        out.display()
    );
}

// ---------------------------------------------------------------------------------------------------------
// Tests

/// Torrents made by mktorrent, transmission-create and libtorrent: `bitswarm inspect` reports what
/// libtorrent and transmission-show report.
#[test]
fn inspect_agrees_on_torrents_made_by_other_tools() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("torrents");
    fs::create_dir_all(&out_dir).unwrap();
    for payload in payloads(dir.path()) {
        let label = payload.label;
        let on_disk = payload.files();

        let t = out_dir.join(format!("{label}.mktorrent.torrent"));
        mktorrent(&payload, &t);
        let (facts, _) = assert_agree(&t, &format!("mktorrent, {label}"));
        assert_eq!(facts.files, on_disk, "mktorrent, {label}: files vs payload");
        assert_eq!(facts.piece_length, 1 << 15);

        let t = out_dir.join(format!("{label}.transmission.torrent"));
        transmission_create(&payload, &t);
        let (facts, _) = assert_agree(&t, &format!("transmission-create, {label}"));
        // transmission-create leaves 0-byte files out.
        let non_empty: Vec<_> = on_disk.iter().filter(|(_, len)| *len > 0).cloned().collect();
        assert_eq!(
            facts.files, non_empty,
            "transmission-create, {label}: files vs payload"
        );

        for version in ["v1", "hybrid", "v2"] {
            let t = out_dir.join(format!("{label}.lt-{version}.torrent"));
            lt_create(&payload, version, &t);
            let what = format!("libtorrent {version}, {label}");
            let (facts, json) = assert_agree(&t, &what);
            assert_eq!(json["version"], version, "{what}");
            assert_eq!(facts.files, on_disk, "{what}: files vs payload");
            assert_eq!(facts.piece_length, 16384, "{what}");
            if version == "hybrid" {
                // Transmission 3 cannot parse BEP 52 torrents; newer versions must show the v1 hash.
                if let Ok((hash, _)) = transmission_show(&t) {
                    assert_eq!(Some(hash), facts.v1, "{what}: transmission-show v1 hash");
                }
            }
        }
    }
}

/// Torrents made by `bitswarm create` (v1, v2, hybrid; automatic and 16 KiB pieces): libtorrent and
/// Transmission read the same hashes, libtorrent verifies the payload against them, and rejects a copy with
/// one byte changed.
#[test]
fn torrents_made_by_bitswarm_are_accepted_and_verified() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("torrents");
    fs::create_dir_all(&out_dir).unwrap();
    let corrupt_base = dir.path().join("corrupt");
    for payload in payloads(dir.path()) {
        let label = payload.label;
        let on_disk = payload.files();
        let corrupt = corrupted_copy(&payload, &corrupt_base);

        // How Transmission treats a libtorrent hybrid torrent of this payload: bitswarm's must fare the same.
        let lt_hybrid = out_dir.join(format!("{label}.lt-hybrid.torrent"));
        lt_create(&payload, "hybrid", &lt_hybrid);
        let transmission_reads_hybrid = transmission_show(&lt_hybrid).is_ok();

        for version in ["v1", "v2", "hybrid"] {
            for piece_length in ["auto", "16K"] {
                let what = format!("bitswarm create --{version} --piece-length {piece_length}, {label}");
                let t = out_dir.join(format!("{label}.bitswarm-{version}-{piece_length}.torrent"));
                let flag = format!("--{version}");
                bitswarm_create(
                    &payload,
                    &t,
                    &[
                        &flag,
                        "--piece-length",
                        piece_length,
                        "--tracker",
                        TRACKER,
                        "--no-date",
                    ],
                );
                let (facts, json) = assert_agree(&t, &what);
                assert_eq!(json["version"], version, "{what}: {json}");
                assert_eq!(
                    facts.files, on_disk,
                    "{what}: files vs payload (0-byte files included)"
                );
                assert_eq!(u64_field(&json, "total_size"), payload.total_size(), "{what}");
                assert!(
                    json["creation_date"].is_null(),
                    "{what}: --no-date yet creation_date: {json}"
                );
                assert_eq!(json["private"], false, "{what}");
                if piece_length == "16K" {
                    assert_eq!(facts.piece_length, 16384, "{what}");
                }
                assert!(
                    facts.piece_length >= 16384 && facts.piece_length.is_power_of_two(),
                    "{what}: piece length {}",
                    facts.piece_length
                );

                if version == "hybrid" {
                    match transmission_show(&t) {
                        Ok((hash, count)) => {
                            assert_eq!(Some(hash), facts.v1, "{what}: transmission-show v1 hash");
                            assert_eq!(count, facts.piece_count, "{what}: transmission-show piece count");
                        }
                        Err(out) => assert!(
                            !transmission_reads_hybrid,
                            "{what}: transmission-show reads libtorrent's hybrid torrent but not ours:\n{out}"
                        ),
                    }
                }

                let good = lt_check(&t, &payload.save_dir);
                assert!(
                    good.ok,
                    "{what}: libtorrent did not verify the payload: {}",
                    good.raw
                );
                assert_eq!(good.num_pieces, facts.piece_count, "{what}: piece count (check)");

                let bad = lt_check(&t, &corrupt.save_dir);
                assert!(
                    !bad.ok,
                    "{what}: libtorrent accepted a corrupted payload: {}",
                    bad.raw
                );
                assert_eq!(
                    bad.pieces_have + 1,
                    bad.num_pieces,
                    "{what}: one flipped byte must fail exactly one piece: {}",
                    bad.raw
                );
            }
        }
    }
}

/// `--private`, `--comment`, `--web-seed` and several `--tracker`s reach the torrent, and the other
/// tools read the same (private) info-hash.
#[test]
fn create_options_reach_the_torrent() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let payload = single_file_payload(dir.path());
    let second_tracker = "http://127.0.0.2:1/announce";
    let web_seed = "http://127.0.0.1:1/webseed/";
    let comment = "interop comment";
    for version in ["v1", "hybrid"] {
        let what = format!("bitswarm create --{version} with options");
        let t = dir.path().join(format!("options-{version}.torrent"));
        let flag = format!("--{version}");
        let args = [
            flag.as_str(),
            "--private",
            "--comment",
            comment,
            "--web-seed",
            web_seed,
            "--tracker",
            TRACKER,
            "--tracker",
            second_tracker,
            "--no-date",
        ];
        bitswarm_create(&payload, &t, &args);
        let (facts, json) = assert_agree(&t, &what);
        assert_eq!(json["private"], true, "{what}: {json}");
        assert_eq!(json["comment"], comment, "{what}: {json}");
        assert_eq!(
            flat_strings(&json["web_seeds"]),
            vec![web_seed.to_string()],
            "{what}: {json}"
        );
        assert_eq!(
            flat_strings(&json["trackers"]),
            vec![TRACKER.to_string(), second_tracker.to_string()],
            "{what}: trackers in order: {json}"
        );
        let check = lt_check(&t, &payload.save_dir);
        assert!(
            check.ok,
            "{what}: libtorrent did not verify the payload: {}",
            check.raw
        );

        // The same torrent without --private has a different info-hash.
        let public = dir.path().join(format!("public-{version}.torrent"));
        bitswarm_create(
            &payload,
            &public,
            &[flag.as_str(), "--tracker", TRACKER, "--no-date"],
        );
        let (public_facts, _) = bitswarm_facts(&public);
        assert_ne!(
            public_facts.v1, facts.v1,
            "{what}: --private did not change the info-hash"
        );
    }
    let t = dir.path().join("options-v1.torrent");
    let shown = run_ok(Command::new("transmission-show").arg(&t));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("Private torrent"),
        "transmission-show does not see the private flag:\n{text}"
    );
    assert!(
        text.contains(comment),
        "transmission-show does not see the comment:\n{text}"
    );
}

/// `--no-date` makes creation reproducible: same bytes on every run, whatever the thread count.
#[test]
fn no_date_output_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    for payload in payloads(dir.path()) {
        for version in ["--v1", "--v2", "--hybrid"] {
            let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
            for (run, threads) in [(0, None), (1, None), (2, Some("1")), (3, Some("2"))] {
                let t = dir
                    .path()
                    .join(format!("{}-{version}-{run}.torrent", payload.label));
                let mut args = vec![
                    version,
                    "--piece-length",
                    "16K",
                    "--tracker",
                    TRACKER,
                    "--no-date",
                ];
                if let Some(n) = threads {
                    args.extend(["--threads", n]);
                }
                bitswarm_create(&payload, &t, &args);
                outputs.push((format!("run {run}: {args:?}"), fs::read(&t).unwrap()));
            }
            let mut iter = outputs.iter();
            let (first_args, first) = iter.next().unwrap();
            for (args, bytes) in iter {
                assert!(
                    bytes == first,
                    "{}: bitswarm create {args} and {first_args} wrote different bytes",
                    payload.label
                );
            }
        }
    }
}

/// An invalid torrent file: non-zero exit, one line on stderr, nothing on stdout.
#[test]
fn inspect_rejects_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let payload = single_file_payload(dir.path());
    let good = dir.path().join("good.torrent");
    bitswarm_create(&payload, &good, &["--v1", "--no-date"]);
    let bytes = fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not bencode\n".to_vec()),
        ("empty", Vec::new()),
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("no info", b"d8:announce3:urle".to_vec()),
    ];
    for (label, content) in cases {
        let path = dir.path().join(format!("{}.torrent", label.replace(' ', "-")));
        fs::write(&path, content).unwrap();
        let out = run_with_timeout(bitswarm().arg("inspect").arg(&path).arg("--json"), TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{label}: inspect accepted an invalid file");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{label}: want one line on stderr, got:\n{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{label}: stdout not empty: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let missing = dir.path().join("does-not-exist.torrent");
    let out = run_with_timeout(bitswarm().arg("inspect").arg(&missing).arg("--json"), TIMEOUT);
    assert!(!out.status.success(), "inspect of a missing file exited 0");
}
