-- First-run setup is claimed once: concurrent /setup posts race for this one row, and only the
-- winner creates the first church.
CREATE TABLE first_run (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    church_id   BLOB NOT NULL,
    created_at  TEXT NOT NULL
);
