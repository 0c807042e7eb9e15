//! Bencoded HTTP tracker responses (announce, scrape, failure) from arbitrary bytes, as a client reads them.
//!
//! Properties: no panic; a decoded announce response re-encodes, compact and dictionary, to bodies that
//! decode to the same response; a decoded scrape or failure re-encodes to a body that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::http::{AnnounceResponse, Reply, ScrapeResponse};

fuzz_target!(|data: &[u8]| {
    match AnnounceResponse::decode(data) {
        Ok(Reply::Success(r)) => {
            assert_eq!(
                AnnounceResponse::decode(&r.encode_compact()),
                Ok(Reply::Success(r.clone()))
            );
            assert_eq!(
                AnnounceResponse::decode(&r.encode_dictionary(|_| None)),
                Ok(Reply::Success(r))
            );
        }
        Ok(Reply::Failure(f)) => {
            assert_eq!(AnnounceResponse::decode(&f.encode()), Ok(Reply::Failure(f)));
        }
        Err(_) => {}
    }
    if let Ok(Reply::Success(s)) = ScrapeResponse::decode(data) {
        assert_eq!(ScrapeResponse::decode(&s.encode()), Ok(Reply::Success(s)));
    }
});
