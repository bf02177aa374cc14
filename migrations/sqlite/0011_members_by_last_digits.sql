-- The inbox search by a number's last four digits finds the church's members by index instead
-- of walking every conversation of the church.
CREATE INDEX members_last4 ON members (church_id, phone_last4);
