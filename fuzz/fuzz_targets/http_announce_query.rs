//! HTTP announce and scrape query strings (BEP 3, 7, 23, 48) from arbitrary bytes, as a tracker reads them.
//!
//! Properties: no panic; a parsed announce or scrape re-encodes (`to_query`) to a query that parses to the
//! same request; errors name a parameter or a limit, and oversized input is refused by its length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::http::{AnnounceRequest, QueryError, ScrapeRequest, MAX_QUERY_LEN};

fuzz_target!(|data: &[u8]| {
    match AnnounceRequest::parse_query(data) {
        Ok(request) => {
            let query = request.to_query();
            assert!(query.is_ascii());
            assert_eq!(AnnounceRequest::parse_query(query.as_bytes()), Ok(request));
        }
        Err(QueryError::TooLong { len, max }) => assert!(len == data.len() && len > max),
        Err(_) => assert!(data.len() <= MAX_QUERY_LEN),
    }
    if let Ok(request) = ScrapeRequest::parse_query(data) {
        assert_eq!(
            ScrapeRequest::parse_query(request.to_query().as_bytes()),
            Ok(request)
        );
    }
});
