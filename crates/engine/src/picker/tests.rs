//! Behaviour tests of the piece picker: exact, in virtual time, with seeded RNGs.

use super::*;
use metainfo::Geometry;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const K16: u32 = BLOCK_SIZE;

fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

fn at(ms: u64) -> Time {
    Time(std::time::Duration::from_millis(ms))
}

/// `pieces` pieces of `blocks` full blocks each.
fn picker(pieces: u32, blocks: u32, config: PickerConfig) -> PiecePicker {
    let pl = blocks * K16;
    PiecePicker::uniform(pl, u64::from(pieces) * u64::from(pl), config).unwrap()
}

fn no_random_start() -> PickerConfig {
    PickerConfig {
        random_first_pieces: 0,
        ..PickerConfig::default()
    }
}

fn bits(n: u32, set: &[u32]) -> Bitfield {
    let mut b = Bitfield::new(n);
    for &i in set {
        b.set(PieceIndex(i), true).unwrap();
    }
    b
}

fn all_but(n: u32, missing: &[u32]) -> Bitfield {
    let mut b = Bitfield::full(n);
    for &i in missing {
        b.set(PieceIndex(i), false).unwrap();
    }
    b
}

fn block(index: u32, b: u32) -> BlockRequest {
    BlockRequest {
        index: PieceIndex(index),
        begin: b * K16,
        length: K16,
    }
}

/// Download piece `index` whole from `peer` (requests already made or not) and verify it.
fn complete(p: &mut PiecePicker, peer: PeerKey, index: u32) {
    let len = p.piece_len(PieceIndex(index)).unwrap();
    let mut done = None;
    for b in 0..len.div_ceil(K16) {
        let out = p.on_block_received(peer, block_request(index, len, b));
        assert_eq!(out.status, BlockStatus::Accepted);
        done = out.piece_complete;
    }
    assert_eq!(done, Some(PieceIndex(index)));
    p.on_piece_verified(PieceIndex(index), true).unwrap();
    p.check_invariants().unwrap();
}

fn pieces_of(blocks: &[BlockRequest]) -> Vec<u32> {
    let mut v: Vec<u32> = blocks.iter().map(|b| b.index.0).collect();
    v.dedup();
    v
}

#[test]
fn rarest_piece_is_picked_first() {
    // Module rule 3: "the pieces the fewest peers have" first. Piece 6 is had by one peer, piece 2 by
    // two, every other piece by three.
    for seed in 0..50 {
        let mut p = picker(8, 1, no_random_start());
        p.add_peer_bitfield(&Bitfield::full(8)).unwrap();
        p.add_peer_bitfield(&all_but(8, &[6])).unwrap();
        p.add_peer_bitfield(&all_but(8, &[2, 6])).unwrap();
        let mut r = rng(seed);
        let full = Bitfield::full(8);
        let first = p.pick(PeerKey(1), &full, 1, at(0), &mut r);
        assert_eq!(pieces_of(&first), vec![6]);
        let second = p.pick(PeerKey(1), &full, 1, at(0), &mut r);
        assert_eq!(pieces_of(&second), vec![2]);
        p.check_invariants().unwrap();
    }
}

#[test]
fn availability_follows_peers_coming_and_going() {
    let mut p = picker(4, 1, no_random_start());
    let a = bits(4, &[0, 1]);
    p.add_peer_bitfield(&a).unwrap();
    p.add_peer_bitfield(&Bitfield::full(4)).unwrap();
    p.peer_has(PieceIndex(3)).unwrap();
    p.add_seed();
    assert_eq!(
        (0..4)
            .map(|i| p.availability(PieceIndex(i)).unwrap())
            .collect::<Vec<_>>(),
        vec![3, 3, 2, 3]
    );
    p.remove_peer_bitfield(&a).unwrap();
    p.remove_seed();
    assert_eq!(
        (0..4)
            .map(|i| p.availability(PieceIndex(i)).unwrap())
            .collect::<Vec<_>>(),
        vec![1, 1, 1, 2]
    );
    assert!(p.add_peer_bitfield(&Bitfield::full(5)).is_err());
    assert!(p.peer_has(PieceIndex(4)).is_err());
    p.check_invariants().unwrap();
    // Rarest now: 0, 1, 2 tie at one peer, 3 has two.
    let got = p.pick(PeerKey(1), &Bitfield::full(4), 3, at(0), &mut rng(1));
    let mut got = pieces_of(&got);
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2]);
}

