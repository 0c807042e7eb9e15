#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

//! Interop tests for `bitswarm tracker` with real BitTorrent clients: two clients find each other through
//! the tracker alone (no DHT node, local discovery or PEX) and complete a transfer, over HTTP and over UDP.
//!
//! - libtorrent 2.0 (`tests/interop/lt_tool.py seed` under `/usr/bin/python3`) seeds to aria2 1.36 on
//!   127.0.0.1.
//! - libtorrent seeds to Transmission 3.00 (`transmission-daemon`, driven by `transmission-remote`) inside a
//!   private network namespace made for the test, because Transmission never dials 127.0.0.0/8: the seeder
//!   has 10.99.0.11 and Transmission 10.99.0.12 on the namespace's `lo`, the tracker 127.0.0.1 there. This
//!   needs root (CI runs as root); without it the tests fail and say so.
//!
//! Each test checks the downloaded file byte for byte, and checks what the tracker saw through its
//! `/stats/<info-hash>` JSON (with the admin token, which reveals peer addresses) and `/scrape`: both peers,
//! from the right addresses, with the right clients, the leecher first incomplete and then complete, and
//! the completed download counted.
//!
//! The tools are required: when one is missing the tests fail and say to run `bash scripts/install-deps.sh`.
//! Every process is started with a parent-death signal (`setpriv --pdeathsig KILL`) and killed by its PID
//! when the test ends; every wait is bounded.
//!
//! Facts these tests rely on (checked by hand on Debian 12):
//! - aria2 sends the `completed` event only when it goes on seeding after the download: with
//!   `--seed-time=0` it announces `stopped` with `left=0` straight away, which (as BEP 3 says) is not a
//!   completed download. So aria2 seeds for a few seconds here (`--seed-time=0.1`, minutes).
//! - aria2 speaks UDP tracker only through its DHT socket: with `--enable-dht=false` a `udp://` announce
//!   fails with "udp is not supported yet". So the UDP test turns aria2's DHT on with no entry point (an empty
//!   routing table: it sends no DHT message at all).
//! - A 4 MiB transfer on loopback takes well under a second; aria2's `--max-download-limit` stretches it so
//!   that the tracker's view of aria2 as a leecher can be seen by polling.
//! - Transmission unchokes on its 10-second cycle: 10-17 s pass before its first byte.

mod support;
use support::{lt_tool_path, on_path, pseudo_random, run_with_timeout, tool_works};

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";
/// Unlocks peer addresses in `/stats/<info-hash>`.
const ADMIN_TOKEN: &str = "interop-tracker-admin";
/// One-shot commands (create, transmission-remote, an HTTP request in a namespace).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A background process coming up: the tracker listening, libtorrent's hash check and first announce,
/// Transmission's RPC.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// aria2's whole run (download at about 2 MiB/s, then six seconds of seeding).
const ARIA2_TIMEOUT: Duration = Duration::from_secs(120);
/// Transmission's download, from adding the torrent to the tracker counting it complete.
const TRANSMISSION_TIMEOUT: Duration = Duration::from_secs(120);
/// A safety net for helpers that outlive a killed test run: the seeder exits by itself after this long.
const SEEDER_SELF_TIMEOUT_SECS: &str = "600";
const POLL: Duration = Duration::from_millis(100);

/// A few MiB and an odd size, so the last piece is short.
const PAYLOAD_LEN: usize = 4 * 1024 * 1024 + 12_345;
const PAYLOAD_NAME: &str = "payload.bin";

/// The addresses inside the Transmission tests' network namespace.
const NS_SEEDER_IP: &str = "10.99.0.11";
const NS_LEECHER_IP: &str = "10.99.0.12";
/// Fixed ports are safe inside a namespace made for one test.
const NS_TRANSMISSION_PEER_PORT: u16 = 51413;
const NS_TRANSMISSION_RPC_PORT: u16 = 9091;

// ---------------------------------------------------------------------------------------------------------
// Tools

fn http_get_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/http_get.py")
}

/// Fails (never skips) when a tool is missing.
fn require_tools(programs: &[&str]) {
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

/// Fails (never skips) unless this process can make network namespaces.
fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    assert!(
        euid == "0",
        "the Transmission interop tests need root (effective uid {euid}): Transmission never dials \
         127.0.0.0/8, so the test gives each peer its own address in a private network namespace \
         (`ip netns add`), which only root can make. Run the tests as root (CI does)."
    );
}

// ---------------------------------------------------------------------------------------------------------
// Processes

