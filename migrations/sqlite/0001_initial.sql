-- koinonia schema, SQLite. Kept in lock-step with migrations/postgres/0001_initial.sql:
-- same tables, columns, checks and index names; only the column types differ.

CREATE TABLE churches (
    id                    BLOB PRIMARY KEY,
    name                  TEXT NOT NULL,
    phone_number          TEXT NOT NULL UNIQUE,
    messaging_profile_id  TEXT,
    created_at            TEXT NOT NULL
);

CREATE TABLE leaders (
    id             BLOB PRIMARY KEY,
    church_id      BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    is_admin       INTEGER NOT NULL DEFAULT 0,
    token_version  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    last_login_at  TEXT
);
CREATE INDEX leaders_church ON leaders (church_id);

CREATE TABLE members (
    id                BLOB PRIMARY KEY,
    church_id         BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    phone_hash        BLOB NOT NULL,
    phone_ciphertext  BLOB NOT NULL,
    phone_last4       TEXT NOT NULL,
    first_name        TEXT,
    last_name         TEXT,
    opted_out         INTEGER NOT NULL DEFAULT 0,
    opted_out_at      TEXT,
    unreachable       INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    CONSTRAINT members_church_phone UNIQUE (church_id, phone_hash)
);

CREATE TABLE conversations (
    id                    BLOB PRIMARY KEY,
    church_id             BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    member_id             BLOB NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    last_message_at       TEXT NOT NULL,
    last_message_preview  TEXT NOT NULL DEFAULT '',
    unread_count          INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    CONSTRAINT conversations_church_member UNIQUE (church_id, member_id)
);
CREATE INDEX conversations_inbox ON conversations (church_id, last_message_at DESC, id DESC);

CREATE TABLE messages (
    id                   BLOB PRIMARY KEY,
    church_id            BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    conversation_id      BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    member_id            BLOB NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    leader_id            BLOB REFERENCES leaders (id) ON DELETE SET NULL,
    direction            TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    content              TEXT NOT NULL DEFAULT '',
    keyword              TEXT,
    likely_opt_out       INTEGER NOT NULL DEFAULT 0,
    delivery_status      TEXT CHECK (delivery_status IN ('queued', 'link_sent', 'sending', 'sent', 'delivered', 'failed')),
    failure_reason       TEXT,
    provider_message_id  TEXT,
    cc_ciphertext        BLOB,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX messages_thread ON messages (conversation_id, id DESC);
CREATE UNIQUE INDEX messages_provider_id ON messages (provider_message_id);

CREATE TABLE attachments (
    id                 BLOB PRIMARY KEY,
    church_id          BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    conversation_id    BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id         BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position           INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'stored', 'failed', 'deleted')),
    source_url         TEXT,
    declared_type      TEXT,
    declared_size      INTEGER,
    declared_sha256    TEXT,
    media_type         TEXT CHECK (media_type IN ('image', 'video', 'audio', 'document')),
    mime_type          TEXT,
    name               TEXT NOT NULL,
    storage_key        TEXT,
    size_bytes         INTEGER,
    width              INTEGER,
    height             INTEGER,
    duration_seconds   REAL,
    sha256             TEXT,
    failure_reason     TEXT,
    keep               INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    stored_at          TEXT,
    deleted_at         TEXT
);
CREATE INDEX attachments_message ON attachments (message_id, position);
CREATE INDEX attachments_church ON attachments (church_id, id DESC);
CREATE INDEX attachments_retention ON attachments (status, stored_at);

CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    church_id    BLOB REFERENCES churches (id) ON DELETE CASCADE,
    received_at  TEXT NOT NULL
);

CREATE TABLE jobs (
    id            BLOB PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    church_id     BLOB REFERENCES churches (id) ON DELETE CASCADE,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    priority      INTEGER NOT NULL DEFAULT 0,
    run_at        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    lease_until   TEXT,
    leased_by     TEXT,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, run_at);

CREATE TABLE audit_log (
    id            BLOB PRIMARY KEY,
    church_id     BLOB REFERENCES churches (id) ON DELETE CASCADE,
    actor_type    TEXT NOT NULL CHECK (actor_type IN ('leader', 'member', 'system', 'anonymous')),
    actor_id      BLOB,
    action        TEXT NOT NULL,
    subject_type  TEXT,
    subject_id    BLOB,
    client_addr   TEXT,
    detail        TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX audit_log_church ON audit_log (church_id, id DESC);
