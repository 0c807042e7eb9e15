//! One HTTP request (GET or POST) to a server on 127.0.0.1: by hand over a socket on loopback (no HTTP
//! client among the dependencies), through `tests/interop/http_get.py` run by `ip netns exec` inside a
//! namespace.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::netns::Net;
use super::{http_get_path, run_with_timeout, COMMAND_TIMEOUT, PYTHON};

/// An HTTP request: GET when `body` is None, else POST with that body.
#[derive(Clone, Debug, Default)]
pub struct Request<'a> {
    pub url: &'a str,
    /// Extra headers, `(name, value)`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl<'a> Request<'a> {
    pub fn get(url: &'a str) -> Request<'a> {
        Request {
            url,
            ..Request::default()
        }
    }

    pub fn post(url: &'a str, content_type: &str, body: Vec<u8>) -> Request<'a> {
        Request {
            url,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Some(body),
        }
    }

    /// `application/x-www-form-urlencoded` from `(key, value)` pairs.
    pub fn post_form(url: &'a str, fields: &[(&str, &str)]) -> Request<'a> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        Request::post(url, "application/x-www-form-urlencoded", body.into_bytes())
    }

    pub fn bearer(mut self, token: &str) -> Request<'a> {
        self.headers
            .push(("Authorization".into(), format!("Bearer {token}")));
        self
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for forms and query strings.
pub fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A `multipart/form-data` body: `(content type, body)`. Each part is `(name, file name, bytes)`; a part
/// with a file name is a file upload.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----bitswarm-interop-7d1f0c9a2b";
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One request in `net`: `(status, body)`, or why no response came.
pub fn request(net: &Net, req: &Request<'_>) -> Result<(u16, Vec<u8>), String> {
    match net {
        Net::Loopback => request_direct(req),
        Net::Netns(_) => request_in_netns(net, req),
    }
}

/// One GET in `net`, with an optional bearer token.
pub fn http_get(net: &Net, url: &str, bearer: Option<&str>) -> Result<(u16, Vec<u8>), String> {
    let mut req = Request::get(url);
    if let Some(token) = bearer {
        req = req.bearer(token);
    }
    request(net, &req)
}

fn request_in_netns(net: &Net, req: &Request<'_>) -> Result<(u16, Vec<u8>), String> {
    let url = req.url;
    let mut cmd = net.command(false, PYTHON);
    cmd.arg(http_get_path()).arg(url).args(["--timeout", "10"]);
    for (name, value) in &req.headers {
        cmd.arg("--header").arg(format!("{name}: {value}"));
    }
    // Kept alive until the helper has run.
    let body_file = match &req.body {
        Some(body) => {
            let file = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
            std::fs::write(file.path(), body).map_err(|e| format!("temp file: {e}"))?;
            cmd.arg("--data-file").arg(file.path());
            Some(file)
        }
        None => None,
    };
    let out = run_with_timeout(&mut cmd, COMMAND_TIMEOUT);
    drop(body_file);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok((200, out.stdout)),
        Some(1) => {
            let status = stderr
                .rsplit("status ")
                .next()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| format!("http_get.py {url}: {stderr}"))?;
            Ok((status, out.stdout))
        }
        _ => Err(format!("http_get.py {url} ({}): {stderr}", out.status)),
    }
}

fn request_direct(req: &Request<'_>) -> Result<(u16, Vec<u8>), String> {
    let url = req.url;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {url}"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = host.parse().map_err(|e| format!("{url}: {e}"))?;
    let method = if req.body.is_some() { "POST" } else { "GET" };
    let io = |e: std::io::Error| format!("{method} {url}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let path = if path.is_empty() { "/" } else { path };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &req.body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(io)?;
    if let Some(body) = &req.body {
        stream.write_all(body).map_err(io)?;
    }
    // Read the head, then as much body as it announces: some servers (qBittorrent's) keep the connection
    // open despite `Connection: close`, so reading to the end would wait for the read timeout.
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Err(format!(
                "{method} {url}: no end of headers in {:?}",
                String::from_utf8_lossy(&response)
            ));
        }
        response.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut body = response[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {url}: bad status line in {head:?}"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
    loop {
        let enough = if chunked {
            dechunk(&body).is_some()
        } else if let Some(length) = length {
            body.len() >= length
        } else {
            false
        };
        if enough {
            break;
        }
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let body = if chunked {
        dechunk(&body).ok_or_else(|| format!("{method} {url}: bad chunked body"))?
    } else {
        if let Some(length) = length {
            body.truncate(length);
        }
        body
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
