-- A thread's files by conversation and message: opening a thread reads only that thread's
-- attachments, whatever the church's size (the church-wide index made it scan them all).
CREATE INDEX attachments_thread ON attachments (conversation_id, message_id, position);
