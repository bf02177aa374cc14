//! The services of one koinonia process — database, media store, downloader, carrier, crypto,
//! limits, live updates, job wake-ups — built once from the configuration and shared by the
//! web layer and the job workers. Each flow is handed only the part it uses (its `Deps`).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::crypto::phone::PhoneCrypto;
use crate::crypto::session::SessionKeys;
use crate::db::{Db, DbError};
use crate::flows;
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
    /// Inbound webhooks' messages, written in shared transactions (group commit).
    pub intake: flows::inbound::Intake,
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
        let config = Arc::new(config);
        let phone = PhoneCrypto::new(&config.secrets);
        let live = crate::live::Live::new(db.clone());
        let jobs = JobsHandle::default();
        let intake = flows::inbound::Intake::start(flows::inbound::intake::Parts {
            db: db.clone(),
            phone: phone.clone(),
            jobs: jobs.clone(),
            live: live.clone(),
            config: config.clone(),
        });
        Ok(Self(Arc::new(Inner {
            carrier,
            send_limits,
            phone,
            intake,
            limits: crate::limits::AbuseLimits::new(&config.limits),
            passwords: crate::crypto::password::Hasher::new(crate::crypto::password::HasherLimits::for_this_machine()),
            csrf: crate::crypto::signed_url::UrlSigner::new(config.secrets.derived_key("csrf"))
                .with_previous(config.secrets.derived_key_previous("csrf")),
            setup_code: (!config.host.is_loopback()).then(setup_code),
            sessions: SessionKeys::new(&config.secrets),
            config,
            live,
            db,
            store,
            fetcher,
            jobs,
            metrics: crate::telemetry::Metrics::get(),
        })))
    }
}

/// Each flow's dependencies, borrowed from the state: a flow sees only what it uses.
impl AppState {
    pub fn inbox(&self) -> flows::inbox::Deps<'_> {
        flows::inbox::Deps { db: &self.db, phone: &self.phone, live: &self.live }
    }

    pub fn library(&self) -> flows::library::Deps<'_> {
        flows::library::Deps { db: &self.db, store: &self.store, config: &self.config }
    }

    pub fn members(&self) -> flows::members::Deps<'_> {
        flows::members::Deps { db: &self.db, store: &self.store, phone: &self.phone, live: &self.live }
    }

    pub fn accounts(&self) -> flows::accounts::Deps<'_> {
        flows::accounts::Deps {
            db: &self.db,
            passwords: &self.passwords,
            sessions: &self.sessions,
            limits: &self.limits,
            setup_code: &self.setup_code,
        }
    }

    pub fn inbound(&self) -> flows::inbound::Deps<'_> {
        flows::inbound::Deps {
            db: &self.db,
            phone: &self.phone,
            jobs: &self.jobs,
            live: &self.live,
            config: &self.config,
        }
    }

    pub fn outbound(&self) -> flows::outbound::Deps<'_> {
        flows::outbound::Deps {
            db: &self.db,
            phone: &self.phone,
            jobs: &self.jobs,
            live: &self.live,
            store: &self.store,
            carrier: &self.carrier,
            send_limits: &self.send_limits,
            config: &self.config,
        }
    }

    pub fn files(&self) -> flows::files::Deps<'_> {
        flows::files::Deps {
            db: &self.db,
            store: &self.store,
            fetcher: &self.fetcher,
            carrier: &self.carrier,
            jobs: &self.jobs,
            live: &self.live,
            config: &self.config,
        }
    }

    pub fn retention(&self) -> flows::retention::Deps<'_> {
        flows::retention::Deps { db: &self.db, store: &self.store, live: &self.live }
    }

    pub fn webhooks(&self) -> flows::webhooks::Deps<'_> {
        flows::webhooks::Deps {
            db: &self.db,
            limits: &self.limits,
            config: &self.config,
            live: &self.live,
            intake: &self.intake,
            phone: &self.phone,
        }
    }

    pub fn notifications(&self) -> flows::notifications::Deps<'_> {
        flows::notifications::Deps { db: &self.db, fetcher: &self.fetcher, config: &self.config }
    }

    pub fn sandbox(&self) -> flows::sandbox::Deps<'_> {
        flows::sandbox::Deps {
            db: &self.db,
            store: &self.store,
            phone: &self.phone,
            carrier: &self.carrier,
            config: &self.config,
            inbound: self.inbound(),
            library: self.library(),
        }
    }
}

/// Eight characters from an alphabet without look-alikes.
fn setup_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..8).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}
