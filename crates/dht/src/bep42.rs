//! BEP 42 (DHT security extension): node ids tied to the node's external IP address through CRC32C.
//!
//! "The first (most significant) 21 bits of the node ID used in the DHT MUST match the first 21 bits of the
//! resulting hash. The last byte of the hash MUST match the random number (`r`) used to generate the hash."
//! (In the reference code and test vectors only the low 3 bits of the last byte carry `r`.)

use std::net::IpAddr;

use crate::NodeId;

/// CRC32C (Castagnoli), bitwise: the four or eight bytes hashed per id do not warrant a table or a crate.
pub fn crc32c(data: &[u8]) -> u32 {
    const POLY: u32 = 0x82f6_3b78; // 0x1EDC6F41 reflected
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
        }
    }
    !crc
}

/// The CRC32C of the masked address with `r` (0..=7) in its top bits: `crc32c((ip & 0x030f3fff) | (r << 29))`
/// over 4 bytes for IPv4, `crc32c((ip & 0x0103070f1f3f7fff) | (r << 61))` over the high 8 bytes for IPv6.
pub fn ip_hash(ip: IpAddr, r: u8) -> u32 {
    let r = r & 7;
    match ip {
        IpAddr::V4(a) => {
            let v = (u32::from_be_bytes(a.octets()) & 0x030f_3fff) | (u32::from(r) << 29);
            crc32c(&v.to_be_bytes())
        }
        IpAddr::V6(a) => {
            let hi = (u128::from_be_bytes(a.octets()) >> 64) as u64;
            let v = (hi & 0x0103_070f_1f3f_7fff) | (u64::from(r) << 61);
            crc32c(&v.to_be_bytes())
        }
    }
}

/// "Any peer on a local network address is exempt from this node ID verification": 10/8, 172.16/12,
/// 192.168/16, 169.254/16 and 127/8; for IPv6 (which the BEP does not list) loopback, link-local fe80::/10
/// and unique-local fc00::/7, as libtorrent does.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private() || a.is_link_local() || a.is_loopback(),
        IpAddr::V6(a) => {
            let s = a.segments();
            let first = s.first().copied().unwrap_or(0);
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            a.is_loopback() || (first & 0xffc0) == 0xfe80 || (first & 0xfe00) == 0xfc00
        }
    }
}

/// True if `id` is a valid BEP 42 id for `ip` (its top 21 bits match the hash of `ip` with the `r` in the
/// low 3 bits of its last byte).
pub fn id_matches_ip(id: &NodeId, ip: IpAddr) -> bool {
    let r = id.0.get(19).copied().unwrap_or(0) & 7;
    let crc = ip_hash(ip, r).to_be_bytes();
    id.0.first() == crc.first()
        && id.0.get(1) == crc.get(1)
        && id.0.get(2).map(|b| b & 0xf8) == crc.get(2).map(|b| b & 0xf8)
}

/// True if a node at `ip` with `id` passes BEP 42 verification: a matching id, or a local address.
pub fn verified(id: &NodeId, ip: IpAddr) -> bool {
    is_local(ip) || id_matches_ip(id, ip)
}

/// A random BEP 42 id for `ip`: 21 bits from the hash, the rest random, `r` in the low bits of byte 19.
pub fn generate_id<R: rand::Rng + ?Sized>(ip: IpAddr, rng: &mut R) -> NodeId {
    let mut id = NodeId::random(rng);
    let last = id.0.get(19).copied().unwrap_or(0);
    set_prefix(&mut id, ip_hash(ip, last & 7));
    id
}

fn set_prefix(id: &mut NodeId, crc: u32) {
    let c = crc.to_be_bytes();
    if let (Some(a), Some(b), Some(d)) = (c.first(), c.get(1), c.get(2)) {
        if let Some(x) = id.0.get_mut(0) {
            *x = *a;
        }
        if let Some(x) = id.0.get_mut(1) {
            *x = *b;
        }
        if let Some(x) = id.0.get_mut(2) {
            *x = (d & 0xf8) | (*x & 0x07);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    fn hex(s: &str) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn bep42_test_vectors_match() {
        // The BEP's table: IP, rand, example node id (bold parts checked, the rest random).
        let rows = [
            ("124.31.75.21", 1u8, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
            ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
            ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
            ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
            ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
        ];
        for (ip, rand, id) in rows {
            let ip: IpAddr = ip.parse().unwrap();
            let id = NodeId(hex(id));
            assert_eq!(id.0[19], rand);
            let crc = ip_hash(ip, rand).to_be_bytes();
            assert_eq!(crc[0], id.0[0], "{ip}");
            assert_eq!(crc[1], id.0[1], "{ip}");
            assert_eq!(crc[2] & 0xf8, id.0[2] & 0xf8, "{ip}");
            assert!(id_matches_ip(&id, ip));
            // Another address does not match this id.
            assert!(!id_matches_ip(&id, "1.2.3.4".parse().unwrap()));
        }
    }

    #[test]
    fn generated_ids_verify_for_their_ip_only() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for ip in ["124.31.75.21", "8.8.4.4", "2001:db8:1234::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..20 {
                let id = generate_id(ip, &mut rng);
                assert!(id_matches_ip(&id, ip));
                assert!(verified(&id, ip));
            }
        }
        let id = generate_id("8.8.4.4".parse().unwrap(), &mut rng);
        assert!(!verified(&id, "9.9.9.9".parse().unwrap()));
    }

    #[test]
    fn local_addresses_are_exempt() {
        // "Any peer on a local network address is exempt from this node ID verification."
        let id = NodeId([0xab; 20]);
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.3.3",
            "127.0.0.1",
            "::1",
        ] {
            assert!(verified(&id, ip.parse().unwrap()), "{ip}");
        }
        for ip in ["172.32.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_local(ip.parse().unwrap()), "{ip}");
        }
    }
}
