//! `bitswarm create`: hash a file or folder on every core and write a .torrent (v1, v2 or hybrid).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use metainfo::{auto_piece_length, BuildFile, Torrent, TorrentBuilder, Version};
use storage::{hash_pieces, Progress};

use crate::output::{human_bytes, parse_size};

pub const EXAMPLES: &str = "Examples:
  bitswarm create movie.mkv --tracker http://tracker.example:6969/announce
  bitswarm create ./folder -o folder.torrent --hybrid --piece-length 4M --no-date
  bitswarm create disk.vmdk --tracker udp://a.example:6969,udp://b.example:6969 --tracker http://c.example/announce

Each --tracker is one tier (BEP 12); commas separate trackers within a tier.
SOURCE_DATE_EPOCH, when set, is used as the creation date (reproducible builds).";

/// `create` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file or folder to share.
    pub path: PathBuf,
    /// Where to write the torrent (default: NAME.torrent in the current folder).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// A tracker tier: one URL, or several separated by commas. Repeat for more tiers.
    #[arg(short, long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece length: `auto` (about 1500 pieces, 16 KiB..16 MiB) or a size such as 256K, 1M.
    #[arg(short = 'l', long, default_value = "auto")]
    pub piece_length: String,
    /// Mark the torrent private (BEP 27): no DHT, PEX or local discovery.
    #[arg(long)]
    pub private: bool,
    /// A v1 torrent (BEP 3, SHA-1): the default, readable by every client.
    #[arg(long, group = "ver")]
    pub v1: bool,
    /// A v2 torrent (BEP 52, SHA-256 merkle trees) only.
    #[arg(long, group = "ver")]
    pub v2: bool,
    /// A hybrid torrent: v1 and v2 at once, with pad files aligning files to pieces.
    #[arg(long, group = "ver")]
    pub hybrid: bool,
    /// A comment stored in the torrent.
    #[arg(short, long)]
    pub comment: Option<String>,
    /// A web seed URL (BEP 19). Repeat for more.
    #[arg(short = 'w', long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// The `source` field (private trackers use it to give a torrent its own info-hash).
    #[arg(long)]
    pub source: Option<String>,
    /// Leave out the creation date, so the same input always gives the same bytes.
    #[arg(long)]
    pub no_date: bool,
    /// Hashing threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the result as JSON (otherwise a summary is printed only on a terminal).
    #[arg(long)]
    pub json: bool,
}

/// What [`make_torrent`] needs besides the path.
#[derive(Debug, Clone, Default)]
pub struct MakeOptions {
    pub version: Option<Version>,
    /// `None`: automatic.
    pub piece_length: Option<u64>,
    pub trackers: Vec<Vec<String>>,
    pub web_seeds: Vec<String>,
    pub comment: Option<String>,
    pub creation_date: Option<i64>,
    pub private: bool,
    pub source: Option<String>,
    pub threads: Option<usize>,
}

/// A torrent made and hashed, with what it took.
pub struct Made {
    pub torrent: Torrent,
    pub total: u64,
    pub piece_length: u64,
    pub version: Version,
    pub elapsed: Duration,
}

/// Split `--tracker` values into tiers (commas separate trackers within a tier).
pub fn tiers(values: &[String]) -> Vec<Vec<String>> {
    values
        .iter()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// Hash the file or folder `root` on every core (a progress bar on a terminal) and make its torrent.
pub fn make_torrent(root: &Path, o: &MakeOptions) -> Result<Made> {
    let version = o.version.unwrap_or(Version::V1);
    let meta = std::fs::metadata(root).with_context(|| format!("{}: cannot read", root.display()))?;
    let name = file_name(root)?;
    let (files, multi_file) = if meta.is_dir() {
        (walk(root)?, true)
    } else if meta.is_file() {
        (
            vec![BuildFile {
                path: vec![name.clone()],
                length: meta.len(),
                executable: is_exec(&meta),
            }],
            false,
        )
    } else {
        bail!("{}: not a regular file or folder", root.display());
    };
    let total: u64 = files.iter().map(|f| f.length).sum();
    if total == 0 {
        bail!("{}: nothing to share (no file has any data)", root.display());
    }
    let piece_length = o.piece_length.unwrap_or_else(|| auto_piece_length(total));
    if version != Version::V1 && (piece_length < 16384 || !piece_length.is_power_of_two()) {
        bail!("--piece-length {piece_length}: v2 and hybrid torrents need a power of two of at least 16K");
    }
    let mut builder = TorrentBuilder::new(name, files, multi_file, version, piece_length);
    builder.trackers = o.trackers.clone();
    builder.web_seeds = o.web_seeds.clone();
    builder.comment = o.comment.clone();
    builder.created_by = Some(format!("bitswarm {}", env!("CARGO_PKG_VERSION")));
    builder.creation_date = o.creation_date;
    builder.private = o.private;
    builder.source = o.source.clone();
    let plan = builder.plan().with_context(|| format!("{}", root.display()))?;
    let base = if multi_file {
        root.to_path_buf()
    } else {
        root.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let paths: Vec<Option<PathBuf>> = plan
        .entries()
        .iter()
        .map(|e| {
            e.source
                .and_then(|s| plan.files().get(s))
                .map(|f| base.join(f.path.iter().collect::<PathBuf>()))
        })
        .collect();
    let paths = if multi_file {
        paths
    } else {
        vec![Some(root.to_path_buf())]
    };
    let threads = o
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let progress = Progress::default();
    let started = Instant::now();
    let hashes = std::thread::scope(|s| {
        let show = std::io::stderr().is_terminal();
        let progress = &progress;
        let bar = s.spawn(move || {
            if show {
                show_progress(progress, total);
            }
        });
        let r = hash_pieces(plan.geometry(), &paths, threads, progress);
        progress.cancel.store(true, Ordering::Relaxed);
        let _ = bar.join();
        r
    })?;
    let elapsed = started.elapsed();
    let bytes = plan.finish(&hashes)?;
    // Parse what we made: it must pass our own strict checks.
    let torrent = Torrent::from_bytes(bytes).context("internal error: the torrent made does not parse")?;
    tracing::info!(seconds = elapsed.as_secs_f64(), bytes = total, "hashed");
    Ok(Made {
        torrent,
        total,
        piece_length,
        version,
        elapsed,
    })
}

/// The creation date to record: none with `no_date`, else SOURCE_DATE_EPOCH, else now.
pub fn creation_date(no_date: bool) -> Result<Option<i64>> {
    if no_date {
        Ok(None)
    } else if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        Ok(Some(
            s.trim()
                .parse::<i64>()
                .context("SOURCE_DATE_EPOCH is not a number of seconds")?,
        ))
    } else {
        Ok(Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        ))
    }
}

