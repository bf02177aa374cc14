//! `koinonia doctor`: the setup mistakes that lose messages, found before a member's text is.
//!
//! Each check says ok, warn or error, with the fix in one sentence. The checks touch only what
//! they must: a probe object written and deleted in the store, read-only Telnyx API lookups.

use std::time::Duration;

use secrecy::ExposeSecret;
use url::Url;

use crate::config::Config;
use crate::db::{self, Db};
use crate::media::store::{MediaStore, ObjectInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub level: Level,
    pub name: String,
    pub sentence: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.level.as_str(), self.name, self.sentence)
    }
}

fn check(level: Level, name: impl Into<String>, sentence: impl Into<String>) -> Check {
    Check { level, name: name.into(), sentence: sentence.into() }
}

/// Runs every check against this configuration.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut secrets = "PHONE_HASH_KEY, PHONE_ENCRYPTION_KEY and JWT_SECRET are present and long enough.".to_owned();
    if config.secrets.jwt_secret_previous.is_some() {
        secrets.push_str(&format!(
            " Sessions signed with JWT_SECRET_PREVIOUS are accepted until they expire; remove it {} hours after the rotation.",
            crate::crypto::session::SESSION_HOURS
        ));
    }
    let mut out = vec![check(Level::Ok, "secrets", secrets)];
    let db = database(config, &mut out).await;
    store(config, &mut out).await;
    preview_tools(&mut out).await;
    backend_url(config, &mut out);
    push(config, &mut out);
    email(config, &mut out).await;
    scanner(config, &mut out).await;
    telnyx(config, db.as_ref(), &mut out).await;
    if let Some(db) = &db {
        rejections(db, &mut out).await;
        phone_keys(config, db, &mut out).await;
        db.close().await;
    }
    out
}

/// Web Push: a VAPID key (push is off without one, which is allowed) and a subject push
/// services accept.
fn push(config: &Config, out: &mut Vec<Check>) {
    use crate::secrets::VapidSource;
    if config.secrets.vapid.is_none() {
        out.push(check(
            Level::Warn,
            "push",
            "Web Push notifications are off: VAPID_PRIVATE_KEY is not set. Generate one with \
             `koinonia keys vapid` and give the same value to every instance.",
        ));
        return;
    }
    let from = match config.secrets.vapid_source {
        VapidSource::Environment => "VAPID_PRIVATE_KEY",
        VapidSource::SecretsFile | VapidSource::Missing => "secrets.env",
    };
    // A placeholder subject only happens without https, where browsers offer push on this very
    // machine alone (a secure context): worth a word, not a warning.
    let sentence = if config.push.subject == crate::config::PLACEHOLDER_VAPID_SUBJECT {
        format!(
            "Web Push notifications are on (key from {from}); VAPID_SUBJECT is a placeholder because \
             BACKEND_URL is not https: set VAPID_SUBJECT=mailto:you@example.org before leaders use it."
        )
    } else {
        format!("Web Push notifications are on (key from {from}, subject {}).", config.push.subject)
    };
    out.push(check(Level::Ok, "push", sentence));
}

/// E-mail notifications: off without `SMTP_URL` (allowed); with it, the server answers and takes
/// the account (connection, TLS and login, no e-mail sent).
async fn email(config: &Config, out: &mut Vec<Check>) {
    let Some(settings) = &config.email else {
        out.push(check(
            Level::Ok,
            "email",
            "E-mail notifications are off (optional): set SMTP_URL, e.g. smtp://user:password@mail.example.org:587.",
        ));
        return;
    };
    let host = &settings.smtp.host;
    let minutes = settings.after.as_secs() / 60;
    let tested = match crate::notify::email::Mailer::new(&settings.smtp) {
        Ok(mailer) => mailer.test_connection().await,
        Err(e) => Err(e),
    };
    match tested {
        Ok(()) => out.push(check(
            Level::Ok,
            "email",
            format!(
                "E-mail notifications are on: the SMTP server at {host} answers; leaders who chose e-mail hear of a message unread for {minutes} minutes."
            ),
        )),
        Err(e) => out.push(check(Level::Error, "email", format!("SMTP_URL is set but {e}. No e-mail notification can go."))),
    }
}

