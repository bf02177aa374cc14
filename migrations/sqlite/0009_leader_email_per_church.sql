-- A leader's email is unique within a church, not across churches: adding a leader must not
-- reveal that the address already signs in to another church. SQLite cannot drop a column's
-- UNIQUE, so the table is rebuilt. Migrations run in a transaction, where foreign keys cannot be
-- switched off, so dropping the old table sets messages.leader_id to NULL (ON DELETE SET NULL):
-- those references are kept aside first and put back after.
CREATE TEMP TABLE kept_message_leaders AS SELECT id, leader_id FROM messages WHERE leader_id IS NOT NULL;
CREATE TABLE leaders_new (
    id             BLOB PRIMARY KEY,
    church_id      BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    is_admin       INTEGER NOT NULL DEFAULT 0,
    token_version  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    last_login_at  TEXT,
    UNIQUE (church_id, email)
);
INSERT INTO leaders_new (id, church_id, email, password_hash, is_admin, token_version, created_at, last_login_at)
    SELECT id, church_id, email, password_hash, is_admin, token_version, created_at, last_login_at FROM leaders;
DROP TABLE leaders;
ALTER TABLE leaders_new RENAME TO leaders;
CREATE INDEX leaders_church ON leaders (church_id);
CREATE INDEX leaders_email ON leaders (email);
UPDATE messages SET leader_id = (SELECT k.leader_id FROM kept_message_leaders k WHERE k.id = messages.id)
    WHERE id IN (SELECT id FROM kept_message_leaders);
DROP TABLE kept_message_leaders;
