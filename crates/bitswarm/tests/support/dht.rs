//! DHT nodes for the interop tests, all on 127.0.0.1 with ports the system picks:
//!
//! - [`DhtNode`]: `bitswarm dht` as a background process (`--listen 127.0.0.1:0 --http 127.0.0.1:0`): its
//!   UDP address and its `/stats` JSON ([`queries_in_total`], [`dropped`] read it).
//! - [`LtDhtNode`]: libtorrent's DHT with no torrent (`tests/interop/lt_tool.py dht-node`): its own id, its
//!   routing table ([`TableNode`]s, from `dht_live_nodes` once a second) and `get_peers` lookups.
//! - [`parse_aria2_dht_dat`]: the routing table aria2 saves to its `--dht-file-path` on a graceful exit.
//!
//! Facts (libtorrent 2.0.8, aria2 1.36, on loopback):
//! - libtorrent's DHT runs on its listen socket: the UDP port is the TCP one. Its default bootstrap routers
//!   are on the internet: `dht_bootstrap_nodes` must be set (to "" or to local nodes). A node named there is
//!   a *router*: libtorrent queries it but never keeps it in its routing table, so a node that is to be
//!   kept is handed over with `session.add_dht_node` instead (lt_tool's `--dht-bootstrap`): pinged (with a
//!   `get_peers`), and in the table as soon as it answers. `dht_restrict_routing_ips` and
//!   `dht_restrict_search_ips` off, else one node per IP. `session.dht_announce` cannot be called from
//!   Python (its flags type is not exposed); a torrent announces itself.
//! - aria2 pings its `--dht-entry-point` first and adds it once it answers (and replaces the random id it
//!   gave it by the real one); it answers the node's own ping and adds it again. It writes its routing table
//!   (`dht.dat`) only when it exits gracefully (`aria2.shutdown` over RPC: 3 seconds later), never at start.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::http::http_get;
use super::netns::Net;
use super::proc::Proc;
use super::{lt_tool_path, require_tools, PYTHON};

/// `bitswarm dht` and libtorrent's DHT coming up.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// A `bitswarm dht` node on 127.0.0.1, killed (PID and process group) on drop.
pub struct DhtNode {
    proc: Proc,
    addr: SocketAddr,
    stats_url: String,
    /// Its stderr (and state); removed after `proc` is killed (fields drop in order).
    dir: TempDir,
}

impl DhtNode {
    /// Starts `bitswarm dht` on 127.0.0.1 (UDP and HTTP ports the system picks), joining through
    /// `bootstrap` (none: others must find it), with the per-IP query limit raised (every node here shares
    /// one IP). Returns once it prints its addresses.
    pub fn start(bootstrap: &[SocketAddr]) -> DhtNode {
        let dir = tempfile::Builder::new().prefix("bsw-dht-").tempdir().unwrap();
        let mut cmd = Net::Loopback.command(true, env!("CARGO_BIN_EXE_bitswarm"));
        cmd.arg("dht")
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--state")
            .arg(dir.path().join("dht.dat"))
            .env("BITSWARM_DHT__NODE__MAX_QUERIES_PER_SEC_PER_IP", "1000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        if !bootstrap.is_empty() {
            cmd.arg("--bootstrap");
            for b in bootstrap {
                cmd.arg(b.to_string());
            }
        }
        let mut proc = Proc::spawn("bitswarm dht", cmd, dir.path());
        // "dht: udp 127.0.0.1:PORT", then "dht: stats http://127.0.0.1:PORT/stats, metrics ...".
        let addr = proc.wait_line("`dht: udp` line", STARTUP_TIMEOUT, |line| {
            line.strip_prefix("dht: udp ")
                .map(|a| a.trim().parse::<SocketAddr>().unwrap())
        });
        let stats_url = proc.wait_line("`dht: stats` line", STARTUP_TIMEOUT, |line| {
            let rest = line.strip_prefix("dht: stats ")?;
            Some(rest.split(',').next().unwrap().trim().to_string())
        });
        let mut node = DhtNode {
            proc,
            addr,
            stats_url,
            dir,
        };
        // Its stats are sampled once a second: `/stats` is `{}` until the first sample.
        if let Err(e) = node.wait_stats("a first stats sample", STARTUP_TIMEOUT, |s| {
            s.get("table").is_some()
        }) {
            panic!("{e}");
        }
        node
    }