/// The virus scanner: reachable, its signatures' age, and that it detects the EICAR test file.
async fn scanner(config: &Config, out: &mut Vec<Check>) {
    use crate::scan::clamd::{signature_date, Verdict, EICAR};
    const NAME: &str = "virus scanner";
    let Some(address) = config.scan.address.clone() else {
        // Recommended, not required: the embedded first run is healthy without it.
        out.push(check(
            Level::Ok,
            NAME,
            "off (CLAMD_ADDRESS is not set): files are kept without a virus scan; running ClamAV's clamd and setting CLAMD_ADDRESS is recommended (see the README).",
        ));
        return;
    };
    let clamd = crate::scan::Clamd::new(address.clone(), config.scan.timeout.min(std::time::Duration::from_secs(10)));
    let version = match clamd.ping().await {
        Ok(()) => clamd.version().await.unwrap_or_else(|_| "ClamAV (version unknown)".into()),
        Err(e) => {
            let held = if config.scan.required { "files wait until it answers" } else { "files are kept unscanned" };
            out.push(check(Level::Error, NAME, format!("{e}; {held}.")));
            return;
        }
    };
    match clamd.scan_bytes(EICAR).await {
        Ok(Verdict::Infected(_)) => {}
        Ok(_) => {
            out.push(check(
                Level::Error,
                NAME,
                format!("{version} at {address} does not detect the EICAR test file: its signatures are missing (run freshclam)."),
            ));
            return;
        }
        Err(e) => {
            out.push(check(
                Level::Error,
                NAME,
                format!("{version} at {address} could not scan the EICAR test file: {e}."),
            ));
            return;
        }
    }
    let age = signature_date(&version).map(|d| (crate::clock::now().naive_utc() - d).num_days());
    match age {
        Some(days) if days > 3 => out.push(check(
            Level::Warn,
            NAME,
            format!("{version} at {address}: its signatures are {days} days old; run freshclam (or its service)."),
        )),
        Some(_) => out.push(check(
            Level::Ok,
            NAME,
            format!("{version} at {address} answers and detects the EICAR test file; signatures are current."),
        )),
        None => out.push(check(
            Level::Warn,
            NAME,
            format!("{version} at {address} detects the EICAR test file, but names no signature database date (are ClamAV's official signatures loaded? run freshclam)."),
        )),
    }
}

/// The optional converters behind HEIC previews and video posters.
async fn preview_tools(out: &mut Vec<Check>) {
    use crate::media::preview::tool_available;
    let mut absent = Vec::new();
    for (tool, package) in [("ffmpeg", "ffmpeg"), ("heif-convert", "libheif-examples")] {
        if !tool_available(tool).await {
            absent.push((tool, package));
        }
    }
    if absent.is_empty() {
        out.push(check(
            Level::Ok,
            "previews",
            "ffmpeg and heif-convert are installed: videos and HEIC photos get previews.",
        ));
    } else {
        let tools: Vec<&str> = absent.iter().map(|(t, _)| *t).collect();
        let packages: Vec<&str> = absent.iter().map(|(_, p)| *p).collect();
        out.push(check(
            Level::Warn,
            "previews",
            format!(
                "{} {} not installed: {} show an icon instead of a picture; install it (Debian: apt-get install {}).",
                tools.join(" and "),
                if tools.len() == 2 { "are" } else { "is" },
                if tools.len() == 2 {
                    "videos and HEIC photos"
                } else if tools[0] == "ffmpeg" {
                    "videos"
                } else {
                    "HEIC photos"
                },
                packages.join(" ")
            ),
        ));
    }
}

