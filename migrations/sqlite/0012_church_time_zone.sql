-- A church's time zone (an IANA name): the zone of the times written on the server, such as a
-- member export's transcript and the library's day filter. Pages show the reader's own zone.
ALTER TABLE churches ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