pub fn run(a: Args) -> Result<()> {
    let version = if a.v2 {
        Version::V2
    } else if a.hybrid {
        Version::Hybrid
    } else {
        Version::V1
    };
    let root = a.path.as_path();
    let piece_length = if a.piece_length == "auto" {
        None
    } else {
        Some(
            parse_size(&a.piece_length)
                .map_err(anyhow::Error::msg)
                .context("--piece-length")?,
        )
    };
    let name = file_name(root)?;
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.torrent")));
    if output.exists() && !a.force {
        bail!("{}: already exists (use --force to overwrite)", output.display());
    }
    let opts = MakeOptions {
        version: Some(version),
        piece_length,
        trackers: tiers(&a.trackers),
        web_seeds: a.web_seeds.clone(),
        comment: a.comment.clone(),
        creation_date: creation_date(a.no_date)?,
        private: a.private,
        source: a.source.clone(),
        threads: a.threads,
    };
    let Made {
        torrent,
        total,
        piece_length,
        version,
        elapsed,
    } = make_torrent(root, &opts)?;
    write_atomically(&output, torrent.bytes())?;

    let h = torrent.info_hashes;
    let magnet = super::inspect::magnet_of(&torrent).to_uri();
    if a.json {
        let v = serde_json::json!({
            "output": output.display().to_string(),
            "name": torrent.info.name,
            "version": version.as_str(),
            "info_hash_v1": h.v1.map(|x| x.to_hex()),
            "info_hash_v2": h.v2.map(|x| x.to_hex()),
            "total_size": total,
            "piece_length": piece_length,
            "piece_count": torrent.info.geometry.piece_count(),
            "seconds": elapsed.as_secs_f64(),
            "magnet": magnet,
        });
        println!("{v}");
    } else {
        println!(
            "wrote {} ({} torrent, {} in {} pieces of {})",
            output.display(),
            version.as_str(),
            human_bytes(total),
            torrent.info.geometry.piece_count(),
            human_bytes(piece_length)
        );
        if let Some(v1) = h.v1 {
            println!("info-hash v1: {v1}");
        }
        if let Some(v2) = h.v2 {
            println!("info-hash v2: {v2}");
        }
        println!("magnet: {magnet}");
    }
    Ok(())
}

fn show_progress(progress: &Progress, total: u64) {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "hashing {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while !progress.cancel.load(Ordering::Relaxed) {
        bar.set_position(progress.bytes.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn file_name(p: &Path) -> Result<String> {
    let canon = std::fs::canonicalize(p).with_context(|| format!("{}: cannot resolve", p.display()))?;
    let name = canon
        .file_name()
        .with_context(|| format!("{}: has no name to give the torrent", p.display()))?;
    name.to_str()
        .map(String::from)
        .with_context(|| format!("{}: the name is not UTF-8", p.display()))
}

#[cfg(unix)]
fn is_exec(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}
#[cfg(not(unix))]
fn is_exec(_: &std::fs::Metadata) -> bool {
    false
}

/// Every regular file under `root`, with paths relative to it. Symbolic links and special files are
/// skipped with a warning (they are not followed, so nothing outside `root` is shared by accident).
fn walk(root: &Path) -> Result<Vec<BuildFile>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), Vec::<String>::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
            let path = entry.path();
            let ft = entry
                .file_type()
                .with_context(|| format!("{}: cannot stat", path.display()))?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                bail!("{}: the name is not UTF-8", path.display());
            };
            let mut p = rel.clone();
            p.push(name);
            if ft.is_dir() {
                stack.push((path, p));
            } else if ft.is_file() {
                let m = entry
                    .metadata()
                    .with_context(|| format!("{}: cannot stat", path.display()))?;
                out.push(BuildFile {
                    path: p,
                    length: m.len(),
                    executable: is_exec(&m),
                });
            } else {
                tracing::warn!(path = %path.display(), "skipping: not a regular file");
            }
        }
    }
    Ok(out)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.part",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("torrent")
    ));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}
