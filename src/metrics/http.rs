//! One HTTP/1.1 exchange of the metrics endpoint, without IO: request bytes in (the head read
//! by `crate::http_head`), one response out, then `Connection: close`. `GET /metrics` is the only
//! resource; anything else gets a short error.

use crate::http_head::{self, HeadError};

/// What a complete (or hopeless) request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// Another path: 404.
    NotFound,
    /// Another method on `/metrics`: 405.
    MethodNotAllowed,
    /// Not HTTP/1.x: 400.
    Malformed,
    /// The head did not end within [`http_head::MAX_REQUEST`] bytes: 431.
    TooLarge,
}

/// The request head read so far.
#[derive(Debug, Default)]
pub(crate) struct RequestReader(http_head::RequestReader);

impl RequestReader {
    /// Takes `bytes` that arrived; returns the request once its head is complete (what
    /// follows the head, a body or a second request, is not looked at), or once it cannot be
    /// one. `None`: incomplete, waiting for more.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Option<Request> {
        Some(match self.0.feed(bytes, classify)? {
            Ok((request, _)) => request,
            Err(HeadError::Malformed) => Request::Malformed,
            Err(HeadError::TooLarge) => Request::TooLarge,
        })
    }
}

fn classify(request: &httparse::Request<'_, '_>) -> Request {
    match (request.method, http_head::path(request)) {
        (Some("GET"), "/metrics") => Request::Metrics,
        (_, "/metrics") => Request::MethodNotAllowed,
        _ => Request::NotFound,
    }
}

/// The whole response to `request`; `body` makes the metrics text when it is asked for.
pub(crate) fn respond(request: Request, body: impl FnOnce() -> String) -> Vec<u8> {
    match request {
        Request::Metrics => {
            http_head::response("200 OK", "", super::CONTENT_TYPE, body().as_bytes())
        }
        Request::NotFound => {
            http_head::response("404 Not Found", "", "text/plain", b"try /metrics\n")
        }
        Request::MethodNotAllowed => http_head::response(
            "405 Method Not Allowed",
            "Allow: GET\r\n",
            "text/plain",
            b"only GET\n",
        ),
        Request::Malformed => http_head::error_response(HeadError::Malformed),
        Request::TooLarge => http_head::error_response(HeadError::TooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> Option<Request> {
        RequestReader::default().feed(bytes)
    }

    #[test]
    fn requests_are_told_apart() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(request(get), Some(Request::Metrics));
        assert_eq!(
            request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Request::Metrics)
        );
        assert_eq!(request(b"GET / HTTP/1.1\r\n\r\n"), Some(Request::NotFound));
        assert_eq!(
            request(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Some(Request::MethodNotAllowed)
        );
        assert_eq!(request(b"\x00\x01 hello\r\n\r\n"), Some(Request::Malformed));
    }

    #[test]
    fn a_head_may_arrive_a_byte_at_a_time() {
        let mut reader = RequestReader::default();
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for byte in &get[..get.len() - 1] {
            assert_eq!(reader.feed(&[*byte]), None);
        }
        assert_eq!(reader.feed(b"\n"), Some(Request::Metrics));
    }

    #[test]
    fn responses_carry_their_length_and_close() {
        let response = String::from_utf8(respond(Request::Metrics, || "a 1\n".into())).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.contains("Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"));
        let response = String::from_utf8(respond(Request::MethodNotAllowed, String::new)).unwrap();
        assert!(response.starts_with("HTTP/1.1 405 "));
        assert!(response.contains("Allow: GET\r\n"));
    }
}
