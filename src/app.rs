//! Assembly: state shared by handlers and workers, the listener, start-up and graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::crypto::session::SessionKeys;
use crate::db::{Db, DbError};
use crate::jobs::JobsHandle;
use crate::media::fetch::{FetchPolicy, Fetcher};
use crate::media::store::{MediaStore, StoreError};

/// What every handler and worker can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub db: Db,
    pub store: MediaStore,
    pub fetcher: Fetcher,
    pub phone: PhoneCrypto,
    pub sessions: SessionKeys,
    pub jobs: JobsHandle,
    pub limits: crate::limits::AbuseLimits,
    /// Password hashing, bounded in concurrency and memory.
    pub passwords: crate::crypto::password::Hasher,
    /// The one-time code `/setup` asks for when koinonia listens beyond loopback (printed by
    /// `serve` at start-up), so nobody else can claim a fresh deployment.
    pub setup_code: Option<String>,
    /// Signs the dashboard's CSRF tokens.
    pub csrf: crate::crypto::signed_url::UrlSigner,
    pub live: crate::live::Live,
    pub carrier: crate::carrier::Carrier,
    pub send_limits: crate::carrier::SendLimits,
    pub metrics: crate::telemetry::Metrics,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("media store: {0}")]
    Store(#[from] StoreError),
    #[error("media downloader: {0}")]
    Fetcher(String),
    #[error("Telnyx client: {0}")]
    Carrier(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

impl AppState {
    /// Connects to the database (migrating it), opens the media store and builds the clients.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let db = Db::connect(&config.database).await?;
        db.migrate().await?;
        let store = MediaStore::from_config(&config).await?;
        let fetcher = Fetcher::new(FetchPolicy {
            allow_private: config.media_fetch_allow_private,
            max_bytes: config.max_media_size_bytes,
            credential_hosts: config.telnyx_media_hosts.clone(),
            ..FetchPolicy::default()
        })
        .map_err(|e| StartError::Fetcher(e.to_string()))?;
        let carrier = crate::carrier::Carrier::from_config(&config).map_err(|e| StartError::Carrier(e.to_string()))?;
        let send_limits = crate::carrier::SendLimits::new(config.send_rate_per_number, config.send_rate_account);
        Ok(Self(Arc::new(Inner {
            carrier,
            send_limits,
            phone: PhoneCrypto::new(&config.secrets),
            limits: crate::limits::AbuseLimits::new(&config.limits),
            passwords: crate::crypto::password::Hasher::new(crate::crypto::password::HasherLimits::for_this_machine()),
            csrf: crate::crypto::signed_url::UrlSigner::new(config.secrets.derived_key("csrf"))
                .with_previous(config.secrets.derived_key_previous("csrf")),
            setup_code: (!config.host.is_loopback()).then(setup_code),
            sessions: SessionKeys::new(&config.secrets),
            config: Arc::new(config),
            live: crate::live::Live::new(db.clone()),
            db,
            store,
            fetcher,
            jobs: JobsHandle::default(),
            metrics: crate::telemetry::Metrics::get(),
        })))
    }
}

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

/// Eight characters from an alphabet without look-alikes.
fn setup_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..8).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
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
        let state = AppState::build(config).await?;
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
        let workers = tokio::spawn(crate::jobs::run_workers(state.clone(), shutdown.clone(), Duration::from_secs(25)));
        tokio::spawn(state.live.clone().run_listener(shutdown.clone()));
        tokio::spawn(crate::jobs::wake::run_listener(state.db.clone(), state.jobs.clone(), shutdown.clone()));
        tokio::spawn(crate::flows::retention::run_daily(state.clone(), shutdown.clone()));
        tokio::spawn(crate::limits::run_pruning(state.limits.clone(), shutdown.clone()));
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
