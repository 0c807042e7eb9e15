//! UDP tracker packets (BEP 15, BEP 41 options) from arbitrary bytes, as a tracker and a client read them.
//!
//! Properties: no panic; a parsed request re-encodes to a packet that parses to the same request; an
//! answerable ("sendable") parse error has a header and yields an error packet that parses back; a parsed
//! response, for either address family, re-encodes to a packet that parses to the same response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_proto::udp::{AddressFamily, Request, RequestParseError, Response};

fuzz_target!(|data: &[u8]| {
    match Request::parse(data) {
        Ok(request) => {
            let mut out = Vec::new();
            request.write(&mut out);
            assert_eq!(
                Request::parse(&out),
                Ok(request),
                "request does not survive write + parse"
            );
        }
        Err(e @ RequestParseError::Sendable { .. }) => {
            assert!(data.len() >= 16, "answerable error without a 16-byte header");
            let reply = e.error_response().expect("a sendable error has an error packet");
            let mut out = Vec::new();
            reply.write(&mut out);
            assert_eq!(
                Response::parse(&out, AddressFamily::V4),
                Ok(Response::Error(reply))
            );
        }
        Err(RequestParseError::Unsendable(_)) => {}
    }

    for family in [AddressFamily::V4, AddressFamily::V6] {
        if let Ok(response) = Response::parse(data, family) {
            let mut out = Vec::new();
            response.write(&mut out);
            assert_eq!(
                Response::parse(&out, family),
                Ok(response),
                "response does not survive write + parse"
            );
        }
    }
});
