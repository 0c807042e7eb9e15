//! The BEP 6 canonical allowed-fast set: which pieces we offer a peer while it is choked.

use std::net::Ipv4Addr;

use metainfo::{InfoHashV1, PieceIndex};
use sha1::{Digest, Sha1};

/// The first `k` pieces of the allowed-fast set of the peer at `ip`, computed as BEP 6 specifies
/// ("x = 0xFFFFFF00 & ip; x.append(infohash); while |a| < k: x = SHA1(x); ..."), so that "if two peers
/// offer k pieces fast it will be the same k".
///
/// BEP 6 has no provision for IPv6; a driver offers no set (or its own) to IPv6 peers. At most
/// `num_pieces` pieces are returned (the set of a torrent with fewer than `k` pieces is every piece);
/// none for a torrent without pieces.
pub fn allowed_fast_set(ip: Ipv4Addr, info_hash: &InfoHashV1, num_pieces: u32, k: u32) -> Vec<PieceIndex> {
    let k = k.min(num_pieces) as usize;
    let mut set: Vec<PieceIndex> = Vec::with_capacity(k);
    if k == 0 {
        return set;
    }
    let masked = u32::from(ip) & 0xffff_ff00;
    let mut x: Vec<u8> = masked.to_be_bytes().iter().chain(&info_hash.0).copied().collect();
    while set.len() < k {
        let digest: [u8; 20] = Sha1::digest(&x).into();
        for chunk in digest.chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([
                chunk.first().copied().unwrap_or_default(),
                chunk.get(1).copied().unwrap_or_default(),
                chunk.get(2).copied().unwrap_or_default(),
                chunk.get(3).copied().unwrap_or_default(),
            ]);
            let index = PieceIndex(y % num_pieces);
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x = digest.to_vec();
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_fast_set_matches_the_bep6_example() {
        // BEP 6: "7 piece allowed fast set for torrent with 1313 pieces and hex infohash
        // aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa for node with IP 80.4.4.200:
        // 1059,431,808,1217,287,376,1188" and the 9 piece set "1059,431,808,1217,287,376,1188,353,508".
        let ih = InfoHashV1([0xaa; 20]);
        let ip = Ipv4Addr::new(80, 4, 4, 200);
        let idx = |v: &[u32]| v.iter().map(|&i| PieceIndex(i)).collect::<Vec<_>>();
        assert_eq!(
            allowed_fast_set(ip, &ih, 1313, 7),
            idx(&[1059, 431, 808, 1217, 287, 376, 1188])
        );
        assert_eq!(
            allowed_fast_set(ip, &ih, 1313, 9),
            idx(&[1059, 431, 808, 1217, 287, 376, 1188, 353, 508])
        );
        // Same /24, same set; a tiny torrent gives every piece once; no pieces, no set.
        assert_eq!(
            allowed_fast_set(Ipv4Addr::new(80, 4, 4, 1), &ih, 1313, 7),
            allowed_fast_set(ip, &ih, 1313, 7)
        );
        let mut small = allowed_fast_set(ip, &ih, 3, 10);
        small.sort();
        assert_eq!(small, idx(&[0, 1, 2]));
        assert!(allowed_fast_set(ip, &ih, 0, 10).is_empty());
    }
}
