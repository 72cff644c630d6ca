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
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use sealcache_settings::ServerLimits;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::conn_io::{ConnState, InFlight, JsonErrorIo};

/// How long open requests may take to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

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
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
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
        let service = TowerToHyperService::new(PerConnection {
            app: app.clone(),
            peer,
            state,
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out, bad HTTP): nothing to do.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("open connections did not finish within the drain time");
        }
    }
    Ok(())
}

/// The router as one connection sees it: the peer address added to every request, and every
/// response counted as in flight until hyper drops its body.
#[derive(Clone)]
struct PerConnection {
    app: Router,
    peer: SocketAddr,
    state: Arc<ConnState>,
}

impl tower::Service<Request<hyper::body::Incoming>> for PerConnection {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<hyper::body::Incoming>) -> Self::Future {
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
