//! The bitswarm tracker server: HTTP (BEP 3, 23, 48) and UDP (BEP 15) front ends around the pure
//! `tracker-core` swarm store, with persistence of what is of record, JSON stats and Prometheus metrics.
//!
//! The server is handed its sockets and a shutdown signal, so tests bind port 0 and stop it at will:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = tracker::TrackerConfig::default();
//! config.http.listen = "127.0.0.1:0".parse()?;
//! config.udp.listen = "127.0.0.1:0".parse()?;
//! let listeners = tracker::Listeners::bind(&config)?;
//! println!("udp on {:?}", listeners.udp_addr());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(tracker::run(config, listeners, async { let _ = stopped.await; }));
//! let _ = stop.send(());
//! server.await??;
//! # Ok(()) }
//! ```
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod config;
pub mod http;
pub mod metrics;
pub mod persist;
pub mod server;
pub mod service;

pub use config::TrackerConfig;
pub use server::{run, run_service, Listeners, ServerError};
pub use service::Service;
