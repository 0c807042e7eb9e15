//! One module per subcommand.
pub mod create;
pub mod demo;
pub mod dht;
pub mod directory;
pub mod get;
pub mod inspect;
pub mod peer;
pub mod seed;
pub mod settings;
pub mod sim;
pub mod tracker;
