//! The connection's byte stream, with one job: the few responses hyper writes on its own (a
//! request it cannot parse: 400, 414, 431) get the documented JSON error body and an
//! `x-request-id`, like every other response.
//!
//! hyper answers a parse error itself, before any service sees the request, with a bare head and
//! no body, then closes the connection. Such a head is recognised on the way out by three facts
//! together:
//! * none of our responses has a byte left to write: none is in flight (each is counted from the
//!   service call until hyper drops its body) **and** a flush has completed since the last one
//!   started (hyper drops a body once its last chunk is buffered, before writing it out, so "not
//!   in flight" alone could be the middle of a body);
//! * the bytes start an HTTP/1.x response head with a 4xx/5xx status;
//! * that head has no `x-request-id` (which every response of ours carries).
//!
//! It is replaced by a complete response with the same status and `connection: close`; any later
//! write on that connection fails, so hyper closes it.
//!
//! hyper answers both of its header limits with the same bare 431: a header section over the byte
//! limit (its read buffer) and one with more than [`MAX_HEADER_FIELDS`] fields. To tell them
//! apart, the stream counts the lines of each request head as it reads it ([`HeadLines`]): from
//! the connection's start, and again from the first read after each response has been written
//! out, up to the head's blank line. A 431 for a head with more fields than the limit is
//! [`ApiError::TooManyHeaders`], any other [`ApiError::HeadersTooLarge`]. (A client that
//! pipelines may have sent part of the next head before the response went out; that part is not
//! counted, so an over-count head among pipelined requests may be reported as over the byte
//! limit. Both are 431 and refuse the same request.)

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{ApiError, MAX_HEADER_FIELDS};

/// What the service side tells the byte stream about one connection.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    id: u64,
    in_flight: AtomicUsize,
    /// A response started since the last completed flush with nothing in flight.
    unflushed: AtomicBool,
    /// Requests handed to the service so far: a new head starts after each.
    requests: AtomicU64,
}

impl ConnState {
    pub(crate) fn new(id: u64) -> Arc<Self> {
        Arc::new(Self {
            id,
            in_flight: AtomicUsize::new(0),
            unflushed: AtomicBool::new(false),
            requests: AtomicU64::new(0),
        })
    }

    /// The connection's id, as its `x-request-id` on a response written outside the router.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// A response of ours is on its way; held until hyper drops the response body.
    pub(crate) fn response_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.unflushed.store(true, Ordering::Release);
        self.requests.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// True when every byte of our responses has been written out.
    fn quiet(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.unflushed.load(Ordering::Acquire)
    }

    /// A flush completed: with nothing in flight, every response byte is out.
    fn flushed(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.unflushed.store(false, Ordering::Release);
        }
    }
}

/// Counts one response as in flight until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The stream wrapper. It also bounds how long a write may make no progress (a client that
/// pipelines requests and never reads its responses would otherwise hold its connection for ever).
#[derive(Debug)]
pub(crate) struct JsonErrorIo<T> {
    inner: T,
    state: Arc<ConnState>,
    write_stall: Duration,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A replacement being written: the bytes, how many are out, and how many of hyper's bytes
    /// it stands for.
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// After a replacement the connection is done: later writes fail.
    replaced: bool,
    /// The lines of the request head being read.
    head: HeadLines,
}

/// The lines of one request head, counted as its bytes are read, up to its blank line. Only
/// newlines are looked at (hyper parses the head; this only counts what it will have counted).
#[derive(Debug, Default)]
struct HeadLines {
    /// [`ConnState::requests`] when this head started.
    generation: u64,
    /// Complete non-empty lines (the request line included).
    lines: usize,
    /// Bytes of the current line, carriage returns aside.
    line_len: usize,
    /// The blank line that ends the head has been read.
    done: bool,
}

impl HeadLines {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            ..Self::default()
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.done {
                return;
            }
            match b {
                b'\n' if self.line_len > 0 => self.lines += 1,
                // Empty lines before the request line are skipped, as hyper skips them.
                b'\n' => self.done = self.lines > 0,
                b'\r' => continue,
                _ => self.line_len += 1,
            }
            if b == b'\n' {
                self.line_len = 0;
            }
        }
    }

    /// Header fields read so far, one that has started included (hyper refuses a field over its
    /// limit at its first byte).
    fn fields(&self) -> usize {
        let started = usize::from(self.lines > 0 && self.line_len > 0 && !self.done);
        self.lines.saturating_sub(1) + started
    }
}

impl<T> JsonErrorIo<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>, write_stall: Duration) -> Self {
        Self {
            inner,
            state,
            write_stall,
            stalled_since: None,
            replacing: None,
            replaced: false,
            head: HeadLines::default(),
        }
    }
}

/// The status of a response head that is not ours, if `bytes` starts one.
fn foreign_error_head(bytes: &[u8]) -> Option<StatusCode> {
    let rest = bytes
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| bytes.strip_prefix(b"HTTP/1.0 "))?;
    let code = std::str::from_utf8(rest.get(..3)?)
        .ok()?
        .parse::<u16>()
        .ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    if status.as_u16() < 400 {
        return None;
    }
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = bytes.get(..end)?;
    let ours = head
        .split(|&b| b == b'\n')
        .any(|line| line.len() >= 13 && line[..13].eq_ignore_ascii_case(b"x-request-id:"));
    (!ours).then_some(status)
}

