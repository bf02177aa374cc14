-- Previews of stored images and videos (derived JPEGs beside the original in the store).
-- preview_state: NULL until tried, then 'ready', 'unavailable' (no tool or no preview for the
-- type) or 'failed' (the file could not be decoded).
ALTER TABLE attachments ADD COLUMN preview_small_key TEXT;
ALTER TABLE attachments ADD COLUMN preview_large_key TEXT;
ALTER TABLE attachments ADD COLUMN preview_large_bytes INTEGER;
ALTER TABLE attachments ADD COLUMN preview_state TEXT CHECK (preview_state IN ('ready', 'unavailable', 'failed'));
-- Files stored before previews existed keep showing their original.
UPDATE attachments SET preview_state = 'unavailable' WHERE status <> 'pending';

-- A photo too large for MMS can go as its preview by MMS with the link to the original
-- (send_mode 'link' with send_preview).
ALTER TABLE messages ADD COLUMN send_preview INTEGER NOT NULL DEFAULT 0;
