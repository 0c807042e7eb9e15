//! The directory over HTTP: upload, search, torrent page, download, magnet, RSS, API, escaping, injection,
//! CSRF, rate limits, invalid torrents, and the swarm view of the embedded tracker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_search_page_download_magnet_rss_and_api() {
    let s = Server::start().await;
    let c = client();
    register(&s, &c, "alice").await;
    let bytes = torrent("Movie-xyz 2020", &["movie.mkv", "subtitles-zanzibar.srt"], &[]);
    let hash = info_hash_hex(&bytes);
    let (status, loc) = upload(&s, &c, bytes.clone(), "movies", "A quokka documentary").await;
    assert_eq!(status, 303, "{loc}");
    assert_eq!(loc, format!("/t/{hash}"));

    // Found by a word of its name, of a file name and of its description.
    for q in ["Movie-xyz", "zanzibar", "quokka"] {
        let (st, page) = get_text(&c, &s.url(&format!("/search?q={q}"))).await;
        assert_eq!(st, 200);
        assert!(
            page.contains(&format!("data-info-hash=\"{hash}\"")),
            "search {q}: {page}"
        );
    }
    // Filters: another category, or a size range that excludes it (2000 bytes), find nothing.
    let (_, page) = get_text(&c, &s.url("/search?q=movie&category=music")).await;
    assert!(!page.contains(&hash));
    let (_, page) = get_text(&c, &s.url("/search?q=movie&min_mb=1")).await;
    assert!(!page.contains(&hash));
    let (_, page) = get_text(&c, &s.url("/search?q=movie&max_mb=1&sort=size&order=asc")).await;
    assert!(page.contains(&hash));

    // The torrent page: name, info-hash, files, magnet link with the embedded tracker.
    let (st, page) = get_text(&c, &s.url(&loc)).await;
    assert_eq!(st, 200);
    assert!(page.contains("id=\"torrent-name\">Movie-xyz 2020<"));
    assert!(page.contains(&hash));
    assert!(page.contains("subtitles-zanzibar.srt"));
    let announce = s.announce_url.clone().unwrap();
    let magnet_start = page.find("id=\"magnet-link\" href=\"").unwrap() + 23;
    let magnet = page[magnet_start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let m = metainfo::Magnet::parse(&magnet).unwrap();
    assert_eq!(m.v1.unwrap().to_hex(), hash);
    assert_eq!(m.display_name.as_deref(), Some("Movie-xyz 2020"));
    assert!(m.trackers.contains(&announce), "{magnet}");

    // The .torrent comes back byte for byte.
    let r = c.get(s.url(&format!("/t/{hash}/download"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-bittorrent");
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    // Home page lists it as recent; RSS (all and its category) carries it.
    let (_, home) = get_text(&c, &s.url("/")).await;
    let recent = &home[home.find("id=\"recent\"").unwrap()..];
    assert!(recent.contains(&hash));
    for feed in ["/rss.xml", "/rss/movies.xml"] {
        let (st, xml) = get_text(&c, &s.url(feed)).await;
        assert_eq!(st, 200);
        assert!(xml.starts_with("<?xml"));
        assert!(xml.contains("<title>Movie-xyz 2020</title>"), "{xml}");
    }
    let (_, xml) = get_text(&c, &s.url("/rss/music.xml")).await;
    assert!(!xml.contains("Movie-xyz"));

    // The API shows what the pages show.
    let v: serde_json::Value = c
        .get(s.url("/api/search?q=quokka"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["total"], 1);
    assert_eq!(v["results"][0]["info_hash"], hash.as_str());
    let v: serde_json::Value = c
        .get(s.url(&format!("/api/torrents/{hash}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "Movie-xyz 2020");
    assert_eq!(v["size"], 2000);
    assert_eq!(v["uploader"], "alice");
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    assert!(v["magnet"].as_str().unwrap().starts_with("magnet:?xt=urn:btih:"));
    let v: serde_json::Value = c
        .get(s.url("/api/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["directory"]["torrents"], 1);
    assert_eq!(v["directory"]["users"], 1);
    let doc: serde_json::Value = c
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/search"].is_object());
    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("directory_uploads_accepted_total 1"),
        "{metrics}"
    );

    // A second upload of the same torrent is refused by name.
    let (status, page) = upload(&s, &c, bytes, "movies", "").await;
    assert_eq!(status, 409);
    assert!(page.contains("already in the directory"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_file_names_and_descriptions_are_escaped_everywhere() {
    let s = Server::start().await;
    let c = client();
    register(&s, &c, "mallory").await;
    // Names cannot hold '/', so the name opens a script element; the description closes one.
    let name = "\"><script>alert(1)<script x=\"";
    let bytes = torrent(name, &["<img src=x onerror=alert(3)>.txt", "b.txt"], &[]);
    let hash = info_hash_hex(&bytes);
    let (status, _) = upload(&s, &c, bytes, "other", "<script>alert(2)</script> & <b>bold</b>").await;
    assert_eq!(status, 303);
    let pages = [
        format!("/t/{hash}"),
        "/".to_string(),
        "/search?q=script".to_string(),
        "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_string(),
    ];
    for p in &pages {
        let (st, html) = get_text(&c, &s.url(p)).await;
        assert_eq!(st, 200, "{p}");
        assert!(!html.contains("<script>alert"), "{p} has a live script: {html}");
        assert!(!html.contains("<script x="), "{p}");
        assert!(!html.contains("<img src=x"), "{p}");
        assert!(!html.contains("<b>bold"), "{p}");
    }
    let (_, html) = get_text(&c, &s.url(&format!("/t/{hash}"))).await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;script x=&quot;"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(3)&gt;.txt"));
    let (_, xml) = get_text(&c, &s.url("/rss.xml")).await;
    assert!(!xml.contains("<script>"), "{xml}");
    // The strict policy forbids inline scripts even if something slipped through.
    let r = c.get(s.url(&format!("/t/{hash}"))).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_injection_through_search_and_upload_is_inert() {
    let s = Server::start().await;
    let c = client();
    register(&s, &c, "bob").await;
    let evil = "x'); DROP TABLE torrents; --";
    let bytes = torrent("Robert tables", &["a.txt"], &[]);
    let hash = info_hash_hex(&bytes);
    let (status, _) = upload(&s, &c, bytes, "books", evil).await;
    assert_eq!(status, 303);
    // A category that is not offered is refused, whatever it holds.
    let (status, page) = upload(&s, &c, torrent("other", &["b.txt"], &[]), "books' OR '1'='1", "").await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown category"));
    for q in [
        "' OR 1=1 --",
        "\" OR \"\"=\"",
        "robert'; DROP TABLE torrents; --",
        "NEAR(a b) OR * AND -",
        "%27%29%3B",
    ] {
        let url =
            reqwest::Url::parse_with_params(&s.url("/search"), &[("q", q), ("sort", "name; DROP TABLE x")])
                .unwrap();
        let r = c.get(url.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{q}");
        let api =
            reqwest::Url::parse_with_params(&s.url("/api/search"), &[("q", q), ("category", "' OR 1=1")])
                .unwrap();
        let r = c.get(api).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{q}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["total"].as_u64().unwrap() <= 1, "{q}: {v}");
    }
    // Everything is still there, and the description is stored as typed.
    let v: serde_json::Value = c
        .get(s.url(&format!("/api/torrents/{hash}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["description"], evil);
    let v: serde_json::Value = c
        .get(s.url("/api/search?q=robert"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["total"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_checks_its_csrf_token() {
    let s = Server::start().await;
    let c = client();
    // Without having seen a page (no CSRF cookie) or with a wrong token, every form is refused.
    let r = c
        .post(s.url("/register"))
        .form(&[
            ("name", "eve"),
            ("password", "correct horse battery"),
            ("csrf", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let _ = get_text(&c, &s.url("/login")).await;
    let r = c
        .post(s.url("/register"))
        .form(&[
            ("name", "eve"),
            ("password", "correct horse battery"),
            ("csrf", &"0".repeat(64)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("security token"));
    register(&s, &c, "eve").await;
    let r = c
        .post(s.url("/login"))
        .form(&[("name", "eve"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let form = reqwest::multipart::Form::new().text("category", "other").part(
        "torrent",
        reqwest::multipart::Part::bytes(torrent("t", &["a"], &[])),
    );
    let r = c.post(s.url("/upload")).multipart(form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // The API with a session cookie needs the header; a bearer token does not.
    let form = reqwest::multipart::Form::new().text("category", "other").part(
        "torrent",
        reqwest::multipart::Part::bytes(torrent("t", &["a"], &[])),
    );
    let r = c.post(s.url("/api/upload")).multipart(form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = c
        .post(s.url("/logout"))
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Still signed in (the logout was refused); a proper logout works.
    let (_, home) = get_text(&c, &s.url("/")).await;
    assert!(home.contains("id=\"signed-in-as\""));
    let r = c
        .post(s.url("/logout"))
        .form(&[("csrf", csrf_of(&home))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (_, home) = get_text(&c, &s.url("/")).await;
    assert!(!home.contains("id=\"signed-in-as\""));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_upload_with_bearer_token_and_exact_invalid_torrent_reason() {
    // A small cap, so the over-cap body below fits in the socket buffers: refused with 413 before the
    // server has read it all, a 9 MiB body could end in a broken pipe instead of the answer.
    let s = Server::start_with(|c| c.upload.max_torrent_bytes = 64 << 10).await;
    let c = client();
    register(&s, &c, "carol").await;
    let anon = client();
    let r = anon
        .post(s.url("/api/login"))
        .json(&serde_json::json!({"name": "carol", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: serde_json::Value = anon
        .post(s.url("/api/login"))
        .json(&serde_json::json!({"name": "carol", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    let bytes = torrent("api upload", &["f.bin"], &[]);
    let form = reqwest::multipart::Form::new()
        .text("category", "software")
        .part("torrent", reqwest::multipart::Part::bytes(bytes.clone()));
    let r = anon
        .post(s.url("/api/upload"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["info_hash"], info_hash_hex(&bytes).as_str());

    // An invalid torrent: the parser's own reason, in the API and on the page.
    let bad = b"d4:infod4:name3:abc12:piece lengthi16384eee".to_vec();
    let reason = metainfo::Torrent::from_bytes(bad.clone())
        .unwrap_err()
        .to_string();
    let form = reqwest::multipart::Form::new()
        .text("category", "software")
        .part("torrent", reqwest::multipart::Part::bytes(bad.clone()));
    let r = anon
        .post(s.url("/api/upload"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], format!("invalid torrent: {reason}"));
    let (status, page) = upload(&s, &c, bad, "software", "").await;
    assert_eq!(status, 400);
    let escaped = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(
        page.contains(&format!("invalid torrent: {escaped}")),
        "{reason} not in {page}"
    );
    assert!(page.contains("id=\"error\""));

    // Over the size cap: refused with the cap named.
    let huge = vec![b'd'; 100 << 10];
    let (status, page) = upload(&s, &c, huge, "software", "").await;
    assert_eq!(status, 413, "{page}");
    assert!(page.contains("larger than the limit of 65536 bytes"), "{page}");
    // Not signed in: refused.
    let form = reqwest::multipart::Form::new().text("category", "software").part(
        "torrent",
        reqwest::multipart::Part::bytes(torrent("z", &["z"], &[])),
    );
    let r = anon
        .post(s.url("/api/upload"))
        .bearer_auth("0".repeat(64))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_and_uploads_are_rate_limited_per_address() {
    let s = Server::start_with(|c| {
        c.limits.login_burst = 3;
        c.limits.login_per_minute = 1;
        c.limits.upload_burst = 2;
        c.limits.upload_per_minute = 1;
    })
    .await;
    let c = client();
    register(&s, &c, "dave").await; // 1 of 3
    let (_, page) = get_text(&c, &s.url("/login")).await;
    let csrf = csrf_of(&page);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c
            .post(s.url("/login"))
            .form(&[("name", "dave"), ("password", "wrong password!"), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
    let r = c
        .post(s.url("/api/login"))
        .json(&serde_json::json!({"name": "dave", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let mut statuses = Vec::new();
    for i in 0..3 {
        let (st, _) = upload(&s, &c, torrent(&format!("rl{i}"), &["a"], &[]), "other", "").await;
        statuses.push(st);
    }
    assert_eq!(statuses, [303, 303, 429]);
    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("directory_rate_limited_total 3"), "{metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_view_shows_embedded_tracker_peers_without_addresses() {
    let s = Server::start().await;
    let c = client();
    register(&s, &c, "erin").await;
    let announce = s.announce_url.clone().unwrap();
    let bytes = torrent("swarm test", &["a.bin", "b.bin"], std::slice::from_ref(&announce));
    let hash = info_hash_hex(&bytes);
    let (status, _) = upload(&s, &c, bytes, "other", "").await;
    assert_eq!(status, 303);
    let (_, page) = get_text(&c, &s.url(&format!("/t/{hash}"))).await;
    assert!(page.contains("id=\"swarm-seeders\">0<"), "{page}");

    // A seeder and a half-done leecher announce to the embedded tracker from odd ports.
    announce_peer(&announce, &hash, 1, 54_321, 0).await;
    announce_peer(&announce, &hash, 2, 54_322, 1000).await;
    let (_, page) = get_text(&c, &s.url(&format!("/t/{hash}"))).await;
    assert!(page.contains("id=\"swarm-seeders\">1<"), "{page}");
    assert!(page.contains("id=\"swarm-leechers\">1<"));
    assert_eq!(page.matches("class=\"peer\"").count(), 2);
    assert!(page.contains("50.0%"), "{page}");
    for leak in ["54321", "54322"] {
        assert!(!page.contains(leak), "the page leaks a peer's port");
    }
    let (_, json) = get_text(&c, &s.url(&format!("/api/torrents/{hash}/swarm"))).await;
    assert!(!json.contains("54321") && !json.contains("addr"), "{json}");
    let (_, json) = get_text(&c, &s.url(&format!("/api/torrents/{hash}"))).await;
    assert!(!json.contains("54321") && !json.contains("\"addr\""), "{json}");
    let (_, frag) = get_text(&c, &s.url(&format!("/t/{hash}/swarm"))).await;
    assert!(frag.contains("id=\"swarm\"") && !frag.contains("54321"));

    // The stored seeder figure follows within a refresh, so lists and sorting see it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: serde_json::Value = c
            .get(s.url("/api/search?q=swarm"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["results"][0]["seeders"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "seeders not refreshed: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, home) = get_text(&c, &s.url("/")).await;
    let popular = &home[home.find("id=\"popular\"").unwrap()..];
    assert!(popular.contains(&hash));
    s.stop().await;
}

async fn announce_peer(url: &str, hash: &str, n: u8, port: u16, left: u64) {
    announce(url, hash, n, port, left).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_keep_the_visitors_frame() {
    let s = Server::start().await;
    let c = client();
    register(&s, &c, "erin").await;
    for path in [format!("/t/{}", "0".repeat(40)), "/no/such/page".to_string()] {
        let (status, html) = get_text(&c, &s.url(&path)).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("id=\"error\""), "{path}: {html}");
        // Signed in there too, with a working sign-out form (its CSRF token) and the site's own name.
        assert!(html.contains("id=\"signed-in-as\""), "{path}: {html}");
        assert!(html.contains("<strong>erin</strong>"), "{path}");
        assert!(!csrf_of(&html).is_empty(), "{path}");
        assert!(!html.contains("id=\"nav-login\""), "{path}");
    }
    // The API's errors stay JSON.
    let r = c
        .get(s.url(&format!("/api/torrents/{}", "0".repeat(40))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "no such torrent");
    s.stop().await;
}
