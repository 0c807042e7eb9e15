//! Property tests: any value encodes canonically and decodes back to itself, with raw spans equal to its
//! encoding; and the decoder never panics on arbitrary bytes.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use bencode::{decode, decode_prefix, DecodeOptions, OwnedValue};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(6, 128, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(OwnedValue::List),
            proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 0..12), inner, 0..8)
                .prop_map(OwnedValue::Dict),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity(v in value()) {
        let bytes = v.encode();
        let decoded = decode(&bytes).unwrap();
        prop_assert_eq!(decoded.to_owned_value(), v);
        prop_assert_eq!(decoded.raw(), &bytes[..]);
        prop_assert_eq!(decoded.encode(), bytes);
    }

    #[test]
    fn every_child_span_is_its_own_encoding(v in value()) {
        let bytes = v.encode();
        let decoded = decode(&bytes).unwrap();
        fn check(v: &bencode::Value<'_>, whole: &[u8]) {
            assert_eq!(&whole[v.offset()..v.offset() + v.raw().len()], v.raw());
            assert_eq!(decode(v.raw()).unwrap().encode(), v.raw());
            if let Some(l) = v.as_list() { l.iter().for_each(|c| check(c, whole)); }
            if let Some(d) = v.as_dict() { d.iter().for_each(|(_, c)| check(c, whole)); }
        }
        check(&decoded, &bytes);
    }

    #[test]
    fn prefixes_are_incomplete(v in value(), cut in any::<prop::sample::Index>()) {
        let bytes = v.encode();
        let cut = cut.index(bytes.len());
        let err = decode(&bytes[..cut]).unwrap_err();
        prop_assert!(err.is_incomplete(), "{}", err);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let _ = decode_prefix(&bytes, DecodeOptions::lenient());
    }

    #[test]
    fn strict_accepts_only_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(v) = decode(&bytes) {
            prop_assert_eq!(v.encode(), bytes);
        }
    }
}
