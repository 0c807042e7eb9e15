//! `bitswarm inspect`: what a .torrent file or magnet link holds, for people or (`--json`) for scripts.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use metainfo::{Magnet, Torrent};
use serde_json::{json, Value};

use crate::output::{clean, human_bytes};

pub const EXAMPLES: &str = "Examples:
  bitswarm inspect movie.torrent
  bitswarm inspect movie.torrent --json | jq .info_hash_v1
  bitswarm inspect 'magnet:?xt=urn:btih:...&dn=name'
  curl -s https://example/x.torrent | bitswarm inspect -";

/// Largest torrent file read (bigger files are refused before parsing).
const MAX_TORRENT_FILE: u64 = 256 << 20;

/// `inspect` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A .torrent file, `-` for standard input, or a magnet link.
    pub target: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// List at most this many files in text output (all with --json).
    #[arg(long, default_value_t = 100)]
    pub max_files: usize,
}

pub fn run(a: Args) -> Result<()> {
    if a.target
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    {
        let m = Magnet::parse(&a.target)?;
        let v = magnet_json(&m);
        if a.json {
            println!("{v}");
        } else {
            print_magnet(&m);
        }
        return Ok(());
    }
    let bytes = read_input(&a.target)?;
    let t = Torrent::from_bytes(bytes).with_context(|| a.target.clone())?;
    for w in &t.warnings {
        tracing::warn!("{}: {w}", a.target);
    }
    if a.json {
        println!("{}", torrent_json(&t));
    } else {
        print_torrent(&t, a.max_files);
    }
    Ok(())
}

fn read_input(target: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if target == "-" {
        std::io::stdin()
            .take(MAX_TORRENT_FILE + 1)
            .read_to_end(&mut buf)
            .context("standard input")?;
    } else {
        let path = PathBuf::from(target);
        let f = std::fs::File::open(&path).with_context(|| format!("{target}: cannot open"))?;
        f.take(MAX_TORRENT_FILE + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("{target}: cannot read"))?;
    }
    if buf.len() as u64 > MAX_TORRENT_FILE {
        anyhow::bail!(
            "{target}: larger than {} (not a torrent file?)",
            human_bytes(MAX_TORRENT_FILE)
        );
    }
    Ok(buf)
}

/// The magnet link for a torrent: both hashes, name, every tracker, web seeds.
pub fn magnet_of(t: &Torrent) -> Magnet {
    Magnet {
        v1: t.info_hashes.v1,
        v2: t.info_hashes.v2,
        display_name: Some(t.info.name.clone()),
        trackers: t.trackers.iter().flatten().cloned().collect(),
        peers: vec![],
        web_seeds: t.web_seeds.clone(),
        select_only: vec![],
    }
}

fn torrent_json(t: &Torrent) -> Value {
    let files: Vec<Value> = t
        .info
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path.join("/"),
                "length": f.length,
                "pad": f.attr.pad,
                "attr": f.attr.to_attr_string(),
                "pieces_root": f.pieces_root.map(|r| r.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            })
        })
        .collect();
    let h = t.info_hashes;
    json!({
        "kind": "torrent",
        "name": t.info.name,
        "version": t.info.version.as_str(),
        "info_hash_v1": h.v1.map(|x| x.to_hex()),
        "info_hash_v2": h.v2.map(|x| x.to_hex()),
        "info_hash_v2_truncated": h.v2.map(|x| x.truncated().to_hex()),
        "total_size": t.info.total_size(),
        "piece_length": t.info.piece_length,
        "piece_count": t.info.geometry.piece_count(),
        "private": t.info.private,
        "source": t.info.source,
        "multi_file": t.info.multi_file,
        "files": files,
        "trackers": t.trackers,
        "web_seeds": t.web_seeds,
        "comment": t.comment,
        "created_by": t.created_by,
        "creation_date": t.creation_date,
        "warnings": t.warnings,
        "magnet": magnet_of(t).to_uri(),
    })
}

