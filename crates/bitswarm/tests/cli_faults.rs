//! Faults around `bitswarm get`, with real processes: `kill -9` in the middle of a download and a disk
//! that fills up. Both end with a byte-identical download.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::pseudo_random;

const BIN: &str = env!("CARGO_BIN_EXE_bitswarm");

/// A child killed (SIGKILL) and reaped when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `bitswarm ARGS` with stderr read line by line into a channel.
fn spawn(args: &[&str]) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .env("BITSWARM_DHT_BOOTSTRAP", "")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Proc(child), rx)
}

/// Wait for a line containing `needle`; every line seen is kept in `log`.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, timeout: Duration, log: &mut Vec<String>) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!(
                "no line with {needle:?} within {timeout:?}; saw:\n{}",
                log.join("\n")
            ),
        }
    }
}

/// Make the payload and its torrent in `dir`; returns (torrent path, payload bytes).
fn setup(dir: &Path, size: usize) -> (String, Vec<u8>) {
    setup_with(dir, size, &[])
}

/// As [`setup`], with extra `bitswarm create` arguments (trackers).
fn setup_with(dir: &Path, size: usize, extra: &[&str]) -> (String, Vec<u8>) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let data = pseudo_random(size, 5);
    std::fs::write(src.join("payload.bin"), &data).unwrap();
    let torrent = dir.join("payload.torrent");
    let st = Command::new(BIN)
        .env("BITSWARM_DHT_BOOTSTRAP", "")
        .args([
            "create",
            src.join("payload.bin").to_str().unwrap(),
            "-o",
            torrent.to_str().unwrap(),
            "-l",
            "256K",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    (torrent.to_str().unwrap().to_string(), data)
}

/// A seeder on loopback serving `dir/src`, its upload limited to `rate`; returns it and its address.
fn seeder(dir: &Path, torrent: &str, rate: &str) -> (Proc, String, mpsc::Receiver<String>) {
    let src = dir.join("src");
    let resume = dir.join("seed-resume");
    let (p, rx) = spawn(&[
        "seed",
        torrent,
        "-o",
        src.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--no-trackers",
        "--max-up",
        rate,
        "--resume-dir",
        resume.to_str().unwrap(),
    ]);
    let mut log = Vec::new();
    let line = wait_line(&rx, "listening on ", Duration::from_secs(20), &mut log);
    let addr = line.rsplit(' ').next().unwrap().to_string();
    wait_line(&rx, "seeding 1 torrent", Duration::from_secs(30), &mut log);
    (p, addr, rx)
}

/// Stop a seeder with SIGTERM and read how many bytes it uploaded.
fn stop_seeder(mut p: Proc, rx: &mpsc::Receiver<String>) -> u64 {
    let st = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut log = Vec::new();
    let line = wait_line(rx, "uploaded ", Duration::from_secs(20), &mut log);
    let _ = p.0.wait();
    line.split("uploaded ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn get_args<'a>(torrent: &'a str, out: &'a str, peer: &'a str, resume: &'a str) -> Vec<&'a str> {
    vec![
        "get",
        torrent,
        "-o",
        out,
        "--peer",
        peer,
        "--no-trackers",
        "--listen",
        "127.0.0.1:0",
        "--resume-dir",
        resume,
        "--resume-interval",
        "1",
    ]
}

/// Numbers from get's last line: "... downloaded N bytes, resumed M bytes".
fn figures(line: &str) -> (u64, u64) {
    let num = |key: &str| -> u64 {
        let at = line.find(key).unwrap_or_else(|| panic!("no {key:?} in {line:?}")) + key.len();
        line[at..].split_whitespace().next().unwrap().parse().unwrap()
    };
    (num("downloaded "), num("resumed "))
}

#[test]
fn kill_9_during_a_download_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let size = 48 << 20;
    let (torrent, data) = setup(dir.path(), size);
    let (seed, addr, seed_rx) = seeder(dir.path(), &torrent, "8M");
    let out = dir.path().join("dl");
    let resume = dir.path().join("resume");
    let (out_s, resume_s) = (out.to_str().unwrap(), resume.to_str().unwrap());

    // First run: killed with SIGKILL after about half the data, once resume data has been saved.
    let (mut first, _rx) = spawn(&get_args(&torrent, out_s, &addr, resume_s));
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first run ended on its own"
    );
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert!(
        std::fs::read_dir(&resume).unwrap().count() >= 1,
        "no resume file was saved"
    );

    // Second run: resumes and finishes.
    let (mut second, rx) = spawn(&get_args(&torrent, out_s, &addr, resume_s));
    let mut log = Vec::new();
    let line = wait_line(&rx, "resumed ", Duration::from_secs(60), &mut log);
    let status = second.0.wait().unwrap();
    assert!(status.success(), "second run failed: {}", log.join("\n"));
    let got = std::fs::read(out.join("payload.bin")).unwrap();
    assert!(got == data, "the resumed download differs");
    let (downloaded, resumed) = figures(&line);
    assert!(
        resumed > 0 && resumed < size as u64,
        "resumed {resumed} of {size}"
    );
    assert_eq!(
        downloaded,
        size as u64 - resumed,
        "the second run fetched only what was missing"
    );
    // The seeder served both runs: what it sent beyond one copy was downloaded twice (blocks of pieces
    // not yet verified, or verified after the last resume save, when the first run was killed).
    let uploaded = stop_seeder(seed, &seed_rx);
    let redownloaded = uploaded.saturating_sub(size as u64);
    eprintln!(
        "kill -9 resume: {resumed} of {size} bytes kept, {downloaded} fetched by the second run, \
         {redownloaded} bytes downloaded twice ({uploaded} sent by the seeder in all)"
    );
    assert!(redownloaded <= 8 << 20, "{redownloaded} bytes downloaded twice");
}

