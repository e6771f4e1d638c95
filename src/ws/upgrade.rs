//! The HTTP side of a WebSocket listener, without IO: a request head (read within the bounds
//! of `crate::http_head`) answered with the chat page (`GET /`), the upgrade to a WebSocket
//! (`GET /chat`, RFC 6455 4.2), or a short error.

use std::fmt;

use tungstenite::handshake::derive_accept_key;

use crate::http_head::{self, HeadError, header, response};

/// The chat page, served at `/`.
pub const PAGE: &str = include_str!("page.html");

/// Why a request got an error instead of the page or an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The head was not HTTP/1.x (400), or too large (431).
    Head(HeadError),
    /// A path other than `/` and `/chat` (404).
    NotFound,
    /// Another method than `GET` (405).
    Method,
    /// `GET /chat` that is not a WebSocket upgrade (400, or 426 for another version).
    NotAnUpgrade(&'static str),
    /// An `Origin` not in the allowed list (403).
    Origin(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Head(HeadError::Malformed) => write!(f, "the request was not HTTP"),
            Refusal::Head(HeadError::TooLarge) => write!(f, "the request's head was too large"),
            Refusal::NotFound => write!(f, "the request was for an unknown path"),
            Refusal::Method => write!(f, "the request's method was not GET"),
            Refusal::NotAnUpgrade(why) => {
                write!(
                    f,
                    "the request for /chat was not a WebSocket upgrade: {why}"
                )
            }
            Refusal::Origin(origin) => write!(
                f,
                "the upgrade came from origin {origin:?}, which is not allowed"
            ),
        }
    }
}

/// What a request head gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `GET /`: the page, then the connection closes.
    Page,
    /// `GET /chat`, a valid upgrade: `101 Switching Protocols` with this accept key.
    Upgrade(String),
    /// An error response, then the connection closes.
    Refused(Refusal),
}

impl Answer {
    /// The response's bytes.
    pub fn response(&self) -> Vec<u8> {
        match self {
            Answer::Page => response(
                "200 OK",
                "Cache-Control: no-cache\r\n",
                "text/html; charset=utf-8",
                PAGE.as_bytes(),
            ),
            Answer::Upgrade(accept) => format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes(),
            Answer::Refused(refusal) => match refusal {
                Refusal::Head(error) => http_head::error_response(*error),
                Refusal::NotFound => {
                    response("404 Not Found", "", "text/plain", b"try / or /chat\n")
                }
                Refusal::Method => response(
                    "405 Method Not Allowed",
                    "Allow: GET\r\n",
                    "text/plain",
                    b"only GET\n",
                ),
                Refusal::NotAnUpgrade("version") => response(
                    "426 Upgrade Required",
                    "Sec-WebSocket-Version: 13\r\n",
                    "text/plain",
                    b"WebSocket version 13 only\n",
                ),
                Refusal::NotAnUpgrade(_) => response(
                    "400 Bad Request",
                    "",
                    "text/plain",
                    b"a WebSocket upgrade is expected here\n",
                ),
                Refusal::Origin(_) => {
                    response("403 Forbidden", "", "text/plain", b"origin not allowed\n")
                }
            },
        }
    }
}

/// What `request` gets, with `origins` the allowed `Origin` values (any, when empty).
pub fn answer(request: &httparse::Request<'_, '_>, origins: &[String]) -> Answer {
    let path = http_head::path(request);
    if path != "/" && path != "/chat" {
        return Answer::Refused(Refusal::NotFound);
    }
    if request.method != Some("GET") {
        return Answer::Refused(Refusal::Method);
    }
    if path == "/" {
        return Answer::Page;
    }
    match upgrade(request, origins) {
        Ok(accept) => Answer::Upgrade(accept),
        Err(refusal) => Answer::Refused(refusal),
    }
}

