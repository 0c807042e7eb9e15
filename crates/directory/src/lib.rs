//! The global directory: a web site and JSON API where people publish, find and fetch torrents, with
//! per-tracker seeder figures and an embedded bitswarm tracker.
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
pub mod db;
pub mod upload;

pub use config::DirectoryConfig;
pub use db::{Db, DbError, SearchQuery, Sort, SyntheticTorrent};
