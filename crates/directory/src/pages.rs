//! The HTML pages, built with `maud`: every interpolated value is escaped at compile time unless marked
//! otherwise (only the fixed style sheet is), so names, file names and descriptions cannot become markup.
//! Pages work without JavaScript; `/static/app.js` only refreshes the swarm view in place.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::db::{SearchPage, Sort, TorrentDetail, TorrentSummary, User};
use crate::web::{SwarmView, TrackerRow};

/// What every page's frame needs.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// The site's name.
    pub site: &'a str,
    /// The signed-in user.
    pub user: Option<&'a User>,
    /// The visitor's CSRF token (for the logout form and any other form on the page).
    pub csrf: &'a str,
    /// The categories.
    pub categories: &'a [String],
}

const STYLE: &str = r#"
:root{--bg:#fff;--fg:#1b1b1f;--muted:#5f6368;--line:#e3e3e8;--accent:#0b57d0;--card:#f6f7f9;--bad:#b3261e;--good:#146c2e}
@media (prefers-color-scheme:dark){:root{--bg:#121316;--fg:#e6e6ea;--muted:#a0a4ab;--line:#2c2f36;--accent:#8ab4f8;--card:#1c1e23;--bad:#f2b8b5;--good:#7dd69a}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.75rem 1rem;border-bottom:1px solid var(--line)}
header .brand{font-weight:700;font-size:1.1rem;color:var(--fg)}header nav{display:flex;gap:.25rem 1rem;align-items:center;margin-left:auto;flex-wrap:wrap}
header form{display:inline;margin:0}main{max-width:1100px;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;word-break:break-word}h2{font-size:1.15rem;margin-top:1.5rem}
.search{display:flex;gap:.5rem;margin:1rem 0}.search input[type=search]{flex:1;min-width:0}
input,select,textarea,button{font:inherit;color:inherit;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.45rem .6rem}
button,.button{background:var(--accent);color:var(--bg);border:0;cursor:pointer;border-radius:6px;padding:.45rem .9rem;display:inline-block}
.linkbutton{background:none;color:var(--accent);padding:0;border:0}
table{width:100%;border-collapse:collapse;margin:.5rem 0}th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:.9rem}td.num,th.num{text-align:right;white-space:nowrap}td.name{word-break:break-word}td.url{overflow-wrap:anywhere;word-break:normal}
.muted{color:var(--muted)}.error{color:var(--bad);background:var(--card);border-left:4px solid var(--bad);padding:.6rem .8rem;white-space:pre-wrap;word-break:break-word}
.good{color:var(--good)}.card{background:var(--card);border-radius:8px;padding:1rem;margin:1rem 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}.filters label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}
.filters input,.filters select,.filters button{height:2.5rem;font-size:1rem}.filters input[type=number]{width:7rem}
.pager{display:flex;gap:1rem;justify-content:center;margin:1rem 0}.desc{white-space:pre-wrap;word-break:break-word}
form.stack{display:flex;flex-direction:column;gap:.75rem;max-width:32rem}form.stack label{display:flex;flex-direction:column;gap:.25rem}
.bar{display:inline-block;vertical-align:middle;width:6rem;height:.5rem;margin-right:.5rem;background:var(--line);border-radius:4px}td.done{white-space:nowrap}.bar>span{display:block;height:100%;background:var(--good);border-radius:4px}
@media (max-width:640px){.hide-narrow{display:none}td,th{padding:.35rem .3rem}body{font-size:15px}}
"#;

/// A human size: `1.5 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let unit = UNITS.get(u).copied().unwrap_or("B");
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// A rate: `1.2 MiB/s`.
pub fn rate(bytes_per_sec: f32) -> String {
    format!("{}/s", size(bytes_per_sec.max(0.0) as u64))
}

/// How long ago `then` was, from `now` (unix seconds).
pub fn ago(now: i64, then: i64) -> String {
    let d = (now - then).max(0);
    match d {
        0..=59 => format!("{d} s ago"),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=86_399 => format!("{} h ago", d / 3600),
        _ => format!("{} days ago", d / 86_400),
    }
}

fn layout(f: &Frame<'_>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · " (f.site) }
                link rel="alternate" type="application/rss+xml" title="New torrents" href="/rss.xml";
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" id="home-link" { (f.site) }
                    nav {
                        a href="/search" { "Browse" }
                        a href="/upload" id="nav-upload" { "Upload" }
                        @if let Some(u) = f.user {
                            span.muted id="signed-in-as" { "Signed in as " strong { (u.name) } }
                            form method="post" action="/logout" id="logout-form" {
                                input type="hidden" name="csrf" value=(f.csrf);
                                button.linkbutton type="submit" id="logout-submit" { "Sign out" }
                            }
                        } @else {
                            a href="/login" id="nav-login" { "Sign in" }
                            a href="/register" id="nav-register" { "Register" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn search_box(f: &Frame<'_>, q: &str) -> Markup {
    let _ = f;
    html! {
        form.search method="get" action="/search" id="search-form" role="search" {
            input type="search" name="q" id="search-q" value=(q) placeholder="Search names, files, descriptions" aria-label="Search";
            button type="submit" id="search-submit" { "Search" }
        }
    }
}

fn list(id: &str, rows: &[TorrentSummary], now: i64) -> Markup {
    html! {
        table id=(id) hidden[rows.is_empty()] {
            thead { tr {
                th { "Name" } th.hide-narrow { "Category" } th.num { "Size" }
                th.num { "Seeders" } th.num.hide-narrow { "Leechers" } th.num.hide-narrow { "Added" }
            } }
            tbody {
                @for t in rows {
                    tr.result data-info-hash=(t.info_hash) {
                        td.name { a.result-link href={ "/t/" (t.info_hash) } { (t.name) } }
                        td.hide-narrow { a href={ "/search?category=" (t.category) } { (t.category) } }
                        td.num { (size(t.size)) }
                        td.num.seeders { (t.seeders) }
                        td.num.hide-narrow.leechers { (t.leechers) }
                        td.num.hide-narrow.muted { (ago(now, t.created_at)) }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted.empty { "Nothing here yet." } }
    }
}

/// The home page: search box, recent and popular torrents.
pub fn home(f: &Frame<'_>, recent: &[TorrentSummary], popular: &[TorrentSummary], now: i64) -> Markup {
    layout(
        f,
        "Home",
        html! {
            h1 { "Find and share torrents" }
            (search_box(f, ""))
            p.muted { "Categories: "
                @for (i, c) in f.categories.iter().enumerate() {
                    @if i > 0 { " · " }
                    a href={ "/search?category=" (c) } { (c) }
                }
                " · " a href="/rss.xml" { "RSS" }
            }
            h2 { "Recently added" }
            (list("recent", recent, now))
            h2 { "Popular" }
            (list("popular", popular, now))
        },
    )
}

/// The parameters a search page was asked for, to keep them in its form and links.
#[derive(Debug, Clone, Default)]
pub struct SearchForm {
    /// Words.
    pub q: String,
    /// Category.
    pub category: String,
    /// Minimum size in MiB, as typed.
    pub min_mb: String,
    /// Maximum size in MiB, as typed.
    pub max_mb: String,
    /// Order.
    pub sort: Sort,
    /// Ascending.
    pub asc: bool,
}

impl SearchForm {
    fn url(&self, page: u32) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let mut u = format!(
            "/search?q={}&category={}&min_mb={}&max_mb={}&sort={}",
            enc(&self.q),
            enc(&self.category),
            enc(&self.min_mb),
            enc(&self.max_mb),
            self.sort.as_str()
        );
        if self.asc {
            u.push_str("&order=asc");
        }
        u.push_str(&format!("&page={page}"));
        u
    }
}

/// Search results with filters, sorting and pagination.
pub fn search(f: &Frame<'_>, form: &SearchForm, page: &SearchPage, now: i64) -> Markup {
    let pages = page.total.div_ceil(u64::from(page.per_page.max(1))).max(1);
    layout(
        f,
        if form.q.is_empty() { "Browse" } else { &form.q },
        html! {
            h1 { @if form.q.is_empty() { "Browse" } @else { "Results for “" (form.q) "”" } }
            form.search method="get" action="/search" id="search-form" role="search" {
                input type="search" name="q" id="search-q" value=(form.q) aria-label="Search";
                button type="submit" id="search-submit" { "Search" }
            }
            form.filters method="get" action="/search" id="filter-form" {
                input type="hidden" name="q" value=(form.q);
                label { "Category"
                    select name="category" id="filter-category" {
                        option value="" { "any" }
                        @for c in f.categories {
                            option value=(c) selected[&form.category == c] { (c) }
                        }
                    }
                }
                label { "Min MiB" input type="number" min="0" name="min_mb" id="filter-min-mb" value=(form.min_mb) size="6"; }
                label { "Max MiB" input type="number" min="0" name="max_mb" id="filter-max-mb" value=(form.max_mb) size="6"; }
                label { "Sort"
                    select name="sort" id="filter-sort" {
                        @for s in Sort::ALL { option value=(s.as_str()) selected[form.sort == s] { (s.as_str()) } }
                    }
                }
                label { "Order"
                    select name="order" id="filter-order" {
                        option value="desc" selected[!form.asc] { "best first" }
                        option value="asc" selected[form.asc] { "reversed" }
                    }
                }
                button type="submit" id="filter-submit" { "Apply" }
            }
            p.muted id="result-count" {
                (page.total) @if page.total_capped { "+" } " result" @if page.total != 1 { "s" }
                " · page " (page.page) " of " (pages) @if page.total_capped { "+" }
            }
            (list("results", &page.results, now))
            nav.pager {
                @if page.page > 1 { a id="prev-page" rel="prev" href=(form.url(page.page - 1)) { "← Previous" } }
                @if u64::from(page.page) < pages && page.page < crate::db::MAX_PAGE {
                    a id="next-page" rel="next" href=(form.url(page.page + 1)) { "Next →" }
                }
            }
        },
    )
}

/// The torrent page.
pub fn torrent(
    f: &Frame<'_>,
    t: &TorrentDetail,
    magnet: &str,
    trackers: &[TrackerRow],
    swarm: Option<&SwarmView>,
    now: i64,
) -> Markup {
    const MAX_FILES_SHOWN: usize = 2000;
    layout(
        f,
        &t.summary.name,
        html! {
            h1 id="torrent-name" { (t.summary.name) }
            p {
                a.button id="magnet-link" href=(magnet) { "Magnet link" } " "
                a.button id="download-link" href={ "/t/" (t.summary.info_hash) "/download" } download { "Download .torrent" }
            }
            dl.facts.card {
                dt { "Size" } dd id="torrent-size" data-bytes=(t.summary.size) { (size(t.summary.size)) " (" (t.summary.size) " bytes)" }
                dt { "Files" } dd { (t.summary.file_count) }
                dt { "Category" } dd id="torrent-category" { a href={ "/search?category=" (t.summary.category) } { (t.summary.category) } }
                @if let Some(h) = &t.info_hash_v1 { dt { "Info-hash (v1)" } dd id="info-hash-v1" { code { (h) } } }
                @if let Some(h) = &t.info_hash_v2 { dt { "Info-hash (v2)" } dd id="info-hash-v2" { code { (h) } } }
                dt { "Version" } dd { (t.version) @if t.private { " · private" } }
                dt { "Piece length" } dd { (size(t.piece_length)) }
                dt { "Seeders" } dd id="seeders-total" { (t.summary.seeders) }
                dt { "Leechers" } dd id="leechers-total" { (t.summary.leechers) }
                dt { "Added" } dd { (ago(now, t.summary.created_at)) @if let Some(u) = &t.uploader { " by " span id="uploader" { (u) } } }
                @if let Some(c) = &t.comment { dt { "Comment" } dd id="torrent-comment" { (c) } }
                @if let Some(c) = &t.created_by { dt { "Created by" } dd { (c) } }
            }
            @if !t.description.is_empty() {
                h2 { "Description" }
                div.desc.card id="description" { (t.description) }
            }
            h2 { "Trackers" }
            table id="trackers" {
                thead { tr { th { "Tracker" } th.num { "Seeders" } th.num { "Leechers" } th.num.hide-narrow { "Completed" } th { "Fresh" } } }
                tbody {
                    @for r in trackers {
                        tr.tracker data-embedded=(r.embedded) {
                            td.name.url { (r.url) @if r.embedded { " " span.muted { "(this directory's tracker)" } } }
                            td.num.seeders { @if let Some(v) = r.seeders { (v) } @else { "–" } }
                            td.num.leechers { @if let Some(v) = r.leechers { (v) } @else { "–" } }
                            td.num.hide-narrow.completed { @if let Some(v) = r.completed { (v) } @else { "–" } }
                            td.fresh.muted {
                                @if r.embedded { "live" }
                                @else if let Some(e) = &r.error { span.error-text { "failed: " (e) } }
                                @else if let Some(s) = r.scraped_at { (ago(now, s)) }
                                @else { "not scraped yet" }
                            }
                        }
                    }
                }
            }
            @if let Some(s) = swarm {
                h2 { "Swarm" }
                (swarm_table(s))
                script src="/static/app.js" defer {}
            }
            h2 { "Files" }
            table id="files" {
                thead { tr { th { "Path" } th.num { "Size" } } }
                tbody {
                    @for (path, len) in t.files.iter().take(MAX_FILES_SHOWN) {
                        tr.file { td.name { (path) } td.num { (size(*len)) } }
                    }
                }
            }
            @if t.files.len() > MAX_FILES_SHOWN { p.muted { "… and " (t.files.len() - MAX_FILES_SHOWN) " more files" } }
        },
    )
}

/// The swarm view table (also served alone for live refresh): no peer address appears in it.
pub fn swarm_table(s: &SwarmView) -> Markup {
    html! {
        div id="swarm" data-info-hash=(s.info_hash) {
            p.muted id="swarm-summary" {
                span id="swarm-seeders" { (s.seeders) } @if s.seeders == 1 { " seeder, " } @else { " seeders, " }
                span id="swarm-leechers" { (s.leechers) } @if s.leechers == 1 { " leecher, " } @else { " leechers, " }
                span id="swarm-completed" { (s.completed) } " completed"
            }
            table id="swarm-peers" hidden[s.peers.is_empty()] {
                thead { tr { th { "Peer" } th { "Client" } th { "Done" } th.num { "Up" } th.num { "Down" } } }
                tbody {
                    @for (i, p) in s.peers.iter().enumerate() {
                        tr.peer {
                            td { "#" (i + 1) @if p.is_seed { " " span.good { "seed" } } }
                            td { (p.client) }
                            td.done { div.bar title={ (format!("{:.1}", p.completion * 100.0)) "%" } {
                                span style={ "width:" (format!("{:.1}", (p.completion * 100.0).clamp(0.0, 100.0))) "%" } {}
                            } span.completion { (format!("{:.1}", p.completion * 100.0)) "%" } }
                            td.num { (rate(p.upload_rate)) }
                            td.num { (rate(p.download_rate)) }
                        }
                    }
                }
            }
            @if s.peers.is_empty() { p.muted { "No peers on this directory's tracker right now." } }
        }
    }
}

/// The upload page, with the last error (if any) and the fields as sent.
pub fn upload(f: &Frame<'_>, error: Option<&str>, category: &str, description: &str) -> Markup {
    layout(
        f,
        "Upload",
        html! {
            h1 { "Upload a torrent" }
            @if let Some(e) = error { p.error id="error" role="alert" { (e) } }
            @if f.user.is_none() { p.muted { "You need to " a href="/login" { "sign in" } " to upload." } }
            form.stack method="post" action="/upload" enctype="multipart/form-data" id="upload-form" {
                input type="hidden" name="csrf" value=(f.csrf);
                label { ".torrent file" input type="file" name="torrent" id="upload-file" accept=".torrent,application/x-bittorrent"; }
                label { "Category"
                    select name="category" id="upload-category" {
                        @for c in f.categories { option value=(c) selected[category == c] { (c) } }
                    }
                }
                label { "Description" textarea name="description" id="upload-description" rows="6" { (description) } }
                button type="submit" id="upload-submit" { "Upload" }
            }
            p.muted { "The file is stored exactly as uploaded: its info-hash is that of the existing swarm. "
                "The magnet link shown for it also names this directory's tracker." }
        },
    )
}

/// The sign-in or registration page.
pub fn account_form(f: &Frame<'_>, register: bool, error: Option<&str>, name: &str) -> Markup {
    let (title, id, action) = if register {
        ("Register", "register", "/register")
    } else {
        ("Sign in", "login", "/login")
    };
    layout(
        f,
        title,
        html! {
            h1 { (title) }
            @if let Some(e) = error { p.error id="error" role="alert" { (e) } }
            form.stack method="post" action=(action) id={ (id) "-form" } {
                input type="hidden" name="csrf" value=(f.csrf);
                label { "Name" input type="text" name="name" id={ (id) "-name" } value=(name) autocomplete="username" required; }
                label { "Password" input type="password" name="password" id={ (id) "-password" }
                    autocomplete=(if register { "new-password" } else { "current-password" }) required; }
                button type="submit" id={ (id) "-submit" } { (title) }
            }
            @if register { p.muted { "Names: 3-32 letters, digits, _ - or .; passwords: at least 8 characters." } }
            @else { p.muted { "No account? " a href="/register" { "Register" } } }
        },
    )
}

/// An error page.
pub fn error(f: &Frame<'_>, status: u16, message: &str) -> Markup {
    layout(
        f,
        "Error",
        html! {
            h1 { "Error " (status) }
            p.error id="error" role="alert" { (message) }
            p { a href="/" { "Back to the home page" } }
        },
    )
}

/// An RSS 2.0 feed.
pub fn rss(site: &str, base: &str, title: &str, items: &[TorrentSummary]) -> String {
    let doc = html! {
        rss version="2.0" {
            channel {
                title { (site) " · " (title) }
                link { (base) "/" }
                description { "New torrents on " (site) }
                @for t in items {
                    item {
                        title { (t.name) }
                        link { (base) "/t/" (t.info_hash) }
                        guid isPermaLink="false" { (t.info_hash) }
                        category { (t.category) }
                        description { (size(t.size)) ", " (t.seeders) " seeders" }
                        enclosure url={ (base) "/t/" (t.info_hash) "/download" } length=(t.size) type="application/x-bittorrent" {}
                    }
                }
            }
        }
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        doc.into_string()
    )
}

/// The script that refreshes the swarm view every few seconds (progressive enhancement: the page is whole
/// without it).
pub const APP_JS: &str = r#"(function(){
var el=document.getElementById('swarm');if(!el)return;var h=el.getAttribute('data-info-hash');
function tick(){fetch('/t/'+h+'/swarm',{headers:{'Accept':'text/html'}}).then(function(r){return r.ok?r.text():null}).then(function(t){
if(!t)return;var d=document.createElement('div');d.innerHTML=t;var n=d.querySelector('#swarm');if(n){el.replaceWith(n);el=n;}
function txt(id){var e=document.getElementById(id);return e?e.textContent:null;}
function set(sel,v){var e=document.querySelector(sel);if(e&&v!==null)e.textContent=v;}
var s=txt('swarm-seeders'),l=txt('swarm-leechers'),c=txt('swarm-completed'),row='#trackers tr.tracker[data-embedded="true"] ';
set(row+'td.seeders',s);set(row+'td.leechers',l);set(row+'td.completed',c);
var tot=document.getElementById('seeders-total');if(s!==null&&tot&&+s>+tot.textContent){tot.textContent=s;set('#leechers-total',l);}
}).catch(function(){});}
setInterval(tick,5000);})();"#;