    /// Its UDP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `GET /stats` (counters sampled once a second).
    pub fn stats(&mut self) -> Result<Value, String> {
        if let Some(status) = self.proc.try_wait() {
            return Err(format!("bitswarm dht exited ({status})"));
        }
        match http_get(&Net::Loopback, &self.stats_url, None)? {
            (200, body) => serde_json::from_slice(&body).map_err(|e| format!("/stats: not JSON: {e}")),
            (status, body) => Err(format!(
                "/stats: status {status}: {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }

    /// Polls `/stats` until `done` holds; fails after `timeout` or when the node has exited.
    pub fn wait_stats(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Value, String> {
        let started = Instant::now();
        loop {
            let stats = self.stats();
            match &stats {
                Ok(s) if done(s) => return stats,
                Err(_) if self.proc.try_wait().is_some() => {
                    return Err(format!("{stats:?} while waiting for {what}\n{}", self.report()))
                }
                _ => {}
            }
            if started.elapsed() >= timeout {
                let report = self.report();
                return Err(format!(
                    "bitswarm dht {}: not {what} within {timeout:?}; last /stats {stats:?}\n{report}",
                    self.addr
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Its output and the end of its log, for failure messages.
    pub fn report(&mut self) -> String {
        format!(
            "--- bitswarm dht at {} (pid {}) ---\n{}",
            self.addr,
            self.proc.pid(),
            self.proc.report()
        )
    }
}

impl Drop for DhtNode {
    fn drop(&mut self) {
        self.proc.kill();
    }
}

/// Queries received, all methods together, from a `/stats` object.
pub fn queries_in_total(stats: &Value) -> u64 {
    ["ping", "find_node", "get_peers", "announce_peer", "other"]
        .iter()
        .map(|k| stats["queries_in"][k].as_u64().unwrap_or(0))
        .sum()
}

/// One drop counter (`malformed`, `bad_token`, ...) from `/stats`, whose `dropped` is the counters' debug
/// text (`DropCounts { oversized: 0, malformed: 0, ... }`); None when it is not there.
pub fn dropped(stats: &Value, key: &str) -> Option<u64> {
    stats["dropped"][key].as_u64()
}

/// A node in libtorrent's routing table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNode {
    /// Its node id, lowercase hex.
    pub id: String,
    pub addr: SocketAddr,
}

/// libtorrent's routing table as its last `dht_table` event among `lines` (lt_tool's stdout) gave it:
/// (its own node id, the nodes); None before the first.
pub fn lt_table(lines: &[String]) -> Option<(String, Vec<TableNode>)> {
    lines.iter().rev().find_map(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        if v["event"] != "dht_table" {
            return None;
        }
        let nodes = v["nodes"]
            .as_array()?
            .iter()
            .filter_map(|n| {
                Some(TableNode {
                    id: n["id"].as_str()?.to_string(),
                    addr: n["addr"].as_str()?.parse().ok()?,
                })
            })
            .collect();
        Some((v["node_id"].as_str()?.to_string(), nodes))
    })
}

/// libtorrent's DHT with no torrent (`lt_tool.py dht-node`) on 127.0.0.1, killed on drop.
pub struct LtDhtNode {
    proc: Proc,
    addr: SocketAddr,
    node_id: String,
    dir: TempDir,
}

impl LtDhtNode {
    /// Starts it on 127.0.0.1 (a port the system picks), handed `nodes` with `add_dht_node` (kept in its
    /// table once they answer; see the module documentation); returns once its DHT runs.
    pub fn start(nodes: &[SocketAddr]) -> LtDhtNode {
        require_tools(&[]);
        let dir = tempfile::Builder::new().prefix("bsw-ltdht-").tempdir().unwrap();
        let mut cmd = Net::Loopback.command(true, PYTHON);
        cmd.arg(lt_tool_path())
            .arg("dht-node")
            .args(["--listen", "127.0.0.1:0", "--timeout", "600"]);
        for n in nodes {
            cmd.args(["--dht-bootstrap", &n.to_string()]);
        }
        let mut proc = Proc::spawn_with_stdin("libtorrent dht-node", cmd, dir.path());
        let (port, node_id) = proc.wait_line("dht_ready event", STARTUP_TIMEOUT, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            assert!(v["event"] != "error", "libtorrent dht-node: {v}");
            (v["event"] == "dht_ready").then(|| {
                (
                    u16::try_from(v["port"].as_u64().unwrap()).unwrap(),
                    v["node_id"].as_str().unwrap().to_string(),
                )
            })
        });
        LtDhtNode {
            proc,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            node_id,
            dir,
        }
    }

    /// Its UDP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its node id, lowercase hex.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Its routing table as last reported (empty before the first report).
    pub fn table(&mut self) -> Vec<TableNode> {
        self.proc.drain();
        lt_table(&self.proc.seen).map(|(_, n)| n).unwrap_or_default()
    }

    /// Waits until its routing table satisfies `done`; returns that table.
    pub fn wait_table(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[TableNode]) -> bool,
    ) -> Result<Vec<TableNode>, String> {
        let started = Instant::now();
        loop {
            let table = self.table();
            if done(&table) {
                return Ok(table);
            }
            if let Some(status) = self.proc.try_wait() {
                return Err(format!(
                    "libtorrent dht-node exited ({status}) while waiting for {what}\n{}",
                    self.report()
                ));
            }
            if started.elapsed() >= timeout {
                let report = self.report();
                return Err(format!(
                    "libtorrent dht-node {}: not {what} within {timeout:?}; table {table:?}\n{report}",
                    self.addr
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// A `get_peers` lookup for `info_hash` (hex); the peers it found.
    pub fn get_peers(&mut self, info_hash: &str, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
        let hash = info_hash.to_ascii_lowercase();
        self.proc.drain();
        let skip = self.proc.seen.len();
        self.proc.send_line(&format!("dht_get_peers {hash}"))?;
        // Lines read before the command (the first `skip` that `pick` sees) may hold an older reply.
        let mut seen = 0;
        self.proc.try_wait_line("dht_get_peers_reply", timeout, |line| {
            seen += 1;
            if seen <= skip {
                return None;
            }
            let v: Value = serde_json::from_str(line).ok()?;
            (v["event"] == "dht_get_peers_reply" && v["info_hash"] == hash.as_str()).then(|| {
                v["peers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str()?.parse::<SocketAddr>().ok())
                    .collect::<Vec<_>>()
            })
        })
    }

    pub fn report(&mut self) -> String {
        format!(
            "--- libtorrent dht-node at {} (id {}) ---\n{}",
            self.addr,
            self.node_id,
            self.proc.report()
        )
    }
}

impl Drop for LtDhtNode {
    fn drop(&mut self) {
        self.proc.kill();
    }
}

/// A node in aria2's saved routing table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedNode {
    pub addr: SocketAddr,
    /// Its node id, lowercase hex.
    pub id: String,
}

/// The nodes of an aria2 `dht.dat` (aria2's DHTRoutingTableSerializer, format 2 version 3): an 8-byte
/// header (`a1 a2 02 00 00 00 00 03`), the save time (8), 8 reserved, the local id (20), 4 reserved, the
/// node count (4, big-endian), 4 reserved; then per node 56 bytes: the compact address length (1), 7
/// reserved, the compact address (6 for IPv4) padded to 24, the node id (20), 4 reserved.
pub fn parse_aria2_dht_dat(bytes: &[u8]) -> Result<Vec<SavedNode>, String> {
    const HEADER: usize = 56;
    const NODE: usize = 56;
    let head = bytes
        .get(..HEADER)
        .ok_or_else(|| format!("dht.dat: {} bytes, shorter than its header", bytes.len()))?;
    if head[..3] != [0xa1, 0xa2, 0x02] {
        return Err(format!("dht.dat: not aria2's format 2: {:02x?}", &head[..8]));
    }
    let count = u32::from_be_bytes(head[48..52].try_into().unwrap()) as usize;
    let body = &bytes[HEADER..];
    if body.len() != count * NODE {
        return Err(format!(
            "dht.dat: {count} nodes announced, {} bytes of nodes (want {})",
            body.len(),
            count * NODE
        ));
    }
    body.chunks(NODE)
        .map(|n| {
            if n[0] != 6 {
                return Err(format!("dht.dat: compact length {} (IPv4 wanted)", n[0]));
            }
            let c = &n[8..14];
            let addr = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                u16::from_be_bytes([c[4], c[5]]),
            );
            let id = n[32..52].iter().map(|b| format!("{b:02x}")).collect();
            Ok(SavedNode { addr, id })
        })
        .collect()
}

/// Reads and parses aria2's `dht.dat` at `path`.
pub fn read_aria2_dht_dat(path: &Path) -> Result<Vec<SavedNode>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_aria2_dht_dat(&bytes)
}
