//! The accept loop: hyper's own protections switched on, and bounded connections.
//!
//! `axum::serve` runs hyper without a timer, so hyper's header-read timeout never applies. This
//! loop uses hyper's HTTP/1 connection builder directly, with:
//! * a timer and `header_read_timeout`: the whole header section must arrive within it, counted
//!   from when the connection is ready for a request, so an idle keep-alive connection is closed
//!   after it too (slowloris header drip and idle connections);
//! * `max_buf_size`: the read buffer, which bounds a header section (larger ones get 431);
//! * at most `max_connections` open connections: at the cap the loop stops accepting and new
//!   connections wait in the kernel's accept queue, so memory does not grow with them;
//! * a write-stall limit (the request timeout): a client that stops reading its responses (say,
//!   pipelining requests it never reads) is disconnected instead of holding its slot;
//! * the peer address in each request's extensions (`ConnectInfo`), for the API-key throttle;
//! * the documented JSON 400 for an HTTP/2 preface (`PRI * HTTP/2.0`, a client that assumes
//!   HTTP/2 with prior knowledge): hyper's HTTP/1 parser recognises it and gives up without an
//!   answer, so the connection is taken back from hyper and answered here;
//! * graceful shutdown: on the signal, stop accepting, let open requests finish (up to 30 s).
//!
//! Body deadlines, the body limit and load shedding are tower layers (see [`crate::limits`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use sealcache_settings::ServerLimits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use crate::conn_io::{ConnState, InFlight, JsonErrorIo, error_response};
use crate::error::ApiError;

/// How long open requests may take to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// How long an HTTP/2 client's further bytes are read and discarded after its 400.
const H2_LINGER: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then drains.
///
/// # Errors
/// Only if the connection semaphore is closed (never, in practice); accept errors (out of file
/// descriptors, ...) are logged and retried after a short pause.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    // Shutdown: `true` is sent to every connection; each holds a receiver until it is closed, so
    // `closed()` resolves when the last one is.
    let (stop, stopping) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let ids = AtomicU64::new(0);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = ConnState::new(ids.fetch_add(1, Ordering::Relaxed));
        let io = TokioIo::new(JsonErrorIo::new(
            stream,
            state.clone(),
            limits.request_timeout,
        ));
        let service = PerConnection {
            app: app.clone(),
            peer,
            state,
        };
        let connection = builder.serve_connection(io, service);
        let stopping = stopping.clone();
        let write_stall = limits.request_timeout;
        tokio::spawn(async move {
            drive(connection, stopping, write_stall).await;
            drop(permit);
        });
    }
    drop(listener);
    drop(stopping);
    stop.send_replace(true);
    tokio::select! {
        () = stop.closed() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("open connections did not finish within the drain time");
        }
    }
    Ok(())
}

type Connection = http1::Connection<TokioIo<JsonErrorIo<TcpStream>>, PerConnection>;

/// Runs one connection to its end: graceful once `stopping` turns true, and an HTTP/2 preface
/// answered with the JSON 400 (hyper gives such a connection back without a word).
async fn drive(
    mut connection: Connection,
    mut stopping: watch::Receiver<bool>,
    write_stall: Duration,
) {
    let stop = async move {
        // An error means the server is gone: stop too.
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    let mut stopped = false;
    let done = std::future::poll_fn(|cx| {
        if !stopped && stop.as_mut().poll(cx).is_ready() {
            stopped = true;
            Pin::new(&mut connection).graceful_shutdown();
        }
        connection.poll_without_shutdown(cx)
    })
    .await;
    let h2 = match done {
        Ok(()) => false,
        Err(err) if err.is_parse_version_h2() => true,
        // The client's doing (reset, timed out, bad HTTP, answered by hyper): nothing to do.
        Err(_) => return,
    };
    let parts = connection.into_parts();
    let id = parts.service.state.id();
    let mut io = parts.io.into_inner();
    let answer = async {
        if h2 {
            tracing::debug!("HTTP/2 preface answered with the JSON 400");
            io.write_all(&error_response(&ApiError::MalformedRequest, id))
                .await?;
        }
        io.shutdown().await
    };
    // Bounded like any write (a client that reads nothing holds its slot no longer).
    let answered = tokio::time::timeout(write_stall, answer).await;
    if h2 && matches!(answered, Ok(Ok(()))) {
        // Read what the client sent meanwhile (its SETTINGS frame, ...) until it closes, for a
        // moment: closing with unread bytes would reset the connection under the answer.
        let drain = async {
            let mut sink = [0u8; 4096];
            let mut budget = 64usize << 10;
            while budget > 0 {
                match io.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => budget = budget.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(H2_LINGER, drain).await;
    }
}

/// The router as one connection sees it: the peer address added to every request, and every
/// response counted as in flight until hyper drops its body.
#[derive(Clone)]
struct PerConnection {
    app: Router,
    peer: SocketAddr,
    state: Arc<ConnState>,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for PerConnection {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<hyper::body::Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let in_flight = self.state.response_started();
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request).await?;
            Ok(response.map(|body| {
                Body::new(Tracked {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A response body that keeps its response counted as in flight.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use axum::routing::get;

    use super::*;

    /// Serves `app` on a fresh port until the returned sender fires.
    async fn start(app: Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let limits = ServerLimits::default();
            serve(listener, app, &limits, async {
                let _ = stopped.await;
            })
            .await
        });
        (addr, stop)
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn an_http2_preface_is_answered_with_the_json_400() {
        let (addr, _stop) = start(Router::new()).await;
        let response = exchange(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response}"
        );
        assert!(response.contains("\r\nx-request-id: sc-c"), "{response}");
        assert!(
            response.ends_with(&ApiError::MalformedRequest.body()),
            "{response}"
        );
    }

    #[tokio::test]
    async fn shutdown_lets_an_open_request_finish_and_closes_idle_connections() {
        let app = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        let (addr, stop) = start(app).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let slow = tokio::spawn(exchange(addr, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), slow)
            .await
            .unwrap()
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("done"), "{response}");
        // The idle connection is closed, and nothing new is accepted.
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = match TcpStream::connect(addr).await {
            Err(_) => true,
            Ok(mut late) => {
                let _ = late.write_all(b"GET /slow HTTP/1.1\r\n\r\n").await;
                matches!(late.read(&mut buf).await, Ok(0) | Err(_))
            }
        };
        assert!(refused, "a connection was served after shutdown");
    }
}