async fn database(config: &Config, out: &mut Vec<Check>) -> Option<Db> {
    let db = match Db::connect(&config.database).await {
        Ok(db) => db,
        Err(e) => {
            out.push(check(
                Level::Error,
                "database",
                format!("cannot connect ({e}); check DATABASE_URL and that the server runs."),
            ));
            return None;
        }
    };
    let (applied, known) = db.migration_status().await.unwrap_or((0, 1));
    if applied < known {
        out.push(check(
            Level::Warn,
            "database",
            format!(
                "reachable, {} of {known} migrations applied; run `koinonia migrate` (serve does it at start).",
                applied
            ),
        ));
    } else {
        out.push(check(Level::Ok, "database", "reachable and migrated."));
    }
    Some(db)
}

async fn store(config: &Config, out: &mut Vec<Check>) {
    let store = match MediaStore::from_config(config).await {
        Ok(s) => s,
        Err(e) => {
            out.push(check(
                Level::Error,
                "media store",
                format!("{e}; give koinonia a folder it can write (MEDIA_DIR) or fix the S3 settings."),
            ));
            return;
        }
    };
    let key = format!("{}/.koinonia-doctor-{}", config.s3_folder, uuid::Uuid::new_v4().simple());
    let body = b"koinonia doctor probe";
    let info = ObjectInfo {
        content_type: "text/plain",
        original_filename: "probe.txt",
        conversation_id: crate::domain::ConversationId::new(),
        uploaded_at: crate::clock::now(),
    };
    let written = async {
        let mut w = store.writer(&key, &info).await?;
        w.write(body).await?;
        w.finish().await
    }
    .await;
    if let Err(e) = written {
        out.push(check(
            Level::Error,
            "media store",
            format!("cannot write ({e}); check the folder's permissions or the bucket policy."),
        ));
        return;
    }
    let http = crate::crypto::tls::client_builder().timeout(Duration::from_secs(10)).build();
    let round_trip = async {
        let url = store
            .presign_get(&key, Duration::from_secs(60), "text/plain", "probe.txt")
            .await
            .map_err(|e| e.to_string())?;
        if store.is_s3() {
            let http = http.as_ref().map_err(|e| e.to_string())?;
            let res = http.get(&url).send().await.map_err(|e| e.to_string())?;
            let status = res.status();
            let bytes = res.bytes().await.map_err(|e| e.to_string())?;
            if !status.is_success() || bytes.as_ref() != body {
                return Err(format!("a presigned GET answered {status}"));
            }
        } else {
            let (size, _) = store.read(&key).await.map_err(|e| e.to_string())?;
            if size != body.len() as u64 {
                return Err("the probe read back with the wrong size".into());
            }
        }
        Ok::<String, String>(url)
    }
    .await;
    match &round_trip {
        Ok(_) => out.push(check(Level::Ok, "media store", "writable, readable, deletable; presigned links work.")),
        Err(e) => out.push(check(Level::Error, "media store", format!("{e}; check the credentials and the clock."))),
    }
    if let (true, Ok(url), Ok(http)) = (store.is_s3(), &round_trip, &http) {
        // The same object without a signature must be refused.
        if let Ok(mut bare) = Url::parse(url) {
            bare.set_query(None);
            match http.get(bare.as_str()).send().await {
                Ok(res) if res.status().is_success() => out.push(check(
                    Level::Error,
                    "bucket privacy",
                    "the bucket is publicly readable; turn on Block Public Access and remove public grants.",
                )),
                Ok(_) => out.push(check(Level::Ok, "bucket privacy", "objects are not readable without a signature.")),
                Err(e) => out.push(check(Level::Warn, "bucket privacy", format!("could not test ({e})."))),
            }
        }
        let encrypted = async {
            let signed = store.presign(&key, http::Method::HEAD, Duration::from_secs(60)).await.ok()?;
            let res = http.head(signed).send().await.ok()?;
            res.headers().get("x-amz-server-side-encryption").and_then(|v| v.to_str().ok()).map(str::to_owned)
        }
        .await;
        match encrypted {
            Some(alg) => out.push(check(Level::Ok, "encryption", format!("objects are encrypted at rest ({alg})."))),
            None => out.push(check(
                Level::Warn,
                "encryption",
                "could not confirm server-side encryption; enable default encryption (SSE-S3) on the bucket.",
            )),
        }
    }
    if let Err(e) = store.delete(&key).await {
        out.push(check(Level::Error, "media store", format!("cannot delete ({e}); retention needs s3:DeleteObject.")));
    }
}

