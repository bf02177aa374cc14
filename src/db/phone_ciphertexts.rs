//! Every column holding an encrypted phone number, for key rotation: members' numbers and the
//! other recipients of a group MMS. Rows are found by the ciphertext's header (version and key
//! id), so nothing is decrypted to know which rows are not under the current key.

use super::{run, Conn, Result};
use crate::crypto::phone::HEADER_LEN;

/// A table and its encrypted column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `members.phone_ciphertext`
    MemberPhone,
    /// `messages.cc_ciphertext` (group MMS recipients; NULL for most messages)
    MessageCc,
}

impl Column {
    pub const ALL: [Column; 2] = [Column::MemberPhone, Column::MessageCc];

    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            Self::MemberPhone => ("members", "phone_ciphertext"),
            Self::MessageCc => ("messages", "cc_ciphertext"),
        }
    }

    /// What an operator reads in progress lines.
    pub fn label(self) -> &'static str {
        match self {
            Self::MemberPhone => "member numbers",
            Self::MessageCc => "group MMS recipients",
        }
    }

    /// `WHERE` condition: a ciphertext whose header is not `$1` (the current key's).
    fn not_current(self) -> String {
        let (_, col) = self.table_and_column();
        format!("{col} IS NOT NULL AND substr({col}, 1, {HEADER_LEN}) <> $1")
    }
}

/// One stored ciphertext.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ciphertext {
    pub id: uuid::Uuid,
    pub ciphertext: Vec<u8>,
}

/// The next `limit` ciphertexts (by id, after `after`) not under the key with `header`.
pub async fn not_under(
    c: &mut Conn<'_>,
    column: Column,
    header: &[u8],
    after: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<Ciphertext>> {
    let (table, col) = column.table_and_column();
    let sql = format!(
        "SELECT id, {col} AS ciphertext FROM {table}
         WHERE {} AND ($2 IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
        column.not_current()
    );
    run!(c, |q| sqlx::query_as::<_, Ciphertext>(&sql).bind(header).bind(after).bind(limit).fetch_all(&mut **q).await)
}

/// How many ciphertexts are not under the key with `header`.
pub async fn count_not_under(c: &mut Conn<'_>, column: Column, header: &[u8]) -> Result<i64> {
    let (table, _) = column.table_and_column();
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {}", column.not_current());
    run!(c, |q| sqlx::query_scalar::<_, i64>(&sql).bind(header).fetch_one(&mut **q).await)
}

/// Replaces one ciphertext, only if it is still `old` (a row changed or erased meanwhile is left
/// alone). True when it was replaced.
pub async fn replace(c: &mut Conn<'_>, column: Column, id: uuid::Uuid, old: &[u8], new: &[u8]) -> Result<bool> {
    let (table, col) = column.table_and_column();
    let sql = format!("UPDATE {table} SET {col} = $3 WHERE id = $1 AND {col} = $2");
    run!(c, |q| sqlx::query(&sql).bind(id).bind(old).bind(new).execute(&mut **q).await.map(|r| r.rows_affected() == 1))
}
