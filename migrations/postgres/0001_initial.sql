-- koinonia schema, PostgreSQL. Kept in lock-step with migrations/sqlite/0001_initial.sql:
-- same tables, columns, checks and index names; only the column types differ.

CREATE TABLE churches (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    phone_number          text NOT NULL UNIQUE,
    messaging_profile_id  text,
    created_at            timestamptz NOT NULL
);

CREATE TABLE leaders (
    id             uuid PRIMARY KEY,
    church_id      uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    email          text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    is_admin       boolean NOT NULL DEFAULT false,
    token_version  bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    last_login_at  timestamptz
);
CREATE INDEX leaders_church ON leaders (church_id);

CREATE TABLE members (
    id                uuid PRIMARY KEY,
    church_id         uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    phone_hash        bytea NOT NULL,
    phone_ciphertext  bytea NOT NULL,
    phone_last4       text NOT NULL,
    first_name        text,
    last_name         text,
    opted_out         boolean NOT NULL DEFAULT false,
    opted_out_at      timestamptz,
    unreachable       boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT members_church_phone UNIQUE (church_id, phone_hash)
);

CREATE TABLE conversations (
    id                    uuid PRIMARY KEY,
    church_id             uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    member_id             uuid NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    last_message_at       timestamptz NOT NULL,
    last_message_preview  text NOT NULL DEFAULT '',
    unread_count          bigint NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT conversations_church_member UNIQUE (church_id, member_id)
);
CREATE INDEX conversations_inbox ON conversations (church_id, last_message_at DESC, id DESC);

CREATE TABLE messages (
    id                   uuid PRIMARY KEY,
    church_id            uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    conversation_id      uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    member_id            uuid NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    leader_id            uuid REFERENCES leaders (id) ON DELETE SET NULL,
    direction            text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    content              text NOT NULL DEFAULT '',
    keyword              text,
    likely_opt_out       boolean NOT NULL DEFAULT false,
    delivery_status      text CHECK (delivery_status IN ('queued', 'link_sent', 'sending', 'sent', 'delivered', 'failed')),
    failure_reason       text,
    provider_message_id  text,
    cc_ciphertext        bytea,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX messages_thread ON messages (conversation_id, id DESC);
CREATE UNIQUE INDEX messages_provider_id ON messages (provider_message_id);

CREATE TABLE attachments (
    id                 uuid PRIMARY KEY,
    church_id          uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    conversation_id    uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id         uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position           integer NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'stored', 'failed', 'deleted')),
    source_url         text,
    declared_type      text,
    declared_size      bigint,
    declared_sha256    text,
    media_type         text CHECK (media_type IN ('image', 'video', 'audio', 'document')),
    mime_type          text,
    name               text NOT NULL,
    storage_key        text,
    size_bytes         bigint,
    width              integer,
    height             integer,
    duration_seconds   double precision,
    sha256             text,
    failure_reason     text,
    keep               boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL,
    stored_at          timestamptz,
    deleted_at         timestamptz
);
CREATE INDEX attachments_message ON attachments (message_id, position);
CREATE INDEX attachments_church ON attachments (church_id, id DESC);
CREATE INDEX attachments_retention ON attachments (status, stored_at);

CREATE TABLE webhook_events (
    id           text PRIMARY KEY,
    event_type   text NOT NULL,
    church_id    uuid REFERENCES churches (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL
);

CREATE TABLE jobs (
    id            uuid PRIMARY KEY,
    kind          text NOT NULL,
    payload       jsonb NOT NULL,
    church_id     uuid REFERENCES churches (id) ON DELETE CASCADE,
    state         text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    priority      integer NOT NULL DEFAULT 0,
    run_at        timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL,
    lease_until   timestamptz,
    leased_by     text,
    last_error    text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, run_at);

CREATE TABLE audit_log (
    id            uuid PRIMARY KEY,
    church_id     uuid REFERENCES churches (id) ON DELETE CASCADE,
    actor_type    text NOT NULL CHECK (actor_type IN ('leader', 'member', 'system', 'anonymous')),
    actor_id      uuid,
    action        text NOT NULL,
    subject_type  text,
    subject_id    uuid,
    client_addr   text,
    detail        jsonb,
    created_at    timestamptz NOT NULL
);
CREATE INDEX audit_log_church ON audit_log (church_id, id DESC);
