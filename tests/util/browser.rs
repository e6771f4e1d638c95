//! A real headless Chromium for the browser tests, driven over WebDriver (fantoccini) through
//! Debian's `chromedriver`; `chromium` and `chromium-driver` are installed from Debian's packages
//! when missing. Each [`Page`] is its own browser session (its own Chromium process); every wait
//! is bounded by [`WAIT`](super::WAIT) and fails the test with what the page shows.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use super::WAIT;

/// The programs, found or installed once per test process.
fn programs() -> &'static (PathBuf, PathBuf) {
    static PROGRAMS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let packages = ["chromium", "chromium-driver"];
        let driver = super::install::program("chromedriver", &packages, "the browser tests");
        let chromium = super::install::program("chromium", &packages, "the browser tests");
        (driver, chromium)
    })
}

/// A `chromedriver` on a free loopback port, killed when dropped (after its pages).
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT`, chromedriver's address.
    url: String,
    /// Drives fantoccini's futures; only ever inside `block_on`, so nothing runs in between.
    runtime: Runtime,
}

impl Browser {
    /// Starts chromedriver (`--port=0`: it picks a free port and says which on its first lines).
    pub fn start() -> Browser {
        let (driver_path, _) = programs();
        let mut driver = Command::new(driver_path)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = driver.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "ChromeDriver was started successfully on port 40821."
                if let Some(port) = line.split("successfully on port ").nth(1) {
                    let _ = tx.send(port.trim_end_matches('.').to_string());
                }
            }
        });
        let port = rx
            .recv_timeout(WAIT)
            .expect("chromedriver did not say on which port it listens");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Browser {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            runtime,
        }
    }

    /// A new headless Chromium window of `width`×`height` pixels showing `url`.
    pub fn open(&self, url: &str, (width, height): (u32, u32)) -> Page<'_> {
        let (_, chromium) = programs();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // --no-sandbox: the tests may run as root, where Chromium's sandbox refuses.
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--window-size={width},{height}")],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = self.block_on("starting Chromium", async {
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&self.url)
                .await
                .map_err(|err| err.to_string())
        });
        let page = Page {
            browser: self,
            client: Some(client),
        };
        page.run("loading the page", |c| async move { c.goto(url).await });
        page
    }

    /// Runs `future` to its end, failing the test after [`WAIT`] or on an error.
    fn block_on<T, E: std::fmt::Display>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, E>>,
    ) -> T {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(WAIT, future).await })
        {
            Ok(Ok(value)) => value,
            Ok(Err(err)) => panic!("{what}: {err}"),
            Err(_) => panic!("{what}: no answer within {WAIT:?}"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One kind of entry in the page's log (`<li class=KIND>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A routed line, `from NAME: TEXT`.
    From,
    /// A line of the server's own, `error: ...`.
    Error,
    /// A line this page sent, shown as `to DESTS: TEXT`.
    Sent,
    /// The connection's close, with its code.
    Closed,
}

impl Entry {
    fn class(self) -> &'static str {
        match self {
            Entry::From => "from",
            Entry::Error => "error",
            Entry::Sent => "sent",
            Entry::Closed => "closed",
        }
    }
}

/// One browser window on the chat page; its Chromium is closed when dropped.
pub struct Page<'b> {
    browser: &'b Browser,
    /// Invariant: `Some` until dropped.
    client: Option<Client>,
}