fn mount(args: &[&str]) -> bool {
    Command::new("mount")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// A small tmpfs as the download folder: the download stalls with a clear error when it is full, and
/// goes on by itself once the file system is grown; the resume data stays usable.
#[test]
fn a_full_disk_stalls_with_a_clear_error_and_continues_when_space_returns() {
    if !nix_is_root() {
        panic!("this test mounts a tmpfs and must run as root (CI does): run the suite as root");
    }
    let dir = tempfile::tempdir().unwrap();
    let size = 24 << 20;
    let (torrent, data) = setup(dir.path(), size);
    let (_seed, addr, seed_rx) = seeder(dir.path(), &torrent, "0");
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || while seed_rx.recv().is_ok() {});
    let out = dir.path().join("small-disk");
    std::fs::create_dir_all(&out).unwrap();
    let out_s = out.to_str().unwrap().to_string();
    assert!(
        mount(&["-t", "tmpfs", "-o", "size=12m", "tmpfs", &out_s]),
        "cannot mount a tmpfs"
    );
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(out_s.clone());
    let resume = dir.path().join("resume");
    let resume_s = resume.to_str().unwrap();

    let (mut get, rx) = spawn(&get_args(&torrent, &out_s, &addr, resume_s));
    let mut log = Vec::new();
    let err = wait_line(&rx, "cannot write", Duration::from_secs(30), &mut log);
    assert!(
        err.contains("No space left on device") || err.contains("os error 28"),
        "{err}"
    );
    assert!(err.contains("payload.bin"), "the error names the file: {err}");
    assert!(
        get.0.try_wait().unwrap().is_none(),
        "get gave up instead of waiting for space"
    );

    assert!(
        mount(&["-o", "remount,size=64m", &out_s]),
        "cannot grow the tmpfs"
    );
    let status = get.0.wait().unwrap();
    while let Ok(l) = rx.try_recv() {
        log.push(l);
    }
    assert!(
        status.success(),
        "get failed after space returned:\n{}",
        log.join("\n")
    );
    let got = std::fs::read(out.join("payload.bin")).unwrap();
    assert!(got == data, "the download differs");

    // The resume data written around the failure is intact: a new run trusts it and downloads nothing.
    let (mut again, rx) = spawn(&get_args(&torrent, &out_s, &addr, resume_s));
    let status = again.0.wait().unwrap();
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "{}", lines.join("\n"));
    let done = lines
        .iter()
        .find(|l| l.contains("complete and verified"))
        .unwrap();
    assert!(done.contains(" 0 B downloaded"), "{done}");
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Ctrl-C (SIGINT) in the middle of a download through a tracker: get exits with 130 at once, the tracker
/// hears `stopped` (the leecher leaves its peer list), and resume data is on disk; the same command then
/// resumes and finishes.
#[test]
fn ctrl_c_sends_stopped_saves_resume_data_and_the_same_command_resumes() {
    use support::netns::Net;
    use support::tracker::Tracker;
    let dir = tempfile::tempdir().unwrap();
    let mut tracker = Tracker::start(&Net::Loopback, dir.path());
    let url = tracker.http_announce.clone();
    let size = 32 << 20;
    let (torrent, data) = setup_with(dir.path(), size, &["--tracker", &url]);
    let info_hash = {
        let out = Command::new(BIN)
            .env("BITSWARM_DHT_BOOTSTRAP", "")
            .args(["inspect", &torrent, "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["info_hash_v1"].as_str().unwrap().to_string()
    };
    // The seeder announces to the tracker (no --no-trackers here) and is limited so the download lasts.
    let src = dir.path().join("src");
    let (mut seed, seed_rx) = spawn(&[
        "seed",
        &torrent,
        "-o",
        src.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--max-up",
        "8M",
        "--resume-dir",
        dir.path().join("seed-resume").to_str().unwrap(),
    ]);
    let mut log = Vec::new();
    wait_line(&seed_rx, "seeding 1 torrent", Duration::from_secs(30), &mut log);
    std::thread::spawn(move || while seed_rx.recv().is_ok() {});
    tracker.wait_stats(
        &info_hash,
        "the seeder registered",
        Duration::from_secs(20),
        |s| s.seeders >= 1,
    );

    let out = dir.path().join("dl");
    let resume = dir.path().join("resume");
    let args = [
        "get",
        &torrent,
        "-o",
        out.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--resume-dir",
        resume.to_str().unwrap(),
    ];
    let (mut get, _rx) = spawn(&args);
    tracker.wait_stats(
        &info_hash,
        "the leecher announced",
        Duration::from_secs(20),
        |s| s.leechers >= 1,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let st = Command::new("kill")
        .args(["-INT", &get.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let started = Instant::now();
    let code = loop {
        if let Some(s) = get.0.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "get did not stop within 15 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(130), "an interrupted download exits with 130");
    // `stopped` reached the tracker: the leecher is gone from the swarm at once.
    let snap = tracker.wait_stats(&info_hash, "the leecher left", Duration::from_secs(5), |s| {
        s.leechers == 0
    });
    assert_eq!(snap.seeders, 1, "{snap:?}");
    assert!(
        std::fs::read_dir(&resume).unwrap().count() >= 1,
        "no resume data after Ctrl-C"
    );

    // The same command resumes and completes.
    let (mut again, rx) = spawn(&args);
    let status = again.0.wait().unwrap();
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "{}", lines.join("\n"));
    let line = lines
        .iter()
        .find(|l| l.contains("resumed "))
        .unwrap_or_else(|| panic!("{}", lines.join("\n")));
    let (_, resumed) = figures(line);
    assert!(resumed > 0, "nothing was kept from the first run: {line}");
    assert!(std::fs::read(out.join("payload.bin")).unwrap() == data);
    // A completed download is counted by the tracker (the `completed` event).
    tracker.wait_stats(
        &info_hash,
        "the download counted as completed",
        Duration::from_secs(10),
        |s| s.completed >= 1,
    );
    let _ = seed.0.kill();
}
