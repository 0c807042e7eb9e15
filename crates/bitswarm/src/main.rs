//! The bitswarm command line: one binary, one subcommand per job.
//!
//! Exit codes: 0 success; 1 the input or the work failed (the message says what and where); 2 bad usage.

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// bitswarm: a BitTorrent system (torrent files, tracker, directory, peers, DHT).
#[derive(Debug, Parser)]
#[command(name = "bitswarm", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More detail on stderr (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a .torrent file from a file or folder.
    #[command(after_help = cmd::create::EXAMPLES)]
    Create(cmd::create::Args),
    /// Show what a .torrent file or magnet link holds.
    #[command(after_help = cmd::inspect::EXAMPLES)]
    Inspect(cmd::inspect::Args),
    /// Download a torrent or magnet link (and optionally keep seeding it).
    #[command(after_help = cmd::get::EXAMPLES)]
    Get(cmd::get::Args),
    /// Serve torrents from content on disk, or make a torrent of a file or folder and serve it.
    #[command(after_help = cmd::seed::EXAMPLES)]
    Seed(cmd::seed::Args),
    /// Run a whole swarm on loopback (tracker, seeder, peers) and show it filling up.
    #[command(after_help = cmd::demo::EXAMPLES)]
    Demo(cmd::demo::Args),
    /// Run a tracker (HTTP and UDP announce and scrape, stats, metrics).
    #[command(after_help = cmd::tracker::EXAMPLES)]
    Tracker(cmd::tracker::Args),
    /// Run the directory web site (search, upload, torrent pages, API) with an embedded tracker.
    #[command(after_help = cmd::directory::EXAMPLES)]
    Directory(cmd::directory::Args),
    /// Run a standalone DHT node (BEP 5) with stats as JSON and Prometheus metrics.
    #[command(after_help = cmd::dht::EXAMPLES)]
    Dht(cmd::dht::Args),
    /// Run bitswarm's state machines for many nodes on a simulated network, in virtual time.
    #[command(after_help = cmd::sim::EXAMPLES)]
    Sim(cmd::sim::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Create(a) => cmd::create::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Tracker(a) => cmd::tracker::run(a),
        Command::Get(a) => cmd::get::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Seed(a) => cmd::seed::run(a),
        Command::Directory(a) => cmd::directory::run(a),
        Command::Dht(a) => cmd::dht::run(a),
        Command::Sim(a) => cmd::sim::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::clean(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
