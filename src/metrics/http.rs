//! One HTTP/1.1 exchange of the metrics endpoint, without IO: request bytes in (parsed with
//! `httparse`), one response out, then `Connection: close`. `GET /metrics` is the only
//! resource; anything else gets a short error.

/// The most bytes a request head may take; a larger one gets 431 and the connection closes.
pub(crate) const MAX_REQUEST: usize = 4096;

/// The most headers a request may carry.
const MAX_HEADERS: usize = 32;

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
    /// The head did not end within [`MAX_REQUEST`] bytes: 431.
    TooLarge,
}

/// The request head read so far.
#[derive(Debug, Default)]
pub(crate) struct RequestReader {
    /// Invariant: at most [`MAX_REQUEST`] bytes, and not a complete head.
    head: Vec<u8>,
}

impl RequestReader {
    /// Takes `bytes` that arrived; returns the request once its head is complete (what
    /// follows the head, a body or a second request, is not looked at), or once it cannot be
    /// one. `None`: incomplete, waiting for more ("incomplete data is not considered invalid").
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Option<Request> {
        let room = MAX_REQUEST - self.head.len();
        let overflow = bytes.len() > room;
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&self.head) {
            Ok(httparse::Status::Complete(_)) => Some(classify(&request)),
            Ok(httparse::Status::Partial) if overflow || self.head.len() == MAX_REQUEST => {
                Some(Request::TooLarge)
            }
            Ok(httparse::Status::Partial) => None,
            Err(httparse::Error::TooManyHeaders) => Some(Request::TooLarge),
            Err(_) => Some(Request::Malformed),
        }
    }
}

fn classify(request: &httparse::Request<'_, '_>) -> Request {
    let path = request.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    match (request.method, path) {
        (Some("GET"), "/metrics") => Request::Metrics,
        (_, "/metrics") => Request::MethodNotAllowed,
        _ => Request::NotFound,
    }
}

/// The whole response to `request`; `body` makes the metrics text when it is asked for.
pub(crate) fn respond(request: Request, body: impl FnOnce() -> String) -> Vec<u8> {
    let (status, extra, content_type, body) = match request {
        Request::Metrics => ("200 OK", "", super::CONTENT_TYPE, body()),
        Request::NotFound => ("404 Not Found", "", "text/plain", "try /metrics\n".into()),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "Allow: GET\r\n",
            "text/plain",
            "only GET\n".into(),
        ),
        Request::Malformed => ("400 Bad Request", "", "text/plain", "bad request\n".into()),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            "",
            "text/plain",
            "request too large\n".into(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body.as_bytes());
    response
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
    fn a_head_that_does_not_end_is_cut_off() {
        let mut reader = RequestReader::default();
        assert_eq!(reader.feed(b"GET /metrics HTTP/1.1\r\n"), None);
        let header = format!("X-Pad: {}\r\n", "p".repeat(100));
        let mut verdict = None;
        for _ in 0..100 {
            verdict = reader.feed(header.as_bytes());
            if verdict.is_some() {
                break;
            }
        }
        assert_eq!(verdict, Some(Request::TooLarge));
        assert!(reader.head.len() <= MAX_REQUEST);
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
