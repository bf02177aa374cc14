-- Group conversations: a group MMS (a member writing to the church number and others at once)
-- is a conversation of its own, keyed by its set of participants (group_key), with its members
-- in conversation_participants. Its member_id names the participant the inbox shows first (the
-- one who started it, then the next when that one is erased), so every conversation keeps a
-- member; a member's one-to-one conversation is the one without a group_key.
--
-- SQLite cannot drop a table's UNIQUE constraint: conversations is rebuilt, which koinonia's
-- migrator does with foreign-key enforcement off (SQLite's documented procedure), so dropping
-- the old table takes nothing with it; every foreign key is checked once the migration is done.

CREATE TABLE conversations_new (
    id                    BLOB PRIMARY KEY,
    church_id             BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    member_id             BLOB NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    last_message_at       TEXT NOT NULL,
    last_message_preview  TEXT NOT NULL DEFAULT '',
    unread_count          INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    group_key             BLOB
);
INSERT INTO conversations_new (id, church_id, member_id, last_message_at, last_message_preview, unread_count, created_at, updated_at)
    SELECT id, church_id, member_id, last_message_at, last_message_preview, unread_count, created_at, updated_at
    FROM conversations;
DROP TABLE conversations;
ALTER TABLE conversations_new RENAME TO conversations;
CREATE INDEX conversations_inbox ON conversations (church_id, last_message_at DESC, id DESC);
CREATE UNIQUE INDEX conversations_church_member ON conversations (church_id, member_id) WHERE group_key IS NULL;
-- Partial: a lookup of a member's own conversation (group_key IS NULL) must never walk the
-- church's conversations through this index.
CREATE UNIQUE INDEX conversations_church_group ON conversations (church_id, group_key) WHERE group_key IS NOT NULL;

-- No index on messages (member_id): a member's messages in groups are read through the groups'
-- threads (messages_thread), and another index on the busiest table costs every inbound message
-- about a tenth of the webhook throughput (bench webhooks).

-- The members of a group conversation (the church number is never one).
CREATE TABLE conversation_participants (
    conversation_id  BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    member_id        BLOB NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    church_id        BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, member_id)
);
CREATE INDEX conversation_participants_member ON conversation_participants (member_id);

-- Each recipient of a leader's reply to a group, with that recipient's own delivery.
CREATE TABLE message_recipients (
    message_id       BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    member_id        BLOB NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    church_id        BLOB NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    delivery_status  TEXT NOT NULL CHECK (delivery_status IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
    provider_status  TEXT,
    failure_reason   TEXT,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (message_id, member_id)
);
CREATE INDEX message_recipients_member ON message_recipients (member_id);
