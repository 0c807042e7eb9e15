//! Private-tracker identities: passkeys (the secret in a user's announce URL) and user ids.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A user's secret announce token (BEP 27 private trackers): 16 random bytes, written as 32 lower-case hex
/// digits in the announce URL (`http://tracker/<passkey>/announce` or `.../announce/<passkey>`).
///
/// `Debug` shows only the first 4 digits, so logs do not leak it; `Display` writes all of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Passkey(pub [u8; 16]);

/// Text that is not a passkey.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a passkey is 32 hex digits")]
pub struct PasskeyParseError;

impl Passkey {
    /// A fresh passkey from the caller's RNG (use a cryptographically secure one in a real tracker).
    pub fn random(rng: &mut impl Rng) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Passkey(b)
    }

    /// Read 32 hex digits (either case).
    pub fn from_hex(text: &[u8]) -> Option<Self> {
        if text.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let hi = hex_value(*pair.first()?)?;
            let lo = hex_value(*pair.get(1)?)?;
            *o = hi << 4 | lo;
        }
        Some(Passkey(out))
    }

    /// The passkey in an announce path or BEP 41 URLData: the first `/`-separated segment of the path (before
    /// any `?`) that is exactly 32 hex digits, so both `/<passkey>/announce` and `/announce/<passkey>` work.
    ///
    /// ```
    /// use tracker_core::Passkey;
    /// let pk = Passkey::find_in_path(b"/0123456789abcdef0123456789ABCDEF/announce?info_hash=x").unwrap();
    /// assert_eq!(pk.to_string(), "0123456789abcdef0123456789abcdef");
    /// assert_eq!(Passkey::find_in_path(b"/announce/0123456789abcdef0123456789abcdef"), Some(pk));
    /// assert_eq!(Passkey::find_in_path(b"/announce"), None);
    /// ```
    pub fn find_in_path(path: &[u8]) -> Option<Self> {
        let path = path.split(|&b| b == b'?').next()?;
        path.split(|&b| b == b'/').find_map(Passkey::from_hex)
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Passkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Passkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, ..] = self.0;
        write!(f, "Passkey({a:02x}{b:02x}…)")
    }
}

impl FromStr for Passkey {
    type Err = PasskeyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Passkey::from_hex(s.as_bytes()).ok_or(PasskeyParseError)
    }
}

impl Serialize for Passkey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Passkey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A user of a private tracker, as numbered by the store ([`crate::SwarmStore::add_user`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u32);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkeys_round_trip_as_hex_and_hide_in_debug() {
        let pk = Passkey([0xab; 16]);
        let text = pk.to_string();
        assert_eq!(text, "ab".repeat(16));
        assert_eq!(text.parse::<Passkey>(), Ok(pk));
        assert_eq!(format!("{pk:?}"), "Passkey(abab…)");
        assert_eq!("xyz".parse::<Passkey>(), Err(PasskeyParseError));
        assert_eq!(Passkey::from_hex(&[b'g'; 32]), None);
        let json = serde_json::to_string(&pk).unwrap();
        assert_eq!(serde_json::from_str::<Passkey>(&json).unwrap(), pk);
    }
}
