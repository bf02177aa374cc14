-- The claim looks for due queued jobs in priority order, and separately for expired leases:
-- one index each, so a claim costs the same with ten jobs queued or a hundred thousand.
CREATE INDEX jobs_claim_queued ON jobs (state, priority DESC, run_at, id);
CREATE INDEX jobs_claim_expired ON jobs (state, lease_until);
