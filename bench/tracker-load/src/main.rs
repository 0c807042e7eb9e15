//! Helper for `bench/tracker.sh`.
//!
//! ```text
//! tracker-load aquatic-hashes N          # the first N info-hashes aquatic_udp_load_test 0.9 announces (hex)
//! tracker-load hashes SEED N             # N deterministic info-hashes from SEED (hex, one a line)
//! tracker-load fill ADDR TORRENTS PEERS [SEED] [MAX_SECONDS]
//! tracker-load ping ADDR [MAX_SECONDS]   # exit 0 once ADDR answers a BEP 15 connect
//! ```
//!
//! `fill` drives PEERS distinct peers over TORRENTS torrents (the torrents of `hashes SEED TORRENTS`) into a
//! BEP 15 UDP tracker at ADDR: peer `i` announces to torrent `i % TORRENTS` with its own peer id, its own
//! port within the torrent (`1024 + i / TORRENTS`) and `event=started`, from one of a few sockets. Requests
//! go out in windows; unanswered ones are sent again (UDP drops under load). It prints `key=value` lines:
//! `answered`, `failed` (never answered or refused), `errors` (error responses), `held` (seeders plus
//! leechers summed over a scrape of every torrent afterwards: what the tracker says it holds),
//! `scrape_failed` and `seconds` (the announces only). Only loopback addresses are accepted; every wait is
//! bounded by MAX_SECONDS (default 600).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// aquatic_udp_load_test 0.9's seed for its info-hash list (`InfoHashDist::new`).
const AQUATIC_HASH_SEED: u64 = 0xc3aa_8be6_17b3_acce;
const PROTOCOL_ID: u64 = 0x41727101980;
const SOCKETS: usize = 8;
const MIN_WINDOW: usize = 32;
const MAX_WINDOW: usize = 4096;
/// A window's attempt ends when nothing has come back for this long.
const IDLE: Duration = Duration::from_millis(30);
/// Info-hashes per scrape request (aquatic_udp allows 70, opentracker fits many more in a datagram).
const SCRAPE_BATCH: usize = 50;
const TRIES: usize = 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Same draws as aquatic_udp_load_test: 20 × `rng.gen::<u8>()` per hash, from a rand 0.8 SmallRng.
fn hash_list(seed: u64, n: usize) -> Vec<[u8; 20]> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut h = [0u8; 20];
            for b in h.iter_mut() {
                *b = rng.gen();
            }
            h
        })
        .collect()
}

fn print_hashes(seed: u64, n: usize) {
    use std::io::Write;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for h in hash_list(seed, n) {
        let _ = writeln!(out, "{}", hex(&h));
    }
}

struct Conn {
    socket: UdpSocket,
    id: u64,
}

