//! Configuration: read once from the environment (and `.env`), validated, then passed in state.
//!
//! Every invalid value stops start-up with a message naming the variable. Secrets are held in
//! [`SecretBox`]es and never printed: `Debug` of [`Config`] redacts them and the database password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

use crate::secrets::{self, Secrets};

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {problem}")]
    Invalid { var: &'static str, problem: String },
    #[error("{var} is required {why}")]
    Missing { var: &'static str, why: &'static str },
    #[error("{0}")]
    Secrets(String),
}

fn invalid(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, problem: problem.into() }
}

/// Where the relational data lives.
#[derive(Clone)]
pub enum DatabaseKind {
    Sqlite { path: PathBuf },
    Postgres { url: SecretString },
}

impl std::fmt::Debug for DatabaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "Sqlite({})", path.display()),
            Self::Postgres { url } => write!(f, "Postgres({})", redact_url(url.expose_secret())),
        }
    }
}

/// A URL with its password replaced, for logs.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// S3 (or S3-compatible) object store settings.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// S3-compatible endpoint (MinIO, R2, a test server); path-style addressing.
    pub endpoint: Option<Url>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Timings of background work. Production values are the documented defaults; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerTuning {
    /// How often idle workers look for due jobs when nobody woke them.
    pub poll_interval: Duration,
    /// How long a claimed job is leased before another worker may take it over.
    pub lease: Duration,
    /// First retry delay of an inbound media download; doubled each attempt (1, 2, 4, … s).
    pub fetch_backoff_base: Duration,
    /// First retry delay of a send the carrier certainly did not take (429, 5xx, refused).
    pub send_backoff_base: Duration,
    /// How long an interrupted send waits for its delivery report before it is marked failed
    /// "not confirmed".
    pub send_reconcile: Duration,
    /// Longest wait for Telnyx to answer a send; past it the outcome is unknown (reconciled).
    pub telnyx_timeout: Duration,
    /// Concurrent jobs per process.
    pub concurrency: usize,
}

impl Default for WorkerTuning {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            // Short, kept alive by a heartbeat every lease/3: a killed instance's jobs move on
            // within this (at start-up at once, for a restarted process on the same host).
            lease: Duration::from_secs(30),
            fetch_backoff_base: Duration::from_secs(1),
            send_backoff_base: Duration::from_secs(2),
            send_reconcile: Duration::from_secs(600),
            telnyx_timeout: Duration::from_secs(30),
            concurrency: 4,
        }
    }
}

/// The whole configuration of one koinonia process.
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub backend_url: Url,
    pub database: DatabaseKind,
    pub data_dir: PathBuf,
    pub media_dir: PathBuf,
    pub s3: Option<S3Config>,
    pub s3_folder: String,
    pub max_media_size_bytes: u64,
    pub media_retention_days: u32,
    pub media_url_ttl: Duration,
    pub media_view_ttl: Duration,
    pub media_fetch_max_attempts: u32,
    pub send_rate_per_number: f64,
    pub send_rate_account: f64,
    pub trust_proxy_headers: bool,
    /// Proxies of the deployment besides the socket peer (`TRUSTED_PROXIES`): `X-Forwarded-For`
    /// entries inside these networks are skipped when finding the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub telnyx_api_key: Option<SecretString>,
    pub telnyx_public_key: Option<ed25519_dalek::VerifyingKey>,
    pub telnyx_api_base_url: Url,
    /// Media hosts that may receive `TELNYX_API_KEY` when they ask for it (`TELNYX_MEDIA_HOSTS`).
    pub telnyx_media_hosts: Vec<String>,
    pub mms_max_attachment_bytes: u64,
    pub log_format: LogFormat,
    pub media_fetch_allow_private: bool,
    pub secrets: Secrets,
    pub workers: WorkerTuning,
    pub limits: crate::limits::LimitSettings,
    pub server: ServerSettings,
    /// The virus scanner (`CLAMD_ADDRESS`, `CLAMD_REQUIRED`, `CLAMD_TIMEOUT_SECONDS`,
    /// `CLAMD_TOO_LARGE`).
    pub scan: crate::scan::ScanSettings,
    /// Web Push notifications: the VAPID subject (the key is in [`Config::secrets`]).
    pub push: PushSettings,
    /// E-mail notifications (`SMTP_URL`, `SMTP_FROM`, `NOTIFY_EMAIL_AFTER_MINUTES`); none without
    /// `SMTP_URL`.
    pub email: Option<EmailSettings>,
}