fn magnet_json(m: &Magnet) -> Value {
    json!({
        "kind": "magnet",
        "name": m.display_name,
        "version": match (m.v1.is_some(), m.v2.is_some()) {
            (true, true) => Some("hybrid"),
            (true, false) => Some("v1"),
            (false, true) => Some("v2"),
            _ => None,
        },
        "info_hash_v1": m.v1.map(|x| x.to_hex()),
        "info_hash_v2": m.v2.map(|x| x.to_hex()),
        "info_hash_v2_truncated": m.v2.map(|x| x.truncated().to_hex()),
        "total_size": null,
        "piece_length": null,
        "piece_count": null,
        "private": false,
        "files": [],
        "trackers": if m.trackers.is_empty() { vec![] } else { vec![m.trackers.clone()] },
        "web_seeds": m.web_seeds,
        "peers": m.peers,
        "select_only": m.select_only.iter().map(|r| [*r.start(), *r.end()]).collect::<Vec<_>>(),
        "comment": null,
        "created_by": null,
        "creation_date": null,
        "magnet": m.to_uri(),
    })
}

fn print_magnet(m: &Magnet) {
    println!("magnet link");
    println!(
        "  name:          {}",
        clean(m.display_name.as_deref().unwrap_or("(none)"))
    );
    if let Some(h) = m.v1 {
        println!("  info-hash v1:  {h}");
    }
    if let Some(h) = m.v2 {
        println!("  info-hash v2:  {h}");
    }
    for t in &m.trackers {
        println!("  tracker:       {}", clean(t));
    }
    for w in &m.web_seeds {
        println!("  web seed:      {}", clean(w));
    }
    for p in &m.peers {
        println!("  peer:          {}", clean(p));
    }
}

fn print_torrent(t: &Torrent, max_files: usize) {
    let i = &t.info;
    let h = t.info_hashes;
    println!("name:          {}", clean(&i.name));
    println!("version:       {}", i.version.as_str());
    if let Some(v1) = h.v1 {
        println!("info-hash v1:  {v1}");
    }
    if let Some(v2) = h.v2 {
        println!("info-hash v2:  {v2}");
        println!("  truncated:   {}", v2.truncated());
    }
    println!(
        "size:          {} ({} bytes)",
        human_bytes(i.total_size()),
        i.total_size()
    );
    println!(
        "pieces:        {} x {}",
        i.geometry.piece_count(),
        human_bytes(i.piece_length)
    );
    println!("private:       {}", if i.private { "yes" } else { "no" });
    if let Some(s) = &i.source {
        println!("source:        {}", clean(s));
    }
    if let Some(c) = &t.created_by {
        println!("created by:    {}", clean(c));
    }
    if let Some(d) = t.creation_date {
        println!("created:       {}", crate::output::utc(d));
    }
    if let Some(c) = &t.comment {
        println!("comment:       {}", clean(c));
    }
    if t.trackers.is_empty() {
        println!("trackers:      none (DHT or peers only)");
    }
    for (n, tier) in t.trackers.iter().enumerate() {
        println!("tier {n}:        {}", clean(&tier.join(" ")));
    }
    for w in &t.web_seeds {
        println!("web seed:      {}", clean(w));
    }
    for w in &t.warnings {
        println!("warning:       {}", clean(w));
    }
    let real: Vec<_> = i.files.iter().filter(|f| !f.attr.pad).collect();
    println!("files:         {}", real.len());
    print_tree(&i.name, i.multi_file, &real, max_files);
    println!("magnet:        {}", clean(&magnet_of(t).to_uri()));
}

/// An indented tree, folders first by name.
fn print_tree(name: &str, multi: bool, files: &[&metainfo::FileEntry], max: usize) {
    #[derive(Default)]
    struct Dir<'a> {
        dirs: BTreeMap<&'a str, Dir<'a>>,
        files: Vec<(&'a str, u64)>,
    }
    if !multi {
        if let Some(f) = files.first() {
            println!("  {} ({})", clean(name), human_bytes(f.length));
        }
        return;
    }
    let mut root = Dir::default();
    for f in files.iter().take(max) {
        let mut d = &mut root;
        let (last, dirs) = match f.path.split_last() {
            Some(x) => x,
            None => continue,
        };
        for c in dirs {
            d = d.dirs.entry(c.as_str()).or_default();
        }
        d.files.push((last.as_str(), f.length));
    }
    fn show(d: &Dir<'_>, depth: usize) {
        let pad = "  ".repeat(depth);
        for (n, sub) in &d.dirs {
            println!("{pad}{}/", clean(n));
            show(sub, depth + 1);
        }
        for (n, len) in &d.files {
            println!("{pad}{} ({})", clean(n), human_bytes(*len));
        }
    }
    println!("  {}/", clean(name));
    show(&root, 2);
    if files.len() > max {
        println!("  ... and {} more (use --max-files or --json)", files.len() - max);
    }
}
