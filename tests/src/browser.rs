//! A real browser for the web-page tests: Debian's headless Chromium
//! driven through its ChromeDriver (`.ci/run` installs both), one browser
//! per test so tests run in parallel.
//!
//! Console errors are part of the contract ("no console errors"): the
//! session asks ChromeDriver to keep the browser log, and
//! [`Browser::console_errors`] reads it.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::app::free_port;

/// Where Debian puts them; `CHROMEDRIVER` / `CHROMIUM` override.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Desktop Chromium will not make a window narrower than this; narrower
/// sizes are phones, emulated through DevTools.
const MIN_WINDOW_WIDTH: u32 = 500;

/// How long a wait for something on the page lasts before the test fails.
pub const PAGE_PATIENCE: Duration = Duration::from_secs(20);

/// A headless Chromium at a window size, closed (and its driver killed)
/// on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// A 1280×900 laptop window.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_sized(1280, 900, "en-US").await
    }

    /// A browser of this window size whose preferred language is `lang`
    /// (`zh-CN`, `en-US`): pages choose their language from it.
    pub async fn start_sized(width: u32, height: u32, lang: &str) -> anyhow::Result<Self> {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        if !std::path::Path::new(&driver_bin).exists() {
            bail!(
                "{driver_bin} is missing: install Debian's chromium and chromium-driver \
                 (.ci/run does: apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        // Its own process group: on drop the driver and every Chromium
        // process it started die together. Killing the driver alone
        // leaves the browsers running, hundreds of them over a test run.
        let driver = Command::new(&driver_bin)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {driver_bin}"))?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--disable-crash-reporter",
                    "--disable-breakpad",
                    "--autoplay-policy=no-user-gesture-required",
                    format!("--window-size={width},{height}"),
                    format!("--lang={lang}"),
                ],
                "prefs": { "intl.accept_languages": lang },
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        // The driver takes a moment to listen.
        for _ in 0..100 {
            // Plain HTTP: the driver is on loopback, and no TLS stack
            // means no crypto provider to choose.
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    client.set_window_size(width, height).await.ok();
                    let browser = Self { client, driver };
                    if width < MIN_WINDOW_WIDTH {
                        // A phone: the page's viewport is set as a phone's.
                        browser
                            .cdp(
                                "Emulation.setDeviceMetricsOverride",
                                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": true}),
                            )
                            .await?;
                    }
                    return Ok(browser);
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut driver = driver;
        kill_group(driver.id());
        driver.kill().ok();
        bail!("chromedriver on port {port} did not start a session: {last:?}")
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        let found = tokio::time::timeout(
            PAGE_PATIENCE,
            self.client.wait().forever().for_element(Locator::Css(css)),
        )
        .await;
        match found {
            Ok(Ok(el)) => Ok(el),
            Ok(Err(e)) => Err(e).with_context(|| format!("finding {css}")),
            Err(_) => bail!(
                "no element {css} after {PAGE_PATIENCE:?} on {}",
                self.url().await
            ),
        }
    }

    /// Waits until the text of the element matching `css` satisfies `ok`,
    /// and returns it.
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + PAGE_PATIENCE;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if ok(&text) {
                    return Ok(text);
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{css} never had the expected text; last: {last:?}")
    }

    /// Waits until the page's URL path is `path`.
    pub async fn wait_path(&self, path: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PAGE_PATIENCE;
        while tokio::time::Instant::now() < deadline {
            if let Ok(url) = self.client.current_url().await
                && url.path() == path
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("never reached {path}; at {}", self.url().await)
    }

    /// Fills the login form and submits it.
    pub async fn log_in(&self, base: &str, username: &str, password: &str) -> anyhow::Result<()> {
        self.goto(&format!("{base}/login")).await?;
        self.find("#username").await?.send_keys(username).await?;
        self.find("#password").await?.send_keys(password).await?;
        self.find("#login-form button[type=submit]")
            .await?
            .click()
            .await?;
        Ok(())
    }

    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Severe entries of the browser console since the last call
    /// (uncaught exceptions, `console.error`, failed loads).
    pub async fn console_errors(&self) -> anyhow::Result<Vec<String>> {
        // ChromeDriver's log endpoint (not in the W3C spec; Chromium keeps it).
        let log = self
            .client
            .issue_cmd(ChromeCommand {
                path: "se/log",
                body: json!({ "type": "browser" }),
            })
            .await?;
        Ok(log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// A Chrome DevTools command (`Emulation.…`, `Network.…`, `Browser.…`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        self.client
            .issue_cmd(ChromeCommand {
                path: "goog/cdp/execute",
                body: json!({ "cmd": cmd, "params": params }),
            })
            .await
            .with_context(|| format!("DevTools {cmd}"))
    }

    /// Waits for the element matching `css` and clicks it.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking {css}"))
    }

    /// Fails the test on any console error.
    pub async fn assert_no_console_errors(&self) {
        self.assert_no_console_errors_but(&[]).await;
    }

    /// Fails the test on any console error except those containing one of
    /// `expected` (a test that causes a 409 or cuts the line on purpose).
    pub async fn assert_no_console_errors_but(&self, expected: &[&str]) {
        let errors: Vec<String> = self
            .console_errors()
            .await
            .expect("the browser log")
            .into_iter()
            .filter(|e| !expected.iter().any(|x| e.contains(x)))
            .collect();
        assert_eq!(errors, Vec::<String>::new());
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(self.driver.id());
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}

/// SIGKILL to the process group `pgid` (the driver's, see `start_sized`).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A ChromeDriver command outside the W3C spec: `POST
/// session/{id}/{path}` with `body`.
#[derive(Debug)]
struct ChromeCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}
