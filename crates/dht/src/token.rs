//! Announce tokens (BEP 5): "the SHA1 hash of the IP address concatenated onto a secret that changes every
//! five minutes and tokens up to ten minutes old are accepted."
//!
//! A token is the first [`TOKEN_LEN`] bytes of SHA-1(secret ‖ ip). Two secrets are kept, the current one and
//! the one before it, so a token is accepted for between one and two rotation periods. The secrets come
//! from the node's RNG; the port is not part of the token, so an announce may come from another port of the
//! same address (as `implied_port` needs behind a NAT).

use std::net::IpAddr;
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::Time;

/// Bytes in a token we hand out.
pub const TOKEN_LEN: usize = 8;
const SECRET_LEN: usize = 16;

/// The current and previous secrets.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; SECRET_LEN],
    previous: [u8; SECRET_LEN],
    rotated: Time,
    every: Duration,
}

impl Tokens {
    /// Fresh secrets at `now`, rotated every `every`.
    pub fn new<R: rand::Rng + ?Sized>(rng: &mut R, now: Time, every: Duration) -> Tokens {
        let mut t = Tokens {
            current: [0; SECRET_LEN],
            previous: [0; SECRET_LEN],
            rotated: now,
            every: every.max(Duration::from_millis(1)),
        };
        rng.fill_bytes(&mut t.current);
        rng.fill_bytes(&mut t.previous);
        t
    }

    /// When the next rotation is due.
    pub fn next_rotation(&self) -> Time {
        self.rotated.plus(self.every)
    }

    /// Rotate if one or more periods have passed: after one, the current secret becomes the previous one;
    /// after two or more, neither old secret survives.
    pub fn rotate_if_due<R: rand::Rng + ?Sized>(&mut self, now: Time, rng: &mut R) {
        let elapsed = now.since(self.rotated);
        if elapsed < self.every {
            return;
        }
        let periods = elapsed.as_nanos() / self.every.as_nanos().max(1);
        if periods >= 2 {
            rng.fill_bytes(&mut self.previous);
        } else {
            self.previous = self.current;
        }
        rng.fill_bytes(&mut self.current);
        let step = u32::try_from(periods).unwrap_or(u32::MAX);
        self.rotated = self.rotated.plus(self.every.saturating_mul(step));
    }

    /// The token for `ip` under the current secret.
    pub fn token(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        make(&self.current, ip)
    }

    /// True if `token` was handed to `ip` under the current or the previous secret.
    pub fn verify(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == make(&self.current, ip) || token == make(&self.previous, ip)
    }
}

fn make(secret: &[u8; SECRET_LEN], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    let digest: [u8; 20] = h.finalize().into();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(digest.get(..TOKEN_LEN).unwrap_or(&[0; TOKEN_LEN]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn tokens_are_accepted_for_the_current_and_previous_secret_only() {
        // "a secret that changes every five minutes and tokens up to ten minutes old are accepted"
        let mut rng = SmallRng::seed_from_u64(1);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let mut t = Tokens::new(&mut rng, Time::ZERO, 5 * MIN);
        let tok = t.token(ip);
        assert!(t.verify(ip, &tok));
        assert!(
            !t.verify("10.1.2.4".parse().unwrap(), &tok),
            "bound to the address"
        );
        t.rotate_if_due(Time(4 * MIN), &mut rng);
        assert_eq!(t.token(ip), tok, "no rotation before five minutes");
        t.rotate_if_due(Time(5 * MIN), &mut rng);
        assert_ne!(t.token(ip), tok);
        assert!(t.verify(ip, &tok), "the previous secret is still accepted");
        t.rotate_if_due(Time(10 * MIN), &mut rng);
        assert!(!t.verify(ip, &tok), "two rotations later it is refused");
        assert!(!t.verify(ip, b"nonsense"));
        assert!(!t.verify(ip, b""));
    }

    #[test]
    fn a_long_pause_invalidates_both_secrets() {
        let mut rng = SmallRng::seed_from_u64(2);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let mut t = Tokens::new(&mut rng, Time::ZERO, 5 * MIN);
        let tok = t.token(ip);
        t.rotate_if_due(Time(11 * MIN), &mut rng);
        assert!(!t.verify(ip, &tok));
        assert_eq!(t.next_rotation(), Time(15 * MIN));
    }
}
