//! Local Service Discovery announces (BEP 14) from arbitrary bytes.
//!
//! Properties: no panic; an accepted announce written back out parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lsd::Announce;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Announce::parse(data) {
        let again = Announce::parse(&a.encode()).unwrap_or_else(|e| panic!("{a:?} does not parse back: {e}"));
        assert_eq!(again, a);
    }
});
