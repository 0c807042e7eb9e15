//! `bitswarm sim`: run bitswarm's real state machines on a simulated network in virtual time.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sim::dht::{run as run_dht, DhtScenario};

pub const EXAMPLES: &str = "Examples:
  bitswarm sim dht                                  # 10,000 nodes, 5% loss, 20% leaving: the issue's scenario
  bitswarm sim dht --nodes 2000 --loss 0.1 --churn 0.5 --seed 7";

/// What to simulate.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// Scenarios.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// A Mainline DHT of many nodes: joins, announces, lookups, then nodes leaving abruptly.
    Dht(DhtArgs),
}

/// The DHT scenario's knobs.
#[derive(Debug, clap::Args)]
pub struct DhtArgs {
    /// Nodes in the network.
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Packet loss (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    pub loss: f64,
    /// Share of nodes leaving abruptly before the second round of lookups.
    #[arg(long, default_value_t = 0.2)]
    pub churn: f64,
    /// Nodes announcing a torrent each.
    #[arg(long, default_value_t = 100)]
    pub announcers: usize,
    /// Lookups per round.
    #[arg(long, default_value_t = 1000)]
    pub lookups: usize,
    /// Random seed (the same seed gives the same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    match a.what {
        What::Dht(d) => dht(d),
    }
}

fn dht(a: DhtArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.loss) || !(0.0..1.0).contains(&a.churn) {
        bail!("--loss must be within 0..=1 and --churn within 0..1");
    }
    if a.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let mut s = DhtScenario {
        nodes: a.nodes,
        churn: a.churn,
        announcers: a.announcers.min(a.nodes),
        lookups: a.lookups,
        seed: a.seed,
        ..DhtScenario::default()
    };
    s.link.loss = a.loss;
    let wall = Instant::now();
    let r = run_dht(&s);
    let took = wall.elapsed();
    if a.json {
        let round = |x: &sim::dht::LookupRound| {
            serde_json::json!({
                "lookups": x.lookups, "found": x.found, "success": x.success(),
                "queries_p50": x.queries_p50, "queries_p99": x.queries_p99,
                "to_peer_ms_p50": x.to_peer_p50.as_millis() as u64, "to_peer_ms_p99": x.to_peer_p99.as_millis() as u64,
                "to_done_ms_p50": x.to_done_p50.as_millis() as u64,
            })
        };
        let v = serde_json::json!({
            "nodes": r.nodes, "loss": a.loss, "seed": a.seed,
            "table": {"mean": r.table_mean, "p1": r.table_p1, "p50": r.table_p50, "max": r.table_max},
            "announced": r.announced, "before": round(&r.before), "left": r.left, "after": round(&r.after),
            "packets": {"sent": r.net.sent, "lost": r.net.lost, "to_departed": r.net.unroutable, "bytes": r.net.bytes},
            "virtual_seconds": r.virtual_time.as_secs_f64(), "wall_seconds": took.as_secs_f64(),
        });
        println!("{v}");
    } else {
        println!("{r}");
        println!(
            "wall time {:.1} s ({:.0}x real time)",
            took.as_secs_f64(),
            speedup(r.virtual_time, took)
        );
    }
    Ok(())
}

fn speedup(virt: Duration, wall: Duration) -> f64 {
    virt.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}
