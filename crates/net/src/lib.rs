//! tokio drivers that feed bitswarm's state machines from sockets and timers.
//!
//! The protocol crates are pure: they take bytes and the time, and say what to send and when to wake them.
//! This crate is where the sockets, the clock and the tasks live. Each driver owns one state machine, feeds it
//! what arrives, carries out what it asks, and hands its events to the owner over a channel.
//!
//! - [`announce`]: the tracker announce client (`tracker_proto::client::AnnounceClient`) over real HTTP(S)
//!   and UDP, IPv4 and IPv6.
//! - [`fetch`]: a capped HTTP(S) GET for .torrent files named by URL.
//! - [`dht`]: the Mainline DHT node (`dht::Dht`) on a UDP socket, with lookups streamed to their owners.
//! - [`lsd`]: Local Service Discovery (BEP 14) on a multicast socket.
//!
//! ```no_run
//! use net::announce::{self, Command, DriverConfig};
//! use tracker_proto::client::{AnnounceClient, AnnounceParams, ClientEvent};
//! use tracker_proto::{Event, InfoHashV1, PeerId};
//!
//! # async fn demo() -> Result<(), net::announce::DriverError> {
//! let params = AnnounceParams::new(InfoHashV1([1; 20]), PeerId(*b"-BS0100-0123456789ab"), 6881);
//! let tiers = vec![vec!["udp://tracker.example:6969/announce".to_string()]];
//! let client = AnnounceClient::new(tiers, params, announce::os_rng());
//! let mut handle = announce::spawn(client, DriverConfig::default());
//! handle.command(Command::Progress { uploaded: 0, downloaded: 0, left: 1 << 20 }).await;
//! handle.command(Command::Event(Event::Started)).await;
//! while let Some(event) = handle.next_event().await {
//!     if let ClientEvent::Peers { peers, .. } = event {
//!         println!("{} peers", peers.len());
//!         break;
//!     }
//! }
//! handle.shutdown().await?; // sends `stopped`, waits at most the client's stop timeout
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

pub mod announce;
mod clock;
pub mod dht;
pub mod fetch;
pub mod lsd;

pub use clock::Clock;
