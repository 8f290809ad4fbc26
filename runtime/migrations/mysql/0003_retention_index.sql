-- Retention finds ended jobs through this index (oldest first) and deletes them by primary key
-- in small batches, so it never scans (and locks) the rows of running jobs.
CREATE INDEX jobs_ended ON jobs (ended_at_ms);
