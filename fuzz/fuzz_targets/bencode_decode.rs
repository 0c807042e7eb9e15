//! Bencode decoding of arbitrary bytes, strict and lenient.
//!
//! Properties: no panic; a strictly decoded value re-encodes to exactly the input (strict bencode is
//! canonical) and remembers it as its raw span; a leniently decoded value re-encodes to canonical bencode
//! that decodes strictly to the same tree; strict success implies lenient success with the same tree; a
//! decoded prefix decodes on its own; error offsets lie within the input.
#![no_main]

use bencode::{decode, decode_prefix, decode_with, DecodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = decode(data);
    match &strict {
        Ok(v) => {
            assert_eq!(v.encode(), data, "strict decode does not re-encode to the input");
            assert_eq!(v.raw(), data);
            assert_eq!(v.offset(), 0);
            assert_eq!(v.to_owned_value().encode(), data);
        }
        Err(e) => assert!(e.offset <= data.len(), "error offset {} past the input", e.offset),
    }

    match decode_with(data, DecodeOptions::lenient()) {
        Ok(v) => {
            assert_eq!(v.raw(), data);
            let canonical = v.encode();
            let again =
                decode(&canonical).expect("canonical re-encoding of a lenient value decodes strictly");
            assert_eq!(again.to_owned_value(), v.to_owned_value());
            if let Ok(s) = &strict {
                assert_eq!(s.to_owned_value(), v.to_owned_value());
            }
        }
        Err(e) => {
            assert!(strict.is_err(), "strict accepted what lenient refused: {e}");
            assert!(e.offset <= data.len(), "error offset {} past the input", e.offset);
        }
    }

    if let Ok((v, used)) = decode_prefix(data, DecodeOptions::strict()) {
        let prefix = data.get(..used).expect("used is within the input");
        assert_eq!(v.raw(), prefix);
        assert!(decode(prefix).is_ok(), "a decoded prefix does not decode alone");
    }
});
