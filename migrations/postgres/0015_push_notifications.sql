-- Web Push notifications. Kept in lock-step with migrations/sqlite/0015_push_notifications.sql.
--
-- A browser's push subscription (what `pushManager.subscribe` returned): the push service's
-- endpoint (https, at most 2 KiB, one row per endpoint: a browser that a second leader signs in to
-- moves to that leader) and the keys its notifications are encrypted to (RFC 8291), base64url.
-- At most 10 per leader; the oldest goes first.
CREATE TABLE push_subscriptions (
    id            uuid PRIMARY KEY,
    church_id     uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    leader_id     uuid NOT NULL REFERENCES leaders (id) ON DELETE CASCADE,
    endpoint      text NOT NULL UNIQUE CHECK (length(endpoint) <= 2048),
    p256dh        text NOT NULL,
    auth          text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz
);
CREATE INDEX push_subscriptions_leader ON push_subscriptions (leader_id, created_at);
CREATE INDEX push_subscriptions_church ON push_subscriptions (church_id);

-- How each leader wants to hear of new messages (both off until they choose), and whether the
-- church's notifications carry the first 60 characters of the message (off: only who wrote).
ALTER TABLE leaders ADD COLUMN notify_push boolean NOT NULL DEFAULT false;
ALTER TABLE leaders ADD COLUMN notify_email boolean NOT NULL DEFAULT false;
ALTER TABLE churches ADD COLUMN push_include_text boolean NOT NULL DEFAULT false;
