//! Helpers shared by the interop tests: running real programs with a deadline, finding tools, payloads.
//!
//! Submodules:
//! - [`proc`]: [`proc::Proc`], a background process with its stdout lines on a channel, stderr in a file,
//!   killed with its process group when dropped.
//! - [`netns`]: [`netns::Net`] (loopback or a network namespace, for building commands) and
//!   [`netns::Netns`] (an `ip netns` of the test's own, with addresses on its `lo`, deleted when dropped).
//! - [`http`]: one HTTP request (GET or POST) to a server on loopback or inside a namespace.
//! - [`tracker`]: `bitswarm tracker` as a background process, with its `/stats` and `/scrape` decoded.
//! - [`payload`]: multi-file payloads, `bitswarm create`, byte-for-byte tree comparison.
//! - [`clients`]: real BitTorrent clients (libtorrent, aria2, Transmission, qBittorrent) started as seeders
//!   or leechers; see its module documentation for the API.
//! - [`dht`]: `bitswarm dht` nodes with their `/stats`, libtorrent's DHT with no torrent, aria2's saved
//!   routing table.
//! - [`bitswarm`]: bitswarm's own peer client (`bitswarm seed`, `bitswarm get --json`) as a background
//!   process, its JSON status lines decoded; a tracker on a given address.
//! - [`webdriver`]: headless Chromium through chromedriver (a small blocking WebDriver client), with
//!   colour-scheme emulation and whole-page screenshots, for the directory's browser tests.
#![allow(dead_code)]

pub mod bitswarm;
pub mod clients;
pub mod dht;
pub mod http;
pub mod netns;
pub mod payload;
pub mod proc;
pub mod tracker;
pub mod webdriver;

use std::fs;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Debian's interpreter: the libtorrent bindings import only under it.
pub const PYTHON: &str = "/usr/bin/python3";
/// One-shot commands (create, transmission-remote, an HTTP request in a namespace).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion with stdin closed, killing it if it outlives `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {timeout:?}; killed it");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

pub fn lt_tool_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/lt_tool.py")
}

pub fn http_get_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/http_get.py")
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

pub fn tool_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deterministic pseudo-random bytes (splitmix64), so every run hashes the same content.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs `cmd` (with [`COMMAND_TIMEOUT`]) and fails the test unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = run_with_timeout(cmd, COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Fails (never skips) when a program is missing; also checks `setpriv`, the libtorrent bindings and the
/// Python helpers every interop test uses.
pub fn require_tools(programs: &[&str]) {
    let mut missing: Vec<String> = programs
        .iter()
        .filter(|p| !on_path(p))
        .map(|p| (*p).to_string())
        .collect();
    if !on_path("setpriv") {
        missing.push("setpriv (util-linux)".into());
    }
    if !tool_works(PYTHON, &["-c", "import libtorrent"]) {
        missing.push(format!(
            "libtorrent Python bindings for {PYTHON} (python3-libtorrent)"
        ));
    }
    for helper in [lt_tool_path(), http_get_path()] {
        if !helper.is_file() {
            missing.push(helper.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "interop tools missing: {}. Run `bash scripts/install-deps.sh` (from the workspace root) first.",
        missing.join(", ")
    );
}

/// The effective user id of this process, from `/proc/self/status`.
pub fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
}

/// Fails (never skips) unless this process can make network namespaces; `why` says what needs them.
pub fn require_root(why: &str) {
    let euid = euid();
    assert!(
        euid == Some(0),
        "{why} needs root (effective uid {euid:?}): Transmission never dials 127.0.0.0/8, so the test gives \
         each peer its own address in a private network namespace (`ip netns add`), which only root can \
         make. Run the tests as root (CI does)."
    );
}

/// A TCP port nobody listens on right now (on 127.0.0.1).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port nobody uses right now (on 127.0.0.1).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The last `lines` lines of a text file ("" when it cannot be read).
pub fn file_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn log_tail(path: &Path) -> String {
    file_tail(path, 30)
}

pub fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

pub fn hex_decode(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "odd hex {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
