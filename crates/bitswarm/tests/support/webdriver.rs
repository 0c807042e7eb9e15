//! Headless Chromium driven over WebDriver (the W3C protocol, JSON over HTTP) through `chromedriver`, for
//! the directory's browser tests. A small blocking client by hand over a socket on loopback, like
//! [`super::http`]: the tests need a dozen commands, and a WebDriver crate would bring an async HTTP stack
//! and its own protocol crate for them.
//!
//! [`Browser::start`] starts `chromedriver --port=0` (it prints the port the system gave it; bounded wait),
//! then a session of headless Chromium (`--headless=new --no-sandbox --disable-gpu
//! --disable-dev-shm-usage`, a profile in a temporary folder) with a window of the size asked for. Dropping
//! the [`Browser`] ends the session (Chromium quits) and kills chromedriver's process group, which takes any
//! Chromium process left with it. Chromium-only commands go through chromedriver's DevTools bridge
//! ([`Browser::cdp`]): the colour scheme ([`Browser::set_color_scheme`]) and whole-page screenshots
//! ([`Browser::screenshot_page`]).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use super::proc::Proc;

/// How long one WebDriver command may take (a page load is bounded by the session's own page-load
/// timeout, set below this).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The session's page-load and script timeouts.
const PAGE_LOAD_MS: u64 = 30_000;
/// The W3C key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A window size in CSS pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewport {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    /// Emulate a phone (touch, the page's `meta viewport` honoured, a phone's device scale).
    pub mobile: bool,
}

/// A laptop's window.
pub const DESKTOP: Viewport = Viewport {
    name: "desktop",
    width: 1280,
    height: 900,
    mobile: false,
};

/// A phone held upright (390 CSS pixels wide, like most current phones).
pub const PHONE: Viewport = Viewport {
    name: "phone",
    width: 390,
    height: 844,
    mobile: true,
};

/// An element of the current page (a W3C element reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element(pub String);

