//! Benchmark filler (bench/directory.sh): creates a directory database with synthetic torrents, names and file
//! names drawn from a generated vocabulary with Zipf-like word frequencies (so there are common and rare
//! words), random sizes, 1-20 files, categories, seeders/leechers and upload times; prints how long it took
//! and the database's size, and writes the vocabulary with each word's document count beside the database
//! (`DB.words.tsv`: rank, word, torrents containing it), from which the benchmark picks common and rare words.
//!
//! ```text
//! cargo run --release -p directory --example fill -- /tmp/directory.db [--count 1000000] [--seed 1]
//! ```
//!
//! Deterministic: the same seed and count give the same torrents.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use directory::{Db, SyntheticTorrent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Distinct words in the vocabulary.
const VOCABULARY: usize = 100_000;
/// Zipf-Mandelbrot law: the word of rank r is drawn with probability proportional to 1 / (r + Q)^S (Q
/// flattens the head, so the commonest word is in about a quarter of the torrents rather than most).
const ZIPF_S: f64 = 1.0;
const ZIPF_Q: f64 = 3.0;
/// Torrents per transaction.
const BATCH: usize = 20_000;

const CATEGORIES: &[(&str, u32, &[&str])] = &[
    ("movies", 30, &["mkv", "mp4", "avi", "srt"]),
    ("tv", 20, &["mkv", "mp4", "srt"]),
    ("music", 15, &["flac", "mp3", "ogg", "cue", "jpg"]),
    ("games", 8, &["iso", "bin", "exe", "txt"]),
    ("software", 10, &["iso", "tar", "zip", "deb", "txt"]),
    ("books", 10, &["pdf", "epub", "mobi"]),
    ("images", 4, &["jpg", "png", "raw"]),
    ("other", 3, &["bin", "dat", "txt", "zip"]),
];
const TAGS: &[&str] = &[
    "1080p",
    "720p",
    "2160p",
    "x264",
    "x265",
    "web",
    "remastered",
    "proper",
    "repack",
];

struct Args {
    path: PathBuf,
    count: usize,
    seed: u64,
}

fn usage() -> String {
    "usage: fill DB_PATH [--count N] [--seed S]".to_string()
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut path = None;
    let (mut count, mut seed) = (1_000_000usize, 1u64);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--count" => count = it.next().and_then(|v| v.parse().ok()).ok_or_else(usage)?,
            "--seed" => seed = it.next().and_then(|v| v.parse().ok()).ok_or_else(usage)?,
            _ if path.is_none() && !a.starts_with('-') => path = Some(PathBuf::from(a)),
            _ => return Err(usage()),
        }
    }
    Ok(Args {
        path: path.ok_or_else(usage)?,
        count,
        seed,
    })
}

