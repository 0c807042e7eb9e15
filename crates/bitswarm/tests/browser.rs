//! The directory's web site in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against `bitswarm directory` on 127.0.0.1. A visitor registers, signs in, uploads a torrent made with
//! `bitswarm create`, finds it, watches its seeders go from 0 to 1 when `bitswarm seed` announces to the
//! embedded tracker, follows the magnet link (with `bitswarm get`) and downloads the .torrent; an invalid
//! upload shows the parser's exact reason; a name made of markup stays text; the pages fit a phone.
//!
//! Screenshots of the main pages (home, search, torrent, upload, an error), desktop and phone, light and
//! dark, are written to `target/screenshots/` (ignored by git, kept by CI as artefacts).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::bitswarm::{BitswarmPeer, Mode, PeerOptions};
use support::clients::Placement;
use support::http::{request, Request};
use support::netns::Net;
use support::payload::{assert_same_tree, create_torrent, make_tree};
use support::proc::Proc;
use support::webdriver::{require_browser, screenshot_dir, Browser, Viewport, DESKTOP, PHONE};

const PASSWORD: &str = "correct horse battery";
/// Page loads and form posts on a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(30);

/// `bitswarm directory` on 127.0.0.1 (ports the system picks, a fresh database); killed on drop.
struct Directory {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// The embedded tracker's HTTP announce URL, as the site names it.
    announce: String,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Directory {
    fn start() -> Directory {
        let dir = tempfile::Builder::new()
            .prefix("bsw-directory-")
            .tempdir()
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitswarm"));
        cmd.args([
            "directory",
            "--listen",
            "127.0.0.1:0",
            "--tracker-http",
            "127.0.0.1:0",
            "--tracker-udp",
            "127.0.0.1:0",
            "--insecure-cookies",
            "--database",
        ])
        .arg(dir.path().join("directory.db"))
        // Cheap password hashes: a debug build of Argon2id at the default cost takes seconds.
        .env("BITSWARM_DIRECTORY__ACCOUNTS__ARGON2_MEMORY_KIB", "1024")
        .env("BITSWARM_DIRECTORY__ACCOUNTS__ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
        let mut proc = Proc::spawn("bitswarm directory", cmd, dir.path());
        let base = proc.wait_line("site address", STEP, |l| {
            l.strip_prefix("directory: http://")
                .map(|rest| format!("http://{}", rest.trim_end_matches('/')))
        });
        let announce = proc.wait_line("embedded tracker URL", STEP, |l| {
            l.strip_prefix("directory: embedded tracker http://")
                .map(|rest| format!("http://{rest}"))
        });
        // Ready when the home page answers.
        let deadline = std::time::Instant::now() + STEP;
        loop {
            if matches!(
                request(&Net::Loopback, &Request::get(&format!("{base}/"))),
                Ok((200, _))
            ) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the directory did not answer within {STEP:?}\n{}",
                proc.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Directory {
            base,
            announce,
            proc,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Registers `name` through the form, signs out, and signs in again through the sign-in form.
fn register_and_sign_in(b: &mut Browser, d: &Directory, name: &str) {
    b.goto(&d.url("/"));
    let link = b.wait_for("#nav-register", STEP);
    b.click(&link);
    let field = b.wait_for("#register-name", STEP);
    b.type_into(&field, name);
    let field = b.find("#register-password");
    b.type_into(&field, PASSWORD);
    let submit = b.find("#register-submit");
    b.click(&submit);
    let who = b.wait_for("#signed-in-as", STEP);
    assert_eq!(b.text(&who), format!("Signed in as {name}"));
    assert_eq!(b.current_url(), d.url("/"), "registration lands on the home page");

    let out = b.find("#logout-submit");
    b.click(&out);
    let link = b.wait_for("#nav-login", STEP);
    assert!(
        b.try_find("#signed-in-as").is_none(),
        "still signed in after signing out"
    );
    b.click(&link);
    let field = b.wait_for("#login-name", STEP);
    b.type_into(&field, name);
    let field = b.find("#login-password");
    b.type_into(&field, PASSWORD);
    let submit = b.find("#login-submit");
    b.click(&submit);
    let who = b.wait_for("#signed-in-as", STEP);
    assert_eq!(b.text(&who), format!("Signed in as {name}"));
}

/// Fills in and sends the upload form with `file` (an absolute path), `category` and `description`.
fn upload_through_form(b: &mut Browser, d: &Directory, file: &Path, category: &str, description: &str) {
    b.goto(&d.url("/"));
    let link = b.wait_for("#nav-upload", STEP);
    b.click(&link);
    let input = b.wait_for("#upload-form #upload-file", STEP);
    b.type_into(&input, file.to_str().unwrap());
    let option = b.find(&format!("#upload-category option[value=\"{category}\"]"));
    b.click(&option);
    let text = b.find("#upload-description");
    b.type_into(&text, description);
    let submit = b.find("#upload-submit");
    b.click(&submit);
}

/// Writes `<viewport>-<scheme>-<page>.png` for both colour schemes of the page now shown, checking that the
/// page does not scroll sideways and that the dark scheme is dark (light text on a dark background).
fn shoot(b: &mut Browser, page: &str) {
    let dir = screenshot_dir();
    for scheme in ["light", "dark"] {
        b.set_color_scheme(scheme);
        b.screenshot_page(&dir.join(format!("{}-{scheme}-{page}.png", b.viewport.name)));
        let overflow = b.horizontal_overflow();
        if overflow > 0 {
            let wide = b.execute(
                "var w=document.documentElement.clientWidth,out=[];\
                 document.querySelectorAll('body *').forEach(function(e){var r=e.getBoundingClientRect();\
                 if(r.right>w+0.5)out.push(e.tagName.toLowerCase()+(e.id?'#'+e.id:'')+\
                 (e.className?'.'+String(e.className).replace(/ /g,'.'):'')+' right='+Math.round(r.right));});\
                 return out.slice(0,20);",
                json!([]),
            );
            panic!(
                "{page} ({}, {scheme}) is {overflow} px wider than the window; past its edge: {wide}",
                b.viewport.name
            );
        }
        let colours = b.execute(
            "function lum(c){var m=c.match(/[\\d.]+/g).map(Number);\
             var f=function(v){v/=255;return v<=0.03928?v/12.92:Math.pow((v+0.055)/1.055,2.4)};\
             return 0.2126*f(m[0])+0.7152*f(m[1])+0.0722*f(m[2]);}\
             var s=getComputedStyle(document.body);return [lum(s.backgroundColor), lum(s.color)];",
            json!([]),
        );
        let (bg, fg) = (colours[0].as_f64().unwrap(), colours[1].as_f64().unwrap());
        let contrast = (bg.max(fg) + 0.05) / (bg.min(fg) + 0.05);
        assert!(
            contrast >= 7.0,
            "{page} ({scheme}): body text contrast {contrast:.1}:1"
        );
        if scheme == "dark" {
            assert!(
                bg < fg,
                "{page}: the dark scheme is not dark (background {bg:.2}, text {fg:.2})"
            );
        } else {
            assert!(
                bg > fg,
                "{page}: the light scheme is not light (background {bg:.2}, text {fg:.2})"
            );
        }
    }
    b.set_color_scheme("light");
}

/// Decodes `%XX` escapes (and `+` as a space) in one query value.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A content folder `name` of a few files under `parent`, and its torrent made by `bitswarm create` with
/// the directory's embedded tracker: (content root, torrent path, v1 info-hash).
fn content_and_torrent(parent: &Path, name: &str, announce: &str) -> (PathBuf, PathBuf, String) {
    let root = make_tree(parent, name, 42);
    let out = parent.join(format!("{name}.torrent"));
    let (torrent, hash) = create_torrent(&root, &[announce], &out);
    (root, torrent, hash)
}

#[test]
fn a_visitor_registers_uploads_finds_a_torrent_sees_its_seeder_arrive_and_fetches_it() {
    require_browser();
    let mut d = Directory::start();
    let mut b = Browser::start(DESKTOP);
    let work = tempfile::tempdir().unwrap();
    let seed_dir = work.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let name = "Movie-xyz Browser Edition";
    let (root, torrent, hash) = content_and_torrent(&seed_dir, name, &d.announce);
    let uploaded = std::fs::read(&torrent).unwrap();

    // An empty directory first.
    b.goto(&d.url("/"));
    b.wait_for("#search-form #search-q", STEP);
    assert!(b.find_all("#recent tr.result").is_empty());

    register_and_sign_in(&mut b, &d, "alice");
    upload_through_form(
        &mut b,
        &d,
        &torrent,
        "movies",
        "A test film.\nTwo lines of description.",
    );
    let title = b.wait_for("#torrent-name", STEP);
    assert_eq!(b.text(&title), name);
    assert_eq!(
        b.current_url(),
        d.url(&format!("/t/{hash}")),
        "an upload lands on its page"
    );
    assert_eq!(b.text_of("#uploader"), "alice");

    // Home lists it among the recent ones; the search box finds it by a word of its name.
    let home = b.find("#home-link");
    b.click(&home);
    b.wait_for(&format!("#recent tr.result[data-info-hash=\"{hash}\"]"), STEP);
    shoot(&mut b, "home");
    let q = b.find("#search-q");
    b.type_into(&q, "browser edition");
    let go = b.find("#search-submit");
    b.click(&go);
    let row = b.wait_for(&format!("#results tr.result[data-info-hash=\"{hash}\"]"), STEP);
    assert!(
        b.current_url().starts_with(&d.url("/search?q=browser")),
        "{}",
        b.current_url()
    );
    assert_eq!(b.text_of("#result-count"), "1 result · page 1 of 1");
    assert!(b.text(&row).starts_with(name), "{}", b.text(&row));
    shoot(&mut b, "search");
    let link = b.find(&format!(
        "#results tr.result[data-info-hash=\"{hash}\"] a.result-link"
    ));
    b.click(&link);
    let title = b.wait_for("#torrent-name", STEP);
    assert_eq!(b.text(&title), name);
    assert_eq!(b.text_of("#info-hash-v1"), hash);

    // Nobody in the swarm yet.
    assert_eq!(b.text_of("#swarm-seeders"), "0");
    assert_eq!(b.text_of("#seeders-total"), "0");
    assert!(b.texts_of("#swarm-peers tr.peer").is_empty());

    // A bitswarm seeder announces to the embedded tracker: the page shows it by itself (app.js refreshes
    // the swarm view every 5 s), without a reload.
    let mut seeder = BitswarmPeer::start(
        Mode::Seed,
        &torrent,
        &seed_dir,
        &Placement::Loopback,
        &PeerOptions {
            no_dht: true,
            ..PeerOptions::default()
        },
    );
    b.execute("window.__same_page = true; return null", json!([]));
    let (ok, seen) = b.wait_until(Duration::from_secs(45), |b| {
        let s = b.texts_of("#swarm-seeders").concat();
        (s == "1", s)
    });
    assert!(
        ok,
        "the swarm view still shows {seen:?} seeders\n{}\n{}",
        seeder.report(),
        d.proc.report()
    );
    assert_eq!(
        b.execute("return window.__same_page === true", json!([])),
        json!(true),
        "the page was reloaded instead of refreshed in place"
    );
    let peers = b.texts_of("#swarm-peers tr.peer");
    assert_eq!(peers.len(), 1, "{peers:?}");
    let peer_row = &peers[0];
    assert!(
        peer_row.contains("seed") && peer_row.contains("100.0%"),
        "{peer_row}"
    );
    assert_eq!(b.text_of("#seeders-total"), "1");
    assert_eq!(b.text_of("#swarm-summary"), "1 seeder, 0 leechers, 0 completed");
    assert_eq!(
        b.text_of("#trackers tr.tracker[data-embedded=\"true\"] td.seeders"),
        "1"
    );
    let html = b.execute("return document.documentElement.outerHTML", json!([]));
    let port = seeder.listen_addr().port().to_string();
    assert!(
        !html.as_str().unwrap().contains(&format!("127.0.0.1:{port}")),
        "the page shows the seeder's address"
    );
    shoot(&mut b, "torrent");

    // The magnet link: the info-hash and the embedded tracker.
    let magnet_el = b.find("#magnet-link");
    let magnet = b.attr(&magnet_el, "href").unwrap();
    let query = magnet
        .strip_prefix("magnet:?")
        .unwrap_or_else(|| panic!("{magnet}"));
    let params: Vec<(&str, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, percent_decode(v)))
        .collect();
    assert!(
        params.contains(&("xt", format!("urn:btih:{hash}"))),
        "{magnet} lacks xt=urn:btih:{hash}"
    );
    assert!(
        params.contains(&("tr", d.announce.clone())),
        "{magnet} lacks tr={}",
        d.announce
    );
    assert!(params.contains(&("dn", name.to_string())), "{magnet}");
    // Following it: Chromium has no handler for magnet: (it stays on the page); bitswarm is one, and gets
    // the metadata and the content from the seeder through the embedded tracker.
    b.click(&magnet_el);
    assert_eq!(b.current_url(), d.url(&format!("/t/{hash}")));
    let get_dir = work.path().join("get");
    let mut getter = BitswarmPeer::start(
        Mode::Get,
        Path::new(&magnet),
        &get_dir,
        &Placement::Loopback,
        &PeerOptions {
            no_dht: true,
            ..PeerOptions::default()
        },
    );
    let status = getter
        .wait_exit(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", seeder.report()));
    assert!(
        status.success(),
        "bitswarm get MAGNET: {status}\n{}",
        getter.report()
    );
    assert_same_tree(
        &root,
        &get_dir.join(name),
        false,
        "bitswarm get of the magnet link",
    );

    // The .torrent download: the very bytes uploaded.
    let dl = b.find("#download-link");
    assert!(
        b.attr(&dl, "download").is_some(),
        "the download link lacks the download attribute"
    );
    let href = b.prop(&dl, "href");
    let href = href.as_str().unwrap();
    assert_eq!(href, d.url(&format!("/t/{hash}/download")));
    let (status, bytes) = request(&Net::Loopback, &Request::get(href)).unwrap();
    assert_eq!(status, 200);
    assert!(
        bytes == uploaded,
        "the downloaded .torrent differs from the uploaded one"
    );

    // The upload page and an error page.
    b.goto(&d.url("/upload"));
    b.wait_for("#upload-form", STEP);
    shoot(&mut b, "upload");
    b.goto(&d.url(&format!("/t/{}", "0".repeat(40))));
    let err = b.wait_for("#error", STEP);
    assert_eq!(b.text(&err), "no such torrent");
    // An error page keeps the visitor's own frame: still signed in there.
    assert_eq!(b.text_of("#signed-in-as"), "Signed in as alice");
    shoot(&mut b, "error");

    seeder.terminate(Duration::from_secs(30)).unwrap();
    drop(d);
}

#[test]
fn an_invalid_upload_shows_the_exact_reason_and_markup_in_a_name_stays_text() {
    require_browser();
    let d = Directory::start();
    let mut b = Browser::start(DESKTOP);
    let work = tempfile::tempdir().unwrap();
    register_and_sign_in(&mut b, &d, "mallory");

    // Not a torrent: the page says why, in the parser's words.
    let bad = b"d4:infod4:name3:abc12:piece lengthi16384eee".to_vec();
    let reason = metainfo::Torrent::from_bytes(bad.clone())
        .unwrap_err()
        .to_string();
    let bad_file = work.path().join("bad.torrent");
    std::fs::write(&bad_file, &bad).unwrap();
    upload_through_form(&mut b, &d, &bad_file, "software", "kept after a refusal");
    let err = b.wait_for("#error", STEP);
    assert_eq!(b.text(&err), format!("invalid torrent: {reason}"));
    let kept = b.find("#upload-description");
    assert_eq!(b.prop(&kept, "value"), json!("kept after a refusal"));
    shoot(&mut b, "upload-refused");

    // A name that is markup (names cannot hold '/', so it opens a script element), a description that
    // closes one, a file name with an event handler: all shown as text, nothing runs.
    let name = "<script>alert(1)<script x=\"";
    let description = "<script>alert(2)</script> & <b>bold</b>";
    let parent = work.path().join("content");
    let root = parent.join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("<img src=x onerror=alert(3)>.txt"), b"hello").unwrap();
    std::fs::write(root.join("b.txt"), b"world").unwrap();
    let (torrent, hash) = create_torrent(&root, &[&d.announce], &work.path().join("evil.torrent"));
    upload_through_form(&mut b, &d, &torrent, "other", description);
    let title = b.wait_for("#torrent-name", STEP);
    assert_eq!(b.alert_text(), None, "a script ran on the torrent page");
    assert_eq!(b.text(&title), name);
    assert_eq!(b.text_of("#description"), description);
    let files: Vec<String> = {
        let rows = b.find_all("#files tr.file td.name");
        rows.iter().map(|r| b.text(r)).collect()
    };
    assert!(
        files.contains(&"<img src=x onerror=alert(3)>.txt".to_string()),
        "{files:?}"
    );
    assert!(b
        .find_all("#torrent-name script, #description script, #description b, #files img")
        .is_empty());

    for path in [
        "/".to_string(),
        "/search?q=script".to_string(),
        "/rss.xml".to_string(),
    ] {
        b.goto(&d.url(&path));
        assert_eq!(b.alert_text(), None, "a script ran on {path}");
    }
    b.goto(&d.url("/search?q=script"));
    let link = b.wait_for(
        &format!("#results tr.result[data-info-hash=\"{hash}\"] a.result-link"),
        STEP,
    );
    assert_eq!(b.text(&link), name);
    assert!(b.find_all("#results script").is_empty());
}

#[test]
fn the_pages_fit_a_phone_screen_with_long_names_and_hashes() {
    require_browser();
    let d = Directory::start();
    let mut b = Browser::start(PHONE);
    b.goto(&d.url("/"));
    assert_phone_viewport(&mut b, PHONE);
    let work = tempfile::tempdir().unwrap();
    register_and_sign_in(&mut b, &d, "phone_user_with_a_long_name");
    // One long word: nothing to break it at but the page's own rules.
    let name = format!("Extremely_Long_Torrent_Name_{}", "Without_Any_Spaces_".repeat(6));
    let parent = work.path().join("content");
    let root = parent.join(&name);
    std::fs::create_dir_all(root.join("a_folder_with_a_rather_long_name_too")).unwrap();
    std::fs::write(
        root.join("a_folder_with_a_rather_long_name_too")
            .join(format!("{}.mkv", "very_long_file_name_".repeat(5))),
        b"x".repeat(100_000),
    )
    .unwrap();
    let (torrent, hash) = create_torrent(&root, &[&d.announce], &work.path().join("long.torrent"));
    upload_through_form(
        &mut b,
        &d,
        &torrent,
        "movies",
        &"A long description line. ".repeat(20),
    );
    b.wait_for("#torrent-name", STEP);
    shoot(&mut b, "torrent");
    b.goto(&d.url("/"));
    b.wait_for(&format!("#recent tr.result[data-info-hash=\"{hash}\"]"), STEP);
    shoot(&mut b, "home");
    b.goto(&d.url("/search?q=Extremely_Long_Torrent_Name"));
    b.wait_for(&format!("#results tr.result[data-info-hash=\"{hash}\"]"), STEP);
    shoot(&mut b, "search");
    b.goto(&d.url("/upload"));
    b.wait_for("#upload-form", STEP);
    shoot(&mut b, "upload");
    b.goto(&d.url("/no/such/page"));
    b.wait_for("#error", STEP);
    shoot(&mut b, "error");
    b.goto(&d.url("/register"));
    b.wait_for("#register-form", STEP);
    shoot(&mut b, "register");
}

/// The page (one with `meta viewport`) sees a phone-sized window.
fn assert_phone_viewport(b: &mut Browser, v: Viewport) {
    let w = b.execute("return window.innerWidth", json!([]));
    assert_eq!(w, json!(v.width), "the phone run's window is {w} px wide");
}
