-- Refused webhooks, for `koinonia doctor`: a wrong TELNYX_PUBLIC_KEY shows up here at once.
CREATE TABLE webhook_rejections (
    id           uuid PRIMARY KEY,
    route        text NOT NULL,
    reason       text NOT NULL,
    client_addr  text,
    received_at  timestamptz NOT NULL
);
CREATE INDEX webhook_rejections_recent ON webhook_rejections (received_at DESC);