fn backend_url(config: &Config, out: &mut Vec<Check>) {
    let url = &config.backend_url;
    if config.sandbox_carrier() {
        out.push(check(
            Level::Ok,
            "backend url",
            format!("{url} (sandbox carrier: it only has to reach your browser)."),
        ));
        return;
    }
    let public_host = match url.host() {
        Some(url::Host::Ipv4(ip)) => crate::media::fetch::is_public_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => crate::media::fetch::is_public_ip(ip.into()),
        Some(url::Host::Domain(d)) => !(d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local")),
        None => false,
    };
    if !public_host {
        out.push(check(
            Level::Error,
            "backend url",
            format!("{url} cannot be reached by Telnyx; set BACKEND_URL to the public https address."),
        ));
    } else if url.scheme() != "https" {
        out.push(check(
            Level::Error,
            "backend url",
            format!("{url} is not https; put koinonia behind TLS and set BACKEND_URL to https://…."),
        ));
    } else {
        out.push(check(Level::Ok, "backend url", format!("{url} is public and https.")));
    }
}

async fn telnyx(config: &Config, db: Option<&Db>, out: &mut Vec<Check>) {
    let Some(key) = &config.telnyx_api_key else {
        out.push(check(Level::Ok, "telnyx", "sandbox carrier (no TELNYX_API_KEY): replies go to the phone simulator."));
        return;
    };
    let Ok(http) = crate::crypto::tls::client_builder().timeout(Duration::from_secs(15)).build() else { return };
    let base = config.telnyx_api_base_url.as_str().trim_end_matches('/').to_owned();
    let get = |path: String| {
        let http = http.clone();
        let key = key.expose_secret().to_owned();
        let url = format!("{base}{path}");
        async move {
            let res =
                http.get(url).bearer_auth(key).send().await.map_err(|e| crate::net::error_chain(&e.without_url()))?;
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            Ok::<_, String>((status, body))
        }
    };
    match get("/messaging_profiles?page[size]=1".into()).await {
        Ok((s, _)) if s.is_success() => {
            out.push(check(Level::Ok, "telnyx key", "TELNYX_API_KEY is accepted by Telnyx."))
        }
        Ok((s, _)) if s.as_u16() == 401 || s.as_u16() == 403 => {
            out.push(check(
                Level::Error,
                "telnyx key",
                "Telnyx refused TELNYX_API_KEY; create a new API key in the portal.",
            ));
            return;
        }
        Ok((s, _)) => out.push(check(Level::Warn, "telnyx key", format!("Telnyx answered {s}; try again later."))),
        Err(e) => {
            out.push(check(
                Level::Warn,
                "telnyx key",
                format!("Telnyx could not be reached ({e}); check the network."),
            ));
            return;
        }
    }
    let Some(db) = db else { return };
    let churches = match db.acquire().await {
        Ok(mut pooled) => db::churches::all(&mut pooled.conn()).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let expected = config.public_url("/api/webhooks/telnyx/mms");
    let alias = config.public_url("/api/messages/webhooks/telnyx/mms");
    for church in churches {
        let name = format!("number {}", church.phone_number);
        let number =
            percent_encoding::utf8_percent_encode(&church.phone_number, crate::media::store::COMPONENT).to_string();
        let profile = match get(format!("/phone_numbers?filter[phone_number]={number}")).await {
            Ok((s, body)) if s.is_success() => match body["data"].as_array().and_then(|d| d.first()) {
                None => {
                    out.push(check(
                        Level::Error,
                        name,
                        format!("{} is not a number of this Telnyx account.", church.phone_number),
                    ));
                    continue;
                }
                Some(n) => n["messaging_profile_id"].as_str().filter(|p| !p.is_empty()).map(str::to_owned),
            },
            Ok((s, _)) => {
                out.push(check(Level::Warn, name, format!("Telnyx answered {s} looking the number up.")));
                continue;
            }
            Err(e) => {
                out.push(check(Level::Warn, name, format!("could not look the number up ({e}).")));
                continue;
            }
        };
        let Some(profile) = profile else {
            out.push(check(
                Level::Error,
                name,
                "is on no messaging profile; assign it to one whose inbound webhook is this deployment.",
            ));
            continue;
        };
        match get(format!("/messaging_profiles/{profile}")).await {
            Ok((s, body)) if s.is_success() => {
                let hook = body["data"]["webhook_url"].as_str().unwrap_or_default().to_owned();
                if hook == expected || hook == alias {
                    out.push(check(
                        Level::Ok,
                        name,
                        format!("messaging profile sends inbound messages to {expected}."),
                    ));
                } else if hook.is_empty() {
                    out.push(check(
                        Level::Error,
                        name,
                        format!("its messaging profile has no inbound webhook URL; set it to {expected}."),
                    ));
                } else {
                    out.push(check(
                        Level::Error,
                        name,
                        format!("its messaging profile sends inbound messages to {hook}; set it to {expected}."),
                    ));
                }
            }
            Ok((s, _)) => out.push(check(Level::Warn, name, format!("Telnyx answered {s} for its messaging profile."))),
            Err(e) => out.push(check(Level::Warn, name, format!("could not read its messaging profile ({e})."))),
        }
    }
}

async fn rejections(db: &Db, out: &mut Vec<Check>) {
    let since = crate::clock::now() - chrono::Duration::hours(24);
    let rows = match db.acquire().await {
        Ok(mut pooled) => db::webhook_rejections::recent(&mut pooled.conn(), since, 5).await.unwrap_or_default(),
        Err(_) => return,
    };
    match rows.first() {
        None => out.push(check(Level::Ok, "webhooks", "no webhook was refused in the last 24 hours.")),
        Some(last) => out.push(check(
            Level::Warn,
            "webhooks",
            format!(
                "{} refused in the last 24 hours, the latest at {} on the {} route: {}; if Telnyx sent it, check TELNYX_PUBLIC_KEY.",
                rows.len(),
                last.received_at.format("%Y-%m-%d %H:%M UTC"),
                last.route,
                last.reason
            ),
        )),
    }
}

/// Numbers still under an older `PHONE_ENCRYPTION_KEY` after a rotation (found by their header,
/// nothing is decrypted).
async fn phone_keys(config: &Config, db: &Db, out: &mut Vec<Check>) {
    let crypto = crate::crypto::phone::PhoneCrypto::new(&config.secrets);
    match crate::ops::keys::remaining(db, &crypto).await {
        Ok(0) if !config.secrets.phone_encryption_key_previous.is_empty() => out.push(check(
            Level::Ok,
            "phone encryption",
            "every stored number is under the current PHONE_ENCRYPTION_KEY; PHONE_ENCRYPTION_KEY_PREVIOUS can be removed.",
        )),
        Ok(0) => {
            out.push(check(Level::Ok, "phone encryption", "every stored number is under the current PHONE_ENCRYPTION_KEY."))
        }
        Ok(n) => out.push(check(
            Level::Warn,
            "phone encryption",
            format!(
                "{n} stored numbers are not under the current PHONE_ENCRYPTION_KEY (an older key, or written \
                 before keys were tagged); run `koinonia keys reencrypt`."
            ),
        )),
        Err(e) => out.push(check(Level::Warn, "phone encryption", format!("could not be checked ({e})."))),
    }
}