/// The checks of RFC 6455 4.2.1, then the origin's.
fn upgrade(request: &httparse::Request<'_, '_>, origins: &[String]) -> Result<String, Refusal> {
    let has_token = |name: &str, token: &str| {
        header(request, name).is_some_and(|value| {
            value
                .split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    };
    if request.version != Some(1) {
        return Err(Refusal::NotAnUpgrade("HTTP/1.1 is required"));
    }
    if !has_token("Upgrade", "websocket") {
        return Err(Refusal::NotAnUpgrade("no `Upgrade: websocket` header"));
    }
    if !has_token("Connection", "upgrade") {
        return Err(Refusal::NotAnUpgrade("no `Connection: Upgrade` header"));
    }
    if header(request, "Sec-WebSocket-Version") != Some("13") {
        return Err(Refusal::NotAnUpgrade("version"));
    }
    // The key is 16 bytes in base64: 24 characters ending in `==`.
    let key = header(request, "Sec-WebSocket-Key")
        .filter(|key| key.len() == 24 && key.ends_with("=="))
        .ok_or(Refusal::NotAnUpgrade("no valid `Sec-WebSocket-Key` header"))?;
    if !origins.is_empty() {
        let origin = header(request, "Origin").unwrap_or("");
        if !origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Err(Refusal::Origin(origin.to_string()));
        }
    }
    Ok(derive_accept_key(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_head::RequestReader;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn answer_to(head: &str, origins: &[&str]) -> Answer {
        let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
        match RequestReader::default().feed(head.as_bytes(), |r| answer(r, &origins)) {
            Some(Ok((answer, _))) => answer,
            Some(Err(error)) => Answer::Refused(Refusal::Head(error)),
            None => panic!("incomplete head"),
        }
    }

    fn upgrade_head(extra: &str) -> String {
        format!(
            "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn the_rfc_example_upgrades_with_its_accept_key() {
        let answer = answer_to(&upgrade_head(""), &[]);
        assert_eq!(
            answer,
            Answer::Upgrade("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into())
        );
        let response = String::from_utf8(answer.response()).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(response.ends_with("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
    }

    #[test]
    fn the_page_is_served_at_the_root() {
        assert_eq!(answer_to("GET / HTTP/1.1\r\n\r\n", &[]), Answer::Page);
        let response = String::from_utf8(Answer::Page.response()).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.ends_with(PAGE));
    }

    #[test]
    fn other_requests_are_refused() {
        let refused = |head: &str| match answer_to(head, &[]) {
            Answer::Refused(refusal) => refusal,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused("GET /x HTTP/1.1\r\n\r\n"), Refusal::NotFound);
        assert_eq!(refused("POST / HTTP/1.1\r\n\r\n"), Refusal::Method);
        assert!(matches!(
            refused("GET /chat HTTP/1.1\r\n\r\n"),
            Refusal::NotAnUpgrade(_)
        ));
        let old = upgrade_head("").replace("Version: 13", "Version: 8");
        assert_eq!(refused(&old), Refusal::NotAnUpgrade("version"));
        let keyless = upgrade_head("").replace(KEY, "short");
        assert!(matches!(refused(&keyless), Refusal::NotAnUpgrade(_)));
        assert_eq!(
            refused("\x00\x01\r\n\r\n"),
            Refusal::Head(HeadError::Malformed)
        );
    }

    #[test]
    fn origins_are_checked_when_listed() {
        let allowed = ["http://chat.example"];
        let from =
            |origin: &str| answer_to(&upgrade_head(&format!("Origin: {origin}\r\n")), &allowed);
        assert!(matches!(from("http://chat.example"), Answer::Upgrade(_)));
        assert_eq!(
            from("http://evil.example"),
            Answer::Refused(Refusal::Origin("http://evil.example".into()))
        );
        assert!(matches!(
            answer_to(&upgrade_head(""), &allowed),
            Answer::Refused(Refusal::Origin(_))
        ));
        assert!(
            String::from_utf8(from("http://evil.example").response())
                .unwrap()
                .starts_with("HTTP/1.1 403 ")
        );
    }
}