/// E-mail notifications: where to send from, and how long a message waits unread first.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub smtp: crate::notify::email::SmtpSettings,
    /// `NOTIFY_EMAIL_AFTER_MINUTES` (default 15).
    pub after: Duration,
}

/// Web Push settings besides the key.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// `VAPID_SUBJECT`: how a push service can reach the sender (`mailto:` or `https:`).
    pub subject: String,
    /// True when `VAPID_SUBJECT` was not set and the subject was derived from `BACKEND_URL`.
    pub subject_derived: bool,
}

/// The VAPID subject when `VAPID_SUBJECT` is unset: the deployment's own https address, or (on
/// plain http, such as a laptop) a placeholder address that `doctor` warns about.
pub const PLACEHOLDER_VAPID_SUBJECT: &str = "mailto:webpush@koinonia.invalid";

/// How slowly a body may arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// Longest wait for the next byte.
    pub idle: Duration,
    /// Time before the average rate is checked (TCP slow start, a phone waking its radio).
    pub grace: Duration,
    /// Lowest average rate after the grace period, bytes per second.
    pub min_rate: u64,
}

impl Default for BodyPace {
    fn default() -> Self {
        Self { idle: Duration::from_secs(30), grace: Duration::from_secs(10), min_rate: 8 * 1024 }
    }
}

/// Bounds on connections and request bodies (web/server.rs, web/body_guard.rs).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSettings {
    /// `MAX_CONNECTIONS`; unset: derived from the open-files limit.
    pub max_connections: Option<usize>,
    /// `MAX_CONNECTIONS_PER_ADDRESS` (0 = no cap); unset: 512, or no cap behind a proxy.
    pub max_connections_per_address: Option<usize>,
    /// `HEADER_READ_TIMEOUT_SECONDS`; unset: 10.
    pub header_read_timeout: Option<Duration>,
    /// `BODY_MIN_BYTES_PER_SECOND` and `BODY_IDLE_TIMEOUT_SECONDS`.
    pub body: BodyPace,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("backend_url", &self.backend_url.as_str())
            .field("database", &self.database)
            .field("media_dir", &self.media_dir)
            .field("s3", &self.s3)
            .field("s3_folder", &self.s3_folder)
            .field("max_media_size_bytes", &self.max_media_size_bytes)
            .field("telnyx_api_key", &self.telnyx_api_key.as_ref().map(|_| "***"))
            .field("telnyx_api_base_url", &self.telnyx_api_base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// A view over the variables: the process environment, or a map in tests.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// A set, non-blank value.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| invalid(var, format!("cannot parse {v:?}: {e}"))),
        }
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(var, format!("expected true or false, got {other:?}"))),
        }
    }

    fn url(&self, var: &'static str) -> Result<Option<Url>, ConfigError> {
        self.get(var)
            .map(|v| {
                let u = Url::parse(v).map_err(|e| invalid(var, format!("not a URL: {e}")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(invalid(var, "must be an http:// or https:// URL"));
                }
                Ok(u)
            })
            .transpose()
    }
}

