//! Accounts: a church and its first admin at first run, leaders' sign-in and sign-out, password
//! changes and resets, and the leaders an admin manages. Every change is audited in the same
//! transaction as the change itself.

use crate::clock;
use crate::crypto::password::{self, PasswordError};
use crate::crypto::session::Claims;
use crate::db::leaders::LeaderRow;
use crate::db::{self, Db, UniqueExt};
use crate::domain::{Actor, ChurchId, ChurchTimeZone, ClientAddr, LeaderId, Phone};
use crate::flows::audit;

/// What accounts need: the database, password hashing, sessions, the login limits and the
/// one-time setup code.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub passwords: &'a password::Hasher,
    pub sessions: &'a crate::crypto::session::SessionKeys,
    pub limits: &'a crate::limits::AbuseLimits,
    pub setup_code: &'a Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// What was given is not acceptable; the sentence says why.
    #[error("{0}")]
    Invalid(String),
    #[error("invalid email or password")]
    WrongPassword,
    #[error("the current password is not right")]
    WrongCurrentPassword,
    /// Too many attempts from this address (or at this account): wait this many seconds.
    #[error("too many attempts; try again in {0} seconds")]
    RateLimited(u64),
    #[error("only an admin of the church can do this")]
    AdminOnly,
    /// No such leader (or church) here.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("cannot issue a session: {0}")]
    Session(#[from] crate::crypto::session::SessionError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A new session: its token and the leader it belongs to.
pub struct SignedIn {
    pub token: String,
    pub leader: LeaderRow,
}

/// Lower-cased, trimmed, and shaped like an address.
pub fn normalise_email(email: &str) -> Result<String, AccountError> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if !valid {
        return Err(AccountError::Invalid(format!("{email:?} is not an email address")));
    }
    Ok(e)
}

/// A new church's row, its name and number checked.
fn church_row(
    name: &str,
    number: &str,
    messaging_profile_id: Option<&str>,
    time_zone: Option<&str>,
) -> Result<db::churches::ChurchRow, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AccountError::Invalid("the church name must be 1 to 200 characters".into()));
    }
    let phone = Phone::parse(number).map_err(|e| AccountError::Invalid(format!("church number: {e}")))?;
    let zone = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
        Some(z) => ChurchTimeZone::parse(z).map_err(AccountError::Invalid)?,
        None => ChurchTimeZone::default(),
    };
    Ok(db::churches::ChurchRow {
        id: ChurchId::new(),
        name: name.to_owned(),
        phone_number: phone.as_str().to_owned(),
        messaging_profile_id: messaging_profile_id.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
        time_zone: zone.name().to_owned(),
        created_at: clock::now(),
    })
}

async fn insert_church(c: &mut db::Conn<'_>, row: &db::churches::ChurchRow) -> Result<(), AccountError> {
    db::churches::insert(c, row)
        .await
        .on_unique(|| AccountError::Conflict(format!("a church with number {} already exists", row.phone_number)))
}

