//! Operator commands (`koinonia church create`, `leader create`, …) as library functions, so the
//! binary stays thin and tests call the same code.

use anyhow::{bail, Context};

use crate::clock;
use crate::config::Config;
use crate::crypto::password;
use crate::db::{self, Db, UniqueExt};
use crate::domain::{ChurchId, LeaderId, Phone};

/// Opens and migrates the configured database.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database).await.context("opening the database")?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

/// Creates a church owning `number`; returns its id.
pub async fn create_church(
    db: &Db,
    name: &str,
    number: &str,
    messaging_profile_id: Option<&str>,
) -> anyhow::Result<ChurchId> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        bail!("--name must be 1 to 200 characters");
    }
    let phone = Phone::parse(number).map_err(|e| anyhow::anyhow!("--number: {e}"))?;
    let row = db::churches::ChurchRow {
        id: ChurchId::new(),
        name: name.to_owned(),
        phone_number: phone.as_str().to_owned(),
        messaging_profile_id: messaging_profile_id.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
        created_at: clock::now(),
    };
    let mut tx = db.begin().await?;
    db::churches::insert(&mut tx.conn(), &row)
        .await
        .on_unique(|| anyhow::anyhow!("a church with number {} already exists", phone.as_str()))?;
    tx.commit().await?;
    Ok(row.id)
}

/// Creates a leader of `church`; returns its id.
pub async fn create_leader(
    db: &Db,
    church: ChurchId,
    email: &str,
    password_text: &str,
    admin: bool,
) -> anyhow::Result<LeaderId> {
    let email = normalise_email(email)?;
    password::check_strength(password_text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pw = password_text.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .context("hashing the password")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    let c = &mut tx.conn();
    if db::churches::get(c, church).await?.is_none() {
        bail!("no church with id {church}");
    }
    let row = db::leaders::LeaderRow {
        id: LeaderId::new(),
        church_id: church,
        email: email.clone(),
        password_hash: hash,
        is_admin: admin,
        token_version: 0,
        created_at: clock::now(),
        last_login_at: None,
    };
    db::leaders::insert(c, &row).await.on_unique(|| anyhow::anyhow!("a leader with email {email} already exists"))?;
    tx.commit().await?;
    Ok(row.id)
}

/// Lower-cased, trimmed, and shaped like an address.
pub fn normalise_email(email: &str) -> anyhow::Result<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if !valid {
        bail!("--email: {email:?} is not an email address");
    }
    Ok(e)
}

/// The password given on standard input: everything up to the end, minus one trailing newline.
pub fn password_from(input: &str) -> &str {
    input.strip_suffix('\n').map_or(input, |s| s.strip_suffix('\r').unwrap_or(s))
}
