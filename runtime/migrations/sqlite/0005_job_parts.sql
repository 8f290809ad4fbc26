-- A job's graph (compact chunks, kind 0) and inputs frame (pieces, kind 1), in order, each within
-- db_max_write_bytes, so no job's size is capped by what one row may hold. Jobs stored before this
-- keep their graph and inputs in their own row.
CREATE TABLE job_parts (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (job_id, kind, seq)
);
