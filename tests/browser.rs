//! Section 10 of the contract in a real headless Chromium (Debian's, driven over WebDriver by
//! `tests/util/browser.rs`): the chat page on its own, then served by the server, two browser
//! pages and a TCP peer in one chat, errors shown as errors, the close at a graceful shutdown,
//! and the page driven with the keyboard alone.

mod util;

use std::path::{Path, PathBuf};

use util::browser::{Browser, Entry};
use util::{ServerProcess, Signal, WAIT};

/// The page as the binary embeds it, opened straight from the source tree.
fn page_file() -> String {
    format!("file://{}/src/ws/page.html", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn page_starts_on_a_labelled_name_field_and_says_when_it_cannot_connect() {
    let browser = Browser::start();
    let page = browser.open(&page_file(), (720, 600));
    assert_eq!(page.focused(), "name", "the name field has the focus");
    assert_eq!(page.text_of("status"), "Not connected");
    // Every field has a label a screen reader reads out, and the log is announced.
    let labels = page.script(
        "return ['name', 'line'].map(id => [...document.getElementById(id).labels]\
             .map(label => label.textContent));",
    );
    assert_eq!(labels, serde_json::json!([["Your name"], ["Message"]]));
    assert_eq!(
        page.script("return document.getElementById('log').role;"),
        "log"
    );
    // Opened from a file there is no server to reach: the page says so, and the name field is
    // back for another try.
    page.type_keys("alice\u{e007}");
    page.wait_for_css("#log li.closed");
    let entries = page.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0]
            .1
            .starts_with("Connection closed: could not connect"),
        "{entries:?}"
    );
    assert_eq!(page.focused(), "name");
    // Nothing was fetched from anywhere: the page is one file.
    let fetched = page.script("return performance.getEntriesByType('resource').length;");
    assert_eq!(fetched, 0);
}

/// A server with one WebSocket listener (and its plain one), and the page's address on it.
fn server_with_page(args: &[&str]) -> (ServerProcess, String) {
    let mut all = vec!["--listen-ws", "127.0.0.1:0"];
    all.extend(args);
    let server = ServerProcess::start(&all);
    let url = format!("http://{}/", server.ws_addrs[0]);
    (server, url)
}

/// Where a test's screenshot goes: under target/ (printed when saved).
fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(name)
}

#[test]
fn two_browsers_and_a_tcp_peer_chat_see_errors_and_the_close_at_shutdown() {
    let (mut server, url) = server_with_page(&[]);
    let browser = Browser::start();
    let alice = browser.open(&url, (720, 600));
    let bob = browser.open(&url, (720, 600));
    alice.login("alice");
    bob.login("bob");
    assert_eq!(alice.text_of("status"), "You are alice");
    let mut carol = server.login("carol");

    alice.send("bob, carol: hi both");
    alice.wait_for(Entry::Sent, "to bob, carol: hi both");
    bob.wait_for(Entry::From, "from alice: hi both");
    carol.expect("from alice: hi both");
    bob.send("alice: hello alice");
    alice.wait_for(Entry::From, "from bob: hello alice");
    carol.send("alice, bob: hi from nc\n");
    alice.wait_for(Entry::From, "from carol: hi from nc");
    bob.wait_for(Entry::From, "from carol: hi from nc");

    // The server's notices are shown as errors.
    alice.send("dave: are you there?");
    alice.wait_for(Entry::Error, "error: no such peer: dave");
    let impostor = browser.open(&url, (720, 600));
    impostor.join("alice");
    impostor.wait_for(Entry::Error, "error: name taken");
    assert_eq!(
        impostor.closed(),
        "Connection closed: the server closed it after that error, code 1001."
    );
    impostor.wait_for_css("#name:enabled:focus");
    assert_eq!(impostor.text_of("status"), "Not connected");
    // ... and the holder of the name is not disturbed.
    carol.send("alice: still you?\n");
    alice.wait_for(Entry::From, "from carol: still you?");

    // What the server sends is shown as text, never run as markup.
    let markup = r#"<img src=x onerror="document.title='owned'"> <b>not bold</b>"#;
    carol.send(&format!("bob: {markup}\n"));
    bob.wait_for(Entry::From, &format!("from carol: {markup}"));
    let title_and_tags = bob.script(
        "return [document.title, document.querySelectorAll('#log img, #log li b b').length];",
    );
    assert_eq!(title_and_tags, serde_json::json!(["a-chat", 0]));

    // A graceful shutdown with lines still on their way: each page shows every one of them,
    // then the close with code 1001.
    let mut batch: String = (1..=100).map(|i| format!("bob: queued {i}\n")).collect();
    batch.push_str("alice: see you\n");
    carol.send(&batch);
    server.signal(Signal::TERM);
    let bob_closed = bob.closed();
    assert!(bob_closed.contains("code 1001"), "{bob_closed}");
    let entries = bob.entries();
    let tail: Vec<&str> = entries[entries.len() - 101..]
        .iter()
        .map(|(_, text)| text.as_str())
        .collect();
    let queued: Vec<String> = (1..=100)
        .map(|i| format!("from carol: queued {i}"))
        .collect();
    assert_eq!(
        tail[..100],
        queued,
        "every queued line, in order, before the close"
    );
    let alice_closed = alice.closed();
    assert!(
        alice_closed.starts_with("Connection closed: the server is shutting down")
            && alice_closed.ends_with("code 1001."),
        "{alice_closed}"
    );
    alice.wait_for(Entry::From, "from carol: see you");
    assert_eq!(alice.text_of("status"), "Not connected");
    alice.screenshot(&artifact("shutdown-alice.png"));
    bob.screenshot(&artifact("shutdown-bob.png"));
    carol.expect_eof();
    drop(carol);
    assert!(server.wait_exit(WAIT).success(), "{}", server.stderr());
}

#[test]
fn the_page_works_with_the_keyboard_alone() {
    let (server, url) = server_with_page(&[]);
    let mut bob = server.login("bob");
    let browser = Browser::start();
    let page = browser.open(&url, (720, 600));
    assert_eq!(page.focused(), "name");
    page.type_keys("carol\u{e007}");
    page.wait_for_css("#line:enabled:focus");
    page.type_keys("bob: typed by hand\u{e007}");
    bob.expect("from carol: typed by hand");
    // The recipients stay in the line for the next message.
    page.type_keys("and again\u{e007}");
    bob.expect("from carol: and again");
    bob.send("carol: got both\n");
    page.wait_for(Entry::From, "from bob: got both");
    // Tab goes on to the Send button.
    page.type_keys("\u{e004}");
    assert_eq!(page.focused(), "send-button");
}

#[test]
fn a_message_too_big_shows_the_close_with_1009() {
    let (server, url) = server_with_page(&["--max-line", "64"]);
    let _bob = server.login("bob");
    let browser = Browser::start();
    let page = browser.open(&url, (720, 600));
    page.login("carol");
    page.paste_and_send(&format!("bob: {}", "x".repeat(8192)));
    let closed = page.closed();
    assert!(
        closed.starts_with("Connection closed: a message was too big")
            && closed.ends_with("code 1009."),
        "{closed}"
    );
}