/// A complete error response (JSON body, `x-request-id`, `connection: close`) for a connection
/// that is then closed.
pub(crate) fn error_response(error: &ApiError, connection: u64) -> Vec<u8> {
    let status = error.status();
    let body = error.body();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\nx-request-id: sc-c{:016x}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        crate::limits::opaque_id(crate::limits::IdKind::Connection, connection),
        body.len()
    )
    .into_bytes()
}

impl<T> JsonErrorIo<T> {
    /// Tracks write progress: `Pending` for longer than the stall limit becomes `TimedOut`.
    fn progress<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled_since = None;
            return poll;
        }
        let limit = self.write_stall;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            tracing::debug!("a client read nothing for the write-stall limit; connection closed");
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        Poll::Pending
    }
}

impl<T: AsyncWrite + Unpin> JsonErrorIo<T> {
    /// Writes the pending replacement out; `Ready(n)` reports hyper's `n` bytes as written.
    fn drive_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, stands_for)) = &mut self.replacing {
            let Some(rest) = bytes.get(*written..) else {
                break;
            };
            if rest.is_empty() {
                let n = *stands_for;
                self.replacing = None;
                self.replaced = true;
                return Poll::Ready(Ok(n));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }

    fn intercept(&mut self, first: &[u8], total: usize) -> bool {
        if !self.state.quiet() {
            return false;
        }
        match foreign_error_head(first) {
            Some(status) => {
                tracing::debug!(
                    status = status.as_u16(),
                    "parse-level error answered with the JSON body"
                );
                let error = match ApiError::for_status(status) {
                    ApiError::HeadersTooLarge if self.head.fields() > MAX_HEADER_FIELDS => {
                        ApiError::TooManyHeaders
                    }
                    other => other,
                };
                self.replacing = Some((error_response(&error, self.state.id), 0, total));
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrorIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        // Read while none of our responses has a byte left to write: the start of a head (or the
        // rest of one). Bodies are read while their request is in flight, and are not scanned.
        if self.state.quiet() {
            let generation = self.state.requests.load(Ordering::Acquire);
            if generation != self.head.generation {
                self.head = HeadLines::new(generation);
            }
            if let Some(read) = buf.filled().get(before..) {
                self.head.scan(read);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrorIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replaced {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        if this.replacing.is_some() || this.intercept(buf, buf.len()) {
            return this.drive_replacement(cx);
        }
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total = bufs.iter().map(|b| b.len()).sum();
        if this.replaced {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if this.replacing.is_some() || this.intercept(first, total) {
            return this.drive_replacement(cx);
        }
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.replacing.is_some() {
            ready!(self.drive_replacement(cx))?;
        }
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        ready!(self.progress(cx, poll))?;
        self.state.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.replacing.is_some() {
            ready!(self.drive_replacement(cx))?;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_error_heads_are_foreign() {
        assert_eq!(
            foreign_error_head(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            ),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(
            foreign_error_head(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            Some(StatusCode::BAD_REQUEST)
        );
        // Ours: carries a request id.
        assert_eq!(
            foreign_error_head(b"HTTP/1.1 404 Not Found\r\nX-Request-Id: sc-1\r\n\r\n{}"),
            None
        );
        // Not an error, not a head, not complete.
        assert_eq!(foreign_error_head(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(foreign_error_head(b"{\"hit\":true}"), None);
        assert_eq!(foreign_error_head(b"HTTP/1.1 400 Bad"), None);
        let out = String::from_utf8(error_response(&ApiError::HeadersTooLarge, 10)).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let id = format!(
            "x-request-id: sc-c{:016x}\r\n",
            crate::limits::opaque_id(crate::limits::IdKind::Connection, 10)
        );
        assert!(out.contains(&id), "{out}");
        // The 10th connection's id is not the 10th request's: the two cannot be linked.
        let request_id = format!(
            "{:016x}",
            crate::limits::opaque_id(crate::limits::IdKind::Request, 10)
        );
        assert!(!out.contains(&request_id), "{out}");
        assert!(out.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request headers are over the size limit"}}"#));
    }

    #[test]
    fn head_lines_count_the_fields_hyper_counts() {
        let fields = |chunks: &[&[u8]]| {
            let mut head = HeadLines::default();
            for chunk in chunks {
                head.scan(chunk);
            }
            head.fields()
        };
        assert_eq!(fields(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]), 1);
        // Split anywhere, bare newlines, empty lines before the request line.
        assert_eq!(
            fields(&[
                b"\r\n\r\nGET / HTTP/1.1\r",
                b"\nA: 1\nB:",
                b" 2\r\n\r",
                b"\n"
            ]),
            2
        );
        // Nothing after the blank line counts (a body, the next request).
        assert_eq!(
            fields(&[b"POST / HTTP/1.1\r\nA: 1\r\n\r\nline\nline\nline\n"]),
            1
        );
        // A field that has started counts, before its line ends.
        assert_eq!(fields(&[b"GET / HTTP/1.1\r\nA: 1\r\nB"]), 2);
        assert_eq!(fields(&[b"GET / HTTP/1.1\r\nA: 1\r\n"]), 1);
        let many = [
            &b"GET / HTTP/1.1\r\n"[..],
            &b"a:\r\n".repeat(MAX_HEADER_FIELDS + 1),
        ]
        .concat();
        assert_eq!(fields(&[&many]), MAX_HEADER_FIELDS + 1);
    }
}
