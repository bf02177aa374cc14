-- Group conversations: a group MMS (a member writing to the church number and others at once)
-- is a conversation of its own, keyed by its set of participants (group_key), with its members
-- in conversation_participants. Its member_id names the participant the inbox shows first (the
-- one who started it, then the next when that one is erased), so every conversation keeps a
-- member; a member's one-to-one conversation is the one without a group_key. Kept in lock-step
-- with migrations/sqlite/0014_group_conversations.sql (which rebuilds the table instead).

ALTER TABLE conversations ADD COLUMN group_key bytea;
ALTER TABLE conversations DROP CONSTRAINT conversations_church_member;
CREATE UNIQUE INDEX conversations_church_member ON conversations (church_id, member_id) WHERE group_key IS NULL;
-- Partial: a lookup of a member's own conversation (group_key IS NULL) must never walk the
-- church's conversations through this index.
CREATE UNIQUE INDEX conversations_church_group ON conversations (church_id, group_key) WHERE group_key IS NOT NULL;

-- No index on messages (member_id): a member's messages in groups are read through the groups'
-- threads (messages_thread), and another index on the busiest table costs every inbound message
-- about a tenth of the webhook throughput (bench webhooks).

-- The members of a group conversation (the church number is never one).
CREATE TABLE conversation_participants (
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    member_id        uuid NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    church_id        uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    position         integer NOT NULL,
    PRIMARY KEY (conversation_id, member_id)
);
CREATE INDEX conversation_participants_member ON conversation_participants (member_id);

-- Each recipient of a leader's reply to a group, with that recipient's own delivery.
CREATE TABLE message_recipients (
    message_id       uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    member_id        uuid NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    church_id        uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    delivery_status  text NOT NULL CHECK (delivery_status IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
    provider_status  text,
    failure_reason   text,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (message_id, member_id)
);
CREATE INDEX message_recipients_member ON message_recipients (member_id);