/// Pronounceable, distinct words made of syllables.
fn vocabulary(rng: &mut StdRng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "cr",
        "dr", "fl", "gr", "pl", "st", "tr", "sh", "ch", "th", "qu",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"];
    const CODAS: &[&str] = &["", "", "", "n", "r", "s", "l", "x", "m", "nd", "rt"];
    let pick = |rng: &mut StdRng, l: &[&'static str]| -> &'static str {
        l.get(rng.random_range(0..l.len())).copied().unwrap_or("a")
    };
    let mut seen = std::collections::HashSet::with_capacity(VOCABULARY);
    let mut words = Vec::with_capacity(VOCABULARY);
    while words.len() < VOCABULARY {
        let syllables = if words.len() < 200 {
            rng.random_range(1..=2)
        } else {
            rng.random_range(2..=4)
        };
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(pick(rng, ONSETS));
            w.push_str(pick(rng, VOWELS));
            w.push_str(pick(rng, CODAS));
        }
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// Cumulative Zipf weights over ranks 1..=n, normalised to end at 1.
fn zipf_table(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cum: Vec<f64> = (1..=n)
        .map(|r| {
            acc += 1.0 / (r as f64 + ZIPF_Q).powf(ZIPF_S);
            acc
        })
        .collect();
    for c in &mut cum {
        *c /= acc;
    }
    cum
}

struct Gen {
    rng: StdRng,
    words: Vec<String>,
    zipf: Vec<f64>,
    /// Torrents containing each word (by rank - 1).
    docs: Vec<u32>,
    /// Which torrent last counted each word (to count a torrent once).
    last: Vec<u32>,
    now: i64,
}

impl Gen {
    fn word(&mut self, torrent: u32) -> String {
        let u: f64 = self.rng.random();
        let i = self.zipf.partition_point(|c| *c < u).min(self.words.len() - 1);
        if self.last.get(i) != Some(&torrent) {
            if let (Some(l), Some(d)) = (self.last.get_mut(i), self.docs.get_mut(i)) {
                *l = torrent;
                *d += 1;
            }
        }
        self.words.get(i).cloned().unwrap_or_default()
    }

    fn words(&mut self, torrent: u32, n: usize, title_case: bool) -> Vec<String> {
        (0..n)
            .map(|_| {
                let w = self.word(torrent);
                if title_case {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                } else {
                    w
                }
            })
            .collect()
    }

    fn torrent(&mut self, i: usize, count: usize) -> SyntheticTorrent {
        let t = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let total: u32 = CATEGORIES.iter().map(|c| c.1).sum();
        let mut x = self.rng.random_range(0..total);
        let mut cat = CATEGORIES.first().copied().unwrap_or(("other", 1, &["bin"]));
        for c in CATEGORIES {
            if x < c.1 {
                cat = *c;
                break;
            }
            x -= c.1;
        }
        let n = self.rng.random_range(2..=6);
        let mut name = self.words(t, n, true).join(" ");
        if self.rng.random_bool(0.5) {
            name.push_str(&format!(" ({})", self.rng.random_range(1960..=2025)));
        }
        if matches!(cat.0, "movies" | "tv") {
            let tag = TAGS
                .get(self.rng.random_range(0..TAGS.len()))
                .copied()
                .unwrap_or("web");
            name.push(' ');
            name.push_str(tag);
        }
        // Half are single files; the rest 2-20 files.
        let files_n = if self.rng.random_bool(0.5) {
            1
        } else {
            self.rng.random_range(2..=20)
        };
        // Total size log-uniform from 100 kB to 50 GB, split evenly-ish among the files.
        let size = (self.rng.random_range(11.5f64..24.6)).exp() as u64;
        let ext = |g: &mut Gen| {
            cat.2
                .get(g.rng.random_range(0..cat.2.len()))
                .copied()
                .unwrap_or("bin")
        };
        let mut files = Vec::with_capacity(files_n);
        if files_n == 1 {
            let e = ext(self);
            files.push((format!("{}.{e}", name.replace(' ', ".")), size));
        } else {
            let each = size / files_n as u64;
            for k in 1..=files_n {
                let w = self.rng.random_range(1..=3);
                let stem = self.words(t, w, false).join(" ");
                let e = ext(self);
                let len = (each as f64 * self.rng.random_range(0.5..1.5)) as u64 + 1;
                files.push((format!("{k:02} {stem}.{e}"), len));
            }
        }
        let description = if self.rng.random_bool(0.3) {
            let n = self.rng.random_range(5..=15);
            self.words(t, n, false).join(" ")
        } else {
            String::new()
        };
        // Seeders heavy-tailed: most torrents have a few, some thousands.
        let seeders = ((self.rng.random_range(0.0f64..1.0).powi(4) * 9.0).exp() - 1.0) as u32;
        let leechers = ((self.rng.random_range(0.0f64..1.0).powi(4) * 7.0).exp() - 1.0) as u32;
        // Upload times over five years, in id order (the newest last), about 158 s apart.
        let span = 5 * 365 * 24 * 3600i64;
        let step = span / i64::try_from(count.max(1)).unwrap_or(1);
        let created_at =
            self.now - span + step * i64::try_from(i).unwrap_or(0) + self.rng.random_range(0..step.max(1));
        let mut info_hash = [0u8; 20];
        self.rng.fill(&mut info_hash[..]);
        SyntheticTorrent {
            info_hash,
            name,
            category: cat.0.to_string(),
            files,
            description,
            created_at,
            seeders,
            leechers,
        }
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let started = Instant::now();
    let db = Db::open(&a.path, 1)?;
    let mut rng = StdRng::seed_from_u64(a.seed);
    let words = vocabulary(&mut rng);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut g = Gen {
        rng,
        zipf: zipf_table(words.len()),
        docs: vec![0; words.len()],
        last: vec![0; words.len()],
        words,
        now: i64::try_from(now)?,
    };
    let mut inserted = 0usize;
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..a.count {
        batch.push(g.torrent(i, a.count));
        if batch.len() == BATCH || i + 1 == a.count {
            inserted += db.bulk_insert_synthetic(&batch)?;
            batch.clear();
            if inserted % 100_000 < BATCH {
                eprintln!(
                    "fill: {inserted} torrents, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let insert_secs = started.elapsed().as_secs_f64();
    let t = Instant::now();
    db.optimize()?;
    let optimize_secs = t.elapsed().as_secs_f64();
    drop(db);
    let mut out = std::io::BufWriter::new(std::fs::File::create(format!("{}.words.tsv", a.path.display()))?);
    for (r, (w, d)) in g.words.iter().zip(&g.docs).enumerate() {
        writeln!(out, "{}\t{w}\t{d}", r + 1)?;
    }
    out.flush()?;
    let wal = PathBuf::from(format!("{}-wal", a.path.display()));
    println!(
        "inserted={inserted} insert_seconds={insert_secs:.1} optimize_seconds={optimize_secs:.1} \
         rate_per_second={:.0} database_bytes={} wal_bytes={}",
        inserted as f64 / insert_secs.max(1e-9),
        file_size(&a.path),
        file_size(&wal)
    );
    Ok(())
}