impl Page<'_> {
    fn run<'a, T, F>(&'a self, what: &str, command: impl FnOnce(&'a Client) -> F) -> T
    where
        F: Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let client = self.client.as_ref().unwrap();
        self.browser.block_on(what, command(client))
    }

    /// Types `name` into the name field and presses Enter.
    pub fn join(&self, name: &str) {
        let keys = format!("{name}{}", char::from(Key::Enter));
        self.run("typing the name", |c| async move {
            c.find(Locator::Id("name")).await?.send_keys(&keys).await
        });
    }

    /// Logs in as `name` ([`Page::join`]) and waits until the message line has the focus.
    pub fn login(&self, name: &str) {
        self.join(name);
        self.wait_for_css("#line:enabled:focus");
    }

    /// Types `line` into the message line (emptied first) and presses Enter.
    pub fn send(&self, line: &str) {
        let keys = format!("{line}{}", char::from(Key::Enter));
        self.run("typing a line", |c| async move {
            let input = c.find(Locator::Id("line")).await?;
            input.clear().await?;
            input.send_keys(&keys).await
        });
    }

    /// Puts `line` into the message line at once, as a paste does (typing thousands of
    /// characters takes long), and presses Enter.
    pub fn paste_and_send(&self, line: &str) {
        let enter = char::from(Key::Enter).to_string();
        self.run("pasting a line", |c| async move {
            let set = "document.getElementById('line').value = arguments[0];";
            c.execute(set, vec![Value::from(line)]).await?;
            c.find(Locator::Id("line")).await?.send_keys(&enter).await
        });
    }

    /// Types `keys` (`\u{e007}` for Enter) into whatever element has the focus, as a person
    /// at a keyboard does.
    pub fn type_keys(&self, keys: &str) {
        self.run("typing", |c| async move {
            c.active_element().await?.send_keys(keys).await
        });
    }

    /// The `id` of the element that has the focus.
    pub fn focused(&self) -> String {
        self.run("reading the focus", |c| async move {
            Ok(c.active_element()
                .await?
                .attr("id")
                .await?
                .unwrap_or_default())
        })
    }

    /// The text of the element `#id`.
    pub fn text_of(&self, id: &str) -> String {
        self.run("reading text", |c| async move {
            c.find(Locator::Id(id)).await?.text().await
        })
    }

    /// What `script` (a function body, `return ...;`) returns in the page.
    pub fn script(&self, script: &str) -> Value {
        self.run("running a script", |c| async move {
            c.execute(script, vec![]).await
        })
    }

    /// The log as it is now: each entry's kind (its class) and text.
    pub fn entries(&self) -> Vec<(String, String)> {
        let value = self.script(
            "return [...document.querySelectorAll('#log li')]\
                 .map(li => [li.className, li.textContent]);",
        );
        serde_json::from_value(value).expect("the log as [class, text] pairs")
    }

    /// Waits until the log holds an entry of `kind` whose text is `text`.
    pub fn wait_for(&self, kind: Entry, text: &str) {
        let xpath = format!(
            "//ol[@id='log']/li[@class='{}' and .={}]",
            kind.class(),
            xpath_literal(text)
        );
        self.wait_for_element(Locator::XPath(&xpath), &format!("{kind:?} {text:?}"));
    }

    /// Waits until the log shows the connection's close, and returns what it says.
    pub fn closed(&self) -> String {
        self.wait_for_css("#log li.closed");
        let entries = self.entries();
        let (_, text) = entries.iter().find(|(kind, _)| kind == "closed").unwrap();
        text.clone()
    }

    /// Waits until an element matches the CSS selector `css`.
    pub fn wait_for_css(&self, css: &str) {
        self.wait_for_element(Locator::Css(css), css);
    }

    fn wait_for_element(&self, locator: Locator<'_>, what: &str) {
        let client = self.client.as_ref().unwrap();
        let found = self.browser.runtime.block_on(async {
            client
                .wait()
                .at_most(WAIT)
                .every(Duration::from_millis(50))
                .for_element(locator)
                .await
        });
        if let Err(err) = found {
            panic!(
                "the page never showed {what} ({err}); its log: {:#?}; its status: {:?}",
                self.entries(),
                self.text_of("status")
            );
        }
    }

    /// Saves a PNG of the window at `path` (its folder created) and prints where.
    pub fn screenshot(&self, path: &Path) {
        let png = self.run(
            "taking a screenshot",
            |c| async move { c.screenshot().await },
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

impl Drop for Page<'_> {
    fn drop(&mut self) {
        // Ends the session, which closes its Chromium; bounded, and quiet if the test failed.
        if let Some(client) = self.client.take() {
            let _ = self
                .browser
                .runtime
                .block_on(async { tokio::time::timeout(WAIT, client.close()).await });
        }
    }
}

/// `text` as an XPath 1.0 string literal (which has no escapes: quotes are joined by concat).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|part| format!("'{part}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}
