//! The relational store: SQLite (embedded) or PostgreSQL (at scale), one set of SQL for both.
//!
//! Each query is written once with `$N` placeholders (sqlx's SQLite driver accepts them) and run
//! through [`run!`] on whichever connection we hold. Only the job claim and `NOTIFY` differ per
//! dialect, and they branch inside this module. `now` is always bound from Rust, never `now()`.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::config::DatabaseKind;

pub mod attachments;
pub mod audit;
pub mod churches;
pub mod conversations;
pub mod jobs;
pub mod leaders;
pub mod members;
pub mod messages;
pub mod notify;
pub mod phone_ciphertexts;
#[cfg(test)]
mod plans;
pub mod push_subscriptions;
pub mod recipients;
pub mod webhook_events;
pub mod webhook_rejections;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A PostgreSQL connection idle this long is pinged before it is handed out (see [`Db::connect`]).
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// A pool of either database.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A borrowed connection of either database: a pooled one or a transaction's.
pub enum Conn<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

/// A connection checked out of the pool.
pub enum Pooled {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

/// An open transaction. Dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// Runs the same runtime-checked query on whichever connection `$conn` (a `&mut Conn`) holds.
/// Inside the body, `$q` is a `&mut &mut {Pg,Sqlite}Connection`: pass `&mut **$q` as executor.
macro_rules! run {
    ($conn:expr, |$q:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Postgres($q) => $body,
            $crate::db::Conn::Sqlite($q) => $body,
        }
    };
}
pub(crate) use run;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {0}: {1}")]
    Folder(String, std::io::Error),
}

pub type Result<T, E = sqlx::Error> = std::result::Result<T, E>;

