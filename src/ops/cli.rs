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
    let row = church_row(name, number, messaging_profile_id)?;
    let mut tx = db.begin().await?;
    insert_church(&mut tx.conn(), &row).await?;
    tx.commit().await?;
    Ok(row.id)
}

/// A new church's row, its name and number checked.
fn church_row(name: &str, number: &str, messaging_profile_id: Option<&str>) -> anyhow::Result<db::churches::ChurchRow> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        bail!("--name must be 1 to 200 characters");
    }
    let phone = Phone::parse(number).map_err(|e| anyhow::anyhow!("--number: {e}"))?;
    Ok(db::churches::ChurchRow {
        id: ChurchId::new(),
        name: name.to_owned(),
        phone_number: phone.as_str().to_owned(),
        messaging_profile_id: messaging_profile_id.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
        created_at: clock::now(),
    })
}

async fn insert_church(c: &mut db::Conn<'_>, row: &db::churches::ChurchRow) -> anyhow::Result<()> {
    db::churches::insert(c, row)
        .await
        .on_unique(|| anyhow::anyhow!("a church with number {} already exists", row.phone_number))
}

/// First-run setup: the first church and its first (admin) leader, in one transaction that claims
/// setup, so concurrent attempts create exactly one church. `None`: setup was done already.
pub async fn first_run(
    db: &Db,
    passwords: &password::Hasher,
    church_name: &str,
    church_number: &str,
    email: &str,
    password_text: &str,
) -> anyhow::Result<Option<(ChurchId, LeaderId)>> {
    let church = church_row(church_name, church_number, None)?;
    let email = normalise_email(email)?;
    // Hashed before the transaction: no connection is held while argon2 runs.
    let hash = passwords.hash(password_text).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let leader = leader_row(church.id, &email, hash, true);
    let mut tx = db.begin().await?;
    let c = &mut tx.conn();
    if !db::churches::claim_first_run(c, church.id, church.created_at).await? || db::churches::count(c).await? > 0 {
        return Ok(None);
    }
    insert_church(c, &church).await?;
    db::leaders::insert(c, &leader)
        .await
        .on_unique(|| anyhow::anyhow!("{email} is already a leader of this church"))?;
    tx.commit().await?;
    Ok(Some((church.id, leader.id)))
}

fn leader_row(church: ChurchId, email: &str, password_hash: String, admin: bool) -> db::leaders::LeaderRow {
    db::leaders::LeaderRow {
        id: LeaderId::new(),
        church_id: church,
        email: email.to_owned(),
        password_hash,
        is_admin: admin,
        token_version: 0,
        created_at: clock::now(),
        last_login_at: None,
    }
}

/// Creates a leader of `church`; returns its id.
pub async fn create_leader(
    db: &Db,
    passwords: &password::Hasher,
    church: ChurchId,
    email: &str,
    password_text: &str,
    admin: bool,
) -> anyhow::Result<LeaderId> {
    let email = normalise_email(email)?;
    let hash = passwords.hash(password_text).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    let c = &mut tx.conn();
    if db::churches::get(c, church).await?.is_none() {
        bail!("no church with id {church}");
    }
    let row = leader_row(church, &email, hash, admin);
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
