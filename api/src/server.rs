//! The HTTP server: hyper's connection builder under the router, for the two deadlines `axum::serve` does not
//! expose (reading a request's headers; a client that stops reading a response), with graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;

/// Per-connection deadlines.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    /// From the connection's first byte of a request to the end of its headers (slowloris).
    pub header_read: Duration,
    /// How long one write to the client may stay pending: a client that reads nothing for this long has
    /// stopped, and its connection (with the download it holds) is closed. A read deadline would not do: a
    /// client downloading a large file sends nothing for hours.
    pub stalled_write: Duration,
}

impl Default for ConnectionTimeouts {
    fn default() -> Self {
        Self { header_read: Duration::from_secs(10), stalled_write: Duration::from_secs(60) }
    }
}

/// What [`serve`] runs: the router and its connections' deadlines.
pub struct App {
    pub router: Router,
    pub timeouts: ConnectionTimeouts,
}

/// A bare router is served with the default deadlines.
impl From<Router> for App {
    fn from(router: Router) -> Self {
        Self { router, timeouts: ConnectionTimeouts::default() }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: impl Into<App> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let App { router, timeouts } = app.into();
    // HTTP/1.1 only: guessing between HTTP/1 and cleartext HTTP/2 reads the first bytes with no deadline, so
    // a connection that sends nothing would be held forever. (TLS, and HTTP/2 with it, end at a proxy; no
    // route upgrades a connection, so `serve_connection_with_upgrades`, which ignores `http1_only`, is not needed.)
    // HTTP/1's header deadline runs from the moment a request is awaited, idle keep-alive included.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of file descriptors and the like: the listener itself is fine, so wait and go on.
                    tracing::error!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let mut stream = TimeoutStream::new(tcp);
        stream.set_write_timeout(Some(timeouts.stalled_write));
        let io = TokioIo::new(Box::pin(stream));
        let connection = builder.serve_connection(io, TowerToHyperService::new(router.clone())).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
