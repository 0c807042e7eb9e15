//! bitswarm's own peer client (`bitswarm seed` / `bitswarm get` with `--json`) as a background process, for
//! interop tests against the real clients of [`super::clients`].
//!
//! ```ignore
//! let mut seeder = BitswarmPeer::start(Mode::Seed, &torrent, &seed_dir, &Placement::Loopback, &PeerOptions::default());
//! let mut leecher = start_leecher(Client::Libtorrent, &torrent, &dl_dir, &Placement::Loopback);
//! leecher.wait_complete(Duration::from_secs(30)).unwrap();
//! let last = seeder.terminate(Duration::from_secs(10)).unwrap();   // SIGTERM, exit 0, the final status
//! assert!(last.uploaded > 0);
//! ```
//!
//! - [`Mode`]: `Seed` (`bitswarm seed`: verify the content, then serve it), `Get` (`bitswarm get`: exits 0
//!   once complete and verified) or `GetAndSeed` (`bitswarm get --seed`: goes on seeding until SIGTERM).
//!   `dir` is the save folder (`-o`): a multi-file torrent `NAME` lives in `dir/NAME/`. Existing data in it
//!   is checked first, and the good pieces kept.
//! - It listens on the placement's address (`--listen IP:0`; the port is read from the `listening` line),
//!   inside the placement's network namespace through `ip netns exec`. Its resume data goes to a temporary
//!   folder of its own (`--resume-dir`), removed on drop, so nothing of a run reaches `~/.local/state`.
//! - [`BitswarmPeer::start`] returns once it listens; a seeder once it has verified every piece (phase
//!   `seeding`). Every wait is bounded; a `failed` phase or an exit ends a wait at once, with its output.
//! - Its stdout is one JSON object a line: [`PeerStatus`] is one `status` object.
//!   [`BitswarmPeer::wait_status`], [`BitswarmPeer::wait_exit`] (a `get` ends by itself),
//!   [`BitswarmPeer::terminate`] (SIGTERM, then the exit), [`BitswarmPeer::last_status`].
//! - DHT: `PeerOptions::dht_bootstrap` (`--bootstrap`, repeated) and `no_dht` (`--no-dht`); the environment
//!   variable `BITSWARM_DHT_BOOTSTRAP` is set to "" for every run (no default bootstrap nodes: they are on
//!   the internet). Its DHT node listens on UDP at the TCP listen address ([`BitswarmPeer::dht_addr`]).
//! - Dropping it kills it (SIGKILL, by PID and process group); it also gets SIGKILL when the thread that
//!   started it ends (`setpriv --pdeathsig`).
//!
//! Facts (bitswarm 0.1.0, on loopback and in a namespace): `--listen IP:PORT` binds only the listener:
//! tracker requests and outgoing peer connections leave from whatever address the kernel picks, and no
//! `ip=` is sent, so a tracker on 127.0.0.1 lists a bitswarm that listens on 10.99.0.11 at 127.0.0.1 (with
//! the right port). [`start_tracker_at`] puts the tracker on bitswarm's own address instead, so that the
//! source address is that one. A transfer finishing within a second may go from `checking` to `seeding`
//! with no `downloading` line in between.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::clients::Placement;
use super::netns::Net;
use super::proc::Proc;
use super::tracker::Tracker;

/// Which bitswarm command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `bitswarm seed`: verifies the content, then serves it until SIGTERM.
    Seed,
    /// `bitswarm get`: downloads, exits 0 once complete and verified.
    Get,
    /// `bitswarm get --seed`: downloads, then goes on seeding until SIGTERM.
    GetAndSeed,
}

/// How to start it; `PeerOptions::default()` suits most tests.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// `--peer` addresses to dial besides the trackers' peers.
    pub peers: Vec<SocketAddr>,
    /// `--max-up` (e.g. "500K").
    pub max_up: Option<String>,
    /// `--max-down`.
    pub max_down: Option<String>,
    /// `--no-trackers`.
    pub no_trackers: bool,
    /// `--bootstrap HOST:PORT` each: the DHT nodes it joins through. Empty: none at all (the environment
    /// variable `BITSWARM_DHT_BOOTSTRAP` is always set to "", so that no test reaches the internet's
    /// routers); its DHT then runs with nobody to ask.
    pub dht_bootstrap: Vec<SocketAddr>,
    /// `--no-dht`.
    pub no_dht: bool,
    /// More command-line arguments (e.g. `--lsd`, `--no-dht`, `--bootstrap ADDR`).
    pub extra_args: Vec<String>,
    /// Bound on the start: the `listening` line, and for a seeder the `seeding` phase.
    pub startup_timeout: Duration,
}

