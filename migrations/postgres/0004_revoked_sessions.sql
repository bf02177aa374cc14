-- Sessions ended by logout before they expire. Rows past expires_at can be purged.
CREATE TABLE revoked_sessions (
    jti         uuid PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_sessions_expiry ON revoked_sessions (expires_at);
