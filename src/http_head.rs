//! An HTTP/1.x request head read without IO and within bounds (parsed with `httparse`), and a
//! short response with `Connection: close`: what the metrics endpoint and the WebSocket
//! upgrade share.

/// The most bytes a request head may take; a larger one is refused (431).
pub(crate) const MAX_REQUEST: usize = 4096;

/// The most headers a request may carry.
const MAX_HEADERS: usize = 32;

/// Why a request head cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x: 400.
    Malformed,
    /// The head did not end within [`MAX_REQUEST`] bytes, or has too many headers: 431.
    TooLarge,
}

/// The request head read so far.
#[derive(Debug, Default)]
pub(crate) struct RequestReader {
    /// Invariant: at most [`MAX_REQUEST`] bytes; once a head is complete, it and what came
    /// after it in the same reads.
    head: Vec<u8>,
}

impl RequestReader {
    /// Takes `bytes` that arrived. Once the head is complete, returns what `classify` makes of
    /// it and the head's length (the bytes after it are [`RequestReader::after`]); once it
    /// cannot be one, the error. `None`: incomplete, waiting for more ("incomplete data is not
    /// considered invalid").
    pub(crate) fn feed<T>(
        &mut self,
        bytes: &[u8],
        classify: impl FnOnce(&httparse::Request<'_, '_>) -> T,
    ) -> Option<Result<(T, usize), HeadError>> {
        let room = MAX_REQUEST - self.head.len();
        let overflow = bytes.len() > room;
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&self.head) {
            Ok(httparse::Status::Complete(len)) => Some(Ok((classify(&request), len))),
            Ok(httparse::Status::Partial) if overflow || self.head.len() == MAX_REQUEST => {
                Some(Err(HeadError::TooLarge))
            }
            Ok(httparse::Status::Partial) => None,
            Err(httparse::Error::TooManyHeaders) => Some(Err(HeadError::TooLarge)),
            Err(_) => Some(Err(HeadError::Malformed)),
        }
    }

    /// The bytes that came after a complete head of `len` bytes in the same reads.
    pub(crate) fn after(&self, len: usize) -> &[u8] {
        self.head.get(len..).unwrap_or(&[])
    }

    /// The bytes held (for the bound's tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.head.len()
    }
}

/// The path of a request, without its query string.
pub(crate) fn path<'a>(request: &httparse::Request<'a, '_>) -> &'a str {
    let path = request.path.unwrap_or("");
    path.split_once('?').map_or(path, |(path, _)| path)
}

/// The value of the header `name` (case-insensitive), if it is there once and is text.
pub(crate) fn header<'a>(request: &httparse::Request<'_, 'a>, name: &str) -> Option<&'a str> {
    let mut found = request
        .headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case(name));
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    std::str::from_utf8(first.value).ok().map(str::trim)
}

/// A whole response that closes the connection: `status` (`"404 Not Found"`), extra header
/// lines (each ending in `\r\n`), the body and its type.
pub(crate) fn response(status: &str, extra: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// The response to a head that cannot be served.
pub(crate) fn error_response(error: HeadError) -> Vec<u8> {
    match error {
        HeadError::Malformed => response("400 Bad Request", "", "text/plain", b"bad request\n"),
        HeadError::TooLarge => response(
            "431 Request Header Fields Too Large",
            "",
            "text/plain",
            b"request too large\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(bytes: &[u8]) -> Option<Result<(String, usize), HeadError>> {
        RequestReader::default().feed(bytes, |r| r.method.unwrap_or("").to_string())
    }

    #[test]
    fn a_complete_head_gives_its_length_and_what_follows() {
        let mut reader = RequestReader::default();
        let got = reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest", |r| {
            path(r).to_string()
        });
        assert_eq!(got, Some(Ok(("/".to_string(), 27))));
        assert_eq!(reader.after(27), b"rest");
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(
            method(b"\x00\x01 hello\r\n\r\n"),
            Some(Err(HeadError::Malformed))
        );
    }

    #[test]
    fn a_head_that_does_not_end_is_cut_off() {
        let mut reader = RequestReader::default();
        assert_eq!(reader.feed(b"GET / HTTP/1.1\r\n", |_| ()), None);
        let header = format!("X-Pad: {}\r\n", "p".repeat(100));
        let mut verdict = None;
        for _ in 0..100 {
            verdict = reader.feed(header.as_bytes(), |_| ());
            if verdict.is_some() {
                break;
            }
        }
        assert_eq!(verdict, Some(Err(HeadError::TooLarge)));
        assert!(reader.held() <= MAX_REQUEST);
    }

    #[test]
    fn headers_are_found_once_and_case_insensitively() {
        let head = b"GET / HTTP/1.1\r\nuPgRaDe: websocket\r\nX: 1\r\nX: 2\r\n\r\n";
        let got = RequestReader::default().feed(head, |r| {
            (
                header(r, "Upgrade").map(String::from),
                header(r, "X").map(String::from),
            )
        });
        assert_eq!(
            got,
            Some(Ok(((Some("websocket".into()), None), head.len())))
        );
    }
}