/// Runs `cmd` and fails the test unless it exits 0.
fn run_ok(cmd: &mut Command) -> Output {
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

/// Where a test's processes run: this machine's loopback, or a network namespace of ours.
#[derive(Clone, Debug)]
enum Net {
    Loopback,
    Netns(String),
}

impl Net {
    /// `program args` in this network. With `background`, the process also gets SIGKILL when the thread
    /// that started it ends (so nothing outlives a test even if its guard never runs).
    fn command(&self, background: bool, program: &str) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if background {
            argv.extend(["setpriv", "--pdeathsig", "KILL", "--"].map(OsString::from));
        }
        if let Net::Netns(name) = self {
            argv.extend(["ip", "netns", "exec", name].map(OsString::from));
        }
        argv.push(program.into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// A background process, killed (by PID) when dropped. Its stdout lines arrive through a channel; its
/// stderr goes to a file, shown when something fails.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr_path: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, logs: &Path) -> Proc {
        let stderr_path = logs.join(format!("{name}.stderr"));
        let desc = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({desc}): {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr_path,
        }
    }

    fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// What went wrong, for a failure message: the lines read so far and the end of stderr.
    fn report(&mut self) -> String {
        self.drain();
        format!(
            "{} stdout:\n{}\n{} stderr (end):\n{}",
            self.name,
            self.seen.join("\n"),
            self.name,
            self.stderr_tail()
        )
    }

    /// Moves every stdout line read so far into `seen`.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Waits until a stdout line satisfies `pick`; returns what `pick` made of it.
    fn wait_line<T>(&mut self, what: &str, timeout: Duration, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        if let Some(found) = self.seen.iter().find_map(|l| pick(l)) {
            return found;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = pick(&line);
                    self.seen.push(line);
                    if let Some(found) = found {
                        return found;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let report = self.report();
                    panic!("{}: no {what} within {timeout:?}\n{report}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Its stdout closed: it has ended, or is about to.
                    thread::sleep(Duration::from_millis(200));
                    let status = self.child.try_wait().ok().flatten();
                    let report = self.report();
                    panic!(
                        "{} closed its stdout (exit status {status:?}) before {what}\n{report}",
                        self.name
                    )
                }
            }
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace with `lo` up and the two peer addresses on it; deleted when dropped. Declare it
/// before the processes that run inside it, so that they are killed first.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Netns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "bsw-it-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = run_with_timeout(Command::new("ip").args(["netns", "add", &name]), COMMAND_TIMEOUT);
        assert!(
            out.status.success(),
            "cannot make a network namespace (`ip netns add {name}`: {}): the Transmission interop tests \
             need network namespaces (root, iproute2, a kernel with CONFIG_NET_NS)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let ns = Netns { name };
        let net = ns.net();
        run_ok(net.command(false, "ip").args(["link", "set", "lo", "up"]));
        for ip in [NS_SEEDER_IP, NS_LEECHER_IP] {
            run_ok(
                net.command(false, "ip")
                    .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"]),
            );
        }
        ns
    }

    fn net(&self) -> Net {
        Net::Netns(self.name.clone())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: cannot run `ip netns del {}`: {e}", self.name),
        }
    }
}

/// A TCP port nobody listens on right now (on 127.0.0.1).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port nobody uses right now (on 127.0.0.1).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------------------
// HTTP

/// One GET to a server on 127.0.0.1, by hand (no HTTP client among the dependencies): (status, body).
fn http_get_direct(url: &str, bearer: Option<&str>) -> Result<(u16, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {url}"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = host.parse().map_err(|e| format!("{url}: {e}"))?;
    let io = |e: std::io::Error| format!("GET {url}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "GET {url}: no end of headers in {:?}",
                String::from_utf8_lossy(&response)
            )
        })?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {url}: bad status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(&body).ok_or_else(|| format!("GET {url}: bad chunked body"))?
    } else {
        body
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// One GET in `net`: directly on loopback, through `http_get.py` inside a namespace.
fn http_get(net: &Net, url: &str, bearer: Option<&str>) -> Result<(u16, Vec<u8>), String> {
    match net {
        Net::Loopback => http_get_direct(url, bearer),
        Net::Netns(_) => {
            let mut cmd = net.command(false, PYTHON);
            cmd.arg(http_get_path()).arg(url).args(["--timeout", "10"]);
            if let Some(token) = bearer {
                cmd.args(["--bearer", token]);
            }
            let out = run_with_timeout(&mut cmd, COMMAND_TIMEOUT);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            match out.status.code() {
                Some(0) => Ok((200, out.stdout)),
                Some(1) => {
                    let status = stderr
                        .rsplit("status ")
                        .next()
                        .and_then(|s| s.trim().parse().ok())
                        .ok_or_else(|| format!("http_get.py {url}: {stderr}"))?;
                    Ok((status, out.stdout))
                }
                _ => Err(format!("http_get.py {url} ({}): {stderr}", out.status)),
            }
        }
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn hex_decode(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "odd hex {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// The tracker

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Udp,
}

struct Tracker {
    proc: Proc,
    net: Net,
    http_announce: String,
    udp_announce: String,
    /// `http://127.0.0.1:PORT`
    base: String,
}

/// What `/stats/<info-hash>` said at one moment.
#[derive(Debug, Clone)]
struct Snapshot {
    at: Duration,
    seeders: u64,
    leechers: u64,
    completed: u64,
    peers: Vec<PeerView>,
}

#[derive(Debug, Clone)]
struct PeerView {
    client: String,
    completion: f64,
    is_seed: bool,
    addr: String,
}

impl Snapshot {
    fn from_json(at: Duration, v: &Value) -> Snapshot {
        let count = |key: &str| {
            v[key]
                .as_u64()
                .unwrap_or_else(|| panic!("/stats: {key} is not a count in {v}"))
        };
        let peers = v["peers"]
            .as_array()
            .unwrap_or_else(|| panic!("/stats: no peers array in {v}"))
            .iter()
            .map(|p| PeerView {
                client: p["client"].as_str().unwrap_or_default().to_string(),
                completion: p["completion"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("/stats: completion is not a number in {p}")),
                is_seed: p["is_seed"]
                    .as_bool()
                    .unwrap_or_else(|| panic!("/stats: is_seed is not a bool in {p}")),
                addr: p["addr"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        Snapshot {
            at,
            seeders: count("seeders"),
            leechers: count("leechers"),
            completed: count("completed"),
            peers,
        }
    }

    fn peer(&self, client_prefix: &str) -> Option<&PeerView> {
        self.peers.iter().find(|p| p.client.starts_with(client_prefix))
    }
}

/// Scrape counts for one torrent.
#[derive(Debug, PartialEq, Eq)]
struct Scrape {
    complete: i64,
    downloaded: i64,
    incomplete: i64,
}

impl Tracker {
    /// Starts `bitswarm tracker` on 127.0.0.1 (of `net`), HTTP and UDP on ports the system picks, and waits
    /// until it prints both announce URLs.
    fn start(net: &Net, dir: &Path) -> Tracker {
        let mut cmd = net.command(true, env!("CARGO_BIN_EXE_bitswarm"));
        cmd.args(["tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
            .current_dir(dir)
            .env("BITSWARM_TRACKER__ADMIN__TOKEN", ADMIN_TOKEN)
            .env_remove("RUST_LOG");
        let mut proc = Proc::spawn("bitswarm tracker", cmd, dir);
        let url = |scheme: &'static str| {
            move |line: &str| {
                line.strip_prefix("tracker: ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .filter(|url| url.starts_with(scheme))
                    .map(str::to_string)
            }
        };
        let http_announce = proc.wait_line("HTTP announce URL", STARTUP_TIMEOUT, url("http://"));
        let udp_announce = proc.wait_line("UDP announce URL", STARTUP_TIMEOUT, url("udp://"));
        let base = http_announce
            .strip_suffix("/announce")
            .unwrap_or_else(|| panic!("unexpected HTTP announce URL {http_announce}"))
            .to_string();
        Tracker {
            proc,
            net: net.clone(),
            http_announce,
            udp_announce,
            base,
        }
    }

    fn announce_url(&self, scheme: Scheme) -> &str {
        match scheme {
            Scheme::Http => &self.http_announce,
            Scheme::Udp => &self.udp_announce,
        }
    }

    fn get(&mut self, path: &str, bearer: Option<&str>) -> (u16, Vec<u8>) {
        let url = format!("{}{path}", self.base);
        match http_get(&self.net, &url, bearer) {
            Ok(r) => r,
            Err(e) => panic!("tracker: {e}\n{}", self.proc.report()),
        }
    }

    /// `/stats/<info-hash>` as the admin sees it; None while the tracker does not know the torrent (404).
    fn stats(&mut self, info_hash: &str, started: Instant) -> Option<Snapshot> {
        let (status, body) = self.get(&format!("/stats/{info_hash}"), Some(ADMIN_TOKEN));
        let at = started.elapsed();
        match status {
            200 => {
                let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                    panic!(
                        "/stats/{info_hash}: not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&body)
                    )
                });
                assert_eq!(v["info_hash"], info_hash, "/stats/{info_hash}: {v}");
                Some(Snapshot::from_json(at, &v))
            }
            404 => None,
            other => panic!(
                "/stats/{info_hash}: status {other}: {:?}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// Polls `/stats` until `done` holds; fails after `timeout`.
    fn wait_stats(
        &mut self,
        info_hash: &str,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Snapshot {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < timeout {
            if let Some(snap) = self.stats(info_hash, started) {
                if done(&snap) {
                    return snap;
                }
                last = Some(snap);
            }
            thread::sleep(POLL);
        }
        panic!("tracker: not {what} within {timeout:?}; last /stats: {last:?}")
    }

    /// `/scrape?info_hash=...` decoded; fails on a failure reason or a malformed answer (with the bytes).
    fn scrape(&mut self, info_hash: &str) -> Scrape {
        let raw = hex_decode(info_hash);
        let (status, body) = self.get(&format!("/scrape?info_hash={}", percent_encode(&raw)), None);
        let shown = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "/scrape: status {status}: {shown:?}");
        let value = bencode::decode(&body)
            .unwrap_or_else(|e| panic!("/scrape: not bencode ({e}): {shown:?} (bytes {body:?})"));
        let dict = value
            .as_dict()
            .unwrap_or_else(|| panic!("/scrape: not a dictionary: {shown:?}"));
        if let Some(reason) = dict.get(b"failure reason") {
            panic!("/scrape failed: {:?}", reason.as_str());
        }
        let files = dict
            .get(b"files")
            .and_then(|f| f.as_dict())
            .unwrap_or_else(|| panic!("/scrape: no files dictionary: {shown:?}"));
        let entry = files
            .get(&raw)
            .and_then(|e| e.as_dict())
            .unwrap_or_else(|| panic!("/scrape: no entry for {info_hash}: {shown:?}"));
        let int = |key: &str| {
            entry
                .get(key.as_bytes())
                .and_then(|v| v.as_int())
                .unwrap_or_else(|| panic!("/scrape: no integer {key}: {shown:?}"))
        };
        Scrape {
            complete: int("complete"),
            downloaded: int("downloaded"),
            incomplete: int("incomplete"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Payload and torrent

/// The seeder's copy of the payload in `dir/seed/`; returns (save dir, bytes).
fn make_payload(dir: &Path, seed: u64) -> (PathBuf, Vec<u8>) {
    let save_dir = dir.join("seed");
    fs::create_dir_all(&save_dir).unwrap();
    let bytes = pseudo_random(PAYLOAD_LEN, seed);
    fs::write(save_dir.join(PAYLOAD_NAME), &bytes).unwrap();
    (save_dir, bytes)
}

/// `bitswarm create` with one tracker; returns (torrent path, v1 info-hash in hex).
fn create_torrent(save_dir: &Path, tracker: &str, out: &Path) -> (PathBuf, String) {
    let o = run_ok(
        Command::new(env!("CARGO_BIN_EXE_bitswarm"))
            .arg("create")
            .arg(save_dir.join(PAYLOAD_NAME))
            .arg("-o")
            .arg(out)
            .args(["--tracker", tracker, "--no-date", "--json"]),
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hash = v["info_hash_v1"]
        .as_str()
        .unwrap_or_else(|| panic!("bitswarm create --json: no info_hash_v1 in {v}"))
        .to_ascii_lowercase();
    (out.to_path_buf(), hash)
}

/// Fails unless `path` holds exactly `want`.
fn assert_same_bytes(path: &Path, want: &[u8], what: &str) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("{what}: cannot read {}: {e}", path.display()));
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} differs from the payload: {} bytes against {}, first difference at {first:?}",
            path.display(),
            got.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// libtorrent, the seeder

struct Seeder {
    proc: Proc,
    port: u16,
}

impl Seeder {
    /// Starts `lt_tool.py seed` on `ip` (port picked by libtorrent) and waits until it has verified every
    /// piece and the tracker has answered its first announce.
    fn start(net: &Net, torrent: &Path, save_dir: &Path, ip: &str, logs: &Path) -> Seeder {
        let mut cmd = net.command(true, PYTHON);
        cmd.arg(lt_tool_path())
            .arg("seed")
            .arg(torrent)
            .arg(save_dir)
            .args(["--listen", &format!("{ip}:0")])
            .args(["--timeout", SEEDER_SELF_TIMEOUT_SECS]);
        let mut proc = Proc::spawn("libtorrent seeder", cmd, logs);
        let port = proc.wait_line("seeding event", STARTUP_TIMEOUT, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["event"] == "error" {
                panic!("libtorrent seeder: {v}");
            }
            (v["event"] == "seeding").then(|| v["port"].as_u64().unwrap())
        });
        proc.wait_line("reply from the tracker", STARTUP_TIMEOUT, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["event"] == "tracker_error" {
                panic!("libtorrent seeder: the tracker failed: {v}");
            }
            (v["event"] == "announced").then_some(())
        });
        Seeder {
            proc,
            port: u16::try_from(port).unwrap(),
        }
    }

    /// The seeder's events so far, parsed.
    fn events(&mut self) -> Vec<Value> {
        self.proc.drain();
        self.proc
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn uploaded(&mut self) -> u64 {
        self.events()
            .iter()
            .filter(|v| v["event"] == "uploaded")
            .filter_map(|v| v["bytes"].as_u64())
            .max()
            .unwrap_or(0)
    }

    fn peer_ips(&mut self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|v| v["event"] == "peer")
            .filter_map(|v| v["ip"].as_str().map(str::to_string))
            .collect()
    }

    fn tracker_errors(&mut self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|v| v["event"] == "tracker_error")
            .collect()
    }
}

/// The seeder as the tracker sees it: one seed, complete, from its own address and port, named libtorrent.
fn assert_seeder_view(snap: &Snapshot, seeder_addr: &str, what: &str) {
    let lt = snap
        .peer("libtorrent")
        .unwrap_or_else(|| panic!("{what}: the tracker lists no libtorrent peer: {snap:?}"));
    assert!(
        lt.is_seed && lt.completion == 1.0,
        "{what}: libtorrent is not a complete seed: {snap:?}"
    );
    assert_eq!(lt.addr, seeder_addr, "{what}: libtorrent's address: {snap:?}");
}

// ---------------------------------------------------------------------------------------------------------
// libtorrent seeds to aria2, on 127.0.0.1

fn aria2_downloads_from_libtorrent(scheme: Scheme) {
    require_tools(&["aria2c"]);
    let what = format!("libtorrent -> aria2 over {scheme:?}");
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let net = Net::Loopback;
    let mut tracker = Tracker::start(&net, dir.path());
    let (seed_dir, payload) = make_payload(dir.path(), 0xA21A);
    let announce = tracker.announce_url(scheme).to_string();
    let (torrent, info_hash) = create_torrent(&seed_dir, &announce, &dir.path().join("a.torrent"));

    let mut seeder = Seeder::start(&net, &torrent, &seed_dir, "127.0.0.1", dir.path());
    let seeder_addr = format!("127.0.0.1:{}", seeder.port);
    let before = tracker.wait_stats(&info_hash, "the seeder registered", STARTUP_TIMEOUT, |s| {
        s.seeders == 1 && s.peer("libtorrent").is_some()
    });
    assert_eq!(
        (before.leechers, before.completed, before.peers.len()),
        (0, 0, 1),
        "{what}: before aria2: {before:?}"
    );
    assert_seeder_view(&before, &seeder_addr, &what);

    let download_dir = dir.path().join("aria2");
    fs::create_dir_all(&download_dir).unwrap();
    let aria2_port = free_port();
    let mut cmd = net.command(true, "aria2c");
    cmd.arg("--no-conf=true")
        .arg(format!("--dir={}", download_dir.display()))
        .arg(format!("--log={}", dir.path().join("aria2.log").display()))
        .args([
            "--log-level=info",
            "--console-log-level=warn",
            "--summary-interval=0",
        ])
        .args(["--enable-color=false", "--show-console-readout=false"])
        .args(["--bt-enable-lpd=false", "--enable-dht6=false"])
        .args(["--enable-peer-exchange=false", "--disable-ipv6=true"])
        .arg(format!("--listen-port={aria2_port}"))
        .args(["--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=10"])
        .args(["--bt-tracker-interval=1"])
        // About two seconds of download, so that the tracker's view of aria2 as a leecher can be seen.
        .arg("--max-download-limit=2M")
        // Six seconds of seeding: aria2 sends `completed` only when it goes on seeding.
        .arg("--seed-time=0.1")
        .arg(format!("--stop={}", ARIA2_TIMEOUT.as_secs()))
        .arg("--file-allocation=none")
        .arg(&torrent);
    match scheme {
        Scheme::Http => {
            cmd.arg("--enable-dht=false");
        }
        Scheme::Udp => {
            // aria2 speaks UDP tracker only through its DHT socket ("udp is not supported yet" otherwise).
            // With no entry point and an empty routing table its DHT knows nobody and sends nothing.
            cmd.arg("--enable-dht=true")
                .arg(format!("--dht-listen-port={}", free_udp_port()))
                .arg(format!(
                    "--dht-file-path={}",
                    dir.path().join("aria2-dht.dat").display()
                ));
        }
    }
    let t_aria2 = Instant::now();
    let mut aria2 = Proc::spawn("aria2c", cmd, dir.path());

    // Watch the swarm through the tracker while aria2 runs.
    let mut snaps = Vec::new();
    let status = loop {
        if let Some(status) = aria2.try_wait() {
            break status;
        }
        assert!(
            t_aria2.elapsed() < ARIA2_TIMEOUT,
            "{what}: aria2 did not finish within {ARIA2_TIMEOUT:?}; /stats seen: {snaps:#?}\n{}\naria2 log \
             (end):\n{}",
            aria2.report(),
            log_tail(&dir.path().join("aria2.log"))
        );
        if let Some(snap) = tracker.stats(&info_hash, t_aria2) {
            snaps.push(snap);
        }
        thread::sleep(POLL);
    };
    let aria2_secs = t_aria2.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "{what}: aria2c exited with {status}\n{}\naria2 log (end):\n{}",
        aria2.report(),
        log_tail(&dir.path().join("aria2.log"))
    );
    assert_same_bytes(&download_dir.join(PAYLOAD_NAME), &payload, &what);
    assert!(
        seeder.uploaded() >= PAYLOAD_LEN as u64,
        "{what}: libtorrent reports {} bytes uploaded, less than the payload: {:?}",
        seeder.uploaded(),
        seeder.events()
    );
    assert!(
        seeder.tracker_errors().is_empty(),
        "{what}: libtorrent saw tracker errors: {:?}",
        seeder.tracker_errors()
    );

    // aria2 as a leecher, then as a seed, each next to the libtorrent seed.
    let aria2_addr = format!("127.0.0.1:{aria2_port}");
    let leeching = snaps
        .iter()
        .find(|s| s.peer("aria2").is_some_and(|a| !a.is_seed && a.completion < 1.0));
    let leeching = leeching.unwrap_or_else(|| {
        panic!("{what}: the tracker never showed aria2 as a leecher; /stats seen: {snaps:#?}")
    });
    assert_eq!(
        (leeching.seeders, leeching.leechers),
        (1, 1),
        "{what}: while aria2 downloads: {leeching:?}"
    );
    assert_seeder_view(leeching, &seeder_addr, &what);
    let a = leeching.peer("aria2").unwrap();
    assert_eq!(a.addr, aria2_addr, "{what}: aria2's address: {leeching:?}");
    assert!(
        (0.0..1.0).contains(&a.completion),
        "{what}: aria2's completion: {leeching:?}"
    );

    let seeding = snaps
        .iter()
        .find(|s| s.peer("aria2").is_some_and(|a| a.is_seed))
        .unwrap_or_else(|| {
            panic!("{what}: the tracker never showed aria2 as a seed; /stats seen: {snaps:#?}")
        });
    assert_eq!(
        (seeding.seeders, seeding.leechers, seeding.completed),
        (2, 0, 1),
        "{what}: after aria2 completed: {seeding:?}"
    );
    let a = seeding.peer("aria2").unwrap();
    assert_eq!(
        (a.completion, a.addr.as_str()),
        (1.0, aria2_addr.as_str()),
        "{what}: aria2 after completing: {seeding:?}"
    );
    assert!(
        seeding.at >= leeching.at,
        "{what}: aria2 seen seeding before leeching"
    );

    // aria2 announced `stopped` on exit: gone, and its download counted.
    let after = tracker.wait_stats(&info_hash, "rid of aria2", STARTUP_TIMEOUT, |s| {
        s.peer("aria2").is_none()
    });
    assert_eq!(
        (after.seeders, after.leechers, after.completed),
        (1, 0, 1),
        "{what}: after aria2 stopped: {after:?}"
    );
    assert_seeder_view(&after, &seeder_addr, &what);
    let scrape = tracker.scrape(&info_hash);
    assert_eq!(
        scrape,
        Scrape {
            complete: 1,
            downloaded: 1,
            incomplete: 0
        },
        "{what}: /scrape after aria2 finished"
    );
    eprintln!(
        "{what}: aria2 ran {aria2_secs:.1} s (leecher seen at {:.1} s, seed at {:.1} s); test {:.1} s",
        leeching.at.as_secs_f64(),
        seeding.at.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn aria2_downloads_from_libtorrent_via_http_tracker() {
    aria2_downloads_from_libtorrent(Scheme::Http);
}

#[test]
fn aria2_downloads_from_libtorrent_via_udp_tracker() {
    aria2_downloads_from_libtorrent(Scheme::Udp);
}

// ---------------------------------------------------------------------------------------------------------
// libtorrent seeds to Transmission, in a network namespace

struct Transmission {
    proc: Proc,
    net: Net,
    rpc: String,
}

/// What `transmission-remote -t HASH -i` said.
#[derive(Debug)]
struct TrInfo {
    state: String,
    percent_done: f64,
    error: Option<String>,
    raw: String,
}

impl Transmission {
    fn start(net: &Net, dir: &Path, download_dir: &Path) -> Transmission {
        let config = dir.join("transmission");
        fs::create_dir_all(&config).unwrap();
        let settings = serde_json::json!({
            "rpc-enabled": true,
            "rpc-bind-address": "127.0.0.1",
            "rpc-port": NS_TRANSMISSION_RPC_PORT,
            "rpc-authentication-required": false,
            "rpc-whitelist-enabled": false,
            "rpc-host-whitelist-enabled": false,
            "bind-address-ipv4": NS_LEECHER_IP,
            "bind-address-ipv6": "::1",
            "peer-port": NS_TRANSMISSION_PEER_PORT,
            "peer-port-random-on-start": false,
            "port-forwarding-enabled": false,
            "dht-enabled": false,
            "lpd-enabled": false,
            "pex-enabled": false,
            "utp-enabled": false,
            "blocklist-enabled": false,
            "download-dir": download_dir,
            "incomplete-dir-enabled": false,
            "watch-dir-enabled": false,
            "start-added-torrents": true,
            "speed-limit-up-enabled": false,
            "speed-limit-down-enabled": false,
            "alt-speed-enabled": false,
            "ratio-limit-enabled": false,
            "idle-seeding-limit-enabled": false,
            "message-level": 2,
        });
        fs::write(
            config.join("settings.json"),
            serde_json::to_vec_pretty(&settings).unwrap(),
        )
        .unwrap();
        let mut cmd = net.command(true, "transmission-daemon");
        cmd.arg("-f").arg("-g").arg(&config);
        let proc = Proc::spawn("transmission-daemon", cmd, dir);
        let mut tr = Transmission {
            proc,
            net: net.clone(),
            rpc: format!("127.0.0.1:{NS_TRANSMISSION_RPC_PORT}"),
        };
        // Its RPC answers once the session is up.
        let started = Instant::now();
        loop {
            if let Some(status) = tr.proc.try_wait() {
                panic!(
                    "transmission-daemon exited ({status}) at start\n{}",
                    tr.proc.report()
                );
            }
            if tr.remote(&["-l"]).status.success() {
                break;
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "transmission-daemon's RPC did not answer within {STARTUP_TIMEOUT:?}\n{}",
                tr.proc.report()
            );
            thread::sleep(Duration::from_millis(200));
        }
        tr
    }

    fn remote(&self, args: &[&str]) -> Output {
        run_with_timeout(
            self.net
                .command(false, "transmission-remote")
                .arg(&self.rpc)
                .args(args),
            COMMAND_TIMEOUT,
        )
    }

    fn remote_ok(&mut self, args: &[&str]) -> String {
        let out = self.remote(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "transmission-remote {args:?} failed ({}): {stdout}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.proc.report()
        );
        stdout
    }

    fn info(&mut self, info_hash: &str) -> TrInfo {
        let raw = self.remote_ok(&["-t", info_hash, "-i"]);
        let field = |key: &str| {
            raw.lines()
                .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let hash = field("Hash:");
        assert_eq!(
            hash.as_deref(),
            Some(info_hash),
            "transmission-remote -i: wrong or no torrent:\n{raw}"
        );
        let percent_done = field("Percent Done:")
            .and_then(|p| p.trim_end_matches('%').parse().ok())
            .unwrap_or_else(|| panic!("transmission-remote -i: no Percent Done:\n{raw}"));
        TrInfo {
            state: field("State:").unwrap_or_default(),
            percent_done,
            error: field("Error:"),
            raw,
        }
    }
}

fn transmission_downloads_from_libtorrent(scheme: Scheme) {
    require_root();
    require_tools(&["transmission-daemon", "transmission-remote", "ip"]);
    let what = format!("libtorrent -> Transmission over {scheme:?} (network namespace)");
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // Dropped last: every process inside is killed before the namespace goes.
    let ns = Netns::create();
    let net = ns.net();
    let mut tracker = Tracker::start(&net, dir.path());
    let (seed_dir, payload) = make_payload(dir.path(), 0x7E5);
    let announce = tracker.announce_url(scheme).to_string();
    let (torrent, info_hash) = create_torrent(&seed_dir, &announce, &dir.path().join("t.torrent"));

    let mut seeder = Seeder::start(&net, &torrent, &seed_dir, NS_SEEDER_IP, dir.path());
    let seeder_addr = format!("{NS_SEEDER_IP}:{}", seeder.port);
    let before = tracker.wait_stats(&info_hash, "the seeder registered", STARTUP_TIMEOUT, |s| {
        s.seeders == 1 && s.peer("libtorrent").is_some()
    });
    assert_eq!(
        (before.leechers, before.completed, before.peers.len()),
        (0, 0, 1),
        "{what}: before Transmission: {before:?}"
    );
    assert_seeder_view(&before, &seeder_addr, &what);

    let download_dir = dir.path().join("transmission-download");
    fs::create_dir_all(&download_dir).unwrap();
    let mut tr = Transmission::start(&net, dir.path(), &download_dir);
    let added = tr.remote_ok(&["-a", torrent.to_str().unwrap()]);
    assert!(
        added.contains("success"),
        "{what}: transmission-remote -a: {added}"
    );
    let t_added = Instant::now();

    // Poll Transmission and the tracker until Transmission has everything and the tracker counted it.
    let transmission_addr = format!("{NS_LEECHER_IP}:{NS_TRANSMISSION_PEER_PORT}");
    let mut snaps = Vec::new();
    let mut done_at = None;
    loop {
        let info = tr.info(&info_hash);
        assert!(
            info.error.is_none(),
            "{what}: Transmission reports an error:\n{}",
            info.raw
        );
        if info.percent_done >= 100.0 && done_at.is_none() {
            done_at = Some(t_added.elapsed());
        }
        if let Some(snap) = tracker.stats(&info_hash, t_added) {
            let counted = snap.completed >= 1;
            snaps.push(snap);
            if done_at.is_some() && counted {
                break;
            }
        }
        assert!(
            t_added.elapsed() < TRANSMISSION_TIMEOUT,
            "{what}: Transmission did not complete (and the tracker count it) within {TRANSMISSION_TIMEOUT:?}\n\
             last info:\n{}\n/stats seen (last 5): {:#?}\n{}\n{}",
            info.raw,
            &snaps[snaps.len().saturating_sub(5)..],
            tr.proc.report(),
            seeder.proc.report()
        );
        thread::sleep(Duration::from_millis(250));
    }
    let done_at = done_at.unwrap();

    // Stopping the torrent flushes Transmission's cache to disk and sends `stopped`.
    tr.remote_ok(&["-t", &info_hash, "-S"]);
    let t_stop = Instant::now();
    loop {
        let info = tr.info(&info_hash);
        if info.state == "Stopped" {
            break;
        }
        assert!(
            t_stop.elapsed() < STARTUP_TIMEOUT,
            "{what}: the torrent did not stop within {STARTUP_TIMEOUT:?}:\n{}",
            info.raw
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert_same_bytes(&download_dir.join(PAYLOAD_NAME), &payload, &what);
    assert!(
        seeder.uploaded() >= PAYLOAD_LEN as u64,
        "{what}: libtorrent reports {} bytes uploaded, less than the payload: {:?}",
        seeder.uploaded(),
        seeder.events()
    );
    let ips = seeder.peer_ips();
    assert!(
        !ips.is_empty() && ips.iter().all(|ip| ip == NS_LEECHER_IP),
        "{what}: libtorrent's peers should all be Transmission at {NS_LEECHER_IP}: {ips:?}"
    );
    assert!(
        seeder.tracker_errors().is_empty(),
        "{what}: libtorrent saw tracker errors: {:?}",
        seeder.tracker_errors()
    );

    // Transmission as a leecher (it waits for its 10-second cycle before the first byte), then as a seed.
    let leeching = snaps
        .iter()
        .find(|s| s.peer("Transmission").is_some_and(|p| !p.is_seed))
        .unwrap_or_else(|| {
            panic!("{what}: the tracker never showed Transmission as a leecher; /stats seen: {snaps:#?}")
        });
    assert_eq!(
        (leeching.seeders, leeching.leechers),
        (1, 1),
        "{what}: while Transmission downloads: {leeching:?}"
    );
    assert_seeder_view(leeching, &seeder_addr, &what);
    let p = leeching.peer("Transmission").unwrap();
    assert_eq!(p.client, "Transmission 3.00", "{what}: {leeching:?}");
    assert_eq!(
        p.addr, transmission_addr,
        "{what}: Transmission's address: {leeching:?}"
    );
    assert!(
        (0.0..1.0).contains(&p.completion),
        "{what}: Transmission's completion: {leeching:?}"
    );
    let seeding = snaps.last().unwrap();
    assert_eq!(
        (seeding.seeders, seeding.leechers, seeding.completed),
        (2, 0, 1),
        "{what}: after Transmission completed: {seeding:?}"
    );
    let p = seeding
        .peer("Transmission")
        .unwrap_or_else(|| panic!("{what}: Transmission missing after completing: {seeding:?}"));
    assert!(
        p.is_seed && p.completion == 1.0 && p.addr == transmission_addr,
        "{what}: Transmission after completing: {seeding:?}"
    );
    assert_seeder_view(seeding, &seeder_addr, &what);

    // Transmission announced `stopped`: gone, its download still counted.
    let after = tracker.wait_stats(&info_hash, "rid of Transmission", STARTUP_TIMEOUT, |s| {
        s.peer("Transmission").is_none()
    });
    assert_eq!(
        (after.seeders, after.leechers, after.completed),
        (1, 0, 1),
        "{what}: after Transmission stopped: {after:?}"
    );
    let scrape = tracker.scrape(&info_hash);
    assert_eq!(
        scrape,
        Scrape {
            complete: 1,
            downloaded: 1,
            incomplete: 0
        },
        "{what}: /scrape after Transmission finished"
    );
    eprintln!(
        "{what}: Transmission complete {:.1} s after adding (leecher seen at {:.1} s); test {:.1} s \
         (transmission-daemon pid {})",
        done_at.as_secs_f64(),
        leeching.at.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        tr.proc.pid()
    );
}

#[test]
fn transmission_downloads_from_libtorrent_via_http_tracker_in_netns() {
    transmission_downloads_from_libtorrent(Scheme::Http);
}

#[test]
fn transmission_downloads_from_libtorrent_via_udp_tracker_in_netns() {
    transmission_downloads_from_libtorrent(Scheme::Udp);
}
