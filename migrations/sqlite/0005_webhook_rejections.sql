-- Refused webhooks, for `koinonia doctor`: a wrong TELNYX_PUBLIC_KEY shows up here at once.
CREATE TABLE webhook_rejections (
    id           BLOB PRIMARY KEY,
    route        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    client_addr  TEXT,
    received_at  TEXT NOT NULL
);
CREATE INDEX webhook_rejections_recent ON webhook_rejections (received_at DESC);
