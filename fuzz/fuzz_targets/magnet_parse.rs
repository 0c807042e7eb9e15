//! Magnet links from arbitrary text.
//!
//! The input is tried as is and after `magnet:?` (so mutations reach the parameters). Properties: no panic;
//! an accepted link's canonical form (`to_uri`) is ASCII, parses back to the same value and is a fixed
//! point of parse-then-write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metainfo::Magnet;

fn check(s: &str) {
    if let Ok(m) = Magnet::parse(s) {
        assert!(m.v1.is_some() || m.v2.is_some());
        let uri = m.to_uri();
        assert!(uri.is_ascii(), "to_uri is not ASCII: {uri:?}");
        let again = Magnet::parse(&uri).unwrap_or_else(|e| panic!("{uri:?} does not parse back: {e}"));
        assert_eq!(again, m, "{uri:?} parses back differently");
        assert_eq!(again.to_uri(), uri);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check(s);
    check(&format!("magnet:?{s}"));
});