impl Default for PeerOptions {
    fn default() -> PeerOptions {
        PeerOptions {
            peers: Vec::new(),
            max_up: None,
            max_down: None,
            no_trackers: false,
            dht_bootstrap: Vec::new(),
            no_dht: false,
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(60),
        }
    }
}

/// One `{"event":"status",...}` line.
#[derive(Clone, Debug, Default)]
pub struct PeerStatus {
    /// checking, downloading, seeding, failed or stopped.
    pub phase: String,
    pub bytes_have: u64,
    pub bytes_left: u64,
    pub total_bytes: u64,
    /// Payload bytes received from peers (this run).
    pub downloaded: u64,
    /// Payload bytes sent to peers (this run).
    pub uploaded: u64,
    pub peers: u64,
    pub pieces_have: u64,
    pub pieces_total: u64,
    /// Bytes found good on disk by the check at start.
    pub resumed_bytes: u64,
    pub failed_pieces: u64,
    pub error: Option<String>,
    /// The whole line.
    pub raw: Value,
}

impl PeerStatus {
    fn from_json(v: &Value) -> PeerStatus {
        let num = |key: &str| v[key].as_u64().unwrap_or(0);
        PeerStatus {
            phase: v["phase"].as_str().unwrap_or_default().to_string(),
            bytes_have: num("bytes_have"),
            bytes_left: num("bytes_left"),
            total_bytes: num("total_bytes"),
            downloaded: num("downloaded"),
            uploaded: num("uploaded"),
            peers: num("peers"),
            pieces_have: num("pieces_have"),
            pieces_total: num("pieces_total"),
            resumed_bytes: num("resumed_bytes"),
            failed_pieces: num("failed_pieces"),
            error: v["error"].as_str().map(str::to_string),
            raw: v.clone(),
        }
    }

    /// Every piece held and verified.
    pub fn complete(&self) -> bool {
        self.pieces_total > 0 && self.pieces_have == self.pieces_total && self.bytes_left == 0
    }
}

/// A running `bitswarm seed` or `bitswarm get`; killed (PID and process group) on drop.
pub struct BitswarmPeer {
    pub name: String,
    mode: Mode,
    listen: SocketAddr,
    proc: Proc,
    /// Resume data and stderr; removed after `proc` is killed (fields drop in order).
    state: TempDir,
}

