//! The service's HTTP server and webhook ingest worker, started on the demo's store before
//! the month is generated and drained after it is printed, so that /metrics and the report
//! API answer while the demo runs, and webhooks posted meanwhile take the service's own
//! ingest path.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::DemoError;
use crate::config::Config;
use crate::pipeline::PipelineError;
use crate::server::{self, AppState, Intake};

/// The server and the ingest worker while they run.
pub(super) struct Served {
    pub(super) addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    ingest: JoinHandle<Result<(), PipelineError>>,
}

impl Served {
    /// Binds `[server] listen` and starts the server and the ingest worker; the server is
    /// ready once the worker has the store.
    pub(super) async fn start(config: &Arc<Config>) -> Result<Served, DemoError> {
        let listen_error = |source| DemoError::Listen {
            addr: config.server.listen.clone(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        let (stop, stop_rx) = watch::channel(false);
        let store_ok = Arc::new(AtomicBool::new(false));
        let ready: Box<dyn Fn() -> bool + Send + Sync> = {
            let store_ok = store_ok.clone();
            Box::new(move || store_ok.load(Ordering::Relaxed))
        };
        let (ingest_tx, ingest_rx) = mpsc::channel(config.kafka.channel_capacity.max(1));
        let state = Arc::new(AppState::new(config.clone(), ready, Intake::Worker(ingest_tx)));
        let server = tokio::spawn(server::serve(listener, state, stopped(stop_rx)));
        let ingest = tokio::spawn(crate::pipeline::run_ingest(config.clone(), ingest_rx, store_ok));
        Ok(Served {
            addr,
            stop,
            server,
            ingest,
        })
    }

    /// Stops the server and waits, up to `timeout`, for it and the ingest worker to finish.
    pub(super) async fn drain(self, timeout: Duration) -> Result<(), DemoError> {
        let _ = self.stop.send(true);
        let drain = async {
            let _ = self.server.await;
            self.ingest.await
        };
        match tokio::time::timeout(timeout, drain).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(DemoError::Task(format!("ingest worker: {e}"))),
            Ok(Err(e)) => Err(DemoError::Task(format!("ingest worker: {e}"))),
            Err(_) => Err(DemoError::Task(
                "the server did not stop within [server] drain_timeout".into(),
            )),
        }
    }
}

/// Whether `shutdown` has completed already. Polling it once installs the signal handlers
/// now, so that a SIGTERM right after the "Serving on" line drains instead of killing.
pub(super) async fn requested_already(shutdown: Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        biased;
        () = shutdown => true,
        () = std::future::ready(()) => false,
    }
}

/// Completes once `stop` says so.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
