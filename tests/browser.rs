//! Section 10 of the contract in a real headless Chromium (Debian's, driven over WebDriver by
//! `tests/util/browser.rs`): the chat page on its own, then served by the server, two browser
//! pages and a TCP peer in one chat, errors shown as errors, the close at a graceful shutdown,
//! and the page driven with the keyboard alone.

mod util;

use util::browser::Browser;

/// The page as the binary embeds it, opened straight from the source tree.
fn page_file() -> String {
    format!("file://{}/src/ws/page.html", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn page_starts_on_a_labelled_name_field_and_says_when_it_cannot_connect() {
    let browser = Browser::start();
    let page = browser.open(&page_file(), (720, 480));
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
