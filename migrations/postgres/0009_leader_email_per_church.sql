-- A leader's email is unique within a church, not across churches: adding a leader must not
-- reveal that the address already signs in to another church.
ALTER TABLE leaders DROP CONSTRAINT leaders_email_key;
CREATE UNIQUE INDEX leaders_church_email ON leaders (church_id, email);
CREATE INDEX leaders_email ON leaders (email);
