-- E-mail notifications. Kept in lock-step with migrations/sqlite/0016_email_notifications.sql.
--
-- conversations.unread_since: when its oldest unread message arrived (NULL once read); a
-- conversation unread for NOTIFY_EMAIL_AFTER_MINUTES e-mails the leaders who chose e-mail.
ALTER TABLE conversations ADD COLUMN unread_since timestamptz;
UPDATE conversations SET unread_since = last_message_at WHERE unread_count > 0;
-- No index for the once-a-minute sweep (it reads the conversations table when SMTP_URL is
-- set): an index on what every inbound message changes would cost every webhook.

-- The last e-mail about a conversation: when it went, and up to which message it told of (the
-- conversation's last_message_at then). At most one an hour, and only for newer messages.
CREATE TABLE email_notifications (
    conversation_id  uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    church_id        uuid NOT NULL REFERENCES churches (id) ON DELETE CASCADE,
    through          timestamptz NOT NULL,
    sent_at          timestamptz NOT NULL
);