#[test]
fn ties_are_broken_randomly() {
    // Module rule 3: "ties broken at random". Pieces 0..10 are equally rare (one peer), 10..20 more
    // common: over 2000 seeds the first pick is never a common piece and each rare one comes up about
    // 200 times.
    let mut counts = [0u32; 20];
    for seed in 0..2000 {
        let mut p = picker(20, 1, no_random_start());
        p.add_peer_bitfield(&Bitfield::full(20)).unwrap();
        p.add_peer_bitfield(&bits(20, &(10..20).collect::<Vec<_>>()))
            .unwrap();
        let got = p.pick(PeerKey(1), &Bitfield::full(20), 1, at(0), &mut rng(seed));
        counts[got[0].index.0 as usize] += 1;
    }
    assert!(counts[10..].iter().all(|&c| c == 0), "{counts:?}");
    assert!(
        counts[..10].iter().all(|&c| (140..=260).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn first_pieces_are_random_until_four_complete() {
    // BEP 3: "Downloaders generally download pieces in random order"; the module: "until
    // random_first_pieces pieces are verified, new pieces are drawn at random". Piece 0 is the rarest
    // of 100; while fewer than 4 pieces are had, it is no likelier than any other.
    let setup = || {
        let mut p = picker(100, 1, PickerConfig::default());
        p.add_peer_bitfield(&Bitfield::full(100)).unwrap();
        p.add_peer_bitfield(&all_but(100, &[0])).unwrap();
        p
    };
    let full = Bitfield::full(100);
    let mut zero = 0;
    let mut seen = BTreeSet::new();
    for seed in 0..300 {
        let mut p = setup();
        let got = p.pick(PeerKey(1), &full, 1, at(0), &mut rng(seed));
        seen.insert(got[0].index.0);
        if got[0].index.0 == 0 {
            zero += 1;
        }
    }
    assert!(zero <= 12, "rarest piece picked {zero} times of 300");
    assert!(seen.len() > 80, "only {} distinct first pieces", seen.len());

    // After 4 verified pieces, rarest first takes over.
    let mut p = setup();
    let mut r = rng(7);
    for k in 0..4 {
        assert!(p.have_count() < 4);
        let got = p.pick(PeerKey(1), &full, 1, at(k), &mut r);
        complete(&mut p, PeerKey(1), got[0].index.0);
    }
    if !p.has(PieceIndex(0)) {
        let got = p.pick(PeerKey(1), &full, 1, at(9), &mut r);
        assert_eq!(pieces_of(&got), vec![0]);
    }
}

#[test]
fn partial_pieces_are_finished_first() {
    // Module rule 1: "pieces already started that still have blocks nobody was asked for, those this
    // peer already works on before the others, then the closest to complete".
    let (a, b) = (PeerKey(1), PeerKey(2));
    let mut p = picker(10, 4, no_random_start());
    let full = Bitfield::full(10);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(3);
    let first = p.pick(a, &full, 1, at(0), &mut r);
    let x = first[0].index.0;
    // Another peer continues the started piece rather than starting a new one.
    let got = p.pick(b, &full, 2, at(1), &mut r);
    assert_eq!(pieces_of(&got), vec![x]);
    assert_eq!(got.iter().map(|b| b.begin / K16).collect::<Vec<_>>(), vec![1, 2]);
    p.check_invariants().unwrap();

    // A peer lacking x starts y; then a peer with both finishes its own piece first.
    let lacks_x = all_but(10, &[x]);
    let y = p.pick(b, &lacks_x, 1, at(2), &mut r)[0].index.0;
    assert_ne!(x, y);
    let got = p.pick(b, &full, 4, at(3), &mut r);
    // b works on both; y has 3 missing, x has 1: both are b's, the closer to complete first.
    assert_eq!(pieces_of(&got), vec![x, y]);
    // Now only y has missing blocks... none: everything is requested. a gets a fresh piece.
    let got = p.pick(a, &full, 1, at(4), &mut r);
    assert!(!got.is_empty() && got[0].index.0 != x && got[0].index.0 != y);
    p.check_invariants().unwrap();
}

#[test]
fn own_partial_pieces_come_before_others() {
    let (a, b, c) = (PeerKey(1), PeerKey(2), PeerKey(3));
    let mut p = picker(10, 4, no_random_start());
    let full = Bitfield::full(10);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(5);
    let pa = p.pick(a, &full, 1, at(0), &mut r)[0].index.0;
    // b cannot take a's piece, starts its own and asks two blocks (so it is closer to complete).
    let pb = p.pick(b, &all_but(10, &[pa]), 2, at(0), &mut r)[0].index.0;
    // c works on neither: it takes the one closest to complete (pb: 2 missing).
    let got = p.pick(c, &full, 1, at(1), &mut r);
    assert_eq!(pieces_of(&got), vec![pb]);
    // a continues its own piece even though pb is closer to complete.
    let got = p.pick(a, &full, 1, at(1), &mut r);
    assert_eq!(pieces_of(&got), vec![pa]);
}

#[test]
fn sequential_mode_picks_in_order() {
    // Module: "In sequential mode (for streaming) the lowest index of a priority comes first, partial or
    // not." Random first pieces do not apply.
    let mut p = picker(10, 2, PickerConfig::default());
    p.set_mode(PickMode::Sequential);
    p.add_peer_bitfield(&Bitfield::full(10)).unwrap();
    let mut r = rng(1);
    let full = Bitfield::full(10);
    let got = p.pick(PeerKey(1), &full, 5, at(0), &mut r);
    assert_eq!(
        got.iter().map(|b| (b.index.0, b.begin / K16)).collect::<Vec<_>>(),
        vec![(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    );
    // A peer without piece 3 skips it; piece 2's remaining block comes first.
    let got = p.pick(PeerKey(2), &all_but(10, &[3]), 3, at(1), &mut r);
    assert_eq!(
        got.iter().map(|b| (b.index.0, b.begin / K16)).collect::<Vec<_>>(),
        vec![(2, 1), (4, 0), (4, 1)]
    );
    // A failed request makes its block the first again.
    assert!(p.on_request_failed(PeerKey(1), block(1, 1)));
    let got = p.pick(PeerKey(3), &full, 2, at(2), &mut r);
    assert_eq!(
        got.iter().map(|b| (b.index.0, b.begin / K16)).collect::<Vec<_>>(),
        vec![(1, 1), (3, 0)]
    );
    // Priority still rules: a high-priority piece goes first.
    p.set_piece_priority(PieceIndex(9), 7).unwrap();
    let got = p.pick(PeerKey(3), &full, 1, at(3), &mut r);
    assert_eq!(pieces_of(&got), vec![9]);
    p.check_invariants().unwrap();
    // And back to rarest first keeps state.
    p.set_mode(PickMode::RarestFirst);
    p.check_invariants().unwrap();
    assert_eq!(p.mode(), PickMode::RarestFirst);
}

#[test]
fn skipped_files_are_never_requested() {
    // Module: "A piece gets the highest priority of the files it touches, so a piece shared by a skipped
    // and a wanted file is still downloaded." Files a (40 KiB), b (100 KiB), c (20 KiB) over 32 KiB
    // pieces: a = pieces 0-1, b = 1-4, c = 4. Skipping b leaves pieces 2 and 3 unwanted.
    let g = Geometry::new(
        Version::V1,
        32 * 1024,
        &[(40 * 1024, false), (100 * 1024, false), (20 * 1024, false)],
    )
    .unwrap();
    let mut p = PiecePicker::from_geometry(&g, PickerConfig::default()).unwrap();
    assert_eq!(p.piece_count(), 5);
    p.set_file_priorities(&[4, 0, 1]).unwrap();
    assert_eq!(
        (0..5)
            .map(|i| p.piece_priority(PieceIndex(i)).unwrap())
            .collect::<Vec<_>>(),
        vec![4, 4, 0, 0, 1]
    );
    assert_eq!(p.wanted_left(), 3);
    let full = Bitfield::full(5);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(2);
    let mut asked = BTreeSet::new();
    for round in 0..20 {
        for b in p.pick(PeerKey(1), &full, 100, at(round), &mut r) {
            asked.insert(b.index.0);
            if let Some(done) = p.on_block_received(PeerKey(1), b).piece_complete {
                p.on_piece_verified(done, true).unwrap();
            }
        }
        p.check_invariants().unwrap();
    }
    assert_eq!(asked, BTreeSet::from([0, 1, 4]));
    assert!(p.is_complete());
    assert!(!p.has(PieceIndex(2)) && !p.has(PieceIndex(3)));
    assert!(!p.interested_in(&full));
    // Wanting b again makes the download incomplete again.
    p.set_file_priorities(&[4, 4, 1]).unwrap();
    assert_eq!(p.wanted_left(), 2);
    assert!(p.interested_in(&full));
    assert!(p.set_file_priorities(&[1, 2]).is_err());
    assert_eq!(
        picker(2, 1, PickerConfig::default()).set_file_priorities(&[1]),
        Err(PickerError::NoFiles)
    );
}

#[test]
fn higher_priority_pieces_come_first() {
    let mut p = picker(6, 1, no_random_start());
    p.add_peer_bitfield(&Bitfield::full(6)).unwrap();
    p.add_peer_bitfield(&bits(6, &[0])).unwrap();
    p.set_piece_priorities(&[1, 4, 4, 200, 4, 0]).unwrap();
    assert_eq!(p.piece_priority(PieceIndex(3)), Some(MAX_PRIORITY));
    let got = p.pick(PeerKey(1), &Bitfield::full(6), 6, at(0), &mut rng(0));
    let order = pieces_of(&got);
    assert_eq!(order[0], 3);
    assert_eq!(*order.last().unwrap(), 0); // lowest priority last, though the rarest
    assert_eq!(order.len(), 5); // piece 5 is skipped
    assert!(p.set_piece_priorities(&[1]).is_err());
}

#[test]
fn v2_piece_lengths_end_at_each_file() {
    // BEP 52: "The last piece of each file may be shorter than the specified piece length."
    let pl = 64 * 1024;
    let g = Geometry::new(Version::V2, pl, &[(pl + 100, false), (0, false), (20_000, false)]).unwrap();
    let p = PiecePicker::from_geometry(&g, PickerConfig::default()).unwrap();
    assert_eq!(p.piece_count(), 3);
    for i in 0..3 {
        assert_eq!(
            u64::from(p.piece_len(PieceIndex(i)).unwrap()),
            g.piece(i).unwrap().len(),
            "piece {i}"
        );
    }
    assert_eq!(p.piece_len(PieceIndex(1)), Some(100));
    // Hybrid: pad files are part of v1 pieces; a pad-only span touches no wanted piece by itself.
    let g = Geometry::new(
        Version::Hybrid,
        16 * 1024,
        &[(10, false), (16 * 1024 - 10, true), (5, false)],
    )
    .unwrap();
    let p = PiecePicker::from_geometry(&g, PickerConfig::default()).unwrap();
    assert_eq!(p.piece_len(PieceIndex(0)), Some(16 * 1024));
    assert_eq!(p.piece_len(PieceIndex(1)), Some(5));
    assert_eq!(p.wanted_left(), 2);
}

#[test]
fn the_last_block_of_a_short_piece_is_short() {
    let mut p =
        PiecePicker::uniform(3 * K16, u64::from(3 * K16 + K16 + 100), PickerConfig::default()).unwrap();
    assert_eq!(p.piece_count(), 2);
    let full = Bitfield::full(2);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(0);
    let mut got = p.pick(PeerKey(1), &full, 10, at(0), &mut r);
    got.sort();
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[4],
        BlockRequest {
            index: PieceIndex(1),
            begin: K16,
            length: 100
        }
    );
    // Blocks that do not match the torrent's are refused.
    let bad = BlockRequest {
        index: PieceIndex(1),
        begin: K16,
        length: K16,
    };
    assert_eq!(p.on_block_received(PeerKey(1), bad).status, BlockStatus::Invalid);
    let odd = BlockRequest {
        index: PieceIndex(0),
        begin: 7,
        length: K16,
    };
    assert_eq!(p.on_block_received(PeerKey(1), odd).status, BlockStatus::Invalid);
    assert_eq!(
        p.on_block_received(PeerKey(1), block(2, 0)).status,
        BlockStatus::Invalid
    );
    assert!(!p.on_request_failed(PeerKey(1), bad));
    p.check_invariants().unwrap();
    assert!(PiecePicker::new(2, |i| i, PickerConfig::default()).is_err());
}

#[test]
fn endgame_requests_remaining_blocks_from_several_peers_and_cancels_the_rest() {
    // BEP 3: "once requests for all pieces a given downloader doesn't have yet are currently pending, it
    // sends requests for everything to everyone it's downloading from. To keep this from becoming
    // horribly inefficient, it sends cancels to everyone else every time a piece arrives."
    let (a, b, c) = (PeerKey(1), PeerKey(2), PeerKey(3));
    let mut p = picker(
        2,
        2,
        PickerConfig {
            endgame_min_age: std::time::Duration::ZERO,
            ..PickerConfig::default()
        },
    );
    let full = Bitfield::full(2);
    p.add_peer_bitfield(&full).unwrap();
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(4);
    assert!(!p.is_endgame());
    let from_a = p.pick(a, &full, 10, at(0), &mut r);
    assert_eq!(from_a.len(), 4);
    assert!(p.is_endgame());
    // b gets every block too, oldest requests first; at most 2 peers per block, so c gets nothing.
    let mut from_b = p.pick(b, &full, 10, at(5), &mut r);
    assert_eq!(from_b.len(), 4);
    from_b.sort();
    let mut sorted_a = from_a.clone();
    sorted_a.sort();
    assert_eq!(from_b, sorted_a);
    assert!(p.pick(c, &full, 10, at(6), &mut r).is_empty());
    // a peer is never asked twice for the same block.
    assert!(p.pick(a, &full, 10, at(7), &mut r).is_empty());
    p.check_invariants().unwrap();

    // a's copy arrives first: b gets a cancel, and its late copy is a duplicate.
    let first = from_a[0];
    let out = p.on_block_received(a, first);
    assert_eq!(out.status, BlockStatus::Accepted);
    assert_eq!(out.cancels, vec![(b, first)]);
    assert_eq!(p.in_flight(b), 3);
    assert_eq!(p.on_block_received(b, first).status, BlockStatus::Duplicate);
    // b delivers another block first: a gets the cancel.
    let second = from_a[1];
    let out = p.on_block_received(b, second);
    assert_eq!(out.cancels, vec![(a, second)]);
    assert_eq!(out.piece_complete, Some(first.index));
    p.check_invariants().unwrap();
    // a leaves: b still has the last blocks in flight, which stay requested.
    p.peer_gone(a);
    assert_eq!(p.in_flight(b), 2);
    p.check_invariants().unwrap();
    // A free slot opens when b's request is rejected; c can now ask.
    assert!(p.on_request_failed(b, from_a[2]));
    let got = p.pick(c, &full, 10, at(8), &mut r);
    assert!(got.contains(&from_a[2]) && got.contains(&from_a[3]));
    p.check_invariants().unwrap();
}

#[test]
fn endgame_is_off_with_one_request_per_block() {
    let mut p = picker(
        1,
        2,
        PickerConfig {
            endgame_max_requests: 1,
            ..PickerConfig::default()
        },
    );
    let full = Bitfield::full(1);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(0);
    assert_eq!(p.pick(PeerKey(1), &full, 4, at(0), &mut r).len(), 2);
    assert!(p.pick(PeerKey(2), &full, 4, at(0), &mut r).is_empty());
}

#[test]
fn failed_piece_is_requested_again_and_contributors_are_reported() {
    // Module invariant 1: "A piece is in have only after on_piece_verified with ok"; a failed piece's
    // blocks all go back to missing, and the peers who sent them are named for smart-ban.
    let (a, b, c) = (PeerKey(1), PeerKey(2), PeerKey(3));
    let mut p = picker(1, 3, PickerConfig::default());
    let full = Bitfield::full(1);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(0);
    let ga = p.pick(a, &full, 2, at(0), &mut r);
    let gb = p.pick(b, &full, 1, at(0), &mut r);
    assert_eq!((ga.len(), gb.len()), (2, 1));
    assert_eq!(
        p.on_piece_verified(PieceIndex(0), false),
        Err(PickerError::NotComplete { index: 0 })
    );
    for &blk in &ga {
        assert_eq!(p.on_block_received(a, blk).piece_complete, None);
    }
    assert_eq!(p.on_block_received(b, gb[0]).piece_complete, Some(PieceIndex(0)));
    assert!(!p.has(PieceIndex(0)));
    let who = p.on_piece_verified(PieceIndex(0), false).unwrap();
    assert_eq!(
        who.blocks,
        vec![(block(0, 0), a), (block(0, 1), a), (block(0, 2), b)]
    );
    assert_eq!(who.peers(), vec![a, b]);
    assert!(!p.has(PieceIndex(0)) && !p.is_complete());
    p.check_invariants().unwrap();
    // Requested again, from the start.
    let gc = p.pick(c, &full, 5, at(1), &mut r);
    assert_eq!(gc, vec![block(0, 0), block(0, 1), block(0, 2)]);
    for &blk in &gc {
        p.on_block_received(c, blk);
    }
    let who = p.on_piece_verified(PieceIndex(0), true).unwrap();
    assert_eq!(who.peers(), vec![c]);
    assert!(p.has(PieceIndex(0)) && p.is_complete());
    // Nothing of a verified piece is asked for or accepted again.
    assert!(p.pick(a, &full, 5, at(2), &mut r).is_empty());
    assert_eq!(p.on_block_received(a, block(0, 0)).status, BlockStatus::Duplicate);
    p.check_invariants().unwrap();
}

#[test]
fn peer_gone_frees_its_blocks() {
    // Module rule: a request void because its peer left "can be picked again".
    let (a, b) = (PeerKey(1), PeerKey(2));
    let mut p = picker(3, 4, PickerConfig::default());
    let full = Bitfield::full(3);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(9);
    let ga = p.pick(a, &full, 6, at(0), &mut r);
    assert_eq!(ga.len(), 6);
    // One block arrived; the other five go back.
    p.on_block_received(a, ga[0]);
    let mut dropped = p.peer_gone(a);
    dropped.sort();
    let mut expected = ga[1..].to_vec();
    expected.sort();
    assert_eq!(dropped, expected);
    assert_eq!(p.in_flight(a), 0);
    p.check_invariants().unwrap();
    let gb = p.pick(b, &full, 5, at(1), &mut r);
    let mut gb_sorted = gb.clone();
    gb_sorted.sort();
    assert_eq!(
        gb_sorted, expected,
        "the freed blocks are picked first (partial pieces first)"
    );
    // A choke (release_peer) does the same but keeps the peer known.
    let released = p.release_peer(b);
    assert_eq!(released.len(), 5);
    assert_eq!(p.in_flight(b), 0);
    p.check_invariants().unwrap();
    // A block that arrives after its request was dropped is still welcome.
    assert_eq!(p.on_block_received(b, gb[0]).status, BlockStatus::Accepted);
    p.check_invariants().unwrap();
}

#[test]
fn never_requests_a_block_the_peer_lacks() {
    // Module: "Never a block of a piece the peer lacks, a piece we have, a skipped piece, or a block
    // already requested from this peer." Random swarms, both modes, through endgame to the end.
    for seed in 0..40u64 {
        let mut r = rng(seed);
        let n = r.random_range(1..40u32);
        let blocks = r.random_range(1..4u32);
        let mut p = picker(n, blocks, PickerConfig::default());
        if seed % 2 == 1 {
            p.set_mode(PickMode::Sequential);
        }
        let mut prios: Vec<u8> = (0..n).map(|_| r.random_range(0..8u8)).collect();
        prios[0] = 1;
        p.set_piece_priorities(&prios).unwrap();
        let peers: Vec<Bitfield> = (0..5)
            .map(|k| {
                let mut b = Bitfield::new(n);
                for i in 0..n {
                    if k == 0 || r.random_bool(0.4) {
                        b.set(PieceIndex(i), true).unwrap();
                    }
                }
                b
            })
            .collect();
        for bf in &peers {
            p.add_peer_bitfield(bf).unwrap();
        }
        let mut round = 0;
        while !p.is_complete() {
            round += 1;
            assert!(round < 1000, "no progress");
            for (k, bf) in peers.iter().enumerate() {
                let peer = PeerKey(k as u32);
                let before = p.requests_of(peer);
                let got = p.pick(peer, bf, r.random_range(1..20), at(round), &mut r);
                for b in &got {
                    assert!(bf.get(b.index), "asked peer {k} for piece {} it lacks", b.index.0);
                    assert!(!p.has(b.index));
                    assert!(p.piece_priority(b.index).unwrap() > 0);
                    assert!(!before.contains(b));
                }
                p.check_invariants().unwrap();
            }
            // Each peer answers about half of its requests, rejects a few.
            for k in 0..peers.len() {
                let peer = PeerKey(k as u32);
                for b in p.requests_of(peer) {
                    match r.random_range(0..10) {
                        0 => {
                            p.on_request_failed(peer, b);
                        }
                        1..=5 => {
                            if let Some(done) = p.on_block_received(peer, b).piece_complete {
                                p.on_piece_verified(done, true).unwrap();
                            }
                        }
                        _ => {}
                    }
                }
            }
            p.check_invariants().unwrap();
        }
    }
}

#[test]
fn seeds_supply_pieces_no_bitfield_peer_has() {
    let mut p = picker(
        4,
        1,
        PickerConfig {
            endgame_min_age: std::time::Duration::ZERO,
            ..no_random_start()
        },
    );
    p.add_seed();
    p.add_peer_bitfield(&bits(4, &[1])).unwrap();
    let mut r = rng(0);
    // A peer with piece 1 only gets piece 1.
    assert_eq!(
        pieces_of(&p.pick(PeerKey(1), &bits(4, &[1]), 4, at(0), &mut r)),
        vec![1]
    );
    // The seed gets the rest, the pieces only it has; then (endgame) a copy of piece 1's block.
    let got = p.pick(PeerKey(2), &Bitfield::full(4), 4, at(0), &mut r);
    let got = pieces_of(&got);
    let mut first = got[..3].to_vec();
    first.sort_unstable();
    assert_eq!(first, vec![0, 2, 3]);
    assert_eq!(got[3], 1);
    assert!(p.is_endgame());
}

#[test]
fn resume_data_and_written_blocks() {
    let mut p = picker(3, 2, PickerConfig::default());
    p.mark_have(PieceIndex(1)).unwrap();
    p.mark_have(PieceIndex(1)).unwrap();
    assert_eq!((p.have_count(), p.wanted_left()), (1, 2));
    assert!(p.mark_have(PieceIndex(3)).is_err());
    let full = Bitfield::full(3);
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(0);
    let got = p.pick(PeerKey(1), &full, 2, at(0), &mut r);
    assert!(got.iter().all(|b| b.index != PieceIndex(1)));
    assert_eq!(
        p.mark_have(got[0].index),
        Err(PickerError::InFlight {
            index: got[0].index.0
        })
    );
    assert_eq!(p.on_block_written(got[0]), None); // not received yet
    p.on_block_received(PeerKey(1), got[0]);
    assert_eq!(p.on_block_written(got[0]), None);
    p.on_block_received(PeerKey(1), got[1]);
    assert_eq!(p.on_block_written(got[1]), Some(got[0].index));
    p.check_invariants().unwrap();
    let who = p.on_piece_verified(got[0].index, true).unwrap();
    assert_eq!(who.peers(), vec![PeerKey(1)]);
    assert_eq!(p.have_bitfield().count(), 2);
    assert!(p.have_bitfield().get(PieceIndex(1)));
}

#[test]
fn pick_on_a_100k_piece_torrent_does_not_scan_the_torrent() {
    // Module: "a pick looks at the started pieces that still have missing blocks plus ... only as many
    // free pieces as it takes to fill the request". 100,000 pieces, 20 peers with random halves, one
    // seed: every pick of 64 blocks (16 pieces of 4 blocks) looks at a few dozen pieces at most.
    let n = 100_000u32;
    let mut p = picker(n, 4, PickerConfig::default());
    let mut r = rng(11);
    let peers: Vec<Bitfield> = (0..20)
        .map(|_| {
            let mut b = Bitfield::new(n);
            for i in 0..n {
                if r.random_bool(0.5) {
                    b.set(PieceIndex(i), true).unwrap();
                }
            }
            b
        })
        .collect();
    for bf in &peers {
        p.add_peer_bitfield(bf).unwrap();
    }
    p.add_seed();
    let full = Bitfield::full(n);
    let mut worst = 0;
    for round in 0..300u32 {
        let k = (round % 21) as usize;
        let (peer, bf) = match peers.get(k) {
            Some(bf) => (PeerKey(k as u32), bf),
            None => (PeerKey(99), &full),
        };
        let got = p.pick(peer, bf, 64, at(u64::from(round)), &mut r);
        assert_eq!(got.len(), 64);
        worst = worst.max(p.last_pick_examined());
        // Half the requests are answered, so pieces complete and the random phase ends.
        for b in got
            .iter()
            .step_by(2)
            .chain(got.iter().skip(1).step_by(2))
            .take(48)
        {
            if let Some(done) = p.on_block_received(peer, *b).piece_complete {
                p.on_piece_verified(done, true).unwrap();
            }
        }
    }
    assert!(p.have_count() > 4);
    assert!(worst < 200, "a pick looked at {worst} pieces");
    p.check_invariants().unwrap();
}

// ----- property test: random sessions keep the invariants and always finish -----

#[derive(Debug, Clone)]
enum Op {
    Join { peer: u8, seed: bool, mask: u16 },
    Leave { peer: u8 },
    Have { peer: u8, piece: u8 },
    Pick { peer: u8, want: u8 },
    Receive { peer: u8, nth: u8 },
    Fail { peer: u8, nth: u8 },
    Choke { peer: u8 },
    Verify { nth: u8, ok: bool },
    Priority { piece: u8, prio: u8 },
    Sequential(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..4u8, any::<bool>(), any::<u16>()).prop_map(|(peer, seed, mask)| Op::Join { peer, seed, mask }),
        1 => (0..4u8).prop_map(|peer| Op::Leave { peer }),
        1 => (0..4u8, any::<u8>()).prop_map(|(peer, piece)| Op::Have { peer, piece }),
        3 => (0..4u8, 0..12u8).prop_map(|(peer, want)| Op::Pick { peer, want }),
        3 => (0..4u8, any::<u8>()).prop_map(|(peer, nth)| Op::Receive { peer, nth }),
        1 => (0..4u8, any::<u8>()).prop_map(|(peer, nth)| Op::Fail { peer, nth }),
        1 => (0..4u8).prop_map(|peer| Op::Choke { peer }),
        2 => (any::<u8>(), prop::bool::weighted(0.8)).prop_map(|(nth, ok)| Op::Verify { nth, ok }),
        1 => (any::<u8>(), 0..9u8).prop_map(|(piece, prio)| Op::Priority { piece, prio }),
        1 => any::<bool>().prop_map(Op::Sequential),
    ]
}

/// A session around the picker: which peers are connected with what, and which pieces await hashing.
struct Session {
    p: PiecePicker,
    n: u32,
    peers: BTreeMap<u8, (Bitfield, bool)>,
    pending: BTreeSet<u32>,
    rng: SmallRng,
    clock: u64,
}

impl Session {
    fn received(&mut self, peer: u8, b: BlockRequest) {
        let out = self.p.on_block_received(PeerKey(u32::from(peer)), b);
        assert_ne!(out.status, BlockStatus::Invalid);
        if let Some(done) = out.piece_complete {
            assert!(self.pending.insert(done.0));
        }
    }

    fn apply(&mut self, op: &Op) {
        self.clock += 1;
        match *op {
            Op::Join { peer, seed, mask } => {
                if self.peers.contains_key(&peer) {
                    return;
                }
                let bf = if seed {
                    self.p.add_seed();
                    Bitfield::full(self.n)
                } else {
                    let mut bf = Bitfield::new(self.n);
                    for i in 0..self.n {
                        bf.set(PieceIndex(i), mask & (1 << i) != 0).unwrap();
                    }
                    self.p.add_peer_bitfield(&bf).unwrap();
                    bf
                };
                self.peers.insert(peer, (bf, seed));
            }
            Op::Leave { peer } => {
                if let Some((bf, seed)) = self.peers.remove(&peer) {
                    if seed {
                        self.p.remove_seed();
                    } else {
                        self.p.remove_peer_bitfield(&bf).unwrap();
                    }
                    self.p.peer_gone(PeerKey(u32::from(peer)));
                }
            }
            Op::Have { peer, piece } => {
                let i = u32::from(piece) % self.n;
                if let Some((bf, false)) = self.peers.get_mut(&peer) {
                    if !bf.get(PieceIndex(i)) {
                        bf.set(PieceIndex(i), true).unwrap();
                        self.p.peer_has(PieceIndex(i)).unwrap();
                    }
                }
            }
            Op::Pick { peer, want } => {
                let Some((bf, _)) = self.peers.get(&peer) else {
                    return;
                };
                let key = PeerKey(u32::from(peer));
                let before = self.p.requests_of(key);
                let got = self
                    .p
                    .pick(key, bf, usize::from(want), at(self.clock), &mut self.rng);
                assert!(got.len() <= usize::from(want));
                for b in &got {
                    assert!(bf.get(b.index), "asked for a piece the peer lacks");
                    assert!(!self.p.has(b.index));
                    assert!(!before.contains(b), "asked the same peer twice");
                }
            }
            Op::Receive { peer, nth } => {
                let reqs = self.p.requests_of(PeerKey(u32::from(peer)));
                if !reqs.is_empty() {
                    let b = reqs[usize::from(nth) % reqs.len()];
                    self.received(peer, b);
                }
            }
            Op::Fail { peer, nth } => {
                let reqs = self.p.requests_of(PeerKey(u32::from(peer)));
                if !reqs.is_empty() {
                    assert!(self
                        .p
                        .on_request_failed(PeerKey(u32::from(peer)), reqs[usize::from(nth) % reqs.len()]));
                }
            }
            Op::Choke { peer } => {
                self.p.release_peer(PeerKey(u32::from(peer)));
            }
            Op::Verify { nth, ok } => {
                if self.pending.is_empty() {
                    return;
                }
                let i = *self
                    .pending
                    .iter()
                    .nth(usize::from(nth) % self.pending.len())
                    .unwrap();
                self.pending.remove(&i);
                self.p.on_piece_verified(PieceIndex(i), ok).unwrap();
            }
            Op::Priority { piece, prio } => {
                self.p
                    .set_piece_priority(PieceIndex(u32::from(piece) % self.n), prio)
                    .unwrap();
            }
            Op::Sequential(on) => self.p.set_mode(if on {
                PickMode::Sequential
            } else {
                PickMode::RarestFirst
            }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_sessions_keep_the_invariants_and_finish(
        n in 1..12u32,
        blocks in 1..4u32,
        last in 1..=3u32,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..120),
    ) {
        let pl = blocks * K16;
        let total = u64::from(n - 1) * u64::from(pl) + u64::from(last.min(blocks) * K16 - 100);
        let p = PiecePicker::uniform(pl, total, PickerConfig::default()).unwrap();
        let mut s = Session { p, n, peers: BTreeMap::new(), pending: BTreeSet::new(), rng: rng(seed), clock: 0 };
        for op in &ops {
            s.apply(op);
            if let Err(e) = s.p.check_invariants() {
                prop_assert!(false, "after {:?}: {}", op, e);
            }
        }
        // Some peer has every piece: the download always finishes.
        s.apply(&Op::Join { peer: 9, seed: false, mask: u16::MAX });
        for i in std::mem::take(&mut s.pending) {
            s.p.on_piece_verified(PieceIndex(i), true).unwrap();
        }
        let mut rounds = 0;
        while !s.p.is_complete() {
            rounds += 1;
            prop_assert!(rounds < 100, "stuck: {} wanted left", s.p.wanted_left());
            let connected: Vec<u8> = s.peers.keys().copied().collect();
            for peer in connected {
                s.apply(&Op::Pick { peer, want: 8 });
                for b in s.p.requests_of(PeerKey(u32::from(peer))) {
                    s.received(peer, b);
                }
            }
            for i in std::mem::take(&mut s.pending) {
                s.p.on_piece_verified(PieceIndex(i), true).unwrap();
            }
            prop_assert!(s.p.check_invariants().is_ok(), "{:?}", s.p.check_invariants());
        }
        prop_assert_eq!(s.p.wanted_left(), 0);
    }
}

#[test]
fn endgame_duplicates_only_requests_older_than_the_minimum_age() {
    // A block requested a moment ago is probably on its way: asking a second peer for it only wastes
    // upload. Endgame duplicates a request once it is `endgame_min_age` old (1 s by default).
    let (a, b) = (PeerKey(1), PeerKey(2));
    let mut p = picker(2, 2, PickerConfig::default());
    let full = Bitfield::full(2);
    p.add_peer_bitfield(&full).unwrap();
    p.add_peer_bitfield(&full).unwrap();
    let mut r = rng(9);
    assert_eq!(p.pick(a, &full, 10, at(0), &mut r).len(), 4);
    assert!(p.is_endgame());
    assert!(
        p.pick(b, &full, 10, at(999), &mut r).is_empty(),
        "too young to duplicate"
    );
    assert_eq!(
        p.pick(b, &full, 10, at(1000), &mut r).len(),
        4,
        "old enough: duplicated"
    );
    p.check_invariants().unwrap();
}
