//! Assembly: the listener, the router, the workers and sweeps started and stopped together.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
pub use crate::state::{AppState, StartError};

/// The connection bounds of this process: its open-files limit raised to the hard limit first.
fn connection_limits(config: &Config) -> crate::web::server::ConnectionLimits {
    let open_files = crate::web::server::raise_open_files_limit();
    let mut limits = crate::web::server::ConnectionLimits::for_open_files(open_files);
    let s = &config.server;
    if let Some(n) = s.max_connections {
        limits.max_connections = n;
    }
    limits.max_per_address = match s.max_connections_per_address {
        Some(n) => n,
        // Behind a proxy every connection comes from it.
        None if config.trust_proxy_headers => 0,
        None => limits.max_per_address,
    };
    if let Some(t) = s.header_read_timeout {
        limits.header_read_timeout = t;
    }
    tracing::debug!(open_files, ?limits, "connection limits");
    limits
}

/// A built application with its listener bound (port 0 works: read [`App::local_addr`]).
pub struct App {
    state: AppState,
    listener: TcpListener,
}

impl App {
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr).await.map_err(|e| StartError::Bind(addr, e))?;
        // With PORT=0 the default BACKEND_URL names the port actually bound.
        if config.backend_url.port() == Some(0) {
            if let Ok(bound) = listener.local_addr() {
                let _ = config.backend_url.set_port(Some(bound.port()));
            }
        }
        // What loads lazily loads now, beside the database's start-up, not in the first request.
        let warming = tokio::task::spawn_blocking(crate::domain::warm_up_phone_numbers);
        let state = AppState::build(config).await?;
        let _ = warming.await;
        Ok(Self { state, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTP and runs the workers until `shutdown` is cancelled; then stops accepting,
    /// finishes in-flight requests and lets running jobs end within the drain time.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let Self { state, listener } = self;
        let router = crate::web::router(state.clone());
        // The workers' start-up statements (dead leases, each pool's first claim) run before the
        // first request is answered, not beside it: on SQLite they share one connection, and a
        // webhook that came at start (Telnyx redelivering what waited while koinonia was down)
        // queued behind them. Bounded: a slow database does not keep the server from answering.
        let (first_round, mut workers_started) = tokio::sync::mpsc::channel(1);
        let workers = tokio::spawn(crate::jobs::run_workers(
            state.clone(),
            shutdown.clone(),
            Duration::from_secs(25),
            first_round,
        ));
        let _ = tokio::time::timeout(Duration::from_secs(5), workers_started.recv()).await;
        // Then a webhook is rehearsed on every connection the pool holds by now.
        let inbound = state.inbound();
        let rehearsal = crate::flows::inbound::rehearse(&inbound, state.db.connections());
        match tokio::time::timeout(Duration::from_secs(5), rehearsal).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the start-up rehearsal of a webhook failed"),
            Err(_) => tracing::warn!("the start-up rehearsal of a webhook took over 5 s; serving without it"),
        }
        tokio::spawn(state.live.clone().run_listener(shutdown.clone()));
        tokio::spawn(crate::jobs::wake::run_listener(state.db.clone(), state.jobs.clone(), shutdown.clone()));
        tokio::spawn(crate::flows::retention::run_daily(
            state.db.clone(),
            state.store.clone(),
            state.live.clone(),
            state.config.media_retention_days,
            shutdown.clone(),
        ));
        tokio::spawn(crate::limits::run_pruning(state.limits.clone(), shutdown.clone()));
        tokio::spawn(crate::flows::notifications::email::run(state.db.clone(), state.config.clone(), shutdown.clone()));
        let served = crate::web::server::serve(
            listener,
            router,
            connection_limits(&state.config),
            shutdown.clone(),
            Duration::from_secs(25),
        )
        .await;
        shutdown.cancel();
        if let Err(e) = workers.await {
            tracing::error!(error = %e, "job workers ended abnormally");
        }
        state.db.close().await;
        served
    }
}
