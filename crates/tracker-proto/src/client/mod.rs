//! The client side of talking to trackers, as pure state machines: [`AnnounceClient`] announces one torrent
//! to all its trackers (BEP 12 tiers, failover, backoff, intervals, events, scrapes), and [`UdpSession`] is
//! the BEP 15 exchange with one UDP tracker that it uses.
//!
//! Nothing here does I/O or reads a clock: inputs carry a [`Time`], randomness comes from the `rand::Rng`
//! the owner hands in, and requests come out as [`Transmit`]s for a driver (the `net` crate's tokio driver,
//! a test or the simulator) to carry out.

mod announce;
mod time;
mod udp_session;

pub use announce::{
    AnnounceClient, AnnounceParams, ClientConfig, ClientEvent, HttpResponse, RequestId, ToSend,
    TrackerFailure, TrackerId, Transmit, MAX_TRACKERS,
};
pub use time::Time;
pub use udp_session::{UdpConfig, UdpError, UdpOperation, UdpOutcome, UdpSession};

#[cfg(test)]
mod tests;