fn leader_row(church: ChurchId, email: &str, password_hash: String, admin: bool) -> LeaderRow {
    LeaderRow {
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

/// Creates a church owning `number` (an operator's command); returns its id.
pub async fn create_church(
    db: &Db,
    name: &str,
    number: &str,
    messaging_profile_id: Option<&str>,
    time_zone: Option<&str>,
) -> Result<ChurchId, AccountError> {
    let row = church_row(name, number, messaging_profile_id, time_zone)?;
    let mut tx = db.begin().await?;
    insert_church(&mut tx.conn(), &row).await?;
    tx.commit().await?;
    Ok(row.id)
}

/// Creates a leader of `church` (an operator's command); returns its id.
pub async fn create_leader(
    db: &Db,
    passwords: &password::Hasher,
    church: ChurchId,
    email: &str,
    password_text: &str,
    admin: bool,
) -> Result<LeaderId, AccountError> {
    let email = normalise_email(email)?;
    let hash = passwords.hash(password_text).await?;
    let mut tx = db.begin().await?;
    let c = &mut tx.conn();
    if db::churches::get(c, church).await?.is_none() {
        return Err(AccountError::Invalid(format!("no church with id {church}")));
    }
    let row = leader_row(church, &email, hash, admin);
    db::leaders::insert(c, &row)
        .await
        .on_unique(|| AccountError::Conflict(format!("a leader with email {email} already exists")))?;
    tx.commit().await?;
    Ok(row.id)
}

/// First-run setup: the first church and its first (admin) leader, in one transaction that claims
/// setup, so concurrent attempts create exactly one church. `None`: setup was done already.
pub async fn first_run(
    db: &Db,
    passwords: &password::Hasher,
    form: &Setup<'_>,
) -> Result<Option<(ChurchId, LeaderId)>, AccountError> {
    let church = church_row(form.church_name, form.church_number, None, Some(form.time_zone))?;
    let email = normalise_email(form.email)?;
    // Hashed before the transaction: no connection is held while argon2 runs.
    let hash = passwords.hash(form.password).await?;
    let leader = leader_row(church.id, &email, hash, true);
    let mut tx = db.begin().await?;
    let c = &mut tx.conn();
    if !db::churches::claim_first_run(c, church.id, church.created_at).await? || db::churches::count(c).await? > 0 {
        return Ok(None);
    }
    insert_church(c, &church).await?;
    db::leaders::insert(c, &leader)
        .await
        .on_unique(|| AccountError::Conflict(format!("{email} is already a leader of this church")))?;
    tx.commit().await?;
    Ok(Some((church.id, leader.id)))
}

/// What `/setup` asks for.
pub struct Setup<'a> {
    /// The one-time code `serve` printed (asked for when koinonia listens beyond loopback).
    pub code: &'a str,
    pub church_name: &'a str,
    pub church_number: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub password_confirm: &'a str,
    /// The church's time zone (the setup page offers the browser's own); empty: UTC.
    pub time_zone: &'a str,
}

/// Whether any church exists yet (before one does, `/setup` is open).
pub async fn is_set_up(deps: &Deps<'_>) -> Result<bool, AccountError> {
    let mut pooled = deps.db.acquire().await?;
    Ok(db::churches::count(&mut pooled.conn()).await? > 0)
}

/// First-run setup from the dashboard: checks the one-time code and the form, creates the church
/// and its admin, and signs them in. `None`: another request finished setup first.
pub async fn setup(deps: &Deps<'_>, form: Setup<'_>, client: ClientAddr) -> Result<Option<SignedIn>, AccountError> {
    if let Some(code) = &deps.setup_code {
        let given = form.code.trim();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), code.as_bytes())) {
            return Err(AccountError::Invalid(
                "The setup code is not right. It is printed by `koinonia serve` when it starts.".into(),
            ));
        }
    }
    if form.password != form.password_confirm {
        return Err(AccountError::Invalid("The two passwords differ.".into()));
    }
    password::check_strength(form.password).map_err(|e| AccountError::Invalid(format!("Password: {e}.")))?;
    let email = normalise_email(form.email)
        .map_err(|_| AccountError::Invalid("That email address does not look right.".into()))?;
    let created = first_run(deps.db, deps.passwords, &form).await;
    match created {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(None),
        Err(AccountError::Invalid(e) | AccountError::Conflict(e)) => {
            let mut e = e;
            if let Some(first) = e.get(..1) {
                e = first.to_uppercase() + &e[1..];
            }
            return Err(AccountError::Invalid(e));
        }
        Err(e) => return Err(e),
    }
    tracing::info!("first-run setup created the church and its first leader");
    login(deps, &email, form.password, client).await.map(Some)
}

/// Checks a leader's email and password; on success a new session (the login is audited).
/// The same answer, after the same work, for an unknown email and a wrong password.
pub async fn login(
    deps: &Deps<'_>,
    email: &str,
    password_text: &str,
    client: ClientAddr,
) -> Result<SignedIn, AccountError> {
    let email = email.trim().to_lowercase();
    if email.is_empty() || password_text.is_empty() {
        return Err(AccountError::Invalid("email and password are required".into()));
    }
    guessing_allowed(deps, &email, client).await?;
    let accounts = {
        let mut pooled = deps.db.acquire().await?;
        db::leaders::find_by_email(&mut pooled.conn(), &email).await?
    };
    // One email may lead in several churches (each its own account and password): the password
    // says which. With no account, a dummy hash is checked, so timing does not tell.
    let mut signed_in = None;
    if accounts.is_empty() {
        deps.passwords.verify(password_text, None).await?;
    }
    for account in accounts {
        if deps.passwords.verify(password_text, Some(&account.password_hash)).await? {
            signed_in = Some(account);
            break;
        }
    }
    let Some(leader) = signed_in else {
        metrics::counter!("koinonia_logins_total", "outcome" => "failed").increment(1);
        tracing::info!("login refused");
        return Err(AccountError::WrongPassword);
    };
    let now = clock::now();
    let (token, _) = deps.sessions.issue(leader.id, leader.church_id, leader.token_version, now)?;
    {
        let actor = Actor::leader(leader.church_id, leader.id, leader.is_admin, client);
        let mut tx = deps.db.begin().await?;
        let c = &mut tx.conn();
        db::leaders::record_login(c, leader.id, now).await?;
        audit::record(c, audit::Entry::by(&actor, "leader.login")).await?;
        tx.commit().await?;
    }
    metrics::counter!("koinonia_logins_total", "outcome" => "ok").increment(1);
    Ok(SignedIn { token, leader })
}

