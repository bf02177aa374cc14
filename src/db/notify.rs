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

/// Sends each of `payloads` on `channel`, in one statement.
pub async fn notify_all(c: &mut Conn<'_>, channel: &str, payloads: &[String]) -> Result<()> {
    match c {
        Conn::Postgres(q) => sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(channel)
            .bind(payloads)
            .execute(&mut **q)
            .await
            .map(|_| ()),
        Conn::Sqlite(_) => Ok(()),
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
