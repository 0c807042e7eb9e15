//! The HTTP front end: announce and scrape (with an optional passkey in the path), JSON stats, Prometheus
//! metrics, a status page for people, and a small admin API guarded by a bearer token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tracker_proto::InfoHashV1;

use crate::service::Service;

type Shared = Arc<Service>;

/// The router over a service.
pub fn router(service: Shared) -> Router {
    Router::new()
        .route("/announce", get(announce))
        .route("/announce/{passkey}", get(announce))
        .route("/{passkey}/announce", get(announce))
        .route("/scrape", get(scrape))
        .route("/scrape/{passkey}", get(scrape))
        .route("/{passkey}/scrape", get(scrape))
        .route("/stats", get(global_stats))
        .route("/stats/{info_hash}", get(torrent_stats))
        .route("/metrics", get(metrics))
        .route("/admin/torrents", post(register))
        .route("/admin/users", post(add_user))
        .route("/", get(status_page))
        .with_state(service)
}

fn bencoded(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn forwarded_ip(service: &Service, headers: &HeaderMap) -> Option<IpAddr> {
    let name = service.config().http.real_ip_header.as_deref()?;
    let value = headers.get(name)?.to_str().ok()?;
    value.split(',').next()?.trim().parse().ok()
}

async fn announce(
    State(service): State<Shared>,
    ConnectInfo(src): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let forwarded = forwarded_ip(&service, &headers);
    let query = query.unwrap_or_default();
    bencoded(service.http_announce(uri.path(), query.as_bytes(), src.ip(), forwarded))
}

async fn scrape(State(service): State<Shared>, RawQuery(query): RawQuery) -> Response {
    bencoded(service.http_scrape(query.unwrap_or_default().as_bytes()))
}

fn is_admin(service: &Service, headers: &HeaderMap) -> bool {
    let Some(token) = service.config().admin.token.as_deref() else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token must not leak through timing.
    given.is_some_and(|g| {
        g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    })
}

async fn global_stats(State(service): State<Shared>) -> Response {
    Json(service.global_stats()).into_response()
}

async fn torrent_stats(
    State(service): State<Shared>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(info_hash) = InfoHashV1::from_text(&hash) else {
        return (StatusCode::BAD_REQUEST, "the info-hash must be 40 hex digits\n").into_response();
    };
    let reveal = is_admin(&service, &headers);
    match service.torrent_stats(&info_hash, reveal) {
        Some(stats) => Json(stats).into_response(),
        None => (StatusCode::NOT_FOUND, "this tracker does not know that torrent\n").into_response(),
    }
}

async fn metrics(State(service): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        service.render_metrics(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct RegisterBody {
    info_hash: String,
    size: Option<u64>,
    #[serde(default)]
    name: String,
}

async fn register(
    State(service): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<RegisterBody>,
) -> Response {
    if !is_admin(&service, &headers) {
        return (StatusCode::UNAUTHORIZED, "admin token required\n").into_response();
    }
    let Ok(info_hash) = InfoHashV1::from_text(&body.info_hash) else {
        return (StatusCode::BAD_REQUEST, "info_hash must be 40 hex digits\n").into_response();
    };
    let added = service.register(info_hash, body.size, body.name);
    Json(serde_json::json!({ "info_hash": info_hash.to_hex(), "added": added })).into_response()
}

async fn add_user(State(service): State<Shared>, headers: HeaderMap) -> Response {
    if !is_admin(&service, &headers) {
        return (StatusCode::UNAUTHORIZED, "admin token required\n").into_response();
    }
    match service.add_user() {
        Ok((id, passkey)) => {
            Json(serde_json::json!({ "id": id.0, "passkey": passkey.to_string() })).into_response()
        }
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

async fn status_page(State(service): State<Shared>) -> Html<String> {
    let g = service.global_stats();
    let mode = format!("{:?}", service.config().swarm.mode).to_lowercase();
    let rows = [
        ("torrents", g.torrents),
        ("peers", g.peers),
        ("seeders", g.seeders),
        ("leechers", g.leechers),
        ("registered torrents", g.registered_torrents),
        ("users", g.users),
        ("announces", g.announces),
        ("refused", g.refused),
    ]
    .iter()
    .map(|(k, v)| format!("<tr><th>{k}</th><td>{v}</td></tr>"))
    .collect::<String>();
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>bitswarm tracker</title><style>body{{font:16px system-ui;margin:2em auto;max-width:40em;padding:0 1em}}\
         th{{text-align:left;padding-right:2em}}@media(prefers-color-scheme:dark){{body{{background:#111;color:#ddd}}}}</style>\
         </head><body><h1>bitswarm tracker</h1><p>Mode: {mode}. Announce at <code>/announce</code>, scrape at \
         <code>/scrape</code>, JSON at <code>/stats</code> and <code>/stats/&lt;info-hash&gt;</code>, metrics at \
         <code>/metrics</code>.</p><table>{rows}</table></body></html>"
    ))
}