/// The login limits for one attempt to check `email`'s password from `client`: refused when this
/// address (or this address for this account) tried too often; delayed when the account is
/// being tried from many addresses.
async fn guessing_allowed(deps: &Deps<'_>, email: &str, client: ClientAddr) -> Result<(), AccountError> {
    match deps.limits.login(email, client.0) {
        Ok(permit) => {
            if !permit.delay.is_zero() {
                metrics::counter!("koinonia_login_slowed_total").increment(1);
                tokio::time::sleep(permit.delay).await;
            }
            Ok(())
        }
        Err(wait) => {
            metrics::counter!("koinonia_rate_limited_total", "what" => "login").increment(1);
            Err(AccountError::RateLimited(crate::limits::retry_after_secs(wait)))
        }
    }
}

/// Ends one session: its token is refused from now on (audited).
pub async fn logout(deps: &Deps<'_>, actor: &Actor, jti: uuid::Uuid, expires_at: i64) -> Result<(), AccountError> {
    let expires = chrono::DateTime::from_timestamp(expires_at, 0).unwrap_or_else(clock::now);
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    db::leaders::revoke_session(c, jti, expires).await?;
    audit::record(c, audit::Entry::by(actor, "leader.logout")).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the session of a token, if it is one (a page's sign-out, whatever state the session is in).
pub async fn logout_token(deps: &Deps<'_>, token: &str, client: ClientAddr) -> Result<(), AccountError> {
    let Ok(Claims { sub, church, jti, exp, .. }) = deps.sessions.verify(token) else { return Ok(()) };
    let actor = Actor::leader(church, sub, false, client);
    logout(deps, &actor, jti, exp).await
}

/// Changes the acting leader's own password, checking the current one (limited like a login):
/// every session of theirs ends; the new token is returned.
pub async fn change_password(deps: &Deps<'_>, actor: &Actor, current: &str, new: &str) -> Result<String, AccountError> {
    let me = actor.leader_id().ok_or(AccountError::NotFound)?;
    password::check_strength(new).map_err(|e| AccountError::Invalid(format!("new password: {e}")))?;
    let row = {
        let mut pooled = deps.db.acquire().await?;
        db::leaders::get(&mut pooled.conn(), actor.church, me).await?.ok_or(AccountError::NotFound)?
    };
    guessing_allowed(deps, &row.email, actor.client).await?;
    if !deps.passwords.verify(current, Some(&row.password_hash)).await? {
        return Err(AccountError::WrongCurrentPassword);
    }
    let hash = deps.passwords.hash(new).await?;
    let version = {
        let mut tx = deps.db.begin().await?;
        let c = &mut tx.conn();
        let version = db::leaders::set_password(c, actor.church, me, &hash).await?.ok_or(AccountError::NotFound)?;
        audit::record(c, audit::Entry::by(actor, "leader.password")).await?;
        tx.commit().await?;
        version
    };
    let (token, _) = deps.sessions.issue(me, actor.church, version, clock::now())?;
    Ok(token)
}

fn admin_only(actor: &Actor) -> Result<(), AccountError> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(AccountError::AdminOnly)
    }
}

/// The church's leaders (admins).
pub async fn leaders(deps: &Deps<'_>, actor: &Actor) -> Result<Vec<LeaderRow>, AccountError> {
    admin_only(actor)?;
    let mut pooled = deps.db.acquire().await?;
    Ok(db::leaders::list(&mut pooled.conn(), actor.church).await?)
}

/// Adds a leader to the church (admins); the leader and the audit row are one transaction.
pub async fn add_leader(
    deps: &Deps<'_>,
    actor: &Actor,
    email: &str,
    password_text: &str,
    admin: bool,
) -> Result<LeaderRow, AccountError> {
    admin_only(actor)?;
    let email = normalise_email(email).map_err(|_| AccountError::Invalid("email is not an email address".into()))?;
    password::check_strength(password_text).map_err(|e| AccountError::Invalid(format!("password: {e}")))?;
    let hash = deps.passwords.hash(password_text).await?;
    let row = leader_row(actor.church, &email, hash, admin);
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    db::leaders::insert(c, &row)
        .await
        .on_unique(|| AccountError::Conflict(format!("{email} is already a leader of this church")))?;
    audit::record(c, audit::Entry::by(actor, "leader.add").subject("leader", row.id.0)).await?;
    tx.commit().await?;
    Ok(row)
}

