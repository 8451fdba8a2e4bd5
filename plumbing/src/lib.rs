//! Plumbing every binary of the workspace needs the same way, written once:
//! the shutdown signal a server or supervisor waits for, the JSON log lines
//! the Lambdas and the gateway write, serving a router with the socket
//! options every server wants ([`serve`]), and the reader of the agent's event
//! stream ([`sse`]), one environment reader ([`env`]), and the one secret
//! type with its Secrets Manager lookup ([`secrets`]).

pub mod env;
pub mod logs;
pub mod secrets;
pub mod sse;

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, the signals a terminal, a
/// container runtime and the Lambda runtime send to stop a process. A
/// signal that cannot be watched is treated as never arriving (the other
/// still works); this never panics.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish. Small answers and stream events go out as they
/// are written: `TCP_NODELAY`, no Nagle wait behind an unacknowledged one
/// (without it a pipelining client waited ~40 ms per answer).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Where the log lines go, which decides whether each carries a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSink {
    /// CloudWatch stamps each line itself.
    CloudWatch,
    /// A terminal or file: each line carries its time.
    Local,
}

/// One JSON object per line, the event's fields at the top level, filtered
/// by `RUST_LOG` (default `info`). Call once, first thing in `main`.
pub fn init_json_logs(sink: LogSink) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter);
    match sink {
        LogSink::CloudWatch => fmt.without_time().init(),
        LogSink::Local => fmt.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_ends_the_wait() {
        // Our own listener first: from here on SIGTERM cannot kill the test
        // process, whenever `shutdown_signal` installs its handler.
        let mut ours =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        let waiting = tokio::spawn(shutdown_signal());
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        // Signalled until the waiter has seen one (it may install its handler
        // after the first signal).
        while !waiting.is_finished() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "SIGTERM never ended the wait"
            );
            std::process::Command::new("kill")
                .args(["-TERM", &std::process::id().to_string()])
                .status()
                .unwrap();
            ours.recv().await;
            tokio::task::yield_now().await;
        }
        waiting.await.unwrap();
    }
}
