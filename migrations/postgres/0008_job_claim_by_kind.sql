-- Each kind of job has its own workers (a send never waits behind a download), so claims look
-- for one kind at a time: the claim indexes lead with it.
DROP INDEX jobs_claim_queued;
DROP INDEX jobs_claim_expired;
CREATE INDEX jobs_claim_queued ON jobs (state, kind, priority DESC, run_at, id);
CREATE INDEX jobs_claim_expired ON jobs (state, kind, lease_until);