/// Removes a leader (admins); the church's last admin cannot be removed.
pub async fn remove_leader(deps: &Deps<'_>, actor: &Actor, id: LeaderId) -> Result<(), AccountError> {
    admin_only(actor)?;
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    let target = db::leaders::get(c, actor.church, id).await?.ok_or(AccountError::NotFound)?;
    if target.is_admin && db::leaders::count_admins(c, actor.church).await? <= 1 {
        return Err(AccountError::Conflict("the church's last admin cannot be removed".into()));
    }
    db::leaders::delete(c, actor.church, id).await?;
    audit::record(c, audit::Entry::by(actor, "leader.remove").subject("leader", id.0)).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets another leader's password (admins, for forgotten passwords): every session of that
/// leader ends. Audited without the password.
pub async fn reset_password(deps: &Deps<'_>, actor: &Actor, id: LeaderId, new: &str) -> Result<(), AccountError> {
    admin_only(actor)?;
    {
        let mut pooled = deps.db.acquire().await?;
        db::leaders::get(&mut pooled.conn(), actor.church, id).await?.ok_or(AccountError::NotFound)?;
    }
    if actor.leader_id() == Some(id) {
        return Err(AccountError::Invalid(
            "change your own password with POST /api/auth/password (it asks for the current one)".into(),
        ));
    }
    password::check_strength(new).map_err(|e| AccountError::Invalid(format!("new password: {e}")))?;
    let hash = deps.passwords.hash(new).await?;
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    db::leaders::set_password(c, actor.church, id, &hash).await?.ok_or(AccountError::NotFound)?;
    audit::record(c, audit::Entry::by(actor, "leader.password_reset").subject("leader", id.0)).await?;
    tx.commit().await?;
    Ok(())
}

/// The leader a session token belongs to and its claims, while the session holds: signature and
/// expiry, the leader's token version (raised by a password change or removal) and the list of
/// revoked sessions (logout). The one check of the API, the pages and the live stream.
pub async fn session(deps: &Deps<'_>, token: &str) -> Result<Option<(LeaderRow, Claims)>, sqlx::Error> {
    let Ok(claims) = deps.sessions.verify(token) else { return Ok(None) };
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let Some(leader) = db::leaders::get(c, claims.church, claims.sub).await?.filter(|l| l.token_version == claims.ver)
    else {
        return Ok(None);
    };
    if db::leaders::is_revoked(c, claims.jti).await? {
        return Ok(None);
    }
    Ok(Some((leader, claims)))
}

/// Whether a session checked earlier still holds (for long-lived requests such as the live
/// stream): not expired, not revoked, issued under the leader's current token version. A
/// database hiccup does not end anyone's stream.
pub async fn session_holds(
    deps: &Deps<'_>,
    church: ChurchId,
    leader: LeaderId,
    jti: uuid::Uuid,
    expires_at: i64,
    version: i64,
) -> bool {
    if expires_at < chrono::Utc::now().timestamp() {
        return false;
    }
    let Ok(mut pooled) = deps.db.acquire().await else { return true };
    let c = &mut pooled.conn();
    let current = db::leaders::get(c, church, leader).await;
    let revoked = db::leaders::is_revoked(c, jti).await;
    match (current, revoked) {
        (Ok(Some(l)), Ok(false)) => l.token_version == version,
        (Ok(_), Ok(_)) => false,
        _ => true,
    }
}

/// The church's time zone (UTC when the church is gone or its zone unknown to this build).
pub async fn time_zone(db: &Db, church: ChurchId) -> Result<ChurchTimeZone, sqlx::Error> {
    let mut pooled = db.acquire().await?;
    time_zone_in(&mut pooled.conn(), church).await
}

/// [`time_zone`] on a connection the caller holds.
pub async fn time_zone_in(c: &mut db::Conn<'_>, church: ChurchId) -> Result<ChurchTimeZone, sqlx::Error> {
    let name = db::churches::time_zone(c, church).await?;
    Ok(name.map_or_else(ChurchTimeZone::default, |n| ChurchTimeZone::stored(&n)))
}

/// Sets the church's time zone (admins); audited with the old and new zone.
pub async fn set_time_zone(deps: &Deps<'_>, actor: &Actor, zone: &str) -> Result<ChurchTimeZone, AccountError> {
    admin_only(actor)?;
    let zone = ChurchTimeZone::parse(zone).map_err(AccountError::Invalid)?;
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    let before = db::churches::time_zone(c, actor.church).await?.ok_or(AccountError::NotFound)?;
    if before != zone.name() {
        db::churches::set_time_zone(c, actor.church, zone.name()).await?;
        let detail = serde_json::json!({ "from": before, "to": zone.name() });
        audit::record(c, audit::Entry::by(actor, "church.time_zone").detail(detail)).await?;
    }
    tx.commit().await?;
    Ok(zone)
}

/// A church's name, if it exists.
pub async fn church_name(deps: &Deps<'_>, church: ChurchId) -> Result<Option<String>, sqlx::Error> {
    let mut pooled = deps.db.acquire().await?;
    Ok(db::churches::get(&mut pooled.conn(), church).await?.map(|c| c.name))
}
