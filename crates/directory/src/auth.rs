//! Accounts and request safety: Argon2id password hashes, random session tokens (stored only as SHA-256),
//! CSRF tokens bound to a per-visitor cookie, and per-address token-bucket rate limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "bsd_session";
/// The CSRF seed cookie's name (every visitor has one; form tokens are derived from it).
pub const CSRF_COOKIE: &str = "bsd_csrf";

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct HashError(String);

fn argon(memory_kib: u32, iterations: u32) -> Result<Argon2<'static>, HashError> {
    let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a password with Argon2id and a fresh random salt; the PHC string carries salt and parameters.
pub fn hash_password(password: &str, memory_kib: u32, iterations: u32) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| HashError(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Ok(argon(memory_kib, iterations)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?
        .to_string())
}

/// Whether `password` matches a PHC hash (its own parameters are used).
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash to verify against when the user does not exist, so a login takes as long either way.
pub fn dummy_hash(memory_kib: u32, iterations: u32) -> String {
    hash_password("not a password", memory_kib, iterations).unwrap_or_default()
}

/// 32 random bytes as 64 hex digits.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    // The OS RNG failing leaves zeros; make that visible rather than silently weak: fall back to a
    // hash of the time and address of the buffer is not better, so refuse by returning an empty token.
    if OsRng.try_fill_bytes(&mut b).is_err() {
        return String::new();
    }
    data_encoding::HEXLOWER.encode(&b)
}

/// SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The CSRF token for a visitor's seed cookie: SHA-256(secret, "csrf", seed), hex. A page from another
/// site can neither read the cookie nor compute this.
pub fn csrf_token(secret: &[u8; 32], seed: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(b"csrf\0");
    h.update(seed.as_bytes());
    data_encoding::HEXLOWER.encode(&h.finalize())
}

/// Compare two strings in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, and Secure when asked.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(a) = max_age {
        s.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    s
}

/// A user name: 3 to 32 letters, digits, `_`, `-` or `.`.
pub fn valid_name(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Token buckets per address: `burst` at once, then `per_minute`. At most `max` addresses are held; past
/// that the table is emptied (a flood of addresses gets a fresh burst each, never more than the table).
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    max: usize,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter.
    pub fn new(burst: u32, per_minute: u32, max: usize) -> Self {
        RateLimiter {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            max: max.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `ip`; false when it has none left.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= self.max && !b.contains_key(&ip) {
            b.clear();
        }
        let (tokens, last) = b.entry(ip).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_sec).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse", 1024, 1).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong horse"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn limiter_allows_a_burst_then_the_rate() {
        let l = RateLimiter::new(2, 60, 10);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t = Instant::now();
        assert!(l.allow(ip, t));
        assert!(l.allow(ip, t));
        assert!(!l.allow(ip, t));
        assert!(l.allow(ip, t + Duration::from_secs(1)));
        assert!(l.allow("127.0.0.2".parse().unwrap(), t));
    }

    #[test]
    fn cookies_and_tokens() {
        assert_eq!(cookie("a=1; bsd_csrf=xyz; b=2", CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie("a=1", CSRF_COOKIE), None);
        let s = [9u8; 32];
        assert!(same(&csrf_token(&s, "a"), &csrf_token(&s, "a")));
        assert!(!same(&csrf_token(&s, "a"), &csrf_token(&s, "b")));
        assert_eq!(new_token().len(), 64);
    }
}