impl Config {
    /// Loads `.env` (if present, without overriding the environment), then the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is an error worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(invalid("(.env file)", e.to_string())),
        }
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Builds the configuration from a set of variables (the environment, or a test's map).
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(map);
        let host: IpAddr = v.parse("HOST", IpAddr::from([127, 0, 0, 1]))?;
        let port: u16 = v.parse("PORT", 3000)?;
        let backend_url = match v.url("BACKEND_URL")? {
            Some(u) => u,
            None => {
                let shown = match host {
                    IpAddr::V6(h) => format!("[{h}]"),
                    IpAddr::V4(h) => h.to_string(),
                };
                Url::parse(&format!("http://{shown}:{port}")).map_err(|e| invalid("BACKEND_URL", e.to_string()))?
            }
        };
        let data_dir = PathBuf::from(v.get("KOINONIA_DATA_DIR").unwrap_or("./koinonia-data"));
        let media_dir = v.get("MEDIA_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir.join("media"));

        let database = match v.get("DATABASE_URL") {
            None => DatabaseKind::Sqlite { path: data_dir.join("koinonia.db") },
            Some(url) => parse_database_url(url)?,
        };

        let s3 = match v.get("AWS_S3_BUCKET") {
            None => None,
            Some(bucket) => Some(S3Config {
                bucket: bucket.to_owned(),
                region: v.get("AWS_REGION").unwrap_or("us-east-1").to_owned(),
                access_key_id: v.get("AWS_ACCESS_KEY_ID").map(str::to_owned),
                secret_access_key: v.get("AWS_SECRET_ACCESS_KEY").map(|s| SecretString::from(s.to_owned())),
                endpoint: v.url("AWS_ENDPOINT_URL")?,
            }),
        };
        let s3_folder = v.get("AWS_S3_FOLDER").unwrap_or("conversations").trim_matches('/').to_owned();
        if s3_folder.is_empty() || s3_folder.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(invalid("AWS_S3_FOLDER", "must be a plain key prefix such as \"conversations\""));
        }

        let max_media_size_bytes: u64 = v.parse("MAX_MEDIA_SIZE_BYTES", 524_288_000)?;
        if max_media_size_bytes == 0 {
            return Err(invalid("MAX_MEDIA_SIZE_BYTES", "must be greater than 0"));
        }
        let media_retention_days: u32 = v.parse("MEDIA_RETENTION_DAYS", 365)?;
        let media_url_ttl_secs: u64 = v.parse("MEDIA_URL_TTL_SECONDS", 604_800)?;
        if !(1..=604_800).contains(&media_url_ttl_secs) {
            return Err(invalid("MEDIA_URL_TTL_SECONDS", "must be between 1 and 604800 (7 days, the S3 maximum)"));
        }
        let media_view_ttl_secs: u64 = v.parse("MEDIA_VIEW_TTL_SECONDS", 300)?;
        if !(1..=604_800).contains(&media_view_ttl_secs) {
            return Err(invalid("MEDIA_VIEW_TTL_SECONDS", "must be between 1 and 604800"));
        }
        let media_fetch_max_attempts: u32 = v.parse("MEDIA_FETCH_MAX_ATTEMPTS", 7)?;
        if !(1..=50).contains(&media_fetch_max_attempts) {
            return Err(invalid("MEDIA_FETCH_MAX_ATTEMPTS", "must be between 1 and 50"));
        }
        let send_rate_per_number: f64 = v.parse("SEND_RATE_PER_NUMBER", 1.0)?;
        let send_rate_account: f64 = v.parse("SEND_RATE_ACCOUNT", 10.0)?;
        for (var, rate) in [("SEND_RATE_PER_NUMBER", send_rate_per_number), ("SEND_RATE_ACCOUNT", send_rate_account)] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(invalid(var, "must be a positive number of messages per second"));
            }
        }
        let trust_proxy_headers = v.bool("TRUST_PROXY_HEADERS", false)?;
        let positive = |var: &'static str| -> Result<Option<u64>, ConfigError> {
            match v.get(var) {
                None => Ok(None),
                Some(_) => match v.parse::<u64>(var, 0)? {
                    0 => Err(invalid(var, "must be greater than 0")),
                    n => Ok(Some(n)),
                },
            }
        };
        let server = ServerSettings {
            max_connections: positive("MAX_CONNECTIONS")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_connections_per_address: match v.get("MAX_CONNECTIONS_PER_ADDRESS") {
                None => None,
                Some(_) => Some(v.parse::<usize>("MAX_CONNECTIONS_PER_ADDRESS", 0)?),
            },
            header_read_timeout: positive("HEADER_READ_TIMEOUT_SECONDS")?.map(Duration::from_secs),
            body: BodyPace {
                min_rate: v.parse("BODY_MIN_BYTES_PER_SECOND", BodyPace::default().min_rate)?,
                idle: positive("BODY_IDLE_TIMEOUT_SECONDS")?.map_or(BodyPace::default().idle, Duration::from_secs),
                ..BodyPace::default()
            },
        };
        let trusted_proxies = v
            .get("TRUSTED_PROXIES")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<ipnet::IpNet>().or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from)).map_err(
                            |_| {
                                invalid(
                                    "TRUSTED_PROXIES",
                                    format!("{s:?} is not an address or a network such as 10.0.0.0/8"),
                                )
                            },
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let telnyx_api_key = v.get("TELNYX_API_KEY").map(|s| SecretString::from(s.to_owned()));
        let telnyx_public_key = v.get("TELNYX_PUBLIC_KEY").map(parse_telnyx_public_key).transpose()?;
        if telnyx_api_key.is_some() && telnyx_public_key.is_none() {
            return Err(ConfigError::Missing {
                var: "TELNYX_PUBLIC_KEY",
                why: "when TELNYX_API_KEY is set (without it no webhook can be verified)",
            });
        }
        let telnyx_api_base_url = v
            .url("TELNYX_API_BASE_URL")?
            .map_or_else(|| Url::parse("https://api.telnyx.com/v2"), Ok)
            .map_err(|e| invalid("TELNYX_API_BASE_URL", e.to_string()))?;
        let telnyx_media_hosts: Vec<String> = match v.get("TELNYX_MEDIA_HOSTS") {
            None => crate::media::fetch::DEFAULT_CREDENTIAL_HOSTS.iter().map(|d| (*d).to_owned()).collect(),
            Some(list) => list.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned).collect(),
        };
        let mms_max_attachment_bytes: u64 = v.parse("MMS_MAX_ATTACHMENT_BYTES", 614_400)?;
        if mms_max_attachment_bytes == 0 || mms_max_attachment_bytes >= 1_048_576 {
            return Err(invalid(
                "MMS_MAX_ATTACHMENT_BYTES",
                "must be above 0 and below 1048576 (Telnyx refuses MMS of 1 MB or more)",
            ));
        }
        let log_format = match v.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("LOG_FORMAT", format!("expected text or json, got {other:?}"))),
        };
        let media_fetch_allow_private = v.bool("MEDIA_FETCH_ALLOW_PRIVATE", false)?;

        // Advanced knobs, not in the usual configuration: how long a job stays leased to an
        // instance that stopped answering, and how long an interrupted send waits for its
        // delivery report.
        let mut workers = WorkerTuning::default();
        let lease: u64 = v.parse("JOB_LEASE_SECONDS", workers.lease.as_secs())?;
        if !(2..=3600).contains(&lease) {
            return Err(invalid("JOB_LEASE_SECONDS", "must be between 2 and 3600"));
        }
        workers.lease = Duration::from_secs(lease);
        let reconcile: u64 = v.parse("SEND_RECONCILE_SECONDS", workers.send_reconcile.as_secs())?;
        if !(1..=86_400).contains(&reconcile) {
            return Err(invalid("SEND_RECONCILE_SECONDS", "must be between 1 and 86400"));
        }
        workers.send_reconcile = Duration::from_secs(reconcile);

        let scan = {
            let defaults = crate::scan::ScanSettings::default();
            let address = v
                .get("CLAMD_ADDRESS")
                .map(|a| crate::scan::Address::parse(a).map_err(|e| invalid("CLAMD_ADDRESS", e)))
                .transpose()?;
            let required = v.bool("CLAMD_REQUIRED", false)?;
            if required && address.is_none() {
                return Err(ConfigError::Missing {
                    var: "CLAMD_ADDRESS",
                    why: "when CLAMD_REQUIRED is true (files would wait for a scanner that does not exist)",
                });
            }
            let timeout = positive("CLAMD_TIMEOUT_SECONDS")?.map_or(defaults.timeout, Duration::from_secs);
            let too_large = match v.get("CLAMD_TOO_LARGE").map(str::to_ascii_lowercase).as_deref() {
                None | Some("not_scanned") => crate::scan::TooLarge::NotScanned,
                Some("refuse") => crate::scan::TooLarge::Refuse,
                Some(other) => {
                    return Err(invalid("CLAMD_TOO_LARGE", format!("expected not_scanned or refuse, got {other:?}")))
                }
            };
            crate::scan::ScanSettings { address, required, timeout, too_large }
        };

        let push = match v.get("VAPID_SUBJECT") {
            Some(subject) => {
                crate::notify::vapid::check_subject(subject).map_err(|e| invalid("VAPID_SUBJECT", e))?;
                PushSettings { subject: subject.to_owned(), subject_derived: false }
            }
            None if backend_url.scheme() == "https" => {
                PushSettings { subject: backend_url.origin().ascii_serialization(), subject_derived: true }
            }
            None => PushSettings { subject: PLACEHOLDER_VAPID_SUBJECT.to_owned(), subject_derived: true },
        };

        let email = match v.get("SMTP_URL") {
            None => None,
            Some(url) => {
                let smtp = crate::notify::email::SmtpSettings::parse(url, v.get("SMTP_FROM"))
                    .map_err(|e| invalid("SMTP_URL", e))?;
                let minutes: u64 = v.parse("NOTIFY_EMAIL_AFTER_MINUTES", 15)?;
                if !(1..=10_080).contains(&minutes) {
                    return Err(invalid("NOTIFY_EMAIL_AFTER_MINUTES", "must be between 1 and 10080 (a week)"));
                }
                Some(EmailSettings { smtp, after: Duration::from_secs(minutes * 60) })
            }
        };

        let embedded = matches!(database, DatabaseKind::Sqlite { .. });
        let secrets = secrets::load(&v.0.clone(), &data_dir, embedded)?;

        Ok(Self {
            host,
            port,
            backend_url,
            database,
            data_dir,
            media_dir,
            s3,
            s3_folder,
            max_media_size_bytes,
            media_retention_days,
            media_url_ttl: Duration::from_secs(media_url_ttl_secs),
            media_view_ttl: Duration::from_secs(media_view_ttl_secs),
            media_fetch_max_attempts,
            send_rate_per_number,
            send_rate_account,
            trust_proxy_headers,
            trusted_proxies,
            server,
            telnyx_api_key,
            telnyx_public_key,
            telnyx_api_base_url,
            telnyx_media_hosts,
            mms_max_attachment_bytes,
            log_format,
            media_fetch_allow_private,
            secrets,
            workers,
            limits: crate::limits::LimitSettings::default(),
            scan,
            push,
            email,
        })
    }

    /// True when no Telnyx key is configured: replies go to the built-in phone simulator.
    pub fn sandbox_carrier(&self) -> bool {
        self.telnyx_api_key.is_none()
    }

    /// An absolute URL under `BACKEND_URL`.
    pub fn public_url(&self, path_and_query: &str) -> String {
        let base = self.backend_url.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }
}

