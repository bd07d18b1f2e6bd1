//! A headless Chromium for the browser tests: Debian's `chromium` driven
//! over WebDriver (chromedriver, with `fantoccini`), the few things a test
//! does with a page (evaluate, wait for, fill in, click, screenshot), and
//! the legibility check every page must pass (7:1 contrast, 16 px).
//!
//! Include after `support/service.rs` with
//! `#[path = "support/browser.rs"] mod browser;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Where a program is, from `$PATH` (or the variable naming it; not a
/// `MON_` one, which `mon run` would read as its configuration).
fn program(variable: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} is not installed: the browser tests need Debian's chromium and chromium-driver; \
         run scripts/setup-test-env (or set {variable})",
        names[0]
    );
}

/// A chromedriver child process and a headless Chromium session on it.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    pub async fn open() -> Browser {
        let chromium = program("UI_TEST_CHROMIUM", &["chromium", "chromium-browser"]);
        let chromedriver = program("UI_TEST_CHROMEDRIVER", &["chromedriver"]);
        let address = super::service::free_address();
        let port = address.rsplit(':').next().unwrap().to_string();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let started = Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "chromedriver did not listen on {address}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // 1080p, the wallboard's smallest target.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1920,1080", "--hide-scrollbars", "--force-device-scale-factor=1"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{address}"))
            .await
            .expect("a Chromium session from chromedriver");
        Browser { client, driver }
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` (which returns a value) until `done` holds of it.
    pub async fn wait_for(&self, limit: Duration, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < limit {
            // A page that is navigating (a sign-out reloads it) answers
            // no script for a moment: that is "not yet", not a failure.
            last = self.client.execute(script, vec![]).await.unwrap_or(Value::Null);
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: not within {limit:?}; last seen: {last}");
    }

    /// Types into the field `selector` (inside `within`, a CSS selector)
    /// and presses the form's submit button, as a person would.
    pub async fn fill_and_submit(&self, within: &str, fields: &[(&str, &str)]) {
        let form = self.client.find(Locator::Css(within)).await.unwrap_or_else(|e| panic!("{within}: {e}"));
        for (field, text) in fields {
            let input = form.find(Locator::Css(field)).await.unwrap_or_else(|e| panic!("{within} {field}: {e}"));
            input.send_keys(text).await.unwrap();
        }
        form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    }

    /// Clicks the first element `selector` matches. A live page may
    /// redraw it between finding and clicking (a streamed update): then
    /// it is found again, for up to 5 s.
    pub async fn click(&self, selector: &str) {
        let started = Instant::now();
        loop {
            let clicked = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => element.click().await,
                Err(e) => Err(e),
            };
            match clicked {
                Ok(()) => return,
                Err(e) if started.elapsed() > Duration::from_secs(5) => panic!("click {selector}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits for the sign-in dialog, enters `token` and signs in.
    pub async fn sign_in(&self, token: &str) {
        self.wait_for(
            Duration::from_secs(5),
            "the sign-in dialog",
            "return document.getElementById('login').open",
            |o| o == true,
        )
        .await;
        self.eval("document.getElementById('login-token').value = ''; return null").await;
        self.fill_and_submit("#login-form", &[("#login-token", token)]).await;
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Every visible piece of text with its colour and the colour behind it:
/// an HTML element's background is its nearest ancestor's that is not
/// transparent; an SVG label in a map node sits on the node's box.
const CONTRAST_SCRIPT: &str = r#"
const out = [];
const opaque = (c) => c && c !== 'transparent' && !/rgba\(.*,\s*0\)$/.test(c);
const backgroundOf = (el) => {
  for (let e = el; e; e = e.parentElement) {
    if (e instanceof SVGElement) {
      const node = e.closest('g.node');
      if (node) return getComputedStyle(node.querySelector('rect')).fill;
      continue;
    }
    const bg = getComputedStyle(e).backgroundColor;
    if (opaque(bg)) return bg;
  }
  return getComputedStyle(document.documentElement).backgroundColor;
};
for (const el of document.querySelectorAll('body *')) {
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.getClientRects().length) continue;
  const style = getComputedStyle(el);
  if (style.visibility === 'hidden' || el.closest('dialog:not([open])')) continue;
  const color = el instanceof SVGElement ? style.fill : style.color;
  out.push({ text: el.textContent.trim().slice(0, 40), color, background: backgroundOf(el), size: parseFloat(style.fontSize) });
}
return out;
"#;

pub fn rgb(css: &str) -> [f64; 3] {
    let inner =
        css.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')).unwrap_or_else(|| panic!("colour {css}"));
    let parts: Vec<f64> =
        inner.split(',').map(|p| p.trim().parse().unwrap_or_else(|_| panic!("colour {css}"))).collect();
    [parts[0], parts[1], parts[2]]
}

/// WCAG 2 contrast ratio of two sRGB colours.
pub fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
    let luminance = |c: [f64; 3]| {
        let channel = |v: f64| {
            let v = v / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])
    };
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// Every text on the page reaches 7:1 (WCAG AAA) and is at least 16 px.
pub async fn assert_legible(browser: &Browser, page: &str) {
    let texts = browser.eval(CONTRAST_SCRIPT).await;
    let texts = texts.as_array().expect("a list");
    assert!(texts.len() > 10, "{page}: too little text measured: {texts:?}");
    for text in texts {
        let (color, background) = (text["color"].as_str().unwrap(), text["background"].as_str().unwrap());
        let ratio = contrast(rgb(color), rgb(background));
        assert!(ratio >= 7.0, "{page}: {text} has contrast {ratio:.2}:1, below 7:1");
        assert!(text["size"].as_f64().unwrap() >= 16.0, "{page}: {text} is smaller than 16px");
    }
}
