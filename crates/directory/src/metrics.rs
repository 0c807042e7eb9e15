//! Counters for `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::db::DirectoryStats;

/// Latency buckets in seconds.
const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0];

/// A latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; 8],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, limit) in self.buckets.iter().zip(BUCKETS) {
            if s <= limit {
                b.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, limit) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{limit}\"}} {}", b.load(Relaxed));
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The directory's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pages: AtomicU64,
    api: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    uploads_accepted: AtomicU64,
    uploads_refused: AtomicU64,
    logins_ok: AtomicU64,
    logins_failed: AtomicU64,
    rate_limited: AtomicU64,
    csrf_rejected: AtomicU64,
    /// Scrapes answered.
    pub scrapes_ok: AtomicU64,
    /// Scrapes failed.
    pub scrapes_failed: AtomicU64,
    search: Histogram,
    torrent: Histogram,
    request: Histogram,
}

impl Metrics {
    /// A request was answered.
    pub fn request(&self, api: bool, status: u16, took: Duration) {
        if api { &self.api } else { &self.pages }.fetch_add(1, Relaxed);
        if (400..500).contains(&status) {
            self.client_errors.fetch_add(1, Relaxed);
        } else if status >= 500 {
            self.server_errors.fetch_add(1, Relaxed);
        }
        self.request.observe(took);
    }
    /// A search ran.
    pub fn search(&self, took: Duration) {
        self.search.observe(took);
    }
    /// A torrent was looked up for its page.
    pub fn torrent_page(&self, took: Duration) {
        self.torrent.observe(took);
    }
    /// An upload ended.
    pub fn upload(&self, accepted: bool) {
        if accepted {
            &self.uploads_accepted
        } else {
            &self.uploads_refused
        }
        .fetch_add(1, Relaxed);
    }
    /// A sign-in ended.
    pub fn login(&self, ok: bool) {
        if ok { &self.logins_ok } else { &self.logins_failed }.fetch_add(1, Relaxed);
    }
    /// A request was refused by a rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }
    /// A form failed its CSRF check.
    pub fn csrf_rejected(&self) {
        self.csrf_rejected.fetch_add(1, Relaxed);
    }

    /// The Prometheus exposition.
    pub fn render(&self, stats: &DirectoryStats) -> String {
        let mut out = String::new();
        let mut c = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP directory_{name} {help}\n# TYPE directory_{name} {kind}\ndirectory_{name} {v}"
            );
        };
        c(
            "page_requests_total",
            "HTML, RSS and file requests answered.",
            "counter",
            self.pages.load(Relaxed),
        );
        c(
            "api_requests_total",
            "API requests answered.",
            "counter",
            self.api.load(Relaxed),
        );
        c(
            "client_errors_total",
            "Answers with a 4xx status.",
            "counter",
            self.client_errors.load(Relaxed),
        );
        c(
            "server_errors_total",
            "Answers with a 5xx status.",
            "counter",
            self.server_errors.load(Relaxed),
        );
        c(
            "uploads_accepted_total",
            "Torrents added.",
            "counter",
            self.uploads_accepted.load(Relaxed),
        );
        c(
            "uploads_refused_total",
            "Uploads refused.",
            "counter",
            self.uploads_refused.load(Relaxed),
        );
        c(
            "logins_total",
            "Successful sign-ins.",
            "counter",
            self.logins_ok.load(Relaxed),
        );
        c(
            "login_failures_total",
            "Failed sign-ins.",
            "counter",
            self.logins_failed.load(Relaxed),
        );
        c(
            "rate_limited_total",
            "Requests refused by a per-address limit.",
            "counter",
            self.rate_limited.load(Relaxed),
        );
        c(
            "csrf_rejected_total",
            "Forms refused for a bad CSRF token.",
            "counter",
            self.csrf_rejected.load(Relaxed),
        );
        c(
            "scrapes_total",
            "Torrent-tracker scrapes answered.",
            "counter",
            self.scrapes_ok.load(Relaxed),
        );
        c(
            "scrape_failures_total",
            "Torrent-tracker scrapes failed.",
            "counter",
            self.scrapes_failed.load(Relaxed),
        );
        c("torrents", "Torrents listed.", "gauge", stats.torrents);
        c("users", "Accounts.", "gauge", stats.users);
        c(
            "seeders",
            "Sum of the torrents' best seeder figures.",
            "gauge",
            stats.seeders,
        );
        self.search
            .render(&mut out, "directory_search_seconds", "Search query time.");
        self.torrent.render(
            &mut out,
            "directory_torrent_lookup_seconds",
            "Torrent page lookup time.",
        );
        self.request
            .render(&mut out, "directory_request_seconds", "Request handling time.");
        out
    }
}
