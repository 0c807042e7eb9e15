#![allow(dead_code)]
//! Helpers shared by the node tests: a seeded RNG, hand-made queries, and a single node poked directly.

use std::net::SocketAddr;

use dht::krpc::{decode, Body, Message, Query, QueryKind, Response};
use dht::{Config, Dht, NodeId, Time, Transmit};
use rand::rngs::SmallRng;
use rand::SeedableRng;

pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

pub fn node(config: Config, bind: &str, seed: u64) -> Dht<SmallRng> {
    Dht::new(config, bind.parse().unwrap(), rng(seed), Time::ZERO)
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A query as another node would send it (`t` = "aa", no `v`).
pub fn query(id: NodeId, kind: QueryKind) -> Vec<u8> {
    Message {
        transaction: b"aa".to_vec(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query { id, kind }),
    }
    .encode()
}

pub fn drain(node: &mut Dht<SmallRng>) -> Vec<Transmit> {
    std::iter::from_fn(|| node.poll_transmit()).collect()
}

/// Send `packet` from `from` and return the node's reply to `from` (other packets are dropped).
pub fn ask(node: &mut Dht<SmallRng>, now: Time, from: SocketAddr, packet: &[u8]) -> Option<(Message, usize)> {
    node.handle_packet(now, from, packet);
    let replies: Vec<Transmit> = drain(node).into_iter().filter(|t| t.to == from).collect();
    let reply = replies
        .into_iter()
        .find(|t| decode(&t.data).is_ok_and(|m| !matches!(m.body, Body::Query(_))))?;
    Some((decode(&reply.data).unwrap(), reply.data.len()))
}

pub fn response(m: &Message) -> &Response {
    match &m.body {
        Body::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

/// A response to query `q` (decoded) from `id`.
pub fn answer(q: &Message, r: Response, ip: Option<SocketAddr>) -> Vec<u8> {
    Message {
        transaction: q.transaction.clone(),
        version: Some(b"XX\x00\x01".to_vec()),
        ip,
        read_only: false,
        body: Body::Response(r),
    }
    .encode()
}