/// `chromedriver` and one session of headless Chromium; both end when dropped.
pub struct Browser {
    driver_addr: SocketAddr,
    session: String,
    pub viewport: Viewport,
    // Dropped in this order: the session is ended in `drop`, then chromedriver's group killed, then the
    // profile removed.
    driver: Proc,
    profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a `viewport`-sized window.
    pub fn start(viewport: Viewport) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("bsw-chromium-")
            .tempdir()
            .unwrap();
        // With `--port=0` chromedriver takes a port the system gives it for one of IPv4 and IPv6 loopback,
        // then binds the other at the same port, and exits ("IPv4 port not available") when something else
        // holds that one: a few tries.
        let mut tries = 0;
        let (mut driver, port) = loop {
            tries += 1;
            let mut cmd = Command::new("chromedriver");
            cmd.arg("--port=0").arg(format!(
                "--log-path={}",
                profile.path().join("chromedriver.log").display()
            ));
            let mut driver = Proc::spawn("chromedriver", cmd, profile.path());
            let port = driver.try_wait_line(
                "`started successfully on port` line",
                Duration::from_secs(30),
                |l| {
                    l.split("started successfully on port ")
                        .nth(1)
                        .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                },
            );
            match port {
                Ok(port) => break (driver, port),
                Err(e) if tries >= 5 => panic!("chromedriver did not start ({tries} tries): {e}"),
                Err(_) => driver.kill(),
            }
        };
        let driver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-extensions".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            // No crash handler: it would start in a session of its own, out of reach of the group kill.
            "--disable-breakpad".into(),
            "--disable-crash-reporter".into(),
            "--hide-scrollbars".into(),
            "--lang=en-US".into(),
            format!("--window-size={},{}", viewport.width, viewport.height),
            format!("--user-data-dir={}", profile.path().join("profile").display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "unhandledPromptBehavior": "ignore",
                    "timeouts": {"pageLoad": PAGE_LOAD_MS, "script": PAGE_LOAD_MS, "implicit": 0},
                    "goog:chromeOptions": {"binary": chromium_binary(), "args": args}
                }
            }
        });
        // The first session can take a while on a busy machine: Chromium starts cold.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&driver_addr, Duration::from_secs(1)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver does not accept connections on {driver_addr}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        let reply = http_json(driver_addr, "POST", "/session", Some(&caps), COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}\n{}", driver.report()));
        let value = reply.get("value").cloned().unwrap_or(Value::Null);
        let Some(session) = value["sessionId"].as_str().map(str::to_string) else {
            panic!(
                "chromedriver did not start a session: {reply}\n{}",
                driver.report()
            );
        };
        let mut browser = Browser {
            driver_addr,
            session,
            viewport,
            driver,
            profile,
        };
        browser.apply_viewport();
        browser
    }

    /// Makes the page see `viewport` (its size, and a phone's touch and `meta viewport` when mobile).
    fn apply_viewport(&mut self) {
        let v = self.viewport;
        if v.mobile {
            self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": v.width, "height": v.height, "deviceScaleFactor": 2, "mobile": true}),
            );
            self.cdp(
                "Emulation.setTouchEmulationEnabled",
                json!({"enabled": true, "maxTouchPoints": 5}),
            );
        } else {
            self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": v.width, "height": v.height, "deviceScaleFactor": 1, "mobile": false}),
            );
        }
    }

    /// One WebDriver command on the session: its `value`, or the error WebDriver returned.
    pub fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let full = format!("/session/{}{path}", self.session);
        let body = match (method, body) {
            ("POST", None) => Some(json!({})),
            (_, b) => b,
        };
        let reply = http_json(self.driver_addr, method, &full, body.as_ref(), COMMAND_TIMEOUT)?;
        let value = reply.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            let message = value["message"].as_str().unwrap_or_default();
            return Err(format!("{method} {path}: {error}: {message}"));
        }
        Ok(value)
    }

    /// As [`Browser::try_command`], failing the test on an error.
    pub fn command(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_command(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("{e}\n{}", self.driver.report()),
        }
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&mut self, cmd: &str, params: Value) -> Value {
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
    }

    /// Loads `url` and waits for it (bounded by the page-load timeout).
    pub fn goto(&mut self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&mut self) -> String {
        self.command("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn title(&mut self) -> String {
        self.command("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching the CSS selector, if any.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        let v = self
            .try_command(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        v[ELEMENT_KEY].as_str().map(|id| Element(id.to_string()))
    }

    /// Every element matching the CSS selector.
    pub fn find_all(&mut self, css: &str) -> Vec<Element> {
        let v = self.command(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(|id| Element(id.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The element matching `css`, waiting for it at most `timeout` (the page may still be loading).
    pub fn wait_for(&mut self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            if Instant::now() >= deadline {
                let url = self.current_url();
                let body = self.page_text();
                panic!("no element `{css}` on {url} within {timeout:?}; the page says:\n{body}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The element matching `css` now.
    pub fn find(&mut self, css: &str) -> Element {
        self.wait_for(css, Duration::ZERO)
    }

    /// Waits until `check` holds (at most `timeout`); returns the last value it saw either way.
    pub fn wait_until<T>(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut(&mut Browser) -> (bool, T),
    ) -> (bool, T) {
        let deadline = Instant::now() + timeout;
        loop {
            let (ok, v) = probe(self);
            if ok || Instant::now() >= deadline {
                return (ok, v);
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The rendered text of an element (as a person sees it).
    pub fn text(&mut self, e: &Element) -> String {
        self.command("GET", &format!("/element/{}/text", e.0), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The rendered text of every element matching `css` now, read in one script: parts of the page that
    /// are replaced while it is read (the swarm view, every 5 s) cannot go stale between a find and a read.
    pub fn texts_of(&mut self, css: &str) -> Vec<String> {
        let v = self.execute(
            "return Array.from(document.querySelectorAll(arguments[0])).map(function(e){return e.innerText;})",
            json!([css]),
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text of the first element matching `css` now (see [`Browser::texts_of`]); fails when there is
    /// none.
    pub fn text_of(&mut self, css: &str) -> String {
        match self.texts_of(css).into_iter().next() {
            Some(t) => t,
            None => {
                let url = self.current_url();
                let body = self.page_text();
                panic!("no element `{css}` on {url}; the page says:\n{body}");
            }
        }
    }

    /// An attribute as written in the HTML (None when absent).
    pub fn attr(&mut self, e: &Element, name: &str) -> Option<String> {
        self.command("GET", &format!("/element/{}/attribute/{name}", e.0), None)
            .as_str()
            .map(str::to_string)
    }

    /// A DOM property (`href` is the resolved, absolute URL).
    pub fn prop(&mut self, e: &Element, name: &str) -> Value {
        self.command("GET", &format!("/element/{}/property/{name}", e.0), None)
    }

    pub fn click(&mut self, e: &Element) {
        self.command("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Clears a field, then types `text` into it (for a file input: the file's absolute path).
    pub fn type_into(&mut self, e: &Element, text: &str) {
        let _ = self.try_command("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
        self.command(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub fn execute(&mut self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The text of an open alert, confirm or prompt (None when there is none).
    pub fn alert_text(&self) -> Option<String> {
        self.try_command("GET", "/alert/text", None)
            .ok()
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// The whole page's visible text (for failure messages).
    pub fn page_text(&mut self) -> String {
        self.try_command(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []})),
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// Emulates `prefers-color-scheme` (`light` or `dark`) for the pages of this session.
    pub fn set_color_scheme(&mut self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
    }

    /// The current page, whole (not only the window), as a PNG written to `path`.
    pub fn screenshot_page(&mut self, path: &Path) {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(f64::from(self.viewport.width));
        let height = size["height"].as_f64().unwrap_or(f64::from(self.viewport.height));
        let shot = self.cdp(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": width.max(f64::from(self.viewport.width)),
                         "height": height.clamp(1.0, 8000.0), "scale": 1}
            }),
        );
        let data = shot["data"].as_str().unwrap_or_default();
        let png = data_encoding::BASE64
            .decode(data.as_bytes())
            .unwrap_or_else(|e| panic!("screenshot of {}: bad base64: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG"),
            "screenshot of {} is not a PNG",
            path.display()
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// How far the page is wider than the window, in CSS pixels (0: no sideways scrolling).
    pub fn horizontal_overflow(&mut self) -> i64 {
        self.execute(
            "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - \
             document.documentElement.clientWidth",
            json!([]),
        )
        .as_i64()
        .unwrap_or(i64::MAX)
    }

    /// chromedriver's own log so far (the end), for failure messages.
    pub fn report(&mut self) -> String {
        let log = super::file_tail(&self.profile.path().join("chromedriver.log"), 40);
        format!("{}\nchromedriver.log (end):\n{log}", self.driver.report())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium quits with its session; then chromedriver's group goes (Chromium with it if still there).
        let _ = http_json(
            self.driver_addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
            Duration::from_secs(10),
        );
        self.driver.kill();
    }
}

/// Debian's Chromium (the `chromium` package).
pub fn chromium_binary() -> String {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .iter()
        .find(|p| Path::new(p).is_file())
        .map(|p| (*p).to_string())
        .unwrap_or_else(|| "chromium".to_string())
}

/// Fails (never skips) when Chromium or chromedriver is missing.
pub fn require_browser() {
    let mut missing = Vec::new();
    if !super::on_path("chromedriver") {
        missing.push("chromedriver (chromium-driver)");
    }
    if !Path::new(&chromium_binary()).is_file() {
        missing.push("chromium");
    }
    assert!(
        missing.is_empty(),
        "browser tests need {}: run `bash scripts/install-deps.sh` (from the workspace root) first.",
        missing.join(" and ")
    );
}

/// Where screenshots go: `target/screenshots/` of the workspace (or of `CARGO_TARGET_DIR`), an ignored
/// folder that CI keeps as artefacts.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

/// One HTTP request with a JSON body to chromedriver; the JSON it answers (WebDriver errors come back as
/// JSON too, with a 4xx or 5xx status).
fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Value, String> {
    let io = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let split = loop {
        if let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Err(format!(
                "{method} {path}: the connection closed before the headers ended"
            ));
        }
        response.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let length: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let mut body = response[split + 4..].to_vec();
    loop {
        if length.is_some_and(|n| body.len() >= n) {
            break;
        }
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if let Some(n) = length {
        body.truncate(n);
    }
    serde_json::from_slice(&body).map_err(|e| {
        format!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}
