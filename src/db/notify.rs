//! PostgreSQL `NOTIFY` / `LISTEN`: how instances sharing one database tell each other that
//! something happened (a live update, a new job). On SQLite there is one instance and these do
//! nothing; in-process channels carry the news.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Conn, Db, Result};

/// Sends `payload` on `channel` to every listening instance. Inside a transaction, PostgreSQL
/// delivers it only when the transaction commits (and not at all if it rolls back).
pub async fn notify(c: &mut Conn<'_>, channel: &str, payload: &str) -> Result<()> {
    match c {
        Conn::Postgres(q) => {
            sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&mut **q).await.map(|_| ())
        }
        Conn::Sqlite(_) => Ok(()),
    }
}

/// A connection of its own for notifications sent after the data they announce has committed
/// (live updates). Its commits do not wait for the disk (`synchronous_commit = off`): the news
/// is about rows already durable, a notification lost in a crash costs a listener nothing it
/// cannot read again, and PostgreSQL holds one database-wide lock from a notifying
/// transaction's commit until its WAL is flushed — a flush per notification would serialise
/// every instance's notifications behind the disk.
pub struct Sender {
    db: Db,
    conn: Option<sqlx::PgConnection>,
}

impl Sender {
    /// Connects on first use. On SQLite sending does nothing.
    pub fn new(db: Db) -> Self {
        Self { db, conn: None }
    }

    /// Sends each of `payloads` on `channel` in one statement; after an error the connection
    /// is opened again and the statement tried once more.
    pub async fn send_all(&mut self, channel: &str, payloads: &[String]) -> Result<()> {
        let Db::Postgres(pool) = &self.db else { return Ok(()) };
        let mut tried = false;
        loop {
            let conn = match self.conn.as_mut() {
                Some(conn) => conn,
                None => {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect_with(&pool.connect_options()).await?;
                    sqlx::query("SET synchronous_commit = off").execute(&mut conn).await?;
                    self.conn.insert(conn)
                }
            };
            let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(channel)
                .bind(payloads)
                .execute(&mut *conn)
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(e) => {
                    self.conn = None;
                    if tried {
                        return Err(e);
                    }
                    tried = true;
                }
            }
        }
    }
}

/// Whether notifications travel between instances (PostgreSQL).
pub fn shared(db: &Db) -> bool {
    matches!(db, Db::Postgres(_))
}

/// On PostgreSQL: calls `on_payload` with every notification on `channel` until `shutdown`,
/// reconnecting after a lost connection. On SQLite: returns at once.
pub async fn listen(db: &Db, channel: &str, shutdown: CancellationToken, mut on_payload: impl FnMut(&str)) {
    let Db::Postgres(pool) = db else { return };
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, channel, "LISTEN: cannot connect; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(channel).await {
            tracing::warn!(error = %e, channel, "LISTEN failed; retrying");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
            }
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                n = listener.recv() => match n {
                    Ok(n) => on_payload(n.payload()),
                    Err(e) => {
                        tracing::warn!(error = %e, channel, "LISTEN: connection lost; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}
