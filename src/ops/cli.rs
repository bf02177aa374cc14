//! Operator commands (`koinonia church create`, `leader create`, …) as library functions, so the
//! binary stays thin and tests call the same code.

use anyhow::Context;

use crate::config::Config;
use crate::crypto::password;
use crate::db::Db;
use crate::domain::{ChurchId, LeaderId};
use crate::flows::accounts;

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
    time_zone: Option<&str>,
) -> anyhow::Result<ChurchId> {
    Ok(accounts::create_church(db, name, number, messaging_profile_id, time_zone).await?)
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
    Ok(accounts::create_leader(db, passwords, church, email, password_text, admin).await?)
}

/// The password given on standard input: everything up to the end, minus one trailing newline.
pub fn password_from(input: &str) -> &str {
    input.strip_suffix('\n').map_or(input, |s| s.strip_suffix('\r').unwrap_or(s))
}