fn parse_database_url(url: &str) -> Result<DatabaseKind, ConfigError> {
    if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" {
            return Err(invalid(
                "DATABASE_URL",
                "a SQLite database needs a file path, e.g. sqlite://./koinonia-data/koinonia.db",
            ));
        }
        Ok(DatabaseKind::Sqlite { path: PathBuf::from(path) })
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Url::parse(url).map_err(|e| invalid("DATABASE_URL", format!("not a valid URL: {e}")))?;
        Ok(DatabaseKind::Postgres { url: SecretString::from(url.to_owned()) })
    } else {
        Err(invalid("DATABASE_URL", "must start with sqlite:// or postgres://"))
    }
}

fn parse_telnyx_public_key(raw: &str) -> Result<ed25519_dalek::VerifyingKey, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| invalid("TELNYX_PUBLIC_KEY", "not valid base64"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        invalid(
            "TELNYX_PUBLIC_KEY",
            format!("must decode to 32 bytes (the raw Ed25519 key from the Telnyx portal), got {}", b.len()),
        )
    })?;
    ed25519_dalek::VerifyingKey::from_bytes(&arr)
        .map_err(|_| invalid("TELNYX_PUBLIC_KEY", "not a valid Ed25519 public key"))
}

/// Decodes a base64 32-byte key from a variable.
pub(crate) fn decode_key32(var: &'static str, raw: &str) -> Result<SecretBox<[u8; 32]>, ConfigError> {
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(raw.trim()).map_err(|_| invalid(var, "not valid base64"))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| invalid(var, format!("must decode to exactly 32 bytes, got {}", b.len())))?;
    Ok(SecretBox::new(Box::new(arr)))
}

/// True when the path's folder exists or can be made.
pub fn ensure_dir(var: &'static str, dir: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| invalid(var, format!("cannot create {}: {e}", dir.display())))
}
