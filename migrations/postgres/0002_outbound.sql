-- Outbound sending: the exactly-once marker of each reply, the carrier's raw status, the link
-- token of large media sent as a link, and why a member cannot receive messages.

ALTER TABLE messages ADD COLUMN send_state text CHECK (send_state IN ('pending', 'in_flight', 'accepted', 'failed'));
ALTER TABLE messages ADD COLUMN send_started_at timestamptz;
ALTER TABLE messages ADD COLUMN provider_status text;
ALTER TABLE messages ADD COLUMN send_mode text CHECK (send_mode IN ('sms', 'mms', 'mms_text', 'link'));

ALTER TABLE attachments ADD COLUMN link_token text;
CREATE UNIQUE INDEX attachments_link_token ON attachments (link_token);

ALTER TABLE members ADD COLUMN unreachable_reason text;
