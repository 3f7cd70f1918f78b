//! The HTTP edge of `serve`: accepting connections within a limit, and the
//! timeouts that keep a slow or silent client from holding one. axum's own
//! `serve` has neither, so connections are driven with hyper directly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's headers must arrive within this of the connection
    /// opening or of the previous answer (so a silent or kept-alive idle
    /// connection is closed after it too); its body, within this again.
    pub read_timeout: Duration,
    /// Connections open at once; one more is closed as it arrives.
    pub max_connections: usize,
    /// After a stop signal, how long requests in flight may finish.
    pub grace: Duration,
}

/// Serves `router` on `listener` until `stop` completes, then lets the
/// requests in flight finish (for at most `limits.grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut refused_since_log = 0u64;
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: wait for some to close
                // instead of spinning.
                eprintln!("ripple serve: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            // Closed at once: a descriptor held by a refused client is one
            // a real build cannot have.
            drop(stream);
            refused_since_log += 1;
            if refused_since_log.is_power_of_two() {
                eprintln!(
                    "ripple serve: {} connections open (--max-connections); closed {refused_since_log} more so far",
                    limits.max_connections
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_timeout)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.grace) => {
            eprintln!("ripple serve: stopping with requests still in flight");
        }
    }
}
