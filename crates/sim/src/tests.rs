use super::*;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

/// Sends `count` numbered pings to `peer`, one every 10 ms; answers pings with pongs; reports pongs.
#[derive(Debug, Default)]
struct Pinger {
    peer: Option<SocketAddr>,
    count: u32,
    sent: u32,
    next: Duration,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<(u32, Duration)>,
}

impl Node for Pinger {
    type Event = (u32, Duration);
    fn handle_packet(&mut self, now: Duration, from: SocketAddr, data: &[u8]) {
        match data {
            [b'p', rest @ ..] => {
                let mut v = vec![b'o'];
                v.extend_from_slice(rest);
                self.out.push_back((from, v));
            }
            [b'o', a, b, c, d] => self.events.push_back((u32::from_be_bytes([*a, *b, *c, *d]), now)),
            _ => {}
        }
    }
    fn handle_timeout(&mut self, now: Duration) {
        if let Some(peer) = self.peer {
            if self.sent < self.count && now >= self.next {
                let mut v = vec![b'p'];
                v.extend_from_slice(&self.sent.to_be_bytes());
                self.out.push_back((peer, v));
                self.sent += 1;
                self.next = now + Duration::from_millis(10);
            }
        }
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<(u32, Duration)> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Duration> {
        (self.peer.is_some() && self.sent < self.count).then_some(self.next)
    }
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(20, 0, 0, i)), 6881)
}

fn pair(seed: u64, model: LinkModel, count: u32) -> (Sim<Pinger>, NodeIdx) {
    let mut sim = Sim::new(seed, model);
    sim.add_node(addr(2), Pinger::default()).unwrap();
    let a = sim
        .add_node(
            addr(1),
            Pinger {
                peer: Some(addr(2)),
                count,
                ..Pinger::default()
            },
        )
        .unwrap();
    (sim, a)
}

#[test]
fn round_trip_takes_twice_both_latencies() {
    let model = LinkModel {
        latency_min: Duration::from_millis(20),
        latency_max: Duration::from_millis(20),
        ..LinkModel::default()
    };
    let (mut sim, a) = pair(1, model, 3);
    sim.run_until(Duration::from_secs(1));
    let evs = sim.take_events();
    let got: Vec<(u32, Duration)> = evs
        .iter()
        .map(|(_, n, e)| {
            assert_eq!(*n, a);
            *e
        })
        .collect();
    // Pings leave at 0, 10 and 20 ms; each way is 20 + 20 ms.
    assert_eq!(
        got,
        vec![
            (0, Duration::from_millis(80)),
            (1, Duration::from_millis(90)),
            (2, Duration::from_millis(100))
        ]
    );
    assert_eq!(sim.stats().sent, 6);
    assert_eq!(sim.stats().delivered, 6);
}

#[test]
fn loss_drops_about_the_given_share_and_runs_are_repeatable() {
    let model = LinkModel {
        loss: 0.05,
        ..LinkModel::default()
    };
    let run = |seed| {
        let (mut sim, _) = pair(seed, model.clone(), 2000);
        sim.run_until(Duration::from_secs(60));
        (sim.stats(), sim.take_events().len())
    };
    let (stats, pongs) = run(7);
    assert_eq!(run(7), (stats, pongs), "same seed, same run");
    // 2000 pings, each way lost with p = 0.05: about 1805 pongs.
    assert!((1740..=1870).contains(&pongs), "{pongs} pongs");
    assert_eq!(stats.lost + stats.delivered, stats.sent);
}

#[test]
fn upload_capacity_spaces_packets_out() {
    let model = LinkModel {
        latency_min: Duration::ZERO,
        latency_max: Duration::ZERO,
        upload: Some(100), // 100 bytes per second: a 5-byte ping takes 50 ms to leave
        ..LinkModel::default()
    };
    let (mut sim, _) = pair(1, model, 2);
    sim.run_until(Duration::from_secs(2));
    let got: Vec<Duration> = sim.take_events().into_iter().map(|(_, _, (_, t))| t).collect();
    // ping 0 leaves at 50 ms, its pong at 100 ms; ping 1 (queued at 10 ms) leaves at 100 ms, pong at 150 ms.
    assert_eq!(got, vec![Duration::from_millis(100), Duration::from_millis(150)]);
}

#[test]
fn killed_node_receives_nothing_and_address_is_reusable() {
    let (mut sim, _) = pair(1, LinkModel::default(), 100);
    sim.run_until(Duration::from_millis(300));
    let before = sim.take_events().len();
    assert!(before > 0);
    sim.kill(NodeIdx(0));
    sim.run_until(Duration::from_secs(5));
    let late = sim.take_events().len();
    // Only pongs already in flight when it died can still arrive.
    assert!(late <= 20, "{late} pongs after the peer left");
    assert!(sim.stats().unroutable > 0);
    assert!(
        sim.add_node(addr(2), Pinger::default()).is_ok(),
        "a dead node's address can be taken again"
    );
    assert!(
        sim.add_node(addr(2), Pinger::default()).is_err(),
        "a live node's address cannot"
    );
}

#[test]
fn commands_from_the_owner_are_sent_at_once() {
    let mut sim: Sim<Pinger> = Sim::new(3, LinkModel::default());
    let a = sim.add_node(addr(1), Pinger::default()).unwrap();
    sim.add_node(addr(2), Pinger::default()).unwrap();
    sim.run_until(Duration::from_secs(1));
    sim.with_node(a, |n, _| n.out.push_back((addr(2), b"p\0\0\0\x09".to_vec())))
        .unwrap();
    let done = sim.run_until_or(Duration::from_secs(2), |s| !s.events.is_empty());
    assert!(done);
    assert_eq!(sim.take_events()[0].2 .0, 9);
}
