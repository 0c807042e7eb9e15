//! Counters and latency histograms, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The protocol a request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP.
    Http = 0,
    /// UDP.
    Udp = 1,
}

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A UDP connect.
    Connect = 0,
    /// An announce.
    Announce = 1,
    /// A scrape.
    Scrape = 2,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Malformed and answered with an error (HTTP `failure reason`, UDP error packet).
    Malformed = 0,
    /// Malformed beyond answering: dropped (UDP only).
    Dropped = 1,
    /// A UDP request whose connection id is wrong or expired.
    BadConnectionId = 2,
    /// Refused by the store (unregistered, unknown passkey, ratio, full, ...).
    Refused = 3,
}

const PROTOS: [&str; 2] = ["http", "udp"];
const KINDS: [&str; 3] = ["connect", "announce", "scrape"];
const FAILURES: [&str; 4] = ["malformed", "dropped", "bad_connection_id", "refused"];
/// Histogram bucket upper bounds, in microseconds.
const BUCKETS_US: [u64; 10] = [10, 25, 50, 100, 250, 500, 1_000, 5_000, 25_000, 100_000];

/// All counters; cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; 3]; 2],
    failures: [[AtomicU64; 4]; 2],
    latency_buckets: [[AtomicU64; BUCKETS_US.len() + 1]; 2],
    latency_sum_us: [AtomicU64; 2],
}

impl Metrics {
    /// Count a request of `kind` by `proto`.
    pub fn request(&self, proto: Proto, kind: Kind) {
        if let Some(c) = self
            .requests
            .get(proto as usize)
            .and_then(|r| r.get(kind as usize))
        {
            c.fetch_add(1, Relaxed);
        }
    }
    /// Count a failure.
    pub fn failure(&self, proto: Proto, why: Failure) {
        if let Some(c) = self
            .failures
            .get(proto as usize)
            .and_then(|r| r.get(why as usize))
        {
            c.fetch_add(1, Relaxed);
        }
    }
    /// Record how long handling a request took.
    pub fn latency(&self, proto: Proto, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        if let Some(b) = self.latency_buckets.get(proto as usize).and_then(|r| r.get(i)) {
            b.fetch_add(1, Relaxed);
        }
        if let Some(s) = self.latency_sum_us.get(proto as usize) {
            s.fetch_add(us, Relaxed);
        }
    }
    /// Requests counted so far of one kind (for tests and the status page).
    pub fn requests(&self, proto: Proto, kind: Kind) -> u64 {
        self.requests
            .get(proto as usize)
            .and_then(|r| r.get(kind as usize))
            .map_or(0, |c| c.load(Relaxed))
    }
    /// Failures counted so far of one kind.
    pub fn failures(&self, proto: Proto, why: Failure) -> u64 {
        self.failures
            .get(proto as usize)
            .and_then(|r| r.get(why as usize))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// The Prometheus text exposition, with the store's gauges appended.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP bitswarm_tracker_requests_total Requests handled, by protocol and kind."
        );
        let _ = writeln!(o, "# TYPE bitswarm_tracker_requests_total counter");
        for (p, pn) in PROTOS.iter().enumerate() {
            for (k, kn) in KINDS.iter().enumerate() {
                let v = self
                    .requests
                    .get(p)
                    .and_then(|r| r.get(k))
                    .map_or(0, |c| c.load(Relaxed));
                let _ = writeln!(
                    o,
                    "bitswarm_tracker_requests_total{{protocol=\"{pn}\",kind=\"{kn}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP bitswarm_tracker_errors_total Requests that failed, by protocol and reason."
        );
        let _ = writeln!(o, "# TYPE bitswarm_tracker_errors_total counter");
        for (p, pn) in PROTOS.iter().enumerate() {
            for (f, fname) in FAILURES.iter().enumerate() {
                let v = self
                    .failures
                    .get(p)
                    .and_then(|r| r.get(f))
                    .map_or(0, |c| c.load(Relaxed));
                let _ = writeln!(
                    o,
                    "bitswarm_tracker_errors_total{{protocol=\"{pn}\",kind=\"{fname}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP bitswarm_tracker_request_seconds Time to handle one request (UDP: one request in 64 is timed)."
        );
        let _ = writeln!(o, "# TYPE bitswarm_tracker_request_seconds histogram");
        for (p, pn) in PROTOS.iter().enumerate() {
            let mut cumulative = 0;
            let Some(buckets) = self.latency_buckets.get(p) else {
                continue;
            };
            for (i, b) in buckets.iter().enumerate() {
                cumulative += b.load(Relaxed);
                let le = BUCKETS_US
                    .get(i)
                    .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(
                    o,
                    "bitswarm_tracker_request_seconds_bucket{{protocol=\"{pn}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = self.latency_sum_us.get(p).map_or(0, |s| s.load(Relaxed)) as f64 / 1e6;
            let _ = writeln!(
                o,
                "bitswarm_tracker_request_seconds_sum{{protocol=\"{pn}\"}} {sum}"
            );
            let _ = writeln!(
                o,
                "bitswarm_tracker_request_seconds_count{{protocol=\"{pn}\"}} {cumulative}"
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(o, "# HELP bitswarm_tracker_{name} {help}");
            let _ = writeln!(o, "# TYPE bitswarm_tracker_{name} gauge");
            let _ = writeln!(o, "bitswarm_tracker_{name} {v}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.request(Proto::Udp, Kind::Announce);
        m.failure(Proto::Http, Failure::Malformed);
        m.latency(Proto::Udp, Duration::from_micros(30));
        let text = m.render(&[("peers", "Peers in all swarms.", 7)]);
        assert!(text.contains("bitswarm_tracker_requests_total{protocol=\"udp\",kind=\"announce\"} 1"));
        assert!(text.contains("bitswarm_tracker_errors_total{protocol=\"http\",kind=\"malformed\"} 1"));
        assert!(text.contains("bitswarm_tracker_request_seconds_bucket{protocol=\"udp\",le=\"0.00005\"} 1"));
        assert!(text.contains("bitswarm_tracker_request_seconds_bucket{protocol=\"udp\",le=\"0.000025\"} 0"));
        assert!(text.contains("bitswarm_tracker_peers 7"));
    }
}