impl BitswarmPeer {
    /// Starts bitswarm in `mode` for `torrent` with `dir` its save folder, listening on the placement's
    /// address; see the module documentation.
    pub fn start(
        mode: Mode,
        torrent: &Path,
        dir: &Path,
        placement: &Placement,
        opts: &PeerOptions,
    ) -> BitswarmPeer {
        std::fs::create_dir_all(dir).unwrap();
        let state = tempfile::Builder::new()
            .prefix("bsw-bitswarm-")
            .tempdir()
            .unwrap();
        let mut cmd = placement.net().command(true, env!("CARGO_BIN_EXE_bitswarm"));
        // The DHT runs, but joins no router on the internet: tests stay on loopback.
        cmd.env("BITSWARM_DHT_BOOTSTRAP", "");
        cmd.arg(match mode {
            Mode::Seed => "seed",
            Mode::Get | Mode::GetAndSeed => "get",
        })
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args(["--listen", &format!("{}:0", placement.ip())])
        .arg("--json")
        .arg("--resume-dir")
        .arg(state.path().join("resume"))
        // On stderr (kept in a file, its end shown on failure): peers connected and closed, with the reason,
        // and tracker announces; not the HTTP client's own chatter.
        .env("RUST_LOG", "info,client=debug,net::announce=debug")
        // Its log writer colours a file too otherwise.
        .env("NO_COLOR", "1");
        if mode == Mode::GetAndSeed {
            cmd.arg("--seed");
        }
        for peer in &opts.peers {
            cmd.args(["--peer", &peer.to_string()]);
        }
        if let Some(rate) = &opts.max_up {
            cmd.args(["--max-up", rate]);
        }
        if let Some(rate) = &opts.max_down {
            cmd.args(["--max-down", rate]);
        }
        if opts.no_trackers {
            cmd.arg("--no-trackers");
        }
        for node in &opts.dht_bootstrap {
            cmd.args(["--bootstrap", &node.to_string()]);
        }
        if opts.no_dht {
            cmd.arg("--no-dht");
        }
        cmd.args(&opts.extra_args);
        let name = format!(
            "bitswarm {}",
            match mode {
                Mode::Seed => "seed",
                Mode::Get => "get",
                Mode::GetAndSeed => "get --seed",
            }
        );
        let started = Instant::now();
        let mut proc = Proc::spawn(&name, cmd, state.path());
        let listen = proc.wait_line("`listening` line", opts.startup_timeout, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            (v["event"] == "listening").then(|| {
                v["addr"]
                    .as_str()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    .unwrap_or_else(|| panic!("{name}: bad listening line {line}"))
            })
        });
        assert_eq!(
            listen.ip(),
            placement.ip(),
            "{name} listens on {listen}, not on the address it was given"
        );
        let mut peer = BitswarmPeer {
            name,
            mode,
            listen,
            proc,
            state,
        };
        if mode == Mode::Seed {
            let left = opts.startup_timeout.saturating_sub(started.elapsed());
            if let Err(e) = peer.wait_status("phase seeding", left, |s| s.phase == "seeding") {
                panic!("{e}");
            }
        }
        peer
    }

    /// Where it accepts peer connections.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where its DHT node listens (UDP): the TCP listen address, same IP and port.
    pub fn dht_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every `status` line read so far, in order.
    pub fn statuses(&mut self) -> Vec<PeerStatus> {
        self.proc.drain();
        self.proc
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "status")
            .map(|v| PeerStatus::from_json(&v))
            .collect()
    }

    /// The latest `status` line read so far.
    pub fn last_status(&mut self) -> Option<PeerStatus> {
        self.statuses().pop()
    }

    /// Waits until a `status` line satisfies `done` (lines already read count); fails on a `failed` phase,
    /// on an exit, or after `timeout`.
    pub fn wait_status(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&PeerStatus) -> bool,
    ) -> Result<PeerStatus, String> {
        let name = self.name.clone();
        let mut failed = None;
        let found = self.proc.try_wait_line(what, timeout, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["event"] != "status" {
                return None;
            }
            let s = PeerStatus::from_json(&v);
            if done(&s) {
                return Some(Ok(s));
            }
            if s.phase == "failed" && failed.is_none() {
                failed = Some(line.to_string());
                // Stop waiting: report it.
                return Some(Err(()));
            }
            None
        });
        match found {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(())) => Err(format!(
                "{name} failed while waiting for {what}: {}\n{}",
                failed.unwrap_or_default(),
                self.report()
            )),
            Err(e) => Err(e),
        }
    }

    /// Waits (at most `timeout`) until it exits and its output is read to the end; returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let started = Instant::now();
        // Reads stdout until it closes (it has exited) or the time is up.
        let _ = self
            .proc
            .try_wait_line("the end of its output", timeout, |_| None::<()>);
        loop {
            if let Some(status) = self.proc.try_wait() {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                let name = self.name.clone();
                return Err(format!(
                    "{name} did not exit within {timeout:?}\n{}",
                    self.report()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM (bitswarm tells its trackers `stopped` and exits 0), waits for the exit, and returns
    /// the last status it printed. Fails unless it exits 0 within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Result<PeerStatus, String> {
        if self.proc.try_wait().is_none() {
            let ok = Command::new("kill")
                .args(["-TERM", &self.proc.pid().to_string()])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!(
                    "{}: cannot send SIGTERM to {}",
                    self.name,
                    self.proc.pid()
                ));
            }
        }
        let status = self.wait_exit(timeout)?;
        let name = self.name.clone();
        if !status.success() {
            return Err(format!(
                "{name} exited with {status} after SIGTERM\n{}",
                self.report()
            ));
        }
        match self.last_status() {
            Some(last) => Ok(last),
            None => Err(format!("{name}: no status line at all\n{}", self.report())),
        }
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.proc.try_wait()
    }

    /// Its last stdout lines (a status a second: only the last few) and the end of its stderr (peers
    /// connected and closed, with the reason; announces), for failure messages.
    pub fn report(&mut self) -> String {
        self.proc.drain();
        let seen = &self.proc.seen;
        let from = seen.len().saturating_sub(6);
        format!(
            "--- {} at {} (pid {}) ---\n{} stdout (last {} of {} lines):\n{}\n{} stderr (end):\n{}",
            self.name,
            self.listen,
            self.proc.pid(),
            self.name,
            seen.len() - from,
            seen.len(),
            seen[from..].join("\n"),
            self.name,
            self.proc.stderr_tail()
        )
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.proc.stderr_path().to_path_buf()
    }
}

impl Drop for BitswarmPeer {
    fn drop(&mut self) {
        // Killed before `state` (its folder) is removed.
        self.proc.kill();
    }
}

/// `bitswarm tracker` with HTTP and UDP on `ip` (ports the system picks), inside `net`; its working folder is
/// `dir`. With `ip` the address bitswarm listens on, bitswarm's announces leave from that address (the
/// kernel picks the destination's own address as source for a local one), so the tracker lists it there;
/// clients that bind their tracker requests to their own address are listed at theirs.
pub fn start_tracker_at(net: &Net, ip: Ipv4Addr, dir: &Path) -> Tracker {
    Tracker::start_at(net, ip, dir, &[])
}
