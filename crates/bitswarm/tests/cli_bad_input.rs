#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! `bitswarm inspect` on every file of the metainfo hostile corpus (`crates/metainfo/tests/hostile/`) and
//! every bad magnet link in its `magnets.txt`: exit code 1, nothing on stdout, and on stderr exactly one line
//! that starts with `error:` and says what is wrong and where. Never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../metainfo/tests/hostile")
}

fn bitswarm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bitswarm"));
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

/// Checks one failed run; returns the problems found.
fn check(what: &str, out: &Output, want: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(1) {
        problems.push(format!("{what}: exit status {:?}, not 1", out.status.code()));
    }
    if stdout.contains("panicked") || stderr.contains("panicked") {
        problems.push(format!("{what}: panicked: {stderr}"));
    }
    if !stdout.is_empty() {
        problems.push(format!("{what}: printed on stdout: {stdout:?}"));
    }
    let lines: Vec<&str> = stderr.lines().collect();
    if lines.len() != 1 || !stderr.ends_with('\n') {
        problems.push(format!("{what}: stderr is not exactly one line: {stderr:?}"));
    }
    let line = lines.first().copied().unwrap_or_default();
    if !line.starts_with("error: ") {
        problems.push(format!("{what}: stderr does not start with `error: `: {line:?}"));
    }
    for w in want {
        if !line.contains(w) {
            problems.push(format!("{what}: {line:?} lacks {w:?}"));
        }
    }
    if line.chars().any(|c| c.is_control()) {
        problems.push(format!("{what}: control characters in {line:?}"));
    }
    problems
}

#[test]
fn inspect_refuses_every_hostile_torrent() {
    let text = std::fs::read_to_string(hostile_dir().join("cases.json")).unwrap();
    let Value::Object(cases) = serde_json::from_str(&text).unwrap() else {
        panic!("cases.json is not an object")
    };
    assert!(cases.len() >= 100);
    let mut problems = Vec::new();
    for (name, case) in &cases {
        let path = hostile_dir().join(name);
        let want = [case["error"].as_str().unwrap(), case["where"].as_str().unwrap()];
        for json in [false, true] {
            let mut cmd = bitswarm();
            cmd.arg("inspect").arg(&path);
            if json {
                cmd.arg("--json");
            }
            let out = cmd.output().unwrap();
            let what = format!("{name}{}", if json { " --json" } else { "" });
            problems.extend(check(&what, &out, &want));
            // The message names the file it is about.
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !stderr.contains(name.as_str()) {
                problems.push(format!("{what}: the message does not name the file: {stderr:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The same bytes through standard input (`inspect -`) give the same one-line error.
#[test]
fn inspect_refuses_hostile_torrents_on_stdin() {
    for name in [
        "path-dotdot.torrent",
        "deep-lists.torrent",
        "truncated-in-info.torrent",
        "v2-piece-layer-wrong-hashes.torrent",
        "hybrid-no-pad.torrent",
    ] {
        let bytes = std::fs::read(hostile_dir().join(name)).unwrap();
        let mut child = bitswarm()
            .args(["inspect", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        let problems = check(&format!("{name} on stdin"), &out, &["error: -: "]);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn inspect_refuses_every_hostile_magnet() {
    let text = std::fs::read_to_string(hostile_dir().join("magnets.txt")).unwrap();
    let mut problems = Vec::new();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (link, want) = line.split_once('\t').unwrap();
        let out = bitswarm().arg("inspect").arg(link).output().unwrap();
        let shown: String = link.chars().take(80).collect();
        problems.extend(check(&shown, &out, &[want, "magnet: "]));
        n += 1;
    }
    assert!(n >= 30);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