impl Db {
    /// Opens the pool (creating the SQLite file and its folder if needed). Does not migrate.
    pub async fn connect(kind: &DatabaseKind) -> Result<Self, DbError> {
        match kind {
            DatabaseKind::Sqlite { path } => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| DbError::Folder(parent.display().to_string(), e))?;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                // One connection: SQLite has one writer anyway, and writers that queue in-process
                // beat writers that poll the file lock (SQLite's busy handler sleeps up to 100 ms
                // a try). Nothing may hold a connection across network I/O, and no code path may
                // ask for a second connection while it holds one.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    // A file in this process has no other end to hang up: no ping on acquire.
                    .test_before_acquire(false)
                    .connect_with(opts)
                    .await?;
                Ok(Self::Sqlite(pool))
            }
            DatabaseKind::Postgres { url } => {
                let opts = PgConnectOptions::from_str(url.expose_secret())?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    // sqlx pings a connection when it comes back to the pool and, by default,
                    // again before handing it out: a round trip to the server each time. A
                    // connection that came back a moment ago (every one, on a busy server) was
                    // just found alive; only one idle for a while (the server restarted, a
                    // firewall forgot it) is pinged, and replaced if it does not answer.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for > PING_WHEN_IDLE_FOR {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(opts)
                    .await?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// Applies pending migrations of this database's dialect.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Self::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
            Self::Sqlite(p) => {
                // SQLite rebuilds a table to change a column (migrations 0009, 0014): dropping the
                // old table must not cascade into the rows that refer to it, so migrations run
                // with foreign-key enforcement off (SQLite's documented procedure; the pragma is
                // a no-op inside a transaction, hence set on the connection around them), and
                // every foreign key is checked once they are done.
                let mut conn = p.acquire().await?;
                sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
                let ran = SQLITE_MIGRATIONS.run(&mut *conn).await;
                let broken: Result<Vec<(String,)>, sqlx::Error> =
                    sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check").fetch_all(&mut *conn).await;
                let restored = sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await;
                ran?;
                restored?;
                if let Some((table,)) = broken?.into_iter().next() {
                    return Err(DbError::Migrate(sqlx::migrate::MigrateError::Execute(sqlx::Error::Protocol(
                        format!("after the migrations, a row of {table} refers to a row that does not exist"),
                    ))));
                }
            }
        }
        Ok(())
    }

    /// (applied, known) migrations of this database's dialect.
    pub async fn migration_status(&self) -> Result<(usize, usize)> {
        let known = match self {
            Self::Postgres(_) => POSTGRES_MIGRATIONS.iter().count(),
            Self::Sqlite(_) => SQLITE_MIGRATIONS.iter().count(),
        };
        const SQL: &str = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let applied: i64 = match self {
            Self::Postgres(p) => sqlx::query_scalar(SQL).fetch_one(p).await.unwrap_or(0),
            Self::Sqlite(p) => sqlx::query_scalar(SQL).fetch_one(p).await.unwrap_or(0),
        };
        Ok((usize::try_from(applied).unwrap_or(0), known))
    }

    /// Connections the pool holds now, idle or in use.
    pub fn connections(&self) -> u32 {
        match self {
            Self::Postgres(p) => p.size(),
            Self::Sqlite(p) => p.size(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    pub async fn acquire(&self) -> Result<Pooled> {
        Ok(match self {
            Self::Postgres(p) => Pooled::Postgres(p.acquire().await?),
            Self::Sqlite(p) => Pooled::Sqlite(p.acquire().await?),
        })
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so two
    /// writers queue instead of failing with `SQLITE_BUSY` on upgrade.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
            Self::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Liveness of the database.
    pub async fn ping(&self) -> Result<()> {
        let mut pooled = self.acquire().await?;
        let c = &mut pooled.conn();
        run!(c, |q| sqlx::query("SELECT 1").execute(&mut **q).await.map(|_| ()))
    }

    pub async fn close(&self) {
        match self {
            Self::Postgres(p) => p.close().await,
            Self::Sqlite(p) => p.close().await,
        }
    }
}

impl Pooled {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Postgres(c) => Conn::Postgres(c),
            Self::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Postgres(t) => Conn::Postgres(t),
            Self::Sqlite(t) => Conn::Sqlite(t),
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self {
            Self::Postgres(t) => t.commit().await,
            Self::Sqlite(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Self::Postgres(t) => t.rollback().await,
            Self::Sqlite(t) => t.rollback().await,
        }
    }
}

/// Maps a unique-constraint violation to a caller's error (portable: no constraint names).
pub trait UniqueExt<T> {
    fn on_unique<E: From<sqlx::Error>>(self, f: impl FnOnce() -> E) -> std::result::Result<T, E>;
}

impl<T> UniqueExt<T> for Result<T> {
    fn on_unique<E: From<sqlx::Error>>(self, f: impl FnOnce() -> E) -> std::result::Result<T, E> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => f(),
            _ => E::from(e),
        })
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// Migration 0009 rebuilds SQLite's `leaders` table (an email becomes unique per church): the
    /// leaders, and which leader wrote each message, survive it.
    #[tokio::test]
    async fn the_sqlite_leaders_rebuild_keeps_every_reference() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::connect(&DatabaseKind::Sqlite { path: dir.path().join("k.db") }).await.expect("connect");
        let Db::Sqlite(pool) = &db else { return };
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(SQLITE_MIGRATIONS.iter().filter(|m| m.version < 9).cloned().collect()),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(pool).await.expect("migrations 1 to 8");
        let (church, other, leader, member, conversation, message) = (
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
        );
        let t = "2026-11-30T00:00:00+00:00";
        for sql in [
            format!("INSERT INTO churches (id, name, phone_number, created_at) VALUES (x'{}', 'Grace', '+15551230000', '{t}')", church.simple()),
            format!("INSERT INTO churches (id, name, phone_number, created_at) VALUES (x'{}', 'Hope', '+15551239999', '{t}')", other.simple()),
            format!("INSERT INTO leaders (id, church_id, email, password_hash, created_at) VALUES (x'{}', x'{}', 'a@b.test', 'h', '{t}')", leader.simple(), church.simple()),
            format!("INSERT INTO members (id, church_id, phone_hash, phone_ciphertext, phone_last4, created_at, updated_at) VALUES (x'{}', x'{}', x'00', x'00', '0001', '{t}', '{t}')", member.simple(), church.simple()),
            format!("INSERT INTO conversations (id, church_id, member_id, last_message_at, created_at, updated_at) VALUES (x'{}', x'{}', x'{}', '{t}', '{t}', '{t}')", conversation.simple(), church.simple(), member.simple()),
            format!("INSERT INTO messages (id, church_id, conversation_id, member_id, leader_id, direction, created_at, updated_at) VALUES (x'{}', x'{}', x'{}', x'{}', x'{}', 'outbound', '{t}', '{t}')", message.simple(), church.simple(), conversation.simple(), member.simple(), leader.simple()),
        ] {
            sqlx::query(&sql).execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        db.migrate().await.expect("migration 9");
        let kept: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT leader_id FROM messages").fetch_one(pool).await.expect("message");
        assert_eq!(kept, Some(leader), "the message still names its leader");
        let fk: Vec<(i64,)> =
            sqlx::query_as("SELECT 1 FROM pragma_foreign_key_check").fetch_all(pool).await.expect("check");
        assert!(fk.is_empty(), "foreign keys hold");
        // The same email may now lead another church, but not twice the same one.
        let insert = |id: uuid::Uuid, church: uuid::Uuid| {
            format!("INSERT INTO leaders (id, church_id, email, password_hash, created_at) VALUES (x'{}', x'{}', 'a@b.test', 'h', '{t}')", id.simple(), church.simple())
        };
        sqlx::query(&insert(uuid::Uuid::now_v7(), other)).execute(pool).await.expect("another church");
        assert!(sqlx::query(&insert(uuid::Uuid::now_v7(), church)).execute(pool).await.is_err(), "same church twice");
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    /// Opening a thread reads its files through the thread index, not the church-wide one (whose
    /// cost grows with the church's whole media history).
    #[tokio::test]
    async fn a_threads_files_are_read_through_the_thread_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::connect(&DatabaseKind::Sqlite { path: dir.path().join("k.db") }).await.expect("connect");
        db.migrate().await.expect("migrate");
        let Db::Sqlite(pool) = &db else { return };
        let sql = "EXPLAIN QUERY PLAN SELECT id FROM attachments
                   WHERE church_id = $1 AND conversation_id = $2 AND message_id >= $3 AND message_id <= $4
                   ORDER BY message_id, position";
        let id = uuid::Uuid::now_v7();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sql).bind(id).bind(id).bind(id).bind(id).fetch_all(pool).await.expect("plan");
        let text: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        assert!(text.iter().any(|d| d.contains("attachments_thread")), "{text:?}");
        assert!(!text.iter().any(|d| d.contains("TEMP B-TREE")), "no sort: {text:?}");
    }
}