fn connect(socket: &UdpSocket, deadline: Instant) -> Result<u64, String> {
    let mut buf = [0u8; 64];
    socket.set_nonblocking(false).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    for attempt in 0u32..50 {
        if Instant::now() > deadline {
            break;
        }
        let tid = 0xC000_0000u32 | attempt;
        let mut req = [0u8; 16];
        req[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
        req[12..16].copy_from_slice(&tid.to_be_bytes());
        socket.send(&req).map_err(|e| format!("send connect: {e}"))?;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(200) {
            match socket.recv(&mut buf) {
                Ok(n) if n >= 16 && buf[..4] == [0, 0, 0, 0] && buf[4..8] == tid.to_be_bytes() => {
                    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
                    return Ok(u64::from_be_bytes(buf[8..16].try_into().unwrap_or_default()));
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => return Err(format!("recv connect: {e}")),
            }
        }
    }
    Err("no answer to connect".into())
}

/// A few sockets to one tracker, with connection ids, sending requests in windows that adapt to losses.
struct Pool {
    conns: Vec<Conn>,
    last_connect: Instant,
    deadline: Instant,
    window: usize,
    errors: usize,
}

impl Pool {
    fn new(addr: SocketAddr, deadline: Instant) -> Result<Self, String> {
        let mut conns = Vec::new();
        for _ in 0..SOCKETS {
            let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            socket.connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            let id = connect(&socket, deadline)?;
            conns.push(Conn { socket, id });
        }
        Ok(Pool {
            conns,
            last_connect: Instant::now(),
            deadline,
            window: 256,
            errors: 0,
        })
    }

    /// Send requests `0..count` (request `j` built by `build(j, connection id, buffer)` and sent from
    /// socket `j % SOCKETS` with transaction id `tag | j`); `reply(j, packet)` gets each first answer and
    /// says whether it was a success. Returns (successes, requests never answered or refused).
    fn run(
        &mut self,
        count: usize,
        tag: u32,
        mut build: impl FnMut(usize, u64, &mut Vec<u8>),
        mut reply: impl FnMut(usize, &[u8]) -> bool,
    ) -> Result<(usize, usize), String> {
        let (mut ok, mut failed) = (0usize, 0usize);
        let mut buf = [0u8; 4096];
        let mut req = Vec::with_capacity(4096);
        let mut next = 0usize;
        while next < count {
            if Instant::now() > self.deadline {
                return Err(format!("gave up at request {next} of {count}: out of time"));
            }
            // Connection ids age out (BEP 15: two minutes): take new ones now and then.
            if self.last_connect.elapsed() > Duration::from_secs(30) {
                for c in self.conns.iter_mut() {
                    c.id = connect(&c.socket, self.deadline)?;
                }
                self.last_connect = Instant::now();
            }
            let first = next;
            let len = self.window.min(count - next);
            next += len;
            let mut done = vec![false; len];
            let mut left = len;
            for attempt in 0..TRIES {
                if left == 0 {
                    break;
                }
                for slot in (0..len).filter(|&s| !done[s]) {
                    let j = first + slot;
                    let c = &self.conns[j % SOCKETS];
                    req.clear();
                    build(j, c.id, &mut req);
                    // A full send buffer is a loss like any other: the next attempt covers it.
                    let _ = c.socket.send(&req);
                }
                let sent_at = Instant::now();
                let mut last_rx = sent_at;
                while left > 0 && sent_at.elapsed() < Duration::from_millis(500) && last_rx.elapsed() < IDLE {
                    let mut got = false;
                    for c in &self.conns {
                        loop {
                            match c.socket.recv(&mut buf) {
                                Ok(n) if n >= 8 => {
                                    got = true;
                                    let tid = u32::from_be_bytes(buf[4..8].try_into().unwrap_or_default());
                                    if tid & 0x8000_0000 != tag {
                                        continue;
                                    }
                                    let j = (tid & 0x7fff_ffff) as usize;
                                    let Some(slot) = j.checked_sub(first).filter(|s| *s < len) else {
                                        continue; // a late answer from an earlier window
                                    };
                                    if done[slot] {
                                        continue;
                                    }
                                    let packet = &buf[..n];
                                    if packet[..4] == 3u32.to_be_bytes() {
                                        if self.errors < 3 {
                                            eprintln!(
                                                "tracker-load: error response: {}",
                                                String::from_utf8_lossy(&packet[8..])
                                            );
                                        }
                                        self.errors += 1;
                                        failed += 1;
                                    } else if reply(j, packet) {
                                        ok += 1;
                                    } else {
                                        failed += 1;
                                    }
                                    done[slot] = true;
                                    left -= 1;
                                }
                                Ok(_) => {}
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) => return Err(format!("recv: {e}")),
                            }
                        }
                    }
                    if got {
                        last_rx = Instant::now();
                    } else {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
                // Grow the window while a whole window comes back at the first attempt, halve it on loss.
                if attempt == 0 {
                    self.window = if left == 0 {
                        (self.window * 2).min(MAX_WINDOW)
                    } else {
                        (self.window / 2).max(MIN_WINDOW)
                    };
                }
            }
            failed += left;
        }
        Ok((ok, failed))
    }
}

fn fill(addr: SocketAddr, torrents: usize, peers: usize, seed: u64, max_secs: u64) -> Result<(), String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(max_secs);
    let hashes = hash_list(seed, torrents);
    let mut pool = Pool::new(addr, deadline)?;

    // Announces: peer i, torrent i % torrents, the k-th peer of that torrent with k = i / torrents.
    let (answered, failed) = pool.run(
        peers,
        0,
        |i, cid, req| {
            let t = i % torrents;
            let k = i / torrents;
            req.extend_from_slice(&cid.to_be_bytes());
            req.extend_from_slice(&1u32.to_be_bytes());
            req.extend_from_slice(&(i as u32).to_be_bytes());
            req.extend_from_slice(&hashes[t]);
            // Peer id: a client prefix, then the peer's index.
            req.extend_from_slice(b"-BW0001-");
            req.extend_from_slice(format!("{i:012}").as_bytes());
            req.extend_from_slice(&0u64.to_be_bytes()); // downloaded
            let left: u64 = if i % 4 == 0 { 0 } else { 1 << 20 };
            req.extend_from_slice(&left.to_be_bytes());
            req.extend_from_slice(&0u64.to_be_bytes()); // uploaded
            req.extend_from_slice(&2u32.to_be_bytes()); // started
            req.extend_from_slice(&0u32.to_be_bytes()); // ip: the sender's
            req.extend_from_slice(&(i as u32).to_be_bytes()); // key
            req.extend_from_slice(&0i32.to_be_bytes()); // numwant 0
            req.extend_from_slice(&(1024 + (k % 64000) as u16).to_be_bytes()); // port, distinct in the torrent
        },
        |_, p| p[..4] == 1u32.to_be_bytes() && p.len() >= 20,
    )?;
    let fill_secs = started.elapsed().as_secs_f64();

    // Scrapes of every torrent: what the tracker says it holds.
    let groups = torrents.div_ceil(SCRAPE_BATCH);
    let mut held = 0u64;
    let (_, scrape_failed) = pool.run(
        groups,
        0x8000_0000,
        |g, cid, req| {
            req.extend_from_slice(&cid.to_be_bytes());
            req.extend_from_slice(&2u32.to_be_bytes());
            req.extend_from_slice(&(0x8000_0000 | g as u32).to_be_bytes());
            for h in &hashes[g * SCRAPE_BATCH..torrents.min((g + 1) * SCRAPE_BATCH)] {
                req.extend_from_slice(h);
            }
        },
        |g, p| {
            let n = torrents.min((g + 1) * SCRAPE_BATCH) - g * SCRAPE_BATCH;
            if p[..4] != 2u32.to_be_bytes() || p.len() < 8 + 12 * n {
                return false;
            }
            for e in p[8..8 + 12 * n].chunks_exact(12) {
                let seeders = u32::from_be_bytes(e[..4].try_into().unwrap_or_default());
                let leechers = u32::from_be_bytes(e[8..12].try_into().unwrap_or_default());
                held += u64::from(seeders) + u64::from(leechers);
            }
            true
        },
    )?;
    println!("answered={answered}");
    println!("failed={failed}");
    println!("errors={}", pool.errors);
    println!("held={held}");
    println!("scrape_failed={scrape_failed}");
    println!("seconds={fill_secs:.1}");
    Ok(())
}

fn num(s: Option<&String>, what: &str) -> Result<u64, String> {
    let s = s.ok_or_else(|| format!("missing {what}"))?;
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("bad {what}: {s}"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("aquatic-hashes") => {
            print_hashes(AQUATIC_HASH_SEED, num(args.get(1), "N")? as usize);
            Ok(())
        }
        Some("hashes") => {
            print_hashes(num(args.get(1), "SEED")?, num(args.get(2), "N")? as usize);
            Ok(())
        }
        Some("fill") => {
            let addr: SocketAddr = args
                .get(1)
                .ok_or("missing ADDR")?
                .parse()
                .map_err(|e| format!("ADDR: {e}"))?;
            if !addr.ip().is_loopback() {
                return Err("fill only targets loopback addresses".into());
            }
            let torrents = num(args.get(2), "TORRENTS")? as usize;
            let peers = num(args.get(3), "PEERS")? as usize;
            let seed = args.get(4).map_or(Ok(1), |_| num(args.get(4), "SEED"))?;
            let max_secs = args.get(5).map_or(Ok(600), |_| num(args.get(5), "MAX_SECONDS"))?;
            if torrents == 0 || peers == 0 || peers > u32::MAX as usize {
                return Err("TORRENTS and PEERS must be positive (PEERS < 2^32)".into());
            }
            fill(addr, torrents, peers, seed, max_secs)
        }
        Some("ping") => {
            let addr: SocketAddr = args
                .get(1)
                .ok_or("missing ADDR")?
                .parse()
                .map_err(|e| format!("ADDR: {e}"))?;
            let max_secs = args.get(2).map_or(Ok(10), |_| num(args.get(2), "MAX_SECONDS"))?;
            let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            socket.connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(max_secs);
            loop {
                match connect(&socket, deadline) {
                    Ok(_) => return Ok(()),
                    // Nothing listening yet: ICMP port unreachable comes back as a receive error.
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => return Err(format!("{addr}: {e}")),
                }
            }
        }
        _ => Err("usage: tracker-load aquatic-hashes N | hashes SEED N | fill ADDR TORRENTS PEERS [SEED] [MAX_SECONDS] | ping ADDR [MAX_SECONDS]".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracker-load: {e}");
            ExitCode::FAILURE
        }
    }
}
