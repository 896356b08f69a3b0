//! Serving a router with the timeouts and limits a public service needs.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never fires: an idle keep-alive
//! connection, or one that sends half its headers, stays open until the client closes it. [`serve`]
//! drives hyper itself with a timer, so a connection that has not sent a complete request head within
//! [`ServeOptions::header_read_timeout`] (idle keep-alive included) is closed; it also caps concurrent
//! connections, and shuts down gracefully (in-flight requests finish). The body-read timeout is a router
//! layer: [`ServeOptions::body_timeout_layer`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Connection-level limits.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Longest wait for a complete request head, counted from when the connection starts waiting for
    /// one (a new or an idle keep-alive connection). Then the connection is closed.
    pub header_read_timeout: Duration,
    /// Longest gap between two chunks of a request body; then the request fails with `408`.
    pub body_read_timeout: Duration,
    /// Most connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Longest the shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

impl ServeOptions {
    /// The layer that enforces [`ServeOptions::body_read_timeout`]; apply it to the router.
    pub fn body_timeout_layer(&self) -> RequestBodyTimeoutLayer {
        RequestBodyTimeoutLayer::new(self.body_read_timeout)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets the requests in
/// flight finish (up to [`ServeOptions::shutdown_grace`]) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.header_read_timeout)
        .keep_alive_timeout(options.header_read_timeout);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning; the listener stays usable.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_bytes_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            // The auto (HTTP/1 or HTTP/2) builder reads the first bytes to pick the protocol before
            // hyper's header timer runs: a client that connects and sends nothing would wait forever.
            let mut first = [0u8; 1];
            if tokio::time::timeout(first_bytes_timeout, stream.peek(&mut first))
                .await
                .is_err()
            {
                tracing::debug!("connection sent nothing within the header timeout; closed");
                drop(permit);
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
    }
    Ok(())
}
