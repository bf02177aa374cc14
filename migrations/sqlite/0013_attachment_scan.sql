-- What the virus scanner said of a file: 'clean', 'not_scanned' (scanning off, or no verdict
-- and none required; scan_detail says why) or 'infected' (scan_detail names the signature; such
-- a file is never stored and its status is 'failed'). NULL: stored before scanning existed.
ALTER TABLE attachments ADD COLUMN scan_state TEXT;
ALTER TABLE attachments ADD COLUMN scan_detail TEXT;
